//! Key files: the master key wrapped by a password-derived key (repo-format.md, "Key files").
//!
//! Layout: `"CRNK" || 0x01 || header_len (u32 LE) || header (bincode KeyHeader) ||
//! ciphertext (96) || tag (16)`. The wrapping key is Argon2id (RFC 9106) of the password with the
//! header's salt and parameters; the AEAD's associated data is every byte before the ciphertext,
//! so the parameters and metadata cannot be altered without detection.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{random_salt, MasterKey, MASTER_KEY_LEN, SALT_LEN, TAG_LEN};
use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::format::{self, PREFIX_LEN};

/// Argon2id parameters as stored in a key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// 1 = Argon2id, version 0x13. No other value is defined.
    pub algorithm: u8,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: the defaults the format requires as a minimum for new keys.
    fn default() -> Self {
        KdfParams { algorithm: 1, memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

/// Largest key derivation work accepted from a key file: memory (KiB) × passes, 16 GiB × 1
/// pass (e.g. 1 GiB × 16, 4 GiB × 4; the default is 64 MiB × 3). A few seconds to a minute of
/// Argon2 on current machines: a planted key file cannot stall a command for hours.
pub const MAX_KDF_COST: u64 = 16 * 1024 * 1024;

impl KdfParams {
    /// Reject parameters a forged key file could use to make opening trivial or exhaust memory
    /// or time: memory from 8 MiB to 4 GiB, 1 to 100 passes, 1 to 64 lanes, memory × passes
    /// at most [`MAX_KDF_COST`].
    /// Errors: [`Error::Corrupt`] naming `what` and the parameters.
    pub fn check(&self, what: &str) -> Result<()> {
        let ok = self.algorithm == 1
            && (8 * 1024..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=100).contains(&self.iterations)
            && (1..=64).contains(&self.parallelism)
            && self.cost() <= MAX_KDF_COST;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(what, format!("key derivation parameters out of the accepted range: {self:?}")))
        }
    }

    /// The work of one key derivation: memory (KiB) × passes.
    pub fn cost(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }

    /// Derive the 32-byte wrapping key from `password` and `salt`.
    fn derive(&self, password: &[u8], salt: &[u8], what: &str) -> Result<Zeroizing<[u8; 32]>> {
        self.check(what)?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| Error::corrupt(what, format!("invalid Argon2 parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, &mut out[..])
            .map_err(|e| Error::corrupt(what, format!("key derivation failed: {e}")))?;
        Ok(out)
    }
}

/// The readable part of a key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHeader {
    /// Creation time, Unix seconds.
    pub created: i64,
    /// User who created the key.
    pub username: String,
    /// Host it was created on.
    pub hostname: String,
    /// Key derivation parameters.
    pub kdf: KdfParams,
    /// Argon2 salt.
    pub salt: [u8; SALT_LEN],
}

/// Wrap `master` under `password`: the complete bytes of a new key file.
pub fn wrap(master: &MasterKey, password: &[u8], kdf: KdfParams, username: &str, hostname: &str) -> Result<Vec<u8>> {
    let header = KeyHeader {
        created: chrono::Utc::now().timestamp(),
        username: username.to_string(),
        hostname: hostname.to_string(),
        kdf,
        salt: random_salt(),
    };
    let header_bytes = format::encode(&header)?;
    let mut out = Vec::with_capacity(PREFIX_LEN + 4 + header_bytes.len() + MASTER_KEY_LEN + TAG_LEN);
    out.extend_from_slice(&FileKind::Key.prefix());
    out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    let wrapping = kdf.derive(password, &header.salt, "new key file")?;
    let cipher =
        Aes256Gcm::new_from_slice(&wrapping[..]).map_err(|_| Error::internal("the wrapping key is not 32 bytes"))?;
    let plain = master.to_bytes();
    let ct = cipher
        .encrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: &plain[..], aad: &out })
        .map_err(|_| Error::internal("key wrapping failed"))?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Split a key file into its header and the offset where the ciphertext starts.
pub fn parse_header(data: &[u8], what: &str) -> Result<(KeyHeader, usize)> {
    FileKind::Key.check_prefix(data, what)?;
    let len_bytes = data
        .get(PREFIX_LEN..PREFIX_LEN + 4)
        .ok_or_else(|| Error::corrupt(what, "truncated before the header length"))?;
    let mut l = [0u8; 4];
    l.copy_from_slice(len_bytes);
    let hlen = u32::from_le_bytes(l) as usize;
    let start = PREFIX_LEN + 4;
    let header_bytes = data
        .get(start..start.saturating_add(hlen))
        .ok_or_else(|| Error::corrupt(what, "truncated inside the header"))?;
    let header: KeyHeader = format::decode(header_bytes, what)?;
    Ok((header, start + hlen))
}

/// Outcome of trying a password on one key file.
pub enum Unwrapped {
    /// The password opened it.
    Key(MasterKey),
    /// Authentication failed: another password.
    WrongPassword,
}

/// Try to open a key file with `password`. Structural damage is an error; a failed tag is
/// [`Unwrapped::WrongPassword`] (a wrong password and a modified ciphertext look alike).
pub fn unwrap(data: &[u8], password: &[u8], what: &str) -> Result<Unwrapped> {
    let (header, ct_start) = parse_header(data, what)?;
    let ct = &data[ct_start..];
    if ct.len() != MASTER_KEY_LEN + TAG_LEN {
        return Err(Error::corrupt(
            what,
            format!("wrapped key is {} bytes, expected {}", ct.len(), MASTER_KEY_LEN + TAG_LEN),
        ));
    }
    let wrapping = header.kdf.derive(password, &header.salt, what)?;
    let cipher = Aes256Gcm::new_from_slice(&wrapping[..]).map_err(|_| Error::corrupt(what, "bad key length"))?;
    match cipher.decrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: ct, aad: &data[..ct_start] }) {
        Ok(plain) => {
            let plain = Zeroizing::new(plain);
            MasterKey::from_bytes(&plain)
                .map(Unwrapped::Key)
                .ok_or_else(|| Error::corrupt(what, "unwrapped master key has the wrong length"))
        }
        Err(_) => Ok(Unwrapped::WrongPassword),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 }
    }

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let mk = MasterKey::generate();
        let file = wrap(&mk, b"secret", fast(), "root", "mail1").unwrap();
        match unwrap(&file, b"secret", "k").unwrap() {
            Unwrapped::Key(k) => assert_eq!(k.blob_id(b"a"), mk.blob_id(b"a")),
            Unwrapped::WrongPassword => panic!("right password refused"),
        }
        assert!(matches!(unwrap(&file, b"Secret", "k").unwrap(), Unwrapped::WrongPassword));
        let (h, _) = parse_header(&file, "k").unwrap();
        assert_eq!(h.username, "root");
        assert_eq!(h.hostname, "mail1");
    }

    #[test]
    fn header_is_authenticated_and_weak_params_refused() {
        let mk = MasterKey::generate();
        let file = wrap(&mk, b"pw", fast(), "u", "h").unwrap();
        let (_, start) = parse_header(&file, "k").unwrap();
        // Flip a byte of the username inside the header: the tag no longer verifies.
        let mut bad = file.clone();
        bad[start - 40] ^= 0x20;
        assert!(!matches!(unwrap(&bad, b"pw", "k"), Ok(Unwrapped::Key(_))));
        let weak = KdfParams { memory_kib: 64, ..fast() };
        assert!(wrap(&mk, b"pw", weak, "u", "h").is_err());
        assert!(unwrap(&file[..file.len() - 1], b"pw", "k").is_err());
    }
}
