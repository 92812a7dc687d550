//! The AWS side of mlops: clients built from the SDK's default credential chain (environment,
//! profile, web identity — the OIDC role a workflow assumes — or instance metadata), and S3
//! objects streamed to and from files.
//!
//! `AWS_ENDPOINT_URL` (the SDK's own setting) points every client elsewhere, e.g. at a local
//! emulator; S3 then uses path-style addressing, which such endpoints need.
//!
//! Errors are [`AwsError`]s: what failed, on which object, and what to do about it, without the
//! SDK's debug dumps (which can carry request ids and headers, never credentials).

use std::path::Path;

use aws_config::BehaviorVersion;

pub mod alarms;
mod call;
pub mod ecr;
pub mod endpoints;
mod job;
pub mod logs;
pub mod sagemaker;
pub mod transform;
pub mod tuning;

pub use alarms::{AlarmState, Alarms};
use aws_sdk_s3::error::ProvideErrorMetadata;
pub use ecr::{Ecr, Image, Login};
pub use endpoints::{Capacity, DataCapture, EndpointState, ModelSpec, ServedVariant};
pub use logs::Logs;
pub use sagemaker::{JobState, Package, PackageSpec, Poll, SageMaker, TrainingSpec};
pub use transform::{TransformSpec, TransformState};
pub use tuning::{TuningSpec, TuningState, TuningTrial};

