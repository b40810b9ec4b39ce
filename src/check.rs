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
use std::sync::{Arc, Mutex};

use crate::backend::FileKind;
use crate::blob::{self, BlobType};
use crate::crypto::SALT_LEN;
use crate::error::{Error, Result};
use crate::format::Magic;
use crate::id::{BlobId, Id, PackId, SnapshotId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::pack::{self, BlobEntry};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// Which packs `--read-data` / `--read-data-subset` download and verify.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Every indexed pack (`--read-data`).
    All,
    /// A random sample of this percentage of the packs (`N%`, 0 < N ≤ 100): at least one pack
    /// when any exist; a different sample each run (restic's `selectRandomPacksByPercentage`).
    Percent(f64),
    /// Group `n` of `t` (`n/t`, 1 ≤ n ≤ t ≤ 256): the packs whose id's first byte modulo `t`
    /// is `n - 1` (restic's `selectPacksByBucket`). The `t` groups cover every pack exactly
    /// once, and a pack always falls in the same group.
    Group {
        /// 1-based group number.
        n: u32,
        /// Number of groups.
        t: u32,
    },
}

impl std::str::FromStr for Subset {
    type Err = String;

    /// Parse `N%` (a number with an optional fraction, 0 < N ≤ 100) or `n/t`
    /// (1 ≤ n ≤ t ≤ 256). Errors: a sentence naming the bad value and the accepted forms.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let bad = |why: &str| {
            format!("read-data subset {s:?}: {why}; expected N% (0 < N <= 100) or n/t (1 <= n <= t <= 256)")
        };
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            return Ok(Subset::Percent(v));
        }
        if let Some((n, t)) = s.split_once('/') {
            let n: u32 = n.trim().parse().map_err(|_| bad("n is not a whole number"))?;
            let t: u32 = t.trim().parse().map_err(|_| bad("t is not a whole number"))?;
            if t == 0 || t > 256 {
                return Err(bad("t must be 1 to 256"));
            }
            if n == 0 || n > t {
                return Err(bad("n must be 1 to t"));
            }
            return Ok(Subset::Group { n, t });
        }
        Err(bad("not a subset"))
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subset::All => f.write_str("all"),
            Subset::Percent(p) => write!(f, "{p}%"),
            Subset::Group { n, t } => write!(f, "{n}/{t}"),
        }
    }
}

impl Subset {
    /// The packs of `packs` this subset selects, in the order given.
    pub fn select(&self, packs: &[PackId]) -> Vec<PackId> {
        match *self {
            Subset::All => packs.to_vec(),
            Subset::Group { n, t } => packs.iter().filter(|p| (p.0 .0[0] as u32) % t == n - 1).copied().collect(),
            Subset::Percent(pct) => {
                if packs.is_empty() {
                    return Vec::new();
                }
                let want = ((packs.len() as f64 * pct / 100.0) as usize).clamp(1, packs.len());
                let mut rng = rand::thread_rng();
                let mut picked: Vec<usize> = rand::seq::index::sample(&mut rng, packs.len(), want).into_vec();
                picked.sort_unstable();
                picked.into_iter().filter_map(|i| packs.get(i).copied()).collect()
            }
        }
    }
}

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

