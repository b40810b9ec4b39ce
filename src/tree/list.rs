//! Listing a snapshot's entries (restic's `ls`).

use std::path::Path;

use super::{resolve, walk, Located, Node, Visit};
use crate::context::Ctx;
use crate::error::Result;
use crate::id::BlobId;
use crate::index::Index;
use crate::lock::ReadLock;
use crate::repository::Repository;

/// A listing of a snapshot, its paths resolved and ready to run: see [`Listing::new`] and
/// [`Listing::run`].
pub struct Listing<'a> {
    ctx: &'a Ctx,
    repo: &'a Repository,
    index: &'a Index,
    targets: Vec<Located>,
    recursive: bool,
}

impl<'a> Listing<'a> {
    /// A listing of the snapshot whose root tree is `root`: of `paths` in it (each resolved by
    /// [`resolve`] now, so a path not in the snapshot fails before anything is listed), or of
    /// the whole snapshot when `paths` is empty. `recursive` lists everything below each path,
    /// not only its entries (the whole snapshot is always listed recursively).
    /// Errors: those of [`resolve`] ([`crate::Error::Usage`] for a path not in the snapshot);
    /// [`crate::Error::Locked`] when `lock` was lost.
    pub fn new(
        ctx: &'a Ctx,
        lock: &ReadLock,
        repo: &'a Repository,
        index: &'a Index,
        root: &BlobId,
        paths: &[String],
        recursive: bool,
    ) -> Result<Self> {
        lock.check()?;
        let targets = if paths.is_empty() {
            vec![Located::Root { tree: *root }]
        } else {
            paths.iter().map(|p| resolve(repo, index, root, p)).collect::<Result<_>>()?
        };
        Ok(Listing { ctx, repo, index, targets, recursive: recursive || paths.is_empty() })
    }

    /// Call `visit(path, node)` for each entry listed, in order: each given path itself, then
    /// its entries (depth-first in name order). Errors: [`crate::Error::Interrupted`]; a tree
    /// that cannot be read; the first error of `visit`.
    pub fn run(&self, visit: &mut dyn FnMut(&Path, &Node) -> Result<()>) -> Result<()> {
        for t in &self.targets {
            if let Located::Entry { path, node } = t {
                visit(path, node)?;
            }
            if let Some(tree) = t.tree() {
                walk(self.repo, self.index, &self.ctx.cancel, &tree, &t.path(), &mut |p, n| {
                    visit(p, n)?;
                    Ok(if self.recursive { Visit::Descend } else { Visit::Skip })
                })?;
            }
        }
        Ok(())
    }
}
