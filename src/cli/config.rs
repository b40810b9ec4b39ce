//! `cairn config`: the effective settings of a profile, secrets redacted (rustic's
//! `show-config`); its long help (`cairn help config`) documents every profile key.

use clap::parser::ValueSource;
use clap::{Args, CommandFactory};
use serde_json::{json, Map, Value};

use cairn::Error;

use super::profile::Applied;
use super::{out, Cli, GlobalOpts, EXIT_OK};

/// Arguments of `config` (none: the global -P/--config choose the profile).
#[derive(Args)]
pub struct ConfigArgs {}

/// `cairn help config`: the profile format, key by key.
pub const LONG_HELP: &str = r#"Show the effective settings of a profile, secrets redacted: each global option with where
its value came from (flag, environment, profile, default), then the profile's other sections.

PROFILES
  cairn -P NAME COMMAND reads NAME.toml from the first of $XDG_CONFIG_HOME/cairn,
  ~/.config/cairn and /etc/cairn that has it (env CAIRN_PROFILE); cairn --config FILE COMMAND
  reads FILE (env CAIRN_CONFIG). Precedence, for every option: a command-line flag, then an
  environment variable, then the profile, then the default. A list given by flags (--tag,
  --exclude, paths) replaces the profile's list. A boolean key set to true cannot be turned off
  from the command line (as with restic's flags, there is no --no-X). Unknown keys, wrong types,
  and a profile without a repository are errors naming the file, line and key, before anything
  runs. Relative paths are relative to the current directory, as on the command line.

  Keys are spelled as the long flags are; lists are TOML arrays.

[repository]  (every command)
  repo = "/srv/backup/repo"          -r/--repo (or s3:..., opendal:...)
  password-file = "/etc/cairn/pw"    --password-file
  password-command = "pass cairn"    --password-command
  options = { "s3.region" = "eu-west-1", connections = "8" }
                                     -o KEY=VALUE (a table, or a list of "KEY=VALUE")
  cache-dir = "/var/cache/cairn"     --cache-dir
  no-cache = true                    --no-cache
  limit-upload = 10240               --limit-upload (KiB/s)
  limit-download = 10240             --limit-download (KiB/s)
  retry-lock = "10m"                 --retry-lock
  quiet = true                       --quiet
  verbose = 1                        --verbose, this many times
  environment-file = "/etc/cairn/aws.env"
      KEY=VALUE lines (# comments, optional `export `, optional quotes) put into the
      environment before the repository is opened (AWS_ACCESS_KEY_ID...); a variable already
      set wins. The file must have no group or other access (chmod 600).
  A password given by CAIRN_PASSWORD, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND or a flag
  wins over the profile's password-file and password-command.

[backup]  (cairn backup, cairn run)
  paths = ["/var/vmail", "/etc"]     the PATH arguments
  exclude = ["/var/vmail/**/tmp/*"]  --exclude
  exclude-file = ["/etc/cairn/excludes"]   --exclude-file
  files-from = ["/etc/cairn/paths"]  --files-from (one path or glob a line, # comments)
  files-from-verbatim = [...]        --files-from-verbatim (one path a line, as written)
  files-from-raw = [...]             --files-from-raw (NUL-separated paths)
  exclude-caches = true              --exclude-caches (contents of CACHEDIR.TAG directories)
  exclude-if-present = [".nobackup"] --exclude-if-present (FILE or FILE:HEADER)
  exclude-larger-than = "1G"         --exclude-larger-than (K, M, G, T: powers of 1024)
  skip-if-unchanged = true           --skip-if-unchanged (no snapshot when nothing changed)
  host = "mail1"                     --host
  tags = ["nightly"]                 --tag
  one-file-system = true             --one-file-system
  compression = "max"                --compression (auto, off, fastest, max, or a level 1-22)
  ignore-ctime = true                --ignore-ctime
  ignore-inode = true                --ignore-inode
  force = true                       --force
  [[backup.command]]                 --command: a command's output stored at `path` in the same
                                     snapshot: path = "/postgres/db.dump" (absolute, not inside
                                     a backed-up path), run = ["pg_dump", "-Fc", "db"] (no shell),
                                     verify = ["pg_restore", "--list"] (optional: fed the same
                                     bytes; its failure fails the dump), timeout = "2h"
                                     (optional); a --command flag replaces the whole list;
                                     drill = "sh -c 'pg_restore -d scratch \"$CAIRN_DRILL_FILE\"'"
                                     (optional: what `cairn drill` runs on the restored file,
                                     a list or a string split as a shell would, no shell
                                     unless it names one; --drill-command replaces them)

[forget]  (cairn forget, cairn run)
  keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly = N or "unlimited"
  keep-within, keep-within-hourly, keep-within-daily, keep-within-weekly,
  keep-within-monthly, keep-within-yearly = "1y5m7d2h"
  keep-tag = ["important"]           --keep-tag
  hosts = ["mail1"]                  --host filter
  tags = ["nightly"]                 --tag filter
  paths = ["/var/vmail"]             --path filter
  group-by = "host,paths"            --group-by
  prune = true                       --prune (prune after forgetting)
  max-unused = "5%"                  --max-unused of that prune

[copy]  (cairn copy, cairn run) copy targets: other profiles whose repositories get copies
  to = ["offsite"]                   profiles (found as -P NAME finds them), each with its own
                                     [repository] (repo, password-file or password-command,
                                     options, environment-file: its AWS_* credentials and
                                     CAIRN_PASSWORD reach the target's repository only) and
                                     its own [forget]; not this profile, not its repository
  hosts = ["mail1"]                  the snapshots copied: these hosts (default: this
                                     profile's own host, [backup] host or the machine's name)
  tags = ["nightly"]                 ... with these tags (TAG[,TAG] as --tag)
  paths = ["/var/vmail"]             ... that include these paths (as --path)
  cairn -P NAME copy [--to TARGET] copies the selected snapshots not yet there (flags --host,
  --tag, --path replace the filters); cairn -P NAME run copies after the backup and before
  the forget, then runs `cairn -P TARGET forget` for each target with a keep rule. A failed
  copy leaves the local night done and the run exits 3.

[check]   read-data = true (--read-data); read-data-subset = "10%" (--read-data-subset)
[prune]   max-unused = "5%" (--max-unused)
[restore] verify = true (--verify); overwrite = "if-changed" (--overwrite: always, if-changed,
          if-newer, never)
[drill]   (cairn drill) rto = "30m" (--rto); target = "/var/tmp/drill" (--target);
          components = ["/postgres/maildb.dump"] (--component); command-timeout = "1h"
          (--command-timeout); keep = true (--keep)

[hooks]  (cairn run) lists of commands, each a list of arguments (no shell):
  before = [["systemctl", "is-active", "postgresql"]]
  after-success = [], after-failure = [["/usr/local/bin/page-oncall"]], finally = []
  Environment: CAIRN_PROFILE, CAIRN_CONFIG (its file), CAIRN_COMMAND, CAIRN_SNAPSHOT_ID, CAIRN_EXIT_CODE, CAIRN_ERROR.

[monitoring]  (every command that writes metrics; pings: cairn run)
  metrics-file = "/var/lib/prometheus/node-exporter/cairn.prom"
                                     --metrics-file (node_exporter's textfile format)
  metrics-push = "http://pushgw:9091" --metrics-push (a Prometheus Pushgateway)
  ping-url = "https://hc-ping.com/UUID"
      cairn run pings URL/start, then URL after a success or URL/fail after a failure, with
      the run's report as the body (healthchecks.io); a ping that fails is a warning only
  ping-start-url, ping-success-url, ping-failure-url = "..."
      each instead of the one ping-url gives ("" pings nothing then)
  ping-timeout = "10s", ping-attempts = 3

[schedule]  (cairn -P NAME schedule install: defaults of its flags)
  run = "*-*-* 02:00"                --on-calendar (systemd OnCalendar; default daily)
  check = "Sun 04:00"                --on-calendar of `schedule install check` (default weekly)
  drill = "*-*-01 05:00"             --on-calendar of `schedule install drill` (default monthly)
  randomized-delay = "10m"           --randomized-delay
  timeout = "23h"                    --timeout (the service's TimeoutStartSec)
  user = false                       --user (per-user units)
  unit-dir = "/etc/systemd/system"   --unit-dir"#;

/// The global options a profile can set: (key, clap id).
const GLOBAL_KEYS: [(&str, &str); 11] = [
    ("repo", "repo"),
    ("password-file", "password_file"),
    ("password-command", "password_command"),
    ("options", "options"),
    ("cache-dir", "cache_dir"),
    ("no-cache", "no_cache"),
    ("limit-upload", "limit_upload"),
    ("limit-download", "limit_download"),
    ("retry-lock", "retry_lock"),
    ("quiet", "quiet"),
    ("verbose", "verbose"),
];

/// True for an option key whose value is a secret (printed as `***`).
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["secret", "password", "token", "key", "credential"].iter().any(|s| k.contains(s))
}

/// The effective value of global option `key`.
fn value(g: &GlobalOpts, key: &str) -> Value {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map_or(Value::Null, |p| json!(p.display().to_string()));
    match key {
        "repo" if g.repo.is_empty() => Value::Null,
        "repo" => json!(g.repo),
        "password-file" => path(&g.password_file),
        "password-command" => g.password_command.as_ref().map_or(Value::Null, |_| json!("***")),
        "options" => {
            let mut shown: Vec<String> = Vec::new();
            for o in &g.options {
                let o = match o.split_once('=') {
                    Some((k, _)) if secret_key(k) => format!("{k}=***"),
                    _ => o.clone(),
                };
                // The command line's options may come twice (see profile_apply's merge).
                if !shown.contains(&o) {
                    shown.push(o);
                }
            }
            json!(shown)
        }
        "cache-dir" => path(&g.cache_dir),
        "no-cache" => json!(g.no_cache),
        "limit-upload" => json!(g.limit_upload),
        "limit-download" => json!(g.limit_download),
        "retry-lock" => json!(g.retry_lock),
        "quiet" => json!(g.quiet),
        "verbose" => json!(g.verbose),
        _ => Value::Null,
    }
}

/// Print the effective settings.
pub fn run(g: &GlobalOpts, _a: &ConfigArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    // Where each value came from: the command line as typed (without the profile's options).
    let typed = Cli::command().try_get_matches_from(std::env::args_os()).ok();
    let mut repo = Map::new();
    for (key, id) in GLOBAL_KEYS {
        let from_profile =
            applied.is_some_and(|a| a.injected.iter().any(|i| i.section == "repository" && i.key == key));
        let source = match (from_profile, typed.as_ref().and_then(|m| m.value_source(id))) {
            // -o merges key by key.
            (true, Some(ValueSource::CommandLine)) => "flag, profile",
            (true, _) => "profile",
            (false, Some(ValueSource::CommandLine)) => "flag",
            (false, Some(ValueSource::EnvVariable)) => "environment",
            _ => "default",
        };
        repo.insert(key.into(), json!({ "value": value(g, key), "source": source }));
    }
    let mut sections = toml::Table::new();
    if let Some(a) = applied {
        sections = toml::Table::try_from(&a.profile).map_err(|e| Error::Internal(format!("profile as TOML: {e}")))?;
        sections.remove("repository");
        redact_urls(&mut sections);
        sections.retain(|_, v| v.as_table().is_none_or(|t| !t.is_empty()));
    }
    if g.json {
        let doc = json!({
            "profile": applied.map(|a| a.name.clone()),
            "file": applied.map(|a| a.file.display().to_string()),
            "environment_file": applied.and_then(|a| a.profile.repository.environment_file.as_ref()).map(|p| p.display().to_string()),
            "environment_set": applied.map(|a| a.env_set.clone()).unwrap_or_default(),
            "repository": repo,
            "sections": serde_json::to_value(&sections).map_err(|e| Error::Internal(e.to_string()))?,
            "copy_selects": applied.and_then(copy_selects),
        });
        out(&doc.to_string());
        return Ok(EXIT_OK);
    }
    match applied {
        Some(a) => out(&format!("# profile {:?} ({})", a.name, a.file.display())),
        None => out("# no profile (give -P NAME or --config FILE; see `cairn help config`)"),
    }
    if let Some(f) = applied.and_then(|a| a.profile.repository.environment_file.as_ref()) {
        let set = applied.map(|a| a.env_set.join(", ")).unwrap_or_default();
        out(&format!("# environment file {} set: {}", f.display(), if set.is_empty() { "nothing" } else { &set }));
    }
    out("[repository]");
    for (key, v) in &repo {
        let (val, src) = (&v["value"], v["source"].as_str().unwrap_or(""));
        if !val.is_null() {
            out(&format!("{key} = {val}  # {src}"));
        }
    }
    if !sections.is_empty() {
        out("");
        out(toml::to_string(&sections).map_err(|e| Error::Internal(format!("profile as TOML: {e}")))?.trim_end());
    }
    if let Some(sel) = applied.and_then(copy_selects) {
        let list =
            |k: &str| sel[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "));
        let mut what = format!("# copies the snapshots of host(s) {}", list("hosts").unwrap_or_default());
        for (k, label) in [("tags", "tag(s)"), ("paths", "path(s)")] {
            if let Some(l) = list(k).filter(|l| !l.is_empty()) {
                what.push_str(&format!(", with {label} {l}"));
            }
        }
        out("");
        out(&what);
    }
    Ok(EXIT_OK)
}

/// What profile `a`'s copies select (`{"hosts": [..], "tags": [..], "paths": [..]}`, the
/// hosts by default its own: [`super::copy_targets::source_filter`]); `None` without `[copy] to`.
fn copy_selects(a: &Applied) -> Option<Value> {
    if a.profile.copy.to.is_empty() {
        return None;
    }
    let f = super::copy_targets::source_filter(a);
    Some(json!({ "hosts": f.hosts, "tags": f.tags, "paths": f.paths }))
}

/// The `[monitoring]` URLs as scheme and host only ([`super::http::redacted`]): a ping URL's
/// path is its check's secret, and a URL may carry a password.
fn redact_urls(sections: &mut toml::Table) {
    let Some(m) = sections.get_mut("monitoring").and_then(|v| v.as_table_mut()) else { return };
    for (k, v) in m.iter_mut() {
        if !(k.ends_with("-url") || k == "metrics-push") {
            continue;
        }
        if let Some(url) = v.as_str().filter(|u| !u.is_empty()) {
            *v = toml::Value::String(super::http::redacted(url));
        }
    }
}
