//! How much unused data prune may leave in the packs it keeps (restic's `--max-unused`).

use crate::error::{Error, Result};

/// How much unused data may stay in packs that are kept (restic's `--max-unused`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// A share of the used data, in percent (0 to 100): unused ≤ used × p / (100 − p), i.e. the
    /// unused bytes are at most p % of the repository after prune.
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Never repack for unused data (only delete packs with nothing used).
    Unlimited,
}

impl MaxUnused {
    /// Parse `5%`, `0`, `200M`, `1G`, `unlimited` (restic's syntax; suffixes as [`crate::util::parse_size`]:
    /// k, m, g, t are powers of 1024). Errors: [`Error::Usage`] naming the value.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let bad = || {
            Error::usage(format!(
                "limit of unused data {s:?}: expected a percentage (5%), a size (200M) or `unlimited`"
            ))
        };
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&v) {
                return Err(bad());
            }
            return Ok(if v >= 100.0 { MaxUnused::Unlimited } else { MaxUnused::Percent(v) });
        }
        crate::util::parse_size(t).map(MaxUnused::Bytes).ok_or_else(bad)
    }

    /// The unused bytes allowed when `used` bytes are in use.
    pub fn limit(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Percent(p) => ((used as f64) * p / (100.0 - p)).floor() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused_syntax() {
        assert_eq!(MaxUnused::parse("5%").ok(), Some(MaxUnused::Percent(5.0)));
        assert_eq!(MaxUnused::parse("unlimited").ok(), Some(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::parse("100%").ok(), Some(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::parse("0").ok(), Some(MaxUnused::Bytes(0)));
        assert_eq!(MaxUnused::parse("200M").ok(), Some(MaxUnused::Bytes(200 << 20)));
        assert_eq!(MaxUnused::parse("1g").ok(), Some(MaxUnused::Bytes(1 << 30)));
        for bad in ["", "x", "5%%", "-1%", "101%", "12q", "M"] {
            assert!(MaxUnused::parse(bad).is_err(), "{bad:?} accepted");
        }
        // 5 % of the repository after prune: 95 used allow 5 unused.
        assert_eq!(MaxUnused::Percent(5.0).limit(95), 5);
        assert_eq!(MaxUnused::Percent(0.0).limit(1000), 0);
    }
}
