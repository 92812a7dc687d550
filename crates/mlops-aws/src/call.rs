//! How a failed call to SageMaker or ECR is told to the user: which of [`Kind`] it is (so the
//! caller knows whether to retry, and which exit code it is), what failed, and what to do.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::{AwsError, CREDENTIALS_HINT, Kind, chain};

/// Error codes that mean "slow down" or "the service failed for now": worth another attempt.
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServerException",
];

/// Error codes of credentials that are missing, wrong or expired.
const CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];

/// Error codes of an address that names nothing.
const MISSING: &[&str] = &[
    "ResourceNotFound",
    "ResourceNotFoundException",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "ScanNotFoundException",
];

/// `err` when it is anything but a missing resource; `absent` when the resource is missing (a
/// describe call used to ask whether something exists).
pub(crate) fn or_absent<T>(err: AwsError, absent: T) -> Result<T, AwsError> {
    if err.kind == Kind::Missing {
        Ok(absent)
    } else {
        Err(err)
    }
}

/// Explains a failed `action` (e.g. "create the training job") on `what` (its name).
pub(crate) fn explain<E>(service: &str, what: &str, action: &str, e: &SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or_default();
    let said = e.message().unwrap_or_default();
    let text = if said.is_empty() {
        chain(e)
    } else {
        said.to_owned()
    };
    let made = |kind: Kind, message: String, hint: &str| AwsError {
        message,
        hint: hint.to_owned(),
        kind,
    };
    if MISSING.contains(&code) || (code == "ValidationException" && names_nothing(said)) {
        return made(
            Kind::Missing,
            format!("{service}: cannot {action} `{what}`: {text}"),
            "check the name in the manifest and the AWS region (AWS_REGION)",
        );
    }
    if TRANSIENT.contains(&code) {
        return made(
            Kind::Transient,
            format!("{service} is busy or failing ({code}): cannot {action} `{what}`: {text}"),
            "it was retried with backoff; run again later, or check the AWS service health",
        );
    }
    if CREDENTIALS.contains(&code) {
        return made(
            Kind::Other,
            format!("{service} refused the credentials ({code}): cannot {action} `{what}`"),
            CREDENTIALS_HINT,
        );
    }
    if code == "AccessDeniedException" || code == "AccessDenied" {
        return made(
            Kind::Other,
            format!("{service}: access denied: cannot {action} `{what}`: {text}"),
            "the role in use lacks this permission: check the policy that `mlops render` wrote \
             for it, and which role is active (`aws sts get-caller-identity`)",
        );
    }
    if code == "ValidationException" {
        return made(
            Kind::Invalid,
            format!("{service} refused to {action} `{what}`: {text}"),
            "fix the value it names in the manifest",
        );
    }
    match e {
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => made(
            Kind::Transient,
            format!("cannot reach {service} to {action} `{what}`: {}", chain(e)),
            "check the network, AWS_REGION and AWS_ENDPOINT_URL",
        ),
        SdkError::DispatchFailure(_) => made(
            Kind::Other,
            format!("cannot {action} `{what}`: {}", chain(e)),
            CREDENTIALS_HINT,
        ),
        _ if e
            .raw_response()
            .is_some_and(|r| r.status().is_server_error()) =>
        {
            made(
                Kind::Transient,
                format!(
                    "{service} failed (HTTP {}): cannot {action} `{what}`",
                    e.raw_response().map_or(0, |r| r.status().as_u16())
                ),
                "it was retried with backoff; run again later, or check the AWS service health",
            )
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => made(
            Kind::Transient,
            format!(
                "{service} did not answer properly: cannot {action} `{what}`: {}",
                chain(e)
            ),
            "run again; if it persists, check the AWS service health",
        ),
        _ => made(
            Kind::Other,
            format!("cannot {action} `{what}`: {text}"),
            "run again; if it persists, check the AWS service health",
        ),
    }
}

/// SageMaker says "not found" with a ValidationException on many Describe calls.
fn names_nothing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") || m.contains("could not find") || m.contains("does not exist")
}
