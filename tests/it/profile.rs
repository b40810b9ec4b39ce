//! Integration tests of profiles (`-P NAME`, `--config FILE`): where they are found, the
//! precedence flag > environment > profile > default on real commands against a local
//! repository, and the errors of a malformed profile (file, line and key, before anything
//! touches the repository).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::*;

/// A home directory for profile lookups: `HOME` and `XDG_CONFIG_HOME` point into it.
struct Home {
    tmp: Tmp,
}

impl Home {
    fn new() -> Home {
        let tmp = Tmp::new();
        fs::create_dir_all(tmp.join("home")).expect("mkdir home");
        fs::create_dir_all(tmp.join("xdg")).expect("mkdir xdg");
        Home { tmp }
    }

    /// A cairn run with this home, no repository or password in the environment.
    fn cmd(&self) -> Cmd {
        cairn().env("HOME", self.tmp.join("home")).env("XDG_CONFIG_HOME", self.tmp.join("xdg"))
    }

    /// Write profile `name` under `dir` (`xdg` or `home`) and return its path.
    fn write(&self, dir: &str, name: &str, text: &str) -> PathBuf {
        let d = match dir {
            "xdg" => self.tmp.join("xdg/cairn"),
            _ => self.tmp.join("home/.config/cairn"),
        };
        fs::create_dir_all(&d).expect("mkdir profile dir");
        let f = d.join(format!("{name}.toml"));
        write(&f, text);
        f
    }
}

/// The machine's host name, as backup records it by default.
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").expect("read the host name").trim().to_string()
}

/// A source tree with two files.
fn source(tmp: &Tmp) -> PathBuf {
    let src = tmp.join("src");
    write(src.join("a.txt"), "alpha");
    write(src.join("b.tmp"), "beta");
    src
}

/// The newest snapshot of `repo` (`snapshots --json` lists them oldest first).
fn latest(repo: &Repo) -> serde_json::Value {
    let snaps = repo.snapshots(Vec::<&str>::new());
    snaps.last().cloned().expect("a snapshot")
}

