//! `cairn generate`: shell completions (clap_complete) and man pages (clap_mangen).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use cairn::Error;

use super::{GlobalOpts, EXIT_OK};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct GenerateArgs {
    /// Print the completion script of this shell to stdout (e.g. `cairn generate --completions
    /// bash > /etc/bash_completion.d/cairn`)
    #[arg(long, value_name = "SHELL", group = "what")]
    completions: Option<Shell>,
    /// Write one man page per command (cairn.1, cairn-backup.1, cairn-key-add.1, ...) into DIR
    /// (e.g. /usr/local/share/man/man1), creating it
    #[arg(long, value_name = "DIR", group = "what")]
    man: Option<PathBuf>,
}

/// Run `cairn generate`.
pub fn run(g: &GlobalOpts, a: &GenerateArgs) -> Result<u8, Error> {
    let cmd = super::Cli::command();
    if let Some(shell) = a.completions {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "cairn", &mut buf);
        super::out(String::from_utf8_lossy(&buf).trim_end());
    }
    if let Some(dir) = &a.man {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        let mut written = Vec::new();
        man_pages(&cmd, &[], dir, &mut written)?;
        if g.json {
            let json = serde_json::json!({ "man_pages": written });
            super::out(&json.to_string());
        } else if !g.quiet {
            super::out(&format!("wrote {} man pages into {}", written.len(), dir.display()));
        }
    }
    Ok(EXIT_OK)
}

/// Write the man page of `cmd` and of each of its (visible) subcommands into `dir`, named
/// after the command path (`cairn-key-add.1`); `written` gets each file.
fn man_pages(cmd: &clap::Command, parents: &[&str], dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut path: Vec<&str> = parents.to_vec();
    path.push(cmd.get_name());
    let name = path.join("-");
    // The page's title and file name: the whole command path, as git's pages are named.
    let page = clap_mangen::Man::new(cmd.clone().display_name(name.clone()))
        .title(name.to_uppercase())
        .source(format!("cairn {}", env!("CARGO_PKG_VERSION")))
        .manual("cairn manual");
    let file = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text).map_err(|e| Error::io(&file, e))?;
    std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, &path, dir, written)?;
    }
    Ok(())
}
