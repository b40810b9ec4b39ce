//! Restore never destroys what it does not own: a directory with entries where the snapshot
//! has a file stays (reported, exit 1, the rest restored), and a local file stays intact when
//! the snapshot's copy of it turns out damaged.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::common::*;

/// The largest file below `dir` (a repository's biggest pack: the data pack of one big file).
fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                dirs.push(e.path());
            } else if best.as_ref().is_none_or(|(n, _)| md.len() > *n) {
                best = Some((md.len(), e.path()));
            }
        }
    }
    best.expect("a file").1
}

/// Flip one bit of the byte at `at` in `path`.
fn flip_byte(path: &Path, at: u64) {
    let mut f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

#[test]
fn a_directory_with_entries_in_the_way_of_a_file_is_kept_and_reported() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("a.txt"), "snapshot's a\n");
    write(src.join("b.txt"), "snapshot's b\n");
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();

    let target = tmp.join("t");
    let here = restored(&target, &src);
    write(here.join("a.txt/mine/keep.txt"), "not in any snapshot\n");
    let out = repo.run(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).code(1);
    let a = src.join("a.txt");
    assert!(
        out.stderr.contains(&a.display().to_string()),
        "the conflict does not name {}:\n{}",
        a.display(),
        out.stderr
    );
    assert_eq!(
        fs::read_to_string(here.join("a.txt/mine/keep.txt")).unwrap(),
        "not in any snapshot\n",
        "the directory's content"
    );
    assert_eq!(fs::read_to_string(here.join("b.txt")).unwrap(), "snapshot's b\n", "the rest is restored");
}

/// The reverse conflict: a local file where the snapshot has a directory is not deleted
/// either; the directory's entries are not restored, the rest is.
#[test]
fn a_file_in_the_way_of_a_directory_is_kept_and_reported() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("dir/inner.txt"), "snapshot's inner\n");
    write(src.join("b.txt"), "snapshot's b\n");
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();

    let target = tmp.join("t");
    let here = restored(&target, &src);
    write(here.join("dir"), "precious, not in any snapshot\n");
    let out = repo.run(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).code(1);
    let dir = src.join("dir");
    assert!(
        out.stderr.contains(&dir.display().to_string()),
        "the conflict does not name {}:\n{}",
        dir.display(),
        out.stderr
    );
    assert_eq!(fs::read_to_string(here.join("dir")).unwrap(), "precious, not in any snapshot\n", "the local file");
    assert_eq!(fs::read_to_string(here.join("b.txt")).unwrap(), "snapshot's b\n", "the rest is restored");
}

#[test]
fn a_damaged_snapshot_copy_does_not_replace_an_intact_local_file() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("big.bin"), random_bytes(7, 300_000));
    write(src.join("small.txt"), "small\n");
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();
    let pack = largest_file(&repo.path.join("data"));
    let len = fs::metadata(&pack).unwrap().len();
    flip_byte(&pack, len / 2);

    let target = tmp.join("t");
    let here = restored(&target, &src);
    write(here.join("big.bin"), "the local copy, intact\n");
    let out = repo.run(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]);
    assert_eq!(out.code, 15, "restore of a damaged file: exit code 15 (damaged data) expected:\n{}", out.stderr);
    let big = src.join("big.bin");
    assert!(
        out.stderr.contains(&big.display().to_string()),
        "the error does not name {}:\n{}",
        big.display(),
        out.stderr
    );
    assert_eq!(fs::read_to_string(here.join("big.bin")).unwrap(), "the local copy, intact\n", "the local file");
    assert_eq!(fs::read_to_string(here.join("small.txt")).unwrap(), "small\n");
    // No temporary file is left beside it.
    let names: Vec<String> =
        fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "entries: {names:?}");
}

#[test]
fn an_existing_file_is_replaced_by_the_snapshots_copy() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("one.bin"), random_bytes(3, 1000));
    write(src.join("many.bin"), random_bytes(4, 5_000_000));
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();
    let target = tmp.join("t");
    let here = restored(&target, &src);
    write(here.join("one.bin"), "old\n");
    write(here.join("many.bin"), "old\n");
    repo.run(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).ok();
    assert_same_tree(&src, &here);
}

