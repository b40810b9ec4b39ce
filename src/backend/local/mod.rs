//! The local-disk backend: one directory per repository.
//!
//! Writes go to `<dir>/.tmp-<random>`, are fsynced, renamed to the final name, and the
//! directory is fsynced, so a crash leaves either nothing or the complete file. Large pack
//! transfers go past the page cache ([`direct_io`]).

pub mod direct_io;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind, Properties, StagedFile};
use crate::id::Id;
use direct_io::DirectWriter;

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

    fn path(&self, kind: FileKind, id: &Id) -> PathBuf {
        self.root.join(kind.path(id))
    }
}

impl LocalBackend {
    /// A permanent error with a sentence when the repository path exists but is not a
    /// directory (`-r /etc/hostname`), rather than the OS's "not a directory" or "file exists"
    /// on a path below it.
    fn root_not_a_directory(&self) -> Option<BackendError> {
        let md = fs::metadata(&self.root).ok()?;
        (!md.is_dir()).then(|| BackendError {
            kind: ErrorKind::Permanent,
            context: format!("repository {}", self.root.display()),
            source: "this path is a file, not a directory: give the repository's directory (or, for init, a path that does not exist yet)".into(),
        })
    }
}

fn err(op: &str, path: &Path, e: std::io::Error) -> BackendError {
    BackendError::from_io(format!("{op} {}", path.display()), e)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new temporary file name in `dir` (random, so concurrent writers never meet).
fn temporary_path(dir: &Path) -> PathBuf {
    dir.join(format!("{TMP_PREFIX}{}", hex::encode(crate::crypto::random_salt()).get(..16).unwrap_or("0")))
}

/// The directory of `path`, created when missing (`root` for a path without one).
fn parent_dir(path: &Path, root: &Path) -> BackendResult<PathBuf> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(|e| err("create directory", &dir, e))?;
    }
    Ok(dir)
}

/// Give the complete, synced file `tmp` its name `path` (in directory `dir`) and sync the
/// directory, so the name survives a crash.
fn rename_into_place(tmp: &Path, path: &Path, dir: &Path) -> BackendResult<()> {
    fs::rename(tmp, path).map_err(|e| err("rename into place", path, e))?;
    sync_dir(dir).map_err(|e| err("sync directory", dir, e))
}

