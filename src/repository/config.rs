//! The repository's settings: [`Config`] (stored encrypted in `config`, written once by `init`)
//! and [`InitOptions`] (the choices `init` makes).

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::crypto::keyfile::KdfParams;
use crate::error::{Error, Result};
use crate::format;
use crate::id::Id;

/// Repository settings, stored encrypted in `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version of the repository (1).
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// Chunk size parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for new blobs (0 = no compression).
    pub compression_level: i32,
}

impl Config {
    /// A new repository's config: a random id and the choices of `opts` (unchecked: see
    /// [`InitOptions::validate`]).
    pub(super) fn new(opts: &InitOptions) -> Config {
        Config {
            version: format::FORMAT_VERSION as u32,
            id: Id(crate::crypto::random_salt()),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression_level: opts.compression_level,
        }
    }

    /// Check a config read from the storage: a format version this build reads, chunker
    /// parameters in range. Errors: [`Error::Corrupt`] naming `config`.
    pub(super) fn check(&self) -> Result<()> {
        if self.version != format::FORMAT_VERSION as u32 {
            return Err(Error::corrupt("config", format!("repository version {} is not supported", self.version)));
        }
        self.chunker.validate().map_err(|e| Error::corrupt("config", e.to_string()))
    }
}

/// Default target pack size: 16 MiB.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

/// Choices made once, at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Key derivation parameters for the first key file.
    pub kdf: KdfParams,
    /// Chunk size parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes (1 MiB to 1 GiB).
    pub pack_size: u32,
    /// zstd level (0 to 22).
    pub compression_level: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

impl InitOptions {
    /// Check the choices: chunker parameters, a pack size of 1 MiB to 1 GiB, a zstd level of 0
    /// to 22. Errors: the chunker's; [`Error::Usage`] for the others.
    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        if !(1 << 20..=1 << 30).contains(&self.pack_size) || !(0..=22).contains(&self.compression_level) {
            return Err(Error::usage("pack size must be 1 MiB to 1 GiB and compression level 0 to 22"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_options_are_checked() {
        assert!(InitOptions::default().validate().is_ok());
        let small = InitOptions { pack_size: 1000, ..InitOptions::default() };
        assert!(matches!(small.validate(), Err(Error::Usage(_))));
        let level = InitOptions { compression_level: 23, ..InitOptions::default() };
        assert!(matches!(level.validate(), Err(Error::Usage(_))));
    }

    #[test]
    fn a_new_config_passes_its_own_check() {
        let c = Config::new(&InitOptions::default());
        assert!(c.check().is_ok());
        assert_ne!(c.id, Config::new(&InitOptions::default()).id, "repository ids are random");
        let future = Config { version: 2, ..c };
        assert!(matches!(future.check(), Err(Error::Corrupt { .. })));
    }
}
