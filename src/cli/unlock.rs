//! `cairn unlock`: remove stale locks.

use clap::Args;

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

/// Remove stale locks (or all) and say how many.
pub fn run(g: &GlobalOpts, a: &UnlockArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    let removed = cairn::lock::remove_locks(&**repo.backend(), repo.master(), &g.lock_options()?, a.remove_all)?;
    if g.json {
        out(&serde_json::json!({ "message_type": "unlock", "removed": removed }).to_string());
    } else if !g.quiet {
        out(&format!("{} lock(s) removed", removed.len()));
    }
    Ok(EXIT_OK)
}
