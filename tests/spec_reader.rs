//! An independent reader of the cairn repository format, written from `repo-format.md` alone.
//!
//! Nothing here uses the `cairn` library: the repository is written by the `cairn` binary and
//! read back with `blake3`, `aes-gcm`, `argon2`, `zstd` and a hand-written decoder for bincode 2
//! `config::standard()` as the spec's "Serialization" section describes it. Every section
//! named in a comment (`§ Key files`, ...) is a section of `repo-format.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

type R<T> = Result<T, String>;

const PASSWORD: &str = "spec reader password";

// ------------------------------------------------------------------------------------------
// § Serialization: bincode 2 `config::standard()`, decoded by hand.
// ------------------------------------------------------------------------------------------

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Varints that were not in their shortest form ("Writers always use the shortest form").
    non_canonical: usize,
}

impl<'a> Dec<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0, non_canonical: 0 }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("need {n} bytes at {}, only {} left", self.pos, self.buf.len() - self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("invalid bool byte {b:#x}")),
        }
    }

    /// Unsigned varint of a type `bits` wide (16, 32 or 64).
    fn varint(&mut self, bits: u32) -> R<u64> {
        let tag = self.u8()?;
        let (v, min) = match tag {
            0..=250 => return Ok(tag as u64),
            251 => (u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as u64, 251),
            252 if bits >= 32 => (u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as u64, 1 << 16),
            253 if bits >= 64 => (u64::from_le_bytes(self.take(8)?.try_into().unwrap()), 1 << 32),
            252 | 253 => return Err(format!("varint tag {tag:#x} is wider than a u{bits}")),
            _ => return Err(format!("invalid varint tag {tag:#x}")),
        };
        if v < min {
            self.non_canonical += 1;
        }
        Ok(v)
    }

    fn u32(&mut self) -> R<u32> {
        Ok(self.varint(32)? as u32)
    }

    fn u64(&mut self) -> R<u64> {
        self.varint(64)
    }

    fn i32(&mut self) -> R<i32> {
        let z = self.varint(32)? as u32;
        Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
    }

    fn i64(&mut self) -> R<i64> {
        let z = self.varint(64)?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn len(&mut self) -> R<usize> {
        let n = self.u64()?;
        // Every element takes at least one byte: a larger count is damage, not an allocation.
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(format!("length {n} exceeds the {} bytes left", self.buf.len() - self.pos));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> R<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> R<String> {
        String::from_utf8(self.bytes()?).map_err(|e| format!("invalid UTF-8: {e}"))
    }

    fn id(&mut self) -> R<[u8; 32]> {
        Ok(self.take(32)?.try_into().unwrap())
    }

    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        Ok(if self.bool()? { Some(f(self)?) } else { None })
    }

    fn vec<T>(&mut self, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.len()?;
        (0..n).map(|_| f(self)).collect()
    }

    /// Decode a complete top-level structure: no bytes may be left over, and every varint
    /// must be in the shortest form (the writer's obligation).
    fn whole<T>(buf: &[u8], f: impl FnOnce(&mut Dec) -> R<T>) -> R<T> {
        let mut d = Dec::new(buf);
        let v = f(&mut d)?;
        if d.pos != buf.len() {
            return Err(format!("{} bytes left over after the structure", buf.len() - d.pos));
        }
        if d.non_canonical != 0 {
            return Err(format!("{} varints not in their shortest form", d.non_canonical));
        }
        Ok(v)
    }
}

// ------------------------------------------------------------------------------------------
// The structures, field by field as the spec's tables list them.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct KeyHeader {
    created: i64,
    username: String,
    hostname: String,
    algorithm: u8,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: [u8; 32],
}

fn key_header(d: &mut Dec) -> R<KeyHeader> {
    Ok(KeyHeader {
        created: d.i64()?,
        username: d.string()?,
        hostname: d.string()?,
        algorithm: d.u8()?,
        memory_kib: d.u32()?,
        iterations: d.u32()?,
        parallelism: d.u32()?,
        salt: d.id()?,
    })
}

#[derive(Debug, Clone, PartialEq)]
struct ChunkerParams {
    min_size: u32,
    avg_size: u32,
    max_size: u32,
    normalization: u8,
}

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Config {
    version: u32,
    id: [u8; 32],
    chunker: ChunkerParams,
    pack_size: u32,
    compression_level: i32,
}

