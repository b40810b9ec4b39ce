//! What `backup --json` prints: [`BackupSummary`], the snapshot's summary with the snapshot id
//! and whether it was a dry run.

use serde::Serialize;

use super::BackupResult;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::snapshot::{ComponentStatus, Summary, SummaryInfo};

/// The JSON summary of a backup (restic's `message_type: "summary"` line): the snapshot's
/// summary ([`SummaryInfo`]) with the snapshot id and whether it was a dry run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupSummary {
    /// True when nothing was written.
    pub dry_run: bool,
    /// Always `"summary"`.
    pub message_type: &'static str,
    /// The snapshot id (hex), `None` on a dry run or when skipped.
    pub snapshot_id: Option<String>,
    /// True when `--skip-if-unchanged` found nothing changed and wrote no snapshot (the key is
    /// left out when false, so the summary keeps the snapshot's own keys otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot_skipped: bool,
    /// What the snapshot records about the backup.
    #[serde(flatten)]
    pub summary: SummaryInfo,
    /// Each path and command of a backup with command components and how it went (the
    /// snapshot's [`crate::snapshot::Snapshot::components`]); absent without components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
}

impl BackupSummary {
    /// The summary of backup `r`.
    pub fn new(r: &BackupResult) -> Self {
        let mut s = Self::from_parts(&r.snapshot.summary, r.snapshot.tz_offset, r.id.as_ref());
        s.dry_run = s.dry_run && !r.skipped;
        s.snapshot_skipped = r.skipped;
        s.components = r.snapshot.components.clone();
        s
    }

    /// The summary `s` of a snapshot taken in the zone `tz` seconds east of UTC, written as
    /// `id` (`None`: a dry run).
    pub fn from_parts(s: &Summary, tz: i32, id: Option<&SnapshotId>) -> Self {
        BackupSummary {
            dry_run: id.is_none(),
            message_type: "summary",
            snapshot_id: id.map(|i| i.to_hex()),
            snapshot_skipped: false,
            summary: SummaryInfo::new(s, tz),
            components: Vec::new(),
        }
    }

    /// One line of JSON with the keys in name order (the order `backup --json` has always
    /// printed them in). Errors: [`Error::Internal`] when it cannot be serialized.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_value(self).map(|v| v.to_string()).map_err(|e| Error::internal(format!("summary as JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Timestamp;

    #[test]
    fn the_summary_keeps_its_keys_in_name_order() {
        let summary = Summary {
            backup_start: Timestamp { secs: 0, nanos: 0 },
            backup_end: Timestamp { secs: 2, nanos: 500_000_000 },
            counts: crate::snapshot::BackupCounts { files_new: 3, ..Default::default() },
        };
        let json = BackupSummary::from_parts(&summary, 3600, None).to_json().unwrap();
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