/// One problem found. All but [`Problem::PackUnindexed`] are errors.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// An index file that cannot be read, authenticated or decoded; its packs are unknown.
    IndexDamaged {
        /// Its file name (64 hex characters).
        index: String,
        /// Why.
        error: String,
    },
    /// A pack named by an index is not in the backend.
    PackMissing {
        /// The pack.
        pack: PackId,
        /// The blobs the index places in it.
        blobs: Vec<BlobId>,
    },
    /// A pack's size in the backend differs from the indexed size.
    PackSizeMismatch {
        /// The pack.
        pack: PackId,
        /// Size the index records, bytes.
        indexed: u64,
        /// Size in the backend, bytes.
        actual: u64,
    },
    /// A pack in the backend that no index names (a hint: the next backup indexes it).
    PackUnindexed {
        /// Its file name.
        pack: String,
        /// Its size, bytes.
        size: u64,
    },
    /// A pack whose header (or salt, or whole content) cannot be read, authenticated or
    /// decoded; every blob the index places in it is counted as damaged.
    PackDamaged {
        /// The pack.
        pack: PackId,
        /// Why.
        error: String,
        /// The blobs the index places in it.
        blobs: Vec<BlobId>,
    },
    /// A pack header that disagrees with an index file about the pack's blobs or salt.
    PackIndexMismatch {
        /// The pack.
        pack: PackId,
        /// The index file (name) that disagrees.
        index: String,
        /// What differs.
        detail: String,
        /// Indexed blobs whose indexed location is not what the header says.
        blobs: Vec<BlobId>,
    },
    /// A downloaded pack whose bytes do not hash to its id.
    PackHashMismatch {
        /// The pack (its name).
        pack: PackId,
        /// BLAKE3 of the bytes read.
        actual: Id,
    },
    /// A blob in a downloaded pack that fails authentication, decompression or its id check.
    BlobDamaged {
        /// The pack.
        pack: PackId,
        /// The blob.
        blob: BlobId,
        /// Its type.
        blob_type: BlobType,
        /// Why.
        error: String,
    },
    /// A snapshot file that cannot be read, authenticated or decoded.
    SnapshotDamaged {
        /// Its file name.
        snapshot: String,
        /// Why.
        error: String,
    },
    /// A tree referenced by a snapshot or a directory that cannot be loaded or decoded
    /// (a tree missing from the index is [`Problem::BlobNotIndexed`]).
    TreeDamaged {
        /// The tree blob.
        tree: BlobId,
        /// Why.
        error: String,
    },
    /// A blob referenced by a tree (or a snapshot's root tree) that no index lists, or lists
    /// with the other type.
    BlobNotIndexed {
        /// The blob.
        blob: BlobId,
        /// The type the reference needs.
        blob_type: BlobType,
        /// The tree that references it (`None`: a snapshot's root).
        tree: Option<BlobId>,
        /// True when the index lists it, but with the other type.
        wrong_type: bool,
    },
    /// A node that cannot be right: a directory without a subtree.
    NodeInvalid {
        /// The tree holding the node.
        tree: BlobId,
        /// The node's name (lossy UTF-8).
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl Problem {
    /// False only for hints ([`Problem::PackUnindexed`]).
    pub fn is_error(&self) -> bool {
        !matches!(self, Problem::PackUnindexed { .. })
    }

    /// A short machine name of the kind (`pack_missing`...), used in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::IndexDamaged { .. } => "index_damaged",
            Problem::PackMissing { .. } => "pack_missing",
            Problem::PackSizeMismatch { .. } => "pack_size_mismatch",
            Problem::PackUnindexed { .. } => "pack_unindexed",
            Problem::PackDamaged { .. } => "pack_damaged",
            Problem::PackIndexMismatch { .. } => "pack_index_mismatch",
            Problem::PackHashMismatch { .. } => "pack_hash_mismatch",
            Problem::BlobDamaged { .. } => "blob_damaged",
            Problem::SnapshotDamaged { .. } => "snapshot_damaged",
            Problem::TreeDamaged { .. } => "tree_damaged",
            Problem::BlobNotIndexed { .. } => "blob_not_indexed",
            Problem::NodeInvalid { .. } => "node_invalid",
        }
    }

    /// The pack concerned, if any.
    pub fn pack(&self) -> Option<String> {
        match self {
            Problem::PackMissing { pack, .. }
            | Problem::PackSizeMismatch { pack, .. }
            | Problem::PackDamaged { pack, .. }
            | Problem::PackIndexMismatch { pack, .. }
            | Problem::PackHashMismatch { pack, .. }
            | Problem::BlobDamaged { pack, .. } => Some(pack.to_hex()),
            Problem::PackUnindexed { pack, .. } => Some(pack.clone()),
            _ => None,
        }
    }

    /// The blobs this problem makes unreadable (before discounting intact copies elsewhere).
    pub fn damaged_blobs(&self) -> Vec<BlobId> {
        match self {
            Problem::PackMissing { blobs, .. }
            | Problem::PackDamaged { blobs, .. }
            | Problem::PackIndexMismatch { blobs, .. } => blobs.clone(),
            Problem::BlobDamaged { blob, .. } | Problem::BlobNotIndexed { blob, .. } => vec![*blob],
            Problem::TreeDamaged { tree, .. } => vec![*tree],
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::IndexDamaged { index, error } => write!(f, "index file {index} is damaged: {error}"),
            Problem::PackMissing { pack, blobs } => {
                write!(f, "pack {pack} is missing: the index places {} blob(s) in it", blobs.len())
            }
            Problem::PackSizeMismatch { pack, indexed, actual } => {
                write!(f, "pack {pack} has {actual} bytes, the index says {indexed}")
            }
            Problem::PackUnindexed { pack, size } => {
                write!(
                    f,
                    "pack {pack} ({size} bytes) is not referenced in any index (a hint: the next backup indexes it)"
                )
            }
            Problem::PackDamaged { pack, error, blobs } if blobs.is_empty() => {
                write!(f, "pack {pack} is damaged: {error}")
            }
            Problem::PackDamaged { pack, error, blobs } => {
                write!(f, "pack {pack} is damaged ({} indexed blob(s) in it): {error}", blobs.len())
            }
            Problem::PackIndexMismatch { pack, index, detail, .. } => {
                write!(f, "pack {pack} does not match index file {index}: {detail}")
            }
            Problem::PackHashMismatch { pack, actual } => {
                write!(f, "pack {pack} is damaged: its content hashes to {actual}")
            }
            Problem::BlobDamaged { pack, blob, blob_type, error } => {
                write!(f, "pack {pack}: {} blob {blob} is damaged: {error}", type_name(*blob_type))
            }
            Problem::SnapshotDamaged { snapshot, error } => write!(f, "snapshot {snapshot} is damaged: {error}"),
            Problem::TreeDamaged { tree, error } => write!(f, "tree {tree} cannot be loaded: {error}"),
            Problem::BlobNotIndexed { blob, blob_type, tree, wrong_type } => {
                let by = match tree {
                    Some(t) => format!("tree {t}"),
                    None => "a snapshot".to_string(),
                };
                if *wrong_type {
                    write!(
                        f,
                        "{} blob {blob} (referenced by {by}) is indexed with the other type",
                        type_name(*blob_type)
                    )
                } else {
                    write!(f, "{} blob {blob} (referenced by {by}) is not in any index", type_name(*blob_type))
                }
            }
            Problem::NodeInvalid { tree, name, detail } => write!(f, "tree {tree}: entry {name:?} {detail}"),
        }
    }
}

