//! Golden files pinning repository format version 1 (`repo-format.md`).
//!
//! `tests/golden/*.bin` were written once by [`regenerate_golden_files`] (ignored; run it with
//! `cargo test --test golden -- --ignored regenerate_golden_files --nocapture` and paste the
//! constants it prints into the GENERATED block below). Every other test reads them with the
//! current library and compares the decoded values with the constants and the fixed values
//! built by the functions below: a change of the on-disk format makes these tests fail.
//!
//! The second half pins plaintext encodings byte by byte, written by hand from the spec's
//! "Serialization" rules, and runs property tests (round trips, and decoders fed random bytes
//! must return errors, never panic).
//!
//! The tests after "Rules the spec states" pin rules where the implementation once differed
//! from the spec (found by this file; the code or the spec was mended).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::backend::{local::LocalBackend, Backend, FileKind};
use cairn::blob::{self, BlobType};
use cairn::chunker::ChunkerParams;
use cairn::crypto::keyfile::{self, KdfParams, KeyHeader, Unwrapped};
use cairn::crypto::MasterKey;
use cairn::format;
use cairn::id::{BlobId, Id, IndexId, PackId, SnapshotId};
use cairn::index::{IndexFile, IndexPack};
use cairn::ops::drill::{DrillComponentRecord, DrillRecord, DrillVerdict};
use cairn::pack::{self, BlobEntry, PackWriter};
use cairn::repository::{Config, InitOptions, Repository};
use cairn::snapshot::{BackupCounts, ComponentKind, ComponentOutcome, ComponentStatus, Snapshot, Summary};
use cairn::tree::{Node, NodeKind, Timestamp, Tree, Xattr};
use proptest::prelude::*;

// ------------------------------------------------------------------------------------------
// Fixed inputs of the golden files.
// ------------------------------------------------------------------------------------------

const PASSWORD: &[u8] = b"golden-password";
/// The cheapest parameters a reader accepts (§ Key files), so the tests stay fast.
const KDF: KdfParams = KdfParams { algorithm: 1, memory_kib: 8192, iterations: 1, parallelism: 1 };

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

fn read_golden(name: &str) -> Vec<u8> {
    let p = golden_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run regenerate_golden_files)", p.display()))
}

/// The fixed master key: `encrypt_key || id_key || chunker_key`.
fn master_bytes() -> [u8; 96] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&master_bytes()).unwrap()
}

/// Data blob A: text that zstd compresses.
fn content_a() -> Vec<u8> {
    (0..60)
        .flat_map(|i| format!("golden line {i:03}: all work and no play makes jack a dull boy\n").into_bytes())
        .collect()
}

/// Data blob B: 700 pseudo-random bytes that zstd cannot shrink (stored raw).
fn content_b() -> Vec<u8> {
    let mut s: u64 = 0x601d_e11e_5eed_0001;
    (0..700)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn expected_config() -> Config {
    Config {
        version: 1,
        id: Id([0xc0; 32]),
        chunker: ChunkerParams { min_size: 131_072, avg_size: 524_288, max_size: 2_097_152, normalization: 1 },
        pack_size: 16_777_216,
        compression_level: 3,
    }
}

#[allow(clippy::too_many_arguments)]
fn node(
    name: &[u8],
    kind: NodeKind,
    mode: u32,
    size: u64,
    mtime: Timestamp,
    inode: u64,
    links: u64,
    rdev: u64,
) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode,
        uid: 1000,
        gid: 1000,
        user: "golden".into(),
        group: "golden".into(),
        size,
        mtime,
        ctime: Timestamp { secs: 1_700_000_100, nanos: 0 },
        inode,
        device: 2049,
        links,
        rdev,
        symlink_target: Vec::new(),
        content: Vec::new(),
        subtree: None,
        xattrs: Vec::new(),
    }
}

/// The tree of directory `sub`: a fifo and a character device.
fn expected_sub_tree() -> Tree {
    Tree {
        nodes: vec![
            node(b"pipe", NodeKind::Fifo, 0o644, 0, Timestamp { secs: 1_600_000_000, nanos: 1 }, 2001, 1, 0),
            node(b"tty0", NodeKind::CharDevice, 0o620, 0, Timestamp { secs: 0, nanos: 0 }, 2002, 1, 0x0400),
        ],
    }
}

/// The root tree: two files (one blob each), a symlink and a directory.
fn expected_root_tree(a: BlobId, b: BlobId, sub: BlobId) -> Tree {
    let mut text = node(
        b"compressible.txt",
        NodeKind::File,
        0o644,
        content_a().len() as u64,
        Timestamp { secs: 1_700_000_000, nanos: 123_456_789 },
        1001,
        1,
        0,
    );
    text.content = vec![a];
    let mut link = node(b"link", NodeKind::Symlink, 0o777, 0, Timestamp { secs: 1_700_000_000, nanos: 0 }, 1002, 1, 0);
    link.symlink_target = b"noise.bin".to_vec();
    let mut noise =
        node(b"noise.bin", NodeKind::File, 0o600, 700, Timestamp { secs: -1, nanos: 999_999_999 }, 1003, 1, 0);
    noise.content = vec![b];
    let mut dir = node(b"sub", NodeKind::Dir, 0o755, 0, Timestamp { secs: 1_700_000_050, nanos: 7 }, 1004, 2, 0);
    dir.subtree = Some(sub);
    Tree { nodes: vec![text, link, noise, dir] }
}

fn expected_snapshot(root: BlobId, data_added_packed: u64) -> Snapshot {
    Snapshot {
        time: Timestamp { secs: 1_700_000_000, nanos: 5 },
        tz_offset: -18_000,
        hostname: "golden-host".into(),
        username: "golden-user".into(),
        uid: 1000,
        gid: 1000,
        paths: vec!["/".into()],
        tags: vec!["golden".into(), "v1".into()],
        excludes: vec!["*.tmp".into()],
        tree: root,
        parent: Some(SnapshotId(Id([0x5a; 32]))),
        program_version: "cairn 0.1.0".into(),
        summary: Summary {
            backup_start: Timestamp { secs: 1_700_000_000, nanos: 5 },
            backup_end: Timestamp { secs: 1_700_000_003, nanos: 250_000_000 },
            counts: BackupCounts {
                files_new: 2,
                files_changed: 0,
                files_unchanged: 0,
                dirs_new: 2,
                dirs_changed: 0,
                dirs_unchanged: 0,
                data_blobs: 2,
                tree_blobs: 2,
                data_added: content_a().len() as u64 + 700,
                data_added_packed,
                total_files_processed: 2,
                total_bytes_processed: content_a().len() as u64 + 700,
                errors: 0,
            },
        },
        components: Vec::new(),
        original: None,
    }
}

/// The index file's `supersedes` (non-empty so that the field's encoding is pinned too).
const SUPERSEDED: [u8; 32] = [0x1d; 32];

// ------------------------------------------------------------------------------------------
// GENERATED by regenerate_golden_files: values that depend on random salts, the key file's
// creation time or zstd's output. Everything else is recomputed from the fixed inputs above.
// ------------------------------------------------------------------------------------------
// BEGIN GENERATED
const KEY_FILE_ID: &str = "022016a6541d99f8cdb160f324f1a9e7fb21ab1ea1017a0b2d363b1de27607e6";
const KEY_CREATED: i64 = 1795255926;
const KEY_SALT: &str = "08c87fbc82eb9b5446304af7c3d5c62b2d068e3603f4bb66f920e38e54ebb811";
const CONFIG_SALT: &str = "0f91b40c512559d5b3025e972edbb60c93e8cfaf9ee9734d606c6683b6f85aa2";
const DATA_PACK_ID: &str = "5f3a3b7e203114002ff0580c092e399ee0df937df437f52450331f3e6f749a18";
const DATA_PACK_SALT: &str = "91efce12f260805da778b3fd2c4617564e6afa61ff5725aff63f2b02b2b1afa7";
const DATA_PACK_SIZE: u64 = 1091;
const BLOB_A_ID: &str = "a679fcde0faed68bbc0766eabdd2507283e73f9a7002b44bf33678c495daf0a8";
const BLOB_A_LENGTH: u32 = 236;
const BLOB_B_ID: &str = "fd2914014bdb03f13878382d2cbc2dbd9c91287c6bbd5d9e741b80d982e2b864";
const TREE_PACK_ID: &str = "1321e3ae43585584b07ee42150e314a298e41d20b824a5597dab4b9bda4cbed6";
const TREE_PACK_SALT: &str = "8aed5e623daeea917119b2b737bf129594a1efc025c17aa1baf6b96d79da3c53";
const TREE_PACK_SIZE: u64 = 517;
const SUB_TREE_ID: &str = "0dc277d9595672213470ce91f05e94ec0536cb1b4cd5e98fbf272073d17db365";
const SUB_TREE_LENGTH: u32 = 105;
const SUB_TREE_RAW_LENGTH: u32 = 105;
const ROOT_TREE_ID: &str = "25d6826fd05d04ff06c4edd91d02eb9f2d11eb10950a7df90cbadf92e3deb3d3";
const ROOT_TREE_LENGTH: u32 = 278;
const ROOT_TREE_RAW_LENGTH: u32 = 342;
const INDEX_ID: &str = "2c1a1a584eda131df2e5006b463ebf21cfd83819a6abe02c2817d78cf0f6ed13";
const INDEX_SALT: &str = "7aa2cfb0bb91e421ca78ad392476503d229f1a66b1f41c6303d4fd8488967142";
const SNAPSHOT_ID: &str = "8f24d6b09cfb9b2316a03df6715642a3161d1ae20f2cf23eeffb0ac3ef262054";
const SNAPSHOT_SALT: &str = "14292a3a4675ab21c3572812ef7f4b2de22d7f6d6e544cd51fd4771087c58952";
// END GENERATED

// BEGIN GENERATED V2 by regenerate_golden_tree_v2: tree-v2-pack.bin, one version 2 tree.
const TREE_V2_PACK_ID: &str = "73698e4580c31ebc218f6825ab4c792621dadf0ab2e6c249e69fae0b50e5e4d1";
const TREE_V2_PACK_SALT: &str = "0d1672c1ff0f03f8bc219dada1aa121d426b97b3fe684f659809eb5765225346";
const TREE_V2_ID: &str = "b2d2441082a307e258e74dcf010b7349c291707d8752a5d75eb890d875ea0df8";
const TREE_V2_LENGTH: u32 = 411;
const TREE_V2_RAW_LENGTH: u32 = 531;
// END GENERATED V2

// BEGIN GENERATED SNAPSHOT V2 by regenerate_golden_snapshot_v2: snapshot-v2.bin.
const SNAPSHOT_V2_ID: &str = "ef20ad26de80034e07cbf501450d993383172012a781fd930d5bc9dd11da8986";
const SNAPSHOT_V2_SALT: &str = "0b420707b878d426169dd999be2fdfa5686302a572cab5a418fd21180e0179f6";
// END GENERATED SNAPSHOT V2

// BEGIN GENERATED SNAPSHOT V3 by regenerate_golden_snapshot_v3: snapshot-v3.bin.
const SNAPSHOT_V3_ID: &str = "bd093529be67f6e66d687ebe1b479fec87cab88a901a2145ddf0d9946c138b79";
const SNAPSHOT_V3_SALT: &str = "66f3c5612bf1f0bad23dc90931dec9c01e6295295b3aca8c9c0bd1023c5dd587";
// END GENERATED SNAPSHOT V3

