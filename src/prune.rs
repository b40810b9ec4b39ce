//! Prune: delete the data no snapshot references (repo-format.md, "Prune").
//!
//! The plan follows restic's prune (restic's design document and `restic prune --help`):
//! 1. **Mark**: walk every snapshot's trees (each tree id once) and collect the ids of every
//!    tree and data blob they reference.
//! 2. **Plan**: every used blob gets one *home* pack (fully used packs first, so duplicates in
//!    other packs count as unused). Packs with no home blob are deleted; partly used packs are
//!    repacked, the emptiest first, until the unused bytes left are within `--max-unused`.
//!    Packs present in storage but in no index (left by killed backups) are deleted.
//! 3. **Repack**: the home blobs of the packs to repack are read, verified (authentication and
//!    id), re-encrypted into new packs without recompression, and written (atomically, synced).
//! 4. **Index**: new index files list every kept pack and every new pack; the last one written
//!    names all previous index files in `supersedes`, so readers ignore them from then on.
//! 5. **Delete**: the previous index files, then the packs planned for deletion.
//!
//! Killed at any point, the repository stays complete: before step 4 the new packs are merely
//! unindexed; after it the old index files are superseded; deleted packs are named by no index.
//! Prune runs under an exclusive lock (see [`crate::lock`]) and checks it before deleting.
//! It refuses to start when a snapshot cannot be read or references a blob no index knows,
//! when a pack the index names is missing or has another size, or when a listing fails.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::backend::FileKind;
use crate::blob;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, IndexId, PackId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::pack::{BlobEntry, PackWriter};
use crate::repository::Repository;

/// How much unused data may stay in packs that are kept (restic's `--max-unused`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// A share of the used data, in percent (0 to 100): unused ≤ used × p / (100 − p), i.e. the
    /// unused bytes are at most p % of the repository after prune.
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Never repack for unused data (only delete packs with nothing used).
    Unlimited,
}

impl MaxUnused {
    /// Parse `5%`, `0`, `200M`, `1G`, `unlimited` (restic's syntax; suffixes k, m, g, t are
    /// powers of 1024). Errors: [`Error::InvalidInput`].
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let bad = || {
            Error::InvalidInput(format!("--max-unused {s:?}: expected a percentage (5%), a size (200M) or `unlimited`"))
        };
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&v) {
                return Err(bad());
            }
            return Ok(if v >= 100.0 { MaxUnused::Unlimited } else { MaxUnused::Percent(v) });
        }
        let (num, mult) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_lowercase() {
                    'b' => 1,
                    'k' => 1 << 10,
                    'm' => 1 << 20,
                    'g' => 1 << 30,
                    't' => 1 << 40,
                    _ => return Err(bad()),
                };
                (t.get(..i).unwrap_or(""), m)
            }
            _ => (t, 1),
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        Ok(MaxUnused::Bytes(n.saturating_mul(mult)))
    }

    /// The unused bytes allowed when `used` bytes are in use.
    pub fn limit(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Percent(p) => ((used as f64) * p / (100.0 - p)).floor() as u64,
        }
    }
}

/// Options of one prune run.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Unused data tolerated in kept packs.
    pub max_unused: MaxUnused,
    /// Plan and report only; change nothing.
    pub dry_run: bool,
}

/// Sizes and counts before and after (or, for a dry run, as planned).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Snapshots whose trees were walked.
    pub snapshots: usize,
    /// Distinct blobs referenced by the snapshots.
    pub used_blobs: u64,
    /// Their stored bytes.
    pub used_bytes: u64,
    /// Blobs stored but not referenced (including duplicates).
    pub unused_blobs: u64,
    /// Their stored bytes.
    pub unused_bytes: u64,
    /// Pack files and their bytes before prune.
    pub packs_before: u64,
    /// Bytes of pack files before prune.
    pub bytes_before: u64,
    /// Packs deleted because nothing in them is used.
    pub packs_deleted: u64,
    /// Packs in storage but in no index, deleted.
    pub packs_unindexed_deleted: u64,
    /// Packs whose used blobs were copied into new packs, then deleted.
    pub packs_repacked: u64,
    /// Blobs copied by the repack.
    pub blobs_repacked: u64,
    /// Stored bytes copied by the repack.
    pub bytes_repacked: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Unused bytes left in kept packs.
    pub unused_bytes_kept: u64,
    /// Pack files after prune.
    pub packs_after: u64,
    /// Bytes of pack files after prune.
    pub bytes_after: u64,
    /// Index files replaced.
    pub index_files_replaced: u64,
    /// Temporary files left by killed writers (untouched for [`STALE_TEMPORARY_AGE`]), removed.
    pub temporaries_removed: u64,
    /// Their bytes.
    pub temporary_bytes_removed: u64,
}

