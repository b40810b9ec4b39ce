//! Freshness of backups, from the repository alone (`cairn health`, for a monitoring host): per
//! host, and per component of the host's snapshots (each backed-up path and each command's
//! dump, see [`crate::snapshot::ComponentStatus`]), the newest snapshot that holds it, and its
//! age against a warning and a critical threshold. The verdicts follow the Nagios/Icinga
//! plugin convention ([`Status`]: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::id::SnapshotId;
use crate::snapshot::Snapshot;

/// A plugin verdict, ordered from best to worst; its exit code is [`Status::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fresh enough.
    Ok,
    /// Older than the warning threshold.
    Warning,
    /// Older than the critical threshold, or never backed up.
    Critical,
    /// The repository could not be read (the check could not be made).
    Unknown,
}

impl Status {
    /// The plugin exit code: 0, 1, 2 or 3.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The upper-case word plugins print (`OK`, `WARNING`, `CRITICAL`, `UNKNOWN`).
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// Age thresholds, seconds; a threshold that is `None` is not checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Thresholds {
    /// Older than this: WARNING.
    pub warn: Option<u64>,
    /// Older than this: CRITICAL.
    pub crit: Option<u64>,
}

/// One freshness check: a host as a whole (`component` `None`: its newest snapshot) or one
/// component of it (its newest snapshot in which that component is stored).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The host name the snapshots record.
    pub host: String,
    /// The component's path; `None` for the host's newest snapshot of any kind.
    pub component: Option<String>,
    /// The newest snapshot that holds it (`None`: none does).
    pub snapshot: Option<String>,
    /// Its time, seconds since the Unix epoch.
    pub time: Option<i64>,
    /// Its age at the check, seconds (0 for a snapshot from the future).
    pub age_seconds: Option<u64>,
    /// The verdict.
    pub status: Status,
}

/// A check's key: the host and, for a component, its path.
type Key = (String, Option<String>);

/// The checks for `snapshots` (any order) at `now` (seconds since the Unix epoch): one per host
/// and one per component of each host (every component path its snapshots record, plus
/// `components` for every host), sorted by host then component. A component is held by a
/// snapshot that records it stored ([`crate::snapshot::ComponentStatus::stored`]) or, for a
/// snapshot without components, that lists it among its paths. A host or component that no
/// snapshot holds is CRITICAL.
pub fn checks(snapshots: &[(SnapshotId, Snapshot)], components: &[String], now: i64, limits: Thresholds) -> Vec<Check> {
    // (host, component) -> the newest (time, id) holding it.
    let mut newest: BTreeMap<Key, Option<(i64, SnapshotId)>> = BTreeMap::new();
    for (id, s) in snapshots {
        let host = &s.hostname;
        // The keys this snapshot holds (Some) or records without holding (None).
        let mut keys: Vec<(Key, bool)> = vec![((host.clone(), None), true)];
        if s.components.is_empty() {
            keys.extend(s.paths.iter().map(|p| ((host.clone(), Some(p.clone())), true)));
        }
        keys.extend(s.components.iter().map(|c| ((host.clone(), Some(c.path.clone())), c.stored())));
        for (key, held) in keys {
            let slot = newest.entry(key).or_insert(None);
            if held && slot.as_ref().is_none_or(|(old, _)| s.time.secs > *old) {
                *slot = Some((s.time.secs, *id));
            }
        }
    }
    let hosts: Vec<String> = newest.keys().filter(|(_, c)| c.is_none()).map(|(h, _)| h.clone()).collect();
    for h in hosts {
        for c in components {
            newest.entry((h.clone(), Some(c.clone()))).or_insert(None);
        }
    }
    newest
        .into_iter()
        .map(|((host, component), found)| {
            let age = found.map(|(t, _)| u64::try_from(now.saturating_sub(t)).unwrap_or(0));
            let status = match age {
                None => Status::Critical,
                Some(a) if limits.crit.is_some_and(|c| a > c) => Status::Critical,
                Some(a) if limits.warn.is_some_and(|w| a > w) => Status::Warning,
                Some(_) => Status::Ok,
            };
            Check {
                host,
                component,
                snapshot: found.map(|(_, id)| id.to_hex()),
                time: found.map(|(t, _)| t),
                age_seconds: age,
                status,
            }
        })
        .collect()
}

/// The worst verdict of `checks`; CRITICAL when there is none (no snapshot at all).
pub fn overall(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or(Status::Critical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::snapshot::{test_snapshot, ComponentOutcome};

    fn snap(
        n: u8,
        host: &str,
        t: i64,
        paths: &[&str],
        components: &[(&str, ComponentOutcome)],
    ) -> (SnapshotId, Snapshot) {
        (SnapshotId(Id([n; 32])), test_snapshot(host, t, paths, components))
    }

    #[test]
    fn hosts_and_components_by_their_newest_holding_snapshot() {
        use ComponentOutcome::{Failed, Ok};
        let now = 100_000;
        let snaps = vec![
            snap(1, "mail1", now - 90_000, &["/var/vmail", "/db.dump"], &[("/var/vmail", Ok), ("/db.dump", Ok)]),
            snap(2, "mail1", now - 3_600, &["/var/vmail", "/db.dump"], &[("/var/vmail", Ok), ("/db.dump", Failed)]),
            snap(3, "web", now - 7_200, &["/srv"], &[]),
            snap(4, "dead", now - 99_000, &["/etc"], &[]),
        ];
        let limits = Thresholds { warn: Some(20_000), crit: Some(86_400) };
        let c = checks(&snaps, &["/db.dump".to_string()], now, limits);
        let got: Vec<(&str, Option<&str>, Option<u64>, Status)> =
            c.iter().map(|c| (c.host.as_str(), c.component.as_deref(), c.age_seconds, c.status)).collect();
        assert_eq!(
            got,
            vec![
                ("dead", None, Some(99_000), Status::Critical),
                ("dead", Some("/db.dump"), None, Status::Critical),
                ("dead", Some("/etc"), Some(99_000), Status::Critical),
                ("mail1", None, Some(3_600), Status::Ok),
                ("mail1", Some("/db.dump"), Some(90_000), Status::Critical),
                ("mail1", Some("/var/vmail"), Some(3_600), Status::Ok),
                ("web", None, Some(7_200), Status::Ok),
                ("web", Some("/db.dump"), None, Status::Critical),
                ("web", Some("/srv"), Some(7_200), Status::Ok),
            ]
        );
        assert_eq!(overall(&c), Status::Critical);
        let fresh = checks(&snaps[2..3], &[], now, Thresholds { warn: Some(3_600), crit: None });
        assert_eq!(overall(&fresh), Status::Warning);
        assert_eq!(overall(&[]), Status::Critical);
        assert_eq!([Status::Ok, Status::Warning, Status::Critical, Status::Unknown].map(Status::code), [0, 1, 2, 3]);
    }
}
