//! Integration tests of what `cairn backup` does with its sources on the file system: sources
//! that are missing (no snapshot, exit 1), `/` as a source, one-file-system mode and mount
//! points, and a parent snapshot whose root tree cannot be read.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::id::{BlobId, Id};
use cairn::repository::Repository;

/// Every file of the repository but its locks: name and content.
fn stored_files(repo: &Repo) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    raw_state(&repo.path).into_iter().filter(|(p, _)| !p.starts_with("locks")).collect()
}

#[test]
fn missing_sources_write_no_snapshot_and_exit_1() {
    let repo = Repo::init();
    let src = Tmp::new();
    let tree = src.join("tree");
    write(tree.join("mail.txt"), "the real data\n");
    let first = repo.backup_json([&tree]);
    let first = first["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let before = stored_files(&repo);

    // A mistyped only source whose parent directory exists (this used to save a snapshot
    // holding only that parent, exit 3), then two missing sources, then a source below a
    // regular file.
    let typo = src.join("tre");
    let other = src.join("nowhere/at/all");
    let below_file = tree.join("mail.txt/x");
    for args in [vec![typo.clone()], vec![typo.clone(), other.clone()], vec![below_file.clone()]] {
        let out = repo.cmd().arg("backup").args(&args).run().code(1);
        for p in &args {
            assert!(out.stderr.contains(p.to_str().unwrap()), "stderr does not name {}:\n{}", p.display(), out.stderr);
        }
        assert!(out.stderr.contains("no snapshot was written"), "{}", out.stderr);
        assert!(!out.stdout.contains("saved"), "{}", out.stdout);
        // Nothing was written: no pack, no index, no snapshot.
        assert_eq!(stored_files(&repo), before, "a backup of missing sources wrote to the repository");
    }
    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["id"], first.as_str());

    // Every source excluded: nothing was read either.
    let out = repo.cmd().arg("backup").arg(&tree).args(["--exclude", "tree"]).run().code(1);
    assert!(out.stderr.contains("exclude"), "{}", out.stderr);
    assert_eq!(repo.snapshots::<[&str; 0], &str>([]).len(), 1);

    // The retention job after a failed run keeps the real data.
    repo.run(["forget", "--keep-last", "1", "--prune"]).ok();
    let target = Tmp::new();
    repo.run([
        OsString::from("restore"),
        OsString::from("latest"),
        OsString::from("-t"),
        target.path.clone().into_os_string(),
    ])
    .ok();
    assert_eq!(fs::read(restored(&target.path, &tree).join("mail.txt")).unwrap(), b"the real data\n");

    // One source readable, one missing: saved, exit 3, the missing one named.
    let elsewhere = Tmp::new();
    let lost = elsewhere.join("lost");
    let out = repo.cmd().arg("--json").arg("backup").arg(&tree).arg(&lost).run().code(3);
    assert!(out.stderr.contains(lost.to_str().unwrap()), "{}", out.stderr);
    let id = out.json()["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let target = Tmp::new();
    repo.run([
        OsString::from("restore"),
        OsString::from(&id),
        OsString::from("-t"),
        target.path.clone().into_os_string(),
    ])
    .ok();
    assert_same_tree(&tree, &restored(&target.path, &tree));
    // The directory holding only the missing source is not recorded as an empty one.
    assert!(!restored(&target.path, &elsewhere.path).exists());
}

/// A directory at `/` for one test, with a tmpfs mounted on its `mnt`; unmounted and removed
/// on drop.
struct RootDir {
    path: PathBuf,
}

impl RootDir {
    fn new() -> RootDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = PathBuf::from(format!("/cairn-sources-test-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let dir = RootDir { path };
        fs::create_dir(dir.mnt()).unwrap();
        let st =
            Command::new("mount").args(["-t", "tmpfs", "cairn-test", dir.mnt().to_str().unwrap()]).status().unwrap();
        assert!(st.success(), "mount -t tmpfs on {} failed (the tests run as root)", dir.mnt().display());
        dir
    }

    fn mnt(&self) -> PathBuf {
        self.path.join("mnt")
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `--exclude /NAME` for every entry of `/` but `keep`.
fn exclude_all_of_root_but(keep: &Path) -> Vec<OsString> {
    let keep = keep.file_name().unwrap();
    let mut args = Vec::new();
    for e in fs::read_dir("/").unwrap() {
        let name = e.unwrap().file_name();
        if name != keep {
            args.push(OsString::from("--exclude"));
            let mut p = OsString::from("/");
            p.push(&name);
            args.push(p);
        }
    }
    args
}

#[test]
fn backup_of_root_with_one_file_system_keeps_mount_points_empty() {
    assert!(is_root(), "this test mounts a tmpfs: run it as root");
    let repo = Repo::init();
    let dir = RootDir::new();
    write(dir.path.join("file.txt"), "on the root file system\n");
    write(dir.path.join("sub/a.txt"), "a\n");
    write(dir.mnt().join("inside.txt"), "on the tmpfs\n");
    let excludes = exclude_all_of_root_but(&dir.path);
    let restore = |id: &str| -> Tmp {
        let target = Tmp::new();
        repo.run([
            OsString::from("restore"),
            OsString::from(id),
            OsString::from("-t"),
            target.path.clone().into_os_string(),
        ])
        .ok();
        let top: Vec<OsString> = fs::read_dir(&target.path).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(
            top,
            vec![dir.path.file_name().unwrap().to_os_string()],
            "the excludes let more than the test directory in"
        );
        target
    };

    // One file system below an ordinary source: the tmpfs is kept as an empty directory.
    let out = repo.cmd().arg("--json").args(["backup", "-x"]).arg(&dir.path).run().ok();
    let target = restore(out.json()["snapshot_id"].as_str().unwrap());
    let got = restored(&target.path, &dir.path);
    assert!(got.join("mnt").is_dir(), "the mount point below {} is not kept as a directory", dir.path.display());
    assert_eq!(fs::read_dir(got.join("mnt")).unwrap().count(), 0, "-x entered the tmpfs");

    // `/` with a path inside it, one file system: the tmpfs below is an empty directory.
    let out = repo
        .cmd()
        .arg("--json")
        .args(["backup", "-x", "/"])
        .arg(dir.path.join("sub"))
        .args(&excludes)
        .timeout(Duration::from_secs(60))
        .run()
        .ok();
    let id = out.json()["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    let snap = snaps.iter().find(|s| s["id"] == id.as_str()).expect("the snapshot is listed");
    assert_eq!(snap["paths"], serde_json::json!(["/"]));
    let target = restore(&id);
    let got = restored(&target.path, &dir.path);
    assert_eq!(fs::read(got.join("file.txt")).unwrap(), b"on the root file system\n");
    assert_eq!(fs::read(got.join("sub/a.txt")).unwrap(), b"a\n");
    assert!(got.join("mnt").is_dir(), "the mount point is not kept as a directory");
    assert_eq!(fs::read_dir(got.join("mnt")).unwrap().count(), 0, "-x entered the tmpfs");

    // A source given on the other file system is entered, even inside `/`.
    let out = repo
        .cmd()
        .arg("--json")
        .args(["backup", "-x", "/"])
        .arg(dir.mnt())
        .args(&excludes)
        .timeout(Duration::from_secs(60))
        .run()
        .ok();
    let target = restore(out.json()["snapshot_id"].as_str().unwrap());
    assert_same_tree(&dir.path, &restored(&target.path, &dir.path));

    // Without -x the tmpfs is read, and `/` alone works.
    let out =
        repo.cmd().arg("--json").args(["backup", "/"]).args(&excludes).timeout(Duration::from_secs(60)).run().ok();
    let target = restore(out.json()["snapshot_id"].as_str().unwrap());
    assert_same_tree(&dir.path, &restored(&target.path, &dir.path));
}

/// Delete the pack that holds snapshot `id`'s root tree; returns the tree's id.
fn delete_root_tree_pack(repo: &Repo, id: &str) -> String {
    let snaps = repo.snapshots::<[&str; 0], &str>([]);
    let tree = snaps.iter().find(|s| s["id"] == id).expect("the snapshot")["tree"].as_str().expect("tree").to_string();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo.path));
    let r = Repository::open(backend, PASSWORD.as_bytes()).expect("open the repository");
    let index = r.load_index().expect("load the index");
    let (pack, _) = index.get(&BlobId(Id::from_hex(&tree).expect("tree id"))).expect("the root tree is indexed");
    let name = pack.id.to_hex();
    fs::remove_file(repo.path.join("data").join(&name[..2]).join(&name)).expect("delete the tree's pack");
    tree
}

#[test]
fn unreadable_parent_root_tree_falls_back_to_no_parent() {
    let repo = Repo::init();
    let src = Tmp::new();
    // Flat: the root tree is the only tree, so nothing the next backups store is in its pack.
    let tree = src.join("tree");
    write(tree.join("a.bin"), random_bytes(7, 300_000));
    write(tree.join("b.txt"), "b\n");
    let first = repo.backup_json([&tree]);
    let first = first["snapshot_id"].as_str().unwrap().to_string();
    let root = delete_root_tree_pack(&repo, &first);

    for (n, parent_args) in [(1, vec![]), (2, vec!["--parent", &first[..8]])] {
        write(tree.join("b.txt"), format!("b, changed {n}\n"));
        let out = repo.cmd().arg("--json").arg("backup").arg(&tree).args(&parent_args).run().ok();
        assert!(
            out.stderr.contains(&format!("parent snapshot {}", &first[..8])),
            "no warning naming the parent:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains(&root[..8]), "the warning does not name the tree:\n{}", out.stderr);
        let v = out.json();
        // Every file was read: none is counted unchanged.
        assert_eq!(v["files_unchanged"], 0, "{v}");
        assert_eq!(v["files_new"], 2, "{v}");
        let id = v["snapshot_id"].as_str().unwrap().to_string();
        let snaps = repo.snapshots::<[&str; 0], &str>([]);
        assert!(
            snaps.iter().find(|s| s["id"] == id.as_str()).unwrap()["parent"].is_null(),
            "an unused parent is recorded"
        );
        let target = Tmp::new();
        repo.run([
            OsString::from("restore"),
            OsString::from(&id),
            OsString::from("-t"),
            target.path.clone().into_os_string(),
        ])
        .ok();
        assert_same_tree(&tree, &restored(&target.path, &tree));
    }
}

/// A source reached through a symbolic link to a directory on its way (`/srv -> /data/srv`)
/// is backed up under the path given, the link followed.
#[test]
fn a_source_below_a_symlinked_directory_is_backed_up() {
    let repo = Repo::init();
    let tmp = Tmp::new();
    write(tmp.join("real/mail/cur/1.eml"), "a message\n");
    std::os::unix::fs::symlink("real", tmp.join("link")).unwrap();
    let source = tmp.join("link/mail");
    repo.run([std::ffi::OsStr::new("backup"), source.as_os_str()]).ok();
    let target = tmp.join("t");
    repo.run([std::ffi::OsStr::new("restore"), "latest".as_ref(), "--target".as_ref(), target.as_os_str()]).ok();
    assert_same_tree(&tmp.join("real/mail"), &restored(&target, &source));
}
