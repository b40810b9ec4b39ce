//! `cairn snapshots`: list snapshots as a table, or as one JSON array.

use clap::Args;
use serde_json::{json, Value};

use cairn::id::SnapshotId;
use cairn::snapshot::{Snapshot, Summary};
use cairn::Error;

use super::{human_bytes, out, rfc3339, snapshot_time, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `snapshots`.
#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

/// The summary's fields as JSON (times RFC 3339, duration in seconds).
pub fn summary_json(s: &Summary, tz: i32) -> Value {
    let dur = s.backup_end.secs.saturating_sub(s.backup_start.secs) as f64
        + (s.backup_end.nanos as f64 - s.backup_start.nanos as f64) / 1e9;
    json!({
        "backup_start": rfc3339(s.backup_start, Some(tz)),
        "backup_end": rfc3339(s.backup_end, Some(tz)),
        "duration_seconds": dur.max(0.0),
        "files_new": s.files_new,
        "files_changed": s.files_changed,
        "files_unchanged": s.files_unchanged,
        "dirs_new": s.dirs_new,
        "dirs_changed": s.dirs_changed,
        "dirs_unchanged": s.dirs_unchanged,
        "data_blobs": s.data_blobs,
        "tree_blobs": s.tree_blobs,
        "data_added": s.data_added,
        "data_added_packed": s.data_added_packed,
        "total_files_processed": s.total_files_processed,
        "total_bytes_processed": s.total_bytes_processed,
        "errors": s.errors,
    })
}

/// One snapshot as the JSON object `snapshots --json` prints.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": rfc3339(s.time, Some(s.tz_offset)),
        "hostname": s.hostname,
        "username": s.username,
        "uid": s.uid,
        "gid": s.gid,
        "paths": s.paths,
        "tags": s.tags,
        "excludes": s.excludes,
        "tree": s.tree.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "program_version": s.program_version,
        "summary": summary_json(&s.summary, s.tz_offset),
    })
}

/// List the snapshots passing the filters, oldest first.
pub fn run(g: &GlobalOpts, a: &SnapshotsArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "snapshots")?;
    let snaps = repo.snapshots(&a.filter.filter())?;
    if g.json {
        let arr: Vec<Value> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        out(&Value::Array(arr).to_string());
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
                s.paths.join("\n"),
                human_bytes(s.summary.total_bytes_processed),
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
    Ok(EXIT_OK)
}
