//! Repository locks (repo-format.md, "Locks").
//!
//! A lock is a small encrypted object in `locks/`. Commands that only add to the repository or
//! read it (backup, restore, check, ls, mount...) take a **shared** lock; commands that delete
//! (forget, prune, key remove) take an **exclusive** lock. An exclusive lock conflicts with every
//! other lock; shared locks coexist. This is restic's model (restic's design document, "Locks").
//!
//! A held lock is refreshed every [`LockOptions::refresh_every`] (a new lock file is written, then
//! the previous one deleted: storage files are immutable). A lock is **stale**:
//! - on the same host: when its process is gone (no such pid, or the pid now belongs to a process
//!   that started at another time). A live process's lock is never stale, however old: a backup
//!   stopped with SIGSTOP still holds its lock when it resumes.
//! - from another host: when it was not refreshed for [`LockOptions::stale_after`] (30 minutes).
//!
//! Stale locks do not conflict. A process that takes an exclusive lock deletes the stale locks it
//! overrides, so a stopped process that resumes finds its lock gone ([`RepoLock::check`]) and
//! must not write a snapshot that could reference data deleted meanwhile.
//!
//! A lock file that cannot be decoded (empty, garbage, written with another key or by a cairn
//! with another format version) is **unreadable**: it may still belong to a running process
//! cairn cannot identify, so it conflicts with every lock, shared or exclusive (as in restic),
//! and the error names the file. [`remove_locks`] (`cairn unlock`) removes unreadable lock
//! files, with or without removing every lock. A lock file whose read fails for another reason (the storage is
//! unreachable) is an error, never taken for "no lock".
//!
//! Taking a lock writes a lock file first: every error after that write removes it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{ErrorKind, FileKind};
use crate::error::{Error, Result};
use crate::id::LockId;
use crate::repository::Repository;
use crate::tree::Timestamp;

/// The plaintext of a lock file (bincode, see repo-format.md "Locks").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// When the lock was written (taken or last refreshed).
    pub time: Timestamp,
    /// True for an exclusive lock.
    pub exclusive: bool,
    /// Host name of the holder.
    pub hostname: String,
    /// User name of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
    /// Start time of that process, in clock ticks after boot (`/proc/<pid>/stat` field 22); 0
    /// when unknown. Tells a live holder from a new process that reuses its pid.
    pub process_start: u64,
    /// The command holding the lock (`backup`, `prune`...).
    pub command: String,
}

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Coexists with other shared locks.
    Shared,
    /// Conflicts with every other lock.
    Exclusive,
}

/// Timing of locks, seconds as [`Duration`]s.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// A lock from another host not refreshed for this long is stale (default 30 minutes,
    /// restic's value).
    pub stale_after: Duration,
    /// How often a held lock is refreshed (default 5 minutes, restic's value).
    pub refresh_every: Duration,
    /// Keep trying to take a conflicting lock for this long before failing (restic's
    /// `--retry-lock`; default 0: fail at once).
    pub retry_for: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            stale_after: Duration::from_secs(30 * 60),
            refresh_every: Duration::from_secs(5 * 60),
            retry_for: Duration::ZERO,
        }
    }
}

/// A lock file found in `locks/`.
#[derive(Clone, Debug)]
pub struct FoundLock {
    /// Its id (the file's name).
    pub id: LockId,
    /// Its contents, or why they could not be read.
    pub info: std::result::Result<LockInfo, String>,
}

impl FoundLock {
    /// True when the lock no longer protects anything (see the module documentation).
    pub fn is_stale(&self, opts: &LockOptions) -> bool {
        match &self.info {
            Ok(info) => is_stale(info, opts),
            // An unreadable lock is not stale: it may be a live process's (`cairn unlock`
            // removes it, see [`remove_locks`]).
            Err(_) => false,
        }
    }

    /// True when the lock file could not be decoded (see the module documentation).
    pub fn is_unreadable(&self) -> bool {
        self.info.is_err()
    }

