//! `cairn diff`: what changed between two snapshots (restic's `diff`).

use clap::Args;
use serde_json::json;

use cairn::diff::{diff_trees, DiffStat};
use cairn::id::SnapshotId;
use cairn::walker;
use cairn::Error;

use super::{human_bytes, out, GlobalOpts, EXIT_OK};

/// Arguments of `diff`.
#[derive(Args)]
#[command(after_help = "Each changed path is printed with restic's modifiers:\n  \
+  added          -  removed\n  \
M  a file's content (or a symlink's target) changed\n  \
U  only metadata changed (mode, owner, mtime)\n  \
T  the type changed (e.g. a file became a directory)\n\
Directories end with `/`; all contents of an added or removed directory are listed.\n\n\
SNAPSHOT:PATH compares a directory of each snapshot (paths are then printed relative to it), \
e.g. `cairn diff 4f2a9c1e:/srv/www latest:/srv/www`.\n\
--json prints one JSON object per line: {\"message_type\":\"change\",\"path\",\"modifier\"} for \
each change, then {\"message_type\":\"statistics\",...}.")]
pub struct DiffArgs {
    /// The older snapshot (`latest`, an id or prefix), optionally `:PATH` for a directory in it
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    first: String,
    /// The newer snapshot, optionally `:PATH`
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    second: String,
}

fn stat_json(s: &DiffStat) -> serde_json::Value {
    json!({ "files": s.files, "dirs": s.dirs, "others": s.others, "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs, "bytes": s.bytes })
}

/// Compare two snapshots and print the changes and totals.
pub fn run(g: &GlobalOpts, a: &DiffArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "diff")?;
    let index = repo.load_index()?;
    let side = |spec: &str| -> Result<(SnapshotId, cairn::id::BlobId), Error> {
        let (snap, path) = match spec.split_once(':') {
            Some((s, p)) => (s, Some(p)),
            None => (spec, None),
        };
        let (id, s) = repo.find_snapshot(snap, &Default::default())?;
        let loc = walker::resolve(&repo, &index, &s.tree, path.unwrap_or("/"))?;
        let tree = loc.tree().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: {} in snapshot {} is not a directory",
                spec,
                loc.path().display(),
                id.short()
            ))
        })?;
        Ok((id, tree))
    };
    let (id1, t1) = side(&a.first)?;
    let (id2, t2) = side(&a.second)?;
    if !g.json && !g.quiet {
        out(&format!("comparing snapshot {} to {}:\n", id1.short(), id2.short()));
    }
    let stats = diff_trees(&repo, &index, &t1, &t2, &mut |c| {
        if g.json {
            out(&json!({ "message_type": "change", "path": c.path, "modifier": c.modifier }).to_string());
        } else {
            out(&format!("{:<5}{}", c.modifier, c.path));
        }
        Ok(())
    })?;
    if g.json {
        out(&json!({
            "message_type": "statistics",
            "source_snapshot": id1.to_hex(),
            "target_snapshot": id2.to_hex(),
            "changed_files": stats.changed_files,
            "added": stat_json(&stats.added),
            "removed": stat_json(&stats.removed),
        })
        .to_string());
    } else if !g.quiet {
        let (ad, rm) = (&stats.added, &stats.removed);
        out("");
        out(&format!("Files:       {:5} new, {:5} removed, {:5} changed", ad.files, rm.files, stats.changed_files));
        out(&format!("Dirs:        {:5} new, {:5} removed", ad.dirs, rm.dirs));
        out(&format!("Others:      {:5} new, {:5} removed", ad.others, rm.others));
        out(&format!("Data Blobs:  {:5} new, {:5} removed", ad.data_blobs, rm.data_blobs));
        out(&format!("Tree Blobs:  {:5} new, {:5} removed", ad.tree_blobs, rm.tree_blobs));
        out(&format!("  Added:   {}", human_bytes(ad.bytes)));
        out(&format!("  Removed: {}", human_bytes(rm.bytes)));
    }
    Ok(EXIT_OK)
}
