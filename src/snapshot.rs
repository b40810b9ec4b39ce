//! Snapshots: the root of one backup (repo-format.md, "Snapshot plaintext"), how users name
//! them (`latest`, an id, a unique id prefix) and filter them (host, tag, path) ([`select`]),
//! and how they are shown as JSON ([`SnapshotInfo`]).

use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::repository::{Repository, SnapshotList};
use crate::tree::{Timestamp, Zone};

/// Figures of one backup run: when it ran and what it counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// When the backup started.
    pub backup_start: Timestamp,
    /// When it ended.
    pub backup_end: Timestamp,
    /// What it counted. Encoded in place (a nested struct is its fields in order, in
    /// bincode as in repo-format.md's "Snapshot plaintext"), shown flattened in JSON
    /// ([`SummaryInfo`]).
    pub counts: BackupCounts,
}

/// The counters of one backup run, as a snapshot stores them ([`Summary::counts`]) and as
/// `backup --json` and `snapshots --json` show them ([`SummaryInfo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCounts {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files whose content or metadata changed since the parent.
    pub files_changed: u64,
    /// Files unchanged since the parent.
    pub files_unchanged: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories changed since the parent.
    pub dirs_changed: u64,
    /// Directories unchanged since the parent.
    pub dirs_unchanged: u64,
    /// Data blobs added to the repository.
    pub data_blobs: u64,
    /// Tree blobs added to the repository.
    pub tree_blobs: u64,
    /// Plaintext bytes of the blobs added.
    pub data_added: u64,
    /// Stored bytes (compressed, encrypted) of the blobs added.
    pub data_added_packed: u64,
    /// Files read or reused.
    pub total_files_processed: u64,
    /// Bytes of file content processed.
    pub total_bytes_processed: u64,
    /// Sources that could not be read (each reported on stderr).
    pub errors: u64,
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup was taken.
    pub time: Timestamp,
    /// The local time zone's offset east of UTC at that moment, seconds.
    pub tz_offset: i32,
    /// Host name.
    pub hostname: String,
    /// User who ran the backup.
    pub username: String,
    /// That user's uid.
    pub uid: u32,
    /// That user's gid.
    pub gid: u32,
    /// Absolute paths backed up.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Exclude patterns used.
    pub excludes: Vec<String>,
    /// Root tree blob.
    pub tree: BlobId,
    /// The snapshot this one was based on.
    pub parent: Option<SnapshotId>,
    /// `cairn x.y.z` that wrote it.
    pub program_version: String,
    /// Figures of the run.
    pub summary: Summary,
    /// What happened to each part of the backup (each path and each command), when the backup
    /// had command components; empty otherwise. Not part of the serde shape: a snapshot with
    /// components is a version 2 snapshot, or version 3 when it has an original
    /// ([`Snapshot::encode`]).
    #[serde(skip)]
    pub components: Vec<ComponentStatus>,
    /// For a snapshot written by `copy`: the id of the snapshot it is a copy of, in the
    /// repository where it was first made (a copy of a copy keeps the first one's). Not part
    /// of the serde shape: a snapshot with an original is a version 3 snapshot
    /// ([`Snapshot::encode`]).
    #[serde(skip)]
    pub original: Option<SnapshotId>,
}

/// The first two bytes of a version 2 snapshot: `0xff` (a byte that never starts a version 1
/// snapshot, whose first bytes are a varint) and the version, 2.
pub const SNAPSHOT_V2_PREFIX: [u8; 2] = [0xff, 0x02];

/// The first two bytes of a version 3 snapshot (one with an [`Snapshot::original`]): `0xff`
/// and the version, 3.
pub const SNAPSHOT_V3_PREFIX: [u8; 2] = [0xff, 0x03];

/// What a part of a backup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A file or directory tree, by path.
    Path,
    /// A command's standard output, stored as a file at the component's path.
    Command,
    /// Standard input (reserved: no writer records it yet).
    Stdin,
}

/// How a part of a backup went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentOutcome {
    /// Saved in full.
    Ok,
    /// Not in the snapshot's tree.
    Failed,
    /// Saved, but some entries below it could not be read (a path only).
    Partial,
}

/// The reason of a path component left out whole by an exclude pattern or
/// `--exclude-larger-than`: its status is ok (nothing failed) but it is not in the tree.
pub const EXCLUDED_REASON: &str = "excluded (by an exclude pattern or --exclude-larger-than), not in the snapshot";

