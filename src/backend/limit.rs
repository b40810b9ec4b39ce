//! Bandwidth limits: paces uploads and downloads to at most a number of bytes per second
//! (`--limit-upload`, `--limit-download`, given in KiB/s). Each transfer reserves its share of
//! a shared schedule (`Pace`) and waits until its slot; concurrent transfers together stay
//! under the limit. [`LimitBackend`] paces whole files and serves local repositories; remote
//! ones are paced piece by piece in their HTTP transport (`transport.rs`), as a slow link
//! would pace them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Backend, BackendResult, FileKind, Properties, StagedFile};
use crate::id::Id;

/// A schedule shared by the transfers of one direction: each reserves the time its bytes take
/// at the limit, after the reservations before it.
pub(crate) struct Pace {
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
}

impl Pace {
    /// A limit of `kib_per_sec` KiB/s; `None` for no limit (`None` or 0).
    pub(crate) fn new(kib_per_sec: Option<u64>) -> Option<Self> {
        kib_per_sec
            .filter(|k| *k > 0)
            .map(|k| Pace { bytes_per_sec: k.saturating_mul(1024), next_free: Mutex::new(Instant::now()) })
    }

    /// Reserve `bytes` on the schedule; returns when the reservation ends (the bytes may go
    /// then, or be counted as gone by then).
    pub(crate) fn reserve(&self, bytes: u64) -> Instant {
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(Instant::now());
        *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        *next
    }

    /// Reserve `bytes` on the schedule and sleep until the reservation ends.
    fn take(&self, bytes: u64) {
        let until = self.reserve(bytes);
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    }
}

/// Wraps a backend with upload and download limits.
pub struct LimitBackend<B> {
    inner: B,
    up: Option<Arc<Pace>>,
    down: Option<Arc<Pace>>,
}

impl<B: Backend> LimitBackend<B> {
    /// Limits in KiB/s; `None` or 0 means unlimited.
    pub fn new(inner: B, upload_kib: Option<u64>, download_kib: Option<u64>) -> Self {
        LimitBackend { inner, up: Pace::new(upload_kib).map(Arc::new), down: Pace::new(download_kib).map(Arc::new) }
    }
}

impl<B: Backend> Backend for LimitBackend<B> {
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
        if let Some(p) = &self.up {
            p.take(data.len() as u64);
        }
        self.inner.write_bytes(kind, id, data)
    }
    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        let d = self.inner.read(kind, id)?;
        if let Some(p) = &self.down {
            p.take(d.len() as u64);
        }
        Ok(d)
    }
    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        if let Some(p) = &self.down {
            p.take(length);
        }
        self.inner.read_range(kind, id, offset, length)
    }
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        self.inner.list_names(kind)
    }
    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        self.inner.remove(kind, id)
    }
    fn remove_stale_temporaries(&self, age: std::time::Duration) -> BackendResult<(u64, u64)> {
        self.inner.remove_stale_temporaries(age)
    }
    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        self.inner.exists(kind, id)
    }
    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        if let Some(p) = &self.down {
            p.take(length);
        }
        self.inner.read_range_cached(kind, id, offset, length)
    }
    /// The wrapped backend's staged file, each piece paced by the upload limit.
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        let Some(inner) = self.inner.stage(kind)? else { return Ok(None) };
        Ok(Some(match &self.up {
            Some(p) => Box::new(PacedStaged { inner, pace: Arc::clone(p) }),
            None => inner,
        }))
    }
}

/// A staged file whose appends wait for their slot under the upload limit.
struct PacedStaged {
    inner: Box<dyn StagedFile>,
    pace: Arc<Pace>,
}

impl StagedFile for PacedStaged {
    fn append(&mut self, data: &[u8]) -> BackendResult<()> {
        self.pace.take(data.len() as u64);
        self.inner.append(data)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn commit(self: Box<Self>, id: &Id) -> BackendResult<()> {
        self.inner.commit(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_spreads_transfers_over_time() {
        let p = Pace::new(Some(100)).unwrap(); // 100 KiB/s
        let t = Instant::now();
        for _ in 0..3 {
            p.take(10 * 1024); // 3 × 0.1 s
        }
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(290), "{el:?}");
        assert!(Pace::new(Some(0)).is_none() && Pace::new(None).is_none());
    }

    /// `--limit-upload` on a local repository keeps staged packs (it used to turn them off:
    /// the wrapper answered `stage` with its default, "no staging"), and paces their pieces.
    #[test]
    fn limit_keeps_staged_packs_and_paces_them() {
        let dir = tempfile::tempdir().unwrap();
        let local = crate::backend::local::LocalBackend::new(dir.path().join("repo"));
        local.create().unwrap();
        let b = LimitBackend::new(local, Some(1024), None); // 1 MiB/s
        let t = Instant::now();
        let mut s = b.stage(FileKind::Pack).unwrap().expect("a limited local backend still stages packs");
        s.append(&[7u8; 200 * 1024]).unwrap();
        s.append(&[8u8; 100 * 1024]).unwrap();
        assert_eq!(s.len(), 300 * 1024);
        let name = crate::id::Id([0xef; 32]);
        s.commit(&name).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(280), "not paced: {:?}", t.elapsed());
        assert_eq!(b.read(FileKind::Pack, &name).unwrap().len(), 300 * 1024);
        assert!(b.stage(FileKind::Index).unwrap().is_none());
    }
}
