//! Writing files and directories of a snapshot to a stream (restic's `dump`): a file's
//! content as is, or a directory as a tar or zip archive.
//!
//! Content is streamed blob by blob in file order through the shared [`BlobFetcher`]
//! (`tree/fetch.rs`): a few worker threads fetch and verify the next blobs (a read-ahead of
//! [`READAHEAD`] blobs) while the current one is written, so memory stays bounded by the
//! fetcher's cache whatever the file size, and output starts at once.
//!
//! Archive entries are named by their snapshot path without the leading `/`
//! (`etc/postfix/main.cf`), as restic names them; the dumped directory itself is the first
//! entry (restic leaves it out), its ancestors are not in the archive. Tar entries carry mode,
//! uid/gid and user/group names, mtime (with nanoseconds in a PAX record), symlink targets,
//! device numbers, and hard links (a later name of a file with several links becomes a tar
//! hard link to the first name dumped). Zip entries carry mode, mtime (2-second resolution, the
//! format's) and symlinks; zip has no hard links (the content is stored again) and no special
//! files (they are skipped and reported).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::repository::Repository;
pub use crate::tree::fetch::{from_io, BlobFetcher, ContentReader, READAHEAD};
use crate::tree::fetch::{FetchOptions, FetchStats};
use crate::tree::{kind_name, walk, Located, Node, NodeKind, Visit};

/// Archive formats of `dump --archive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// POSIX tar (GNU headers, PAX records for sub-second mtimes).
    Tar,
    /// Zip (deflate), written as a stream with data descriptors when the output cannot seek.
    Zip,
}

/// Plaintext bytes of blobs a dump keeps (the blobs fetched ahead, and repeated content).
pub const DUMP_CACHE_BYTES: usize = 32 << 20;

/// Where a dump goes.
#[derive(Debug)]
pub enum Output {
    /// A file created (or truncated) at this path; removed again when the dump fails (a cut
    /// archive can look complete). Zip archives written there carry sizes in their headers.
    File(PathBuf),
    /// An open stream that cannot seek (standard output), named in errors by the text.
    Stream(std::fs::File, String),
}

/// What to dump and how.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    /// The archive format; `None`: a file is written as is, a directory as [`ArchiveFormat::Tar`].
    pub archive: Option<ArchiveFormat>,
    /// Worker threads fetching blobs ahead of the writer (at least 1 is used).
    pub threads: usize,
}

/// Dump `loc` (found by [`crate::tree::resolve`] in a snapshot of `repo`, whose blobs `index`
/// locates) to `out` (restic's `dump`; see the module docs), under `lock` (a read lock, or
/// none for a caller that chose not to lock).
/// Errors: [`Error::Interrupted`] once `ctx` is cancelled; tree or blob read errors
/// ([`Error::Corrupt`], [`Error::Backend`]); write errors ([`Error::Io`] naming the output,
/// possibly a closed pipe: see [`is_broken_pipe`]).
pub fn dump(
    ctx: &Ctx,
    lock: &ReadLock,
    repo: Arc<Repository>,
    index: Arc<Index>,
    loc: &Located,
    opts: &DumpOptions,
    out: Output,
) -> Result<DumpReport> {
    lock.check()?;
    let format = match (opts.archive, loc) {
        (Some(f), _) => Some(f),
        (None, Located::Entry { node, .. }) if node.kind != NodeKind::Dir => None,
        (None, _) => Some(ArchiveFormat::Tar),
    };
    let (file, out_name, target) = match out {
        Output::File(t) => (std::fs::File::create(&t).map_err(|e| Error::io(&t, e))?, t.clone(), Some(t)),
        Output::Stream(f, name) => (f, PathBuf::from(name), None),
    };
    // More fetchers than blobs read ahead would only wait.
    let fetch = FetchOptions { threads: opts.threads.clamp(1, READAHEAD), cache_bytes: DUMP_CACHE_BYTES };
    let fetcher = BlobFetcher::new(repo, index, &fetch, Arc::new(FetchStats::default()), &ctx.cancel);
    let result = write(&fetcher, loc, format, file, &out_name, target.is_some());
    if let (Err(_), Some(t)) = (&result, &target) {
        let _ = std::fs::remove_file(t);
    }
    result
}

