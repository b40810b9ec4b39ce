//! The fuser callbacks of [`CairnFs`]: each resolves inodes through the view and answers the
//! kernel; repository errors are reported on stderr and become `EIO`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, OpenAccMode, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use super::view::{file_type, lock, CairnFs, OpenFile, Resolved, VNode, FIXED_TTL, TTL};
use crate::error::Error;
use crate::tree::NodeKind;

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
        let index = self.index();
        let mut ends = Vec::with_capacity(n.content.len());
        let mut at = 0u64;
        for id in &n.content {
            // A copy stored as a tree blob serves too (the id names the plaintext).
            match index.get(id) {
                Some((_, loc)) => {
                    at += u64::from(loc.raw_length);
                    ends.push(at);
                }
                None => {
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
