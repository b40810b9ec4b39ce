//! `cairn copy`: copy snapshots from another repository (restic's `copy`).
//! Skeleton: filled in by the copy work.

use clap::Args;

use cairn::Error;

use super::from_repo::FromRepoArgs;
use super::profile::Applied;
use super::{FilterArgs, GlobalOpts};

/// Arguments of `copy`.
#[derive(Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// With a profile: copy only into this `[copy] to` target (repeatable)
    #[arg(long = "to", value_name = "PROFILE")]
    pub to: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Snapshots to copy (ids, `latest`); all the filters select when none is given
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}

/// Run `copy`.
pub fn run(g: &GlobalOpts, a: &CopyArgs, applied: Option<&Applied>) -> Result<u8, Error> {
    if let (Some(p), false) = (applied, a.from.is_given()) {
        let _targets = super::copy_targets::targets(p, &a.to, g)?;
    }
    let _source = a.from.globals(g)?;
    Err(Error::usage("copy is not implemented yet"))
}
