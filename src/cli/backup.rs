//! `cairn backup`: paths or standard input into a new snapshot.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;

use cairn::archiver::{self, BackupOptions, BackupSummary, Input, InputReport, ParentChoice, Permit, Progress};
use cairn::patterns::read_pattern_file;
use cairn::snapshot::ComponentOutcome;
use cairn::stream::StreamFailure;
use cairn::Error;

use super::metrics;
use super::profile::Applied;
use super::progress::Ticker;
use super::{human_bytes, out, GlobalOpts, EXIT_OK, EXIT_PARTIAL};

/// Arguments of `backup`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("stream").args(["stdin", "stdin_from_command"]).multiple(false))]
pub struct BackupArgs {
    /// Files and directories to back up; with --stdin-from-command, the command and its
    /// arguments (after `--`)
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Read the content to back up from standard input
    #[arg(long, conflicts_with = "paths")]
    stdin: bool,
    /// Run the command given after `--` (no shell) and back up its standard output; no
    /// snapshot is written if it fails (non-zero exit, killed by a signal). The repository is
    /// opened and locked before the command starts
    #[arg(long)]
    stdin_from_command: bool,
    /// File name to store the stream under (--stdin, --stdin-from-command) [default: stdin]
    #[arg(long, value_name = "NAME", requires = "stream")]
    stdin_filename: Option<String>,
    /// Store an empty stream; without it a stream that ends before its first byte is refused
    /// (its producer most likely failed)
    #[arg(long, requires = "stream")]
    allow_empty: bool,
    /// Host name to record (default: this machine's)
    #[arg(long, short = 'H', value_name = "HOST")]
    host: Option<String>,
    /// Tag for the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Exclude paths matching this glob (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read exclude globs from this file, one per line (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Back up the paths listed in FILE too: one per line, blanks around it removed, empty lines
    /// and lines starting with # skipped, glob patterns (*, ?, [...]) expanded; a pattern that
    /// matches nothing is kept as written and reported as unreadable (exit 3). `-` reads
    /// standard input (repeatable)
    #[arg(long = "files-from", value_name = "FILE", conflicts_with = "stream")]
    files_from: Vec<PathBuf>,
    /// Back up the paths listed in FILE too, one per line, taken exactly as written (no
    /// trimming, comments or globs; empty lines skipped) (repeatable)
    #[arg(long = "files-from-verbatim", value_name = "FILE", conflicts_with = "stream")]
    files_from_verbatim: Vec<PathBuf>,
    /// Back up the paths listed in FILE too, separated by NUL bytes (`find -print0`)
    /// (repeatable)
    #[arg(long = "files-from-raw", value_name = "FILE", conflicts_with = "stream")]
    files_from_raw: Vec<PathBuf>,
    /// Leave out the contents of directories holding a CACHEDIR.TAG file that starts with the
    /// cache directory signature (https://bford.info/cachedir/); the directory and its
    /// CACHEDIR.TAG are kept
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out the contents of directories holding a file named FILE (with :HEADER, only if
    /// that file starts with HEADER); the directory and FILE are kept (repeatable)
    #[arg(long = "exclude-if-present", value_name = "FILE[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out regular files larger than SIZE (bytes, or with a unit K, M, G, T: powers of
    /// 1024; `512K`, `2G`); they are not counted as errors
    #[arg(long, value_name = "SIZE")]
    exclude_larger_than: Option<String>,
    /// Write no snapshot when nothing changed: the new snapshot's tree, host, paths and tags
    /// equal those of its parent (never with --force, which has no parent); exit 0
    #[arg(long)]
    skip_if_unchanged: bool,
    /// Do not cross file system boundaries below the given paths
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Do not write anything; show what would be done (commands given by --command or the
    /// profile still run and their output is read, not stored)
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Snapshot time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local time)
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// Compare with this snapshot instead of the latest of the same host and paths
    #[arg(long, value_name = "SNAPSHOT")]
    parent: Option<String>,
    /// Read every file, trusting no parent snapshot, and read back every stored blob the backup
    /// reuses (a damaged one is stored again)
    #[arg(long, conflicts_with = "parent")]
    force: bool,
    /// Do not compare ctimes to decide a file is unchanged
    #[arg(long)]
    ignore_ctime: bool,
    /// Do not compare inode numbers to decide a file is unchanged
    #[arg(long)]
    ignore_inode: bool,
    /// Compression: auto (the repository's level), off, fastest, max, or a zstd level 1-22
    #[arg(long, value_name = "MODE", default_value = "auto")]
    compression: String,
    /// Also run CMD (split into words as a shell would, but no shell is run) and store its
    /// standard output as the file PATH in the same snapshot (repeatable; at most 3 run at
    /// once, while the paths are read). A command that fails (non-zero exit, signal, timeout,
    /// no output) is left out of the snapshot, recorded as failed, and the backup exits 3;
    /// replaces a profile's [[backup.command]] list
    #[arg(long = "command", value_name = "PATH=CMD", conflicts_with = "stream")]
    commands: Vec<String>,
    /// Terminate each --command that runs longer than this (`90s`, `30m`, `2h`) and fail it
    #[arg(long, value_name = "DURATION", requires = "commands")]
    command_timeout: Option<String>,
}

/// `--command PATH=CMD` as a command component. Errors: [`Error::Usage`] naming the flag.
fn command_flag(s: &str, timeout: Option<std::time::Duration>) -> Result<archiver::CommandSource, Error> {
    let bad = |why: &str| Error::usage(format!("--command {s:?}: {why}"));
    let (path, cmd) =
        s.split_once('=').ok_or_else(|| bad("expected PATH=CMD (/postgres/db.dump=\"pg_dump -Fc db\")"))?;
    let words = shlex::split(cmd).ok_or_else(|| bad("unbalanced quotes or a trailing backslash in CMD"))?;
    if words.is_empty() {
        return Err(bad("no command after `=`"));
    }
    Ok(archiver::CommandSource {
        path: path.to_string(),
        argv: words.into_iter().map(Into::into).collect(),
        verify: None,
        timeout,
    })
}

/// A command's timeout, refused when zero (it would kill every command at once).
fn nonzero(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        Err("a timeout must be longer than zero (leave it out for none)".into())
    } else {
        Ok(d)
    }
}

