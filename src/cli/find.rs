//! `cairn find`: which snapshots hold paths matching globs (restic's `find`).

use clap::Args;
use serde_json::{json, Value};

use cairn::find::{Finder, Matcher};
use cairn::id::SnapshotId;
use cairn::snapshot::Snapshot;
use cairn::tree::{NodeKind, Timestamp};
use cairn::walker;
use cairn::Error;

use super::ls::long_line;
use super::rfc3339;
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

/// `--newest`/`--oldest`: a snapshot count or an mtime bound.
#[derive(Debug, PartialEq, Eq)]
enum Bound {
    Count(usize),
    Time(Timestamp),
}

fn parse_bound(flag: &str, s: &str) -> Result<Bound, Error> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Bound::Count).map_err(|e| Error::InvalidInput(format!("{flag} {s:?}: {e}")));
    }
    let utc = chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).ok().or_else(|| {
        let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
            .or_else(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
        naive.and_local_timezone(chrono::Local).earliest().map(|t| t.with_timezone(&chrono::Utc))
    });
    let t = utc.ok_or_else(|| {
        Error::InvalidInput(format!("{flag} {s:?}: expected a snapshot count, RFC 3339, or YYYY-MM-DD[ HH:MM[:SS]]"))
    })?;
    Ok(Bound::Time(Timestamp { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() }))
}

/// One match as restic's `find --json` prints it.
fn match_json(path: &std::path::Path, node: &cairn::tree::Node) -> Value {
    let mut v = json!({
        "path": path.display().to_string(),
        "permissions": walker::mode_string(node.kind, node.mode),
        "name": node.name_lossy(),
        "type": walker::kind_name(node.kind),
        "mtime": rfc3339(node.mtime, None),
        "ctime": rfc3339(node.ctime, None),
        "user": node.user,
        "group": node.group,
        "inode": node.inode,
        "mode": walker::st_mode(node),
        "device_id": node.device,
        "links": node.links,
        "uid": node.uid,
        "gid": node.gid,
        "size": node.size,
    });
    if node.kind == NodeKind::Symlink {
        v["link_target"] = String::from_utf8_lossy(&node.symlink_target).into();
    }
    v
}

/// Search the selected snapshots and print the matches.
pub fn run(g: &GlobalOpts, a: &FindArgs) -> Result<u8, Error> {
    let newest = a.newest.as_deref().map(|s| parse_bound("--newest", s)).transpose()?;
    let oldest = a.oldest.as_deref().map(|s| parse_bound("--oldest", s)).transpose()?;
    let matcher = Matcher::new(&a.patterns, a.ignore_case)?;
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "find")?;
    let mut snaps: Vec<(SnapshotId, Snapshot)> = if a.snapshots.is_empty() {
        repo.snapshots(&a.filter.filter())?
    } else {
        let mut v = Vec::new();
        for s in &a.snapshots {
            let found = repo.find_snapshot(s, &a.filter.filter())?;
            if !v.iter().any(|(id, _): &(SnapshotId, Snapshot)| *id == found.0) {
                v.push(found);
            }
        }
        v.sort_by(|x, y| x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0)));
        v
    };
    if let Some(Bound::Count(n)) = newest {
        let drop = snaps.len().saturating_sub(n);
        snaps.drain(..drop);
    }
    if let Some(Bound::Count(n)) = oldest {
        snaps.truncate(n);
    }
    let time = |b: &Option<Bound>| match b {
        Some(Bound::Time(t)) => Some(*t),
        _ => None,
    };
    let index = repo.load_index()?;
    let mut finder = Finder::new(&repo, &index, matcher, time(&oldest), time(&newest));
    if g.json {
        out("[");
    }
    let mut first = true;
    for (id, snap) in &snaps {
        let matches = finder.find(&snap.tree)?;
        if matches.is_empty() {
            continue;
        }
        if g.json {
            let m: Vec<Value> = matches.iter().map(|m| match_json(&m.path, &m.node)).collect();
            let obj = json!({ "matches": m, "hits": matches.len(), "snapshot": id.to_hex() });
            out(&format!("{}{}", if first { "" } else { "," }, obj));
        } else {
            if !first {
                out("");
            }
            if !g.quiet {
                out(&format!("Found matching entries in snapshot {} from {}", id.short(), super::snapshot_time(snap)));
            }
            for m in &matches {
                out(&long_line(&m.path, &m.node));
            }
        }
        first = false;
    }
    if g.json {
        out("]");
    }
    if g.verbose > 0 {
        eprintln!("searched {} snapshots, {} distinct trees read", snaps.len(), finder.trees_read());
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
