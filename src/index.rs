//! The index: which pack holds each blob (repo-format.md, "Index files").
//!
//! On disk, an index file lists packs with their salt, size and blob entries. In memory, the
//! union of all index files is one sorted array of compact entries (see [`Index`]) plus a
//! table of packs.

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

/// Where a blob is.
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

/// Bytes of a blob id kept in the in-memory index.
pub const KEY_LEN: usize = 20;

/// One index entry: 36 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    key: [u8; KEY_LEN],
    /// Pack number; the top bit is set for tree blobs.
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
}

const TREE_BIT: u32 = 1 << 31;

fn key(id: &BlobId) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&id.0 .0[..KEY_LEN]);
    k
}

fn bucket(k: &[u8; KEY_LEN]) -> usize {
    (k[0] as usize) << 8 | k[1] as usize
}

/// The in-memory index: the union of all index files, in about 36 bytes per blob.
///
/// Entries sit in one array sorted by id, found through a directory of 65,536 buckets on the
/// first two id bytes, so a look-up touches a handful of cache lines and memory is the array
/// itself (restic's index needs about 60 bytes per blob, rustic's 48). An entry keeps the
/// first 20 bytes (160 bits) of the blob's 256-bit keyed id: two different blobs agree on them
/// with probability about n²/2^161 (3·10^-31 for a billion blobs), far below the hardware's
/// own error rates; and every read recomputes the full id anyway
/// ([`crate::repository::Repository::read_blob`]).
pub struct Index {
    packs: Vec<PackInfo>,
    pack_numbers: HashMap<PackId, u32>,
    entries: Vec<Entry>,
    /// `starts[b]..starts[b + 1]` are the entries whose id begins with bucket `b`.
    starts: Vec<u32>,
    sorted: usize,
    /// Further copies of blobs stored more than once (in other packs, or elsewhere in the
    /// same pack), by key: readers fall back to them when the first copy is damaged. Rare
    /// (a re-upload by `backup --force`, concurrent backups of the same data).
    others: HashMap<[u8; KEY_LEN], Vec<Entry>>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            packs: Vec::new(),
            pack_numbers: HashMap::new(),
            entries: Vec::new(),
            starts: vec![0; 65_537],
            sorted: 0,
            others: HashMap::new(),
        }
    }
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
        let skipped = self.add_unsorted(file);
        self.finish();
        skipped
    }

    /// Add many index files, sorting once at the end.
    pub fn add_files<'a>(&mut self, files: impl IntoIterator<Item = &'a IndexFile>) -> usize {
        let skipped = files.into_iter().map(|f| self.add_unsorted(f)).sum();
        self.finish();
        skipped
    }

    fn add_unsorted(&mut self, file: &IndexFile) -> usize {
        if self.pack_numbers.is_empty() && !self.packs.is_empty() {
            self.pack_numbers = self.packs.iter().enumerate().map(|(i, p)| (p.id, i as u32)).collect();
        }
        let mut skipped = 0;
        for p in &file.packs {
            let n = self.add_pack(PackInfo { id: p.id, salt: p.salt, size: p.size });
            for e in &p.blobs {
                let tree = match e.kind() {
                    Some(BlobType::Data) => 0,
                    Some(BlobType::Tree) => TREE_BIT,
                    None => {
                        skipped += 1;
                        continue;
                    }
                };
                self.entries.push(Entry {
                    key: key(&e.id),
                    pack: n | tree,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                });
            }
        }
        skipped
    }

    /// Sort the new entries in, keep the earliest added copy of each id in the main array (the
    /// others, at other locations, in [`Index::other_copies`]), rebuild the bucket directory.
    fn finish(&mut self) {
        // The pack-id map only serves merging while files are added.
        self.pack_numbers = HashMap::new();
        self.packs.shrink_to_fit();
        if self.sorted == self.entries.len() {
            return;
        }
        // A stable sort keeps, among equal keys, the entry that was added first.
        self.entries.sort_by_key(|e| e.key);
        let others = &mut self.others;
        self.entries.dedup_by(|later, earlier| {
            if later.key != earlier.key {
                return false;
            }
            let at = |e: &Entry| (e.pack & !TREE_BIT, e.offset);
            if at(later) != at(earlier) {
                let copies = others.entry(later.key).or_default();
                if !copies.iter().any(|c| at(c) == at(later)) {
                    copies.push(*later);
                }
            }
            true
        });
        self.entries.shrink_to_fit();
        self.sorted = self.entries.len();
        let mut b = 0usize;
        for (i, e) in self.entries.iter().enumerate() {
            let eb = bucket(&e.key);
            while b <= eb {
                self.starts[b] = i as u32;
                b += 1;
            }
        }
        while b < self.starts.len() {
            self.starts[b] = self.entries.len() as u32;
            b += 1;
        }
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

    fn find(&self, id: &BlobId) -> Option<&Entry> {
        let k = key(id);
        let b = bucket(&k);
        let (lo, hi) = (*self.starts.get(b)? as usize, *self.starts.get(b + 1)? as usize);
        let slice = self.entries.get(lo..hi)?;
        slice.binary_search_by(|e| e.key.cmp(&k)).ok().and_then(|i| slice.get(i))
    }

    /// Where blob `id` is, if indexed (its first indexed copy).
    pub fn get(&self, id: &BlobId) -> Option<(&PackInfo, Location)> {
        self.locate(self.find(id)?)
    }

    /// The other indexed copies of blob `id` besides [`Index::get`]'s, in the order they
    /// were added; usually none.
    pub fn other_copies(&self, id: &BlobId) -> Vec<(&PackInfo, Location)> {
        if self.others.is_empty() {
            return Vec::new();
        }
        self.others.get(&key(id)).map(|v| v.iter().filter_map(|e| self.locate(e)).collect()).unwrap_or_default()
    }

    /// True when some blob is indexed more than once (see [`Index::other_copies`]).
    pub fn has_other_copies(&self) -> bool {
        !self.others.is_empty()
    }

    fn locate(&self, e: &Entry) -> Option<(&PackInfo, Location)> {
        let pack = e.pack & !TREE_BIT;
        let blob_type = if e.pack & TREE_BIT != 0 { BlobType::Tree } else { BlobType::Data };
        let loc = Location { pack, offset: e.offset, length: e.length, raw_length: e.raw_length, blob_type };
        Some((self.packs.get(pack as usize)?, loc))
    }

    /// True when blob `id` is indexed.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All packs.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Heap bytes held (entries, bucket directory, packs, and the pack-id map while files are
    /// being added), for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.starts.capacity() * 4
            + self.packs.capacity() * std::mem::size_of::<PackInfo>()
            + self.pack_numbers.capacity() * (std::mem::size_of::<PackId>() + 4 + 1)
            + self.others.values().map(|v| KEY_LEN + 24 + v.capacity() * std::mem::size_of::<Entry>()).sum::<usize>()
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
    fn many_random_ids_and_bucket_edges() {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand::rngs::StdRng::from_seed([3; 32]);
        let mut ids: Vec<BlobId> = (0..20_000)
            .map(|_| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                BlobId(Id(b))
            })
            .collect();
        ids.push(BlobId(Id([0; 32])));
        ids.push(BlobId(Id([0xff; 32])));
        let blobs: Vec<BlobEntry> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| BlobEntry {
                blob_type: (i % 2) as u8,
                id: *id,
                offset: i as u32,
                length: 7,
                raw_length: i as u32 * 3,
            })
            .collect();
        let file = IndexFile {
            packs: vec![IndexPack { id: PackId(Id([5; 32])), salt: [1; 32], size: 9, blobs }],
            supersedes: vec![],
        };
        let mut idx = Index::new();
        idx.add_files([&file]);
        assert_eq!(idx.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            let (p, loc) = idx.get(id).unwrap_or_else(|| panic!("id {i} not found"));
            assert_eq!(p.id, PackId(Id([5; 32])));
            assert_eq!((loc.offset, loc.raw_length), (i as u32, i as u32 * 3));
            assert_eq!(loc.blob_type, if i % 2 == 0 { BlobType::Data } else { BlobType::Tree });
        }
        let mut missing = [0u8; 32];
        rng.fill_bytes(&mut missing);
        assert!(!idx.contains(&BlobId(Id(missing))));
        // 36 bytes per entry, plus the fixed bucket directory.
        assert!(idx.heap_bytes() <= ids.len() * 36 + 65_537 * 4 + 1024);
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
        // The second copy is kept as an alternative; blobs stored once have none.
        let others = idx.other_copies(&BlobId(Id([2; 32])));
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].0.id, PackId(Id([2; 32])));
        assert!(idx.other_copies(&BlobId(Id([1; 32]))).is_empty());
        // The same pack listed again adds no copy.
        let p1 = IndexPack { id: PackId(Id([1; 32])), salt: [0; 32], size: 100, blobs: vec![entry(1, 0), entry(2, 1)] };
        idx.add_file(&IndexFile { packs: vec![p1], supersedes: vec![] });
        assert_eq!(idx.other_copies(&BlobId(Id([2; 32]))).len(), 1);
        assert!(idx.other_copies(&BlobId(Id([1; 32]))).is_empty());
    }
}
