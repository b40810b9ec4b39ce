//! `--metrics-file FILE` and `--metrics-push URL`: the figures of backup, run, copy, forget, prune,
//! check, restore, drill and stats as Prometheus metrics, for node_exporter's textfile collector or a
//! Pushgateway.
//!
//! A command records its own figures as it prints them ([`gauge`]); when it ends, [`finish`]
//! adds what every command has, whatever happened (its exit code, when it ran, how long it
//! took, and when it last succeeded), puts the labels `profile`, `host` and `repository` on
//! every series, and writes them:
//!
//! - to the file, merged with what is there ([`cairn::metrics::Exposition::merge`]): the
//!   series of other commands and other profiles stay, so one file holds a profile's night;
//!   the file is replaced atomically (a temporary file, synced, renamed) under an advisory
//!   lock on `FILE.lock`, so two commands ending at once do not lose each other's series;
//! - to a Pushgateway ([`push`]): the run's series replace the group
//!   `job/cairn/host/H/profile/P/command/C`, each last success in a group of its own, so that
//!   a failed run leaves the last success in place and none of its stale figures.
//!
//! A failure to write or push is a warning: monitoring that is down does not fail a backup
//! (and a file that stops changing is what the freshness alert catches).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use cairn::metrics::{Exposition, Family, Labels};

/// The commands that write metrics.
pub const COMMANDS: [&str; 9] = ["backup", "run", "forget", "prune", "check", "restore", "drill", "stats", "copy"];

/// Help of `cairn_repository_size_bytes` (prune and stats write it: one text, as the
/// Pushgateway wants).
pub const REPOSITORY_SIZE_HELP: &str = "Bytes of the repository's packs (at the last prune or stats)";
/// Help of `cairn_repository_packs`.
pub const REPOSITORY_PACKS_HELP: &str = "Packs in the repository (at the last prune or stats)";
/// Help of `cairn_snapshots`.
pub const SNAPSHOTS_HELP: &str = "Snapshots in the repository (at the last prune, check or stats)";

/// How long a command waits for another one writing the same metrics file.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Tries of a push in all.
const PUSH_ATTEMPTS: u32 = 3;
/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The figures the running command recorded.
static RECORDED: Mutex<Vec<Family>> = Mutex::new(Vec::new());

/// The host the command's figures are about, when it says ([`host`]).
static HOST: Mutex<Option<String>> = Mutex::new(None);

/// The figures are about host `name` (`backup --host`, the host a drill's snapshot is of),
/// not the profile's: the `host` label says so.
pub fn host(name: &str) {
    *HOST.lock().unwrap_or_else(|p| p.into_inner()) = Some(name.to_string());
}

/// The repository the command's figures are about, when it says ([`repository`]).
static REPOSITORY: Mutex<Option<String>> = Mutex::new(None);

/// The figures are about repository `location` (the target of a copy), not the one `-r` or
/// the profile names: the `repository` label says so.
pub fn repository(location: &str) {
    *REPOSITORY.lock().unwrap_or_else(|p| p.into_inner()) = Some(location.to_string());
}

/// Set by a run that writes no metrics ([`skip`]).
static SKIP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// This run writes no metrics: a dry run (it changed nothing), a value cairn refused (nothing
/// ran), a backup with a profile that is not the profile's backup (other paths, a stream): the
/// last real run's series stay as they are.
pub fn skip() {
    SKIP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Record `value` for metric `name` (a gauge with help text `help`) with the command's own
/// labels `labels` (the common ones are added by [`finish`]).
pub fn gauge(name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut rec = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
    match rec.iter_mut().find(|f| f.name == name) {
        Some(f) => f.set(&labels, value),
        None => rec.push(Family::gauge_with(name, help, &labels, value)),
    }
}

/// Seconds since the Unix epoch of `t` (0 before it).
fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Where the metrics go, if anywhere.
pub struct Sinks<'a> {
    /// `--metrics-file`.
    pub file: Option<&'a Path>,
    /// `--metrics-push`.
    pub push: Option<&'a str>,
    /// The profile's name ("" without one).
    pub profile: &'a str,
    /// The `host` label: the profile's `[backup] host`, else this machine's name.
    pub host: &'a str,
    /// The repository as given (`-r`).
    pub repository: &'a str,
}

