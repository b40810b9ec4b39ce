//! `cairn dump`: write a file of a snapshot to stdout, or a directory as a tar or zip archive
//! (restic's `dump`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use cairn::dump::{self, ArchiveFormat, DumpOptions, DumpReport, Output};
use cairn::tree::{self, NodeKind};
use cairn::Error;

use super::{FilterArgs, GlobalOpts, EXIT_OK};

/// `--archive` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Archive {
    Tar,
    Zip,
}

/// Arguments of `dump`.
#[derive(Args)]
#[command(after_help = "A file is written as is (`cairn dump latest /maildb.dump | pg_restore -d maildb`); \
a directory (or `/`) as a tar archive, or zip with --archive zip. Archive entries are named by \
their snapshot path without the leading `/` (etc/postfix/main.cf). A --stdin backup is stored \
at /NAME, NAME being its --stdin-filename (default `stdin`). A closed pipe (`| head`) ends the \
dump quietly with exit code 0.")]
pub struct DumpArgs {
    /// Snapshot: `latest`, an id, or a unique id prefix
    #[arg(value_name = "SNAPSHOT")]
    snapshot: String,
    /// Path in the snapshot (e.g. /etc/postfix, /maildb.dump, or / for everything)
    #[arg(value_name = "PATH")]
    path: String,
    /// Archive format for a directory (default tar); given for a file, the file is archived too
    #[arg(short = 'a', long, value_enum, value_name = "FORMAT")]
    archive: Option<Archive>,
    /// Write to this file instead of standard output
    #[arg(short = 't', long, value_name = "FILE")]
    target: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Standard output as a file (not Rust's line-buffered `Stdout`), for binary streams.
fn stdout_file() -> Result<File, Error> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().map_err(|e| Error::io("standard output", e))?;
    Ok(File::from(fd))
}

/// Dump; a closed pipe on stdout ends quietly with exit code 0.
pub fn run(g: &GlobalOpts, a: &DumpArgs) -> Result<u8, Error> {
    match dump(g, a) {
        Err(e) if a.target.is_none() && dump::is_broken_pipe(&e) => Ok(EXIT_OK),
        Err(e) => Err(e),
        Ok(report) => {
            for (path, kind) in &report.skipped {
                eprintln!("cairn: {}: a {kind} cannot be stored in this archive format (skipped)", path.display());
            }
            Ok(EXIT_OK)
        }
    }
}

fn dump(g: &GlobalOpts, a: &DumpArgs) -> Result<DumpReport, Error> {
    let repo = Arc::new(g.open()?);
    let lock = g.read_lock(&repo, "dump")?;
    let (id, snap) = repo.find_snapshot(&g.ctx(), &a.snapshot, &a.filter.filter())?;
    let index = Arc::new(repo.load_index()?);
    let loc = tree::resolve(&repo, &index, &snap.tree, &a.path)
        .map_err(|e| a.filter.explain_missing_path(e, &a.snapshot, &id, &snap))?;
    if let (None, tree::Located::Entry { path, node }) = (a.archive, &loc) {
        if !matches!(node.kind, NodeKind::File | NodeKind::Dir) {
            return Err(Error::usage(format!(
                "{} is a {}, not a file: give --archive tar or zip to dump it",
                path.display(),
                tree::kind_name(node.kind)
            )));
        }
    }
    let out = match &a.target {
        Some(t) => Output::File(t.clone()),
        None => Output::Stream(stdout_file()?, "standard output".into()),
    };
    let threads = g.reader_threads(cairn::backend::ReadWork::Fetch)?;
    let archive = a.archive.map(|f| match f {
        Archive::Tar => ArchiveFormat::Tar,
        Archive::Zip => ArchiveFormat::Zip,
    });
    dump::dump(&g.ctx(), &lock, repo, index, &loc, &DumpOptions { archive, threads }, out)
}
