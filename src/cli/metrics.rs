//! `--metrics-file FILE` and `--metrics-push URL`: the figures of backup, run, forget, prune,
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
//! - to the Pushgateway with `POST /metrics/job/cairn/host/H/profile/P/command/C`: the group
//!   keeps other commands' series, and a failed run leaves the last success in place.
//!
//! A failure to write or push is a warning: monitoring that is down does not fail a backup
//! (and a file that stops changing is what the freshness alert catches).

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use cairn::metrics::{Exposition, Family, Labels};

/// The commands that write metrics.
pub const COMMANDS: [&str; 8] = ["backup", "run", "forget", "prune", "check", "restore", "drill", "stats"];

/// Tries of a push in all.
const PUSH_ATTEMPTS: u32 = 3;
/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The figures the running command recorded.
static RECORDED: Mutex<Vec<Family>> = Mutex::new(Vec::new());

/// Set by a dry run: it writes no metrics (it changed nothing, and did not succeed at
/// anything a monitoring rule waits for).
static SKIP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// This run writes no metrics (a dry run).
pub fn skip() {
    SKIP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Record `value` for metric `name` (a gauge with help text `help`) with the command's own
/// labels `labels` (the common ones are added by [`finish`]).
pub fn gauge(name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut rec = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
    match rec.iter_mut().find(|f| f.name == name) {
        Some(f) => *f = f.clone().with(&labels, value),
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
    let host = cairn::util::hostname();
    let base: Labels = [("profile", sinks.profile), ("host", host.as_str()), ("repository", sinks.repository)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut own = std::mem::take(&mut *RECORDED.lock().unwrap_or_else(|p| p.into_inner()));
    let mut with_base = |f: Family| {
        let mut f = f;
        for s in &mut f.samples {
            s.labels.extend(base.clone());
        }
        f
    };
    let c = command;
    let mut figures: Vec<Family> = own.drain(..).map(&mut with_base).collect();
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
        if let Err(e) = write_file(file, &exit, &cmd_owner, &figures, &base, &prefix) {
            eprintln!("cairn: warning: metrics not written to {}: {e}", file.display());
        }
    }
    if let Some(url) = sinks.push {
        let mut ex = Exposition::default();
        ex.merge(exit, &cmd_owner, None);
        ex.merge(figures, &base, Some(&prefix));
        let group = ["host", "profile", "command"];
        for f in &mut ex.families {
            for s in &mut f.samples {
                s.labels.retain(|k, _| !group.contains(&k.as_str()));
            }
        }
        let target = push_url(url, &host, sinks.profile, c);
        match super::http::send("POST", &target, ex.render().into_bytes(), PUSH_TIMEOUT, PUSH_ATTEMPTS) {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => eprintln!("cairn: warning: metrics push to {url}: the Pushgateway answered HTTP {s}"),
            Err(e) => eprintln!("cairn: warning: metrics push failed: {e}"),
        }
    }
}

/// The Pushgateway URL of a group: `URL/metrics/job/cairn/host@base64/..`, each label value
/// in URL-safe base64 (the Pushgateway's way of carrying any value, `/` included).
fn push_url(url: &str, host: &str, profile: &str, command: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &str| {
        if v.is_empty() {
            "=".to_string()
        } else {
            base64::engine::general_purpose::URL_SAFE.encode(v)
        }
    };
    format!(
        "{}/metrics/job/cairn/host@base64/{}/profile@base64/{}/command/{command}",
        url.trim_end_matches('/'),
        b64(host),
        b64(profile)
    )
}

/// Merge into `file` under its lock and replace it atomically.
fn write_file(
    file: &Path,
    exit: &[Family],
    cmd_owner: &Labels,
    figures: &[Family],
    base: &Labels,
    prefix: &str,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = file.file_name().ok_or("not a file name")?.to_string_lossy().into_owned();
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let lock_path = dir.join(format!("{name}.lock"));
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("{}: {e}", lock_path.display()))?;
    let old = match std::fs::read(file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.to_string()),
    };
    let (mut ex, bad) = Exposition::parse(&old);
    for b in bad {
        eprintln!("cairn: warning: {}:{}: not a metric line, dropped: {}", file.display(), b.line, b.text);
    }
    ex.merge(exit.to_vec(), cmd_owner, None);
    ex.merge(figures.to_vec(), base, Some(prefix));
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(ex.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}
