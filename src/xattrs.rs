//! Extended attributes of the entries backed up, restored and mounted (repo-format.md, "Tree
//! blobs"). POSIX ACLs are the attributes `system.posix_acl_access` and
//! `system.posix_acl_default` on Linux; their raw values are kept like any other.
//!
//! Reading uses `llistxattr` then one `lgetxattr` per name, writing `lsetxattr` (or
//! `fsetxattr` on an open file): a symlink's own attributes, never its target's (the `xattr`
//! crate's `list`/`get`/`set` are the non-following calls). What is read is what the kernel
//! lists to this process: `user.*`, `security.*`, `system.*`, and `trusted.*` only to root.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::tree::{Node, Xattr};

/// Whether an error means "no extended attributes here" (a file system without support for
/// them): such a file simply has none.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS))
}

/// The extended attributes of `path` itself (not following a symlink), sorted by name, and
/// one message per attribute that could not be read (the others are still returned).
///
/// A file with none costs one `llistxattr` call; each attribute one `lgetxattr`. Sizes are
/// bounded by the kernel (a name list and each value at most 64 KiB); an attribute over
/// [`Xattr::NAME_MAX`] / [`Xattr::VALUE_MAX`] (not possible on Linux) is left out with a
/// message. An attribute removed between the list and the read is left out silently; a file
/// system without extended attributes gives an empty list.
pub fn read(path: &Path) -> (Vec<Xattr>, Vec<String>) {
    let mut failures = Vec::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return (Vec::new(), failures),
        Err(e) => {
            failures.push(format!("cannot list extended attributes: {e}"));
            return (Vec::new(), failures);
        }
    };
    let mut out = Vec::new();
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        match xattr::get(path, &name) {
            Ok(Some(value)) if name.len() <= Xattr::NAME_MAX && value.len() <= Xattr::VALUE_MAX && !name.is_empty() => {
                out.push(Xattr { name: name.as_bytes().to_vec(), value });
            }
            Ok(Some(value)) => failures.push(format!(
                "extended attribute {shown:?} is too large to store ({} bytes of name, {} of value)",
                name.len(),
                value.len()
            )),
            Ok(None) => {}
            Err(e) => failures.push(format!("cannot read extended attribute {shown:?}: {e}")),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    (out, failures)
}

/// Whether an entry just found on disk (`node`, from its `lstat`) may take its attributes
/// from the same entry in the parent snapshot (`parent`) instead of reading them: the same
/// kind, inode (unless `ignore_inode`) and ctime. Setting or removing an attribute changes
/// the ctime, so an equal ctime means equal attributes; with `ignore_ctime` nothing is reused.
/// A parent node without attributes is reused only when `parent_stores_xattrs` (the parent
/// snapshot was written by a cairn that stores them, [`stored_by`]): an older one's nodes
/// never have any. So an unchanged entry costs no `llistxattr` on an incremental backup.
pub fn reusable(
    parent: &Node,
    node: &Node,
    ignore_ctime: bool,
    ignore_inode: bool,
    parent_stores_xattrs: bool,
) -> bool {
    !ignore_ctime
        && (parent_stores_xattrs || !parent.xattrs.is_empty())
        && parent.kind == node.kind
        && parent.ctime == node.ctime
        && (ignore_inode || parent.inode == node.inode)
}

/// First cairn version whose backups store extended attributes (a snapshot's
/// `program_version` is `cairn X.Y.Z`).
pub const FIRST_VERSION_STORING: (u64, u64) = (0, 2);

/// Whether a snapshot written by `program_version` (`cairn X.Y.Z`) stores extended attributes:
/// version [`FIRST_VERSION_STORING`] or later. Anything else (another program, an unreadable
/// version) is taken as not storing them, so their attributes are read again.
pub fn stored_by(program_version: &str) -> bool {
    let Some(v) = program_version.strip_prefix("cairn ") else { return false };
    let mut parts = v.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= FIRST_VERSION_STORING,
        _ => false,
    }
}

/// Set `xattrs` on `dest`: through `handle` (the file open for writing) when there is one,
/// else by path without following a symlink. Attributes `dest` already has and `xattrs` does
/// not name are left as they are. Returns one message per attribute that could not be set
/// (e.g. `trusted.*` or `security.*` without the privilege, or a file system without
/// extended attributes), naming it; the others are still set.
pub fn write(dest: &Path, handle: Option<&std::fs::File>, xattrs: &[Xattr]) -> Vec<String> {
    use xattr::FileExt;
    let mut failures = Vec::new();
    for x in xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        let set = match handle {
            Some(f) => f.set_xattr(name, &x.value),
            None => xattr::set(dest, name, &x.value),
        };
        if let Err(e) = set {
            failures.push(format!("cannot set extended attribute {:?}: {e}", x.name_lossy()));
        }
    }
    failures
}

/// The names of `xattrs` as `listxattr` returns them: each followed by a NUL byte.
pub fn name_list(xattrs: &[Xattr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(xattrs.iter().map(|x| x.name.len() + 1).sum());
    for x in xattrs {
        out.extend_from_slice(&x.name);
        out.push(0);
    }
    out
}

/// How to answer a FUSE `getxattr` / `listxattr` request for `data` (the value, or the
/// [`name_list`]; `None`: no such attribute) when the caller's buffer holds `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum FuseAnswer<'a> {
    /// `size` was 0: the caller asks how many bytes it needs.
    Size(u32),
    /// The bytes, which fit.
    Data(&'a [u8]),
    /// An errno: `ENODATA` (no such attribute) or `ERANGE` (the buffer is too small).
    Error(i32),
}

/// See [`FuseAnswer`] (the FUSE protocol's size-query semantics).
pub fn fuse_answer(data: Option<&[u8]>, size: u32) -> FuseAnswer<'_> {
    let Some(data) = data else { return FuseAnswer::Error(libc::ENODATA) };
    match u32::try_from(data.len()) {
        Ok(len) if size == 0 => FuseAnswer::Size(len),
        Ok(len) if len <= size => FuseAnswer::Data(data),
        _ => FuseAnswer::Error(libc::ERANGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_store_attributes() {
        for (v, stores) in [
            ("cairn 0.2.0", true),
            ("cairn 0.10.1", true),
            ("cairn 1.0.0", true),
            ("cairn 0.1.0", false),
            ("cairn test", false),
            ("restic 0.17.0", false),
            ("", false),
        ] {
            assert_eq!(stored_by(v), stores, "{v:?}");
        }
        // This build's own snapshots must count as storing them.
        assert!(stored_by(&format!("cairn {}", env!("CARGO_PKG_VERSION"))));
    }

    #[test]
    fn fuse_size_query_and_short_buffers() {
        assert_eq!(fuse_answer(None, 0), FuseAnswer::Error(libc::ENODATA));
        assert_eq!(fuse_answer(Some(b"abc"), 0), FuseAnswer::Size(3));
        assert_eq!(fuse_answer(Some(b"abc"), 2), FuseAnswer::Error(libc::ERANGE));
        assert_eq!(fuse_answer(Some(b"abc"), 3), FuseAnswer::Data(b"abc"));
        assert_eq!(fuse_answer(Some(b""), 0), FuseAnswer::Size(0));
    }

    #[test]
    fn name_list_is_nul_terminated_names() {
        let x = |n: &[u8]| Xattr { name: n.to_vec(), value: vec![1] };
        assert_eq!(name_list(&[x(b"user.a"), x(b"user.\xff")]), b"user.a\0user.\xff\0");
        assert!(name_list(&[]).is_empty());
    }
}
