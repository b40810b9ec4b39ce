//! Storage backends: where repository files live (repo-format.md, "Layout").
//!
//! The trait is small and synchronous; every call names a file by its kind and id
//! ([`FileKind`], [`Id`]): the hex of the id appears only in the path or object key
//! ([`FileKind::path`]) and in messages. Errors
//! are classified so callers and retry wrappers know what not to retry: [`ErrorKind::NotFound`],
//! [`ErrorKind::Permanent`], [`ErrorKind::Transient`], [`ErrorKind::Corrupt`]. The kind travels
//! up to the command's exit code: a storage that cannot be reached is not damage in the
//! repository, and damage is not a storage failure.

pub mod cache;
pub mod conformance;
pub mod limit;
pub mod local;
pub mod memory;
pub mod opendal;
pub mod retry;
mod transport;

use std::fmt;

use bytes::Bytes;

use crate::id::{Id, ID_LEN};

/// The id the `config` file is named by in [`Backend`] calls: it has no id of its own (it is
/// not named by its hash), and [`FileKind::path`] ignores the id for [`FileKind::Config`]
/// (rustic passes a default id the same way). A listing of [`FileKind::Config`] gives this id
/// when the config exists.
pub const CONFIG_ID: Id = Id([0; ID_LEN]);

/// The kinds of repository file, each with its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `config` (its id is ignored: callers pass [`CONFIG_ID`]).
    Config,
    /// `keys/<id>`.
    Key,
    /// `data/<id[0:2]>/<id>`.
    Pack,
    /// `index/<id>`.
    Index,
    /// `snapshots/<id>`.
    Snapshot,
    /// `locks/<id>`.
    Lock,
    /// `drills/<id>`: drill records (`cairn drill`), created by the first one written.
    Drill,
}

impl FileKind {
    /// The directory of this kind, relative to the repository root ("" for config).
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::Drill => "drills",
        }
    }

    /// The path of file `id` of this kind, relative to the repository root, with `/`
    /// separators (the same string is the object key on object stores): `keys/<hex>`,
    /// `data/<hex[0:2]>/<hex>`, ..., `config` whatever the id. The one place an id becomes a
    /// storage name.
    pub fn path(self, id: &Id) -> String {
        let name = id.to_hex();
        match self {
            FileKind::Config => "config".to_string(),
            FileKind::Pack => format!("data/{}/{}", name.get(..2).unwrap_or("00"), name),
            k => format!("{}/{}", k.dir(), name),
        }
    }

    /// Split a listing of storage names ([`Backend::list_names`]) into the files named by an
    /// id (`(id, size in bytes)`) and the others (names that are not 64 lower-case hex
    /// characters: a stray file an operator left). For [`FileKind::Config`] every name is the config
    /// ([`CONFIG_ID`]).
    #[allow(clippy::type_complexity)]
    pub fn split_listing(self, names: Vec<(String, u64)>) -> (Vec<(Id, u64)>, Vec<(String, u64)>) {
        let mut ids = Vec::with_capacity(names.len());
        let mut foreign = Vec::new();
        for (name, size) in names {
            // Only the canonical (lower-case) hex is a name an id is stored under.
            let id = if self == FileKind::Config {
                Some(CONFIG_ID)
            } else {
                Id::from_hex(&name).filter(|id| id.to_hex() == name)
            };
            match id {
                Some(id) => ids.push((id, size)),
                None => foreign.push((name, size)),
            }
        }
        (ids, foreign)
    }

    /// Lower-case name for messages.
    pub fn label(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Pack => "pack",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Drill => "drill record",
        }
    }
}

/// Failure classes of a backend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// Retrying may help (timeouts, resets, throttling).
    Transient,
    /// Retrying will not help (permissions, a full disk, bad credentials, a missing bucket,
    /// a TLS mismatch): the configuration or the storage needs fixing.
    Permanent,
    /// The file is there but is not what was stored: shorter than the range asked for.
    /// Damage at rest; not retried.
    Corrupt,
}

