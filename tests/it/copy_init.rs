//! What `copy` builds on. `init --copy-chunker-params --from-repo SRC` (restic's flags): a new
//! repository whose blob ids and chunk boundaries are the source's (its id and chunker keys and
//! chunker parameters), with its own password and encryption key; the source's password comes
//! from the `--from-*` options or `CAIRN_FROM_PASSWORD`, never from the target's. And a
//! snapshot that records its original (snapshot version 3), as `snapshots --json` shows it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use crate::common::*;

/// The target repositories' password (the sources' is [`PASSWORD`]).
const TARGET_PASSWORD: &str = "target password, not the source's";

fn open(path: &Path, password: &str) -> cairn::Repository {
    let backend: Arc<dyn cairn::backend::Backend> = Arc::new(cairn::backend::local::LocalBackend::new(path));
    cairn::Repository::open(backend, password.as_bytes()).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The data blobs of the repository at `path`: (id, plaintext length), from its index.
fn data_blobs(path: &Path, password: &str) -> BTreeSet<(String, u32)> {
    open(path, password)
        .index_files()
        .expect("read the index files")
        .into_iter()
        .flat_map(|(_, f)| f.packs)
        .flat_map(|p| p.blobs)
        .filter(|b| b.kind() == Some(cairn::blob::BlobType::Data))
        .map(|b| (b.id.to_hex(), b.raw_length))
        .collect()
}

/// `init --copy-chunker-params` from a source whose password is in a file: the same file
/// backed up into both gives the same data blobs (ids and lengths, so the same boundaries),
/// which an independently made repository does not; each opens with its own password only.
#[test]
fn copy_chunker_params_gives_the_sources_blob_ids() {
    let src = Repo::init();
    let tmp = Tmp::new();
    let pwfile = tmp.join("source-password");
    write(&pwfile, format!("{PASSWORD}\n"));
    let target = tmp.join("target");
    let out = cairn()
        .arg("-r")
        .arg(&target)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(&src.path)
        .arg("--from-password-file")
        .arg(&pwfile)
        .password(TARGET_PASSWORD)
        .run()
        .ok();
    assert!(out.stdout.contains("copied the chunker parameters"), "{}", out.stdout);
    assert!(out.stdout.contains(&src.path.display().to_string()), "{}", out.stdout);
    let independent = tmp.join("independent");
    cairn().arg("-r").arg(&independent).arg("init").password(TARGET_PASSWORD).run().ok();

    // About 12 chunks at the default 512 KiB average.
    let data = tmp.join("data");
    std::fs::create_dir(&data).unwrap();
    write(data.join("noise.bin"), random_bytes(16, 6 << 20));
    src.run(["backup".as_ref(), data.as_os_str()]).ok();
    for repo in [&target, &independent] {
        cairn().arg("-r").arg(repo).arg("backup").arg(&data).password(TARGET_PASSWORD).run().ok();
    }
    let in_source = data_blobs(&src.path, PASSWORD);
    assert!(in_source.len() > 3, "{} data blobs", in_source.len());
    assert_eq!(data_blobs(&target, TARGET_PASSWORD), in_source);
    assert!(data_blobs(&independent, TARGET_PASSWORD).is_disjoint(&in_source));
    let (s, t, i) = (open(&src.path, PASSWORD), open(&target, TARGET_PASSWORD), open(&independent, TARGET_PASSWORD));
    assert!(t.same_blob_ids(&s) && s.same_blob_ids(&t));
    assert!(!i.same_blob_ids(&s));
    assert_ne!(t.config().id, s.config().id, "its own repository id");
    assert_eq!(t.config().chunker, s.config().chunker);

    // Each opens with its own password only.
    cairn().arg("-r").arg(&target).arg("snapshots").password(PASSWORD).run().code(12);
    src.cmd().password(TARGET_PASSWORD).arg("snapshots").run().code(12);
    let listed = cairn().arg("-r").arg(&target).args(["--json", "snapshots"]).password(TARGET_PASSWORD).run().ok();
    assert_eq!(listed.json().as_array().map(Vec::len), Some(1));
}

/// The source's password: from `CAIRN_FROM_PASSWORD` or `--from-password-command`; a wrong one
/// exits 12 naming the source; the target's own password (`CAIRN_PASSWORD`) is never tried
/// on the source. No target is created by a failed init.
#[test]
fn the_source_password_is_its_own() {
    let src = Repo::init();
    let tmp = Tmp::new();
    let target = tmp.join("target");
    let init = || {
        cairn()
            .arg("-r")
            .arg(&target)
            .args(["init", "--copy-chunker-params", "--from-repo"])
            .arg(&src.path)
            .password(TARGET_PASSWORD)
    };

    let out = init().env("CAIRN_FROM_PASSWORD", "not the source's password").run().code(12);
    assert!(out.stderr.contains("wrong password for the source repository"), "{}", out.stderr);
    assert!(out.stderr.contains(&src.path.display().to_string()), "{}", out.stderr);
    assert!(out.stderr.contains("--from-password-file"), "{}", out.stderr);
    assert!(!target.join("config").exists(), "a failed init created the target");

    // The source's password given as the target's (CAIRN_PASSWORD) only: not used for the source.
    let out = cairn()
        .arg("-r")
        .arg(&target)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(&src.path)
        .password(PASSWORD)
        .run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("CAIRN_FROM_PASSWORD"), "{}", out.stderr);
    assert!(!target.join("config").exists(), "a failed init created the target");

    // A source that does not exist.
    let out = cairn()
        .arg("-r")
        .arg(&target)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(tmp.join("nothing"))
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .password(TARGET_PASSWORD)
        .run()
        .code(10);
    assert!(out.stderr.contains("nothing"), "{}", out.stderr);

    // The right one from a command, with --json: restic's `initialized` message, as plain init.
    let out = init().arg("--from-password-command").arg(format!("echo '{PASSWORD}'")).arg("--json").run().ok();
    let j = out.json();
    assert_eq!(j["message_type"], "initialized");
    assert!(is_hex(j["id"].as_str().unwrap(), 64), "{j}");
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "message_type", "repository"]);
    assert!(open(&target, TARGET_PASSWORD).same_blob_ids(&open(&src.path, PASSWORD)));
    // A repository is there now: a second init is refused and changes nothing.
    let state = raw_state(&target);
    init().env("CAIRN_FROM_PASSWORD", PASSWORD).run().code(1);
    assert!(raw_state(&target) == state, "a second init changed the repository");
}

