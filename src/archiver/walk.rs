//! The file-system walk of a backup: from `/` down to each source ([`Walker::save_virtual`]),
//! then each source's tree, directories in parallel on the pool for the first
//! [`PARALLEL_DEPTH`] levels and with a stack of their own below; and the normalisation and
//! probing of the source paths before anything is written.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::read::{Prefetcher, SourceFile, StreamError};
use super::save::Saver;
use super::Patterns;
use crate::blob::BlobType;
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::tree::{Node, NodeKind, Tree};
use crate::util::OwnerNames;

/// A path as its components (file name bytes).
pub(super) type Components = Vec<Vec<u8>>;

/// The walk of one backup's sources: what it saves with, what it skips, what it counted.
pub(super) struct Walker<'a> {
    pub(super) saver: &'a Saver<'a>,
    pub(super) chunker: Chunker,
    pub(super) excludes: Patterns,
    /// Tag files whose directory's other entries are left out ([`super::select`]).
    pub(super) tags: Vec<super::TagFile>,
    /// Regular files larger than this many bytes are left out.
    pub(super) max_size: Option<u64>,
    pub(super) one_fs: bool,
    pub(super) ignore_ctime: bool,
    pub(super) ignore_inode: bool,
    /// The parent snapshot was written by a cairn that stores extended attributes, so a parent
    /// node without any means the entry had none ([`crate::xattrs::reusable`]).
    pub(super) parent_stores_xattrs: bool,
    pub(super) names: Mutex<OwnerNames>,
    pub(super) errors: Mutex<Vec<(PathBuf, String)>>,
    pub(super) counts: Counts,
    pub(super) prefetch: Option<Prefetcher>,
    /// Sources saved (a directory counts even when some entries below it failed).
    pub(super) sources_read: AtomicU64,
    /// Set by [`Walker::save_virtual`] when a source's node differs from its node in the
    /// parent snapshot, or is missing from either (for `--skip-if-unchanged`).
    pub(super) source_changed: std::sync::atomic::AtomicBool,
    /// With `one_fs`: the devices of the sources as given, whose directories are entered.
    pub(super) source_devs: Vec<u64>,
    /// The command components, when the backup has any (after the paths in the sources).
    pub(super) grafts: Option<&'a super::components::Grafts>,
}

/// Files and directories new, changed and unchanged against the parent; content bytes.
#[derive(Default)]
pub(super) struct Counts {
    pub(super) files: [AtomicU64; 3],
    pub(super) dirs: [AtomicU64; 3],
    pub(super) bytes: AtomicU64,
}

pub(super) const NEW: usize = 0;
pub(super) const CHANGED: usize = 1;
pub(super) const UNCHANGED: usize = 2;

// Directory levels below a source saved in parallel on the call stack; deeper ones are saved
// by [`Walker::save_dir_deep`] with a stack of its own (a tree of any depth backs up).
use crate::tree::stream::PARALLEL_DEPTH;

/// A directory being saved by [`Walker::save_dir_deep`].
struct DeepDir {
    /// Its path.
    path: PathBuf,
    /// Its own node (subtree still unset) and its node in the parent snapshot; `None` for the
    /// directory the deep walk started at.
    node: Option<(Node, Option<Node>)>,
    /// Its entries saved so far.
    nodes: Vec<Node>,
    /// Its subdirectories still to save, with their nodes in the parent snapshot.
    subdirs: Vec<(Node, Option<Node>)>,
}

/// The entry called `name` in a parent tree (sorted by name).
pub(super) fn find<'t>(tree: Option<&'t Tree>, name: &[u8]) -> Option<&'t Node> {
    let nodes = &tree?.nodes;
    nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().and_then(|i| nodes.get(i))
}

