//! Restore: recreate a snapshot's tree under a target directory, planned by pack.
//!
//! Files land at `TARGET/<full original path>`, as restic does. The plan follows restic's
//! restorer (`internal/restorer/doc.go`) in spirit:
//!
//! 1. Walk the snapshot's trees (in parallel; below [`PARALLEL_DEPTH`] levels one entry at a
//!    time with a stack of its own, so no depth overflows the call stack). Directories,
//!    symlinks and special files are created at once; each regular file is created empty at
//!    its final size, and each of its blobs is noted under the pack that holds it, with the
//!    file offset it belongs at.
//! 2. Process the packs in parallel: read each pack's needed blobs in as few range requests as
//!    possible (neighbouring blobs are read together), verify every blob (authenticated
//!    decryption, then its id recomputed), and write it at every place it belongs (`pwrite`);
//!    an all-zero blob is not written, leaving a hole (sparse files stay sparse).
//!    A file whose last blob lands gets its metadata.
//! 3. Files with a damaged or missing blob are removed and reported with the pack and blob;
//!    nothing unverified is ever left as file content. A file that replaces one already in
//!    the target is written under a temporary name beside it and renamed over it only once
//!    complete, so a damaged snapshot copy never costs the local one. Then hard links are
//!    made and directories get their metadata, deepest first.
//!
//! Safety: every name comes from a tree and is checked to be one plain path component; any
//! entry in the way (a planted symlink, say) is removed, never followed, and files are opened
//! with `O_NOFOLLOW`, so a restore cannot write outside TARGET. A directory with entries in
//! the way of a file is never removed: the conflict is reported and the rest restored.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::archiver::{Patterns, INTERRUPTED};
use crate::backend::FileKind;
use crate::blob::{self, BlobType};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::{Index, Location};
use crate::repository::Repository;
use crate::tree::{Node, NodeKind, Tree};

/// Neighbouring blobs of one pack closer than this (bytes) are fetched in one request.
const MAX_GAP: u64 = 1 << 20;
/// Largest single range request, bytes (bounds memory: one range per thread at a time).
const MAX_RANGE: u64 = 8 << 20;
// Trees below this depth are walked by [`Restorer::walk_deep`] (a stack of its own, one
// entry at a time) instead of in parallel on the call stack.
use crate::walker::PARALLEL_DEPTH;

/// Options of a restore.
#[derive(Default)]
pub struct RestoreOptions {
    /// Only paths matching one of these globs (and everything below a matching directory).
    pub includes: Vec<String>,
    /// Skip paths matching these globs (and everything below).
    pub excludes: Vec<String>,
    /// Re-read every written file and check it against its blob ids.
    pub verify: bool,
    /// Packs processed at once (0: the number of CPUs).
    pub threads: usize,
}

/// Figures and failures of a restore.
#[derive(Default, Debug)]
pub struct RestoreReport {
    /// Files written (hard links included).
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries that could not be restored: snapshot path and reason.
    pub errors: Vec<(String, String)>,
    /// How many of `errors` are files whose stored content is damaged or missing in the
    /// repository (a verified read failed), as opposed to local failures (a full disk...).
    pub damaged: u64,
}

/// Live counters for a progress display.
#[derive(Default)]
pub struct RestoreProgress {
    /// Files done.
    pub files: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

/// A regular file being restored.
struct FileJob {
    path: PathBuf,
    /// Where the content is written.
    dest: PathBuf,
    /// Where the file goes once complete, when not `dest`: an entry was there, and stays
    /// until the new content is complete and verified (`dest` is then a temporary name beside
    /// it, renamed over it).
    target: Option<PathBuf>,
    node: Node,
    remaining: AtomicUsize,
    failed: AtomicBool,
    /// A file of one blob (most files) is created only when its blob lands, written and given
    /// its metadata through one open descriptor: half the system calls of the general path.
    deferred: bool,
}

/// One place a blob is written to.
#[derive(Clone, Copy)]
struct BlobUse {
    file: usize,
    offset: u64,
}

/// One blob needed from a pack, and where it goes.
struct Needed {
    id: BlobId,
    loc: Location,
    uses: Vec<BlobUse>,
}

/// Whether a directory of the snapshot exists in the target while its entries are walked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirState {
    /// Not created (not selected by the includes): made when an entry below is selected.
    Missing,
    /// There, perhaps with entries from before that are replaced.
    Present,
    /// Created by this restore, so empty.
    Created,
}