/// The library's restore stops at once when its context is cancelled (Error::Interrupted) and
/// leaves no file content behind; with a live context the same call restores everything.
#[test]
fn a_cancelled_restore_stops_and_a_live_one_restores() {
    use cairn::backend::local::LocalBackend;
    use cairn::restorer::{self, RestoreOptions};
    use std::sync::Arc;

    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("one.bin"), random_bytes(1, 3 << 20));
    write(src.join("d/two.txt"), "two\n");
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();

    let r = cairn::Repository::open(Arc::new(LocalBackend::new(&repo.path)), PASSWORD.as_bytes()).unwrap();
    let lock = cairn::lock::ReadLock::unlocked();
    let ctx = cairn::Ctx::default();
    ctx.cancel.cancel();
    let target = tmp.join("t");
    let opts = RestoreOptions::default();
    match restorer::restore_snapshot(&ctx, &lock, &r, "latest", &Default::default(), &target, &opts) {
        Err(cairn::Error::Interrupted) => {}
        other => panic!("expected Interrupted, got {:?}", other.map(|(_, rep)| rep)),
    }
    let here = restored(&target, &src);
    assert!(!here.join("one.bin").exists() && !here.join("d/two.txt").exists(), "a cancelled restore left files");

    let (_, report) =
        restorer::restore_snapshot(&cairn::Ctx::default(), &lock, &r, "latest", &Default::default(), &target, &opts)
            .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files, 2);
    assert_eq!(opts.progress.files.load(std::sync::atomic::Ordering::Relaxed), 2, "progress counters");
    assert_eq!(fs::read(here.join("one.bin")).unwrap(), random_bytes(1, 3 << 20));
    assert_eq!(fs::read_to_string(here.join("d/two.txt")).unwrap(), "two\n");
}

/// `restore --json` prints one summary object with restic's keys.
#[test]
fn the_json_summary_keeps_its_keys() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    write(src.join("a.txt"), "a\n");
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();
    let target = tmp.join("t");
    let out =
        repo.run(["--json".as_ref(), "restore".as_ref(), "latest".as_ref(), "-t".as_ref(), target.as_os_str()]).ok();
    let line = out.stdout.lines().last().expect("a summary line");
    let keys: Vec<&str> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|k| {
            k.ends_with("_restored") || ["message_type", "snapshot_id", "errors", "duration_seconds"].contains(k)
        })
        .collect();
    assert_eq!(
        keys,
        [
            "bytes_restored",
            "dirs_restored",
            "duration_seconds",
            "errors",
            "files_restored",
            "message_type",
            "snapshot_id"
        ],
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["message_type"], "summary");
    assert_eq!(v["files_restored"], 1);
    assert_eq!(v["errors"], 0);
}

/// An empty directory's tree is the single byte 0x00, and so is the content of a one-byte
/// file holding 0x00: one blob id for both. In either order of first use (the file first, or
/// the directory first, in one backup or across two), every snapshot restores identically,
/// `check --read-data` passes, and a prune keeps what the remaining snapshot needs.
#[test]
fn an_empty_directory_and_a_one_byte_nul_file_share_an_id_and_both_restore() {
    for dir_first in [true, false] {
        let repo = Repo::init();
        let tmp = Tmp::new();
        let (first, second) = (tmp.join("first"), tmp.join("second"));
        fs::create_dir_all(&first).unwrap();
        fs::create_dir_all(&second).unwrap();
        if dir_first {
            fs::create_dir(first.join("empty")).unwrap();
            fs::write(second.join("nul"), [0u8]).unwrap();
        } else {
            fs::write(first.join("nul"), [0u8]).unwrap();
            fs::create_dir(second.join("empty")).unwrap();
        }
        let a = repo.backup_json([&first])["snapshot_id"].as_str().expect("id").to_string();
        let b = repo.backup_json([&second])["snapshot_id"].as_str().expect("id").to_string();
        // Both in one backup as well.
        let both = tmp.join("both");
        fs::create_dir_all(both.join("e/empty")).unwrap();
        fs::write(both.join("nul"), [0u8]).unwrap();
        let c = repo.backup_json([&both])["snapshot_id"].as_str().expect("id").to_string();
        repo.run(["check", "--read-data"]).ok();
        for (id, src) in [(&a, &first), (&b, &second), (&c, &both)] {
            let out = Tmp::new();
            repo.run(["restore", id, "--target", &out.path.to_string_lossy()]).ok();
            assert_same_tree(src, &restored(&out.path, src));
        }
        // The snapshot that used the id first goes; the others keep the blob.
        repo.run(["forget", &a, "--prune", "--max-unused", "0"]).ok();
        repo.run(["check", "--read-data"]).ok();
        for (id, src) in [(&b, &second), (&c, &both)] {
            let out = Tmp::new();
            repo.run(["restore", id, "--target", &out.path.to_string_lossy()]).ok();
            assert_same_tree(src, &restored(&out.path, src));
        }
    }
}
