//! Backup: walk sources, chunk, deduplicate, pack, and write a snapshot.
//!
//! Pipeline: the directory walk runs on a rayon pool (each directory's entries in parallel,
//! directories recursively), every file's content is cut by the chunker and each chunk is
//! hashed, looked up, compressed (outside any lock, into a per-thread buffer), then encrypted
//! into the one open pack of its type by [`Saver::save_blob`]. On a local disk the open pack is
//! a staged file written as it grows ([`crate::backend::Backend::stage`]); elsewhere it is a
//! reused buffer. Full packs are committed (or uploaded) by upload threads; every
//! [`INDEX_EVERY_PACKS`] packs an index file is written, so an interrupted backup's uploads are
//! reused by the next one. Order on disk: packs, then index files, then the snapshot.
//!
//! A stream (`--stdin`) is a pipeline of its own: a reader thread fills segments (past the
//! page cache for a regular file, see [`crate::backend::local::direct_io`]), this thread cuts them, and one
//! saver per core saves the chunks, which are ranges of the shared segments (no copies).
//!
//! Memory is bounded: a file is read in windows of three times the largest chunk (at least
//! 4 MiB), each chunked and packed in parallel while the next is read; a stream holds a few
//! segments (one largest chunk, then at least 4 MiB and two largest chunks); a local backup
//! holds no pack in memory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::lock::{AppendLock, ReadLock};
use crate::repository::Repository;
use crate::snapshot::{BackupCounts, Snapshot, Summary};
use crate::tree::{Node, NodeKind, Timestamp, Tree};
use crate::util::OwnerNames;

mod components;
mod input;
mod read;
mod report;
mod save;
mod select;
mod upload;
mod verify;
mod walk;

pub use crate::patterns::{read_pattern_file, Patterns};
pub use components::{CommandSource, COMMANDS_AT_ONCE};
pub use input::{backup_input, Input, InputReport};
use read::Prefetcher;
pub use read::{ReadAhead, Stdin, StreamError};
pub use report::BackupSummary;
pub use save::Saver;
pub use select::{
    expand_glob, kept_entries, parse_file_list, read_file_list, too_large, ListFormat, TagFile, CACHEDIR_SIGNATURE,
};

use walk::{
    find, normalise_sources, probe_sources, source_devices, Components, Counts, Walker, CHANGED, NEW, UNCHANGED,
};

/// An index file is written after this many new packs (and at the end).
pub const INDEX_EVERY_PACKS: usize = 64;

/// What a backup may do to the repository, proven by the lock its caller holds.
#[derive(Clone, Copy)]
pub enum Permit<'a> {
    /// Add packs, index files and the snapshot, under the shared lock of a command that adds:
    /// checked before every index file and right before the snapshot is written, so a backup
    /// whose lock was lost (stopped for longer than the stale timeout, then overridden by a
    /// prune) writes neither.
    Write(&'a AppendLock),
    /// A dry run: everything but writing to the repository. Any read permission will do, the
    /// unlocked one included.
    DryRun(&'a ReadLock),
}

impl Permit<'_> {
    /// True for [`Permit::DryRun`].
    pub fn is_dry_run(&self) -> bool {
        matches!(self, Permit::DryRun(_))
    }
}

/// What to back up.
pub enum Source<'a> {
    /// Files and directory trees, by path.
    Paths(Vec<PathBuf>),
    /// One stream (standard input), stored as a file named `name` at the snapshot's root.
    Stream {
        /// The file name in the snapshot.
        name: String,
        /// The stream.
        reader: &'a mut (dyn Read + Send),
    },
}

/// Options of one backup run.
#[derive(Default)]
pub struct BackupOptions {
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Exclude patterns (globs; unless they start with `/` they match at any depth).
    pub excludes: Vec<String>,
    /// Leave out the contents of directories holding one of these tag files (restic's
    /// `--exclude-if-present`, `--exclude-caches`): the directory and the tag file are kept.
    pub exclude_if_present: Vec<TagFile>,
    /// Leave out regular files larger than this many bytes (`--exclude-larger-than`); they
    /// are not errors.
    pub exclude_larger_than: Option<u64>,
    /// Write no snapshot when its host, paths and tags equal the parent snapshot's and so does
    /// each source's node (its metadata and whole content; the directories above the sources
    /// are not compared), or the root tree when `/` or a stream is backed up
    /// ([`BackupResult::skipped`]; `--skip-if-unchanged`).
    pub skip_if_unchanged: bool,
    /// Do not cross into other file systems below a source.
    pub one_file_system: bool,
    /// Snapshot time (default: now).
    pub time: Option<Timestamp>,
    /// Packs uploaded at once (0: the default, 2).
    pub upload_connections: usize,
    /// zstd level for this run (0 = store uncompressed); `None`: the repository's default.
    pub compression: Option<i32>,
    /// Which snapshot to compare with (restic's `--parent` / `--force`).
    pub parent: ParentChoice,
    /// Do not compare ctimes when deciding a file is unchanged.
    pub ignore_ctime: bool,
    /// Do not compare inode numbers when deciding a file is unchanged.
    pub ignore_inode: bool,
    /// Commands whose standard output is stored at their path, in the same snapshot as the
    /// paths ([`CommandSource`]; only with [`Source::Paths`]). With any, the snapshot records
    /// each component's status (a version 2 snapshot) and a failed component is left out of
    /// the tree and listed in [`BackupResult::errors`].
    pub commands: Vec<CommandSource>,
}

