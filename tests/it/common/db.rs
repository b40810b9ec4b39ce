//! Real database servers for the tests: a private PostgreSQL cluster ([`Postgres`]) and a
//! private Redis ([`Redis`]), each owned by one test, listening only on a Unix socket in its
//! own temporary directory (no TCP port, so tests run in parallel without clashes), and torn
//! down when dropped (the server killed, the directory removed).
//!
//! The programs come from Debian's packages, which `.ci/test` installs: `postgresql` (initdb,
//! pg_ctl, postgres and, on older releases, pgbench, under /usr/lib/postgresql/VERSION/bin),
//! `postgresql-client` (psql, pg_dump, pg_restore, createdb), `redis-server` and `redis-tools`
//! (redis-cli). A missing program fails the test with the package to install; nothing is
//! skipped.
//!
//! PostgreSQL refuses to run as root: when the tests run as root (as CI does), initdb, pg_ctl
//! and the server run as the `postgres` system user (created by the Debian package) through
//! `runuser`, in a directory under /tmp that user can reach. The clients run as the test
//! does, as the database user `postgres` (`-A trust`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::is_root;

/// How long a server may take to start answering before the test fails (a readiness wait,
/// not a timed assertion: a healthy server answers within a second).
const START_WAIT: Duration = Duration::from_secs(60);

/// The database tables `pgbench -i` creates.
pub const PGBENCH_TABLES: [&str; 4] = ["pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"];

/// A temporary directory under /tmp with mode 0755, so that the `postgres` system user can
/// traverse it when the tests run as root (the usual temporary directories may be 0700).
fn shared_tmp(prefix: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("create a temporary directory under /tmp: {e}"));
    let path = dir.path().canonicalize().expect("canonicalize the temporary directory");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", path.display()));
    (dir, path)
}