/// The command components: the `--command` flags, else the profile's `[[backup.command]]`
/// unless the command line gives what to back up.
fn command_sources(a: &BackupArgs, applied: Option<&Applied>) -> Result<Vec<archiver::CommandSource>, Error> {
    let timeout = a
        .command_timeout
        .as_deref()
        .map(|t| {
            super::parse_duration(t)
                .and_then(nonzero)
                .map_err(|e| Error::usage(format!("--command-timeout {t:?}: {e}")))
        })
        .transpose()?;
    if !a.commands.is_empty() {
        return a.commands.iter().map(|c| command_flag(c, timeout)).collect();
    }
    // A stream backup (--stdin, --stdin-from-command) is one file: the profile's commands are
    // for the nightly backup of its paths.
    if let (Some(p), true) = (applied, a.stdin || a.stdin_from_command) {
        // A stream backed up with a profile whose backup is its paths and dumps is not that
        // backup: the profile's metrics (its last success, its dumps) stay.
        if p.profile.backup.paths.as_ref().is_some_and(|v| !v.is_empty()) || !p.profile.backup.command.is_empty() {
            metrics::skip();
        }
    }
    let Some(applied) = applied.filter(|_| !a.stdin && !a.stdin_from_command) else { return Ok(Vec::new()) };
    // What to back up given on the command line (PATH arguments, --files-from lists) replaces
    // the profile's paths and its commands: `cairn -P mail1 backup /tmp/x` runs no pg_dump.
    let from_profile = |key: &str| applied.injected.iter().any(|i| i.section == "backup" && i.key == key);
    let typed = [
        ("paths", a.paths.is_empty()),
        ("files-from", a.files_from.is_empty()),
        ("files-from-verbatim", a.files_from_verbatim.is_empty()),
        ("files-from-raw", a.files_from_raw.is_empty()),
    ];
    if typed.iter().any(|(key, empty)| !empty && !from_profile(key)) {
        // Not the profile's backup: its metrics (the night's dumps and last success) stay.
        metrics::skip();
        return Ok(Vec::new());
    }
    applied
        .profile
        .backup
        .command
        .iter()
        .map(|c| {
            let timeout = c
                .timeout
                .as_deref()
                .map(|t| {
                    super::parse_duration(t).and_then(nonzero).map_err(|e| {
                        Error::usage(format!(
                            "{}: [[backup.command]] {} timeout {t:?}: {e}",
                            applied.file.display(),
                            c.path
                        ))
                    })
                })
                .transpose()?;
            Ok(archiver::CommandSource {
                path: c.path.clone(),
                argv: c.run.iter().map(Into::into).collect(),
                verify: c.verify.as_ref().map(|v| v.iter().map(Into::into).collect()),
                timeout,
            })
        })
        .collect()
}

