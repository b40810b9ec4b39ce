//! Source selection beyond exclude patterns, as restic's `backup` has it: lists of paths to
//! back up read from files (`--files-from`, `--files-from-verbatim`, `--files-from-raw`),
//! directories whose contents are left out because they hold a tag file (`--exclude-caches`,
//! `--exclude-if-present`), and a size above which files are left out (`--exclude-larger-than`).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The header a valid `CACHEDIR.TAG` starts with (the Cache Directory Tagging Specification,
/// <https://bford.info/cachedir/>).
pub const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// A tag file that marks a directory whose contents are not backed up (restic's
/// `--exclude-if-present FILE[:HEADER]`): the directory and the tag file itself are kept, every
/// other entry of the directory is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFile {
    /// The tag file's name (a plain file name, no `/`).
    pub name: OsString,
    /// When set, the tag counts only if the file's content starts with these bytes.
    pub header: Option<Vec<u8>>,
}

impl TagFile {
    /// Parse `FILE` or `FILE:HEADER` (split at the first `:`; the header may contain more).
    /// Errors: [`Error::Usage`] for an empty name, `.`/`..`, or a name containing `/`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, header) = match spec.split_once(':') {
            Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
            None => (spec, None),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::usage(format!(
                "--exclude-if-present {spec:?}: expected FILE or FILE:HEADER with FILE a plain file name (no `/`)"
            )));
        }
        Ok(TagFile { name: name.into(), header })
    }

    /// The tag of `--exclude-caches`: `CACHEDIR.TAG` starting with [`CACHEDIR_SIGNATURE`].
    pub fn cachedir() -> Self {
        TagFile { name: "CACHEDIR.TAG".into(), header: Some(CACHEDIR_SIGNATURE.as_bytes().to_vec()) }
    }

    /// True when directory `dir`, whose entry names are `names`, is tagged: it has an entry of
    /// this name and, with a header, that entry is a file whose content starts with the header.
    /// A tag file that cannot be read does not tag (more is backed up, never less).
    fn tags(&self, dir: &Path, names: &[OsString]) -> bool {
        if !names.contains(&self.name) {
            return false;
        }
        let Some(header) = &self.header else { return true };
        // Without following a symbolic link and without blocking (a FIFO or a device named
        // like the tag would hang the walk), and only a regular file.
        let open = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(dir.join(&self.name));
        let Ok(f) = open else { return false };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return false;
        }
        let mut start = Vec::with_capacity(header.len());
        match f.take(header.len() as u64).read_to_end(&mut start) {
            Ok(_) => start == *header,
            Err(_) => false,
        }
    }
}

/// The entries of directory `dir` (its entry `names`) that are backed up under the tag files
/// `tags` (restic's rule): all of them when no tag marks the directory; else only a name that
/// is the tag file of every tag that marks it (so the tag file itself is kept).
pub fn kept_entries(dir: &Path, names: Vec<OsString>, tags: &[TagFile]) -> Vec<OsString> {
    let marking: Vec<&TagFile> = tags.iter().filter(|t| t.tags(dir, &names)).collect();
    if marking.is_empty() {
        return names;
    }
    names.into_iter().filter(|n| marking.iter().all(|t| t.name == *n)).collect()
}

/// True when an entry of this metadata is left out by `--exclude-larger-than max`: a regular
/// file of more than `max` bytes (directories and other kinds never are).
pub fn too_large(md: &fs::Metadata, max: Option<u64>) -> bool {
    max.is_some_and(|m| md.is_file() && md.len() > m)
}

/// How a file lists the paths to back up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// `--files-from`: one path per line, blanks around it removed, empty lines and lines
    /// starting with `#` skipped, glob patterns expanded ([`expand_glob`]).
    Lines,
    /// `--files-from-verbatim`: one path per line taken as it is (only the line end, `\n` or
    /// `\r\n`, removed); empty lines skipped; no comments, no globs.
    Verbatim,
    /// `--files-from-raw`: paths separated by NUL bytes (as `find -print0` writes them), taken
    /// as they are; an empty path is an error.
    Raw,
}

impl ListFormat {
    /// The flag that reads this format (for messages).
    pub fn flag(self) -> &'static str {
        match self {
            ListFormat::Lines => "--files-from",
            ListFormat::Verbatim => "--files-from-verbatim",
            ListFormat::Raw => "--files-from-raw",
        }
    }
}

