//! `cairn find`: which snapshots hold paths matching globs (restic's `find`).

use clap::Args;

use cairn::find::{find, Bound, FindOptions, Match, Matcher, SnapshotMatches};
use cairn::id::SnapshotId;
use cairn::snapshot::Snapshot;
use cairn::tree::Timestamp;
use cairn::Error;

use super::ls::long_line;
use super::{out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `find`.
#[derive(Args)]
#[command(after_help = "A PATTERN without `/` matches entry names at any depth (`maildb.dump`, `*.conf`); \
one starting with `/` matches the whole snapshot path (`/etc/postfix/*.cf`); any other pattern \
with `/` matches the end of the path (`postfix/*.cf`). `*` stays within a path component, `**` \
crosses them.\n\n\
--newest and --oldest take either a count or a date/time:\n  \
--newest 5       search only the 5 newest snapshots (of those selected)\n  \
--oldest 3       search only the 3 oldest snapshots\n  \
--newest TIME    restic's bound: only entries modified at or before TIME\n  \
--oldest TIME    only entries modified at or after TIME\n\
TIME is RFC 3339 (2026-11-20T03:00:00+01:00) or local `YYYY-MM-DD[ HH:MM[:SS]]`.\n\n\
Matches are printed per snapshot, oldest snapshot first, in the long format of `ls --long` \
(mode, owner, group, size, mtime, path). --json prints one JSON array: for each snapshot with \
matches, {\"matches\": [...], \"hits\": N, \"snapshot\": ID}.")]
pub struct FindArgs {
    /// Glob patterns (any of them matches)
    #[arg(value_name = "PATTERN", required = true)]
    patterns: Vec<String>,
    /// Search only this snapshot (repeatable; default: all snapshots passing the filters)
    #[arg(short = 's', long = "snapshot", value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// A count N: only the N newest snapshots; a date/time: only entries modified at or before it
    #[arg(short = 'N', long, value_name = "N|TIME")]
    newest: Option<String>,
    /// A count N: only the N oldest snapshots; a date/time: only entries modified at or after it
    #[arg(short = 'O', long, value_name = "N|TIME")]
    oldest: Option<String>,
    /// Ignore case in patterns
    #[arg(short = 'i', long)]
    ignore_case: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn parse_bound(flag: &str, s: &str) -> Result<Bound, Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Bound::Count).map_err(|e| Error::usage(format!("{flag} {s:?}: {e}")));
    }
    let utc = chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).ok().or_else(|| {
        let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
            .or_else(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
        naive.and_local_timezone(chrono::Local).earliest().map(|t| t.with_timezone(&chrono::Utc))
    });
    let t = utc.ok_or_else(|| {
        Error::usage(format!("{flag} {s:?}: expected a snapshot count, RFC 3339, or YYYY-MM-DD[ HH:MM[:SS]]"))
    })?;
    Ok(Bound::Time(Timestamp { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() }))
}

/// Search the selected snapshots and print the matches.
pub fn run(g: &GlobalOpts, a: &FindArgs) -> Result<u8, Error> {
    let newest = a.newest.as_deref().map(|s| parse_bound("--newest", s)).transpose()?;
    let oldest = a.oldest.as_deref().map(|s| parse_bound("--oldest", s)).transpose()?;
    let matcher = Matcher::new(&a.patterns, a.ignore_case)?;
    let repo = g.open()?;
    let lock = g.read_lock(&repo, "find")?;
    let opts = FindOptions { snapshots: a.snapshots.clone(), filter: a.filter.filter(), newest, oldest };
    let mut first = true;
    let mut on_snapshot = |id: &SnapshotId, snap: &Snapshot, matches: &[Match]| -> Result<(), Error> {
        if g.json {
            let obj = cairn::tree::report::sorted_json(&SnapshotMatches::new(id, matches))?;
            if first {
                out("[");
            }
            out(&format!("{}{}", if first { "" } else { "," }, obj));
        } else {
            if !first {
                out("");
            }
            if !g.quiet {
                out(&format!("Found matching entries in snapshot {} from {}", id.short(), super::snapshot_time(snap)));
            }
            for m in matches {
                out(&long_line(&m.path, &m.node));
            }
        }
        first = false;
        Ok(())
    };
    let summary = find(&g.ctx(), &lock, &repo, matcher, &opts, &mut on_snapshot)?;
    if g.json {
        if first {
            out("[");
        }
        out("]");
    }
    if g.verbose > 0 {
        eprintln!("searched {} snapshots, {} distinct trees read", summary.snapshots, summary.trees_read);
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(parse_bound("--newest", "5").unwrap(), Bound::Count(5));
        assert_eq!(
            parse_bound("--newest", "2026-11-20T03:00:00Z").unwrap(),
            Bound::Time(Timestamp { secs: 1_795_143_600, nanos: 0 })
        );
        assert!(matches!(parse_bound("--oldest", "2026-11-20").unwrap(), Bound::Time(_)));
        assert!(matches!(parse_bound("--oldest", "2026-11-20 03:04").unwrap(), Bound::Time(_)));
        assert!(matches!(parse_bound("--oldest", "2026-11-20 03:04:05").unwrap(), Bound::Time(_)));
        assert!(parse_bound("--oldest", "yesterday").is_err());
        assert!(parse_bound("--oldest", "-1").is_err());
    }
}
