//! The SageMaker backend of training: the same worker as a local run, as a SageMaker training
//! job running the model image from ECR (pinned by digest), a model package in the manifest's
//! model package group, and then (in the caller) the same registration as a local run. For
//! `model.family: onnx` the job runs the user's own training image instead, whose model
//! directory holds a `model.onnx`; that file is measured here by the same worker code as a local
//! `onnx` run (the job's datasets and the file laid out as `/opt/ml`) before it is packaged.
//!
//! The job's name derives from the run (repository, workflow run and attempt, manifest and
//! data), so running the step again attaches to the job it started instead of starting another.
//! SIGINT and SIGTERM stop the job before the flow ends (cancelled); so does `--wait-timeout`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mlops_artifacts::artifact::hex;
use mlops_aws::{Ecr, JobState, PackageSpec, Poll, S3, S3Uri, SageMaker, TrainingSpec};
use mlops_manifest::Manifest;
use mlops_manifest::model::{Device, Family, SagemakerTraining};
use mlops_registry::Registry;
use mlops_train::card::SagemakerRun;
use mlops_train::worker::{Job, Report};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::train::manifest_sha;
use crate::{Problem, Progress};

mod tuning;

/// SageMaker's limit on one hyperparameter value.
const HYPERPARAMETER_LENGTH: usize = 2500;

/// How long a stop may take to be acknowledged before we say the job may still run.
const STOP_PATIENCE: Duration = Duration::from_secs(300);

/// SageMaker's limit on a hyperparameter tuning job's name.
const TUNING_NAME_LENGTH: usize = 32;

/// How much of the prefix a tuning job's name keeps: 32 characters less `-` and 16 hex digits.
/// The rendered training role's policy cuts the prefix the same way.
const TUNING_PREFIX_LENGTH: usize = TUNING_NAME_LENGTH - 17;

/// The prefix of a tuning job's name: the project's prefix, cut to 15 characters.
pub fn tuning_prefix(m: &Manifest) -> &str {
    let prefix = name_prefix(m);
    prefix.get(..TUNING_PREFIX_LENGTH).unwrap_or(prefix)
}

/// The prefix every AWS name of the project starts with (as `mlops render` derives it).
fn name_prefix(m: &Manifest) -> &str {
    m.infrastructure
        .as_ref()
        .and_then(|i| i.terraform.name_prefix.as_deref())
        .unwrap_or(&m.project.name)
}

/// The workflow run (`owner/repo/run/attempt`) when in GitHub Actions.
fn workflow_run() -> Option<(String, String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some((
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?,
        var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".to_owned()),
    ))
}

/// `PREFIX-` and 16 hex digits of the SHA-256 of the run, the manifest and the data: the same
/// step of the same run attempt gets the same name; outside Actions, the same manifest and data
/// do (and so attach to the job that already trained them).
pub fn job_name(prefix: &str, manifest_sha: &str, data: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    match workflow_run() {
        Some((repo, run, attempt)) => h.update(format!("{repo}\n{run}\n{attempt}\n")),
        None => h.update(b"local\n"),
    }
    h.update(manifest_sha.as_bytes());
    for (channel, identity) in data {
        h.update(format!("\n{channel}={identity}"));
    }
    let digest = hex(&h.finalize());
    format!("{prefix}-{}", digest.get(..16).unwrap_or(&digest))
}

/// An image digest: `sha256:` and 64 lowercase hex digits.
fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| mlops_render::filters::lower_hex(h, 64))
}

/// SageMaker's rule for job names.
pub(crate) fn valid_job_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The SHA-256 of a file, streamed.
fn file_sha(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex(&h.finalize()))
}

/// A dataset channel: in S3 already, or a local file to upload under its content hash.
enum Data {
    Remote(String),
    Local { path: PathBuf, sha: String },
}

impl Data {
    fn identity(&self) -> String {
        match self {
            Data::Remote(uri) => uri.clone(),
            Data::Local { sha, .. } => format!("sha256:{sha}"),
        }
    }
}

/// The metric definitions that find the worker's epoch lines (`epoch=3 loss=0.1
/// validation_loss=0.2 validation_accuracy=0.9`) in the job's log.
fn metric_definitions(m: &Manifest) -> Vec<(String, String)> {
    let number = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)";
    let mut defs = vec![
        ("loss".to_owned(), format!(r"\bloss={number}")),
        (
            "validation:loss".to_owned(),
            format!(r"\bvalidation_loss={number}"),
        ),
    ];
    let metrics = if m.evaluation.metrics.is_empty() {
        mlops_manifest::model::Metric::defaults(m.model.task).to_vec()
    } else {
        m.evaluation.metrics.clone()
    };
    for metric in metrics {
        defs.push((
            format!("validation:{}", metric.name()),
            format!(r"\bvalidation_{}={number}", metric.name()),
        ));
    }
    defs
}

