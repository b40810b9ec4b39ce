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
//! the way of a file (or a regular file in the way of a directory) is never removed unless
//! [`RestoreOptions::delete`] says so: the conflict is reported and the rest restored.
//!
//! Controls (restic 0.17's `restore --overwrite`, `--delete`, `--dry-run`, see restic's
//! `internal/restorer/restorer.go` and its "Restoring in-place" documentation):
//!
//! - [`Overwrite`] decides, per entry already in the target, whether it is replaced
//!   ([`decide`]). A regular file that may be replaced has its content compared blob by blob
//!   with the snapshot's (hashing it with the repository's blob id): a file whose content
//!   matches is left in place and only gets its metadata (`unchanged`); otherwise the new copy
//!   is written under a temporary name beside it and renamed over it once complete
//!   (`updated`), where restic rewrites the mismatching parts in place. The parts that matched
//!   are copied from the local file into the new copy instead of being downloaded, as restic
//!   downloads only mismatching blobs.
//! - `delete` removes, below the snapshot's backed-up paths only (never the target directory's
//!   own unrelated entries), what the target has and the snapshot does not, restricted like
//!   the restore itself by the includes and excludes. Removal walks an explicit stack.
//! - `dry_run` plans everything (reading what the target holds, and comparing contents as a
//!   real restore would) and writes nothing: not a directory, not a file, not metadata, not
//!   even the target directory. The report gives what would be done.

mod plan;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

pub use plan::{decide, Decision, Existing};

/// What a restore does with an entry already in the target where the snapshot has one
/// (restic 0.17's `--overwrite`). Directories are always kept and get their metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overwrite {
    /// Replace it. A regular file whose content already matches the snapshot's is left in
    /// place (only its metadata is set): its content is read and compared blob by blob.
    #[default]
    Always,
    /// As [`Overwrite::Always`], but a regular file whose size and modification time equal the
    /// snapshot's is taken as unchanged without reading it (read anyway with `verify`).
    IfChanged,
    /// Replace it only when the snapshot's entry has a later modification time than the one
    /// in the target (then as [`Overwrite::Always`]).
    IfNewer,
    /// Never replace anything that exists.
    Never,
}

impl Overwrite {
    /// Every mode, in the order of [`Overwrite::name`]s shown to users.
    pub const ALL: [Overwrite; 4] = [Overwrite::Always, Overwrite::IfChanged, Overwrite::IfNewer, Overwrite::Never];

    /// restic's name of the mode: `always`, `if-changed`, `if-newer`, `never`.
    pub fn name(self) -> &'static str {
        match self {
            Overwrite::Always => "always",
            Overwrite::IfChanged => "if-changed",
            Overwrite::IfNewer => "if-newer",
            Overwrite::Never => "never",
        }
    }
}

impl std::str::FromStr for Overwrite {
    type Err = Error;

    /// Parse one of [`Overwrite::name`]'s names. Errors: [`Error::Usage`] naming the choices.
    fn from_str(s: &str) -> Result<Self> {
        Overwrite::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            Error::usage(format!(
                "unknown overwrite mode {s:?}: use one of {}",
                Overwrite::ALL.map(Overwrite::name).join(", ")
            ))
        })
    }
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What was done (or, in a dry run, would be done) with one entry: restic's verbose actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Written where nothing was.
    Restored,
    /// Written in place of an entry that was there (a directory that was there: metadata set).
    Updated,
    /// Left as it was: content already matching (metadata set), or kept by the overwrite mode.
    Unchanged,
    /// Removed (`delete`): in the target, not in the snapshot.
    Deleted,
}

impl Action {
    /// restic's name: `restored`, `updated`, `unchanged`, `deleted`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Restored => "restored",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
        }
    }
}

/// Told of each entry's [`Action`] with its snapshot path and size in bytes (content size of
/// a regular file, 0 otherwise), as it happens; called from the restore's worker threads.
pub type ActionSink = Arc<dyn Fn(Action, &Path, u64) + Send + Sync>;

