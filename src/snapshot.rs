//! Snapshots: the root of one backup (repo-format.md, "Snapshot plaintext"), and how users
//! name them (`latest`, an id, a unique id prefix) and filter them (host, tag, path).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::tree::Timestamp;

/// Figures of one backup run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// When the backup started.
    pub backup_start: Timestamp,
    /// When it ended.
    pub backup_end: Timestamp,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files whose content or metadata changed since the parent.
    pub files_changed: u64,
    /// Files unchanged since the parent.
    pub files_unchanged: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories changed since the parent.
    pub dirs_changed: u64,
    /// Directories unchanged since the parent.
    pub dirs_unchanged: u64,
    /// Data blobs added to the repository.
    pub data_blobs: u64,
    /// Tree blobs added to the repository.
    pub tree_blobs: u64,
    /// Plaintext bytes of the blobs added.
    pub data_added: u64,
    /// Stored bytes (compressed, encrypted) of the blobs added.
    pub data_added_packed: u64,
    /// Files read or reused.
    pub total_files_processed: u64,
    /// Bytes of file content processed.
    pub total_bytes_processed: u64,
    /// Sources that could not be read (each reported on stderr).
    pub errors: u64,
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup was taken.
    pub time: Timestamp,
    /// The local time zone's offset east of UTC at that moment, seconds.
    pub tz_offset: i32,
    /// Host name.
    pub hostname: String,
    /// User who ran the backup.
    pub username: String,
    /// That user's uid.
    pub uid: u32,
    /// That user's gid.
    pub gid: u32,
    /// Absolute paths backed up.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Exclude patterns used.
    pub excludes: Vec<String>,
    /// Root tree blob.
    pub tree: BlobId,
    /// The snapshot this one was based on.
    pub parent: Option<SnapshotId>,
    /// `cairn x.y.z` that wrote it.
    pub program_version: String,
    /// Figures of the run.
    pub summary: Summary,
}

impl Snapshot {
    /// The snapshot time in its recorded local time zone.
    pub fn local_time(&self) -> chrono::DateTime<chrono::FixedOffset> {
        use chrono::Offset;
        let off = chrono::FixedOffset::east_opt(self.tz_offset).unwrap_or_else(|| chrono::Utc.fix());
        self.time.to_utc().with_timezone(&off)
    }
}

/// Longest host name a new snapshot may record, in bytes (a DNS name is at most 253).
pub const MAX_HOST_BYTES: usize = 255;
/// Longest single tag a new snapshot may carry, in bytes.
pub const MAX_TAG_BYTES: usize = 255;
/// Most bytes all the tags of a new snapshot may take together (4 KiB).
pub const MAX_TAGS_TOTAL_BYTES: usize = 4096;

/// Check the host name and tags a new snapshot is to record: the host at most
/// [`MAX_HOST_BYTES`], each tag at most [`MAX_TAG_BYTES`] and all tags together at most
/// [`MAX_TAGS_TOTAL_BYTES`], none containing a control character (a newline would break every
/// table that lists the snapshot). Snapshots already stored are never checked: readers cope
/// with any length.
/// Errors: [`Error::InvalidInput`] naming the value (shortened) and the limit.
pub fn validate_labels(host: &str, tags: &[String]) -> Result<()> {
    let shown = |s: &str| {
        let head: String = s.chars().take(40).collect();
        if head.len() < s.len() {
            format!("{head:?}...")
        } else {
            format!("{head:?}")
        }
    };
    if host.len() > MAX_HOST_BYTES {
        return Err(Error::InvalidInput(format!(
            "host name {} is {} bytes long; at most {MAX_HOST_BYTES} are allowed",
            shown(host),
            host.len()
        )));
    }
    if host.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!("host name {} contains a control character", shown(host))));
    }
    for t in tags {
        if t.len() > MAX_TAG_BYTES {
            return Err(Error::InvalidInput(format!(
                "tag {} is {} bytes long; at most {MAX_TAG_BYTES} are allowed",
                shown(t),
                t.len()
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!("tag {} contains a control character", shown(t))));
        }
    }
    let total: usize = tags.iter().map(String::len).sum();
    if total > MAX_TAGS_TOTAL_BYTES {
        return Err(Error::InvalidInput(format!(
            "the tags take {total} bytes together; at most {MAX_TAGS_TOTAL_BYTES} are allowed"
        )));
    }
    Ok(())
}

/// Which snapshots a command considers: all filters that are set must match.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Host names; any of them.
    pub hosts: Vec<String>,
    /// Tags; a snapshot must carry all of the tags in one entry (`a,b` = a and b); any entry.
    pub tags: Vec<String>,
    /// Paths; the snapshot's path list must contain all of them.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// True when `s` passes every filter that is set.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let tag_ok = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|group| group.split(',').filter(|t| !t.is_empty()).all(|t| s.tags.iter().any(|x| x == t)));
        let path_ok = self.paths.iter().all(|p| {
            let p = p.trim_end_matches('/');
            let p = if p.is_empty() { "/" } else { p };
            s.paths.iter().any(|x| x == p)
        });
        host_ok && tag_ok && path_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, tags: &[&str], paths: &[&str]) -> Snapshot {
        Snapshot {
            time: Timestamp::default(),
            tz_offset: 3600,
            hostname: host.into(),
            username: "root".into(),
            uid: 0,
            gid: 0,
            paths: paths.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            excludes: vec![],
            tree: BlobId::default(),
            parent: None,
            program_version: "cairn test".into(),
            summary: Summary::default(),
        }
    }

    #[test]
    fn filters() {
        let s = snap("mail1", &["nightly", "pg"], &["/etc", "/var/vmail"]);
        assert!(SnapshotFilter::default().matches(&s));
        assert!(SnapshotFilter { hosts: vec!["mail2".into(), "mail1".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { hosts: vec!["mail2".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { tags: vec!["nightly,pg".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { tags: vec!["nightly,x".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { tags: vec!["nightly,x".into(), "pg".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { paths: vec!["/var/vmail/".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { paths: vec!["/var".into()], ..Default::default() }.matches(&s));
        assert_eq!(s.local_time().offset().local_minus_utc(), 3600);
    }
}