/// Read the list file `path` in `format` ([`parse_file_list`]). Errors: [`Error::Io`] naming
/// the file; those of [`parse_file_list`].
pub fn read_file_list(path: &Path, format: ListFormat) -> Result<Vec<PathBuf>> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_file_list(&data, format, &path.display().to_string())
}

/// The paths listed by `data` in `format`; `origin` names the list in errors (a file name, or
/// `standard input`). Paths are returned as written (relative ones are relative to the current
/// directory, as on the command line). Errors: [`Error::Usage`] naming the origin and the
/// entry for an empty path in a [`ListFormat::Raw`] list or a malformed glob.
pub fn parse_file_list(data: &[u8], format: ListFormat, origin: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match format {
        ListFormat::Raw => {
            let data = data.strip_suffix(b"\0").unwrap_or(data);
            if data.is_empty() {
                return Ok(out);
            }
            for (i, p) in data.split(|b| *b == 0).enumerate() {
                if p.is_empty() {
                    return Err(Error::usage(format!(
                        "{} {origin}: entry {} is an empty path (two NUL bytes in a row)",
                        format.flag(),
                        i + 1
                    )));
                }
                out.push(PathBuf::from(OsStr::from_bytes(p)));
            }
        }
        ListFormat::Verbatim | ListFormat::Lines => {
            for (i, line) in data.split(|b| *b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let line = if format == ListFormat::Lines { line.trim_ascii() } else { line };
                if line.is_empty() || (format == ListFormat::Lines && line.starts_with(b"#")) {
                    continue;
                }
                if format == ListFormat::Verbatim {
                    out.push(PathBuf::from(OsStr::from_bytes(line)));
                    continue;
                }
                let at = || format!("{} {origin}, line {}", format.flag(), i + 1);
                out.extend(expand_glob(Path::new(OsStr::from_bytes(line))).map_err(|e| match e {
                    Error::Usage(m) => Error::usage(format!("{}: {m}", at())),
                    e => e,
                })?);
            }
        }
    }
    Ok(out)
}

