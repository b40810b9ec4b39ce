//! `cairn mount`: the repository mounted for real through FUSE (/dev/fuse), read with ordinary
//! file system calls and compared with the source trees on disk.
//!
//! Each test runs `cairn -v mount` as a child process, waits until `snapshots/` shows in the
//! mountpoint, and stops it with SIGTERM (it must unmount and exit 0). A guard unmounts
//! (`fusermount -u -z`, else `umount -l`) and kills the child when a test fails halfway.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use filetime::FileTime;

/// True when `path` is a mount point of this process's mount namespace.
fn is_mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let want = path.to_string_lossy();
    // Field 5 is the mount point (spaces would be escaped as \040; test paths have none).
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// The FUSE unmount helper: `fusermount3` (fuse3) or `fusermount` (fuse 2).
fn fusermount() -> &'static str {
    let found = |b: &str| Command::new(b).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if found("fusermount3") {
        "fusermount3"
    } else {
        "fusermount"
    }
}

/// A running `cairn mount`; unmounts and kills it on drop if the test did not stop it.
struct Mounted {
    child: Option<Child>,
    point: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Mounted {
    /// Start `cairn -r REPO -v mount ARGS... POINT` and wait until `POINT/snapshots` exists.
    fn start(repo: &Repo, point: &Path, args: &[&str]) -> Mounted {
        fs::create_dir_all(point).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("-r").arg(&repo.path).arg("-v").arg("mount").args(args).arg(point);
        for k in ["CAIRN_REPOSITORY", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"] {
            cmd.env_remove(k);
        }
        cmd.env("CAIRN_PASSWORD", PASSWORD).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // SAFETY: setsid is async-signal-safe; no terminal, no password prompt.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("run cairn mount");
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut m = Mounted { child: Some(child), point: point.to_path_buf(), stderr: Some(stderr) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                panic!("cairn mount exited early ({status}):\n{}", m.stderr.take().unwrap().join().unwrap());
            }
            if point.join("snapshots").is_dir() {
                break;
            }
            assert!(Instant::now() < deadline, "the mount did not show snapshots/ within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(is_mounted(point), "{} is not in /proc/self/mountinfo", point.display());
        m
    }

    /// SIGTERM the process; it must exit 0 with the mountpoint unmounted. Returns its stderr.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill with a pid we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_for(&mut child, Duration::from_secs(60));
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert_eq!(status.code(), Some(0), "cairn mount after SIGTERM: {status}\nstderr:\n{stderr}");
        assert!(!is_mounted(&self.point), "{} is still mounted after cairn mount exited", self.point.display());
        stderr
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairn mount did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.point) {
            let ok = Command::new(fusermount())
                .arg("-u")
                .arg("-z")
                .arg(&self.point)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.point).status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `(bytes, blobs)` from the "fetched N bytes in M blobs" line `cairn -v mount` prints.
fn fetched(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("fetched "))
        .unwrap_or_else(|| panic!("no \"fetched\" line in:\n{stderr}"));
    let w: Vec<&str> = line.split(' ').collect();
    assert_eq!((w.len(), w[2], w[3], w[5]), (6, "bytes", "in", "blobs"), "line {line:?}");
    (w[1].parse().unwrap(), w[4].parse().unwrap())
}

/// A tree with nested directories, an empty file, files of 1 B to 5 MB, a symlink, a
/// hardlink pair and a FIFO, with distinct mtimes that have nanoseconds.
fn make_tree(root: &Path) {
    write(root.join("empty"), b"");
    write(root.join("a/one"), b"x");
    write(root.join("a/b/c/deep.txt"), b"deep down\n");
    for (i, size) in [1_000usize, 100_000, 1_000_000, 5_000_000].into_iter().enumerate() {
        write(root.join(format!("a/b/size{size}")), random_bytes(i as u64 + 1, size));
    }
    write(root.join("exec.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("exec.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("a/one"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("b/c/deep.txt", root.join("a/link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    write(root.join("hard1"), random_bytes(9, 70_000));
    fs::hard_link(root.join("hard1"), root.join("a/hard2")).unwrap();
    mkfifo(&root.join("a/fifo"), 0o640);
    if is_root() {
        // A character device like /dev/null (1:3); only root can make one.
        let c = std::ffi::CString::new(root.join("a/null").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
        assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    }
    let mut entries: Vec<PathBuf> = listing(root).into_keys().collect();
    // Deepest first, so that setting a directory's time is the last change to it.
    entries.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, rel) in entries.iter().enumerate() {
        let t = FileTime::from_unix_time(1_600_000_000 + 3_607 * i as i64, 100_000_007 + 7_919 * i as u32);
        filetime::set_symlink_file_times(root.join(rel), t, t).unwrap();
    }
}

#[test]
fn files_read_through_the_mount_equal_the_source() {
    let repo = Repo::init();
    let src = Tmp::new();
    make_tree(&src.path);
    repo.run([std::ffi::OsStr::new("backup"), src.path.as_os_str()]).ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);

    let view = point.join("snapshots/latest").join(src.path.strip_prefix("/").unwrap());
    let want = listing(&src.path);
    let got = listing(&view);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "entry names");
    for (rel, w) in &want {
        let g = &got[rel];
        let p = rel.display();
        assert_eq!(g.kind, w.kind, "{p}: type");
        assert_eq!(g.mode, w.mode, "{p}: permission bits");
        assert_eq!(g.mtime, w.mtime, "{p}: mtime (seconds, nanoseconds)");
        assert_eq!(g.target, w.target, "{p}: symlink target");
        assert!(g.content == w.content, "{p}: content differs");
        let (ms, mv) =
            (fs::symlink_metadata(src.path.join(rel)).unwrap(), fs::symlink_metadata(view.join(rel)).unwrap());
        if w.kind != Kind::Dir {
            assert_eq!(mv.len(), ms.len(), "{p}: size");
            assert_eq!(mv.nlink(), ms.nlink(), "{p}: link count");
        }
        assert_eq!((mv.uid(), mv.gid()), (ms.uid(), ms.gid()), "{p}: owner");
        assert_eq!(mv.file_type(), ms.file_type(), "{p}: file type");
        assert_eq!(mv.rdev(), ms.rdev(), "{p}: device number");
    }
    assert_eq!(got[Path::new("a/hard2")].nlink, 2, "hardlink pair: link count");
    assert_eq!(got[Path::new("a/fifo")].kind, Kind::Fifo);
    if is_root() {
        let md = fs::symlink_metadata(view.join("a/null")).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()) && md.rdev() == libc::makedev(1, 3),
            "a/null: {md:?}"
        );
    }
    // Reads at arbitrary offsets (blob boundaries of a 5 MB file are crossed).
    let mut f = fs::File::open(view.join("a/b/size5000000")).unwrap();
    let data = random_bytes(4, 5_000_000);
    for off in [0u64, 1, 524_287, 1_048_576, 2_500_000, 4_999_000] {
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut buf = vec![0u8; 300_000];
        let n = f.read(&mut buf).unwrap();
        let end = (off as usize + n).min(data.len());
        assert!(n > 0 && buf[..n] == data[off as usize..end], "read of {n} bytes at {off}");
    }
    // Stopping with the file still open (the mount is busy) still unmounts and exits 0.
    m.stop();
    drop(f);
}

#[test]
fn layout_of_snapshots_ids_hosts_tags_and_latest() {
    let repo = Repo::init();
    let src = Tmp::new();
    let backup = |content: &str, args: &[&str], tz: &str| {
        write(src.join("f"), content);
        let out = repo.cmd().env("TZ", tz).arg("--json").arg("backup").args(args).arg(src.path.as_os_str()).run().ok();
        out.json()["snapshot_id"].as_str().expect("snapshot_id").to_string()
    };
    let s1 = backup("one", &["--host", "alpha", "--tag", "x", "--time", "2026-11-20T02:00:00Z"], "UTC");
    let s2 = backup("two", &["--host", "beta", "--tag", "x", "--tag", "y", "--time", "2026-11-21T02:00:00Z"], "UTC");
    // Same time as s2, other host: gets a suffix in snapshots/ and tags/y/, not in hosts/gamma/.
    let s3 = backup("three", &["--host", "gamma", "--tag", "y", "--time", "2026-11-21T02:00:00Z"], "UTC");
    // Newest, recorded in a +05:30 time zone (a POSIX TZ string: no tzdata needed), no tag.
    let s4 = backup("four", &["--host", "alpha", "--time", "2026-11-22T00:00:00Z"], "IST-5:30");
    let short = |id: &str| id[..8].to_string();
    let (t1, t2, t4) = ("2026-11-20T02:00:00Z", "2026-11-21T02:00:00Z", "2026-11-22T05:30:00+05:30");
    // s2 and s3 share a time; the one listed first (time, then id) keeps the plain name.
    let (t2_of_s2, t2_of_s3) =
        if s2 < s3 { (t2.to_string(), format!("{t2}-1")) } else { (format!("{t2}-1"), t2.to_string()) };

    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);
    let names = |rel: &str| -> BTreeSet<String> {
        fs::read_dir(point.join(rel)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    };
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    let link = |rel: &str| fs::read_link(point.join(rel)).unwrap().into_os_string().into_string().unwrap();
    let content =
        |rel: &str| fs::read_to_string(point.join(rel).join(src.path.strip_prefix("/").unwrap()).join("f")).unwrap();

    assert_eq!(names(""), set(&["hosts", "ids", "snapshots", "tags"]));
    assert_eq!(names("snapshots"), set(&[t1, &t2_of_s2, &t2_of_s3, t4, "latest"]));
    assert_eq!(link("snapshots/latest"), t4);
    assert_eq!(names("ids"), set(&[&short(&s1), &short(&s2), &short(&s3), &short(&s4), "latest"]));
    assert_eq!(link("ids/latest"), short(&s4));
    assert_eq!(names("hosts"), set(&["alpha", "beta", "gamma"]));
    assert_eq!(names("hosts/alpha"), set(&[t1, t4, "latest"]));
    assert_eq!(link("hosts/alpha/latest"), t4);
    assert_eq!(names("hosts/beta"), set(&[t2, "latest"]));
    assert_eq!(names("hosts/gamma"), set(&[t2, "latest"]));
    assert_eq!(names("tags"), set(&["x", "y"]));
    assert_eq!(names("tags/x"), set(&[t1, t2, "latest"]));
    assert_eq!(link("tags/x/latest"), t2);
    assert_eq!(names("tags/y"), set(&[&t2_of_s2, &t2_of_s3, "latest"]));
    // Every name leads to its snapshot's files.
    assert_eq!(content(&format!("snapshots/{t1}")), "one");
    assert_eq!(content(&format!("snapshots/{t2_of_s2}")), "two");
    assert_eq!(content(&format!("snapshots/{t2_of_s3}")), "three");
    assert_eq!(content("snapshots/latest"), "four");
    assert_eq!(content(&format!("ids/{}", short(&s1))), "one");
    assert_eq!(content(&format!("ids/{}", short(&s3))), "three");
    assert_eq!(content("ids/latest"), "four");
    assert_eq!(content("hosts/alpha/latest"), "four");
    assert_eq!(content(&format!("hosts/alpha/{t1}")), "one");
    assert_eq!(content(&format!("hosts/beta/{t2}")), "two");
    assert_eq!(content(&format!("hosts/gamma/{t2}")), "three");
    assert_eq!(content(&format!("tags/x/{t2}")), "two");
    assert_eq!(content("tags/y/latest"), if t2_of_s3 > t2_of_s2 { "three" } else { "two" });
    // Snapshot directories carry the snapshot time as their mtime.
    let md = fs::metadata(point.join("snapshots").join(t1)).unwrap();
    assert_eq!(md.mtime(), 1_795_140_000, "mtime of snapshots/{t1}");
    m.stop();

    // A snapshot added while mounted shows once the list is checked again.
    let m = Mounted::start(&repo, &point, &["--refresh-interval", "1"]);
    assert_eq!(names("snapshots"), set(&[t1, &t2_of_s2, &t2_of_s3, t4, "latest"]));
    let s5 = backup("five", &["--host", "alpha", "--tag", "z", "--time", "2026-11-23T00:00:00Z"], "UTC");
    let t5 = "2026-11-23T00:00:00Z";
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(names("snapshots"), set(&[t1, &t2_of_s2, &t2_of_s3, t4, t5, "latest"]));
    assert_eq!(link("snapshots/latest"), t5);
    assert_eq!(content("snapshots/latest"), "five");
    assert_eq!(content(&format!("ids/{}", short(&s5))), "five");
    assert_eq!(names("tags"), set(&["x", "y", "z"]));
    assert_eq!(content("tags/z/latest"), "five");
    assert_eq!(link("hosts/alpha/latest"), t5);
    // What was there before is unchanged.
    assert_eq!(content(&format!("snapshots/{t1}")), "one");
    m.stop();

    // --host filters which snapshots are shown.
    let m = Mounted::start(&repo, &point, &["--host", "beta"]);
    assert_eq!(names("snapshots"), set(&[t2, "latest"]));
    assert_eq!(names("hosts"), set(&["beta"]));
    m.stop();
}

#[test]
fn partial_reads_fetch_only_the_blobs_they_need() {
    const SIZE: usize = 64 << 20;
    const TAIL: usize = 1 << 20;
    let repo = Repo::init();
    let data = random_bytes(77, SIZE);
    repo.cmd().args(["backup", "--stdin", "--stdin-filename", "big.bin"]).stdin(data.clone()).run().ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");

    // The last MiB: only the blobs at the end are fetched.
    let m = Mounted::start(&repo, &point, &[]);
    let path = point.join("snapshots/latest/big.bin");
    assert_eq!(fs::metadata(&path).unwrap().len(), SIZE as u64);
    let mut f = fs::File::open(&path).unwrap();
    f.seek(SeekFrom::Start((SIZE - TAIL) as u64)).unwrap();
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).unwrap();
    drop(f);
    assert!(tail == data[SIZE - TAIL..], "the last MiB read through the mount differs");
    let (bytes, blobs) = fetched(&m.stop());
    // Random data does not compress: what is fetched is the blobs' plaintext plus a few bytes
    // each. The blobs overlapping the last MiB are at most 1 MiB plus one 2 MiB chunk before.
    assert!(bytes >= TAIL as u64, "fetched {bytes} bytes for a 1 MiB read");
    assert!(bytes <= 3 * TAIL as u64 + 4096, "fetched {bytes} bytes in {blobs} blobs for the last MiB of 64 MiB");

    // The whole file, in a fresh mount (empty caches): same bytes, every blob fetched about once.
    let m = Mounted::start(&repo, &point, &[]);
    let whole = fs::read(&path).unwrap();
    assert_eq!(whole.len(), SIZE);
    assert!(whole == data, "the file read through the mount differs from the original");
    let (bytes, blobs) = fetched(&m.stop());
    assert!(
        bytes >= SIZE as u64 && bytes < SIZE as u64 + SIZE as u64 / 4,
        "fetched {bytes} bytes in {blobs} blobs for a 64 MiB file"
    );
}

#[test]
fn directory_of_100000_entries_lists_completely() {
    const N: usize = 100_000;
    let repo = Repo::init();
    let src = Tmp::new();
    let dir = src.join("many");
    fs::create_dir(&dir).unwrap();
    let name = |i: usize| format!("file-{i:06}");
    for i in 0..N {
        fs::File::create(dir.join(name(i))).unwrap();
    }
    repo.run([std::ffi::OsStr::new("backup"), dir.as_os_str()]).ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);
    let view = point.join("snapshots/latest").join(dir.strip_prefix("/").unwrap());
    let listed: BTreeSet<String> =
        fs::read_dir(&view).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(listed.len(), N, "entries listed");
    assert!(listed.iter().zip(0..N).all(|(n, i)| *n == name(i)), "listed names differ from the source's");
    // Look-ups by name at both ends and in the middle.
    for i in [0, N / 2, N - 1] {
        let md = fs::symlink_metadata(view.join(name(i))).unwrap();
        assert!(md.is_file() && md.len() == 0, "{}", name(i));
    }
    m.stop();
}

