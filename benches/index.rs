//! Memory and look-up cost of the in-memory index at 10 million blobs (issue goal: at most 40
//! bytes per blob; restic needs about 60, rustic 48).
//!
//! Run: `cargo bench --bench index` (builds 10 M entries: ~0.4 GB, a few seconds). Blobs are
//! spread over packs of 32 blobs, as 16 MiB packs of 512 KiB chunks hold; prints bytes per
//! blob and the mean look-up time.

use std::time::Instant;

use rand::{RngCore, SeedableRng};

use cairn::id::{BlobId, Id, PackId};
use cairn::index::{Index, IndexFile, IndexPack};
use cairn::pack::BlobEntry;

fn main() {
    let n: usize = std::env::var("CAIRN_INDEX_BLOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let per_pack = 32;
    let mut rng = rand::rngs::StdRng::from_seed([9; 32]);
    let mut sample = Vec::new();
    let mut packs = Vec::with_capacity(n / per_pack + 1);
    let mut made = 0;
    while made < n {
        let mut pid = [0u8; 32];
        rng.fill_bytes(&mut pid);
        let blobs: Vec<BlobEntry> = (0..per_pack.min(n - made))
            .map(|i| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                if sample.len() < 100_000 && rng.next_u32() % 50 == 0 {
                    sample.push(BlobId(Id(b)));
                }
                BlobEntry {
                    blob_type: 0,
                    id: BlobId(Id(b)),
                    offset: 37 + i as u32 * 524_288,
                    length: 300_000,
                    raw_length: 524_288,
                }
            })
            .collect();
        made += blobs.len();
        packs.push(IndexPack { id: PackId(Id(pid)), salt: [0; 32], size: 16 << 20, blobs });
    }
    let file = IndexFile { packs, supersedes: vec![] };
    let t = Instant::now();
    let mut index = Index::new();
    index.add_files([&file]);
    let build = t.elapsed();
    drop(file);
    let t = Instant::now();
    let mut found = 0;
    for id in &sample {
        found += index.contains(id) as usize;
    }
    let per_lookup = t.elapsed().as_nanos() as f64 / sample.len().max(1) as f64;
    assert_eq!(found, sample.len());
    println!(
        "index: {} blobs in {} packs: {:.1} bytes/blob ({} MiB); built in {:.2} s; look-up {:.0} ns",
        index.len(),
        index.packs().len(),
        index.heap_bytes() as f64 / index.len() as f64,
        index.heap_bytes() >> 20,
        build.as_secs_f64(),
        per_lookup
    );
}
