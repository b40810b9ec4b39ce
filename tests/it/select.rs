//! Integration tests of restic's source-selection flags of `backup`: `--files-from`,
//! `--files-from-verbatim`, `--files-from-raw`, `--exclude-caches`, `--exclude-if-present`,
//! `--exclude-larger-than` and `--skip-if-unchanged`, on real trees, checking with
//! `cairn ls latest` what each snapshot holds; and the same options as `[backup]` profile keys.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;

/// The cache directory signature of <https://bford.info/cachedir/>.
const SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// The paths of the latest snapshot below `base`, relative to it (`ls latest`, everything).
fn in_latest(repo: &Repo, base: &Path) -> BTreeSet<String> {
    let out = repo.run(["ls", "latest"]).ok();
    let prefix = format!("{}/", base.display());
    out.stdout.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

/// Assert that `have` holds every path of `yes` and none of `no`.
fn assert_holds(have: &BTreeSet<String>, yes: &[&str], no: &[&str]) {
    for y in yes {
        assert!(have.contains(*y), "{y} is not in the snapshot: {have:?}");
    }
    for n in no {
        assert!(!have.contains(*n), "{n} is in the snapshot: {have:?}");
    }
}

#[test]
fn exclude_caches_keeps_the_directory_and_its_tag_and_honours_only_the_signature() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("keep.txt"), "keep");
    write(src.join("cache/CACHEDIR.TAG"), format!("{SIGNATURE}\n# This file is a cache directory tag.\n"));
    write(src.join("cache/blob"), "cached");
    write(src.join("cache/sub/deep"), "cached too");
    write(src.join("fake/CACHEDIR.TAG"), "Signature: 00000000000000000000000000000000\n");
    write(src.join("fake/data"), "not a cache");
    repo.backup_json([arg("--exclude-caches"), src.clone()]);
    let have = in_latest(&repo, &src);
    assert_holds(
        &have,
        &["keep.txt", "cache", "cache/CACHEDIR.TAG", "fake", "fake/CACHEDIR.TAG", "fake/data"],
        &["cache/blob", "cache/sub", "cache/sub/deep"],
    );

    // Without the flag the tag means nothing.
    repo.backup_json([&src]);
    assert_holds(&in_latest(&repo, &src), &["cache/blob", "cache/sub/deep"], &[]);
}

#[test]
fn exclude_if_present_with_and_without_a_header() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a/.nobackup"), "");
    write(src.join("a/secret"), "x");
    write(src.join("a/dir/more"), "x");
    write(src.join("b/.skip"), "SKIP ME please");
    write(src.join("b/data"), "x");
    write(src.join("c/.skip"), "keep me");
    write(src.join("c/data"), "x");
    write(src.join("d/data"), "x");
    let out = repo
        .cmd()
        .args(["backup", "--exclude-if-present", ".nobackup", "--exclude-if-present", ".skip:SKIP ME"])
        .arg(&src)
        .run()
        .ok();
    assert!(out.stdout.contains("snapshot"), "{}", out.stdout);
    let have = in_latest(&repo, &src);
    assert_holds(
        &have,
        &["a", "a/.nobackup", "b", "b/.skip", "c/.skip", "c/data", "d/data"],
        &["a/secret", "a/dir", "a/dir/more", "b/data"],
    );

    // A malformed spec is a usage error before anything is written.
    let out = repo.cmd().args(["backup", "--exclude-if-present", "a/b"]).arg(&src).run().code(1);
    assert!(out.stderr.contains("--exclude-if-present"), "{}", out.stderr);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 1);
}

#[test]
fn exclude_larger_than_leaves_big_files_out_without_errors() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("small"), vec![1u8; 1024]);
    write(src.join("big"), vec![2u8; 1025]);
    write(src.join("dir/huge"), random_bytes(1, 3 << 20));
    write(src.join("dir/tiny"), "t");
    let summary = repo.backup_json([arg("--exclude-larger-than"), arg("1K"), src.clone()]);
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_holds(&in_latest(&repo, &src), &["small", "dir", "dir/tiny"], &["big", "dir/huge"]);

    repo.backup_json([arg("--exclude-larger-than"), arg("2MB"), src.clone()]);
    assert_holds(&in_latest(&repo, &src), &["small", "big", "dir/tiny"], &["dir/huge"]);

    for bad in ["1X", "-1", "K", "1.5M"] {
        let out = repo.cmd().arg("backup").arg(format!("--exclude-larger-than={bad}")).arg(&src).run().code(1);
        assert!(out.stderr.contains("--exclude-larger-than"), "{bad}: {}", out.stderr);
    }
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 2);
}

