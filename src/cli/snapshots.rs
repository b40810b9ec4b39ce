//! `cairn snapshots`: list snapshots as a table, or as one JSON array; with `--group-by`, one
//! table (one JSON object) per group, and with `--latest N` only the last N of each host and
//! path set (restic's `snapshots`).

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use cairn::id::SnapshotId;
use cairn::ops::forget::{group_snapshots, GroupBy, GroupKey};
use cairn::repository::SnapshotList;
use cairn::snapshot::{Snapshot, SnapshotInfo};
use cairn::Error;

use super::{human_bytes, out, snapshot_time, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `snapshots`.
#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only the last N snapshots of each host and path set (within each group with
    /// --group-by); 0 shows all
    #[arg(long, value_name = "N")]
    latest: Option<usize>,
    /// Group snapshots by host, paths and/or tags (comma-separated, e.g. host,paths): one table
    /// per group with a header naming it; --json then prints restic's
    /// [{"group_key": {...}, "snapshots": [...]}]
    #[arg(short = 'g', long, value_name = "GROUP")]
    group_by: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Print a library report as one line of JSON, its keys sorted (as `serde_json::Value` prints
/// them; the shape the commands have always printed).
/// Errors: [`Error::Internal`] when the report cannot be turned into JSON.
pub fn print_json<T: Serialize>(v: &T) -> Result<(), Error> {
    out(&to_json(v)?.to_string());
    Ok(())
}

/// `v` as a JSON value. Errors: [`Error::Internal`] (every report of cairn serialises).
fn to_json<T: Serialize>(v: &T) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::internal(format!("a report could not be turned into JSON: {e}")))
}

/// One snapshot as the JSON object `snapshots --json` prints.
/// Errors: [`Error::Internal`] when it cannot be turned into JSON.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Result<Value, Error> {
    to_json(&SnapshotInfo::new(id, s))
}

/// The header line of a group of snapshots, as restic prints it (`snapshots for (host [h],
/// tags [a, b], paths [/etc, /srv]):`); `snapshots:` for the group of everything.
pub fn group_title(key: &GroupKey) -> String {
    let mut what = Vec::new();
    if let Some(h) = &key.host {
        what.push(format!("host [{h}]"));
    }
    if let Some(t) = &key.tags {
        what.push(format!("tags [{}]", t.join(", ")));
    }
    if let Some(p) = &key.paths {
        what.push(format!("paths [{}]", p.join(", ")));
    }
    if what.is_empty() {
        "snapshots:".to_string()
    } else {
        format!("snapshots for ({}):", what.join(", "))
    }
}

/// A group's key as `snapshots --group-by --json` prints it (restic's `SnapshotGroupKey`: the
/// host name, empty when not grouped by host; paths and tags, null when not grouped by them).
#[derive(Serialize)]
struct GroupKeyJson<'a> {
    hostname: &'a str,
    paths: Option<&'a [String]>,
    tags: Option<&'a [String]>,
}

/// One group as `snapshots --group-by --json` prints it.
#[derive(Serialize)]
struct GroupJson<'a> {
    group_key: GroupKeyJson<'a>,
    snapshots: Vec<SnapshotInfo>,
}

/// `path` as the table shows it: with ` !` when its component failed or is partial.
fn marked(s: &Snapshot, path: &str) -> String {
    use cairn::snapshot::ComponentOutcome;
    match s.components.iter().find(|c| c.path == path) {
        Some(c) if c.status != ComponentOutcome::Ok => format!("{path} !"),
        _ => path.to_string(),
    }
}

/// List the snapshots passing the filters, oldest first: in one table, or one per group with
/// `--group-by`; with `--latest N`, only the last N of each host and path set.
pub fn run(g: &GlobalOpts, a: &SnapshotsArgs) -> Result<u8, Error> {
    // The library names the setting; the flag is named here.
    let by = GroupBy::parse(a.group_by.as_deref().unwrap_or(""))
        .map_err(|e| Error::usage(e.to_string().replacen("grouping", "--group-by", 1)))?;
    let grouped = by.host || by.paths || by.tags;
    let repo = g.open()?;
    let _lock = g.read_lock(&repo, "snapshots")?;
    let snaps = repo.snapshots(&g.ctx(), &a.filter.filter())?;
    let groups: Vec<(GroupKey, SnapshotList)> = group_snapshots(snaps, by)
        .into_iter()
        .map(|(key, list)| match a.latest {
            Some(n) if n > 0 => (key, cairn::snapshot::keep_latest(list, n)),
            _ => (key, list),
        })
        .collect();
    if g.json {
        if grouped {
            let list: Vec<GroupJson> = groups
                .iter()
                .map(|(key, list)| GroupJson {
                    group_key: GroupKeyJson {
                        hostname: key.host.as_deref().unwrap_or(""),
                        paths: key.paths.as_deref(),
                        tags: key.tags.as_deref(),
                    },
                    snapshots: list.iter().map(|(id, s)| SnapshotInfo::new(id, s)).collect(),
                })
                .collect();
            print_json(&list)?;
        } else {
            let list: Vec<SnapshotInfo> =
                groups.iter().flat_map(|(_, list)| list).map(|(id, s)| SnapshotInfo::new(id, s)).collect();
            print_json(&list)?;
        }
        return Ok(EXIT_OK);
    }
    for (i, (key, list)) in groups.iter().enumerate() {
        if grouped {
            if i > 0 {
                out("");
            }
            out(&group_title(key));
        }
        print_table(list);
    }
    if !grouped && groups.is_empty() {
        print_table(&[]);
    }
    if groups.iter().flat_map(|(_, list)| list).any(|(_, s)| s.is_incomplete()) {
        out("! incomplete: that part failed (or was partly read) and is not (fully) in the snapshot; `snapshots --json` says why");
    }
    Ok(EXIT_OK)
}

/// One table of snapshots (oldest first), with its footer.
fn print_table(snaps: &[(SnapshotId, Snapshot)]) {
    let rows: Vec<[String; 6]> = snaps
        .iter()
        .map(|(id, s)| {
            [
                id.short(),
                snapshot_time(s),
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.iter().map(|p| marked(s, p)).collect::<Vec<_>>().join("\n"),
                human_bytes(s.summary.counts.total_bytes_processed),
            ]
        })
        .collect();
    let header = ["ID", "Time", "Host", "Tags", "Paths", "Size"];
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.lines().map(super::table::width).max().unwrap_or(0));
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(&super::table::pad_left(c, w));
            } else {
                s.push_str(&super::table::pad_right(c, w));
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    out(&line(header));
    out(&"-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1)));
    for r in &rows {
        let paths: Vec<&str> = r[4].lines().collect();
        let first = paths.first().copied().unwrap_or("");
        out(&line([&r[0], &r[1], &r[2], &r[3], first, &r[5]]));
        for p in paths.iter().skip(1) {
            out(&line(["", "", "", "", p, ""]));
        }
    }
    out(&"-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1)));
    out(&format!("{} snapshots", rows.len()));
}