// BEGIN GENERATED DRILL RECORD by regenerate_golden_drill_record: drill-record.bin.
const DRILL_RECORD_ID: &str = "05b958de40f6860321a1897ac313b2b9f796f32d026b139f8cc67025d0f17020";
const DRILL_RECORD_SALT: &str = "95e919ee4c862371464241c838a0a587a1f9dc0256eee1f2c2ce4d4be48a4199";
// END GENERATED DRILL RECORD

/// Raw (uncompressed) length of blob A: 60 lines of 60 bytes.
const BLOB_A_RAW_LENGTH: u32 = 3600;
/// Blob B is stored: 1 framing byte + 700 bytes + 16-byte tag (§ Framing and compression).
const BLOB_B_LENGTH: u32 = 717;

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn bid(s: &str) -> BlobId {
    BlobId(Id(h32(s)))
}

fn data_entries() -> Vec<BlobEntry> {
    vec![
        BlobEntry {
            blob_type: 0,
            id: bid(BLOB_A_ID),
            offset: 37,
            length: BLOB_A_LENGTH,
            raw_length: BLOB_A_RAW_LENGTH,
        },
        BlobEntry {
            blob_type: 0,
            id: bid(BLOB_B_ID),
            offset: 37 + BLOB_A_LENGTH,
            length: BLOB_B_LENGTH,
            raw_length: 700,
        },
    ]
}

fn tree_entries() -> Vec<BlobEntry> {
    vec![
        BlobEntry {
            blob_type: 1,
            id: bid(SUB_TREE_ID),
            offset: 37,
            length: SUB_TREE_LENGTH,
            raw_length: SUB_TREE_RAW_LENGTH,
        },
        BlobEntry {
            blob_type: 1,
            id: bid(ROOT_TREE_ID),
            offset: 37 + SUB_TREE_LENGTH,
            length: ROOT_TREE_LENGTH,
            raw_length: ROOT_TREE_RAW_LENGTH,
        },
    ]
}

fn expected_index() -> IndexFile {
    IndexFile {
        packs: vec![
            IndexPack {
                id: PackId(Id(h32(DATA_PACK_ID))),
                salt: h32(DATA_PACK_SALT),
                size: DATA_PACK_SIZE,
                blobs: data_entries(),
            },
            IndexPack {
                id: PackId(Id(h32(TREE_PACK_ID))),
                salt: h32(TREE_PACK_SALT),
                size: TREE_PACK_SIZE,
                blobs: tree_entries(),
            },
        ],
        supersedes: vec![IndexId(Id(SUPERSEDED))],
    }
}

// ------------------------------------------------------------------------------------------
// The generator.
// ------------------------------------------------------------------------------------------

#[test]
#[ignore = "rewrites tests/golden/*.bin; run once and paste the printed constants"]
fn regenerate_golden_files() {
    let mk = master();
    let key = keyfile::wrap(&mk, PASSWORD, KDF, "golden-user", "golden-host").unwrap();
    let (kh, _) = keyfile::parse_header(&key, "key").unwrap();
    let config = mk.seal_object(FileKind::Config, &format::encode(&expected_config()).unwrap()).unwrap();

    let (a, b) = (content_a(), content_b());
    assert_eq!(a.len() as u32, BLOB_A_RAW_LENGTH);
    let (ida, idb) = (mk.blob_id(&a), mk.blob_id(&b));
    let (fa, fb) = (blob::compress(&a, 3), blob::compress(&b, 3));
    assert_eq!((fa[0], fb[0]), (blob::ZSTD, blob::STORED), "A must compress, B must not");
    let mut w = PackWriter::new(&mk, BlobType::Data, 1 << 16);
    w.add(ida, &fa, a.len() as u32).unwrap();
    w.add(idb, &fb, b.len() as u32).unwrap();
    let data_pack = w.finish().unwrap();

    let sub = expected_sub_tree().encode().unwrap();
    let sub_id = mk.blob_id(&sub);
    let root = expected_root_tree(ida, idb, sub_id).encode().unwrap();
    let root_id = mk.blob_id(&root);
    let mut w = PackWriter::new(&mk, BlobType::Tree, 1 << 16);
    w.add(sub_id, &blob::compress(&sub, 3), sub.len() as u32).unwrap();
    w.add(root_id, &blob::compress(&root, 3), root.len() as u32).unwrap();
    let tree_pack = w.finish().unwrap();

    let index = IndexFile {
        packs: vec![
            IndexPack {
                id: data_pack.id,
                salt: data_pack.salt,
                size: data_pack.bytes.len() as u64,
                blobs: data_pack.entries.clone(),
            },
            IndexPack {
                id: tree_pack.id,
                salt: tree_pack.salt,
                size: tree_pack.bytes.len() as u64,
                blobs: tree_pack.entries.clone(),
            },
        ],
        supersedes: vec![IndexId(Id(SUPERSEDED))],
    };
    let index_bytes = mk.seal_object(FileKind::Index, &format::encode(&index).unwrap()).unwrap();
    let packed = data_pack.entries.iter().map(|e| e.length as u64).sum();
    let snapshot =
        mk.seal_object(FileKind::Snapshot, &format::encode(&expected_snapshot(root_id, packed)).unwrap()).unwrap();

    std::fs::create_dir_all(golden_dir()).unwrap();
    for (name, bytes) in [
        ("key.bin", &key),
        ("config.bin", &config),
        ("data-pack.bin", &data_pack.bytes),
        ("tree-pack.bin", &tree_pack.bytes),
        ("index.bin", &index_bytes),
        ("snapshot.bin", &snapshot),
    ] {
        std::fs::write(golden_dir().join(name), bytes).unwrap();
    }

    let hx = |b: &[u8]| hex::encode(b);
    println!("// BEGIN GENERATED");
    println!("const KEY_FILE_ID: &str = \"{}\";", Id::of_bytes(&key).to_hex());
    println!("const KEY_CREATED: i64 = {};", kh.created);
    println!("const KEY_SALT: &str = \"{}\";", hx(&kh.salt));
    println!("const CONFIG_SALT: &str = \"{}\";", hx(&config[5..37]));
    println!("const DATA_PACK_ID: &str = \"{}\";", data_pack.id.to_hex());
    println!("const DATA_PACK_SALT: &str = \"{}\";", hx(&data_pack.salt));
    println!("const DATA_PACK_SIZE: u64 = {};", data_pack.bytes.len());
    println!("const BLOB_A_ID: &str = \"{}\";", ida.to_hex());
    println!("const BLOB_A_LENGTH: u32 = {};", data_pack.entries[0].length);
    println!("const BLOB_B_ID: &str = \"{}\";", idb.to_hex());
    println!("const TREE_PACK_ID: &str = \"{}\";", tree_pack.id.to_hex());
    println!("const TREE_PACK_SALT: &str = \"{}\";", hx(&tree_pack.salt));
    println!("const TREE_PACK_SIZE: u64 = {};", tree_pack.bytes.len());
    println!("const SUB_TREE_ID: &str = \"{}\";", sub_id.to_hex());
    println!("const SUB_TREE_LENGTH: u32 = {};", tree_pack.entries[0].length);
    println!("const SUB_TREE_RAW_LENGTH: u32 = {};", sub.len());
    println!("const ROOT_TREE_ID: &str = \"{}\";", root_id.to_hex());
    println!("const ROOT_TREE_LENGTH: u32 = {};", tree_pack.entries[1].length);
    println!("const ROOT_TREE_RAW_LENGTH: u32 = {};", root.len());
    println!("const INDEX_ID: &str = \"{}\";", Id::of_bytes(&index_bytes).to_hex());
    println!("const INDEX_SALT: &str = \"{}\";", hx(&index_bytes[5..37]));
    println!("const SNAPSHOT_ID: &str = \"{}\";", Id::of_bytes(&snapshot).to_hex());
    println!("const SNAPSHOT_SALT: &str = \"{}\";", hx(&snapshot[5..37]));
    println!("// END GENERATED");
}

// ------------------------------------------------------------------------------------------
// Reading the golden files with the current library.
// ------------------------------------------------------------------------------------------

/// Every golden file, its expected storage id (`None` for the config, named `config`) and magic.
fn golden_files() -> Vec<(&'static str, Option<&'static str>, &'static [u8; 4])> {
    vec![
        ("key.bin", Some(KEY_FILE_ID), b"CRNK"),
        ("config.bin", None, b"CRNC"),
        ("data-pack.bin", Some(DATA_PACK_ID), b"CRNP"),
        ("tree-pack.bin", Some(TREE_PACK_ID), b"CRNP"),
        ("index.bin", Some(INDEX_ID), b"CRNI"),
        ("snapshot.bin", Some(SNAPSHOT_ID), b"CRNS"),
        ("snapshot-v2.bin", Some(SNAPSHOT_V2_ID), b"CRNS"),
        ("snapshot-v3.bin", Some(SNAPSHOT_V3_ID), b"CRNS"),
        ("drill-record.bin", Some(DRILL_RECORD_ID), b"CRND"),
    ]
}

#[test]
fn golden_files_ids_prefixes_and_total_size() {
    let mut total = 0;
    for (name, id, magic) in golden_files() {
        let bytes = read_golden(name);
        total += bytes.len();
        if let Some(id) = id {
            assert_eq!(Id::of_bytes(&bytes).to_hex(), id, "{name}: storage id = BLAKE3-256 of the bytes");
            assert_eq!(*blake3::hash(&bytes).as_bytes(), h32(id));
        }
        assert_eq!(&bytes[..4], magic, "{name}: magic");
        assert_eq!(bytes[4], 1, "{name}: version byte");
    }
    assert!(total < 100_000, "golden files total {total} bytes");
}

fn unwrap_golden_key() -> MasterKey {
    match keyfile::unwrap(&read_golden("key.bin"), PASSWORD, "golden key").unwrap() {
        Unwrapped::Key(k) => k,
        Unwrapped::WrongPassword => panic!("golden key file refuses its password"),
    }
}

#[test]
fn golden_key_file() {
    let bytes = read_golden("key.bin");
    let (header, ct_start) = keyfile::parse_header(&bytes, "golden key").unwrap();
    assert_eq!(
        header,
        KeyHeader {
            created: KEY_CREATED,
            username: "golden-user".into(),
            hostname: "golden-host".into(),
            kdf: KDF,
            salt: h32(KEY_SALT)
        }
    );
    // § Key files: "CRNK" 01 header_len(u32 LE) header ciphertext(96) tag(16).
    let header_len = u32::from_le_bytes(bytes[5..9].try_into().unwrap()) as usize;
    assert_eq!(ct_start, 9 + header_len);
    assert_eq!(bytes.len(), header_len + 121);
    assert_eq!(bytes[9..ct_start], format::encode(&header).unwrap()[..], "the header is bincode KeyHeader");

    let k = unwrap_golden_key();
    assert_eq!(k.to_bytes()[..], master_bytes()[..], "unwrapped master key");
    assert!(matches!(keyfile::unwrap(&bytes, b"golden-passwordx", "k").unwrap(), Unwrapped::WrongPassword));
    assert!(keyfile::unwrap(&bytes[..bytes.len() - 1], PASSWORD, "k").is_err());
}

#[test]
fn golden_config() {
    let bytes = read_golden("config.bin");
    let plain = master().open_object(FileKind::Config, &bytes, "config").unwrap();
    assert_eq!(format::decode::<Config>(&plain, "config").unwrap(), expected_config());
    assert_eq!(format::encode(&expected_config()).unwrap(), plain, "encoder still writes the golden plaintext");
    assert_eq!(bytes[5..37], h32(CONFIG_SALT));
    assert_eq!(bytes.len(), 5 + 32 + plain.len() + 16, "§ Single encrypted objects: size");
    // The AAD binds the magic: the same bytes are refused as another kind of object.
    let mut as_index = bytes.clone();
    as_index[..4].copy_from_slice(b"CRNI");
    assert!(master().open_object(FileKind::Index, &as_index, "x").is_err());
    // The key unwrapped from the golden key file opens the golden config.
    assert!(unwrap_golden_key().open_object(FileKind::Config, &bytes, "config").is_ok());
}