/// Everything the run needs, worked out before any AWS call.
struct Plan<'a> {
    sm: &'a SagemakerTraining,
    /// The image: a tag or a digest in `sm.image.repository`.
    image_tag: Option<String>,
    image_digest: Option<String>,
    name_given: Option<String>,
    job: Job,
    data: Vec<(String, Data)>,
    manifest_sha: String,
    poll: Poll,
    timeout: Option<Duration>,
    /// The sweep as a tuning job, when the manifest sweeps.
    tuning: Option<crate::sweep::Tuning>,
}

/// What a SageMaker training run is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    /// The validated manifest, its path and its bytes.
    pub manifest: &'a Manifest,
    pub manifest_path: &'a Path,
    pub source: &'a [u8],
    /// Where an earlier run of the same job may have registered its model already.
    pub registry: &'a Registry,
    /// The job's name instead of the derived one.
    pub job_name: Option<String>,
    /// The model image by digest instead of the manifest's tag or digest.
    pub image_digest: Option<String>,
    /// The first poll interval, in seconds (doubling up to a minute).
    pub poll_seconds: f64,
    /// Stop the job when it has not finished after this many seconds.
    pub wait_timeout: Option<u64>,
}

/// Trains on SageMaker, or finds the model an earlier run of the same job registered.
pub fn train(req: &Request<'_>, progress: &mut dyn Progress) -> Result<Outcome, Problem> {
    let m = req.manifest;
    let Some(sm) = &m.training.sagemaker else {
        return Err(Problem::input(
            "the sagemaker backend needs a `training.sagemaker` section in the manifest",
            "add `training.sagemaker` with at least `role_arn`, `image` and `instance_type`",
        ));
    };
    let tuning = crate::sweep::tuning(m)?;
    if let Some(name) = &req.job_name {
        if tuning.is_some() && !(valid_job_name(name) && name.len() <= TUNING_NAME_LENGTH) {
            return Err(Problem::input(
                format!("`{name}` is not a valid SageMaker hyperparameter tuning job name"),
                "the manifest sweeps, so --job-name names a tuning job: 1 to 32 letters, digits \
                 and hyphens, starting and ending with a letter or digit",
            ));
        }
        if !valid_job_name(name) {
            return Err(Problem::input(
                format!("`{name}` is not a valid SageMaker training job name"),
                "1 to 63 letters, digits and hyphens, starting and ending with a letter or digit",
            ));
        }
    }
    let (image_tag, image_digest) = match (&req.image_digest, &sm.image.tag, &sm.image.digest) {
        (Some(d), _, _) if !valid_digest(d) => {
            return Err(Problem::input(
                format!("--image-digest `{d}` is not `sha256:` and 64 lowercase hex digits"),
                "pass the digest `mlops image push` printed",
            ));
        }
        (Some(d), _, _) => (None, Some(d.clone())),
        (None, None, None) => {
            return Err(Problem::input(
                format!(
                    "training.sagemaker.image names no tag or digest in `{}`, and no \
                     --image-digest was given",
                    sm.image.repository
                ),
                "push the model image with `mlops image push` and pass the digest it prints \
                 (--image-digest or MLOPS_IMAGE_DIGEST; the train workflow does both), or give \
                 the image a `tag` in the manifest",
            ));
        }
        (None, t, d) => (t.clone(), d.clone()),
    };
    let mut job = Job::from_manifest(m);
    // The model image trains on the CPU (see the README on GPUs); the local device setting is
    // for this machine.
    job.device = Device::Cpu;
    job.require_gpu = false;
    let hyperparameters = job.to_hyperparameters();
    if let Some((k, v)) = hyperparameters
        .iter()
        .find(|(_, v)| v.len() > HYPERPARAMETER_LENGTH)
    {
        return Err(Problem::input(
            format!(
                "the hyperparameter `{k}` is {} characters; SageMaker allows {HYPERPARAMETER_LENGTH}",
                v.len()
            ),
            "shorten it in the manifest (feature lists may be written as ranges: pixel_{0..63})",
        ));
    }
    if sm.instance_type.starts_with("ml.g") || sm.instance_type.starts_with("ml.p") {
        progress.notice(&format!(
            "warning: {} is a GPU instance, but the model image trains on the CPU (see the README, GPUs)",
            sm.instance_type
        ));
    }
    let dir = req.manifest_path.parent().unwrap_or(Path::new("."));
    let mut data = Vec::new();
    for (channel, s) in &job.datasets {
        if s.path.starts_with("s3://") {
            if let Err(e) = S3Uri::parse(&s.path) {
                return Err(e.into());
            }
            data.push((channel.clone(), Data::Remote(s.path.clone())));
        } else {
            let path = dir.join(&s.path);
            match file_sha(&path) {
                Ok(sha) => data.push((channel.clone(), Data::Local { path, sha })),
                Err(e) => {
                    return Err(Problem::input(
                        format!(
                            "{}: the {channel} dataset cannot be read: {e}",
                            path.display()
                        ),
                        "dataset paths in the manifest are relative to the manifest's directory",
                    ));
                }
            }
        }
    }
    let first = Duration::from_secs_f64(req.poll_seconds.min(60.0));
    let plan = Plan {
        sm,
        image_tag,
        image_digest,
        name_given: req.job_name.clone(),
        job,
        data,
        manifest_sha: manifest_sha(req.source),
        poll: Poll {
            first,
            max: Duration::from_secs(60).max(first),
            failures: 8,
        },
        timeout: req.wait_timeout.map(Duration::from_secs),
        tuning,
    };
    let work = match tempfile::Builder::new()
        .prefix("mlops-sagemaker-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            return Err(Problem::broken(
                format!("cannot create a working directory: {e}"),
                "",
            ));
        }
    };
    let rt = crate::runtime::multi_thread()?;
    let out = Out(RefCell::new(progress));
    let outcome = rt.block_on(run(m, &plan, req.registry, work.path(), &out))?;
    Ok(match outcome {
        Found::Registered(reference) => Outcome::Registered(reference),
        Found::Trained(found) => {
            let Collected {
                model_dir,
                report,
                sagemaker,
                sweep,
            } = *found;
            let (job, sweep) = match sweep {
                Some(s) => (s.job, Some((s.record, s.manifest))),
                None => (plan.job, None),
            };
            Outcome::Trained(Box::new(Done {
                _work: work,
                model_dir,
                job,
                report,
                sagemaker,
                sweep,
            }))
        }
    })
}

