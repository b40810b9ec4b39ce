//! What to restore: the walk of the snapshot's trees with the shared tree streamer (filters,
//! directories created, files planned) and the blobs each pack gives (read by
//! [`crate::repository::Repository::read_pack_blobs`]).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::write::{create_file, make_real_dir, make_way, remove_tree};
use super::{Action, Overwrite, Restorer};
use crate::error::Result;
use crate::id::BlobId;
use crate::repository::PackBlob;
use crate::tree::stream::{Step, TreeStream};
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// What is at an entry's place in the target (from `lstat`, never following a symlink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Existing {
    /// A regular file.
    pub file: bool,
    /// A directory.
    pub dir: bool,
    /// Its size, bytes.
    pub size: u64,
    /// Its modification time.
    pub mtime: Timestamp,
}

impl Existing {
    /// From `lstat`'s answer.
    pub fn of(md: &fs::Metadata) -> Self {
        Existing {
            file: md.file_type().is_file(),
            dir: md.file_type().is_dir(),
            size: md.len(),
            mtime: Timestamp { secs: md.mtime(), nanos: u32::try_from(md.mtime_nsec()).unwrap_or(0) },
        }
    }
}

/// What [`decide`] says to do with a snapshot entry whose place in the target is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is there: write the entry.
    Write,
    /// Replace what is there (it is not a regular file where the snapshot has one).
    Replace,
    /// Compare the regular file there with the snapshot's content, blob by blob: left in place
    /// when it matches, replaced otherwise.
    Compare,
    /// Taken as unchanged without reading it (`if-changed`: same size and modification time):
    /// left in place, its metadata set.
    Unchanged,
    /// Keep what is there, untouched (`never`, or `if-newer` with a snapshot entry not newer).
    Keep,
}

/// The overwrite decision for the snapshot's `node` whose place in the target holds
/// `existing` (`None`: nothing), under `mode`; `verify`: the restore re-reads what it writes,
/// so size and time alone never make a file unchanged. Follows restic 0.17's
/// `shouldOverwrite` and `withOverwriteCheck` (`internal/restorer/restorer.go`): `if-newer`
/// compares modification times (strictly newer replaces), and every mode that may replace a
/// regular file with a regular file compares its content first. A directory of the snapshot
/// over an existing directory is not decided here (it is kept and merged).
pub fn decide(mode: Overwrite, node: &Node, existing: Option<&Existing>, verify: bool) -> Decision {
    let Some(e) = existing else { return Decision::Write };
    match mode {
        Overwrite::Never => return Decision::Keep,
        Overwrite::IfNewer if node.mtime <= e.mtime => return Decision::Keep,
        _ => {}
    }
    if node.kind != NodeKind::File || !e.file {
        return Decision::Replace;
    }
    if mode == Overwrite::IfChanged && !verify && e.size == node.size && e.mtime == node.mtime {
        return Decision::Unchanged;
    }
    Decision::Compare
}

/// What the comparison of a local regular file with the snapshot's content found.
pub(super) struct LocalMatch {
    /// The local file, open for reading (never through a symlink).
    file: fs::File,
    /// Per blob of the node's content: the local file holds it at its offset.
    matched: Vec<bool>,
    /// Every blob matched and the sizes are equal: the content is the snapshot's.
    all: bool,
}

