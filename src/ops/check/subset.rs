//! Which packs `check` downloads in full: all, a random share, or one of `t` fixed groups
//! (restic's `--read-data-subset`).

use crate::id::PackId;

/// Which packs `--read-data` / `--read-data-subset` download and verify.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Every indexed pack (`--read-data`).
    All,
    /// A random sample of this percentage of the packs (`N%`, 0 < N ≤ 100): at least one pack
    /// when any exist; a different sample each run (restic's `selectRandomPacksByPercentage`).
    Percent(f64),
    /// Group `n` of `t` (`n/t`, 1 ≤ n ≤ t ≤ 256): the packs whose id's first byte modulo `t`
    /// is `n - 1` (restic's `selectPacksByBucket`). The `t` groups cover every pack exactly
    /// once, and a pack always falls in the same group.
    Group {
        /// 1-based group number.
        n: u32,
        /// Number of groups.
        t: u32,
    },
}

impl std::str::FromStr for Subset {
    type Err = String;

    /// Parse `N%` (a number with an optional fraction, 0 < N ≤ 100) or `n/t`
    /// (1 ≤ n ≤ t ≤ 256). Errors: a sentence naming the bad value and the accepted forms.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let bad = |why: &str| {
            format!("read-data subset {s:?}: {why}; expected N% (0 < N <= 100) or n/t (1 <= n <= t <= 256)")
        };
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            return Ok(Subset::Percent(v));
        }
        if let Some((n, t)) = s.split_once('/') {
            let n: u32 = n.trim().parse().map_err(|_| bad("n is not a whole number"))?;
            let t: u32 = t.trim().parse().map_err(|_| bad("t is not a whole number"))?;
            if t == 0 || t > 256 {
                return Err(bad("t must be 1 to 256"));
            }
            if n == 0 || n > t {
                return Err(bad("n must be 1 to t"));
            }
            return Ok(Subset::Group { n, t });
        }
        Err(bad("not a subset"))
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subset::All => f.write_str("all"),
            Subset::Percent(p) => write!(f, "{p}%"),
            Subset::Group { n, t } => write!(f, "{n}/{t}"),
        }
    }
}

impl Subset {
    /// The packs of `packs` this subset selects, in the order given.
    pub fn select(&self, packs: &[PackId]) -> Vec<PackId> {
        match *self {
            Subset::All => packs.to_vec(),
            Subset::Group { n, t } => packs.iter().filter(|p| (p.0 .0[0] as u32) % t == n - 1).copied().collect(),
            Subset::Percent(pct) => {
                if packs.is_empty() {
                    return Vec::new();
                }
                let want = ((packs.len() as f64 * pct / 100.0) as usize).clamp(1, packs.len());
                let mut rng = rand::thread_rng();
                let mut picked: Vec<usize> = rand::seq::index::sample(&mut rng, packs.len(), want).into_vec();
                picked.sort_unstable();
                picked.into_iter().filter_map(|i| packs.get(i).copied()).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use std::collections::HashSet;

    #[test]
    fn subset_parsing() {
        assert_eq!("10%".parse::<Subset>(), Ok(Subset::Percent(10.0)));
        assert_eq!("2.5%".parse::<Subset>(), Ok(Subset::Percent(2.5)));
        assert_eq!("1/5".parse::<Subset>(), Ok(Subset::Group { n: 1, t: 5 }));
        assert_eq!("256/256".parse::<Subset>(), Ok(Subset::Group { n: 256, t: 256 }));
        for bad in ["0/5", "6/5", "1/0", "1/257", "150%", "0%", "-1%", "abc", "", "%", "1/", "/5", "a/b", "NaN%"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn groups_partition_and_percent_samples() {
        let packs: Vec<PackId> = (0..1000u32).map(|i| PackId(Id::of_bytes(&i.to_le_bytes()))).collect();
        for t in [1u32, 3, 7, 256] {
            let mut all: Vec<PackId> = (1..=t).flat_map(|n| Subset::Group { n, t }.select(&packs)).collect();
            all.sort();
            let mut want = packs.clone();
            want.sort();
            assert_eq!(all, want, "groups of {t} do not cover every pack exactly once");
        }
        // The group is a function of the id's first byte alone (restic's rule).
        for p in (Subset::Group { n: 2, t: 3 }).select(&packs) {
            assert_eq!(p.0 .0[0] % 3, 1);
        }
        assert_eq!(Subset::Percent(100.0).select(&packs).len(), 1000);
        assert_eq!(Subset::Percent(10.0).select(&packs).len(), 100);
        assert_eq!(Subset::Percent(0.01).select(&packs).len(), 1);
        let a = Subset::Percent(50.0).select(&packs);
        let unique: HashSet<PackId> = a.iter().copied().collect();
        assert_eq!(unique.len(), 500);
        assert!(Subset::Percent(50.0).select(&[]).is_empty());
    }
}
