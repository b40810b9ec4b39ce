//! `cairn ls`: list a snapshot's files and directories (restic's `ls`).

use std::path::Path;

use clap::Args;

use cairn::tree::list::Listing;
use cairn::tree::report::{sorted_json, NodeInfo};
use cairn::tree::{mode_string, Node, NodeKind};
use cairn::Error;

use super::{local_time, out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `ls`.
#[derive(Args)]
#[command(after_help = "Without PATH, the whole snapshot is listed. With PATH (an absolute snapshot path, as \
the backup recorded it), that entry and, for a directory, its entries are listed; --recursive lists \
everything below it. --long shows mode, owner, group, size, modification time (local) and path, \
and `-> target` for symlinks. --json prints one JSON object per line: the snapshot \
(struct_type \"snapshot\"), then each node (struct_type \"node\").")]
pub struct LsArgs {
    /// Snapshot: `latest`, an id, or a unique id prefix
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,
    /// Snapshot paths to list (absolute, e.g. /etc/postfix)
    #[arg(value_name = "PATH")]
    dirs: Vec<String>,
    /// Long listing: mode, owner, group, size, mtime, path
    #[arg(short = 'l', long)]
    long: bool,
    /// List everything below the given paths, not only their entries
    #[arg(long)]
    recursive: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// A node in restic's long format: `-rw-r--r--  root  root   1234 2026-11-20 03:00:00 /path`,
/// owner and group by name (the ids when the backup recorded no name), `-> target` for symlinks.
pub fn long_line(path: &Path, node: &Node) -> String {
    let user = if node.user.is_empty() { node.uid.to_string() } else { node.user.clone() };
    let group = if node.group.is_empty() { node.gid.to_string() } else { node.group.clone() };
    let target = if node.kind == NodeKind::Symlink {
        format!(" -> {}", String::from_utf8_lossy(&node.symlink_target))
    } else {
        String::new()
    };
    format!(
        "{} {:>5} {:>5} {:>6} {} {}{}",
        mode_string(node.kind, node.mode),
        user,
        group,
        node.size,
        local_time(node.mtime),
        path.display(),
        target
    )
}

/// List the snapshot (or the given paths in it).
pub fn run(g: &GlobalOpts, a: &LsArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let lock = g.read_lock(&repo, "ls")?;
    let ctx = g.ctx();
    let (id, snap) = repo.find_snapshot(&ctx, &a.snapshot, &a.filter.filter())?;
    let index = repo.load_index()?;
    // Every path is resolved first: a path not in the snapshot fails before anything is printed.
    let listing = Listing::new(&ctx, &lock, &repo, &index, &snap.tree, &a.dirs, a.recursive)
        .map_err(|e| a.filter.explain_missing_path(e, &a.snapshot, &id, &snap))?;
    if g.json {
        let mut s = super::snapshots::snapshot_json(&id, &snap)?;
        s["struct_type"] = "snapshot".into();
        s["message_type"] = "snapshot".into();
        out(&s.to_string());
    } else if g.verbose > 0 {
        eprintln!("snapshot {} of {:?} at {}:", id.short(), snap.paths, super::snapshot_time(&snap));
    }
    listing.run(&mut |path, node| {
        if g.json {
            out(&sorted_json(&NodeInfo::new(path, node))?);
        } else if a.long {
            out(&long_line(path, node));
        } else {
            out(&path.display().to_string());
        }
        Ok(())
    })?;
    Ok(EXIT_OK)
}
