//! Command components: `backup TREE --command PATH=CMD ...` (and a profile's
//! `[[backup.command]]`) stores each command's output at its path in the same snapshot as the
//! tree, records each component's status in the snapshot, leaves a failed component out (exit
//! 3, the rest saved; all failed: no snapshot, exit 1), and `forget` keeps the newest snapshot
//! in which each component succeeded.
//!
//! Every command is a real program (`sh`, `head`, `cmp`, `false`, `sleep`), no mocks.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::generations::{assert_restores, copy_tree, snapshot_id};
use crate::common::*;

/// A small source tree.
fn tree(tmp: &Tmp) -> PathBuf {
    let src = tmp.join("src");
    write(src.join("a.txt"), "alpha");
    write(src.join("sub/b.bin"), random_bytes(3, 200_000));
    src
}

/// `cairn dump SNAPSHOT PATH` stdout bytes (must succeed).
fn dump(repo: &Repo, snap: &str, path: &str) -> Vec<u8> {
    let bin = env!("CARGO_BIN_EXE_cairn");
    let out = std::process::Command::new(bin)
        .args(["-r"])
        .arg(&repo.path)
        .args(["dump", snap, path])
        .env("CAIRN_PASSWORD", PASSWORD)
        .output()
        .expect("run cairn dump");
    assert!(out.status.success(), "dump {snap} {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The components of a `snapshots --json` entry, by path.
fn components(s: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    s["components"]
        .as_array()
        .unwrap_or_else(|| panic!("no components in {s}"))
        .iter()
        .map(|c| (c["path"].as_str().expect("a path").to_string(), c.clone()))
        .collect()
}

fn component(s: &serde_json::Value, path: &str) -> serde_json::Value {
    components(s).into_iter().find(|(p, _)| p == path).map(|(_, c)| c).unwrap_or_else(|| panic!("no {path} in {s}"))
}

#[test]
fn two_commands_and_a_tree_in_one_snapshot() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let expect = tmp.join("expect");
    copy_tree(&src, &expect);
    let data = random_bytes(11, 3_000_000);
    let file = tmp.join("a.dump");
    fs::write(&file, &data).unwrap();
    let summary = repo.backup_json([
        src.display().to_string(),
        format!("--command=/db/a.dump=cat {}", file.display()),
        "--command=/db/b.dump=sh -c 'printf \"hello world\"'".to_string(),
    ]);
    let id = snapshot_id(&summary);
    assert_eq!(components(&summary).len(), 3, "{summary}");
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1, "one snapshot");
    let s = &snaps[0];
    for (path, c) in components(s) {
        assert_eq!(c["status"], "ok", "{path}: {c}");
        assert_eq!(c["reason"], "", "{c}");
    }
    let a = component(s, "/db/a.dump");
    assert_eq!((a["kind"].as_str(), a["bytes"].as_u64()), (Some("command"), Some(data.len() as u64)), "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(component(s, &src.display().to_string())["kind"], "path");
    // Keys sorted, as all JSON cairn prints.
    let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(dump(&repo, "latest", "/db/a.dump"), data);
    assert_eq!(dump(&repo, "latest", "/db/b.dump"), b"hello world");
    assert_restores(&repo, &id, &src, &expect);
    // The made-up directory on the way: 0700.
    let ls = repo.run(["--json", "ls", "latest", "/db"]).ok().stdout;
    assert!(ls.contains("\"/db/a.dump\""), "{ls}");
    let t = Tmp::new();
    repo.run([
        "restore".to_string(),
        "latest".into(),
        "--include".into(),
        "/db".into(),
        "--target".into(),
        t.path.display().to_string(),
    ])
    .ok();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(t.join("db")).unwrap().permissions().mode() & 0o7777, 0o700);
    assert_eq!(fs::read(t.join("db/b.dump")).unwrap(), b"hello world");
    // The table marks nothing.
    let table = repo.run(["snapshots"]).ok().stdout;
    assert!(!table.contains('!'), "{table}");
    // check decodes the version 2 snapshot and reads what it references.
    repo.run(["check", "--read-data"]).ok();

    // A command beside a backed-up path, in a real directory on the way to it.
    let beside = format!("{}/beside.dump", tmp.path.display());
    let s = repo.backup_json([src.display().to_string(), format!("--command={beside}=printf beside")]);
    assert_eq!(component(&s, &beside)["status"], "ok", "{s}");
    assert_eq!(dump(&repo, "latest", &beside), b"beside");
    assert_restores(&repo, &snapshot_id(&s), &src, &expect);
}

