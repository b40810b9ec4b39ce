//! `cairn -P NAME run`: a profile's night in one call, for a timer.
//!
//! Steps, in order: the `[hooks] before` commands; `backup` (the profile's `[backup]`); one
//! `copy TARGET` step per `[copy] to` target (`cairn -P NAME copy --to TARGET`: the night's
//! snapshot into the target profile's repository); `forget` (the profile's `[forget]`, with its
//! prune when `prune = true`), only when `[forget]` has a keep rule; then one `forget TARGET`
//! step per target whose copy succeeded and whose own profile's `[forget]` has a keep rule
//! (`cairn -P TARGET forget`: the target's own policy and prune); then `after-success` (every
//! step succeeded, exit 0) or `after-failure`; then `finally`. A `before` hook that fails stops
//! the run: no backup, no copy, no forget. Each step is this same program run as a child with
//! the profile and the effective global options, so a step behaves exactly as the command of
//! the same name (its messages reach stderr as they come). A target's forget runs with the
//! target's profile alone: none of the variables of the source's environment file, no
//! `CAIRN_PASSWORD*` or `CAIRN_REPOSITORY` of the run's environment, and the target's
//! environment file winning over the run's environment (as it does in the copy).
//!
//! Hooks are argument lists run without a shell, with the environment of the run plus
//! `CAIRN_PROFILE` (the profile's name), `CAIRN_CONFIG` (its file: `--config` wins over
//! `-P`/`CAIRN_PROFILE`, so a `cairn` command in a hook reads the very same file even when the
//! run was given `--config`), `CAIRN_COMMAND` (`run`), `CAIRN_SNAPSHOT_ID` (the backup's snapshot, once
//! there is one), `CAIRN_EXIT_CODE` (the run's exit code so far) and `CAIRN_ERROR` (what failed,
//! empty when nothing did). A failing `after-*` or `finally` hook makes the run fail (exit 1)
//! but does not stop the other hooks.
//!
//! An interrupt of the run (Ctrl-C, SIGTERM) is passed on to the step or hook running then
//! (SIGTERM, SIGKILL 10 s later); no further step starts, the failure and finally hooks run.
//! The copies and `forget` run only after a backup that succeeded (exit 0 or 3: a snapshot
//! saved, or none needed with skip-if-unchanged). A copy or a target's forget that fails does
//! not stop the night: the other targets, the local forget and the hooks still run. What a
//! failing step or hook said last (its error message) becomes the step's error and
//! `CAIRN_ERROR`.
//!
//! The exit code is the worst step's: 0 when all succeeded; 3 when the worst was a snapshot
//! saved without some sources, or a copy or target forget that failed while the local steps
//! succeeded (the local night is done; the off-site part is not); otherwise the first failing
//! local step's code; 130 for an interrupted run. With `--metrics-file`/`--metrics-push`, the
//! gauge `cairn_run_step_exit_code{step="..."}` gives each step's exit code (`backup`,
//! `copy offsite`, `forget`, `forget offsite`, `hook before`...), so an alert can name the step
//! that failed.

use std::ffi::OsString;
use std::process::{Command, Stdio};

use clap::Args;
use serde::Serialize;

use cairn::Error;

use super::profile::Applied;
use super::run_child::supervise;
use super::{out, GlobalOpts, EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL};

/// Arguments of `run` (everything else comes from the profile).
#[derive(Args)]
pub struct RunArgs {}

/// The outcome of one step of a run (`--json`: one element of `steps`).
#[derive(Serialize, Debug)]
struct Step {
    /// `hook before`, `backup`, `forget`, `hook after-success`, ...
    step: String,
    /// The command line of a hook (argument list).
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    /// The step's exit code (1 for a hook that could not start).
    exit_code: u8,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The snapshot the backup step saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_id: Option<String>,
    /// The backup step's components (paths and commands) as its summary gives them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<serde_json::Value>,
}

impl Step {
    /// Step `name`, which failed (exit 1) before a child could run, for `error`.
    fn failed(name: &str, error: String) -> Step {
        Step {
            step: name.into(),
            command: None,
            exit_code: EXIT_FATAL,
            error: Some(error),
            snapshot_id: None,
            components: Vec::new(),
        }
    }
}

/// What `run --json` prints: `{"message_type":"run","profile":..,"exit_code":..,"steps":[..]}`.
#[derive(Serialize)]
struct RunReport<'a> {
    message_type: &'static str,
    profile: &'a str,
    exit_code: u8,
    steps: &'a [Step],
}

