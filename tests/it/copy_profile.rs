//! Copy targets in profiles (issue 16, "Done when" 4): a profile `mail1` with a local
//! repository, a pg_dump of a pgbench database as a `[[backup.command]]` and `[copy] to =
//! ["offsite"]`; a profile `offsite` with a repository on the test S3 server whose credentials
//! and password are only in offsite's environment file (mode 0600), never in the test's
//! environment; each with its own `[forget]`. `cairn -P mail1 run`, night after night, leaves
//! the same snapshots (same original id, same pg_dump bytes) in both, each repository thinned
//! by its own policy; an unreachable target leaves the local night done and the run exits 3,
//! naming the step in its report and its metrics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::db::{run_ok, Postgres};
use crate::common::s3::{s3_cmd, S3Server, ACCESS_KEY, SECRET_KEY};
use crate::common::*;

/// The database pgbench fills.
const BENCH: &str = "bench";

/// The offsite repository's password (not the local one's: the target's own must be used).
const OFFSITE_PASSWORD: &str = "offsite password, not the local one";

/// Variables of the test's own environment that must not reach cairn: the S3 harness puts the
/// test credentials into the test process's environment.
const AWS_ENV: [&str; 5] =
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"];

/// Two profiles in a private `XDG_CONFIG_HOME`: `mail1` (local repository, a source tree, a
/// pg_dump) copying to `offsite` (S3).
struct Site {
    tmp: Tmp,
    local: Repo,
    src: PathBuf,
    s3: S3Server,
    /// The metrics file of mail1's `[monitoring]`.
    prom: PathBuf,
}

impl Site {
    /// The repositories and profiles: mail1 keeps the last `keep_local`, offsite the last
    /// `keep_offsite`; `dump` is the pg_dump argv; `offsite_options` go into offsite's
    /// `[repository] options`.
    fn new(dump: &[String], keep_local: u32, keep_offsite: u32, offsite_options: &str) -> Site {
        let tmp = Tmp::new();
        let local = Repo::init();
        let src = tmp.join("vmail");
        for i in 0..20 {
            write(src.join(format!("cur/{i}.mail1")), random_bytes(i, 20_000));
        }
        let s3 = S3Server::start();
        s3_cmd(&s3.url("offsite"), &tmp.join("init-cache")).password(OFFSITE_PASSWORD).arg("init").run().ok();
        let xdg = tmp.join("xdg/cairn");
        fs::create_dir_all(&xdg).unwrap();
        fs::create_dir_all(tmp.join("home")).unwrap();
        write(tmp.join("password"), format!("{PASSWORD}\n"));
        fs::set_permissions(tmp.join("password"), fs::Permissions::from_mode(0o600)).unwrap();
        // The source's own environment file: S3 credentials that are wrong for the target. The
        // copy and the target's forget must use offsite's, whatever the source's say.
        let mail1_env = tmp.join("mail1.env");
        write(&mail1_env, "AWS_ACCESS_KEY_ID=mail1-key-wrong-for-offsite\nAWS_SECRET_ACCESS_KEY=mail1-secret\n");
        fs::set_permissions(&mail1_env, fs::Permissions::from_mode(0o600)).unwrap();
        let offsite_env = tmp.join("offsite.env");
        write(
            &offsite_env,
            format!(
                "# offsite's S3 account\nAWS_ACCESS_KEY_ID={ACCESS_KEY}\nexport AWS_SECRET_ACCESS_KEY=\"{SECRET_KEY}\"\nCAIRN_PASSWORD={OFFSITE_PASSWORD}\n"
            ),
        );
        fs::set_permissions(&offsite_env, fs::Permissions::from_mode(0o600)).unwrap();
        let prom = tmp.join("metrics/cairn.prom");
        fs::create_dir_all(prom.parent().unwrap()).unwrap();
        let mail1 = format!(
            "[repository]\nrepo = {:?}\npassword-file = {:?}\nenvironment-file = {:?}\n\n\
             [backup]\nhost = \"mail1\"\npaths = [{:?}]\n\n\
             [[backup.command]]\npath = \"/postgres/maildb.dump\"\nrun = {dump:?}\ntimeout = \"10m\"\n\n\
             [copy]\nto = [\"offsite\"]\n\n\
             [forget]\nkeep-last = {keep_local}\nprune = true\n\n\
             [monitoring]\nmetrics-file = {:?}\n",
            local.path.display().to_string(),
            tmp.join("password").display().to_string(),
            mail1_env.display().to_string(),
            src.display().to_string(),
            prom.display().to_string(),
        );
        write(xdg.join("mail1.toml"), mail1);
        let offsite = format!(
            "[repository]\nrepo = {:?}\nenvironment-file = {:?}\ncache-dir = {:?}\n{offsite_options}\n\n\
             [forget]\nkeep-last = {keep_offsite}\nprune = true\n",
            s3.url("offsite"),
            offsite_env.display().to_string(),
            tmp.join("offsite-cache").display().to_string(),
        );
        write(xdg.join("offsite.toml"), offsite);
        Site { tmp, local, src, s3, prom }
    }

