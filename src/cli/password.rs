//! Where the repository password comes from, in restic's order: `--password-file` /
//! `CAIRN_PASSWORD_FILE`, `--password-command` / `CAIRN_PASSWORD_COMMAND`, `CAIRN_PASSWORD`,
//! else a prompt on the terminal (no echo), else an error that says how to give one. The
//! source repository of `--from-repo` ([`RepoRole::Source`]) has its own: `--from-password-file`,
//! `--from-password-command`, `CAIRN_FROM_PASSWORD` (restic's `RESTIC_FROM_PASSWORD`), a prompt
//! that names it.

use zeroize::Zeroizing;

use cairn::Error;

use super::from_repo::RepoRole;
use super::GlobalOpts;

fn first_line(s: &str) -> &str {
    s.split(['\n', '\r']).next().unwrap_or("")
}

/// The first line of the password file at `path` (`what` names it in the error).
fn read_password_file(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::NoPassword(format!("cannot read the {what} {}: {e}", path.display())))?,
    );
    Ok(Zeroizing::new(first_line(&text).to_string()))
}

/// The words of the messages about the password of a repository in `role`.
struct Words {
    /// What the password opens, as a message says it after "password of".
    what: &'static str,
    file_flag: &'static str,
    command_flag: &'static str,
    file_var: &'static str,
    command_var: &'static str,
}

fn words(role: RepoRole) -> Words {
    match role {
        RepoRole::Repository => Words {
            what: "the repository",
            file_flag: "--password-file",
            command_flag: "--password-command",
            file_var: "CAIRN_PASSWORD_FILE",
            command_var: "CAIRN_PASSWORD_COMMAND",
        },
        RepoRole::Source => Words {
            what: "the source repository",
            file_flag: "--from-password-file",
            command_flag: "--from-password-command",
            file_var: "CAIRN_FROM_PASSWORD_FILE",
            command_var: "CAIRN_FROM_PASSWORD_COMMAND",
        },
    }
}

/// Passwords and S3 credentials: a password command of one repository never sees the other
/// repository's.
const OTHER_SIDE_VARIABLES: [&str; 15] = [
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_FROM_PASSWORD",
    "CAIRN_FROM_PASSWORD_FILE",
    "CAIRN_FROM_PASSWORD_COMMAND",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];

/// The environment of the password command of the repository `g` opens: for a repository
/// with its own environment (a profile's copy target), that environment over the process's
/// without the other side's passwords and credentials; for the source of a copy
/// (`--from-password-command`), the process's without the target's password variables.
fn command_environment(g: &GlobalOpts, command: &mut std::process::Command) {
    match (&g.environment, g.role) {
        (Some(own), _) => {
            for v in OTHER_SIDE_VARIABLES {
                command.env_remove(v);
            }
            command.envs(own);
        }
        (None, RepoRole::Source) => {
            for v in ["CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"] {
                command.env_remove(v);
            }
        }
        (None, RepoRole::Repository) => {}
    }
}

/// The password of the repository `g` opens ([`GlobalOpts::role`] says which options give
/// it); with `confirm` (init), a prompt asks twice.
pub fn get(g: &GlobalOpts, confirm: bool) -> Result<Zeroizing<String>, Error> {
    let w = words(g.role);
    if g.password_file.is_some() && g.password_command.is_some() {
        return Err(Error::usage(format!("give either {} or {}, not both", w.file_flag, w.command_flag)));
    }
    let pw = if let Some(path) = &g.password_file {
        let what = match g.role {
            RepoRole::Repository => "password file",
            RepoRole::Source => "source repository's password file",
        };
        read_password_file(path, what)?
    } else if let Some(cmd) = &g.password_command {
        let mut command = std::process::Command::new("sh");
        command_environment(g, &mut command);
        let out = command
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::NoPassword(format!("cannot run the password command of {}: {e}", w.what)))?;
        if !out.status.success() {
            return Err(Error::NoPassword(format!("the password command of {} failed ({})", w.what, out.status)));
        }
        let text = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
        Zeroizing::new(first_line(&text).to_string())
    } else if let Some(p) = g.password_variable() {
        Zeroizing::new(p)
    } else {
        let label = match (g.role, confirm) {
            (RepoRole::Source, _) => "enter password for the source repository: ",
            (RepoRole::Repository, true) => "enter password for new repository: ",
            (RepoRole::Repository, false) => "enter password for repository: ",
        };
        prompt(label, confirm, &|| {
            Error::NoPassword(format!(
                "no password given for {} ({}) and no terminal to ask on: set {}, {} ({}) or {} ({})",
                w.what,
                g.repo,
                g.role.password_var(),
                w.file_var,
                w.file_flag,
                w.command_var,
                w.command_flag
            ))
        })?
    };
    if pw.is_empty() {
        return Err(Error::NoPassword(format!(
            "the password of {} is empty; an empty password is not accepted",
            w.what
        )));
    }
    Ok(pw)
}

/// The new password for `key add` / `key passwd`: the first line of `file`, else a prompt
/// that asks twice.
pub fn new_password(file: Option<&std::path::Path>) -> Result<Zeroizing<String>, Error> {
    let pw = match file {
        Some(path) => read_password_file(path, "new password file")?,
        None => prompt("enter new password: ", true, &|| {
            Error::NoPassword("no terminal to ask for the new password on: give --new-password-file".into())
        })?,
    };
    if pw.is_empty() {
        return Err(Error::NoPassword("the new password is empty; an empty password is not accepted".into()));
    }
    Ok(pw)
}

/// Ask on the terminal (no echo), twice with `confirm`; `none` is the error when there is no
/// terminal to ask on.
fn prompt(label: &str, confirm: bool, none: &dyn Fn() -> Error) -> Result<Zeroizing<String>, Error> {
    if std::fs::File::open("/dev/tty").is_err() {
        return Err(none());
    }
    let pw = Zeroizing::new(rpassword::prompt_password(label).map_err(|_| none())?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("enter password again: ").map_err(|_| none())?);
        if *again != *pw {
            return Err(Error::usage("the passwords do not match"));
        }
    }
    Ok(pw)
}