fn tags(s: &serde_json::Value) -> Vec<String> {
    s["tags"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[test]
fn precedence_flag_environment_profile_default() {
    let home = Home::new();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let a = Repo::init();
    let b = Repo::init();
    let profile = format!(
        "[repository]\nrepo = {:?}\n\n[backup]\nhost = \"from-profile\"\ntags = [\"p1\", \"p2\"]\npaths = [{:?}]\n",
        a.path.display().to_string(),
        src.display().to_string()
    );
    home.write("home", "night", &profile);

    // Profile over default: the profile's repository, host, tags and paths.
    home.cmd().password(PASSWORD).args(["-P", "night", "backup", "-q"]).run().ok();
    let s = latest(&a);
    assert_eq!(s["hostname"], "from-profile", "{s}");
    assert_eq!(tags(&s), ["p1", "p2"]);
    assert_eq!(s["paths"][0], src.display().to_string());

    // Flags over the profile; a list flag replaces the profile's list.
    home.cmd().password(PASSWORD).args(["-P", "night", "backup", "-q", "--host", "flag", "--tag", "t"]).run().ok();
    let s = latest(&a);
    assert_eq!(s["hostname"], "flag");
    assert_eq!(tags(&s), ["t"]);

    // Environment over the profile: CAIRN_REPOSITORY names the other repository.
    home.cmd().password(PASSWORD).env("CAIRN_REPOSITORY", &b.path).args(["-P", "night", "backup", "-q"]).run().ok();
    assert_eq!(b.snapshots(Vec::<&str>::new()).len(), 1, "the environment's repository got the snapshot");
    assert_eq!(a.snapshots(Vec::<&str>::new()).len(), 2);

    // Flag over environment.
    home.cmd()
        .password(PASSWORD)
        .env("CAIRN_REPOSITORY", &b.path)
        .arg("-r")
        .arg(&a.path)
        .args(["-P", "night", "backup", "-q"])
        .run()
        .ok();
    assert_eq!(a.snapshots(Vec::<&str>::new()).len(), 3);
    assert_eq!(b.snapshots(Vec::<&str>::new()).len(), 1);

    // The profile given by CAIRN_PROFILE; what it does not say keeps its default (the host).
    let bare = format!("[repository]\nrepo = {:?}\n", a.path.display().to_string());
    home.write("home", "bare", &bare);
    home.cmd().password(PASSWORD).env("CAIRN_PROFILE", "bare").args(["backup", "-q"]).arg(&src).run().ok();
    assert_eq!(latest(&a)["hostname"], hostname());
}

#[test]
fn profile_backup_paths_excludes_and_forget_policy() {
    let home = Home::new();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let other = tmp.join("other");
    write(other.join("c.txt"), "gamma");
    let repo = Repo::init();
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let profile = format!(
        "[repository]\nrepo = {repo:?}\npassword-file = {pw:?}\n\n[backup]\npaths = [{src:?}, {other:?}]\nexclude = [\"*.tmp\"]\none-file-system = true\n\n[forget]\nkeep-last = 1\n",
        repo = repo.path.display().to_string(),
        pw = pw.display().to_string(),
        src = src.display().to_string(),
        other = other.display().to_string(),
    );
    let file = tmp.join("mail1.toml");
    write(&file, &profile);

    for _ in 0..3 {
        home.cmd().arg("--config").arg(&file).args(["backup", "-q"]).run().ok();
    }
    let ls = home.cmd().arg("--config").arg(&file).args(["ls", "latest"]).run().ok().stdout;
    assert!(ls.contains("a.txt") && ls.contains("c.txt"), "{ls}");
    assert!(!ls.contains("b.tmp"), "the profile's exclude applies: {ls}");
    let s = latest(&repo);
    assert_eq!(s["paths"].as_array().map(Vec::len), Some(2), "{s}");

    // forget takes the profile's policy.
    home.cmd().arg("--config").arg(&file).args(["forget", "-q"]).run().ok();
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 1);
}

#[test]
fn search_order_xdg_then_home_then_error_listing_the_places() {
    let home = Home::new();
    let repo = Repo::init();
    let r = repo.path.display().to_string();
    let x = home.write("xdg", "p", &format!("[repository]\nrepo = {r:?}\n[backup]\nhost = \"xdg\"\n"));
    home.write("home", "p", &format!("[repository]\nrepo = {r:?}\n[backup]\nhost = \"home\"\n"));
    let tmp = Tmp::new();
    let src = source(&tmp);

    home.cmd().password(PASSWORD).args(["-P", "p", "backup", "-q"]).arg(&src).run().ok();
    assert_eq!(latest(&repo)["hostname"], "xdg");
    fs::remove_file(&x).expect("remove the XDG profile");
    home.cmd().password(PASSWORD).args(["-P", "p", "backup", "-q"]).arg(&src).run().ok();
    assert_eq!(latest(&repo)["hostname"], "home");

    let out = home.cmd().password(PASSWORD).args(["-P", "nowhere", "snapshots"]).run().code(1);
    for place in [home.tmp.join("xdg/cairn/nowhere.toml"), home.tmp.join("home/.config/cairn/nowhere.toml")] {
        assert!(out.stderr.contains(&place.display().to_string()), "{}", out.stderr);
    }
    assert!(out.stderr.contains("/etc/cairn/nowhere.toml"), "{}", out.stderr);
}

/// Run `backup` under the profile `text` (written to `<tmp>/bad.toml`) and return stderr;
/// the command must exit 1 and leave the repository exactly as it was.
fn rejected(repo: &Repo, tmp: &Tmp, text: &str) -> (PathBuf, String) {
    let file = tmp.join("bad.toml");
    write(&file, text);
    let src = source(tmp);
    let before = raw_state(&repo.path);
    let out = cairn().password(PASSWORD).arg("--config").arg(&file).args(["backup"]).arg(&src).run().code(1);
    assert_eq!(raw_state(&repo.path), before, "the repository was touched: {}", out.stderr);
    (file, out.stderr)
}

#[test]
fn malformed_profiles_fail_with_file_line_and_key_before_anything_runs() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let r = repo.path.display().to_string();

    let (f, err) = rejected(&repo, &tmp, &format!("[repository]\nrepo = {r:?}\n\n[backup]\nhots = \"x\"\n"));
    assert!(err.contains(&format!("{}:5:", f.display())) && err.contains("hots"), "{err}");

    let (f, err) = rejected(&repo, &tmp, &format!("[repository]\nrepo = {r:?}\n[forget]\nkeep-daily = true\n"));
    assert!(err.contains(&format!("{}:4:", f.display())) && err.contains("keep-daily"), "{err}");

    let (f, err) = rejected(&repo, &tmp, "[backup]\nhost = \"h\"\n");
    assert!(err.contains(&f.display().to_string()) && err.contains("[repository] repo"), "{err}");

    let env = tmp.join("aws.env");
    write(&env, "AWS_SECRET_ACCESS_KEY=s3cr3t\n");
    fs::set_permissions(&env, fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = format!("[repository]\nrepo = {r:?}\nenvironment-file = {:?}\n", env.display().to_string());
    let (f, err) = rejected(&repo, &tmp, &text);
    assert!(err.contains(&format!("{}:3: [repository] environment-file", f.display())), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("s3cr3t"), "the secret is not printed: {err}");
    // Mode 0600 but someone else's file: that user could put anything in this process's
    // environment. (The suite runs as root, as .ci/test does, to give the file away.)
    fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&env, Some(65534), None).expect("chown (the suite runs as root)");
    let (_, err) = rejected(&repo, &tmp, &text);
    assert!(err.contains("belongs to user id 65534"), "{err}");

    // A profile that group or others may change: it names the commands cairn runs.
    let f = tmp.join("shared.toml");
    write(&f, format!("[repository]\nrepo = {r:?}\n"));
    fs::set_permissions(&f, fs::Permissions::from_mode(0o664)).expect("chmod");
    let out = cairn().arg("--config").arg(&f).arg("snapshots").run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("has mode 0664 (chmod go-w)"), "{}", out.stderr);

    // A zero timeout would kill every dump at once.
    let text = format!(
        "[repository]\nrepo = {r:?}\n[[backup.command]]\npath = \"/db.dump\"\nrun = [\"true\"]\ntimeout = \"0s\"\n"
    );
    let (f, err) = rejected(&repo, &tmp, &text);
    assert!(err.contains(&f.display().to_string()) && err.contains("longer than zero"), "{err}");
    let out =
        repo.cmd().args(["backup", "--command", "/x=true", "--command-timeout", "0"]).arg(&tmp.path).run().code(1);
    assert!(out.stderr.contains("longer than zero"), "{}", out.stderr);

    // A value the command itself rejects names the profile's line too.
    let (f, err) = rejected(&repo, &tmp, &format!("[repository]\nrepo = {r:?}\n[backup]\ncompression = \"bogus\"\n"));
    assert!(err.contains(&format!("{}:4: [backup] compression", f.display())), "{err}");
}

