//! A profile's files as the operating system sees them: the environment file read into this
//! process's environment (or, for a copy target, into a map of its own), and the ownership and
//! mode rules for it and the profile itself.

use std::path::Path;

use cairn::Error;

/// Read the environment file `file` (`KEY=VALUE` lines, `#` comments, optional `export `,
/// optional quotes) and put each variable that is not already set into this process's
/// environment; returns the names it set. Errors: as [`read_environment_file`].
///
/// Call before any thread starts (it changes the process's environment).
pub fn apply_environment_file(file: &Path, at: &str) -> Result<Vec<String>, Error> {
    let mut set = Vec::new();
    for (k, v) in read_environment_file(file, at)? {
        if std::env::var_os(&k).is_none() {
            std::env::set_var(&k, v);
            set.push(k);
        }
    }
    Ok(set)
}

/// The variables of the environment file `file` (`KEY=VALUE` lines, `#` comments, optional
/// `export `, optional quotes), in the file's order, without touching this process's
/// environment (a copy target's file: its variables are the target repository's alone). `at`
/// names the profile key in messages. Errors: a missing file, one that is not a regular file,
/// accessible by group or others, or owned by another user than this one and root; a malformed
/// line (naming the file and line).
pub fn read_environment_file(file: &Path, at: &str) -> Result<Vec<(String, String)>, Error> {
    let fail = |e: std::io::Error| Error::usage(format!("{at}: environment file {}: {e}", file.display()));
    // The checks and the read are of the same open file.
    let mut f = open_nonblocking(file).map_err(fail)?;
    let meta = f.metadata().map_err(fail)?;
    trusted(&meta, 0o077).map_err(|why| {
        Error::usage(format!(
            "{at}: environment file {} {why}: it holds secrets, so only its owner (you or root) may read or change it",
            file.display()
        ))
    })?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(fail)?;
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").map_or(t, str::trim_start);
        let bad = |why: &str| Error::usage(format!("{}:{}: {why}", file.display(), i + 1));
        let (k, v) = t.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let k = k.trim();
        let valid = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(bad(&format!("{k:?} is not a variable name")));
        }
        let v = v.trim();
        let v = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(a, b)| v.strip_prefix(*a).and_then(|s| s.strip_suffix(*b)))
            .unwrap_or(v);
        vars.push((k.to_string(), v.to_string()));
    }
    Ok(vars)
}

/// Why a file whose metadata is `meta` cannot be trusted, if it cannot: it is not a regular
/// file, its mode has one of the bits of `forbidden` (`0o022`: writable by group or others;
/// `0o077`: any access by them), or it belongs to someone other than this process's effective
/// user and root (ssh's `StrictModes` rule).
pub(super) fn trusted(meta: &std::fs::Metadata, forbidden: u32) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & forbidden != 0 {
        let fix = if forbidden == 0o077 { "chmod 600" } else { "chmod go-w" };
        return Err(format!("has mode {mode:04o} ({fix})"));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!("belongs to user id {}, neither you (user id {me}) nor root (chown)", meta.uid()));
    }
    Ok(())
}

/// Open `file` for reading without blocking on a FIFO or a device (its metadata is checked
/// before anything is read).
pub(super) fn open_nonblocking(file: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(file)
}
