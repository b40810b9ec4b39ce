//! Any bytes as a key file: parsing returns a result, never panics. Unwrapping is attempted
//! only when the header parses (Argon2 parameters are range-checked before any work).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, _)) = cairn::crypto::keyfile::parse_header(data, "fuzz") {
        // Keep the run cheap: only try the smallest accepted parameters.
        if header.kdf.memory_kib <= 8 * 1024 && header.kdf.iterations == 1 {
            let _ = cairn::crypto::keyfile::unwrap(data, b"password", "fuzz");
        }
    }
});
