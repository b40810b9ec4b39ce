//! The `verify` command of a command component ([`super::CommandSource::verify`]): fed the
//! command's output on its standard input as it is read ([`Tee`]), judged by its exit status
//! ([`Verify::finish`]).
//!
//! The rule: the verify command's exit status judges the dump. It may stop reading before the
//! end (`pg_restore --list` reads the table of contents of a `-Fc` dump and exits): once a write
//! to it fails (`EPIPE`) it is no longer fed, the dump is still stored in full, and exit status
//! 0 accepts it (what it did not read was not verified). A non-zero exit fails the component;
//! the reason then also says when it had stopped reading ("stopped reading after N bytes"). A
//! verify command that stops reading and does not exit blocks the component until its timeout.

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
        // As the dump command: no repository password (see `CommandStream`).
        crate::process::without_secrets(&mut cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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
    /// [`Tee::stopped`] returned (told in the reason). `Err`: why it failed (it did not exit
    /// with status 0) and the end of its standard error.
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
        let early = stopped
            .map(|(n, e)| format!("; it stopped reading after {n} bytes, before the end of the output ({e})"))
            .unwrap_or_default();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err((format!("verify command {} failed ({}){early}", self.command, describe_status(s)), tail)),
            Err(e) => Err((format!("verify command {}: cannot wait for its exit: {e}{early}", self.command), tail)),
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
