//! What the templates see: the manifest reduced to the facts the rendered files need, with every
//! derived name computed here (and checked against AWS's naming rules) rather than in templates.

use std::collections::BTreeMap;

use mlops_manifest::model::{Backend, Environment};
use mlops_manifest::{Manifest, RolePurpose};

use crate::filters::path_pattern;
use serde::Serialize;

/// The template context (the rendering adds `pins`, which differ from file to file).
#[derive(Debug, Serialize)]
pub(crate) struct Context {
    pub project: String,
    pub repository: String,
    /// The manifest's path from the repository root, `/`-separated.
    pub manifest_path: String,
    pub workflows: WorkflowsCtx,
    /// Whether any step talks to AWS (then jobs assume a role through OIDC).
    pub aws: bool,
    pub region: Option<String>,
    pub terraform: Option<TerraformCtx>,
    pub environments: Vec<EnvironmentCtx>,
    pub promotion_repository: String,
    /// The promotion pull request goes to another repository (needs a token, not GITHUB_TOKEN).
    pub promotion_elsewhere: bool,
    pub promotion_pin_file: String,
    /// The manifest sets `promotion.no_regression`: the holdout test scores the candidate beside
    /// the version production pins (`--compare production`).
    pub no_regression: bool,
    /// The deploy jobs' timeouts, in minutes: a cold start and the deploy's own wait, plus the
    /// environment's `watch` (the soak after the deploy runs in the same job).
    pub staging_deploy_minutes: u64,
    pub production_deploy_minutes: u64,
    /// Production's deploy watches the service after it (`environments.production.watch`): the
    /// deploy job publishes what breached, and a job with write rights proposes the rollback.
    pub production_watch: bool,
    /// Production is a SageMaker endpoint: a breach puts the pin before back in the deploy job
    /// itself, which reads it from the pin file's history.
    pub production_sagemaker: bool,
    /// Production's watch rolls back at once (`watch.rollback: immediate`): the rollback job sets
    /// the pin file back on the base branch instead of proposing a pull request.
    pub production_immediate: bool,
    /// The gate workflow's name, which its concurrency groups start with: `mlops gate`, or in a
    /// repository that several projects share (a promotion repository, a monorepo),
    /// `mlops gate (PROJECT)`.
    pub gate_name: String,
    /// The promotion repository's owner and name, for a GitHub App token limited to it.
    pub promotion_owner: String,
    pub promotion_name: String,
    /// The manifest lists team reviewers: the gate's App token asks for organisation members:
    /// read (which an App installed on a user account cannot be granted, so only then).
    pub gate_reads_teams: bool,
    /// The branch promotion pull requests target, whose pin file is production's.
    pub promotion_base_branch: String,
    /// The branch the promotion pull request comes from (`mlops promote` pushes it): the gate
    /// workflow runs only for pull requests from it, in this repository.
    pub promotion_branch: String,
    /// Staging is a URL target with a pin file: its deploy commits the pin where the GitOps tool
    /// reads it (`mlops deploy --commit-pin`).
    pub staging_commit_pin: bool,
    /// The model image's base, pinned by digest.
    pub base_image: String,
    /// The train workflow builds the model image and pushes it to ECR (`mlops image push`):
    /// SageMaker training whose image names neither a tag nor a digest.
    pub build_image: bool,
    /// The monitor workflow (`monitoring.schedule`), when there is one.
    pub monitor: Option<MonitorCtx>,
    /// The batch workflow (`batch`), when there is one.
    pub batch: Option<BatchCtx>,
    /// The trials of the sweep (`training.sweep`), 1 to N: the train workflow's matrix. None
    /// on SageMaker, where one tuning job runs them.
    pub sweep_trials: Option<Vec<u32>>,
    /// The most trials the matrix runs at once (`training.sweep.parallel`).
    pub sweep_parallel: Option<u32>,
    /// The repository holds several models (`project.monorepo`): the Dependabot configuration,
    /// which every model renders alike, names all their directories.
    pub monorepo: bool,
    /// The workflows' `name:`s, which GitHub's concurrency groups (`github.workflow`) start with.
    pub workflow_names: WorkflowNames,
    /// The release workflow's file under `.github/workflows/`, which the train workflow calls.
    pub release_workflow: String,
    /// The GitHub variables holding the roles' ARNs ([`mlops_manifest::role_variable`]).
    pub role_variables: RoleVariables,
}

