//! A tree 2,000 directories deep (one-letter names, about 4,000 bytes of path, within
//! PATH_MAX), with a file beside each directory: backup, restore, check, ls, find, diff, dump
//! and prune all walk it without overflowing a stack (the mount is in tests/mount.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Levels of the deep tree.
const LEVELS: usize = 2000;

/// The deep tree at `<tmp>/s`; returns (its root, its deepest directory).
fn make(tmp: &Tmp) -> (PathBuf, PathBuf) {
    let root = tmp.join("s");
    let deepest = deep_tree(&root, LEVELS);
    assert!(deepest.as_os_str().len() > 4000, "the tree is only {} bytes deep", deepest.as_os_str().len());
    (root, deepest)
}

/// The snapshot path of `p` as cairn prints it.
fn shown(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_tree_2000_levels_deep_backs_up_restores_and_is_read_by_every_command() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let (root, deepest) = make(&tmp);
    let deepest_file = deepest.join("f");

    repo.run(["backup".as_ref(), root.as_os_str()]).ok();
    let first = repo.snapshots(["--json"])[0]["id"].as_str().unwrap().to_string();

    // Restore: the same tree, file for file.
    let target = tmp.join("t");
    repo.run(["restore".as_ref(), first.as_ref(), "--target".as_ref(), target.as_os_str()]).ok();
    assert_same_tree(&root, &restored(&target, &root));
    fs::remove_dir_all(&target).unwrap();

    // check, reading every pack.
    repo.run(["check", "--read-data"]).ok();

    // ls --recursive lists every entry, the deepest file included.
    let ls = repo.run(["ls".as_ref(), "--recursive".as_ref(), first.as_ref(), root.as_os_str()]).ok();
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert!(lines.contains(&shown(&deepest_file).as_str()), "ls does not list the deepest file");
    assert!(lines.len() > 2 * LEVELS, "ls listed {} lines", lines.len());

    // find: every `f`, the deepest one included.
    let found = repo.run(["find", "f"]).ok();
    assert!(
        found.stdout.contains(&shown(&deepest_file)),
        "find does not find the deepest file:\n{}",
        &found.stdout[..found.stdout.len().min(2000)]
    );
    assert_eq!(found.stdout.lines().filter(|l| l.ends_with("/f")).count(), LEVELS + 1, "find's matches");

    // diff against a second snapshot with a change at the bottom.
    write(&deepest_file, "changed at the bottom\n");
    repo.run(["backup".as_ref(), root.as_os_str()]).ok();
    let second = repo
        .snapshots(["--json"])
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .find(|id| *id != first)
        .unwrap();
    let diff = repo.run(["diff", &first, &second]).ok();
    // Only the file changed below the source (its ancestors' mtimes outside it may differ).
    let below = format!("{}/", shown(&root));
    let changes: Vec<&str> =
        diff.stdout.lines().filter(|l| l.get(1..5) == Some("    ") && l.contains(&below)).collect();
    assert!(
        changes == vec![format!("M    {}", shown(&deepest_file))],
        "diff lists {} changes below the source, not the one file",
        changes.len()
    );

    // dump --archive tar of the top directory, extracted by tar and compared.
    let archive = tmp.join("deep.tar");
    repo.run([
        "dump".as_ref(),
        second.as_ref(),
        root.as_os_str(),
        "--archive".as_ref(),
        "tar".as_ref(),
        "-t".as_ref(),
        archive.as_os_str(),
    ])
    .ok();
    let x = tmp.join("x");
    fs::create_dir(&x).unwrap();
    let tar = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&x).output().expect("run tar");
    assert!(tar.status.success(), "tar -x: {}", String::from_utf8_lossy(&tar.stderr));
    assert_same_tree(&root, &restored(&x, &root));

    // forget the first snapshot, prune, check.
    repo.run(["forget", &first]).ok();
    repo.run(["prune"]).ok();
    repo.run(["check", "--read-data"]).ok();
    let target = tmp.join("t2");
    repo.run(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).ok();
    assert_same_tree(&root, &restored(&target, &root));

    // Damage below level 1,024 (check once stopped looking there): check --read-data names the
    // deepest file as affected. The file's blob is the repository's largest data blob.
    let big = deepest.join("big.bin");
    write(&big, random_bytes(11, 400_000));
    repo.run(["backup".as_ref(), root.as_os_str()]).ok();
    damage_largest_data_blob(&repo);
    let check = repo.run(["--json", "check", "--read-data"]).code(1);
    let v = check.json();
    let paths: Vec<&str> =
        v["affected"].as_array().expect("affected array").iter().filter_map(|a| a["path"].as_str()).collect();
    assert_eq!(paths, vec![shown(&big).as_str()], "the affected paths");
}
