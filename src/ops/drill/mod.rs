//! `cairn drill`: a timed restore rehearsal (issue 15). One snapshot's components (each
//! [`crate::snapshot::ComponentStatus`] of a version 2 snapshot, else each backed-up path) are
//! restored one after the other into a scratch directory through the restorer with every
//! byte verified ([`crate::restorer::RestoreOptions::verify`]), each component's drill command
//! (if any) is run on what was restored (`pg_restore` into a scratch database, a scratch
//! `redis-server` loading the RDB, ...), the wall time of each component (restore,
//! verification and command) and of the whole drill is measured and held against a recovery
//! time objective, the scratch directory is removed, and a [`record::DrillRecord`] is written
//! to `drills/<id>` under the append lock, for `cairn health --max-drill-age`.
//!
//! Verdict ([`DrillVerdict`]): any failed component fails the drill (a component that failed
//! in the snapshot itself included: there is nothing to recover); otherwise a drill longer
//! than the RTO is [`DrillVerdict::RtoExceeded`]; otherwise it passed. A failed drill is
//! recorded too (health counts passing drills only). An interrupt, a lost lock or a storage
//! that cannot be reached stops the drill with that error and records nothing: nothing was
//! learnt about the data.

pub mod command;
pub mod record;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Error, Kind, Result};
use crate::lock::AppendLock;
use crate::repository::Repository;
use crate::restorer::{self, RestoreOptions};
use crate::snapshot::{ComponentOutcome, SnapshotFilter};
use crate::stream::{describe_status, quote_command};
use crate::tree::Timestamp;

pub use record::{DrillComponentRecord, DrillRecord, DrillVerdict, DRILL_RECORD_VERSION};

/// Default timeout of a drill command when none is given: 1 hour.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);

/// A component's drill command.
#[derive(Clone, Debug)]
pub struct DrillCommand {
    /// The component's absolute path in the snapshot.
    pub path: String,
    /// The program and its arguments (no shell unless the user runs one).
    pub argv: Vec<OsString>,
}

/// What to drill and how.
#[derive(Clone, Debug, Default)]
pub struct DrillOptions {
    /// The snapshot: `latest`, an id or a unique id prefix, among those `filter` selects.
    pub snapshot: String,
    /// The snapshots `snapshot` is chosen among.
    pub filter: SnapshotFilter,
    /// The components to drill, by path; empty: all of the snapshot's.
    pub components: Vec<String>,
    /// Drill commands, by component path (a component without one is restored and verified).
    pub commands: Vec<DrillCommand>,
    /// Where to restore: a directory that is empty or missing (removed again at the end
    /// unless `keep`); `None`: a fresh temporary directory.
    pub target: Option<PathBuf>,
    /// Keep the restored files (the report names where).
    pub keep: bool,
    /// The recovery time objective: a longer drill is [`DrillVerdict::RtoExceeded`].
    pub rto: Option<Duration>,
    /// How long each drill command may run (`None`: [`DEFAULT_COMMAND_TIMEOUT`]).
    pub command_timeout: Option<Duration>,
    /// Packs restored at once (0: the number of CPUs), see [`RestoreOptions::threads`].
    pub threads: usize,
}

/// One component's figures, as `drill --json` prints them.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentReport {
    /// Its absolute path in the snapshot.
    pub path: String,
    /// True when it was restored, verified, and its drill command succeeded.
    pub ok: bool,
    /// Content bytes restored.
    pub bytes: u64,
    /// Files restored.
    pub files: u64,
    /// Wall time of its restore and verification, seconds.
    pub restore_seconds: f64,
    /// Wall time of its drill command, seconds (0 without one).
    pub command_seconds: f64,
    /// Both, seconds.
    pub seconds: f64,
    /// Its drill command, quoted (`None` without one).
    pub command: Option<String>,
    /// The drill command's exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// The end of the drill command's standard output (at most [`command::OUTPUT_TAIL`] bytes).
    pub output: String,
    /// Why it failed (empty when it passed).
    pub message: String,
    /// True when it failed because stored data is damaged (a verified read failed).
    pub damaged: bool,
}

