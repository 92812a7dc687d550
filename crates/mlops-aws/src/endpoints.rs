//! SageMaker hosting: models, endpoint configurations and endpoints (create, update, describe,
//! wait). An endpoint never serves half a configuration: SageMaker moves traffic to a new
//! configuration only when all of it is ready (blue/green), and keeps the old one when the
//! update fails; waiting here only watches that happen.

use std::collections::BTreeMap;

use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType,
    CaptureContentTypeHeader, CaptureMode, CaptureOption, ContainerDefinition, DataCaptureConfig,
    DeploymentConfig, ModelCompressionType, ModelDataSource, ProductionVariant,
    ProductionVariantInstanceType, ProductionVariantServerlessConfig, S3ModelDataSource,
    S3ModelDataType, Tag, TrafficRoutingConfig, TrafficRoutingConfigType,
};

use crate::call::{explain, or_absent};
use crate::sagemaker::{Poll, SageMaker};
use crate::{AwsError, Kind};

/// An endpoint as `DescribeEndpoint` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointState {
    pub name: String,
    pub arn: String,
    /// `Creating`, `Updating`, `InService`, `Failed`, `RollingBack`, ...
    pub status: String,
    /// The configuration serving traffic.
    pub config: Option<String>,
    pub failure_reason: Option<String>,
}

impl EndpointState {
    /// Not in the middle of a change.
    pub fn is_settled(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Creating" | "Updating" | "SystemUpdating" | "RollingBack" | "Deleting"
        )
    }
}

/// One production variant of an endpoint and what its model says it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedVariant {
    pub variant: String,
    pub model: String,
    /// `MLOPS_ARTIFACT_SHA256` in the model's container environment (`mlops deploy` sets it,
    /// and the container refuses to serve files with another digest).
    pub artifact_sha256: Option<String>,
}

/// How an endpoint configuration serves: instances, or serverless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    Instances {
        instance_type: String,
        count: u32,
    },
    Serverless {
        memory_mb: u32,
        max_concurrency: u32,
    },
}

/// What an endpoint captures (`DataCaptureConfig`): each request and its answer, to an S3
/// prefix, for `mlops monitor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCapture {
    /// `s3://BUCKET/PREFIX`.
    pub destination: String,
    pub sample_percent: u32,
    /// The KMS key the captured objects are encrypted with; absent: the bucket's default.
    pub kms_key_id: Option<String>,
}

/// A SageMaker model: the serving image, the model files under an S3 prefix (uncompressed, as
/// the registry keeps them) and the role it runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub image: String,
    /// `s3://bucket/prefix/` holding the model's files.
    pub data_prefix: String,
    pub role_arn: String,
    pub environment: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

fn tags(map: &BTreeMap<String, String>) -> Option<Vec<Tag>> {
    Some(
        map.iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect(),
    )
}

