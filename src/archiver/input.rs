//! A backup as a command line asks for it ([`backup_input`]): the repository's index loaded,
//! the packs an interrupted backup left indexed first, the stream's producer started only
//! then, and a failed or empty stream reported as such.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

use super::read::Stdin;
use super::{backup, BackupOptions, BackupResult, Permit, Progress, Source};
use crate::context::Ctx;
use crate::error::Result;
use crate::repository::Repository;
use crate::stream::{stream_error, CommandStream, RequireData};

/// Where a backup's content comes from.
pub enum Input {
    /// Files and directory trees, by path.
    Paths(Vec<PathBuf>),
    /// This process's standard input ([`Stdin`]), stored as a file named `name` at the
    /// snapshot's root. Unless `allow_empty`, a stream that ends before its first byte is
    /// refused ([`RequireData`]).
    Stdin {
        /// The file name in the snapshot.
        name: String,
        /// Store an empty stream rather than refuse it.
        allow_empty: bool,
    },
    /// The standard output of the command `argv` (no shell, see [`CommandStream`]), stored as
    /// `name`; no snapshot is written when the command fails.
    Command {
        /// The program and its arguments.
        argv: Vec<OsString>,
        /// The file name in the snapshot.
        name: String,
        /// Store an empty stream rather than refuse it.
        allow_empty: bool,
    },
}

/// What [`backup_input`] did.
pub struct InputReport {
    /// The backup's result.
    pub result: BackupResult,
    /// Packs an interrupted backup had left unindexed, indexed before this backup (their
    /// blobs were reused).
    pub recovered_packs: usize,
}

/// Back up `input` into `repo`: load the index; unless a dry run, index the packs an
/// interrupted backup left (they are complete; the backup reuses their blobs); only then start
/// the stream's command, so a repository that cannot take the backup costs no dump; then
/// [`backup`]. Errors: those of [`backup`]; a stream whose producer failed or that was empty
/// is [`crate::Error::Stream`] (no snapshot is written), one interrupted
/// [`crate::Error::Interrupted`].
pub fn backup_input(
    ctx: &Ctx,
    permit: Permit<'_>,
    repo: &Repository,
    input: Input,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<InputReport> {
    ctx.progress.phase("loading index files");
    let mut index = repo.load_index()?;
    let recovered_packs = if permit.is_dry_run() { 0 } else { repo.index_unindexed_packs(&mut index)? };
    let (mut reader, name, allow_empty, origin): (Box<dyn Read + Send>, _, _, _) = match input {
        Input::Paths(paths) => {
            let result = backup(ctx, permit, repo, &index, Source::Paths(paths), opts, progress)?;
            return Ok(InputReport { result, recovered_packs });
        }
        Input::Stdin { name, allow_empty } => (Box::new(Stdin::open()), name, allow_empty, "standard input".into()),
        Input::Command { argv, name, allow_empty } => {
            let command = CommandStream::spawn(&argv, &ctx.cancel)?;
            let origin = format!("the output of {}", command.command());
            (Box::new(command), name, allow_empty, origin)
        }
    };
    if !allow_empty {
        reader = Box::new(RequireData::new(reader, origin));
    }
    ctx.progress.phase("backing up");
    let source = Source::Stream { name, reader: &mut *reader };
    // A failed or empty stream comes back as the error that says so.
    let result = backup(ctx, permit, repo, &index, source, opts, progress).map_err(stream_error)?;
    Ok(InputReport { result, recovered_packs })
}