/// The clients one run uses, configured once.
struct Clients {
    sagemaker: SageMaker,
    s3: S3,
}

/// The caller's progress, shared by the futures that wait on the job and follow its log (one
/// thread; no borrow is held across an await).
struct Out<'p>(RefCell<&'p mut dyn Progress>);

impl Out<'_> {
    fn step(&self, line: &str) {
        self.0.borrow_mut().step(line);
    }

    fn notice(&self, line: &str) {
        self.0.borrow_mut().notice(line);
    }
}

/// A trained model, ready to be registered: its directory (in a temporary directory that lives
/// as long as this), the job it ran, the worker's report and the SageMaker run; for a sweep, its
/// record and the winning trial's manifest.
#[derive(Debug)]
pub struct Done {
    _work: tempfile::TempDir,
    pub model_dir: PathBuf,
    pub job: Job,
    pub report: Report,
    pub sagemaker: SagemakerRun,
    pub sweep: Option<(mlops_artifacts::sweep::SweepRecord, Manifest)>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Trained(Box<Done>),
    /// The job's model was registered by an earlier run (its reference).
    Registered(String),
}

/// What the job produced, before it is bound to the working directory.
enum Found {
    Trained(Box<Collected>),
    Registered(String),
}

/// The model directory, the worker's report and the SageMaker run; for a sweep, what chose it.
struct Collected {
    model_dir: PathBuf,
    report: Report,
    sagemaker: SagemakerRun,
    sweep: Option<tuning::Swept>,
}

