//! Writing what the plan says: blobs read by pack and written into files, metadata, hard
//! links, the way cleared for entries, temporaries.

use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::plan::{DirState, FileJob, LinkTo, Needed, Plan};
use super::{Action, Restorer};
use crate::error::Result;
use crate::repository::PackRead;
use crate::tree::{Node, NodeKind};

impl Restorer<'_> {
    /// The plan is known: set the progress totals (files and bytes to write).
    pub(super) fn set_totals(&self, plan: &Plan) {
        let p = self.progress;
        let files = p.files.load(Ordering::Relaxed) + plan.files.len() as u64 + plan.links.len() as u64;
        p.total_files.store(files, Ordering::Relaxed);
        p.total_bytes.store(plan.files.iter().map(|f| f.node.size).sum(), Ordering::Relaxed);
        p.planned.store(true, Ordering::Release);
    }

    /// A dry run's figures: the planned files and their bytes count as restored (nothing is).
    pub(super) fn count_dry(&self, plan: &Plan) {
        let p = self.progress;
        p.files.fetch_add(plan.files.len() as u64 + plan.links.len() as u64, Ordering::Relaxed);
        p.bytes.store(p.total_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        self.dirs_done.fetch_add(plan.dirs.len() as u64, Ordering::Relaxed);
    }

    /// Phases 2 and 3.
    pub(super) fn run(&self, plan: Plan, verify: bool) -> Result<()> {
        let Plan { files, mut dirs, links, packs, .. } = plan;
        // Files without content to download (none, or all copied from the local file) are
        // complete already.
        for f in files.iter().filter(|f| f.remaining.load(Ordering::Relaxed) == 0) {
            self.file_done(f, verify, None);
        }
        let mut packs: Vec<(u32, Vec<Needed>)> =
            packs.into_iter().map(|(p, m)| (p, m.into_values().collect())).collect();
        packs.sort_by_key(|(p, _)| *p);
        let written =
            packs.into_par_iter().try_for_each(|(pack, needed)| self.restore_pack(pack, needed, &files, verify));
        // Files with a failed blob never reached `file_done`: remove what was written. When the
        // restore stops (a storage failure, an interrupt), so are the files not complete yet:
        // nothing unverified is left as file content, and no temporary file beside the target.
        let stopped = written.is_err();
        for f in files
            .iter()
            .filter(|f| f.failed.load(Ordering::Relaxed) || (stopped && f.remaining.load(Ordering::Relaxed) > 0))
        {
            let _ = fs::remove_file(&f.dest);
        }
        written?;
        for l in &links {
            let (first_path, first_dest) = match &l.to {
                LinkTo::Planned(i) => {
                    let Some(first) = files.get(*i) else { continue };
                    if first.failed.load(Ordering::Relaxed) {
                        self.report(
                            &l.path,
                            format!(
                                "not restored: it is a hard link of {}, which could not be restored",
                                first.path.display()
                            ),
                        );
                        continue;
                    }
                    (&first.path, first.target.as_ref().unwrap_or(&first.dest))
                }
                LinkTo::Kept(path, dest) => (path, dest),
            };
            if let Err(msg) = make_way(&l.dest, false) {
                self.report(&l.path, msg);
                continue;
            }
            match fs::hard_link(first_dest, &l.dest) {
                Ok(()) => {
                    self.progress.files.fetch_add(1, Ordering::Relaxed);
                    self.tell(l.action, &l.path, 0);
                }
                Err(e) => self.report(&l.path, format!("cannot create hard link to {}: {e}", first_path.display())),
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.depth));
        for d in &dirs {
            self.set_metadata(&d.node, &d.dest);
        }
        self.dirs_done.fetch_add(dirs.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Read the needed blobs of one pack with the one pack reader (merged range requests,
    /// each blob verified, another indexed copy tried for a damaged one) and write each
    /// wherever it belongs; a blob that cannot be read fails the files that need it.
    /// Errors: a storage failure, an interruption (the restore stops).
    fn restore_pack(&self, pack: u32, mut needed: Vec<Needed>, files: &[FileJob], verify: bool) -> Result<()> {
        let Some(info) = self.index.packs().get(pack as usize) else { return Ok(()) };
        needed.sort_by_key(|n| n.blob.offset);
        let read = PackRead {
            id: &info.id,
            salt: &info.salt,
            other_copies: Some(self.index),
            cancel: Some(&self.ctx.cancel),
            cached: false,
        };
        self.repo.read_pack_blobs(&read, &needed, |i, plain| {
            let Some(n) = needed.get(i) else { return };
            match plain {
                Ok(data) => {
                    for u in &n.uses {
                        if let Some(f) = files.get(u.file) {
                            self.write_blob(f, u.offset, &data, verify);
                        }
                    }
                }
                Err(e) => {
                    for u in &n.uses {
                        if let Some(f) = files.get(u.file) {
                            if !f.failed.swap(true, Ordering::Relaxed) {
                                self.damaged.fetch_add(1, Ordering::Relaxed);
                                self.report(&f.path, format!("not restored: {e}"));
                            }
                        }
                    }
                }
            }
        })
    }

    /// Write the verified blob `data` at `offset` in file `f` (creating it first when it is
    /// deferred); the file's last blob completes it ([`Restorer::file_done`]). Failures mark the
    /// file failed and are reported.
    fn write_blob(&self, f: &FileJob, offset: u64, data: &[u8], verify: bool) {
        if f.failed.load(Ordering::Relaxed) {
            return;
        }
        // A file is sized before its blobs land, reading as zeros: an all-zero blob is left as
        // a hole, so a sparse source (a database file, a disk image) restores sparse.
        let zeros = data.iter().all(|b| *b == 0);
        let written = if f.deferred {
            // Its only blob: create, write, keep the descriptor for the metadata.
            create_file(&f.dest)
                .and_then(|h| {
                    if zeros { h.set_len(data.len() as u64) } else { h.write_all_at(data, 0) }.map(|()| Some(h))
                })
                .map_err(|e| ("create", e))
        } else if zeros {
            Ok(None)
        } else {
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&f.dest)
                .and_then(|h| h.write_all_at(data, offset))
                .map(|()| None)
                .map_err(|e| ("write", e))
        };
        match written {
            Ok(handle) => {
                self.progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                if f.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.file_done(f, verify, handle.as_ref());
                }
            }
            Err((op, e)) => {
                if !f.failed.swap(true, Ordering::Relaxed) {
                    self.report(&f.path, format!("cannot {op}: {e}"));
                }
            }
        }
    }

    /// The last blob of a file landed: verify if asked, then set its metadata (through
    /// `handle`, the file open for writing, when there is one).
    fn file_done(&self, f: &FileJob, verify: bool, handle: Option<&fs::File>) {
        if f.failed.load(Ordering::Relaxed) {
            return;
        }
        if verify {
            if let Err(msg) = self.verify_file(&f.node, &f.dest) {
                f.failed.store(true, Ordering::Relaxed);
                self.report(&f.path, format!("verification failed, file removed: {msg}"));
                return;
            }
        }
        // Messages name the file's place in the target, not its temporary name.
        self.set_metadata_via(&f.node, &f.dest, handle, f.target.as_deref().unwrap_or(&f.dest));
        if let Some(target) = &f.target {
            if let Err(e) = fs::rename(&f.dest, target) {
                f.failed.store(true, Ordering::Relaxed);
                self.report(&f.path, format!("cannot move the restored file into place: {e}"));
                return;
            }
        }
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        self.tell(f.action, &f.path, f.node.size);
    }

    /// A new temporary name in the directory of `dest` (the rename over `dest` stays within
    /// one file system); the exclusive create of the file fails rather than follow anything
    /// found there.
    pub(super) fn temporary_beside(&self, dest: &Path) -> PathBuf {
        let n = self.temporaries.fetch_add(1, Ordering::Relaxed);
        dest.with_file_name(format!(".cairn-restore-{}-{n}.tmp", std::process::id()))
    }

    /// Make sure the directory for `snap_dir` and all its ancestors exist in the target:
    /// [`DirState::Created`] when this call created it. In a dry run nothing is created: the
    /// answer is what would be, and a regular file in the way is the same error.
    pub(super) fn ensure_dir(&self, snap_dir: &Path) -> std::io::Result<DirState> {
        let mut cur = self.target.clone();
        let mut state = DirState::Present;
        for c in snap_dir.components().skip(1) {
            cur.push(c);
            if self.dry_run {
                if state == DirState::Created {
                    continue;
                }
                match fs::symlink_metadata(&cur) {
                    Ok(m) if m.is_dir() => {}
                    Ok(m) if m.is_file() => return Err(file_in_the_way()),
                    Ok(_) => state = DirState::Created,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => state = DirState::Created,
                    Err(e) => return Err(e),
                }
            } else {
                state = if make_real_dir(&cur)? { DirState::Created } else { DirState::Present };
            }
        }
        Ok(state)
    }

    /// Create the symlink `node` at `dest` (never followed: the way is clear) with its
    /// metadata; true when made, and `action` told. Failures are reported under `path`.
    pub(super) fn restore_symlink(&self, node: &Node, path: &Path, dest: &Path, action: Action) -> bool {
        use std::os::unix::ffi::OsStrExt;
        match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.symlink_target), dest) {
            Ok(()) => {
                self.set_metadata(node, dest);
                self.progress.files.fetch_add(1, Ordering::Relaxed);
                self.tell(action, path, 0);
                true
            }
            Err(e) => {
                self.report(path, format!("cannot create symlink: {e}"));
                false
            }
        }
    }

    /// Create the special file `node` (a FIFO or a device) at `dest`; true when made. A socket
    /// is not made. Failures are reported under `path`.
    pub(super) fn restore_special(&self, node: &Node, path: &Path, dest: &Path) -> bool {
        use nix::sys::stat::{mknod, Mode, SFlag};
        let kind = match node.kind {
            NodeKind::Fifo => SFlag::S_IFIFO,
            NodeKind::CharDevice => SFlag::S_IFCHR,
            NodeKind::BlockDevice => SFlag::S_IFBLK,
            // A socket is recreated by the program that listens on it; it is only recorded.
            _ => return false,
        };
        match mknod(dest, kind, Mode::from_bits_truncate(node.mode & 0o7777), node.rdev as nix::libc::dev_t) {
            Ok(()) => true,
            Err(e) => {
                self.report(path, format!("cannot create {:?}: {e}", node.kind));
                false
            }
        }
    }

    /// Re-read a restored file and check each piece against its blob id.
    fn verify_file(&self, node: &Node, dest: &Path) -> std::result::Result<(), String> {
        use std::io::Read;
        let mut f = fs::File::open(dest).map_err(|e| e.to_string())?;
        for id in &node.content {
            let (_, loc) = self.index.get(id).ok_or("blob not in the index")?;
            let mut buf = vec![0u8; loc.raw_length as usize];
            f.read_exact(&mut buf).map_err(|e| e.to_string())?;
            if self.repo.blob_id(&buf) != *id {
                return Err(format!("content differs from blob {}", id.short()));
            }
        }
        let mut rest = [0u8; 1];
        if f.read(&mut rest).map_err(|e| e.to_string())? != 0 {
            return Err("file is longer than its snapshot content".into());
        }
        Ok(())
    }

    /// Ownership (as root), extended attributes, permissions and times; failures are
    /// reported, not fatal.
    pub(super) fn set_metadata(&self, node: &Node, dest: &Path) {
        self.set_metadata_via(node, dest, None, dest);
    }

    /// [`Restorer::set_metadata`], through `handle` (the file open for writing, no path
    /// look-ups) when there is one; failures are reported under `shown`.
    pub(super) fn set_metadata_via(&self, node: &Node, dest: &Path, handle: Option<&fs::File>, shown: &Path) {
        use std::os::fd::AsRawFd;
        if self.as_root {
            let (uid, gid) = (Some(nix::unistd::Uid::from_raw(node.uid)), Some(nix::unistd::Gid::from_raw(node.gid)));
            let owned = match handle {
                Some(f) => nix::unistd::fchown(f.as_raw_fd(), uid, gid),
                None => nix::unistd::fchownat(None, dest, uid, gid, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW),
            };
            if let Err(e) = owned {
                self.report(shown, format!("cannot set owner: {e}"));
            }
        }
        // After chown (which drops security.capability), before the mode (an ACL sets group bits).
        for msg in crate::xattrs::write(dest, handle, &node.xattrs) {
            self.report(shown, msg);
        }
        if node.kind != NodeKind::Symlink {
            let mode = fs::Permissions::from_mode(node.mode & 0o7777);
            let set = match handle {
                Some(f) => f.set_permissions(mode),
                None => fs::set_permissions(dest, mode),
            };
            if let Err(e) = set {
                self.report(shown, format!("cannot set permissions: {e}"));
            }
        }
        let mtime = filetime::FileTime::from_unix_time(node.mtime.secs, node.mtime.nanos);
        let timed = match handle {
            Some(f) => filetime::set_file_handle_times(f, Some(mtime), Some(mtime)),
            None => filetime::set_symlink_file_times(dest, mtime, mtime),
        };
        if let Err(e) = timed {
            self.report(shown, format!("cannot set times: {e}"));
        }
    }
}

