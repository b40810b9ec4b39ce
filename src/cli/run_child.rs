//! The children of `cairn run` (its steps and hooks), run so that an interrupt reaches them and
//! their failure can be told: a SIGTERM or Ctrl-C of the run while a child runs is passed on to
//! it (SIGTERM, then SIGKILL after [`KILL_AFTER`]), and its standard error is copied through line
//! by line while its last line (or the message of its `--json` error) is kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to end after SIGTERM before it gets SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(10);

/// How long the end of a child's standard error is waited for once it has exited.
const STDERR_GRACE: Duration = Duration::from_secs(2);

/// How often the run looks at its child and at the interrupt.
const POLL: Duration = Duration::from_millis(50);

/// How a child ended.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output, when it was captured (else empty).
    pub stdout: Vec<u8>,
    /// What it said last: the message of a `--json` `exit_error` line, else its last non-empty
    /// line of standard error (at most 1000 characters); `None` when it said nothing.
    pub said: Option<String>,
}

/// Run `cmd` in a process group of its own with no standard input, its standard output
/// captured when `capture_stdout` (else as `cmd` sets it), its standard error copied to this
/// process's (an `exit_error` JSON line of a child run with `--json` as cairn's text message
/// unless `json`); once it exits, what it left in its group gets SIGTERM. Errors: the child
/// could not start, or could not be waited for (it is killed).
pub fn supervise(cmd: &mut Command, capture_stdout: bool, json: bool) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    if capture_stdout {
        cmd.stdout(Stdio::piped());
    }
    // Its own process group: a Ctrl-C on the terminal reaches the run alone, which passes it on
    // once, to the whole group (a hook's `sh -c 'a; b'` included).
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            // A read error leaves what was read: the summary is looked for in it.
            let _ = o.read_to_end(&mut v);
            v
        })
    });
    let said = std::sync::Arc::new(std::sync::Mutex::new(None));
    let err = child.stderr.take().map(|e| {
        let said = said.clone();
        std::thread::spawn(move || copy_stderr(e, json, &said))
    });
    // An interrupt that came before the child started is not its concern: the failure and
    // finally hooks of an interrupted run still run to their end.
    let already = super::cancel().is_cancelled();
    let interrupted =
        || (!already && super::cancel().is_cancelled()).then_some(cairn::process::StopReason::Interrupted);
    // What it left running in its group ends with it (as systemd ends a oneshot service's
    // leftovers): `wait_group` sees to that.
    let status = cairn::process::wait_group(&mut child, KILL_AFTER, POLL, interrupted)?.status;
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    // A process the child left running (a hook's `daemon &`) may hold its standard error open:
    // wait for the end of it only briefly, then let the copy go on on its own.
    if let Some(h) = err {
        let until = Instant::now() + STDERR_GRACE;
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
    let said = said.lock().ok().and_then(|s| s.clone());
    Ok(Finished { status, stdout, said })
}

/// Copy a child's standard error to ours line by line, keeping in `said` what it said last
/// (see [`Finished::said`]).
fn copy_stderr(e: impl Read, json: bool, said: &std::sync::Mutex<Option<String>>) {
    let mut last: Option<String> = None;
    let mut error: Option<String> = None;
    let stderr = std::io::stderr();
    for line in BufReader::new(e).split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line).into_owned();
        let exit_error = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .filter(|v| v["message_type"] == "exit_error")
            .and_then(|v| v["message"].as_str().map(|m| (m.to_string(), v["hint"].as_str().map(str::to_string))));
        let mut w = stderr.lock();
        match exit_error {
            Some((message, hint)) if !json => {
                let _ = writeln!(w, "cairn: {message}");
                if let Some(h) = hint {
                    let _ = writeln!(w, "cairn: {h}");
                }
                error = Some(message);
            }
            Some((message, _)) => {
                let _ = w.write_all(&line).and_then(|()| w.write_all(b"\n"));
                error = Some(message);
            }
            None => {
                let _ = w.write_all(&line).and_then(|()| w.write_all(b"\n"));
                let t = text.trim();
                if !t.is_empty() {
                    last = Some(t.chars().take(1000).collect());
                }
            }
        }
        drop(w);
        if let Ok(mut s) = said.lock() {
            s.clone_from(&error.clone().or_else(|| last.clone()));
        }
    }
}
