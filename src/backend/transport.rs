//! The HTTP transport under the S3 backend: reqwest, as OpenDAL's own transport uses it, with
//! three things cairn needs around each request:
//!
//! - **Progress.** Request bodies are sent in pieces of at most [`PIECE`] bytes and response
//!   bodies arrive in pieces; each piece marks the [`Progress`] of the backend call it belongs
//!   to, so that the backend's timeout means "no progress for N seconds" and a slow uplink is
//!   not mistaken for a dead one (a 16 MiB pack takes 27 s at 5 Mbit/s).
//! - **Bandwidth limits.** With `--limit-upload`/`--limit-download`, the pieces are paced on
//!   the wire ([`Pace`]), as a slow link would pace them.
//! - **Failure classes.** A TLS failure (an `https` location for a plain-HTTP endpoint, an
//!   untrusted certificate) is permanent: retrying cannot help. A refused or reset connection
//!   and a timeout are transient. Each comes with a sentence ([`TransportFailure`]) that says
//!   what failed and what to check.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{Request, Response};
use opendal::{Buffer, HttpBody, HttpTransport};

use super::limit::Pace;

/// Largest piece of a request body handed to the connection at once, bytes.
pub(crate) const PIECE: usize = 64 * 1024;

/// When one backend call last moved bytes (or started). Shared between the call's watchdog
/// and the bodies of its requests.
pub(crate) struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last progress.
    last_ms: AtomicU64,
}

impl Progress {
    /// A clock that starts now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Progress { start: Instant::now(), last_ms: AtomicU64::new(0) })
    }

    /// Record progress now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Record progress at `at`, an instant this call is scheduled to move bytes (the end of
    /// its wait for a slot under a bandwidth limit): a wait the limit imposes is not a stall.
    pub(crate) fn touch_at(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// The instant of the last progress.
    pub(crate) fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    /// The progress clock of the backend call this task runs ([`scoped`]).
    static PROGRESS: Arc<Progress>;
}

/// Run `f` (one backend call) with `progress` as the clock its requests mark.
pub(crate) async fn scoped<F: Future>(progress: Arc<Progress>, f: F) -> F::Output {
    PROGRESS.scope(progress, f).await
}

/// A transport failure with a sentence that says what failed and what to check; the cause
/// (reqwest's error) is its source.
#[derive(Debug)]
pub(crate) struct TransportFailure {
    /// What failed, for the user.
    pub(crate) sentence: String,
    cause: reqwest::Error,
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence)
    }
}

impl std::error::Error for TransportFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// reqwest with progress, pacing and classified errors (see the module documentation).
pub(crate) struct Transport {
    client: reqwest::Client,
    up: Option<Arc<Pace>>,
    down: Option<Arc<Pace>>,
}

impl Transport {
    /// A transport with upload and download limits in KiB/s (`None` or 0: unlimited).
    /// Errors: the HTTP client cannot be built (no TLS configuration), as a sentence.
    pub(crate) fn new(upload_kib: Option<u64>, download_kib: Option<u64>) -> Result<Self, String> {
        let client = reqwest::Client::builder().build().map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Transport { client, up: Pace::new(upload_kib).map(Arc::new), down: Pace::new(download_kib).map(Arc::new) })
    }
}

/// Texts of rustls's errors (its error is boxed in an `io::Error` by the TLS stream, and may
/// reach here only as text through the connector's error).
const TLS_TEXTS: [&str; 5] = [
    "InvalidContentType",
    "received corrupt message",
    "invalid peer certificate",
    "HandshakeFailure",
    "peer is incompatible",
];

/// True when `e` (or a cause of it) is a TLS failure.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.is::<rustls::Error>() {
            return true;
        }
        // std's io::Error hides a custom error from `source()`: look inside.
        if let Some(inner) = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        let text = c.to_string();
        if TLS_TEXTS.iter().any(|t| text.contains(t)) {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The host (and port) of `uri`, for messages.
fn host_of(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => uri.to_string(),
    }
}

/// Classify a reqwest failure and say what it means.
fn failure(uri: &http::Uri, e: reqwest::Error) -> opendal::Error {
    let host = host_of(uri);
    let (sentence, temporary) = if is_tls(&e) {
        let hint = if uri.scheme_str() == Some("https") {
            format!("TLS handshake with {host} failed: if the endpoint speaks plain HTTP, write the location as s3:http://...; otherwise check its certificate")
        } else {
            format!("TLS failure talking to {host}")
        };
        (hint, false)
    } else if e.is_connect() {
        (format!("cannot connect to {host}: the endpoint is unreachable"), true)
    } else if e.is_timeout() {
        (format!("{host} did not answer in time"), true)
    } else {
        (format!("the connection to {host} failed"), e.is_request() || e.is_body() || e.is_decode())
    };
    let e = e.without_url();
    opendal::Error::new(opendal::ErrorKind::Unexpected, sentence.clone())
        .with_operation("cairn::transport")
        .with_temporary(temporary)
        .set_source(TransportFailure { sentence, cause: e })
}

