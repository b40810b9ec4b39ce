//! `cairn forget`: remove snapshots by id, or by a keep policy applied per group (restic's
//! `forget`: flags, short options, grouping and JSON shape). Only snapshot files are deleted;
//! `prune` removes the data no snapshot references any more.

use clap::Args;

use cairn::lock::{ExclusiveLock, ReadLock};
use cairn::ops::forget::{self, Decision, ForgetGroup, ForgetOptions, GroupBy, KeepDuration, KeepPolicy};
use cairn::Error;

use super::prune::PruneLock;
use super::snapshots::print_json;
use super::{out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `forget`.
#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ids or unique id prefixes); no policy applies then
    #[arg(value_name = "SNAPSHOT ID")]
    ids: Vec<String>,
    /// Keep the last N snapshots ('unlimited' or -1: all)
    #[arg(short = 'l', long = "keep-last", value_name = "N", allow_negative_numbers = true)]
    keep_last: Option<String>,
    /// Keep the last N hourly snapshots ('unlimited' or -1: all)
    #[arg(short = 'H', long = "keep-hourly", value_name = "N", allow_negative_numbers = true)]
    keep_hourly: Option<String>,
    /// Keep the last N daily snapshots ('unlimited' or -1: all)
    #[arg(short = 'd', long = "keep-daily", value_name = "N", allow_negative_numbers = true)]
    keep_daily: Option<String>,
    /// Keep the last N weekly snapshots ('unlimited' or -1: all)
    #[arg(short = 'w', long = "keep-weekly", value_name = "N", allow_negative_numbers = true)]
    keep_weekly: Option<String>,
    /// Keep the last N monthly snapshots ('unlimited' or -1: all)
    #[arg(short = 'm', long = "keep-monthly", value_name = "N", allow_negative_numbers = true)]
    keep_monthly: Option<String>,
    /// Keep the last N yearly snapshots ('unlimited' or -1: all)
    #[arg(short = 'y', long = "keep-yearly", value_name = "N", allow_negative_numbers = true)]
    keep_yearly: Option<String>,
    /// Keep snapshots newer than DURATION (e.g. 1y5m7d2h) relative to the latest snapshot
    #[arg(long = "keep-within", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within: Option<String>,
    /// Keep hourly snapshots newer than DURATION relative to the latest snapshot
    #[arg(long = "keep-within-hourly", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_hourly: Option<String>,
    /// Keep daily snapshots newer than DURATION relative to the latest snapshot
    #[arg(long = "keep-within-daily", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_daily: Option<String>,
    /// Keep weekly snapshots newer than DURATION relative to the latest snapshot
    #[arg(long = "keep-within-weekly", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_weekly: Option<String>,
    /// Keep monthly snapshots newer than DURATION relative to the latest snapshot
    #[arg(long = "keep-within-monthly", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_monthly: Option<String>,
    /// Keep yearly snapshots newer than DURATION relative to the latest snapshot
    #[arg(long = "keep-within-yearly", value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_yearly: Option<String>,
    /// Keep snapshots carrying all tags of this list (repeatable: any of the lists)
    #[arg(long = "keep-tag", value_name = "TAG[,TAG]")]
    keep_tags: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Group snapshots by host, paths and/or tags, comma-separated ('' for one group)
    #[arg(short = 'g', long = "group-by", value_name = "GROUP", default_value = "host,paths")]
    group_by: String,
    /// Do not delete anything, just print what would be done
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Run `prune` afterwards if snapshots were removed
    #[arg(long)]
    prune: bool,
    /// For --prune: tolerate this much unused space (a size, a percentage, or 'unlimited';
    /// prune's default)
    #[arg(long = "max-unused", value_name = "LIMIT")]
    max_unused: Option<String>,
    /// Do not keep the newest snapshot of each group in which each component (a backed-up
    /// path or a --command output) succeeded; by default it is kept besides the policy, with
    /// the reason "last good PATH", so failed dumps never age out the last good one
    #[arg(long)]
    no_keep_last_good: bool,
}

