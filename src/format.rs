//! Serialization and file framing shared by every stored structure (repo-format.md,
//! "Serialization" and "Magic / version prefix").
//!
//! Structures are encoded with bincode 2 `config::standard()` (little-endian varints) through
//! serde. Every storage file starts with a 4-byte magic and the format version byte.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// The on-disk format version written by this build (byte 4 of every storage file).
pub const FORMAT_VERSION: u8 = 1;

/// Length of the `magic || version` prefix, in bytes.
pub const PREFIX_LEN: usize = 5;

/// The kinds of storage file and their 4-byte magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// `config`: "CRNC".
    Config,
    /// A key file: "CRNK".
    Key,
    /// A pack: "CRNP".
    Pack,
    /// An index file: "CRNI".
    Index,
    /// A snapshot: "CRNS".
    Snapshot,
    /// A lock: "CRNL".
    Lock,
}

impl Magic {
    /// The 4 magic bytes.
    pub fn bytes(self) -> [u8; 4] {
        match self {
            Magic::Config => *b"CRNC",
            Magic::Key => *b"CRNK",
            Magic::Pack => *b"CRNP",
            Magic::Index => *b"CRNI",
            Magic::Snapshot => *b"CRNS",
            Magic::Lock => *b"CRNL",
        }
    }

    /// `magic || FORMAT_VERSION`: the first [`PREFIX_LEN`] bytes of a file of this kind.
    pub fn prefix(self) -> [u8; PREFIX_LEN] {
        let m = self.bytes();
        [m[0], m[1], m[2], m[3], FORMAT_VERSION]
    }

    /// Check that `data` starts with this kind's prefix; `what` names the file in the error.
    pub fn check(self, data: &[u8], what: &str) -> Result<()> {
        let Some(head) = data.get(..PREFIX_LEN) else {
            return Err(Error::corrupt(what, format!("only {} bytes, shorter than its header", data.len())));
        };
        if head[..4] != self.bytes() {
            return Err(Error::corrupt(
                what,
                format!("does not start with the magic {:?}", String::from_utf8_lossy(&self.bytes())),
            ));
        }
        if head[4] != FORMAT_VERSION {
            return Err(Error::corrupt(
                what,
                format!("format version {} is not supported by this cairn (it reads version {FORMAT_VERSION}); upgrade cairn", head[4]),
            ));
        }
        Ok(())
    }
}

/// Largest structure encoded or decoded (4 GiB − 1, the largest blob): a forged length
/// prefix cannot make cairn allocate without bound.
const DECODE_LIMIT: usize = u32::MAX as usize;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encode `value` with the repository's bincode configuration.
/// Errors: [`Error::Internal`] if the value cannot be encoded (a structure over the 4 GiB
/// limit: the callers keep every structure below it).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config())
        .map_err(|e| Error::internal(format!("cannot encode a repository structure: {e}")))
}

/// Decode a whole buffer; trailing bytes or malformed input are reported as damage of `what`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| Error::corrupt(what, format!("cannot decode: {e}")))?;
    if used != bytes.len() {
        return Err(Error::corrupt(what, format!("{} trailing bytes after the structure", bytes.len() - used)));
    }
    Ok(value)
}