#[test]
fn files_from_lists_with_comments_globs_verbatim_names_and_nul_separators() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("etc/a.conf"), "a");
    write(src.join("etc/b.conf"), "b");
    write(src.join("etc/c.txt"), "c");
    write(src.join("  lead"), "leading blanks");
    write(src.join("plain"), "p");
    write(src.join("raw\nname"), "a newline in the name");
    write(src.join("other"), "not listed");
    let list = tmp.join("list.txt");
    let s = |p: &str| src.join(p).display().to_string();
    write(&list, format!("# what to back up\n\n   {}   \n\t# indented comment\n{}\n", s("etc/*.conf"), s("plain")));
    let verbatim = tmp.join("verbatim.txt");
    write(&verbatim, format!("{}\n\n", s("  lead")));
    let raw = tmp.join("raw.bin");
    write(&raw, format!("{}\0", s("raw\nname")));
    let out = repo
        .cmd()
        .arg("backup")
        .arg("--files-from")
        .arg(&list)
        .arg("--files-from-verbatim")
        .arg(&verbatim)
        .arg("--files-from-raw")
        .arg(&raw)
        .run()
        .ok();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let have = in_latest(&repo, &src);
    let want: BTreeSet<String> =
        ["etc", "etc/a.conf", "etc/b.conf", "plain", "  lead", "raw\nname"].iter().map(|p| p.to_string()).collect();
    // `ls` prints one path a line: the name with a newline shows as two lines.
    let have: BTreeSet<String> = have.into_iter().filter(|p| !p.starts_with("raw")).collect();
    let want: BTreeSet<String> = want.into_iter().filter(|p| !p.starts_with("raw")).collect();
    assert_eq!(have, want);
    let snap = &repo.snapshots(Vec::<&str>::new())[0];
    let paths: Vec<&str> = snap["paths"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert!(paths.contains(&s("raw\nname").as_str()), "{paths:?}");
    assert!(paths.contains(&s("  lead").as_str()), "{paths:?}");
    assert_eq!(paths.len(), 5, "{paths:?}");

    // Standard input as a list, with a PATH argument beside it.
    repo.cmd()
        .args(["backup", "--files-from", "-"])
        .arg(src.join("other"))
        .stdin(format!("{}\n", s("plain")).into_bytes())
        .run()
        .ok();
    assert_holds(&in_latest(&repo, &src), &["plain", "other"], &["etc"]);
}

#[test]
fn files_from_a_missing_path_is_partial_and_an_empty_list_is_refused() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("here"), "h");
    let list = tmp.join("list.txt");
    write(&list, format!("{}\n{}\n", src.join("here").display(), src.join("gone").display()));
    let out = repo.cmd().arg("backup").arg("--files-from").arg(&list).run().code(3);
    assert!(out.stderr.contains("gone"), "{}", out.stderr);
    assert_holds(&in_latest(&repo, &src), &["here"], &["gone"]);

    // A glob that matches nothing is reported the same way.
    write(&list, format!("{}\n{}\n", src.join("here").display(), src.join("*.none").display()));
    let out = repo.cmd().arg("backup").arg("--files-from").arg(&list).run().code(3);
    assert!(out.stderr.contains("*.none"), "{}", out.stderr);

    // Only comments and blank lines: nothing to back up, no snapshot.
    write(&list, "# nothing\n\n   \n");
    let out = repo.cmd().arg("backup").arg("--files-from").arg(&list).run().code(1);
    assert!(out.stderr.contains("nothing to back up") && out.stderr.contains("list.txt"), "{}", out.stderr);
    // Beside a command too: the dump alone would look like a complete night.
    let out =
        repo.cmd().arg("backup").arg("--files-from").arg(&list).args(["--command", "/x.dump=echo x"]).run().code(1);
    assert!(out.stderr.contains("listed no path"), "{}", out.stderr);
    let out = repo.cmd().arg("backup").arg("--files-from").arg(tmp.join("no-such-list")).run().code(1);
    assert!(out.stderr.contains("no-such-list"), "{}", out.stderr);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 2);

    // A list with --stdin is a usage error (clap's exit code 2).
    repo.cmd().args(["backup", "--stdin", "--files-from"]).arg(&list).run().code(2);
}

