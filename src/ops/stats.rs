//! `stats`: figures about the data the selected snapshots hold, in restic's four counting modes
//! (restic's `cmd/restic/cmd_stats.go` and its manual, "Getting information about repository
//! data"), plus two repository-wide figures (the size of the packs the storage holds and the
//! number of snapshots).
//!
//! - [`Mode::RestoreSize`] (the default): what a restore of each selected snapshot would
//!   write. Every entry is counted (files, directories, symlinks and other entries, as restic
//!   counts them); the size is the sum of the regular files' sizes, a file with hard links
//!   counted once per snapshot (by device and inode), as restic does.
//! - [`Mode::FilesByContents`]: regular files with distinct contents (the same list of data
//!   blobs), each content counted once over all selected snapshots: count and size. restic also
//!   counts one "file" for the empty contents of directories and symlinks; cairn counts regular
//!   files only (an empty file is one content of size 0).
//! - [`Mode::RawData`]: the blobs the selected snapshots reference (data and tree blobs), each
//!   once: their count, their stored size (compressed and encrypted, from the index), their
//!   size had they been stored uncompressed, and restic's compression figures.
//! - [`Mode::BlobsPerFile`]: for the files with distinct contents, their distinct data blobs,
//!   per file path (restic's definition): file count, blob count and the blobs' plaintext size.
//!
//! Trees are read through the [`Repository`] (each verified) with the shared streamer
//! ([`TreeStream`], no recursion) or, for raw-data, the walk over tree ids
//! ([`crate::tree::reachable`]); a tree shared by several snapshots is read once in the modes
//! that count contents or blobs, and its figures are reused in restore-size unless it holds
//! entries with hard links (counted once per snapshot, so they depend on the rest of it).
//! Stats only reads: a shared lock ([`ReadLock`]) lets it run beside a backup.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::FileKind;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::reachable::unique_trees;
use crate::tree::stream::subtree;
use crate::tree::{Node, NodeKind, Step, TreeStream};

/// Bytes a stored blob adds to its body: the compression byte and the AES-GCM tag
/// (repo-format.md, "Framing and compression"). A blob stored uncompressed takes
/// `raw_length + STORED_BLOB_OVERHEAD` bytes in its pack.
pub const STORED_BLOB_OVERHEAD: u64 = 1 + 16;

/// restic's counting modes (`--mode`); see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `restore-size`: entries and bytes a restore would write.
    #[default]
    RestoreSize,
    /// `files-by-contents`: regular files with distinct contents.
    FilesByContents,
    /// `raw-data`: the referenced blobs, deduplicated, as stored.
    RawData,
    /// `blobs-per-file`: distinct data blobs of the files with distinct contents.
    BlobsPerFile,
}

impl Mode {
    /// Every mode, in restic's order of documentation.
    pub const ALL: [Mode; 4] = [Mode::RestoreSize, Mode::FilesByContents, Mode::RawData, Mode::BlobsPerFile];

    /// restic's name of the mode (`restore-size`, `files-by-contents`, `raw-data`,
    /// `blobs-per-file`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::RestoreSize => "restore-size",
            Mode::FilesByContents => "files-by-contents",
            Mode::RawData => "raw-data",
            Mode::BlobsPerFile => "blobs-per-file",
        }
    }

    /// The mode named `s` (see [`Mode::name`]). Errors: [`Error::Usage`] naming the modes.
    pub fn parse(s: &str) -> Result<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            Error::usage(format!("unknown counting mode {s:?} (expected one of {})", names.join(", ")))
        })
    }
}

/// Which snapshots [`stats`] counts, and how.
#[derive(Clone, Debug, Default)]
pub struct StatsOptions {
    /// Snapshots to count (`latest`, ids or unique id prefixes; each once however often
    /// named); empty: every snapshot passing `filter`.
    pub snapshots: Vec<String>,
    /// The snapshot filter (host, tags, paths).
    pub filter: SnapshotFilter,
    /// The counting mode.
    pub mode: Mode,
}

