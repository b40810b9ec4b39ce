//! Object stores through OpenDAL: S3 and any S3-compatible endpoint, or any other OpenDAL
//! service by scheme. This is the only file that knows OpenDAL and its tokio runtime; the rest
//! of cairn stays synchronous and calls the [`Backend`] trait from its own threads.
//!
//! Each call runs on a private multi-threaded runtime and fails when it makes no progress for
//! the timeout (`-o timeout=SECONDS`, default 120): a request body sent or a response body
//! received piece by piece counts as progress (`transport.rs`), so a slow uplink is not
//! a dead one. HTTP services go through cairn's own transport, which also paces transfers to
//! the bandwidth limits. OpenDAL errors are classified for the retry wrapper: not found,
//! transient (timeouts, connection failures, 5xx, throttling) or permanent (credentials,
//! permissions, a missing bucket, TLS failures).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opendal::{ErrorKind as OErrorKind, HttpTransporter, Operator};

use super::transport::{self, Progress, Transport, TransportFailure};
use super::{Backend, BackendError, BackendResult, ErrorKind, FileKind, Properties, StagedFile};
use crate::id::Id;

/// A repository in an object store.
pub struct OpendalBackend {
    op: Operator,
    rt: tokio::runtime::Runtime,
    location: String,
    /// A call fails after this long without progress.
    timeout: Duration,
    /// False when an S3 location was opened without credentials (messages then name the
    /// variables to set).
    has_credentials: bool,
    /// What this store is ([`Properties::S3`] or [`Properties::OPENDAL`]).
    properties: Properties,
}

/// Where an S3 repository lives, parsed from restic's spellings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// `https://host[:port]` or `http://host[:port]`.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the bucket root).
    pub prefix: String,
}

