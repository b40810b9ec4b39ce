//! `cairn copy`: copy snapshots from another repository into this one (restic's `copy`), or
//! from a profile's repository into its `[copy] to` targets.
//!
//! Two ways to name the repositories:
//!
//! - restic's: `cairn -r TARGET copy --from-repo SOURCE [--from-password-file F |
//!   --from-password-command C]` (or `CAIRN_FROM_REPOSITORY`, `CAIRN_FROM_PASSWORD_FILE`,
//!   `CAIRN_FROM_PASSWORD_COMMAND`, `CAIRN_FROM_PASSWORD`);
//! - a profile's (rustic's copy targets): `cairn -P mail1 copy [--to offsite]` copies from
//!   mail1's repository into each profile its `[copy] to` names (each with its own repository,
//!   password and environment), only those given with `--to`.
//!
//! The snapshots copied are those named (ids, `latest`), else all that the filters select
//! (`--host`, `--tag`, `--path`; with a profile and no filter flag, the profile's `[copy]`
//! filters, by default its own host). The source is read under a shared lock, the target
//! written under an append lock: both go on beside backups. With several targets, a failing
//! one does not stop the others; the exit code is the first failure's.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;

use cairn::ops::copy::{self, CopyOptions, CopyProgress, CopyReport};
use cairn::snapshot::SnapshotFilter;
use cairn::Error;

use super::from_repo::FromRepoArgs;
use super::profile::Applied;
use super::progress::{BarState, Ticker};
use super::{out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `copy`.
#[derive(Args)]
#[command(after_help = "\
Snapshots the target already holds a copy of (same original id, same time, host, paths and \
tags) are skipped, so `copy` can run every night and moves only new snapshots and, of their \
data, only what the target lacks. A target made with `cairn init --copy-chunker-params \
--from-repo SOURCE` shares the source's blob ids and chunk boundaries: blobs move as they \
are, and later backups into the target deduplicate against copied data. Any other target \
gets each blob under its own id (copy reads and re-hashes what it sends).")]
pub struct CopyArgs {
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// With a profile: copy only into this `[copy] to` target (repeatable)
    #[arg(long = "to", value_name = "PROFILE")]
    pub to: Vec<String>,
    /// Leave out snapshots older than the newest copy the target already holds of the same
    /// host and paths (for a target that keeps fewer snapshots than the source: what its
    /// forget removed is not copied again); the default with a profile's `[copy] to`
    #[arg(long)]
    pub skip_older: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Snapshots to copy (ids, `latest`); all the filters select when none is given
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}

/// One copy to do: from the repository of `source` into that of `target`.
struct Leg<'a> {
    source: GlobalOpts,
    target: GlobalOpts,
    /// How messages name the target: the profile's name, else its location.
    name: String,
    filter: SnapshotFilter,
    args: &'a CopyArgs,
    /// [`CopyOptions::skip_older`].
    skip_older: bool,
    /// A profile's copy: an empty selection is an error (the `[copy]` filters match nothing
    /// the backups make), not "nothing to do".
    from_profile: bool,
}

/// Run `copy`. Errors: [`Error::Usage`] without a source (no `--from-repo` and no profile
/// with `[copy] to`); a single copy's errors (with several targets, the first failure's exit
/// code, after every target was tried).
pub fn run(g: &GlobalOpts, a: &CopyArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    let cli_filter = a.filter.filter();
    let no_filter_flags = a.filter.hosts.is_empty() && a.filter.tags.is_empty() && a.filter.paths.is_empty();
    let profile_targets = applied.is_some_and(|p| !p.profile.copy.to.is_empty());
    if profile_targets && a.from.is_given() {
        return Err(Error::usage(
            "the profile names copy targets ([copy] to), so its repository is the source: --from-repo (or \
             CAIRN_FROM_REPOSITORY in the environment) would copy the other way; unset it, or copy without the profile",
        ));
    }
    let legs: Vec<Leg<'_>> = if a.from.is_given() {
        if !a.to.is_empty() {
            return Err(Error::usage("--to names a profile's copy target; with --from-repo the target is -r"));
        }
        let source = a.from.globals(g)?;
        vec![Leg {
            source,
            target: g.clone(),
            name: g.repo.clone(),
            filter: cli_filter,
            args: a,
            skip_older: a.skip_older,
            from_profile: false,
        }]
    } else if let Some(p) = applied {
        let filter = if no_filter_flags { super::copy_targets::source_filter(p) } else { cli_filter };
        super::copy_targets::targets(p, &a.to, g)?
            .into_iter()
            .map(|t| Leg {
                source: g.clone(),
                name: t.name,
                target: t.globals,
                filter: filter.clone(),
                args: a,
                skip_older: true,
                from_profile: true,
            })
            .collect()
    } else {
        return Err(Error::usage(
            "copy needs a source: cairn -r TARGET copy --from-repo SOURCE (or a profile with [copy] to = [\"TARGET\"])",
        ));
    };
    if let [leg] = legs.as_slice() {
        super::metrics::repository(&leg.target.repo);
        return copy_leg(g, leg).map(|_| EXIT_OK).inspect_err(|_| {
            if leg.from_profile {
                eprintln!("cairn: copy into {} ({}) failed:", leg.name, leg.target.repo);
            }
        });
    }
    let mut code = EXIT_OK;
    for leg in &legs {
        if let Err(e) = copy_leg(g, leg) {
            super::print_error(&e);
            eprintln!("copy into {} failed; going on with the other targets", leg.name);
            if code == EXIT_OK {
                code = super::exit_code(&e);
            }
        }
    }
    Ok(code)
}