#[test]
fn environment_file_sets_what_the_environment_does_not() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let env = tmp.join("cairn.env");
    write(&env, format!("# the repository's password\nexport CAIRN_PASSWORD=\"{PASSWORD}\"\n\nCAIRN_UNUSED='x'\n"));
    fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).expect("chmod");
    let file = tmp.join("p.toml");
    let text = format!(
        "[repository]\nrepo = {:?}\nenvironment-file = {:?}\n",
        repo.path.display().to_string(),
        env.display().to_string()
    );
    write(&file, text);
    cairn().arg("--config").arg(&file).args(["backup", "-q"]).arg(&src).run().ok();
    // A variable already set wins over the file.
    let out = cairn().env("CAIRN_PASSWORD", "wrong").arg("--config").arg(&file).arg("snapshots").run();
    assert_eq!(out.code, 12, "{}", out.stderr);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 1);
}

#[test]
fn config_shows_effective_settings_with_sources_and_no_secrets() {
    let tmp = Tmp::new();
    let file = tmp.join("m.toml");
    write(
        &file,
        "[repository]\nrepo = \"/srv/repo\"\npassword-command = \"echo hunter2\"\noptions = { \"s3.secret-access-key\" = \"hunter3\", \"s3.region\" = \"eu\" }\n[forget]\nkeep-daily = 7\n",
    );
    let out = cairn().arg("--config").arg(&file).arg("--no-cache").arg("--json").arg("config").run().ok();
    let v = out.json();
    assert_eq!(v["profile"], "m");
    assert_eq!(v["repository"]["repo"]["value"], "/srv/repo");
    assert_eq!(v["repository"]["repo"]["source"], "profile");
    assert_eq!(v["repository"]["no-cache"]["source"], "flag");
    assert_eq!(v["repository"]["limit-upload"]["source"], "default");
    assert_eq!(v["sections"]["forget"]["keep-daily"], 7);
    assert!(!out.stdout.contains("hunter2") && !out.stdout.contains("hunter3"), "{}", out.stdout);
    assert!(out.stdout.contains("s3.region=eu"), "{}", out.stdout);

    // -o merges with the profile's options key by key, before or after the command's name.
    for args in [["-o", "s3.region=us", "config"], ["config", "-o", "s3.region=us"]] {
        let out = cairn().arg("--config").arg(&file).arg("--json").args(args).run().ok();
        let v = out.json();
        assert_eq!(v["repository"]["options"]["source"], "flag, profile", "{}", out.stdout);
        let shown = v["repository"]["options"]["value"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            shown,
            [serde_json::json!("s3.region=us"), serde_json::json!("s3.secret-access-key=***")],
            "{}",
            out.stdout
        );
    }

    let help = cairn().args(["help", "config"]).run().ok().stdout;
    for key in ["environment-file", "keep-within-monthly", "one-file-system", "read-data-subset", "after-failure"] {
        assert!(help.contains(key), "`cairn help config` documents {key}");
    }
}