/// True when `s` holds a glob character (`*`, `?`, `[`, `\`).
fn has_meta(s: &[u8]) -> bool {
    s.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// `pattern` expanded as restic expands the lines of `--files-from` (Go's `filepath.Glob`):
/// `*`, `?`, `[...]` (`[!...]`/`[^...]` negated) and `\` escapes, each within one path
/// component (`*` also matches names starting with `.`); the paths of the existing entries that
/// match, sorted within each directory. A path without glob characters is returned as it is,
/// and so is a pattern that matches nothing (unlike restic, which skips it with a warning):
/// the backup then reports it as a source that cannot be read. Directories that cannot be
/// listed match nothing. Errors: [`Error::Usage`] for a malformed pattern.
pub fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    if !has_meta(pattern.as_os_str().as_bytes()) {
        return Ok(vec![pattern.to_path_buf()]);
    }
    // Every glob component compiled first: a malformed one is an error wherever it is.
    let mut parts = Vec::new();
    for c in pattern.components() {
        let matcher = match c {
            Component::Normal(n) if has_meta(n.as_bytes()) => {
                let Some(text) = n.to_str() else {
                    // Not UTF-8: not a pattern cairn can compile; taken as a plain path.
                    return Ok(vec![pattern.to_path_buf()]);
                };
                let glob = globset::GlobBuilder::new(text)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::usage(format!("bad pattern {:?}: {e}", pattern.display())))?;
                Some(glob.compile_matcher())
            }
            _ => None,
        };
        parts.push((c, matcher));
    }
    let mut found: Vec<PathBuf> = vec![PathBuf::new()];
    for (c, matcher) in parts {
        let mut next = Vec::new();
        if let Some(matcher) = matcher {
            for dir in &found {
                let listed = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
                let Ok(rd) = fs::read_dir(listed) else { continue };
                let mut names: Vec<OsString> =
                    rd.filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| matcher.is_match(n)).collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
        } else if let Component::Normal(name) = c {
            next.extend(found.iter().map(|d| d.join(name)).filter(|p| fs::symlink_metadata(p).is_ok()));
        } else {
            next.extend(found.iter().map(|d| d.join(c.as_os_str())));
        }
        found = next;
        if found.is_empty() {
            break;
        }
    }
    if found.is_empty() {
        return Ok(vec![pattern.to_path_buf()]);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[PathBuf]) -> Vec<String> {
        v.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn tag_files_exclude_the_contents_of_their_directory_but_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let names = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let all = names(&["CACHEDIR.TAG", "a", "sub"]);
        fs::write(d.join("CACHEDIR.TAG"), format!("{CACHEDIR_SIGNATURE}\n# made by a test\n")).unwrap();
        assert_eq!(kept_entries(d, all.clone(), &[TagFile::cachedir()]), names(&["CACHEDIR.TAG"]));
        assert_eq!(kept_entries(d, all.clone(), &[]), all);
        // A wrong signature, a short file, a directory of that name: not a tag.
        fs::write(d.join("CACHEDIR.TAG"), "Signature: 0000").unwrap();
        assert_eq!(kept_entries(d, all.clone(), &[TagFile::cachedir()]), all);
        fs::remove_file(d.join("CACHEDIR.TAG")).unwrap();
        fs::create_dir(d.join("CACHEDIR.TAG")).unwrap();
        assert_eq!(kept_entries(d, all.clone(), &[TagFile::cachedir()]), all);
        // A FIFO of that name (opening it for reading would block) and a symbolic link to a
        // good tag: not tags, and the walk does not hang.
        fs::remove_dir(d.join("CACHEDIR.TAG")).unwrap();
        nix::unistd::mkfifo(&d.join("CACHEDIR.TAG"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(kept_entries(d, all.clone(), &[TagFile::cachedir()]), all);
        fs::remove_file(d.join("CACHEDIR.TAG")).unwrap();
        fs::write(d.join("real.tag"), CACHEDIR_SIGNATURE).unwrap();
        std::os::unix::fs::symlink(d.join("real.tag"), d.join("CACHEDIR.TAG")).unwrap();
        assert_eq!(kept_entries(d, all.clone(), &[TagFile::cachedir()]), all);
        // Without a header any entry of that name tags; with one, only its start counts.
        let nobackup = TagFile::parse(".nobackup").unwrap();
        let with = names(&[".nobackup", "a"]);
        assert_eq!(kept_entries(d, with.clone(), std::slice::from_ref(&nobackup)), names(&[".nobackup"]));
        assert_eq!(kept_entries(d, names(&["a"]), &[nobackup]), names(&["a"]));
        fs::write(d.join(".nobackup"), "skip: yes").unwrap();
        assert_eq!(kept_entries(d, with.clone(), &[TagFile::parse(".nobackup:skip").unwrap()]), names(&[".nobackup"]));
        assert_eq!(kept_entries(d, with.clone(), &[TagFile::parse(".nobackup:keep").unwrap()]), with);
        // A header with a colon in it.
        assert_eq!(TagFile::parse("t:a:b").unwrap().header, Some(b"a:b".to_vec()));
        for bad in ["", ":x", "a/b", "..", "."] {
            assert!(matches!(TagFile::parse(bad), Err(Error::Usage(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_regular_files_are_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, vec![0u8; 2000]).unwrap();
        let md = fs::symlink_metadata(&f).unwrap();
        assert!(too_large(&md, Some(1999)));
        assert!(!too_large(&md, Some(2000)));
        assert!(!too_large(&md, None));
        assert!(!too_large(&fs::symlink_metadata(dir.path()).unwrap(), Some(0)));
    }

    #[test]
    fn list_formats() {
        let lines =
            parse_file_list(b"# comment\n\n  /etc/hosts  \r\n/srv/a b\n\t#not a path\n", ListFormat::Lines, "l")
                .unwrap();
        assert_eq!(strs(&lines), ["/etc/hosts", "/srv/a b"]);
        let verbatim = parse_file_list(b"  lead\n#hash\n\ntrail \r\n", ListFormat::Verbatim, "v").unwrap();
        assert_eq!(strs(&verbatim), ["  lead", "#hash", "trail "]);
        let raw = parse_file_list(b"a\nb\0 c\0", ListFormat::Raw, "r").unwrap();
        assert_eq!(strs(&raw), ["a\nb", " c"]);
        assert!(parse_file_list(b"", ListFormat::Raw, "r").unwrap().is_empty());
        let e = parse_file_list(b"a\0\0b", ListFormat::Raw, "r").unwrap_err().to_string();
        assert!(e.contains("--files-from-raw r: entry 2"), "{e}");
        let e = parse_file_list(b"ok\n/x/[\n", ListFormat::Lines, "f.txt").unwrap_err().to_string();
        assert!(e.contains("--files-from f.txt, line 2"), "{e}");
    }

    #[test]
    fn a_backup_leaves_out_what_is_selected_away_and_skips_an_unchanged_one() {
        use super::super::{backup_input, BackupOptions, Input, Permit, Progress};
        use crate::context::Ctx;
        use crate::lock::AppendLock;
        use crate::repository::{InitOptions, Repository};
        use crate::tree::NodeKind;
        let dir = tempfile::tempdir().unwrap();
        let kdf =
            crate::crypto::keyfile::KdfParams { algorithm: 1, memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
        let backend = std::sync::Arc::new(crate::backend::local::LocalBackend::new(dir.path().join("repo")));
        let repo = Repository::init(backend, b"pw", &InitOptions { kdf, ..InitOptions::default() }).unwrap();
        let src = dir.path().join("src");
        for (p, data) in [
            ("cache/CACHEDIR.TAG", CACHEDIR_SIGNATURE),
            ("cache/x", "x"),
            ("big", &"0123456789".repeat(6)),
            ("ok", "1"),
        ] {
            fs::create_dir_all(src.join(p).parent().unwrap()).unwrap();
            fs::write(src.join(p), data).unwrap();
        }
        let opts = BackupOptions {
            exclude_if_present: vec![TagFile::cachedir()],
            exclude_larger_than: Some(50),
            skip_if_unchanged: true,
            ..BackupOptions::default()
        };
        let lock = AppendLock::acquire(&repo, "backup", &Default::default()).unwrap();
        let (ctx, progress) = (Ctx::default(), Progress::default());
        let run = || {
            let input = Input::Paths(vec![src.clone()]);
            backup_input(&ctx, Permit::Write(&lock), &repo, input, &opts, &progress).unwrap().result
        };
        let first = run();
        assert!(first.id.is_some() && !first.skipped && first.errors.is_empty());
        // The source's tree: `big` (60 bytes) and the cache's contents left out, the cache and
        // its tag (43 bytes) kept.
        let index = repo.load_index().unwrap();
        let mut tree = repo.load_tree(&index, &first.snapshot.tree).unwrap();
        for c in src.components().skip(1) {
            let name = c.as_os_str().as_bytes();
            let node = tree.nodes.iter().find(|n| n.name == name).unwrap();
            tree = repo.load_tree(&index, &node.subtree.unwrap()).unwrap();
        }
        let names: Vec<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, [b"cache".as_slice(), b"ok"]);
        let cache = tree.nodes.iter().find(|n| n.kind == NodeKind::Dir).unwrap();
        let cache = repo.load_tree(&index, &cache.subtree.unwrap()).unwrap();
        assert_eq!(cache.nodes.iter().map(|n| n.name.as_slice()).collect::<Vec<_>>(), [b"CACHEDIR.TAG".as_slice()]);

        let second = run();
        assert!(second.id.is_none() && second.skipped);
        // A change in the content of what is left out is no change (a new entry would be: its
        // directory's mtime is in the snapshot).
        fs::write(src.join("cache/x"), "changed").unwrap();
        fs::write(src.join("big"), "9876543210".repeat(6)).unwrap();
        assert!(run().skipped);
        fs::write(src.join("ok"), "2").unwrap();
        let third = run();
        assert!(third.id.is_some() && !third.skipped);
        assert_eq!(repo.snapshots(&ctx, &Default::default()).unwrap().len(), 2);
    }

    #[test]
    fn globs_expand_like_go_filepath_glob() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for p in ["a/x.conf", "a/y.conf", "a/.h.conf", "b/x.conf", "b/z.txt", "c[1]"] {
            let p = d.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        let g = |p: &str| strs(&expand_glob(&d.join(p)).unwrap());
        let at = |v: &[&str]| v.iter().map(|p| d.join(p).display().to_string()).collect::<Vec<_>>();
        assert_eq!(g("a/*.conf"), at(&["a/.h.conf", "a/x.conf", "a/y.conf"]));
        assert_eq!(g("?/x.conf"), at(&["a/x.conf", "b/x.conf"]));
        assert_eq!(g("[!a]/*"), at(&["b/x.conf", "b/z.txt"]));
        assert_eq!(g("c\\[1\\]"), at(&["c[1]"]));
        // Nothing matches, or no glob at all: the path as written (the backup reports it).
        assert_eq!(g("a/*.none"), at(&["a/*.none"]));
        assert_eq!(g("missing"), at(&["missing"]));
        assert!(matches!(expand_glob(Path::new("/no/such/[")), Err(Error::Usage(_))));
    }
}