/// An error from a backend, naming the operation and the file.
#[derive(Debug)]
pub struct BackendError {
    /// Failure class.
    pub kind: ErrorKind,
    /// What was attempted and on what (`write data/ab/ab12…`).
    pub context: String,
    /// The underlying error.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl BackendError {
    /// Classify an I/O error: not found, transient (interrupted, timed out, would block),
    /// corrupt (the file ends too early), otherwise permanent.
    pub fn from_io(context: String, e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::UnexpectedEof => ErrorKind::Corrupt,
            K::Interrupted | K::TimedOut | K::WouldBlock | K::ConnectionReset | K::ConnectionAborted => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Permanent,
        };
        BackendError { kind, context, source: Box::new(e) }
    }
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// What a backend is, for the policies that depend on it: how many transfers to run at once,
/// whether to keep a local cache of metadata. Wrappers answer what the backend they wrap
/// answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties {
    /// On another machine (an object store): worth a local cache of metadata and retries.
    pub remote: bool,
    /// Transfers that suit it at once (packs uploaded in parallel; the base of the reader
    /// thread counts of restore, check and dump), at least 1. The backend option
    /// `connections` overrides it ([`BackendOptions::connections`]).
    pub connections: usize,
    /// A write over an existing name replaces the file atomically: readers see the old file or
    /// the new one, never a mix (a local rename, an S3 PUT).
    pub atomic_replace: bool,
}

/// A command that reads the repository with several threads ([`Properties::reader_threads`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadWork {
    /// restore: reads pack ranges and writes files.
    Restore,
    /// check: reads and verifies whole packs.
    Check,
    /// dump and mount: fetch blobs ahead of one writer.
    Fetch,
}

impl Properties {
    /// Threads that read the repository at once for `work`, given `connections` (the backend
    /// option `connections`, else [`Properties::connections`]): a remote store is
    /// latency-bound, so one read per connection (at least 4 for restore, 2 for check); a local
    /// disk is CPU-bound (restore: 0, one thread per CPU; check: the CPUs, 2 to 8; fetching:
    /// 2).
    pub fn reader_threads(&self, work: ReadWork, connections: usize) -> usize {
        match (self.remote, work) {
            (true, ReadWork::Restore) => connections.max(4),
            (true, ReadWork::Check) => connections.max(2),
            (true, ReadWork::Fetch) => connections.max(1),
            (false, ReadWork::Restore) => 0,
            (false, ReadWork::Check) => std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8),
            (false, ReadWork::Fetch) => 2,
        }
    }

    /// A local directory: one upload at a time (a local write is far faster than packs fill).
    pub const LOCAL: Properties = Properties { remote: false, connections: 1, atomic_replace: true };
    /// S3 and S3-compatible stores: five uploads at once (restic's S3 default).
    pub const S3: Properties = Properties { remote: true, connections: 5, atomic_replace: true };
    /// Another OpenDAL service: remote, five at once; atomic replacement is not promised.
    pub const OPENDAL: Properties = Properties { remote: true, connections: 5, atomic_replace: false };
    /// The in-memory backend.
    pub const MEMORY: Properties = Properties { remote: false, connections: 1, atomic_replace: true };
}

/// A place to keep repository files. Implementations must be safe to call from many threads.
///
/// Contract: `write_bytes` is atomic — after it returns the file is durable and complete, and a
/// crash during it leaves either no file or the complete file, never a partial one under the
/// final name. Files are never overwritten with different content (names are content hashes).
/// Every method but [`Backend::list`] (which parses [`Backend::list_names`]) is required: a
/// wrapper forwards each one or implements it deliberately.
///
/// Files are named by [`Id`] (the config by [`CONFIG_ID`]). Listings are of names, as stored:
/// [`Backend::list_names`] gives every file of a kind, ids or not (a stray file an operator
/// left in `data/` is there, for `check` to report), temporaries (`.tmp-*`) never;
/// [`Backend::list`] keeps the ids.
/// [`conformance::run`] checks an implementation against this contract.
pub trait Backend: Send + Sync {
    /// A human-readable location (path or URL) for messages.
    fn location(&self) -> String;

    /// What this backend is (remote or local, connections, atomic replacement).
    fn properties(&self) -> Properties;

    /// Create the repository's directories; fails if `config` exists.
    fn create(&self) -> BackendResult<()>;

    /// Store `data` as file `id` of `kind`, atomically and durably. The bytes are taken by
    /// value (a `Vec<u8>` converts without a copy) so an object store can send them as they
    /// are; a wrapper that retries clones the handle, not the bytes.
    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()>;

    /// The whole file.
    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>>;

    /// `length` bytes from byte `offset`; fewer only if the file is shorter (an error).
    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>>;

    /// Storage names and sizes (bytes) of all files of `kind`, whether or not the names are
    /// ids (temporaries `.tmp-*` left out); the config is listed as `config`.
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>>;

