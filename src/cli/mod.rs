//! Command-line interface: restic's verbs, flags, environment variables and exit codes.

mod backup;
mod check;
mod config;
mod copy;
mod copy_targets;
mod diff;
mod drill;
mod dump;
mod find;
mod forget;
mod format;
mod from_repo;
mod generate;
mod health;
mod http;
mod init;
mod key;
mod ls;
mod metrics;
mod mount;
mod password;
mod ping;
mod profile;
mod profile_apply;
mod profile_env;
mod progress;
mod prune;
mod restore;
mod run;
mod run_child;
mod schedule;
mod snapshots;
mod stats;
mod table;
mod unlock;
mod version;

pub use format::{human_bytes, local_time, parse_duration, snapshot_time, TIME_FORMAT};

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand};

use cairn::backend::Backend;
use cairn::Error;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: fatal error.
pub const EXIT_FATAL: u8 = 1;
/// Exit code: snapshot saved, but some sources could not be read.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code: `drill` passed every component, but took longer than its `--rto`.
pub const EXIT_RTO_EXCEEDED: u8 = 8;
/// Exit code: the repository does not exist.
pub const EXIT_NO_REPOSITORY: u8 = 10;
/// Exit code: the repository is locked.
pub const EXIT_LOCKED: u8 = 11;
/// Exit code: wrong password.
pub const EXIT_WRONG_PASSWORD: u8 = 12;
/// Exit code: the storage could not be reached, or kept failing after the retries (network,
/// timeout, 5xx): nothing was concluded about the repository's data.
pub const EXIT_STORAGE_UNREACHABLE: u8 = 13;
/// Exit code: the storage refused (credentials, permissions, a missing bucket, a TLS
/// mismatch): the configuration needs fixing.
pub const EXIT_STORAGE_REFUSED: u8 = 14;
/// Exit code: repository data is damaged (a verified read failed). `check` itself exits 1
/// when it finds errors, as restic's does.
pub const EXIT_DAMAGED: u8 = 15;
/// Exit code: interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit-code table of `cairn --help` (README's "Exit codes" says the same).
const EXIT_CODES_HELP: &str = "\
Exit codes:
    0  success
    1  fatal error: nothing was saved (no source could be read, the --stdin-from-command
       command failed, an empty stream); a restore that could not write every file;
       `check` found errors
    2  wrong usage found by the argument parser (unknown flag, missing argument, flags
       that exclude each other); a value cairn itself rejects exits 1
    3  snapshot saved, but some sources could not be read
    8  `drill` restored and checked everything, but took longer than its --rto (a drill
       that failed exits 1, or 15 for damaged data, whatever the time)
   10  the repository does not exist
   11  the repository is locked by another process (or this one lost its lock)
   12  wrong password
   13  the storage could not be reached or kept failing (network, timeout, 5xx): try again
       later, check the endpoint
   14  the storage refused (credentials, permissions, missing bucket, TLS mismatch): fix the
       configuration
   15  repository data is damaged (a verified read failed): run `cairn check --read-data`
  130  interrupted (Ctrl-C, SIGTERM)";