/// Packs of at least this many bytes are written with `O_DIRECT` (see [`direct_io`]):
/// a pack is written once and read rarely.
const DIRECT_MIN: usize = 1 << 20;

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn properties(&self) -> Properties {
        Properties::LOCAL
    }

    fn create(&self) -> BackendResult<()> {
        if let Some(e) = self.root_not_a_directory() {
            return Err(e);
        }
        let config = self.path(FileKind::Config, &super::CONFIG_ID);
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

    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
        let path = self.path(kind, id);
        let dir = parent_dir(&path, &self.root)?;
        let tmp = temporary_path(&dir);
        let result = (|| {
            let direct = kind == FileKind::Pack && data.len() >= DIRECT_MIN;
            direct_io::write_new_file(&tmp, &data, direct).map_err(|(op, e)| err(op, &tmp, e))?;
            rename_into_place(&tmp, &path, &dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, id);
        let mut f = File::open(&path).map_err(|e| err("open", &path, e))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(|e| err("read", &path, e))?;
        Ok(v)
    }

    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, id);
        let len = usize::try_from(length).map_err(|_| err("read", &path, std::io::Error::other("range too large")))?;
        // Large ranges of packs (a restore, a check) are read past the page cache.
        let direct = kind == FileKind::Pack && length >= direct_io::DIRECT_READ_MIN;
        let (f, direct) = direct_io::open_for_reading(&path, direct).map_err(|e| err("open", &path, e))?;
        // A short file is damage, not a missing file; other failures are the disk's.
        direct_io::read_range(&f, direct, offset, len)
            .map_err(|e| BackendError::from_io(format!("read {length} bytes at {offset} of {}", path.display()), e))
    }

    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        let dirs: Vec<PathBuf> = match kind {
            FileKind::Config => {
                return Ok(if self.path(kind, &super::CONFIG_ID).exists() {
                    vec![("config".into(), 0)]
                } else {
                    vec![]
                })
            }
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
                let Some(name) = super::listed_name(&e.file_name().to_string_lossy()) else { continue };
                let md = match e.metadata() {
                    Ok(md) => md,
                    // Removed since the directory was read (another process's lock, a pruned
                    // pack): not there to list.
                    Err(x) if x.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(x) => return Err(err("stat", &e.path(), x)),
                };
                if md.is_file() {
                    out.push((name, md.len()));
                }
            }
        }
        Ok(out)
    }

    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        let path = self.path(kind, id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("remove", &path, e)),
        }
    }

    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        // The disk is the cache.
        self.read_range(kind, id, offset, length)
    }

    /// Packs are staged in `data/.tmp-<random>` (readers ignore the name), written with
    /// `O_DIRECT` as they grow, and renamed into `data/<id[0:2]>/` when committed.
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        if kind != FileKind::Pack {
            return Ok(None);
        }
        let tmp = temporary_path(&self.root.join(kind.dir()));
        let staged = LocalStaged::start(tmp.clone(), self.root.clone(), kind).map_err(|e| err("create", &tmp, e))?;
        Ok(Some(Box::new(staged)))
    }

    fn remove_stale_temporaries(&self, age: std::time::Duration) -> BackendResult<(u64, u64)> {
        let mut dirs: Vec<PathBuf> =
            [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Lock, FileKind::Drill, FileKind::Pack]
                .iter()
                .map(|k| self.root.join(k.dir()))
                .collect();
        dirs.push(self.root.clone());
        let data = self.root.join(FileKind::Pack.dir());
        for e in fs::read_dir(&data).map_err(|e| err("list", &data, e))? {
            let e = e.map_err(|e| err("list", &data, e))?;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
        let now = std::time::SystemTime::now();
        let (mut count, mut bytes) = (0, 0);
        for d in dirs {
            let Ok(entries) = fs::read_dir(&d) else { continue };
            for e in entries.filter_map(|e| e.ok()) {
                if !e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    continue;
                }
                // Only plain files, and only those nobody has written to for `age`.
                let Ok(md) = e.metadata() else { continue };
                let idle = md.modified().ok().and_then(|m| now.duration_since(m).ok());
                if md.is_file() && idle.is_some_and(|i| i >= age) {
                    let p = e.path();
                    match fs::remove_file(&p) {
                        Ok(()) => {
                            count += 1;
                            bytes += md.len();
                        }
                        Err(x) if x.kind() == std::io::ErrorKind::NotFound => {}
                        Err(x) => return Err(err("remove", &p, x)),
                    }
                }
            }
        }
        Ok((count, bytes))
    }

    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        let path = self.path(kind, id);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.root_not_a_directory().unwrap_or_else(|| err("stat", &path, e))),
        }
    }
}

/// A pack being written to a temporary file of the local backend. Appended bytes collect in a
/// buffer; every full megabyte goes to a writer thread of the file's own, so that the caller
/// (a backup worker holding the open pack's lock) never waits for the disk.
struct LocalStaged {
    tmp: PathBuf,
    root: PathBuf,
    kind: FileKind,
    /// Bytes not yet handed to the writer.
    pending: Vec<u8>,
    len: u64,
    /// Full buffers to the writer; `None` once committed or failed.
    to_writer: Option<crossbeam_channel::Sender<Vec<u8>>>,
    /// Emptied buffers back from the writer, for reuse.
    from_writer: crossbeam_channel::Receiver<Vec<u8>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// Bytes handed to a staged file's writer thread at a time.
const STAGE_CHUNK: usize = 1 << 20;

impl LocalStaged {
    fn start(tmp: PathBuf, root: PathBuf, kind: FileKind) -> std::io::Result<Self> {
        let mut file = DirectWriter::create_new(&tmp, true)?;
        let (to_writer, rx) = crossbeam_channel::bounded::<Vec<u8>>(2);
        let (back, from_writer) = crossbeam_channel::bounded::<Vec<u8>>(4);
        let writer = std::thread::Builder::new().name("cairn-pack-writer".into()).spawn(move || {
            for mut buf in rx {
                file.write_all(&buf)?;
                buf.clear();
                let _ = back.try_send(buf);
            }
            file.finish()
        })?;
        Ok(LocalStaged {
            tmp,
            root,
            kind,
            pending: Vec::with_capacity(STAGE_CHUNK),
            len: 0,
            to_writer: Some(to_writer),
            from_writer,
            writer: Some(writer),
        })
    }