#[test]
fn golden_data_pack() {
    let mk = master();
    let bytes = read_golden("data-pack.bin");
    assert_eq!(bytes.len() as u64, DATA_PACK_SIZE);
    let entries = pack::read_header(&mk, &bytes, &PackId(Id::of_bytes(&bytes))).unwrap();
    assert_eq!(entries, data_entries());
    assert_eq!(pack::read_salt(&bytes[..37], "p").unwrap(), h32(DATA_PACK_SALT));
    // § Pack files: the header (1 count byte + 2 × 40-byte entries here, see below) and its tag
    // end 4 bytes before the end; header_length is the u32 LE at the end.
    let header_length = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as u64;
    let blobs_end = 37 + BLOB_A_LENGTH as u64 + BLOB_B_LENGTH as u64;
    assert_eq!(blobs_end + header_length + 4, DATA_PACK_SIZE);
    assert_eq!(header_length, format::encode(&entries).unwrap().len() as u64 + 16);

    let fk = mk.file_key(&h32(DATA_PACK_SALT));
    let contents = [content_a(), content_b()];
    for ((e, want), frame_byte) in entries.iter().zip(&contents).zip([blob::ZSTD, blob::STORED]) {
        let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        let got = blob::open(&mk, &fk, e.offset as u64, BlobType::Data, &e.id, e.raw_length, stored, &|| "blob".into())
            .unwrap();
        assert_eq!(&got, want);
        assert_eq!(mk.blob_id(want), e.id, "blob id = keyed BLAKE3 of the raw bytes");
        let framed = fk.open(e.offset as u64, &blob::aad(BlobType::Data, &e.id), stored).unwrap();
        assert_eq!(framed[0], frame_byte, "§ Framing and compression: compression byte");
        // Moved to another offset or read as a tree blob, the blob fails authentication.
        assert!(blob::open(&mk, &fk, e.offset as u64 + 1, BlobType::Data, &e.id, e.raw_length, stored, &|| "b".into())
            .is_err());
        assert!(
            blob::open(&mk, &fk, e.offset as u64, BlobType::Tree, &e.id, e.raw_length, stored, &|| "b".into()).is_err()
        );
    }
    assert!(entries[0].length < entries[0].raw_length, "blob A is stored compressed");
}

/// The version 2 tree of `tree-v2-pack.bin`: the root tree with extended attributes on the
/// file (binary `user.*` value, raw POSIX ACL), the symlink (`trusted.*`) and the directory
/// (default ACL).
fn expected_tree_v2() -> Tree {
    let mut t = expected_root_tree(bid(BLOB_A_ID), bid(BLOB_B_ID), bid(SUB_TREE_ID));
    let x = |name: &[u8], value: &[u8]| Xattr { name: name.to_vec(), value: value.to_vec() };
    // ACL entries (struct posix_acl_xattr_entry: u16 tag, u16 perm, u32 id, LE) after the
    // version u32 2: user::rw-, group::r--, other::r--.
    let acl: &[u8] = &[
        2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff,
        0xff, 0xff,
    ];
    t.nodes[0].xattrs = vec![
        x(b"system.posix_acl_access", acl),
        x(b"user.binary", &[0, 1, 2, 0xfe, 0xff]),
        x(b"user.mime_type", b"text/plain"),
    ];
    t.nodes[1].xattrs = vec![x(b"trusted.link", b"on the link itself")];
    t.nodes[3].xattrs = vec![x(b"system.posix_acl_default", acl)];
    t
}

#[test]
#[ignore = "rewrites tests/golden/tree-v2-pack.bin; run once and paste the printed constants"]
fn regenerate_golden_tree_v2() {
    let mk = master();
    let raw = expected_tree_v2().encode().unwrap();
    let id = mk.blob_id(&raw);
    let mut w = PackWriter::new(&mk, BlobType::Tree, 1 << 16);
    w.add(id, &blob::compress(&raw, 3), raw.len() as u32).unwrap();
    let p = w.finish().unwrap();
    std::fs::write(golden_dir().join("tree-v2-pack.bin"), &p.bytes).unwrap();
    println!("// BEGIN GENERATED V2 by regenerate_golden_tree_v2: tree-v2-pack.bin, one version 2 tree.");
    println!("const TREE_V2_PACK_ID: &str = \"{}\";", p.id.to_hex());
    println!("const TREE_V2_PACK_SALT: &str = \"{}\";", hex::encode(p.salt));
    println!("const TREE_V2_ID: &str = \"{}\";", id.to_hex());
    println!("const TREE_V2_LENGTH: u32 = {};", p.entries[0].length);
    println!("const TREE_V2_RAW_LENGTH: u32 = {};", raw.len());
    println!("// END GENERATED V2");
}

/// The version 2 snapshot of `snapshot-v2.bin`: the golden snapshot with a path that was
/// read in part, a command that succeeded and one that failed (exit code, signal, stderr).
fn expected_snapshot_v2() -> Snapshot {
    let packed = (BLOB_A_LENGTH + BLOB_B_LENGTH) as u64;
    let c = |path: &str, kind, status, bytes, ms| ComponentStatus {
        path: path.into(),
        kind,
        status,
        bytes,
        duration_ms: ms,
        command: String::new(),
        exit_code: None,
        signal: None,
        stderr_tail: String::new(),
        reason: String::new(),
    };
    let mut partial = c("/", ComponentKind::Path, ComponentOutcome::Partial, 4300, 12);
    partial.reason = "/sub/x: permission denied".into();
    let mut ok = c("/postgres/maildb.dump", ComponentKind::Command, ComponentOutcome::Ok, 1 << 20, 250);
    ok.command = "`pg_dump -Fc -Z0 maildb`".into();
    ok.exit_code = Some(0);
    let mut failed = c("/redis/dump.rdb", ComponentKind::Command, ComponentOutcome::Failed, 0, 70_000);
    failed.command = "`redis-cli --rdb -`".into();
    failed.signal = Some(15);
    failed.stderr_tail = "Could not connect\nnö".into();
    failed.reason = "timed out after 60s and was terminated".into();
    let mut s = expected_snapshot(bid(ROOT_TREE_ID), packed);
    s.paths.push("/postgres/maildb.dump".into());
    s.paths.push("/redis/dump.rdb".into());
    s.components = vec![partial, ok, failed];
    s
}

#[test]
#[ignore = "rewrites tests/golden/snapshot-v2.bin; run once and paste the printed constants"]
fn regenerate_golden_snapshot_v2() {
    let sealed = master().seal_object(FileKind::Snapshot, &expected_snapshot_v2().encode().unwrap()).unwrap();
    std::fs::write(golden_dir().join("snapshot-v2.bin"), &sealed).unwrap();
    println!("// BEGIN GENERATED SNAPSHOT V2 by regenerate_golden_snapshot_v2: snapshot-v2.bin.");
    println!("const SNAPSHOT_V2_ID: &str = \"{}\";", Id::of_bytes(&sealed).to_hex());
    println!("const SNAPSHOT_V2_SALT: &str = \"{}\";", hex::encode(&sealed[5..37]));
    println!("// END GENERATED SNAPSHOT V2");
}

/// A version 2 snapshot (components) written when that version was introduced still decodes,
/// the encoder still produces the same bytes, and a snapshot without components is version 1.
#[test]
fn golden_snapshot_v2() {
    let bytes = read_golden("snapshot-v2.bin");
    assert_eq!(Id::of_bytes(&bytes).to_hex(), SNAPSHOT_V2_ID);
    assert_eq!(bytes[5..37], h32(SNAPSHOT_V2_SALT));
    let plain = master().open_object(FileKind::Snapshot, &bytes, "snapshot").unwrap();
    assert_eq!(&plain[..2], &[0xff, 0x02]);
    assert_eq!(Snapshot::decode(&plain, "snapshot").unwrap(), expected_snapshot_v2());
    assert_eq!(expected_snapshot_v2().encode().unwrap(), plain);
    // The rest is the version 1 fields then the component list.
    let v1 = format::encode(&expected_snapshot_v2()).unwrap();
    assert_eq!(plain[2..2 + v1.len()], v1[..]);
    // Without components: version 1, the golden snapshot's bytes.
    let golden = master().open_object(FileKind::Snapshot, &read_golden("snapshot.bin"), "snapshot").unwrap();
    let packed = (BLOB_A_LENGTH + BLOB_B_LENGTH) as u64;
    assert_eq!(expected_snapshot(bid(ROOT_TREE_ID), packed).encode().unwrap(), golden);
    assert_eq!(Snapshot::decode(&golden, "snapshot").unwrap(), expected_snapshot(bid(ROOT_TREE_ID), packed));
    // Not canonical (no components) or an unknown version: refused.
    let mut empty = vec![0xff, 0x02];
    empty.extend(&v1);
    empty.push(0x00);
    assert!(Snapshot::decode(&empty, "s").is_err());
    let mut v4 = plain.clone();
    v4[1] = 0x04;
    assert!(Snapshot::decode(&v4, "s").is_err());
    assert!(Snapshot::decode(&plain[..plain.len() - 1], "s").is_err());
}

/// The version 3 snapshot of `snapshot-v3.bin`: a copy (made by `copy`) of the version 2
/// golden snapshot, whose id is its original.
fn expected_snapshot_v3() -> Snapshot {
    Snapshot { original: Some(SnapshotId(Id(h32(SNAPSHOT_V2_ID)))), ..expected_snapshot_v2() }
}

#[test]
#[ignore = "rewrites tests/golden/snapshot-v3.bin; run once and paste the printed constants"]
fn regenerate_golden_snapshot_v3() {
    let sealed = master().seal_object(FileKind::Snapshot, &expected_snapshot_v3().encode().unwrap()).unwrap();
    std::fs::write(golden_dir().join("snapshot-v3.bin"), &sealed).unwrap();
    println!("// BEGIN GENERATED SNAPSHOT V3 by regenerate_golden_snapshot_v3: snapshot-v3.bin.");
    println!("const SNAPSHOT_V3_ID: &str = \"{}\";", Id::of_bytes(&sealed).to_hex());
    println!("const SNAPSHOT_V3_SALT: &str = \"{}\";", hex::encode(&sealed[5..37]));
    println!("// END GENERATED SNAPSHOT V3");
}

