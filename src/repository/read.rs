//! The one reader of blobs out of packs: [`Repository::read_pack_blobs`] reads the wanted blobs
//! of one pack in few range requests (neighbours merged, restic's restore algorithm), opens and
//! verifies each, and tells damage (one blob's error, given to the caller, after trying another
//! indexed copy when asked) from a storage failure (the whole read stops). Restore, dump and
//! mount (through [`Repository::read_blob`]), prune and check all read blobs through it;
//! [`Repository::open_pack_blob`] opens one out of a pack already held in memory.

use std::ops::Range;

use super::{BlobRef, Repository};
use crate::backend::{BackendResult, FileKind};
use crate::blob::BlobType;
use crate::context::Cancel;
use crate::crypto::SALT_LEN;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, Location};
use crate::pack::BlobEntry;

/// Neighbouring blobs of one pack closer than this (bytes) are fetched in one request.
pub const MAX_GAP: u64 = 1 << 20;
/// Largest single range request, bytes (bounds memory: one range per reading thread at a
/// time); a single larger blob is a request of its own.
pub const MAX_RANGE: u64 = 8 << 20;

/// One stored blob of a pack to read: what it must verify as and where it lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackBlob {
    /// Data or tree.
    pub blob_type: BlobType,
    /// The blob's id: the keyed hash its plaintext must have.
    pub id: BlobId,
    /// Byte offset of the stored blob in its pack.
    pub offset: u32,
    /// Stored length, bytes.
    pub length: u32,
    /// Plaintext length, bytes.
    pub raw_length: u32,
}

impl PackBlob {
    /// Blob `id` where the index locates it.
    pub fn indexed(id: BlobId, loc: &Location) -> Self {
        PackBlob { blob_type: loc.blob_type, id, offset: loc.offset, length: loc.length, raw_length: loc.raw_length }
    }

    /// The blob a pack header (or an index file) lists; `None` when its type is undefined.
    pub fn listed(e: &BlobEntry) -> Option<Self> {
        let blob_type = e.kind()?;
        Some(PackBlob { blob_type, id: e.id, offset: e.offset, length: e.length, raw_length: e.raw_length })
    }

    /// How errors name it: `data blob 1a2b3c4d in pack <hex>`.
    fn describe(&self, pack: &PackId) -> String {
        let kind = match self.blob_type {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        };
        format!("{kind} blob {} in pack {}", self.id.short(), pack.to_hex())
    }
}

impl AsRef<PackBlob> for PackBlob {
    fn as_ref(&self) -> &PackBlob {
        self
    }
}

/// One blob read and verified by [`Repository::read_pack_blobs_framed`].
#[derive(Debug)]
pub struct OpenedBlob {
    /// Its framed plaintext (compression byte and body, as stored before encryption), when it
    /// was read from the copy asked for.
    pub framed: Option<Vec<u8>>,
    /// Its plaintext, verified against its id.
    pub plain: Vec<u8>,
}

/// Which pack [`Repository::read_pack_blobs`] reads, and how.
#[derive(Clone, Copy)]
pub struct PackRead<'a> {
    /// The pack's storage id.
    pub id: &'a PackId,
    /// The pack's salt (its file key derives from it).
    pub salt: &'a [u8; SALT_LEN],
    /// When set, a damaged blob (or one its range could not give) is read from a copy in
    /// another pack this index lists ([`Repository::read_blob_other_copies`]); the first
    /// error stays when none verifies.
    /// `None` judges this copy only (prune looking for sound copies, check).
    pub other_copies: Option<&'a Index>,
    /// When set, checked before each range request ([`Error::Interrupted`]).
    pub cancel: Option<&'a Cancel>,
    /// Read through the backend's local cache ([`crate::backend::Backend::read_range_cached`]:
    /// tree packs, worth keeping); otherwise straight from the storage.
    pub cached: bool,
}

/// One range request of a pack: the bytes `offset..offset + length` hold the stored blobs
/// `blobs` (indices in the blobs asked for, sorted by offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadRange {
    pub(crate) blobs: Range<usize>,
    pub(crate) offset: u64,
    pub(crate) length: u64,
}

