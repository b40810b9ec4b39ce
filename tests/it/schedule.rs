//! `cairn schedule`, `generate` and `version` against the real tools: systemd-analyze, bash, man.

use std::process::Command;

use crate::common::{cairn, Cmd};

/// Profiles `mail1`, `other` and `x` in a private `XDG_CONFIG_HOME` (schedule names its units
/// after the profile); `mail1` has a `[schedule]`.
struct Profiles {
    dir: tempfile::TempDir,
}

impl Profiles {
    fn new() -> Profiles {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cairn");
        std::fs::create_dir_all(&p).unwrap();
        let mail1 = "[repository]\nrepo = \"/srv/backup/repo\"\n\n[schedule]\nrun = \"*-*-* 02:30\"\ndrill = \"*-*-01 05:00\"\n\n[monitoring]\nmetrics-file = \"/var/lib/prometheus/node-exporter/cairn-mail1.prom\"\n\n[drill]\ntarget = \"/srv/drill\"\n";
        std::fs::write(p.join("mail1.toml"), mail1).unwrap();
        for name in ["other", "x"] {
            std::fs::write(p.join(format!("{name}.toml")), "[repository]\nrepo = \"/srv/r\"\n").unwrap();
        }
        Profiles { dir }
    }

    /// `cairn -P NAME` with these profiles.
    fn cairn(&self, name: &str) -> Cmd {
        cairn().env("XDG_CONFIG_HOME", self.dir.path()).args(["-P", name])
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A program the test needs, or a failure saying what .ci/test must install.
fn need(program: &str, package: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "{program} is missing: .ci/test must install the Debian package {package}");
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let profiles = Profiles::new();
    need("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let o = profiles
        .cairn("mail1")
        .args(["-r", "/srv/backup/repo", "schedule", "install", "--unit-dir"])
        .arg(&units)
        .args(["--on-calendar", "*-*-* 02:00"])
        .run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    let service = std::fs::read_to_string(units.join("cairn-mail1.service")).unwrap();
    assert!(service.contains("ProtectSystem=strict") && service.contains("ReadWritePaths=/srv/backup/repo"));
    // A system service has no HOME: a profile outside /etc/cairn is named by its path.
    let file = profiles.dir.path().join("cairn/mail1.toml");
    assert!(service.contains(&format!("--config {} run", file.display())), "{service}");
    // A repository that is not the profile's would not reach the service: refused.
    let o = profiles.cairn("mail1").args(["-r", "/elsewhere", "schedule", "install", "--unit-dir"]).arg(&units).run();
    assert_eq!(o.code, 1, "{}", o.stderr.clone());
    assert!(o.stderr.clone().contains("not the profile's"), "{}", o.stderr.clone());
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "cairn-mail1.service", "cairn-mail1.timer"])
        .current_dir(&units)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v.stderr));
    let warnings = text(&v.stderr);
    assert!(!warnings.contains("cairn-mail1"), "systemd-analyze warns about our units:\n{warnings}");
    // The monthly drill: its own units beside the night's, on the profile's [schedule] drill.
    let o = profiles.cairn("mail1").args(["schedule", "install", "drill", "--unit-dir"]).arg(&units).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    let drill = std::fs::read_to_string(units.join("cairn-mail1-drill.service")).unwrap();
    assert!(drill.contains(&format!("--config {} drill\n", file.display())), "{drill}");
    // The service may write the metrics file's directory and the drill's target, nothing else.
    assert!(
        drill.contains("ReadWritePaths=/srv/backup/repo -/var/lib/prometheus/node-exporter -/srv/drill\n"),
        "{drill}"
    );
    let timer = std::fs::read_to_string(units.join("cairn-mail1-drill.timer")).unwrap();
    assert!(
        timer.contains("OnCalendar=*-*-01 05:00\n") && timer.contains("Unit=cairn-mail1-drill.service\n"),
        "{timer}"
    );
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "cairn-mail1-drill.service", "cairn-mail1-drill.timer"])
        .current_dir(&units)
        .output()
        .unwrap();
    assert!(v.status.success() && !text(&v.stderr).contains("cairn-mail1"), "{}", text(&v.stderr));
    let o = profiles.cairn("mail1").args(["schedule", "remove", "drill", "--unit-dir"]).arg(&units).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    assert!(!units.join("cairn-mail1-drill.timer").exists() && units.join("cairn-mail1.timer").exists());
    // A weekly check: the default calendar of `check`.
    let o = profiles.cairn("mail1").args(["schedule", "install", "check", "--unit-dir"]).arg(&units).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    let timer = std::fs::read_to_string(units.join("cairn-mail1-check.timer")).unwrap();
    assert!(timer.contains("OnCalendar=weekly\n"), "{timer}");
    // Not written by cairn: refused without --force.
    std::fs::write(units.join("cairn-other.timer"), "[Timer]\n").unwrap();
    let o = profiles.cairn("other").args(["-r", "/srv/r", "schedule", "install", "--unit-dir"]).arg(&units).run();
    assert_eq!(o.code, 1, "{}", o.stderr.clone());
    assert!(o.stderr.clone().contains("not written by cairn"));
    // A bad calendar spec is refused.
    let o = profiles
        .cairn("x")
        .args(["-r", "/srv/r", "schedule", "install", "--on-calendar", "nonsense o'clock", "--unit-dir"])
        .arg(&units)
        .run();
    assert_eq!(o.code, 1);
    // status and remove.
    let o = profiles.cairn("mail1").args(["--json", "schedule", "status", "--unit-dir"]).arg(&units).run();
    let s: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(s["installed"], true);
    let o = profiles.cairn("mail1").args(["schedule", "remove", "--unit-dir"]).arg(&units).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    assert!(!units.join("cairn-mail1.timer").exists() && !units.join("cairn-mail1.service").exists());
}

