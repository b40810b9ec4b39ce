//! Profiles: a TOML file of options (`-P NAME` or `--config FILE`), applied under restic's and
//! rustic's precedence: a command-line flag wins over an environment variable, which wins over
//! the profile, which wins over the default.
//!
//! The profile is applied to the command line itself: its keys are spelled as the long flags
//! are, so each key that neither a flag nor an environment variable gave becomes that flag, and
//! the command line is parsed again. Every command therefore reads the profile the same way,
//! with the same checks as its flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use cairn::Error;

/// A profile file as written: every section optional, unknown keys refused.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// Global options: where the repository is and how to open it.
    #[serde(default)]
    pub repository: RepositorySection,
    /// Options of `backup` (and of `run`'s backup step).
    #[serde(default)]
    pub backup: BackupSection,
    /// Copy targets: other profiles whose repositories `copy` and `run` copy snapshots into.
    #[serde(default)]
    pub copy: CopySection,
    /// Options of `forget` (and of `run`'s forget step).
    #[serde(default)]
    pub forget: ForgetSection,
    /// Options of `check`.
    #[serde(default)]
    pub check: CheckSection,
    /// Options of `prune` (and of the prune that `forget --prune` runs).
    #[serde(default)]
    pub prune: PruneSection,
    /// Options of `restore`.
    #[serde(default)]
    pub restore: RestoreSection,
    /// Options of `drill`.
    #[serde(default)]
    pub drill: DrillSection,
    /// Commands `cairn run` runs around its steps.
    #[serde(default)]
    pub hooks: Hooks,
    /// Where metrics go, and the URL `cairn run` pings.
    #[serde(default)]
    pub monitoring: MonitoringSection,
    /// When the night runs: the defaults of `schedule install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<super::schedule::ScheduleConfig>,
}

/// `[repository]`: one key per global option, plus `environment-file`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepositorySection {
    /// `-r/--repo`.
    pub repo: Option<String>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--password-command`.
    pub password_command: Option<String>,
    /// `-o KEY=VALUE`, as a table (`{ "s3.region" = "eu-west-1" }`) or a list of `KEY=VALUE`.
    pub options: Option<BackendOptions>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--no-cache`.
    pub no_cache: Option<bool>,
    /// `--limit-upload`, KiB/s.
    pub limit_upload: Option<u64>,
    /// `--limit-download`, KiB/s.
    pub limit_download: Option<u64>,
    /// `--retry-lock`, a duration (`30s`, `10m`).
    pub retry_lock: Option<String>,
    /// `--quiet`.
    pub quiet: Option<bool>,
    /// `--verbose`, repeated this many times.
    pub verbose: Option<u8>,
    /// A file of `KEY=VALUE` lines put into the environment (unless already set) before the
    /// repository is opened; it must not be accessible by group or others.
    pub environment_file: Option<PathBuf>,
}

/// Backend options: a table of key to value, or a list of `KEY=VALUE` strings.
#[derive(Deserialize, Serialize, Debug)]
#[serde(untagged)]
pub enum BackendOptions {
    /// `options = { "s3.region" = "eu-west-1" }`.
    Table(std::collections::BTreeMap<String, String>),
    /// `options = ["s3.region=eu-west-1"]`.
    List(Vec<String>),
}

