//! SageMaker's control plane: training jobs (create, describe, wait, stop) and model packages
//! (the SageMaker model registry).
//!
//! Waiting polls `DescribeTrainingJob` with exponential backoff and full jitter, so that many
//! jobs waited on at once do not throttle each other, and rides out throttling and 5xx answers
//! (after the SDK's own retries) for a while before giving up.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, CheckpointConfig, DataSource, InferenceSpecification,
    MetricDefinition, MetricsSource, ModelApprovalStatus, ModelMetrics,
    ModelPackageContainerDefinition, ModelQuality, OutputDataConfig, ResourceConfig,
    S3DataDistribution, S3DataSource, S3DataType, StoppingCondition, Tag, TrainingInputMode,
    TrainingInstanceType, VpcConfig,
};

use crate::call::{explain, or_absent};
use crate::{AwsError, Kind};

/// Everything `CreateTrainingJob` is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSpec {
    pub name: String,
    pub role_arn: String,
    /// The image by digest.
    pub image: String,
    pub instance_type: String,
    pub instance_count: i32,
    pub volume_size_gb: i32,
    pub volume_kms_key: Option<String>,
    pub max_runtime_seconds: i32,
    /// Managed spot: where checkpoints go and the longest wait (seconds).
    pub spot: Option<(String, i32)>,
    /// `s3://` prefix of the model artifact.
    pub output_uri: String,
    pub output_kms_key: Option<String>,
    /// Subnets and security groups.
    pub vpc: Option<(Vec<String>, Vec<String>)>,
    pub environment: BTreeMap<String, String>,
    pub hyperparameters: BTreeMap<String, String>,
    /// Channel name and the `s3://` address of its one object.
    pub channels: Vec<(String, String)>,
    /// Metric name and the regular expression that finds its value in the log.
    pub metric_definitions: Vec<(String, String)>,
    pub tags: BTreeMap<String, String>,
}

impl TrainingSpec {
    pub(crate) fn definitions(&self) -> Vec<MetricDefinition> {
        self.metric_definitions
            .iter()
            .map(|(name, regex)| MetricDefinition::builder().name(name).regex(regex).build())
            .collect()
    }

    pub(crate) fn resources(&self) -> ResourceConfig {
        ResourceConfig::builder()
            .instance_type(TrainingInstanceType::from(self.instance_type.as_str()))
            .instance_count(self.instance_count)
            .volume_size_in_gb(self.volume_size_gb)
            .set_volume_kms_key_id(self.volume_kms_key.clone())
            .build()
    }

    pub(crate) fn stopping(&self) -> StoppingCondition {
        StoppingCondition::builder()
            .max_runtime_in_seconds(self.max_runtime_seconds)
            .set_max_wait_time_in_seconds(self.spot.as_ref().map(|(_, wait)| *wait))
            .build()
    }

    pub(crate) fn output(&self) -> OutputDataConfig {
        OutputDataConfig::builder()
            .s3_output_path(&self.output_uri)
            .set_kms_key_id(self.output_kms_key.clone())
            .build()
    }

    /// One channel per dataset, each fully replicated.
    pub(crate) fn inputs(&self) -> Vec<Channel> {
        self.channels
            .iter()
            .map(|(name, uri)| {
                let source = S3DataSource::builder()
                    .s3_data_type(S3DataType::S3Prefix)
                    .s3_uri(uri)
                    .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
                    .build();
                Channel::builder()
                    .channel_name(name)
                    .data_source(DataSource::builder().s3_data_source(source).build())
                    .build()
            })
            .collect()
    }

