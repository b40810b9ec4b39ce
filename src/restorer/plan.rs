//! What to restore: the walk of the snapshot's trees (filters, directories created, files
//! planned) and the per-pack read plan.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::write::{create_file, make_real_dir, make_way};
use super::Restorer;
use crate::archiver::INTERRUPTED;
use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Location;
use crate::tree::{Node, NodeKind, Tree};
// Trees below this depth are walked by [`Restorer::walk_deep`] (a stack of its own, one
// entry at a time) instead of in parallel on the call stack.
use crate::walker::PARALLEL_DEPTH;

/// Neighbouring blobs of one pack closer than this (bytes) are fetched in one request.
pub(super) const MAX_GAP: u64 = 1 << 20;
/// Largest single range request, bytes (bounds memory: one range per thread at a time).
pub(super) const MAX_RANGE: u64 = 8 << 20;

/// A regular file being restored.
pub(super) struct FileJob {
    pub(super) path: PathBuf,
    /// Where the content is written.
    pub(super) dest: PathBuf,
    /// Where the file goes once complete, when not `dest`: an entry was there, and stays
    /// until the new content is complete and verified (`dest` is then a temporary name beside
    /// it, renamed over it).
    pub(super) target: Option<PathBuf>,
    pub(super) node: Node,
    pub(super) remaining: AtomicUsize,
    pub(super) failed: AtomicBool,
    /// A file of one blob (most files) is created only when its blob lands, written and given
    /// its metadata through one open descriptor: half the system calls of the general path.
    pub(super) deferred: bool,
}

/// One place a blob is written to.
#[derive(Clone, Copy)]
pub(super) struct BlobUse {
    pub(super) file: usize,
    pub(super) offset: u64,
}

/// One blob needed from a pack, and where it goes.
pub(super) struct Needed {
    pub(super) id: BlobId,
    pub(super) loc: Location,
    pub(super) uses: Vec<BlobUse>,
}

/// Whether a directory of the snapshot exists in the target while its entries are walked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DirState {
    /// Not created (not selected by the includes): made when an entry below is selected.
    Missing,
    /// There, perhaps with entries from before that are replaced.
    Present,
    /// Created by this restore, so empty.
    Created,
}

/// What [`Restorer::enter_node`] did with an entry.
pub(super) enum Entered {
    /// Restored or planned (true), or left out (false).
    Done(bool),
    /// A directory, created when selected: its entries are walked next.
    Dir { tree: BlobId, path: PathBuf, dest: PathBuf, selected: bool, state: DirState },
}

pub(super) struct DirJob {
    pub(super) dest: PathBuf,
    pub(super) depth: usize,
    pub(super) node: Node,
}

pub(super) struct LinkJob {
    pub(super) path: PathBuf,
    pub(super) dest: PathBuf,
    pub(super) first: usize,
}

#[derive(Default)]
pub(super) struct Plan {
    pub(super) files: Vec<FileJob>,
    pub(super) dirs: Vec<DirJob>,
    pub(super) links: Vec<LinkJob>,
    pub(super) first_names: HashMap<(u64, u64), usize>,
    pub(super) packs: HashMap<u32, HashMap<BlobId, Needed>>,
}

impl Restorer<'_> {
    /// Phase 1: walk tree `id` at snapshot path `dir`. `selected`: an ancestor matched the
    /// includes (or there are none). `state`: whether `dir` exists in the target. Entries are
    /// walked in parallel down to [`PARALLEL_DEPTH`], below that by [`Restorer::walk_deep`].
    pub(super) fn walk(&self, id: &BlobId, dir: &Path, depth: usize, selected: bool, state: DirState) -> Result<bool> {
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
    pub(super) fn walk_deep(
        &self,
        id: &BlobId,
        dir: &Path,
        depth: usize,
        selected: bool,
        state: DirState,
    ) -> Result<bool> {
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

    pub(super) fn walk_node(
        &self,
        node: &Node,
        dir: &Path,
        depth: usize,
        selected: bool,
        state: DirState,
    ) -> Result<bool> {
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
    pub(super) fn dir_done(&self, node: &Node, dest: PathBuf, depth: usize, selected: bool, any: bool) -> bool {
        if selected || any {
            self.plan().dirs.push(DirJob { dest, depth, node: node.clone() });
            return true;
        }
        false
    }

    /// Restore or plan one entry of directory `dir`; a directory is created (when selected)
    /// and returned for its entries to be walked.
    pub(super) fn enter_node(&self, node: &Node, dir: &Path, selected: bool, state: DirState) -> Result<Entered> {
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
    pub(super) fn restore_entry(
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
    pub(super) fn plan_file(&self, node: &Node, path: PathBuf, dest: PathBuf, replace: bool) -> bool {
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
}
