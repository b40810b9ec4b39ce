//! Integration tests of the `cairn` command line: init, backup, snapshots, restore.
//!
//! Every repository, source tree and restore target lives in its own temporary directory;
//! cairn runs without a terminal and with only the CAIRN_* variables a test sets.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;
use filetime::FileTime;
use serde_json::Value;

const MIB: usize = 1 << 20;

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// The JSON object of snapshot `id` in `snaps`.
fn find_snap<'a>(snaps: &'a [Value], id: &str) -> &'a Value {
    snaps.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("snapshot {id} not listed in {snaps:?}"))
}

fn ids(snaps: &[Value]) -> BTreeSet<String> {
    snaps.iter().map(|s| s["id"].as_str().expect("id is a string").to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Round trip
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_preserves_content_types_modes_times_and_links() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = src.join("tree");
    fs::create_dir(&root).unwrap();

    fs::create_dir_all(root.join("empty_dir")).unwrap();
    write(root.join("a/b/c/deep.txt"), "deep inside\n");
    write(root.join("zero.bin"), b"");
    write(root.join("small.txt"), "hello, world\nsecond line\n");
    write(root.join("mode0600.txt"), "private text\n");
    write(root.join("mode0755.sh"), "#!/bin/sh\necho hi\n");
    write(root.join("mode0444.txt"), "read only\n");
    write(root.join("private/secret.txt"), "in a 0700 dir\n");
    let random3 = random_bytes(1, 3_000_000);
    write(root.join("random3m.bin"), &random3);
    let block = random_bytes(2, MIB);
    let repeated: Vec<u8> = block.iter().copied().cycle().take(20 * MIB).collect();
    write(root.join("repeat20m.bin"), &repeated);
    std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link_rel")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("link_dangling")).unwrap();
    write(root.join("hl1"), "shared by two names\n");
    fs::hard_link(root.join("hl1"), root.join("a/hl2")).unwrap();
    mkfifo(&root.join("fifo"), 0o640);
    let non_utf8 = OsStr::from_bytes(b"bad-\xff\xfe-name.bin");
    write(root.join(non_utf8), "non-UTF-8 name\n");
    write(root.join("spaces and ünïcødé ✓ 文件.txt"), "unicode name\n");

    chmod(&root.join("mode0600.txt"), 0o600);
    chmod(&root.join("mode0755.sh"), 0o755);
    chmod(&root.join("mode0444.txt"), 0o444);
    chmod(&root.join("private"), 0o700);
    chmod(&root.join("a"), 0o750);
    chmod(&root, 0o751);

    // Distinct mtimes with nanoseconds, deepest entries first so that setting a directory's
    // time is the last change to it.
    let mut all: Vec<PathBuf> = listing(&root).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, rel) in all.iter().enumerate() {
        let t = FileTime::from_unix_time(1_500_000_000 + 7919 * i as i64, 123_456_789 + 1_001 * i as u32);
        filetime::set_symlink_file_times(root.join(rel), t, t).unwrap();
    }
    let t = FileTime::from_unix_time(1_400_000_000, 987_654_321);
    filetime::set_symlink_file_times(&root, t, t).unwrap();

    let summary = repo.backup_json([&root]);
    let total = regular_file_bytes(&root);
    assert_eq!(summary["total_bytes_processed"], total);
    // The 20 MiB file is 20 copies of one 1 MiB block: content-defined chunking must find
    // repeated chunks, so far less than the whole content is added.
    let added = summary["data_added"].as_u64().expect("data_added");
    assert!(
        added + 5 * (MIB as u64) < total,
        "data_added = {added} for {total} bytes of content: no deduplication inside the repeated file"
    );

    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--target"), target.path.as_os_str()]).ok();
    let dst = restored(&target.path, &root);
    assert_same_tree(&root, &dst);

    let (h1, h2) = (describe(&dst.join("hl1")), describe(&dst.join("a/hl2")));
    assert_eq!(h1.ino, h2.ino, "the hard-linked pair was restored as two separate files");
    assert_eq!(h1.nlink, 2);
    assert_eq!(describe(&dst.join("fifo")).kind, Kind::Fifo);
    assert_eq!(fs::read_link(dst.join("link_dangling")).unwrap(), Path::new("does/not/exist"));
    assert!(!dst.join("link_dangling").exists(), "dangling link must stay dangling");
    assert_eq!(fs::read(dst.join("link_rel")).unwrap(), b"deep inside\n");
}

// ---------------------------------------------------------------------------------------------
// 2. Standard input
// ---------------------------------------------------------------------------------------------

#[test]
fn stdin_backup_round_trips() {
    let repo = Repo::init();
    let data = random_bytes(3, 10_000_000 + 12_345);
    let out =
        repo.cmd().args(["--json", "backup", "--stdin", "--stdin-filename", "db.dump"]).stdin(data.clone()).run().ok();
    let summary = out.json();
    assert_eq!(summary["total_bytes_processed"], data.len() as u64);

    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/db.dump"]));
    assert_eq!(snaps[0]["id"], summary["snapshot_id"]);

    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()]).ok();
    let got = fs::read(target.join("db.dump")).expect("TARGET/db.dump restored");
    assert!(got == data, "restored stream differs: {} bytes, expected {}", got.len(), data.len());
    let names: Vec<_> = fs::read_dir(&target.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsStr::new("db.dump").to_os_string()], "only db.dump in the target");
}

