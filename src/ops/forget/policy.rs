//! Forget policies: which snapshots to keep, following restic's rules exactly (restic docs,
//! "Removing snapshots according to a policy",
//! <https://restic.readthedocs.io/en/stable/060_forget.html>, and restic's
//! `internal/restic/snapshot_policy.go`). Pure: no I/O; [`super::forget`] lists and removes.
//!
//! The algorithm, per group of snapshots:
//! 1. sort the group newest first (ties: ascending id);
//! 2. for each snapshot in that order, every rule decides on its own, and the snapshot is kept
//!    when any rule keeps it:
//!    - `--keep-tag a,b`: the snapshot carries all the tags of one list;
//!    - `--keep-within D`: the snapshot is strictly newer than the newest snapshot of the
//!      group (not counting snapshots in the future) minus `D`;
//!    - `--keep-last/hourly/daily/weekly/monthly/yearly N`: while the rule still has counts
//!      left (N > 0, or N = -1 for unlimited), it keeps the snapshot when the snapshot's bucket
//!      (its hour, day, ISO week, month or year in the snapshot's own time zone; for `last`,
//!      every snapshot is its own bucket) differs from the bucket of the last snapshot this
//!      rule kept, and uses one count. The oldest snapshot of the group is also kept by every
//!      rule that still has counts left (restic ≥ 0.14: it maximises the history kept);
//!    - `--keep-within-hourly/daily/weekly/monthly/yearly D`: for snapshots within `D` (as for
//!      `--keep-within`), keep the first snapshot of every bucket, without a count.
//! 3. An empty policy keeps everything.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::snapshot::Snapshot;

