//! Content ids: 32-byte BLAKE3 outputs, shown as 64 lowercase hex characters.
//!
//! Blob ids are *keyed* BLAKE3 hashes of the plaintext (see `crypto::MasterKey::blob_id`);
//! storage file names (packs, index files, snapshots, key files) are *unkeyed* BLAKE3 hashes
//! of the stored bytes (see [`Id::of_bytes`]). Typed wrappers keep the two apart at compile time.
//! Storage calls name files by [`Id`] ([`crate::backend::Backend`]); the hex form is made only
//! for paths ([`crate::backend::FileKind::path`]), messages and JSON.
//!
//! A typed id is made explicitly: `PackId(id)`, [`PackId::from_hex`], or by the module that
//! names the file ([`crate::repository::RepoFile`]). There is no `From<Id>` for them, so
//! `.into()` cannot turn one kind of id into another (a [`BlobId`] into a [`PackId`]) unseen.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// A raw 32-byte id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// The unkeyed BLAKE3-256 hash of `bytes`: the storage name of a file holding them.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, as restic shows ids in tables.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(8);
        s
    }

    /// Parse 64 hex characters; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; ID_LEN];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::from_hex(s).ok_or_else(|| format!("not a 64-character hex id: {s:?}"))
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Id);

        impl $name {
            /// 64 lowercase hex characters.
            pub fn to_hex(&self) -> String { self.0.to_hex() }
            /// The first 8 hex characters.
            pub fn short(&self) -> String { self.0.short() }
            /// The raw id.
            pub fn id(&self) -> Id { self.0 }
            /// Parse 64 hex characters (a storage name); `None` for anything else.
            pub fn from_hex(s: &str) -> Option<Self> { Id::from_hex(s).map($name) }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(&self.0, f) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }
    };
}

typed_id!(
    /// Id of a blob: keyed BLAKE3 of its plaintext (a chunk or a serialized tree).
    BlobId
);
typed_id!(
    /// Id of a pack file: BLAKE3 of its bytes.
    PackId
);
typed_id!(
    /// Id of a snapshot file: BLAKE3 of its bytes.
    SnapshotId
);
typed_id!(
    /// Id of an index file: BLAKE3 of its bytes.
    IndexId
);
typed_id!(
    /// Id of a key file: BLAKE3 of its bytes.
    KeyId
);
typed_id!(
    /// Id of a lock file: BLAKE3 of its bytes.
    LockId
);
typed_id!(
    /// Id of a drill record file (`drills/<id>`): BLAKE3 of its bytes.
    DrillId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short() {
        let id = Id::of_bytes(b"hello");
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(Id::from_hex(&hex), Some(id));
        assert_eq!(id.short(), hex[..8]);
        // BLAKE3("hello") from the reference implementation.
        assert_eq!(hex, "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f");
    }

    #[test]
    fn rejects_bad_hex() {
        assert!(Id::from_hex("zz").is_none());
        assert!(Id::from_hex(&"a".repeat(63)).is_none());
        assert!(Id::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn typed_ids_parse_and_print_like_raw_ids() {
        let id = Id::of_bytes(b"pack");
        let pack = PackId::from_hex(&id.to_hex()).unwrap();
        assert_eq!(pack.id(), id);
        assert_eq!(pack.to_hex(), id.to_hex());
        assert_eq!(format!("{pack:?}"), format!("PackId({})", id.short()));
        assert!(LockId::from_hex("not hex").is_none());
    }
}