fn type_name(t: BlobType) -> &'static str {
    match t {
        BlobType::Data => "data",
        BlobType::Tree => "tree",
    }
}

/// A file or directory inside a snapshot whose content is damaged or missing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its time.
    pub time: Timestamp,
    /// Absolute path inside the snapshot (`/home/user/file`); a directory's path when its
    /// tree is damaged (everything below it is lost).
    pub path: String,
    /// The damaged or missing blobs the entry references.
    pub blobs: Vec<BlobId>,
}

/// The outcome of [`check`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Every problem found, errors and hints, in the order found.
    pub problems: Vec<Problem>,
    /// Snapshot entries that reference damaged or missing blobs (empty when none is damaged),
    /// sorted by snapshot time, snapshot id and path.
    pub affected: Vec<Affected>,
    /// Index files listed.
    pub index_files: usize,
    /// Distinct packs named by the index files.
    pub packs: usize,
    /// Distinct blobs in the index.
    pub blobs: usize,
    /// Snapshot files listed.
    pub snapshots: usize,
    /// Distinct trees loaded from snapshots.
    pub trees: usize,
    /// Packs selected for the read-data phase.
    pub packs_selected: usize,
    /// Packs downloaded in full by the read-data phase.
    pub packs_read: usize,
    /// Bytes downloaded by the read-data phase.
    pub bytes_read: u64,
}

