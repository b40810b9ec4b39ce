//! The view a mount shows: the fixed layout of snapshot directories (see the [`crate::fuse`]
//! docs), inode numbers for tree entries allocated as directories are looked into, attributes,
//! and reads of file content through the shared blob fetcher ([`crate::tree::fetch`]).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::context::{Cancel, Ctx, Warning};
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::fetch::{BlobFetcher, FetchOptions};
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// Bytes of plaintext blobs kept in the read cache (64 MiB: 32 blobs of the largest default
/// chunk size, 128 of the average).
pub const BLOB_CACHE_BYTES: usize = crate::tree::fetch::CACHE_BYTES;

/// How long the kernel may cache attributes and names of snapshot content: it never changes.
pub(super) const TTL: Duration = Duration::from_secs(60);
/// The same for the fixed directories and links, which change when snapshots are added.
pub(super) const FIXED_TTL: Duration = Duration::from_secs(1);

/// A fixed entry of the top of the view.
pub(super) enum VNode {
    /// A directory of fixed entries (name, inode, type), sorted by name.
    Dir { parent: u64, entries: Vec<(Vec<u8>, u64, FileType)>, mtime: Timestamp },
    /// A `latest` symlink.
    Link { target: Vec<u8>, mtime: Timestamp },
    /// A snapshot directory: its entries are the snapshot's root tree.
    Snapshot { parent: u64, tree: BlobId, mtime: Timestamp },
}

/// The entries of a directory whose tree was loaded: entry `i` has inode `base + i`.
pub(super) struct LoadedDir {
    tree: Arc<Tree>,
    base: u64,
}

/// Inodes of tree entries, allocated as directories are looked into.
pub(super) struct Inodes {
    /// Directory inode → its loaded tree and the base of its entries' inode range.
    pub(super) dirs: HashMap<u64, LoadedDir>,
    /// `(base, directory inode)` for each range, ascending by base.
    pub(super) ranges: Vec<(u64, u64)>,
    /// The next inode number to hand out.
    next: u64,
}

/// One open file: its blobs and where each ends in the file.
pub(super) struct OpenFile {
    pub(super) blobs: Vec<BlobId>,
    /// `ends[i]` is the file offset just past blob `i` (cumulative plaintext lengths).
    pub(super) ends: Vec<u64>,
    /// Where the latest read ended: a read starting near it is sequential.
    pub(super) last_end: AtomicU64,
}

/// What an inode number stands for.
pub(super) enum Resolved {
    Fixed(Arc<VNode>),
    /// Entry `idx` of `tree`.
    Entry(Arc<Tree>, usize),
}

/// The filesystem: a repository's snapshots, read-only. Build it with [`CairnFs::new`] and
/// mount it with [`super::mount`].
pub struct CairnFs {
    /// Reads data blobs (cached, fetched ahead of sequential reads) and holds the repository
    /// and its index (replaced when new snapshots appear: their blobs are in new index files).
    fetcher: BlobFetcher,
    /// The fixed part of the view, rebuilt when the snapshots change.
    fixed: std::sync::RwLock<Fixed>,
    /// Which snapshots are shown, and when the list was last checked.
    filter: SnapshotFilter,
    refresh: Mutex<Refresh>,
    /// Where warnings go (the progress sink of the mount's context); never cancelled: the
    /// mount is ended by unmounting.
    ctx: Ctx,
    pub(super) inodes: Mutex<Inodes>,
    pub(super) files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    pub(super) next_fh: AtomicU64,
    /// Owner of the fixed directories and links: the mounting user.
    uid: u32,
    gid: u32,
}

/// Blobs past the one a sequential read ends in that the prefetch thread fetches.
pub const PREFETCH_BLOBS: usize = 2;

/// The directory name restic gives a snapshot: RFC 3339 to the second in the snapshot's time
/// zone, `Z` for UTC (restic's default `--time-template` "2006-01-02T15:04:05Z07:00").
pub fn snapshot_dir_name(s: &Snapshot) -> String {
    s.local_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
    }
}

/// A 64-bit `st_rdev` (glibc's `makedev` layout) in the 32-bit form FUSE carries (the kernel's
/// `new_encode_dev`: minor's low byte, major, then minor's upper bits).
fn fuse_rdev(rdev: u64) -> u32 {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
}

