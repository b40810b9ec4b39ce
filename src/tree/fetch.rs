//! The one blob fetcher with read-ahead, shared by `dump` (a file's content streamed in order)
//! and `mount` (reads at any offset, sequential ones read ahead).
//!
//! A [`BlobFetcher`] reads data blobs through the repository's one pack reader (a blob is a
//! batch of one: [`Repository::read_blob`] on [`Repository::read_pack_blobs`], which verifies
//! them and falls back to another indexed copy of a damaged one), keeps their
//! plaintext in a byte-bounded LRU cache, fetches each blob once when several readers want it
//! at the same time (one lock per blob in flight; different blobs are fetched in parallel), and
//! has a few worker threads fetch the blobs a reader announces with [`BlobFetcher::prefetch`],
//! so that decryption and decompression of the next blobs overlap the reader's own work.
//! [`ContentReader`] reads one file's content in order on top of it ([`std::io::Read`]).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::blob::BlobType;
use crate::context::Cancel;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::repository::Repository;

/// Blobs a [`ContentReader`] asks to be fetched ahead of the one being read.
pub const READAHEAD: usize = 4;

/// Bytes of plaintext blobs a fetcher keeps by default (64 MiB: 32 blobs of the largest
/// default chunk size, 128 of the average).
pub const CACHE_BYTES: usize = 64 << 20;

/// What a fetcher read from the repository.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Stored (compressed, encrypted) bytes of the data blobs read from the repository.
    pub bytes: AtomicU64,
    /// Data blobs read from the repository (cache hits are not counted).
    pub blobs: AtomicU64,
}

/// How a [`BlobFetcher`] works.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Worker threads fetching announced blobs ahead of readers (0: none, reads only).
    pub threads: usize,
    /// Bytes of plaintext kept in the cache (at least one blob is always kept).
    pub cache_bytes: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions { threads: 2, cache_bytes: CACHE_BYTES }
    }
}

/// A byte-bounded LRU cache of plaintext data blobs.
struct BlobCache {
    lru: lru::LruCache<BlobId, Arc<Vec<u8>>>,
    bytes: usize,
    limit: usize,
}

impl BlobCache {
    fn get(&mut self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.lru.get(id).cloned()
    }

    fn put(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        self.bytes += data.len();
        if let Some(old) = self.lru.put(id, data) {
            self.bytes -= old.len();
        }
        while self.bytes > self.limit && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((_, d)) => self.bytes -= d.len(),
                None => break,
            }
        }
    }
}

/// What the fetcher and its workers share.
struct Store {
    repo: Arc<Repository>,
    /// Replaced when the caller loads a newer index ([`BlobFetcher::set_index`]).
    index: RwLock<Arc<Index>>,
    cache: Mutex<BlobCache>,
    /// One lock per blob being fetched, so that concurrent reads of one blob fetch it once
    /// while different blobs are fetched in parallel.
    fetching: Mutex<HashMap<BlobId, Arc<Mutex<()>>>>,
    stats: Arc<FetchStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn has(&self, id: &BlobId) -> bool {
        lock(&self.cache).lru.contains(id) || lock(&self.fetching).contains_key(id)
    }

    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(d) = lock(&self.cache).get(id) {
            return Ok(d);
        }
        let slot = lock(&self.fetching).entry(*id).or_default().clone();
        let fetched = {
            let _only_fetch_of_this_blob = lock(&slot);
            // A thread that held the slot before has put the blob in the cache. (The cache
            // guard must be gone before the fetch below locks the cache again.)
            let cached = lock(&self.cache).get(id);
            match cached {
                Some(d) => Ok(d),
                None => {
                    let index = self.index();
                    self.repo.read_blob(&index, BlobType::Data, id).map(|data| {
                        let data = Arc::new(data);
                        let stored = index.get(id).map(|(_, loc)| u64::from(loc.length)).unwrap_or(0);
                        self.stats.bytes.fetch_add(stored, Ordering::Relaxed);
                        self.stats.blobs.fetch_add(1, Ordering::Relaxed);
                        lock(&self.cache).put(*id, data.clone());
                        data
                    })
                }
            }
        };
        // Every path ends here, and only this slot is removed (a newer fetcher's stays).
        let mut fetching = lock(&self.fetching);
        if fetching.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            fetching.remove(id);
        }
        fetched
    }
}

/// Reads verified data blobs, cached and fetched ahead (see the module docs). Dropping it stops
/// its workers once their current fetch is done.
pub struct BlobFetcher {
    store: Arc<Store>,
    /// Blobs for the workers to fetch ahead (None: no worker could be started).
    ahead: Option<crossbeam_channel::Sender<BlobId>>,
    cancel: Cancel,
}

