//! Restore's controls (restic 0.17's): `--dry-run` writes nothing, `--overwrite
//! always|if-changed|if-newer|never` decides per existing file, `--delete` removes what the
//! snapshot does not have below the restored paths only. Each runs the `cairn` binary against
//! a prepared target and compares contents, mtimes, inodes and the JSON summary.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The snapshot's files' mtime: 2020-01-01T00:00:00.5Z.
const SNAP_MTIME: (i64, u32) = (1_577_836_800, 500_000_000);
/// An older mtime (2000-01-01).
const OLD_MTIME: (i64, u32) = (946_684_800, 0);
/// A newer mtime (2030-01-01).
const NEW_MTIME: (i64, u32) = (1_893_456_000, 0);

fn set_mtime(p: &Path, (secs, nanos): (i64, u32)) {
    filetime::set_file_mtime(p, filetime::FileTime::from_unix_time(secs, nanos)).unwrap();
}

fn mtime(p: &Path) -> (i64, u32) {
    let md = fs::symlink_metadata(p).unwrap();
    (md.mtime(), md.mtime_nsec() as u32)
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().ino()
}

/// A tree's picture: the root's entry (`None`: not there), and each entry below with its ctime.
type Picture = (Option<(Entry, (i64, i64))>, BTreeMap<PathBuf, (Entry, (i64, i64))>);

/// Everything about the tree at `root` (the root included), with each entry's ctime too: a
/// metadata change that sets the same values (chmod, utimes) still moves the ctime.
fn picture(root: &Path) -> Picture {
    if fs::symlink_metadata(root).is_err() {
        return (None, BTreeMap::new());
    }
    let entries = listing(root)
        .into_iter()
        .map(|(p, e)| {
            let md = fs::symlink_metadata(root.join(&p)).unwrap();
            (p, (e, (md.ctime(), md.ctime_nsec())))
        })
        .collect();
    let md = fs::symlink_metadata(root).unwrap();
    (Some((describe(root), (md.ctime(), md.ctime_nsec()))), entries)
}