/// What [`stats`] found. The JSON form has restic's keys (`total_size`, `total_file_count`,
/// ...; those restic omits when zero are omitted too) plus `total_pack_size`,
/// `total_pack_count` and `repository_snapshots_count`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsReport {
    /// The counting mode (not in the JSON form, as in restic's).
    #[serde(skip)]
    pub mode: Mode,
    /// Bytes. restore-size and files-by-contents: file sizes; raw-data: the blobs' stored
    /// size (compressed and encrypted, as the index records it); blobs-per-file: the blobs'
    /// plaintext size.
    pub total_size: u64,
    /// raw-data only: bytes the blobs would take stored uncompressed (plaintext plus
    /// [`STORED_BLOB_OVERHEAD`] each, restic's "ciphertext length").
    #[serde(skip_serializing_if = "is_zero")]
    pub total_uncompressed_size: u64,
    /// raw-data only: uncompressed size of the compressed blobs divided by their stored
    /// size (0 when no blob is compressed).
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_ratio: f64,
    /// raw-data only: percentage (0–100) of the uncompressed size that is stored compressed.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_progress: f64,
    /// raw-data only: percentage (0–100) of the uncompressed size that compression saves,
    /// `(1 - total_size / total_uncompressed_size) * 100`.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_space_saving: f64,
    /// restore-size: entries (files, directories, symlinks, ...); files-by-contents: distinct
    /// contents; blobs-per-file: distinct file paths with data. 0 in raw-data.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_file_count: u64,
    /// raw-data: distinct blobs (data and tree); blobs-per-file: distinct blobs per file path.
    /// 0 in the other modes.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blob_count: u64,
    /// Snapshots counted (the selection).
    pub snapshots_count: u64,
    /// Bytes of every pack file the storage holds (`data/`), indexed or not: the size of the
    /// repository's data, whatever the selection.
    pub total_pack_size: u64,
    /// Pack files the storage holds.
    pub total_pack_count: u64,
    /// Snapshots in the repository (every readable snapshot, whatever the selection).
    pub repository_snapshots_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

/// Count the snapshots `opts` selects in `opts.mode`, under `lock` (shared: a backup may run
/// meanwhile; its packs not yet indexed count in `total_pack_size` only).
/// Errors: those of [`crate::snapshot::select`] (no such snapshot, an ambiguous prefix, a
/// damaged snapshot named by id); [`Error::Locked`] when the lock was lost;
/// [`Error::Interrupted`] once `ctx` is cancelled; a tree that cannot be read or is damaged;
/// [`Error::Corrupt`] for a blob a tree references that the index does not hold; storage
/// failures.
pub fn stats(ctx: &Ctx, lock: &ReadLock, repo: &Repository, opts: &StatsOptions) -> Result<StatsReport> {
    lock.check()?;
    let snaps = crate::snapshot::select(ctx, repo, &opts.snapshots, &opts.filter)?.readable_by_time()?;
    // Damaged snapshot files were warned about by the selection; they are not counted.
    let all = if opts.snapshots.is_empty() && is_empty_filter(&opts.filter) {
        snaps.len()
    } else {
        repo.snapshots_and_damaged(&SnapshotFilter::default())?.0.len()
    };
    let index = repo.load_index()?;
    let mut report = StatsReport { mode: opts.mode, ..StatsReport::default() };
    report.snapshots_count = snaps.len() as u64;
    report.repository_snapshots_count = all as u64;
    for (_, size) in repo.backend().list(FileKind::Pack)? {
        report.total_pack_count += 1;
        report.total_pack_size += size;
    }
    let roots: Vec<BlobId> = snaps.iter().map(|(_, s): &(_, Snapshot)| s.tree).collect();
    match opts.mode {
        Mode::RestoreSize => restore_size(ctx, repo, &index, &roots, &mut report)?,
        Mode::FilesByContents | Mode::BlobsPerFile => by_contents(ctx, repo, &index, &roots, &mut report)?,
        Mode::RawData => raw_data(ctx, repo, &index, &roots, &mut report)?,
    }
    lock.check()?;
    Ok(report)
}

fn is_empty_filter(f: &SnapshotFilter) -> bool {
    f.hosts.is_empty() && f.tags.is_empty() && f.paths.is_empty()
}