fn write(
    fetcher: &BlobFetcher,
    loc: &Located,
    format: Option<ArchiveFormat>,
    out: std::fs::File,
    out_name: &Path,
    seekable: bool,
) -> Result<DumpReport> {
    let buffered = |f| io::BufWriter::with_capacity(256 << 10, f);
    match format {
        None => {
            let node = loc.node().ok_or_else(|| Error::usage("/ is a directory"))?;
            let mut w = buffered(out);
            write_file(fetcher, node, &loc.path(), &mut w, out_name)?;
            w.flush().map_err(|e| Error::io(out_name, e))?;
            Ok(DumpReport { entries: 1, skipped: Vec::new() })
        }
        Some(ArchiveFormat::Tar) => write_tar(fetcher, loc, buffered(out), out_name),
        Some(ArchiveFormat::Zip) if seekable => {
            // A file can seek: sizes go into the local headers, no data descriptors.
            let (w, report) = write_zip(fetcher, loc, zip::ZipWriter::new(out), out_name)?;
            w.sync_all().map_err(|e| Error::io(out_name, e))?;
            Ok(report)
        }
        Some(ArchiveFormat::Zip) => {
            let zw = zip::ZipWriter::new_stream(buffered(out));
            let (w, report) = write_zip(fetcher, loc, zw, out_name)?;
            w.into_inner().flush().map_err(|e| Error::io(out_name, e))?;
            Ok(report)
        }
    }
}

/// True when `e` is a write to a closed pipe (`cairn dump ... | head`).
pub fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

/// The content size recorded by the index for `node`'s blobs; an error when a blob is missing
/// or the sizes disagree with the node's size (nothing would be written then).
fn checked_size(index: &Index, node: &Node, path: &Path) -> Result<u64> {
    let mut size = 0u64;
    for id in &node.content {
        let (_, loc) = index.get(id).ok_or_else(|| {
            Error::corrupt(path.display().to_string(), format!("data blob {} is not in the index", id.short()))
        })?;
        size += loc.raw_length as u64;
    }
    if size != node.size {
        return Err(Error::corrupt(
            path.display().to_string(),
            format!("its blobs hold {size} bytes but its size is recorded as {}", node.size),
        ));
    }
    Ok(size)
}

/// Write the content of the file `node` (at snapshot path `path`) to `w`.
/// Errors: a missing or damaged blob ([`Error::Corrupt`]); a write error ([`Error::Io`] naming
/// `out_name`, possibly a broken pipe).
pub fn write_file(fetcher: &BlobFetcher, node: &Node, path: &Path, w: &mut dyn Write, out_name: &Path) -> Result<()> {
    if node.kind != NodeKind::File {
        return Err(Error::usage(format!(
            "{} is a {}, not a file: dump it as a tar or zip archive",
            path.display(),
            kind_name(node.kind)
        )));
    }
    checked_size(&fetcher.index(), node, path)?;
    let mut r = ContentReader::new(fetcher, &node.content);
    io::copy(&mut r, w).map_err(|e| from_io(e, out_name))?;
    w.flush().map_err(|e| Error::io(out_name, e))
}

/// What an archive dump did.
#[derive(Debug, Default)]
pub struct DumpReport {
    /// Entries written.
    pub entries: u64,
    /// Entries the format cannot hold (sockets; devices and fifos in zip): path and type.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// The entries of `loc` in walk order: the node itself (not for the root), then everything
/// below it. Calls `f(path, node)`.
fn for_each_entry(fetcher: &BlobFetcher, loc: &Located, f: &mut dyn FnMut(&Path, &Node) -> Result<()>) -> Result<()> {
    if let Located::Entry { path, node } = loc {
        f(path, node)?;
    }
    if let Some(tree) = loc.tree() {
        let index = fetcher.index();
        walk(fetcher.repo(), &index, fetcher.cancel(), &tree, &loc.path(), &mut |p, n| {
            f(p, n)?;
            Ok(Visit::Descend)
        })?;
    }
    Ok(())
}

fn archive_name(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Write `loc` (a directory, the root, or a single entry) as a tar archive to `w`.
/// Errors: tree or blob read errors; write errors ([`Error::Io`] naming `out_name`).
pub fn write_tar<W: Write>(fetcher: &BlobFetcher, loc: &Located, w: W, out_name: &Path) -> Result<DumpReport> {
    let index = fetcher.index();
    let mut b = tar::Builder::new(w);
    let mut report = DumpReport::default();
    let mut first_names: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let io_err = |e: io::Error| from_io(e, out_name);
    for_each_entry(fetcher, loc, &mut |path, node| {
        let name = archive_name(path);
        let mut h = tar::Header::new_gnu();
        h.set_mode(node.mode & 0o7777);
        h.set_uid(node.uid as u64);
        h.set_gid(node.gid as u64);
        // Names too long for the header are left out; the ids are there.
        let _ = h.set_username(&node.user);
        let _ = h.set_groupname(&node.group);
        h.set_mtime(node.mtime.secs.max(0) as u64);
        h.set_size(0);
        let pax_mtime = pax_time(node.mtime);
        let kind = match node.kind {
            NodeKind::Socket => {
                report.skipped.push((path.to_path_buf(), "socket"));
                return Ok(());
            }
            k => k,
        };
        if node.mtime.nanos != 0 || node.mtime.secs < 0 {
            b.append_pax_extensions([("mtime", pax_mtime.as_bytes())]).map_err(io_err)?;
        }
        match kind {
            NodeKind::File => {
                let key = (node.device, node.inode);
                if node.links > 1 {
                    if let Some(first) = first_names.get(&key) {
                        h.set_entry_type(tar::EntryType::Link);
                        b.append_link(&mut h, name, first).map_err(io_err)?;
                        report.entries += 1;
                        return Ok(());
                    }
                }
                let size = checked_size(&index, node, path)?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                b.append_data(&mut h, name, ContentReader::new(fetcher, &node.content)).map_err(io_err)?;
                if node.links > 1 {
                    first_names.insert(key, name.to_path_buf());
                }
            }
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, name, io::empty()).map_err(io_err)?;
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, name, Path::new(OsStr::from_bytes(&node.symlink_target))).map_err(io_err)?;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                if kind != NodeKind::Fifo {
                    let (major, minor) = (libc::major(node.rdev as libc::dev_t), libc::minor(node.rdev as libc::dev_t));
                    h.set_device_major(major).map_err(io_err)?;
                    h.set_device_minor(minor).map_err(io_err)?;
                }
                b.append_data(&mut h, name, io::empty()).map_err(io_err)?;
            }
            NodeKind::Socket => {}
        }
        report.entries += 1;
        Ok(())
    })?;
    let mut w = b.into_inner().map_err(io_err)?;
    w.flush().map_err(io_err)?;
    Ok(report)
}