/// `restore --json ARGS latest -t TARGET`: the exit code and the summary object (last line).
fn restore_json(repo: &Repo, target: &Path, args: &[&str]) -> (i32, serde_json::Value, Output) {
    let mut all: Vec<&OsStr> = vec!["--json".as_ref(), "restore".as_ref(), "latest".as_ref()];
    all.extend(args.iter().map(OsStr::new));
    all.extend(["-t".as_ref(), target.as_os_str()]);
    let out = repo.run(all);
    let line = out.stdout.lines().last().unwrap_or_else(|| panic!("no summary:\n{}\n{}", out.stdout, out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\nstderr:\n{}", out.stderr));
    assert_eq!(v["message_type"], "summary", "{line}");
    (out.code, v, out)
}

/// The `verbose_status` lines of a `--json -v` run: (action, item, size).
fn verbose(out: &Output) -> Vec<(String, String, u64)> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message_type"] == "verbose_status")
        .map(|v| {
            (
                v["action"].as_str().unwrap().to_string(),
                v["item"].as_str().unwrap().to_string(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A source with files of known content and the snapshot mtime, backed up.
struct Fixture {
    repo: Repo,
    tmp: Tmp,
    src: PathBuf,
}

fn fixture(files: &[(&str, Vec<u8>)]) -> Fixture {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("s");
    for (name, data) in files {
        write(src.join(name), data);
        set_mtime(&src.join(name), SNAP_MTIME);
    }
    repo.run(["backup".as_ref(), src.as_os_str()]).ok();
    Fixture { repo, tmp, src }
}

#[test]
fn a_dry_run_writes_nothing_and_reports_what_it_would_do() {
    let f = fixture(&[
        ("same.txt", b"same\n".to_vec()),
        ("changed.txt", b"snapshot's\n".to_vec()),
        ("new.txt", b"new\n".to_vec()),
        ("d/big.bin", random_bytes(5, 3_000_000)),
    ]);
    std::os::unix::fs::symlink("same.txt", f.src.join("link")).unwrap();
    f.repo.run(["backup".as_ref(), f.src.as_os_str()]).ok();
    let total = 5 + 11 + 4 + 3_000_000;

    // A target that does not exist stays so.
    let missing = f.tmp.join("missing/t");
    let (code, v, _) = restore_json(&f.repo, &missing, &["--dry-run", "--delete"]);
    assert_eq!(code, 0);
    assert!(!f.tmp.join("missing").exists(), "a dry run created the target's parent");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["files_restored"], 5, "{v}");
    assert_eq!(v["bytes_restored"], total, "{v}");
    assert_eq!(v["files_skipped"], 0, "{v}");
    assert_eq!(v["files_deleted"], 0, "{v}");

    // A prepared target is left exactly as it was, contents, metadata and ctimes.
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    f.repo.run(["restore".as_ref(), "latest".as_ref(), "-t".as_ref(), target.as_os_str()]).ok();
    write(here.join("changed.txt"), "local\n");
    fs::remove_file(here.join("new.txt")).unwrap();
    write(here.join("extra.txt"), "not in the snapshot\n");
    write(here.join("d/gone/deep.txt"), "not in the snapshot\n");
    let before = picture(&target);
    let (code, v, out) = restore_json(&f.repo, &target, &["--dry-run", "--delete", "-v"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(picture(&target), before, "a dry run changed the target");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["files_restored"], 3, "changed.txt, new.txt, the symlink: {v}");
    assert_eq!(v["bytes_restored"], 11 + 4, "{v}");
    assert_eq!(v["files_skipped"], 2, "same.txt and d/big.bin match: {v}");
    assert_eq!(v["bytes_skipped"], 5 + 3_000_000, "{v}");
    assert_eq!(v["files_deleted"], 3, "extra.txt, d/gone/deep.txt, d/gone: {v}");
    let lines = verbose(&out);
    let s = |n: &str| f.src.join(n).display().to_string();
    for (action, item) in [
        ("unchanged", s("same.txt")),
        ("updated", s("changed.txt")),
        ("restored", s("new.txt")),
        ("unchanged", s("d/big.bin")),
        ("deleted", s("extra.txt")),
        ("deleted", s("d/gone/deep.txt")),
        ("deleted", s("d/gone")),
    ] {
        assert!(lines.iter().any(|(a, i, _)| a == action && *i == item), "no {action} {item} in {lines:?}");
    }
    assert!(lines.contains(&("updated".into(), s("changed.txt"), 11)), "sizes: {lines:?}");

    // The text output says so too.
    let out = f
        .repo
        .run(["restore".as_ref(), "latest".as_ref(), "--dry-run".as_ref(), "-t".as_ref(), target.as_os_str()])
        .ok();
    assert!(out.stdout.contains("dry run, nothing written"), "{}", out.stdout);
    assert_eq!(picture(&target), before, "a dry run changed the target");
}

/// The files of the overwrite tests, and the target prepared beside each.
fn prepare_overwrite(f: &Fixture, target: &Path) -> PathBuf {
    let here = restored(target, &f.src);
    f.repo.run(["restore".as_ref(), "latest".as_ref(), "-t".as_ref(), target.as_os_str()]).ok();
    // same.txt: as restored.
    write(here.join("older.txt"), "local older\n");
    set_mtime(&here.join("older.txt"), OLD_MTIME);
    write(here.join("newer.txt"), "local newer\n");
    set_mtime(&here.join("newer.txt"), NEW_MTIME);
    write(here.join("size.txt"), "local, of another size\n");
    set_mtime(&here.join("size.txt"), SNAP_MTIME);
    write(here.join("samesize.txt"), "LOCAL\n");
    set_mtime(&here.join("samesize.txt"), SNAP_MTIME);
    fs::remove_file(here.join("missing.txt")).unwrap();
    // One block changed in the middle of a file of many blobs, same size.
    let mut big = random_bytes(9, 6_000_000);
    big[3_000_000..3_000_100].fill(0xAA);
    write(here.join("big.bin"), big);
    here
}

fn overwrite_fixture() -> Fixture {
    fixture(&[
        ("same.txt", b"snapshot same\n".to_vec()),
        ("older.txt", b"snapshot older\n".to_vec()),
        ("newer.txt", b"snapshot newer\n".to_vec()),
        ("size.txt", b"snapshot size\n".to_vec()),
        ("samesize.txt", b"snap!\n".to_vec()),
        ("missing.txt", b"snapshot missing\n".to_vec()),
        ("big.bin", random_bytes(9, 6_000_000)),
    ])
}

/// Run `restore --overwrite MODE` on a freshly prepared target; returns the target's restored
/// directory, the summary, and the inodes of the files before.
fn run_overwrite(f: &Fixture, mode: &str, extra: &[&str]) -> (PathBuf, serde_json::Value, BTreeMap<String, u64>) {
    let target = f.tmp.join(format!("t-{mode}"));
    let here = prepare_overwrite(f, &target);
    let inodes = ["same.txt", "older.txt", "newer.txt", "size.txt", "samesize.txt", "big.bin"]
        .iter()
        .map(|n| (n.to_string(), ino(&here.join(n))))
        .collect();
    let mut args = if mode == "default" { vec![] } else { vec!["--overwrite", mode] };
    args.extend(extra);
    let (code, v, out) = restore_json(&f.repo, &target, &args);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(v["dry_run"], false);
    (here, v, inodes)
}

/// `name` holds the snapshot's content and mtime.
fn assert_snapshots(f: &Fixture, here: &Path, name: &str) {
    assert_eq!(fs::read(here.join(name)).unwrap(), fs::read(f.src.join(name)).unwrap(), "{name}: content");
    assert_eq!(mtime(&here.join(name)), SNAP_MTIME, "{name}: mtime");
}

/// `name` holds `content` with mtime `t` (left as it was).
fn assert_kept(here: &Path, name: &str, content: &[u8], t: (i64, u32)) {
    assert_eq!(fs::read(here.join(name)).unwrap(), content, "{name}: content kept");
    assert_eq!(mtime(&here.join(name)), t, "{name}: mtime kept");
}

#[test]
fn overwrite_always_replaces_what_differs_and_leaves_matching_files_in_place() {
    let f = overwrite_fixture();
    let (here, v, inodes) = run_overwrite(&f, "always", &["--verify"]);
    for n in ["same.txt", "older.txt", "newer.txt", "size.txt", "samesize.txt", "missing.txt", "big.bin"] {
        assert_snapshots(&f, &here, n);
    }
    assert_eq!(ino(&here.join("same.txt")), inodes["same.txt"], "a matching file is left in place");
    assert_ne!(ino(&here.join("samesize.txt")), inodes["samesize.txt"], "a differing file is replaced");
    assert_eq!(v["files_skipped"], 1, "{v}");
    assert_eq!(v["bytes_skipped"], 14, "{v}");
    assert_eq!(v["files_restored"], 6, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    // The default is always.
    let (here, v, _) = run_overwrite(&f, "default", &[]);
    assert_snapshots(&f, &here, "samesize.txt");
    assert_eq!(v["files_skipped"], 1, "{v}");
}

#[test]
fn overwrite_if_changed_trusts_size_and_mtime() {
    let f = overwrite_fixture();
    let (here, v, inodes) = run_overwrite(&f, "if-changed", &[]);
    for n in ["same.txt", "older.txt", "newer.txt", "size.txt", "missing.txt", "big.bin"] {
        assert_snapshots(&f, &here, n);
    }
    // Same size and mtime: taken as unchanged, not read.
    assert_kept(&here, "samesize.txt", b"LOCAL\n", SNAP_MTIME);
    assert_eq!(ino(&here.join("same.txt")), inodes["same.txt"]);
    assert_eq!(v["files_skipped"], 2, "{v}");
    assert_eq!(v["bytes_skipped"], 14 + 6, "{v}");
    assert_eq!(v["files_restored"], 5, "{v}");

    // With --verify, size and time are not enough: the content is compared.
    let (here, v, _) = run_overwrite(&f, "if-changed", &["--verify"]);
    assert_snapshots(&f, &here, "samesize.txt");
    assert_eq!(v["files_skipped"], 1, "{v}");
}

#[test]
fn overwrite_if_newer_replaces_only_older_files() {
    let f = overwrite_fixture();
    let (here, v, _) = run_overwrite(&f, "if-newer", &[]);
    assert_snapshots(&f, &here, "older.txt");
    assert_snapshots(&f, &here, "missing.txt");
    assert_snapshots(&f, &here, "same.txt");
    assert_kept(&here, "newer.txt", b"local newer\n", NEW_MTIME);
    // Equal mtimes: the snapshot's is not newer.
    assert_kept(&here, "size.txt", b"local, of another size\n", SNAP_MTIME);
    assert_kept(&here, "samesize.txt", b"LOCAL\n", SNAP_MTIME);
    let mut big = random_bytes(9, 6_000_000);
    big[3_000_000..3_000_100].fill(0xAA);
    assert_eq!(fs::read(here.join("big.bin")).unwrap(), big, "big.bin kept (it is newer: written now)");
    assert_eq!(v["files_skipped"], 5, "{v}");
    assert_eq!(v["bytes_skipped"], 14 + 15 + 14 + 6 + 6_000_000, "{v}");
    assert_eq!(v["files_restored"], 2, "{v}");
}

#[test]
fn overwrite_never_keeps_every_existing_file() {
    let f = overwrite_fixture();
    let (here, v, _) = run_overwrite(&f, "never", &[]);
    assert_snapshots(&f, &here, "missing.txt");
    assert_snapshots(&f, &here, "same.txt");
    assert_kept(&here, "older.txt", b"local older\n", OLD_MTIME);
    assert_kept(&here, "newer.txt", b"local newer\n", NEW_MTIME);
    assert_kept(&here, "size.txt", b"local, of another size\n", SNAP_MTIME);
    assert_kept(&here, "samesize.txt", b"LOCAL\n", SNAP_MTIME);
    assert_eq!(v["files_skipped"], 6, "{v}");
    assert_eq!(v["files_restored"], 1, "{v}");

    // A directory in the way of a file is kept too, and is no conflict.
    let target = f.tmp.join("t-never-dir");
    let here = restored(&target, &f.src);
    write(here.join("older.txt/mine.txt"), "mine\n");
    let (code, v, out) = restore_json(&f.repo, &target, &["--overwrite", "never"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(fs::read_to_string(here.join("older.txt/mine.txt")).unwrap(), "mine\n");
    assert_eq!(v["files_skipped"], 1, "{v}");

    // An unknown mode is a usage error.
    let out = f.repo.run(["restore", "latest", "--overwrite", "sometimes", "-t", "/nonexistent-target"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("if-newer"), "{}", out.stderr);
}

/// A snapshot of `s/{a.txt, d/b.txt, keep/c.txt}` restored, then extra entries added below the
/// restored paths, beside them (in an ancestor directory of the backed-up path) and at the
/// target's root.
fn delete_fixture() -> (Fixture, PathBuf, PathBuf) {
    let f = fixture(&[("a.txt", b"a\n".to_vec()), ("d/b.txt", b"b\n".to_vec()), ("keep/c.txt", b"c\n".to_vec())]);
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    f.repo.run(["restore".as_ref(), "latest".as_ref(), "-t".as_ref(), target.as_os_str()]).ok();
    write(here.join("extra.txt"), "x\n");
    write(here.join("d/extra.txt"), "x\n");
    write(here.join("d/sub/deep.txt"), "x\n");
    write(f.tmp.join("outside.txt"), "outside\n");
    std::os::unix::fs::symlink(f.tmp.join("outside.txt"), here.join("keep/link")).unwrap();
    write(here.join("keep/extra.txt"), "x\n");
    // Not below the backed-up path: beside it, and at the target's root.
    write(here.parent().unwrap().join("sibling/f.txt"), "sibling\n");
    write(target.join("unrelated/f.txt"), "unrelated\n");
    (f, target, here)
}

fn assert_untouched_neighbours(target: &Path, here: &Path) {
    assert_eq!(fs::read_to_string(here.parent().unwrap().join("sibling/f.txt")).unwrap(), "sibling\n");
    assert_eq!(fs::read_to_string(target.join("unrelated/f.txt")).unwrap(), "unrelated\n");
}

#[test]
fn delete_removes_only_what_the_snapshot_lacks_below_its_paths() {
    let (f, target, here) = delete_fixture();

    // Dry run: everything reported, nothing deleted.
    let before = picture(&target);
    let (code, v, out) = restore_json(&f.repo, &target, &["--delete", "--dry-run", "-v"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(picture(&target), before, "--dry-run --delete changed the target");
    assert_eq!(v["files_deleted"], 6, "{v}");
    let deleted: Vec<String> =
        verbose(&out).into_iter().filter(|(a, _, _)| a == "deleted").map(|(_, i, _)| i).collect();
    let s = |n: &str| f.src.join(n).display().to_string();
    let want = ["extra.txt", "d/extra.txt", "d/sub/deep.txt", "d/sub", "keep/link", "keep/extra.txt"].map(s);
    assert_eq!(deleted.len(), want.len(), "{deleted:?}");
    for w in &want {
        assert!(deleted.contains(w), "{w} not reported deleted: {deleted:?}");
    }

    let (code, v, out) = restore_json(&f.repo, &target, &["--delete"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(v["files_deleted"], 6, "{v}");
    assert_eq!(v["dry_run"], false);
    assert_same_tree(&f.src, &here);
    assert_untouched_neighbours(&target, &here);
    assert_eq!(fs::read_to_string(f.tmp.join("outside.txt")).unwrap(), "outside\n", "the link was followed");
}

#[test]
fn delete_with_include_cleans_only_the_included_subtree() {
    let (f, target, here) = delete_fixture();
    let d = f.src.join("d");
    let (code, v, out) = restore_json(&f.repo, &target, &["--delete", "--include", d.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(v["files_deleted"], 3, "d/extra.txt, d/sub/deep.txt, d/sub: {v}");
    assert!(!here.join("d/extra.txt").exists() && !here.join("d/sub").exists());
    assert_eq!(fs::read_to_string(here.join("d/b.txt")).unwrap(), "b\n");
    assert!(here.join("extra.txt").exists(), "outside the include: kept");
    assert!(here.join("keep/extra.txt").exists(), "outside the include: kept");
    assert!(fs::symlink_metadata(here.join("keep/link")).is_ok(), "outside the include: kept");
    assert_untouched_neighbours(&target, &here);

    // An excluded name is not deleted either.
    let (code, v, out) = restore_json(&f.repo, &target, &["--delete", "--exclude", "extra.txt"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert!(here.join("extra.txt").exists() && here.join("keep/extra.txt").exists());
    assert!(fs::symlink_metadata(here.join("keep/link")).is_err(), "not excluded: deleted");
    assert_eq!(v["files_deleted"], 1, "{v}");
}

#[test]
fn a_directory_in_the_way_of_a_file_goes_only_with_delete() {
    let f = fixture(&[("a.txt", b"snapshot's a\n".to_vec()), ("dir/inner.txt", b"inner\n".to_vec())]);
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    write(here.join("a.txt/mine/keep.txt"), "mine\n");
    write(here.join("dir"), "a file where the snapshot has a directory\n");

    // Without --delete: both conflicts reported, exit 1, nothing of the user's removed.
    let (code, v, _) = restore_json(&f.repo, &target, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["errors"], 2, "{v}");
    assert_eq!(fs::read_to_string(here.join("a.txt/mine/keep.txt")).unwrap(), "mine\n");
    assert_eq!(fs::read_to_string(here.join("dir")).unwrap(), "a file where the snapshot has a directory\n");

    // A dry run with --delete reports and removes nothing.
    let before = picture(&target);
    let (code, v, _) = restore_json(&f.repo, &target, &["--delete", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(v["files_deleted"], 4, "a.txt/mine/keep.txt, a.txt/mine, a.txt, dir: {v}");
    assert_eq!(picture(&target), before);

    // With --delete: removed, and the snapshot's entries written.
    let (code, v, out) = restore_json(&f.repo, &target, &["--delete"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(v["files_deleted"], 4, "{v}");
    assert_same_tree(&f.src, &here);
}

/// What the local file already holds is not downloaded: with every blob of the snapshot's
/// file present in a longer local copy, the restore succeeds although the repository's copy
/// of its largest blob is damaged (a download would exit 15), and the file becomes exactly
/// the snapshot's. With a local copy lacking that blob, the damage is reported and the local
/// file kept.
#[test]
fn blobs_the_local_file_holds_are_copied_not_downloaded() {
    let content = random_bytes(11, 6_000_000);
    let f = fixture(&[("big.bin", content.clone())]);
    damage_largest_data_blob(&f.repo);
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    let mut longer = content.clone();
    longer.extend_from_slice(b"local tail");
    write(here.join("big.bin"), &longer);
    let (code, v, out) = restore_json(&f.repo, &target, &["--verify"]);
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(v["files_restored"], 1, "{v}");
    assert_snapshots(&f, &here, "big.bin");

    let other = random_bytes(12, 6_000_000);
    write(here.join("big.bin"), &other);
    let (code, v, _) = restore_json(&f.repo, &target, &[]);
    assert_eq!(code, 15, "{v}");
    assert_eq!(fs::read(here.join("big.bin")).unwrap(), other, "the local file kept");
}

/// A profile's `[restore] overwrite` gives `--overwrite`; the command line's flag wins.
#[test]
fn a_profiles_overwrite_mode_applies() {
    let f = fixture(&[("a.txt", b"snapshot's a\n".to_vec())]);
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    write(here.join("a.txt"), "local a\n");
    let file = f.tmp.join("p.toml");
    write(&file, format!("[repository]\nrepo = {:?}\n\n[restore]\noverwrite = \"never\"\n", f.repo.path.display()));
    let run = |extra: &[&str]| {
        cairn()
            .password(PASSWORD)
            .arg("--config")
            .arg(&file)
            .args(["restore", "latest", "-t"])
            .arg(&target)
            .args(extra)
            .run()
            .ok()
    };
    run(&[]);
    assert_eq!(fs::read_to_string(here.join("a.txt")).unwrap(), "local a\n", "never, from the profile");
    run(&["--overwrite", "always"]);
    assert_eq!(fs::read_to_string(here.join("a.txt")).unwrap(), "snapshot's a\n", "the flag wins");
}

/// Hard links over an unchanged first name: names already linked stay (skipped), a missing
/// name is linked to the file left in place.
#[test]
fn hard_links_to_an_unchanged_file_are_kept_or_relinked() {
    let f = fixture(&[("a", b"linked content\n".to_vec())]);
    fs::hard_link(f.src.join("a"), f.src.join("b")).unwrap();
    f.repo.run(["backup".as_ref(), f.src.as_os_str()]).ok();
    let target = f.tmp.join("t");
    let here = restored(&target, &f.src);
    f.repo.run(["restore".as_ref(), "latest".as_ref(), "-t".as_ref(), target.as_os_str()]).ok();
    assert_eq!(ino(&here.join("a")), ino(&here.join("b")));
    let first = ino(&here.join("a"));

    let (code, v, _) = restore_json(&f.repo, &target, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["files_skipped"], 2, "{v}");
    assert_eq!(v["files_restored"], 0, "{v}");
    assert_eq!((ino(&here.join("a")), ino(&here.join("b"))), (first, first));

    fs::remove_file(here.join("b")).unwrap();
    let (code, v, _) = restore_json(&f.repo, &target, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["files_skipped"], 1, "{v}");
    assert_eq!(v["files_restored"], 1, "{v}");
    assert_eq!((ino(&here.join("a")), ino(&here.join("b"))), (first, first), "b linked to the file left in place");
    assert_eq!(fs::read(here.join("b")).unwrap(), b"linked content\n");
}
