//! Blobs: the unit of deduplication (repo-format.md, "Blob plaintext framing").
//!
//! A blob's stored form is `AES-256-GCM(compression byte || body)` with the blob type and id as
//! associated data. Compression is zstd, or nothing when zstd does not shrink the bytes.
//!
//! Part of the byte-level codec (`crypto`, `blob`, `pack`, `format`) that `repository/` uses and
//! the format-pinning tests (`tests/golden.rs`, `tests/spec_reader.rs`), `fuzz/` and `benches/`
//! call directly; operations go through [`crate::repository::Repository`].

use serde::{Deserialize, Serialize};

use crate::crypto::{FileKey, MasterKey};
use crate::error::{Error, Result};
use crate::id::BlobId;

/// What a blob holds. Its byte value is part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlobType {
    /// A chunk of file content (byte 0).
    Data,
    /// A serialized directory (byte 1).
    Tree,
}

impl BlobType {
    /// The type byte used in associated data and headers.
    pub fn byte(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }

    /// Inverse of [`BlobType::byte`].
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// Compression byte: body stored as is.
pub const STORED: u8 = 0;
/// Compression byte: body is one zstd frame.
pub const ZSTD: u8 = 1;

/// Associated data binding a blob's type and id: `type byte || id`.
pub fn aad(blob_type: BlobType, id: &BlobId) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = blob_type.byte();
    a[1..].copy_from_slice(&id.0 .0);
    a
}

