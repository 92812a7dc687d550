//! `mlops train --backend sagemaker`: the same worker as a local run, as a SageMaker training
//! job running the model image from ECR (pinned by digest), then the same registration, plus a
//! model package in the manifest's model package group.
//!
//! The job's name derives from the run (repository, workflow run and attempt, manifest and
//! data), so running the step again attaches to the job it started instead of starting another.
//! SIGINT and SIGTERM stop the job before the process exits (130); so does `--wait-timeout`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mlops_aws::{Ecr, JobState, PackageSpec, Poll, S3, S3Uri, SageMaker, TrainingSpec};
use mlops_manifest::Manifest;
use mlops_manifest::model::{Device, SagemakerTraining};
use mlops_train::card::SagemakerRun;
use mlops_train::registry::Registry;
use mlops_train::worker::{Job, Report};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::train::{Trained, conclude, manifest_sha};
use super::{aws_failed, error, hex};
use crate::cli::{Format, TrainArgs};
use crate::exit::Exit;

/// SageMaker's limit on one hyperparameter value.
const HYPERPARAMETER_LENGTH: usize = 2500;

/// How long a stop may take to be acknowledged before we say the job may still run.
const STOP_PATIENCE: Duration = Duration::from_secs(300);

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
pub(crate) fn job_name(prefix: &str, manifest_sha: &str, data: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    match workflow_run() {
        Some((repo, run, attempt)) => h.update(format!("{repo}\n{run}\n{attempt}\n")),
        None => h.update(b"local\n"),
    }
    h.update(manifest_sha.as_bytes());
    for (channel, identity) in data {
        h.update(format!("\n{channel}={identity}"));
    }
    format!("{prefix}-{}", &hex(&h.finalize())[..16])
}

/// An image digest: `sha256:` and 64 lowercase hex digits.
fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| mlops_render::filters::lower_hex(h, 64))
}

/// SageMaker's rule for job names.
fn valid_job_name(name: &str) -> bool {
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
        h.update(&buf[..n]);
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
    format: Format,
}

