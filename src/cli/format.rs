//! How the command line writes durations, times and sizes (restic's formats).

/// Parse a duration such as `90s`, `30m`, `2h`, `1h30m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("unknown unit {c:?} (use s, m, h, d)")),
        };
        let n: u64 = num.parse().map_err(|_| "a number must come before each unit".to_string())?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        return Err("expected a duration such as 30s, 10m or 2h".into());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// restic's `TimeFormat` for tables: `2006-01-02 15:04:05`.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A snapshot's time for tables, in the time zone it was taken in.
pub fn snapshot_time(s: &cairn::snapshot::Snapshot) -> String {
    s.local_time().format(TIME_FORMAT).to_string()
}

/// A file time for tables, in this machine's time zone (as restic's `ls -l`).
pub fn local_time(t: cairn::tree::Timestamp) -> String {
    t.to_utc().with_timezone(&chrono::Local).format(TIME_FORMAT).to_string()
}

/// Bytes as a human-readable size (KiB, MiB... with two decimals).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
