//! Calls to a prediction service: `POST <endpoint>/invocations` (or a V2 model's `/infer`) over
//! HTTP(S), or SageMaker's `InvokeEndpoint`, in one of the [`Protocol`]s, with a timeout per
//! attempt and retries with exponential backoff on connection errors, timeouts, throttling (429)
//! and server errors (5xx).

use crate::protocol::{Metadata, Protocol};
use mlops_artifacts::service::ServiceVersion;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How a call failed for good.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The service answered 4xx (not 429): it refuses what the model should accept.
    Refused { status: u16, message: String },
    /// The service is down or kept failing (after the retries).
    Unavailable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused { status, message } => {
                write!(f, "the service refused a batch with {status}: {message}")
            }
            CallError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// Timeouts and retries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The first backoff; doubled each retry, with jitter, capped at 10 s (`mlops_aws::Poll`).
    pub backoff: Duration,
    /// The largest answer read (a service that streams without end is cut off there).
    pub max_answer_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_millis(100),
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

/// An HTTP(S) prediction service.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The service's base URL, without a trailing `/` (`/version` and `/metrics` are beside it).
    base: String,
    /// Where batches are posted: `/invocations`, or a V2 model's `/infer`.
    invocations: hyper::Uri,
    protocol: Protocol,
    pub policy: Policy,
}

/// A successful answer: its body and its media type.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// From sending the request to its whole answer (the attempt that succeeded).
    pub latency: Duration,
}

/// The default largest answer: far over what any batch's predictions take (a class name and
/// probabilities per row), far under what would exhaust a runner's memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The largest `/version` document read.
const MAX_VERSION_BYTES: usize = 1024 * 1024;

/// An answer over the limit: not retried (the service would send it again).
#[derive(Debug)]
struct TooLarge(usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the answer is over {} bytes, far more than predictions take; is this a prediction \
             service?",
            self.0
        )
    }
}

impl std::error::Error for TooLarge {}

/// Reads a body up to `limit` bytes; over it, [`TooLarge`].
async fn read_bounded(
    body: hyper::body::Incoming,
    limit: usize,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(TooLarge(limit))),
        Err(e) => Err(e),
    }
}

/// What one attempt gave.
enum Attempt {
    Done(Reply),
    Retry(String),
    Fail(CallError),
}

impl Http {
    /// A client of the mlops service at `endpoint` (its base URL; `/invocations` is appended).
    pub fn new(endpoint: &str, policy: Policy) -> Result<Self, String> {
        Self::speaking(endpoint, Protocol::Mlops, "", policy)
    }

