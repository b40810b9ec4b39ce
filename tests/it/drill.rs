//! `cairn drill`: restore rehearsals with real drill commands (a pgbench dump loaded into a
//! scratch PostgreSQL database, an RDB loaded by a scratch redis-server), the RTO (exit 8), a
//! damaged pack (exit 15, the pack named), and the drill record as `health --max-drill-age`
//! sees it.

use std::fs;
use std::path::Path;

use crate::common::db::{Postgres, Redis};
use crate::common::{cairn, damage_largest_data_blob, random_bytes, write, Output, Repo, Tmp, PASSWORD};

/// The `components` entry of a drill report for `path`.
fn component<'a>(r: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    r["components"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["path"] == path))
        .unwrap_or_else(|| panic!("drill report has no component {path}: {r}"))
}

/// A source directory with one file of `n` pseudo-random bytes, `f`.
fn source(tmp: &Tmp, n: usize) -> std::path::PathBuf {
    let src = tmp.join("src");
    write(src.join("f"), random_bytes(11, n));
    src
}

/// `health --json ARGS` on `repo`: (exit code, report).
fn health(repo: &Repo, args: &[&str]) -> (i32, serde_json::Value) {
    let o = repo.cmd().arg("--json").arg("health").args(args).run();
    let v = o.json();
    (o.code, v)
}

#[test]
fn a_pgbench_dump_and_an_rdb_drill_into_scratch_servers_with_timings() {
    let pg = Postgres::start();
    pg.pgbench_db("bench");
    let redis = Redis::start();
    redis.fill(2000);
    let keys = redis.dbsize();
    let tmp = Tmp::new();
    let repo = Repo::init();
    let sock = pg.socket_dir().display().to_string();
    let tool = |n: &str| pg.tool(n).display().to_string();
    // The drill commands, as an operator writes them: a shell of their own.
    let pg_drill = format!(
        "{createdb} -h {sock} -U postgres drill_scratch && {restore} -h {sock} -U postgres -d drill_scratch \"$CAIRN_DRILL_FILE\" && {psql} -h {sock} -U postgres -d drill_scratch -XAtc 'select count(*) from pgbench_accounts'",
        createdb = tool("createdb"),
        restore = tool("pg_restore"),
        psql = tool("psql"),
    );
    let redis_drill = format!(
        r#"d="$CAIRN_DRILL_DIR/redis-scratch"; mkdir -p "$d" && cp "$CAIRN_DRILL_FILE" "$d/dump.rdb" || exit 1
redis-server --port 0 --unixsocket "$d/s.sock" --dir "$d" --dbfilename dump.rdb --save '' --appendonly no --daemonize no >"$d/log" 2>&1 &
pid=$!
i=0; until [ "$(redis-cli -s "$d/s.sock" ping 2>/dev/null)" = PONG ]; do i=$((i+1)); [ $i -gt 600 ] && exit 3; sleep 0.1; done
n=$(redis-cli -s "$d/s.sock" dbsize)
redis-cli -s "$d/s.sock" shutdown nosave >/dev/null 2>&1; wait $pid
echo "dbsize $n"; [ "$n" = {keys} ]"#
    );
    let profile = format!(
        "[repository]\nrepo = {repo:?}\npassword-file = {pw:?}\n\n[backup]\nhost = \"mail1\"\npaths = [{src:?}]\n\n\
         [[backup.command]]\npath = \"/postgres/bench.dump\"\nrun = {pg_run:?}\ndrill = {pg_drill:?}\n\n\
         [[backup.command]]\npath = \"/redis/dump.rdb\"\nrun = {redis_run:?}\ndrill = [\"sh\", \"-c\", {redis_drill:?}]\n\n\
         [drill]\nrto = \"30m\"\n",
        repo = repo.path.display().to_string(),
        pw = tmp.join("password").display().to_string(),
        src = source(&tmp, 300_000).display().to_string(),
        pg_run = pg.pg_dump_argv("bench"),
        redis_run = redis.rdb_argv(),
        pg_drill = format!("sh -c {}", shlex::try_quote(&pg_drill).unwrap()),
    );
    write(tmp.join("password"), format!("{PASSWORD}\n"));
    write(tmp.join("xdg/cairn/x.toml"), profile);
    let run = |args: &[&str]| -> Output {
        cairn().env("HOME", tmp.join("xdg")).env("XDG_CONFIG_HOME", tmp.join("xdg")).args(["-P", "x"]).args(args).run()
    };
    run(&["backup"]).ok();
    let o = run(&["--json", "drill"]).ok();
    let r = o.json();
    assert_eq!(r["message_type"], "drill_summary", "{r}");
    assert_eq!(r["verdict"], "passed", "{r}");
    assert_eq!(r["rto_seconds"], 1800.0, "{r}");
    assert_eq!(r["rto_exceeded"], false, "{r}");
    assert_eq!(r["components"].as_array().unwrap().len(), 3, "{r}");
    let pgc = component(&r, "/postgres/bench.dump");
    assert!(pgc["ok"].as_bool().unwrap(), "{r}");
    assert!(pgc["output"].as_str().unwrap().ends_with("100000"), "{r}");
    let rc = component(&r, "/redis/dump.rdb");
    assert!(rc["ok"].as_bool().unwrap(), "{r}");
    assert_eq!(rc["output"], format!("dbsize {keys}"), "{r}");
    let mut sum = 0.0;
    for c in r["components"].as_array().unwrap() {
        assert!(c["bytes"].as_u64().unwrap() > 0, "{c}");
        assert!(c["restore_seconds"].as_f64().unwrap() > 0.0, "{c}");
        let s = c["seconds"].as_f64().unwrap();
        let parts = c["restore_seconds"].as_f64().unwrap() + c["command_seconds"].as_f64().unwrap();
        assert!((s - parts).abs() < 1e-6, "{c}");
        sum += s;
    }
    for c in [pgc, rc] {
        assert!(c["command_seconds"].as_f64().unwrap() > 0.0, "{c}");
        assert_eq!(c["exit_code"], 0, "{c}");
    }
    assert!(r["total_seconds"].as_f64().unwrap() >= sum, "{r}");
    // The scratch database holds what the dump held; the scratch directory is gone.
    assert_eq!(pg.pgbench_counts("drill_scratch"), pg.pgbench_counts("bench"));
    assert!(!Path::new(r["target"].as_str().unwrap()).exists(), "{r}");
    // The drill record, from the repository alone.
    let (code, h) = health(&repo, &["--max-drill-age", "35d"]);
    assert_eq!(code, 0, "{h}");
    let d = &h["drill_checks"][0];
    assert_eq!((d["host"].as_str(), d["status"].as_str()), (Some("mail1"), Some("ok")), "{h}");
    assert_eq!(d["drill"], r["record_id"], "{h}");
    assert_eq!(d["snapshot"], r["snapshot_id"], "{h}");
    // The text form names the drill on its own line and in the performance data.
    let o = repo.cmd().args(["health", "--max-age", "1d", "--max-drill-age", "35d"]).run().ok();
    assert!(o.stdout.lines().next().unwrap().contains("'drill:mail1'="), "{}", o.stdout);
    assert!(o.stdout.lines().any(|l| l.starts_with("OK       drill:mail1 last passed")), "{}", o.stdout);
}