/// A version 3 snapshot (an original: a copy) written when that version was introduced still
/// decodes and the encoder still produces the same bytes: `0xff 0x03`, the version 2 body (the
/// fields, the components), the original's 32 bytes. Without components, a version 3 snapshot
/// is the version 1 fields, an empty list and the original; without an original, a snapshot is
/// version 1 or 2 as before.
#[test]
fn golden_snapshot_v3() {
    let bytes = read_golden("snapshot-v3.bin");
    assert_eq!(Id::of_bytes(&bytes).to_hex(), SNAPSHOT_V3_ID);
    assert_eq!(bytes[5..37], h32(SNAPSHOT_V3_SALT));
    let plain = master().open_object(FileKind::Snapshot, &bytes, "snapshot").unwrap();
    assert_eq!(&plain[..2], &[0xff, 0x03]);
    assert_eq!(Snapshot::decode(&plain, "snapshot").unwrap(), expected_snapshot_v3());
    assert_eq!(expected_snapshot_v3().encode().unwrap(), plain);
    // The version 2 golden snapshot's plaintext after its own prefix, then the original.
    let v2 = master().open_object(FileKind::Snapshot, &read_golden("snapshot-v2.bin"), "snapshot").unwrap();
    assert_eq!(plain.len(), v2.len() + 32);
    assert_eq!(plain[2..v2.len()], v2[2..]);
    assert_eq!(plain[v2.len()..], h32(SNAPSHOT_V2_ID));
    // Without the original: version 2 again, the golden bytes.
    assert_eq!(Snapshot { original: None, ..expected_snapshot_v3() }.encode().unwrap(), v2);
    // A copy without components: the golden version 1 plaintext, an empty list, the original.
    let v1 = master().open_object(FileKind::Snapshot, &read_golden("snapshot.bin"), "snapshot").unwrap();
    let packed = (BLOB_A_LENGTH + BLOB_B_LENGTH) as u64;
    let copy =
        Snapshot { original: Some(SnapshotId(Id(h32(SNAPSHOT_ID)))), ..expected_snapshot(bid(ROOT_TREE_ID), packed) };
    let want = cat(&[&[0xff, 0x03], &v1, &[0x00], &h32(SNAPSHOT_ID)]);
    assert_eq!(hex::encode(copy.encode().unwrap()), hex::encode(&want));
    assert_eq!(Snapshot::decode(&want, "s").unwrap(), copy);
    // Cut short (no complete original), one byte more, or an unknown version: refused.
    assert!(Snapshot::decode(&plain[..plain.len() - 1], "s").is_err());
    assert!(Snapshot::decode(&cat(&[&plain, &[0x00]]), "s").is_err());
    let mut v4 = plain.clone();
    v4[1] = 0x04;
    assert!(Snapshot::decode(&v4, "s").is_err());
}

/// The drill record of `drill-record.bin` (§ Drill records): a failed drill of the golden
/// snapshot, one component that passed with its drill command and one whose data was damaged.
fn expected_drill_record() -> DrillRecord {
    DrillRecord {
        version: 1,
        time: Timestamp { secs: 1_700_100_000, nanos: 250_000_000 },
        hostname: "drill-host".into(),
        username: "golden".into(),
        snapshot: SnapshotId(Id(h32(SNAPSHOT_ID))),
        snapshot_host: "golden-host".into(),
        snapshot_tags: vec!["nightly".into()],
        snapshot_time: Timestamp { secs: 1_700_000_000, nanos: 0 },
        components: vec![
            DrillComponentRecord {
                path: "/postgres/maildb.dump".into(),
                ok: true,
                bytes: 1 << 20,
                restore_ms: 1_250,
                command_ms: 70_000,
                command: "`sh -c 'pg_restore -d drill_scratch'`".into(),
                exit_code: Some(0),
                message: String::new(),
            },
            DrillComponentRecord {
                path: "/redis/dump.rdb".into(),
                ok: false,
                bytes: 0,
                restore_ms: 300,
                command_ms: 0,
                command: String::new(),
                exit_code: None,
                message: "restore failed: /redis/dump.rdb: not restored: pack 1a2b is damaged".into(),
            },
        ],
        total_ms: 71_600,
        rto_ms: Some(1_800_000),
        verdict: DrillVerdict::Failed,
        program_version: "cairn 0.1.0".into(),
    }
}

#[test]
#[ignore = "rewrites tests/golden/drill-record.bin; run once and paste the printed constants"]
fn regenerate_golden_drill_record() {
    let sealed = master().seal_object(FileKind::Drill, &expected_drill_record().encode().unwrap()).unwrap();
    std::fs::write(golden_dir().join("drill-record.bin"), &sealed).unwrap();
    println!("// BEGIN GENERATED DRILL RECORD by regenerate_golden_drill_record: drill-record.bin.");
    println!("const DRILL_RECORD_ID: &str = \"{}\";", Id::of_bytes(&sealed).to_hex());
    println!("const DRILL_RECORD_SALT: &str = \"{}\";", hex::encode(&sealed[5..37]));
    println!("// END GENERATED DRILL RECORD");
}

/// A drill record written when drill records were introduced still decodes, the encoder
/// still produces the same bytes, and its plaintext starts with its version byte.
#[test]
fn golden_drill_record() {
    let bytes = read_golden("drill-record.bin");
    assert_eq!(Id::of_bytes(&bytes).to_hex(), DRILL_RECORD_ID);
    assert_eq!(bytes[5..37], h32(DRILL_RECORD_SALT));
    let plain = master().open_object(FileKind::Drill, &bytes, "drill record").unwrap();
    assert_eq!(DrillRecord::decode(&plain, "drill record").unwrap(), expected_drill_record());
    assert_eq!(expected_drill_record().encode().unwrap(), plain);
    // § Drill records, by hand: version 1, then the time (secs zigzag, nanos), then the hostname.
    let head = cat(&[&[0x01], &[0xfc, 0x40, 0xef, 0xaa, 0xca], &[0xfc, 0x80, 0xb2, 0xe6, 0x0e], b"\x0adrill-host"]);
    assert_eq!(hex::encode(&plain[..head.len()]), hex::encode(&head));
    // The end: total_ms 71_600, rto_ms Some(1_800_000), verdict failed (1), the program version.
    let tail =
        cat(&[&[0xfc, 0xb0, 0x17, 0x01, 0x00], &[0x01, 0xfc, 0x40, 0x77, 0x1b, 0x00], &[0x01], b"\x0bcairn 0.1.0"]);
    assert_eq!(hex::encode(&plain[plain.len() - tail.len()..]), hex::encode(&tail));
    // Another version is refused; so is a snapshot's magic.
    let mut v2 = plain.clone();
    v2[0] = 2;
    assert!(DrillRecord::decode(&v2, "d").is_err());
    assert!(master().open_object(FileKind::Snapshot, &bytes, "x").is_err());
}

/// § Snapshots, `Component`: the bytes of one component, field by field.
#[test]
fn encoding_component() {
    let c = ComponentStatus {
        path: "/a".into(),
        kind: ComponentKind::Command,
        status: ComponentOutcome::Failed,
        bytes: 300,
        duration_ms: 5,
        command: "`x`".into(),
        exit_code: Some(-1),
        signal: None,
        stderr_tail: "e".into(),
        reason: "r".into(),
    };
    let bytes: &[&[u8]] = &[
        &[0x02, b'/', b'a'],       // path
        &[0x01],                   // kind Command
        &[0x01],                   // status Failed
        &[0xfb, 0x2c, 0x01],       // bytes 300
        &[0x05],                   // duration_ms
        &[0x03, b'`', b'x', b'`'], // command
        &[0x01, 0x01],             // exit_code Some(-1): zigzag 1
        &[0x00],                   // signal None
        &[0x01, b'e'],             // stderr_tail
        &[0x01, b'r'],             // reason
    ];
    pin(&c, &bytes.concat());
    for (k, b) in [(ComponentKind::Path, 0u8), (ComponentKind::Command, 1), (ComponentKind::Stdin, 2)] {
        pin(&k, &[b]);
    }
    for (k, b) in [(ComponentOutcome::Ok, 0u8), (ComponentOutcome::Failed, 1), (ComponentOutcome::Partial, 2)] {
        pin(&k, &[b]);
    }
}

/// A version 2 tree (extended attributes) written when that version was introduced still
/// decodes, and the encoder still produces the same bytes.
#[test]
fn golden_tree_v2_pack() {
    let mk = master();
    let bytes = read_golden("tree-v2-pack.bin");
    assert_eq!(Id::of_bytes(&bytes).to_hex(), TREE_V2_PACK_ID);
    let entries = pack::read_header(&mk, &bytes, &PackId(Id::of_bytes(&bytes))).unwrap();
    assert_eq!(
        entries,
        vec![BlobEntry {
            blob_type: 1,
            id: bid(TREE_V2_ID),
            offset: 37,
            length: TREE_V2_LENGTH,
            raw_length: TREE_V2_RAW_LENGTH
        }]
    );
    let fk = mk.file_key(&h32(TREE_V2_PACK_SALT));
    let e = &entries[0];
    let raw = blob::open(
        &mk,
        &fk,
        e.offset as u64,
        BlobType::Tree,
        &e.id,
        e.raw_length,
        &bytes[37..37 + e.length as usize],
        &|| "tree".into(),
    )
    .unwrap();
    assert_eq!(&raw[..2], &[0xff, 0x02]);
    assert_eq!(Tree::decode(&raw, "tree").unwrap(), expected_tree_v2());
    assert_eq!(expected_tree_v2().encode().unwrap(), raw);
}

#[test]
fn golden_tree_pack() {
    let mk = master();
    let bytes = read_golden("tree-pack.bin");
    assert_eq!(bytes.len() as u64, TREE_PACK_SIZE);
    let entries = pack::read_header(&mk, &bytes, &PackId(Id::of_bytes(&bytes))).unwrap();
    assert_eq!(entries, tree_entries());
    let fk = mk.file_key(&h32(TREE_PACK_SALT));
    let open = |e: &BlobEntry| {
        let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        let raw = blob::open(&mk, &fk, e.offset as u64, BlobType::Tree, &e.id, e.raw_length, stored, &|| "tree".into())
            .unwrap();
        Tree::decode(&raw, "tree").unwrap()
    };
    let sub = open(&entries[0]);
    let root = open(&entries[1]);
    assert_eq!(sub, expected_sub_tree());
    assert_eq!(root, expected_root_tree(bid(BLOB_A_ID), bid(BLOB_B_ID), bid(SUB_TREE_ID)));
    // Ids are the keyed hashes of the encodings, which the current encoder reproduces.
    assert_eq!(mk.blob_id(&sub.encode().unwrap()), bid(SUB_TREE_ID));
    assert_eq!(mk.blob_id(&root.encode().unwrap()), bid(ROOT_TREE_ID));
    assert_eq!(root.encode().unwrap().len() as u32, ROOT_TREE_RAW_LENGTH);
    assert_eq!(mk.blob_id(&content_a()), bid(BLOB_A_ID));
    assert_eq!(mk.blob_id(&content_b()), bid(BLOB_B_ID));
}

#[test]
fn golden_index_file() {
    let bytes = read_golden("index.bin");
    let plain = master().open_object(FileKind::Index, &bytes, "index").unwrap();
    let index: IndexFile = format::decode(&plain, "index").unwrap();
    assert_eq!(index, expected_index());
    assert_eq!(bytes[5..37], h32(INDEX_SALT));
    // Consistent with the golden packs: § Index files.
    for (p, name) in index.packs.iter().zip(["data-pack.bin", "tree-pack.bin"]) {
        let pack_bytes = read_golden(name);
        assert_eq!(p.id, PackId(Id::of_bytes(&pack_bytes)));
        assert_eq!(p.salt[..], pack_bytes[5..37]);
        assert_eq!(p.size, pack_bytes.len() as u64);
        assert_eq!(p.blobs, pack::read_header(&master(), &pack_bytes, &p.id).unwrap());
    }
    // An index is not a snapshot.
    let mut s = bytes.clone();
    s[..4].copy_from_slice(b"CRNS");
    assert!(master().open_object(FileKind::Snapshot, &s, "x").is_err());
}

#[test]
fn golden_snapshot() {
    let bytes = read_golden("snapshot.bin");
    let plain = master().open_object(FileKind::Snapshot, &bytes, "snapshot").unwrap();
    let snap: Snapshot = format::decode(&plain, "snapshot").unwrap();
    let packed = (BLOB_A_LENGTH + BLOB_B_LENGTH) as u64;
    assert_eq!(snap, expected_snapshot(bid(ROOT_TREE_ID), packed));
    assert_eq!(format::encode(&snap).unwrap(), plain);
    assert_eq!(bytes[5..37], h32(SNAPSHOT_SALT));
}

