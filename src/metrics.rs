//! Prometheus metrics as text: the exposition format (version 0.0.4) that node_exporter's
//! textfile collector and the Pushgateway read, and the merge that lets several commands share
//! one file.
//!
//! A file holds [`Family`]s (one `# HELP` and `# TYPE` line, then its samples). A command
//! that writes its figures replaces only what it owns ([`Exposition::merge`]): the series of
//! its families whose labels include its owner labels (profile, host, repository and, for the
//! `cairn_command_*` families, the command). Everything else in the file (other commands,
//! other profiles, series another program wrote) is kept as it was, so that one file per
//! profile holds the whole picture. Families named `*_last_success_timestamp_seconds` are
//! sticky: a run that did not succeed writes none, and the previous success stays.
//! [`update_file`] replaces a file atomically under a lock.
//!
//! The format: <https://prometheus.io/docs/instrumenting/exposition_formats/>. Names follow
//! <https://prometheus.io/docs/practices/naming/> (base units, `_seconds`, `_bytes`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Label names to values (sorted, so a label set prints the same every time).
pub type Labels = BTreeMap<String, String>;

/// The suffix of the families whose series a failed run leaves alone (see the module docs).
pub const STICKY_SUFFIX: &str = "_last_success_timestamp_seconds";

/// A metric's type as `# TYPE` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// A value that goes up and down (every figure of a run is one).
    Gauge,
    /// A value that only goes up.
    Counter,
    /// A type cairn does not write, kept as written (`histogram`, `summary`, `untyped`).
    Other(&'static str),
}

impl MetricType {
    fn word(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Other(w) => w,
        }
    }

    fn parse(word: &str) -> MetricType {
        match word {
            "gauge" => MetricType::Gauge,
            "counter" => MetricType::Counter,
            "histogram" => MetricType::Other("histogram"),
            "summary" => MetricType::Other("summary"),
            _ => MetricType::Other("untyped"),
        }
    }
}

/// One sample: a label set and a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// What follows the family's name in the sample's name: "" but for the `_bucket`, `_sum`
    /// and `_count` samples of a histogram or summary (kept as read).
    pub suffix: String,
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// A metric family: a name, its help text, its type and its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The metric name (`cairn_backup_duration_seconds`).
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Its type.
    pub kind: MetricType,
    /// Its samples, at most one per label set.
    pub samples: Vec<Sample>,
}

impl Family {
    /// A gauge with no samples yet.
    pub fn gauge(name: &str, help: &str) -> Family {
        Family { name: name.to_string(), help: help.to_string(), kind: MetricType::Gauge, samples: Vec::new() }
    }

    /// A gauge with one sample: `labels` and `value`.
    pub fn gauge_with(name: &str, help: &str, labels: &Labels, value: f64) -> Family {
        Family::gauge(name, help).with(labels, value)
    }

    /// This family with one more sample (replacing the one with the same labels).
    pub fn with(mut self, labels: &Labels, value: f64) -> Family {
        self.set(labels, value);
        self
    }

    /// Set the sample with `labels` to `value` (added, or replacing the one there).
    pub fn set(&mut self, labels: &Labels, value: f64) {
        self.samples.retain(|s| &s.labels != labels || !s.suffix.is_empty());
        self.samples.push(Sample { suffix: String::new(), labels: labels.clone(), value });
    }
}

/// The contents of a metrics file: families in the order they appear.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// The families.
    pub families: Vec<Family>,
}

/// A line of a metrics file that could not be read, with its number (1-based) and text; the
/// rest of the file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Line number.
    pub line: usize,
    /// The line.
    pub text: String,
}

