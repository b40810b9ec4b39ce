//! Any bytes as a pack: the header decoder returns a result, never panics. A fixed master
//! key is used; with random input the header fails authentication, so the structural checks
//! before it (prefix, salt, header length arithmetic) are what is exercised, plus
//! `header_span` on arbitrary sizes.
#![no_main]
use cairn::crypto::MasterKey;
use cairn::id::{Id, PackId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mk) = MasterKey::from_bytes(&[7u8; 96]) else { return };
    let _ = cairn::pack::read_header(&mk, data, &PackId(Id::of_bytes(data)));
    let _ = cairn::pack::read_salt(data, "fuzz");
    if data.len() >= 12 {
        let size = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
        let _ = cairn::pack::header_span(size, &data[8..12], "fuzz");
    }
});