/// § Threat model, "any modification is detected": every single-bit change to a golden
/// single object or pack makes reading it fail (never panic, never return other data).
#[test]
fn golden_files_detect_every_flipped_byte() {
    let mk = master();
    for (name, magic) in [
        ("config.bin", FileKind::Config),
        ("index.bin", FileKind::Index),
        ("snapshot.bin", FileKind::Snapshot),
        ("snapshot-v2.bin", FileKind::Snapshot),
        ("drill-record.bin", FileKind::Drill),
    ] {
        let bytes = read_golden(name);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(mk.open_object(magic, &bad, name).is_err(), "{name}: flip at {i} accepted");
        }
    }
    for (name, blob_type) in [("data-pack.bin", BlobType::Data), ("tree-pack.bin", BlobType::Tree)] {
        let bytes = read_golden(name);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x80;
            let id = PackId(Id::of_bytes(&bad));
            let all_ok = pack::read_header(&mk, &bad, &id).is_ok_and(|entries| {
                let fk = mk.file_key(&pack::read_salt(&bad, "p").unwrap());
                entries.iter().all(|e| {
                    let stored = &bad[e.offset as usize..(e.offset + e.length) as usize];
                    blob::open(&mk, &fk, e.offset as u64, blob_type, &e.id, e.raw_length, stored, &|| "b".into())
                        .is_ok()
                })
            });
            assert!(!all_ok, "{name}: flip at {i} went unnoticed");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Plaintext encodings, written by hand from § Serialization.
// ------------------------------------------------------------------------------------------

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// [`pin`] for a tree, which is encoded by `Tree::encode` (its version depends on the xattrs).
fn pin_tree(tree: &Tree, bytes: &[u8]) {
    assert_eq!(hex::encode(tree.encode().unwrap()), hex::encode(bytes), "encoding of {tree:?}");
    assert_eq!(&Tree::decode(bytes, "pinned").unwrap(), tree);
}

/// `encode(value)` must be `bytes`, and `decode(bytes)` must give `value` back.
fn pin<T>(value: &T, bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(hex::encode(format::encode(value).unwrap()), hex::encode(bytes), "encoding of {value:?}");
    assert_eq!(&format::decode::<T>(bytes, "pinned").unwrap(), value);
}

#[test]
fn encoding_timestamp_spec_example() {
    // § Serialization example: zigzag(1_700_000_000) = 3_400_000_000 = 0xcaa7e200 needs the
    // 0xfc form (u32 LE 00 e2 a7 ca); nanos 5 is one byte.
    pin(&Timestamp { secs: 1_700_000_000, nanos: 5 }, &[0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05]);
    // zigzag(-1) = 1; zigzag(0) = 0; the largest nanos 999_999_999 = 0x3b9ac9ff.
    pin(&Timestamp { secs: -1, nanos: 999_999_999 }, &[0x01, 0xfc, 0xff, 0xc9, 0x9a, 0x3b]);
    // 250 is the largest one-byte varint; 251 takes fb + u16 LE; 65536 takes fc + u32 LE.
    pin(&Timestamp { secs: 125, nanos: 250 }, &[0xfa, 0xfa]);
    pin(&Timestamp { secs: -126, nanos: 251 }, &[0xfb, 0xfb, 0x00, 0xfb, 0xfb, 0x00]);
    pin(&Timestamp { secs: 32_768, nanos: 65_536 }, &[0xfc, 0x00, 0x00, 0x01, 0x00, 0xfc, 0x00, 0x00, 0x01, 0x00]);
    // i64 extremes: zigzag(MAX) = 2^64 - 2, zigzag(MIN) = 2^64 - 1, both fd + u64 LE.
    pin(&Timestamp { secs: i64::MAX, nanos: 0 }, &[0xfd, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    pin(&Timestamp { secs: i64::MIN, nanos: 0 }, &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
}

#[test]
fn encoding_blob_entry() {
    pin(
        &BlobEntry { blob_type: 1, id: BlobId(Id([0x11; 32])), offset: 250, length: 251, raw_length: 65_536 },
        &cat(&[
            &[0x01],                         // blob_type: u8, raw byte
            &[0x11; 32],                     // id: [u8; 32], no length
            &[0xfa],                         // offset 250: one byte
            &[0xfb, 0xfb, 0x00],             // length 251: fb + u16 LE
            &[0xfc, 0x00, 0x00, 0x01, 0x00], // raw_length 65536: fc + u32 LE
        ]),
    );
    pin(
        &BlobEntry { blob_type: 0, id: BlobId(Id([0x12; 32])), offset: 65_535, length: u32::MAX, raw_length: 0 },
        &cat(&[
            &[0x00],
            &[0x12; 32],
            &[0xfb, 0xff, 0xff],             // 65535: the largest u16 form
            &[0xfc, 0xff, 0xff, 0xff, 0xff], // u32::MAX
            &[0x00],                         // 0
        ]),
    );
}

#[test]
fn encoding_pack_header_worked_example() {
    // § Pack files, "Worked example": the 87-byte header plaintext.
    let (a, b) = (BlobId(Id([0xa1; 32])), BlobId(Id([0xb2; 32])));
    let entries = vec![
        BlobEntry { blob_type: 0, id: a, offset: 37, length: 1017, raw_length: 1000 },
        BlobEntry { blob_type: 0, id: b, offset: 1054, length: 120_017, raw_length: 300_000 },
    ];
    let bytes = cat(&[
        &[0x02], // count 2
        // entry A (40 bytes): type, id, offset 37 = 0x25, length 1017 = 0x03f9, raw 1000 = 0x03e8
        &[0x00],
        &[0xa1; 32],
        &[0x25],
        &[0xfb, 0xf9, 0x03],
        &[0xfb, 0xe8, 0x03],
        // entry B (46 bytes): offset 1054 = 0x041e, length 120017 = 0x0001d4d1, raw 300000 = 0x000493e0
        &[0x00],
        &[0xb2; 32],
        &[0xfb, 0x1e, 0x04],
        &[0xfc, 0xd1, 0xd4, 0x01, 0x00],
        &[0xfc, 0xe0, 0x93, 0x04, 0x00],
    ]);
    assert_eq!(bytes.len(), 87);
    pin(&entries, &bytes);
}

#[test]
fn encoding_config() {
    pin(
        &Config {
            version: 1,
            id: Id([0x22; 32]),
            chunker: ChunkerParams { min_size: 131_072, avg_size: 524_288, max_size: 2_097_152, normalization: 1 },
            pack_size: 16_777_216,
            compression_level: 3,
        },
        &cat(&[
            &[0x01],                         // version 1
            &[0x22; 32],                     // id
            &[0xfc, 0x00, 0x00, 0x02, 0x00], // min_size 131072 = 0x00020000
            &[0xfc, 0x00, 0x00, 0x08, 0x00], // avg_size 524288 = 0x00080000
            &[0xfc, 0x00, 0x00, 0x20, 0x00], // max_size 2097152 = 0x00200000
            &[0x01],                         // normalization: u8, raw
            &[0xfc, 0x00, 0x00, 0x00, 0x01], // pack_size 16777216 = 0x01000000
            &[0x06],                         // compression_level: i32 3, zigzag 6
        ]),
    );
    pin(
        &Config {
            version: 1,
            id: Id([0x23; 32]),
            chunker: ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024, normalization: 3 },
            pack_size: 1_048_576,
            compression_level: -7,
        },
        &cat(&[
            &[0x01],
            &[0x23; 32],
            &[0x40],                         // 64
            &[0xfb, 0x00, 0x01],             // 256 = 0x0100
            &[0xfb, 0x00, 0x04],             // 1024 = 0x0400
            &[0x03],                         // normalization 3
            &[0xfc, 0x00, 0x00, 0x10, 0x00], // 1048576 = 0x00100000
            &[0x0d],                         // -7: zigzag 2*7-1 = 13
        ]),
    );
}

#[test]
fn encoding_key_header() {
    pin(
        &KeyHeader {
            created: 1_700_000_000,
            username: "root".into(),
            hostname: "mail1".into(),
            kdf: KdfParams { algorithm: 1, memory_kib: 65_536, iterations: 3, parallelism: 1 },
            salt: [0xaa; 32],
        },
        &cat(&[
            &[0xfc, 0x00, 0xe2, 0xa7, 0xca],       // created: i64 zigzag 3_400_000_000
            &[0x04, b'r', b'o', b'o', b't'],       // username: length 4, UTF-8
            &[0x05, b'm', b'a', b'i', b'l', b'1'], // hostname
            &[0x01],                               // kdf.algorithm: u8
            &[0xfc, 0x00, 0x00, 0x01, 0x00],       // kdf.memory_kib 65536
            &[0x03],                               // kdf.iterations
            &[0x01],                               // kdf.parallelism
            &[0xaa; 32],                           // salt
        ]),
    );
}

fn pinned_tree() -> Tree {
    let ts = |secs, nanos| Timestamp { secs, nanos };
    Tree {
        nodes: vec![
            Node {
                name: b"a.txt".to_vec(),
                kind: NodeKind::File,
                mode: 0o644,
                uid: 1000,
                gid: 100,
                user: "bob".into(),
                group: String::new(),
                size: 300,
                mtime: ts(1_700_000_000, 5),
                ctime: ts(-1, 999_999_999),
                inode: 1 << 32,
                device: 0,
                links: 1,
                rdev: 0,
                symlink_target: Vec::new(),
                content: vec![BlobId(Id([0x31; 32])), BlobId(Id([0x32; 32]))],
                subtree: None,
                xattrs: Vec::new(),
            },
            Node {
                name: b"d".to_vec(),
                kind: NodeKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                user: "root".into(),
                group: "wheel".into(),
                size: 0,
                mtime: ts(0, 0),
                ctime: ts(-1_700_000_000, 0),
                inode: 251,
                device: 65_535,
                links: 2,
                rdev: 0,
                symlink_target: Vec::new(),
                content: Vec::new(),
                subtree: Some(BlobId(Id([0x33; 32]))),
                xattrs: Vec::new(),
            },
            Node {
                name: vec![b'l', 0xff], // not UTF-8
                kind: NodeKind::Symlink,
                mode: 0o777,
                uid: 65_536,
                gid: u32::MAX,
                user: String::new(),
                group: String::new(),
                size: 0,
                mtime: ts(i64::MAX, 0),
                ctime: ts(i64::MIN, 0),
                inode: 0,
                device: 0,
                links: 1,
                rdev: 0,
                symlink_target: b"a.txt".to_vec(),
                content: Vec::new(),
                subtree: None,
                xattrs: Vec::new(),
            },
        ],
    }
}

/// [`pinned_tree`] with extended attributes on its file (a binary `user.*` value and a raw
/// POSIX ACL) and its symlink (a `trusted.*` name that is not UTF-8, an empty value).
fn pinned_tree_v2() -> Tree {
    let mut tree = pinned_tree();
    tree.nodes[0].xattrs = vec![
        Xattr { name: b"system.posix_acl_access".to_vec(), value: vec![0x02, 0x00, 0x00, 0x00] },
        Xattr { name: b"user.bin".to_vec(), value: vec![0x00, 0xff] },
    ];
    tree.nodes[2].xattrs = vec![Xattr { name: b"trusted.\xfe".to_vec(), value: Vec::new() }];
    tree
}

#[test]
fn encoding_tree_v2_with_xattrs() {
    // § Tree blobs, version 2: ff 02, the node count, then per node its version 1 fields (the
    // Node serde form, pinned by encoding_tree_and_nodes) followed by its Vec<Xattr>.
    let tree = pinned_tree_v2();
    let v1 = |n: &Node| format::encode(n).unwrap();
    let expected = cat(&[
        &[0xff, 0x02, 0x03],
        &v1(&tree.nodes[0]),
        &[0x02], // two xattrs
        &[0x17],
        b"system.posix_acl_access",      // name: Vec<u8>, 23 bytes
        &[0x04, 0x02, 0x00, 0x00, 0x00], // value: 4 bytes
        &[0x08],
        b"user.bin",
        &[0x02, 0x00, 0xff],
        &v1(&tree.nodes[1]),
        &[0x00], // no xattrs
        &v1(&tree.nodes[2]),
        &[0x01, 0x09],
        b"trusted.\xfe",
        &[0x00], // one xattr, empty value
    ]);
    pin_tree(&tree, &expected);
    // Without xattrs the same tree is version 1, byte for byte what earlier versions wrote.
    assert_eq!(pinned_tree().encode().unwrap().first(), Some(&0x03));
    // A reader refuses: unknown versions, and attribute lists that are unsorted, repeat a name,
    // have an empty name or a NUL byte in one, or a value over 64 KiB.
    let mut bad = expected.clone();
    bad[1] = 0x03;
    assert!(Tree::decode(&bad, "t").is_err());
    assert!(Tree::decode(&[0xfe, 0x02, 0x00], "t").is_err());
    let with = |xattrs: Vec<Xattr>| {
        let mut t = pinned_tree();
        t.nodes[1].xattrs = xattrs;
        Tree::decode(&t.encode().unwrap(), "t")
    };
    let x = |name: &[u8], len: usize| Xattr { name: name.to_vec(), value: vec![7; len] };
    assert!(with(vec![x(b"user.a", 1), x(b"user.b", 65_536)]).is_ok());
    assert!(with(vec![x(b"user.b", 1), x(b"user.a", 1)]).is_err());
    assert!(with(vec![x(b"user.a", 1), x(b"user.a", 2)]).is_err());
    assert!(with(vec![x(b"", 1)]).is_err());
    assert!(with(vec![x(b"user.\0a", 1)]).is_err());
    assert!(with(vec![x(&[b'u'; 256], 1)]).is_err());
    assert!(with(vec![x(b"user.a", 65_537)]).is_err());
}

#[test]
fn encoding_tree_and_nodes() {
    let file_node: &[&[u8]] = &[
        &[0x05, b'a', b'.', b't', b'x', b't'],                   // name: Vec<u8>, length 5
        &[0x00],                                                 // kind File = variant 0
        &[0xfb, 0xa4, 0x01],                                     // mode 0o644 = 420 = 0x01a4
        &[0xfb, 0xe8, 0x03],                                     // uid 1000 = 0x03e8
        &[0x64],                                                 // gid 100
        &[0x03, b'b', b'o', b'b'],                               // user "bob"
        &[0x00],                                                 // group ""
        &[0xfb, 0x2c, 0x01],                                     // size 300 = 0x012c
        &[0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05],                   // mtime {1_700_000_000, 5}
        &[0x01, 0xfc, 0xff, 0xc9, 0x9a, 0x3b],                   // ctime {-1 → 1, 999_999_999}
        &[0xfd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], // inode 2^32: fd + u64 LE
        &[0x00],                                                 // device 0
        &[0x01],                                                 // links 1
        &[0x00],                                                 // rdev 0
        &[0x00],                                                 // symlink_target empty
        &[0x02],                                                 // content: 2 ids
        &[0x31; 32],
        &[0x32; 32],
        &[0x00], // subtree None
    ];
    let dir_node: &[&[u8]] = &[
        &[0x01, b'd'],                         // name "d"
        &[0x01],                               // kind Dir = 1
        &[0xfb, 0xed, 0x01],                   // mode 0o755 = 493 = 0x01ed
        &[0x00],                               // uid 0
        &[0x00],                               // gid 0
        &[0x04, b'r', b'o', b'o', b't'],       // user
        &[0x05, b'w', b'h', b'e', b'e', b'l'], // group
        &[0x00],                               // size 0
        &[0x00, 0x00],                         // mtime {0, 0}
        &[0xfc, 0xff, 0xe1, 0xa7, 0xca, 0x00], // ctime secs -1.7e9: zigzag 3_399_999_999 = 0xcaa7e1ff; nanos 0
        &[0xfb, 0xfb, 0x00],                   // inode 251
        &[0xfb, 0xff, 0xff],                   // device 65535
        &[0x02],                               // links 2
        &[0x00],                               // rdev
        &[0x00],                               // symlink_target
        &[0x00],                               // content: none
        &[0x01],                               // subtree Some
        &[0x33; 32],
    ];
    let link_node: &[&[u8]] = &[
        &[0x02, b'l', 0xff],                                           // name: raw bytes, not UTF-8
        &[0x02],                                                       // kind Symlink = 2
        &[0xfb, 0xff, 0x01],                                           // mode 0o777 = 511 = 0x01ff
        &[0xfc, 0x00, 0x00, 0x01, 0x00],                               // uid 65536
        &[0xfc, 0xff, 0xff, 0xff, 0xff],                               // gid u32::MAX
        &[0x00],                                                       // user ""
        &[0x00],                                                       // group ""
        &[0x00],                                                       // size 0
        &[0xfd, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], // mtime {i64::MAX, 0}
        &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], // ctime {i64::MIN, 0}
        &[0x00],                                                       // inode
        &[0x00],                                                       // device
        &[0x01],                                                       // links
        &[0x00],                                                       // rdev
        &[0x05, b'a', b'.', b't', b'x', b't'],                         // symlink_target
        &[0x00],                                                       // content
        &[0x00],                                                       // subtree None
    ];
    let tree = pinned_tree();
    pin(&tree.nodes[0], &file_node.concat());
    pin(&tree.nodes[1], &dir_node.concat());
    pin(&tree.nodes[2], &link_node.concat());
    // Tree (version 1, no entry has xattrs): the node count, then the nodes.
    pin_tree(&tree, &cat(&[&[0x03], &file_node.concat(), &dir_node.concat(), &link_node.concat()]));
    pin_tree(&Tree { nodes: vec![] }, &[0x00]);
    // NodeKind: unit variants, one varint byte each, in declaration order.
    let kinds = [
        NodeKind::File,
        NodeKind::Dir,
        NodeKind::Symlink,
        NodeKind::CharDevice,
        NodeKind::BlockDevice,
        NodeKind::Fifo,
        NodeKind::Socket,
    ];
    for (k, byte) in kinds.iter().zip([0x00u8, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]) {
        pin(k, &[byte]);
    }
}

fn pinned_snapshot() -> Snapshot {
    Snapshot {
        time: Timestamp { secs: 1_700_000_000, nanos: 5 },
        tz_offset: -18_000,
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 251,
        paths: vec!["/".into()],
        tags: vec![],
        excludes: vec!["*.o".into(), "x".into()],
        tree: BlobId(Id([0x44; 32])),
        parent: Some(SnapshotId(Id([0x55; 32]))),
        program_version: "cairn 0.1.0".into(),
        summary: Summary {
            backup_start: Timestamp { secs: 1, nanos: 0 },
            backup_end: Timestamp { secs: 2, nanos: 500_000_000 },
            counts: BackupCounts {
                files_new: 1,
                files_changed: 0,
                files_unchanged: 0,
                dirs_new: 250,
                dirs_changed: 0,
                dirs_unchanged: 0,
                data_blobs: 3,
                tree_blobs: 2,
                data_added: 1 << 32,
                data_added_packed: u32::MAX as u64,
                total_files_processed: 7,
                total_bytes_processed: 65_535,
                errors: 0,
            },
        },
        components: Vec::new(),
        original: None,
    }
}

#[test]
fn encoding_snapshot() {
    let head: &[&[u8]] = &[
        &[0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05],       // time
        &[0xfb, 0x9f, 0x8c],                         // tz_offset -18000: zigzag 35999 = 0x8c9f
        &[0x01, b'h'],                               // hostname
        &[0x01, b'u'],                               // username
        &[0x00],                                     // uid 0
        &[0xfb, 0xfb, 0x00],                         // gid 251
        &[0x01, 0x01, b'/'],                         // paths: 1 string "/"
        &[0x00],                                     // tags: none
        &[0x02, 0x03, b'*', b'.', b'o', 0x01, b'x'], // excludes: 2 strings
        &[0x44; 32],                                 // tree
    ];
    let tail: &[&[u8]] = &[
        &[0x0b, b'c', b'a', b'i', b'r', b'n', b' ', b'0', b'.', b'1', b'.', b'0'], // program_version (11 bytes)
        &[0x02, 0x00],                                                             // backup_start {1 → 2, 0}
        &[0x04, 0xfc, 0x00, 0x65, 0xcd, 0x1d], // backup_end {2 → 4, 500_000_000 = 0x1dcd6500}
        &[0x01, 0x00, 0x00],                   // files_new, files_changed, files_unchanged
        &[0xfa, 0x00, 0x00],                   // dirs_new 250, dirs_changed, dirs_unchanged
        &[0x03, 0x02],                         // data_blobs, tree_blobs
        &[0xfd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], // data_added 2^32
        &[0xfc, 0xff, 0xff, 0xff, 0xff],       // data_added_packed 2^32 - 1
        &[0x07],                               // total_files_processed
        &[0xfb, 0xff, 0xff],                   // total_bytes_processed 65535
        &[0x00],                               // errors
    ];
    let with_parent = cat(&[&head.concat(), &[0x01], &[0x55; 32], &tail.concat()]); // parent Some(id)
    pin(&pinned_snapshot(), &with_parent);
    let without_parent = cat(&[&head.concat(), &[0x00], &tail.concat()]); // parent None
    pin(&Snapshot { parent: None, ..pinned_snapshot() }, &without_parent);
}

#[test]
fn encoding_index_file() {
    let file = IndexFile {
        packs: vec![IndexPack {
            id: PackId(Id([0x66; 32])),
            salt: [0x77; 32],
            size: 1_000_000,
            blobs: vec![BlobEntry {
                blob_type: 0,
                id: BlobId(Id([0x88; 32])),
                offset: 37,
                length: 100,
                raw_length: 83,
            }],
        }],
        supersedes: vec![IndexId(Id([0x99; 32]))],
    };
    pin(
        &file,
        &cat(&[
            &[0x01],                         // packs: 1
            &[0x66; 32],                     // id
            &[0x77; 32],                     // salt
            &[0xfc, 0x40, 0x42, 0x0f, 0x00], // size 1_000_000 = 0x000f4240
            &[0x01],                         // blobs: 1
            &[0x00],                         // blob_type
            &[0x88; 32],                     // id
            &[0x25, 0x64, 0x53],             // offset 37, length 100, raw_length 83
            &[0x01],                         // supersedes: 1
            &[0x99; 32],
        ]),
    );
    pin(&IndexFile::default(), &[0x00, 0x00]);
}

#[test]
fn decoding_rejects_what_the_spec_rejects() {
    let ts = [0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05];
    assert!(format::decode::<Timestamp>(&ts, "t").is_ok());
    // Bytes left over after the top-level structure.
    assert!(format::decode::<Timestamp>(&[&ts[..], &[0x00]].concat(), "t").is_err());
    // Truncated.
    assert!(format::decode::<Timestamp>(&ts[..5], "t").is_err());
    // A tag wider than the declared type: fd (u64 form) for the u32 nanos.
    assert!(format::decode::<Timestamp>(&[0x00, 0xfd, 1, 0, 0, 0, 0, 0, 0, 0], "t").is_err());
    // Tag bytes fe and ff.
    assert!(format::decode::<Timestamp>(&[0xfe, 0x00], "t").is_err());
    assert!(format::decode::<Timestamp>(&[0xff, 0x00], "t").is_err());
    // Option tag other than 0/1 (Snapshot.parent is the only Option before the tail).
    let mut s = format::encode(&pinned_snapshot()).unwrap();
    let parent_at = s.len() - (12 + 2 + 6 + 3 + 3 + 2 + 9 + 5 + 1 + 3 + 1) - 33;
    assert_eq!(s[parent_at], 0x01);
    s[parent_at] = 0x02;
    assert!(format::decode::<Snapshot>(&s, "s").is_err());
    // Invalid UTF-8 in a String (hostname "h" → 0xff).
    let mut s = format::encode(&pinned_snapshot()).unwrap();
    assert_eq!(&s[9..11], &[0x01, b'h']);
    s[10] = 0xff;
    assert!(format::decode::<Snapshot>(&s, "s").is_err());
    // NodeKind variant 7 does not exist.
    assert!(format::decode::<NodeKind>(&[0x07], "k").is_err());
    // A count larger than the input.
    assert!(Tree::decode(&[0xfc, 0xff, 0xff, 0xff, 0x7f], "t").is_err());
}

// ------------------------------------------------------------------------------------------
// Property tests.
// ------------------------------------------------------------------------------------------

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

fn arb_blob_id() -> impl Strategy<Value = BlobId> {
    any::<[u8; 32]>().prop_map(|b| BlobId(Id(b)))
}

fn arb_kind() -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        Just(NodeKind::File),
        Just(NodeKind::Dir),
        Just(NodeKind::Symlink),
        Just(NodeKind::CharDevice),
        Just(NodeKind::BlockDevice),
        Just(NodeKind::Fifo),
        Just(NodeKind::Socket),
    ]
}