#[derive(Parser)]
#[command(name = "cairn", version, about = "Deduplicating, encrypted backups", max_term_width = 100, after_help = EXIT_CODES_HELP)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes (listed under "Global options" in every command's help).
#[derive(Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Repository location: a local path (/srv/backup/repo), s3:HOST[:PORT]/BUCKET[/PREFIX]
    /// (https), s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX], or opendal:SCHEME configured by -o
    /// options (e.g. opendal:fs -o root=/srv/repo)
    #[arg(
        short = 'r',
        long = "repo",
        env = "CAIRN_REPOSITORY",
        global = true,
        value_name = "REPO",
        default_value = "",
        hide_default_value = true
    )]
    pub repo: String,
    /// Read the repository password from this file (first line)
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Run this shell command and use the first line it prints as the password
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true, value_name = "COMMAND")]
    pub password_command: Option<String>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors and the requested output
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more (repeat for even more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Backend option KEY=VALUE (repeatable): connections=N, retries=N, timeout=SECONDS,
    /// s3.region, s3.bucket-lookup=auto|dns|path, s3.checksum=md5|crc32c|none, or an OpenDAL
    /// service's keys for opendal:SCHEME
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Directory for the local cache of a remote repository's metadata
    /// (default: $CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or ~/.cache/cairn)
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Do not use a local cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Limit uploads to this many KiB/s
    #[arg(long, global = true, value_name = "KIB_PER_SEC")]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s
    #[arg(long, global = true, value_name = "KIB_PER_SEC")]
    pub limit_download: Option<u64>,
    /// Do not take a lock (read-only commands and dry runs only; refused by commands that
    /// write: backup, forget, prune, key add/remove/passwd)
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// When the repository is locked, keep trying for this long (e.g. 30s, 10m, 2h) before
    /// failing with exit code 11
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_lock: Option<String>,
    /// Read options from profile NAME: the first NAME.toml in $XDG_CONFIG_HOME/cairn,
    /// ~/.config/cairn, /etc/cairn (see `cairn help config`)
    #[arg(short = 'P', long, env = "CAIRN_PROFILE", global = true, value_name = "NAME", conflicts_with = "config")]
    pub profile: Option<String>,
    /// Read options from this profile file (see `cairn help config`)
    #[arg(long, env = "CAIRN_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// The repository's own environment (a copy target's environment file, read by
    /// [`copy_targets`]); `None`: the process's (the repository of `-r`). With one, the backend
    /// looks variables up in it first ([`cairn::backend::BackendOptions::environment`]) and
    /// `CAIRN_PASSWORD` comes from it alone, never from the process (another repository's).
    #[arg(skip)]
    pub environment: Option<std::collections::BTreeMap<String, String>>,
    /// Write the figures of backup, run, copy, forget, prune, check, restore, drill and stats as
    /// Prometheus metrics into FILE (node_exporter's textfile format), merged with the
    /// series other commands and profiles left there; replaced atomically
    #[arg(long, env = "CAIRN_METRICS_FILE", global = true, value_name = "FILE", value_parser = clap::value_parser!(std::ffi::OsString))]
    metrics_file: Option<std::ffi::OsString>,
    /// Push the same metrics to this Prometheus Pushgateway (http://HOST:9091), grouped by
    /// job "cairn", host, profile and command
    #[arg(long, env = "CAIRN_METRICS_PUSH", global = true, value_name = "URL")]
    metrics_push: Option<String>,
    /// Which repository these options open: the one of `-r`, or the source of `--from-repo`
    /// (set by [`from_repo::FromRepoArgs::globals`]; its password options and errors are the
    /// source's).
    #[arg(skip)]
    pub role: from_repo::RepoRole,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository
    Init(init::InitArgs),
    /// Back up files and directories, standard input, or a command's output
    Backup(Box<backup::BackupArgs>),
    /// List snapshots
    Snapshots(snapshots::SnapshotsArgs),
    /// Is every host's backup fresh? A Nagios/Icinga plugin (exit 0 OK, 1 WARNING, 2
    /// CRITICAL, 3 UNKNOWN), from the repository alone
    Health(health::HealthArgs),
    /// Restore a snapshot into a directory
    Restore(restore::RestoreArgs),
    /// Rehearse a restore: restore and verify a snapshot's components into a scratch
    /// directory, run their drill commands, time it against --rto, record it in the repository
    Drill(drill::DrillArgs),
    /// Remove snapshots by id or by a keep policy
    Forget(Box<forget::ForgetArgs>),
    /// Manage keys (passwords): add, list, remove, passwd
    Key(key::KeyArgs),
    /// Delete data no snapshot references
    Prune(prune::PruneArgs),
    /// Remove stale locks (or all locks with --remove-all)
    Unlock(unlock::UnlockArgs),
    /// Check the repository for errors; with --read-data, verify every blob
    Check(check::CheckArgs),
    /// List files and directories in a snapshot
    Ls(ls::LsArgs),
    /// Find files and directories in snapshots by glob
    Find(find::FindArgs),
    /// Show what changed between two snapshots
    Diff(diff::DiffArgs),
    /// Write a file of a snapshot to stdout, or a directory as a tar or zip archive
    Dump(dump::DumpArgs),
    /// Mount the repository read-only as a FUSE filesystem
    Mount(mount::MountArgs),
    /// Show the effective settings of a profile (secrets redacted); its help documents every
    /// profile key
    #[command(long_about = config::LONG_HELP)]
    Config(config::ConfigArgs),
    /// Run a profile's `cairn -P NAME run` from a systemd timer (or cron): install, remove, status
    Schedule(schedule::ScheduleArgs),
    /// Shell completions (bash, zsh, fish, elvish, powershell) and man pages
    Generate(generate::GenerateArgs),
    /// Program version, repository format version and build features (--json for a script)
    Version(version::VersionArgs),
    /// A profile's night in one call: hooks, backup, copy to the [copy] targets, forget (and prune); for the timer
    Run(run::RunArgs),
    /// Scan snapshots and show statistics (restic's modes) and the repository's size
    Stats(stats::StatsArgs),
    /// Copy snapshots from another repository (--from-repo) into this one, or into a profile's
    /// `[copy] to` repositories; snapshots copied before are skipped
    Copy(copy::CopyArgs),
}

