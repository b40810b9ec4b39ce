//! Command components of a backup: commands whose standard output is stored as a file at an
//! absolute path of the snapshot tree, next to the backed-up paths, in the same snapshot.
//!
//! The commands run while the tree is walked, at most [`COMMANDS_AT_ONCE`] at once, each on a
//! thread of its own that saves its output as a stream ([`Saver::save_stream`]). The walk
//! ([`Walker::save_virtual`]) builds the directories on the way to every path, a command's
//! included: a directory only commands are below is synthesized ([`synthesized_dir`]); the
//! entries only commands are below are visited after those with backed-up paths, so the walk
//! of the paths does not wait for a command; at a command's own path the walk takes the
//! command's file node, or nothing when it failed.
//!
//! A component fails when its command cannot be started, exits non-zero or is killed, writes
//! nothing, runs past its timeout (its process group is sent `SIGTERM`, then `SIGKILL`, as
//! [`CommandStream`] does), or when its `verify` command (fed the same bytes on its standard
//! input as they are read, its standard output discarded) fails. A failed component is not in
//! the tree; its [`ComponentStatus`] says why.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::read::StreamError;
use super::verify::{Tee, Verify};
use super::walk::{Components, Walker, CHANGED, NEW, UNCHANGED};
use crate::context::Cancel;
use crate::error::{Error, Result};
use crate::snapshot::{ComponentKind, ComponentOutcome, ComponentStatus};
use crate::stream::{describe_status, quote_command, CommandStream, RequireData, StreamFailure};
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// At most this many commands of one backup run at once.
pub const COMMANDS_AT_ONCE: usize = 3;

/// A command whose standard output a backup stores as a regular file at `path` (a command
/// component; `backup --command PATH=CMD`, a profile's `[[backup.command]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandSource {
    /// Absolute path of the file in the snapshot (`/postgres/maildb.dump`): `/`-separated
    /// plain names, no `.` or `..`. It must not be inside a backed-up path nor on the way to
    /// one, and no other component may be at or below it.
    pub path: String,
    /// The program and its arguments (searched in `PATH`, no shell).
    pub argv: Vec<OsString>,
    /// A command fed the same bytes on its standard input; its failure fails the component.
    pub verify: Option<Vec<OsString>>,
    /// Longest time the command (and its verify command) may run; past it both are
    /// terminated and the component fails.
    pub timeout: Option<Duration>,
}

/// The components of `path` (see [`CommandSource::path`]). Errors: [`Error::Usage`] naming it.
fn command_path(path: &str) -> Result<Components> {
    let bad = |why: &str| Error::usage(format!("command path {path:?} {why}"));
    let rest = path.strip_prefix('/').ok_or_else(|| bad("is not absolute (it must start with `/`)"))?;
    let comps: Components = rest.split('/').map(|c| c.as_bytes().to_vec()).collect();
    if rest.is_empty() || comps.iter().any(|c| !Tree::valid_name(c)) {
        return Err(bad("must be `/` then file names separated by single `/` (no `.`, `..`, empty name or NUL byte)"));
    }
    Ok(comps)
}

/// Check the command components against each other and against the backed-up paths
/// (`paths`: their components, `shown`: as recorded); returns each command's components.
/// Errors: [`Error::Usage`] for a path that is not valid, inside or equal to a backed-up path,
/// on the way to one, or equal to, inside or on the way to another command's path.
pub(super) fn check_commands(
    commands: &[CommandSource],
    paths: &[Components],
    shown: &[String],
) -> Result<Vec<Components>> {
    let mut out: Vec<Components> = Vec::with_capacity(commands.len());
    for c in commands {
        let comps = command_path(&c.path)?;
        if c.argv.is_empty() {
            return Err(Error::usage(format!("command path {:?}: no command given", c.path)));
        }
        for (p, s) in paths.iter().zip(shown) {
            if comps.starts_with(p) {
                return Err(Error::usage(format!("command path {:?} is inside the backed-up path {s}", c.path)));
            }
            if p.starts_with(&comps) {
                return Err(Error::usage(format!(
                    "command path {:?} is a directory on the way to the backed-up path {s}",
                    c.path
                )));
            }
        }
        if let Some(other) = commands.iter().zip(&out).find(|(_, o)| comps.starts_with(o) || o.starts_with(&comps)) {
            return Err(Error::usage(format!(
                "command paths {:?} and {:?} collide (equal, or one inside the other)",
                other.0.path, c.path
            )));
        }
        out.push(comps);
    }
    Ok(out)
}

