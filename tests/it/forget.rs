//! Integration tests of `cairn forget`: keep policies checked against an independent model of
//! restic's documented rules (written here, from the restic documentation, "Removing snapshots
//! according to a policy"), removal by id, filters, dry runs, JSON, and errors.
//!
//! Every cairn process runs with TZ=UTC so that the snapshots' recorded time zone, and with it
//! the hour/day/week/month/year buckets, is UTC.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::common::*;
use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};
use serde_json::Value;

/// `cairn -r REPO ARGS` with TZ=UTC.
fn run(repo: &Repo, args: &[&str]) -> Output {
    repo.cmd().env("TZ", "UTC").args(args).run()
}

/// Snapshot ids listed by `snapshots --json`.
fn listed(repo: &Repo) -> BTreeSet<String> {
    let out = repo.cmd().env("TZ", "UTC").args(["--json", "snapshots"]).run().ok();
    out.json().as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
}

/// Back up `src` at `time` (RFC 3339) as `host`, with `tags`; returns the new snapshot's id.
fn backup(repo: &Repo, src: &Path, time: &str, host: &str, tags: &[&str]) -> String {
    let before = listed(repo);
    let mut c = repo.cmd().env("TZ", "UTC").args(["backup", "-q", "--time", time, "--host", host]);
    for t in tags {
        c = c.args(["--tag", t]);
    }
    c.arg(src).run().ok();
    let after = listed(repo);
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "one new snapshot expected");
    new[0].clone()
}

// ---------------------------------------------------------------------------------------------
// The model: restic's documented policy, written independently of src/forget.rs.
// ---------------------------------------------------------------------------------------------

/// One snapshot as the model sees it.
#[derive(Clone, Debug)]
struct MSnap {
    id: String,
    time: DateTime<Utc>,
    host: String,
    paths: Vec<String>,
    tags: Vec<String>,
}

/// A policy for the model; counts: 0 off, -1 unlimited; durations as (years, months, days, hours).
#[derive(Clone, Debug, Default)]
struct MPolicy {
    counts: [i64; 6],
    within: Option<(u32, u32, u32, u32)>,
    within_buckets: [Option<(u32, u32, u32, u32)>; 5],
    tags: Vec<Vec<String>>,
}

/// Names and bucket functions of the count rules: last, hourly, daily, weekly, monthly, yearly.
const COUNT_REASONS: [&str; 6] =
    ["last snapshot", "hourly snapshot", "daily snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot"];
const WITHIN_REASONS: [&str; 5] = ["hourly within", "daily within", "weekly within", "monthly within", "yearly within"];

/// A snapshot's bucket for rule `r` (0 = last: every snapshot its own, 1 = hour ... 5 = year).
/// Times are UTC (the processes ran with TZ=UTC).
fn bucket(r: usize, s: &MSnap) -> String {
    let t = s.time;
    match r {
        0 => s.id.clone(),
        1 => t.format("%Y-%m-%d %H").to_string(),
        2 => t.format("%Y-%m-%d").to_string(),
        3 => format!("{:?}", t.iso_week()),
        4 => format!("{}-{}", t.year(), t.month()),
        _ => t.year().to_string(),
    }
}

fn dur_text(d: (u32, u32, u32, u32)) -> String {
    let mut s = String::new();
    for (n, u) in [(d.0, 'y'), (d.1, 'm'), (d.2, 'd'), (d.3, 'h')] {
        if n > 0 {
            s.push_str(&format!("{n}{u}"));
        }
    }
    s
}

/// `t` minus a duration. The test data avoid days 29-31 at the newest snapshot, where
/// calendar subtraction conventions differ.
fn minus(t: DateTime<Utc>, d: (u32, u32, u32, u32)) -> DateTime<Utc> {
    t.checked_sub_months(Months::new(d.0 * 12 + d.1)).unwrap()
        - TimeDelta::days(d.2 as i64)
        - TimeDelta::hours(d.3 as i64)
}