/// A `--keep-*` count: a non-negative number, `-1` or `unlimited` (restic's spellings); 0
/// when not given. Parsed here rather than by clap so that a bad value exits with 1.
fn count(flag: &str, v: &Option<String>) -> Result<i32, Error> {
    let Some(v) = v else { return Ok(0) };
    let bad = |why: &str| Error::usage(format!("{flag} {v:?}: {why}"));
    match v.trim() {
        "unlimited" | "-1" => Ok(forget::UNLIMITED),
        t => match t.parse::<i64>() {
            Ok(n) if n < 0 => Err(bad("negative values other than -1 are not allowed; use 'unlimited' to keep all")),
            Ok(n) => i32::try_from(n).map_err(|_| bad("too large")),
            Err(_) => Err(bad("expected a number of snapshots, or 'unlimited'")),
        },
    }
}

/// A `--keep-within*` duration; zero (off) when not given.
fn duration(flag: &str, v: &Option<String>) -> Result<KeepDuration, Error> {
    match v {
        None => Ok(KeepDuration::default()),
        Some(v) => KeepDuration::parse(v).map_err(|e| Error::usage(format!("{flag}: {e}"))),
    }
}

impl ForgetArgs {
    /// The policy the flags describe. Errors: [`Error::Usage`] naming the flag for a
    /// malformed count or duration, or an empty tag.
    fn policy(&self) -> Result<KeepPolicy, Error> {
        let tags = self
            .keep_tags
            .iter()
            .map(|l| l.split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        if let Some(bad) = self.keep_tags.iter().zip(&tags).find(|(_, l)| l.iter().any(String::is_empty)) {
            return Err(Error::usage(format!("--keep-tag {:?}: empty tag name", bad.0)));
        }
        let p = KeepPolicy {
            last: count("--keep-last", &self.keep_last)?,
            hourly: count("--keep-hourly", &self.keep_hourly)?,
            daily: count("--keep-daily", &self.keep_daily)?,
            weekly: count("--keep-weekly", &self.keep_weekly)?,
            monthly: count("--keep-monthly", &self.keep_monthly)?,
            yearly: count("--keep-yearly", &self.keep_yearly)?,
            within: duration("--keep-within", &self.keep_within)?,
            within_hourly: duration("--keep-within-hourly", &self.keep_within_hourly)?,
            within_daily: duration("--keep-within-daily", &self.keep_within_daily)?,
            within_weekly: duration("--keep-within-weekly", &self.keep_within_weekly)?,
            within_monthly: duration("--keep-within-monthly", &self.keep_within_monthly)?,
            within_yearly: duration("--keep-within-yearly", &self.keep_within_yearly)?,
            tags,
        };
        p.validate()?;
        Ok(p)
    }
}

/// The lock forget holds: exclusive to remove, shared (or none under `--no-lock`) for a dry run.
enum Held {
    Read(ReadLock),
    Exclusive(ExclusiveLock),
}

/// Remove the named snapshots, or apply the policy to each group; print what is kept and
/// removed (and why); delete the removed snapshot files unless `--dry-run`.
pub fn run(g: &GlobalOpts, args: &ForgetArgs) -> Result<u8, Error> {
    let policy = args.policy()?;
    // The library names the setting; the flag is named here.
    let group_by = GroupBy::parse(&args.group_by)
        .map_err(|e| Error::usage(e.to_string().replacen("grouping", "--group-by", 1)))?;
    if !args.ids.is_empty() && !policy.is_empty() {
        return Err(Error::usage("give snapshot IDs or a --keep-* policy, not both"));
    }
    let prune_opts = if args.prune {
        Some(super::prune::options(args.max_unused.as_deref().unwrap_or("5%"), args.dry_run)?)
    } else {
        None
    };
    let repo = g.open()?;
    let opts = ForgetOptions {
        ids: args.ids.clone(),
        policy,
        group_by,
        filter: args.filter.filter(),
        dry_run: args.dry_run,
        no_keep_last_good: args.no_keep_last_good,
    };
    let ctx = g.ctx();
    // Removing snapshots (and pruning) is exclusive, as in restic; a dry run only reads.
    let lock = if args.dry_run {
        Held::Read(g.read_lock(&repo, "forget")?)
    } else {
        Held::Exclusive(g.exclusive_lock(&repo, "forget")?)
    };
    if opts.ids.is_empty() && opts.policy.is_empty() {
        if g.json {
            out("[]");
        } else if !g.quiet {
            out("no policy was specified, no snapshots will be removed");
        }
        return Ok(EXIT_OK);
    }
    let text = !g.json && !g.quiet;
    if text && opts.ids.is_empty() {
        out(&format!("Applying policy: {}", opts.policy.describe()));
    }
    let report = match &lock {
        Held::Exclusive(l) => forget::forget(&ctx, l, &repo, &opts)?,
        Held::Read(l) => forget::plan(&ctx, l, &repo, &opts)?,
    };
    for (id, why) in &report.damaged {
        eprintln!(
            "cairn: warning: snapshot file snapshots/{} is damaged ({why}); it is removed by its name",
            id.to_hex()
        );
    }
    let removed = report.removed();
    if args.dry_run {
        super::metrics::skip();
    } else {
        let kept: usize = report.groups.iter().map(|g| g.kept().count()).sum();
        super::metrics::gauge(
            "cairn_forget_removed_snapshots",
            "Snapshots the last forget removed",
            &[],
            removed.len() as f64,
        );
        super::metrics::gauge(
            "cairn_forget_kept_snapshots",
            "Snapshots the last forget kept (of those its filters selected)",
            &[],
            kept as f64,
        );
    }
    if g.json {
        print_json(&report)?;
    } else if !g.quiet {
        if opts.ids.is_empty() {
            for group in &report.groups {
                print_group(group);
            }
        } else {
            for id in &removed {
                out(&format!("{} snapshot {}", if args.dry_run { "would remove" } else { "removed" }, id.short()));
            }
        }
        if args.dry_run {
            out(&format!("would remove {} snapshots", removed.len()));
        } else {
            out(&format!("{} snapshots removed", removed.len()));
        }
    }
    if let (Some(prune_opts), false) = (prune_opts, removed.is_empty()) {
        let lock = match &lock {
            Held::Exclusive(l) => PruneLock::Exclusive(l),
            Held::Read(l) => PruneLock::Read(l),
        };
        return super::prune::run_locked(g, &repo, lock, &prune_opts);
    }
    Ok(EXIT_OK)
}

/// The group header, then the kept snapshots with their reasons and the removed ones.
fn print_group(group: &ForgetGroup) {
    out("");
    out(&super::snapshots::group_title(&group.key));
    let keep: Vec<&Decision> = group.kept().collect();
    let remove: Vec<&Decision> = group.removed().collect();
    if !keep.is_empty() {
        out(&format!("keep {} snapshots:", keep.len()));
        table(&keep, true);
    }
    if !remove.is_empty() {
        out(&format!("remove {} snapshots:", remove.len()));
        table(&remove, false);
    }
}

/// A table of snapshots, oldest first (as `snapshots` prints them); with a Reasons column
/// for kept ones. As restic's, each reason and each path is a line of its own.
fn table(rows: &[&Decision], reasons: bool) {
    let mut header: Vec<String> = ["ID", "Time", "Host", "Tags"].map(String::from).to_vec();
    if reasons {
        header.push("Reasons".into());
    }
    header.push("Paths".into());
    let mut cells: Vec<Vec<String>> = vec![header];
    cells.extend(rows.iter().rev().map(|d| {
        let s = &d.snapshot;
        let mut r = vec![d.id.short(), super::snapshot_time(s), s.hostname.clone(), s.tags.join(",")];
        if reasons {
            r.push(d.reasons.join("\n"));
        }
        r.push(s.paths.join("\n"));
        r
    }));
    let cols = cells.first().map_or(0, Vec::len);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            let cell_width =
                |r: &Vec<String>| r.get(c).map_or(0, |x| x.lines().map(super::table::width).max().unwrap_or(0));
            cells.iter().map(cell_width).max().unwrap_or(0)
        })
        .collect();
    let rule = "-".repeat(width.iter().sum::<usize>() + 2 * cols.saturating_sub(1));
    for (i, r) in cells.iter().enumerate() {
        let lines: Vec<Vec<&str>> = r.iter().map(|c| c.lines().collect()).collect();
        let height = lines.iter().map(Vec::len).max().unwrap_or(0).max(1);
        for k in 0..height {
            let line: Vec<String> = lines
                .iter()
                .zip(&width)
                .map(|(c, w)| super::table::pad_right(c.get(k).copied().unwrap_or(""), *w))
                .collect();
            out(line.join("  ").trim_end());
        }
        if i == 0 {
            out(&rule);
        }
    }
    out(&rule);
}
