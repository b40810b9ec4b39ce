//! The library's error type. Each variant is a failure class a caller can match on (the CLI maps
//! them to restic's exit codes); every message names the object or path it concerns and, where
//! there is one, what the user can do.

use std::path::PathBuf;

use crate::backend::{BackendError, ErrorKind};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cairn's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository at the location (no `config` file).
    #[error("repository {location} does not exist (no config file)")]
    RepositoryNotFound {
        /// The repository location as given by the user.
        location: String,
    },

    /// `init` on a location that already holds a repository.
    #[error("repository {location} already exists (it has a config file); refusing to overwrite it")]
    RepositoryExists {
        /// The repository location.
        location: String,
    },

    /// No key file could be opened with the password.
    #[error("wrong password or no key file matches it ({tried} key file(s) tried); nothing was changed")]
    WrongPassword {
        /// How many key files were tried.
        tried: usize,
    },

    /// No key file of the source repository (the one copied from, or whose ids a new
    /// repository shares) could be opened with the password given for it: as
    /// [`Error::WrongPassword`] (the same [`Kind`]), naming that repository.
    #[error(
        "wrong password for the source repository {location}, or no key file there matches it ({tried} key file(s) tried); nothing was changed"
    )]
    WrongSourcePassword {
        /// The source repository's location.
        location: String,
        /// How many key files were tried.
        tried: usize,
    },

    /// No password source was configured and no terminal to prompt on.
    #[error("{0}")]
    NoPassword(String),

    /// A storage operation failed: the storage could not be reached or kept failing
    /// ([`ErrorKind::Transient`] after the retries), refused ([`ErrorKind::Permanent`]), or had
    /// no such file. Never damage in the repository: reads of stored data turn missing or
    /// short files into [`Error::Corrupt`] ([`Error::stored_read`]).
    #[error(transparent)]
    Backend(#[from] BackendError),

    /// Stored data failed verification: wrong hash, failed authentication, undecodable.
    /// `object` names it (`pack 1a2b3c4d`, `index 5e6f...`, `blob ... in pack ...`).
    #[error("{object} is damaged: {detail}")]
    Corrupt {
        /// What was being read.
        object: String,
        /// What check failed.
        detail: String,
    },

    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A stream to back up failed at its source: its command could not be started or failed,
    /// or it was empty. No snapshot was written.
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamFailure),

    /// No snapshot matches the given id prefix or filter.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),

    /// An id prefix matches more than one snapshot.
    #[error("snapshot id prefix {prefix:?} is ambiguous: it matches {count} snapshots; give more characters")]
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// How many snapshots it matched.
        count: usize,
    },

    /// The request is malformed or contradicts itself (a bad pattern, an option value out of
    /// range, two settings that exclude each other). The text names the setting by what it
    /// means, not by a command-line flag: the CLI knows its flags, the library does not.
    #[error("{0}")]
    Usage(String),

    /// A well-formed request the library declines because carrying it out would be unsafe or
    /// would lose data (prune with too much unreferenced data to decide safely, removing the key
    /// in use). The text says why and what would make it safe.
    #[error("{0}")]
    Refused(String),

    /// An invariant of cairn's own code did not hold (a bug, never bad input): the operation
    /// stops rather than store or return wrong data. The text says which invariant.
    #[error("internal error (a bug in cairn, please report it): {0}; the operation was stopped and nothing wrong was stored")]
    Internal(String),

    /// Another process holds a lock that conflicts with the one asked for, or this process
    /// lost its lock. `detail` names the holder (host, pid, user, age) and what to do.
    #[error("repository is locked: {0}")]
    Locked(String),

    /// The operation was interrupted (Ctrl-C / SIGTERM).
    #[error("interrupted")]
    Interrupted,

    /// No source of a backup could be read (each is missing, unreadable or excluded): no
    /// snapshot was written. `failed` lists each path that failed with the reason.
    #[error("no source could be read, no snapshot was written: {}", failed_sources(.failed))]
    NoSourceRead {
        /// Each source (or path below one) that could not be read, with the reason.
        failed: Vec<(PathBuf, String)>,
    },
}

/// The failed sources of [`Error::NoSourceRead`], one `path: reason` after another.
fn failed_sources(failed: &[(PathBuf, String)]) -> String {
    if failed.is_empty() {
        return "every source matched an exclude pattern".into();
    }
    failed.iter().map(|(p, why)| format!("{}: {why}", p.display())).collect::<Vec<_>>().join("; ")
}

