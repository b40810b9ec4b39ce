//! Any bytes through every plaintext decoder (tree of either version, snapshot, index file,
//! config, pack header entries) and through the single-object decryption: results, never
//! panics, and no unbounded allocation (the decoder's size limit).
#![no_main]
use cairn::backend::FileKind;
use cairn::crypto::MasterKey;
use cairn::format::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn::tree::Tree::decode(data, "fuzz");
    let _ = decode::<cairn::snapshot::Snapshot>(data, "fuzz");
    let _ = decode::<cairn::index::IndexFile>(data, "fuzz");
    let _ = decode::<cairn::repository::Config>(data, "fuzz");
    let _ = decode::<Vec<cairn::pack::BlobEntry>>(data, "fuzz");
    if let Some(mk) = MasterKey::from_bytes(&[3u8; 96]) {
        for m in [FileKind::Config, FileKind::Index, FileKind::Snapshot] {
            let _ = mk.open_object(m, data, "fuzz");
        }
    }
});