#[test]
fn failed_components_are_left_out_and_recorded() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let good = random_bytes(5, 100_000);
    let good_file = tmp.join("good");
    fs::write(&good_file, &good).unwrap();
    let profile_free = repo
        .cmd()
        .args(["--json", "backup"])
        .arg(&src)
        .arg(format!("--command=/db/good.dump=cat {}", good_file.display()))
        .arg("--command=/db/exit.dump=sh -c 'printf partial; echo no such database >&2; exit 3'")
        .arg("--command=/db/empty.dump=true")
        .run()
        .code(3);
    assert!(profile_free.stderr.contains("/db/exit.dump"), "{}", profile_free.stderr);
    let s = profile_free.json();
    let e = component(&s, "/db/exit.dump");
    assert_eq!((e["status"].as_str(), e["exit_code"].as_i64()), (Some("failed"), Some(3)), "{e}");
    assert!(e["stderr_tail"].as_str().unwrap().contains("no such database"), "{e}");
    assert_eq!(e["bytes"], 7, "{e}");
    let empty = component(&s, "/db/empty.dump");
    assert_eq!(empty["status"], "failed");
    assert!(empty["reason"].as_str().unwrap().contains("wrote nothing"), "{empty}");
    assert_eq!(component(&s, "/db/good.dump")["status"], "ok");
    assert_eq!(dump(&repo, "latest", "/db/good.dump"), good);
    let ls = repo.run(["ls", "latest", "/db"]).ok().stdout;
    assert!(!ls.contains("exit.dump") && !ls.contains("empty.dump") && ls.contains("good.dump"), "{ls}");
    let table = repo.run(["snapshots"]).ok().stdout;
    assert!(table.contains("/db/exit.dump !") && table.contains("! incomplete"), "{table}");

    // The text summary has a line per component.
    let o = repo.cmd().arg("backup").arg(&src).arg("--command=/db/x.dump=false").run().code(3);
    assert!(o.stdout.contains("/db/x.dump: failed (0 B in") && o.stdout.contains(": ok ("), "{}", o.stdout);

    // A timeout and a failing verify; the verify of the good one compares the bytes.
    let o = repo
        .cmd()
        .args(["--json", "backup", "--command-timeout", "1s"])
        .arg(&src)
        .arg("--command=/db/slow.dump=sleep 30")
        .timeout(std::time::Duration::from_secs(25))
        .run()
        .code(3);
    let slow = component(&o.json(), "/db/slow.dump");
    assert_eq!(slow["status"], "failed");
    assert!(slow["reason"].as_str().unwrap().contains("timed out"), "{slow}");
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 3);
}

