//! File I/O that bypasses the page cache (`O_DIRECT`), with a plain fallback.
//!
//! A backup reads each source file once and writes each pack once: neither is worth keeping
//! in the page cache. Reading through the cache evicts the server's working set (a database's
//! hot pages, say), and on a virtual machine whose free memory is handed back to the host the
//! kernel pays for every fresh page-cache page: there, copying a cold file through the cache
//! costs about 2 ms of CPU per MB, and a direct read almost none (README.md, "Performance").
//!
//! `O_DIRECT` transfers must start and end on block boundaries and use aligned memory, so
//! reads and writes go through an [`AlignedBuf`]. A file system that refuses `O_DIRECT`
//! (tmpfs before Linux 6.6, some FUSE and network file systems answer `EINVAL`) gets plain
//! reads and writes: correctness never depends on the direct path.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of `O_DIRECT` offsets, lengths and memory, bytes: the largest logical block size
/// of common devices (512 or 4096).
pub const ALIGN: usize = 4096;

/// One [`ALIGN`]-aligned block: a vector of them is aligned memory, viewed as bytes without an
/// offset to compute (so no view can come out short).
#[derive(Clone, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
#[repr(C, align(4096))]
struct Block([u8; ALIGN]);

/// A zero-filled buffer on an [`ALIGN`] boundary, a whole number of blocks long.
pub struct AlignedBuf {
    blocks: Vec<Block>,
}

impl AlignedBuf {
    /// A buffer of `len` usable bytes (rounded up to a multiple of [`ALIGN`]).
    pub fn new(len: usize) -> Self {
        AlignedBuf { blocks: vec![Block([0; ALIGN]); round_up(len.max(1)) / ALIGN] }
    }

    /// A buffer without memory (a placeholder for one taken away).
    pub fn empty() -> Self {
        AlignedBuf { blocks: Vec::new() }
    }

    /// Usable length in bytes.
    pub fn len(&self) -> usize {
        self.blocks.len() * ALIGN
    }

    /// True for [`AlignedBuf::empty`].
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        zerocopy::IntoBytes::as_bytes(self.blocks.as_slice())
    }

    /// The aligned bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        zerocopy::IntoBytes::as_mut_bytes(self.blocks.as_mut_slice())
    }
}

/// An I/O error carrying [`crate::error::Error::Internal`]: an invariant of this module failed.
fn internal(what: String) -> io::Error {
    io::Error::other(crate::error::Error::Internal(what))
}

/// Reads of at least this many bytes (a source file a backup reads, a pack range a restore
/// reads) bypass the page cache: for them the cost of fresh page-cache pages outweighs that of
/// a direct request (measured, README.md "Performance"); smaller ones, one request either way,
/// go through the cache.
pub const DIRECT_READ_MIN: u64 = 256 << 10;

/// Open `path` with `options` and the extra `open(2)` `flags`, adding `O_DIRECT` when `direct`
/// asks for it and the file system allows it (where it answers `EINVAL`, the file is opened
/// plainly); returns the file and whether it is direct. Errors: those of `open(2)`.
fn open(options: &mut OpenOptions, path: &Path, direct: bool, flags: i32) -> io::Result<(File, bool)> {
    if direct {
        match options.clone().custom_flags(flags | libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((options.custom_flags(flags).open(path)?, false))
}

/// Open `path` for reading, with `O_DIRECT` when `direct` asks for it and the file system
/// allows it; returns the file and whether it is direct, as [`read_range`] takes them.
/// Errors: those of `open(2)`.
pub fn open_for_reading(path: &Path, direct: bool) -> io::Result<(File, bool)> {
    open(OpenOptions::new().read(true), path, direct, 0)
}

/// A source file that is no longer the one the backup's walk saw when it stat'ed it: the path
/// now names a symbolic link, a FIFO, a device or another file. Returned (inside an
/// [`io::Error`] of kind `Other`) by [`open_regular`]; nothing was read from it.
#[derive(Debug)]
pub struct FileChanged {
    /// What the path is now, e.g. "a symbolic link", "a FIFO", "another file".
    pub now: &'static str,
}

impl std::fmt::Display for FileChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "changed during backup: it is now {} (not read)", self.now)
    }
}

impl std::error::Error for FileChanged {}

