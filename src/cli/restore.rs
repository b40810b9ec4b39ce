//! `cairn restore`: a snapshot, or part of it, into a target directory.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;

use cairn::restorer::{self, Action, ActionSink, Overwrite, RestoreOptions, RestoreProgress};
use cairn::Error;

use super::progress::{BarState, Ticker};
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
    /// Plan the restore and print what it would do; write nothing (not even the target)
    #[arg(long)]
    dry_run: bool,
    /// What to do with files already in the target: always (replace, but leave a file whose
    /// content already matches), if-changed (as always, taking equal size and mtime as
    /// unchanged), if-newer (replace only with a newer snapshot file), never
    #[arg(long, value_name = "MODE", default_value = "always", value_parser = parse_overwrite)]
    overwrite: Overwrite,
    /// Delete what the target holds below the snapshot's paths and the snapshot does not
    /// (restricted by --include/--exclude); check first with --dry-run -v
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// `--overwrite`'s value.
fn parse_overwrite(s: &str) -> Result<Overwrite, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// One `-v` line of restic's `restore --json`: `{"message_type":"verbose_status",...}`.
#[derive(serde::Serialize)]
struct VerboseStatus<'a> {
    message_type: &'static str,
    action: &'static str,
    item: &'a str,
    size: u64,
}

/// The `-v` listener: each entry's action with its path and size (a JSON line with `--json`).
fn action_printer(json: bool) -> ActionSink {
    Arc::new(move |action: Action, path: &std::path::Path, size: u64| {
        let item = path.display().to_string();
        if json {
            let v = VerboseStatus { message_type: "verbose_status", action: action.name(), item: &item, size };
            if let Ok(line) = serde_json::to_string(&v) {
                out(&line);
            }
        } else {
            out(&format!("{:<9} {item} with size {}", action.name(), human_bytes(size)));
        }
    })
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
        overwrite: a.overwrite,
        delete: a.delete,
        dry_run: a.dry_run,
        actions: (g.verbose > 0 && !g.quiet).then(|| action_printer(g.json)),
    };
    // A spinner while planning, then a bar of bytes written with percent and ETA.
    let ticker = Ticker::start_bar(g.show_progress() && !a.dry_run, move || {
        let files = progress.files.load(Ordering::Relaxed);
        let total = progress
            .planned
            .load(Ordering::Acquire)
            .then(|| (progress.total_bytes.load(Ordering::Relaxed), progress.total_files.load(Ordering::Relaxed)));
        match total {
            Some((bytes, total_files)) => BarState {
                total: Some(bytes),
                done: progress.bytes.load(Ordering::Relaxed),
                message: format!("{files}/{total_files} files"),
            },
            None => BarState { total: None, done: 0, message: "planning the restore".into() },
        }
    });
    let result = restorer::restore_snapshot(&g.ctx(), &lock, &repo, &a.snapshot, &a.filter.filter(), &a.target, &opts);
    drop(ticker);
    let (id, report) = result?;
    if report.dry_run {
        super::metrics::skip();
    } else {
        record_metrics(&report);
    }
    for (path, msg) in &report.errors {
        eprintln!("cairn: {path}: {msg}");
    }
    if g.json {
        out(&serde_json::to_string(&report.summary(&id)).map_err(|e| Error::internal(format!("summary: {e}")))?);
    } else if !g.quiet {
        let mut also = String::new();
        let (skip, delete) = if report.dry_run { ("would skip", "would delete") } else { ("skipped", "deleted") };
        if report.files_skipped > 0 {
            also += &format!(", {skip} {} files ({})", report.files_skipped, human_bytes(report.bytes_skipped));
        }
        if report.files_deleted > 0 || a.delete {
            also += &format!(", {delete} {} entries", report.files_deleted);
        }
        if report.dry_run {
            out(&format!(
                "dry run, nothing written: would restore snapshot {} to {}: {} files, {} directories, {}{also}",
                id.short(),
                a.target.display(),
                report.files,
                report.dirs,
                human_bytes(report.bytes),
            ));
        } else {
            out(&format!(
                "restored snapshot {} to {}: {} files, {} directories, {} in {:.1}s{also}",
                id.short(),
                a.target.display(),
                report.files,
                report.dirs,
                human_bytes(report.bytes),
                report.duration.as_secs_f64()
            ));
        }
    }
    let nothing = report.files == 0 && report.dirs == 0 && report.files_skipped == 0 && report.errors.is_empty();
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

/// The restore's figures as metrics (`cairn_restore_*`).
fn record_metrics(r: &restorer::RestoreReport) {
    use super::metrics::gauge;
    gauge("cairn_restore_files", "Files the last restore wrote (hard links included)", &[], r.files as f64);
    gauge("cairn_restore_bytes", "Content bytes the last restore wrote", &[], r.bytes as f64);
    gauge(
        "cairn_restore_skipped_files",
        "Files the last restore left as they were (--overwrite)",
        &[],
        r.files_skipped as f64,
    );
    gauge("cairn_restore_deleted_files", "Entries the last restore deleted (--delete)", &[], r.files_deleted as f64);
    gauge("cairn_restore_errors", "Entries the last restore could not restore", &[], r.errors.len() as f64);
    gauge(
        "cairn_restore_damaged_files",
        "Files the last restore could not restore because their data is damaged",
        &[],
        r.damaged as f64,
    );
}
