//! The text of the systemd units `cairn schedule install` writes: pure functions (no I/O), so
//! their exact keys are unit-tested.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first line of every unit cairn writes: `schedule install` overwrites, and `schedule
/// remove` deletes, only files that start with it (else `--force`).
pub const MARKER: &str = "# Written by `cairn schedule install`";

/// What the two units of one profile are made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitSpec {
    /// The profile's name (checked by [`check_profile_name`]): units `cairn-NAME.service` and
    /// `cairn-NAME.timer`, run as `cairn -P NAME run`.
    pub profile: String,
    /// The command the service runs: `run` (the night), `check` or `drill`
    /// ([`super::JOBS`]); units of another command than `run` are named
    /// `cairn-NAME-COMMAND.*`.
    pub command: String,
    /// Absolute path of the cairn binary the service runs.
    pub exe: PathBuf,
    /// A per-user unit (`systemctl --user`): the sandboxing options that need privileges are
    /// left out (systemd.exec(5) supports them in user units only with PrivateUsers=).
    pub user: bool,
    /// The timer's `OnCalendar=` (systemd.time(7) calendar syntax, e.g. `daily`, `*-*-* 02:00`).
    pub on_calendar: String,
    /// The timer's `RandomizedDelaySec=`: the start is delayed by a random time up to this.
    pub randomized_delay: Duration,
    /// The service's `TimeoutStartSec=`: a run still going after this is stopped (and fails).
    pub timeout: Duration,
    /// The local repository directory, made writable (`ReadWritePaths=`); `None` for a remote one.
    pub repository: Option<PathBuf>,
    /// The cache directory given by the operator, made writable; `None`: systemd's own
    /// (`CacheDirectory=cairn`, i.e. /var/cache/cairn or ~/.cache/cairn).
    pub cache_dir: Option<PathBuf>,
    /// The repository, or a copy target's, is reached over the network: order the service
    /// after network-online.target.
    pub network: bool,
    /// More directories the service writes to (made writable, `-`: they need not exist yet):
    /// the metrics file's directory, the drill's target, the local repositories of the
    /// profile's copy targets (`[copy] to`).
    pub writable: Vec<PathBuf>,
    /// The profile's file, when the service must name it by path (`--config FILE` instead of
    /// `-P NAME`: a system service has no HOME to find a user's profile by name).
    pub config: Option<PathBuf>,
}

impl UnitSpec {
    /// `cairn-NAME.service` (`cairn-NAME-COMMAND.service` for another command than `run`).
    pub fn service_name(&self) -> String {
        format!("{}.service", unit_stem(&self.profile, &self.command))
    }

    /// `cairn-NAME.timer` (`cairn-NAME-COMMAND.timer`).
    pub fn timer_name(&self) -> String {
        format!("{}.timer", unit_stem(&self.profile, &self.command))
    }
}

/// The units' name without suffix: `cairn-NAME` for `run`, `cairn-NAME-COMMAND` otherwise.
pub fn unit_stem(profile: &str, command: &str) -> String {
    if command == "run" {
        format!("cairn-{profile}")
    } else {
        format!("cairn-{profile}-{command}")
    }
}