/// `[backup]`: one key per `backup` option that belongs in a configuration.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupSection {
    /// The files and directories to back up (the positional arguments).
    pub paths: Option<Vec<PathBuf>>,
    /// `--exclude`, a list of globs.
    pub exclude: Option<Vec<String>>,
    /// `--exclude-file`, a list of files.
    pub exclude_file: Option<Vec<PathBuf>>,
    /// `--files-from`, a list of files listing paths (comments, globs).
    pub files_from: Option<Vec<PathBuf>>,
    /// `--files-from-verbatim`, a list of files listing paths as written.
    pub files_from_verbatim: Option<Vec<PathBuf>>,
    /// `--files-from-raw`, a list of files of NUL-separated paths.
    pub files_from_raw: Option<Vec<PathBuf>>,
    /// `--exclude-caches`.
    pub exclude_caches: Option<bool>,
    /// `--exclude-if-present`, a list of `FILE` or `FILE:HEADER`.
    pub exclude_if_present: Option<Vec<String>>,
    /// `--exclude-larger-than`, a size (`512K`, `2G`).
    pub exclude_larger_than: Option<Scalar>,
    /// `--skip-if-unchanged`.
    pub skip_if_unchanged: Option<bool>,
    /// `--host`.
    pub host: Option<String>,
    /// `--tag`, a list.
    pub tags: Option<Vec<String>>,
    /// `--one-file-system`.
    pub one_file_system: Option<bool>,
    /// `--compression`: a mode name or a zstd level.
    pub compression: Option<Scalar>,
    /// `--ignore-ctime`.
    pub ignore_ctime: Option<bool>,
    /// `--ignore-inode`.
    pub ignore_inode: Option<bool>,
    /// `--force`.
    pub force: Option<bool>,
    /// Commands whose output goes into the snapshot (`cairn backup` runs them, see
    /// `cairn::archiver::CommandSource`; `--command` flags replace the list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<BackupCommand>,
}

/// `[[backup.command]]`: a command whose standard output is stored at `path`.
#[derive(Deserialize, Serialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupCommand {
    /// Where the output is stored in the snapshot (absolute).
    pub path: String,
    /// The command and its arguments (no shell).
    pub run: Vec<String>,
    /// A command that reads the same bytes on its standard input and must succeed.
    pub verify: Option<Vec<String>>,
    /// How long the command may run (`2h`).
    pub timeout: Option<String>,
    /// What `cairn drill` runs on the restored output: a list of arguments, or one string
    /// split as a shell would (no shell unless it names one).
    pub drill: Option<CommandLine>,
}

/// A command given as a list of arguments or as one string split as a shell would
/// (`shlex`), with no shell unless it names one.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(untagged)]
pub enum CommandLine {
    /// `["pg_restore", "--list"]`.
    Words(Vec<String>),
    /// `"sh -c 'pg_restore -d scratch \"$CAIRN_DRILL_FILE\"'"`.
    Line(String),
}

impl CommandLine {
    /// The program and its arguments. Errors: the text of what is wrong (empty, unbalanced
    /// quotes).
    pub fn argv(&self) -> Result<Vec<String>, String> {
        let words = match self {
            CommandLine::Words(w) => w.clone(),
            CommandLine::Line(l) => {
                shlex::split(l).ok_or("unbalanced quotes or a trailing backslash in the command")?
            }
        };
        if words.is_empty() {
            return Err("an empty command".into());
        }
        Ok(words)
    }
}

/// `[drill]`: the defaults of `cairn drill`'s options.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DrillSection {
    /// `--rto`, a duration (`30m`).
    pub rto: Option<String>,
    /// `--target`, an empty or missing directory.
    pub target: Option<PathBuf>,
    /// `--component`, a list of paths.
    pub components: Option<Vec<String>>,
    /// `--command-timeout`, a duration.
    pub command_timeout: Option<String>,
    /// `--keep`.
    pub keep: Option<bool>,
}

/// `[copy]`: the copy targets and which snapshots go there (see `super::copy_targets`).
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CopySection {
    /// Names of other profiles (found as `-P NAME` finds them) whose repositories receive this
    /// profile's snapshots: `cairn -P NAME copy` copies into each, `cairn -P NAME run` after
    /// the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Only snapshots of these hosts (default: the profile's own host, `[backup] host`, else
    /// this machine's name).
    pub hosts: Option<Vec<String>>,
    /// Only snapshots with these tags, a list of `TAG[,TAG]` (as `--tag`).
    pub tags: Option<Vec<String>>,
    /// Only snapshots that include these paths (as `--path`).
    pub paths: Option<Vec<String>>,
}

