//! `[monitoring] ping-url`: `cairn run` tells a dead man's switch how the night went, with
//! healthchecks.io's semantics (<https://healthchecks.io/docs/http_api/>): `URL/start` when the
//! run starts, `URL` when it succeeded, `URL/fail` when it did not, the last lines of the run's
//! report as the body of the last two. Each of the three can be given its own URL instead
//! (`ping-start-url`, `ping-success-url`, `ping-failure-url`: Uptime Kuma's push URLs with
//! `?status=up`/`down`, an ntfy topic, a Gotify message endpoint); an empty one is not pinged.
//!
//! A ping that fails is retried ([`super::http::send`]) and then printed as a warning: a
//! monitoring endpoint that is down never changes the run's exit code.

use std::time::Duration;

use cairn::Error;

use super::profile::MonitoringSection;

/// Largest body sent, bytes (healthchecks.io keeps 100 kB); the end of the report is kept.
const MAX_BODY: usize = 10 * 1024;

/// Where and how to ping.
#[derive(Debug, Default)]
pub struct Pinger {
    start: Option<String>,
    success: Option<String>,
    failure: Option<String>,
    timeout: Duration,
    attempts: u32,
}

/// `url` with `/suffix` added to its path (before a `?query`).
fn with_suffix(url: &str, suffix: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut u = format!("{}/{suffix}", base.trim_end_matches('/'));
    if let Some(q) = query {
        u.push('?');
        u.push_str(q);
    }
    u
}

impl Pinger {
    /// The pinger of a profile's `[monitoring]`, `None` when it names no URL. Errors:
    /// [`Error::Usage`] for a URL that is not http(s) or a timeout that is not a duration
    /// (`at` names the profile's file, for the message).
    pub fn from_profile(m: &MonitoringSection, at: &str) -> Result<Option<Pinger>, Error> {
        let pick = |own: &Option<String>, suffix: Option<&str>| -> Option<String> {
            match (own, &m.ping_url) {
                (Some(u), _) if u.is_empty() => None,
                (Some(u), _) => Some(u.clone()),
                (None, Some(base)) => Some(suffix.map_or_else(|| base.clone(), |s| with_suffix(base, s))),
                (None, None) => None,
            }
        };
        let p = Pinger {
            start: pick(&m.ping_start_url, Some("start")),
            success: pick(&m.ping_success_url, None),
            failure: pick(&m.ping_failure_url, Some("fail")),
            timeout: match &m.ping_timeout {
                Some(t) => {
                    super::parse_duration(t).map_err(|e| Error::usage(format!("{at}: ping-timeout {t:?}: {e}")))?
                }
                None => Duration::from_secs(10),
            },
            attempts: m.ping_attempts.unwrap_or(3),
        };
        if p.timeout.is_zero() || p.timeout > Duration::from_secs(60) {
            return Err(Error::usage(format!("{at}: ping-timeout must be more than 0 and at most 60s")));
        }
        if !(1..=10).contains(&p.attempts) {
            return Err(Error::usage(format!("{at}: ping-attempts must be 1 to 10")));
        }
        for u in [&p.start, &p.success, &p.failure].into_iter().flatten() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::usage(format!("{at}: ping URL {u:?} is not an http:// or https:// URL")));
            }
        }
        Ok((p.start.is_some() || p.success.is_some() || p.failure.is_some()).then_some(p))
    }

    /// Ping the start of the run.
    pub fn start(&self) {
        if let Some(u) = &self.start {
            self.send(u, Vec::new());
        }
    }

    /// Ping the end of the run: success or failure, with `report` (its end) as the body.
    pub fn finish(&self, success: bool, report: &str) {
        let url = if success { &self.success } else { &self.failure };
        if let Some(u) = url {
            let cut = report.len().saturating_sub(MAX_BODY);
            let start = (cut..=report.len()).find(|&i| report.is_char_boundary(i)).unwrap_or(report.len());
            self.send(u, report.get(start..).unwrap_or("").as_bytes().to_vec());
        }
    }

    fn send(&self, url: &str, body: Vec<u8>) {
        match super::http::send("POST", url, body, self.timeout, self.attempts) {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => eprintln!("cairn: warning: ping {}: HTTP {s}", super::http::redacted(url)),
            Err(e) => eprintln!("cairn: warning: ping failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_urls_and_overrides() {
        let m = MonitoringSection {
            ping_url: Some("https://hc-ping.com/abc?rid=1".into()),
            ping_success_url: Some("".into()),
            ..Default::default()
        };
        let p = Pinger::from_profile(&m, "x").unwrap().unwrap();
        assert_eq!(p.start.as_deref(), Some("https://hc-ping.com/abc/start?rid=1"));
        assert_eq!(p.success, None);
        assert_eq!(p.failure.as_deref(), Some("https://hc-ping.com/abc/fail?rid=1"));
        let bad = MonitoringSection { ping_url: Some("hc-ping.com/abc".into()), ..Default::default() };
        assert!(Pinger::from_profile(&bad, "x").is_err());
        assert!(Pinger::from_profile(&MonitoringSection::default(), "x").unwrap().is_none());
    }
}
