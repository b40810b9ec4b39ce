//! `cairn health`: is every host's backup fresh? A Nagios/Icinga plugin: one status line first
//! (`CAIRN HEALTH OK - ... | perfdata`), a line per check after it, and the plugin exit codes
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN when the repository cannot be read).

use clap::Args;
use serde::Serialize;

use cairn::ops::health::{self, Check, DrillCheck, SizeAnomaly, SizeRule, Status, Thresholds};
use cairn::Error;

use super::{out, parse_duration, FilterArgs, GlobalOpts};

/// Arguments of `health`.
#[derive(Args)]
pub struct HealthArgs {
    /// CRITICAL when the newest snapshot holding a host's backup or a component is older than
    /// this (`26h`, `2d`); the same as --crit
    #[arg(long, value_name = "AGE", conflicts_with = "crit")]
    max_age: Option<String>,
    /// WARNING when older than this
    #[arg(long, value_name = "AGE")]
    warn: Option<String>,
    /// CRITICAL when older than this
    #[arg(long, value_name = "AGE")]
    crit: Option<String>,
    /// Also check this component (a backed-up path or a command's path, e.g.
    /// /postgres/maildb.dump) on every host: CRITICAL where no snapshot holds it (repeatable)
    #[arg(long = "component", value_name = "PATH")]
    components: Vec<String>,
    /// WARNING when the newest snapshot's size (bytes processed, a component's bytes, or
    /// bytes added: only a rise) is off by more than this factor from the median of the
    /// snapshots before it (0: not checked)
    #[arg(long, value_name = "FACTOR", default_value_t = 3.0)]
    size_factor: f64,
    /// The median is taken over this many snapshots before the newest (at least 3); the size
    /// is checked with --max-age, --warn or --crit
    #[arg(long, value_name = "N", default_value_t = 10)]
    size_history: usize,
    /// Differences from the median smaller than this are never a size warning (K, M, G, T)
    #[arg(long, value_name = "SIZE", default_value = "1M")]
    size_min: String,
    /// CRITICAL when a host's newest passing `cairn drill` of a whole snapshot (a restore
    /// rehearsal recorded in the repository, from any host) is older than this (`35d`), or it
    /// has none
    #[arg(long, value_name = "AGE")]
    max_drill_age: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// What `health --json` prints.
#[derive(Serialize)]
struct Report<'a> {
    message_type: &'static str,
    status: Status,
    exit_code: u8,
    checks: &'a [Check],
    size_anomalies: &'a [SizeAnomaly],
    /// With `--max-drill-age`: one per host.
    #[serde(skip_serializing_if = "Option::is_none")]
    drill_checks: Option<&'a [DrillCheck]>,
}

/// Check freshness and print the plugin output; every error is UNKNOWN (exit 3), as plugins
/// report a check that could not be made.
pub fn run(g: &GlobalOpts, a: &HealthArgs) -> Result<u8, Error> {
    match check(g, a) {
        Ok(code) => Ok(code),
        Err(e) => {
            let message = super::error_text(&e);
            if g.json {
                let r = serde_json::json!({"message_type": "health", "status": Status::Unknown, "exit_code": 3, "error": message});
                out(&r.to_string());
            } else {
                out(&format!("CAIRN HEALTH UNKNOWN - {message}"));
            }
            Ok(Status::Unknown.code())
        }
    }
}

/// Seconds of a threshold flag. Errors: not a duration.
fn seconds(flag: &str, v: &Option<String>) -> Result<Option<u64>, Error> {
    v.as_deref()
        .map(|s| parse_duration(s).map(|d| d.as_secs()).map_err(|e| Error::usage(format!("{flag} {s:?}: {e}"))))
        .transpose()
}