fn config(d: &mut Dec) -> R<Config> {
    Ok(Config {
        version: d.u32()?,
        id: d.id()?,
        chunker: ChunkerParams { min_size: d.u32()?, avg_size: d.u32()?, max_size: d.u32()?, normalization: d.u8()? },
        pack_size: d.u32()?,
        compression_level: d.i32()?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlobEntry {
    blob_type: u8,
    id: [u8; 32],
    offset: u32,
    length: u32,
    raw_length: u32,
}

fn blob_entry(d: &mut Dec) -> R<BlobEntry> {
    Ok(BlobEntry { blob_type: d.u8()?, id: d.id()?, offset: d.u32()?, length: d.u32()?, raw_length: d.u32()? })
}

#[derive(Debug, Clone)]
struct IndexPack {
    id: [u8; 32],
    salt: [u8; 32],
    size: u64,
    blobs: Vec<BlobEntry>,
}

#[derive(Debug, Clone)]
struct IndexFile {
    packs: Vec<IndexPack>,
    supersedes: Vec<[u8; 32]>,
}

fn index_file(d: &mut Dec) -> R<IndexFile> {
    Ok(IndexFile {
        packs: d.vec(|d| Ok(IndexPack { id: d.id()?, salt: d.id()?, size: d.u64()?, blobs: d.vec(blob_entry)? }))?,
        supersedes: d.vec(|d| d.id())?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timestamp {
    secs: i64,
    nanos: u32,
}

fn timestamp(d: &mut Dec) -> R<Timestamp> {
    let t = Timestamp { secs: d.i64()?, nanos: d.u32()? };
    if t.nanos >= 1_000_000_000 {
        return Err(format!("nanos {} out of range", t.nanos));
    }
    Ok(t)
}

const FILE: u32 = 0;
const DIR: u32 = 1;
const SYMLINK: u32 = 2;

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Node {
    name: Vec<u8>,
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    size: u64,
    mtime: Timestamp,
    ctime: Timestamp,
    inode: u64,
    device: u64,
    links: u64,
    rdev: u64,
    symlink_target: Vec<u8>,
    content: Vec<[u8; 32]>,
    subtree: Option<[u8; 32]>,
    /// (name, value) pairs; only in a version 2 tree.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn node(d: &mut Dec) -> R<Node> {
    let n = Node {
        name: d.bytes()?,
        kind: d.u32()?,
        mode: d.u32()?,
        uid: d.u32()?,
        gid: d.u32()?,
        user: d.string()?,
        group: d.string()?,
        size: d.u64()?,
        mtime: timestamp(d)?,
        ctime: timestamp(d)?,
        inode: d.u64()?,
        device: d.u64()?,
        links: d.u64()?,
        rdev: d.u64()?,
        symlink_target: d.bytes()?,
        content: d.vec(|d| d.id())?,
        subtree: d.option(|d| d.id())?,
        xattrs: Vec::new(),
    };
    if n.kind > 6 {
        return Err(format!("NodeKind variant {} undefined", n.kind));
    }
    Ok(n)
}

/// § Tree blobs, and § Verification on every read: "names sorted and unique; names valid".
/// Version 1: `Vec<Node>`. Version 2: `ff 02`, then per node its fields and a `Vec<Xattr>`
/// (names not empty, no NUL, at most 255 bytes, sorted and unique; values at most 64 KiB).
fn tree(d: &mut Dec) -> R<Vec<Node>> {
    let v2 = d.buf.get(d.pos) == Some(&0xff);
    if v2 {
        let prefix = d.take(2)?;
        if prefix[1] != 0x02 {
            return Err(format!("unknown tree version {}", prefix[1]));
        }
    }
    let nodes = d.vec(|d| {
        let mut n = node(d)?;
        if v2 {
            n.xattrs = d.vec(|d| Ok((d.bytes()?, d.bytes()?)))?;
            let ok =
                n.xattrs.iter().all(|(k, v)| !k.is_empty() && k.len() <= 255 && !k.contains(&0) && v.len() <= 65_536);
            if !ok || n.xattrs.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(format!("invalid extended attributes on {:?}", String::from_utf8_lossy(&n.name)));
            }
        }
        Ok(n)
    })?;
    if v2 && nodes.iter().all(|n| n.xattrs.is_empty()) {
        return Err("a version 2 tree where no entry has extended attributes (writers use version 1)".into());
    }
    for n in &nodes {
        if n.name.is_empty() || n.name == b"." || n.name == b".." || n.name.contains(&b'/') {
            return Err(format!("invalid node name {:?}", String::from_utf8_lossy(&n.name)));
        }
    }
    for w in nodes.windows(2) {
        if w[0].name >= w[1].name {
            return Err("tree names not sorted and unique".into());
        }
    }
    Ok(nodes)
}

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Summary {
    backup_start: Timestamp,
    backup_end: Timestamp,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs_new: u64,
    dirs_changed: u64,
    dirs_unchanged: u64,
    data_blobs: u64,
    tree_blobs: u64,
    data_added: u64,
    data_added_packed: u64,
    total_files_processed: u64,
    total_bytes_processed: u64,
    errors: u64,
}

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Snapshot {
    time: Timestamp,
    tz_offset: i32,
    hostname: String,
    username: String,
    uid: u32,
    gid: u32,
    paths: Vec<String>,
    tags: Vec<String>,
    excludes: Vec<String>,
    tree: [u8; 32],
    parent: Option<[u8; 32]>,
    program_version: String,
    summary: Summary,
    /// Versions 2 and 3 (§ Snapshots); empty in version 1.
    components: Vec<Component>,
    /// Version 3 only (§ Snapshots): the snapshot this one is a copy of.
    original: Option<[u8; 32]>,
}

/// § Snapshots, `Component`.
#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Component {
    path: String,
    /// 0 Path, 1 Command, 2 Stdin.
    kind: u32,
    /// 0 Ok, 1 Failed, 2 Partial.
    status: u32,
    bytes: u64,
    duration_ms: u64,
    command: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    stderr_tail: String,
    reason: String,
}

fn component(d: &mut Dec) -> R<Component> {
    let enum_index = |d: &mut Dec, what: &str| -> R<u32> {
        let v = d.u32()?;
        if v > 2 {
            return Err(format!("{what} variant {v} is not 0, 1 or 2"));
        }
        Ok(v)
    };
    Ok(Component {
        path: d.string()?,
        kind: enum_index(d, "kind")?,
        status: enum_index(d, "status")?,
        bytes: d.u64()?,
        duration_ms: d.u64()?,
        command: d.string()?,
        exit_code: d.option(|d| d.i32())?,
        signal: d.option(|d| d.i32())?,
        stderr_tail: d.string()?,
        reason: d.string()?,
    })
}

/// § Snapshots: a snapshot file's plaintext, version 1, version 2 (`0xff 0x02`, the version 1
/// fields, then a non-empty component list) or version 3 (`0xff 0x03`, the version 1 fields, a
/// component list, possibly empty, then the original's 32 bytes).
fn snapshot_file(plain: &[u8]) -> R<Snapshot> {
    match plain {
        [0xff, 0x02, rest @ ..] => Dec::whole(rest, |d| {
            let mut s = snapshot(d)?;
            s.components = d.vec(component)?;
            if s.components.is_empty() {
                return Err("a version 2 snapshot without components".into());
            }
            Ok(s)
        }),
        [0xff, 0x03, rest @ ..] => Dec::whole(rest, |d| {
            let mut s = snapshot(d)?;
            s.components = d.vec(component)?;
            s.original = Some(d.id()?);
            Ok(s)
        }),
        [0xff, v, ..] => Err(format!("unknown snapshot version {v}")),
        _ => Dec::whole(plain, snapshot),
    }
}

fn snapshot(d: &mut Dec) -> R<Snapshot> {
    Ok(Snapshot {
        time: timestamp(d)?,
        tz_offset: d.i32()?,
        hostname: d.string()?,
        username: d.string()?,
        uid: d.u32()?,
        gid: d.u32()?,
        paths: d.vec(|d| d.string())?,
        tags: d.vec(|d| d.string())?,
        excludes: d.vec(|d| d.string())?,
        tree: d.id()?,
        parent: d.option(|d| d.id())?,
        program_version: d.string()?,
        summary: Summary {
            backup_start: timestamp(d)?,
            backup_end: timestamp(d)?,
            files_new: d.u64()?,
            files_changed: d.u64()?,
            files_unchanged: d.u64()?,
            dirs_new: d.u64()?,
            dirs_changed: d.u64()?,
            dirs_unchanged: d.u64()?,
            data_blobs: d.u64()?,
            tree_blobs: d.u64()?,
            data_added: d.u64()?,
            data_added_packed: d.u64()?,
            total_files_processed: d.u64()?,
            total_bytes_processed: d.u64()?,
            errors: d.u64()?,
        },
        components: Vec::new(),
        original: None,
    })
}

/// § Drill records, `DrillComponent`.
#[derive(Debug, Clone)]
#[allow(dead_code)]
struct DrillComponent {
    path: String,
    ok: bool,
    bytes: u64,
    restore_ms: u64,
    command_ms: u64,
    command: String,
    exit_code: Option<i32>,
    message: String,
}

/// § Drill records, `DrillRecord`.
#[derive(Debug, Clone)]
#[allow(dead_code)]
struct DrillRecord {
    time: Timestamp,
    hostname: String,
    username: String,
    snapshot: [u8; 32],
    snapshot_host: String,
    snapshot_tags: Vec<String>,
    snapshot_time: Timestamp,
    components: Vec<DrillComponent>,
    total_ms: u64,
    rto_ms: Option<u64>,
    /// 0 passed, 1 failed, 2 RTO exceeded.
    verdict: u32,
    program_version: String,
}

/// § Drill records: the version byte (1), then the fields.
fn drill_record(d: &mut Dec) -> R<DrillRecord> {
    let version = d.u8()?;
    if version != 1 {
        return Err(format!("drill record version {version} is not 1"));
    }
    Ok(DrillRecord {
        time: timestamp(d)?,
        hostname: d.string()?,
        username: d.string()?,
        snapshot: d.id()?,
        snapshot_host: d.string()?,
        snapshot_tags: d.vec(|d| d.string())?,
        snapshot_time: timestamp(d)?,
        components: d.vec(|d| {
            Ok(DrillComponent {
                path: d.string()?,
                ok: d.bool()?,
                bytes: d.u64()?,
                restore_ms: d.u64()?,
                command_ms: d.u64()?,
                command: d.string()?,
                exit_code: d.option(|d| d.i32())?,
                message: d.string()?,
            })
        })?,
        total_ms: d.u64()?,
        rto_ms: d.option(|d| d.u64())?,
        verdict: match d.u32()? {
            v @ 0..=2 => v,
            v => return Err(format!("verdict variant {v} is not 0, 1 or 2")),
        },
        program_version: d.string()?,
    })
}

// ------------------------------------------------------------------------------------------
// § Keys and § Encryption.
// ------------------------------------------------------------------------------------------

struct Master {
    encrypt_key: [u8; 32],
    id_key: [u8; 32],
    chunker_key: [u8; 32],
}

const FILE_KEY_CONTEXT: &str = "cairn 2026-11-21 file key v1";
const GEAR_CONTEXT: &str = "cairn 2026-11-21 chunker gear v1";
const HEADER_POSITION: u64 = 0xffff_ffff_ffff_ffff;

fn nonce(position: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&position.to_be_bytes());
    n
}

fn aes_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> R<Vec<u8>> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| "AES-GCM authentication failed".to_string())
}

impl Master {
    /// § File keys: `derive_key(context, encrypt_key || salt)`.
    fn file_key(&self, salt: &[u8; 32]) -> [u8; 32] {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.encrypt_key);
        material[32..].copy_from_slice(salt);
        blake3::derive_key(FILE_KEY_CONTEXT, &material)
    }

    fn blob_id(&self, raw: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, raw).as_bytes()
    }

    /// § Single encrypted objects.
    fn open_object(&self, magic: &[u8; 4], data: &[u8]) -> R<Vec<u8>> {
        if data.len() < 53 {
            return Err(format!("object of {} bytes is shorter than 53", data.len()));
        }
        check_prefix(data, magic)?;
        let salt: [u8; 32] = data[5..37].try_into().unwrap();
        aes_open(&self.file_key(&salt), &nonce(0), &data[..5], &data[37..])
    }

    /// § Keyed gear table.
    fn gear(&self) -> ([u64; 256], [u64; 256]) {
        let mut g = [0u8; 2048];
        blake3::Hasher::new_derive_key(GEAR_CONTEXT).update(&self.chunker_key).finalize_xof().fill(&mut g);
        assert_eq!(
            g[..32],
            blake3::derive_key(GEAR_CONTEXT, &self.chunker_key),
            "§ Keyed gear table: first 32 bytes of G"
        );
        let mut gear = [0u64; 256];
        let mut gear_ls = [0u64; 256];
        for i in 0..256 {
            gear[i] = u64::from_le_bytes(g[8 * i..8 * i + 8].try_into().unwrap());
            gear_ls[i] = gear[i] << 1;
        }
        (gear, gear_ls)
    }
}

