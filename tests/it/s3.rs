//! S3 tests: the storage backends against a real S3 server (s3s-fs on 127.0.0.1), failure
//! handling (cut connections, a killed server, injected faults) and the CLI end to end.
//!
//! Every test starts its own s3s-fs on a free port with its own root directory; credentials
//! reach cairn through AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the metadata cache always
//! lives in a temporary directory. The tests find s3s-fs (installed by `.ci/test`, see
//! [`s3s_fs_bin`]) and fail, never skip, when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::s3::*;
use crate::common::*;
use bytes::Bytes;
use cairn::backend::local::LocalBackend;
use cairn::backend::retry::RetryBackend;
use cairn::backend::{
    Backend, BackendError, BackendOptions, BackendResult, ErrorKind, FileKind, Properties, StagedFile,
};
use filetime::FileTime;
use serde_json::Value;

const MIB: usize = 1 << 20;
/// A cairn process running in the background (for tests that act while it runs).
struct Background {
    child: Child,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
}

fn spawn_cairn(args: &[OsString]) -> Background {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args);
    for k in ["CAIRN_REPOSITORY", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND", "CAIRN_CACHE_DIR"] {
        cmd.env_remove(k);
    }
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_PROFILE", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid and prctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start cairn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    Background { child, out: Some(out), err: Some(err) }
}

