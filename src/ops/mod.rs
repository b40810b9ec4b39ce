//! Operations on a whole repository: each is an options struct and one function that takes the
//! operation's context ([`crate::Ctx`]: cancellation and progress) and the lock it needs as a
//! type ([`crate::lock::ReadLock`], [`crate::lock::ExclusiveLock`]).
//!
//! - [`copy`]: copy snapshots and the blobs they need into another repository
//!   (`copy(ctx, src, &ReadLock, dst, &AppendLock, ..)`);
//! - [`forget`]: remove snapshots by id or by a keep policy (`forget(ctx, &ExclusiveLock, ..)`);
//! - [`prune`]: delete the data no snapshot references (`prune(ctx, &ExclusiveLock, ..)`, or
//!   `plan(ctx, &ReadLock, ..)` for a dry run);
//! - [`check`]: verify the repository's structure and, on request, its data
//!   (`check(ctx, &ReadLock, ..)`);
//! - [`drill`]: a timed restore rehearsal, recorded in the repository
//!   (`drill(ctx, &AppendLock, ..)`);
//! - [`health`]: the freshness of each host's and component's newest snapshot (a pure
//!   function of the snapshot list);
//! - [`stats`]: figures about the selected snapshots' data in restic's counting modes, and the
//!   size of the repository's packs (`stats(ctx, &ReadLock, ..)`).
//!
//! Check and prune walk every tree the snapshots reach, each once, with
//! [`crate::tree::reachable`].
//!
//! The operations return report types that derive `serde::Serialize`: the CLI prints them as
//! JSON as they are.

pub mod check;
pub mod copy;
pub mod drill;
pub mod forget;
pub mod health;
pub mod prune;
pub mod stats;
