//! An in-memory backend: a map from (kind, id) to bytes, for tests and for library users
//! that want a repository without a disk (a dry run, a fuzz target). It keeps the whole
//! contract of [`Backend`]: whole-file writes appear at once, staged files appear only when
//! committed, missing files are [`ErrorKind::NotFound`], a range past the end is
//! [`ErrorKind::Corrupt`]. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind, Properties, StagedFile};
use crate::id::Id;

/// The files of one in-memory repository, shared by the backend and its staged files.
type Files = Arc<RwLock<HashMap<(FileKind, Id), Bytes>>>;

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

    fn get(&self, kind: FileKind, id: &Id) -> BackendResult<Bytes> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.get(&key(kind, id)).cloned().ok_or_else(|| BackendError {
            kind: ErrorKind::NotFound,
            context: format!("read {}", kind.path(id)),
            source: "no such file".into(),
        })
    }
}

/// The map key of a file: the config has one id whatever is asked ([`super::CONFIG_ID`]).
fn key(kind: FileKind, id: &Id) -> (FileKind, Id) {
    (kind, if kind == FileKind::Config { super::CONFIG_ID } else { *id })
}

fn insert(files: &Files, kind: FileKind, id: &Id, data: Bytes) {
    files.write().unwrap_or_else(|p| p.into_inner()).insert(key(kind, id), data);
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    fn properties(&self) -> Properties {
        Properties::MEMORY
    }

    fn create(&self) -> BackendResult<()> {
        if self.get(FileKind::Config, &super::CONFIG_ID).is_ok() {
            return Err(BackendError {
                kind: ErrorKind::Permanent,
                context: "create repository in memory".into(),
                source: "a config file already exists".into(),
            });
        }
        self.created.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
        insert(&self.files, kind, id, data);
        Ok(())
    }

    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        self.get(kind, id).map(|b| b.to_vec())
    }

    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let data = self.get(kind, id)?;
        let range = usize::try_from(offset).ok().and_then(|s| Some(s..s.checked_add(usize::try_from(length).ok()?)?));
        range.and_then(|r| data.get(r)).map(<[u8]>::to_vec).ok_or_else(|| BackendError {
            kind: ErrorKind::Corrupt,
            context: format!("read {length} bytes at {offset} of {}", kind.path(id)),
            source: format!("the file has {} bytes", data.len()).into(),
        })
    }

    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        // Already in memory: nothing to keep.
        self.read_range(kind, id, offset, length)
    }

    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        Ok(files
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, n), d)| {
                (if kind == FileKind::Config { "config".to_string() } else { n.to_hex() }, d.len() as u64)
            })
            .collect())
    }

    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        self.files.write().unwrap_or_else(|p| p.into_inner()).remove(&key(kind, id));
        Ok(())
    }

    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        Ok(self.files.read().unwrap_or_else(|p| p.into_inner()).contains_key(&key(kind, id)))
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

    fn commit(self: Box<Self>, id: &Id) -> BackendResult<()> {
        let MemoryStaged { files, kind, data } = *self;
        insert(&files, kind, id, Bytes::from(data));
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
        let (ab, cd) = (Id([0xab; 32]), Id([0xcd; 32]));
        a.write_bytes(FileKind::Index, &ab, Bytes::from_static(b"x")).unwrap();
        assert_eq!(b.read(FileKind::Index, &ab).unwrap(), b"x");
        let mut s = b.stage(FileKind::Pack).unwrap().unwrap();
        s.append(b"12").unwrap();
        s.append(b"345").unwrap();
        assert!(!a.exists(FileKind::Pack, &cd).unwrap());
        s.commit(&cd).unwrap();
        assert_eq!(a.read_range(FileKind::Pack, &cd, 1, 3).unwrap(), b"234");
        assert_eq!(a.len(), 2);
        assert_eq!(a.list(FileKind::Pack).unwrap(), vec![(cd, 5)]);
        assert_eq!(a.list_names(FileKind::Index).unwrap(), vec![(ab.to_hex(), 1)]);
    }
}
