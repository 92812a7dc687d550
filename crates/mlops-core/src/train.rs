//! Training's flows around the worker: where the registry is, the datasets brought to the
//! machine, a local run laid out as SageMaker's `/opt/ml`, and the registration rule (the
//! status the manifest's thresholds give, and the model card). The SageMaker backend is
//! [`crate::sagemaker`]; both end in [`register`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_artifacts::artifact::hex;
use mlops_aws::S3Uri;
use mlops_manifest::Manifest;
use mlops_manifest::model::{Backend, Bound, Metric};
use mlops_registry::{Entry, Registry, Status, StatusRecord, now_rfc3339};
use mlops_train::card::{Libraries, ManifestRef, ModelCard, SagemakerRun};
use mlops_train::train::Event;
use mlops_train::worker::{self, Job, Layout, Report};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Problem, Progress};

/// The burn release this binary trains with (checked against Cargo.lock by a test).
pub const BURN_VERSION: &str = "0.22.1";

/// The registry: `flag` (`--registry`, relative to the working directory), else the manifest's
/// `registry.path` (relative to the manifest's directory); either may be `s3://`.
pub fn open_registry(
    flag: Option<&Path>,
    m: &Manifest,
    manifest: &Path,
) -> Result<Registry, Problem> {
    let (place, base) = match flag {
        Some(dir) => (dir.to_string_lossy().into_owned(), Path::new("")),
        None => (
            m.registry.path.clone(),
            manifest.parent().unwrap_or(Path::new(".")),
        ),
    };
    Ok(Registry::at(&place, base)?)
}

/// `m` training on another set than `data.train`: `train_data` (a path from the working
/// directory, or `s3://`), or with `retraining` the manifest's `monitoring.retrain_data`. The
/// validation set (or split) and the holdout stay as they are.
pub fn with_training_set(
    mut m: Manifest,
    train_data: Option<&str>,
    retraining: bool,
) -> Result<Manifest, Problem> {
    let set = match (train_data, retraining) {
        (Some(path), _) => {
            let path = if path.starts_with("s3://") || Path::new(path).is_absolute() {
                path.to_owned()
            } else {
                std::path::absolute(path)
                    .map_err(|e| Problem::input(format!("{path}: {e}"), ""))?
                    .to_string_lossy()
                    .into_owned()
            };
            mlops_manifest::model::Dataset { path, format: None }
        }
        (None, true) => m
            .monitoring
            .as_ref()
            .and_then(|mo| mo.retrain_data.clone())
            .ok_or_else(|| {
                Problem::input(
                    "a retraining needs `monitoring.retrain_data` in the manifest",
                    "name the training set retraining uses (`monitoring.retrain_data.path`), \
                     or give --train-data",
                )
            })?,
        (None, false) => return Ok(m),
    };
    m.data.train = set;
    Ok(m)
}