/// The run's state: its steps so far and the exit code they add up to.
struct Night<'a> {
    profile: &'a str,
    /// The profile's file, absolute: hooks get it as `CAIRN_CONFIG`.
    config: std::path::PathBuf,
    exe: std::path::PathBuf,
    /// Arguments that select the profile and the effective global options, for each child.
    globals: Vec<OsString>,
    /// `--metrics-push`, passed to each child as `CAIRN_METRICS_PUSH`.
    metrics_push: Option<String>,
    steps: Vec<Step>,
    code: u8,
    error: Option<String>,
    snapshot_id: Option<String>,
    /// `--quiet`: children's and hooks' standard output discarded.
    quiet: bool,
    /// `--json`: children's and hooks' standard output goes to stderr (stdout is one document).
    json: bool,
}

/// The exit code of a child that ended with `status`: its code, or 130 when a signal ended it
/// (as a shell reports SIGINT/SIGTERM), 1 for any code that does not fit.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(EXIT_FATAL),
        (None, Some(_)) => EXIT_INTERRUPTED,
        (None, None) => EXIT_FATAL,
    }
}

/// `worse(a, b)`: the exit code of a run whose steps ended with `a` then `b` (0 < 3 < the rest;
/// among failures, the first).
fn worse(a: u8, b: u8) -> u8 {
    match (a, b) {
        (EXIT_OK, b) => b,
        (EXIT_PARTIAL, EXIT_OK) => EXIT_PARTIAL,
        (EXIT_PARTIAL, b) => b,
        (a, _) => a,
    }
}

/// Run `cairn -P NAME run`. Errors: [`Error::Usage`] without a profile; the steps' failures
/// are exit codes, not errors.
pub fn run(g: &GlobalOpts, _a: &RunArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    let Some(p) = applied else {
        return Err(Error::usage("run needs a profile: cairn -P NAME run (or --config FILE)"));
    };
    let exe = std::env::current_exe().map_err(|e| Error::internal(format!("cannot find this program's path: {e}")))?;
    let mut night = Night {
        profile: &p.name,
        config: std::path::absolute(&p.file).unwrap_or_else(|_| p.file.clone()),
        exe,
        globals: child_globals(g),
        metrics_push: g.metrics_push().map(str::to_string),
        steps: Vec::new(),
        code: EXIT_OK,
        error: None,
        snapshot_id: None,
        quiet: g.quiet,
        json: g.json,
    };
    let pinger = super::ping::Pinger::from_profile(&p.profile.monitoring, &p.at("monitoring", "ping-url"))?;
    if let Some(pg) = &pinger {
        pg.start();
    }
    let hooks = &p.profile.hooks;
    let before_ok = hooks.before.iter().all(|h| night.hook("before", h));
    if before_ok && !night.interrupted("backup") {
        night.backup();
        // Retention after a backup that saved nothing (an unreachable repository, a wrong
        // password) would fail the same way: only after a snapshot (or a skipped one). So
        // would a copy: there is nothing new to send.
        let saved = matches!(night.code, EXIT_OK | EXIT_PARTIAL);
        let mut copied = Vec::new();
        if saved {
            for name in &p.profile.copy.to {
                let step = format!("copy {name}");
                if night.interrupted(&step) {
                    break;
                }
                if night.offsite_child(&step, &["copy", "--to", name]) {
                    copied.push(name.as_str());
                }
            }
        }
        if saved && has_keep_rule(&p.profile.forget) && !night.interrupted("forget") {
            night.child("forget", &["forget"]);
        }
        // Each target's own retention, after a copy that reached it (a target that could not
        // be reached would fail again; one that got no new snapshot needs no thinning).
        for name in copied {
            let step = format!("forget {name}");
            match target_forget_hidden(p, name) {
                Ok(None) => {}
                Ok(Some(_)) if night.interrupted(&step) => break,
                Ok(Some(hidden)) => night.target_forget(&step, name, &hidden, g),
                Err(e) => night.record_offsite(Step::failed(&step, super::error_text(&e))),
            }
        }
    }
    if super::cancel().is_cancelled() {
        // The failure hooks are told the run was interrupted, whatever failed on the way.
        night.code = EXIT_INTERRUPTED;
        night.error = Some("interrupted (SIGINT or SIGTERM)".into());
    }
    let after = if night.code == EXIT_OK {
        ("after-success", &hooks.after_success)
    } else {
        ("after-failure", &hooks.after_failure)
    };
    for h in after.1 {
        night.hook(after.0, h);
    }
    for h in &hooks.finally {
        night.hook("finally", h);
    }
    if super::cancel().is_cancelled() {
        // Whatever failed on the way, an interrupted run says so (restic's 130).
        night.code = EXIT_INTERRUPTED;
    }
    record_step_metrics(&night.steps);
    let mut lines: Vec<String> = night
        .steps
        .iter()
        .map(|s| {
            let what = s.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            format!("{:<22} exit {}{}", s.step, s.exit_code, what)
        })
        .collect();
    lines.push(format!("run of profile {}: exit {}", night.profile, night.code));
    if g.json {
        let report =
            RunReport { message_type: "run", profile: night.profile, exit_code: night.code, steps: &night.steps };
        out(&serde_json::to_string(&report).map_err(|e| Error::internal(format!("run report: {e}")))?);
    } else if !g.quiet {
        for l in &lines {
            out(l);
        }
    }
    if let Some(pg) = &pinger {
        let mut body = format!("cairn run of profile {} on {}\n", night.profile, cairn::util::hostname());
        for l in &lines {
            body.push_str(l);
            body.push('\n');
        }
        pg.finish(night.code == EXIT_OK, &body);
    }
    Ok(night.code)
}

