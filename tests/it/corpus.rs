//! Tests on the real Linux source trees (`linux_corpus()`: Debian's linux-source-6.1 and
//! linux-source-6.12, which .ci/run installs): retention end to end at a realistic scale.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Type letter, permission bits, size, mtime (s, ns) and symlink target of one entry.
type Meta = (char, u32, u64, i64, i64, Option<PathBuf>);

/// [`Meta`] of every entry below `root`, by relative path; contents are compared separately
/// with `diff -r`.
fn metadata_listing(root: &Path) -> BTreeMap<PathBuf, Meta> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else if ft.is_fifo() {
                'p'
            } else {
                '?'
            };
            let target = ft.is_symlink().then(|| fs::read_link(&p).expect("readlink"));
            let size = if ft.is_file() { md.len() } else { 0 };
            let mode = if ft.is_symlink() { 0 } else { md.mode() & 0o7777 };
            out.insert(
                p.strip_prefix(root).expect("below root").to_path_buf(),
                (kind, mode, size, md.mtime(), md.mtime_nsec(), target),
            );
            if ft.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The restored tree of `src` below `target` equals `src`: same entries and metadata, and
/// `diff -r --no-dereference` finds no content difference.
pub(crate) fn assert_restored_identical(src: &Path, target: &Path) {
    let dst = restored(target, src);
    let (a, b) = (metadata_listing(src), metadata_listing(&dst));
    assert_eq!(a.len(), b.len(), "entry counts differ");
    for (p, ma) in &a {
        let mb = b.get(p).unwrap_or_else(|| panic!("{} not restored", p.display()));
        assert_eq!(ma, mb, "{}: metadata differs", p.display());
    }
    let st = Command::new("diff").args(["-rq", "--no-dereference"]).arg(src).arg(&dst).status().expect("run diff");
    assert!(st.success(), "diff -r found differences between {} and {}", src.display(), dst.display());
}

#[test]
fn forget_and_prune_on_the_linux_corpus_match_a_fresh_repository() {
    let corpus = linux_corpus();
    let (old, new) = (corpus.join("linux-source-6.1"), corpus.join("linux-source-6.12"));
    let repo = Repo::init();
    let first = repo.backup_json([old.as_os_str()]);
    repo.backup_json([new.as_os_str()]);
    let fresh = Repo::init();
    fresh.backup_json([new.as_os_str()]);

    // Forget the 6.1 snapshot and prune (restic's default --max-unused 5%).
    let id = first["snapshot_id"].as_str().expect("snapshot id").to_string();
    let out = repo.cmd().args(["--json", "forget", &id, "--prune"]).run().ok();
    assert!(out.stdout.lines().count() >= 2, "forget --prune printed no prune report: {}", out.stdout);
    let (pruned, reference) = (repo.size() as f64, fresh.size() as f64);
    assert!(
        pruned <= reference * 1.10,
        "after prune the repository is {pruned} bytes, more than 10 % over a fresh 6.12-only repository ({reference})"
    );
    assert!(pruned >= reference * 0.95, "prune removed data 6.12 needs? {pruned} < {reference}");

    repo.run(["check", "--read-data"]).ok();
    let t = Tmp::new();
    repo.run(["restore".to_string(), "latest".into(), "--target".into(), t.path.display().to_string()]).ok();
    assert_restored_identical(&new, &t.path);
}