/// Make `p` a real directory: keep one that is there, refuse a regular file there (an error
/// saying so), replace anything else (a planted symlink is removed, never followed). True when
/// this call created it (it is empty).
pub(super) fn make_real_dir(p: &Path) -> std::io::Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => return Ok(false),
        // A regular file is somebody's data, not the restore's to delete.
        Ok(m) if m.is_file() => return Err(file_in_the_way()),
        Ok(_) => fs::remove_file(p)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::create_dir(p) {
        Ok(()) => Ok(true),
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The error for a regular file where a directory is to be made.
fn file_in_the_way() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "a file is in the way (restore does not delete what is not in the snapshot unless asked to; move it away)",
    )
}

/// Remove `top` and everything below it, deepest first, walking an explicit stack (no
/// recursion, whatever the depth), never following a symlink and never entering another file
/// system (a mount point below is an error, and it and what contains it stay). `each` is told
/// of every entry removed (in a `dry` run: that would be, and nothing is). Errors: the first
/// failure; what was not removed yet stays.
pub(super) fn remove_tree(top: &Path, dry: bool, each: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(top)?;
    if !md.is_dir() {
        if !dry {
            fs::remove_file(top)?;
        }
        each(top);
        return Ok(());
    }
    let dev = md.dev();
    // (directory, its entries are gone): a directory is removed on its second visit.
    let mut stack = vec![(top.to_path_buf(), false)];
    while let Some((dir, emptied)) = stack.pop() {
        if emptied {
            if !dry {
                fs::remove_dir(&dir)?;
            }
            each(&dir);
            continue;
        }
        stack.push((dir.clone(), true));
        let mut entries: Vec<_> = fs::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if e.file_type()?.is_dir() {
                if fs::symlink_metadata(&p)?.dev() != dev {
                    return Err(std::io::Error::other(format!(
                        "{} is another file system (a mount point): not deleted",
                        p.display()
                    )));
                }
                stack.push((p, false));
            } else {
                if !dry {
                    fs::remove_file(&p)?;
                }
                each(&p);
            }
        }
    }
    Ok(())
}

