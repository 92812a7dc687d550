//! ECR: a training image named by tag resolved to the digest a job is launched with, and its
//! scan findings.

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
        let named = match (tag, digest) {
            (_, Some(d)) => format!("{repository}@{d}"),
            (Some(t), None) => format!("{repository}:{t}"),
            (None, None) => format!("{repository}:latest"),
        };
        let repo = self
            .client
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .map_err(|e| {
                let mut err = explain("ECR", repository, "find the repository", &e);
                if err.kind == Kind::Missing {
                    err.message =
                        format!("the ECR repository `{repository}` does not exist (image {named})");
                    err.hint = "create it with the Terraform `mlops render` writes, push the \
                                training image to it, and check AWS_REGION"
                        .to_owned();
                }
                err
            })?;
        let base = repo
            .repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .ok_or_else(|| AwsError {
                message: format!("the ECR repository `{repository}` does not exist"),
                hint: "check the repository name and AWS_REGION".to_owned(),
                kind: Kind::Missing,
            })?
            .to_owned();
        let id = match (tag, digest) {
            (_, Some(d)) => ImageIdentifier::builder().image_digest(d).build(),
            (t, None) => ImageIdentifier::builder()
                .image_tag(t.unwrap_or("latest"))
                .build(),
        };
        let found = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await
            .map_err(|e| {
                let mut err = explain("ECR", &named, "find the image", &e);
                if err.kind == Kind::Missing {
                    err.message = format!(
                        "the ECR repository `{repository}` has no image {}",
                        tag.map_or_else(
                            || format!("with digest {}", digest.unwrap_or_default()),
                            |t| format!("tagged `{t}`")
                        )
                    );
                    err.hint = "push the training image (the train workflow builds it), or fix \
                                training.sagemaker.image in the manifest"
                        .to_owned();
                }
                err
            })?;
        let digest = found
            .image_details()
            .first()
            .and_then(|d| d.image_digest())
            .ok_or_else(|| AwsError {
                message: format!("ECR has no image {named}"),
                hint: "push the training image, or fix training.sagemaker.image".to_owned(),
                kind: Kind::Missing,
            })?
            .to_owned();
        Ok(Image {
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            uri: format!("{base}@{digest}"),
            digest,
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