/// Check a profile name for use in unit file names and command lines: ASCII letters, digits,
/// `_`, `.`, `-`, not starting with `-` or `.`, at most 200 bytes. Errors: what is wrong.
pub fn check_profile_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("a profile name must be 1 to 200 characters".into());
    }
    if name.starts_with(['-', '.']) {
        return Err(format!("profile name {name:?} must not start with '-' or '.'"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!(
            "profile name {name:?} has {c:?}: unit names allow only ASCII letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// A duration as systemd.time(7) writes it, in the largest exact unit: `0`, `45s`, `10min`,
/// `2h`, `1d`.
pub fn timespan(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

/// `p` as one word of a unit file value: specifiers escaped (`%` → `%%`), quoted when it has a
/// space. Errors: a path a unit file cannot hold (not UTF-8, or with `"`, `\`, `$`, `'` or a
/// control character).
pub fn unit_word(p: &Path) -> Result<String, String> {
    let s = p.to_str().ok_or_else(|| format!("path {p:?} is not UTF-8: a unit file cannot name it"))?;
    if let Some(c) = s.chars().find(|c| c.is_control() || matches!(c, '"' | '\\' | '$' | '\'')) {
        return Err(format!("path {s:?} has {c:?}, which cairn does not write into a unit file"));
    }
    let s = s.replace('%', "%%");
    Ok(if s.contains(' ') { format!("\"{s}\"") } else { s })
}

/// The text of `cairn-NAME.service` (systemd.service(5), systemd.exec(5)): a oneshot
/// `cairn -P NAME run` at low CPU and I/O priority, the file system read-only but for the
/// repository and cache (system units). Errors: a path [`unit_word`] refuses.
pub fn service_unit(spec: &UnitSpec) -> Result<String, String> {
    let exe = unit_word(&spec.exe)?;
    let mut t = String::new();
    let _ = writeln!(t, "{MARKER} for profile {}; `cairn schedule remove` deletes it.", spec.profile);
    t.push_str("[Unit]\n");
    match spec.command.as_str() {
        "run" => {
            let _ = writeln!(t, "Description=cairn backup of profile {}", spec.profile);
        }
        c => {
            let _ = writeln!(t, "Description=cairn {c} of profile {}", spec.profile);
        }
    }
    if spec.network {
        t.push_str("Wants=network-online.target\nAfter=network-online.target\n");
    }
    t.push_str("\n[Service]\nType=oneshot\n");
    match &spec.config {
        Some(file) => {
            let _ = writeln!(t, "ExecStart={exe} --config {} {}", unit_word(file)?, spec.command);
        }
        None => {
            let _ = writeln!(t, "ExecStart={exe} -P {} {}", spec.profile, spec.command);
        }
    }
    t.push_str("# Exit 3 (a snapshot saved without some of its sources) counts as a failure on purpose.\n");
    let _ = writeln!(t, "TimeoutStartSec={}", timespan(spec.timeout));
    t.push_str("# On SIGTERM cairn stops, removes its lock and exits 130.\n");
    t.push_str("TimeoutStopSec=2min\n");
    t.push_str("Nice=10\nIOSchedulingClass=idle\n");
    match &spec.cache_dir {
        Some(dir) => {
            let dir = unit_word(dir)?;
            let _ = writeln!(t, "Environment=CAIRN_CACHE_DIR={dir}");
        }
        None => t.push_str("CacheDirectory=cairn\nEnvironment=CAIRN_CACHE_DIR=%C/cairn\n"),
    }
    t.push_str("NoNewPrivileges=yes\n");
    if spec.user {
        t.push_str(
            "# A user unit: ProtectSystem= and PrivateTmp= need PrivateUsers= there (systemd.exec(5)); not set.\n",
        );
    } else {
        t.push_str("ProtectSystem=strict\n");
        let mut writable = Vec::new();
        if let Some(repo) = &spec.repository {
            writable.push(unit_word(repo)?);
        }
        // `-`: a directory that does not exist yet is no reason to refuse to start.
        for dir in spec.cache_dir.iter().chain(&spec.writable) {
            writable.push(format!("-{}", unit_word(dir)?));
        }
        if !writable.is_empty() {
            let _ = writeln!(t, "ReadWritePaths={}", writable.join(" "));
        }
        t.push_str("PrivateTmp=yes\n");
        t.push_str("ProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectControlGroups=yes\n");
        t.push_str("RestrictSUIDSGID=yes\nLockPersonality=yes\n");
    }
    Ok(t)
}

/// The text of `cairn-NAME.timer` (systemd.timer(5)): `OnCalendar=`, `Persistent=true` (a run
/// missed while the machine was off happens at the next boot), `RandomizedDelaySec=`.
pub fn timer_unit(spec: &UnitSpec) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{MARKER} for profile {}; `cairn schedule remove` deletes it.", spec.profile);
    t.push_str("[Unit]\n");
    match spec.command.as_str() {
        "run" => {
            let _ = writeln!(t, "Description=Timer of the cairn backup of profile {}", spec.profile);
        }
        c => {
            let _ = writeln!(t, "Description=Timer of the cairn {c} of profile {}", spec.profile);
        }
    }
    t.push_str("\n[Timer]\n");
    let _ = writeln!(t, "OnCalendar={}", spec.on_calendar.replace('%', "%%"));
    t.push_str("Persistent=true\n");
    let _ = writeln!(t, "RandomizedDelaySec={}", timespan(spec.randomized_delay));
    let _ = writeln!(t, "Unit={}", spec.service_name());
    t.push_str("\n[Install]\nWantedBy=timers.target\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            profile: "mail1".into(),
            command: "run".into(),
            writable: Vec::new(),
            exe: "/usr/local/bin/cairn".into(),
            user: false,
            on_calendar: "*-*-* 02:00".into(),
            randomized_delay: Duration::from_secs(600),
            timeout: Duration::from_secs(23 * 3600),
            repository: Some("/srv/backup/repo".into()),
            cache_dir: None,
            network: false,
            config: None,
        }
    }

    /// The `KEY=VALUE` lines of a unit, without comments and section headers.
    fn keys(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains('=') && !l.starts_with('#')).collect()
    }

    #[test]
    fn system_service_has_exactly_these_keys() {
        let text = service_unit(&spec()).unwrap();
        assert!(text.starts_with(MARKER));
        assert_eq!(
            keys(&text),
            [
                "Description=cairn backup of profile mail1",
                "Type=oneshot",
                "ExecStart=/usr/local/bin/cairn -P mail1 run",
                "TimeoutStartSec=23h",
                "TimeoutStopSec=2min",
                "Nice=10",
                "IOSchedulingClass=idle",
                "CacheDirectory=cairn",
                "Environment=CAIRN_CACHE_DIR=%C/cairn",
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ReadWritePaths=/srv/backup/repo",
                "PrivateTmp=yes",
                "ProtectKernelTunables=yes",
                "ProtectKernelModules=yes",
                "ProtectControlGroups=yes",
                "RestrictSUIDSGID=yes",
                "LockPersonality=yes",
            ]
        );
    }

    #[test]
    fn remote_repository_with_own_cache_dir() {
        let s = UnitSpec {
            repository: None,
            cache_dir: Some("/var/cache/my cairn%".into()),
            network: true,
            exe: "/opt/my tools/cairn".into(),
            ..spec()
        };
        let text = service_unit(&s).unwrap();
        let k = keys(&text);
        assert!(k.contains(&"Wants=network-online.target"));
        assert!(k.contains(&"After=network-online.target"));
        assert!(k.contains(&"ExecStart=\"/opt/my tools/cairn\" -P mail1 run"));
        let with_file =
            service_unit(&UnitSpec { config: Some("/root/.config/cairn/mail1.toml".into()), ..spec() }).unwrap();
        assert!(
            keys(&with_file).contains(&"ExecStart=/usr/local/bin/cairn --config /root/.config/cairn/mail1.toml run")
        );
        assert!(k.contains(&"Environment=CAIRN_CACHE_DIR=\"/var/cache/my cairn%%\""));
        assert!(k.contains(&"ReadWritePaths=-\"/var/cache/my cairn%%\""));
        assert!(!text.contains("CacheDirectory="));
    }

    #[test]
    fn user_service_leaves_out_privileged_sandboxing() {
        let text = service_unit(&UnitSpec { user: true, ..spec() }).unwrap();
        let k = keys(&text);
        for absent in ["ProtectSystem", "PrivateTmp", "ReadWritePaths", "ProtectKernel", "RestrictSUIDSGID"] {
            assert!(!k.iter().any(|l| l.starts_with(absent)), "{absent} in a user unit:\n{text}");
        }
        assert!(k.contains(&"Nice=10") && k.contains(&"IOSchedulingClass=idle") && k.contains(&"CacheDirectory=cairn"));
    }

    #[test]
    fn timer_has_exactly_these_keys() {
        let text = timer_unit(&spec());
        assert!(text.starts_with(MARKER));
        assert_eq!(
            keys(&text),
            [
                "Description=Timer of the cairn backup of profile mail1",
                "OnCalendar=*-*-* 02:00",
                "Persistent=true",
                "RandomizedDelaySec=10min",
                "Unit=cairn-mail1.service",
                "WantedBy=timers.target",
            ]
        );
        assert!(text.contains("\n[Timer]\n") && text.contains("\n[Install]\n"));
    }

    #[test]
    fn unsafe_paths_and_names_are_refused() {
        assert!(service_unit(&UnitSpec { exe: "/bin/ca\"irn".into(), ..spec() }).is_err());
        assert!(service_unit(&UnitSpec { repository: Some("/srv/$HOME".into()), ..spec() }).is_err());
        for bad in ["", "-x", ".x", "a b", "a/b", "a%b", "ü"] {
            assert!(check_profile_name(bad).is_err(), "{bad:?}");
        }
        for good in ["mail1", "db_2.prod", "a-b"] {
            check_profile_name(good).unwrap();
        }
    }

    #[test]
    fn timespans() {
        let t = |s| timespan(Duration::from_secs(s));
        assert_eq!([t(0), t(45), t(600), t(7200), t(86400), t(90)], ["0", "45s", "10min", "2h", "1d", "90s"]);
    }
}