/// `[forget]`: the keep policy, the snapshot filters, and `prune`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ForgetSection {
    /// `--keep-last`: a number or `"unlimited"`.
    pub keep_last: Option<Scalar>,
    /// `--keep-hourly`.
    pub keep_hourly: Option<Scalar>,
    /// `--keep-daily`.
    pub keep_daily: Option<Scalar>,
    /// `--keep-weekly`.
    pub keep_weekly: Option<Scalar>,
    /// `--keep-monthly`.
    pub keep_monthly: Option<Scalar>,
    /// `--keep-yearly`.
    pub keep_yearly: Option<Scalar>,
    /// `--keep-within`, a duration (`1y5m7d2h`).
    pub keep_within: Option<String>,
    /// `--keep-within-hourly`.
    pub keep_within_hourly: Option<String>,
    /// `--keep-within-daily`.
    pub keep_within_daily: Option<String>,
    /// `--keep-within-weekly`.
    pub keep_within_weekly: Option<String>,
    /// `--keep-within-monthly`.
    pub keep_within_monthly: Option<String>,
    /// `--keep-within-yearly`.
    pub keep_within_yearly: Option<String>,
    /// `--keep-tag`, a list of `TAG[,TAG]`.
    pub keep_tag: Option<Vec<String>>,
    /// `--host` filter, a list.
    pub hosts: Option<Vec<String>>,
    /// `--tag` filter, a list of `TAG[,TAG]`.
    pub tags: Option<Vec<String>>,
    /// `--path` filter, a list.
    pub paths: Option<Vec<String>>,
    /// `--group-by`.
    pub group_by: Option<String>,
    /// `--prune`: prune after forgetting.
    pub prune: Option<bool>,
    /// `--max-unused` of that prune.
    pub max_unused: Option<String>,
}

/// `[check]`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSection {
    /// `--read-data`.
    pub read_data: Option<bool>,
    /// `--read-data-subset` (`10%`, `1/7`).
    pub read_data_subset: Option<String>,
}

/// `[prune]`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruneSection {
    /// `--max-unused`.
    pub max_unused: Option<String>,
}

/// `[restore]`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestoreSection {
    /// `--verify`.
    pub verify: Option<bool>,
    /// `--overwrite` (`always`, `if-changed`, `if-newer`, `never`).
    pub overwrite: Option<String>,
}

/// `[monitoring]`: metrics for every command that writes them, and `cairn run`'s pings.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MonitoringSection {
    /// `--metrics-file`.
    pub metrics_file: Option<PathBuf>,
    /// `--metrics-push`.
    pub metrics_push: Option<String>,
    /// A healthchecks.io-style URL `cairn run` pings: `URL/start` before, `URL` after a
    /// success, `URL/fail` after a failure (with the end of the run's log as the body).
    pub ping_url: Option<String>,
    /// Instead of `ping-url` + `/start` ("" pings nothing then).
    pub ping_start_url: Option<String>,
    /// Instead of `ping-url` ("" pings nothing then).
    pub ping_success_url: Option<String>,
    /// Instead of `ping-url` + `/fail` ("" pings nothing then).
    pub ping_failure_url: Option<String>,
    /// How long one ping may take, a duration (default 10s).
    pub ping_timeout: Option<String>,
    /// Tries of one ping in all (default 3).
    pub ping_attempts: Option<u32>,
}

/// `[hooks]`: lists of commands (each an argument list, no shell).
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hooks {
    /// Before the backup; one that fails stops the run.
    #[serde(default)]
    pub before: Vec<Vec<String>>,
    /// After every step succeeded.
    #[serde(default)]
    pub after_success: Vec<Vec<String>>,
    /// After a step failed.
    #[serde(default)]
    pub after_failure: Vec<Vec<String>>,
    /// Last, whatever happened.
    #[serde(default)]
    pub finally: Vec<Vec<String>>,
}

