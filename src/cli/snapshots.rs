//! `cairn snapshots`: list snapshots as a table, or as one JSON array.

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use cairn::id::SnapshotId;
use cairn::snapshot::{Snapshot, SnapshotInfo};
use cairn::Error;

use super::{human_bytes, out, snapshot_time, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `snapshots`.
#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

/// Print a library report as one line of JSON, its keys sorted (as `serde_json::Value` prints
/// them; the shape the commands have always printed).
pub fn print_json<T: Serialize>(v: &T) {
    out(&serde_json::to_value(v).unwrap_or_default().to_string());
}

/// One snapshot as the JSON object `snapshots --json` prints.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    serde_json::to_value(SnapshotInfo::new(id, s)).unwrap_or_default()
}

/// `path` as the table shows it: with ` !` when its component failed or is partial.
fn marked(s: &Snapshot, path: &str) -> String {
    use cairn::snapshot::ComponentOutcome;
    match s.components.iter().find(|c| c.path == path) {
        Some(c) if c.status != ComponentOutcome::Ok => format!("{path} !"),
        _ => path.to_string(),
    }
}

/// List the snapshots passing the filters, oldest first.
pub fn run(g: &GlobalOpts, a: &SnapshotsArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let _lock = g.read_lock(&repo, "snapshots")?;
    let snaps = repo.snapshots(&g.ctx(), &a.filter.filter())?;
    if g.json {
        let list: Vec<SnapshotInfo> = snaps.iter().map(|(id, s)| SnapshotInfo::new(id, s)).collect();
        print_json(&list);
        return Ok(EXIT_OK);
    }
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
    if snaps.iter().any(|(_, s)| s.is_incomplete()) {
        out("! incomplete: that part failed (or was partly read) and is not (fully) in the snapshot; `snapshots --json` says why");
    }
    Ok(EXIT_OK)
}
