//! `cairn drill`: a timed restore rehearsal of a snapshot (issue 15): every component restored
//! into a scratch directory with every byte verified, each component's drill command run on
//! it, timed against `--rto`, cleaned up, and recorded in the repository (see
//! [`cairn::ops::drill`]).
//!
//! Exit codes: 0 passed; 8 every component passed but the drill took longer than `--rto`
//! ([`super::EXIT_RTO_EXCEEDED`]); 1 some component failed; 15 some component failed because
//! stored data is damaged. A failure wins over the RTO: a drill that did not recover
//! everything proved no recovery time (the JSON still says `rto_exceeded`).

use std::path::PathBuf;

use clap::Args;

use cairn::ops::drill::{self, DrillCommand, DrillOptions, DrillReport, DrillVerdict};
use cairn::Error;

use super::profile::Applied;
use super::{exit_hint, human_bytes, out, parse_duration, FilterArgs, GlobalOpts};
use super::{EXIT_DAMAGED, EXIT_FATAL, EXIT_OK, EXIT_RTO_EXCEEDED};

/// Arguments of `drill`.
#[derive(Args)]
pub struct DrillArgs {
    /// Snapshot: `latest`, an id, or a unique id prefix
    #[arg(value_name = "SNAPSHOT", default_value = "latest")]
    snapshot: String,
    /// Drill only this component (a backed-up path or a command's path, e.g.
    /// /postgres/maildb.dump; repeatable) [default: all of the snapshot's]
    #[arg(long = "component", value_name = "PATH")]
    components: Vec<String>,
    /// Run CMD on the restored component PATH (no shell unless CMD runs one; repeatable):
    /// CAIRN_DRILL_FILE, CAIRN_DRILL_DIR, CAIRN_DRILL_COMPONENT and CAIRN_SNAPSHOT are set, the
    /// restored file is on its standard input; replaces the profile's `drill` keys
    #[arg(long = "drill-command", value_name = "PATH=CMD")]
    drill_commands: Vec<String>,
    /// Terminate a drill command that runs longer than this (`30m`, `2h`) and fail its
    /// component [default: 1h]
    #[arg(long, value_name = "DURATION")]
    command_timeout: Option<String>,
    /// Recovery time objective: exit 8 when the whole drill takes longer (`30m`, `1h`)
    #[arg(long, value_name = "DURATION")]
    rto: Option<String>,
    /// Restore into this directory (empty or missing) instead of a temporary one
    #[arg(long, short = 't', value_name = "DIR")]
    target: Option<PathBuf>,
    /// Keep the restored files (and print where they are)
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// A duration flag. Errors: [`Error::Usage`] naming the flag.
fn duration(flag: &str, v: &Option<String>) -> Result<Option<std::time::Duration>, Error> {
    v.as_deref().map(|s| parse_duration(s).map_err(|e| Error::usage(format!("{flag} {s:?}: {e}")))).transpose()
}

/// `--drill-command PATH=CMD`. Errors: [`Error::Usage`] naming the flag.
fn command_flag(s: &str) -> Result<DrillCommand, Error> {
    let bad = |why: &str| Error::usage(format!("--drill-command {s:?}: {why}"));
    let (path, cmd) =
        s.split_once('=').ok_or_else(|| bad("expected PATH=CMD (/postgres/db.dump=\"pg_restore --list\")"))?;
    if !path.starts_with('/') {
        return Err(bad("PATH must be the component's absolute path in the snapshot"));
    }
    let words = shlex::split(cmd).ok_or_else(|| bad("unbalanced quotes or a trailing backslash in CMD"))?;
    if words.is_empty() {
        return Err(bad("no command after `=`"));
    }
    Ok(DrillCommand { path: path.to_string(), argv: words.into_iter().map(Into::into).collect() })
}

/// The drill commands: the `--drill-command` flags, else the profile's `[[backup.command]]`
/// `drill` keys.
fn commands(a: &DrillArgs, applied: Option<&Applied>) -> Result<Vec<DrillCommand>, Error> {
    if !a.drill_commands.is_empty() {
        return a.drill_commands.iter().map(|c| command_flag(c)).collect();
    }
    let Some(applied) = applied else { return Ok(Vec::new()) };
    applied
        .profile
        .backup
        .command
        .iter()
        .filter_map(|c| c.drill.as_ref().map(|d| (c, d)))
        .map(|(c, d)| {
            let argv = d.argv().map_err(|why| {
                Error::usage(format!("{}: [[backup.command]] {} drill: {why}", applied.file.display(), c.path))
            })?;
            Ok(DrillCommand { path: c.path.clone(), argv: argv.into_iter().map(Into::into).collect() })
        })
        .collect()
}

/// Run the drill and print its report; the exit code says how it went (module documentation).
pub fn run(g: &GlobalOpts, a: &DrillArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    let mut filter = a.filter.filter();
    if let Some(p) = applied {
        // A profile's drill is of its own host's snapshots (a repository may hold many hosts)
        // that hold its paths: not a stream or another path backed up by hand with it.
        if filter.hosts.is_empty() {
            filter.hosts.push(p.profile.backup.host.clone().unwrap_or_else(cairn::util::hostname));
        }
        if filter.paths.is_empty() {
            for path in p.profile.backup.paths.iter().flatten() {
                let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
                filter.paths.push(abs.to_string_lossy().into_owned());
            }
        }
    }
    let mut opts = DrillOptions {
        snapshot: a.snapshot.clone(),
        filter,
        components: a.components.clone(),
        commands: commands(a, applied)?,
        target: a.target.clone(),
        keep: a.keep,
        rto: duration("--rto", &a.rto)?,
        command_timeout: duration("--command-timeout", &a.command_timeout)?,
        threads: 0,
    };
    if opts.command_timeout.is_some_and(|t| t.is_zero()) {
        return Err(Error::usage("--command-timeout must be longer than zero"));
    }
    if let Some(t) = &opts.target {
        // Said before the repository is opened.
        cairn::restorer::check_target(t)?;
    }
    let repo = g.open()?;
    opts.threads = g.reader_threads(cairn::backend::ReadWork::Restore)?;
    // An append lock: the drill adds its record.
    let lock = g.append_lock(&repo, "drill")?;
    let report = drill::drill(&g.ctx(), &lock, &repo, &opts)?;
    record_metrics(&report);
    if g.json {
        super::snapshots::print_json(&report)?;
    } else {
        print_text(g, &report);
    }
    Ok(exit_code(&report))
}

/// The exit code of a drill that ran to its end.
fn exit_code(r: &DrillReport) -> u8 {
    match r.verdict {
        DrillVerdict::Passed => EXIT_OK,
        DrillVerdict::RtoExceeded => EXIT_RTO_EXCEEDED,
        DrillVerdict::Failed if r.damaged => EXIT_DAMAGED,
        DrillVerdict::Failed => EXIT_FATAL,
    }
}

fn print_text(g: &GlobalOpts, r: &DrillReport) {
    let short = r.snapshot_id.get(..8).unwrap_or(&r.snapshot_id);
    if !g.quiet {
        out(&format!(
            "drill of snapshot {short} (host {}, taken {}):",
            r.snapshot_host,
            super::local_time(cairn::tree::Timestamp { secs: r.snapshot_time, nanos: 0 })
        ));
    }
    for c in &r.components {
        let state = if c.ok { "ok" } else { "FAILED" };
        let msg = if c.message.is_empty() { String::new() } else { format!(": {}", c.message) };
        out(&format!(
            "  {:<6} {} {} in {:.1}s (restore and verify {:.1}s, drill command {:.1}s){msg}",
            state,
            c.path,
            human_bytes(c.bytes),
            c.seconds,
            c.restore_seconds,
            c.command_seconds
        ));
        if g.verbose > 0 && !c.output.is_empty() {
            for line in c.output.lines() {
                out(&format!("         | {line}"));
            }
        }
    }
    let rto = match r.rto_seconds {
        Some(rto) if r.rto_exceeded => format!(", OVER the RTO of {rto:.0}s"),
        Some(rto) => format!(", within the RTO of {rto:.0}s"),
        None => String::new(),
    };
    let record = r.record_id.get(..8).unwrap_or(&r.record_id);
    out(&format!(
        "drill {}: {} of {} component(s) failed, {:.1}s in total{rto} (drill record {record})",
        r.verdict.word().replace('_', " ").to_uppercase(),
        r.failed,
        r.components.len(),
        r.total_seconds
    ));
    if r.kept {
        out(&format!("restored files kept in {}", r.target.display()));
    }
    if r.damaged {
        if let Some(h) = exit_hint(EXIT_DAMAGED) {
            eprintln!("cairn: {h}");
        }
    }
}

/// The drill's figures as metrics (`cairn_drill_*`; each component its own series).
fn record_metrics(r: &DrillReport) {
    use super::metrics::gauge;
    super::metrics::host(&r.snapshot_host);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge(
        "cairn_drill_duration_seconds",
        "Wall time of the last drill's restores, verification and drill commands (what the RTO is compared with)",
        &[],
        r.total_seconds,
    );
    if let Some(rto) = r.rto_seconds {
        gauge("cairn_drill_rto_seconds", "The recovery time objective the last drill was held to", &[], rto);
    }
    gauge("cairn_drill_rto_exceeded", "1 when the last drill took longer than its RTO", &[], flag(r.rto_exceeded));
    gauge(
        "cairn_drill_failed_components",
        "Components the last drill could not restore, verify or load",
        &[],
        r.failed as f64,
    );
    gauge(
        "cairn_drill_snapshot_timestamp_seconds",
        "When the snapshot the last drill restored was taken (Unix time)",
        &[],
        r.snapshot_time as f64,
    );
    for c in &r.components {
        let l = [("component", c.path.as_str())];
        gauge(
            "cairn_drill_component_success",
            "1 when the component was restored, verified and its drill command passed in the last drill",
            &l,
            flag(c.ok),
        );
        gauge(
            "cairn_drill_component_seconds",
            "Wall time of the component in the last drill (restore, verification, drill command)",
            &l,
            c.seconds,
        );
        gauge("cairn_drill_component_bytes", "Bytes of the component the last drill restored", &l, c.bytes as f64);
    }
}
