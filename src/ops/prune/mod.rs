//! Prune: delete the data no snapshot references (repo-format.md, "Prune").
//!
//! The plan follows restic's prune (restic's design document and `restic prune --help`):
//! 1. **Mark**: walk every snapshot's trees (each tree id once) and collect the ids of every
//!    tree and data blob they reference.
//! 2. **Plan**: every used blob gets one *home* pack (fully used packs first, so duplicates in
//!    other packs count as unused). Packs with no home blob are deleted; partly used packs are
//!    repacked, the emptiest first, until the unused bytes left are within the limit of unused data
//!    ([`PruneOptions::max_unused`]).
//!    Packs present in storage but in no index (left by killed backups) are deleted.
//! 3. **Repack**: the home blobs of the packs to repack are read, verified (authentication and
//!    id), re-encrypted into new packs without recompression, and written (atomically, synced).
//! 4. **Index**: new index files list every kept pack and every new pack; the last one written
//!    names all previous index files in `supersedes`, so readers ignore them from then on.
//! 5. **Delete**: the previous index files, then the packs planned for deletion.
//!
//! Killed at any point, the repository stays complete: before step 4 the new packs are merely
//! unindexed; after it the old index files are superseded; deleted packs are named by no index.
//! Prune runs under an exclusive lock ([`ExclusiveLock`]) and checks it before deleting; a dry
//! run ([`plan`]) only reads and needs a [`ReadLock`].
//! It refuses to start when a snapshot cannot be read or references a blob no index knows,
//! when a pack the index names is missing or has another size, or when a listing fails.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::backend::FileKind;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{Id, IndexId, PackId};
use crate::index::{IndexFile, IndexPack};
use crate::lock::{ExclusiveLock, ReadLock};
use crate::pack::{BlobEntry, PackWriter};
use crate::repository::{BlobRef, Repository};

mod max_unused;
mod plan;

pub use max_unused::MaxUnused;
pub use plan::used_blobs;
use plan::{PackState, Plan};

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

/// Plan prune and report what it would do, changing nothing (a dry run: `opts.dry_run` is
/// ignored). `_lock` is the caller's permission to read (a dry run may run beside anything).
/// Progress: one phase per step on `ctx.progress`.
/// Errors: the refusals of the module documentation ([`Error::Refused`]); backend errors;
/// [`Error::Interrupted`].
pub fn plan(ctx: &Ctx, _lock: &ReadLock, repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let plan = plan::make_plan(ctx, repo, opts)?;
    Ok(planned_report(repo, plan))
}

/// Run prune (see the module documentation) under `lock`, which is checked before anything is
/// deleted (a lost lock stops prune with [`Error::Locked`]). With `opts.dry_run`, as [`plan`].
/// Progress: one phase per step on `ctx.progress`; the cancellation token is polled between
/// steps and packs.
/// Errors: refusals described in the module documentation ([`Error::Refused`]); backend and
/// damage errors; [`Error::Interrupted`]. On an error nothing has been deleted unless the
/// error came from the deletion phase itself, in which case the repository is still complete
/// (a later prune finishes the job).
///
/// Only an exclusive lock can prune: the permission to read that `--no-lock` gives does not
/// compile here.
/// ```compile_fail
/// # fn f(ctx: &cairn::Ctx, repo: &cairn::Repository, opts: &cairn::ops::prune::PruneOptions) {
/// let lock = cairn::lock::ReadLock::unlocked();
/// let _ = cairn::ops::prune::prune(ctx, &lock, repo, opts);
/// # }
/// ```
pub fn prune(ctx: &Ctx, lock: &ExclusiveLock, repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let plan = plan::make_plan(ctx, repo, opts)?;
    if plan.nothing_to_do || opts.dry_run {
        return Ok(planned_report(repo, plan));
    }
    execute(ctx, lock, repo, plan)
}

/// The report of a plan carried out by nobody: the figures after prune as planned (new packs
/// hold the repacked bytes plus small headers).
fn planned_report(repo: &Repository, plan: Plan) -> PruneReport {
    let mut report = plan.report;
    if plan.nothing_to_do {
        report.packs_after = report.packs_before;
        report.bytes_after = report.bytes_before;
        return report;
    }
    report.packs_written =
        if report.bytes_repacked > 0 { report.bytes_repacked.div_ceil(repo.config().pack_size as u64) } else { 0 };
    report.packs_after = (report.packs_before + report.packs_written)
        .saturating_sub(report.packs_deleted + report.packs_unindexed_deleted + report.packs_repacked);
    report.bytes_after = report.bytes_before.saturating_sub(plan.deleted_bytes) + report.bytes_repacked;
    report.index_files_replaced = plan.index_names.len() as u64;
    report
}

