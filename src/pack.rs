//! Pack files: many encrypted blobs followed by an encrypted header (repo-format.md, "Pack file").
//!
//! Layout: `"CRNP" || 0x01 || salt (32) || blob_1 || … || blob_n || header_ct || tag (16) ||
//! header_length (u32 LE)`. A blob's AES-GCM nonce position is its byte offset in the pack; the
//! header's is `u64::MAX`. The header is a bincode `Vec<BlobEntry>`, so a pack describes itself
//! and the index can be rebuilt from packs alone.

use serde::{Deserialize, Serialize};

use crate::backend::{FileKind, StagedFile};
use crate::blob::{self, BlobType};
use crate::crypto::{random_salt, FileKey, MasterKey, HEADER_POSITION, SALT_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{self, PREFIX_LEN};
use crate::id::{BlobId, PackId};

/// Offset of the first blob in a pack: prefix (5) + salt (32).
pub const FIRST_BLOB_OFFSET: u32 = (PREFIX_LEN + SALT_LEN) as u32;

/// One blob's entry in a pack header and in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// [`BlobType::byte`].
    pub blob_type: u8,
    /// The blob id.
    pub id: BlobId,
    /// Byte offset of the stored blob within the pack file.
    pub offset: u32,
    /// Stored length in bytes (ciphertext including the 16-byte tag).
    pub length: u32,
    /// Plaintext length in bytes before compression.
    pub raw_length: u32,
}

impl BlobEntry {
    /// The blob type; `None` for an undefined type byte.
    pub fn kind(&self) -> Option<BlobType> {
        BlobType::from_byte(self.blob_type)
    }
}

/// Accumulates blobs into one pack (packs are `pack_size` bytes, 16 MiB by default), in memory
/// or straight into a staged backend file.
pub struct PackWriter {
    blob_type: BlobType,
    salt: [u8; SALT_LEN],
    key: FileKey,
    sink: Sink,
    entries: Vec<BlobEntry>,
    raw_bytes: u64,
    /// A staged append failed part-way: the pack must not be finished.
    broken: bool,
}

/// Where a pack's bytes go while it is filled.
enum Sink {
    /// A buffer, written whole once the pack is finished.
    Memory(Vec<u8>),
    /// A backend file written as the pack grows ([`crate::backend::Backend::stage`]), hashed on
    /// the way: the pack never sits in memory whole.
    Staged { file: Box<dyn StagedFile>, hasher: Box<blake3::Hasher>, unhashed: Vec<u8> },
}

/// Bytes a staged pack collects before hashing them: BLAKE3 hashes many 1 KiB chunks at once
/// (SIMD) only when given them in one call.
const HASH_BATCH: usize = 64 << 10;

/// Read the salt and header of stored pack `name` (`size` bytes) with three range reads (the
/// prefix and salt, the trailing header length, the header), without reading its blobs; the
/// header is authenticated and decoded. `what` names the pack in errors.
/// Errors: backend errors; [`Error::Corrupt`] for a damaged prefix, length or header.
pub fn read_stored_header(
    backend: &dyn crate::backend::Backend,
    master: &MasterKey,
    id: &PackId,
    size: u64,
    what: &str,
) -> Result<([u8; SALT_LEN], Vec<BlobEntry>)> {
    let head = backend.read_range(FileKind::Pack, &id.0, 0, (PREFIX_LEN + SALT_LEN) as u64)?;
    let salt = read_salt(&head, what)?;
    let tail = backend.read_range(FileKind::Pack, &id.0, size.saturating_sub(4), 4)?;
    let (start, hlen) = header_span(size, &tail, what)?;
    let header = backend.read_range(FileKind::Pack, &id.0, start, hlen)?;
    Ok((salt, decode_header(master, &salt, &header, start, what)?))
}

/// A finished pack: its bytes (or its staged file), id and what it holds.
pub struct FinishedPack {
    /// Storage id: BLAKE3 of the file's bytes.
    pub id: PackId,
    /// The pack's salt (recorded in the index).
    pub salt: [u8; SALT_LEN],
    /// The complete file, for a pack made in memory; empty for a staged one.
    pub bytes: Vec<u8>,
    /// The file's length, bytes.
    pub size: u64,
    /// A staged pack's file, complete, to be committed under the pack's id.
    pub staged: Option<Box<dyn StagedFile>>,
    /// Its blobs.
    pub entries: Vec<BlobEntry>,
    /// Sum of the blobs' plaintext lengths, bytes.
    pub raw_bytes: u64,
}

/// The most bytes one [`BlobEntry`] takes in a header: type (1), id (32), three varint u32 (5
/// each).
const MAX_ENTRY_LEN: usize = 1 + 32 + 3 * 5;

