//! `cairn unlock`: remove stale locks.

use clap::Args;
use serde::Serialize;

use cairn::Error;

use super::{out, GlobalOpts, EXIT_OK};

/// Arguments of `unlock`.
#[derive(Args)]
pub struct UnlockArgs {
    /// Remove every lock, including those of running processes (only when you know no
    /// cairn process uses the repository)
    #[arg(long)]
    pub remove_all: bool,
}

/// What `unlock` prints under `--json`.
#[derive(Serialize)]
struct Unlocked {
    message_type: &'static str,
    removed: Vec<String>,
}

/// Remove stale locks (or all) and say how many.
pub fn run(g: &GlobalOpts, a: &UnlockArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let removed = cairn::lock::remove_locks(&repo, &g.lock_options()?, a.remove_all)?;
    if g.json {
        let removed: Vec<String> = removed.iter().map(|id| id.to_hex()).collect();
        out(&serde_json::to_string(&Unlocked { message_type: "unlock", removed }).unwrap_or_default());
    } else if !g.quiet {
        out(&format!("{} lock(s) removed", removed.len()));
    }
    Ok(EXIT_OK)
}