/// Help of `cairn_run_step_exit_code`.
const STEP_EXIT_HELP: &str =
    "Exit code of each step of the last cairn run (backup, copy TARGET, forget, forget TARGET, hook STAGE; 0 success)";

/// Record gauge `cairn_run_step_exit_code{step}` for each step of `steps` (several hooks of one
/// stage: the worst of them, [`worse`]).
fn record_step_metrics(steps: &[Step]) {
    let mut by_step: Vec<(&str, u8)> = Vec::new();
    for s in steps {
        match by_step.iter_mut().find(|(n, _)| *n == s.step) {
            Some((_, c)) => *c = worse(*c, s.exit_code),
            None => by_step.push((&s.step, s.exit_code)),
        }
    }
    for (step, code) in by_step {
        super::metrics::gauge("cairn_run_step_exit_code", STEP_EXIT_HELP, &[("step", step)], f64::from(code));
    }
}

/// Whether target `name` of profile `p` has a forget step, and which variables of the run's
/// environment its child must not inherit: `None` when the target profile's `[forget]` has no
/// keep rule (no step); else the names the target's environment file sets (its child reads them
/// from that file, whatever the run's environment says) and those the source's environment file
/// put into the run's environment (`p.env_set`: the source's, not the target's). Errors: the
/// target's profile cannot be found or read, its environment file is unsafe or malformed.
fn target_forget_hidden(p: &Applied, name: &str) -> Result<Option<Vec<String>>, Error> {
    let at = p.at("copy", "to");
    let file = super::profile::find(name).map_err(|e| Error::Usage(format!("{at}: copy target {name:?}: {e}")))?;
    let (text, profile) =
        super::profile::load(&file).map_err(|e| Error::Usage(format!("{at}: copy target {name:?}: {e}")))?;
    if !has_keep_rule(&profile.forget) {
        return Ok(None);
    }
    let target = Applied { name: name.to_string(), file, text, profile, injected: Vec::new(), env_set: Vec::new() };
    let mut hidden = p.env_set.clone();
    if let Some(f) = &target.profile.repository.environment_file {
        let vars = super::profile_env::read_environment_file(f, &target.at("repository", "environment-file"))?;
        hidden.extend(vars.into_iter().map(|(k, _)| k));
    }
    Ok(Some(hidden))
}

/// Variables of the run's environment that a target's forget must not see: they would give it
/// the source's repository or password.
const SOURCE_ONLY_VARS: [&str; 6] = [
    "CAIRN_REPOSITORY",
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_PROFILE",
    "CAIRN_CONFIG",
];

/// True when `[forget]` section `f` has at least one keep rule (without one, `forget` would
/// refuse, and a profile without retention simply keeps everything).
fn has_keep_rule(f: &super::profile::ForgetSection) -> bool {
    [&f.keep_last, &f.keep_hourly, &f.keep_daily, &f.keep_weekly, &f.keep_monthly, &f.keep_yearly]
        .iter()
        .any(|k| k.is_some())
        || [
            &f.keep_within,
            &f.keep_within_hourly,
            &f.keep_within_daily,
            &f.keep_within_weekly,
            &f.keep_within_monthly,
            &f.keep_within_yearly,
        ]
        .iter()
        .any(|k| k.is_some())
        || f.keep_tag.as_ref().is_some_and(|t| !t.is_empty())
}

