//! `copy`: copy snapshots, with every tree and data blob they need, from one repository (the
//! source) into another (the target), as restic's `copy` does.
//!
//! A snapshot is copied once: the copy records the id of the snapshot it copies
//! ([`Snapshot::original`]; a copy of a copy keeps the first one's), and a source snapshot is
//! skipped when the target holds a snapshot with that original (or that very id) and the same
//! time, host, user, paths, tags and excludes (restic's `similarSnapshots`; the root tree too
//! when both repositories hash blobs alike). So running `copy` every night moves only the
//! night's new snapshots, and of their blobs only those the target does not hold.
//!
//! Two cases, by the repositories' id keys (repo-format.md, "Keys"):
//!
//! - **Shared id keys** (`init --copy-chunker-params`, [`Repository::same_blob_ids`]): a blob has the same id in both. The
//!   blobs the target lacks are read from the source, verified, and sealed into the target's
//!   packs as they were framed (compressed) in the source: no re-hashing beyond the
//!   verification, no recompression. Trees are copied as they are.
//! - **Separate keys**: the same content has different ids. Each data blob the snapshot
//!   needs is read and verified, and its id recomputed with the target's key (the target
//!   stores it unless it already has that id: each blob crosses at most once); then every
//!   tree is rewritten bottom-up with the translated ids and stored. Chunk boundaries stay the
//!   source's, so a later backup straight into the target does not deduplicate against the
//!   copied data (document it; `init --copy-chunker-params` avoids it).
//!
//! Order and crash safety (repo-format.md, "Read and write ordering"): each snapshot's blobs
//! go into packs, the packs are indexed ([`crate::archiver::Saver::checkpoint`]), and only
//! then is the snapshot written, under the target's append lock (checked before every index
//! file and before the snapshot). An interrupted copy leaves packs and index files that the
//! next copy uses (packs written but not indexed are indexed from their headers first,
//! [`Repository::index_unindexed_packs`]), so nothing is sent twice but the pack in flight.
//!
//! Trees are walked with [`crate::tree::reachable::unique_trees`] (iterative, each tree
//! once); the rewrite of the separate-keys case is an explicit post-order over the trees held
//! in memory, never a recursion.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use crate::archiver::{Permit, Progress as SaverProgress, Saver};
use crate::blob::BlobType;
use crate::context::{Ctx, Warning};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::{Index, PackInfo};
use crate::lock::{AppendLock, ReadLock};
use crate::repository::{OpenedBlob, PackBlob, PackRead, Repository};
use crate::snapshot::{Snapshot, Summary};
use crate::tree::reachable::unique_trees;
use crate::tree::Tree;

/// How a copy runs.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Threads reading the source's packs at once; 0 for one per CPU (rayon's pool).
    pub readers: usize,
    /// Packs uploaded to the target at once (at least 1).
    pub connections: usize,
    /// Counters a progress display polls.
    pub progress: Arc<CopyProgress>,
    /// Leave out a source snapshot older than the newest copy the target holds of the same
    /// host and paths ([`CopyReport::older`]): a nightly copy into a target that keeps fewer
    /// snapshots than the source (its own retention) does not copy again, every night, the
    /// snapshots that the target's forget removed. A profile's copy does this.
    pub skip_older: bool,
}

/// Counters of a running copy, for a progress display (all grow only, but `bytes_total`,
/// which grows as each snapshot's needs become known).
#[derive(Debug, Default)]
pub struct CopyProgress {
    /// Snapshots to copy (those not already in the target), once known.
    pub snapshots_total: AtomicU64,
    /// Snapshots copied so far.
    pub snapshots_done: AtomicU64,
    /// Plaintext bytes of the blobs to read from the source, for the snapshots planned so far.
    pub bytes_total: AtomicU64,
    /// Plaintext bytes of those blobs read and handed to the target so far.
    pub bytes_done: AtomicU64,
}

/// One snapshot copied, or found copied before.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CopiedSnapshot {
    /// Its id in the source.
    pub source: String,
    /// Its id in the target.
    pub target: String,
    /// The id of the snapshot it is a copy of (the source's own id, or its original).
    pub original: String,
}

impl CopiedSnapshot {
    /// Source snapshot `id` (`s`) and its copy `target`.
    fn new(id: &SnapshotId, s: &Snapshot, target: &SnapshotId) -> Self {
        CopiedSnapshot { source: id.to_hex(), target: target.to_hex(), original: original_of(id, s).to_hex() }
    }
}