/// Options of a restore. The default is a plain restore (overwrite always, delete nothing,
/// write): what cairn did before these controls existed.
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
    /// What to do with entries already in the target.
    pub overwrite: Overwrite,
    /// Remove what the target has below the snapshot's backed-up paths and the snapshot does
    /// not (restricted by `includes`/`excludes`); also lets a directory with entries be
    /// replaced by the snapshot's file and a file by the snapshot's directory.
    pub delete: bool,
    /// Plan and report, write nothing (not even `target`).
    pub dry_run: bool,
    /// Told of each entry's action (for `restore -v`); `None`: nobody listens.
    pub actions: Option<ActionSink>,
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
    /// Files left as they were: content already matching, or kept by the overwrite mode.
    pub files_skipped: u64,
    /// Their content bytes.
    pub bytes_skipped: u64,
    /// Entries removed by `delete` (files, symlinks, directories, each counted).
    pub files_deleted: u64,
    /// Nothing was written: the figures are what the restore would do.
    pub dry_run: bool,
}

impl RestoreReport {
    /// The summary printed as JSON for the restore of snapshot `snapshot`.
    pub fn summary(&self, snapshot: &SnapshotId) -> RestoreSummary {
        RestoreSummary {
            bytes_restored: self.bytes,
            bytes_skipped: self.bytes_skipped,
            dirs_restored: self.dirs,
            dry_run: self.dry_run,
            duration_seconds: self.duration.as_secs_f64(),
            errors: self.errors.len(),
            files_deleted: self.files_deleted,
            files_restored: self.files,
            files_skipped: self.files_skipped,
            message_type: "summary",
            snapshot_id: snapshot.to_hex(),
        }
    }
}

/// What `restore --json` prints at the end (restic's restore summary, in spirit: restic 0.17's
/// `files_restored`, `files_skipped`, `files_deleted`, `bytes_restored`, `bytes_skipped`). The
/// fields are declared in the order of their keys (sorted); in a dry run (`dry_run: true`)
/// the figures are what would be done.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreSummary {
    /// Content bytes written.
    pub bytes_restored: u64,
    /// Content bytes of the skipped files.
    pub bytes_skipped: u64,
    /// Directories restored (created, or given their metadata).
    pub dirs_restored: u64,
    /// True when nothing was written.
    pub dry_run: bool,
    /// Wall time of the restore, seconds.
    pub duration_seconds: f64,
    /// How many entries could not be restored.
    pub errors: usize,
    /// Entries removed (`--delete`).
    pub files_deleted: u64,
    /// Files written (hard links included).
    pub files_restored: u64,
    /// Files left as they were (matching content, or kept by `--overwrite`).
    pub files_skipped: u64,
    /// Always `"summary"`.
    pub message_type: &'static str,
    /// The restored snapshot's id, hex.
    pub snapshot_id: String,
}

/// Live counters for a progress display. `total_files` and `total_bytes` are set once the plan
/// is known (then `planned` becomes true): `files`/`bytes` grow towards them.
#[derive(Default, Debug)]
pub struct RestoreProgress {
    /// Files done (in a dry run: that would be written).
    pub files: AtomicU64,
    /// Bytes written (in a dry run: that would be).
    pub bytes: AtomicU64,
    /// Files left as they were.
    pub files_skipped: AtomicU64,
    /// Their bytes.
    pub bytes_skipped: AtomicU64,
    /// Entries removed.
    pub files_deleted: AtomicU64,
    /// Files to write in all (regular files, hard links, symlinks), known once planned.
    pub total_files: AtomicU64,
    /// Content bytes to write in all, known once planned.
    pub total_bytes: AtomicU64,
    /// The totals are set.
    pub planned: AtomicBool,
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
    overwrite: Overwrite,
    delete: bool,
    dry_run: bool,
    /// With `delete`: the snapshot paths at and below which directories are cleaned (empty:
    /// every directory below the target's root).
    clean_roots: Vec<PathBuf>,
    actions: Option<ActionSink>,
    /// Whether `verify` is asked (a content check then never trusts size and time alone).
    verify: bool,
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
    let roots: Vec<PathBuf> = snap.paths.iter().map(PathBuf::from).filter(|p| p.is_absolute()).collect();
    let report = restore_inner(ctx, lock, repo, &index, &snap.tree, target, opts, roots)?;
    Ok((id, report))
}

