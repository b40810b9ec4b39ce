//! Retries transient backend failures with exponential backoff and full jitter
//! ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015). Not-found and permanent
//! errors pass through at once.

use std::time::Duration;

use rand::Rng;

use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind, Properties, StagedFile};
use crate::id::Id;

/// Wraps a backend; every call is tried up to `attempts` times while it fails transiently.
pub struct RetryBackend<B> {
    inner: B,
    attempts: u32,
    base: Duration,
    max_delay: Duration,
}

impl<B: Backend> RetryBackend<B> {
    /// Up to 8 attempts, delays drawn from [0, min(30 s, 250 ms · 2^n)]: about a minute of
    /// patience in all before a transient failure is reported.
    pub fn new(inner: B) -> Self {
        Self::with_policy(inner, 8, Duration::from_millis(250), Duration::from_secs(30))
    }

    /// A custom policy: `attempts` ≥ 1 tries in all, backoff from `base` capped at `max_delay`.
    pub fn with_policy(inner: B, attempts: u32, base: Duration, max_delay: Duration) -> Self {
        RetryBackend { inner, attempts: attempts.max(1), base, max_delay }
    }

    fn retry<T>(&self, mut f: impl FnMut() -> BackendResult<T>) -> BackendResult<T> {
        let mut attempt = 0;
        loop {
            match f() {
                Err(e) if e.kind == ErrorKind::Transient && attempt + 1 < self.attempts => {
                    let cap = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
                    let delay = rand::thread_rng().gen_range(Duration::ZERO..=cap);
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) if e.kind == ErrorKind::Transient => {
                    return Err(BackendError {
                        kind: e.kind,
                        context: format!("{} (gave up after {} attempts)", e.context, attempt + 1),
                        source: e.source,
                    })
                }
                other => return other,
            }
        }
    }
}

impl<B: Backend> Backend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn properties(&self) -> Properties {
        self.inner.properties()
    }
    fn create(&self) -> BackendResult<()> {
        self.retry(|| self.inner.create())
    }
    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
        // Each attempt sends the same bytes: the handle is cloned, not the data.
        self.retry(|| self.inner.write_bytes(kind, id, data.clone()))
    }
    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        self.retry(|| self.inner.read(kind, id))
    }
    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        self.retry(|| self.inner.read_range(kind, id, offset, length))
    }
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        self.retry(|| self.inner.list_names(kind))
    }
    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        self.retry(|| self.inner.remove(kind, id))
    }
    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        self.retry(|| self.inner.exists(kind, id))
    }
    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        self.retry(|| self.inner.read_range_cached(kind, id, offset, length))
    }
    /// Starting a staged file is retried; its pieces are not (an append that failed leaves
    /// the file in an unknown state: the caller drops it and writes the whole file again).
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        self.retry(|| self.inner.stage(kind))
    }
    fn remove_stale_temporaries(&self, age: Duration) -> BackendResult<(u64, u64)> {
        self.retry(|| self.inner.remove_stale_temporaries(age))
    }
}
