//! Helpers for the CLI integration tests: running the `cairn` binary hermetically, building
//! source trees, and describing directory trees so that they can be compared.

pub mod db;
pub mod generations;
pub mod maildir;
pub mod s3;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The password every test repository is created with.
pub const PASSWORD: &str = "correct horse battery staple";

/// Environment variables that could make a run depend on the caller's environment.
pub const CAIRN_ENV: [&str; 10] = [
    "CAIRN_REPOSITORY",
    "CAIRN_FROM_REPOSITORY",
    "CAIRN_FROM_PASSWORD",
    "CAIRN_FROM_PASSWORD_FILE",
    "CAIRN_FROM_PASSWORD_COMMAND",
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_PROFILE",
    "CAIRN_CONFIG",
];

/// How long one cairn invocation may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of one cairn run.
#[derive(Debug)]
pub struct Output {
    /// What was run (for messages).
    pub cmdline: String,
    /// Exit code.
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// The child's peak resident memory (`VmHWM`, KiB), as last read while it ran (polled
    /// every few milliseconds, so a peak in its last moments can be missed).
    pub peak_rss_kib: u64,
}

impl Output {
    /// Panic with the whole output unless the exit code is 0.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed: {}\nstdout:\n{}\nstderr:\n{}",
            self.cmdline, self.stdout, self.stderr
        );
        self
    }

    /// Panic with the whole output unless the exit code is `code`.
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code of {}\nstdout:\n{}\nstderr:\n{}",
            self.cmdline, self.stdout, self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout of {} is not JSON ({e}):\n{}\nstderr:\n{}", self.cmdline, self.stdout, self.stderr)
        })
    }
}

/// A cairn invocation being built.
pub struct Cmd {
    args: Vec<OsString>,
    password: Option<String>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// A cairn invocation with no arguments and no password in its environment.
pub fn cairn() -> Cmd {
    Cmd { args: Vec::new(), password: None, envs: Vec::new(), stdin: None, timeout: TIMEOUT }
}

impl Cmd {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Set CAIRN_PASSWORD in the child's environment.
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.to_string());
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs.push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Fail the test if the run takes longer than `t` (default 120 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Bytes to pipe into standard input (otherwise stdin is /dev/null).
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// Run to completion. The child runs in a new session (no controlling terminal), with
    /// every CAIRN_* variable removed except those set on this builder.
    pub fn run(self) -> Output {
        let bin = env!("CARGO_BIN_EXE_cairn");
        let cmdline = format!(
            "cairn {}",
            self.args.iter().map(|a| format!("{:?}", a.to_string_lossy())).collect::<Vec<_>>().join(" ")
        );
        let mut cmd = Command::new(bin);
        cmd.args(&self.args);
        for k in CAIRN_ENV {
            cmd.env_remove(k);
        }
        if let Some(p) = &self.password {
            cmd.env("CAIRN_PASSWORD", p);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
        // SAFETY: setsid is async-signal-safe; it detaches the child from any terminal so
        // that a password prompt can never block a test.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let writer = self.stdin.map(|data| {
            let mut w = child.stdin.take().expect("stdin pipe");
            std::thread::spawn(move || {
                // The child may legitimately stop reading early (e.g. on an error).
                let _ = w.write_all(&data);
            })
        });
        let mut so = child.stdout.take().expect("stdout pipe");
        let mut se = child.stderr.take().expect("stderr pipe");
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let deadline = Instant::now() + self.timeout;
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_rss_kib = 0;
        let status = loop {
            // Before the exit status is collected the /proc entry is the child's.
            peak_rss_kib = peak_rss_kib.max(vm_hwm_kib(&status_file));
            match child.try_wait().expect("wait for cairn") {
                Some(s) => break s,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{cmdline} did not finish within {:?}", self.timeout);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
        let code =
            status.code().unwrap_or_else(|| panic!("{cmdline} was killed by a signal ({status:?})\nstderr:\n{stderr}"));
        Output { cmdline, code, stdout, stderr, peak_rss_kib }
    }
}

/// `VmHWM` (peak resident set, KiB) from a `/proc/PID/status` file; 0 when unreadable.
fn vm_hwm_kib(status_file: &str) -> u64 {
    fs::read_to_string(status_file)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// A temporary directory whose path is canonical (no symlinks in it), so that the paths
/// cairn records are exactly the paths the test uses.
pub struct Tmp {
    _dir: TempDir,
    pub path: PathBuf,
}

impl Tmp {
    pub fn new() -> Tmp {
        let dir = TempDir::new().expect("create temp dir");
        let path = dir.path().canonicalize().expect("canonicalize temp dir");
        Tmp { _dir: dir, path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

/// A repository in its own temporary directory.
pub struct Repo {
    _tmp: Tmp,
    /// The repository directory (`<tmp>/repo`).
    pub path: PathBuf,
}

impl Repo {
    /// A fresh repository initialised with [`PASSWORD`]; panics if `init` fails.
    pub fn init() -> Repo {
        let tmp = Tmp::new();
        let path = tmp.join("repo");
        cairn().arg("-r").arg(&path).arg("init").password(PASSWORD).run().ok();
        assert!(path.join("config").is_file(), "init did not create {}/config", path.display());
        Repo { _tmp: tmp, path }
    }

    /// A cairn invocation on this repository with the right password.
    pub fn cmd(&self) -> Cmd {
        cairn().arg("-r").arg(&self.path).password(PASSWORD)
    }

    /// Run cairn with `args` on this repository.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).run()
    }

    /// `backup --json ARGS`, which must succeed; returns the summary object.
    pub fn backup_json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.cmd().arg("--json").arg("backup").args(args).run().ok();
        out.json()
    }

    /// `snapshots --json ARGS`, which must succeed; returns the array.
    pub fn snapshots<I, S>(&self, args: I) -> Vec<serde_json::Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.cmd().arg("--json").arg("snapshots").args(args).run().ok();
        match out.json() {
            serde_json::Value::Array(a) => a,
            other => panic!("snapshots --json printed {other}, not an array"),
        }
    }

    /// Start cairn with `args` on this repository in the background, stdin, stdout and
    /// stderr piped (the test feeds and reads them, and waits for the child).
    pub fn spawn<I, S>(&self, args: I) -> std::process::Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("-r").arg(&self.path).args(args);
        for k in CAIRN_ENV {
            cmd.env_remove(k);
        }
        cmd.env("CAIRN_PASSWORD", PASSWORD).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start cairn: {e}"))
    }

    /// Sum of the sizes of all files in the repository directory.
    pub fn size(&self) -> u64 {
        disk_usage(&self.path)
    }
}

/// Deterministic pseudo-random bytes (splitmix64).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        v.extend_from_slice(&z.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Write `data` to `path`, creating parent directories.
pub fn write(path: impl AsRef<Path>, data: impl AsRef<[u8]>) {
    let path = path.as_ref();
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Where restore puts the source path `src` (absolute) below `target`.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    assert!(src.is_absolute());
    target.join(src.strip_prefix("/").unwrap())
}

/// True when the tests run with root privileges.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Create a FIFO at `path`.
pub fn mkfifo(path: &Path, mode: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    assert_eq!(r, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
}

/// The kind of a directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Other,
}

/// Everything the tests compare about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub mtime: (i64, i64),
    /// File content (files only).
    pub content: Option<Vec<u8>>,
    /// Link target (symlinks only).
    pub target: Option<OsString>,
    pub ino: u64,
    pub nlink: u64,
}

/// Every entry below `root` (not `root` itself), by path relative to `root`.
/// Symlinks are never followed.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// Every entry below `root/rel` into `out`; a work list, not recursion (trees thousands of
/// levels deep are compared too).
fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let mut dirs = vec![rel.to_path_buf()];
    while let Some(rel) = dirs.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let entry = describe(&root.join(&rel));
            if entry.kind == Kind::Dir {
                dirs.push(rel.clone());
            }
            out.insert(rel, entry);
        }
    }
}