impl Exposition {
    /// Read the text format. Lines that are not a comment, a `# HELP`/`# TYPE` line or a sample
    /// are returned as [`BadLine`]s and left out (a file someone damaged still gets the
    /// figures of the next run). A sample's timestamp is dropped (the textfile collector
    /// refuses them). A family without `# HELP` gets the help "".
    pub fn parse(text: &str) -> (Exposition, Vec<BadLine>) {
        let mut ex = Exposition::default();
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut words = rest.trim_start().splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("HELP"), Some(name), help) => ex.family_mut(name).help = unescape_help(help.unwrap_or("")),
                    (Some("TYPE"), Some(name), Some(t)) => ex.family_mut(name).kind = MetricType::parse(t.trim()),
                    _ => {}
                }
                continue;
            }
            match parse_sample(line) {
                Some((name, mut sample)) => {
                    let family = family_of(&name, &ex);
                    sample.suffix = name.get(family.len()..).unwrap_or("").to_string();
                    let fam = ex.family_mut(&family);
                    fam.samples.retain(|s| s.labels != sample.labels || s.suffix != sample.suffix);
                    fam.samples.push(sample);
                }
                None => bad.push(BadLine { line: n + 1, text: line.to_string() }),
            }
        }
        (ex, bad)
    }

    /// The family named `name`, added (empty, untyped) when missing.
    fn family_mut(&mut self, name: &str) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: String::new(),
                    kind: MetricType::Other("untyped"),
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// Put `update` in, replacing what its writer owns (see the module docs):
    /// - in every family named in `update` or whose name starts with `prefix`, the samples
    ///   whose labels include all of `owner` are removed, then `update`'s are added;
    /// - except in sticky families ([`STICKY_SUFFIX`]), where only the samples `update`
    ///   replaces (same labels) go.
    ///
    /// Families left with no samples are dropped.
    pub fn merge(&mut self, update: Vec<Family>, owner: &Labels, prefix: Option<&str>) {
        let owns = |s: &Sample| owner.iter().all(|(k, v)| s.labels.get(k) == Some(v));
        for fam in &mut self.families {
            let new = update.iter().find(|f| f.name == fam.name);
            let claimed = new.is_some() || prefix.is_some_and(|p| fam.name.starts_with(p));
            if !claimed {
                continue;
            }
            if fam.name.ends_with(STICKY_SUFFIX) {
                if let Some(new) = new {
                    fam.samples.retain(|s| !new.samples.iter().any(|n| n.labels == s.labels && n.suffix == s.suffix));
                }
            } else {
                fam.samples.retain(|s| !owns(s));
            }
        }
        for new in update {
            let fam = self.family_mut(&new.name);
            fam.help = new.help;
            fam.kind = new.kind;
            for s in new.samples {
                fam.samples.retain(|o| o.labels != s.labels || o.suffix != s.suffix);
                fam.samples.push(s);
            }
        }
        self.families.retain(|f| !f.samples.is_empty());
    }

    /// The text format: each family's `# HELP` (when it has one), `# TYPE` and samples (a
    /// gauge's or counter's sorted by labels, others as read), the families sorted by name.
    pub fn render(&self) -> String {
        let mut fams: Vec<&Family> = self.families.iter().filter(|f| !f.samples.is_empty()).collect();
        fams.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = String::new();
        for f in fams {
            if !f.help.is_empty() {
                let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            }
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.word());
            let mut samples: Vec<&Sample> = f.samples.iter().collect();
            // A histogram's or summary's samples keep their order (`le` is not sorted as text).
            if matches!(f.kind, MetricType::Gauge | MetricType::Counter) {
                samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            for s in samples {
                out.push_str(&f.name);
                out.push_str(&s.suffix);
                if !s.labels.is_empty() {
                    out.push('{');
                    let pairs: Vec<String> =
                        s.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
                    out.push_str(&pairs.join(","));
                    out.push('}');
                }
                let _ = writeln!(out, " {}", value_text(s.value));
            }
        }
        out
    }
}

/// The family a sample named `name` belongs to: the name itself, or for the `_bucket`, `_sum`
/// and `_count` samples of a histogram or summary already in `ex`, that family.
fn family_of(name: &str, ex: &Exposition) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if ex
                .families
                .iter()
                .any(|f| f.name == base && matches!(f.kind, MetricType::Other("histogram" | "summary")))
            {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

/// A value as the format writes it (Go's `ParseFloat` reads it back): `NaN`, `+Inf`, `-Inf`, or
/// the shortest decimal that round-trips.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape_help(s: &str) -> String {
    unescape(s, false)
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `s` with `\\`, `\n` (and `\"` when `quotes`) turned back into what they stand for; other
/// escapes are kept as written.
fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// True for a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; labels have no `:`, which
/// the caller checks).
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// One sample line: `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, Sample)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = line.get(..name_end)?;
    if !valid_name(name) {
        return None;
    }
    let mut rest = line.get(name_end..)?.trim_start();
    let mut labels = Labels::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest.get(..eq)?.trim();
            if !valid_name(key) || key.contains(':') {
                return None;
            }
            rest = rest.get(eq + 1..)?.trim_start().strip_prefix('"')?;
            // The value ends at the first quote not escaped by a backslash.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            labels.insert(key.to_string(), unescape(rest.get(..end)?, true));
            rest = rest.get(end + 1..)?.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return None;
            }
        }
    }
    let mut words = rest.split_whitespace();
    let value = match words.next()? {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        w => w.parse().ok()?,
    };
    // An optional timestamp (dropped), then nothing.
    if let Some(ts) = words.next() {
        ts.parse::<i64>().ok()?;
    }
    if words.next().is_some() {
        return None;
    }
    Some((name.to_string(), Sample { suffix: String::new(), labels, value }))
}