/// Entries and bytes below one tree, for restore-size.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    /// Entries.
    entries: u64,
    /// Bytes of regular files (hard links counted as [`restore_size`] says).
    size: u64,
    /// True when some entry below has a link count other than 1: its bytes depend on what
    /// else the snapshot holds, so these totals are not reused for another snapshot.
    hard_links: bool,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.entries += other.entries;
        self.size += other.size;
        self.hard_links |= other.hard_links;
    }
}

/// restore-size: every entry counts; a non-directory's size counts when its link count is 1,
/// else once per snapshot per (device, inode), or always when its inode is 0 (restic's rule).
/// The totals of a tree without such entries are remembered by tree id and reused.
fn restore_size(ctx: &Ctx, repo: &Repository, index: &Index, roots: &[BlobId], report: &mut StatsReport) -> Result<()> {
    let mut memo: HashMap<BlobId, Totals> = HashMap::new();
    for root in roots {
        ctx.check()?;
        if let Some(t) = memo.get(root) {
            report.total_file_count += t.entries;
            report.total_size += t.size;
            continue;
        }
        // Hard links are counted once per snapshot, as restic's per-snapshot index does.
        let mut linked: HashSet<(u64, u64)> = HashSet::new();
        let mut stream = TreeStream::new(repo, index, &ctx.cancel, root, Path::new("/"))?;
        let mut frames: Vec<(BlobId, Totals)> = vec![(*root, Totals::default())];
        while let Some(step) = stream.next_step()? {
            match step {
                Step::Entry(path, node) => {
                    let top = &mut frames.last_mut().ok_or_else(|| Error::internal("stats: no open tree"))?.1;
                    top.entries += 1;
                    if node.kind == NodeKind::Dir {
                        let sub = subtree(&path, &node)?;
                        if let Some(t) = memo.get(&sub) {
                            top.add(t);
                        } else {
                            stream.descend(&path, &node)?;
                            frames.push((sub, Totals::default()));
                        }
                    } else if node.links == 1 {
                        top.size += node.size;
                    } else {
                        top.hard_links = true;
                        if node.inode == 0 || linked.insert((node.device, node.inode)) {
                            top.size += node.size;
                        }
                    }
                }
                Step::Leave(_) => {
                    let (id, t) = frames.pop().ok_or_else(|| Error::internal("stats: no open tree"))?;
                    if !t.hard_links {
                        memo.insert(id, t);
                    }
                    frames
                        .last_mut()
                        .ok_or_else(|| Error::internal("stats: a tree left without its parent"))?
                        .1
                        .add(&t);
                }
            }
        }
        let (id, t) = frames.pop().ok_or_else(|| Error::internal("stats: the root tree is gone"))?;
        if !frames.is_empty() {
            return Err(Error::internal("stats: trees left open at the end of a snapshot"));
        }
        if !t.hard_links {
            memo.insert(id, t);
        }
        report.total_file_count += t.entries;
        report.total_size += t.size;
    }
    Ok(())
}

/// The identity of a file's contents: the hash of its data blob ids in order.
fn contents_id(node: &Node) -> Id {
    let mut bytes = Vec::with_capacity(node.content.len() * 32);
    for b in &node.content {
        bytes.extend_from_slice(&b.0 .0);
    }
    Id::of_bytes(&bytes)
}

/// files-by-contents and blobs-per-file: the regular files below `roots`, each distinct
/// content once (restic's rule; blobs-per-file then counts the distinct blobs per file path).
/// A tree seen before holds only contents seen before, so each tree is read once.
fn by_contents(ctx: &Ctx, repo: &Repository, index: &Index, roots: &[BlobId], report: &mut StatsReport) -> Result<()> {
    let mut trees: HashSet<BlobId> = HashSet::new();
    let mut contents: HashSet<Id> = HashSet::new();
    let mut file_blobs: HashMap<PathBuf, HashSet<BlobId>> = HashMap::new();
    for root in roots {
        ctx.check()?;
        if !trees.insert(*root) {
            continue;
        }
        let mut stream = TreeStream::new(repo, index, &ctx.cancel, root, Path::new("/"))?;
        while let Some((path, node)) = stream.next_entry()? {
            if node.kind == NodeKind::Dir {
                if trees.insert(subtree(&path, &node)?) {
                    stream.descend(&path, &node)?;
                }
                continue;
            }
            if node.kind != NodeKind::File || !contents.insert(contents_id(&node)) {
                continue;
            }
            if report.mode == Mode::FilesByContents {
                report.total_file_count += 1;
                report.total_size += node.size;
                continue;
            }
            for blob in &node.content {
                let known = match file_blobs.get_mut(&path) {
                    Some(set) => set,
                    None => {
                        report.total_file_count += 1;
                        file_blobs.entry(path.clone()).or_default()
                    }
                };
                if known.insert(*blob) {
                    let (_, loc) = index.get(blob).ok_or_else(|| not_indexed(blob, &path))?;
                    report.total_size += u64::from(loc.raw_length);
                    report.total_blob_count += 1;
                }
            }
        }
    }
    Ok(())
}

