//! Restore: recreate a snapshot's tree under a target directory, planned by pack.
//!
//! Files land at `TARGET/<full original path>`, as restic does. The plan follows restic's
//! restorer (`internal/restorer/doc.go`) in spirit:
//!
//! 1. Walk the snapshot's trees with the shared tree streamer ([`crate::tree::stream::TreeStream`]:
//!    one partly read tree per level on a stack of its own, so no depth overflows the call
//!    stack), see `plan.rs`. Directories, symlinks and special files are created at once;
//!    each regular file is created empty at its final size, and each of its blobs is noted
//!    under the pack that holds it, with the file offset it belongs at.
//! 2. Process the packs in parallel: read each pack's needed blobs with the repository's one
//!    pack reader ([`crate::repository::Repository::read_pack_blobs`]: as few range requests
//!    as possible, neighbouring blobs read together, every blob verified, another indexed copy
//!    tried for a damaged one), and write each at every place it belongs
//!    (`pwrite`); an all-zero blob is not written, leaving a hole (sparse files stay sparse).
//!    A file whose last blob lands gets its metadata. See `write.rs`.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::patterns::Patterns;
use crate::repository::Repository;
use crate::snapshot::SnapshotFilter;

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
    /// Live counters, for a progress display (the caller keeps a clone of the `Arc`).
    pub progress: Arc<RestoreProgress>,
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
    /// Wall time of the restore (walk, packs, links and directory metadata).
    pub duration: Duration,
}

impl RestoreReport {
    /// The summary printed as JSON for the restore of snapshot `snapshot`.
    pub fn summary(&self, snapshot: &SnapshotId) -> RestoreSummary {
        RestoreSummary {
            bytes_restored: self.bytes,
            dirs_restored: self.dirs,
            duration_seconds: self.duration.as_secs_f64(),
            errors: self.errors.len(),
            files_restored: self.files,
            message_type: "summary",
            snapshot_id: snapshot.to_hex(),
        }
    }
}

/// What `restore --json` prints at the end (restic's restore summary, in spirit). The fields are
/// declared in the order of their keys as printed since the first release (sorted).
#[derive(Clone, Debug, Serialize)]
pub struct RestoreSummary {
    /// Content bytes written.
    pub bytes_restored: u64,
    /// Directories created.
    pub dirs_restored: u64,
    /// Wall time of the restore, seconds.
    pub duration_seconds: f64,
    /// How many entries could not be restored.
    pub errors: usize,
    /// Files written (hard links included).
    pub files_restored: u64,
    /// Always `"summary"`.
    pub message_type: &'static str,
    /// The restored snapshot's id, hex.
    pub snapshot_id: String,
}

/// Live counters for a progress display.
#[derive(Default, Debug)]
pub struct RestoreProgress {
    /// Files done.
    pub files: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

/// The state of one restore, shared by the walk (`plan.rs`) and the writers (`write.rs`).
struct Restorer<'a> {
    ctx: &'a Ctx,
    repo: &'a Repository,
    index: &'a Index,
    target: PathBuf,
    includes: Option<Patterns>,
    excludes: Patterns,
    as_root: bool,
    errors: Mutex<Vec<(String, String)>>,
    /// Files not restored because their stored content is damaged.
    damaged: AtomicU64,
    dirs_done: AtomicU64,
    /// Temporary file names handed out (see [`Restorer::temporary_beside`]).
    temporaries: AtomicU64,
    progress: &'a RestoreProgress,
}

/// Fail when `target` exists and is not a directory (it is created when missing): said before
/// anything else is done. Errors: [`Error::Usage`].
pub fn check_target(target: &Path) -> Result<()> {
    match std::fs::metadata(target) {
        Ok(md) if !md.is_dir() => Err(Error::usage(format!(
            "restore target {} is a file, not a directory: give a directory to restore into (it is created if missing)",
            target.display()
        ))),
        _ => Ok(()),
    }
}

/// Restore the snapshot `spec` (`latest`, an id or a unique id prefix, among the snapshots
/// `filter` selects) of `repo` into `target`: [`check_target`], find the snapshot, load the
/// index, [`restore`]. Returns the snapshot's id and the report. Errors: as those steps.
pub fn restore_snapshot(
    ctx: &Ctx,
    lock: &ReadLock,
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<(SnapshotId, RestoreReport)> {
    check_target(target)?;
    let (id, snap) = repo.find_snapshot(ctx, spec, filter)?;
    let index = repo.load_index()?;
    let report = restore(ctx, lock, repo, &index, &snap.tree, target, opts)?;
    Ok((id, report))
}

/// Restore the tree `root` of a snapshot into `target`, reading `repo` under `_lock` (the
/// caller's permission to read it). Per-entry failures are collected in
/// [`RestoreReport::errors`]; errors reading the trees themselves, creating `target`, a
/// storage failure, or a cancellation of `ctx` ([`Error::Interrupted`]) are returned, and then
/// no incomplete file is left behind. [`Error::Internal`] when the worker threads cannot start.
pub fn restore(
    ctx: &Ctx,
    _lock: &ReadLock,
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let started = Instant::now();
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let progress = &*opts.progress;
    let r = Restorer {
        ctx,
        repo,
        index,
        target: target.to_path_buf(),
        includes: if opts.includes.is_empty() { None } else { Some(Patterns::new(&opts.includes)?) },
        excludes: Patterns::new(&opts.excludes)?,
        as_root: nix::unistd::geteuid().is_root(),
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
        .map_err(|e| Error::internal(format!("cannot start restore threads: {e}")))?;
    pool.install(|| -> Result<()> {
        let plan = r.walk(root)?;
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
        duration: started.elapsed(),
    })
}

impl Restorer<'_> {
    /// Note that the entry at snapshot path `path` could not be restored, and why.
    fn report(&self, path: &Path, msg: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.display().to_string(), msg));
    }

    /// Where the entry at snapshot path `snap_path` goes in the target.
    fn dest(&self, snap_path: &Path) -> PathBuf {
        self.target.join(snap_path.strip_prefix("/").unwrap_or(snap_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keys_in_printed_order() {
        let report = RestoreReport {
            files: 3,
            dirs: 2,
            bytes: 10,
            errors: vec![("/a".into(), "why".into())],
            damaged: 1,
            duration: Duration::from_millis(1500),
        };
        let id = SnapshotId::default();
        let json = serde_json::to_string(&report.summary(&id)).unwrap();
        let keys = [
            "bytes_restored",
            "dirs_restored",
            "duration_seconds",
            "errors",
            "files_restored",
            "message_type",
            "snapshot_id",
        ];
        let mut at = 0;
        for k in keys {
            let p =
                json[at..].find(&format!("\"{k}\"")).unwrap_or_else(|| panic!("{k} missing or out of order: {json}"));
            at += p;
        }
        assert!(json.contains("\"errors\":1") && json.contains("\"message_type\":\"summary\""), "{json}");
        assert!(json.contains("\"duration_seconds\":1.5"), "{json}");
    }

    #[test]
    fn a_file_is_no_target() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_target(dir.path()).is_ok());
        assert!(check_target(&dir.path().join("missing")).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check_target(&file).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.to_string().contains("is a file"), "{e}");
    }
}