/// The most bytes the end of a pack with `entries` blobs takes: the encrypted header (a varint
/// length of at most 9 bytes, the entries, the tag) and its 4-byte length.
pub fn header_bound(entries: usize) -> usize {
    9 + entries.saturating_mul(MAX_ENTRY_LEN) + TAG_LEN + 4
}

impl PackWriter {
    /// Start an empty pack for blobs of `blob_type` in memory, with room for `capacity` bytes.
    pub fn new(master: &MasterKey, blob_type: BlobType, capacity: usize) -> Self {
        Self::with_buffer(master, blob_type, Vec::with_capacity(capacity + 64 * 1024))
    }

    /// Start an empty pack in memory in `buf`, whose contents are dropped and whose allocation
    /// is reused (see [`PackWriter::fits`]): the pages of a reused buffer cost no page faults.
    pub fn with_buffer(master: &MasterKey, blob_type: BlobType, mut buf: Vec<u8>) -> Self {
        let salt = random_salt();
        buf.clear();
        buf.extend_from_slice(&FileKind::Pack.prefix());
        buf.extend_from_slice(&salt);
        Self::begun(master, blob_type, salt, Sink::Memory(buf))
    }

    /// Start an empty pack written straight into `file`, a staged backend file.
    /// Errors: the backend's, writing the prefix.
    pub fn staged(master: &MasterKey, blob_type: BlobType, file: Box<dyn StagedFile>) -> Result<Self> {
        let salt = random_salt();
        let sink =
            Sink::Staged { file, hasher: Box::new(blake3::Hasher::new()), unhashed: Vec::with_capacity(HASH_BATCH) };
        let mut w = Self::begun(master, blob_type, salt, sink);
        w.push(&FileKind::Pack.prefix())?;
        w.push(&salt)?;
        Ok(w)
    }

    /// A writer for the pack of `salt` whose sink holds (or is about to be given) the prefix.
    fn begun(master: &MasterKey, blob_type: BlobType, salt: [u8; SALT_LEN], sink: Sink) -> Self {
        PackWriter {
            blob_type,
            key: master.file_key(&salt),
            salt,
            sink,
            entries: Vec::new(),
            raw_bytes: 0,
            broken: false,
        }
    }

