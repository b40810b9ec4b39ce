//! `cairn health`: is every host's backup fresh? A Nagios/Icinga plugin: one status line first
//! (`CAIRN HEALTH OK - ... | perfdata`), a line per check after it, and the plugin exit codes
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN when the repository cannot be read).

use clap::Args;
use serde::Serialize;

use cairn::ops::health::{self, Check, Status, Thresholds};
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
    if limits.warn.is_none() && limits.crit.is_none() {
        return Err(Error::usage("give --max-age AGE (or --warn AGE and/or --crit AGE): the age a backup may reach"));
    }
    // Reading the snapshot list needs no lock: a monitoring host writes nothing.
    let repo = g.open()?;
    let snaps = repo.snapshots(&g.ctx(), &a.filter.filter())?;
    let now = chrono::Utc::now().timestamp();
    let checks = health::checks(&snaps, &a.components, now, limits);
    let status = health::overall(&checks);
    if g.json {
        let r = Report { message_type: "health", status, exit_code: status.code(), checks: &checks };
        super::snapshots::print_json(&r)?;
        return Ok(status.code());
    }
    let worst = checks.iter().filter(|c| c.status == status).map(label).collect::<Vec<_>>();
    let hosts = checks.iter().filter(|c| c.component.is_none()).count();
    let summary = if checks.is_empty() {
        "no snapshot matches".to_string()
    } else if status == Status::Ok {
        format!("{hosts} host(s), {} check(s) fresh", checks.len())
    } else {
        format!("{}: {}", status.word().to_lowercase(), worst.join(", "))
    };
    let perf: Vec<String> = checks
        .iter()
        .filter_map(|c| {
            let w = limits.warn.map(|w| w.to_string()).unwrap_or_default();
            let cr = limits.crit.map(|c| c.to_string()).unwrap_or_default();
            c.age_seconds.map(|a| format!("'{}'={a}s;{w};{cr}", perf_label(c)))
        })
        .collect();
    let perf = if perf.is_empty() { String::new() } else { format!(" | {}", perf.join(" ")) };
    out(&format!("CAIRN HEALTH {} - {summary}{perf}", status.word()));
    for c in &checks {
        let age = c.age_seconds.map_or("in no snapshot".to_string(), |a| format!("{} old", cairn::util::human_age(a)));
        let snap =
            c.snapshot.as_deref().and_then(|s| s.get(..8)).map(|s| format!(" (snapshot {s})")).unwrap_or_default();
        out(&format!("{:<8} {} {age}{snap}", c.status.word(), label(c)));
    }
    Ok(status.code())
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
    label(c).chars().map(|ch| if ch == '\'' || ch == '=' { '_' } else { ch }).collect()
}