impl BlobFetcher {
    /// A fetcher of blobs of `repo` located by `index`, counting what it reads in `stats`;
    /// [`ContentReader`]s on it stop with [`Error::Interrupted`] once `cancel` is cancelled.
    /// Workers that cannot be started are done without (reads then fetch for themselves).
    pub fn new(
        repo: Arc<Repository>,
        index: Arc<Index>,
        opts: &FetchOptions,
        stats: Arc<FetchStats>,
        cancel: &Cancel,
    ) -> Self {
        let store = Arc::new(Store {
            repo,
            index: RwLock::new(index),
            cache: Mutex::new(BlobCache { lru: lru::LruCache::unbounded(), bytes: 0, limit: opts.cache_bytes }),
            fetching: Mutex::new(HashMap::new()),
            stats,
        });
        let (tx, rx) = crossbeam_channel::bounded::<BlobId>(2 * READAHEAD);
        let mut started = 0;
        for _ in 0..opts.threads {
            let (s, rx) = (store.clone(), rx.clone());
            let spawned = std::thread::Builder::new().name("cairn-fetch".into()).spawn(move || {
                for id in rx {
                    // A failure is reported by the read that needs the blob.
                    let _ = s.blob(&id);
                }
            });
            started += usize::from(spawned.is_ok());
        }
        BlobFetcher { store, ahead: (started > 0).then_some(tx), cancel: cancel.clone() }
    }

    /// The repository blobs are read from.
    pub fn repo(&self) -> &Repository {
        &self.store.repo
    }

    /// The cancellation token readers on this fetcher obey.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The index blobs are located by.
    pub fn index(&self) -> Arc<Index> {
        self.store.index()
    }

    /// Locate blobs by `index` from now on (a newer index, once new snapshots appeared).
    pub fn set_index(&self, index: Arc<Index>) {
        *self.store.index.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// The plaintext of data blob `id`: from the cache, from the fetch of another reader, or
    /// read from the repository now. Errors: those of [`Repository::read_blob`] (a blob missing
    /// from the index or damaged: [`Error::Corrupt`]; storage failures: [`Error::Backend`]).
    pub fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        self.store.blob(id)
    }

    /// Have the workers fetch `ids` (those neither cached nor being fetched), without waiting;
    /// when the workers are busy, the rest is left for the reader.
    pub fn prefetch(&self, ids: &[BlobId]) {
        let Some(tx) = &self.ahead else { return };
        for id in ids {
            if !self.store.has(id) && tx.try_send(*id).is_err() {
                break;
            }
        }
    }
}

/// Reads a file's content in order, blob by blob, announcing the next [`READAHEAD`] blobs to
/// the fetcher. Errors surface as `io::Error`s wrapping the [`Error`] (see [`from_io`]).
pub struct ContentReader<'f> {
    fetcher: &'f BlobFetcher,
    ids: &'f [BlobId],
    next: usize,
    buf: Arc<Vec<u8>>,
    pos: usize,
}

impl<'f> ContentReader<'f> {
    /// A reader of the blobs `ids`, in order.
    pub fn new(fetcher: &'f BlobFetcher, ids: &'f [BlobId]) -> Self {
        ContentReader { fetcher, ids, next: 0, buf: Arc::new(Vec::new()), pos: 0 }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            self.fetcher.cancel.check().map_err(io::Error::other)?;
            let Some(id) = self.ids.get(self.next) else { return Ok(0) };
            let ahead = self.ids.get(self.next + 1..).unwrap_or_default();
            self.fetcher.prefetch(ahead.get(..READAHEAD).unwrap_or(ahead));
            self.buf = self.fetcher.blob(id).map_err(io::Error::other)?;
            self.pos = 0;
            self.next += 1;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = out.len().min(rest.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Turn an I/O error from writing `what` back into an [`Error`]: a cairn error carried inside
/// (a damaged blob, an interruption) comes out as itself; anything else is [`Error::Io`]
/// naming `what`. A closed pipe stays an `Error::Io` of kind `BrokenPipe`.
pub fn from_io(e: io::Error, what: &Path) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        return Error::internal("an error carried in an I/O error was lost");
    }
    Error::io(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId(crate::id::Id::of_bytes(&[n]))
    }

    #[test]
    fn cache_keeps_within_its_bytes_and_at_least_one_blob() {
        let mut c = BlobCache { lru: lru::LruCache::unbounded(), bytes: 0, limit: 10 };
        c.put(id(1), Arc::new(vec![0; 4]));
        c.put(id(2), Arc::new(vec![0; 4]));
        assert!(c.get(&id(1)).is_some());
        // Over the limit: the least recently used (2) goes.
        c.put(id(3), Arc::new(vec![0; 4]));
        assert!(c.get(&id(2)).is_none());
        assert!(c.get(&id(1)).is_some() && c.get(&id(3)).is_some());
        assert_eq!(c.bytes, 8);
        // A blob larger than the whole cache is kept alone.
        c.put(id(4), Arc::new(vec![0; 20]));
        assert_eq!((c.lru.len(), c.bytes), (1, 20));
        // Replacing a blob counts its bytes once.
        c.put(id(4), Arc::new(vec![0; 2]));
        assert_eq!(c.bytes, 2);
    }

    #[test]
    fn carried_errors_come_back_as_themselves() {
        let e = from_io(io::Error::other(Error::Interrupted), Path::new("out"));
        assert!(matches!(e, Error::Interrupted));
        let e = from_io(io::Error::from(io::ErrorKind::BrokenPipe), Path::new("out"));
        assert!(matches!(e, Error::Io { ref source, .. } if source.kind() == io::ErrorKind::BrokenPipe));
    }
}