/// A calendar duration as restic writes it: `1y2m3d4h` (years, months, days, hours; each
/// part optional, in any order, a repeated unit replaces the earlier value).
///
/// It is applied as Go's `time.AddDate(-y, -m, -d)` then minus `h` hours: years, months and
/// days are subtracted from the calendar fields and the date is then normalised (31 March
/// minus one month is "31 February", that is 3 March, or 2 March in a leap year).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeepDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl KeepDuration {
    /// Parse restic's duration syntax: one or more `<digits><unit>` parts, unit `y`, `m`, `d`
    /// or `h` (surrounding white space is ignored).
    /// Errors: [`Error::Usage`] naming the input for an empty string, a missing number,
    /// a missing or unknown unit, a negative sign, or a number above 1000000.
    pub fn parse(s: &str) -> Result<KeepDuration> {
        let bad = |why: String| {
            Error::usage(format!(
                "duration {s:?}: {why} (expected e.g. 30d, 6m or 1y2m3d4h: y = years, m = months, d = days, h = hours)"
            ))
        };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad("empty".into()));
        }
        let mut d = KeepDuration::default();
        while !rest.is_empty() {
            if rest.starts_with('-') {
                return Err(bad("negative durations are not allowed".into()));
            }
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (num, tail) = rest.split_at(digits);
            if num.is_empty() {
                return Err(bad(format!("no number before {tail:?}")));
            }
            let n: u32 =
                num.parse().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| bad(format!("{num} is too large")))?;
            let mut chars = tail.chars();
            match chars.next() {
                Some('y') => d.years = n,
                Some('m') => d.months = n,
                Some('d') => d.days = n,
                Some('h') => d.hours = n,
                Some(c) => return Err(bad(format!("unknown unit {c:?} after {n}"))),
                None => return Err(bad(format!("no unit after {n}"))),
            }
            rest = chars.as_str();
        }
        Ok(d)
    }

    /// True when every part is zero (the rule is off).
    pub fn is_zero(&self) -> bool {
        *self == KeepDuration::default()
    }

    /// The instant `self` before `t`, computed in `t`'s time zone as Go's
    /// `t.AddDate(-years, -months, -days).Add(-hours)`. `None` when that lies outside the
    /// representable calendar (then every snapshot is within the duration).
    pub fn before(&self, t: DateTime<FixedOffset>) -> Option<DateTime<Utc>> {
        let months0 =
            i64::from(t.year()) * 12 + i64::from(t.month0()) - i64::from(self.years) * 12 - i64::from(self.months);
        let year = i32::try_from(months0.div_euclid(12)).ok()?;
        let month = u32::try_from(months0.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        // Day overflow is normalised as Go does: day 31 of a 30-day month is the 1st of the next.
        let offset_days = i64::from(t.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(chrono::TimeDelta::try_days(offset_days)?)?;
        let local = date.and_time(t.time()).and_local_timezone(*t.offset()).single()?;
        local.with_timezone(&Utc).checked_sub_signed(chrono::TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl std::str::FromStr for KeepDuration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeepDuration::parse(s)
    }
}

impl fmt::Display for KeepDuration {
    /// restic's form: the non-zero parts in the order y, m, d, h (`1y2m`, `30d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// A count of `--keep-*` snapshots: 0 = rule off, -1 = unlimited (restic's convention).
pub const UNLIMITED: i32 = -1;

/// What to keep (restic's `ExpirePolicy`). Counts: 0 = off, [`UNLIMITED`] (-1) = every
/// bucket, otherwise the number of buckets; durations: zero = off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// `--keep-last`: the newest N snapshots.
    pub last: i32,
    /// `--keep-hourly`: the newest snapshot of each of the last N hours that have one.
    pub hourly: i32,
    /// `--keep-daily`: per day.
    pub daily: i32,
    /// `--keep-weekly`: per ISO 8601 week (Monday to Sunday).
    pub weekly: i32,
    /// `--keep-monthly`: per calendar month.
    pub monthly: i32,
    /// `--keep-yearly`: per calendar year.
    pub yearly: i32,
    /// `--keep-within`: every snapshot newer than the group's newest minus this.
    pub within: KeepDuration,
    /// `--keep-within-hourly`: the newest snapshot of each hour within this.
    pub within_hourly: KeepDuration,
    /// `--keep-within-daily`.
    pub within_daily: KeepDuration,
    /// `--keep-within-weekly`.
    pub within_weekly: KeepDuration,
    /// `--keep-within-monthly`.
    pub within_monthly: KeepDuration,
    /// `--keep-within-yearly`.
    pub within_yearly: KeepDuration,
    /// `--keep-tag`: each entry is a tag list; a snapshot carrying all tags of one list is kept.
    pub tags: Vec<Vec<String>>,
}

/// The count rules in restic's order: name, bucket, reason text.
const COUNT_RULES: [(&str, Bucket, &str); 6] = [
    ("last", Bucket::Each, "last snapshot"),
    ("hourly", Bucket::Hour, "hourly snapshot"),
    ("daily", Bucket::Day, "daily snapshot"),
    ("weekly", Bucket::Week, "weekly snapshot"),
    ("monthly", Bucket::Month, "monthly snapshot"),
    ("yearly", Bucket::Year, "yearly snapshot"),
];

/// The within-bucket rules in restic's order.
const WITHIN_RULES: [(Bucket, &str); 5] = [
    (Bucket::Hour, "hourly within"),
    (Bucket::Day, "daily within"),
    (Bucket::Week, "weekly within"),
    (Bucket::Month, "monthly within"),
    (Bucket::Year, "yearly within"),
];

impl KeepPolicy {
    fn counts(&self) -> [i32; 6] {
        [self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly]
    }

    fn within_buckets(&self) -> [KeepDuration; 5] {
        [self.within_hourly, self.within_daily, self.within_weekly, self.within_monthly, self.within_yearly]
    }

    /// True when no rule is set: such a policy keeps everything (restic refuses to remove
    /// anything without a policy).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && *self == KeepPolicy { tags: Vec::new(), ..Default::default() }
    }

    /// Check the values. Errors: [`Error::Usage`] for a count below -1 or an empty
    /// tag list.
    pub fn validate(&self) -> Result<()> {
        for (c, (name, _, _)) in self.counts().iter().zip(COUNT_RULES) {
            if *c < UNLIMITED {
                return Err(Error::usage(format!(
                    "keep {name} count {c}: negative values other than -1 (unlimited) are not allowed"
                )));
            }
        }
        if self.tags.iter().any(|l| l.is_empty() || l.iter().any(String::is_empty)) {
            return Err(Error::usage("tags to keep: empty tag in a tag list"));
        }
        Ok(())
    }

    /// A sentence describing the policy, as restic prints it: `keep 7 daily, 4 weekly
    /// snapshots, all snapshots with tags [release]`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let counts: Vec<String> = self
            .counts()
            .iter()
            .zip(COUNT_RULES)
            .filter_map(|(c, (name, _, _))| match *c {
                UNLIMITED => Some(format!("all {}", if name == "last" { "latest" } else { name })),
                n if n > 0 => Some(format!("{n} {}", if name == "last" { "latest" } else { name })),
                _ => None,
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for (d, (_, reason)) in self.within_buckets().iter().zip(WITHIN_RULES) {
            if !d.is_zero() {
                parts.push(format!("{} snapshots within {d}", reason.trim_end_matches(" within")));
            }
        }
        if !self.tags.is_empty() {
            let lists: Vec<String> = self.tags.iter().map(|l| tag_list(l)).collect();
            parts.push(format!("all snapshots with tags {}", lists.join(" or ")));
        }
        if !self.within.is_zero() {
            parts.push(format!("all snapshots within {} of the newest", self.within));
        }
        if parts.is_empty() {
            return "keep everything (no policy)".into();
        }
        format!("keep {}", parts.join(", "))
    }
}

/// `[a, b]`, restic's way of printing a tag list.
fn tag_list(l: &[String]) -> String {
    format!("[{}]", l.join(", "))
}

/// Time buckets of the count and within rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bucket {
    /// Every snapshot its own (keep-last).
    Each,
    Hour,
    Day,
    /// ISO 8601 week-numbering year and week.
    Week,
    Month,
    Year,
}

impl Bucket {
    /// The bucket number of a snapshot at local time `t`, position `nr` in the sorted group.
    fn of(self, t: &DateTime<FixedOffset>, nr: usize) -> i64 {
        let (y, m, d, h) = (i64::from(t.year()), i64::from(t.month()), i64::from(t.day()), i64::from(t.hour()));
        match self {
            Bucket::Each => nr as i64,
            Bucket::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Bucket::Day => (y * 100 + m) * 100 + d,
            Bucket::Week => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Month => y * 100 + m,
            Bucket::Year => y,
        }
    }
}

/// Counts left per rule after a snapshot was considered (restic's `counters`; -1 = unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `--keep-last` counts left.
    pub last: i32,
    /// `--keep-hourly` counts left.
    pub hourly: i32,
    /// `--keep-daily` counts left.
    pub daily: i32,
    /// `--keep-weekly` counts left.
    pub weekly: i32,
    /// `--keep-monthly` counts left.
    pub monthly: i32,
    /// `--keep-yearly` counts left.
    pub yearly: i32,
}

