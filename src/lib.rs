//! cairn: a content-addressed, deduplicating, encrypted backup engine.
//!
//! The library holds every concept in its own module; the `cairn` binary is a thin CLI on top.
//! The on-disk format is specified in `repo-format.md`.
//!
//! - [`context`]: what every operation is given: a cancellation token and a progress sink;
//! - [`id`]: typed 32-byte ids; [`format`](mod@format): serialization and file prefixes;
//! - [`crypto`]: master key, key files (Argon2id), per-file AES-256-GCM keys;
//! - [`chunker`]: keyed FastCDC, no I/O; [`blob`], [`pack`], [`index`], [`tree`], [`snapshot`];
//! - [`backend`]: the storage trait; local disk (with reads and writes past the page cache), S3, memory, wrappers;
//! - [`repository`]: opening and reading a repository;
//! - [`archiver`]: backup; [`stream`]: a command's output as a stream to back up, empty streams refused; [`restorer`]: restore;
//! - [`lock`]: repository locks; [`process`]: a child in its own process group, stopped as systemd would;
//! - [`metrics`]: Prometheus's text format, and the merge that lets commands share one file;
//! - [`ops`]: operations on a whole repository: `forget` (restic's keep policies), `prune`
//!   (deleting what no snapshot references), `check` (consistency and data integrity);
//! - [`tree`]: trees and nodes, snapshot paths, the one tree streamer, the blob fetcher with read-ahead;
//!   [`find`], [`diff`], [`dump`]: looking inside snapshots without restoring;
//! - [`fuse`]: `mount`, a read-only FUSE view of the snapshots.

#![warn(missing_docs)]

pub mod archiver;
pub mod backend;
pub mod blob;
pub mod chunker;
pub mod context;
pub mod crypto;
pub mod diff;
pub mod dump;
pub mod error;
pub mod find;
pub mod format;
pub mod fuse;
pub mod id;
pub mod index;
pub mod lock;
pub mod metrics;
pub mod ops;
pub mod pack;
pub mod patterns;
pub mod process;
pub mod repository;
pub mod restorer;
pub mod snapshot;
pub mod stream;
pub mod tree;
pub mod util;
pub mod xattrs;

pub use context::{Cancel, Ctx};
pub use error::{Error, Result};
pub use repository::Repository;
