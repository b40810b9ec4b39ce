//! `check`'s snapshot phases: every snapshot decodes, every tree they reach loads (each once,
//! through [`crate::tree::reachable`]) and names blobs the index knows; and, when damage was
//! found, which snapshot entries it affects (through [`crate::tree::TreeStream`]).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::backend::FileKind;
use crate::blob::BlobType;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::reachable;
use crate::tree::TreeStream;
use crate::tree::{NodeKind, Tree};

use super::{why, Affected, CheckProgress, CheckReport, Failure, Problem, NOT_ITS_NAME};

/// Every snapshot that loads, oldest first; damaged ones become problems.
pub(super) fn load_snapshots(
    repo: &Repository,
    report: &mut CheckReport,
    failure: &Failure,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    // Files whose names are not ids are listed too: each is a damaged snapshot.
    let (ids, foreign) = FileKind::Snapshot.split_listing(repo.backend().list_names(FileKind::Snapshot)?);
    let loaded: Vec<(SnapshotId, Result<Snapshot>)> = {
        use rayon::prelude::*;
        ids.par_iter()
            .map(|(id, _)| SnapshotId(*id))
            .map(|id| (id, failure.read(|| repo.load::<Snapshot>(&id))))
            .collect()
    };
    failure.check()?;
    let mut out = Vec::new();
    for (id, r) in loaded {
        match r {
            Ok(s) => out.push((id, s)),
            Err(e) => report.problems.push(Problem::SnapshotDamaged { snapshot: id.to_hex(), error: why(&e) }),
        }
    }
    for (name, _) in foreign {
        report.problems.push(Problem::SnapshotDamaged { snapshot: name, error: NOT_ITS_NAME.into() });
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// True when no index lists `blob`. A copy listed with the other type serves (an id names
/// one plaintext whatever its type: repo-format.md, "Index files").
fn not_indexed(index: &Index, blob: &BlobId) -> bool {
    index.get(blob).is_none()
}

/// The outcome of loading one tree in [`walk_trees`].
enum TreeLoad {
    Loaded(Tree),
    NotIndexed,
    Damaged(String),
}

/// Load every tree reachable from `snapshots` once, recording what is wrong with each and
/// with the blobs it names; returns how many loaded. Errors: [`Error::Interrupted`]; a storage
/// failure (then nothing it could not read is reported).
pub(super) fn walk_trees(
    ctx: &Ctx,
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    problems: &mut Vec<Problem>,
    progress: &CheckProgress,
) -> Result<usize> {
    let mut reported: HashSet<BlobId> = HashSet::new();
    let failure = Failure::default();
    let mut loaded = 0;
    let load = |id: &BlobId| {
        if not_indexed(index, id) {
            return TreeLoad::NotIndexed;
        }
        match failure.read(|| repo.load_tree(index, id)) {
            Ok(t) => TreeLoad::Loaded(t),
            Err(e) => TreeLoad::Damaged(e.to_string()),
        }
    };
    let visit = |id: BlobId, parent: Option<BlobId>, r: TreeLoad| -> Result<Vec<BlobId>> {
        // A storage failure while loading this batch ends the check with it.
        failure.check()?;
        let tree = match r {
            TreeLoad::NotIndexed => {
                problems.push(Problem::BlobNotIndexed { blob: id, blob_type: BlobType::Tree, tree: parent });
                return Ok(Vec::new());
            }
            TreeLoad::Damaged(error) => {
                problems.push(Problem::TreeDamaged { tree: id, error });
                return Ok(Vec::new());
            }
            TreeLoad::Loaded(tree) => tree,
        };
        loaded += 1;
        progress.trees.fetch_add(1, Ordering::Relaxed);
        let mut subtrees = Vec::new();
        for node in &tree.nodes {
            match node.kind {
                NodeKind::Dir => match node.subtree {
                    Some(sub) => subtrees.push(sub),
                    None => problems.push(Problem::NodeInvalid {
                        tree: id,
                        name: node.name_lossy().into_owned(),
                        detail: "is a directory without a subtree".into(),
                    }),
                },
                NodeKind::File => {
                    for b in &node.content {
                        if not_indexed(index, b) && reported.insert(*b) {
                            problems.push(Problem::BlobNotIndexed {
                                blob: *b,
                                blob_type: BlobType::Data,
                                tree: Some(id),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(subtrees)
    };
    reachable::unique_trees(ctx, snapshots.iter().map(|(_, s)| s.tree), load, visit)?;
    Ok(loaded)
}

/// Map `damaged` blobs to the snapshot entries that reference them, sorted by snapshot time,
/// snapshot id and path. A directory whose tree is damaged is one entry (everything below it
/// is lost). Errors: [`Error::Interrupted`]; a storage failure.
pub(super) fn find_affected(
    ctx: &Ctx,
    repo: &Repository,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    damaged: &BTreeSet<BlobId>,
    failure: &Failure,
) -> Result<Vec<Affected>> {
    // Trees with nothing damaged below them, shared between the snapshots: not walked again.
    let mut clean: HashSet<BlobId> = HashSet::new();
    let mut out = Vec::new();
    for (sid, s) in snapshots {
        ctx.check()?;
        let entries = if damaged.contains(&s.tree) {
            vec![("/".to_string(), vec![s.tree])]
        } else if clean.contains(&s.tree) {
            Vec::new()
        } else {
            affected_below(ctx, repo, index, &s.tree, damaged, &mut clean, failure)?
        };
        failure.check()?;
        for (path, blobs) in entries {
            out.push(Affected { snapshot: *sid, time: s.time, path, blobs });
        }
    }
    out.sort_by(|a, b| (a.time, a.snapshot, &a.path).cmp(&(b.time, b.snapshot, &b.path)));
    Ok(out)
}

/// A tree [`affected_below`] is inside of: its id, and whether damage was found below it.
struct Open {
    tree: BlobId,
    dirty: bool,
}

/// Entries below the root tree `root` (absolute snapshot paths) that reference a damaged blob,
/// streamed depth-first; directories whose tree is in `clean` are skipped, and every tree
/// found to have nothing damaged below it is added to `clean`. A tree that cannot be loaded
/// yields nothing here (it is reported where its parent names it, or as a problem of its own;
/// a storage failure is recorded in `failure`). Errors: [`Error::Interrupted`].
fn affected_below(
    ctx: &Ctx,
    repo: &Repository,
    index: &Index,
    root: &BlobId,
    damaged: &BTreeSet<BlobId>,
    clean: &mut HashSet<BlobId>,
    failure: &Failure,
) -> Result<Vec<(String, Vec<BlobId>)>> {
    let mut found = Vec::new();
    let mut stream = match TreeStream::new(repo, index, &ctx.cancel, root, Path::new("/")) {
        Ok(s) => s,
        Err(e) => return skip_unreadable(e, failure).map(|()| found),
    };
    // One entry per tree open in `stream` (the root first): `open.len() == stream.depth()`
    // after every step.
    let mut open = vec![Open { tree: *root, dirty: false }];
    let close_to = |open: &mut Vec<Open>, clean: &mut HashSet<BlobId>, depth: usize| {
        while open.len() > depth {
            let Some(done) = open.pop() else { break };
            if done.dirty {
                if let Some(parent) = open.last_mut() {
                    parent.dirty = true;
                }
            } else {
                clean.insert(done.tree);
            }
        }
    };
    while let Some((path, node)) = stream.next_entry()? {
        close_to(&mut open, clean, stream.depth());
        let name = path.to_string_lossy().into_owned();
        let bad: Vec<BlobId> = match (node.kind, node.subtree) {
            (NodeKind::File, _) => {
                let mut bad: Vec<BlobId> = node.content.iter().filter(|b| damaged.contains(b)).copied().collect();
                bad.sort();
                bad.dedup();
                bad
            }
            (NodeKind::Dir, Some(sub)) if damaged.contains(&sub) => vec![sub],
            (NodeKind::Dir, Some(sub)) if !clean.contains(&sub) => {
                match stream.descend(&path, &node) {
                    Ok(()) => open.push(Open { tree: sub, dirty: false }),
                    Err(e) => skip_unreadable(e, failure)?,
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        if !bad.is_empty() {
            if let Some(here) = open.last_mut() {
                here.dirty = true;
            }
            found.push((name, bad));
        }
    }
    close_to(&mut open, clean, 0);
    Ok(found)
}

/// A tree that could not be loaded while mapping damage: a storage failure is recorded in
/// `failure` (the check ends with it), damage is skipped (reported on its own).
/// Errors: [`Error::Interrupted`].
fn skip_unreadable(e: Error, failure: &Failure) -> Result<()> {
    match failure.record(e) {
        Ok(()) | Err(Error::Corrupt { .. }) => Ok(()),
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(_) => Ok(()),
    }
}
