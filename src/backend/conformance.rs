//! The backend contract as one suite of behaviours, run on every backend and through every
//! wrapper (the memory, local and S3 backends; retry, limit and cache around memory and
//! local): create, write, read, read a range (and a range past the end), list (by id and by
//! name), remove, exists, staged files (invisible until committed, gone when dropped) and the
//! error kinds of missing files. A backend written outside cairn can run it too.
//!
//! The suite expects a fresh, empty backend; it leaves files behind.

use bytes::Bytes;

use super::{Backend, ErrorKind, FileKind};
use crate::id::Id;

/// The outcome of the suite: `Err` says which behaviour failed, on which location.
pub type Outcome = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// `len` bytes of a pattern seeded by `seed` (xorshift), so that contents differ.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The id of `data` as cairn names files: the BLAKE3 of the bytes (so that a caching wrapper
/// keeps what it reads).
pub fn name_of(data: &[u8]) -> Id {
    Id::of_bytes(data)
}

/// Run the whole suite on `b`, a fresh backend. `many` files of one kind are written and
/// listed at the end (more than 1,000 checks that an object store's listing pages).
/// Errors: the first behaviour that differs from the contract, in a sentence.
pub fn run(b: &dyn Backend, many: u64) -> Outcome {
    let loc = b.location();
    let e = |what: &str, err: super::BackendError| format!("{loc}: {what}: {err}");
    b.create().map_err(|x| e("create", x))?;
    ensure!(
        !b.exists(FileKind::Config, &super::CONFIG_ID).map_err(|x| e("exists config", x))?,
        "{loc}: config before it was written"
    );
    ensure!(
        b.list(FileKind::Config).map_err(|x| e("list config", x))?.is_empty(),
        "{loc}: config listed before written"
    );
    b.write_bytes(FileKind::Config, &super::CONFIG_ID, Bytes::from_static(b"config bytes"))
        .map_err(|x| e("write config", x))?;
    ensure!(
        b.read(FileKind::Config, &super::CONFIG_ID).map_err(|x| e("read config", x))? == b"config bytes",
        "{loc}: config read back"
    );
    ensure!(b.list(FileKind::Config).map_err(|x| e("list config", x))?.len() == 1, "{loc}: config not listed once");
    ensure!(b.create().is_err(), "{loc}: create over an existing config must fail");

    whole_files(b, &loc)?;
    staged_files(b, &loc)?;
    let r = b.remove_stale_temporaries(std::time::Duration::from_secs(3600)).map_err(|x| e("remove temporaries", x))?;
    ensure!(r == (0, 0), "{loc}: fresh temporaries (or none) were removed: {r:?}");
    many_files(b, &loc, many)
}