/// The class of an [`Error`], for a caller that acts on failures rather than prints them (the
/// CLI maps each to an exit code; a scheduler retries [`Kind::Transient`] only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Malformed or contradictory request ([`Error::Usage`], [`Error::AmbiguousSnapshot`]), or no
    /// password given ([`Error::NoPassword`]).
    Usage,
    /// Declined as unsafe ([`Error::Refused`], [`Error::RepositoryExists`]).
    Refused,
    /// No repository at the location.
    NoRepository,
    /// No such snapshot, or a storage file missing where no damage is implied.
    NotFound,
    /// No key file opens with the password.
    WrongPassword,
    /// Another process holds a conflicting lock, or this process lost its own.
    Locked,
    /// Stored data failed verification.
    Corrupt,
    /// The storage could not be reached or kept failing: retrying later may succeed.
    Transient,
    /// The storage refused the request (credentials, permissions, no such bucket).
    Permanent,
    /// A local file could not be read or written.
    Io,
    /// A source of a backup failed (its command, an empty stream, no readable path).
    Source,
    /// Cancelled ([`crate::context::Cancel`]).
    Interrupted,
    /// A bug in cairn: an invariant did not hold.
    Internal,
}

impl Error {
    /// The class of this error (see [`Kind`]).
    pub fn kind(&self) -> Kind {
        match self {
            Error::RepositoryNotFound { .. } => Kind::NoRepository,
            Error::SnapshotNotFound(_) => Kind::NotFound,
            Error::RepositoryExists { .. } | Error::Refused(_) => Kind::Refused,
            Error::WrongPassword { .. } | Error::WrongSourcePassword { .. } => Kind::WrongPassword,
            Error::Backend(b) => match b.kind {
                ErrorKind::Transient => Kind::Transient,
                ErrorKind::Permanent => Kind::Permanent,
                ErrorKind::Corrupt => Kind::Corrupt,
                ErrorKind::NotFound => Kind::NotFound,
            },
            Error::Corrupt { .. } => Kind::Corrupt,
            Error::Io { .. } => Kind::Io,
            Error::Stream(_) | Error::NoSourceRead { .. } => Kind::Source,
            Error::AmbiguousSnapshot { .. } | Error::Usage(_) | Error::NoPassword(_) => Kind::Usage,
            Error::Internal(_) => Kind::Internal,
            Error::Locked(_) => Kind::Locked,
            Error::Interrupted => Kind::Interrupted,
        }
    }

    /// Shorthand for [`Error::Usage`].
    pub fn usage(text: impl Into<String>) -> Self {
        Error::Usage(text.into())
    }

    /// Shorthand for [`Error::Refused`].
    pub fn refused(text: impl Into<String>) -> Self {
        Error::Refused(text.into())
    }

    /// Shorthand for [`Error::Internal`].
    pub fn internal(text: impl Into<String>) -> Self {
        Error::Internal(text.into())
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt { object: object.into(), detail: detail.into() }
    }

    /// A failed backend read of stored data named `object` (`data blob 1a2b3c4d in pack ...`):
    /// a missing file or one shorter than the index says is damage in the repository
    /// ([`Error::Corrupt`]); a storage failure (transient or permanent) stays
    /// [`Error::Backend`], its context naming `object`, so that it is never reported as damage.
    pub fn stored_read(object: impl Into<String>, e: BackendError) -> Self {
        let object = object.into();
        match e.kind {
            ErrorKind::NotFound => Error::corrupt(object, format!("its file is missing from the storage ({e})")),
            ErrorKind::Corrupt => Error::corrupt(object, e.to_string()),
            ErrorKind::Transient | ErrorKind::Permanent => {
                Error::Backend(BackendError { context: format!("{object}: {}", e.context), ..e })
            }
        }
    }

    /// The failure class when this is a storage failure ([`Error::Backend`]).
    pub fn backend_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Backend(e) => Some(e.kind),
            _ => None,
        }
    }

    /// True for a storage that could not be reached, kept failing or refused (transient or
    /// permanent [`Error::Backend`]): the operation could not look at the data, so nothing
    /// can be concluded about it.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self.backend_kind(), Some(ErrorKind::Transient | ErrorKind::Permanent))
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