/// The reasons the model keeps each snapshot of one group for (absent: removed).
///
/// The documentation's rules: `--keep-daily n` keeps, for the last n days that have a
/// snapshot, the most recent snapshot of each day (likewise per hour, ISO week, month, year;
/// `--keep-last n` the n most recent); -1 takes every such bucket; when the group has fewer
/// such buckets than n, the oldest snapshot of the group is kept too. `--keep-within D` keeps
/// every snapshot newer than the group's newest snapshot minus D; `--keep-within-daily D`
/// keeps the most recent snapshot of each day among those; `--keep-tag a,b` keeps snapshots
/// carrying both tags.
fn model_group(group: &[MSnap], p: &MPolicy) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = group.to_vec();
    g.sort_by_key(|s| std::cmp::Reverse(s.time));
    let mut reasons: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |id: &str, why: String| {
        reasons.entry(id.to_string()).or_default().insert(why);
    };
    for (r, &n) in p.counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        // Distinct buckets, newest first, each with its newest snapshot.
        let mut seen: Vec<String> = Vec::new();
        for s in &g {
            let b = bucket(r, s);
            if !seen.contains(&b) {
                seen.push(b);
                if n < 0 || seen.len() as i64 <= n {
                    add(&s.id, COUNT_REASONS[r].to_string());
                }
            }
        }
        if n < 0 || (seen.len() as i64) < n {
            if let Some(oldest) = g.last() {
                add(&oldest.id, COUNT_REASONS[r].to_string());
            }
        }
    }
    let newest = g.iter().map(|s| s.time).max();
    if let (Some(d), Some(newest)) = (p.within, newest) {
        let cut = minus(newest, d);
        for s in g.iter().filter(|s| s.time > cut) {
            add(&s.id, format!("within {}", dur_text(d)));
        }
    }
    for (r, d) in p.within_buckets.iter().enumerate() {
        if let (Some(d), Some(newest)) = (d, newest) {
            let cut = minus(newest, *d);
            let mut seen = BTreeSet::new();
            for s in g.iter().filter(|s| s.time > cut) {
                if seen.insert(bucket(r + 1, s)) {
                    add(&s.id, format!("{} {}", WITHIN_REASONS[r], dur_text(*d)));
                }
            }
        }
    }
    for l in &p.tags {
        for s in g.iter().filter(|s| l.iter().all(|t| s.tags.contains(t))) {
            add(&s.id, format!("has tags [{}]", l.join(", ")));
        }
    }
    reasons
}

/// Group key of the model: host / sorted paths / sorted tags, each only if grouped by.
fn model_key(s: &MSnap, by: &str) -> (Option<String>, Option<Vec<String>>, Option<Vec<String>>) {
    let has = |w: &str| by.split(',').any(|x| x.trim() == w);
    let sorted = |v: &Vec<String>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    (has("host").then(|| s.host.clone()), has("paths").then(|| sorted(&s.paths)), has("tags").then(|| sorted(&s.tags)))
}

/// The model over all snapshots: reasons per kept snapshot, and the groups' members.
fn model(all: &[MSnap], p: &MPolicy, by: &str) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<BTreeSet<String>>) {
    let mut groups: BTreeMap<_, Vec<MSnap>> = BTreeMap::new();
    for s in all {
        groups.entry(model_key(s, by)).or_default().push(s.clone());
    }
    let mut reasons = BTreeMap::new();
    let mut members = BTreeSet::new();
    for g in groups.values() {
        reasons.extend(model_group(g, p));
        members.insert(g.iter().map(|s| s.id.clone()).collect());
    }
    (reasons, members)
}

