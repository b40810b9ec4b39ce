//! `cairn ls`: list a snapshot's files and directories (restic's `ls`).

use std::path::Path;

use clap::Args;
use serde_json::{json, Value};

use cairn::tree::{Node, NodeKind};
use cairn::walker::{self, Located, Visit};
use cairn::Error;

use super::{local_time, out, rfc3339, FilterArgs, GlobalOpts, EXIT_OK};

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
        walker::mode_string(node.kind, node.mode),
        user,
        group,
        node.size,
        local_time(node.mtime),
        path.display(),
        target
    )
}

/// A node as `ls --json` prints it (restic's fields; `mode` is the POSIX `st_mode`), and
/// `xattrs` when it has extended attributes ([`xattr_json`]).
pub fn node_json(path: &Path, node: &Node) -> Value {
    let mut v = json!({
        "name": node.name_lossy(),
        "type": walker::kind_name(node.kind),
        "path": path.display().to_string(),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mode": walker::st_mode(node),
        "permissions": walker::mode_string(node.kind, node.mode),
        "mtime": rfc3339(node.mtime, None),
        "ctime": rfc3339(node.ctime, None),
        "inode": node.inode,
        "links": node.links,
        "struct_type": "node",
        "message_type": "node",
    });
    if node.kind == NodeKind::Symlink {
        v["link_target"] = String::from_utf8_lossy(&node.symlink_target).into();
    }
    if !node.xattrs.is_empty() {
        v["xattrs"] = node.xattrs.iter().map(xattr_json).collect();
    }
    v
}

/// One extended attribute as `ls --json` prints it: `name` as text, `value` in standard
/// base64 (with padding); a name that is not UTF-8 also gets `name_base64`, its exact bytes.
fn xattr_json(x: &cairn::tree::Xattr) -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut v = json!({ "name": x.name_lossy(), "value": b64(&x.value) });
    if std::str::from_utf8(&x.name).is_err() {
        v["name_base64"] = b64(&x.name).into();
    }
    v
}

/// List the snapshot (or the given paths in it).
pub fn run(g: &GlobalOpts, a: &LsArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "ls")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let index = repo.load_index()?;
    let print = |path: &Path, node: &Node| {
        if g.json {
            out(&node_json(path, node).to_string());
        } else if a.long {
            out(&long_line(path, node));
        } else {
            out(&path.display().to_string());
        }
    };
    // Resolve every path first: a path not in the snapshot fails before anything is printed.
    let targets: Vec<Located> = if a.dirs.is_empty() {
        vec![Located::Root { tree: snap.tree }]
    } else {
        a.dirs
            .iter()
            .map(|p| {
                walker::resolve(&repo, &index, &snap.tree, p)
                    .map_err(|e| a.filter.explain_missing_path(e, &a.snapshot, &id, &snap))
            })
            .collect::<Result<_, _>>()?
    };
    if g.json {
        let mut s = super::snapshots::snapshot_json(&id, &snap);
        s["struct_type"] = "snapshot".into();
        s["message_type"] = "snapshot".into();
        out(&s.to_string());
    } else if g.verbose > 0 {
        eprintln!("snapshot {} of {:?} at {}:", id.short(), snap.paths, super::snapshot_time(&snap));
    }
    for t in &targets {
        // The whole snapshot is listed recursively; a given path lists itself, then its entries.
        let recursive = a.recursive || a.dirs.is_empty();
        if let Located::Entry { path, node } = t {
            print(path, node);
        }
        if let Some(tree) = t.tree() {
            walker::walk(&repo, &index, &tree, &t.path(), &mut |p, n| {
                print(p, n);
                Ok(if recursive { Visit::Descend } else { Visit::Skip })
            })?;
        }
    }
    Ok(EXIT_OK)
}
