//! Generates the synthetic Maildir of the nightly-scale benchmark: `CAIRN_MAILDIR_FILES`
//! messages (default 500,000) of 2 to 50 KB in `cur/` and `new/` of many folders, under
//! `$CAIRN_BENCH_DIR/maildir` (default /var/tmp/cairn-bench/maildir). Deterministic: the same
//! tree every time; safe to run again (existing files are kept).
//!
//! Run: `cargo bench --bench maildir`, then time `cairn backup` and `restic backup` of the
//! printed directory twice each (the second run is the unchanged nightly case), e.g. with
//! `/usr/bin/time -f "%e s %M KB"`.

use std::io::Write;
use std::path::PathBuf;

fn main() {
    let n: usize = std::env::var("CAIRN_MAILDIR_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let base = PathBuf::from(std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cairn-bench".into())).join("maildir");
    let words: Vec<&str> = "the of and to in is you that it he was for on are as with his they at be this from have or by one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know".split(' ').collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut made = 0;
    for i in 0..n {
        let user = i / 2000;
        let folder = (i / 500) % 4;
        let sub = if i % 5 == 0 { "new" } else { "cur" };
        let dir = base.join(format!("example.com/user{user:03}/Maildir/.folder{folder}/{sub}"));
        let name = format!("{}.M{}P{}.mail1:2,S", 1_700_000_000 + i, i, 4000 + i % 997);
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        if i % 500 < 2 {
            // The first two messages of a folder go to new/ and cur/: make both.
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let size = 2_000 + (next() % 48_000) as usize;
        let mut body = format!("From: user{}@example.org\nTo: user{user}@example.com\nSubject: message {i}\n\n", next() % 1000).into_bytes();
        while body.len() < size {
            body.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
            body.push(if next() % 12 == 0 { b'\n' } else { b' ' });
        }
        body.truncate(size);
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        made += 1;
    }
    println!("maildir: {} messages ({} new) in {}", n, made, base.display());
}
