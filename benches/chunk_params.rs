//! Measures chunk-size parameters on real streams: deduplication between two versions of a
//! stream against the number of chunks (index entries) each choice costs.
//!
//! Usage: `CAIRN_BENCH_DIR=/var/tmp/cairn-bench cargo bench --bench chunk_params`
//! (needs `linux-6.1.tar` and `linux-6.12.tar` there, as `../shared/bench/compare.sh` makes
//! them). Prints one row per parameter set; the chosen defaults and the table are recorded in
//! repo-format.md, "Choice of chunk sizes".

use std::collections::HashSet;
use std::path::PathBuf;

use cairn::chunker::{Chunker, ChunkerParams};

fn gear() -> Box<[u64; 256]> {
    // A fixed pseudo-random table (any keyed table behaves alike statistically).
    let mut g = Box::new([0u64; 256]);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for v in g.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    g
}

fn main() {
    let dir = PathBuf::from(std::env::var("CAIRN_BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cairn-bench".into()));
    let a = dir.join("linux-6.1.tar");
    let b = dir.join("linux-6.12.tar");
    let (Ok(a), Ok(b)) = (std::fs::read(&a), std::fs::read(&b)) else {
        eprintln!("chunk_params: {} needs linux-6.1.tar and linux-6.12.tar; skipped", dir.display());
        return;
    };
    println!(
        "{:>24} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "min/avg/max KiB", "chunks A", "chunks B", "B new MiB", "B reused %", "index KiB"
    );
    let k = 1024u32;
    for (min, avg, max) in [
        (64 * k, 256 * k, 1024 * k),
        (128 * k, 512 * k, 2048 * k),
        (256 * k, 512 * k, 4096 * k),
        (256 * k, 1024 * k, 4096 * k),
        (512 * k, 1024 * k, 8192 * k),
        (1024 * k, 2048 * k, 8192 * k),
        (1024 * k, 4096 * k, 16384 * k),
    ] {
        let params = ChunkerParams { min_size: min, avg_size: avg, max_size: max, normalization: 1 };
        let c = match Chunker::new(params, gear()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{params:?}: {e}");
                continue;
            }
        };
        let mut seen = HashSet::new();
        let mut chunks_a = 0usize;
        for ch in c.chunks(&a) {
            seen.insert(blake3::hash(ch));
            chunks_a += 1;
        }
        let (mut chunks_b, mut new_b) = (0usize, 0u64);
        for ch in c.chunks(&b) {
            chunks_b += 1;
            if seen.insert(blake3::hash(ch)) {
                new_b += ch.len() as u64;
            }
        }
        // Index cost: one entry per distinct chunk, ~60 bytes in memory per entry.
        let index_kib = seen.len() * 60 / 1024;
        println!(
            "{:>24} {:>10} {:>10} {:>12.1} {:>12.1} {:>10}",
            format!("{}/{}/{}", min / k, avg / k, max / k),
            chunks_a,
            chunks_b,
            new_b as f64 / (1 << 20) as f64,
            100.0 * (1.0 - new_b as f64 / b.len() as f64),
            index_kib
        );
    }
}