/// A value given as a number or a string (`keep-daily = 7`, `keep-daily = "unlimited"`).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Int).map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A loaded profile and what it set.
#[derive(Debug)]
pub struct Applied {
    /// The profile's name (`-P NAME`, or the `--config` file's stem).
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its text (for spans).
    pub text: String,
    /// Its settings.
    pub profile: Profile,
    /// The options it gave the command line (those that no flag or variable gave).
    pub injected: Vec<Injected>,
    /// The variables its environment file put into the environment (names only).
    pub env_set: Vec<String>,
}

/// One option a profile gave the command line.
#[derive(Debug, Clone)]
pub struct Injected {
    /// `repository`, `backup`, ...
    pub section: String,
    /// The profile's key.
    pub key: String,
    /// The long flag it became (without `--`); empty for positional arguments.
    pub flag: String,
    /// 1-based line of the key in the file.
    pub line: usize,
}

impl Applied {
    /// `FILE:LINE: [section] key` of key `key` of `section`, for messages.
    pub fn at(&self, section: &str, key: &str) -> String {
        let line = find_key(&self.text, section, key).map(|o| line_col(&self.text, o).0).unwrap_or(1);
        format!("{}:{line}: [{section}] {key}", self.file.display())
    }

    /// `e`, a usage error about a flag the profile gave, with the profile's file, line and key.
    pub fn explain(&self, e: Error) -> Error {
        let Error::Usage(m) = &e else { return e };
        for i in &self.injected {
            if !i.flag.is_empty() && m.starts_with(&format!("--{} ", i.flag))
                || m.starts_with(&format!("--{}:", i.flag))
            {
                return Error::Usage(format!("{}:{}: [{}] {}: {m}", self.file.display(), i.line, i.section, i.key));
            }
        }
        e
    }
}

/// Where `-P NAME` looks, in order: `$XDG_CONFIG_HOME/cairn`, `~/.config/cairn`, `/etc/cairn`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        dirs.push(PathBuf::from(x).join("cairn"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(PathBuf::from(h).join(".config").join("cairn"));
    }
    dirs.push(PathBuf::from("/etc/cairn"));
    dirs
}

/// The file of profile `name`: the first `NAME.toml` of [`search_dirs`]. Errors: a name with
/// a `/` or empty, or found nowhere (the message lists where it looked).
pub fn find(name: &str) -> Result<PathBuf, Error> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(Error::usage(format!(
            "-P/--profile {name:?}: a profile name is a file name without .toml (give a path with --config FILE)"
        )));
    }
    let candidates: Vec<PathBuf> = search_dirs().into_iter().map(|d| d.join(format!("{name}.toml"))).collect();
    if let Some(f) = candidates.iter().find(|f| f.is_file()) {
        return Ok(f.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(Error::usage(format!("profile {name:?} not found; looked for {}", looked.join(", "))))
}

/// 1-based line and column of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Byte offset of key `key` of table `section` (of the section itself when `key` is empty).
fn find_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let (k, v) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == section)?;
    if key.is_empty() {
        return Some(k.span().start);
    }
    let t = v.get_ref().as_table()?;
    t.iter().find(|(k, _)| k.get_ref() == key).map(|(k, _)| k.span().start)
}

/// `[section] key` of the entry whose key or value holds byte `offset`.
fn key_at(doc: &DeTable, offset: usize) -> Option<String> {
    let holds = |r: std::ops::Range<usize>| r.start <= offset && offset <= r.end;
    for (k, v) in doc.iter() {
        if let Some(t) = v.get_ref().as_table() {
            for (k2, v2) in t.iter() {
                if holds(k2.span()) || holds(v2.span()) {
                    return Some(format!("[{}] {}", k.get_ref(), k2.get_ref()));
                }
            }
        }
        if holds(k.span()) || holds(v.span()) {
            return Some(k.get_ref().to_string());
        }
    }
    None
}