/// Each workflow's `name:`: `mlops train`, or in a monorepo `mlops train (PROJECT)`.
#[derive(Debug, Serialize)]
pub(crate) struct WorkflowNames {
    pub ci: String,
    pub train: String,
    pub release: String,
    pub monitor: String,
    pub batch: String,
    /// The release's concurrency group (a called workflow's `github.workflow` is its caller's):
    /// one release of the model at a time.
    pub release_group: String,
}

impl WorkflowNames {
    fn of(m: &Manifest) -> WorkflowNames {
        let name = |what: &str| match m.project.monorepo {
            true => format!("mlops {what} ({})", m.project.name),
            false => format!("mlops {what}"),
        };
        WorkflowNames {
            ci: name("ci"),
            train: name("train"),
            release: name("release"),
            monitor: name("monitor"),
            batch: name("batch"),
            release_group: mlops_manifest::workflow_file(m, mlops_manifest::RELEASE_WORKFLOW)
                .trim_end_matches(".yml")
                .to_owned(),
        }
    }
}

/// The GitHub variables each role's ARN is read from.
#[derive(Debug, Serialize)]
pub(crate) struct RoleVariables {
    pub train: String,
    /// Staging's and production's, each in its environment.
    pub aws: String,
    pub monitor: String,
    pub batch: String,
}

