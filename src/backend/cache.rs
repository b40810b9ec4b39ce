//! A local cache of the metadata every command needs from a remote repository: index files,
//! snapshots, and whole tree packs (`~/.cache/cairn/<repository id>/`, restic's layout).
//!
//! Cached files are immutable (their names are the BLAKE3 of their bytes), so a cached copy is
//! used when its hash still matches its name and re-fetched otherwise. Listings always come
//! from the repository; cached files it no longer lists (removed by prune elsewhere) are
//! dropped. Writes go to the repository first, then to the cache. Failures of the cache itself
//! are never fatal: the repository is the source of truth.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{Backend, BackendResult, FileKind, Properties, StagedFile};
use crate::id::Id;

/// Wraps a (remote) backend with a directory of cached files.
pub struct CacheBackend<B> {
    inner: B,
    dir: PathBuf,
    /// Cached packs whose whole-file hash was checked in this process.
    verified: std::sync::Mutex<std::collections::HashSet<Id>>,
}

/// The default cache base directory: `$CAIRN_CACHE_DIR`, else `$XDG_CACHE_HOME/cairn`, else
/// `~/.cache/cairn`; `None` when none can be determined.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("cairn"));
    }
    std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache/cairn"))
}

/// `length` bytes at `offset` of a local file, if it has them.
fn read_at(p: &Path, offset: u64, length: u64) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(p).ok()?;
    let mut v = vec![0u8; usize::try_from(length).ok()?];
    f.read_exact_at(&mut v, offset).ok()?;
    Some(v)
}

fn cached_kind(kind: FileKind) -> bool {
    matches!(kind, FileKind::Index | FileKind::Snapshot)
}

impl<B: Backend> CacheBackend<B> {
    /// Cache below `dir` (the repository's own directory inside the cache base).
    pub fn new(inner: B, dir: PathBuf) -> Self {
        if let Some(base) = dir.parent() {
            let _ = fs::create_dir_all(base);
            let tag = base.join("CACHEDIR.TAG");
            if !tag.exists() {
                let _ = fs::write(tag, "Signature: 8a477f597d28d172789f06886806bc55\n# This is a cache directory of cairn, the backup tool.\n");
            }
        }
        CacheBackend { inner, dir, verified: Default::default() }
    }

    fn path(&self, kind: FileKind, id: &Id) -> PathBuf {
        self.dir.join(kind.path(id))
    }

    fn load(&self, kind: FileKind, id: &Id) -> Option<Vec<u8>> {
        let p = self.path(kind, id);
        let data = fs::read(&p).ok()?;
        if Id::of_bytes(&data) == *id {
            Some(data)
        } else {
            let _ = fs::remove_file(&p);
            None
        }
    }

    fn store(&self, kind: FileKind, id: &Id, data: &[u8]) {
        let p = self.path(kind, id);
        let Some(dir) = p.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".tmp-{}", hex::encode(&crate::crypto::random_salt()[..8])));
        let ok = fs::File::create(&tmp).and_then(|mut f| f.write_all(data)).is_ok() && fs::rename(&tmp, &p).is_ok();
        if !ok {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Drop cached files of `kind` whose names are not in `present`.
    fn prune(&self, kind: FileKind, present: &[(String, u64)]) {
        let keep: std::collections::HashSet<&str> = present.iter().map(|(n, _)| n.as_str()).collect();
        let dirs: Vec<PathBuf> = if kind == FileKind::Pack {
            fs::read_dir(self.dir.join("data")).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
        } else {
            vec![self.dir.join(kind.dir())]
        };
        for d in dirs {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if let Some(n) = e.file_name().to_str() {
                    if !keep.contains(n) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
    }

    /// The cache directory of this repository.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl<B: Backend> Backend for CacheBackend<B> {
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
        let keep = cached_kind(kind).then(|| data.clone());
        self.inner.write_bytes(kind, id, data)?;
        if let Some(d) = keep {
            self.store(kind, id, &d);
        }
        Ok(())
    }
    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        if cached_kind(kind) {
            if let Some(d) = self.load(kind, id) {
                return Ok(d);
            }
            let d = self.inner.read(kind, id)?;
            if Id::of_bytes(&d) == *id {
                self.store(kind, id, &d);
            }
            return Ok(d);
        }
        self.inner.read(kind, id)
    }
    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        self.inner.read_range(kind, id, offset, length)
    }
    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let slice = |d: &[u8]| {
            let (s, e) = (usize::try_from(offset).ok()?, usize::try_from(offset.checked_add(length)?).ok()?);
            d.get(s..e).map(<[u8]>::to_vec)
        };
        // A cached pack is hashed whole once per process, then read by range.
        let seen = self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(id);
        if seen {
            if let Some(v) = read_at(&self.path(kind, id), offset, length) {
                return Ok(v);
            }
        } else if let Some(d) = self.load(kind, id) {
            self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(*id);
            if let Some(v) = slice(&d) {
                return Ok(v);
            }
        }
        let whole = self.inner.read(kind, id)?;
        if Id::of_bytes(&whole) == *id {
            self.store(kind, id, &whole);
            self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(*id);
        }
        match slice(&whole) {
            Some(v) => Ok(v),
            None => self.inner.read_range(kind, id, offset, length),
        }
    }
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        let l = self.inner.list_names(kind)?;
        if cached_kind(kind) || kind == FileKind::Pack {
            self.prune(kind, &l);
        }
        Ok(l)
    }
    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        self.inner.remove(kind, id)?;
        let _ = fs::remove_file(self.path(kind, id));
        Ok(())
    }
    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        self.inner.exists(kind, id)
    }
    /// Staged files are packs, which the cache keeps only when read as trees: forwarded.
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        self.inner.stage(kind)
    }
    fn remove_stale_temporaries(&self, age: std::time::Duration) -> BackendResult<(u64, u64)> {
        self.inner.remove_stale_temporaries(age)
    }
}
