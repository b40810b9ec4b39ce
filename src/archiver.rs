//! Backup: walk sources, chunk, deduplicate, pack, and write a snapshot.
//!
//! Pipeline: the directory walk runs on a rayon pool (each directory's entries in parallel,
//! directories recursively), every file's content is cut by the chunker and each chunk is
//! hashed, looked up, compressed (outside any lock, into a per-thread buffer), then encrypted
//! into the one open pack of its type by [`Saver::save_blob`]. On a local disk the open pack is
//! a staged file written as it grows ([`crate::backend::Backend::stage`]); elsewhere it is a
//! reused buffer. Full packs are committed (or uploaded) by upload threads; every
//! [`INDEX_EVERY_PACKS`] packs an index file is written, so an interrupted backup's uploads are
//! reused by the next one. Order on disk: packs, then index files, then the snapshot.
//!
//! A stream (`--stdin`) is a pipeline of its own: a reader thread fills segments (past the
//! page cache for a regular file, see [`crate::direct_io`]), this thread cuts them, and one
//! saver per core saves the chunks, which are ranges of the shared segments (no copies).
//!
//! Memory is bounded: a file is read in windows of three times the largest chunk (at least
//! 4 MiB), each chunked and packed in parallel while the next is read; a stream holds a few
//! segments (one largest chunk, then at least 4 MiB and two largest chunks); a local backup
//! holds no pack in memory.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::backend::FileKind;
use crate::blob::{self, BlobType};
use crate::chunker::Chunker;
use crate::direct_io::{AlignedBuf, DIRECT_READ_MIN};
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::pack::{FinishedPack, PackWriter};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, Summary};
use crate::tree::{Node, NodeKind, Timestamp, Tree};
use crate::util::OwnerNames;

/// An index file is written after this many new packs (and at the end).
pub const INDEX_EVERY_PACKS: usize = 64;

/// Set by a signal handler to stop a running operation at the next check.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// What to back up.
pub enum Source<'a> {
    /// Files and directory trees, by path.
    Paths(Vec<PathBuf>),
    /// One stream (standard input), stored as a file named `name` at the snapshot's root.
    Stream {
        /// The file name in the snapshot.
        name: String,
        /// The stream.
        reader: &'a mut (dyn Read + Send),
    },
}

/// Options of one backup run.
#[derive(Default)]
pub struct BackupOptions {
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Exclude patterns (globs; unless they start with `/` they match at any depth).
    pub excludes: Vec<String>,
    /// Do not cross into other file systems below a source.
    pub one_file_system: bool,
    /// Do everything but write to the repository.
    pub dry_run: bool,
    /// Snapshot time (default: now).
    pub time: Option<Timestamp>,
    /// Packs uploaded at once (0: the default, 2).
    pub upload_connections: usize,
    /// zstd level for this run (0 = store uncompressed); `None`: the repository's default.
    pub compression: Option<i32>,
    /// Which snapshot to compare with (restic's `--parent` / `--force`).
    pub parent: ParentChoice,
    /// Do not compare ctimes when deciding a file is unchanged.
    pub ignore_ctime: bool,
    /// Do not compare inode numbers when deciding a file is unchanged.
    pub ignore_inode: bool,
    /// The repository lock this backup runs under: checked ([`crate::lock::RepoLock::check`])
    /// before every index file and right before the snapshot is written, so a backup whose
    /// lock was lost (stopped for longer than the stale timeout, then overridden by a prune)
    /// writes neither.
    pub lock: Option<std::sync::Arc<crate::lock::RepoLock>>,
}

/// How a backup picks its parent snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The latest snapshot of the same host and the same set of paths.
    #[default]
    Latest,
    /// This snapshot.
    Given(SnapshotId),
    /// None: read every file (`--force`).
    None,
}

/// Live counters a progress display may poll.
#[derive(Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Content bytes read.
    pub bytes: AtomicU64,
    /// Bytes added to the repository (stored size).
    pub bytes_added: AtomicU64,
    /// Sources skipped on error.
    pub errors: AtomicU64,
}

/// What a backup produced.
pub struct BackupResult {
    /// The snapshot id, `None` on a dry run.
    pub id: Option<SnapshotId>,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Sources that could not be read: path and reason.
    pub errors: Vec<(PathBuf, String)>,
    /// Warnings about the run that did not stop it (a parent snapshot that could not be used).
    pub warnings: Vec<String>,
}

/// Compiled path patterns (`--exclude`, `--include`).
pub struct Patterns {
    set: globset::GlobSet,
}

impl Patterns {
    /// Compile restic-style patterns: one starting with `/` matches the absolute path from the
    /// root; any other matches at any depth (`*.log`, `cur/*.tmp`). A matching directory is
    /// skipped whole. Errors: [`Error::InvalidInput`] naming the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            let full = if p.starts_with('/') { p.to_string() } else { format!("**/{p}") };
            let g = globset::GlobBuilder::new(&full)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::InvalidInput(format!("bad pattern {p:?}: {e}")))?;
            b.add(g);
        }
        Ok(Patterns { set: b.build().map_err(|e| Error::InvalidInput(format!("bad patterns: {e}")))? })
    }

    /// True when `path` (absolute) matches a pattern.
    pub fn is_match(&self, path: &Path) -> bool {
        !self.set.is_empty() && self.set.is_match(path)
    }
}

/// Read patterns from an exclude file: one per line, blank lines and `#` comments skipped.
pub fn read_pattern_file(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_semantics() {
        let e =
            Patterns::new(&["*.log".into(), "cur/*.tmp".into(), "/var/cache".into(), "/etc/**/secret".into()]).unwrap();
        assert!(e.is_match(Path::new("/var/log/syslog.log")));
        assert!(e.is_match(Path::new("/a.log")));
        assert!(e.is_match(Path::new("/var/vmail/x/cur/1.tmp")));
        assert!(!e.is_match(Path::new("/var/vmail/x/new/1.tmp")));
        assert!(e.is_match(Path::new("/var/cache")));
        assert!(!e.is_match(Path::new("/srv/var/cache")));
        assert!(e.is_match(Path::new("/etc/a/b/secret")));
        assert!(!e.is_match(Path::new("/etc/a/b/secret.txt")));
        assert!(!Patterns::new(&[]).unwrap().is_match(Path::new("/x")));
        assert!(Patterns::new(&["[".into()]).is_err());
    }
}

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

/// Pack buffers, reused once their pack is written: a fresh 16 MiB buffer costs 4,096 page
/// faults, which on a virtual machine cost more than filling it.
struct PackBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    /// Bytes allocated per buffer: the pack size and room for a header (see [`PackWriter::fits`]).
    capacity: usize,
}

impl PackBuffers {
    /// Buffers kept for reuse at most; more are freed.
    const KEEP: usize = 4;

