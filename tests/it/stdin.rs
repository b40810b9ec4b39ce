//! Streams as backup sources: `backup --stdin-from-command` (a command's output, no snapshot
//! when the command fails), empty streams refused unless `--allow-empty`, `--stdin-filename`
//! only with a stream, and `--dry-run` that never claims a snapshot was saved.
//!
//! Every command run is a real program (`sh`, `cat`, `true`, `false`), no mocks.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// `backup --stdin-from-command [EXTRA...] -- COMMAND...`, not checked.
fn backup_command(repo: &Repo, extra: &[&str], command: &[&str]) -> Output {
    repo.cmd().args(["backup", "--stdin-from-command"]).args(extra).arg("--").args(command).run()
}

/// The ids of the snapshots, oldest first.
fn snapshot_ids(repo: &Repo) -> Vec<String> {
    repo.snapshots(Vec::<&str>::new()).iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// Files under `dir` (recursively).
fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap())
                .map(|e| if e.file_type().unwrap().is_dir() { count_files(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn stdin_from_command_stores_the_output_byte_for_byte() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let data = random_bytes(7, 5 * (1 << 20) + 12345);
    let file = tmp.join("dump.bin");
    fs::write(&file, &data).unwrap();
    let out = repo
        .cmd()
        .args([
            "--json",
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "maildb.dump",
            "--tag",
            "postgres",
            "--",
            "cat",
        ])
        .arg(&file)
        .run()
        .ok();
    let summary = out.json();
    assert!(summary["snapshot_id"].is_string(), "{summary}");
    assert_eq!(summary["total_bytes_processed"], data.len() as u64);
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1);
    // restic's layout: the stream is /STDIN-FILENAME; the command is not recorded.
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/maildb.dump"]));
    let target = tmp.join("restored.bin");
    repo.cmd().args(["dump", "latest", "/maildb.dump", "--target"]).arg(&target).run().ok();
    assert!(fs::read(&target).unwrap() == data, "the dump differs from the command's output");

    // Without --stdin-filename the name is restic's `stdin`; arguments with spaces reach the
    // command as they are (no shell).
    repo.cmd()
        .args(["backup", "--stdin-from-command", "--", "sh", "-c", "printf '%s|' \"$@\"", "sh", "a b", "c"])
        .run()
        .ok();
    let target = tmp.join("stdin.out");
    repo.cmd().args(["dump", "latest", "/stdin", "--target"]).arg(&target).run().ok();
    assert_eq!(fs::read(&target).unwrap(), b"a b|c|");
}

#[test]
fn a_failing_command_leaves_no_snapshot() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    // A good dump first: a keep-last-1 policy must keep it after the failures below.
    backup_command(&repo, &["--stdin-filename", "db.dump"], &["printf", "good dump"]).ok();
    let good = snapshot_ids(&repo);
    assert_eq!(good.len(), 1);

    let big = tmp.join("big.bin");
    // More than a pack (16 MiB) so that a pack is written before the command fails.
    fs::write(&big, random_bytes(3, 20 << 20)).unwrap();
    let big_then_fail = format!("cat '{}'; echo 'pg_dump: error: connection lost' >&2; exit 2", big.display());
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["sh", "-c", "printf data; echo 'database \"nosuchdb\" does not exist' >&2; exit 3"],
            &["exit code 3", "nosuchdb\" does not exist", "`sh -c 'printf data;"],
        ),
        (vec!["sh", "-c", "printf data; kill -9 $$"], &["killed by signal 9 (SIGKILL)"]),
        (vec!["sh", "-c", &big_then_fail], &["exit code 2", "pg_dump: error: connection lost"]),
        (vec!["false"], &["`false` failed (exit code 1)", "wrote nothing to standard error"]),
        (
            vec!["/nonexistent/pg_dump", "maildb"],
            &["`/nonexistent/pg_dump maildb` could not be started", "No such file or directory"],
        ),
    ];
    for (command, expected) in cases {
        let out = backup_command(&repo, &["--stdin-filename", "db.dump"], &command).code(1);
        for e in expected {
            assert!(out.stderr.contains(e), "{command:?}: stderr lacks {e:?}:\n{}", out.stderr);
        }
        assert!(out.stderr.contains("no snapshot was written"), "{}", out.stderr);
        assert!(!out.stdout.contains("saved"), "{command:?} printed a summary:\n{}", out.stdout);
        assert_eq!(snapshot_ids(&repo), good, "{command:?} left a snapshot");
    }
    // The command's standard error also went through as it came.
    let out = backup_command(&repo, &[], &["sh", "-c", "echo progress-line >&2; exit 1"]).code(1);
    assert!(out.stderr.matches("progress-line").count() >= 2, "passed through and in the message:\n{}", out.stderr);

    // What the failed runs uploaded is unreferenced: check passes, prune deletes it, and the
    // good dump is still whole.
    repo.run(["check", "--read-data"]).ok();
    let packs_before = count_files(&repo.path.join("data"));
    repo.run(["prune"]).ok();
    assert!(count_files(&repo.path.join("data")) < packs_before, "prune removed none of the failed runs' packs");
    repo.run(["check", "--read-data"]).ok();
    repo.run(["forget", "--keep-last", "1"]).ok();
    assert_eq!(snapshot_ids(&repo), good);
    assert_eq!(repo.run(["dump", "latest", "/db.dump"]).ok().stdout, "good dump");
}