/// A drill's outcome: what `drill --json` prints (`message_type` `drill_summary`), and the
/// figures of the `cairn_drill_*` metrics.
#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    /// Always `drill_summary`.
    pub message_type: &'static str,
    /// The verdict.
    pub verdict: DrillVerdict,
    /// The drilled snapshot's id, hex.
    pub snapshot_id: String,
    /// Its host.
    pub snapshot_host: String,
    /// Its time, seconds since the Unix epoch.
    pub snapshot_time: i64,
    /// The host that ran the drill.
    pub hostname: String,
    /// When the drill started, seconds since the Unix epoch.
    pub time: i64,
    /// Each component, in the snapshot's order.
    pub components: Vec<ComponentReport>,
    /// Wall time of the whole drill (snapshot and index loaded, every component, clean-up),
    /// seconds.
    pub total_seconds: f64,
    /// The recovery time objective, seconds.
    pub rto_seconds: Option<f64>,
    /// True when `total_seconds` is over `rto_seconds`.
    pub rto_exceeded: bool,
    /// Components that failed.
    pub failed: usize,
    /// True when some component failed because stored data is damaged.
    pub damaged: bool,
    /// The scratch directory restored into.
    pub target: PathBuf,
    /// True when it was kept (`keep`), false when removed.
    pub kept: bool,
    /// The drill record written (`drills/<id>`), hex.
    pub record_id: String,
}

/// `d` in milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An error that stops the whole drill (nothing can be concluded about the data): an
/// interrupt, a lost lock, a storage that cannot be reached or refuses, a bug.
fn stops_the_drill(e: &Error) -> bool {
    matches!(e.kind(), Kind::Interrupted | Kind::Locked | Kind::Transient | Kind::Permanent | Kind::Internal)
}

/// The scratch directory: created (or checked empty) at the start, removed at the end unless
/// kept.
struct Scratch {
    path: PathBuf,
    /// True when `path` did not exist before the drill (then it is removed whole); else only
    /// what the drill restored into it is.
    created: bool,
    /// Until [`Scratch::finish`]: a drill that unwinds (a panic) still removes a directory it
    /// created.
    armed: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.armed && self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Scratch {
    /// `target`, which must be an empty or missing directory, or a new directory
    /// `cairn-drill-<pid>-<random>` (mode 0700) in the temporary directory (`TMPDIR`).
    /// Errors: [`Error::Usage`] for a target that is not an empty directory; [`Error::Io`].
    fn new(target: Option<&Path>) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let Some(t) = target else {
            let base = std::env::temp_dir();
            let mut tries = 0;
            loop {
                let name = format!("cairn-drill-{}-{:016x}", std::process::id(), rand::random::<u64>());
                let path = base.join(name);
                match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                    Ok(()) => return Ok(Scratch { path, created: true, armed: true }),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
        };
        restorer::check_target(t)?;
        match std::fs::read_dir(t) {
            Ok(mut entries) => {
                // What the drill commands read must be what the drill restored: nobody else may
                // write there (a directory another user made first in /var/tmp could be).
                use std::os::unix::fs::MetadataExt;
                let meta = std::fs::metadata(t).map_err(|e| Error::io(t, e))?;
                if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
                    return Err(Error::usage(format!(
                        "drill target {} is writable by others (owner uid {}, mode {:o}): give a directory of this user's that only it can write, or a missing one",
                        t.display(),
                        meta.uid(),
                        meta.mode() & 0o7777
                    )));
                }
                if entries.next().is_some() {
                    return Err(Error::usage(format!(
                        "drill target {} is not empty: give an empty or missing directory (the drill removes what it restored there)",
                        t.display()
                    )));
                }
                Ok(Scratch { path: t.to_path_buf(), created: false, armed: true })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(t).map_err(|e| Error::io(t, e))?;
                Ok(Scratch { path: t.to_path_buf(), created: true, armed: true })
            }
            Err(e) => Err(Error::io(t, e)),
        }
    }

    /// Remove what the drill restored (the directory itself when the drill created it), or
    /// keep it. Errors: [`Error::Io`].
    fn finish(mut self, keep: bool) -> Result<()> {
        self.armed = false;
        if keep {
            return Ok(());
        }
        if self.created {
            return std::fs::remove_dir_all(&self.path).map_err(|e| Error::io(&self.path, e));
        }
        let entries = std::fs::read_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(&self.path, e))?;
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }
}

/// Where the entry at snapshot path `path` lands below `target`.
fn restored_path(target: &Path, path: &str) -> PathBuf {
    target.join(path.trim_start_matches('/'))
}

