//! Blobs and packs as a repository reads and writes them: [`BlobRef`] and
//! [`Repository::open_blob`] (decrypt, decompress, verify), the pack writers, pack headers, and
//! blob reads through the index (with the one pack reader, [`super::read`]). Each takes the master key from the repository, so no caller
//! holds it.

use super::read::{PackBlob, PackRead};
use super::Repository;
use crate::blob::{self, BlobType};
use crate::crypto::SALT_LEN;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, PackInfo};
use crate::pack::{BlobEntry, PackWriter};
use crate::tree::Tree;

/// One stored copy of a blob: where it lies and what it must verify as. Built from an index
/// entry or a pack header; given to [`Repository::open_blob`].
#[derive(Clone, Copy, Debug)]
pub struct BlobRef<'a> {
    /// Data or tree.
    pub blob_type: BlobType,
    /// The blob's id: the keyed hash its plaintext must have.
    pub id: &'a BlobId,
    /// The salt of the pack holding it (its file key derives from it).
    pub salt: &'a [u8; SALT_LEN],
    /// Byte offset of the stored blob in its pack (bound into the encryption nonce).
    pub offset: u32,
    /// Plaintext length, bytes.
    pub raw_length: u32,
}

impl Repository {
    /// Read, decrypt and verify one blob through the index, with the one pack reader
    /// ([`Repository::read_pack_blobs`], a batch of one; tree packs through the backend's
    /// local cache). When its first indexed copy is damaged, the other copies the index knows
    /// are tried ([`Index::other_copies`]).
    /// Errors: [`Error::Corrupt`] naming the blob and its pack when it is missing from the
    /// index or the storage, short, fails authentication, or does not hash to its id (the
    /// first copy's error when every copy fails); [`Error::Backend`] when the storage could not
    /// be read (unreachable, refusing): that is not damage ([`Error::stored_read`]).
    pub fn read_blob(&self, index: &Index, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        let (pack, loc) = index
            .get(id)
            .ok_or_else(|| Error::corrupt(format!("{blob_type:?} blob {}", id.short()), "not in the index"))?;
        // A copy stored as the other type serves as well: an id names one plaintext whatever
        // its type (repo-format.md, "Index files"), and the copy is opened as it was stored.
        self.read_one_blob(pack, PackBlob::indexed(*id, &loc), Some(index), blob_type == BlobType::Tree)
    }

