//! Finding paths in snapshots by glob (restic's `find`): which snapshots hold a file, and its
//! size and modification time in each.
//!
//! Pattern semantics (as restic's `find`): a pattern without `/` matches an entry's name at any
//! depth (`maildb.dump`, `*.conf`); a pattern starting with `/` matches the whole snapshot path
//! (`/etc/postfix/*.cf`); any other pattern with `/` matches the end of the path at any depth
//! (`postfix/*.cf`). `*` stays within one component, `**` crosses components. Globs are
//! compiled by [`crate::patterns`].
//!
//! Snapshots of the same sources share most of their trees: a [`Finder`] remembers what it
//! found below each tree it searched (keyed by tree id, and by the tree's path when a pattern
//! depends on it), so a tree shared by many snapshots is read and searched once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::patterns::{Patterns, Rule};
use crate::repository::Repository;
use crate::tree::{Node, NodeKind, Timestamp};

/// Compiled find patterns: the crate's glob compiler ([`Patterns`]) under find's rule
/// ([`Rule::Find`], see the module documentation).
pub struct Matcher(Patterns);

impl Matcher {
    /// Compile `patterns` (see the module documentation); `ignore_case` makes them
    /// case-insensitive. Errors: [`Error::Usage`] naming a malformed or empty pattern.
    pub fn new(patterns: &[String], ignore_case: bool) -> Result<Self> {
        Patterns::compile(patterns, Rule::Find, ignore_case).map(Matcher)
    }

    /// True when an entry named `name` at snapshot path `path` matches a pattern.
    pub fn is_match(&self, name: &[u8], path: &Path) -> bool {
        self.0.is_match_entry(name, path)
    }

    /// True when some pattern depends on where an entry is, not only on its name.
    pub fn uses_paths(&self) -> bool {
        self.0.uses_paths()
    }
}

/// One entry found.
#[derive(Clone, Debug)]
pub struct Match {
    /// Absolute snapshot path.
    pub path: PathBuf,
    /// The entry.
    pub node: Node,
}

/// What one tree holds that matches, in walk order (an entry, then what its directory holds).
struct Found {
    items: Vec<FoundItem>,
}

struct FoundItem {
    name: Vec<u8>,
    hit: Option<Node>,
    below: Option<Arc<Found>>,
}

/// Searches snapshots' trees, remembering the result for every tree it searched.
pub struct Finder<'r> {
    repo: &'r Repository,
    index: &'r Index,
    matcher: Matcher,
    /// Only entries modified at or after this time (restic's `--oldest`).
    oldest: Option<Timestamp>,
    /// Only entries modified at or before this time (restic's `--newest`).
    newest: Option<Timestamp>,
    memo: HashMap<(BlobId, Option<PathBuf>), Option<Arc<Found>>>,
    trees_read: u64,
}

impl<'r> Finder<'r> {
    /// A finder for `matcher`, keeping only entries whose mtime lies in `[oldest, newest]`
    /// (either bound optional).
    pub fn new(
        repo: &'r Repository,
        index: &'r Index,
        matcher: Matcher,
        oldest: Option<Timestamp>,
        newest: Option<Timestamp>,
    ) -> Self {
        Finder { repo, index, matcher, oldest, newest, memo: HashMap::new(), trees_read: 0 }
    }

    /// Every matching entry below the root tree `root`, in walk order (depth-first, by name).
    /// Errors: a tree that cannot be read.
    pub fn find(&mut self, root: &BlobId) -> Result<Vec<Match>> {
        let found = self.search(root, Path::new("/"))?;
        let mut out = Vec::new();
        if let Some(f) = found {
            flatten(&f, Path::new("/"), &mut out);
        }
        Ok(out)
    }

    /// Trees read and searched so far (a tree shared by several snapshots counts once).
    pub fn trees_read(&self) -> u64 {
        self.trees_read
    }

    fn in_time(&self, node: &Node) -> bool {
        self.oldest.is_none_or(|t| node.mtime >= t) && self.newest.is_none_or(|t| node.mtime <= t)
    }

