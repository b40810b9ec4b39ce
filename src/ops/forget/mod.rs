//! `forget`: remove snapshots named by id, or those a keep policy does not keep in their group
//! (restic's `forget`: grouping, rules and JSON shape). Only snapshot files are deleted; prune
//! ([`crate::ops::prune`]) removes the data no snapshot references any more.
//!
//! The policy itself (which snapshots a group keeps, and why) is [`policy`], pure and without
//! I/O; this module lists, decides and removes.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::lock::{ExclusiveLock, ReadLock};
use crate::repository::Repository;
use crate::snapshot::{self, SnapshotFilter, SnapshotInfo};

pub mod last_good;
pub mod policy;

pub use policy::{
    apply_policy, group_snapshots, Counters, Decision, GroupBy, GroupKey, KeepDuration, KeepPolicy, UNLIMITED,
};

/// What to forget.
#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    /// Snapshots to remove, as ids, unique id prefixes or `latest`; no policy applies then.
    pub ids: Vec<String>,
    /// The keep policy applied to each group when no id is given.
    pub policy: KeepPolicy,
    /// How snapshots are grouped for the policy.
    pub group_by: GroupBy,
    /// Only snapshots passing this filter are considered.
    pub filter: SnapshotFilter,
    /// Decide and report only; remove nothing.
    pub dry_run: bool,
    /// Do not keep, besides the policy, the newest snapshot of each group in which each
    /// component succeeded ([`last_good::keep_last_good`], on by default; it only concerns
    /// snapshots with components).
    pub no_keep_last_good: bool,
}

/// One group of snapshots and what became of each.
#[derive(Clone, Debug, Default)]
pub struct ForgetGroup {
    /// The values the group's snapshots share (all `None` for snapshots named by id).
    pub key: GroupKey,
    /// One decision per snapshot, newest first (by id: in the order named, all removed).
    pub decisions: Vec<Decision>,
    /// Snapshot files named by id that cannot be decoded, removed by their name.
    pub damaged: Vec<SnapshotId>,
}

impl ForgetGroup {
    /// The decisions that keep their snapshot.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The decisions that remove their snapshot.
    pub fn removed(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

/// restic's JSON shape of a group: `{host, paths, tags, keep, remove, reasons}`; `keep` and
/// `remove` hold snapshots as `snapshots --json` shows them (a damaged snapshot file as
/// `{id, short_id, damaged: true}`), `reasons` the kept ones with the rules that keep them and
/// the counts those rules had left (non-zero ones only).
impl Serialize for ForgetGroup {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum Removed {
            Snapshot(Box<SnapshotInfo>),
            Damaged { id: String, short_id: String, damaged: bool },
        }
        #[derive(serde::Serialize)]
        struct Reason<'a> {
            snapshot: SnapshotInfo,
            matches: &'a [String],
            counters: std::collections::BTreeMap<&'static str, i32>,
        }
        let info = |d: &Decision| SnapshotInfo::new(&d.id, &d.snapshot);
        let keep: Vec<SnapshotInfo> = self.kept().map(info).collect();
        let mut remove: Vec<Removed> = self.removed().map(|d| Removed::Snapshot(Box::new(info(d)))).collect();
        remove.extend(self.damaged.iter().map(|i| Removed::Damaged {
            id: i.to_hex(),
            short_id: i.short(),
            damaged: true,
        }));
        let reasons: Vec<Reason<'_>> = self
            .kept()
            .map(|d| {
                let c = d.counters;
                let counters = [
                    ("last", c.last),
                    ("hourly", c.hourly),
                    ("daily", c.daily),
                    ("weekly", c.weekly),
                    ("monthly", c.monthly),
                    ("yearly", c.yearly),
                ]
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
                Reason { snapshot: info(d), matches: &d.reasons, counters }
            })
            .collect();
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("host", self.key.host.as_deref().unwrap_or_default())?;
        m.serialize_entry("paths", &self.key.paths)?;
        m.serialize_entry("tags", &self.key.tags)?;
        m.serialize_entry("keep", &keep)?;
        m.serialize_entry("remove", &remove)?;
        m.serialize_entry("reasons", &reasons)?;
        m.end()
    }
}

/// What [`forget`] decided and did.
#[derive(Clone, Debug, Default)]
pub struct ForgetReport {
    /// One group per [`GroupKey`] (one group for snapshots named by id), in key order.
    pub groups: Vec<ForgetGroup>,
    /// Why each damaged snapshot file named by id could not be read (`object: detail`).
    pub damaged: Vec<(SnapshotId, String)>,
    /// True when nothing was removed because it was a dry run.
    pub dry_run: bool,
}

impl ForgetReport {
    /// Every snapshot removed (or to remove, in a dry run): by group, in decision order, then
    /// the damaged ones.
    pub fn removed(&self) -> Vec<SnapshotId> {
        let mut out: Vec<SnapshotId> = self.groups.iter().flat_map(|g| g.removed().map(|d| d.id)).collect();
        out.extend(self.groups.iter().flat_map(|g| g.damaged.iter().copied()));
        out
    }
}

impl Serialize for ForgetReport {
    /// The groups, as a JSON array (restic's `forget --json`).
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        self.groups.serialize(ser)
    }
}

/// Decide what to forget and report it, removing nothing (a dry run; `opts.dry_run` is
/// ignored). Errors: as [`forget`], without the removal errors.
pub fn plan(ctx: &Ctx, _lock: &ReadLock, repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let mut report = decide(ctx, repo, opts)?;
    report.dry_run = true;
    Ok(report)
}