    pub(crate) fn tag_list(&self) -> Vec<Tag> {
        self.tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// Managed spot's checkpoint settings, when the job runs on spot capacity.
    pub(crate) fn checkpoints(&self) -> Option<CheckpointConfig> {
        self.spot.as_ref().map(|(uri, _)| {
            CheckpointConfig::builder()
                .s3_uri(uri)
                .local_path(CHECKPOINT_DIR)
                .build()
        })
    }

    pub(crate) fn vpc_config(&self) -> Option<VpcConfig> {
        self.vpc.as_ref().map(|(subnets, groups)| {
            VpcConfig::builder()
                .set_subnets(Some(subnets.clone()))
                .set_security_group_ids(Some(groups.clone()))
                .build()
        })
    }
}

/// Where checkpoints live inside the container (SageMaker syncs them with the checkpoint URI).
pub const CHECKPOINT_DIR: &str = "/opt/ml/checkpoints";

/// What `DescribeTrainingJob` says of a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobState {
    pub name: String,
    pub arn: String,
    /// `InProgress`, `Completed`, `Failed`, `Stopping` or `Stopped`.
    pub status: String,
    /// `Starting`, `Downloading`, `Training`, `Uploading`, ...
    pub secondary: String,
    /// The secondary status transitions so far: status and message.
    pub transitions: Vec<(String, String)>,
    pub failure_reason: Option<String>,
    /// `s3://.../output/model.tar.gz` once the job completed.
    pub model_artifact: Option<String>,
    pub final_metrics: BTreeMap<String, f64>,
    pub image: Option<String>,
    pub billable_seconds: Option<i32>,
}

impl JobState {
    /// The job will not change any more.
    pub fn is_over(&self) -> bool {
        crate::job::Described::is_over(self)
    }
}

impl crate::job::Described for JobState {
    fn status(&self) -> &str {
        &self.status
    }
}

const TRAINING: crate::job::JobKind = crate::job::JobKind {
    noun: "training job",
    stop_command: "stop-training-job --training-job-name",
};

/// How often to poll: `first`, doubling up to `max`, each wait drawn at random from its upper
/// half (jitter); back to `first` whenever the job changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub first: Duration,
    pub max: Duration,
    /// Consecutive failed polls (throttling, 5xx, network) tolerated before giving up.
    pub failures: u32,
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            max: Duration::from_secs(60),
            failures: 8,
        }
    }
}

impl Poll {
    /// The `n`th wait (from 0) without jitter.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The `n`th wait: uniform in the upper half of [`Poll::ceiling`].
    pub fn delay(&self, n: u32) -> Duration {
        let top = self.ceiling(n);
        top / 2 + top.mul_f64(fastrand::f64() / 2.0)
    }
}

/// A model package to register.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageSpec {
    pub group: String,
    pub description: String,
    /// The serving image by digest.
    pub image: String,
    pub model_data_url: String,
    /// `s3://` address of the metrics JSON (`ModelMetrics.ModelQuality.Statistics`).
    pub metrics_uri: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Makes a retried registration return the first one's package.
    pub client_token: String,
}

/// A model package as listed or described.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Package {
    pub arn: String,
    pub version: Option<i32>,
    /// `Approved`, `Rejected` or `PendingManualApproval`.
    pub approval: String,
    pub description: Option<String>,
    pub approval_description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub model_data_url: Option<String>,
    pub created: Option<String>,
}

impl Package {
    /// What `mlops registry list --model-package-group` shows: one line per package (version,
    /// approval, ARN) and the count.
    pub fn table(group: &str, packages: &[Package]) -> String {
        if packages.is_empty() {
            return format!("no model packages in {group}\n");
        }
        let mut out = format!("{:<8} {:<22} arn\n", "version", "approval");
        for p in packages {
            let version = p.version.map_or_else(String::new, |v| v.to_string());
            out += &format!("{version:<8} {:<22} {}\n", p.approval, p.arn);
        }
        out + &format!("{} packages in {group}\n", packages.len())
    }
}

/// The SageMaker control plane from the default configuration chain.
#[derive(Debug, Clone)]
pub struct SageMaker {
    pub(crate) client: aws_sdk_sagemaker::Client,
}

