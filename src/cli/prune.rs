//! `cairn prune`: delete data no snapshot references.

use clap::Args;
use serde::Serialize;

use cairn::context::{Progress, Warning};
use cairn::lock::{ExclusiveLock, ReadLock};
use cairn::ops::prune::{self, MaxUnused, PruneOptions, PruneReport};
use cairn::{Error, Repository};

use super::{human_bytes, out, GlobalOpts, EXIT_OK};

/// Arguments of `prune`.
#[derive(Args, Clone)]
pub struct PruneArgs {
    /// Tolerate this much unused data in kept packs: a percentage of the repository (5%), a
    /// size (200M, 1G), or `unlimited` (only delete packs with nothing used)
    #[arg(long, value_name = "LIMIT", default_value = "5%")]
    pub max_unused: String,
    /// Only show what would be deleted and repacked
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// The lock prune runs under: exclusive, or only permission to read for a dry run under
/// `--no-lock` (restic allows the same).
pub enum PruneLock<'a> {
    /// Prune for real (or a dry run under an exclusive lock).
    Exclusive(&'a ExclusiveLock),
    /// A dry run only.
    Read(&'a ReadLock),
}

/// Open the repository, take the exclusive lock, prune.
pub fn run(g: &GlobalOpts, a: &PruneArgs) -> Result<u8, Error> {
    let opts = options(&a.max_unused, a.dry_run)?;
    let repo = g.open()?;
    // A dry run only reads: with --no-lock it runs beside anything (restic allows the same).
    if a.dry_run && g.no_lock {
        let lock = g.read_lock(&repo, "prune")?;
        return run_locked(g, &repo, PruneLock::Read(&lock), &opts);
    }
    let lock = g.exclusive_lock(&repo, "prune")?;
    run_locked(g, &repo, PruneLock::Exclusive(&lock), &opts)
}

/// Prune options from the command line's `--max-unused` and `--dry-run`.
/// Errors: [`Error::Usage`] naming the flag.
pub fn options(max_unused: &str, dry_run: bool) -> Result<PruneOptions, Error> {
    // The library names the setting; the flag is named here.
    let max_unused = MaxUnused::parse(max_unused)
        .map_err(|e| Error::usage(e.to_string().replacen("limit of unused data", "--max-unused", 1)))?;
    Ok(PruneOptions { max_unused, dry_run })
}

/// Phases printed to stderr, one line each (not under `--quiet` or `--json`).
struct Lines;

impl Progress for Lines {
    fn phase(&self, what: &str) {
        eprintln!("{what}");
    }

    fn warn(&self, warning: &Warning<'_>) {
        super::print_warning(warning)
    }
}

/// Prune `repo` under a lock the caller holds (also used by `forget --prune`), and print the
/// report.
pub fn run_locked(g: &GlobalOpts, repo: &Repository, lock: PruneLock<'_>, opts: &PruneOptions) -> Result<u8, Error> {
    let mut ctx = g.ctx();
    if !g.quiet && !g.json {
        ctx = ctx.with_progress(std::sync::Arc::new(Lines));
    }
    let r = match lock {
        PruneLock::Exclusive(l) => prune::prune(&ctx, l, repo, opts),
        PruneLock::Read(l) => prune::plan(&ctx, l, repo, opts),
    }
    .map_err(|e| match e {
        // Prune refuses when it cannot tell used data from unused data: check tells why.
        // (Not when a damaged snapshot file must be forgotten first: the message says so.)
        Error::Refused(m) if !m.contains("`cairn ") && !m.contains("; forget snapshot ") => {
            Error::Refused(format!("{m}; run `cairn check`"))
        }
        Error::Corrupt { object, detail } => Error::Corrupt { object, detail: format!("{detail}, run `cairn check`") },
        e => e,
    })?;
    if opts.dry_run {
        super::metrics::skip();
    } else {
        record_metrics(&r);
    }
    print_report(g, &r, opts.dry_run)?;
    Ok(EXIT_OK)
}

/// `prune --json`: the report with its message type and whether it was a dry run.
#[derive(Serialize)]
struct Summary<'a> {
    message_type: &'static str,
    dry_run: bool,
    #[serde(flatten)]
    report: &'a PruneReport,
}

fn print_report(g: &GlobalOpts, r: &PruneReport, dry_run: bool) -> Result<(), Error> {
    if g.json {
        let summary = Summary { message_type: "prune", dry_run, report: r };
        // Through serde_json::Value: the keys sorted, as prune has always printed them.
        return super::snapshots::print_json(&summary);
    }
    if g.quiet {
        return Ok(());
    }
    let would = if dry_run { "would " } else { "" };
    out(&format!("{} snapshots, {} blobs in use ({})", r.snapshots, r.used_blobs, human_bytes(r.used_bytes)));
    out(&format!("unused: {} blobs ({})", r.unused_blobs, human_bytes(r.unused_bytes)));
    out(&format!(
        "{would}delete {} packs with nothing in use and {} packs in no index",
        r.packs_deleted, r.packs_unindexed_deleted
    ));
    out(&format!(
        "{would}repack {} packs: {} blobs ({}) into {} new packs",
        r.packs_repacked,
        r.blobs_repacked,
        human_bytes(r.bytes_repacked),
        r.packs_written
    ));
    out(&format!("unused data left in kept packs: {}", human_bytes(r.unused_bytes_kept)));
    if r.temporaries_removed > 0 {
        out(&format!(
            "removed {} temporary files left by killed writers ({})",
            r.temporaries_removed,
            human_bytes(r.temporary_bytes_removed)
        ));
    }
    out(&format!(
        "packs: {} ({}) before, {} ({}) {}",
        r.packs_before,
        human_bytes(r.bytes_before),
        r.packs_after,
        human_bytes(r.bytes_after),
        if dry_run { "after, as planned" } else { "after" }
    ));
    if dry_run {
        out("dry run: nothing was changed");
    }
    Ok(())
}

/// Prune's figures as metrics (`cairn_prune_*`, and the repository's size after it).
fn record_metrics(r: &PruneReport) {
    use super::metrics::gauge;
    gauge(
        "cairn_prune_reclaimed_bytes",
        "Bytes of packs the last prune freed",
        &[],
        r.bytes_before.saturating_sub(r.bytes_after) as f64,
    );
    gauge(
        "cairn_prune_deleted_packs",
        "Packs the last prune deleted (repacked ones included)",
        &[],
        (r.packs_deleted + r.packs_unindexed_deleted + r.packs_repacked) as f64,
    );
    gauge(
        "cairn_prune_repacked_bytes",
        "Bytes of blobs the last prune copied into new packs",
        &[],
        r.bytes_repacked as f64,
    );
    gauge(
        "cairn_prune_unused_bytes",
        "Bytes no snapshot uses left in kept packs after the last prune",
        &[],
        r.unused_bytes_kept as f64,
    );
    gauge("cairn_repository_size_bytes", super::metrics::REPOSITORY_SIZE_HELP, &[], r.bytes_after as f64);
    gauge("cairn_repository_packs", super::metrics::REPOSITORY_PACKS_HELP, &[], r.packs_after as f64);
    gauge("cairn_snapshots", super::metrics::SNAPSHOTS_HELP, &[], r.snapshots as f64);
}