    fn new(pack_size: usize) -> Self {
        PackBuffers { free: Mutex::new(Vec::new()), capacity: pack_size + pack_size / 16 }
    }

    fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    fn give(&self, mut buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < Self::KEEP && buf.capacity() >= self.capacity {
            buf.clear();
            free.push(buf);
        }
    }
}

thread_local! {
    /// Each thread's buffer for a framed (compressed) blob, kept for reuse.
    static FRAMED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Uploads finished packs on `connections` threads, so the workers that fill packs do not
/// wait for each upload and memory stays bounded (at most `connections` packs being uploaded,
/// plus one waiting per worker). A pack enters `uploaded` only once its write returned: index
/// files are made from that list, which keeps the order packs → index.
struct Uploader {
    tx: Option<crossbeam_channel::Sender<FinishedPack>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    uploaded: Arc<Mutex<Vec<IndexPack>>>,
    /// The first upload error, until reported.
    failed: Arc<Mutex<Option<Error>>>,
    /// Set for good once any upload failed.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Uploader {
    fn start(
        backend: Arc<dyn crate::backend::Backend>,
        connections: usize,
        dry_run: bool,
        buffers: Arc<PackBuffers>,
    ) -> Self {
        // A hand-over queue: a finished pack waits in its worker until an uploader takes it.
        let (tx, rx) = crossbeam_channel::bounded::<FinishedPack>(0);
        let uploaded = Arc::new(Mutex::new(Vec::new()));
        let failed: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..connections)
            .map(|_| {
                let (rx, backend, uploaded, failed, stopped, buffers) =
                    (rx.clone(), backend.clone(), uploaded.clone(), failed.clone(), stopped.clone(), buffers.clone());
                std::thread::spawn(move || {
                    for done in rx {
                        // After a failure the queue is drained without uploading: the backup stops.
                        if stopped.load(Ordering::SeqCst) {
                            continue;
                        }
                        let name = done.id.to_hex();
                        let r = match done.staged {
                            Some(file) if !dry_run => file.commit(&name),
                            _ if dry_run => Ok(()),
                            _ => backend.write(FileKind::Pack, &name, &done.bytes),
                        };
                        let size = done.size;
                        buffers.give(done.bytes);
                        match r {
                            Ok(()) => uploaded.lock().unwrap_or_else(|p| p.into_inner()).push(IndexPack {
                                id: done.id,
                                salt: done.salt,
                                size,
                                blobs: done.entries,
                            }),
                            Err(e) => {
                                stopped.store(true, Ordering::SeqCst);
                                failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e.into());
                            }
                        }
                    }
                })
            })
            .collect();
        Uploader { tx: Some(tx), threads, uploaded, failed, stopped }
    }

    /// The upload error, once; after it, an error that says an upload failed earlier.
    fn check(&self) -> Result<()> {
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Error::InvalidInput("stopped: an earlier pack upload failed".into()));
        }
        Ok(())
    }

    /// Close the queue and wait for every upload to end.
    fn finish(&mut self) -> Result<()> {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check()
    }

    fn take_uploaded(&self, at_least: usize) -> Vec<IndexPack> {
        let mut u = self.uploaded.lock().unwrap_or_else(|p| p.into_inner());
        if u.len() >= at_least.max(1) {
            std::mem::take(&mut *u)
        } else {
            Vec::new()
        }
    }
}

/// Deduplicates blobs against the index and packs new ones. Shared by all worker threads.
pub struct Saver<'r> {
    repo: &'r Repository,
    index: &'r Index,
    dry_run: bool,
    level: i32,
    /// Blobs saved or being saved by this run.
    pending: Mutex<HashSet<BlobId>>,
    open: Mutex<OpenPacks>,
    buffers: Arc<PackBuffers>,
    uploader: Mutex<Uploader>,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    progress: &'r Progress,
    lock: Option<Arc<crate::lock::RepoLock>>,
    /// Read back each indexed data blob before reusing it, storing a fresh copy when every
    /// indexed copy is damaged (`backup --force`).
    verify_indexed: bool,
}

