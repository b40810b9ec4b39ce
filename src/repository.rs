//! Opening, creating and reading a repository: config, keys, index, snapshots, blobs.
//!
//! Nothing outside this module (and the pack/blob/crypto modules it uses) touches encryption:
//! callers read and write plaintext structures through [`Repository`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, ErrorKind, FileKind};
use crate::blob::{self, BlobType};
use crate::chunker::{Chunker, ChunkerParams};
use crate::crypto::keyfile::{self, KdfParams, Unwrapped};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{self, Magic};
use crate::id::{BlobId, Id, IndexId, KeyId, SnapshotId};
use crate::index::{Index, IndexFile};
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::Tree;

/// Repository settings, stored encrypted in `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version of the repository (1).
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// Chunk size parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for new blobs (0 = no compression).
    pub compression_level: i32,
}

/// Default target pack size: 16 MiB.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

/// Choices made once, at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Key derivation parameters for the first key file.
    pub kdf: KdfParams,
    /// Chunk size parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes (1 MiB to 1 GiB).
    pub pack_size: u32,
    /// zstd level (0 to 22).
    pub compression_level: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

/// Most key files whose key derivation runs when a repository is opened (restic's limit): a
/// repository with many key files, or planted ones with costly parameters, cannot stall every
/// command for long. Key files are tried cheapest key derivation first, newest first among
/// equals (see [`key_candidates`]).
pub const MAX_KEYS_TRIED: usize = 20;

/// Largest key file read when opening a repository, in bytes (a real one is about 200 bytes):
/// a larger file is reported as damaged without being read.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A key file worth trying: its name and bytes.
struct KeyCandidate {
    name: String,
    data: Vec<u8>,
}

/// The key files worth trying, in the order they are tried: ascending cost (memory in KiB ×
/// passes) of their key derivation, then newest first; and the key files skipped as damaged
/// (too large, content not matching the name, undecodable header, parameters out of range),
/// each described. No key derivation runs here.
/// Errors: a failed listing or read.
fn key_candidates(backend: &dyn Backend) -> Result<(Vec<KeyCandidate>, Vec<String>)> {
    let mut damaged = Vec::new();
    let mut found = Vec::new();
    for (name, size) in backend.list(FileKind::Key)? {
        let what = format!("key file {name}");
        if size > MAX_KEY_FILE_BYTES {
            damaged.push(format!("{what}: {size} bytes, larger than any key file ({MAX_KEY_FILE_BYTES} at most)"));
            continue;
        }
        let data = backend.read(FileKind::Key, &name)?;
        if Id::of_bytes(&data).to_hex() != name {
            damaged.push(format!("{what}: content does not match its name"));
            continue;
        }
        match keyfile::parse_header(&data, &what).and_then(|(h, _)| h.kdf.check(&what).map(|()| h)) {
            Ok(h) => found.push((name, data, h.kdf.cost(), h.created)),
            Err(e) => damaged.push(e.to_string()),
        }
    }
    found.sort_by(|a, b| a.2.cmp(&b.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
    Ok((found.into_iter().map(|(name, data, _, _)| KeyCandidate { name, data }).collect(), damaged))
}

/// Snapshots with their ids, oldest first.
pub type SnapshotList = Vec<(SnapshotId, Snapshot)>;

/// A snapshot file that cannot be decoded (see [`Repository::snapshots_and_damaged`]).
#[derive(Clone, Debug)]
pub struct DamagedSnapshot {
    /// Its id (its file name in `snapshots/`).
    pub id: SnapshotId,
    /// What check failed.
    pub detail: String,
}

impl std::fmt::Display for DamagedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "snapshot file snapshots/{} is damaged ({}); `cairn forget {}` removes it",
            self.id.to_hex(),
            self.detail,
            self.id.short()
        )
    }
}