/// What a copy did (`copy --json`: restic's copy prints no summary; the keys follow
/// `backup`'s summary where they mean the same).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Always `"summary"`.
    pub message_type: &'static str,
    /// True when both repositories hash blobs alike (`init --copy-chunker-params`): blobs
    /// were moved as they were, without translating ids.
    pub same_blob_ids: bool,
    /// Snapshots selected in the source.
    pub snapshots_selected: u64,
    /// Snapshots copied by this run, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the target already held a copy of.
    pub skipped: Vec<CopiedSnapshot>,
    /// Source snapshots left out as older than the newest copy of their host and paths in
    /// the target ([`CopyOptions::skip_older`]), by source id.
    pub older: Vec<String>,
    /// Blobs the copied snapshots needed that the target already held.
    pub blobs_present: u64,
    /// Blobs read from the source (and verified).
    pub blobs_read: u64,
    /// Plaintext bytes of the blobs read from the source.
    pub bytes_read: u64,
    /// Data blobs stored in the target.
    pub data_blobs: u64,
    /// Tree blobs stored in the target.
    pub tree_blobs: u64,
    /// Plaintext bytes of the blobs stored in the target.
    pub data_added: u64,
    /// Stored bytes (compressed, encrypted) of the blobs stored in the target.
    pub data_added_packed: u64,
    /// Packs found in the target without an index entry (an interrupted run's) and indexed.
    pub packs_recovered: u64,
}

/// Copy `snapshots` (ids and contents, as selected in `src`) from `src` into `dst`, oldest
/// first, skipping those `dst` already holds a copy of (see the module docs).
///
/// `src_lock` (a shared lock, checked before each snapshot) keeps a prune of the source from
/// deleting what is being read;
/// `dst_lock` (a shared append lock) is checked before every index file and snapshot written.
/// Errors: [`Error::Interrupted`] when `ctx` is cancelled (what was written stays, indexed
/// where complete); [`Error::Corrupt`] for a blob of the source that is missing from its
/// index or fails verification (the copy stops; nothing damaged is passed on);
/// [`Error::Backend`] for either storage failing; the lock's errors.
pub fn copy(
    ctx: &Ctx,
    src: &Repository,
    src_lock: &ReadLock,
    dst: &Repository,
    dst_lock: &AppendLock,
    mut snapshots: Vec<(SnapshotId, Snapshot)>,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    snapshots.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    let same = src.same_blob_ids(dst);
    let mut report = CopyReport {
        message_type: "summary",
        same_blob_ids: same,
        snapshots_selected: snapshots.len() as u64,
        ..CopyReport::default()
    };
    ctx.progress.phase("loading the target's snapshots");
    let (mut existing, _damaged) = dst.snapshots_and_damaged(&Default::default())?;
    let mut todo = Vec::new();
    for (id, s) in &snapshots {
        if let Some(target) = find_copy(&existing, id, s, same) {
            report.skipped.push(CopiedSnapshot::new(id, s, &target));
            continue;
        }
        if opts.skip_older {
            let newest = newest_copy(&existing, s).map(|(_, t)| t.time);
            if newest.is_some_and(|n| s.time < n) {
                report.older.push(id.to_hex());
                continue;
            }
        }
        todo.push((*id, s.clone()));
    }
    opts.progress.snapshots_total.store(todo.len() as u64, Ordering::Relaxed);
    if todo.is_empty() {
        return Ok(report);
    }
    ctx.progress.phase("loading the index files");
    let src_index = src.load_index()?;
    let mut dst_index = dst.load_index()?;
    report.packs_recovered = dst.index_unindexed_packs(dst_lock, &mut dst_index)? as u64;
    let pool = match opts.readers {
        0 => None,
        n => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("cairn-copy-read-{i}"))
                .build()
                .map_err(|e| Error::internal(format!("cannot start the copy's reading threads: {e}")))?,
        ),
    };
    let saver_progress = SaverProgress::default();
    let saver = Saver::new(dst, &dst_index, Permit::Write(dst_lock), opts.connections, &saver_progress);
    let mut run = Run {
        ctx,
        src,
        dst,
        src_index: &src_index,
        dst_index: &dst_index,
        saver: &saver,
        same,
        pool: pool.as_ref(),
        progress: &opts.progress,
        translated: Mutex::new(HashMap::new()),
        handled: HashSet::new(),
        mirrored: HashSet::new(),
        blobs_read: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
        blobs_present: AtomicU64::new(0),
    };
    let result = (|| -> Result<()> {
        for (id, s) in &todo {
            src_lock.check()?;
            // Two source snapshots with one original (copies from two repositories): one copy.
            if let Some(target) = find_copy(&existing, id, s, same) {
                report.skipped.push(CopiedSnapshot::new(id, s, &target));
                continue;
            }
            if !same {
                run.learn_from_last_copy(s, &existing, &snapshots)?;
            }
            let (copied, target, snapshot, written) = run.snapshot(id, s, dst_lock, &mut existing)?;
            if written {
                report.copied.push(copied);
                existing.push((target, snapshot));
            } else {
                report.skipped.push(copied);
            }
            opts.progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
            fault_point("snapshot");
        }
        Ok(())
    })();
    if result.is_err() {
        // What was uploaded stays and is indexed, for the next run.
        saver.salvage();
    }
    let mut counts = Summary::default();
    saver.fill_summary(&mut counts);
    report.data_blobs = counts.counts.data_blobs;
    report.tree_blobs = counts.counts.tree_blobs;
    report.data_added = counts.counts.data_added;
    report.data_added_packed = counts.counts.data_added_packed;
    report.blobs_read = run.blobs_read.load(Ordering::Relaxed);
    report.bytes_read = run.bytes_read.load(Ordering::Relaxed);
    report.blobs_present = run.blobs_present.load(Ordering::Relaxed);
    result.map(|()| report)
}

