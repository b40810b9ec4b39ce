//! Snapshots as a repository holds them: listing with filters, damaged files named rather than
//! fatal, and resolving the names users give (`latest`, an id or a unique id prefix).

use super::Repository;
use crate::backend::FileKind;
use crate::context::{Ctx, Warning};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::lock::AppendLock;
use crate::snapshot::{Snapshot, SnapshotFilter};

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
        write!(f, "snapshot file snapshots/{} is damaged ({})", self.id.to_hex(), self.detail)
    }
}

impl Repository {
    /// Store a snapshot under `lock` (checked first: a writer whose lock was lost must not add
    /// a snapshot naming data a prune may have deleted); returns its id.
    /// Errors: [`Error::Locked`] when the lock was lost; as [`Repository::save`].
    pub fn write_snapshot(&self, lock: &AppendLock, s: &Snapshot) -> Result<SnapshotId> {
        lock.check()?;
        self.save(s)
    }

    /// Load one snapshot. Errors: as [`Repository::load`].
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.load(id)
    }

    /// All snapshots passing `filter`, oldest first. A damaged snapshot file is skipped with a
    /// [`Warning::SkippedDamagedSnapshot`] to `ctx` naming it (see
    /// [`Repository::snapshots_and_damaged`]): one damaged
    /// file does not hide the others. Commands that delete data by what snapshots reference
    /// (prune) must use [`Repository::snapshots_and_damaged`] and refuse instead.
    /// Errors: a failed listing; a snapshot file that cannot be read from the storage.
    pub fn snapshots(&self, ctx: &Ctx, filter: &SnapshotFilter) -> Result<SnapshotList> {
        let (v, damaged) = self.snapshots_and_damaged(filter)?;
        for d in &damaged {
            ctx.warn(&Warning::SkippedDamagedSnapshot(d));
        }
        Ok(v)
    }

    /// All snapshots passing `filter`, oldest first, and the snapshot files that are damaged
    /// (content not matching the name, failed authentication, undecodable), which no filter
    /// can be applied to. A file removed between the listing and the read is left out.
    /// Errors: a failed listing; a snapshot file that cannot be read from the storage.
    pub fn snapshots_and_damaged(&self, filter: &SnapshotFilter) -> Result<(SnapshotList, Vec<DamagedSnapshot>)> {
        let (all, damaged) = self.load_all::<Snapshot>()?;
        let mut v: SnapshotList = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
        let mut damaged: Vec<DamagedSnapshot> =
            damaged.into_iter().map(|(id, detail)| DamagedSnapshot { id, detail }).collect();
        v.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        damaged.sort_by_key(|d| d.id);
        Ok((v, damaged))
    }

    /// The snapshot named by a full id or a unique id prefix, without reading it (so that a
    /// damaged snapshot file can still be named, e.g. to remove it).
    /// Errors: [`Error::Usage`] for a name that is not hex; [`Error::SnapshotNotFound`],
    /// [`Error::AmbiguousSnapshot`]; a failed listing.
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId> {
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::usage(format!("{spec:?} is not a hex snapshot id")));
        }
        let matches: Vec<SnapshotId> = self
            .backend
            .list(FileKind::Snapshot)?
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .map(|(id, _)| SnapshotId(id))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            [id] => Ok(*id),
            _ => Err(Error::AmbiguousSnapshot { prefix: spec.to_string(), count: matches.len() }),
        }
    }

    /// Resolve a user's snapshot name: `latest` (the newest passing `filter`), a full id, or
    /// a unique id prefix. Damaged snapshot files skipped while looking for `latest` are
    /// warned about to `ctx` (as [`Repository::snapshots`]). Errors: [`Error::Usage`] for
    /// anything else; [`Error::SnapshotNotFound`], [`Error::AmbiguousSnapshot`].
    pub fn find_snapshot(&self, ctx: &Ctx, spec: &str, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self.snapshots(ctx, filter)?.pop().ok_or_else(|| Error::SnapshotNotFound("latest".into()));
        }
        let id = match self.resolve_snapshot_id(spec) {
            Err(Error::Usage(_)) => {
                return Err(Error::usage(format!("{spec:?} is neither `latest` nor a hex snapshot id")))
            }
            r => r?,
        };
        Ok((id, self.load_snapshot(&id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::tests::temp_repo;

    #[test]
    fn names_resolve_and_bad_names_are_usage_errors() {
        let (_d, repo) = temp_repo();
        assert!(matches!(repo.resolve_snapshot_id("xyz"), Err(Error::Usage(_))));
        assert!(matches!(
            repo.find_snapshot(&Ctx::default(), "nope", &SnapshotFilter::default()),
            Err(Error::Usage(_))
        ));
        assert!(matches!(repo.resolve_snapshot_id("ab"), Err(Error::SnapshotNotFound(_))));
        assert!(matches!(
            repo.find_snapshot(&Ctx::default(), "latest", &SnapshotFilter::default()),
            Err(Error::SnapshotNotFound(_))
        ));
    }
}
