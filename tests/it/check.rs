//! Integration tests of `cairn check`: a clean repository passes; damaged, truncated and
//! deleted packs, a deleted index file, damaged tree packs, snapshots and index files are
//! reported with the snapshots and paths they affect; `--read-data-subset` groups and samples.
//!
//! The expected outcome comes from a model kept by the test: the content of every source file
//! at each snapshot, and the plaintext of the blobs a damage hits (read before the damage).
//! An entry is affected when its content contains one of those plaintexts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::common::*;
use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::blob::BlobType;
use cairn::index::IndexFile;
use cairn::repository::{InitOptions, Repository};
use serde_json::Value;

/// Content of every regular file at one snapshot, by absolute path.
type State = BTreeMap<String, Vec<u8>>;

/// A repository with three snapshots, built once and copied by each test.
struct Fixture {
    _tmp: Tmp,
    /// The repository (never modified: tests work on copies).
    repo: PathBuf,
    /// Snapshot ids (full hex) in backup order, with the source state each one saved.
    snaps: Vec<(String, State)>,
    /// The index files the third backup wrote.
    third_index_files: Vec<String>,
}

/// A test's own copy of the fixture repository.
struct Copy {
    _tmp: Tmp,
    path: PathBuf,
}

impl Copy {
    fn run(&self, args: &[&str]) -> Output {
        cairn().arg("-r").arg(&self.path).password(PASSWORD).args(args).run()
    }

    fn open(&self) -> Repository {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&self.path));
        Repository::open(backend, PASSWORD.as_bytes()).expect("open the repository copy")
    }

    /// Every pack file: (name, path).
    fn pack_files(&self) -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = listing(&self.path.join("data"))
            .into_iter()
            .filter(|(_, e)| e.kind == Kind::File)
            .map(|(rel, _)| {
                let p = self.path.join("data").join(&rel);
                (p.file_name().unwrap().to_str().unwrap().to_string(), p)
            })
            .collect();
        v.sort();
        v
    }

    fn pack_path(&self, name: &str) -> PathBuf {
        self.path.join("data").join(&name[..2]).join(name)
    }
}

fn state_of(src: &Path) -> State {
    listing(src)
        .into_iter()
        .filter(|(_, e)| e.kind == Kind::File)
        .map(|(rel, e)| (src.join(rel).to_str().unwrap().to_string(), e.content.unwrap()))
        .collect()
}

fn index_names(repo: &Path) -> BTreeSet<String> {
    fs::read_dir(repo.join("index")).unwrap().map(|e| e.unwrap().file_name().to_str().unwrap().to_string()).collect()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = Tmp::new();
        let repo = tmp.join("repo");
        // 1 MiB packs (the smallest allowed) so that the data spreads over many packs.
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo));
        Repository::init(backend, PASSWORD.as_bytes(), &InitOptions { pack_size: 1 << 20, ..Default::default() })
            .expect("init");
        let src = tmp.join("src");
        let sizes = [1_000usize, 5_000, 40_000, 300_000, 900_000, 2_300_000, 3_100_000];
        for (i, size) in sizes.iter().enumerate() {
            let dir = match i % 3 {
                0 => "",
                1 => "docs/",
                _ => "docs/deep/er/",
            };
            write(src.join(format!("{dir}file{i}.bin")), random_bytes(1000 + i as u64, *size));
        }
        let run = |args: &[&str]| cairn().arg("-r").arg(&repo).password(PASSWORD).args(args).run().ok();
        let backup = || -> String {
            let out = cairn().arg("-r").arg(&repo).password(PASSWORD).args(["--json", "backup"]).arg(&src).run().ok();
            out.json()["snapshot_id"].as_str().expect("snapshot_id in the backup summary").to_string()
        };
        let mut snaps = Vec::new();
        snaps.push((backup(), state_of(&src)));
        // Second: one new large file, one file rewritten.
        write(src.join("added/new.bin"), random_bytes(2000, 2_600_000));
        write(src.join("docs/file1.bin"), random_bytes(2001, 7_000));
        snaps.push((backup(), state_of(&src)));
        // Third: one file removed, one added.
        let before = index_names(&repo);
        fs::remove_file(src.join("file3.bin")).unwrap();
        write(src.join("docs/third.bin"), random_bytes(3000, 1_500_000));
        snaps.push((backup(), state_of(&src)));
        let third_index_files: Vec<String> = index_names(&repo).difference(&before).cloned().collect();
        assert!(!third_index_files.is_empty(), "the third backup wrote no index file");
        run(&["snapshots"]);
        Fixture { _tmp: tmp, repo, snaps, third_index_files }
    })
}