/// The blobs of one pack (sorted by offset) grouped into range requests, each read from its
/// first blob's offset to the end of its last. Blobs join a request while the gap before them
/// is at most [`MAX_GAP`] and the request stays within [`MAX_RANGE`] bytes (a single larger
/// blob is a request of its own).
pub(crate) fn read_ranges<T: AsRef<PackBlob>>(blobs: &[T]) -> Vec<ReadRange> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(first) = blobs.get(i) {
        let first = first.as_ref();
        let start = first.offset as u64;
        let mut end = start + first.length as u64;
        let mut j = i + 1;
        while let Some(b) = blobs.get(j) {
            let (o, l) = (b.as_ref().offset as u64, b.as_ref().length as u64);
            if o > end + MAX_GAP || (o + l).saturating_sub(start) > MAX_RANGE {
                break;
            }
            end = end.max(o + l);
            j += 1;
        }
        out.push(ReadRange { blobs: i..j, offset: start, length: end - start });
        i = j;
    }
    out
}

impl Repository {
    /// Read `blobs` (sorted by offset) out of pack `pack` in merged range requests
    /// ([`MAX_GAP`], [`MAX_RANGE`]), open and verify each, and give each one's result to
    /// `each(i, plaintext)`, `i` its position in `blobs`, in order. A damaged blob (failed
    /// verification, a range that is short, missing or damaged in the storage) is an
    /// [`Error::Corrupt`] given to `each` after the other indexed copies were tried (when
    /// [`PackRead::other_copies`] is set); the other blobs are still delivered.
    /// Errors (the read stops): [`Error::Backend`] when the storage could not be read (that is
    /// not damage: [`Error::stored_read`]); [`Error::Interrupted`] once [`PackRead::cancel`]
    /// is cancelled; [`Error::Internal`] when `blobs` are not sorted by offset.
    pub fn read_pack_blobs<T: AsRef<PackBlob>>(
        &self,
        pack: &PackRead<'_>,
        blobs: &[T],
        mut each: impl FnMut(usize, Result<Vec<u8>>),
    ) -> Result<()> {
        self.read_pack_blobs_framed(pack, blobs, |i, r| each(i, r.map(|b| b.plain)))
    }

    /// As [`Repository::read_pack_blobs`], giving each blob's verified framed plaintext too
    /// (compression byte and body, ready to be sealed into another pack without
    /// recompressing: copy), except for a blob read from another indexed copy after its own
    /// was damaged (`framed` is `None` then). Errors: as [`Repository::read_pack_blobs`].
    pub fn read_pack_blobs_framed<T: AsRef<PackBlob>>(
        &self,
        pack: &PackRead<'_>,
        blobs: &[T],
        mut each: impl FnMut(usize, Result<OpenedBlob>),
    ) -> Result<()> {
        if blobs.windows(2).any(|w| matches!(w, [a, b] if a.as_ref().offset > b.as_ref().offset)) {
            return Err(Error::internal("blobs to read out of a pack are not sorted by offset"));
        }
        for request in read_ranges(blobs) {
            if let Some(cancel) = pack.cancel {
                cancel.check()?;
            }
            let Some(batch) = blobs.get(request.blobs.clone()) else {
                return Err(Error::internal("a range request lies outside its blobs"));
            };
            let range = match self.read_pack_range(pack.id, request.offset, request.length, pack.cached) {
                Ok(r) => Ok(r),
                // The storage failing is not damage: stop, the user retries later.
                Err(e) => match Error::stored_read(format!("pack {}", pack.id.to_hex()), e) {
                    e if e.is_storage_failure() => return Err(e),
                    Error::Corrupt { detail, .. } => Err(detail),
                    e => Err(e.to_string()),
                },
            };
            for (i, b) in request.blobs.zip(batch) {
                let b = b.as_ref();
                let plain = match &range {
                    Ok(buf) => self.open_framed_at(pack.salt, pack.id, b, buf, request.offset, "short read"),
                    Err(detail) => Err(Error::corrupt(b.describe(pack.id), detail.clone())),
                };
                // A damaged copy: another indexed copy may be sound (`backup --force` stores one).
                let plain = match (plain, pack.other_copies) {
                    (Err(e @ Error::Corrupt { .. }), Some(index)) => {
                        match self.read_blob_other_copies(index, b.blob_type, &b.id, pack.id) {
                            // The storage failing while the other copy is read is not damage:
                            // stop, as for the first read.
                            Err(f) if f.is_storage_failure() || matches!(f, Error::Interrupted) => return Err(f),
                            r => r.map(|plain| OpenedBlob { framed: None, plain }).map_err(|_| e),
                        }
                    }
                    (p, _) => p,
                };
                each(i, plain);
            }
        }
        Ok(())
    }