impl<'r> Saver<'r> {
    /// A saver adding to `repo`, deduplicating against `index`, uploading packs on
    /// `connections` threads (at least 1).
    pub fn new(
        repo: &'r Repository,
        index: &'r Index,
        dry_run: bool,
        connections: usize,
        progress: &'r Progress,
    ) -> Self {
        let buffers = Arc::new(PackBuffers::new(repo.config().pack_size as usize));
        Saver {
            repo,
            index,
            dry_run,
            level: repo.config().compression_level,
            pending: Mutex::new(HashSet::new()),
            open: Mutex::new(OpenPacks::default()),
            uploader: Mutex::new(Uploader::start(repo.backend().clone(), connections.max(1), dry_run, buffers.clone())),
            buffers,
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            data_added: AtomicU64::new(0),
            data_added_packed: AtomicU64::new(0),
            progress,
            lock: None,
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

    /// Check `lock` before every index file is written: a backup whose lock was lost must not
    /// index packs that a prune may have deleted meanwhile.
    pub fn set_lock(&mut self, lock: Option<Arc<crate::lock::RepoLock>>) {
        self.lock = lock;
    }

    fn open_packs(&self) -> std::sync::MutexGuard<'_, OpenPacks> {
        // A panic in another thread cannot leave the state half-updated in a way that matters
        // here: a pack is whole before and after each append.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `data` as a blob of `blob_type` unless the repository (or this run) has it.
    /// Returns its id. Errors: backend failures writing a pack or index.
    pub fn save_blob(&self, blob_type: BlobType, data: &[u8]) -> Result<BlobId> {
        let id = self.repo.master().blob_id(data);
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
        let raw_length = u32::try_from(data.len()).map_err(|_| Error::InvalidInput("blob over 4 GiB".into()))?;
        // Compress into this thread's buffer (taken out of its cell while in use).
        let mut framed = FRAMED.with(|cell| cell.take());
        let need = blob::framed_bound(data.len());
        if framed.len() < need {
            framed.resize(need, 0);
        }
        let result = match blob::compress_into(data, self.level, &mut framed).and_then(|n| framed.get_mut(..n)) {
            Some(f) => self.append(blob_type, id, f, raw_length),
            None => Err(Error::InvalidInput("compression buffer too small".into())),
        };
        FRAMED.with(|cell| cell.replace(framed));
        result.map(|()| id)
    }

    /// A new pack: staged in the backend where it can be (written as it grows), else in a
    /// reused buffer.
    fn new_pack(&self, blob_type: BlobType) -> Result<PackWriter> {
        let staged = if self.dry_run { None } else { self.repo.backend().stage(FileKind::Pack)? };
        match staged {
            Some(file) => PackWriter::staged(self.repo.master(), blob_type, file),
            None => Ok(PackWriter::with_buffer(self.repo.master(), blob_type, self.buffers.take())),
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
        tx.ok_or_else(|| Error::InvalidInput("uploads already finished".into()))?
            .send(done)
            .map_err(|_| Error::InvalidInput("the upload threads stopped".into()))
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
        if let Some(lock) = &self.lock {
            lock.check()?;
        }
        self.repo.write_index(&IndexFile { packs, supersedes: Vec::new() })?;
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

    fn fill_summary(&self, s: &mut Summary) {
        s.data_blobs = self.data_blobs.load(Ordering::Relaxed);
        s.tree_blobs = self.tree_blobs.load(Ordering::Relaxed);
        s.data_added = self.data_added.load(Ordering::Relaxed);
        s.data_added_packed = self.data_added_packed.load(Ordering::Relaxed);
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
            check_interrupted().map_err(StreamError::Repo)?;
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
            s.spawn(move || read_segments(r, head, &reader_pool, &seg_tx));
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
                    Err(_) => {
                        saver_error =
                            saver_error.or(Some(Error::InvalidInput("a backup worker thread panicked".into())))
                    }
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
            check_interrupted().map_err(StreamError::Repo)?;
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
        check_interrupted().map_err(StreamError::Repo)?;
        Ok(total)
    }
}

/// The head of a stream segment, bytes: room for the bytes after the previous segment's last
/// cut (less than one largest chunk), block-aligned so that the body after it is.
fn segment_head(chunker: &Chunker) -> usize {
    crate::direct_io::round_up(chunker.params().max_size as usize)
}

/// A segment's buffer with its body read: stream bytes are `buf[head..end]`.
struct Filled {
    buf: AlignedBuf,
    end: usize,
    /// The stream ended in this segment.
    eof: bool,
}

/// Read `r` into the bodies of segments (buffers from `pool`, else new) and send them until
/// the stream ends, an error (sent too), or the receiver hangs up. Runs on a thread of its
/// own, so that reading the next segment (a wait for the disk with direct reads) overlaps
/// cutting this one.
fn read_segments(
    r: &mut (dyn Read + Send),
    head: usize,
    pool: &Mutex<Vec<AlignedBuf>>,
    out: &crossbeam_channel::Sender<std::io::Result<Filled>>,
) {
    use crate::direct_io::round_up;
    let len = head + round_up((2 * head).max(4 << 20));
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return;
        }
        let spare = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut buf = spare.filter(|b| b.len() >= len).unwrap_or_else(|| AlignedBuf::new(len));
        let mut end = head;
        let Some(body) = buf.as_mut_slice().get_mut(..len) else {
            let e = Error::Internal(format!("stream segment buffer of {} bytes is shorter than {len}", buf.len()));
            let _ = out.send(Err(std::io::Error::other(e)));
            return;
        };
        let filled = fill(r, body, &mut end).map(|eof| Filled { buf, end, eof });
        let stop = !matches!(filled, Ok(Filled { eof: false, .. }));
        if out.send(filled).is_err() || stop {
            return;
        }
    }
}

/// Read into `buf[*filled..]` until it is full or the stream ends (returns true at the end).
fn fill(r: &mut dyn Read, buf: &mut [u8], filled: &mut usize) -> std::io::Result<bool> {
    while let Some(dst) = buf.get_mut(*filled..).filter(|d| !d.is_empty()) {
        match r.read(dst) {
            Ok(0) => return Ok(true),
            Ok(n) => *filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// A piece of a stream, shared by the chunks cut from it; its buffer goes back to the pool
/// when the last of them is saved.
struct Segment {
    bytes: AlignedBuf,
    pool: Arc<Mutex<Vec<AlignedBuf>>>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        // The producer takes one back per segment: a few spare are enough.
        if pool.len() < 4 {
            pool.push(std::mem::replace(&mut self.bytes, AlignedBuf::empty()));
        }
    }
}

/// The `seq`-th chunk of a stream: `range` of a segment.
struct SegmentChunk {
    seq: usize,
    segment: Arc<Segment>,
    range: std::ops::Range<usize>,
}

impl SegmentChunk {
    /// The chunk's bytes. Errors: [`Error::Internal`] when the range is outside the segment.
    fn bytes(&self) -> Result<&[u8]> {
        let (r, len) = (&self.range, self.segment.bytes.len());
        self.segment.bytes.as_slice().get(r.clone()).ok_or_else(|| {
            Error::Internal(format!("chunk bytes {}..{} are outside its {len}-byte segment", r.start, r.end))
        })
    }
}

/// Read into `buf[*filled..]` until `window` bytes are there or the stream ends (returns
/// true at the end). The buffer doubles as needed, starting at `first` bytes.
fn fill_growing(
    r: &mut dyn Read,
    buf: &mut Vec<u8>,
    filled: &mut usize,
    window: usize,
    first: usize,
) -> std::io::Result<bool> {
    while *filled < window {
        if *filled == buf.len() {
            let len = if buf.is_empty() { first } else { (buf.len() * 2).min(window) };
            buf.resize(len, 0);
        }
        match r.read(&mut buf[*filled..]) {
            Ok(0) => return Ok(true),
            Ok(n) => *filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// A failure while saving a stream: the source's fault or the repository's.
#[derive(Debug)]
pub enum StreamError {
    /// Reading the source failed (the file is skipped and reported).
    Source(std::io::Error),
    /// Writing to the repository failed (fatal).
    Repo(Error),
}

struct Walker<'a> {
    saver: &'a Saver<'a>,
    chunker: Chunker,
    excludes: Patterns,
    one_fs: bool,
    ignore_ctime: bool,
    ignore_inode: bool,
    /// The parent snapshot was written by a cairn that stores extended attributes, so a parent
    /// node without any means the entry had none ([`crate::xattrs::reusable`]).
    parent_stores_xattrs: bool,
    names: Mutex<OwnerNames>,
    errors: Mutex<Vec<(PathBuf, String)>>,
    counts: Counts,
    prefetch: Option<Prefetcher>,
    /// Sources saved (a directory counts even when some entries below it failed).
    sources_read: AtomicU64,
    /// With `one_fs`: the devices of the sources as given, whose directories are entered.
    source_devs: Vec<u64>,
}

/// Asks the kernel to start reading the files the walk will read next (`posix_fadvise`
/// `WILLNEED`), from threads of its own, so that on a cold page cache many reads are under
/// way at once instead of one per worker. Only files with no entry in the parent snapshot are
/// hinted (a nightly run reads few files, and those under a known name are mostly unchanged),
/// and only those read through the page cache (below [`DIRECT_READ_MIN`]). Advisory only: any
/// failure is ignored, and a full queue skips prefetching rather than slowing the walk.
struct Prefetcher {
    tx: crossbeam_channel::Sender<PathBuf>,
}

impl Prefetcher {
    const DEPTH: usize = 4096;

    /// Number of prefetch threads: opening a file whose inode is not cached waits for the
    /// disk, so several threads keep more of those reads under way.
    const THREADS: usize = 4;

    fn start() -> Option<(Prefetcher, Vec<std::thread::JoinHandle<()>>)> {
        let (tx, rx) = crossbeam_channel::bounded::<PathBuf>(Self::DEPTH);
        let mut handles = Vec::new();
        for i in 0..Self::THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("cairn-prefetch-{i}")).spawn(move || {
                for path in rx {
                    // Never through a symbolic link, never waiting on a FIFO: the path may
                    // have been replaced since it was listed.
                    let Ok((f, _)) = crate::direct_io::open_no_follow(&path, false) else { continue };
                    // Large files are read past the page cache: reading them ahead into it
                    // would read them twice.
                    if f.metadata().is_ok_and(|m| m.is_file() && m.len() < DIRECT_READ_MIN) {
                        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
                        let _ =
                            nix::fcntl::posix_fadvise(fd, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED);
                    }
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) if !handles.is_empty() => break,
                Err(_) => return None,
            }
        }
        Some((Prefetcher { tx }, handles))
    }

    fn hint(&self, path: PathBuf) {
        let _ = self.tx.try_send(path);
    }
}

/// A source file being read: from [`DIRECT_READ_MIN`] bytes past the page cache, smaller ones
/// through it (read ahead by the [`Prefetcher`]).
enum SourceFile {
    Direct(crate::direct_io::DirectReader),
    Cached(fs::File),
}

impl SourceFile {
    /// Open the regular file the walk stat'ed at `path` (`md`: its `lstat`), only if the path
    /// still names that file: never through a symbolic link, never waiting on a FIFO (see
    /// [`crate::direct_io::open_regular`]). Errors: a
    /// [`crate::direct_io::FileChanged`] inside the [`std::io::Error`] when the path changed.
    fn open(path: &Path, md: &fs::Metadata) -> std::io::Result<Self> {
        let expected = (md.dev(), md.ino());
        if md.len() >= DIRECT_READ_MIN {
            crate::direct_io::DirectReader::open_regular(path, md.len(), expected).map(SourceFile::Direct)
        } else {
            crate::direct_io::open_regular(path, false, expected).map(|(f, _)| SourceFile::Cached(f))
        }
    }

    /// How a failed [`SourceFile::open`] is reported for the file.
    fn open_error(e: &std::io::Error) -> String {
        match e.get_ref().and_then(|i| i.downcast_ref::<crate::direct_io::FileChanged>()) {
            Some(changed) => changed.to_string(),
            None => format!("cannot open: {e}"),
        }
    }

    /// Once read, drop the file's pages from the page cache (`POSIX_FADV_DONTNEED`, as borg
    /// does): a backup reads each file once, and the memory is the server's. Pages another
    /// process maps stay. Advisory: a failure is ignored.
    fn release(&self) {
        if let SourceFile::Cached(f) = self {
            let _ = nix::fcntl::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(f),
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
    }
}

impl Read for SourceFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            SourceFile::Direct(r) => r.read(buf),
            SourceFile::Cached(f) => f.read(buf),
        }
    }
}

#[cfg(test)]
mod source_file_tests {
    use super::*;

    /// `SourceFile::open` on `path` expecting the file `md` describes, on a thread: fails the
    /// test instead of hanging when the open blocks.
    fn open_in_time(path: &Path, md: fs::Metadata) -> std::io::Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let r = SourceFile::open(&path, &md).and_then(|mut f| {
                let mut v = Vec::new();
                f.read_to_end(&mut v).map(|_| v)
            });
            let _ = tx.send(r);
        });
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("opening the source file blocked")
    }

