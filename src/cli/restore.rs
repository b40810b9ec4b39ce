//! `cairn restore`: a snapshot, or part of it, into a target directory.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;

use cairn::restorer::{self, RestoreOptions, RestoreProgress};
use cairn::Error;

use super::progress::Ticker;
use super::{exit_hint, human_bytes, out, FilterArgs, GlobalOpts, EXIT_DAMAGED, EXIT_FATAL, EXIT_OK};

/// Arguments of `restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot: `latest`, an id, or a unique id prefix
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,
    /// Directory to restore into (files land at their full original path below it)
    #[arg(long, short = 't', value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths matching this glob (repeatable)
    #[arg(long = "include", short = 'i', value_name = "GLOB")]
    includes: Vec<String>,
    /// Do not restore paths matching this glob (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read every restored file back and check it against the snapshot
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Restore and print what was done; exit 1 if any entry failed (15 when some data is damaged).
pub fn run(g: &GlobalOpts, a: &RestoreArgs) -> Result<u8, Error> {
    // Said before the repository is opened (a remote one, a password prompt).
    restorer::check_target(&a.target)?;
    let repo = g.open()?;
    let lock = g.read_lock(&repo, "restore")?;
    let threads = g.reader_threads(cairn::backend::ReadWork::Restore)?;
    let progress = Arc::new(RestoreProgress::default());
    let opts = RestoreOptions {
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        verify: a.verify,
        threads,
        progress: progress.clone(),
    };
    let ticker = Ticker::start(g.show_progress(), move || {
        format!(
            "{} files, {} restored",
            progress.files.load(Ordering::Relaxed),
            human_bytes(progress.bytes.load(Ordering::Relaxed))
        )
    });
    let result = restorer::restore_snapshot(&g.ctx(), &lock, &repo, &a.snapshot, &a.filter.filter(), &a.target, &opts);
    drop(ticker);
    let (id, report) = result?;
    for (path, msg) in &report.errors {
        eprintln!("cairn: {path}: {msg}");
    }
    if g.json {
        out(&serde_json::to_string(&report.summary(&id)).map_err(|e| Error::internal(format!("summary: {e}")))?);
    } else if !g.quiet {
        out(&format!(
            "restored snapshot {} to {}: {} files, {} directories, {} in {:.1}s",
            id.short(),
            a.target.display(),
            report.files,
            report.dirs,
            human_bytes(report.bytes),
            report.duration.as_secs_f64()
        ));
    }
    let nothing = report.files == 0 && report.dirs == 0 && report.errors.is_empty();
    if nothing && !a.includes.is_empty() {
        // A mistyped --include (or a dump that failed that night) restores nothing: not a success.
        eprintln!(
            "cairn: nothing in snapshot {} matches --include {}: check the patterns with `cairn ls {} --recursive`",
            id.short(),
            a.includes.join(" --include "),
            id.short()
        );
        return Ok(EXIT_FATAL);
    }
    if report.errors.is_empty() {
        Ok(EXIT_OK)
    } else if report.damaged > 0 {
        eprintln!("cairn: {} entries could not be restored (see above), {} of them because their data is damaged in the repository", report.errors.len(), report.damaged);
        if let Some(h) = exit_hint(EXIT_DAMAGED) {
            eprintln!("cairn: {h}");
        }
        Ok(EXIT_DAMAGED)
    } else {
        eprintln!("cairn: {} entries could not be restored (see above)", report.errors.len());
        Ok(EXIT_FATAL)
    }
}
