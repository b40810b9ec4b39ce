//! Generates the synthetic Maildir of the nightly-scale benchmark (the same tree as
//! `tests/it/scale.rs` makes, see `tests/it/common/maildir.rs`): `CAIRN_MAILDIR_FILES` messages
//! (default 500,000) of 2 to 50 KB under `$CAIRN_BENCH_DIR/maildir` (default
//! /var/tmp/cairn-bench/maildir). Safe to run again (existing files are kept).
//!
//! Run: `cargo bench --bench maildir`, then time `cairn backup` and `restic backup` of the
//! printed directory twice each (the second run is the unchanged nightly case), e.g. with
//! `/usr/bin/time -f "%e s %M KB"`.

#[path = "../tests/it/common/maildir.rs"]
mod maildir;

use std::path::PathBuf;

fn main() {
    let n: usize = std::env::var("CAIRN_MAILDIR_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let base = PathBuf::from(std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cairn-bench".into()))
        .join("maildir");
    let (made, bytes) = maildir::generate(&base, n);
    println!("maildir: {n} messages ({made} new, {} MB written) in {}", bytes >> 20, base.display());
}
