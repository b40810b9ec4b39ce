//! Streams to back up that another program produces: a command's standard output
//! ([`CommandStream`], restic's `--stdin-from-command`), and a guard that refuses a stream
//! that ends before its first byte ([`RequireData`]).
//!
//! Both report a failed producer from `read`, at the point where the stream would have ended,
//! as an [`std::io::Error`] carrying a [`StreamFailure`]. The failure therefore takes the
//! archiver's path for a source that cannot be read ([`crate::archiver::backup`] returns an
//! error and writes no snapshot); [`stream_error`] turns that error back into
//! [`Error::Stream`]. The packs the stream filled before it failed stay in the repository and
//! are indexed (their blobs are intact and a later backup may reuse them), but no snapshot
//! references them, so `prune` removes them.
//!
//! A command runs without a shell. Its standard error is copied to this process's standard
//! error as it comes, and its last [`STDERR_TAIL`] bytes are kept for the failure message. When
//! the cancellation token given to [`CommandStream::spawn`] is cancelled, or
//! the stream is dropped before its end, the command is sent `SIGTERM`, then `SIGKILL` after
//! [`TERMINATE_GRACE`]; without a terminal, to its whole process group (see
//! [`CommandStream::spawn`]). An interrupted `read` returns within a tenth of a second, even when a
//! process the command started keeps its output open.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Cancel;
use crate::error::Error;

/// Bytes of a command's standard error kept for the message when it fails.
pub const STDERR_TAIL: usize = 4096;

/// How long a command has to exit after `SIGTERM` before it is sent `SIGKILL`.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// How often the thread that owns a command checks whether it exited or must be stopped.
const POLL: Duration = Duration::from_millis(20);

/// How long the end of a command's standard error is waited for once it exited (a process it
/// left behind may hold the pipe open).
const STDERR_WAIT: Duration = Duration::from_secs(2);

/// Why a stream's producer failed; no snapshot is written.
#[derive(Debug)]
pub enum StreamFailure {
    /// The command could not be started (not found, not executable...).
    NotStarted {
        /// The command line, shell-quoted.
        command: String,
        /// The error from `execve` or `fork`.
        source: io::Error,
    },
    /// The command exited with a non-zero status or was killed by a signal.
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of its standard error (at most [`STDERR_TAIL`] bytes, lossy UTF-8, from a
        /// line start when it was cut), empty when it wrote nothing there.
        stderr_tail: String,
    },
    /// The command's exit could not be waited for.
    Wait {
        /// The command line, shell-quoted.
        command: String,
        /// The error from `waitpid`.
        source: io::Error,
    },
    /// The backup was interrupted while the command ran; the command was terminated.
    Interrupted {
        /// The command line, shell-quoted.
        command: String,
    },
    /// The stream ended before its first byte.
    Empty {
        /// Where the stream came from (`standard input`, `command ...`).
        origin: String,
    },
}

impl std::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamFailure::NotStarted { command, source } => {
                write!(f, "command {command} could not be started: {source}; no snapshot was written")
            }
            StreamFailure::Failed { command, status, stderr_tail } => {
                write!(f, "command {command} failed ({}); no snapshot was written", describe_status(*status))?;
                if stderr_tail.is_empty() {
                    write!(f, "; it wrote nothing to standard error")
                } else {
                    write!(f, "; the end of its standard error:")?;
                    for line in stderr_tail.lines() {
                        write!(f, "\n    {line}")?;
                    }
                    Ok(())
                }
            }
            StreamFailure::Wait { command, source } => {
                write!(f, "command {command}: cannot wait for its exit: {source}; no snapshot was written")
            }
            StreamFailure::Interrupted { command } => write!(f, "interrupted; command {command} was terminated"),
            StreamFailure::Empty { origin } => {
                write!(f, "{origin} is empty: its producer wrote nothing (it may have failed); no snapshot was written")
            }
        }
    }
}

impl std::error::Error for StreamFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamFailure::NotStarted { source, .. } | StreamFailure::Wait { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `exit code N`, or `killed by signal N (SIGNAME)` (with `, core dumped` when it did).
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name =
                nix::sys::signal::Signal::try_from(sig).map(|s| format!(" ({})", s.as_str())).unwrap_or_default();
            let core = if status.core_dumped() { ", core dumped" } else { "" };
            format!("killed by signal {sig}{name}{core}")
        }
        None => format!("{status}"),
    }
}