/// Read and check the profile in `file`: syntax, unknown keys, types, and the values that
/// can be checked without a command (durations, hooks, commands). Errors name the file, line
/// and key.
pub fn load(file: &Path) -> Result<(String, Profile), Error> {
    let fail = |e: std::io::Error| Error::usage(format!("cannot read the profile {}: {e}", file.display()));
    // The checks and the read are of the same open file.
    let mut f = super::profile_env::open_nonblocking(file).map_err(fail)?;
    let meta = f.metadata().map_err(fail)?;
    super::profile_env::trusted(&meta, 0o022).map_err(|why| {
        Error::usage(format!(
            "the profile {} {why}: it names the commands cairn runs (hooks, dumps, the password command), so only its owner may change it, and its owner must be you or root",
            file.display()
        ))
    })?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(fail)?;
    let profile: Profile = toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, col) = line_col(&text, offset);
        let key = DeTable::parse(&text).ok().and_then(|d| key_at(d.get_ref(), offset));
        let key = key.map(|k| format!(" {k}:")).unwrap_or_default();
        Error::usage(format!("{}:{line}:{col}:{key} {}", file.display(), e.message().trim()))
    })?;
    check(file, &text, &profile)?;
    Ok((text, profile))
}

/// The checks serde cannot make.
fn check(file: &Path, text: &str, p: &Profile) -> Result<(), Error> {
    let at = |section: &str, key: &str| {
        let line = find_key(text, section, key).map(|o| line_col(text, o).0).unwrap_or(1);
        format!("{}:{line}: [{section}] {key}", file.display())
    };
    if p.repository.password_file.is_some() && p.repository.password_command.is_some() {
        return Err(Error::usage(format!(
            "{}: give either password-file or password-command, not both",
            at("repository", "password-command")
        )));
    }
    for (i, c) in p.backup.command.iter().enumerate() {
        let n = i + 1;
        if !c.path.starts_with('/') || c.path.ends_with('/') {
            return Err(Error::usage(format!(
                "{}: [[backup.command]] #{n}: path {:?} must be an absolute file path (/postgres/maildb.dump)",
                at("backup", "command"),
                c.path
            )));
        }
        if c.run.is_empty() || c.verify.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::usage(format!(
                "{}: [[backup.command]] #{n} ({}): run and verify are non-empty lists: [\"program\", \"arg\", ...]",
                at("backup", "command"),
                c.path
            )));
        }
        if let Some(why) = c.drill.as_ref().and_then(|d| d.argv().err()) {
            return Err(Error::usage(format!(
                "{}: [[backup.command]] #{n} ({}) drill: {why}",
                at("backup", "command"),
                c.path
            )));
        }
        if let Some(t) = &c.timeout {
            let d = super::parse_duration(t).map_err(|e| {
                Error::usage(format!("{}: [[backup.command]] #{n} timeout {t:?}: {e}", at("backup", "command")))
            })?;
            if d.is_zero() {
                return Err(Error::usage(format!(
                    "{}: [[backup.command]] #{n} timeout {t:?}: must be longer than zero (leave it out for none)",
                    at("backup", "command")
                )));
            }
        }
    }
    let hooks = [
        ("before", &p.hooks.before),
        ("after-success", &p.hooks.after_success),
        ("after-failure", &p.hooks.after_failure),
        ("finally", &p.hooks.finally),
    ];
    for (key, list) in hooks {
        if list.iter().any(Vec::is_empty) {
            return Err(Error::usage(format!(
                "{}: each hook is a non-empty list: [\"program\", \"arg\", ...]",
                at("hooks", key)
            )));
        }
    }
    if let Some(r) = p.schedule.as_ref().and_then(|s| s.run.as_ref()) {
        if r.trim().is_empty() {
            return Err(Error::usage(format!("{}: empty; e.g. \"*-*-* 02:00\"", at("schedule", "run"))));
        }
    }
    for (key, v) in [("rto", &p.drill.rto), ("command-timeout", &p.drill.command_timeout)] {
        if let Some(d) = v {
            super::parse_duration(d).map_err(|e| Error::usage(format!("{}: {d:?}: {e}", at("drill", key))))?;
        }
    }
    check_copy(file, &p.copy, &at)?;
    if let Some(d) = &p.repository.retry_lock {
        super::parse_duration(d)
            .map_err(|e| Error::usage(format!("{}: {d:?}: {e}", at("repository", "retry-lock"))))?;
    }
    Ok(())
}

