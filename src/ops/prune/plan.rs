//! Prune's mark and plan steps: which blobs are used, the home pack of each, and the fate of
//! every pack (kept, deleted, repacked). Reads only; nothing here changes the repository.

use std::collections::{HashMap, HashSet};

use crate::backend::FileKind;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::repository::{PackBlob, PackRead, Repository};
use crate::tree::reachable;

use super::{PruneOptions, PruneReport};

/// A pack as the plan sees it.
pub(super) struct PackState {
    /// What the index says about it.
    pub info: IndexPack,
    /// Stored bytes of the blobs whose home this pack is.
    pub home_bytes: u64,
    /// Positions in `info.blobs` of the blobs whose home this pack is.
    pub home_blobs: Vec<usize>,
}

/// What prune will do, and the figures of the report as planned.
pub(super) struct Plan {
    /// The report's figures known before anything is changed.
    pub report: PruneReport,
    /// Every pack the live index files name, merged by id.
    pub packs: Vec<PackState>,
    /// Packs with no home blob: deleted.
    pub delete: Vec<PackId>,
    /// Positions in `packs` of the packs to repack.
    pub repack: Vec<usize>,
    /// Names of the stored packs no index names: deleted.
    pub unindexed: Vec<PackId>,
    /// Names of every index file read (live or superseded): all replaced.
    pub index_names: Vec<IndexId>,
    /// Stored packs by name, with their sizes in bytes.
    pub stored: HashMap<PackId, u64>,
    /// True when nothing needs changing (the index is not rewritten for nothing).
    pub nothing_to_do: bool,
    /// Bytes of the packs that will be deleted (repacked ones included).
    pub deleted_bytes: u64,
}

/// The refusal of a prune that cannot tell used data from unused data.
fn refuse(why: impl std::fmt::Display) -> Error {
    Error::refused(format!("prune refuses to run: {why}"))
}

/// Mark every blob referenced by the trees `roots` reach (each tree once, loaded in parallel):
/// the trees themselves and the data blobs their files name. Errors: a tree that is missing
/// from the index or unreadable (prune must not guess what a damaged tree referenced);
/// [`Error::Interrupted`].
pub fn used_blobs(ctx: &Ctx, repo: &Repository, index: &Index, roots: &[BlobId]) -> Result<HashSet<BlobId>> {
    let mut data: HashSet<BlobId> = HashSet::new();
    let trees = reachable::unique_trees(
        ctx,
        roots.iter().copied(),
        |id| repo.load_tree(index, id),
        |_, _, tree| {
            let tree = tree?;
            let mut subtrees = Vec::new();
            for node in tree.nodes {
                data.extend(node.content);
                subtrees.extend(node.subtree);
            }
            Ok(subtrees)
        },
    )?;
    data.extend(trees);
    Ok(data)
}