impl CheckReport {
    /// Number of problems that are errors (not hints).
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// True when no error was found (hints allowed).
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
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
struct PackRecord {
    /// (index file name, entry in that file); usually one.
    entries: Vec<(String, IndexPack)>,
}

impl PackRecord {
    /// Every blob any index file places in this pack, sorted, unique.
    fn blob_ids(&self) -> Vec<BlobId> {
        let set: BTreeSet<BlobId> = self.entries.iter().flat_map(|(_, p)| p.blobs.iter().map(|b| b.id)).collect();
        set.into_iter().collect()
    }
}

/// Check `repo` as described in the module documentation; `on_event` hears of each phase as
/// it starts and of each problem once it is found; `progress` counts work done.
///
/// Reads go to `repo.backend()`: open the repository without a cache (no
/// [`Repository::use_cache`]) to check what is stored, not a local copy; full pack reads use
/// [`crate::backend::Backend::read`], which no cache intercepts. Memory: the index files'
/// entries (about 50 bytes a blob) plus `opts.threads` whole packs while reading data.
/// Errors: [`Error::Interrupted`]; [`Error::Backend`] when the storage cannot be listed or
/// read (unreachable, refusing: see the module documentation). Every damage is a [`Problem`]
/// in the report.
pub fn check(
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
    let mut files: Vec<(String, IndexFile)> = Vec::new();
    {
        let names = backend.list(FileKind::Index)?;
        report.index_files = names.len();
        let loaded: Vec<(String, Result<IndexFile>)> = {
            use rayon::prelude::*;
            names
                .par_iter()
                .map(|(n, _)| (n.clone(), failure.read(|| repo.read_object(FileKind::Index, Magic::Index, n))))
                .collect()
        };
        failure.check()?;
        for (name, r) in loaded {
            match r {
                Ok(f) => files.push((name, f)),
                Err(e) => report.problems.push(Problem::IndexDamaged { index: name, error: why(&e) }),
            }
        }
    }
    let live: HashSet<String> = Repository::live_index_files(&files).into_iter().map(|(n, _)| n.clone()).collect();
    files.retain(|(name, _)| live.contains(name));
    let mut index = Index::new();
    index.add_files(files.iter().map(|(_, f)| f));
    let mut packs: BTreeMap<PackId, PackRecord> = BTreeMap::new();
    for (name, f) in files {
        for p in f.packs {
            packs.entry(p.id).or_insert_with(|| PackRecord { entries: Vec::new() }).entries.push((name.clone(), p));
        }
    }
    report.packs = packs.len();
    report.blobs = index.len();
    interrupted()?;

    // 2. Packs: present, right size, header agrees with the index.
    phase(&report.problems, Phase::CheckPacks);
    let mut present: Vec<(PackId, u64)> = Vec::new();
    {
        let listed = backend.list(FileKind::Pack)?;
        let on_disk: HashMap<String, u64> = listed.iter().cloned().collect();
        for (id, rec) in &packs {
            match on_disk.get(&id.to_hex()) {
                None => report.problems.push(Problem::PackMissing { pack: *id, blobs: rec.blob_ids() }),
                Some(&size) => {
                    if let Some((_, p)) = rec.entries.iter().find(|(_, p)| p.size != size) {
                        report.problems.push(Problem::PackSizeMismatch { pack: *id, indexed: p.size, actual: size });
                    }
                    present.push((*id, size));
                }
            }
        }
        let mut unindexed: Vec<(String, u64)> = listed
            .into_iter()
            .filter(|(n, _)| Id::from_hex(n).is_none_or(|i| !packs.contains_key(&PackId(i))))
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
    let found = parallel(&header_only, opts.threads, &failure, |(id, size)| {
        let r = match packs.get(id) {
            Some(rec) => check_pack_header(repo, id, *size, rec, &failure),
            None => Vec::new(),
        };
        progress.packs_done.fetch_add(1, Ordering::Relaxed);
        r
    })?;
    report.problems.extend(found);

    // 3. Snapshots and trees.
    phase(&report.problems, Phase::CheckSnapshots);
    let snapshots = load_snapshots(repo, &mut report, &failure)?;
    report.snapshots =
        snapshots.len() + report.problems.iter().filter(|p| matches!(p, Problem::SnapshotDamaged { .. })).count();
    report.trees = walk_trees(repo, &index, &snapshots, &mut report.problems, progress)?;

    // 4. Read data.
    if opts.read_data.is_some() {
        phase(&report.problems, Phase::ReadData);
        let to_read: Vec<(PackId, u64)> = present.iter().filter(|(id, _)| selected.contains(id)).copied().collect();
        progress.packs_done.store(0, Ordering::Relaxed);
        progress.packs_total.store(to_read.len(), Ordering::Relaxed);
        let read = AtomicUsize::new(0);
        let found = parallel(&to_read, opts.threads, &failure, |(id, _)| {
            let r = match packs.get(id) {
                Some(rec) => read_pack(repo, id, rec, progress, &read, &failure),
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
        report.affected = find_affected(repo, &index, &snapshots, &damaged, &failure)?;
    }
    tell(&report.problems);
    Ok(report)
}

/// The reason an error gives, without the object name a [`Problem`] already carries.
fn why(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

fn interrupted() -> Result<()> {
    if crate::archiver::INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// The first storage failure met by any worker ([`Error::is_storage_failure`]): once one is
/// recorded, workers stop and the check ends with it.
#[derive(Default)]
struct Failure {
    first: Mutex<Option<Error>>,
    set: std::sync::atomic::AtomicBool,
}

impl Failure {
    /// Keep `e` if it is the first storage failure; true if it is one (the caller then
    /// reports nothing about the object it could not read).
    fn record(&self, e: Error) -> std::result::Result<(), Error> {
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
    fn read<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.is_set() {
            return Err(Error::Interrupted);
        }
        f().map_err(|e| match self.record(e) {
            Ok(()) => Error::Interrupted,
            Err(e) => e,
        })
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    /// The recorded failure as an error, if any.
    fn check(&self) -> Result<()> {
        match self.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Run `f` on every item with `threads` workers; the results in any order. Stops early and
/// fails with the storage failure once `failure` holds one.
fn parallel<T: Sync, R: Send>(
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
                if crate::archiver::INTERRUPTED.load(Ordering::Relaxed) || failure.is_set() {
                    return;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                let r = f(item);
                out.lock().unwrap_or_else(|p| p.into_inner()).extend(r);
            });
        }
    });
    interrupted()?;
    failure.check()?;
    Ok(out.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Read a pack's salt and header by range reads and compare them with the index.
fn check_pack_header(repo: &Repository, id: &PackId, size: u64, rec: &PackRecord, failure: &Failure) -> Vec<Problem> {
    let name = id.to_hex();
    let what = format!("pack {}", id.short());
    let b = repo.backend();
    match pack::read_stored_header(&**b, repo.master(), &name, size, &what) {
        Ok((salt, entries)) => compare_with_index(id, &salt, &entries, rec),
        Err(e) => match failure.record(e) {
            Ok(()) => Vec::new(),
            Err(e) => vec![Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() }],
        },
    }
}

/// Problems where the pack's `salt` and header `entries` differ from what each index file
/// says about the pack.
fn compare_with_index(id: &PackId, salt: &[u8; SALT_LEN], entries: &[BlobEntry], rec: &PackRecord) -> Vec<Problem> {
    let key = |e: &BlobEntry| (e.blob_type, e.id, e.offset, e.length, e.raw_length);
    let in_header: HashSet<_> = entries.iter().map(key).collect();
    let mut out = Vec::new();
    for (index_name, p) in &rec.entries {
        let mut details = Vec::new();
        let mut blobs = Vec::new();
        if p.salt != *salt {
            details.push("the salt differs".to_string());
            blobs.extend(p.blobs.iter().map(|b| b.id));
        } else {
            let wrong: Vec<BlobId> = p.blobs.iter().filter(|e| !in_header.contains(&key(e))).map(|e| e.id).collect();
            if !wrong.is_empty() {
                details.push(format!("{} indexed blob(s) are not in the pack header as indexed", wrong.len()));
                blobs.extend(wrong);
            }
        }
        let indexed: HashSet<_> = p.blobs.iter().map(key).collect();
        let extra = entries.iter().filter(|e| !indexed.contains(&key(e))).count();
        if extra > 0 {
            details.push(format!("{extra} blob(s) of the header are not indexed for this pack"));
        }
        if !details.is_empty() {
            out.push(Problem::PackIndexMismatch {
                pack: *id,
                index: index_name.clone(),
                detail: details.join("; "),
                blobs,
            });
        }
    }
    out
}

/// Download a whole pack and verify its id, header and every blob.
fn read_pack(
    repo: &Repository,
    id: &PackId,
    rec: &PackRecord,
    progress: &CheckProgress,
    read: &AtomicUsize,
    failure: &Failure,
) -> Vec<Problem> {
    let data = match repo.backend().read(FileKind::Pack, &id.to_hex()) {
        Ok(d) => d,
        Err(e) => {
            return match failure.record(Error::stored_read(format!("pack {}", id.short()), e)) {
                Ok(()) => Vec::new(),
                Err(e) => vec![Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() }],
            }
        }
    };
    read.fetch_add(1, Ordering::Relaxed);
    progress.bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
    let mut out = Vec::new();
    let actual = Id::of_bytes(&data);
    if actual != id.0 {
        out.push(Problem::PackHashMismatch { pack: *id, actual });
    }
    let what = format!("pack {}", id.short());
    let salt = match pack::read_salt(&data, &what) {
        Ok(s) => s,
        Err(e) => {
            out.push(Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() });
            return out;
        }
    };
    // Open the blobs the header lists; when the header is damaged, those the index lists,
    // so that intact blobs are told apart from damaged ones.
    let entries: Vec<BlobEntry> = match pack::read_header(repo.master(), &data, id) {
        Ok(entries) => {
            out.extend(compare_with_index(id, &salt, &entries, rec));
            entries
        }
        Err(e) => {
            out.push(Problem::PackDamaged { pack: *id, error: why(&e), blobs: Vec::new() });
            let mut all: Vec<BlobEntry> = rec.entries.iter().flat_map(|(_, p)| p.blobs.iter().copied()).collect();
            all.sort_by_key(|e| (e.offset, e.id));
            all.dedup();
            all
        }
    };
    let key = repo.master().file_key(&salt);
    for e in &entries {
        let Some(blob_type) = e.kind() else {
            out.push(Problem::BlobDamaged {
                pack: *id,
                blob: e.id,
                blob_type: BlobType::Data,
                error: format!("undefined blob type {}", e.blob_type),
            });
            continue;
        };
        let start = e.offset as usize;
        let stored = start.checked_add(e.length as usize).and_then(|end| data.get(start..end));
        let r = match stored {
            Some(stored) => {
                blob::open(repo.master(), &key, e.offset as u64, blob_type, &e.id, e.raw_length, stored, &|| {
                    format!("blob {}", e.id.short())
                })
                .map(|_| ())
            }
            None => Err(Error::corrupt(format!("blob {}", e.id.short()), "lies beyond the end of the pack")),
        };
        if let Err(err) = r {
            out.push(Problem::BlobDamaged { pack: *id, blob: e.id, blob_type, error: why(&err) });
        }
    }
    out
}

/// Every snapshot that loads; damaged ones become problems.
fn load_snapshots(
    repo: &Repository,
    report: &mut CheckReport,
    failure: &Failure,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let names = repo.backend().list(FileKind::Snapshot)?;
    let loaded: Vec<(String, Result<Snapshot>)> = {
        use rayon::prelude::*;
        names
            .par_iter()
            .map(|(n, _)| (n.clone(), failure.read(|| repo.read_object(FileKind::Snapshot, Magic::Snapshot, n))))
            .collect()
    };
    failure.check()?;
    let mut out = Vec::new();
    for (name, r) in loaded {
        match (r, Id::from_hex(&name)) {
            (Ok(s), Some(id)) => out.push((SnapshotId(id), s)),
            (Ok(_), None) => {
                report.problems.push(Problem::SnapshotDamaged { snapshot: name, error: "its name is not an id".into() })
            }
            (Err(e), _) => report.problems.push(Problem::SnapshotDamaged { snapshot: name, error: why(&e) }),
        }
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Where `blob` of `blob_type` stands in the index: `None` if fine, else (missing, wrong type).
fn index_problem(index: &Index, blob: &BlobId, blob_type: BlobType) -> Option<bool> {
    match index.get(blob) {
        None => Some(false),
        Some((_, loc)) if loc.blob_type != blob_type => Some(true),
        Some(_) => None,
    }
}

/// Load every tree reachable from `snapshots` once; returns how many loaded.
fn walk_trees(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    problems: &mut Vec<Problem>,
    progress: &CheckProgress,
) -> Result<usize> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut reported: HashSet<BlobId> = HashSet::new();
    let mut queue: Vec<(BlobId, Option<BlobId>)> = Vec::new();
    for (_, s) in snapshots {
        if seen.insert(s.tree) {
            queue.push((s.tree, None));
        }
    }
    let failure = Failure::default();
    let mut loaded = 0;
    while !queue.is_empty() {
        interrupted()?;
        // Load a batch of trees in parallel.
        let batch: Vec<(BlobId, Option<BlobId>)> = queue.drain(queue.len().saturating_sub(256)..).collect();
        let results: Vec<(BlobId, Option<BlobId>, TreeLoad)> = {
            use rayon::prelude::*;
            batch
                .into_par_iter()
                .map(|(id, parent)| {
                    let r = match index_problem(index, &id, BlobType::Tree) {
                        Some(wrong_type) => TreeLoad::NotIndexed { wrong_type },
                        None => match failure.read(|| repo.load_tree(index, &id)) {
                            Ok(t) => TreeLoad::Loaded(t),
                            Err(e) => TreeLoad::Damaged(e.to_string()),
                        },
                    };
                    (id, parent, r)
                })
                .collect()
        };
        failure.check()?;
        for (id, parent, r) in results {
            match r {
                TreeLoad::NotIndexed { wrong_type } => {
                    problems.push(Problem::BlobNotIndexed {
                        blob: id,
                        blob_type: BlobType::Tree,
                        tree: parent,
                        wrong_type,
                    });
                }
                TreeLoad::Damaged(error) => problems.push(Problem::TreeDamaged { tree: id, error }),
                TreeLoad::Loaded(tree) => {
                    loaded += 1;
                    progress.trees.fetch_add(1, Ordering::Relaxed);
                    for node in &tree.nodes {
                        match node.kind {
                            NodeKind::Dir => match node.subtree {
                                Some(sub) => {
                                    if seen.insert(sub) {
                                        queue.push((sub, Some(id)));
                                    }
                                }
                                None => problems.push(Problem::NodeInvalid {
                                    tree: id,
                                    name: node.name_lossy().into_owned(),
                                    detail: "is a directory without a subtree".into(),
                                }),
                            },
                            NodeKind::File => {
                                for b in &node.content {
                                    if let Some(wrong_type) = index_problem(index, b, BlobType::Data) {
                                        if reported.insert(*b) {
                                            problems.push(Problem::BlobNotIndexed {
                                                blob: *b,
                                                blob_type: BlobType::Data,
                                                tree: Some(id),
                                                wrong_type,
                                            });
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Ok(loaded)
}

/// The outcome of loading one tree in [`walk_trees`].
enum TreeLoad {
    Loaded(Tree),
    NotIndexed { wrong_type: bool },
    Damaged(String),
}

/// Entries below a tree that reference damaged blobs: (path relative to the tree, starting
/// with `/`; the damaged blobs), shared between the snapshots that contain the tree.
type Found = Arc<Vec<(String, Vec<BlobId>)>>;

/// Map `damaged` blobs to the snapshot entries that reference them.
fn find_affected(
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    damaged: &BTreeSet<BlobId>,
    failure: &Failure,
) -> Result<Vec<Affected>> {
    let mut memo: HashMap<BlobId, Found> = HashMap::new();
    let mut out = Vec::new();
    for (sid, s) in snapshots {
        interrupted()?;
        let entries: Found = if damaged.contains(&s.tree) {
            Arc::new(vec![("/".to_string(), vec![s.tree])])
        } else {
            affected_below(repo, index, &s.tree, damaged, &mut memo, failure)
        };
        failure.check()?;
        for (rel, blobs) in entries.iter() {
            let path = if rel.is_empty() { "/".to_string() } else { rel.clone() };
            out.push(Affected { snapshot: *sid, time: s.time, path, blobs: blobs.clone() });
        }
    }
    out.sort_by(|a, b| (a.time, a.snapshot, &a.path).cmp(&(b.time, b.snapshot, &b.path)));
    Ok(out)
}

/// Entries below tree `id` (paths relative to it, each starting with `/`) that reference a
/// damaged blob. A tree that cannot be loaded yields nothing here (it is reported where its
/// parent names it, or as a problem of its own). Depth-first with a stack of its own (one
/// partly read tree per level, no recursion), so any depth works.
fn affected_below(
    repo: &Repository,
    index: &Index,
    id: &BlobId,
    damaged: &BTreeSet<BlobId>,
    memo: &mut HashMap<BlobId, Found>,
    failure: &Failure,
) -> Found {
    /// A tree being searched: its id, entries not searched yet, what was found, and the name
    /// (`/name`) of the directory entry whose tree is being searched above it.
    struct Frame {
        id: BlobId,
        nodes: std::vec::IntoIter<Node>,
        out: Vec<(String, Vec<BlobId>)>,
        pending: Option<String>,
    }
    let open = |id: &BlobId| Frame {
        id: *id,
        // A tree that cannot be read is damage reported on its own, or a storage failure
        // recorded in `failure`: nothing is found below it.
        nodes: failure.read(|| repo.load_tree(index, id)).map(|t| t.nodes).unwrap_or_default().into_iter(),
        out: Vec::new(),
        pending: None,
    };
    if let Some(r) = memo.get(id) {
        return r.clone();
    }
    let mut stack = vec![open(id)];
    let mut below: Option<Found> = None;
    loop {
        let Some(top) = stack.last_mut() else { return Arc::new(Vec::new()) };
        if let (Some(name), Some(found)) = (top.pending.take(), below.take()) {
            for (rel, blobs) in found.iter() {
                top.out.push((format!("{name}{rel}"), blobs.clone()));
            }
        }
        let Some(node) = top.nodes.next() else {
            let Some(done) = stack.pop() else { return Arc::new(Vec::new()) };
            let r = Arc::new(done.out);
            memo.insert(done.id, r.clone());
            if stack.is_empty() {
                return r;
            }
            below = Some(r);
            continue;
        };
        let name = format!("/{}", node.name_lossy());
        match node.kind {
            NodeKind::File => {
                let mut bad: Vec<BlobId> = node.content.iter().filter(|b| damaged.contains(b)).copied().collect();
                if !bad.is_empty() {
                    bad.sort();
                    bad.dedup();
                    top.out.push((name, bad));
                }
            }
            NodeKind::Dir => match node.subtree {
                Some(sub) if damaged.contains(&sub) => top.out.push((name, vec![sub])),
                Some(sub) => {
                    top.pending = Some(name);
                    match memo.get(&sub) {
                        Some(r) => below = Some(r.clone()),
                        None => stack.push(open(&sub)),
                    }
                }
                None => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_parsing() {
        assert_eq!("10%".parse::<Subset>(), Ok(Subset::Percent(10.0)));
        assert_eq!("2.5%".parse::<Subset>(), Ok(Subset::Percent(2.5)));
        assert_eq!("1/5".parse::<Subset>(), Ok(Subset::Group { n: 1, t: 5 }));
        assert_eq!("256/256".parse::<Subset>(), Ok(Subset::Group { n: 256, t: 256 }));
        for bad in ["0/5", "6/5", "1/0", "1/257", "150%", "0%", "-1%", "abc", "", "%", "1/", "/5", "a/b", "NaN%"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn groups_partition_and_percent_samples() {
        let packs: Vec<PackId> = (0..1000u32).map(|i| PackId(Id::of_bytes(&i.to_le_bytes()))).collect();
        for t in [1u32, 3, 7, 256] {
            let mut all: Vec<PackId> = (1..=t).flat_map(|n| Subset::Group { n, t }.select(&packs)).collect();
            all.sort();
            let mut want = packs.clone();
            want.sort();
            assert_eq!(all, want, "groups of {t} do not cover every pack exactly once");
        }
        // The group is a function of the id's first byte alone (restic's rule).
        for p in (Subset::Group { n: 2, t: 3 }).select(&packs) {
            assert_eq!(p.0 .0[0] % 3, 1);
        }
        assert_eq!(Subset::Percent(100.0).select(&packs).len(), 1000);
        assert_eq!(Subset::Percent(10.0).select(&packs).len(), 100);
        assert_eq!(Subset::Percent(0.01).select(&packs).len(), 1);
        let a = Subset::Percent(50.0).select(&packs);
        let unique: HashSet<PackId> = a.iter().copied().collect();
        assert_eq!(unique.len(), 500);
        assert!(Subset::Percent(50.0).select(&[]).is_empty());
    }
}
