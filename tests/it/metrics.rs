//! Monitoring with real programs: `--metrics-file` checked by Prometheus's `promtool`, a push
//! that a real `prometheus-pushgateway` serves, pings received by an HTTP server on 127.0.0.1,
//! and `health`'s size warnings on real backups.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// The samples of `text` named `name` whose labels include every `label="value"` in `with`:
/// their values.
fn values(text: &str, name: &str, with: &[&str]) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect()
}

/// The one value of `name` with labels `with`.
fn value(text: &str, name: &str, with: &[&str]) -> f64 {
    match values(text, name, with).as_slice() {
        [v] => *v,
        other => panic!("{name} {with:?}: {} samples ({other:?}) in\n{text}", other.len()),
    }
}

#[test]
fn one_metrics_file_holds_each_command_and_keeps_the_last_success_through_a_failure() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    for i in 0..5 {
        write(src.join(format!("f{i}")), random_bytes(i, 10_000));
    }
    let prom = tmp.join("textfile/cairn.prom");
    fs::create_dir_all(prom.parent().expect("dir")).expect("mkdir");
    // A series another program wrote stays.
    write(&prom, "# HELP other_thing Not cairn's\n# TYPE other_thing gauge\nother_thing 42\n");
    let m = |args: &[&str]| repo.cmd().arg("--metrics-file").arg(&prom).args(args).run();

    // A file that is gone by the second night: forget --prune reclaims its data.
    write(src.join("gone"), random_bytes(99, 200_000));
    m(&["backup", src.to_str().expect("utf-8")]).ok();
    fs::remove_file(src.join("gone")).expect("rm");
    m(&["backup", src.to_str().expect("utf-8")]).ok();
    m(&["forget", "--keep-last", "1", "--prune"]).ok();
    m(&["check"]).ok();
    m(&["drill", "--rto", "1h"]).ok();
    let target = tmp.join("restored");
    m(&["restore", "latest", "--target", target.to_str().expect("utf-8")]).ok();
    let text = fs::read_to_string(&prom).expect("metrics file");
    promtool_accepts(&text);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    let repo_label = format!("repository=\"{}\"", repo.path.display());
    let host_label = format!("host=\"{host}\"");
    let common = [repo_label.as_str(), host_label.as_str(), "profile=\"\""];
    for c in ["backup", "forget", "check", "drill", "restore"] {
        let label = format!("command=\"{c}\"");
        assert_eq!(value(&text, "cairn_command_exit_code", &[&label, common[0], common[1]]), 0.0, "{c}");
    }
    assert_eq!(value(&text, "other_thing", &[]), 42.0);
    // The second backup found the 5 files unchanged.
    assert_eq!(value(&text, "cairn_backup_files", &["state=\"unchanged\""]), 5.0);
    assert_eq!(value(&text, "cairn_backup_files", &["state=\"new\""]), 0.0);
    // Nothing of the 50 kB of files: only the snapshot's tree.
    assert!(value(&text, "cairn_backup_added_bytes", &common) < 10_000.0, "{text}");
    assert!(values(&text, "cairn_backup_component_success", &[]).is_empty(), "no dump, no component series");
    let success = value(&text, "cairn_backup_last_success_timestamp_seconds", &common);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(success > now - 600.0 && success <= now + 1.0, "{success} vs {now}");
    // forget --prune: two snapshots, one removed, the gone file's data reclaimed.
    assert_eq!(value(&text, "cairn_forget_removed_snapshots", &[]), 1.0);
    assert!(value(&text, "cairn_prune_reclaimed_bytes", &[]) > 0.0, "{text}");
    let packs: u64 = walk_files(&repo.path.join("data")).iter().map(|p| fs::metadata(p).map_or(0, |m| m.len())).sum();
    assert_eq!(value(&text, "cairn_repository_size_bytes", &[]), packs as f64);
    assert_eq!(value(&text, "cairn_snapshots", &[]), 1.0);
    assert_eq!(value(&text, "cairn_check_errors", &[]), 0.0);
    assert_eq!(value(&text, "cairn_restore_files", &common), 5.0);
    assert_eq!(value(&text, "cairn_restore_bytes", &common), 50_000.0);
    assert_eq!(value(&text, "cairn_restore_errors", &common), 0.0);
    // The drill: its time against its RTO, each component.
    assert_eq!(value(&text, "cairn_drill_rto_seconds", &common), 3600.0);
    let took = value(&text, "cairn_drill_duration_seconds", &common);
    assert!(took > 0.0 && took < 3600.0, "{took}");
    assert_eq!(value(&text, "cairn_drill_rto_exceeded", &[]), 0.0);
    let src_component = format!("component=\"{}\"", src.display());
    assert_eq!(value(&text, "cairn_drill_component_success", &[&src_component]), 1.0);
    assert!(value(&text, "cairn_drill_last_success_timestamp_seconds", &common) >= success);

    // A backup that fails: its exit code and time are written, its figures go, its last
    // success stays, and the other commands' series are untouched.
    let o = repo.cmd().arg("--metrics-file").arg(&prom).args(["backup"]).arg(tmp.join("missing")).run();
    assert_eq!(o.code, 1, "{}", o.stderr);
    let text = fs::read_to_string(&prom).expect("metrics file");
    promtool_accepts(&text);
    assert_eq!(value(&text, "cairn_command_exit_code", &["command=\"backup\""]), 1.0);
    assert_eq!(value(&text, "cairn_backup_last_success_timestamp_seconds", &common), success);
    assert!(value(&text, "cairn_backup_last_run_timestamp_seconds", &common) >= success - 600.0);
    assert!(values(&text, "cairn_backup_added_bytes", &[]).is_empty(), "stale figures removed:\n{text}");
    assert_eq!(value(&text, "cairn_command_exit_code", &["command=\"check\""]), 0.0);
    assert_eq!(value(&text, "cairn_check_errors", &[]), 0.0);

    // A night with a dump, then one where the dump fails: exit 3, the component's series says
    // so, and its last success stays the good night's.
    m(&["backup", "--command", "/db.dump=echo rows", src.to_str().expect("utf-8")]).ok();
    let text = fs::read_to_string(&prom).expect("metrics file");
    let good = value(&text, "cairn_backup_component_last_success_timestamp_seconds", &["component=\"/db.dump\""]);
    let success = value(&text, "cairn_backup_last_success_timestamp_seconds", &common);
    m(&["backup", "--command", "/db.dump=false", src.to_str().expect("utf-8")]).code(3);
    let text = fs::read_to_string(&prom).expect("metrics file");
    promtool_accepts(&text);
    assert_eq!(value(&text, "cairn_command_exit_code", &["command=\"backup\""]), 3.0);
    assert_eq!(value(&text, "cairn_backup_component_success", &["component=\"/db.dump\""]), 0.0);
    let src_label = format!("component=\"{}\"", src.display());
    assert_eq!(value(&text, "cairn_backup_component_success", &[&src_label]), 1.0);
    assert!(value(&text, "cairn_backup_component_last_success_timestamp_seconds", &[&src_label]) > 0.0);
    assert_eq!(
        value(&text, "cairn_backup_component_last_success_timestamp_seconds", &["component=\"/db.dump\""]),
        good
    );
    assert_eq!(value(&text, "cairn_backup_last_success_timestamp_seconds", &common), success, "exit 3 is no success");

    // A link or a device is never replaced (a root cairn given /dev/null must not replace it).
    let elsewhere = tmp.join("elsewhere.prom");
    write(&elsewhere, "secret_line_not_metrics\n");
    let link = tmp.join("textfile/link.prom");
    std::os::unix::fs::symlink(&elsewhere, &link).expect("symlink");
    let o = repo.cmd().arg("--metrics-file").arg(&link).arg("check").run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: metrics not written") && !o.stderr.contains("secret_line"), "{}", o.stderr);
    assert!(fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
    assert_eq!(fs::read_to_string(&elsewhere).expect("target"), "secret_line_not_metrics\n");
    let o = repo.cmd().args(["--metrics-file", "/dev/null", "check"]).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(fs::metadata("/dev/null").expect("/dev/null").file_type().is_char_device());
    // An empty setting is none.
    repo.cmd().env("CAIRN_METRICS_FILE", "").arg("check").run().ok();

    // A dry run writes nothing.
    let before = fs::read(&prom).expect("metrics file");
    m(&["backup", "--dry-run", src.to_str().expect("utf-8")]).ok();
    assert_eq!(fs::read(&prom).expect("metrics file"), before);
    // A backup of another host is labelled with that host.
    m(&["backup", "--host", "web1", src.to_str().expect("utf-8")]).ok();
    let text = fs::read_to_string(&prom).expect("metrics file");
    assert_eq!(value(&text, "cairn_command_exit_code", &["command=\"backup\"", "host=\"web1\""]), 0.0);
    // A metrics file that cannot be written is a warning: the backup's exit code stays.
    let o = repo.cmd().arg("--metrics-file").arg(tmp.join("no/such/dir/x.prom")).arg("backup").arg(&src).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: metrics not written"), "{}", o.stderr);
}

