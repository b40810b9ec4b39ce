//! Integration tests of what a repository and its users may not do to cairn: labels too long
//! for a table, `--no-lock` on commands that write, unreadable lock files, damaged snapshot
//! files, planted key files, times before 1970 in tar archives.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use cairn::backend::local::LocalBackend;
use cairn::backend::{Backend, FileKind};
use cairn::crypto::keyfile::{KdfParams, KeyHeader};
use cairn::repository::Repository;

fn open(repo: &Repo) -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo.path));
    Repository::open(backend, PASSWORD.as_bytes()).expect("open the repository")
}

/// A repository with one backup of a small tree; returns the source's temporary directory,
/// the source path and the snapshot id.
fn with_backup(repo: &Repo) -> (Tmp, std::path::PathBuf, String) {
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a.txt"), b"alpha");
    let v = repo.backup_json([src.as_os_str()]);
    let id = v["snapshot_id"].as_str().expect("snapshot_id").to_string();
    (tmp, src, id)
}

fn flip_byte(path: &Path, at: u64) {
    let mut data = fs::read(path).expect("read file to damage");
    let i = (at as usize).min(data.len() - 1);
    data[i] ^= 0x55;
    fs::write(path, data).expect("write damaged file");
}

fn lock_files(repo: &Repo) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(repo.path.join("locks"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn assert_no_panic(out: &Output) {
    assert!(!out.stderr.contains("panicked"), "{} panicked:\n{}", out.cmdline, out.stderr);
    assert_ne!(out.code, 101, "{} panicked:\n{}", out.cmdline, out.stderr);
}

/// Point 9: a repository may hold a snapshot with a host and tags longer than a format width
/// (65,535): listing and forgetting must not panic ("Formatting argument out of range").
#[test]
fn snapshots_and_forget_cope_with_a_huge_host_and_tag_in_the_repository() {
    let repo = Repo::init();
    let (_tmp, _src, id) = with_backup(&repo);
    let r = open(&repo);
    let (_, mut snap) = r.find_snapshot(&Default::default(), &id, &Default::default()).expect("load the snapshot");
    snap.hostname = "h".repeat(70_000);
    snap.tags = vec!["t".repeat(66_000)];
    snap.time.secs += 10;
    let lock = cairn::lock::AppendLock::acquire(&r, "test", &Default::default()).expect("lock");
    let big = r.write_snapshot(&lock, &snap).expect("write a snapshot through the library");
    drop(lock);

    let out = repo.run(["snapshots"]);
    assert_no_panic(&out);
    let out = out.ok();
    assert!(out.stdout.contains(&"h".repeat(70_000)), "the huge host is listed");
    assert!(out.stdout.contains(&id[..8]) && out.stdout.contains(&big.short()));
    let out = repo.run(["forget", "--keep-last", "1", "--dry-run"]);
    assert_no_panic(&out);
    out.ok();
    let out = repo.run(["forget", "--keep-last", "1", "--dry-run", "--group-by", "host"]);
    assert_no_panic(&out);
    out.ok();
}

/// Point 9: a host or tag too long for a sane table is refused at backup time, exit 1, and
/// nothing is written.
#[test]
fn backup_refuses_a_huge_host_or_tag() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("src/a.txt"), b"alpha");
    let src = tmp.join("src").display().to_string();
    let host = "h".repeat(65_536);
    let out = repo.run(["backup", "--host", &host, &src]).code(1);
    assert!(out.stderr.contains("host name") && out.stderr.contains("255"), "{}", out.stderr);
    assert!(out.stderr.len() < 1000, "the message repeats the whole host: {} bytes", out.stderr.len());
    let tag = "t".repeat(300);
    let out = repo.run(["backup", "--tag", &tag, &src]).code(1);
    assert!(out.stderr.contains("tag"), "{}", out.stderr);
    let out = repo.run(["backup", "--host", "mail\nhost", &src]).code(1);
    assert!(out.stderr.contains("control character"), "{}", out.stderr);
    assert!(repo.snapshots([] as [&str; 0]).is_empty(), "a refused backup wrote a snapshot");
    // At the limits: accepted.
    let host = "h".repeat(255);
    repo.run(["backup", "--host", &host, "--tag", &"t".repeat(255), &src]).ok();
}