/// § Common prefix.
fn check_prefix(data: &[u8], magic: &[u8; 4]) -> R<()> {
    if data.len() < 5 || &data[..4] != magic {
        return Err(format!("magic is not {:?}", String::from_utf8_lossy(magic)));
    }
    if data[4] != 1 {
        return Err(format!("version byte {} is not 1", data[4]));
    }
    Ok(())
}

/// § Key files: check, derive the wrapping key, unwrap. `Ok(None)` is a failed tag.
fn open_key_file(data: &[u8], password: &[u8]) -> R<Option<(KeyHeader, Master)>> {
    check_prefix(data, b"CRNK")?;
    let header_len = u32::from_le_bytes(data.get(5..9).ok_or("truncated")?.try_into().unwrap()) as usize;
    if data.len() as u64 != header_len as u64 + 121 {
        return Err(format!("size {} is not header_len {header_len} + 121", data.len()));
    }
    let header = Dec::whole(&data[9..9 + header_len], key_header)?;
    if header.algorithm != 1 {
        return Err(format!("KDF algorithm {} refused", header.algorithm));
    }
    if !(8192..=4_194_304).contains(&header.memory_kib) || header.iterations < 1 || header.parallelism < 1 {
        return Err(format!("KDF parameters out of the accepted range: {header:?}"));
    }
    let params = argon2::Params::new(header.memory_kib, header.iterations, header.parallelism, Some(32))
        .map_err(|e| e.to_string())?;
    let mut wrapping = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, &header.salt, &mut wrapping)
        .map_err(|e| e.to_string())?;
    let aad = &data[..9 + header_len];
    let Ok(plain) = aes_open(&wrapping, &[0u8; 12], aad, &data[9 + header_len..]) else {
        return Ok(None);
    };
    assert_eq!(plain.len(), 96);
    let k = |r: std::ops::Range<usize>| -> [u8; 32] { plain[r].try_into().unwrap() };
    Ok(Some((header, Master { encrypt_key: k(0..32), id_key: k(32..64), chunker_key: k(64..96) })))
}

// ------------------------------------------------------------------------------------------
// A read-only repository, as § Read and write ordering and § Verification on every read ask.
// ------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Loc {
    pack: [u8; 32],
    salt: [u8; 32],
    entry: BlobEntry,
}

struct Repo {
    root: PathBuf,
    master: Master,
    key_header: KeyHeader,
    config: Config,
    /// Pack id → decrypted header entries (read from the end of each pack).
    pack_headers: BTreeMap<[u8; 32], Vec<BlobEntry>>,
    index_files: BTreeMap<[u8; 32], IndexFile>,
    index: HashMap<[u8; 32], Loc>,
    snapshots: BTreeMap<[u8; 32], Snapshot>,
    drills: BTreeMap<[u8; 32], DrillRecord>,
}

/// Names in `dir`, `.tmp-` names left out (§ Atomic writes).
fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    v.sort();
    v
}

/// Read a storage file in full and check its name is `hex(BLAKE3-256(bytes))`.
fn read_named(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), name, "§ Ids and hashing: name of {}", path.display());
    bytes
}