/// What [`Restorer::enter_node`] did with an entry.
enum Entered {
    /// Restored or planned (true), or left out (false).
    Done(bool),
    /// A directory, created when selected: its entries are walked next.
    Dir { tree: BlobId, path: PathBuf, dest: PathBuf, selected: bool, state: DirState },
}

struct DirJob {
    dest: PathBuf,
    depth: usize,
    node: Node,
}

struct LinkJob {
    path: PathBuf,
    dest: PathBuf,
    first: usize,
}

#[derive(Default)]
struct Plan {
    files: Vec<FileJob>,
    dirs: Vec<DirJob>,
    links: Vec<LinkJob>,
    first_names: HashMap<(u64, u64), usize>,
    packs: HashMap<u32, HashMap<BlobId, Needed>>,
}

struct Restorer<'a> {
    repo: &'a Repository,
    index: &'a Index,
    target: PathBuf,
    includes: Option<Patterns>,
    excludes: Patterns,
    as_root: bool,
    plan: Mutex<Plan>,
    errors: Mutex<Vec<(String, String)>>,
    /// Files not restored because their stored content is damaged.
    damaged: AtomicU64,
    dirs_done: AtomicU64,
    /// Temporary file names handed out (see [`Restorer::temporary_beside`]).
    temporaries: AtomicU64,
    progress: &'a RestoreProgress,
}