    /// The matches below tree `root` at snapshot path `root_path`, each tree searched once per
    /// memo key. Depth-first with a stack of its own (one partly searched tree per level, never
    /// the call stack), so any depth works.
    fn search(&mut self, root: &BlobId, root_path: &Path) -> Result<Option<Arc<Found>>> {
        let mut stack: Vec<Box<SearchFrame>> = Vec::new();
        // The result of the directory just searched, for the entry pending on the stack's top.
        let mut below: Option<Arc<Found>>;
        match self.open(root, root_path)? {
            Opened::Known(f) => return Ok(f),
            Opened::Frame(f) => stack.push(f),
        }
        below = None;
        loop {
            let Some(top) = stack.last_mut() else { return Ok(None) };
            if let Some((name, hit)) = top.pending.take() {
                let b = below.take();
                if hit.is_some() || b.is_some() {
                    top.items.push(FoundItem { name, hit, below: b });
                }
            }
            match top.nodes.next() {
                Some(node) => {
                    let child = top.path.join(OsStr::from_bytes(&node.name));
                    let hit = self.matcher.is_match(&node.name, &child) && self.in_time(&node);
                    match (node.kind, node.subtree) {
                        (NodeKind::Dir, Some(sub)) => {
                            top.pending = Some((node.name.clone(), hit.then_some(node)));
                            match self.open(&sub, &child)? {
                                Opened::Known(f) => below = f,
                                Opened::Frame(f) => stack.push(f),
                            }
                        }
                        (NodeKind::Dir, None) => {
                            return Err(Error::corrupt(format!("directory {}", child.display()), "it has no subtree"))
                        }
                        _ => {
                            if hit {
                                top.items.push(FoundItem { name: node.name.clone(), hit: Some(node), below: None });
                            }
                        }
                    }
                }
                None => {
                    let Some(done) = stack.pop() else { return Ok(None) };
                    let done = *done;
                    let found = (!done.items.is_empty()).then(|| Arc::new(Found { items: done.items }));
                    self.memo.insert(done.key, found.clone());
                    if stack.is_empty() {
                        return Ok(found);
                    }
                    below = found;
                }
            }
        }
    }

    /// Start searching tree `tree` at snapshot path `path`: its memoised result, or a frame
    /// with its entries. Errors: [`Error::Interrupted`]; the tree cannot be read.
    fn open(&mut self, tree: &BlobId, path: &Path) -> Result<Opened> {
        let key = (*tree, self.matcher.uses_paths().then(|| path.to_path_buf()));
        if let Some(f) = self.memo.get(&key) {
            return Ok(Opened::Known(f.clone()));
        }
        if crate::archiver::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let t = self.repo.load_tree(self.index, tree)?;
        self.trees_read += 1;
        Ok(Opened::Frame(Box::new(SearchFrame {
            key,
            path: path.to_path_buf(),
            nodes: t.nodes.into_iter(),
            items: Vec::new(),
            pending: None,
        })))
    }
}

/// A tree being searched by [`Finder::search`].
struct SearchFrame {
    key: (BlobId, Option<PathBuf>),
    /// The tree's snapshot path.
    path: PathBuf,
    /// Entries not searched yet.
    nodes: std::vec::IntoIter<Node>,
    /// Entries found so far.
    items: Vec<FoundItem>,
    /// The directory entry whose tree is being searched above this frame: name and node if it
    /// matched itself.
    pending: Option<(Vec<u8>, Option<Node>)>,
}

/// What [`Finder::open`] found.
enum Opened {
    /// Searched before.
    Known(Option<Arc<Found>>),
    /// To be searched.
    Frame(Box<SearchFrame>),
}

/// Matches in walk order: each item's own match, then those below it (a stack, no recursion).
fn flatten(f: &Arc<Found>, prefix: &Path, out: &mut Vec<Match>) {
    let mut stack: Vec<(Arc<Found>, usize, PathBuf)> = vec![(f.clone(), 0, prefix.to_path_buf())];
    while let Some((found, i, prefix)) = stack.last_mut() {
        let Some(item) = found.items.get(*i) else {
            stack.pop();
            continue;
        };
        *i += 1;
        let path = prefix.join(OsStr::from_bytes(&item.name));
        if let Some(node) = &item.hit {
            out.push(Match { path: path.clone(), node: node.clone() });
        }
        if let Some(b) = item.below.clone() {
            stack.push((b, 0, path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_semantics() {
        let m = Matcher::new(&["*.conf".into(), "/etc/postfix/main.cf".into(), "cur/*.tmp".into()], false).unwrap();
        assert!(m.is_match(b"a.conf", Path::new("/etc/a.conf")));
        assert!(m.is_match(b"a.conf", Path::new("/x/y/a.conf")));
        assert!(!m.is_match(b"a.conf.bak", Path::new("/etc/a.conf.bak")));
        assert!(m.is_match(b"main.cf", Path::new("/etc/postfix/main.cf")));
        assert!(!m.is_match(b"main.cf", Path::new("/srv/etc/postfix/main.cf")));
        assert!(m.is_match(b"1.tmp", Path::new("/var/vmail/a/cur/1.tmp")));
        assert!(!m.is_match(b"1.tmp", Path::new("/var/vmail/a/new/1.tmp")));
        assert!(m.uses_paths());
        let i = Matcher::new(&["MAILDB.*".into()], true).unwrap();
        assert!(i.is_match(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(!i.uses_paths());
        assert!(!Matcher::new(&["MAILDB.*".into()], false)
            .unwrap()
            .is_match(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(Matcher::new(&["[".into()], false).is_err());
    }
}
