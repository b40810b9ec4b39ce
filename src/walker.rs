//! Deprecated: the old name of the snapshot-tree helpers, now in [`crate::tree`]
//! ([`crate::tree::path`] for paths and [`crate::tree::resolve`], [`crate::tree::stream`] for the
//! tree streamer and [`PARALLEL_DEPTH`], [`crate::tree::node`] for how nodes are shown). Kept as
//! a thin alias while other modules move their imports; it will be removed. New code imports
//! from [`crate::tree`].

pub use crate::tree::node::{kind_name, mode_string, st_mode};
pub use crate::tree::path::{join_path, resolve, split_path, Located};
pub use crate::tree::stream::{walk, TreeStream, Visit, PARALLEL_DEPTH};