/// Streams the `s3://` datasets into `dir/<channel>/`, one after the other, with the SDK's
/// default credentials. A missing object or bucket is the user's to fix; anything else
/// (credentials, network, the service) is broken.
pub fn download(
    remote: &[(String, S3Uri)],
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<BTreeMap<String, PathBuf>, Problem> {
    let rt = mlops_aws::runtime().map_err(|e| Problem::broken(e.message, e.hint))?;
    rt.block_on(async {
        let s3 = mlops_aws::S3::from_env().await;
        fetch(&s3, remote, dir, |line| progress.notice(&line)).await
    })
}

/// [`download`] with a client the caller has, inside its runtime: each object to
/// `dir/<channel>/<its file name>`, one after the other, `said` told of each.
pub(crate) async fn fetch(
    s3: &mlops_aws::S3,
    remote: &[(String, S3Uri)],
    dir: &Path,
    mut said: impl FnMut(String),
) -> Result<BTreeMap<String, PathBuf>, Problem> {
    let mut files = BTreeMap::new();
    for (channel, uri) in remote {
        let into = dir.join(channel);
        let name = match uri.file_name() {
            "" => "data",
            n => n,
        };
        let dest = into.join(name);
        let started = std::time::Instant::now();
        std::fs::create_dir_all(&into)
            .map_err(|e| Problem::broken(format!("{}: {e}", into.display()), ""))?;
        let bytes = s3.download(uri, &dest).await?;
        said(format!(
            "downloaded {uri} ({bytes} bytes, {:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        files.insert(channel.clone(), dest);
    }
    Ok(files)
}

/// A local run's result: the model directory (in a temporary directory that lives as long as
/// this), the job it ran and the worker's report.
#[derive(Debug)]
pub struct LocalRun {
    _base: tempfile::TempDir,
    pub model_dir: PathBuf,
    pub job: Job,
    pub report: Report,
}

/// Trains on this machine: the datasets (local, or downloaded from S3) laid out as SageMaker's
/// `/opt/ml` in a temporary directory, then the worker, whose events go to `on_event`.
pub fn local(
    m: &Manifest,
    manifest: &Path,
    progress: &mut dyn Progress,
    on_event: impl FnMut(Event<'_>),
) -> Result<LocalRun, Problem> {
    let base = tempfile::Builder::new()
        .prefix("mlops-train-")
        .tempdir()
        .map_err(|e| Problem::broken(format!("cannot create a working directory: {e}"), ""))?;
    let layout = Layout::new(base.path());
    let job = Job::from_manifest(m);
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut remote: Vec<(String, S3Uri)> = Vec::new();
    for (channel, s) in &job.datasets {
        if s.path.starts_with("s3://") {
            let uri = S3Uri::parse(&s.path)?;
            remote.push((channel.clone(), uri));
        } else {
            files.insert(channel.clone(), dir.join(&s.path));
        }
    }
    if let Some((channel, path)) = files.iter().find(|(_, p)| !p.is_file()) {
        return Err(Problem::input(
            format!("{}: the {channel} dataset does not exist", path.display()),
            "dataset paths in the manifest are relative to the manifest's directory",
        ));
    }
    if !remote.is_empty() {
        files.extend(download(&remote, &base.path().join("downloads"), progress)?);
    }
    layout
        .prepare(&job, &files)
        .map_err(|e| Problem::broken(e, ""))?;
    if let (Backend::Command, Some(argv)) = (m.training.backend, &m.training.command) {
        run_command(argv, dir, &layout, &job, progress)?;
    }
    let report = worker::run(&layout, on_event)?;
    Ok(LocalRun {
        model_dir: layout.model(),
        _base: base,
        job,
        report,
    })
}

/// Runs the user's training command (`training.backend: command`) in the manifest's directory
/// under SageMaker's `/opt/ml` contract, as the SageMaker training toolkit sets it up for a
/// script: `SM_MODEL_DIR` (where it writes `model.onnx`), `SM_CHANNEL_<NAME>` and `SM_CHANNELS`,
/// `SM_HPS` (the job's hyperparameters as one JSON object), `SM_INPUT_DIR`,
/// `SM_INPUT_CONFIG_DIR`, `SM_OUTPUT_DIR`, `SM_OUTPUT_DATA_DIR`, and `MLOPS_ML_DIR` (the
/// directory standing for `/opt/ml`). Its output goes to stderr (stdout may hold JSON). Then its
/// `model.onnx` moves into the `model` channel, where the worker measures it.
fn run_command(
    argv: &[String],
    dir: &Path,
    layout: &Layout,
    job: &Job,
    progress: &mut dyn Progress,
) -> Result<(), Problem> {
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(Problem::input(
            "`training.command` is empty",
            "give the program and its arguments, e.g. [python, train.py]",
        ));
    };
    let base = layout.model();
    let base = base.parent().unwrap_or(&base);
    let channels: Vec<String> = job.datasets.keys().cloned().collect();
    let hyperparameters: BTreeMap<String, serde_json::Value> = job
        .to_hyperparameters()
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
            (k, value)
        })
        .collect();
    let mut command = std::process::Command::new(program);
    // `mlops.yaml`'s parent is the empty path, which no process can start in.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    command
        .args(args)
        .current_dir(dir)
        .env("MLOPS_ML_DIR", base)
        .env("SM_MODEL_DIR", layout.model())
        .env("SM_INPUT_DIR", base.join("input"))
        .env("SM_INPUT_CONFIG_DIR", base.join("input/config"))
        .env("SM_OUTPUT_DIR", base.join("output"))
        .env("SM_OUTPUT_DATA_DIR", base.join("output/data"))
        .env(
            "SM_CHANNELS",
            serde_json::to_string(&channels).unwrap_or_default(),
        )
        .env(
            "SM_HPS",
            serde_json::to_string(&hyperparameters).unwrap_or_default(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .stderr(std::process::Stdio::inherit());
    for channel in &channels {
        command.env(
            format!("SM_CHANNEL_{}", channel.to_uppercase()),
            layout.channel(channel),
        );
    }
    progress.notice(&format!("running the training command: {shown}"));
    let started = std::time::Instant::now();
    let status = command.status().map_err(|e| {
        Problem::input(
            format!("cannot run the training command `{shown}`: {e}"),
            "`training.command` is a program on PATH (or a path relative to the manifest) and \
             its arguments",
        )
    })?;
    if !status.success() {
        return Err(Problem::input(
            format!("the training command `{shown}` failed ({status})"),
            "its output is above; nothing was registered",
        ));
    }
    let written = layout.model().join(mlops_artifacts::artifact::ONNX);
    if !written.is_file() {
        return Err(Problem::input(
            format!(
                "the training command `{shown}` wrote no model.onnx into $SM_MODEL_DIR ({})",
                layout.model().display()
            ),
            "export the trained model to ONNX at os.path.join(os.environ[\"SM_MODEL_DIR\"], \
             \"model.onnx\")",
        ));
    }
    let channel = layout.channel(mlops_artifacts::training::MODEL_CHANNEL);
    std::fs::create_dir_all(&channel)
        .and_then(|()| std::fs::rename(&written, channel.join(mlops_artifacts::artifact::ONNX)))
        .map_err(|e| Problem::broken(format!("{}: {e}", channel.display()), ""))?;
    progress.notice(&format!(
        "the training command wrote model.onnx ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// A model trained (here or on SageMaker), ready to be registered.
#[derive(Debug)]
pub struct Trained<'a> {
    pub manifest: &'a Path,
    pub m: &'a Manifest,
    pub source: &'a [u8],
    pub registry: &'a Registry,
    /// Holds model.json, model.safetensors and training.json.
    pub model_dir: &'a Path,
    pub job: &'a Job,
    pub report: &'a Report,
    /// The training job, image and model package when SageMaker trained it.
    pub sagemaker: Option<SagemakerRun>,
    /// The sweep this model won, when the manifest sweeps (`training.sweep`).
    pub sweep: Option<mlops_artifacts::sweep::SweepRecord>,
}

/// The SHA-256 of the manifest's bytes, in hex.
pub fn manifest_sha(source: &[u8]) -> String {
    hex(&Sha256::digest(source))
}

/// The status the manifest's thresholds give a report, with the reason, and what it missed: any
/// miss rejects it; no thresholds at all leave it pending for a person; else it is approved.
pub fn judge(
    report: &Report,
    thresholds: &BTreeMap<Metric, Bound>,
) -> (StatusRecord, Vec<MissedThreshold>) {
    let failed: Vec<MissedThreshold> = worker::failed_thresholds(report, thresholds)
        .into_iter()
        .map(|(metric, value, bound)| MissedThreshold {
            metric,
            value,
            bound,
        })
        .collect();
    let (status, reason) = if !failed.is_empty() {
        let why: Vec<String> = failed
            .iter()
            .map(|f| format!("{} {:.4} breaks {}", f.metric, f.value, f.bound))
            .collect();
        (
            Status::Rejected,
            format!("evaluation thresholds: {}", why.join("; ")),
        )
    } else if thresholds.is_empty() {
        (
            Status::Pending,
            "no evaluation thresholds in the manifest: approve by hand".to_owned(),
        )
    } else {
        (
            Status::Approved,
            "passed every evaluation threshold".to_owned(),
        )
    };
    let record = StatusRecord {
        status,
        reason,
        changed_at: now_rfc3339(),
    };
    (record, failed)
}

/// What registration recorded: the registry's entry and the thresholds the model missed (then
/// its status is rejected and the command says no).
#[derive(Debug)]
pub struct Registered {
    pub entry: Entry,
    pub failed: Vec<MissedThreshold>,
}

impl Registered {
    /// What `mlops train` shows: the entry, a table of the metrics (validation and holdout),
    /// the run's speed and device, and one error line per missed threshold.
    pub fn describe(&self, report: &Report) -> String {
        let entry = &self.entry;
        let status = entry.status.status.name();
        let mut out = format!(
            "registered {} ({status}) in {}\n",
            entry.reference, entry.location
        );
        out += &format!("{:<16} {:>10} {:>10}\n", "metric", "validation", "holdout");
        for (name, value, holdout) in report.metric_rows() {
            let h = holdout.map_or_else(String::new, |v| format!("{v:.4}"));
            out += &format!("{name:<16} {value:>10.4} {h:>10}\n");
        }
        let (epochs, speed) = (report.curve.len(), report.samples_per_second);
        let (seconds, device) = (report.seconds, report.compute.describe());
        out += &if epochs == 0 {
            // A model brought as ONNX: measured, not trained.
            format!("not trained here: measured at {speed:.0} rows/s, {seconds:.1} s on {device}\n")
        } else {
            format!("{epochs} epochs, {speed:.0} samples/s, {seconds:.1} s on {device}\n")
        };
        for MissedThreshold {
            metric,
            value,
            bound,
        } in &self.failed
        {
            out += &format!(
                "error: {metric} is {value:.4}, below the threshold ({bound}) in evaluation.thresholds\n"
            );
        }
        out
    }
}

/// What `mlops train --format json` prints: the version registered and how it fared (`mlops
/// run` reads it back from the train stage's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// NAME@VERSION.
    pub model_version: String,
    pub model: String,
    pub version: u64,
    pub status: Status,
    pub reason: String,
    /// Validation metrics.
    pub metrics: BTreeMap<String, f64>,
    pub holdout_metrics: BTreeMap<String, f64>,
    pub failed_thresholds: Vec<MissedThreshold>,
    /// Where the version's files are.
    pub registry: String,
    pub samples_per_second: f64,
    pub seconds: f64,
}

/// A threshold the model missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissedThreshold {
    pub metric: String,
    pub value: f64,
    pub bound: String,
}

impl Summary {
    /// The summary of a registration and the run's report.
    pub fn of(registered: &Registered, report: &Report) -> Summary {
        let entry = &registered.entry;
        Summary {
            model_version: entry.reference.clone(),
            model: entry.model.clone(),
            version: entry.version,
            status: entry.status.status,
            reason: entry.status.reason.clone(),
            metrics: report.metrics_of("validation"),
            holdout_metrics: report.metrics_of("holdout"),
            failed_thresholds: registered.failed.clone(),
            registry: entry.location.clone(),
            samples_per_second: report.samples_per_second,
            seconds: report.seconds,
        }
    }
}

/// Registers a trained model with its card and the status its thresholds give.
pub fn register(t: &Trained<'_>) -> Result<Registered, Problem> {
    let (m, report) = (t.m, t.report);
    let (status, failed) = judge(report, &m.evaluation.thresholds);
    let manifest_sha = manifest_sha(t.source);
    let dir = t.manifest.parent().unwrap_or(Path::new("."));
    let commit = git_commit(dir);
    let card = |version: u64| ModelCard {
        model: m.model.name.clone(),
        version,
        reference: format!("{}@{version}", m.model.name),
        created_at: now_rfc3339(),
        manifest: ManifestRef {
            path: t.manifest.display().to_string(),
            sha256: manifest_sha.clone(),
        },
        git_commit: commit.clone(),
        job: t.job.clone(),
        training: report.clone(),
        libraries: Libraries {
            mlops: env!("CARGO_PKG_VERSION").to_owned(),
            burn: BURN_VERSION.to_owned(),
        },
        thresholds: m
            .evaluation
            .thresholds
            .iter()
            .map(|(k, v)| (k.name().to_owned(), *v))
            .collect(),
        sagemaker: t.sagemaker.clone(),
        artifact: None,
        sweep: t.sweep.clone(),
    };
    let entry = t
        .registry
        .register(&m.model.name, t.model_dir, card, status)?;
    Ok(Registered { entry, failed })
}

/// The commit the model was trained from: `GITHUB_SHA` in Actions, else the manifest's checkout.
fn git_commit(dir: &Path) -> Option<String> {
    if let Ok(sha) = std::env::var("GITHUB_SHA")
        && !sha.is_empty()
    {
        return Some(sha);
    }
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(min: Option<f64>, max: Option<f64>) -> Bound {
        Bound { min, max }
    }

    #[test]
    fn the_thresholds_decide_the_status() {
        // The sample's validation accuracy is 0.9636.
        let report = mlops_artifacts::card::sample("digits-mlp", 1).training;
        let pass = BTreeMap::from([(Metric::Accuracy, bound(Some(0.9), None))]);
        let (status, failed) = judge(&report, &pass);
        assert_eq!((status.status, failed.len()), (Status::Approved, 0));

        let miss = BTreeMap::from([(Metric::Accuracy, bound(Some(0.99), None))]);
        let (status, failed) = judge(&report, &miss);
        assert_eq!(status.status, Status::Rejected);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            status.reason.contains("accuracy 0.9636 breaks"),
            "{}",
            status.reason
        );

        let (status, failed) = judge(&report, &BTreeMap::new());
        assert_eq!((status.status, failed.len()), (Status::Pending, 0));
        assert!(
            status.reason.contains("approve by hand"),
            "{}",
            status.reason
        );
    }

    #[test]
    fn the_burn_version_matches_the_lock_file() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("Cargo.lock");
        let entry = format!("name = \"burn\"\nversion = \"{BURN_VERSION}\"");
        assert!(lock.contains(&entry), "Cargo.lock has another burn");
    }

    #[test]
    fn the_manifest_digest_is_the_sha256_of_its_bytes() {
        assert_eq!(
            manifest_sha(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
