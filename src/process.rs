//! A child process that leads a process group of its own, waited for with a way to stop it:
//! `cairn run`'s steps and hooks, a drill's commands. Stopping follows systemd's
//! `KillMode=control-group`: SIGTERM to the whole group, SIGKILL to it a grace period later;
//! and whatever the child left running in its group when it exited gets SIGTERM, as systemd
//! ends a oneshot service's leftovers.

use std::io;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Variables of cairn's environment that hold secrets, removed from the environment of every
/// command cairn runs for a backup or a drill (dumps, verify and drill commands): the
/// repository password, and a Pushgateway URL, which may carry a password.
pub const SECRET_VARIABLES: [&str; 2] = ["CAIRN_PASSWORD", "CAIRN_METRICS_PUSH"];

/// `cmd` without [`SECRET_VARIABLES`] in its environment.
pub fn without_secrets(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for v in SECRET_VARIABLES {
        cmd.env_remove(v);
    }
    cmd
}

/// Why a child was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It ran past its time limit.
    Timeout,
    /// The operation was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
}

/// How a group child ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// Why it was told to stop, when it was.
    pub stopped: Option<StopReason>,
}

/// Wait for `child`, started in a process group of its own (`process_group(0)`), looking every
/// `poll` at `stop`: once it names a reason, the group gets SIGTERM, and SIGKILL `grace` later
/// if the child has not exited. Once it exits, what is left in its group gets SIGTERM.
/// Errors: the child could not be waited for (the group is killed and the child reaped).
pub fn wait_group(
    child: &mut Child,
    grace: Duration,
    poll: Duration,
    mut stop: impl FnMut() -> Option<StopReason>,
) -> io::Result<Ended> {
    let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
    let signal = |sig| {
        // A group already gone (ESRCH) is the usual case at the end.
        if let Some(g) = group {
            let _ = killpg(g, sig);
        }
    };
    let mut stopped: Option<(StopReason, Instant)> = None;
    let mut killed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                signal(Signal::SIGKILL);
                let _ = child.wait();
                return Err(e);
            }
        }
        if stopped.is_none() {
            if let Some(why) = stop() {
                signal(Signal::SIGTERM);
                stopped = Some((why, Instant::now()));
            }
        }
        if !killed && stopped.is_some_and(|(_, t)| t.elapsed() >= grace) {
            signal(Signal::SIGKILL);
            killed = true;
        }
        std::thread::sleep(poll);
    };
    signal(Signal::SIGTERM);
    Ok(Ended { status, stopped: stopped.map(|(why, _)| why) })
}
