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
use std::path::Path;

use crate::blob::BlobType;
use serde::Serialize;

use crate::context::{Cancel, Ctx};
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::repository::Repository;
use crate::tree::{resolve, Node, NodeKind, PairStream};

/// One changed path. Serialized as `diff --json` prints it:
/// `{"message_type":"change","modifier":..,"path":..}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Path from the compared roots, starting with `/`; directories end with `/`.
    pub path: String,
    /// restic's modifier: `+`, `-`, `M`, `U` or `T`.
    pub modifier: &'static str,
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Change", 3)?;
        st.serialize_field("message_type", "change")?;
        st.serialize_field("modifier", self.modifier)?;
        st.serialize_field("path", &self.path)?;
        st.end()
    }
}

/// Counts for one side of a diff (restic's `DiffStat`). Fields in name order: the JSON output
/// has its keys sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiffStat {
    /// Plaintext bytes of those blobs.
    pub bytes: u64,
    /// Data blobs referenced only by this side's changed entries.
    pub data_blobs: u64,
    /// Directories.
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// Other entries (symlinks, devices, fifos, sockets).
    pub others: u64,
    /// Tree blobs referenced only by this side's changed entries.
    pub tree_blobs: u64,
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

/// The totals of a diff of two snapshots as `diff --json` prints them (restic's
/// `statistics` message). Fields in name order: the JSON output has its keys sorted.
#[derive(Clone, Debug, Serialize)]
pub struct DiffSummary {
    /// What was added.
    pub added: DiffStat,
    /// Files present on both sides whose content differs.
    pub changed_files: u64,
    /// Always `"statistics"`.
    pub message_type: &'static str,
    /// What was removed.
    pub removed: DiffStat,
    /// The first snapshot's id (64 hex characters).
    pub source_snapshot: String,
    /// The second snapshot's id.
    pub target_snapshot: String,
}

/// A diff of two snapshots (or directories in them), resolved and ready to run: see
/// [`SnapshotDiff::new`] and [`SnapshotDiff::run`].
pub struct SnapshotDiff<'a> {
    ctx: &'a Ctx,
    repo: &'a Repository,
    index: &'a Index,
    /// The first snapshot and the tree compared in it.
    pub source: (SnapshotId, BlobId),
    /// The second snapshot and the tree compared in it.
    pub target: (SnapshotId, BlobId),
}

impl<'a> SnapshotDiff<'a> {
    /// Resolve `first` and `second`, each `SNAPSHOT` or `SNAPSHOT:PATH` (a snapshot as
    /// [`Repository::find_snapshot`] takes it, and a directory in it), under `lock`.
    /// Errors: those of [`Repository::find_snapshot`] and [`crate::tree::resolve`];
    /// [`Error::Usage`] when a path is not a directory; [`Error::Locked`] when the lock was lost.
    pub fn new(
        ctx: &'a Ctx,
        lock: &ReadLock,
        repo: &'a Repository,
        index: &'a Index,
        first: &str,
        second: &str,
    ) -> Result<Self> {
        lock.check()?;
        let side = |spec: &str| -> Result<(SnapshotId, BlobId)> {
            let (snap, path) = match spec.split_once(':') {
                Some((s, p)) => (s, Some(p)),
                None => (spec, None),
            };
            let (id, s) = repo.find_snapshot(ctx, snap, &Default::default())?;
            let loc = resolve(repo, index, &s.tree, path.unwrap_or("/"))?;
            let tree = loc.tree().ok_or_else(|| {
                Error::usage(format!(
                    "{}: {} in snapshot {} is not a directory",
                    spec,
                    loc.path().display(),
                    id.short()
                ))
            })?;
            Ok((id, tree))
        };
        Ok(SnapshotDiff { ctx, repo, index, source: side(first)?, target: side(second)? })
    }

    /// Compare (see [`diff_trees`]), calling `on_change` for each change in path order.
    /// Errors: those of [`diff_trees`].
    pub fn run(&self, on_change: &mut dyn FnMut(&Change) -> Result<()>) -> Result<DiffSummary> {
        let stats = diff_trees(self.repo, self.index, &self.ctx.cancel, &self.source.1, &self.target.1, on_change)?;
        Ok(DiffSummary {
            added: stats.added,
            changed_files: stats.changed_files,
            message_type: "statistics",
            removed: stats.removed,
            source_snapshot: self.source.0.to_hex(),
            target_snapshot: self.target.0.to_hex(),
        })
    }
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

/// Counts and blob sets gathered while [`diff_trees`] streams the changes.
struct Differ<'a> {
    stats: DiffStats,
    before: HashSet<BlobId>,
    after: HashSet<BlobId>,
    out: &'a mut dyn FnMut(&Change) -> Result<()>,
}

/// Compare the directory trees `a` and `b`, calling `on_change` for each change in path order,
/// and return the totals. The two trees are walked in step by one [`PairStream`] (any depth;
/// subtrees with equal ids are not read). Errors: [`Error::Interrupted`] once `cancel` is
/// cancelled; a tree that cannot be read; a blob missing from the index ([`Error::Corrupt`]);
/// the first error of `on_change`.
pub fn diff_trees(
    repo: &Repository,
    index: &Index,
    cancel: &Cancel,
    a: &BlobId,
    b: &BlobId,
    on_change: &mut dyn FnMut(&Change) -> Result<()>,
) -> Result<DiffStats> {
    let mut d = Differ { stats: DiffStats::default(), before: HashSet::new(), after: HashSet::new(), out: on_change };
    let mut stream = PairStream::new(repo, index, cancel, a, b, Path::new("/"))?;
    while let Some(pair) = stream.next_pair()? {
        match (&pair.old, &pair.new) {
            (Some(x), Some(y)) => d.compare(x, y, &pair.path)?,
            (Some(x), None) => d.gone(x, &pair.path, false)?,
            (None, Some(y)) => d.gone(y, &pair.path, true)?,
            (None, None) => {}
        }
        // Both directories: their differences; a directory on one side (added, removed, or a
        // type change): all its contents, as added or removed.
        stream.descend(&pair)?;
    }
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

impl Differ<'_> {
    fn emit(&mut self, path: String, modifier: &'static str) -> Result<()> {
        (self.out)(&Change { path, modifier })
    }

    /// The same name on both sides.
    fn compare(&mut self, x: &Node, y: &Node, path: &Path) -> Result<()> {
        add_blobs(&mut self.before, x);
        add_blobs(&mut self.after, y);
        if x.kind != y.kind {
            self.emit(shown(path, y), "T")?;
            count(&mut self.stats.removed, x);
            count(&mut self.stats.added, y);
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
            self.emit(shown(path, y), "M")?;
        } else if metadata_differs(x, y) {
            self.emit(shown(path, y), "U")?;
        }
        Ok(())
    }

    /// `node` exists on one side only: `added` says which.
    fn gone(&mut self, node: &Node, path: &Path, added: bool) -> Result<()> {
        self.emit(shown(path, node), if added { "+" } else { "-" })?;
        if added {
            count(&mut self.stats.added, node);
            add_blobs(&mut self.after, node);
        } else {
            count(&mut self.stats.removed, node);
            add_blobs(&mut self.before, node);
        }
        Ok(())
    }
}