/// `cairn run` with a profile whose hooks write what they see into `log`.
fn run_profile(
    repo: &Repo,
    pw: &std::path::Path,
    src: &std::path::Path,
    log: &std::path::Path,
    before: &str,
) -> String {
    let hook = |stage: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo {stage} snap=$CAIRN_SNAPSHOT_ID code=$CAIRN_EXIT_CODE profile=$CAIRN_PROFILE error=$CAIRN_ERROR config=$CAIRN_CONFIG >> {}\"]",
            log.display()
        )
    };
    format!(
        "[repository]\nrepo = {repo:?}\npassword-file = {pw:?}\n\n[backup]\npaths = [{src:?}]\n\n[forget]\nkeep-last = 1\nprune = true\n\n[hooks]\nbefore = [{before}]\nafter-success = [{}]\nafter-failure = [{}]\nfinally = [{}]\n",
        hook("success"),
        hook("failure"),
        hook("finally"),
        repo = repo.path.display().to_string(),
        pw = pw.display().to_string(),
        src = src.display().to_string(),
    )
}

#[test]
fn run_is_the_night_hooks_backup_forget_and_the_worst_exit_code() {
    let home = Home::new();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let repo = Repo::init();
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let log = tmp.join("hooks.log");

    // A before hook that fails: no backup, exit 1, the failure and finally hooks run and see why.
    home.write("xdg", "night", &run_profile(&repo, &pw, &src, &log, "[\"false\"]"));
    let o = home.cmd().args(["--json", "-P", "night", "run"]).run();
    assert_eq!(o.code, 1, "{}", o.stderr);
    let report: serde_json::Value = serde_json::from_str(&o.stdout).expect("one JSON document");
    assert_eq!(report["exit_code"], 1);
    assert!(report["steps"].as_array().is_some_and(|s| !s.iter().any(|s| s["step"] == "backup")), "{report}");
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());
    let text = fs::read_to_string(&log).expect("hooks ran");
    assert!(text.contains("failure snap= code=1 profile=night error=hook before"), "{text}");
    assert!(text.contains("finally"), "{text}");
    assert!(!text.contains("success"), "{text}");

    // A good night, twice: a snapshot each time, forget keeps the last, the hooks see its id.
    fs::remove_file(&log).expect("rm log");
    home.write("xdg", "night", &run_profile(&repo, &pw, &src, &log, "[\"true\"]"));
    for _ in 0..2 {
        let o = home.cmd().args(["--json", "-P", "night", "run"]).run();
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1, "forget kept the last one");
    let id = snaps[0]["id"].as_str().expect("id").to_string();
    let text = fs::read_to_string(&log).expect("hooks ran");
    assert!(text.contains(&format!("success snap={id} code=0 profile=night error= config=/")), "{text}");
    assert!(text.contains("/cairn/night.toml\n"), "hooks get the profile's file: {text}");
    assert!(!text.contains("failure"), "{text}");
}