/// Open `path` for reading without following a symbolic link and without blocking (a FIFO or
/// a device opens at once instead of waiting for a writer): `O_NOFOLLOW | O_NONBLOCK`, plus
/// `O_DIRECT` as [`open_for_reading`] adds it. The file may be anything but a symbolic link:
/// callers check what it is (`fstat`) before reading it. Errors: those of `open(2)`; `ELOOP`
/// when `path` is a symbolic link.
pub fn open_no_follow(path: &Path, direct: bool) -> io::Result<(File, bool)> {
    open(OpenOptions::new().read(true), path, direct, libc::O_NOFOLLOW | libc::O_NONBLOCK)
}

/// Open the regular file at `path` for reading (with `O_DIRECT` as [`open_for_reading`] adds
/// it), checking that it is still the file a caller stat'ed: `expected` is its (device, inode
/// number). The path is opened with [`open_no_follow`] (a symbolic link is never followed, a
/// FIFO never waited on), the open file is `fstat`ed, and `O_NONBLOCK` is cleared before the
/// file is returned. Returns the file and whether it is direct.
///
/// Errors: an [`io::Error`] wrapping [`FileChanged`] when the path is now a symbolic link, not a
/// regular file, or another file (other device or inode); those of `open(2)`, `fstat(2)` and
/// `fcntl(2)` otherwise.
pub fn open_regular(path: &Path, direct: bool, expected: (u64, u64)) -> io::Result<(File, bool)> {
    let changed = |now| io::Error::other(FileChanged { now });
    let (f, direct) = match open_no_follow(path, direct) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(changed("a symbolic link")),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(f.as_raw_fd())?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFIFO => return Err(changed("a FIFO")),
        libc::S_IFDIR => return Err(changed("a directory")),
        libc::S_IFCHR | libc::S_IFBLK => return Err(changed("a device")),
        _ => return Err(changed("not a regular file")),
    }
    #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 on every target
    let found = (st.st_dev as u64, st.st_ino as u64);
    if found != expected {
        return Err(changed("another file"));
    }
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags & !OFlag::O_NONBLOCK))?;
    Ok((f, direct))
}

/// `n` rounded up to a multiple of [`ALIGN`].
pub fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN).saturating_mul(ALIGN)
}

thread_local! {
    /// Each thread's spare buffer: a reader takes it and gives it back, so that its pages are
    /// faulted in once per thread rather than once per file.
    static SPARE: std::cell::RefCell<Option<AlignedBuf>> = const { std::cell::RefCell::new(None) };
}

/// This thread's spare buffer if it holds at least `len` bytes, else a new one.
fn take_buffer(len: usize) -> AlignedBuf {
    SPARE.with(|s| s.borrow_mut().take()).filter(|b| b.len() >= len).unwrap_or_else(|| AlignedBuf::new(len))
}

/// Keep `buf` as this thread's spare, unless the spare is larger.
fn give_buffer(buf: AlignedBuf) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|b| b.len() < buf.len()) {
            *s = Some(buf);
        }
    });
}

