//! Trees and nodes: one tree blob per directory (repo-format.md, "Tree blob plaintext").

use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::id::BlobId;

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let n = chrono::Utc::now();
        Timestamp { secs: n.timestamp(), nanos: n.timestamp_subsec_nanos() }
    }

    /// As a chrono UTC time (the epoch for values out of range).
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.secs, self.nanos.min(999_999_999)).unwrap_or_default()
    }
}

/// What a node is. The variant index is part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    /// Regular file (0).
    File,
    /// Directory (1).
    Dir,
    /// Symbolic link (2).
    Symlink,
    /// Character device (3).
    CharDevice,
    /// Block device (4).
    BlockDevice,
    /// Named pipe (5).
    Fifo,
    /// Unix socket (6).
    Socket,
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (no `/`).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Entry type.
    pub kind: NodeKind,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name, or "" when unknown.
    pub user: String,
    /// Owner group name, or "" when unknown.
    pub group: String,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Inode number.
    pub inode: u64,
    /// Device the entry lives on (`st_dev`).
    pub device: u64,
    /// Hard link count.
    pub links: u64,
    /// Device number for device nodes (`st_rdev`).
    pub rdev: u64,
    /// Symlink target bytes; empty unless a symlink.
    #[serde(with = "serde_bytes")]
    pub symlink_target: Vec<u8>,
    /// Data blob ids, in file order (regular files).
    pub content: Vec<BlobId>,
    /// Tree blob id (directories).
    pub subtree: Option<BlobId>,
}

impl Node {
    /// A node from `lstat` metadata; content and subtree are filled in by the caller.
    pub fn from_metadata(name: Vec<u8>, md: &std::fs::Metadata, names: &mut crate::util::OwnerNames) -> Self {
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else if ft.is_block_device() {
            NodeKind::BlockDevice
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_socket() {
            NodeKind::Socket
        } else {
            NodeKind::File
        };
        Node {
            name,
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            user: names.user(md.uid()),
            group: names.group(md.gid()),
            size: if kind == NodeKind::File { md.size() } else { 0 },
            mtime: Timestamp { secs: md.mtime(), nanos: md.mtime_nsec().clamp(0, 999_999_999) as u32 },
            ctime: Timestamp { secs: md.ctime(), nanos: md.ctime_nsec().clamp(0, 999_999_999) as u32 },
            inode: md.ino(),
            device: md.dev(),
            links: md.nlink(),
            rdev: md.rdev(),
            symlink_target: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// The name as text (lossy for non-UTF-8 names), for messages and matching.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// A directory: its entries sorted by name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by `name`, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort entries by name (the canonical order that makes equal directories equal blobs).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// A name in a stored tree must be a single, non-empty path component.
    pub fn valid_name(name: &[u8]) -> bool {
        !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
    }
}
