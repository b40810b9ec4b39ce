//! Differences between two snapshots (or two directories of snapshots), restic's `diff`.
//!
//! Each changed path gets restic's modifier letters:
//!
//! | letter | meaning |
//! |---|---|
//! | `+` | added (a directory's whole contents are listed too) |
//! | `-` | removed (likewise) |
//! | `M` | a file's content differs (its blob list), or a symlink's target |
//! | `U` | only metadata differs: mode, owner (uid, gid, names), mtime, device number, extended attributes |
//! | `T` | the type changed (a file became a directory...); the old entry's contents are then listed as removed and the new one's as added |
//!
//! Differences from restic: `U` is always reported (restic needs `--metadata`); a changed
//! symlink target is `M` (restic: metadata); ctime, inode, device and link count are not
//! compared (they change whenever a tree is copied or restored, without any change a user
//! made); a type change lists the contents of the directories involved.
//!
//! Directories whose tree ids are equal are identical (trees are content-addressed) and are not
//! descended into, so comparing two nightly snapshots reads only the trees on the paths to the
//! changes. Paths are printed from `/` (the root of each side), directories with a trailing `/`.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Path from the compared roots, starting with `/`; directories end with `/`.
    pub path: String,
    /// restic's modifier: `+`, `-`, `M`, `U` or `T`.
    pub modifier: &'static str,
}

/// Counts for one side of a diff (restic's `DiffStat`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffStat {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (symlinks, devices, fifos, sockets).
    pub others: u64,
    /// Data blobs referenced only by this side's changed entries.
    pub data_blobs: u64,
    /// Tree blobs referenced only by this side's changed entries.
    pub tree_blobs: u64,
    /// Plaintext bytes of those blobs.
    pub bytes: u64,
}

/// Totals of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Files present on both sides whose content differs (`M` on a file).
    pub changed_files: u64,
    /// What was added.
    pub added: DiffStat,
    /// What was removed.
    pub removed: DiffStat,
}

/// True when two nodes of the same kind differ in what `U` reports.
pub fn metadata_differs(a: &Node, b: &Node) -> bool {
    a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.user != b.user || a.group != b.group || a.mtime != b.mtime || a.rdev != b.rdev
        || a.xattrs != b.xattrs
}

struct Differ<'a> {
    repo: &'a Repository,
    index: &'a Index,
    stats: DiffStats,
    before: HashSet<BlobId>,
    after: HashSet<BlobId>,
    out: &'a mut dyn FnMut(&Change) -> Result<()>,
}

/// Compare the directory trees `a` and `b`, calling `on_change` for each change in path order,
/// and return the totals. Errors: a tree that cannot be read, a blob missing from the index,
/// or the first error of `on_change`.
pub fn diff_trees(repo: &Repository, index: &Index, a: &BlobId, b: &BlobId, on_change: &mut dyn FnMut(&Change) -> Result<()>) -> Result<DiffStats> {
    let mut d = Differ { repo, index, stats: DiffStats::default(), before: HashSet::new(), after: HashSet::new(), out: on_change };
    d.diff_tree(a, b, Path::new("/"))?;
    let both: HashSet<BlobId> = d.before.intersection(&d.after).copied().collect();
    let mut stats = std::mem::take(&mut d.stats);
    count_blobs(index, d.before.difference(&both), &mut stats.removed)?;
    count_blobs(index, d.after.difference(&both), &mut stats.added)?;
    Ok(stats)
}

fn count_blobs<'a>(index: &Index, ids: impl Iterator<Item = &'a BlobId>, stat: &mut DiffStat) -> Result<()> {
    for id in ids {
        let (_, loc) = index.get(id).ok_or_else(|| Error::corrupt(format!("blob {}", id.short()), "not in the index"))?;
        match loc.blob_type {
            BlobType::Data => stat.data_blobs += 1,
            BlobType::Tree => stat.tree_blobs += 1,
        }
        stat.bytes += loc.raw_length as u64;
    }
    Ok(())
}

fn add_blobs(set: &mut HashSet<BlobId>, node: &Node) {
    match node.kind {
        NodeKind::File => set.extend(node.content.iter().copied()),
        NodeKind::Dir => set.extend(node.subtree),
        _ => {}
    }
}

fn count(stat: &mut DiffStat, node: &Node) {
    match node.kind {
        NodeKind::File => stat.files += 1,
        NodeKind::Dir => stat.dirs += 1,
        _ => stat.others += 1,
    }
}