fn arb_node() -> impl Strategy<Value = Node> {
    let a = (
        prop::collection::vec(any::<u8>(), 1..24),
        arb_kind(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        ".{0,10}",
        ".{0,10}",
        any::<u64>(),
    );
    let b = (
        arb_ts(),
        arb_ts(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(arb_blob_id(), 0..5),
        prop::option::of(arb_blob_id()),
        arb_xattrs(),
    );
    (a, b).prop_map(
        |(
            (name, kind, mode, uid, gid, user, group, size),
            (mtime, ctime, inode, device, links, rdev, symlink_target, content, subtree, xattrs),
        )| Node {
            name,
            kind,
            mode,
            uid,
            gid,
            user,
            group,
            size,
            mtime,
            ctime,
            inode,
            device,
            links,
            rdev,
            symlink_target,
            content,
            subtree,
            xattrs,
        },
    )
}

/// A valid attribute list: names of non-NUL bytes, sorted and unique (often empty).
fn arb_xattrs() -> impl Strategy<Value = Vec<Xattr>> {
    prop::collection::btree_map(
        prop::collection::vec(1u8..=255, 1..12),
        prop::collection::vec(any::<u8>(), 0..20),
        0..3,
    )
    .prop_map(|m| m.into_iter().map(|(name, value)| Xattr { name, value }).collect())
}

fn arb_tree() -> impl Strategy<Value = Tree> {
    prop::collection::vec(arb_node(), 0..8).prop_map(|nodes| Tree { nodes })
}

fn arb_summary() -> impl Strategy<Value = Summary> {
    (arb_ts(), arb_ts(), prop::array::uniform13(any::<u64>())).prop_map(|(backup_start, backup_end, n)| Summary {
        backup_start,
        backup_end,
        counts: BackupCounts {
            files_new: n[0],
            files_changed: n[1],
            files_unchanged: n[2],
            dirs_new: n[3],
            dirs_changed: n[4],
            dirs_unchanged: n[5],
            data_blobs: n[6],
            tree_blobs: n[7],
            data_added: n[8],
            data_added_packed: n[9],
            total_files_processed: n[10],
            total_bytes_processed: n[11],
            errors: n[12],
        },
    })
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    let strings = || prop::collection::vec(".{0,12}", 0..4);
    let a = (arb_ts(), any::<i32>(), ".{0,16}", ".{0,16}", any::<u32>(), any::<u32>(), strings(), strings(), strings());
    let b = (arb_blob_id(), prop::option::of(any::<[u8; 32]>()), ".{0,16}", arb_summary());
    (a, b).prop_map(
        |(
            (time, tz_offset, hostname, username, uid, gid, paths, tags, excludes),
            (tree, parent, program_version, summary),
        )| Snapshot {
            time,
            tz_offset,
            hostname,
            username,
            uid,
            gid,
            paths,
            tags,
            excludes,
            tree,
            parent: parent.map(|p| SnapshotId(Id(p))),
            program_version,
            summary,
            components: Vec::new(),
            original: None,
        },
    )
}

fn arb_entry() -> impl Strategy<Value = BlobEntry> {
    (any::<u8>(), arb_blob_id(), any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(blob_type, id, offset, length, raw_length)| BlobEntry { blob_type, id, offset, length, raw_length })
}

fn arb_index() -> impl Strategy<Value = IndexFile> {
    let pack = (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), prop::collection::vec(arb_entry(), 0..6))
        .prop_map(|(id, salt, size, blobs)| IndexPack { id: PackId(Id(id)), salt, size, blobs });
    (prop::collection::vec(pack, 0..4), prop::collection::vec(any::<[u8; 32]>(), 0..3))
        .prop_map(|(packs, s)| IndexFile { packs, supersedes: s.into_iter().map(|i| IndexId(Id(i))).collect() })
}

fn arb_config() -> impl Strategy<Value = Config> {
    (any::<u32>(), any::<[u8; 32]>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u32>(), any::<i32>())
        .prop_map(|(version, id, min_size, avg_size, max_size, normalization, pack_size, compression_level)| Config {
            version,
            id: Id(id),
            chunker: ChunkerParams { min_size, avg_size, max_size, normalization },
            pack_size,
            compression_level,
        })
}

fn tree_round_trip(t: &Tree) -> Result<(), TestCaseError> {
    let bytes = t.encode().unwrap();
    prop_assert_eq!(
        bytes.first() == Some(&0xff),
        t.nodes.iter().any(|n| !n.xattrs.is_empty()),
        "version 2 exactly when some entry has xattrs"
    );
    prop_assert_eq!(&Tree::decode(&bytes, "rt").unwrap(), t);
    Ok(())
}

fn round_trip<T>(v: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = format::encode(v).unwrap();
    prop_assert_eq!(&format::decode::<T>(&bytes, "rt").unwrap(), v);
    Ok(())
}

proptest! {
    #[test]
    fn prop_tree_round_trip(t in arb_tree()) { tree_round_trip(&t)?; }

    #[test]
    fn prop_snapshot_round_trip(s in arb_snapshot()) { round_trip(&s)?; }

    /// Snapshot files of every version (§ Snapshots): the version is the one the components and
    /// the original call for, and the plaintext decodes to the same snapshot.
    #[test]
    fn prop_snapshot_file_round_trip(
        s in arb_snapshot(),
        paths in prop::collection::vec(".{0,12}", 0..3),
        original in prop::option::of(any::<[u8; 32]>()),
    ) {
        let components: Vec<ComponentStatus> = paths
            .into_iter()
            .map(|p| ComponentStatus::new(p, ComponentKind::Command, ComponentOutcome::Failed, "r".into()))
            .collect();
        let s = Snapshot { components, original: original.map(|o| SnapshotId(Id(o))), ..s };
        let plain = s.encode().unwrap();
        let version = match (s.original.is_some(), s.components.is_empty()) {
            (true, _) => Some(0x03),
            (false, false) => Some(0x02),
            (false, true) => None,
        };
        match version {
            Some(v) => prop_assert_eq!(&plain[..2], &[0xff, v]),
            None => prop_assert_ne!(plain[0], 0xff),
        }
        prop_assert_eq!(&Snapshot::decode(&plain, "s").unwrap(), &s);
    }

    #[test]
    fn prop_index_round_trip(i in arb_index()) { round_trip(&i)?; }

    #[test]
    fn prop_config_round_trip(c in arb_config()) { round_trip(&c)?; }

    #[test]
    fn prop_pack_header_round_trip(e in prop::collection::vec(arb_entry(), 0..10)) { round_trip(&e)?; }

    /// Random bytes, bare or behind a valid prefix: every decoder returns an error.
    #[test]
    fn prop_random_bytes_are_refused(
        data in prop::collection::vec(any::<u8>(), 0..600),
        prefixed in any::<bool>(),
    ) {
        let mk = master();
        for magic in [FileKind::Pack, FileKind::Key, FileKind::Config, FileKind::Index, FileKind::Snapshot] {
            let input = if prefixed { [&magic.prefix()[..], &data].concat() } else { data.clone() };
            match magic {
                FileKind::Pack => {
                    prop_assert!(pack::read_header(&mk, &input, &PackId(Id::of_bytes(&input))).is_err());
                    let _ = pack::read_salt(&input, "p");
                }
                FileKind::Key => {
                    let _ = keyfile::parse_header(&input, "k");
                    // A cheap, non-matching password; random bytes must not unwrap a key.
                    prop_assert!(!matches!(keyfile::unwrap(&input, b"x", "k"), Ok(Unwrapped::Key(_))));
                }
                m => prop_assert!(mk.open_object(m, &input, "o").is_err()),
            }
        }
        // Plaintext decoders: no panic (a few random inputs are valid encodings).
        let _ = Tree::decode(&data, "t");
        let _ = format::decode::<Snapshot>(&data, "s");
        for v in [0x02, 0x03] {
            let _ = Snapshot::decode(&[&[0xff, v], &data[..]].concat(), "s");
        }
        let _ = format::decode::<IndexFile>(&data, "i");
        let _ = format::decode::<Config>(&data, "c");
        let _ = format::decode::<Vec<BlobEntry>>(&data, "p");
        let _ = format::decode::<KeyHeader>(&data, "k");
        // A random stored blob never opens.
        let fk = mk.file_key(&[7; 32]);
        let id = mk.blob_id(&data);
        prop_assert!(blob::open(&mk, &fk, 37, BlobType::Data, &id, data.len() as u32, &data, &|| "b".into()).is_err());
    }

    /// Random bytes that decode as a tree must re-encode to a tree that decodes equal.
    #[test]
    fn prop_decoded_random_trees_are_stable(data in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(t) = Tree::decode(&data, "t") {
            tree_round_trip(&t)?;
        }
    }

    /// Pack headers sealed with the right key but holding random plaintext: an error, never a
    /// panic, unless the plaintext happens to be a consistent header.
    #[test]
    fn prop_pack_with_random_header_plaintext(
        blob_area in prop::collection::vec(any::<u8>(), 0..200),
        header in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mk = master();
        let salt = [9u8; 32];
        let mut p = FileKind::Pack.prefix().to_vec();
        p.extend_from_slice(&salt);
        p.extend_from_slice(&blob_area);
        let sealed = mk.file_key(&salt).seal(u64::MAX, &FileKind::Pack.prefix(), &header).unwrap();
        p.extend_from_slice(&sealed);
        p.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let _ = pack::read_header(&mk, &p, &PackId(Id::of_bytes(&p)));
        // Lie about the header length.
        let n = p.len();
        for l in [0u32, 15, 16, (n - 4) as u32, n as u32, u32::MAX] {
            p[n - 4..].copy_from_slice(&l.to_le_bytes());
            prop_assert!(pack::read_header(&mk, &p, &PackId(Id::of_bytes(&p))).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Mutations of the golden key file: an error or a wrong password, never a key, never a
    /// panic (Argon2 runs with the golden file's cheap parameters when the header survives).
    #[test]
    fn prop_mutated_key_file(pos in 0usize..4096, val in any::<u8>(), cut in prop::option::of(0usize..4096)) {
        let mut k = read_golden("key.bin");
        let pos = pos % k.len();
        prop_assume!(k[pos] != val);
        k[pos] = val;
        if let Some(c) = cut {
            k.truncate(c % k.len());
        }
        prop_assert!(!matches!(keyfile::unwrap(&k, PASSWORD, "k"), Ok(Unwrapped::Key(_))));
    }
}

// ------------------------------------------------------------------------------------------
// Rules the spec states that the implementation once did otherwise.
// ------------------------------------------------------------------------------------------

const FAST: KdfParams = KDF;

fn temp_repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let repo = Repository::init(backend, b"pw", &InitOptions { kdf: FAST, ..InitOptions::default() }).unwrap();
    (dir, repo)
}

/// A key file built by hand (§ Key files) with any KDF parameters.
fn hand_made_key_file(kdf: KdfParams, password: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let header = KeyHeader { created: 0, username: "u".into(), hostname: "h".into(), kdf, salt: [3; 32] };
    let hb = format::encode(&header).unwrap();
    let mut file = b"CRNK\x01".to_vec();
    file.extend_from_slice(&(hb.len() as u32).to_le_bytes());
    file.extend_from_slice(&hb);
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32)).unwrap();
    let mut wrapping = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, &header.salt, &mut wrapping)
        .unwrap();
    let ct = aes_gcm::Aes256Gcm::new_from_slice(&wrapping)
        .unwrap()
        .encrypt(aes_gcm::Nonce::from_slice(&[0; 12]), Payload { msg: &master_bytes(), aad: &file })
        .unwrap();
    file.extend_from_slice(&ct);
    file
}

