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
        if backend.exists(FileKind::Config, &CONFIG_ID)? {
            return Err(Error::RepositoryExists { location: backend.location() });
        }
        backend.create()?;
        let master = MasterKey::generate();
        let key_bytes = keyfile::wrap(&master, password, opts.kdf, &crate::util::username(), &crate::util::hostname())?;
        let key_id = KeyId(Id::of_bytes(&key_bytes));
        backend.write(FileKind::Key, &key_id.0, &key_bytes)?;
        let repo = Repository { backend, master: Arc::new(master), config: Config::new(opts), key_id };
        // The config is written last: a repository exists once its config does.
        repo.save(&repo.config)?;
        Ok(repo)
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
}
