//! The command line: subcommands and shared flags. Every flag is also read from an `MLOPS_*`
//! environment variable, which is how the composite actions pass their inputs.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// A whole number from `low` to `high`: a flag out of the range is a usage error that names
/// the range, where a silent clamp would run something other than what was asked.
fn between<T: TryFrom<u64> + Clone + Send + Sync + 'static>(
    low: u64,
    high: u64,
) -> RangedU64ValueParser<T> {
    RangedU64ValueParser::new().range(low..=high)
}

/// A whole number of at least 1 (a count or a limit for which 0 would mean nothing works).
fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    match text.trim().parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".to_owned()),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// A full commit SHA: 40 hexadecimal digits, lowercased.
fn commit_sha(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err("must be a full commit SHA (40 hexadecimal digits)".to_owned())
    }
}

/// A positive, finite number of seconds (`0`, a negative number, `inf` and `NaN` are refused:
/// they would poll without pause or never).
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        Ok(_) => Err("must be a positive number of seconds".to_owned()),
        Err(e) => Err(format!("not a number of seconds: {e}")),
    }
}

/// MLOps on GitHub Actions from one `mlops.yaml`.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Output format. Defaults to `github` inside GitHub Actions (`GITHUB_ACTIONS=true`), else
    /// `human`.
    #[arg(long, global = true, env = "MLOPS_FORMAT", value_enum)]
    pub format: Option<Format>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a manifest against its schema and rules; every problem is located at file:line:col.
    Validate(ValidateArgs),
    /// Render Terraform and GitHub workflows from the manifest; `--check` reports drift instead.
    Render(RenderArgs),
    /// Train the manifest's model, score it on validation and holdout data, and register it.
    Train(TrainArgs),
    /// The trainer inside a training container (SageMaker's /opt/ml layout).
    TrainWorker(TrainWorkerArgs),
    /// List, show, approve and reject registered model versions.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Serve a model over HTTP (SageMaker's inference contract: GET /ping, POST /invocations).
    Serve(ServeArgs),
    /// The entrypoint of the model container image: `train` (SageMaker training) or `serve`
    /// (SageMaker hosting), over the `/opt/ml` layout.
    Container(ContainerArgs),
    /// Create a new project from a cookiecutter template (rendered as cookiecutter renders it).
    Init(InitArgs),
    /// The model image: build it and push it to ECR (`push`).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Push the holdout set through a prediction service and compare its answers with the
    /// model's offline predictions and the holdout metrics recorded at training time.
    Holdout(HoldoutArgs),
    /// Compare a registered version's captured traffic (`mlops serve --capture`, or SageMaker's
    /// DataCapture) with its training baseline; exit 1 naming each feature, the predictions or a
    /// metric over `monitoring.thresholds`.
    Monitor(MonitorArgs),
    /// Score a file offline with a registered model (batch scoring): one output row per input
    /// row, in input order, with its id, as CSV, JSON lines or Parquet.
    Predict(PredictArgs),
    /// Open or update the promotion pull request that changes the production pin file.
    Promote(PromoteArgs),
    /// Decide whether production may deploy a promotion pull request (exit 0) or not (exit 1).
    Gate(GateArgs),
    /// Deploy a model to staging, or production's pin to production, and verify that the
    /// service serves it; `--check` compares what serves with the pin.
    Deploy(DeployArgs),
    /// Check the repository settings and AWS roles the threat model relies on (branch rules,
    /// CODEOWNERS of the pin file, environments, variables, OIDC trust); exit 1 when any is
    /// missing.
    Doctor(DoctorArgs),
    /// The whole loop on this machine, with no cloud account and no token: validate, render,
    /// train, evaluate, serve staging, holdout test, promotion in a local repository, gate and
    /// production deploy.
    Run(RunArgs),
}

/// How results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: the source line with a caret and a hint.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub workflow commands: annotations on the pull request.
    Github,
}