/// The outcome for one snapshot.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// True to keep it.
    pub keep: bool,
    /// Why it is kept, in restic's words (`last snapshot`, `daily snapshot`, `within 30d`,
    /// `daily within 6m`, `has tags [release]`, `policy is empty`); empty when removed.
    pub reasons: Vec<String>,
    /// Counts left after this snapshot.
    pub counters: Counters,
}

/// Apply `policy` to one group of snapshots. `now` is the current time: snapshots dated after
/// it do not count as the newest for `--keep-within*` (restic). Returns one decision per
/// snapshot, newest first (equal times: ascending id).
pub fn apply_policy(group: &[(SnapshotId, Snapshot)], policy: &KeepPolicy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut list: Vec<&(SnapshotId, Snapshot)> = group.iter().collect();
    list.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(a.0.cmp(&b.0)));
    if policy.is_empty() {
        return list
            .into_iter()
            .map(|(id, s)| Decision {
                id: *id,
                snapshot: s.clone(),
                keep: true,
                reasons: vec!["policy is empty".into()],
                counters: Counters::default(),
            })
            .collect();
    }
    // The newest snapshot that is not in the future, in its own time zone.
    let newest = list.iter().find(|(_, s)| s.time.to_utc() < now).map(|(_, s)| s.local_time());
    // Lower bound of each within-rule; None = no bound (all within).
    let cutoff = |d: &KeepDuration| -> Option<DateTime<Utc>> { newest.and_then(|t| d.before(t)) };
    let within_cut = (!policy.within.is_zero()).then(|| cutoff(&policy.within));
    let bucket_cuts: Vec<Option<Option<DateTime<Utc>>>> =
        policy.within_buckets().iter().map(|d| (!d.is_zero()).then(|| cutoff(d))).collect();

    let mut counts = policy.counts();
    let mut last_bucket: [Option<i64>; 6] = [None; 6];
    let mut last_within: [Option<i64>; 5] = [None; 5];
    let n = list.len();
    let mut out = Vec::with_capacity(n);
    for (nr, (id, s)) in list.into_iter().enumerate() {
        let mut reasons = Vec::new();
        let t = s.local_time();
        let utc = s.time.to_utc();
        let inside = |cut: &Option<DateTime<Utc>>| cut.is_none_or(|c| utc > c);
        for l in &policy.tags {
            if l.iter().all(|tag| s.tags.contains(tag)) {
                reasons.push(format!("has tags {}", tag_list(l)));
            }
        }
        if let Some(cut) = &within_cut {
            if inside(cut) {
                reasons.push(format!("within {}", policy.within));
            }
        }
        for (i, (_, bucket, reason)) in COUNT_RULES.iter().enumerate() {
            if counts[i] > 0 || counts[i] == UNLIMITED {
                let b = bucket.of(&t, nr);
                if last_bucket[i] != Some(b) || nr + 1 == n {
                    last_bucket[i] = Some(b);
                    if counts[i] > 0 {
                        counts[i] -= 1;
                    }
                    reasons.push((*reason).to_string());
                }
            }
        }
        for (i, ((bucket, reason), cut)) in WITHIN_RULES.iter().zip(&bucket_cuts).enumerate() {
            if let Some(cut) = cut {
                if inside(cut) {
                    let b = bucket.of(&t, nr);
                    if last_within[i] != Some(b) {
                        last_within[i] = Some(b);
                        reasons.push(format!("{reason} {}", policy.within_buckets()[i]));
                    }
                }
            }
        }
        let counters = Counters {
            last: counts[0],
            hourly: counts[1],
            daily: counts[2],
            weekly: counts[3],
            monthly: counts[4],
            yearly: counts[5],
        };
        out.push(Decision { id: *id, snapshot: s.clone(), keep: !reasons.is_empty(), reasons, counters });
    }
    out
}