impl GlobalOpts {
    /// `--metrics-file` (`CAIRN_METRICS_FILE`, `[monitoring] metrics-file`); an empty value is
    /// none.
    pub fn metrics_file(&self) -> Option<std::path::PathBuf> {
        self.metrics_file.as_ref().filter(|f| !f.to_string_lossy().trim().is_empty()).map(std::path::PathBuf::from)
    }

    /// `--metrics-push` (`CAIRN_METRICS_PUSH`, `[monitoring] metrics-push`); an empty value is
    /// none.
    pub fn metrics_push(&self) -> Option<&str> {
        self.metrics_push.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// The backend named by `-r`.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, Error> {
        if self.repo.is_empty() {
            return Err(Error::usage("no repository given: use -r/--repo or set CAIRN_REPOSITORY"));
        }
        cairn::backend::open_location(&self.repo, &self.backend_options()?).map_err(option_flag)
    }

    /// `CAIRN_PASSWORD` for this repository: from its own [`GlobalOpts::environment`] when it
    /// has one, else from the process's environment.
    pub fn password_variable(&self) -> Option<String> {
        match &self.environment {
            Some(own) => own.get("CAIRN_PASSWORD").cloned(),
            None => std::env::var(self.role.password_var()).ok(),
        }
    }

    /// The `-o KEY=VALUE` options, bandwidth limits and the repository's own environment.
    fn backend_options(&self) -> Result<cairn::backend::BackendOptions, Error> {
        let mut opts = cairn::backend::BackendOptions {
            limit_upload: self.limit_upload,
            limit_download: self.limit_download,
            environment: self.environment.clone().unwrap_or_default(),
            ..Default::default()
        };
        for o in &self.options {
            let (k, v) = o.split_once('=').ok_or_else(|| Error::usage(format!("-o {o:?}: expected KEY=VALUE")))?;
            opts.options.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(opts)
    }

    /// Open the repository, asking for the password as configured; remote repositories use
    /// the local cache unless `--no-cache`.
    pub fn open(&self) -> Result<cairn::Repository, Error> {
        let mut repo = self.open_uncached()?;
        if repo.backend().properties().remote && !self.no_cache {
            if let Some(dir) = self.cache_dir.clone().or_else(cairn::backend::cache::default_cache_dir) {
                repo.use_cache(&dir);
            }
        }
        Ok(repo)
    }

    /// Open the repository without the local cache (check verifies what is stored).
    pub fn open_uncached(&self) -> Result<cairn::Repository, Error> {
        let backend = self.backend()?;
        // Fail on a missing repository before asking for a password.
        if !backend.exists(cairn::backend::FileKind::Config, &cairn::backend::CONFIG_ID)? {
            return Err(Error::RepositoryNotFound { location: backend.location() });
        }
        let pw = password::get(self, false)?;
        let location = backend.location();
        cairn::Repository::open(backend, pw.as_bytes()).map_err(|e| self.role.explain_open_error(e, &location))
    }

    /// Packs uploaded at once: `-o connections=N`, else what the repository's backend suits
    /// (the library's policy: [`cairn::backend::BackendOptions::connections`]).
    pub fn connections(&self) -> Result<usize, Error> {
        let properties = cairn::backend::location_properties(&self.repo)?;
        self.backend_options()?.connections(&properties).map_err(option_flag)
    }

    /// Threads that read the repository at once for `work` (the library's policy,
    /// [`cairn::backend::Properties::reader_threads`], with `-o connections=N`).
    pub fn reader_threads(&self, work: cairn::backend::ReadWork) -> Result<usize, Error> {
        let properties = cairn::backend::location_properties(&self.repo)?;
        Ok(properties.reader_threads(work, self.connections()?))
    }

    /// Lock timing: the defaults, with `--retry-lock`.
    pub fn lock_options(&self) -> Result<cairn::lock::LockOptions, Error> {
        let mut o = cairn::lock::LockOptions::default();
        if let Some(d) = &self.retry_lock {
            o.retry_for = parse_duration(d).map_err(|e| Error::Usage(format!("--retry-lock {d:?}: {e}")))?;
        }
        Ok(o)
    }

    /// Permission to read `repo` for `command`: a shared lock, or none under `--no-lock`.
    /// Errors: [`Error::Locked`] (exit code 11).
    pub fn read_lock(&self, repo: &cairn::Repository, command: &str) -> Result<cairn::lock::ReadLock, Error> {
        if self.no_lock {
            return Ok(cairn::lock::ReadLock::unlocked());
        }
        let lock = cairn::lock::ReadLock::acquire(repo, command, &self.lock_options()?)?;
        if let Some(l) = lock.held() {
            hold(l);
        }
        Ok(lock)
    }

    /// The shared lock of a command that adds to `repo` (backup, key add): never skipped.
    /// Errors: [`Error::Locked`]; [`Error::Usage`] under `--no-lock`.
    pub fn append_lock(&self, repo: &cairn::Repository, command: &str) -> Result<cairn::lock::AppendLock, Error> {
        if self.no_lock {
            return Err(no_lock_refused(command));
        }
        let lock = cairn::lock::AppendLock::acquire(repo, command, &self.lock_options()?)?;
        hold(lock.held());
        Ok(lock)
    }

    /// The exclusive lock of a command that deletes from `repo` (forget, prune, key remove).
    /// Errors: [`Error::Locked`]; [`Error::Usage`] under `--no-lock`.
    pub fn exclusive_lock(&self, repo: &cairn::Repository, command: &str) -> Result<cairn::lock::ExclusiveLock, Error> {
        if self.no_lock {
            return Err(no_lock_refused(command));
        }
        let lock = cairn::lock::ExclusiveLock::acquire(repo, command, &self.lock_options()?)?;
        hold(lock.held());
        Ok(lock)
    }

    /// The context of this process's operation: the process's cancellation token ([`cancel`])
    /// and a sink that prints the library's warnings on stderr ([`print_warning`]), whatever
    /// `--quiet` and `--json` say (they are about the output and the progress, not warnings).
    pub fn ctx(&self) -> cairn::Ctx {
        cairn::Ctx::new(cancel().clone()).with_progress(Arc::new(Warnings))
    }

    /// True when progress bars may be drawn: stderr is a terminal and not `--quiet`/`--json`.
    pub fn show_progress(&self) -> bool {
        use std::io::IsTerminal;
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }
}

/// The progress sink of [`GlobalOpts::ctx`]: shows no phases, prints warnings.
struct Warnings;

impl cairn::context::Progress for Warnings {
    fn warn(&self, warning: &cairn::context::Warning<'_>) {
        print_warning(warning)
    }
}

/// Print a library warning on stderr, with what to do about it in the CLI's words.
pub fn print_warning(warning: &cairn::context::Warning<'_>) {
    use cairn::context::Warning;
    match warning {
        Warning::SkippedDamagedSnapshot(d) => {
            eprintln!("cairn: warning: {d}; `cairn forget {}` removes it; it is skipped", d.id.short())
        }
        Warning::MountRefreshFailed(_) | Warning::MountRequestFailed(_) => eprintln!("cairn: mount: {warning}"),
        w => eprintln!("cairn: warning: {w}"),
    }
}

/// Record a lock this process holds, so that [`exit_now`] can remove its file.
fn hold(lock: &Arc<cairn::lock::RepoLock>) {
    HELD_LOCKS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(lock));
}