    /// Ids and sizes (bytes) of the files of `kind`; files whose names are not ids are left
    /// out ([`FileKind::split_listing`] of [`Backend::list_names`]).
    fn list(&self, kind: FileKind) -> BackendResult<Vec<(Id, u64)>> {
        Ok(kind.split_listing(self.list_names(kind)?).0)
    }

    /// Delete a file; deleting a missing file is not an error.
    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()>;

    /// True if the file exists.
    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool>;

    /// Like [`Backend::read_range`], for data worth keeping locally (tree packs): a caching
    /// wrapper fetches and keeps the whole file; a storage backend just reads the range.
    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>>;

    /// Start a file of `kind` that is written in pieces and named when complete (a pack being
    /// filled), so the writer need not hold it in memory; `Ok(None)` where the backend only
    /// takes whole files through [`Backend::write_bytes`] (then the caller writes the whole file).
    /// A wrapper forwards to the backend it wraps (adding its own behaviour to the pieces).
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>>;

    /// Remove the temporary files (`.tmp-*`, which readers ignore) that writers killed before
    /// they finished left behind, those not modified for `age` or longer; returns how many
    /// were removed and their bytes. Backends whose writes leave none return `(0, 0)`.
    fn remove_stale_temporaries(&self, age: std::time::Duration) -> BackendResult<(u64, u64)>;
}

/// A file being written in pieces (see [`Backend::stage`]), with the atomicity of
/// [`Backend::write_bytes`]: it appears under its name, complete and durable, only when committed.
/// Dropped uncommitted, what was written is removed.
pub trait StagedFile: Send {
    /// Append `data`. Errors: as for [`Backend::write_bytes`].
    fn append(&mut self, data: &[u8]) -> BackendResult<()>;

    /// Bytes appended so far.
    fn len(&self) -> u64;

    /// True before anything was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Make the file durable and give it its name, from `id`. Errors: as for
    /// [`Backend::write_bytes`].
    fn commit(self: Box<Self>, id: &Id) -> BackendResult<()>;
}

impl<'a> dyn Backend + 'a {
    /// [`Backend::write_bytes`] of a copy of `data`, for callers that hold a borrowed slice
    /// (callers that own a `Vec<u8>` hand it over with `write_bytes(.., vec.into())`).
    /// Errors: as [`Backend::write_bytes`].
    pub fn write(&self, kind: FileKind, id: &Id, data: &[u8]) -> BackendResult<()> {
        self.write_bytes(kind, id, Bytes::copy_from_slice(data))
    }
}

impl<T: Backend + ?Sized> Backend for std::sync::Arc<T> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn properties(&self) -> Properties {
        (**self).properties()
    }
    fn create(&self) -> BackendResult<()> {
        (**self).create()
    }
    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
        (**self).write_bytes(kind, id, data)
    }
    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        (**self).read(kind, id)
    }
    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        (**self).read_range(kind, id, offset, length)
    }
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        (**self).list_names(kind)
    }
    fn list(&self, kind: FileKind) -> BackendResult<Vec<(Id, u64)>> {
        (**self).list(kind)
    }
    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        (**self).remove(kind, id)
    }
    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        (**self).exists(kind, id)
    }
    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        (**self).read_range_cached(kind, id, offset, length)
    }
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        (**self).stage(kind)
    }
    fn remove_stale_temporaries(&self, age: std::time::Duration) -> BackendResult<(u64, u64)> {
        (**self).remove_stale_temporaries(age)
    }
}

/// How to reach a repository beyond its location string.
#[derive(Clone, Default)]
pub struct BackendOptions {
    /// `-o key=value` options (`s3.region`, `s3.bucket-lookup`, `timeout` seconds, `retries`
    /// after the first attempt, `connections`, or an OpenDAL service's own keys for
    /// `opendal:SCHEME`).
    pub options: std::collections::HashMap<String, String>,
    /// Upload limit in KiB/s.
    pub limit_upload: Option<u64>,
    /// Download limit in KiB/s.
    pub limit_download: Option<u64>,
    /// This repository's own environment variables (name to value), looked up before the
    /// process's: the S3 backend's `AWS_*` credentials and region of a repository whose
    /// credentials differ from the process's (a copy target's environment file). Empty: the
    /// process's environment alone. When it gives `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, the session token and `AWS_PROFILE` come from it alone (never
    /// one account's key with another's token). Its values are secrets: `Debug` shows names only.
    pub environment: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for BackendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendOptions")
            .field("options", &self.options)
            .field("limit_upload", &self.limit_upload)
            .field("limit_download", &self.limit_download)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BackendOptions {
    /// Transfers to run at once: the backend option `connections` (1 to 64) when given, else
    /// what the backend suits ([`Properties::connections`]).
    /// Errors: [`crate::Error::Usage`] for a value that is not a number from 1 to 64.
    pub fn connections(&self, properties: &Properties) -> crate::Result<usize> {
        match self.options.get("connections") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| crate::Error::usage(format!("backend option connections={v}: expected 1 to 64"))),
            None => Ok(properties.connections),
        }
    }
}