/// A command line for messages: each argument as is when it only holds characters a shell
/// leaves alone, else in single quotes; the whole between backquotes.
pub fn quote_command(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!("`{}`", words.join(" "))
}

/// Turn the archiver's error for a stream whose producer failed (an [`Error::Io`] carrying a
/// [`StreamFailure`]) into [`Error::Stream`], or into [`Error::Interrupted`] for
/// [`StreamFailure::Interrupted`]. Any other error is returned as it is.
pub fn stream_error(e: Error) -> Error {
    match e {
        Error::Io { path, source } => {
            if !source.get_ref().is_some_and(|inner| inner.is::<StreamFailure>()) {
                return Error::Io { path, source };
            }
            match source.into_inner().map(|inner| inner.downcast::<StreamFailure>()) {
                Some(Ok(failure)) => match *failure {
                    StreamFailure::Interrupted { .. } => Error::Interrupted,
                    failure => Error::Stream(failure),
                },
                // Checked above: not reached; keep an error rather than invent one.
                Some(Err(inner)) => Error::Io { path, source: io::Error::other(inner) },
                None => Error::Io { path, source: io::Error::other("stream failed") },
            }
        }
        other => other,
    }
}

/// A command's standard output as a stream to back up.
///
/// `read` returns the command's output; at its end, it waits for the command and fails with a
/// [`StreamFailure`] unless the command exited with status 0. See the module documentation
/// for standard error, interrupts and drop.
pub struct CommandStream {
    command: String,
    stdout: Option<ChildStdout>,
    /// The thread that owns the child: it reaps it, and terminates it when asked or
    /// interrupted. Returns how the command ended.
    owner: Option<JoinHandle<io::Result<ExitStatus>>>,
    /// Set to make the owner terminate the command (the stream is dropped before its end).
    abandon: Arc<AtomicBool>,
    /// Once cancelled, the command is terminated and `read` stops.
    cancel: Cancel,
    stderr: Option<StderrCopy>,
    /// Set once the end was reached and reported: later reads return 0 (or an error).
    ended: Option<bool>,
    /// The command's own process group, when it has one (see [`CommandStream::spawn`]).
    pgid: Option<nix::unistd::Pid>,
}

impl CommandStream {
    /// Start `argv[0]` with the arguments `argv[1..]` (searched in `PATH`, no shell), its
    /// standard input inherited, its standard output read by this stream, its standard error
    /// copied to this process's. The command is terminated once `cancel` is cancelled.
    ///
    /// Errors: [`StreamFailure::NotStarted`] when `argv` is empty or the command cannot be run.
    pub fn spawn(argv: &[OsString], cancel: &Cancel) -> Result<Self, StreamFailure> {
        // Without a terminal (a timer, cron, a script), the command gets a process group of its
        // own, so terminating it reaches the processes it started too (a shell's pg_dump, a
        // psql session). On a terminal it stays in cairn's group: the terminal's Ctrl-C reaches
        // them all already, and a command in a background group could not prompt for a
        // password (SIGTTIN).
        let group = !std::io::IsTerminal::is_terminal(&std::io::stdin());
        Self::spawn_with_stdin(argv, cancel, Stdio::inherit(), group)
    }

    /// As [`CommandStream::spawn`], with standard input `stdin`, and in a process group of its
    /// own when `own_group` (terminating it then terminates every process it started, a
    /// shell's `pg_dump | gzip` included). A backup's command components get [`Stdio::null`]
    /// (several run at once, none can prompt) and always their own group.
    pub fn spawn_with_stdin(
        argv: &[OsString],
        cancel: &Cancel,
        stdin: Stdio,
        own_group: bool,
    ) -> Result<Self, StreamFailure> {
        let command = quote_command(argv);
        let Some((program, args)) = argv.split_first() else {
            return Err(StreamFailure::NotStarted {
                command,
                source: io::Error::new(io::ErrorKind::InvalidInput, "no command given"),
            });
        };
        let mut cmd = Command::new(program);
        // A dump needs no repository password (a command that runs `env` would store it).
        crate::process::without_secrets(&mut cmd).args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let group = own_group;
        if group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let mut child = cmd.spawn().map_err(|source| StreamFailure::NotStarted { command: command.clone(), source })?;
        let pgid = if group { i32::try_from(child.id()).ok().map(nix::unistd::Pid::from_raw) } else { None };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(StderrCopy::start);
        let abandon = Arc::new(AtomicBool::new(false));
        let stop = abandon.clone();
        let owner = std::thread::Builder::new()
            .name("command".into())
            .spawn({
                let cancel = cancel.clone();
                move || own_child(child, pgid, &stop, cancel.flag())
            })
            .map_err(|source| StreamFailure::NotStarted { command: command.clone(), source })?;
        Ok(CommandStream {
            command,
            stdout,
            owner: Some(owner),
            abandon,
            cancel: cancel.clone(),
            stderr,
            ended: None,
            pgid,
        })
    }