// ---------------------------------------------------------------------------------------------
// 3. snapshots --json and its filters
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshots_json_fields_and_filters() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("one.txt"), "one\n");
    write(src.join("d/two.bin"), random_bytes(4, 123_457));
    write(src.join("d/e/three.bin"), random_bytes(5, 2_000_001));
    write(src.join("empty"), b"");
    std::os::unix::fs::symlink("one.txt", src.join("link")).unwrap();
    let total = regular_file_bytes(&src.path);
    let n_files = 4u64;

    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let a = repo.backup_json([
        OsStr::new("--host"),
        OsStr::new("alpha-host"),
        OsStr::new("--tag"),
        OsStr::new("daily,extra"),
        src.path.as_os_str(),
    ]);
    write(src.join("d/four.txt"), "four\n");
    let b = repo.backup_json([
        OsStr::new("-H"),
        OsStr::new("beta-host"),
        OsStr::new("--tag"),
        OsStr::new("weekly"),
        src.path.as_os_str(),
    ]);
    let after = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (ida, idb) = (a["snapshot_id"].as_str().unwrap().to_string(), b["snapshot_id"].as_str().unwrap().to_string());
    assert_ne!(ida, idb);

    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(ids(&snaps), BTreeSet::from([ida.clone(), idb.clone()]));
    let expected_user = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten().map(|u| u.name);
    for s in &snaps {
        let id = s["id"].as_str().expect("id");
        assert!(is_hex(id, 64), "id {id:?}");
        let short = s["short_id"].as_str().expect("short_id");
        assert!(is_hex(short, 8) && id.starts_with(short), "short_id {short:?} of {id}");
        let time = s["time"].as_str().expect("time");
        let t = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("time {time:?}: {e}"));
        assert!(t >= before && t <= after, "time {time} is not the time of the backup");
        let user = s["username"].as_str().expect("username");
        assert!(!user.is_empty());
        if let Some(u) = &expected_user {
            assert_eq!(user, u);
        }
        assert_eq!(s["paths"], serde_json::json!([src.path.to_str().unwrap()]));
        assert!(is_hex(s["tree"].as_str().expect("tree"), 64));
        assert!(s["parent"].is_null() || is_hex(s["parent"].as_str().unwrap_or(""), 64), "parent {}", s["parent"]);
        let sum = &s["summary"];
        for k in ["files_new", "files_changed", "files_unchanged", "data_added", "total_bytes_processed"] {
            assert!(sum[k].is_u64(), "summary.{k} missing or not a count: {sum}");
        }
        let d = sum["duration_seconds"].as_f64().expect("summary.duration_seconds");
        assert!((0.0..120.0).contains(&d), "duration {d}");
        let start = chrono::DateTime::parse_from_rfc3339(sum["backup_start"].as_str().unwrap()).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(sum["backup_end"].as_str().unwrap()).unwrap();
        assert!(start <= end);
    }

    let sa = find_snap(&snaps, &ida);
    assert_eq!(sa["hostname"], "alpha-host");
    assert_eq!(sa["tags"], serde_json::json!(["daily", "extra"]));
    let sum = &sa["summary"];
    assert_eq!(sum["total_bytes_processed"], total);
    let counted = sum["files_new"].as_u64().unwrap()
        + sum["files_changed"].as_u64().unwrap()
        + sum["files_unchanged"].as_u64().unwrap();
    assert_eq!(counted, n_files, "new + changed + unchanged files");
    assert!(
        sum["data_added"].as_u64().unwrap() >= total,
        "the first backup adds at least the content ({total} bytes): {sum}"
    );
    assert_eq!(sa["summary"], {
        // backup --json printed the same summary figures
        let mut v = a.clone();
        let o = v.as_object_mut().unwrap();
        for k in ["message_type", "snapshot_id", "dry_run"] {
            o.remove(k);
        }
        v
    });

    let sb = find_snap(&snaps, &idb);
    assert_eq!(sb["hostname"], "beta-host");
    assert_eq!(sb["tags"], serde_json::json!(["weekly"]));
    assert_eq!(sb["summary"]["total_bytes_processed"], total + 5);

    let sel = |args: &[&str]| ids(&repo.snapshots(args));
    let only_a = BTreeSet::from([ida.clone()]);
    let only_b = BTreeSet::from([idb.clone()]);
    assert_eq!(sel(&["--host", "alpha-host"]), only_a);
    assert_eq!(sel(&["--host", "beta-host"]), only_b);
    assert_eq!(sel(&["--host", "alpha-host", "--host", "beta-host"]).len(), 2);
    assert!(sel(&["--host", "gamma-host"]).is_empty());
    assert_eq!(sel(&["--tag", "daily"]), only_a);
    assert_eq!(sel(&["--tag", "daily,extra"]), only_a);
    assert!(sel(&["--tag", "daily,weekly"]).is_empty(), "a,b means both tags");
    assert_eq!(sel(&["--tag", "weekly"]), only_b);
    assert_eq!(sel(&["--tag", "extra", "--tag", "weekly"]).len(), 2);
    assert!(sel(&["--host", "alpha-host", "--tag", "weekly"]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. backup --json
// ---------------------------------------------------------------------------------------------

#[test]
fn backup_json_prints_one_summary_with_listed_snapshot_id() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f.txt"), "content\n");
    write(src.join("g/h.bin"), random_bytes(6, 700_000));
    let out = repo.cmd().args([OsStr::new("--json"), OsStr::new("backup"), src.path.as_os_str()]).run().ok();
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "backup --json must print exactly one line:\n{}", out.stdout);
    let v: Value = serde_json::from_str(lines[0]).expect("the line is JSON");
    assert!(v.is_object(), "{v}");
    assert_eq!(v["message_type"], "summary");
    let id = v["snapshot_id"].as_str().expect("snapshot_id");
    assert!(is_hex(id, 64), "snapshot_id {id:?}");
    assert_eq!(v["total_bytes_processed"], 8 + 700_000);
    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(ids(&snaps), BTreeSet::from([id.to_string()]));
    assert!(repo.path.join("snapshots").join(id).is_file(), "snapshot file named by its id");
}

// ---------------------------------------------------------------------------------------------
// 5. Wrong password
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_password_exits_12_and_changes_nothing() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f.txt"), "content\n");
    repo.backup_json([&src.path]);
    let state = raw_state(&repo.path);
    let target = Tmp::new();

    let runs = [
        vec![OsStr::new("snapshots")],
        vec![OsStr::new("backup"), src.path.as_os_str()],
        vec![OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()],
    ];
    for args in runs {
        let out = cairn().arg("-r").arg(&repo.path).args(&args).password("not the password").run().code(12);
        assert!(out.stderr.to_lowercase().contains("password"), "stderr does not mention the password: {}", out.stderr);
        assert!(raw_state(&repo.path) == state, "{} modified the repository", out.cmdline);
    }
    assert_eq!(fs::read_dir(&target.path).unwrap().count(), 0, "restore with a wrong password wrote to the target");
    assert_eq!(repo.snapshots::<[&str; 0], &str>([]).len(), 1);
}

