//! Extended attributes and POSIX ACLs (issue 12, point 8), on the real file system: /tmp
//! must support `user.*` attributes and ACLs (ext4 does), the tests run as root (for
//! `trusted.*` and the symlink case) and need `setfacl` (package `acl`) and `setpriv`
//! (util-linux).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The extended attributes of `path` itself (not following a symlink), sorted by name.
fn xattrs_of(path: &Path) -> Xattrs {
    let names = xattr::list(path).unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()));
    let mut v: Xattrs = names
        .map(|n| {
            let value = xattr::get(path, &n).unwrap_or_else(|e| panic!("lgetxattr {} {n:?}: {e}", path.display()));
            (n.as_bytes().to_vec(), value.expect("listed attribute is there"))
        })
        .collect();
    v.sort();
    v
}

fn set(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, name, value).unwrap_or_else(|e| panic!("lsetxattr {} {name}: {e}", path.display()));
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A source tree with attributes of every kind this issue names; returns the paths that carry
/// some (each must come back byte for byte).
fn make_source(src: &Path) -> Vec<PathBuf> {
    assert!(is_root(), "these tests need root (trusted.* attributes, attributes on a symlink)");
    write(src.join("dir/file.bin"), random_bytes(1, 10_000));
    write(src.join("dir/acl.txt"), b"acl\n");
    write(src.join("plain.txt"), b"no attributes\n");
    let file = src.join("dir/file.bin");
    // Binary values: NUL and 0xff bytes, an empty value, one of 4 KiB - 200 (ext4 keeps all
    // attributes of a file in one block).
    set(&file, "user.binary", &[0, 1, 2, 0, 0xfe, 0xff]);
    set(&file, "user.empty", b"");
    set(&file, "user.large", &random_bytes(2, 3_800));
    set(&file, "trusted.root_only", b"\x00trusted\x00");
    // A name that is not UTF-8 (names are bytes).
    xattr::set(&file, OsStr::from_bytes(b"user.\xff\xfe"), b"weird name").unwrap();
    // A POSIX ACL set by the real tool, and a default ACL on the directory.
    run_ok(Command::new("setfacl").args(["-m", "u:1234:r-x,g:4321:rw-"]).arg(src.join("dir/acl.txt")));
    run_ok(Command::new("setfacl").args(["-d", "-m", "u:1234:rwx"]).arg(src.join("dir")));
    set(&src.join("dir"), "user.on_dir", b"directory");
    // A symlink's own attributes (user.* is not allowed on links; trusted.* is, for root). The
    // target has its own, which must not be read or written through the link.
    std::os::unix::fs::symlink("file.bin", src.join("dir/link")).unwrap();
    set(&src.join("dir/link"), "trusted.on_link", b"the link itself");
    let paths = vec![file, src.join("dir/acl.txt"), src.join("dir"), src.join("dir/link")];
    for p in &paths {
        assert!(!xattrs_of(p).is_empty(), "{} has attributes", p.display());
    }
    assert!(xattrs_of(&src.join("dir/acl.txt")).iter().any(|(n, _)| n == b"system.posix_acl_access"));
    assert!(xattrs_of(&src.join("dir")).iter().any(|(n, _)| n == b"system.posix_acl_default"));
    paths
}

