//! The crontab line of `cairn schedule install --cron`: the simple systemd calendar forms
//! turned into cron's five fields. Pure functions, unit-tested.

/// The five cron fields (`minute hour day-of-month month day-of-week`) of a systemd calendar
/// spec in one of the forms cron can express: `minutely`, `hourly`, `daily`, `weekly`,
/// `monthly`, `quarterly`, `semiannually`, `yearly`/`annually`, or `[WEEKDAYS] [*-*-*]
/// HH:MM[:00]` with `HH` a number or `*`, `MM` a number, WEEKDAYS like `Mon`, `Mon,Thu` or
/// `Mon..Fri`. Errors: why cron cannot express `spec` (seconds, dates, repetitions, ...).
pub fn cron_fields(spec: &str) -> Result<String, String> {
    let keyword = match spec.trim().to_ascii_lowercase().as_str() {
        "minutely" => Some("* * * * *"),
        "hourly" => Some("0 * * * *"),
        "daily" => Some("0 0 * * *"),
        "weekly" => Some("0 0 * * 1"),
        "monthly" => Some("0 0 1 * *"),
        "quarterly" => Some("0 0 1 1,4,7,10 *"),
        "semiannually" => Some("0 0 1 1,7 *"),
        "yearly" | "annually" => Some("0 0 1 1 *"),
        _ => None,
    };
    if let Some(k) = keyword {
        return Ok(k.to_string());
    }
    let cannot = |why: &str| {
        Err(format!(
            "cron cannot express the calendar spec {spec:?} ({why}); cairn converts daily, hourly, weekly, monthly and \
             [WEEKDAYS] [*-*-*] HH:MM[:00]: use the systemd timer (without --cron) or write the crontab line yourself"
        ))
    };
    let mut words: Vec<&str> = spec.split_whitespace().collect();
    let Some(time) = words.pop() else { return cannot("it is empty") };
    let mut dow = "*".to_string();
    if let Some(first) = words.first().filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic())) {
        dow = match weekdays(first) {
            Some(d) => d,
            None => return cannot("weekdays other than names, lists and ranges such as Mon,Thu or Mon..Fri"),
        };
        words.remove(0);
    }
    match words.as_slice() {
        [] | ["*-*-*"] => {}
        _ => return cannot("dates other than *-*-*"),
    }
    let mut parts = time.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else { return cannot("no HH:MM time") };
    match parts.next() {
        None => {}
        Some(s) if s.parse::<u32>() == Ok(0) && s.len() <= 2 => {}
        Some(_) => return cannot("cron runs on whole minutes: the seconds must be 00"),
    }
    if parts.next().is_some() {
        return cannot("a time of more than HH:MM:SS");
    }
    let hour = match h {
        "*" => "*".to_string(),
        h => match number(h, 23) {
            Some(n) => n.to_string(),
            None => return cannot("an hour that is not * or 0..23"),
        },
    };
    let Some(minute) = number(m, 59) else { return cannot("a minute that is not 0..59") };
    Ok(format!("{minute} {hour} * * {dow}"))
}

/// A decimal number of one or two digits, at most `max`.
fn number(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n <= max)
}

/// Cron's day of week (Sunday 0) of an English weekday name, abbreviated or not.
fn weekday(name: &str) -> Option<u32> {
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    const FULL: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    let n = name.to_ascii_lowercase();
    (0..7u32).find(|&i| DAYS[i as usize] == n || FULL[i as usize] == n)
}

/// A systemd weekday list (`Mon`, `Mon,Thu`, `Mon..Fri`) as cron's day-of-week field
/// (`1`, `1,4`, `1-5`); `None` for anything else (a range ending before it starts).
fn weekdays(spec: &str) -> Option<String> {
    let mut out = Vec::new();
    for item in spec.split(',') {
        match item.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (weekday(a)?, weekday(b)?);
                // systemd counts the week from Monday: Mon..Sun is 1-7, cron's 7 is Sunday too.
                let b = if b == 0 { 7 } else { b };
                if a == 0 || a > b {
                    return None;
                }
                out.push(format!("{a}-{b}"));
            }
            None => out.push(weekday(item)?.to_string()),
        }
    }
    Some(out.join(","))
}

/// `s` as one word for /bin/sh in a crontab line: as it is when it has only safe characters,
/// else in single quotes; `%` (a newline to cron) escaped as `\%`.
pub fn shell_word(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._+-:=@,".contains(c));
    let quoted = if safe { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) };
    quoted.replace('%', r"\%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressible_specs() {
        for (spec, fields) in [
            ("daily", "0 0 * * *"),
            ("Hourly", "0 * * * *"),
            ("weekly", "0 0 * * 1"),
            ("monthly", "0 0 1 * *"),
            ("*-*-* 02:00", "0 2 * * *"),
            ("*-*-* 02:30:00", "30 2 * * *"),
            ("23:05", "5 23 * * *"),
            ("*-*-* *:15", "15 * * * *"),
            ("Mon *-*-* 04:00", "0 4 * * 1"),
            ("Sat,Sun 3:07", "7 3 * * 6,0"),
            ("Mon..Fri *-*-* 01:00", "0 1 * * 1-5"),
            ("Mon..Sun 01:00", "0 1 * * 1-7"),
        ] {
            assert_eq!(cron_fields(spec).as_deref(), Ok(fields), "{spec}");
        }
    }

    #[test]
    fn inexpressible_specs_are_refused_with_the_reason() {
        for (spec, why) in [
            ("*-*-* 02:00:30", "seconds"),
            ("*-*-01 02:00", "dates"),
            ("2026-12-24 02:00", "dates"),
            ("*-*-* 0/2:00", "hour"),
            ("*-*-* 02:00/15", "minute"),
            ("Fri..Mon 02:00", "weekdays"),
            ("", "empty"),
            ("*-*-* 24:00", "hour"),
            ("now", "HH:MM"),
        ] {
            let e = cron_fields(spec).unwrap_err();
            assert!(e.contains(why) && e.contains("cron cannot express"), "{spec:?}: {e}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/usr/bin/cairn"), "/usr/bin/cairn");
        assert_eq!(shell_word("/opt/my cairn"), "'/opt/my cairn'");
        assert_eq!(shell_word("/a'b%"), r"'/a'\''b\%'");
    }
}