#[test]
fn the_repository_is_opened_and_checked_before_the_command_starts() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let marker = tmp.join("started");
    let script = format!("touch '{}'; printf data", marker.display());
    let command = ["backup", "--stdin-from-command", "--", "sh", "-c", script.as_str()];

    cairn().arg("-r").arg(&repo.path).args(command).password("wrong password").run().code(12);
    assert!(!marker.exists(), "the command ran although the password was wrong");
    cairn().arg("-r").arg(tmp.join("no-such-repo")).args(command).password(PASSWORD).run().code(10);
    assert!(!marker.exists(), "the command ran although the repository does not exist");

    repo.run(command).ok();
    assert!(marker.exists());
}

#[test]
fn an_empty_stream_is_refused_unless_allowed() {
    let repo = Repo::init();
    // `pg_dump nosuchdb | cairn backup --stdin`: the pipe brings nothing.
    let out = repo.cmd().args(["backup", "--stdin", "--stdin-filename", "db.dump"]).stdin(Vec::new()).run().code(1);
    assert!(out.stderr.contains("standard input is empty") && out.stderr.contains("--allow-empty"), "{}", out.stderr);
    // Standard input on /dev/null.
    repo.cmd().args(["backup", "--stdin"]).run().code(1);
    // A command that succeeds but writes nothing.
    let out = backup_command(&repo, &[], &["true"]).code(1);
    assert!(out.stderr.contains("the output of `true` is empty"), "{}", out.stderr);
    assert!(snapshot_ids(&repo).is_empty());

    // --allow-empty: an empty file is stored.
    repo.cmd().args(["backup", "--stdin", "--allow-empty", "--stdin-filename", "empty"]).stdin(Vec::new()).run().ok();
    backup_command(&repo, &["--allow-empty", "--stdin-filename", "empty2"], &["true"]).ok();
    assert_eq!(snapshot_ids(&repo).len(), 2);
    let out = repo.run(["--json", "ls", "latest", "/empty2"]).ok();
    assert!(out.stdout.contains("\"size\":0"), "{}", out.stdout);
    // --allow-empty does not excuse a failed command.
    backup_command(&repo, &["--allow-empty"], &["false"]).code(1);
    assert_eq!(snapshot_ids(&repo).len(), 2);
}

#[test]
fn stream_flags_need_a_stream() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("f"), "x");
    let src = tmp.path.to_str().unwrap();
    for args in [
        vec!["backup", "--stdin-filename", "x", src],
        vec!["backup", "--allow-empty", src],
        vec!["backup", "--stdin", "--stdin-from-command", "--", "true"],
    ] {
        let out = repo.run(&args);
        assert_eq!(out.code, 2, "{args:?} was accepted:\n{}\n{}", out.stdout, out.stderr);
    }
    let out = repo.run(["backup", "--stdin-from-command"]).code(1);
    assert!(out.stderr.contains("needs a command"), "{}", out.stderr);
    assert!(snapshot_ids(&repo).is_empty());
}

#[test]
fn dry_run_never_claims_a_snapshot() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("src/a"), "some content");
    let src = tmp.join("src");
    // Paths and --stdin first: their text was wrong before --stdin-from-command existed.
    let runs: [&dyn Fn() -> Output; 3] = [
        &|| repo.cmd().args(["backup", "--dry-run"]).arg(&src).run().ok(),
        &|| repo.cmd().args(["backup", "-n", "--stdin"]).stdin(b"stream".to_vec()).run().ok(),
        &|| backup_command(&repo, &["--dry-run"], &["printf", "command"]).ok(),
    ];
    for run in runs {
        let out = run();
        assert!(!out.stdout.contains("Added to the repository"), "{}", out.stdout);
        assert!(
            !out.stdout.contains("snapshot saved")
                && !out.stdout.lines().any(|l| l.starts_with("snapshot ") && l.ends_with(" saved")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("Would add to the repository: "), "{}", out.stdout);
        assert!(out.stdout.contains("no snapshot written (dry run)"), "{}", out.stdout);
    }
    let json = repo.cmd().args(["--json", "backup", "--dry-run"]).arg(&src).run().ok().json();
    assert_eq!(json["dry_run"], true);
    assert!(json["snapshot_id"].is_null(), "{json}");
    assert!(json["data_added"].as_u64().unwrap() > 0, "a dry run reports what it would add: {json}");
    assert!(snapshot_ids(&repo).is_empty());
}

#[test]
fn sigterm_stops_the_command_and_saves_nothing() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let pid_file = tmp.join("pid");
    let shell_pid_file = tmp.join("shell-pid");
    // The shell writes a few MiB, then waits for a background sleep that holds the output pipe
    // open: even when the command's own process is gone, cairn must not wait for the pipe.
    let script = format!(
        "echo $$ > '{}'; head -c 3000000 /dev/zero; sleep 60 & echo $! > '{}'; wait",
        shell_pid_file.display(),
        pid_file.display()
    );
    let child = repo.spawn(["backup", "--stdin-from-command", "--", "sh", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() || fs::read_to_string(&pid_file).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let shell: u32 = fs::read_to_string(&shell_pid_file).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Without a terminal the command has a process group of its own, and the whole group is
    // terminated: the background sleep it started does not outlive the backup.
    let alive = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|st| st.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    };
    let gone_by = Instant::now() + Duration::from_secs(5);
    while alive(sleeper) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper_survived = alive(sleeper);
    // SAFETY: the background sleep the test started through the command; best effort.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    assert!(!sleeper_survived, "a process the command started (pid {sleeper}) outlived the backup");
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(t.elapsed() < Duration::from_secs(8), "cairn took {:?} to stop", t.elapsed());
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The command itself (the shell) was terminated, not left running.
    assert!(!Path::new(&format!("/proc/{shell}")).exists(), "the command (pid {shell}) still runs");
    assert!(snapshot_ids(&repo).is_empty());
    repo.run(["check"]).ok();
}