    fn changed_to(r: std::io::Result<Vec<u8>>) -> String {
        let e = r.expect_err("a changed path was read");
        let msg = SourceFile::open_error(&e);
        assert!(msg.starts_with("changed during backup"), "{msg}");
        msg
    }

    /// Each size takes its own open path: cached below `DIRECT_READ_MIN`, direct from it.
    #[test]
    fn a_file_replaced_after_its_stat_is_not_read() {
        for size in [1000usize, DIRECT_READ_MIN as usize + 1000] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let content = vec![7u8; size];
            fs::write(&path, &content).unwrap();
            let md = fs::symlink_metadata(&path).unwrap();
            assert_eq!(open_in_time(&path, md.clone()).unwrap(), content);

            // Swapped for a symbolic link to a file with a secret: not followed.
            let secret = dir.path().join("secret");
            fs::write(&secret, b"secret").unwrap();
            fs::rename(&path, dir.path().join("old")).unwrap();
            std::os::unix::fs::symlink(&secret, &path).unwrap();
            assert!(changed_to(open_in_time(&path, md.clone())).contains("symbolic link"));

            // Swapped for a FIFO nobody writes to: neither blocks nor is read.
            fs::remove_file(&path).unwrap();
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            assert!(changed_to(open_in_time(&path, md.clone())).contains("FIFO"));

            // Swapped for another regular file (another inode).
            fs::remove_file(&path).unwrap();
            fs::write(&path, &content).unwrap();
            assert!(changed_to(open_in_time(&path, md.clone())).contains("another file"));

            // Swapped for a directory.
            fs::remove_file(&path).unwrap();
            fs::create_dir(&path).unwrap();
            assert!(changed_to(open_in_time(&path, md)).contains("directory"));
        }
    }
}

/// Files and directories new, changed and unchanged against the parent; content bytes.
#[derive(Default)]
struct Counts {
    files: [AtomicU64; 3],
    dirs: [AtomicU64; 3],
    bytes: AtomicU64,
}

const NEW: usize = 0;
const CHANGED: usize = 1;
const UNCHANGED: usize = 2;

// Directory levels below a source saved in parallel on the call stack; deeper ones are saved
// by [`Walker::save_dir_deep`] with a stack of its own (a tree of any depth backs up).
use crate::walker::PARALLEL_DEPTH;

/// A directory being saved by [`Walker::save_dir_deep`].
struct DeepDir {
    /// Its path.
    path: PathBuf,
    /// Its own node (subtree still unset) and its node in the parent snapshot; `None` for the
    /// directory the deep walk started at.
    node: Option<(Node, Option<Node>)>,
    /// Its entries saved so far.
    nodes: Vec<Node>,
    /// Its subdirectories still to save, with their nodes in the parent snapshot.
    subdirs: Vec<(Node, Option<Node>)>,
}

/// The entry called `name` in a parent tree (sorted by name).
fn find<'t>(tree: Option<&'t Tree>, name: &[u8]) -> Option<&'t Node> {
    let nodes = &tree?.nodes;
    nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().and_then(|i| nodes.get(i))
}