impl Background {
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait (at most `limit`) and return (exit code, stdout, stderr).
    fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = String::from_utf8_lossy(&self.err.take().unwrap().join().unwrap()).into_owned();
                panic!("cairn did not finish within {limit:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = String::from_utf8_lossy(&self.out.take().unwrap().join().unwrap()).into_owned();
        let err = String::from_utf8_lossy(&self.err.take().unwrap().join().unwrap()).into_owned();
        (status.code().unwrap_or_else(|| panic!("cairn killed by a signal: {status:?}\n{err}")), out, err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Fast deterministic incompressible bytes (xorshift64*), for large inputs.
fn fast_random(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    if s == 0 {
        s = 1;
    }
    let mut words = vec![0u64; len.div_ceil(8)];
    for w in words.iter_mut() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        *w = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    let mut v: Vec<u8> = Vec::with_capacity(words.len() * 8);
    for w in &words {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// An id (its name: 64 hex digits).
fn hex_name(i: u64) -> cairn::id::Id {
    cairn::id::Id::of_bytes(&i.to_le_bytes())
}

/// Names (and sizes) of the regular files directly in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let md = e.metadata().unwrap();
            if md.is_file() {
                m.insert(e.file_name().to_string_lossy().into_owned(), md.len());
            }
        }
    }
    m
}

/// Pack objects (name, size) below `<repo dir>/data/*/`.
fn pack_files(repo_dir: &Path) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(repo_dir.join("data")) {
        for d in rd.flatten() {
            m.extend(files_in(&d.path()));
        }
    }
    m
}

/// Assert that `dst` holds exactly the entries of `src` with the same type, content, mode,
/// symlink target and mtime; one entry in memory at a time (the trees may be large).
fn assert_same_tree(src: &Path, dst: &Path) {
    fn names(d: &Path) -> BTreeSet<OsString> {
        fs::read_dir(d)
            .unwrap_or_else(|e| panic!("list {}: {e}", d.display()))
            .map(|e| e.unwrap().file_name())
            .collect()
    }
    fn cmp(a: &Path, b: &Path, root: bool) {
        let (ea, eb) = (describe(a), describe(b));
        let p = a.display();
        assert_same_entry(&p, &ea, &eb);
        assert_eq!(ea.mtime, eb.mtime, "{p}: mtime (secs, nanos){}", if root { " of the root" } else { "" });
        if ea.kind == Kind::Dir {
            let (na, nb) = (names(a), names(b));
            assert_eq!(na, nb, "{p}: directory entries");
            for n in na {
                cmp(&a.join(&n), &b.join(&n), false);
            }
        }
    }
    cmp(src, dst, true);
}

/// Set distinct mtimes (with nanoseconds) on every entry below and including `root`,
/// deepest first so that a directory's time is the last change to it.
fn set_times(root: &Path) {
    let mut all: Vec<PathBuf> = listing(root).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, rel) in all.iter().enumerate() {
        let t = FileTime::from_unix_time(1_600_000_000 + 7919 * i as i64, 123_456_789 + 1_001 * i as u32);
        filetime::set_symlink_file_times(root.join(rel), t, t).unwrap();
    }
    let t = FileTime::from_unix_time(1_500_000_000, 987_654_321);
    filetime::set_symlink_file_times(root, t, t).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn as_u64(v: &Value, what: &str) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

// ---------------------------------------------------------------------------------------------
// 1. Backend conformance: one suite, run on the local backend and on S3
// ---------------------------------------------------------------------------------------------

/// The library's conformance suite, then where the storage keeps a pack: `pack_file(name)`
/// is the file of pack `name` on disk (the local repository directory, or the S3 server's
/// root), to check the layout of repo-format.md.
fn conformance(b: &dyn Backend, pack_file: &dyn Fn(&cairn::id::Id) -> PathBuf) {
    let loc = b.location();
    cairn::backend::conformance::run(b, 1100).unwrap_or_else(|e| panic!("conformance: {e}"));
    for data in [fast_random(11, 300_000), b"second".to_vec()] {
        let name = cairn::backend::conformance::name_of(&data);
        b.write(FileKind::Pack, &name, &data).unwrap();
        let on_disk = pack_file(&name);
        assert!(on_disk.ends_with(format!("data/{}/{name}", &name.to_hex()[..2])), "{}", on_disk.display());
        assert_eq!(
            fs::read(&on_disk).unwrap_or_else(|e| panic!("{loc}: pack not at {}: {e}", on_disk.display())),
            data
        );
        b.remove(FileKind::Pack, &name).unwrap();
        assert!(!pack_file(&name).exists(), "{loc}: removed pack still stored");
    }
}

#[test]
fn backend_conformance_local() {
    let tmp = Tmp::new();
    let root = tmp.join("repo");
    let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
    conformance(&*b, &|name| root.join(FileKind::Pack.path(name)));
}

#[test]
fn backend_conformance_s3() {
    let server = S3Server::start();
    let b = server.backend("conf/deep", &[]);
    assert_eq!(b.location(), format!("s3:http://127.0.0.1:{}/{BUCKET}/conf/deep", server.port));
    let dir = server.dir("conf/deep");
    conformance(&*b, &|name| dir.join(FileKind::Pack.path(name)));
    assert_eq!(b.properties(), cairn::backend::Properties::S3);
    // Through the metadata cache, and with each upload checksum the server checks.
    let cache = Tmp::new();
    let cached = cairn::backend::cache::CacheBackend::new(server.backend("conf/cached", &[]), cache.join("c/repo"));
    cairn::backend::conformance::run(&cached, 20).unwrap_or_else(|e| panic!("through the cache: {e}"));
    for sum in ["crc32c", "none"] {
        let b = server.backend(&format!("conf/{sum}"), &[("s3.checksum", sum)]);
        cairn::backend::conformance::run(&*b, 20).unwrap_or_else(|e| panic!("s3.checksum={sum}: {e}"));
    }
    let mut o = BackendOptions::default();
    o.options.insert("s3.checksum".into(), "sha1".into());
    assert!(matches!(cairn::backend::open_location(&server.url("x"), &o), Err(cairn::Error::Usage(_))));
    // Nothing was stored outside the prefix.
    let top: Vec<_> = fs::read_dir(server.root.join(BUCKET)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top, vec![OsString::from("conf")]);
}

// ---------------------------------------------------------------------------------------------
// 2. A cut connection never leaves a partial object
// ---------------------------------------------------------------------------------------------

/// What the proxy does to client → server traffic. A change of mode starts a new epoch: every
/// connection (new or pooled) counts its bytes from the start of the epoch.
struct ProxyMode {
    epoch: u64,
    /// Close a connection once it has carried this many bytes in this epoch...
    limit: u64,
    /// ...this many more times (0: pass everything).
    cuts_left: u64,
    /// Close every connection that sends a chunk containing these bytes (a request line
    /// such as `GET /bkt/repo/data/...`), counted as a cut.
    block: Option<Vec<u8>>,
    /// Pace client → server traffic to this many bytes per second, all connections
    /// together (a slow uplink).
    rate: Option<u64>,
    /// Flip the byte at this offset of the next connection to reach it in this epoch (a
    /// bit error the TCP checksum missed), once.
    flip: Option<u64>,
}

/// A TCP proxy to 127.0.0.1:`upstream` (a thread per connection and direction) that can cut
/// connections: close both ways after N bytes client → server.
struct Proxy {
    port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    /// Connections closed by a cut.
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(ProxyMode {
            epoch: 0,
            limit: u64::MAX,
            cuts_left: 0,
            block: None,
            rate: None,
            flip: None,
        }));
        let schedule = Arc::new(Mutex::new(Instant::now()));
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, c, st, sch) = (mode.clone(), cuts.clone(), stop.clone(), schedule.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (m, c, sch) = (m.clone(), c.clone(), sch.clone());
                std::thread::spawn(move || Proxy::relay(client, upstream, m, c, sch));
            }
        });
        Proxy { port, mode, cuts, stop }
    }

    fn relay(
        mut client: TcpStream,
        upstream: u16,
        mode: Arc<Mutex<ProxyMode>>,
        cuts: Arc<AtomicUsize>,
        schedule: Arc<Mutex<Instant>>,
    ) {
        let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
        let mut buf = vec![0u8; 64 * 1024];
        let (mut epoch, mut sent) = (mode.lock().unwrap().epoch, 0u64);
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
            };
            let (cut_at, rate) = {
                let mut m = mode.lock().unwrap();
                if m.epoch != epoch {
                    (epoch, sent) = (m.epoch, 0);
                }
                if let Some(f) = m.flip.filter(|f| (sent..sent + n as u64).contains(f)) {
                    buf[(f - sent) as usize] ^= 0xff;
                    m.flip = None;
                }
                if m.block.as_ref().is_some_and(|b| contains(&buf[..n], b)) {
                    (Some(0), None)
                } else if m.cuts_left > 0 && sent + n as u64 > m.limit {
                    m.cuts_left -= 1;
                    (Some((m.limit - sent) as usize), None)
                } else {
                    (None, m.rate)
                }
            };
            if let Some(rate) = rate {
                let until = {
                    let mut next = schedule.lock().unwrap();
                    *next = (*next).max(Instant::now()) + Duration::from_secs_f64(n as f64 / rate as f64);
                    *next
                };
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            if let Some(k) = cut_at {
                // Counted before the client can see the cut.
                cuts.fetch_add(1, Ordering::SeqCst);
                let _ = server.write_all(&buf[..k]);
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            if server.write_all(&buf[..n]).is_err() {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            sent += n as u64;
        }
    }

    fn set(&self, limit: u64, cuts_left: u64) {
        let mut m = self.mode.lock().unwrap();
        m.epoch += 1;
        m.limit = limit;
        m.cuts_left = cuts_left;
        m.block = None;
        m.rate = None;
        m.flip = None;
    }

    /// Cut the next `times` connections that carry more than `bytes` client → server.
    fn cut(&self, bytes: u64, times: u64) {
        self.set(bytes, times);
    }

    fn pass_through(&self) {
        self.set(u64::MAX, 0);
    }

    /// Cut every connection that sends `pattern` (until the next mode change).
    fn block(&self, pattern: &str) {
        self.set(u64::MAX, 0);
        self.mode.lock().unwrap().block = Some(pattern.as_bytes().to_vec());
    }

    /// Pace client → server traffic to `bytes_per_sec`, all connections together.
    fn throttle(&self, bytes_per_sec: u64) {
        self.set(u64::MAX, 0);
        self.mode.lock().unwrap().rate = Some(bytes_per_sec);
    }

    /// Flip the byte at `offset` of the next connection that carries that many bytes.
    fn flip(&self, offset: u64) {
        self.set(u64::MAX, 0);
        self.mode.lock().unwrap().flip = Some(offset);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn s3_cut_upload_is_never_visible() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port);
    let via_proxy =
        open_s3(&format!("s3:http://127.0.0.1:{}/{BUCKET}/cut", proxy.port), &[("retries", "0"), ("timeout", "5")]);
    let direct = server.backend("cut", &[]);
    let data = fast_random(21, 2 * MIB);
    let name = hex_name(21);

    // Every connection dies after 256 KiB of request: the write fails, nothing is stored.
    proxy.cut(256 * 1024, u64::MAX);
    let t = Instant::now();
    let err = via_proxy.write(FileKind::Pack, &name, &data).expect_err("a write over a cut connection must fail");
    assert!(t.elapsed() < Duration::from_secs(15), "the failed write took {:?}", t.elapsed());
    assert_eq!(proxy.cuts(), 1, "retries=0: exactly one attempt, cut once (error: {err})");
    assert_eq!(err.kind, ErrorKind::Transient, "a dropped connection is worth retrying: {err}");
    assert!(err.context.contains(&format!("data/{}/{name}", &name.to_hex()[..2])), "the error names the object: {err}");
    // The server may still be noticing the broken request: look twice.
    for _ in 0..2 {
        assert!(!direct.list(FileKind::Pack).unwrap().iter().any(|(n, _)| *n == name), "partial upload listed");
        assert!(!direct.exists(FileKind::Pack, &name).unwrap(), "partial upload visible");
        assert!(
            pack_files(&server.dir("cut")).is_empty(),
            "partial upload stored: {:?}",
            pack_files(&server.dir("cut"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Same write with the connection intact: stored complete.
    proxy.pass_through();
    via_proxy.write(FileKind::Pack, &name, &data).unwrap_or_else(|e| panic!("write through the healthy proxy: {e}"));
    assert_eq!(direct.list(FileKind::Pack).unwrap(), vec![(name, data.len() as u64)]);
    assert!(direct.read(FileKind::Pack, &name).unwrap() == data, "read back (direct) differs");
    assert!(via_proxy.read(FileKind::Pack, &name).unwrap() == data, "read back (proxy) differs");
    assert_eq!(proxy.cuts(), 1);

    // With retries allowed, one cut connection is survived: the next attempt succeeds.
    let retrying =
        open_s3(&format!("s3:http://127.0.0.1:{}/{BUCKET}/cut", proxy.port), &[("retries", "3"), ("timeout", "5")]);
    let name2 = hex_name(22);
    proxy.cut(100 * 1024, 1);
    retrying
        .write(FileKind::Pack, &name2, &data)
        .unwrap_or_else(|e| panic!("a retried write after one cut connection: {e}"));
    assert_eq!(proxy.cuts(), 2, "the first attempt was not cut");
    assert!(direct.read(FileKind::Pack, &name2).unwrap() == data);
    assert_eq!(direct.list(FileKind::Pack).unwrap().len(), 2);
}

/// A byte flipped on the way (an error the TCP checksum missed) is caught by the upload
/// checksum: the server refuses the object (S3 then stores nothing), the failure is transient
/// and a retry sends the bytes again. Without the checksum the damaged object is stored (which shows the flip happened).
#[test]
fn s3_upload_checksum_refuses_a_body_damaged_in_transit() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port);
    let data = fast_random(23, 300_000);
    let direct = server.backend("flip", &[]);
    for (sum, name) in [("md5", hex_name(41)), ("crc32c", hex_name(42))] {
        let via_proxy = open_s3(
            &format!("s3:http://127.0.0.1:{}/{BUCKET}/flip", proxy.port),
            &[("retries", "0"), ("timeout", "5"), ("s3.checksum", sum)],
        );
        proxy.flip(200_000);
        let err = via_proxy.write(FileKind::Pack, &name, &data).expect_err("a damaged upload must be refused");
        assert_eq!(err.kind, ErrorKind::Transient, "{sum}: bytes damaged on the way are worth sending again: {err}");
        assert!(err.to_string().contains("BadDigest"), "{sum}: the server's refusal is named: {err}");
        // S3 stores nothing then; s3s-fs 0.14 renames the object into place before it checks
        // the digest, so a retry (which sends the bytes again) must replace it.
        let retried = open_s3(
            &format!("s3:http://127.0.0.1:{}/{BUCKET}/flip", proxy.port),
            &[("retries", "1"), ("timeout", "5"), ("s3.checksum", sum)],
        );
        proxy.flip(200_000);
        retried.write(FileKind::Pack, &name, &data).unwrap_or_else(|e| panic!("{sum}: the retry failed: {e}"));
        assert!(direct.read(FileKind::Pack, &name).unwrap() == data, "{sum}: the retry did not store the bytes");
    }
    let unchecked = open_s3(
        &format!("s3:http://127.0.0.1:{}/{BUCKET}/flip", proxy.port),
        &[("retries", "0"), ("timeout", "5"), ("s3.checksum", "none")],
    );
    let name = hex_name(43);
    proxy.flip(200_000);
    unchecked.write(FileKind::Pack, &name, &data).expect("without a checksum the server cannot tell");
    assert!(direct.read(FileKind::Pack, &name).unwrap() != data, "the proxy did not flip a byte");
}

// ---------------------------------------------------------------------------------------------
// 3. Retries, failure classes, truncated reads (fault injection)
// ---------------------------------------------------------------------------------------------

/// Wraps a backend and injects faults: transient errors before success, permanent errors,
/// and reads that return fewer bytes than asked with Ok.
struct Faulty<B> {
    inner: B,
    /// Calls that reached this wrapper (the retry wrapper's attempts).
    calls: AtomicU32,
    /// Fail this many next calls transiently.
    transient: AtomicU32,
    /// Fail every call permanently.
    permanent: AtomicBool,
    /// `read_range` returns one byte less than asked.
    truncate_ranges: AtomicBool,
    /// `read_range_cached` (tree reads) returns one byte less than asked.
    truncate_cached_ranges: AtomicBool,
    /// Whole-file reads of this kind lose their last byte.
    truncate_reads: Mutex<Option<FileKind>>,
}

impl<B: Backend> Faulty<B> {
    fn new(inner: B) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            calls: AtomicU32::new(0),
            transient: AtomicU32::new(0),
            permanent: AtomicBool::new(false),
            truncate_ranges: AtomicBool::new(false),
            truncate_cached_ranges: AtomicBool::new(false),
            truncate_reads: Mutex::new(None),
        })
    }

    fn inject(&self, what: String) -> BackendResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.permanent.load(Ordering::SeqCst) {
            return Err(BackendError {
                kind: ErrorKind::Permanent,
                context: what,
                source: "injected: access denied".into(),
            });
        }
        if self.transient.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(BackendError {
                kind: ErrorKind::Transient,
                context: what,
                source: "injected: connection reset".into(),
            });
        }
        Ok(())
    }

    fn reset(&self) {
        self.calls.store(0, Ordering::SeqCst);
    }
}

