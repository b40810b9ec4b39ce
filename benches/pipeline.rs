//! Criterion benchmarks of the backup pipeline's stages on in-memory data: chunking, blob-id
//! hashing (keyed BLAKE3), zstd compression, AES-256-GCM sealing, and the whole path from a
//! stream to packed, encrypted blobs in a repository on a temporary directory.
//!
//! Run: `cargo bench --bench pipeline`. Throughput is reported in bytes per second.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{RngCore, SeedableRng};

use cairn::archiver::{Permit, Progress, Saver};
use cairn::blob::{self, BlobType};
use cairn::chunker::{Chunker, ChunkerParams};
use cairn::crypto::keyfile::KdfParams;
use cairn::crypto::MasterKey;
use cairn::repository::{InitOptions, Repository};

/// 32 MiB of data that compresses about 2:1: random bytes with runs of text-like filler.
fn sample(len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::from_seed([5; 32]);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    for block in v.chunks_mut(4096).step_by(2) {
        for (i, b) in block.iter_mut().enumerate() {
            *b = b"static int cairn_bench(void) { return 0; }\n"[i % 44];
        }
    }
    v
}

fn stages(c: &mut Criterion) {
    let data = sample(32 << 20);
    let mk = MasterKey::generate();
    let chunker = Chunker::new(ChunkerParams::default(), mk.gear_table()).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("chunker", |b| b.iter(|| chunker.chunks(black_box(&data)).count()));
    g.bench_function("blob_id", |b| b.iter(|| mk.blob_id(black_box(&data))));
    for level in [1, 3] {
        g.bench_with_input(BenchmarkId::new("zstd", level), &level, |b, &l| {
            b.iter(|| data.chunks(512 << 10).map(|c| blob::compress(c, l).len()).sum::<usize>())
        });
    }
    let key = mk.file_key(&[1; 32]);
    let id = mk.blob_id(b"x");
    g.bench_function("aes_gcm_seal", |b| {
        b.iter(|| {
            data.chunks(512 << 10)
                .enumerate()
                .map(|(i, c)| blob::seal(&key, i as u64, BlobType::Data, &id, c).map(|v| v.len()).unwrap_or(0))
                .sum::<usize>()
        })
    });
    g.finish();
}

fn whole_pipeline(c: &mut Criterion) {
    let data = sample(64 << 20);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let backend: Arc<dyn cairn::backend::Backend> =
        Arc::new(cairn::backend::local::LocalBackend::new(dir.path().join("repo")));
    let opts = InitOptions {
        kdf: KdfParams { memory_kib: 8 * 1024, iterations: 1, ..KdfParams::default() },
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"bench", &opts).unwrap_or_else(|e| panic!("{e}"));
    let chunker = repo.chunker().unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let unlocked = cairn::lock::ReadLock::unlocked();
    g.bench_function("stream_to_packs_new_data", |b| {
        b.iter(|| {
            // A fresh empty index each time: every chunk is new and goes through
            // compression, encryption and a pack write (on a dry-run saver: no disk I/O).
            let index = cairn::index::Index::new();
            let progress = Progress::default();
            let saver = Saver::new(&repo, &index, Permit::DryRun(&unlocked), 1, &progress);
            let mut r: &[u8] = &data;
            let out = saver.save_stream(&chunker, &mut r, data.len() as u64);
            assert!(out.is_ok());
            saver.flush().is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, stages, whole_pipeline);
criterion_main!(benches);
