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

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, OpenAccMode,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};

use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// Bytes of plaintext blobs kept in the read cache (64 MiB: 32 blobs of the largest default
/// chunk size, 128 of the average).
pub const BLOB_CACHE_BYTES: usize = 64 << 20;

/// How long the kernel may cache attributes and names of snapshot content: it never changes.
const TTL: Duration = Duration::from_secs(60);
/// The same for the fixed directories and links, which change when snapshots are added.
const FIXED_TTL: Duration = Duration::from_secs(1);

/// What the filesystem fetched from the repository since it was mounted.
#[derive(Debug, Default)]
pub struct MountStats {
    /// Stored (compressed, encrypted) bytes of the data blobs read from the repository.
    pub bytes: AtomicU64,
    /// Data blobs read from the repository (cache hits are not counted).
    pub blobs: AtomicU64,
}

/// A fixed entry of the top of the view.
enum VNode {
    /// A directory of fixed entries (name, inode, type), sorted by name.
    Dir { parent: u64, entries: Vec<(Vec<u8>, u64, FileType)>, mtime: Timestamp },
    /// A `latest` symlink.
    Link { target: Vec<u8>, mtime: Timestamp },
    /// A snapshot directory: its entries are the snapshot's root tree.
    Snapshot { parent: u64, tree: BlobId, mtime: Timestamp },
}

/// The entries of a directory whose tree was loaded: entry `i` has inode `base + i`.
struct LoadedDir {
    tree: Arc<Tree>,
    base: u64,
}

/// Inodes of tree entries, allocated as directories are looked into.
struct Inodes {
    /// Directory inode → its loaded tree and the base of its entries' inode range.
    dirs: HashMap<u64, LoadedDir>,
    /// `(base, directory inode)` for each range, ascending by base.
    ranges: Vec<(u64, u64)>,
    /// The next inode number to hand out.
    next: u64,
}

/// One open file: its blobs and where each ends in the file.
struct OpenFile {
    blobs: Vec<BlobId>,
    /// `ends[i]` is the file offset just past blob `i` (cumulative plaintext lengths).
    ends: Vec<u64>,
    /// Where the latest read ended: a read starting near it is sequential.
    last_end: AtomicU64,
}

/// A byte-bounded LRU cache of plaintext data blobs.
struct BlobCache {
    lru: lru::LruCache<BlobId, Arc<Vec<u8>>>,
    bytes: usize,
    limit: usize,
}

impl BlobCache {
    fn get(&mut self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.lru.get(id).cloned()
    }

    fn put(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        self.bytes += data.len();
        if let Some(old) = self.lru.put(id, data) {
            self.bytes -= old.len();
        }
        while self.bytes > self.limit && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((_, d)) => self.bytes -= d.len(),
                None => break,
            }
        }
    }
}

/// What an inode number stands for.
enum Resolved {
    Fixed(Arc<VNode>),
    /// Entry `idx` of `tree`.
    Entry(Arc<Tree>, usize),
}

/// The filesystem: a repository's snapshots, read-only. Build it with [`CairnFs::new`] and
/// mount it with [`mount`].
pub struct CairnFs {
    store: Arc<BlobStore>,
    /// Blobs for the prefetch thread to fetch ahead of sequential reads (None: no thread).
    prefetch: Option<crossbeam_channel::Sender<BlobId>>,
    /// The fixed part of the view, rebuilt when the snapshots change.
    fixed: std::sync::RwLock<Fixed>,
    /// Which snapshots are shown, and when the list was last checked.
    filter: SnapshotFilter,
    refresh: Mutex<Refresh>,
    inodes: Mutex<Inodes>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    uid: u32,
    gid: u32,
}

/// Blobs past the one a sequential read ends in that the prefetch thread fetches.
pub const PREFETCH_BLOBS: usize = 2;

/// The repository and the blob cache, shared by the filesystem and its prefetch thread.
struct BlobStore {
    repo: Repository,
    /// Replaced when new snapshots appear (their blobs are in new index files).
    index: std::sync::RwLock<Arc<Index>>,
    cache: Mutex<BlobCache>,
    /// One lock per blob being fetched, so that concurrent reads of one blob (the kernel's
    /// read-ahead, the prefetch thread) fetch it once while different blobs are fetched in
    /// parallel.
    fetching: Mutex<HashMap<BlobId, Arc<Mutex<()>>>>,
    stats: Arc<MountStats>,
}