fn id_from_hex(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

impl Repo {
    fn open(root: &Path, password: &[u8]) -> Repo {
        // § Repository layout.
        let mut top: BTreeSet<String> = list(root).into_iter().collect();
        // § Repository layout: `drills/` exists once a drill was recorded.
        let has_drills = top.remove("drills");
        let want: BTreeSet<String> =
            ["config", "data", "index", "keys", "locks", "snapshots"].iter().map(|s| s.to_string()).collect();
        assert_eq!(top, want, "§ Repository layout: top-level entries");
        let data_dirs = list(&root.join("data"));
        assert_eq!(
            data_dirs,
            (0..=255u8).map(|i| format!("{i:02x}")).collect::<Vec<_>>(),
            "§ Repository layout: data/00 … data/ff"
        );
        assert!(list(&root.join("locks")).is_empty());

        // § Key files, "Opening a repository".
        let mut opened = None;
        for name in list(&root.join("keys")) {
            let data = read_named(&root.join("keys").join(&name));
            match open_key_file(&data, password) {
                Ok(Some(k)) => {
                    opened = Some(k);
                    break;
                }
                Ok(None) => {}
                Err(e) => panic!("key file {name} damaged: {e}"),
            }
        }
        let (key_header, master) = opened.expect("no key file opens with the password");

        // § Config.
        let cfg_bytes = fs::read(root.join("config")).unwrap();
        let plain = master.open_object(b"CRNC", &cfg_bytes).expect("config");
        let config = Dec::whole(&plain, config).expect("config decodes");
        assert_eq!(config.version, 1, "§ Config: version");

        let mut repo = Repo {
            root: root.to_path_buf(),
            master,
            key_header,
            config,
            pack_headers: BTreeMap::new(),
            index_files: BTreeMap::new(),
            index: HashMap::new(),
            snapshots: BTreeMap::new(),
            drills: BTreeMap::new(),
        };

        // § Pack files: every pack read in full and from the end.
        for d in &data_dirs {
            for name in list(&root.join("data").join(d)) {
                assert_eq!(&name[..2], d, "§ Repository layout: pack {name} in data/{d}");
                let bytes = read_named(&root.join("data").join(d).join(&name));
                let entries = repo.read_pack_header(&bytes).unwrap_or_else(|e| panic!("pack {name}: {e}"));
                repo.pack_headers.insert(id_from_hex(&name), entries);
            }
        }

        // § Index files.
        for name in list(&root.join("index")) {
            let bytes = read_named(&root.join("index").join(&name));
            let plain = repo.master.open_object(b"CRNI", &bytes).unwrap_or_else(|e| panic!("index {name}: {e}"));
            let f = Dec::whole(&plain, index_file).unwrap_or_else(|e| panic!("index {name}: {e}"));
            repo.index_files.insert(id_from_hex(&name), f);
        }
        // The union, leaving out superseded index files.
        let superseded: BTreeSet<[u8; 32]> =
            repo.index_files.values().flat_map(|f| f.supersedes.iter().copied()).collect();
        for (id, f) in &repo.index_files {
            if superseded.contains(id) {
                continue;
            }
            for p in &f.packs {
                for e in &p.blobs {
                    repo.index.entry(e.id).or_insert(Loc { pack: p.id, salt: p.salt, entry: *e });
                }
            }
        }

        // § Snapshots.
        for name in list(&root.join("snapshots")) {
            let bytes = read_named(&root.join("snapshots").join(&name));
            let plain = repo.master.open_object(b"CRNS", &bytes).unwrap_or_else(|e| panic!("snapshot {name}: {e}"));
            let s = snapshot_file(&plain).unwrap_or_else(|e| panic!("snapshot {name}: {e}"));
            repo.snapshots.insert(id_from_hex(&name), s);
        }

        // § Drill records.
        if has_drills {
            for name in list(&root.join("drills")) {
                let bytes = read_named(&root.join("drills").join(&name));
                let plain = repo.master.open_object(b"CRND", &bytes).unwrap_or_else(|e| panic!("drill {name}: {e}"));
                let r = Dec::whole(&plain, drill_record).unwrap_or_else(|e| panic!("drill {name}: {e}"));
                repo.drills.insert(id_from_hex(&name), r);
            }
        }
        repo
    }

    /// § Reading a pack from the end, plus the layout rules of § Pack files.
    fn read_pack_header(&self, pack: &[u8]) -> R<Vec<BlobEntry>> {
        check_prefix(pack, b"CRNP")?;
        let size = pack.len() as u64;
        if size < 41 {
            return Err("too short".into());
        }
        let l = u32::from_le_bytes(pack[pack.len() - 4..].try_into().unwrap()) as u64;
        if l < 16 || size - 4 < l || size - 4 - l < 37 {
            return Err(format!("header_length {l} out of bounds"));
        }
        let start = (size - 4 - l) as usize;
        let salt: [u8; 32] = pack[5..37].try_into().unwrap();
        let plain =
            aes_open(&self.master.file_key(&salt), &nonce(HEADER_POSITION), b"CRNP\x01", &pack[start..pack.len() - 4])?;
        let entries = Dec::whole(&plain, |d| d.vec(blob_entry))?;
        let mut next = 37u64;
        for e in &entries {
            if (e.offset as u64) < 37 || e.offset as u64 + e.length as u64 > start as u64 {
                return Err(format!("entry {e:?} out of bounds"));
            }
            // "Blobs are contiguous: offset_1 = 37, offset_{i+1} = offset_i + length_i".
            if e.offset as u64 != next {
                return Err(format!("entry at {} is not contiguous (expected {next})", e.offset));
            }
            next += e.length as u64;
            if e.blob_type != entries[0].blob_type || e.blob_type > 1 {
                return Err("data and tree blobs mixed, or undefined type".into());
            }
        }
        if next != start as u64 {
            return Err("header ciphertext does not start right after the last blob".into());
        }
        Ok(entries)
    }

    fn pack_path(&self, id: &[u8; 32]) -> PathBuf {
        let h = hex::encode(id);
        self.root.join("data").join(&h[..2]).join(h)
    }

    /// § Reading a blob, by byte range, with every check. Returns the raw bytes and the
    /// compression byte found.
    fn read_blob(&self, blob_type: u8, id: &[u8; 32]) -> R<(Vec<u8>, u8)> {
        let loc = self.index.get(id).ok_or("blob not in the index")?;
        let e = loc.entry;
        if e.blob_type != blob_type {
            return Err(format!("indexed as type {}, wanted {blob_type}", e.blob_type));
        }
        let f = fs::File::open(self.pack_path(&loc.pack)).map_err(|e| e.to_string())?;
        let mut stored = vec![0u8; e.length as usize];
        f.read_exact_at(&mut stored, e.offset as u64).map_err(|e| e.to_string())?;
        let mut aad = vec![blob_type];
        aad.extend_from_slice(id);
        let framed = aes_open(&self.master.file_key(&loc.salt), &nonce(e.offset as u64), &aad, &stored)?;
        let (&compression, body) = framed.split_first().ok_or("empty plaintext")?;
        let raw = match compression {
            0 => body.to_vec(),
            1 => zstd::bulk::decompress(body, e.raw_length as usize).map_err(|e| format!("zstd: {e}"))?,
            c => return Err(format!("compression byte {c}")),
        };
        if raw.len() != e.raw_length as usize {
            return Err(format!("{} bytes, raw_length {}", raw.len(), e.raw_length));
        }
        if self.master.blob_id(&raw) != *id {
            return Err("keyed hash does not match the blob id".into());
        }
        // § Framing and compression: "Stored length = 1 + len(body) + 16".
        assert_eq!(e.length as usize, 1 + body.len() + 16);
        Ok((raw, compression))
    }

    fn tree(&self, id: &[u8; 32]) -> Vec<Node> {
        let (raw, _) = self.read_blob(1, id).unwrap_or_else(|e| panic!("tree {}: {e}", hex::encode(id)));
        Dec::whole(&raw, tree).unwrap_or_else(|e| panic!("tree {}: {e}", hex::encode(id)))
    }

    fn file_content(&self, n: &Node) -> Vec<u8> {
        let mut out = Vec::new();
        for id in &n.content {
            out.extend(self.read_blob(0, id).unwrap_or_else(|e| panic!("data blob {}: {e}", hex::encode(id))).0);
        }
        out
    }

    fn raw_lengths(&self, n: &Node) -> Vec<usize> {
        n.content.iter().map(|id| self.index[id].entry.raw_length as usize).collect()
    }
}

// ------------------------------------------------------------------------------------------
// § Chunker.
// ------------------------------------------------------------------------------------------

/// The MASKS table of § Masks, copied from the spec.
const MASKS: [u64; 26] = [
    0,
    0,
    0,
    0,
    0,
    0x0000000001804110,
    0x0000000001803110,
    0x0000000018035100,
    0x0000001800035300,
    0x0000019000353000,
    0x0000590003530000,
    0x0000d90003530000,
    0x0000d90103530000,
    0x0000d90303530000,
    0x0000d90313530000,
    0x0000d90f03530000,
    0x0000d90303537000,
    0x0000d90703537000,
    0x0000d90707537000,
    0x0000d91707537000,
    0x0000d91747537000,
    0x0000d91767537000,
    0x0000d93767537000,
    0x0000d93777537000,
    0x0000d93777577000,
    0x0000db3777577000,
];

struct SpecChunker {
    p: ChunkerParams,
    gear: [u64; 256],
    gear_ls: [u64; 256],
    mask_s: u64,
    mask_l: u64,
}

impl SpecChunker {
    fn new(p: ChunkerParams, master: &Master) -> Self {
        let bits = (p.avg_size as f64).log2().round() as usize; // round half away from zero
        let level = p.normalization as usize;
        let (gear, gear_ls) = master.gear();
        SpecChunker { mask_s: MASKS[bits + level], mask_l: MASKS[bits - level], p, gear, gear_ls }
    }

    /// The `cut(src)` pseudocode of § Algorithm, transcribed.
    fn cut(&self, src: &[u8]) -> usize {
        let (min, avg, max) = (self.p.min_size as usize, self.p.avg_size as usize, self.p.max_size as usize);
        let (mask_s_ls, mask_l_ls) = (self.mask_s << 1, self.mask_l << 1);
        let mut n = src.len();
        if n <= min {
            return n;
        }
        let mut center = avg;
        if n > max {
            n = max;
        } else if n < center {
            center = n;
        }
        let mut i = min / 2;
        let mut h: u64 = 0;
        while i < center / 2 {
            let a = 2 * i;
            h = (h << 2).wrapping_add(self.gear_ls[src[a] as usize]);
            if h & mask_s_ls == 0 {
                return a;
            }
            h = h.wrapping_add(self.gear[src[a + 1] as usize]);
            if h & self.mask_s == 0 {
                return a + 1;
            }
            i += 1;
        }
        while i < n / 2 {
            let a = 2 * i;
            h = (h << 2).wrapping_add(self.gear_ls[src[a] as usize]);
            if h & mask_l_ls == 0 {
                return a;
            }
            h = h.wrapping_add(self.gear[src[a + 1] as usize]);
            if h & self.mask_l == 0 {
                return a + 1;
            }
            i += 1;
        }
        n
    }

    /// The same through `fastcdc` 3 `v2020::cut_gear`, as the spec says it is exactly.
    fn cut_fastcdc(&self, src: &[u8]) -> usize {
        fastcdc::v2020::cut_gear(
            src,
            self.p.min_size as usize,
            self.p.avg_size as usize,
            self.p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }

    fn lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.cut(rest);
            assert_eq!(n, self.cut_fastcdc(rest), "spec pseudocode and fastcdc::v2020::cut_gear disagree");
            assert!(n >= 1 && n <= self.p.max_size as usize);
            out.push(n);
            rest = &rest[n..];
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// Test fixture: a source tree, backed up by the `cairn` binary.
// ------------------------------------------------------------------------------------------

fn cairn(repo: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("-r").arg(repo).args(args);
    for v in ["CAIRN_REPOSITORY", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"] {
        cmd.env_remove(v);
    }
    cmd.env("CAIRN_PASSWORD", PASSWORD).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("run cairn");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || w.write_all(&input).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "cairn {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn make_source(dir: &Path) {
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("random.bin"), noise(3 * 1024 * 1024 + 12345, 7)).unwrap();
    let text: String = (0..1500).map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n")).collect();
    fs::write(dir.join("compressible.txt"), text).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::write(dir.join("sub/hello.txt"), b"hello, world\n").unwrap();
    fs::write(dir.join("sub/deeper/tiny"), b"x").unwrap();
    std::os::unix::fs::symlink("sub/hello.txt", dir.join("link")).unwrap();
    fs::set_permissions(dir.join("compressible.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(dir.join("sub/hello.txt"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    // Fixed times with nanoseconds, one before the epoch (negative zigzag seconds).
    filetime::set_file_mtime(dir.join("random.bin"), filetime::FileTime::from_unix_time(1_600_000_000, 123_456_789))
        .unwrap();
    filetime::set_file_mtime(dir.join("empty"), filetime::FileTime::from_unix_time(-86_400, 999_999_999)).unwrap();
    filetime::set_symlink_file_times(
        dir.join("link"),
        filetime::FileTime::from_unix_time(1_000, 0),
        filetime::FileTime::from_unix_time(1_234_567_890, 42),
    )
    .unwrap();
    // § Tree blobs, version 2: extended attributes (a binary value, an empty one, a raw POSIX
    // ACL on a directory; a trusted.* one on the symlink itself, which only root may set).
    xattr::set(dir.join("random.bin"), "user.binary", &[0, 1, 0xfe, 0xff]).unwrap();
    xattr::set(dir.join("random.bin"), "user.empty", b"").unwrap();
    let acl: &[u8] = &[
        2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff,
        0xff, 0xff,
    ];
    xattr::set(dir.join("sub"), "system.posix_acl_default", acl).unwrap();
    if nix::unistd::geteuid().is_root() {
        xattr::set(dir.join("link"), "trusted.on_link", b"link itself").unwrap();
    }
    filetime::set_file_mtime(dir.join("sub/deeper"), filetime::FileTime::from_unix_time(1_700_000_000, 5)).unwrap();
}

/// The extended attributes of `path` itself, sorted by name.
fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let mut v: Vec<(Vec<u8>, Vec<u8>)> =
        xattr::list(path).unwrap().map(|n| (n.as_bytes().to_vec(), xattr::get(path, &n).unwrap().unwrap())).collect();
    v.sort();
    v
}

/// Compare a node's metadata with `lstat` of `path`.
fn check_metadata(n: &Node, path: &Path) {
    let md = fs::symlink_metadata(path).unwrap();
    let what = path.display();
    let kind = if md.file_type().is_dir() {
        DIR
    } else if md.file_type().is_symlink() {
        SYMLINK
    } else {
        FILE
    };
    assert_eq!(n.kind, kind, "{what}: kind");
    assert_eq!(n.mode, md.mode() & 0o7777, "{what}: mode");
    assert_eq!((n.uid, n.gid), (md.uid(), md.gid()), "{what}: uid/gid");
    assert_eq!(n.mtime, Timestamp { secs: md.mtime(), nanos: md.mtime_nsec() as u32 }, "{what}: mtime");
    assert_eq!(n.ctime, Timestamp { secs: md.ctime(), nanos: md.ctime_nsec() as u32 }, "{what}: ctime");
    assert_eq!(
        (n.inode, n.device, n.links, n.rdev),
        (md.ino(), md.dev(), md.nlink(), 0),
        "{what}: inode/device/links/rdev"
    );
    assert_eq!(n.size, if kind == FILE { md.len() } else { 0 }, "{what}: size");
    assert_eq!(n.xattrs, xattrs_of(path), "{what}: extended attributes");
}

/// Walk a directory's tree recursively, comparing every entry with the source.
fn compare_dir(repo: &Repo, tree_id: &[u8; 32], dir: &Path, files_seen: &mut Vec<(PathBuf, Node)>) {
    use std::os::unix::ffi::OsStrExt;
    let nodes = repo.tree(tree_id);
    let mut names: Vec<Vec<u8>> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    names.sort();
    assert_eq!(nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(), names, "names in {}", dir.display());
    for n in &nodes {
        let path = dir.join(std::ffi::OsStr::from_bytes(&n.name));
        check_metadata(n, &path);
        match n.kind {
            FILE => {
                assert!(n.symlink_target.is_empty() && n.subtree.is_none());
                let content = repo.file_content(n);
                assert_eq!(content, fs::read(&path).unwrap(), "content of {}", path.display());
                if content.is_empty() {
                    assert!(n.content.is_empty(), "§ Tree blobs: an empty file has no content blobs");
                }
                files_seen.push((path, n.clone()));
            }
            DIR => {
                assert!(n.content.is_empty() && n.symlink_target.is_empty());
                compare_dir(repo, &n.subtree.expect("Dir without subtree"), &path, files_seen);
            }
            SYMLINK => {
                assert!(n.content.is_empty() && n.subtree.is_none());
                assert_eq!(n.symlink_target, fs::read_link(&path).unwrap().as_os_str().as_bytes(), "symlink target");
            }
            k => panic!("unexpected kind {k}"),
        }
    }
}

#[test]
fn spec_reader_reads_what_cairn_wrote() {
    let work = tempfile::tempdir().unwrap();
    fs::create_dir(work.path().join("src")).unwrap();
    // Canonical: every component of the path is a real directory, as the root tree mirrors it.
    let src = work.path().join("src").canonicalize().unwrap();
    make_source(&src);
    let repo_dir = work.path().join("repo");

    cairn(&repo_dir, &["init"], None);
    cairn(&repo_dir, &["backup", src.to_str().unwrap()], None);
    let stdin_data: Vec<u8> = [noise(1_900_000, 99), b"tail of standard input\n".to_vec()].concat();
    cairn(&repo_dir, &["backup", "--stdin", "--stdin-filename", "data.txt"], Some(&stdin_data));
    let listed: serde_json::Value = serde_json::from_slice(&cairn(&repo_dir, &["--json", "snapshots"], None)).unwrap();

    let repo = Repo::open(&repo_dir, PASSWORD.as_bytes());

    // § Key files: the defaults written.
    let kh = &repo.key_header;
    assert_eq!(
        (kh.algorithm, kh.memory_kib, kh.iterations, kh.parallelism),
        (1, 65536, 3, 1),
        "§ Key files: default KDF parameters"
    );
    // § Config and § Choice of chunk sizes: the defaults written.
    let c = &repo.config;
    assert_eq!(
        c.chunker,
        ChunkerParams { min_size: 131_072, avg_size: 524_288, max_size: 2_097_152, normalization: 1 }
    );
    assert_eq!((c.pack_size, c.compression_level), (16_777_216, 3));

    // § Index files: every pack is indexed with its salt, size and header entries; a backup
    // writes `supersedes` empty.
    let mut indexed_packs = BTreeSet::new();
    for f in repo.index_files.values() {
        assert!(f.supersedes.is_empty(), "§ Index files: supersedes empty when written by a backup");
        for p in &f.packs {
            let bytes = fs::read(repo.pack_path(&p.id)).unwrap();
            assert_eq!(p.salt[..], bytes[5..37], "§ Index files: salt is a copy of pack bytes [5, 37)");
            assert_eq!(p.size, bytes.len() as u64, "§ Index files: pack size");
            assert_eq!(p.blobs, repo.pack_headers[&p.id], "§ Index files: blobs are the pack's header entries");
            indexed_packs.insert(p.id);
        }
    }
    assert_eq!(
        indexed_packs,
        repo.pack_headers.keys().copied().collect(),
        "every pack written by a completed backup is indexed"
    );

    // Every blob in every pack decrypts and verifies.
    let mut compression_seen = BTreeSet::new();
    for entries in repo.pack_headers.values() {
        for e in entries {
            let (_, comp) = repo.read_blob(e.blob_type, &e.id).unwrap();
            compression_seen.insert((e.blob_type, comp));
        }
    }
    assert!(
        compression_seen.contains(&(0, 0)) && compression_seen.contains(&(0, 1)),
        "both stored and zstd data blobs: {compression_seen:?}"
    );

    // § Snapshots: `snapshots --json` lists the storage names as ids.
    assert_eq!(repo.snapshots.len(), 2);
    let json_ids: BTreeSet<[u8; 32]> =
        listed.as_array().unwrap().iter().map(|s| id_from_hex(s["id"].as_str().unwrap())).collect();
    assert_eq!(json_ids, repo.snapshots.keys().copied().collect());
    for s in listed.as_array().unwrap() {
        let snap = &repo.snapshots[&id_from_hex(s["id"].as_str().unwrap())];
        assert_eq!(s["tree"].as_str().unwrap(), hex::encode(snap.tree));
        assert_eq!(s["paths"], serde_json::json!(snap.paths));
    }
    let src_str = src.to_str().unwrap().to_string();
    let dir_snap =
        repo.snapshots.values().find(|s| s.paths == vec![src_str.clone()]).expect("snapshot of the directory");
    let stdin_snap = repo
        .snapshots
        .values()
        .find(|s| s.paths == vec!["/data.txt".to_string()])
        .expect("§ Tree blobs: stdin paths = [\"/<name>\"]");
    for s in [dir_snap, stdin_snap] {
        assert!(s.parent.is_none() && s.tags.is_empty() && s.excludes.is_empty());
        assert_eq!(s.summary.errors, 0);
    }

    // Summary figures describe exactly what was added (sum over both backups).
    let all: Vec<&BlobEntry> = repo.pack_headers.values().flatten().collect();
    let sum = |f: &dyn Fn(&Summary) -> u64| repo.snapshots.values().map(|s| f(&s.summary)).sum::<u64>();
    assert_eq!(
        sum(&|s| s.data_blobs),
        all.iter().filter(|e| e.blob_type == 0).count() as u64,
        "§ Snapshots: data_blobs"
    );
    assert_eq!(
        sum(&|s| s.tree_blobs),
        all.iter().filter(|e| e.blob_type == 1).count() as u64,
        "§ Snapshots: tree_blobs"
    );
    assert_eq!(sum(&|s| s.data_added), all.iter().map(|e| e.raw_length as u64).sum::<u64>(), "§ Snapshots: data_added");
    assert_eq!(
        sum(&|s| s.data_added_packed),
        all.iter().map(|e| e.length as u64).sum::<u64>(),
        "§ Snapshots: data_added_packed"
    );

    // § Tree blobs, "Root tree": the root mirrors the absolute path, through intermediate
    // directories carrying the real directories' metadata.
    let mut tree_id = dir_snap.tree;
    let mut real = PathBuf::from("/");
    let comps: Vec<&std::ffi::OsStr> = src.components().skip(1).map(|c| c.as_os_str()).collect();
    for (i, comp) in comps.iter().enumerate() {
        use std::os::unix::ffi::OsStrExt;
        let nodes = repo.tree(&tree_id);
        assert_eq!(nodes.len(), 1, "one source: one entry per intermediate tree");
        let n = &nodes[0];
        assert_eq!(n.name, comp.as_bytes());
        real.push(comp);
        let md = fs::symlink_metadata(&real).unwrap();
        assert_eq!(
            (n.kind, n.mode, n.inode, n.uid),
            (DIR, md.mode() & 0o7777, md.ino(), md.uid()),
            "intermediate {}",
            real.display()
        );
        if i == comps.len() - 1 {
            check_metadata(n, &real); // the source itself: all metadata
        }
        tree_id = n.subtree.expect("directory node has a subtree");
    }
    let mut files = Vec::new();
    compare_dir(&repo, &tree_id, &src, &mut files);
    assert_eq!(files.len(), 5);
    let src_summary = &dir_snap.summary;
    assert_eq!(src_summary.total_files_processed, 5);
    assert_eq!(src_summary.total_bytes_processed, files.iter().map(|(_, n)| n.size).sum::<u64>());

    // The compressible file's blobs are zstd frames; the random file's are stored.
    let (_, text_node) = files.iter().find(|(p, _)| p.ends_with("compressible.txt")).unwrap();
    assert!(!text_node.content.is_empty());
    for id in &text_node.content {
        let (_, comp) = repo.read_blob(0, id).unwrap();
        assert_eq!(comp, 1, "§ Framing and compression: compressible chunk stored as zstd");
        assert!(repo.index[id].entry.length < repo.index[id].entry.raw_length);
    }

    // § Chunker: re-chunk with the spec's algorithm and the keyed gear table; the cuts are
    // the raw lengths of the file's content blobs, and the chunks hash to its blob ids.
    let chunker = SpecChunker::new(repo.config.chunker.clone(), &repo.master);
    let (_, random_node) = files.iter().find(|(p, _)| p.ends_with("random.bin")).unwrap();
    let random = fs::read(src.join("random.bin")).unwrap();
    let cuts = chunker.lengths(&random);
    assert!(cuts.len() >= 2, "a 3 MiB file is more than one chunk: {cuts:?}");
    assert_eq!(cuts, repo.raw_lengths(random_node), "§ Chunker: boundaries of random.bin");
    let mut pos = 0;
    for (len, id) in cuts.iter().zip(&random_node.content) {
        assert_eq!(repo.master.blob_id(&random[pos..pos + len]), *id);
        let (_, comp) = repo.read_blob(0, id).unwrap();
        assert_eq!(comp, 0, "§ Framing and compression: random chunk stored");
        assert_eq!(repo.index[id].entry.length, *len as u32 + 17);
        pos += len;
    }
    for (path, n) in &files {
        let data = fs::read(path).unwrap();
        assert_eq!(chunker.lengths(&data), repo.raw_lengths(n), "§ Chunker: boundaries of {}", path.display());
    }

    // § Tree blobs, "Standard input".
    let nodes = repo.tree(&stdin_snap.tree);
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!((n.name.as_slice(), n.kind, n.size), (b"data.txt".as_slice(), FILE, stdin_data.len() as u64));
    assert_eq!(repo.file_content(n), stdin_data);
    assert_eq!(chunker.lengths(&stdin_data), repo.raw_lengths(n), "§ Chunker: boundaries of standard input");
    assert_eq!(stdin_snap.summary.total_bytes_processed, stdin_data.len() as u64);
}

/// § Snapshots, version 2 and "Command components": a backup with a command component, read
/// without cairn's decoder: the components as `snapshots --json` shows them, the command's
/// file node where its path says, with the command's bytes, and its made-up directory.
#[test]
fn spec_reader_reads_a_snapshot_with_components() {
    let work = tempfile::tempdir().unwrap();
    fs::create_dir(work.path().join("src")).unwrap();
    let src = work.path().join("src").canonicalize().unwrap();
    fs::write(src.join("f"), b"file").unwrap();
    let repo_dir = work.path().join("repo");
    cairn(&repo_dir, &["init"], None);
    let dump = noise(600_000, 5);
    let dump_file = work.path().join("dump.bin");
    fs::write(&dump_file, &dump).unwrap();
    let good = format!("--command=/spec/db.dump=cat {}", dump_file.display());
    let bin = env!("CARGO_BIN_EXE_cairn");
    let out = std::process::Command::new(bin)
        .arg("-r")
        .arg(&repo_dir)
        .args(["backup", src.to_str().unwrap(), &good, "--command=/spec/bad.dump=false"])
        .env("CAIRN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&cairn(&repo_dir, &["--json", "snapshots"], None)).unwrap();
    let repo = Repo::open(&repo_dir, PASSWORD.as_bytes());
    assert_eq!(repo.snapshots.len(), 1);
    let snap = repo.snapshots.values().next().unwrap();
    let json = &listed[0]["components"];
    assert_eq!(snap.components.len(), 3);
    for (c, j) in snap.components.iter().zip(json.as_array().unwrap()) {
        assert_eq!(c.path, j["path"].as_str().unwrap());
        assert_eq!(["path", "command", "stdin"][c.kind as usize], j["kind"].as_str().unwrap());
        assert_eq!(["ok", "failed", "partial"][c.status as usize], j["status"].as_str().unwrap());
        assert_eq!(c.bytes, j["bytes"].as_u64().unwrap());
        assert_eq!(c.reason, j["reason"].as_str().unwrap());
        assert_eq!(c.exit_code.map(i64::from), j["exit_code"].as_i64());
    }
    let bad = &snap.components[2];
    assert_eq!((bad.kind, bad.status, bad.exit_code), (1, 1, Some(1)));
    assert_eq!(snap.paths, vec![src.to_str().unwrap().to_string(), "/spec/db.dump".into(), "/spec/bad.dump".into()]);
    // The root tree: the source's first directory and the made-up `spec` (0700, the user's).
    let root = repo.tree(&snap.tree);
    let spec = root.iter().find(|n| n.name == b"spec").expect("the made-up directory");
    assert_eq!((spec.kind, spec.mode), (DIR, 0o700));
    let below = repo.tree(&spec.subtree.expect("a subtree"));
    assert_eq!(below.len(), 1, "the failed command has no node");
    assert_eq!(below[0].name, b"db.dump");
    assert_eq!(below[0].mode, 0o600);
    // § Command components: the snapshot's time as the node's mtime (the made-up directory's too).
    assert_eq!((below[0].mtime, spec.mtime), (snap.time, snap.time));
    assert_eq!(repo.file_content(&below[0]), dump);
}

/// § Drill records: a drill by the `cairn` binary, read back with the hand-written decoder and
/// compared with what `drill --json` printed; a failed drill (a drill command that fails) is
/// recorded as well, verdict 1.
#[test]
fn spec_reader_reads_drill_records() {
    let work = tempfile::tempdir().unwrap();
    fs::create_dir(work.path().join("src")).unwrap();
    let src = work.path().join("src").canonicalize().unwrap();
    fs::write(src.join("f"), noise(100_000, 9)).unwrap();
    let repo_dir = work.path().join("repo");
    cairn(&repo_dir, &["init"], None);
    cairn(&repo_dir, &["backup", "--host", "spec-host", "--tag", "t1", src.to_str().unwrap()], None);
    // The component is a directory: its drill command compares the file restored in it.
    let good =
        format!("--drill-command={}=sh -c 'cmp \"$CAIRN_DRILL_FILE/f\" {}'", src.display(), src.join("f").display());
    let printed: serde_json::Value =
        serde_json::from_slice(&cairn(&repo_dir, &["--json", "drill", "--rto", "1h", &good], None)).unwrap();
    let repo = Repo::open(&repo_dir, PASSWORD.as_bytes());
    assert_eq!(repo.drills.len(), 1);
    let (id, r) = repo.drills.iter().next().unwrap();
    assert_eq!(hex::encode(id), printed["record_id"].as_str().unwrap());
    assert_eq!(r.verdict, 0);
    assert_eq!(hex::encode(r.snapshot), printed["snapshot_id"].as_str().unwrap());
    assert!(repo.snapshots.contains_key(&r.snapshot));
    assert_eq!(r.snapshot_host, "spec-host");
    assert_eq!(r.snapshot_tags, vec!["t1".to_string()]);
    assert_eq!(r.snapshot_time, repo.snapshots[&r.snapshot].time);
    assert_eq!(r.rto_ms, Some(3_600_000));
    assert_eq!(r.program_version, format!("cairn {}", env!("CARGO_PKG_VERSION")));
    // The same wall time, in milliseconds (rounding aside).
    assert!((r.total_ms as f64 - printed["total_seconds"].as_f64().unwrap() * 1000.0).abs() <= 1.0);
    assert_eq!(r.components.len(), 1);
    let c = &r.components[0];
    assert_eq!(c.path, src.to_str().unwrap());
    assert!(c.ok && c.message.is_empty());
    assert_eq!((c.bytes, c.exit_code), (100_000, Some(0)));
    assert!(c.command.starts_with("`sh -c "), "{}", c.command);
    // A failing drill command: the drill fails (exit 1) and is recorded with verdict 1.
    let bad = format!("--drill-command={}=false", src.display());
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&repo_dir)
        .args(["drill", &bad])
        .env("CAIRN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let repo = Repo::open(&repo_dir, PASSWORD.as_bytes());
    let failed: Vec<&DrillRecord> = repo.drills.values().filter(|r| r.verdict == 1).collect();
    assert_eq!(failed.len(), 1);
    assert!(!failed[0].components[0].ok);
    assert_eq!(failed[0].components[0].exit_code, Some(1));
    assert!(failed[0].components[0].message.contains("exit code 1"), "{}", failed[0].components[0].message);
}

/// The master key of the golden files (`tests/golden.rs`, `master_bytes`: byte i is
/// `i × 37 + 11`, mod 256), split as § Master key says.
fn golden_master() -> Master {
    let b: [u8; 96] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let k = |r: std::ops::Range<usize>| -> [u8; 32] { b[r].try_into().unwrap() };
    Master { encrypt_key: k(0..32), id_key: k(32..64), chunker_key: k(64..96) }
}

/// § Snapshots, version 3: the golden copy `tests/golden/snapshot-v3.bin` (written by cairn's
/// encoder when the version was introduced), decoded by hand: the fields and components of the
/// golden version 2 snapshot, and as original that snapshot's id, the BLAKE3 of its file.
#[test]
fn spec_reader_reads_a_version_3_snapshot() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden");
    let master = golden_master();
    let open = |name: &str| -> (Vec<u8>, Snapshot) {
        let bytes = fs::read(golden.join(name)).unwrap();
        let plain = master.open_object(b"CRNS", &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = snapshot_file(&plain).unwrap_or_else(|e| panic!("{name}: {e}"));
        (plain, s)
    };
    let (plain2, v2) = open("snapshot-v2.bin");
    let (plain3, v3) = open("snapshot-v3.bin");
    assert_eq!(&plain3[..2], &[0xff, 0x03]);
    assert_eq!(v2.original, None);
    let v2_id = *blake3::hash(&fs::read(golden.join("snapshot-v2.bin")).unwrap()).as_bytes();
    assert_eq!(v3.original, Some(v2_id), "§ Snapshots: original is the copied snapshot's id");
    assert_eq!(v3.components.len(), 3);
    assert_eq!(v3.hostname, "golden-host");
    // Everything but the original as in the version 2 snapshot: its body, byte for byte.
    assert_eq!(format!("{:?}", Snapshot { original: None, ..v3.clone() }), format!("{v2:?}"));
    assert_eq!(plain3[2..plain3.len() - 32], plain2[2..]);
    // A version 3 snapshot without components: the version 1 fields, 0x00, the original.
    let (plain1, v1) = open("snapshot.bin");
    let copy: Vec<u8> = [&[0xff, 0x03][..], &plain1, &[0x00], &[0x77; 32]].concat();
    let c = snapshot_file(&copy).unwrap();
    assert_eq!((c.original, c.components.len()), (Some([0x77; 32]), 0));
    assert_eq!(format!("{:?}", Snapshot { original: None, ..c }), format!("{v1:?}"));
    // Refused: no complete original, a byte after it, versions other than 1, 2 and 3.
    assert!(snapshot_file(&copy[..copy.len() - 1]).is_err());
    assert!(snapshot_file(&[&copy[..], &[0]].concat()).is_err());
    for v in [0x00, 0x01, 0x04, 0xff] {
        assert!(snapshot_file(&[&[0xff, v][..], &copy[2..]].concat()).is_err(), "version {v}");
    }
}

/// § Repositories sharing id and chunker keys: a repository made by `init
/// --copy-chunker-params` has the source's `id_key`, `chunker_key` and chunker parameters, and
/// its own `encrypt_key` and repository id; the same file backed up into both gives the same
/// blob ids (each checked against its own repository's `id_key` by the reader), and neither's
/// objects open with the other's keys.
#[test]
fn spec_reader_checks_repositories_sharing_ids() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src-data");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), noise(3_000_000, 21)).unwrap();
    let source = work.path().join("source");
    let target = work.path().join("target");
    cairn(&source, &["init"], None);
    let pw_file = work.path().join("source-password");
    fs::write(&pw_file, PASSWORD).unwrap();
    let from = source.to_str().unwrap();
    let pw = pw_file.to_str().unwrap();
    cairn(&target, &["init", "--copy-chunker-params", "--from-repo", from, "--from-password-file", pw], None);
    for repo in [&source, &target] {
        cairn(repo, &["backup", src.to_str().unwrap()], None);
    }
    let (s, t) = (Repo::open(&source, PASSWORD.as_bytes()), Repo::open(&target, PASSWORD.as_bytes()));
    assert_eq!(s.master.id_key, t.master.id_key, "id_key shared");
    assert_eq!(s.master.chunker_key, t.master.chunker_key, "chunker_key shared");
    assert_ne!(s.master.encrypt_key, t.master.encrypt_key, "encrypt_key of its own");
    assert_eq!(s.config.chunker, t.config.chunker, "config.chunker shared");
    assert_ne!(s.config.id, t.config.id, "config.id of its own");
    assert_ne!(s.key_header.salt, t.key_header.salt);
    let data_ids = |r: &Repo| {
        r.index.iter().filter(|(_, l)| l.entry.blob_type == 0).map(|(id, _)| *id).collect::<BTreeSet<[u8; 32]>>()
    };
    assert!(data_ids(&s).len() > 2, "{} data blobs", data_ids(&s).len());
    assert_eq!(data_ids(&s), data_ids(&t), "the same data blob ids");
    for id in data_ids(&t) {
        let (raw, _) = t.read_blob(0, &id).unwrap_or_else(|e| panic!("data blob {}: {e}", hex::encode(id)));
        assert_eq!(s.read_blob(0, &id).unwrap().0, raw);
    }
    // Each repository's objects open with its own keys only.
    let name = list(&source.join("snapshots")).remove(0);
    let snapshot = fs::read(source.join("snapshots").join(name)).unwrap();
    assert!(s.master.open_object(b"CRNS", &snapshot).is_ok());
    assert!(t.master.open_object(b"CRNS", &snapshot).is_err());
    let config = fs::read(target.join("config")).unwrap();
    assert!(s.master.open_object(b"CRNC", &config).is_err());
}

/// The spec's own examples, decoded with the hand-written decoder.
#[test]
fn spec_examples_decode() {
    // § Serialization: `Timestamp { secs: 1_700_000_000, nanos: 5 }` = fc 00 e2 a7 ca 05.
    let t = Dec::whole(&[0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05], timestamp).unwrap();
    assert_eq!(t, Timestamp { secs: 1_700_000_000, nanos: 5 });
    // A tag wider than the type, tags fe/ff, and bool bytes other than 0/1 are errors.
    assert!(Dec::whole(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0], |d| d.u32()).is_err());
    assert!(Dec::whole(&[0xfe], |d| d.u64()).is_err());
    assert!(Dec::whole(&[0x02, 0], |d| d.option(|d| d.u8())).is_err());
    // § Pack files, worked example: the 87-byte header plaintext.
    let mut h = vec![0x02];
    h.extend([0x00]);
    h.extend([0xa1; 32]);
    h.extend([0x25, 0xfb, 0xf9, 0x03, 0xfb, 0xe8, 0x03]);
    h.extend([0x00]);
    h.extend([0xb2; 32]);
    h.extend([0xfb, 0x1e, 0x04, 0xfc, 0xd1, 0xd4, 0x01, 0x00, 0xfc, 0xe0, 0x93, 0x04, 0x00]);
    assert_eq!(h.len(), 87);
    let e = Dec::whole(&h, |d| d.vec(blob_entry)).unwrap();
    assert_eq!(e[0], BlobEntry { blob_type: 0, id: [0xa1; 32], offset: 37, length: 1017, raw_length: 1000 });
    assert_eq!(e[1], BlobEntry { blob_type: 0, id: [0xb2; 32], offset: 1054, length: 120_017, raw_length: 300_000 });
    assert_eq!(e[1].offset + e[1].length + 87 + 16 + 4, 121_178);
}