    /// A client speaking `protocol` to the service at `endpoint`: its base URL, where
    /// `/invocations` is appended; with V2 also a model's URL (`.../v2/models/NAME`, optionally
    /// `/versions/V`), else `/v2/models/{model}` is appended to the base.
    pub fn speaking(
        endpoint: &str,
        protocol: Protocol,
        model: &str,
        policy: Policy,
    ) -> Result<Self, String> {
        let given = endpoint.trim_end_matches('/');
        let (base, post) = match protocol {
            Protocol::V2 => match given.find("/v2/models/") {
                Some(at) => (given.get(..at).unwrap_or(given), format!("{given}/infer")),
                None if model.is_empty() => {
                    return Err(format!(
                        "`{endpoint}` names no V2 model: give its URL, e.g. {given}/v2/models/NAME"
                    ));
                }
                None => (given, format!("{given}/v2/models/{model}/infer")),
            },
            _ => (given, format!("{given}/invocations")),
        };
        let invocations: hyper::Uri = post
            .parse()
            .map_err(|e| format!("`{endpoint}` is not a URL: {e}"))?;
        match invocations.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!("`{endpoint}` is not an http:// or https:// URL"));
            }
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(policy.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self {
            client,
            base: base.to_owned(),
            invocations,
            protocol,
            policy,
        })
    }

    pub fn endpoint(&self) -> String {
        self.invocations.to_string()
    }

    /// A V2 model's metadata (`GET .../v2/models/NAME`): which input tensor it takes.
    pub async fn v2_metadata(&self) -> Result<Metadata, String> {
        let model = self
            .invocations
            .path()
            .trim_end_matches("/infer")
            .to_owned();
        let model = model
            .strip_prefix(self.base_path())
            .unwrap_or(&model)
            .to_owned();
        let (shown, body) = self.get(&model, MAX_VERSION_BYTES).await?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("{shown}: not a V2 model's metadata: {e}"))
    }

    /// The path part of the base URL (empty for a service at the root).
    fn base_path(&self) -> &str {
        self.base
            .find("://")
            .and_then(|s| self.base.get(s + 3..))
            .and_then(|rest| rest.find('/').and_then(|p| rest.get(p..)))
            .unwrap_or("")
    }

    /// The service's `GET /version` document, when it has one (an mlops service does): which
    /// model and artifact it serves.
    pub async fn version(&self) -> Option<ServiceVersion> {
        self.version_or_why().await.ok()
    }

    /// `GET /version`, or what went wrong (no connection, a status, not JSON, too slow), for a
    /// caller that waits for a rollout and must say what it saw.
    pub async fn version_or_why(&self) -> Result<ServiceVersion, String> {
        let (shown, body) = self.get("/version", MAX_VERSION_BYTES).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{shown}: not a version document: {e}"))
    }

    /// The service's `GET /metrics` (Prometheus text), or what went wrong.
    pub async fn metrics(&self) -> Result<String, String> {
        let (shown, body) = self.get("/metrics", MAX_VERSION_BYTES).await?;
        String::from_utf8(body.to_vec()).map_err(|_| format!("{shown}: not UTF-8 text"))
    }

    /// `GET path` beside `/invocations`, its body read up to `limit` bytes, within the policy's
    /// timeout; the URL as shown and the body, or what went wrong.
    async fn get(&self, path: &str, limit: usize) -> Result<(String, Bytes), String> {
        let uri: hyper::Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| format!("not a URL: {e}"))?;
        let shown = uri.to_string();
        let request = hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("no answer from {shown}: {}", chain(&e)))?;
            let status = response.status();
            let body = read_bounded(response.into_body(), limit)
                .await
                .map_err(|e| format!("{shown}: {e}"))?;
            if !status.is_success() {
                return Err(format!("{shown} answered {status}"));
            }
            Ok(body)
        };
        let body = tokio::time::timeout(self.policy.timeout, call)
            .await
            .map_err(|_| format!("{shown}: no answer within {:?}", self.policy.timeout))??;
        Ok((shown, body))
    }

    async fn attempt(&self, body: Bytes) -> Attempt {
        let request = hyper::Request::post(self.invocations.clone())
            .header("content-type", self.protocol.content_type())
            .header("accept", self.protocol.accept())
            .body(Full::new(body));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Attempt::Fail(CallError::Unavailable(e.to_string())),
        };
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_bounded(response.into_body(), self.policy.max_answer_bytes).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body, content_type))
        };
        match tokio::time::timeout(self.policy.timeout, call).await {
            Err(_) => Attempt::Retry(format!(
                "no answer within {} s",
                self.policy.timeout.as_secs_f64()
            )),
            Ok(Err(e)) if e.is::<TooLarge>() => {
                Attempt::Fail(CallError::Unavailable(format!("{}: {e}", self.endpoint())))
            }
            Ok(Err(e)) => Attempt::Retry(chain(e.as_ref())),
            Ok(Ok((200..=299, body, content_type))) => Attempt::Done(Reply {
                body,
                content_type,
                latency: Duration::ZERO,
            }),
            Ok(Ok((status, body, _))) => {
                let message = service_message(&body);
                if status == 429 || status >= 500 {
                    Attempt::Retry(format!("{status}: {message}"))
                } else {
                    Attempt::Fail(CallError::Refused { status, message })
                }
            }
        }
    }
}

/// A SageMaker endpoint, called through `InvokeEndpoint`.
#[derive(Debug, Clone)]
pub struct SageMaker {
    runtime: mlops_aws::SageMakerRuntime,
    name: String,
    protocol: Protocol,
    pub policy: Policy,
}

impl SageMaker {
    pub fn new(runtime: mlops_aws::SageMakerRuntime, name: &str, policy: Policy) -> Self {
        Self {
            runtime,
            name: name.to_owned(),
            protocol: Protocol::Mlops,
            policy,
        }
    }

