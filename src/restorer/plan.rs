//! What to restore: the walk of the snapshot's trees with the shared tree streamer (filters,
//! directories created, files planned) and the blobs each pack gives (read by
//! [`crate::repository::Repository::read_pack_blobs`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::write::{create_file, make_real_dir, make_way};
use super::Restorer;
use crate::blob::BlobType;
use crate::error::Result;
use crate::id::BlobId;
use crate::repository::PackBlob;
use crate::tree::stream::{Step, TreeStream};
use crate::tree::{Node, NodeKind, Tree};

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

/// Whether a directory of the snapshot exists in the target while its entries are walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Index in [`Plan::files`] of the file it links to.
    pub(super) first: usize,
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
}

impl Restorer<'_> {
    /// Phase 1: walk the snapshot from its root tree `root` with the shared streamer, creating
    /// directories, symlinks and special files, and planning regular files and hard links.
    /// A directory gets its metadata planned when the streamer leaves it ([`Step::Leave`]).
    /// Errors: a tree that cannot be read, a cancellation.
    pub(super) fn walk(&self, root: &BlobId) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut stream = TreeStream::new(self.repo, self.index, &self.ctx.cancel, root, Path::new("/"))?;
        let top = OpenDir {
            node: None,
            path: PathBuf::from("/"),
            dest: self.target.clone(),
            selected: self.includes.is_none(),
            state: DirState::Present,
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
            match self.enter_node(&node, path.clone(), parent, &mut plan)? {
                Entered::Done(any) => parent.any |= any,
                Entered::Dir { dest, selected, state } => {
                    stream.descend(&path, &node)?;
                    open.push(OpenDir { node: Some(node), path, dest, selected, state, any: false });
                }
            }
        }
        while open.len() > 1 {
            self.close_dir(&mut open, &mut plan);
        }
        Ok(plan)
    }

    /// The walk left the innermost open directory: plan its metadata if it is restored itself
    /// (it was selected, or an entry below it was restored), and tell its parent.
    fn close_dir(&self, open: &mut Vec<OpenDir>, plan: &mut Plan) {
        // The root is never closed: it has no node of its own.
        if open.len() <= 1 {
            return;
        }
        let Some(done) = open.pop() else { return };
        let restored = done.selected || done.any;
        if let (true, Some(node)) = (restored, done.node) {
            plan.dirs.push(DirJob { dest: done.dest, depth: open.len().saturating_sub(1), node });
        }
        if let Some(parent) = open.last_mut() {
            parent.any |= restored;
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
                    DirState::Missing => self.ensure_dir(&path).map(|()| false),
                    _ => make_real_dir(&dest),
                };
                match made {
                    Ok(true) => state = DirState::Created,
                    Ok(false) => state = DirState::Present,
                    Err(e) => {
                        self.report(&path, format!("cannot create directory: {e}"));
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
        if parent.state != DirState::Created {
            match make_way(&dest, node.kind == NodeKind::File) {
                Ok(r) => replace = r,
                Err(e) => {
                    self.report(&path, e);
                    return false;
                }
            }
        }
        match node.kind {
            NodeKind::File => self.plan_file(node, path, dest, replace, plan),
            NodeKind::Symlink => self.restore_symlink(node, &path, &dest),
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
    /// temporary file beside it, renamed over `dest` once done). A further name of a
    /// hard-linked inode already planned becomes a link to it.
    fn plan_file(&self, node: &Node, path: PathBuf, dest: PathBuf, replace: bool, plan: &mut Plan) -> bool {
        let link_key = (node.links > 1).then_some((node.device, node.inode));
        if let Some(k) = link_key {
            if let Some(&first) = plan.first_names.get(&k) {
                plan.links.push(LinkJob { path, dest, first });
                return true;
            }
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
                .or_insert_with(|| Needed { blob: PackBlob::indexed(id, &loc), uses: Vec::new() })
                .uses
                .push(BlobUse { file: n, offset });
        }
        true
    }
}