#[test]
fn json_errors_are_restic_exit_error_objects_with_the_exit_code() {
    let repo = Repo::init();
    let missing = Tmp::new();
    let cases = [
        (cairn().arg("--json").arg("-r").arg(missing.join("nothing")).arg("snapshots").password(PASSWORD), 10),
        (cairn().arg("--json").arg("-r").arg(&repo.path).arg("snapshots").password("not the password"), 12),
        (
            cairn()
                .arg("--json")
                .arg("-r")
                .arg(&repo.path)
                .args(["restore", "ffffffff", "-t"])
                .arg(&missing.path)
                .password(PASSWORD),
            1,
        ),
    ];
    for (cmd, code) in cases {
        let out = cmd.run().code(code);
        assert!(out.stdout.trim().is_empty(), "an error wrote to stdout: {}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one JSON line on stderr: {}", out.stderr);
        let v: Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", out.stderr));
        assert_eq!(v["message_type"], "exit_error");
        assert_eq!(v["code"], code);
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Missing repository, double init, password sources
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_repository_double_init_and_password_sources() {
    let tmp = Tmp::new();
    let missing = tmp.join("no-repo-here");
    let target = tmp.join("target");
    for args in [
        vec![OsStr::new("snapshots")],
        vec![OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.as_os_str()],
    ] {
        cairn().arg("-r").arg(&missing).args(args).password(PASSWORD).run().code(10);
    }
    let src = Tmp::new();
    write(src.join("x"), "x");
    cairn().arg("-r").arg(&missing).arg("backup").arg(&src.path).password(PASSWORD).run().code(10);
    assert!(!missing.join("config").exists());

    let repo = Repo::init();
    repo.backup_json([&src.path]);
    let state = raw_state(&repo.path);
    for pw in [PASSWORD, "another password"] {
        let out = cairn().arg("-r").arg(&repo.path).arg("init").password(pw).run();
        assert_ne!(out.code, 0, "second init succeeded:\n{}", out.stdout);
        assert!(raw_state(&repo.path) == state, "second init changed the repository");
    }
    assert_eq!(repo.snapshots::<[&str; 0], &str>([]).len(), 1, "repository still opens after a second init");

    // No password anywhere and no terminal.
    let out = cairn().arg("-r").arg(&repo.path).arg("snapshots").run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("CAIRN_PASSWORD"), "stderr: {}", out.stderr);
    let fresh = tmp.join("fresh");
    let out = cairn().arg("-r").arg(&fresh).arg("init").run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("CAIRN_PASSWORD"), "stderr: {}", out.stderr);
    assert!(!fresh.join("config").exists(), "init without a password created a repository");

    // --password-file: first line only.
    let pwfile = tmp.join("pw.txt");
    write(&pwfile, format!("{PASSWORD}\nignored second line\n"));
    let out =
        cairn().arg("-r").arg(&repo.path).arg("--password-file").arg(&pwfile).args(["--json", "snapshots"]).run().ok();
    assert_eq!(out.json().as_array().map(Vec::len), Some(1));
    let badfile = tmp.join("bad.txt");
    write(&badfile, "wrong\n");
    cairn().arg("-r").arg(&repo.path).arg("--password-file").arg(&badfile).arg("snapshots").run().code(12);
    cairn().arg("-r").arg(&repo.path).arg("snapshots").env("CAIRN_PASSWORD_FILE", &pwfile).run().ok();

    // --password-command.
    let cmd_repo = tmp.join("cmd-repo");
    cairn().arg("-r").arg(&cmd_repo).args(["--password-command", "echo pw", "init"]).run().ok();
    let out =
        cairn().arg("-r").arg(&cmd_repo).args(["--password-command", "echo pw", "--json", "snapshots"]).run().ok();
    assert_eq!(out.json(), serde_json::json!([]));
    cairn().arg("-r").arg(&cmd_repo).arg("snapshots").password("pw").run().ok();
    cairn().arg("-r").arg(&cmd_repo).args(["--password-command", "echo pwx", "snapshots"]).run().code(12);
    let out = cairn().arg("-r").arg(&cmd_repo).args(["--password-command", "exit 3", "snapshots"]).run();
    assert_ne!(out.code, 0);
}

// ---------------------------------------------------------------------------------------------
// 7. No plaintext in the repository
// ---------------------------------------------------------------------------------------------