impl Format {
    pub(crate) fn from_env() -> Format {
        if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
            Format::Github
        } else {
            Format::Human
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Path of a manifest. Repeat it for a repository's several manifests: they are also checked
    /// against each other (derived names must not collide).
    #[arg(long = "manifest", env = "MLOPS_MANIFEST", default_value = "mlops.yaml", action = clap::ArgAction::Append)]
    pub manifests: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Directory to render into. Defaults to the root of the git repository holding the
    /// manifest (or the manifest's directory outside git).
    #[arg(long, env = "MLOPS_OUT")]
    pub out: Option<PathBuf>,
    /// Write nothing: show a diff of every file that differs from what would be rendered, and
    /// exit 1 if any does.
    #[arg(long, env = "MLOPS_CHECK")]
    pub check: bool,
    /// Overwrite files that lack the `mlops render` header (files you wrote yourself).
    #[arg(long, env = "MLOPS_FORCE", conflicts_with = "check")]
    pub force: bool,
    /// With `promotion.repository` another repository: render (or with --check, compare) that
    /// repository's files instead, into DIR, a checkout of it: the gate workflow
    /// `.github/workflows/mlops-gate-PROJECT.yml` and the manifest copy it reads,
    /// `mlops/PROJECT/mlops.yaml`.
    #[arg(
        long,
        env = "MLOPS_PROMOTION_OUT",
        value_name = "DIR",
        conflicts_with = "out"
    )]
    pub promotion_out: Option<PathBuf>,
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TrainBackend {
    /// On this machine, with burn.
    Local,
    /// As a SageMaker training job.
    Sagemaker,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Where training runs; defaults to the manifest's `training.backend`.
    #[arg(long, env = "MLOPS_BACKEND", value_enum)]
    pub backend: Option<TrainBackend>,
    /// The model registry (a directory); defaults to the manifest's `registry.path`.
    #[arg(long, env = "MLOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// SageMaker: the training job's name. By default it derives from the repository, the
    /// workflow run and attempt, and the manifest, so a re-run attaches to the job it started.
    #[arg(long, env = "MLOPS_JOB_NAME")]
    pub job_name: Option<String>,
    /// SageMaker: the first wait between polls of the job, in seconds (it doubles up to 60).
    #[arg(long, env = "MLOPS_POLL_SECONDS", default_value_t = 10.0, value_parser = seconds)]
    pub poll_seconds: f64,
    /// SageMaker: stop the job and fail when it has not finished after this many seconds.
    #[arg(long, env = "MLOPS_WAIT_TIMEOUT", value_parser = at_least_one::<u64>)]
    pub wait_timeout: Option<u64>,
    /// SageMaker: run the image with this digest (`sha256:` and 64 hex digits, as `mlops image
    /// push` prints) from the manifest's repository, instead of its `tag` or `digest`.
    #[arg(long, env = "MLOPS_IMAGE_DIGEST")]
    pub image_digest: Option<String>,
    /// Train on this file instead of `data.train` (a path, or an `s3://` object; the format
    /// from its extension). The validation set (or split) and the holdout stay the manifest's.
    #[arg(long, env = "MLOPS_TRAIN_DATA", conflicts_with = "retraining")]
    pub train_data: Option<String>,
    /// A retraining: train on the manifest's `monitoring.retrain_data` instead of `data.train`
    /// (the monitor workflow dispatches the train workflow so).
    #[arg(long, env = "MLOPS_RETRAINING")]
    pub retraining: bool,
    /// A sweep fanned out over several jobs: train only this trial (from 1) and keep its
    /// artifact and result in the registry under `--sweep-id`; nothing is registered. The
    /// rendered train workflow's matrix runs one job per trial.
    #[arg(long, env = "MLOPS_SWEEP_TRIAL", value_parser = at_least_one::<usize>, conflicts_with = "sweep_select")]
    pub sweep_trial: Option<usize>,
    /// A sweep fanned out over several jobs: after every `--sweep-trial` job, register the best
    /// trial of `--sweep-id` with every trial on its card. Trains nothing.
    #[arg(long, env = "MLOPS_SWEEP_SELECT")]
    pub sweep_select: bool,
    /// The sweep the trials of `--sweep-trial` and `--sweep-select` belong to (letters, digits,
    /// `-` and `_`): the rendered workflow passes its run's ID.
    #[arg(long, env = "MLOPS_SWEEP_ID")]
    pub sweep_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The directory to create the project in (default: the current one), then `KEY=VALUE`
    /// answers to the template's variables.
    #[arg(value_name = "DIR | KEY=VALUE")]
    pub args: Vec<String>,
    /// The template: a cookiecutter template directory (with cookiecutter.json), or a git
    /// repository holding one (a URL, `gh:owner/repo`, or a local repository), which is recorded
    /// in the project so that `--update` can follow it. Default: the built-in project template.
    #[arg(long, env = "MLOPS_TEMPLATE")]
    pub template: Option<String>,
    /// The template repository's branch, tag or commit (default: its default branch).
    #[arg(long, env = "MLOPS_CHECKOUT")]
    pub checkout: Option<String>,
    /// Update the project in DIR (default: the current directory) to the template's new version:
    /// three-way merge of the template's change, conflicts marked in the files.
    #[arg(long, env = "MLOPS_UPDATE", conflicts_with_all = ["template", "overwrite"])]
    pub update: bool,
    /// Ask nothing: every variable takes its default, or its KEY=VALUE.
    #[arg(long, env = "MLOPS_NO_INPUT")]
    pub no_input: bool,
    /// Render into an existing project directory, replacing the files the template renders.
    #[arg(long, env = "MLOPS_OVERWRITE")]
    pub overwrite: bool,
    /// Do not run the template's pre_gen_project and post_gen_project hooks.
    #[arg(long, env = "MLOPS_NO_HOOKS")]
    pub no_hooks: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Build the model image (the rendered Dockerfile and a Linux mlops binary), check that it
    /// starts, and push it to the manifest's ECR repository under a tag derived from both;
    /// prints it by digest. A tag ECR already has is not built again.
    Push(ImagePushArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImagePushArgs {
    /// Path of the manifest (its `training.sagemaker.image.repository` and `container`).
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// The Linux mlops binary to put in the image; defaults to this one.
    #[arg(long, env = "MLOPS_IMAGE_BINARY")]
    pub binary: Option<PathBuf>,
    /// The docker command.
    #[arg(long, env = "MLOPS_DOCKER", default_value = "docker")]
    pub docker: String,
}

#[derive(Debug, Args)]
pub(crate) struct TrainWorkerArgs {
    /// The base of the container layout (`input/`, `model/`, `output/`).
    #[arg(long, env = "MLOPS_WORKER_BASE", default_value = "/opt/ml")]
    pub base: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Every registered version, with its status.
    List(RegistryListArgs),
    /// One version's model card.
    Show(RegistryRefArgs),
    /// Mark a version approved (it may go to production).
    Approve(RegistryRefArgs),
    /// Mark a version rejected.
    Reject(RegistryRefArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// The registry directory; defaults to the manifest's `registry.path`.
    #[arg(long, env = "MLOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// The manifest whose registry to use when --registry is not given.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryListArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// List this SageMaker model package group's packages instead (`sagemaker` uses the
    /// manifest's `registry.sagemaker_model_package_group`).
    #[arg(long, env = "MLOPS_MODEL_PACKAGE_GROUP")]
    pub model_package_group: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryRefArgs {
    /// NAME@VERSION, NAME@latest or NAME@approved.
    pub model: String,
    /// Why (recorded with the status).
    #[arg(long, env = "MLOPS_REASON")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What a client may ask of the service and hold of it: the flags (and `MLOPS_*` variables)
/// `mlops serve` and `mlops container serve` share, so a container is configured by environment.
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// The largest request body (413 above it). SageMaker's own limit is 6 MB.
    #[arg(long, env = "MLOPS_MAX_BODY_BYTES", default_value_t = 6 * 1024 * 1024, value_parser = at_least_one::<usize>)]
    pub max_body_bytes: usize,
    /// The most rows in one request (413 above it).
    #[arg(long, env = "MLOPS_MAX_ROWS", default_value_t = 100_000, value_parser = at_least_one::<usize>)]
    pub max_rows: usize,
    /// Seconds a client has to send a whole request head, from the connection's opening or,
    /// on a kept-alive connection, from the previous answer (so also how long an idle
    /// connection is kept); the connection is then closed.
    #[arg(long, env = "MLOPS_HEADER_TIMEOUT", default_value_t = 10, value_parser = at_least_one::<u64>)]
    pub header_timeout: u64,
    /// Seconds a client has to send the body once the head has arrived (408 after it), and the
    /// longest a large request waits for a prediction thread (503 after it).
    #[arg(long, env = "MLOPS_REQUEST_TIMEOUT", default_value_t = 30, value_parser = at_least_one::<u64>)]
    pub request_timeout: u64,
    /// Seconds the service waits on a client that reads none of its answer before it closes
    /// the connection.
    #[arg(long, env = "MLOPS_IDLE_TIMEOUT", default_value_t = 30, value_parser = at_least_one::<u64>)]
    pub idle_timeout: u64,
    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "MLOPS_MAX_CONNECTIONS", default_value_t = 512, value_parser = at_least_one::<usize>)]
    pub max_connections: usize,
    /// Large requests (over 128 KiB) predicted at once, each on a thread of its own; the
    /// others wait (see --request-timeout). Default: the number of CPUs.
    #[arg(long, env = "MLOPS_PREDICTION_THREADS", value_parser = at_least_one::<usize>)]
    pub prediction_threads: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The registered model: NAME@VERSION, NAME@latest or NAME@approved.
    #[arg(long, env = "MLOPS_MODEL", conflicts_with = "artifact")]
    pub model: Option<String>,
    /// Serve an artifact instead: a directory or `s3://` prefix holding model.json and
    /// model.safetensors (and, when it is a registry version, card.json, which is verified).
    #[arg(long, env = "MLOPS_ARTIFACT")]
    pub artifact: Option<String>,
    /// The artifact's expected SHA-256 (as the registry card's `artifact.sha256`).
    #[arg(long, env = "MLOPS_ARTIFACT_SHA256", requires = "artifact")]
    pub sha256: Option<String>,
    #[arg(long, env = "MLOPS_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// The port; 0 picks a free one (the address is printed).
    #[arg(long, env = "MLOPS_PORT", default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// No request log lines.
    #[arg(long, env = "MLOPS_QUIET")]
    pub quiet: bool,
    /// Once listening, write the bound address (`HOST:PORT`) to this file, for a program that
    /// started the service with `--port 0`.
    #[arg(long, env = "MLOPS_ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Data capture: what `mlops monitor` reads.
#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// Capture each answered request (its body, the answer, the model, an inference id, the
    /// time) as JSON lines under this directory, or under `s3://BUCKET/PREFIX`; defaults to the
    /// manifest's `monitoring.capture.destination` when serving a registered model.
    #[arg(long, env = "MLOPS_CAPTURE")]
    pub capture: Option<String>,
    /// The share of requests captured, in percent (defaults to the manifest's, else 100).
    #[arg(long, env = "MLOPS_CAPTURE_SAMPLE_PERCENT", value_parser = percent)]
    pub capture_sample_percent: Option<f64>,
    /// Close a capture file at this size, in bytes (defaults to the manifest's, else 64 MiB).
    #[arg(long, env = "MLOPS_CAPTURE_ROTATE_BYTES", value_parser = between::<u64>(4096, 1 << 32))]
    pub capture_rotate_bytes: Option<u64>,
    /// ... or at this age, in seconds (defaults to the manifest's, else 300).
    #[arg(long, env = "MLOPS_CAPTURE_ROTATE_SECONDS", value_parser = between::<u64>(1, 86_400))]
    pub capture_rotate_seconds: Option<u64>,
}

/// A percentage: a number from 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a percentage from 0 to 100")),
    }
}