/// Longest standard-error tail a component records, in bytes.
pub const COMPONENT_STDERR_TAIL: usize = crate::stream::STDERR_TAIL;

/// One part of a backup (a path or a command) and how it went, as a version 2 snapshot
/// records it (repo-format.md, "Snapshots").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// Its absolute path in the snapshot (a source path, or where a command's output is stored).
    pub path: String,
    /// Path, command or standard input.
    pub kind: ComponentKind,
    /// Ok, failed or partial.
    pub status: ComponentOutcome,
    /// Content bytes read (for a command, its whole output, also when it failed).
    pub bytes: u64,
    /// How long it took, milliseconds.
    pub duration_ms: u64,
    /// The command line, shell-quoted (empty for a path).
    pub command: String,
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed the command, when one did.
    pub signal: Option<i32>,
    /// The end of the command's (or its verify command's) standard error, at most
    /// [`COMPONENT_STDERR_TAIL`] bytes.
    pub stderr_tail: String,
    /// Why it failed or is partial (empty when ok).
    pub reason: String,
}

impl ComponentStatus {
    /// The status of component `path` with nothing counted yet (no bytes, no time, no command
    /// details).
    pub fn new(path: String, kind: ComponentKind, status: ComponentOutcome, reason: String) -> Self {
        ComponentStatus {
            path,
            kind,
            status,
            bytes: 0,
            duration_ms: 0,
            command: String::new(),
            exit_code: None,
            signal: None,
            stderr_tail: String::new(),
            reason,
        }
    }

    /// True when the component is in the snapshot's tree: it did not fail and was not
    /// excluded whole ([`EXCLUDED_REASON`]).
    pub fn stored(&self) -> bool {
        self.status != ComponentOutcome::Failed && self.reason != EXCLUDED_REASON
    }
}

impl Snapshot {
    /// The plaintext of the snapshot file (repo-format.md, "Snapshots"), one encoding per
    /// value:
    /// - version 1, bincode of the fields up to `summary`, when there are no components and no
    ///   original (such snapshots keep the bytes, and ids, older versions gave them);
    /// - version 2, [`SNAPSHOT_V2_PREFIX`] then bincode of (the version 1 fields,
    ///   `components`), when there are components and no original;
    /// - version 3, [`SNAPSHOT_V3_PREFIX`] then bincode of (the version 1 fields, `components`
    ///   (possibly empty), the 32 bytes of `original`), whenever `original` is set.
    ///
    /// Errors: [`Error::Internal`] when it cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if let Some(original) = &self.original {
            let mut out = SNAPSHOT_V3_PREFIX.to_vec();
            out.extend(crate::format::encode(&(self, &self.components, original))?);
            return Ok(out);
        }
        if self.components.is_empty() {
            return crate::format::encode(self);
        }
        let mut out = SNAPSHOT_V2_PREFIX.to_vec();
        out.extend(crate::format::encode(&(self, &self.components))?);
        Ok(out)
    }

    /// Decode a snapshot file's plaintext, any of the versions [`Snapshot::encode`] writes;
    /// `what` names it in errors. Errors: [`Error::Corrupt`] for bytes that do not decode
    /// completely, an unknown version (`0xff` then anything but 2 or 3), or a version 2
    /// snapshot without components (not canonical: it must be written as version 1).
    pub fn decode(bytes: &[u8], what: &str) -> Result<Snapshot> {
        match bytes {
            [0xff, 0x02, rest @ ..] => {
                let (mut s, components): (Snapshot, Vec<ComponentStatus>) = crate::format::decode(rest, what)?;
                if components.is_empty() {
                    return Err(Error::corrupt(
                        what,
                        "a version 2 snapshot without components (it must be written as version 1)",
                    ));
                }
                s.components = components;
                Ok(s)
            }
            [0xff, 0x03, rest @ ..] => {
                let (mut s, components, original): (Snapshot, Vec<ComponentStatus>, SnapshotId) =
                    crate::format::decode(rest, what)?;
                s.components = components;
                s.original = Some(original);
                Ok(s)
            }
            [0xff, version, ..] => Err(Error::corrupt(
                what,
                format!(
                    "unknown snapshot version {version} (this cairn reads versions 1 to 3; a newer cairn wrote it?)"
                ),
            )),
            _ => crate::format::decode(bytes, what),
        }
    }

    /// True when some component failed or is partial (`snapshots` marks such a snapshot).
    pub fn is_incomplete(&self) -> bool {
        self.components.iter().any(|c| c.status != ComponentOutcome::Ok)
    }

    /// The snapshot time in its recorded local time zone.
    pub fn local_time(&self) -> chrono::DateTime<chrono::FixedOffset> {
        use chrono::Offset;
        let off = chrono::FixedOffset::east_opt(self.tz_offset).unwrap_or_else(|| chrono::Utc.fix());
        self.time.to_utc().with_timezone(&off)
    }
}