async fn run(
    m: &Manifest,
    plan: &Plan<'_>,
    registry: &Registry,
    work: &Path,
    out: &Out<'_>,
) -> Result<Found, Problem> {
    let signal = crate::runtime::interrupted();
    tokio::pin!(signal);
    let aws = Clients {
        sagemaker: SageMaker::from_env().await,
        s3: S3::from_env().await,
    };
    let sagemaker = &aws.sagemaker;
    let (name, output) = tokio::select! {
        r = prepare(m, plan) => r?,
        sig = &mut signal => {
            return Err(Problem::cancelled(
                format!("{sig}: cancelled before the training job was named; nothing was started"),
                "",
            ));
        }
    };
    if let Some(reference) = registered(registry, &m.model.name, &name) {
        return Ok(Found::Registered(reference));
    }
    if plan.tuning.is_some() {
        let cx = tuning::Cx {
            m,
            plan,
            aws: &aws,
            work,
            out,
        };
        return tuning::run(&cx, &name, &output, signal.as_mut()).await;
    }
    let started = tokio::select! {
        r = launch(m, plan, &aws, &name, &output, out) => r,
        sig = &mut signal => {
            out.notice(&format!("{sig}: cancelling"));
            return Err(stop(sagemaker, Stopping::Training(&name), plan.poll, cancelled(sig, "training job", &name), out).await);
        }
    };
    let image = started?;
    let show = |s: &JobState| {
        let message = s.transitions.last().map(|(_, m)| m.as_str()).unwrap_or("");
        let line = format!(
            "training job {}: {} ({}) {message}",
            s.name, s.status, s.secondary
        );
        out.step(line.trim_end());
    };
    let timeout = async {
        match plan.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let logs = mlops_aws::Logs::from_env().await;
    let mut cursor = mlops_aws::logs::Cursor::default();
    let mut tailing = true;
    let end = tokio::select! {
        r = sagemaker.wait(&name, plan.poll, show) => r?,
        never = follow(&logs, &name, plan, &mut cursor, &mut tailing, out) => match never {},
        sig = &mut signal => {
            out.notice(&format!("{sig}: stopping the training job {name}"));
            return Err(stop(sagemaker, Stopping::Training(&name), plan.poll, cancelled(sig, "training job", &name), out).await);
        }
        () = timeout => {
            let why = Problem::broken(
                format!("the training job {name} did not finish within --wait-timeout; stopped it"),
                "raise --wait-timeout (MLOPS_WAIT_TIMEOUT), or training.sagemaker.max_runtime_seconds",
            );
            out.notice(&format!("the training job {name} did not finish within --wait-timeout; stopping it"));
            return Err(stop(sagemaker, Stopping::Training(&name), plan.poll, why, out).await);
        }
    };
    if tailing {
        print_log(&logs, &name, out, &mut cursor).await;
    }
    match end.status.as_str() {
        "Completed" => {}
        "Failed" => {
            return Err(Problem::broken(
                format!(
                    "the training job {name} failed: {}",
                    end.failure_reason
                        .as_deref()
                        .unwrap_or("SageMaker gave no reason")
                ),
                format!(
                    "the job's log is in CloudWatch, log group {}, streams {name}/*",
                    mlops_aws::logs::TRAINING_LOG_GROUP
                ),
            ));
        }
        other => {
            return Err(Problem::broken(
                format!("the training job {name} ended {other}, without a model"),
                "it was stopped outside this run; run again with another --job-name to train anew",
            ));
        }
    }
    let image = image.or_else(|| end.image.clone()).unwrap_or_default();
    collect(m, plan, &aws, &name, &end, &image, work, out)
        .await
        .map(|(model_dir, report, sagemaker)| {
            Found::Trained(Box::new(Collected {
                model_dir,
                report,
                sagemaker,
                sweep: None,
            }))
        })
}

/// Prints the job's new log lines every few polls, for as long as it is polled; stops (with one
/// warning) if the log cannot be read, since the log is a convenience and the job goes on.
async fn follow(
    logs: &mlops_aws::Logs,
    name: &str,
    plan: &Plan<'_>,
    cursor: &mut mlops_aws::logs::Cursor,
    tailing: &mut bool,
    out: &Out<'_>,
) -> std::convert::Infallible {
    let every = plan.poll.first.max(Duration::from_millis(100)) * 3;
    loop {
        tokio::time::sleep(every).await;
        if *tailing && !print_log(logs, name, out, cursor).await {
            *tailing = false;
        }
    }
}

/// Prints the log lines written since `cursor`; `false` (after a warning) when it cannot.
async fn print_log(
    logs: &mlops_aws::Logs,
    name: &str,
    out: &Out<'_>,
    cursor: &mut mlops_aws::logs::Cursor,
) -> bool {
    match logs.fetch(name, cursor).await {
        Ok(lines) => {
            for (instance, line) in lines {
                out.step(&format!("[{instance}] {line}"));
            }
            true
        }
        Err(e) => {
            out.notice(&format!(
                "warning: the training log cannot be read ({}); the job goes on",
                e.message
            ));
            false
        }
    }
}

/// The registry version an earlier run registered from the job `name`, if any.
fn registered(registry: &Registry, model: &str, name: &str) -> Option<String> {
    let entries = registry.list().ok()?;
    entries
        .iter()
        .filter(|e| e.model == model)
        .find(|e| {
            registry
                .card(&e.model, e.version)
                .ok()
                .and_then(|c| c.sagemaker)
                .is_some_and(|s| s.training_job == name || s.tuning_job.as_deref() == Some(name))
        })
        .map(|e| e.reference.clone())
}

/// Names the job and works out where its output goes.
async fn prepare(m: &Manifest, plan: &Plan<'_>) -> Result<(String, S3Uri), Problem> {
    let output = match &plan.sm.output_uri {
        Some(uri) => S3Uri::parse(uri)?,
        None => {
            let account = mlops_aws::account_id().await?;
            S3Uri {
                bucket: format!("{}-{account}-ml", name_prefix(m)),
                key: "training".to_owned(),
            }
        }
    };
    let mut identities: Vec<(String, String)> = plan
        .data
        .iter()
        .map(|(c, d)| (c.clone(), d.identity()))
        .collect();
    // Outside the manifest, the image given is part of what the job is.
    if let Some(d) = &plan.image_digest
        && plan.sm.image.digest.as_ref() != Some(d)
    {
        identities.push(("image".to_owned(), d.clone()));
    }
    // A tuning job's name is at most 32 characters: the prefix is cut to leave room for the hash.
    let prefix = match &plan.tuning {
        Some(_) => tuning_prefix(m),
        None => name_prefix(m),
    };
    let name = plan
        .name_given
        .clone()
        .unwrap_or_else(|| job_name(prefix, &plan.manifest_sha, &identities));
    Ok((name, output))
}

/// Attaches to the job `name` when it exists; otherwise resolves the image, uploads local data
/// and creates it. The image by digest when this run resolved it.
async fn launch(
    m: &Manifest,
    plan: &Plan<'_>,
    aws: &Clients,
    name: &str,
    output: &S3Uri,
    out: &Out<'_>,
) -> Result<Option<String>, Problem> {
    let sagemaker = &aws.sagemaker;
    if let Some(existing) = sagemaker.training_job(name).await? {
        out.step(&format!(
            "attached to the existing training job {name} ({}); no new job started",
            existing.status
        ));
        return Ok(None);
    }
    let spec = definition(m, plan, aws, name, output, out).await?;
    let arn = sagemaker.create_training_job(&spec).await?;
    out.step(&format!("started training job {name} ({arn})"));
    Ok(Some(spec.image))
}

/// What the job `name` runs: the image resolved (and its scan checked), local datasets uploaded
/// under their content hash, the manifest's settings and tags.
async fn definition(
    m: &Manifest,
    plan: &Plan<'_>,
    aws: &Clients,
    name: &str,
    output: &S3Uri,
    out: &Out<'_>,
) -> Result<TrainingSpec, Problem> {
    let s3 = &aws.s3;
    let sm = plan.sm;
    let ecr = Ecr::from_env().await;
    let image = ecr
        .resolve(
            &sm.image.repository,
            plan.image_tag.as_deref(),
            plan.image_digest.as_deref(),
        )
        .await?;
    out.step(&format!("image {}", image.uri));
    if sm.forbid_critical_findings {
        match ecr.findings(&image).await? {
            None => out.notice(&format!(
                "warning: {}@{} has no ECR scan; turn on scan on push to have it checked",
                image.repository, image.digest
            )),
            Some(counts) => {
                let critical = counts.get("CRITICAL").copied().unwrap_or(0);
                if critical > 0 {
                    return Err(Problem::refused(
                        format!(
                            "{}@{} has {critical} CRITICAL scan finding(s); the manifest forbids them",
                            image.repository, image.digest
                        ),
                        "rebuild the image on a patched base, or set \
                         training.sagemaker.forbid_critical_findings: false",
                    ));
                }
            }
        }
    }
    let mut channels = Vec::new();
    for (channel, data) in &plan.data {
        match data {
            Data::Remote(uri) => channels.push((channel.clone(), uri.clone())),
            Data::Local { path, sha } => {
                let file = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "data".to_owned());
                let uri = S3Uri {
                    bucket: output.bucket.clone(),
                    key: format!(
                        "{}datasets/sha256-{sha}/{file}",
                        if output.key.is_empty() {
                            String::new()
                        } else {
                            format!("{}/", output.key.trim_end_matches('/'))
                        }
                    ),
                };
                if s3.exists(&uri).await? {
                    out.step(&format!(
                        "{channel}: {uri} is there already (same SHA-256); not uploaded"
                    ));
                } else {
                    s3.upload(path, &uri).await?;
                    out.step(&format!("{channel}: uploaded {} to {uri}", path.display()));
                }
                channels.push((channel.clone(), uri.to_string()));
            }
        }
    }
    let mut tags = sm.tags.clone();
    tags.insert("mlops:project".to_owned(), m.project.name.clone());
    tags.insert("mlops:repository".to_owned(), m.project.repository.clone());
    tags.insert(
        "mlops:manifest-sha256".to_owned(),
        plan.manifest_sha.clone(),
    );
    tags.insert(
        "mlops:workflow-run".to_owned(),
        workflow_run().map_or_else(
            || "local".to_owned(),
            |(repo, run, attempt)| format!("{repo}/actions/runs/{run}/attempts/{attempt}"),
        ),
    );
    let spec = TrainingSpec {
        name: name.to_owned(),
        role_arn: sm.role_arn.clone(),
        image: image.uri.clone(),
        instance_type: sm.instance_type.clone(),
        instance_count: 1,
        volume_size_gb: i32::try_from(sm.volume_size_gb).unwrap_or(i32::MAX),
        volume_kms_key: sm.volume_kms_key.clone(),
        max_runtime_seconds: i32::try_from(sm.max_runtime_seconds).unwrap_or(i32::MAX),
        spot: sm.spot.as_ref().map(|s| {
            (
                s.checkpoint_uri.clone(),
                i32::try_from(s.max_wait_seconds).unwrap_or(i32::MAX),
            )
        }),
        output_uri: output.to_string(),
        output_kms_key: sm.output_kms_key.clone(),
        vpc: sm
            .vpc
            .as_ref()
            .map(|v| (v.subnet_ids.clone(), v.security_group_ids.clone())),
        environment: sm.environment.clone(),
        hyperparameters: plan.job.to_hyperparameters(),
        channels,
        metric_definitions: metric_definitions(m),
        tags,
    };
    Ok(spec)
}

