//! ECR: a training image named by tag resolved to the digest a job is launched with, its scan
//! findings, and the registry login `mlops image push` hands to docker.

use std::collections::BTreeMap;

use aws_config::BehaviorVersion;
use aws_sdk_ecr::types::ImageIdentifier;

use crate::call::explain;
use crate::{AwsError, Kind};

/// An image in ECR, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    /// The tag it was named by, when it was.
    pub tag: Option<String>,
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@DIGEST`: what a job runs.
    pub uri: String,
    /// The manifest's media type (`application/vnd.docker.distribution.manifest.v2+json`, or an
    /// OCI type, which SageMaker refuses), when ECR says.
    pub media_type: Option<String>,
}

/// Docker's media type for one image: the manifest SageMaker accepts.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry login: the host, the user (`AWS`) and a 12-hour password, which `Debug` hides.
#[derive(Clone)]
pub struct Login {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// ECR from the default configuration chain.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
}

impl Ecr {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_client(aws_sdk_ecr::Client::new(&config))
    }

    pub fn from_client(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }

    /// The image `repository:tag` (or `repository@digest`) as its digest and pullable URI. A
    /// missing repository or image is a [`Kind::Missing`] error naming both.
    pub async fn resolve(
        &self,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Image, AwsError> {
        let base = self.repository_uri(repository).await?;
        self.image(&base, repository, tag, digest)
            .await?
            .ok_or_else(|| AwsError {
                message: format!(
                    "the ECR repository `{repository}` has no image {}",
                    tag.map_or_else(
                        || format!("with digest {}", digest.unwrap_or_default()),
                        |t| format!("tagged `{t}`")
                    )
                ),
                hint: "push the model image (`mlops image push`; the train workflow runs it), or \
                       fix training.sagemaker.image in the manifest"
                    .to_owned(),
                kind: Kind::Missing,
            })
    }

    /// The repository's URI, `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY`. A missing
    /// repository is a [`Kind::Missing`] error naming it.
    pub async fn repository_uri(&self, repository: &str) -> Result<String, AwsError> {
        let missing = || AwsError {
            message: format!("the ECR repository `{repository}` does not exist"),
            hint: "create it with the Terraform `mlops render` writes (terraform/ecr.tf), and \
                   check AWS_REGION"
                .to_owned(),
            kind: Kind::Missing,
        };
        let repo = self
            .client
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .map_err(|e| {
                let err = explain("ECR", repository, "find the repository", &e);
                if err.kind == Kind::Missing {
                    missing()
                } else {
                    err
                }
            })?;
        repo.repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .map(str::to_owned)
            .ok_or_else(missing)
    }

    /// The image in the repository at `base` (its URI) by digest, else by tag (`latest` without
    /// either); `None` when there is no such image.
    pub async fn image(
        &self,
        base: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Option<Image>, AwsError> {
        let (named, id) = match (tag, digest) {
            (_, Some(d)) => (
                format!("{repository}@{d}"),
                ImageIdentifier::builder().image_digest(d).build(),
            ),
            (t, None) => {
                let t = t.unwrap_or("latest");
                (
                    format!("{repository}:{t}"),
                    ImageIdentifier::builder().image_tag(t).build(),
                )
            }
        };
        let sent = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await;
        let found = match sent {
            Ok(found) => found,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_image_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(explain("ECR", &named, "find the image", &e)),
        };
        Ok(found.image_details().first().and_then(|d| {
            let digest = d.image_digest()?.to_owned();
            Some(Image {
                repository: repository.to_owned(),
                tag: tag.map(str::to_owned),
                uri: format!("{base}@{digest}"),
                digest,
                media_type: d.image_manifest_media_type().map(str::to_owned),
            })
        }))
    }

    /// A registry login for `docker login --password-stdin` (GetAuthorizationToken), valid for
    /// 12 hours.
    pub async fn login(&self) -> Result<Login, AwsError> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| explain("ECR", "the registry", "get a login token for", &e))?;
        let invalid = |what: &str| AwsError {
            message: format!("ECR answered GetAuthorizationToken with {what}"),
            hint: "retry; if it persists, check the region's ECR endpoint".to_owned(),
            kind: Kind::Other,
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| invalid("no authorization data"))?;
        let token = data
            .authorization_token()
            .and_then(|t| aws_smithy_types::base64::decode(t).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid("a token that is not base64 text"))?;
        let (username, password) = token
            .split_once(':')
            .ok_or_else(|| invalid("a token without `user:password`"))?;
        let endpoint = data
            .proxy_endpoint()
            .ok_or_else(|| invalid("no registry endpoint"))?;
        let registry = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Ok(Login {
            registry,
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The image's scan findings by severity (`CRITICAL`, `HIGH`, ...); `None` when the image
    /// was never scanned.
    pub async fn findings(&self, image: &Image) -> Result<Option<BTreeMap<String, i32>>, AwsError> {
        let sent = self
            .client
            .describe_image_scan_findings()
            .repository_name(&image.repository)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(&image.digest)
                    .build(),
            )
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Some(
                out.image_scan_findings()
                    .and_then(|f| f.finding_severity_counts())
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), *v))
                    .collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_scan_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(explain(
                "ECR",
                &format!("{}@{}", image.repository, image.digest),
                "read the scan findings of",
                &e,
            )),
        }
    }
}
