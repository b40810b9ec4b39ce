//! Keys and authenticated encryption (repo-format.md, "Encryption").
//!
//! The master key is three 256-bit secrets: the AES-256-GCM key root (`encrypt`), the BLAKE3
//! key for blob ids (`id`) and the chunker key (`chunker`). Every encrypted storage file draws a
//! random 32-byte salt; its AES-256-GCM key is `blake3::derive_key(FILE_KEY_CONTEXT,
//! encrypt || salt)` and its nonces are `0u32 || position (u64 BE)`, where position is a blob's
//! offset in its pack, `u64::MAX` for a pack header and 0 for single objects. Key material is
//! zeroized on drop and never printed.
//!
//! Part of the byte-level codec (`crypto`, `blob`, `pack`, `format`) that `repository/` uses and
//! the format-pinning tests (`tests/golden.rs`, `tests/spec_reader.rs`), `fuzz/` and `benches/`
//! call directly; operations go through [`crate::repository::Repository`].

pub mod keyfile;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::format::PREFIX_LEN;
use crate::id::BlobId;

/// BLAKE3 `derive_key` context for per-file AES keys.
pub const FILE_KEY_CONTEXT: &str = "cairn 2026-11-21 file key v1";
/// BLAKE3 `derive_key` context for the chunker's gear table.
pub const GEAR_CONTEXT: &str = "cairn 2026-11-21 chunker gear v1";
/// Bytes of salt per encrypted file.
pub const SALT_LEN: usize = 32;
/// Bytes of AES-GCM authentication tag appended to each ciphertext.
pub const TAG_LEN: usize = 16;
/// Serialized master key length: encrypt || id || chunker.
pub const MASTER_KEY_LEN: usize = 96;
/// Nonce position used for a pack's header.
pub const HEADER_POSITION: u64 = u64::MAX;

/// The repository's master key. Not `Debug`, not `Clone` by accident: zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    encrypt: [u8; 32],
    id: [u8; 32],
    chunker: [u8; 32],
}

impl MasterKey {
    /// 96 fresh bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = MasterKey { encrypt: [0; 32], id: [0; 32], chunker: [0; 32] };
        let mut rng = rand::rngs::OsRng;
        rng.fill_bytes(&mut k.encrypt);
        rng.fill_bytes(&mut k.id);
        rng.fill_bytes(&mut k.chunker);
        k
    }

    /// A master key for a repository that shares blob ids and chunk boundaries with the one
    /// of `self` (`init --copy-chunker-params`, repo-format.md, "Repositories sharing id and
    /// chunker keys"): a fresh `encrypt` key from the operating system's CSPRNG, and copies of
    /// `self`'s `id` and `chunker` keys.
    pub fn generate_sharing_ids(&self) -> Self {
        let mut k = MasterKey { encrypt: [0; 32], id: self.id, chunker: self.chunker };
        rand::rngs::OsRng.fill_bytes(&mut k.encrypt);
        k
    }

    /// True when `self` and `other` have the same `id` and `chunker` keys: the same plaintext
    /// gets the same blob id and the same chunk boundaries (given the same chunker
    /// parameters) under both. Not constant-time; nothing of the keys is shown.
    pub fn same_blob_ids(&self, other: &MasterKey) -> bool {
        self.id == other.id && self.chunker == other.chunker
    }

    /// Rebuild from the 96 serialized bytes (`encrypt || id || chunker`).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != MASTER_KEY_LEN {
            return None;
        }
        let mut k = MasterKey { encrypt: [0; 32], id: [0; 32], chunker: [0; 32] };
        k.encrypt.copy_from_slice(&bytes[..32]);
        k.id.copy_from_slice(&bytes[32..64]);
        k.chunker.copy_from_slice(&bytes[64..96]);
        Some(k)
    }

    /// The 96 serialized bytes; the caller must zeroize them.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(MASTER_KEY_LEN));
        v.extend_from_slice(&self.encrypt);
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.chunker);
        v
    }

    /// Keyed BLAKE3 of a blob's plaintext: its id.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(crate::id::Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes()))
    }

    /// The AES-256-GCM key of the file with this salt.
    pub fn file_key(&self, salt: &[u8; SALT_LEN]) -> FileKey {
        let mut material = zeroize::Zeroizing::new([0u8; 64]);
        material[..32].copy_from_slice(&self.encrypt);
        material[32..].copy_from_slice(salt);
        let key = zeroize::Zeroizing::new(blake3::derive_key(FILE_KEY_CONTEXT, &material[..]));
        FileKey { cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key[..])) }
    }

    /// The chunker's keyed gear table (256 u64 LE): the first 2048 bytes of BLAKE3 in
    /// derive-key mode (context [`GEAR_CONTEXT`], key material `chunker`) extended as XOF.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut hasher = blake3::Hasher::new_derive_key(GEAR_CONTEXT);
        hasher.update(&self.chunker);
        let mut xof = hasher.finalize_xof();
        let mut bytes = zeroize::Zeroizing::new([0u8; 2048]);
        xof.fill(&mut bytes[..]);
        let mut gear = Box::new([0u64; 256]);
        for (i, g) in gear.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *g = u64::from_le_bytes(w);
        }
        gear
    }

    /// Encrypt a single object (config, index, snapshot):
    /// `magic || version || salt || ciphertext || tag`.
    /// Errors: see [`FileKey::seal`].
    pub fn seal_object(&self, kind: FileKind, plaintext: &[u8]) -> Result<Vec<u8>> {
        let salt = random_salt();
        let prefix = kind.prefix();
        let ct = self.file_key(&salt).seal(0, &prefix, plaintext)?;
        let mut out = Vec::with_capacity(PREFIX_LEN + SALT_LEN + ct.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypt and authenticate a single object written by [`MasterKey::seal_object`].
    /// Errors: [`Error::Corrupt`] naming `what` on a wrong prefix, short file or failed tag.
    pub fn open_object(&self, kind: FileKind, data: &[u8], what: &str) -> Result<Vec<u8>> {
        kind.check_prefix(data, what)?;
        let rest = &data[PREFIX_LEN..];
        if rest.len() < SALT_LEN + TAG_LEN {
            return Err(Error::corrupt(what, "truncated: shorter than salt and tag"));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&rest[..SALT_LEN]);
        self.file_key(&salt)
            .open(0, &kind.prefix(), &rest[SALT_LEN..])
            .ok_or_else(|| Error::corrupt(what, "authentication failed (modified, or written with another master key)"))
    }
}

/// A per-file AES-256-GCM key. The cipher state is zeroized on drop by aes-gcm.
pub struct FileKey {
    cipher: Aes256Gcm,
}

fn nonce(position: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&position.to_be_bytes());
    n
}