/// The job a stop is for.
#[derive(Debug, Clone, Copy)]
enum Stopping<'a> {
    Training(&'a str),
    /// A hyperparameter tuning job, and with it every trial it runs.
    Tuning(&'a str),
}

/// Stops the job and returns `then` once SageMaker acknowledged it; if it did not, the failure
/// that says the job may still run.
async fn stop(
    sagemaker: &SageMaker,
    job: Stopping<'_>,
    poll: Poll,
    then: Problem,
    out: &Out<'_>,
) -> Problem {
    let quick = Poll {
        first: poll.first.min(Duration::from_secs(2)),
        max: poll.max.min(Duration::from_secs(10)),
        failures: poll.failures,
    };
    let (noun, name, stopped) = match job {
        Stopping::Training(name) => (
            "training job",
            name,
            sagemaker
                .stop(name, quick, STOP_PATIENCE)
                .await
                .map(|s| s.status),
        ),
        Stopping::Tuning(name) => (
            "hyperparameter tuning job",
            name,
            sagemaker
                .stop_tuning(name, quick, STOP_PATIENCE)
                .await
                .map(|s| s.status),
        ),
    };
    match stopped {
        Ok(status) => {
            out.notice(&format!("{noun} {name}: {status}"));
            then
        }
        Err(e) if e.kind == mlops_aws::Kind::Missing => {
            out.notice(&format!("no {noun} {name} was started"));
            then
        }
        Err(e) => e.into(),
    }
}

/// The run was cancelled by `sig` after the job (`noun`) `name` was named (and stopped).
fn cancelled(sig: &str, noun: &str, name: &str) -> Problem {
    Problem::cancelled(format!("{sig}: the {noun} {name} was stopped"), "")
}

/// Downloads and unpacks the artifact, reads its report, and registers the model package.
#[allow(clippy::too_many_arguments)]
async fn collect(
    m: &Manifest,
    plan: &Plan<'_>,
    aws: &Clients,
    name: &str,
    end: &JobState,
    image: &str,
    work: &Path,
    out: &Out<'_>,
) -> Result<(PathBuf, Report, SagemakerRun), Problem> {
    let Some(artifact) = end.model_artifact.clone() else {
        return Err(Problem::broken(
            format!("the training job {name} completed without a model artifact"),
            "the worker writes the model into /opt/ml/model; see the job's log",
        ));
    };
    let uri = S3Uri::parse(&artifact)?;
    let tarball = work.join("model.tar.gz");
    aws.s3.download(&uri, &tarball).await?;
    let model_dir = work.join("model");
    if let Err(e) = unpack(&tarball, &model_dir) {
        return Err(Problem::broken(
            format!("{artifact}: not a model artifact: {e}"),
            "it should be the gzipped tar of /opt/ml/model that SageMaker uploads",
        ));
    }
    let (model_dir, report) = if plan.job.family == Family::Onnx {
        evaluate(plan, aws, name, &artifact, &model_dir, work, out).await?
    } else {
        (model_dir.clone(), read_report(&artifact, &model_dir)?)
    };
    let mut record = SagemakerRun {
        training_job: name.to_owned(),
        training_job_arn: end.arn.clone(),
        image: image.to_owned(),
        image_digest: image.rsplit_once('@').map(|(_, d)| d.to_owned()),
        model_artifact: artifact.clone(),
        final_metrics: end.final_metrics.clone(),
        billable_seconds: end.billable_seconds.map(i64::from),
        model_package_group: None,
        model_package_arn: None,
        tuning_job: None,
    };
    if let Some(group) = &m.registry.sagemaker_model_package_group {
        let arn = package(m, plan, aws, group, name, image, &uri, &report, out).await?;
        record.model_package_group = Some(group.clone());
        record.model_package_arn = Some(arn);
    }
    Ok((model_dir, report, record))
}

/// The worker's report in the model image's artifact.
fn read_report(artifact: &str, model_dir: &Path) -> Result<Report, Problem> {
    std::fs::read(model_dir.join("training.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| {
            Problem::broken(
                format!("{artifact}: training.json is missing or unreadable: {e}"),
                "the artifact must come from `mlops container train` (the model image)",
            )
        })
}

/// Measures the model.onnx a training image of the user's wrote, here, the way a local `onnx`
/// run does: the job's datasets (local, or downloaded from S3) and the file as the `model`
/// channel of an `/opt/ml` layout, then the worker. The evaluated model directory and report.
#[allow(clippy::too_many_arguments)]
async fn evaluate(
    plan: &Plan<'_>,
    aws: &Clients,
    name: &str,
    artifact: &str,
    unpacked: &Path,
    work: &Path,
    out: &Out<'_>,
) -> Result<(PathBuf, Report), Problem> {
    let onnx = unpacked.join(mlops_artifacts::artifact::ONNX);
    if !onnx.is_file() {
        let mut held: Vec<String> = std::fs::read_dir(unpacked)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        held.sort();
        return Err(Problem::input(
            format!(
                "{artifact}: the training job {name} wrote no model.onnx (its model directory \
                 holds: {})",
                if held.is_empty() {
                    "nothing".to_owned()
                } else {
                    held.join(", ")
                }
            ),
            "an `onnx` model's training image exports the model to /opt/ml/model/model.onnx \
             (SM_MODEL_DIR); nothing was registered",
        ));
    }
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut remote = Vec::new();
    for (channel, data) in &plan.data {
        match data {
            Data::Local { path, .. } => {
                files.insert(channel.clone(), path.clone());
            }
            Data::Remote(uri) => remote.push((channel.clone(), S3Uri::parse(uri)?)),
        }
    }
    let fetched = crate::train::fetch(&aws.s3, &remote, &work.join("downloads"), |line| {
        out.step(&format!("{line}, to measure the model"));
    })
    .await?;
    files.extend(fetched);
    files.insert(
        mlops_artifacts::training::MODEL_CHANNEL.to_owned(),
        onnx.clone(),
    );
    let layout = mlops_train::worker::Layout::new(work.join("evaluate"));
    layout
        .prepare(&plan.job, &files)
        .map_err(|e| Problem::broken(e, ""))?;
    out.step("measuring the job's model.onnx on the validation and holdout data");
    // The worker is synchronous and short (one pass over the data through tract).
    let report = tokio::task::block_in_place(|| mlops_train::worker::run(&layout, |_| {}))?;
    Ok((layout.model(), report))
}

/// Registers the job's model as a package in `group` (pending manual approval), with its
/// metrics as `ModelMetrics` (a JSON document beside the artifact).
#[allow(clippy::too_many_arguments)]
async fn package(
    m: &Manifest,
    plan: &Plan<'_>,
    aws: &Clients,
    group: &str,
    name: &str,
    image: &str,
    artifact: &S3Uri,
    report: &Report,
    out: &Out<'_>,
) -> Result<String, Problem> {
    let (sagemaker, s3) = (&aws.sagemaker, &aws.s3);
    sagemaker
        .ensure_group(group, &format!("Versions of {} (mlops)", m.model.name))
        .await?;
    let earlier = sagemaker
        .find_package(group, "mlops:training-job", name, 20)
        .await?;
    if let Some(p) = earlier {
        out.step(&format!("the job's model package is {} already", p.arn));
        return Ok(p.arn);
    }
    let metrics_uri = S3Uri {
        bucket: artifact.bucket.clone(),
        key: match artifact.key.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/mlops-metrics.json"),
            None => "mlops-metrics.json".to_owned(),
        },
    };
    let metrics = json!({ "model": m.model.name, "task": m.model.task, "metrics": report.metrics });
    s3.put(&metrics_uri, metrics.to_string().into_bytes())
        .await?;
    let metadata = BTreeMap::from([
        ("mlops:training-job".to_owned(), name.to_owned()),
        (
            "mlops:manifest-sha256".to_owned(),
            plan.manifest_sha.clone(),
        ),
        ("mlops:model".to_owned(), m.model.name.clone()),
    ]);
    let digest = hex(&Sha256::digest(name.as_bytes()));
    let token: String = digest.get(..32).unwrap_or(&digest).to_owned();
    let arn = sagemaker
        .create_package(&PackageSpec {
            group: group.to_owned(),
            description: format!("{} trained by the SageMaker job {name}", m.model.name),
            image: image.to_owned(),
            model_data_url: artifact.to_string(),
            metrics_uri: Some(metrics_uri.to_string()),
            metadata,
            client_token: token,
        })
        .await?;
    out.step(&format!(
        "registered model package {arn} (PendingManualApproval)"
    ));
    Ok(arn)
}

