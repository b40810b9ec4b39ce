//! Database dumps through cairn against real servers (issue 14, "Done when" 1 and 2): a
//! private PostgreSQL cluster with a pgbench database and a private Redis, started by the
//! test harness on Unix sockets (common::db).
//!
//! - `backup --stdin-from-command -- pg_dump -Fc -Z0 ...` / `redis-cli --rdb -`: what
//!   `cairn dump` gives back restores into a fresh database / server with the same contents;
//!   a pg_dump of a missing database leaves no snapshot (exit 1).
//! - A profile with a Maildir-like tree, an /etc-like tree and two `[[backup.command]]`
//!   components, run by one `cairn -P x run`: one snapshot holding all of it; a failing
//!   pg_dump is left out of the tree and recorded (exit 3), the rest saved.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::db::{Postgres, Redis};
use crate::common::*;

/// The database pgbench fills.
const BENCH: &str = "bench";

/// Pipe `producer`'s standard output into `consumer` (`cairn dump ... | pg_restore ...`);
/// panics with both programs' standard error unless both succeed.
fn pipe(mut producer: Command, mut consumer: Command) {
    let mut p = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", producer.get_program()));
    let out = p.stdout.take().expect("stdout pipe");
    let c = consumer
        .stdin(Stdio::from(out))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", consumer.get_program()));
    let p = p.wait_with_output().expect("wait for the producer");
    assert!(
        p.status.success() && c.status.success(),
        "{:?} ({}) | {:?} ({}) failed:\n{}\n{}",
        producer.get_program(),
        p.status,
        consumer.get_program(),
        c.status,
        String::from_utf8_lossy(&p.stderr),
        String::from_utf8_lossy(&c.stderr)
    );
}

/// The cairn binary with `args`, no CAIRN_* variable from the caller's environment, as a
/// plain process (to pipe from).
fn cairn_process<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args);
    for k in CAIRN_ENV {
        cmd.env_remove(k);
    }
    cmd
}

/// `pg_restore --exit-on-error -d DB` reading standard input, into a database created here.
fn pg_restore_stdin(pg: &Postgres, db: &str) -> Command {
    pg.createdb(db);
    let mut c = pg.client("pg_restore");
    c.args(["--exit-on-error", "-d", db]);
    c
}

#[test]
fn pg_dump_from_stdin_from_command_restores_the_same_rows_and_a_missing_database_saves_nothing() {
    let pg = Postgres::start();
    pg.pgbench_db(BENCH);
    let before = pg.pgbench_counts(BENCH);
    assert_eq!(before["pgbench_accounts"], 100_000, "{before:?}");
    assert_eq!(before["pgbench_history"], 200, "{before:?}");
    let repo = Repo::init();

    // A dump of a database that does not exist: pg_dump fails, no snapshot, exit 1.
    let out = repo
        .cmd()
        .args(["backup", "--stdin-from-command", "--stdin-filename", "maildb.dump", "--"])
        .args(pg.pg_dump_argv("nosuchdb"))
        .run()
        .code(1);
    assert!(out.stderr.contains("\"nosuchdb\" does not exist"), "pg_dump's error is shown:\n{}", out.stderr);
    assert!(repo.snapshots(Vec::<&str>::new()).is_empty(), "a failed pg_dump left a snapshot");

    repo.cmd()
        .args(["backup", "--stdin-from-command", "--stdin-filename", "maildb.dump", "--"])
        .args(pg.pg_dump_argv(BENCH))
        .run()
        .ok();
    let snaps = repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/maildb.dump"]));

    // The operator's restore: cairn dump latest /maildb.dump | pg_restore -d restored.
    let mut dump = cairn_process(["-r".as_ref(), repo.path.as_os_str()]);
    dump.env("CAIRN_PASSWORD", PASSWORD).args(["dump", "latest", "/maildb.dump"]);
    pipe(dump, pg_restore_stdin(&pg, "restored"));
    assert_eq!(pg.pgbench_counts("restored"), before);
}

#[test]
fn redis_rdb_from_stdin_from_command_loads_into_a_fresh_server() {
    let redis = Redis::start();
    redis.fill(5000);
    let keys = redis.dbsize();
    assert_eq!(keys, 5002);
    let repo = Repo::init();
    repo.cmd()
        .args(["backup", "--stdin-from-command", "--stdin-filename", "dump.rdb", "--"])
        .args(redis.rdb_argv())
        .run()
        .ok();
    let tmp = Tmp::new();
    let rdb = tmp.join("dump.rdb");
    repo.cmd().args(["dump", "latest", "/dump.rdb", "--target"]).arg(&rdb).run().ok();
    assert_loads_the_same(&redis, &rdb);
}