    /// One line describing the holder.
    pub fn describe(&self) -> String {
        match &self.info {
            Ok(i) => {
                let age = Timestamp::now().secs.saturating_sub(i.time.secs).max(0);
                format!(
                    "{} lock {} held by `cairn {}` (pid {}) of {}@{}, written {} ago",
                    if i.exclusive { "an exclusive" } else { "a shared" },
                    self.id.short(),
                    i.command,
                    i.pid,
                    i.username,
                    i.hostname,
                    crate::util::human_age(age as u64)
                )
            }
            Err(e) => format!(
                "lock file locks/{} cannot be read ({e}); it is treated as held by an unknown process until it is removed",
                self.id
            ),
        }
    }
}

/// The error for a lock's state mutex poisoned by a panicking thread: a bug, not a conflict.
fn poisoned() -> Error {
    Error::internal("the lock's state was poisoned by a thread that panicked")
}

/// Start time of process `pid` in clock ticks after boot, from `/proc/<pid>/stat`; `None` when
/// the process does not exist or /proc cannot tell.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when process `pid` exists on this host (signal 0; EPERM means it exists).
fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if raw <= 0 {
        return false;
    }
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None), Err(nix::errno::Errno::ESRCH))
}

fn is_stale(info: &LockInfo, opts: &LockOptions) -> bool {
    if info.hostname == crate::util::hostname() {
        if !process_alive(info.pid) {
            return true;
        }
        // A recorded start time that no longer matches: the pid was reused.
        return info.process_start != 0 && process_start(info.pid).is_some_and(|s| s != info.process_start);
    }
    let age = Timestamp::now().secs.saturating_sub(info.time.secs);
    age > opts.stale_after.as_secs() as i64
}

/// Read every lock file of `repo`. A failed listing, or a lock file that cannot be read from
/// the storage, is an error (never "no locks"); a lock file that is read but cannot be decoded
/// (or does not match its name) is returned as unreadable ([`FoundLock::is_unreadable`]).
/// Files in `locks/` whose names are not ids are not locks: no lock can be written under them,
/// and none is listed.
pub fn list_locks(repo: &Repository) -> Result<Vec<FoundLock>> {
    let mut found = Vec::new();
    for (id, _) in repo.list::<LockInfo>()? {
        let info = match repo.load::<LockInfo>(&id) {
            Ok(i) => Ok(i),
            // Removed between the listing and the read: released meanwhile.
            Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => continue,
            Err(e @ Error::Backend(_)) => return Err(e),
            Err(e) => Err(e.to_string()),
        };
        found.push(FoundLock { id, info });
    }
    Ok(found)
}

fn write_lock<'a>(repo: &'a Repository, info: &LockInfo) -> Result<Written<'a>> {
    let id = repo.save(info)?;
    Ok(Written { repo, id, kept: false })
}

/// A lock file this process just wrote. Dropped without [`Written::keep`] (an error path), it
/// removes the file, so that no failure leaves this process's lock behind.
struct Written<'a> {
    repo: &'a Repository,
    id: LockId,
    kept: bool,
}

impl Written<'_> {
    /// The file's id.
    fn id(&self) -> LockId {
        self.id
    }

    /// Keep the file: it is the held lock now. Returns its id.
    fn keep(mut self) -> LockId {
        self.kept = true;
        self.id
    }
}

impl Drop for Written<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.repo.remove::<LockInfo>(&self.id);
        }
    }
}