impl SageMaker {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_client(aws_sdk_sagemaker::Client::new(&config))
    }

    pub fn from_client(client: aws_sdk_sagemaker::Client) -> Self {
        Self { client }
    }

    /// The job named `name`, or `None` when there is none.
    pub async fn training_job(&self, name: &str) -> Result<Option<JobState>, AwsError> {
        let out = match self
            .client
            .describe_training_job()
            .training_job_name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return or_absent(
                    explain("SageMaker", name, "describe the training job", &e),
                    None,
                );
            }
        };
        Ok(Some(JobState {
            name: out.training_job_name().unwrap_or(name).to_owned(),
            arn: out.training_job_arn().unwrap_or_default().to_owned(),
            status: out
                .training_job_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            secondary: out
                .secondary_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            transitions: out
                .secondary_status_transitions()
                .iter()
                .map(|t| {
                    (
                        t.status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        t.status_message().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            failure_reason: out.failure_reason().map(str::to_owned),
            model_artifact: out
                .model_artifacts()
                .and_then(|a| a.s3_model_artifacts())
                .map(str::to_owned),
            final_metrics: out
                .final_metric_data_list()
                .iter()
                .filter_map(|m| Some((m.metric_name()?.to_owned(), f64::from(m.value()?))))
                .collect(),
            image: out
                .algorithm_specification()
                .and_then(|a| a.training_image())
                .map(str::to_owned),
            billable_seconds: out.billable_time_in_seconds(),
        }))
    }

    /// Starts the job; its ARN.
    pub async fn create_training_job(&self, spec: &TrainingSpec) -> Result<String, AwsError> {
        let algorithm = AlgorithmSpecification::builder()
            .training_image(&spec.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(spec.definitions()))
            .build();
        let mut create = self
            .client
            .create_training_job()
            .training_job_name(&spec.name)
            .role_arn(&spec.role_arn)
            .algorithm_specification(algorithm)
            .resource_config(spec.resources())
            .stopping_condition(spec.stopping())
            .output_data_config(spec.output())
            .set_input_data_config(Some(spec.inputs()))
            .set_hyper_parameters(Some(to_map(&spec.hyperparameters)))
            .set_tags(Some(spec.tag_list()));
        if !spec.environment.is_empty() {
            create = create.set_environment(Some(to_map(&spec.environment)));
        }
        if let Some(checkpoints) = spec.checkpoints() {
            create = create
                .enable_managed_spot_training(true)
                .checkpoint_config(checkpoints);
        }
        if let Some(vpc) = spec.vpc_config() {
            create = create.vpc_config(vpc);
        }
        let out = create
            .send()
            .await
            .map_err(|e| explain("SageMaker", &spec.name, "create the training job", &e))?;
        Ok(out.training_job_arn().unwrap_or_default().to_owned())
    }

    /// Polls the job until it is over; `on_change` sees every state that differs from the one
    /// before (status, secondary status or a new transition).
    pub async fn wait(
        &self,
        name: &str,
        poll: Poll,
        on_change: impl FnMut(&JobState),
    ) -> Result<JobState, AwsError> {
        crate::job::wait(
            TRAINING,
            name,
            poll,
            || self.training_job(name),
            |l: &JobState, state: &JobState| {
                l.status != state.status
                    || l.secondary != state.secondary
                    || l.transitions.len() != state.transitions.len()
            },
            on_change,
        )
        .await
    }

    /// Asks SageMaker to stop the job, then polls until it is `Stopping` or over (at most
    /// `patience`). A job already over is left as it is.
    pub async fn stop(
        &self,
        name: &str,
        poll: Poll,
        patience: Duration,
    ) -> Result<JobState, AwsError> {
        let ask = || async {
            self.client
                .stop_training_job()
                .training_job_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| explain("SageMaker", name, "stop the training job", &e))
        };
        crate::job::stop(TRAINING, name, poll, patience, ask, || {
            self.training_job(name)
        })
        .await
    }

    /// Creates the model package group unless it exists.
    pub async fn ensure_group(&self, group: &str, description: &str) -> Result<(), AwsError> {
        match self
            .client
            .describe_model_package_group()
            .model_package_group_name(group)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                let err = explain("SageMaker", group, "describe the model package group", &e);
                if err.kind != Kind::Missing {
                    return Err(err);
                }
            }
        }
        self.client
            .create_model_package_group()
            .model_package_group_name(group)
            .model_package_group_description(description)
            .send()
            .await
            .map_err(|e| explain("SageMaker", group, "create the model package group", &e))?;
        Ok(())
    }

    /// Registers a model package, pending manual approval; its ARN.
    pub async fn create_package(&self, spec: &PackageSpec) -> Result<String, AwsError> {
        let container = ModelPackageContainerDefinition::builder()
            .image(&spec.image)
            .model_data_url(&spec.model_data_url)
            .build();
        let inference = InferenceSpecification::builder()
            .containers(container)
            .supported_content_types("text/csv")
            .supported_content_types("application/json")
            .supported_response_mime_types("application/json")
            .supported_response_mime_types("text/csv")
            .build();
        let mut create = self
            .client
            .create_model_package()
            .model_package_group_name(&spec.group)
            .model_package_description(&spec.description)
            .inference_specification(inference)
            .model_approval_status(ModelApprovalStatus::PendingManualApproval)
            .set_customer_metadata_properties(Some(to_map(&spec.metadata)))
            .client_token(&spec.client_token);
        if let Some(uri) = &spec.metrics_uri {
            let source = MetricsSource::builder()
                .content_type("application/json")
                .s3_uri(uri)
                .build();
            create = create.model_metrics(
                ModelMetrics::builder()
                    .model_quality(ModelQuality::builder().statistics(source).build())
                    .build(),
            );
        }
        let out = create.send().await.map_err(|e| {
            explain(
                "SageMaker",
                &spec.group,
                "register a model package in the group",
                &e,
            )
        })?;
        Ok(out.model_package_arn().unwrap_or_default().to_owned())
    }

    /// Every package of the group, oldest first.
    pub async fn packages(&self, group: &str) -> Result<Vec<Package>, AwsError> {
        let mut all = Vec::new();
        let mut pages = self
            .client
            .list_model_packages()
            .model_package_group_name(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| explain("SageMaker", group, "list the model packages of", &e))?;
            all.extend(page.model_package_summary_list().iter().map(|p| {
                Package {
                    arn: p.model_package_arn().unwrap_or_default().to_owned(),
                    version: p.model_package_version(),
                    approval: p
                        .model_approval_status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    description: p.model_package_description().map(str::to_owned),
                    created: p.creation_time().map(|t| t.to_string()),
                    ..Package::default()
                }
            }));
        }
        all.sort_by_key(|p| p.version);
        Ok(all)
    }

    /// The newest of the group's latest `depth` packages whose metadata has `key` = `value`.
    pub async fn find_package(
        &self,
        group: &str,
        key: &str,
        value: &str,
        depth: usize,
    ) -> Result<Option<Package>, AwsError> {
        let listed = self.packages(group).await?;
        for p in listed.iter().rev().take(depth) {
            let full = self.package(&p.arn).await?;
            if full.metadata.get(key).map(String::as_str) == Some(value) {
                return Ok(Some(full));
            }
        }
        Ok(None)
    }

    /// One package, with its metadata.
    pub async fn package(&self, arn: &str) -> Result<Package, AwsError> {
        let p = self
            .client
            .describe_model_package()
            .model_package_name(arn)
            .send()
            .await
            .map_err(|e| explain("SageMaker", arn, "describe the model package", &e))?;
        Ok(Package {
            arn: p.model_package_arn().unwrap_or(arn).to_owned(),
            version: p.model_package_version(),
            approval: p
                .model_approval_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            description: p.model_package_description().map(str::to_owned),
            approval_description: p.approval_description().map(str::to_owned),
            metadata: p
                .customer_metadata_properties()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            model_data_url: p
                .inference_specification()
                .and_then(|i| i.containers().first())
                .and_then(|c| c.model_data_url())
                .map(str::to_owned),
            created: p.creation_time().map(|t| t.to_string()),
        })
    }

    /// Approves or rejects a package, with the reason.
    pub async fn set_approval(
        &self,
        arn: &str,
        approved: bool,
        reason: &str,
    ) -> Result<(), AwsError> {
        let status = if approved {
            ModelApprovalStatus::Approved
        } else {
            ModelApprovalStatus::Rejected
        };
        self.client
            .update_model_package()
            .model_package_arn(arn)
            .model_approval_status(status)
            .approval_description(reason)
            .send()
            .await
            .map_err(|e| explain("SageMaker", arn, "change the approval of", &e))?;
        Ok(())
    }
}

