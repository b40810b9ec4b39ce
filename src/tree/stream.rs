//! The one tree streamer: a depth-first walk of a snapshot's trees in name order, with a stack
//! of its own (one partly read tree per level, never the call stack), so a tree of any depth
//! works and memory grows with the depth by one tree per level (restic's `internal/walker`,
//! in spirit).
//!
//! - [`TreeStream`] walks one tree. The caller decides after each directory entry whether to
//!   [`TreeStream::descend`] into it, and may ask for [`Step::Leave`] markers when a directory
//!   it descended into is done (find uses them to remember what it found below each tree).
//! - [`PairStream`] walks two trees in step (diff): each name comes once with its node on each
//!   side; descending into a directory present on both sides with the same tree id reads
//!   nothing (trees are content-addressed, so the contents are identical).
//! - [`walk`] is the simple visitor form of a [`TreeStream`] (ls, dump).
//!
//! Both streams check their cancellation token before every step ([`Error::Interrupted`]) and
//! report a directory node without a subtree as [`Error::Corrupt`]. The parallel walks of
//! backup and restore go [`PARALLEL_DEPTH`] levels deep on the call stack and continue below
//! with a stack of their own.

use std::ffi::OsStr;
use std::iter::Peekable;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Node, NodeKind, Tree};
use crate::context::Cancel;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;

/// Tree levels that backup and restore walk in parallel on the call stack (rayon); below this
/// depth they go on with a stack of their own, one level at a time, so a tree of any depth
/// works while the call stack holds at most this many levels of their frames.
pub const PARALLEL_DEPTH: usize = 64;

/// The tree of directory `node` at snapshot path `path`.
/// Errors: [`Error::Corrupt`] naming the directory when its node has no subtree.
pub fn subtree(path: &Path, node: &Node) -> Result<BlobId> {
    node.subtree.ok_or_else(|| Error::corrupt(format!("directory {}", path.display()), "it has no subtree"))
}

/// Where the streams read trees from: a repository through its index
/// ([`Repository::load_tree`], which checks names and order), or anything else that gives
/// decoded trees (a test's map).
pub trait TreeSource {
    /// The tree `id`. Errors: the tree cannot be read or is damaged.
    fn load_tree(&self, id: &BlobId) -> Result<Tree>;
}

/// A repository's trees, located by an index.
struct RepoTrees<'r> {
    repo: &'r Repository,
    index: &'r Index,
}

impl TreeSource for RepoTrees<'_> {
    fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.repo.load_tree(self.index, id)
    }
}

/// The stack both streams keep: per level, the snapshot path of the tree and its entries not
/// returned yet (`L`), plus the reading of trees and the cancellation checks they share.
struct Levels<'r, L> {
    source: Box<dyn TreeSource + 'r>,
    cancel: Cancel,
    stack: Vec<(PathBuf, L)>,
    trees_read: u64,
}

impl<'r, L> Levels<'r, L> {
    fn new(source: Box<dyn TreeSource + 'r>, cancel: &Cancel) -> Self {
        Levels { source, cancel: cancel.clone(), stack: Vec::new(), trees_read: 0 }
    }

    /// The entries of `tree`. Errors: [`Error::Interrupted`]; the tree cannot be read.
    fn load(&mut self, tree: &BlobId) -> Result<Vec<Node>> {
        self.cancel.check()?;
        let t = self.source.load_tree(tree)?;
        self.trees_read += 1;
        Ok(t.nodes)
    }
}

/// One step of a [`TreeStream`].
// Returned by value and consumed at once: boxing the node would cost an allocation per entry.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Step {
    /// An entry: its absolute snapshot path and its node.
    Entry(PathBuf, Node),
    /// All entries of the directory at this snapshot path (one the caller descended into) have
    /// been returned. Not given for the tree the stream started at: its end is the stream's.
    Leave(PathBuf),
}

/// What a [`walk`] does after visiting a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// Go into the directory (ignored for other nodes).
    Descend,
    /// Do not go into it.
    Skip,
}

/// A depth-first stream of the entries below a tree, in name order (see the module docs).
pub struct TreeStream<'r> {
    levels: Levels<'r, std::vec::IntoIter<Node>>,
}

impl<'r> TreeStream<'r> {
    /// A stream of the entries below `tree`, whose snapshot path is `prefix` (`/` for a
    /// snapshot's root), stopping with [`Error::Interrupted`] once `cancel` is cancelled.
    /// Errors: [`Error::Interrupted`]; the tree cannot be read.
    pub fn new(repo: &'r Repository, index: &'r Index, cancel: &Cancel, tree: &BlobId, prefix: &Path) -> Result<Self> {
        Self::with_source(Box::new(RepoTrees { repo, index }), cancel, tree, prefix)
    }

