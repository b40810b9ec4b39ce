//! Applying a profile to the command line: each key that neither a flag nor an environment
//! variable gave becomes its flag, and the command line is parsed again (see
//! [`super::profile`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use toml::de::{DeTable, DeValue};

use cairn::Error;

use super::profile::{self, Applied, Injected};
use super::Cli;

/// The profile sections that hold a command's options, by command name.
pub const COMMAND_SECTIONS: [&str; 6] = ["backup", "forget", "check", "prune", "restore", "drill"];

/// Variables that give the password (a profile's password-file/-command yields to them).
const PASSWORD_VARS: [&str; 3] = ["CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"];

/// Options a profile gives one command: flags (`--key=value`), positional arguments, and what
/// each came from.
#[derive(Default)]
pub struct ProfileArgs {
    /// `--flag` / `--flag=value` arguments.
    pub flags: Vec<OsString>,
    /// Positional arguments (backup's paths).
    pub positional: Vec<OsString>,
    /// Provenance of each.
    pub injected: Vec<Injected>,
}

/// Parse the process's command line `args`; with `-P NAME` or `--config FILE`, load that
/// profile, apply its environment file, and parse again with the profile's options where
/// neither a flag nor an environment variable gave one. Exits as clap does on a usage error
/// (exit 2) and on `--help`. Errors: the profile's (file, line, key), a profile that gives no
/// repository.
pub fn parse(args: Vec<OsString>) -> Result<(Cli, Option<Applied>), Error> {
    let m = Cli::command().try_get_matches_from(&args).unwrap_or_else(|e| usage_exit(e, &args));
    let name = m.get_one::<String>("profile").cloned();
    let config = m.get_one::<PathBuf>("config").cloned();
    let (name, file) = match (name, config) {
        (None, None) => return Ok((Cli::from_arg_matches(&m).unwrap_or_else(|e| usage_exit(e, &args)), None)),
        (_, Some(f)) => (f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), f),
        (Some(n), None) => {
            let f = profile::find(&n)?;
            (n, f)
        }
    };
    let (text, prof) = profile::load(&file)?;
    let mut applied = Applied { name, file, text, profile: prof, injected: Vec::new(), env_set: Vec::new() };
    if let Some(env_file) = applied.profile.repository.environment_file.clone() {
        let at = applied.at("repository", "environment-file");
        applied.env_set = super::profile_env::apply_environment_file(&env_file, &at)?;
    }
    // The environment file may set variables that clap reads (CAIRN_REPOSITORY...).
    let m = Cli::command().try_get_matches_from(&args).unwrap_or_else(|e| usage_exit(e, &args));
    let mut cmd = Cli::command();
    cmd.build();
    let mut extra = profile_args(&applied, "repository", &cmd, &m)?;
    let monitoring = profile_args(&applied, "monitoring", &cmd, &m)?;
    extra.flags.extend(monitoring.flags);
    extra.injected.extend(monitoring.injected);
    if let Some((sub, sub_m)) = m.subcommand() {
        if COMMAND_SECTIONS.contains(&sub) {
            if let Some(sub_cmd) = cmd.find_subcommand(sub) {
                let s = profile_args(&applied, sub, sub_cmd, sub_m)?;
                extra.flags.extend(s.flags);
                extra.positional.extend(s.positional);
                extra.injected.extend(s.injected);
            }
        }
    }
    let args = splice(args, extra.flags, extra.positional);
    applied.injected = extra.injected;
    let m = Cli::command().try_get_matches_from(&args).unwrap_or_else(|e| {
        eprintln!("cairn: with the options of profile {:?} ({}):", applied.name, applied.file.display());
        usage_exit(e, &args)
    });
    let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| usage_exit(e, &args));
    let needs_repo = !matches!(m.subcommand_name(), Some("config"));
    if needs_repo && cli.global.repo.is_empty() {
        return Err(Error::usage(format!(
            "{}: profile {:?} gives no repository: add repo = \"/srv/backup/repo\" (or s3:...) under [repository], or give -r/--repo or CAIRN_REPOSITORY",
            applied.at("repository", "repo"),
            applied.name
        )));
    }
    Ok((cli, Some(applied)))
}

/// Exit as clap does on a usage error (exit 2) or `--help`, but with 3 for `health`: a
/// monitoring plugin's usage error is UNKNOWN in the Nagios convention (2 would say CRITICAL).
fn usage_exit(e: clap::Error, args: &[OsString]) -> ! {
    if e.use_stderr() && super::health_requested(args) {
        let first = e.to_string().lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
        super::out(&format!("CAIRN HEALTH UNKNOWN - usage error: {first}"));
        let _ = e.print();
        std::process::exit(3);
    }
    e.exit()
}

/// `args` with `flags` before the first `--` (or at the end) and `positional` after it.
fn splice(mut args: Vec<OsString>, flags: Vec<OsString>, positional: Vec<OsString>) -> Vec<OsString> {
    let dashdash = args.iter().skip(1).position(|a| a == "--").map(|p| p + 1);
    let at = dashdash.unwrap_or(args.len());
    let tail = args.split_off(at);
    args.extend(flags);
    args.extend(tail);
    if !positional.is_empty() {
        if dashdash.is_none() {
            args.push("--".into());
        }
        args.extend(positional);
    }
    args
}