    /// The command line as shown in messages (shell-quoted, between backquotes).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// At the end of the output: wait for the command and judge how it ended.
    fn finish(&mut self) -> Result<(), StreamFailure> {
        self.stdout = None;
        let status = match self.owner.take().map(JoinHandle::join) {
            Some(Ok(Ok(status))) => status,
            Some(Ok(Err(source))) => return Err(StreamFailure::Wait { command: self.command.clone(), source }),
            Some(Err(_)) => {
                return Err(StreamFailure::Wait {
                    command: self.command.clone(),
                    source: io::Error::other("the thread waiting for it panicked"),
                })
            }
            None => {
                return Err(StreamFailure::Wait {
                    command: self.command.clone(),
                    source: io::Error::other("already waited for"),
                })
            }
        };
        // The command has ended: what it left running in its group (a background child that
        // may still hold its standard error open) is ended too, and no process outlives it.
        if let Some(pgid) = self.pgid {
            // No process left in the group (ESRCH) is the usual case.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        }
        let stderr_tail = self.stderr.take().map(StderrCopy::finish).unwrap_or_default();
        if self.cancel.is_cancelled() {
            return Err(StreamFailure::Interrupted { command: self.command.clone() });
        }
        if status.success() {
            Ok(())
        } else {
            Err(StreamFailure::Failed { command: self.command.clone(), status, stderr_tail })
        }
    }
}

impl Read for CommandStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.ended {
            Some(true) => return Ok(0),
            Some(false) => return Err(io::Error::other(format!("command {} failed (reported before)", self.command))),
            None => {}
        }
        let n = match self.stdout.as_mut() {
            Some(out) => {
                if !wait_readable(out, self.cancel.flag())? {
                    // The command is being terminated (see `own_child`); a process it started
                    // may still hold its output open, so do not wait for the end.
                    self.ended = Some(false);
                    return Err(io::Error::other(StreamFailure::Interrupted { command: self.command.clone() }));
                }
                out.read(buf)?
            }
            None => 0,
        };
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let outcome = self.finish();
        self.ended = Some(outcome.is_ok());
        outcome.map(|()| 0).map_err(io::Error::other)
    }
}