/// This process's cancellation token: cancelled by the first Ctrl-C or SIGTERM (the second one
/// exits at once). The CLI is the process, so this one token may be global; the library takes
/// it as an argument ([`cairn::Ctx`]).
pub fn cancel() -> &'static cairn::Cancel {
    static CANCEL: std::sync::OnceLock<cairn::Cancel> = std::sync::OnceLock::new();
    CANCEL.get_or_init(cairn::Cancel::new)
}

/// A library message about a backend option ("backend option timeout=0: ...") as the user
/// wrote it ("-o timeout=0: ...").
fn option_flag(e: Error) -> Error {
    match e {
        Error::Usage(m) => match m.strip_prefix("backend option ") {
            Some(rest) => Error::Usage(format!("-o {rest}")),
            None => Error::Usage(m),
        },
        e => e,
    }
}

/// The error for `--no-lock` given to a command that writes.
fn no_lock_refused(command: &str) -> Error {
    Error::Usage(format!(
        "--no-lock is only for commands that only read the repository (and dry runs); `cairn {command}` writes to it and must take a lock"
    ))
}

/// The exit code of error `e` (restic's codes where restic has one; see README, "Exit codes").
pub fn exit_code(e: &Error) -> u8 {
    use cairn::error::Kind;
    match e.kind() {
        Kind::NoRepository => EXIT_NO_REPOSITORY,
        Kind::WrongPassword => EXIT_WRONG_PASSWORD,
        Kind::Interrupted => EXIT_INTERRUPTED,
        Kind::Locked => EXIT_LOCKED,
        Kind::Transient => EXIT_STORAGE_UNREACHABLE,
        Kind::Permanent => EXIT_STORAGE_REFUSED,
        Kind::Corrupt => EXIT_DAMAGED,
        Kind::Usage | Kind::Refused | Kind::NotFound | Kind::Io | Kind::Source | Kind::Internal => EXIT_FATAL,
    }
}

