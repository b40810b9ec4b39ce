//! The dedup [`Saver`]: each blob is hashed, looked up in the index and in this run's pending
//! set, compressed outside any lock, then encrypted into the one open pack of its type. Full
//! packs go to the [`Uploader`]; every [`INDEX_EVERY_PACKS`] uploaded packs an index file is
//! written. Also the two ways a stream is cut and saved: windows saved in parallel on the
//! pool (a file of a tree backup), or a pipeline of its own (a stream).

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::read::{fill_growing, read_segments, segment_head, Filled, Segment, SegmentChunk, StreamError};
use super::upload::{PackBuffers, Uploader};
use super::{Permit, Progress, INDEX_EVERY_PACKS};
use crate::backend::local::direct_io::AlignedBuf;
use crate::backend::FileKind;
use crate::blob::{self, BlobType};
use crate::chunker::Chunker;
use crate::context::Cancel;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::AppendLock;
use crate::pack::PackWriter;
use crate::repository::Repository;
use crate::snapshot::Summary;

/// The open pack of each blob type. Workers append to it in turn: a blob is compressed
/// outside the lock, and only its copy into the pack and its encryption happen under it, so
/// there is one open pack per type however many workers there are (memory stays at a few packs).
#[derive(Default)]
struct OpenPacks {
    data: Option<PackWriter>,
    tree: Option<PackWriter>,
}

impl OpenPacks {
    fn slot(&mut self, blob_type: BlobType) -> &mut Option<PackWriter> {
        match blob_type {
            BlobType::Data => &mut self.data,
            BlobType::Tree => &mut self.tree,
        }
    }
}

thread_local! {
    /// Each thread's buffer for a framed (compressed) blob, kept for reuse.
    static FRAMED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Deduplicates blobs against the index and packs new ones. Shared by all worker threads.
pub struct Saver<'r> {
    pub(super) repo: &'r Repository,
    pub(super) index: &'r Index,
    dry_run: bool,
    level: i32,
    /// Blobs saved or being saved by this run.
    pending: Mutex<HashSet<BlobId>>,
    open: Mutex<OpenPacks>,
    buffers: Arc<PackBuffers>,
    uploader: Mutex<Uploader>,
    /// Upload threads (for a restarted uploader, [`Saver::checkpoint`]).
    connections: usize,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    pub(super) progress: &'r Progress,
    /// The lock checked before each index file; `None` on a dry run (nothing is written).
    lock: Option<&'r AppendLock>,
    /// Polled between windows and segments of a stream.
    pub(super) cancel: Cancel,
    /// Read back each indexed data blob before reusing it, storing a fresh copy when every
    /// indexed copy is damaged (`backup --force`).
    verify_indexed: bool,
}

impl<'r> Saver<'r> {
    /// A saver adding to `repo`, deduplicating against `index`, uploading packs on
    /// `connections` threads (at least 1). Under [`Permit::Write`] the lock is checked before
    /// every index file is written (a backup whose lock was lost must not index packs that a
    /// prune may have deleted meanwhile); under [`Permit::DryRun`] nothing is written.
    pub fn new(
        repo: &'r Repository,
        index: &'r Index,
        permit: Permit<'r>,
        connections: usize,
        progress: &'r Progress,
    ) -> Self {
        let (dry_run, lock) = match permit {
            Permit::Write(lock) => (false, Some(lock)),
            Permit::DryRun(_) => (true, None),
        };
        let buffers = Arc::new(PackBuffers::new(repo.config().pack_size as usize));
        Saver {
            repo,
            index,
            dry_run,
            level: repo.config().compression_level,
            pending: Mutex::new(HashSet::new()),
            open: Mutex::new(OpenPacks::default()),
            uploader: Mutex::new(Uploader::start(repo.backend().clone(), connections.max(1), dry_run, buffers.clone())),
            connections: connections.max(1),
            buffers,
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            data_added: AtomicU64::new(0),
            data_added_packed: AtomicU64::new(0),
            progress,
            lock,
            cancel: Cancel::new(),
            verify_indexed: false,
        }
    }

