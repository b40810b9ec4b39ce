//! `check`: verify that a repository is consistent and, on request, that its data is intact.
//!
//! Follows restic's `check` (restic docs, "Checking integrity and consistency"; restic's
//! `internal/checker`), with cairn's formats:
//!
//! 1. every index file decodes (each one is loaded on its own, so a damaged one is named);
//! 2. every pack an index names exists in the backend with the indexed size; packs that no
//!    index names are reported as a hint (the next backup indexes them);
//! 3. every pack's header (a range read of the header only) authenticates, decodes, and lists
//!    exactly the blobs the index lists for that pack, at the same offsets and lengths;
//! 4. every snapshot decodes; every tree reachable from a snapshot loads and decodes (each
//!    tree once), and every blob it references is in the index with the right type;
//! 5. with [`CheckOptions::read_data`], whole packs are downloaded: the pack id must be the
//!    BLAKE3 of its bytes, and every blob is decrypted, decompressed and hashed again.
//!
//! When damage is found, a second walk over every snapshot maps the damaged or missing blobs
//! to the snapshots and file paths that reference them ([`CheckReport::affected`]).
//!
//! Nothing here fails on a damaged repository: each damage found becomes a [`Problem`] and the
//! check goes on. A storage that cannot be reached or refuses (a transient failure after the
//! retries, or a permanent one: [`Error::is_storage_failure`]) is not damage: the check stops
//! with that [`Error::Backend`], and nothing it could not read is reported as damaged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::backend::FileKind;
use crate::context::{Cancel, Ctx};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::ReadLock;
use crate::repository::Repository;

mod packs;
mod problem;
mod subset;
mod trees;

pub use problem::{Affected, CheckReport, Problem};
pub use subset::Subset;

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Download and verify these packs in full; `None`: structure only.
    pub read_data: Option<Subset>,
    /// Packs read at once (header reads and full reads); at least 1. Memory is bounded by
    /// `threads` packs (a pack is about the repository's pack size, 16 MiB by default).
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { read_data: None, threads: 2 }
    }
}

/// Counters a caller may poll while [`check`] runs (for progress display).
#[derive(Debug, Default)]
pub struct CheckProgress {
    /// Packs whose header or whole content was checked so far.
    pub packs_done: AtomicUsize,
    /// Packs to check in the current phase.
    pub packs_total: AtomicUsize,
    /// Trees loaded and checked so far.
    pub trees: AtomicUsize,
    /// Bytes of pack data downloaded by the read-data phase.
    pub bytes_read: AtomicU64,
}

/// What [`check`] tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A phase starts.
    Phase(Phase),
    /// A problem was found (in the phase that started last, or one before it).
    Problem(&'a Problem),
    /// The read-data phase ended: `read` of the `selected` packs were downloaded, `bytes` in all.
    DataRead {
        /// Packs selected.
        selected: usize,
        /// Packs downloaded.
        read: usize,
        /// Bytes downloaded.
        bytes: u64,
    },
}

/// Phases of [`check`], announced through [`Event::Phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading the index files.
    LoadIndexes,
    /// Checking packs exist and their headers match the index.
    CheckPacks,
    /// Loading snapshots and walking their trees.
    CheckSnapshots,
    /// Downloading and verifying the selected packs.
    ReadData,
    /// Mapping damaged blobs to snapshots and paths.
    FindAffected,
}

/// What the index files say about one pack.
pub(crate) struct PackRecord {
    /// (index file, entry in that file); usually one.
    pub(crate) entries: Vec<(IndexId, IndexPack)>,
}

impl PackRecord {
    /// Every blob any index file places in this pack, sorted, unique.
    pub(crate) fn blob_ids(&self) -> Vec<BlobId> {
        let set: BTreeSet<BlobId> = self.entries.iter().flat_map(|(_, p)| p.blobs.iter().map(|b| b.id)).collect();
        set.into_iter().collect()
    }
}

