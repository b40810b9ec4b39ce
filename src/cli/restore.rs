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

/// Restore and print what was done; exit 1 if any entry failed.
pub fn run(g: &GlobalOpts, a: &RestoreArgs) -> Result<u8, Error> {
    // Said before the repository is opened (a remote one, a password prompt).
    if let Ok(md) = std::fs::metadata(&a.target) {
        if !md.is_dir() {
            return Err(Error::InvalidInput(format!(
                "restore target {} is a file, not a directory: give a directory to restore into (it is created if missing)",
                a.target.display()
            )));
        }
    }
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "restore")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let index = repo.load_index()?;
    // Remote repositories are latency-bound: read as many packs at once as there are
    // connections; a local disk is CPU-bound (0: one thread per CPU).
    let threads = if cairn::backend::is_remote(&g.repo) { g.connections()?.max(4) } else { 0 };
    let opts = RestoreOptions { includes: a.includes.clone(), excludes: a.excludes.clone(), verify: a.verify, threads };
    let progress = Arc::new(RestoreProgress::default());
    let p = progress.clone();
    let ticker = Ticker::start(g.show_progress(), move || {
        format!("{} files, {} restored", p.files.load(Ordering::Relaxed), human_bytes(p.bytes.load(Ordering::Relaxed)))
    });
    let started = std::time::Instant::now();
    let result = restorer::restore(&repo, &index, &snap.tree, &a.target, &opts, &progress);
    drop(ticker);
    let report = result?;
    for (path, msg) in &report.errors {
        eprintln!("cairn: {path}: {msg}");
    }
    if g.json {
        out(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": id.to_hex(),
            "files_restored": report.files,
            "dirs_restored": report.dirs,
            "bytes_restored": report.bytes,
            "errors": report.errors.len(),
            "duration_seconds": started.elapsed().as_secs_f64(),
        })
        .to_string());
    } else if !g.quiet {
        out(&format!(
            "restored snapshot {} to {}: {} files, {} directories, {} in {:.1}s",
            id.short(),
            a.target.display(),
            report.files,
            report.dirs,
            human_bytes(report.bytes),
            started.elapsed().as_secs_f64()
        ));
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
