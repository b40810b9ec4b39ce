//! `--from-repo` and its password options (restic's spelling): the source repository of
//! `copy` and of `init --copy-chunker-params`, opened with the same backend options (`-o`),
//! bandwidth limits and cache as the repository of `-r`, and with its own password, which
//! never comes from the options of `-r` (`CAIRN_PASSWORD`, `--password-file`, ...).

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

    /// The global options of the source repository: a clone of `g` (the same `-o` options,
    /// bandwidth limits, cache directory, `--no-cache`, `--retry-lock`, `--no-lock`, output
    /// flags) with the repository of `--from-repo`, the password options
    /// `--from-password-file` / `--from-password-command`, and the role
    /// [`RepoRole::Source`]: its password comes from those options or `CAIRN_FROM_PASSWORD`
    /// (else a prompt that names the source repository), never from the options of `-r`, and
    /// a wrong one is [`Error::WrongSourcePassword`].
    /// Errors: [`Error::Usage`] without `--from-repo`.
    pub fn globals(&self, g: &GlobalOpts) -> Result<GlobalOpts, Error> {
        let Some(repo) = self.from_repo.clone().filter(|r| !r.is_empty()) else {
            return Err(Error::usage("no source repository given: use --from-repo or set CAIRN_FROM_REPOSITORY"));
        };
        let mut src = g.clone();
        src.repo = repo;
        src.password_file = self.from_password_file.clone();
        src.password_command = self.from_password_command.clone();
        src.role = RepoRole::Source;
        Ok(src)
    }
}

/// Which repository a [`GlobalOpts`] opens: where its password comes from and how its errors
/// name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepoRole {
    /// The repository of `-r`: `--password-file`, `--password-command`, `CAIRN_PASSWORD`.
    #[default]
    Repository,
    /// The source repository of `--from-repo`: `--from-password-file`,
    /// `--from-password-command`, `CAIRN_FROM_PASSWORD`.
    Source,
}

impl RepoRole {
    /// The variable holding the password when neither a file nor a command gives it.
    pub fn password_var(self) -> &'static str {
        match self {
            RepoRole::Repository => "CAIRN_PASSWORD",
            RepoRole::Source => "CAIRN_FROM_PASSWORD",
        }
    }

    /// `e`, an error of opening the repository at `location` in this role: for the source, a
    /// wrong password becomes [`Error::WrongSourcePassword`] (same exit code, naming it).
    pub fn explain_open_error(self, e: Error, location: &str) -> Error {
        match (self, e) {
            (RepoRole::Source, Error::WrongPassword { tried }) => {
                Error::WrongSourcePassword { location: location.to_string(), tried }
            }
            (_, e) => e,
        }
    }
}
