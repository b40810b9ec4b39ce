//! Opening, creating and reading a repository: config, keys, index, snapshots, blobs.
//!
//! Nothing outside this module (and the pack/blob/crypto modules it uses) touches encryption:
//! callers read and write plaintext structures through [`Repository`], which keeps the master
//! key to itself.
//!
//! - [`config`]: [`Config`] and the choices `init` makes ([`InitOptions`]);
//! - [`keys`]: key files (open, add, list, remove, change a password);
//! - [`files`]: single-object files by type ([`RepoFile`]: `load::<T>(&id)`, `save(&value)`),
//!   index files;
//! - [`snapshots`]: listing and naming snapshots;
//! - [`blobs`]: blobs and packs ([`BlobRef`], `open_blob`, pack writers, pack headers);
//! - [`drills`]: drill records (`cairn drill`), written and listed;
//! - [`read`]: the one reader of blobs out of packs ([`Repository::read_pack_blobs`]).

pub mod blobs;
pub mod config;
pub mod drills;
pub mod files;
pub mod keys;
pub mod read;
pub mod snapshots;

use std::sync::Arc;

use crate::backend::{Backend, ErrorKind, FileKind, CONFIG_ID};
use crate::chunker::Chunker;
use crate::crypto::keyfile;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::{Id, KeyId};

pub use blobs::BlobRef;
pub use config::{Config, InitOptions, DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE};
pub use drills::DrillRecords;
pub use files::{ConfigName, FileName, RepoFile};
pub use keys::{KeyReport, MAX_KEYS_TRIED, MAX_KEY_FILE_BYTES};
pub use read::{OpenedBlob, PackBlob, PackRead};
pub use snapshots::{DamagedSnapshot, SnapshotList};

/// An open repository: backend, master key and config. Cloning is cheap (two `Arc`s and the
/// small config) and every clone reads and writes the same repository: a lock's refresher
/// thread holds one.
#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    master: Arc<MasterKey>,
    config: Config,
    key_id: KeyId,
}