impl HttpTransport for Transport {
    async fn fetch(&self, req: Request<Buffer>) -> opendal::Result<Response<HttpBody>> {
        let progress = PROGRESS.try_with(Arc::clone).ok();
        let uri = req.uri().clone();
        let is_head = req.method() == http::Method::HEAD;
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&uri.to_string()).map_err(|e| {
            opendal::Error::new(opendal::ErrorKind::Unexpected, "request url is invalid")
                .with_context("url", uri.to_string())
                .set_source(e)
        })?;
        let mut rb = self.client.request(parts.method, url).headers(parts.headers).version(parts.version);
        if !body.is_empty() {
            rb = rb.body(reqwest::Body::wrap(PacedBody::new(body, self.up.clone(), progress.clone())));
        }
        let mut resp = rb.send().await.map_err(|e| failure(&uri, e))?;
        if let Some(p) = &progress {
            p.touch();
        }
        let content_length = if is_head || opendal::raw::parse_content_encoding(resp.headers())?.is_some() {
            None
        } else {
            opendal::raw::parse_content_length(resp.headers())?
        };
        let mut hr = Response::builder().status(resp.status()).version(resp.version()).extension(uri.clone());
        if let Some(h) = hr.headers_mut() {
            std::mem::swap(h, resp.headers_mut());
        }
        let down = self.down.clone();
        let stream = resp
            .bytes_stream()
            .try_filter(|v| std::future::ready(!v.is_empty()))
            .map_err(move |e| failure(&uri, e))
            .then(move |r| {
                let (down, progress) = (down.clone(), progress.clone());
                async move {
                    let b = r?;
                    if let Some(p) = &down {
                        let until = p.reserve(b.len() as u64);
                        if let Some(progress) = &progress {
                            progress.touch_at(until);
                        }
                        tokio::time::sleep_until(until.into()).await;
                    }
                    if let Some(p) = &progress {
                        p.touch();
                    }
                    Ok::<Buffer, opendal::Error>(Buffer::from(b))
                }
            })
            .boxed();
        let body = HttpBody::new(sync_wrapper(stream), content_length);
        hr.body(body)
            .map_err(|e| opendal::Error::new(opendal::ErrorKind::Unexpected, "cannot build the response").set_source(e))
    }
}

/// `HttpBody` wants a `Sync` stream; a boxed stream is polled through `&mut` only, so a mutex
/// that is never contended makes it `Sync`.
fn sync_wrapper<S: futures::Stream + Send + Unpin + 'static>(
    s: S,
) -> impl futures::Stream<Item = S::Item> + Send + Sync + Unpin + 'static {
    let cell = std::sync::Mutex::new(s);
    futures::stream::poll_fn(move |cx| match cell.lock() {
        Ok(mut s) => s.poll_next_unpin(cx),
        Err(p) => p.into_inner().poll_next_unpin(cx),
    })
}

/// A request body sent in pieces of at most [`PIECE`] bytes, each paced by the upload limit
/// and marking progress when handed to the connection.
struct PacedBody {
    rest: Buffer,
    current: Bytes,
    pace: Option<Arc<Pace>>,
    progress: Option<Arc<Progress>>,
    /// A piece waiting for its slot on the schedule, and the wait.
    waiting: Option<(Bytes, Pin<Box<tokio::time::Sleep>>)>,
    remaining: u64,
}

impl PacedBody {
    fn new(body: Buffer, pace: Option<Arc<Pace>>, progress: Option<Arc<Progress>>) -> Self {
        let remaining = body.len() as u64;
        PacedBody { rest: body, current: Bytes::new(), pace, progress, waiting: None, remaining }
    }

    fn next_piece(&mut self) -> Option<Bytes> {
        while self.current.is_empty() {
            self.current = Iterator::next(&mut self.rest)?;
        }
        let n = self.current.len().min(PIECE);
        Some(self.current.split_to(n))
    }

    fn send(&mut self, piece: Bytes) -> Poll<Option<Result<http_body::Frame<Bytes>, std::convert::Infallible>>> {
        if let Some(p) = &self.progress {
            p.touch();
        }
        self.remaining = self.remaining.saturating_sub(piece.len() as u64);
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some((_, sleep)) = &mut self.waiting {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some((piece, _)) = self.waiting.take() {
                return self.send(piece);
            }
        }
        let Some(piece) = self.next_piece() else { return Poll::Ready(None) };
        if let Some(p) = &self.pace {
            let until = p.reserve(piece.len() as u64);
            if let Some(progress) = &self.progress {
                progress.touch_at(until);
            }
            if until > Instant::now() {
                let mut sleep = Box::pin(tokio::time::sleep_until(until.into()));
                if sleep.as_mut().poll(cx).is_pending() {
                    self.waiting = Some((piece, sleep));
                    return Poll::Pending;
                }
            }
        }
        self.send(piece)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // `remaining` counts a waiting piece until it is sent.
        http_body::SizeHint::with_exact(self.remaining)
    }
}