/// What SageMaker starts the container for (the argument it passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ContainerMode {
    /// `mlops train-worker` over `<base>`.
    Train,
    /// `mlops serve` of `<base>/model` on 0.0.0.0, port `SAGEMAKER_BIND_TO_PORT` or 8080.
    Serve,
}

#[derive(Debug, Args)]
pub(crate) struct ContainerArgs {
    pub mode: ContainerMode,
    /// The base of the container layout.
    #[arg(long, env = "MLOPS_CONTAINER_BASE", default_value = "/opt/ml")]
    pub base: PathBuf,
    /// The service's limits, for `serve` (set as `MLOPS_*` variables in the container's
    /// environment).
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct HoldoutArgs {
    /// The registered model the service should be serving: NAME@VERSION, NAME@latest or
    /// NAME@approved.
    #[arg(long, env = "MLOPS_MODEL")]
    pub model: String,
    /// The service's base URL (`/invocations` is appended); defaults to the `url` of the
    /// manifest's `--environment`.
    #[arg(long, env = "MLOPS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Test a SageMaker endpoint through InvokeEndpoint (the SDK's default credentials)
    /// instead of a URL.
    #[arg(long, env = "MLOPS_SAGEMAKER_ENDPOINT", conflicts_with = "endpoint")]
    pub sagemaker_endpoint: Option<String>,
    /// The manifest's environment whose service to test (`staging` or `production`).
    #[arg(long, env = "MLOPS_ENVIRONMENT", value_parser = ["staging", "production"], default_value = "staging")]
    pub environment: String,
    /// The holdout dataset; defaults to the manifest's `data.holdout`.
    #[arg(long, env = "MLOPS_HOLDOUT")]
    pub holdout: Option<String>,
    /// Rows per request (1 to 100000, as in the manifest); defaults to the manifest's
    /// `holdout.batch_size`.
    #[arg(long, env = "MLOPS_BATCH_SIZE", value_parser = between::<usize>(1, 100_000))]
    pub batch_size: Option<usize>,
    /// Requests in flight (1 to 256, as in the manifest); defaults to the manifest's
    /// `holdout.concurrency`.
    #[arg(long, env = "MLOPS_CONCURRENCY", value_parser = between::<usize>(1, 256))]
    pub concurrency: Option<usize>,
    /// Seconds one attempt may take (1 to 3600, as in the manifest); defaults to the manifest's
    /// `holdout.timeout_seconds`.
    #[arg(long, env = "MLOPS_TIMEOUT_SECONDS", value_parser = between::<u64>(1, 3600))]
    pub timeout_seconds: Option<u64>,
    /// Retries of a batch after a connection error, a timeout, 429 or 5xx.
    #[arg(long, env = "MLOPS_RETRIES", default_value_t = 5)]
    pub retries: u32,
    /// Skip the row-by-row comparison with the model's offline predictions.
    #[arg(long, env = "MLOPS_NO_PARITY")]
    pub no_parity: bool,
    /// How to talk to the service: `mlops` (CSV with a header to /invocations), `sagemaker`
    /// (headerless CSV, as SageMaker's own containers take it), `v2` (the Open Inference
    /// Protocol: MLServer, KServe, Triton; --endpoint is the base URL, where the registered
    /// model's name is served, or the model's URL .../v2/models/NAME) or `mlflow`
    /// (`mlflow models serve`'s dataframe_split JSON).
    #[arg(long, env = "MLOPS_PROTOCOL", value_parser = mlops_holdout::protocol::Protocol::NAMES, default_value = "mlops")]
    pub protocol: String,
    /// Also score the version production pins on the same rows and check
    /// `promotion.no_regression` (the only value: `production`).
    #[arg(long, env = "MLOPS_COMPARE", value_parser = ["production"])]
    pub compare: Option<String>,
    /// Production's pin file; defaults to the manifest's (`promotion.pin_file`, else
    /// `environments.production.pin_file`).
    #[arg(long, env = "MLOPS_PRODUCTION_PIN", requires = "compare")]
    pub production_pin: Option<PathBuf>,
    /// Production's service (a base URL) to score the incumbent through; by default this
    /// process serves the pinned artifact on 127.0.0.1.
    #[arg(long, env = "MLOPS_INCUMBENT_ENDPOINT", requires = "compare")]
    pub incumbent_endpoint: Option<String>,
    /// Production's SageMaker endpoint to score the incumbent through instead.
    #[arg(
        long,
        env = "MLOPS_INCUMBENT_SAGEMAKER_ENDPOINT",
        requires = "compare",
        conflicts_with = "incumbent_endpoint"
    )]
    pub incumbent_sagemaker_endpoint: Option<String>,
    /// Compare on this holdout file even when it is not the one production's version was
    /// tested on (the report says so).
    #[arg(long, env = "MLOPS_COMPARE_OTHER_FILE", requires = "compare")]
    pub compare_other_file: bool,
    /// Also write the JSON report to this file.
    #[arg(long, env = "MLOPS_REPORT")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// The registered version whose traffic was captured: NAME@VERSION, NAME@latest or
    /// NAME@approved; defaults to the version production's pin file names. Only lines its
    /// artifact answered are counted.
    #[arg(long, env = "MLOPS_MODEL")]
    pub model: Option<String>,
    /// Production's pin file, whose version it is without --model; defaults to the manifest's
    /// pin file (`promotion.pin_file` beside the manifest).
    #[arg(long, env = "MLOPS_PRODUCTION_PIN", conflicts_with = "model")]
    pub production_pin: Option<PathBuf>,
    /// The capture: a directory (`mlops serve --capture DIR`), one capture file, or
    /// `s3://BUCKET/PREFIX` (ours or a SageMaker endpoint's DataCapture); defaults to the
    /// manifest's `monitoring.capture.destination`.
    #[arg(long, env = "MLOPS_CAPTURED")]
    pub captured: Option<String>,
    /// Only lines answered since then: an RFC 3339 time, or an age such as 30m, 24h or 7d.
    #[arg(long, env = "MLOPS_SINCE")]
    pub since: Option<String>,
    /// Labels for captured predictions, joined by inference id: a CSV or JSON-lines file of
    /// `inference_id`, the label column and (for requests of several rows) `row`.
    #[arg(long, env = "MLOPS_GROUND_TRUTH")]
    pub ground_truth: Option<PathBuf>,
    /// Also write the captured rows the ground truth labels as a training set (CSV: the
    /// features and the label) to this file or `s3://` object, put in place once whole; train
    /// on it with `mlops train --train-data`, or name it `monitoring.retrain_data`.
    #[arg(long, env = "MLOPS_LABELLED", requires = "ground_truth")]
    pub labelled: Option<String>,
    /// Also write the JSON report to this file.
    #[arg(long, env = "MLOPS_REPORT")]
    pub report: Option<PathBuf>,
    /// On drift, open the drift issue in `project.repository` (or update the open one: never a
    /// second) with the report; needs a token with `issues: write`.
    #[arg(long, env = "MLOPS_ISSUE")]
    pub issue: bool,
    /// On drift, dispatch the train workflow on the default branch; needs `actions: write`.
    #[arg(long, env = "MLOPS_RETRAIN")]
    pub retrain: bool,
    #[command(flatten)]
    pub github: GithubArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// The registered model: NAME@VERSION, NAME@latest or NAME@approved.
    #[arg(
        long,
        env = "MLOPS_MODEL",
        required_unless_present = "pin",
        conflicts_with = "pin"
    )]
    pub model: Option<String>,
    /// Score with the version a pin file names (production's, as `mlops promote` writes it):
    /// its registry, its serving image, and its artifact's digest, checked.
    #[arg(long, env = "MLOPS_PIN")]
    pub pin: Option<PathBuf>,
    /// The rows to score: a CSV, JSON-lines or Parquet file, or an `s3://` object, with the
    /// model's feature columns (other columns are ignored).
    #[arg(long, env = "MLOPS_INPUT")]
    pub input: String,
    /// Where the scores go: a file or an `s3://` object, written only once whole and checked
    /// to hold one row per input row.
    #[arg(long, env = "MLOPS_OUTPUT")]
    pub output: String,
    /// The input's format, when its name does not end in .csv, .jsonl or .parquet.
    #[arg(long, env = "MLOPS_INPUT_FORMAT", value_enum)]
    pub input_format: Option<DataFormatArg>,
    /// The output's format, when its name does not end in .csv, .jsonl or .parquet.
    #[arg(long, env = "MLOPS_OUTPUT_FORMAT", value_enum)]
    pub output_format: Option<DataFormatArg>,
    /// The input column written beside each prediction (every row needs a value); without
    /// it, each output row has the input row's number (`row`, from 1).
    #[arg(long, env = "MLOPS_ID_COLUMN")]
    pub id_column: Option<String>,
    /// Replace the output when it exists (it is kept otherwise).
    #[arg(long, env = "MLOPS_OVERWRITE")]
    pub overwrite: bool,
    /// Rows per batch handed to the model.
    #[arg(long, env = "MLOPS_BATCH_ROWS", default_value_t = mlops_batch::score::BATCH_ROWS, value_parser = between::<usize>(1, 1 << 20))]
    pub batch_rows: usize,
    /// Prediction threads; defaults to the CPUs available.
    #[arg(long, env = "MLOPS_PREDICTION_THREADS", value_parser = at_least_one::<usize>)]
    pub threads: Option<usize>,
    /// Where the scoring runs: here, or as a SageMaker Batch Transform job on the model's
    /// serving image (the model in an S3 registry).
    #[arg(long, env = "MLOPS_PREDICT_BACKEND", value_enum, default_value_t = PredictBackend::Local)]
    pub backend: PredictBackend,
    #[command(flatten)]
    pub transform: TransformArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Where `mlops predict` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PredictBackend {
    /// In this process.
    Local,
    /// As a SageMaker Batch Transform job.
    Sagemaker,
}