/// Point 9: a file modified one nanosecond before 1970 keeps that time through `dump --archive
/// tar` (the PAX record was `-1.999999999`: two seconds early).
#[test]
fn tar_dump_keeps_a_time_just_before_1970() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    let f = src.join("old.txt");
    write(&f, b"from the sixties");
    let times = [(-1i64, 999_999_999u32), (-3, 500_000_000), (-86_400 * 365, 0)];
    for (i, (s, n)) in times.iter().enumerate() {
        let p = src.join(format!("f{i}"));
        write(&p, b"x");
        filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(*s, *n)).expect("set mtime");
    }
    filetime::set_file_mtime(&f, filetime::FileTime::from_unix_time(-1, 999_999_999)).expect("set mtime");
    repo.backup_json([src.as_os_str()]);
    let tar = tmp.join("out.tar");
    let inside = format!("{}", src.display());
    repo.run(["dump", "latest", &inside, "--archive", "tar", "--target", &tar.display().to_string()]).ok();
    let x = tmp.join("x");
    fs::create_dir_all(&x).unwrap();
    let st = std::process::Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x).status().expect("run tar");
    assert!(st.success());
    let rel = src.strip_prefix("/").unwrap();
    for name in ["old.txt", "f0", "f1", "f2"] {
        let want = filetime::FileTime::from_last_modification_time(&fs::metadata(src.join(name)).unwrap());
        let got = filetime::FileTime::from_last_modification_time(&fs::metadata(x.join(rel).join(name)).unwrap());
        assert_eq!((got.unix_seconds(), got.nanoseconds()), (want.unix_seconds(), want.nanoseconds()), "{name}");
    }
}

/// Point 10: `--no-lock` is refused by every command that writes, and accepted by those that
/// only read.
#[test]
fn no_lock_is_refused_by_commands_that_write() {
    let repo = Repo::init();
    let (tmp, src, id) = with_backup(&repo);
    let src = src.display().to_string();
    let pw = tmp.join("pw2");
    write(&pw, b"another password\n");
    let pw = pw.display().to_string();
    let writers: [Vec<&str>; 6] = [
        vec!["backup", &src],
        vec!["key", "add", "--new-password-file", &pw],
        vec!["key", "passwd", "--new-password-file", &pw],
        vec!["forget", &id],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
    ];
    for args in writers {
        let out = repo.cmd().arg("--no-lock").args(&args).run().code(1);
        assert!(out.stderr.contains("--no-lock"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(repo.snapshots([] as [&str; 0]).len(), 1, "a refused command changed the snapshots");
    assert_eq!(fs::read_dir(repo.path.join("keys")).unwrap().count(), 1, "a refused key command changed the keys");
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["check"],
        vec!["forget", "--keep-last", "1", "--dry-run"],
        vec!["prune", "--dry-run"],
        vec!["backup", "--dry-run", &src],
    ] {
        repo.cmd().arg("--no-lock").args(&args).run().ok();
    }
    assert!(lock_files(&repo).is_empty());
}

/// Point 11: an empty or garbage lock file is reported as unreadable (naming it), blocks
/// locking commands with exit 11, and `cairn unlock` (without --remove-all) removes it.
#[test]
fn unreadable_lock_files_are_named_and_removed_by_unlock() {
    let repo = Repo::init();
    let (_tmp, _src, _id) = with_backup(&repo);
    let empty = "0".repeat(64);
    let garbage = "ab".repeat(32);
    fs::write(repo.path.join("locks").join(&empty), b"").unwrap();
    fs::write(repo.path.join("locks").join(&garbage), random_bytes(7, 300)).unwrap();
    let out = repo.run(["snapshots"]).code(11);
    assert!(out.stderr.contains("cannot be read") && out.stderr.contains("cairn unlock"), "{}", out.stderr);
    assert!(out.stderr.contains(&empty) || out.stderr.contains(&garbage), "the file is not named: {}", out.stderr);
    repo.run(["prune"]).code(11);
    let out = repo.cmd().args(["--json", "unlock"]).run().ok();
    let removed = out.json()["removed"].as_array().expect("removed").len();
    assert_eq!(removed, 2, "{}", out.stdout);
    assert!(lock_files(&repo).is_empty());
    repo.run(["snapshots"]).ok();
}

/// Point 11: one damaged snapshot file does not block listing, backup, restore of the others
/// or forgetting it by id; prune refuses (it cannot tell that snapshot's data from unused
/// data) until it is forgotten.
#[test]
fn a_damaged_snapshot_file_is_skipped_named_and_forgettable() {
    let repo = Repo::init();
    let (tmp, src, first) = with_backup(&repo);
    write(src.join("b.txt"), b"beta");
    let second = repo.backup_json([src.as_os_str()])["snapshot_id"].as_str().unwrap().to_string();
    let path = repo.path.join("snapshots").join(&first);
    flip_byte(&path, fs::metadata(&path).unwrap().len() / 2);

    let out = repo.cmd().args(["--json", "snapshots"]).run().ok();
    let listed: Vec<String> =
        out.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, vec![second.clone()]);
    assert!(out.stderr.contains(&first) && out.stderr.contains("damaged"), "{}", out.stderr);
    repo.run(["snapshots"]).ok();
    repo.run(["backup", &src.display().to_string()]).ok();
    let target = tmp.join("target");
    repo.run(["restore", &second, "--target", &target.display().to_string()]).ok();
    assert_eq!(fs::read(restored(&target, &src).join("b.txt")).unwrap(), b"beta");
    repo.run(["forget", "--keep-last", "1", "--dry-run"]).ok();

    let before = fs::read_dir(repo.path.join("data")).unwrap().count();
    let out = repo.run(["prune"]).code(1);
    assert!(out.stderr.contains(&first), "{}", out.stderr);
    assert_eq!(fs::read_dir(repo.path.join("data")).unwrap().count(), before);

    let out = repo.run(["forget", &first[..8]]).ok();
    assert!(out.stderr.contains(&first), "{}", out.stderr);
    assert!(!path.exists(), "forget left the damaged snapshot file");
    repo.run(["prune"]).ok();
    repo.run(["check", "--read-data"]).ok();
}

/// A key file with the given KDF parameters and a random wrapped key: it parses, but no
/// password opens it. Written into the repository under its hash.
fn plant_key(repo: &Repo, kdf: KdfParams, seed: u64) {
    let header = KeyHeader {
        created: 4_000_000_000,
        username: "mallory".into(),
        hostname: "evil".into(),
        kdf,
        salt: [seed as u8; 32],
    };
    let h = cairn::format::encode(&header).unwrap();
    let mut data = FileKind::Key.prefix().to_vec();
    data.extend_from_slice(&(h.len() as u32).to_le_bytes());
    data.extend_from_slice(&h);
    data.extend_from_slice(&random_bytes(seed, 112));
    let name = cairn::id::Id::of_bytes(&data).to_hex();
    fs::write(repo.path.join("keys").join(name), data).unwrap();
}

/// Point 16: at most 20 key files are tried when opening a repository.
#[test]
fn at_most_twenty_key_files_are_tried() {
    let repo = Repo::init();
    for i in 0..21 {
        plant_key(&repo, KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 }, 100 + i);
    }
    let out = repo.cmd().password("not the password").args(["snapshots"]).run().code(12);
    assert!(out.stderr.contains("20 key file(s) tried"), "{}", out.stderr);
}