/// A time as a PAX record value: decimal seconds since the epoch with nine fractional digits,
/// the sign applying to the whole value (`-0.000000001` is one nanosecond before the epoch;
/// `secs` -1 with `nanos` 999,999,999).
fn pax_time(t: crate::tree::Timestamp) -> String {
    let total = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos.min(999_999_999));
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

/// The zip time of a node's mtime in local time (zip stores local times); the zip epoch
/// (1980-01-01) for times it cannot represent.
fn zip_time(node: &Node) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    let t = node.mtime.to_utc().with_timezone(&chrono::Local);
    zip::DateTime::from_date_and_time(
        u16::try_from(t.year()).unwrap_or(0),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default()
}

fn zip_err(e: zip::result::ZipError, out_name: &Path) -> Error {
    match e {
        zip::result::ZipError::Io(e) => from_io(e, out_name),
        other => Error::io(out_name, io::Error::other(format!("writing zip archive: {other}"))),
    }
}

/// Write `loc` as a zip archive into `zw` (a seekable file, or a stream made with
/// `zip::ZipWriter::new_stream`), then finish the archive and return the writer.
/// Errors: tree or blob read errors; write errors ([`Error::Io`] naming `out_name`).
pub fn write_zip<W: Write + Seek>(
    fetcher: &BlobFetcher,
    loc: &Located,
    mut zw: zip::ZipWriter<W>,
    out_name: &Path,
) -> Result<(W, DumpReport)> {
    let index = fetcher.index();
    use zip::write::SimpleFileOptions;
    let mut report = DumpReport::default();
    for_each_entry(fetcher, loc, &mut |path, node| {
        let name = archive_name(path).to_string_lossy().into_owned();
        let opts = SimpleFileOptions::default().last_modified_time(zip_time(node)).unix_permissions(node.mode & 0o7777);
        match node.kind {
            NodeKind::File => {
                let size = checked_size(&index, node, path)?;
                let opts =
                    opts.compression_method(zip::CompressionMethod::Deflated).large_file(size >= u32::MAX as u64);
                zw.start_file(name, opts).map_err(|e| zip_err(e, out_name))?;
                io::copy(&mut ContentReader::new(fetcher, &node.content), &mut zw).map_err(|e| from_io(e, out_name))?;
            }
            NodeKind::Dir => zw.add_directory(format!("{name}/"), opts).map_err(|e| zip_err(e, out_name))?,
            NodeKind::Symlink => {
                let target = String::from_utf8_lossy(&node.symlink_target).into_owned();
                zw.add_symlink(name, target, opts).map_err(|e| zip_err(e, out_name))?
            }
            other => {
                report.skipped.push((path.to_path_buf(), kind_name(other)));
                return Ok(());
            }
        }
        report.entries += 1;
        Ok(())
    })?;
    let w = zw.finish().map_err(|e| zip_err(e, out_name))?;
    Ok((w, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Timestamp;

    #[test]
    fn pax_times_carry_their_sign_on_the_whole_value() {
        let t = |secs, nanos| pax_time(Timestamp { secs, nanos });
        assert_eq!(t(-1, 999_999_999), "-0.000000001");
        assert_eq!(t(-2, 500_000_000), "-1.500000000");
        assert_eq!(t(-1, 0), "-1.000000000");
        assert_eq!(t(0, 0), "0.000000000");
        assert_eq!(t(1_700_000_000, 5), "1700000000.000000005");
    }
}