/// `--copy-chunker-params` without a source is an argument error (exit 2); `--from-repo`
/// without `--copy-chunker-params` is refused (exit 1), unless it only comes from
/// `CAIRN_FROM_REPOSITORY` (set for `copy`), which plain init ignores.
#[test]
fn copy_chunker_params_and_from_repo_go_together() {
    let src = Repo::init();
    let tmp = Tmp::new();
    let target = tmp.join("target");
    let out = cairn()
        .arg("-r")
        .arg(&target)
        .args(["init", "--copy-chunker-params"])
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .password(TARGET_PASSWORD)
        .run()
        .code(2);
    assert!(out.stderr.contains("--from-repo"), "{}", out.stderr);
    let out = cairn()
        .arg("-r")
        .arg(&target)
        .args(["init", "--from-repo"])
        .arg(&src.path)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .password(TARGET_PASSWORD)
        .run()
        .code(1);
    assert!(out.stderr.contains("--copy-chunker-params"), "{}", out.stderr);
    assert!(!target.exists() || !target.join("config").exists(), "a refused init created the target");

    // From the environment only: a plain init, keys of its own.
    cairn()
        .arg("-r")
        .arg(&target)
        .arg("init")
        .env("CAIRN_FROM_REPOSITORY", &src.path)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .password(TARGET_PASSWORD)
        .run()
        .ok();
    assert!(!open(&target, TARGET_PASSWORD).same_blob_ids(&open(&src.path, PASSWORD)));
}

/// A snapshot with an original (written through the library, as `copy` writes one: version 3)
/// is listed with restic's `original` key, which other snapshots do not have; `check` reads it
/// and `forget` removes it like any other.
#[test]
fn snapshots_json_shows_the_original_of_a_copy() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("src/a"), random_bytes(3, 10_000));
    let summary = repo.backup_json([tmp.join("src")]);
    let first = summary["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let r = open(&repo.path, PASSWORD);
    let id = cairn::id::SnapshotId::from_hex(&first).unwrap();
    let mut copy: cairn::snapshot::Snapshot = r.load(&id).unwrap();
    copy.original = Some(id);
    copy.tags.push("copied".into());
    let saved = r.save(&copy).unwrap();
    let copy_id = saved.to_hex();
    // Read back from the file by another opening: the original is stored, not just kept.
    let reread: cairn::snapshot::Snapshot = open(&repo.path, PASSWORD).load(&saved).unwrap();
    assert_eq!(reread.original, Some(id));

    let listed = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(listed.len(), 2);
    let by_id = |want: &str| listed.iter().find(|s| s["id"] == want).unwrap_or_else(|| panic!("{want} not listed"));
    assert!(by_id(&first).get("original").is_none(), "{}", by_id(&first));
    assert_eq!(by_id(&copy_id)["original"], first.as_str());
    assert_eq!(by_id(&copy_id)["tags"], serde_json::json!(["copied"]));
    assert_eq!(by_id(&copy_id)["tree"], by_id(&first)["tree"]);
    repo.run(["check"]).ok();
    repo.run(["forget", &copy_id]).ok();
    assert_eq!(repo.snapshots::<[&str; 0], &str>([]).len(), 1);
}
