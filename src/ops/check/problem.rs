//! What `check` finds: each [`Problem`] (damage, or a hint), the snapshot entries the damage
//! affects ([`Affected`]), and the [`CheckReport`] holding them, with the JSON shapes
//! `check --json` prints.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::blob::BlobType;
use crate::id::{BlobId, Id, PackId, SnapshotId};
use crate::tree::Timestamp;

/// One problem found. All but [`Problem::PackUnindexed`] are errors.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// An index file that cannot be read, authenticated or decoded; its packs are unknown.
    IndexDamaged {
        /// Its file name (64 hex characters).
        index: String,
        /// Why.
        error: String,
    },
    /// A pack named by an index is not in the backend.
    PackMissing {
        /// The pack.
        pack: PackId,
        /// The blobs the index places in it.
        blobs: Vec<BlobId>,
    },
    /// A pack's size in the backend differs from the indexed size.
    PackSizeMismatch {
        /// The pack.
        pack: PackId,
        /// Size the index records, bytes.
        indexed: u64,
        /// Size in the backend, bytes.
        actual: u64,
    },
    /// A pack in the backend that no index names (a hint: the next backup indexes it).
    PackUnindexed {
        /// Its file name.
        pack: String,
        /// Its size, bytes.
        size: u64,
    },
    /// A pack whose header (or salt, or whole content) cannot be read, authenticated or
    /// decoded; every blob the index places in it is counted as damaged.
    PackDamaged {
        /// The pack.
        pack: PackId,
        /// Why.
        error: String,
        /// The blobs the index places in it.
        blobs: Vec<BlobId>,
    },
    /// A pack header that disagrees with an index file about the pack's blobs or salt.
    PackIndexMismatch {
        /// The pack.
        pack: PackId,
        /// The index file (name) that disagrees.
        index: String,
        /// What differs.
        detail: String,
        /// Indexed blobs whose indexed location is not what the header says.
        blobs: Vec<BlobId>,
    },
    /// A downloaded pack whose bytes do not hash to its id.
    PackHashMismatch {
        /// The pack (its name).
        pack: PackId,
        /// BLAKE3 of the bytes read.
        actual: Id,
    },
    /// A blob in a downloaded pack that fails authentication, decompression or its id check.
    BlobDamaged {
        /// The pack.
        pack: PackId,
        /// The blob.
        blob: BlobId,
        /// Its type.
        blob_type: BlobType,
        /// Why.
        error: String,
    },
    /// A snapshot file that cannot be read, authenticated or decoded.
    SnapshotDamaged {
        /// Its file name.
        snapshot: String,
        /// Why.
        error: String,
    },
    /// A tree referenced by a snapshot or a directory that cannot be loaded or decoded
    /// (a tree missing from the index is [`Problem::BlobNotIndexed`]).
    TreeDamaged {
        /// The tree blob.
        tree: BlobId,
        /// Why.
        error: String,
    },
    /// A blob referenced by a tree (or a snapshot's root tree) that no index lists.
    BlobNotIndexed {
        /// The blob.
        blob: BlobId,
        /// The type the reference needs.
        blob_type: BlobType,
        /// The tree that references it (`None`: a snapshot's root).
        tree: Option<BlobId>,
    },
    /// A node that cannot be right: a directory without a subtree.
    NodeInvalid {
        /// The tree holding the node.
        tree: BlobId,
        /// The node's name (lossy UTF-8).
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl Problem {
    /// False only for hints ([`Problem::PackUnindexed`]).
    pub fn is_error(&self) -> bool {
        !matches!(self, Problem::PackUnindexed { .. })
    }

    /// A short machine name of the kind (`pack_missing`...), used in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::IndexDamaged { .. } => "index_damaged",
            Problem::PackMissing { .. } => "pack_missing",
            Problem::PackSizeMismatch { .. } => "pack_size_mismatch",
            Problem::PackUnindexed { .. } => "pack_unindexed",
            Problem::PackDamaged { .. } => "pack_damaged",
            Problem::PackIndexMismatch { .. } => "pack_index_mismatch",
            Problem::PackHashMismatch { .. } => "pack_hash_mismatch",
            Problem::BlobDamaged { .. } => "blob_damaged",
            Problem::SnapshotDamaged { .. } => "snapshot_damaged",
            Problem::TreeDamaged { .. } => "tree_damaged",
            Problem::BlobNotIndexed { .. } => "blob_not_indexed",
            Problem::NodeInvalid { .. } => "node_invalid",
        }
    }

    /// The pack concerned, if any.
    pub fn pack(&self) -> Option<String> {
        match self {
            Problem::PackMissing { pack, .. }
            | Problem::PackSizeMismatch { pack, .. }
            | Problem::PackDamaged { pack, .. }
            | Problem::PackIndexMismatch { pack, .. }
            | Problem::PackHashMismatch { pack, .. }
            | Problem::BlobDamaged { pack, .. } => Some(pack.to_hex()),
            Problem::PackUnindexed { pack, .. } => Some(pack.clone()),
            _ => None,
        }
    }

    /// The blobs this problem makes unreadable (before discounting intact copies elsewhere).
    pub fn damaged_blobs(&self) -> Vec<BlobId> {
        match self {
            Problem::PackMissing { blobs, .. }
            | Problem::PackDamaged { blobs, .. }
            | Problem::PackIndexMismatch { blobs, .. } => blobs.clone(),
            Problem::BlobDamaged { blob, .. } | Problem::BlobNotIndexed { blob, .. } => vec![*blob],
            Problem::TreeDamaged { tree, .. } => vec![*tree],
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::IndexDamaged { index, error } => write!(f, "index file {index} is damaged: {error}"),
            Problem::PackMissing { pack, blobs } => {
                write!(f, "pack {pack} is missing: the index places {} blob(s) in it", blobs.len())
            }
            Problem::PackSizeMismatch { pack, indexed, actual } => {
                write!(f, "pack {pack} has {actual} bytes, the index says {indexed}")
            }
            Problem::PackUnindexed { pack, size } => {
                write!(
                    f,
                    "pack {pack} ({size} bytes) is not referenced in any index (a hint: the next backup indexes it)"
                )
            }
            Problem::PackDamaged { pack, error, blobs } if blobs.is_empty() => {
                write!(f, "pack {pack} is damaged: {error}")
            }
            Problem::PackDamaged { pack, error, blobs } => {
                write!(f, "pack {pack} is damaged ({} indexed blob(s) in it): {error}", blobs.len())
            }
            Problem::PackIndexMismatch { pack, index, detail, .. } => {
                write!(f, "pack {pack} does not match index file {index}: {detail}")
            }
            Problem::PackHashMismatch { pack, actual } => {
                write!(f, "pack {pack} is damaged: its content hashes to {actual}")
            }
            Problem::BlobDamaged { pack, blob, blob_type, error } => {
                write!(f, "pack {pack}: {} blob {blob} is damaged: {error}", type_name(*blob_type))
            }
            Problem::SnapshotDamaged { snapshot, error } => write!(f, "snapshot {snapshot} is damaged: {error}"),
            Problem::TreeDamaged { tree, error } => write!(f, "tree {tree} cannot be loaded: {error}"),
            Problem::BlobNotIndexed { blob, blob_type, tree } => {
                let by = match tree {
                    Some(t) => format!("tree {t}"),
                    None => "a snapshot".to_string(),
                };
                write!(f, "{} blob {blob} (referenced by {by}) is not in any index", type_name(*blob_type))
            }
            Problem::NodeInvalid { tree, name, detail } => write!(f, "tree {tree}: entry {name:?} {detail}"),
        }
    }
}

