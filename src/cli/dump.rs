//! `cairn dump`: write a file of a snapshot to stdout, or a directory as a tar or zip archive
//! (restic's `dump`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use cairn::dump::{self, ArchiveFormat, DumpReport};
use cairn::walker::{self, Located};
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
    let repo = g.open()?;
    let _lock = g.lock(&repo, cairn::lock::LockKind::Shared, "dump")?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let index = repo.load_index()?;
    let loc = walker::resolve(&repo, &index, &snap.tree, &a.path)
        .map_err(|e| a.filter.explain_missing_path(e, &a.snapshot, &id, &snap))?;
    let format = match (a.archive, &loc) {
        (Some(Archive::Tar), _) => Some(ArchiveFormat::Tar),
        (Some(Archive::Zip), _) => Some(ArchiveFormat::Zip),
        (None, Located::Entry { node, .. }) if node.kind != cairn::tree::NodeKind::Dir => None,
        (None, _) => Some(ArchiveFormat::Tar),
    };
    let (out, out_name): (File, PathBuf) = match &a.target {
        Some(t) => (File::create(t).map_err(|e| Error::io(t, e))?, t.clone()),
        None => (stdout_file()?, PathBuf::from("standard output")),
    };
    // Remote repositories are latency-bound: fetch as many blobs at once as connections.
    let threads = if cairn::backend::is_remote(&g.repo) { g.connections()?.min(dump::READAHEAD) } else { 2 };
    let result = dump::with_fetcher(&repo, &index, threads, |fetcher| -> Result<DumpReport, Error> {
        match format {
            None => {
                let node = loc.node().ok_or_else(|| Error::InvalidInput("/ is a directory".into()))?;
                let mut w = BufWriter::with_capacity(256 << 10, out);
                dump::write_file(fetcher, &index, node, &loc.path(), &mut w, &out_name)?;
                finish(w, &out_name)?;
                Ok(DumpReport { entries: 1, skipped: Vec::new() })
            }
            Some(ArchiveFormat::Tar) => {
                let w = BufWriter::with_capacity(256 << 10, out);
                dump::write_tar(&repo, &index, fetcher, &loc, w, &out_name)
            }
            Some(ArchiveFormat::Zip) => {
                if a.target.is_some() {
                    // A file can seek: sizes go into the local headers, no data descriptors.
                    let (w, report) =
                        dump::write_zip(&repo, &index, fetcher, &loc, zip::ZipWriter::new(out), &out_name)?;
                    w.sync_all().map_err(|e| Error::io(&out_name, e))?;
                    Ok(report)
                } else {
                    let zw = zip::ZipWriter::new_stream(BufWriter::with_capacity(256 << 10, out));
                    let (w, report) = dump::write_zip(&repo, &index, fetcher, &loc, zw, &out_name)?;
                    finish(w.into_inner(), &out_name)?;
                    Ok(report)
                }
            }
        }
    });
    // A failed dump into --target leaves no partial file (a cut tar can look complete).
    if let (Err(_), Some(t)) = (&result, &a.target) {
        let _ = std::fs::remove_file(t);
    }
    result
}

fn finish(mut w: BufWriter<File>, name: &Path) -> Result<(), Error> {
    w.flush().map_err(|e| Error::io(name, e))
}