/// Remove the snapshots named by `opts.ids`, or apply `opts.policy` to each group of the
/// snapshots passing `opts.filter` and remove those it does not keep, under `lock` (checked
/// before the first removal). Every id is resolved before anything is removed: an unknown or
/// ambiguous one removes nothing. A snapshot file named by id that cannot be decoded is removed
/// by its name (and listed in [`ForgetReport::damaged`]). With `opts.dry_run`, as [`plan`].
/// Errors: [`Error::Usage`] for both ids and a policy; [`Error::SnapshotNotFound`],
/// [`Error::AmbiguousSnapshot`]; [`Error::Locked`] when the lock was lost;
/// [`Error::Interrupted`] (between removals: the snapshots removed so far stay removed); the
/// first failed removal ([`Error::Backend`], its context counting and naming every failure).
///
/// Only an exclusive lock can remove snapshots: the permission to read that `--no-lock` gives
/// does not compile here.
/// ```compile_fail
/// # fn f(ctx: &cairn::Ctx, repo: &cairn::Repository, opts: &cairn::ops::forget::ForgetOptions) {
/// let lock = cairn::lock::ReadLock::unlocked();
/// let _ = cairn::ops::forget::forget(ctx, &lock, repo, opts);
/// # }
/// ```
pub fn forget(ctx: &Ctx, lock: &ExclusiveLock, repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let mut report = decide(ctx, repo, opts)?;
    if opts.dry_run {
        report.dry_run = true;
        return Ok(report);
    }
    lock.check()?;
    let doomed = report.removed();
    let mut failed: Vec<(SnapshotId, crate::backend::BackendError)> = Vec::new();
    for id in &doomed {
        ctx.check()?;
        if let Err(e) = repo.backend().remove(crate::backend::FileKind::Snapshot, &id.0) {
            failed.push((*id, e));
        }
    }
    let described: Vec<String> = failed.iter().map(|(id, e)| format!("snapshot {}: {e}", id.short())).collect();
    if let Some((_, mut first)) = failed.into_iter().next() {
        first.context = format!(
            "{} of {} snapshots could not be removed ({}); first",
            described.len(),
            doomed.len(),
            described.join("; ")
        ) + &format!(": {}", first.context);
        return Err(Error::Backend(first));
    }
    Ok(report)
}

/// List, select and decide (no removal).
fn decide(ctx: &Ctx, repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    if !opts.ids.is_empty() && !opts.policy.is_empty() {
        return Err(Error::usage("give snapshot ids or a keep policy, not both"));
    }
    opts.policy.validate()?;
    ctx.check()?;
    let mut report = ForgetReport::default();
    if !opts.ids.is_empty() {
        let sel = snapshot::select(ctx, repo, &opts.ids, &opts.filter)?;
        let mut group = ForgetGroup::default();
        for (id, s) in sel.found {
            group.decisions.push(Decision {
                id,
                snapshot: s,
                keep: false,
                reasons: Vec::new(),
                counters: Counters::default(),
            });
        }
        for (id, e) in sel.damaged {
            let why = match e {
                Error::Corrupt { object, detail } => format!("{object}: {detail}"),
                e => e.to_string(),
            };
            group.damaged.push(id);
            report.damaged.push((id, why));
        }
        report.groups.push(group);
        return Ok(report);
    }
    if opts.policy.is_empty() {
        return Ok(report);
    }
    let snaps = repo.snapshots(ctx, &opts.filter)?;
    let now = chrono::Utc::now();
    for (key, group) in group_snapshots(snaps, opts.group_by) {
        ctx.check()?;
        let mut decisions = apply_policy(&group, &opts.policy, now);
        if !opts.no_keep_last_good {
            last_good::keep_last_good(&mut decisions);
        }
        report.groups.push(ForgetGroup { key, decisions, damaged: Vec::new() });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Snapshot, Summary};
    use crate::tree::Timestamp;

    fn decision(n: u8, keep: bool) -> Decision {
        let s = Snapshot {
            time: Timestamp { secs: 1_700_000_000 + i64::from(n), nanos: 0 },
            tz_offset: 0,
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            paths: vec!["/etc".into()],
            tags: vec![],
            excludes: vec![],
            tree: Default::default(),
            parent: None,
            program_version: "cairn test".into(),
            summary: Summary::default(),
            components: Vec::new(),
            original: None,
        };
        let id = SnapshotId(crate::id::Id::of_bytes(&[n]));
        let reasons = if keep { vec!["last snapshot".to_string()] } else { Vec::new() };
        Decision { id, snapshot: s, keep, reasons, counters: Counters { last: 2, ..Default::default() } }
    }

    /// The JSON shape restic prints: keys, damaged entries, non-zero counters only.
    #[test]
    fn group_json_shape() {
        let damaged = SnapshotId(crate::id::Id::of_bytes(b"x"));
        let g = ForgetGroup {
            key: GroupKey { host: Some("h".into()), paths: Some(vec!["/etc".into()]), tags: None },
            decisions: vec![decision(1, true), decision(2, false)],
            damaged: vec![damaged],
        };
        let report = ForgetReport { groups: vec![g], damaged: Vec::new(), dry_run: true };
        let v = serde_json::to_value(&report).unwrap();
        let g = &v[0];
        assert_eq!(g["host"], "h");
        assert_eq!(g["tags"], serde_json::Value::Null);
        assert_eq!(g["keep"].as_array().unwrap().len(), 1);
        assert_eq!(g["remove"][1]["damaged"], true);
        assert_eq!(g["remove"][1]["id"], damaged.to_hex());
        assert_eq!(g["reasons"][0]["matches"][0], "last snapshot");
        assert_eq!(g["reasons"][0]["counters"], serde_json::json!({ "last": 2 }));
        assert_eq!(report.removed().len(), 2);
    }
}