/// A directory the walk makes up on the way to a command's path: mode 0700, owned by the
/// user running the backup, `time` (the snapshot's) as its times.
pub(super) fn synthesized_dir(name: Vec<u8>, time: Timestamp) -> Node {
    Node {
        mode: 0o700,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        user: crate::util::username(),
        mtime: time,
        ctime: time,
        ..Node::new(name, NodeKind::Dir)
    }
}

/// The reason of a path left out whole by an exclude pattern or `--exclude-larger-than`
/// (its status is ok: not in the tree, as asked).
pub const EXCLUDED: &str = crate::snapshot::EXCLUDED_REASON;

/// A command's output as saved: its content ids and size.
type Saved = (Vec<crate::id::BlobId>, u64);

/// What a command's runner hands the walk: its output (`None`: the command failed), or
/// [`Error::Interrupted`]: the backup stops (interrupted, or another error kept in
/// [`Grafts::error`]).
type Outcome = Result<Option<Saved>>;

type Sender = crossbeam_channel::Sender<Outcome>;

/// The command components of one backup and what the walk recorded of its paths: shared by
/// the walk and the threads running the commands.
pub(super) struct Grafts {
    /// Index in the walk's source list of the first command (the paths come first).
    first: usize,
    commands: Vec<CommandSource>,
    /// Each command's sender, taken by the runner that runs (or skips) the command: a runner
    /// that panics drops it, and the walk waiting for that command gets an error.
    senders: Vec<Mutex<Option<Sender>>>,
    /// Each command's result once it is known, for the walk.
    receivers: Vec<crossbeam_channel::Receiver<Outcome>>,
    /// Each component's status (paths first, then commands) once the walk recorded it: a
    /// command's only when the walk put its file in the tree, or found it failed.
    statuses: Mutex<Vec<Option<ComponentStatus>>>,
    /// Each command's status as its runner left it (by command index).
    ran: Mutex<Vec<Option<ComponentStatus>>>,
    /// The backed-up paths as recorded.
    shown: Vec<String>,
    /// The next command to start.
    next: AtomicUsize,
    /// Set when the backup stops early: the commands still running are terminated, those
    /// not started are not started.
    pub(super) abort: Cancel,
    /// The first error of a runner that stops the backup (a repository error).
    error: Mutex<Option<Error>>,
    /// The snapshot's time: the times of the command files and of the directories made up.
    pub(super) time: Timestamp,
}