/// `program` on PATH, or a panic naming the Debian `package` that provides it.
pub fn on_path(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{program}` is not on PATH: install Debian's `{package}` package (.ci/test does)"))
}

/// Run `cmd` (described as `what`) to completion; panic with its output unless it succeeds.
/// Returns its standard output (lossy UTF-8).
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({:?}): {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PostgreSQL installations' `bin` directories, newest major version first.
fn pg_bin_dirs() -> Vec<(u32, PathBuf)> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs
}

/// A private PostgreSQL cluster: data directory, Unix socket and log in one temporary
/// directory; stopped (immediate shutdown, then SIGKILL if needed) and removed on drop.
pub struct Postgres {
    _tmp: TempDir,
    /// The temporary directory (`/tmp/cairn-pg-XXXXXX`, mode 0755).
    root: PathBuf,
    /// `bin` of the newest installed server version.
    bin: PathBuf,
    /// The data directory (mode 0700, owned by the server's user).
    data: PathBuf,
    /// The directory holding the server's socket `.s.PGSQL.5432`.
    sock: PathBuf,
    /// True when the server runs as the `postgres` system user (the tests run as root).
    as_postgres: bool,
    /// True once `pg_ctl start` was called (so drop stops it).
    started: bool,
}

impl Postgres {
    /// Create and start a cluster (`initdb -A trust -U postgres`, `pg_ctl -w start` with only
    /// a Unix socket). Panics with the package to install when PostgreSQL is missing, or with
    /// the server's log when it does not start.
    pub fn start() -> Postgres {
        let bin = pg_bin_dirs()
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
            .unwrap_or_else(|| {
                panic!("no /usr/lib/postgresql/*/bin/initdb: install Debian's `postgresql` package (.ci/test does)")
            });
        let as_postgres = is_root();
        if as_postgres {
            on_path("runuser", "util-linux");
        }
        let (tmp, root) = shared_tmp("cairn-pg-");
        let pg = root.join("pg");
        fs::create_dir(&pg).expect("mkdir pg");
        fs::set_permissions(&pg, fs::Permissions::from_mode(0o755)).expect("chmod pg");
        let data = pg.join("data");
        let sock = pg.join("sock");
        fs::create_dir(&sock).expect("mkdir sock");
        if as_postgres {
            let known = Command::new("id").args(["-u", "postgres"]).output().is_ok_and(|o| o.status.success());
            assert!(known, "no `postgres` system user: install Debian's `postgresql` package (.ci/test does)");
            run_ok(Command::new("chown").arg("-R").arg("postgres:").arg(&pg), "chown postgres: the cluster directory");
        }
        let mut this = Postgres { _tmp: tmp, root, bin, data, sock, as_postgres, started: false };
        let mut initdb = this.server_cmd("initdb");
        initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "-D"]).arg(&this.data);
        run_ok(&mut initdb, "initdb");
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=20",
            this.sock.display()
        );
        let log = pg.join("server.log");
        let mut ctl = this.server_cmd("pg_ctl");
        ctl.arg("-D").arg(&this.data).arg("-l").arg(&log).args(["-w", "-t", "60", "-o", &opts, "start"]);
        this.started = true;
        let out = ctl.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        if !out.status.success() {
            panic!(
                "pg_ctl start failed ({}):\n{}{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        this
    }

    /// A server-side program (`initdb`, `pg_ctl`) run as the cluster's owner, from the
    /// temporary directory (the test's own working directory may be closed to that user).
    fn server_cmd(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(&self.root);
        cmd
    }

    /// The directory holding the server's Unix socket: the `-h` argument of every client.
    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }

    /// The path of client program `name` (psql, pg_dump, pg_restore, pgbench, createdb): from
    /// the server's version, else the newest installed version that has it. Panics with the
    /// package to install when none has it.
    pub fn tool(&self, name: &str) -> PathBuf {
        let here = self.bin.join(name);
        if here.is_file() {
            return here;
        }
        pg_bin_dirs().into_iter().map(|(_, b)| b.join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
            panic!("no /usr/lib/postgresql/*/bin/{name}: install Debian's `postgresql-client` and `postgresql` packages (.ci/test does)")
        })
    }

    /// Client program `name` with `-h SOCKET_DIR -U postgres` as its first arguments.
    pub fn client(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.tool(name));
        cmd.arg("-h").arg(&self.sock).args(["-U", "postgres"]);
        cmd
    }

    /// The argv of `pg_dump -Fc -Z0` of database `db` on this cluster (absolute program path),
    /// for cairn to run.
    pub fn pg_dump_argv(&self, db: &str) -> Vec<String> {
        let mut v = vec![self.tool("pg_dump").display().to_string()];
        v.extend(["-Fc", "-Z0", "-h"].map(String::from));
        v.push(self.sock.display().to_string());
        v.extend(["-U", "postgres", db].map(String::from));
        v
    }

    /// `createdb NAME`; panics if it fails.
    pub fn createdb(&self, name: &str) {
        run_ok(self.client("createdb").arg(name), &format!("createdb {name}"));
    }

    /// A pgbench database `name`: `createdb`, `pgbench -i -s 1` (100,000 accounts), then 200
    /// pgbench transactions so that `pgbench_history` has rows and balances are not all 0.
    pub fn pgbench_db(&self, name: &str) {
        self.createdb(name);
        run_ok(self.client("pgbench").args(["-i", "-s", "1", "-q", name]), "pgbench -i -s 1");
        run_ok(self.client("pgbench").args(["-n", "-c", "1", "-t", "200", name]), "pgbench -t 200");
    }

    /// The single value `sql` returns in database `db` (`psql -Atc`), trimmed.
    pub fn psql_scalar(&self, db: &str, sql: &str) -> String {
        let out = run_ok(
            self.client("psql").args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]),
            &format!("psql -d {db} -c {sql:?}"),
        );
        out.trim().to_string()
    }

    /// Row count of each pgbench table of `db`, plus `sum(abalance)` of the accounts under the
    /// key `sum(abalance)` (a check of the contents, not only the sizes).
    pub fn pgbench_counts(&self, db: &str) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for t in PGBENCH_TABLES {
            let n = self.psql_scalar(db, &format!("SELECT count(*) FROM {t}"));
            m.insert(t.to_string(), n.parse().unwrap_or_else(|e| panic!("count(*) of {t} printed {n:?}: {e}")));
        }
        let s = self.psql_scalar(db, "SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts");
        m.insert("sum(abalance)".into(), s.parse().unwrap_or_else(|e| panic!("sum(abalance) printed {s:?}: {e}")));
        m
    }

    /// A session of database `db` that holds an ACCESS EXCLUSIVE lock on `table` until the
    /// returned guard is dropped (a `pg_dump` of that table blocks meanwhile). Returns once the
    /// lock is granted.
    pub fn hold_lock(&self, db: &str, table: &str) -> LockHolder {
        static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let app = format!("cairn-test-lock-{}", SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let sql = format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600);");
        let child = self
            .client("psql")
            .env("PGAPPNAME", &app)
            .args(["-X", "-q", "-d", db, "-c", &sql])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start psql: {e}"));
        let mut end = self.client("psql");
        let stop = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'");
        end.args(["-X", "-q", "-d", db, "-c", &stop]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut holder = LockHolder { child, end };
        let granted = format!(
            "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass AND mode = 'AccessExclusiveLock' AND granted"
        );
        let deadline = Instant::now() + START_WAIT;
        while self.psql_scalar(db, &granted) != "1" {
            if let Ok(Some(st)) = holder.child.try_wait() {
                panic!("the psql session meant to lock {table} exited ({st})");
            }
            assert!(Instant::now() < deadline, "the lock on {table} was not granted within {START_WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        holder
    }
}

/// A `psql` session holding a lock ([`Postgres::hold_lock`]). On drop its server process is
/// terminated (`pg_terminate_backend`: a backend in `pg_sleep` would not notice its client
/// dying), which ends the transaction and so releases the lock, and psql is killed.
pub struct LockHolder {
    child: Child,
    /// The psql command that terminates the session's backend.
    end: Command,
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.end.status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let mut ctl = self.server_cmd("pg_ctl");
        ctl.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
        let _ = ctl.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        // A server pg_ctl could not stop: its pid is the first line of postmaster.pid.
        if let Some(pid) = fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            // SAFETY: kill has no memory preconditions; the pid is the server this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A private Redis server: a child process on a Unix socket in its own temporary directory,
/// no TCP port, no persistence of its own; killed and removed on drop.
pub struct Redis {
    _tmp: TempDir,
    /// The server process.
    child: Child,
    /// The Unix socket (`DIR/redis.sock`).
    sock: PathBuf,
}

impl Redis {
    /// Start an empty server. Panics with the package to install when Redis is missing, or
    /// with its log when it does not answer PING.
    pub fn start() -> Redis {
        Redis::launch(None)
    }

    /// Start a server that loads `rdb` (copied into its directory as `dump.rdb`).
    pub fn from_rdb(rdb: &Path) -> Redis {
        Redis::launch(Some(rdb))
    }

    fn launch(rdb: Option<&Path>) -> Redis {
        let server = on_path("redis-server", "redis-server");
        on_path("redis-cli", "redis-tools");
        let (tmp, dir) = shared_tmp("cairn-redis-");
        if let Some(rdb) = rdb {
            fs::copy(rdb, dir.join("dump.rdb")).unwrap_or_else(|e| panic!("copy {}: {e}", rdb.display()));
        }
        let sock = dir.join("redis.sock");
        let log = dir.join("redis.log");
        let logf = fs::File::create(&log).expect("create the redis log");
        let mut cmd = Command::new(server);
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(&dir)
            .args(["--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup the log"))
            .stderr(logf);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let mut this = Redis { _tmp: tmp, child, sock };
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(st)) = this.child.try_wait() {
                panic!(
                    "redis-server exited ({st}) before answering:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if this.sock.exists() {
                let out = this.cli().arg("PING").stdin(Stdio::null()).output();
                if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
                    return this;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {START_WAIT:?}:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's Unix socket (the `-s` argument of redis-cli).
    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// `redis-cli -s SOCKET`, to which the caller adds a command.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(on_path("redis-cli", "redis-tools"));
        cmd.arg("-s").arg(&self.sock);
        cmd
    }

    /// The argv of `redis-cli -s SOCKET --rdb -` (the RDB snapshot on standard output), for
    /// cairn to run.
    pub fn rdb_argv(&self) -> Vec<String> {
        vec![
            on_path("redis-cli", "redis-tools").display().to_string(),
            "-s".into(),
            self.sock.display().to_string(),
            "--rdb".into(),
            "-".into(),
        ]
    }

    /// The reply to one command (`redis-cli -s SOCKET ARGS...`), trimmed.
    pub fn query(&self, args: &[&str]) -> String {
        run_ok(self.cli().args(args), &format!("redis-cli {}", args.join(" "))).trim().to_string()
    }

    /// Store `n` string keys `key:0` .. `key:{n-1}` (value [`Redis::value_of`]) plus a hash
    /// `h:config` and a list `l:queue` of 100 items each, through `redis-cli --pipe`.
    pub fn fill(&self, n: usize) {
        let mut resp = Vec::new();
        let mut put = |args: &[&str]| {
            write!(resp, "*{}\r\n", args.len()).unwrap();
            for a in args {
                write!(resp, "${}\r\n{a}\r\n", a.len()).unwrap();
            }
        };
        for i in 0..n {
            put(&["SET", &format!("key:{i}"), &Redis::value_of(i)]);
        }
        for i in 0..100 {
            put(&["HSET", "h:config", &format!("field{i}"), &format!("setting {i}")]);
            put(&["RPUSH", "l:queue", &format!("job {i}")]);
        }
        let mut child = self
            .cli()
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --pipe: {e}"));
        let mut w = child.stdin.take().expect("stdin pipe");
        let feeder = std::thread::spawn(move || w.write_all(&resp));
        let out = child.wait_with_output().expect("wait for redis-cli --pipe");
        feeder.join().expect("feeder thread").expect("write to redis-cli --pipe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("errors: 0"),
            "redis-cli --pipe failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The value [`Redis::fill`] gives `key:{i}`.
    pub fn value_of(i: usize) -> String {
        format!("value {i} {:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The number of keys (`DBSIZE`).
    pub fn dbsize(&self) -> u64 {
        let s = self.query(&["DBSIZE"]);
        s.parse().unwrap_or_else(|e| panic!("DBSIZE printed {s:?}: {e}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