/// What to do about an exit code, said after the error (none for the codes whose message
/// says it already).
pub fn exit_hint(code: u8) -> Option<&'static str> {
    match code {
        EXIT_STORAGE_UNREACHABLE => Some("the storage could not be reached or kept failing (this says nothing about the data in the repository): try again later, and check the endpoint and the network"),
        EXIT_STORAGE_REFUSED => Some("the storage refused the request: fix the configuration (endpoint, credentials, permissions, bucket)"),
        EXIT_DAMAGED => Some("repository data is damaged: run `cairn check --read-data` to see what it affects"),
        EXIT_NO_REPOSITORY => Some("create a repository there with `cairn init`, or give the right one with -r/--repo"),
        EXIT_LOCKED => Some("if the process holding a lock is gone, `cairn unlock` removes its lock file (stale and unreadable ones; with --remove-all, every lock)"),
        _ => None,
    }
}

/// What to do about error `e`, which ends the command with exit `code`: the CLI's words (the
/// library's messages name no command).
fn error_hint(e: &Error, code: u8) -> Option<&'static str> {
    match e {
        Error::SnapshotNotFound(_) => Some("list the snapshots with `cairn snapshots`"),
        Error::WrongSourcePassword { .. } => Some("the source repository (--from-repo) takes its own password: --from-password-file, --from-password-command or CAIRN_FROM_PASSWORD, never the one of -r"),
        _ => exit_hint(code),
    }
}

/// Print an error with its chain of causes.
pub fn print_error(e: &dyn std::error::Error) {
    eprintln!("cairn: {}", error_text(e));
}

/// The error that ends a command under `--json`, on stderr as one JSON line (restic's
/// `exit_error` message): `{"message_type":"exit_error","code":N,"message":"...","hint":"..."}`,
/// `hint` only where [`exit_hint`] has one.
#[derive(serde::Serialize)]
struct ExitErrorMessage<'a> {
    message_type: &'static str,
    code: u8,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