#[test]
fn cron_line_and_refusal() {
    let profiles = Profiles::new();
    // The profile's [schedule] run = "*-*-* 02:30" is the default of --on-calendar.
    let o = profiles.cairn("mail1").args(["schedule", "install", "--cron"]).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    let line = o.stdout.clone();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..5], ["30", "2", "*", "*", "*"]);
    // cron's environment has no XDG_CONFIG_HOME: a profile outside /etc/cairn is named by path.
    let file = profiles.dir.path().join("cairn/mail1.toml");
    let by_path = file.display().to_string();
    assert!(fields[5].starts_with('/') && fields[6..] == ["--config", by_path.as_str(), "run"], "{line}");
    // A profile given by --config works the same way, named by its file's stem.
    let o = cairn().arg("--config").arg(&file).args(["schedule", "install", "--cron"]).run();
    assert!(o.code == 0 && o.stdout.contains(&format!("--config {by_path} run")), "{}{}", o.stdout, o.stderr);
    let units = tempfile::tempdir().unwrap();
    let o = cairn().arg("--config").arg(&file).args(["schedule", "install", "--unit-dir"]).arg(units.path()).run();
    assert!(o.code == 0, "{}", o.stderr);
    let service = std::fs::read_to_string(units.path().join("cairn-mail1.service")).unwrap();
    assert!(service.contains(&format!("--config {by_path} run")), "{service}");
    // Another profile of the same name does not replace those units silently.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("mail1.toml");
    std::fs::write(&other, "[repository]\nrepo = \"/srv/backup/repo\"\n").unwrap();
    let o = cairn().arg("--config").arg(&other).args(["schedule", "install", "--unit-dir"]).arg(units.path()).run();
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("runs another profile"), "{}", o.stderr);
    let again = std::fs::read_to_string(units.path().join("cairn-mail1.service")).unwrap();
    assert_eq!(again, service);
    // The drill's line (cron cannot say the profile's "*-*-01 05:00"; monthly it can).
    let o = profiles.cairn("mail1").args(["schedule", "install", "drill", "--cron"]).run();
    assert_eq!(o.code, 1, "{}", o.stderr.clone());
    let o = profiles.cairn("mail1").args(["schedule", "install", "drill", "--cron", "--on-calendar", "monthly"]).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    let fields: Vec<String> = o.stdout.split_whitespace().map(str::to_string).collect();
    assert_eq!(&fields[..5], ["0", "0", "1", "*", "*"], "{}", o.stdout);
    assert_eq!(fields.last().map(String::as_str), Some("drill"), "{}", o.stdout);
    let o = profiles.cairn("mail1").args(["schedule", "install", "--cron", "--on-calendar", "*-*-* 02:00:30"]).run();
    assert_eq!(o.code, 1);
    assert!(o.stderr.clone().contains("cron cannot express"));
}

#[test]
fn completions_and_man_pages() {
    need("man", "man-db");
    need("zsh", "zsh");
    need("fish", "fish");
    let dir = tempfile::tempdir().unwrap();
    // Each shell parses its script without running it.
    for (shell, check) in [("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])] {
        let o = cairn().args(["generate", "--completions", shell]).run();
        assert!(o.code == 0, "{}", o.stderr);
        assert!(o.stdout.contains("backup") && o.stdout.contains("exclude-file"), "{shell}: {}", o.stdout);
        let script = dir.path().join(format!("cairn.{shell}"));
        std::fs::write(&script, o.stdout.as_bytes()).unwrap();
        let n = Command::new(check[0]).arg(check[1]).arg(&script).output().unwrap();
        assert!(n.status.success(), "{shell}: {}", text(&n.stderr));
    }
    let man = dir.path().join("man1");
    let o = cairn().args(["generate", "--man"]).arg(&man).run();
    assert!(o.code == 0, "{}", o.stderr.clone());
    for page in ["cairn.1", "cairn-backup.1", "cairn-schedule-install.1"] {
        let r = Command::new("man")
            .arg("-l")
            .arg(man.join(page))
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        assert!(r.status.success() && r.stderr.is_empty(), "{page}: {}", text(&r.stderr));
        assert!(!r.stdout.is_empty());
    }
}

#[test]
fn version_json_has_the_keys() {
    let o = cairn().args(["version", "--json"]).run();
    assert!(o.code == 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["repository_format"], 1);
    assert_eq!(v["tree_versions"], serde_json::json!([1, 2]));
    assert_eq!(v["snapshot_versions"], serde_json::json!([1, 2, 3]));
    for k in ["version", "features", "target"] {
        assert!(!v[k].is_null(), "{k}");
    }
}