/// Remove stale and unreadable locks (and, with `all`, every lock). Returns the ids removed.
/// Errors: a failed listing or removal.
pub fn remove_locks(repo: &Repository, opts: &LockOptions, all: bool) -> Result<Vec<LockId>> {
    let mut removed = Vec::new();
    for l in list_locks(repo)? {
        if all || l.is_stale(opts) || l.is_unreadable() {
            match repo.backend().remove(FileKind::Lock, &l.id.0) {
                Ok(()) => removed.push(l.id),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

struct Held {
    /// The repository, through which lock files are written and read.
    repo: Repository,
    info: Mutex<LockInfo>,
    /// The current lock file's id.
    id: Mutex<LockId>,
    /// When the current lock file was written.
    written: Mutex<Instant>,
    /// Set when the lock file vanished or could not be refreshed in time.
    lost: AtomicBool,
    /// Set by [`RepoLock::release`]: the lock file is gone and must not be written again.
    released: AtomicBool,
    /// Held while a refresh or a release runs, so that neither leaves a lock file behind.
    op: Mutex<()>,
    stale_after: Duration,
}

impl Held {
    /// Write a fresh lock file and delete the previous one. Fails (and marks the lock lost)
    /// when the previous lock file is gone: somebody treated it as stale and removed it.
    /// After a gap longer than the stale timeout (the process was stopped), it also lists the
    /// locks once the new file is written and gives up if another process holds an exclusive
    /// lock: that process may have taken ours for stale between our check and our write (each
    /// side writes its lock before it lists, so one of the two always sees the other).
    fn refresh(&self) -> Result<()> {
        let _op = self.op.lock().map_err(|_| poisoned())?;
        if self.released.load(Ordering::SeqCst) {
            return Ok(());
        }
        let lost = |msg: &str| {
            self.lost.store(true, Ordering::SeqCst);
            Err(Error::Locked(msg.to_string()))
        };
        let old = *self.id.lock().map_err(|_| poisoned())?;
        let after_gap = self.written.lock().map(|w| w.elapsed() >= self.stale_after).unwrap_or(true);
        match self.repo.backend().exists(FileKind::Lock, &old.0) {
            Ok(true) => {}
            Ok(false) => {
                return lost(
                    "this process's lock file was removed by another process (it was taken for stale); stopping",
                )
            }
            Err(e) => return Err(e.into()),
        }
        let mut info = self.info.lock().map_err(|_| poisoned())?.clone();
        info.time = Timestamp::now();
        let written = write_lock(&self.repo, &info)?;
        if after_gap {
            let opts = LockOptions { stale_after: self.stale_after, ..LockOptions::default() };
            // On an error or a conflict, dropping `written` removes the new file.
            if !conflicting(&self.repo, written.id(), LockKind::Shared, &opts)?.is_empty() {
                return lost("another process took an exclusive lock while this one was stopped; stopping");
            }
        }
        let new = written.keep();
        if let Ok(mut n) = self.id.lock() {
            *n = new;
        }
        if let Ok(mut w) = self.written.lock() {
            *w = Instant::now();
        }
        match self.repo.backend().remove(FileKind::Lock, &old.0) {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A lock held on a repository. Refreshed by a background thread; released (its file deleted)
/// on drop.
pub struct RepoLock {
    held: Arc<Held>,
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl RepoLock {
    /// Take a lock of `kind` on `repo` for `command`.
    ///
    /// Protocol: write this process's lock file, then list `locks/`; if any non-stale lock
    /// conflicts, delete ours and fail (or retry every 5 seconds for `opts.retry_for`). Taking an
    /// exclusive lock deletes the stale locks it overrides.
    /// Errors: [`Error::Locked`] naming the conflicting holder; backend errors (a failed listing
    /// is never taken for "no locks").
    pub fn acquire(repo: &Repository, kind: LockKind, command: &str, opts: &LockOptions) -> Result<RepoLock> {
        let pid = std::process::id();
        let info = LockInfo {
            time: Timestamp::now(),
            exclusive: kind == LockKind::Exclusive,
            hostname: crate::util::hostname(),
            username: crate::util::username(),
            pid,
            process_start: process_start(pid).unwrap_or(0),
            command: command.to_string(),
        };
        let deadline = Instant::now() + opts.retry_for;
        loop {
            // Every error return below drops `written`, which removes the lock file again.
            let written = write_lock(repo, &info)?;
            let conflicts = conflicting(repo, written.id(), kind, opts)?;
            if conflicts.is_empty() {
                if kind == LockKind::Exclusive {
                    fail::fail_point!("lock-stale-cleanup", |_| Err(Error::Locked(
                        "failpoint lock-stale-cleanup".into()
                    )));
                    // Remove the stale locks this lock overrides (see the module documentation).
                    for l in list_locks(repo)? {
                        if l.id != written.id() && l.is_stale(opts) {
                            let _ = repo.backend().remove(FileKind::Lock, &l.id.0);
                        }
                    }
                }
                // The refresher thread starts before the file is handed to `Held`: a failed
                // start still removes it.
                let (tx, rx) = crossbeam_channel::bounded::<()>(1);
                let (start_tx, start_rx) = crossbeam_channel::bounded::<Arc<Held>>(1);
                let every = opts.refresh_every;
                let refresher = std::thread::Builder::new()
                    .name("cairn-lock".into())
                    .spawn(move || {
                        let Ok(h) = start_rx.recv() else { return };
                        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                            if h.refresh().is_err() && h.lost.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    })
                    .map_err(|e| Error::internal(format!("cannot start the lock refresh thread: {e}")))?;
                let id = written.keep();
                let held = Arc::new(Held {
                    repo: repo.clone(),
                    info: Mutex::new(info),
                    id: Mutex::new(id),
                    written: Mutex::new(Instant::now()),
                    lost: AtomicBool::new(false),
                    released: AtomicBool::new(false),
                    op: Mutex::new(()),
                    stale_after: opts.stale_after,
                });
                // The thread waits for this; it cannot have exited (it only returns on a
                // closed channel), so the send does not fail.
                let _ = start_tx.send(held.clone());
                return Ok(RepoLock { held, stop: Some(tx), refresher: Some(refresher) });
            }
            drop(written);
            if Instant::now() >= deadline {
                let list: Vec<String> = conflicts.iter().map(|l| l.describe()).collect();
                return Err(Error::Locked(format!(
                    "{}; wait for it to finish, or if that process is gone, remove its lock",
                    list.join("; ")
                )));
            }
            std::thread::sleep(
                Duration::from_secs(5)
                    .min(deadline.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(100)),
            );
        }
    }

    /// Fail when this lock can no longer be trusted: its file was removed by another process,
    /// or it was not refreshed within the stale timeout (the process was stopped or the storage
    /// unreachable), so another host may have taken it for stale. Called before writing a
    /// snapshot and before prune deletes anything.
    /// Errors: [`Error::Locked`].
    pub fn check(&self) -> Result<()> {
        let h = &self.held;
        if h.lost.load(Ordering::SeqCst) {
            return Err(Error::Locked("this process lost its lock (another process removed it as stale)".into()));
        }
        let since = h.written.lock().map(|w| w.elapsed()).unwrap_or(Duration::MAX);
        if since >= h.stale_after {
            // Possibly stopped for a long time: only go on if the lock file is still there,
            // and renew it at once.
            h.refresh()?;
        }
        let id = *h.id.lock().map_err(|_| poisoned())?;
        if !h.repo.backend().exists(FileKind::Lock, &id.0)? {
            h.lost.store(true, Ordering::SeqCst);
            return Err(Error::Locked(
                "this process's lock file was removed by another process (it was taken for stale)".into(),
            ));
        }
        Ok(())
    }

    /// The current lock file's id (a refresh writes a new file: the id changes).
    pub fn id(&self) -> LockId {
        self.held.id.lock().map(|n| *n).unwrap_or_else(|p| *p.into_inner())
    }

    /// Remove the lock file now and never refresh it again: for a process about to exit
    /// without running destructors (a closed output pipe, a second Ctrl-C). Idempotent.
    pub fn release(&self) {
        let h = &self.held;
        let _op = h.op.lock();
        if !h.released.swap(true, Ordering::SeqCst) {
            let _ = h.repo.backend().remove(FileKind::Lock, &self.id().0);
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        self.release();
    }
}

/// Proof that the holder may read the repository: a shared lock, or no lock at all when the
/// user asked for none (`--no-lock`, restic's flag for read-only storage). Operations that only
/// read take `&ReadLock`; one that writes cannot be given one (see [`AppendLock`]).
#[derive(Clone)]
pub struct ReadLock(Option<Arc<RepoLock>>);

/// A shared lock held by an operation that **adds** to the repository (backup, key add): it can
/// only be made by taking a lock, never by skipping one, since a snapshot written beside a
/// prune could name packs the prune deletes.
///
/// ```compile_fail
/// // A read lock (possibly no lock at all) cannot stand in for an append lock:
/// fn backup(_lock: &cairn::lock::AppendLock) {}
/// backup(&cairn::lock::ReadLock::unlocked());
/// ```
#[derive(Clone)]
pub struct AppendLock(Arc<RepoLock>);

/// An exclusive lock, held by an operation that **deletes** (forget, prune, key remove).
///
/// ```compile_fail
/// fn prune(_lock: &cairn::lock::ExclusiveLock) {}
/// let repo: cairn::Repository = todo!();
/// let shared = cairn::lock::AppendLock::acquire(&repo, "backup", &Default::default()).unwrap();
/// prune(&shared);
/// ```
#[derive(Clone)]
pub struct ExclusiveLock(Arc<RepoLock>);

impl ReadLock {
    /// Take a shared lock on `repo` for `command`. Errors: as [`RepoLock::acquire`].
    pub fn acquire(repo: &Repository, command: &str, opts: &LockOptions) -> Result<ReadLock> {
        Ok(ReadLock(Some(Arc::new(RepoLock::acquire(repo, LockKind::Shared, command, opts)?))))
    }

    /// No lock: for a user who asked for none (`--no-lock`). Only reads can run under it.
    pub fn unlocked() -> ReadLock {
        ReadLock(None)
    }

    /// See [`RepoLock::check`]; always `Ok` without a lock.
    pub fn check(&self) -> Result<()> {
        self.0.as_ref().map_or(Ok(()), |l| l.check())
    }

    /// The lock file held, if any (for a process that must release it before exiting without
    /// destructors).
    pub fn held(&self) -> Option<&Arc<RepoLock>> {
        self.0.as_ref()
    }
}

impl AppendLock {
    /// Take a shared lock on `repo` for `command`, to add to it. Errors: as [`RepoLock::acquire`].
    pub fn acquire(repo: &Repository, command: &str, opts: &LockOptions) -> Result<AppendLock> {
        Ok(AppendLock(Arc::new(RepoLock::acquire(repo, LockKind::Shared, command, opts)?)))
    }

    /// See [`RepoLock::check`]: call before writing an index file or a snapshot.
    pub fn check(&self) -> Result<()> {
        self.0.check()
    }

    /// The same lock, as permission to read.
    pub fn read(&self) -> ReadLock {
        ReadLock(Some(self.0.clone()))
    }

    /// The lock file held.
    pub fn held(&self) -> &Arc<RepoLock> {
        &self.0
    }
}

impl ExclusiveLock {
    /// Take an exclusive lock on `repo` for `command`. Errors: as [`RepoLock::acquire`].
    pub fn acquire(repo: &Repository, command: &str, opts: &LockOptions) -> Result<ExclusiveLock> {
        Ok(ExclusiveLock(Arc::new(RepoLock::acquire(repo, LockKind::Exclusive, command, opts)?)))
    }

    /// See [`RepoLock::check`]: call before deleting anything.
    pub fn check(&self) -> Result<()> {
        self.0.check()
    }

    /// The same lock, as permission to read.
    pub fn read(&self) -> ReadLock {
        ReadLock(Some(self.0.clone()))
    }

    /// The same lock, as permission to add (an exclusive lock covers adding).
    pub fn append(&self) -> AppendLock {
        AppendLock(self.0.clone())
    }

    /// The lock file held.
    pub fn held(&self) -> &Arc<RepoLock> {
        &self.0
    }
}

/// Non-stale locks other than `own` that conflict with a lock of `kind`.
fn conflicting(repo: &Repository, own: LockId, kind: LockKind, opts: &LockOptions) -> Result<Vec<FoundLock>> {
    Ok(list_locks(repo)?
        .into_iter()
        .filter(|l| l.id != own)
        .filter(|l| !l.is_stale(opts))
        .filter(|l| kind == LockKind::Exclusive || !matches!(&l.info, Ok(i) if !i.exclusive))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str, pid: u32, age_secs: i64) -> LockInfo {
        let mut time = Timestamp::now();
        time.secs -= age_secs;
        LockInfo {
            time,
            exclusive: false,
            hostname: host.into(),
            username: "u".into(),
            pid,
            process_start: 0,
            command: "backup".into(),
        }
    }

    #[test]
    fn staleness_rules() {
        let opts = LockOptions::default();
        let me = std::process::id();
        let host = crate::util::hostname();
        // This process, however old the lock: alive, not stale.
        assert!(!is_stale(&info(&host, me, 10 * 3600), &opts));
        // A pid that cannot exist on this host: stale at once.
        assert!(is_stale(&info(&host, u32::MAX - 1, 0), &opts));
        // Our pid but another start time: reused pid, stale.
        let mut reused = info(&host, me, 0);
        reused.process_start = process_start(me).unwrap_or(1).wrapping_add(12345);
        assert!(is_stale(&reused, &opts));
        // Another host: by age only.
        assert!(!is_stale(&info("elsewhere.invalid", 1, 29 * 60), &opts));
        assert!(is_stale(&info("elsewhere.invalid", 1, 31 * 60), &opts));
    }

    #[test]
    fn locks_conflict_by_kind_and_unreadable_ones_are_removed() {
        let (_d, repo) = crate::repository::tests::temp_repo();
        let opts = LockOptions::default();
        let a = ReadLock::acquire(&repo, "ls", &opts).unwrap();
        let b = AppendLock::acquire(&repo, "backup", &opts).unwrap();
        assert_eq!(list_locks(&repo).unwrap().len(), 2);
        assert!(matches!(ExclusiveLock::acquire(&repo, "prune", &opts), Err(Error::Locked(_))));
        assert_eq!(list_locks(&repo).unwrap().len(), 2, "a refused lock leaves no file");
        a.check().unwrap();
        b.check().unwrap();
        drop((a, b));
        assert!(list_locks(&repo).unwrap().is_empty());
        // A lock file that does not decode conflicts with everything; unlock removes it.
        let garbage = LockId(crate::id::Id([0xab; 32]));
        repo.backend().write(FileKind::Lock, &garbage.0, b"garbage").unwrap();
        let found = list_locks(&repo).unwrap();
        assert!(found.len() == 1 && found[0].is_unreadable(), "{found:?}");
        assert!(matches!(ReadLock::acquire(&repo, "ls", &opts), Err(Error::Locked(_))));
        assert_eq!(remove_locks(&repo, &opts, false).unwrap(), vec![garbage]);
        let held = ExclusiveLock::acquire(&repo, "prune", &opts).unwrap();
        held.check().unwrap();
        assert_eq!(remove_locks(&repo, &opts, true).unwrap().len(), 1);
        assert!(matches!(held.check(), Err(Error::Locked(_))), "a removed lock is lost");
    }

    #[test]
    fn a_poisoned_state_is_an_internal_error() {
        assert_eq!(poisoned().kind(), crate::error::Kind::Internal);
    }

    #[test]
    fn own_start_time_is_known() {
        let me = std::process::id();
        assert!(process_start(me).is_some_and(|s| s > 0));
        assert!(process_alive(me));
    }
}
