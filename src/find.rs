//! Finding paths in snapshots by glob (restic's `find`): which snapshots hold a file, and its
//! size and modification time in each.
//!
//! Pattern semantics (as restic's `find`): a pattern without `/` matches an entry's name at any
//! depth (`maildb.dump`, `*.conf`); a pattern starting with `/` matches the whole snapshot path
//! (`/etc/postfix/*.cf`); any other pattern with `/` matches the end of the path at any depth
//! (`postfix/*.cf`). `*` stays within one component, `**` crosses components. Globs are
//! compiled by [`crate::patterns`].
//!
//! Snapshots of the same sources share most of their trees: a [`Finder`] remembers what it
//! found below each tree it searched (keyed by tree id, and by the tree's path when a pattern
//! depends on it), so a tree shared by many snapshots is read and searched once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::lock::ReadLock;
use crate::patterns::{Patterns, Rule};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::report::MatchInfo;
use serde::Serialize;

use crate::context::{Cancel, Ctx};
use crate::tree::stream::subtree;
use crate::tree::{Node, NodeKind, Step, Timestamp, TreeStream};

/// Compiled find patterns: the crate's glob compiler ([`Patterns`]) under find's rule
/// ([`Rule::Find`], see the module documentation).
pub struct Matcher(Patterns);

impl Matcher {
    /// Compile `patterns` (see the module documentation); `ignore_case` makes them
    /// case-insensitive. Errors: [`Error::Usage`] naming a malformed or empty pattern.
    pub fn new(patterns: &[String], ignore_case: bool) -> Result<Self> {
        Patterns::compile(patterns, Rule::Find, ignore_case).map(Matcher)
    }

    /// True when an entry named `name` at snapshot path `path` matches a pattern.
    pub fn is_match(&self, name: &[u8], path: &Path) -> bool {
        self.0.is_match_entry(name, path)
    }

    /// True when some pattern depends on where an entry is, not only on its name.
    pub fn uses_paths(&self) -> bool {
        self.0.uses_paths()
    }
}

/// One entry found.
#[derive(Clone, Debug)]
pub struct Match {
    /// Absolute snapshot path.
    pub path: PathBuf,
    /// The entry.
    pub node: Node,
}

/// What one tree holds that matches, in walk order (an entry, then what its directory holds).
struct Found {
    items: Vec<FoundItem>,
}

struct FoundItem {
    name: Vec<u8>,
    hit: Option<Node>,
    below: Option<Arc<Found>>,
}

/// Searches snapshots' trees, remembering the result for every tree it searched.
pub struct Finder<'r> {
    repo: &'r Repository,
    index: &'r Index,
    matcher: Matcher,
    /// Only entries modified at or after this time (restic's `--oldest`).
    oldest: Option<Timestamp>,
    /// Only entries modified at or before this time (restic's `--newest`).
    newest: Option<Timestamp>,
    memo: HashMap<(BlobId, Option<PathBuf>), Option<Arc<Found>>>,
    trees_read: u64,
    cancel: Cancel,
}

impl<'r> Finder<'r> {
    /// A finder for `matcher`, keeping only entries whose mtime lies in `[oldest, newest]`
    /// (either bound optional); searches stop with [`Error::Interrupted`] once `cancel` is
    /// cancelled.
    pub fn new(
        repo: &'r Repository,
        index: &'r Index,
        cancel: &Cancel,
        matcher: Matcher,
        oldest: Option<Timestamp>,
        newest: Option<Timestamp>,
    ) -> Self {
        Finder { repo, index, matcher, oldest, newest, memo: HashMap::new(), trees_read: 0, cancel: cancel.clone() }
    }

    /// Every matching entry below the root tree `root`, in walk order (depth-first, by name).
    /// Errors: [`Error::Interrupted`]; a tree that cannot be read.
    pub fn find(&mut self, root: &BlobId) -> Result<Vec<Match>> {
        let found = self.search(root, Path::new("/"))?;
        let mut out = Vec::new();
        if let Some(f) = found {
            flatten(&f, Path::new("/"), &mut out);
        }
        Ok(out)
    }

    /// Trees read and searched so far (a tree shared by several snapshots counts once).
    pub fn trees_read(&self) -> u64 {
        self.trees_read
    }

    fn in_time(&self, node: &Node) -> bool {
        self.oldest.is_none_or(|t| node.mtime >= t) && self.newest.is_none_or(|t| node.mtime <= t)
    }

    /// The memo key of tree `tree` at snapshot path `path`.
    fn key(&self, tree: &BlobId, path: &Path) -> (BlobId, Option<PathBuf>) {
        (*tree, self.matcher.uses_paths().then(|| path.to_path_buf()))
    }

