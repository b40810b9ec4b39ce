//! Looking inside a snapshot without restoring it: resolving a path to its node, and walking
//! a snapshot's trees depth-first (restic's `internal/walker`, in spirit).
//!
//! Snapshot paths are the absolute source paths the backup recorded: the root tree mirrors the
//! file system from `/` down to each source (see `archiver::backup`), so `/etc/postfix/main.cf`
//! names the file backed up from that path, and a `--stdin --stdin-filename maildb.dump`
//! snapshot holds `/maildb.dump`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

/// Tree levels that backup and restore walk in parallel on the call stack (rayon); below this
/// depth they go on with a stack of their own, one level at a time, so a tree of any depth
/// works while the call stack holds at most this many levels of their frames.
pub const PARALLEL_DEPTH: usize = 64;

/// Split a snapshot path into its components (name bytes). `/` (or an empty string) is the
/// root: no components. A relative path is taken from the root, `.` and repeated `/` are
/// ignored. Errors: [`Error::InvalidInput`] for a `..` component or a NUL byte.
pub fn split_path(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::InvalidInput(format!("snapshot path {path:?}: `..` is not allowed"))),
            c if c.contains('\0') => {
                return Err(Error::InvalidInput(format!("snapshot path {path:?} contains a NUL byte")))
            }
            c => out.push(c.as_bytes().to_vec()),
        }
    }
    Ok(out)
}

/// The absolute snapshot path of `components` (`/` for none).
pub fn join_path(components: &[Vec<u8>]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in components {
        p.push(OsStr::from_bytes(c));
    }
    p
}

/// What a snapshot path names.
#[derive(Clone, Debug)]
pub enum Located {
    /// The snapshot's root (`/`): a directory with no node of its own.
    Root {
        /// The root tree.
        tree: BlobId,
    },
    /// An entry below the root.
    Entry {
        /// Its absolute snapshot path.
        path: PathBuf,
        /// Its node.
        node: Box<Node>,
    },
}

impl Located {
    /// The tree of a directory (the root included); `None` for anything else.
    pub fn tree(&self) -> Option<BlobId> {
        match self {
            Located::Root { tree } => Some(*tree),
            Located::Entry { node, .. } if node.kind == NodeKind::Dir => node.subtree,
            Located::Entry { .. } => None,
        }
    }

    /// The absolute snapshot path (`/` for the root).
    pub fn path(&self) -> PathBuf {
        match self {
            Located::Root { .. } => PathBuf::from("/"),
            Located::Entry { path, .. } => path.clone(),
        }
    }

    /// The node; `None` for the root.
    pub fn node(&self) -> Option<&Node> {
        match self {
            Located::Root { .. } => None,
            Located::Entry { node, .. } => Some(node),
        }
    }
}

/// Find `path` (see [`split_path`]) below the root tree `root`.
/// Errors: [`Error::InvalidInput`] naming the path when it is not in the snapshot or a
/// component is not a directory; tree read errors ([`Error::Corrupt`]).
pub fn resolve(repo: &Repository, index: &Index, root: &BlobId, path: &str) -> Result<Located> {
    let comps = split_path(path)?;
    let mut tree_id = *root;
    let mut found: Option<Node> = None;
    for (i, name) in comps.iter().enumerate() {
        let here = join_path(&comps[..=i]);
        if let Some(parent) = &found {
            match (parent.kind, parent.subtree) {
                (NodeKind::Dir, Some(t)) => tree_id = t,
                (NodeKind::Dir, None) => {
                    return Err(Error::corrupt(
                        format!("directory {}", join_path(&comps[..i]).display()),
                        "its node has no subtree",
                    ))
                }
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "{} is not in the snapshot: {} is a {}, not a directory",
                        here.display(),
                        join_path(&comps[..i]).display(),
                        kind_name(parent.kind)
                    )))
                }
            }
        }
        let tree = repo.load_tree(index, &tree_id)?;
        let node = tree
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .and_then(|i| tree.nodes.into_iter().nth(i))
            .ok_or_else(|| Error::InvalidInput(format!("{} is not in the snapshot", here.display())))?;
        found = Some(node);
    }
    Ok(match found {
        None => Located::Root { tree: *root },
        Some(node) => Located::Entry { path: join_path(&comps), node: Box::new(node) },
    })
}

/// What a walk does after visiting a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// Go into the directory (ignored for other nodes).
    Descend,
    /// Do not go into it.
    Skip,
}