/// Whether the entry at `p` exists: its `lstat` (`None` when nothing is there, also when a
/// component of the path is not a directory).
fn probe(p: &Path) -> std::io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(md) => Ok(Some(md)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A regular file being restored.
pub(super) struct FileJob {
    /// Its snapshot path (what reports name).
    pub(super) path: PathBuf,
    /// Where the content is written.
    pub(super) dest: PathBuf,
    /// Where the file goes once complete, when not `dest`: an entry was there, and stays
    /// until the new content is complete and verified (`dest` is then a temporary name beside
    /// it, renamed over it).
    pub(super) target: Option<PathBuf>,
    /// Its node in the snapshot (content, metadata).
    pub(super) node: Node,
    /// Blobs not written yet.
    pub(super) remaining: AtomicUsize,
    /// A blob could not be read or written: the file is removed and reported.
    pub(super) failed: AtomicBool,
    /// A file of one blob (most files) is created only when its blob lands, written and given
    /// its metadata through one open descriptor: half the system calls of the general path.
    pub(super) deferred: bool,
    /// Reported when complete: restored (nothing was there) or updated (replaces an entry).
    pub(super) action: Action,
}

/// One place a blob is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BlobUse {
    /// Index in [`Plan::files`].
    pub(super) file: usize,
    /// Byte offset in that file.
    pub(super) offset: u64,
}

/// One blob needed from a pack, and where it goes.
pub(super) struct Needed {
    pub(super) blob: PackBlob,
    pub(super) uses: Vec<BlobUse>,
}

impl AsRef<PackBlob> for Needed {
    fn as_ref(&self) -> &PackBlob {
        &self.blob
    }
}

/// Whether a directory of the snapshot exists in the target while its entries are walked (in
/// a dry run: would exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DirState {
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
    Dir { dest: PathBuf, selected: bool, state: DirState },
}

/// A directory whose metadata is set once everything below it is written.
pub(super) struct DirJob {
    pub(super) dest: PathBuf,
    /// Its depth below the root tree (0 for an entry of the root tree): deepest first.
    pub(super) depth: usize,
    pub(super) node: Node,
}

/// A further name of a hard-linked file, linked once the file is complete.
pub(super) struct LinkJob {
    pub(super) path: PathBuf,
    pub(super) dest: PathBuf,
    /// The file it links to.
    pub(super) to: LinkTo,
    /// Reported when made.
    pub(super) action: Action,
}

/// The first name of a hard-linked inode, which further names link to.
pub(super) enum LinkTo {
    /// A file being restored: its index in [`Plan::files`].
    Planned(usize),
    /// A file left in place with the snapshot's content (unchanged): its snapshot path and
    /// its place in the target.
    Kept(PathBuf, PathBuf),
}

/// Everything the walk decided: the files to write and the blobs each pack gives them, the
/// hard links, and the directories to finish.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) files: Vec<FileJob>,
    pub(super) dirs: Vec<DirJob>,
    pub(super) links: Vec<LinkJob>,
    /// The first name of each hard-linked inode `(device, inode)`: index in `files`.
    first_names: HashMap<(u64, u64), usize>,
    /// The first name of each hard-linked inode left in place unchanged: snapshot path, place.
    kept_names: HashMap<(u64, u64), (PathBuf, PathBuf)>,
    /// Per pack (index in [`crate::index::Index::packs`]): the blobs needed from it.
    pub(super) packs: HashMap<u32, HashMap<BlobId, Needed>>,
}

/// A directory of the snapshot whose entries the walk is returning.
struct OpenDir {
    /// Its entry in its parent (`None` for the root tree, which has no node).
    node: Option<Node>,
    /// Its snapshot path.
    path: PathBuf,
    /// Where it goes in the target.
    dest: PathBuf,
    /// It, or an ancestor, matched the includes (or there are none).
    selected: bool,
    state: DirState,
    /// One of its entries is restored.
    any: bool,
    /// With `delete`, for a directory that was in the target and is cleaned: the names of its
    /// entries in the snapshot (what is not among them goes).
    names: Option<HashSet<Vec<u8>>>,
}

