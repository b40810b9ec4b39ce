//! Nightly scale: a synthetic Maildir of 500,000 messages of 2 to 50 KB (the tree
//! `tests/common/maildir.rs` generates) backed up through the binary, then backed up again
//! unchanged (the nightly case), each with a peak resident memory under 400 MB; the unchanged
//! run reads no file. How long it takes against restic is measured by the benchmark (README.md,
//! "Performance"), never asserted here.
//!
//! It needs about 8 GB of disk for the messages and 3 GB for the repository, in the
//! directory of temporary files; with less free space it fails, saying so (a test that passes
//! without running would hide a regression).
//! `CAIRN_SCALE_MESSAGES` sets another message count.

use std::time::Duration;

use crate::common::*;

/// 400 MB, in KiB.
const PEAK_LIMIT_KIB: u64 = 400_000_000 / 1024;

#[test]
fn maildir_of_500k_messages_backs_up_twice_in_bounded_memory() {
    let n: usize = std::env::var("CAIRN_SCALE_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let src = Tmp::new();
    // Messages average 15 KB; the repository takes about a third of that.
    let need = n as u64 * 15_000 * 3 / 2;
    let st = nix::sys::statvfs::statvfs(&src.path).expect("statvfs");
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    assert!(
        free >= need + (2 << 30),
        "the scale test needs {} GB free in {} (set CAIRN_SCALE_MESSAGES for a smaller run), there are {} GB",
        (need + (2 << 30)) >> 30,
        src.path.display(),
        free >> 30
    );
    let maildir = src.join("maildir");
    let (made, bytes) = maildir::generate(&maildir, n);
    assert_eq!(made, n);

    let repo = Repo::init();
    let backup = || {
        repo.cmd()
            .args(["--json", "backup", "--host", "mail1"])
            .arg(&maildir)
            .timeout(Duration::from_secs(1800))
            .run()
            .ok()
    };
    let first = backup();
    let s = first.json();
    assert_eq!(s["files_new"], n as u64, "{s}");
    assert_eq!(s["total_bytes_processed"], bytes, "{s}");
    let second = backup();
    let u = second.json();
    assert_eq!(
        (u["files_unchanged"].as_u64(), u["files_new"].as_u64(), u["files_changed"].as_u64()),
        (Some(n as u64), Some(0), Some(0)),
        "{u}"
    );
    // Nothing below the Maildir is stored again. The trees above it record its ancestors'
    // metadata (as restic's do), and the other tests of this binary create and remove their
    // temporary directories in the same parent meanwhile: at most those trees are new.
    let ancestors = maildir.ancestors().count() as u64 - 1;
    assert_eq!((u["data_blobs"].as_u64(), u["dirs_changed"].as_u64()), (Some(0), Some(0)), "{u}");
    assert!(u["tree_blobs"].as_u64().is_some_and(|t| t <= ancestors), "an unchanged Maildir added trees: {u}");
    eprintln!(
        "{n} messages, {} MB: peak memory {} MB (first backup), {} MB (unchanged)",
        bytes / 1_000_000,
        first.peak_rss_kib * 1024 / 1_000_000,
        second.peak_rss_kib * 1024 / 1_000_000
    );
    assert!(first.peak_rss_kib > 0 && second.peak_rss_kib > 0, "peak memory was not measured");
    assert!(first.peak_rss_kib < PEAK_LIMIT_KIB, "first backup peaked at {} KiB", first.peak_rss_kib);
    assert!(second.peak_rss_kib < PEAK_LIMIT_KIB, "unchanged backup peaked at {} KiB", second.peak_rss_kib);

    // One user's mail restores identical (content and metadata).
    let user = maildir.join(format!("example.com/user{:03}", (n.saturating_sub(1) / 2000).min(7)));
    let target = Tmp::new();
    repo.cmd().args(["restore", "latest", "--include"]).arg(&user).arg("--target").arg(&target.path).run().ok();
    assert_same_tree(&user, &restored(&target.path, &user));
}