/// The properties of the backend `location` names (as [`open_location`] would open it), without
/// opening it. Errors: [`crate::Error::Usage`] for an empty or unsupported location.
pub fn location_properties(location: &str) -> crate::Result<Properties> {
    Ok(match location_kind(location)? {
        LocationKind::Local(_) => Properties::LOCAL,
        LocationKind::S3 => Properties::S3,
        LocationKind::Opendal(_) => Properties::OPENDAL,
    })
}

/// True for locations on another machine (worth a local cache and retries); false for an
/// empty or unsupported location. Prefer [`Backend::properties`] on an open backend.
pub fn is_remote(location: &str) -> bool {
    location_properties(location).is_ok_and(|p| p.remote)
}

/// Which backend a location names.
enum LocationKind<'a> {
    /// A local directory (the path, `local:` removed).
    Local(&'a str),
    /// `s3:...`.
    S3,
    /// `opendal:SCHEME` (the scheme).
    Opendal(&'a str),
}

fn location_kind(location: &str) -> crate::Result<LocationKind<'_>> {
    if location.is_empty() {
        return Err(crate::Error::usage("no repository location given"));
    }
    if location.starts_with("s3:") {
        return Ok(LocationKind::S3);
    }
    if let Some(scheme) = location.strip_prefix("opendal:") {
        return Ok(LocationKind::Opendal(scheme));
    }
    for scheme in ["sftp:", "rest:", "b2:", "azure:", "gs:", "swift:", "rclone:"] {
        if location.starts_with(scheme) {
            return Err(crate::Error::usage(format!(
                "repository {location:?}: the {} backend is not built in; S3-compatible storage works as s3:, other services through opendal:SCHEME",
                scheme.trim_end_matches(':')
            )));
        }
    }
    Ok(LocationKind::Local(location.strip_prefix("local:").unwrap_or(location)))
}

/// Open the backend a repository string names: a local path (or `local:PATH`),
/// `s3:HOST[:PORT]/BUCKET[/PREFIX]`, `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`, or
/// `opendal:SCHEME` configured by options. Remote backends retry transient failures; bandwidth
/// limits pace local repositories here and remote ones in their HTTP transport.
/// Errors: [`crate::Error::Usage`] for an empty, malformed or unsupported location or a bad
/// option value; [`crate::Error::Internal`] when the I/O runtime or HTTP client cannot start.
pub fn open_location(location: &str, opts: &BackendOptions) -> crate::Result<std::sync::Arc<dyn Backend>> {
    use std::sync::Arc;
    let kind = location_kind(location)?;
    // Validate `connections` whatever the backend, at open.
    opts.connections(&location_properties(location)?)?;
    // Remote transfers are paced in the HTTP transport, piece by piece, as a slow link paces
    // them (the timeout then counts time without progress, never time spent waiting).
    let limits = (opts.limit_upload, opts.limit_download);
    let remote: opendal::OpendalBackend = match kind {
        LocationKind::S3 => {
            let loc = opendal::S3Location::parse(location).map_err(crate::Error::Usage)?;
            opendal::OpendalBackend::s3(&loc, &opts.options, limits, &opts.environment)?
        }
        LocationKind::Opendal(scheme) => opendal::OpendalBackend::scheme(scheme, &opts.options, limits)?,
        LocationKind::Local(path) => {
            let local = local::LocalBackend::new(path);
            return Ok(if opts.limit_upload.is_some() || opts.limit_download.is_some() {
                Arc::new(limit::LimitBackend::new(local, opts.limit_upload, opts.limit_download))
            } else {
                Arc::new(local)
            });
        }
    };
    Ok(match opts.options.get("retries") {
        Some(v) => {
            let n: u32 = v
                .parse()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| crate::Error::usage(format!("backend option retries={v}: expected 0 to 100")))?;
            Arc::new(retry::RetryBackend::with_policy(
                remote,
                n + 1,
                std::time::Duration::from_millis(250),
                std::time::Duration::from_secs(30),
            ))
        }
        None => Arc::new(retry::RetryBackend::new(remote)),
    })
}

