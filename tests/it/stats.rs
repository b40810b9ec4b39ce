//! `cairn stats` in restic's four counting modes, checked against the source tree as std::fs
//! sees it and against the repository's own files (index files, `data/`), and beside a running
//! backup; `snapshots --latest N` and `--group-by`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// What std::fs says a restore of `src` (backed up by its absolute path) writes, counted as
/// restic's restore-size mode counts: (entries, bytes). Every entry counts, the directories
/// above `src` in the snapshot included; a file with more than one link adds its size once per
/// (device, inode).
fn restore_size(src: &Path) -> (u64, u64) {
    // `src` and the directories above it (not `/`) are entries of the snapshot too.
    let (mut entries, mut bytes) = (src.components().count() as u64 - 1, 0);
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            entries += 1;
            if md.is_dir() {
                dirs.push(p);
            } else if md.is_file() && (md.nlink() == 1 || linked.insert((md.dev(), md.ino()))) {
                bytes += md.len();
            }
        }
    }
    (entries, bytes)
}

/// The distinct contents of the regular files below each of `roots`: bytes → length.
fn distinct_contents(roots: &[&Path]) -> BTreeMap<Vec<u8>, u64> {
    let mut out = BTreeMap::new();
    for root in roots {
        for (rel, e) in listing(root) {
            if e.kind == Kind::File {
                let bytes = fs::read(root.join(rel)).unwrap();
                let len = bytes.len() as u64;
                out.insert(bytes, len);
            }
        }
    }
    out
}

/// A tree with duplicate files, hard links (one pair across directories), empty files, a
/// sparse file, a symlink, a compressible file and a nested directory.
fn make_tree(src: &Path) {
    let a = random_bytes(1, 300_000);
    write(src.join("a"), &a);
    write(src.join("dup1"), &a);
    write(src.join("sub/deeper/dup2"), &a);
    write(src.join("b"), random_bytes(2, 50_000));
    write(src.join("empty1"), "");
    write(src.join("sub/empty2"), "");
    write(src.join("text"), "a line of text that compresses well\n".repeat(40_000));
    write(src.join("hl1"), random_bytes(3, 70_000));
    fs::hard_link(src.join("hl1"), src.join("sub/hl2")).unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    (&sparse).write_all(b"head").unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
}

