//! The one glob compiler of cairn: path patterns for backup excludes, restore includes and
//! excludes, and `find`.
//!
//! Globs are compiled with `globset`; `*` and `?` stay within one path component, `**` crosses
//! components, `[...]` is a class. A trailing `/` is ignored. Two rules say where a pattern
//! applies ([`Rule`]):
//! - [`Rule::Restic`] (backup `--exclude`, restore `--include`/`--exclude`, as restic): a
//!   pattern starting with `/` matches the absolute path from the root; any other matches at
//!   any depth (`*.log`, `cur/*.tmp`). A matching directory is skipped whole by its users.
//! - [`Rule::Find`] (as restic's `find`): a pattern without `/` matches an entry's name at any
//!   depth (`maildb.dump`, `*.conf`); one starting with `/` matches the whole path
//!   (`/etc/postfix/*.cf`); any other matches the end of the path at any depth
//!   (`postfix/*.cf`). Whether some pattern depends on the path, not only on the name, is
//!   known ([`Patterns::uses_paths`]), so a caller can share results between trees.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Where a pattern applies (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// restic's backup and restore rule: anchored at `/` when it starts with `/`, else at any
    /// depth.
    Restic,
    /// restic's `find` rule: a name without `/` matches entry names; else as [`Rule::Restic`].
    Find,
}

/// Compiled path patterns.
pub struct Patterns {
    /// Patterns matched against an entry's name alone ([`Rule::Find`] without `/`).
    names: globset::GlobSet,
    /// Patterns matched against the entry's absolute path.
    paths: globset::GlobSet,
}

impl Patterns {
    /// Compile restic-style patterns ([`Rule::Restic`], case-sensitive). Errors:
    /// [`Error::Usage`] naming the malformed pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        Self::compile(patterns, Rule::Restic, false)
    }

    /// Compile `patterns` under `rule`; `ignore_case` makes them case-insensitive. Errors:
    /// [`Error::Usage`] naming a malformed pattern, or (under [`Rule::Find`]) one that is
    /// empty once its trailing `/` are removed.
    pub fn compile(patterns: &[String], rule: Rule, ignore_case: bool) -> Result<Self> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let (set, glob) = match rule {
                Rule::Find if trimmed.is_empty() => {
                    return Err(Error::usage(format!("find pattern {p:?} matches nothing")));
                }
                Rule::Find if !trimmed.contains('/') => (&mut names, trimmed.to_string()),
                _ if trimmed.starts_with('/') => (&mut paths, trimmed.to_string()),
                _ => (&mut paths, format!("**/{trimmed}")),
            };
            let g = globset::GlobBuilder::new(&glob)
                .literal_separator(true)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| Error::usage(format!("bad pattern {trimmed:?}: {e}")))?;
            set.add(g);
        }
        let build = |b: globset::GlobSetBuilder| b.build().map_err(|e| Error::usage(format!("bad patterns: {e}")));
        Ok(Patterns { names: build(names)?, paths: build(paths)? })
    }

    /// True when `path` (absolute) matches a pattern; a name pattern ([`Rule::Find`]) is
    /// matched against its last component.
    pub fn is_match(&self, path: &Path) -> bool {
        let name = path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        self.is_match_entry(name, path)
    }

    /// True when an entry named `name` at absolute path `path` matches a pattern.
    pub fn is_match_entry(&self, name: &[u8], path: &Path) -> bool {
        (!self.names.is_empty() && self.names.is_match(OsStr::from_bytes(name)))
            || (!self.paths.is_empty() && self.paths.is_match(path))
    }

    /// True when some pattern depends on where an entry is, not only on its name.
    pub fn uses_paths(&self) -> bool {
        !self.paths.is_empty()
    }

    /// True when there is no pattern (nothing matches).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }
}

/// Read patterns from a pattern file (`--exclude-file`): one per line, surrounding blanks
/// removed, blank lines and `#` comments skipped. Errors: [`Error::Io`] naming the file.
pub fn read_pattern_file(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_rule() {
        let e =
            Patterns::new(&["*.log".into(), "cur/*.tmp".into(), "/var/cache".into(), "/etc/**/secret".into()]).unwrap();
        assert!(e.is_match(Path::new("/var/log/syslog.log")));
        assert!(e.is_match(Path::new("/a.log")));
        assert!(e.is_match(Path::new("/var/vmail/x/cur/1.tmp")));
        assert!(!e.is_match(Path::new("/var/vmail/x/new/1.tmp")));
        assert!(e.is_match(Path::new("/var/cache")));
        assert!(!e.is_match(Path::new("/srv/var/cache")));
        assert!(e.is_match(Path::new("/etc/a/b/secret")));
        assert!(!e.is_match(Path::new("/etc/a/b/secret.txt")));
        assert!(Patterns::new(&["dir/".into()]).unwrap().is_match(Path::new("/a/dir")));
        assert!(!Patterns::new(&[]).unwrap().is_match(Path::new("/x")));
        assert!(Patterns::new(&[]).unwrap().is_empty());
        assert!(matches!(Patterns::new(&["[".into()]), Err(Error::Usage(_))));
    }

    #[test]
    fn find_rule() {
        let find =
            |p: &[&str], ic| Patterns::compile(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), Rule::Find, ic);
        let m = find(&["*.conf", "/etc/postfix/main.cf", "cur/*.tmp"], false).unwrap();
        assert!(m.is_match_entry(b"a.conf", Path::new("/x/y/a.conf")));
        assert!(m.is_match(Path::new("/x/y/a.conf")));
        assert!(!m.is_match_entry(b"a.conf.bak", Path::new("/etc/a.conf.bak")));
        assert!(m.is_match_entry(b"main.cf", Path::new("/etc/postfix/main.cf")));
        assert!(!m.is_match_entry(b"main.cf", Path::new("/srv/etc/postfix/main.cf")));
        assert!(m.is_match_entry(b"1.tmp", Path::new("/var/vmail/a/cur/1.tmp")));
        assert!(!m.is_match_entry(b"1.tmp", Path::new("/var/vmail/a/new/1.tmp")));
        assert!(m.uses_paths());
        let i = find(&["MAILDB.*"], true).unwrap();
        assert!(i.is_match_entry(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(!i.uses_paths());
        assert!(!find(&["MAILDB.*"], false).unwrap().is_match_entry(b"maildb.dump", Path::new("/maildb.dump")));
        assert!(matches!(find(&["/"], false), Err(Error::Usage(_))));
        assert!(find(&["["], false).is_err());
    }

    #[test]
    fn pattern_files_skip_blanks_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("excludes");
        fs::write(&f, "# caches\n*.tmp\n\n  /var/cache  \n").unwrap();
        assert_eq!(read_pattern_file(&f).unwrap(), vec!["*.tmp".to_string(), "/var/cache".to_string()]);
        assert!(matches!(read_pattern_file(&dir.path().join("none")), Err(Error::Io { .. })));
    }
}