/// Check `repo` as described in the module documentation, under `_lock` (a shared lock, or
/// none under `--no-lock`: check only reads); `on_event` hears of each phase as it starts and
/// of each problem once it is found; `progress` counts work done; the cancellation token of
/// `ctx` is polled between packs and trees.
///
/// Reads go to `repo.backend()`: open the repository without a cache (no
/// [`Repository::use_cache`]) to check what is stored, not a local copy; full pack reads use
/// [`crate::backend::Backend::read`], which no cache intercepts. Memory: the index files'
/// entries (about 50 bytes a blob) plus `opts.threads` whole packs while reading data.
/// Errors: [`Error::Interrupted`]; [`Error::Backend`] when the storage cannot be listed or
/// read (unreachable, refusing: see the module documentation). Every damage is a [`Problem`]
/// in the report.
pub fn check(
    ctx: &Ctx,
    _lock: &ReadLock,
    repo: &Repository,
    opts: &CheckOptions,
    progress: &CheckProgress,
    on_event: &dyn Fn(Event<'_>),
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    // Problems are announced in batches, before each phase and at the end.
    let told = std::cell::Cell::new(0usize);
    let tell = |problems: &[Problem]| {
        for p in problems.get(told.get()..).unwrap_or(&[]) {
            on_event(Event::Problem(p));
        }
        told.set(problems.len());
    };
    let phase = |problems: &[Problem], ph: Phase| {
        tell(problems);
        on_event(Event::Phase(ph));
    };
    let backend = repo.backend();
    let failure = Failure::default();

    // 1. Index files, one by one.
    phase(&report.problems, Phase::LoadIndexes);
    let mut files: Vec<(IndexId, IndexFile)> = Vec::new();
    {
        // Files whose names are not ids are listed too: each is a damaged index file.
        let (ids, foreign) = FileKind::Index.split_listing(backend.list_names(FileKind::Index)?);
        report.index_files = ids.len() + foreign.len();
        let loaded: Vec<(IndexId, Result<IndexFile>)> = {
            use rayon::prelude::*;
            ids.par_iter()
                .map(|(id, _)| IndexId(*id))
                .map(|id| (id, failure.read(|| repo.load::<IndexFile>(&id))))
                .collect()
        };
        failure.check()?;
        for (id, r) in loaded {
            match r {
                Ok(f) => files.push((id, f)),
                Err(e) => report.problems.push(Problem::IndexDamaged { index: id.to_hex(), error: why(&e) }),
            }
        }
        for (name, _) in foreign {
            report.problems.push(Problem::IndexDamaged { index: name, error: NOT_ITS_NAME.into() });
        }
    }
    let live: HashSet<IndexId> = Repository::live_index_files(&files).into_iter().map(|(id, _)| *id).collect();
    files.retain(|(id, _)| live.contains(id));
    let mut index = Index::new();
    index.add_files(files.iter().map(|(_, f)| f));
    let mut packs: BTreeMap<PackId, PackRecord> = BTreeMap::new();
    for (file, f) in files {
        for p in f.packs {
            packs.entry(p.id).or_insert_with(|| PackRecord { entries: Vec::new() }).entries.push((file, p));
        }
    }
    report.packs = packs.len();
    report.blobs = index.len();
    ctx.check()?;

    // 2. Packs: present, right size, header agrees with the index.
    phase(&report.problems, Phase::CheckPacks);
    let mut present: Vec<(PackId, u64)> = Vec::new();
    {
        // Files whose names are not ids are listed too: each is reported as unindexed.
        let (listed, foreign) = FileKind::Pack.split_listing(backend.list_names(FileKind::Pack)?);
        let on_disk: HashMap<PackId, u64> = listed.into_iter().map(|(id, size)| (PackId(id), size)).collect();
        for (id, rec) in &packs {
            match on_disk.get(id) {
                None => report.problems.push(Problem::PackMissing { pack: *id, blobs: rec.blob_ids() }),
                Some(&size) => {
                    if let Some((_, p)) = rec.entries.iter().find(|(_, p)| p.size != size) {
                        report.problems.push(Problem::PackSizeMismatch { pack: *id, indexed: p.size, actual: size });
                    }
                    present.push((*id, size));
                }
            }
        }
        let mut unindexed: Vec<(String, u64)> = on_disk
            .iter()
            .filter(|(id, _)| !packs.contains_key(*id))
            .map(|(id, size)| (id.to_hex(), *size))
            .chain(foreign)
            .collect();
        unindexed.sort();
        for (pack, size) in unindexed {
            report.problems.push(Problem::PackUnindexed { pack, size });
        }
    }
    let selected: HashSet<PackId> = match &opts.read_data {
        Some(subset) => subset.select(&present.iter().map(|(id, _)| *id).collect::<Vec<_>>()).into_iter().collect(),
        None => HashSet::new(),
    };
    report.packs_selected = selected.len();
    // Packs read in full later need no separate header read.
    let header_only: Vec<(PackId, u64)> = present.iter().filter(|(id, _)| !selected.contains(id)).copied().collect();
    progress.packs_done.store(0, Ordering::Relaxed);
    progress.packs_total.store(header_only.len(), Ordering::Relaxed);
    let found = parallel(&ctx.cancel, &header_only, opts.threads, &failure, |(id, size)| {
        let r = match packs.get(id) {
            Some(rec) => packs::check_pack_header(repo, id, *size, rec, &failure),
            None => Vec::new(),
        };
        progress.packs_done.fetch_add(1, Ordering::Relaxed);
        r
    })?;
    report.problems.extend(found);

    // 3. Snapshots and trees.
    phase(&report.problems, Phase::CheckSnapshots);
    let snapshots = trees::load_snapshots(repo, &mut report, &failure)?;
    report.snapshots =
        snapshots.len() + report.problems.iter().filter(|p| matches!(p, Problem::SnapshotDamaged { .. })).count();
    report.trees = trees::walk_trees(ctx, repo, &index, &snapshots, &mut report.problems, progress)?;

    // 4. Read data.
    if opts.read_data.is_some() {
        phase(&report.problems, Phase::ReadData);
        let to_read: Vec<(PackId, u64)> = present.iter().filter(|(id, _)| selected.contains(id)).copied().collect();
        progress.packs_done.store(0, Ordering::Relaxed);
        progress.packs_total.store(to_read.len(), Ordering::Relaxed);
        let read = AtomicUsize::new(0);
        let found = parallel(&ctx.cancel, &to_read, opts.threads, &failure, |(id, _)| {
            let r = match packs.get(id) {
                Some(rec) => packs::read_pack(repo, id, rec, progress, &read, &failure),
                None => Vec::new(),
            };
            progress.packs_done.fetch_add(1, Ordering::Relaxed);
            r
        })?;
        report.problems.extend(found);
        report.packs_read = read.load(Ordering::Relaxed);
        report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
        tell(&report.problems);
        on_event(Event::DataRead {
            selected: report.packs_selected,
            read: report.packs_read,
            bytes: report.bytes_read,
        });
    }

    // 5. What the damage touches: a damaged blob is lost unless a pack that is neither
    // missing nor damaged holds an intact copy.
    let mut damaged: BTreeSet<BlobId> = report.problems.iter().flat_map(|p| p.damaged_blobs()).collect();
    if !damaged.is_empty() {
        let mut bad_whole: HashSet<PackId> = HashSet::new();
        let mut bad_in: HashMap<PackId, HashSet<BlobId>> = HashMap::new();
        let mut no_copy: HashSet<BlobId> = HashSet::new();
        for p in &report.problems {
            match p {
                Problem::PackMissing { pack, .. } | Problem::PackDamaged { pack, .. } => {
                    bad_whole.insert(*pack);
                }
                Problem::BlobDamaged { pack, blob, .. } => {
                    bad_in.entry(*pack).or_default().insert(*blob);
                }
                Problem::PackIndexMismatch { pack, blobs, .. } => {
                    bad_in.entry(*pack).or_default().extend(blobs.iter().copied())
                }
                Problem::BlobNotIndexed { blob, .. } | Problem::TreeDamaged { tree: blob, .. } => {
                    no_copy.insert(*blob);
                }
                _ => {}
            }
        }
        // A blob is readable when the copy every reader uses (the index's location for it) is
        // sound; another sound copy elsewhere does not help restore, dump or mount.
        let readable = |b: &BlobId| {
            index
                .get(b)
                .is_some_and(|(p, _)| !bad_whole.contains(&p.id) && !bad_in.get(&p.id).is_some_and(|s| s.contains(b)))
        };
        damaged.retain(|b| no_copy.contains(b) || !readable(b));
    }
    if !damaged.is_empty() {
        phase(&report.problems, Phase::FindAffected);
        report.affected = trees::find_affected(ctx, repo, &index, &snapshots, &damaged, &failure)?;
    }
    tell(&report.problems);
    Ok(report)
}

/// Why a file whose name is not an id is damaged (as for a file whose content does not hash
/// to its name).
pub(crate) const NOT_ITS_NAME: &str = "content does not match its name (BLAKE3 of the file)";

/// The reason an error gives, without the object name a [`Problem`] already carries.
pub(crate) fn why(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// The first storage failure met by any worker ([`Error::is_storage_failure`]): once one is
/// recorded, workers stop and the check ends with it.
#[derive(Default)]
pub(crate) struct Failure {
    first: Mutex<Option<Error>>,
    set: std::sync::atomic::AtomicBool,
}

impl Failure {
    /// Keep `e` if it is the first storage failure; true if it is one (the caller then
    /// reports nothing about the object it could not read).
    pub(crate) fn record(&self, e: Error) -> std::result::Result<(), Error> {
        if !e.is_storage_failure() {
            return Err(e);
        }
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
        self.set.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Run one read unless a storage failure happened already; a storage failure is recorded
    /// and becomes [`Error::Interrupted`] here (the check ends with the recorded one).
    pub(crate) fn read<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.is_set() {
            return Err(Error::Interrupted);
        }
        f().map_err(|e| match self.record(e) {
            Ok(()) => Error::Interrupted,
            Err(e) => e,
        })
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    /// The recorded failure as an error, if any.
    pub(crate) fn check(&self) -> Result<()> {
        match self.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Run `f` on every item with `threads` workers; the results in any order. Stops early and
/// fails with the storage failure once `failure` holds one.
fn parallel<T: Sync, R: Send>(
    cancel: &Cancel,
    items: &[T],
    threads: usize,
    failure: &Failure,
    f: impl Fn(&T) -> Vec<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(items.len().max(1)) {
            s.spawn(|| loop {
                if cancel.is_cancelled() || failure.is_set() {
                    return;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                let r = f(item);
                out.lock().unwrap_or_else(|p| p.into_inner()).extend(r);
            });
        }
    });
    cancel.check()?;
    failure.check()?;
    Ok(out.into_inner().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_runs_every_item_or_stops() {
        let items: Vec<u32> = (0..100).collect();
        let mut out = parallel(&Cancel::new(), &items, 4, &Failure::default(), |n| vec![*n * 2]).unwrap();
        out.sort_unstable();
        assert_eq!(out, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        let cancel = Cancel::new();
        cancel.cancel();
        let r = parallel(&cancel, &items, 4, &Failure::default(), |n| vec![*n]);
        assert!(matches!(r, Err(Error::Interrupted)));
        // A recorded storage failure ends the run with that failure.
        let failure = Failure::default();
        let e = crate::backend::BackendError::from_io(
            "read data/ab".into(),
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        );
        let _ = failure.record(Error::Backend(e));
        let r = parallel(&Cancel::new(), &items, 4, &failure, |n| vec![*n]);
        assert!(matches!(r, Err(Error::Backend(_))), "{r:?}");
    }
}
