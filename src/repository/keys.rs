//! Key files: one per password, each wrapping the master key (repo-format.md, "Key files").
//! Opening tries them cheapest first (`key_candidates`); adding, listing, removing and
//! changing a password go through [`Repository`], under the lock each needs.

use serde::Serialize;

use super::Repository;
use crate::backend::{Backend, FileKind};
use crate::crypto::keyfile::{self, KdfParams, KeyHeader, Unwrapped};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::{Id, KeyId};
use crate::lock::{AppendLock, ExclusiveLock};

/// Most key files whose key derivation runs when a repository is opened (restic's limit): a
/// repository with many key files, or planted ones with costly parameters, cannot stall every
/// command for long. Key files are tried cheapest key derivation first, newest first among
/// equals (see `key_candidates`).
pub const MAX_KEYS_TRIED: usize = 20;

/// Largest key file read when opening a repository, in bytes (a real one is about 200 bytes):
/// a larger file is reported as damaged without being read.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A key file worth trying: its id and bytes.
pub(super) struct KeyCandidate {
    /// Its id (its name).
    pub(super) id: KeyId,
    /// Its complete bytes.
    pub(super) data: Vec<u8>,
}

/// The key files worth trying, in the order they are tried: ascending cost (memory in KiB ×
/// passes) of their key derivation, then newest first; and the key files skipped as damaged
/// (too large, content not matching the name or a name that is not an id, undecodable header,
/// parameters out of range), each described. No key derivation runs here.
/// Errors: a failed listing or read.
pub(super) fn key_candidates(backend: &dyn Backend) -> Result<(Vec<KeyCandidate>, Vec<String>)> {
    let mut damaged = Vec::new();
    let mut found = Vec::new();
    let (ids, foreign) = FileKind::Key.split_listing(backend.list_names(FileKind::Key)?);
    for (name, _) in foreign {
        damaged.push(format!("key file {name}: content does not match its name"));
    }
    for (id, size) in ids {
        let id = KeyId(id);
        let what = format!("key file {id}");
        if size > MAX_KEY_FILE_BYTES {
            damaged.push(format!("{what}: {size} bytes, larger than any key file ({MAX_KEY_FILE_BYTES} at most)"));
            continue;
        }
        let data = backend.read(FileKind::Key, &id.0)?;
        if Id::of_bytes(&data) != id.0 {
            damaged.push(format!("{what}: content does not match its name"));
            continue;
        }
        match keyfile::parse_header(&data, &what).and_then(|(h, _)| h.kdf.check(&what).map(|()| h)) {
            Ok(h) => found.push((id, data, h.kdf.cost(), h.created)),
            Err(e) => damaged.push(e.to_string()),
        }
    }
    found.sort_by(|a, b| a.2.cmp(&b.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
    Ok((found.into_iter().map(|(id, data, _, _)| KeyCandidate { id, data }).collect(), damaged))
}

/// Try `password` on the key files of `backend`, cheapest first, at most [`MAX_KEYS_TRIED`].
/// Returns the master key and the id of the key file that opened.
/// Errors: [`Error::WrongPassword`] when none opens; [`Error::Corrupt`] when every key file is
/// damaged and none was tried; a failed listing or read.
pub(super) fn unlock(backend: &dyn Backend, password: &[u8]) -> Result<(MasterKey, KeyId)> {
    let (candidates, mut damaged) = key_candidates(backend)?;
    let mut tried = 0;
    for KeyCandidate { id, data } in candidates.into_iter().take(MAX_KEYS_TRIED) {
        let what = format!("key file {id}");
        match keyfile::unwrap(&data, password, &what) {
            Ok(Unwrapped::Key(master)) => return Ok((master, id)),
            Ok(Unwrapped::WrongPassword) => tried += 1,
            Err(e) => damaged.push(e.to_string()),
        }
    }
    if tried == 0 && !damaged.is_empty() {
        return Err(Error::corrupt("every key file", damaged.join("; ")));
    }
    Err(Error::WrongPassword { tried })
}

/// One key file as `key list` reports it (JSON keys in the order the CLI has always printed
/// them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum KeyReport {
    /// A key file whose header reads.
    Readable {
        /// Creation time, RFC 3339 (UTC); absent for a time out of range.
        created: Option<String>,
        /// True for the key file this session opened.
        current: bool,
        /// The host recorded in it.
        #[serde(rename = "hostName")]
        host_name: String,
        /// Its id, 64 hex characters.
        id: String,
        /// The user recorded in it.
        #[serde(rename = "userName")]
        user_name: String,
    },
    /// A key file that cannot be read or decoded.
    Damaged {
        /// Always false (a damaged key file cannot have opened this session).
        current: bool,
        /// Why it cannot be read.
        error: String,
        /// Its id, 64 hex characters.
        id: String,
    },
}

impl Repository {
    /// The key file this session opened.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Add a key file wrapping this repository's master key with `password` (default KDF
    /// parameters; `username`/`hostname` recorded in its header). Returns its id.
    /// Errors: the lock's ([`AppendLock::check`]); the backend's.
    pub fn add_key(&self, lock: &AppendLock, password: &[u8], username: &str, hostname: &str) -> Result<KeyId> {
        lock.check()?;
        let bytes = keyfile::wrap(&self.master, password, KdfParams::default(), username, hostname)?;
        let id = KeyId(Id::of_bytes(&bytes));
        self.backend.write(FileKind::Key, &id.0, &bytes)?;
        Ok(id)
    }

    /// Every key file with its readable header (no password needed), sorted by creation time.
    /// A damaged key file is listed with the error instead of a header.
    pub fn list_keys(&self) -> Result<Vec<(KeyId, std::result::Result<KeyHeader, String>)>> {
        let mut keys = Vec::new();
        for (id, _) in self.backend.list(FileKind::Key)? {
            let id = KeyId(id);
            let what = format!("key file {}", id.short());
            let header = self.backend.read(FileKind::Key, &id.0).map_err(Error::from).and_then(|data| {
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

    /// [`Repository::list_keys`] as reports, the key in use marked.
    pub fn key_reports(&self) -> Result<Vec<KeyReport>> {
        Ok(self
            .list_keys()?
            .into_iter()
            .map(|(id, h)| match h {
                Ok(h) => KeyReport::Readable {
                    created: chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()),
                    current: id == self.key_id,
                    host_name: h.hostname,
                    id: id.to_hex(),
                    user_name: h.username,
                },
                Err(error) => KeyReport::Damaged { current: false, error, id: id.to_hex() },
            })
            .collect())
    }

    /// The key file named by a full id or a unique id prefix.
    /// Errors: [`Error::Usage`] for a name that is not hex, matches no key file or several.
    pub fn find_key(&self, spec: &str) -> Result<KeyId> {
        let spec = spec.to_ascii_lowercase();
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::usage(format!("{spec:?} is not a key id")));
        }
        let matches: Vec<KeyId> =
            self.list_keys()?.into_iter().map(|(id, _)| id).filter(|id| id.to_hex().starts_with(&spec)).collect();
        match matches.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::usage(format!("no key file matches {spec:?}"))),
            _ => Err(Error::usage(format!(
                "key id prefix {spec:?} matches {} keys; give more characters",
                matches.len()
            ))),
        }
    }

    /// Remove key file `id`. Refuses the key this session opened and the last readable key.
    /// Errors: [`Error::Refused`] for those; [`Error::Usage`] for an unknown id; the lock's
    /// ([`ExclusiveLock::check`]); the backend's.
    pub fn remove_key(&self, lock: &ExclusiveLock, id: &KeyId) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::refused(
                "refusing to remove the key this command was opened with; open with another key's password",
            ));
        }
        self.remove_key_unless_last(lock, id)
    }

    /// Change the password of the key in use: add a key file for `password`, check that it
    /// opens with it, then remove the key file this session opened (with
    /// [`Repository::remove_key`]'s other guards). A failure before the removal leaves both
    /// passwords valid. Returns the new key's id; this session then uses it.
    /// Errors: as [`Repository::add_key`] and [`Repository::remove_key`];
    /// [`Error::Internal`] when the new key file does not open with the new password.
    pub fn change_password(
        &mut self,
        lock: &ExclusiveLock,
        password: &[u8],
        username: &str,
        hostname: &str,
    ) -> Result<KeyId> {
        let new = self.add_key(&lock.append(), password, username, hostname)?;
        let data = self.backend.read(FileKind::Key, &new.0)?;
        let opens = match keyfile::unwrap(&data, password, "new key file")? {
            Unwrapped::Key(k) => k.to_bytes() == self.master.to_bytes(),
            Unwrapped::WrongPassword => false,
        };
        if !opens {
            return Err(Error::internal("the new key file does not open with the new password; the old key was kept"));
        }
        let old = std::mem::replace(&mut self.key_id, new);
        self.remove_key_unless_last(lock, &old)?;
        Ok(new)
    }

    /// Remove key file `id` when it exists and another readable key file remains.
    fn remove_key_unless_last(&self, lock: &ExclusiveLock, id: &KeyId) -> Result<()> {
        let keys = self.list_keys()?;
        if !keys.iter().any(|(k, _)| k == id) {
            return Err(Error::usage(format!("no key file {}", id.to_hex())));
        }
        if keys.iter().filter(|(k, h)| k != id && h.is_ok()).count() == 0 {
            return Err(Error::refused("refusing to remove the last key: the repository would be unreadable"));
        }
        lock.check()?;
        self.backend.remove(FileKind::Key, &id.0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockOptions;
    use crate::repository::tests::temp_repo;

    #[test]
    fn keys_are_added_listed_removed_with_their_guards() {
        let (_d, mut repo) = temp_repo();
        let first = repo.key_id();
        let lock = ExclusiveLock::acquire(&repo, "key", &LockOptions::default()).unwrap();
        // The key in use, and the last key, cannot go.
        assert!(matches!(repo.remove_key(&lock, &first), Err(Error::Refused(_))));
        assert!(matches!(repo.remove_key(&lock, &KeyId(Id([7; 32]))), Err(Error::Usage(_))));
        let second = repo.add_key(&lock.append(), b"second", "u", "h").unwrap();
        assert_eq!(repo.find_key(&second.to_hex()[..10]).unwrap(), second);
        assert!(matches!(repo.find_key("zz"), Err(Error::Usage(_))));
        let reports = repo.key_reports().unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports.iter().filter(|r| matches!(r, KeyReport::Readable { current: true, .. })).count(), 1);
        let json = serde_json::to_string(&reports[0]).unwrap();
        assert!(json.starts_with("{\"created\":") && json.contains("\"hostName\""), "{json}");
        // passwd: the key in use is replaced; the session goes on with the new one.
        let third = repo.change_password(&lock, b"third", "u", "h").unwrap();
        assert_eq!(repo.key_id(), third);
        let ids: Vec<KeyId> = repo.list_keys().unwrap().into_iter().map(|(k, _)| k).collect();
        assert!(!ids.contains(&first) && ids.contains(&second) && ids.contains(&third));
        repo.remove_key(&lock, &second).unwrap();
        assert!(matches!(repo.remove_key(&lock, &third), Err(Error::Refused(_))));
        drop(lock);
        let reopened = Repository::open(repo.backend().clone(), b"third").unwrap();
        assert_eq!(reopened.key_id(), third);
    }
}