/// True when `id` was given on the command line or by its environment variable.
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.try_get_raw(id), Ok(Some(_)))
        && matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// The options of section `section` of the profile that `m` (parsed by `cmd`) did not get
/// from a flag or an environment variable.
fn profile_args(applied: &Applied, section: &str, cmd: &clap::Command, m: &ArgMatches) -> Result<ProfileArgs, Error> {
    let mut out = ProfileArgs::default();
    let doc = DeTable::parse(&applied.text).map_err(|e| Error::usage(format!("{}: {e}", applied.file.display())))?;
    let Some(table) =
        doc.get_ref().iter().find(|(k, _)| k.get_ref() == section).and_then(|(_, v)| v.get_ref().as_table().cloned())
    else {
        return Ok(out);
    };
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        let Some(flag) = profile::flag_of(section, key) else { continue };
        let arg = if flag.is_empty() {
            cmd.get_arguments().find(|a| a.is_positional())
        } else {
            cmd.get_arguments().find(|a| a.get_long() == Some(flag))
        };
        let Some(arg) = arg else {
            return Err(Error::usage(format!("{}: not an option of this command", applied.at(section, key))));
        };
        let id = arg.get_id().as_str();
        // `-o KEY=VALUE` merges key by key: the profile's keys the command line did not give.
        let keyed = (section, key) == ("repository", "options");
        if (given(m, id) && !keyed) || yields(section, key, m) {
            continue;
        }
        let conflicting = cmd.get_arguments().any(|o| {
            given(m, o.get_id().as_str())
                && (cmd.get_arg_conflicts_with(arg).iter().any(|c| c.get_id() == o.get_id())
                    || cmd.get_arg_conflicts_with(o).iter().any(|c| c.get_id() == arg.get_id()))
        });
        if conflicting {
            continue;
        }
        let mut values = render(v.get_ref());
        if keyed && given(m, id) {
            let key_of = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).trim().to_string();
            let cli: Vec<String> = m.get_many::<String>(id).into_iter().flatten().map(|s| key_of(s)).collect();
            values.retain(|s| !cli.contains(&key_of(s)));
            if values.is_empty() {
                continue;
            }
            // A global option's values given at the subcommand's level replace those given
            // before it, so the command line's go in again with the profile's.
            let typed: Vec<String> = m.get_many::<String>(id).into_iter().flatten().cloned().collect();
            values.splice(0..0, typed);
        }
        let line = {
            let before = applied.text.get(..k.span().start).unwrap_or("");
            before.matches('\n').count() + 1
        };
        let counted = matches!(arg.get_action(), clap::ArgAction::Count);
        match v.get_ref() {
            DeValue::Boolean(false) => continue,
            DeValue::Boolean(true) => out.flags.push(format!("--{flag}").into()),
            _ if counted => {
                let n: usize = values.first().and_then(|s| s.parse().ok()).unwrap_or(0);
                out.flags.extend(std::iter::repeat_n(OsString::from(format!("--{flag}")), n));
            }
            _ if flag.is_empty() => out.positional.extend(values.into_iter().map(OsString::from)),
            _ => out.flags.extend(values.into_iter().map(|s| OsString::from(format!("--{flag}={s}")))),
        }
        out.injected.push(Injected { section: section.into(), key: key.into(), flag: flag.into(), line });
    }
    Ok(out)
}

/// True when a profile key yields to something other than its own flag and variable: the
/// password file or command to any way of giving the password, the cache directory to
/// `CAIRN_CACHE_DIR`, backup's paths to `--stdin`/`--stdin-from-command`.
fn yields(section: &str, key: &str, m: &ArgMatches) -> bool {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    match (section, key) {
        ("repository", "password-file" | "password-command") => {
            PASSWORD_VARS.iter().any(|v| set(v)) || given(m, "password_file") || given(m, "password_command")
        }
        ("repository", "cache-dir") => set("CAIRN_CACHE_DIR"),
        ("backup", "paths") => given(m, "stdin") || given(m, "stdin_from_command"),
        _ => false,
    }
}

/// The values of a profile value as flag values: a scalar as itself, a list item by item, a
/// table as `KEY=VALUE` items.
fn render(v: &DeValue) -> Vec<String> {
    match v {
        DeValue::String(s) => vec![s.to_string()],
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            vec![i64::from_str_radix(&digits, i.radix()).map(|n| n.to_string()).unwrap_or(digits)]
        }
        DeValue::Float(f) => vec![f.as_str().to_string()],
        DeValue::Boolean(b) => vec![b.to_string()],
        DeValue::Datetime(d) => vec![d.to_string()],
        DeValue::Array(a) => a.iter().flat_map(|x| render(x.get_ref())).collect(),
        DeValue::Table(t) => {
            t.iter().map(|(k, v)| format!("{}={}", k.get_ref(), render(v.get_ref()).join(","))).collect()
        }
    }
}