/// Restore the tree `root` of a snapshot into `target`.
/// Per-entry failures are collected in [`RestoreReport::errors`]; errors reading the trees
/// themselves, creating `target`, or an interruption are returned.
pub fn restore(
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreReport> {
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let r = Restorer {
        repo,
        index,
        target: target.to_path_buf(),
        includes: if opts.includes.is_empty() { None } else { Some(Patterns::new(&opts.includes)?) },
        excludes: Patterns::new(&opts.excludes)?,
        as_root: nix::unistd::geteuid().is_root(),
        plan: Mutex::new(Plan::default()),
        errors: Mutex::new(Vec::new()),
        damaged: AtomicU64::new(0),
        dirs_done: AtomicU64::new(0),
        temporaries: AtomicU64::new(0),
        progress,
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start restore threads: {e}")))?;
    pool.install(|| -> Result<()> {
        r.walk(root, Path::new("/"), 0, r.includes.is_none(), DirState::Present)?;
        let plan = std::mem::take(&mut *r.plan.lock().unwrap_or_else(|p| p.into_inner()));
        r.run(plan, opts.verify)
    })?;
    let mut errors = std::mem::take(&mut *r.errors.lock().unwrap_or_else(|p| p.into_inner()));
    errors.sort();
    Ok(RestoreReport {
        files: progress.files.load(Ordering::Relaxed),
        dirs: r.dirs_done.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        errors,
        damaged: r.damaged.load(Ordering::Relaxed),
    })
}

impl Restorer<'_> {
    fn report(&self, path: &Path, msg: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.display().to_string(), msg));
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dest(&self, snap_path: &Path) -> PathBuf {
        self.target.join(snap_path.strip_prefix("/").unwrap_or(snap_path))
    }

    /// Phase 1: walk tree `id` at snapshot path `dir`. `selected`: an ancestor matched the
    /// includes (or there are none). `state`: whether `dir` exists in the target. Entries are
    /// walked in parallel down to [`PARALLEL_DEPTH`], below that by [`Restorer::walk_deep`].
    fn walk(&self, id: &BlobId, dir: &Path, depth: usize, selected: bool, state: DirState) -> Result<bool> {
        let tree: Tree = self.repo.load_tree(self.index, id)?;
        let results: Vec<Result<bool>> =
            tree.nodes.par_iter().map(|n| self.walk_node(n, dir, depth, selected, state)).collect();
        let mut any = false;
        for r in results {
            any |= r?;
        }
        Ok(any)
    }

    /// [`Restorer::walk`] without recursion: one partly walked tree per level on a stack of
    /// its own, entries one at a time, so any depth works.
    fn walk_deep(&self, id: &BlobId, dir: &Path, depth: usize, selected: bool, state: DirState) -> Result<bool> {
        /// A tree being walked; `dir`: its directory entry (node, target path), for the
        /// directory's own plan once its entries are done (none for the tree walk_deep starts at).
        struct Frame {
            nodes: std::vec::IntoIter<Node>,
            path: PathBuf,
            depth: usize,
            selected: bool,
            state: DirState,
            any: bool,
            dir: Option<(Node, PathBuf)>,
        }
        let nodes = self.repo.load_tree(self.index, id)?.nodes.into_iter();
        let mut stack = vec![Frame { nodes, path: dir.to_path_buf(), depth, selected, state, any: false, dir: None }];
        loop {
            let Some(top) = stack.last_mut() else { return Ok(false) };
            let Some(node) = top.nodes.next() else {
                let Some(done) = stack.pop() else { return Ok(false) };
                let Some((node, dest)) = done.dir else { return Ok(done.any) };
                let any = self.dir_done(&node, dest, done.depth.saturating_sub(1), done.selected, done.any);
                if let Some(up) = stack.last_mut() {
                    up.any |= any;
                }
                continue;
            };
            match self.enter_node(&node, &top.path, top.selected, top.state)? {
                Entered::Done(any) => top.any |= any,
                Entered::Dir { tree, path, dest, selected, state } => {
                    let nodes = self.repo.load_tree(self.index, &tree)?.nodes.into_iter();
                    let depth = top.depth + 1;
                    stack.push(Frame { nodes, path, depth, selected, state, any: false, dir: Some((node, dest)) });
                }
            }
        }
    }

    fn walk_node(&self, node: &Node, dir: &Path, depth: usize, selected: bool, state: DirState) -> Result<bool> {
        match self.enter_node(node, dir, selected, state)? {
            Entered::Done(any) => Ok(any),
            Entered::Dir { tree, path, dest, selected, state } => {
                let any = if depth + 1 < PARALLEL_DEPTH {
                    self.walk(&tree, &path, depth + 1, selected, state)?
                } else {
                    self.walk_deep(&tree, &path, depth + 1, selected, state)?
                };
                Ok(self.dir_done(node, dest, depth, selected, any))
            }
        }
    }

    /// A directory's entries are walked (`any`: one of them is restored): plan its metadata
    /// if it is restored itself. True when it is.
    fn dir_done(&self, node: &Node, dest: PathBuf, depth: usize, selected: bool, any: bool) -> bool {
        if selected || any {
            self.plan().dirs.push(DirJob { dest, depth, node: node.clone() });
            return true;
        }
        false
    }

    /// Restore or plan one entry of directory `dir`; a directory is created (when selected)
    /// and returned for its entries to be walked.
    fn enter_node(&self, node: &Node, dir: &Path, selected: bool, state: DirState) -> Result<Entered> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
        if !Tree::valid_name(&node.name) {
            self.report(&path, "invalid name in the snapshot (skipped)".into());
            return Ok(Entered::Done(false));
        }
        if self.excludes.is_match(&path) {
            return Ok(Entered::Done(false));
        }
        let selected = selected || self.includes.as_ref().is_some_and(|i| i.is_match(&path));
        let dest = self.dest(&path);
        if node.kind == NodeKind::Dir {
            let Some(sub) = node.subtree else {
                self.report(&path, "directory without a subtree in the snapshot".into());
                return Ok(Entered::Done(false));
            };
            let mut sub_state = DirState::Missing;
            if selected {
                let made = match state {
                    DirState::Missing => self.ensure_dir(&path).map(|()| false),
                    _ => make_real_dir(&dest),
                };
                match made {
                    Ok(true) => sub_state = DirState::Created,
                    Ok(false) => sub_state = DirState::Present,
                    Err(e) => {
                        self.report(&path, format!("cannot create directory: {e}"));
                        return Ok(Entered::Done(false));
                    }
                }
            }
            return Ok(Entered::Dir { tree: sub, path, dest, selected, state: sub_state });
        }
        Ok(Entered::Done(self.restore_entry(node, path, dest, selected, state, dir)))
    }

    /// Restore (or plan, for a regular file) a non-directory entry; true when it is restored.
    fn restore_entry(
        &self,
        node: &Node,
        path: PathBuf,
        dest: PathBuf,
        selected: bool,
        state: DirState,
        dir: &Path,
    ) -> bool {
        if !selected {
            return false;
        }
        if state == DirState::Missing {
            if let Err(e) = self.ensure_dir(dir) {
                self.report(&path, format!("cannot create parent directory: {e}"));
                return false;
            }
        }
        // In a directory this restore created, nothing is in the way (and whatever another
        // process might plant there makes the exclusive create fail, never followed).
        let mut replace = false;
        if state != DirState::Created {
            match make_way(&dest, node.kind == NodeKind::File) {
                Ok(r) => replace = r,
                Err(e) => {
                    self.report(&path, e);
                    return false;
                }
            }
        }
        match node.kind {
            NodeKind::File => self.plan_file(node, path, dest, replace),
            NodeKind::Symlink => {
                match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.symlink_target), &dest) {
                    Ok(()) => {
                        self.set_metadata(node, &dest);
                        self.progress.files.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(e) => {
                        self.report(&path, format!("cannot create symlink: {e}"));
                        false
                    }
                }
            }
            _ => {
                let ok = self.restore_special(node, &path, &dest);
                if ok {
                    self.set_metadata(node, &dest);
                }
                ok
            }
        }
    }

    /// Create a regular file at its final size and note its blobs under their packs.
    /// `replace`: an entry at `dest` stays until the file is complete (it is written to a
    /// temporary file beside it, renamed over `dest` once done).
    fn plan_file(&self, node: &Node, path: PathBuf, dest: PathBuf, replace: bool) -> bool {
        let link_key = (node.links > 1).then_some((node.device, node.inode));
        // For a hard-linked inode, the plan stays locked from the look-up to the insertion,
        // so exactly one name becomes the file and the others become links to it.
        let mut held = None;
        if let Some(k) = link_key {
            let mut plan = self.plan();
            if let Some(&first) = plan.first_names.get(&k) {
                plan.links.push(LinkJob { path, dest, first });
                return true;
            }
            held = Some(plan);
        }
        let mut locs = Vec::with_capacity(node.content.len());
        let mut size = 0u64;
        for id in &node.content {
            match self.index.get(id) {
                Some((_, loc)) if loc.blob_type == BlobType::Data => {
                    locs.push((*id, loc, size));
                    size += loc.raw_length as u64;
                }
                _ => {
                    self.report(&path, format!("not restored: data blob {} is not in the index", id.short()));
                    return false;
                }
            }
        }
        if size != node.size {
            self.report(
                &path,
                format!(
                    "the snapshot's content is {size} bytes but its size is recorded as {} (not restored)",
                    node.size
                ),
            );
            return false;
        }
        let (dest, target) = if replace { (self.temporary_beside(&dest), Some(dest)) } else { (dest, None) };
        let deferred = locs.len() == 1;
        if !deferred {
            let made = create_file(&dest).and_then(|f| f.set_len(size));
            if let Err(e) = made {
                let _ = fs::remove_file(&dest);
                self.report(&path, format!("cannot create file: {e}"));
                return false;
            }
        }
        let mut plan = match held {
            Some(p) => p,
            None => self.plan(),
        };
        let n = plan.files.len();
        plan.files.push(FileJob {
            path,
            dest,
            target,
            node: node.clone(),
            remaining: AtomicUsize::new(locs.len()),
            failed: AtomicBool::new(false),
            deferred,
        });
        if let Some(k) = link_key {
            plan.first_names.insert(k, n);
        }
        for (id, loc, offset) in locs {
            plan.packs
                .entry(loc.pack)
                .or_default()
                .entry(id)
                .or_insert_with(|| Needed { id, loc, uses: Vec::new() })
                .uses
                .push(BlobUse { file: n, offset });
        }
        true
    }

    /// Phases 2 and 3.
    fn run(&self, plan: Plan, verify: bool) -> Result<()> {
        let Plan { files, mut dirs, links, packs, .. } = plan;
        // Files without content are complete already.
        for f in files.iter().filter(|f| f.node.content.is_empty()) {
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
            let Some(first) = files.get(l.first) else { continue };
            if first.failed.load(Ordering::Relaxed) {
                self.report(
                    &l.path,
                    format!("not restored: it is a hard link of {}, which could not be restored", first.path.display()),
                );
                continue;
            }
            let first_dest = first.target.as_ref().unwrap_or(&first.dest);
            if let Err(msg) = make_way(&l.dest, false) {
                self.report(&l.path, msg);
                continue;
            }
            match fs::hard_link(first_dest, &l.dest) {
                Ok(()) => {
                    self.progress.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.report(&l.path, format!("cannot create hard link to {}: {e}", first.path.display())),
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.depth));
        for d in &dirs {
            self.set_metadata(&d.node, &d.dest);
        }
        self.dirs_done.fetch_add(dirs.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Read the needed blobs of one pack in few range requests, verify each, and write it
    /// wherever it belongs.
    fn restore_pack(&self, pack: u32, mut needed: Vec<Needed>, files: &[FileJob], verify: bool) -> Result<()> {
        let Some(info) = self.index.packs().get(pack as usize) else { return Ok(()) };
        let name = info.id.to_hex();
        let key = self.repo.master().file_key(&info.salt);
        needed.sort_by_key(|n| n.loc.offset);
        let mut i = 0;
        while i < needed.len() {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            // Extend the range over neighbours.
            let start = needed[i].loc.offset as u64;
            let mut end = start + needed[i].loc.length as u64;
            let mut j = i + 1;
            while j < needed.len() {
                let (o, l) = (needed[j].loc.offset as u64, needed[j].loc.length as u64);
                if o > end + MAX_GAP || o + l - start > MAX_RANGE {
                    break;
                }
                end = end.max(o + l);
                j += 1;
            }
            let range = match self.repo.backend().read_range(FileKind::Pack, &name, start, end - start) {
                Ok(r) => Ok(r),
                // The storage failing is not damage: stop, the user retries later.
                Err(e) => match Error::stored_read(format!("pack {name}"), e) {
                    e if e.is_storage_failure() => return Err(e),
                    Error::Corrupt { detail, .. } => Err(detail),
                    e => Err(e.to_string()),
                },
            };
            for n in &needed[i..j] {
                let what = || format!("data blob {} in pack {}", n.id.short(), name);
                let plain = range.as_ref().map_err(|e| Error::corrupt(what(), e.clone())).and_then(|buf| {
                    let s = (n.loc.offset as u64 - start) as usize;
                    let stored =
                        buf.get(s..s + n.loc.length as usize).ok_or_else(|| Error::corrupt(what(), "short read"))?;
                    blob::open(
                        self.repo.master(),
                        &key,
                        n.loc.offset as u64,
                        BlobType::Data,
                        &n.id,
                        n.loc.raw_length,
                        stored,
                        &what,
                    )
                });
                // A damaged copy: another indexed copy may be sound (`backup --force` stores one).
                let plain = match plain {
                    Err(e @ Error::Corrupt { .. }) => {
                        self.repo.read_blob_other_copies(self.index, BlobType::Data, &n.id).map_err(|_| e)
                    }
                    p => p,
                };
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
            }
            i = j;
        }
        Ok(())
    }

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
    }

    /// A new temporary name in the directory of `dest` (the rename over `dest` stays within
    /// one file system); the exclusive create of the file fails rather than follow anything
    /// found there.
    fn temporary_beside(&self, dest: &Path) -> PathBuf {
        let n = self.temporaries.fetch_add(1, Ordering::Relaxed);
        dest.with_file_name(format!(".cairn-restore-{}-{n}.tmp", std::process::id()))
    }

    /// Make sure the directory for `snap_dir` and all its ancestors exist in the target.
    fn ensure_dir(&self, snap_dir: &Path) -> std::io::Result<()> {
        let mut cur = self.target.clone();
        for c in snap_dir.components().skip(1) {
            cur.push(c);
            make_real_dir(&cur)?;
        }
        Ok(())
    }

    fn restore_special(&self, node: &Node, path: &Path, dest: &Path) -> bool {
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

    /// Ownership (as root), extended attributes, permissions and times; failures are
    /// reported, not fatal.
    fn set_metadata(&self, node: &Node, dest: &Path) {
        self.set_metadata_via(node, dest, None, dest);
    }

    /// [`Restorer::set_metadata`], through `handle` (the file open for writing, no path
    /// look-ups) when there is one; failures are reported under `shown`.
    fn set_metadata_via(&self, node: &Node, dest: &Path, handle: Option<&fs::File>, shown: &Path) {
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
fn make_real_dir(p: &Path) -> std::io::Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => return Ok(false),
        // A regular file is somebody's data, not the restore's to delete.
        Ok(m) if m.is_file() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file is in the way (restore does not delete what is not in the snapshot; move it away)",
            ))
        }
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

/// Create a new file for writing, never through a symlink.
fn create_file(dest: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).custom_flags(nix::libc::O_NOFOLLOW).mode(0o600).open(dest)
}

/// Clear the way for an entry of the snapshot at `p`. A directory there is removed only when
/// empty: one with entries is not the restore's to delete. A regular file's way (`file`) is
/// left as it is: true when something is there, to be replaced once the new file is complete.
/// Anything else there is removed (never followed). Errors: a message for the report.
fn make_way(p: &Path, file: bool) -> std::result::Result<bool, String> {
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