#[test]
fn run_names_the_failed_dump_and_paths_on_the_command_line_run_no_dump() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let log = tmp.join("hooks.log");
    let marker = tmp.join("dump-ran");
    let file = tmp.join("night.toml");
    write(
        &file,
        format!(
            "[repository]\nrepo = {:?}\npassword-file = {:?}\n[backup]\npaths = [{:?}]\n\n[[backup.command]]\npath = \"/db/good.dump\"\nrun = [\"sh\", \"-c\", \"touch {}; echo rows\"]\n\n[[backup.command]]\npath = \"/db/bad.dump\"\nrun = [\"sh\", \"-c\", \"echo half; exit 4\"]\n\n[hooks]\nafter-failure = [[\"sh\", \"-c\", \"echo \\\"$CAIRN_EXIT_CODE $CAIRN_ERROR\\\" >> {}\"]]\n",
            repo.path.display().to_string(),
            pw.display().to_string(),
            src.display().to_string(),
            marker.display(),
            log.display(),
        ),
    );
    // The night: the failed dump is named on stdout, in the failure hook's CAIRN_ERROR and in
    // the --json step.
    let o = cairn().arg("--config").arg(&file).arg("run").run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stdout.contains("backup: /db/bad.dump failed: "), "{}", o.stdout);
    assert!(!o.stdout.contains("/db/good.dump"), "only what failed is listed: {}", o.stdout);
    let hook = fs::read_to_string(&log).expect("the failure hook ran");
    assert!(hook.starts_with("3 /db/bad.dump failed: ") && hook.contains("exit"), "{hook}");
    let o = cairn().arg("--config").arg(&file).args(["--json", "run"]).run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    let report: serde_json::Value = serde_json::from_str(&o.stdout).expect("one JSON document");
    let backup = report["steps"].as_array().and_then(|s| s.iter().find(|s| s["step"] == "backup")).cloned();
    let backup = backup.expect("a backup step");
    let failed: Vec<&str> = backup["components"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["status"] == "failed").filter_map(|c| c["path"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(failed, ["/db/bad.dump"], "{report}");
    assert!(backup["error"].as_str().is_some_and(|e| e.contains("/db/bad.dump")), "{report}");

    // `--path P` passes only snapshots in which P succeeded: never the failed dump.
    let dump = |path: &str, filter: bool| {
        let mut c = cairn().arg("--config").arg(&file).args(["dump", "latest", path]);
        if filter {
            c = c.args(["--path", path]);
        }
        c.run()
    };
    let o = dump("/db/good.dump", true);
    assert_eq!((o.code, o.stdout.as_str()), (0, "rows\n"), "{}", o.stderr);
    let o = dump("/db/bad.dump", false);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("/db/bad.dump failed in that snapshot"), "{}", o.stderr);
    let o = dump("/db/bad.dump", true);
    assert_ne!(o.code, 0, "a failed dump was found: {}", o.stdout);
    assert!(o.stdout.is_empty(), "{}", o.stdout);

    // An ad-hoc backup of another path with the same profile runs none of its dumps.
    fs::remove_file(&marker).expect("the dump ran");
    let other = tmp.join("other");
    write(other.join("f"), "x");
    let o = cairn().arg("--config").arg(&file).args(["--json", "backup"]).arg(&other).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!marker.exists(), "a dump ran for a backup of {}", other.display());
    assert!(o.json().get("components").is_none(), "{}", o.stdout);
}

