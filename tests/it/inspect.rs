//! Integration tests of looking inside snapshots without restoring them: `ls`, `find`, `diff`,
//! `dump`. Every listing is checked against the source tree on disk (through `stat`, `diff -rq`,
//! `tar`, `unzip`, `cmp`) or against a model the test computes from the tree itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use filetime::FileTime;
use serde_json::Value;

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    filetime::set_symlink_file_times(p, FileTime::from_unix_time(secs, nanos), FileTime::from_unix_time(secs, nanos))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", p.display()));
}

/// Standard output split into lines, each parsed as JSON.
fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line of {} is not JSON ({e}): {l}", out.cmdline)))
        .collect()
}

/// The id of the latest snapshot.
fn latest_id(repo: &Repo) -> String {
    let snaps = repo.snapshots(Vec::<String>::new());
    snaps.last().expect("a snapshot")["id"].as_str().unwrap().to_string()
}

/// A shell command line run with the repository's variables set (for pipelines).
fn shell(repo: &Repo, script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_REPOSITORY", &repo.path)
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND")
        .stdin(Stdio::null())
        .output()
        .expect("run bash")
}

fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 test path").to_string()
}

/// A source tree with files of several modes and sizes, a subdirectory, symlinks, a hard link
/// and a fifo, with fixed mtimes (nanoseconds included).
fn sample_tree(root: &Path) {
    write(root.join("readme.txt"), b"hello\n");
    write(root.join("big.bin"), random_bytes(1, 3 << 20));
    write(root.join("etc/main.cf"), b"myhostname = mail1\n");
    write(root.join("etc/master.cf"), random_bytes(2, 5000));
    write(root.join("etc/deep/er/file.conf"), b"x=1\n");
    write(root.join("secret.key"), b"k\n");
    write(root.join("setuid.bin"), b"#!/bin/sh\n");
    write(root.join("empty"), b"");
    std::os::unix::fs::symlink("etc/main.cf", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("etc/dangling")).unwrap();
    fs::hard_link(root.join("etc/master.cf"), root.join("etc/master.hardlink")).unwrap();
    mkfifo(&root.join("etc/fifo"), 0o640);
    chmod(&root.join("secret.key"), 0o600);
    chmod(&root.join("setuid.bin"), 0o4755);
    chmod(&root.join("etc/deep"), 0o750);
    let mut t = 1_700_000_000i64;
    for (p, _) in listing(root).iter().rev() {
        t += 3_600;
        set_mtime(&root.join(p), t, (t % 1_000_000_000) as u32 + 7);
    }
}