/// `mlops predict --backend sagemaker`'s settings.
#[derive(Debug, Args)]
pub(crate) struct TransformArgs {
    /// SageMaker: the `s3://` prefix the job's rows and answers go under (a folder per job,
    /// kept after it: a re-run with the same input finds the job's answers there).
    #[arg(long, env = "MLOPS_TRANSFORM_PREFIX")]
    pub transform_prefix: Option<String>,
    /// SageMaker: the serving image by digest (REPOSITORY@sha256:...), when the model's card
    /// names none (`mlops image push` prints it).
    #[arg(long, env = "MLOPS_IMAGE")]
    pub image: Option<String>,
    /// SageMaker: the IAM role the model runs as (the one terraform/sagemaker.tf creates).
    #[arg(long, env = "MLOPS_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// SageMaker: the instance type of the job.
    #[arg(long, env = "MLOPS_INSTANCE_TYPE", default_value = "ml.m5.large")]
    pub instance_type: String,
    /// SageMaker: how many instances share the rows.
    #[arg(long, env = "MLOPS_INSTANCE_COUNT", default_value_t = 1, value_parser = between::<i32>(1, 100))]
    pub instance_count: i32,
    /// SageMaker: the largest request sent to the container, in MB (1 to 100).
    #[arg(long, env = "MLOPS_MAX_PAYLOAD_MB", default_value_t = 6, value_parser = between::<i32>(1, 100))]
    pub max_payload_mb: i32,
    /// SageMaker: requests in flight per instance.
    #[arg(long, env = "MLOPS_MAX_CONCURRENT_TRANSFORMS", default_value_t = 2, value_parser = between::<i32>(1, 64))]
    pub max_concurrent_transforms: i32,
    /// SageMaker: the job's name; by default it derives from the model, the input's digest and
    /// these settings, so a re-run attaches to the job an earlier one started.
    #[arg(long, env = "MLOPS_JOB_NAME")]
    pub job_name: Option<String>,
    /// SageMaker: the KMS key for the answers and the instances' volumes.
    #[arg(long, env = "MLOPS_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// SageMaker: seconds between the first two polls of the job (then doubling, up to 60).
    #[arg(long, env = "MLOPS_POLL_SECONDS", default_value_t = 15.0, value_parser = seconds)]
    pub poll_seconds: f64,
}

