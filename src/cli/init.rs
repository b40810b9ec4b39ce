//! `cairn init`: create a repository; with `--copy-chunker-params --from-repo SRC` (restic's
//! flags), one whose blob ids and chunk boundaries are those of `SRC`.

use clap::Args;
use serde::Serialize;

use cairn::repository::{InitOptions, Repository};
use cairn::Error;

use super::from_repo::FromRepoArgs;
use super::{out, password, GlobalOpts, EXIT_OK};

/// Arguments of `init`.
#[derive(Args)]
pub struct InitArgs {
    /// Make blob ids and chunk boundaries those of the repository of --from-repo: copy its
    /// chunker parameters and its id and chunker keys (not its encryption key, not its
    /// password), so that `copy` from it moves blobs as they are and backups here
    /// deduplicate against copied data (see repo-format.md for what this shares)
    #[arg(long, requires = "from_repo")]
    pub copy_chunker_params: bool,
    #[command(flatten)]
    pub from: FromRepoArgs,
}

/// What `init` prints under `--json`.
#[derive(Serialize)]
struct Initialized {
    id: String,
    message_type: &'static str,
    repository: String,
}

/// Create the repository and print its id.
pub fn run(g: &GlobalOpts, a: &InitArgs) -> Result<u8, Error> {
    let backend = g.backend()?;
    if backend.exists(cairn::backend::FileKind::Config, &cairn::backend::CONFIG_ID)? {
        return Err(Error::RepositoryExists { location: backend.location() });
    }
    if a.from.is_given() && !a.copy_chunker_params && !from_environment(&a.from) {
        return Err(Error::usage(
            "init uses --from-repo only with --copy-chunker-params (to make a repository that shares the source's blob ids and chunk boundaries); give both, or neither",
        ));
    }
    // The source first: a wrong source password fails before the new one is asked for.
    let source = if a.copy_chunker_params { Some(a.from.globals(g)?.open_uncached()?) } else { None };
    let pw = password::get(g, true)?;
    let opts = InitOptions::default();
    let repo = match &source {
        Some(src) => Repository::init_sharing_ids(backend.clone(), pw.as_bytes(), &opts, src)?,
        None => Repository::init(backend.clone(), pw.as_bytes(), &opts)?,
    };
    if g.json {
        let r =
            Initialized { id: repo.config().id.to_hex(), message_type: "initialized", repository: backend.location() };
        out(&serde_json::to_string(&r).unwrap_or_default());
    } else if !g.quiet {
        out(&format!("created cairn repository {} at {}", repo.config().id.short(), backend.location()));
        if let Some(src) = &source {
            out(&format!(
                "copied the chunker parameters and the id and chunker keys from the source repository {} (the encryption key and the password are this repository's own): blob ids and chunk boundaries are the same in both, so `cairn copy` moves blobs as they are and backups here deduplicate against copied data",
                src.backend().location()
            ));
        }
        out("Please note that knowledge of your password is required to access the repository. Losing your password means that your data is irrecoverably lost.");
    }
    Ok(EXIT_OK)
}

/// True when the source repository of `from` is `CAIRN_FROM_REPOSITORY`'s (set for `copy`,
/// say), not a `--from-repo` typed for this init: plain `init` ignores it, as restic's does.
fn from_environment(from: &FromRepoArgs) -> bool {
    std::env::var("CAIRN_FROM_REPOSITORY").ok().is_some_and(|v| Some(v) == from.from_repo)
}