impl S3Location {
    /// Parse `s3:HOST[:PORT]/BUCKET[/PREFIX]` (https) or `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`.
    /// Errors name what is missing.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let rest = spec.strip_prefix("s3:").ok_or("an S3 repository starts with s3:")?;
        let (scheme, rest) = if let Some(r) = rest.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = rest.strip_prefix("http://") {
            ("http", r)
        } else {
            ("https", rest)
        };
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let bucket = parts.next().unwrap_or_default();
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        if host.is_empty() || bucket.is_empty() {
            return Err(format!(
                "{spec:?}: expected s3:HOST[:PORT]/BUCKET[/PREFIX] or s3:https://HOST[:PORT]/BUCKET[/PREFIX]"
            ));
        }
        Ok(S3Location {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

fn classify(e: &opendal::Error, full: &str) -> ErrorKind {
    if full.contains("NoSuchBucket") {
        // Not "no such file": the whole repository is unreachable until the bucket exists.
        return ErrorKind::Permanent;
    }
    if full.contains("BadDigest") || full.contains("XAmzContentChecksumMismatch") {
        // The upload checksum did not match what arrived: the bytes were damaged on the way,
        // and sending them again may well succeed.
        return ErrorKind::Transient;
    }
    match e.kind() {
        OErrorKind::NotFound => ErrorKind::NotFound,
        OErrorKind::RateLimited => ErrorKind::Transient,
        OErrorKind::PermissionDenied | OErrorKind::ConfigInvalid | OErrorKind::Unsupported => ErrorKind::Permanent,
        _ if e.is_temporary() => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// The deepest cause of `e`, as text.
fn deepest(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut deepest: Option<String> = None;
    let mut src = e.source();
    while let Some(s) = src {
        deepest = Some(s.to_string());
        src = s.source();
    }
    deepest
}

/// What to say when the request was refused or could not be signed and no credentials were
/// given.
const NO_CREDENTIALS: &str =
    "no credentials were given: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE for a profile in ~/.aws)";

/// A short account of an OpenDAL error: the transport's sentence, the service's error code or
/// the deepest cause, without the request dump OpenDAL's own text carries. `full` is the
/// error's debug text; `has_credentials` false adds which variables to set to a refusal.
fn summarize(e: &opendal::Error, full: &str, has_credentials: bool) -> String {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<TransportFailure>() {
            return match deepest(t) {
                Some(d) => format!("{}: {d}", t.sentence),
                None => t.sentence.clone(),
            };
        }
        src = s.source();
    }
    let refused = e.kind() == OErrorKind::PermissionDenied
        || ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"].iter().any(|c| full.contains(c));
    // Without credentials the signer may fail before any request is sent.
    if !has_credentials && (refused || full.contains("credential")) {
        return NO_CREDENTIALS.to_string();
    }
    for (code, say) in [
        ("NoSuchBucket", "the bucket does not exist: create it first (cairn does not create buckets), or correct the bucket name in the location"),
        ("InvalidAccessKeyId", "the access key is not known to the server (check AWS_ACCESS_KEY_ID)"),
        ("SignatureDoesNotMatch", "the request signature does not match (check AWS_SECRET_ACCESS_KEY)"),
        ("AccessDenied", "access denied (check the credentials and the bucket policy)"),
        ("SlowDown", "the server asks to slow down (throttled)"),
        ("BadDigest", "the server refused the upload: its checksum did not match the bytes that arrived (BadDigest)"),
    ] {
        if full.contains(code) {
            return say.to_string();
        }
    }
    let deepest = deepest(e);
    let kind = match e.kind() {
        OErrorKind::PermissionDenied => {
            "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy)".to_string()
        }
        OErrorKind::NotFound => "not found".to_string(),
        OErrorKind::RateLimited => "throttled by the server".to_string(),
        OErrorKind::Unexpected => "request failed".to_string(),
        k => format!("{k}"),
    };
    match (deepest, e.message()) {
        (Some(d), _) => format!("{kind}: {d}"),
        (None, m) if !m.is_empty() => format!("{kind}: {m}"),
        _ => kind,
    }
}

fn wrap_err(context: String, e: opendal::Error, has_credentials: bool) -> BackendError {
    let full = format!("{e:?}");
    BackendError { kind: classify(&e, &full), context, source: summarize(&e, &full, has_credentials).into() }
}

/// Variable `name`, non-empty: from `own` (a repository's own environment,
/// [`crate::backend::BackendOptions::environment`]), else from the process's.
fn env(own: &BTreeMap<String, String>, name: &str) -> Option<String> {
    own.get(name).cloned().or_else(|| std::env::var(name).ok()).filter(|v| !v.is_empty())
}

/// S3 credentials: an access key, its secret and an optional session token.
struct S3Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The variables that make up S3 credentials.
const CREDENTIAL_VARIABLES: [&str; 4] =
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"];

/// The S3 credentials and `AWS_PROFILE`. When `own` (a repository's own environment) sets
/// any of [`CREDENTIAL_VARIABLES`], all four come from `own` only, so that one account's key
/// never goes with another's secret, token or profile (a copy target's with its source's;
/// the caller refuses an incomplete pair in `own` while the process holds other keys, which
/// the S3 client's own search would take); else each variable as [`env`] finds it.
fn s3_credentials(own: &BTreeMap<String, String>) -> (Option<S3Keys>, Option<String>) {
    let set = |name: &str| own.get(name).filter(|v| !v.is_empty()).cloned();
    let own_any = CREDENTIAL_VARIABLES.iter().any(|v| set(v).is_some());
    let get = |name: &str| if own_any { set(name) } else { env(own, name) };
    let keys = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Some(S3Keys { access_key_id, secret_access_key, session_token: get("AWS_SESSION_TOKEN") })
        }
        _ => None,
    };
    (keys, get("AWS_PROFILE"))
}

impl OpendalBackend {
    fn with_operator(
        op: Operator,
        location: String,
        options: &HashMap<String, String>,
        limits: (Option<u64>, Option<u64>),
        has_credentials: bool,
        properties: Properties,
    ) -> crate::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("cairn-io")
            .build()
            .map_err(|e| crate::Error::internal(format!("cannot start the I/O runtime: {e}")))?;
        let timeout = match options.get("timeout") {
            Some(v) => Duration::from_secs(
                v.parse::<u64>()
                    .map_err(|_| crate::Error::usage(format!("backend option timeout={v}: expected whole seconds")))?,
            ),
            None => Duration::from_secs(120),
        };
        if timeout.is_zero() {
            return Err(crate::Error::usage("backend option timeout=0: expected at least 1 second"));
        }
        // HTTP services send through cairn's transport (progress, pacing, error classes).
        let transport = Transport::new(limits.0, limits.1).map_err(crate::Error::Internal)?;
        let ctx = op.context().with_http_transport(HttpTransporter::new(transport));
        let op = op.with_context(ctx);
        Ok(OpendalBackend { op, rt, location, timeout, has_credentials, properties })
    }

    /// An S3 repository. Credentials and region come from the standard AWS environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_DEFAULT_REGION`/`AWS_REGION`, `AWS_PROFILE`). Options (`-o`): `s3.region`,
    /// `s3.bucket-lookup` = `auto` (virtual-host style on amazonaws.com, path style elsewhere),
    /// `dns` or `path`; `s3.checksum` = `md5` (the default: each upload carries its
    /// `Content-MD5`, which the server checks before storing the object), `crc32c` (an
    /// `x-amz-checksum-crc32c` header) or `none`; `timeout` (seconds without progress before a
    /// call fails, default 120). `limits`: upload and download limits in KiB/s (`None`:
    /// unlimited). `environment`: the repository's own variables, looked up before the
    /// process's ([`crate::backend::BackendOptions::environment`]). Errors:
    /// [`crate::Error::Usage`] for a bad option value or configuration;
    /// [`crate::Error::Internal`] when the runtime or the HTTP client cannot start.
    pub fn s3(
        loc: &S3Location,
        options: &HashMap<String, String>,
        limits: (Option<u64>, Option<u64>),
        environment: &BTreeMap<String, String>,
    ) -> crate::Result<Self> {
        install_tls_provider();
        let region = options
            .get("s3.region")
            .cloned()
            .or_else(|| env(environment, "AWS_DEFAULT_REGION"))
            .or_else(|| env(environment, "AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut b = opendal::services::S3::default()
            .bucket(&loc.bucket)
            .endpoint(&loc.endpoint)
            .region(&region)
            .root(&format!("/{}", loc.prefix));
        let mut has_credentials = false;
        let (keys, profile) = s3_credentials(environment);
        // The S3 client's own search would take the process's keys before a profile that a
        // repository's own environment names (another repository's keys: a copy's source).
        let own_sets_some = CREDENTIAL_VARIABLES.iter().any(|v| environment.get(*v).is_some_and(|x| !x.is_empty()));
        if own_sets_some && keys.is_none() && std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
            return Err(crate::Error::usage(
                "this repository's environment file sets AWS credentials but no AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY pair, while the environment holds another AWS_ACCESS_KEY_ID: give the pair \
                 in the environment file",
            ));
        }
        if let Some(k) = keys {
            has_credentials = true;
            b = b.access_key_id(&k.access_key_id).secret_access_key(&k.secret_access_key);
            if let Some(t) = &k.session_token {
                b = b.session_token(t);
            }
        }
        if let Some(p) = profile {
            has_credentials = true;
            b = b.profile(&p);
        }
        let lookup = options.get("s3.bucket-lookup").map(String::as_str).unwrap_or("auto");
        let virtual_host = match lookup {
            "dns" => true,
            "path" => false,
            "auto" => loc.endpoint.ends_with(".amazonaws.com"),
            other => {
                return Err(crate::Error::usage(format!(
                    "backend option s3.bucket-lookup={other}: expected auto, dns or path"
                )))
            }
        };
        if virtual_host {
            b = b.enable_virtual_host_style();
        }
        match options.get("s3.checksum").map(String::as_str).unwrap_or("md5") {
            "none" => {}
            c @ ("md5" | "crc32c") => b = b.checksum_algorithm(c),
            other => {
                return Err(crate::Error::usage(format!(
                    "backend option s3.checksum={other}: expected md5, crc32c or none"
                )))
            }
        }
        let op = Operator::new(b).map_err(|e| crate::Error::usage(format!("S3 configuration: {e}")))?;
        let location = format!("s3:{}/{}/{}", loc.endpoint, loc.bucket, loc.prefix).trim_end_matches('/').to_string();
        Self::with_operator(op, location, options, limits, has_credentials, Properties::S3)
    }

    /// Any OpenDAL service by scheme (`opendal:fs`, `opendal:gcs`...), configured entirely by
    /// `-o key=value` options as that service documents them. `limits` (KiB/s) pace the
    /// services that speak HTTP. Errors: as [`OpendalBackend::s3`].
    pub fn scheme(
        scheme: &str,
        options: &HashMap<String, String>,
        limits: (Option<u64>, Option<u64>),
    ) -> crate::Result<Self> {
        install_tls_provider();
        let cfg: Vec<(String, String)> = options
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "timeout" | "connections" | "retries"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let op = Operator::via_iter(scheme, cfg).map_err(|e| crate::Error::usage(format!("opendal:{scheme}: {e}")))?;
        Self::with_operator(op, format!("opendal:{scheme}"), options, limits, true, Properties::OPENDAL)
    }

    /// Run one OpenDAL call on the runtime; it fails when it makes no progress (no piece of
    /// a body sent or received, no answer) for the timeout, however long it runs in all.
    fn run<T>(
        &self,
        context: impl Fn() -> String,
        f: impl std::future::IntoFuture<Output = opendal::Result<T>>,
    ) -> BackendResult<T> {
        let progress = Progress::new();
        let outcome = self.rt.block_on(async {
            let mut call = Box::pin(transport::scoped(progress.clone(), f.into_future()));
            loop {
                let deadline = progress.last() + self.timeout;
                match tokio::time::timeout_at(deadline.into(), call.as_mut()).await {
                    Ok(r) => break Some(r),
                    Err(_) if progress.last() + self.timeout <= Instant::now() => break None,
                    Err(_) => {} // progress meanwhile: wait on
                }
            }
        });
        match outcome {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(wrap_err(format!("{} on {}", context(), self.location), e, self.has_credentials)),
            None => Err(BackendError {
                kind: ErrorKind::Transient,
                context: format!("{} on {}", context(), self.location),
                source: format!("no progress for {} s: the storage stopped answering", self.timeout.as_secs()).into(),
            }),
        }
    }

    /// After a "not found" for the config: a missing bucket is said as such (a permanent
    /// error), not taken for a missing repository.
    fn check_bucket(&self) -> BackendResult<()> {
        match self.run(|| "list keys/".to_string(), self.op.list_with("keys/").limit(1)) {
            Err(e) if e.kind == ErrorKind::Permanent => Err(e),
            _ => Ok(()),
        }
    }
}

/// rustls needs one process-wide crypto provider; cairn uses ring.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn properties(&self) -> Properties {
        self.properties
    }