/// The profile selection and the effective global options (flag, environment or profile) as
/// arguments of a child step (each `--flag=value`), so that it opens the same repository the
/// same way.
fn child_globals(g: &GlobalOpts) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    match (&g.profile, &g.config) {
        (Some(name), _) => a.push(flag("--profile", name)),
        (None, Some(file)) => a.push(flag("--config", file)),
        (None, None) => {}
    }
    if !g.repo.is_empty() {
        a.push(flag("--repo", &g.repo));
    }
    if let Some(f) = &g.password_file {
        a.push(flag("--password-file", f));
    }
    if let Some(c) = &g.password_command {
        a.push(flag("--password-command", c));
    }
    for o in &g.options {
        a.push(flag("--option", o));
    }
    if let Some(d) = &g.cache_dir {
        a.push(flag("--cache-dir", d));
    }
    if g.no_cache {
        a.push("--no-cache".into());
    }
    if let Some(l) = g.limit_upload {
        a.push(flag("--limit-upload", l.to_string()));
    }
    if let Some(l) = g.limit_download {
        a.push(flag("--limit-download", l.to_string()));
    }
    if let Some(r) = &g.retry_lock {
        a.push(flag("--retry-lock", r));
    }
    if let Some(f) = g.metrics_file() {
        a.push(flag("--metrics-file", f));
    }
    // --metrics-push goes by the environment ([`Night::command`]): a URL may hold a password,
    // and a command line is visible to every user.
    if g.quiet {
        a.push("--quiet".into());
    }
    for _ in 0..g.verbose {
        a.push("--verbose".into());
    }
    a
}

/// `--name=value`, one argument (a value that starts with `-` stays a value).
fn flag(name: &str, value: impl AsRef<std::ffi::OsStr>) -> OsString {
    let mut a = OsString::from(name);
    a.push("=");
    a.push(value);
    a
}

