//! `cairn backup`: paths or standard input into a new snapshot.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;

use cairn::archiver::{self, BackupOptions, ParentChoice, Progress, Source};
use cairn::stream::{stream_error, CommandStream, RequireData, StreamFailure};
use cairn::Error;

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
    /// Do not cross file system boundaries below the given paths
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Do not write anything; show what would be done
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
}

/// `--compression` as a zstd level; `None` for the repository's own (`auto`).
fn compression_level(s: &str) -> Result<Option<i32>, Error> {
    match s {
        "auto" => Ok(None),
        "off" => Ok(Some(0)),
        "fastest" => Ok(Some(1)),
        "max" => Ok(Some(19)),
        n => n.parse::<i32>().ok().filter(|l| (1..=22).contains(l)).map(Some).ok_or_else(|| {
            Error::InvalidInput(format!("--compression {n:?}: expected auto, off, fastest, max or a level 1 to 22"))
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
    let t = t.map_err(|e| Error::InvalidInput(format!("--time {s:?}: {e}")))?;
    Ok(cairn::tree::Timestamp { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() })
}

/// Run a backup and print its summary.
pub fn run(g: &GlobalOpts, a: &BackupArgs) -> Result<u8, Error> {
    if a.stdin_from_command && a.paths.is_empty() {
        return Err(Error::InvalidInput(
            "--stdin-from-command needs a command: cairn backup --stdin-from-command [OPTIONS] -- COMMAND [ARG...]"
                .into(),
        ));
    }
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        excludes.extend(archiver::read_pattern_file(f)?);
    }
    let tags: Vec<String> = a.tags.iter().filter(|t| !t.is_empty()).cloned().collect();
    // Checked before the repository is opened: a bad label wastes no work.
    cairn::snapshot::validate_labels(a.host.as_deref().unwrap_or(""), &tags)
        .map_err(|e| Error::InvalidInput(format!("--host/--tag: {e}")))?;
    let repo = g.open()?;
    let lock = if a.dry_run {
        g.lock(&repo, cairn::lock::LockKind::Shared, "backup")?
    } else {
        g.lock_to_add(&repo, "backup")?
    };
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Given(repo.find_snapshot(p, &Default::default())?.0)
    } else {
        ParentChoice::Latest
    };
    let opts = BackupOptions {
        host: a.host.clone(),
        tags,
        excludes,
        one_file_system: a.one_file_system,
        dry_run: a.dry_run,
        time: a.time.as_deref().map(parse_time).transpose()?,
        upload_connections: g.connections()?,
        compression: compression_level(&a.compression)?,
        parent,
        ignore_ctime: a.ignore_ctime,
        ignore_inode: a.ignore_inode,
        lock,
    };
    if !a.stdin && a.paths.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to back up: give at least one path, --stdin or --stdin-from-command".into(),
        ));
    }
    let mut index = repo.load_index()?;
    if !a.dry_run {
        let recovered = repo.index_unindexed_packs(&mut index)?;
        if recovered > 0 && !g.quiet && !g.json {
            eprintln!("cairn: indexed {recovered} pack(s) left by an interrupted backup; their data is reused");
        }
    }
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
    // The command starts only now: the repository is open, the password checked, the lock
    // held and the index loaded, so a repository that cannot take the backup costs no dump.
    let mut command = if a.stdin_from_command {
        let argv: Vec<std::ffi::OsString> = a.paths.iter().map(|p| p.clone().into_os_string()).collect();
        Some(CommandStream::spawn(&argv, &archiver::INTERRUPTED)?)
    } else {
        None
    };
    // Where a regular file on stdin starts being read (0 unless the caller consumed some).
    let start =
        nix::unistd::lseek(0, 0, nix::unistd::Whence::SeekCur).ok().and_then(|o| u64::try_from(o).ok()).unwrap_or(0);
    // A regular file on stdin is read past the page cache (cairn::direct_io) in 8 MiB
    // requests; a pipe, or a file system without O_DIRECT, through the kernel's read-ahead.
    let stdin = std::io::stdin();
    let mut direct = if a.stdin {
        cairn::direct_io::DirectReader::reopen(std::os::fd::AsFd::as_fd(&stdin), start, 8 << 20)
    } else {
        None
    };
    let mut plain = ReadAhead { inner: std::io::stdin(), pos: start, advised: start };
    let origin = match &command {
        Some(c) => format!("the output of {}", c.command()),
        None => "standard input".to_string(),
    };
    let stream: Option<&mut (dyn std::io::Read + Send)> = match (command.as_mut(), direct.as_mut()) {
        (Some(c), _) => Some(c),
        (None, Some(d)) if a.stdin => Some(d),
        (None, None) if a.stdin => Some(&mut plain),
        _ => None,
    };
    let name = a.stdin_filename.clone().unwrap_or_else(|| "stdin".to_string());
    let mut required;
    let source = match stream {
        Some(reader) if a.allow_empty => Source::Stream { name, reader },
        Some(reader) => {
            required = RequireData::new(reader, origin);
            Source::Stream { name, reader: &mut required }
        }
        None => Source::Paths(a.paths.clone()),
    };
    // A failed or empty stream comes back as the error that says so.
    let result = archiver::backup(&repo, &index, source, &opts, &progress).map_err(stream_error);
    drop(ticker);
    if let Some(d) = &direct {
        // Leave standard input's offset where a plain read would have: after what was read.
        if let Ok(pos) = i64::try_from(d.position()) {
            let _ = nix::unistd::lseek(0, pos, nix::unistd::Whence::SeekSet);
        }
    }
    let r = match result {
        Err(e @ Error::Stream(StreamFailure::Empty { .. })) => {
            return Err(Error::InvalidInput(format!("{e} (--allow-empty stores an empty stream)")));
        }
        r => r?,
    };
    for w in &r.warnings {
        eprintln!("cairn: warning: {w}");
    }
    for (path, msg) in &r.errors {
        eprintln!("cairn: {}: {msg} (skipped)", path.display());
    }
    let s = &r.snapshot.summary;
    if g.json {
        let mut v = super::snapshots::summary_json(s, r.snapshot.tz_offset);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("message_type".into(), "summary".into());
            obj.insert("snapshot_id".into(), r.id.map(|i| i.to_hex()).into());
            obj.insert("dry_run".into(), a.dry_run.into());
        }
        out(&v.to_string());
    } else if !g.quiet {
        out(&format!("Files:       {} new, {} changed, {} unchanged", s.files_new, s.files_changed, s.files_unchanged));
        out(&format!("Dirs:        {} new, {} changed, {} unchanged", s.dirs_new, s.dirs_changed, s.dirs_unchanged));
        out(&format!(
            "{} {} ({} stored)",
            if a.dry_run { "Would add to the repository:" } else { "Added to the repository:" },
            human_bytes(s.data_added),
            human_bytes(s.data_added_packed)
        ));
        let dur = (s.backup_end.secs - s.backup_start.secs).max(0);
        out(&format!(
            "processed {} files, {} in {}:{:02}",
            s.total_files_processed,
            human_bytes(s.total_bytes_processed),
            dur / 60,
            dur % 60
        ));
        if let Some(p) = r.snapshot.parent {
            out(&format!("parent snapshot {}", p.short()));
        }
        match r.id {
            Some(id) => out(&format!("snapshot {} saved", id.short())),
            None => out("no snapshot written (dry run)"),
        }
    }
    if r.errors.is_empty() {
        Ok(EXIT_OK)
    } else {
        eprintln!(
            "cairn: {} file(s) or directories could not be read; the snapshot was saved without them",
            r.errors.len()
        );
        Ok(EXIT_PARTIAL)
    }
}

/// Standard input with kernel read-ahead: when stdin is a regular file (`cairn backup --stdin
/// < dump`), ask the kernel (`posix_fadvise WILLNEED`) to read the next 64 MiB ahead of the
/// chunker, so a dump that is not in the page cache is read from disk while the previous
/// chunks are compressed. On a pipe the advice fails and is ignored.
struct ReadAhead<R> {
    inner: R,
    /// The file offset of the next byte read.
    pos: u64,
    /// End of the range already advised.
    advised: u64,
}

impl<R: std::io::Read> std::io::Read for ReadAhead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const AHEAD: u64 = 64 << 20;
        if self.pos + AHEAD / 2 >= self.advised {
            let from = self.advised.max(self.pos);
            let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(AHEAD)) else { return self.inner.read(buf) };
            let _ = nix::fcntl::posix_fadvise(0, off, len, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED);
            self.advised = from + AHEAD;
        }
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
