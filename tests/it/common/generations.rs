//! Three generations of a source tree in a repository, and the checks the prune tests make on
//! them (tests/prune.rs, tests/failpoints.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// One MiB.
pub const MIB: usize = 1 << 20;

pub fn lock_count(repo: &Repo) -> usize {
    fs::read_dir(repo.path.join("locks")).map(|d| d.count()).unwrap_or(0)
}

/// `cairn forget ID`, which must succeed and remove exactly that snapshot file.
pub fn forget(repo: &Repo, id: &str) {
    repo.run(["forget", id]).ok();
    assert!(!repo.path.join("snapshots").join(id).exists(), "forget left snapshot {id}");
}

/// Remove a snapshot file directly (as a forget on another machine would have).
pub fn forget_by_file(repo: &Repo, id: &str) {
    fs::remove_file(repo.path.join("snapshots").join(id)).expect("remove snapshot file");
}

pub fn snapshot_id(v: &serde_json::Value) -> String {
    v["snapshot_id"].as_str().expect("snapshot_id").to_string()
}

/// Restore snapshot `id` into a fresh directory and assert it equals `src` as it was then
/// (`expect`, a copy of the source taken at backup time).
pub fn assert_restores(repo: &Repo, id: &str, src: &Path, expect: &Path) {
    let t = Tmp::new();
    repo.run(["restore", id, "--target"].iter().map(|s| s.to_string()).chain([t.path.display().to_string()])).ok();
    assert_same_tree(expect, &restored(&t.path, src));
}

pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("run cp");
    assert!(st.success());
}

/// Three generations of a source tree with shared, changed and dropped files, so that
/// forgetting the first leaves fully unused packs and partly used packs.
pub struct Generations {
    pub _tmp: Tmp,
    pub src: PathBuf,
    /// (snapshot id, copy of the source at that time)
    pub snaps: Vec<(String, PathBuf)>,
}

pub fn generations(repo: &Repo) -> Generations {
    let tmp = Tmp::new();
    let src = tmp.join("src");
    fs::create_dir_all(src.join("keep")).unwrap();
    let mut snaps = Vec::new();
    for gen in 0..3u64 {
        // Files that live in every generation, files unique to each, and many small files
        // that share packs with the unique ones.
        write(src.join("keep/base.bin"), random_bytes(1, 6 * MIB));
        write(src.join(format!("gen{gen}.bin")), random_bytes(100 + gen, 9 * MIB));
        if gen > 0 {
            let _ = fs::remove_file(src.join(format!("gen{}.bin", gen - 1)));
        }
        for i in 0..40u64 {
            write(
                src.join(format!("keep/small{i:02}.txt")),
                random_bytes(1000 + i + gen * (i % 3), 20_000 + i as usize * 100),
            );
        }
        let summary = repo.backup_json([src.as_os_str()]);
        let copy = tmp.join(format!("copy{gen}"));
        copy_tree(&src, &copy);
        snaps.push((snapshot_id(&summary), copy));
    }
    Generations { _tmp: tmp, src, snaps }
}