#[test]
fn verify_and_profile_commands() {
    let home = Tmp::new();
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let data = random_bytes(9, 2_000_000);
    let file = tmp.join("db.dump");
    fs::write(&file, &data).unwrap();
    let other = tmp.join("other");
    fs::write(&other, b"different").unwrap();
    let profile = format!(
        "[repository]\nrepo = {repo:?}\n\n[backup]\npaths = [{src:?}]\n\n\
         [[backup.command]]\npath = \"/postgres/db.dump\"\nrun = [\"cat\", {file:?}]\nverify = [\"cmp\", \"-\", {file:?}]\n\n\
         [[backup.command]]\npath = \"/postgres/bad.dump\"\nrun = [\"cat\", {file:?}]\nverify = [\"cmp\", \"-\", {other:?}]\n\n\
         [[backup.command]]\npath = \"/redis/slow.rdb\"\nrun = [\"sleep\", \"30\"]\ntimeout = \"1s\"\n\n\
         [[backup.command]]\npath = \"/redis/fails.rdb\"\nrun = [\"sh\", \"-c\", \"printf x\"]\nverify = [\"sh\", \"-c\", \"exit 1\"]\n",
        repo = repo.path.display().to_string(),
        src = src.display().to_string(),
        file = file.display().to_string(),
        other = other.display().to_string(),
    );
    write(home.join("xdg/cairn/x.toml"), &profile);
    let cmd = || cairn().env("HOME", home.join("home")).env("XDG_CONFIG_HOME", home.join("xdg")).password(PASSWORD);
    let o = cmd().args(["--json", "-P", "x", "backup"]).timeout(std::time::Duration::from_secs(60)).run().code(3);
    let s = o.json();
    assert_eq!(component(&s, "/postgres/db.dump")["status"], "ok", "{s}");
    for p in ["/postgres/bad.dump", "/redis/slow.rdb", "/redis/fails.rdb"] {
        let c = component(&s, p);
        assert_eq!(c["status"], "failed", "{c}");
    }
    assert!(component(&s, "/postgres/bad.dump")["reason"].as_str().unwrap().contains("verify command"), "{s}");
    // cmp's complaint is on its standard output (discarded): the reason names the exit code.
    assert!(component(&s, "/postgres/bad.dump")["reason"].as_str().unwrap().contains("exit code 1"), "{s}");
    let fails = component(&s, "/redis/fails.rdb");
    assert_eq!((fails["exit_code"].as_i64(), fails["bytes"].as_u64()), (Some(0), Some(1)), "{fails}");
    assert!(component(&s, "/redis/slow.rdb")["reason"].as_str().unwrap().contains("timed out"), "{s}");
    assert_eq!(dump(&repo, "latest", "/postgres/db.dump"), data);

    // --command on the command line replaces the profile's list.
    let o = cmd().args(["--json", "-P", "x", "backup", "--command", "/only.dump=printf only"]).run().ok();
    let s = o.json();
    assert_eq!(components(&s).len(), 2, "{s}");
    assert_eq!(dump(&repo, "latest", "/only.dump"), b"only");

    // `run` runs the backup with the profile's commands (exit 3: some failed).
    let o = cmd().args(["-P", "x", "run"]).timeout(std::time::Duration::from_secs(60)).run();
    assert_eq!(o.code, 3, "{o:?}");
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 3);
    assert_eq!(component(snaps.last().unwrap(), "/postgres/db.dump")["status"], "ok");
}

#[test]
fn all_failing_is_no_snapshot_and_bad_paths_are_usage_errors() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let o = repo.run(["backup", "--command=/a.dump=false", "--command=/b.dump=sh -c 'exit 2'"]).code(1);
    assert!(o.stderr.contains("/a.dump") && o.stderr.contains("/b.dump"), "{}", o.stderr);
    let missing = tmp.join("missing");
    repo.cmd().arg("backup").arg(&missing).arg("--command=/a.dump=false").run().code(1);
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());

    // Usage errors before anything runs: the marker file a command would create stays absent.
    let marker = tmp.join("ran");
    let touch = format!("touch {}", marker.display());
    let inside = format!("--command={}/x.dump={touch}", src.display());
    let on_the_way = format!("--command={}={touch}", Path::new(&src).parent().unwrap().display());
    for bad in [
        inside,
        on_the_way,
        format!("--command=relative.dump={touch}"),
        format!("--command=/a/../b={touch}"),
        "--command=/a.dump=".to_string(),
        "--command=/a.dump='unbalanced".to_string(),
        "--command=no-equals-sign".to_string(),
    ] {
        let o = repo.cmd().arg("backup").arg(&src).arg(&bad).run().code(1);
        assert!(o.stderr.contains("command"), "{bad}: {}", o.stderr);
    }
    let o = repo.run(["backup", "--command", &format!("/d/x={touch}"), "--command", &format!("/d/x={touch}")]).code(1);
    assert!(o.stderr.contains("collide"), "{}", o.stderr);
    let o = repo.run(["backup", "--command", &format!("/d={touch}"), "--command", &format!("/d/x={touch}")]).code(1);
    assert!(o.stderr.contains("collide"), "{}", o.stderr);
    assert!(!marker.exists(), "a command ran before the usage error");
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());
    // A snapshot without components has none in its JSON (a version 1 snapshot).
    repo.cmd().arg("backup").arg(&src).run().ok();
    let s = repo.snapshots(Vec::<&str>::new());
    assert!(s[0].get("components").is_none(), "{}", s[0]);
    repo.run(["check", "--read-data"]).ok();
}