/// Print `e`, which ends the command with exit `code`, as an [`ExitErrorMessage`].
fn print_json_error(e: &Error, code: u8) {
    let message = error_text(e);
    let msg = ExitErrorMessage { message_type: "exit_error", code, message, hint: error_hint(e, code) };
    match serde_json::to_string(&msg) {
        Ok(line) => eprintln!("{line}"),
        Err(_) => print_error(e),
    }
}

/// An error with its chain of causes, each cause once, as one line.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!(": {text}"));
        }
        src = s.source();
    }
    msg
}

/// Parse, run, and turn the outcome into restic's exit codes.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (cli, applied) = match profile_apply::parse(args.clone()) {
        Ok(x) => x,
        Err(e) => {
            if health_requested(&args) {
                // A monitoring plugin whose configuration is wrong is UNKNOWN (3), with its line.
                out(&format!("CAIRN HEALTH UNKNOWN - {}", error_text(&e)));
                return ExitCode::from(3);
            }
            print_error(&e);
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let _ = ctrlc::set_handler(|| {
        if cancel().cancel() {
            // Second signal: stop now.
            exit_now(EXIT_INTERRUPTED);
        }
    });
    let started = (std::time::SystemTime::now(), std::time::Instant::now());
    let result = match &cli.command {
        Command::Init(a) => init::run(&cli.global, a),
        Command::Backup(a) => backup::run(&cli.global, a, applied.as_ref()),
        Command::Snapshots(a) => snapshots::run(&cli.global, a),
        Command::Health(a) => health::run(&cli.global, a),
        Command::Restore(a) => restore::run(&cli.global, a),
        Command::Drill(a) => drill::run(&cli.global, a, applied.as_ref()),
        Command::Forget(a) => forget::run(&cli.global, a),
        Command::Key(a) => key::run(&cli.global, a),
        Command::Prune(a) => prune::run(&cli.global, a),
        Command::Unlock(a) => unlock::run(&cli.global, a),
        Command::Check(a) => check::run(&cli.global, a),
        Command::Ls(a) => ls::run(&cli.global, a),
        Command::Find(a) => find::run(&cli.global, a),
        Command::Diff(a) => diff::run(&cli.global, a),
        Command::Dump(a) => dump::run(&cli.global, a),
        Command::Mount(a) => mount::run(&cli.global, a),
        Command::Config(a) => config::run(&cli.global, a, applied.as_ref()),
        Command::Schedule(a) => schedule::run(&cli.global, a, applied.as_ref()),
        Command::Generate(a) => generate::run(&cli.global, a),
        Command::Version(a) => version::run(&cli.global, a),
        Command::Run(a) => run::run(&cli.global, a, applied.as_ref()),
        Command::Stats(a) => stats::run(&cli.global, a),
        Command::Copy(a) => copy::run(&cli.global, a, applied.as_ref()),
    };
    let result = match &applied {
        Some(p) => result.map_err(|e| p.explain(e)),
        None => result,
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if e.kind() == cairn::error::Kind::Usage {
                // A mistyped value ran nothing: the last real run's metrics stay.
                metrics::skip();
            }
            if cli.global.json {
                print_json_error(&e, code);
            } else {
                print_error(&e);
                if let Some(h) = error_hint(&e, code) {
                    eprintln!("cairn: {h}");
                }
            }
            code
        }
    };
    let profile = match (&cli.global.profile, &applied) {
        (_, Some(p)) => p.name.clone(),
        (Some(n), None) => n.clone(),
        (None, None) => String::new(),
    };
    let metrics_file = cli.global.metrics_file();
    // The host the profile's snapshots carry (`[backup] host`), as health and snapshots name it
    // (a command that is about another host says so: metrics::host).
    let host = applied.as_ref().and_then(|p| p.profile.backup.host.clone()).unwrap_or_else(cairn::util::hostname);
    let sinks = metrics::Sinks {
        file: metrics_file.as_deref(),
        push: cli.global.metrics_push(),
        profile: &profile,
        host: &host,
        repository: &cli.global.repo,
    };
    metrics::finish(&sinks, cli.command.name(), started.0, started.1.elapsed(), code);
    ExitCode::from(code)
}