/// Which snapshot fields form a group (`--group-by host,paths,tags`; restic's default is
/// `host,paths`; none = one group of everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the (sorted) list of backed-up paths.
    pub paths: bool,
    /// Group by the (sorted) list of tags.
    pub tags: bool,
}

impl GroupBy {
    /// Parse a comma-separated list of `host`, `paths`, `tags` (restic also accepts `path`
    /// and `tag`); the empty string means no grouping.
    /// Errors: [`Error::Usage`] for any other word.
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                _ => return Err(Error::usage(format!("grouping {s:?}: unknown field {w:?} (expected host, paths and/or tags, comma-separated, or '' for no grouping)"))),
            }
        }
        Ok(g)
    }
}

/// The values a group shares; a field not grouped by is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Host name.
    pub host: Option<String>,
    /// Sorted paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    pub tags: Option<Vec<String>>,
}

/// Split snapshots into groups by `by`. Groups are in ascending key order (host, then paths,
/// then tags); within a group the input order is kept.
pub fn group_snapshots(
    snaps: Vec<(SnapshotId, Snapshot)>,
    by: GroupBy,
) -> Vec<(GroupKey, Vec<(SnapshotId, Snapshot)>)> {
    let mut groups: BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snaps {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let key = GroupKey {
            host: by.host.then(|| s.hostname.clone()),
            paths: by.paths.then(|| sorted(&s.paths)),
            tags: by.tags.then(|| sorted(&s.tags)),
        };
        groups.entry(key).or_default().push((id, s));
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BlobId, Id};
    use crate::snapshot::Summary;
    use crate::tree::Timestamp;
    use proptest::prelude::*;

    fn snap_at(rfc3339: &str, tags: &[&str]) -> Snapshot {
        let t = DateTime::parse_from_rfc3339(rfc3339).unwrap();
        Snapshot {
            time: Timestamp { secs: t.timestamp(), nanos: 0 },
            tz_offset: t.offset().local_minus_utc(),
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            paths: vec!["/p".into()],
            tags: tags.iter().map(|s| s.to_string()).collect(),
            excludes: vec![],
            tree: BlobId::default(),
            parent: None,
            program_version: "test".into(),
            summary: Summary::default(),
            components: Vec::new(),
            original: None,
        }
    }

    fn sid(n: u64) -> SnapshotId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        SnapshotId(Id(b))
    }

    fn group(times: &[&str]) -> Vec<(SnapshotId, Snapshot)> {
        times.iter().enumerate().map(|(i, t)| (sid(i as u64), snap_at(t, &[]))).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// Kept snapshots' times (as given), newest first.
    fn kept(g: &[(SnapshotId, Snapshot)], p: &KeepPolicy) -> Vec<String> {
        apply_policy(g, p, now())
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.snapshot.local_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn duration_parsing() {
        let d = |y, m, dd, h| KeepDuration { years: y, months: m, days: dd, hours: h };
        assert_eq!(KeepDuration::parse("30d").unwrap(), d(0, 0, 30, 0));
        assert_eq!(KeepDuration::parse("1y2m3d4h").unwrap(), d(1, 2, 3, 4));
        assert_eq!(KeepDuration::parse("4h1y").unwrap(), d(1, 0, 0, 4));
        assert_eq!(KeepDuration::parse(" 6m ").unwrap(), d(0, 6, 0, 0));
        assert_eq!(KeepDuration::parse("1d2d").unwrap(), d(0, 0, 2, 0), "a repeated unit replaces (restic)");
        assert_eq!(KeepDuration::parse("0d").unwrap(), d(0, 0, 0, 0));
        assert_eq!(d(1, 2, 3, 4).to_string(), "1y2m3d4h");
        assert_eq!(d(0, 0, 30, 0).to_string(), "30d");
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("3x", "unknown unit 'x'"),
            ("30", "no unit after 30"),
            ("d", "no number"),
            ("1d h", "no number"),
            ("-1d", "negative"),
            ("1.5d", "unknown unit '.'"),
            ("99999999999y", "too large"),
            ("1D", "unknown unit 'D'"),
            ("1d2", "no unit after 2"),
            ("٣d", "no number"),
        ] {
            let e = KeepDuration::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "the message names the input: {e}");
        }
    }

    #[test]
    fn duration_subtracts_like_go_add_date() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let u = |s: &str| t(s).with_timezone(&Utc);
        let d = |s: &str| KeepDuration::parse(s).unwrap();
        assert_eq!(
            d("1m").before(t("2023-03-31T10:00:00Z")),
            Some(u("2023-03-03T10:00:00Z")),
            "Feb 31 normalises to Mar 3"
        );
        assert_eq!(d("1m").before(t("2024-03-31T10:00:00Z")), Some(u("2024-03-02T10:00:00Z")), "leap year");
        assert_eq!(d("1y").before(t("2024-02-29T00:00:00Z")), Some(u("2023-03-01T00:00:00Z")));
        assert_eq!(d("30d").before(t("2024-03-15T12:00:00Z")), Some(u("2024-02-14T12:00:00Z")));
        assert_eq!(d("14m").before(t("2024-03-15T12:00:00Z")), Some(u("2023-01-15T12:00:00Z")));
        assert_eq!(d("1d25h").before(t("2024-03-15T12:00:00Z")), Some(u("2024-03-13T11:00:00Z")));
        // Calendar arithmetic happens in the time's own zone: 00:30+02:00 minus a day.
        assert_eq!(d("1d").before(t("2024-03-01T00:30:00+02:00")), Some(u("2024-02-28T22:30:00Z")));
        assert_eq!(d("1000000y").before(t("2024-03-01T00:00:00Z")), None, "beyond the calendar: no bound");
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let g = group(&["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"]);
        assert!(KeepPolicy::default().is_empty());
        let ds = apply_policy(&g, &KeepPolicy::default(), now());
        assert!(ds.iter().all(|d| d.keep && d.reasons == ["policy is empty"]));
        assert!(!KeepPolicy { tags: vec![vec!["x".into()]], ..Default::default() }.is_empty());
        assert!(!KeepPolicy { within_weekly: KeepDuration { hours: 1, ..Default::default() }, ..Default::default() }
            .is_empty());
        assert!(apply_policy(&[], &KeepPolicy { last: 1, ..Default::default() }, now()).is_empty());
    }

    #[test]
    fn daily_keeps_newest_of_each_day_and_the_oldest_while_counts_remain() {
        let g = group(&[
            "2024-01-01T08:00:00Z",
            "2024-01-01T20:00:00Z",
            "2024-01-02T09:00:00Z",
            "2024-01-04T09:00:00Z",
            "2024-01-04T10:00:00Z",
        ]);
        let p = KeepPolicy { daily: 2, ..Default::default() };
        assert_eq!(kept(&g, &p), ["2024-01-04T10:00:00Z", "2024-01-02T09:00:00Z"]);
        let p = KeepPolicy { daily: 5, ..Default::default() };
        // Three days, so counts remain: the oldest snapshot is kept too (restic).
        assert_eq!(
            kept(&g, &p),
            ["2024-01-04T10:00:00Z", "2024-01-02T09:00:00Z", "2024-01-01T20:00:00Z", "2024-01-01T08:00:00Z"]
        );
        let d = apply_policy(&g, &KeepPolicy { daily: 5, last: 1, ..Default::default() }, now());
        assert_eq!(d[0].reasons, ["last snapshot", "daily snapshot"]);
        assert_eq!(d[0].counters, Counters { last: 0, daily: 4, ..Default::default() });
        assert!(!d[1].keep && d[1].reasons.is_empty());
        let p = KeepPolicy { daily: UNLIMITED, ..Default::default() };
        assert_eq!(kept(&g, &p).len(), 4);
    }

    #[test]
    fn buckets_use_the_snapshots_own_time_zone() {
        // 23:30 and 00:30 UTC are the same day at +02:00 and different days in UTC.
        let utc = group(&["2024-05-01T23:30:00Z", "2024-05-02T00:30:00Z"]);
        let east = group(&["2024-05-02T01:30:00+02:00", "2024-05-02T02:30:00+02:00"]);
        let p = KeepPolicy { daily: 1, last: 0, ..Default::default() };
        // daily 1: the newest is kept; the oldest only if counts remain (none left here).
        assert_eq!(kept(&utc, &p).len(), 1);
        let p = KeepPolicy { daily: 3, ..Default::default() };
        assert_eq!(kept(&utc, &p).len(), 2);
        // Same day in +02:00: one bucket, but the oldest is kept because counts remain.
        let d = apply_policy(&east, &p, now());
        assert_eq!(d[0].counters.daily, 2);
        assert_eq!(d[1].counters.daily, 1, "the oldest is kept by the counts-left rule");
        let p = KeepPolicy { hourly: 5, daily: 5, ..Default::default() };
        let d = apply_policy(&east, &p, now());
        assert_eq!(d[0].reasons, ["hourly snapshot", "daily snapshot"]);
    }

    #[test]
    fn weeks_are_iso_weeks() {
        // 2024-12-30 (Mon) is in ISO week 2025-W01, like 2025-01-05 (Sun); 2024-12-29 (Sun) is 2024-W52.
        let g = group(&["2024-12-29T12:00:00Z", "2024-12-30T12:00:00Z", "2025-01-05T12:00:00Z"]);
        let ds = apply_policy(&g, &KeepPolicy { weekly: 1, ..Default::default() }, now());
        assert_eq!(ds.iter().map(|d| d.keep).collect::<Vec<_>>(), [true, false, false]);
        let ds = apply_policy(
            &g,
            &KeepPolicy { within_weekly: KeepDuration::parse("1y").unwrap(), ..Default::default() },
            now(),
        );
        assert_eq!(ds.iter().map(|d| d.keep).collect::<Vec<_>>(), [true, false, true]);
        assert_eq!(ds[0].reasons, ["weekly within 1y"]);
    }

    #[test]
    fn within_is_relative_to_the_newest_past_snapshot() {
        let g =
            group(&["2020-01-01T00:00:00Z", "2020-01-20T00:00:00Z", "2020-01-30T00:00:00Z", "2020-01-31T00:00:00Z"]);
        let p = KeepPolicy { within: KeepDuration::parse("11d").unwrap(), ..Default::default() };
        // Strictly after 2020-01-20T00:00: the boundary snapshot is not within.
        assert_eq!(kept(&g, &p), ["2020-01-31T00:00:00Z", "2020-01-30T00:00:00Z"]);
        assert_eq!(apply_policy(&g, &p, now())[0].reasons, ["within 11d"]);
        // A snapshot in the future does not count as the newest.
        let mut g2 = g.clone();
        g2.push((sid(99), snap_at("2031-01-01T00:00:00Z", &[])));
        assert_eq!(kept(&g2, &p), ["2031-01-01T00:00:00Z", "2020-01-31T00:00:00Z", "2020-01-30T00:00:00Z"]);
        // Only future snapshots: no newest, everything is within.
        let g3 = group(&["2031-01-01T00:00:00Z", "2031-06-01T00:00:00Z"]);
        assert_eq!(kept(&g3, &p).len(), 2);
    }

    #[test]
    fn within_buckets_keep_one_per_bucket_without_a_count() {
        let g = group(&[
            "2024-01-01T10:00:00Z",
            "2024-01-01T11:00:00Z",
            "2024-01-02T10:00:00Z",
            "2024-01-05T10:00:00Z",
            "2024-01-05T11:00:00Z",
        ]);
        let p = KeepPolicy { within_daily: KeepDuration::parse("4d").unwrap(), ..Default::default() };
        // Cut-off 2024-01-01T11:00 (exclusive): Jan 5 (newest), Jan 2; Jan 1 11:00 is not after it.
        assert_eq!(kept(&g, &p), ["2024-01-05T11:00:00Z", "2024-01-02T10:00:00Z"]);
        assert_eq!(apply_policy(&g, &p, now())[0].reasons, ["daily within 4d"]);
    }

    #[test]
    fn keep_tag_needs_all_tags_of_one_list() {
        let g = vec![
            (sid(1), snap_at("2024-01-01T00:00:00Z", &["release", "v1"])),
            (sid(2), snap_at("2024-01-02T00:00:00Z", &["release"])),
            (sid(3), snap_at("2024-01-03T00:00:00Z", &["v1"])),
            (sid(4), snap_at("2024-01-04T00:00:00Z", &[])),
        ];
        let p = KeepPolicy { tags: vec![vec!["release".into(), "v1".into()], vec!["v1".into()]], ..Default::default() };
        let ds = apply_policy(&g, &p, now());
        let ids: Vec<SnapshotId> = ds.iter().filter(|d| d.keep).map(|d| d.id).collect();
        assert_eq!(ids, [sid(3), sid(1)]);
        assert_eq!(ds[3].reasons, ["has tags [release, v1]", "has tags [v1]"]);
        assert!(p.validate().is_ok());
        assert!(KeepPolicy { tags: vec![vec![]], ..Default::default() }.validate().is_err());
        assert!(KeepPolicy { daily: -2, ..Default::default() }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("keep daily count -2"));
    }

    #[test]
    fn equal_times_sort_by_id() {
        let g = vec![(sid(5), snap_at("2024-01-01T00:00:00Z", &[])), (sid(2), snap_at("2024-01-01T00:00:00Z", &[]))];
        let ds = apply_policy(&g, &KeepPolicy { last: 1, ..Default::default() }, now());
        assert_eq!((ds[0].id, ds[0].keep, ds[1].keep), (sid(2), true, false));
    }

    #[test]
    fn grouping() {
        let mk = |host: &str, paths: &[&str], tags: &[&str]| {
            let mut s = snap_at("2024-01-01T00:00:00Z", tags);
            s.hostname = host.into();
            s.paths = paths.iter().map(|p| p.to_string()).collect();
            s
        };
        let snaps = vec![
            (sid(1), mk("b", &["/x", "/a"], &["t"])),
            (sid(2), mk("a", &["/a", "/x"], &[])),
            (sid(3), mk("b", &["/a", "/x"], &[])),
            (sid(4), mk("a", &["/y"], &["t"])),
        ];
        let by = GroupBy::parse("host,paths").unwrap();
        assert_eq!(by, GroupBy { host: true, paths: true, tags: false });
        let g = group_snapshots(snaps.clone(), by);
        let shape: Vec<(GroupKey, Vec<SnapshotId>)> =
            g.into_iter().map(|(k, v)| (k, v.into_iter().map(|(i, _)| i).collect())).collect();
        let key = |h: &str, p: &[&str]| GroupKey {
            host: Some(h.into()),
            paths: Some(p.iter().map(|s| s.to_string()).collect()),
            tags: None,
        };
        assert_eq!(
            shape,
            [
                (key("a", &["/a", "/x"]), vec![sid(2)]),
                (key("a", &["/y"]), vec![sid(4)]),
                (key("b", &["/a", "/x"]), vec![sid(1), sid(3)])
            ]
        );
        assert_eq!(group_snapshots(snaps.clone(), GroupBy::parse("").unwrap()).len(), 1);
        assert_eq!(group_snapshots(snaps.clone(), GroupBy::parse("tags").unwrap()).len(), 2);
        assert_eq!(group_snapshots(snaps, GroupBy::parse("host, tags").unwrap()).len(), 4);
        assert!(GroupBy::parse("host,user").unwrap_err().to_string().contains("\"user\""));
    }

    #[test]
    fn describe_reads_like_restic() {
        let p = KeepPolicy {
            daily: 7,
            weekly: 4,
            monthly: UNLIMITED,
            within: KeepDuration::parse("30d").unwrap(),
            tags: vec![vec!["release".into()]],
            ..Default::default()
        };
        assert_eq!(p.describe(), "keep 7 daily, 4 weekly, all monthly snapshots, all snapshots with tags [release], all snapshots within 30d of the newest");
    }

    fn arb_policy() -> impl Strategy<Value = KeepPolicy> {
        let count = prop_oneof![Just(0), Just(UNLIMITED), 1..6i32];
        let dur = prop_oneof![
            Just(KeepDuration::default()),
            (0..2u32, 0..14u32, 0..40u32, 0..48u32).prop_map(|(y, m, d, h)| KeepDuration {
                years: y,
                months: m,
                days: d,
                hours: h
            })
        ];
        (
            proptest::collection::vec(count, 6),
            proptest::collection::vec(dur, 6),
            proptest::collection::vec(proptest::collection::vec(prop_oneof![Just("a"), Just("b")], 1..3), 0..2),
        )
            .prop_map(|(c, d, tags)| KeepPolicy {
                last: c[0],
                hourly: c[1],
                daily: c[2],
                weekly: c[3],
                monthly: c[4],
                yearly: c[5],
                within: d[0],
                within_hourly: d[1],
                within_daily: d[2],
                within_weekly: d[3],
                within_monthly: d[4],
                within_yearly: d[5],
                tags: tags.into_iter().map(|l| l.into_iter().map(String::from).collect()).collect(),
            })
    }

    fn arb_group() -> impl Strategy<Value = Vec<(SnapshotId, Snapshot)>> {
        // Times within ~3 years, in a few time zones, some tagged.
        proptest::collection::vec(
            (0..100_000_000i64, prop_oneof![Just(0), Just(3600), Just(-5 * 3600), Just(19800)], 0..4u8),
            0..60,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (secs, tz, tagbits))| {
                    let mut s = snap_at("2020-01-01T00:00:00Z", &[]);
                    s.time = Timestamp { secs: 1_577_836_800 + secs, nanos: 0 };
                    s.tz_offset = tz;
                    if tagbits & 1 != 0 {
                        s.tags.push("a".into());
                    }
                    if tagbits & 2 != 0 {
                        s.tags.push("b".into());
                    }
                    (sid(i as u64), s)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn policies_keep_a_subset_and_respect_counts(p in arb_policy(), g in arb_group()) {
            let ds = apply_policy(&g, &p, now());
            // One decision per input snapshot, each input exactly once.
            let mut seen: Vec<SnapshotId> = ds.iter().map(|d| d.id).collect();
            seen.sort();
            let mut input: Vec<SnapshotId> = g.iter().map(|(i, _)| *i).collect();
            input.sort();
            prop_assert_eq!(seen, input);
            for d in &ds {
                prop_assert_eq!(d.keep, !d.reasons.is_empty());
            }
            // Newest first.
            prop_assert!(ds.windows(2).all(|w| w[0].snapshot.time >= w[1].snapshot.time));
            for (i, (name, _, reason)) in COUNT_RULES.iter().enumerate() {
                let n = p.counts()[i];
                let used = ds.iter().filter(|d| d.reasons.iter().any(|r| r == reason)).count();
                if n >= 0 {
                    prop_assert!(used <= n as usize, "{} kept {} > {}", name, used, n);
                }
                if n != 0 && !g.is_empty() {
                    prop_assert!(ds[0].reasons.iter().any(|r| r == reason), "{} does not keep the newest", name);
                }
            }
            if p.is_empty() {
                prop_assert!(ds.iter().all(|d| d.keep));
            }
            // Every snapshot carrying a keep-tag list is kept.
            for d in &ds {
                if p.tags.iter().any(|l| l.iter().all(|t| d.snapshot.tags.contains(t))) {
                    prop_assert!(d.keep);
                }
            }
        }
    }
}
