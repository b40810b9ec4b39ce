//! Snapshot paths and what they name.
//!
//! Snapshot paths are the absolute source paths the backup recorded: the root tree mirrors the
//! file system from `/` down to each source (see `archiver::backup`), so `/etc/postfix/main.cf`
//! names the file backed up from that path, and a `--stdin --stdin-filename maildb.dump`
//! snapshot holds `/maildb.dump`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{kind_name, Node, NodeKind};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;

/// Split a snapshot path into its components (name bytes). `/` (or an empty string) is the
/// root: no components. A relative path is taken from the root, `.` and repeated `/` are
/// ignored. Errors: [`Error::Usage`] for a `..` component or a NUL byte.
pub fn split_path(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::usage(format!("snapshot path {path:?}: `..` is not allowed"))),
            c if c.contains('\0') => return Err(Error::usage(format!("snapshot path {path:?} contains a NUL byte"))),
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
/// Errors: [`Error::Usage`] naming the path when it is not in the snapshot or a
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
                    return Err(Error::usage(format!(
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
            .ok_or_else(|| Error::usage(format!("{} is not in the snapshot", here.display())))?;
        found = Some(node);
    }
    Ok(match found {
        None => Located::Root { tree: *root },
        Some(node) => Located::Entry { path: join_path(&comps), node: Box::new(node) },
    })
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
}
