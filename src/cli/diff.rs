//! `cairn diff`: what changed between two snapshots (restic's `diff`).

use clap::Args;

use cairn::diff::SnapshotDiff;
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

/// Compare two snapshots and print the changes and totals.
pub fn run(g: &GlobalOpts, a: &DiffArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let lock = g.read_lock(&repo, "diff")?;
    let index = repo.load_index()?;
    let ctx = g.ctx();
    let d = SnapshotDiff::new(&ctx, &lock, &repo, &index, &a.first, &a.second)?;
    if !g.json && !g.quiet {
        out(&format!("comparing snapshot {} to {}:\n", d.source.0.short(), d.target.0.short()));
    }
    let summary = d.run(&mut |c| {
        if g.json {
            out(&serde_json::to_string(c).map_err(|e| Error::internal(format!("JSON: {e}")))?);
        } else {
            out(&format!("{:<5}{}", c.modifier, c.path));
        }
        Ok(())
    })?;
    if g.json {
        out(&serde_json::to_string(&summary).map_err(|e| Error::internal(format!("JSON: {e}")))?);
    } else if !g.quiet {
        let (ad, rm) = (&summary.added, &summary.removed);
        out("");
        out(&format!("Files:       {:5} new, {:5} removed, {:5} changed", ad.files, rm.files, summary.changed_files));
        out(&format!("Dirs:        {:5} new, {:5} removed", ad.dirs, rm.dirs));
        out(&format!("Others:      {:5} new, {:5} removed", ad.others, rm.others));
        out(&format!("Data Blobs:  {:5} new, {:5} removed", ad.data_blobs, rm.data_blobs));
        out(&format!("Tree Blobs:  {:5} new, {:5} removed", ad.tree_blobs, rm.tree_blobs));
        out(&format!("  Added:   {}", human_bytes(ad.bytes)));
        out(&format!("  Removed: {}", human_bytes(rm.bytes)));
    }
    Ok(EXIT_OK)
}