/// A fresh copy of the fixture repository.
fn copy() -> Copy {
    let f = fixture();
    let tmp = Tmp::new();
    let path = tmp.join("repo");
    let st = std::process::Command::new("cp").arg("-a").arg(&f.repo).arg(&path).status().unwrap();
    assert!(st.success());
    Copy { _tmp: tmp, path }
}

/// Every index file of the copy, decoded through the library.
fn index_files(repo: &Repository) -> Vec<(String, IndexFile)> {
    repo.list::<IndexFile>()
        .unwrap()
        .into_iter()
        .map(|(id, _)| (id.to_hex(), repo.load::<IndexFile>(&id).unwrap()))
        .collect()
}

/// Per pack: its blob entries, from all index files.
fn packs_of(repo: &Repository) -> BTreeMap<String, Vec<cairn::pack::BlobEntry>> {
    let mut m: BTreeMap<String, Vec<cairn::pack::BlobEntry>> = BTreeMap::new();
    for (_, f) in index_files(repo) {
        for p in f.packs {
            m.entry(p.id.to_hex()).or_default().extend(p.blobs);
        }
    }
    m
}

/// The plaintexts of `blobs` (read before any damage).
fn plaintexts(repo: &Repository, blobs: &[cairn::pack::BlobEntry]) -> Vec<Vec<u8>> {
    let index = repo.load_index().unwrap();
    blobs.iter().map(|b| repo.read_blob(&index, b.kind().unwrap(), &b.id).unwrap()).collect()
}

/// The plaintexts (`plain`, in the order of `all`) of the blobs of `all` that are in `some`.
fn plaintexts_before(
    all: &[cairn::pack::BlobEntry],
    some: &[cairn::pack::BlobEntry],
    plain: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    all.iter().zip(plain).filter(|(b, _)| some.contains(b)).map(|(_, p)| p.clone()).collect()
}

/// The model: (snapshot id, path) of every file whose content contains one of `plain`.
fn expected_affected(plain: &[Vec<u8>]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (snap, state) in &fixture().snaps {
        for (path, content) in state {
            if plain.iter().any(|p| !p.is_empty() && contains(content, p)) {
                out.insert((snap.clone(), path.clone()));
            }
        }
    }
    out
}

/// The `affected` array of `check --json` as (snapshot, path) pairs.
fn affected(v: &Value) -> BTreeSet<(String, String)> {
    v["affected"]
        .as_array()
        .expect("affected array")
        .iter()
        .map(|a| (a["snapshot"].as_str().unwrap().to_string(), a["path"].as_str().unwrap().to_string()))
        .collect()
}

/// The problems of `check --json` of one kind.
fn problems<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["problems"].as_array().expect("problems array").iter().filter(|p| p["kind"] == kind).collect()
}

/// A failed check: exit code 1, no panic, the verdict on stderr.
fn failed(out: Output) -> Output {
    let out = out.code(1);
    for s in [&out.stdout, &out.stderr] {
        assert!(!s.contains("panicked"), "{} panicked:\n{}\n{}", out.cmdline, out.stdout, out.stderr);
    }
    assert!(
        out.stderr.contains("repository contains errors"),
        "{}: no verdict on stderr:\n{}",
        out.cmdline,
        out.stderr
    );
    out
}