    /// The same endpoint, sent `protocol`'s bodies.
    pub fn speaking(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    async fn attempt(&self, body: Bytes) -> Attempt {
        let call = self.runtime.invoke(
            &self.name,
            body.to_vec(),
            self.protocol.content_type(),
            self.protocol.accept(),
        );
        match tokio::time::timeout(self.policy.timeout, call).await {
            Err(_) => Attempt::Retry(format!(
                "no answer within {} s",
                self.policy.timeout.as_secs_f64()
            )),
            Ok(Ok(answer)) => Attempt::Done(Reply {
                body: Bytes::from(answer.body),
                content_type: answer.content_type,
                latency: Duration::ZERO,
            }),
            Ok(Err(mlops_aws::InvokeError::Refused { status, message })) => {
                Attempt::Fail(CallError::Refused { status, message })
            }
            Ok(Err(mlops_aws::InvokeError::Transient(m))) => Attempt::Retry(m),
            Ok(Err(mlops_aws::InvokeError::Fatal(m))) => Attempt::Fail(CallError::Unavailable(
                format!("InvokeEndpoint on `{}` failed: {m}", self.name),
            )),
        }
    }
}

/// The service under test.
#[derive(Debug, Clone)]
pub enum Service {
    Http(Box<Http>),
    SageMaker(SageMaker),
}

impl Service {
    fn policy(&self) -> Policy {
        match self {
            Service::Http(h) => h.policy,
            Service::SageMaker(s) => s.policy,
        }
    }

    /// What the reports call it.
    pub fn endpoint(&self) -> String {
        match self {
            Service::Http(h) => h.endpoint(),
            Service::SageMaker(s) => format!("sagemaker:{}", s.name),
        }
    }

    /// The service's `/version` document (SageMaker endpoints expose only `/invocations`).
    pub async fn version(&self) -> Option<ServiceVersion> {
        match self {
            Service::Http(h) => h.version().await,
            Service::SageMaker(_) => None,
        }
    }

    async fn attempt(&self, body: Bytes) -> Attempt {
        match self {
            Service::Http(h) => h.attempt(body).await,
            Service::SageMaker(s) => s.attempt(body).await,
        }
    }

    /// Sends `body`, retrying as the policy says; the response body on success. `retried` counts
    /// the retries made.
    pub async fn call(
        &self,
        body: Bytes,
        retried: &std::sync::atomic::AtomicU64,
    ) -> Result<Reply, CallError> {
        let policy = self.policy();
        // The backoff mlops polls with everywhere: doubling from `backoff` up to 10 s, each wait
        // drawn from its upper half, so that clients that failed together do not retry together.
        let backoff = mlops_aws::Poll {
            first: policy.backoff,
            max: Duration::from_secs(10),
            failures: 0,
        };
        let mut last = String::new();
        for attempt in 0..=policy.retries {
            if attempt > 0 {
                retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(backoff.delay(attempt - 1)).await;
            }
            let sent = std::time::Instant::now();
            match self.attempt(body.clone()).await {
                Attempt::Done(mut b) => {
                    b.latency = sent.elapsed();
                    return Ok(b);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => last = why,
            }
        }
        Err(CallError::Unavailable(format!(
            "{} failed {} times; the last time: {last}",
            self.endpoint(),
            policy.retries + 1
        )))
    }
}

/// The `error` field of a JSON error body, or the start of the body.
fn service_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = v.get("error").and_then(|m| m.as_str())
    {
        return m.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// The error and its sources, joined (hyper's top-level messages alone say little).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_messages_come_from_the_error_field() {
        assert_eq!(
            service_message(br#"{"error": "column `x` is missing"}"#),
            "column `x` is missing"
        );
        assert_eq!(service_message(b"  bad gateway \n"), "bad gateway");
        assert_eq!(service_message(&[b'a'; 400]).chars().count(), 301);
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(Http::new("ftp://example.com", Policy::default()).is_err());
        assert!(Http::new("not a url", Policy::default()).is_err());
        let h = Http::new("http://127.0.0.1:8080/", Policy::default()).expect("valid");
        assert_eq!(h.endpoint(), "http://127.0.0.1:8080/invocations");
    }

    #[test]
    fn v2_endpoints_name_a_model_or_get_the_registered_one() {
        let p = Policy::default();
        let h = Http::speaking("http://h:9/serve/", Protocol::V2, "iris", p).expect("base");
        assert_eq!(h.endpoint(), "http://h:9/serve/v2/models/iris/infer");
        assert_eq!(h.base_path(), "/serve");
        let h = Http::speaking("http://h:9/v2/models/m/versions/2", Protocol::V2, "iris", p)
            .expect("model URL");
        assert_eq!(h.endpoint(), "http://h:9/v2/models/m/versions/2/infer");
        assert_eq!(h.base, "http://h:9");
        assert_eq!(h.base_path(), "");
        let m = Http::speaking("http://h:9", Protocol::V2, "", p).expect_err("no model");
        assert!(m.contains("/v2/models/NAME"), "{m}");
        let h = Http::speaking("http://h:9", Protocol::Mlflow, "iris", p).expect("mlflow");
        assert_eq!(h.endpoint(), "http://h:9/invocations");
    }
}
