//! `cairn version`: the program's version, the repository format it writes and reads, and how
//! it was built.

use clap::Args;

use cairn::Error;

use super::{out, GlobalOpts, EXIT_OK};

#[derive(Args)]
pub struct VersionArgs {}

/// What `cairn version --json` prints.
#[derive(serde::Serialize)]
struct Version {
    /// `cairn`.
    program: &'static str,
    /// The program's version (Cargo.toml), e.g. `0.2.0`.
    version: &'static str,
    /// The repository format version this build writes and reads (byte 4 of every storage file).
    repository_format: u8,
    /// The tree blob versions this build reads (it writes the lowest that holds a directory).
    tree_versions: Vec<u8>,
    /// The snapshot versions this build reads (version 2: command components; version 3:
    /// copies, with their original).
    snapshot_versions: Vec<u8>,
    /// The cargo features this binary was built with.
    features: Vec<&'static str>,
    /// The target triple it was built for, e.g. `x86_64-unknown-linux-gnu`.
    target: &'static str,
}

/// Run `cairn version` (`--json`: one JSON object).
pub fn run(g: &GlobalOpts, _a: &VersionArgs) -> Result<u8, Error> {
    let mut features = Vec::new();
    if cfg!(feature = "failpoints") {
        features.push("failpoints");
    }
    let v = Version {
        program: "cairn",
        version: env!("CARGO_PKG_VERSION"),
        repository_format: cairn::format::FORMAT_VERSION,
        tree_versions: (1..=cairn::tree::TREE_V2_PREFIX[1]).collect(),
        snapshot_versions: (1..=cairn::snapshot::SNAPSHOT_V3_PREFIX[1]).collect(),
        features,
        target: env!("CAIRN_TARGET"),
    };
    if g.json {
        let text = serde_json::to_string(&v).map_err(|e| Error::Internal(format!("version as JSON: {e}")))?;
        out(&text);
        return Ok(EXIT_OK);
    }
    let list = |v: &[u8]| v.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
    out(&format!("{} {}", v.program, v.version));
    out(&format!("repository format: {}", v.repository_format));
    out(&format!("tree versions: {}", list(&v.tree_versions)));
    out(&format!("snapshot versions: {}", list(&v.snapshot_versions)));
    out(&format!("features: {}", if v.features.is_empty() { "none".to_string() } else { v.features.join(", ") }));
    out(&format!("target: {}", v.target));
    Ok(EXIT_OK)
}
