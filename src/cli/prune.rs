//! `cairn prune`: delete data no snapshot references.

use std::sync::Arc;

use clap::Args;

use cairn::lock::{LockKind, RepoLock};
use cairn::prune::{MaxUnused, PruneOptions, PruneReport};
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

/// Open the repository, take the exclusive lock, prune.
pub fn run(g: &GlobalOpts, a: &PruneArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    // A dry run only reads: with --no-lock it runs beside anything (restic allows the same).
    let kind = if a.dry_run && g.no_lock { LockKind::Shared } else { LockKind::Exclusive };
    let lock = g.lock(&repo, kind, "prune")?;
    run_locked(g, &repo, lock.as_ref(), &a.max_unused, a.dry_run)
}

/// Prune `repo` under an exclusive lock the caller holds (also used by `forget --prune`).
pub fn run_locked(
    g: &GlobalOpts,
    repo: &Repository,
    lock: Option<&Arc<RepoLock>>,
    max_unused: &str,
    dry_run: bool,
) -> Result<u8, Error> {
    let opts = PruneOptions { max_unused: MaxUnused::parse(max_unused)?, dry_run };
    let check = || lock.map_or(Ok(()), |l| l.check());
    let verbose = !g.quiet && !g.json;
    let progress = |msg: &str| {
        if verbose {
            eprintln!("{msg}");
        }
    };
    let r = cairn::prune::prune(repo, &opts, &check, &progress)?;
    print_report(g, &r, dry_run);
    Ok(EXIT_OK)
}

fn print_report(g: &GlobalOpts, r: &PruneReport, dry_run: bool) {
    if g.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("message_type".into(), "prune".into());
            o.insert("dry_run".into(), dry_run.into());
        }
        out(&v.to_string());
        return;
    }
    if g.quiet {
        return;
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
}