/// The checks of `[copy]`: target names that can name a profile, each once, not the profile
/// itself (the stem of `file`), and filters only with targets. `at` gives `FILE:LINE: [section]
/// key` for messages.
fn check_copy(file: &Path, c: &CopySection, at: &dyn Fn(&str, &str) -> String) -> Result<(), Error> {
    let own = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    for (i, name) in c.to.iter().enumerate() {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::usage(format!(
                "{}: {name:?} is not a profile name (a file name without .toml, found as -P NAME finds it)",
                at("copy", "to")
            )));
        }
        if *name == own {
            return Err(Error::usage(format!(
                "{}: {name:?} is this profile itself: a copy target is another profile, with another repository",
                at("copy", "to")
            )));
        }
        if c.to.get(..i).is_some_and(|before| before.contains(name)) {
            return Err(Error::usage(format!("{}: {name:?} is named twice", at("copy", "to"))));
        }
    }
    let filters = [("hosts", &c.hosts), ("tags", &c.tags), ("paths", &c.paths)];
    if let (true, Some((key, _))) = (c.to.is_empty(), filters.iter().find(|(_, v)| v.is_some())) {
        return Err(Error::usage(format!(
            "{}: a filter of copies, but [copy] names no target: add to = [\"offsite\"] (another profile)",
            at("copy", key)
        )));
    }
    Ok(())
}

/// The long flag (without `--`) that key `key` of `section` sets; `Some("")` for the
/// positional arguments (backup's paths); `None` for keys that are not options.
pub fn flag_of(section: &str, key: &str) -> Option<&'static str> {
    let flag: &'static str = match (section, key) {
        ("repository", "environment-file") | ("backup", "command") => return None,
        ("repository", "options") => "option",
        ("backup", "paths") => "",
        ("backup" | "forget", "tags") => "tag",
        ("forget", "hosts") => "host",
        ("forget", "paths") => "path",
        ("monitoring", "metrics-file") => "metrics-file",
        ("monitoring", "metrics-push") => "metrics-push",
        ("drill", "components") => "component",
        ("repository" | "backup" | "forget" | "check" | "prune" | "restore" | "drill", k) => {
            return SECTION_KEYS.iter().find(|s| s.0 == section).and_then(|s| s.1.iter().copied().find(|x| *x == k))
        }
        _ => return None,
    };
    Some(flag)
}

/// The keys of each section that are flags spelled the same way.
const SECTION_KEYS: [(&str, &[&str]); 7] = [
    (
        "repository",
        &[
            "repo",
            "password-file",
            "password-command",
            "cache-dir",
            "no-cache",
            "limit-upload",
            "limit-download",
            "retry-lock",
            "quiet",
            "verbose",
        ],
    ),
    (
        "backup",
        &[
            "exclude",
            "exclude-file",
            "files-from",
            "files-from-verbatim",
            "files-from-raw",
            "exclude-caches",
            "exclude-if-present",
            "exclude-larger-than",
            "skip-if-unchanged",
            "host",
            "one-file-system",
            "compression",
            "ignore-ctime",
            "ignore-inode",
            "force",
        ],
    ),
    (
        "forget",
        &[
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
            "keep-within",
            "keep-within-hourly",
            "keep-within-daily",
            "keep-within-weekly",
            "keep-within-monthly",
            "keep-within-yearly",
            "keep-tag",
            "group-by",
            "prune",
            "max-unused",
        ],
    ),
    ("check", &["read-data", "read-data-subset"]),
    ("prune", &["max-unused"]),
    ("restore", &["verify", "overwrite"]),
    ("drill", &["rto", "target", "command-timeout", "keep"]),
];