/// How a backup picks its parent snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The latest snapshot of the same host and the same set of paths.
    #[default]
    Latest,
    /// This snapshot.
    Given(SnapshotId),
    /// None: read every file (`--force`).
    None,
}

/// Live counters a progress display may poll.
#[derive(Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Content bytes read.
    pub bytes: AtomicU64,
    /// Bytes added to the repository (stored size).
    pub bytes_added: AtomicU64,
    /// Sources skipped on error.
    pub errors: AtomicU64,
}

/// What a backup produced.
pub struct BackupResult {
    /// The snapshot id, `None` on a dry run or when [`BackupResult::skipped`].
    pub id: Option<SnapshotId>,
    /// True when [`BackupOptions::skip_if_unchanged`] found nothing changed against the parent
    /// snapshot and no snapshot was written (always false on a dry run, which writes none).
    pub skipped: bool,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Sources that could not be read: path and reason.
    pub errors: Vec<(PathBuf, String)>,
    /// Warnings about the run that did not stop it (a parent snapshot that could not be used).
    pub warnings: Vec<String>,
}

/// The parent snapshot a backup compares with: its id and root tree.
struct Parent {
    id: SnapshotId,
    root: Tree,
    /// Written by a cairn that stores extended attributes ([`crate::xattrs::stored_by`]).
    stores_xattrs: bool,
    /// The parent snapshot itself (for `--skip-if-unchanged`).
    snapshot: Snapshot,
}

/// The parent snapshot and its root tree. A parent whose root tree cannot be read (its pack
/// deleted or damaged) is not used: the backup goes on without one, reading every file, and the
/// returned warning names the snapshot and why. Errors: those of [`find_parent`].
fn load_parent(
    ctx: &Ctx,
    repo: &Repository,
    index: &Index,
    choice: ParentChoice,
    host: &str,
    paths: &[String],
) -> Result<(Option<Parent>, Option<String>)> {
    let Some((id, snapshot)) = find_parent(ctx, repo, choice, host, paths)? else { return Ok((None, None)) };
    match repo.load_tree(index, &snapshot.tree) {
        Ok(root) => {
            let stores_xattrs = crate::xattrs::stored_by(&snapshot.program_version);
            Ok((Some(Parent { id, root, stores_xattrs, snapshot }), None))
        }
        Err(e) => Ok((
            None,
            Some(format!(
                "parent snapshot {} is not used: its root tree {} cannot be read ({e}); backing up without a parent (every file is read)",
                id.short(),
                snapshot.tree.short()
            )),
        )),
    }
}

