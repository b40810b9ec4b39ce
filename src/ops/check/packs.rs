//! `check`'s pack phases: each pack's header against the index (a range read), and the
//! packs read in full (their id, header and every blob).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::backend::FileKind;
use crate::blob::BlobType;
use crate::crypto::SALT_LEN;
use crate::error::Error;
use crate::id::{BlobId, Id, PackId};
use crate::pack::BlobEntry;
use crate::repository::{PackBlob, Repository};

use super::{why, CheckProgress, Failure, PackRecord, Problem};

/// Read a pack's salt and header by range reads and compare them with the index.
pub(super) fn check_pack_header(
    repo: &Repository,
    id: &PackId,
    size: u64,
    rec: &PackRecord,
    failure: &Failure,
) -> Vec<Problem> {
    let what = format!("pack {}", id.short());
    match repo.read_stored_pack_header(id, size, &what) {
        Ok((salt, entries)) => compare_with_index(id, &salt, &entries, rec),
        Err(e) => match failure.record(e) {
            Ok(()) => Vec::new(),
            Err(e) => vec![Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() }],
        },
    }
}

/// Problems where the pack's `salt` and header `entries` differ from what each index file
/// says about the pack.
fn compare_with_index(id: &PackId, salt: &[u8; SALT_LEN], entries: &[BlobEntry], rec: &PackRecord) -> Vec<Problem> {
    let key = |e: &BlobEntry| (e.blob_type, e.id, e.offset, e.length, e.raw_length);
    let in_header: HashSet<_> = entries.iter().map(key).collect();
    let mut out = Vec::new();
    for (index_name, p) in &rec.entries {
        let mut details = Vec::new();
        let mut blobs = Vec::new();
        if p.salt != *salt {
            details.push("the salt differs".to_string());
            blobs.extend(p.blobs.iter().map(|b| b.id));
        } else {
            let wrong: Vec<BlobId> = p.blobs.iter().filter(|e| !in_header.contains(&key(e))).map(|e| e.id).collect();
            if !wrong.is_empty() {
                details.push(format!("{} indexed blob(s) are not in the pack header as indexed", wrong.len()));
                blobs.extend(wrong);
            }
        }
        let indexed: HashSet<_> = p.blobs.iter().map(key).collect();
        let extra = entries.iter().filter(|e| !indexed.contains(&key(e))).count();
        if extra > 0 {
            details.push(format!("{extra} blob(s) of the header are not indexed for this pack"));
        }
        if !details.is_empty() {
            out.push(Problem::PackIndexMismatch {
                pack: *id,
                index: index_name.to_hex(),
                detail: details.join("; "),
                blobs,
            });
        }
    }
    out
}

/// Download a whole pack and verify its id, header and every blob.
pub(super) fn read_pack(
    repo: &Repository,
    id: &PackId,
    rec: &PackRecord,
    progress: &CheckProgress,
    read: &AtomicUsize,
    failure: &Failure,
) -> Vec<Problem> {
    let data = match repo.backend().read(FileKind::Pack, &id.0) {
        Ok(d) => d,
        Err(e) => {
            return match failure.record(Error::stored_read(format!("pack {}", id.short()), e)) {
                Ok(()) => Vec::new(),
                Err(e) => vec![Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() }],
            }
        }
    };
    read.fetch_add(1, Ordering::Relaxed);
    progress.bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
    let mut out = Vec::new();
    let actual = Id::of_bytes(&data);
    if actual != id.0 {
        out.push(Problem::PackHashMismatch { pack: *id, actual });
    }
    let what = format!("pack {}", id.short());
    let salt = match crate::pack::read_salt(&data, &what) {
        Ok(s) => s,
        Err(e) => {
            out.push(Problem::PackDamaged { pack: *id, error: why(&e), blobs: rec.blob_ids() });
            return out;
        }
    };
    // Open the blobs the header lists; when the header is damaged, those the index lists,
    // so that intact blobs are told apart from damaged ones.
    let entries: Vec<BlobEntry> = match repo.read_pack_header(&data, id) {
        Ok(entries) => {
            out.extend(compare_with_index(id, &salt, &entries, rec));
            entries
        }
        Err(e) => {
            out.push(Problem::PackDamaged { pack: *id, error: why(&e), blobs: Vec::new() });
            let mut all: Vec<BlobEntry> = rec.entries.iter().flat_map(|(_, p)| p.blobs.iter().copied()).collect();
            all.sort_by_key(|e| (e.offset, e.id));
            all.dedup();
            all
        }
    };
    for e in &entries {
        let Some(blob_type) = e.kind() else {
            out.push(Problem::BlobDamaged {
                pack: *id,
                blob: e.id,
                blob_type: BlobType::Data,
                error: format!("undefined blob type {}", e.blob_type),
            });
            continue;
        };
        let blob = PackBlob { blob_type, id: e.id, offset: e.offset, length: e.length, raw_length: e.raw_length };
        let r = repo.open_pack_blob(id, &salt, &data, &blob);
        if let Err(err) = r {
            out.push(Problem::BlobDamaged { pack: *id, blob: e.id, blob_type, error: why(&err) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexPack;

    fn entry(n: u8, offset: u32) -> BlobEntry {
        BlobEntry { blob_type: 0, id: BlobId(Id::of_bytes(&[n])), offset, length: 50, raw_length: 20 }
    }

    /// A header that lists what the index lists agrees; a moved blob, an extra blob or another
    /// salt is one mismatch per index file, naming the blobs concerned.
    #[test]
    fn header_against_index() {
        let id = PackId(Id::of_bytes(b"pack"));
        let header = vec![entry(1, 32), entry(2, 82)];
        let rec = |blobs: Vec<BlobEntry>, salt: [u8; SALT_LEN]| PackRecord {
            entries: vec![(crate::id::IndexId(crate::id::Id([7; 32])), IndexPack { id, salt, size: 200, blobs })],
        };
        assert!(compare_with_index(&id, &[7; SALT_LEN], &header, &rec(header.clone(), [7; SALT_LEN])).is_empty());
        let moved =
            compare_with_index(&id, &[7; SALT_LEN], &header, &rec(vec![entry(1, 32), entry(2, 90)], [7; SALT_LEN]));
        match moved.as_slice() {
            [Problem::PackIndexMismatch { blobs, detail, .. }] => {
                assert_eq!(blobs, &vec![entry(2, 0).id]);
                assert!(detail.contains("not indexed for this pack"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let salt = compare_with_index(&id, &[7; SALT_LEN], &header, &rec(header.clone(), [8; SALT_LEN]));
        assert!(matches!(salt.as_slice(), [Problem::PackIndexMismatch { detail, .. }] if detail.contains("salt")));
    }
}
