//! Freshness of backups, from the repository alone (`cairn health`, for a monitoring host): per
//! host, and per component of the host's snapshots (each backed-up path and each command's
//! dump, see [`crate::snapshot::ComponentStatus`]), the newest snapshot that holds it, and its
//! age against a warning and a critical threshold. The verdicts follow the Nagios/Icinga
//! plugin convention ([`Status`]: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::id::{DrillId, SnapshotId};
use crate::ops::drill::DrillRecord;
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

/// The drill check of one host (`health --max-drill-age`): its newest passing drill
/// ([`crate::ops::drill::DrillVerdict::Passed`]) and that drill's age against the maximum.
#[derive(Clone, Debug, Serialize)]
pub struct DrillCheck {
    /// The host whose backup was drilled (the drilled snapshot's host).
    pub host: String,
    /// The newest passing drill's record id, hex (`None`: no passing drill).
    pub drill: Option<String>,
    /// The snapshot it drilled, hex.
    pub snapshot: Option<String>,
    /// When it ran, seconds since the Unix epoch.
    pub time: Option<i64>,
    /// Its age at the check, seconds (0 for a drill from the future).
    pub age_seconds: Option<u64>,
    /// Its total wall time, seconds.
    pub drill_seconds: Option<f64>,
    /// The verdict of the host's newest drill of any outcome (`passed`, `failed`,
    /// `rto_exceeded`), when it differs from the newest passing one or there is none.
    pub latest_verdict: Option<crate::ops::drill::DrillVerdict>,
    /// OK, or CRITICAL when the newest passing drill is older than the maximum or there is
    /// none.
    pub status: Status,
}

/// True when drill `record` of `snapshot` drilled every part of it (each component, or each
/// path of a snapshot without components): a drill of some components (`--component`, say
/// the ones that did not fail that night) rehearses no full recovery, and does not count for
/// [`drill_checks`].
pub fn drill_covers(record: &DrillRecord, snapshot: &Snapshot) -> bool {
    let drilled = |p: &str| record.components.iter().any(|c| c.path == p);
    if snapshot.components.is_empty() {
        snapshot.paths.iter().all(|p| drilled(p))
    } else {
        snapshot.components.iter().all(|c| drilled(&c.path))
    }
}

/// The drill checks at `now` (seconds since the Unix epoch) of each host in `hosts` (the
/// hosts with snapshots, and those asked for: a host known only from old drill records, one
/// decommissioned, is not checked), sorted by host: CRITICAL when the host's newest
/// passing drill is more than `max_age` seconds old, or when it has none (a failed or
/// RTO-exceeded drill does not count).
pub fn drill_checks(records: &[(DrillId, DrillRecord)], hosts: &[String], now: i64, max_age: u64) -> Vec<DrillCheck> {
    // host -> (newest passing, newest of any verdict)
    type Newest<'a> = Option<&'a (DrillId, DrillRecord)>;
    let mut by_host: BTreeMap<String, (Newest<'_>, Newest<'_>)> =
        hosts.iter().map(|h| (h.clone(), (None, None))).collect();
    let newer = |slot: &Newest<'_>, r: &DrillRecord| slot.is_none_or(|(_, old)| r.time > old.time);
    for rec in records {
        let Some(slot) = by_host.get_mut(&rec.1.snapshot_host) else { continue };
        if rec.1.passed() && newer(&slot.0, &rec.1) {
            slot.0 = Some(rec);
        }
        if newer(&slot.1, &rec.1) {
            slot.1 = Some(rec);
        }
    }
    by_host
        .into_iter()
        .map(|(host, (passed, latest))| {
            let age = passed.map(|(_, r)| u64::try_from(now.saturating_sub(r.time.secs)).unwrap_or(0));
            let status = match age {
                Some(a) if a <= max_age => Status::Ok,
                _ => Status::Critical,
            };
            let latest_verdict = match (passed, latest) {
                (Some((p, _)), Some((l, _))) if p == l => None,
                (_, l) => l.map(|(_, r)| r.verdict),
            };
            DrillCheck {
                host,
                drill: passed.map(|(id, _)| id.to_hex()),
                snapshot: passed.map(|(_, r)| r.snapshot.to_hex()),
                time: passed.map(|(_, r)| r.time.secs),
                age_seconds: age,
                drill_seconds: passed.map(|(_, r)| r.total_ms as f64 / 1000.0),
                latest_verdict,
                status,
            }
        })
        .collect()
}