impl BlobStore {
    fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True when blob `id` is cached or being fetched.
    fn has(&self, id: &BlobId) -> bool {
        lock(&self.cache).lru.contains(id) || lock(&self.fetching).contains_key(id)
    }

    /// A data blob's plaintext, from the cache or the repository.
    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(d) = lock(&self.cache).get(id) {
            return Ok(d);
        }
        let slot = lock(&self.fetching).entry(*id).or_default().clone();
        let fetched = {
            let _only_fetch_of_this_blob = lock(&slot);
            // A thread that held the slot before has put the blob in the cache. (The cache
            // guard must be gone before the fetch below locks the cache again.)
            let cached = lock(&self.cache).get(id);
            match cached {
                Some(d) => Ok(d),
                None => {
                    let index = self.index();
                    self.repo.read_blob(&index, BlobType::Data, id).map(|data| {
                        let data = Arc::new(data);
                        let stored = index.get(id).map(|(_, loc)| u64::from(loc.length)).unwrap_or(0);
                        self.stats.bytes.fetch_add(stored, Ordering::Relaxed);
                        self.stats.blobs.fetch_add(1, Ordering::Relaxed);
                        lock(&self.cache).put(*id, data.clone());
                        data
                    })
                }
            }
        };
        // Every path ends here, and only this slot is removed (a newer fetcher's stays).
        let mut fetching = lock(&self.fetching);
        if fetching.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            fetching.remove(id);
        }
        fetched
    }
}