/// Carry out `plan`: repack, write the new index, delete.
fn execute(ctx: &Ctx, lock: &ExclusiveLock, repo: &Repository, plan: Plan) -> Result<PruneReport> {
    let Plan { mut report, packs, delete, repack, unindexed, index_names, stored, .. } = plan;
    let to_repack: Vec<&PackState> = repack.iter().filter_map(|&i| packs.get(i)).collect();
    let new_packs = repack_packs(ctx, repo, &to_repack, report.blobs_repacked)?;
    report.packs_written = new_packs.len() as u64;
    fault_point("repacked");

    // New index: kept packs and new packs, in files of at most 2,000 packs; the last one
    // supersedes every index file read above.
    ctx.check()?;
    ctx.progress.phase("writing the new index");
    let gone: HashSet<PackId> = delete.iter().copied().chain(to_repack.iter().map(|p| p.info.id)).collect();
    let mut keep: Vec<IndexPack> = packs
        .iter()
        .filter(|p| !gone.contains(&p.info.id) && stored.contains_key(&p.info.id))
        .map(|p| p.info.clone())
        .collect();
    keep.sort_by_key(|p| p.id);
    keep.extend(new_packs);
    let old: Vec<IndexId> = index_names;
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
        repo.write_index(&lock.append(), &IndexFile { packs, supersedes })?;
    }
    report.index_files_replaced = old.len() as u64;
    fault_point("indexed");

    // Delete: old index files first (nothing then names the packs), then the packs. Once the
    // new index is written, an interruption is not heeded: the deletions finish the job.
    lock.check()?;
    ctx.progress.phase("deleting old index files and unused packs");
    for id in &old {
        remove_ok(repo, FileKind::Index, &id.0)?;
    }
    let mut doomed: Vec<PackId> = gone.into_iter().collect();
    doomed.extend(unindexed);
    doomed.sort();
    lock.check()?;
    let (first, rest) = doomed.split_at(doomed.len() / 2);
    first.par_iter().try_for_each(|id| remove_ok(repo, FileKind::Pack, &id.0))?;
    fault_point("deleting");
    rest.par_iter().try_for_each(|id| remove_ok(repo, FileKind::Pack, &id.0))?;

    let backend = repo.backend();
    (report.temporaries_removed, report.temporary_bytes_removed) =
        backend.remove_stale_temporaries(STALE_TEMPORARY_AGE)?;

    let after = backend.list(FileKind::Pack)?;
    report.packs_after = after.len() as u64;
    report.bytes_after = after.iter().map(|(_, s)| s).sum();
    Ok(report)
}

/// Copy the home blobs of `packs` into new packs: read a few packs at a time (bounded memory),
/// verify, re-encrypt without recompressing, write. Returns the new packs' index entries.
/// Errors: a home blob that fails verification, backend errors, [`Error::Interrupted`]
/// (nothing has been deleted then).
fn repack_packs(ctx: &Ctx, repo: &Repository, packs: &[&PackState], blobs: u64) -> Result<Vec<IndexPack>> {
    let mut new_packs: Vec<IndexPack> = Vec::new();
    if packs.is_empty() {
        return Ok(new_packs);
    }
    ctx.progress.phase(&format!("repacking {blobs} blobs from {} packs", packs.len()));
    let mut writers: [Option<PackWriter>; 2] = [None, None];
    let pack_size = repo.config().pack_size as usize;
    // One pack per thread at a time: a pack and the blobs taken from it are both held
    // (up to twice the pack size each), which sets prune's peak memory.
    let batch = rayon::current_num_threads().max(2);
    for group in packs.chunks(batch) {
        ctx.check()?;
        let blobs: Vec<Vec<(BlobEntry, Vec<u8>)>> =
            group.par_iter().map(|p| read_home_blobs(repo, p)).collect::<Result<_>>()?;
        for (entry, framed) in blobs.into_iter().flatten() {
            let kind = entry
                .kind()
                .ok_or_else(|| Error::corrupt(format!("blob {}", entry.id.short()), "undefined blob type"))?;
            let Some(slot) = writers.get_mut(kind.byte() as usize & 1) else { continue };
            let w = slot.get_or_insert_with(|| repo.pack_writer(kind, pack_size));
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
    Ok(new_packs)
}

/// Fault injection for the crash tests (tests/it/failpoints.rs), in builds with the `failpoints`
/// feature only: the failpoint `prune-<name>` (`repacked`, `indexed`, `deleting`) set to
/// `return` makes the process send itself SIGKILL there, as a power cut or the OOM killer
/// would. Without the feature this function is empty.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
fn fault_point(name: &str) {
    fail::fail_point!(&format!("prune-{name}"), |_| {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    });
}

fn remove_ok(repo: &Repository, kind: FileKind, id: &Id) -> Result<()> {
    match repo.backend().remove(kind, id) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == crate::backend::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Read one pack whole and return its home blobs' verified framed plaintexts. Each home blob is
/// verified on its own (authentication, id): a pack whose other bytes are damaged (a copy of a
/// blob stored again by a forced backup, homed elsewhere) is repacked like any other.
/// Errors: a home blob that fails verification (prune then stops before deleting anything).
fn read_home_blobs(repo: &Repository, p: &PackState) -> Result<Vec<(BlobEntry, Vec<u8>)>> {
    let name = p.info.id;
    let data = repo.backend().read(FileKind::Pack, &name.0)?;
    let mut out = Vec::with_capacity(p.home_blobs.len());
    for &i in &p.home_blobs {
        let Some(b) = p.info.blobs.get(i) else { continue };
        let blob_type =
            b.kind().ok_or_else(|| Error::corrupt(format!("pack {name}"), "undefined blob type in the index"))?;
        let what = || format!("{blob_type:?} blob {} in pack {name}", b.id.to_hex());
        let stored = data
            .get(b.offset as usize..(b.offset as usize).saturating_add(b.length as usize))
            .ok_or_else(|| Error::corrupt(what(), "outside the pack"))?;
        let blob = BlobRef { blob_type, id: &b.id, salt: &p.info.salt, offset: b.offset, raw_length: b.raw_length };
        let (framed, _) = repo.open_blob_framed(&blob, stored, &what).map_err(|e| match e {
            Error::Corrupt { object, detail } => {
                Error::Corrupt { object, detail: format!("{detail}; prune stopped before deleting anything") }
            }
            e => e,
        })?;
        out.push((*b, framed));
    }
    Ok(out)
}

fn write_pack(repo: &Repository, w: PackWriter) -> Result<IndexPack> {
    let finished = w.finish()?;
    let size = finished.bytes.len() as u64;
    repo.backend().write_bytes(FileKind::Pack, &finished.id.0, finished.bytes.into())?;
    Ok(IndexPack { id: finished.id, salt: finished.salt, size, blobs: finished.entries })
}