#[test]
fn repository_contains_no_plaintext() {
    let repo = Repo::init();
    let src = Tmp::new();
    let canary = "CANARY-0123456789-canary";
    let name = "UNIQUE-FILENAME-8d7f.txt";
    let dirname = "SECRET-DIRNAME-31c9";
    write(src.join(dirname).join(name), canary.repeat(5000));
    // Highly compressible, and also carrying the canary once in a while.
    let compressible: String = (0..20000)
        .map(|i| format!("line {} of a log file {}\n", i % 7, if i % 1000 == 0 { canary } else { "" }))
        .collect();
    write(src.join("compressible.log"), compressible);
    write(src.join("small"), canary);
    repo.backup_json([
        OsStr::new("--host"),
        OsStr::new("HOSTCANARY-77ab"),
        OsStr::new("--tag"),
        OsStr::new("TAGCANARY-5e5e"),
        src.path.as_os_str(),
    ]);
    // The repository is readable afterwards (the data really is in there).
    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()]).ok();
    assert_eq!(
        fs::read(restored(&target.path, &src.join(dirname).join(name))).unwrap(),
        canary.repeat(5000).as_bytes()
    );

    let needles: [&[u8]; 5] =
        [canary.as_bytes(), name.as_bytes(), dirname.as_bytes(), b"HOSTCANARY-77ab", b"TAGCANARY-5e5e"];
    let state = raw_state(&repo.path);
    assert!(state.values().flatten().count() >= 5, "expected config, key, pack(s), index, snapshot");
    for (path, content) in &state {
        let path_bytes = path.as_os_str().as_bytes();
        for n in needles {
            assert!(
                !contains(path_bytes, n),
                "repository file name {} contains {:?}",
                path.display(),
                String::from_utf8_lossy(n)
            );
            if let Some(c) = content {
                assert!(
                    !contains(c, n),
                    "repository file {} contains {:?} in plaintext",
                    path.display(),
                    String::from_utf8_lossy(n)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Damaged pack
// ---------------------------------------------------------------------------------------------

#[test]
fn damaged_pack_is_reported_and_never_restored() {
    let repo = Repo::init();
    let src = Tmp::new();
    let mut files = Vec::new();
    for i in 0..5u64 {
        let p = src.join(format!("file{i}.bin"));
        write(&p, random_bytes(100 + i, 1_200_000 + 300_000 * i as usize));
        files.push(p);
    }
    write(src.join("small.txt"), "small file\n");
    repo.backup_json([&src.path]);

    // An intact repository verifies.
    let t0 = Tmp::new();
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--verify"),
        OsStr::new("-t"),
        t0.path.as_os_str(),
    ])
    .ok();
    assert_same_tree(&src.path, &restored(&t0.path, &src.path));

    // Flip one byte in the middle of the data pack.
    let packs: Vec<(PathBuf, u64)> = listing(&repo.path.join("data"))
        .into_iter()
        .filter(|(_, e)| e.kind == Kind::File)
        .map(|(p, e)| (repo.path.join("data").join(p), e.content.unwrap().len() as u64))
        .collect();
    let (pack, size) = packs.iter().max_by_key(|(_, s)| *s).expect("a pack under data/").clone();
    // (Each backup worker fills its own pack, so the data may span more than one pack.)
    assert!(size > 1_200_000, "largest pack is only {size} bytes: it holds no whole file");
    let pack_id = pack.file_name().unwrap().to_str().unwrap().to_string();
    {
        let mut f = fs::OpenOptions::new().read(true).write(true).open(&pack).unwrap();
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(size / 2)).unwrap();
        std::io::Read::read_exact(&mut f, &mut b).unwrap();
        b[0] ^= 0x10;
        f.seek(SeekFrom::Start(size / 2)).unwrap();
        f.write_all(&b).unwrap();
    }

    let target = Tmp::new();
    let out = repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()]);
    // Exit 15: repository data is damaged (not 1, a fatal error of any kind).
    assert_eq!(out.code, 15, "restore of a damaged pack: expected exit 15:\n{}", out.stderr);
    assert!(out.stderr.contains("check --read-data"), "no advice to run check --read-data:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&pack_id) || out.stderr.contains(&pack_id[..8]),
        "stderr does not name pack {pack_id}:\n{}",
        out.stderr
    );
    let dst = restored(&target.path, &src.path);
    let mut missing = Vec::new();
    for f in &files {
        let r = dst.join(f.file_name().unwrap());
        match fs::symlink_metadata(&r) {
            Ok(_) => {
                assert!(fs::read(&r).unwrap() == fs::read(f).unwrap(), "{} restored with wrong content", r.display())
            }
            Err(_) => missing.push(f.clone()),
        }
    }
    // The flipped byte lies in exactly one blob, which belongs to exactly one file.
    assert_eq!(missing.len(), 1, "expected exactly one damaged file, missing: {missing:?}\nstderr:\n{}", out.stderr);
    for m in &missing {
        assert!(
            out.stderr.contains(m.to_str().unwrap()),
            "stderr does not name the damaged file {}:\n{}",
            m.display(),
            out.stderr
        );
    }
    // Nothing else was written: every restored entry exists in the source with the same bytes.
    for (rel, e) in listing(&dst) {
        let s = describe(&src.join(&rel));
        assert_eq!(s.kind, e.kind, "{}", rel.display());
        assert!(s.content == e.content, "{} restored with wrong content", rel.display());
    }
    assert_eq!(fs::read(dst.join("small.txt")).unwrap(), b"small file\n");
}

// ---------------------------------------------------------------------------------------------
// 9. Deduplication
// ---------------------------------------------------------------------------------------------