/// Write command `command`'s metrics (see the module docs): it started at `started`, took
/// `elapsed` and ends with exit code `code` (0 is a success; for backup, 3 is not). Does
/// nothing for a command not in [`COMMANDS`] or without a sink. Failures are printed as
/// warnings.
pub fn finish(sinks: &Sinks<'_>, command: &str, started: SystemTime, elapsed: Duration, code: u8) {
    let skipped = SKIP.load(std::sync::atomic::Ordering::Relaxed);
    if skipped || !COMMANDS.contains(&command) || (sinks.file.is_none() && sinks.push.is_none()) {
        return;
    }
    let told = HOST.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let host = told.as_deref().unwrap_or(sinks.host);
    let told_repository = REPOSITORY.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let repository = told_repository.as_deref().unwrap_or(sinks.repository);
    let base: Labels = [("profile", sinks.profile), ("host", host), ("repository", repository)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let own = std::mem::take(&mut *RECORDED.lock().unwrap_or_else(|p| p.into_inner()));
    let with_base = |mut f: Family| {
        for s in &mut f.samples {
            s.labels.extend(base.clone());
        }
        f
    };
    let c = command;
    let mut figures: Vec<Family> = own.into_iter().map(with_base).collect();
    figures.push(with_base(Family::gauge_with(
        &format!("cairn_{c}_last_run_timestamp_seconds"),
        &format!("When cairn {c} last ran (Unix time)"),
        &Labels::new(),
        epoch_seconds(started),
    )));
    // A command that measures its own duration (drill: what the RTO is compared with) keeps it.
    let duration = format!("cairn_{c}_duration_seconds");
    if !figures.iter().any(|f| f.name == duration) {
        figures.push(with_base(Family::gauge_with(
            &duration,
            &format!("Wall time of the last cairn {c}"),
            &Labels::new(),
            elapsed.as_secs_f64(),
        )));
    }
    if code == 0 {
        figures.push(with_base(Family::gauge_with(
            &format!("cairn_{c}_last_success_timestamp_seconds"),
            &format!("When cairn {c} last ended with exit code 0 (Unix time)"),
            &Labels::new(),
            epoch_seconds(started + elapsed),
        )));
    }
    let mut cmd_owner = base.clone();
    cmd_owner.insert("command".into(), c.to_string());
    let exit = vec![Family::gauge_with(
        "cairn_command_exit_code",
        "Exit code of the last run of each cairn command (0 success, 3 partial backup, see cairn --help)",
        &cmd_owner,
        f64::from(code),
    )];
    let prefix = format!("cairn_{c}_");
    if let Some(file) = sinks.file {
        let update = |ex: &mut Exposition| {
            ex.merge(exit.clone(), &cmd_owner, None);
            ex.merge(figures.clone(), &base, Some(&prefix));
        };
        match cairn::metrics::update_file(file, LOCK_WAIT, update) {
            Ok(bad) if bad.is_empty() => {}
            Ok(bad) => {
                let lines: Vec<String> = bad.iter().map(|b| b.line.to_string()).collect();
                eprintln!("cairn: warning: {}: line(s) {} were not metrics; dropped", file.display(), lines.join(", "));
            }
            Err(e) => eprintln!("cairn: warning: metrics not written to {}: {}", file.display(), super::error_text(&e)),
        }
    }
    if let Some(url) = sinks.push {
        push(url, host, sinks.profile, c, exit, figures);
    }
}

/// Push to the Pushgateway at `url` (see the module docs): the run's series replace the group
/// `job/cairn/host/H/profile/P/command/C` (PUT: a failed run leaves none of the last good run's
/// figures there), and each `*_last_success_timestamp_seconds` sample goes to a group of its
/// own (`.../component/PATH`, "" for the command's), so that a run that did not succeed, or a
/// component that failed, leaves the previous success in place. The grouping labels are
/// removed from the samples (the Pushgateway adds them back).
fn push(url: &str, host: &str, profile: &str, command: &str, exit: Vec<Family>, figures: Vec<Family>) {
    let mut families = exit;
    families.extend(figures);
    let group = ["host", "profile", "command"];
    for f in &mut families {
        for s in &mut f.samples {
            s.labels.retain(|k, _| !group.contains(&k.as_str()));
        }
    }
    let base = push_url(url, host, profile, command);
    let (sticky, plain): (Vec<Family>, Vec<Family>) =
        families.into_iter().partition(|f| f.name.ends_with(cairn::metrics::STICKY_SUFFIX));
    let mut requests = vec![(base.clone(), Exposition { families: plain })];
    for mut f in sticky {
        for mut sample in std::mem::take(&mut f.samples) {
            let component = sample.labels.remove("component").unwrap_or_default();
            let one = Family { samples: vec![sample], ..f.clone() };
            let target = format!("{base}/component@base64/{}", b64(&component));
            requests.push((target, Exposition { families: vec![one] }));
        }
    }
    let shown = super::http::redacted(url);
    for (target, body) in requests {
        match super::http::send("PUT", &target, body.render().into_bytes(), PUSH_TIMEOUT, PUSH_ATTEMPTS) {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => {
                eprintln!("cairn: warning: metrics push to {shown}: the Pushgateway answered HTTP {s}");
                return;
            }
            Err(e) => {
                eprintln!("cairn: warning: metrics push failed: {e}");
                return;
            }
        }
    }
}

/// A label value as the Pushgateway's URL carries any value: URL-safe base64 (`=` for "").
fn b64(v: &str) -> String {
    use base64::Engine as _;
    if v.is_empty() {
        "=".to_string()
    } else {
        base64::engine::general_purpose::URL_SAFE.encode(v)
    }
}

/// The Pushgateway URL of a command's group: `URL/metrics/job/cairn/host@base64/../profile@base64/../command/C`.
fn push_url(url: &str, host: &str, profile: &str, command: &str) -> String {
    format!(
        "{}/metrics/job/cairn/host@base64/{}/profile@base64/{}/command/{command}",
        url.trim_end_matches('/'),
        b64(host),
        b64(profile)
    )
}