/// A temporary file (`.tmp-*`) untouched for this long belongs to a writer that is gone: a
/// backup appends to its staged packs all the time, and prune runs under an exclusive lock
/// that no live backup leaves it. 1 hour, seconds.
pub const STALE_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A pack as the plan sees it.
struct PackState {
    info: IndexPack,
    /// Stored bytes of the blobs whose home this pack is.
    home_bytes: u64,
    home_blobs: Vec<usize>,
}

/// Mark every blob referenced by the snapshots: trees walked breadth-first, in parallel, each
/// tree id once. Errors: a tree that is missing from the index or unreadable (prune must not
/// guess what a damaged tree referenced).
pub fn used_blobs(repo: &Repository, index: &Index, roots: &[BlobId]) -> Result<HashSet<BlobId>> {
    let mut used: HashSet<BlobId> = HashSet::new();
    let mut frontier: Vec<BlobId> = roots.iter().copied().filter(|r| used.insert(*r)).collect();
    while !frontier.is_empty() {
        let trees = frontier.par_iter().map(|id| repo.load_tree(index, id)).collect::<Result<Vec<_>>>()?;
        let mut next = Vec::new();
        for tree in trees {
            for node in tree.nodes {
                used.extend(node.content);
                if let Some(sub) = node.subtree {
                    if used.insert(sub) {
                        next.push(sub);
                    }
                }
            }
        }
        frontier = next;
    }
    Ok(used)
}