/// The text output names every expected (snapshot, path) pair on one line.
fn assert_text_names(out: &Output, expected: &BTreeSet<(String, String)>) {
    for (snap, path) in expected {
        let line = format!("snapshot {}", &snap[..8]);
        assert!(
            out.stdout.lines().any(|l| l.contains(&line) && l.trim_end().ends_with(&format!(": {path}"))),
            "stdout does not name {path} in snapshot {snap}:\n{}",
            out.stdout
        );
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

/// The data pack holding the largest data blob, and that blob.
fn largest_data_blob(repo: &Repository) -> (String, cairn::pack::BlobEntry) {
    packs_of(repo)
        .into_iter()
        .flat_map(|(p, blobs)| blobs.into_iter().map(move |b| (p.clone(), b)))
        .filter(|(_, b)| b.kind() == Some(BlobType::Data))
        .max_by_key(|(_, b)| b.length)
        .expect("a data blob")
}

/// "read N of M selected packs" → N.
fn packs_read(out: &Output) -> usize {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("read ") && l.contains(" selected packs"))
        .unwrap_or_else(|| panic!("no pack count:\n{}", out.stdout));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn clean_repository_passes() {
    let c = copy();
    let out = c.run(&["check"]).ok();
    assert!(out.stdout.contains("no errors were found"), "{}", out.stdout);
    for phase in ["load indexes", "check all packs", "check snapshots, trees and blobs"] {
        assert!(out.stdout.contains(phase), "phase {phase:?} not announced:\n{}", out.stdout);
    }
    let out = c.run(&["check", "--read-data"]).ok();
    assert!(out.stdout.contains("read all data") && out.stdout.contains("no errors were found"), "{}", out.stdout);
    assert_eq!(packs_read(&out), c.pack_files().len());
    let v = c.run(&["--json", "check", "--read-data"]).ok().json();
    assert_eq!(v["errors"], 0);
    assert_eq!(v["snapshots"], 3);
    assert_eq!(v["packs"].as_u64().unwrap() as usize, c.pack_files().len());
    // The bytes read are the bytes of the pack files on disk.
    let on_disk: u64 = c.pack_files().iter().map(|(_, p)| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(v["bytes_read"].as_u64(), Some(on_disk));
    assert!(affected(&v).is_empty());
}

#[test]
fn flipped_byte_in_a_data_blob_needs_read_data_and_names_the_files() {
    let c = copy();
    let repo = c.open();
    let (pack, blob) = largest_data_blob(&repo);
    let expected = expected_affected(&plaintexts(&repo, &[blob]));
    assert!(!expected.is_empty(), "the model finds no file holding the blob");
    flip_byte(&c.pack_path(&pack), blob.offset as u64 + blob.length as u64 / 2);

    // The header and the index still agree: the structure check cannot see the damage.
    c.run(&["check"]).ok();
    let out = failed(c.run(&["check", "--read-data"]));
    assert!(out.stdout.contains(&pack), "the damaged pack {pack} is not named:\n{}", out.stdout);
    assert!(out.stdout.contains(&blob.id.to_hex()), "the damaged blob is not named:\n{}", out.stdout);
    assert_text_names(&out, &expected);
    let v = failed(c.run(&["--json", "check", "--read-data"])).json();
    assert_eq!(affected(&v), expected);
    let damaged = problems(&v, "blob_damaged");
    assert_eq!(damaged.len(), 1, "{v:#}");
    assert_eq!(damaged[0]["pack"], pack.as_str());
    assert_eq!(problems(&v, "pack_hash_mismatch").len(), 1);

    // Only the group holding the pack (restic's rule: first id byte modulo t) sees it.
    let byte = u8::from_str_radix(&pack[..2], 16).unwrap() as u32;
    for n in 1..=3u32 {
        let out = c.run(&["check", "--read-data-subset", &format!("{n}/3")]);
        if byte % 3 == n - 1 {
            failed(out);
        } else {
            out.ok();
        }
    }
}

#[test]
fn truncated_pack_is_found_without_read_data() {
    let c = copy();
    let repo = c.open();
    let (pack, _) = largest_data_blob(&repo);
    let blobs = packs_of(&repo)[&pack].clone();
    let expected_blobs = plaintexts(&repo, &blobs);
    let expected = expected_affected(&expected_blobs);
    let path = c.pack_path(&pack);
    let size = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(size / 2).unwrap();

    let out = failed(c.run(&["check"]));
    assert!(out.stdout.contains(&pack), "{}", out.stdout);
    assert_text_names(&out, &expected);
    let v = failed(c.run(&["--json", "check"])).json();
    assert_eq!(affected(&v), expected);
    let bad = problems(&v, "pack_damaged");
    assert_eq!(bad.len(), 1, "{v:#}");
    assert_eq!(bad[0]["pack"], pack.as_str());
    assert_eq!(problems(&v, "pack_size_mismatch").len(), 1);
    // Reading the data tells the blobs before the cut (intact) from those past it.
    let cut: Vec<_> = blobs.iter().filter(|b| b.offset as u64 + b.length as u64 > size / 2).copied().collect();
    let expected_cut = expected_affected(&plaintexts_before(&blobs, &cut, &expected_blobs));
    let v = failed(c.run(&["--json", "check", "--read-data"])).json();
    assert_eq!(affected(&v), expected_cut);
    let damaged: BTreeSet<String> =
        problems(&v, "blob_damaged").iter().map(|p| p["blobs"][0].as_str().unwrap().to_string()).collect();
    assert_eq!(damaged, cut.iter().map(|b| b.id.to_hex()).collect());
}

#[test]
fn deleted_pack_is_missing_with_affected_files() {
    let c = copy();
    let repo = c.open();
    let (pack, _) = largest_data_blob(&repo);
    let blobs = packs_of(&repo)[&pack].clone();
    let expected = expected_affected(&plaintexts(&repo, &blobs));
    fs::remove_file(c.pack_path(&pack)).unwrap();

    let out = failed(c.run(&["check"]));
    assert!(out.stdout.contains(&format!("pack {pack} is missing")), "{}", out.stdout);
    assert_text_names(&out, &expected);
    let v = failed(c.run(&["--json", "check", "--read-data"])).json();
    assert_eq!(affected(&v), expected);
    let missing = problems(&v, "pack_missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["blobs"].as_array().unwrap().len(), blobs.len());
    // The other packs were all read.
    assert_eq!(v["packs_read"].as_u64().unwrap() as usize, c.pack_files().len());
}

#[test]
fn deleted_index_file_leaves_unknown_blobs_and_orphan_packs() {
    let f = fixture();
    let c = copy();
    let repo = c.open();
    let mut orphans = BTreeSet::new();
    for (name, file) in index_files(&repo) {
        if f.third_index_files.contains(&name) {
            orphans.extend(file.packs.iter().map(|p| p.id.to_hex()));
            fs::remove_file(c.path.join("index").join(&name)).unwrap();
        }
    }
    assert!(!orphans.is_empty());

    let out = failed(c.run(&["check"]));
    for p in &orphans {
        assert!(out.stdout.contains(&format!("hint: pack {p}")), "orphan pack {p} not reported:\n{}", out.stdout);
    }
    let v = failed(c.run(&["--json", "check"])).json();
    let hinted: BTreeSet<String> =
        problems(&v, "pack_unindexed").iter().map(|p| p["pack"].as_str().unwrap().to_string()).collect();
    assert_eq!(hinted, orphans);
    assert!(problems(&v, "pack_unindexed").iter().all(|p| p["error"] == false));
    // The third snapshot's root tree is new (its content changed), and so unknown: the whole
    // snapshot is affected; the first two snapshots are whole.
    assert!(!problems(&v, "blob_not_indexed").is_empty());
    let third = f.snaps[2].0.clone();
    assert_eq!(affected(&v), BTreeSet::from([(third.clone(), "/".to_string())]));
    assert!(out.stdout.contains(&format!("snapshot {}", &third[..8])), "{}", out.stdout);
}

#[test]
fn index_that_disagrees_with_a_pack_header_is_reported() {
    let c = copy();
    let repo = c.open();
    let (pack, blob) = largest_data_blob(&repo);
    let expected = expected_affected(&plaintexts(&repo, &[blob]));
    // Replace the index file that lists the pack by one where that blob's length is off by one.
    let mut rewritten = None;
    for (name, mut file) in index_files(&repo) {
        if file.packs.iter().any(|p| p.id.to_hex() == pack) {
            for b in file.packs.iter_mut().flat_map(|p| p.blobs.iter_mut()).filter(|b| b.id == blob.id) {
                b.raw_length += 1;
            }
            let lock = cairn::lock::AppendLock::acquire(&repo, "test", &Default::default()).unwrap();
            rewritten = Some(repo.write_index(&lock, &file).unwrap().to_hex());
            fs::remove_file(c.path.join("index").join(&name)).unwrap();
        }
    }
    let rewritten = rewritten.expect("an index file lists the pack");

    let out = failed(c.run(&["check"]));
    assert!(out.stdout.contains(&format!("pack {pack} does not match index file {rewritten}")), "{}", out.stdout);
    assert_text_names(&out, &expected);
    let v = failed(c.run(&["--json", "check"])).json();
    let bad = problems(&v, "pack_index_mismatch");
    assert_eq!(bad.len(), 1, "{v:#}");
    assert_eq!(bad[0]["blobs"], serde_json::json!([blob.id.to_hex()]));
    assert_eq!(v["errors"], 1, "{v:#}");
    assert_eq!(affected(&v), expected);
}

#[test]
fn damaged_tree_pack_is_reported() {
    let c = copy();
    let repo = c.open();
    let first_snapshot_packs: BTreeMap<String, Vec<cairn::pack::BlobEntry>> = packs_of(&repo);
    // A tree pack: every blob in it is a tree. Damage the first blob of the largest one.
    let (pack, blobs) = first_snapshot_packs
        .iter()
        .filter(|(_, b)| b.iter().all(|e| e.kind() == Some(BlobType::Tree)))
        .max_by_key(|(_, b)| b.len())
        .expect("a tree pack");
    let blob = blobs.iter().min_by_key(|b| b.offset).unwrap();
    flip_byte(&c.pack_path(pack), blob.offset as u64 + blob.length as u64 / 2);

    let out = failed(c.run(&["check"]));
    assert!(out.stdout.contains(&format!("tree {} cannot be loaded", blob.id.to_hex())), "{}", out.stdout);
    assert!(out.stdout.contains(pack), "the tree's pack is not named:\n{}", out.stdout);
    let v = failed(c.run(&["--json", "check", "--read-data"])).json();
    assert!(!affected(&v).is_empty(), "a damaged tree affects nothing:\n{v:#}");
    let damaged = problems(&v, "blob_damaged");
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0]["blobs"][0], blob.id.to_hex().as_str());
}

#[test]
fn damaged_snapshot_and_index_files_are_named() {
    let f = fixture();
    let c = copy();
    let snap = &f.snaps[1].0;
    let path = c.path.join("snapshots").join(snap);
    flip_byte(&path, fs::metadata(&path).unwrap().len() / 2);
    let out = failed(c.run(&["check"]));
    assert!(out.stdout.contains(&format!("snapshot {snap} is damaged")), "{}", out.stdout);
    let v = failed(c.run(&["--json", "check"])).json();
    assert_eq!(v["errors"], 1, "{v:#}");

    let c = copy();
    let index = f.third_index_files[0].clone();
    let path = c.path.join("index").join(&index);
    flip_byte(&path, fs::metadata(&path).unwrap().len() / 2);
    let out = failed(c.run(&["check", "--read-data"]));
    assert!(out.stdout.contains(&format!("index file {index} is damaged")), "{}", out.stdout);
    // Its packs are now unknown to the index.
    assert!(out.stdout.contains("hint: pack "), "{}", out.stdout);

    // A snapshots directory with garbage in it: still no panic.
    let c = copy();
    fs::write(c.path.join("snapshots").join(&f.snaps[0].0), b"garbage").unwrap();
    fs::write(c.path.join("index").join(&f.third_index_files[0]), b"").unwrap();
    failed(c.run(&["check", "--read-data"]));

    // Files an operator left behind, names with dots included, are named.
    let c = copy();
    let (pack, _) = largest_data_blob(&c.open());
    let pack_path = c.path.join("data").join(&pack[..2]).join(&pack);
    fs::copy(&pack_path, pack_path.with_file_name(format!("{pack}.bak"))).unwrap();
    fs::write(c.path.join("snapshots").join("old.snapshot"), b"x").unwrap();
    let v = failed(c.run(&["--json", "check"])).json();
    let strays: Vec<&str> = problems(&v, "pack_unindexed").iter().filter_map(|p| p["pack"].as_str()).collect();
    assert_eq!(strays, [format!("{pack}.bak")], "{v:#}");
    assert!(v.to_string().contains("old.snapshot"), "{v:#}");
    // In index/, such a file may be a renamed index file holding entries snapshots need: check
    // names it, and commands that load the index refuse to guess (prune would delete packs).
    fs::write(c.path.join("index").join("notes.txt"), b"x").unwrap();
    let v = failed(c.run(&["--json", "check"])).json();
    assert!(v.to_string().contains("notes.txt"), "{v:#}");
    let out = c.run(&["ls", "latest"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("index/notes.txt") && out.stderr.contains("not an index id"), "{}", out.stderr);
}

#[test]
fn read_data_subsets() {
    let c = copy();
    let packs = c.pack_files();
    assert!(packs.len() >= 6, "only {} packs", packs.len());
    let mut total = 0;
    for n in 1..=3u32 {
        let out = c.run(&["check", "--read-data-subset", &format!("{n}/3")]).ok();
        assert!(out.stdout.contains(&format!("read group {n} of 3")), "{}", out.stdout);
        let read = packs_read(&out);
        // restic's grouping: the first byte of the pack id modulo t.
        let want =
            packs.iter().filter(|(name, _)| u8::from_str_radix(&name[..2], 16).unwrap() as u32 % 3 == n - 1).count();
        assert_eq!(read, want, "group {n}/3");
        total += read;
    }
    assert_eq!(total, packs.len(), "the three groups do not add up to every pack");
    assert_eq!(packs_read(&c.run(&["check", "--read-data-subset", "100%"]).ok()), packs.len());
    let half = packs_read(&c.run(&["check", "--read-data-subset", "50%"]).ok());
    assert_eq!(half, packs.len() / 2);
    assert_eq!(packs_read(&c.run(&["check", "--read-data-subset", "0.1%"]).ok()), 1);
}

#[test]
fn bad_subset_arguments_are_refused() {
    let c = copy();
    for bad in ["0/5", "6/5", "150%", "abc", "1/0", "0%"] {
        let out = c.run(&["check", "--read-data-subset", bad]);
        assert_ne!(out.code, 0, "subset {bad:?} accepted");
        assert!(
            out.stderr.contains("subset") && out.stderr.contains(bad),
            "unclear error for {bad:?}:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"));
    }
    let out = c.run(&["check", "--read-data", "--read-data-subset", "1/2"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}