fn type_name(t: BlobType) -> &'static str {
    match t {
        BlobType::Data => "data",
        BlobType::Tree => "tree",
    }
}

/// A file or directory inside a snapshot whose content is damaged or missing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its time.
    pub time: Timestamp,
    /// Absolute path inside the snapshot (`/home/user/file`); a directory's path when its
    /// tree is damaged (everything below it is lost).
    pub path: String,
    /// The damaged or missing blobs the entry references.
    pub blobs: Vec<BlobId>,
}

/// The outcome of [`super::check`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Every problem found, errors and hints, in the order found.
    pub problems: Vec<Problem>,
    /// Snapshot entries that reference damaged or missing blobs (empty when none is damaged),
    /// sorted by snapshot time, snapshot id and path.
    pub affected: Vec<Affected>,
    /// Index files listed.
    pub index_files: usize,
    /// Distinct packs named by the index files.
    pub packs: usize,
    /// Distinct blobs in the index.
    pub blobs: usize,
    /// Snapshot files listed.
    pub snapshots: usize,
    /// Distinct trees loaded from snapshots.
    pub trees: usize,
    /// Packs selected for the read-data phase.
    pub packs_selected: usize,
    /// Packs downloaded in full by the read-data phase.
    pub packs_read: usize,
    /// Bytes downloaded by the read-data phase.
    pub bytes_read: u64,
}