pub(crate) fn train(
    args: &TrainArgs,
    m: &Manifest,
    source: &[u8],
    registry: &Registry,
    format: Format,
) -> Exit {
    let Some(sm) = &m.training.sagemaker else {
        error(
            "the sagemaker backend needs a `training.sagemaker` section in the manifest",
            "add `training.sagemaker` with at least `role_arn`, `image` and `instance_type`",
        );
        return Exit::Usage;
    };
    if let Some(name) = &args.job_name
        && !valid_job_name(name)
    {
        error(
            &format!("`{name}` is not a valid SageMaker training job name"),
            "1 to 63 letters, digits and hyphens, starting and ending with a letter or digit",
        );
        return Exit::Usage;
    }
    let (image_tag, image_digest) = match (&args.image_digest, &sm.image.tag, &sm.image.digest) {
        (Some(d), _, _) if !valid_digest(d) => {
            error(
                &format!("--image-digest `{d}` is not `sha256:` and 64 lowercase hex digits"),
                "pass the digest `mlops image push` printed",
            );
            return Exit::Usage;
        }
        (Some(d), _, _) => (None, Some(d.clone())),
        (None, None, None) => {
            error(
                &format!(
                    "training.sagemaker.image names no tag or digest in `{}`, and no \
                     --image-digest was given",
                    sm.image.repository
                ),
                "push the model image with `mlops image push` and pass the digest it prints \
                 (--image-digest or MLOPS_IMAGE_DIGEST; the train workflow does both), or give \
                 the image a `tag` in the manifest",
            );
            return Exit::Usage;
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
        error(
            &format!(
                "the hyperparameter `{k}` is {} characters; SageMaker allows {HYPERPARAMETER_LENGTH}",
                v.len()
            ),
            "shorten it in the manifest (feature lists may be written as ranges: pixel_{0..63})",
        );
        return Exit::Usage;
    }
    if sm.instance_type.starts_with("ml.g") || sm.instance_type.starts_with("ml.p") {
        eprintln!(
            "warning: {} is a GPU instance, but the model image trains on the CPU (see the README, GPUs)",
            sm.instance_type
        );
    }
    let dir = args.manifest.parent().unwrap_or(Path::new("."));
    let mut data = Vec::new();
    for (channel, s) in &job.datasets {
        if s.path.starts_with("s3://") {
            if let Err(e) = S3Uri::parse(&s.path) {
                return aws_failed(&e);
            }
            data.push((channel.clone(), Data::Remote(s.path.clone())));
        } else {
            let path = dir.join(&s.path);
            match file_sha(&path) {
                Ok(sha) => data.push((channel.clone(), Data::Local { path, sha })),
                Err(e) => {
                    error(
                        &format!(
                            "{}: the {channel} dataset cannot be read: {e}",
                            path.display()
                        ),
                        "dataset paths in the manifest are relative to the manifest's directory",
                    );
                    return Exit::Usage;
                }
            }
        }
    }
    let first = Duration::from_secs_f64(args.poll_seconds.min(60.0));
    let plan = Plan {
        sm,
        image_tag,
        image_digest,
        name_given: args.job_name.clone(),
        job,
        data,
        manifest_sha: manifest_sha(source),
        poll: Poll {
            first,
            max: Duration::from_secs(60).max(first),
            failures: 8,
        },
        timeout: args.wait_timeout.map(Duration::from_secs),
        format,
    };
    let work = match tempfile::Builder::new()
        .prefix("mlops-sagemaker-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            error(&format!("cannot create a working directory: {e}"), "");
            return Exit::Runtime;
        }
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = rt.block_on(run(m, &plan, registry, work.path()));
    let done = match outcome {
        Ok(Outcome::Trained(done)) => done,
        Ok(Outcome::Registered(reference)) => {
            println!("nothing to do: the job's model is registered as {reference}");
            return Exit::Ok;
        }
        Err(code) => return code,
    };
    conclude(
        &Trained {
            manifest: &args.manifest,
            m,
            source,
            registry,
            model_dir: &done.model_dir,
            job: &plan.job,
            report: &done.report,
            sagemaker: Some(done.sagemaker),
        },
        format,
    )
}

/// The clients one run uses, configured once.
struct Clients {
    sagemaker: SageMaker,
    s3: S3,
}

/// Where progress goes: stdout, or stderr when stdout carries the JSON document.
fn say(format: Format, line: &str) {
    if format == Format::Json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// What a finished run hands to registration.
struct Done {
    model_dir: PathBuf,
    report: Report,
    sagemaker: SagemakerRun,
}

enum Outcome {
    Trained(Box<Done>),
    /// The job's model was registered by an earlier run (its reference).
    Registered(String),
}

/// Which signal arrived.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

async fn run(
    m: &Manifest,
    plan: &Plan<'_>,
    registry: &Registry,
    work: &Path,
) -> Result<Outcome, Exit> {
    let signal = interrupted();
    tokio::pin!(signal);
    let aws = Clients {
        sagemaker: SageMaker::from_env().await,
        s3: S3::from_env().await,
    };
    let sagemaker = &aws.sagemaker;
    let (name, output) = tokio::select! {
        r = prepare(m, plan) => r?,
        sig = &mut signal => {
            eprintln!("{sig}: cancelled before the training job was named; nothing was started");
            return Err(Exit::Cancelled);
        }
    };
    if let Some(reference) = registered(registry, &m.model.name, &name) {
        return Ok(Outcome::Registered(reference));
    }
    let started = tokio::select! {
        r = launch(m, plan, &aws, &name, &output) => r,
        sig = &mut signal => {
            eprintln!("{sig}: cancelling");
            return Err(stop(sagemaker, &name, plan.poll, Exit::Cancelled).await);
        }
    };
    let image = started?;
    let show = |s: &JobState| {
        let message = s.transitions.last().map(|(_, m)| m.as_str()).unwrap_or("");
        let line = format!(
            "training job {}: {} ({}) {message}",
            s.name, s.status, s.secondary
        );
        say(plan.format, line.trim_end());
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
        r = sagemaker.wait(&name, plan.poll, show) => r.map_err(|e| aws_failed(&e))?,
        never = follow(&logs, &name, plan, &mut cursor, &mut tailing) => match never {},
        sig = &mut signal => {
            eprintln!("{sig}: stopping the training job {name}");
            return Err(stop(sagemaker, &name, plan.poll, Exit::Cancelled).await);
        }
        () = timeout => {
            error(
                &format!("the training job {name} did not finish within --wait-timeout; stopping it"),
                "raise --wait-timeout (MLOPS_WAIT_TIMEOUT), or training.sagemaker.max_runtime_seconds",
            );
            return Err(stop(sagemaker, &name, plan.poll, Exit::Runtime).await);
        }
    };
    if tailing {
        print_log(&logs, &name, plan.format, &mut cursor).await;
    }
    match end.status.as_str() {
        "Completed" => {}
        "Failed" => {
            error(
                &format!(
                    "the training job {name} failed: {}",
                    end.failure_reason
                        .as_deref()
                        .unwrap_or("SageMaker gave no reason")
                ),
                &format!(
                    "the job's log is in CloudWatch, log group {}, streams {name}/*",
                    mlops_aws::logs::TRAINING_LOG_GROUP
                ),
            );
            return Err(Exit::Runtime);
        }
        other => {
            error(
                &format!("the training job {name} ended {other}, without a model"),
                "it was stopped outside this run; run again with another --job-name to train anew",
            );
            return Err(Exit::Runtime);
        }
    }
    let image = image.or_else(|| end.image.clone()).unwrap_or_default();
    collect(m, plan, &aws, &name, &end, &image, work)
        .await
        .map(|d| Outcome::Trained(Box::new(d)))
}

/// Prints the job's new log lines every few polls, for as long as it is polled; stops (with one
/// warning) if the log cannot be read, since the log is a convenience and the job goes on.
async fn follow(
    logs: &mlops_aws::Logs,
    name: &str,
    plan: &Plan<'_>,
    cursor: &mut mlops_aws::logs::Cursor,
    tailing: &mut bool,
) -> std::convert::Infallible {
    let every = plan.poll.first.max(Duration::from_millis(100)) * 3;
    loop {
        tokio::time::sleep(every).await;
        if *tailing && !print_log(logs, name, plan.format, cursor).await {
            *tailing = false;
        }
    }
}

/// Prints the log lines written since `cursor`; `false` (after a warning) when it cannot.
async fn print_log(
    logs: &mlops_aws::Logs,
    name: &str,
    format: Format,
    cursor: &mut mlops_aws::logs::Cursor,
) -> bool {
    match logs.fetch(name, cursor).await {
        Ok(lines) => {
            for (instance, line) in lines {
                say(format, &format!("[{instance}] {line}"));
            }
            true
        }
        Err(e) => {
            eprintln!(
                "warning: the training log cannot be read ({}); the job goes on",
                e.message
            );
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
                .is_some_and(|s| s.training_job == name)
        })
        .map(|e| e.reference.clone())
}

/// Names the job and works out where its output goes.
async fn prepare(m: &Manifest, plan: &Plan<'_>) -> Result<(String, S3Uri), Exit> {
    let output = match &plan.sm.output_uri {
        Some(uri) => S3Uri::parse(uri).map_err(|e| aws_failed(&e))?,
        None => {
            let account = mlops_aws::account_id().await.map_err(|e| aws_failed(&e))?;
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
    let name = plan
        .name_given
        .clone()
        .unwrap_or_else(|| job_name(name_prefix(m), &plan.manifest_sha, &identities));
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
) -> Result<Option<String>, Exit> {
    let (sagemaker, s3) = (&aws.sagemaker, &aws.s3);
    if let Some(existing) = sagemaker
        .training_job(name)
        .await
        .map_err(|e| aws_failed(&e))?
    {
        println!(
            "attached to the existing training job {name} ({}); no new job started",
            existing.status
        );
        return Ok(None);
    }
    let sm = plan.sm;
    let ecr = Ecr::from_env().await;
    let image = ecr
        .resolve(
            &sm.image.repository,
            plan.image_tag.as_deref(),
            plan.image_digest.as_deref(),
        )
        .await
        .map_err(|e| aws_failed(&e))?;
    println!("image {}", image.uri);
    if sm.forbid_critical_findings {
        match ecr.findings(&image).await.map_err(|e| aws_failed(&e))? {
            None => eprintln!(
                "warning: {}@{} has no ECR scan; turn on scan on push to have it checked",
                image.repository, image.digest
            ),
            Some(counts) => {
                let critical = counts.get("CRITICAL").copied().unwrap_or(0);
                if critical > 0 {
                    error(
                        &format!(
                            "{}@{} has {critical} CRITICAL scan finding(s); the manifest forbids them",
                            image.repository, image.digest
                        ),
                        "rebuild the image on a patched base, or set \
                         training.sagemaker.forbid_critical_findings: false",
                    );
                    return Err(Exit::No);
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
                if s3.exists(&uri).await.map_err(|e| aws_failed(&e))? {
                    println!("{channel}: {uri} is there already (same SHA-256); not uploaded");
                } else {
                    s3.upload(path, &uri).await.map_err(|e| aws_failed(&e))?;
                    println!("{channel}: uploaded {} to {uri}", path.display());
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
    let arn = sagemaker
        .create_training_job(&spec)
        .await
        .map_err(|e| aws_failed(&e))?;
    println!("started training job {name} ({arn})");
    Ok(Some(image.uri))
}

/// Stops the job and returns `then` once SageMaker acknowledged it; if it did not, says the job
/// may still run and returns that failure's code.
async fn stop(sagemaker: &SageMaker, name: &str, poll: Poll, then: Exit) -> Exit {
    let quick = Poll {
        first: poll.first.min(Duration::from_secs(2)),
        max: poll.max.min(Duration::from_secs(10)),
        failures: poll.failures,
    };
    match sagemaker.stop(name, quick, STOP_PATIENCE).await {
        Ok(state) => {
            eprintln!("training job {name}: {}", state.status);
            then
        }
        Err(e) if e.kind == mlops_aws::Kind::Missing => {
            eprintln!("no training job {name} was started");
            then
        }
        Err(e) => aws_failed(&e),
    }
}

/// Downloads and unpacks the artifact, reads its report, and registers the model package.
async fn collect(
    m: &Manifest,
    plan: &Plan<'_>,
    aws: &Clients,
    name: &str,
    end: &JobState,
    image: &str,
    work: &Path,
) -> Result<Done, Exit> {
    let Some(artifact) = end.model_artifact.clone() else {
        error(
            &format!("the training job {name} completed without a model artifact"),
            "the worker writes the model into /opt/ml/model; see the job's log",
        );
        return Err(Exit::Runtime);
    };
    let uri = S3Uri::parse(&artifact).map_err(|e| aws_failed(&e))?;
    let tarball = work.join("model.tar.gz");
    aws.s3
        .download(&uri, &tarball)
        .await
        .map_err(|e| aws_failed(&e))?;
    let model_dir = work.join("model");
    if let Err(e) = unpack(&tarball, &model_dir) {
        error(
            &format!("{artifact}: not a model artifact: {e}"),
            "it should be the gzipped tar of /opt/ml/model that SageMaker uploads",
        );
        return Err(Exit::Runtime);
    }
    let report: Report = match std::fs::read(model_dir.join("training.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            error(
                &format!("{artifact}: training.json is missing or unreadable: {e}"),
                "the artifact must come from `mlops container train` (the model image)",
            );
            return Err(Exit::Runtime);
        }
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
    };
    if let Some(group) = &m.registry.sagemaker_model_package_group {
        let arn = package(m, plan, aws, group, name, image, &uri, &report).await?;
        record.model_package_group = Some(group.clone());
        record.model_package_arn = Some(arn);
    }
    Ok(Done {
        model_dir,
        report,
        sagemaker: record,
    })
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
) -> Result<String, Exit> {
    let (sagemaker, s3) = (&aws.sagemaker, &aws.s3);
    sagemaker
        .ensure_group(group, &format!("Versions of {} (mlops)", m.model.name))
        .await
        .map_err(|e| aws_failed(&e))?;
    let earlier = sagemaker
        .find_package(group, "mlops:training-job", name, 20)
        .await
        .map_err(|e| aws_failed(&e))?;
    if let Some(p) = earlier {
        println!("the job's model package is {} already", p.arn);
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
        .await
        .map_err(|e| aws_failed(&e))?;
    let metadata = BTreeMap::from([
        ("mlops:training-job".to_owned(), name.to_owned()),
        (
            "mlops:manifest-sha256".to_owned(),
            plan.manifest_sha.clone(),
        ),
        ("mlops:model".to_owned(), m.model.name.clone()),
    ]);
    let token: String = hex(&Sha256::digest(name.as_bytes()))[..32].to_owned();
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
        .await
        .map_err(|e| aws_failed(&e))?;
    println!("registered model package {arn} (PendingManualApproval)");
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
