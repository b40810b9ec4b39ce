//! One directory entry of a tree ([`Node`]), its kinds and extended attributes, and how they
//! are shown (restic's type names, `ls -l` modes, POSIX `st_mode`).

use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use super::Timestamp;
use crate::id::BlobId;

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
    /// stores them through [`super::Tree::encode`] (repo-format.md, "Tree blobs").
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

impl Node {
    /// A node named `name` of kind `kind` with no metadata yet: every number 0 (but one
    /// link), no owner names, the Unix epoch as its times, no content, subtree or extended
    /// attributes. Callers fill in what they know (`Node { size, ..Node::new(name, kind) }`).
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            size: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 1,
            rdev: 0,
            symlink_target: Vec::new(),
            content: Vec::new(),
            subtree: None,
            xattrs: Vec::new(),
        }
    }
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

/// restic's name of a node type: `file`, `dir`, `symlink`, `chardev`, `dev`, `fifo`, `socket`.
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "dev",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
    }
}

/// The POSIX `st_mode` of a node: file type bits (`S_IFREG`, `S_IFDIR`...) | permission bits.
pub fn st_mode(node: &Node) -> u32 {
    let t = match node.kind {
        NodeKind::File => 0o100000,
        NodeKind::Dir => 0o040000,
        NodeKind::Symlink => 0o120000,
        NodeKind::CharDevice => 0o020000,
        NodeKind::BlockDevice => 0o060000,
        NodeKind::Fifo => 0o010000,
        NodeKind::Socket => 0o140000,
    };
    t | (node.mode & 0o7777)
}

/// The mode as `ls -l` and `stat -c %A` show it: `-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`,
/// with `s`/`S` for setuid and setgid and `t`/`T` for the sticky bit.
pub fn mode_string(kind: NodeKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
    });
    let bit = |b: u32, c: char| if mode & b != 0 { c } else { '-' };
    let special = |x: u32, special: u32, lower: char, upper: char| match (mode & x != 0, mode & special != 0) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_string(NodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(NodeKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(NodeKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(NodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(NodeKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(NodeKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(NodeKind::Fifo, 0o600), "prw-------");
    }

    #[test]
    fn st_modes() {
        let mut n =
            Node::from_metadata(b"x".to_vec(), &std::fs::symlink_metadata("/").unwrap(), &mut Default::default());
        n.mode = 0o755;
        assert_eq!(st_mode(&n), 0o040755);
        assert_eq!(kind_name(n.kind), "dir");
    }
}