/// An `s3://bucket/key` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket/key`; the key may be empty (a bucket or prefix).
    pub fn parse(text: &str) -> Result<Self, AwsError> {
        let rest = text.strip_prefix("s3://").ok_or_else(|| AwsError {
            message: format!("`{text}` is not an s3:// address"),
            hint: "write it as s3://BUCKET/KEY".to_owned(),
            kind: Kind::Invalid,
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(AwsError {
                message: format!("`{text}`: `{bucket}` is not a valid S3 bucket name"),
                hint: "bucket names are 3 to 63 lowercase letters, digits, dots and hyphens"
                    .to_owned(),
                kind: Kind::Invalid,
            });
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The last path segment of the key.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A failed AWS call, said plainly, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub message: String,
    pub hint: String,
    pub kind: Kind,
}

/// Whose problem an [`AwsError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The object or bucket named does not exist: the address is wrong.
    Missing,
    /// The address is not an S3 address.
    Invalid,
    /// Throttling, the service failing for now, the network: worth another attempt.
    Transient,
    /// Credentials, permissions, the service, the local disk.
    Other,
}

impl Kind {
    /// The user has to fix the address (exit 2); anything else is the environment's (exit 3).
    pub fn is_user(self) -> bool {
        matches!(self, Kind::Missing | Kind::Invalid)
    }
}

impl AwsError {
    fn other(message: String, hint: impl Into<String>) -> Self {
        Self {
            message,
            hint: hint.into(),
            kind: Kind::Other,
        }
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AwsError {}

pub(crate) const CREDENTIALS_HINT: &str = "give the AWS SDK credentials: in GitHub Actions assume the \
    project's role with aws-actions/configure-aws-credentials (OIDC); elsewhere set AWS_PROFILE \
    or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and AWS_REGION";

/// The error and its sources, each once, joined with ": " (the SDK's own `DisplayErrorContext`
/// ends with a debug dump of the whole error).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

const MISSING_KEY_HINT: &str = "check the key in the manifest (S3 keys are case-sensitive)";

/// No object at `uri`.
fn missing(uri: &S3Uri) -> AwsError {
    AwsError {
        message: format!("{uri} does not exist"),
        hint: MISSING_KEY_HINT.to_owned(),
        kind: Kind::Missing,
    }
}

/// Explains an SDK error on `what` (an object or bucket address).
fn explain<E>(what: &str, action: &str, e: aws_sdk_s3::error::SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    let code = e.code().map(str::to_owned);
    let kind = match code.as_deref() {
        Some("NoSuchKey" | "NotFound" | "NoSuchBucket") => Kind::Missing,
        _ => Kind::Other,
    };
    let (message, hint) = match (&e, code.as_deref()) {
        (_, Some("NoSuchKey" | "NotFound")) => (
            format!("{what} does not exist"),
            MISSING_KEY_HINT.to_owned(),
        ),
        (_, Some("NoSuchBucket")) => (
            format!("{what}: the bucket does not exist"),
            "check the bucket name, or create it (`mlops render` writes the Terraform for it)"
                .to_owned(),
        ),
        (
            _,
            Some("AccessDenied" | "Forbidden" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"),
        ) => (
            format!("{what}: access denied ({})", code.unwrap_or_default()),
            "the credentials in use may not read or write this object; check the role's policy \
             and which credentials are active (`aws sts get-caller-identity`)"
                .to_owned(),
        ),
        (SdkError::DispatchFailure(d), _) if d.is_io() || d.is_timeout() => (
            format!("cannot reach S3 to {action} {what}: {}", chain(&e)),
            "check the network, AWS_REGION and AWS_ENDPOINT_URL".to_owned(),
        ),
        (SdkError::DispatchFailure(_), _) => (
            format!("cannot {action} {what}: {}", chain(&e)),
            CREDENTIALS_HINT.to_owned(),
        ),
        _ => (
            format!("cannot {action} {what}: {}", chain(&e)),
            "run again; if it persists, check the AWS service health and the object".to_owned(),
        ),
    };
    AwsError {
        message,
        hint,
        kind,
    }
}

/// What an `InvokeEndpoint` call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// How an `InvokeEndpoint` call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The model container answered 4xx: it refuses the request.
    Refused { status: u16, message: String },
    /// Worth another attempt: throttling, the service or the container failing for now, the
    /// network.
    Transient(String),
    /// Not worth another attempt: no such endpoint, credentials, permissions.
    Fatal(String),
}

/// The SageMaker runtime (InvokeEndpoint) from the default configuration chain.
#[derive(Debug, Clone)]
pub struct SageMakerRuntime {
    client: aws_sdk_sagemakerruntime::Client,
}

impl SageMakerRuntime {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_client(aws_sdk_sagemakerruntime::Client::new(&config))
    }

    /// Over a client built elsewhere (tests build one over mocked responses).
    pub fn from_client(client: aws_sdk_sagemakerruntime::Client) -> Self {
        Self { client }
    }

    /// Posts `body` (of `content_type`, asking for `accept`) to the endpoint's model container;
    /// its answer.
    pub async fn invoke(
        &self,
        endpoint: &str,
        body: Vec<u8>,
        content_type: &str,
        accept: &str,
    ) -> Result<Invoked, InvokeError> {
        use aws_sdk_sagemakerruntime::error::SdkError;
        use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError as E;
        let sent = self
            .client
            .invoke_endpoint()
            .endpoint_name(endpoint)
            .content_type(content_type)
            .accept(accept)
            .body(aws_sdk_sagemakerruntime::primitives::Blob::new(body))
            .send()
            .await;
        let e = match sent {
            Ok(out) => {
                return Ok(Invoked {
                    content_type: out.content_type,
                    body: out.body.map(|b| b.into_inner()).unwrap_or_default(),
                });
            }
            Err(e) => e,
        };
        let text = chain(&e);
        Err(match &e {
            SdkError::ServiceError(service) => match service.err() {
                E::ModelError(m) => {
                    let status = m
                        .original_status_code()
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(500);
                    let message = m
                        .original_message()
                        .or(m.message())
                        .unwrap_or("the model container failed")
                        .to_owned();
                    if (400..500).contains(&status) && status != 429 {
                        InvokeError::Refused { status, message }
                    } else {
                        InvokeError::Transient(format!("{status}: {message}"))
                    }
                }
                E::ServiceUnavailable(_)
                | E::InternalFailure(_)
                | E::InternalDependencyException(_)
                | E::ModelNotReadyException(_) => InvokeError::Transient(text),
                other if other.code() == Some("ThrottlingException") => {
                    InvokeError::Transient(text)
                }
                _ => InvokeError::Fatal(text),
            },
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => InvokeError::Transient(text),
            _ => InvokeError::Fatal(text),
        })
    }
}

/// An S3 client from the default configuration chain.
#[derive(Debug, Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
}

impl S3 {
    /// Loads the SDK configuration (credentials, region, endpoint) the default way.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let path_style = config.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
        }
    }

    /// Streams the object at `uri` into `dest`, through a temporary file beside it renamed into
    /// place, so `dest` is whole or absent. Returns the bytes written.
    pub async fn download(&self, uri: &S3Uri, dest: &Path) -> Result<u64, AwsError> {
        use tokio::io::AsyncWriteExt;
        let local = |e: std::io::Error| {
            AwsError::other(
                format!("{}: {e}", dest.display()),
                "the working directory must be writable and have room for the dataset",
            )
        };
        let object = self.open(uri).await?.ok_or_else(|| missing(uri))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        let partial = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(local)?;
        let (file, partial_path) = partial.into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let mut body = object.body;
        let mut written = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            AwsError::other(format!("{uri}: the download broke off: {e}"), "run again")
        })? {
            out.write_all(&chunk).await.map_err(local)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(local)?;
        drop(out);
        partial_path.persist(dest).map_err(|e| local(e.error))?;
        Ok(written)
    }

    /// Starts reading the object at `uri`; `None` when there is none.
    async fn open(
        &self,
        uri: &S3Uri,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, AwsError> {
        match self
            .client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.code() == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(explain(&uri.to_string(), "read", e)),
        }
    }

    /// The object at `uri`, or `None` when there is none.
    pub async fn get(&self, uri: &S3Uri) -> Result<Option<Vec<u8>>, AwsError> {
        let Some(object) = self.open(uri).await? else {
            return Ok(None);
        };
        let bytes = object.body.collect().await.map_err(|e| {
            AwsError::other(format!("{uri}: the download broke off: {e}"), "run again")
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    /// Writes `body` to `uri`; with `if_absent`, only when no object is there (an S3
    /// conditional write). `false` when the condition kept it from being written.
    async fn write(
        &self,
        uri: &S3Uri,
        body: aws_sdk_s3::primitives::ByteStream,
        if_absent: bool,
    ) -> Result<bool, AwsError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .body(body);
        if if_absent {
            put = put.if_none_match("*");
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if if_absent
                    && matches!(
                        e.code(),
                        Some("PreconditionFailed" | "ConditionalRequestConflict")
                    ) =>
            {
                Ok(false)
            }
            Err(e) => Err(explain(&uri.to_string(), "write", e)),
        }
    }

    /// Writes `body` to `uri`, replacing what is there.
    pub async fn put(&self, uri: &S3Uri, body: Vec<u8>) -> Result<(), AwsError> {
        self.write(uri, body.into(), false).await.map(|_| ())
    }

    /// Writes `body` to `uri` only if no object is there (S3 conditional write); `false` when
    /// one was.
    pub async fn put_if_absent(&self, uri: &S3Uri, body: Vec<u8>) -> Result<bool, AwsError> {
        self.write(uri, body.into(), true).await
    }

    /// Every key under `prefix` in `bucket` (all pages).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| explain(&format!("s3://{bucket}/{prefix}"), "list", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// Whether an object is at `uri`.
    pub async fn exists(&self, uri: &S3Uri) -> Result<bool, AwsError> {
        match self
            .client
            .head_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            // Without s3:ListBucket, S3 answers a missing object with 403: take it as absent;
            // a real lack of permission shows on the write that follows.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => Ok(false),
            Err(e) => Err(explain(&uri.to_string(), "check", e)),
        }
    }

    /// Uploads the file at `src` to `uri`.
    pub async fn upload(&self, src: &Path, uri: &S3Uri) -> Result<(), AwsError> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(src)
            .await
            .map_err(|e| AwsError::other(format!("{}: {e}", src.display()), ""))?;
        self.write(uri, body, false).await.map(|_| ())
    }
}

