//! Small helpers around the operating system: owner names, host and user names.

use std::collections::HashMap;

/// Caches uid/gid → name look-ups (`getpwuid_r`/`getgrgid_r` through nix).
#[derive(Default)]
pub struct OwnerNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl OwnerNames {
    /// The user name of `uid`, or "" when it has none.
    pub fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The group name of `gid`, or "" when it has none.
    pub fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// An age in seconds as people read it: `45s` under two minutes, `17m` under two hours,
/// `30h5m` beyond (lock messages, `cairn health`).
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// This machine's host name ("" when it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// The name of the user running cairn, from the password database, else `$USER`.
pub fn username() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

/// A size in bytes as restic writes it: digits with an optional unit, `b`/`B` (bytes), `k`/`K`,
/// `m`/`M`, `g`/`G`, `t`/`T` (powers of 1024), the latter optionally followed by `b`/`B`
/// (`512K`, `512KB`, `2G`, `100`). Blanks around the number are ignored. `None` when it is not
/// such a size or does not fit in 64 bits.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = match t.strip_suffix(['b', 'B']) {
        Some(rest) if rest.ends_with(|c: char| "kKmMgGtT".contains(c)) => rest,
        _ => t,
    };
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'b' => 1,
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return None,
            };
            (t.get(..i)?, m)
        }
        _ => (t, 1),
    };
    let num = num.trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_use_restics_units() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("100b"), Some(100));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("512KB"), Some(512 << 10));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size(" 2 G "), Some(2 << 30));
        assert_eq!(parse_size("3t"), Some(3 << 40));
        for bad in ["", "K", "KB", "B", "-1K", "+1", "1.5M", "12q", "1BB", "1KK", "99999999999T", "1 K B"] {
            assert_eq!(parse_size(bad), None, "{bad:?} accepted");
        }
    }
}