/// Run prune (see the module documentation). `check_lock` is called before anything is
/// deleted and must fail when the caller's exclusive lock was lost. `progress` receives one
/// line per phase.
/// Errors: refusals described in the module documentation; backend and damage errors. On an
/// error nothing has been deleted unless the error came from the deletion phase itself, in
/// which case the repository is still complete (a later prune finishes the job).
pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    check_lock: &dyn Fn() -> Result<()>,
    progress: &dyn Fn(&str),
) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let backend = repo.backend();

    // Everything listed first: a failed listing is an error, never an empty list.
    progress("loading index files");
    let files = repo.index_files().map_err(|e| {
        Error::InvalidInput(format!("prune refuses to run: an index file cannot be read ({e}); run `cairn check`"))
    })?;
    let index_names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let live: Vec<&IndexFile> = Repository::live_index_files(&files).into_iter().map(|(_, f)| f).collect();
    let superseded = files.len() - live.len();
    let mut index = Index::new();
    index.add_files(live.iter().copied());

    let stored: HashMap<String, u64> = backend.list(FileKind::Pack)?.into_iter().collect();
    report.packs_before = stored.len() as u64;
    report.bytes_before = stored.values().sum();

    progress("loading snapshots");
    let (snapshots, damaged) = repo.snapshots_and_damaged(&Default::default()).map_err(|e| {
        Error::InvalidInput(format!("prune refuses to run: a snapshot cannot be read ({e}); run `cairn check`"))
    })?;
    // The data of a snapshot that cannot be decoded cannot be told from unused data: deleting
    // nothing is the only safe choice until the file is removed (or put back).
    if let Some(d) = damaged.first() {
        return Err(Error::InvalidInput(format!("prune refuses to run: {d}, then run prune again")));
    }
    report.snapshots = snapshots.len();

    progress("finding the data still in use");
    let roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    let used = used_blobs(repo, &index, &roots)
        .map_err(|e| Error::InvalidInput(format!("prune refuses to run: {e}; run `cairn check`")))?;

    // Packs named by the live index files, merged by id (a pack listed twice is one pack).
    let mut by_id: HashMap<PackId, IndexPack> = HashMap::new();
    for f in &live {
        for p in &f.packs {
            by_id.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    for p in by_id.values() {
        let name = p.id.to_hex();
        match stored.get(&name) {
            Some(&size) if size == p.size => {}
            Some(&size) => {
                return Err(Error::InvalidInput(format!(
                    "prune refuses to run: pack {name} is {size} bytes in storage but {} in the index (damaged); run `cairn check`",
                    p.size
                )))
            }
            None => {
                // Tolerated only when nothing in it is used (checked below via homes).
            }
        }
    }

    // Homes: fully used packs first, then by used share; ties by id for a stable plan.
    let mut packs: Vec<PackState> =
        by_id.into_values().map(|info| PackState { info, home_bytes: 0, home_blobs: Vec::new() }).collect();
    let share = |p: &IndexPack| -> (u64, u64) {
        let total: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
        let u: u64 = p.blobs.iter().filter(|b| used.contains(&b.id)).map(|b| b.length as u64).sum();
        (u, total.max(1))
    };
    packs.sort_by(|a, b| {
        let (ua, ta) = share(&a.info);
        let (ub, tb) = share(&b.info);
        // ua/ta descending, compared exactly with integer cross-multiplication.
        ((ub as u128) * (ta as u128)).cmp(&((ua as u128) * (tb as u128))).then(a.info.id.cmp(&b.info.id))
    });
    // A used blob stored more than once is homed in a copy that verifies: one copy may be
    // damaged (`backup --force` stores a fresh one beside it). Only such blobs are read.
    let sound = sound_copies(repo, &index, &packs, &used, &stored)?;
    let mut homed: HashSet<BlobId> = HashSet::with_capacity(used.len());
    for p in packs.iter_mut() {
        if !stored.contains_key(&p.info.id.to_hex()) {
            continue;
        }
        for (i, b) in p.info.blobs.iter().enumerate() {
            if used.contains(&b.id) && sound.home.get(&b.id).is_none_or(|home| *home == p.info.id) && homed.insert(b.id)
            {
                p.home_bytes += b.length as u64;
                p.home_blobs.push(i);
            }
        }
    }
    if let Some(missing) = used.iter().find(|id| !homed.contains(id)) {
        return Err(Error::InvalidInput(format!(
            "prune refuses to run: blob {} is referenced by a snapshot but is in no index or its pack is missing; run `cairn check`",
            missing.to_hex()
        )));
    }
    report.used_blobs = used.len() as u64;
    report.used_bytes = packs.iter().map(|p| p.home_bytes).sum();
    for p in &packs {
        let n_home = p.home_blobs.len() as u64;
        report.unused_blobs += p.info.blobs.len() as u64 - n_home;
        report.unused_bytes += p.info.blobs.iter().map(|b| b.length as u64).sum::<u64>() - p.home_bytes;
    }

    // Decide each pack's fate.
    let mut delete: Vec<PackId> = Vec::new();
    let mut partial: Vec<usize> = Vec::new();
    for (i, p) in packs.iter().enumerate() {
        let blob_bytes: u64 = p.info.blobs.iter().map(|b| b.length as u64).sum();
        if !stored.contains_key(&p.info.id.to_hex()) {
            continue; // missing, nothing used in it: dropped from the index below
        }
        if sound.keep_whole.contains(&p.info.id) {
            continue; // holds a copy of a blob no copy of which verifies: kept as it is
        }
        if p.home_blobs.is_empty() {
            delete.push(p.info.id);
        } else if p.home_bytes < blob_bytes {
            partial.push(i);
        }
    }
    // Emptiest first, until the unused bytes left fit the limit.
    partial.sort_by(|&a, &b| {
        let ua = unused_of(&packs[a]);
        let ub = unused_of(&packs[b]);
        ((ub as u128) * (packs[a].info.size.max(1) as u128)).cmp(&((ua as u128) * (packs[b].info.size.max(1) as u128)))
    });
    let mut unused_left: u64 = partial.iter().map(|&i| unused_of(&packs[i])).sum();
    let limit = opts.max_unused.limit(report.used_bytes);
    let mut repack: Vec<usize> = Vec::new();
    for &i in &partial {
        if unused_left <= limit {
            break;
        }
        unused_left -= unused_of(&packs[i]);
        repack.push(i);
    }
    report.unused_bytes_kept = unused_left;
    let indexed: HashSet<String> = packs.iter().map(|p| p.info.id.to_hex()).collect();
    let unindexed: Vec<String> = stored.keys().filter(|n| !indexed.contains(*n)).cloned().collect();
    report.packs_deleted = delete.len() as u64;
    report.packs_unindexed_deleted = unindexed.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.blobs_repacked = repack.iter().map(|&i| packs[i].home_blobs.len() as u64).sum();
    report.bytes_repacked = repack.iter().map(|&i| packs[i].home_bytes).sum();

    let missing_dropped = packs.iter().filter(|p| !stored.contains_key(&p.info.id.to_hex())).count();
    if delete.is_empty() && repack.is_empty() && unindexed.is_empty() && missing_dropped == 0 && superseded == 0 {
        // Nothing to change: do not rewrite the index for nothing.
        report.packs_after = report.packs_before;
        report.bytes_after = report.bytes_before;
        return Ok(report);
    }
    let deleted_bytes: u64 = delete
        .iter()
        .chain(repack.iter().map(|&i| &packs[i].info.id))
        .filter_map(|id| stored.get(&id.to_hex()))
        .sum::<u64>()
        + unindexed.iter().filter_map(|n| stored.get(n)).sum::<u64>();
    if opts.dry_run {
        // Planned figures: new packs hold the repacked bytes plus small headers.
        report.packs_written =
            if report.bytes_repacked > 0 { report.bytes_repacked.div_ceil(repo.config().pack_size as u64) } else { 0 };
        report.packs_after =
            report.packs_before - report.packs_deleted - report.packs_unindexed_deleted - report.packs_repacked
                + report.packs_written;
        report.bytes_after = report.bytes_before.saturating_sub(deleted_bytes) + report.bytes_repacked;
        report.index_files_replaced = files.len() as u64;
        return Ok(report);
    }

    // Repack: read packs a few at a time (bounded memory), verify, re-encrypt.
    let mut new_packs: Vec<IndexPack> = Vec::new();
    if !repack.is_empty() {
        progress(&format!("repacking {} blobs from {} packs", report.blobs_repacked, repack.len()));
        let mut writers: [Option<PackWriter>; 2] = [None, None];
        let pack_size = repo.config().pack_size as usize;
        // One pack per thread at a time: a pack and the blobs taken from it are both held
        // (up to twice the pack size each), which sets prune's peak memory.
        let batch = rayon::current_num_threads().max(2);
        for group in repack.chunks(batch) {
            let blobs: Vec<Vec<(BlobEntry, Vec<u8>)>> =
                group.par_iter().map(|&i| read_home_blobs(repo, &packs[i])).collect::<Result<_>>()?;
            for (entry, framed) in blobs.into_iter().flatten() {
                let kind = entry
                    .kind()
                    .ok_or_else(|| Error::corrupt(format!("blob {}", entry.id.short()), "undefined blob type"))?;
                let slot = &mut writers[kind.byte() as usize & 1];
                let w = slot.get_or_insert_with(|| PackWriter::new(repo.master(), kind, pack_size));
                w.add(entry.id, &framed, entry.raw_length)?;
                if w.len() >= pack_size {
                    if let Some(full) = slot.take() {
                        new_packs.push(write_pack(repo, full)?);
                    }
                }
            }
        }
        for w in writers.into_iter().flatten() {
            if !w.is_empty() {
                new_packs.push(write_pack(repo, w)?);
            }
        }
    }
    report.packs_written = new_packs.len() as u64;
    fault_point("repacked");

    // New index: kept packs and new packs, in files of at most 2,000 packs; the last one
    // supersedes every index file read above.
    progress("writing the new index");
    let gone: HashSet<PackId> = delete.iter().copied().chain(repack.iter().map(|&i| packs[i].info.id)).collect();
    let mut keep: Vec<IndexPack> = packs
        .iter()
        .filter(|p| !gone.contains(&p.info.id) && stored.contains_key(&p.info.id.to_hex()))
        .map(|p| p.info.clone())
        .collect();
    keep.sort_by_key(|p| p.id);
    keep.extend(new_packs);
    let old: Vec<IndexId> = index_names.iter().filter_map(|n| Id::from_hex(n).map(IndexId)).collect();
    let mut chunks: Vec<Vec<IndexPack>> = Vec::new();
    let mut it = keep.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(2000).collect());
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    let last = chunks.len() - 1;
    for (i, packs) in chunks.into_iter().enumerate() {
        let supersedes = if i == last { old.clone() } else { Vec::new() };
        repo.write_index(&IndexFile { packs, supersedes })?;
    }
    report.index_files_replaced = old.len() as u64;
    fault_point("indexed");

    // Delete: old index files first (nothing then names the packs), then the packs.
    check_lock()?;
    progress("deleting old index files and unused packs");
    for id in &old {
        remove_ok(repo, FileKind::Index, &id.to_hex())?;
    }
    let mut doomed: Vec<String> = gone.iter().map(|id| id.to_hex()).collect();
    doomed.extend(unindexed);
    doomed.sort();
    check_lock()?;
    let (first, rest) = doomed.split_at(doomed.len() / 2);
    first.par_iter().try_for_each(|n| remove_ok(repo, FileKind::Pack, n))?;
    fault_point("deleting");
    rest.par_iter().try_for_each(|n| remove_ok(repo, FileKind::Pack, n))?;

    (report.temporaries_removed, report.temporary_bytes_removed) =
        backend.remove_stale_temporaries(STALE_TEMPORARY_AGE)?;

    let after = backend.list(FileKind::Pack)?;
    report.packs_after = after.len() as u64;
    report.bytes_after = after.iter().map(|(_, s)| s).sum();
    Ok(report)
}

