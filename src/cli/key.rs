//! `cairn key add | list | remove ID | passwd`: manage the key files (one per password).

use clap::{Args, Subcommand};
use serde_json::json;

use cairn::id::KeyId;
use cairn::lock::LockKind;
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

/// Run one key subcommand.
pub fn run(g: &GlobalOpts, a: &KeyArgs) -> Result<u8, Error> {
    let repo = g.open()?;
    match &a.command {
        KeyCommand::List => {
            let _lock = g.lock(&repo, LockKind::Shared, "key list")?;
            let keys = repo.list_keys()?;
            if g.json {
                let arr: Vec<_> = keys
                    .iter()
                    .map(|(id, h)| match h {
                        Ok(h) => json!({ "current": *id == repo.key_id(), "id": id.to_hex(), "userName": h.username, "hostName": h.hostname,
                            "created": chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()) }),
                        Err(e) => json!({ "current": false, "id": id.to_hex(), "error": e }),
                    })
                    .collect();
                out(&serde_json::Value::Array(arr).to_string());
            } else {
                out(&format!(" {:<10} {:<12} {:<20} {}", "ID", "User", "Host", "Created"));
                out(&"-".repeat(66));
                for (id, h) in &keys {
                    let mark = if *id == repo.key_id() { "*" } else { " " };
                    match h {
                        Ok(h) => {
                            let created = chrono::DateTime::from_timestamp(h.created, 0)
                                .map(|t| t.with_timezone(&chrono::Local).format(super::TIME_FORMAT).to_string())
                                .unwrap_or_default();
                            out(&format!("{mark}{:<10} {:<12} {:<20} {created}", id.short(), h.username, h.hostname));
                        }
                        Err(e) => out(&format!("{mark}{:<10} damaged: {e}", id.short())),
                    }
                }
            }
        }
        KeyCommand::Add(n) => {
            let _lock = g.lock_to_add(&repo, "key add")?;
            let pw = password::new_password(n.new_password_file.as_deref())?;
            let user = n.user.clone().unwrap_or_else(cairn::util::username);
            let host = n.host.clone().unwrap_or_else(cairn::util::hostname);
            let id = repo.add_key(pw.as_bytes(), &user, &host)?;
            report(g, "added", &id);
        }
        KeyCommand::Remove { id } => {
            let _lock = g.lock(&repo, LockKind::Exclusive, "key remove")?;
            let id = resolve(&repo, id)?;
            repo.remove_key(&id)?;
            report(g, "removed", &id);
        }
        KeyCommand::Passwd(n) => {
            let _lock = g.lock(&repo, LockKind::Exclusive, "key passwd")?;
            let pw = password::new_password(n.new_password_file.as_deref())?;
            let user = n.user.clone().unwrap_or_else(cairn::util::username);
            let host = n.host.clone().unwrap_or_else(cairn::util::hostname);
            // The new key is durable before the old one goes: a crash leaves both passwords valid.
            let id = repo.add_key(pw.as_bytes(), &user, &host)?;
            cairn::backend::Backend::remove(&**repo.backend(), cairn::backend::FileKind::Key, &repo.key_id().to_hex())?;
            report(g, "changed", &id);
        }
    }
    Ok(EXIT_OK)
}

fn report(g: &GlobalOpts, what: &str, id: &KeyId) {
    if g.json {
        out(&json!({ "message_type": "key", "action": what, "id": id.to_hex() }).to_string());
    } else if !g.quiet {
        let msg = match what {
            "added" => format!("saved new key as {}", id.short()),
            "removed" => format!("removed key {}", id.short()),
            _ => format!("saved new key as {}; the old password no longer opens the repository", id.short()),
        };
        out(&msg);
    }
}

/// A key id from a full id or unique prefix.
fn resolve(repo: &cairn::Repository, spec: &str) -> Result<KeyId, Error> {
    let spec = spec.to_ascii_lowercase();
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!("{spec:?} is not a key id")));
    }
    let matches: Vec<KeyId> =
        repo.list_keys()?.into_iter().map(|(id, _)| id).filter(|id| id.to_hex().starts_with(&spec)).collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => Err(Error::InvalidInput(format!("no key file matches {spec:?}; see `cairn key list`"))),
        _ => Err(Error::InvalidInput(format!(
            "key id prefix {spec:?} matches {} keys; give more characters",
            matches.len()
        ))),
    }
}
