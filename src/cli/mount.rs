//! `cairn mount MOUNTPOINT`: the repository as a read-only FUSE filesystem (restic's layout:
//! `snapshots/`, `ids/`, `hosts/`, `tags/`), served until Ctrl-C, SIGTERM or an unmount.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use cairn::fuse::MountOptions;
use cairn::Error;

use super::{out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `mount`.
#[derive(Args)]
pub struct MountArgs {
    /// Existing empty directory to mount the repository on
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
    /// Let other users access the mounted directory (needs `user_allow_other` in
    /// /etc/fuse.conf when not run as root)
    #[arg(long)]
    allow_other: bool,
    /// Seconds between checks of the snapshot list for new or removed snapshots (restic: 60)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, hide = true)]
    refresh_interval: u64,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Mount, serve until interrupted or unmounted from outside, unmount; exit 0.
/// With `-v`, print "fetched N bytes in M blobs" (stored bytes of the data blobs read from the
/// repository) on stderr when done.
pub fn run(g: &GlobalOpts, a: &MountArgs) -> Result<u8, Error> {
    // A missing mountpoint is reported before a password is asked for.
    if !a.mountpoint.is_dir() {
        return Err(Error::usage(format!(
            "mountpoint {} does not exist or is not a directory; create it first",
            a.mountpoint.display()
        )));
    }
    let repo = g.open()?;
    // Held (and refreshed) while mounted: a prune cannot delete what the mount shows.
    let lock = g.read_lock(&repo, "mount")?;
    let index = repo.load_index()?;
    let opts = MountOptions {
        allow_other: a.allow_other,
        filter: a.filter.filter(),
        refresh: Duration::from_secs(a.refresh_interval),
    };
    let report = cairn::fuse::serve(&g.ctx(), &lock, repo, index, &a.mountpoint, &opts, &mut || {
        if !g.quiet {
            out(&format!("Now serving the repository at {}", a.mountpoint.display()));
            out("Use another terminal or tool to browse the contents of this folder.");
            out("When finished, quit with Ctrl-C here or unmount the mountpoint.");
        }
    })?;
    if report.lazily_detached {
        eprintln!(
            "cairn: {} was busy: detached it lazily; programs still using it get errors from now on",
            a.mountpoint.display()
        );
    }
    if g.verbose > 0 {
        eprintln!("fetched {} bytes in {} blobs", report.fetched_bytes, report.fetched_blobs);
    }
    Ok(EXIT_OK)
}