/// The newest snapshot of `existing` that is a copy (has an original) of the same host and
/// paths as `s`.
fn newest_copy<'e>(existing: &'e [(SnapshotId, Snapshot)], s: &Snapshot) -> Option<&'e (SnapshotId, Snapshot)> {
    let key = s.host_paths();
    existing.iter().filter(|(_, t)| t.original.is_some() && t.host_paths() == key).max_by_key(|(_, t)| t.time)
}

/// The id a copy of snapshot `id` records as its original.
fn original_of(id: &SnapshotId, s: &Snapshot) -> SnapshotId {
    s.original.unwrap_or(*id)
}

/// The target snapshot among `existing` that is a copy of source snapshot `id` (`s`), if any:
/// its original (or its own id) is `s`'s original, and it is similar (restic's
/// `similarSnapshots`: everything but parent and original; the root tree only when both
/// repositories hash alike, since with separate keys the trees' ids differ).
fn find_copy(existing: &[(SnapshotId, Snapshot)], id: &SnapshotId, s: &Snapshot, same: bool) -> Option<SnapshotId> {
    let original = original_of(id, s);
    existing
        .iter()
        .find(|(tid, t)| {
            (t.original == Some(original) || *tid == original)
                && t.time == s.time
                && t.hostname == s.hostname
                && t.username == s.username
                && t.uid == s.uid
                && t.gid == s.gid
                && t.paths == s.paths
                && t.tags == s.tags
                && t.excludes == s.excludes
                && (!same || t.tree == s.tree)
        })
        .map(|(tid, _)| *tid)
}

/// The state of one copy run, shared by its snapshots.
struct Run<'a> {
    ctx: &'a Ctx,
    src: &'a Repository,
    dst: &'a Repository,
    src_index: &'a Index,
    dst_index: &'a Index,
    saver: &'a Saver<'a>,
    same: bool,
    pool: Option<&'a rayon::ThreadPool>,
    progress: &'a CopyProgress,
    /// Separate keys: (type, source blob id) → target blob id, for every blob this run stored
    /// or found in the target. Keyed by type too: a data blob whose plaintext is a serialized
    /// tree has the tree's source id, but the tree's copy is rewritten and gets another id.
    translated: Mutex<HashMap<(BlobType, BlobId), BlobId>>,
    /// Shared keys: the source blobs this run already planned (stored, or found present).
    handled: HashSet<BlobId>,
    /// Separate keys: the target snapshots this run learned blob ids from, or wrote.
    mirrored: HashSet<SnapshotId>,
    blobs_read: AtomicU64,
    bytes_read: AtomicU64,
    blobs_present: AtomicU64,
}

/// The blobs of one source pack to read.
struct PackWork {
    info: PackInfo,
    blobs: Vec<PackBlob>,
}