/// write / read / read_range / list / exists / remove of whole files, and not-found kinds.
fn whole_files(b: &dyn Backend, loc: &str) -> Outcome {
    let e = |what: &str, err: super::BackendError| format!("{loc}: {what}: {err}");
    let data = pattern(11, 300_000);
    let name = name_of(&data);
    b.write_bytes(FileKind::Pack, &name, Bytes::from(data.clone())).map_err(|x| e("write pack", x))?;
    ensure!(b.read(FileKind::Pack, &name).map_err(|x| e("read pack", x))? == data, "{loc}: pack read back differs");

    // read_range: middle, whole, exact end; beyond the end is an error (never transient).
    let n = data.len() as u64;
    for (off, len) in [(1000, 5000), (0, n), (n - 100, 100), (n - 1, 1)] {
        let want = data.get(off as usize..(off + len) as usize).unwrap_or_default();
        let got = b.read_range(FileKind::Pack, &name, off, len).map_err(|x| e("read_range", x))?;
        ensure!(got == want, "{loc}: read_range({off}, {len}) differs");
        let cached = b.read_range_cached(FileKind::Pack, &name, off, len).map_err(|x| e("read_range_cached", x))?;
        ensure!(cached == want, "{loc}: read_range_cached({off}, {len}) differs");
    }
    for (off, len) in [(n - 50, 100), (n, 1), (n + 10, 5)] {
        match b.read_range(FileKind::Pack, &name, off, len) {
            Ok(v) => {
                return Err(format!("{loc}: read_range({off}, {len}) past the end ({n} bytes) gave {} bytes", v.len()))
            }
            Err(x) => ensure!(x.kind != ErrorKind::Transient, "{loc}: a short file is not a transient failure: {x}"),
        }
    }

    // exists; list with sizes; kinds are kept apart.
    ensure!(b.exists(FileKind::Pack, &name).map_err(|x| e("exists", x))?, "{loc}: written pack does not exist");
    ensure!(!b.exists(FileKind::Pack, &name_of(b"other")).map_err(|x| e("exists", x))?, "{loc}: a missing pack exists");
    ensure!(!b.exists(FileKind::Index, &name).map_err(|x| e("exists", x))?, "{loc}: a pack exists as an index");
    ensure!(b.list(FileKind::Pack).map_err(|x| e("list", x))? == vec![(name, n)], "{loc}: pack listing");
    ensure!(
        b.list_names(FileKind::Pack).map_err(|x| e("list names", x))? == vec![(name.to_hex(), n)],
        "{loc}: pack listing by name (the hex of the id)"
    );
    for (i, kind) in [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Lock].into_iter().enumerate() {
        ensure!(
            b.list(kind).map_err(|x| e("list", x))?.is_empty(),
            "{loc}: {kind:?} listed before anything was written"
        );
        let body = vec![i as u8; 10 + i];
        let nm = name_of(&body);
        b.write_bytes(kind, &nm, Bytes::from(body.clone())).map_err(|x| e("write", x))?;
        ensure!(b.list(kind).map_err(|x| e("list", x))? == vec![(nm, body.len() as u64)], "{loc}: list {kind:?}");
        ensure!(b.read(kind, &nm).map_err(|x| e("read", x))? == body, "{loc}: {kind:?} read back");
        // Whole-file reads of metadata go through a cache where there is one: twice the same.
        ensure!(b.read(kind, &nm).map_err(|x| e("read", x))? == body, "{loc}: {kind:?} read back twice");
    }
    ensure!(b.list(FileKind::Pack).map_err(|x| e("list", x))?.len() == 1, "{loc}: other kinds in the pack listing");

    // A second pack (another first byte) is listed too.
    let second = b"second".to_vec();
    let name2 = name_of(&second);
    b.write_bytes(FileKind::Pack, &name2, Bytes::from(second)).map_err(|x| e("write", x))?;
    let mut packs = b.list(FileKind::Pack).map_err(|x| e("list", x))?;
    packs.sort();
    let mut want = vec![(name, n), (name2, 6)];
    want.sort();
    ensure!(packs == want, "{loc}: listing of two packs: {packs:?}");

    // Missing files: NotFound.
    let missing = name_of(b"missing");
    for (what, r) in [
        ("read of a missing snapshot", b.read(FileKind::Snapshot, &missing).map(|_| ())),
        ("read of a missing pack", b.read(FileKind::Pack, &missing).map(|_| ())),
        ("read_range of a missing pack", b.read_range(FileKind::Pack, &missing, 0, 4).map(|_| ())),
    ] {
        match r {
            Err(x) if x.kind == ErrorKind::NotFound => {}
            Err(x) => return Err(format!("{loc}: {what}: expected not found, got {:?}: {x}", x.kind)),
            Ok(()) => return Err(format!("{loc}: {what} succeeded")),
        }
    }

    // remove; removing a missing file is fine.
    b.remove(FileKind::Pack, &name).map_err(|x| e("remove", x))?;
    ensure!(!b.exists(FileKind::Pack, &name).map_err(|x| e("exists", x))?, "{loc}: removed pack exists");
    ensure!(
        b.read(FileKind::Pack, &name).map(|_| ()).err().map(|x| x.kind) == Some(ErrorKind::NotFound),
        "{loc}: read of a removed pack is not 'not found'"
    );
    b.remove(FileKind::Pack, &name).map_err(|x| e("remove twice", x))?;
    b.remove(FileKind::Index, &missing).map_err(|x| e("remove missing", x))?;
    ensure!(b.list(FileKind::Pack).map_err(|x| e("list", x))? == vec![(name2, 6)], "{loc}: listing after remove");
    b.remove(FileKind::Pack, &name_of(b"second")).map_err(|x| e("remove", x))?;
    Ok(())
}

/// A staged pack is invisible until committed, then complete under its name; one dropped
/// uncommitted leaves nothing listed. Backends that do not stage answer `None` for every kind
/// the suite asks about, and the caller writes whole files.
fn staged_files(b: &dyn Backend, loc: &str) -> Outcome {
    let e = |what: &str, err: super::BackendError| format!("{loc}: {what}: {err}");
    let Some(mut s) = b.stage(FileKind::Pack).map_err(|x| e("stage", x))? else { return Ok(()) };
    let data = pattern(29, 3_000_000);
    ensure!(s.is_empty(), "{loc}: a new staged file is not empty");
    for c in data.chunks(70_001) {
        s.append(c).map_err(|x| e("append", x))?;
    }
    ensure!(s.len() == data.len() as u64, "{loc}: staged length {} != {}", s.len(), data.len());
    ensure!(b.list(FileKind::Pack).map_err(|x| e("list", x))?.is_empty(), "{loc}: staged pack visible before commit");
    let name = name_of(&data);
    s.commit(&name).map_err(|x| e("commit", x))?;
    ensure!(
        b.list(FileKind::Pack).map_err(|x| e("list", x))? == vec![(name, data.len() as u64)],
        "{loc}: committed pack not listed with its size"
    );
    ensure!(b.read(FileKind::Pack, &name).map_err(|x| e("read", x))? == data, "{loc}: committed pack differs");
    let mut dropped =
        b.stage(FileKind::Pack).map_err(|x| e("stage", x))?.ok_or_else(|| format!("{loc}: stage once, not twice"))?;
    dropped.append(&data).map_err(|x| e("append", x))?;
    drop(dropped);
    ensure!(b.list(FileKind::Pack).map_err(|x| e("list", x))?.len() == 1, "{loc}: a dropped staged pack is listed");
    b.remove(FileKind::Pack, &name).map_err(|x| e("remove", x))?;
    Ok(())
}