    /// The same, reading trees from `source`.
    /// Errors: [`Error::Interrupted`]; the tree cannot be read.
    pub fn with_source(
        source: Box<dyn TreeSource + 'r>,
        cancel: &Cancel,
        tree: &BlobId,
        prefix: &Path,
    ) -> Result<Self> {
        let mut levels = Levels::new(source, cancel);
        let nodes = levels.load(tree)?;
        levels.stack.push((prefix.to_path_buf(), nodes.into_iter()));
        Ok(TreeStream { levels })
    }

    /// The next step: an entry, or the end of a directory descended into; `None` at the end.
    /// Errors: [`Error::Interrupted`].
    pub fn next_step(&mut self) -> Result<Option<Step>> {
        self.levels.cancel.check()?;
        let Some((prefix, nodes)) = self.levels.stack.last_mut() else { return Ok(None) };
        if let Some(node) = nodes.next() {
            return Ok(Some(Step::Entry(prefix.join(OsStr::from_bytes(&node.name)), node)));
        }
        let done = self.levels.stack.pop().map(|(p, _)| p);
        Ok(if self.levels.stack.is_empty() { None } else { done.map(Step::Leave) })
    }

    /// The next entry (its snapshot path and node), or `None` at the end; [`Step::Leave`]
    /// markers are passed over. Errors: [`Error::Interrupted`].
    pub fn next_entry(&mut self) -> Result<Option<(PathBuf, Node)>> {
        loop {
            match self.next_step()? {
                Some(Step::Entry(path, node)) => return Ok(Some((path, node))),
                Some(Step::Leave(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// Make the entries of directory `node` (at snapshot path `path`, the entry just returned)
    /// come next. Errors: the node has no subtree ([`Error::Corrupt`]), [`Error::Interrupted`],
    /// or its tree cannot be read.
    pub fn descend(&mut self, path: &Path, node: &Node) -> Result<()> {
        let sub = subtree(path, node)?;
        let nodes = self.levels.load(&sub)?;
        self.levels.stack.push((path.to_path_buf(), nodes.into_iter()));
        Ok(())
    }

    /// How many trees are open (the depth below the starting tree, plus one).
    pub fn depth(&self) -> usize {
        self.levels.stack.len()
    }

    /// How many trees this stream has read (the starting tree included).
    pub fn trees_read(&self) -> u64 {
        self.levels.trees_read
    }
}

/// Walk the tree `tree` depth-first in name order, calling `visit(path, node)` for every entry
/// below it (not for the tree itself) before its children; `prefix` is the snapshot path of
/// `tree` (`/` for the root). A [`TreeStream`], so any depth works.
/// Errors: [`Error::Interrupted`] once `cancel` is cancelled; the first tree that cannot be
/// read; the first error `visit` returns.
pub fn walk(
    repo: &Repository,
    index: &Index,
    cancel: &Cancel,
    tree: &BlobId,
    prefix: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<Visit>,
) -> Result<()> {
    let mut stream = TreeStream::new(repo, index, cancel, tree, prefix)?;
    while let Some((path, node)) = stream.next_entry()? {
        if visit(&path, &node)? == Visit::Descend && node.kind == NodeKind::Dir {
            stream.descend(&path, &node)?;
        }
    }
    Ok(())
}

/// One name of a [`PairStream`]: its snapshot path (from the compared roots) and its node on
/// each side; at least one side is `Some`.
#[derive(Clone, Debug)]
pub struct Pair {
    /// Path from the compared roots, starting with the streams' prefix.
    pub path: PathBuf,
    /// The entry in the first (older) tree.
    pub old: Option<Node>,
    /// The entry in the second (newer) tree.
    pub new: Option<Node>,
}

/// One level of a [`PairStream`]: the entries not returned yet of each side (one side is empty
/// below a directory present on one side only).
struct Merge {
    old: Peekable<std::vec::IntoIter<Node>>,
    new: Peekable<std::vec::IntoIter<Node>>,
}

/// Two trees walked in step, depth-first in name order: each name present on either side comes
/// once, as a [`Pair`]. The caller decides after each pair whether to
/// [`PairStream::descend`] into it.
pub struct PairStream<'r> {
    levels: Levels<'r, Merge>,
}

impl<'r> PairStream<'r> {
    /// A stream of the entries below the trees `old` and `new` (snapshot path `prefix` for
    /// both). Equal trees have no differences: the stream is then empty and reads nothing.
    /// Errors: [`Error::Interrupted`]; a tree cannot be read.
    pub fn new(
        repo: &'r Repository,
        index: &'r Index,
        cancel: &Cancel,
        old: &BlobId,
        new: &BlobId,
        prefix: &Path,
    ) -> Result<Self> {
        Self::with_source(Box::new(RepoTrees { repo, index }), cancel, old, new, prefix)
    }

    /// The same, reading trees from `source`.
    /// Errors: [`Error::Interrupted`]; a tree cannot be read.
    pub fn with_source(
        source: Box<dyn TreeSource + 'r>,
        cancel: &Cancel,
        old: &BlobId,
        new: &BlobId,
        prefix: &Path,
    ) -> Result<Self> {
        let mut s = PairStream { levels: Levels::new(source, cancel) };
        if old != new {
            let old = s.levels.load(old)?;
            let new = s.levels.load(new)?;
            s.push(prefix, old, new);
        }
        Ok(s)
    }

    fn push(&mut self, path: &Path, old: Vec<Node>, new: Vec<Node>) {
        let level = Merge { old: old.into_iter().peekable(), new: new.into_iter().peekable() };
        self.levels.stack.push((path.to_path_buf(), level));
    }

    /// The next name of either side, or `None` at the end. Errors: [`Error::Interrupted`].
    pub fn next_pair(&mut self) -> Result<Option<Pair>> {
        loop {
            self.levels.cancel.check()?;
            let Some((prefix, m)) = self.levels.stack.last_mut() else { return Ok(None) };
            let (take_old, take_new) = match (m.old.peek(), m.new.peek()) {
                (None, None) => {
                    self.levels.stack.pop();
                    continue;
                }
                (Some(_), None) => (true, false),
                (None, Some(_)) => (false, true),
                (Some(x), Some(y)) => match x.name.cmp(&y.name) {
                    std::cmp::Ordering::Less => (true, false),
                    std::cmp::Ordering::Greater => (false, true),
                    std::cmp::Ordering::Equal => (true, true),
                },
            };
            let old = if take_old { m.old.next() } else { None };
            let new = if take_new { m.new.next() } else { None };
            let Some(name) = old.as_ref().or(new.as_ref()).map(|n| n.name.clone()) else { continue };
            return Ok(Some(Pair { path: prefix.join(OsStr::from_bytes(&name)), old, new }));
        }
    }

    /// Make the entries below `pair` (the pair just returned) come next: those of each side
    /// that is a directory, merged by name; a side that is not a directory contributes nothing.
    /// Nothing is read when both sides are directories with the same tree, or neither is one.
    /// Errors: a directory node has no subtree ([`Error::Corrupt`]), [`Error::Interrupted`], or
    /// a tree cannot be read.
    pub fn descend(&mut self, pair: &Pair) -> Result<()> {
        let dir = |n: &Option<Node>| -> Result<Option<BlobId>> {
            match n {
                Some(n) if n.kind == NodeKind::Dir => subtree(&pair.path, n).map(Some),
                _ => Ok(None),
            }
        };
        let (old, new) = (dir(&pair.old)?, dir(&pair.new)?);
        if old == new {
            return Ok(());
        }
        let old = match old {
            Some(t) => self.levels.load(&t)?,
            None => Vec::new(),
        };
        let new = match new {
            Some(t) => self.levels.load(&t)?,
            None => Vec::new(),
        };
        self.push(&pair.path, old, new);
        Ok(())
    }

    /// How many trees this stream has read.
    pub fn trees_read(&self) -> u64 {
        self.levels.trees_read
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::id::Id;

    /// Trees by id, counting reads.
    struct Map(HashMap<BlobId, Tree>, std::cell::Cell<usize>);

    impl TreeSource for &Map {
        fn load_tree(&self, id: &BlobId) -> Result<Tree> {
            self.1.set(self.1.get() + 1);
            self.0.get(id).cloned().ok_or_else(|| Error::corrupt(format!("tree {}", id.short()), "not in the map"))
        }
    }

    fn tid(n: u32) -> BlobId {
        BlobId(Id::of_bytes(&n.to_le_bytes()))
    }

    fn node(name: &str, kind: NodeKind, subtree: Option<BlobId>, size: u64) -> Node {
        Node { mode: 0o644, size, subtree, ..Node::new(name.as_bytes().to_vec(), kind) }
    }

    fn dir(name: &str, t: BlobId) -> Node {
        node(name, NodeKind::Dir, Some(t), 0)
    }

    fn file(name: &str, size: u64) -> Node {
        node(name, NodeKind::File, None, size)
    }

    /// A chain of `depth` directories `d` below tree 0, with a file `f` at the bottom.
    fn chain(map: &mut HashMap<BlobId, Tree>, depth: u32) {
        for i in 0..depth {
            map.insert(tid(i), Tree { nodes: vec![dir("d", tid(i + 1))] });
        }
        map.insert(tid(depth), Tree { nodes: vec![file("f", 1)] });
    }

    #[test]
    fn any_depth_in_order_with_leave_markers() {
        let mut m = HashMap::new();
        chain(&mut m, 5000);
        let map = Map(m, Default::default());
        let mut s = TreeStream::with_source(Box::new(&map), &Cancel::new(), &tid(0), Path::new("/")).unwrap();
        let (mut entries, mut leaves, mut deepest) = (0, 0, 0);
        while let Some(step) = s.next_step().unwrap() {
            match step {
                Step::Entry(path, node) => {
                    entries += 1;
                    if node.kind == NodeKind::Dir {
                        s.descend(&path, &node).unwrap();
                    } else {
                        assert_eq!(path.components().count(), 5002);
                    }
                    deepest = deepest.max(s.depth());
                }
                Step::Leave(_) => leaves += 1,
            }
        }
        assert_eq!((entries, leaves, deepest), (5001, 5000, 5001));
        assert_eq!(s.trees_read(), 5001);
    }

    #[test]
    fn skipped_directories_are_not_read_and_cancel_stops() {
        let mut m = HashMap::new();
        m.insert(tid(0), Tree { nodes: vec![file("a", 1), dir("b", tid(1)), file("c", 1)] });
        m.insert(tid(1), Tree { nodes: vec![file("x", 1)] });
        let map = Map(m, Default::default());
        let cancel = Cancel::new();
        let mut s = TreeStream::with_source(Box::new(&map), &cancel, &tid(0), Path::new("/r")).unwrap();
        let mut names = Vec::new();
        while let Some((p, _)) = s.next_entry().unwrap() {
            names.push(p);
        }
        assert_eq!(names, [PathBuf::from("/r/a"), PathBuf::from("/r/b"), PathBuf::from("/r/c")]);
        assert_eq!(map.1.get(), 1);
        let mut s = TreeStream::with_source(Box::new(&map), &cancel, &tid(0), Path::new("/")).unwrap();
        cancel.cancel();
        assert!(matches!(s.next_entry(), Err(Error::Interrupted)));
    }

    #[test]
    fn pairs_merge_by_name_and_skip_equal_trees() {
        let mut m = HashMap::new();
        // old: a (file), same/ (tree 10), gone/ (tree 11), t (dir, tree 12)
        // new: b (file), same/ (tree 10), t (file)
        m.insert(
            tid(1),
            Tree { nodes: vec![file("a", 1), dir("gone", tid(11)), dir("same", tid(10)), dir("t", tid(12))] },
        );
        m.insert(tid(2), Tree { nodes: vec![file("b", 1), dir("same", tid(10)), file("t", 3)] });
        m.insert(tid(10), Tree { nodes: vec![file("s", 1)] });
        m.insert(tid(11), Tree { nodes: vec![file("g", 1)] });
        m.insert(tid(12), Tree { nodes: vec![file("u", 1)] });
        let map = Map(m, Default::default());
        let mut s = PairStream::with_source(Box::new(&map), &Cancel::new(), &tid(1), &tid(2), Path::new("/")).unwrap();
        let mut seen = Vec::new();
        while let Some(p) = s.next_pair().unwrap() {
            seen.push((p.path.display().to_string(), p.old.is_some(), p.new.is_some()));
            s.descend(&p).unwrap();
        }
        let want = [
            ("/a", true, false),
            ("/b", false, true),
            ("/gone", true, false),
            ("/gone/g", true, false),
            ("/same", true, true),
            ("/t", true, true),
            ("/t/u", true, false),
        ];
        let want: Vec<(String, bool, bool)> = want.iter().map(|(p, o, n)| (p.to_string(), *o, *n)).collect();
        assert_eq!(seen, want);
        // Trees 1, 2, 11 and 12; never the shared tree 10.
        assert_eq!(s.trees_read(), 4);
        let same = PairStream::with_source(Box::new(&map), &Cancel::new(), &tid(1), &tid(1), Path::new("/")).unwrap();
        assert_eq!(same.trees_read(), 0);
    }
}