/// Copy one leg and print what it did.
fn copy_leg(g: &GlobalOpts, leg: &Leg<'_>) -> Result<CopyReport, Error> {
    let src = leg.source.open()?;
    let src_lock = leg.source.read_lock(&src, "copy")?;
    let dst = leg.target.open()?;
    if dst.config().id == src.config().id {
        return Err(Error::usage(format!(
            "the source and the target are the same repository ({}); nothing to copy",
            src.config().id.short()
        )));
    }
    let dst_lock = leg.target.append_lock(&dst, "copy")?;
    let ctx = g.ctx();
    let selected = cairn::snapshot::select(&ctx, &src, &leg.args.snapshots, &leg.filter)?.readable_by_time()?;
    if selected.is_empty() && leg.from_profile {
        return Err(Error::usage(format!(
            "no snapshot of {} matches the copy selection (hosts {:?}, tags {:?}, paths {:?}): nothing can reach \
             {}; check [copy] hosts/tags/paths (or --host/--tag/--path) against [backup]",
            leg.source.repo, leg.filter.hosts, leg.filter.tags, leg.filter.paths, leg.name
        )));
    }
    let progress = Arc::new(CopyProgress::default());
    let opts = CopyOptions {
        readers: leg.source.reader_threads(cairn::backend::ReadWork::Restore)?,
        connections: leg.target.connections()?,
        progress: progress.clone(),
        skip_older: leg.skip_older,
    };
    let bar = {
        let p = progress.clone();
        Ticker::start_bar(g.show_progress(), move || {
            let total = p.bytes_total.load(Ordering::Relaxed);
            BarState {
                total: (total > 0).then_some(total),
                done: p.bytes_done.load(Ordering::Relaxed),
                message: format!(
                    "snapshot {}/{}",
                    p.snapshots_done.load(Ordering::Relaxed),
                    p.snapshots_total.load(Ordering::Relaxed)
                ),
            }
        })
    };
    let result = copy::copy(&ctx, &src, &src_lock, &dst, &dst_lock, selected, &opts);
    drop(bar);
    let report = result?;
    record_metrics(&report, &leg.name);
    if g.json {
        let json = Summary { target: &leg.name, report: &report };
        out(&serde_json::to_string(&json).map_err(|e| Error::internal(format!("cannot encode the summary: {e}")))?);
    } else if !g.quiet {
        for line in text(&report, &leg.name) {
            out(&line);
        }
    }
    Ok(report)
}

/// What `copy --json` prints for each target: the library's summary and the target's name.
#[derive(serde::Serialize)]
struct Summary<'a> {
    /// The target profile's name, or the target repository as given (`-r`).
    target: &'a str,
    #[serde(flatten)]
    report: &'a CopyReport,
}

/// The copy's figures as metrics (`cairn_copy_*`, each labelled `target`: the profile's name
/// or the repository).
fn record_metrics(r: &CopyReport, target: &str) {
    let figures = [
        ("cairn_copy_snapshots_copied", "Snapshots copied into the target by the last copy", r.copied.len() as f64),
        (
            "cairn_copy_snapshots_skipped",
            "Snapshots the target already held a copy of, at the last copy",
            r.skipped.len() as f64,
        ),
        (
            "cairn_copy_snapshots_older",
            "Snapshots left out as older than the newest copy in the target, at the last copy",
            r.older.len() as f64,
        ),
        ("cairn_copy_blobs_read", "Blobs read from the source by the last copy", r.blobs_read as f64),
        (
            "cairn_copy_added_bytes",
            "Bytes stored in the target by the last copy (compressed, encrypted)",
            r.data_added_packed as f64,
        ),
        ("cairn_copy_read_bytes", "Plaintext bytes read from the source by the last copy", r.bytes_read as f64),
    ];
    for (name, help, value) in figures {
        super::metrics::gauge(name, help, &[("target", target)], value);
    }
}

/// What `copy` prints: one line per snapshot, then the figures.
fn text(r: &CopyReport, target: &str) -> Vec<String> {
    let short = |id: &str| id.get(..8).unwrap_or(id).to_string();
    let mut v = Vec::new();
    for s in &r.skipped {
        v.push(format!("skipped snapshot {}: already copied as {}", short(&s.source), short(&s.target)));
    }
    for s in &r.older {
        v.push(format!("left out snapshot {}: older than the newest copy in the target", short(s)));
    }
    for s in &r.copied {
        v.push(format!("copied snapshot {} as {}", short(&s.source), short(&s.target)));
    }
    v.push(format!(
        "{} of {} snapshots copied into {target} ({} already there); {} blobs read ({}), {} new in the target \
         ({} stored)",
        r.copied.len(),
        r.snapshots_selected,
        r.skipped.len(),
        r.blobs_read,
        super::format::human_bytes(r.bytes_read),
        r.data_blobs + r.tree_blobs,
        super::format::human_bytes(r.data_added_packed),
    ));
    if !r.same_blob_ids && !r.copied.is_empty() {
        v.push(
            "the target has its own blob id key: blobs were re-hashed for it (a target made with \
             `init --copy-chunker-params` avoids that, and deduplicates later backups against the copies)"
                .into(),
        );
    }
    v
}