/// The directory name restic gives a snapshot: RFC 3339 to the second in the snapshot's time
/// zone, `Z` for UTC (restic's default `--time-template` "2006-01-02T15:04:05Z07:00").
pub fn snapshot_dir_name(s: &Snapshot) -> String {
    s.local_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

fn file_type(kind: NodeKind) -> FileType {
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

/// Fill a readdir reply from position `offset` on: `dots` (`.` and `..`) at positions 0 and 1,
/// then `entry(i)` at position i + 2, until `entry` gives None or the reply is full. An entry's
/// offset is its position + 1, where the next call resumes. Positions are looked up directly
/// (no skipping from the start), so listing n entries in k calls costs O(n + k).
fn fill_dir<'a>(
    mut reply: ReplyDirectory,
    offset: u64,
    dots: [(&'a [u8], u64); 2],
    entry: impl Fn(usize) -> Option<(&'a [u8], u64, FileType)>,
) {
    let mut pos = offset as usize;
    loop {
        let next = match dots.get(pos) {
            Some(&(name, ino)) => Some((name, ino, FileType::Directory)),
            None => entry(pos.saturating_sub(2)),
        };
        let Some((name, ino, kind)) = next else { break };
        pos += 1;
        if reply.add(INodeNo(ino), pos as u64, kind, OsStr::from_bytes(name)) {
            break;
        }
    }
    reply.ok()
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
    /// (the fixed top levels) belong to the mounting user.
    /// Errors: those of [`Repository::snapshots`].
    pub fn new(
        repo: Repository,
        index: Index,
        filter: SnapshotFilter,
        refresh: Duration,
        stats: Arc<MountStats>,
    ) -> Result<Self> {
        let snapshots = repo.snapshots(&filter)?;
        let mut fixed = Fixed::default();
        let mut next = 2;
        let mut b = Builder { nodes: HashMap::new(), keys: &mut fixed.keys, next: &mut next };
        b.build(&snapshots);
        fixed.nodes = b.nodes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let store = Arc::new(BlobStore {
            repo,
            index: std::sync::RwLock::new(Arc::new(index)),
            cache: Mutex::new(BlobCache { lru: lru::LruCache::unbounded(), bytes: 0, limit: BLOB_CACHE_BYTES }),
            fetching: Mutex::new(HashMap::new()),
            stats,
        });
        // The prefetch thread ends when the filesystem (the channel's sender) is dropped.
        let (tx, rx) = crossbeam_channel::bounded::<BlobId>(2 * PREFETCH_BLOBS);
        let s = store.clone();
        let prefetch = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn(move || {
                for id in rx {
                    // A failure is reported by the read that needs the blob.
                    let _ = s.blob(&id);
                }
            })
            .ok()
            .map(|_| tx);
        let ids = snapshots.iter().map(|(id, _)| *id).collect();
        Ok(CairnFs {
            store,
            prefetch,
            fixed: std::sync::RwLock::new(fixed),
            filter,
            refresh: Mutex::new(Refresh { checked: std::time::Instant::now(), ids, every: refresh }),
            inodes: Mutex::new(Inodes { dirs: HashMap::new(), ranges: Vec::new(), next }),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    /// Check the snapshot list if the refresh interval has passed; when it changed, reload the
    /// index and rebuild the fixed view (inodes of unchanged paths stay). Errors are reported on
    /// stderr and leave the view as it was.
    fn refresh(&self) {
        // One check at a time; others go on with the current view.
        let Ok(mut r) = self.refresh.try_lock() else { return };
        if r.checked.elapsed() < r.every {
            return;
        }
        r.checked = std::time::Instant::now();
        let result = (|| -> Result<()> {
            let snapshots = self.store.repo.snapshots(&self.filter)?;
            let ids: Vec<SnapshotId> = snapshots.iter().map(|(id, _)| *id).collect();
            if ids == r.ids {
                return Ok(());
            }
            let index = self.store.repo.load_index()?;
            *self.store.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
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
            eprintln!("cairn: mount: cannot refresh the snapshot list: {e}");
        }
    }

    /// True when `ino` is one of the fixed directories (not a snapshot directory).
    fn is_fixed_dir(&self, ino: u64) -> bool {
        matches!(
            self.fixed.read().unwrap_or_else(|e| e.into_inner()).nodes.get(&ino).map(|v| &**v),
            Some(VNode::Dir { .. })
        )
    }

    fn resolve(&self, ino: u64) -> Option<Resolved> {
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
    fn tree_dir(&self, ino: u64) -> Result<Option<(Arc<Tree>, u64)>> {
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
        let tree = Arc::new(self.store.repo.load_tree(&self.store.index(), &tree_id)?);
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

    fn node_attr(ino: u64, n: &Node) -> FileAttr {
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

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        match self.resolve(ino)? {
            Resolved::Fixed(v) => Some(self.fixed_attr(ino, &v)),
            Resolved::Entry(tree, idx) => tree.nodes.get(idx).map(|n| Self::node_attr(ino, n)),
        }
    }

    /// Report a repository error on stderr (the kernel only passes on an errno) and give EIO.
    fn io_error(&self, e: &Error) -> Errno {
        eprintln!("cairn: mount: {e}");
        Errno::EIO
    }

    /// After a read of `[offset, end)`: when it continues the previous read (within a
    /// window, since the kernel's read-ahead requests are served by several threads out of
    /// order), have the prefetch thread fetch the next [`PREFETCH_BLOBS`] blobs, so that the
    /// reader rarely waits for a fetch. Random reads fetch nothing extra.
    fn prefetch_after(&self, file: &OpenFile, offset: u64, end: u64) {
        const WINDOW: u64 = 1 << 20;
        let last = file.last_end.swap(end, Ordering::Relaxed);
        let Some(tx) = &self.prefetch else { return };
        if offset.abs_diff(last) > WINDOW {
            return;
        }
        let next = file.ends.partition_point(|&e| e <= end);
        for id in file.blobs.iter().skip(next).take(PREFETCH_BLOBS + 1) {
            if !self.store.has(id) {
                let _ = tx.try_send(*id);
            }
        }
    }

    /// Up to `size` bytes of `file` from `offset`, fetching only the blobs that overlap them.
    fn read_range(&self, file: &OpenFile, offset: u64, size: usize) -> Result<Vec<u8>> {
        let total = file.ends.last().copied().unwrap_or(0);
        let end = offset.saturating_add(size as u64).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        let mut i = file.ends.partition_point(|&e| e <= offset);
        while pos < end {
            let (Some(id), Some(&blob_end)) = (file.blobs.get(i), file.ends.get(i)) else { break };
            let blob_start = if i == 0 { 0 } else { file.ends.get(i - 1).copied().unwrap_or(0) };
            let data = self.store.blob(id)?;
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

impl Filesystem for CairnFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger read-ahead requests mean fewer round trips; the kernel caps what it accepts.
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes();
        if self.is_fixed_dir(parent.0) {
            self.refresh();
            // Resolved again: the refresh may have rebuilt this directory.
            if let Some(Resolved::Fixed(v)) = self.resolve(parent.0) {
                if let VNode::Dir { entries, .. } = &*v {
                    return match entries.binary_search_by(|(n, _, _)| n.as_slice().cmp(name)) {
                        Ok(i) => match entries.get(i).and_then(|(_, ino, _)| self.attr(*ino)) {
                            Some(a) => reply.entry(&FIXED_TTL, &a, Generation(0)),
                            None => reply.error(Errno::ENOENT),
                        },
                        Err(_) => reply.error(Errno::ENOENT),
                    };
                }
            }
        }
        match self.tree_dir(parent.0) {
            Ok(Some((tree, base))) => match tree.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)) {
                Ok(i) => match tree.nodes.get(i) {
                    Some(n) => reply.entry(&TTL, &Self::node_attr(base + i as u64, n), Generation(0)),
                    None => reply.error(Errno::ENOENT),
                },
                Err(_) => reply.error(Errno::ENOENT),
            },
            Ok(None) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(self.io_error(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.resolve(ino.0) {
            Some(Resolved::Fixed(v)) => match &*v {
                VNode::Link { target, .. } => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Some(Resolved::Entry(tree, idx)) => match tree.nodes.get(idx) {
                Some(n) if n.kind == NodeKind::Symlink => reply.data(&n.symlink_target),
                _ => reply.error(Errno::EINVAL),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let node = match self.resolve(ino.0) {
            Some(Resolved::Entry(tree, idx)) => match tree.nodes.get(idx) {
                Some(n) if n.kind == NodeKind::File => (tree.clone(), idx),
                Some(n) if n.kind == NodeKind::Dir => return reply.error(Errno::EISDIR),
                _ => return reply.error(Errno::EINVAL),
            },
            Some(Resolved::Fixed(v)) if matches!(*v, VNode::Link { .. }) => return reply.error(Errno::EINVAL),
            Some(Resolved::Fixed(_)) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        };
        let Some(n) = node.0.nodes.get(node.1) else { return reply.error(Errno::ENOENT) };
        let index = self.store.index();
        let mut ends = Vec::with_capacity(n.content.len());
        let mut at = 0u64;
        for id in &n.content {
            match index.get(id) {
                Some((_, loc)) if loc.blob_type == BlobType::Data => {
                    at += u64::from(loc.raw_length);
                    ends.push(at);
                }
                _ => {
                    let e = Error::corrupt(
                        format!("file {:?}", n.name_lossy()),
                        format!("data blob {} is not in the index", id.short()),
                    );
                    return reply.error(self.io_error(&e));
                }
            }
        }
        if at != n.size {
            let e = Error::corrupt(
                format!("file {:?}", n.name_lossy()),
                format!("its blobs hold {at} bytes, its size is {}", n.size),
            );
            return reply.error(self.io_error(&e));
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files)
            .insert(fh, Arc::new(OpenFile { blobs: n.content.clone(), ends, last_end: AtomicU64::new(0) }));
        // The content never changes: the kernel may keep its page cache across opens.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = lock(&self.files).get(&fh.0).cloned() else { return reply.error(Errno::EBADF) };
        match self.read_range(&file, offset, size as usize) {
            Ok(data) => {
                let end = offset + data.len() as u64;
                reply.data(&data);
                self.prefetch_after(&file, offset, end);
            }
            Err(e) => reply.error(self.io_error(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.resolve(ino.0) {
            Some(Resolved::Fixed(v)) if matches!(*v, VNode::Link { .. }) => reply.error(Errno::ENOTDIR),
            Some(Resolved::Entry(tree, idx)) if tree.nodes.get(idx).map(|n| n.kind) != Some(NodeKind::Dir) => {
                reply.error(Errno::ENOTDIR)
            }
            Some(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Entries in order: `.`, `..`, then the directory's entries; the offset of the entry at
    /// position p is p + 1, so a call with offset k resumes at position k.
    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        if self.is_fixed_dir(ino.0) && offset == 0 {
            self.refresh();
        }
        let resolved = self.resolve(ino.0);
        let parent = match resolved.as_ref() {
            Some(Resolved::Fixed(v)) => match **v {
                VNode::Dir { parent, .. } | VNode::Snapshot { parent, .. } => parent,
                VNode::Link { .. } => return reply.error(Errno::ENOTDIR),
            },
            _ => {
                let inodes = lock(&self.inodes);
                let i = inodes.ranges.partition_point(|(base, _)| *base <= ino.0);
                i.checked_sub(1).and_then(|i| inodes.ranges.get(i)).map(|(_, dir)| *dir).unwrap_or(1)
            }
        };
        let dots: [(&[u8], u64); 2] = [(b".", ino.0), (b"..", parent)];
        if let Some(Resolved::Fixed(v)) = &resolved {
            if let VNode::Dir { entries, .. } = &**v {
                return fill_dir(reply, offset, dots, |i| {
                    entries.get(i).map(|(name, child, kind)| (name.as_slice(), *child, *kind))
                });
            }
        }
        match self.tree_dir(ino.0) {
            Ok(Some((tree, base))) => fill_dir(reply, offset, dots, |i| {
                tree.nodes.get(i).map(|n| (n.name.as_slice(), base + i as u64, file_type(n.kind)))
            }),
            Ok(None) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(self.io_error(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.resolve(ino.0) {
            Some(Resolved::Entry(tree, idx)) => {
                let Some(n) = tree.nodes.get(idx) else { return reply.error(Errno::ENOENT) };
                let value = n.xattrs.iter().find(|x| x.name == name.as_bytes()).map(|x| x.value.as_slice());
                reply_xattr(crate::xattrs::fuse_answer(value, size), reply);
            }
            Some(Resolved::Fixed(_)) => reply.error(Errno::ENODATA),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let list = match self.resolve(ino.0) {
            Some(Resolved::Entry(tree, idx)) => match tree.nodes.get(idx) {
                Some(n) => crate::xattrs::name_list(&n.xattrs),
                None => return reply.error(Errno::ENOENT),
            },
            Some(Resolved::Fixed(_)) => Vec::new(),
            None => return reply.error(Errno::ENOENT),
        };
        reply_xattr(crate::xattrs::fuse_answer(Some(&list), size), reply);
    }
}

/// Send a getxattr/listxattr answer.
fn reply_xattr(answer: crate::xattrs::FuseAnswer<'_>, reply: ReplyXattr) {
    match answer {
        crate::xattrs::FuseAnswer::Size(n) => reply.size(n),
        crate::xattrs::FuseAnswer::Data(d) => reply.data(d),
        crate::xattrs::FuseAnswer::Error(e) => reply.error(Errno::from_i32(e)),
    }
}

/// How to mount.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let other users access the mount (`allow_other`; needs `user_allow_other` in
    /// /etc/fuse.conf unless root).
    pub allow_other: bool,
}

/// Mount `fs` read-only at `mountpoint` and serve it from background threads until the
/// returned session is dropped (which unmounts) or the mount is removed from outside
/// (`fusermount -u`). Needs `/dev/fuse` and the `fusermount3` or `fusermount` binary.
/// Errors: [`Error::InvalidInput`] when the mountpoint is not an existing directory;
/// [`Error::Io`] when the kernel or fusermount refuses the mount.
pub fn mount(fs: CairnFs, mountpoint: &std::path::Path, opts: &MountOptions) -> Result<fuser::BackgroundSession> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::InvalidInput(format!("mountpoint {} is not a directory", mountpoint.display()))),
        Err(e) => {
            return Err(Error::InvalidInput(format!(
                "mountpoint {}: {e}; create the directory first",
                mountpoint.display()
            )))
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
            let c = std::ffi::CString::new(path.as_os_str().as_bytes())
                .map_err(|_| Error::InvalidInput(format!("mountpoint {} contains a NUL byte", path.display())))?;
            // SAFETY: `c` is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                Ok(true)
            } else {
                Err(Error::io(mountpoint, std::io::Error::last_os_error()))
            }
        }
        Err(e) => Err(Error::io(mountpoint, e)),
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
