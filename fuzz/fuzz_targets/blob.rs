//! Round trip and damage: arbitrary content is framed, sealed and opened back identically;
//! the same bytes given as a stored blob are rejected, never passed on or panicking.
#![no_main]
use cairn::blob::{self, BlobType};
use cairn::crypto::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mk) = MasterKey::from_bytes(&[9u8; 96]) else { return };
    let key = mk.file_key(&[1u8; 32]);
    let id = mk.blob_id(data);
    let Ok(sealed) = blob::seal(&key, 37, BlobType::Data, &id, &blob::compress(data, 3)) else { return };
    let back = blob::open(&mk, &key, 37, BlobType::Data, &id, data.len() as u32, &sealed, &|| "fuzz".into());
    assert_eq!(back.ok().as_deref(), Some(data));
    let forged = blob::open(&mk, &key, 37, BlobType::Data, &id, data.len() as u32, data, &|| "fuzz".into());
    assert!(forged.is_err());
});