/// A fresh server loading `rdb` has the keys of `live` (filled by `Redis::fill`), a sampled
/// value, the hash and the list.
fn assert_loads_the_same(live: &Redis, rdb: &Path) {
    let fresh = Redis::from_rdb(rdb);
    assert_eq!(fresh.dbsize(), live.dbsize(), "keys after loading the RDB");
    assert_eq!(fresh.query(&["GET", "key:2345"]), Redis::value_of(2345));
    assert_eq!(fresh.query(&["GET", "key:2345"]), live.query(&["GET", "key:2345"]));
    assert_eq!(fresh.query(&["HGET", "h:config", "field42"]), "setting 42");
    assert_eq!(fresh.query(&["LLEN", "l:queue"]), "100");
    assert_eq!(fresh.query(&["LINDEX", "l:queue", "99"]), "job 99");
}

/// A mail server's night in small: a Maildir-like tree and an /etc-like config tree, a
/// repository, and a profile `x` (in `XDG_CONFIG_HOME`) with both trees and two commands.
struct Night {
    tmp: Tmp,
    repo: Repo,
    maildir: PathBuf,
    etc: PathBuf,
}

impl Night {
    fn new() -> Night {
        let tmp = Tmp::new();
        let maildir = tmp.join("vmail");
        maildir::generate(&maildir, 60);
        for user in ["user000/Maildir", "user000/Maildir/.folder0"] {
            let tmpdir = maildir.join("example.com").join(user).join("tmp");
            fs::create_dir_all(&tmpdir).expect("mkdir Maildir tmp");
            write(tmpdir.join("1700000999.M1P1.mail1"), "From: a@example.org\n\nbeing delivered\n");
        }
        let etc = tmp.join("etc");
        write(etc.join("postfix/main.cf"), "myhostname = mail1.example.com\nmydestination = $myhostname\n");
        write(etc.join("postfix/master.cf"), "smtp inet n - y - - smtpd\n");
        write(etc.join("dovecot/dovecot.conf"), "protocols = imap lmtp\n!include conf.d/*.conf\n");
        write(etc.join("dovecot/conf.d/10-auth.conf"), "auth_mechanisms = plain login\n");
        let key = etc.join("letsencrypt/live/mail1/privkey.pem");
        write(&key, "-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod 600");
        std::os::unix::fs::symlink("live/mail1/privkey.pem", etc.join("letsencrypt/current.pem")).expect("symlink");
        fs::create_dir_all(tmp.join("xdg/cairn")).expect("mkdir profile dir");
        fs::create_dir_all(tmp.join("home")).expect("mkdir home");
        write(tmp.join("password"), format!("{PASSWORD}\n"));
        Night { tmp, repo: Repo::init(), maildir, etc }
    }

    /// Write profile `x` with the two trees and `commands` (`[[backup.command]]` tables).
    fn profile(&self, commands: &str) {
        let text = format!(
            "[repository]\nrepo = {:?}\npassword-file = {:?}\n\n[backup]\nhost = \"mail1\"\ntags = [\"nightly\"]\npaths = [{:?}, {:?}]\n\n{commands}",
            self.repo.path.display().to_string(),
            self.tmp.join("password").display().to_string(),
            self.maildir.display().to_string(),
            self.etc.display().to_string(),
        );
        write(self.tmp.join("xdg/cairn/x.toml"), text);
    }

    /// `cairn -P x ARGS...` with this home, not checked.
    fn cairn<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        cairn()
            .env("HOME", self.tmp.join("home"))
            .env("XDG_CONFIG_HOME", self.tmp.join("xdg"))
            .args(["-P", "x"])
            .args(args)
            .run()
    }

    /// `cairn -P x ARGS...` as a plain process (to pipe from).
    fn process(&self, args: &[&str]) -> Command {
        let mut c = cairn_process(["-P", "x"]);
        c.env("HOME", self.tmp.join("home")).env("XDG_CONFIG_HOME", self.tmp.join("xdg")).args(args);
        c
    }

    /// Restore the latest snapshot and check both trees came back identical.
    fn assert_trees_restore_identically(&self) {
        let target = self.tmp.join("restored");
        self.cairn(["restore".as_ref(), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).ok();
        assert_same_tree(&self.maildir, &restored(&target, &self.maildir));
        assert_same_tree(&self.etc, &restored(&target, &self.etc));
    }
}