/// Locks `m`, a poisoned lock included (the data is still consistent: each is set whole).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Grafts {
    /// The components of a backup of `shown` (the paths as recorded) and `commands`, whose
    /// snapshot time is `time`.
    pub(super) fn new(shown: Vec<String>, commands: Vec<CommandSource>, time: Timestamp) -> Self {
        let n = shown.len() + commands.len();
        let (senders, receivers) = commands
            .iter()
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                (Mutex::new(Some(tx)), rx)
            })
            .unzip();
        Grafts {
            first: shown.len(),
            senders,
            receivers,
            ran: Mutex::new(vec![None; commands.len()]),
            commands,
            statuses: Mutex::new(vec![None; n]),
            shown,
            next: AtomicUsize::new(0),
            abort: Cancel::new(),
            error: Mutex::new(None),
            time,
        }
    }

    fn record(&self, i: usize, status: ComponentStatus) {
        if let Some(slot) = lock(&self.statuses).get_mut(i) {
            *slot = Some(status);
        }
    }

    /// Take the sender of the next command not started: its index and sender; `None` when
    /// every command was started.
    fn take_next(&self) -> Option<(usize, Sender)> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let tx = self.senders.get(i).and_then(|s| lock(s).take())?;
        Some((i, tx))
    }

    /// Run commands until none is left to start (one of the [`COMMANDS_AT_ONCE`] runners).
    /// Once the backup is interrupted (`cancel`) or aborted, the commands not started are
    /// handed [`Error::Interrupted`] instead; so are they when this runner panics.
    pub(super) fn run_commands(&self, walker: &Walker<'_>, cancel: &Cancel) {
        let _drain = Drain(self);
        while let Some((i, tx)) = self.take_next() {
            let Some(cmd) = self.commands.get(i) else { return };
            if cancel.is_cancelled() || self.abort.is_cancelled() {
                let _ = tx.send(Err(Error::Interrupted));
                continue;
            }
            fail::fail_point!("backup-command-runner");
            let r = match run_command(walker, cmd, cancel, &self.abort) {
                Ok((saved, status)) => {
                    if let Some(slot) = lock(&self.ran).get_mut(i) {
                        *slot = Some(status);
                    }
                    Ok(saved)
                }
                Err(e) => {
                    self.abort.cancel();
                    if !matches!(e, Error::Interrupted) {
                        lock(&self.error).get_or_insert(e);
                    }
                    Err(Error::Interrupted)
                }
            };
            let _ = tx.send(r);
        }
    }

    /// The outcome of a backup whose walk gave `walk`, once the runners are joined
    /// (`panicked`: how many panicked): the runners' error first, then the walk's.
    pub(super) fn outcome<T>(&self, walk: Result<T>, panicked: usize) -> Result<T> {
        if panicked > 0 {
            return Err(Error::internal(format!("{panicked} command component runner(s) panicked")));
        }
        match lock(&self.error).take() {
            Some(e) => Err(e),
            None => walk,
        }
    }

    /// The walk takes command `c`'s output (waits for it): its content and size, `None` when
    /// it failed (reported, with its reason). The command's status is recorded: ok only now
    /// that its file goes into the tree. Errors: the backup stops.
    fn take(&self, c: usize, path: &Path, walker: &Walker<'_>) -> Result<Option<Saved>> {
        let rx = self.receivers.get(c).ok_or_else(|| Error::internal("a command component without a channel"))?;
        let saved =
            rx.recv().map_err(|_| Error::internal("a command component's runner stopped early (it panicked)"))??;
        let status = lock(&self.ran)
            .get_mut(c)
            .and_then(Option::take)
            .ok_or_else(|| Error::internal("a command component ended without a status"))?;
        if saved.is_none() {
            walker.report(path, format!("command component failed: {}", status.reason));
        }
        self.record(self.first + c, status);
        Ok(saved)
    }

    /// How many runner threads to start.
    pub(super) fn runners(&self) -> usize {
        self.commands.len().min(COMMANDS_AT_ONCE)
    }

    /// Every component's status, in order (paths, then commands). A path the walk never
    /// reached (a directory on its way failed) is failed with the errors reported on its way;
    /// so is a command whose file the walk never took (whatever its command did).
    pub(super) fn statuses(&self, errors: &[(std::path::PathBuf, String)]) -> Vec<ComponentStatus> {
        let got = lock(&self.statuses).clone();
        let mut ran = std::mem::take(&mut *lock(&self.ran));
        let on_the_way = |path: &str| {
            let why: Vec<String> = errors
                .iter()
                .filter(|(p, _)| Path::new(path).starts_with(p) || p.starts_with(path))
                .map(|(p, w)| format!("{}: {w}", p.display()))
                .collect();
            (!why.is_empty()).then(|| why.join("; "))
        };
        let paths = self.shown.iter().map(|p| (p.clone(), ComponentKind::Path, None));
        let commands =
            self.commands.iter().enumerate().map(|(c, cmd)| {
                (cmd.path.clone(), ComponentKind::Command, Some(ran.get_mut(c).and_then(Option::take)))
            });
        paths
            .chain(commands)
            .zip(got)
            .map(|((path, kind, ran), got)| {
                if let Some(s) = got {
                    return s;
                }
                let way = on_the_way(&path);
                match ran {
                    // A path: never reached.
                    None => ComponentStatus::new(
                        path,
                        kind,
                        ComponentOutcome::Failed,
                        way.unwrap_or_else(|| "not reached by the walk".into()),
                    ),
                    // A command that did not run (the backup stopped first).
                    Some(None) => ComponentStatus::new(
                        path,
                        kind,
                        ComponentOutcome::Failed,
                        way.unwrap_or_else(|| "not run: the backup stopped first".into()),
                    ),
                    // A command that ran, whose file the walk did not take.
                    Some(Some(mut s)) => {
                        if s.status != ComponentOutcome::Failed || way.is_some() {
                            let way = way.unwrap_or_else(|| "its path was not reached by the walk".into());
                            s.reason = format!("not stored: {way}");
                        }
                        s.status = ComponentOutcome::Failed;
                        s
                    }
                }
            })
            .collect()
    }
}