/// The worst verdict of `checks`; CRITICAL when there is none (no snapshot at all).
pub fn overall(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or(Status::Critical)
}

/// When a snapshot's size is an anomaly ([`size_anomalies`]).
#[derive(Clone, Copy, Debug)]
pub struct SizeRule {
    /// Off by more than this factor from the median, either way (added bytes: only above).
    pub factor: f64,
    /// How many snapshots before the newest the median is taken over (at least 3 are needed).
    pub history: usize,
    /// Differences from the median smaller than this many bytes are never an anomaly.
    pub min_bytes: u64,
}

/// A size that is off: the newest snapshot of a group (host and paths, restic's default
/// grouping) against the median of the ones before it.
#[derive(Clone, Debug, Serialize)]
pub struct SizeAnomaly {
    /// The host.
    pub host: String,
    /// The component, for `measure` `component`.
    pub component: Option<String>,
    /// `total` (bytes of the files the backup processed), `added` (new data it added) or
    /// `component` (bytes a component read: a dump's size).
    pub measure: &'static str,
    /// The newest snapshot, hex id.
    pub snapshot: String,
    /// Its value, bytes.
    pub bytes: u64,
    /// The median of the snapshots before it, bytes.
    pub median_bytes: u64,
    /// How many snapshots the median was taken over.
    pub history: usize,
}

/// The median of `v` (the lower middle value of an even count); `None` when empty.
fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    let mid = v.len().checked_sub(1)? / 2;
    v.get(mid).copied()
}

/// True when `bytes` is off from `median` by more than the rule allows (`up_only`: only a rise
/// counts).
fn off(rule: &SizeRule, bytes: u64, median: u64, up_only: bool) -> bool {
    if bytes.abs_diff(median) < rule.min_bytes || rule.factor <= 0.0 {
        return false;
    }
    let (b, m) = (bytes as f64, median as f64);
    b > rule.factor * m || (!up_only && b * rule.factor < m)
}

