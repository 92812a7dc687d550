//! The trainer as SageMaker runs it (`mlops train-worker`), and as the local backend runs it too,
//! over a temporary directory laid out the same way, so both train identically.
//!
//! ```text
//! <base>/input/config/hyperparameters.json   the Job, one JSON-encoded value per key
//! <base>/input/data/<channel>/                train, validation (optional), holdout: one file each
//! <base>/model/                               model.safetensors, model.json, training.json
//! <base>/output/failure                       why training failed, when it did
//! ```
//!
//! Progress goes to standard output as `key=value` lines that SageMaker metric definitions can
//! match, e.g. `epoch=3 loss=0.1021 validation_loss=0.1340 validation_accuracy=0.9712`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_manifest::model::{Family, Metric};
use serde::Serialize;

pub use mlops_artifacts::bundle::Bundle;
pub use mlops_artifacts::training::{Job, Report, Signature, Source};

use crate::checkpoint::Checkpoints;
pub use crate::device::Compute;
use crate::model::{self, Architecture};
use crate::train::{self, Epoch, Event, Settings};
use mlops_artifacts::artifact::{BUNDLE, WEIGHTS};
use mlops_artifacts::baseline::Baseline;
use mlops_data::data::{self, FileDigest, Format, Spec};
use mlops_data::profile;

/// The directory layout SageMaker gives a training container.
#[derive(Debug, Clone)]
pub struct Layout {
    pub base: PathBuf,
}

impl Layout {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    pub fn hyperparameters(&self) -> PathBuf {
        self.base.join("input/config/hyperparameters.json")
    }

    pub fn channel(&self, name: &str) -> PathBuf {
        self.base.join("input/data").join(name)
    }

    pub fn model(&self) -> PathBuf {
        self.base.join("model")
    }

    pub fn failure(&self) -> PathBuf {
        self.base.join("output/failure")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.base.join("checkpoints")
    }

    /// Lays out a local run: the job's hyperparameters, and each dataset linked (or copied)
    /// into its channel.
    pub fn prepare(&self, job: &Job, files: &BTreeMap<String, PathBuf>) -> Result<(), String> {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        let hp = self.hyperparameters();
        if let Some(dir) = hp.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        crate::write_json(&hp, &job.to_hyperparameters()).map_err(|e| io(&hp, e))?;
        for (channel, file) in files {
            let dir = self.channel(channel);
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let name = file
                .file_name()
                .ok_or_else(|| format!("{}: not a file", file.display()))?;
            let link = dir.join(name);
            let absolute = std::fs::canonicalize(file).map_err(|e| io(file, e))?;
            #[cfg(unix)]
            let linked = std::os::unix::fs::symlink(&absolute, &link);
            #[cfg(not(unix))]
            let linked = std::fs::copy(&absolute, &link).map(|_| ());
            linked.map_err(|e| io(&link, e))?;
        }
        for dir in [self.model(), self.base.join("output"), self.checkpoints()] {
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        Ok(())
    }

    /// The one data file of a channel.
    pub(crate) fn channel_file(&self, name: &str) -> Result<Option<PathBuf>, String> {
        let dir = self.channel(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        match files.len() {
            0 => Ok(None),
            1 => Ok(files.pop()),
            n => Err(format!(
                "channel `{name}` ({}) holds {n} files; give it exactly one",
                dir.display()
            )),
        }
    }
}

/// Why the worker failed: a user mistake (bad data or job, exit 2), a diverged loss (exit 1),
/// or the machine (exit 3).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerError {
    Input { message: String, hint: String },
    Diverged { message: String, hint: String },
    Runtime { message: String, hint: String },
}

impl WorkerError {
    pub fn message(&self) -> &str {
        match self {
            WorkerError::Input { message, .. }
            | WorkerError::Diverged { message, .. }
            | WorkerError::Runtime { message, .. } => message,
        }
    }