pub(crate) fn to_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    //! The waiting and stopping loops against SageMaker answers moto cannot give (a job held in
    //! progress, throttling, 5xx, a failed job, a stop), through the SDK's own mocks.

    use aws_sdk_sagemaker::Client;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::stop_training_job::StopTrainingJobOutput;
    use aws_sdk_sagemaker::types::{
        ModelArtifacts, SecondaryStatus, SecondaryStatusTransition, TrainingJobStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[test]
    fn the_package_table_lines_up_and_counts() {
        assert_eq!(Package::table("g", &[]), "no model packages in g\n");
        let p = |version, approval: &str| Package {
            arn: format!("arn:aws:sagemaker:eu-west-1:1:model-package/g/{version}"),
            version: Some(version),
            approval: approval.into(),
            ..Package::default()
        };
        let shown = Package::table("g", &[p(1, "Approved"), p(12, "PendingManualApproval")]);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 4, "{shown}");
        assert_eq!(lines[0], "version  approval               arn");
        assert!(
            lines[2].starts_with("12       PendingManualApproval  arn:aws:"),
            "{shown}"
        );
        assert_eq!(lines[3], "2 packages in g");
    }

    fn quick(failures: u32) -> Poll {
        Poll {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            failures,
        }
    }

    fn state(status: TrainingJobStatus, secondary: SecondaryStatus) -> DescribeTrainingJobOutput {
        let transition = SecondaryStatusTransition::builder()
            .status(secondary.clone())
            .status_message(format!("now {}", secondary.as_str()))
            .build();
        DescribeTrainingJobOutput::builder()
            .training_job_name("churn-0123")
            .training_job_arn("arn:aws:sagemaker:eu-west-1:123456789012:training-job/churn-0123")
            .training_job_status(status)
            .secondary_status(secondary)
            .secondary_status_transitions(transition)
            .build()
    }

    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        crate::runtime().expect("runtime").block_on(f)
    }

    /// Waiting rides out throttling and a 5xx with an HTML body, reports each change once, and
    /// returns the completed job with its artifact.
    #[test]
    fn waiting_follows_the_job_through_throttling_and_5xx() {
        let describe = mock!(Client::describe_training_job)
            .sequence()
            .output(|| state(TrainingJobStatus::InProgress, SecondaryStatus::Starting))
            .times(2)
            .http_status(400, Some(THROTTLED.to_owned()))
            .http_status(500, Some("<html>Internal Server Error</html>".to_owned()))
            .output(|| state(TrainingJobStatus::InProgress, SecondaryStatus::Training))
            .output(|| {
                let mut done = state(TrainingJobStatus::Completed, SecondaryStatus::Completed);
                done.model_artifacts = Some(
                    ModelArtifacts::builder()
                        .s3_model_artifacts("s3://b/churn-0123/output/model.tar.gz")
                        .build(),
                );
                done
            })
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&describe]);
        let mut seen = Vec::new();
        let end = block(
            SageMaker::from_client(client).wait("churn-0123", quick(3), |s| {
                seen.push(format!("{}/{}", s.status, s.secondary));
            }),
        )
        .expect("the job completes");
        assert_eq!(
            seen,
            [
                "InProgress/Starting",
                "InProgress/Training",
                "Completed/Completed"
            ]
        );
        assert_eq!(
            end.model_artifact.as_deref(),
            Some("s3://b/churn-0123/output/model.tar.gz")
        );
        assert!(describe.num_calls() >= 6, "{}", describe.num_calls());
    }

    /// A failed job comes back with SageMaker's reason.
    #[test]
    fn a_failed_job_carries_its_reason() {
        let describe = mock!(Client::describe_training_job).then_output(|| {
            let mut failed = state(TrainingJobStatus::Failed, SecondaryStatus::Failed);
            failed.failure_reason = Some("AlgorithmError: exit code 2".to_owned());
            failed
        });
        let client = mock_client!(aws_sdk_sagemaker, [&describe]);
        let end = block(SageMaker::from_client(client).wait("churn-0123", quick(3), |_| {}))
            .expect("an answer");
        assert_eq!(end.status, "Failed");
        assert_eq!(
            end.failure_reason.as_deref(),
            Some("AlgorithmError: exit code 2")
        );
    }

    /// Failing polls are tolerated up to the limit, then the error is the caller's, marked
    /// transient.
    #[test]
    fn waiting_gives_up_after_repeated_failures() {
        let describe = mock!(Client::describe_training_job)
            .sequence()
            .http_status(503, Some("<html>Service Unavailable</html>".to_owned()))
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&describe]);
        let e = block(SageMaker::from_client(client).wait("churn-0123", quick(2), |_| {}))
            .expect_err("gives up");
        assert_eq!(e.kind, Kind::Transient, "{e:?}");
        assert!(e.message.contains("503"), "{}", e.message);
        assert!(describe.num_calls() >= 3);
    }

    /// A job nobody knows is `None`, not an error.
    #[test]
    fn an_unknown_job_is_none() {
        let describe = mock!(Client::describe_training_job).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("status"),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ValidationException","message":"Requested resource not found."}"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_sagemaker, [&describe]);
        assert_eq!(
            block(SageMaker::from_client(client).training_job("nope")),
            Ok(None)
        );
    }

    /// Stopping asks once, then waits until SageMaker says Stopping.
    #[test]
    fn stop_asks_then_waits_for_stopping() {
        let stop = mock!(Client::stop_training_job)
            .then_output(|| StopTrainingJobOutput::builder().build());
        let describe = mock!(Client::describe_training_job)
            .sequence()
            .output(|| state(TrainingJobStatus::InProgress, SecondaryStatus::Training))
            .output(|| state(TrainingJobStatus::Stopping, SecondaryStatus::Stopping))
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&stop, &describe]);
        let end = block(SageMaker::from_client(client).stop(
            "churn-0123",
            quick(3),
            Duration::from_secs(5),
        ))
        .expect("stops");
        assert_eq!(end.status, "Stopping");
        assert_eq!(stop.num_calls(), 1);
    }

    /// When SageMaker will not stop the job, the error says it may still be running and how to
    /// stop it by hand.
    #[test]
    fn a_stop_that_fails_says_the_job_may_still_run() {
        let stop = mock!(Client::stop_training_job)
            .sequence()
            .http_status(500, Some("<html>Internal Server Error</html>".to_owned()))
            .repeatedly()
            .build();
        let describe = mock!(Client::describe_training_job)
            .then_output(|| state(TrainingJobStatus::InProgress, SecondaryStatus::Training));
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, [&stop, &describe]);
        let e = block(SageMaker::from_client(client).stop(
            "churn-0123",
            quick(3),
            Duration::from_millis(30),
        ))
        .expect_err("cannot stop");
        assert!(e.message.contains("could not stop"), "{}", e.message);
        assert!(
            e.hint
                .contains("stop-training-job --training-job-name churn-0123")
        );
        assert!(stop.num_calls() >= 2);
    }

    #[test]
    fn polling_backs_off_with_jitter_up_to_the_cap() {
        let p = Poll {
            first: Duration::from_secs(5),
            max: Duration::from_secs(60),
            failures: 1,
        };
        let ceilings: Vec<u64> = (0..6).map(|n| p.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [5, 10, 20, 40, 60, 60]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(60));
        for n in 0..8 {
            for _ in 0..50 {
                let d = p.delay(n);
                assert!(d >= p.ceiling(n) / 2 && d <= p.ceiling(n), "{d:?}");
            }
        }
    }
}