/// Set or clear `O_DIRECT` on an open file.
fn set_direct(f: &File, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = f.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on { flags | OFlag::O_DIRECT } else { flags & !OFlag::O_DIRECT };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Reads a file from a starting offset to its end, with `O_DIRECT` where it can.
///
/// Reads are positional (`pread`), so the file's own offset is never moved. A direct request
/// is whole blocks, sized from the expected length so that a small file takes one request
/// (the expected length plus one byte, to see the end); a short direct read at or past the
/// expected length is the end of the file. A `read` into aligned memory of at least one block
/// goes straight into it; any other goes through a block-aligned buffer of the reader's.
/// When a direct read is refused (`EINVAL`), the reader clears `O_DIRECT` and goes on plainly.
pub struct DirectReader {
    file: File,
    direct: bool,
    /// File offset of the next request.
    pos: u64,
    /// Bytes expected from `pos` on (a hint: the file may have changed).
    expected: u64,
    /// Largest request, bytes (a multiple of [`ALIGN`]).
    request: usize,
    /// For reads into unaligned memory; taken when first needed.
    buf: Option<AlignedBuf>,
    /// The unread bytes of the last buffered request are `buf[head..tail]`.
    head: usize,
    tail: usize,
    /// A short read was seen: the end of the file.
    at_end: bool,
}

impl DirectReader {
    /// Open `path` for reading with `O_DIRECT` (plainly where the file system refuses it);
    /// `size` is the length the caller expects, in bytes, used to size the requests (at most
    /// 1 MiB each). Errors: those of `open(2)`.
    pub fn open(path: &Path, size: u64) -> io::Result<Self> {
        let (f, direct) = open_for_reading(path, true)?;
        Ok(Self::new(f, direct, 0, size, 1 << 20))
    }

    /// [`DirectReader::open`] for a source file a caller stat'ed, opened by [`open_regular`]:
    /// never through a symbolic link, never waiting on a FIFO, and only when it is still the
    /// regular file `expected` names (device, inode number). Errors: those of [`open_regular`].
    pub fn open_regular(path: &Path, size: u64, expected: (u64, u64)) -> io::Result<Self> {
        let (f, direct) = open_regular(path, true, expected)?;
        Ok(Self::new(f, direct, 0, size, 1 << 20))
    }

    /// Read the regular file open as `fd` from byte `start` to its end (`--stdin` redirected
    /// from a file), through a new open file description so the caller's flags and offset are
    /// untouched. Requests are up to `request` bytes. `None` when `fd` is not a regular file,
    /// `start` is not block-aligned, or it cannot be reopened with `O_DIRECT`: read it plainly
    /// then.
    pub fn reopen(fd: std::os::fd::BorrowedFd<'_>, start: u64, request: usize) -> Option<Self> {
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
        let size = u64::try_from(st.st_size).ok()?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || start % ALIGN as u64 != 0 {
            return None;
        }
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
        Some(Self::new(f, true, start, size.saturating_sub(start), request))
    }

    fn new(file: File, direct: bool, pos: u64, expected: u64, request: usize) -> Self {
        DirectReader {
            file,
            direct,
            pos,
            expected,
            request: round_up(request),
            buf: None,
            head: 0,
            tail: 0,
            at_end: false,
        }
    }

    /// The file offset just past the last byte returned by `read`.
    pub fn position(&self) -> u64 {
        self.pos - (self.tail - self.head) as u64
    }

    /// The request that reads what is expected in one go (the expected length plus one byte,
    /// to see the end, in whole blocks), at most `limit` bytes.
    fn expected_request(&self, limit: usize) -> usize {
        round_up(usize::try_from(self.expected).unwrap_or(usize::MAX).saturating_add(1)).min(limit)
    }

    /// True while reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// One request into `dst` at `pos`: direct when `dst` is aligned memory of whole blocks
    /// (the caller's part), else plain. Returns the bytes read (0 at the end).
    fn request(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            // A direct request starts on a block: after a short read before the expected end
            // (the file shrank), the rest is read plainly.
            if self.direct && self.pos % ALIGN as u64 != 0 {
                set_direct(&self.file, false)?;
                self.direct = false;
            }
            let want = if self.direct && self.expected > 0 { self.expected_request(dst.len()) } else { dst.len() };
            let Some(part) = dst.get_mut(..want) else { return Ok(0) };
            match self.file.read_at(part, self.pos) {
                Ok(n) => {
                    let expected = self.expected;
                    self.pos += n as u64;
                    self.expected = expected.saturating_sub(n as u64);
                    // A direct read is short at the end of the file: when it reached the
                    // expected length, that is the end; when it did not, the next read (a
                    // plain one) tells.
                    self.at_end = n == 0 || (self.direct && n < want && n as u64 >= expected);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct => {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Read for DirectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.head == self.tail {
            if self.at_end {
                return Ok(0);
            }
            let whole = (out.len() / ALIGN * ALIGN).min(self.request);
            if !self.direct || (whole > 0 && (out.as_ptr() as usize) % ALIGN == 0) {
                // Straight into the caller's memory.
                let n = if self.direct { whole } else { out.len() };
                return match out.get_mut(..n) {
                    Some(dst) => self.request(dst),
                    None => Err(internal(format!("read of {n} bytes into a {}-byte buffer", out.len()))),
                };
            }
            let mut buf = match self.buf.take() {
                Some(b) => b,
                None => take_buffer(self.expected_request(self.request)),
            };
            let n = self.request(buf.as_mut_slice());
            self.buf = Some(buf);
            self.head = 0;
            self.tail = n?;
            if self.tail == 0 {
                return Ok(0);
            }
        }
        let Some(buf) = self.buf.as_ref() else { return Ok(0) };
        let avail = buf.as_slice().get(self.head..self.tail).ok_or_else(|| {
            internal(format!(
                "buffered bytes {}..{} are outside the {}-byte read buffer",
                self.head,
                self.tail,
                buf.len()
            ))
        })?;
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.head += n;
        Ok(n)
    }
}

impl Drop for DirectReader {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            give_buffer(b);
        }
    }
}

/// Read `len` bytes from byte `offset` of `file`, opened by [`open_for_reading`] (`direct` as it
/// returned): directly, the whole blocks around the range are read into an aligned buffer and
/// the range is copied out; a direct read refused (`EINVAL`) or cut short mid-block goes on
/// plainly. Errors: those of `read(2)`; `UnexpectedEof` when the file ends before the range does.
pub fn read_range(file: &File, direct: bool, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    if !direct {
        return read_range_plain(file, offset, len);
    }
    let start = offset / ALIGN as u64 * ALIGN as u64;
    let skip = (offset - start) as usize;
    let want = skip.checked_add(len).ok_or_else(|| io::Error::other("range too large"))?;
    let mut buf = take_buffer(round_up(want));
    let mut done = 0usize;
    let result = loop {
        if done >= want {
            let out = buf.as_slice().get(skip..want).map(<[u8]>::to_vec);
            break out.ok_or_else(|| io::Error::other("range outside the buffer"));
        }
        let Some(dst) = buf.as_mut_slice().get_mut(done..round_up(want)) else {
            break Err(io::Error::other("range outside the buffer"));
        };
        match file.read_at(dst, start + done as u64) {
            Ok(0) => {
                break Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ends before byte {}", offset + len as u64),
                ))
            }
            // A short read ends the file, or leaves an unaligned offset: the rest plainly.
            Ok(n) if n % ALIGN != 0 && done + n < want => {
                done += n;
                let rest =
                    set_direct(file, false).and_then(|()| read_range_plain(file, start + done as u64, want - done));
                break rest.and_then(|r| {
                    let mut out = buf.as_slice().get(skip..done).map(<[u8]>::to_vec).ok_or_else(|| {
                        internal(format!("bytes {skip}..{done} are outside the {}-byte read buffer", buf.len()))
                    })?;
                    out.extend_from_slice(&r);
                    Ok(out)
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                break set_direct(file, false).and_then(|()| read_range_plain(file, offset, len))
            }
            Err(e) => break Err(e),
        }
    };
    give_buffer(buf);
    result
}

/// [`read_range`] through the page cache.
fn read_range_plain(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    file.read_exact_at(&mut v, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(io::ErrorKind::UnexpectedEof, format!("file ends before byte {}", offset + len as u64))
        } else {
            e
        }
    })?;
    Ok(v)
}

