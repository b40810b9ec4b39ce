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
    /// Extended attributes (POSIX ACLs included), sorted by name, names unique; empty when
    /// the entry has none. Not part of this type's serde form (a version 1 node): a tree
    /// stores them through [`Tree::encode`] (repo-format.md, "Tree blobs").
    #[serde(skip)]
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute of a node: its full name with the namespace prefix (`user.`,
/// `trusted.`, `security.`, `system.`) and its raw value, as the kernel returns them.
/// POSIX ACLs are the attributes `system.posix_acl_access` and `system.posix_acl_default`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name bytes, at most [`Xattr::NAME_MAX`], no NUL byte, not empty.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Value bytes, at most [`Xattr::VALUE_MAX`] (may be empty).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Xattr {
    /// Longest name Linux accepts (`XATTR_NAME_MAX`), bytes.
    pub const NAME_MAX: usize = 255;
    /// Largest value Linux accepts (`XATTR_SIZE_MAX`, 64 KiB), bytes.
    pub const VALUE_MAX: usize = 65_536;

    /// The name as text (lossy for non-UTF-8 names), for messages.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// Whether a node's attribute list is well formed: names valid (not empty, no NUL, at
    /// most `NAME_MAX` bytes), sorted bytewise and unique, values at most `VALUE_MAX` bytes.
    pub fn valid_list(xattrs: &[Xattr]) -> bool {
        xattrs.iter().all(|x| {
            !x.name.is_empty()
                && x.name.len() <= Self::NAME_MAX
                && !x.name.contains(&0)
                && x.value.len() <= Self::VALUE_MAX
        }) && xattrs.windows(2).all(|w| matches!(w, [a, b] if a.name < b.name))
    }
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
            xattrs: Vec::new(),
        }
    }

    /// The name as text (lossy for non-UTF-8 names), for messages and matching.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// The first two bytes of a version 2 tree blob: `0xff` (a byte that never starts a version 1
/// tree, whose first bytes are a varint) and the version, 2.
pub const TREE_V2_PREFIX: [u8; 2] = [0xff, 0x02];

/// A directory: its entries sorted by name bytes. Stored with [`Tree::encode`] and read with
/// [`Tree::decode`] (not serde: the encoding depends on whether any entry has xattrs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries, sorted by `name`, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort entries by name (the canonical order that makes equal directories equal blobs).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The plaintext of the tree blob (repo-format.md, "Tree blobs"): the version 1 encoding
    /// (bincode `Vec<Node>`) when no entry has extended attributes, so such trees keep the
    /// bytes and ids older versions gave them; else [`TREE_V2_PREFIX`] then bincode
    /// `Vec<(Node, Vec<Xattr>)>`.
    /// Errors: [`crate::error::Error::InvalidInput`] for a tree over the 4 GiB encoding limit.
    pub fn encode(&self) -> crate::error::Result<Vec<u8>> {
        if self.nodes.iter().all(|n| n.xattrs.is_empty()) {
            return crate::format::encode(&self.nodes);
        }
        let nodes: Vec<(&Node, &Vec<Xattr>)> = self.nodes.iter().map(|n| (n, &n.xattrs)).collect();
        let mut out = TREE_V2_PREFIX.to_vec();
        out.extend(crate::format::encode(&nodes)?);
        Ok(out)
    }

    /// Decode a tree blob's plaintext, either version (see [`Tree::encode`]); `what` names
    /// the blob in errors. Checks the encoding and each node's attribute list
    /// ([`Xattr::valid_list`]); entry names are checked by the caller
    /// ([`crate::repository::Repository::load_tree`]).
    /// Errors: [`crate::error::Error::Corrupt`] for bytes that do not decode completely, an
    /// unknown tree version, an invalid attribute list, or a version 2 tree without any
    /// attribute (not the canonical encoding, which keeps equal directories equal blobs).
    pub fn decode(bytes: &[u8], what: &str) -> crate::error::Result<Tree> {
        let nodes = match bytes {
            [0xff, 0x02, rest @ ..] => {
                let pairs: Vec<(Node, Vec<Xattr>)> = crate::format::decode(rest, what)?;
                let mut nodes = Vec::with_capacity(pairs.len());
                for (mut node, xattrs) in pairs {
                    if !Xattr::valid_list(&xattrs) {
                        let msg = format!("entry {:?} has invalid extended attributes (a name empty, too long, with a NUL byte, unsorted or repeated, or a value over 64 KiB)", node.name_lossy());
                        return Err(crate::error::Error::corrupt(what, msg));
                    }
                    node.xattrs = xattrs;
                    nodes.push(node);
                }
                if nodes.iter().all(|n| n.xattrs.is_empty()) {
                    return Err(crate::error::Error::corrupt(
                        what,
                        "a version 2 tree in which no entry has extended attributes (it must be written as version 1)",
                    ));
                }
                nodes
            }
            [0xff, version, ..] => {
                return Err(crate::error::Error::corrupt(what, format!("unknown tree version {version}")))
            }
            _ => crate::format::decode(bytes, what)?,
        };
        Ok(Tree { nodes })
    }

    /// A name in a stored tree must be a single, non-empty path component.
    pub fn valid_name(name: &[u8]) -> bool {
        !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
    }
}
