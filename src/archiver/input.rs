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
    let recovered_packs = match permit {
        Permit::Write(lock) => repo.index_unindexed_packs(lock, &mut index)?,
        Permit::DryRun(_) => 0,
    };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::crypto::keyfile::KdfParams;
    use crate::lock::{AppendLock, ReadLock};
    use crate::repository::InitOptions;
    use crate::Error;

    fn repo(dir: &std::path::Path) -> Repository {
        let opts = InitOptions {
            kdf: KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 },
            ..InitOptions::default()
        };
        Repository::init(Arc::new(LocalBackend::new(dir.join("repo"))), b"pw", &opts).unwrap()
    }

    #[test]
    fn a_backup_a_dry_run_and_a_cancelled_one() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), vec![7u8; 100_000]).unwrap();
        std::fs::write(src.join("b"), vec![7u8; 100_000]).unwrap();
        let repo = repo(dir.path());
        let opts = BackupOptions::default();
        let progress = Progress::default();
        let ctx = Ctx::default();

        let read = ReadLock::unlocked();
        let input = Input::Paths(vec![src.clone()]);
        let dry = backup_input(&ctx, Permit::DryRun(&read), &repo, input, &opts, &progress).unwrap();
        assert!(dry.result.id.is_none());
        assert!(repo.snapshots(&Ctx::default(), &Default::default()).unwrap().is_empty(), "a dry run wrote a snapshot");

        let lock = AppendLock::acquire(&repo, "backup", &Default::default()).unwrap();
        let input = Input::Paths(vec![src.clone()]);
        let r = backup_input(&ctx, Permit::Write(&lock), &repo, input, &opts, &progress).unwrap();
        assert!(r.result.id.is_some() && r.result.errors.is_empty());
        assert_eq!(r.recovered_packs, 0);
        let s = &r.result.snapshot.summary;
        assert_eq!((s.counts.files_new, s.counts.data_blobs), (2, 1), "two equal files are one blob");

        let cancelled = Ctx::default();
        cancelled.cancel.cancel();
        std::fs::write(src.join("c"), b"new").unwrap();
        let input = Input::Paths(vec![src]);
        let e = backup_input(&cancelled, Permit::Write(&lock), &repo, input, &opts, &progress).err();
        assert!(matches!(e, Some(Error::Interrupted)), "{e:?}");
        assert_eq!(repo.snapshots(&Ctx::default(), &Default::default()).unwrap().len(), 1);
    }

    #[test]
    fn an_empty_stream_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let lock = AppendLock::acquire(&repo, "backup", &Default::default()).unwrap();
        let (opts, progress, ctx) = (BackupOptions::default(), Progress::default(), Ctx::default());
        let argv = |s: &str| vec![OsString::from("sh"), OsString::from("-c"), OsString::from(s)];
        let input = Input::Command { argv: argv("true"), name: "dump".into(), allow_empty: false };
        let e = backup_input(&ctx, Permit::Write(&lock), &repo, input, &opts, &progress).err();
        assert!(matches!(e, Some(Error::Stream(crate::stream::StreamFailure::Empty { .. }))), "{e:?}");
        let input = Input::Command { argv: argv("true"), name: "dump".into(), allow_empty: true };
        backup_input(&ctx, Permit::Write(&lock), &repo, input, &opts, &progress).unwrap();
        let input = Input::Command { argv: argv("printf x; exit 4"), name: "dump".into(), allow_empty: false };
        let e = backup_input(&ctx, Permit::Write(&lock), &repo, input, &opts, &progress).err();
        assert!(matches!(e, Some(Error::Stream(crate::stream::StreamFailure::Failed { .. }))), "{e:?}");
        assert_eq!(repo.snapshots(&Ctx::default(), &Default::default()).unwrap().len(), 1);
    }
}
