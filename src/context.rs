//! What every operation is given besides its options: a cancellation token ([`Cancel`]) and a
//! progress sink ([`Progress`]), bundled as a [`Ctx`]. The lock an operation needs is a separate,
//! typed argument ([`crate::lock::ReadLock`], [`crate::lock::AppendLock`],
//! [`crate::lock::ExclusiveLock`]).
//!
//! The library holds no process-global state: the CLI makes one [`Cancel`] per process and
//! cancels it from its Ctrl-C/SIGTERM handler; a library caller (a daemon running several
//! operations, a test) makes one per operation and cancels it when it likes. This is the shape of
//! Go's `context.Context` as restic uses it, and of rustic_core's progress bars trait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A cancellation token: cheap to clone, every clone sees the same state; once cancelled it
/// stays cancelled. Operations poll it between units of work (a file, a blob, a tree) and stop
/// with [`Error::Interrupted`], writing nothing that would look complete.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel every operation holding a clone of this token. Returns true when it was already
    /// cancelled (a second Ctrl-C).
    pub fn cancel(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    /// True once [`Cancel::cancel`] was called on any clone.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Error::Interrupted)` once cancelled, else `Ok(())`: for `?` between units of work.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// The flag itself, for code that polls an `AtomicBool` (a child process's watcher).
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

/// Something an operation skipped or could not do that does not stop it, given to
/// [`Progress::warn`]. The library prints nothing: the caller decides where a warning goes
/// (the CLI prints it on stderr, adding what to do about it in its own words).
#[derive(Debug)]
#[non_exhaustive]
pub enum Warning<'a> {
    /// A snapshot file that cannot be decoded was left out of a listing of snapshots.
    SkippedDamagedSnapshot(&'a crate::repository::DamagedSnapshot),
    /// A mounted view could not check the list of snapshots again; it goes on showing the
    /// snapshots it showed.
    MountRefreshFailed(&'a Error),
    /// A mounted view failed to serve a request: the kernel only passes on an errno (EIO), so
    /// this is where the error itself is reported.
    MountRequestFailed(&'a Error),
    /// A drill's scratch directory could not be removed (the drill's verdict stands; the
    /// directory is left for the operator to remove).
    DrillCleanupFailed(&'a Error),
    /// A copy into a repository with its own keys could not learn the blob ids of an earlier
    /// copy (a tree of it unreadable): the copy goes on, reading and re-hashing the data it
    /// would have learned.
    CopyLearningFailed(&'a Error),
}

impl std::fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::SkippedDamagedSnapshot(d) => write!(f, "{d}; it is skipped"),
            Warning::MountRefreshFailed(e) => write!(f, "cannot refresh the snapshot list: {e}"),
            Warning::MountRequestFailed(e) => write!(f, "{e}"),
            Warning::DrillCleanupFailed(e) => write!(f, "the drill's scratch directory could not be removed: {e}"),
            Warning::CopyLearningFailed(e) => {
                write!(f, "cannot match the last copy in the target ({e}); its data is read from the source again")
            }
        }
    }
}

/// Where an operation reports what it is doing, and what it skipped ([`Warning`]s). Every
/// method has an empty default so that a sink implements only what it shows; [`NoProgress`]
/// shows nothing.
///
/// Warnings go through this sink rather than being returned with a result because they arise
/// deep inside operations that return something else (a restore resolving `latest`, a backup
/// choosing its parent, a mount refreshing its view in the background long after it was
/// started): the sink reaches the caller from all of them without every report carrying a
/// list of warnings.
pub trait Progress: Send + Sync {
    /// The operation entered a new phase (`"loading index files"`, `"repacking 12 blobs"`).
    fn phase(&self, _what: &str) {}

    /// The operation skipped something or failed at something that does not stop it.
    fn warn(&self, _warning: &Warning<'_>) {}
}

/// A [`Progress`] that shows nothing (library callers, `--quiet`, `--json`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The context of one operation: its cancellation token and its progress sink.
#[derive(Clone)]
pub struct Ctx {
    /// Polled between units of work; see [`Cancel`].
    pub cancel: Cancel,
    /// Where phases are reported.
    pub progress: Arc<dyn Progress>,
}

impl Ctx {
    /// A context with `cancel` and no progress output.
    pub fn new(cancel: Cancel) -> Self {
        Ctx { cancel, progress: Arc::new(NoProgress) }
    }

    /// This context reporting to `progress` instead.
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        Ctx { progress, ..self }
    }

    /// Shorthand for `self.cancel.check()`: `Err(Error::Interrupted)` once cancelled.
    pub fn check(&self) -> Result<()> {
        self.cancel.check()
    }

    /// Shorthand for `self.progress.warn(warning)`.
    pub fn warn(&self, warning: &Warning<'_>) {
        self.progress.warn(warning)
    }

    /// Shorthand for `self.cancel.is_cancelled()`.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new(Cancel::new())
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("cancel", &self.cancel).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_cancellation() {
        let c = Cancel::new();
        let d = c.clone();
        assert!(c.check().is_ok());
        assert!(!d.cancel());
        assert!(c.is_cancelled());
        assert!(matches!(c.check(), Err(Error::Interrupted)));
        assert!(c.cancel(), "a second cancel reports the first");
    }
}