impl Restorer<'_> {
    /// Phase 1: walk the snapshot from its root tree `root` with the shared streamer, creating
    /// directories, symlinks and special files, and planning regular files and hard links.
    /// A directory gets its metadata planned when the streamer leaves it ([`Step::Leave`]).
    /// Errors: a tree that cannot be read, a cancellation.
    /// `target_exists`: the target directory was there before the restore (in a dry run it is
    /// not created, so nothing below it is looked up).
    pub(super) fn walk(&self, root: &BlobId, target_exists: bool) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut stream = TreeStream::new(self.repo, self.index, &self.ctx.cancel, root, Path::new("/"))?;
        let top_path = PathBuf::from("/");
        let top_state = if target_exists { DirState::Present } else { DirState::Created };
        let top = OpenDir {
            node: None,
            names: self.names_if_cleaned(&top_path, top_state),
            path: top_path,
            dest: self.target.clone(),
            selected: self.includes.is_none(),
            state: top_state,
            any: false,
        };
        let mut open = vec![top];
        while let Some(step) = stream.next_step()? {
            let (path, node) = match step {
                Step::Entry(path, node) => (path, node),
                Step::Leave(_) => {
                    self.close_dir(&mut open, &mut plan);
                    continue;
                }
            };
            let Some(parent) = open.last_mut() else { break };
            if let Some(names) = &mut parent.names {
                names.insert(node.name.clone());
            }
            match self.enter_node(&node, path.clone(), parent, &mut plan)? {
                Entered::Done(any) => parent.any |= any,
                Entered::Dir { dest, selected, state } => {
                    stream.descend(&path, &node)?;
                    let names = self.names_if_cleaned(&path, state);
                    open.push(OpenDir { node: Some(node), path, dest, selected, state, any: false, names });
                }
            }
        }
        while open.len() > 1 {
            self.close_dir(&mut open, &mut plan);
        }
        if let Some(top) = open.first() {
            self.clean_dir(top);
        }
        Ok(plan)
    }

    /// The walk left the innermost open directory: remove what it holds and the snapshot does
    /// not (`delete`), plan its metadata if it is restored itself (it was selected, or an
    /// entry below it was restored), and tell its parent.
    fn close_dir(&self, open: &mut Vec<OpenDir>, plan: &mut Plan) {
        // The root is never closed: it has no node of its own.
        if open.len() <= 1 {
            return;
        }
        let Some(done) = open.pop() else { return };
        self.clean_dir(&done);
        let restored = done.selected || done.any;
        if let (true, Some(node)) = (restored, done.node) {
            let action = if done.state == DirState::Created { Action::Restored } else { Action::Updated };
            self.tell(action, &done.path, 0);
            plan.dirs.push(DirJob { dest: done.dest, depth: open.len().saturating_sub(1), node });
        }
        if let Some(parent) = open.last_mut() {
            parent.any |= restored;
        }
    }

    /// With `delete`: an empty name set for the directory at snapshot path `path` when it is
    /// cleaned (it was in the target, and it is at or below one of the snapshot's backed-up
    /// paths, or, without those, below the target's root); `None` otherwise.
    fn names_if_cleaned(&self, path: &Path, state: DirState) -> Option<HashSet<Vec<u8>>> {
        let there = match state {
            DirState::Present => true,
            DirState::Created => false,
            // Not restored itself (an include selects entries below it), but perhaps there:
            // the entries the includes select are cleaned.
            DirState::Missing => fs::symlink_metadata(self.dest(path)).is_ok_and(|m| m.is_dir()),
        };
        if !self.delete || !there {
            return None;
        }
        let cleaned = if self.clean_roots.is_empty() {
            path != Path::new("/")
        } else {
            self.clean_roots.iter().any(|r| path.starts_with(r))
        };
        cleaned.then(HashSet::new)
    }

    /// Remove (or, in a dry run, report) each entry of the target directory of `d` that the
    /// snapshot's directory does not have, when the includes select it and the excludes do
    /// not skip it (as restic's `--delete` with `--include`/`--exclude`). This restore's own
    /// temporary files are not touched. Failures are reported.
    fn clean_dir(&self, d: &OpenDir) {
        let Some(names) = &d.names else { return };
        let entries = match fs::read_dir(&d.dest) {
            Ok(e) => e,
            Err(e) => {
                self.report(
                    &d.path,
                    format!("cannot list the directory to delete what the snapshot does not have: {e}"),
                );
                return;
            }
        };
        use std::os::unix::ffi::OsStrExt;
        let ours = format!(".cairn-restore-{}-", std::process::id());
        let mut extra = Vec::new();
        for e in entries {
            let name = match e {
                Ok(e) => e.file_name(),
                Err(e) => {
                    self.report(&d.path, format!("cannot list the directory: {e}"));
                    return;
                }
            };
            let bytes = name.as_bytes();
            if names.contains(bytes) || bytes.starts_with(ours.as_bytes()) {
                continue;
            }
            let path = d.path.join(&name);
            let selected = d.selected || self.includes.as_ref().is_some_and(|i| i.is_match(&path));
            if selected && !self.excludes.is_match(&path) {
                extra.push((path, d.dest.join(&name)));
            }
        }
        extra.sort();
        for (path, dest) in extra {
            self.delete_tree(&path, &dest);
        }
    }

    /// Remove `dest` (the entry at snapshot path `path`) and everything below it, counting and
    /// telling each entry removed; in a dry run only count and tell. Failures are reported.
    fn delete_tree(&self, path: &Path, dest: &Path) {
        let removed = remove_tree(dest, self.dry_run, &mut |p: &Path| {
            let shown = match p.strip_prefix(dest) {
                Ok(below) if !below.as_os_str().is_empty() => path.join(below),
                _ => path.to_path_buf(),
            };
            self.progress.files_deleted.fetch_add(1, Ordering::Relaxed);
            self.tell(Action::Deleted, &shown, 0);
        });
        if let Err(e) = removed {
            self.report(path, format!("cannot delete what the snapshot does not have: {e}"));
        }
    }

    /// Make the way clear at `dest` (snapshot path `path`) for an entry of the snapshot, a
    /// regular file when `file`: as [`make_way`], and with `delete` a directory with entries
    /// is removed too. In a dry run nothing is changed: the answer is what would be. True
    /// when a regular file stays there to be replaced. Errors: a message for the report.
    fn clear_way(&self, path: &Path, dest: &Path, file: bool) -> std::result::Result<bool, String> {
        let md = probe(dest).map_err(|e| format!("cannot replace existing entry: {e}"))?;
        match md {
            None => Ok(false),
            Some(m) if m.is_dir() && self.delete => {
                self.delete_tree(path, dest);
                if !self.dry_run && probe(dest).ok().flatten().is_some() {
                    return Err("not restored: the directory in the way could not be deleted".into());
                }
                Ok(false)
            }
            Some(m) if self.dry_run => {
                if m.is_dir() && fs::read_dir(dest).map(|mut d| d.next().is_some()).unwrap_or(true) {
                    Err(conflict_message(dest))
                } else {
                    Ok(file && !m.is_dir())
                }
            }
            Some(_) => make_way(dest, file),
        }
    }

    /// Make `dest` (snapshot path `path`, in a directory that was there) a directory for the
    /// snapshot's directory `node`: keep one that is there; what else is there is replaced
    /// unless the overwrite mode keeps it (then `Ok(None)`: the directory is not restored); a
    /// regular file only with `delete`. In a dry run nothing is changed. Errors: a message.
    fn dir_way(&self, node: &Node, path: &Path, dest: &Path) -> std::result::Result<Option<DirState>, String> {
        let md = probe(dest).map_err(|e| format!("cannot create directory: {e}"))?;
        let Some(m) = md else {
            return self.create_dir_at(dest).map(Some);
        };
        if m.is_dir() {
            return Ok(Some(DirState::Present));
        }
        if decide(self.overwrite, node, Some(&Existing::of(&m)), self.verify) == Decision::Keep {
            self.skipped(path, 0);
            return Ok(None);
        }
        if m.is_file() {
            if !self.delete {
                return Err(
                    "cannot create directory: a file is in the way (restore does not delete what is not in the snapshot unless asked to; move it away)"
                        .into(),
                );
            }
            self.delete_tree(path, dest);
        } else if !self.dry_run {
            fs::remove_file(dest).map_err(|e| format!("cannot replace existing entry: {e}"))?;
        }
        self.create_dir_at(dest).map(Some)
    }

    /// Create the directory `dest` where nothing is (in a dry run: say it would be).
    fn create_dir_at(&self, dest: &Path) -> std::result::Result<DirState, String> {
        if self.dry_run {
            return Ok(DirState::Created);
        }
        match make_real_dir(dest) {
            Ok(true) => Ok(DirState::Created),
            Ok(false) => Ok(DirState::Present),
            Err(e) => Err(format!("cannot create directory: {e}")),
        }
    }

    /// Restore or plan `node`, at snapshot path `path` in directory `parent`; a directory is
    /// created (when selected) and returned for its entries to be walked.
    fn enter_node(&self, node: &Node, path: PathBuf, parent: &OpenDir, plan: &mut Plan) -> Result<Entered> {
        if !Tree::valid_name(&node.name) {
            self.report(&path, "invalid name in the snapshot (skipped)".into());
            return Ok(Entered::Done(false));
        }
        if self.excludes.is_match(&path) {
            return Ok(Entered::Done(false));
        }
        let selected = parent.selected || self.includes.as_ref().is_some_and(|i| i.is_match(&path));
        let dest = self.dest(&path);
        if node.kind == NodeKind::Dir {
            if node.subtree.is_none() {
                self.report(&path, "directory without a subtree in the snapshot".into());
                return Ok(Entered::Done(false));
            }
            let mut state = DirState::Missing;
            if selected {
                let made = match parent.state {
                    DirState::Missing => {
                        self.ensure_dir(&path).map(Some).map_err(|e| format!("cannot create directory: {e}"))
                    }
                    DirState::Created => self.create_dir_at(&dest).map(Some),
                    DirState::Present => self.dir_way(node, &path, &dest),
                };
                match made {
                    Ok(Some(s)) => state = s,
                    Ok(None) => return Ok(Entered::Done(true)),
                    Err(e) => {
                        self.report(&path, e);
                        return Ok(Entered::Done(false));
                    }
                }
            }
            return Ok(Entered::Dir { dest, selected, state });
        }
        if !selected {
            return Ok(Entered::Done(false));
        }
        Ok(Entered::Done(self.restore_entry(node, path, dest, parent, plan)))
    }

    /// Restore (or plan, for a regular file) a selected non-directory entry of `parent`; true
    /// when it is restored.
    fn restore_entry(&self, node: &Node, path: PathBuf, dest: PathBuf, parent: &OpenDir, plan: &mut Plan) -> bool {
        if parent.state == DirState::Missing {
            if let Err(e) = self.ensure_dir(&parent.path) {
                self.report(&path, format!("cannot create parent directory: {e}"));
                return false;
            }
        }
        // In a directory this restore created, nothing is in the way (and whatever another
        // process might plant there makes the exclusive create fail, never followed).
        let mut replace = false;
        let mut local = None;
        if parent.state != DirState::Created {
            let existing = match probe(&dest) {
                Ok(md) => md.map(|m| Existing::of(&m)),
                Err(e) => {
                    self.report(&path, format!("cannot look at the existing entry: {e}"));
                    return false;
                }
            };
            let key = (node.device, node.inode);
            let link = node.links > 1 && (plan.first_names.contains_key(&key) || plan.kept_names.contains_key(&key));
            let size = if node.kind == NodeKind::File && !link { node.size } else { 0 };
            if link && plan.kept_names.get(&key).is_some_and(|(_, kept)| same_inode(&dest, kept)) {
                // Already a name of the unchanged first name's inode.
                self.skipped(&path, 0);
                return true;
            }
            let mut decision = decide(self.overwrite, node, existing.as_ref(), self.verify);
            if link && matches!(decision, Decision::Compare | Decision::Unchanged) {
                // A further name of a file: linked anew (as restic, no content check).
                decision = Decision::Replace;
            }
            match decision {
                Decision::Keep => {
                    self.skipped(&path, size);
                    return true;
                }
                Decision::Unchanged => return self.keep_unchanged(node, path, dest, None, plan),
                Decision::Compare => match self.compare_local(node, &dest) {
                    Ok(m) if m.all => return self.keep_unchanged(node, path, dest, Some(m.file), plan),
                    Ok(m) => local = Some(m),
                    // Unreadable: replaced as a whole.
                    Err(_) => {}
                },
                Decision::Write | Decision::Replace => {}
            }
            match self.clear_way(&path, &dest, node.kind == NodeKind::File) {
                Ok(r) => replace = r || existing.is_some_and(|e| !e.dir),
                Err(e) => {
                    self.report(&path, e);
                    return false;
                }
            }
        }
        let action = if replace { Action::Updated } else { Action::Restored };
        match node.kind {
            NodeKind::File => self.plan_file(node, path, dest, replace, local, plan),
            NodeKind::Symlink if self.dry_run => {
                self.progress.files.fetch_add(1, Ordering::Relaxed);
                self.tell(action, &path, 0);
                true
            }
            NodeKind::Symlink => self.restore_symlink(node, &path, &dest, action),
            // A socket is not made (see `restore_special`).
            _ if self.dry_run => node.kind != NodeKind::Socket,
            _ => {
                let ok = self.restore_special(node, &path, &dest);
                if ok {
                    self.set_metadata(node, &dest);
                }
                ok
            }
        }
    }

    /// Leave the regular file at `dest` (snapshot path `path`) whose content is the snapshot's
    /// in place: give it the snapshot's metadata (through `handle` when open; not in a dry
    /// run) and count it skipped; further names of its inode in the snapshot link to it. True
    /// (the entry is restored).
    fn keep_unchanged(
        &self,
        node: &Node,
        path: PathBuf,
        dest: PathBuf,
        handle: Option<fs::File>,
        plan: &mut Plan,
    ) -> bool {
        if !self.dry_run {
            let handle = match handle {
                Some(h) => Ok(h),
                None => open_local(&dest),
            };
            match handle {
                Ok(h) => self.set_metadata_via(node, &dest, Some(&h), &dest),
                // Not readable (mode 000, say): by its path, as a directory's metadata is set.
                Err(_) => self.set_metadata(node, &dest),
            }
        }
        self.skipped(&path, node.size);
        if node.links > 1 {
            plan.kept_names.entry((node.device, node.inode)).or_insert((path, dest));
        }
        true
    }

    /// Compare the regular file at `dest` with `node`'s content, blob by blob (each piece
    /// hashed into a blob id, as `verify` does). Errors: it cannot be opened or read, or is
    /// not a regular file (then it is replaced as a whole).
    fn compare_local(&self, node: &Node, dest: &Path) -> std::io::Result<LocalMatch> {
        use std::io::Read;
        let file = open_local(dest)?;
        let size = file.metadata()?.len();
        let mut matched = Vec::with_capacity(node.content.len());
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let mut buf = Vec::new();
        let mut ended = false;
        for id in &node.content {
            if self.ctx.is_cancelled() {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
            }
            let Some((_, loc)) = self.index.get(id) else {
                matched.push(false);
                ended = true;
                continue;
            };
            if ended {
                matched.push(false);
                continue;
            }
            buf.resize(loc.raw_length as usize, 0);
            match reader.read_exact(&mut buf) {
                Ok(()) => matched.push(self.repo.blob_id(&buf) == *id),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    matched.push(false);
                    ended = true;
                }
                Err(e) => return Err(e),
            }
        }
        let all = size == node.size && matched.iter().all(|m| *m);
        Ok(LocalMatch { file, matched, all })
    }

    /// Create a regular file at its final size and note its blobs under their packs.
    /// `replace`: an entry at `dest` stays until the file is complete (it is written to a
    /// temporary file beside it, renamed over `dest` once done). A further name of a
    /// hard-linked inode already planned becomes a link to it.
    /// `local`: the file there, compared with the snapshot's content: the blobs it already
    /// holds are copied from it, not downloaded. In a dry run nothing is created.
    fn plan_file(
        &self,
        node: &Node,
        path: PathBuf,
        dest: PathBuf,
        replace: bool,
        local: Option<LocalMatch>,
        plan: &mut Plan,
    ) -> bool {
        let action = if replace { Action::Updated } else { Action::Restored };
        let link_key = (node.links > 1).then_some((node.device, node.inode));
        if let Some(k) = link_key {
            let to = match (plan.first_names.get(&k), plan.kept_names.get(&k)) {
                (Some(&first), _) => Some(LinkTo::Planned(first)),
                (None, Some((p, d))) => Some(LinkTo::Kept(p.clone(), d.clone())),
                (None, None) => None,
            };
            if let Some(to) = to {
                if self.dry_run {
                    self.tell(action, &path, 0);
                }
                plan.links.push(LinkJob { path, dest, to, action });
                return true;
            }
        }
        let mut locs = Vec::with_capacity(node.content.len());
        let mut size = 0u64;
        for id in &node.content {
            // A copy stored as a tree blob serves too: the id names the plaintext (the empty
            // tree and a one-byte file holding 0x00 share theirs).
            match self.index.get(id) {
                Some((_, loc)) => {
                    locs.push((*id, loc, size));
                    size += loc.raw_length as u64;
                }
                None => {
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
        // Blobs the local file already holds at their offset: copied from it, not downloaded.
        let have = |i: usize| local.as_ref().is_some_and(|l| l.matched.get(i).copied().unwrap_or(false));
        let missing = (0..locs.len()).filter(|i| !have(*i)).count();
        let (dest, target) = if replace { (self.temporary_beside(&dest), Some(dest)) } else { (dest, None) };
        let deferred = locs.len() == 1 && missing == 1;
        if self.dry_run {
            self.tell(action, &path, size);
        } else if !deferred {
            let made = create_file(&dest).and_then(|f| {
                f.set_len(size)?;
                let Some(l) = &local else { return Ok(()) };
                let mut buf = Vec::new();
                for (i, (id, loc, offset)) in locs.iter().enumerate() {
                    if have(i) {
                        buf.resize(loc.raw_length as usize, 0);
                        l.file.read_exact_at(&mut buf, *offset)?;
                        // Checked again as copied: nothing unverified becomes file content.
                        if self.repo.blob_id(&buf) != *id {
                            return Err(std::io::Error::other(
                                "the existing file changed while it was read (restore it again)",
                            ));
                        }
                        f.write_all_at(&buf, *offset)?;
                        self.progress.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(())
            });
            if let Err(e) = made {
                let _ = std::fs::remove_file(&dest);
                self.report(&path, format!("cannot create file: {e}"));
                return false;
            }
        }
        let n = plan.files.len();
        plan.files.push(FileJob {
            path,
            dest,
            target,
            node: node.clone(),
            remaining: AtomicUsize::new(missing),
            failed: AtomicBool::new(false),
            deferred,
            action,
        });
        if let Some(k) = link_key {
            plan.first_names.insert(k, n);
        }
        for (i, (id, loc, offset)) in locs.into_iter().enumerate() {
            if have(i) {
                continue;
            }
            plan.packs
                .entry(loc.pack)
                .or_default()
                .entry(id)
                .or_insert_with(|| Needed { blob: PackBlob::indexed(id, &loc), uses: Vec::new() })
                .uses
                .push(BlobUse { file: n, offset });
        }
        true
    }
}

/// Open the existing regular file at `p` for reading, never through a symlink (nor blocking on
/// a FIFO planted there). Errors: it cannot be opened, or is not a regular file.
fn open_local(p: &Path) -> std::io::Result<fs::File> {
    let f = fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// True when `a` and `b` are names of one inode (neither followed if a symlink).
fn same_inode(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The message for a directory with entries in the way of the snapshot's entry at `dest`.
fn conflict_message(dest: &Path) -> String {
    format!(
        "not restored: a directory with entries is in the way at {} (restore does not delete what is not in the snapshot unless asked to; move it away)",
        dest.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, size: u64, secs: i64) -> Node {
        Node {
            mode: 0o644,
            size,
            mtime: Timestamp { secs, nanos: 5 },
            inode: 1,
            device: 1,
            ..Node::new(b"f".to_vec(), kind)
        }
    }

    fn file(size: u64, secs: i64) -> Existing {
        Existing { file: true, dir: false, size, mtime: Timestamp { secs, nanos: 5 } }
    }

    #[test]
    fn nothing_there_is_always_written() {
        for mode in Overwrite::ALL {
            assert_eq!(decide(mode, &node(NodeKind::File, 3, 100), None, false), Decision::Write, "{mode}");
        }
    }

    #[test]
    fn each_mode_decides_on_an_existing_file() {
        use Decision::*;
        let n = node(NodeKind::File, 3, 100);
        let same = file(3, 100);
        let older = file(3, 99);
        let newer = file(3, 101);
        let resized = file(4, 100);
        let older_by_a_nanosecond = Existing { mtime: Timestamp { secs: 100, nanos: 4 }, ..same };
        // (mode, existing, verify) -> decision
        let cases = [
            (Overwrite::Always, same, false, Compare),
            (Overwrite::Always, older, false, Compare),
            (Overwrite::Always, newer, false, Compare),
            (Overwrite::IfChanged, same, false, Unchanged),
            (Overwrite::IfChanged, same, true, Compare),
            (Overwrite::IfChanged, resized, false, Compare),
            (Overwrite::IfChanged, older, false, Compare),
            (Overwrite::IfNewer, older, false, Compare),
            (Overwrite::IfNewer, older_by_a_nanosecond, false, Compare),
            (Overwrite::IfNewer, same, false, Keep),
            (Overwrite::IfNewer, newer, false, Keep),
            (Overwrite::Never, older, false, Keep),
            (Overwrite::Never, same, true, Keep),
        ];
        for (mode, existing, verify, want) in cases {
            assert_eq!(decide(mode, &n, Some(&existing), verify), want, "{mode} over {existing:?}, verify {verify}");
        }
    }

    #[test]
    fn other_kinds_are_replaced_not_compared() {
        let dir = Existing { file: false, dir: true, size: 4096, mtime: Timestamp { secs: 50, nanos: 0 } };
        let f = node(NodeKind::File, 3, 100);
        assert_eq!(decide(Overwrite::Always, &f, Some(&dir), false), Decision::Replace);
        assert_eq!(decide(Overwrite::IfChanged, &f, Some(&dir), false), Decision::Replace);
        assert_eq!(decide(Overwrite::IfNewer, &f, Some(&dir), false), Decision::Replace);
        assert_eq!(decide(Overwrite::Never, &f, Some(&dir), false), Decision::Keep);
        let link = node(NodeKind::Symlink, 0, 100);
        assert_eq!(decide(Overwrite::Always, &link, Some(&file(3, 100)), false), Decision::Replace);
        assert_eq!(decide(Overwrite::IfNewer, &link, Some(&file(3, 200)), false), Decision::Keep);
    }
}
