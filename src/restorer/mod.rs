//! Restore: recreate a snapshot's tree under a target directory, planned by pack.
//!
//! Files land at `TARGET/<full original path>`, as restic does. The plan follows restic's
//! restorer (`internal/restorer/doc.go`) in spirit:
//!
//! 1. Walk the snapshot's trees (in parallel; below [`PARALLEL_DEPTH`] levels one entry at a
//!    time with a stack of its own, so no depth overflows the call stack). Directories,
//!    symlinks and special files are created at once; each regular file is created empty at
//!    its final size, and each of its blobs is noted under the pack that holds it, with the
//!    file offset it belongs at.
//! 2. Process the packs in parallel: read each pack's needed blobs in as few range requests as
//!    possible (neighbouring blobs are read together), verify every blob (authenticated
//!    decryption, then its id recomputed), and write it at every place it belongs (`pwrite`);
//!    an all-zero blob is not written, leaving a hole (sparse files stay sparse).
//!    A file whose last blob lands gets its metadata.
//! 3. Files with a damaged or missing blob are removed and reported with the pack and blob;
//!    nothing unverified is ever left as file content. A file that replaces one already in
//!    the target is written under a temporary name beside it and renamed over it only once
//!    complete, so a damaged snapshot copy never costs the local one. Then hard links are
//!    made and directories get their metadata, deepest first.
//!
//! Safety: every name comes from a tree and is checked to be one plain path component; any
//! entry in the way (a planted symlink, say) is removed, never followed, and files are opened
//! with `O_NOFOLLOW`, so a restore cannot write outside TARGET. A directory with entries in
//! the way of a file is never removed: the conflict is reported and the rest restored.

mod plan;
mod write;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use self::plan::{DirState, Plan};
use crate::archiver::Patterns;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;

/// Options of a restore.
#[derive(Default)]
pub struct RestoreOptions {
    /// Only paths matching one of these globs (and everything below a matching directory).
    pub includes: Vec<String>,
    /// Skip paths matching these globs (and everything below).
    pub excludes: Vec<String>,
    /// Re-read every written file and check it against its blob ids.
    pub verify: bool,
    /// Packs processed at once (0: the number of CPUs).
    pub threads: usize,
}

/// Figures and failures of a restore.
#[derive(Default, Debug)]
pub struct RestoreReport {
    /// Files written (hard links included).
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries that could not be restored: snapshot path and reason.
    pub errors: Vec<(String, String)>,
    /// How many of `errors` are files whose stored content is damaged or missing in the
    /// repository (a verified read failed), as opposed to local failures (a full disk...).
    pub damaged: u64,
}

/// Live counters for a progress display.
#[derive(Default)]
pub struct RestoreProgress {
    /// Files done.
    pub files: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

pub(super) struct Restorer<'a> {
    repo: &'a Repository,
    index: &'a Index,
    target: PathBuf,
    includes: Option<Patterns>,
    excludes: Patterns,
    as_root: bool,
    plan: Mutex<Plan>,
    errors: Mutex<Vec<(String, String)>>,
    /// Files not restored because their stored content is damaged.
    damaged: AtomicU64,
    dirs_done: AtomicU64,
    /// Temporary file names handed out (see [`Restorer::temporary_beside`]).
    temporaries: AtomicU64,
    progress: &'a RestoreProgress,
}

/// Restore the tree `root` of a snapshot into `target`.
/// Per-entry failures are collected in [`RestoreReport::errors`]; errors reading the trees
/// themselves, creating `target`, or an interruption are returned.
pub fn restore(
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    target: &Path,
    opts: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreReport> {
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let r = Restorer {
        repo,
        index,
        target: target.to_path_buf(),
        includes: if opts.includes.is_empty() { None } else { Some(Patterns::new(&opts.includes)?) },
        excludes: Patterns::new(&opts.excludes)?,
        as_root: nix::unistd::geteuid().is_root(),
        plan: Mutex::new(Plan::default()),
        errors: Mutex::new(Vec::new()),
        damaged: AtomicU64::new(0),
        dirs_done: AtomicU64::new(0),
        temporaries: AtomicU64::new(0),
        progress,
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start restore threads: {e}")))?;
    pool.install(|| -> Result<()> {
        r.walk(root, Path::new("/"), 0, r.includes.is_none(), DirState::Present)?;
        let plan = std::mem::take(&mut *r.plan.lock().unwrap_or_else(|p| p.into_inner()));
        r.run(plan, opts.verify)
    })?;
    let mut errors = std::mem::take(&mut *r.errors.lock().unwrap_or_else(|p| p.into_inner()));
    errors.sort();
    Ok(RestoreReport {
        files: progress.files.load(Ordering::Relaxed),
        dirs: r.dirs_done.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        errors,
        damaged: r.damaged.load(Ordering::Relaxed),
    })
}

impl Restorer<'_> {
    fn report(&self, path: &Path, msg: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.display().to_string(), msg));
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dest(&self, snap_path: &Path) -> PathBuf {
        self.target.join(snap_path.strip_prefix("/").unwrap_or(snap_path))
    }
}