    /// The matches below tree `root` at snapshot path `root_path`, each tree searched once per
    /// memo key. One [`TreeStream`] (any depth): a directory searched before is not descended
    /// into; the end of each directory searched ([`Step::Leave`]) records what it holds.
    fn search(&mut self, root: &BlobId, root_path: &Path) -> Result<Option<Arc<Found>>> {
        let key = self.key(root, root_path);
        if let Some(f) = self.memo.get(&key) {
            return Ok(f.clone());
        }
        let mut stream = TreeStream::new(self.repo, self.index, &self.cancel, root, root_path)?;
        // One frame per open tree, the stream's levels: what it holds so far.
        let mut frames = vec![SearchFrame { key, entry: None, items: Vec::new() }];
        let result = loop {
            let step = match stream.next_step() {
                Ok(Some(step)) => step,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if let Err(e) = self.step(&mut stream, &mut frames, step) {
                break Err(e);
            }
        };
        self.trees_read += stream.trees_read();
        result?;
        let root = frames.pop().ok_or_else(|| Error::internal("find: the root frame is gone"))?;
        let found = (!root.items.is_empty()).then(|| Arc::new(Found { items: root.items }));
        self.memo.insert(root.key, found.clone());
        Ok(found)
    }

    /// One step of [`Finder::search`].
    fn step(&mut self, stream: &mut TreeStream<'_>, frames: &mut Vec<SearchFrame>, step: Step) -> Result<()> {
        let top = frames.last_mut().ok_or_else(|| Error::internal("find: no open tree"))?;
        match step {
            Step::Entry(path, node) => {
                let hit = self.matcher.is_match(&node.name, &path) && self.in_time(&node);
                if node.kind != NodeKind::Dir {
                    if hit {
                        top.items.push(FoundItem { name: node.name.clone(), hit: Some(node), below: None });
                    }
                    return Ok(());
                }
                let key = self.key(&subtree(&path, &node)?, &path);
                match self.memo.get(&key) {
                    Some(below) => {
                        if hit || below.is_some() {
                            let below = below.clone();
                            top.items.push(FoundItem { name: node.name.clone(), hit: hit.then_some(node), below });
                        }
                    }
                    None => {
                        stream.descend(&path, &node)?;
                        let entry = Some((node.name.clone(), hit.then_some(node)));
                        frames.push(SearchFrame { key, entry, items: Vec::new() });
                    }
                }
            }
            Step::Leave(_) => {
                let done = frames.pop().ok_or_else(|| Error::internal("find: no open tree"))?;
                let found = (!done.items.is_empty()).then(|| Arc::new(Found { items: done.items }));
                self.memo.insert(done.key, found.clone());
                let (Some((name, hit)), Some(parent)) = (done.entry, frames.last_mut()) else {
                    return Err(Error::internal("find: a tree left without its directory"));
                };
                if hit.is_some() || found.is_some() {
                    parent.items.push(FoundItem { name, hit, below: found });
                }
            }
        }
        Ok(())
    }
}

/// A tree being searched by [`Finder::search`].
struct SearchFrame {
    key: (BlobId, Option<PathBuf>),
    /// The directory entry whose tree this is: its name, and its node if it matched itself
    /// (`None` for the tree the search started at).
    entry: Option<(Vec<u8>, Option<Node>)>,
    /// Entries found so far.
    items: Vec<FoundItem>,
}

/// Matches in walk order: each item's own match, then those below it (a stack, no recursion).
fn flatten(f: &Arc<Found>, prefix: &Path, out: &mut Vec<Match>) {
    let mut stack: Vec<(Arc<Found>, usize, PathBuf)> = vec![(f.clone(), 0, prefix.to_path_buf())];
    while let Some((found, i, prefix)) = stack.last_mut() {
        let Some(item) = found.items.get(*i) else {
            stack.pop();
            continue;
        };
        *i += 1;
        let path = prefix.join(OsStr::from_bytes(&item.name));
        if let Some(node) = &item.hit {
            out.push(Match { path: path.clone(), node: node.clone() });
        }
        if let Some(b) = item.below.clone() {
            stack.push((b, 0, path));
        }
    }
}

/// A bound of restic's `find --newest/--oldest`: a count of snapshots, or an mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Only this many of the newest (or oldest) selected snapshots are searched.
    Count(usize),
    /// Only entries modified at or before (newest) or at or after (oldest) this time match.
    Time(Timestamp),
}

