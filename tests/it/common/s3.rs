//! A real S3 server for the tests: s3s-fs on 127.0.0.1, one process per test with its own
//! root directory (installed by `.ci/test`; the tests fail, never skip, when it is missing),
//! and cairn invocations that reach it with the test credentials and a private cache.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use cairn::backend::{Backend, BackendOptions};

pub const ACCESS_KEY: &str = "cairn-test-access-key";
pub const SECRET_KEY: &str = "cairn-test-secret-key-0123456789";
pub const BUCKET: &str = "bkt";

// ---------------------------------------------------------------------------------------------
// Harness: finding (or installing) s3s-fs, running one server per test
// ---------------------------------------------------------------------------------------------

/// Where `.ci/test` installs tools (`cargo install --root`): `<CARGO_TARGET_DIR or ./target>/tools`.
pub fn tools_root() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d.join("tools")
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(d).join("tools")
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"),
    }
}

pub fn is_executable(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Where s3s-fs is looked for: $PATH, ~/.cargo/bin, `<target>/tools/bin`, `./target/tools/bin`.
pub fn s3s_fs_candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("s3s-fs")));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates.push(tools_root().join("bin/s3s-fs"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/s3s-fs"));
    candidates
}

/// The s3s-fs binary. The tests only look for it (`.ci/test` installs it); when it is missing
/// every S3 test fails, never skips, saying where it looked and how to install it.
pub fn s3s_fs_bin() -> PathBuf {
    let candidates = s3s_fs_candidates();
    match candidates.iter().find(|p| is_executable(p)) {
        Some(p) => p.clone(),
        None => panic!(
            "the S3 tests need the s3s-fs server and it is missing (looked in $PATH, ~/.cargo/bin and {}).\n\
             .ci/test installs it; by hand: cargo install s3s-fs --version 0.14.1 --features binary --locked --root {}",
            tools_root().join("bin").display(),
            tools_root().display()
        ),
    }
}

/// The test process talks S3 through the library too: put the credentials in its own
/// environment, once (std's environment lock makes this safe against concurrent readers).
pub fn set_credentials_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::set_var("AWS_SESSION_TOKEN", "");
        std::env::set_var("AWS_PROFILE", "");
    });
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// One s3s-fs process serving its own root directory on 127.0.0.1; killed on drop.
pub struct S3Server {
    bin: PathBuf,
    pub tmp: Tmp,
    /// The server's root directory (a bucket is a directory in it).
    pub root: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// A server on a free port with a fresh root holding the bucket [`BUCKET`].
    pub fn start() -> S3Server {
        set_credentials_env();
        let bin = s3s_fs_bin();
        let tmp = Tmp::new();
        let root = tmp.join("root");
        fs::create_dir_all(root.join(BUCKET)).unwrap();
        let mut s = S3Server { bin, tmp, root, port: free_port(), child: None };
        s.spawn();
        s
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.join("s3s-fs.log")
    }

    /// Start the process and wait (up to 10 s) until the port accepts connections. A port
    /// that is briefly unavailable after a stop is retried.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
            let mut cmd = Command::new(&self.bin);
            cmd.args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
            // SAFETY: prctl is async-signal-safe: the server dies with the thread that started it
            // even if the test process is killed before it can drop the server.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    if Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        break; // port not free yet (a restart): start again
                    }
                    panic!(
                        "s3s-fs exited ({status}) before accepting connections on port {}:\n{}",
                        self.port,
                        fs::read_to_string(self.log_path()).unwrap_or_default()
                    );
                }
                if TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(200)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "s3s-fs did not accept connections on port {} within 10 s:\n{}",
                        self.port,
                        fs::read_to_string(self.log_path()).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kill the server (SIGKILL: no clean shutdown) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same root and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `s3:http://127.0.0.1:PORT/bkt/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{BUCKET}/{prefix}", self.port)
    }

    /// The directory holding the objects below `prefix`.
    pub fn dir(&self, prefix: &str) -> PathBuf {
        self.root.join(BUCKET).join(prefix)
    }

    /// The S3 backend for `prefix`, opened as the CLI opens it.
    pub fn backend(&self, prefix: &str, opts: &[(&str, &str)]) -> Arc<dyn Backend> {
        open_s3(&self.url(prefix), opts)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn open_s3(url: &str, opts: &[(&str, &str)]) -> Arc<dyn Backend> {
    set_credentials_env();
    let mut o = BackendOptions::default();
    for (k, v) in opts {
        o.options.insert(k.to_string(), v.to_string());
    }
    match cairn::backend::open_location(url, &o) {
        Ok(b) => b,
        Err(e) => panic!("open_location({url}): {e}"),
    }
}

/// A cairn invocation on an S3 repository with credentials and a private cache directory.
pub fn s3_cmd(url: &str, cache: &Path) -> Cmd {
    cairn()
        .arg("-r")
        .arg(url)
        .arg("--cache-dir")
        .arg(cache)
        .password(PASSWORD)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_PROFILE", "")
}