/// The account the active credentials belong to (STS `GetCallerIdentity`).
pub async fn account_id() -> Result<String, AwsError> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let out = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| call::explain("STS", "the caller", "identify", &e))?;
    out.account().map(str::to_owned).ok_or_else(|| {
        AwsError::other(
            "STS did not say which account the credentials belong to".to_owned(),
            CREDENTIALS_HINT,
        )
    })
}

/// A runtime for the few AWS calls a command makes, on the calling thread.
pub fn runtime() -> Result<tokio::runtime::Runtime, AwsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AwsError::other(format!("cannot start the async runtime: {e}"), ""))
}

#[cfg(test)]
mod tests {

    /// InvokeEndpoint's errors sorted into refused (the container's 4xx), worth retrying, and
    /// fatal, against the SDK's own error types (aws-smithy-mocks answers in place of SageMaker).
    #[test]
    fn invoke_errors_are_sorted() {
        use aws_sdk_sagemakerruntime::Client;
        use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError as E;
        use aws_sdk_sagemakerruntime::types::error::{
            ModelError, ServiceUnavailable, ValidationError,
        };
        use aws_smithy_mocks::{mock, mock_client};

        let invoke = |rule: aws_smithy_mocks::Rule| {
            let client = mock_client!(aws_sdk_sagemakerruntime, [&rule]);
            runtime()
                .expect("runtime")
                .block_on(SageMakerRuntime::from_client(client).invoke(
                    "digits",
                    b"{}".to_vec(),
                    "application/json",
                    "application/json",
                ))
        };
        let refused = mock!(Client::invoke_endpoint).then_error(|| {
            E::ModelError(
                ModelError::builder()
                    .original_status_code(400)
                    .original_message("column `pixel_0` is missing")
                    .build(),
            )
        });
        assert_eq!(
            invoke(refused),
            Err(InvokeError::Refused {
                status: 400,
                message: "column `pixel_0` is missing".to_owned()
            })
        );
        let crashed = mock!(Client::invoke_endpoint)
            .then_error(|| E::ModelError(ModelError::builder().original_status_code(503).build()));
        assert!(matches!(invoke(crashed), Err(InvokeError::Transient(m)) if m.starts_with("503")));
        let unavailable = mock!(Client::invoke_endpoint)
            .then_error(|| E::ServiceUnavailable(ServiceUnavailable::builder().build()));
        assert!(matches!(
            invoke(unavailable),
            Err(InvokeError::Transient(_))
        ));
        let no_endpoint = mock!(Client::invoke_endpoint).then_error(|| {
            E::ValidationError(
                ValidationError::builder()
                    .message("Endpoint digits of account 123456789012 not found.")
                    .build(),
            )
        });
        assert!(
            matches!(invoke(no_endpoint), Err(InvokeError::Fatal(m)) if m.contains("not found")),
        );
        let answered = mock!(Client::invoke_endpoint).then_output(|| {
            aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointOutput::builder()
                .body(aws_sdk_sagemakerruntime::primitives::Blob::new(
                    b"{\"predictions\": []}".to_vec(),
                ))
                .content_type("application/json")
                .build()
        });
        assert_eq!(
            invoke(answered),
            Ok(Invoked {
                body: b"{\"predictions\": []}".to_vec(),
                content_type: Some("application/json".to_owned())
            })
        );
    }

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chains_read_as_one_sentence_without_repeats() {
        let e = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error: connection refused",
                Some(Box::new(Layer("connection refused", None))),
            ))),
        );
        assert_eq!(chain(&e), "dispatch failure: io error: connection refused");
    }

    #[test]
    fn s3_addresses_parse_and_print() {
        let u = S3Uri::parse("s3://my-bucket/data/digits-train.csv").expect("parses");
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.key, "data/digits-train.csv");
        assert_eq!(u.file_name(), "digits-train.csv");
        assert_eq!(u.to_string(), "s3://my-bucket/data/digits-train.csv");
        assert_eq!(S3Uri::parse("s3://bucket").expect("bare").key, "");
        for bad in [
            "data/x.csv",
            "s3://",
            "s3://ab/x",
            "s3://Upper/x",
            "s3://a_b/x",
        ] {
            let e = S3Uri::parse(bad).expect_err(bad);
            assert!(!e.hint.is_empty(), "{bad}");
            assert_eq!(e.kind, Kind::Invalid, "{bad}");
        }
    }
}