/// Run a drill of `repo` under `lock` (see the module documentation) and record it. Returns
/// the report, with the record's id. Per-component failures (damage, a failed command, a
/// component that failed in the snapshot) are in the report and its verdict, not errors.
/// Errors: [`Error::Usage`] for a component the snapshot does not have or a command for a
/// component not drilled, a target that is not an empty directory; no such snapshot; an
/// interrupt, a lost lock, a storage failure (nothing recorded); the index cannot be
/// loaded; the scratch directory cannot be made or removed; the record cannot be written.
pub fn drill(ctx: &Ctx, lock: &AppendLock, repo: &Repository, opts: &DrillOptions) -> Result<DrillReport> {
    let started = Instant::now();
    let time = Timestamp::now();
    let (snap_id, snap) = repo.find_snapshot(ctx, &opts.snapshot, &opts.filter)?;
    // The components: (path, why it cannot be drilled).
    let mut all: Vec<(String, Option<String>)> = if snap.components.is_empty() {
        snap.paths.iter().map(|p| (p.clone(), None)).collect()
    } else {
        snap.components
            .iter()
            .map(|c| {
                let why = (!c.stored()).then(|| {
                    if c.status == ComponentOutcome::Failed {
                        format!("failed in snapshot {} ({}): there is nothing to restore", snap_id.short(), c.reason)
                    } else {
                        format!("not in snapshot {} ({})", snap_id.short(), c.reason)
                    }
                });
                (c.path.clone(), why)
            })
            .collect()
    };
    for want in &opts.components {
        if !all.iter().any(|(p, _)| p == want) {
            let have: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
            return Err(Error::usage(format!(
                "snapshot {} has no component {want:?} (its components: {})",
                snap_id.short(),
                have.join(", ")
            )));
        }
    }
    if !opts.components.is_empty() {
        all.retain(|(p, _)| opts.components.contains(p));
    }
    for c in &opts.commands {
        if !all.iter().any(|(p, _)| *p == c.path) && opts.components.is_empty() {
            return Err(Error::usage(format!(
                "a drill command is given for {:?}, which snapshot {} does not have (its components: {})",
                c.path,
                snap_id.short(),
                all.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let index = repo.load_index()?;
    let scratch = Scratch::new(opts.target.as_deref())?;
    let drilled = drill_components(ctx, lock, repo, &index, &snap, &snap_id, &all, &scratch.path, opts);
    let target = scratch.path.clone();
    // Cleaned up also when the drill stopped (an interrupt, a storage failure).
    let cleaned = scratch.finish(opts.keep);
    let components = drilled?;
    // Said, not returned: the drill's verdict (and its record) matter more than the cleanup.
    if let Err(e) = &cleaned {
        ctx.warn(&crate::context::Warning::DrillCleanupFailed(e));
    }
    let total = started.elapsed();
    let failed = components.iter().filter(|c| !c.ok).count();
    // In whole milliseconds, as the record keeps both (repo-format.md, "Drill records").
    let rto_exceeded = opts.rto.is_some_and(|r| total.as_millis() > r.as_millis());
    let verdict = if failed > 0 {
        DrillVerdict::Failed
    } else if rto_exceeded {
        DrillVerdict::RtoExceeded
    } else {
        DrillVerdict::Passed
    };
    let record = DrillRecord {
        version: DRILL_RECORD_VERSION,
        time,
        hostname: crate::util::hostname(),
        username: crate::util::username(),
        snapshot: snap_id,
        snapshot_host: snap.hostname.clone(),
        snapshot_tags: snap.tags.clone(),
        snapshot_time: snap.time,
        components: components
            .iter()
            .map(|c| DrillComponentRecord {
                path: c.path.clone(),
                ok: c.ok,
                bytes: c.bytes,
                restore_ms: millis(Duration::from_secs_f64(c.restore_seconds)),
                command_ms: millis(Duration::from_secs_f64(c.command_seconds)),
                command: c.command.clone().unwrap_or_default(),
                exit_code: c.exit_code,
                message: c.message.clone(),
            })
            .collect(),
        total_ms: millis(total),
        rto_ms: opts.rto.map(millis),
        verdict,
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    let record_id = repo.write_drill_record(lock, &record)?;
    Ok(DrillReport {
        message_type: "drill_summary",
        verdict,
        snapshot_id: snap_id.to_hex(),
        snapshot_host: snap.hostname,
        snapshot_time: snap.time.secs,
        hostname: record.hostname,
        time: time.secs,
        damaged: components.iter().any(|c| c.damaged),
        components,
        total_seconds: total.as_secs_f64(),
        rto_seconds: opts.rto.map(|r| r.as_secs_f64()),
        rto_exceeded,
        failed,
        target,
        kept: opts.keep,
        record_id: record_id.to_hex(),
    })
}

/// Restore, verify and run the drill command of each of `all` (path, why it cannot be
/// drilled) from snapshot `snap` into `scratch`. Errors: those that stop the whole drill
/// ([`stops_the_drill`]).
#[allow(clippy::too_many_arguments)]
fn drill_components(
    ctx: &Ctx,
    lock: &AppendLock,
    repo: &Repository,
    index: &crate::index::Index,
    snap: &crate::snapshot::Snapshot,
    snap_id: &crate::id::SnapshotId,
    all: &[(String, Option<String>)],
    scratch: &Path,
    opts: &DrillOptions,
) -> Result<Vec<ComponentReport>> {
    let read = lock.read();
    let timeout = opts.command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT);
    let mut components = Vec::with_capacity(all.len());
    for (path, unusable) in all {
        ctx.cancel.check()?;
        let mut c = ComponentReport {
            path: path.clone(),
            ok: false,
            bytes: 0,
            files: 0,
            restore_seconds: 0.0,
            command_seconds: 0.0,
            seconds: 0.0,
            command: None,
            exit_code: None,
            output: String::new(),
            message: String::new(),
            damaged: false,
        };
        if let Some(why) = unusable {
            c.message = why.clone();
            components.push(c);
            continue;
        }
        let restore_start = Instant::now();
        let ropts = RestoreOptions {
            includes: vec![globset::escape(path)],
            verify: true,
            threads: opts.threads,
            ..Default::default()
        };
        let restored = restorer::restore(ctx, &read, repo, index, &snap.tree, scratch, &ropts);
        c.restore_seconds = restore_start.elapsed().as_secs_f64();
        match restored {
            Err(e) if stops_the_drill(&e) => return Err(e),
            Err(e) => {
                c.damaged = e.kind() == Kind::Corrupt;
                c.message = format!("restore failed: {e}");
            }
            Ok(r) => {
                c.bytes = r.bytes;
                c.files = r.files;
                c.damaged = r.damaged > 0;
                if !r.errors.is_empty() {
                    let shown: Vec<String> = r.errors.iter().take(3).map(|(p, m)| format!("{p}: {m}")).collect();
                    let more = r.errors.len().saturating_sub(3);
                    let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
                    c.message = format!("restore failed: {}{more}", shown.join("; "));
                } else if r.files == 0 && r.dirs == 0 {
                    c.message = format!("nothing was restored for {path} from snapshot {}", snap_id.short());
                }
            }
        }
        if c.message.is_empty() {
            if let Some(cmd) = opts.commands.iter().find(|x| x.path == *path) {
                run_command(ctx, &mut c, cmd, scratch, &snap_id.to_hex(), timeout)?;
            }
        }
        c.ok = c.message.is_empty();
        c.seconds = c.restore_seconds + c.command_seconds;
        components.push(c);
    }
    Ok(components)
}

/// Run `cmd`, the drill command of component `c`, on what was restored below `scratch`;
/// its outcome goes into `c`. Errors: [`Error::Interrupted`] when the drill was interrupted.
fn run_command(
    ctx: &Ctx,
    c: &mut ComponentReport,
    cmd: &DrillCommand,
    scratch: &Path,
    snapshot: &str,
    timeout: Duration,
) -> Result<()> {
    let file = restored_path(scratch, &c.path);
    let env = [
        ("CAIRN_DRILL_FILE", file.clone().into_os_string()),
        ("CAIRN_DRILL_DIR", scratch.as_os_str().to_os_string()),
        ("CAIRN_DRILL_COMPONENT", OsString::from(&c.path)),
        ("CAIRN_SNAPSHOT", OsString::from(snapshot)),
    ];
    let quoted = quote_command(&cmd.argv);
    c.command = Some(quoted.clone());
    let stdin = std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()).then_some(file.as_path());
    match command::run(&cmd.argv, &env, stdin, Some(timeout), &ctx.cancel) {
        Err(why) => c.message = format!("drill command {quoted} {why}"),
        Ok(ran) => {
            c.command_seconds = ran.duration.as_secs_f64();
            c.exit_code = ran.status.code();
            c.output = ran.output;
            if ran.interrupted {
                return Err(Error::Interrupted);
            }
            if ran.timed_out {
                c.message = format!("drill command {quoted} timed out after {}s and was terminated", timeout.as_secs());
            } else if !ran.status.success() {
                let said = ran.stderr_tail.lines().last().map(|l| format!(": {l}")).unwrap_or_default();
                c.message = format!("drill command {quoted} failed ({}){said}", describe_status(ran.status));
            }
        }
    }
    Ok(())
}