/// Which snapshots [`find`] searches, and the mtime bounds of what it keeps.
#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    /// Snapshots to search (`latest`, ids or prefixes; repeats searched once); empty: every
    /// snapshot passing `filter`.
    pub snapshots: Vec<String>,
    /// The snapshot filter (host, tags, paths).
    pub filter: SnapshotFilter,
    /// Newest bound (see [`Bound`]).
    pub newest: Option<Bound>,
    /// Oldest bound (see [`Bound`]).
    pub oldest: Option<Bound>,
}

/// What [`find`] searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FindSummary {
    /// Snapshots searched.
    pub snapshots: usize,
    /// Distinct trees read (a tree shared by several snapshots counts once).
    pub trees_read: u64,
}

/// The matches in one snapshot as `find --json` prints them (keys in name order through
/// [`crate::tree::report::sorted_json`]).
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotMatches {
    /// How many matches.
    pub hits: usize,
    /// The matches, in walk order.
    pub matches: Vec<MatchInfo>,
    /// The snapshot's id (64 hex characters).
    pub snapshot: String,
}

impl SnapshotMatches {
    /// The report of `matches` found in snapshot `id`.
    pub fn new(id: &SnapshotId, matches: &[Match]) -> Self {
        SnapshotMatches {
            hits: matches.len(),
            matches: matches.iter().map(|m| MatchInfo::new(&m.path, &m.node)).collect(),
            snapshot: id.to_hex(),
        }
    }
}

/// What [`find`] calls for each snapshot with matches: its id, the snapshot, the matches.
pub type OnSnapshot<'a> = dyn FnMut(&SnapshotId, &Snapshot, &[Match]) -> Result<()> + 'a;

/// Search the snapshots `opts` selects (oldest first) for entries `matcher` matches, under
/// `lock`, calling `on_snapshot(id, snapshot, matches)` for each snapshot with matches.
/// Errors: those of [`Repository::snapshots`] and [`Repository::find_snapshot`];
/// [`Error::Interrupted`] once `ctx` is cancelled; a tree that cannot be read; the first error
/// of `on_snapshot`.
pub fn find(
    ctx: &Ctx,
    lock: &ReadLock,
    repo: &Repository,
    matcher: Matcher,
    opts: &FindOptions,
    on_snapshot: &mut OnSnapshot<'_>,
) -> Result<FindSummary> {
    lock.check()?;
    // Oldest first; each snapshot once however often it is named.
    let mut snaps = crate::snapshot::select(ctx, repo, &opts.snapshots, &opts.filter)?.readable_by_time()?;
    if let Some(Bound::Count(n)) = opts.newest {
        let drop = snaps.len().saturating_sub(n);
        snaps.drain(..drop);
    }
    if let Some(Bound::Count(n)) = opts.oldest {
        snaps.truncate(n);
    }
    let time = |b: &Option<Bound>| match b {
        Some(Bound::Time(t)) => Some(*t),
        _ => None,
    };
    let index = repo.load_index()?;
    let mut finder = Finder::new(repo, &index, &ctx.cancel, matcher, time(&opts.oldest), time(&opts.newest));
    for (id, snap) in &snaps {
        let matches = finder.find(&snap.tree)?;
        if !matches.is_empty() {
            on_snapshot(id, snap, &matches)?;
        }
    }
    Ok(FindSummary { snapshots: snaps.len(), trees_read: finder.trees_read() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_semantics() {
        let m = Matcher::new(&["*.conf".into(), "/etc/postfix/main.cf".into(), "cur/*.tmp".into()], false).unwrap();
        assert!(m.is_match(b"a.conf", Path::new("/etc/a.conf")));
        assert!(m.is_match(b"a.conf", Path::new("/x/y/a.conf")));
        assert!(!m.is_match(b"a.conf.bak", Path::new("/etc/a.conf.bak")));
        assert!(m.is_match(b"main.cf", Path::new("/etc/postfix/main.cf")));
        assert!(!m.is_match(b"main.cf", Path::new("/srv/etc/postfix/main.cf")));
        assert!(m.is_match(b"1.tmp", Path::new("/var/vmail/a/cur/1.tmp")));
        assert!(!m.is_match(b"1.tmp", Path::new("/var/vmail/a/new/1.tmp")));
        assert!(m.uses_paths());
        let i = Matcher::new(&["MAILDB.*".into()], true).unwrap();
        assert!(i.is_match(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(!i.uses_paths());
        assert!(!Matcher::new(&["MAILDB.*".into()], false)
            .unwrap()
            .is_match(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(Matcher::new(&["[".into()], false).is_err());
    }
}