/// Longest host name a new snapshot may record, in bytes (a DNS name is at most 253).
pub const MAX_HOST_BYTES: usize = 255;
/// Longest single tag a new snapshot may carry, in bytes.
pub const MAX_TAG_BYTES: usize = 255;
/// Most bytes all the tags of a new snapshot may take together (4 KiB).
pub const MAX_TAGS_TOTAL_BYTES: usize = 4096;

/// Check the host name and tags a new snapshot is to record: the host at most
/// [`MAX_HOST_BYTES`], each tag at most [`MAX_TAG_BYTES`] and all tags together at most
/// [`MAX_TAGS_TOTAL_BYTES`], none containing a control character (a newline would break every
/// table that lists the snapshot). Snapshots already stored are never checked: readers cope
/// with any length.
/// Errors: [`Error::Usage`] naming the value (shortened) and the limit.
pub fn validate_labels(host: &str, tags: &[String]) -> Result<()> {
    let shown = |s: &str| {
        let head: String = s.chars().take(40).collect();
        if head.len() < s.len() {
            format!("{head:?}...")
        } else {
            format!("{head:?}")
        }
    };
    if host.len() > MAX_HOST_BYTES {
        return Err(Error::Usage(format!(
            "host name {} is {} bytes long; at most {MAX_HOST_BYTES} are allowed",
            shown(host),
            host.len()
        )));
    }
    if host.chars().any(char::is_control) {
        return Err(Error::Usage(format!("host name {} contains a control character", shown(host))));
    }
    for t in tags {
        if t.len() > MAX_TAG_BYTES {
            return Err(Error::Usage(format!(
                "tag {} is {} bytes long; at most {MAX_TAG_BYTES} are allowed",
                shown(t),
                t.len()
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(Error::Usage(format!("tag {} contains a control character", shown(t))));
        }
    }
    let total: usize = tags.iter().map(String::len).sum();
    if total > MAX_TAGS_TOTAL_BYTES {
        return Err(Error::Usage(format!(
            "the tags take {total} bytes together; at most {MAX_TAGS_TOTAL_BYTES} are allowed"
        )));
    }
    Ok(())
}

/// Which snapshots a command considers: all filters that are set must match.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Host names; any of them.
    pub hosts: Vec<String>,
    /// Tags; a snapshot must carry all of the tags in one entry (`a,b` = a and b); any entry.
    pub tags: Vec<String>,
    /// Paths; the snapshot's path list must contain all of them, and none of them may be a
    /// component that failed or was excluded there (so `--path /postgres/maildb.dump` with `latest` names the
    /// newest snapshot that holds a good dump).
    pub paths: Vec<String>,
}

impl Snapshot {
    /// Its host and its paths, sorted: restic's default grouping (`--group-by host,paths`), a
    /// snapshot's paths one key together.
    pub fn host_paths(&self) -> (String, Vec<String>) {
        let mut paths = self.paths.clone();
        paths.sort();
        (self.hostname.clone(), paths)
    }
}

/// The last `n` snapshots (newest) of each host and path set ([`Snapshot::host_paths`]) in
/// `snaps` (oldest first), oldest first: restic's `snapshots --latest N`.
pub fn keep_latest(snaps: Vec<(SnapshotId, Snapshot)>, n: usize) -> Vec<(SnapshotId, Snapshot)> {
    let mut seen: std::collections::HashMap<(String, Vec<String>), usize> = std::collections::HashMap::new();
    let mut keep = vec![false; snaps.len()];
    for (k, (_, s)) in keep.iter_mut().zip(&snaps).rev() {
        let count = seen.entry(s.host_paths()).or_default();
        if *count < n {
            *count += 1;
            *k = true;
        }
    }
    snaps.into_iter().zip(keep).filter(|(_, k)| *k).map(|(s, _)| s).collect()
}

impl SnapshotFilter {
    /// True when `s` passes every filter that is set.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.matches_fields(&s.hostname, &s.tags, |p| {
            s.paths.iter().any(|x| x == p) && !s.components.iter().any(|c| c.path == p && !c.stored())
        })
    }

    /// True when something of host `host` with `tags` that holds the paths for which `holds`
    /// is true (given without a trailing `/`) passes every filter that is set: a snapshot
    /// ([`SnapshotFilter::matches`]), or a record about one (a drill record).
    pub fn matches_fields(&self, host: &str, tags: &[String], holds: impl Fn(&str) -> bool) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.iter().any(|h| h == host);
        let tag_ok = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|group| group.split(',').filter(|t| !t.is_empty()).all(|t| tags.iter().any(|x| x == t)));
        let path_ok = self.paths.iter().all(|p| {
            let p = p.trim_end_matches('/');
            holds(if p.is_empty() { "/" } else { p })
        });
        host_ok && tag_ok && path_ok
    }
}