fn shorten(mut v: Vec<u8>) -> Vec<u8> {
    v.pop();
    v
}

impl<B: Backend> Backend for Faulty<B> {
    fn location(&self) -> String {
        format!("faulty:{}", self.inner.location())
    }
    fn properties(&self) -> Properties {
        self.inner.properties()
    }
    fn create(&self) -> BackendResult<()> {
        self.inject("create".into())?;
        self.inner.create()
    }
    fn write_bytes(&self, kind: FileKind, name: &cairn::id::Id, data: Bytes) -> BackendResult<()> {
        self.inject(format!("write {}", kind.path(name)))?;
        self.inner.write_bytes(kind, name, data)
    }
    fn read(&self, kind: FileKind, name: &cairn::id::Id) -> BackendResult<Vec<u8>> {
        self.inject(format!("read {}", kind.path(name)))?;
        let v = self.inner.read(kind, name)?;
        Ok(if *self.truncate_reads.lock().unwrap() == Some(kind) { shorten(v) } else { v })
    }
    fn read_range(&self, kind: FileKind, name: &cairn::id::Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        self.inject(format!("read range of {}", kind.path(name)))?;
        let v = self.inner.read_range(kind, name, offset, length)?;
        Ok(if self.truncate_ranges.load(Ordering::SeqCst) { shorten(v) } else { v })
    }
    fn read_range_cached(
        &self,
        kind: FileKind,
        name: &cairn::id::Id,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        self.inject(format!("read range of {}", kind.path(name)))?;
        let v = self.inner.read_range_cached(kind, name, offset, length)?;
        Ok(if self.truncate_cached_ranges.load(Ordering::SeqCst) { shorten(v) } else { v })
    }
    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        self.inject(format!("list {}", kind.dir()))?;
        self.inner.list_names(kind)
    }
    fn remove(&self, kind: FileKind, name: &cairn::id::Id) -> BackendResult<()> {
        self.inject(format!("remove {}", kind.path(name)))?;
        self.inner.remove(kind, name)
    }
    fn exists(&self, kind: FileKind, name: &cairn::id::Id) -> BackendResult<bool> {
        self.inject(format!("stat {}", kind.path(name)))?;
        self.inner.exists(kind, name)
    }
    fn stage(&self, kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        self.inject(format!("stage {}", kind.dir()))?;
        self.inner.stage(kind)
    }
    fn remove_stale_temporaries(&self, age: Duration) -> BackendResult<(u64, u64)> {
        self.inject("remove stale temporaries".into())?;
        self.inner.remove_stale_temporaries(age)
    }
}