/// `stat` of a path: (mode string, user, group, size, mtime seconds), from GNU coreutils.
fn stat(p: &Path) -> (String, String, String, u64, i64) {
    let out = Command::new("stat").args(["-c", "%A|%U|%G|%s|%Y"]).arg(p).output().expect("run stat");
    assert!(out.status.success(), "stat {}", p.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = text.trim().split('|').collect();
    (f[0].into(), f[1].into(), f[2].into(), f[3].parse().unwrap(), f[4].parse().unwrap())
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Every ancestor of `p` from `/` down (not `/`, not `p`).
fn ancestors(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = p.ancestors().skip(1).filter(|a| *a != Path::new("/")).map(Path::to_path_buf).collect();
    v.reverse();
    v
}

// ---------------------------------------------------------------------------------------------
// 1. ls
// ---------------------------------------------------------------------------------------------

#[test]
fn ls_lists_the_snapshot_as_the_source_is_on_disk() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    sample_tree(&src);
    repo.backup_json([&src]);
    let entries = listing(&src);

    // Whole snapshot: the source's ancestors, the source, everything below it, in walk order.
    let out = repo.run(["ls", "latest"]).ok();
    let mut want: Vec<String> = ancestors(&src).iter().map(|p| s(p)).collect();
    want.push(s(&src));
    want.extend(entries.keys().map(|p| s(&src.join(p))));
    let got: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert_eq!(got, want);

    // --long, compared with stat(1) of each source entry.
    let out = repo.cmd().env("TZ", "UTC").args(["ls", "latest", "--long", "--recursive", &s(&src)]).run().ok();
    let mut seen = BTreeSet::new();
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 7, "short line: {line}");
        let path = PathBuf::from(f[6]);
        let (mode, user, group, size, mtime) = stat(&path);
        assert_eq!(f[0], mode, "{line}: mode");
        assert_eq!((f[1], f[2]), (user.as_str(), group.as_str()), "{line}: owner");
        assert_eq!(format!("{} {}", f[4], f[5]), utc(mtime), "{line}: mtime");
        let md = fs::symlink_metadata(&path).unwrap();
        if md.is_file() {
            assert_eq!(f[3].parse::<u64>().unwrap(), size, "{line}: size");
        }
        if md.file_type().is_symlink() {
            assert_eq!(f[7], "->", "{line}");
            assert_eq!(Path::new(f[8]), fs::read_link(&path).unwrap(), "{line}: target");
        } else {
            assert_eq!(f.len(), 7, "{line}");
        }
        seen.insert(path);
    }
    let mut want: BTreeSet<PathBuf> = entries.keys().map(|p| src.join(p)).collect();
    want.insert(src.clone());
    assert_eq!(seen, want, "ls --long --recursive SRC lists SRC and everything below it");

    // A sub-path without --recursive: itself and its direct entries.
    let etc = src.join("etc");
    let out = repo.run(["ls", "latest", &s(&etc)]).ok();
    let got: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    let mut want = vec![s(&etc)];
    let mut children: Vec<String> = fs::read_dir(&etc).unwrap().map(|e| s(&e.unwrap().path())).collect();
    children.sort();
    want.extend(children);
    assert_eq!(got, want);
    // --recursive on the sub-path.
    let out = repo.run(["ls", "latest", "--recursive", &s(&etc)]).ok();
    let got: BTreeSet<String> = out.stdout.lines().map(str::to_string).collect();
    let mut want: BTreeSet<String> = listing(&etc).keys().map(|p| s(&etc.join(p))).collect();
    want.insert(s(&etc));
    assert_eq!(got, want);
    // A file path lists the file.
    let out = repo.run(["ls", "latest", &s(&src.join("readme.txt"))]).ok();
    assert_eq!(out.stdout.trim(), s(&src.join("readme.txt")));

    // --json: the snapshot, then one object per node, each line valid JSON.
    let out = repo.run(["--json", "ls", "latest", "--recursive", &s(&src)]).ok();
    let lines = json_lines(&out);
    assert_eq!(lines[0]["struct_type"], "snapshot");
    assert_eq!(lines[0]["id"], latest_id(&repo).as_str());
    assert_eq!(lines.len(), 1 + 1 + entries.len());
    for v in &lines[1..] {
        assert_eq!(v["struct_type"], "node");
        let path = PathBuf::from(v["path"].as_str().unwrap());
        let md = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(v["name"], path.file_name().unwrap().to_str().unwrap());
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let ty = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "file"
        };
        assert_eq!(v["type"], ty, "{}", path.display());
        assert_eq!(v["mode"].as_u64().unwrap() as u32, md.mode(), "{}: st_mode", path.display());
        assert_eq!(v["uid"].as_u64().unwrap() as u32, md.uid());
        assert_eq!(v["inode"].as_u64().unwrap(), md.ino());
        if ft.is_file() {
            assert_eq!(v["size"].as_u64().unwrap(), md.size(), "{}: size", path.display());
        }
        let t = chrono::DateTime::parse_from_rfc3339(v["mtime"].as_str().unwrap()).unwrap();
        assert_eq!(
            (t.timestamp(), t.timestamp_subsec_nanos() as i64),
            (md.mtime(), md.mtime_nsec()),
            "{}: mtime",
            path.display()
        );
    }

    // Errors: a path not in the snapshot, below a file, an unknown snapshot.
    let out = repo.run(["ls", "latest", &s(&src.join("nope"))]).code(1);
    assert!(out.stderr.contains("not in the snapshot"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let out = repo.run(["ls", "latest", &s(&src.join("readme.txt/x"))]).code(1);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    let out = repo.run(["ls", "deadbeef"]).code(1);
    assert!(out.stderr.contains("no snapshot matches"), "{}", out.stderr);
    repo.run(["ls", "not-an-id"]).code(1);
}

// ---------------------------------------------------------------------------------------------
// 2. find
// ---------------------------------------------------------------------------------------------

/// Source paths (absolute) below `root` for which `pred(relative path)` holds.
fn select(root: &Path, pred: impl Fn(&Path) -> bool) -> BTreeSet<String> {
    listing(root).keys().filter(|p| pred(p)).map(|p| s(&root.join(p))).collect()
}

/// `find --json` output as snapshot id -> set of paths.
fn find_json(repo: &Repo, args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let out = repo.cmd().arg("--json").arg("find").args(args).run().ok();
    let v = out.json();
    let mut m = BTreeMap::new();
    for snap in v.as_array().expect("find --json prints an array") {
        let paths: BTreeSet<String> =
            snap["matches"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap().to_string()).collect();
        assert_eq!(snap["hits"].as_u64().unwrap() as usize, paths.len());
        m.insert(snap["snapshot"].as_str().unwrap().to_string(), paths);
    }
    m
}

#[test]
fn find_reports_matching_paths_per_snapshot() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    sample_tree(&src);
    write(src.join("old.dump"), b"only in the first snapshot");
    write(src.join("etc/MAIN.CONF"), b"upper case");
    write(src.join("etc/late.conf"), b"modified now, after the sample tree's fixed times");
    repo.backup_json([&src]);
    let first = latest_id(&repo);
    let conf1 = select(&src, |p| p.to_str().unwrap().ends_with(".conf"));
    let direct1 = select(&src, |p| p.parent() == Some(Path::new("etc")) && p.to_str().unwrap().ends_with(".cf"));
    fs::remove_file(src.join("old.dump")).unwrap();
    write(src.join("etc/deep/new.conf"), b"only in the second");
    write(src.join("new.dump"), b"only in the second snapshot");
    repo.backup_json([&src]);
    let second = latest_id(&repo);
    let conf2 = select(&src, |p| p.to_str().unwrap().ends_with(".conf"));
    assert_ne!(conf1, conf2);

    // A name glob, matched at any depth.
    let found = find_json(&repo, &["*.conf"]);
    assert_eq!(found, BTreeMap::from([(first.clone(), conf1.clone()), (second.clone(), conf2.clone())]));
    // An absolute path glob: `*` does not cross `/`.
    let pattern = format!("{}/etc/*.cf", s(&src));
    let found = find_json(&repo, &[&pattern]);
    assert_eq!(found.get(&first), Some(&direct1));
    assert_eq!(found.get(&second), Some(&direct1));
    // A file in only one snapshot is reported for that snapshot only.
    let found = find_json(&repo, &["old.dump"]);
    assert_eq!(found, BTreeMap::from([(first.clone(), BTreeSet::from([s(&src.join("old.dump"))]))]));
    let found = find_json(&repo, &["new.dump", "new.conf"]);
    let want = BTreeSet::from([s(&src.join("new.dump")), s(&src.join("etc/deep/new.conf"))]);
    assert_eq!(found, BTreeMap::from([(second.clone(), want)]));
    // --newest 1: only the newest snapshot is searched.
    let found = find_json(&repo, &["*.conf", "--newest", "1"]);
    assert_eq!(found, BTreeMap::from([(second.clone(), conf2.clone())]));
    let found = find_json(&repo, &["*.conf", "--oldest", "1"]);
    assert_eq!(found, BTreeMap::from([(first.clone(), conf1.clone())]));
    // --newest TIME bounds the mtime (restic's meaning): the sample tree's mtimes are fixed.
    let cut = fs::symlink_metadata(src.join("etc/deep/er/file.conf")).unwrap().mtime() + 1;
    let bound = chrono::DateTime::from_timestamp(cut, 0).unwrap().to_rfc3339();
    let found = find_json(&repo, &["*.conf", "--newest", &bound, "--snapshot", &first]);
    let want = select(&src, |p| {
        let md = fs::symlink_metadata(src.join(p)).unwrap();
        p.to_str().unwrap().ends_with(".conf") && (md.mtime(), md.mtime_nsec()) <= (cut, 0)
    });
    let want: BTreeSet<String> = want.intersection(&conf1).cloned().collect();
    assert!(!want.is_empty() && want.len() < conf1.len(), "the bound must split the matches: {want:?}");
    assert_eq!(found, BTreeMap::from([(first.clone(), want)]));
    // -i ignores case; without it the case must match.
    let found = find_json(&repo, &["-i", "MAIN.*"]);
    let want = BTreeSet::from([s(&src.join("etc/main.cf")), s(&src.join("etc/MAIN.CONF"))]);
    assert_eq!(found.get(&first), Some(&want));
    let found = find_json(&repo, &["main.*"]);
    assert_eq!(found.get(&first), Some(&BTreeSet::from([s(&src.join("etc/main.cf"))])));
    // Nothing found: an empty array.
    assert_eq!(find_json(&repo, &["no-such-file"]), BTreeMap::new());

    // Text output: a heading per snapshot, then one long line per match with its size.
    let out = repo.cmd().env("TZ", "UTC").args(["find", "old.dump", "readme.txt"]).run().ok();
    let text = out.stdout;
    assert!(text.contains(&format!("Found matching entries in snapshot {}", &first[..8])), "{text}");
    assert!(text.contains(&format!("Found matching entries in snapshot {}", &second[..8])), "{text}");
    let old = src.join("readme.txt");
    let line = text.lines().find(|l| l.ends_with(&s(&old))).expect("readme.txt listed");
    let f: Vec<&str> = line.split_whitespace().collect();
    let (mode, _, _, size, mtime) = stat(&old);
    assert_eq!((f[0], f[3].parse::<u64>().unwrap(), format!("{} {}", f[4], f[5])), (mode.as_str(), size, utc(mtime)));
    assert_eq!(text.lines().filter(|l| l.ends_with("old.dump")).count(), 1);

    repo.run(["find", "["]).code(1);
    repo.run(["find", "x", "--newest", "yesterday"]).code(1);
}

