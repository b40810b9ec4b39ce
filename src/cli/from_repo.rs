//! `--from-repo` and its password options (restic's spelling): the source repository of
//! `copy` and of `init --copy-chunker-params`, opened with the same backend options (`-o`),
//! bandwidth limits and cache as the repository of `-r`.

use clap::Args;

use cairn::Error;

use super::GlobalOpts;

/// The source repository's location and password.
#[derive(Args, Clone, Debug, Default)]
pub struct FromRepoArgs {
    /// Source repository (same forms as -r)
    #[arg(long = "from-repo", env = "CAIRN_FROM_REPOSITORY", value_name = "REPO")]
    pub from_repo: Option<String>,
    /// Read the source repository's password from this file (first line)
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<std::path::PathBuf>,
    /// Run this shell command and use the first line it prints as the source repository's
    /// password
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub from_password_command: Option<String>,
}

impl FromRepoArgs {
    /// True when `--from-repo` (or `CAIRN_FROM_REPOSITORY`) names a repository.
    pub fn is_given(&self) -> bool {
        self.from_repo.as_deref().is_some_and(|r| !r.is_empty())
    }

    /// The global options of the source repository: `g` with the repository and password
    /// options replaced by the `--from-*` ones (the password from `CAIRN_FROM_PASSWORD` when
    /// neither file nor command is given). Errors: [`Error::Usage`] without `--from-repo`.
    pub fn globals(&self, g: &GlobalOpts) -> Result<GlobalOpts, Error> {
        // Skeleton: filled in by the from-repo work.
        let _ = g;
        Err(Error::usage("--from-repo is not implemented yet"))
    }
}