impl FileKey {
    /// `ciphertext || tag` of `plaintext` at nonce position `position` with associated data `aad`.
    /// Errors: [`Error::Internal`] for a plaintext over AES-GCM's 64 GiB message limit (the
    /// callers' plaintexts are at most 4 GiB).
    pub fn seal(&self, position: u64, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let n = nonce(position);
        self.cipher.encrypt(Nonce::from_slice(&n), Payload { msg: plaintext, aad }).map_err(|_| {
            Error::internal(format!("cannot encrypt {} bytes (over the AES-GCM message limit)", plaintext.len()))
        })
    }

    /// Encrypt `buf` in place at nonce position `position`; returns the 16-byte tag to append.
    /// Errors: as [`FileKey::seal`].
    pub fn seal_in_place(&self, position: u64, aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        use aes_gcm::aead::AeadInPlace;
        let n = nonce(position);
        let len = buf.len();
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), aad, buf)
            .map_err(|_| Error::internal(format!("cannot encrypt {len} bytes (over the AES-GCM message limit)")))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    /// Decrypt `ciphertext || tag`; `None` when authentication fails.
    pub fn open(&self, position: u64, aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let n = nonce(position);
        self.cipher.decrypt(Nonce::from_slice(&n), Payload { msg: ciphertext, aad }).ok()
    }
}

/// 32 random bytes for a file's salt.
pub fn random_salt() -> [u8; SALT_LEN] {
    let mut s = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_round_trip_and_tamper() {
        let k = MasterKey::generate();
        let sealed = k.seal_object(FileKind::Snapshot, b"payload").unwrap();
        assert_eq!(k.open_object(FileKind::Snapshot, &sealed, "s").unwrap(), b"payload");
        // Wrong kind: prefix check fails.
        assert!(k.open_object(FileKind::Index, &sealed, "s").is_err());
        // Any flipped byte fails.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.open_object(FileKind::Snapshot, &bad, "s").is_err(), "flip at {i} accepted");
        }
        // Another key fails.
        assert!(MasterKey::generate().open_object(FileKind::Snapshot, &sealed, "s").is_err());
    }

    #[test]
    fn position_and_aad_are_bound() {
        let k = MasterKey::generate();
        let fk = k.file_key(&[7; 32]);
        let ct = fk.seal(37, b"aad", b"data").unwrap();
        assert_eq!(fk.open(37, b"aad", &ct).unwrap(), b"data");
        let mut in_place = b"data".to_vec();
        let tag = fk.seal_in_place(37, b"aad", &mut in_place).unwrap();
        in_place.extend_from_slice(&tag);
        assert_eq!(in_place, ct, "in-place sealing must give the same bytes");
        assert!(fk.open(38, b"aad", &ct).is_none());
        assert!(fk.open(37, b"aae", &ct).is_none());
        assert!(k.file_key(&[8; 32]).open(37, b"aad", &ct).is_none());
    }

    #[test]
    fn master_key_bytes_round_trip() {
        let k = MasterKey::generate();
        let b = k.to_bytes();
        let k2 = MasterKey::from_bytes(&b).unwrap();
        assert_eq!(k.blob_id(b"x"), k2.blob_id(b"x"));
        assert_eq!(k.gear_table()[..], k2.gear_table()[..]);
        assert_ne!(k.blob_id(b"x"), MasterKey::generate().blob_id(b"x"));
        assert!(MasterKey::from_bytes(&b[..95]).is_none());
    }

    #[test]
    fn a_key_sharing_ids_has_its_own_encrypt_key() {
        let k = MasterKey::generate();
        let s = k.generate_sharing_ids();
        assert!(s.same_blob_ids(&k) && k.same_blob_ids(&s));
        let (kb, sb) = (k.to_bytes(), s.to_bytes());
        assert_eq!(kb[32..], sb[32..], "id and chunker keys copied");
        assert_ne!(kb[..32], sb[..32], "a fresh encrypt key");
        assert_eq!(k.blob_id(b"x"), s.blob_id(b"x"));
        assert_eq!(k.gear_table()[..], s.gear_table()[..]);
        // What one seals, the other cannot open.
        let sealed = k.seal_object(FileKind::Snapshot, b"payload").unwrap();
        assert!(s.open_object(FileKind::Snapshot, &sealed, "s").is_err());
        // Two independent keys share neither.
        let other = MasterKey::generate();
        assert!(!other.same_blob_ids(&k));
        let mut half = kb.clone();
        half[64..].copy_from_slice(&other.to_bytes()[64..]);
        assert!(!MasterKey::from_bytes(&half).unwrap().same_blob_ids(&k), "same id key, other chunker key");
    }
}