impl Drop for CommandStream {
    /// Before the end of the output: close it (a command still writing gets `EPIPE`), then
    /// terminate the command and wait for it (at most [`TERMINATE_GRACE`] and a little more).
    fn drop(&mut self) {
        self.stdout = None;
        self.abandon.store(true, Ordering::SeqCst);
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
        // Processes the command started may outlive it (holding its output open): unless the
        // stream ended well, they are terminated with it.
        if let (Some(pgid), false) = (self.pgid, self.ended == Some(true)) {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// Wait until `out` has bytes or its end to read (true), or `interrupted` is set (false).
fn wait_readable(out: &ChildStdout, interrupted: &AtomicBool) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reap `child`; send it `SIGTERM` once `abandon` or `interrupted` is set, and `SIGKILL`
/// [`TERMINATE_GRACE`] later if it is still running. With `pgid` (its own process group) the
/// signals go to the whole group.
fn own_child(
    mut child: Child,
    pgid: Option<nix::unistd::Pid>,
    abandon: &AtomicBool,
    interrupted: &AtomicBool,
) -> io::Result<ExitStatus> {
    use nix::sys::signal::{kill, killpg, Signal};
    let mut terminated: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if abandon.load(Ordering::SeqCst) || interrupted.load(Ordering::SeqCst) {
            match terminated {
                None => {
                    // The child is not reaped yet (this thread alone waits for it): its pid is its own.
                    match (pgid, i32::try_from(child.id())) {
                        (Some(g), _) => {
                            let _ = killpg(g, Signal::SIGTERM);
                        }
                        (None, Ok(pid)) => {
                            let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
                        }
                        (None, Err(_)) => {}
                    }
                    terminated = Some(Instant::now());
                }
                Some(t) if t.elapsed() >= TERMINATE_GRACE => {
                    if let Some(g) = pgid {
                        let _ = killpg(g, Signal::SIGKILL);
                    }
                    let _ = child.kill();
                    return child.wait();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(POLL);
    }
}

/// A thread copying a command's standard error to ours and keeping its last bytes.
pub(crate) struct StderrCopy {
    tail: Arc<Mutex<Tail>>,
    thread: JoinHandle<()>,
}

/// The last [`STDERR_TAIL`] bytes written, and whether earlier ones were dropped.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl StderrCopy {
    /// Start copying `from` (a child's standard error).
    pub(crate) fn start(mut from: impl Read + Send + 'static) -> Self {
        let tail = Arc::new(Mutex::new(Tail::default()));
        let keep = tail.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                let Some(chunk) = buf.get(..n) else { return };
                // Passing it through is best effort: a closed stderr must not stop the copy.
                let _ = io::stderr().write_all(chunk);
                let mut t = keep.lock().unwrap_or_else(|p| p.into_inner());
                t.bytes.extend_from_slice(chunk);
                if t.bytes.len() > STDERR_TAIL {
                    let excess = t.bytes.len() - STDERR_TAIL;
                    t.bytes.drain(..excess);
                    t.cut = true;
                }
            }
        });
        StderrCopy { tail, thread }
    }

    /// Wait (at most [`STDERR_WAIT`]) for the end of the copy; the tail as text: lossy UTF-8,
    /// from the first line start when bytes before it were dropped, trailing blanks removed.
    pub(crate) fn finish(self) -> String {
        let deadline = Instant::now() + STDERR_WAIT;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&t.bytes);
        let text = if t.cut { text.split_once('\n').map_or(&*text, |(_, rest)| rest) } else { &text };
        cut_front(text.trim_end(), STDERR_TAIL).to_string()
    }
}

/// The end of `text` in at most `max` bytes, cut at a character boundary (lossy UTF-8 can
/// make text longer than the bytes it came from).
fn cut_front(text: &str, max: usize) -> &str {
    let mut from = text.len().saturating_sub(max);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    text.get(from..).unwrap_or_default()
}

/// A stream that must not be empty: at the end of a stream that gave no byte, `read` fails
/// with [`StreamFailure::Empty`] instead of returning 0. An empty dump almost always means its
/// producer failed (`pg_dump nosuchdb | cairn backup --stdin`), and a snapshot of it would
/// displace the last good one from a keep policy.
pub struct RequireData<R> {
    inner: R,
    origin: String,
    seen: bool,
}

impl<R: Read> RequireData<R> {
    /// Wrap `inner`; `origin` names it in the message (`standard input`, `the output of ...`).
    pub fn new(inner: R, origin: impl Into<String>) -> Self {
        RequireData { inner, origin: origin.into(), seen: false }
    }
}