#[test]
fn an_rto_shorter_than_the_drill_exits_8_and_only_a_passing_drill_satisfies_health() {
    let tmp = Tmp::new();
    let repo = Repo::init();
    let src = source(&tmp, 50_000);
    repo.run([Path::new("backup"), src.as_path()]).ok();
    // No drill yet: CRITICAL.
    let (code, h) = health(&repo, &["--max-drill-age", "35d"]);
    assert_eq!(code, 2, "{h}");
    assert!(h["drill_checks"][0]["drill"].is_null(), "{h}");
    // The password is not passed on to the drill command (it would fail the drill: exit 1).
    let slow = format!("--drill-command={}=sh -c 'test -z \"${{CAIRN_PASSWORD+x}}\" && sleep 2'", src.display());
    let o = repo.cmd().args(["--json", "drill", "--rto", "1s", &slow]).run().code(8);
    let r = o.json();
    assert_eq!((r["verdict"].as_str(), r["rto_exceeded"].as_bool()), (Some("rto_exceeded"), Some(true)), "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert!(r["total_seconds"].as_f64().unwrap() > 1.0, "{r}");
    // The text form says so too.
    let o = repo.cmd().args(["drill", "--rto", "1s", &slow]).run().code(8);
    assert!(o.stdout.contains("OVER the RTO of 1s"), "{}", o.stdout);
    // Recorded, but not a passing drill.
    let (code, h) = health(&repo, &["--max-drill-age", "35d"]);
    assert_eq!(code, 2, "{h}");
    assert_eq!(h["drill_checks"][0]["latest_verdict"], "rto_exceeded", "{h}");
    let o = repo.cmd().args(["health", "--max-drill-age", "35d"]).run().code(2);
    assert!(o.stdout.contains("no passing drill; newest drill rto_exceeded"), "{}", o.stdout);
    // A drill within its RTO passes and satisfies health; a host filter that matches no
    // drilled host is CRITICAL.
    repo.cmd().args(["drill", "--rto", "1h"]).run().ok();
    let (code, h) = health(&repo, &["--max-drill-age", "35d"]);
    assert_eq!(code, 0, "{h}");
    assert!(h["drill_checks"][0]["age_seconds"].as_u64().unwrap() < 3600, "{h}");
    let (code, h) = health(&repo, &["--max-drill-age", "35d", "--host", "elsewhere"]);
    assert_eq!(code, 2, "{h}");
    assert_eq!(h["drill_checks"][0]["host"], "elsewhere", "{h}");
    // Three drills recorded, none of them in the way of check.
    assert_eq!(fs::read_dir(repo.path.join("drills")).unwrap().count(), 3);
    repo.run(["check"]).ok();
}

#[test]
fn a_damaged_pack_fails_the_drill_naming_the_pack_file() {
    let tmp = Tmp::new();
    let repo = Repo::init();
    let src = source(&tmp, 4_000_000);
    repo.run([Path::new("backup"), src.as_path()]).ok();
    let (pack, _) = damage_largest_data_blob(&repo);
    let o = repo.cmd().args(["--json", "drill"]).run().code(15);
    let r = o.json();
    assert_eq!(r["verdict"], "failed", "{r}");
    let c = component(&r, src.to_str().unwrap());
    assert_eq!((c["ok"].as_bool(), c["damaged"].as_bool()), (Some(false), Some(true)), "{r}");
    assert!(c["message"].as_str().unwrap().contains(&pack), "the message names pack {pack}: {r}");
    let o = repo.cmd().args(["drill"]).run().code(15);
    assert!(o.stdout.contains("FAILED") && o.stdout.contains(&pack), "{}", o.stdout);
    assert!(o.stderr.contains("cairn check --read-data"), "{}", o.stderr);
    // Only failed drills: CRITICAL.
    let (code, h) = health(&repo, &["--max-drill-age", "35d"]);
    assert_eq!(code, 2, "{h}");
    assert_eq!(h["drill_checks"][0]["latest_verdict"], "failed", "{h}");
}

#[test]
fn a_component_that_failed_in_the_snapshot_fails_the_drill_and_components_can_be_picked() {
    let tmp = Tmp::new();
    let repo = Repo::init();
    let src = source(&tmp, 10_000);
    let o = repo.cmd().args([Path::new("backup"), src.as_path(), Path::new("--command=/db/x.dump=false")]).run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    let o = repo.cmd().args(["--json", "drill"]).run().code(1);
    let r = o.json();
    let c = component(&r, "/db/x.dump");
    assert!(c["message"].as_str().unwrap().contains("failed in snapshot"), "{r}");
    assert_eq!(component(&r, src.to_str().unwrap())["ok"], true, "{r}");
    // Only the good component, kept in a target of our own.
    let target = tmp.join("scratch");
    let o =
        repo.cmd().args(["--json", "drill", "--keep", "--component"]).arg(&src).arg("--target").arg(&target).run().ok();
    assert_eq!(o.json()["verdict"], "passed");
    assert_eq!(fs::read(target.join(src.strip_prefix("/").unwrap()).join("f")).unwrap(), random_bytes(11, 10_000));
    // A target that is not empty, an unknown component: refused before anything is restored.
    let o = repo.cmd().args(["drill", "--target"]).arg(&target).run().code(1);
    assert!(o.stderr.contains("is not empty"), "{}", o.stderr);
    let o = repo.cmd().args(["drill", "--component", "/nope"]).run().code(1);
    assert!(o.stderr.contains("no component \"/nope\""), "{}", o.stderr);
    // A drill of one component passed, but rehearsed no full recovery: health does not count it.
    let o = repo.cmd().args(["health", "--max-drill-age", "35d"]).run();
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stdout.contains("no passing drill"), "{}", o.stdout);
    // A target others may write is refused: what the drill commands read must be what was restored.
    let open = tmp.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let o = repo.cmd().args(["drill", "--component"]).arg(&src).arg("--target").arg(&open).run().code(1);
    assert!(o.stderr.contains("writable by others"), "{}", o.stderr);
    // A drill without a target cleans up after itself, here inside TMPDIR.
    let scratch = tmp.join("tmpdir");
    fs::create_dir(&scratch).unwrap();
    repo.cmd().env("TMPDIR", &scratch).args(["drill", "--component"]).arg(&src).run().ok();
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
}

#[test]
fn an_interrupted_drill_stops_its_command_records_nothing_and_cleans_up() {
    let tmp = Tmp::new();
    let repo = Repo::init();
    let src = source(&tmp, 10_000);
    repo.run([Path::new("backup"), src.as_path()]).ok();
    let scratch = tmp.join("tmpdir");
    fs::create_dir(&scratch).unwrap();
    let marker = tmp.join("started");
    let cmd = format!(
        "--drill-command={}=sh -c 'echo $$ > {m}.tmp && mv {m}.tmp {m}; sleep 600'",
        src.display(),
        m = marker.display()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&repo.path)
        .args(["drill", &cmd])
        .env("CAIRN_PASSWORD", PASSWORD)
        .env("TMPDIR", &scratch)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A readiness wait, not a timed assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the drill command did not start");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("cairn drill exited ({st}) before its drill command started");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let shell: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(shell, 0) } == 0;
    assert!(!alive, "the drill command outlived the interrupted drill");
    assert!(!repo.path.join("drills").exists(), "an interrupted drill was recorded");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0, "the scratch directory was left behind");
}