/// The size anomalies of the newest snapshot of each group of `snapshots` (any order): its
/// total and added bytes, and each component it stored, against the median of up to
/// `rule.history` snapshots before it (of the group; for a component, those that stored it).
/// A group with fewer than 3 earlier snapshots is not judged. Sorted by host, then component.
pub fn size_anomalies(snapshots: &[(SnapshotId, Snapshot)], rule: &SizeRule) -> Vec<SizeAnomaly> {
    const MIN_HISTORY: usize = 3;
    /// Host and sorted paths: restic's default grouping.
    type Group = (String, Vec<String>);
    let mut groups: BTreeMap<Group, Vec<&(SnapshotId, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(s.1.host_paths()).or_default().push(s);
    }
    let mut out = Vec::new();
    for ((host, _), mut snaps) in groups {
        snaps.sort_by_key(|(_, s)| s.time.secs);
        let Some(((id, newest), before)) = snaps.split_last() else { continue };
        let earlier: Vec<&Snapshot> = before.iter().rev().take(rule.history).map(|(_, s)| s).collect();
        let anomaly = |component: Option<String>, measure, bytes, median, history| SizeAnomaly {
            host: host.clone(),
            component,
            measure,
            snapshot: id.to_hex(),
            bytes,
            median_bytes: median,
            history,
        };
        if earlier.len() >= MIN_HISTORY {
            let c = &newest.summary.counts;
            let total = median(earlier.iter().map(|s| s.summary.counts.total_bytes_processed).collect());
            if let Some(m) = total.filter(|&m| off(rule, c.total_bytes_processed, m, false)) {
                out.push(anomaly(None, "total", c.total_bytes_processed, m, earlier.len()));
            }
            let added = median(earlier.iter().map(|s| s.summary.counts.data_added).collect());
            if let Some(m) = added.filter(|&m| off(rule, c.data_added, m, true)) {
                out.push(anomaly(None, "added", c.data_added, m, earlier.len()));
            }
        }
        for comp in newest.components.iter().filter(|c| c.stored()) {
            let sizes: Vec<u64> = before
                .iter()
                .rev()
                .filter_map(|(_, s)| s.components.iter().find(|o| o.path == comp.path && o.stored()))
                .take(rule.history)
                .map(|o| o.bytes)
                .collect();
            let n = sizes.len();
            if n < MIN_HISTORY {
                continue;
            }
            if let Some(m) = median(sizes).filter(|&m| off(rule, comp.bytes, m, false)) {
                out.push(anomaly(Some(comp.path.clone()), "component", comp.bytes, m, n));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::ops::drill::DrillVerdict;

    #[test]
    fn drill_checks_count_the_newest_passing_drill_per_host() {
        let now = 10_000_000;
        let rec = |n: u8, host: &str, t: i64, verdict| {
            let mut r = crate::ops::drill::record::tests::sample();
            r.snapshot_host = host.into();
            r.time.secs = t;
            r.verdict = verdict;
            (DrillId(Id([n; 32])), r)
        };
        let day: u64 = 86_400;
        let ago = |d: u64| now - d as i64;
        let records = vec![
            rec(1, "mail1", ago(40 * day), DrillVerdict::Passed),
            rec(2, "mail1", ago(2 * day), DrillVerdict::Passed),
            rec(3, "mail1", ago(day), DrillVerdict::Failed),
            rec(4, "web", ago(40 * day), DrillVerdict::Passed),
            rec(5, "db", ago(day), DrillVerdict::Failed),
            rec(6, "db", ago(day / 2), DrillVerdict::RtoExceeded),
        ];
        // web is known only from its drill records (a decommissioned host): not checked.
        let c = drill_checks(&records, &["mail1".into(), "fresh".into(), "db".into()], now, 35 * day);
        let got: Vec<(&str, Option<u64>, Option<DrillVerdict>, Status)> =
            c.iter().map(|c| (c.host.as_str(), c.age_seconds, c.latest_verdict, c.status)).collect();
        assert_eq!(
            got,
            vec![
                ("db", None, Some(DrillVerdict::RtoExceeded), Status::Critical),
                ("fresh", None, None, Status::Critical),
                ("mail1", Some(2 * day), Some(DrillVerdict::Failed), Status::Ok),
            ]
        );
        assert_eq!(c[2].drill.as_deref(), Some(DrillId(Id([2; 32])).to_hex().as_str()));
    }
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

    #[test]
    fn a_dump_that_shrinks_or_a_backup_that_grows_is_an_anomaly() {
        use ComponentOutcome::Ok;
        let rule = SizeRule { factor: 3.0, history: 10, min_bytes: 1 << 20 };
        let mb = 1u64 << 20;
        let mut snaps = Vec::new();
        for (n, (total, added, dump)) in
            [(100, 5, 40), (101, 6, 41), (102, 4, 42), (103, 5, 43)].into_iter().enumerate()
        {
            let mut s = snap(
                n as u8,
                "mail1",
                1000 + n as i64,
                &["/var/vmail", "/db.dump"],
                &[("/var/vmail", Ok), ("/db.dump", Ok)],
            );
            s.1.summary.counts.total_bytes_processed = total * mb;
            s.1.summary.counts.data_added = added * mb;
            if let Some(c) = s.1.components.iter_mut().find(|c| c.path == "/db.dump") {
                c.bytes = dump * mb;
            }
            snaps.push(s);
        }
        assert!(size_anomalies(&snaps, &rule).is_empty());
        // The newest: the dump is 1 KiB (a pg_dump of the wrong database), 40x more added.
        if let Some(last) = snaps.last_mut() {
            last.1.summary.counts.data_added = 200 * mb;
            if let Some(c) = last.1.components.iter_mut().find(|c| c.path == "/db.dump") {
                c.bytes = 1024;
            }
        }
        let found = size_anomalies(&snaps, &rule);
        let got: Vec<(&str, Option<&str>)> = found.iter().map(|a| (a.measure, a.component.as_deref())).collect();
        assert_eq!(got, vec![("added", None), ("component", Some("/db.dump"))]);
        // Too little history: not judged.
        assert!(size_anomalies(&snaps[1..], &rule).is_empty());
        // Small differences never count, and an added size that drops is no anomaly.
        let quiet = SizeRule { min_bytes: 1 << 40, ..rule };
        assert!(size_anomalies(&snaps, &quiet).is_empty());
        assert!(!off(&rule, 0, 50 * mb, true));
        assert!(off(&rule, 0, 50 * mb, false));
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![]), None);
    }
}
