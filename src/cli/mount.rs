//! `cairn mount MOUNTPOINT`: the repository as a read-only FUSE filesystem (restic's layout:
//! `snapshots/`, `ids/`, `hosts/`, `tags/`), served until Ctrl-C, SIGTERM or an unmount.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use cairn::fuse::{CairnFs, MountOptions, MountStats};
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
    let _lock = g.read_lock(&repo, "mount")?;
    let ctx = g.ctx();
    let index = repo.load_index()?;
    let stats = Arc::new(MountStats::default());
    let fs = CairnFs::new(repo, index, a.filter.filter(), Duration::from_secs(a.refresh_interval), stats.clone())?;
    ctx.check()?;
    let session = cairn::fuse::mount(fs, &a.mountpoint, &MountOptions { allow_other: a.allow_other })?;
    if !g.quiet {
        out(&format!("Now serving the repository at {}", a.mountpoint.display()));
        out("Use another terminal or tool to browse the contents of this folder.");
        out("When finished, quit with Ctrl-C here or unmount the mountpoint.");
    }
    while !ctx.is_cancelled() && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if cairn::fuse::unmount(session, &a.mountpoint)? {
        eprintln!(
            "cairn: {} was busy: detached it lazily; programs still using it get errors from now on",
            a.mountpoint.display()
        );
    }
    if g.verbose > 0 {
        eprintln!(
            "fetched {} bytes in {} blobs",
            stats.bytes.load(Ordering::Relaxed),
            stats.blobs.load(Ordering::Relaxed)
        );
    }
    Ok(EXIT_OK)
}
