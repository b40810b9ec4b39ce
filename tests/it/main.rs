//! The integration tests, one binary (as ripgrep and rustic do): each module runs the `cairn`
//! binary against real repositories, sources and servers. The format-pinning tests
//! (`tests/golden.rs`, `tests/spec_reader.rs`) stay separate binaries: they read the format
//! with as little of the library as possible.
//!
//! Run one module with `bash .ci/test --test it cli::` (a name filter).

// The harness calls libc where the standard library has no call (kill, setsid, mkfifo, mknod,
// geteuid, lgetxattr); the crate itself has no unsafe code (Cargo.toml's [lints]).
#![allow(unsafe_code)]

mod common;

mod check;
mod cli;
mod components;
mod copy;
mod copy_init;
mod copy_profile;
mod corpus;
mod databases;
mod deep;
mod drill;
#[cfg(feature = "failpoints")]
mod failpoints;
mod forget;
mod guards;
mod health;
mod inspect;
mod metrics;
mod mount;
mod profile;
mod prune;
mod restore;
mod restore_controls;
mod s3;
mod scale;
mod schedule;
mod select;
mod sources;
mod stats;
mod stdin;
mod xattrs;