    /// Trust no indexed blob without reading it (`backup --force`): each data or tree blob the
    /// run would reuse is read and verified once; when every indexed copy is damaged, a fresh
    /// copy is stored, which readers then use (see [`Repository::read_blob`]) and prune
    /// keeps. Costs a read of every reused blob from the repository.
    pub fn set_verify_indexed(&mut self, on: bool) {
        self.verify_indexed = on;
    }

    /// Stop saving streams with [`Error::Interrupted`] once `cancel` is cancelled (polled
    /// between windows and segments); by default a token nobody cancels.
    pub fn set_cancel(&mut self, cancel: Cancel) {
        self.cancel = cancel;
    }

    fn open_packs(&self) -> std::sync::MutexGuard<'_, OpenPacks> {
        // A panic in another thread cannot leave the state half-updated in a way that matters
        // here: a pack is whole before and after each append.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `data` as a blob of `blob_type` unless the repository (or this run) has it.
    /// Returns its id. Errors: backend failures writing a pack or index.
    pub fn save_blob(&self, blob_type: BlobType, data: &[u8]) -> Result<BlobId> {
        let id = self.repo.blob_id(data);
        let indexed = self.index.contains(&id);
        let verify = indexed && self.verify_indexed;
        if (indexed && !verify) || !self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return Ok(id);
        }
        if verify {
            match self.repo.read_blob(self.index, blob_type, &id) {
                Ok(_) => return Ok(id),
                // Every indexed copy is damaged: store this one.
                Err(Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let raw_length = u32::try_from(data.len()).map_err(|_| {
            Error::refused(format!("a blob of {} bytes is over the repository format's 4 GiB limit", data.len()))
        })?;
        // Compress into this thread's buffer (taken out of its cell while in use).
        let mut framed = FRAMED.with(|cell| cell.take());
        let need = blob::framed_bound(data.len());
        if framed.len() < need {
            framed.resize(need, 0);
        }
        let result = match blob::compress_into(data, self.level, &mut framed).and_then(|n| framed.get_mut(..n)) {
            Some(f) => self.append(blob_type, id, f, raw_length),
            None => Err(Error::internal("the compression buffer is smaller than the framed size bound")),
        };
        FRAMED.with(|cell| cell.replace(framed));
        result.map(|()| id)
    }

    /// Store blob `id`, whose plaintext is `plain`, unless the repository (or this run) has
    /// it; `framed`, when given, is its framed plaintext (compression byte and body, as
    /// another repository stored it), sealed as it is instead of compressing `plain` again.
    /// The caller vouches that `id` is this repository's id of `plain` (its key's hash: copy
    /// between repositories sharing id keys, or an id it computed with
    /// [`Repository::blob_id`]). Returns true when the blob was stored, false when it was
    /// already there. Errors: as [`Saver::save_blob`].
    pub fn save_verified(&self, blob_type: BlobType, id: BlobId, plain: &[u8], framed: Option<&[u8]>) -> Result<bool> {
        if self.index.contains(&id) || !self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return Ok(false);
        }
        let raw_length = u32::try_from(plain.len()).map_err(|_| {
            Error::refused(format!("a blob of {} bytes is over the repository format's 4 GiB limit", plain.len()))
        })?;
        let mut buf = FRAMED.with(|cell| cell.take());
        let result = match framed {
            Some(f) => {
                buf.clear();
                buf.extend_from_slice(f);
                self.append(blob_type, id, &mut buf, raw_length)
            }
            None => {
                let need = blob::framed_bound(plain.len());
                if buf.len() < need {
                    buf.resize(need, 0);
                }
                match blob::compress_into(plain, self.level, &mut buf).and_then(|n| buf.get_mut(..n)) {
                    Some(f) => self.append(blob_type, id, f, raw_length),
                    None => Err(Error::internal("the compression buffer is smaller than the framed size bound")),
                }
            }
        };
        FRAMED.with(|cell| cell.replace(buf));
        result.map(|()| true)
    }

    /// True when the repository's index or this saver (a blob saved or being saved) holds
    /// blob `id`.
    pub fn has(&self, id: &BlobId) -> bool {
        self.index.contains(id) || self.pending.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// A new pack: staged in the backend where it can be (written as it grows), else in a
    /// reused buffer.
    fn new_pack(&self, blob_type: BlobType) -> Result<PackWriter> {
        let staged = if self.dry_run { None } else { self.repo.backend().stage(FileKind::Pack)? };
        match staged {
            Some(file) => self.repo.pack_writer_staged(blob_type, file),
            None => Ok(self.repo.pack_writer_with_buffer(blob_type, self.buffers.take())),
        }
    }

    /// Append a framed blob to the open pack of its type (encrypting it in place, then into
    /// the pack), and write the packs that are full.
    fn append(&self, blob_type: BlobType, id: BlobId, framed: &mut [u8], raw_length: u32) -> Result<()> {
        let pack_size = self.repo.config().pack_size as usize;
        let (stored, full) = {
            let mut open = self.open_packs();
            let slot = open.slot(blob_type);
            // A blob that would make an in-memory pack's buffer grow starts a new pack; an
            // empty pack takes any blob.
            let full_before = slot.take_if(|p| !p.is_empty() && !p.fits(framed.len()));
            let mut pack = match slot.take() {
                Some(p) => p,
                None => self.new_pack(blob_type)?,
            };
            // A pack whose write failed is dropped here (its staged file with it).
            let stored = pack.add_in_place(id, framed, raw_length)?;
            let full_after = if pack.len() >= pack_size {
                Some(pack)
            } else {
                *slot = Some(pack);
                None
            };
            (stored, [full_before, full_after])
        };
        self.data_added.fetch_add(raw_length as u64, Ordering::Relaxed);
        self.data_added_packed.fetch_add(stored as u64, Ordering::Relaxed);
        self.progress.bytes_added.fetch_add(stored as u64, Ordering::Relaxed);
        match blob_type {
            BlobType::Data => self.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => self.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        for p in full.into_iter().flatten() {
            self.write_pack(p)?;
        }
        Ok(())
    }

    fn uploader(&self) -> std::sync::MutexGuard<'_, Uploader> {
        self.uploader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finish a pack and queue it for upload (blocking while the queue is full).
    fn queue_pack(&self, p: PackWriter) -> Result<()> {
        let done = p.finish()?;
        // Send on a clone of the sender, outside the lock: a full queue blocks only this worker.
        let tx = {
            let up = self.uploader();
            up.check()?;
            up.tx.clone()
        };
        tx.ok_or_else(|| Error::internal("a pack was queued after the uploads finished"))?
            .send(done)
            .map_err(|_| Error::internal("the pack upload threads stopped early"))
    }

    /// Queue a full pack; write an index file once enough packs are uploaded.
    fn write_pack(&self, p: PackWriter) -> Result<()> {
        self.queue_pack(p)?;
        let ready = self.uploader().take_uploaded(INDEX_EVERY_PACKS);
        self.write_index(ready)
    }

    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() || self.dry_run {
            return Ok(());
        }
        let lock = self.lock.ok_or_else(|| Error::internal("an index file to write without a lock"))?;
        lock.check()?;
        self.repo.write_index(lock, &IndexFile { packs, supersedes: Vec::new() })?;
        Ok(())
    }

    /// Write the open packs and an index file for every pack not yet indexed. After this,
    /// every blob saved is durable and indexed.
    pub fn flush(&self) -> Result<()> {
        let open = {
            let mut open = self.open_packs();
            [open.data.take(), open.tree.take()]
        };
        for p in open.into_iter().flatten() {
            if !p.is_empty() {
                self.queue_pack(p)?;
            }
        }
        let mut up = self.uploader();
        up.finish()?;
        let rest = up.take_uploaded(0);
        drop(up);
        self.write_index(rest)
    }

    /// [`Saver::flush`], then go on saving: every blob saved so far is durable and indexed
    /// (a snapshot naming them may be written), and the blobs saved so far are still known to
    /// this saver, so they are not stored again. Errors: as [`Saver::flush`].
    pub fn checkpoint(&self) -> Result<()> {
        self.flush()?;
        let mut up = self.uploader();
        *up = Uploader::start(self.repo.backend().clone(), self.connections, self.dry_run, self.buffers.clone());
        Ok(())
    }

    /// After a failure: wait for the uploads under way, then index the packs already written
    /// (they are complete and durable), so the next backup reuses them. Blobs still in memory
    /// are dropped.
    pub fn salvage(&self) {
        let mut up = self.uploader();
        let _ = up.finish();
        let rest = up.take_uploaded(0);
        drop(up);
        let _ = self.write_index(rest);
    }

    /// Use zstd `level` (0: no compression) for the blobs saved from now on.
    pub fn set_compression(&mut self, level: i32) {
        self.level = level;
    }

    /// Put the counts of the blobs this saver stored into `s` (data and tree blobs, their
    /// plaintext and stored bytes).
    pub fn fill_summary(&self, s: &mut Summary) {
        s.counts.data_blobs = self.data_blobs.load(Ordering::Relaxed);
        s.counts.tree_blobs = self.tree_blobs.load(Ordering::Relaxed);
        s.counts.data_added = self.data_added.load(Ordering::Relaxed);
        s.counts.data_added_packed = self.data_added_packed.load(Ordering::Relaxed);
    }

    /// Chunk a stream and save its chunks; returns the content ids and the byte count.
    /// Read errors are returned as [`StreamError::Source`], repository errors as
    /// [`StreamError::Repo`].
    pub fn save_stream(
        &self,
        chunker: &Chunker,
        r: &mut (dyn Read + Send),
        size_hint: u64,
    ) -> std::result::Result<(Vec<BlobId>, u64), StreamError> {
        // On a pool worker (a large file of a tree backup) the chunks of each window are saved
        // in parallel on the pool. Off the pool (a stream on the main thread), a pipeline.
        if rayon::current_thread_index().is_some() {
            self.save_stream_windows(chunker, r, size_hint)
        } else {
            self.save_stream_pipelined(chunker, r)
        }
    }

    /// Read a window, cut it, save its chunks in parallel on the pool, repeat.
    fn save_stream_windows(
        &self,
        chunker: &Chunker,
        r: &mut dyn Read,
        size_hint: u64,
    ) -> std::result::Result<(Vec<BlobId>, u64), StreamError> {
        let max = chunker.params().max_size as usize;
        let window = (3 * max).max(4 << 20);
        // Buffers grow (and are zeroed) only when full; a small file gets a small buffer.
        let first = usize::try_from(size_hint).unwrap_or(window).saturating_add(1).clamp(4096, window);
        let mut buf = Vec::new();
        let mut len = 0usize;
        let mut ids = Vec::new();
        let mut total = 0u64;
        loop {
            self.cancel.check().map_err(StreamError::Repo)?;
            let eof = fill_growing(r, &mut buf, &mut len, window, first).map_err(StreamError::Source)?;
            let data = &buf[..len];
            let mut cuts = Vec::new();
            let mut pos = 0;
            while let Some(n) = chunker.next_cut(&data[pos..], eof) {
                cuts.push(pos..pos + n);
                pos += n;
            }
            let batch: Result<Vec<BlobId>> = if cuts.len() > 1 {
                cuts.par_iter().map(|c| self.save_blob(BlobType::Data, &data[c.clone()])).collect()
            } else {
                cuts.iter().map(|c| self.save_blob(BlobType::Data, &data[c.clone()])).collect()
            };
            ids.extend(batch.map_err(StreamError::Repo)?);
            total += pos as u64;
            self.progress.bytes.fetch_add(pos as u64, Ordering::Relaxed);
            if eof {
                return Ok((ids, total));
            }
            // The bytes after the last cut start the next window.
            buf.copy_within(pos..len, 0);
            len -= pos;
        }
    }

    /// A pipeline for one stream: a reader thread fills segments ([`read_segments`]), this
    /// thread cuts them and hands each chunk to one saver thread per core (hash, compress,
    /// encrypt, pack) through a bounded queue, so the cores never wait for the disk or for a
    /// window's slowest chunk. Chunks are not copied: each is a range of a shared [`Segment`],
    /// and segments are reused. Memory stays bounded: one segment being read, one being cut,
    /// and two chunks per core in the queue, which span at most a few segments.
    fn save_stream_pipelined(
        &self,
        chunker: &Chunker,
        r: &mut (dyn Read + Send),
    ) -> std::result::Result<(Vec<BlobId>, u64), StreamError> {
        let workers = rayon::current_num_threads().max(1);
        let (tx, rx) = crossbeam_channel::bounded::<SegmentChunk>(workers * 2);
        // The reader fills the next segment while this one is cut, then waits to hand it over.
        let (seg_tx, seg_rx) = crossbeam_channel::bounded::<std::io::Result<Filled>>(0);
        let pool = Arc::new(Mutex::new(Vec::new()));
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let head = segment_head(chunker);
            let reader_pool = pool.clone();
            let cancel = &self.cancel;
            s.spawn(move || read_segments(r, head, &reader_pool, &seg_tx, cancel));
            let savers: Vec<_> = (0..workers)
                .map(|_| {
                    let rx = rx.clone();
                    let failed = &failed;
                    s.spawn(move || -> Result<Vec<(usize, BlobId)>> {
                        let mut out = Vec::new();
                        for c in rx {
                            if failed.load(Ordering::Relaxed) {
                                continue; // drain: the producer stops soon
                            }
                            match c.bytes().and_then(|b| self.save_blob(BlobType::Data, b)) {
                                Ok(id) => out.push((c.seq, id)),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            drop(rx);
            // Dropping the segment receiver (when this returns) stops the reader.
            let produced = self.produce_chunks(chunker, seg_rx, &pool, &tx, &failed);
            drop(tx);
            let mut ids: Vec<(usize, BlobId)> = Vec::new();
            let mut saver_error = None;
            for h in savers {
                match h.join() {
                    Ok(Ok(v)) => ids.extend(v),
                    Ok(Err(e)) => saver_error = saver_error.or(Some(e)),
                    Err(_) => saver_error = saver_error.or(Some(Error::internal("a backup worker thread panicked"))),
                }
            }
            if let Some(e) = saver_error {
                return Err(StreamError::Repo(e));
            }
            let total = produced?;
            ids.sort_unstable_by_key(|(seq, _)| *seq);
            Ok((ids.into_iter().map(|(_, id)| id).collect(), total))
        })
    }

    /// Cut the segments `read_segments` fills and send the numbered chunks. Returns the bytes
    /// cut.
    fn produce_chunks(
        &self,
        chunker: &Chunker,
        segments: crossbeam_channel::Receiver<std::io::Result<Filled>>,
        pool: &Arc<Mutex<Vec<AlignedBuf>>>,
        tx: &crossbeam_channel::Sender<SegmentChunk>,
        failed: &AtomicBool,
    ) -> std::result::Result<u64, StreamError> {
        let head = segment_head(chunker);
        let mut seq = 0usize;
        let mut total = 0u64;
        // The bytes after the last cut, kept apart so that their segment can be reused as soon
        // as its chunks are saved.
        let mut carry: Vec<u8> = Vec::with_capacity(head);
        for filled in segments {
            self.cancel.check().map_err(StreamError::Repo)?;
            let Filled { mut buf, end, eof } = filled.map_err(StreamError::Source)?;
            // The carried bytes go at the end of the head.
            let start = head.saturating_sub(carry.len());
            if let Some(dst) = buf.as_mut_slice().get_mut(start..head) {
                dst.copy_from_slice(&carry);
            }
            let segment = Arc::new(Segment { bytes: buf, pool: pool.clone() });
            let data = segment.bytes.as_slice().get(start..end).ok_or_else(|| {
                StreamError::Repo(Error::Internal(format!(
                    "stream segment bytes {start}..{end} are outside its {}-byte buffer",
                    segment.bytes.len()
                )))
            })?;
            let mut pos = 0;
            while let Some(n) = data.get(pos..).and_then(|rest| chunker.next_cut(rest, eof)) {
                let chunk = SegmentChunk { seq, segment: segment.clone(), range: start + pos..start + pos + n };
                if failed.load(Ordering::Relaxed) || tx.send(chunk).is_err() {
                    // A saver failed; its error is the one reported.
                    return Ok(total);
                }
                seq += 1;
                pos += n;
                total += n as u64;
                self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            if eof {
                return Ok(total);
            }
            carry.clear();
            let rest = data.get(pos..).ok_or_else(|| {
                StreamError::Repo(Error::Internal(format!("chunk end {pos} is past the {}-byte segment", data.len())))
            })?;
            carry.extend_from_slice(rest);
        }
        // The reader stopped without reaching the end: the saving failed or was interrupted.
        self.cancel.check().map_err(StreamError::Repo)?;
        Ok(total)
    }
}
