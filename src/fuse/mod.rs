//! A read-only FUSE view of a repository, laid out as restic's `mount` does
//! (restic `internal/fuse`, documented in restic's "Browsing repository objects" and
//! `restic help mount`):
//!
//! ```text
//! snapshots/<time>/...          every snapshot, named by its time
//! ids/<short id>/...            every snapshot, named by its short id
//! hosts/<host>/<time>/...       the snapshots of each host
//! tags/<tag>/<time>/...         the snapshots carrying each tag (a snapshot with two tags is in both)
//! <each of those dirs>/latest   a symlink to the newest snapshot in that directory
//! ```
//!
//! `<time>` is restic's default time template `2006-01-02T15:04:05Z07:00`: RFC 3339 to the
//! second in the snapshot's own time zone, `Z` for UTC. Snapshots that share a name in one
//! directory get `-1`, `-2`... appended in time order (restic's `uniqueName`). Below a snapshot
//! directory is the snapshot's root tree: the source paths from `/` (`etc/postfix/...`), or
//! the one file of a `--stdin` backup.
//!
//! The snapshot list is checked again (restic: at most every 60 s) when a fixed directory is
//! listed or looked into; when it changed, the index is reloaded and the fixed part rebuilt.
//!
//! Inodes: the fixed directories and symlinks get numbers that stay the same across rebuilds
//! for the same path (and, for a snapshot directory, the same snapshot); the root is 1.
//! Entries of stored trees are numbered lazily: the first time a directory
//! is looked into, its tree is loaded and a contiguous range of inode numbers is reserved for
//! its entries (entry `i` is `base + i`), so an entry's inode is found from its number by one
//! binary search over the ranges, a name by one binary search in the sorted tree, and a listing
//! of n entries costs O(n). Inode numbers stay valid for the whole mount (`forget` is ignored;
//! loaded trees are kept).
//!
//! Reads: a file's content is its list of data blobs; at `open` the blobs' plaintext lengths
//! are taken from the index ([`Index::get`]) to give each blob's end offset, so a read at
//! offset X fetches only the blobs that overlap `[X, X + size)`. Fetched blobs go to a bounded
//! LRU cache ([`BLOB_CACHE_BYTES`]), so the kernel's successive reads within one blob fetch it
//! once; concurrent reads of one blob wait for one fetch, different blobs are fetched in
//! parallel. A read that continues the previous one has a background thread fetch the next
//! blobs ([`PREFETCH_BLOBS`]), so a sequential reader's hashing or copying overlaps the
//! decryption and decompression. [`MountStats`] counts what was fetched from the repository.

//!
//! Files: [`view`] (the fixed layout, inodes, attributes, reads through the shared blob
//! fetcher, `tree/fetch.rs`), `fs.rs` (the fuser callbacks), this module (mount and unmount).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::repository::Repository;
use crate::snapshot::SnapshotFilter;

mod fs;
pub mod view;

pub use crate::tree::fetch::FetchStats as MountStats;
pub use view::{snapshot_dir_name, CairnFs, BLOB_CACHE_BYTES, PREFETCH_BLOBS};

/// How to mount.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let other users access the mount (`allow_other`; needs `user_allow_other` in
    /// /etc/fuse.conf unless root).
    pub allow_other: bool,
    /// Which snapshots [`serve`] shows.
    pub filter: SnapshotFilter,
    /// How often [`serve`]'s view checks the snapshot list again (restic: 60 s).
    pub refresh: Duration,
}

/// What [`serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// The mountpoint was busy at the end and was detached lazily (see [`unmount`]).
    pub lazily_detached: bool,
    /// Stored bytes of the data blobs read from the repository.
    pub fetched_bytes: u64,
    /// Data blobs read from the repository.
    pub fetched_blobs: u64,
}

/// Serve `repo` (blobs located by `index`) read-only at `mountpoint` (restic's `mount`)
/// until `ctx` is cancelled or the mount is removed from outside, then unmount. `lock` is held
/// for the whole time, so that a prune cannot delete what the mount shows. `on_mounted` is
/// called once the mount is up.
/// Errors: those of [`CairnFs::new`], [`mount`] and [`unmount`]; [`Error::Interrupted`] when
/// cancelled before the mount was made; [`Error::Locked`] when the lock was lost.
pub fn serve(
    ctx: &Ctx,
    lock: &ReadLock,
    repo: Repository,
    index: Index,
    mountpoint: &Path,
    opts: &MountOptions,
    on_mounted: &mut dyn FnMut(),
) -> Result<ServeReport> {
    lock.check()?;
    let stats = Arc::new(MountStats::default());
    let fs = CairnFs::new(ctx, repo, index, opts.filter.clone(), opts.refresh, stats.clone())?;
    ctx.check()?;
    let session = mount(fs, mountpoint, opts)?;
    on_mounted();
    while !ctx.is_cancelled() && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let lazily_detached = unmount(session, mountpoint)?;
    Ok(ServeReport {
        lazily_detached,
        fetched_bytes: stats.bytes.load(Ordering::Relaxed),
        fetched_blobs: stats.blobs.load(Ordering::Relaxed),
    })
}

/// Mount `fs` read-only at `mountpoint` and serve it from background threads until the
/// returned session is dropped (which unmounts) or the mount is removed from outside
/// (`fusermount -u`). Needs `/dev/fuse` and the `fusermount3` or `fusermount` binary.
/// Errors: [`Error::Usage`] when the mountpoint is not an existing directory;
/// [`Error::Io`] when the kernel or fusermount refuses the mount.
pub fn mount(fs: CairnFs, mountpoint: &std::path::Path, opts: &MountOptions) -> Result<fuser::BackgroundSession> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::usage(format!("mountpoint {} is not a directory", mountpoint.display()))),
        Err(e) => {
            return Err(Error::usage(format!("mountpoint {}: {e}; create the directory first", mountpoint.display())))
        }
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("cairn".into()),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    // Several threads, so that a slow blob fetch does not stall listings.
    config.n_threads = Some(4);
    fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
        let hint = "FUSE needs /dev/fuse, and fusermount3 or fusermount when not run as root";
        Error::io(mountpoint, std::io::Error::new(e.kind(), format!("cannot mount: {e} ({hint})")))
    })
}

/// Unmount and stop serving. When the mountpoint is busy (a process has a file open or its
/// working directory in it), the mount is detached lazily instead (`umount -l`): it disappears
/// from the namespace at once, and its remaining users get errors once this process exits.
/// Returns true when the mount had to be detached lazily. A mount already removed from outside
/// (`fusermount -u`) is not unmounted again.
/// Errors: [`Error::Io`] when neither unmount works.
pub fn unmount(session: fuser::BackgroundSession, mountpoint: &std::path::Path) -> Result<bool> {
    if session.guard.is_finished() {
        session.join().map_err(|e| Error::io(mountpoint, e))?;
        return Ok(false);
    }
    match session.umount_and_join() {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let path = mountpoint.canonicalize().map_err(|e| Error::io(mountpoint, e))?;
            nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
                .map(|()| true)
                .map_err(|errno| Error::io(mountpoint, std::io::Error::from(errno)))
        }
        Err(e) => Err(Error::io(mountpoint, e)),
    }
}
