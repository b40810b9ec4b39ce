//! Drill records as a repository holds them (`drills/<id>`, repo-format.md, "Drill records"):
//! written under an append lock, listed with damaged files named rather than fatal.

use super::files::{FileName, RepoFile};
use super::Repository;
use crate::backend::{ErrorKind, FileKind};
use crate::error::{Error, Result};
use crate::id::{DrillId, Id};
use crate::lock::AppendLock;
use crate::ops::drill::record::DrillRecord;

impl FileName for DrillId {
    fn of_stored(stored: &[u8]) -> Self {
        DrillId(Id::of_bytes(stored))
    }
    fn from_id(id: Id) -> Self {
        DrillId(id)
    }
    fn id(&self) -> Id {
        self.0
    }
    fn short(&self) -> String {
        DrillId::short(self)
    }
}

impl RepoFile for DrillRecord {
    const KIND: FileKind = FileKind::Drill;
    type Id = DrillId;
    fn encode_plain(&self) -> Result<Vec<u8>> {
        self.encode()
    }
    fn decode_plain(plain: &[u8], what: &str) -> Result<Self> {
        DrillRecord::decode(plain, what)
    }
}

/// Drill records with their ids, oldest first, and the files that could not be decoded
/// (id, what failed).
pub type DrillRecords = (Vec<(DrillId, DrillRecord)>, Vec<(DrillId, String)>);

impl Repository {
    /// Store a drill record under `lock` (checked first); returns its id. The `drills/`
    /// directory is created by the first record (a local backend creates it on write).
    /// Errors: [`Error::Locked`] when the lock was lost; as [`Repository::save`].
    pub fn write_drill_record(&self, lock: &AppendLock, record: &DrillRecord) -> Result<DrillId> {
        lock.check()?;
        self.save(record)
    }

    /// Every drill record, oldest first (by drill time, then id), and the record files that
    /// are damaged (wrong hash, failed authentication, undecodable, an unknown version). A
    /// repository without a `drills/` directory (no drill yet, or written by a cairn without
    /// drills) has none. A file removed between the listing and the read is left out.
    /// Errors: a failed listing other than a missing directory; a record that cannot be read
    /// from the storage.
    pub fn drill_records(&self) -> Result<DrillRecords> {
        let (mut records, mut damaged) = match self.load_all::<DrillRecord>() {
            Ok(x) => x,
            Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => (Vec::new(), Vec::new()),
            Err(e) => return Err(e),
        };
        records.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        damaged.sort_by_key(|d| d.0);
        Ok((records, damaged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockOptions;
    use crate::ops::drill::record::tests::sample;
    use crate::repository::tests::temp_repo;

    #[test]
    fn written_records_list_oldest_first_and_damage_is_named() {
        let (_d, repo) = temp_repo();
        assert!(repo.drill_records().unwrap().0.is_empty(), "no drills/ directory: no records");
        let lock = AppendLock::acquire(&repo, "drill", &LockOptions::default()).unwrap();
        let mut late = sample();
        late.time.secs += 100;
        let b = repo.write_drill_record(&lock, &late).unwrap();
        let a = repo.write_drill_record(&lock, &sample()).unwrap();
        let (records, damaged) = repo.drill_records().unwrap();
        assert!(damaged.is_empty());
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(records[0].1, sample());
        // A snapshot's bytes under a drill record's name: its magic does not match.
        let other = DrillId(Id([3; 32]));
        let bytes = repo.backend().read(FileKind::Drill, &a.0).unwrap();
        repo.backend().write(FileKind::Drill, &other.0, &bytes).unwrap();
        let (records, damaged) = repo.drill_records().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(damaged.len(), 1);
        assert!(damaged[0].1.contains("drill record 03030303"), "{}", damaged[0].1);
    }
}