    /// Read blob `id` from its indexed copies in packs other than `not_in` (the pack whose copy
    /// was found damaged), of either type, returning the first that verifies. Errors: [`Error::Corrupt`] when
    /// there is none or every one fails.
    pub fn read_blob_other_copies(
        &self,
        index: &Index,
        blob_type: BlobType,
        id: &BlobId,
        not_in: &PackId,
    ) -> Result<Vec<u8>> {
        let mut last = Error::corrupt(format!("{blob_type:?} blob {}", id.short()), "no other copy is indexed");
        let copies = index.get(id).into_iter().chain(index.other_copies(id));
        for (pack, loc) in copies.filter(|(pack, _)| pack.id != *not_in) {
            match self.read_one_blob(pack, PackBlob::indexed(*id, &loc), None, blob_type == BlobType::Tree) {
                Ok(plain) => return Ok(plain),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Read the copy `blob` in `pack` through [`Repository::read_pack_blobs`], trying the other
    /// copies of `copies` when it is damaged.
    /// `tree`: it is wanted as a tree (read through the local cache, as are the copies stored
    /// as trees).
    fn read_one_blob(&self, pack: &PackInfo, blob: PackBlob, copies: Option<&Index>, tree: bool) -> Result<Vec<u8>> {
        let read = PackRead {
            id: &pack.id,
            salt: &pack.salt,
            other_copies: copies,
            cancel: None,
            cached: tree || blob.blob_type == BlobType::Tree,
        };
        let mut out = Err(Error::internal("the pack reader gave no result for its one blob"));
        self.read_pack_blobs(&read, std::slice::from_ref(&blob), |_, r| out = r)?;
        out
    }

    /// The id of a blob with `plaintext` (keyed BLAKE3, repo-format.md "Blobs").
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        self.master.blob_id(plaintext)
    }

    /// Decrypt, decompress and verify `stored`, the stored bytes of `blob`: authentication, its
    /// plaintext length and its id. `what` names it in errors. Errors: [`Error::Corrupt`].
    pub fn open_blob(&self, blob: &BlobRef<'_>, stored: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        self.open_blob_framed(blob, stored, what).map(|(_, plain)| plain)
    }

    /// As [`Repository::open_blob`], but returns the verified *framed* plaintext too
    /// (compression byte and body, ready to be sealed into another pack without recompressing:
    /// prune's repack), as `(framed, plaintext)`.
    pub fn open_blob_framed(
        &self,
        blob: &BlobRef<'_>,
        stored: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = self.master.file_key(blob.salt);
        let expected = blob::Expected {
            position: blob.offset as u64,
            blob_type: blob.blob_type,
            id: blob.id,
            raw_length: blob.raw_length,
        };
        blob::open_framed(&self.master, &key, &expected, stored, what)
    }

    /// An empty pack for blobs of `blob_type`, built in memory with room for `capacity` bytes.
    pub fn pack_writer(&self, blob_type: BlobType, capacity: usize) -> PackWriter {
        PackWriter::new(&self.master, blob_type, capacity)
    }

    /// An empty pack built in memory in `buf` (its allocation reused, its contents dropped).
    pub fn pack_writer_with_buffer(&self, blob_type: BlobType, buf: Vec<u8>) -> PackWriter {
        PackWriter::with_buffer(&self.master, blob_type, buf)
    }

    /// An empty pack written straight into `file`, a staged backend file. Errors: the
    /// backend's, writing the prefix.
    pub fn pack_writer_staged(
        &self,
        blob_type: BlobType,
        file: Box<dyn crate::backend::StagedFile>,
    ) -> Result<PackWriter> {
        PackWriter::staged(&self.master, blob_type, file)
    }

    /// Decode and check the header of `data`, the whole of pack `id`. Errors: [`Error::Corrupt`].
    pub fn read_pack_header(&self, data: &[u8], id: &PackId) -> Result<Vec<BlobEntry>> {
        crate::pack::read_header(&self.master, data, id)
    }

    /// Read the salt and header of stored pack `name` (`size` bytes) with three range reads,
    /// without reading its blobs. `what` names it in errors. Errors: backend errors;
    /// [`Error::Corrupt`] for a damaged prefix, length or header.
    pub fn read_stored_pack_header(
        &self,
        id: &PackId,
        size: u64,
        what: &str,
    ) -> Result<([u8; SALT_LEN], Vec<BlobEntry>)> {
        crate::pack::read_stored_header(&*self.backend, &self.master, id, size, what)
    }

    /// Load and decode a tree blob.
    pub fn load_tree(&self, index: &Index, id: &BlobId) -> Result<Tree> {
        let plain = self.read_blob(index, BlobType::Tree, id)?;
        let what = format!("tree {}", id.short());
        let tree = Tree::decode(&plain, &what)?;
        // Names must be valid single components, sorted and unique (repo-format.md, "Tree blobs").
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt(what, "entries are not sorted by name or a name repeats"));
            }
        }
        if let Some(bad) = tree.nodes.iter().find(|n| !Tree::valid_name(&n.name)) {
            return Err(Error::corrupt(what, format!("invalid entry name {:?}", bad.name_lossy())));
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FileKind;
    use crate::index::{IndexFile, IndexPack};
    use crate::repository::tests::temp_repo;

    #[test]
    fn a_blob_written_through_a_pack_writer_reads_back_and_verifies() {
        let (_d, repo) = temp_repo();
        let plain = b"some content".repeat(50);
        let id = repo.blob_id(&plain);
        let mut w = repo.pack_writer(BlobType::Data, 1 << 16);
        w.add(id, &blob::compress(&plain, 3), plain.len() as u32).unwrap();
        let p = w.finish().unwrap();
        repo.backend().write(FileKind::Pack, &p.id.0, &p.bytes).unwrap();
        assert_eq!(repo.read_pack_header(&p.bytes, &p.id).unwrap(), p.entries);
        let (salt, entries) = repo.read_stored_pack_header(&p.id, p.size, "pack").unwrap();
        assert_eq!((salt, &entries), (p.salt, &p.entries));
        let e = entries[0];
        let stored = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
        let r = BlobRef { blob_type: BlobType::Data, id: &id, salt: &salt, offset: e.offset, raw_length: e.raw_length };
        assert_eq!(repo.open_blob(&r, stored, &|| "b".into()).unwrap(), plain);
        let wrong = BlobRef { blob_type: BlobType::Tree, ..r };
        assert!(matches!(repo.open_blob(&wrong, stored, &|| "b".into()), Err(Error::Corrupt { .. })));
        let lock = crate::lock::AppendLock::acquire(&repo, "test", &Default::default()).unwrap();
        repo.write_index(
            &lock,
            &IndexFile {
                packs: vec![IndexPack { id: p.id, salt: p.salt, size: p.size, blobs: p.entries.clone() }],
                supersedes: vec![],
            },
        )
        .unwrap();
        let index = repo.load_index().unwrap();
        assert_eq!(repo.read_blob(&index, BlobType::Data, &id).unwrap(), plain);
        // Asked for as a tree, the blob stored as data serves: its id names its plaintext.
        assert_eq!(repo.read_blob(&index, BlobType::Tree, &id).unwrap(), plain);
    }
}
