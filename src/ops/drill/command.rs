//! Running one drill command: in a process group of its own, the restored file on its standard
//! input, the drill's variables in its environment (and not cairn's secrets), its standard
//! error passed through (the end of it kept), the end of its standard output kept for the
//! report, stopped (`SIGTERM` to its group, `SIGKILL` [`KILL_AFTER`] later) at its timeout or
//! on an interrupt. What it leaves running in its group gets `SIGTERM` once it exits (the
//! library's one group supervisor, [`crate::process::wait_group`], as `cairn run`'s hooks).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::Cancel;
use crate::process::{wait_group, StopReason};
use crate::stream::StderrCopy;

/// How long a drill command may take to end after `SIGTERM` before its group gets `SIGKILL`.
pub const KILL_AFTER: Duration = Duration::from_secs(10);

/// Longest end of a drill command's standard output kept for the report, bytes.
pub const OUTPUT_TAIL: usize = 4096;

/// How long the end of the output is waited for once the command exited (a process it left
/// running outside its group may hold the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How a drill command ended.
#[derive(Debug)]
pub struct Ran {
    /// Its exit status.
    pub status: ExitStatus,
    /// True when it was stopped at its timeout.
    pub timed_out: bool,
    /// True when it was stopped by an interrupt of the drill.
    pub interrupted: bool,
    /// The end of its standard output (at most [`OUTPUT_TAIL`] bytes, lossy UTF-8, trimmed).
    pub output: String,
    /// The end of its standard error (trimmed).
    pub stderr_tail: String,
    /// Its wall time.
    pub duration: Duration,
}

/// Run `argv` with `env` added to this process's environment (without [`crate::process::SECRET_VARIABLES`]),
/// `stdin_file` (or nothing) on its standard input, for at most `timeout`, stopping it when
/// `cancel` is cancelled. Errors: the text of why it could not be started.
pub fn run(
    argv: &[OsString],
    env: &[(&str, OsString)],
    stdin_file: Option<&Path>,
    timeout: Option<Duration>,
    cancel: &Cancel,
) -> Result<Ran, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let stdin = match stdin_file {
        Some(p) => Stdio::from(std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(program);
    crate::process::without_secrets(&mut cmd).args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("could not be started: {e}"))?;
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let out = child.stdout.take().map(|mut o| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match o.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.extend_from_slice(buf.get(..n).unwrap_or_default());
                let excess = t.len().saturating_sub(OUTPUT_TAIL);
                t.drain(..excess);
            }
        })
    });
    let err = child.stderr.take().map(StderrCopy::start);
    // A timeout too long to add is none.
    let deadline = timeout.and_then(|t| start.checked_add(t));
    let stop = || {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(StopReason::Timeout)
        } else if cancel.is_cancelled() {
            Some(StopReason::Interrupted)
        } else {
            None
        }
    };
    let ended = wait_group(&mut child, KILL_AFTER, Duration::from_millis(20), stop)
        .map_err(|e| format!("could not be waited for: {e}"))?;
    let (status, timed_out, interrupted) =
        (ended.status, ended.stopped == Some(StopReason::Timeout), ended.stopped == Some(StopReason::Interrupted));
    let duration = start.elapsed();
    if let Some(h) = out {
        let until = Instant::now() + OUTPUT_GRACE;
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
    let output = String::from_utf8_lossy(&tail.lock().unwrap_or_else(|p| p.into_inner())).trim().to_string();
    let stderr_tail = err.map(StderrCopy::finish).unwrap_or_default();
    Ok(Ran { status, timed_out, interrupted, output, stderr_tail, duration })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_is_on_stdin_and_the_env_is_set() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"restored bytes").unwrap();
        let script = "cat; echo; echo \"$CAIRN_DRILL_COMPONENT\"";
        let env = [("CAIRN_DRILL_COMPONENT", "/x".into())];
        let r = run(&argv(&["sh", "-c", script]), &env, Some(&f), None, &Cancel::new()).unwrap();
        assert!(r.status.success());
        assert_eq!(r.output, "restored bytes\n/x");
    }

    #[test]
    fn a_command_past_its_timeout_is_stopped_and_a_missing_one_not_started() {
        let r = run(&argv(&["sleep", "30"]), &[], None, Some(Duration::from_millis(200)), &Cancel::new()).unwrap();
        assert!(r.timed_out && !r.status.success());
        assert!(run(&argv(&["/nonexistent/program"]), &[], None, None, &Cancel::new()).is_err());
        let cancel = Cancel::new();
        cancel.cancel();
        let r = run(&argv(&["sleep", "30"]), &[], None, None, &cancel).unwrap();
        assert!(r.interrupted && !r.status.success());
    }
}