/// Every regular file below `root`.
fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir").flatten() {
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the status code and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// A Pushgateway on 127.0.0.1, stopped when dropped.
struct Pushgateway {
    child: Child,
    port: u16,
    _dir: Tmp,
}

impl Pushgateway {
    fn start() -> Pushgateway {
        let dir = Tmp::new();
        let port = free_port();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Debian's build persists to /var/lib/prometheus by default: this one keeps nothing.
            .arg("--persistence.file=")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("log")).expect("log"))
            .spawn()
            .expect("prometheus-pushgateway (Debian's package; bash .ci/test installs it)");
        let gw = Pushgateway { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/-/ready").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "the Pushgateway did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        gw
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_push_reaches_a_real_pushgateway_and_a_dead_one_does_not_fail_the_backup() {
    let gw = Pushgateway::start();
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a"), random_bytes(1, 5000));
    let url = format!("http://127.0.0.1:{}", gw.port);
    repo.cmd().args(["--metrics-push", &url, "backup", "--command", "/db.dump=echo rows"]).arg(&src).run().ok();
    repo.cmd().args(["--metrics-push", &url, "check"]).run().ok();
    let (status, body) = http_get(gw.port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    let grouped = [r#"job="cairn""#, &format!("host=\"{host}\"")];
    assert!(value(&body, "cairn_backup_added_bytes", &grouped) > 0.0, "{body}");
    // The file and the dump.
    assert_eq!(value(&body, "cairn_backup_files", &[r#"state="new""#, r#"command="backup""#]), 2.0);
    assert_eq!(value(&body, "cairn_backup_component_success", &[r#"component="/db.dump""#]), 1.0);
    assert_eq!(value(&body, "cairn_command_exit_code", &[r#"command="backup""#]), 0.0);
    assert_eq!(value(&body, "cairn_command_exit_code", &[r#"command="check""#]), 0.0);
    assert_eq!(value(&body, "cairn_check_errors", &grouped), 0.0);

    let success = value(&body, "cairn_backup_last_success_timestamp_seconds", &[r#"command="backup""#]);
    let dump = [r#"component="/db.dump""#, r#"command="backup""#];
    let dump_success = value(&body, "cairn_backup_component_last_success_timestamp_seconds", &dump);
    // A night whose dump fails (exit 3): the dump's last success stays, the night's is not moved.
    repo.cmd().args(["--metrics-push", &url, "backup", "--command", "/db.dump=false"]).arg(&src).run().code(3);
    let (_, body) = http_get(gw.port, "/metrics").expect("GET /metrics");
    assert_eq!(value(&body, "cairn_command_exit_code", &[r#"command="backup""#]), 3.0);
    assert_eq!(value(&body, "cairn_backup_component_success", &[r#"component="/db.dump""#]), 0.0);
    assert_eq!(value(&body, "cairn_backup_component_last_success_timestamp_seconds", &dump), dump_success);
    assert_eq!(value(&body, "cairn_backup_last_success_timestamp_seconds", &[r#"command="backup""#]), success);
    // A backup that fails outright: its figures go, its last success stays.
    let o = repo.cmd().args(["--metrics-push", &url, "backup"]).arg(tmp.join("missing")).run();
    assert_eq!(o.code, 1, "{}", o.stderr);
    let (_, body) = http_get(gw.port, "/metrics").expect("GET /metrics");
    assert_eq!(value(&body, "cairn_command_exit_code", &[r#"command="backup""#]), 1.0);
    assert!(values(&body, "cairn_backup_added_bytes", &[]).is_empty(), "{body}");
    assert_eq!(value(&body, "cairn_backup_last_success_timestamp_seconds", &[r#"command="backup""#]), success);
    assert_eq!(value(&body, "cairn_backup_component_last_success_timestamp_seconds", &dump), dump_success);

    // Nothing listens there: a warning after the retries, the backup's own exit code.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let o = repo.cmd().args(["--metrics-push", &dead, "backup"]).arg(&src).run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: metrics push failed"), "{}", o.stderr);
    assert!(!o.stderr.contains("127.0.0.1:1/"), "{}", o.stderr);
    // A push URL may carry a password: the commands of a backup never see it (nor the password).
    let o = repo
        .cmd()
        .env("CAIRN_METRICS_PUSH", "http://user:pushsecret@127.0.0.1:1/x")
        .args(["backup", "--command", "/env.txt=env"])
        .arg(&src)
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains("pushsecret"), "{}", o.stderr);
    let env = repo.run(["dump", "latest", "/env.txt"]).ok().stdout;
    assert!(env.contains("PATH=") && !env.contains("pushsecret") && !env.contains("CAIRN_PASSWORD"), "{env}");
}

/// What the ping receiver got: (method and path, body) per request.
type Pings = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server on 127.0.0.1 that answers 200 to everything and records each request.
fn ping_receiver() -> (u16, Pings) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Pings = Arc::new(Mutex::new(Vec::new()));
    let rec = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let what = line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            rec.lock().expect("lock").push((what, String::from_utf8_lossy(&body).into_owned()));
            let _ = r.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, got)
}

#[test]
fn run_pings_start_then_success_or_failure_with_its_report_and_a_dead_url_changes_nothing() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a"), "a");
    let pw = tmp.join("password");
    write(&pw, format!("{PASSWORD}\n"));
    let (port, pings) = ping_receiver();
    let prom = tmp.join("night.prom");
    let profile = |before: &str, ping: &str| {
        let f = tmp.join("night.toml");
        write(
            &f,
            format!(
                "[repository]\nrepo = {:?}\npassword-file = {:?}\n[backup]\npaths = [{:?}]\n[hooks]\nbefore = [{before}]\n[monitoring]\nping-url = {ping:?}\nmetrics-file = {:?}\n",
                repo.path.display().to_string(),
                pw.display().to_string(),
                src.display().to_string(),
                prom.display().to_string()
            ),
        );
        f
    };
    let cfg = profile("[\"true\"]", &format!("http://127.0.0.1:{port}/ping/abc"));
    let o = cairn().arg("--config").arg(&cfg).arg("run").run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let got = pings.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "POST /ping/abc/start");
    assert_eq!(got[1].0, "POST /ping/abc");
    assert!(got[1].1.contains("run of profile night: exit 0"), "{}", got[1].1);
    // The profile's metrics file: the run and its steps, labelled with the profile.
    let text = fs::read_to_string(&prom).expect("metrics file");
    promtool_accepts(&text);
    for c in ["run", "backup"] {
        let label = format!("command=\"{c}\"");
        assert_eq!(value(&text, "cairn_command_exit_code", &[&label, "profile=\"night\""]), 0.0, "{text}");
    }
    // A stream backed up by hand with the profile is not its backup: its metrics stay.
    let before = fs::read(&prom).expect("metrics file");
    cairn()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "--stdin", "--stdin-filename", "note"])
        .stdin(b"x".to_vec())
        .run()
        .ok();
    assert_eq!(fs::read(&prom).expect("metrics file"), before);
    // `config` shows where pings go, not the check's secret path.
    let o = cairn().arg("--config").arg(&cfg).arg("config").run().ok();
    assert!(
        o.stdout.contains(&format!("http://127.0.0.1:{port}/***")) && !o.stdout.contains("/ping/abc"),
        "{}",
        o.stdout
    );

    // A before hook fails: /fail, with the error in the body.
    let cfg = profile(
        "[\"sh\", \"-c\", \"echo database is down >&2; exit 1\"]",
        &format!("http://127.0.0.1:{port}/ping/abc"),
    );
    let o = cairn().arg("--config").arg(&cfg).arg("run").run();
    assert_eq!(o.code, 1, "{}", o.stderr);
    let got = pings.lock().expect("lock").clone();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3].0, "POST /ping/abc/fail");
    assert!(got[3].1.contains("database is down") && got[3].1.contains("exit 1"), "{}", got[3].1);

    // Nothing listens at the URL: warnings, and the run's exit code is its own.
    let cfg = profile("[\"true\"]", &format!("http://127.0.0.1:{}/ping/abc", free_port()));
    let o = cairn().arg("--config").arg(&cfg).arg("run").run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: ping failed"), "{}", o.stderr);
}

#[test]
fn health_warns_when_a_dump_shrinks_and_a_usage_error_is_unknown() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a"), "a");
    // Four nights with a 2 MiB dump, then one of 10 bytes (a dump of the wrong database).
    let dump = |bytes: u64| format!("/db.dump=head -c {bytes} /dev/zero");
    for _ in 0..4 {
        repo.cmd().args(["backup", "-q", "--command", &dump(2 << 20)]).arg(&src).run().ok();
    }
    let o = repo.cmd().args(["health", "--max-age", "1d"]).run();
    assert_eq!(o.code, 0, "{}", o.stdout);
    repo.cmd().args(["backup", "-q", "--command", &dump(10)]).arg(&src).run().ok();
    let o = repo.cmd().args(["health", "--max-age", "1d"]).run();
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.starts_with("CAIRN HEALTH WARNING - warning: "), "{}", o.stdout);
    assert!(o.stdout.contains(":/db.dump size 10 B in snapshot"), "{}", o.stdout);
    assert!(o.stdout.contains("median 2.00 MiB over the 4 before it"), "{}", o.stdout);
    let v = repo.cmd().args(["--json", "health", "--max-age", "1d"]).run().json();
    // The dump, and the total the backup processed (the dump was most of it).
    let found = v["size_anomalies"].as_array().cloned().unwrap_or_default();
    let dump = found.iter().find(|a| a["measure"] == "component").expect("the dump's anomaly");
    assert_eq!((dump["component"].as_str(), dump["bytes"].as_u64()), (Some("/db.dump"), Some(10)), "{v}");
    assert_eq!(dump["median_bytes"], 2 << 20, "{v}");
    assert!(found.iter().any(|a| a["measure"] == "total"), "{v}");
    // Turned off: OK.
    let o = repo.cmd().args(["health", "--max-age", "1d", "--size-factor", "0"]).run();
    assert_eq!(o.code, 0, "{}", o.stdout);
    // A mistyped flag is UNKNOWN (3), not clap's 2, which would read as CRITICAL.
    let o = repo.cmd().args(["health", "--max-agee", "1d"]).run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stdout.starts_with("CAIRN HEALTH UNKNOWN - usage error:"), "{}", o.stdout);
    let o = repo.cmd().args(["--password-flie", "x", "health", "--max-age", "1d"]).run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    let o = cairn().args(["-P", "no-such-profile-anywhere", "health", "--max-age", "1d"]).run();
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stdout.starts_with("CAIRN HEALTH UNKNOWN - "), "{}", o.stdout);
    let o = repo.cmd().args(["health", "--warn", "2d", "--crit", "1d"]).run();
    assert_eq!(o.code, 3, "{}", o.stdout);
    let o = repo.cmd().args(["snapshots", "--bogus"]).run();
    assert_eq!(o.code, 2, "other commands keep clap's usage exit code: {}", o.stderr);
}

#[test]
fn readme_alert_rules_pass_promtool() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("```yaml\ngroups:").expect("README has the alert rules block") + "```yaml\n".len();
    let len = readme.get(start..).and_then(|r| r.find("```")).expect("the block ends");
    let tmp = Tmp::new();
    let rules = tmp.join("cairn-rules.yml");
    write(&rules, readme.get(start..start + len).expect("block"));
    let out = Command::new("promtool").args(["check", "rules"]).arg(&rules).output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("SUCCESS: 9 rules found"), "{said}");
}