impl Night<'_> {
    /// This program as a child step, with `CAIRN_METRICS_PUSH` when the run has one.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        // A copy step's source is the profile's repository, never one left in the
        // environment (restic's variables for `copy --from-repo`).
        for v in
            ["CAIRN_FROM_REPOSITORY", "CAIRN_FROM_PASSWORD", "CAIRN_FROM_PASSWORD_FILE", "CAIRN_FROM_PASSWORD_COMMAND"]
        {
            cmd.env_remove(v);
        }
        if let Some(u) = &self.metrics_push {
            cmd.env("CAIRN_METRICS_PUSH", u);
        }
        cmd
    }

    /// Record a step of the off-site part of the night (a copy, a target's forget): its
    /// failure makes the run's exit code 3 (partial) unless a local step did worse.
    fn record_offsite(&mut self, step: Step) {
        let counts_as = if step.exit_code == EXIT_OK { EXIT_OK } else { EXIT_PARTIAL };
        let code = self.code;
        self.record(step);
        self.code = worse(code, counts_as);
    }

    /// A step of the off-site part of the night: this program's command `args` with the
    /// profile, recorded by [`Night::record_offsite`]. True when it succeeded (exit 0).
    fn offsite_child(&mut self, name: &str, args: &[&str]) -> bool {
        let mut cmd = self.command();
        cmd.args(&self.globals).args(args).stdout(self.stdout());
        let step = self.supervised(name, &mut cmd);
        let ok = step.exit_code == EXIT_OK;
        self.record_offsite(step);
        ok
    }

    /// Step `step`: `cairn -P TARGET forget` with the target's profile alone (see the module
    /// docs): none of `hidden` (the source's and the target's environment files' variables)
    /// nor [`SOURCE_ONLY_VARS`] in its environment; the run's output options and metrics file.
    fn target_forget(&mut self, step: &str, target: &str, hidden: &[String], g: &GlobalOpts) {
        let mut cmd = self.command();
        for v in SOURCE_ONLY_VARS.iter().copied().chain(hidden.iter().map(String::as_str)) {
            cmd.env_remove(v);
        }
        cmd.arg(flag("--profile", target));
        if let Some(f) = g.metrics_file() {
            cmd.arg(flag("--metrics-file", f));
        }
        if g.quiet {
            cmd.arg("--quiet");
        }
        for _ in 0..g.verbose {
            cmd.arg("--verbose");
        }
        cmd.arg("forget").stdout(self.stdout());
        let s = self.supervised(step, &mut cmd);
        self.record_offsite(s);
    }

    /// Run child `cmd` as step `name`, supervised ([`supervise`]): the step as it ended.
    fn supervised(&self, name: &str, cmd: &mut Command) -> Step {
        let (code, error) = match supervise(cmd, false, self.json) {
            Ok(f) => {
                let code = exit_code(f.status);
                (code, f.said.filter(|_| code != EXIT_OK))
            }
            Err(e) => (EXIT_FATAL, Some(format!("cannot run {}: {e}", self.exe.display()))),
        };
        Step { step: name.into(), command: None, exit_code: code, error, snapshot_id: None, components: Vec::new() }
    }

    /// Record a step that ended with `code`.
    fn record(&mut self, mut step: Step) {
        if step.exit_code != EXIT_OK && self.error.is_none() {
            self.error = Some(step.error.clone().unwrap_or_else(|| format!("{} exited {}", step.step, step.exit_code)));
        }
        if step.error.is_none() && step.exit_code != EXIT_OK {
            step.error = Some(format!("exit code {}", step.exit_code));
        }
        self.code = worse(self.code, step.exit_code);
        self.steps.push(step);
    }

    /// The backup step: `cairn --json backup` with the profile, its summary read for the
    /// snapshot id; the summary line is printed unless `--quiet`/`--json`.
    fn backup(&mut self) {
        let mut cmd = self.command();
        // Its messages reach stderr as they come; stdout is its JSON summary.
        cmd.args(&self.globals).args(["--json", "backup"]);
        let (code, stdout, error) = match supervise(&mut cmd, true, self.json) {
            Ok(f) => {
                let code = exit_code(f.status);
                (code, f.stdout, f.said.filter(|_| code != EXIT_OK && code != EXIT_PARTIAL))
            }
            Err(e) => (EXIT_FATAL, Vec::new(), Some(format!("cannot run {}: {e}", self.exe.display()))),
        };
        let summary = String::from_utf8_lossy(&stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message_type"] == "summary");
        let snapshot_id = summary.as_ref().and_then(|s| s["snapshot_id"].as_str()).map(str::to_string);
        if let (Some(s), false, false) = (&summary, self.json, self.quiet) {
            if s["snapshot_skipped"] == true {
                out("backup: no changes, snapshot not written (skip-if-unchanged)");
            } else {
                out(&format!(
                    "backup: snapshot {} saved: {} new, {} changed, {} unchanged files; {} added",
                    snapshot_id.as_deref().and_then(|i| i.get(..8)).unwrap_or("?"),
                    s["files_new"],
                    s["files_changed"],
                    s["files_unchanged"],
                    s["data_added"].as_u64().map_or_else(|| "?".to_string(), super::human_bytes)
                ));
            }
        }
        // Which dump failed, for the failure hooks (CAIRN_ERROR) and the report.
        let components = summary.as_ref().and_then(|s| s["components"].as_array().cloned()).unwrap_or_default();
        let failed: Vec<String> = components
            .iter()
            .filter(|c| c["status"] != "ok")
            .map(|c| {
                format!(
                    "{} {}: {}",
                    c["path"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !self.json && !self.quiet {
            for f in &failed {
                out(&format!("backup: {f}"));
            }
        }
        let error = error.or_else(|| (!failed.is_empty()).then(|| failed.join("; ")));
        self.snapshot_id = snapshot_id.clone();
        self.record(Step { step: "backup".into(), command: None, exit_code: code, error, snapshot_id, components });
    }

    /// True (and the step recorded as interrupted, exit 130) when the run was cancelled
    /// (Ctrl-C, SIGTERM) before step `name` could start.
    fn interrupted(&mut self, name: &str) -> bool {
        if !super::cancel().is_cancelled() {
            return false;
        }
        let error = Some("interrupted before it started".to_string());
        self.record(Step {
            step: name.into(),
            command: None,
            exit_code: EXIT_INTERRUPTED,
            error,
            snapshot_id: None,
            components: Vec::new(),
        });
        true
    }

    /// Where a child's or hook's standard output goes.
    fn stdout(&self) -> Stdio {
        if self.quiet {
            Stdio::null()
        } else if self.json {
            Stdio::from(std::io::stderr())
        } else {
            Stdio::inherit()
        }
    }

    /// A step that is this program's command `args` with the profile.
    fn child(&mut self, name: &str, args: &[&str]) {
        let mut cmd = self.command();
        cmd.args(&self.globals).args(args).stdout(self.stdout());
        let step = self.supervised(name, &mut cmd);
        self.record(step);
    }

    /// Run hook `argv` of `stage`; true when it succeeded. Its output goes where the run's goes
    /// (see [`Night::stdout`]).
    fn hook(&mut self, stage: &str, argv: &[String]) -> bool {
        let Some((program, args)) = argv.split_first() else { return true };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("CAIRN_PROFILE", self.profile)
            .env("CAIRN_CONFIG", &self.config)
            .env("CAIRN_COMMAND", "run")
            .env("CAIRN_SNAPSHOT_ID", self.snapshot_id.as_deref().unwrap_or(""))
            .env("CAIRN_EXIT_CODE", self.code.to_string())
            .env("CAIRN_ERROR", self.error.as_deref().unwrap_or(""))
            .stdout(self.stdout());
        let (code, error) = match supervise(&mut cmd, false, self.json) {
            Ok(f) if f.status.success() => (EXIT_OK, None),
            Ok(f) => {
                let said = f.said.map(|s| format!(": {s}")).unwrap_or_default();
                let status = cairn::stream::describe_status(f.status);
                // Ended by the interrupt passed on to it: the run's interruption, not its failure.
                let code = if super::cancel().is_cancelled() { EXIT_INTERRUPTED } else { EXIT_FATAL };
                (code, Some(format!("hook {stage} {program:?} failed: {status}{said}")))
            }
            Err(e) => (EXIT_FATAL, Some(format!("hook {stage} {program:?} could not start: {e}"))),
        };
        let ok = code == EXIT_OK;
        self.record(Step {
            step: format!("hook {stage}"),
            command: Some(argv.to_vec()),
            exit_code: code,
            error,
            snapshot_id: None,
            components: Vec::new(),
        });
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A night with no step yet (nothing is run by these tests).
    fn night() -> Night<'static> {
        Night {
            profile: "mail1",
            config: "/etc/cairn/mail1.toml".into(),
            exe: "/usr/bin/cairn".into(),
            globals: Vec::new(),
            metrics_push: None,
            steps: Vec::new(),
            code: EXIT_OK,
            error: None,
            snapshot_id: None,
            quiet: true,
            json: false,
        }
    }

    fn step(name: &str, code: u8) -> Step {
        Step {
            step: name.into(),
            command: None,
            exit_code: code,
            error: None,
            snapshot_id: None,
            components: Vec::new(),
        }
    }

    #[test]
    fn a_failed_copy_or_target_forget_makes_the_night_partial_not_failed() {
        // backup ok, copy unreachable (13), forget ok: 3, and the copy's own code recorded.
        let mut n = night();
        n.record(step("backup", 0));
        n.record_offsite(step("copy offsite", 13));
        n.record(step("forget", 0));
        assert_eq!(n.code, EXIT_PARTIAL);
        assert_eq!(n.steps[1].exit_code, 13);
        assert_eq!(n.error.as_deref(), Some("copy offsite exited 13"));
        // A local failure after it decides: the local night is not done.
        n.record(step("forget", 11));
        assert_eq!(n.code, 11);
        // A local failure before it stays.
        let mut n = night();
        n.record(step("backup", 0));
        n.record(step("forget", 12));
        n.record_offsite(step("forget offsite", 1));
        assert_eq!(n.code, 12);
        // All off-site steps fine: 0; a partial backup stays 3.
        let mut n = night();
        n.record(step("backup", 3));
        n.record_offsite(step("copy offsite", 0));
        n.record_offsite(step("forget offsite", 0));
        assert_eq!(n.code, EXIT_PARTIAL);
        let mut n = night();
        n.record(step("backup", 0));
        n.record_offsite(step("copy offsite", 0));
        assert_eq!(n.code, EXIT_OK);
    }

    #[test]
    fn the_worst_step_decides() {
        assert_eq!(worse(0, 0), 0);
        assert_eq!(worse(0, 3), 3);
        assert_eq!(worse(3, 0), 3);
        assert_eq!(worse(3, 12), 12);
        assert_eq!(worse(11, 3), 11);
        assert_eq!(worse(1, 13), 1);
    }
}
