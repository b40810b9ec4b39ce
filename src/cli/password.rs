//! Where the repository password comes from, in restic's order: `--password-file` /
//! `CAIRN_PASSWORD_FILE`, `--password-command` / `CAIRN_PASSWORD_COMMAND`, `CAIRN_PASSWORD`,
//! else a prompt on the terminal (no echo), else an error that says how to give one.

use zeroize::Zeroizing;

use cairn::Error;

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

/// The password; with `confirm` (init), a prompt asks twice.
pub fn get(g: &GlobalOpts, confirm: bool) -> Result<Zeroizing<String>, Error> {
    if g.password_file.is_some() && g.password_command.is_some() {
        return Err(Error::usage("give either --password-file or --password-command, not both"));
    }
    let pw = if let Some(path) = &g.password_file {
        read_password_file(path, "password file")?
    } else if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::NoPassword(format!("cannot run the password command: {e}")))?;
        if !out.status.success() {
            return Err(Error::NoPassword(format!("the password command failed ({})", out.status)));
        }
        let text = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
        Zeroizing::new(first_line(&text).to_string())
    } else if let Some(p) = g.password_variable() {
        Zeroizing::new(p)
    } else {
        let label = if confirm { "enter password for new repository: " } else { "enter password for repository: " };
        prompt(label, confirm, &|| {
            Error::NoPassword(
                "no password given and no terminal to ask on: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE (--password-file) \
                 or CAIRN_PASSWORD_COMMAND (--password-command)"
                    .into(),
            )
        })?
    };
    if pw.is_empty() {
        return Err(Error::NoPassword("the password is empty; an empty password is not accepted".into()));
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
