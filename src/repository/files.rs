//! Single-object repository files (config, index files, snapshots, locks): each kind is a
//! [`RepoFile`], which ties its kind ([`FileKind`]: its directory and its magic), the type of
//! its name ([`RepoFile::Id`]) and its plaintext type together, so that
//! [`Repository::load`]`::<T>(&id)` and [`Repository::save`]`(&value)` cannot pair an index
//! file's magic with a snapshot's directory.
//!
//! Every such file is `magic || version || salt || AES-256-GCM(bincode(value))`
//! (repo-format.md, "Single-object files"); all but the config are named by the BLAKE3 hash of
//! their bytes, which every read checks before decrypting.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::config::Config;
use super::Repository;
use crate::backend::{FileKind, CONFIG_ID};
use crate::error::{Error, Result};
use crate::format;
use crate::id::{Id, IndexId, LockId, PackId, SnapshotId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::{AppendLock, LockInfo};
use crate::snapshot::Snapshot;

/// The name of a repository file, as [`RepoFile::Id`].
pub trait FileName: Copy + Send + Sync {
    /// True when a file's name is the BLAKE3 hash of its bytes (every kind but the config).
    const CONTENT_ADDRESSED: bool = true;
    /// The name of the file holding `stored` (its complete stored bytes).
    fn of_stored(stored: &[u8]) -> Self;
    /// The typed name of a file listed under `id`.
    fn from_id(id: Id) -> Self;
    /// The id the backend names the file by ([`crate::backend::CONFIG_ID`] for the config).
    fn id(&self) -> Id;
    /// The short form for messages (8 hex characters; empty for the config).
    fn short(&self) -> String;
}

/// The name of the one `config` file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigName;

impl FileName for ConfigName {
    const CONTENT_ADDRESSED: bool = false;
    fn of_stored(_: &[u8]) -> Self {
        ConfigName
    }
    fn from_id(_: Id) -> Self {
        ConfigName
    }
    fn id(&self) -> Id {
        CONFIG_ID
    }
    fn short(&self) -> String {
        String::new()
    }
}

macro_rules! content_named {
    ($($t:ty),*) => {$(
        impl FileName for $t {
            fn of_stored(stored: &[u8]) -> Self {
                Self(Id::of_bytes(stored))
            }
            fn from_id(id: Id) -> Self {
                Self(id)
            }
            fn id(&self) -> Id {
                self.0
            }
            fn short(&self) -> String {
                <$t>::short(self)
            }
        }
    )*};
}
content_named!(IndexId, SnapshotId, LockId);

/// A kind of single-object repository file and its plaintext type.
pub trait RepoFile: Serialize + DeserializeOwned {
    /// Its kind: its directory and its magic (the first 4 bytes of the file).
    const KIND: FileKind;
    /// The type of its name.
    type Id: FileName;

    /// Its plaintext: bincode of the value unless the kind says otherwise (a version 2
    /// snapshot, [`Snapshot::encode`]). Errors: [`Error::Internal`] when it cannot be encoded.
    fn encode_plain(&self) -> Result<Vec<u8>> {
        format::encode(self)
    }

    /// The value of plaintext `plain` (see [`RepoFile::encode_plain`]); `what` names the file
    /// in errors. Errors: [`Error::Corrupt`] when it does not decode.
    fn decode_plain(plain: &[u8], what: &str) -> Result<Self> {
        format::decode(plain, what)
    }
}

macro_rules! repo_file {
    ($($t:ty => $kind:ident, $id:ty;)*) => {$(
        impl RepoFile for $t {
            const KIND: FileKind = FileKind::$kind;
            type Id = $id;
        }
    )*};
}
repo_file! {
    Config => Config, ConfigName;
    IndexFile => Index, IndexId;
    LockInfo => Lock, LockId;
}

impl RepoFile for Snapshot {
    const KIND: FileKind = FileKind::Snapshot;
    type Id = SnapshotId;
    fn encode_plain(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn decode_plain(plain: &[u8], what: &str) -> Result<Self> {
        Snapshot::decode(plain, what)
    }
}

/// How errors name file `short` of `kind`: `index 1a2b3c4d`, `config`.
fn describe(kind: FileKind, short: &str) -> String {
    if short.is_empty() {
        kind.label().to_string()
    } else {
        format!("{} {short}", kind.label())
    }
}

impl Repository {
    /// Read file `id` of kind `T`, check its name is the hash of its bytes, decrypt and decode
    /// it. Errors: [`Error::Backend`] when it cannot be read (not found included);
    /// [`Error::Corrupt`] naming it for a wrong hash, failed authentication or bad encoding.
    pub fn load<T: RepoFile>(&self, id: &T::Id) -> Result<T> {
        let what = describe(T::KIND, &id.short());
        let data = self.backend.read(T::KIND, &id.id())?;
        self.decode_stored(id, &data, &what)
    }

    /// Decrypt and decode `data`, the stored bytes of file `id` of kind `T`, after checking
    /// its name. Errors: as [`Repository::load`].
    pub(super) fn decode_stored<T: RepoFile>(&self, id: &T::Id, data: &[u8], what: &str) -> Result<T> {
        if <T::Id as FileName>::CONTENT_ADDRESSED && T::Id::of_stored(data).id() != id.id() {
            return Err(Error::corrupt(what, "content does not match its name (BLAKE3 of the file)"));
        }
        let plain = self.master.open_object(T::KIND, data, what)?;
        T::decode_plain(&plain, what)
    }

    /// Encrypt and store `value` as a new file of kind `T`; returns its name.
    /// Errors: [`Error::Internal`] when it cannot be encoded; the backend's.
    pub fn save<T: RepoFile>(&self, value: &T) -> Result<T::Id> {
        let sealed = self.master.seal_object(T::KIND, &value.encode_plain()?)?;
        let id = T::Id::of_stored(&sealed);
        self.backend.write(T::KIND, &id.id(), &sealed)?;
        Ok(id)
    }

    /// The files of kind `T` with their sizes in bytes; names that are not ids are left out
    /// (see [`crate::backend::Backend::list_names`]). Errors: a failed listing.
    pub fn list<T: RepoFile>(&self) -> Result<Vec<(T::Id, u64)>> {
        Ok(self.backend.list(T::KIND)?.into_iter().map(|(id, size)| (T::Id::from_id(id), size)).collect())
    }

    /// Read and decode every file of kind `T`, in parallel: the files that decode, and the
    /// damaged ones (wrong hash, failed authentication, undecodable) with why, both in listing
    /// order. A file removed between the listing and its read is left out. Errors: a failed
    /// listing; a file that cannot be read from the storage.
    #[allow(clippy::type_complexity)]
    pub fn load_all<T>(&self) -> Result<(Vec<(T::Id, T)>, Vec<(T::Id, String)>)>
    where
        T: RepoFile + Send,
        T::Id: Send + Sync + Copy,
    {
        use rayon::prelude::*;
        let ids = self.list::<T>()?;
        let loaded: Vec<(T::Id, Result<T>)> = ids.par_iter().map(|(id, _)| (*id, self.load::<T>(id))).collect();
        let (mut good, mut damaged) = (Vec::new(), Vec::new());
        for (id, r) in loaded {
            match r {
                Ok(v) => good.push((id, v)),
                Err(Error::Backend(e)) if e.kind == crate::backend::ErrorKind::NotFound => {}
                Err(Error::Corrupt { object, detail }) => damaged.push((id, format!("{object}: {detail}"))),
                Err(e) => return Err(e),
            }
        }
        Ok((good, damaged))
    }

    /// Remove file `id` of kind `T`. Errors: the backend's (not found included).
    pub fn remove<T: RepoFile>(&self, id: &T::Id) -> Result<()> {
        Ok(self.backend.remove(T::KIND, &id.id())?)
    }

    /// Read and decode every index file, in parallel: `(id, contents)`.
    /// Errors: the first index file that cannot be read or is damaged; [`Error::Refused`] for a
    /// file in the index directory whose name is not an id; a failed listing.
    pub fn index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        use rayon::prelude::*;
        let (ids, foreign) = FileKind::Index.split_listing(self.backend.list_names(FileKind::Index)?);
        // Not ignored: a renamed index file may hold the only entries of packs that snapshots
        // need, and a prune that did not see them would delete those packs.
        if let Some((name, _)) = foreign.first() {
            return Err(Error::Refused(format!(
                "index/{name}: a file in the index directory whose name is not an index id: cairn cannot tell whether it holds entries snapshots need; give it back its name, or move it out of the repository if it is not an index file"
            )));
        }
        ids.par_iter()
            .map(|(id, _)| {
                let id = IndexId(*id);
                Ok((id, self.load::<IndexFile>(&id)?))
            })
            .collect()
    }

    /// The index files in force among `files`: all but those named in another's `supersedes`
    /// (repo-format.md, "Index files").
    pub fn live_index_files(files: &[(IndexId, IndexFile)]) -> Vec<&(IndexId, IndexFile)> {
        let superseded: std::collections::HashSet<IndexId> =
            files.iter().flat_map(|(_, f)| f.supersedes.iter().copied()).collect();
        files.iter().filter(|(id, _)| !superseded.contains(id)).collect()
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
    /// reports them; files whose names are not ids are not packs). Returns how many packs were
    /// recovered. Writes under `lock` (checked before the index file is written).
    /// Errors: a failed listing; a lost lock; the index file's write.
    pub fn index_unindexed_packs(&self, lock: &AppendLock, index: &mut Index) -> Result<usize> {
        let known: std::collections::HashSet<PackId> = index.packs().iter().map(|p| p.id).collect();
        let orphans: Vec<(PackId, u64)> = self
            .backend
            .list(FileKind::Pack)?
            .into_iter()
            .map(|(id, size)| (PackId(id), size))
            .filter(|(id, _)| !known.contains(id))
            .collect();
        let recover = |id: PackId, size: u64| -> Result<IndexPack> {
            let what = format!("pack {}", id.short());
            let (salt, blobs) = self.read_stored_pack_header(&id, size, &what)?;
            Ok(IndexPack { id, salt, size, blobs })
        };
        let packs: Vec<IndexPack> = orphans.iter().filter_map(|(id, size)| recover(*id, *size).ok()).collect();
        if packs.is_empty() {
            return Ok(0);
        }
        let file = IndexFile { packs, supersedes: Vec::new() };
        lock.check()?;
        self.write_index(lock, &file)?;
        index.add_file(&file);
        Ok(file.packs.len())
    }

    /// Store an index file, under `lock` (an append lock, or [`crate::lock::ExclusiveLock::append`]
    /// of an exclusive one: the type proves the caller holds one; checking that it is still
    /// held is the caller's, before each write). Errors: as [`Repository::save`].
    pub fn write_index(&self, _lock: &AppendLock, file: &IndexFile) -> Result<IndexId> {
        self.save(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::tests::temp_repo;

    #[test]
    fn save_then_load_by_type() {
        let (_d, repo) = temp_repo();
        let file = IndexFile { packs: vec![], supersedes: vec![IndexId(Id([3; 32]))] };
        let id = repo.save(&file).unwrap();
        assert_eq!(repo.load::<IndexFile>(&id).unwrap(), file);
        assert_eq!(repo.list::<IndexFile>().unwrap().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![id]);
        // The same name read as another kind: not found in that directory.
        assert!(repo.load::<Snapshot>(&SnapshotId(id.0)).is_err());
        // The config is a file like the others, under its fixed name.
        assert_eq!(repo.load::<Config>(&ConfigName).unwrap(), *repo.config());
        repo.remove::<IndexFile>(&id).unwrap();
        assert!(repo.list::<IndexFile>().unwrap().is_empty());
    }

    #[test]
    fn a_file_not_matching_its_name_is_damaged() {
        let (_d, repo) = temp_repo();
        let id = repo.save(&IndexFile::default()).unwrap();
        let bytes = repo.backend().read(FileKind::Index, &id.0).unwrap();
        let other = IndexId(Id([9; 32]));
        repo.backend().write(FileKind::Index, &other.0, &bytes).unwrap();
        let e = repo.load::<IndexFile>(&other).unwrap_err();
        assert!(matches!(&e, Error::Corrupt { object, .. } if object == "index 09090909"), "{e}");
        // A file of another kind under a right name: its magic does not match.
        let lock_bytes =
            repo.master.seal_object(FileKind::Lock, &format::encode(&IndexFile::default()).unwrap()).unwrap();
        let named = IndexId::of_stored(&lock_bytes);
        repo.backend().write(FileKind::Index, &named.0, &lock_bytes).unwrap();
        assert!(matches!(repo.load::<IndexFile>(&named), Err(Error::Corrupt { .. })));
    }
}
