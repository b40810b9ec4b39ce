//! The `verify` command of a command component ([`super::CommandSource::verify`]): fed the
//! command's output on its standard input as it is read ([`Tee`]), judged by its exit status
//! and by whether it read its input to the end ([`Verify::finish`]).
//!
//! The rule: a verify command must read all of its input. One that exits non-zero fails the
//! component (its exit status is the reason); one that exits 0 but closed its input before the
//! end (cairn's write to it failed, `EPIPE`) fails it too, with the reason "verify command ...
//! stopped reading after N bytes". `pg_restore --list` and `cmp - FILE` read everything.
//! Limit: the last pipe buffer's worth (64 KiB on Linux) written to a verify command that then
//! exits 0 without reading it is not noticed. A verify command that stops reading and does not
//! exit blocks the component until its timeout.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::context::Cancel;
use crate::stream::{describe_status, quote_command, StderrCopy};

/// A reader that copies what it reads to a verify command's standard input and counts it.
/// A verify command that stops reading is no longer fed; [`Tee::stopped`] says after how many
/// bytes.
pub(super) struct Tee<'a, R> {
    pub(super) inner: R,
    pub(super) sink: Option<ChildStdin>,
    pub(super) read: &'a AtomicU64,
    /// Bytes the verify command had been given when a write to it failed, and why.
    pub(super) stopped: Option<(u64, io::Error)>,
}

impl<R> Tee<'_, R> {
    /// The bytes written to the verify command before a write to it failed, and the error;
    /// `None` while every write succeeded.
    pub(super) fn stopped(&mut self) -> Option<(u64, io::Error)> {
        self.stopped.take()
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.read.fetch_add(n as u64, Ordering::Relaxed);
        if let (Some(sink), Some(bytes)) = (self.sink.as_mut(), buf.get(..n)) {
            if let Err(e) = sink.write_all(bytes) {
                self.sink = None;
                self.stopped = Some((before, e));
            }
        }
        Ok(n)
    }
}

/// A running verify command: standard input fed by a [`Tee`], standard output discarded,
/// standard error passed through (its tail kept), in a process group of its own.
pub(super) struct Verify {
    command: String,
    child: Child,
    pub(super) stdin: Option<ChildStdin>,
    stderr: Option<StderrCopy>,
    pub(super) pgid: Option<nix::unistd::Pid>,
}

impl Verify {
    /// Start `argv`. Errors: it cannot be started (or `argv` is empty).
    pub(super) fn spawn(argv: &[OsString]) -> io::Result<Verify> {
        let (program, args) = argv.split_first().ok_or_else(|| io::Error::other("no command given"))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn()?;
        let pgid = i32::try_from(child.id()).ok().map(nix::unistd::Pid::from_raw);
        Ok(Verify {
            command: quote_command(argv),
            stdin: child.stdin.take(),
            stderr: child.stderr.take().map(StderrCopy::start),
            child,
            pgid,
        })
    }

    /// Close its input and wait for it (killed once `stop` is cancelled). `stopped`: what
    /// [`Tee::stopped`] returned. `Err`: why it failed (a non-zero exit first, then input
    /// not read to the end) and the end of its standard error.
    pub(super) fn finish(
        mut self,
        stop: &Cancel,
        stopped: Option<(u64, io::Error)>,
    ) -> std::result::Result<(), (String, String)> {
        self.stdin = None;
        let status: io::Result<ExitStatus> = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) if stop.is_cancelled() => {
                    self.kill();
                    break self.child.wait();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(e),
            }
        };
        let tail = self.stderr.take().map(StderrCopy::finish).unwrap_or_default();
        match (status, stopped) {
            (Ok(s), None) if s.success() => Ok(()),
            (Ok(s), Some((n, e))) if s.success() => Err((
                format!(
                    "verify command {} stopped reading after {n} bytes, before the end of the output ({e})",
                    self.command
                ),
                tail,
            )),
            (Ok(s), _) => Err((format!("verify command {} failed ({})", self.command, describe_status(s)), tail)),
            (Err(e), _) => Err((format!("verify command {}: cannot wait for its exit: {e}", self.command), tail)),
        }
    }

    /// Send `SIGKILL` to its process group (and to itself).
    fn kill(&mut self) {
        if let Some(g) = self.pgid {
            let _ = nix::sys::signal::killpg(g, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }
}

impl Drop for Verify {
    /// A verify command not waited for (the stream failed) is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            let _ = self.child.wait();
        }
    }
}