    /// `cairn ARGS` with these profiles, no CAIRN_* and no AWS_* variable of the test's
    /// environment (the S3 credentials are only in offsite's environment file), stdin closed.
    fn cairn(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(args);
        for k in CAIRN_ENV.iter().chain(&AWS_ENV) {
            cmd.env_remove(k);
        }
        cmd.env("XDG_CONFIG_HOME", self.tmp.join("xdg"))
            .env("HOME", self.tmp.join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let o = cmd.output().unwrap_or_else(|e| panic!("cannot run cairn: {e}"));
        let code = o.status.code().unwrap_or_else(|| panic!("cairn {args:?} was killed: {:?}", o.status));
        (code, String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// `cairn -P mail1 --json run`: its report, after checking the exit code is `code`.
    fn night(&self, code: i32) -> serde_json::Value {
        let (c, out, err) = self.cairn(&["-P", "mail1", "--json", "run"]);
        assert_eq!(c, code, "cairn -P mail1 run exited {c}:\n{out}\n{err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("run --json printed no report ({e}):\n{out}\n{err}"))
    }

    /// A cairn invocation on the offsite repository, with the test's credentials and the
    /// offsite password (the test checks what the run left there).
    fn offsite(&self) -> Cmd {
        s3_cmd(&self.s3.url("offsite"), &self.tmp.join("check-cache")).password(OFFSITE_PASSWORD)
    }

    /// The offsite repository's snapshots, oldest first.
    fn offsite_snapshots(&self) -> Vec<serde_json::Value> {
        let o = self.offsite().args(["--json", "snapshots"]).run().ok();
        match o.json() {
            serde_json::Value::Array(a) => a,
            other => panic!("snapshots --json printed {other}"),
        }
    }
}

/// The `(step, exit_code)` pairs of a run report.
fn steps(report: &serde_json::Value) -> Vec<(String, u64)> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {report}"))
        .iter()
        .map(|s| (s["step"].as_str().unwrap_or("?").to_string(), s["exit_code"].as_u64().unwrap_or(999)))
        .collect()
}

/// The bytes of the pg_dump component of the latest snapshot, dumped by `cmd` into `target`.
fn dump_to(cmd: Cmd, target: &Path) -> Vec<u8> {
    let o = cmd
        .args([
            "dump".as_ref(),
            "latest".as_ref(),
            "/postgres/maildb.dump".as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
        ])
        .run();
    assert_eq!(o.code, 0, "{}: {}", o.cmdline, o.stderr);
    fs::read(target).unwrap_or_else(|e| panic!("{}: {e}", target.display()))
}

/// The value of the sample of `name` in metrics `text` whose labels include every one of
/// `with`.
fn sample(text: &str, name: &str, with: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| with.iter().all(|w| l.contains(w)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn nightly_runs_copy_each_snapshot_offsite_and_each_side_keeps_its_own_retention() {
    let pg = Postgres::start();
    pg.pgbench_db(BENCH);
    let site = Site::new(&pg.pg_dump_argv(BENCH), 2, 4, "");
    let mut local_ids = Vec::new();
    for night in 0..5u64 {
        // The day's mail and database changes.
        write(site.src.join(format!("new/{night}.mail1")), random_bytes(100 + night, 30_000));
        let mut bench = pg.client("pgbench");
        bench.args(["-n", "-c", "1", "-t", "20", BENCH]);
        run_ok(&mut bench, "pgbench -t 20");
        let report = site.night(0);
        assert_eq!(steps(&report), all_ok(), "{report}");
        let id = report["steps"][0]["snapshot_id"].as_str().unwrap_or_else(|| panic!("no snapshot id: {report}"));
        local_ids.push(id.to_string());
    }

    // Each side's own retention: the last 2 locally, the last 4 off-site.
    let local = site.local.snapshots(Vec::<&str>::new());
    let local_now: Vec<&str> = local.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(local_now, local_ids[3..].iter().map(String::as_str).collect::<Vec<_>>());
    let offsite = site.offsite_snapshots();
    assert_eq!(offsite.len(), 4, "offsite keeps the last 4: {offsite:?}");
    // Each off-site snapshot is a copy of one night's local snapshot (its `original`, which
    // `snapshots --json` prints once the snapshot `original` field is in: helper fmt's part).
    let originals: Vec<&str> = offsite.iter().map(|s| s["original"].as_str().unwrap_or("(no original)")).collect();
    assert_eq!(originals, local_ids[1..].iter().map(String::as_str).collect::<Vec<_>>(), "{offsite:?}");
    let newest_local = local.last().unwrap();
    let newest_offsite = offsite.last().unwrap();
    for key in ["time", "hostname", "paths"] {
        assert_eq!(newest_offsite[key], newest_local[key], "{key}: {newest_offsite} vs {newest_local}");
    }

    // The same pg_dump bytes from both repositories, and a real dump.
    let from_local = dump_to(site.local.cmd(), &site.tmp.join("local.dump"));
    let from_offsite = dump_to(site.offsite(), &site.tmp.join("offsite.dump"));
    assert!(from_local.starts_with(b"PGDMP"), "not a pg_dump custom-format file");
    assert!(from_local == from_offsite, "the pg_dump differs between the local and the offsite repository");

    // The offsite repository is sound after copies and its own prune.
    site.offsite().args(["check", "--read-data"]).run().ok();
}

#[test]
fn an_unreachable_target_leaves_the_local_night_done_and_the_run_exits_3_naming_the_step() {
    let mut site = Site::new(
        &["sh".to_string(), "-c".to_string(), "echo dump of the night".to_string()],
        2,
        4,
        "options = { retries = \"0\", timeout = \"5\" }",
    );
    site.s3.stop();
    let mut local_ids = Vec::new();
    for night in 0..3u64 {
        write(site.src.join(format!("new/{night}.mail1")), random_bytes(200 + night, 10_000));
        let report = site.night(3);
        assert_eq!(report["exit_code"], 3, "{report}");
        let s = steps(&report);
        let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
        // No forget of a target the copy could not reach.
        assert_eq!(names, ["backup", "copy offsite", "forget"], "{report}");
        assert_eq!(s[0].1, 0, "{report}");
        assert_ne!(s[1].1, 0, "{report}");
        assert_eq!(s[2].1, 0, "{report}");
        let copy = &report["steps"][1];
        assert!(copy["error"].as_str().is_some_and(|e| !e.is_empty()), "the failed copy says why: {report}");
        local_ids.push(report["steps"][0]["snapshot_id"].as_str().unwrap().to_string());
    }
    // The local backups and forget happened: the last 2 nights.
    let local = site.local.snapshots(Vec::<&str>::new());
    let ids: Vec<&str> = local.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, local_ids[1..].iter().map(String::as_str).collect::<Vec<_>>());

    // The text report names the step; the metrics say which step failed.
    let (code, out, err) = site.cairn(&["-P", "mail1", "run"]);
    assert_eq!(code, 3, "{out}\n{err}");
    let line = out.lines().find(|l| l.starts_with("copy offsite")).unwrap_or_else(|| panic!("no copy step:\n{out}"));
    assert!(!line.contains("exit 0"), "{line}");
    assert!(out.contains("run of profile mail1: exit 3"), "{out}");
    let prom = fs::read_to_string(&site.prom).unwrap();
    promtool_accepts(&prom);
    let step = |s: &str| sample(&prom, "cairn_run_step_exit_code", &[&format!("step=\"{s}\""), "profile=\"mail1\""]);
    assert_eq!(step("backup"), Some(0.0), "{prom}");
    assert_eq!(step("forget"), Some(0.0), "{prom}");
    assert!(step("copy offsite").is_some_and(|c| c != 0.0), "{prom}");
    assert_eq!(
        sample(&prom, "cairn_command_exit_code", &["command=\"run\"", "profile=\"mail1\""]),
        Some(3.0),
        "{prom}"
    );

    // Reachable again: the next night copies, and the step's gauge is back to 0.
    site.s3.restart();
    let report = site.night(0);
    assert_eq!(steps(&report), all_ok(), "{report}");
    let prom = fs::read_to_string(&site.prom).unwrap();
    assert_eq!(sample(&prom, "cairn_run_step_exit_code", &["step=\"copy offsite\""]), Some(0.0), "{prom}");
    assert!(!site.offsite_snapshots().is_empty());
}

/// Profiles for the checks that need no server: `mail1` (local repository) copying to the
/// targets `text` describes (name, profile text).
fn profiles(targets: &[(&str, String)], to: &str) -> (Tmp, impl Fn(&[&str]) -> Output) {
    let tmp = Tmp::new();
    let xdg = tmp.join("xdg/cairn");
    fs::create_dir_all(&xdg).unwrap();
    let mail1 = format!(
        "[repository]\nrepo = {:?}\npassword-file = \"/etc/cairn/pw\"\n\n[backup]\nhost = \"mail1\"\n\n[copy]\nto = {to}\ntags = [\"nightly\"]\n",
        tmp.join("repo").display().to_string()
    );
    write(xdg.join("mail1.toml"), mail1);
    for (name, text) in targets {
        write(xdg.join(format!("{name}.toml")), text);
    }
    let home = tmp.join("xdg");
    let run = move |args: &[&str]| {
        cairn().env("XDG_CONFIG_HOME", &home).env("HOME", &home).args(["-P", "mail1"]).args(args).run()
    };
    (tmp, run)
}

#[test]
fn config_shows_the_copy_section_and_what_it_selects() {
    let (_tmp, cairn_p) = profiles(
        &[("offsite", "[repository]\nrepo = \"/srv/offsite\"\npassword-file = \"/etc/pw\"\n".into())],
        "[\"offsite\"]",
    );
    let o = cairn_p(&["config"]).ok();
    assert!(o.stdout.contains("[copy]\ntags = [\"nightly\"]\nto = [\"offsite\"]"), "{}", o.stdout);
    assert!(o.stdout.contains("# copies the snapshots of host(s) mail1, with tag(s) nightly"), "{}", o.stdout);
    let j = cairn_p(&["--json", "config"]).ok().json();
    assert_eq!(j["sections"]["copy"]["to"], serde_json::json!(["offsite"]), "{j}");
    assert_eq!(j["copy_selects"]["hosts"], serde_json::json!(["mail1"]), "{j}");
    let help = cairn().args(["help", "config"]).run().ok();
    assert!(help.stdout.contains("[copy]") && help.stdout.contains("to = [\"offsite\"]"), "{}", help.stdout);
}

#[test]
fn wrong_copy_targets_are_refused_with_what_to_fix() {
    let tmp_repo = Tmp::new();
    let (tmp, cairn_p) = profiles(
        &[
            ("nopw", "[repository]\nrepo = \"/srv/offsite\"\n".into()),
            (
                "offsite",
                format!(
                    "[repository]\nrepo = {:?}\npassword-file = \"/etc/pw\"\n",
                    tmp_repo.join("offsite").display().to_string()
                ),
            ),
        ],
        "[\"offsite\", \"nopw\", \"missing\"]",
    );
    // A target that is not one of the profile's.
    let o = cairn_p(&["copy", "--to", "elsewhere"]).code(1);
    assert!(o.stderr.contains("--to elsewhere: not a copy target of profile \"mail1\""), "{}", o.stderr);
    // A target without a password of its own (the source's is never used).
    let o = cairn_p(&["copy", "--to", "nopw"]).code(1);
    assert!(o.stderr.contains("copy target \"nopw\" gives no password"), "{}", o.stderr);
    // A target profile that does not exist.
    let o = cairn_p(&["copy", "--to", "missing"]).code(1);
    assert!(o.stderr.contains("copy target \"missing\"") && o.stderr.contains("not found"), "{}", o.stderr);
    // A source left in the environment (restic's variable for `copy --from-repo`) would
    // reverse the profile's copy: refused, naming it.
    let home = tmp.join("xdg");
    let o = cairn()
        .env("XDG_CONFIG_HOME", &home)
        .env("HOME", &home)
        .env("CAIRN_FROM_REPOSITORY", tmp.join("elsewhere"))
        .args(["-P", "mail1", "copy"])
        .run()
        .code(1);
    assert!(o.stderr.contains("CAIRN_FROM_REPOSITORY") && o.stderr.contains("the other way"), "{}", o.stderr);
    // A target on the source's repository.
    let same = format!("[repository]\nrepo = \"local:{}\"\npassword-file = \"/etc/pw\"\n", tmp.join("repo").display());
    write(tmp.join("xdg/cairn/offsite.toml"), same);
    let o = cairn_p(&["copy", "--to", "offsite"]).code(1);
    assert!(o.stderr.contains("has the same repository as profile \"mail1\""), "{}", o.stderr);
    // The profile itself, caught when the profile is read (by any command).
    write(tmp.join("xdg/cairn/mail1.toml"), "[repository]\nrepo = \"/srv/r\"\n\n[copy]\nto = [\"mail1\"]\n");
    let o = cairn_p(&["snapshots"]).code(1);
    assert!(o.stderr.contains("[copy] to") && o.stderr.contains("is this profile itself"), "{}", o.stderr);
}

#[test]
fn the_scheduled_night_may_write_local_target_repositories_and_waits_for_the_network_for_remote_ones() {
    let tmp = Tmp::new();
    let disk = tmp.join("usb/repo");
    let (ptmp, cairn_p) = profiles(
        &[
            ("usb", format!("[repository]\nrepo = {:?}\npassword-file = \"/etc/pw\"\n", disk.display().to_string())),
            ("offsite", "[repository]\nrepo = \"s3:s3.example.com/bkt/mail1\"\npassword-file = \"/etc/pw\"\n".into()),
        ],
        "[\"usb\", \"offsite\"]",
    );
    let units = tmp.join("units");
    let o = cairn_p(&["schedule", "install", "--unit-dir", units.to_str().unwrap()]).ok();
    let service = fs::read_to_string(units.join("cairn-mail1.service")).unwrap_or_else(|e| panic!("{e}: {}", o.stderr));
    let rw = service.lines().find(|l| l.starts_with("ReadWritePaths=")).unwrap_or_else(|| panic!("{service}"));
    assert!(rw.starts_with(&format!("ReadWritePaths={}", ptmp.join("repo").display())), "{rw}");
    assert!(rw.split(' ').any(|w| w == format!("-{}", disk.display())), "{rw}");
    assert!(service.contains("After=network-online.target"), "{service}");
}

/// The steps of a night where everything succeeded, with their exit codes.
fn all_ok() -> Vec<(String, u64)> {
    ["backup", "copy offsite", "forget", "forget offsite"].map(|s| (s.to_string(), 0)).to_vec()
}
