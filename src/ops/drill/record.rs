//! The drill record: a small encrypted file `drills/<id>` that `cairn drill` writes after each
//! drill, passed or failed, so that `cairn health --max-drill-age` can tell from the repository
//! alone, on any host, when a restore was last rehearsed successfully (repo-format.md, "Drill
//! records").
//!
//! The plaintext is bincode of [`DrillRecord`], whose first field is its own version
//! ([`DRILL_RECORD_VERSION`]): a reader refuses a version it does not know rather than guess.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::tree::Timestamp;

/// The version of [`DrillRecord`] this build writes and the only one it reads.
pub const DRILL_RECORD_VERSION: u8 = 1;

/// How a drill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillVerdict {
    /// Every component restored, verified, and its drill command (if any) succeeded, within
    /// the RTO (or no RTO was given).
    Passed,
    /// Some component failed (restore, verification or drill command).
    Failed,
    /// Every component passed, but the drill took longer than the RTO.
    RtoExceeded,
}

impl DrillVerdict {
    /// `passed`, `failed`, `rto_exceeded` (as in JSON).
    pub fn word(self) -> &'static str {
        match self {
            DrillVerdict::Passed => "passed",
            DrillVerdict::Failed => "failed",
            DrillVerdict::RtoExceeded => "rto_exceeded",
        }
    }
}

/// One component of a drill as its record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillComponentRecord {
    /// The component's absolute path in the snapshot.
    pub path: String,
    /// True when it was restored, verified, and its drill command succeeded.
    pub ok: bool,
    /// Content bytes restored.
    pub bytes: u64,
    /// Wall time of its restore and verification, milliseconds.
    pub restore_ms: u64,
    /// Wall time of its drill command, milliseconds (0 without one).
    pub command_ms: u64,
    /// Its drill command as quoted for messages (empty without one).
    pub command: String,
    /// The drill command's exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// Why it failed (empty when it passed).
    pub message: String,
}

/// One drill, as stored in `drills/<id>` (repo-format.md, "Drill records").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// [`DRILL_RECORD_VERSION`].
    pub version: u8,
    /// When the drill started.
    pub time: Timestamp,
    /// The host that ran the drill.
    pub hostname: String,
    /// The user that ran it.
    pub username: String,
    /// The snapshot drilled.
    pub snapshot: SnapshotId,
    /// That snapshot's host: the host whose backup was drilled (`health --host` filters on it).
    pub snapshot_host: String,
    /// That snapshot's tags (`health --tag` filters on them).
    pub snapshot_tags: Vec<String>,
    /// That snapshot's time.
    pub snapshot_time: Timestamp,
    /// Each component drilled, in the snapshot's order.
    pub components: Vec<DrillComponentRecord>,
    /// Wall time of the whole drill, milliseconds.
    pub total_ms: u64,
    /// The recovery time objective it was held to, milliseconds.
    pub rto_ms: Option<u64>,
    /// How it ended.
    pub verdict: DrillVerdict,
    /// `cairn x.y.z` that wrote it.
    pub program_version: String,
}

impl DrillRecord {
    /// The plaintext of the record file: bincode of the record. Errors: [`Error::Internal`]
    /// when it cannot be encoded, or when its version is not [`DRILL_RECORD_VERSION`].
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.version != DRILL_RECORD_VERSION {
            return Err(Error::internal(format!(
                "a drill record of version {} cannot be written (this cairn writes version {DRILL_RECORD_VERSION})",
                self.version
            )));
        }
        crate::format::encode(self)
    }

    /// The record of plaintext `plain`; `what` names the file in errors. Errors:
    /// [`Error::Corrupt`] when it does not decode, or is of another version (the first byte).
    pub fn decode(plain: &[u8], what: &str) -> Result<Self> {
        match plain.first() {
            None => return Err(Error::corrupt(what, "empty plaintext")),
            Some(&v) if v != DRILL_RECORD_VERSION => {
                return Err(Error::corrupt(
                    what,
                    format!("drill record version {v} is not supported by this cairn (it reads version {DRILL_RECORD_VERSION}); upgrade cairn"),
                ))
            }
            Some(_) => {}
        }
        crate::format::decode(plain, what)
    }

    /// True when the drill passed ([`DrillVerdict::Passed`]): the one kind of drill that
    /// `health --max-drill-age` counts.
    pub fn passed(&self) -> bool {
        self.verdict == DrillVerdict::Passed
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with every field set, for round trips.
    pub(crate) fn sample() -> DrillRecord {
        DrillRecord {
            version: DRILL_RECORD_VERSION,
            time: Timestamp { secs: 1_700_000_000, nanos: 5 },
            hostname: "drillhost".into(),
            username: "root".into(),
            snapshot: SnapshotId(crate::id::Id([7; 32])),
            snapshot_host: "mail1".into(),
            snapshot_tags: vec!["nightly".into()],
            snapshot_time: Timestamp { secs: 1_699_990_000, nanos: 0 },
            components: vec![DrillComponentRecord {
                path: "/postgres/maildb.dump".into(),
                ok: true,
                bytes: 1 << 20,
                restore_ms: 1200,
                command_ms: 3400,
                command: "`pg_restore -d drill_scratch`".into(),
                exit_code: Some(0),
                message: String::new(),
            }],
            total_ms: 4700,
            rto_ms: Some(1_800_000),
            verdict: DrillVerdict::Passed,
            program_version: "cairn 0.1.0".into(),
        }
    }

    #[test]
    fn round_trip_and_version_refused() {
        let r = sample();
        let plain = r.encode().unwrap();
        assert_eq!(plain[0], DRILL_RECORD_VERSION);
        assert_eq!(DrillRecord::decode(&plain, "d").unwrap(), r);
        let mut v2 = plain.clone();
        v2[0] = 2;
        let e = DrillRecord::decode(&v2, "d").unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        assert!(DrillRecord::decode(&[], "d").is_err());
        assert!(DrillRecord::decode(&plain[..plain.len() - 1], "d").is_err());
        let mut bad = r.clone();
        bad.version = 9;
        assert!(bad.encode().is_err());
    }
}