/// Read the index files, the pack listing and the snapshots, mark the used blobs and decide
/// each pack's fate (see the module documentation of [`super`]).
/// Errors: the refusals described there ([`Error::Refused`]); backend errors;
/// [`Error::Interrupted`].
pub(super) fn make_plan(ctx: &Ctx, repo: &Repository, opts: &PruneOptions) -> Result<Plan> {
    let mut report = PruneReport::default();
    let backend = repo.backend();

    // Everything listed first: a failed listing is an error, never an empty list.
    ctx.progress.phase("loading index files");
    let files = repo.index_files().map_err(|e| refuse(format_args!("an index file cannot be read ({e})")))?;
    let index_names: Vec<IndexId> = files.iter().map(|(id, _)| *id).collect();
    let live: Vec<&IndexFile> = Repository::live_index_files(&files).into_iter().map(|(_, f)| f).collect();
    let superseded = files.len() - live.len();
    let mut index = Index::new();
    index.add_files(live.iter().copied());

    let stored: HashMap<PackId, u64> =
        backend.list(FileKind::Pack)?.into_iter().map(|(id, size)| (PackId(id), size)).collect();
    report.packs_before = stored.len() as u64;
    report.bytes_before = stored.values().sum();

    ctx.check()?;
    ctx.progress.phase("loading snapshots");
    let (snapshots, damaged) = repo
        .snapshots_and_damaged(&Default::default())
        .map_err(|e| refuse(format_args!("a snapshot cannot be read ({e})")))?;
    // The data of a snapshot that cannot be decoded cannot be told from unused data: deleting
    // nothing is the only safe choice until the file is removed (or put back).
    if let Some(d) = damaged.first() {
        return Err(refuse(format_args!(
            "{d}; forget snapshot {} (or put its file back), then run prune again",
            d.id.short()
        )));
    }
    report.snapshots = snapshots.len();

    ctx.progress.phase("finding the data still in use");
    let roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    let used = used_blobs(ctx, repo, &index, &roots).map_err(|e| match e {
        Error::Interrupted => e,
        e => refuse(e),
    })?;

    // Packs named by the live index files, merged by id (a pack listed twice is one pack).
    let mut by_id: HashMap<PackId, IndexPack> = HashMap::new();
    for f in &live {
        for p in &f.packs {
            by_id.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    for p in by_id.values() {
        // A missing pack is tolerated only when nothing in it is used (checked below via homes).
        if let Some(&size) = stored.get(&p.id) {
            if size != p.size {
                return Err(refuse(format_args!(
                    "pack {} is {size} bytes in storage but {} in the index (damaged)",
                    p.id, p.size
                )));
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
    // damaged (a forced backup stores a fresh one beside it). Only such blobs are read.
    let sound = sound_copies(ctx, repo, &index, &packs, &used, &stored)?;
    let mut homed: HashSet<BlobId> = HashSet::with_capacity(used.len());
    for p in packs.iter_mut() {
        if !stored.contains_key(&p.info.id) {
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
        return Err(refuse(format_args!(
            "blob {} is referenced by a snapshot but is in no index or its pack is missing",
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
        if !stored.contains_key(&p.info.id) {
            continue; // missing, nothing used in it: dropped from the index
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
    let unused_of = |i: usize| packs.get(i).map_or(0, |p| p.info.size.saturating_sub(p.home_bytes));
    let size_of = |i: usize| packs.get(i).map_or(1, |p| p.info.size.max(1));
    partial.sort_by(|&a, &b| {
        ((unused_of(b) as u128) * (size_of(a) as u128)).cmp(&((unused_of(a) as u128) * (size_of(b) as u128)))
    });
    let mut unused_left: u64 = partial.iter().map(|&i| unused_of(i)).sum();
    let limit = opts.max_unused.limit(report.used_bytes);
    let mut repack: Vec<usize> = Vec::new();
    for &i in &partial {
        if unused_left <= limit {
            break;
        }
        unused_left -= unused_of(i);
        repack.push(i);
    }
    report.unused_bytes_kept = unused_left;
    let indexed: HashSet<PackId> = packs.iter().map(|p| p.info.id).collect();
    let unindexed: Vec<PackId> = stored.keys().filter(|id| !indexed.contains(*id)).copied().collect();
    let repacked = || repack.iter().filter_map(|&i| packs.get(i));
    report.packs_deleted = delete.len() as u64;
    report.packs_unindexed_deleted = unindexed.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.blobs_repacked = repacked().map(|p| p.home_blobs.len() as u64).sum();
    report.bytes_repacked = repacked().map(|p| p.home_bytes).sum();

    let missing_dropped = packs.iter().filter(|p| !stored.contains_key(&p.info.id)).count();
    let nothing_to_do =
        delete.is_empty() && repack.is_empty() && unindexed.is_empty() && missing_dropped == 0 && superseded == 0;
    let deleted_bytes: u64 =
        delete.iter().chain(repacked().map(|p| &p.info.id)).chain(&unindexed).filter_map(|id| stored.get(id)).sum();
    Ok(Plan { report, packs, delete, repack, unindexed, index_names, stored, nothing_to_do, deleted_bytes })
}

/// Where prune homes the used blobs the index lists more than once (one copy may be damaged:
/// a forced backup stores a fresh one beside it). Reads one blob range per copy tried.
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
/// before it changes anything: an unreadable copy is not a damaged one); [`Error::Interrupted`].
fn sound_copies(
    ctx: &Ctx,
    repo: &Repository,
    index: &Index,
    packs: &[PackState],
    used: &HashSet<BlobId>,
    stored: &HashMap<PackId, u64>,
) -> Result<SoundCopies> {
    let mut found = SoundCopies { home: HashMap::new(), keep_whole: HashSet::new() };
    if !index.has_other_copies() {
        return Ok(found);
    }
    let mut tried: HashSet<BlobId> = HashSet::new();
    for p in packs {
        let name = p.info.id;
        if !stored.contains_key(&name) {
            continue;
        }
        ctx.check()?;
        let mut wanted = Vec::new();
        for b in &p.info.blobs {
            if !used.contains(&b.id) || found.home.contains_key(&b.id) || index.other_copies(&b.id).is_empty() {
                continue;
            }
            tried.insert(b.id);
            wanted.extend(PackBlob::listed(b));
        }
        wanted.sort_by_key(|b| b.offset);
        // This copy only (no other copies tried); a storage failure stops prune.
        let read = PackRead {
            id: &p.info.id,
            salt: &p.info.salt,
            other_copies: None,
            cancel: Some(&ctx.cancel),
            cached: false,
        };
        repo.read_pack_blobs(&read, &wanted, |i, r| {
            if let (Ok(_), Some(b)) = (r, wanted.get(i)) {
                found.home.insert(b.id, p.info.id);
            }
        })?;
    }
    for id in tried.iter().filter(|id| !found.home.contains_key(*id)) {
        let first = index.get(id).map(|(pack, _)| pack.id);
        found.keep_whole.extend(first.into_iter().chain(index.other_copies(id).into_iter().map(|(pack, _)| pack.id)));
    }
    Ok(found)
}