    /// Open and verify `blob` out of `data`, the whole of pack `pack` (salt `salt`) already
    /// read (check's data verification). Errors: [`Error::Corrupt`] when it lies beyond the
    /// end of `data` or fails verification.
    pub fn open_pack_blob(
        &self,
        pack: &PackId,
        salt: &[u8; SALT_LEN],
        data: &[u8],
        blob: &PackBlob,
    ) -> Result<Vec<u8>> {
        self.open_framed_at(salt, pack, blob, data, 0, "lies beyond the end of the pack").map(|b| b.plain)
    }

    /// Open `blob` out of `buf`, the bytes of its pack from offset `start` (its framed
    /// plaintext too); `short` is the damage when `buf` does not hold it.
    fn open_framed_at(
        &self,
        salt: &[u8; SALT_LEN],
        pack: &PackId,
        blob: &PackBlob,
        buf: &[u8],
        start: u64,
        short: &str,
    ) -> Result<OpenedBlob> {
        let what = || blob.describe(pack);
        let stored = (blob.offset as u64)
            .checked_sub(start)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| Some(s..s.checked_add(blob.length as usize)?))
            .and_then(|r| buf.get(r))
            .ok_or_else(|| Error::corrupt(what(), short))?;
        let r =
            BlobRef { blob_type: blob.blob_type, id: &blob.id, salt, offset: blob.offset, raw_length: blob.raw_length };
        self.open_blob_framed(&r, stored, &what).map(|(framed, plain)| OpenedBlob { framed: Some(framed), plain })
    }

    /// Bytes `offset..offset + length` of pack `pack`: the one place blobs are read from the
    /// storage.
    fn read_pack_range(&self, pack: &PackId, offset: u64, length: u64, cached: bool) -> BackendResult<Vec<u8>> {
        if cached {
            self.backend.read_range_cached(FileKind::Pack, &pack.0, offset, length)
        } else {
            self.backend.read_range(FileKind::Pack, &pack.0, offset, length)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u32, length: u32) -> PackBlob {
        PackBlob { blob_type: BlobType::Data, id: BlobId::default(), offset, length, raw_length: length }
    }

    #[test]
    fn neighbours_share_a_request() {
        let mib = 1u32 << 20;
        let n = [at(0, 100), at(100, 100), at(300, 100), at(300 + 2 * mib, 100)];
        // The first three are within MAX_GAP of each other; the last is 2 MiB further.
        let r = read_ranges(&n);
        assert_eq!(r.iter().map(|r| r.blobs.clone()).collect::<Vec<_>>(), vec![0..3, 3..4]);
        assert_eq!((r[0].offset, r[0].length), (0, 400));
        assert_eq!((r[1].offset, r[1].length), (300 + 2 * mib as u64, 100));
        assert!(read_ranges::<PackBlob>(&[]).is_empty());
    }

    #[test]
    fn requests_stay_within_max_range() {
        let mib = 1u32 << 20;
        let n = [at(0, 3 * mib), at(3 * mib, 3 * mib), at(6 * mib, 3 * mib), at(9 * mib, 20 * mib)];
        // 9 MiB would exceed MAX_RANGE (8 MiB); a blob larger than it is a request of its own.
        let r = read_ranges(&n);
        assert_eq!(r.iter().map(|r| r.blobs.clone()).collect::<Vec<_>>(), vec![0..2, 2..3, 3..4]);
        assert_eq!(r[2].length, 20 * mib as u64);
    }

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::backend::memory::MemoryBackend;
    use crate::backend::{Backend, BackendError, ErrorKind, Properties, StagedFile};
    use crate::crypto::keyfile::KdfParams;
    use crate::id::Id;
    use crate::index::{IndexFile, IndexPack};
    use crate::pack::FinishedPack;
    use crate::repository::InitOptions;

    /// A memory backend that counts range reads and can fail them as a storage outage.
    #[derive(Default)]
    struct Flaky {
        inner: MemoryBackend,
        down: AtomicBool,
        ranges: AtomicUsize,
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn properties(&self) -> Properties {
            self.inner.properties()
        }
        fn create(&self) -> BackendResult<()> {
            self.inner.create()
        }
        fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
            self.inner.write_bytes(kind, id, data)
        }
        fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
            self.inner.read(kind, id)
        }
        fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
            self.ranges.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(BackendError {
                    kind: ErrorKind::Transient,
                    context: format!("read {id}"),
                    source: "down".into(),
                });
            }
            self.inner.read_range(kind, id, offset, length)
        }
        fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
            self.inner.list_names(kind)
        }
        fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
            self.inner.remove(kind, id)
        }
        fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
            self.inner.exists(kind, id)
        }
        fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
            self.read_range(kind, id, offset, length)
        }
        fn stage(&self, _kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
            Ok(None)
        }
        fn remove_stale_temporaries(&self, _age: std::time::Duration) -> BackendResult<(u64, u64)> {
            Ok((0, 0))
        }
    }

    fn repo() -> (Arc<Flaky>, Repository) {
        let backend = Arc::new(Flaky::default());
        let opts = InitOptions {
            kdf: KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 },
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), b"pw", &opts).unwrap();
        (backend, repo)
    }

    /// A stored and indexed data pack of `contents`; returns it and the blobs' plaintexts.
    fn pack(repo: &Repository, contents: &[&[u8]]) -> FinishedPack {
        let mut w = repo.pack_writer(BlobType::Data, 1 << 16);
        for c in contents {
            w.add(repo.blob_id(c), &crate::blob::compress(c, 3), c.len() as u32).unwrap();
        }
        let p = w.finish().unwrap();
        repo.backend().write(FileKind::Pack, &p.id.0, &p.bytes).unwrap();
        let lock = crate::lock::AppendLock::acquire(repo, "test", &Default::default()).unwrap();
        let index = IndexFile {
            packs: vec![IndexPack { id: p.id, salt: p.salt, size: p.size, blobs: p.entries.clone() }],
            supersedes: vec![],
        };
        repo.write_index(&lock, &index).unwrap();
        p
    }

    fn contents() -> Vec<Vec<u8>> {
        (0u8..4).map(|n| vec![n; 1000 + n as usize]).collect()
    }

    /// Read every blob of `p` with `other_copies`; the results by position.
    fn read_all(repo: &Repository, p: &FinishedPack, index: Option<&Index>) -> Result<Vec<Result<Vec<u8>>>> {
        let blobs: Vec<PackBlob> = p.entries.iter().filter_map(PackBlob::listed).collect();
        let read = PackRead { id: &p.id, salt: &p.salt, other_copies: index, cancel: None, cached: false };
        let mut out: Vec<Result<Vec<u8>>> = Vec::new();
        repo.read_pack_blobs(&read, &blobs, |i, r| {
            assert_eq!(i, out.len());
            out.push(r);
        })?;
        Ok(out)
    }

    #[test]
    fn a_pack_is_read_in_one_request_and_every_blob_verified() {
        let (backend, repo) = repo();
        let c = contents();
        let p = pack(&repo, &c.iter().map(Vec::as_slice).collect::<Vec<_>>());
        backend.ranges.store(0, Ordering::Relaxed);
        let got = read_all(&repo, &p, None).unwrap();
        assert_eq!(backend.ranges.load(Ordering::Relaxed), 1);
        assert_eq!(got.into_iter().map(Result::unwrap).collect::<Vec<_>>(), c);
        // Unsorted blobs are refused, not misread.
        let mut blobs: Vec<PackBlob> = p.entries.iter().filter_map(PackBlob::listed).collect();
        blobs.reverse();
        let read = PackRead { id: &p.id, salt: &p.salt, other_copies: None, cancel: None, cached: false };
        assert!(matches!(repo.read_pack_blobs(&read, &blobs, |_, _| ()), Err(Error::Internal(_))));
        // Out of the whole pack in memory, and past its end.
        let b = blobs[0];
        assert_eq!(repo.open_pack_blob(&p.id, &p.salt, &p.bytes, &b).unwrap(), c[3]);
        let short = p.bytes.get(..b.offset as usize + 10).unwrap();
        let e = repo.open_pack_blob(&p.id, &p.salt, short, &b).unwrap_err();
        assert!(matches!(&e, Error::Corrupt { detail, .. } if detail.contains("beyond the end")), "{e}");
    }

    #[test]
    fn a_damaged_blob_is_its_own_error_or_read_from_another_copy() {
        let (backend, repo) = repo();
        let c = contents();
        let p = pack(&repo, &c.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Damage the third blob in place (the name no longer matches: readers of ranges do not
        // hash the whole file).
        let mut bytes = p.bytes.clone();
        let third = p.entries[2];
        bytes[third.offset as usize + 5] ^= 0xff;
        backend.inner.write_bytes(FileKind::Pack, &p.id.0, bytes.into()).unwrap();
        let got = read_all(&repo, &p, None).unwrap();
        assert_eq!(got.len(), 4);
        for (i, r) in got.iter().enumerate() {
            match r {
                Err(Error::Corrupt { object, .. }) if i == 2 => {
                    assert!(object.starts_with("data blob") && object.contains(&p.id.to_hex()), "{object}")
                }
                Ok(plain) if i != 2 => assert_eq!(plain, &c[i]),
                other => panic!("blob {i}: {other:?}"),
            }
        }
        // With no other copy indexed, falling back changes nothing.
        let index = repo.load_index().unwrap();
        assert!(matches!(read_all(&repo, &p, Some(&index)).unwrap()[2], Err(Error::Corrupt { .. })));
        assert!(matches!(repo.read_blob(&index, BlobType::Data, &third.id), Err(Error::Corrupt { .. })));
        // Another pack holds a sound copy: it is served from there.
        pack(&repo, &[&c[2]]);
        let index = repo.load_index().unwrap();
        let got = read_all(&repo, &p, Some(&index)).unwrap();
        assert_eq!(got.into_iter().map(Result::unwrap).collect::<Vec<_>>(), c);
        assert_eq!(repo.read_blob(&index, BlobType::Data, &third.id).unwrap(), c[2]);
    }

    #[test]
    fn a_storage_failure_stops_the_read() {
        let (backend, repo) = repo();
        let c = contents();
        let p = pack(&repo, &c.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let index = repo.load_index().unwrap();
        backend.down.store(true, Ordering::Relaxed);
        let e = read_all(&repo, &p, Some(&index)).unwrap_err();
        assert!(e.is_storage_failure(), "{e}");
        let e = repo.read_blob(&index, BlobType::Data, &p.entries[0].id).unwrap_err();
        assert!(e.is_storage_failure(), "{e}");
        // A missing pack is damage, blob by blob.
        backend.down.store(false, Ordering::Relaxed);
        backend.inner.remove(FileKind::Pack, &p.id.0).unwrap();
        let got = read_all(&repo, &p, None).unwrap();
        assert!(got.iter().all(|r| matches!(r, Err(Error::Corrupt { detail, .. }) if detail.contains("missing"))));
        // A cancelled read stops before its request.
        let cancel = Cancel::new();
        cancel.cancel();
        let read = PackRead { id: &p.id, salt: &p.salt, other_copies: None, cancel: Some(&cancel), cached: false };
        let blobs: Vec<PackBlob> = p.entries.iter().filter_map(PackBlob::listed).collect();
        assert!(matches!(repo.read_pack_blobs(&read, &blobs, |_, _| ()), Err(Error::Interrupted)));
    }
}
