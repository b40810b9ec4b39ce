//! `cairn schedule install|remove|status [COMMAND]`: a systemd timer (or a crontab line) that
//! runs `cairn -P NAME run` for a profile (or its `check` or `drill`: [`JOBS`]).

mod cron;
mod units;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{Args, Subcommand};

use cairn::Error;

use super::{out, parse_duration, GlobalOpts, EXIT_OK};
use units::UnitSpec;

/// A profile's `[schedule]` section (every key optional; a command-line flag wins over it):
/// `run` (systemd calendar spec, default `daily`), `randomized-delay` (default `10m`),
/// `timeout` (default `23h`), `user` (install per-user units), `unit-dir`.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScheduleConfig {
    /// When to run, in systemd.time(7) calendar syntax (`daily`, `*-*-* 02:00`, `Mon..Fri 03:00`).
    pub run: Option<String>,
    /// Delay each start by a random time up to this duration (`30s`, `10m`, `1h`).
    pub randomized_delay: Option<String>,
    /// Stop a run still going after this duration (the service's TimeoutStartSec=).
    pub timeout: Option<String>,
    /// Install per-user units (`systemctl --user`) instead of system units.
    pub user: Option<bool>,
    /// Write the units into this directory instead of systemd's.
    pub unit_dir: Option<PathBuf>,
    /// When `schedule install check` runs `cairn check` (default `weekly`).
    pub check: Option<String>,
    /// When `schedule install drill` runs `cairn drill` (default `monthly`).
    pub drill: Option<String>,
}

/// The commands a timer can run, with their default calendar: the night (`run`), a
/// repository check, a restore drill.
pub const JOBS: [(&str, &str); 3] = [("run", "daily"), ("check", "weekly"), ("drill", "monthly")];

/// Default `RandomizedDelaySec=`.
const DEFAULT_DELAY: &str = "10m";
/// Default `TimeoutStartSec=`: a night's run must end within a day.
const DEFAULT_TIMEOUT: &str = "23h";

#[derive(Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Write cairn-NAME.service and cairn-NAME.timer and, when systemd runs and the units go
    /// to systemd's own directory, reload systemd and enable the timer (or print a crontab
    /// line with --cron)
    Install(InstallArgs),
    /// Disable the timer, delete the units, reload systemd
    Remove(WhereArgs),
    /// Whether the units are installed; the timer's next and last run when systemd runs
    Status(WhereArgs),
}