fn check(g: &GlobalOpts, a: &HealthArgs) -> Result<u8, Error> {
    let limits = Thresholds {
        warn: seconds("--warn", &a.warn)?,
        crit: seconds("--crit", &a.crit)?.or(seconds("--max-age", &a.max_age)?),
    };
    let max_drill_age = seconds("--max-drill-age", &a.max_drill_age)?;
    let freshness = limits.warn.is_some() || limits.crit.is_some();
    if !freshness && max_drill_age.is_none() {
        return Err(Error::usage(
            "give --max-age AGE (or --warn AGE and/or --crit AGE): the age a backup may reach; and/or --max-drill-age AGE: the age a passing drill may reach",
        ));
    }
    if let (Some(w), Some(c)) = (limits.warn, limits.crit) {
        if w > c {
            return Err(Error::usage("--warn is longer than --crit: a backup would be CRITICAL before it is WARNING"));
        }
    }
    if a.size_history < 3 {
        return Err(Error::usage(format!(
            "--size-history {}: the median needs at least 3 snapshots (--size-factor 0 turns the size check off)",
            a.size_history
        )));
    }
    if !(a.size_factor == 0.0 || a.size_factor > 1.0) {
        return Err(Error::usage(format!(
            "--size-factor {}: give a factor above 1 (or 0: no size check)",
            a.size_factor
        )));
    }
    let rule = SizeRule {
        factor: a.size_factor,
        history: a.size_history,
        min_bytes: cairn::util::parse_size(&a.size_min)
            .ok_or_else(|| Error::usage(format!("--size-min {:?}: not a size (512K, 10M, 1G)", a.size_min)))?,
    };
    // Reading the snapshot list needs no lock: a monitoring host writes nothing.
    let repo = g.open()?;
    let filter = a.filter.filter();
    let snaps = repo.snapshots(&g.ctx(), &filter)?;
    let now = chrono::Utc::now().timestamp();
    let checks = if freshness { health::checks(&snaps, &a.components, now, limits) } else { Vec::new() };
    let anomalies = if freshness && a.size_factor > 0.0 { health::size_anomalies(&snaps, &rule) } else { Vec::new() };
    let drill_checks = match max_drill_age {
        None => None,
        Some(max) => {
            let (records, damaged) = repo.drill_records()?;
            for (id, why) in &damaged {
                eprintln!("cairn: warning: drill record drills/{} is damaged ({why}); it is skipped", id.to_hex());
            }
            let records: Vec<_> = records
                .into_iter()
                .filter(|(_, r)| {
                    filter.matches_fields(&r.snapshot_host, &r.snapshot_tags, |p| {
                        r.components.iter().any(|c| c.path == p)
                    })
                })
                // A drill of part of a snapshot (still listed) is no full rehearsal.
                .filter(|(_, r)| {
                    snaps.iter().find(|(id, _)| *id == r.snapshot).is_none_or(|(_, s)| health::drill_covers(r, s))
                })
                .collect();
            let mut hosts: Vec<String> = snaps.iter().map(|(_, s)| s.hostname.clone()).collect();
            hosts.extend(filter.hosts.iter().cloned());
            hosts.sort();
            hosts.dedup();
            Some(health::drill_checks(&records, &hosts, now, max))
        }
    };
    let drills = drill_checks.as_deref().unwrap_or_default();
    // Each kind of check asked for and finding nothing to check is CRITICAL.
    let fresh_status = if freshness { health::overall(&checks) } else { Status::Ok };
    let drill_status = match &drill_checks {
        Some(d) => d.iter().map(|c| c.status).max().unwrap_or(Status::Critical),
        None => Status::Ok,
    };
    let mut status = fresh_status.max(drill_status);
    if !anomalies.is_empty() {
        status = status.max(Status::Warning);
    }
    if g.json {
        let r = Report {
            message_type: "health",
            status,
            exit_code: status.code(),
            checks: &checks,
            size_anomalies: &anomalies,
            drill_checks: drill_checks.as_deref(),
        };
        super::snapshots::print_json(&r)?;
        return Ok(status.code());
    }
    let mut worst = checks
        .iter()
        .filter(|c| c.status == status)
        .map(label)
        .chain(drills.iter().filter(|c| c.status == status).map(drill_label))
        .collect::<Vec<_>>();
    if status == Status::Warning {
        worst.extend(anomalies.iter().map(|x| format!("{} size", anomaly_label(x))));
    }
    let hosts = checks.iter().filter(|c| c.component.is_none()).count().max(drills.len());
    let summary = if checks.is_empty() && drills.is_empty() {
        "no snapshot matches".to_string()
    } else if status == Status::Ok {
        format!("{hosts} host(s), {} check(s) fresh", checks.len() + drills.len())
    } else {
        format!("{}: {}", status.word().to_lowercase(), worst.join(", "))
    };
    let mut perf: Vec<String> = checks
        .iter()
        .filter_map(|c| {
            let w = limits.warn.map(|w| w.to_string()).unwrap_or_default();
            let cr = limits.crit.map(|c| c.to_string()).unwrap_or_default();
            c.age_seconds.map(|a| format!("'{}'={a}s;{w};{cr}", perf_label(c)))
        })
        .collect();
    if let Some(max) = max_drill_age {
        perf.extend(
            drills.iter().filter_map(|c| c.age_seconds.map(|a| format!("'{}'={a}s;;{max}", sanitize(&drill_label(c))))),
        );
    }
    let perf = if perf.is_empty() { String::new() } else { format!(" | {}", perf.join(" ")) };
    out(&format!("CAIRN HEALTH {} - {summary}{perf}", status.word()));
    for c in &checks {
        let age = c.age_seconds.map_or("in no snapshot".to_string(), |a| format!("{} old", cairn::util::human_age(a)));
        let snap =
            c.snapshot.as_deref().and_then(|s| s.get(..8)).map(|s| format!(" (snapshot {s})")).unwrap_or_default();
        out(&format!("{:<8} {} {age}{snap}", c.status.word(), label(c)));
    }
    for x in &anomalies {
        let what = match x.measure {
            "added" => "added",
            "component" => "size",
            _ => "backed-up size",
        };
        out(&format!(
            "{:<8} {} {what} {} in snapshot {}, median {} over the {} before it",
            Status::Warning.word(),
            anomaly_label(x),
            super::human_bytes(x.bytes),
            x.snapshot.get(..8).unwrap_or(&x.snapshot),
            super::human_bytes(x.median_bytes),
            x.history
        ));
    }
    for c in drills {
        let age = c
            .age_seconds
            .map_or("no passing drill".to_string(), |a| format!("last passed {} ago", cairn::util::human_age(a)));
        let what = match (c.drill.as_deref().and_then(|s| s.get(..8)), c.snapshot.as_deref().and_then(|s| s.get(..8))) {
            (Some(d), Some(s)) => format!(" (drill {d} of snapshot {s}, {:.1}s)", c.drill_seconds.unwrap_or(0.0)),
            _ => String::new(),
        };
        let latest = c.latest_verdict.map(|v| format!("; newest drill {}", v.word())).unwrap_or_default();
        out(&format!("{:<8} {} {age}{what}{latest}", c.status.word(), drill_label(c)));
    }
    Ok(status.code())
}

/// `host` or `host:/component` of a size anomaly.
fn anomaly_label(x: &SizeAnomaly) -> String {
    match &x.component {
        Some(p) => format!("{}:{p}", x.host),
        None => x.host.clone(),
    }
}

/// `drill:host`.
fn drill_label(c: &DrillCheck) -> String {
    format!("drill:{}", c.host)
}

/// `host` or `host:/component`.
fn label(c: &Check) -> String {
    match &c.component {
        Some(p) => format!("{}:{p}", c.host),
        None => c.host.clone(),
    }
}

/// A performance-data label: [`label`] without the characters the format reserves.
fn perf_label(c: &Check) -> String {
    sanitize(&label(c))
}

/// `s` without the characters the performance-data format reserves.
fn sanitize(s: &str) -> String {
    s.chars().map(|ch| if ch == '\'' || ch == '=' || ch.is_control() { '_' } else { ch }).collect()
}