#[test]
fn forget_keeps_the_last_good_dump() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    for night in 1..=30 {
        let cmd =
            if night < 20 { format!("/db/a.dump=printf dump-of-night-{night}") } else { "/db/a.dump=false".into() };
        let time = format!("2026-01-{night:02}T02:00:00Z");
        let o = repo.cmd().args(["-q", "backup", "--time", &time, "--command", &cmd]).arg(&src).run();
        assert_eq!(o.code, if night < 20 { 0 } else { 3 }, "night {night}: {o:?}");
    }
    let o = repo.run(["--json", "forget", "--keep-daily", "7", "--dry-run"]).ok();
    let groups = o.json();
    let group = &groups[0];
    let reasons = group["reasons"].as_array().unwrap();
    let night = |r: &serde_json::Value| r["snapshot"]["time"].as_str().unwrap()[8..10].parse::<u32>().unwrap();
    let kept: Vec<(u32, Vec<String>)> = reasons
        .iter()
        .map(|r| (night(r), r["matches"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()))
        .collect();
    let mut expect: Vec<(u32, Vec<String>)> =
        (24..=30).rev().map(|n| (n, vec!["daily snapshot".to_string()])).collect();
    // The path component is good every night: the newest snapshot is its last good one.
    expect[0].1.push(format!("last good {}", src.display()));
    expect.push((19, vec!["last good /db/a.dump".to_string()]));
    assert_eq!(kept, expect);
    assert_eq!(group["remove"].as_array().unwrap().len(), 30 - 8);

    // Off: the policy alone.
    let o = repo.run(["--json", "forget", "--keep-daily", "7", "--no-keep-last-good"]).ok();
    assert_eq!(o.json()[0]["keep"].as_array().unwrap().len(), 7);
    assert_eq!(dump(&repo, "latest", &format!("{}/a.txt", src.display())), b"alpha");
    // Only the nights 24-30 remain, none with the dump.
    let o = repo.run(["ls", "latest", "/db"]).code(1);
    assert!(!o.stdout.contains("a.dump"), "{o:?}");
}

/// The `ls --json --recursive` entry of `path` (below `dir`) in the latest snapshot.
fn ls_entry(repo: &Repo, dir: &str, path: &str) -> Option<serde_json::Value> {
    let out = repo.run(["--json", "ls", "--recursive", "latest", dir]).ok().stdout;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"].as_str() == Some(path))
}

#[test]
fn a_command_whose_directory_on_the_way_fails_is_failed_not_ok() {
    // Paths `.../etc` and `.../srv/data/mail`, a command at `.../srv/data/db.dump`, and
    // `.../srv/data` missing (then not a directory): the walk skips `data` and never takes
    // the command's file, which must then be recorded failed, with why.
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("etc/hosts"), "127.0.0.1 localhost");
    fs::create_dir_all(tmp.join("srv")).unwrap();
    let etc = tmp.join("etc").display().to_string();
    let mail = tmp.join("srv/data/mail").display().to_string();
    let dump = tmp.join("srv/data/db.dump").display().to_string();
    // Distinct times: `latest` is the newest by time.
    for (layout, why, time) in
        [("missing", "cannot stat", "2026-01-01T00:00:00Z"), ("a file", "is not a directory", "2026-01-01T01:00:00Z")]
    {
        if layout == "a file" {
            write(tmp.join("srv/data"), "not a directory");
        }
        let o = repo
            .cmd()
            .args(["--json", "backup", "--time", time])
            .args([&etc, &mail, &format!("--command={dump}=printf dump")])
            .run()
            .code(3);
        let s = o.json();
        let c = component(&s, &dump);
        assert_eq!(c["status"], "failed", "{layout}: {c}");
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.contains(why) && reason.contains("/srv/data"), "{layout}: {c}");
        assert_eq!(component(&s, &mail)["status"], "failed", "{layout}: {s}");
        assert_eq!(component(&s, &etc)["status"], "ok", "{layout}: {s}");
        let table = repo.run(["snapshots"]).ok().stdout;
        assert!(table.contains(&format!("{dump} !")), "{layout}: {table}");
        assert!(ls_entry(&repo, &tmp.path.display().to_string(), &dump).is_none(), "{layout}: in the tree");
    }

    // A command stored beside a real directory gets the snapshot's time (--time) as its
    // times, as do the directories made up on the way to a command.
    let o = repo
        .cmd()
        .args(["--json", "backup", "--time", "2026-01-02T03:04:05Z"])
        .args([
            &etc,
            "--command=/made/up/x.dump=printf x",
            &format!("--command={}/x.dump=printf x", tmp.path.display()),
        ])
        .run()
        .ok();
    let s = o.json();
    assert!(components(&s).iter().all(|(_, c)| c["status"] == "ok"), "{s}");
    let mtime = |dir: &str, path: &str| {
        let e = ls_entry(&repo, dir, path).unwrap_or_else(|| panic!("no {path} in the tree"));
        chrono::DateTime::parse_from_rfc3339(e["mtime"].as_str().unwrap()).unwrap().timestamp()
    };
    let want = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().timestamp();
    let beside = format!("{}/x.dump", tmp.path.display());
    assert_eq!(mtime(&tmp.path.display().to_string(), &beside), want);
    assert_eq!(mtime("/made", "/made/up/x.dump"), want);
    assert_eq!(mtime("/made", "/made/up"), want);
}