#[test]
fn deduplication_across_snapshots() {
    let repo = Repo::init();
    let src = Tmp::new();
    for i in 0..3u64 {
        write(src.join(format!("big{i}.bin")), random_bytes(200 + i, 9 * MIB));
    }
    for i in 0..20u64 {
        write(src.join(format!("small/s{i}.bin")), random_bytes(300 + i, 100_000));
    }
    let tree = regular_file_bytes(&src.path);
    assert!(tree > 29_000_000);

    let s0 = repo.size();
    repo.backup_json([&src.path]);
    let s1 = repo.size();
    assert!(s1 - s0 >= tree, "the first backup stored {} bytes for {tree} bytes of random data", s1 - s0);

    repo.backup_json([&src.path]);
    let s2 = repo.size();
    assert!(s2 - s1 < tree / 100, "second backup of an unchanged tree grew the repository by {} bytes", s2 - s1);

    // Overwrite 1 MiB in the middle of one big file.
    let big1 = src.join("big1.bin");
    let mut content = fs::read(&big1).unwrap();
    content[4 * MIB..5 * MIB].copy_from_slice(&random_bytes(999, MIB));
    fs::write(&big1, &content).unwrap();
    let out = repo.backup_json([&src.path]);
    let s3 = repo.size();
    assert!(s3 - s2 >= MIB as u64, "the changed MiB was not stored (grew {} bytes)", s3 - s2);
    assert!(s3 - s2 < 5_000_000, "changing 1 MiB grew the repository by {} bytes", s3 - s2);

    // The latest snapshot holds the modified content.
    let target = Tmp::new();
    let id = out["snapshot_id"].as_str().unwrap();
    repo.run([
        OsStr::new("restore"),
        OsStr::new(id),
        OsStr::new("-t"),
        target.path.as_os_str(),
        OsStr::new("--include"),
        big1.as_os_str(),
    ])
    .ok();
    assert!(fs::read(restored(&target.path, &big1)).unwrap() == content, "restored big1.bin differs");
    assert!(!restored(&target.path, &src.join("big0.bin")).exists());

    // A pattern that matches nothing restores nothing: not a success.
    let empty = Tmp::new();
    let out =
        repo.cmd().args(["restore", id, "-t"]).arg(&empty.path).args(["--include", "/no/such/path"]).run().code(1);
    assert!(out.stderr.contains("nothing in snapshot") && out.stderr.contains("/no/such/path"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 10. Unreadable source
// ---------------------------------------------------------------------------------------------

#[test]
fn unreadable_source_exits_3_and_saves_the_rest() {
    let repo = Repo::init();
    let src = Tmp::new();
    let tree = src.join("tree");
    write(tree.join("readable.txt"), "readable\n");
    write(tree.join("sub/also.txt"), "also readable\n");
    let bad;
    let mut args = vec![tree.clone()];
    if is_root() {
        // root reads everything: use a source path that does not exist instead.
        bad = src.join("does-not-exist");
        args.push(bad.clone());
    } else {
        bad = tree.join("sub/unreadable.txt");
        write(&bad, "secret\n");
        chmod(&bad, 0o000);
    }
    let out = repo.cmd().arg("--json").arg("backup").args(&args).run().code(3);
    assert!(out.stderr.contains(bad.to_str().unwrap()), "stderr does not name {}:\n{}", bad.display(), out.stderr);
    let id = out.json()["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(ids(&snaps), BTreeSet::from([id.clone()]));
    assert!(find_snap(&snaps, &id)["summary"]["errors"].as_u64().unwrap() >= 1);

    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new(&id[..8]), OsStr::new("-t"), target.path.as_os_str()]).ok();
    let dst = restored(&target.path, &tree);
    assert_eq!(fs::read(dst.join("readable.txt")).unwrap(), b"readable\n");
    assert_eq!(fs::read(dst.join("sub/also.txt")).unwrap(), b"also readable\n");
    assert!(
        fs::symlink_metadata(restored(&target.path, &bad)).is_err(),
        "the unreadable source appears in the restore"
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Restore --include / --exclude
// ---------------------------------------------------------------------------------------------

fn include_exclude_tree(src: &Tmp) -> PathBuf {
    let root = src.join("tree");
    for (p, c) in [
        ("keep.txt", "keep"),
        ("app.log", "log 1"),
        ("sub/a.txt", "a"),
        ("sub/b.log", "log 2"),
        ("sub/deeper/c.txt", "c"),
        ("sub/deeper/d.log", "log 3"),
        ("other/d.txt", "d"),
        ("subway/e.txt", "e"),
    ] {
        write(root.join(p), c);
    }
    root
}

fn files_below(p: &Path) -> BTreeSet<String> {
    listing(p).into_iter().filter(|(_, e)| e.kind == Kind::File).map(|(p, _)| p.to_str().unwrap().to_string()).collect()
}

#[test]
fn restore_include_and_exclude() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = include_exclude_tree(&src);
    repo.backup_json([&root]);

    let t1 = Tmp::new();
    let pattern = format!("{}/sub/**", root.display());
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("-t"),
        t1.path.as_os_str(),
        OsStr::new("--include"),
        OsStr::new(&pattern),
    ])
    .ok();
    let dst = restored(&t1.path, &root);
    assert_eq!(
        files_below(&dst),
        BTreeSet::from(["sub/a.txt", "sub/b.log", "sub/deeper/c.txt", "sub/deeper/d.log"].map(String::from))
    );
    assert!(
        !dst.join("other").exists() && !dst.join("subway").exists(),
        "directories outside the include were created"
    );
    assert_eq!(fs::read(dst.join("sub/deeper/c.txt")).unwrap(), b"c");

    let t2 = Tmp::new();
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("-t"),
        t2.path.as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new("*.log"),
    ])
    .ok();
    let dst = restored(&t2.path, &root);
    assert_eq!(
        files_below(&dst),
        BTreeSet::from(["keep.txt", "sub/a.txt", "sub/deeper/c.txt", "other/d.txt", "subway/e.txt"].map(String::from))
    );
    assert_eq!(fs::read(dst.join("other/d.txt")).unwrap(), b"d");
}

// ---------------------------------------------------------------------------------------------
// 12. Backup --exclude / --exclude-file
// ---------------------------------------------------------------------------------------------

#[test]
fn backup_excludes() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = src.join("tree");
    for p in [
        "keep.txt",
        "x.tmp",
        "sub/y.tmp",
        "sub/keep.tmp.txt",
        "cache/blob.bin",
        "sub/cache/inner.txt",
        "sub/cachet/kept.txt",
        "z.bak",
    ] {
        write(root.join(p), p);
    }
    let exfile = src.join("excludes.txt");
    write(&exfile, "# a comment\n\ncache\n*.bak\n");
    let summary = repo.backup_json([
        OsStr::new("--exclude"),
        OsStr::new("*.tmp"),
        OsStr::new("--exclude-file"),
        exfile.as_os_str(),
        root.as_os_str(),
    ]);
    assert_eq!(summary["total_files_processed"], 3);

    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()]).ok();
    let dst = restored(&target.path, &root);
    assert_eq!(
        files_below(&dst),
        BTreeSet::from(["keep.txt", "sub/keep.tmp.txt", "sub/cachet/kept.txt"].map(String::from))
    );
    assert!(!dst.join("cache").exists() && !dst.join("sub/cache").exists(), "an excluded directory was stored");
    assert_eq!(fs::read(dst.join("sub/keep.tmp.txt")).unwrap(), b"sub/keep.tmp.txt");
}

// ---------------------------------------------------------------------------------------------
// 13. Restore never follows planted symlinks
// ---------------------------------------------------------------------------------------------

