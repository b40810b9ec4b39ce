//! Restore: recreate a snapshot's tree under a target directory.
//!
//! Files land at `TARGET/<full original path>`, as restic does. Directories are walked in
//! parallel (rayon); each file's blobs are read, verified (authenticated decryption, then the
//! id is recomputed) and written in order. A file whose blob is damaged is removed and reported
//! with the pack id; nothing unverified is ever written as file content.
//!
//! Safety: every name comes from a tree and is checked to be one plain path component; any
//! existing entry in the way (a symlink planted in the target, say) is removed, never
//! followed, and files are opened with `O_NOFOLLOW`, so a restore cannot write outside TARGET.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::archiver::{Excludes, INTERRUPTED};
use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind, Tree};

/// Options of a restore.
#[derive(Default)]
pub struct RestoreOptions {
    /// Only paths matching one of these globs (and everything below a matching directory).
    pub includes: Vec<String>,
    /// Skip paths matching these globs (and everything below).
    pub excludes: Vec<String>,
    /// Re-read every written file and check it against its blob ids.
    pub verify: bool,
}

/// Figures and failures of a restore.
#[derive(Default, Debug)]
pub struct RestoreReport {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries that could not be restored: snapshot path and reason.
    pub errors: Vec<(String, String)>,
}

/// Live counters for a progress display.
#[derive(Default)]
pub struct RestoreProgress {
    /// Files done.
    pub files: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

struct Restorer<'a> {
    repo: &'a Repository,
    index: &'a Index,
    target: PathBuf,
    includes: Option<Excludes>,
    excludes: Excludes,
    verify: bool,
    as_root: bool,
    hardlinks: Mutex<HashMap<(u64, u64), HardLink>>,
    errors: Mutex<Vec<(String, String)>>,
    files: AtomicU64,
    dirs: AtomicU64,
    progress: &'a RestoreProgress,
}