/// Back up `source` into `repo`, deduplicating against `index`; writes the snapshot last
/// (nothing under [`Permit::DryRun`]). Stops with [`Error::Interrupted`] once `ctx` is
/// cancelled (polled per file and per stream window); `progress` is updated as it goes.
///
/// Unreadable sources are skipped and listed in [`BackupResult::errors`] (exit code 3 in the
/// CLI). A parent snapshot whose root tree cannot be read is not used (a warning in
/// [`BackupResult::warnings`]). Errors: repository write failures; [`Error::Interrupted`];
/// [`Error::NoSourceRead`] when no source could be read at all (no snapshot is written; when
/// that is known before the walk, as for missing paths, nothing at all is written).
pub fn backup(
    ctx: &Ctx,
    permit: Permit<'_>,
    repo: &Repository,
    index: &Index,
    source: Source<'_>,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupResult> {
    let start = Timestamp::now();
    let mut saver = Saver::new(
        repo,
        index,
        permit,
        if opts.upload_connections == 0 { 2 } else { opts.upload_connections },
        progress,
    );
    if let Some(level) = opts.compression {
        if !(0..=22).contains(&level) {
            return Err(Error::usage(format!("compression level {level} is outside 0 to 22")));
        }
        saver.set_compression(level);
    }
    saver.set_cancel(ctx.cancel.clone());
    saver.set_verify_indexed(opts.parent == ParentChoice::None);
    let mut walker = Walker {
        saver: &saver,
        chunker: repo.chunker()?,
        excludes: Patterns::new(&opts.excludes)?,
        tags: opts.exclude_if_present.clone(),
        max_size: opts.exclude_larger_than,
        one_fs: opts.one_file_system,
        ignore_ctime: opts.ignore_ctime,
        ignore_inode: opts.ignore_inode,
        parent_stores_xattrs: false,
        names: Mutex::new(OwnerNames::default()),
        errors: Mutex::new(Vec::new()),
        counts: Counts::default(),
        prefetch: None,
        sources_read: AtomicU64::new(0),
        source_changed: std::sync::atomic::AtomicBool::new(false),
        source_devs: match &source {
            Source::Paths(paths) if opts.one_file_system => source_devices(paths),
            _ => Vec::new(),
        },
        grafts: None,
    };
    let (mut paths, mut comps) = source_paths(&source)?;
    let grafts = if opts.commands.is_empty() {
        probe_sources(&comps)?;
        None
    } else {
        if !matches!(source, Source::Paths(_)) {
            return Err(Error::usage("command components cannot be combined with a stream (--stdin)"));
        }
        let command_comps = components::check_commands(&opts.commands, &comps, &paths)?;
        let grafts = components::Grafts::new(paths.clone(), opts.commands.clone(), opts.time.unwrap_or(start));
        paths.extend(opts.commands.iter().map(|c| c.path.clone()));
        comps.extend(command_comps);
        Some(grafts)
    };
    walker.grafts = grafts.as_ref();
    let prefetcher = if matches!(source, Source::Paths(_)) { Prefetcher::start() } else { None };
    let prefetch_threads = prefetcher.map(|(p, h)| {
        walker.prefetch = Some(p);
        h
    });
    let hostname = opts.host.clone().unwrap_or_else(crate::util::hostname);
    let (parent, parent_warning) = load_parent(ctx, repo, index, opts.parent, &hostname, &paths)?;
    walker.parent_stores_xattrs = parent.as_ref().is_some_and(|p| p.stores_xattrs);
    // Sources below `/` are compared with the parent node by node (their ancestors' metadata
    // does not count); `/` itself and a stream by the root tree.
    let by_sources = matches!(source, Source::Paths(_)) && !comps.iter().any(Vec::is_empty);
    let parent_root = parent.as_ref().map(|p| &p.root);
    let result = match &grafts {
        None => run(&walker, source, &comps, parent_root),
        // The commands run while the paths are walked.
        Some(g) => std::thread::scope(|s| {
            let walker = &walker;
            let runners: Vec<_> = (0..g.runners()).map(|_| s.spawn(|| g.run_commands(walker, &ctx.cancel))).collect();
            let r = run(walker, source, &comps, parent_root);
            // The walk is over (or failed): the commands it did not take are not stored, so
            // those still running are stopped and those not started are not started.
            g.abort.cancel();
            let panicked = runners.into_iter().map(|h| h.join()).filter(|j| j.is_err()).count();
            g.outcome(r, panicked)
        }),
    };
    // The walk is over: close the prefetch queue and let its threads finish.
    walker.prefetch = None;
    for h in prefetch_threads.into_iter().flatten() {
        let _ = h.join();
    }
    let tree = match result.and_then(|r| saver.flush().map(|_| r)) {
        Ok(r) => r,
        Err(e) => {
            saver.salvage();
            return Err(e);
        }
    };
    let errors = std::mem::take(&mut *walker.errors.lock().unwrap_or_else(|p| p.into_inner()));
    let c = &walker.counts;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut summary = Summary {
        backup_start: start,
        backup_end: Timestamp::now(),
        counts: BackupCounts {
            files_new: get(&c.files[NEW]),
            files_changed: get(&c.files[CHANGED]),
            files_unchanged: get(&c.files[UNCHANGED]),
            dirs_new: get(&c.dirs[NEW]),
            dirs_changed: get(&c.dirs[CHANGED]),
            dirs_unchanged: get(&c.dirs[UNCHANGED]),
            total_files_processed: c.files.iter().map(get).sum(),
            total_bytes_processed: get(&c.bytes),
            errors: errors.len() as u64,
            ..BackupCounts::default()
        },
    };

    saver.fill_summary(&mut summary);
    // A backup with errors is never skipped: what could not be read may have changed.
    let skipped = opts.skip_if_unchanged
        && !permit.is_dry_run()
        && errors.is_empty()
        && parent.as_ref().is_some_and(|p| {
            let same_data =
                if by_sources { !walker.source_changed.load(Ordering::Relaxed) } else { p.snapshot.tree == tree };
            same_data && same_labels(&p.snapshot, &hostname, &paths, &opts.tags)
        });
    let now = chrono::Local::now();
    let snapshot = Snapshot {
        time: opts.time.unwrap_or(start),
        tz_offset: now.offset().local_minus_utc(),
        hostname,
        username: crate::util::username(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        paths,
        tags: opts.tags.clone(),
        excludes: opts.excludes.clone(),
        tree,
        parent: parent.map(|p| p.id),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary,
        components: grafts.as_ref().map(|g| g.statuses(&errors)).unwrap_or_default(),
        original: None,
    };
    if let Permit::Write(lock) = permit {
        lock.check()?;
    }
    // Interrupted after the walk (a SIGTERM that also ended a stream's producer early, so
    // that its end looked normal): no snapshot. The packs and index written stay for reuse.
    ctx.check()?;
    let id = match permit {
        Permit::Write(lock) if !skipped => Some(repo.write_snapshot(lock, &snapshot)?),
        _ => None,
    };
    Ok(BackupResult { id, skipped, snapshot, errors, warnings: parent_warning.into_iter().collect() })
}

/// True when a snapshot of `host`, `paths` and `tags` is labelled as `parent` is (paths and
/// tags compared as sets), one of the tests of `--skip-if-unchanged`.
fn same_labels(parent: &Snapshot, host: &str, paths: &[String], tags: &[String]) -> bool {
    let set = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    parent.hostname == host && set(&parent.paths) == set(paths) && set(&parent.tags) == set(tags)
}

/// The snapshot paths a source will record, and for paths their components.
fn source_paths(source: &Source<'_>) -> Result<(Vec<String>, Vec<Components>)> {
    match source {
        Source::Paths(paths) => Ok(normalise_sources(paths)?.into_iter().unzip()),
        Source::Stream { name, .. } => Ok((vec![format!("/{name}")], Vec::new())),
    }
}

/// The parent snapshot: the one asked for, or the latest of the same host with the same set
/// of paths (restic's rule), or none.
fn find_parent(
    ctx: &Ctx,
    repo: &Repository,
    choice: ParentChoice,
    host: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    match choice {
        ParentChoice::None => Ok(None),
        ParentChoice::Given(id) => Ok(Some((id, repo.load_snapshot(&id)?))),
        ParentChoice::Latest => {
            let filter = crate::snapshot::SnapshotFilter { hosts: vec![host.to_string()], ..Default::default() };
            let mut want = paths.to_vec();
            want.sort();
            Ok(repo.snapshots(ctx, &filter)?.into_iter().rev().find(|(_, s)| {
                let mut have = s.paths.clone();
                have.sort();
                have == want
            }))
        }
    }
}

/// Walk or read the source (`comps`: the source paths' components); returns the root tree id.
fn run(walker: &Walker<'_>, source: Source<'_>, comps: &[Components], parent: Option<&Tree>) -> Result<BlobId> {
    match source {
        Source::Paths(_) => {
            if comps.is_empty() {
                return Err(Error::usage("nothing to back up: no source path given"));
            }
            if comps.iter().any(Vec::is_empty) {
                // `/` is a source: it is the root tree (any other source is inside it).
                return walker.save_root(parent)?.ok_or_else(|| walker.no_source_read());
            }
            let root = walker.save_virtual(Path::new("/"), comps, parent)?;
            if walker.sources_read.load(Ordering::Relaxed) == 0 {
                return Err(walker.no_source_read());
            }
            walker.save_tree(root)
        }
        Source::Stream { name, reader } => {
            if !Tree::valid_name(name.as_bytes()) {
                return Err(Error::usage(format!(
                    "the stream's file name {name:?} must be a plain file name (not empty, `.` or `..`, no `/`, no NUL byte)"
                )));
            }
            let (content, size) = match walker.saver.save_stream(&walker.chunker, reader, u64::MAX) {
                Ok(r) => r,
                Err(StreamError::Source(e)) => return Err(Error::io("standard input", e)),
                Err(StreamError::Repo(e)) => return Err(e),
            };
            // A stream is always read in full; the parent only tells whether it changed.
            let which = match find(parent, name.as_bytes()) {
                Some(p) if p.content == content => UNCHANGED,
                Some(_) => CHANGED,
                None => NEW,
            };
            walker.counts.files[which].fetch_add(1, Ordering::Relaxed);
            walker.counts.bytes.fetch_add(size, Ordering::Relaxed);
            let now = Timestamp::now();
            let node = Node {
                name: name.as_bytes().to_vec(),
                kind: NodeKind::File,
                mode: 0o600,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                user: crate::util::username(),
                group: String::new(),
                size,
                mtime: now,
                ctime: now,
                inode: 0,
                device: 0,
                links: 1,
                rdev: 0,
                symlink_target: Vec::new(),
                content,
                subtree: None,
                xattrs: Vec::new(),
            };
            walker.save_tree(Tree { nodes: vec![node] })
        }
    }
}