impl CheckReport {
    /// Number of problems that are errors (not hints).
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// True when no error was found (hints allowed).
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
}

/// `check --json`'s problem object: `kind`, `error` (false for a hint), `message`, `pack`
/// (null when none), the `blobs` it damages (hex), and where there is one the `index` file,
/// `snapshot` file or `tree` concerned.
impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let extra = match self {
            Problem::IndexDamaged { index, .. } | Problem::PackIndexMismatch { index, .. } => {
                Some(("index", index.clone()))
            }
            Problem::SnapshotDamaged { snapshot, .. } => Some(("snapshot", snapshot.clone())),
            Problem::TreeDamaged { tree, .. } => Some(("tree", tree.to_hex())),
            Problem::BlobNotIndexed { tree: Some(tree), .. } | Problem::NodeInvalid { tree, .. } => {
                Some(("tree", tree.to_hex()))
            }
            _ => None,
        };
        let blobs: Vec<String> = self.damaged_blobs().iter().map(|b| b.to_hex()).collect();
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        m.serialize_entry("error", &self.is_error())?;
        m.serialize_entry("message", &self.to_string())?;
        m.serialize_entry("pack", &self.pack())?;
        m.serialize_entry("blobs", &blobs)?;
        if let Some((k, v)) = extra {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// `{snapshot, time, path, blobs}`: ids in hex, the time in RFC 3339 UTC.
impl Serialize for Affected {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let blobs: Vec<String> = self.blobs.iter().map(|b| b.to_hex()).collect();
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("snapshot", &self.snapshot.to_hex())?;
        m.serialize_entry("time", &self.time.to_rfc3339(crate::tree::Zone::Utc))?;
        m.serialize_entry("path", &self.path)?;
        m.serialize_entry("blobs", &blobs)?;
        m.end()
    }
}

/// `check --json`'s summary: `message_type` "summary", the counts of errors and hints, the
/// problems and affected entries, and the figures of the report.
impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let errors = self.errors();
        let mut m = ser.serialize_map(Some(13))?;
        m.serialize_entry("message_type", "summary")?;
        m.serialize_entry("errors", &errors)?;
        m.serialize_entry("hints", &(self.problems.len() - errors))?;
        m.serialize_entry("problems", &self.problems)?;
        m.serialize_entry("affected", &self.affected)?;
        m.serialize_entry("index_files", &self.index_files)?;
        m.serialize_entry("packs", &self.packs)?;
        m.serialize_entry("blobs", &self.blobs)?;
        m.serialize_entry("snapshots", &self.snapshots)?;
        m.serialize_entry("trees", &self.trees)?;
        m.serialize_entry("packs_selected", &self.packs_selected)?;
        m.serialize_entry("packs_read", &self.packs_read)?;
        m.serialize_entry("bytes_read", &self.bytes_read)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let tree = BlobId(Id::of_bytes(b"t"));
        let report = CheckReport {
            problems: vec![
                Problem::TreeDamaged { tree, error: "authentication failed".into() },
                Problem::PackUnindexed { pack: "ab".repeat(32), size: 10 },
            ],
            affected: vec![Affected {
                snapshot: SnapshotId(Id::of_bytes(b"s")),
                time: Timestamp { secs: 0, nanos: 0 },
                path: "/etc".into(),
                blobs: vec![tree],
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["message_type"], "summary");
        assert_eq!((v["errors"].as_u64(), v["hints"].as_u64()), (Some(1), Some(1)));
        let p = &v["problems"][0];
        assert_eq!(p["kind"], "tree_damaged");
        assert_eq!(p["tree"], tree.to_hex());
        assert_eq!(p["pack"], serde_json::Value::Null);
        assert_eq!(p["blobs"][0], tree.to_hex());
        assert_eq!(v["problems"][1]["error"], false);
        assert_eq!(v["affected"][0]["time"], "1970-01-01T00:00:00Z");
    }
}