/// `--compression` as a zstd level; `None` for the repository's own (`auto`).
fn compression_level(s: &str) -> Result<Option<i32>, Error> {
    match s {
        "auto" => Ok(None),
        "off" => Ok(Some(0)),
        "fastest" => Ok(Some(1)),
        "max" => Ok(Some(19)),
        n => n.parse::<i32>().ok().filter(|l| (1..=22).contains(l)).map(Some).ok_or_else(|| {
            Error::usage(format!("--compression {n:?}: expected auto, off, fastest, max or a level 1 to 22"))
        }),
    }
}

fn parse_time(s: &str) -> Result<cairn::tree::Timestamp, Error> {
    let t = chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).or_else(|_| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .map_err(|e| e.to_string())
            .and_then(|n| {
                n.and_local_timezone(chrono::Local).single().ok_or_else(|| "ambiguous local time".to_string())
            })
            .map(|t| t.with_timezone(&chrono::Utc))
    });
    let t = t.map_err(|e| Error::usage(format!("--time {s:?}: {e}")))?;
    Ok(cairn::tree::Timestamp { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() })
}

/// The paths to back up: the PATH arguments and those listed by --files-from,
/// --files-from-verbatim and --files-from-raw (none with --stdin/--stdin-from-command, whose
/// arguments are a command). Errors: a list that cannot be read or is malformed, `-` given
/// twice, lists that give no path (and no PATH argument), and no path at all unless
/// `commands` (usage errors naming the lists).
fn source_paths(a: &BackupArgs, commands: bool) -> Result<Vec<PathBuf>, Error> {
    use archiver::ListFormat;
    if a.stdin || a.stdin_from_command {
        return Ok(a.paths.clone());
    }
    let lists = [
        (&a.files_from, ListFormat::Lines),
        (&a.files_from_verbatim, ListFormat::Verbatim),
        (&a.files_from_raw, ListFormat::Raw),
    ];
    let mut paths = a.paths.clone();
    let mut read_stdin = false;
    for (files, format) in lists {
        for f in files {
            if f.as_os_str() == "-" {
                if std::mem::replace(&mut read_stdin, true) {
                    return Err(Error::usage("files-from lists: `-` (standard input) can be given only once"));
                }
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut data)
                    .map_err(|e| Error::io("standard input", e))?;
                paths.extend(archiver::parse_file_list(&data, format, "standard input")?);
            } else {
                paths.extend(archiver::read_file_list(f, format)?);
            }
        }
    }
    let given: Vec<String> = lists
        .iter()
        .flat_map(|(files, format)| files.iter().map(move |f| format!("{} {}", format.flag(), f.display())))
        .collect();
    // Lists that give nothing are an error even beside commands: a broken `find` must not
    // turn into a night of dumps alone that looks complete.
    if paths.is_empty() && (!commands || !given.is_empty()) {
        return Err(Error::usage(if given.is_empty() {
            "nothing to back up: give at least one path, --files-from, --command, --stdin or --stdin-from-command"
                .to_string()
        } else {
            format!("nothing to back up: {} listed no path, and no PATH argument was given", given.join(", "))
        }));
    }
    Ok(paths)
}

/// The tag files (--exclude-caches, --exclude-if-present) and the size limit
/// (--exclude-larger-than, bytes) of a backup. Errors: a malformed tag or size.
fn selection(a: &BackupArgs) -> Result<(Vec<archiver::TagFile>, Option<u64>), Error> {
    let mut tags = a.exclude_if_present.iter().map(|s| archiver::TagFile::parse(s)).collect::<Result<Vec<_>, _>>()?;
    if a.exclude_caches {
        tags.push(archiver::TagFile::cachedir());
    }
    let max = a
        .exclude_larger_than
        .as_deref()
        .map(|s| {
            cairn::util::parse_size(s).ok_or_else(|| {
                Error::usage(format!(
                    "--exclude-larger-than {s:?}: expected a size in bytes, optionally with a unit K, M, G or T (512K, 2G)"
                ))
            })
        })
        .transpose()?;
    Ok((tags, max))
}