/// Point 16: key files whose key derivation would cost more than the accepted bound (here
/// 4 GiB × 100 passes) are refused without running it: the repository opens at once with the
/// real key, however many such files were planted, and garbage key files are skipped.
#[test]
fn costly_and_garbage_key_files_do_not_stall_opening() {
    let repo = Repo::init();
    for i in 0..21 {
        plant_key(
            &repo,
            KdfParams { algorithm: 1, memory_kib: 4 * 1024 * 1024, iterations: 100, parallelism: 1 },
            200 + i,
        );
        let junk = random_bytes(300 + i, 200);
        fs::write(repo.path.join("keys").join(cairn::id::Id::of_bytes(&junk).to_hex()), junk).unwrap();
    }
    let t = Instant::now();
    repo.cmd().args(["snapshots"]).timeout(Duration::from_secs(60)).run().ok();
    assert!(t.elapsed() < Duration::from_secs(30), "opening took {:?}", t.elapsed());
}

/// Point 11: a data blob whose indexed copy is damaged is stored again by `backup --force`
/// (which reads back every indexed data blob it would reuse); restores of the old and the new
/// snapshot then succeed byte-identical (readers fall back to the sound copy), and prune keeps
/// the sound copy and drops the damaged one.
#[test]
fn backup_force_stores_a_fresh_copy_of_a_damaged_blob() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    let content = random_bytes(42, 3 << 20);
    write(src.join("big.bin"), &content);
    let first = repo.backup_json([src.as_os_str()])["snapshot_id"].as_str().unwrap().to_string();

    let (pack, _) = damage_largest_data_blob(&repo);

    let restore = |id: &str, name: &str| {
        let target = tmp.join(name);
        let out = repo.run(["restore", id, "--target", &target.display().to_string()]);
        (out, fs::read(restored(&target, &src).join("big.bin")).ok())
    };
    let (out, _) = restore(&first, "t0");
    assert_eq!(out.code, 15, "the damaged blob: exit code 15 (damaged data) expected:\n{}", out.stderr);

    let second = repo.backup_json(["--force".as_ref(), src.as_os_str()])["snapshot_id"].as_str().unwrap().to_string();
    for (i, id) in [&first, &second].into_iter().enumerate() {
        let (out, data) = restore(id, &format!("t1{i}"));
        assert_eq!(out.code, 0, "restore {id} after backup --force:\n{}", out.stderr);
        assert!(data.as_deref() == Some(&content[..]), "restore {id} differs");
    }
    repo.run(["prune", "--max-unused", "0"]).ok();
    assert!(!repo.path.join("data").join(&pack[..2]).join(&pack).exists(), "prune kept the damaged pack");
    repo.run(["check", "--read-data"]).ok();
    let (out, data) = restore(&second, "t2");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(data.as_deref() == Some(&content[..]), "restore after prune differs");
}