    /// Wait for the writer to write everything handed to it and sync the file.
    fn finish_writer(&mut self) -> BackendResult<()> {
        self.to_writer = None;
        let joined = self.writer.take().map(|h| h.join());
        match joined {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(err("write", &self.tmp, e)),
            Some(Err(_)) => Err(err("write", &self.tmp, std::io::Error::other("the pack writer thread panicked"))),
            None => Err(err("write", &self.tmp, std::io::Error::other("already committed"))),
        }
    }
}

impl StagedFile for LocalStaged {
    fn append(&mut self, mut data: &[u8]) -> BackendResult<()> {
        while !data.is_empty() {
            let n = (STAGE_CHUNK - self.pending.len().min(STAGE_CHUNK)).min(data.len());
            let (head, rest) = data.split_at(n);
            self.pending.extend_from_slice(head);
            self.len += n as u64;
            data = rest;
            if self.pending.len() >= STAGE_CHUNK {
                let next = self.from_writer.try_recv().unwrap_or_else(|_| Vec::with_capacity(STAGE_CHUNK));
                let full = std::mem::replace(&mut self.pending, next);
                let sent = self.to_writer.as_ref().is_some_and(|tx| tx.send(full).is_ok());
                if !sent {
                    // The writer stopped: its error says why.
                    return self.finish_writer().and(Err(err(
                        "write",
                        &self.tmp,
                        std::io::Error::other("the pack writer stopped"),
                    )));
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(mut self: Box<Self>, id: &Id) -> BackendResult<()> {
        let last = std::mem::take(&mut self.pending);
        if !last.is_empty() {
            if let Some(tx) = &self.to_writer {
                let _ = tx.send(last);
            }
        }
        self.finish_writer()?;
        let path = self.root.join(self.kind.path(id));
        let dir = parent_dir(&path, &self.root)?;
        // From here the temporary file is this call's to remove (as in `write`), not drop's.
        let tmp = std::mem::take(&mut self.tmp);
        let placed = rename_into_place(&tmp, &path, &dir);
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        placed
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        // Stop the writer; a file not renamed into place (never committed, or a commit that
        // failed) is removed.
        self.to_writer = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backend_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        crate::backend::conformance::run(&b, 1100).unwrap();
    }

    /// The layout of repo-format.md; temporary files are invisible; names that are not ids are
    /// listed by name only.
    #[test]
    fn layout_temporaries_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().unwrap();
        let name = Id([0xab; 32]);
        b.write_bytes(FileKind::Pack, &name, Bytes::from_static(b"0123456789")).unwrap();
        assert!(dir.path().join("repo/data/ab").join(name.to_hex()).is_file());
        fs::write(dir.path().join("repo/index/.tmp-123"), b"partial").unwrap();
        assert!(b.list_names(FileKind::Index).unwrap().is_empty());
        // A stray file whose name is not an id: listed by name, not as an id.
        fs::write(dir.path().join("repo/index/stray"), b"x").unwrap();
        assert_eq!(b.list_names(FileKind::Index).unwrap(), vec![("stray".to_string(), 1)]);
        fs::rename(dir.path().join("repo/index/stray"), dir.path().join("repo/index/old.bak\n")).unwrap();
        assert_eq!(b.list_names(FileKind::Index).unwrap(), vec![("old.bak\\n".to_string(), 1)]);
        fs::write(dir.path().join("repo/index/.DS_Store"), b"x").unwrap();
        assert_eq!(b.list_names(FileKind::Index).unwrap().len(), 1, "hidden files are not listed");
        assert!(b.list(FileKind::Index).unwrap().is_empty());
        assert!(b.stage(FileKind::Index).unwrap().is_none(), "only packs are staged");
        let mut dropped = b.stage(FileKind::Pack).unwrap().unwrap();
        dropped.append(&[1; 3 << 20]).unwrap();
        drop(dropped);
        let left: Vec<_> = fs::read_dir(dir.path().join("repo/data"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .collect();
        assert!(left.is_empty(), "an uncommitted pack was left behind");
        // A temporary file older than the age asked is removed; a fresh one stays.
        assert_eq!(b.remove_stale_temporaries(std::time::Duration::from_secs(3600)).unwrap(), (0, 0));
        assert_eq!(b.remove_stale_temporaries(std::time::Duration::ZERO).unwrap(), (1, 7));
    }
}