/// Drops with a runner ([`Grafts::run_commands`]), also when it panics: then it aborts the
/// backup; and it hands [`Error::Interrupted`] to every command not started, so that the walk
/// never waits for a command no runner will run.
struct Drain<'a>(&'a Grafts);

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort.cancel();
        }
        while let Some((_, tx)) = self.0.take_next() {
            let _ = tx.send(Err(Error::Interrupted));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Walker<'_> {
    /// True when the sources `members` are all commands (a directory only they are below is
    /// synthesized, and visited after the others).
    pub(super) fn only_commands(&self, members: &[usize]) -> bool {
        self.grafts.is_some_and(|g| !members.is_empty() && members.iter().all(|&i| i >= g.first))
    }

    /// Sort (and deduplicate) the names `firsts` of a directory's entries on the way to the
    /// sources `members` (component `level` of `sources`): by name, those only commands are
    /// below last.
    pub(super) fn order_entries(
        &self,
        sources: &[Components],
        members: &[usize],
        level: usize,
        firsts: &mut Vec<Vec<u8>>,
    ) {
        firsts.sort();
        firsts.dedup();
        if self.grafts.is_some() {
            firsts.sort_by_cached_key(|f| {
                let below: Vec<usize> =
                    members.iter().copied().filter(|&i| sources.get(i).and_then(|s| s.get(level)) == Some(f)).collect();
                self.only_commands(&below)
            });
        }
    }

    /// Save source `i` found at `path` (named `name`; `parent`: its node in the parent
    /// snapshot): a backed-up path is walked ([`Walker::save_entry`]) and its status recorded
    /// when there are components; a command's file node is waited for. `None`: not saved.
    pub(super) fn save_source(
        &self,
        i: usize,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        use std::os::unix::fs::MetadataExt;
        let Some(g) = self.grafts else {
            let dev = std::fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0);
            return self.save_entry(path, name, dev, parent, 0);
        };
        if let Some(c) = i.checked_sub(g.first) {
            let Some((content, size)) = g.take(c, path, self)? else { return Ok(None) };
            let which = match parent {
                Some(p) if p.kind == NodeKind::File && p.content == content => UNCHANGED,
                Some(_) => CHANGED,
                None => NEW,
            };
            self.counts.files[which].fetch_add(1, Ordering::Relaxed);
            self.counts.bytes.fetch_add(size, Ordering::Relaxed);
            let mut node = synthesized_dir(name, g.time);
            node.kind = NodeKind::File;
            node.mode = 0o600;
            node.size = size;
            node.content = content;
            return Ok(Some(node));
        }
        let start = Instant::now();
        let bytes_before = self.counts.bytes.load(Ordering::Relaxed);
        let errors_before = self.errors.lock().unwrap_or_else(|p| p.into_inner()).len();
        let dev = std::fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0);
        let node = self.save_entry(path, name, dev, parent, 0)?;
        let errors: Vec<String> = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(errors_before..)
            .unwrap_or_default()
            .iter()
            .map(|(p, w)| format!("{}: {w}", p.display()))
            .collect();
        // A path left out whole by an exclude pattern or the size limit, without an error,
        // is as asked: ok, with the reason "excluded" (the backup exits 0).
        let outcome = match (&node, errors.is_empty()) {
            (None, true) | (Some(_), true) => ComponentOutcome::Ok,
            (None, false) => ComponentOutcome::Failed,
            (Some(_), false) => ComponentOutcome::Partial,
        };
        let reason = match errors.len() {
            0 if node.is_none() => EXCLUDED.to_string(),
            0 => String::new(),
            1 => errors.join(""),
            n => format!("{n} entries could not be read; the first: {}", errors.first().map_or("", |s| s.as_str())),
        };
        let shown = g.shown.get(i).cloned().unwrap_or_else(|| path.display().to_string());
        let mut s = ComponentStatus::new(shown, ComponentKind::Path, outcome, reason);
        s.bytes = self.counts.bytes.load(Ordering::Relaxed).saturating_sub(bytes_before);
        s.duration_ms = millis(start.elapsed());
        g.record(i, s);
        Ok(node)
    }
}

