//! The rule that never lets a keep policy drop the last good copy of a component: in each
//! group, the newest snapshot in which a component (a path or a command's output, by path)
//! is in the tree is kept, with the reason `last good <path>`. So a week of failed database
//! dumps cannot age out the last dump that worked, whatever the `--keep-*` counts. A component
//! is good in a snapshot when it is ok or `partial` (a path in the tree, some entries below it
//! unreadable: a partial copy is still the newest copy of what could be read). A snapshot
//! without components (version 1) counts as good for each of its `paths`, so a group mixing
//! both versions keeps no old version 2 snapshot for a path a newer version 1 one holds. A
//! group with no components at all is not concerned.

use super::policy::Decision;
use crate::snapshot::Snapshot;

/// True when component `path` of `s` is in its tree (ok, or a path read in part); for a
/// snapshot without components, when `path` is one of its paths.
fn good(s: &Snapshot, path: &str) -> bool {
    if s.components.is_empty() {
        return s.paths.iter().any(|p| p == path);
    }
    s.components.iter().any(|c| c.path == path && c.stored())
}

/// Keep, among `decisions` (one group, newest first as [`super::apply_policy`] returns them),
/// the newest snapshot in which each component path is good, adding the reason
/// `last good <path>` (also to a snapshot the policy keeps anyway, so the reasons say which
/// snapshot holds the last good copy). A path no snapshot of the group has good keeps nothing.
pub fn keep_last_good(decisions: &mut [Decision]) {
    let mut paths: Vec<String> =
        decisions.iter().flat_map(|d| d.snapshot.components.iter().map(|c| c.path.clone())).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        if let Some(d) = decisions.iter_mut().find(|d| good(&d.snapshot, &path)) {
            d.keep = true;
            d.reasons.push(format!("last good {path}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Id, SnapshotId};
    use crate::snapshot::{test_snapshot, ComponentOutcome};

    /// A version 1 snapshot (no components) of `paths`.
    fn plain(n: u8, paths: &[&str]) -> Decision {
        let mut d = snap(n, &[]);
        d.snapshot.paths = paths.iter().map(|p| p.to_string()).collect();
        d
    }

    fn snap(n: u8, components: &[(&str, ComponentOutcome)]) -> Decision {
        let snapshot = test_snapshot("h", i64::from(n), &[], components);
        Decision { id: SnapshotId(Id([n; 32])), snapshot, keep: n == 9, reasons: vec![], counters: Default::default() }
    }

    /// `ds` after [`keep_last_good`]: (time, kept, reasons) of each.
    fn decided(ds: &mut [Decision]) -> Vec<(u8, bool, Vec<String>)> {
        keep_last_good(ds);
        ds.iter().map(|d| (d.snapshot.time.secs as u8, d.keep, d.reasons.clone())).collect()
    }

    #[test]
    fn the_newest_good_snapshot_of_each_component_is_kept() {
        use ComponentOutcome::{Failed, Ok, Partial};
        // Newest first: 9 (kept by the policy), 8, 7, 6, 5.
        let mut ds = vec![
            snap(9, &[("/a", Failed), ("/b", Ok), ("/p", Failed)]),
            snap(8, &[("/a", Failed), ("/b", Ok), ("/p", Partial)]),
            snap(7, &[("/a", Ok), ("/b", Ok)]),
            snap(6, &[("/a", Ok), ("/b", Ok)]),
            snap(5, &[("/never", Failed)]),
        ];
        let kept = decided(&mut ds);
        assert_eq!(
            kept,
            vec![
                (9, true, vec!["last good /b".to_string()]),
                (8, true, vec!["last good /p".to_string()]),
                (7, true, vec!["last good /a".to_string()]),
                (6, false, vec![]),
                (5, false, vec![]),
            ]
        );
        // Version 1 snapshots (no components): nothing changes.
        let mut only_v1 = vec![plain(3, &["/a"]), plain(2, &["/a"])];
        keep_last_good(&mut only_v1);
        assert!(only_v1.iter().all(|d| !d.keep && d.reasons.is_empty()));
    }

    #[test]
    fn a_snapshot_without_components_is_good_for_its_paths() {
        use ComponentOutcome::{Failed, Ok};
        // Newest first: 4 (version 1 of /var/vmail), 3 (version 2, the dump failed), 2 (both ok).
        let mut ds = vec![
            plain(4, &["/var/vmail"]),
            snap(3, &[("/var/vmail", Ok), ("/db.dump", Failed)]),
            snap(2, &[("/var/vmail", Ok), ("/db.dump", Ok)]),
        ];
        let kept = decided(&mut ds);
        assert_eq!(
            kept,
            vec![
                (4, true, vec!["last good /var/vmail".to_string()]),
                (3, false, vec![]),
                (2, true, vec!["last good /db.dump".to_string()]),
            ]
        );
    }

    #[test]
    fn a_path_excluded_whole_is_not_good() {
        use ComponentOutcome::Ok;
        // Newest first: 2 (the growing dump file crossed --exclude-larger-than), 1 (it was there).
        let mut ds = vec![snap(2, &[("/var/backups/db.sql", Ok)]), snap(1, &[("/var/backups/db.sql", Ok)])];
        if let Some(c) = ds.first_mut().and_then(|d| d.snapshot.components.first_mut()) {
            c.reason = crate::snapshot::EXCLUDED_REASON.into();
        }
        keep_last_good(&mut ds);
        let kept: Vec<(u8, bool)> = ds.iter().map(|d| (d.snapshot.time.secs as u8, d.keep)).collect();
        assert_eq!(kept, vec![(2, false), (1, true)]);
    }
}