/// Fault injection for the crash tests (tests/failpoints.rs), in builds with the `failpoints`
/// feature only: the failpoint `prune-<name>` (`repacked`, `indexed`, `deleting`) set to
/// `return` makes the process send itself SIGKILL there, as a power cut or the OOM killer
/// would. Without the feature this function is empty.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn fault_point(name: &str) {
    fail::fail_point!(&format!("prune-{name}"), |_| {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    });
}

/// Where prune homes the used blobs the index lists more than once (one copy may be damaged:
/// `backup --force` stores a fresh one beside it). Reads one blob range per copy tried.
struct SoundCopies {
    /// Each such blob with a copy that reads back and verifies: the first pack (in `packs`
    /// order) holding one.
    home: HashMap<BlobId, PackId>,
    /// The packs holding a copy of a used blob of which no copy verifies: kept whole (neither
    /// deleted nor repacked), so prune never removes a copy that might still be the best one;
    /// the damage stays for `check` to report.
    keep_whole: HashSet<PackId>,
}

/// Find the [`SoundCopies`]. Errors: a storage failure while reading a copy (prune then stops
/// before it changes anything: an unreadable copy is not a damaged one).
fn sound_copies(
    repo: &Repository,
    index: &Index,
    packs: &[PackState],
    used: &HashSet<BlobId>,
    stored: &HashMap<String, u64>,
) -> Result<SoundCopies> {
    let mut found = SoundCopies { home: HashMap::new(), keep_whole: HashSet::new() };
    if !index.has_other_copies() {
        return Ok(found);
    }
    let mut tried: HashSet<BlobId> = HashSet::new();
    for p in packs {
        let name = p.info.id.to_hex();
        if !stored.contains_key(&name) {
            continue;
        }
        let key = repo.master().file_key(&p.info.salt);
        for b in &p.info.blobs {
            if !used.contains(&b.id) || found.home.contains_key(&b.id) || index.other_copies(&b.id).is_empty() {
                continue;
            }
            tried.insert(b.id);
            let Some(kind) = b.kind() else { continue };
            let what = || format!("{kind:?} blob {} in pack {name}", b.id.to_hex());
            let read = repo
                .backend()
                .read_range(FileKind::Pack, &name, b.offset as u64, b.length as u64)
                .map_err(|e| Error::stored_read(what(), e))
                .and_then(|stored| {
                    blob::open(repo.master(), &key, b.offset as u64, kind, &b.id, b.raw_length, &stored, &what)
                });
            match read {
                Ok(_) => {
                    found.home.insert(b.id, p.info.id);
                }
                Err(e) if e.is_storage_failure() => return Err(e),
                Err(_) => {}
            }
        }
    }
    for id in tried.iter().filter(|id| !found.home.contains_key(*id)) {
        let first = index.get(id).map(|(pack, _)| pack.id);
        found.keep_whole.extend(first.into_iter().chain(index.other_copies(id).into_iter().map(|(pack, _)| pack.id)));
    }
    Ok(found)
}