#[test]
fn writes_fail_and_a_missing_mountpoint_is_an_error() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("f"), "data");
    repo.run([std::ffi::OsStr::new("backup"), src.path.as_os_str()]).ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);
    let view = point.join("snapshots/latest").join(src.path.strip_prefix("/").unwrap());
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("{what} succeeded on the read-only mount"));
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(fs::File::create(view.join("new")).map(drop), "creating a file");
    erofs(fs::File::create(point.join("new")).map(drop), "creating a file at the top");
    erofs(fs::OpenOptions::new().write(true).open(view.join("f")).map(drop), "opening a file for writing");
    erofs(fs::OpenOptions::new().append(true).open(view.join("f")).map(drop), "opening a file for appending");
    erofs(fs::create_dir(view.join("d")), "mkdir");
    erofs(fs::remove_file(view.join("f")), "unlink");
    erofs(fs::rename(view.join("f"), view.join("g")), "rename");
    erofs(std::os::unix::fs::symlink("f", view.join("l")), "symlink");
    erofs(fs::set_permissions(view.join("f"), std::os::unix::fs::PermissionsExt::from_mode(0o777)), "chmod");
    assert_eq!(fs::read_to_string(view.join("f")).unwrap(), "data", "the file is unchanged");
    // The mount holds a shared lock: prune (exclusive) refuses while it is mounted.
    let out = repo.run(["prune"]);
    assert_eq!(out.code, 11, "prune ran under a mount: {}", out.stderr);
    m.stop();
    repo.run(["prune"]).ok();

    // Unmounting from outside ends the process with exit 0 too.
    let m = Mounted::start(&repo, &point, &[]);
    let st = Command::new(fusermount()).arg("-u").arg(&point).status().expect("run fusermount");
    assert!(st.success(), "fusermount -u failed");
    let mut m = m;
    let status = wait_for(m.child.as_mut().unwrap(), Duration::from_secs(60));
    m.child = None;
    assert_eq!(status.code(), Some(0), "cairn mount after an outside unmount: {status}");

    let missing = mnt.join("does-not-exist");
    let out = repo.cmd().arg("mount").arg(&missing).run().code(1);
    assert!(
        out.stderr.contains(&*missing.to_string_lossy()) && out.stderr.contains("does not exist"),
        "stderr: {}",
        out.stderr
    );
    let file = mnt.join("a-file");
    write(&file, "x");
    let out = repo.cmd().arg("mount").arg(&file).run().code(1);
    assert!(out.stderr.contains("not a directory"), "stderr: {}", out.stderr);
}

