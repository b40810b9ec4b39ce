//! `cairn health`: freshness per host and per component, as a Nagios/Icinga plugin (exit 0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN), on real backups taken at chosen times (`--time`).

use crate::common::*;

/// RFC 3339 for `hours` ago.
fn ago(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours)).to_rfc3339()
}

#[test]
fn freshness_per_host_and_component_with_plugin_exit_codes() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    write(src.join("a"), "a");

    // Nothing yet: CRITICAL.
    let o = repo.cmd().args(["health", "--max-age", "26h"]).run();
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("CAIRN HEALTH CRITICAL - no snapshot matches"), "{}", o.stdout);

    // mail1 backed up 30 hours ago: CRITICAL, named in the status line, with performance data.
    repo.cmd().args(["backup", "-q", "--host", "mail1", "--time", &ago(30)]).arg(&src).run().ok();
    let o = repo.cmd().args(["health", "--max-age", "26h"]).run();
    assert_eq!(o.code, 2, "{}", o.stdout);
    let first = o.stdout.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("CAIRN HEALTH CRITICAL - critical: mail1"), "{first}");
    assert!(first.contains(" | 'mail1'=") && first.contains("s;;93600"), "{first}");

    // Tonight's backup of mail1, with a dump that fails: the host is fresh, the dump is not.
    repo.cmd().args(["backup", "-q", "--host", "mail1", "--command", "/db.dump=false"]).arg(&src).run().code(3);
    let o = repo.cmd().args(["--json", "health", "--max-age", "26h"]).run();
    assert_eq!(o.code, 2, "{}", o.stdout);
    let v = o.json();
    assert_eq!((v["status"].as_str(), v["exit_code"].as_u64()), (Some("critical"), Some(2)), "{v}");
    let check = |component: Option<&str>| {
        let all = v["checks"].as_array().cloned().unwrap_or_default();
        all.into_iter().find(|c| c["host"] == "mail1" && c["component"].as_str() == component).expect("a check")
    };
    assert_eq!(check(None)["status"], "ok", "{v}");
    assert_eq!(check(Some("/db.dump"))["status"], "critical", "{v}");
    assert!(check(Some("/db.dump"))["snapshot"].is_null(), "never held: {v}");
    assert_eq!(check(Some(src.to_str().unwrap_or_default()))["status"], "ok", "{v}");

    // A good night, and a second host 2 hours ago: WARNING past --warn 1h, OK without it.
    repo.cmd().args(["backup", "-q", "--host", "mail1", "--command", "/db.dump=echo rows"]).arg(&src).run().ok();
    repo.cmd().args(["backup", "-q", "--host", "web", "--time", &ago(2)]).arg(&src).run().ok();
    let o = repo.cmd().args(["health", "--warn", "1h", "--crit", "26h"]).run();
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.starts_with("CAIRN HEALTH WARNING - warning: web"), "{}", o.stdout);
    let o = repo.cmd().args(["health", "--max-age", "26h"]).run();
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.starts_with("CAIRN HEALTH OK - 2 host(s)"), "{}", o.stdout);
    // A component every host must have: web has no dump.
    let o = repo.cmd().args(["health", "--max-age", "26h", "--component", "/db.dump"]).run();
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stdout.lines().any(|l| l.starts_with("CRITICAL") && l.contains("web:/db.dump in no snapshot")),
        "{}",
        o.stdout
    );
    let o = repo.cmd().args(["health", "--max-age", "26h", "--host", "mail1", "--component", "/db.dump"]).run();
    assert_eq!(o.code, 0, "{}", o.stdout);

    // A repository that cannot be read, a wrong password, no threshold: UNKNOWN.
    let o = cairn().args(["-r"]).arg(tmp.join("nowhere")).args(["health", "--max-age", "1d"]).password(PASSWORD).run();
    assert_eq!(o.code, 3, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("CAIRN HEALTH UNKNOWN - "), "{}", o.stdout);
    let o = cairn().args(["-r"]).arg(&repo.path).args(["health", "--max-age", "1d"]).password("wrong").run();
    assert_eq!(o.code, 3, "{}{}", o.stdout, o.stderr);
    let o = repo.cmd().arg("health").run();
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(o.stdout.contains("--max-age"), "{}", o.stdout);
}