/// Build a chain of `levels` nested directories `a` below `root` (`root/a/a/.../a`), with a
/// file `f` beside each `a` and one in the deepest directory (`levels + 1` files, the text of
/// their level). Returns the deepest directory.
pub fn deep_tree(root: &Path, levels: usize) -> PathBuf {
    let mut dir = root.to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    for level in 0..=levels {
        write(dir.join("f"), format!("level {level}\n"));
        if level < levels {
            dir.push("a");
            fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("mkdir at level {level} ({} bytes): {e}", dir.as_os_str().len()));
        }
    }
    dir
}

/// Describe one entry without following a symlink.
pub fn describe(p: &Path) -> Entry {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Other
    };
    Entry {
        content: (kind == Kind::File).then(|| fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))),
        target: (kind == Kind::Symlink).then(|| fs::read_link(p).unwrap().into_os_string()),
        kind,
        mode: md.mode() & 0o7777,
        mtime: (md.mtime(), md.mtime_nsec()),
        ino: md.ino(),
        nlink: md.nlink(),
    }
}

/// Every file and directory below `root` with the bytes of each file (None for directories):
/// a byte-for-byte picture of a repository.
pub fn raw_state(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    listing(root)
        .into_iter()
        .map(|(p, e)| {
            let v = match e.kind {
                Kind::Dir => None,
                Kind::File => e.content,
                k => panic!("unexpected {k:?} in the repository at {}", p.display()),
            };
            (p, v)
        })
        .collect()
}