fn shown(path: &Path, node: &Node) -> String {
    let mut s = path.display().to_string();
    if node.kind == NodeKind::Dir {
        s.push('/');
    }
    s
}

fn subtree(node: &Node, path: &Path) -> Result<BlobId> {
    node.subtree.ok_or_else(|| Error::corrupt(format!("directory {}", path.display()), "it has no subtree"))
}

impl Differ<'_> {
    fn emit(&mut self, path: String, modifier: &'static str) -> Result<()> {
        (self.out)(&Change { path, modifier })
    }

    fn diff_tree(&mut self, a: &BlobId, b: &BlobId, prefix: &Path) -> Result<()> {
        if a == b {
            return Ok(());
        }
        if crate::archiver::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let ta = self.repo.load_tree(self.index, a)?;
        let tb = self.repo.load_tree(self.index, b)?;
        // Both trees are sorted by name: merge them.
        let (mut ia, mut ib) = (ta.nodes.iter().peekable(), tb.nodes.iter().peekable());
        loop {
            let (na, nb) = match (ia.peek(), ib.peek()) {
                (None, None) => break,
                (Some(x), None) => (Some(*x), None),
                (None, Some(y)) => (None, Some(*y)),
                (Some(x), Some(y)) => match x.name.cmp(&y.name) {
                    std::cmp::Ordering::Less => (Some(*x), None),
                    std::cmp::Ordering::Greater => (None, Some(*y)),
                    std::cmp::Ordering::Equal => (Some(*x), Some(*y)),
                },
            };
            if na.is_some() {
                ia.next();
            }
            if nb.is_some() {
                ib.next();
            }
            match (na, nb) {
                (Some(x), Some(y)) => self.compare(x, y, prefix)?,
                (Some(x), None) => self.gone(x, prefix, false)?,
                (None, Some(y)) => self.gone(y, prefix, true)?,
                (None, None) => break,
            }
        }
        Ok(())
    }

    fn compare(&mut self, x: &Node, y: &Node, prefix: &Path) -> Result<()> {
        let path = prefix.join(OsStr::from_bytes(&x.name));
        add_blobs(&mut self.before, x);
        add_blobs(&mut self.after, y);
        if x.kind != y.kind {
            self.emit(shown(&path, y), "T")?;
            count(&mut self.stats.removed, x);
            count(&mut self.stats.added, y);
            if x.kind == NodeKind::Dir {
                self.list(&subtree(x, &path)?, &path, false)?;
            }
            if y.kind == NodeKind::Dir {
                self.list(&subtree(y, &path)?, &path, true)?;
            }
            return Ok(());
        }
        let content_differs = match x.kind {
            NodeKind::File => x.content != y.content,
            NodeKind::Symlink => x.symlink_target != y.symlink_target,
            _ => false,
        };
        if content_differs {
            if x.kind == NodeKind::File {
                self.stats.changed_files += 1;
            }
            self.emit(shown(&path, y), "M")?;
        } else if metadata_differs(x, y) {
            self.emit(shown(&path, y), "U")?;
        }
        if x.kind == NodeKind::Dir {
            self.diff_tree(&subtree(x, &path)?, &subtree(y, &path)?, &path)?;
        }
        Ok(())
    }

    /// `node` exists on one side only: `added` says which.
    fn gone(&mut self, node: &Node, prefix: &Path, added: bool) -> Result<()> {
        let path = prefix.join(OsStr::from_bytes(&node.name));
        self.emit(shown(&path, node), if added { "+" } else { "-" })?;
        self.record(node, added);
        if node.kind == NodeKind::Dir {
            self.list(&subtree(node, &path)?, &path, added)?;
        }
        Ok(())
    }

    fn record(&mut self, node: &Node, added: bool) {
        if added {
            count(&mut self.stats.added, node);
            add_blobs(&mut self.after, node);
        } else {
            count(&mut self.stats.removed, node);
            add_blobs(&mut self.before, node);
        }
    }

    /// Everything below `tree` was added (or removed).
    fn list(&mut self, tree: &BlobId, prefix: &Path, added: bool) -> Result<()> {
        let t = self.repo.load_tree(self.index, tree)?;
        for node in &t.nodes {
            self.gone(node, prefix, added)?;
        }
        Ok(())
    }
}
