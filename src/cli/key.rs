//! `cairn key add | list | remove ID | passwd`: manage the key files (one per password).

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn::id::KeyId;
use cairn::repository::KeyReport;
use cairn::Error;

use super::{out, password, GlobalOpts, EXIT_OK};

/// Arguments of `key`.
#[derive(Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add a key file for a new password
    Add(NewKey),
    /// List key files (id, user, host, created; `*` marks the one in use)
    List,
    /// Remove a key file (never the one in use, never the last)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password: add a key file for the new password, then remove the one in use
    Passwd(NewKey),
}

#[derive(Args)]
struct NewKey {
    /// Read the new password from this file (first line) instead of asking twice
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<std::path::PathBuf>,
    /// User name to record in the new key (default: the current user)
    #[arg(long)]
    user: Option<String>,
    /// Host name to record in the new key (default: this machine's)
    #[arg(long)]
    host: Option<String>,
}

impl NewKey {
    /// The new password and the user and host names to record with it.
    fn read(&self) -> Result<(zeroize::Zeroizing<String>, String, String), Error> {
        let pw = password::new_password(self.new_password_file.as_deref())?;
        let user = self.user.clone().unwrap_or_else(cairn::util::username);
        let host = self.host.clone().unwrap_or_else(cairn::util::hostname);
        Ok((pw, user, host))
    }
}

/// What `key add | remove | passwd` prints under `--json`.
#[derive(Serialize)]
struct KeyChanged<'a> {
    action: &'a str,
    id: String,
    message_type: &'static str,
}

/// Run one key subcommand.
pub fn run(g: &GlobalOpts, a: &KeyArgs) -> Result<u8, Error> {
    let mut repo = g.open()?;
    match &a.command {
        KeyCommand::List => {
            let _lock = g.read_lock(&repo, "key list")?;
            print_list(g, &repo.key_reports()?);
        }
        KeyCommand::Add(n) => {
            let lock = g.append_lock(&repo, "key add")?;
            let (pw, user, host) = n.read()?;
            let id = repo.add_key(&lock, pw.as_bytes(), &user, &host)?;
            report(g, "added", &id);
        }
        KeyCommand::Remove { id } => {
            let lock = g.exclusive_lock(&repo, "key remove")?;
            let id = repo.find_key(id).map_err(|e| match e {
                Error::Usage(m) if m.starts_with("no key file") => Error::Usage(format!("{m}; see `cairn key list`")),
                e => e,
            })?;
            repo.remove_key(&lock, &id)?;
            report(g, "removed", &id);
        }
        KeyCommand::Passwd(n) => {
            let lock = g.exclusive_lock(&repo, "key passwd")?;
            let (pw, user, host) = n.read()?;
            let id = repo.change_password(&lock, pw.as_bytes(), &user, &host)?;
            report(g, "changed", &id);
        }
    }
    Ok(EXIT_OK)
}

/// Print the key list: JSON, or a table with `*` on the key in use.
fn print_list(g: &GlobalOpts, keys: &[KeyReport]) {
    if g.json {
        out(&serde_json::to_string(keys).unwrap_or_default());
        return;
    }
    out(&format!(" {:<10} {:<12} {:<20} {}", "ID", "User", "Host", "Created"));
    out(&"-".repeat(66));
    for k in keys {
        match k {
            KeyReport::Readable { created, current, host_name, id, user_name } => {
                let created = created
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.with_timezone(&chrono::Local).format(super::TIME_FORMAT).to_string())
                    .unwrap_or_default();
                let mark = if *current { "*" } else { " " };
                out(&format!("{mark}{:<10} {:<12} {:<20} {created}", short(id), user_name, host_name));
            }
            KeyReport::Damaged { id, error, .. } => out(&format!(" {:<10} damaged: {error}", short(id))),
        }
    }
}

/// The first 8 characters of a hex id.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn report(g: &GlobalOpts, what: &str, id: &KeyId) {
    if g.json {
        let r = KeyChanged { action: what, id: id.to_hex(), message_type: "key" };
        out(&serde_json::to_string(&r).unwrap_or_default());
    } else if !g.quiet {
        let msg = match what {
            "added" => format!("saved new key as {}", id.short()),
            "removed" => format!("removed key {}", id.short()),
            _ => format!("saved new key as {}; the old password no longer opens the repository", id.short()),
        };
        out(&msg);
    }
}