/// Run one command component and save its output: its content and size (`None` when it
/// failed) and its status. Errors (which stop the backup): a repository error; the backup
/// interrupted ([`Error::Interrupted`]).
fn run_command(
    walker: &Walker<'_>,
    cmd: &CommandSource,
    cancel: &Cancel,
    abort: &Cancel,
) -> Result<(Option<Saved>, ComponentStatus)> {
    let start = Instant::now();
    let mut st =
        ComponentStatus::new(cmd.path.clone(), ComponentKind::Command, ComponentOutcome::Failed, String::new());
    st.command = quote_command(&cmd.argv);
    let own = Cancel::new();
    let stream = match CommandStream::spawn_with_stdin(&cmd.argv, &own, Stdio::null(), true) {
        Ok(s) => s,
        Err(f) => {
            st.reason = f.to_string().replace("; no snapshot was written", "");
            return Ok((None, st));
        }
    };
    let mut verify = None;
    if let Some(argv) = cmd.verify.as_deref() {
        match Verify::spawn(argv) {
            Ok(v) => verify = Some(v),
            Err(e) => {
                st.reason = format!("verify command {} could not be started: {e}", quote_command(argv));
                return Ok((None, st));
            }
        }
    }
    let verify_group = verify.as_ref().and_then(|v| v.pgid);
    let timed_out = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let read = AtomicU64::new(0);
    let saved = std::thread::scope(|s| {
        // Stops the command (and its verify command) on an interrupt, an abort or the timeout.
        s.spawn(|| {
            let deadline = cmd.timeout.map(|t| start + t);
            while !done.load(Ordering::SeqCst) {
                let late = deadline.is_some_and(|d| Instant::now() >= d);
                if late || cancel.is_cancelled() || abort.is_cancelled() {
                    timed_out.store(late, Ordering::SeqCst);
                    own.cancel();
                    if let Some(g) = verify_group {
                        let _ = nix::sys::signal::killpg(g, nix::sys::signal::Signal::SIGKILL);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let origin = format!("the output of {}", stream.command());
        let mut reader = Tee {
            inner: RequireData::new(stream, origin),
            sink: verify.as_mut().and_then(|v| v.stdin.take()),
            read: &read,
            stopped: None,
        };
        let r = walker.saver.save_stream(&walker.chunker, &mut reader, u64::MAX);
        let stopped = reader.stopped();
        drop(reader);
        if r.is_ok() {
            // The stream ends well only when the command exited with status 0.
            st.exit_code = Some(0);
        }
        let r = match r {
            Ok(saved) => match verify.take().map(|v| v.finish(&own, stopped)) {
                Some(Err((why, tail))) => {
                    st.stderr_tail = tail;
                    Ok(Err(why))
                }
                _ => Ok(Ok(saved)),
            },
            Err(StreamError::Repo(e)) => Err(e),
            Err(StreamError::Source(e)) => Ok(Err(source_failure(e, &mut st))),
        };
        done.store(true, Ordering::SeqCst);
        r
    })?;
    st.bytes = read.load(Ordering::Relaxed);
    st.duration_ms = millis(start.elapsed());
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    match saved {
        Ok(saved) => {
            st.status = ComponentOutcome::Ok;
            Ok((Some(saved), st))
        }
        Err(why) => {
            st.reason = if timed_out.load(Ordering::SeqCst) {
                format!("timed out after {}s and was terminated", cmd.timeout.map_or(0, |t| t.as_secs()))
            } else {
                why
            };
            Ok((None, st))
        }
    }
}

/// Why a command's stream failed (its exit code, signal and standard-error tail into `st`).
fn source_failure(e: io::Error, st: &mut ComponentStatus) -> String {
    if !e.get_ref().is_some_and(|inner| inner.is::<StreamFailure>()) {
        return format!("reading its output failed: {e}");
    }
    match e.into_inner().map(|inner| inner.downcast::<StreamFailure>()) {
        Some(Ok(f)) => match *f {
            StreamFailure::Failed { status, stderr_tail, .. } => {
                st.exit_code = status.code();
                st.signal = status.signal();
                st.stderr_tail = stderr_tail;
                format!("the command failed ({})", describe_status(status))
            }
            StreamFailure::Empty { .. } => "the command wrote nothing".into(),
            StreamFailure::Interrupted { .. } => "the command was terminated".into(),
            other => other.to_string().replace("; no snapshot was written", ""),
        },
        _ => "reading its output failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(path: &str) -> CommandSource {
        CommandSource { path: path.into(), argv: vec!["true".into()], ..Default::default() }
    }

    fn comps(p: &str) -> Components {
        p.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn command_paths_are_checked_against_the_paths_and_each_other() {
        let paths = vec![comps("/var/vmail"), comps("/etc")];
        let shown = vec!["/var/vmail".to_string(), "/etc".to_string()];
        let ok =
            check_commands(&[cmd("/var/db.dump"), cmd("/pg/a/b.dump"), cmd("/pg/a/c.dump")], &paths, &shown).unwrap();
        assert_eq!(ok, vec![comps("/var/db.dump"), comps("/pg/a/b.dump"), comps("/pg/a/c.dump")]);
        let err = |c: &[CommandSource]| check_commands(c, &paths, &shown).unwrap_err().to_string();
        assert!(err(&[cmd("/etc/x.dump")]).contains("inside the backed-up path /etc"));
        assert!(err(&[cmd("/etc")]).contains("inside the backed-up path /etc"));
        assert!(err(&[cmd("/var")]).contains("on the way to the backed-up path /var/vmail"));
        assert!(err(&[cmd("/a"), cmd("/a/b")]).contains("collide"));
        assert!(err(&[cmd("/a"), cmd("/a")]).contains("collide"));
        for bad in ["relative", "/", "/a//b", "/a/./b", "/a/../b", "/a/", "/a\0b"] {
            assert!(err(&[cmd(bad)]).contains("command path"), "{bad:?}");
        }
        let none = CommandSource { path: "/x".into(), ..Default::default() };
        assert!(err(&[none]).contains("no command given"));
        // Below `/` everything is inside the backed-up path.
        assert!(check_commands(&[cmd("/x")], &[Vec::new()], &["/".to_string()]).is_err());
    }

    #[test]
    fn a_synthesized_directory_is_private_to_the_user() {
        let time = Timestamp { secs: 1_700_000_000, nanos: 0 };
        let n = synthesized_dir(b"pg".to_vec(), time);
        assert_eq!((n.kind, n.mode, n.uid), (NodeKind::Dir, 0o700, nix::unistd::getuid().as_raw()));
        assert_eq!((n.mtime, n.ctime), (time, time));
        assert!(n.content.is_empty() && n.subtree.is_none());
    }
}