// ---------------------------------------------------------------------------------------------
// 3. dump
// ---------------------------------------------------------------------------------------------

#[test]
fn dump_of_a_stdin_snapshot_streams_the_original_bytes() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let data = random_bytes(7, 6 << 20);
    let orig = tmp.join("orig");
    fs::write(&orig, &data).unwrap();
    repo.cmd().args(["backup", "--stdin", "--stdin-filename", "maildb.dump"]).stdin(data).run().ok();
    let out = repo.run(["ls", "latest"]).ok();
    assert_eq!(out.stdout.trim(), "/maildb.dump");
    let r = shell(&repo, &format!("set -o pipefail; \"$CAIRN\" dump latest /maildb.dump | cmp - {}", s(&orig)));
    assert!(
        r.status.success(),
        "dump | cmp: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    // A relative path names the same file; --target writes it to a file.
    let t = tmp.join("out.dump");
    repo.run(["dump", "latest", "maildb.dump", "--target", &s(&t)]).ok();
    let st = Command::new("cmp").arg(&t).arg(&orig).status().unwrap();
    assert!(st.success(), "dump --target differs from the original");
    // A reader that stops early: cairn ends quietly with exit code 0.
    let r = shell(
        &repo,
        "\"$CAIRN\" dump latest /maildb.dump 2>err | head -c 1000 | wc -c; echo \"${PIPESTATUS[0]}\"; cat err",
    );
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["1000", "0"], "wc output, cairn's exit code and stderr");
    // Missing paths and non-files fail cleanly.
    let out = repo.run(["dump", "latest", "/nope.dump"]).code(1);
    assert!(out.stderr.contains("/nope.dump is not in the snapshot"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    repo.run(["dump", "latest", "/maildb.dump/x"]).code(1);
    repo.run(["dump", "ffffffff", "/maildb.dump"]).code(1);
    repo.run(["dump", "latest", "/../etc/passwd"]).code(1);
}

/// Compare an extracted tree with its source: entries, types, contents, modes, mtimes,
/// symlink targets, and which names share an inode.
fn assert_same_extracted(src: &Path, got: &Path) {
    let a = listing(src);
    let b = listing(got);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "extracted entries");
    for (p, ea) in &a {
        let eb = &b[p];
        let p = p.display();
        assert_eq!(ea.kind, eb.kind, "{p}: type");
        assert_eq!(ea.content, eb.content, "{p}: content");
        assert_eq!(ea.target, eb.target, "{p}: symlink target");
        if ea.kind != Kind::Symlink {
            assert_eq!(format!("{:o}", ea.mode), format!("{:o}", eb.mode), "{p}: mode");
        }
        assert_eq!(ea.mtime, eb.mtime, "{p}: mtime");
        assert_eq!(ea.nlink, eb.nlink, "{p}: link count");
    }
    // Hard links: names sharing an inode in the source share one in the extracted tree.
    let groups = |l: &BTreeMap<PathBuf, Entry>| -> BTreeSet<Vec<PathBuf>> {
        let mut m: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
        for (p, e) in l.iter().filter(|(_, e)| e.kind == Kind::File) {
            m.entry(e.ino).or_default().push(p.clone());
        }
        m.into_values().collect()
    };
    assert_eq!(groups(&a), groups(&b), "hard link groups");
}