/// § Key files, "Accepted when opening": `1 ≤ iterations ≤ 100`, `1 ≤ parallelism ≤ 64`; a
/// key file outside the limits is refused even with the right password, and one at the limits
/// opens.
#[test]
fn kdf_upper_limits_enforced() {
    for kdf in [KdfParams { parallelism: 65, ..FAST }, KdfParams { iterations: 101, ..FAST }] {
        let file = hand_made_key_file(kdf, PASSWORD);
        let r = keyfile::unwrap(&file, PASSWORD, "k");
        assert!(r.is_err(), "{kdf:?} accepted");
    }
    let file = hand_made_key_file(KdfParams { parallelism: 2, iterations: 2, ..FAST }, PASSWORD);
    assert!(matches!(keyfile::unwrap(&file, PASSWORD, "k"), Ok(Unwrapped::Key(_))));
}

/// § Config, valid ranges: `avg_size` a power of two and `min_size < avg_size < max_size`.
#[test]
fn chunker_ranges_enforced() {
    let spec_invalid = [
        ChunkerParams { min_size: 131_072, avg_size: 300_000, max_size: 2_097_152, normalization: 1 },
        ChunkerParams { min_size: 131_072, avg_size: 131_072, max_size: 2_097_152, normalization: 1 },
        ChunkerParams { min_size: 131_072, avg_size: 524_288, max_size: 524_288, normalization: 1 },
    ];
    let accepted: Vec<_> = spec_invalid.iter().filter(|p| p.validate().is_ok()).collect();
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    assert!(ChunkerParams { min_size: 131_072, avg_size: 262_144, max_size: 524_288, normalization: 1 }
        .validate()
        .is_ok());
}

