//! `cairn init`: create a repository.

use clap::Args;
use serde::Serialize;

use cairn::repository::{InitOptions, Repository};
use cairn::Error;

use super::{out, password, GlobalOpts, EXIT_OK};

/// Arguments of `init`.
#[derive(Args)]
pub struct InitArgs {}

/// What `init` prints under `--json`.
#[derive(Serialize)]
struct Initialized {
    id: String,
    message_type: &'static str,
    repository: String,
}

/// Create the repository and print its id.
pub fn run(g: &GlobalOpts, _a: &InitArgs) -> Result<u8, Error> {
    let backend = g.backend()?;
    if backend.exists(cairn::backend::FileKind::Config, &cairn::backend::CONFIG_ID)? {
        return Err(Error::RepositoryExists { location: backend.location() });
    }
    let pw = password::get(g, true)?;
    let repo = Repository::init(backend.clone(), pw.as_bytes(), &InitOptions::default())?;
    if g.json {
        let r =
            Initialized { id: repo.config().id.to_hex(), message_type: "initialized", repository: backend.location() };
        out(&serde_json::to_string(&r).unwrap_or_default());
    } else if !g.quiet {
        out(&format!("created cairn repository {} at {}", repo.config().id.short(), backend.location()));
        out("Please note that knowledge of your password is required to access the repository. Losing your password means that your data is irrecoverably lost.");
    }
    Ok(EXIT_OK)
}
