//! The local-disk backend: one directory per repository.
//!
//! Writes go to `<dir>/.tmp-<random>`, are fsynced, renamed to the final name, and the
//! directory is fsynced, so a crash leaves either nothing or the complete file.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind};

/// Prefix of temporary files; readers ignore such names.
pub const TMP_PREFIX: &str = ".tmp-";

/// A repository in a local directory.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend rooted at `root` (nothing is touched until a call).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }
}

fn err(op: &str, path: &Path, e: std::io::Error) -> BackendError {
    BackendError::from_io(format!("{op} {}", path.display()), e)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Packs of at least this many bytes are written with `O_DIRECT`.
const DIRECT_MIN: usize = 1 << 20;
/// `O_DIRECT` transfers start and end on multiples of this many bytes (the largest logical
/// block size of common devices).
const DIRECT_ALIGN: usize = 4096;
/// Size of the aligned bounce buffer that `O_DIRECT` writes are copied through, bytes.
const BOUNCE_LEN: usize = 1 << 20;

thread_local! {
    /// A bounce buffer per writing thread, kept for the thread's life: fresh pages cost a
    /// fault each, and a reused buffer costs none.
    static BOUNCE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Create `path` (which must not exist), write `data` and fsync it. Returns the failed
/// operation's name with the error.
///
/// With `direct`, the whole 4 KiB blocks are written with `O_DIRECT` through an aligned bounce
/// buffer and the tail through the page cache: a pack is written once and read rarely, and
/// copying it into fresh page-cache pages costs more CPU than compressing it on some virtual
/// machines (measured in README.md, "Performance"), while a direct write costs almost none and
/// leaves the page cache to the server's own data. A file system without `O_DIRECT` support
/// (tmpfs, some FUSE and network file systems answer `EINVAL`) gets a plain write instead.
fn write_new_file(path: &Path, data: &[u8], direct: bool) -> Result<(), (&'static str, std::io::Error)> {
    use std::os::unix::fs::OpenOptionsExt;
    let plain = || OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| ("create", e));
    let (f, direct) = if direct {
        match OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (plain()?, false),
            Err(e) => return Err(("create", e)),
        }
    } else {
        (plain()?, false)
    };
    let mut done = 0usize;
    if direct {
        done = write_direct_blocks(&f, data).map_err(|e| ("write", e))?;
        // The rest goes through the page cache: clear O_DIRECT on the open file.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| ("fcntl", e.into()))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_DIRECT;
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(|e| ("fcntl", e.into()))?;
    }
    if let Some(rest) = data.get(done..) {
        f.write_all_at(rest, done as u64).map_err(|e| ("write", e))?;
    }
    f.sync_all().map_err(|e| ("sync", e))
}

