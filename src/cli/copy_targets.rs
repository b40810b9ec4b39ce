//! The copy targets of a profile (`[copy] to = ["offsite"]`): each another profile, whose
//! repository, password, backend options and environment file describe the repository that
//! `cairn -P NAME copy` copies into.

use cairn::Error;

use super::profile::Applied;
use super::GlobalOpts;

/// One copy target: the target profile's name and the global options that open its
/// repository.
pub struct Target {
    /// The target profile's name.
    pub name: String,
    /// Its repository, password, options and limits.
    pub globals: GlobalOpts,
}

/// The targets of profile `applied` (its `[copy] to`), only those named in `only` when it is
/// not empty, in the profile's order. Errors: [`Error::Usage`] for a profile without `[copy]
/// to`, a name in `only` that is not one of its targets, a target profile that cannot be read.
pub fn targets(applied: &Applied, only: &[String], g: &GlobalOpts) -> Result<Vec<Target>, Error> {
    // Skeleton: filled in by the profile work.
    let _ = (applied, only, g);
    Err(Error::usage("copy targets in profiles are not implemented yet"))
}

/// The snapshots a profile's copy selects by default (its `[copy]` filters).
pub fn source_filter(applied: &Applied) -> cairn::snapshot::SnapshotFilter {
    // Skeleton: filled in by the profile work.
    let _ = applied;
    cairn::snapshot::SnapshotFilter::default()
}