    pub fn hint(&self) -> &str {
        match self {
            WorkerError::Input { hint, .. }
            | WorkerError::Diverged { hint, .. }
            | WorkerError::Runtime { hint, .. } => hint,
        }
    }
}

impl From<train::TrainError> for WorkerError {
    fn from(e: train::TrainError) -> Self {
        let (message, hint) = (e.to_string(), e.hint().to_owned());
        match e {
            train::TrainError::Diverged { .. } => WorkerError::Diverged { message, hint },
            train::TrainError::Backend(_) | train::TrainError::Checkpoint(_) => {
                WorkerError::Runtime { message, hint }
            }
        }
    }
}

pub(crate) fn input(message: impl Into<String>, hint: impl Into<String>) -> WorkerError {
    WorkerError::Input {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Runs the job laid out under `layout`: reads the channels, trains, scores validation and
/// holdout, and writes the model directory. On failure the reason is also written to
/// `output/failure`, as SageMaker expects.
pub fn run(layout: &Layout, mut on_event: impl FnMut(Event<'_>)) -> Result<Report, WorkerError> {
    let result = run_inner(layout, &mut on_event);
    if let Err(e) = &result {
        let failure = layout.failure();
        if let Some(dir) = failure.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&failure, format!("{}\n{}\n", e.message(), e.hint()));
    }
    result
}

/// Fails at once, not after training, when the model directory cannot be written (a container
/// user that SageMaker's `/opt/ml` mounts do not let write, a read-only volume).
fn check_writable(dir: &Path) -> Result<(), WorkerError> {
    let probe = dir.join(".mlops-write-check");
    let tried = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    tried.map_err(|e| WorkerError::Runtime {
        message: format!("{} is not writable: {e}", dir.display()),
        hint: "the training container's user must be able to write the model directory; \
               for the model image on SageMaker see the README (Container)"
            .to_owned(),
    })
}

fn run_inner(layout: &Layout, on_event: &mut dyn FnMut(Event<'_>)) -> Result<Report, WorkerError> {
    let started = std::time::Instant::now();
    check_writable(&layout.model())?;
    let hp_path = layout.hyperparameters();
    let text = std::fs::read_to_string(&hp_path).map_err(|e| {
        input(
            format!("{}: {e}", hp_path.display()),
            "the training job needs its hyperparameters",
        )
    })?;
    let map: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        input(
            format!("{}: {e}", hp_path.display()),
            "it must be a JSON object of strings",
        )
    })?;
    let job = Job::from_hyperparameters(&map)
        .map_err(|e| input(e, "render the job with `mlops train`"))?;
    let (features, spec) = spec(layout, &job)?;
    if job.family == Family::Onnx {
        return crate::import::run(layout, &job, features, &spec, started);
    }
    let (device, compute) =
        crate::device::open(job.device, job.require_gpu).map_err(|e| WorkerError::Runtime {
            message: e.message,
            hint: e.hint,
        })?;
    let data = data::load(&spec).map_err(|e| input(e.to_string(), e.hint.clone()))?;
    let outputs = match &data.classes {
        Some(c) if c.0.len() < 2 => {
            return Err(input(
                format!("the training data has a single class ({})", c.0.join("")),
                "classification needs at least two distinct labels",
            ));
        }
        Some(c) => c.0.len(),
        None => 1,
    };
    if job.family == Family::Cnn {
        let shape = job.image.ok_or_else(|| {
            input(
                "a cnn needs `model.input`",
                "set model.input.height and width",
            )
        })?;
        if (shape.height * shape.width) as usize != features.len() {
            return Err(input(
                format!(
                    "model.input is {}x{} = {} pixels but there are {} feature columns",
                    shape.height,
                    shape.width,
                    shape.height * shape.width,
                    features.len()
                ),
                "the features must be the image's pixels in row-major order",
            ));
        }
    }
    let architecture = Architecture::new(
        job.family,
        data.one_hot().inputs(),
        outputs,
        &job.hyperparameters,
        job.image,
    );
    let data::Standardized {
        standardizer,
        train: train_set,
        validation,
        holdout,
    } = data.standardized(job.missing);
    let settings = Settings {
        task: job.task,
        epochs: job.epochs,
        batch_size: job.batch_size as usize,
        learning_rate: job.learning_rate,
        optimizer: job.optimizer,
        seed: job.seed,
    };
    let checkpoints = Checkpoints {
        dir: layout.checkpoints(),
        fingerprint: fingerprint(&job, &data.files),
    };
    let trained = train::train(
        &architecture,
        &train_set,
        &validation,
        &settings,
        &device,
        Some(&checkpoints),
        on_event,
    )?;
    let score = |table| -> Result<_, WorkerError> {
        let scored = train::evaluate(&trained.network, table, job.task)?;
        Ok((crate::metrics::by_name(&scored.metrics), scored.predicted))
    };
    let (validation_metrics, validation_predicted) = score(&validation)?;
    let metrics = BTreeMap::from([
        ("validation".to_owned(), validation_metrics),
        ("holdout".to_owned(), score(&holdout)?.0),
    ]);
    let baseline = baseline(&data, &features, &validation_predicted);
    let model_dir = layout.model();
    let runtime = |message: String| WorkerError::Runtime {
        message,
        hint: "the model directory must be writable".to_owned(),
    };
    std::fs::create_dir_all(&model_dir)
        .map_err(|e| runtime(format!("{}: {e}", model_dir.display())))?;
    model::save(&trained.network, &model_dir.join(WEIGHTS)).map_err(runtime)?;
    let bundle = Bundle {
        architecture: architecture.clone(),
        signature: Signature {
            categorical: data.categories.clone(),
            unseen: job.unseen,
            ..Signature::numeric(
                features,
                job.label.clone(),
                job.task,
                data.classes.as_ref().map(|c| c.0.clone()),
            )
        },
        standardizer,
    };
    write_json(&model_dir.join(BUNDLE), &bundle).map_err(runtime)?;
    let (datasets, rows) = read(
        &spec,
        &data.files,
        [train_set.rows(), validation.rows(), holdout.rows()],
    );
    let report = Report {
        datasets,
        rows,
        compute,
        parameters: architecture.parameters(),
        curve: trained.curve,
        resumed_from: trained.resumed_from,
        metrics,
        samples_per_second: trained.samples_per_second,
        seconds: started.elapsed().as_secs_f64(),
        baseline: Some(baseline),
    };
    write_json(&model_dir.join("training.json"), &report).map_err(runtime)?;
    Ok(report)
}

/// What monitoring compares production with: each feature of the training split (categorical
/// ones by category) and the predictions on the validation set (`predicted`: class indices into
/// the data's classes, or values).
pub(crate) fn baseline(data: &data::Datasets, features: &[String], predicted: &[f32]) -> Baseline {
    Baseline {
        features: profile::features(&data.train, features, &data.categories),
        predictions: profile::predictions(data.classes.as_ref().map(|c| c.0.as_slice()), predicted),
    }
}

/// The job's features and datasets: each channel's one file, its name as the manifest gave it
/// and its format.
fn spec(layout: &Layout, job: &Job) -> Result<(Vec<String>, Spec), WorkerError> {
    let features = mlops_manifest::semantic::expand_columns(&job.features)
        .map_err(|e| input(e, "fix `data.features` in the manifest"))?;
    let channel = |name: &str| -> Result<Option<(PathBuf, String, Format)>, WorkerError> {
        let Some(file) = layout.channel_file(name).map_err(|e| input(e, ""))? else {
            return Ok(None);
        };
        let source = job.datasets.get(name);
        let shown = source.map_or_else(|| file.display().to_string(), |s| s.path.clone());
        let format = Format::of(Path::new(&shown), source.and_then(|s| s.format))
            .or_else(|_| Format::of(&file, None))
            .map_err(|e| input(e.to_string(), e.hint))?;
        Ok(Some((file, shown, format)))
    };
    let required = |name: &str| -> Result<(PathBuf, String, Format), WorkerError> {
        channel(name)?.ok_or_else(|| {
            input(
                format!(
                    "no data in channel `{name}` ({})",
                    layout.channel(name).display()
                ),
                "the job needs a train and a holdout channel",
            )
        })
    };
    let spec = Spec {
        task: job.task,
        features: features.clone(),
        label: job.label.clone(),
        train: required("train")?,
        validation: channel("validation")?,
        holdout: required("holdout")?,
        validation_fraction: job.validation_fraction,
        split_seed: job.split_seed,
        missing: job.missing,
        categorical: job.categorical.clone(),
        unseen: job.unseen,
    };
    Ok((features, spec))
}

/// What a run read, as its report records it: each channel's file digest, and the rows of the
/// train, validation and holdout tables.
pub(crate) fn read(
    spec: &Spec,
    files: &[FileDigest],
    [train, validation, holdout]: [usize; 3],
) -> (BTreeMap<String, FileDigest>, BTreeMap<String, usize>) {
    let channels: &[&str] = if spec.validation.is_some() {
        &["train", "validation", "holdout"]
    } else {
        &["train", "holdout"]
    };
    let datasets = channels
        .iter()
        .map(|c| (*c).to_owned())
        .zip(files.iter().cloned())
        .collect();
    let rows = BTreeMap::from([
        ("train".to_owned(), train),
        ("validation".to_owned(), validation),
        ("holdout".to_owned(), holdout),
    ]);
    (datasets, rows)
}

/// What makes a checkpoint this job's: everything in the job but its epoch count (a checkpoint of
/// the same job with fewer epochs is where a longer run can start) and its device, plus the
/// digests of the data it read.
fn fingerprint(job: &Job, files: &[FileDigest]) -> String {
    use sha2::{Digest, Sha256};
    let mut value = serde_json::to_value(job).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        for volatile in ["epochs", "device", "require_gpu"] {
            fields.remove(volatile);
        }
    }
    let digests: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
    let text = serde_json::json!({ "job": value, "data": digests, "format": 1 }).to_string();
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    crate::write_json(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

/// One `key=value` progress line per epoch, for logs and SageMaker metric definitions.
pub fn epoch_line(e: &Epoch) -> String {
    let mut line = format!(
        "epoch={} loss={:.6} validation_loss={:.6}",
        e.epoch, e.loss, e.validation_loss
    );
    for (name, value) in &e.metrics {
        line.push_str(&format!(" validation_{name}={value:.6}"));
    }
    line
}

/// The metric thresholds a report fails: (metric, value, the bound it breaks).
pub fn failed_thresholds(
    report: &Report,
    thresholds: &BTreeMap<Metric, mlops_manifest::model::Bound>,
) -> Vec<(String, f64, String)> {
    let validation = report.metrics.get("validation");
    let mut failed = Vec::new();
    for (metric, bound) in thresholds {
        let Some(&value) = validation.and_then(|m| m.get(metric.name())) else {
            continue;
        };
        if let Some(min) = bound.min
            && value < min
        {
            failed.push((metric.name().to_owned(), value, format!("min {min}")));
        }
        if let Some(max) = bound.max
            && value > max
        {
            failed.push((metric.name().to_owned(), value, format!("max {max}")));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_through_string_hyperparameters() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/mlops.yaml");
        let report = mlops_manifest::check_file(&path).expect("readable");
        let m = report.manifest.expect("typed");
        let job = Job::from_manifest(&m);
        let hp = job.to_hyperparameters();
        assert!(
            hp.values().all(|v| v.len() <= 2500),
            "SageMaker caps values at 2500 chars"
        );
        assert_eq!(hp["label"], "\"digit\"");
        assert_eq!(Job::from_hyperparameters(&hp).expect("parses"), job);
        let mut broken = hp.clone();
        broken.insert("epochs".to_owned(), "many".to_owned());
        assert!(Job::from_hyperparameters(&broken).is_err());
    }

    /// What a SageMaker tuning job hands a trial: the static job, one model hyperparameter set
    /// on its own, and SageMaker's own `_tuning_objective_metric`.
    #[test]
    fn a_tuning_jobs_hyperparameters_set_single_model_hyperparameters() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/mlops.yaml");
        let m = mlops_manifest::check_file(&path)
            .expect("readable")
            .manifest
            .expect("typed");
        let job = Job::from_manifest(&m);
        let mut hp = job.to_hyperparameters();
        hp.insert("hyperparameters.dropout".to_owned(), "0.25".to_owned());
        hp.insert(
            "hyperparameters.hidden_layers".to_owned(),
            "[16,8]".to_owned(),
        );
        hp.insert("learning_rate".to_owned(), "0.0125".to_owned());
        hp.insert(
            "_tuning_objective_metric".to_owned(),
            "validation:accuracy".to_owned(),
        );
        let tuned = Job::from_hyperparameters(&hp).expect("parses");
        assert_eq!(tuned.hyperparameters.dropout, 0.25);
        assert_eq!(tuned.hyperparameters.hidden_layers, [16, 8]);
        assert_eq!(
            tuned.hyperparameters.activation,
            job.hyperparameters.activation
        );
        assert_eq!(tuned.learning_rate, 0.0125);
        let mut bad = hp.clone();
        bad.insert("hyperparameters.dropout".to_owned(), "\"high\"".to_owned());
        assert!(Job::from_hyperparameters(&bad).is_err());
        bad.remove("hyperparameters");
        bad.insert("hyperparameters.dropout".to_owned(), "0.5".to_owned());
        let e = Job::from_hyperparameters(&bad).expect_err("no object to set");
        assert!(e.contains("hyperparameters.dropout"), "{e}");
    }

    #[test]
    fn an_unwritable_model_directory_fails_before_training() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").expect("write");
        let e = check_writable(&file.join("model")).expect_err("cannot write under a file");
        assert!(e.message().contains("is not writable"), "{}", e.message());
        assert!(matches!(e, WorkerError::Runtime { .. }));
        check_writable(&dir.path().join("model")).expect("writable");
        assert_eq!(
            std::fs::read_dir(dir.path().join("model"))
                .expect("dir")
                .count(),
            0,
            "the probe is removed"
        );
    }

    #[test]
    fn epoch_lines_are_key_value() {
        let e = Epoch {
            epoch: 3,
            loss: 0.5,
            validation_loss: 0.25,
            metrics: BTreeMap::from([("accuracy".to_owned(), 0.9)]),
            seconds: 0.1,
        };
        assert_eq!(
            epoch_line(&e),
            "epoch=3 loss=0.500000 validation_loss=0.250000 validation_accuracy=0.900000"
        );
    }
}