/// A dataset file format, named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DataFormatArg {
    Csv,
    Jsonl,
    Parquet,
}

impl From<DataFormatArg> for mlops_manifest::model::DataFormat {
    fn from(f: DataFormatArg) -> Self {
        match f {
            DataFormatArg::Csv => Self::Csv,
            DataFormatArg::Jsonl => Self::Jsonl,
            DataFormatArg::Parquet => Self::Parquet,
        }
    }
}

/// Where GitHub is. The token comes from `GITHUB_TOKEN` (or `MLOPS_GITHUB_TOKEN`), never from a
/// flag, so that it stays out of process listings.
#[derive(Debug, Args)]
pub(crate) struct GithubArgs {
    /// The REST API's URL; defaults to `GITHUB_API_URL` (set on GitHub's runners, and to
    /// https://HOST/api/v3 on GitHub Enterprise Server), else https://api.github.com.
    #[arg(long, env = "MLOPS_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// The registered model to promote: NAME@VERSION, NAME@latest or NAME@approved.
    #[arg(long, env = "MLOPS_MODEL")]
    pub model: String,
    /// The holdout report of this model against staging (`mlops holdout --report FILE`); its
    /// digest goes into the pin and the holdout commit status.
    #[arg(long, env = "MLOPS_HOLDOUT_REPORT")]
    pub holdout_report: Option<PathBuf>,
    /// The serving image by digest (REPOSITORY@sha256:...), recorded in the pin.
    #[arg(long, env = "MLOPS_IMAGE")]
    pub image: Option<String>,
    /// Who started the run that promotes (GitHub logins, comma-separated): recorded in the
    /// commit, and `mlops gate` does not count their approvals. Default in GitHub Actions: the
    /// run's actor and triggering actor.
    #[arg(long, env = "MLOPS_STARTED_BY", value_delimiter = ',', value_parser = mlops_github::parse_login)]
    pub started_by: Vec<String>,
    /// Print the pull request it would open (title, body, pin file diff); change nothing.
    #[arg(long, env = "MLOPS_DRY_RUN")]
    pub dry_run: bool,
    #[command(flatten)]
    pub github: GithubArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The manifest whose rendered loop is checked.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Skip the AWS roles' trust policies (GitHub settings only).
    #[arg(long, env = "MLOPS_NO_AWS")]
    pub no_aws: bool,
    #[command(flatten)]
    pub github: GithubArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GateArgs {
    /// The promotion pull request's number: are its approvals, as of its head, enough?
    #[arg(long, env = "MLOPS_PR", value_parser = at_least_one::<u64>, required_unless_present = "commit", conflicts_with = "commit")]
    pub pr: Option<u64>,
    /// A commit on the base branch (production's deploy job passes the push's): may production
    /// deploy its pin? Only when it is the merge commit of a promotion pull request that passes
    /// every rule and held exactly that pin at its head.
    #[arg(long, env = "MLOPS_COMMIT", value_parser = commit_sha)]
    pub commit: Option<String>,
    /// The manifest whose promotion rules apply.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub github: GithubArgs,
}

/// The environment a deploy changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeployEnv {
    Staging,
    Production,
}

