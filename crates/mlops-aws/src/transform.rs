//! SageMaker Batch Transform: a job that runs a SageMaker model's container over an S3 object,
//! line by line (`SplitType=Line`, several lines per request), and writes the answers, one line
//! per request, to `<output prefix>/<input object's name>.out` (`AssembleWith=Line`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sagemaker::types::{
    AssemblyType, BatchStrategy, SplitType, Tag, TransformDataSource, TransformInput,
    TransformInstanceType, TransformOutput, TransformResources, TransformS3DataSource,
};

use crate::call::{explain, or_absent};
use crate::{AwsError, Poll, SageMaker};

/// Everything `CreateTransformJob` is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformSpec {
    pub name: String,
    /// The SageMaker model (see [`crate::ModelSpec`]).
    pub model: String,
    /// The `s3://` object of rows, one per line.
    pub input: String,
    /// The rows' media type (`text/csv`).
    pub content_type: String,
    /// The `s3://` prefix the assembled answers go to.
    pub output_prefix: String,
    /// The answers' media type (`Accept`).
    pub accept: String,
    pub output_kms_key: Option<String>,
    pub instance_type: String,
    pub instance_count: i32,
    pub volume_kms_key: Option<String>,
    /// The largest request body, in MB (SageMaker's `MaxPayloadInMB`, 1 to 100).
    pub max_payload_mb: i32,
    /// Requests in flight per instance (`MaxConcurrentTransforms`).
    pub max_concurrent: i32,
    pub environment: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// What `DescribeTransformJob` says of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformState {
    pub name: String,
    pub arn: String,
    /// `InProgress`, `Completed`, `Failed`, `Stopping` or `Stopped`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub model: String,
    pub input: Option<String>,
    pub output_prefix: Option<String>,
}

impl TransformState {
    /// The job will not change any more.
    pub fn is_over(&self) -> bool {
        crate::job::Described::is_over(self)
    }
}

impl crate::job::Described for TransformState {
    fn status(&self) -> &str {
        &self.status
    }
}

const TRANSFORM: crate::job::JobKind = crate::job::JobKind {
    noun: "transform job",
    stop_command: "stop-transform-job --transform-job-name",
};

impl SageMaker {
    /// The transform job named `name`, or `None` when there is none.
    pub async fn transform_job(&self, name: &str) -> Result<Option<TransformState>, AwsError> {
        let out = match self
            .client
            .describe_transform_job()
            .transform_job_name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return or_absent(
                    explain("SageMaker", name, "describe the transform job", &e),
                    None,
                );
            }
        };
        Ok(Some(TransformState {
            name: out.transform_job_name().unwrap_or(name).to_owned(),
            arn: out.transform_job_arn().unwrap_or_default().to_owned(),
            status: out
                .transform_job_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            failure_reason: out.failure_reason().map(str::to_owned),
            model: out.model_name().unwrap_or_default().to_owned(),
            input: out
                .transform_input()
                .and_then(|i| i.data_source())
                .and_then(|d| d.s3_data_source())
                .and_then(|s| s.s3_uri())
                .map(str::to_owned),
            output_prefix: out
                .transform_output()
                .and_then(|o| o.s3_output_path())
                .map(str::to_owned),
        }))
    }

    /// Starts the job; its ARN.
    pub async fn create_transform_job(&self, spec: &TransformSpec) -> Result<String, AwsError> {
        let source = TransformS3DataSource::builder()
            .s3_data_type(aws_sdk_sagemaker::types::S3DataType::S3Prefix)
            .s3_uri(&spec.input)
            .build();
        let input = TransformInput::builder()
            .data_source(
                TransformDataSource::builder()
                    .s3_data_source(source)
                    .build(),
            )
            .content_type(&spec.content_type)
            .split_type(SplitType::Line)
            .build();
        let output = TransformOutput::builder()
            .s3_output_path(&spec.output_prefix)
            .accept(&spec.accept)
            .assemble_with(AssemblyType::Line)
            .set_kms_key_id(spec.output_kms_key.clone())
            .build();
        let resources = TransformResources::builder()
            .instance_type(TransformInstanceType::from(spec.instance_type.as_str()))
            .instance_count(spec.instance_count)
            .set_volume_kms_key_id(spec.volume_kms_key.clone())
            .build();
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Vec<_>>();
        let mut create = self
            .client
            .create_transform_job()
            .transform_job_name(&spec.name)
            .model_name(&spec.model)
            .batch_strategy(BatchStrategy::MultiRecord)
            .max_payload_in_mb(spec.max_payload_mb)
            .max_concurrent_transforms(spec.max_concurrent)
            .transform_input(input)
            .transform_output(output)
            .transform_resources(resources)
            .set_tags(Some(tags));
        if !spec.environment.is_empty() {
            create = create.set_environment(Some(
                spec.environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        let out = create
            .send()
            .await
            .map_err(|e| explain("SageMaker", &spec.name, "create the transform job", &e))?;
        Ok(out.transform_job_arn().unwrap_or_default().to_owned())
    }

    /// Polls the job until it is over; `on_change` sees each new status.
    pub async fn wait_transform(
        &self,
        name: &str,
        poll: Poll,
        on_change: impl FnMut(&TransformState),
    ) -> Result<TransformState, AwsError> {
        crate::job::wait(
            TRANSFORM,
            name,
            poll,
            || self.transform_job(name),
            |l: &TransformState, state: &TransformState| l.status != state.status,
            on_change,
        )
        .await
    }

    /// Asks SageMaker to stop the job, then polls until it is `Stopping` or over (at most
    /// `patience`). A job already over is left as it is.
    pub async fn stop_transform(
        &self,
        name: &str,
        poll: Poll,
        patience: Duration,
    ) -> Result<TransformState, AwsError> {
        let ask = || async {
            self.client
                .stop_transform_job()
                .transform_job_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| explain("SageMaker", name, "stop the transform job", &e))
        };
        crate::job::stop(TRANSFORM, name, poll, patience, ask, || {
            self.transform_job(name)
        })
        .await
    }
}