/// Create `path` (which must not exist), write `data` and fsync it; returns the failed
/// operation's name with its error. With `direct`, see [`DirectWriter`].
pub fn write_new_file(path: &Path, data: &[u8], direct: bool) -> Result<(), (&'static str, io::Error)> {
    let mut w = DirectWriter::create_new(path, direct).map_err(|e| ("create", e))?;
    w.write_all(data).map_err(|e| ("write", e))?;
    w.finish().map_err(|e| ("sync", e))
}

/// Size of a direct writer's aligned buffer, bytes: the size of its write requests.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes a new file from its start, with `O_DIRECT` where it can: appended bytes collect in
/// an aligned buffer that is written whole (1 MiB requests at 1 MiB offsets); the last partial
/// block goes through the page cache at [`DirectWriter::finish`]. Where a direct write is
/// refused (`EINVAL`), the writer clears `O_DIRECT` and goes on plainly.
pub struct DirectWriter {
    file: File,
    direct: bool,
    buf: AlignedBuf,
    /// Bytes in `buf` not yet written.
    fill: usize,
    /// Bytes written to the file.
    written: u64,
}

impl DirectWriter {
    /// Create `path`, which must not exist; `direct` asks for `O_DIRECT`.
    /// Errors: those of `open(2)`.
    pub fn create_new(path: &Path, direct: bool) -> io::Result<Self> {
        let (file, direct) = open(OpenOptions::new().write(true).create_new(true), path, direct, 0)?;
        Ok(DirectWriter { file, direct, buf: take_buffer(WRITE_CHUNK), fill: 0, written: 0 })
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.written + self.fill as u64
    }