    fn create(&self) -> BackendResult<()> {
        // Object stores have no directories to make; check the bucket answers.
        let probe = self.run(|| format!("list {}", self.location), self.op.list_with("keys/").limit(1));
        match probe {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if self.exists(FileKind::Config, &super::CONFIG_ID)? {
            return Err(BackendError {
                kind: ErrorKind::Permanent,
                context: format!("create repository at {}", self.location),
                source: "a config file already exists".into(),
            });
        }
        Ok(())
    }

    fn write_bytes(&self, kind: FileKind, id: &Id, data: Bytes) -> BackendResult<()> {
        let path = kind.path(id);
        // A PUT is atomic: the object is visible complete or not at all. The bytes go as they
        // are (a `Buffer` over the same allocation), with their checksum when configured.
        self.run(|| format!("write {path}"), self.op.write(&path, data)).map(|_| ())
    }

    fn read(&self, kind: FileKind, id: &Id) -> BackendResult<Vec<u8>> {
        let path = kind.path(id);
        self.run(|| format!("read {path}"), self.op.read(&path)).map(|b| b.to_vec())
    }

    fn read_range(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let path = kind.path(id);
        let ctx = || format!("read {length} bytes at {offset} of {path}");
        let end = offset.checked_add(length).ok_or_else(|| BackendError {
            kind: ErrorKind::Permanent,
            context: ctx(),
            source: "range overflows".into(),
        })?;
        let data = self.run(ctx, self.op.read_with(&path).range(offset..end))?.to_vec();
        if data.len() as u64 != length {
            return Err(BackendError {
                kind: ErrorKind::Corrupt,
                context: ctx(),
                source: format!("got {} bytes: the object is shorter", data.len()).into(),
            });
        }
        Ok(data)
    }

    fn list_names(&self, kind: FileKind) -> BackendResult<Vec<(String, u64)>> {
        if kind == FileKind::Config {
            return Ok(if self.exists(kind, &super::CONFIG_ID)? { vec![("config".into(), 0)] } else { vec![] });
        }
        let dir = format!("{}/", kind.dir());
        let entries = match self.run(|| format!("list {dir}"), self.op.list_with(&dir).recursive(true)) {
            Ok(e) => e,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .filter_map(|e| {
                super::listed_name(e.name().trim_end_matches('/')).map(|n| (n, e.metadata().content_length()))
            })
            .collect())
    }

    fn remove(&self, kind: FileKind, id: &Id) -> BackendResult<()> {
        let path = kind.path(id);
        match self.run(|| format!("remove {path}"), self.op.delete(&path)) {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn exists(&self, kind: FileKind, id: &Id) -> BackendResult<bool> {
        let path = kind.path(id);
        match self.run(|| format!("stat {path}"), self.op.stat(&path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => {
                if kind == FileKind::Config {
                    self.check_bucket()?;
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn read_range_cached(&self, kind: FileKind, id: &Id, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        // Keeping tree packs locally is the cache wrapper's job.
        self.read_range(kind, id, offset, length)
    }

    /// Objects are written whole (one PUT each): nothing to stage.
    fn stage(&self, _kind: FileKind) -> BackendResult<Option<Box<dyn StagedFile>>> {
        Ok(None)
    }

    /// A PUT leaves no temporary object behind: nothing to remove.
    fn remove_stale_temporaries(&self, _age: std::time::Duration) -> BackendResult<(u64, u64)> {
        Ok((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_as_restic_spells_them() {
        let l = S3Location::parse("s3:s3.eu-central-1.amazonaws.com/acme-backups/mail1").unwrap();
        assert_eq!(
            l,
            S3Location {
                endpoint: "https://s3.eu-central-1.amazonaws.com".into(),
                bucket: "acme-backups".into(),
                prefix: "mail1".into()
            }
        );
        let l = S3Location::parse("s3:http://127.0.0.1:9000/backups/mail1/deep/").unwrap();
        assert_eq!(
            l,
            S3Location {
                endpoint: "http://127.0.0.1:9000".into(),
                bucket: "backups".into(),
                prefix: "mail1/deep".into()
            }
        );
        let l = S3Location::parse("s3:https://nyc3.digitaloceanspaces.com/b").unwrap();
        assert_eq!(l.prefix, "");
        assert!(S3Location::parse("s3:host-only").is_err());
        assert!(S3Location::parse("s3:").is_err());
    }

    #[test]
    fn a_repositorys_own_key_pair_goes_with_its_own_token_and_profile_only() {
        // Whatever the process's AWS_* variables are, a pair in the repository's own
        // environment is taken with that environment's token (or none) and profile (or none).
        let own: BTreeMap<String, String> = [("AWS_ACCESS_KEY_ID", "AKIDTARGET"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (keys, profile) = s3_credentials(&own);
        let keys = keys.unwrap();
        assert_eq!((keys.access_key_id.as_str(), keys.secret_access_key.as_str()), ("AKIDTARGET", "s3cr3t"));
        assert_eq!(keys.session_token, None);
        assert_eq!(profile, None);
        let mut with_token = own.clone();
        with_token.insert("AWS_SESSION_TOKEN".into(), "tok".into());
        assert_eq!(s3_credentials(&with_token).0.unwrap().session_token.as_deref(), Some("tok"));
        // An own value wins over the process's for any variable, and an empty one is none.
        let region: BTreeMap<String, String> = [("AWS_REGION".to_string(), "eu-west-3".to_string())].into();
        assert_eq!(env(&region, "AWS_REGION").as_deref(), Some("eu-west-3"));
        let empty: BTreeMap<String, String> = [("AWS_REGION".to_string(), String::new())].into();
        assert_eq!(env(&empty, "AWS_REGION"), None);
    }
}