/// Run a backup and print its summary.
pub fn run(g: &GlobalOpts, a: &BackupArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    if a.stdin_from_command && a.paths.is_empty() {
        return Err(Error::usage(
            "--stdin-from-command needs a command: cairn backup --stdin-from-command [OPTIONS] -- COMMAND [ARG...]",
        ));
    }
    if a.dry_run {
        metrics::skip();
    }
    let commands = command_sources(a, applied)?;
    let paths = source_paths(a, !commands.is_empty())?;
    let (exclude_if_present, exclude_larger_than) = selection(a)?;
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(read_pattern_file(f)?);
    }
    let tags: Vec<String> = a.tags.iter().filter(|t| !t.is_empty()).cloned().collect();
    // Checked before the repository is opened: a bad label wastes no work.
    cairn::snapshot::validate_labels(a.host.as_deref().unwrap_or(""), &tags)
        .map_err(|e| Error::usage(format!("--host/--tag: {e}")))?;
    if let Some(h) = a.host.as_deref().filter(|h| !h.is_empty()) {
        metrics::host(h);
    }
    let repo = g.open()?;
    // A dry run writes nothing: any read permission will do (`--no-lock` included).
    let (read_lock, append_lock);
    let permit = if a.dry_run {
        read_lock = g.read_lock(&repo, "backup")?;
        Permit::DryRun(&read_lock)
    } else {
        append_lock = g.append_lock(&repo, "backup")?;
        Permit::Write(&append_lock)
    };
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Given(repo.find_snapshot(&g.ctx(), p, &Default::default())?.0)
    } else {
        ParentChoice::Latest
    };
    let opts = BackupOptions {
        host: a.host.clone(),
        tags,
        excludes,
        exclude_if_present,
        exclude_larger_than,
        skip_if_unchanged: a.skip_if_unchanged,
        one_file_system: a.one_file_system,
        time: a.time.as_deref().map(parse_time).transpose()?,
        upload_connections: g.connections()?,
        compression: compression_level(&a.compression)?,
        parent,
        ignore_ctime: a.ignore_ctime,
        ignore_inode: a.ignore_inode,
        commands,
    };
    let name = a.stdin_filename.clone().unwrap_or_else(|| "stdin".to_string());
    let input = if a.stdin_from_command {
        let argv = a.paths.iter().map(|p| p.clone().into_os_string()).collect();
        Input::Command { argv, name, allow_empty: a.allow_empty }
    } else if a.stdin {
        Input::Stdin { name, allow_empty: a.allow_empty }
    } else {
        Input::Paths(paths)
    };
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let ticker = Ticker::start(g.show_progress(), move || {
        format!(
            "{} files, {} read, {} added, {} errors",
            p.files.load(Ordering::Relaxed),
            human_bytes(p.bytes.load(Ordering::Relaxed)),
            human_bytes(p.bytes_added.load(Ordering::Relaxed)),
            p.errors.load(Ordering::Relaxed)
        )
    });
    let result = archiver::backup_input(&g.ctx(), permit, &repo, input, &opts, &progress);
    drop(ticker);
    let InputReport { result: r, recovered_packs } = match result {
        Err(e @ Error::Stream(StreamFailure::Empty { .. })) => {
            return Err(Error::refused(format!("{e} (--allow-empty stores an empty stream)")));
        }
        r => r?,
    };
    if recovered_packs > 0 && !g.quiet && !g.json {
        eprintln!("cairn: indexed {recovered_packs} pack(s) left by an interrupted backup; their data is reused");
    }
    for w in &r.warnings {
        eprintln!("cairn: warning: {w}");
    }
    for (path, msg) in &r.errors {
        eprintln!("cairn: {}: {msg} (not in the snapshot)", path.display());
    }
    if a.dry_run {
        metrics::skip();
    } else {
        record_metrics(&r);
    }
    let s = &r.snapshot.summary.counts;
    if g.json {
        out(&BackupSummary::new(&r).to_json()?);
    } else if !g.quiet {
        out(&format!("Files:       {} new, {} changed, {} unchanged", s.files_new, s.files_changed, s.files_unchanged));
        out(&format!("Dirs:        {} new, {} changed, {} unchanged", s.dirs_new, s.dirs_changed, s.dirs_unchanged));
        out(&format!(
            "{} {} ({} stored)",
            if a.dry_run { "Would add to the repository:" } else { "Added to the repository:" },
            human_bytes(s.data_added),
            human_bytes(s.data_added_packed)
        ));
        let (start, end) = (r.snapshot.summary.backup_start, r.snapshot.summary.backup_end);
        let dur = (end.secs - start.secs).max(0);
        out(&format!(
            "processed {} files, {} in {}:{:02}",
            s.total_files_processed,
            human_bytes(s.total_bytes_processed),
            dur / 60,
            dur % 60
        ));
        for c in &r.snapshot.components {
            let status = match c.status {
                ComponentOutcome::Ok => "ok",
                ComponentOutcome::Failed => "failed",
                ComponentOutcome::Partial => "partial",
            };
            let mut line =
                format!("{}: {} ({} in {:.1}s)", c.path, status, human_bytes(c.bytes), c.duration_ms as f64 / 1000.0);
            if !c.reason.is_empty() {
                line.push_str(&format!(": {}", c.reason));
            }
            out(&line);
        }
        if let Some(p) = r.snapshot.parent {
            out(&format!("parent snapshot {}", p.short()));
        }
        match r.id {
            Some(id) => out(&format!("snapshot {} saved", id.short())),
            None if r.skipped => out("no changes, snapshot not written"),
            None => out("no snapshot written (dry run)"),
        }
    }
    if r.errors.is_empty() {
        Ok(EXIT_OK)
    } else {
        let saved = if a.dry_run { "a snapshot would be saved" } else { "the snapshot was saved" };
        eprintln!("cairn: {} file(s), directories or commands could not be read; {saved} without them", r.errors.len());
        Ok(EXIT_PARTIAL)
    }
}