impl Command {
    /// The command's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Backup(_) => "backup",
            Command::Snapshots(_) => "snapshots",
            Command::Health(_) => "health",
            Command::Restore(_) => "restore",
            Command::Forget(_) => "forget",
            Command::Key(_) => "key",
            Command::Prune(_) => "prune",
            Command::Unlock(_) => "unlock",
            Command::Check(_) => "check",
            Command::Ls(_) => "ls",
            Command::Find(_) => "find",
            Command::Diff(_) => "diff",
            Command::Dump(_) => "dump",
            Command::Mount(_) => "mount",
            Command::Config(_) => "config",
            Command::Schedule(_) => "schedule",
            Command::Generate(_) => "generate",
            Command::Version(_) => "version",
            Command::Run(_) => "run",
            Command::Stats(_) => "stats",
            Command::Copy(_) => "copy",
            Command::Drill(_) => "drill",
        }
    }
}

/// True when command line `args` runs `cairn health` (looked for before it could be parsed:
/// `health` as one of the arguments), whose every failure is UNKNOWN (exit 3).
fn health_requested(args: &[std::ffi::OsString]) -> bool {
    let m = Cli::command().ignore_errors(true).try_get_matches_from(args);
    matches!(m.as_ref().map(|m| m.subcommand_name()), Ok(Some("health"))) || args.iter().skip(1).any(|a| a == "health")
}

/// The locks this process holds, so that an exit that skips destructors can still remove
/// their files (weak: a lock dropped normally is released by its own `Drop`).
static HELD_LOCKS: std::sync::Mutex<Vec<std::sync::Weak<cairn::lock::RepoLock>>> = std::sync::Mutex::new(Vec::new());

/// Exit now with `code`, after removing the lock files this process holds.
pub fn exit_now(code: u8) -> ! {
    let held = std::mem::take(&mut *HELD_LOCKS.lock().unwrap_or_else(|p| p.into_inner()));
    for l in held.iter().filter_map(std::sync::Weak::upgrade) {
        l.release();
    }
    std::process::exit(code as i32)
}

/// Write a line to stdout; a closed pipe (`cairn snapshots | head`) is not an error: the
/// process exits 0 at once (releasing its locks).
pub fn out(line: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if writeln!(o, "{line}").is_err() {
        drop(o);
        exit_now(EXIT_OK);
    }
}

/// Snapshot selection flags shared by commands that pick snapshots.
#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag; `a,b` means both (repeatable: any of them)
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable: all of them); a dump that failed in
    /// a snapshot is not included there
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    /// As the library's filter.
    pub fn filter(&self) -> cairn::snapshot::SnapshotFilter {
        cairn::snapshot::SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }

    /// `e`, a path not found in the snapshot `spec` chose, with the snapshot named (id, host,
    /// paths, time) and, for `latest` without filters, how to pick the snapshot that holds
    /// the path. Other errors are returned as they are.
    pub fn explain_missing_path(
        &self,
        e: Error,
        spec: &str,
        id: &cairn::id::SnapshotId,
        snap: &cairn::snapshot::Snapshot,
    ) -> Error {
        let Error::Usage(msg) = e else { return e };
        let mut msg = format!(
            "{msg} (snapshot {}, chosen as {spec:?}: host {}, paths {}, taken {})",
            id.short(),
            snap.hostname,
            snap.paths.join(" "),
            snapshot_time(snap)
        );
        let failed = snap.components.iter().filter(|c| c.status == cairn::snapshot::ComponentOutcome::Failed);
        for c in failed {
            msg.push_str(&format!(
                "; {} failed in that snapshot ({}) and is not in it: --path {} picks the newest snapshot that holds it",
                c.path, c.reason, c.path
            ));
        }
        if spec == "latest" && self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty() {
            msg.push_str(
                "; `latest` is the newest snapshot whatever it holds: pick the one with the file by --path (a path given to its backup, e.g. --path /maildb.dump for a --stdin backup named maildb.dump), --host or --tag, or give its id",
            );
        }
        Error::Usage(msg)
    }
}
