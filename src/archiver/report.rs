//! What `backup --json` prints: [`BackupSummary`], the snapshot's summary with the snapshot id
//! and whether it was a dry run.

use serde::Serialize;

use super::BackupResult;
use crate::id::SnapshotId;
use crate::snapshot::Summary;
use crate::tree::Timestamp;

/// The JSON summary of a backup (restic's `message_type: "summary"` line). Fields are declared
/// in the order of their names: the order in which the CLI has always printed them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupSummary {
    /// When the backup ended (RFC 3339 in the snapshot's time zone).
    pub backup_end: String,
    /// When the backup started (RFC 3339 in the snapshot's time zone).
    pub backup_start: String,
    /// Plaintext bytes of the blobs added.
    pub data_added: u64,
    /// Stored bytes of the blobs added.
    pub data_added_packed: u64,
    /// Data blobs added.
    pub data_blobs: u64,
    /// Directories changed since the parent.
    pub dirs_changed: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories unchanged since the parent.
    pub dirs_unchanged: u64,
    /// True when nothing was written.
    pub dry_run: bool,
    /// `backup_end - backup_start`, seconds (0 when the clock went back).
    pub duration_seconds: f64,
    /// Sources that could not be read.
    pub errors: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files unchanged since the parent.
    pub files_unchanged: u64,
    /// Always `"summary"`.
    pub message_type: &'static str,
    /// The snapshot id (hex), `None` on a dry run.
    pub snapshot_id: Option<String>,
    /// Bytes of file content processed.
    pub total_bytes_processed: u64,
    /// Files read or reused.
    pub total_files_processed: u64,
    /// Tree blobs added.
    pub tree_blobs: u64,
}

impl BackupSummary {
    /// The summary of backup `r`.
    pub fn new(r: &BackupResult) -> Self {
        Self::from_parts(&r.snapshot.summary, r.snapshot.tz_offset, r.id.as_ref())
    }

    /// The summary `s` of a snapshot taken in the zone `tz` seconds east of UTC, written as
    /// `id` (`None`: a dry run).
    pub fn from_parts(s: &Summary, tz: i32, id: Option<&SnapshotId>) -> Self {
        let dur = s.backup_end.secs.saturating_sub(s.backup_start.secs) as f64
            + (s.backup_end.nanos as f64 - s.backup_start.nanos as f64) / 1e9;
        BackupSummary {
            backup_end: rfc3339(s.backup_end, tz),
            backup_start: rfc3339(s.backup_start, tz),
            data_added: s.data_added,
            data_added_packed: s.data_added_packed,
            data_blobs: s.data_blobs,
            dirs_changed: s.dirs_changed,
            dirs_new: s.dirs_new,
            dirs_unchanged: s.dirs_unchanged,
            dry_run: id.is_none(),
            duration_seconds: dur.max(0.0),
            errors: s.errors,
            files_changed: s.files_changed,
            files_new: s.files_new,
            files_unchanged: s.files_unchanged,
            message_type: "summary",
            snapshot_id: id.map(|i| i.to_hex()),
            total_bytes_processed: s.total_bytes_processed,
            total_files_processed: s.total_files_processed,
            tree_blobs: s.tree_blobs,
        }
    }
}

/// `t` in RFC 3339 in the zone `tz` seconds east of UTC (the local zone when `tz` is out of
/// range), with as many fraction digits as needed.
fn rfc3339(t: Timestamp, tz: i32) -> String {
    let utc = t.to_utc();
    match chrono::FixedOffset::east_opt(tz) {
        Some(off) => utc.with_timezone(&off).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => utc.with_timezone(&chrono::Local).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_its_keys_in_name_order() {
        let summary = Summary {
            backup_start: Timestamp { secs: 0, nanos: 0 },
            backup_end: Timestamp { secs: 2, nanos: 500_000_000 },
            files_new: 3,
            ..Summary::default()
        };
        let json = serde_json::to_string(&BackupSummary::from_parts(&summary, 3600, None)).unwrap();
        assert!(
            json.starts_with(
                r#"{"backup_end":"1970-01-01T01:00:02.500+01:00","backup_start":"1970-01-01T01:00:00+01:00","#
            ),
            "{json}"
        );
        assert!(json.contains(r#""dry_run":true,"duration_seconds":2.5,"#), "{json}");
        assert!(json.contains(r#""message_type":"summary","snapshot_id":null,"#), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v.to_string(), json, "not in the order serde_json::Value prints");
        assert_eq!(v["files_new"], 3);
    }
}