/// Frame `plaintext` for storage: zstd at `level` when it shrinks, else stored. `level` 0 means
/// no compression attempt. The same bytes as [`compress_into`]; built without a fallible step,
/// so no failure can turn into an empty blob.
pub fn compress(plaintext: &[u8], level: i32) -> Vec<u8> {
    if level != 0 {
        if let Ok(z) = with_compressor(level, |c| c.compress(plaintext)) {
            if z.len() < plaintext.len() {
                let mut out = Vec::with_capacity(1 + z.len());
                out.push(ZSTD);
                out.extend_from_slice(&z);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(1 + plaintext.len());
    out.push(STORED);
    out.extend_from_slice(plaintext);
    out
}

/// The most bytes [`compress_into`] writes for a plaintext of `len` bytes.
pub fn framed_bound(len: usize) -> usize {
    1 + zstd::zstd_safe::compress_bound(len).max(len)
}

/// Frame `plaintext` into the start of `out` as [`compress`] does, without allocating; returns
/// the framed length, or `None` when `out` is shorter than [`framed_bound`]`(plaintext.len())`.
pub fn compress_into(plaintext: &[u8], level: i32, out: &mut [u8]) -> Option<usize> {
    let out = out.get_mut(..framed_bound(plaintext.len()))?;
    let (first, body) = out.split_first_mut()?;
    if level != 0 {
        if let Ok(n) = with_compressor(level, |c| c.compress_to_buffer(plaintext, &mut *body)) {
            if n < plaintext.len() {
                *first = ZSTD;
                return Some(1 + n);
            }
        }
    }
    *first = STORED;
    body.get_mut(..plaintext.len())?.copy_from_slice(plaintext);
    Some(1 + plaintext.len())
}

thread_local! {
    /// One zstd context per thread and level: creating a context per blob costs more than
    /// compressing a small file.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, c)) => f(c),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

fn decompress(body: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(body, capacity),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Encrypt a framed blob at `position` (its offset in the pack). Errors: see [`FileKey::seal`].
pub fn seal(key: &FileKey, position: u64, blob_type: BlobType, id: &BlobId, framed: &[u8]) -> Result<Vec<u8>> {
    key.seal(position, &aad(blob_type, id), framed)
}

/// What a stored blob must verify as, besides its key: the facts [`open_framed`] binds.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// Its offset in the pack, bytes (the nonce).
    pub position: u64,
    /// Data or tree (bound as associated data).
    pub blob_type: BlobType,
    /// Its keyed id (bound as associated data, and recomputed from the plaintext).
    pub id: &'a BlobId,
    /// Its plaintext length, bytes.
    pub raw_length: u32,
}

/// Decrypt, decompress and verify one stored blob: authentication, the expected plaintext
/// length `raw_length` (bytes), and the recomputed keyed id. `what` names the blob and its pack
/// in errors ([`Error::Corrupt`]). The format-pinning tests' spelling of [`open_framed`], which
/// `repository/` uses.
#[allow(clippy::too_many_arguments)] // each argument is one fact the check binds
pub fn open(
    master: &MasterKey,
    key: &FileKey,
    position: u64,
    blob_type: BlobType,
    id: &BlobId,
    raw_length: u32,
    stored: &[u8],
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    let expected = Expected { position, blob_type, id, raw_length };
    open_framed(master, key, &expected, stored, what).map(|(_, plain)| plain)
}

/// Decrypt, decompress and verify `stored` as `expected` (see [`open`]); returns both the
/// verified *framed* plaintext (compression byte and compressed body, ready to be sealed into
/// another pack without recompressing: prune's repack) and the plaintext.
/// Errors: [`Error::Corrupt`] naming `what()`.
pub fn open_framed(
    master: &MasterKey,
    key: &FileKey,
    expected: &Expected<'_>,
    stored: &[u8],
    what: &dyn Fn() -> String,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let Expected { position, blob_type, id, raw_length } = *expected;
    let framed = key
        .open(position, &aad(blob_type, id), stored)
        .ok_or_else(|| Error::corrupt(what(), "authentication failed"))?;
    let (&kind, body) = framed.split_first().ok_or_else(|| Error::corrupt(what(), "empty plaintext"))?;
    let plain = match kind {
        STORED => body.to_vec(),
        ZSTD => decompress(body, raw_length as usize).map_err(|e| Error::corrupt(what(), format!("zstd: {e}")))?,
        other => return Err(Error::corrupt(what(), format!("unknown compression byte {other}"))),
    };
    if plain.len() != raw_length as usize {
        return Err(Error::corrupt(
            what(),
            format!("{} bytes after decompression, the index says {raw_length}", plain.len()),
        ));
    }
    if master.blob_id(&plain) != *id {
        return Err(Error::corrupt(what(), "content does not hash to the blob id"));
    }
    Ok((framed, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(data: &[u8], level: i32) -> Vec<u8> {
        let mk = MasterKey::generate();
        let fk = mk.file_key(&[1; 32]);
        let id = mk.blob_id(data);
        let sealed = seal(&fk, 99, BlobType::Data, &id, &compress(data, level)).unwrap();
        open(&mk, &fk, 99, BlobType::Data, &id, data.len() as u32, &sealed, &|| "b".into()).unwrap()
    }

    #[test]
    fn compressible_is_compressed_random_is_stored() {
        let text = b"abcdefgh".repeat(1000);
        assert_eq!(compress(&text, 3)[0], ZSTD);
        assert!(compress(&text, 3).len() < 200);
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let c = compress(&random, 3);
        assert!(c[0] == STORED || c.len() < random.len());
        assert_eq!(compress(&text, 0)[0], STORED);
    }

    #[test]
    fn swapped_type_or_id_or_position_fails() {
        let mk = MasterKey::generate();
        let fk = mk.file_key(&[1; 32]);
        let id = mk.blob_id(b"content");
        let sealed = seal(&fk, 37, BlobType::Data, &id, &compress(b"content", 3)).unwrap();
        let w = || "b".to_string();
        assert!(open(&mk, &fk, 37, BlobType::Tree, &id, 7, &sealed, &w).is_err());
        assert!(open(&mk, &fk, 38, BlobType::Data, &id, 7, &sealed, &w).is_err());
        assert!(open(&mk, &fk, 37, BlobType::Data, &mk.blob_id(b"other"), 7, &sealed, &w).is_err());
        assert!(open(&mk, &fk, 37, BlobType::Data, &id, 8, &sealed, &w).is_err());
        assert_eq!(open(&mk, &fk, 37, BlobType::Data, &id, 7, &sealed, &w).unwrap(), b"content");
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 0i32..5) {
            prop_assert_eq!(round_trip(&data, level), data);
        }

        #[test]
        fn compress_frames_as_compress_into(data in proptest::collection::vec(0u8..4, 0..5000), level in 0i32..5) {
            let mut out = vec![0u8; framed_bound(data.len())];
            let n = compress_into(&data, level, &mut out);
            prop_assert_eq!(n.map(|n| out[..n].to_vec()), Some(compress(&data, level)));
        }
    }
}