impl SageMaker {
    /// The endpoint named `name`, or `None` when there is none.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointState>, AwsError> {
        match self
            .client
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(EndpointState {
                name: name.to_owned(),
                arn: out.endpoint_arn().unwrap_or_default().to_owned(),
                status: out
                    .endpoint_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                config: out.endpoint_config_name().map(str::to_owned),
                failure_reason: out.failure_reason().map(str::to_owned),
            })),
            Err(e) => or_absent(
                explain("SageMaker", name, "describe the endpoint", &e),
                None,
            ),
        }
    }

    /// What each production variant of the endpoint `name` serves, by the configuration now
    /// serving its traffic; `None` when there is no such endpoint.
    pub async fn served(&self, name: &str) -> Result<Option<Vec<ServedVariant>>, AwsError> {
        let Some(state) = self.endpoint(name).await? else {
            return Ok(None);
        };
        let Some(config) = state.config else {
            return Ok(Some(Vec::new()));
        };
        let described = self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(&config)
            .send()
            .await
            .map_err(|e| {
                explain(
                    "SageMaker",
                    &config,
                    "describe the endpoint configuration",
                    &e,
                )
            })?;
        let mut out = Vec::new();
        for v in described.production_variants() {
            let model = v.model_name().unwrap_or_default().to_owned();
            let m = self
                .client
                .describe_model()
                .model_name(&model)
                .send()
                .await
                .map_err(|e| explain("SageMaker", &model, "describe the model", &e))?;
            let artifact_sha256 = m
                .primary_container()
                .and_then(ContainerDefinition::environment)
                .and_then(|env| env.get("MLOPS_ARTIFACT_SHA256"))
                .cloned();
            out.push(ServedVariant {
                variant: v.variant_name().unwrap_or_default().to_owned(),
                model,
                artifact_sha256,
            });
        }
        Ok(Some(out))
    }

    /// Whether a model named `name` exists.
    pub async fn model_exists(&self, name: &str) -> Result<bool, AwsError> {
        match self.client.describe_model().model_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => or_absent(explain("SageMaker", name, "describe the model", &e), false),
        }
    }

    pub async fn create_model(&self, spec: &ModelSpec) -> Result<(), AwsError> {
        let data = S3ModelDataSource::builder()
            .s3_uri(&spec.data_prefix)
            .s3_data_type(S3ModelDataType::S3Prefix)
            .compression_type(ModelCompressionType::None)
            .build();
        let container = ContainerDefinition::builder()
            .image(&spec.image)
            .model_data_source(ModelDataSource::builder().s3_data_source(data).build())
            .set_environment(Some(
                spec.environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
            .build();
        self.client
            .create_model()
            .model_name(&spec.name)
            .primary_container(container)
            .execution_role_arn(&spec.role_arn)
            .set_tags(tags(&spec.tags))
            .send()
            .await
            .map_err(|e| explain("SageMaker", &spec.name, "create the model", &e))?;
        Ok(())
    }

    /// Whether an endpoint configuration named `name` exists.
    pub async fn endpoint_config_exists(&self, name: &str) -> Result<bool, AwsError> {
        match self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => or_absent(
                explain("SageMaker", name, "describe the endpoint configuration", &e),
                false,
            ),
        }
    }

    /// One variant, `AllTraffic`, serving `model` with `capacity`, capturing what it is asked
    /// and answers when `capture` says so.
    pub async fn create_endpoint_config(
        &self,
        name: &str,
        model: &str,
        capacity: &Capacity,
        capture: Option<&DataCapture>,
        tag_map: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        let variant = ProductionVariant::builder()
            .variant_name("AllTraffic")
            .model_name(model);
        let variant = match capacity {
            Capacity::Instances {
                instance_type,
                count,
            } => variant
                .instance_type(ProductionVariantInstanceType::from(instance_type.as_str()))
                .initial_instance_count(i32::try_from(*count).unwrap_or(i32::MAX)),
            Capacity::Serverless {
                memory_mb,
                max_concurrency,
            } => variant.serverless_config(
                ProductionVariantServerlessConfig::builder()
                    .memory_size_in_mb(i32::try_from(*memory_mb).unwrap_or(i32::MAX))
                    .max_concurrency(i32::try_from(*max_concurrency).unwrap_or(i32::MAX))
                    .build(),
            ),
        };
        let capture = capture.map(|c| {
            DataCaptureConfig::builder()
                .enable_capture(true)
                .initial_sampling_percentage(
                    i32::try_from(c.sample_percent.min(100)).unwrap_or(100),
                )
                .destination_s3_uri(&c.destination)
                .set_kms_key_id(c.kms_key_id.clone())
                .capture_options(
                    CaptureOption::builder()
                        .capture_mode(CaptureMode::Input)
                        .build(),
                )
                .capture_options(
                    CaptureOption::builder()
                        .capture_mode(CaptureMode::Output)
                        .build(),
                )
                // Bodies of these types are captured as their text (CSV or JSON encoding), not
                // base64: what `mlops monitor` reads most cheaply.
                .capture_content_type_header(
                    CaptureContentTypeHeader::builder()
                        .csv_content_types("text/csv")
                        .json_content_types("application/json")
                        .build(),
                )
                .build()
        });
        self.client
            .create_endpoint_config()
            .endpoint_config_name(name)
            .production_variants(variant.build())
            .set_data_capture_config(capture)
            .set_tags(tags(tag_map))
            .send()
            .await
            .map_err(|e| explain("SageMaker", name, "create the endpoint configuration", &e))?;
        Ok(())
    }

    /// Adds `tag_map` to the resource `arn` (e.g. who deployed an endpoint in an emergency).
    pub async fn add_tags(
        &self,
        arn: &str,
        tag_map: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.client
            .add_tags()
            .resource_arn(arn)
            .set_tags(tags(tag_map))
            .send()
            .await
            .map_err(|e| explain("SageMaker", arn, "tag", &e))?;
        Ok(())
    }

    /// Deletes the endpoint (its configurations and models stay: they cost nothing and make a
    /// redeploy quick).
    pub async fn delete_endpoint(&self, name: &str) -> Result<(), AwsError> {
        self.client
            .delete_endpoint()
            .endpoint_name(name)
            .send()
            .await
            .map_err(|e| explain("SageMaker", name, "delete the endpoint", &e))?;
        Ok(())
    }

    pub async fn create_endpoint(
        &self,
        name: &str,
        config: &str,
        tag_map: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.client
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .set_tags(tags(tag_map))
            .send()
            .await
            .map_err(|e| explain("SageMaker", name, "create the endpoint", &e))?;
        Ok(())
    }

    /// Moves the endpoint to `config`. With instances, blue/green: a 10% canary for five minutes
    /// when `alarms` are given (any of them firing rolls the update back), else all at once; a
    /// serverless endpoint is updated as SageMaker updates those (no deployment config).
    pub async fn update_endpoint(
        &self,
        name: &str,
        config: &str,
        capacity: &Capacity,
        alarms: &[String],
    ) -> Result<(), AwsError> {
        let mut update = self
            .client
            .update_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config);
        if matches!(capacity, Capacity::Instances { .. }) {
            let routing = if alarms.is_empty() {
                TrafficRoutingConfig::builder()
                    .r#type(TrafficRoutingConfigType::AllAtOnce)
                    .wait_interval_in_seconds(0)
                    .build()
            } else {
                TrafficRoutingConfig::builder()
                    .r#type(TrafficRoutingConfigType::Canary)
                    .wait_interval_in_seconds(300)
                    .canary_size(
                        CapacitySize::builder()
                            .r#type(CapacitySizeType::CapacityPercent)
                            .value(10)
                            .build(),
                    )
                    .build()
            };
            let mut deployment = DeploymentConfig::builder().blue_green_update_policy(
                BlueGreenUpdatePolicy::builder()
                    .traffic_routing_configuration(routing)
                    .termination_wait_in_seconds(0)
                    .build(),
            );
            if !alarms.is_empty() {
                deployment = deployment.auto_rollback_configuration(
                    AutoRollbackConfig::builder()
                        .set_alarms(Some(
                            alarms
                                .iter()
                                .map(|a| Alarm::builder().alarm_name(a).build())
                                .collect(),
                        ))
                        .build(),
                );
            }
            update = update.deployment_config(deployment.build());
        }
        update
            .send()
            .await
            .map_err(|e| explain("SageMaker", name, "update the endpoint", &e))?;
        Ok(())
    }

    /// Polls the endpoint until it is settled; `on_change` sees every status it passes through.
    pub async fn wait_endpoint(
        &self,
        name: &str,
        poll: Poll,
        mut on_change: impl FnMut(&EndpointState),
    ) -> Result<EndpointState, AwsError> {
        let mut last: Option<EndpointState> = None;
        let (mut n, mut failures) = (0u32, 0u32);
        loop {
            match self.endpoint(name).await {
                Ok(Some(state)) => {
                    failures = 0;
                    if last.as_ref() != Some(&state) {
                        on_change(&state);
                        n = 0;
                    }
                    if state.is_settled() {
                        return Ok(state);
                    }
                    last = Some(state);
                }
                Ok(None) => {
                    return Err(AwsError {
                        message: format!("the endpoint `{name}` disappeared while waiting"),
                        hint: "someone deleted it; deploy again".to_owned(),
                        kind: Kind::Missing,
                    });
                }
                Err(e) if e.kind == Kind::Transient && failures < poll.failures => failures += 1,
                Err(e) => return Err(e),
            }
            tokio::time::sleep(poll.delay(n)).await;
            n = n.saturating_add(1);
        }
    }
}