/// The trust policy of the IAM role `arn` (its `AssumeRolePolicyDocument`), decoded: IAM returns
/// it percent-encoded.
pub async fn role_trust_policy(arn: &str) -> Result<String, AwsError> {
    let name = arn.rsplit('/').next().unwrap_or(arn);
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let out = aws_sdk_iam::Client::new(&config)
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| call::explain("IAM", &format!("the role {name}"), "read", &e))?;
    let encoded = out
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .unwrap_or_default();
    percent_decode(encoded).ok_or_else(|| {
        AwsError::other(
            format!("the trust policy of {name} is not percent-encoded UTF-8"),
            "",
        )
    })
}

/// Decodes `%XX` escapes (IAM's policy documents); `None` for a broken escape or bytes that
/// are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let mut rest = text.as_bytes();
    let mut out = Vec::with_capacity(rest.len());
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let (pair, after) = tail.split_at_checked(2)?;
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?);
            rest = after;
        } else {
            out.push(b);
            rest = tail;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod percent_tests {
    use super::percent_decode;

    #[test]
    fn iam_documents_decode_and_broken_escapes_do_not() {
        assert_eq!(
            percent_decode("%7B%22Version%22%3A%222012-10-17%22%7D").as_deref(),
            Some("{\"Version\":\"2012-10-17\"}")
        );
        assert_eq!(percent_decode("plain {}").as_deref(), Some("plain {}"));
        assert_eq!(percent_decode("%7"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }
}