/// Read metrics file `file`, apply `update` to its contents, and replace it atomically (a
/// temporary file beside it, synced, renamed, the directory synced), under an advisory lock on
/// `FILE.lock` held for at most `wait` (two commands ending at once keep each other's
/// series). Only a regular file (or none yet) is read and replaced, never through a symbolic
/// link, never a device; the new file keeps the old one's mode (and, for root, its owner), and
/// a new one is 0644 whatever the umask (node_exporter reads it; metrics hold no secret).
/// Returns the lines of the old file that were not metrics (dropped). Errors:
/// [`Error::Refused`] for a link or a file of another kind, or a lock still held after `wait`;
/// [`Error::Io`].
pub fn update_file(file: &Path, wait: Duration, update: impl FnOnce(&mut Exposition)) -> Result<Vec<BadLine>> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let name = file
        .file_name()
        .ok_or_else(|| Error::usage(format!("metrics file {}: not a file name", file.display())))?
        .to_string_lossy()
        .into_owned();
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Never replace a device (/dev/null) or a link: only a regular file, or none yet.
    match std::fs::symlink_metadata(file) {
        Ok(m) if !m.is_file() => {
            return Err(Error::refused(format!("{}: not a regular file: not replaced", file.display())))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(file, e)),
    }
    let lock_path = dir.join(format!("{name}.lock"));
    // flock needs no write permission: opened to read, so that other users' commands sharing
    // the file can take the lock; made 0644 whatever the umask.
    let mut lock_file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
                .map_err(|e| Error::io(&lock_path, e))?;
            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
            f
        }
        Err(e) => return Err(Error::io(&lock_path, e)),
    };
    let deadline = std::time::Instant::now() + wait;
    let _lock = loop {
        match nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                lock_file = f;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::refused(format!(
                    "another process has held {} for {}s",
                    lock_path.display(),
                    wait.as_secs()
                )))
            }
            Err((_, e)) => return Err(Error::io(&lock_path, e.into())),
        }
    };
    let mut old = Vec::new();
    let mut keep: Option<std::fs::Metadata> = None;
    match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(file) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(|e| Error::io(file, e))?;
            if !meta.is_file() {
                return Err(Error::refused(format!("{}: not a regular file: not replaced", file.display())));
            }
            f.read_to_end(&mut old).map_err(|e| Error::io(file, e))?;
            keep = Some(meta);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::refused(format!("{}: a symbolic link: not followed", file.display())))
        }
        Err(e) => return Err(Error::io(file, e)),
    }
    let (mut ex, bad) = Exposition::parse(&String::from_utf8_lossy(&old));
    update(&mut ex);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // Left by a killed process that had this pid: under the lock, nobody else writes it.
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        match &keep {
            Some(m) => {
                f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
                if nix::unistd::geteuid().is_root() {
                    std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
                }
            }
            None => f.set_permissions(std::fs::Permissions::from_mode(0o644))?,
        }
        f.write_all(ex.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(file, e)
    })?;
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn renders_and_reads_back() {
        let l = labels(&[("profile", "mail"), ("component", "/a \"b\"\\c\nd")]);
        let ex = Exposition {
            families: vec![
                Family::gauge_with("cairn_backup_duration_seconds", "Wall time\\of the backup", &l, 12.5),
                Family::gauge_with("cairn_snapshots", "Snapshots", &Labels::new(), 3.0),
            ],
        };
        let text = ex.render();
        assert!(
            text.contains("cairn_backup_duration_seconds{component=\"/a \\\"b\\\"\\\\c\\nd\",profile=\"mail\"} 12.5\n")
        );
        assert!(text.contains("# HELP cairn_backup_duration_seconds Wall time\\\\of the backup\n"));
        let (back, bad) = Exposition::parse(&text);
        assert!(bad.is_empty());
        let mut want = ex.families.clone();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back.families, want);
    }

    #[test]
    fn keeps_what_others_wrote_and_reports_bad_lines() {
        let text = "# HELP node_x Other program\n# TYPE node_x gauge\nnode_x{a=\"1\"} 7 1700000000000\ngarbage here\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n";
        let (mut ex, bad) = Exposition::parse(text);
        assert_eq!(bad, vec![BadLine { line: 4, text: "garbage here".into() }]);
        ex.merge(
            vec![Family::gauge_with("cairn_snapshots", "Snapshots", &labels(&[("profile", "p")]), 2.0)],
            &labels(&[("profile", "p")]),
            None,
        );
        let out = ex.render();
        assert!(out.contains("node_x{a=\"1\"} 7\n"), "{out}");
        assert!(out.contains("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n"), "{out}");
        assert!(!out.contains("# HELP h "), "no help, no empty HELP line: {out}");
        assert!(out.contains("# TYPE h histogram"), "{out}");
        assert!(out.contains("cairn_snapshots{profile=\"p\"} 2\n"), "{out}");
    }

    #[test]
    fn a_command_replaces_only_its_own_series() {
        let p = labels(&[("profile", "p")]);
        let q = labels(&[("profile", "q")]);
        let mut ex = Exposition::default();
        let first = |owner: &Labels, v: f64| {
            vec![
                Family::gauge_with("cairn_backup_added_bytes", "Added", owner, v),
                Family::gauge_with("cairn_backup_last_success_timestamp_seconds", "Success", owner, v),
            ]
        };
        ex.merge(first(&p, 1.0), &p, Some("cairn_backup_"));
        ex.merge(first(&q, 2.0), &q, Some("cairn_backup_"));
        // p fails: no figures, no success; its old figures go, its last success stays, q is untouched.
        ex.merge(vec![Family::gauge_with("cairn_command_exit_code", "Exit", &p, 1.0)], &p, Some("cairn_backup_"));
        let out = ex.render();
        assert!(!out.contains("cairn_backup_added_bytes{profile=\"p\"}"), "{out}");
        assert!(out.contains("cairn_backup_added_bytes{profile=\"q\"} 2\n"), "{out}");
        assert!(out.contains("cairn_backup_last_success_timestamp_seconds{profile=\"p\"} 1\n"), "{out}");
        assert!(out.contains("cairn_command_exit_code{profile=\"p\"} 1\n"), "{out}");
        // p succeeds again: the success moves on.
        ex.merge(first(&p, 5.0), &p, Some("cairn_backup_"));
        let out = ex.render();
        assert!(out.contains("cairn_backup_last_success_timestamp_seconds{profile=\"p\"} 5\n"), "{out}");
        assert!(out.contains("cairn_backup_added_bytes{profile=\"p\"} 5\n"), "{out}");
    }

    proptest::proptest! {
        #[test]
        fn any_label_value_round_trips(v in "\\PC*", x in -1e15f64..1e15) {
            let l = labels(&[("k", &v)]);
            let ex = Exposition { families: vec![Family::gauge_with("m", "help", &l, x)] };
            let (back, bad) = Exposition::parse(&ex.render());
            proptest::prop_assert!(bad.is_empty());
            proptest::prop_assert_eq!(back.families, ex.families);
        }
    }

    #[test]
    fn writers_at_once_keep_each_others_series_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.prom");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for n in 0..10 {
                        let owner = labels(&[("profile", &format!("p{w}"))]);
                        let fam = Family::gauge_with("cairn_x", "x", &owner, f64::from(n));
                        update_file(&file, Duration::from_secs(60), |ex| ex.merge(vec![fam], &owner, None)).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let (ex, bad) = Exposition::parse(&std::fs::read_to_string(&file).unwrap());
        assert!(bad.is_empty());
        assert_eq!(ex.families[0].samples.len(), 4, "every writer's series is there");
        assert!(ex.families[0].samples.iter().all(|s| s.value == 9.0));
        let link = dir.path().join("link.prom");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(update_file(&link, Duration::from_secs(1), |_| {}), Err(Error::Refused(_))));
        assert!(matches!(update_file(Path::new("/dev/null"), Duration::from_secs(1), |_| {}), Err(Error::Refused(_))));
    }
}