#[test]
fn skip_if_unchanged_writes_one_snapshot_until_something_changes() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a"), "one");
    let first = repo.backup_json([arg("--skip-if-unchanged"), src.clone()]);
    assert!(first.get("snapshot_skipped").is_none(), "{first}");
    assert!(first["snapshot_id"].is_string(), "{first}");

    // A change beside the source (the metadata of the directory above it) is not a change.
    write(tmp.join("beside"), "not backed up");
    let out = repo.cmd().args(["backup", "--skip-if-unchanged"]).arg(&src).run().ok();
    assert!(out.stdout.contains("no changes, snapshot not written"), "{}", out.stdout);
    let again = repo.backup_json([arg("--skip-if-unchanged"), src.clone()]);
    assert_eq!(again["snapshot_skipped"], true, "{again}");
    assert!(again["snapshot_id"].is_null(), "{again}");
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 1);

    // Another tag is another snapshot; so is a change.
    repo.backup_json([arg("--skip-if-unchanged"), arg("--tag"), arg("t"), src.clone()]);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 2);
    write(src.join("b"), "two");
    let changed = repo.backup_json([arg("--skip-if-unchanged"), arg("--tag"), arg("t"), src.clone()]);
    assert!(changed.get("snapshot_skipped").is_none(), "{changed}");
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 3);
    // Without the flag an unchanged tree is a snapshot, as before.
    repo.backup_json([arg("--tag"), arg("t"), src.clone()]);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 4);
}

#[test]
fn the_options_as_profile_keys() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("mail/cur/1"), "message");
    write(src.join("mail/big.iso"), vec![0u8; 4096]);
    write(src.join("cache/CACHEDIR.TAG"), SIGNATURE);
    write(src.join("cache/x"), "cached");
    write(src.join("unlisted"), "u");
    let list = tmp.join("paths.txt");
    write(&list, format!("# sources\n{}\n{}\n", src.join("mail").display(), src.join("cache").display()));
    let profile = tmp.join("night.toml");
    write(
        &profile,
        format!(
            "[repository]\nrepo = {:?}\n\n[backup]\nfiles-from = [{:?}]\nexclude-caches = true\nexclude-larger-than = \"2K\"\nskip-if-unchanged = true\n",
            repo.path.display().to_string(),
            list.display().to_string()
        ),
    );
    let run = || cairn().password(PASSWORD).arg("--config").arg(&profile).args(["--json", "backup"]).run().ok().json();
    let first = run();
    assert!(first.get("snapshot_skipped").is_none(), "{first}");
    assert_holds(
        &in_latest(&repo, &src),
        &["mail/cur/1", "cache", "cache/CACHEDIR.TAG"],
        &["mail/big.iso", "cache/x", "unlisted"],
    );
    let second = run();
    assert_eq!(second["snapshot_skipped"], true, "{second}");
    // `cairn run` says so too, and exits 0.
    let out = cairn().password(PASSWORD).arg("--config").arg(&profile).arg("run").run().ok();
    assert!(out.stdout.contains("backup: no changes, snapshot not written"), "{}", out.stdout);
    assert_eq!(repo.snapshots(Vec::<&str>::new()).len(), 1);

    // A malformed value names the file, line and key.
    write(
        &profile,
        format!("[repository]\nrepo = {:?}\n\n[backup]\nexclude-caches = \"yes\"\n", repo.path.display().to_string()),
    );
    let out = cairn().password(PASSWORD).arg("--config").arg(&profile).arg("backup").arg(&src).run().code(1);
    assert!(out.stderr.contains("night.toml") && out.stderr.contains("exclude-caches"), "{}", out.stderr);
}

/// A command-line argument (for the mixed argument lists above).
fn arg(s: &str) -> std::path::PathBuf {
    s.into()
}