#[test]
fn restore_never_writes_through_symlinks() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = src.join("tree");
    write(root.join("sub/file.txt"), "real content\n");
    write(root.join("top.txt"), "top\n");
    repo.backup_json([&root]);
    let restore = |target: &Path| {
        repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.as_os_str()]).ok();
    };

    // The first component of the restored path is a symlink out of the target.
    let outside = Tmp::new();
    let target = Tmp::new();
    let first = root.components().nth(1).unwrap().as_os_str().to_owned();
    std::os::unix::fs::symlink(&outside.path, target.join(&first)).unwrap();
    restore(&target.path);
    assert_eq!(fs::read_dir(&outside.path).unwrap().count(), 0, "restore wrote through a symlinked path component");
    assert!(fs::symlink_metadata(target.join(&first)).unwrap().is_dir(), "the planted symlink is still in place");
    let dst = restored(&target.path, &root);
    assert_eq!(fs::read(dst.join("sub/file.txt")).unwrap(), b"real content\n");

    // A directory deep in the path is a symlink out of the target.
    let outside2 = Tmp::new();
    fs::remove_dir_all(dst.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside2.path, dst.join("sub")).unwrap();
    // The file itself is a symlink to a file outside.
    let outside3 = Tmp::new();
    let victim = outside3.join("victim.txt");
    write(&victim, "victim\n");
    fs::remove_file(dst.join("top.txt")).unwrap();
    std::os::unix::fs::symlink(&victim, dst.join("top.txt")).unwrap();
    restore(&target.path);
    assert_eq!(fs::read_dir(&outside2.path).unwrap().count(), 0, "restore wrote through a symlinked directory");
    assert_eq!(fs::read(&victim).unwrap(), b"victim\n", "restore wrote through a symlinked file");
    assert!(fs::symlink_metadata(dst.join("sub")).unwrap().is_dir());
    assert!(fs::symlink_metadata(dst.join("top.txt")).unwrap().is_file());
    assert_eq!(fs::read(dst.join("sub/file.txt")).unwrap(), b"real content\n");
    assert_eq!(fs::read(dst.join("top.txt")).unwrap(), b"top\n");
}