/// Restore the tree `root` of a snapshot into `target`.
/// Per-entry failures are collected in [`RestoreReport::errors`]; errors reading the trees
/// themselves, or creating `target`, are returned.
pub fn restore(repo: &Repository, index: &Index, root: &BlobId, target: &Path, opts: &RestoreOptions, progress: &RestoreProgress) -> Result<RestoreReport> {
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let r = Restorer {
        repo,
        index,
        target: target.to_path_buf(),
        includes: if opts.includes.is_empty() { None } else { Some(Excludes::new(&opts.includes)?) },
        excludes: Excludes::new(&opts.excludes)?,
        verify: opts.verify,
        as_root: nix::unistd::geteuid().is_root(),
        hardlinks: Mutex::new(HashMap::new()),
        errors: Mutex::new(Vec::new()),
        files: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        progress,
    };
    r.restore_tree(root, Path::new("/"), r.includes.is_none(), true)?;
    let errors = std::mem::take(&mut *r.errors.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(RestoreReport { files: r.files.load(Ordering::Relaxed), dirs: r.dirs.load(Ordering::Relaxed), bytes: progress.bytes.load(Ordering::Relaxed), errors })
}

impl Restorer<'_> {
    fn report(&self, path: &Path, msg: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.display().to_string(), msg));
    }

    fn dest(&self, snap_path: &Path) -> PathBuf {
        self.target.join(snap_path.strip_prefix("/").unwrap_or(snap_path))
    }

    /// Make sure the directory for `snap_dir` and all its ancestors exist in the target,
    /// replacing anything that is not a real directory (a symlink is removed, never followed).
    fn ensure_dir(&self, snap_dir: &Path) -> std::io::Result<()> {
        let mut cur = self.target.clone();
        for c in snap_dir.components().skip(1) {
            cur.push(c);
            make_real_dir(&cur)?;
        }
        Ok(())
    }

    /// Create the directory for `snap_dir`, whose parent is known to exist in the target.
    fn make_dir(&self, snap_dir: &Path) -> std::io::Result<()> {
        make_real_dir(&self.dest(snap_dir))
    }

    /// Restore the entries of tree `id`, found at snapshot path `dir`. `selected`: an
    /// ancestor matched the includes (or there are none). `dir_ready`: `dir` already exists in
    /// the target. Returns true if anything was restored.
    fn restore_tree(&self, id: &BlobId, dir: &Path, selected: bool, dir_ready: bool) -> Result<bool> {
        let tree: Tree = self.repo.load_tree(self.index, id)?;
        let results: Vec<Result<bool>> = tree.nodes.par_iter().map(|n| self.restore_node(n, dir, selected, dir_ready)).collect();
        let mut any = false;
        for r in results {
            any |= r?;
        }
        Ok(any)
    }

    fn restore_node(&self, node: &Node, dir: &Path, selected: bool, dir_ready: bool) -> Result<bool> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
        if !Tree::valid_name(&node.name) {
            self.report(&path, "invalid name in the snapshot (skipped)".into());
            return Ok(false);
        }
        if self.excludes.is_match(&path) {
            return Ok(false);
        }
        let selected = selected || self.includes.as_ref().is_some_and(|i| i.is_match(&path));
        if node.kind == NodeKind::Dir {
            let Some(sub) = node.subtree else {
                self.report(&path, "directory without a subtree in the snapshot".into());
                return Ok(false);
            };
            if selected {
                let made = if dir_ready { self.make_dir(&path) } else { self.ensure_dir(&path) };
                if let Err(e) = made {
                    self.report(&path, format!("cannot create directory: {e}"));
                    return Ok(false);
                }
            }
            let any = self.restore_tree(&sub, &path, selected, selected)?;
            if selected || any {
                self.dirs.fetch_add(1, Ordering::Relaxed);
                self.set_metadata(node, &self.dest(&path));
                return Ok(true);
            }
            return Ok(false);
        }
        if !selected {
            return Ok(false);
        }
        if !dir_ready {
            if let Err(e) = self.ensure_dir(dir) {
                self.report(&path, format!("cannot create parent directory: {e}"));
                return Ok(false);
            }
        }
        let dest = self.dest(&path);
        if let Err(e) = remove_existing(&dest) {
            self.report(&path, format!("cannot replace existing entry: {e}"));
            return Ok(false);
        }
        let ok = match node.kind {
            NodeKind::File => self.restore_file(node, &path, &dest)?,
            NodeKind::Symlink => match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.symlink_target), &dest) {
                Ok(()) => true,
                Err(e) => {
                    self.report(&path, format!("cannot create symlink: {e}"));
                    false
                }
            },
            _ => self.restore_special(node, &path, &dest),
        };
        if ok {
            self.set_metadata(node, &dest);
        }
        Ok(ok)
    }

    fn restore_special(&self, node: &Node, path: &Path, dest: &Path) -> bool {
        use nix::sys::stat::{mknod, Mode, SFlag};
        let kind = match node.kind {
            NodeKind::Fifo => SFlag::S_IFIFO,
            NodeKind::CharDevice => SFlag::S_IFCHR,
            NodeKind::BlockDevice => SFlag::S_IFBLK,
            NodeKind::Socket => {
                // A socket is recreated by the program that listens on it; it is only recorded.
                return false;
            }
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

    /// Restore a regular file. The first name of a hard-linked inode is created while the link
    /// map is locked, so a later name always finds it on disk and is linked to it; if the
    /// first name's content then fails, the names linked to it meanwhile are removed too.
    /// Returns true when the file was restored.
    fn restore_file(&self, node: &Node, path: &Path, dest: &Path) -> Result<bool> {
        let key = (node.links > 1).then_some((node.device, node.inode));
        let f = {
            let mut links = key.map(|_| self.hardlinks.lock().unwrap_or_else(|p| p.into_inner()));
            if let (Some(k), Some(map)) = (key, links.as_mut()) {
                if let Some(entry) = map.get_mut(&k) {
                    return Ok(self.link_to_first(entry, path, dest));
                }
            }
            let f = match create_file(dest) {
                Ok(f) => f,
                Err(e) => {
                    self.report(path, format!("cannot create file: {e}"));
                    return Ok(false);
                }
            };
            if let (Some(k), Some(map)) = (key, links.as_mut()) {
                map.insert(k, HardLink { first: dest.to_path_buf(), state: LinkState::Writing(Vec::new()) });
            }
            f
        };
        let outcome = self.write_content(node, path, dest, f);
        if let Some(k) = key {
            let mut map = self.hardlinks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = map.get_mut(&k) {
                let ok = matches!(outcome, Ok(true));
                if let LinkState::Writing(linked) = std::mem::replace(&mut entry.state, if ok { LinkState::Done } else { LinkState::Failed }) {
                    if !ok {
                        for l in linked {
                            let _ = fs::remove_file(&l);
                            self.report(&l, "not restored: it is a hard link of a file that could not be restored".into());
                        }
                    }
                }
            }
        }
        outcome
    }

    /// A later name of a hard-linked inode: link it to the first name unless that failed.
    fn link_to_first(&self, entry: &mut HardLink, path: &Path, dest: &Path) -> bool {
        if matches!(entry.state, LinkState::Failed) {
            self.report(path, format!("not restored: it is a hard link of {}, which could not be restored", entry.first.display()));
            return false;
        }
        match fs::hard_link(&entry.first, dest) {
            Ok(()) => {
                if let LinkState::Writing(linked) = &mut entry.state {
                    linked.push(dest.to_path_buf());
                }
                self.files.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.report(path, format!("cannot create hard link to {}: {e}", entry.first.display()));
                false
            }
        }
    }

    /// Write a file's content into `f`; on a damaged blob the partial file is removed and the
    /// damage reported.
    fn write_content(&self, node: &Node, path: &Path, dest: &Path, mut f: fs::File) -> Result<bool> {
        let mut written = 0u64;
        for id in &node.content {
            if INTERRUPTED.load(Ordering::Relaxed) {
                let _ = fs::remove_file(dest);
                return Err(Error::Interrupted);
            }
            let data = match self.repo.read_blob(self.index, BlobType::Data, id) {
                Ok(d) => d,
                Err(e) => {
                    drop(f);
                    let _ = fs::remove_file(dest);
                    self.report(path, format!("not restored: {e}"));
                    return Ok(false);
                }
            };
            if let Err(e) = f.write_all(&data) {
                drop(f);
                let _ = fs::remove_file(dest);
                self.report(path, format!("cannot write: {e}"));
                return Ok(false);
            }
            written += data.len() as u64;
            self.progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        // No fsync per file: a restore interrupted by a crash is simply run again, and a
        // sync per file costs more than the writes on trees of many small files.
        drop(f);
        if written != node.size {
            self.report(path, format!("restored {written} bytes but the snapshot records {} (the file changed while it was backed up)", node.size));
        }
        if self.verify {
            if let Err(msg) = self.verify_file(node, dest) {
                let _ = fs::remove_file(dest);
                self.report(path, format!("verification failed, file removed: {msg}"));
                return Ok(false);
            }
        }
        self.files.fetch_add(1, Ordering::Relaxed);
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Re-read a restored file and check each piece against its blob id.
    fn verify_file(&self, node: &Node, dest: &Path) -> std::result::Result<(), String> {
        use std::io::Read;
        let mut f = fs::File::open(dest).map_err(|e| e.to_string())?;
        for id in &node.content {
            let (_, loc) = self.index.get(id).ok_or("blob not in the index")?;
            let mut buf = vec![0u8; loc.raw_length as usize];
            f.read_exact(&mut buf).map_err(|e| e.to_string())?;
            if self.repo.master().blob_id(&buf) != *id {
                return Err(format!("content differs from blob {}", id.short()));
            }
        }
        let mut rest = [0u8; 1];
        if f.read(&mut rest).map_err(|e| e.to_string())? != 0 {
            return Err("file is longer than its snapshot content".into());
        }
        Ok(())
    }

    /// Ownership (as root), permissions and times; failures are reported, not fatal.
    fn set_metadata(&self, node: &Node, dest: &Path) {
        let is_link = node.kind == NodeKind::Symlink;
        if self.as_root {
            if let Err(e) = nix::unistd::fchownat(
                None,
                dest,
                Some(nix::unistd::Uid::from_raw(node.uid)),
                Some(nix::unistd::Gid::from_raw(node.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                self.report(dest, format!("cannot set owner: {e}"));
            }
        }
        if !is_link {
            if let Err(e) = fs::set_permissions(dest, fs::Permissions::from_mode(node.mode & 0o7777)) {
                self.report(dest, format!("cannot set permissions: {e}"));
            }
        }
        let mtime = filetime::FileTime::from_unix_time(node.mtime.secs, node.mtime.nanos);
        if let Err(e) = filetime::set_symlink_file_times(dest, mtime, mtime) {
            self.report(dest, format!("cannot set times: {e}"));
        }
    }
}

/// Make `p` a real directory: keep one that is there, replace anything else (a planted
/// symlink is removed, never followed).
fn make_real_dir(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(p)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create a new file for writing, never through a symlink.
fn create_file(dest: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).custom_flags(nix::libc::O_NOFOLLOW).mode(0o600).open(dest)
}

/// The first restored name of a hard-linked inode and how its content went.
struct HardLink {
    first: PathBuf,
    state: LinkState,
}

enum LinkState {
    /// Content still being written; the names linked to it so far.
    Writing(Vec<PathBuf>),
    /// Content complete.
    Done,
    /// Content could not be restored; later names are not linked.
    Failed,
}

/// Remove whatever is at `p` (file, symlink, or empty/non-empty directory left by an earlier
/// restore of a different type), without following symlinks.
fn remove_existing(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