fn restore(repo: &Repo, target: &Path) -> Output {
    repo.run([OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--target"), target.as_os_str()])
}

/// Every node `ls --json` prints, by path.
fn ls_json(repo: &Repo) -> std::collections::BTreeMap<String, serde_json::Value> {
    let out = repo.run(["--json", "ls", "--long", "latest"]).ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["struct_type"] == "node")
        .map(|v| (v["path"].as_str().unwrap().to_string(), v))
        .collect()
}

#[test]
fn xattrs_and_acls_are_backed_up_restored_and_listed() {
    let repo = Repo::init();
    let src = Tmp::new();
    let paths = make_source(&src.path);
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();

    let target = Tmp::new();
    restore(&repo, &target.path).ok();
    for p in &paths {
        let r = restored(&target.path, p);
        assert_eq!(xattrs_of(&r), xattrs_of(p), "attributes of {}", r.display());
    }
    assert!(xattrs_of(&restored(&target.path, &src.join("plain.txt"))).is_empty());
    // The link's target kept only its own attributes (nothing was set through the link).
    assert!(!xattrs_of(&restored(&target.path, &src.join("dir/file.bin")))
        .iter()
        .any(|(n, _)| n == b"trusted.on_link"));
    // The ACL is in force, not just stored: getfacl reads it back.
    let acl =
        Command::new("getfacl").arg("-cn").arg(restored(&target.path, &src.join("dir/acl.txt"))).output().unwrap();
    let acl = String::from_utf8_lossy(&acl.stdout);
    assert!(acl.contains("user:1234:r-x") && acl.contains("group:4321:rw-"), "getfacl: {acl}");
    assert_same_tree(&src.path, &restored(&target.path, &src.path));

    // ls --json: name as text, value in base64; files without attributes have no field.
    let nodes = ls_json(&repo);
    use base64::Engine;
    for p in &paths {
        let node = &nodes[&p.display().to_string()];
        let listed: Xattrs = node["xattrs"]
            .as_array()
            .unwrap_or_else(|| panic!("no xattrs in {node}"))
            .iter()
            .map(|x| {
                let b64 = |v: &serde_json::Value| {
                    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
                };
                let name = match x.get("name_base64") {
                    Some(raw) => b64(raw),
                    None => x["name"].as_str().unwrap().as_bytes().to_vec(),
                };
                (name, b64(&x["value"]))
            })
            .collect();
        assert_eq!(listed, xattrs_of(p), "ls --json of {}", p.display());
    }
    assert!(nodes[&src.join("plain.txt").display().to_string()].get("xattrs").is_none());
}

#[test]
fn an_attribute_change_alone_is_recorded_by_the_next_backup() {
    let repo = Repo::init();
    let src = Tmp::new();
    let file = src.join("f.txt");
    write(&file, b"same content\n");
    set(&file, "user.state", b"first");
    set(&file, "user.kept", b"kept");
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();
    let ls_value = |repo: &Repo| {
        let nodes = ls_json(repo);
        let node = &nodes[&file.display().to_string()];
        node["xattrs"].as_array().map(|a| {
            a.iter()
                .map(|x| (x["name"].as_str().unwrap().to_string(), x["value"].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
    };
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    // Same size, same mtime: only the ctime says the file changed.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    set(&file, "user.state", b"secnd");
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();
    assert_eq!(ls_value(&repo), Some(vec![("user.kept".into(), b64(b"kept")), ("user.state".into(), b64(b"secnd"))]));
    // diff reports it as a metadata change.
    let ids: Vec<String> =
        repo.snapshots(Vec::<&str>::new()).iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let diff = repo.run(["diff", &ids[0], &ids[1]]).ok();
    assert!(diff.stdout.lines().any(|l| l.starts_with('U') && l.ends_with("/f.txt")), "diff:\n{}", diff.stdout);

    // Unchanged (the parent's attributes are reused): still there.
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();
    assert_eq!(ls_value(&repo), Some(vec![("user.kept".into(), b64(b"kept")), ("user.state".into(), b64(b"secnd"))]));

    // With --ignore-ctime the ctime cannot tell, so the attributes are read, not reused.
    xattr::remove(&file, "user.kept").unwrap();
    set(&file, "user.state", b"third");
    repo.run([OsStr::new("backup"), OsStr::new("--ignore-ctime"), src.path.as_os_str()]).ok();
    assert_eq!(ls_value(&repo), Some(vec![("user.state".into(), b64(b"third"))]));

    // All removed: the entry has none (and its tree is a version 1 tree again).
    xattr::remove(&file, "user.state").unwrap();
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();
    assert_eq!(ls_value(&repo), None);
    let target = Tmp::new();
    restore(&repo, &target.path).ok();
    assert!(xattrs_of(&restored(&target.path, &file)).is_empty());
}

#[test]
fn an_attribute_restore_cannot_set_is_reported_by_path_and_name() {
    // Restored by an unprivileged user, trusted.* cannot be set: a message naming the file
    // and the attribute, the rest restored, exit 1.
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f.txt"), b"content\n");
    set(&src.join("f.txt"), "trusted.secret", b"root only");
    set(&src.join("f.txt"), "user.public", b"anyone");
    repo.run([OsStr::new("backup"), src.path.as_os_str()]).ok();

    let target = Tmp::new();
    let nobody = 65534;
    run_ok(Command::new("chmod").args(["-R", "a+rwX"]).arg(&repo.path));
    run_ok(Command::new("chmod").arg("a+x").arg(repo.path.parent().unwrap()));
    std::os::unix::fs::chown(&target.path, Some(nobody), Some(nobody)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&repo.path)
        .args(["--no-cache", "restore", "latest", "--target"])
        .arg(&target.path)
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let dest = restored(&target.path, &src.join("f.txt"));
    assert!(stderr.contains(&dest.display().to_string()) && stderr.contains("trusted.secret"), "stderr: {stderr}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"content\n");
    assert_eq!(xattrs_of(&dest), vec![(b"user.public".to_vec(), b"anyone".to_vec())]);
}