#[test]
fn an_interrupted_run_passes_the_signal_on_and_still_runs_the_failure_hooks() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let (pidfile, log) = (tmp.join("hook.pid"), tmp.join("hooks.log"));
    let file = tmp.join("night.toml");
    write(
        &file,
        format!(
            "[repository]\nrepo = {:?}\npassword-file = {:?}\n[backup]\npaths = [{:?}]\n[hooks]\nbefore = [[\"sh\", \"-c\", \"sleep 600 & echo $! > {}; wait\"]]\nafter-failure = [[\"sh\", \"-c\", \"echo failure $CAIRN_EXIT_CODE >> {}\"]]\n",
            repo.path.display().to_string(),
            pw.display().to_string(),
            src.display().to_string(),
            pidfile.display(),
            log.display(),
        ),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(&file)
        .args(["--json", "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cairn run");
    // Once the hook runs, SIGTERM the run (as an operator's kill or cron's end would).
    while !pidfile.exists() || fs::read_to_string(&pidfile).map_or(true, |s| s.trim().is_empty()) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let hook_pid: i32 = fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("a pid");
    let run_pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(run_pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    // The hook got the signal (it did not sleep its 600 s to the end), no backup ran, and the
    // failure hook ran to its end.
    // Running, not a zombie waiting for its new parent to reap it.
    let alive = fs::read_to_string(format!("/proc/{hook_pid}/stat"))
        .is_ok_and(|st| st.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')));
    assert!(!alive, "the hook's process still runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    let before = steps.iter().find(|s| s["step"] == "hook before").expect("the before hook");
    assert!(before["error"].as_str().is_some_and(|e| e.contains("signal")), "{report}");
    assert!(!steps.iter().any(|s| s["step"] == "backup"), "{report}");
    assert_eq!(fs::read_to_string(&log).expect("the failure hook ran").trim(), "failure 130");
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());
}

#[test]
fn a_hook_that_leaves_a_process_holding_its_stderr_does_not_hang_the_run() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = source(&tmp);
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let pidfile = tmp.join("daemon.pid");
    let file = tmp.join("night.toml");
    // A process the hook leaves outside its process group (setsid) holding its standard error
    // (a pipe to the run); its standard output goes elsewhere.
    write(
        &file,
        format!(
            "[repository]\nrepo = {:?}\npassword-file = {:?}\n[backup]\npaths = [{:?}]\n[hooks]\nafter-success = [[\"sh\", \"-c\", \"setsid sleep 300 >/dev/null & echo $! > {}\"]]\n",
            repo.path.display().to_string(),
            pw.display().to_string(),
            src.display().to_string(),
            pidfile.display(),
        ),
    );
    let o = cairn().arg("--config").arg(&file).arg("run").run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let pid: i32 = fs::read_to_string(&pidfile).expect("the hook ran").trim().parse().expect("a pid");
    let daemon = nix::unistd::Pid::from_raw(pid);
    // The run ended while the process it left still ran (it did not wait for its end).
    let still = nix::sys::signal::kill(daemon, None).is_ok();
    let _ = nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGKILL);
    assert!(still, "the run waited for the hook's background process to end");
}