/// `lgetxattr(path, name, buf, size)` with a buffer of `size` bytes (a null buffer when 0):
/// the returned length and the bytes filled in, or the errno.
fn lgetxattr(path: &Path, name: &str, size: usize) -> Result<(usize, Vec<u8>), i32> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; size];
    let ptr = if size == 0 { std::ptr::null_mut() } else { buf.as_mut_ptr().cast() };
    // SAFETY: valid NUL-terminated strings; `ptr` is null with size 0 or holds `size` bytes.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), ptr, size) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    buf.truncate(r as usize);
    Ok((r as usize, buf))
}

#[test]
fn extended_attributes_are_served_by_the_mount() {
    let repo = Repo::init();
    let src = Tmp::new();
    write(src.join("d/f"), b"content\n");
    let value: Vec<u8> = (0..=255u8).collect();
    xattr::set(src.join("d/f"), "user.binary", &value).unwrap();
    xattr::set(src.join("d/f"), "user.empty", b"").unwrap();
    xattr::set(src.join("d"), "user.on_dir", b"dir").unwrap();
    std::os::unix::fs::symlink("f", src.join("d/link")).unwrap();
    let acl = Command::new("setfacl").args(["-m", "u:1234:r--"]).arg(src.join("d/f")).status().unwrap();
    assert!(acl.success(), "setfacl (package acl) failed");
    if is_root() {
        xattr::set(src.join("d/link"), "trusted.on_link", b"link").unwrap();
    }
    write(src.join("d/plain"), b"none\n");
    repo.run([std::ffi::OsStr::new("backup"), src.path.as_os_str()]).ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);
    let view = point.join("snapshots/latest").join(src.path.strip_prefix("/").unwrap());

    let all = |p: &Path| {
        let mut v: Vec<(Vec<u8>, Vec<u8>)> = xattr::list(p)
            .unwrap()
            .map(|n| (n.as_encoded_bytes().to_vec(), xattr::get(p, &n).unwrap().unwrap()))
            .collect();
        v.sort();
        v
    };
    for rel in ["d/f", "d", "d/link", "d/plain"] {
        assert_eq!(all(&view.join(rel)), all(&src.join(rel)), "{rel}: names and values through the mount");
    }
    assert!(all(&view.join("d/f")).iter().any(|(n, _)| n == b"system.posix_acl_access"));
    // The FUSE size protocol: size 0 asks for the length, a short buffer is ERANGE, a missing
    // name is ENODATA; the symlink's own attributes, not its target's.
    let f = view.join("d/f");
    assert_eq!(lgetxattr(&f, "user.binary", 0), Ok((256, Vec::new())));
    assert_eq!(lgetxattr(&f, "user.binary", 100), Err(libc::ERANGE));
    assert_eq!(lgetxattr(&f, "user.binary", 256), Ok((256, value.clone())));
    assert_eq!(lgetxattr(&f, "user.empty", 10), Ok((0, Vec::new())));
    assert_eq!(lgetxattr(&f, "user.missing", 10), Err(libc::ENODATA));
    assert_eq!(lgetxattr(&view.join("d/link"), "user.binary", 300), Err(libc::ENODATA));
    assert_eq!(lgetxattr(&point.join("snapshots"), "user.x", 10), Err(libc::ENODATA));
    let getfattr = Command::new("getfattr").args(["-h", "-d", "-e", "hex", "-m", "user\\."]).arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&getfattr.stdout);
    assert!(text.contains(&format!("user.binary=0x{}", hex::encode(&value))), "getfattr: {text}");
    m.stop();
}

/// A tree 2,000 directories deep (a file beside each): its deepest file reads through the
/// mount, and the whole tree lists equal to the source.
#[test]
fn a_tree_2000_levels_deep_reads_through_the_mount() {
    let repo = Repo::init();
    let src = Tmp::new();
    let root = src.join("s");
    let deepest = deep_tree(&root, 2000);
    repo.run([std::ffi::OsStr::new("backup"), root.as_os_str()]).ok();
    let mnt = Tmp::new();
    let point = mnt.join("m");
    let m = Mounted::start(&repo, &point, &[]);

    let view = point.join("snapshots/latest").join(root.strip_prefix("/").unwrap());
    let deepest_view = view.join(deepest.strip_prefix(&root).unwrap()).join("f");
    assert_eq!(
        fs::read(&deepest_view).unwrap_or_else(|e| panic!("read the deepest file through the mount: {e}")),
        b"level 2000\n"
    );
    let (want, got) = (listing(&root), listing(&view));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "entry names");
    for (rel, g) in &got {
        assert!(
            g.kind == want[rel].kind && g.content == want[rel].content,
            "{}: differs through the mount",
            rel.display()
        );
    }
    m.stop();
}