/// `many` snapshots written from 8 threads are all listed, with their sizes.
fn many_files(b: &dyn Backend, loc: &str, many: u64) -> Outcome {
    for (n, _) in b.list(FileKind::Snapshot).map_err(|x| format!("{loc}: list: {x}"))? {
        b.remove(FileKind::Snapshot, &n).map_err(|x| format!("{loc}: remove: {x}"))?;
    }
    let bodies: Vec<Vec<u8>> = (0..many)
        .map(|i| i.to_le_bytes().iter().copied().chain(std::iter::repeat_n(0x5a, (i % 37) as usize)).collect())
        .collect();
    let mut expected: Vec<(Id, u64)> = bodies.iter().map(|d| (name_of(d), d.len() as u64)).collect();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = bodies
            .chunks(bodies.len().div_ceil(8).max(1))
            .map(|part| {
                s.spawn(move || {
                    for d in part {
                        b.write_bytes(FileKind::Snapshot, &name_of(d), Bytes::from(d.clone()))
                            .map_err(|x| format!("{loc}: write: {x}"))?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().unwrap_or_else(|_| Err("a writer panicked".into())).err()).collect()
    });
    if let Some(f) = failures.into_iter().next() {
        return Err(f);
    }
    let mut listed = b.list(FileKind::Snapshot).map_err(|x| format!("{loc}: list: {x}"))?;
    listed.sort();
    expected.sort();
    ensure!(listed.len() == expected.len(), "{loc}: listing of {many} snapshots returned {}", listed.len());
    ensure!(listed == expected, "{loc}: listing of {many} snapshots: names or sizes differ");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_seed_and_names_are_hashes() {
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(1, 64), pattern(1, 64));
        assert_eq!(name_of(b"x"), Id::of_bytes(b"x"));
    }

    #[test]
    fn the_suite_catches_a_backend_that_breaks_the_contract() {
        /// Lists nothing: the suite must say so.
        struct Forgetful(crate::backend::memory::MemoryBackend);
        impl Backend for Forgetful {
            fn location(&self) -> String {
                "forgetful:".into()
            }
            fn properties(&self) -> crate::backend::Properties {
                self.0.properties()
            }
            fn create(&self) -> super::super::BackendResult<()> {
                self.0.create()
            }
            fn write_bytes(&self, k: FileKind, n: &Id, d: Bytes) -> super::super::BackendResult<()> {
                self.0.write_bytes(k, n, d)
            }
            fn read(&self, k: FileKind, n: &Id) -> super::super::BackendResult<Vec<u8>> {
                self.0.read(k, n)
            }
            fn read_range(&self, k: FileKind, n: &Id, o: u64, l: u64) -> super::super::BackendResult<Vec<u8>> {
                self.0.read_range(k, n, o, l)
            }
            fn read_range_cached(&self, k: FileKind, n: &Id, o: u64, l: u64) -> super::super::BackendResult<Vec<u8>> {
                self.0.read_range_cached(k, n, o, l)
            }
            fn list_names(&self, _: FileKind) -> super::super::BackendResult<Vec<(String, u64)>> {
                Ok(Vec::new())
            }
            fn remove(&self, k: FileKind, n: &Id) -> super::super::BackendResult<()> {
                self.0.remove(k, n)
            }
            fn exists(&self, k: FileKind, n: &Id) -> super::super::BackendResult<bool> {
                self.0.exists(k, n)
            }
            fn stage(&self, k: FileKind) -> super::super::BackendResult<Option<Box<dyn super::super::StagedFile>>> {
                self.0.stage(k)
            }
            fn remove_stale_temporaries(&self, a: std::time::Duration) -> super::super::BackendResult<(u64, u64)> {
                self.0.remove_stale_temporaries(a)
            }
        }
        let err = run(&Forgetful(Default::default()), 10).unwrap_err();
        assert!(err.contains("forgetful:") && err.contains("list"), "{err}");
    }
}
