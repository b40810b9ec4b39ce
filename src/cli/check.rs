//! `cairn check`: verify the repository's structure and, with `--read-data` or
//! `--read-data-subset`, its data (restic's `check`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use clap::Args;

use cairn::ops::check::{self, CheckOptions, CheckProgress, CheckReport, Event, Phase, Subset};
use cairn::Error;

use super::progress::Ticker;
use super::{human_bytes, out, GlobalOpts, EXIT_FATAL, EXIT_OK};

/// Arguments of `check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Also download every pack and verify every blob in it
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Download and verify only a subset of the packs: `N%` (a random sample, different each
    /// run) or `n/t` (group n of t fixed groups; the t groups together cover every pack)
    #[arg(long, value_name = "SUBSET", value_parser = parse_subset)]
    read_data_subset: Option<Subset>,
}

fn parse_subset(s: &str) -> Result<Subset, String> {
    s.parse()
}

fn phase_line(p: Phase, subset: Option<Subset>) -> String {
    match p {
        Phase::LoadIndexes => "load indexes".into(),
        Phase::CheckPacks => "check all packs".into(),
        Phase::CheckSnapshots => "check snapshots, trees and blobs".into(),
        Phase::ReadData => match subset {
            Some(Subset::Percent(pct)) => format!("read {pct}% of the data packs (a random sample)"),
            Some(Subset::Group { n, t }) => format!("read group {n} of {t} of the data packs"),
            _ => "read all data".into(),
        },
        Phase::FindAffected => "find the snapshots and files the damage affects".into(),
    }
}

/// Run the check and print each problem, what it affects, and a verdict.
/// Exit code 0 when no error was found (hints allowed), 1 otherwise.
pub fn run(g: &GlobalOpts, a: &CheckArgs) -> Result<u8, Error> {
    let subset = if a.read_data { Some(Subset::All) } else { a.read_data_subset };
    let repo = g.open_uncached()?;
    let lock = g.read_lock(&repo, "check")?;
    let threads = g.reader_threads(cairn::backend::ReadWork::Check)?;
    let opts = CheckOptions { read_data: subset, threads };
    let progress = Arc::new(CheckProgress::default());
    let current = Arc::new(Mutex::new(String::new()));
    let (p, c) = (progress.clone(), current.clone());
    let ticker = Ticker::start(g.show_progress(), move || {
        let phase = c.lock().map(|s| s.clone()).unwrap_or_default();
        format!(
            "{phase}: {} / {} packs, {} trees, {} read",
            p.packs_done.load(Ordering::Relaxed),
            p.packs_total.load(Ordering::Relaxed),
            p.trees.load(Ordering::Relaxed),
            human_bytes(p.bytes_read.load(Ordering::Relaxed))
        )
    });
    let announce = |e: Event<'_>| match e {
        Event::Phase(ph) => {
            let line = phase_line(ph, subset);
            if !g.quiet && !g.json {
                out(&line);
            }
            if let Ok(mut s) = current.lock() {
                *s = line;
            }
        }
        Event::Problem(p) if !g.json => out(&format!("{}: {p}", if p.is_error() { "error" } else { "hint" })),
        Event::Problem(_) => {}
        Event::DataRead { selected, read, bytes } if !g.json && !g.quiet => {
            out(&format!("read {read} of {selected} selected packs ({})", human_bytes(bytes)));
        }
        Event::DataRead { .. } => {}
    };
    let result = check::check(&g.ctx(), &lock, &repo, &opts, &progress, &announce);
    drop(ticker);
    let report = result?;
    super::metrics::gauge("cairn_check_errors", "Errors the last check found (0: none)", &[], report.errors() as f64);
    super::metrics::gauge("cairn_snapshots", super::metrics::SNAPSHOTS_HELP, &[], report.snapshots as f64);
    if g.json {
        super::snapshots::print_json(&report)?;
    } else {
        print_report(&report, g.quiet);
    }
    if report.is_ok() {
        Ok(EXIT_OK)
    } else {
        eprintln!("cairn: repository contains errors");
        Ok(EXIT_FATAL)
    }
}

fn print_report(r: &CheckReport, quiet: bool) {
    if !r.affected.is_empty() {
        let snaps: std::collections::BTreeSet<_> = r.affected.iter().map(|a| a.snapshot).collect();
        out(&format!("the damage affects {} path(s) in {} snapshot(s):", r.affected.len(), snaps.len()));
        for a in &r.affected {
            out(&format!(
                "  snapshot {} ({}): {}",
                a.snapshot.short(),
                a.time.to_utc().format("%Y-%m-%d %H:%M:%S UTC"),
                a.path
            ));
        }
    }
    let errors = r.errors();
    if errors == 0 {
        if !quiet {
            out(&format!(
                "{} index files, {} packs, {} blobs, {} snapshots, {} trees checked: no errors were found",
                r.index_files, r.packs, r.blobs, r.snapshots, r.trees
            ));
        }
    } else {
        out(&format!(
            "{errors} error(s) found in {} index files, {} packs, {} snapshots",
            r.index_files, r.packs, r.snapshots
        ));
    }
}
