//! Pack buffers and the uploader pool: finished packs are written (or their staged files
//! committed) on threads of their own, and their buffers reused.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::backend::{BackendError, ErrorKind, FileKind};
use crate::error::{Error, Result};
use crate::index::IndexPack;
use crate::pack::FinishedPack;

/// Pack buffers, reused once their pack is written: a fresh 16 MiB buffer costs 4,096 page
/// faults, which on a virtual machine cost more than filling it.
pub(super) struct PackBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    /// Bytes allocated per buffer: the pack size and room for a header (see [`PackWriter::fits`]).
    capacity: usize,
}

impl PackBuffers {
    /// Buffers kept for reuse at most; more are freed.
    const KEEP: usize = 4;

    pub(super) fn new(pack_size: usize) -> Self {
        PackBuffers { free: Mutex::new(Vec::new()), capacity: pack_size + pack_size / 16 }
    }

    pub(super) fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    pub(super) fn give(&self, mut buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < Self::KEEP && buf.capacity() >= self.capacity {
            buf.clear();
            free.push(buf);
        }
    }
}

/// Uploads finished packs on `connections` threads, so the workers that fill packs do not
/// wait for each upload and memory stays bounded (at most `connections` packs being uploaded,
/// plus one waiting per worker). A pack enters `uploaded` only once its write returned: index
/// files are made from that list, which keeps the order packs → index.
pub(super) struct Uploader {
    pub(super) tx: Option<crossbeam_channel::Sender<FinishedPack>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    uploaded: Arc<Mutex<Vec<IndexPack>>>,
    /// The first upload error, until reported.
    failed: Arc<Mutex<Option<BackendError>>>,
    /// The first upload error's class and text, once reported: what a later [`Uploader::check`]
    /// says stopped the uploads.
    reported: Mutex<Option<(ErrorKind, String)>>,
    /// Why no upload thread could be started, if none could.
    not_started: Option<String>,
    /// Set for good once any upload failed.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Uploader {
    pub(super) fn start(
        backend: Arc<dyn crate::backend::Backend>,
        connections: usize,
        dry_run: bool,
        buffers: Arc<PackBuffers>,
    ) -> Self {
        // A hand-over queue: a finished pack waits in its worker until an uploader takes it.
        let (tx, rx) = crossbeam_channel::bounded::<FinishedPack>(0);
        let uploaded = Arc::new(Mutex::new(Vec::new()));
        let failed: Arc<Mutex<Option<BackendError>>> = Arc::new(Mutex::new(None));
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..connections)
            .map(|_| {
                let (rx, backend, uploaded, failed, stopped, buffers) =
                    (rx.clone(), backend.clone(), uploaded.clone(), failed.clone(), stopped.clone(), buffers.clone());
                std::thread::Builder::new().name("cairn-upload".into()).spawn(move || {
                    for mut done in rx {
                        // After a failure the queue is drained without uploading: the backup stops.
                        if stopped.load(Ordering::SeqCst) {
                            continue;
                        }
                        let id = done.id.0;
                        let r = match done.staged.take() {
                            Some(file) if !dry_run => file.commit(&id),
                            _ if dry_run => Ok(()),
                            _ => {
                                // The buffer goes to the backend without a copy and comes back
                                // for the next pack once the backend has let go of it.
                                let data = bytes::Bytes::from(std::mem::take(&mut done.bytes));
                                let r = backend.write_bytes(FileKind::Pack, &id, data.clone());
                                if let Ok(m) = data.try_into_mut() {
                                    done.bytes = Vec::from(m);
                                }
                                r
                            }
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
                                failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                            }
                        }
                    }
                })
            })
            .collect::<Vec<_>>();
        // Fewer threads than asked only slow the uploads down; none stops the backup.
        let mut not_started = None;
        let threads: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.map_err(|e| not_started = Some(format!("cannot start a pack upload thread: {e}"))).ok())
            .collect();
        if !threads.is_empty() {
            not_started = None;
        }
        Uploader { tx: Some(tx), threads, uploaded, failed, reported: Mutex::new(None), not_started, stopped }
    }

    /// The upload error, once; after it, an error of the same class that says an upload failed
    /// earlier and why.
    pub(super) fn check(&self) -> Result<()> {
        if let Some(why) = &self.not_started {
            return Err(Error::internal(why.clone()));
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            *reported = Some((e.kind, e.to_string()));
            return Err(e.into());
        }
        if self.stopped.load(Ordering::SeqCst) {
            let (kind, why) = reported.clone().unwrap_or((ErrorKind::Permanent, "reason not kept".into()));
            return Err(Error::Backend(BackendError {
                kind,
                context: "stopped: an earlier pack upload failed".into(),
                source: why.into(),
            }));
        }
        Ok(())
    }

    /// Close the queue and wait for every upload to end.
    pub(super) fn finish(&mut self) -> Result<()> {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check()
    }

    pub(super) fn take_uploaded(&self, at_least: usize) -> Vec<IndexPack> {
        let mut u = self.uploaded.lock().unwrap_or_else(|p| p.into_inner());
        if u.len() >= at_least.max(1) {
            std::mem::take(&mut *u)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_buffers_are_reused_up_to_a_few() {
        let b = PackBuffers::new(1 << 20);
        let first = b.take();
        assert!(first.capacity() >= b.capacity);
        let ptr = first.as_ptr();
        b.give(first);
        let again = b.take();
        assert_eq!(again.as_ptr(), ptr, "a given buffer is taken again");
        assert!(again.is_empty());
        // A small buffer is not kept; at most KEEP are.
        b.give(Vec::with_capacity(16));
        for _ in 0..PackBuffers::KEEP + 2 {
            b.give(Vec::with_capacity(b.capacity));
        }
        assert_eq!(b.free.lock().unwrap().len(), PackBuffers::KEEP);
    }
}