/// The name a listing gives for a stored file called `raw`, or `None` for a file a listing
/// leaves out: a hidden file (a name starting with `.`: temporary files being written,
/// [`local::TMP_PREFIX`], and what file managers and NFS leave: `.DS_Store`, `.nfs0123`) and
/// the empty name. Every other name is listed, so `check` reports a stray file an operator
/// left (`pack.bak` included); control characters are escaped (`\n`) so a name cannot garble a
/// report.
pub(crate) fn listed_name(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.starts_with('.') {
        return None;
    }
    Some(if raw.chars().any(char::is_control) { raw.escape_debug().to_string() } else { raw.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_their_backends_and_properties() {
        assert_eq!(location_properties("/srv/repo").unwrap(), Properties::LOCAL);
        assert_eq!(location_properties("local:/srv/repo").unwrap(), Properties::LOCAL);
        assert_eq!(location_properties("s3:host/bucket").unwrap(), Properties::S3);
        assert!(location_properties("opendal:fs").unwrap().remote);
        assert!(matches!(location_properties(""), Err(crate::Error::Usage(_))));
        assert!(matches!(location_properties("sftp:host:/r"), Err(crate::Error::Usage(_))));
        assert!(is_remote("s3:h/b") && !is_remote("/srv/repo") && !is_remote(""));
    }

    #[test]
    fn paths_are_made_from_ids_and_listings_split_ids_from_other_names() {
        let id = Id([0xab; 32]);
        let hex = id.to_hex();
        assert_eq!(FileKind::Pack.path(&id), format!("data/ab/{hex}"));
        assert_eq!(FileKind::Index.path(&id), format!("index/{hex}"));
        assert_eq!(FileKind::Config.path(&id), "config");
        assert_eq!(FileKind::Config.path(&CONFIG_ID), "config");
        let listed = vec![(hex.clone(), 3), ("stray".to_string(), 1), ("AB".repeat(32), 2)];
        let (ids, foreign) = FileKind::Pack.split_listing(listed);
        assert_eq!(ids, vec![(id, 3)]);
        assert_eq!(foreign, vec![("stray".to_string(), 1), ("AB".repeat(32), 2)], "no id is stored under upper case");
        let (config, none) = FileKind::Config.split_listing(vec![("config".into(), 9)]);
        assert_eq!((config, none), (vec![(CONFIG_ID, 9)], vec![]));
    }

    #[test]
    fn the_connections_option_overrides_the_backend() {
        let mut o = BackendOptions::default();
        assert_eq!(o.connections(&Properties::S3).unwrap(), 5);
        assert_eq!(o.connections(&Properties::LOCAL).unwrap(), 1);
        o.options.insert("connections".into(), "12".into());
        assert_eq!(o.connections(&Properties::LOCAL).unwrap(), 12);
        for bad in ["0", "65", "x"] {
            o.options.insert("connections".into(), bad.into());
            let e = o.connections(&Properties::S3).unwrap_err();
            assert!(matches!(&e, crate::Error::Usage(m) if m.contains("connections") && !m.contains("-o")), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(open_location(&dir.path().display().to_string(), &o).is_err(), "checked at open");
    }

    /// Each wrapper around the memory and the local backend passes the conformance suite
    /// (staged files, cached reads and temporaries included).
    #[test]
    fn wrappers_conform_around_memory_and_local() {
        let dir = tempfile::tempdir().unwrap();
        let quick = |d: std::time::Duration| retry::RetryBackend::with_policy(memory::MemoryBackend::new(), 3, d, d);
        let ms = std::time::Duration::from_millis(1);
        conformance::run(&quick(ms), 50).unwrap();
        conformance::run(&limit::LimitBackend::new(memory::MemoryBackend::new(), Some(1 << 20), Some(1 << 20)), 50)
            .unwrap();
        conformance::run(&cache::CacheBackend::new(memory::MemoryBackend::new(), dir.path().join("c1/repo")), 50)
            .unwrap();
        let local = |n: &str| local::LocalBackend::new(dir.path().join(n));
        conformance::run(&local("plain"), 50).unwrap();
        conformance::run(&retry::RetryBackend::with_policy(local("retry"), 3, ms, ms), 50).unwrap();
        conformance::run(&limit::LimitBackend::new(local("limit"), Some(1 << 20), Some(1 << 20)), 50).unwrap();
        conformance::run(&cache::CacheBackend::new(local("cached"), dir.path().join("c2/repo")), 50).unwrap();
    }
}