impl DeployEnv {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DeployEnv::Staging => "staging",
            DeployEnv::Production => "production",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// The environment: staging deploys `--model`; production deploys what its pin file says.
    #[arg(long = "env", env = "MLOPS_ENVIRONMENT", value_enum)]
    pub env: DeployEnv,
    /// The registered model to deploy to staging (NAME@VERSION, NAME@latest, NAME@approved);
    /// refused for production, which deploys only its pin file.
    #[arg(long, env = "MLOPS_MODEL")]
    pub model: Option<String>,
    /// The pin file: production's is read (default: `promotion.pin_file` in the manifest's
    /// repository), staging's is written (default: `environments.staging.pin_file`).
    #[arg(long, env = "MLOPS_PIN")]
    pub pin: Option<PathBuf>,
    /// The service's base URL; defaults to the environment's `url` in the manifest.
    #[arg(long, env = "MLOPS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Change nothing: compare what the service serves with the pin, print the difference and
    /// exit 1 on drift.
    #[arg(long, env = "MLOPS_CHECK")]
    pub check: bool,
    /// How long to wait for the service to report the deployed version.
    #[arg(long, env = "MLOPS_TIMEOUT_SECONDS", default_value_t = 600, value_parser = at_least_one::<u64>)]
    pub timeout_seconds: u64,
    /// Return to the pin before the current one (from the pin file's git history): production
    /// through a revert promotion pull request (the gate applies), staging directly.
    #[arg(long, env = "MLOPS_ROLLBACK", conflicts_with_all = ["check", "model"])]
    pub rollback: bool,
    /// With --rollback on production: deploy the previous pin at once, without a pull request,
    /// recording who and why (needs --reason).
    #[arg(long, env = "MLOPS_BREAK_GLASS", requires_all = ["rollback", "reason"])]
    pub break_glass: bool,
    /// With --rollback on production: set production's pin file back on the base branch at
    /// once, without a pull request (the manifest must say `watch.rollback: immediate`; the
    /// token must be allowed past the branch's protection), then make production serve it.
    #[arg(
        long,
        env = "MLOPS_IMMEDIATE",
        requires = "rollback",
        conflicts_with = "break_glass"
    )]
    pub immediate: bool,
    /// Why (recorded in the rollback pull request, or the break-glass deploy's summary and tags).
    #[arg(long, env = "MLOPS_REASON")]
    pub reason: Option<String>,
    /// Also commit the staging pin file to the promotion repository's branch `mlops/staging`
    /// (created from the base branch) through the GitHub API, where a GitOps tool reads it;
    /// token from GITHUB_TOKEN. Never the base branch, which holds production's pin.
    #[arg(long, env = "MLOPS_COMMIT_PIN")]
    pub commit_pin: bool,
    /// Skip the environment's `watch` (the soak after the deploy).
    #[arg(long, env = "MLOPS_NO_WATCH")]
    pub no_watch: bool,
    /// On a breach of production's watch, open no rollback pull request here (a SageMaker
    /// endpoint still goes back at once): the step output `breach` names what breached, for a
    /// later job with the rights to open it (`--rollback --reason "$BREACH"`).
    #[arg(long, env = "MLOPS_DEFER_ROLLBACK_PR", conflicts_with_all = ["no_watch", "rollback", "check"])]
    pub defer_rollback_pr: bool,
    /// Delete the staging SageMaker endpoint (cost control); its models and configurations stay.
    #[arg(long, env = "MLOPS_TEARDOWN", conflicts_with_all = ["check", "model", "rollback"])]
    pub teardown: bool,
    /// The serving image by digest (REPOSITORY@sha256:...) for a staging deploy to SageMaker,
    /// when the model's card has none (production's comes from its pin).
    #[arg(long, env = "MLOPS_IMAGE")]
    pub image: Option<String>,
    /// The IAM role a SageMaker model runs as; defaults to `training.sagemaker.role_arn`.
    #[arg(long, env = "MLOPS_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// Seconds between the first two polls of a SageMaker endpoint (then doubling, up to 60).
    #[arg(long, env = "MLOPS_POLL_SECONDS", default_value_t = 15.0, value_parser = seconds)]
    pub poll_seconds: f64,
    #[command(flatten)]
    pub github: GithubArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Where the run writes: rendered files, logs, the holdout report, the local promotion
    /// repository, the pull request body and `run.json`. Defaults to `.mlops/run` beside the
    /// manifest.
    #[arg(long, env = "MLOPS_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// The model registry; defaults to the manifest's `registry.path` when that is a local
    /// directory, else `registry/` in the work dir (the run needs no cloud account).
    #[arg(long, env = "MLOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Open the promotion pull request on GitHub (token from GITHUB_TOKEN) instead of preparing
    /// it in the local repository; the run then ends at the pull request, which waits for a
    /// human's review.
    #[arg(long, env = "MLOPS_OPEN_PR")]
    pub open_pr: bool,
    #[command(flatten)]
    pub github: GithubArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag of every subcommand is mirrored to an `MLOPS_*` variable (the actions rely on it).
    #[test]
    fn every_flag_has_an_mlops_variable() {
        let cli = Cli::command();
        let mut checked = 0;
        let nested: Vec<&clap::Command> = cli
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
            .collect();
        for cmd in std::iter::once(&cli).chain(nested) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_positional() {
                    continue;
                }
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
                assert!(
                    env.starts_with("MLOPS_"),
                    "`{} --{id}` has no MLOPS_* variable",
                    cmd.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked >= 2, "only {checked} flags seen");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