/// Which units, and where they are.
#[derive(Args)]
struct WhereArgs {
    /// What the timer runs: `run` (the profile's night), `check` (with the profile's [check]
    /// options) or `drill` (a restore drill); units cairn-NAME.* for run, cairn-NAME-COMMAND.*
    /// for the others
    #[arg(value_name = "COMMAND", default_value = "run", value_parser = ["run", "check", "drill"])]
    command: String,
    /// Per-user units (~/.config/systemd/user, `systemctl --user`) instead of system units
    /// (/etc/systemd/system)
    #[arg(long)]
    user: bool,
    /// The directory of the units (then systemctl is not called)
    #[arg(long, value_name = "DIR")]
    unit_dir: Option<PathBuf>,
    /// Delete (or overwrite) unit files cairn did not write
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct InstallArgs {
    #[command(flatten)]
    place: WhereArgs,
    /// When to run, in systemd's OnCalendar= syntax, e.g. daily, "*-*-* 02:00",
    /// "Mon..Fri 03:00" (default: the profile's schedule.run, .check or .drill for that
    /// command, else daily for run, weekly for check, monthly for drill); checked with
    /// `systemd-analyze calendar` when it is installed
    #[arg(long, value_name = "SPEC")]
    on_calendar: Option<String>,
    /// Delay each start by a random time up to this (default 10m; 0 for none)
    #[arg(long, value_name = "DURATION")]
    randomized_delay: Option<String>,
    /// Stop a run still going after this long (default 23h)
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Print the crontab line instead of writing units (daily, hourly, weekly, monthly and
    /// [WEEKDAYS] [*-*-*] HH:MM only; cron neither catches up missed runs nor randomizes)
    #[arg(long, conflicts_with_all = ["unit_dir", "user", "force"])]
    cron: bool,
}

/// Run `cairn -P NAME schedule` (or `--config FILE`, named by the file's stem): the profile's
/// `[schedule]` section gives the defaults of the flags. Errors: [`Error::Usage`] without a
/// profile, or with a name that cannot name a unit.
pub fn run(g: &GlobalOpts, a: &ScheduleArgs, applied: Option<&super::profile::Applied>) -> Result<u8, Error> {
    let Some(p) = applied else {
        return Err(Error::usage(
            "schedule needs a profile: cairn -P NAME schedule ... or cairn --config FILE schedule ... (the timer runs that profile's `cairn run`)",
        ));
    };
    let profile = p.name.as_str();
    units::check_profile_name(profile).map_err(|e| Error::Usage(format!("profile name {profile:?}: {e}")))?;
    // The timer's or cron's environment has no HOME or XDG_CONFIG_HOME of the operator's shell:
    // a profile outside /etc/cairn is named by its path.
    let by_path = if p.file.starts_with("/etc/cairn") && g.profile.is_some() {
        None
    } else {
        Some(absolute(&p.file, "the profile")?)
    };
    let applied = Some(p);
    let none = ScheduleConfig::default();
    let config = applied.and_then(|p| p.profile.schedule.as_ref()).unwrap_or(&none);
    match &a.action {
        Action::Install(i) if i.cron => install_cron(g, profile, by_path.as_deref(), i, config),
        Action::Install(i) => {
            // The service runs `cairn -P NAME run`, which reads the repository from the
            // profile: a -r or CAIRN_REPOSITORY given now would not reach it.
            let from_profile = applied.and_then(|p| p.profile.repository.repo.as_deref());
            if from_profile != Some(g.repo.as_str()) {
                return Err(Error::usage(format!(
                    "the timer runs profile {profile}'s `cairn {}`, which takes its repository from the profile; the repository given here ({:?}) is not the profile's ({}): put it into the profile's [repository] repo",
                    i.place.command,
                    g.repo,
                    from_profile.map_or("none".to_string(), |r| format!("{r:?}"))
                )));
            }
            let mut writable = Vec::new();
            // The service's own metrics file is the profile's (a flag given now does not reach
            // it); it runs from /, so the path must be absolute.
            if let Some(f) = p.profile.monitoring.metrics_file.as_ref().filter(|f| !f.as_os_str().is_empty()) {
                if !f.is_absolute() {
                    return Err(Error::usage(format!(
                        "{}: metrics-file {} is relative, but the timer's service runs from /: give an absolute path",
                        p.at("monitoring", "metrics-file"),
                        f.display()
                    )));
                }
                writable.extend(f.parent().map(Path::to_path_buf));
            }
            if let (Some(t), "drill") = (&p.profile.drill.target, i.place.command.as_str()) {
                // Writable only if it exists when the service starts (its parent stays
                // read-only): made now (0700) when the units go to systemd's directory, and a
                // drill into an existing target leaves the directory in place.
                let t = absolute(t, "[drill] target")?;
                if place(&i.place, config)?.systemctl {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&t).map_err(|e| Error::io(&t, e))?;
                } else if !t.is_dir() && !g.quiet && !g.json {
                    eprintln!("cairn: create the drill target {} (mode 0700) before the first drill: the service may write only into it", t.display());
                }
                writable.push(t);
            }
            // The night copies into the `[copy] to` targets: their local repositories are
            // written too, and a remote one needs the network.
            let mut network = false;
            if i.place.command == "run" && !p.profile.copy.to.is_empty() {
                for t in super::copy_targets::targets(p, &[], g)? {
                    let (dir, remote) = repository_dir(&t.globals)
                        .map_err(|e| Error::Usage(format!("copy target {:?}: {}", t.name, super::error_text(&e))))?;
                    writable.extend(dir);
                    network |= remote;
                }
            }
            install(g, profile, by_path.as_deref(), i, config, (writable, network))
        }
        Action::Remove(w) => remove(g, profile, w, config),
        Action::Status(w) => status(g, profile, w, config),
    }
}

/// The calendar spec of an install: `--on-calendar`, else the profile's `[schedule]` key of
/// the command (`run`, `check`, `drill`), else the command's default ([`JOBS`]).
fn calendar(i: &InstallArgs, c: &ScheduleConfig) -> String {
    let command = i.place.command.as_str();
    let key = match command {
        "check" => &c.check,
        "drill" => &c.drill,
        _ => &c.run,
    };
    let default = JOBS.iter().find(|(j, _)| *j == command).map_or("daily", |(_, d)| d);
    i.on_calendar.clone().or_else(|| key.clone()).unwrap_or_else(|| default.to_string())
}

/// A duration flag or key, checked: `what` names it in the error.
fn duration(what: &str, value: &str) -> Result<Duration, Error> {
    parse_duration(value).map_err(|e| Error::Usage(format!("{what} {value:?}: {e}")))
}

/// Where the units go, and whether systemctl is to be told: systemd's own directory only.
struct Place {
    dir: PathBuf,
    user: bool,
    systemctl: bool,
}

fn place(w: &WhereArgs, config: &ScheduleConfig) -> Result<Place, Error> {
    let user = w.user || config.user.unwrap_or(false);
    if let Some(dir) = w.unit_dir.clone().or_else(|| config.unit_dir.clone()) {
        return Ok(Place { dir, user, systemctl: false });
    }
    let dir = if user {
        let env = |k| std::env::var_os(k).filter(|v: &std::ffi::OsString| !v.is_empty()).map(PathBuf::from);
        match (env("XDG_CONFIG_HOME"), env("HOME")) {
            (Some(c), _) => c.join("systemd/user"),
            (None, Some(h)) => h.join(".config/systemd/user"),
            (None, None) => {
                return Err(Error::usage("--user: neither XDG_CONFIG_HOME nor HOME is set; give --unit-dir"))
            }
        }
    } else {
        PathBuf::from("/etc/systemd/system")
    };
    Ok(Place { dir, user, systemctl: Path::new("/run/systemd/system").exists() })
}

/// The unit spec of an install: flags, then the profile's `[schedule]`, then the defaults; the
/// repository and cache directory from the global options.
fn unit_spec(
    g: &GlobalOpts,
    profile: &str,
    i: &InstallArgs,
    c: &ScheduleConfig,
    user: bool,
) -> Result<UnitSpec, Error> {
    let pick = |flag: &Option<String>, key: &Option<String>, default: &str| -> (String, String) {
        match (flag, key) {
            (Some(v), _) => (v.clone(), "--".to_string()),
            (None, Some(v)) => (v.clone(), "[schedule] ".to_string()),
            (None, None) => (default.to_string(), String::new()),
        }
    };
    let on_calendar = calendar(i, c);
    let (delay, from) = pick(&i.randomized_delay, &c.randomized_delay, DEFAULT_DELAY);
    let randomized_delay = duration(&format!("{from}randomized-delay"), &delay)?;
    let (timeout, from) = pick(&i.timeout, &c.timeout, DEFAULT_TIMEOUT);
    let timeout = duration(&format!("{from}timeout"), &timeout)?;
    if timeout.is_zero() {
        return Err(Error::usage("timeout 0: give how long a run may take (e.g. 23h)"));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find the path of this cairn binary for ExecStart=: {e}")))?;
    let (repository, network) = repository_dir(g)?;
    let cache_dir = match &g.cache_dir {
        Some(d) => Some(absolute(d, "--cache-dir")?),
        None => None,
    };
    Ok(UnitSpec {
        profile: profile.to_string(),
        command: i.place.command.clone(),
        exe,
        user,
        on_calendar,
        randomized_delay,
        timeout,
        repository,
        cache_dir,
        network,
        config: None,
        writable: Vec::new(),
    })
}

/// The local directory of the repository (to make it writable) and whether it is reached over
/// the network. Errors: no repository given, an unsupported location.
fn repository_dir(g: &GlobalOpts) -> Result<(Option<PathBuf>, bool), Error> {
    if g.repo.is_empty() {
        return Err(Error::usage(
            "no repository given (-r/--repo, CAIRN_REPOSITORY or the profile): the service must know which directory to make writable",
        ));
    }
    let properties = cairn::backend::location_properties(&g.repo)?;
    if properties.remote {
        return Ok((None, true));
    }
    if g.repo.starts_with("opendal:") {
        // opendal:fs keeps the repository under `-o root=DIR`.
        let root =
            g.options.iter().find_map(|o| o.split_once('=').filter(|(k, _)| k.trim() == "root").map(|(_, v)| v.trim()));
        return match root {
            Some(r) => Ok((Some(absolute(Path::new(r), "-o root")?), false)),
            None => Err(Error::usage(format!("repository {}: no -o root=DIR to make writable", g.repo))),
        };
    }
    let path = g.repo.strip_prefix("local:").unwrap_or(&g.repo);
    Ok((Some(absolute(Path::new(path), "--repo")?), false))
}

/// `p` made absolute against the current directory (units run from /).
fn absolute(p: &Path, what: &str) -> Result<PathBuf, Error> {
    std::path::absolute(p).map_err(|e| Error::Usage(format!("{what} {}: {e}", p.display())))
}

/// Check a calendar spec with `systemd-analyze calendar` when it is installed; `Ok(false)`
/// when it is not.
fn check_calendar(spec: &str) -> Result<bool, Error> {
    if spec.chars().any(char::is_control) {
        return Err(Error::usage(format!("calendar spec {spec:?}: control characters are not allowed")));
    }
    match Command::new("systemd-analyze").arg("calendar").arg("--").arg(spec).output() {
        Ok(o) if o.status.success() => Ok(true),
        Ok(o) => Err(Error::Usage(format!(
            "calendar spec {spec:?} (--on-calendar or [schedule] run): systemd-analyze calendar rejects it: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Usage(format!("running systemd-analyze calendar: {e}"))),
    }
}

/// Whether the unit file at `p` was written by cairn (starts with the marker); `None` when
/// there is no file. Errors: unreadable.
fn ours(p: &Path) -> Result<Option<bool>, Error> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t.starts_with(units::MARKER))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Some(false)),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// True when the unit file at `p` (written by cairn) is profile `profile`'s unit for
/// `command`: its first line names the profile and, for a service, `ExecStart=` ends with the
/// command (`cairn-a-drill.*` may be profile `a`'s drill or profile `a-drill`'s night).
fn belongs(p: &Path, profile: &str, command: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(p) else { return false };
    let first = text.lines().next().unwrap_or("");
    let named = first.starts_with(&format!("{} for profile {profile};", units::MARKER));
    let exec = text.lines().find(|l| l.starts_with("ExecStart="));
    named && exec.is_none_or(|l| l.ends_with(&format!(" {command}")))
}

/// Write `text` to `p` (mode 0644) through a temporary file and a rename.
fn write_unit(p: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = p.with_extension("cairn-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))
}

/// Run `systemctl [--user] ARGS`, saying so unless quiet. Errors: it failed (its stderr).
fn systemctl(g: &GlobalOpts, user: bool, args: &[&str]) -> Result<String, Error> {
    let mut cmd = Command::new("systemctl");
    if user {
        cmd.arg("--user");
    }
    cmd.args(args);
    let shown = format!("systemctl {}{}", if user { "--user " } else { "" }, args.join(" "));
    let o = cmd.output().map_err(|e| Error::Usage(format!("running {shown}: {e}")))?;
    if !o.status.success() {
        return Err(Error::Usage(format!(
            "{shown} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    if !g.quiet && !g.json && args.first() != Some(&"show") {
        out(&format!("ran: {shown}"));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// What `schedule install`, `remove` and `status` print under `--json`.
#[derive(serde::Serialize, Default)]
struct Report {
    profile: String,
    unit_dir: PathBuf,
    installed: bool,
    /// Files written or deleted.
    files: Vec<PathBuf>,
    /// systemctl commands run.
    ran: Vec<String>,
    /// From `systemctl show` when systemd runs: the timer's and service's properties.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    systemd: std::collections::BTreeMap<String, String>,
}

fn print_json(r: &Report) -> Result<(), Error> {
    out(&serde_json::to_string(r).map_err(|e| Error::Internal(format!("schedule report as JSON: {e}")))?);
    Ok(())
}

fn install(
    g: &GlobalOpts,
    profile: &str,
    file: Option<&Path>,
    i: &InstallArgs,
    c: &ScheduleConfig,
    (writable, network): (Vec<PathBuf>, bool),
) -> Result<u8, Error> {
    let place = place(&i.place, c)?;
    let mut spec = unit_spec(g, profile, i, c, place.user)?;
    spec.writable = writable;
    spec.network |= network;
    spec.config = file.map(Path::to_path_buf);
    if !check_calendar(&spec.on_calendar)? && !g.quiet {
        eprintln!("cairn: systemd-analyze is not installed: the calendar spec {:?} was not checked", spec.on_calendar);
    }
    let service = units::service_unit(&spec).map_err(Error::Usage)?;
    let timer = units::timer_unit(&spec);
    let files = [(place.dir.join(spec.service_name()), service), (place.dir.join(spec.timer_name()), timer)];
    for (p, _) in &files {
        if ours(p)? == Some(false) && !i.place.force {
            return Err(Error::Refused(format!(
                "{} exists and was not written by cairn (no \"{}\" first line): not overwritten; --force overwrites it",
                p.display(),
                units::MARKER
            )));
        }
    }
    // Two profiles of the same name (-P db, --config /a/db.toml) would share the units' names:
    // another profile's service is not replaced silently.
    if let (Some((p, text)), false) = (files.first(), i.place.force) {
        let exec = |t: &str| t.lines().find(|l| l.starts_with("ExecStart=")).map(str::to_string);
        if let Ok(old) = std::fs::read_to_string(p) {
            if old.starts_with(units::MARKER) && exec(&old) != exec(text) {
                return Err(Error::Refused(format!(
                    "{} runs another profile ({}): not overwritten; remove that schedule first, give this profile another name, or --force",
                    p.display(),
                    exec(&old).unwrap_or_default()
                )));
            }
        }
    }
    std::fs::create_dir_all(&place.dir).map_err(|e| Error::io(&place.dir, e))?;
    let mut report =
        Report { profile: profile.into(), unit_dir: place.dir.clone(), installed: true, ..Default::default() };
    for (p, text) in &files {
        write_unit(p, text)?;
        if !g.quiet && !g.json {
            out(&format!("wrote {}", p.display()));
        }
        report.files.push(p.clone());
    }
    let timer = spec.timer_name();
    if place.systemctl {
        for args in [&["daemon-reload"][..], &["enable", "--now", &timer]] {
            systemctl(g, place.user, args)?;
            report.ran.push(args.join(" "));
        }
        if !g.quiet && !g.json {
            out(&format!(
                "the timer runs profile {profile}'s `cairn {}` on {:?}; see `schedule status {}` with the same profile",
                spec.command, spec.on_calendar, spec.command
            ));
        }
    } else if !g.quiet && !g.json {
        let why = if i.place.unit_dir.is_some() || c.unit_dir.is_some() {
            "the units went to --unit-dir"
        } else {
            "systemd is not running here"
        };
        let user = if place.user { "--user " } else { "" };
        out(&format!("systemctl was not called ({why}): enable the timer with `systemctl {user}daemon-reload && systemctl {user}enable --now {timer}`"));
    }
    if g.json {
        print_json(&report)?;
    }
    Ok(EXIT_OK)
}

fn install_cron(
    g: &GlobalOpts,
    profile: &str,
    file: Option<&Path>,
    i: &InstallArgs,
    c: &ScheduleConfig,
) -> Result<u8, Error> {
    let on_calendar = calendar(i, c);
    let fields = cron::cron_fields(&on_calendar).map_err(Error::Usage)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find the path of this cairn binary for the crontab line: {e}")))?;
    let exe =
        exe.to_str().ok_or_else(|| Error::usage(format!("the path of this cairn binary {exe:?} is not UTF-8")))?;
    let which = match file {
        Some(f) => {
            let f = f.to_str().ok_or_else(|| Error::usage(format!("the profile's path {f:?} is not UTF-8")))?;
            format!("--config {}", cron::shell_word(f))
        }
        None => format!("-P {profile}"),
    };
    let line = format!("{fields} {} {which} {}", cron::shell_word(exe), i.place.command);
    out(&line);
    if !g.quiet {
        eprintln!("cairn: add this line with `crontab -e`; unlike the systemd timer, cron neither runs a missed night later nor randomizes the start, and mails the output to the crontab's owner");
    }
    Ok(EXIT_OK)
}

fn remove(g: &GlobalOpts, profile: &str, w: &WhereArgs, c: &ScheduleConfig) -> Result<u8, Error> {
    let place = place(w, c)?;
    let stem = units::unit_stem(profile, &w.command);
    let names = [format!("{stem}.timer"), format!("{stem}.service")];
    let paths: Vec<PathBuf> = names.iter().map(|n| place.dir.join(n)).collect();
    let mut present = Vec::new();
    for p in &paths {
        match ours(p)? {
            None => {}
            Some(false) if !w.force => {
                return Err(Error::Refused(format!(
                    "{} was not written by cairn (no \"{}\" first line): not deleted; --force deletes it",
                    p.display(),
                    units::MARKER
                )))
            }
            Some(true) if !w.force && !belongs(p, profile, &w.command) => {
                return Err(Error::Refused(format!(
                    "{} belongs to another profile's units (its first line or ExecStart= is not profile {profile}'s `{}`): not deleted; --force deletes it",
                    p.display(),
                    w.command
                )))
            }
            Some(_) => present.push(p.clone()),
        }
    }
    if present.is_empty() {
        return Err(Error::Usage(format!(
            "no units of profile {profile} in {}: nothing to remove",
            place.dir.display()
        )));
    }
    let mut report = Report { profile: profile.into(), unit_dir: place.dir.clone(), ..Default::default() };
    if place.systemctl && present.contains(&paths[0]) {
        systemctl(g, place.user, &["disable", "--now", &names[0]])?;
        report.ran.push(format!("disable --now {}", names[0]));
    }
    for p in &present {
        std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        if !g.quiet && !g.json {
            out(&format!("deleted {}", p.display()));
        }
        report.files.push(p.clone());
    }
    if place.systemctl {
        systemctl(g, place.user, &["daemon-reload"])?;
        report.ran.push("daemon-reload".into());
    }
    if g.json {
        print_json(&report)?;
    }
    Ok(EXIT_OK)
}

fn status(g: &GlobalOpts, profile: &str, w: &WhereArgs, c: &ScheduleConfig) -> Result<u8, Error> {
    let place = place(w, c)?;
    let stem = units::unit_stem(profile, &w.command);
    let timer = format!("{stem}.timer");
    let service = format!("{stem}.service");
    let mut report = Report { profile: profile.into(), unit_dir: place.dir.clone(), ..Default::default() };
    let mut lines = Vec::new();
    for name in [&service, &timer] {
        let p = place.dir.join(name);
        let state = match ours(&p)? {
            None => "not installed",
            Some(true) if !belongs(&p, profile, &w.command) => "present, another profile's (its name collides)",
            Some(true) => {
                report.files.push(p.clone());
                "installed"
            }
            Some(false) => "present, not written by cairn",
        };
        lines.push(format!("{}: {state}", p.display()));
    }
    report.installed = report.files.len() == 2;
    if place.systemctl {
        for (name, props) in [
            (&timer, "ActiveState,UnitFileState,NextElapseUSecRealtime,LastTriggerUSec"),
            (&service, "ActiveState,Result,ExecMainStatus,ExecMainExitTimestamp"),
        ] {
            let text = systemctl(g, place.user, &["show", name, "--property", props])?;
            let kind = if name.ends_with(".timer") { "timer" } else { "service" };
            for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
                lines.push(format!("{kind} {k}: {}", if v.is_empty() { "-" } else { v }));
                report.systemd.insert(format!("{kind}.{k}"), v.to_string());
            }
        }
    } else {
        lines.push("systemd: not asked (--unit-dir, or systemd is not running here)".into());
    }
    if g.json {
        print_json(&report)?;
    } else {
        for l in lines {
            out(&l);
        }
    }
    Ok(EXIT_OK)
}