/// Write the leading whole blocks of `data` to `f` (opened with `O_DIRECT`) from offset 0;
/// returns how many bytes were written. Stops early, without an error, where the file system
/// refuses a direct write (`EINVAL`) or writes short: the caller writes the rest plainly.
fn write_direct_blocks(f: &File, data: &[u8]) -> std::io::Result<usize> {
    let whole = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
    BOUNCE.with(|cell| {
        let mut bounce = cell.borrow_mut();
        if bounce.len() < BOUNCE_LEN + DIRECT_ALIGN {
            bounce.resize(BOUNCE_LEN + DIRECT_ALIGN, 0);
        }
        let start = bounce.as_ptr().align_offset(DIRECT_ALIGN);
        let Some(buf) = bounce.get_mut(start..start + BOUNCE_LEN) else { return Ok(0) };
        let mut done = 0usize;
        while done < whole {
            let n = (whole - done).min(BOUNCE_LEN);
            let (Some(dst), Some(src)) = (buf.get_mut(..n), data.get(done..done + n)) else { break };
            dst.copy_from_slice(src);
            match f.write_at(dst, done as u64) {
                Ok(k) if k == n => done += n,
                Ok(k) => {
                    // A short direct write: keep what is whole, the rest goes plainly.
                    done += k / DIRECT_ALIGN * DIRECT_ALIGN;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> BackendResult<()> {
        let config = self.path(FileKind::Config, "");
        if config.exists() {
            return Err(BackendError {
                kind: ErrorKind::Permanent,
                context: format!("create repository at {}", self.root.display()),
                source: "a config file already exists".into(),
            });
        }
        for kind in [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Lock] {
            let d = self.root.join(kind.dir());
            fs::create_dir_all(&d).map_err(|e| err("create directory", &d, e))?;
        }
        for i in 0..=255u8 {
            let d = self.root.join(format!("data/{i:02x}"));
            fs::create_dir_all(&d).map_err(|e| err("create directory", &d, e))?;
        }
        for d in [self.root.join("data"), self.root.clone()] {
            sync_dir(&d).map_err(|e| err("sync directory", &d, e))?;
        }
        Ok(())
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> BackendResult<()> {
        if kind != FileKind::Config && !valid_name(name) {
            return Err(BackendError { kind: ErrorKind::Permanent, context: format!("write {name:?}"), source: "invalid file name".into() });
        }
        let path = self.path(kind, name);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| err("create directory", &dir, e))?;
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{}", hex::encode(crate::crypto::random_salt()).get(..16).unwrap_or("0")));
        let result = (|| {
            let direct = kind == FileKind::Pack && data.len() >= DIRECT_MIN;
            write_new_file(&tmp, data, direct).map_err(|(op, e)| err(op, &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| err("rename into place", &path, e))?;
            sync_dir(&dir).map_err(|e| err("sync directory", &dir, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, name);
        let mut f = File::open(&path).map_err(|e| err("open", &path, e))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(|e| err("read", &path, e))?;
        Ok(v)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, name);
        let f = File::open(&path).map_err(|e| err("open", &path, e))?;
        let len = usize::try_from(length).map_err(|_| err("read", &path, std::io::Error::other("range too large")))?;
        let mut v = vec![0u8; len];
        f.read_exact_at(&mut v, offset).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("file ends before byte {}", offset + length))
            } else {
                e
            };
            // A short file is damage, not a missing file: report it as permanent.
            BackendError { kind: ErrorKind::Permanent, context: format!("read {} bytes at {offset} of {}", length, path.display()), source: Box::new(e) }
        })?;
        Ok(v)
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        let dirs: Vec<PathBuf> = match kind {
            FileKind::Config => return Ok(if self.path(kind, "").exists() { vec![("config".into(), 0)] } else { vec![] }),
            FileKind::Pack => {
                let d = self.root.join("data");
                let mut v = Vec::new();
                for e in fs::read_dir(&d).map_err(|e| err("list", &d, e))? {
                    let e = e.map_err(|e| err("list", &d, e))?;
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        v.push(e.path());
                    }
                }
                v
            }
            k => vec![self.root.join(k.dir())],
        };
        let mut out = Vec::new();
        for d in dirs {
            for e in fs::read_dir(&d).map_err(|e| err("list", &d, e))? {
                let e = e.map_err(|e| err("list", &d, e))?;
                let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
                if name.starts_with(TMP_PREFIX) || !valid_name(&name) {
                    continue;
                }
                let md = e.metadata().map_err(|x| err("stat", &e.path(), x))?;
                if md.is_file() {
                    out.push((name, md.len()));
                }
            }
        }
        Ok(out)
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let path = self.path(kind, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("remove", &path, e)),
        }
    }

    fn exists(&self, kind: FileKind, name: &str) -> BackendResult<bool> {
        let path = self.path(kind, name);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(err("stat", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_local() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        b.write(FileKind::Config, "", b"cfg").unwrap();
        assert!(b.create().is_err(), "create over an existing repository");
        let name = "ab".repeat(32);
        b.write(FileKind::Pack, &name, b"0123456789").unwrap();
        assert!(dir.path().join("repo/data/ab").join(&name).is_file());
        assert_eq!(b.read(FileKind::Pack, &name).unwrap(), b"0123456789");
        assert_eq!(b.read_range(FileKind::Pack, &name, 2, 3).unwrap(), b"234");
        assert!(b.read_range(FileKind::Pack, &name, 8, 3).is_err());
        assert_eq!(b.list(FileKind::Pack).unwrap(), vec![(name.clone(), 10)]);
        // Temporary files are invisible to listings.
        fs::write(dir.path().join("repo/index/.tmp-123"), b"partial").unwrap();
        assert!(b.list(FileKind::Index).unwrap().is_empty());
        assert!(b.exists(FileKind::Pack, &name).unwrap());
        b.remove(FileKind::Pack, &name).unwrap();
        b.remove(FileKind::Pack, &name).unwrap();
        assert!(!b.exists(FileKind::Pack, &name).unwrap());
        assert_eq!(b.read(FileKind::Snapshot, &name).unwrap_err().kind, ErrorKind::NotFound);
        assert!(b.write(FileKind::Index, "../escape", b"x").is_err());
    }

    /// Packs from 1 MiB up are written with O_DIRECT through the bounce buffer, their tail
    /// plainly: every size around the block and bounce-buffer boundaries reads back intact, on
    /// the disk's file system and on tmpfs (which may refuse O_DIRECT: then a plain write).
    #[test]
    fn direct_writes_read_back_whole() {
        use rand::{RngCore, SeedableRng};
        let mut data = vec![0u8; 3 * BOUNCE_LEN + 2 * DIRECT_ALIGN + 5];
        rand::rngs::StdRng::from_seed([9; 32]).fill_bytes(&mut data);
        let mut roots = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            roots.push(tempfile::tempdir_in("/dev/shm").unwrap());
        }
        for root in &roots {
            let b = LocalBackend::new(root.path().join("repo"));
            b.create().unwrap();
            let sizes = [DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, 2 * BOUNCE_LEN, 2 * BOUNCE_LEN + DIRECT_ALIGN - 1, data.len()];
            for (i, n) in sizes.into_iter().enumerate() {
                let name = format!("{i:02x}").repeat(32);
                b.write(FileKind::Pack, &name, &data[..n]).unwrap();
                assert!(b.read(FileKind::Pack, &name).unwrap() == data[..n], "{n} bytes in {:?}", root.path());
            }
            let tmp: Vec<_> = fs::read_dir(root.path().join("repo/data/00")).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX)).collect();
            assert!(tmp.is_empty(), "temporary files left behind");
        }
    }
}