/// The snapshots named by `specs` (`latest`, ids, unique id prefixes) among those passing
/// `filter`, each once, in the order first named; every snapshot passing `filter`, oldest
/// first, when `specs` is empty. A named snapshot file that cannot be decoded is not an error
/// here: it is listed in [`Selection::damaged`] (by id; `latest` names no damaged file).
/// Errors: [`Error::SnapshotNotFound`], [`Error::AmbiguousSnapshot`], backend errors; the first
/// such error stops the selection (nothing is selected).
pub fn select(ctx: &Ctx, repo: &Repository, specs: &[String], filter: &SnapshotFilter) -> Result<Selection> {
    let mut sel = Selection::default();
    if specs.is_empty() {
        sel.found = repo.snapshots(ctx, filter)?;
        return Ok(sel);
    }
    for spec in specs {
        match repo.find_snapshot(ctx, spec, filter) {
            Ok((id, s)) => {
                if !sel.found.iter().any(|(i, _)| *i == id) {
                    sel.found.push((id, s));
                }
            }
            Err(e @ Error::Corrupt { .. }) if spec != "latest" => {
                let id = repo.resolve_snapshot_id(spec)?;
                if !sel.damaged.iter().any(|(i, _)| *i == id) {
                    sel.damaged.push((id, e));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sel)
}

/// What [`select`] found.
#[derive(Debug, Default)]
pub struct Selection {
    /// The snapshots that load, each once.
    pub found: SnapshotList,
    /// Snapshot files named by id that cannot be decoded, each once, with why
    /// ([`Error::Corrupt`]).
    pub damaged: Vec<(SnapshotId, Error)>,
}

impl Selection {
    /// The snapshots found, oldest first (ties by id), or the error of the first damaged one
    /// (for commands that read the snapshots they are given).
    pub fn readable_by_time(mut self) -> Result<SnapshotList> {
        if let Some((_, e)) = self.damaged.into_iter().next() {
            return Err(e);
        }
        self.found.sort_by(|x, y| x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0)));
        Ok(self.found)
    }
}

/// A snapshot as `snapshots --json` shows it (restic's field names; ids in hex, times in
/// RFC 3339 in the snapshot's time zone).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotInfo {
    /// Full id, hex.
    pub id: String,
    /// First 8 hex characters of the id.
    pub short_id: String,
    /// When the backup was taken.
    pub time: String,
    /// Host name.
    pub hostname: String,
    /// User who ran the backup.
    pub username: String,
    /// That user's uid.
    pub uid: u32,
    /// That user's gid.
    pub gid: u32,
    /// Absolute paths backed up.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Exclude patterns used.
    pub excludes: Vec<String>,
    /// Root tree, hex.
    pub tree: String,
    /// The parent snapshot's id, hex.
    pub parent: Option<String>,
    /// `cairn x.y.z` that wrote it.
    pub program_version: String,
    /// Figures of the run.
    pub summary: SummaryInfo,
    /// Each path and command of the backup and how it went; absent for a snapshot without
    /// components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    /// For a copy: the id (hex) of the snapshot it is a copy of ([`Snapshot::original`]);
    /// absent otherwise (restic's `original`, shown only when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

impl SnapshotInfo {
    /// Snapshot `s` with id `id`.
    pub fn new(id: &SnapshotId, s: &Snapshot) -> Self {
        SnapshotInfo {
            id: id.to_hex(),
            short_id: id.short(),
            time: s.time.to_rfc3339(Zone::Offset(s.tz_offset)),
            hostname: s.hostname.clone(),
            username: s.username.clone(),
            uid: s.uid,
            gid: s.gid,
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            excludes: s.excludes.clone(),
            tree: s.tree.to_hex(),
            parent: s.parent.map(|p| p.to_hex()),
            program_version: s.program_version.clone(),
            summary: SummaryInfo::new(&s.summary, s.tz_offset),
            components: s.components.clone(),
            original: s.original.map(|o| o.to_hex()),
        }
    }
}

/// A backup's [`Summary`] as JSON shows it: times in RFC 3339, the duration in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryInfo {
    /// When the backup started.
    pub backup_start: String,
    /// When it ended.
    pub backup_end: String,
    /// `backup_end - backup_start`, seconds (0 when the clock went back).
    pub duration_seconds: f64,
    /// What the backup counted (its keys at this level).
    #[serde(flatten)]
    pub counts: BackupCounts,
}