/// A `[[backup.command]]` table with the timeout "2h".
fn command_table(path: &str, run: &[String], verify: Option<&[String]>) -> String {
    command_table_timeout(path, run, verify, "2h")
}

/// A `[[backup.command]]` table.
fn command_table_timeout(path: &str, run: &[String], verify: Option<&[String]>, timeout: &str) -> String {
    let mut t = format!("[[backup.command]]\npath = {path:?}\nrun = {run:?}\n");
    if let Some(v) = verify {
        t.push_str(&format!("verify = {v:?}\n"));
    }
    t.push_str(&format!("timeout = {timeout:?}\n\n"));
    t
}

/// The `components` entry of snapshot `s` for `path`.
fn component<'a>(s: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    s["components"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["path"] == path))
        .unwrap_or_else(|| panic!("snapshot has no component {path}: {s}"))
}

#[test]
fn one_run_saves_the_trees_the_pg_dump_and_the_rdb_in_one_snapshot() {
    let pg = Postgres::start();
    pg.pgbench_db(BENCH);
    let before = pg.pgbench_counts(BENCH);
    let redis = Redis::start();
    redis.fill(5000);
    let night = Night::new();
    let verify = [pg.tool("pg_restore").display().to_string(), "--list".to_string()];
    night.profile(&format!(
        "{}{}",
        command_table("/postgres/maildb.dump", &pg.pg_dump_argv(BENCH), Some(&verify)),
        command_table("/redis/dump.rdb", &redis.rdb_argv(), None)
    ));

    let out = night.cairn(["run"]);
    assert_eq!(out.code, 0, "cairn -P x run:\n{}\n{}", out.stdout, out.stderr);
    let snaps = night.repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1, "one snapshot for the whole night: {snaps:?}");
    let tree_paths = [night.maildir.display().to_string(), night.etc.display().to_string()];
    for path in tree_paths.iter().map(String::as_str).chain(["/postgres/maildb.dump", "/redis/dump.rdb"]) {
        assert_eq!(component(&snaps[0], path)["status"], "ok", "{path}: {}", snaps[0]);
    }

    // cairn -P x dump latest /postgres/maildb.dump | pg_restore -d restored
    pipe(night.process(&["dump", "latest", "/postgres/maildb.dump"]), pg_restore_stdin(&pg, "restored"));
    assert_eq!(pg.pgbench_counts("restored"), before);

    let rdb = night.tmp.join("dump.rdb");
    night
        .cairn(["dump".as_ref(), "latest".as_ref(), "/redis/dump.rdb".as_ref(), "--target".as_ref(), rdb.as_os_str()])
        .ok();
    assert_loads_the_same(&redis, &rdb);

    night.assert_trees_restore_identically();
}

#[test]
fn a_pg_dump_of_a_missing_database_is_left_out_and_recorded_the_rest_saved() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.fill(5000);
    let night = Night::new();
    let verify = [pg.tool("pg_restore").display().to_string(), "--list".to_string()];
    night.profile(&format!(
        "{}{}",
        command_table("/postgres/maildb.dump", &pg.pg_dump_argv("nosuchdb"), Some(&verify)),
        command_table("/redis/dump.rdb", &redis.rdb_argv(), None)
    ));

    let out = night.cairn(["run"]);
    assert_eq!(out.code, 3, "a partial night exits 3:\n{}\n{}", out.stdout, out.stderr);
    let snaps = night.repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1, "the rest is saved in one snapshot: {snaps:?}");

    let ls = night.cairn(["ls", "latest"]).ok().stdout;
    assert!(!ls.contains("/postgres/maildb.dump"), "the failed dump is not in the tree:\n{ls}");
    assert!(ls.contains("/redis/dump.rdb"), "{ls}");
    assert!(ls.contains("main.cf") && ls.contains("mail1:2,S"), "the trees are saved:\n{ls}");

    let pgc = component(&snaps[0], "/postgres/maildb.dump");
    assert_eq!(pgc["status"], "failed", "{pgc}");
    let reason = pgc["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(reason.contains("exit") && reason.contains('1'), "the reason names pg_dump's exit status 1: {pgc}");
    let tree_paths = [night.maildir.display().to_string(), night.etc.display().to_string()];
    for path in tree_paths.iter().map(String::as_str).chain(["/redis/dump.rdb"]) {
        assert_eq!(component(&snaps[0], path)["status"], "ok", "{path}: {}", snaps[0]);
    }

    let rdb = night.tmp.join("dump.rdb");
    night
        .cairn(["dump".as_ref(), "latest".as_ref(), "/redis/dump.rdb".as_ref(), "--target".as_ref(), rdb.as_os_str()])
        .ok();
    assert_loads_the_same(&redis, &rdb);
    night.assert_trees_restore_identically();
}