fn stats(repo: &Repo, args: &[&str]) -> serde_json::Value {
    repo.cmd().args(["--json", "stats"]).args(args).run().ok().json()
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn modes_match_the_source_and_the_repository() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    make_tree(&src);
    repo.run([Path::new("backup"), Path::new("-q"), &src]).ok();

    // restore-size: entries and bytes as std::fs sees them, hard links once.
    let (entries, bytes) = restore_size(&src);
    let v = stats(&repo, &["latest"]);
    assert_eq!((u(&v, "total_file_count"), u(&v, "total_size")), (entries, bytes), "{v}");
    assert_eq!(u(&v, "snapshots_count"), 1, "{v}");
    assert!(v.get("total_blob_count").is_none(), "{v}");

    // files-by-contents: the three copies of `a`, the hard links and the empty files count once.
    let contents = distinct_contents(&[&src]);
    let v = stats(&repo, &["--mode", "files-by-contents"]);
    assert_eq!(u(&v, "total_file_count"), contents.len() as u64, "{v}");
    assert_eq!(u(&v, "total_size"), contents.values().sum::<u64>(), "{v}");

    // raw-data: with one snapshot every indexed blob is referenced; sizes as the index files
    // record them (read here through the library's index reader), within the packs on disk.
    let backend: std::sync::Arc<dyn cairn::backend::Backend> =
        std::sync::Arc::new(cairn::backend::local::LocalBackend::new(&repo.path));
    let r = cairn::repository::Repository::open(backend, PASSWORD.as_bytes()).expect("open the repository");
    let blobs: Vec<cairn::pack::BlobEntry> =
        r.index_files().expect("index files").into_iter().flat_map(|(_, f)| f.packs).flat_map(|p| p.blobs).collect();
    let packs_on_disk = disk_usage(&repo.path.join("data"));
    let v = stats(&repo, &["--mode", "raw-data"]);
    assert_eq!(u(&v, "total_blob_count"), blobs.len() as u64, "{v}");
    let stored: u64 = blobs.iter().map(|b| u64::from(b.length)).sum();
    assert_eq!(u(&v, "total_size"), stored, "{v}");
    assert!(u(&v, "total_size") <= packs_on_disk, "{v} vs {packs_on_disk} bytes of packs");
    assert_eq!(u(&v, "total_pack_size"), packs_on_disk, "{v}");
    let raw: u64 = blobs.iter().map(|b| u64::from(b.raw_length) + 17).sum();
    assert_eq!(u(&v, "total_uncompressed_size"), raw, "{v}");
    // The text file compresses: a ratio above 1 and some space saved.
    let ratio = v["compression_ratio"].as_f64().unwrap_or(0.0);
    let saving = v["compression_space_saving"].as_f64().unwrap_or(0.0);
    assert!(ratio > 1.0 && saving > 0.0 && saving < 100.0, "{v}");
    assert!(v.get("total_file_count").is_none(), "{v}");

    // blobs-per-file: one file per distinct non-empty content; each file's distinct blobs.
    let v = stats(&repo, &["--mode", "blobs-per-file"]);
    let non_empty: Vec<u64> = contents.values().copied().filter(|&n| n > 0).collect();
    assert_eq!(u(&v, "total_file_count"), non_empty.len() as u64, "{v}");
    assert!(u(&v, "total_blob_count") >= non_empty.len() as u64, "{v}");
    assert!(u(&v, "total_size") <= non_empty.iter().sum::<u64>(), "{v}");
    assert!(u(&v, "total_size") > 0, "{v}");

    // A second snapshot sharing most trees: restore-size adds both snapshots (each counted
    // whole, hard links once per snapshot); files-by-contents adds only the new content.
    write(src.join("sub/new"), random_bytes(4, 10_000));
    let (entries2, bytes2) = restore_size(&src);
    repo.run([Path::new("backup"), Path::new("-q"), &src]).ok();
    let v = stats(&repo, &[]);
    assert_eq!(u(&v, "snapshots_count"), 2, "{v}");
    assert_eq!((u(&v, "total_file_count"), u(&v, "total_size")), (entries + entries2, bytes + bytes2), "{v}");
    let v = stats(&repo, &["--mode", "files-by-contents"]);
    assert_eq!(u(&v, "total_file_count"), contents.len() as u64 + 1, "{v}");
    assert_eq!(u(&v, "repository_snapshots_count"), 2, "{v}");

    // Text output in restic's layout.
    let o = repo.run(["stats", "--mode", "raw-data", "latest"]).ok();
    assert!(o.stdout.starts_with("Stats in raw-data mode:\n     Snapshots processed:  1\n"), "{}", o.stdout);
    assert!(o.stdout.contains("\n        Total Blob Count:  "), "{}", o.stdout);
    assert!(o.stdout.contains("\n       Compression Ratio:  "), "{}", o.stdout);
    let o = repo.run(["stats"]).ok();
    assert!(o.stdout.contains(&format!("\n        Total File Count:  {}\n", entries + entries2)), "{}", o.stdout);

    // Bad input: an unknown mode is a usage error (exit 2), an unknown snapshot exit 1.
    let o = repo.run(["stats", "--mode", "sizes"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = repo.run(["stats", "0123abcd"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
}

/// stats takes a shared lock: it runs to the end while a backup holds its lock.
#[test]
fn runs_beside_a_running_backup() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let src = tmp.join("src");
    make_tree(&src);
    repo.run([Path::new("backup"), Path::new("-q"), &src]).ok();
    let mut child = repo.spawn(["backup", "-q", "--stdin", "--stdin-filename", "db.dump"]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&random_bytes(5, 1 << 20)).expect("feed the backup");
    let locks = || fs::read_dir(repo.path.join("locks")).map(|d| d.count()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while locks() == 0 {
        assert!(Instant::now() < deadline, "the backup took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    for mode in ["restore-size", "raw-data"] {
        let v = stats(&repo, &["--mode", mode]);
        assert_eq!(u(&v, "snapshots_count"), 1, "{v}");
    }
    // The backup still runs and holds its lock: stats did not wait for it.
    assert!(child.try_wait().expect("wait").is_none(), "the backup ended before stats ran");
    assert!(locks() >= 1, "the backup's lock is gone");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(u(&stats(&repo, &[]), "snapshots_count"), 2);
}

/// `snapshots --latest N` keeps the last N of each host and path set; `--group-by` prints one
/// table (one JSON object with restic's `group_key`) per group.
#[test]
fn snapshots_latest_and_group_by() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    let (p1, p2) = (tmp.join("etc"), tmp.join("srv"));
    write(p1.join("f"), "1");
    write(p2.join("g"), "2");
    let (s1, s2) = (p1.to_str().unwrap().to_string(), p2.to_str().unwrap().to_string());
    let mut day = 1;
    for host in ["alpha", "beta"] {
        for path in [&s1, &s2] {
            for _ in 0..3 {
                let time = format!("2026-11-{day:02}T03:00:00Z");
                repo.run(["backup", "-q", "--host", host, "--time", &time, path.as_str()]).ok();
                day += 1;
            }
        }
    }
    // Ungrouped --json stays one flat array, oldest first.
    let all = repo.snapshots(Vec::<&str>::new());
    assert_eq!(all.len(), 12);
    // --latest 1: the newest of each (host, paths): 4 snapshots, each its set's third.
    let latest = repo.snapshots(["--latest", "1"]);
    assert_eq!(latest.len(), 4, "{latest:?}");
    let days: Vec<&str> = latest.iter().map(|s| s["time"].as_str().unwrap_or_default()).collect();
    for d in ["2026-11-03", "2026-11-06", "2026-11-09", "2026-11-12"] {
        assert!(days.iter().any(|t| t.starts_with(d)), "{d} not in {days:?}");
    }
    assert_eq!(repo.snapshots(["--latest", "2", "--host", "beta"]).len(), 4);

    // --group-by host --json: restic's shape, one object per host.
    let v = repo.cmd().args(["--json", "snapshots", "--group-by", "host"]).run().ok().json();
    let groups = v.as_array().expect("an array of groups");
    assert_eq!(groups.len(), 2, "{v}");
    for (g, host) in groups.iter().zip(["alpha", "beta"]) {
        assert_eq!(g["group_key"]["hostname"], host, "{g}");
        assert!(g["group_key"]["paths"].is_null() && g["group_key"]["tags"].is_null(), "{g}");
        let snaps = g["snapshots"].as_array().expect("snapshots");
        assert_eq!(snaps.len(), 6, "{g}");
        assert!(snaps.iter().all(|s| s["hostname"] == host), "{g}");
    }
    let v = repo.cmd().args(["--json", "snapshots", "--group-by", "host,paths", "--latest", "2"]).run().ok().json();
    let groups = v.as_array().expect("an array of groups");
    assert_eq!(groups.len(), 4, "{v}");
    for g in groups {
        assert_eq!(g["snapshots"].as_array().map(Vec::len), Some(2), "{g}");
        let paths = g["group_key"]["paths"].as_array().expect("paths");
        assert!(paths == &[serde_json::json!(s1)] || paths == &[serde_json::json!(s2)], "{g}");
    }

    // Text: a header naming each group, then its table and footer.
    let o = repo.run(["snapshots", "--group-by", "host,paths", "--latest", "1"]).ok();
    for host in ["alpha", "beta"] {
        for p in [&s1, &s2] {
            let header = format!("snapshots for (host [{host}], paths [{p}]):");
            assert!(o.stdout.lines().any(|l| l == header), "{header} missing:\n{}", o.stdout);
        }
    }
    assert_eq!(o.stdout.lines().filter(|l| *l == "1 snapshots").count(), 4, "{}", o.stdout);
    let o = repo.run(["snapshots", "--latest", "1"]).ok();
    assert!(o.stdout.lines().any(|l| l == "4 snapshots"), "{}", o.stdout);
    assert!(!o.stdout.contains("snapshots for"), "{}", o.stdout);
    let o = repo.run(["snapshots", "--group-by", "host,user"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--group-by"), "{}", o.stderr);
}
