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
use std::path::{Path, PathBuf};

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
    a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.user != b.user
        || a.group != b.group
        || a.mtime != b.mtime
        || a.rdev != b.rdev
        || a.xattrs != b.xattrs
}

struct Differ<'a> {
    repo: &'a Repository,
    index: &'a Index,
    stats: DiffStats,
    before: HashSet<BlobId>,
    after: HashSet<BlobId>,
    out: &'a mut dyn FnMut(&Change) -> Result<()>,
    /// Trees still to compare or list, the next on top (a stack of its own instead of
    /// recursion, so any depth works; one partly read tree or pair per level).
    work: Vec<Work>,
}

/// One step of the walk in [`Differ::run`].
enum Work {
    /// Compare two trees at `prefix` (not read yet).
    Diff { a: BlobId, b: BlobId, prefix: PathBuf },
    /// Two trees being compared: their entries not compared yet.
    Merge {
        a: Box<std::iter::Peekable<std::vec::IntoIter<Node>>>,
        b: Box<std::iter::Peekable<std::vec::IntoIter<Node>>>,
        prefix: PathBuf,
    },
    /// List everything below `tree` as added or removed (not read yet).
    List { tree: BlobId, prefix: PathBuf, added: bool },
    /// A tree being listed: its entries not listed yet.
    Listing { nodes: std::vec::IntoIter<Node>, prefix: PathBuf, added: bool },
}

/// Compare the directory trees `a` and `b`, calling `on_change` for each change in path order,
/// and return the totals. Errors: a tree that cannot be read, a blob missing from the index,
/// or the first error of `on_change`.
pub fn diff_trees(
    repo: &Repository,
    index: &Index,
    a: &BlobId,
    b: &BlobId,
    on_change: &mut dyn FnMut(&Change) -> Result<()>,
) -> Result<DiffStats> {
    let mut d = Differ {
        repo,
        index,
        stats: DiffStats::default(),
        before: HashSet::new(),
        after: HashSet::new(),
        out: on_change,
        work: Vec::new(),
    };
    d.diff_tree(a, b, Path::new("/"));
    d.run()?;
    let both: HashSet<BlobId> = d.before.intersection(&d.after).copied().collect();
    let mut stats = std::mem::take(&mut d.stats);
    count_blobs(index, d.before.difference(&both), &mut stats.removed)?;
    count_blobs(index, d.after.difference(&both), &mut stats.added)?;
    Ok(stats)
}

fn count_blobs<'a>(index: &Index, ids: impl Iterator<Item = &'a BlobId>, stat: &mut DiffStat) -> Result<()> {
    for id in ids {
        let (_, loc) =
            index.get(id).ok_or_else(|| Error::corrupt(format!("blob {}", id.short()), "not in the index"))?;
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

    /// Compare trees `a` and `b` at `prefix` (queued: [`Differ::run`] does the work).
    fn diff_tree(&mut self, a: &BlobId, b: &BlobId, prefix: &Path) {
        if a != b {
            self.work.push(Work::Diff { a: *a, b: *b, prefix: prefix.to_path_buf() });
        }
    }

    /// Do the queued work, one entry at a time, depth-first in name order.
    fn run(&mut self) -> Result<()> {
        while let Some(w) = self.work.pop() {
            if crate::archiver::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            match w {
                Work::Diff { a, b, prefix } => {
                    let ta = self.repo.load_tree(self.index, &a)?;
                    let tb = self.repo.load_tree(self.index, &b)?;
                    self.work.push(Work::Merge {
                        a: Box::new(ta.nodes.into_iter().peekable()),
                        b: Box::new(tb.nodes.into_iter().peekable()),
                        prefix,
                    });
                }
                Work::List { tree, prefix, added } => {
                    let t = self.repo.load_tree(self.index, &tree)?;
                    self.work.push(Work::Listing { nodes: t.nodes.into_iter(), prefix, added });
                }
                Work::Merge { mut a, mut b, prefix } => {
                    let take_a = match (a.peek(), b.peek()) {
                        (None, None) => continue,
                        (Some(_), None) => (true, false),
                        (None, Some(_)) => (false, true),
                        (Some(x), Some(y)) => match x.name.cmp(&y.name) {
                            std::cmp::Ordering::Less => (true, false),
                            std::cmp::Ordering::Greater => (false, true),
                            std::cmp::Ordering::Equal => (true, true),
                        },
                    };
                    let na = if take_a.0 { a.next() } else { None };
                    let nb = if take_a.1 { b.next() } else { None };
                    let before = self.work.len();
                    match (na, nb) {
                        (Some(x), Some(y)) => self.compare(&x, &y, &prefix)?,
                        (Some(x), None) => self.gone(&x, &prefix, false)?,
                        (None, Some(y)) => self.gone(&y, &prefix, true)?,
                        (None, None) => {}
                    }
                    // The rest of this pair comes after whatever these entries queued.
                    self.resume_under(before, Some(Work::Merge { a, b, prefix }));
                }
                Work::Listing { mut nodes, prefix, added } => {
                    let Some(node) = nodes.next() else { continue };
                    let before = self.work.len();
                    self.gone(&node, &prefix, added)?;
                    self.resume_under(before, Some(Work::Listing { nodes, prefix, added }));
                }
            }
        }
        Ok(())
    }

    /// Put `rest` (the frame an entry came from) below the work that entry queued at
    /// `before..`, so that the entry's subtrees are done first, in the order they were queued.
    fn resume_under(&mut self, before: usize, rest: Option<Work>) {
        let mut queued = self.work.split_off(before);
        // Queued in walk order; the stack pops the last first.
        queued.reverse();
        self.work.extend(rest);
        self.work.extend(queued);
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
                self.list(&subtree(x, &path)?, &path, false);
            }
            if y.kind == NodeKind::Dir {
                self.list(&subtree(y, &path)?, &path, true);
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
            self.diff_tree(&subtree(x, &path)?, &subtree(y, &path)?, &path);
        }
        Ok(())
    }

    /// `node` exists on one side only: `added` says which.
    fn gone(&mut self, node: &Node, prefix: &Path, added: bool) -> Result<()> {
        let path = prefix.join(OsStr::from_bytes(&node.name));
        self.emit(shown(&path, node), if added { "+" } else { "-" })?;
        self.record(node, added);
        if node.kind == NodeKind::Dir {
            self.list(&subtree(node, &path)?, &path, added);
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

    /// List everything below `tree` at `prefix` as added or removed (queued).
    fn list(&mut self, tree: &BlobId, prefix: &Path, added: bool) {
        self.work.push(Work::List { tree: *tree, prefix: prefix.to_path_buf(), added });
    }
}