/// § Framing and compression: "If the compressed frame is not smaller than the raw bytes,
/// write it stored" (else zstd), whatever the blob's size.
#[test]
fn small_compressible_blobs_are_compressed() {
    let raw = [0u8; 64];
    let z = zstd::bulk::compress(&raw, 3).unwrap();
    assert!(z.len() < raw.len(), "zstd frame of 64 zero bytes is {} bytes", z.len());
    assert_eq!(blob::compress(&raw, 3)[0], blob::ZSTD);
}

/// § Index files: "The repository index is the union of all index files, leaving out any index
/// file whose id is listed in the `supersedes` of another index file present."
#[test]
fn superseded_index_files_are_left_out() {
    let (_d, repo) = temp_repo();
    let only_in_old = BlobId(Id([1; 32]));
    let old = IndexFile {
        packs: vec![IndexPack {
            id: PackId(Id([2; 32])),
            salt: [0; 32],
            size: 100,
            blobs: vec![BlobEntry { blob_type: 0, id: only_in_old, offset: 37, length: 20, raw_length: 3 }],
        }],
        supersedes: vec![],
    };
    let lock = cairn::lock::AppendLock::acquire(&repo, "test", &Default::default()).unwrap();
    let old_id = repo.write_index(&lock, &old).unwrap();
    repo.write_index(&lock, &IndexFile { packs: vec![], supersedes: vec![old_id] }).unwrap();
    let index = repo.load_index().unwrap();
    assert!(!index.contains(&only_in_old), "a blob listed only in a superseded index file is in the index");
}

/// § Verification on every read, "tree: decodes completely; names sorted and unique; names
/// valid".
#[test]
fn tree_order_and_uniqueness_verified_on_read() {
    let (_d, repo) = temp_repo();
    let n = |name: &[u8]| node(name, NodeKind::Fifo, 0o644, 0, Timestamp::default(), 1, 1, 0);
    let mut failures = Vec::new();
    for (what, nodes) in [("unsorted", vec![n(b"b"), n(b"a")]), ("duplicate", vec![n(b"a"), n(b"a")])] {
        let raw = Tree { nodes }.encode().unwrap();
        let id = repo.blob_id(&raw);
        let mut w = repo.pack_writer(BlobType::Tree, 1024);
        w.add(id, &blob::compress(&raw, 3), raw.len() as u32).unwrap();
        let p = w.finish().unwrap();
        repo.backend().write(FileKind::Pack, &p.id.0, &p.bytes).unwrap();
        let lock = cairn::lock::AppendLock::acquire(&repo, "test", &Default::default()).unwrap();
        repo.write_index(
            &lock,
            &IndexFile {
                packs: vec![IndexPack { id: p.id, salt: p.salt, size: p.bytes.len() as u64, blobs: p.entries }],
                supersedes: vec![],
            },
        )
        .unwrap();
        let index = repo.load_index().unwrap();
        if repo.load_tree(&index, &id).is_ok() {
            failures.push(what);
        }
    }
    assert!(failures.is_empty(), "trees accepted: {failures:?}");
}

/// § Key files, "Opening a repository": a key file failing a check before decryption "is
/// reported as damaged or refused"; a wrong password is reported only when key files reached
/// decryption and failed the tag. With its only key file refused (KDF parameters below the
/// limits), opening must not say "wrong password".
#[test]
fn refused_key_file_is_not_reported_as_wrong_password() {
    let (d, repo) = temp_repo();
    let backend = repo.backend().clone();
    for (name, _) in backend.list(FileKind::Key).unwrap() {
        backend.remove(FileKind::Key, &name).unwrap();
    }
    // Weak parameters (64 KiB): refused before any decryption. The tag is never checked.
    let weak = KdfParams { memory_kib: 64, ..FAST };
    let header =
        format::encode(&KeyHeader { created: 0, username: "u".into(), hostname: "h".into(), kdf: weak, salt: [1; 32] })
            .unwrap();
    let mut forged = b"CRNK\x01".to_vec();
    forged.extend_from_slice(&(header.len() as u32).to_le_bytes());
    forged.extend_from_slice(&header);
    forged.extend_from_slice(&[0u8; 112]);
    backend.write(FileKind::Key, &Id::of_bytes(&forged), &forged).unwrap();
    drop(repo);
    let r = Repository::open(backend, b"pw");
    assert!(
        !matches!(r, Err(cairn::Error::WrongPassword { .. })),
        "reported as: {}",
        r.err().map(|e| e.to_string()).unwrap_or_default()
    );
    drop(d);
}

#[test]
fn encoding_lock() {
    // § Locks: LockInfo fields in order, hand-encoded from the spec's varint rules.
    let lock = cairn::lock::LockInfo {
        time: Timestamp { secs: 1_700_000_000, nanos: 5 },
        exclusive: true,
        hostname: "h".into(),
        username: "u".into(),
        pid: 4242,
        process_start: 70_000,
        command: "prune".into(),
    };
    let bytes = cat(&[
        &[0xfc, 0x00, 0xe2, 0xa7, 0xca, 0x05], // time
        &[0x01],                               // exclusive
        &[0x01, b'h'],                         // hostname
        &[0x01, b'u'],                         // username
        &[0xfb, 0x92, 0x10],                   // pid 4242 = 0x1092
        &[0xfc, 0x70, 0x11, 0x01, 0x00],       // process_start 70000 = 0x11170
        &[0x05, b'p', b'r', b'u', b'n', b'e'], // command
    ]);
    pin(&lock, &bytes);
    // A lock is a single encrypted object with its own magic: it opens only as a lock.
    let sealed = master().seal_object(FileKind::Lock, &bytes).unwrap();
    assert_eq!(&sealed[..5], b"CRNL\x01");
    assert_eq!(master().open_object(FileKind::Lock, &sealed, "lock").unwrap(), bytes);
    assert!(master().open_object(FileKind::Snapshot, &sealed, "lock").is_err());
}

// ------------------------------------------------------------------------------------------
// The chunker's cut points: the same key and bytes must always cut at the same offsets, or
// a new version would stop deduplicating against every existing repository.
// ------------------------------------------------------------------------------------------

/// The chunker parameters pinned: the defaults, and small ones that give many cuts.
fn pinned_chunker_params() -> [ChunkerParams; 2] {
    [
        ChunkerParams::default(),
        ChunkerParams { min_size: 2 * 1024, avg_size: 8 * 1024, max_size: 64 * 1024, normalization: 2 },
    ]
}

/// 6 MiB from xorshift64* seeded with a constant: fixed bytes that depend on no crate.
fn chunker_input() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(6 << 20);
    while out.len() < 6 << 20 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out
}

/// One line per parameter set: `min avg max normalization: end offsets of each chunk`.
fn chunker_cuts() -> String {
    let data = chunker_input();
    let mut text = String::new();
    for p in pinned_chunker_params() {
        let chunker = cairn::chunker::Chunker::new(p, master().gear_table()).unwrap();
        let mut end = 0usize;
        let cuts: Vec<String> = chunker
            .chunks(&data)
            .map(|c| {
                end += c.len();
                end.to_string()
            })
            .collect();
        assert_eq!(end, data.len(), "the chunks cover the input");
        text.push_str(&format!(
            "{} {} {} {}: {}\n",
            p.min_size,
            p.avg_size,
            p.max_size,
            p.normalization,
            cuts.join(" ")
        ));
    }
    text
}

#[test]
#[ignore = "rewrites tests/golden/chunker-cuts.txt"]
fn regenerate_golden_chunker_cuts() {
    std::fs::write(golden_dir().join("chunker-cuts.txt"), chunker_cuts()).unwrap();
}

#[test]
fn golden_chunker_cuts() {
    let expected = String::from_utf8(read_golden("chunker-cuts.txt")).unwrap();
    assert_eq!(chunker_cuts(), expected, "the chunker cuts the golden input at other offsets");
}