impl Repository {
    /// Create a new repository in `backend` with one key file for `password`.
    /// Errors: [`Error::Usage`] for options out of range ([`InitOptions::validate`]);
    /// [`Error::RepositoryExists`] when a config is already there; backend errors.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        opts.validate()?;
        Self::create(backend, password, opts, MasterKey::generate())
    }

    /// Create a new repository in `backend` with one key file for `password` whose blob ids
    /// and chunk boundaries are those of `from` (restic's `init --copy-chunker-params`;
    /// repo-format.md, "Repositories sharing id and chunker keys"): its master key shares
    /// `from`'s `id` and `chunker` keys ([`MasterKey::generate_sharing_ids`]) and its config
    /// takes `from`'s chunker parameters (`opts.chunker` is not used); its `encrypt` key, its
    /// repository id, its password and key derivation, pack size and compression level are
    /// its own. `copy` from `from` then moves blobs without recomputing ids, and backups into it
    /// deduplicate against the copied data.
    /// Errors: as [`Repository::init`].
    pub fn init_sharing_ids(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
        from: &Repository,
    ) -> Result<Self> {
        let opts = InitOptions { chunker: from.config.chunker, ..opts.clone() };
        opts.validate()?;
        Self::create(backend, password, &opts, from.master.generate_sharing_ids())
    }

    /// [`Repository::init`] with the master key `master` and checked `opts`.
    fn create(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions, master: MasterKey) -> Result<Self> {
        if backend.exists(FileKind::Config, &CONFIG_ID)? {
            return Err(Error::RepositoryExists { location: backend.location() });
        }
        backend.create()?;
        let key_bytes = keyfile::wrap(&master, password, opts.kdf, &crate::util::username(), &crate::util::hostname())?;
        let key_id = KeyId(Id::of_bytes(&key_bytes));
        backend.write(FileKind::Key, &key_id.0, &key_bytes)?;
        let repo = Repository { backend, master: Arc::new(master), config: Config::new(opts), key_id };
        // The config is written last: a repository exists once its config does.
        repo.save(&repo.config)?;
        Ok(repo)
    }

    /// True when `self` and `other` give the same plaintext the same blob ids and the same
    /// chunk boundaries: the same id and chunker keys and the same chunker parameters (one
    /// was made from the other by [`Repository::init_sharing_ids`], or they are the same
    /// repository). `copy` then moves blobs as they are; otherwise it must recompute ids.
    pub fn same_blob_ids(&self, other: &Repository) -> bool {
        self.master.same_blob_ids(&other.master) && self.config.chunker == other.config.chunker
    }

    /// Open the repository in `backend` with `password`.
    /// Errors: [`Error::RepositoryNotFound`] without a config; [`Error::WrongPassword`] when no
    /// key file opens; [`Error::Corrupt`] for a damaged config.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let config_bytes = match backend.read(FileKind::Config, &CONFIG_ID) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(Error::RepositoryNotFound { location: backend.location() })
            }
            Err(e) => return Err(e.into()),
        };
        let (master, key_id) = keys::unlock(&*backend, password)?;
        // The config read is checked with the key it opens with; until then it is a stand-in.
        let mut repo =
            Repository { backend, master: Arc::new(master), config: Config::new(&InitOptions::default()), key_id };
        let config: Config = repo.decode_stored(&ConfigName, &config_bytes, "config")?;
        config.check()?;
        repo.config = config;
        Ok(repo)
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

    /// A chunker with the repository's parameters and keyed gear table.
    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.config.chunker, self.master.gear_table())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::keyfile::KdfParams;

    /// A new repository in a temporary directory, with a cheap key derivation; password `pw`.
    pub(crate) fn temp_repo() -> (tempfile::TempDir, Repository) {
        let d = tempfile::tempdir().unwrap();
        let backend = Arc::new(crate::backend::local::LocalBackend::new(d.path().join("repo")));
        let opts = InitOptions {
            kdf: KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 },
            ..InitOptions::default()
        };
        let repo = Repository::init(backend, b"pw", &opts).unwrap();
        (d, repo)
    }

    #[test]
    fn init_then_open_and_refusals() {
        let (_d, repo) = temp_repo();
        let backend = repo.backend().clone();
        let again = Repository::init(backend.clone(), b"pw", &InitOptions::default());
        assert!(matches!(again, Err(Error::RepositoryExists { .. })));
        let opened = Repository::open(backend.clone(), b"pw").unwrap();
        assert_eq!(opened.config(), repo.config());
        assert_eq!(opened.key_id(), repo.key_id());
        assert_eq!(opened.blob_id(b"x"), repo.blob_id(b"x"));
        assert!(matches!(Repository::open(backend, b"wrong"), Err(Error::WrongPassword { tried: 1 })));
        let d = tempfile::tempdir().unwrap();
        let empty = Arc::new(crate::backend::local::LocalBackend::new(d.path().join("none")));
        assert!(matches!(Repository::open(empty, b"pw"), Err(Error::RepositoryNotFound { .. })));
    }

    /// A repository made with `init_sharing_ids`: the source's blob ids and chunk boundaries,
    /// its own password, encryption key and repository id.
    #[test]
    fn a_repository_sharing_ids_chunks_and_names_blobs_as_its_source() {
        use crate::chunker::ChunkerParams;
        let d = tempfile::tempdir().unwrap();
        let kdf = KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
        let local = |name: &str| -> Arc<dyn Backend> {
            Arc::new(crate::backend::local::LocalBackend::new(d.path().join(name)))
        };
        // A source with chunker parameters other than the defaults.
        let small = ChunkerParams { min_size: 16 * 1024, avg_size: 64 * 1024, max_size: 256 * 1024, normalization: 1 };
        let src_opts = InitOptions { kdf, chunker: small, ..InitOptions::default() };
        let src = Repository::init(local("src"), b"source pw", &src_opts).unwrap();
        // The target asks for the defaults: the source's parameters win; pack size is its own.
        let opts = InitOptions { kdf, pack_size: 4 << 20, ..InitOptions::default() };
        let dst = Repository::init_sharing_ids(local("dst"), b"target pw", &opts, &src).unwrap();
        assert!(dst.same_blob_ids(&src) && src.same_blob_ids(&dst));
        assert_eq!(dst.config().chunker, small);
        assert_eq!((dst.config().pack_size, src.config().pack_size), (4 << 20, DEFAULT_PACK_SIZE));
        assert_ne!(dst.config().id, src.config().id);

        // Reopened: only with its own password; still the same ids and boundaries.
        assert!(matches!(Repository::open(local("dst"), b"source pw"), Err(Error::WrongPassword { .. })));
        let dst = Repository::open(local("dst"), b"target pw").unwrap();
        assert!(dst.same_blob_ids(&src));
        let data: Vec<u8> = (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let cuts = |r: &Repository| -> Vec<(usize, crate::id::BlobId)> {
            let c = r.chunker().unwrap();
            c.chunks(&data).map(|chunk| (chunk.len(), r.blob_id(chunk))).collect()
        };
        let (a, b) = (cuts(&src), cuts(&dst));
        assert!(a.len() > 5, "{} chunks", a.len());
        assert_eq!(a, b);

        // Its own encryption key: neither opens the other's objects.
        let dst_snapshot = dst.master.seal_object(FileKind::Snapshot, b"x").unwrap();
        assert!(src.master.open_object(FileKind::Snapshot, &dst_snapshot, "s").is_err());
        let cfg = src.backend().read(FileKind::Config, &CONFIG_ID).unwrap();
        assert!(dst.master.open_object(FileKind::Config, &cfg, "config").is_err());

        // Into an existing repository: refused, as init is.
        let again = Repository::init_sharing_ids(local("dst"), b"pw", &opts, &src);
        assert!(matches!(again, Err(Error::RepositoryExists { .. })));
        // Independent repositories do not share ids; nor do the same keys with other parameters.
        let (_d2, other) = temp_repo();
        assert!(!other.same_blob_ids(&src));
        let mut reparam = dst.clone();
        reparam.config.chunker = ChunkerParams::default();
        assert!(!reparam.same_blob_ids(&src));
    }
}