/// The error for data blob `blob` of the file at `path` missing from the index.
fn not_indexed(blob: &BlobId, path: &Path) -> Error {
    Error::corrupt(format!("data blob {} of {}", blob.short(), path.display()), "it is not in the index")
}

/// raw-data: every blob the trees below `roots` reference (data and tree), each once, with its
/// stored and uncompressed sizes from the index (a blob is stored compressed when its stored
/// length differs from its plaintext length plus [`STORED_BLOB_OVERHEAD`]).
fn raw_data(ctx: &Ctx, repo: &Repository, index: &Index, roots: &[BlobId], report: &mut StatsReport) -> Result<()> {
    let mut data: HashSet<BlobId> = HashSet::new();
    let trees = unique_trees(
        ctx,
        roots.iter().copied(),
        |id| repo.load_tree(index, id),
        |id, _parent, loaded| {
            let tree = loaded?;
            let mut subtrees = Vec::new();
            for node in &tree.nodes {
                match node.kind {
                    NodeKind::Dir => subtrees.push(node.subtree.ok_or_else(|| {
                        Error::corrupt(
                            format!("tree {}", id.short()),
                            format!("directory {} has no subtree", node.name_lossy()),
                        )
                    })?),
                    NodeKind::File => data.extend(node.content.iter().copied()),
                    _ => {}
                }
            }
            Ok(subtrees)
        },
    )?;
    let (mut compressed_stored, mut compressed_raw) = (0u64, 0u64);
    // An id referenced both as a tree and as data (the empty tree and a one-byte 0x00 file)
    // is one stored blob.
    for blob in trees.union(&data) {
        let (_, loc) = index.get(blob).ok_or_else(|| {
            Error::corrupt(format!("blob {}", blob.short()), "a snapshot references it but it is not in the index")
        })?;
        let stored = u64::from(loc.length);
        let uncompressed = u64::from(loc.raw_length) + STORED_BLOB_OVERHEAD;
        report.total_blob_count += 1;
        report.total_size += stored;
        report.total_uncompressed_size += uncompressed;
        if stored != uncompressed {
            compressed_stored += stored;
            compressed_raw += uncompressed;
        }
    }
    if compressed_stored > 0 {
        report.compression_ratio = compressed_raw as f64 / compressed_stored as f64;
    }
    if report.total_uncompressed_size > 0 {
        let total = report.total_uncompressed_size as f64;
        report.compression_progress = compressed_raw as f64 / total * 100.0;
        report.compression_space_saving = (1.0 - report.total_size as f64 / total) * 100.0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_name() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()).unwrap(), m);
        }
        let e = Mode::parse("sizes").unwrap_err();
        assert!(matches!(e, Error::Usage(_)) && e.to_string().contains("raw-data"), "{e}");
        assert_eq!(Mode::default(), Mode::RestoreSize);
    }

    #[test]
    fn overhead_is_the_compression_byte_and_the_tag() {
        assert_eq!(STORED_BLOB_OVERHEAD, 1 + crate::crypto::TAG_LEN as u64);
    }

    /// restic's JSON keys; the figures restic omits when zero are omitted.
    #[test]
    fn json_keys() {
        let r = StatsReport { total_size: 5, snapshots_count: 2, total_file_count: 3, ..Default::default() };
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "repository_snapshots_count",
                "snapshots_count",
                "total_file_count",
                "total_pack_count",
                "total_pack_size",
                "total_size"
            ]
        );
    }
}