impl Run<'_> {
    /// Copy one snapshot: its blobs, a checkpoint (packs and index written), its snapshot.
    /// Returns what was copied, the target's snapshot id and snapshot, and false when the
    /// target turned out to hold a copy already (written by another copy meanwhile; none is
    /// written then). `existing`, the target's snapshots known so far, gains those found
    /// meanwhile.
    fn snapshot(
        &mut self,
        id: &SnapshotId,
        s: &Snapshot,
        dst_lock: &AppendLock,
        existing: &mut Vec<(SnapshotId, Snapshot)>,
    ) -> Result<(CopiedSnapshot, SnapshotId, Snapshot, bool)> {
        self.ctx.progress.phase(&format!("copying snapshot {}", id.short()));
        let root = if self.same { self.copy_same(&s.tree)? } else { self.copy_translated(&s.tree)? };
        self.saver.checkpoint()?;
        fault_point("indexed");
        self.ctx.check()?;
        let mut copy = s.clone();
        copy.tree = root;
        // The parent names a snapshot of the source; it means nothing in the target (restic
        // drops it too).
        copy.parent = None;
        copy.original = Some(original_of(id, s));
        // Another copy into the same target (a second timer, another host) may have written
        // this snapshot's copy meanwhile: look again (this narrows the window in which both
        // write one; it does not close it, as the storage offers no compare-and-set here).
        // Only the snapshot files not seen yet are loaded.
        let known: HashSet<SnapshotId> = existing.iter().map(|(e, _)| *e).collect();
        for (sid, _) in self.dst.list::<Snapshot>()? {
            if known.contains(&sid) {
                continue;
            }
            // A file that does not load is not a copy of anything (check reports it).
            if let Ok(new) = self.dst.load_snapshot(&sid) {
                existing.push((sid, new));
            }
        }
        if let Some(there) = find_copy(existing, id, s, self.same) {
            return Ok((CopiedSnapshot::new(id, s, &there), there, copy, false));
        }
        dst_lock.check()?;
        let target = self.dst.write_snapshot(dst_lock, &copy)?;
        // Its blobs' target ids are known: nothing to learn from it later in this run.
        self.mirrored.insert(target);
        Ok((CopiedSnapshot::new(id, s, &target), target, copy, true))
    }

    /// Shared keys: every tree and data blob below `root` that the target lacks is copied as
    /// it is. Returns the root (the same id in the target).
    fn copy_same(&mut self, root: &BlobId) -> Result<BlobId> {
        let mut wanted: Vec<(BlobType, BlobId)> = Vec::new();
        let (src, index, saver) = (self.src, self.src_index, self.saver);
        let dst_has = |id: &BlobId| saver.has(id);
        let handled = &mut self.handled;
        let mut present = 0u64;
        unique_trees(
            self.ctx,
            [*root],
            |t| src.load_tree(index, t).map_err(in_source),
            |t, _, tree| {
                if handled.insert(t) {
                    if dst_has(&t) {
                        present += 1;
                    } else {
                        wanted.push((BlobType::Tree, t));
                    }
                }
                let tree = tree?;
                let mut subtrees = Vec::new();
                for node in &tree.nodes {
                    for c in &node.content {
                        if handled.insert(*c) {
                            if dst_has(c) {
                                present += 1;
                            } else {
                                wanted.push((BlobType::Data, *c));
                            }
                        }
                    }
                    subtrees.extend(node.subtree);
                }
                Ok(subtrees)
            },
        )?;
        self.blobs_present.fetch_add(present, Ordering::Relaxed);
        self.transfer(&wanted)?;
        Ok(*root)
    }

    /// Separate keys: before copying `s`, learn the target ids of the blobs it may share with
    /// the newest earlier copy of its host and paths in the target (`existing`), whose source
    /// snapshot is found among `selected` or loaded from the source by its original id. Each
    /// copy is learned from once per run. The learning only saves reading: when it fails (a
    /// tree that cannot be read on either side), a warning says so and the copy goes on
    /// without it.
    fn learn_from_last_copy(
        &mut self,
        s: &Snapshot,
        existing: &[(SnapshotId, Snapshot)],
        selected: &[(SnapshotId, Snapshot)],
    ) -> Result<()> {
        let key = s.host_paths();
        let last = existing
            .iter()
            .filter(|(_, t)| t.original.is_some() && t.time <= s.time && t.host_paths() == key)
            .max_by_key(|(_, t)| t.time);
        let Some((copy_id, copy)) = last else { return Ok(()) };
        let Some(original) = copy.original else { return Ok(()) };
        // A copy this run wrote taught its ids already (it is in `mirrored`); one learned from,
        // too.
        if !self.mirrored.insert(*copy_id) {
            return Ok(());
        }
        let source_tree = match selected.iter().find(|(i, t)| original_of(i, t) == original) {
            Some((_, t)) => Ok(t.tree),
            None => self.src.load_snapshot(&original).map(|t| t.tree),
        };
        match source_tree.and_then(|tree| self.mirror(&tree, &copy.tree)) {
            Ok(()) => Ok(()),
            // An interrupt, or a storage that fails, stops the copy as anywhere else.
            Err(e) if matches!(e, Error::Interrupted) || e.is_storage_failure() => Err(e),
            // Not found in the source (forgotten there): nothing to learn, nothing to say.
            Err(e) if e.kind() == crate::error::Kind::NotFound => Ok(()),
            Err(e) => {
                self.ctx.warn(&Warning::CopyLearningFailed(&e));
                Ok(())
            }
        }
    }

    /// Separate keys: learn the target ids of the data blobs below source tree `src_root`
    /// from `dst_root`, the root of its copy in the target (written by an earlier copy), by
    /// walking both in step: a new snapshot's blobs that an earlier one shares are then
    /// neither read nor sent. A pair of entries that does not match (name, kind, size, blob
    /// count, each blob's plaintext length, the blob in the target's index) teaches nothing
    /// below it: those blobs are read and re-hashed as if there were no earlier copy. An
    /// explicit stack of tree pairs, no recursion. Errors: a tree that cannot be read.
    fn mirror(&self, src_root: &BlobId, dst_root: &BlobId) -> Result<()> {
        let dst_index = self.dst_index;
        self.ctx.progress.phase("matching the last copied snapshot");
        let mut stack = vec![(*src_root, *dst_root)];
        let mut seen: HashSet<BlobId> = HashSet::new();
        let mut learned: Vec<(BlobId, BlobId)> = Vec::new();
        while let Some((a, b)) = stack.pop() {
            self.ctx.check()?;
            if !seen.insert(a) {
                continue;
            }
            let (ta, tb) = (self.src.load_tree(self.src_index, &a)?, self.dst.load_tree(dst_index, &b)?);
            if ta.nodes.len() != tb.nodes.len() {
                continue;
            }
            for (x, y) in ta.nodes.iter().zip(&tb.nodes) {
                if x.name != y.name || x.kind != y.kind || x.size != y.size || x.content.len() != y.content.len() {
                    continue;
                }
                let lengths_agree = x.content.iter().zip(&y.content).all(|(ca, cb)| {
                    match (self.src_index.get(ca), dst_index.get(cb)) {
                        (Some((_, la)), Some((_, lb))) => la.raw_length == lb.raw_length,
                        _ => false,
                    }
                });
                if lengths_agree {
                    learned.extend(x.content.iter().copied().zip(y.content.iter().copied()));
                }
                if let (Some(sa), Some(sb)) = (x.subtree, y.subtree) {
                    stack.push((sa, sb));
                }
            }
        }
        self.translated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(learned.into_iter().map(|(a, b)| ((BlobType::Data, a), b)));
        Ok(())
    }

    /// Separate keys: the data blobs below `root` are stored under the target's ids, then
    /// every tree is rewritten bottom-up with translated ids. Returns the target's root id.
    fn copy_translated(&mut self, root: &BlobId) -> Result<BlobId> {
        let mut trees: HashMap<BlobId, Tree> = HashMap::new();
        let mut wanted: Vec<(BlobType, BlobId)> = Vec::new();
        {
            let translated = self.translated.lock().unwrap_or_else(|p| p.into_inner());
            let mut planned: HashSet<BlobId> = HashSet::new();
            let (src, index) = (self.src, self.src_index);
            unique_trees(
                self.ctx,
                [*root],
                |t| src.load_tree(index, t).map_err(in_source),
                |t, _, tree| {
                    // A tree translated earlier in this run: its whole subtree is in the target.
                    if translated.contains_key(&(BlobType::Tree, t)) {
                        return Ok(Vec::new());
                    }
                    let tree = tree?;
                    let mut subtrees = Vec::new();
                    for node in &tree.nodes {
                        for c in &node.content {
                            if !translated.contains_key(&(BlobType::Data, *c)) && planned.insert(*c) {
                                wanted.push((BlobType::Data, *c));
                            }
                        }
                        subtrees.extend(node.subtree);
                    }
                    trees.insert(t, tree);
                    Ok(subtrees)
                },
            )?;
        }
        self.transfer(&wanted)?;
        self.rewrite_trees(root, &trees)
    }

    /// Store the trees of `trees` (source id → tree) below and including `root` in the
    /// target, children before parents, each with its content and subtree ids translated.
    /// Returns the target id of `root`. An explicit stack, no recursion: `(id, expanded)`
    /// entries; a tree is stored when its expanded entry is popped, by which time every
    /// subtree pushed above it has been stored.
    fn rewrite_trees(&self, root: &BlobId, trees: &HashMap<BlobId, Tree>) -> Result<BlobId> {
        let mut stack: Vec<(BlobId, bool)> = vec![(*root, false)];
        let mut translated = self.translated.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((id, expanded)) = stack.pop() {
            self.ctx.check()?;
            if translated.contains_key(&(BlobType::Tree, id)) {
                continue;
            }
            let tree = trees.get(&id).ok_or_else(|| {
                Error::internal(format!("copy: tree {} was neither loaded nor translated", id.short()))
            })?;
            if !expanded {
                stack.push((id, true));
                for node in &tree.nodes {
                    if let Some(sub) = node.subtree.filter(|s| !translated.contains_key(&(BlobType::Tree, *s))) {
                        stack.push((sub, false));
                    }
                }
                continue;
            }
            let mut new = tree.clone();
            for node in &mut new.nodes {
                for c in &mut node.content {
                    *c = *translated.get(&(BlobType::Data, *c)).ok_or_else(|| {
                        Error::internal(format!("copy: data blob {} has no translated id", c.short()))
                    })?;
                }
                if let Some(sub) = &mut node.subtree {
                    *sub = *translated.get(&(BlobType::Tree, *sub)).ok_or_else(|| {
                        Error::internal(format!("copy: subtree {} was not stored before its parent", sub.short()))
                    })?;
                }
            }
            let bytes = new.encode()?;
            let target = self.dst.blob_id(&bytes);
            self.saver.save_verified(BlobType::Tree, target, &bytes, None)?;
            translated.insert((BlobType::Tree, id), target);
        }
        translated
            .get(&(BlobType::Tree, *root))
            .copied()
            .ok_or_else(|| Error::internal(format!("copy: root tree {} was not stored", root.short())))
    }

    /// Read `wanted` from the source, pack by pack on the reading threads, verify each blob
    /// and store it in the target (under its own id with shared keys, under the target's id
    /// of its plaintext otherwise). Errors: a blob missing from the source's index; the first
    /// read or store error.
    fn transfer(&self, wanted: &[(BlobType, BlobId)]) -> Result<()> {
        let mut packs: HashMap<PackId, PackWork> = HashMap::new();
        let mut total = 0u64;
        for (blob_type, id) in wanted {
            let (info, loc) = self.src_index.get(id).ok_or_else(|| {
                Error::corrupt(
                    format!("{blob_type:?} blob {}", id.to_hex()),
                    "not in the source repository's index (run `cairn check` on the source)",
                )
            })?;
            total += loc.raw_length as u64;
            packs
                .entry(info.id)
                .or_insert_with(|| PackWork { info: info.clone(), blobs: Vec::new() })
                .blobs
                .push(PackBlob::indexed(*id, &loc));
        }
        self.progress.bytes_total.fetch_add(total, Ordering::Relaxed);
        let mut work: Vec<PackWork> = packs.into_values().collect();
        for w in &mut work {
            w.blobs.sort_by_key(|b| b.offset);
        }
        // Biggest reads first: the last thread to finish is not left with a large pack.
        work.sort_by_key(|w| std::cmp::Reverse(w.blobs.iter().map(|b| b.length as u64).sum::<u64>()));
        let go = || work.par_iter().with_max_len(1).try_for_each(|w| self.transfer_pack(w));
        match self.pool {
            Some(pool) => pool.install(go),
            None => go(),
        }
    }

    /// Read the wanted blobs of one source pack and store each in the target.
    fn transfer_pack(&self, w: &PackWork) -> Result<()> {
        self.ctx.check()?;
        let cached = w.blobs.first().is_some_and(|b| b.blob_type == BlobType::Tree);
        let read = PackRead {
            id: &w.info.id,
            salt: &w.info.salt,
            other_copies: Some(self.src_index),
            cancel: Some(&self.ctx.cancel),
            cached,
        };
        let mut failed: Option<Error> = None;
        self.src
            .read_pack_blobs_framed(&read, &w.blobs, |i, r| {
                if failed.is_some() {
                    return;
                }
                let stored = match (r, w.blobs.get(i)) {
                    (Ok(blob), Some(b)) => self.store(b, &blob),
                    (Err(e), _) => Err(in_source(e)),
                    (Ok(_), None) => Err(Error::internal("the pack reader gave a blob that was not asked for")),
                };
                if let Err(e) = stored {
                    failed = Some(e);
                }
            })
            .map_err(in_source)?;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Store one verified source blob in the target.
    fn store(&self, b: &PackBlob, blob: &OpenedBlob) -> Result<()> {
        let target = if self.same { b.id } else { self.dst.blob_id(&blob.plain) };
        if !self.saver.save_verified(b.blob_type, target, &blob.plain, blob.framed.as_deref())? {
            self.blobs_present.fetch_add(1, Ordering::Relaxed);
        }
        if !self.same {
            // Only data blobs are transferred with separate keys (trees are rewritten): keyed
            // as data even when the source stored this plaintext as a tree (the empty tree).
            self.translated.lock().unwrap_or_else(|p| p.into_inner()).insert((BlobType::Data, b.id), target);
        }
        self.blobs_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(blob.plain.len() as u64, Ordering::Relaxed);
        self.progress.bytes_done.fetch_add(blob.plain.len() as u64, Ordering::Relaxed);
        fault_point("blob");
        Ok(())
    }
}