/// The backup's figures as metrics (`cairn_backup_*`; each component of the snapshot, a path
/// or a command's output, its own series).
fn record_metrics(r: &archiver::BackupResult) {
    let c = &r.snapshot.summary.counts;
    let files = "Files the last backup found, by state (new, changed, unchanged)";
    metrics::gauge("cairn_backup_files", files, &[("state", "new")], c.files_new as f64);
    metrics::gauge("cairn_backup_files", files, &[("state", "changed")], c.files_changed as f64);
    metrics::gauge("cairn_backup_files", files, &[("state", "unchanged")], c.files_unchanged as f64);
    let dirs = "Directories the last backup found, by state (new, changed, unchanged)";
    metrics::gauge("cairn_backup_dirs", dirs, &[("state", "new")], c.dirs_new as f64);
    metrics::gauge("cairn_backup_dirs", dirs, &[("state", "changed")], c.dirs_changed as f64);
    metrics::gauge("cairn_backup_dirs", dirs, &[("state", "unchanged")], c.dirs_unchanged as f64);
    metrics::gauge(
        "cairn_backup_added_bytes",
        "Bytes of new data the last backup added (before compression)",
        &[],
        c.data_added as f64,
    );
    metrics::gauge(
        "cairn_backup_added_stored_bytes",
        "Bytes the last backup added to the repository (compressed, encrypted)",
        &[],
        c.data_added_packed as f64,
    );
    metrics::gauge(
        "cairn_backup_processed_files",
        "Files the last backup read or found unchanged",
        &[],
        c.total_files_processed as f64,
    );
    metrics::gauge(
        "cairn_backup_processed_bytes",
        "Bytes of the files the last backup processed",
        &[],
        c.total_bytes_processed as f64,
    );
    metrics::gauge(
        "cairn_backup_errors",
        "Sources the last backup could not read (left out of its snapshot)",
        &[],
        r.errors.len() as f64,
    );
    metrics::gauge(
        "cairn_backup_snapshot_saved",
        "1 when the last backup saved a snapshot, 0 when none was needed (skip-if-unchanged)",
        &[],
        if r.id.is_some() { 1.0 } else { 0.0 },
    );
    let end = r.snapshot.summary.backup_end.secs as f64;
    for comp in &r.snapshot.components {
        let l = [("component", comp.path.as_str())];
        let ok = comp.status == ComponentOutcome::Ok;
        metrics::gauge(
            "cairn_backup_component_success",
            "1 when the component (a path, or a command's output) was stored whole in the last backup",
            &l,
            if ok { 1.0 } else { 0.0 },
        );
        metrics::gauge(
            "cairn_backup_component_bytes",
            "Bytes the component read in the last backup (a command: its whole output)",
            &l,
            comp.bytes as f64,
        );
        metrics::gauge(
            "cairn_backup_component_duration_seconds",
            "Time the component took in the last backup",
            &l,
            comp.duration_ms as f64 / 1000.0,
        );
        if ok {
            metrics::gauge(
                "cairn_backup_component_last_success_timestamp_seconds",
                "When the component was last stored whole (Unix time)",
                &l,
                end,
            );
        }
    }
}