/// Create a new file for writing, never through a symlink.
pub(super) fn create_file(dest: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).custom_flags(nix::libc::O_NOFOLLOW).mode(0o600).open(dest)
}

/// Clear the way for an entry of the snapshot at `p`. A directory there is removed only when
/// empty: one with entries is not the restore's to delete. A regular file's way (`file`) is
/// left as it is: true when something is there, to be replaced once the new file is complete.
/// Anything else there is removed (never followed). Errors: a message for the report.
pub(super) fn make_way(p: &Path, file: bool) -> std::result::Result<bool, String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => match fs::remove_dir(p) {
            Ok(()) => Ok(false),
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOTEMPTY) | Some(nix::libc::EEXIST)) => Err(format!(
                "not restored: a directory with entries is in the way at {} (restore does not delete what is not in the snapshot; move it away)",
                p.display()
            )),
            Err(e) => Err(format!("cannot remove the empty directory in the way: {e}")),
        },
        Ok(_) if file => Ok(true),
        Ok(_) => fs::remove_file(p).map(|()| false).map_err(|e| format!("cannot replace existing entry: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot replace existing entry: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_way_keeps_what_is_not_the_restores() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        // Nothing there: nothing to replace.
        assert_eq!(make_way(&p.join("none"), true), Ok(false));
        // A file in a file's way stays until the new one is complete.
        fs::write(p.join("f"), b"old").unwrap();
        assert_eq!(make_way(&p.join("f"), true), Ok(true));
        assert_eq!(fs::read(p.join("f")).unwrap(), b"old");
        // A planted symlink is removed, not followed.
        std::os::unix::fs::symlink(p.join("f"), p.join("l")).unwrap();
        assert_eq!(make_way(&p.join("l"), false), Ok(false));
        assert!(fs::symlink_metadata(p.join("l")).is_err());
        assert_eq!(fs::read(p.join("f")).unwrap(), b"old");
        // An empty directory goes, one with entries is reported and kept.
        fs::create_dir(p.join("empty")).unwrap();
        assert_eq!(make_way(&p.join("empty"), true), Ok(false));
        assert!(!p.join("empty").exists());
        fs::create_dir(p.join("full")).unwrap();
        fs::write(p.join("full/x"), b"x").unwrap();
        let msg = make_way(&p.join("full"), true).unwrap_err();
        assert!(msg.contains("directory with entries"), "{msg}");
        assert!(p.join("full/x").exists());
    }

    #[test]
    fn real_dirs_replace_links_not_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert!(make_real_dir(&p.join("d")).unwrap(), "created");
        assert!(!make_real_dir(&p.join("d")).unwrap(), "already there");
        fs::write(p.join("f"), b"data").unwrap();
        assert!(make_real_dir(&p.join("f")).is_err());
        assert_eq!(fs::read(p.join("f")).unwrap(), b"data");
        std::os::unix::fs::symlink(p.join("d"), p.join("l")).unwrap();
        assert!(make_real_dir(&p.join("l")).unwrap());
        assert!(fs::symlink_metadata(p.join("l")).unwrap().is_dir());
    }

    #[test]
    fn create_file_never_follows_or_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        create_file(&p.join("new")).unwrap();
        assert!(create_file(&p.join("new")).is_err());
        std::os::unix::fs::symlink(p.join("elsewhere"), p.join("l")).unwrap();
        assert!(create_file(&p.join("l")).is_err());
        assert!(!p.join("elsewhere").exists());
    }

    #[test]
    fn remove_tree_goes_deep_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("outside"), b"keep").unwrap();
        let top = p.join("top");
        let mut deep = top.clone();
        for _ in 0..2000 {
            deep.push("a");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(p.join("outside"), top.join("link")).unwrap();
        std::os::unix::fs::symlink(p, top.join("dirlink")).unwrap();

        let mut seen = 0;
        remove_tree(&top, true, &mut |_| seen += 1).unwrap();
        assert_eq!(seen, 2000 + 1 + 2 + 1, "the directories, f, the two links, the top: every entry told in a dry run");
        assert!(deep.join("f").exists(), "a dry run removed something");

        let mut told = Vec::new();
        remove_tree(&top, false, &mut |q| told.push(q.to_path_buf())).unwrap();
        assert_eq!(told.len(), seen);
        assert_eq!(told.last(), Some(&top), "the top goes last");
        assert!(!top.exists());
        assert_eq!(fs::read(p.join("outside")).unwrap(), b"keep");

        fs::write(p.join("single"), b"x").unwrap();
        let mut n = 0;
        remove_tree(&p.join("single"), false, &mut |_| n += 1).unwrap();
        assert_eq!(n, 1);
        assert!(!p.join("single").exists());
    }
}