impl SummaryInfo {
    /// Summary `s` of a snapshot taken in zone `tz` (seconds east of UTC).
    pub fn new(s: &Summary, tz: i32) -> Self {
        let dur = s.backup_end.secs.saturating_sub(s.backup_start.secs) as f64
            + (s.backup_end.nanos as f64 - s.backup_start.nanos as f64) / 1e9;
        SummaryInfo {
            backup_start: s.backup_start.to_rfc3339(Zone::Offset(tz)),
            backup_end: s.backup_end.to_rfc3339(Zone::Offset(tz)),
            duration_seconds: dur.max(0.0),
            counts: s.counts.clone(),
        }
    }
}

/// A snapshot of host `host` at `secs` (seconds since the Unix epoch) of `paths`, with command
/// components `components` (path, outcome), for the tests of the modules that read snapshots.
#[cfg(test)]
pub(crate) fn test_snapshot(
    host: &str,
    secs: i64,
    paths: &[&str],
    components: &[(&str, ComponentOutcome)],
) -> Snapshot {
    Snapshot {
        time: Timestamp { secs, nanos: 0 },
        tz_offset: 0,
        hostname: host.into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: vec![],
        excludes: vec![],
        tree: BlobId::default(),
        parent: None,
        program_version: "test".into(),
        summary: Summary::default(),
        components: components
            .iter()
            .map(|(p, st)| ComponentStatus::new(p.to_string(), ComponentKind::Command, *st, String::new()))
            .collect(),
        original: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, tags: &[&str], paths: &[&str]) -> Snapshot {
        Snapshot {
            time: Timestamp::default(),
            tz_offset: 3600,
            hostname: host.into(),
            username: "root".into(),
            uid: 0,
            gid: 0,
            paths: paths.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            excludes: vec![],
            tree: BlobId::default(),
            parent: None,
            program_version: "cairn test".into(),
            summary: Summary::default(),
            original: None,
            components: Vec::new(),
        }
    }

    #[test]
    fn filters() {
        let s = snap("mail1", &["nightly", "pg"], &["/etc", "/var/vmail"]);
        assert!(SnapshotFilter::default().matches(&s));
        assert!(SnapshotFilter { hosts: vec!["mail2".into(), "mail1".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { hosts: vec!["mail2".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { tags: vec!["nightly,pg".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { tags: vec!["nightly,x".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { tags: vec!["nightly,x".into(), "pg".into()], ..Default::default() }.matches(&s));
        assert!(SnapshotFilter { paths: vec!["/var/vmail/".into()], ..Default::default() }.matches(&s));
        assert!(!SnapshotFilter { paths: vec!["/var".into()], ..Default::default() }.matches(&s));
        assert_eq!(s.local_time().offset().local_minus_utc(), 3600);
    }

    #[test]
    fn info_shows_times_in_the_snapshot_zone() {
        let mut s = snap("mail1", &[], &["/etc"]);
        s.time = Timestamp { secs: 1_700_000_000, nanos: 500_000_000 };
        s.summary.backup_start = Timestamp { secs: 1_700_000_000, nanos: 0 };
        s.summary.backup_end = Timestamp { secs: 1_700_000_002, nanos: 500_000_000 };
        let id = SnapshotId::default();
        let info = SnapshotInfo::new(&id, &s);
        assert_eq!(info.time, "2023-11-14T23:13:20.500+01:00");
        assert_eq!(info.summary.duration_seconds, 2.5);
        assert_eq!(info.short_id.len(), 8);
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["parent"], serde_json::Value::Null);
        assert_eq!(v["summary"]["backup_start"], "2023-11-14T23:13:20+01:00");
        // restic's `original`: only for a copy.
        assert!(v.get("original").is_none(), "{v}");
        s.original = Some(SnapshotId(crate::id::Id([0xab; 32])));
        let v = serde_json::to_value(SnapshotInfo::new(&id, &s)).unwrap();
        assert_eq!(v["original"], "ab".repeat(32));
    }

    fn component(path: &str) -> ComponentStatus {
        ComponentStatus::new(path.into(), ComponentKind::Command, ComponentOutcome::Ok, String::new())
    }

    /// Encode `s`, check the version its first bytes say, decode it back to `s`.
    fn round_trip(s: &Snapshot, prefix: Option<[u8; 2]>) -> Vec<u8> {
        let bytes = s.encode().unwrap();
        match prefix {
            Some(p) => assert_eq!(bytes[..2], p),
            None => assert_ne!(bytes[0], 0xff),
        }
        assert_eq!(&Snapshot::decode(&bytes, "s").unwrap(), s);
        bytes
    }

    #[test]
    fn the_three_versions_round_trip_each_with_one_encoding() {
        let v1 = snap("mail1", &["t"], &["/etc", "/db.dump"]);
        let bytes = round_trip(&v1, None);
        assert_eq!(bytes, crate::format::encode(&v1).unwrap(), "version 1: bincode Snapshot");

        let mut v2 = v1.clone();
        v2.components = vec![component("/db.dump")];
        let bytes = round_trip(&v2, Some(SNAPSHOT_V2_PREFIX));
        assert_eq!(bytes[2..], crate::format::encode(&(&v2, &v2.components)).unwrap()[..]);

        // Version 3 without components: the fields, an empty list (one byte 0), the original.
        let original = SnapshotId(crate::id::Id(std::array::from_fn(|i| i as u8)));
        let mut v3 = v1.clone();
        v3.original = Some(original);
        let bytes = round_trip(&v3, Some(SNAPSHOT_V3_PREFIX));
        let fields = crate::format::encode(&v1).unwrap();
        assert_eq!(bytes.len(), 2 + fields.len() + 1 + 32);
        assert_eq!(bytes[2..2 + fields.len()], fields[..]);
        assert_eq!(bytes[2 + fields.len()], 0x00);
        assert_eq!(bytes[bytes.len() - 32..], original.0 .0[..]);

        // Version 3 with components: the version 2 body, then the original.
        let mut v3c = v2.clone();
        v3c.original = Some(original);
        let bytes = round_trip(&v3c, Some(SNAPSHOT_V3_PREFIX));
        let v2_bytes = v2.encode().unwrap();
        assert_eq!(bytes[2..bytes.len() - 32], v2_bytes[2..]);
        assert_eq!(bytes[bytes.len() - 32..], original.0 .0[..]);
    }

    #[test]
    fn versions_out_of_place_are_refused() {
        let v1 = snap("mail1", &[], &["/etc"]);
        let fields = crate::format::encode(&v1).unwrap();
        let is_corrupt = |b: &[u8]| matches!(Snapshot::decode(b, "s"), Err(Error::Corrupt { .. }));
        // Version 2 without components: not canonical.
        let mut empty_v2 = SNAPSHOT_V2_PREFIX.to_vec();
        empty_v2.extend(&fields);
        empty_v2.push(0x00);
        assert!(is_corrupt(&empty_v2));
        // Unknown versions.
        for version in [0x00, 0x01, 0x04, 0xfe, 0xff] {
            let mut b = vec![0xff, version];
            b.extend(&fields);
            b.push(0x00);
            assert!(is_corrupt(&b), "version {version} accepted");
        }
        assert!(is_corrupt(&[0xff]));
        assert!(is_corrupt(&[]));
        // Version 3 without its original (a version 2 body), cut short, or with bytes after it.
        let mut no_original = SNAPSHOT_V3_PREFIX.to_vec();
        no_original.extend(&fields);
        no_original.push(0x00);
        assert!(is_corrupt(&no_original));
        let mut v3 = v1.clone();
        v3.original = Some(SnapshotId(crate::id::Id([7; 32])));
        let bytes = v3.encode().unwrap();
        assert!(is_corrupt(&bytes[..bytes.len() - 1]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(is_corrupt(&longer));
        assert!(Snapshot::decode(&bytes, "s").is_ok());
    }
}
