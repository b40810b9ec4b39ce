//! The index: which pack holds each blob (repo-format.md, "Index files").
//!
//! On disk, an index file lists packs with their salt, size and blob entries. In memory, the
//! union of all index files is one hash map from blob id to a compact location (pack number,
//! offset, lengths, type) plus a table of packs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::blob::BlobType;
use crate::crypto::SALT_LEN;
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::BlobEntry;

/// One pack as listed in an index file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack's storage id.
    pub id: PackId,
    /// The pack's salt, so its blobs can be decrypted without reading its first bytes.
    pub salt: [u8; SALT_LEN],
    /// Size of the pack file in bytes.
    pub size: u64,
    /// The blobs it holds, in pack order.
    pub blobs: Vec<BlobEntry>,
}

/// The plaintext of an index file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Packs described by this file.
    pub packs: Vec<IndexPack>,
    /// Index files this one replaces (written by prune; empty otherwise).
    pub supersedes: Vec<IndexId>,
}

/// Pack facts kept in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// Storage id.
    pub id: PackId,
    /// Salt of the pack's file key.
    pub salt: [u8; SALT_LEN],
    /// Size in bytes.
    pub size: u64,
}

/// Where a blob is: 20 bytes per blob besides its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Position in [`Index::packs`].
    pub pack: u32,
    /// Byte offset within the pack.
    pub offset: u32,
    /// Stored length in bytes.
    pub length: u32,
    /// Plaintext length in bytes.
    pub raw_length: u32,
    /// Blob type.
    pub blob_type: BlobType,
}

/// The in-memory index: the union of all index files.
#[derive(Default)]
pub struct Index {
    packs: Vec<PackInfo>,
    pack_numbers: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, Location>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add every pack of an index file. A blob listed twice keeps its first location; a pack
    /// listed twice is merged. Entries with an undefined type byte are skipped and counted in
    /// the return value.
    pub fn add_file(&mut self, file: &IndexFile) -> usize {
        let mut skipped = 0;
        for p in &file.packs {
            let n = self.add_pack(PackInfo { id: p.id, salt: p.salt, size: p.size });
            for e in &p.blobs {
                let Some(blob_type) = e.kind() else {
                    skipped += 1;
                    continue;
                };
                self.blobs.entry(e.id).or_insert(Location { pack: n, offset: e.offset, length: e.length, raw_length: e.raw_length, blob_type });
            }
        }
        skipped
    }

    fn add_pack(&mut self, info: PackInfo) -> u32 {
        if let Some(&n) = self.pack_numbers.get(&info.id) {
            return n;
        }
        let n = self.packs.len() as u32;
        self.pack_numbers.insert(info.id, n);
        self.packs.push(info);
        n
    }

    /// Where blob `id` is, if indexed.
    pub fn get(&self, id: &BlobId) -> Option<(&PackInfo, Location)> {
        let loc = *self.blobs.get(id)?;
        Some((self.packs.get(loc.pack as usize)?, loc))
    }

    /// True when blob `id` is indexed.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// All packs.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn entry(i: u8, t: u8) -> BlobEntry {
        BlobEntry { blob_type: t, id: BlobId(Id([i; 32])), offset: 37 + i as u32 * 10, length: 10, raw_length: 5 }
    }

    #[test]
    fn union_of_files_first_location_wins() {
        let p1 = IndexPack { id: PackId(Id([1; 32])), salt: [0; 32], size: 100, blobs: vec![entry(1, 0), entry(2, 1)] };
        let p2 = IndexPack { id: PackId(Id([2; 32])), salt: [9; 32], size: 200, blobs: vec![entry(2, 1), entry(3, 7)] };
        let mut idx = Index::new();
        assert_eq!(idx.add_file(&IndexFile { packs: vec![p1], supersedes: vec![] }), 0);
        assert_eq!(idx.add_file(&IndexFile { packs: vec![p2], supersedes: vec![] }), 1);
        assert_eq!(idx.len(), 2);
        let (pack, loc) = idx.get(&BlobId(Id([2; 32]))).unwrap();
        assert_eq!(pack.id, PackId(Id([1; 32])));
        assert_eq!(loc.blob_type, BlobType::Tree);
        assert!(!idx.contains(&BlobId(Id([3; 32]))));
        assert_eq!(idx.packs().len(), 2);
    }
}
