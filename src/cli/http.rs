//! One blocking HTTP request, for what the CLI tells other programs: metrics pushed to a
//! Pushgateway, pings to a healthchecks-style URL. reqwest (the S3 backend's HTTP client) on a
//! runtime of this call's own; every failure is a sentence, never an error that stops a
//! command: a monitoring endpoint that is down must not fail a backup.

use std::time::Duration;

/// Send `body` to `url` with `method` (`POST`, `PUT`, `GET`), giving up after `timeout` and
/// trying `attempts` times in all (1 s, then 2 s... between tries) while the failure may pass
/// (a connection error, a timeout, a 5xx). Returns the final status code; a 4xx is returned at
/// once. Errors: a sentence naming the URL (without its query) and what failed.
pub fn send(method: &str, url: &str, body: Vec<u8>, timeout: Duration, attempts: u32) -> Result<u16, String> {
    let shown = url.split('?').next().unwrap_or(url);
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
            std::thread::sleep(Duration::from_secs(1 << (attempt - 1).min(4)));
        }
        let req = client.request(method.clone(), url).body(body.clone());
        match rt.block_on(async { req.send().await }) {
            Ok(r) if r.status().is_server_error() => last = format!("{shown}: the server answered {}", r.status()),
            Ok(r) => return Ok(r.status().as_u16()),
            Err(e) => last = format!("{shown}: {}", super::error_text(&e)),
        }
    }
    Err(last)
}