/// Sum of the sizes of the regular files below `root`.
pub fn disk_usage(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.path().symlink_metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Total bytes of the regular files below `root`.
pub fn regular_file_bytes(root: &Path) -> u64 {
    listing(root).values().filter(|e| e.kind == Kind::File).map(|e| e.content.as_ref().unwrap().len() as u64).sum()
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// True when `s` is `n` lowercase hex characters.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The directory holding the two real Linux source trees `linux-source-6.1` and
/// `linux-source-6.12` that the corpus tests use.
///
/// Uses `$CAIRN_BENCH_DIR` (or /var/tmp/cairn-bench) when `../shared/bench/prepare-corpus.sh`
/// already unpacked them there; otherwise unpacks Debian's `linux-source-6.1` and
/// `linux-source-6.12` packages (`/usr/src/linux-source-*.tar.xz`, installed by `.ci/run`)
/// into `target/tmp/corpus` once. Panics with instructions when neither is there.
pub fn linux_corpus() -> PathBuf {
    static CORPUS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CORPUS
        .get_or_init(|| {
            let has = |d: &Path| ["6.1", "6.12"].iter().all(|v| d.join(format!("linux-source-{v}/Makefile")).is_file());
            let bench = std::env::var_os("CAIRN_BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/cairn-bench"));
            if has(&bench) {
                return bench;
            }
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus");
            for v in ["6.1", "6.12"] {
                let tree = dir.join(format!("linux-source-{v}"));
                if tree.join("Makefile").is_file() {
                    continue;
                }
                let xz = PathBuf::from(format!("/usr/src/linux-source-{v}.tar.xz"));
                assert!(
                    xz.is_file(),
                    "{} is missing: install Debian's linux-source-6.1 and linux-source-6.12 packages (.ci/run does)",
                    xz.display()
                );
                // Unpack beside the final place, then rename: an interrupted run leaves no half tree.
                let part = dir.join(format!(".part-{v}"));
                let _ = fs::remove_dir_all(&part);
                fs::create_dir_all(&part).expect("create corpus dir");
                let st = Command::new("tar").arg("-C").arg(&part).arg("-xf").arg(&xz).status().expect("run tar");
                assert!(st.success(), "tar -xf {} failed", xz.display());
                let _ = fs::remove_dir_all(&tree);
                fs::rename(part.join(format!("linux-source-{v}")), &tree).expect("move unpacked tree");
                let _ = fs::remove_dir_all(&part);
            }
            dir
        })
        .clone()
}

/// Assert that the tree restored at `dst` has exactly the entries of `src`, each with the same
/// type, content, permission bits, symlink target and mtime (seconds and nanoseconds).
pub fn assert_same_tree(src: &Path, dst: &Path) {
    let a = listing(src);
    let b = listing(dst);
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "restored entries differ from the source");
    for (p, ea) in &a {
        let eb = &b[p];
        let p = p.display();
        assert_same_entry(&p, ea, eb);
        assert_eq!(ea.mtime, eb.mtime, "{p}: mtime (secs, nanos)");
    }
    let (ma, mb) = (describe(src), describe(dst));
    assert_eq!(format!("{:o}", ma.mode), format!("{:o}", mb.mode), "root directory: permission bits");
    assert_eq!(ma.mtime, mb.mtime, "root directory: mtime");
}

/// Fail unless restored entry `b` has the type, symlink target, content and (but for a
/// symlink) permission bits of source entry `a`; `p` names it.
pub fn assert_same_entry(p: &dyn std::fmt::Display, a: &Entry, b: &Entry) {
    assert_eq!(a.kind, b.kind, "{p}: type");
    assert_eq!(a.target, b.target, "{p}: symlink target");
    if a.content != b.content {
        panic!(
            "{p}: content differs ({} bytes in the source, {} restored)",
            a.content.as_ref().map_or(0, Vec::len),
            b.content.as_ref().map_or(0, Vec::len)
        );
    }
    if a.kind != Kind::Symlink {
        assert_eq!(format!("{:o}", a.mode), format!("{:o}", b.mode), "{p}: permission bits");
    }
}

/// The repository's largest data blob, through the library's index reader: (its pack's hex
/// id, its header entry). Panics when the repository has none.
pub fn largest_data_blob(repo: &Repo) -> (String, cairn::pack::BlobEntry) {
    let backend: std::sync::Arc<dyn cairn::backend::Backend> =
        std::sync::Arc::new(cairn::backend::local::LocalBackend::new(&repo.path));
    let r = cairn::repository::Repository::open(backend, PASSWORD.as_bytes()).expect("open the repository");
    r.index_files()
        .expect("read the index files")
        .into_iter()
        .flat_map(|(_, f)| f.packs)
        .flat_map(|p| p.blobs.into_iter().map(move |b| (p.id.to_hex(), b)))
        .filter(|(_, b)| b.kind() == Some(cairn::blob::BlobType::Data))
        .max_by_key(|(_, b)| b.length)
        .expect("a data blob")
}

/// Damage the repository's largest data blob: one byte in its middle, in its pack file.
/// Returns (the pack's hex id, the blob's entry).
pub fn damage_largest_data_blob(repo: &Repo) -> (String, cairn::pack::BlobEntry) {
    let (pack, blob) = largest_data_blob(repo);
    let path = repo.path.join("data").join(&pack[..2]).join(&pack);
    let mut bytes = fs::read(&path).expect("read the pack");
    let at = blob.offset as usize + blob.length as usize / 2;
    bytes[at] ^= 0x55;
    fs::write(&path, bytes).expect("write the damaged pack");
    (pack, blob)
}

/// `promtool check metrics` on `text`: its exit status must be 0 (no format error, no lint
/// problem).
pub fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; bash .ci/test installs it)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- file:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