impl Walker<'_> {
    fn report(&self, path: &Path, msg: String) {
        self.saver.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push((path.to_path_buf(), msg));
    }

    fn node(&self, name: Vec<u8>, md: &fs::Metadata) -> Node {
        Node::from_metadata(name, md, &mut self.names.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The extended attributes of the entry at `path` (`node` its lstat): the parent's when
    /// [`crate::xattrs::reusable`], else read; a failure is reported and the entry kept.
    fn xattrs(&self, path: &Path, node: &Node, parent: Option<&Node>) -> Vec<crate::tree::Xattr> {
        if let Some(p) = parent.filter(|p| {
            crate::xattrs::reusable(p, node, self.ignore_ctime, self.ignore_inode, self.parent_stores_xattrs)
        }) {
            return p.xattrs.clone();
        }
        let (xattrs, failures) = crate::xattrs::read(path);
        for f in failures {
            self.report(path, f);
        }
        xattrs
    }

    fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.sort();
        self.saver.save_blob(BlobType::Tree, &tree.encode()?)
    }

    /// The parent's tree for a directory node, if it has one that can be read (a damaged
    /// parent tree only costs reading the files again).
    fn parent_tree(&self, parent: Option<&Node>) -> Option<Tree> {
        let id = parent.filter(|p| p.kind == NodeKind::Dir)?.subtree?;
        self.saver.repo.load_tree(self.saver.index, &id).ok()
    }

    /// A file is unchanged when its size, mtime, ctime and inode (restic's test) match the
    /// parent's node and all its content is still in the index.
    fn unchanged(&self, parent: &Node, node: &Node) -> bool {
        parent.kind == NodeKind::File
            && parent.size == node.size
            && parent.mtime == node.mtime
            && (self.ignore_ctime || parent.ctime == node.ctime)
            && (self.ignore_inode || parent.inode == node.inode)
            && parent.content.iter().all(|id| self.saver.index.contains(id))
    }

    fn count_file(&self, which: usize, size: u64) {
        self.counts.files[which].fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(size, Ordering::Relaxed);
        self.saver.progress.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a directory saved as tree `id` against its node in the parent snapshot.
    fn count_dir(&self, parent: Option<&Node>, id: BlobId) {
        let which = match parent.filter(|p| p.kind == NodeKind::Dir) {
            Some(p) if p.subtree == Some(id) => UNCHANGED,
            Some(_) => CHANGED,
            None => NEW,
        };
        self.counts.dirs[which].fetch_add(1, Ordering::Relaxed);
    }

    /// Save one entry found at `path`, `depth` directories below the source it belongs to;
    /// `Ok(None)` when it is skipped (excluded or unreadable, the latter reported). From
    /// [`PARALLEL_DEPTH`] on, a directory's node comes back without its subtree, for the
    /// caller ([`Walker::save_dir_deep`]) to save its entries.
    fn save_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        root_dev: u64,
        parent: Option<&Node>,
        depth: usize,
    ) -> Result<Option<Node>> {
        check_interrupted()?;
        if self.excludes.is_match(path) {
            return Ok(None);
        }
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.report(path, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let mut node = self.node(name, &md);
        node.xattrs = self.xattrs(path, &node, parent);
        match node.kind {
            NodeKind::File => {
                if let Some(p) = parent.filter(|p| self.unchanged(p, &node)) {
                    node.content = p.content.clone();
                    self.count_file(UNCHANGED, node.size);
                    self.saver.progress.bytes.fetch_add(node.size, Ordering::Relaxed);
                    return Ok(Some(node));
                }
                let mut f = match SourceFile::open(path, &md) {
                    Ok(f) => f,
                    Err(e) => {
                        self.report(path, SourceFile::open_error(&e));
                        return Ok(None);
                    }
                };
                let saved = self.saver.save_stream(&self.chunker, &mut f, md.len());
                f.release();
                match saved {
                    Ok((ids, size)) => {
                        node.content = ids;
                        node.size = size;
                        let was_file = parent.is_some_and(|p| p.kind == NodeKind::File);
                        self.count_file(if was_file { CHANGED } else { NEW }, size);
                    }
                    Err(StreamError::Source(e)) => {
                        self.report(path, format!("cannot read: {e}"));
                        return Ok(None);
                    }
                    Err(StreamError::Repo(e)) => return Err(e),
                }
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => {
                    use std::os::unix::ffi::OsStrExt;
                    node.symlink_target = t.as_os_str().as_bytes().to_vec();
                }
                Err(e) => {
                    self.report(path, format!("cannot read symlink: {e}"));
                    return Ok(None);
                }
            },
            NodeKind::Dir => {
                if self.is_other_file_system(md.dev(), root_dev) {
                    // A mount point below a source: kept, empty (restic does the same).
                    node.subtree = Some(self.save_tree(Tree::default())?);
                    return Ok(Some(node));
                }
                if depth >= PARALLEL_DEPTH {
                    // Its entries are saved by save_dir_deep, from a stack of its own.
                    return Ok(Some(node));
                }
                let ptree = self.parent_tree(parent);
                match self.save_dir(path, root_dev, ptree.as_ref(), depth + 1)? {
                    Some(id) => {
                        self.count_dir(parent, id);
                        node.subtree = Some(id);
                    }
                    None => return Ok(None),
                }
            }
            _ => {}
        }
        Ok(Some(node))
    }

    /// Save a directory's entries and its tree blob; `Ok(None)` when it cannot be listed.
    /// `parent`: the same directory in the parent snapshot. `depth`: directories between the
    /// source and this one; from [`PARALLEL_DEPTH`] on the rest is saved by
    /// [`Walker::save_dir_deep`] (the call stack only ever holds that many levels).
    fn save_dir(&self, path: &Path, root_dev: u64, parent: Option<&Tree>, depth: usize) -> Result<Option<BlobId>> {
        use std::os::unix::ffi::OsStrExt;
        if depth >= PARALLEL_DEPTH {
            return self.save_dir_deep(path, root_dev, parent);
        }
        let Some(names) = self.list_dir(path, parent) else { return Ok(None) };
        let nodes: Result<Vec<Option<Node>>> = names
            .par_iter()
            .map(|n| self.save_entry(&path.join(n), n.as_bytes().to_vec(), root_dev, find(parent, n.as_bytes()), depth))
            .collect();
        let tree = Tree { nodes: nodes?.into_iter().flatten().collect() };
        Ok(Some(self.save_tree(tree)?))
    }

    /// The entry names of directory `path`, sorted; files not in `parent` (the same directory
    /// in the parent snapshot) are handed to the prefetcher. `None` when it cannot be listed
    /// (reported).
    fn list_dir(&self, path: &Path, parent: Option<&Tree>) -> Option<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.report(path, format!("cannot list directory: {e}"));
                return None;
            }
        };
        let mut names = Vec::new();
        let mut files = Vec::new();
        for e in rd {
            match e {
                Ok(e) => {
                    // The type comes from the directory entry itself (no stat).
                    if e.file_type().is_ok_and(|t| t.is_file()) {
                        files.push(e.file_name());
                    }
                    names.push(e.file_name());
                }
                Err(e) => self.report(path, format!("error while listing directory: {e}")),
            }
        }
        names.sort();
        if let Some(p) = &self.prefetch {
            files.sort();
            for n in files.iter().filter(|n| find(parent, n.as_bytes()).is_none()) {
                p.hint(path.join(n));
            }
        }
        Some(names)
    }

    /// [`Walker::save_dir`] for the levels from [`PARALLEL_DEPTH`] down, without recursion:
    /// a stack of directories being saved, one per level. Each directory's entries are saved
    /// in parallel ([`Walker::save_entry`] returns subdirectories unsaved); its subdirectories
    /// are then saved one after the other, each before its parent's tree. The trees are the
    /// ones [`Walker::save_dir`] makes.
    fn save_dir_deep(&self, path: &Path, root_dev: u64, parent: Option<&Tree>) -> Result<Option<BlobId>> {
        let Some(first) = self.open_deep_dir(path.to_path_buf(), None, root_dev, parent)? else { return Ok(None) };
        let mut stack = vec![first];
        loop {
            let Some(top) = stack.last_mut() else { return Ok(None) };
            if let Some((node, pnode)) = top.subdirs.pop() {
                use std::os::unix::ffi::OsStrExt;
                let sub_path = top.path.join(std::ffi::OsStr::from_bytes(&node.name));
                let ptree = self.parent_tree(pnode.as_ref());
                // A directory that cannot be listed is left out (reported), as save_dir does.
                if let Some(dir) = self.open_deep_dir(sub_path, Some((node, pnode)), root_dev, ptree.as_ref())? {
                    stack.push(dir);
                }
                continue;
            }
            let Some(done) = stack.pop() else { return Ok(None) };
            let id = self.save_tree(Tree { nodes: done.nodes })?;
            let (Some(up), Some((mut node, pnode))) = (stack.last_mut(), done.node) else { return Ok(Some(id)) };
            self.count_dir(pnode.as_ref(), id);
            node.subtree = Some(id);
            up.nodes.push(node);
        }
    }

    /// List directory `path` and save its entries but its subdirectories (see
    /// [`Walker::save_dir_deep`]); `node`: its own node and its node in the parent snapshot.
    /// `Ok(None)` when it cannot be listed.
    fn open_deep_dir(
        &self,
        path: PathBuf,
        node: Option<(Node, Option<Node>)>,
        root_dev: u64,
        parent: Option<&Tree>,
    ) -> Result<Option<DeepDir>> {
        use std::os::unix::ffi::OsStrExt;
        let Some(names) = self.list_dir(&path, parent) else { return Ok(None) };
        let saved: Result<Vec<Option<Node>>> = names
            .par_iter()
            .map(|n| {
                self.save_entry(
                    &path.join(n),
                    n.as_bytes().to_vec(),
                    root_dev,
                    find(parent, n.as_bytes()),
                    PARALLEL_DEPTH,
                )
            })
            .collect();
        let mut nodes = Vec::new();
        let mut subdirs = Vec::new();
        for n in saved?.into_iter().flatten() {
            if n.kind == NodeKind::Dir && n.subtree.is_none() {
                let pnode = find(parent, &n.name).cloned();
                subdirs.push((n, pnode));
            } else {
                nodes.push(n);
            }
        }
        Ok(Some(DeepDir { path, node, nodes, subdirs }))
    }

    /// True when a directory on device `dev` below a source on `root_dev` is on another file
    /// system that one-file-system mode does not enter: not the source's, nor that of any
    /// source given (restic's rule, so `-x / /boot` keeps `/boot`).
    fn is_other_file_system(&self, dev: u64, root_dev: u64) -> bool {
        self.one_fs && dev != root_dev && !self.source_devs.contains(&dev)
    }

    /// The error of a walk that read no source: [`Error::NoSourceRead`] with the failures
    /// reported so far.
    fn no_source_read(&self) -> Error {
        Error::NoSourceRead { failed: self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone() }
    }

    /// Back up the directory `/` itself (the source `/`): its entries are the snapshot's root
    /// tree. Returns that tree's id; `None` when `/` cannot be listed (reported).
    fn save_root(&self, parent: Option<&Tree>) -> Result<Option<BlobId>> {
        let root = Path::new("/");
        let dev = match fs::symlink_metadata(root) {
            Ok(m) => m.dev(),
            Err(e) => {
                self.report(root, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let id = self.save_dir(root, dev, parent, 0)?;
        if id.is_some() {
            self.sources_read.fetch_add(1, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// Build the tree for the sources, mirroring their absolute paths from `/`.
    /// `prefix` is the directory whose entries are built; `sources` are relative to it.
    /// A stack of its own holds one directory per level of the source paths (no recursion).
    fn save_virtual(&self, prefix: &Path, sources: &[Vec<Vec<u8>>], parent: Option<&Tree>) -> Result<Tree> {
        use std::os::unix::ffi::OsStrExt;
        /// A directory on the way to the sources: `members` index `sources`, whose component
        /// `level` names its entries; `node`: its own node (none for `prefix`).
        struct Frame {
            path: PathBuf,
            level: usize,
            members: Vec<usize>,
            firsts: std::vec::IntoIter<Vec<u8>>,
            ptree: Option<Tree>,
            nodes: Vec<Node>,
            node: Option<Node>,
        }
        let frame = |path: PathBuf, level: usize, members: Vec<usize>, ptree: Option<Tree>, node: Option<Node>| {
            let mut firsts: Vec<Vec<u8>> =
                members.iter().filter_map(|&i| sources.get(i)?.get(level).cloned()).collect();
            firsts.sort();
            firsts.dedup();
            Frame { path, level, members, firsts: firsts.into_iter(), ptree, nodes: Vec::new(), node }
        };
        let mut stack = vec![frame(prefix.to_path_buf(), 0, (0..sources.len()).collect(), parent.cloned(), None)];
        loop {
            let Some(top) = stack.last_mut() else { return Ok(Tree::default()) };
            let Some(first) = top.firsts.next() else {
                let Some(done) = stack.pop() else { return Ok(Tree::default()) };
                let tree = Tree { nodes: done.nodes };
                let (Some(up), Some(mut node)) = (stack.last_mut(), done.node) else { return Ok(tree) };
                if tree.nodes.is_empty() {
                    // No source below it could be read: not recorded.
                    continue;
                }
                node.subtree = Some(self.save_tree(tree)?);
                up.nodes.push(node);
                continue;
            };
            let path = top.path.join(std::ffi::OsStr::from_bytes(&first));
            let level = top.level;
            let members: Vec<usize> = top
                .members
                .iter()
                .copied()
                .filter(|&i| sources.get(i).and_then(|s| s.get(level)) == Some(&first))
                .collect();
            if members.iter().any(|&i| sources.get(i).is_some_and(|s| s.len() == level + 1)) {
                // This component is itself a source: back it up whole.
                let dev = fs::symlink_metadata(&path).map(|m| m.dev()).unwrap_or(0);
                if let Some(n) = self.save_entry(&path, first.clone(), dev, find(top.ptree.as_ref(), &first), 0)? {
                    top.nodes.push(n);
                    self.sources_read.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                // A directory on the way to a source: a symbolic link here is followed (the
                // source `/srv/mail` with `/srv -> /data/srv` is backed up as `/srv/mail`).
                let md = match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.report(&path, format!("cannot stat: {e}"));
                        continue;
                    }
                };
                let mut node = self.node(first.clone(), &md);
                node.xattrs = self.xattrs(&path, &node, find(top.ptree.as_ref(), &first));
                if node.kind != NodeKind::Dir {
                    self.report(&path, "is not a directory".into());
                    continue;
                }
                let ptree = self.parent_tree(find(top.ptree.as_ref(), &first));
                stack.push(frame(path, level + 1, members, ptree, Some(node)));
            }
        }
    }
}

/// Turn user paths into absolute, normalised component lists, dropping any path inside
/// another. Errors on a path that cannot be made absolute.
fn normalise_sources(paths: &[PathBuf]) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
    let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for p in paths {
        let comps = absolute_components(p)?;
        let shown =
            format!("/{}", comps.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("/"));
        out.push((shown, comps));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    let all = out.clone();
    out.retain(|(_, c)| !all.iter().any(|(_, o)| o.len() < c.len() && c.starts_with(o)));
    Ok(out)
}

/// `path` made absolute, as its components from `/` (`..` removes the one before it; `/` is
/// none). Errors: [`Error::Io`] when the current directory is needed and unknown.
fn absolute_components(path: &Path) -> Result<Components> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut comps: Components = Vec::new();
    for c in abs.components() {
        match c {
            Component::Normal(n) => comps.push(n.as_bytes().to_vec()),
            Component::ParentDir => {
                comps.pop();
            }
            _ => {}
        }
    }
    Ok(comps)
}

/// A path from its components below `/`.
fn components_path(comps: &[Vec<u8>]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut path = PathBuf::from("/");
    path.extend(comps.iter().map(|c| std::ffi::OsStr::from_bytes(c)));
    path
}

/// The devices of the source paths as given (those that can be stat'ed), nested ones
/// included: one-file-system mode enters the directories on them.
fn source_devices(paths: &[PathBuf]) -> Vec<u64> {
    let mut devs: Vec<u64> = paths
        .iter()
        .filter_map(|p| absolute_components(p).ok())
        .filter_map(|c| fs::symlink_metadata(components_path(&c)).ok())
        .map(|m| m.dev())
        .collect();
    devs.sort_unstable();
    devs.dedup();
    devs
}

/// Check, before anything is written, that at least one source (`comps`: each one's components
/// from `/`) can be read as the walk will read it: every directory on its way is a directory
/// (or a symbolic link to one), the source can be stat'ed, and a directory can be listed.
/// Errors: [`Error::NoSourceRead`] naming each source and why, when none passes.
fn probe_sources(comps: &[Components]) -> Result<()> {
    let mut failed = Vec::new();
    for c in comps {
        match probe_source(c) {
            Ok(()) => return Ok(()),
            Err(f) => failed.push(f),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::NoSourceRead { failed })
    }
}

/// One source of [`probe_sources`]: on failure the source's path and why (naming the directory
/// on its way that failed, if one did).
fn probe_source(comps: &[Vec<u8>]) -> std::result::Result<(), (PathBuf, String)> {
    use std::os::unix::ffi::OsStrExt;
    let path = components_path(comps);
    let mut dir = PathBuf::from("/");
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        dir.push(std::ffi::OsStr::from_bytes(c));
        // A symbolic link on the way to a source is followed (`/srv -> /data/srv`), as the
        // walk follows it.
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err((path, format!("{} is not a directory", dir.display()))),
            Err(e) => return Err((path, format!("cannot stat {}: {e}", dir.display()))),
        }
    }
    let md = fs::symlink_metadata(&path).map_err(|e| (path.clone(), format!("cannot stat: {e}")))?;
    if md.is_dir() {
        fs::read_dir(&path).map_err(|e| (path.clone(), format!("cannot list directory: {e}")))?;
    }
    Ok(())
}

/// The parent snapshot a backup compares with: its id and root tree.
struct Parent {
    id: SnapshotId,
    root: Tree,
    /// Written by a cairn that stores extended attributes ([`crate::xattrs::stored_by`]).
    stores_xattrs: bool,
}

/// The parent snapshot and its root tree. A parent whose root tree cannot be read (its pack
/// deleted or damaged) is not used: the backup goes on without one, reading every file, and the
/// returned warning names the snapshot and why. Errors: those of [`find_parent`].
fn load_parent(
    repo: &Repository,
    index: &Index,
    choice: ParentChoice,
    host: &str,
    paths: &[String],
) -> Result<(Option<Parent>, Option<String>)> {
    let Some((id, snapshot)) = find_parent(repo, choice, host, paths)? else { return Ok((None, None)) };
    match repo.load_tree(index, &snapshot.tree) {
        Ok(root) => Ok((Some(Parent { id, root, stores_xattrs: crate::xattrs::stored_by(&snapshot.program_version) }), None)),
        Err(e) => Ok((
            None,
            Some(format!(
                "parent snapshot {} is not used: its root tree {} cannot be read ({e}); backing up without a parent (every file is read)",
                id.short(),
                snapshot.tree.short()
            )),
        )),
    }
}

/// Back up `source` into `repo`, deduplicating against `index`; writes the snapshot last.
///
/// Unreadable sources are skipped and listed in [`BackupResult::errors`] (exit code 3 in the
/// CLI). A parent snapshot whose root tree cannot be read is not used (a warning in
/// [`BackupResult::warnings`]). Errors: repository write failures; [`Error::Interrupted`];
/// [`Error::NoSourceRead`] when no source could be read at all (no snapshot is written; when
/// that is known before the walk, as for missing paths, nothing at all is written).
pub fn backup(
    repo: &Repository,
    index: &Index,
    source: Source<'_>,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupResult> {
    let start = Timestamp::now();
    let mut saver = Saver::new(
        repo,
        index,
        opts.dry_run,
        if opts.upload_connections == 0 { 2 } else { opts.upload_connections },
        progress,
    );
    if let Some(level) = opts.compression {
        if !(0..=22).contains(&level) {
            return Err(Error::InvalidInput(format!("compression level {level} is outside 0 to 22")));
        }
        saver.set_compression(level);
    }
    saver.set_lock(opts.lock.clone());
    saver.set_verify_indexed(opts.parent == ParentChoice::None);
    let mut walker = Walker {
        saver: &saver,
        chunker: repo.chunker()?,
        excludes: Patterns::new(&opts.excludes)?,
        one_fs: opts.one_file_system,
        ignore_ctime: opts.ignore_ctime,
        ignore_inode: opts.ignore_inode,
        parent_stores_xattrs: false,
        names: Mutex::new(OwnerNames::default()),
        errors: Mutex::new(Vec::new()),
        counts: Counts::default(),
        prefetch: None,
        sources_read: AtomicU64::new(0),
        source_devs: match &source {
            Source::Paths(paths) if opts.one_file_system => source_devices(paths),
            _ => Vec::new(),
        },
    };
    let (paths, comps) = source_paths(&source)?;
    probe_sources(&comps)?;
    let prefetcher = if matches!(source, Source::Paths(_)) { Prefetcher::start() } else { None };
    let prefetch_threads = prefetcher.map(|(p, h)| {
        walker.prefetch = Some(p);
        h
    });
    let hostname = opts.host.clone().unwrap_or_else(crate::util::hostname);
    let (parent, parent_warning) = load_parent(repo, index, opts.parent, &hostname, &paths)?;
    walker.parent_stores_xattrs = parent.as_ref().is_some_and(|p| p.stores_xattrs);
    let result = run(&walker, source, &comps, parent.as_ref().map(|p| &p.root));
    // The walk is over: close the prefetch queue and let its threads finish.
    walker.prefetch = None;
    for h in prefetch_threads.into_iter().flatten() {
        let _ = h.join();
    }
    let tree = match result.and_then(|r| saver.flush().map(|_| r)) {
        Ok(r) => r,
        Err(e) => {
            saver.salvage();
            return Err(e);
        }
    };
    let errors = std::mem::take(&mut *walker.errors.lock().unwrap_or_else(|p| p.into_inner()));
    let c = &walker.counts;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut summary = Summary {
        backup_start: start,
        backup_end: Timestamp::now(),
        files_new: get(&c.files[NEW]),
        files_changed: get(&c.files[CHANGED]),
        files_unchanged: get(&c.files[UNCHANGED]),
        dirs_new: get(&c.dirs[NEW]),
        dirs_changed: get(&c.dirs[CHANGED]),
        dirs_unchanged: get(&c.dirs[UNCHANGED]),
        total_files_processed: c.files.iter().map(get).sum(),
        total_bytes_processed: get(&c.bytes),
        errors: errors.len() as u64,
        ..Summary::default()
    };

    saver.fill_summary(&mut summary);
    let now = chrono::Local::now();
    let snapshot = Snapshot {
        time: opts.time.unwrap_or(start),
        tz_offset: now.offset().local_minus_utc(),
        hostname,
        username: crate::util::username(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        paths,
        tags: opts.tags.clone(),
        excludes: opts.excludes.clone(),
        tree,
        parent: parent.map(|p| p.id),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary,
    };
    if let Some(lock) = &opts.lock {
        lock.check()?;
    }
    // Interrupted after the walk (a SIGTERM that also ended a stream's producer early, so
    // that its end looked normal): no snapshot. The packs and index written stay for reuse.
    check_interrupted()?;
    let id = if opts.dry_run { None } else { Some(repo.write_snapshot(&snapshot)?) };
    Ok(BackupResult { id, snapshot, errors, warnings: parent_warning.into_iter().collect() })
}

/// A path as its components (file name bytes).
type Components = Vec<Vec<u8>>;

/// The snapshot paths a source will record, and for paths their components.
fn source_paths(source: &Source<'_>) -> Result<(Vec<String>, Vec<Components>)> {
    match source {
        Source::Paths(paths) => Ok(normalise_sources(paths)?.into_iter().unzip()),
        Source::Stream { name, .. } => Ok((vec![format!("/{name}")], Vec::new())),
    }
}

/// The parent snapshot: the one asked for, or the latest of the same host with the same set
/// of paths (restic's rule), or none.
fn find_parent(
    repo: &Repository,
    choice: ParentChoice,
    host: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    match choice {
        ParentChoice::None => Ok(None),
        ParentChoice::Given(id) => Ok(Some((id, repo.load_snapshot(&id)?))),
        ParentChoice::Latest => {
            let filter = crate::snapshot::SnapshotFilter { hosts: vec![host.to_string()], ..Default::default() };
            let mut want = paths.to_vec();
            want.sort();
            Ok(repo.snapshots(&filter)?.into_iter().rev().find(|(_, s)| {
                let mut have = s.paths.clone();
                have.sort();
                have == want
            }))
        }
    }
}

/// Walk or read the source (`comps`: the source paths' components); returns the root tree id.
fn run(walker: &Walker<'_>, source: Source<'_>, comps: &[Components], parent: Option<&Tree>) -> Result<BlobId> {
    match source {
        Source::Paths(_) => {
            if comps.is_empty() {
                return Err(Error::InvalidInput("nothing to back up: give at least one path, or --stdin".into()));
            }
            if comps.iter().any(Vec::is_empty) {
                // `/` is a source: it is the root tree (any other source is inside it).
                return walker.save_root(parent)?.ok_or_else(|| walker.no_source_read());
            }
            let root = walker.save_virtual(Path::new("/"), comps, parent)?;
            if walker.sources_read.load(Ordering::Relaxed) == 0 {
                return Err(walker.no_source_read());
            }
            walker.save_tree(root)
        }
        Source::Stream { name, reader } => {
            if !Tree::valid_name(name.as_bytes()) {
                return Err(Error::InvalidInput(format!("--stdin-filename {name:?} must be a plain file name")));
            }
            let (content, size) = match walker.saver.save_stream(&walker.chunker, reader, u64::MAX) {
                Ok(r) => r,
                Err(StreamError::Source(e)) => return Err(Error::io("standard input", e)),
                Err(StreamError::Repo(e)) => return Err(e),
            };
            // A stream is always read in full; the parent only tells whether it changed.
            let which = match find(parent, name.as_bytes()) {
                Some(p) if p.content == content => UNCHANGED,
                Some(_) => CHANGED,
                None => NEW,
            };
            walker.counts.files[which].fetch_add(1, Ordering::Relaxed);
            walker.counts.bytes.fetch_add(size, Ordering::Relaxed);
            let now = Timestamp::now();
            let node = Node {
                name: name.as_bytes().to_vec(),
                kind: NodeKind::File,
                mode: 0o600,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                user: crate::util::username(),
                group: String::new(),
                size,
                mtime: now,
                ctime: now,
                inode: 0,
                device: 0,
                links: 1,
                rdev: 0,
                symlink_target: Vec::new(),
                content,
                subtree: None,
                xattrs: Vec::new(),
            };
            walker.save_tree(Tree { nodes: vec![node] })
        }
    }
}