/// Damage found reading the source, said as such (the target is not the repository to check).
fn in_source(e: Error) -> Error {
    match e {
        Error::Corrupt { object, detail } => Error::Corrupt {
            object: format!("{object} (in the source repository)"),
            detail: format!(
                "{detail}; nothing that needs it was copied: check the source with `cairn check --read-data`"
            ),
        },
        e => e,
    }
}

/// Fault injection for the crash tests (tests/it/copy.rs), in builds with the `failpoints`
/// feature only: the failpoint `copy-<name>` (`blob`: after a blob is handed to the target's
/// packs; `indexed`: after a snapshot's packs and index are written, before the snapshot;
/// `snapshot`: after a snapshot is written) set to `return` makes the process send itself
/// SIGKILL there, as a power cut or the OOM killer would. Without the feature this function
/// is empty.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn fault_point(name: &str) {
    fail::fail_point!(&format!("copy-{name}"), |_| {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archiver::{backup, BackupOptions, Progress, Source};
    use crate::repository::tests::temp_repo;
    use crate::tree::{walk, NodeKind, Visit};
    use std::path::{Path, PathBuf};

    fn backup_dir(repo: &Repository, dir: &Path) -> (SnapshotId, Snapshot) {
        let lock = AppendLock::acquire(repo, "test", &Default::default()).unwrap();
        let index = repo.load_index().unwrap();
        let opts = BackupOptions { host: Some("h".into()), ..BackupOptions::default() };
        let r = backup(
            &Ctx::default(),
            Permit::Write(&lock),
            repo,
            &index,
            Source::Paths(vec![dir.to_path_buf()]),
            &opts,
            &Progress::default(),
        )
        .unwrap();
        let id = r.id.unwrap();
        (id, repo.load_snapshot(&id).unwrap())
    }

    /// Every file below a snapshot's tree: path → (kind, content bytes).
    fn contents(repo: &Repository, tree: &BlobId) -> Vec<(PathBuf, NodeKind, Vec<u8>)> {
        let index = repo.load_index().unwrap();
        let mut out = Vec::new();
        walk(repo, &index, &Default::default(), tree, Path::new("/"), &mut |path, node| {
            let mut bytes = Vec::new();
            for c in &node.content {
                bytes.extend(repo.read_blob(&index, BlobType::Data, c)?);
            }
            out.push((path.to_path_buf(), node.kind, bytes));
            Ok(Visit::Descend)
        })
        .unwrap();
        out
    }

    fn do_copy(src: &Repository, dst: &Repository, snaps: Vec<(SnapshotId, Snapshot)>) -> CopyReport {
        let src_lock = ReadLock::acquire(src, "copy", &Default::default()).unwrap();
        let dst_lock = AppendLock::acquire(dst, "copy", &Default::default()).unwrap();
        copy(
            &Ctx::default(),
            src,
            &src_lock,
            dst,
            &dst_lock,
            snaps,
            &CopyOptions { connections: 1, ..Default::default() },
        )
        .unwrap()
    }

    /// Separate keys: a file whose bytes are exactly a (non-empty) tree of the source has that
    /// tree's source id, but the tree's copy is rewritten: each keeps its own target id, in
    /// either order of copying, and both snapshots restore their own bytes.
    #[test]
    fn a_file_holding_a_trees_bytes_and_that_tree_are_translated_apart() {
        let (_a, src) = temp_repo();
        let dirs = tempfile::tempdir().unwrap();
        let a = dirs.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("sub/f"), b"content").unwrap();
        let with_tree = backup_dir(&src, &a);
        let index = src.load_index().unwrap();
        let tree_bytes = src.read_blob(&index, BlobType::Tree, &with_tree.1.tree).unwrap();
        let b = dirs.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("tree-bytes"), &tree_bytes).unwrap();
        let with_file = backup_dir(&src, &b);
        for order in [[&with_tree, &with_file], [&with_file, &with_tree]] {
            let (_b, dst) = temp_repo();
            for snap in order {
                let r = do_copy(&src, &dst, vec![snap.clone()]);
                let copied = SnapshotId::from_hex(&r.copied[0].target).unwrap();
                let tree = dst.load_snapshot(&copied).unwrap().tree;
                assert_eq!(contents(&dst, &tree), contents(&src, &snap.1.tree));
            }
        }
    }

    /// Separate keys: the copy re-hashes, rewrites trees, restores the same bytes, records
    /// its original; a second copy is skipped; a new snapshot sends only its new data.
    #[test]
    fn copies_between_repositories_with_separate_keys() {
        let (_a, src) = temp_repo();
        let (_b, dst) = temp_repo();
        assert!(!src.same_blob_ids(&dst));
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("d/e/f")).unwrap();
        std::fs::write(
            data.path().join("a"),
            (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>(),
        )
        .unwrap();
        std::fs::write(data.path().join("d/e/f/b"), b"deep").unwrap();
        std::fs::write(data.path().join("d/same"), b"deep").unwrap();
        // The empty tree and a one-byte file holding 0x00 share a source id.
        std::fs::create_dir(data.path().join("d/empty")).unwrap();
        std::fs::write(data.path().join("nul"), [0u8]).unwrap();
        let first = backup_dir(&src, data.path());
        let r = do_copy(&src, &dst, vec![first.clone()]);
        assert_eq!((r.copied.len(), r.skipped.len()), (1, 0));
        assert!(r.data_blobs >= 2 && r.tree_blobs >= 4, "{r:?}");
        let copied_id = SnapshotId::from_hex(&r.copied[0].target).unwrap();
        let copied = dst.load_snapshot(&copied_id).unwrap();
        assert_eq!(copied.original, Some(first.0));
        assert_ne!(copied.tree, first.1.tree, "separate keys give other tree ids");
        assert_eq!(contents(&dst, &copied.tree), contents(&src, &first.1.tree));

        // Again: skipped, nothing read.
        let again = do_copy(&src, &dst, vec![first.clone()]);
        assert_eq!((again.copied.len(), again.skipped.len(), again.blobs_read), (0, 1, 0));

        // A new snapshot with one new file: the old data is found in the target, not stored.
        std::fs::write(data.path().join("new"), b"new file").unwrap();
        let second = backup_dir(&src, data.path());
        let r2 = do_copy(&src, &dst, vec![first.clone(), second.clone()]);
        assert_eq!((r2.copied.len(), r2.skipped.len()), (1, 1));
        assert_eq!(r2.data_blobs, 1, "{r2:?}");
        // What the first copy holds is learned from it, not read again from the source.
        assert_eq!(r2.blobs_read, 1, "{r2:?}");
        let t2 = SnapshotId::from_hex(&r2.copied[0].target).unwrap();
        assert_eq!(contents(&dst, &dst.load_snapshot(&t2).unwrap().tree), contents(&src, &second.1.tree));

        // The target's retention removes the first copy: restic's copy sends it again,
        // skip_older leaves it out (older than the newest copy of its host and paths).
        dst.remove::<Snapshot>(&copied_id).unwrap();
        let src_lock = ReadLock::acquire(&src, "copy", &Default::default()).unwrap();
        let dst_lock = AppendLock::acquire(&dst, "copy", &Default::default()).unwrap();
        let opts = CopyOptions { connections: 1, skip_older: true, ..Default::default() };
        let both = vec![first.clone(), second.clone()];
        let r3 = copy(&Ctx::default(), &src, &src_lock, &dst, &dst_lock, both, &opts).unwrap();
        assert_eq!((r3.copied.len(), r3.skipped.len(), r3.older.clone()), (0, 1, vec![first.0.to_hex()]));
        drop((src_lock, dst_lock));
        let r4 = do_copy(&src, &dst, vec![first.clone(), second]);
        assert_eq!((r4.copied.len(), r4.skipped.len()), (1, 1), "without skip_older the first is copied again");
    }
}
