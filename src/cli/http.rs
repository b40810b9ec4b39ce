//! One blocking HTTP request, for what the CLI tells other programs: metrics pushed to a
//! Pushgateway, pings to a healthchecks-style URL. reqwest (the S3 backend's HTTP client) on a
//! runtime of this call's own; every failure is a sentence, never an error that stops a
//! command: a monitoring endpoint that is down must not fail a backup.

use std::time::Duration;

/// Send `body` to `url` with `method` (`POST`, `PUT`, `GET`), giving up after `timeout` and
/// trying `attempts` times in all (1 s, then 2 s... between tries) while the failure may pass
/// (a connection error, a timeout, a 5xx); an interrupt ends the request in flight and the
/// retries, and a request sent after one is tried once for at most 5 s. Returns the final
/// status code; a 4xx is returned at once. Errors: a sentence naming the URL ([`redacted`])
/// and what failed.
pub fn send(method: &str, url: &str, body: Vec<u8>, timeout: Duration, attempts: u32) -> Result<u16, String> {
    let shown = redacted(url);
    let shown = shown.as_str();
    // Sent after an interrupt (the failure ping of a stopped run): once, briefly, so that the
    // command still ends well within systemd's TimeoutStopSec.
    let late = super::cancel().is_cancelled();
    let (timeout, attempts) = if late { (timeout.min(Duration::from_secs(5)), 1) } else { (timeout, attempts) };
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{shown}: cannot start the HTTP client: {e}"))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("{shown}: cannot start the HTTP client: {e}"))?;
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            // An interrupted command (SIGTERM from systemd) does not wait on a monitoring host.
            let until = std::time::Instant::now() + Duration::from_secs(1 << (attempt - 1).min(4));
            while std::time::Instant::now() < until && !super::cancel().is_cancelled() {
                std::thread::sleep(Duration::from_millis(100));
            }
            if super::cancel().is_cancelled() {
                break;
            }
        }
        let req = client.request(method.clone(), url).body(body.clone());
        // An interrupt (systemd's SIGTERM) ends the request in flight: the command has its
        // own stop to see to within TimeoutStopSec.
        let interrupted = async {
            while late || !super::cancel().is_cancelled() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let sent = rt.block_on(async {
            match futures::future::select(Box::pin(req.send()), Box::pin(interrupted)).await {
                futures::future::Either::Left((r, _)) => Some(r),
                futures::future::Either::Right(((), _)) => None,
            }
        });
        match sent {
            None => return Err(format!("{shown}: interrupted")),
            Some(Ok(r)) if r.status().is_server_error() => {
                last = format!("{shown}: the server answered {}", r.status())
            }
            Some(Ok(r)) => return Ok(r.status().as_u16()),
            Some(Err(e)) => last = format!("{shown}: {}", super::error_text(&e.without_url())),
        }
    }
    Err(last)
}

/// `url` as messages show it: the scheme and host only (`https://hc-ping.com/***`): a ping
/// URL's path is the check's secret, and a `user:password@` or a `?token=` is one too.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let more = if rest.len() > authority.len() { "/***" } else { "" };
    format!("{scheme}://{host}{more}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_keeps_only_scheme_and_host() {
        assert_eq!(super::redacted("https://u:p@hc-ping.com/uuid/start?rid=1"), "https://hc-ping.com/***");
        assert_eq!(super::redacted("http://127.0.0.1:9091"), "http://127.0.0.1:9091");
    }
}