#[test]
fn dump_archives_of_a_directory_extract_to_the_source() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    sample_tree(&src);
    repo.backup_json([&src]);

    // tar to stdout, extracted by GNU tar (-p: modes as archived).
    let x = tmp.join("x-tar");
    fs::create_dir(&x).unwrap();
    let r = shell(&repo, &format!("set -o pipefail; \"$CAIRN\" dump latest {} | tar -C {} -xpf -", s(&src), s(&x)));
    assert!(r.status.success(), "dump | tar -x: {}", String::from_utf8_lossy(&r.stderr));
    let got = restored(&x, &src);
    assert_same_extracted(&src, &got);
    assert_eq!(
        format!("{:o}", describe(&got).mode),
        format!("{:o}", describe(&src).mode),
        "the dumped directory itself"
    );
    assert_eq!(describe(&got).mtime, describe(&src).mtime);
    // The names in the archive: snapshot paths without the leading `/`.
    let r = shell(&repo, &format!("\"$CAIRN\" dump latest {} | tar -tf -", s(&src.join("etc"))));
    let names: BTreeSet<String> =
        String::from_utf8_lossy(&r.stdout).lines().map(|l| l.trim_end_matches('/').to_string()).collect();
    let mut want: BTreeSet<String> =
        listing(&src.join("etc")).keys().map(|p| s(&src.join("etc").join(p))[1..].to_string()).collect();
    want.insert(s(&src.join("etc"))[1..].to_string());
    assert_eq!(names, want);

    // `dump /`: the whole snapshot.
    let y = tmp.join("x-root");
    fs::create_dir(&y).unwrap();
    let r = shell(&repo, &format!("set -o pipefail; \"$CAIRN\" dump latest / | tar -C {} -xpf -", s(&y)));
    assert!(r.status.success(), "dump / | tar -x: {}", String::from_utf8_lossy(&r.stderr));
    assert_same_extracted(&src, &restored(&y, &src));

    // zip to stdout (a stream), and to a file with --target; unzip gives back the contents.
    let zipped = tmp.join("a.zip");
    let r = shell(&repo, &format!("\"$CAIRN\" dump latest {} --archive zip > {}", s(&src), s(&zipped)));
    assert!(r.status.success(), "dump --archive zip: {}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("fifo"), "the skipped fifo is reported");
    let target = tmp.join("b.zip");
    repo.run(["dump", "latest", &s(&src), "--archive", "zip", "--target", &s(&target)]).ok();
    for (i, z) in [zipped, target].iter().enumerate() {
        let dir = tmp.join(format!("x-zip{i}"));
        fs::create_dir(&dir).unwrap();
        let st = Command::new("unzip").arg("-q").arg(z).arg("-d").arg(&dir).status().expect("run unzip");
        assert!(st.success(), "unzip {}", z.display());
        let got = listing(&restored(&dir, &src));
        for (p, e) in listing(&src) {
            match e.kind {
                Kind::File => {
                    assert_eq!(got.get(&p).and_then(|g| g.content.clone()), e.content, "{}: content", p.display())
                }
                Kind::Symlink => {
                    assert_eq!(got.get(&p).and_then(|g| g.target.clone()), e.target, "{}: target", p.display())
                }
                Kind::Dir => assert_eq!(got.get(&p).map(|g| g.kind.clone()), Some(Kind::Dir), "{}", p.display()),
                _ => assert!(!got.contains_key(&p), "{}: special files are not in zip archives", p.display()),
            }
        }
    }

    // A single file with --archive tar is an archive of that file.
    let z = tmp.join("x-one");
    fs::create_dir(&z).unwrap();
    let r = shell(
        &repo,
        &format!(
            "set -o pipefail; \"$CAIRN\" dump latest {} --archive tar | tar -C {} -xpf -",
            s(&src.join("setuid.bin")),
            s(&z)
        ),
    );
    assert!(r.status.success());
    assert_eq!(describe(&restored(&z, &src.join("setuid.bin"))), {
        let mut d = describe(&src.join("setuid.bin"));
        d.ino = describe(&restored(&z, &src.join("setuid.bin"))).ino;
        d
    });
    // A directory cannot be dumped without an archive format other than tar/zip.
    repo.run(["dump", "latest", &s(&src), "--archive", "rar"]).code(2);
    let out = repo.run(["dump", "latest", &s(&src.join("link"))]).code(1);
    assert!(out.stderr.contains("not a file"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 4. diff
// ---------------------------------------------------------------------------------------------

/// The changes between two trees on disk, computed from their listings: the model `diff`
/// must agree with. Paths relative to the roots, from `/`, directories ending in `/`.
fn model_changes(before: &Path, after: &Path) -> BTreeMap<String, String> {
    let (a, b) = (listing(before), listing(after));
    let name = |p: &Path, e: &Entry| format!("/{}{}", p.display(), if e.kind == Kind::Dir { "/" } else { "" });
    let mut m = BTreeMap::new();
    for (p, ea) in &a {
        match b.get(p) {
            None => {
                m.insert(name(p, ea), "-".to_string());
            }
            Some(eb) if ea.kind != eb.kind => {
                m.insert(name(p, eb), "T".to_string());
            }
            Some(eb) => {
                let content = ea.content != eb.content || ea.target != eb.target;
                let meta = ea.mode != eb.mode || ea.mtime != eb.mtime;
                if content {
                    m.insert(name(p, eb), "M".to_string());
                } else if meta {
                    m.insert(name(p, eb), "U".to_string());
                }
            }
        }
    }
    for (p, eb) in &b {
        if !a.contains_key(p) {
            m.insert(name(p, eb), "+".to_string());
        }
    }
    m
}

/// `diff -rq` of two trees: (paths only in `a`, only in `b`, differing files), relative.
fn diff_rq(a: &Path, b: &Path) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new("diff").arg("-rq").arg("--no-dereference").arg(a).arg(b).output().expect("run diff");
    let text = String::from_utf8(out.stdout).unwrap();
    let (mut only_a, mut only_b, mut differ, mut types) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let rel = |p: &str, root: &Path| -> String { Path::new(p).strip_prefix(root).unwrap().display().to_string() };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Only in ") {
            let (dir, name) = rest.split_once(": ").unwrap();
            let full = Path::new(dir).join(name);
            if full.starts_with(a) {
                only_a.insert(rel(full.to_str().unwrap(), a));
            } else {
                only_b.insert(rel(full.to_str().unwrap(), b));
            }
        } else if let Some(rest) = line.strip_prefix("Files ").or_else(|| line.strip_prefix("Symbolic links ")) {
            let first = rest.split(&format!(" and {}/", s(b))).next().unwrap();
            differ.insert(rel(first, a));
        } else if let Some(rest) = line.strip_prefix("File ") {
            // "File A is a fifo while file B is a fifo": diff does not compare special files.
            let (first, kinds) = rest.split_once(" is a ").unwrap();
            let (ka, kb) = kinds.split_once(" while file ").unwrap();
            if !kb.ends_with(&format!(" is a {ka}")) {
                types.insert(rel(first, a));
            }
        } else {
            panic!("unexpected diff -rq line: {line}");
        }
    }
    (only_a, only_b, differ, types)
}

