//! Crash and fault tests that need failpoints: built only with `--features failpoints`
//! (`main.rs` declares this module under that feature; `.ci/test` runs `cargo test --features
//! failpoints`). Each failpoint is set through the FAILPOINTS variable of the cairn process.

use std::process::Command;

use crate::common::generations::*;
use crate::common::*;

/// prune killed (SIGKILL, as a power cut or the OOM killer would) after repacking, after
/// writing the new index, and halfway through deleting: the repository stays complete, and a
/// second prune finishes the job.
#[test]
fn prune_killed_at_each_step_leaves_a_complete_repository() {
    for point in ["repacked", "indexed", "deleting"] {
        let repo = Repo::init();
        let g = generations(&repo);
        forget(&repo, &g.snaps[0].0);
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("-r")
            .arg(&repo.path)
            .args(["prune", "--max-unused", "0"])
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("FAILPOINTS", format!("prune-{point}=return"))
            .env_remove("CAIRN_REPOSITORY")
            .output()
            .expect("run prune");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "{point}: prune was not killed: {out:?}");
        // check --read-data passes on the half-pruned repository (packs in no index are hints).
        repo.run(["check", "--read-data"]).ok();
        // Every kept snapshot restores identically after the crash.
        for (id, copy) in &g.snaps[1..] {
            assert_restores(&repo, id, &g.src, copy);
        }
        // A new prune finishes the job (the dead process's lock is stale), and then there is
        // nothing left to do.
        repo.run(["prune", "--max-unused", "0"]).ok();
        let again = repo.cmd().args(["--json", "prune", "--max-unused", "0", "--dry-run"]).run().ok().json();
        assert_eq!(again["unused_blobs"], 0, "{point}: {again}");
        assert_eq!(again["packs_unindexed_deleted"], 0, "{point}: {again}");
        let out = repo.run(["check", "--read-data"]).ok();
        assert!(!out.stdout.contains("hint"), "{point}: leftovers after the second prune: {}", out.stdout);
        for (id, copy) in &g.snaps[1..] {
            assert_restores(&repo, id, &g.src, copy);
        }
        assert_eq!(lock_count(&repo), 0);
    }
}

/// Taking an exclusive lock fails after its lock file is written (here: while removing stale
/// locks): the error is reported and the lock file is removed again, so it does not block
/// every later command.
#[test]
fn a_failed_lock_acquisition_leaves_no_lock_file() {
    let repo = Repo::init();
    let out = repo.cmd().env("FAILPOINTS", "lock-stale-cleanup=return").args(["prune"]).run().code(11);
    assert!(out.stderr.contains("failpoint lock-stale-cleanup"), "{}", out.stderr);
    assert_eq!(lock_count(&repo), 0, "the failed lock acquisition left its lock file");
    repo.run(["prune"]).ok();
}
