//! Integration tests of retention and trust: prune, locks and keys, including prune killed at
//! each step, a backup stopped (SIGSTOP) while prune runs, and stale locks of dead processes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::generations::*;
use crate::common::*;

/// Every file below `dir` (relative path → bytes): a repository's exact state.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    raw_state(dir).into_iter().filter_map(|(p, c)| c.map(|c| (p, c))).collect()
}

/// Pack files in `data/XX/` (not the `.tmp-` files of packs being written, which a running
/// backup renames or removes at any moment, and which readers ignore).
fn pack_count(repo: &Repo) -> usize {
    let Ok(dirs) = fs::read_dir(repo.path.join("data")) else { return 0 };
    dirs.filter_map(|d| d.ok())
        .filter(|d| d.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|d| fs::read_dir(d.path()).ok())
        .flat_map(|entries| entries.filter_map(|e| e.ok()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
        .count()
}

#[test]
fn prune_reclaims_unused_data_and_keeps_every_kept_snapshot() {
    let repo = Repo::init();
    let g = generations(&repo);
    forget(&repo, &g.snaps[0].0);
    let before = repo.size();
    let dry = repo.cmd().args(["--json", "prune", "--dry-run"]).run().ok().json();
    assert!(dry["packs_deleted"].as_u64().unwrap() + dry["packs_repacked"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(repo.size(), before, "--dry-run changed the repository");

    let r = repo.cmd().args(["--json", "prune", "--max-unused", "0"]).run().ok().json();
    repo.run(["check", "--read-data"]).ok();
    assert!(r["bytes_after"].as_u64().unwrap() < r["bytes_before"].as_u64().unwrap(), "{r}");
    // gen0.bin (9 MiB of random data) was unique to the forgotten snapshot.
    assert!(repo.size() + 8 * MIB as u64 <= before, "prune freed too little: {before} -> {}", repo.size());
    for (id, copy) in &g.snaps[1..] {
        assert_restores(&repo, id, &g.src, copy);
    }
    // With no unused data allowed, a second prune finds nothing to do.
    let again = repo.cmd().args(["--json", "prune", "--max-unused", "0"]).run().ok().json();
    assert_eq!(again["unused_blobs"], 0, "{again}");
    assert_eq!(again["packs_deleted"], 0);
    assert_eq!(again["packs_repacked"], 0);
    assert_eq!(lock_count(&repo), 0, "prune left its lock behind");
}

#[test]
fn forget_with_prune_removes_the_snapshot_and_its_data() {
    let repo = Repo::init();
    let g = generations(&repo);
    let before = repo.size();
    let out = repo.cmd().args(["--json", "forget", "--keep-last", "2", "--prune"]).run().ok();
    // forget prints its groups, then prune its report.
    let lines: Vec<&str> = out.stdout.lines().collect();
    let groups: serde_json::Value = serde_json::from_str(lines[0]).expect("forget JSON");
    assert_eq!(groups[0]["remove"][0]["id"].as_str(), Some(g.snaps[0].0.as_str()));
    let report: serde_json::Value = serde_json::from_str(lines[1]).expect("prune JSON");
    assert_eq!(report["snapshots"], 2);
    assert!(repo.size() + 8 * MIB as u64 <= before);
    for (id, copy) in &g.snaps[1..] {
        assert_restores(&repo, id, &g.src, copy);
    }
}

#[test]
fn prune_refuses_when_snapshots_reference_blobs_no_index_knows() {
    let repo = Repo::init();
    let g = generations(&repo);
    forget(&repo, &g.snaps[0].0);
    let index = fs::read_dir(repo.path.join("index")).unwrap().next().unwrap().unwrap().path();
    fs::remove_file(&index).unwrap();
    let state = files(&repo.path);
    let out = repo.run(["prune"]);
    assert_ne!(out.code, 0, "prune ran on an incomplete index");
    assert!(out.stderr.contains("refuses"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    assert_eq!(files(&repo.path), state, "prune changed the repository although it refused");
}

/// Temporary files a killed backup left (staged packs, half-written files) are removed by
/// prune once nobody has written to them for an hour; a recent one, and everything under
/// `--dry-run`, stays.
#[test]
fn prune_removes_only_stale_temporary_files() {
    let repo = Repo::init();
    let g = generations(&repo);
    forget(&repo, &g.snaps[0].0);
    let old_time = filetime::FileTime::from_system_time(std::time::SystemTime::now() - Duration::from_secs(2 * 3600));
    let stale = [
        repo.path.join("data/.tmp-0123456789abcdef"),
        repo.path.join("data/ab/.tmp-fedcba9876543210"),
        repo.path.join("index/.tmp-00aa00aa00aa00aa"),
    ];
    for (i, p) in stale.iter().enumerate() {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, vec![7u8; 1000 * (i + 1)]).unwrap();
        filetime::set_file_mtime(p, old_time).unwrap();
    }
    let fresh = repo.path.join("data/.tmp-1111111111111111");
    fs::write(&fresh, b"a pack being written").unwrap();

    let dry = repo.cmd().args(["--json", "prune", "--dry-run"]).run().ok().json();
    assert_eq!(dry["temporaries_removed"], 0, "{dry}");
    assert!(stale.iter().all(|p| p.exists()), "--dry-run removed a temporary file");

    let r = repo.cmd().args(["--json", "prune"]).run().ok().json();
    assert_eq!(r["temporaries_removed"], 3, "{r}");
    assert_eq!(r["temporary_bytes_removed"], 6000, "{r}");
    assert!(stale.iter().all(|p| !p.exists()), "a stale temporary file is left");
    assert!(fresh.exists(), "prune removed a temporary file that is still being written");
    repo.run(["check", "--read-data"]).ok();
    for (id, copy) in &g.snaps[1..] {
        assert_restores(&repo, id, &g.src, copy);
    }
}

/// Start `cairn backup --stdin` on `repo`; the test feeds its stdin.
fn spawn_stdin_backup(repo: &Repo) -> Child {
    repo.spawn(["--json", "backup", "--stdin", "--stdin-filename", "db.dump"])
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, sig) };
    if sig == libc::SIGSTOP {
        wait_stopped(child);
    }
}

/// Wait until every thread of `child` is stopped: `kill` returns before the signal is
/// delivered, and a thread finishes the write it is in before it stops.
fn wait_stopped(child: &Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let tasks = PathBuf::from(format!("/proc/{}/task", child.id()));
    loop {
        let all_stopped = fs::read_dir(&tasks).expect("list the child's threads").filter_map(|t| t.ok()).all(|t| {
            let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state is the first field after the command name in parentheses.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|st| st == "T" || st == "t")
        });
        if all_stopped {
            return;
        }
        assert!(Instant::now() < deadline, "the child did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Feed `child` until at least one pack file is in the repository.
fn feed_until_packs(repo: &Repo, child: &mut Child, data: &[u8]) -> usize {
    let stdin = child.stdin.as_mut().expect("stdin");
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for piece in data.chunks(MIB) {
        stdin.write_all(piece).expect("feed backup");
        sent += piece.len();
        if sent >= 40 * MIB {
            break;
        }
    }
    while pack_count(repo) == 0 {
        assert!(Instant::now() < deadline, "backup uploaded no pack");
        std::thread::sleep(Duration::from_millis(20));
    }
    sent
}

#[test]
fn stopped_backup_blocks_prune_and_its_snapshot_stays_whole() {
    let repo = Repo::init();
    let g = generations(&repo);
    let data = random_bytes(77, 60 * MIB);
    let mut child = spawn_stdin_backup(&repo);
    let sent = feed_until_packs(&repo, &mut child, &data);
    signal(&child, libc::SIGSTOP);
    // The stopped backup holds a live shared lock: forget --prune (exclusive) must refuse,
    // with exit code 11, and change nothing.
    let state = files(&repo.path);
    let out = repo.run(["forget", &g.snaps[0].0, "--prune"]);
    assert_eq!(out.code, 11, "forget --prune ran beside a backup: {}", out.stderr);
    assert_eq!(files(&repo.path), state);
    forget_by_file(&repo, &g.snaps[0].0);
    let state = files(&repo.path);
    let out = repo.run(["prune"]);
    assert_eq!(out.code, 11, "prune ran beside a backup: {}", out.stderr);
    assert!(out.stderr.contains("backup"), "the message should name the holder: {}", out.stderr);
    assert_eq!(files(&repo.path), state);
    signal(&child, libc::SIGCONT);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&data[sent..]).expect("feed the rest");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The backup's snapshot restores byte for byte, and prune now runs.
    let t = Tmp::new();
    repo.run(["restore".to_string(), "latest".into(), "--target".into(), t.path.display().to_string()]).ok();
    assert_eq!(fs::read(t.join("db.dump")).expect("restored dump"), data);
    repo.run(["check", "--read-data"]).ok();
    repo.run(["prune"]).ok();
    repo.run(["check", "--read-data"]).ok();
    for (id, copy) in &g.snaps[1..] {
        assert_restores(&repo, id, &g.src, copy);
    }
}

#[test]
fn backup_that_lost_its_lock_writes_no_snapshot() {
    let repo = Repo::init();
    let g = generations(&repo);
    let data = random_bytes(78, 60 * MIB);
    let mut child = spawn_stdin_backup(&repo);
    let sent = feed_until_packs(&repo, &mut child, &data);
    signal(&child, libc::SIGSTOP);
    // An operator removes every lock (as if the backup were dead), then prunes: the stopped
    // backup's packs are in no index yet and are deleted.
    repo.run(["unlock", "--remove-all"]).ok();
    assert_eq!(lock_count(&repo), 0);
    repo.run(["prune"]).ok();
    signal(&child, libc::SIGCONT);
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(&data[sent..]);
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    // The backup notices its lock is gone and refuses to write a snapshot that could
    // reference deleted data.
    assert_eq!(out.status.code(), Some(11), "{}", String::from_utf8_lossy(&out.stderr));
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 3, "a snapshot was written without a lock");
    repo.run(["check", "--read-data"]).ok();
    for (id, copy) in &g.snaps {
        assert_restores(&repo, id, &g.src, copy);
    }
}

#[test]
fn locks_of_dead_processes_are_stale() {
    let repo = Repo::init();
    let mut child = spawn_stdin_backup(&repo);
    let data = random_bytes(79, 40 * MIB);
    feed_until_packs(&repo, &mut child, &data);
    assert_eq!(lock_count(&repo), 1, "a running backup holds one lock");
    child.kill().expect("kill backup");
    let _ = child.wait();
    assert_eq!(lock_count(&repo), 1, "SIGKILL leaves the lock file");
    // The holder is dead: its lock conflicts with nothing, and unlock removes it.
    let out = repo.cmd().args(["--json", "unlock"]).run().ok().json();
    assert_eq!(out["removed"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(lock_count(&repo), 0);
    // Prune also goes ahead past a dead process's lock, and removes the killed backup's packs.
    let mut child = spawn_stdin_backup(&repo);
    feed_until_packs(&repo, &mut child, &data);
    child.kill().expect("kill backup");
    let _ = child.wait();
    let r = repo.cmd().args(["--json", "prune"]).run().ok().json();
    // (The second backup indexed the first one's packs at its start; its own are in no index.)
    assert!(r["packs_unindexed_deleted"].as_u64().unwrap() + r["packs_deleted"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(pack_count(&repo), 0);
    assert_eq!(lock_count(&repo), 0);
}

#[test]
fn a_live_lock_blocks_exclusive_commands_until_released() {
    let repo = Repo::init();
    let mut child = spawn_stdin_backup(&repo);
    let data = random_bytes(80, 40 * MIB);
    let sent = feed_until_packs(&repo, &mut child, &data);
    // Shared with shared is fine: a second backup and snapshots run beside it.
    repo.cmd().args(["backup", "--stdin"]).stdin(b"second".to_vec()).run().ok();
    repo.run(["snapshots"]).ok();
    // unlock (without --remove-all) leaves a live process's lock alone.
    repo.run(["unlock"]).ok();
    assert_eq!(lock_count(&repo), 1);
    let out = repo.run(["prune"]);
    assert_eq!(out.code, 11, "{}", out.stderr);
    assert!(out.stderr.contains("cairn unlock"), "{}", out.stderr);
    // --retry-lock waits for the holder to finish.
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let _ = stdin.write_all(&data[sent..]);
    });
    let out = repo.run(["prune", "--retry-lock", "2m"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    feeder.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(lock_count(&repo), 0);
}

#[test]
fn keys_add_list_remove_passwd() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let second = tmp.join("second");
    fs::write(&second, "second password\n").unwrap();
    repo.run(["key".to_string(), "add".into(), "--new-password-file".into(), second.display().to_string()]).ok();
    let list = repo.cmd().args(["--json", "key", "list"]).run().ok().json();
    let keys = list.as_array().expect("array").clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1);
    for k in &keys {
        assert_eq!(k["hostName"].as_str(), Some(cairn_hostname().as_str()));
        assert!(k["created"].is_string());
    }
    // Both passwords open the repository.
    cairn().arg("-r").arg(&repo.path).password("second password").arg("snapshots").run().ok();
    let first = keys.iter().find(|k| k["current"] == true).unwrap()["id"].as_str().unwrap().to_string();
    // The key in use cannot be removed.
    let out = repo.run(["key", "remove", &first[..8]]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // With the second password, the first key can go; then the first password fails (12).
    cairn().arg("-r").arg(&repo.path).password("second password").args(["key", "remove", &first[..8]]).run().ok();
    repo.run(["snapshots"]).code(12);
    // passwd replaces the key in use.
    let third = tmp.join("third");
    fs::write(&third, "third password\n").unwrap();
    cairn()
        .arg("-r")
        .arg(&repo.path)
        .password("second password")
        .args(["key", "passwd", "--new-password-file"])
        .arg(&third)
        .run()
        .ok();
    cairn().arg("-r").arg(&repo.path).password("second password").arg("snapshots").run().code(12);
    let list =
        cairn().arg("-r").arg(&repo.path).password("third password").args(["--json", "key", "list"]).run().ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // An unknown key id is an error, not a panic.
    let out = cairn().arg("-r").arg(&repo.path).password("third password").args(["key", "remove", "ffffffff"]).run();
    assert_eq!(out.code, 1);
    assert!(!out.stderr.contains("panicked"));
}

fn cairn_hostname() -> String {
    let out = Command::new("hostname").output().expect("run hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_closed_output_pipe_releases_the_lock() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    for i in 0..3000 {
        write(tmp.join(format!("f{i:05}")), format!("{i}"));
    }
    repo.backup_json([tmp.path.as_os_str()]);
    // `ls` writes thousands of lines into a pipe that `head` closes after the first; cairn
    // exits 0 at once and must still remove its lock file (exclusive for forget).
    for cmd in ["ls latest", "forget --keep-last 1 --dry-run", "snapshots"] {
        let line = format!("{} -r {} {cmd} | head -n 1 >/dev/null", env!("CARGO_BIN_EXE_cairn"), repo.path.display());
        let st = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("CAIRN_PASSWORD", PASSWORD)
            .env_remove("CAIRN_REPOSITORY")
            .status()
            .expect("run sh");
        assert!(st.success(), "{line}");
        assert_eq!(lock_count(&repo), 0, "`{cmd}` into a closed pipe left its lock");
    }
}