impl<R: Read> Read for RequireData<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.seen = true;
        } else if !self.seen && !buf.is_empty() {
            return Err(io::Error::other(StreamFailure::Empty { origin: self.origin.clone() }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token nobody cancels.
    fn never() -> Cancel {
        Cancel::new()
    }

    fn argv<const N: usize>(args: [&str; N]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn read_all(r: &mut impl Read) -> (Vec<u8>, io::Result<()>) {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (out, Ok(())),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn failure(e: io::Error) -> StreamFailure {
        *e.into_inner().unwrap().downcast::<StreamFailure>().unwrap()
    }

    #[test]
    fn a_successful_command_streams_its_output() {
        let mut s = CommandStream::spawn(&argv(["sh", "-c", "printf 'hello '; printf world"]), &never()).unwrap();
        let (data, end) = read_all(&mut s);
        assert_eq!(data, b"hello world");
        end.unwrap();
        // Reads after the end stay at the end.
        assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[test]
    fn a_failing_command_fails_at_the_end_with_its_status_and_stderr() {
        let mut s =
            CommandStream::spawn(&argv(["sh", "-c", "printf data; echo 'no such database' >&2; exit 3"]), &never())
                .unwrap();
        let (data, end) = read_all(&mut s);
        assert_eq!(data, b"data");
        let f = failure(end.unwrap_err());
        let msg = f.to_string();
        assert!(matches!(f, StreamFailure::Failed { .. }), "{msg}");
        assert!(
            msg.contains("exit code 3") && msg.contains("no such database") && msg.contains("`sh -c 'printf data;"),
            "{msg}"
        );
        // A second read does not pretend the stream ended well.
        assert!(s.read(&mut [0u8; 8]).is_err());
    }

    #[test]
    fn a_killed_command_names_the_signal() {
        let mut s = CommandStream::spawn(&argv(["sh", "-c", "kill -9 $$"]), &never()).unwrap();
        let msg = failure(read_all(&mut s).1.unwrap_err()).to_string();
        assert!(msg.contains("killed by signal 9 (SIGKILL)"), "{msg}");
    }

    #[test]
    fn a_missing_program_is_not_started() {
        let e = CommandStream::spawn(&argv(["/nonexistent/cairn-no-such-program"]), &never()).err().unwrap();
        assert!(matches!(e, StreamFailure::NotStarted { .. }));
        assert!(CommandStream::spawn(&[], &never()).is_err());
    }

    #[test]
    fn the_stderr_tail_is_bounded_and_starts_at_a_line() {
        let script =
            "i=0; while [ $i -lt 200 ]; do echo \"line $i of a long standard error\" >&2; i=$((i+1)); done; exit 1";
        let mut s = CommandStream::spawn(&argv(["sh", "-c", script]), &never()).unwrap();
        let StreamFailure::Failed { stderr_tail, .. } = failure(read_all(&mut s).1.unwrap_err()) else { panic!() };
        assert!(stderr_tail.len() <= STDERR_TAIL);
        assert!(
            stderr_tail.starts_with("line ") && stderr_tail.ends_with("line 199 of a long standard error"),
            "{stderr_tail}"
        );
    }

    #[test]
    fn a_stderr_tail_of_invalid_utf8_is_still_bounded() {
        // 0xff bytes become U+FFFD (3 bytes each) in lossy UTF-8.
        let script = "head -c 5000 /dev/zero | tr '\\000' '\\377' >&2; exit 1";
        let mut s = CommandStream::spawn(&argv(["sh", "-c", script]), &never()).unwrap();
        let StreamFailure::Failed { stderr_tail, .. } = failure(read_all(&mut s).1.unwrap_err()) else { panic!() };
        assert!(stderr_tail.len() <= STDERR_TAIL && stderr_tail.len() > STDERR_TAIL - 3, "{}", stderr_tail.len());
        assert!(stderr_tail.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
        assert_eq!(cut_front("aé", 1), "");
        assert_eq!(cut_front("aé", 2), "é");
    }

    #[test]
    fn dropping_the_stream_terminates_the_command() {
        let s = CommandStream::spawn(&argv(["sleep", "600"]), &never()).unwrap();
        let t = Instant::now();
        drop(s);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_cancelled_stream_stops_and_terminates_its_command() {
        let cancel = Cancel::new();
        let mut s = CommandStream::spawn(&argv(["sleep", "600"]), &cancel).unwrap();
        let t = Instant::now();
        cancel.cancel();
        assert!(matches!(failure(read_all(&mut s).1.unwrap_err()), StreamFailure::Interrupted { .. }));
        drop(s);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_empty_stream_is_refused_a_non_empty_one_passes() {
        let (_, end) = read_all(&mut RequireData::new(&b""[..], "standard input"));
        assert!(matches!(failure(end.unwrap_err()), StreamFailure::Empty { .. }));
        let (data, end) = read_all(&mut RequireData::new(&b"x"[..], "standard input"));
        assert_eq!(data, b"x");
        end.unwrap();
    }

    #[test]
    fn stream_error_unwraps_the_failure() {
        let io = io::Error::other(StreamFailure::Empty { origin: "standard input".into() });
        assert!(matches!(stream_error(Error::io("standard input", io)), Error::Stream(StreamFailure::Empty { .. })));
        let io = io::Error::other(StreamFailure::Interrupted { command: "`x`".into() });
        assert!(matches!(stream_error(Error::io("standard input", io)), Error::Interrupted));
        let plain = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert!(matches!(stream_error(Error::io("standard input", plain)), Error::Io { .. }));
    }
}
