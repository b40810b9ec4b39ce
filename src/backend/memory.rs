//! An in-memory backend: a map from (kind, name) to bytes, for tests and for library users
//! that want a repository without a disk (a dry run, a fuzz target). It keeps the whole
//! contract of [`Backend`]: whole-file writes appear at once, staged files appear only when
//! committed, missing files are [`ErrorKind::NotFound`], a range past the end is
//! [`ErrorKind::Corrupt`]. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind, Properties, StagedFile};

/// The files of one in-memory repository, shared by the backend and its staged files.
type Files = Arc<RwLock<HashMap<(FileKind, String), Bytes>>>;

/// A repository held in memory. Cheap to clone: clones share the same files.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    files: Files,
    /// Set once [`Backend::create`] succeeded (the directories of a local repository).
    created: Arc<std::sync::atomic::AtomicBool>,
}

impl MemoryBackend {
    /// An empty repository (not yet created).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of files stored, all kinds together.
    pub fn len(&self) -> usize {
        self.files.read().map(|f| f.len()).unwrap_or_else(|p| p.into_inner().len())
    }

    /// True when no file is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.get(&(kind, key_name(kind, name))).cloned().ok_or_else(|| BackendError {
            kind: ErrorKind::NotFound,
            context: format!("read {}", kind.path(name)),
            source: "no such file".into(),
        })
    }
}

/// The map key of a file: config has one name whatever is asked.
fn key_name(kind: FileKind, name: &str) -> String {
    if kind == FileKind::Config {
        String::new()
    } else {
        name.to_string()
    }
}

/// Names as the local backend accepts them (ids, lock names): no separators, no dots.
fn check_name(kind: FileKind, name: &str, op: &str) -> BackendResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if kind == FileKind::Config || ok {
        Ok(())
    } else {
        Err(BackendError {
            kind: ErrorKind::Permanent,
            context: format!("{op} {name:?}"),
            source: "invalid file name".into(),
        })
    }
}

fn insert(files: &Files, kind: FileKind, name: &str, data: Bytes) {
    files.write().unwrap_or_else(|p| p.into_inner()).insert((kind, key_name(kind, name)), data);
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    fn properties(&self) -> Properties {
        Properties::MEMORY
    }

    fn create(&self) -> BackendResult<()> {
        if self.get(FileKind::Config, "").is_ok() {
            return Err(BackendError {
                kind: ErrorKind::Permanent,
                context: "create repository in memory".into(),
                source: "a config file already exists".into(),
            });
        }
        self.created.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn write_bytes(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        check_name(kind, name, "write")?;
        insert(&self.files, kind, name, data);
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        self.get(kind, name).map(|b| b.to_vec())
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let data = self.get(kind, name)?;
        let range = usize::try_from(offset).ok().and_then(|s| Some(s..s.checked_add(usize::try_from(length).ok()?)?));
        range.and_then(|r| data.get(r)).map(<[u8]>::to_vec).ok_or_else(|| BackendError {
            kind: ErrorKind::Corrupt,
            context: format!("read {length} bytes at {offset} of {}", kind.path(name)),
            source: format!("the file has {} bytes", data.len()).into(),
        })
    }

    fn read_range_cached(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        // Already in memory: nothing to keep.
        self.read_range(kind, name, offset, length)
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        Ok(files
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, n), d)| {
                (if kind == FileKind::Config { "config".to_string() } else { n.clone() }, d.len() as u64)
            })
            .collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.files.write().unwrap_or_else(|p| p.into_inner()).remove(&(kind, key_name(kind, name)));
        Ok(())
    }

    fn exists(&self, kind: FileKind, name: &str) -> BackendResult<bool> {
        Ok(self.files.read().unwrap_or_else(|p| p.into_inner()).contains_key(&(kind, key_name(kind, name))))
    }

    /// Every kind can be staged: the pieces collect in a buffer of the staged file's own.
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        Ok(Some(Box::new(MemoryStaged { files: Arc::clone(&self.files), kind, data: Vec::new() })))
    }

    /// Writes leave no temporary files: nothing to remove.
    fn remove_stale_temporaries(&self, _age: std::time::Duration) -> BackendResult<(u64, u64)> {
        Ok((0, 0))
    }
}

/// A file of a [`MemoryBackend`] being written in pieces; dropped uncommitted, it vanishes.
struct MemoryStaged {
    files: Files,
    kind: FileKind,
    data: Vec<u8>,
}

impl StagedFile for MemoryStaged {
    fn append(&mut self, data: &[u8]) -> BackendResult<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn commit(self: Box<Self>, name: &str) -> BackendResult<()> {
        check_name(self.kind, name, "commit")?;
        let MemoryStaged { files, kind, data } = *self;
        insert(&files, kind, name, Bytes::from(data));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backend_conforms() {
        let b = MemoryBackend::new();
        crate::backend::conformance::run(&b, 1100).unwrap();
    }

    #[test]
    fn clones_share_files_and_staged_files_appear_on_commit() {
        let a = MemoryBackend::new();
        let b = a.clone();
        a.write_bytes(FileKind::Index, "ab", Bytes::from_static(b"x")).unwrap();
        assert_eq!(b.read(FileKind::Index, "ab").unwrap(), b"x");
        let mut s = b.stage(FileKind::Pack).unwrap().unwrap();
        s.append(b"12").unwrap();
        s.append(b"345").unwrap();
        assert!(!a.exists(FileKind::Pack, "cd").unwrap());
        s.commit("cd").unwrap();
        assert_eq!(a.read_range(FileKind::Pack, "cd", 1, 3).unwrap(), b"234");
        assert_eq!(a.len(), 2);
        assert_eq!(a.write_bytes(FileKind::Key, "../k", Bytes::new()).unwrap_err().kind, ErrorKind::Permanent);
    }
}