fn unused_of(p: &PackState) -> u64 {
    p.info.size.saturating_sub(p.home_bytes)
}

fn remove_ok(repo: &Repository, kind: FileKind, name: &str) -> Result<()> {
    match repo.backend().remove(kind, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == crate::backend::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Read one pack whole and return its home blobs' verified framed plaintexts. Each home blob is
/// verified on its own (authentication, id): a pack whose other bytes are damaged (a copy of a
/// blob that `backup --force` stored again, homed elsewhere) is repacked like any other.
/// Errors: a home blob that fails verification (prune then stops before deleting anything).
fn read_home_blobs(repo: &Repository, p: &PackState) -> Result<Vec<(BlobEntry, Vec<u8>)>> {
    let name = p.info.id.to_hex();
    let data = repo.backend().read(FileKind::Pack, &name)?;
    let key = repo.master().file_key(&p.info.salt);
    let mut out = Vec::with_capacity(p.home_blobs.len());
    for &i in &p.home_blobs {
        let Some(b) = p.info.blobs.get(i) else { continue };
        let kind =
            b.kind().ok_or_else(|| Error::corrupt(format!("pack {name}"), "undefined blob type in the index"))?;
        let what = || format!("{kind:?} blob {} in pack {name}", b.id.to_hex());
        let stored = data
            .get(b.offset as usize..(b.offset as usize).saturating_add(b.length as usize))
            .ok_or_else(|| Error::corrupt(what(), "outside the pack"))?;
        let (framed, _) =
            blob::open_verified(repo.master(), &key, b.offset as u64, kind, &b.id, b.raw_length, stored, &what)
                .map_err(|e| match e {
                    Error::Corrupt { object, detail } => Error::Corrupt {
                        object,
                        detail: format!("{detail}; prune stopped before deleting anything, run `cairn check`"),
                    },
                    e => e,
                })?;
        out.push((*b, framed));
    }
    Ok(out)
}

fn write_pack(repo: &Repository, w: PackWriter) -> Result<IndexPack> {
    let finished = w.finish()?;
    repo.backend().write(FileKind::Pack, &finished.id.to_hex(), &finished.bytes)?;
    Ok(IndexPack { id: finished.id, salt: finished.salt, size: finished.bytes.len() as u64, blobs: finished.entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused_syntax() {
        assert_eq!(MaxUnused::parse("5%").ok(), Some(MaxUnused::Percent(5.0)));
        assert_eq!(MaxUnused::parse("unlimited").ok(), Some(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::parse("100%").ok(), Some(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::parse("0").ok(), Some(MaxUnused::Bytes(0)));
        assert_eq!(MaxUnused::parse("200M").ok(), Some(MaxUnused::Bytes(200 << 20)));
        assert_eq!(MaxUnused::parse("1g").ok(), Some(MaxUnused::Bytes(1 << 30)));
        for bad in ["", "x", "5%%", "-1%", "101%", "12q", "M"] {
            assert!(MaxUnused::parse(bad).is_err(), "{bad:?} accepted");
        }
        // 5 % of the repository after prune: 95 used allow 5 unused.
        assert_eq!(MaxUnused::Percent(5.0).limit(95), 5);
        assert_eq!(MaxUnused::Percent(0.0).limit(1000), 0);
    }
}
