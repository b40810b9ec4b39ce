//! Trees and nodes: one tree blob per directory (repo-format.md, "Tree blob plaintext"), and
//! everything that looks inside a snapshot's trees.
//!
//! - this module: [`Tree`] (a directory, its encoding), [`Timestamp`];
//! - [`node`]: [`Node`] (one directory entry), [`NodeKind`], [`Xattr`], and how kinds and
//!   modes are shown (`ls -l`, restic's type names, POSIX `st_mode`);
//! - [`path`]: snapshot paths and resolving one to its node ([`resolve`], [`Located`]);
//! - [`stream`]: the one iterative tree streamer ([`TreeStream`], and [`PairStream`] walking two
//!   trees in step), used by ls, find, diff, dump, restore and check's search for the paths
//!   damage affects, and [`PARALLEL_DEPTH`];
//! - [`reachable`]: the walk over tree *ids* (each tree once however many snapshots share it,
//!   loaded in parallel) that check and prune use to visit a whole repository;
//! - [`fetch`]: the blob fetcher with read-ahead shared by dump and mount.

use serde::{Deserialize, Serialize};

pub mod fetch;
pub mod list;
pub mod node;
pub mod path;
pub mod reachable;
pub mod report;
pub mod stream;

pub use node::{kind_name, mode_string, st_mode, Node, NodeKind, Xattr};
pub use path::{join_path, resolve, split_path, Located};
pub use stream::{walk, Pair, PairStream, Step, TreeSource, TreeStream, Visit, PARALLEL_DEPTH};

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let n = chrono::Utc::now();
        Timestamp { secs: n.timestamp(), nanos: n.timestamp_subsec_nanos() }
    }

    /// RFC 3339 in `zone`, with as many fractional digits as needed (0, 3, 6 or 9:
    /// `2026-11-20T04:00:00.5+01:00` is `...T04:00:00.500+01:00`) and `Z` for a zero offset:
    /// the one format of every time the reports print (`snapshots --json` in the snapshot's
    /// zone, `ls --json` and `find --json` in this machine's, `check` in UTC).
    pub fn to_rfc3339(self, zone: Zone) -> String {
        let utc = self.to_utc();
        let t = match zone {
            Zone::Utc => utc.fixed_offset(),
            Zone::Offset(secs) => match chrono::FixedOffset::east_opt(secs) {
                Some(off) => utc.with_timezone(&off),
                None => utc.with_timezone(&chrono::Local).fixed_offset(),
            },
            Zone::Local => utc.with_timezone(&chrono::Local).fixed_offset(),
        };
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    /// As a chrono UTC time (the epoch for values out of range).
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.secs, self.nanos.min(999_999_999)).unwrap_or_default()
    }
}

/// The time zone [`Timestamp::to_rfc3339`] writes a time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// UTC (written with `Z`).
    Utc,
    /// This machine's time zone.
    Local,
    /// A fixed offset in seconds east of UTC (a snapshot's `tz_offset`); this machine's zone
    /// when it is out of range (more than a day either way).
    Offset(i32),
}

/// The first two bytes of a version 2 tree blob: `0xff` (a byte that never starts a version 1
/// tree, whose first bytes are a varint) and the version, 2.
pub const TREE_V2_PREFIX: [u8; 2] = [0xff, 0x02];

/// A directory: its entries sorted by name bytes. Stored with [`Tree::encode`] and read with
/// [`Tree::decode`] (not serde: the encoding depends on whether any entry has xattrs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries, sorted by `name`, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort entries by name (the canonical order that makes equal directories equal blobs).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The plaintext of the tree blob (repo-format.md, "Tree blobs"): the version 1 encoding
    /// (bincode `Vec<Node>`) when no entry has extended attributes, so such trees keep the
    /// bytes and ids older versions gave them; else [`TREE_V2_PREFIX`] then bincode
    /// `Vec<(Node, Vec<Xattr>)>`.
    /// Errors: [`crate::error::Error::Internal`] for a tree over the 4 GiB encoding limit.
    pub fn encode(&self) -> crate::error::Result<Vec<u8>> {
        if self.nodes.iter().all(|n| n.xattrs.is_empty()) {
            return crate::format::encode(&self.nodes);
        }
        let nodes: Vec<(&Node, &Vec<Xattr>)> = self.nodes.iter().map(|n| (n, &n.xattrs)).collect();
        let mut out = TREE_V2_PREFIX.to_vec();
        out.extend(crate::format::encode(&nodes)?);
        Ok(out)
    }

    /// Decode a tree blob's plaintext, either version (see [`Tree::encode`]); `what` names
    /// the blob in errors. Checks the encoding and each node's attribute list
    /// ([`Xattr::valid_list`]); entry names are checked by the caller
    /// ([`crate::repository::Repository::load_tree`]).
    /// Errors: [`crate::error::Error::Corrupt`] for bytes that do not decode completely, an
    /// unknown tree version, an invalid attribute list, or a version 2 tree without any
    /// attribute (not the canonical encoding, which keeps equal directories equal blobs).
    pub fn decode(bytes: &[u8], what: &str) -> crate::error::Result<Tree> {
        let nodes = match bytes {
            [0xff, 0x02, rest @ ..] => {
                let pairs: Vec<(Node, Vec<Xattr>)> = crate::format::decode(rest, what)?;
                let mut nodes = Vec::with_capacity(pairs.len());
                for (mut node, xattrs) in pairs {
                    if !Xattr::valid_list(&xattrs) {
                        let msg = format!("entry {:?} has invalid extended attributes (a name empty, too long, with a NUL byte, unsorted or repeated, or a value over 64 KiB)", node.name_lossy());
                        return Err(crate::error::Error::corrupt(what, msg));
                    }
                    node.xattrs = xattrs;
                    nodes.push(node);
                }
                if nodes.iter().all(|n| n.xattrs.is_empty()) {
                    return Err(crate::error::Error::corrupt(
                        what,
                        "a version 2 tree in which no entry has extended attributes (it must be written as version 1)",
                    ));
                }
                nodes
            }
            [0xff, version, ..] => {
                return Err(crate::error::Error::corrupt(what, format!("unknown tree version {version}")))
            }
            _ => crate::format::decode(bytes, what)?,
        };
        Ok(Tree { nodes })
    }

    /// A name in a stored tree must be a single, non-empty path component.
    pub fn valid_name(name: &[u8]) -> bool {
        !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_the_digits_needed_and_z_for_utc() {
        let t = Timestamp { secs: 1_700_000_000, nanos: 500_000_000 };
        assert_eq!(t.to_rfc3339(Zone::Utc), "2023-11-14T22:13:20.500Z");
        assert_eq!(t.to_rfc3339(Zone::Offset(3600)), "2023-11-14T23:13:20.500+01:00");
        assert_eq!(t.to_rfc3339(Zone::Offset(0)), "2023-11-14T22:13:20.500Z");
        let whole = Timestamp { secs: 1_700_000_000, nanos: 0 };
        assert_eq!(whole.to_rfc3339(Zone::Offset(-7200)), "2023-11-14T20:13:20-02:00");
        // Out of range: this machine's zone, the same instant.
        let far = whole.to_rfc3339(Zone::Offset(90_000));
        assert_eq!(far, whole.to_rfc3339(Zone::Local));
        assert_eq!(chrono::DateTime::parse_from_rfc3339(&far).map(|d| d.timestamp()).ok(), Some(1_700_000_000));
    }
}