/// Restore the tree `root` of a snapshot into `target`, reading `repo` under `_lock` (the
/// caller's permission to read it). Per-entry failures are collected in
/// [`RestoreReport::errors`]; errors reading the trees themselves, creating `target`, a
/// storage failure, or a cancellation of `ctx` ([`Error::Interrupted`]) are returned, and then
/// no incomplete file is left behind. [`Error::Internal`] when the worker threads cannot start.
/// Without a snapshot's backed-up paths, `delete` cleans every restored directory below the
/// target's root (never the root itself).
pub fn restore(
    ctx: &Ctx,
    lock: &ReadLock,
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_inner(ctx, lock, repo, index, root, target, opts, Vec::new())
}

/// [`restore`], `delete` cleaning at and below the snapshot paths `clean_roots` only.
#[allow(clippy::too_many_arguments)]
fn restore_inner(
    ctx: &Ctx,
    _lock: &ReadLock,
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    target: &Path,
    opts: &RestoreOptions,
    clean_roots: Vec<PathBuf>,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let target_exists = match std::fs::symlink_metadata(target) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(target, e)),
    };
    if !opts.dry_run {
        std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    }
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
        overwrite: opts.overwrite,
        delete: opts.delete,
        dry_run: opts.dry_run,
        clean_roots,
        actions: opts.actions.clone(),
        verify: opts.verify,
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
        let plan = r.walk(root, target_exists)?;
        r.set_totals(&plan);
        if r.dry_run {
            r.count_dry(&plan);
            Ok(())
        } else {
            r.run(plan, opts.verify)
        }
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
        files_skipped: progress.files_skipped.load(Ordering::Relaxed),
        bytes_skipped: progress.bytes_skipped.load(Ordering::Relaxed),
        files_deleted: progress.files_deleted.load(Ordering::Relaxed),
        dry_run: opts.dry_run,
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

    /// Tell the listener, if any, of `action` on the entry at snapshot path `path`.
    fn tell(&self, action: Action, path: &Path, size: u64) {
        if let Some(sink) = &self.actions {
            sink(action, path, size);
        }
    }

    /// Count a file left as it was, of `size` bytes, and tell the listener.
    fn skipped(&self, path: &Path, size: u64) {
        self.progress.files_skipped.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes_skipped.fetch_add(size, Ordering::Relaxed);
        self.tell(Action::Unchanged, path, size);
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
            files_skipped: 4,
            bytes_skipped: 40,
            files_deleted: 5,
            dry_run: true,
        };
        let id = SnapshotId::default();
        let json = serde_json::to_string(&report.summary(&id)).unwrap();
        let keys = [
            "bytes_restored",
            "bytes_skipped",
            "dirs_restored",
            "dry_run",
            "duration_seconds",
            "errors",
            "files_deleted",
            "files_restored",
            "files_skipped",
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
        for kv in ["\"files_skipped\":4", "\"bytes_skipped\":40", "\"files_deleted\":5", "\"dry_run\":true"] {
            assert!(json.contains(kv), "{kv} missing: {json}");
        }
    }

    #[test]
    fn overwrite_modes_parse_by_restics_names() {
        for m in Overwrite::ALL {
            assert_eq!(m.name().parse::<Overwrite>().unwrap(), m);
        }
        assert_eq!(Overwrite::default(), Overwrite::Always);
        let e = "sometimes".parse::<Overwrite>().unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.to_string().contains("if-newer"), "{e}");
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