pub(super) fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
    }
}

/// The fixed part of the view: inode → node. Nodes of earlier builds stay (a process may still
/// be in a snapshot directory that a newer build no longer shows).
#[derive(Default)]
struct Fixed {
    nodes: HashMap<u64, Arc<VNode>>,
    /// Stable inode numbers across rebuilds: `d:PATH` (directories), `s:PATH@ID` (snapshot
    /// directories: a name that comes to mean another snapshot gets a new inode), `l:PATH`
    /// (latest links).
    keys: HashMap<String, u64>,
}

/// When the snapshot list was last checked, and what it held.
struct Refresh {
    checked: std::time::Instant,
    ids: Vec<SnapshotId>,
    every: Duration,
}

/// Builds the fixed part of the view.
struct Builder<'a> {
    nodes: HashMap<u64, VNode>,
    keys: &'a mut HashMap<String, u64>,
    next: &'a mut u64,
}

impl Builder<'_> {
    fn ino(&mut self, key: String) -> u64 {
        let next = &mut *self.next;
        *self.keys.entry(key).or_insert_with(|| {
            *next += 1;
            *next - 1
        })
    }

    fn dir(&mut self, path: &str, parent: u64, mtime: Timestamp) -> u64 {
        let ino = if path.is_empty() { 1 } else { self.ino(format!("d:{path}")) };
        self.nodes.insert(ino, VNode::Dir { parent, entries: Vec::new(), mtime });
        ino
    }

    fn add(&mut self, dir: u64, name: String, ino: u64, kind: FileType) {
        if let Some(VNode::Dir { entries, .. }) = self.nodes.get_mut(&dir) {
            entries.push((name.into_bytes(), ino, kind));
        }
    }

    /// Directory `dir` (at `path`) of `snaps` (oldest first) named by `name`, made unique with
    /// `-1`, `-2`... (restic's `uniqueName`), and a `latest` symlink to the newest.
    fn snapshot_dir(
        &mut self,
        dir: u64,
        path: &str,
        snaps: &[&(SnapshotId, Snapshot)],
        name: impl Fn(&SnapshotId, &Snapshot) -> String,
    ) {
        let mut taken = std::collections::HashSet::new();
        let mut newest = None;
        for (id, s) in snaps {
            let base = name(id, s);
            let mut unique = base.clone();
            let mut i = 1;
            while unique == "latest" || !taken.insert(unique.clone()) {
                unique = format!("{base}-{i}");
                i += 1;
            }
            let ino = self.ino(format!("s:{path}/{unique}@{}", id.to_hex()));
            self.nodes.insert(ino, VNode::Snapshot { parent: dir, tree: s.tree, mtime: s.time });
            self.add(dir, unique.clone(), ino, FileType::Directory);
            newest = Some((unique, s.time));
        }
        if let Some((target, mtime)) = newest {
            let ino = self.ino(format!("l:{path}/latest"));
            self.nodes.insert(ino, VNode::Link { target: target.into_bytes(), mtime });
            self.add(dir, "latest".into(), ino, FileType::Symlink);
        }
    }

    /// The whole fixed view of `snapshots` (oldest first).
    fn build(&mut self, snapshots: &[(SnapshotId, Snapshot)]) {
        let newest = snapshots.last().map(|(_, s)| s.time).unwrap_or_else(Timestamp::now);
        let root = self.dir("", 1, newest);
        let all: Vec<&(SnapshotId, Snapshot)> = snapshots.iter().collect();
        for top in ["hosts", "ids", "snapshots", "tags"] {
            let d = self.dir(top, root, newest);
            self.add(root, top.into(), d, FileType::Directory);
            match top {
                "snapshots" => self.snapshot_dir(d, top, &all, |_, s| snapshot_dir_name(s)),
                "ids" => self.snapshot_dir(d, top, &all, |id, _| id.short()),
                _ => {
                    // hosts/<host>/ or tags/<tag>/: one directory per value.
                    let values = |s: &Snapshot| -> Vec<String> {
                        if top == "hosts" {
                            vec![file_name_of(&s.hostname)]
                        } else {
                            s.tags.iter().map(|t| file_name_of(t)).collect()
                        }
                    };
                    let mut names: Vec<String> = all.iter().flat_map(|(_, s)| values(s)).collect();
                    names.sort();
                    names.dedup();
                    for n in names {
                        let of: Vec<_> = all.iter().copied().filter(|(_, s)| values(s).contains(&n)).collect();
                        let path = format!("{top}/{n}");
                        let vd = self.dir(&path, d, of.last().map(|(_, s)| s.time).unwrap_or(newest));
                        self.add(d, n, vd, FileType::Directory);
                        self.snapshot_dir(vd, &path, &of, |_, s| snapshot_dir_name(s));
                    }
                }
            }
        }
        for v in self.nodes.values_mut() {
            if let VNode::Dir { entries, .. } = v {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
    }
}

/// A host name or tag as one file name, as restic makes it: `/` becomes `_`, an empty name or
/// `.` is `_`, `..` is `__`.
fn file_name_of(s: &str) -> String {
    match s {
        "" | "." => "_".into(),
        ".." => "__".into(),
        _ => s.replace(['/', '\0'], "_"),
    }
}

impl CairnFs {
    /// The view of the snapshots passing `filter`, reading trees and blobs through `index`
    /// (loaded by the caller; reloaded when new snapshots appear). The list of snapshots is
    /// checked again when a fixed directory is listed or looked into and `refresh` has passed
    /// since the last check (restic: 60 s). Files and directories that are not in a snapshot
    /// (the fixed top levels) belong to the mounting user. Warnings (a damaged snapshot file,
    /// a failed refresh, a request that failed with EIO) go to `ctx`'s progress sink, also
    /// while the mount runs in the background.
    /// Errors: those of [`Repository::snapshots`].
    pub fn new(
        ctx: &Ctx,
        repo: Repository,
        index: Index,
        filter: SnapshotFilter,
        refresh: Duration,
        stats: Arc<crate::tree::fetch::FetchStats>,
    ) -> Result<Self> {
        let ctx = Ctx::new(Cancel::new()).with_progress(ctx.progress.clone());
        let snapshots = repo.snapshots(&ctx, &filter)?;
        let mut fixed = Fixed::default();
        let mut next = 2;
        let mut b = Builder { nodes: HashMap::new(), keys: &mut fixed.keys, next: &mut next };
        b.build(&snapshots);
        fixed.nodes = b.nodes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        // One prefetch thread; it ends when the filesystem (its fetcher) is dropped. Reads are
        // never cancelled: the mount is ended by unmounting.
        let opts = FetchOptions { threads: 1, cache_bytes: BLOB_CACHE_BYTES };
        let fetcher = BlobFetcher::new(Arc::new(repo), Arc::new(index), &opts, stats, &Cancel::new());
        let ids = snapshots.iter().map(|(id, _)| *id).collect();
        Ok(CairnFs {
            fetcher,
            fixed: std::sync::RwLock::new(fixed),
            filter,
            ctx,
            refresh: Mutex::new(Refresh { checked: std::time::Instant::now(), ids, every: refresh }),
            inodes: Mutex::new(Inodes { dirs: HashMap::new(), ranges: Vec::new(), next }),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    /// The index blobs are located by (replaced when new snapshots appear).
    pub(super) fn index(&self) -> Arc<Index> {
        self.fetcher.index()
    }

    /// Check the snapshot list if the refresh interval has passed; when it changed, reload the
    /// index and rebuild the fixed view (inodes of unchanged paths stay). Errors are reported as
    /// warnings ([`Warning::MountRefreshFailed`]) and leave the view as it was.
    pub(super) fn refresh(&self) {
        // One check at a time; others go on with the current view.
        let Ok(mut r) = self.refresh.try_lock() else { return };
        if r.checked.elapsed() < r.every {
            return;
        }
        r.checked = std::time::Instant::now();
        let result = (|| -> Result<()> {
            let snapshots = self.fetcher.repo().snapshots(&self.ctx, &self.filter)?;
            let ids: Vec<SnapshotId> = snapshots.iter().map(|(id, _)| *id).collect();
            if ids == r.ids {
                return Ok(());
            }
            self.fetcher.set_index(Arc::new(self.fetcher.repo().load_index()?));
            let mut fixed = self.fixed.write().unwrap_or_else(|e| e.into_inner());
            let mut inodes = lock(&self.inodes);
            let Fixed { nodes, keys } = &mut *fixed;
            let mut b = Builder { nodes: HashMap::new(), keys, next: &mut inodes.next };
            b.build(&snapshots);
            nodes.extend(b.nodes.into_iter().map(|(k, v)| (k, Arc::new(v))));
            r.ids = ids;
            Ok(())
        })();
        if let Err(e) = result {
            self.ctx.warn(&Warning::MountRefreshFailed(&e));
        }
    }

    /// True when `ino` is one of the fixed directories (not a snapshot directory).
    pub(super) fn is_fixed_dir(&self, ino: u64) -> bool {
        matches!(
            self.fixed.read().unwrap_or_else(|e| e.into_inner()).nodes.get(&ino).map(|v| &**v),
            Some(VNode::Dir { .. })
        )
    }

    pub(super) fn resolve(&self, ino: u64) -> Option<Resolved> {
        if let Some(v) = self.fixed.read().unwrap_or_else(|e| e.into_inner()).nodes.get(&ino) {
            return Some(Resolved::Fixed(v.clone()));
        }
        let inodes = lock(&self.inodes);
        let i = inodes.ranges.partition_point(|(base, _)| *base <= ino).checked_sub(1)?;
        let (base, dir) = *inodes.ranges.get(i)?;
        let d = inodes.dirs.get(&dir)?;
        let idx = (ino - base) as usize;
        (idx < d.tree.nodes.len()).then(|| Resolved::Entry(d.tree.clone(), idx))
    }

    /// The loaded entries of directory `ino` (a snapshot directory or a tree entry that is a
    /// directory), loading its tree on first use. `Ok(None)`: `ino` is not such a directory.
    pub(super) fn tree_dir(&self, ino: u64) -> Result<Option<(Arc<Tree>, u64)>> {
        if let Some(d) = lock(&self.inodes).dirs.get(&ino) {
            return Ok(Some((d.tree.clone(), d.base)));
        }
        let tree_id = match self.resolve(ino) {
            Some(Resolved::Fixed(v)) => match &*v {
                VNode::Snapshot { tree, .. } => *tree,
                _ => return Ok(None),
            },
            Some(Resolved::Entry(tree, idx)) => match tree.nodes.get(idx) {
                Some(n) if n.kind == NodeKind::Dir => match n.subtree {
                    Some(id) => id,
                    None => return Err(Error::corrupt(format!("directory {:?}", n.name_lossy()), "has no subtree")),
                },
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let tree = Arc::new(self.fetcher.repo().load_tree(&self.fetcher.index(), &tree_id)?);
        let mut inodes = lock(&self.inodes);
        // Another thread may have loaded it meanwhile: keep the first.
        if let Some(d) = inodes.dirs.get(&ino) {
            return Ok(Some((d.tree.clone(), d.base)));
        }
        let base = inodes.next;
        inodes.next += tree.nodes.len().max(1) as u64;
        inodes.ranges.push((base, ino));
        inodes.dirs.insert(ino, LoadedDir { tree: tree.clone(), base });
        Ok(Some((tree, base)))
    }

    fn fixed_attr(&self, ino: u64, v: &VNode) -> FileAttr {
        let (kind, perm, size, nlink, mtime) = match v {
            VNode::Dir { entries, mtime, .. } => (FileType::Directory, 0o555, 0, 2 + entries.len() as u32, *mtime),
            VNode::Snapshot { mtime, .. } => (FileType::Directory, 0o555, 0, 2, *mtime),
            VNode::Link { target, mtime } => (FileType::Symlink, 0o777, target.len() as u64, 1, *mtime),
        };
        let t = system_time(mtime);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    pub(super) fn node_attr(ino: u64, n: &Node) -> FileAttr {
        let size = match n.kind {
            NodeKind::File => n.size,
            NodeKind::Symlink => n.symlink_target.len() as u64,
            _ => 0,
        };
        let mtime = system_time(n.mtime);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: system_time(n.ctime),
            crtime: mtime,
            kind: file_type(n.kind),
            perm: (n.mode & 0o7777) as u16,
            nlink: n.links.clamp(1, u64::from(u32::MAX)) as u32,
            uid: n.uid,
            gid: n.gid,
            rdev: fuse_rdev(n.rdev),
            blksize: 4096,
            flags: 0,
        }
    }

    pub(super) fn attr(&self, ino: u64) -> Option<FileAttr> {
        match self.resolve(ino)? {
            Resolved::Fixed(v) => Some(self.fixed_attr(ino, &v)),
            Resolved::Entry(tree, idx) => tree.nodes.get(idx).map(|n| Self::node_attr(ino, n)),
        }
    }

    /// Report a repository error as a warning ([`Warning::MountRequestFailed`]: the kernel only
    /// passes on an errno) and give EIO.
    pub(super) fn io_error(&self, e: &Error) -> Errno {
        self.ctx.warn(&Warning::MountRequestFailed(e));
        Errno::EIO
    }

    /// After a read of `[offset, end)`: when it continues the previous read (within a
    /// window, since the kernel's read-ahead requests are served by several threads out of
    /// order), have the prefetch thread fetch the next [`PREFETCH_BLOBS`] blobs, so that the
    /// reader rarely waits for a fetch. Random reads fetch nothing extra.
    pub(super) fn prefetch_after(&self, file: &OpenFile, offset: u64, end: u64) {
        const WINDOW: u64 = 1 << 20;
        let last = file.last_end.swap(end, Ordering::Relaxed);
        if offset.abs_diff(last) > WINDOW {
            return;
        }
        let next = file.ends.partition_point(|&e| e <= end);
        let ahead = file.blobs.get(next..).unwrap_or_default();
        self.fetcher.prefetch(ahead.get(..PREFETCH_BLOBS + 1).unwrap_or(ahead));
    }

    /// Up to `size` bytes of `file` from `offset`, fetching only the blobs that overlap them.
    pub(super) fn read_range(&self, file: &OpenFile, offset: u64, size: usize) -> Result<Vec<u8>> {
        let total = file.ends.last().copied().unwrap_or(0);
        let end = offset.saturating_add(size as u64).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        let mut i = file.ends.partition_point(|&e| e <= offset);
        while pos < end {
            let (Some(id), Some(&blob_end)) = (file.blobs.get(i), file.ends.get(i)) else { break };
            let blob_start = if i == 0 { 0 } else { file.ends.get(i - 1).copied().unwrap_or(0) };
            let data = self.fetcher.blob(id)?;
            let from = (pos - blob_start) as usize;
            let to = (end.min(blob_end) - blob_start) as usize;
            let part = data
                .get(from..to)
                .ok_or_else(|| Error::corrupt(format!("blob {}", id.short()), "shorter than the index says"))?;
            out.extend_from_slice(part);
            pos = blob_end.min(end);
            i += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdev_encoding_matches_the_kernels() {
        // /dev/null is 1:3, /dev/sda1 8:1, a device with a large minor 259:65536.
        let dev = |major: u64, minor: u64| {
            (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
        };
        assert_eq!(fuse_rdev(dev(1, 3)), (1 << 8) | 3);
        assert_eq!(fuse_rdev(dev(8, 1)), (8 << 8) | 1);
        assert_eq!(fuse_rdev(dev(259, 65536)), (259 << 8) | (65536 << 12));
    }

    #[test]
    fn hosts_and_tags_as_file_names() {
        assert_eq!(file_name_of("nightly"), "nightly");
        assert_eq!(file_name_of("a/b"), "a_b");
        assert_eq!(file_name_of(""), "_");
        assert_eq!(file_name_of("."), "_");
        assert_eq!(file_name_of(".."), "__");
        assert!(Tree::valid_name(file_name_of("x\0/y").as_bytes()));
    }

    #[test]
    fn times_before_the_epoch() {
        assert_eq!(system_time(Timestamp { secs: -1, nanos: 500_000_000 }), UNIX_EPOCH - Duration::from_millis(500));
        assert_eq!(system_time(Timestamp { secs: 1, nanos: 5 }), UNIX_EPOCH + Duration::new(1, 5));
    }
}