#[test]
fn a_pg_dump_blocked_past_its_timeout_and_a_dump_its_verify_rejects_are_left_out() {
    let pg = Postgres::start();
    pg.pgbench_db(BENCH);
    let redis = Redis::start();
    redis.fill(1000);
    let night = Night::new();
    let pg_restore_list = [pg.tool("pg_restore").display().to_string(), "--list".to_string()];
    // pg_dump waits for the lock another session holds: killed by its 2 s timeout.
    let _lock = pg.hold_lock(BENCH, "pgbench_accounts");
    let blocked = pg.pg_dump_argv(BENCH);
    // A plain-SQL dump (of a table nobody locks), which `pg_restore --list` rejects.
    let mut plain = pg.pg_dump_argv(BENCH);
    plain.retain(|a| a != "-Fc" && a != "-Z0");
    plain.extend(["-Fp", "-t", "pgbench_branches"].map(String::from));
    night.profile(&format!(
        "{}{}{}",
        command_table_timeout("/postgres/maildb.dump", &blocked, Some(&pg_restore_list), "2s"),
        command_table("/postgres/branches.sql", &plain, Some(&pg_restore_list)),
        command_table("/redis/dump.rdb", &redis.rdb_argv(), None)
    ));

    let out = night.cairn(["run"]);
    assert_eq!(out.code, 3, "a partial night exits 3:\n{}\n{}", out.stdout, out.stderr);
    let snaps = night.repo.snapshots(Vec::<&str>::new());
    assert_eq!(snaps.len(), 1, "the rest is saved in one snapshot: {snaps:?}");
    let ls = night.cairn(["ls", "latest"]).ok().stdout;
    assert!(!ls.contains("/postgres/maildb.dump") && !ls.contains("/postgres/branches.sql"), "{ls}");
    assert!(ls.contains("/redis/dump.rdb") && ls.contains("main.cf"), "{ls}");

    let timed_out = component(&snaps[0], "/postgres/maildb.dump");
    assert_eq!(timed_out["status"], "failed", "{timed_out}");
    let reason = timed_out["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(reason.contains("timed out") || reason.contains("timeout"), "the reason names the timeout: {timed_out}");
    let rejected = component(&snaps[0], "/postgres/branches.sql");
    assert_eq!(rejected["status"], "failed", "{rejected}");
    let reason = rejected["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(reason.contains("verify"), "the reason names the verify command: {rejected}");
    assert_eq!(component(&snaps[0], "/redis/dump.rdb")["status"], "ok", "{}", snaps[0]);
    night.assert_trees_restore_identically();
}

#[test]
fn the_harness_servers_are_private_and_torn_down() {
    // Two clusters and two Redis servers side by side (as parallel tests have them), each on
    // its own socket; dropping one stops it and removes its directory.
    let a = Postgres::start();
    let b = Postgres::start();
    a.createdb("only_in_a");
    let in_b = b.psql_scalar("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'");
    assert_eq!(in_b, "0");
    // A held lock blocks pg_dump (here bounded by its own --lock-wait-timeout) until released.
    a.psql_scalar("only_in_a", "CREATE TABLE t AS SELECT 1 AS x");
    let lock = a.hold_lock("only_in_a", "t");
    let mut dump = Command::new(a.tool("pg_dump"));
    dump.arg("-h").arg(a.socket_dir()).args(["-U", "postgres", "--lock-wait-timeout=500", "only_in_a"]);
    let out = dump.output().expect("run pg_dump");
    assert!(!out.status.success(), "pg_dump got the lock another session holds");
    drop(lock);
    let out = dump.output().expect("run pg_dump");
    assert!(out.status.success(), "pg_dump after the lock was released: {}", String::from_utf8_lossy(&out.stderr));
    let dir = a.socket_dir().to_path_buf();
    drop(a);
    assert!(!dir.exists(), "{} is left after drop", dir.display());
    assert_eq!(b.psql_scalar("postgres", "SELECT 1"), "1");

    let r1 = Redis::start();
    let r2 = Redis::start();
    r1.query(&["SET", "k", "v"]);
    assert_eq!(r2.dbsize(), 0);
    let sock = r1.socket().to_path_buf();
    drop(r1);
    assert!(!sock.exists(), "{} is left after drop", sock.display());
    assert_eq!(r2.query(&["PING"]), "PONG");
}