impl Walker<'_> {
    pub(super) fn report(&self, path: &Path, msg: String) {
        self.saver.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.to_path_buf(), msg));
    }

    fn node(&self, name: Vec<u8>, md: &fs::Metadata) -> Node {
        Node::from_metadata(name, md, &mut self.names.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The extended attributes of the entry at `path` (`node` its lstat): the parent's when
    /// [`crate::xattrs::reusable`], else read; a failure is reported and the entry kept.
    fn xattrs(&self, path: &Path, node: &Node, parent: Option<&Node>) -> Vec<crate::tree::Xattr> {
        if let Some(p) = parent.filter(|p| {
            crate::xattrs::reusable(p, node, self.ignore_ctime, self.ignore_inode, self.parent_stores_xattrs)
        }) {
            return p.xattrs.clone();
        }
        let (xattrs, failures) = crate::xattrs::read(path);
        for f in failures {
            self.report(path, f);
        }
        xattrs
    }

    pub(super) fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.sort();
        self.saver.save_blob(BlobType::Tree, &tree.encode()?)
    }

    /// The parent's tree for a directory node, if it has one that can be read (a damaged
    /// parent tree only costs reading the files again).
    fn parent_tree(&self, parent: Option<&Node>) -> Option<Tree> {
        let id = parent.filter(|p| p.kind == NodeKind::Dir)?.subtree?;
        self.saver.repo.load_tree(self.saver.index, &id).ok()
    }

    /// A file is unchanged when its size, mtime, ctime and inode (restic's test) match the
    /// parent's node and all its content is still in the index.
    fn unchanged(&self, parent: &Node, node: &Node) -> bool {
        parent.kind == NodeKind::File
            && parent.size == node.size
            && parent.mtime == node.mtime
            && (self.ignore_ctime || parent.ctime == node.ctime)
            && (self.ignore_inode || parent.inode == node.inode)
            && parent.content.iter().all(|id| self.saver.index.contains(id))
    }

    fn count_file(&self, which: usize, size: u64) {
        self.counts.files[which].fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(size, Ordering::Relaxed);
        self.saver.progress.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a directory saved as tree `id` against its node in the parent snapshot.
    fn count_dir(&self, parent: Option<&Node>, id: BlobId) {
        let which = match parent.filter(|p| p.kind == NodeKind::Dir) {
            Some(p) if p.subtree == Some(id) => UNCHANGED,
            Some(_) => CHANGED,
            None => NEW,
        };
        self.counts.dirs[which].fetch_add(1, Ordering::Relaxed);
    }

    /// Save one entry found at `path`, `depth` directories below the source it belongs to;
    /// `Ok(None)` when it is skipped (excluded or unreadable, the latter reported). From
    /// [`PARALLEL_DEPTH`] on, a directory's node comes back without its subtree, for the
    /// caller ([`Walker::save_dir_deep`]) to save its entries.
    pub(super) fn save_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        root_dev: u64,
        parent: Option<&Node>,
        depth: usize,
    ) -> Result<Option<Node>> {
        self.saver.cancel.check()?;
        if self.excludes.is_match(path) {
            return Ok(None);
        }
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.report(path, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        if super::select::too_large(&md, self.max_size) {
            return Ok(None);
        }
        let mut node = self.node(name, &md);
        node.xattrs = self.xattrs(path, &node, parent);
        match node.kind {
            NodeKind::File => {
                if let Some(p) = parent.filter(|p| self.unchanged(p, &node)) {
                    node.content = p.content.clone();
                    self.count_file(UNCHANGED, node.size);
                    self.saver.progress.bytes.fetch_add(node.size, Ordering::Relaxed);
                    return Ok(Some(node));
                }
                let mut f = match SourceFile::open(path, &md) {
                    Ok(f) => f,
                    Err(e) => {
                        self.report(path, SourceFile::open_error(&e));
                        return Ok(None);
                    }
                };
                let saved = self.saver.save_stream(&self.chunker, &mut f, md.len());
                f.release();
                match saved {
                    Ok((ids, size)) => {
                        node.content = ids;
                        node.size = size;
                        let was_file = parent.is_some_and(|p| p.kind == NodeKind::File);
                        self.count_file(if was_file { CHANGED } else { NEW }, size);
                    }
                    Err(StreamError::Source(e)) => {
                        self.report(path, format!("cannot read: {e}"));
                        return Ok(None);
                    }
                    Err(StreamError::Repo(e)) => return Err(e),
                }
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => {
                    use std::os::unix::ffi::OsStrExt;
                    node.symlink_target = t.as_os_str().as_bytes().to_vec();
                }
                Err(e) => {
                    self.report(path, format!("cannot read symlink: {e}"));
                    return Ok(None);
                }
            },
            NodeKind::Dir => {
                if self.is_other_file_system(md.dev(), root_dev) {
                    // A mount point below a source: kept, empty (restic does the same).
                    node.subtree = Some(self.save_tree(Tree::default())?);
                    return Ok(Some(node));
                }
                if depth >= PARALLEL_DEPTH {
                    // Its entries are saved by save_dir_deep, from a stack of its own.
                    return Ok(Some(node));
                }
                let ptree = self.parent_tree(parent);
                match self.save_dir(path, root_dev, ptree.as_ref(), depth + 1)? {
                    Some(id) => {
                        self.count_dir(parent, id);
                        node.subtree = Some(id);
                    }
                    None => return Ok(None),
                }
            }
            _ => {}
        }
        Ok(Some(node))
    }

    /// Save a directory's entries and its tree blob; `Ok(None)` when it cannot be listed.
    /// `parent`: the same directory in the parent snapshot. `depth`: directories between the
    /// source and this one; from [`PARALLEL_DEPTH`] on the rest is saved by
    /// [`Walker::save_dir_deep`] (the call stack only ever holds that many levels).
    fn save_dir(&self, path: &Path, root_dev: u64, parent: Option<&Tree>, depth: usize) -> Result<Option<BlobId>> {
        use std::os::unix::ffi::OsStrExt;
        if depth >= PARALLEL_DEPTH {
            return self.save_dir_deep(path, root_dev, parent);
        }
        let Some(names) = self.list_dir(path, parent) else { return Ok(None) };
        let nodes: Result<Vec<Option<Node>>> = names
            .par_iter()
            .map(|n| self.save_entry(&path.join(n), n.as_bytes().to_vec(), root_dev, find(parent, n.as_bytes()), depth))
            .collect();
        let tree = Tree { nodes: nodes?.into_iter().flatten().collect() };
        Ok(Some(self.save_tree(tree)?))
    }

    /// The entry names of directory `path`, sorted, less those a tag file leaves out
    /// ([`super::select::kept_entries`]); files not in `parent` (the same directory in the
    /// parent snapshot) are handed to the prefetcher. `None` when it cannot be listed
    /// (reported).
    fn list_dir(&self, path: &Path, parent: Option<&Tree>) -> Option<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.report(path, format!("cannot list directory: {e}"));
                return None;
            }
        };
        let mut names = Vec::new();
        let mut files = Vec::new();
        for e in rd {
            match e {
                Ok(e) => {
                    // The type comes from the directory entry itself (no stat).
                    if e.file_type().is_ok_and(|t| t.is_file()) {
                        files.push(e.file_name());
                    }
                    names.push(e.file_name());
                }
                Err(e) => self.report(path, format!("error while listing directory: {e}")),
            }
        }
        names.sort();
        if !self.tags.is_empty() {
            names = super::select::kept_entries(path, names, &self.tags);
            files.retain(|f| names.binary_search(f).is_ok());
        }
        if let Some(p) = &self.prefetch {
            files.sort();
            for n in files.iter().filter(|n| find(parent, n.as_bytes()).is_none()) {
                p.hint(path.join(n));
            }
        }
        Some(names)
    }

    /// [`Walker::save_dir`] for the levels from [`PARALLEL_DEPTH`] down, without recursion:
    /// a stack of directories being saved, one per level. Each directory's entries are saved
    /// in parallel ([`Walker::save_entry`] returns subdirectories unsaved); its subdirectories
    /// are then saved one after the other, each before its parent's tree. The trees are the
    /// ones [`Walker::save_dir`] makes.
    fn save_dir_deep(&self, path: &Path, root_dev: u64, parent: Option<&Tree>) -> Result<Option<BlobId>> {
        let Some(first) = self.open_deep_dir(path.to_path_buf(), None, root_dev, parent)? else { return Ok(None) };
        let mut stack = vec![first];
        loop {
            let Some(top) = stack.last_mut() else { return Ok(None) };
            if let Some((node, pnode)) = top.subdirs.pop() {
                use std::os::unix::ffi::OsStrExt;
                let sub_path = top.path.join(std::ffi::OsStr::from_bytes(&node.name));
                let ptree = self.parent_tree(pnode.as_ref());
                // A directory that cannot be listed is left out (reported), as save_dir does.
                if let Some(dir) = self.open_deep_dir(sub_path, Some((node, pnode)), root_dev, ptree.as_ref())? {
                    stack.push(dir);
                }
                continue;
            }
            let Some(done) = stack.pop() else { return Ok(None) };
            let id = self.save_tree(Tree { nodes: done.nodes })?;
            let (Some(up), Some((mut node, pnode))) = (stack.last_mut(), done.node) else { return Ok(Some(id)) };
            self.count_dir(pnode.as_ref(), id);
            node.subtree = Some(id);
            up.nodes.push(node);
        }
    }

    /// List directory `path` and save its entries but its subdirectories (see
    /// [`Walker::save_dir_deep`]); `node`: its own node and its node in the parent snapshot.
    /// `Ok(None)` when it cannot be listed.
    fn open_deep_dir(
        &self,
        path: PathBuf,
        node: Option<(Node, Option<Node>)>,
        root_dev: u64,
        parent: Option<&Tree>,
    ) -> Result<Option<DeepDir>> {
        use std::os::unix::ffi::OsStrExt;
        let Some(names) = self.list_dir(&path, parent) else { return Ok(None) };
        let saved: Result<Vec<Option<Node>>> = names
            .par_iter()
            .map(|n| {
                self.save_entry(
                    &path.join(n),
                    n.as_bytes().to_vec(),
                    root_dev,
                    find(parent, n.as_bytes()),
                    PARALLEL_DEPTH,
                )
            })
            .collect();
        let mut nodes = Vec::new();
        let mut subdirs = Vec::new();
        for n in saved?.into_iter().flatten() {
            if n.kind == NodeKind::Dir && n.subtree.is_none() {
                let pnode = find(parent, &n.name).cloned();
                subdirs.push((n, pnode));
            } else {
                nodes.push(n);
            }
        }
        Ok(Some(DeepDir { path, node, nodes, subdirs }))
    }

    /// True when a directory on device `dev` below a source on `root_dev` is on another file
    /// system that one-file-system mode does not enter: not the source's, nor that of any
    /// source given (restic's rule, so `-x / /boot` keeps `/boot`).
    fn is_other_file_system(&self, dev: u64, root_dev: u64) -> bool {
        self.one_fs && dev != root_dev && !self.source_devs.contains(&dev)
    }

    /// The error of a walk that read no source: [`Error::NoSourceRead`] with the failures
    /// reported so far.
    pub(super) fn no_source_read(&self) -> Error {
        Error::NoSourceRead { failed: self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone() }
    }

    /// Back up the directory `/` itself (the source `/`): its entries are the snapshot's root
    /// tree. Returns that tree's id; `None` when `/` cannot be listed (reported).
    pub(super) fn save_root(&self, parent: Option<&Tree>) -> Result<Option<BlobId>> {
        let root = Path::new("/");
        let dev = match fs::symlink_metadata(root) {
            Ok(m) => m.dev(),
            Err(e) => {
                self.report(root, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let id = self.save_dir(root, dev, parent, 0)?;
        if id.is_some() {
            self.sources_read.fetch_add(1, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// Build the tree for the sources, mirroring their absolute paths from `/`.
    /// `prefix` is the directory whose entries are built; `sources` are relative to it.
    /// A stack of its own holds one directory per level of the source paths (no recursion).
    pub(super) fn save_virtual(&self, prefix: &Path, sources: &[Vec<Vec<u8>>], parent: Option<&Tree>) -> Result<Tree> {
        use std::os::unix::ffi::OsStrExt;
        /// A directory on the way to the sources: `members` index `sources`, whose component
        /// `level` names its entries; `node`: its own node (none for `prefix`).
        struct Frame {
            path: PathBuf,
            level: usize,
            members: Vec<usize>,
            firsts: std::vec::IntoIter<Vec<u8>>,
            ptree: Option<Tree>,
            nodes: Vec<Node>,
            node: Option<Node>,
        }
        let frame = |path: PathBuf, level: usize, members: Vec<usize>, ptree: Option<Tree>, node: Option<Node>| {
            let mut firsts: Vec<Vec<u8>> =
                members.iter().filter_map(|&i| sources.get(i)?.get(level).cloned()).collect();
            self.order_entries(sources, &members, level, &mut firsts);
            Frame { path, level, members, firsts: firsts.into_iter(), ptree, nodes: Vec::new(), node }
        };
        let mut stack = vec![frame(prefix.to_path_buf(), 0, (0..sources.len()).collect(), parent.cloned(), None)];
        loop {
            let Some(top) = stack.last_mut() else { return Ok(Tree::default()) };
            let Some(first) = top.firsts.next() else {
                let Some(done) = stack.pop() else { return Ok(Tree::default()) };
                let tree = Tree { nodes: done.nodes };
                let (Some(up), Some(mut node)) = (stack.last_mut(), done.node) else { return Ok(tree) };
                if tree.nodes.is_empty() {
                    // No source below it could be read: not recorded.
                    continue;
                }
                node.subtree = Some(self.save_tree(tree)?);
                up.nodes.push(node);
                continue;
            };
            let path = top.path.join(std::ffi::OsStr::from_bytes(&first));
            let level = top.level;
            let members: Vec<usize> = top
                .members
                .iter()
                .copied()
                .filter(|&i| sources.get(i).and_then(|s| s.get(level)) == Some(&first))
                .collect();
            if let Some(i) = members.iter().copied().find(|&i| sources.get(i).is_some_and(|s| s.len() == level + 1)) {
                // This component is itself a source: back it up whole (or take a command's file).
                let pnode = find(top.ptree.as_ref(), &first);
                let saved = self.save_source(i, &path, first.clone(), pnode)?;
                if saved.is_none() || saved.as_ref() != pnode {
                    self.source_changed.store(true, Ordering::Relaxed);
                }
                if let Some(n) = saved {
                    top.nodes.push(n);
                    self.sources_read.fetch_add(1, Ordering::Relaxed);
                }
            } else if self.only_commands(&members) {
                let ptree = self.parent_tree(find(top.ptree.as_ref(), &first));
                let time = self.grafts.map_or_else(crate::tree::Timestamp::now, |g| g.time);
                let node = super::components::synthesized_dir(first.clone(), time);
                stack.push(frame(path, level + 1, members, ptree, Some(node)));
            } else {
                // A directory on the way to a source: a symbolic link here is followed (the
                // source `/srv/mail` with `/srv -> /data/srv` is backed up as `/srv/mail`).
                let md = match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.report(&path, format!("cannot stat: {e}"));
                        continue;
                    }
                };
                let mut node = self.node(first.clone(), &md);
                node.xattrs = self.xattrs(&path, &node, find(top.ptree.as_ref(), &first));
                if node.kind != NodeKind::Dir {
                    self.report(&path, "is not a directory".into());
                    continue;
                }
                let ptree = self.parent_tree(find(top.ptree.as_ref(), &first));
                stack.push(frame(path, level + 1, members, ptree, Some(node)));
            }
        }
    }
}

/// Turn user paths into absolute, normalised component lists, dropping any path inside
/// another. Errors on a path that cannot be made absolute.
pub(super) fn normalise_sources(paths: &[PathBuf]) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
    let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for p in paths {
        let comps = absolute_components(p)?;
        let shown =
            format!("/{}", comps.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("/"));
        out.push((shown, comps));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    let all = out.clone();
    out.retain(|(_, c)| !all.iter().any(|(_, o)| o.len() < c.len() && c.starts_with(o)));
    Ok(out)
}

/// `path` made absolute, as its components from `/` (`..` removes the one before it; `/` is
/// none). Errors: [`Error::Io`] when the current directory is needed and unknown.
fn absolute_components(path: &Path) -> Result<Components> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut comps: Components = Vec::new();
    for c in abs.components() {
        match c {
            Component::Normal(n) => comps.push(n.as_bytes().to_vec()),
            Component::ParentDir => {
                comps.pop();
            }
            _ => {}
        }
    }
    Ok(comps)
}

/// A path from its components below `/`.
fn components_path(comps: &[Vec<u8>]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut path = PathBuf::from("/");
    path.extend(comps.iter().map(|c| std::ffi::OsStr::from_bytes(c)));
    path
}

/// The devices of the source paths as given (those that can be stat'ed), nested ones
/// included: one-file-system mode enters the directories on them.
pub(super) fn source_devices(paths: &[PathBuf]) -> Vec<u64> {
    let mut devs: Vec<u64> = paths
        .iter()
        .filter_map(|p| absolute_components(p).ok())
        .filter_map(|c| fs::symlink_metadata(components_path(&c)).ok())
        .map(|m| m.dev())
        .collect();
    devs.sort_unstable();
    devs.dedup();
    devs
}

/// Check, before anything is written, that at least one source (`comps`: each one's components
/// from `/`) can be read as the walk will read it: every directory on its way is a directory
/// (or a symbolic link to one), the source can be stat'ed, and a directory can be listed.
/// Errors: [`Error::NoSourceRead`] naming each source and why, when none passes.
pub(super) fn probe_sources(comps: &[Components]) -> Result<()> {
    let mut failed = Vec::new();
    for c in comps {
        match probe_source(c) {
            Ok(()) => return Ok(()),
            Err(f) => failed.push(f),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::NoSourceRead { failed })
    }
}

/// One source of [`probe_sources`]: on failure the source's path and why (naming the directory
/// on its way that failed, if one did).
fn probe_source(comps: &[Vec<u8>]) -> std::result::Result<(), (PathBuf, String)> {
    use std::os::unix::ffi::OsStrExt;
    let path = components_path(comps);
    let mut dir = PathBuf::from("/");
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        dir.push(std::ffi::OsStr::from_bytes(c));
        // A symbolic link on the way to a source is followed (`/srv -> /data/srv`), as the
        // walk follows it.
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err((path, format!("{} is not a directory", dir.display()))),
            Err(e) => return Err((path, format!("cannot stat {}: {e}", dir.display()))),
        }
    }
    let md = fs::symlink_metadata(&path).map_err(|e| (path.clone(), format!("cannot stat: {e}")))?;
    if md.is_dir() {
        fs::read_dir(&path).map_err(|e| (path.clone(), format!("cannot list directory: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_normalised_deduplicated_and_nested_ones_dropped() {
        let paths: Vec<PathBuf> = ["/srv/mail", "/srv/mail/cur", "/srv/./db/../mail", "/etc", "/srv/mail2"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let shown: Vec<String> = normalise_sources(&paths).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(shown, ["/etc", "/srv/mail", "/srv/mail2"]);
        let (shown, comps): (Vec<String>, Vec<Components>) =
            normalise_sources(&[PathBuf::from("/")]).unwrap().into_iter().unzip();
        assert_eq!((shown, comps), (vec!["/".to_string()], vec![Vec::new()]));
        assert_eq!(components_path(&[b"a".to_vec(), b"b".to_vec()]), Path::new("/a/b"));
    }

    #[test]
    fn probing_names_the_source_that_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = absolute_components(&dir.path().join("missing")).unwrap();
        let Err(Error::NoSourceRead { failed }) = probe_sources(std::slice::from_ref(&missing)) else {
            panic!("a missing source passed the probe")
        };
        assert!(failed[0].1.contains("cannot stat"), "{failed:?}");
        let here = absolute_components(dir.path()).unwrap();
        probe_sources(&[missing, here]).unwrap();
    }
}
