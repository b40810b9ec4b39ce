//! Serialization and file framing shared by every stored structure (repo-format.md,
//! "Serialization" and "Magic / version prefix").
//!
//! Structures are encoded with bincode 2 `config::standard()` (little-endian varints) through
//! serde. Every storage file starts with a 4-byte magic and the format version byte
//! ([`FileKind::magic`], [`FileKind::prefix`]).

use serde::{de::DeserializeOwned, Serialize};

use crate::backend::FileKind;
use crate::error::{Error, Result};

/// The on-disk format version written by this build (byte 4 of every storage file).
pub const FORMAT_VERSION: u8 = 1;

/// Length of the `magic || version` prefix, in bytes.
pub const PREFIX_LEN: usize = 5;

/// The magic and version prefix of each kind of storage file: the kind of a file is one enum,
/// [`FileKind`], for its place in the repository and for its first bytes.
impl FileKind {
    /// The 4 magic bytes: `CRNC` config, `CRNK` key, `CRNP` pack, `CRNI` index, `CRNS`
    /// snapshot, `CRNL` lock, `CRND` drill record.
    pub fn magic(self) -> [u8; 4] {
        match self {
            FileKind::Config => *b"CRNC",
            FileKind::Key => *b"CRNK",
            FileKind::Pack => *b"CRNP",
            FileKind::Index => *b"CRNI",
            FileKind::Snapshot => *b"CRNS",
            FileKind::Lock => *b"CRNL",
            FileKind::Drill => *b"CRND",
        }
    }

    /// `magic || FORMAT_VERSION`: the first [`PREFIX_LEN`] bytes of a file of this kind.
    pub fn prefix(self) -> [u8; PREFIX_LEN] {
        let m = self.magic();
        [m[0], m[1], m[2], m[3], FORMAT_VERSION]
    }

    /// Check that `data` starts with this kind's prefix; `what` names the file in the error.
    /// Errors: [`Error::Corrupt`] for a short file, another magic or another format version.
    pub fn check_prefix(self, data: &[u8], what: &str) -> Result<()> {
        let Some(head) = data.get(..PREFIX_LEN) else {
            return Err(Error::corrupt(what, format!("only {} bytes, shorter than its header", data.len())));
        };
        if head[..4] != self.magic() {
            return Err(Error::corrupt(
                what,
                format!("does not start with the magic {:?}", String::from_utf8_lossy(&self.magic())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_magic_and_prefix() {
        let kinds = [
            FileKind::Config,
            FileKind::Key,
            FileKind::Pack,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
            FileKind::Drill,
        ];
        let magics: std::collections::HashSet<[u8; 4]> = kinds.iter().map(|k| k.magic()).collect();
        assert_eq!(magics.len(), kinds.len());
        assert_eq!(&FileKind::Pack.prefix(), b"CRNP\x01");
        assert!(FileKind::Index.check_prefix(b"CRNI\x01rest", "i").is_ok());
        for bad in [&b"CRNI"[..], b"CRNS\x01", b"CRNI\x02"] {
            assert!(matches!(FileKind::Index.check_prefix(bad, "i"), Err(Error::Corrupt { .. })));
        }
    }
}