#[test]
fn diff_reports_exactly_the_changes_made() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    sample_tree(&src);
    write(src.join("gone/a.txt"), b"a");
    write(src.join("gone/sub/b.txt"), b"b");
    write(src.join("replaced"), b"a file that becomes a directory");
    write(src.join("dir2file/x"), b"a directory that becomes a file");
    repo.backup_json([&src]);
    let first = latest_id(&repo);
    let before = tmp.join("before");
    let st = Command::new("cp").arg("-a").arg(&src).arg(&before).status().unwrap();
    assert!(st.success());

    write(src.join("added.txt"), b"new");
    write(src.join("newdir/deeper/n.txt"), b"new too");
    write(src.join("etc/main.cf"), b"myhostname = mail2\n");
    chmod(&src.join("secret.key"), 0o640);
    fs::remove_file(src.join("empty")).unwrap();
    fs::remove_dir_all(src.join("gone")).unwrap();
    fs::remove_file(src.join("replaced")).unwrap();
    write(src.join("replaced/inside.txt"), b"inside");
    fs::remove_dir_all(src.join("dir2file")).unwrap();
    write(src.join("dir2file"), b"now a file");
    fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("readme.txt", src.join("link")).unwrap();
    repo.backup_json([&src]);
    let second = latest_id(&repo);

    let model = model_changes(&before, &src);
    for (p, m) in [
        ("/added.txt", "+"),
        ("/gone/", "-"),
        ("/etc/main.cf", "M"),
        ("/secret.key", "U"),
        ("/replaced/", "T"),
        ("/dir2file", "T"),
        ("/link", "M"),
    ] {
        assert_eq!(model.get(p).map(String::as_str), Some(m), "the model itself: {p} in {model:?}");
    }
    let a = format!("{first}:{}", s(&src));
    let b = format!("{}:{}", &second[..8], s(&src));
    let out = repo.run(["diff", &a, &b]).ok();
    let mut got = BTreeMap::new();
    for line in out.stdout.lines().skip(2).take_while(|l| !l.is_empty()) {
        let (m, p) = line.split_at(5);
        assert!(got.insert(p.to_string(), m.trim().to_string()).is_none(), "{p} listed twice");
    }
    assert_eq!(got, model);
    assert!(out.stdout.contains(&format!("comparing snapshot {} to {}", &first[..8], &second[..8])));

    // The content changes agree with diff -rq of the two source trees.
    let (only_a, only_b, differ, types) = diff_rq(&before, &src);
    let with = |m: &str| -> BTreeSet<String> {
        got.iter().filter(|(_, x)| x.as_str() == m).map(|(p, _)| p.trim_matches('/').to_string()).collect()
    };
    assert_eq!(with("M"), differ);
    assert_eq!(with("T"), types);
    assert!(only_a.is_subset(&with("-")) && only_b.is_subset(&with("+")));
    assert!(with("+").iter().all(|p| only_b.iter().chain(&types).any(|o| p == o || p.starts_with(&format!("{o}/")))));
    assert!(with("-").iter().all(|p| only_a.iter().chain(&types).any(|o| p == o || p.starts_with(&format!("{o}/")))));

    // --json: change objects, then the statistics.
    let out = repo.run(["--json", "diff", &a, &b]).ok();
    let lines = json_lines(&out);
    let (stats, changes) = lines.split_last().unwrap();
    let got_json: BTreeMap<String, String> = changes
        .iter()
        .map(|c| {
            assert_eq!(c["message_type"], "change");
            (c["path"].as_str().unwrap().to_string(), c["modifier"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(got_json, model);
    assert_eq!(stats["message_type"], "statistics");
    assert_eq!(stats["source_snapshot"], first.as_str());
    assert_eq!(stats["target_snapshot"], second.as_str());
    assert_eq!(
        stats["changed_files"].as_u64().unwrap() as usize,
        differ.iter().filter(|p| src.join(p).is_file() && !src.join(p).is_symlink()).count()
    );
    let count =
        |m: &str, dir: bool| model.iter().filter(|(p, x)| x.as_str() == m && p.ends_with('/') == dir).count() as u64;
    // Added: the `+` entries and the new side of each type change (likewise for removed).
    assert_eq!(stats["added"]["dirs"].as_u64().unwrap(), count("+", true) + 1);
    assert_eq!(stats["added"]["files"].as_u64().unwrap(), count("+", false) + 1);
    assert_eq!(stats["removed"]["dirs"].as_u64().unwrap(), count("-", true) + 1);
    assert_eq!(stats["removed"]["files"].as_u64().unwrap(), count("-", false) + 1);
    assert!(stats["added"]["bytes"].as_u64().unwrap() > 0 && stats["removed"]["bytes"].as_u64().unwrap() > 0);

    // A snapshot compared with itself: no change at all. The whole snapshots: the same changes
    // below the source's path, and only metadata changes of its ancestors.
    let out = repo.run(["--json", "diff", &first, &first]).ok();
    assert_eq!(json_lines(&out).len(), 1);
    let out = repo.run(["--json", "diff", &first, &second]).ok();
    let lines = json_lines(&out);
    let prefix = s(&src);
    for c in &lines[..lines.len() - 1] {
        let p = c["path"].as_str().unwrap();
        match p.strip_prefix(&prefix) {
            Some(rest) if !rest.is_empty() && rest != "/" => {
                assert_eq!(model.get(rest), c["modifier"].as_str().map(str::to_string).as_ref(), "{p}")
            }
            _ => assert_eq!(c["modifier"], "U", "{p}"),
        }
    }
    let out = repo.run(["diff", &first, &format!("latest:{}", s(&src.join("readme.txt")))]).code(1);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    repo.run(["diff", &first, "latest:/no/such/dir"]).code(1);
}

// ---------------------------------------------------------------------------------------------
// 5. Linux corpus: diff agrees with diff -rq --no-dereference
// ---------------------------------------------------------------------------------------------

/// Run cairn without the common helper's time limit (a debug-build backup of a Linux tree may
/// take longer than it allows).
fn run_long(repo: &Repo, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&repo.path)
        .args(args)
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND")
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    assert!(out.status.success(), "cairn {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `rel` and, for a directory on disk, everything below it (relative to `root`).
fn with_descendants(root: &Path, rel: &str, out: &mut BTreeSet<String>) {
    out.insert(rel.to_string());
    let full = root.join(rel);
    if fs::symlink_metadata(&full).map(|m| m.is_dir()).unwrap_or(false) {
        for e in fs::read_dir(&full).unwrap() {
            let name = e.unwrap().file_name();
            with_descendants(root, &format!("{rel}/{}", name.to_str().unwrap()), out);
        }
    }
}

/// Each Linux tree is backed up as its own snapshot; `diff A:TREE_A B:TREE_B` compares them
/// from their roots, so the paths are the same relative paths `diff -rq` reports. Mapping:
/// `Only in` lines are expanded to the entry and everything below it (cairn lists a whole
/// added or removed directory), `Files ... differ` and `Symbolic links ... differ` (a changed
/// target) are cairn's `M`, `File ... is a X while ...` would be `T` (the two trees have none).
/// Metadata-only changes (`U`) have no counterpart in `diff -rq` and are only checked to be on
/// paths present on both sides.
#[test]
fn diff_of_linux_trees_agrees_with_diff_rq() {
    let corpus = linux_corpus();
    let (a, b) = (corpus.join("linux-source-6.1"), corpus.join("linux-source-6.12"));
    let repo = Repo::init();
    run_long(&repo, &["backup", "-q", &s(&a)]);
    let first = latest_id(&repo);
    run_long(&repo, &["backup", "-q", &s(&b)]);
    let second = latest_id(&repo);
    let started = std::time::Instant::now();
    let text = run_long(&repo, &["--json", "diff", &format!("{first}:{}", s(&a)), &format!("{second}:{}", s(&b))]);
    let took = started.elapsed();
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stats = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["message_type"] == "statistics" {
            stats = Some(v);
            continue;
        }
        let p = v["path"].as_str().unwrap().trim_start_matches('/').trim_end_matches('/').to_string();
        by.entry(v["modifier"].as_str().unwrap().to_string()).or_default().insert(p);
    }
    let stats = stats.expect("a statistics line");
    let (only_a, only_b, differ, types) = diff_rq(&a, &b);
    let mut removed = BTreeSet::new();
    for p in &only_a {
        with_descendants(&a, p, &mut removed);
    }
    let mut added = BTreeSet::new();
    for p in &only_b {
        with_descendants(&b, p, &mut added);
    }
    let get = |m: &str| by.get(m).cloned().unwrap_or_default();
    assert!(added.len() > 1000 && removed.len() > 1000 && differ.len() > 10_000, "the corpus has many changes");
    assert_eq!(get("+"), added, "added paths");
    assert_eq!(get("-"), removed, "removed paths");
    assert_eq!(get("M"), differ, "modified paths");
    assert_eq!(get("T"), types, "type changes");
    for p in get("U") {
        assert!(
            a.join(&p).symlink_metadata().is_ok() && b.join(&p).symlink_metadata().is_ok(),
            "U {p} exists on both sides"
        );
    }
    let files_differ =
        differ.iter().filter(|p| b.join(p).symlink_metadata().map(|m| m.is_file()).unwrap_or(false)).count();
    assert_eq!(stats["changed_files"].as_u64().unwrap() as usize, files_differ);
    eprintln!(
        "corpus diff: {} added, {} removed, {} modified, {} metadata-only, in {:.1}s",
        added.len(),
        removed.len(),
        differ.len(),
        get("U").len(),
        took.as_secs_f64()
    );
}