// ---------------------------------------------------------------------------------------------
// 14. Snapshot id prefixes
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_id_prefixes() {
    let repo = Repo::init();
    // Back up small streams until two snapshot ids share their first hex digit (at most 17).
    let mut seen: Vec<String> = Vec::new();
    let shared = loop {
        let n = seen.len();
        assert!(n <= 16);
        let out = repo
            .cmd()
            .args(["--json", "backup", "--stdin", "--stdin-filename", "f.txt"])
            .stdin(format!("stream {n}\n").into_bytes())
            .run()
            .ok();
        let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
        if let Some(other) = seen.iter().find(|s| s[..1] == id[..1]) {
            let common = other.chars().zip(id.chars()).take_while(|(a, b)| a == b).count();
            seen.push(id.clone());
            break id[..common].to_string();
        }
        seen.push(id);
    };

    // A unique 8-character prefix restores that snapshot.
    let n = seen.len() - 1;
    let pick = seen[n].clone();
    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new(&pick[..8]), OsStr::new("-t"), target.path.as_os_str()]).ok();
    assert_eq!(fs::read(target.join("f.txt")).unwrap(), format!("stream {n}\n").as_bytes());

    // An ambiguous prefix fails and restores nothing.
    let t2 = Tmp::new();
    let out = repo.run([OsStr::new("restore"), OsStr::new(&shared), OsStr::new("-t"), t2.path.as_os_str()]);
    assert_ne!(out.code, 0, "ambiguous prefix {shared:?} was accepted");
    assert!(out.stderr.contains("ambiguous"), "unclear message for an ambiguous prefix: {}", out.stderr);
    assert_eq!(fs::read_dir(&t2.path).unwrap().count(), 0);

    // An unknown prefix fails and restores nothing.
    let unknown =
        (0..=u32::MAX).map(|i| format!("{i:08x}")).find(|p| !seen.iter().any(|s| s.starts_with(p.as_str()))).unwrap();
    let out = repo.run([OsStr::new("restore"), OsStr::new(&unknown), OsStr::new("-t"), t2.path.as_os_str()]);
    assert_ne!(out.code, 0, "unknown prefix {unknown} was accepted");
    assert!(out.stderr.contains(&unknown) && out.stderr.contains("no snapshot"), "unclear message: {}", out.stderr);
    assert_eq!(fs::read_dir(&t2.path).unwrap().count(), 0);

    // Not hex at all.
    let out = repo.run([OsStr::new("restore"), OsStr::new("zz-not-an-id"), OsStr::new("-t"), t2.path.as_os_str()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("zz-not-an-id"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 15. Many hard links restored in parallel (extends test 1, which has a single pair)
// ---------------------------------------------------------------------------------------------

#[test]
fn many_hardlinks_restore_as_shared_inodes() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = src.join("tree");
    for i in 0..300 {
        write(root.join(format!("a/f{i}")), format!("file {i}\n"));
        fs::create_dir_all(root.join("b")).unwrap();
        fs::hard_link(root.join(format!("a/f{i}")), root.join(format!("b/g{i}"))).unwrap();
    }
    repo.backup_json([&root]);
    // The outcome depends on thread scheduling: restore several times, all must be right.
    for round in 0..3 {
        let target = Tmp::new();
        let out = repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("-t"), target.path.as_os_str()]);
        let dst = restored(&target.path, &root);
        let mut broken = Vec::new();
        for i in 0..300 {
            let (a, b) = (dst.join(format!("a/f{i}")), dst.join(format!("b/g{i}")));
            match (fs::symlink_metadata(&a), fs::symlink_metadata(&b)) {
                (Ok(_), Ok(_)) => {
                    let (ea, eb) = (describe(&a), describe(&b));
                    assert_eq!(ea.content.as_deref(), Some(format!("file {i}\n").as_bytes()));
                    if ea.ino != eb.ino {
                        broken.push(format!("pair {i}: two inodes"));
                    }
                }
                _ => broken.push(format!("pair {i}: a name is missing")),
            }
        }
        assert!(
            out.code == 0 && broken.is_empty(),
            "round {round}: exit {}, {} broken pairs (first: {:?})\nstderr (start):\n{}",
            out.code,
            broken.len(),
            broken.first(),
            &out.stderr[..out.stderr.len().min(600)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 16. Any OpenDAL service through `opendal:SCHEME` and -o options (the README's example)
// ---------------------------------------------------------------------------------------------

#[test]
fn opendal_scheme_with_options_round_trips() {
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a/one.txt"), b"one\n");
    write(src.join("b/two.bin"), random_bytes(16, 700_000));
    let root = tmp.join("odrepo");
    let base = |c: Cmd| {
        c.arg("-r")
            .arg("opendal:fs")
            .arg("-o")
            .arg(format!("root={}", root.display()))
            .arg("--cache-dir")
            .arg(tmp.join("cache"))
            .password(PASSWORD)
    };
    base(cairn()).arg("init").run().ok();
    // The repository layout is the same as on a local disk, written through OpenDAL.
    assert!(root.join("config").is_file(), "no config under the OpenDAL root");
    assert_eq!(fs::read_dir(root.join("keys")).unwrap().count(), 1);
    base(cairn()).arg("backup").arg(&src).run().ok();
    let target = tmp.join("out");
    base(cairn()).args(["restore", "latest", "--target"]).arg(&target).run().ok();
    let dst = restored(&target, &src);
    assert_eq!(fs::read(dst.join("a/one.txt")).unwrap(), b"one\n");
    assert_eq!(fs::read(dst.join("b/two.bin")).unwrap(), random_bytes(16, 700_000));
    // A wrong option is refused with a message naming it.
    let out = cairn().args(["-r", "opendal:nosuchservice", "snapshots"]).password(PASSWORD).run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("nosuchservice"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 17. Parent snapshots: unchanged files are not read again, changed ones are; --force reads all
// ---------------------------------------------------------------------------------------------

fn counts(summary: &Value) -> (u64, u64, u64) {
    let n = |k: &str| summary[k].as_u64().unwrap_or_else(|| panic!("no {k} in {summary}"));
    (n("files_new"), n("files_changed"), n("files_unchanged"))
}

#[test]
fn parent_snapshot_change_detection() {
    let repo = Repo::init();
    let src = Tmp::new();
    for i in 0..5 {
        write(src.join(format!("d/f{i}")), random_bytes(i, 10_000));
    }
    let first = repo.backup_json([&src.path]);
    assert_eq!(counts(&first), (5, 0, 0));
    let first_id = first["snapshot_id"].as_str().unwrap().to_string();

    // Unchanged tree: nothing read, nothing added, the parent is recorded.
    let second = repo.backup_json([&src.path]);
    assert_eq!(counts(&second), (0, 0, 5));
    // No content was added (tree blobs may be: /tmp above the source changes as other tests run).
    assert_eq!(second["data_blobs"].as_u64(), Some(0));
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.last().unwrap()["parent"].as_str(), Some(first_id.as_str()));

    // One file rewritten with the same size but other content and mtime, one added.
    write(src.join("d/f2"), random_bytes(99, 10_000));
    filetime::set_file_mtime(src.join("d/f2"), FileTime::from_unix_time(1_500_000_000, 0)).unwrap();
    write(src.join("d/new"), b"new file\n");
    let third = repo.backup_json([&src.path]);
    assert_eq!(counts(&third), (1, 1, 4));
    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--target"), target.path.as_os_str()]).ok();
    let dst = restored(&target.path, &src.path);
    assert_eq!(fs::read(dst.join("d/f2")).unwrap(), random_bytes(99, 10_000));
    assert_eq!(fs::read(dst.join("d/f0")).unwrap(), random_bytes(0, 10_000));

    // A change that keeps size and mtime but not ctime is seen (ctime moves on any write);
    // with --ignore-ctime --ignore-inode it is not.
    let path = src.join("d/f3");
    let mtime = FileTime::from_last_modification_time(&fs::metadata(&path).unwrap());
    write(&path, random_bytes(77, 10_000));
    filetime::set_file_mtime(&path, mtime).unwrap();
    let ignoring = repo.backup_json([OsStr::new("--ignore-ctime"), OsStr::new("--ignore-inode"), src.path.as_os_str()]);
    assert_eq!(counts(&ignoring), (0, 0, 6));
    // (That snapshot records f3's new ctime with its old content, as restic does: the price
    // of --ignore-ctime.) The same kind of change to another file, without the flags:
    let path = src.join("d/f4");
    let mtime = FileTime::from_last_modification_time(&fs::metadata(&path).unwrap());
    write(&path, random_bytes(78, 10_000));
    filetime::set_file_mtime(&path, mtime).unwrap();
    let strict = repo.backup_json([&src.path]);
    assert_eq!(counts(&strict), (0, 1, 5));

    // --force reads everything; a different path set has no parent.
    let forced = repo.backup_json([OsStr::new("--force"), src.path.as_os_str()]);
    assert_eq!(counts(&forced), (6, 0, 0));
    let other = repo.backup_json([src.path.join("d")]);
    assert_eq!(counts(&other), (6, 0, 0));
}

#[test]
fn stdin_is_always_read_and_compared_by_content() {
    let repo = Repo::init();
    let run = |data: Vec<u8>| {
        let out =
            repo.cmd().args(["--json", "backup", "--stdin", "--stdin-filename", "db.dump"]).stdin(data).run().ok();
        out.json()
    };
    assert_eq!(counts(&run(random_bytes(5, 300_000))), (1, 0, 0));
    let same = run(random_bytes(5, 300_000));
    assert_eq!(counts(&same), (0, 0, 1));
    assert_eq!(same["total_bytes_processed"].as_u64(), Some(300_000), "the stream must be read in full");
    assert_eq!(counts(&run(random_bytes(6, 300_000))), (0, 1, 0));
}

// ---------------------------------------------------------------------------------------------
// 18. Sparse files restore sparse; Ctrl-C stops a backup with exit 130, repository intact
// ---------------------------------------------------------------------------------------------

#[test]
fn sparse_file_restores_sparse() {
    use std::os::unix::fs::MetadataExt;
    let repo = Repo::init();
    let src = Tmp::new();
    let path = src.join("db.img");
    {
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&random_bytes(1, 100_000)).unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap(); // a 40 MiB hole
        f.write_all(&random_bytes(2, 100_000)).unwrap();
    }
    repo.backup_json([&src.path]);
    let target = Tmp::new();
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--target"), target.path.as_os_str()]).ok();
    let out = restored(&target.path, &src.path).join("db.img");
    assert_eq!(fs::read(&out).unwrap(), fs::read(&path).unwrap());
    let md = fs::metadata(&out).unwrap();
    // Allocated bytes (st_blocks is in 512-byte units) far below the 40 MiB length.
    assert!(md.blocks() * 512 < 8 << 20, "restored file occupies {} bytes", md.blocks() * 512);
}

#[test]
fn interrupted_backup_exits_130_and_leaves_a_valid_repository() {
    let repo = Repo::init();
    let mut child = repo.spawn(["backup", "--stdin", "--stdin-filename", "slow.dump"]);
    let mut stdin = child.stdin.take().unwrap();
    // Feed 24 MiB (several packs' worth of windows), then interrupt while still feeding.
    for i in 0..24u64 {
        stdin.write_all(&random_bytes(i, 1 << 20)).unwrap();
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut i = 100;
    while child.try_wait().unwrap().is_none() && i < 400 {
        if stdin.write_all(&random_bytes(i, 1 << 16)).is_err() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        i += 1;
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    // No snapshot was written, and the repository still opens and backs up.
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty());
    let again = repo.cmd().args(["--json", "backup", "--stdin"]).stdin(random_bytes(0, 3 << 20)).run().ok().json();
    assert!(again["snapshot_id"].is_string());
}

// ---------------------------------------------------------------------------------------------
// Help, exit codes and messages that say what to fix
// ---------------------------------------------------------------------------------------------

#[test]
fn help_shows_global_options_heading_repository_forms_and_exit_codes() {
    let top = cairn().arg("--help").run().ok();
    for code in ["13", "14", "15", "130"] {
        assert!(
            top.stdout.lines().any(|l| l.trim_start().starts_with(code)),
            "cairn --help has no exit code {code}:\n{}",
            top.stdout
        );
    }
    assert!(top.stdout.contains("Exit codes:") && top.stdout.contains("check --read-data"), "{}", top.stdout);
    for cmd in ["backup", "restore", "check", "dump", "snapshots"] {
        let out = cairn().args([cmd, "--help"]).run().ok();
        let heading = out
            .stdout
            .find("Global options:")
            .unwrap_or_else(|| panic!("cairn {cmd} --help has no \"Global options\" heading:\n{}", out.stdout));
        let repo = out
            .stdout
            .find("--repo <REPO>")
            .unwrap_or_else(|| panic!("cairn {cmd} --help lists no --repo:\n{}", out.stdout));
        assert!(repo > heading, "cairn {cmd} --help: --repo is not under \"Global options\":\n{}", out.stdout);
        let below = &out.stdout[heading..];
        assert!(
            below.contains("--password-file") && below.contains("--limit-upload"),
            "cairn {cmd} --help:\n{}",
            out.stdout
        );
    }
    let out = cairn().args(["backup", "--help"]).run().ok();
    assert!(
        out.stdout.contains("s3:") && out.stdout.contains("opendal:") && out.stdout.contains("local path"),
        "-r help:\n{}",
        out.stdout
    );
}

#[test]
fn dump_latest_filtered_by_path_and_a_missing_path_names_the_snapshot() {
    let repo = Repo::init();
    let dump = random_bytes(7, 300_000);
    repo.cmd().args(["backup", "--stdin", "--stdin-filename", "maildb.dump"]).stdin(dump.clone()).run().ok();
    let src = Tmp::new();
    write(src.join("vmail/a.txt"), "mail\n");
    let later = repo.backup_json([src.join("vmail")]);
    let later_id = later["snapshot_id"].as_str().unwrap().to_string();
    // `latest` is the directory backup: it has no /maildb.dump, and the error says which
    // snapshot was used and how to pick the other.
    let out = repo.run(["dump", "latest", "/maildb.dump"]).code(1);
    assert!(out.stderr.contains("/maildb.dump is not in the snapshot"), "{}", out.stderr);
    assert!(out.stderr.contains(&later_id[..8]), "the error does not name snapshot {later_id}:\n{}", out.stderr);
    assert!(out.stderr.contains("--path"), "the error does not suggest --path:\n{}", out.stderr);
    // README's example, with the filter.
    let got = src.join("got.dump");
    repo.cmd().args(["dump", "latest", "/maildb.dump", "--path", "/maildb.dump", "--target"]).arg(&got).run().ok();
    assert!(fs::read(&got).unwrap() == dump, "dump latest --path /maildb.dump wrote other bytes");
}

#[test]
fn repository_path_or_restore_target_that_is_a_file_gets_a_sentence() {
    let tmp = Tmp::new();
    let file = tmp.join("hostname");
    write(&file, "host\n");
    for args in [vec!["init"], vec!["snapshots"]] {
        let out = cairn().arg("-r").arg(&file).args(&args).password(PASSWORD).run();
        assert_ne!(out.code, 0, "{args:?} on a file as repository succeeded");
        assert!(out.stderr.contains("is a file, not a directory"), "{args:?}:\n{}", out.stderr);
        assert!(!out.stderr.contains("os error"), "{args:?}: a bare OS error:\n{}", out.stderr);
    }
    assert_eq!(fs::read(&file).unwrap(), b"host\n");
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f.txt"), "f\n");
    repo.backup_json([&src.path]);
    let out = repo.cmd().args(["restore", "latest", "--target"]).arg(&file).run().code(1);
    assert!(out.stderr.contains("is a file, not a directory"), "{}", out.stderr);
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);
    assert_eq!(fs::read(&file).unwrap(), b"host\n");
}