/// Walk the tree `tree` depth-first in name order, calling `visit(path, node)` for every entry
/// below it (not for the tree itself) before its children; `prefix` is the snapshot path of
/// `tree` (`/` for the root). The walk keeps its own stack of partly visited trees (one per
/// level, never on the call stack), so any depth works. Errors: the first tree that cannot be
/// read, or the first error `visit` returns.
pub fn walk(
    repo: &Repository,
    index: &Index,
    tree: &BlobId,
    prefix: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<Visit>,
) -> Result<()> {
    let mut stream = TreeStream::new(repo, index, tree, prefix)?;
    while let Some((path, node)) = stream.next_entry()? {
        if visit(&path, &node)? == Visit::Descend && node.kind == NodeKind::Dir {
            stream.descend(&path, &node)?;
        }
    }
    Ok(())
}

/// A depth-first stream of the entries below a tree, in name order, holding one partly read
/// tree per level on a stack of its own (no recursion, so any depth works; memory grows with
/// the depth by one tree per level). The caller decides after each directory entry whether to
/// [`TreeStream::descend`] into it.
pub struct TreeStream<'r> {
    repo: &'r Repository,
    index: &'r Index,
    /// Per level: the snapshot path of the tree and its entries not yet returned.
    stack: Vec<(PathBuf, std::vec::IntoIter<Node>)>,
}

impl<'r> TreeStream<'r> {
    /// A stream of the entries below `tree`, whose snapshot path is `prefix`.
    /// Errors: the tree cannot be read.
    pub fn new(repo: &'r Repository, index: &'r Index, tree: &BlobId, prefix: &Path) -> Result<Self> {
        let t = repo.load_tree(index, tree)?;
        Ok(TreeStream { repo, index, stack: vec![(prefix.to_path_buf(), t.nodes.into_iter())] })
    }

    /// The next entry (its snapshot path and node), or `None` at the end.
    /// Errors: [`Error::Interrupted`].
    pub fn next_entry(&mut self) -> Result<Option<(PathBuf, Node)>> {
        loop {
            if crate::archiver::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let Some((prefix, nodes)) = self.stack.last_mut() else { return Ok(None) };
            match nodes.next() {
                Some(node) => return Ok(Some((prefix.join(OsStr::from_bytes(&node.name)), node))),
                None => {
                    self.stack.pop();
                }
            }
        }
    }

    /// Make the entries of directory `node` (at snapshot path `path`, the entry just returned)
    /// come next. Errors: the node has no subtree ([`Error::Corrupt`]), or its tree cannot be
    /// read.
    pub fn descend(&mut self, path: &Path, node: &Node) -> Result<()> {
        let sub =
            node.subtree.ok_or_else(|| Error::corrupt(format!("directory {}", path.display()), "it has no subtree"))?;
        let t = self.repo.load_tree(self.index, &sub)?;
        self.stack.push((path.to_path_buf(), t.nodes.into_iter()));
        Ok(())
    }

    /// How many trees are open (the depth below the starting tree, plus one).
    pub fn depth(&self) -> usize {
        self.stack.len()
    }
}

/// restic's name of a node type: `file`, `dir`, `symlink`, `chardev`, `dev`, `fifo`, `socket`.
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "dev",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
    }
}

/// The POSIX `st_mode` of a node: file type bits (`S_IFREG`, `S_IFDIR`...) | permission bits.
pub fn st_mode(node: &Node) -> u32 {
    let t = match node.kind {
        NodeKind::File => 0o100000,
        NodeKind::Dir => 0o040000,
        NodeKind::Symlink => 0o120000,
        NodeKind::CharDevice => 0o020000,
        NodeKind::BlockDevice => 0o060000,
        NodeKind::Fifo => 0o010000,
        NodeKind::Socket => 0o140000,
    };
    t | (node.mode & 0o7777)
}

/// The mode as `ls -l` and `stat -c %A` show it: `-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`,
/// with `s`/`S` for setuid and setgid and `t`/`T` for the sticky bit.
pub fn mode_string(kind: NodeKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
    });
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    let special = |x: u32, special: u32, lower: char, upper: char| match (mode & x != 0, mode & special != 0) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(split_path("/").unwrap().is_empty());
        assert!(split_path("").unwrap().is_empty());
        assert_eq!(
            split_path("/etc//postfix/./main.cf").unwrap(),
            vec![b"etc".to_vec(), b"postfix".to_vec(), b"main.cf".to_vec()]
        );
        assert_eq!(split_path("maildb.dump").unwrap(), vec![b"maildb.dump".to_vec()]);
        assert!(split_path("/etc/../x").is_err());
        assert_eq!(join_path(&split_path("/a/b").unwrap()), PathBuf::from("/a/b"));
        assert_eq!(join_path(&[]), PathBuf::from("/"));
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(NodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(NodeKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(NodeKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(NodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(NodeKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(NodeKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(NodeKind::Fifo, 0o600), "prw-------");
    }
}