#[test]
fn retry_policy_classifies_failures() {
    let tmp = Tmp::new();
    let local = LocalBackend::new(tmp.join("repo"));
    local.create().unwrap();
    let faulty = Faulty::new(local);
    let retry = RetryBackend::with_policy(faulty.clone(), 4, Duration::from_millis(1), Duration::from_millis(5));
    let name = hex_name(31);

    // Transient failures within the budget are retried until the call succeeds.
    faulty.reset();
    faulty.transient.store(3, Ordering::SeqCst);
    retry
        .write_bytes(FileKind::Index, &name, Bytes::from_static(b"index bytes"))
        .unwrap_or_else(|e| panic!("3 transient failures, 4 attempts: {e}"));
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 4, "3 failed attempts and 1 good one");
    assert_eq!(faulty.inner.read(FileKind::Index, &name).unwrap(), b"index bytes");

    faulty.reset();
    faulty.transient.store(2, Ordering::SeqCst);
    assert_eq!(retry.read(FileKind::Index, &name).unwrap(), b"index bytes");
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 3);

    faulty.reset();
    faulty.transient.store(1, Ordering::SeqCst);
    assert_eq!(retry.list(FileKind::Index).unwrap(), vec![(name, 11)]);
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 2);

    // No fault: one call.
    faulty.reset();
    assert!(retry.exists(FileKind::Index, &name).unwrap());
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 1);

    // Permanent failures are not retried.
    faulty.reset();
    faulty.permanent.store(true, Ordering::SeqCst);
    let e = retry.write_bytes(FileKind::Index, &hex_name(32), Bytes::from_static(b"x")).expect_err("permanent failure");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 1, "a permanent failure was retried");
    assert!(!e.context.contains("gave up"), "{e}");
    faulty.permanent.store(false, Ordering::SeqCst);

    // Not found is an answer, not a failure to retry.
    faulty.reset();
    let e = retry.read(FileKind::Snapshot, &hex_name(33)).expect_err("missing file");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 1, "a not-found answer was retried");

    // Transient failures beyond the budget: exactly `attempts` calls, then an error that says so.
    faulty.reset();
    faulty.transient.store(100, Ordering::SeqCst);
    let e = retry
        .write_bytes(FileKind::Index, &hex_name(34), Bytes::from_static(b"y"))
        .expect_err("transient failures beyond the budget");
    assert_eq!(e.kind, ErrorKind::Transient);
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 4, "attempts made");
    assert!(e.context.contains("gave up after 4 attempts"), "context: {}", e.context);
    assert!(e.context.contains("write index/"), "the context names the operation: {}", e.context);
    assert!(e.to_string().contains("injected: connection reset"), "the cause is kept: {e}");
    assert!(!faulty.inner.exists(FileKind::Index, &hex_name(34)).unwrap());
    faulty.transient.store(0, Ordering::SeqCst);

    // attempts = 1 (retries=0): a transient failure is reported at once.
    let once = RetryBackend::with_policy(faulty.clone(), 1, Duration::from_millis(1), Duration::from_millis(5));
    faulty.reset();
    faulty.transient.store(1, Ordering::SeqCst);
    assert_eq!(once.read(FileKind::Index, &name).expect_err("no retries").kind, ErrorKind::Transient);
    assert_eq!(faulty.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn truncated_reads_are_corruption_never_wrong_data() {
    use cairn::archiver::{self, BackupOptions, Progress, Source};
    use cairn::blob::BlobType;
    use cairn::repository::{InitOptions, Repository};
    use cairn::restorer::{self, RestoreOptions};

    let tmp = Tmp::new();
    let repo_dir = tmp.join("repo");
    let content = fast_random(41, 3 * MIB + 12345);
    {
        let repo =
            Repository::init(Arc::new(LocalBackend::new(&repo_dir)), PASSWORD.as_bytes(), &InitOptions::default())
                .unwrap();
        let index = repo.load_index().unwrap();
        let mut reader: &[u8] = &content;
        let lock = cairn::lock::AppendLock::acquire(&repo, "backup", &Default::default()).unwrap();
        let r = archiver::backup(
            &cairn::Ctx::default(),
            archiver::Permit::Write(&lock),
            &repo,
            &index,
            Source::Stream { name: "data.bin".into(), reader: &mut reader },
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
        assert!(r.id.is_some());
    }

    let faulty = Faulty::new(LocalBackend::new(&repo_dir));
    let repo = Repository::open(faulty.clone(), PASSWORD.as_bytes()).unwrap();
    let index = repo.load_index().unwrap();
    let (_, snap) = repo.find_snapshot(&Default::default(), "latest", &Default::default()).unwrap();
    let tree = repo.load_tree(&index, &snap.tree).unwrap();
    assert_eq!(tree.nodes.len(), 1);
    let blobs = tree.nodes[0].content.clone();
    assert!(blobs.len() >= 2, "expected several chunks, got {}", blobs.len());

    // Untouched reads give the content back (so the wrapper itself is sound).
    let mut joined = Vec::new();
    for id in &blobs {
        joined.extend(repo.read_blob(&index, BlobType::Data, id).unwrap());
    }
    assert!(joined == content, "blobs do not join to the content");

    // A pack read that returns one byte less, with Ok: corruption, never data.
    faulty.truncate_ranges.store(true, Ordering::SeqCst);
    for id in &blobs {
        match repo.read_blob(&index, BlobType::Data, id) {
            Err(cairn::Error::Corrupt { object, .. }) => assert!(object.contains("blob"), "{object}"),
            Err(e) => panic!("truncated pack read: expected Corrupt, got {e:?}"),
            Ok(d) => panic!("truncated pack read returned {} bytes of data", d.len()),
        }
    }
    faulty.truncate_cached_ranges.store(true, Ordering::SeqCst);
    match repo.load_tree(&index, &snap.tree) {
        Err(cairn::Error::Corrupt { .. }) => {}
        other => panic!("truncated tree read: expected Corrupt, got {:?}", other.map(|t| t.nodes.len())),
    }
    faulty.truncate_cached_ranges.store(false, Ordering::SeqCst);

    // Restore with truncated data reads: the file is reported and not left behind.
    let target = tmp.join("target");
    let (ctx, lock, opts) = (cairn::Ctx::default(), cairn::lock::ReadLock::unlocked(), RestoreOptions::default());
    match restorer::restore(&ctx, &lock, &repo, &index, &snap.tree, &target, &opts) {
        Ok(report) => {
            assert!(!report.errors.is_empty(), "restore from truncated reads reported no error");
            assert!(!target.join("data.bin").exists(), "a file restored from truncated reads was left in place");
        }
        Err(e) => assert!(matches!(e, cairn::Error::Corrupt { .. }), "{e:?}"),
    }
    faulty.truncate_ranges.store(false, Ordering::SeqCst);
    let report = restorer::restore(&ctx, &lock, &repo, &index, &snap.tree, &target, &opts).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(fs::read(target.join("data.bin")).unwrap() == content);

    // A truncated whole-file read (an index file) is corruption as well.
    *faulty.truncate_reads.lock().unwrap() = Some(FileKind::Index);
    match repo.load_index() {
        Err(cairn::Error::Corrupt { object, .. }) => assert!(object.contains("index"), "{object}"),
        other => panic!("truncated index read: expected Corrupt, got {:?}", other.map(|i| i.len())),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The CLI on S3, exactly as on disk
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_end_to_end_on_s3() {
    let server = S3Server::start();
    let url = server.url("e2e");
    let cache = Tmp::new();
    let s3 = || s3_cmd(&url, &cache.path);

    let init = s3().arg("--json").arg("init").run().ok().json();
    assert!(is_hex(init["id"].as_str().unwrap_or_default(), 64), "{init}");
    assert!(server.dir("e2e").join("config").is_file(), "no config object on the server");
    assert_eq!(s3().arg("init").run().code, 1, "init over an existing repository");

    // A tree: nested directories, a 3 MB random file, a symlink, small files, modes, mtimes.
    let src = Tmp::new();
    let root = src.join("tree");
    write(root.join("a/b/c/deep.txt"), "deep inside\n");
    write(root.join("a/b/sibling.txt"), "sibling\n");
    write(root.join("a/x.txt"), "x\n");
    for i in 0..6 {
        write(root.join(format!("small{i}.txt")), format!("small file {i}\n").repeat(i + 1));
    }
    write(root.join("zero.bin"), b"");
    write(root.join("big/random3m.bin"), fast_random(51, 3_000_000));
    fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link")).unwrap();
    write(root.join("script.sh"), "#!/bin/sh\necho hi\n");
    chmod(&root.join("script.sh"), 0o755);
    chmod(&root.join("small0.txt"), 0o600);
    chmod(&root.join("a"), 0o750);
    set_times(&root);

    let s1 = s3().arg("--json").arg("backup").arg(&root).run().ok().json();
    assert_eq!(as_u64(&s1["total_bytes_processed"], "total_bytes_processed"), regular_file_bytes(&root));
    let id1 = s1["snapshot_id"].as_str().unwrap().to_string();

    let stream = fast_random(52, 5 * MIB + 777);
    let s2 = s3()
        .arg("--json")
        .arg("backup")
        .arg("--stdin")
        .arg("--stdin-filename")
        .arg("stream.bin")
        .stdin(stream.clone())
        .run()
        .ok()
        .json();
    assert_eq!(as_u64(&s2["total_bytes_processed"], "total_bytes_processed"), stream.len() as u64);
    let id2 = s2["snapshot_id"].as_str().unwrap().to_string();

    let snaps = match s3().arg("--json").arg("snapshots").run().ok().json() {
        Value::Array(a) => a,
        v => panic!("snapshots --json: {v}"),
    };
    let listed: BTreeSet<String> = snaps.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, BTreeSet::from([id1.clone(), id2.clone()]));
    let paths_of = |id: &str| snaps.iter().find(|s| s["id"] == id).unwrap()["paths"].clone();
    assert_eq!(paths_of(&id1), serde_json::json!([root.to_str().unwrap()]));
    assert_eq!(paths_of(&id2), serde_json::json!(["/stream.bin"]));
    // The objects are on the server, in restic's layout.
    let dir = server.dir("e2e");
    assert_eq!(files_in(&dir.join("snapshots")).into_keys().collect::<BTreeSet<_>>(), listed);
    assert!(!files_in(&dir.join("index")).is_empty());
    assert!(!files_in(&dir.join("keys")).is_empty());
    assert!(pack_files(&dir).keys().all(|n| is_hex(n, 64)) && !pack_files(&dir).is_empty());

    // Restore the latest snapshot of each source.
    let t1 = Tmp::new();
    s3().args(["restore", "latest", "--path"]).arg(&root).arg("--target").arg(&t1.path).run().ok();
    assert_same_tree(&root, &restored(&t1.path, &root));
    let t2 = Tmp::new();
    s3().args(["restore", "latest", "--path", "/stream.bin", "--target"]).arg(&t2.path).run().ok();
    let got = fs::read(t2.join("stream.bin")).expect("restored stream.bin");
    assert!(got == stream, "restored stdin content differs ({} bytes, expected {})", got.len(), stream.len());
    assert_eq!(describe(&t2.join("stream.bin")).mode, 0o600);
    let names: Vec<_> = fs::read_dir(&t2.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsString::from("stream.bin")]);

    // The same snapshot restored by id, without the cache.
    let t3 = Tmp::new();
    s3().arg("--no-cache").args(["restore", &id1[..10], "--target"]).arg(&t3.path).run().ok();
    assert_same_tree(&root, &restored(&t3.path, &root));
}

#[test]
fn cli_exit_codes_on_s3() {
    let server = S3Server::start();
    let cache = Tmp::new();
    let url = server.url("codes");
    s3_cmd(&url, &cache.path).arg("init").run().ok();
    s3_cmd(&url, &cache.path).arg("snapshots").run().ok();

    let out = s3_cmd(&url, &cache.path).password("not the password").arg("snapshots").run().code(12);
    assert!(out.stderr.contains("wrong password"), "{}", out.stderr);

    let missing = server.url("codes/no/such/prefix");
    let out = s3_cmd(&missing, &cache.path).arg("snapshots").run().code(10);
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains(&format!("127.0.0.1:{}", server.port)),
        "{}",
        out.stderr
    );
    let src = Tmp::new();
    write(src.join("f"), "x");
    s3_cmd(&missing, &cache.path).arg("backup").arg(src.join("f")).run().code(10);
    assert!(!server.dir("codes/no").exists(), "a failed command created objects");
}

// ---------------------------------------------------------------------------------------------
// 5. The server dies in the middle of a backup
// ---------------------------------------------------------------------------------------------

#[test]
fn server_killed_mid_backup_then_next_backup_reuses_uploads() {
    let mut server = S3Server::start();
    let port = server.port;
    let url = server.url("kill/repo");
    let repo_dir = server.dir("kill/repo");
    let cache = Tmp::new();
    let s3 = || s3_cmd(&url, &cache.path);
    s3().arg("init").run().ok();

    // An earlier snapshot of a small tree.
    let small_src = Tmp::new();
    let small = small_src.join("small");
    write(small.join("one.txt"), "one\n");
    write(small.join("dir/two.bin"), fast_random(60, 200_000));
    std::os::unix::fs::symlink("one.txt", small.join("link")).unwrap();
    set_times(&small);
    let first = s3().arg("--json").arg("backup").arg(&small).run().ok().json();
    let small_id = first["snapshot_id"].as_str().unwrap().to_string();

    // ~120 MB of incompressible data in several files.
    let big_src = Tmp::new();
    let big = big_src.join("big");
    const FILES: usize = 6;
    const FILE_SIZE: usize = 20_000_000;
    for i in 0..FILES {
        write(big.join(format!("part{i}.bin")), fast_random(600 + i as u64, FILE_SIZE));
    }
    write(big.join("sub/note.txt"), "a small file among big ones\n");
    set_times(&big);
    let total = regular_file_bytes(&big);

    let packs_before = pack_files(&repo_dir);
    let mut args: Vec<OsString> = ["-r", &url, "--cache-dir"].iter().map(OsString::from).collect();
    args.push(cache.path.clone().into());
    args.extend(["-o", "retries=1", "-o", "timeout=5", "backup"].iter().map(OsString::from));
    args.push(big.clone().into());
    let mut bg = spawn_cairn(&args);

    // Kill the server once at least two new packs are stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let new = pack_files(&repo_dir).keys().filter(|k| !packs_before.contains_key(*k)).count();
        if new >= 2 {
            break;
        }
        assert!(bg.running(), "the backup ended before two packs were uploaded");
        assert!(Instant::now() < deadline, "no two packs uploaded within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    let (code, _out, err) = bg.wait(Duration::from_secs(60));
    assert_ne!(code, 0, "backup succeeded although the server was killed; stderr:\n{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "the error does not name the endpoint:\n{err}");
    // The failure is a pack upload; with retries=1 it was tried twice (a dead server is a
    // transient failure).
    assert!(err.contains("write data/"), "the error does not name the operation:\n{err}");
    assert!(err.contains("gave up after 2 attempts"), "-o retries=1 should make 2 attempts:\n{err}");
    let uploaded: BTreeMap<String, u64> =
        pack_files(&repo_dir).into_iter().filter(|(k, _)| !packs_before.contains_key(k)).collect();
    let uploaded_bytes: u64 = uploaded.values().sum();
    assert!(uploaded.len() >= 2 && uploaded_bytes >= 32 * MIB as u64, "uploaded before the kill: {uploaded:?}");
    assert!(files_in(&repo_dir.join("snapshots")).len() == 1, "a snapshot was written by the failed backup");

    // The server comes back on the same root and port; the next backup reuses the uploads.
    server.restart();
    let second = s3().arg("--json").arg("backup").arg(&big).run().ok().json();
    let added = as_u64(&second["data_added_packed"], "data_added_packed");
    assert_eq!(as_u64(&second["total_bytes_processed"], "total_bytes_processed"), total);
    assert!(
        added + uploaded_bytes - 2 * MIB as u64 <= total,
        "data_added_packed = {added} of {total} bytes: the {uploaded_bytes} bytes uploaded before the kill were not reused"
    );
    let stored = disk_usage(&repo_dir);
    assert!(stored < 2 * total, "repository holds {stored} bytes for {total} bytes of data");
    let big_id = second["snapshot_id"].as_str().unwrap().to_string();

    // Both snapshots restore identically.
    let snaps = match s3().arg("--json").arg("snapshots").run().ok().json() {
        Value::Array(a) => a,
        v => panic!("{v}"),
    };
    let ids: BTreeSet<String> = snaps.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, BTreeSet::from([small_id.clone(), big_id.clone()]));
    let t1 = Tmp::new();
    s3().args(["restore", &small_id, "--target"]).arg(&t1.path).run().ok();
    assert_same_tree(&small, &restored(&t1.path, &small));
    let t2 = Tmp::new();
    s3().args(["restore", &big_id, "--target"]).arg(&t2.path).run().ok();
    assert_same_tree(&big, &restored(&t2.path, &big));
}

// ---------------------------------------------------------------------------------------------
// 6. The local metadata cache
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_mirrors_index_and_snapshots_and_heals() {
    let server = S3Server::start();
    let url = server.url("cache");
    let repo_dir = server.dir("cache");
    let cache = Tmp::new();
    let d = cache.join("c");
    let s3 = || s3_cmd(&url, &d);
    let id = s3().arg("--json").arg("init").run().ok().json()["id"].as_str().unwrap().to_string();

    let src = Tmp::new();
    write(src.join("tree/a.txt"), "a\n");
    write(src.join("tree/b/c.bin"), fast_random(70, 500_000));
    let s1 = s3().arg("--json").arg("backup").arg(src.join("tree")).run().ok().json();
    write(src.join("tree/new.txt"), "new\n");
    let s2 = s3().arg("--json").arg("backup").arg(src.join("tree")).run().ok().json();

    let mine = d.join(&id);
    for kind in ["index", "snapshots"] {
        let server_side = files_in(&repo_dir.join(kind));
        let cached = files_in(&mine.join(kind));
        assert!(!server_side.is_empty(), "no {kind} objects on the server");
        assert_eq!(cached.keys().collect::<Vec<_>>(), server_side.keys().collect::<Vec<_>>(), "cached {kind} files");
        for name in cached.keys() {
            assert!(
                fs::read(mine.join(kind).join(name)).unwrap() == fs::read(repo_dir.join(kind).join(name)).unwrap(),
                "cached {kind}/{name} differs"
            );
        }
    }
    let want: BTreeSet<String> = [&s1, &s2].iter().map(|s| s["snapshot_id"].as_str().unwrap().to_string()).collect();
    let cached_snaps: BTreeSet<String> = files_in(&mine.join("snapshots")).into_keys().collect();
    assert_eq!(cached_snaps, want);

    // A damaged cached snapshot is detected and fetched again.
    let victim = s1["snapshot_id"].as_str().unwrap();
    let cached_file = mine.join("snapshots").join(victim);
    let mut bytes = fs::read(&cached_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&cached_file, &bytes).unwrap();
    let out = s3().arg("--json").arg("snapshots").run().ok();
    let listed: BTreeSet<String> = match out.json() {
        Value::Array(a) => a.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect(),
        v => panic!("{v}"),
    };
    assert_eq!(listed, want, "snapshots with a damaged cache entry");
    assert!(
        fs::read(&cached_file).unwrap() == fs::read(repo_dir.join("snapshots").join(victim)).unwrap(),
        "the damaged cache entry was not replaced"
    );

    // A damaged cached index file does not break a restore either.
    let idx = files_in(&mine.join("index")).into_keys().next().unwrap();
    let mut ib = fs::read(mine.join("index").join(&idx)).unwrap();
    ib[0] ^= 1;
    fs::write(mine.join("index").join(&idx), &ib).unwrap();
    let t = Tmp::new();
    s3().args(["restore", "latest", "--target"]).arg(&t.path).run().ok();
    assert_same_tree(&src.join("tree"), &restored(&t.path, &src.join("tree")));

    // --no-cache writes nothing to the cache directory.
    let fresh = cache.join("fresh");
    let nc = || s3_cmd(&url, &fresh).arg("--no-cache");
    nc().arg("snapshots").run().ok();
    nc().arg("backup").arg(src.join("tree")).run().ok();
    let t2 = Tmp::new();
    nc().args(["restore", "latest", "--target"]).arg(&t2.path).run().ok();
    assert!(!fresh.exists(), "--no-cache created {}", fresh.display());
}

// ---------------------------------------------------------------------------------------------
// 7. Storage failures are not damage; damage is not a storage failure (exit codes 13, 14, 15)
// ---------------------------------------------------------------------------------------------

/// A small tree with a data file of a few packs' worth, backed up to `url`.
fn small_backup(url: &str, cache: &Path, src: &Tmp) -> PathBuf {
    let root = src.join("tree");
    write(root.join("a.txt"), "a\n");
    write(root.join("dir/data.bin"), fast_random(80, 3 * MIB));
    s3_cmd(url, cache).arg("init").run().ok();
    s3_cmd(url, cache).arg("backup").arg(&root).run().ok();
    root
}

#[test]
fn unreachable_storage_is_reported_as_such_never_as_damage() {
    let mut server = S3Server::start();
    let proxy = Proxy::start(server.port);
    let cache = Tmp::new();
    let src = Tmp::new();
    let via_proxy = format!("s3:http://127.0.0.1:{}/{BUCKET}/unreach", proxy.port);
    small_backup(&via_proxy, &cache.path, &src);
    let cmd = || s3_cmd(&via_proxy, &cache.path).args(["-o", "retries=1", "-o", "timeout=5"]);

    // Index, snapshots and listings pass; every read of a pack is cut (the storage fails in
    // the middle of the command, after the repository was opened).
    proxy.block(&format!("/{BUCKET}/unreach/data/"));
    let out = cmd().arg("check").run().code(13);
    assert!(
        !out.stderr.contains("damaged") && !out.stdout.contains("damaged"),
        "check called an unreachable storage damage:\n{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("data/") && out.stderr.contains("gave up after 2 attempts"),
        "the error names the pack read and the retries:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("try again later"), "{}", out.stderr);
    let target = Tmp::new();
    let out = cmd().args(["restore", "latest", "--target"]).arg(&target.path).run().code(13);
    assert!(!out.stderr.contains("damaged"), "restore called an unreachable storage damage:\n{}", out.stderr);
    assert!(proxy.cuts() >= 4, "the pack reads were not cut ({} cuts)", proxy.cuts());

    // The server is gone altogether (reached directly: the connection is refused).
    let direct = server.url("unreach");
    server.stop();
    for args in [vec!["check"], vec!["restore", "latest", "--target", target.path.to_str().unwrap()], vec!["snapshots"]]
    {
        let out = s3_cmd(&direct, &cache.path).args(["-o", "retries=1"]).args(&args).run().code(13);
        assert!(
            out.stderr.contains("unreachable"),
            "{args:?}: the message does not say the endpoint is unreachable:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("damaged"), "{args:?}:\n{}", out.stderr);
    }
}

#[test]
fn damaged_pack_on_s3_exits_15_on_restore_and_check_lists_it() {
    let server = S3Server::start();
    let cache = Tmp::new();
    let src = Tmp::new();
    let url = server.url("dmg");
    let root = small_backup(&url, &cache.path, &src);
    // Flip a byte in the middle of the largest pack (data).
    let dir = server.dir("dmg");
    let (name, size) = pack_files(&dir).into_iter().max_by_key(|(_, s)| *s).unwrap();
    assert!(size > MIB as u64, "largest pack {name} has {size} bytes");
    let path = dir.join("data").join(&name[..2]).join(&name);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&path, &bytes).unwrap();

    let target = Tmp::new();
    let out = s3_cmd(&url, &cache.path).args(["restore", "latest", "--target"]).arg(&target.path).run().code(15);
    assert!(out.stderr.contains("damaged") && out.stderr.contains("check --read-data"), "{}", out.stderr);
    assert!(!restored(&target.path, &root).join("dir/data.bin").exists(), "the damaged file was restored");
    let out = s3_cmd(&url, &cache.path).args(["check", "--read-data"]).run().code(1);
    assert!(
        out.stdout.contains(&name) || out.stderr.contains(&name),
        "check does not list pack {name}:\n{}{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("damaged") || out.stderr.contains("damaged"), "{}{}", out.stdout, out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 8. A slow uplink: the timeout counts time without progress
// ---------------------------------------------------------------------------------------------

#[test]
fn slow_uplink_backup_succeeds_with_a_short_timeout() {
    let server = S3Server::start();
    let proxy = Proxy::start(server.port);
    let cache = Tmp::new();
    let url = format!("s3:http://127.0.0.1:{}/{BUCKET}/slow", proxy.port);
    s3_cmd(&url, &cache.path).arg("init").run().ok();
    let src = Tmp::new();
    let root = src.join("tree");
    // More than one full pack (16 MiB).
    write(root.join("big.bin"), fast_random(90, 20 * MIB));
    // The link carries 1 MiB/s: a 16 MiB pack takes 16 s, over three times the timeout.
    proxy.throttle(MIB as u64);
    let t = Instant::now();
    let out = s3_cmd(&url, &cache.path)
        .args(["-o", "timeout=5", "-o", "retries=0", "--limit-upload", "1024", "--json", "backup"])
        .arg(&root)
        .run()
        .ok();
    let took = t.elapsed();
    let summary = out.json();
    assert!(took > Duration::from_secs(16), "the backup took only {took:?}: the link was not slow");
    assert!(as_u64(&summary["data_added_packed"], "data_added_packed") >= 20 * MIB as u64, "{summary}");
    let largest = pack_files(&server.dir("slow")).into_values().max().unwrap_or(0);
    assert!(largest >= 16 * MIB as u64 - MIB as u64, "no full pack was uploaded (largest {largest} bytes)");
    proxy.pass_through();
    let target = Tmp::new();
    s3_cmd(&url, &cache.path).args(["restore", "latest", "--target"]).arg(&target.path).run().ok();
    assert!(
        fs::read(restored(&target.path, &root).join("big.bin")).unwrap() == fs::read(root.join("big.bin")).unwrap(),
        "restored content differs"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Messages that say what to fix
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_bucket_is_named_and_init_does_not_pretend() {
    let server = S3Server::start();
    let cache = Tmp::new();
    let url = format!("s3:http://127.0.0.1:{}/nosuchbucket/repo", server.port);
    let out = s3_cmd(&url, &cache.path).arg("snapshots").run().code(14);
    assert!(out.stderr.contains("bucket does not exist"), "{}", out.stderr);
    assert!(!out.stderr.contains("cairn init"), "a missing bucket is not a missing repository:\n{}", out.stderr);
    let out = s3_cmd(&url, &cache.path).arg("init").run().code(14);
    assert!(out.stderr.contains("bucket does not exist") && out.stderr.contains("create it"), "{}", out.stderr);
    assert!(!server.root.join("nosuchbucket").exists());
}

#[test]
fn no_credentials_names_the_variables() {
    let server = S3Server::start();
    let cache = Tmp::new();
    let home = Tmp::new();
    let url = server.url("creds");
    s3_cmd(&url, &cache.path).arg("init").run().ok();
    let t = Instant::now();
    let out = s3_cmd(&url, &cache.path)
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("HOME", &home.path)
        .arg("snapshots")
        .run()
        .code(14);
    assert!(out.stderr.contains("AWS_ACCESS_KEY_ID") && out.stderr.contains("AWS_SECRET_ACCESS_KEY"), "{}", out.stderr);
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?}", t.elapsed());
}

#[test]
fn https_to_a_plain_http_endpoint_fails_at_once_with_a_tls_message() {
    let server = S3Server::start();
    let cache = Tmp::new();
    let url = format!("s3:https://127.0.0.1:{}/{BUCKET}/tls", server.port);
    let t = Instant::now();
    let out = s3_cmd(&url, &cache.path).arg("snapshots").run().code(14);
    assert!(t.elapsed() < Duration::from_secs(5), "a TLS failure was retried: {:?}\n{}", t.elapsed(), out.stderr);
    assert!(out.stderr.contains("TLS") && out.stderr.contains("s3:http://"), "{}", out.stderr);
}