    /// True before anything was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`. Errors: those of `write(2)`.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let len = self.buf.len();
            let room = self
                .buf
                .as_mut_slice()
                .get_mut(self.fill..)
                .ok_or_else(|| internal(format!("write buffer fill {} is past its {len} bytes", self.fill)))?;
            if room.is_empty() {
                self.flush_buffer()?;
                continue;
            }
            let n = room.len().min(data.len());
            let (head, rest) = data.split_at(n);
            if let Some(dst) = room.get_mut(..n) {
                dst.copy_from_slice(head);
            }
            self.fill += n;
            data = rest;
        }
        Ok(())
    }

    /// Write the full buffer at `written`.
    fn flush_buffer(&mut self) -> io::Result<()> {
        let mut done = 0usize;
        while done < self.fill {
            let Some(part) = self.buf.as_slice().get(done..self.fill) else { break };
            match self.file.write_at(part, self.written + done as u64) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the file system wrote nothing")),
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct => {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
            // After a short direct write the offset is no longer block-aligned: go on plainly.
            if self.direct && done < self.fill && done % ALIGN != 0 {
                set_direct(&self.file, false)?;
                self.direct = false;
            }
        }
        self.written += done as u64;
        self.fill = 0;
        Ok(())
    }

    /// Write what is left (plainly: it need not be whole blocks) and fsync the file.
    /// Errors: those of `write(2)` and `fsync(2)`.
    pub fn finish(mut self) -> io::Result<()> {
        if self.direct {
            set_direct(&self.file, false)?;
            self.direct = false;
        }
        self.flush_buffer()?;
        self.file.sync_all()
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        give_buffer(std::mem::replace(&mut self.buf, AlignedBuf::empty()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn data(len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        rand::rngs::StdRng::from_seed([3; 32]).fill_bytes(&mut d);
        d
    }

    /// Directories on the disk's file system and, where there is one, on tmpfs (which may
    /// refuse O_DIRECT: the plain path).
    fn roots() -> Vec<tempfile::TempDir> {
        let mut r = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            r.push(tempfile::tempdir_in("/dev/shm").unwrap());
        }
        r
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [1, 4095, 4096, 4097, 1 << 20] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.len() >= len && b.len() % ALIGN == 0);
            assert_eq!(b.as_mut_slice().len(), b.len());
        }
    }

    /// Files of every size around the block and request boundaries read back whole, whatever
    /// the size hint says, in reads of any size.
    #[test]
    fn reads_whole_files_of_any_size() {
        let d = data(3 * (1 << 20) + 3 * ALIGN + 7);
        for root in roots() {
            for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, d.len()] {
                let p = root.path().join(format!("f{len}"));
                std::fs::write(&p, &d[..len]).unwrap();
                for (hint, step) in
                    [(len as u64, 1 << 16), (0, 1000), (u64::MAX, 3 * ALIGN + 1), (len as u64 / 2, 1 << 22)]
                {
                    let mut r = DirectReader::open(&p, hint).unwrap();
                    let mut got = Vec::new();
                    let mut piece = vec![0u8; step];
                    loop {
                        let n = r.read(&mut piece).unwrap();
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&piece[..n]);
                    }
                    assert!(got == d[..len], "{len} bytes, hint {hint}, reads of {step} in {:?}", root.path());
                }
            }
        }
    }

    /// Reads into aligned memory go straight into it, mixed with unaligned ones.
    #[test]
    fn aligned_and_unaligned_reads_mix() {
        let d = data(5 * (1 << 20) + 123);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, &d).unwrap();
        let mut r = DirectReader::open(&p, d.len() as u64).unwrap();
        let mut aligned = AlignedBuf::new(3 * ALIGN);
        let mut odd = vec![0u8; 5000];
        let mut got = Vec::new();
        for i in 0.. {
            let n = if i % 3 == 2 { r.read(&mut odd).unwrap() } else { r.read(aligned.as_mut_slice()).unwrap() };
            if n == 0 {
                break;
            }
            got.extend_from_slice(if i % 3 == 2 { &odd[..n] } else { &aligned.as_slice()[..n] });
        }
        assert!(got == d);
        assert!(r.is_direct());
        assert_eq!(r.position(), d.len() as u64);
    }

    fn read_at(p: &Path, offset: usize, len: usize) -> io::Result<Vec<u8>> {
        let (f, direct) = open_for_reading(p, true)?;
        read_range(&f, direct, offset as u64, len)
    }

    /// Ranges at every alignment read back exactly; one past the end is an error.
    #[test]
    fn ranges_read_back_exactly() {
        let d = data(3 * (1 << 20) + 5000);
        for root in roots() {
            let p = root.path().join("r");
            std::fs::write(&p, &d).unwrap();
            for (off, len) in [
                (0, 1),
                (0, d.len()),
                (1, 4095),
                (4095, 2),
                (4096, 4096),
                (12345, 1 << 20),
                (d.len() - 7, 7),
                (100, d.len() - 100),
            ] {
                assert!(read_at(&p, off, len).unwrap() == d[off..off + len], "{off}+{len} in {:?}", root.path());
            }
            for (off, len) in [(d.len() - 7, 8), (d.len(), 1), (d.len() + 5000, 10)] {
                let e = read_at(&p, off, len).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{off}+{len}");
            }
        }
    }

    /// A file that grew or shrank since its size was taken is read to its actual end.
    #[test]
    fn a_file_that_grew_or_shrank_is_read_to_its_new_end() {
        let dir = tempfile::tempdir().unwrap();
        for (len, hint) in [(100_000, 10), (3 * ALIGN + 100, 10 * ALIGN as u64)] {
            let d = data(len);
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &d).unwrap();
            let mut got = Vec::new();
            DirectReader::open(&p, hint).unwrap().read_to_end(&mut got).unwrap();
            assert!(got == d, "{len} bytes, size hint {hint}");
        }
    }

    #[test]
    fn reopen_reads_from_an_aligned_start() {
        let d = data(3 * ALIGN + 100);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, &d).unwrap();
        let f = File::open(&p).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        let mut got = Vec::new();
        DirectReader::reopen(fd, ALIGN as u64, 1 << 20).unwrap().read_to_end(&mut got).unwrap();
        assert!(got == d[ALIGN..]);
        assert!(DirectReader::reopen(fd, 10, 1 << 20).is_none(), "an unaligned start is read plainly");
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(DirectReader::reopen(std::os::fd::AsFd::as_fd(&r), 0, 1 << 20).is_none(), "a pipe is read plainly");
    }

    #[test]
    fn writes_in_pieces_read_back_whole() {
        let d = data(3 * WRITE_CHUNK + 2 * ALIGN + 5);
        for root in roots() {
            for piece in [1usize, 4095, 4096, 100_000, WRITE_CHUNK + 1] {
                let p = root.path().join(format!("p{piece}"));
                let mut w = DirectWriter::create_new(&p, true).unwrap();
                for c in d.chunks(piece) {
                    w.write_all(c).unwrap();
                }
                assert_eq!(w.len(), d.len() as u64);
                w.finish().unwrap();
                assert!(std::fs::read(&p).unwrap() == d, "pieces of {piece} in {:?}", root.path());
            }
        }
    }

    #[test]
    fn writes_read_back_whole() {
        let d = data(3 * WRITE_CHUNK + 2 * ALIGN + 5);
        for root in roots() {
            for len in [0, 1, ALIGN, ALIGN + 1, WRITE_CHUNK - 1, WRITE_CHUNK, 2 * WRITE_CHUNK + ALIGN - 1, d.len()] {
                for direct in [true, false] {
                    let p = root.path().join(format!("w{len}-{direct}"));
                    write_new_file(&p, &d[..len], direct).unwrap();
                    assert!(
                        std::fs::read(&p).unwrap() == d[..len],
                        "{len} bytes, direct {direct}, in {:?}",
                        root.path()
                    );
                    assert!(write_new_file(&p, b"x", direct).is_err(), "an existing file is never overwritten");
                }
            }
        }
    }
}