fn msnaps(v: &[Value]) -> Vec<MSnap> {
    let strs = |x: &Value| -> Vec<String> {
        x.as_array().expect("array").iter().map(|t| t.as_str().expect("string").to_string()).collect()
    };
    v.iter()
        .map(|s| {
            let time = s["time"].as_str().expect("time");
            assert!(time.ends_with('Z'), "snapshot time {time} is not UTC: the test runs cairn with TZ=UTC");
            MSnap {
                id: s["id"].as_str().expect("id").to_string(),
                time: DateTime::parse_from_rfc3339(time).expect("RFC 3339").with_timezone(&Utc),
                host: s["hostname"].as_str().expect("hostname").to_string(),
                paths: strs(&s["paths"]),
                tags: strs(&s["tags"]),
            }
        })
        .collect()
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 400 snapshot specs over about two years: (RFC 3339 time, host, release tag). Irregular:
/// several a day on some days, gaps of days and weeks. The newest snapshot of each host is
/// pinned to the middle of a month.
fn schedule() -> Vec<(String, &'static str, bool)> {
    let mut rng = Rng(0x5eed_f0f6_e7c0_ffee);
    let start = DateTime::parse_from_rfc3339("2023-06-10T00:00:00Z").unwrap().with_timezone(&Utc);
    let mut day = start;
    let mut times = BTreeSet::new();
    while times.len() < 398 {
        let gap = match rng.below(100) {
            0..=54 => 1,
            55..=79 => 2 + rng.below(3),
            80..=93 => 0,
            _ => 7 + rng.below(25),
        };
        day += TimeDelta::days(gap as i64);
        for _ in 0..1 + rng.below(3) {
            let t = day + TimeDelta::seconds(rng.below(86_400) as i64);
            if t < DateTime::parse_from_rfc3339("2025-06-14T00:00:00Z").unwrap().with_timezone(&Utc) {
                times.insert(t);
            }
        }
        if day.year() >= 2026 {
            break;
        }
    }
    let mut v: Vec<(String, &'static str, bool)> = times
        .into_iter()
        .take(398)
        .map(|t| {
            (
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if rng.below(10) < 3 { "beta" } else { "alpha" },
                rng.below(100) < 4,
            )
        })
        .collect();
    v.push(("2025-06-14T18:00:00Z".into(), "beta", false));
    v.push(("2025-06-15T12:00:00Z".into(), "alpha", false));
    v
}

/// A policy's command-line flags and its model.
struct Case {
    flags: Vec<&'static str>,
    group_by: &'static str,
    policy: MPolicy,
}

fn counts(last: i64, hourly: i64, daily: i64, weekly: i64, monthly: i64, yearly: i64) -> MPolicy {
    MPolicy { counts: [last, hourly, daily, weekly, monthly, yearly], ..Default::default() }
}

fn cases() -> Vec<Case> {
    let dflt = "host,paths";
    vec![
        Case {
            flags: vec!["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"],
            group_by: dflt,
            policy: counts(0, 0, 7, 4, 12, 0),
        },
        Case {
            flags: vec!["-d", "7", "-w", "4", "-m", "12", "--group-by", ""],
            group_by: "",
            policy: counts(0, 0, 7, 4, 12, 0),
        },
        Case {
            flags: vec!["--keep-last", "3", "--keep-hourly", "10"],
            group_by: dflt,
            policy: counts(3, 10, 0, 0, 0, 0),
        },
        Case { flags: vec!["-y", "2", "-m", "30"], group_by: dflt, policy: counts(0, 0, 0, 0, 30, 2) },
        Case {
            flags: vec!["--keep-within", "30d"],
            group_by: dflt,
            policy: MPolicy { within: Some((0, 0, 30, 0)), ..Default::default() },
        },
        Case {
            flags: vec!["--keep-within", "1m10d12h", "--group-by", ""],
            group_by: "",
            policy: MPolicy { within: Some((0, 1, 10, 12)), ..Default::default() },
        },
        Case {
            flags: vec!["--keep-within-weekly", "6m"],
            group_by: dflt,
            policy: MPolicy { within_buckets: [None, None, Some((0, 6, 0, 0)), None, None], ..Default::default() },
        },
        Case {
            flags: vec![
                "--keep-within-daily",
                "14d",
                "--keep-within-monthly",
                "1y",
                "--keep-within-hourly",
                "36h",
                "--keep-yearly",
                "1",
            ],
            group_by: dflt,
            policy: MPolicy {
                counts: [0, 0, 0, 0, 0, 1],
                within_buckets: [Some((0, 0, 0, 36)), Some((0, 0, 14, 0)), None, Some((1, 0, 0, 0)), None],
                ..Default::default()
            },
        },
        Case {
            flags: vec!["--keep-tag", "release", "--keep-last", "1"],
            group_by: dflt,
            policy: MPolicy { counts: [1, 0, 0, 0, 0, 0], tags: vec![vec!["release".into()]], ..Default::default() },
        },
        Case { flags: vec!["--keep-monthly", "-1"], group_by: dflt, policy: counts(0, 0, 0, 0, -1, 0) },
        Case {
            flags: vec!["--keep-weekly", "unlimited", "-g", "host"],
            group_by: "host",
            policy: counts(0, 0, 0, -1, 0, 0),
        },
        Case {
            flags: vec!["--keep-last", "2", "--group-by", "tags"],
            group_by: "tags",
            policy: counts(2, 0, 0, 0, 0, 0),
        },
        Case {
            flags: vec!["--keep-daily", "500", "-g", "host,tags"],
            group_by: "host,tags",
            policy: counts(0, 0, 500, 0, 0, 0),
        },
    ]
}

/// Check one `forget --dry-run --json` output against the model.
fn check_case(all: &[MSnap], case: &Case, out: &Value) {
    let what = format!("forget {:?}", case.flags);
    let (want, want_groups) = model(all, &case.policy, case.group_by);
    let groups = out.as_array().unwrap_or_else(|| panic!("{what}: not an array"));
    let ids = |v: &Value| -> Vec<String> {
        v.as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
    };
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut removed = BTreeSet::new();
    let mut got_groups = BTreeSet::new();
    for g in groups {
        let keep = ids(&g["keep"]);
        let remove = ids(&g["remove"]);
        let reasons = g["reasons"].as_array().expect("reasons");
        assert_eq!(reasons.len(), keep.len(), "{what}: one reason entry per kept snapshot");
        for r in reasons {
            let id = r["snapshot"]["id"].as_str().expect("reason snapshot id").to_string();
            assert!(keep.contains(&id), "{what}: reason for a snapshot not kept");
            let m: BTreeSet<String> = r["matches"]
                .as_array()
                .expect("matches")
                .iter()
                .map(|x| x.as_str().expect("str").to_string())
                .collect();
            got.insert(id, m);
        }
        // The group header fields describe every member.
        for id in keep.iter().chain(&remove) {
            let s = all.iter().find(|s| &s.id == id).expect("known snapshot");
            let (h, p, t) = model_key(s, case.group_by);
            assert_eq!(g["host"], Value::from(h.unwrap_or_default()), "{what}: group host");
            assert_eq!(g["paths"], p.map(Value::from).unwrap_or(Value::Null), "{what}: group paths");
            assert_eq!(g["tags"], t.map(Value::from).unwrap_or(Value::Null), "{what}: group tags");
        }
        removed.extend(remove.iter().cloned());
        got_groups.insert(keep.into_iter().chain(remove).collect::<BTreeSet<String>>());
    }
    assert_eq!(got_groups, want_groups, "{what}: groups");
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: kept sets differ: model keeps but cairn removes {missing:?}; cairn keeps but model removes {extra:?}"
    );
    assert_eq!(got, want, "{what}: reasons");
    let all_ids: BTreeSet<String> = all.iter().map(|s| s.id.clone()).collect();
    let want_removed: BTreeSet<String> = all_ids.iter().filter(|i| !want.contains_key(*i)).cloned().collect();
    assert_eq!(removed, want_removed, "{what}: removed set");
}

/// The issue's done-when: 400 snapshots over two years, many policies against the model, then
/// one policy for real.
#[test]
fn policies_match_restics_rules_on_two_years_of_snapshots() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("data/file.txt"), "tiny\n");
    let sched = schedule();
    assert_eq!(sched.len(), 400);
    // Four threads, interleaved, to keep the test short.
    std::thread::scope(|sc| {
        for k in 0..4 {
            let (repo, sched, src) = (&repo, &sched, &src.path);
            sc.spawn(move || {
                for (time, host, release) in sched.iter().skip(k).step_by(4) {
                    // --force: no parent lookup, which would read every snapshot so far.
                    let mut c =
                        repo.cmd().env("TZ", "UTC").args(["backup", "-q", "--force", "--time", time, "--host", host]);
                    if *release {
                        c = c.args(["--tag", "release"]);
                    }
                    c.arg(src).run().ok();
                }
            });
        }
    });
    let listed_json = repo.cmd().env("TZ", "UTC").args(["--json", "snapshots"]).run().ok().json();
    let all = msnaps(listed_json.as_array().expect("array"));
    assert_eq!(all.len(), 400);
    // The data are what the schedule says: two hosts, some releases, times as given.
    let times: BTreeSet<String> =
        all.iter().map(|s| s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).collect();
    assert_eq!(times, sched.iter().map(|s| s.0.clone()).collect::<BTreeSet<_>>());
    let releases = all.iter().filter(|s| s.tags == ["release"]).count();
    assert!((5..40).contains(&releases), "{releases} release snapshots");
    assert!(all.iter().any(|s| s.host == "beta") && all.iter().any(|s| s.host == "alpha"));
    let days: BTreeSet<_> = all.iter().map(|s| s.time.date_naive()).collect();
    assert!(days.len() < 380, "some days have several snapshots");

    for case in cases() {
        let out = run(&repo, &[&["--json", "forget", "--dry-run"][..], &case.flags].concat()).ok();
        check_case(&all, &case, &out.json());
    }
    assert_eq!(listed(&repo).len(), 400, "dry runs removed nothing");

    // The text output of a dry run names the groups and the counts.
    let out = run(&repo, &["forget", "-n", "-d", "7", "-w", "4", "-m", "12"]).ok();
    assert!(out.stdout.contains("snapshots for (host [alpha], paths ["), "{}", out.stdout);
    assert!(out.stdout.contains("daily snapshot"), "{}", out.stdout);
    // As restic's table: one reason per line (a snapshot kept for several has several lines).
    assert!(!out.stdout.contains("snapshot, "), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.trim_start().starts_with("weekly snapshot")), "{}", out.stdout);
    let (want, _) = model(&all, &counts(0, 0, 7, 4, 12, 0), "host,paths");
    assert!(out.stdout.contains(&format!("would remove {} snapshots", 400 - want.len())), "{}", out.stdout);

    // For real.
    let out = run(&repo, &["forget", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12"]).ok();
    assert!(out.stdout.contains(&format!("{} snapshots removed", 400 - want.len())), "{}", out.stdout);
    assert_eq!(listed(&repo), want.keys().cloned().collect::<BTreeSet<_>>());
    assert_eq!(fs::read_dir(repo.path.join("snapshots")).unwrap().count(), want.len());
    // Applying the same policy again removes nothing.
    let again = run(&repo, &["--json", "forget", "-d", "7", "-w", "4", "-m", "12"]).ok().json();
    assert!(again.as_array().unwrap().iter().all(|g| g["remove"].as_array().unwrap().is_empty()));
    assert_eq!(listed(&repo).len(), want.len());
    // The kept snapshots still restore.
    let target = Tmp::new();
    run(&repo, &["restore", "latest", "--target", target.path.to_str().unwrap()]).ok();
    assert_eq!(fs::read(restored(&target.path, &src.path).join("data/file.txt")).unwrap(), b"tiny\n");
}

/// A repository with snapshots of two hosts; returns (repo, source, [(id, host)] oldest first).
fn small_repo(n: usize) -> (Repo, Tmp, Vec<(String, &'static str)>) {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f"), "x");
    let mut v = Vec::new();
    for i in 0..n {
        let host = if i % 2 == 0 { "h1" } else { "h2" };
        let id = backup(&repo, &src.path, &format!("2024-03-{:02}T10:00:00Z", i + 1), host, &[]);
        v.push((id, host));
    }
    (repo, src, v)
}

#[test]
fn forget_by_id_and_prefix_removes_exactly_those() {
    let (repo, _src, snaps) = small_repo(4);
    let all: BTreeSet<String> = snaps.iter().map(|s| s.0.clone()).collect();
    let out = run(&repo, &["forget", &snaps[1].0]).ok();
    assert!(out.stdout.contains(&format!("removed snapshot {}", &snaps[1].0[..8])), "{}", out.stdout);
    let mut want = all.clone();
    want.remove(&snaps[1].0);
    assert_eq!(listed(&repo), want);
    // A short prefix, upper case, and the same snapshot twice.
    let prefix = snaps[2].0[..6].to_ascii_uppercase();
    run(&repo, &["forget", &prefix, &snaps[2].0[..8]]).ok();
    want.remove(&snaps[2].0);
    assert_eq!(listed(&repo), want);
    // --dry-run with ids removes nothing.
    let out = run(&repo, &["forget", "-n", &snaps[0].0]).ok();
    assert!(out.stdout.contains("would remove 1 snapshots"), "{}", out.stdout);
    assert_eq!(listed(&repo), want);
    // --json names what was removed.
    let out = run(&repo, &["--json", "forget", &snaps[0].0[..10]]).ok().json();
    assert_eq!(out[0]["remove"][0]["id"], Value::from(snaps[0].0.clone()));
    want.remove(&snaps[0].0);
    assert_eq!(listed(&repo), want);
}

#[test]
fn unknown_or_ambiguous_ids_remove_nothing() {
    let (repo, src, snaps) = small_repo(2);
    let mut ids: Vec<String> = snaps.iter().map(|s| s.0.clone()).collect();
    // A known id with an unknown one: an error, and nothing removed.
    let unknown = if ids[0].starts_with("ffff") { "0000ffff" } else { "ffff0000" };
    let unknown = if ids.iter().any(|i| i.starts_with(unknown)) { "abcdef0123" } else { unknown };
    let out = run(&repo, &["forget", &ids[0], unknown]).code(1);
    assert!(out.stderr.contains(unknown) && out.stderr.contains("no snapshot matches"), "{}", out.stderr);
    assert_eq!(listed(&repo).len(), 2);
    let out = run(&repo, &["forget", "not-an-id"]).code(1);
    assert!(out.stderr.contains("not-an-id"), "{}", out.stderr);
    // Add snapshots until two ids share their first hex digit (at most 17 by pigeonhole).
    let mut t = 10;
    let shared = loop {
        if let Some(c) = ids.iter().map(|i| &i[..1]).find(|c| ids.iter().filter(|i| i.starts_with(*c)).count() >= 2) {
            break c.to_string();
        }
        ids.push(backup(&repo, &src.path, &format!("2024-04-{t:02}T10:00:00Z"), "h1", &[]));
        t += 1;
    };
    let before = listed(&repo);
    let out = run(&repo, &["forget", &shared]).code(1);
    assert!(out.stderr.contains("ambiguous"), "{}", out.stderr);
    assert_eq!(listed(&repo), before);
    // Ids and a policy together are refused.
    let out = run(&repo, &["forget", &ids[0], "--keep-last", "1"]).code(1);
    assert!(out.stderr.contains("not both"), "{}", out.stderr);
    assert_eq!(listed(&repo), before);
}

#[test]
fn dry_run_removes_nothing() {
    let (repo, _src, _) = small_repo(4);
    let before = raw_state(&repo.path);
    let out = run(&repo, &["forget", "--dry-run", "--keep-last", "1", "--group-by", ""]).ok();
    assert!(out.stdout.contains("would remove 3 snapshots"), "{}", out.stdout);
    let out = run(&repo, &["--json", "forget", "-n", "-l", "1", "-g", ""]).ok().json();
    assert_eq!(out[0]["remove"].as_array().unwrap().len(), 3);
    assert_eq!(raw_state(&repo.path), before, "the repository changed");
}

#[test]
fn host_filter_only_touches_that_host() {
    let (repo, _src, snaps) = small_repo(6);
    run(&repo, &["forget", "--host", "h1", "--keep-last", "1"]).ok();
    // h1: only its newest (2024-03-05) remains; h2: all three.
    let want: BTreeSet<String> =
        snaps.iter().enumerate().filter(|(i, s)| s.1 == "h2" || *i == 4).map(|(_, s)| s.0.clone()).collect();
    assert_eq!(listed(&repo), want);
}

#[test]
fn no_policy_removes_nothing() {
    let (repo, _src, _) = small_repo(2);
    let out = run(&repo, &["forget"]).ok();
    assert!(out.stdout.contains("no policy"), "{}", out.stdout);
    let out = run(&repo, &["--json", "forget"]).ok();
    assert_eq!(out.json(), Value::Array(vec![]));
    // A zero count is no policy either.
    run(&repo, &["forget", "--keep-last", "0"]).ok();
    assert_eq!(listed(&repo).len(), 2);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (repo, _src, _) = small_repo(1);
    for (args, needle) in [
        (&["forget", "--keep-within", "3x"][..], "unknown unit 'x'"),
        (&["forget", "--keep-within-daily", "30"][..], "no unit after 30"),
        (&["forget", "--keep-within", "-1d"][..], "negative"),
        (&["forget", "--keep-daily", "-2"][..], "negative values other than -1"),
        (&["forget", "--keep-daily", "many"][..], "unlimited"),
        (&["forget", "--keep-last", "1", "--group-by", "host,user"][..], "\"user\""),
        (&["forget", "--keep-tag", "a,,b"][..], "empty tag"),
    ] {
        let out = run(&repo, args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(listed(&repo).len(), 1);
}

/// Remote repositories list snapshots through a local cache: a forgotten snapshot is not
/// listed afterwards, whether forget ran through the cache or without it.
#[test]
fn forgotten_snapshots_leave_the_cache() {
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("f"), "cached\n");
    let root = tmp.join("odrepo");
    let cache = tmp.join("cache");
    let od = |args: &[&str]| -> Output {
        cairn()
            .env("TZ", "UTC")
            .arg("-r")
            .arg("opendal:fs")
            .arg("-o")
            .arg(format!("root={}", root.display()))
            .arg("--cache-dir")
            .arg(&cache)
            .password(PASSWORD)
            .args(args)
            .run()
    };
    od(&["init"]).ok();
    for d in 1..=3 {
        od(&["backup", "-q", "--time", &format!("2024-01-{d:02}T00:00:00Z"), src.to_str().unwrap()]).ok();
    }
    let list = |o: Output| -> Vec<String> {
        o.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    };
    let ids = list(od(&["--json", "snapshots"]).ok());
    assert_eq!(ids.len(), 3);
    let cached = |id: &str| walk_names(&cache).contains(id);
    assert!(ids.iter().all(|i| cached(i)), "snapshots are cached");
    // Through the cache.
    od(&["forget", &ids[0]]).ok();
    assert_eq!(list(od(&["--json", "snapshots"]).ok()), ids[1..].to_vec());
    assert!(!cached(&ids[0]), "the forgotten snapshot stays in the cache");
    // Behind the cache's back: the same files as a local repository.
    cairn().env("TZ", "UTC").arg("-r").arg(&root).password(PASSWORD).args(["forget", &ids[1]]).run().ok();
    assert!(cached(&ids[1]));
    assert_eq!(list(od(&["--json", "snapshots"]).ok()), ids[2..].to_vec());
    assert!(!cached(&ids[1]), "listing drops cached snapshots the repository no longer has");
}

/// Names of every file below `root`.
fn walk_names(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}