/// Whether process `pid` is running (a zombie is not).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|st| st.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// The pid written in `file`, once there is one (a test that would hang fails after 2 minutes).
fn wait_pid(file: &Path) -> i32 {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(pid) = fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(std::time::Instant::now() < give_up, "no pid in {} (the command did not start)", file.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_interrupt_stops_every_command_and_starts_no_other() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    // Three commands run at once, each a shell waiting for a background sleep (a grandchild of
    // cairn's); the fourth and fifth wait for a runner and must never start.
    let mut args = vec!["backup".to_string(), src.display().to_string()];
    for n in 1..=5 {
        let script =
            format!("echo $$ > {dir}/shell{n}; sleep 600 & echo $! > {dir}/sleep{n}; wait", dir = tmp.path.display());
        args.push("--command".into());
        args.push(format!("/db/{n}.dump=sh -c '{script}'"));
    }
    let child = repo.spawn(&args);
    let mut pids = Vec::new();
    for n in 1..=3 {
        pids.push(wait_pid(&tmp.join(format!("shell{n}"))));
        pids.push(wait_pid(&tmp.join(format!("sleep{n}"))));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty(), "a snapshot was written");
    for n in 4..=5 {
        assert!(!tmp.join(format!("shell{n}")).exists(), "command {n} was started after the interrupt");
    }
    // cairn waited for its commands; the background sleeps were in their process groups.
    let survivors: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    for &p in &survivors {
        // SAFETY: a process the test started through a command; best effort.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    assert!(survivors.is_empty(), "processes outlived the backup: {survivors:?}");
}

#[test]
fn a_verify_is_judged_by_its_exit_status_not_hung_and_an_excluded_path_is_ok() {
    let home = Tmp::new();
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let big = "head -c 3000000 /dev/zero";
    let profile = format!(
        "[repository]\nrepo = {repo:?}\n\n[backup]\npaths = [{src:?}]\n\n\
         [[backup.command]]\npath = \"/v/hangs.dump\"\nrun = [\"sh\", \"-c\", \"{big}\"]\n\
         verify = [\"sh\", \"-c\", \"read x; sleep 600\"]\ntimeout = \"2s\"\n\n\
         [[backup.command]]\npath = \"/v/early.dump\"\nrun = [\"sh\", \"-c\", \"{big}\"]\n\
         verify = [\"sh\", \"-c\", \"head -c 10 > /dev/null; exit 4\"]\n\n\
         [[backup.command]]\npath = \"/v/toc.dump\"\nrun = [\"sh\", \"-c\", \"{big}\"]\n\
         verify = [\"sh\", \"-c\", \"head -c 10 > /dev/null\"]\n\n\
         [[backup.command]]\npath = \"/v/reads-all.dump\"\nrun = [\"sh\", \"-c\", \"{big}\"]\n\
         verify = [\"sh\", \"-c\", \"cat > /dev/null\"]\n",
        repo = repo.path.display().to_string(),
        src = src.display().to_string(),
    );
    write(home.join("xdg/cairn/x.toml"), &profile);
    let cmd = || cairn().env("HOME", home.join("home")).env("XDG_CONFIG_HOME", home.join("xdg")).password(PASSWORD);
    let s =
        cmd().args(["--json", "-P", "x", "backup"]).timeout(std::time::Duration::from_secs(90)).run().code(3).json();
    let hangs = component(&s, "/v/hangs.dump");
    assert_eq!(hangs["status"], "failed", "{hangs}");
    assert!(hangs["reason"].as_str().unwrap().contains("timed out"), "{hangs}");
    let early = component(&s, "/v/early.dump");
    assert_eq!(early["status"], "failed", "{early}");
    let why = early["reason"].as_str().unwrap();
    assert!(why.contains("exit code 4") && why.contains("stopped reading"), "{early}");
    assert_eq!(component(&s, "/v/reads-all.dump")["status"], "ok", "{s}");
    // Exit 0 after reading only the start (as `pg_restore --list` does): accepted, and the
    // dump is stored in full.
    assert_eq!(component(&s, "/v/toc.dump")["status"], "ok", "{s}");
    assert_eq!(dump(&repo, "latest", "/v/toc.dump"), vec![0u8; 3_000_000]);

    // A path left out whole by an exclude pattern: ok ("excluded"), exit 0, no `!`.
    let other = tmp.join("other");
    write(other.join("f"), "f");
    let s = repo
        .cmd()
        .args(["--json", "backup", "--exclude", &other.display().to_string()])
        .arg(&src)
        .arg(&other)
        .arg("--command=/x.dump=printf x")
        .run()
        .ok()
        .json();
    let c = component(&s, &other.display().to_string());
    assert_eq!(c["status"], "ok", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("excluded"), "{c}");
    let table = repo.run(["snapshots", "--path", &other.display().to_string()]).ok().stdout;
    assert!(!table.contains('!'), "{table}");
}

#[test]
fn skip_if_unchanged_never_skips_a_backup_with_errors() {
    // A source whose directory on the way is missing: an error each time, while the other
    // source and the set of paths stay the same.
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let missing = tmp.join("missing/x");
    repo.cmd().arg("backup").arg(&src).arg(&missing).run().code(3);
    let o = repo.cmd().args(["backup", "--skip-if-unchanged"]).arg(&src).arg(&missing).run().code(3);
    assert!(!o.stdout.contains("not written"), "{}", o.stdout);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 2);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_panicking_command_runner_fails_the_backup_instead_of_hanging() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let o = repo
        .cmd()
        .args(["backup", "--command=/a.dump=printf a", "--command=/b.dump=printf b"])
        .arg(&src)
        .env("FAILPOINTS", "backup-command-runner=panic")
        .timeout(std::time::Duration::from_secs(60))
        .run();
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());
}

#[test]
fn a_command_leaves_no_process_behind_and_never_sees_the_password() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tree(&tmp);
    let pidfile = tmp.join("bg.pid");
    // A dump that starts a background process and exits (its output closed), and one that
    // prints its environment.
    let bg =
        format!("/db/bg.out=sh -c 'echo data; sleep 300 >/dev/null 2>&1 & echo $! > {}; exit 0'", pidfile.display());
    let out = repo
        .cmd()
        .args(["--json", "backup"])
        .arg(&src)
        .arg("--command")
        .arg(&bg)
        .args(["--command", "/db/env.out=env"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pid = wait_pid(&pidfile);
    assert!(!alive(pid), "the background process {pid} of a finished command still runs");
    let id = out.json()["snapshot_id"].as_str().expect("a snapshot").to_string();
    let env = String::from_utf8_lossy(&dump(&repo, &id, "/db/env.out")).into_owned();
    assert!(env.contains("PATH=") && !env.contains("CAIRN_PASSWORD=") && !env.contains(PASSWORD), "{env}");
}