/// The batch workflow's settings, as the predict action takes them.
#[derive(Debug, Serialize)]
pub(crate) struct BatchCtx {
    pub schedule: Option<String>,
    pub input: String,
    /// The output prefix, ending in `/` (the action writes RUN_ID-ATTEMPT.FORMAT in it).
    pub output: String,
    /// `csv`, `jsonl` or `parquet`.
    pub format: &'static str,
    pub id_column: Option<String>,
    pub sagemaker: Option<BatchTransformCtx>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchTransformCtx {
    pub prefix: String,
    pub role_arn: String,
    pub instance_type: String,
    pub instance_count: u32,
    pub max_payload_mb: u32,
    pub max_concurrent_transforms: u32,
    /// The manifest's serving image, when it names one (else the pin's).
    pub image: Option<String>,
}

/// What the batch role reaches in AWS.
#[derive(Debug, Serialize)]
pub(crate) struct BatchTfCtx {
    /// The input object, as the tail of an S3 ARN: `bucket/key`.
    pub input_object: String,
    pub output: S3Location,
    /// Batch Transform's folder, and the role its model runs as.
    pub transform: Option<S3Location>,
    pub transform_role_arn: Option<String>,
    /// The registered model's name, lowercased as SageMaker's ARNs have it: the SageMaker
    /// models and transform jobs `mlops predict` makes start with it.
    pub model: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct MonitorCtx {
    pub schedule: String,
    /// How far back each run looks (`--since`).
    pub window: String,
    pub retrain: bool,
    /// `retrain` as the action's input takes it.
    pub retrain_text: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct GithubSubjects {
    pub train: String,
    pub staging: String,
    pub production: String,
    /// The monitor workflow's, when `monitoring.schedule` renders it.
    pub monitor: Option<String>,
    /// The batch workflow's, when `batch` renders it.
    pub batch: Option<String>,
}

/// The capture in S3 (`monitoring.capture`): the monitor role reads it; when production is a
/// SageMaker endpoint, the endpoint (its execution role) writes it.
#[derive(Debug, Serialize)]
pub(crate) struct CaptureCtx {
    pub location: S3Location,
    /// `s3://...` as the manifest gives it (`DataCaptureConfig.DestinationS3Uri`).
    pub destination: String,
    /// Production's endpoint captures (it serves on instances from SageMaker).
    pub endpoint: bool,
    /// `InitialSamplingPercentage`, as `mlops deploy` rounds it.
    pub sample_percent: u32,
    /// The KMS key the endpoint encrypts captured objects with.
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WorkflowsCtx {
    pub default_branch: String,
    pub runs_on: String,
    pub train_schedule: Option<String>,
    /// Paths whose change on the default branch retrains: the manifest and local datasets (and,
    /// for the `command` backend, everything beside the manifest, where its code lives).
    pub train_paths: Vec<String>,
    /// The training command's pip requirements file, from the repository root: the train
    /// workflow installs it into a virtual environment first.
    pub training_requirements: Option<String>,
    /// The registry approves automatically (no SageMaker model package group): the train
    /// workflow calls the release workflow itself.
    pub release_after_train: bool,
    /// The manifest names `monitoring.retrain_data`: the train workflow takes the
    /// `retraining` input (`mlops_manifest::RETRAINING_INPUT`) that trains on it.
    pub retraining: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct EnvironmentCtx {
    pub name: &'static str,
    pub sagemaker: Option<EndpointCtx>,
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EndpointCtx {
    pub endpoint_name: String,
    pub instance_type: Option<String>,
    pub instance_count: u32,
    pub serverless_memory_mb: Option<u32>,
    pub serverless_max_concurrency: Option<u32>,
    /// The alarms rendered for this endpoint (5xx errors, p99 latency).
    pub own_alarms: Vec<AlarmCtx>,
    /// Every alarm whose firing rolls a deployment back: ours and those the manifest names.
    pub rollback_alarms: Vec<String>,
    /// The endpoint's own serving image, by digest (`environments.ENV.sagemaker.image`).
    pub image: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AlarmCtx {
    pub id: &'static str,
    pub name: String,
    pub metric: &'static str,
    pub statistic: Option<&'static str>,
    pub extended_statistic: Option<&'static str>,
    pub threshold: u32,
    pub description: &'static str,
}

/// An S3 location the roles may use: the bucket and the key prefix (without a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct S3Location {
    pub bucket: String,
    pub prefix: String,
    /// The objects under the prefix, as the tail of an S3 ARN: `bucket/prefix/*`.
    pub objects: String,
    /// The `s3:prefix` condition value that lists them: `prefix/*` (or `*` for a whole bucket).
    pub list_prefix: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct TerraformCtx {
    pub region: String,
    pub state_bucket: String,
    pub state_key: String,
    pub prefix: String,
    pub names: Names,
    /// The OIDC subject each GitHub role trusts (`mlops_manifest::oidc_subject`).
    pub github_subjects: GithubSubjects,
    /// Read-only locations outside our bucket (datasets).
    pub s3_read: Vec<S3Location>,
    /// Read-write locations outside our bucket (artifacts, checkpoints, an S3 registry).
    pub s3_write: Vec<S3Location>,
    /// The registry, when it is in S3: the deploying roles look models up there (which lists
    /// its prefix) and write nothing.
    pub registry: Option<S3Location>,
    pub ecr_repository: String,
    /// The ARNs of the ECR repositories of the environments' own serving images, which the
    /// SageMaker execution role pulls from besides `ecr_repository`.
    pub serving_repositories: Vec<String>,
    /// `:tag` or `@sha256:...` of the image that trains and serves, when the manifest names one.
    pub image_ref: Option<String>,
    pub kms_keys: Vec<String>,
    /// The capture, when `monitoring.capture` is in S3.
    pub capture: Option<CaptureCtx>,
    /// The batch workflow's reach, when `batch` renders it.
    pub batch: Option<BatchTfCtx>,
    pub model_package_group: Option<String>,
    pub sagemaker_training: bool,
    /// The sweep runs as a SageMaker hyperparameter tuning job: the training role starts and
    /// watches tuning jobs named by the prefix's first 15 characters (a tuning job's name is at
    /// most 32).
    pub sagemaker_tuning: bool,
    pub tags: BTreeMap<String, String>,
}

/// Resource names derived from the prefix; each fits AWS's rules for its kind (tested).
#[derive(Debug, Serialize)]
pub(crate) struct Names {
    /// The artifact bucket's name before the account ID and `-ml` are appended at apply time.
    pub bucket_stem: String,
    pub kms_alias: String,
    pub train_role: String,
    pub staging_role: String,
    pub production_role: String,
    pub monitor_role: String,
    pub batch_role: String,
    pub sagemaker_role: String,
    pub dispatch_role: String,
    pub approval_rule: String,
    pub dispatch_connection: String,
    pub dispatch_destination: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            bucket_stem: prefix.to_owned(),
            kms_alias: format!("alias/{prefix}-mlops"),
            train_role: format!("{prefix}-github-train"),
            staging_role: format!("{prefix}-github-staging"),
            production_role: format!("{prefix}-github-production"),
            monitor_role: format!("{prefix}-github-monitor"),
            batch_role: format!("{prefix}-github-batch"),
            sagemaker_role: format!("{prefix}-sagemaker-execution"),
            dispatch_role: format!("{prefix}-events-dispatch"),
            approval_rule: format!("{prefix}-model-approved"),
            dispatch_connection: format!("{prefix}-github"),
            dispatch_destination: format!("{prefix}-github-dispatch"),
        }
    }
}

/// Builds the context for `manifest`, found at `manifest_path` from the repository root.
pub(crate) fn build(m: &Manifest, manifest_path: &str) -> Context {
    let manifest_dir = manifest_path
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir)
        .to_owned();
    let datasets = std::iter::once(&m.data.train)
        .chain(m.data.validation.as_ref())
        .chain(std::iter::once(&m.data.holdout));
    // Patterns of GitHub's path filters, each path escaped to match itself only.
    let mut train_paths = vec![path_pattern(manifest_path)];
    let mut s3_read = Vec::new();
    // A retraining reads its own training set (no push of it retrains: the monitor does).
    let retrain_data = m
        .monitoring
        .as_ref()
        .and_then(|mo| mo.retrain_data.as_ref());
    s3_read.extend(retrain_data.and_then(|d| s3(&d.path)));
    for d in datasets {
        match s3(&d.path) {
            Some(loc) => s3_read.push(loc),
            None => train_paths.push(path_pattern(&join(&manifest_dir, &d.path))),
        }
    }
    if m.training.backend == Backend::Command {
        // The command's own code (a script, its modules, its requirements) lives beside the
        // manifest: a change there retrains, as a change of the data does.
        train_paths.push(if manifest_dir.is_empty() {
            "**".to_owned()
        } else {
            format!("{}/**", path_pattern(&manifest_dir))
        });
    }
    let sm = m.training.sagemaker.as_ref();
    let mut s3_write: Vec<S3Location> = [
        sm.and_then(|s| s.output_uri.as_deref()),
        sm.and_then(|s| s.spot.as_ref())
            .map(|s| s.checkpoint_uri.as_str()),
        Some(m.registry.path.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter_map(s3)
    .collect();
    s3_read.sort();
    s3_read.dedup();
    s3_write.sort();
    s3_write.dedup();

    let environments: Vec<EnvironmentCtx> = [
        ("staging", &m.environments.staging),
        ("production", &m.environments.production),
    ]
    .into_iter()
    .map(|(name, env)| environment(name, env))
    .collect();
    let serves_on_sagemaker = environments.iter().any(|e| e.sagemaker.is_some());
    let sagemaker_training = m.training.backend == Backend::Sagemaker;
    let aws = sagemaker_training
        || serves_on_sagemaker
        || !s3_read.is_empty()
        || !s3_write.is_empty()
        || m.registry.sagemaker_model_package_group.is_some();

    let terraform = m.infrastructure.as_ref().map(|infra| {
        let tf = &infra.terraform;
        let prefix = tf
            .name_prefix
            .clone()
            .unwrap_or_else(|| m.project.name.clone());
        let mut tags = sm.map(|s| s.tags.clone()).unwrap_or_default();
        tags.insert("mlops:project".to_owned(), m.project.name.clone());
        tags.insert("mlops:repository".to_owned(), m.project.repository.clone());
        TerraformCtx {
            region: tf.region.clone(),
            state_bucket: tf.state_bucket.clone(),
            state_key: format!("mlops/{prefix}/terraform.tfstate"),
            names: Names::new(&prefix),
            github_subjects: GithubSubjects {
                train: mlops_manifest::oidc_subject(m, RolePurpose::Train),
                staging: mlops_manifest::oidc_subject(m, RolePurpose::Staging),
                production: mlops_manifest::oidc_subject(m, RolePurpose::Production),
                monitor: RolePurpose::rendered(m)
                    .contains(&RolePurpose::Monitor)
                    .then(|| mlops_manifest::oidc_subject(m, RolePurpose::Monitor)),
                batch: RolePurpose::rendered(m)
                    .contains(&RolePurpose::Batch)
                    .then(|| mlops_manifest::oidc_subject(m, RolePurpose::Batch)),
            },
            ecr_repository: sm
                .map_or_else(|| format!("{prefix}/train"), |s| s.image.repository.clone()),
            serving_repositories: serving_repositories(m),
            image_ref: sm.and_then(|s| match (&s.image.digest, &s.image.tag) {
                (Some(d), _) => Some(format!("@{d}")),
                (None, Some(t)) => Some(format!(":{t}")),
                (None, None) => None,
            }),
            kms_keys: sm
                .map(|s| {
                    let mut keys: Vec<String> = [&s.volume_kms_key, &s.output_kms_key]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect();
                    keys.sort();
                    keys.dedup();
                    keys
                })
                .unwrap_or_default(),
            prefix,
            s3_read: s3_read.clone(),
            s3_write: s3_write.clone(),
            registry: s3(&m.registry.path),
            capture: m
                .monitoring
                .as_ref()
                .and_then(|mo| mo.capture.as_ref())
                .and_then(|c| {
                    let production = m.environments.production.sagemaker.as_ref();
                    Some(CaptureCtx {
                        location: s3(&c.destination)?,
                        destination: c.destination.clone(),
                        endpoint: production.is_some_and(|p| p.instance_type.is_some()),
                        sample_percent: c.sample_percent.round().clamp(0.0, 100.0) as u32,
                        kms_key_id: c.kms_key_id.clone(),
                    })
                }),
            model_package_group: m.registry.sagemaker_model_package_group.clone(),
            sagemaker_training,
            sagemaker_tuning: sagemaker_training && m.training.sweep.is_some(),
            batch: m
                .batch
                .as_ref()
                .filter(|_| RolePurpose::rendered(m).contains(&RolePurpose::Batch))
                .and_then(|b| {
                    Some(BatchTfCtx {
                        input_object: b.input.strip_prefix("s3://")?.to_owned(),
                        output: s3(&b.output)?,
                        transform: b.sagemaker.as_ref().and_then(|t| s3(&t.prefix)),
                        transform_role_arn: b.sagemaker.as_ref().map(|t| t.role_arn.clone()),
                        model: m.model.name.to_lowercase(),
                    })
                }),
            tags,
        }
    });
    let promotion = m.promotion.as_ref();
    let promotion_repository = promotion
        .and_then(|p| p.repository.clone())
        .unwrap_or_else(|| m.project.repository.clone());
    Context {
        project: m.project.name.clone(),
        repository: m.project.repository.clone(),
        manifest_path: manifest_path.to_owned(),
        workflows: WorkflowsCtx {
            default_branch: m.workflows.default_branch.clone(),
            runs_on: m.workflows.runs_on.clone(),
            train_schedule: m.workflows.train_schedule.clone(),
            train_paths,
            training_requirements: m
                .training
                .requirements
                .as_deref()
                .filter(|_| m.training.backend == Backend::Command)
                .map(|r| join(&manifest_dir, r)),
            release_after_train: m.registry.sagemaker_model_package_group.is_none(),
            retraining: retrain_data.is_some(),
        },
        aws,
        region: m
            .infrastructure
            .as_ref()
            .map(|i| i.terraform.region.clone()),
        terraform,
        environments,
        sweep_trials: m
            .training
            .sweep
            .as_ref()
            .filter(|_| m.training.backend != mlops_manifest::model::Backend::Sagemaker)
            .map(|sw| (1..=sw.trial_count()).collect()),
        sweep_parallel: m.training.sweep.as_ref().and_then(|sw| sw.parallel),
        monorepo: m.project.monorepo,
        workflow_names: WorkflowNames::of(m),
        release_workflow: mlops_manifest::workflow_file(m, mlops_manifest::RELEASE_WORKFLOW),
        role_variables: RoleVariables {
            train: mlops_manifest::role_variable(m, RolePurpose::Train),
            aws: mlops_manifest::role_variable(m, RolePurpose::Staging),
            monitor: mlops_manifest::role_variable(m, RolePurpose::Monitor),
            batch: mlops_manifest::role_variable(m, RolePurpose::Batch),
        },
        gate_name: if promotion_repository == m.project.repository && !m.project.monorepo {
            "mlops gate".to_owned()
        } else {
            format!("mlops gate ({})", m.project.name)
        },
        promotion_elsewhere: promotion_repository != m.project.repository,
        promotion_owner: promotion_repository
            .split_once('/')
            .map_or("", |(o, _)| o)
            .to_owned(),
        promotion_name: promotion_repository
            .split_once('/')
            .map_or("", |(_, n)| n)
            .to_owned(),
        gate_reads_teams: promotion.is_some_and(|p| !p.team_reviewers.is_empty()),
        promotion_repository,
        staging_commit_pin: m.environments.staging.url.is_some()
            && m.environments.staging.pin_file.is_some(),
        base_image: m.container.base_image.clone(),
        build_image: sagemaker_training
            && sm.is_some_and(|s| s.image.tag.is_none() && s.image.digest.is_none()),
        monitor: m.monitoring.as_ref().and_then(|mo| {
            let schedule = mo.schedule.clone()?;
            Some(MonitorCtx {
                schedule,
                window: mo.window.clone(),
                retrain: mo.retrain,
                retrain_text: mo.retrain.to_string(),
            })
        }),
        batch: m
            .batch
            .as_ref()
            .filter(|_| mlops_manifest::registry_shared(m))
            .map(|b| BatchCtx {
                schedule: b.schedule.clone(),
                input: b.input.clone(),
                output: if b.output.ends_with('/') {
                    b.output.clone()
                } else {
                    format!("{}/", b.output)
                },
                format: match b.format {
                    mlops_manifest::model::DataFormat::Csv => "csv",
                    mlops_manifest::model::DataFormat::Jsonl => "jsonl",
                    mlops_manifest::model::DataFormat::Parquet => "parquet",
                },
                id_column: b.id_column.clone(),
                sagemaker: b.sagemaker.as_ref().map(|t| BatchTransformCtx {
                    prefix: t.prefix.clone(),
                    role_arn: t.role_arn.clone(),
                    instance_type: t.instance_type.clone(),
                    instance_count: t.instance_count,
                    max_payload_mb: t.max_payload_mb,
                    max_concurrent_transforms: t.max_concurrent_transforms,
                    image: t.image.clone(),
                }),
            }),
        promotion_branch: mlops_manifest::promotion_branch(&m.model.name),
        promotion_base_branch: promotion.map_or_else(
            || m.workflows.default_branch.clone(),
            |p| p.base_branch.clone(),
        ),
        promotion_pin_file: promotion.map_or_else(
            || "deploy/production.yaml".to_owned(),
            |p| p.pin_file.clone(),
        ),
        no_regression: promotion.is_some_and(|p| !p.no_regression.is_empty()),
        staging_deploy_minutes: 60 + watch_minutes(&m.environments.staging),
        production_deploy_minutes: 90 + watch_minutes(&m.environments.production),
        production_watch: m.environments.production.watch.is_some(),
        production_sagemaker: m.environments.production.sagemaker.is_some(),
        production_immediate: m
            .environments
            .production
            .watch
            .as_ref()
            .is_some_and(|w| w.rollback == mlops_manifest::model::WatchRollback::Immediate),
    }
}

/// The minutes an environment's `watch` adds to the job that deploys it (rounded up).
fn watch_minutes(env: &Environment) -> u64 {
    env.watch
        .as_ref()
        .map_or(0, |w| u64::from(w.seconds).div_ceil(60))
}

/// The ARN of each environment's own serving repository, once, in order.
fn serving_repositories(m: &Manifest) -> Vec<String> {
    let mut arns: Vec<String> = [&m.environments.staging, &m.environments.production]
        .into_iter()
        .filter_map(|e| e.sagemaker.as_ref()?.own_image_repository())
        .map(|(account, region, repository)| {
            let partition = if region.starts_with("cn-") {
                "aws-cn"
            } else {
                "aws"
            };
            format!("arn:{partition}:ecr:{region}:{account}:repository/{repository}")
        })
        .collect();
    arns.sort();
    arns.dedup();
    arns
}

fn environment(name: &'static str, env: &Environment) -> EnvironmentCtx {
    EnvironmentCtx {
        name,
        url: env.url.clone(),
        sagemaker: env.sagemaker.as_ref().map(|s| {
            let [errors, latency] = s.own_alarm_names();
            let own_alarms = vec![
                AlarmCtx {
                    id: "errors",
                    name: errors,
                    metric: "Invocation5XXErrors",
                    statistic: Some("Sum"),
                    extended_statistic: None,
                    threshold: 1,
                    description: "The endpoint answered with 5xx errors: roll the deployment back.",
                },
                AlarmCtx {
                    id: "latency",
                    name: latency,
                    metric: "ModelLatency",
                    statistic: None,
                    extended_statistic: Some("p99"),
                    // ModelLatency is in microseconds: one second at the 99th percentile.
                    threshold: 1_000_000,
                    description: "The model's p99 latency passed one second: roll the deployment back.",
                },
            ];
            let rollback_alarms = s.health_alarms();
            EndpointCtx {
                image: s.image.clone(),
                endpoint_name: s.endpoint_name.clone(),
                instance_type: s.instance_type.clone(),
                instance_count: s.instance_count,
                serverless_memory_mb: s.serverless.map(|v| v.memory_mb),
                serverless_max_concurrency: s.serverless.map(|v| v.max_concurrency),
                own_alarms,
                rollback_alarms,
            }
        }),
    }
}

fn s3(uri: &str) -> Option<S3Location> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = key.trim_end_matches('/').to_owned();
    let (objects, list_prefix) = if prefix.is_empty() {
        (format!("{bucket}/*"), "*".to_owned())
    } else {
        (format!("{bucket}/{prefix}/*"), format!("{prefix}/*"))
    };
    Some(S3Location {
        bucket: bucket.to_owned(),
        prefix,
        objects,
        list_prefix,
    })
}

/// `dir/path` with `./` segments dropped (paths in `on.push.paths` are matched literally).
fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's limits for each kind of name, checked for the longest prefix the schema allows.
    #[test]
    fn derived_names_fit_aws_limits_for_the_longest_prefix() {
        let prefix = format!("a{}", "b".repeat(31));
        assert_eq!(prefix.len(), 32);
        let n = Names::new(&prefix);
        // Bucket: stem + "-" + 12-digit account + "-ml", at most 63.
        assert!(n.bucket_stem.len() + 1 + 12 + 3 <= 63);
        for role in [
            &n.train_role,
            &n.staging_role,
            &n.production_role,
            &n.monitor_role,
            &n.sagemaker_role,
            &n.dispatch_role,
        ] {
            assert!(role.len() <= 64, "{role}");
        }
        for name in [
            &n.approval_rule,
            &n.dispatch_connection,
            &n.dispatch_destination,
        ] {
            assert!(name.len() <= 64, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            );
        }
        assert!(n.kms_alias.len() <= 256);
    }

    #[test]
    fn local_paths_are_joined_to_the_manifest_directory() {
        assert_eq!(join("ml", "data/x.csv"), "ml/data/x.csv");
        assert_eq!(join("ml/sub", "../data/./x.csv"), "ml/data/x.csv");
        assert_eq!(join("", "./x.csv"), "x.csv");
    }

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            s3("s3://b/p/q/"),
            Some(S3Location {
                bucket: "b".into(),
                prefix: "p/q".into(),
                objects: "b/p/q/*".into(),
                list_prefix: "p/q/*".into(),
            })
        );
        assert_eq!(s3("data/x.csv"), None);
    }
}