    /// True when one more blob of `framed_len` framed bytes, and then the header, fit without
    /// the buffer of an in-memory pack growing (always true for a staged pack).
    pub fn fits(&self, framed_len: usize) -> bool {
        match &self.sink {
            Sink::Memory(buf) => {
                buf.len()
                    .saturating_add(framed_len)
                    .saturating_add(TAG_LEN)
                    .saturating_add(header_bound(self.entries.len() + 1))
                    <= buf.capacity()
            }
            Sink::Staged { .. } => true,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        match &self.sink {
            Sink::Memory(buf) => buf.len(),
            Sink::Staged { file, .. } => usize::try_from(file.len()).unwrap_or(usize::MAX),
        }
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compress-framed `framed` bytes (see [`blob::compress`]) of the blob `id`, whose
    /// plaintext is `raw_length` bytes, are encrypted and appended. Returns the stored length.
    /// Errors: [`Error::Internal`] when the pack would pass 4 GiB (offsets are u32; packers
    /// start a new pack long before), and the backend's.
    pub fn add(&mut self, id: BlobId, framed: &[u8], raw_length: u32) -> Result<u32> {
        let mut copy = framed.to_vec();
        self.add_in_place(id, &mut copy, raw_length)
    }

    /// Like [`PackWriter::add`], encrypting `framed` in place (it holds the ciphertext after).
    /// After a backend error the pack is broken: [`PackWriter::finish`] refuses it.
    pub fn add_in_place(&mut self, id: BlobId, framed: &mut [u8], raw_length: u32) -> Result<u32> {
        let offset = u32::try_from(self.len()).map_err(|_| Error::internal("pack larger than 4 GiB"))?;
        let length = u32::try_from(framed.len() + TAG_LEN).map_err(|_| Error::internal("blob larger than 4 GiB"))?;
        if (offset as u64) + (length as u64) > u32::MAX as u64 {
            return Err(Error::internal("pack larger than 4 GiB"));
        }
        let tag = self.key.seal_in_place(offset as u64, &blob::aad(self.blob_type, &id), framed)?;
        self.push(framed)?;
        self.push(&tag)?;
        self.entries.push(BlobEntry { blob_type: self.blob_type.byte(), id, offset, length, raw_length });
        self.raw_bytes += raw_length as u64;
        Ok(length)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.sink {
            Sink::Memory(buf) => buf.extend_from_slice(bytes),
            Sink::Staged { file, hasher, unhashed } => {
                if let Err(e) = file.append(bytes) {
                    self.broken = true;
                    return Err(e.into());
                }
                if unhashed.len() + bytes.len() > HASH_BATCH {
                    hasher.update(unhashed);
                    unhashed.clear();
                }
                if bytes.len() >= HASH_BATCH {
                    hasher.update(bytes);
                } else {
                    unhashed.extend_from_slice(bytes);
                }
            }
        }
        Ok(())
    }

    /// Append the encrypted header and its length; the pack's id is the hash of the result.
    /// Errors: a header too large to encode or encrypt; the backend's; a broken pack.
    pub fn finish(mut self) -> Result<FinishedPack> {
        if self.broken {
            return Err(Error::internal("a pack whose write failed cannot be finished"));
        }
        let header = format::encode(&self.entries)?;
        let sealed = self.key.seal(HEADER_POSITION, &FileKind::Pack.prefix(), &header)?;
        self.push(&sealed)?;
        self.push(&(sealed.len() as u32).to_le_bytes())?;
        let (id, size, bytes, staged) = match self.sink {
            Sink::Memory(buf) => (crate::id::Id::of_bytes(&buf), buf.len() as u64, buf, None),
            Sink::Staged { file, mut hasher, unhashed } => {
                hasher.update(&unhashed);
                (crate::id::Id(*hasher.finalize().as_bytes()), file.len(), Vec::new(), Some(file))
            }
        };
        Ok(FinishedPack {
            id: PackId(id),
            salt: self.salt,
            bytes,
            size,
            staged,
            entries: self.entries,
            raw_bytes: self.raw_bytes,
        })
    }
}

/// Read the salt from a pack's first 37 bytes.
pub fn read_salt(prefix: &[u8], what: &str) -> Result<[u8; SALT_LEN]> {
    FileKind::Pack.check_prefix(prefix, what)?;
    let s = prefix
        .get(PREFIX_LEN..PREFIX_LEN + SALT_LEN)
        .ok_or_else(|| Error::corrupt(what, "truncated before the end of its salt"))?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(s);
    Ok(salt)
}

/// Decode and check the header of a complete pack: every entry lies inside the blob area, in
/// order, without overlap, and has a defined type.
pub fn read_header(master: &MasterKey, pack: &[u8], id: &PackId) -> Result<Vec<BlobEntry>> {
    let what = format!("pack {}", id.short());
    let salt = read_salt(pack, &what)?;
    let (start, hlen) = header_span(pack.len() as u64, pack.get(pack.len().saturating_sub(4)..).unwrap_or(&[]), &what)?;
    let header = pack.get(start as usize..(start + hlen) as usize).ok_or_else(|| Error::corrupt(&what, "truncated"))?;
    decode_header(master, &salt, header, start, &what)
}

/// Where the encrypted header of a pack of `size` bytes lies, from its last 4 bytes `tail`:
/// `(offset, length)` in bytes. Errors when the length does not fit the file.
pub fn header_span(size: u64, tail: &[u8], what: &str) -> Result<(u64, u64)> {
    let l: [u8; 4] = tail.try_into().map_err(|_| Error::corrupt(what, "truncated: no header length"))?;
    let hlen = u32::from_le_bytes(l) as u64;
    let len_at = size.checked_sub(4).ok_or_else(|| Error::corrupt(what, "truncated"))?;
    let start =
        len_at.checked_sub(hlen).filter(|s| *s >= FIRST_BLOB_OFFSET as u64 && hlen >= TAG_LEN as u64).ok_or_else(
            || Error::corrupt(what, format!("header length {hlen} does not fit in a {size}-byte pack (truncated?)")),
        )?;
    Ok((start, hlen))
}

/// Decrypt a pack header (`header`, found at byte `start`) and check its entries tile the blob
/// area `[37, start)` exactly, in order, with defined types.
pub fn decode_header(
    master: &MasterKey,
    salt: &[u8; SALT_LEN],
    header: &[u8],
    start: u64,
    what: &str,
) -> Result<Vec<BlobEntry>> {
    let plain = master
        .file_key(salt)
        .open(HEADER_POSITION, &FileKind::Pack.prefix(), header)
        .ok_or_else(|| Error::corrupt(what, "header authentication failed"))?;
    let entries: Vec<BlobEntry> = format::decode(&plain, what)?;
    let mut next = FIRST_BLOB_OFFSET as u64;
    for e in &entries {
        if e.kind().is_none() || (e.offset as u64) != next || (e.length as usize) < TAG_LEN {
            return Err(Error::corrupt(what, format!("header entry for blob {} is inconsistent", e.id.short())));
        }
        next = e.offset as u64 + e.length as u64;
    }
    if next != start {
        return Err(Error::corrupt(what, "header entries do not cover the blob area"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_every_blob() {
        let mk = MasterKey::generate();
        let mut w = PackWriter::new(&mk, BlobType::Data, 1 << 16);
        let blobs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize * 37]).collect();
        for b in &blobs {
            w.add(mk.blob_id(b), &blob::compress(b, 3), b.len() as u32).unwrap();
        }
        let p = w.finish().unwrap();
        assert_eq!(p.id.0, crate::id::Id::of_bytes(&p.bytes));
        let entries = read_header(&mk, &p.bytes, &p.id).unwrap();
        assert_eq!(entries, p.entries);
        assert_eq!(entries[0].offset, FIRST_BLOB_OFFSET);
        let fk = mk.file_key(&read_salt(&p.bytes, "p").unwrap());
        for (e, b) in entries.iter().zip(&blobs) {
            let stored = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
            let got =
                blob::open(&mk, &fk, e.offset as u64, BlobType::Data, &e.id, e.raw_length, stored, &|| "b".into())
                    .unwrap();
            assert_eq!(&got, b);
        }
    }

    #[test]
    fn header_bound_covers_the_largest_entries() {
        let mk = MasterKey::generate();
        let e = BlobEntry {
            blob_type: 1,
            id: BlobId(crate::id::Id([0xff; 32])),
            offset: u32::MAX,
            length: u32::MAX,
            raw_length: u32::MAX,
        };
        for n in [0usize, 1, 2, 127, 128, 5000] {
            let header = format::encode(&vec![e; n]).unwrap();
            let sealed = mk.file_key(&[0; 32]).seal(HEADER_POSITION, &FileKind::Pack.prefix(), &header).unwrap();
            assert!(sealed.len() + 4 <= header_bound(n), "{n} entries: {} > {}", sealed.len() + 4, header_bound(n));
        }
    }

    #[test]
    fn a_reused_buffer_that_fits_does_not_grow() {
        let mk = MasterKey::generate();
        let buf = Vec::with_capacity(1 << 16);
        let cap = buf.capacity();
        let mut w = PackWriter::with_buffer(&mk, BlobType::Data, buf);
        let mut n = 0u32;
        loop {
            let b = n.to_le_bytes().repeat(250);
            let framed = blob::compress(&b, 0);
            if !w.fits(framed.len()) {
                break;
            }
            w.add(mk.blob_id(&b), &framed, b.len() as u32).unwrap();
            n += 1;
        }
        assert!(n > 50);
        let p = w.finish().unwrap();
        assert_eq!(p.bytes.capacity(), cap, "the buffer grew");
        assert_eq!(read_header(&mk, &p.bytes, &p.id).unwrap().len(), n as usize);
        // Reused: the old contents are gone.
        let w = PackWriter::with_buffer(&mk, BlobType::Tree, p.bytes);
        assert_eq!(w.len(), FIRST_BLOB_OFFSET as usize);
        assert!(w.is_empty());
    }

    /// A pack written through a staged backend file has the id of its bytes, reads back like
    /// one made in memory, and lands under that id.
    #[test]
    fn staged_pack_is_named_by_its_bytes() {
        use crate::backend::{Backend, FileKind};
        let dir = tempfile::tempdir().unwrap();
        let b = crate::backend::local::LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        let mk = MasterKey::generate();
        let mut w = PackWriter::staged(&mk, BlobType::Data, b.stage(FileKind::Pack).unwrap().unwrap()).unwrap();
        let blobs: Vec<Vec<u8>> =
            (0..300u32).map(|i| i.to_le_bytes().repeat(1 + (i as usize * 997) % 40_000)).collect();
        for blob in &blobs {
            let mut framed = blob::compress(blob, 3);
            w.add_in_place(mk.blob_id(blob), &mut framed, blob.len() as u32).unwrap();
        }
        let p = w.finish().unwrap();
        p.staged.unwrap().commit(&p.id.0).unwrap();
        let bytes = b.read(FileKind::Pack, &p.id.0).unwrap();
        assert_eq!(bytes.len() as u64, p.size);
        assert_eq!(crate::id::Id::of_bytes(&bytes), p.id.0);
        assert_eq!(read_header(&mk, &bytes, &p.id).unwrap(), p.entries);
    }

    #[test]
    fn damaged_or_truncated_pack_is_reported() {
        let mk = MasterKey::generate();
        let mut w = PackWriter::new(&mk, BlobType::Tree, 1024);
        w.add(mk.blob_id(b"t"), &blob::compress(b"t", 3), 1).unwrap();
        let p = w.finish().unwrap();
        for cut in [0, 3, 10, 40, p.bytes.len() - 1] {
            assert!(read_header(&mk, &p.bytes[..cut], &p.id).is_err(), "cut at {cut}");
        }
        let mut bad = p.bytes.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert!(read_header(&mk, &bad, &p.id).is_err());
    }
}
