//! Reading what a backup saves: source files ([`SourceFile`], past the page cache from
//! [`DIRECT_READ_MIN`] bytes), the [`Prefetcher`] that asks the kernel to read the next files
//! ahead of the walk, and the segments a stream is read into for the stream pipeline
//! ([`read_segments`]).

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::backend::local::direct_io::{AlignedBuf, DIRECT_READ_MIN};
use crate::chunker::Chunker;
use crate::context::Cancel;
use crate::error::{Error, Result};

/// The head of a stream segment, bytes: room for the bytes after the previous segment's last
/// cut (less than one largest chunk), block-aligned so that the body after it is.
pub(super) fn segment_head(chunker: &Chunker) -> usize {
    crate::backend::local::direct_io::round_up(chunker.params().max_size as usize)
}

/// A segment's buffer with its body read: stream bytes are `buf[head..end]`.
pub(super) struct Filled {
    pub(super) buf: AlignedBuf,
    pub(super) end: usize,
    /// The stream ended in this segment.
    pub(super) eof: bool,
}

/// Read `r` into the bodies of segments (buffers from `pool`, else new) and send them until
/// the stream ends, an error (sent too), the receiver hangs up, or `cancel` is cancelled. Runs on a thread of its
/// own, so that reading the next segment (a wait for the disk with direct reads) overlaps
/// cutting this one.
pub(super) fn read_segments(
    r: &mut (dyn Read + Send),
    head: usize,
    pool: &Mutex<Vec<AlignedBuf>>,
    out: &crossbeam_channel::Sender<std::io::Result<Filled>>,
    cancel: &Cancel,
) {
    use crate::backend::local::direct_io::round_up;
    let len = head + round_up((2 * head).max(4 << 20));
    loop {
        if cancel.is_cancelled() {
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
pub(super) struct Segment {
    pub(super) bytes: AlignedBuf,
    pub(super) pool: Arc<Mutex<Vec<AlignedBuf>>>,
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
pub(super) struct SegmentChunk {
    pub(super) seq: usize,
    pub(super) segment: Arc<Segment>,
    pub(super) range: std::ops::Range<usize>,
}

impl SegmentChunk {
    /// The chunk's bytes. Errors: [`Error::Internal`] when the range is outside the segment.
    pub(super) fn bytes(&self) -> Result<&[u8]> {
        let (r, len) = (&self.range, self.segment.bytes.len());
        self.segment.bytes.as_slice().get(r.clone()).ok_or_else(|| {
            Error::Internal(format!("chunk bytes {}..{} are outside its {len}-byte segment", r.start, r.end))
        })
    }
}

/// Read into `buf[*filled..]` until `window` bytes are there or the stream ends (returns
/// true at the end). The buffer doubles as needed, starting at `first` bytes.
pub(super) fn fill_growing(
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

/// Asks the kernel to start reading the files the walk will read next (`posix_fadvise`
/// `WILLNEED`), from threads of its own, so that on a cold page cache many reads are under
/// way at once instead of one per worker. Only files with no entry in the parent snapshot are
/// hinted (a nightly run reads few files, and those under a known name are mostly unchanged),
/// and only those read through the page cache (below [`DIRECT_READ_MIN`]). Advisory only: any
/// failure is ignored, and a full queue skips prefetching rather than slowing the walk.
pub(super) struct Prefetcher {
    tx: crossbeam_channel::Sender<PathBuf>,
}

impl Prefetcher {
    const DEPTH: usize = 4096;

    /// Number of prefetch threads: opening a file whose inode is not cached waits for the
    /// disk, so several threads keep more of those reads under way.
    const THREADS: usize = 4;

    pub(super) fn start() -> Option<(Prefetcher, Vec<std::thread::JoinHandle<()>>)> {
        let (tx, rx) = crossbeam_channel::bounded::<PathBuf>(Self::DEPTH);
        let mut handles = Vec::new();
        for i in 0..Self::THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("cairn-prefetch-{i}")).spawn(move || {
                for path in rx {
                    // Never through a symbolic link, never waiting on a FIFO: the path may
                    // have been replaced since it was listed.
                    let Ok((f, _)) = crate::backend::local::direct_io::open_no_follow(&path, false) else { continue };
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

    pub(super) fn hint(&self, path: PathBuf) {
        let _ = self.tx.try_send(path);
    }
}

/// A source file being read: from [`DIRECT_READ_MIN`] bytes past the page cache, smaller ones
/// through it (read ahead by the [`Prefetcher`]).
pub(super) enum SourceFile {
    Direct(crate::backend::local::direct_io::DirectReader),
    Cached(fs::File),
}

impl SourceFile {
    /// Open the regular file the walk stat'ed at `path` (`md`: its `lstat`), only if the path
    /// still names that file: never through a symbolic link, never waiting on a FIFO (see
    /// [`crate::backend::local::direct_io::open_regular`]). Errors: a
    /// [`crate::backend::local::direct_io::FileChanged`] inside the [`std::io::Error`] when the path changed.
    pub(super) fn open(path: &Path, md: &fs::Metadata) -> std::io::Result<Self> {
        let expected = (md.dev(), md.ino());
        if md.len() >= DIRECT_READ_MIN {
            crate::backend::local::direct_io::DirectReader::open_regular(path, md.len(), expected)
                .map(SourceFile::Direct)
        } else {
            crate::backend::local::direct_io::open_regular(path, false, expected).map(|(f, _)| SourceFile::Cached(f))
        }
    }

    /// How a failed [`SourceFile::open`] is reported for the file.
    pub(super) fn open_error(e: &std::io::Error) -> String {
        match e.get_ref().and_then(|i| i.downcast_ref::<crate::backend::local::direct_io::FileChanged>()) {
            Some(changed) => changed.to_string(),
            None => format!("cannot open: {e}"),
        }
    }

    /// Once read, drop the file's pages from the page cache (`POSIX_FADV_DONTNEED`, as borg
    /// does): a backup reads each file once, and the memory is the server's. Pages another
    /// process maps stay. Advisory: a failure is ignored.
    pub(super) fn release(&self) {
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

/// This process's standard input as a stream to back up (`--stdin`). A regular file
/// (`cairn backup --stdin < dump`) is read past the page cache ([`crate::backend::local::direct_io`]) in 8 MiB
/// requests from where its offset stands; a pipe, or a file system without `O_DIRECT`, through
/// the kernel's read-ahead, asked to read ahead of the chunker ([`ReadAhead`]). Dropped after
/// a direct read, it leaves standard input's offset where a plain read would have: after what
/// was read.
pub struct Stdin {
    inner: StdinInner,
}

enum StdinInner {
    Direct(crate::backend::local::direct_io::DirectReader),
    Plain(ReadAhead<std::io::Stdin>),
}

impl Stdin {
    /// Bytes per direct read request.
    const REQUEST: usize = 8 << 20;

    /// Standard input, from its current offset (0 unless the caller consumed some, or it is
    /// not seekable).
    pub fn open() -> Self {
        let start = nix::unistd::lseek(0, 0, nix::unistd::Whence::SeekCur)
            .ok()
            .and_then(|o| u64::try_from(o).ok())
            .unwrap_or(0);
        let stdin = std::io::stdin();
        let inner = match crate::backend::local::direct_io::DirectReader::reopen(
            std::os::fd::AsFd::as_fd(&stdin),
            start,
            Self::REQUEST,
        ) {
            Some(d) => StdinInner::Direct(d),
            None => StdinInner::Plain(ReadAhead { inner: stdin, fd: 0, pos: start, advised: start }),
        };
        Stdin { inner }
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            StdinInner::Direct(d) => d.read(buf),
            StdinInner::Plain(p) => p.read(buf),
        }
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        if let StdinInner::Direct(d) = &self.inner {
            // Best effort: standard input may be closed or shared by now.
            if let Ok(pos) = i64::try_from(d.position()) {
                let _ = nix::unistd::lseek(0, pos, nix::unistd::Whence::SeekSet);
            }
        }
    }
}

/// A reader of the file open as `fd` with kernel read-ahead: ask the kernel
/// (`posix_fadvise WILLNEED`) to read the next 64 MiB ahead of the
/// chunker, so a dump that is not in the page cache is read from disk while the previous chunks
/// are compressed. On a pipe the advice fails and is ignored.
pub struct ReadAhead<R> {
    inner: R,
    /// The file descriptor `inner` reads.
    fd: std::os::fd::RawFd,
    /// The file offset of the next byte read.
    pos: u64,
    /// End of the range already advised.
    advised: u64,
}

impl<R> ReadAhead<R> {
    /// Bytes asked to be read ahead, renewed when half of them are read.
    const AHEAD: u64 = 64 << 20;
}

impl<R: Read> Read for ReadAhead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos + Self::AHEAD / 2 >= self.advised {
            let from = self.advised.max(self.pos);
            let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(Self::AHEAD)) else {
                return self.inner.read(buf);
            };
            let _ = nix::fcntl::posix_fadvise(self.fd, off, len, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED);
            self.advised = from + Self::AHEAD;
        }
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
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

    #[test]
    fn read_ahead_reads_a_file_and_a_pipe_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &content).unwrap();
        let f = fs::File::open(&path).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let mut r = ReadAhead { inner: f, fd, pos: 0, advised: 0 };
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, content);
        assert!(r.advised >= ReadAhead::<fs::File>::AHEAD);
        // Not a file: the advice fails and the bytes still come through.
        let mut r = ReadAhead { inner: &content[..], fd: -1, pos: 0, advised: 0 };
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, content);
    }
}
