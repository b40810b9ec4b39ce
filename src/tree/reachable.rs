//! The walk over every tree reachable from a set of root trees, each tree once, that `check`
//! (its structure phase) and `prune` (its mark phase) share.
//!
//! The tree module's second traversal. Unlike [`crate::tree::TreeStream`], which streams the *entries* below one tree with their
//! paths (a tree shared by two directories is read twice), this walk is over tree *ids*: a
//! tree that many snapshots share is loaded once, which is what a whole-repository operation
//! needs. Trees are loaded in parallel, in batches of [`BATCH`] taken from the end of the
//! queue (depth first, so the queue stays small); the queue and the set of trees seen are the
//! only state, on the heap: any depth works and no recursion is involved.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::context::Ctx;
use crate::error::Result;
use crate::id::BlobId;

/// Trees loaded in parallel at once.
pub const BATCH: usize = 256;

/// Walk every tree reachable from `roots`, each id once.
///
/// `load(id)` loads one tree (on a rayon worker; it reports its own failures in its result
/// `R`). `visit(id, parent, loaded)` is then called on the calling thread, one tree at a time,
/// with the tree that named it (`None` for a root), and returns the subtrees to follow; those
/// already seen are skipped. The cancellation token of `ctx` is polled before each batch.
/// Returns the set of every tree id seen (the roots included), loaded or not.
/// Errors: [`crate::Error::Interrupted`]; the first error `visit` returns.
pub fn unique_trees<R: Send>(
    ctx: &Ctx,
    roots: impl IntoIterator<Item = BlobId>,
    load: impl Fn(&BlobId) -> R + Sync,
    mut visit: impl FnMut(BlobId, Option<BlobId>, R) -> Result<Vec<BlobId>>,
) -> Result<HashSet<BlobId>> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut queue: Vec<(BlobId, Option<BlobId>)> = Vec::new();
    for root in roots {
        if seen.insert(root) {
            queue.push((root, None));
        }
    }
    while !queue.is_empty() {
        ctx.check()?;
        let batch: Vec<(BlobId, Option<BlobId>)> = queue.drain(queue.len().saturating_sub(BATCH)..).collect();
        let loaded: Vec<(BlobId, Option<BlobId>, R)> =
            batch.into_par_iter().map(|(id, parent)| (id, parent, load(&id))).collect();
        for (id, parent, r) in loaded {
            for sub in visit(id, parent, r)? {
                if seen.insert(sub) {
                    queue.push((sub, Some(id)));
                }
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Cancel;
    use crate::id::Id;
    use std::collections::HashMap;

    fn id(n: u32) -> BlobId {
        BlobId(Id::of_bytes(&n.to_le_bytes()))
    }

    /// A diamond (two parents share a child) and a deep chain: each tree visited once, every
    /// child reported with a parent, the chain's depth needs no call stack.
    #[test]
    fn visits_each_tree_once_at_any_depth() {
        let mut children: HashMap<BlobId, Vec<BlobId>> = HashMap::new();
        children.insert(id(0), vec![id(1), id(2)]);
        children.insert(id(1), vec![id(3)]);
        children.insert(id(2), vec![id(3)]);
        let depth = 100_000;
        children.insert(id(3), vec![id(10)]);
        for n in 10..10 + depth {
            children.insert(id(n), vec![id(n + 1)]);
        }
        let mut visits: HashMap<BlobId, usize> = HashMap::new();
        let mut parents = 0;
        let seen = unique_trees(
            &Ctx::default(),
            [id(0), id(0)],
            |t| children.get(t).cloned().unwrap_or_default(),
            |t, parent, subs| {
                *visits.entry(t).or_default() += 1;
                parents += usize::from(parent.is_some());
                Ok(subs)
            },
        )
        .unwrap();
        assert_eq!(seen.len(), 4 + depth as usize + 1);
        assert!(visits.values().all(|&n| n == 1));
        assert_eq!(parents, seen.len() - 1);
    }

    #[test]
    fn stops_when_cancelled() {
        let cancel = Cancel::new();
        cancel.cancel();
        let r = unique_trees(&Ctx::new(cancel), [id(0)], |_| (), |_, _, ()| Ok(Vec::new()));
        assert!(matches!(r, Err(crate::Error::Interrupted)));
    }
}