/// One stored copy of a blob: where it lies and what it must verify as. Built from an index
/// entry or a pack header; given to [`Repository::open_blob`].
#[derive(Clone, Copy, Debug)]
pub struct BlobRef<'a> {
    /// Data or tree.
    pub blob_type: BlobType,
    /// The blob's id: the keyed hash its plaintext must have.
    pub id: &'a BlobId,
    /// The salt of the pack holding it (its file key derives from it).
    pub salt: &'a [u8; crate::crypto::SALT_LEN],
    /// Byte offset of the stored blob in its pack (bound into the encryption nonce).
    pub offset: u32,
    /// Plaintext length, bytes.
    pub raw_length: u32,
}

/// An open repository: backend, master key and config.
pub struct Repository {
    backend: Arc<dyn Backend>,
    master: Arc<MasterKey>,
    config: Config,
    key_id: KeyId,
}

impl Repository {
    /// Create a new repository in `backend` with one key file for `password`.
    /// Errors: [`Error::RepositoryExists`] when a config is already there; backend errors.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        opts.chunker.validate()?;
        if !(1 << 20..=1 << 30).contains(&opts.pack_size) || !(0..=22).contains(&opts.compression_level) {
            return Err(Error::InvalidInput("pack size must be 1 MiB to 1 GiB and compression level 0 to 22".into()));
        }
        if backend.exists(FileKind::Config, "")? {
            return Err(Error::RepositoryExists { location: backend.location() });
        }
        backend.create()?;
        let master = MasterKey::generate();
        let key_bytes = keyfile::wrap(&master, password, opts.kdf, &crate::util::username(), &crate::util::hostname())?;
        let key_id = KeyId(Id::of_bytes(&key_bytes));
        backend.write(FileKind::Key, &key_id.to_hex(), &key_bytes)?;
        let config = Config {
            version: format::FORMAT_VERSION as u32,
            id: Id(crate::crypto::random_salt()),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression_level: opts.compression_level,
        };
        // The config is written last: a repository exists once its config does.
        let sealed = master.seal_object(Magic::Config, &format::encode(&config)?)?;
        backend.write(FileKind::Config, "", &sealed)?;
        Ok(Repository { backend, master: Arc::new(master), config, key_id })
    }

    /// Open the repository in `backend` with `password`.
    /// Errors: [`Error::RepositoryNotFound`] without a config; [`Error::WrongPassword`] when no
    /// key file opens; [`Error::Corrupt`] for a damaged config.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let config_bytes = match backend.read(FileKind::Config, "") {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(Error::RepositoryNotFound { location: backend.location() })
            }
            Err(e) => return Err(e.into()),
        };
        let (candidates, mut damaged) = key_candidates(&*backend)?;
        let mut tried = 0;
        for KeyCandidate { name, data } in candidates.into_iter().take(MAX_KEYS_TRIED) {
            let what = format!("key file {name}");
            match keyfile::unwrap(&data, password, &what) {
                Ok(Unwrapped::Key(master)) => {
                    let plain = master.open_object(Magic::Config, &config_bytes, "config")?;
                    let config: Config = format::decode(&plain, "config")?;
                    if config.version != format::FORMAT_VERSION as u32 {
                        return Err(Error::corrupt(
                            "config",
                            format!("repository version {} is not supported", config.version),
                        ));
                    }
                    config.chunker.validate().map_err(|e| Error::corrupt("config", e.to_string()))?;
                    let key_id = KeyId(Id::of_bytes(&data));
                    return Ok(Repository { backend, master: Arc::new(master), config, key_id });
                }
                Ok(Unwrapped::WrongPassword) => tried += 1,
                Err(e) => damaged.push(e.to_string()),
            }
        }
        if tried == 0 && !damaged.is_empty() {
            return Err(Error::corrupt("every key file", damaged.join("; ")));
        }
        Err(Error::WrongPassword { tried })
    }

    /// Keep index files, snapshots and tree packs in a local cache below `base` (one
    /// directory per repository id). For remote repositories.
    pub fn use_cache(&mut self, base: &std::path::Path) {
        let dir = base.join(self.config.id.to_hex());
        self.backend = Arc::new(crate::backend::cache::CacheBackend::new(self.backend.clone(), dir));
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The master key, shared (for threads that outlive a borrow, such as a lock's refresher).
    pub fn master_shared(&self) -> Arc<MasterKey> {
        self.master.clone()
    }

    /// The key file this session opened.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Add a key file wrapping this repository's master key with `password` (default KDF
    /// parameters; `username`/`hostname` recorded in its header). Returns its id.
    pub fn add_key(&self, password: &[u8], username: &str, hostname: &str) -> Result<KeyId> {
        let bytes = keyfile::wrap(&self.master, password, KdfParams::default(), username, hostname)?;
        let id = KeyId(Id::of_bytes(&bytes));
        self.backend.write(FileKind::Key, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    /// Every key file with its readable header (no password needed), sorted by creation time.
    /// A damaged key file is listed with the error instead of a header.
    pub fn list_keys(&self) -> Result<Vec<(KeyId, std::result::Result<keyfile::KeyHeader, String>)>> {
        let mut keys = Vec::new();
        for (name, _) in self.backend.list(FileKind::Key)? {
            let Some(id) = Id::from_hex(&name).map(KeyId) else { continue };
            let what = format!("key file {}", id.short());
            let header = self.backend.read(FileKind::Key, &name).map_err(Error::from).and_then(|data| {
                if Id::of_bytes(&data) != id.0 {
                    return Err(Error::corrupt(&what, "content does not match its name"));
                }
                keyfile::parse_header(&data, &what).map(|(h, _)| h)
            });
            keys.push((id, header.map_err(|e| e.to_string())));
        }
        keys.sort_by_key(|(id, h)| (h.as_ref().map(|h| h.created).unwrap_or(i64::MAX), *id));
        Ok(keys)
    }

    /// Remove key file `id`. Refuses the key this session opened and the last readable key.
    /// Errors: [`Error::InvalidInput`] for those refusals or an unknown id.
    pub fn remove_key(&self, id: &KeyId) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::InvalidInput(
                "refusing to remove the key this command was opened with; open with another key's password".into(),
            ));
        }
        let keys = self.list_keys()?;
        if !keys.iter().any(|(k, _)| k == id) {
            return Err(Error::InvalidInput(format!("no key file {}", id.to_hex())));
        }
        if keys.iter().filter(|(k, h)| k != id && h.is_ok()).count() == 0 {
            return Err(Error::InvalidInput(
                "refusing to remove the last key: the repository would be unreadable".into(),
            ));
        }
        self.backend.remove(FileKind::Key, &id.to_hex())?;
        Ok(())
    }

    /// A chunker with the repository's parameters and keyed gear table.
    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.config.chunker, self.master.gear_table())
    }

    /// Encrypt and store a single object; returns its storage id.
    pub fn write_object<T: Serialize>(&self, kind: FileKind, magic: Magic, value: &T) -> Result<Id> {
        let sealed = self.master.seal_object(magic, &format::encode(value)?)?;
        let id = Id::of_bytes(&sealed);
        self.backend.write(kind, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    /// Read a single object, check its name is the hash of its bytes, decrypt and decode it.
    pub fn read_object<T: serde::de::DeserializeOwned>(&self, kind: FileKind, magic: Magic, name: &str) -> Result<T> {
        let what = format!("{} {}", kind.label(), name.get(..8).unwrap_or(name));
        let data = self.backend.read(kind, name)?;
        if Id::of_bytes(&data).to_hex() != name {
            return Err(Error::corrupt(what, "content does not match its name (BLAKE3 of the file)"));
        }
        let plain = self.master.open_object(magic, &data, &what)?;
        format::decode(&plain, &what)
    }

    /// Read and decode every index file, in parallel: `(storage name, contents)`.
    /// Errors: the first index file that cannot be read or is damaged; a failed listing.
    pub fn index_files(&self) -> Result<Vec<(String, IndexFile)>> {
        use rayon::prelude::*;
        let names = self.backend.list(FileKind::Index)?;
        names.par_iter().map(|(n, _)| Ok((n.clone(), self.read_object(FileKind::Index, Magic::Index, n)?))).collect()
    }

    /// The index files in force among `files`: all but those named in another's `supersedes`
    /// (repo-format.md, "Index files").
    pub fn live_index_files(files: &[(String, IndexFile)]) -> Vec<&(String, IndexFile)> {
        let superseded: std::collections::HashSet<String> =
            files.iter().flat_map(|(_, f)| f.supersedes.iter().map(|i| i.to_hex())).collect();
        files.iter().filter(|(name, _)| !superseded.contains(name)).collect()
    }

    /// Load every index file in force into one in-memory index. Damaged index files are an
    /// error.
    pub fn load_index(&self) -> Result<Index> {
        let files = self.index_files()?;
        let mut index = Index::new();
        index.add_files(Self::live_index_files(&files).into_iter().map(|(_, f)| f));
        Ok(index)
    }

    /// Index packs that no index file names: the complete uploads of a backup that was killed
    /// before it wrote its index. Each such pack's header is read (two range reads) and
    /// authenticated; the packs are added to `index` and recorded in a new index file, so the
    /// next backup does not upload their blobs again. Unreadable packs are skipped (check
    /// reports them). Returns how many packs were recovered.
    pub fn index_unindexed_packs(&self, index: &mut Index) -> Result<usize> {
        use crate::index::IndexPack;
        let known: std::collections::HashSet<String> = index.packs().iter().map(|p| p.id.to_hex()).collect();
        let orphans: Vec<(String, u64)> =
            self.backend.list(FileKind::Pack)?.into_iter().filter(|(n, _)| !known.contains(n)).collect();
        let recover = |name: &str, size: u64| -> Result<IndexPack> {
            let id = crate::id::PackId(Id::from_hex(name).ok_or_else(|| Error::corrupt(name, "not a pack id"))?);
            let what = format!("pack {}", id.short());
            let (salt, blobs) = crate::pack::read_stored_header(&*self.backend, &self.master, name, size, &what)?;
            Ok(IndexPack { id, salt, size, blobs })
        };
        let packs: Vec<IndexPack> = orphans.iter().filter_map(|(n, size)| recover(n, *size).ok()).collect();
        if packs.is_empty() {
            return Ok(0);
        }
        let file = IndexFile { packs, supersedes: Vec::new() };
        self.write_index(&file)?;
        index.add_file(&file);
        Ok(file.packs.len())
    }

    /// Store an index file.
    pub fn write_index(&self, file: &IndexFile) -> Result<IndexId> {
        Ok(IndexId(self.write_object(FileKind::Index, Magic::Index, file)?))
    }

    /// Store a snapshot; returns its id.
    pub fn write_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId(self.write_object(FileKind::Snapshot, Magic::Snapshot, s)?))
    }

    /// Load one snapshot.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.read_object(FileKind::Snapshot, Magic::Snapshot, &id.to_hex())
    }

    /// All snapshots passing `filter`, oldest first. A damaged snapshot file is skipped with a
    /// warning on stderr naming it (see [`Repository::snapshots_and_damaged`]): one damaged
    /// file does not hide the others. Commands that delete data by what snapshots reference
    /// (prune) must use [`Repository::snapshots_and_damaged`] and refuse instead.
    /// Errors: a failed listing; a snapshot file that cannot be read from the storage.
    pub fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (v, damaged) = self.snapshots_and_damaged(filter)?;
        for d in &damaged {
            eprintln!("cairn: warning: {d}; it is skipped");
        }
        Ok(v)
    }

    /// All snapshots passing `filter`, oldest first, and the snapshot files that are damaged
    /// (content not matching the name, failed authentication, undecodable), which no filter
    /// can be applied to. A file removed between the listing and the read is left out.
    /// Errors: a failed listing; a snapshot file that cannot be read from the storage.
    pub fn snapshots_and_damaged(&self, filter: &SnapshotFilter) -> Result<(SnapshotList, Vec<DamagedSnapshot>)> {
        use rayon::prelude::*;
        let names = self.backend.list(FileKind::Snapshot)?;
        let loaded: Vec<(SnapshotId, Result<Snapshot>)> = names
            .par_iter()
            .filter_map(|(n, _)| Id::from_hex(n).map(SnapshotId))
            .map(|id| (id, self.load_snapshot(&id)))
            .collect();
        let mut v = Vec::new();
        let mut damaged = Vec::new();
        for (id, r) in loaded {
            match r {
                Ok(s) if filter.matches(&s) => v.push((id, s)),
                Ok(_) => {}
                Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(Error::Corrupt { object, detail }) => {
                    damaged.push(DamagedSnapshot { id, detail: format!("{object}: {detail}") })
                }
                Err(e) => return Err(e),
            }
        }
        v.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        damaged.sort_by_key(|d| d.id);
        Ok((v, damaged))
    }

    /// The snapshot named by a full id or a unique id prefix, without reading it (so that a
    /// damaged snapshot file can still be named, e.g. to remove it).
    /// Errors: [`Error::InvalidInput`] for a name that is not hex; [`Error::SnapshotNotFound`],
    /// [`Error::AmbiguousSnapshot`]; a failed listing.
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId> {
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!("{spec:?} is not a hex snapshot id")));
        }
        let matches: Vec<SnapshotId> = self
            .backend
            .list(FileKind::Snapshot)?
            .into_iter()
            .filter(|(n, _)| n.starts_with(&spec_l))
            .filter_map(|(n, _)| Id::from_hex(&n).map(SnapshotId))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            [id] => Ok(*id),
            _ => Err(Error::AmbiguousSnapshot { prefix: spec.to_string(), count: matches.len() }),
        }
    }

    /// Resolve a user's snapshot name: `latest` (the newest passing `filter`), a full id, or
    /// a unique id prefix. Errors: [`Error::SnapshotNotFound`], [`Error::AmbiguousSnapshot`].
    pub fn find_snapshot(&self, spec: &str, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self.snapshots(filter)?.pop().ok_or_else(|| Error::SnapshotNotFound("latest".into()));
        }
        let id = match self.resolve_snapshot_id(spec) {
            Err(Error::InvalidInput(_)) => {
                return Err(Error::InvalidInput(format!("{spec:?} is neither `latest` nor a hex snapshot id")))
            }
            r => r?,
        };
        Ok((id, self.load_snapshot(&id)?))
    }

    /// Read, decrypt and verify one blob through the index. When its first indexed copy is
    /// damaged, the other copies the index knows are tried ([`Index::other_copies`]).
    /// Errors: [`Error::Corrupt`] naming the blob and its pack when it is missing from the
    /// index or the storage, short, fails authentication, or does not hash to its id (the
    /// first copy's error when every copy fails); [`Error::Backend`] when the storage could not
    /// be read (unreachable, refusing): that is not damage ([`Error::stored_read`]).
    pub fn read_blob(&self, index: &Index, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        let (pack, loc) = index
            .get(id)
            .ok_or_else(|| Error::corrupt(format!("{blob_type:?} blob {}", id.short()), "not in the index"))?;
        match self.read_blob_at(pack, loc, blob_type, id) {
            Err(e @ Error::Corrupt { .. }) => self.read_blob_other_copies(index, blob_type, id).map_err(|_| e),
            r => r,
        }
    }

    /// Read blob `id` from the indexed copies other than the first, returning the first that
    /// verifies. Errors: [`Error::Corrupt`] when there is none or every one fails.
    pub fn read_blob_other_copies(&self, index: &Index, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        let mut last = Error::corrupt(format!("{blob_type:?} blob {}", id.short()), "no other copy is indexed");
        for (pack, loc) in index.other_copies(id) {
            match self.read_blob_at(pack, loc, blob_type, id) {
                Ok(plain) => return Ok(plain),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Read, decrypt and verify the copy of blob `id` at `loc` in `pack`.
    fn read_blob_at(
        &self,
        pack: &crate::index::PackInfo,
        loc: crate::index::Location,
        blob_type: BlobType,
        id: &BlobId,
    ) -> Result<Vec<u8>> {
        if loc.blob_type != blob_type {
            return Err(Error::corrupt(
                format!("blob {}", id.short()),
                format!("indexed as {:?}, expected {blob_type:?}", loc.blob_type),
            ));
        }
        let what = || format!("{blob_type:?} blob {} in pack {}", id.short(), pack.id.to_hex());
        let name = pack.id.to_hex();
        let (offset, length) = (loc.offset as u64, loc.length as u64);
        let stored = match blob_type {
            BlobType::Tree => self.backend.read_range_cached(FileKind::Pack, &name, offset, length),
            BlobType::Data => self.backend.read_range(FileKind::Pack, &name, offset, length),
        }
        .map_err(|e| Error::stored_read(what(), e))?;
        let key = self.master.file_key(&pack.salt);
        blob::open(&self.master, &key, loc.offset as u64, blob_type, id, loc.raw_length, &stored, &what)
    }

    /// The id of a blob with `plaintext` (keyed BLAKE3, repo-format.md "Blobs").
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        self.master.blob_id(plaintext)
    }

    /// Decrypt, decompress and verify `stored`, the stored bytes of `blob`: authentication, its
    /// plaintext length and its id. `what` names it in errors. Errors: [`Error::Corrupt`].
    pub fn open_blob(&self, blob: &BlobRef<'_>, stored: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        self.open_blob_framed(blob, stored, what).map(|(_, plain)| plain)
    }

    /// As [`Repository::open_blob`], but returns the verified *framed* plaintext too
    /// (compression byte and body, ready to be sealed into another pack without recompressing:
    /// prune's repack), as `(framed, plaintext)`.
    pub fn open_blob_framed(
        &self,
        blob: &BlobRef<'_>,
        stored: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = self.master.file_key(blob.salt);
        blob::open_verified(
            &self.master,
            &key,
            blob.offset as u64,
            blob.blob_type,
            blob.id,
            blob.raw_length,
            stored,
            what,
        )
    }

    /// An empty pack for blobs of `blob_type`, built in memory with room for `capacity` bytes.
    pub fn pack_writer(&self, blob_type: BlobType, capacity: usize) -> crate::pack::PackWriter {
        crate::pack::PackWriter::new(&self.master, blob_type, capacity)
    }

    /// An empty pack built in memory in `buf` (its allocation reused, its contents dropped).
    pub fn pack_writer_with_buffer(&self, blob_type: BlobType, buf: Vec<u8>) -> crate::pack::PackWriter {
        crate::pack::PackWriter::with_buffer(&self.master, blob_type, buf)
    }

    /// An empty pack written straight into `file`, a staged backend file. Errors: the
    /// backend's, writing the prefix.
    pub fn pack_writer_staged(
        &self,
        blob_type: BlobType,
        file: Box<dyn crate::backend::StagedFile>,
    ) -> Result<crate::pack::PackWriter> {
        crate::pack::PackWriter::staged(&self.master, blob_type, file)
    }

    /// Decode and check the header of `data`, the whole of pack `id`. Errors: [`Error::Corrupt`].
    pub fn read_pack_header(&self, data: &[u8], id: &crate::id::PackId) -> Result<Vec<crate::pack::BlobEntry>> {
        crate::pack::read_header(&self.master, data, id)
    }

    /// Read the salt and header of stored pack `name` (`size` bytes) with three range reads,
    /// without reading its blobs. `what` names it in errors. Errors: backend errors;
    /// [`Error::Corrupt`] for a damaged prefix, length or header.
    pub fn read_stored_pack_header(
        &self,
        name: &str,
        size: u64,
        what: &str,
    ) -> Result<([u8; crate::crypto::SALT_LEN], Vec<crate::pack::BlobEntry>)> {
        crate::pack::read_stored_header(&*self.backend, &self.master, name, size, what)
    }

    /// Load and decode a tree blob.
    pub fn load_tree(&self, index: &Index, id: &BlobId) -> Result<Tree> {
        let plain = self.read_blob(index, BlobType::Tree, id)?;
        let what = format!("tree {}", id.short());
        let tree = Tree::decode(&plain, &what)?;
        // Names must be valid single components, sorted and unique (repo-format.md, "Tree blobs").
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt(what, "entries are not sorted by name or a name repeats"));
            }
        }
        if let Some(bad) = tree.nodes.iter().find(|n| !Tree::valid_name(&n.name)) {
            return Err(Error::corrupt(what, format!("invalid entry name {:?}", bad.name_lossy())));
        }
        Ok(tree)
    }
}