/// Unpacks a gzipped tar into `dir`: regular files only, none outside `dir`.
fn unpack(tarball: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_file() || kind.is_dir() {
            entry.unpack_in(dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_valid_and_start_with_the_prefix() {
        let name = job_name(
            "a".repeat(32).as_str(),
            &"0".repeat(64),
            &[("train".into(), "sha256:ab".into())],
        );
        assert!(valid_job_name(&name), "{name}");
        assert!(name.starts_with(&"a".repeat(32)));
        assert_eq!(name.len(), 32 + 1 + 16);
        let other = job_name(
            "a".repeat(32).as_str(),
            &"0".repeat(64),
            &[("train".into(), "sha256:ac".into())],
        );
        assert_ne!(name, other, "other data, another job");
        for bad in ["", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(!valid_job_name(bad), "{bad}");
        }
    }

    #[test]
    fn metric_definitions_find_the_epoch_lines() {
        let m = mlops_manifest::check_file(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sagemaker/mlops.yaml"
        )))
        .expect("reads")
        .manifest
        .expect("valid");
        let defs = metric_definitions(&m);
        let names: Vec<&str> = defs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "loss",
                "validation:loss",
                "validation:accuracy",
                "validation:precision_macro",
                "validation:recall_macro",
                "validation:f1_macro"
            ]
        );
        let line = mlops_train::worker::epoch_line(&mlops_train::train::Epoch {
            epoch: 3,
            loss: 0.25,
            validation_loss: 0.5,
            metrics: BTreeMap::from([
                ("accuracy".to_owned(), 0.875),
                ("f1_macro".to_owned(), 1e-7),
                ("precision_macro".to_owned(), 0.5),
                ("recall_macro".to_owned(), 0.75),
            ]),
            seconds: 1.0,
        });
        let found: Vec<f64> = defs
            .iter()
            .map(|(name, re)| {
                let re = regex::Regex::new(re).expect("compiles");
                let caps = re
                    .captures(&line)
                    .unwrap_or_else(|| panic!("{name}: {line}"));
                caps[1].parse().expect("a number")
            })
            .collect();
        assert_eq!(found, [0.25, 0.5, 0.875, 0.5, 0.75, 0.0]);
    }
}
