//! `mlops train`: the local backend. It lays out a temporary directory as a SageMaker training
//! container sees it, runs the same worker `mlops train-worker` runs there, and registers the
//! model it wrote, with its card and a status from the evaluation thresholds.
//!
//! `mlops train-worker`: that worker, over `/opt/ml` (or `--base`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use mlops_actions::Runtime;
use mlops_aws::S3Uri;
use mlops_manifest::Manifest;
use mlops_manifest::model::{Backend, Task};
use mlops_train::card::{Libraries, ManifestRef, ModelCard, SagemakerRun};
use mlops_train::registry::{Registry, Status, StatusRecord, now_rfc3339};
use mlops_train::train::{Epoch, Event};
use mlops_train::worker::{self, Job, Layout, Report, WorkerError};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{aws_failed, error, hex, valid_manifest};
use crate::cli::{Format, TrainArgs, TrainBackend, TrainWorkerArgs};
use crate::exit::Exit;

/// The burn release this binary trains with (checked against Cargo.lock by a test).
pub(crate) const BURN_VERSION: &str = "0.22.1";

/// The registry: `--registry` / `MLOPS_REGISTRY` (relative to the working directory), else the
/// manifest's `registry.path` (relative to the manifest's directory); either may be `s3://`.
pub(crate) fn open_registry(
    flag: Option<&Path>,
    m: &Manifest,
    manifest: &Path,
) -> Result<Registry, Exit> {
    let (place, base) = match flag {
        Some(dir) => (dir.to_string_lossy().into_owned(), Path::new("")),
        None => (
            m.registry.path.clone(),
            manifest.parent().unwrap_or(Path::new(".")),
        ),
    };
    Registry::at(&place, base).map_err(|e| {
        error(&e.message, &e.hint);
        if e.user { Exit::Usage } else { Exit::Runtime }
    })
}

/// Streams the `s3://` datasets into `dir/<channel>/`, one after the other, with the SDK's
/// default credentials. A missing object or bucket is the user's to fix (exit 2); anything else
/// (credentials, network, the service) is exit 3.
pub(crate) fn download(
    remote: &[(String, S3Uri)],
    dir: &Path,
    format: Format,
) -> Result<BTreeMap<String, PathBuf>, Exit> {
    let rt = mlops_aws::runtime().map_err(|e| {
        error(&e.message, &e.hint);
        Exit::Runtime
    })?;
    rt.block_on(async {
        let s3 = mlops_aws::S3::from_env().await;
        let mut files = BTreeMap::new();
        for (channel, uri) in remote {
            let into = dir.join(channel);
            let name = match uri.file_name() {
                "" => "data",
                n => n,
            };
            let dest = into.join(name);
            let started = std::time::Instant::now();
            let result = match std::fs::create_dir_all(&into) {
                Ok(()) => s3.download(uri, &dest).await,
                Err(e) => {
                    error(&format!("{}: {e}", into.display()), "");
                    return Err(Exit::Runtime);
                }
            };
            match result {
                Ok(bytes) => {
                    if format != Format::Json {
                        eprintln!(
                            "downloaded {uri} ({bytes} bytes, {:.1} s)",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    files.insert(channel.clone(), dest);
                }
                Err(e) => return Err(aws_failed(&e)),
            }
        }
        Ok(files)
    })
}

/// Shows why the worker failed; its exit code: bad input 2, a diverged loss 1, the machine 3.
fn worker_failed(e: &WorkerError) -> Exit {
    error(e.message(), e.hint());
    match e {
        WorkerError::Input { .. } => Exit::Usage,
        WorkerError::Diverged { .. } => Exit::No,
        WorkerError::Runtime { .. } => Exit::Runtime,
    }
}

pub(crate) fn run(args: &TrainArgs, format: Format) -> Exit {
    let (m, source) = match valid_manifest(&args.manifest, format, "nothing trained") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let backend = args.backend.unwrap_or(match m.training.backend {
        Backend::Local => TrainBackend::Local,
        Backend::Sagemaker => TrainBackend::Sagemaker,
    });
    let registry = match open_registry(args.registry.as_deref(), &m, &args.manifest) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if backend == TrainBackend::Sagemaker {
        return super::sagemaker::train(args, &m, &source, &registry, format);
    }
    let base = match tempfile::Builder::new().prefix("mlops-train-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            error(&format!("cannot create a working directory: {e}"), "");
            return Exit::Runtime;
        }
    };
    let layout = Layout::new(base.path());
    let job = Job::from_manifest(&m);
    let dir = args.manifest.parent().unwrap_or(Path::new("."));
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut remote: Vec<(String, S3Uri)> = Vec::new();
    for (channel, s) in &job.datasets {
        if s.path.starts_with("s3://") {
            match S3Uri::parse(&s.path) {
                Ok(uri) => remote.push((channel.clone(), uri)),
                Err(e) => {
                    error(&e.message, &e.hint);
                    return Exit::Usage;
                }
            }
        } else {
            files.insert(channel.clone(), dir.join(&s.path));
        }
    }
    if let Some((channel, path)) = files.iter().find(|(_, p)| !p.is_file()) {
        error(
            &format!("{}: the {channel} dataset does not exist", path.display()),
            "dataset paths in the manifest are relative to the manifest's directory",
        );
        return Exit::Usage;
    }
    if !remote.is_empty() {
        match download(&remote, &base.path().join("downloads"), format) {
            Ok(downloaded) => files.extend(downloaded),
            Err(code) => return code,
        }
    }
    if let Err(e) = layout.prepare(&job, &files) {
        error(&e, "");
        return Exit::Runtime;
    }
    let github = format == Format::Github;
    if github {
        println!(
            "{}",
            mlops_actions::group(&format!("Training {}", m.model.name))
        );
    }
    let mut progress = Progress::new(format);
    let result = worker::run(&layout, |e| progress.show(e));
    progress.finish();
    if github {
        println!("{}", mlops_actions::end_group());
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return worker_failed(&e),
    };
    conclude(
        &Trained {
            manifest: &args.manifest,
            m: &m,
            source: &source,
            registry: &registry,
            model_dir: &layout.model(),
            job: &job,
            report: &report,
            sagemaker: None,
        },
        format,
    )
}

/// A model trained (here or on SageMaker), ready to be registered.
pub(crate) struct Trained<'a> {
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
}

/// The SHA-256 of the manifest's bytes, in hex.
pub(crate) fn manifest_sha(source: &[u8]) -> String {
    hex(&Sha256::digest(source))
}

/// Registers a trained model with its card and the status its thresholds give; shows it and
/// writes the step outputs. Exit 1 when a threshold failed.
pub(crate) fn conclude(t: &Trained<'_>, format: Format) -> Exit {
    let (m, report) = (t.m, t.report);
    let failed = worker::failed_thresholds(report, &m.evaluation.thresholds);
    let (status, reason) = if !failed.is_empty() {
        let why: Vec<String> = failed
            .iter()
            .map(|(metric, value, bound)| format!("{metric} {value:.4} breaks {bound}"))
            .collect();
        (
            Status::Rejected,
            format!("evaluation thresholds: {}", why.join("; ")),
        )
    } else if m.evaluation.thresholds.is_empty() {
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
    let status = StatusRecord {
        status,
        reason,
        changed_at: now_rfc3339(),
    };
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
    };
    let entry = match t
        .registry
        .register(&m.model.name, t.model_dir, card, status)
    {
        Ok(e) => e,
        Err(e) => {
            error(&e.message, &e.hint);
            return if e.user { Exit::Usage } else { Exit::Runtime };
        }
    };
    show(m, &entry, report, &failed, format);
    if let Err(e) = outputs(&entry.reference, report, m.model.task, t.sagemaker.as_ref()) {
        eprintln!("warning: could not write the step outputs or summary: {e}");
    }
    if failed.is_empty() {
        Exit::Ok
    } else {
        Exit::No
    }
}

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

fn show(
    m: &Manifest,
    entry: &mlops_train::registry::Entry,
    report: &Report,
    failed: &[(String, f64, String)],
    format: Format,
) {
    if format == Format::Json {
        let (validation, holdout) = (
            report.metrics_of("validation"),
            report.metrics_of("holdout"),
        );
        let doc = json!({
            "model_version": entry.reference,
            "model": entry.model,
            "version": entry.version,
            "status": entry.status.status.name(),
            "reason": entry.status.reason,
            "metrics": validation,
            "holdout_metrics": holdout,
            "failed_thresholds": failed.iter().map(|(metric, value, bound)| json!({"metric": metric, "value": value, "bound": bound})).collect::<Vec<_>>(),
            "registry": entry.location,
            "samples_per_second": report.samples_per_second,
            "seconds": report.seconds,
        });
        println!("{doc}");
        return;
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(
        out,
        "registered {} ({}) in {}",
        entry.reference,
        entry.status.status.name(),
        entry.location
    );
    let _ = writeln!(
        out,
        "{:<16} {:>10} {:>10}",
        "metric", "validation", "holdout"
    );
    for (name, value, holdout) in report.metric_rows() {
        let h = holdout.map_or_else(String::new, |v| format!("{v:.4}"));
        let _ = writeln!(out, "{name:<16} {value:>10.4} {h:>10}");
    }
    let _ = writeln!(
        out,
        "{} epochs, {:.0} samples/s, {:.1} s on {}",
        report.curve.len(),
        report.samples_per_second,
        report.seconds,
        report.compute.describe()
    );
    for (metric, value, bound) in failed {
        let _ = writeln!(
            out,
            "error: {metric} is {value:.4}, below the threshold ({bound}) in evaluation.thresholds"
        );
        if format == Format::Github {
            let _ = writeln!(
                out,
                "::error title=mlops train::{}",
                mlops_actions::escape_data(&format!(
                    "{} {metric} {value:.4} breaks {bound}",
                    m.model.name
                ))
            );
        }
    }
}

/// Step outputs and the step summary (no-ops outside GitHub Actions).
fn outputs(
    reference: &str,
    report: &Report,
    task: Task,
    sagemaker: Option<&SagemakerRun>,
) -> std::io::Result<()> {
    let rt = Runtime::from_env();
    if !rt.is_actions() {
        return Ok(());
    }
    if let Some(sm) = sagemaker {
        rt.set_output("job-name", &sm.training_job)?;
        rt.set_output(
            "model-package-arn",
            sm.model_package_arn.as_deref().unwrap_or_default(),
        )?;
        rt.set_output("image", &sm.image)?;
    }
    let validation = report.metrics_of("validation");
    rt.set_output("model-version", reference)?;
    rt.set_output(
        "metrics",
        &serde_json::to_string(&validation).unwrap_or_default(),
    )?;
    rt.append_summary(&summary(reference, report, task))
}

/// The step summary: the metrics table and a chart of loss and the main metric per epoch.
pub(crate) fn summary(reference: &str, report: &Report, task: Task) -> String {
    let mut md = format!(
        "### Trained `{reference}`\n\n| metric | validation | holdout |\n|---|---:|---:|\n"
    );
    for (name, value, holdout) in report.metric_rows() {
        let h = holdout.map_or_else(String::new, |v| format!("{v:.4}"));
        md.push_str(&format!("| {name} | {value:.4} | {h} |\n"));
    }
    let main = match task {
        Task::Classification => "accuracy",
        Task::Regression => "rmse",
    };
    let epochs: Vec<String> = report.curve.iter().map(|e| e.epoch.to_string()).collect();
    let series = |f: &dyn Fn(&Epoch) -> f64| {
        report
            .curve
            .iter()
            .map(|e| format!("{:.4}", f(e)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    md.push_str(&format!(
        "\n```mermaid\nxychart-beta\n    title \"Training loss and validation {main} per epoch\"\n    x-axis \"epoch\" [{}]\n    y-axis \"value\"\n    line [{}]\n    line [{}]\n```\n",
        epochs.join(", "),
        series(&|e| e.loss),
        series(&|e| e.metrics.get(main).copied().unwrap_or(0.0)),
    ));
    md.push_str(&format!(
        "\n{} epochs, {:.0} samples/s, {:.1} s on {}.\n",
        report.curve.len(),
        report.samples_per_second,
        report.seconds,
        report.compute.describe()
    ));
    md
}

/// How training shows its progress: a bar on a terminal, one line per epoch in logs (stderr, or
/// stdout inside an Actions group), nothing but notes with `--format json`.
struct Progress {
    format: Format,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(format: Format) -> Self {
        use std::io::IsTerminal;
        let bar = (format == Format::Human && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>11} [{bar:30}] {percent:>3}% {msg} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Self { format, bar }
    }

    fn note(&self, line: &str, github_command: &str) {
        match (self.format, &self.bar) {
            (_, Some(bar)) => bar.println(format!("note: {line}")),
            (Format::Github, None) => println!(
                "::{github_command} title=mlops train::{}",
                mlops_actions::escape_data(line)
            ),
            _ => eprintln!("note: {line}"),
        }
    }

    fn show(&mut self, event: Event<'_>) {
        match event {
            Event::CheckpointUnusable(_) => {
                self.note(&event.note().unwrap_or_default(), "warning");
            }
            Event::Resumed { .. } => self.note(&event.note().unwrap_or_default(), "notice"),
            Event::Batch {
                epoch,
                epochs,
                batch,
                batches,
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(u64::from(epochs) * batches as u64);
                    bar.set_position(u64::from(epoch - 1) * batches as u64 + batch as u64);
                    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
                }
            }
            Event::Epoch(e) => match (self.format, &self.bar) {
                (_, Some(bar)) => {
                    let main = e
                        .metrics
                        .get("accuracy")
                        .map(|a| format!("accuracy {a:.4}"))
                        .or_else(|| e.metrics.get("rmse").map(|r| format!("rmse {r:.4}")))
                        .unwrap_or_default();
                    bar.set_message(format!("loss {:.4}, validation {main}", e.loss));
                }
                (Format::Json, None) => {}
                (Format::Github, None) => println!("{}", worker::epoch_line(e)),
                (Format::Human, None) => eprintln!("{}", worker::epoch_line(e)),
            },
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub(crate) fn worker(args: &TrainWorkerArgs) -> Exit {
    let layout = Layout::new(&args.base);
    let shown = |e: Event<'_>| match e {
        Event::Epoch(e) => println!("{}", worker::epoch_line(e)),
        other => {
            if let Some(line) = other.note() {
                println!("{line}");
            }
        }
    };
    match worker::run(&layout, shown) {
        Ok(report) => {
            println!(
                "trained: {} epochs, {:.0} samples/s; model in {}",
                report.curve.len(),
                report.samples_per_second,
                layout.model().display()
            );
            Exit::Ok
        }
        Err(e) => worker_failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bar counts batches over the whole run and carries the last epoch's figures.
    #[test]
    fn the_progress_bar_follows_batches_and_epochs() {
        let mut p = Progress {
            format: Format::Human,
            bar: Some(indicatif::ProgressBar::hidden()),
        };
        let batch = |epoch, batch| Event::Batch {
            epoch,
            epochs: 3,
            batch,
            batches: 4,
        };
        p.show(batch(1, 1));
        let bar = p.bar.clone().expect("bar");
        assert_eq!((bar.position(), bar.length()), (1, Some(12)));
        p.show(batch(2, 3));
        assert_eq!(bar.position(), 7);
        assert_eq!(bar.prefix(), "epoch 2/3");
        let e = Epoch {
            epoch: 2,
            loss: 0.25,
            validation_loss: 0.5,
            metrics: BTreeMap::from([("accuracy".to_owned(), 0.9)]),
            seconds: 0.1,
        };
        p.show(Event::Epoch(&e));
        assert_eq!(bar.message(), "loss 0.2500, validation accuracy 0.9000");
        p.finish();
        assert!(bar.is_finished());
    }

    #[test]
    fn the_burn_version_matches_the_lock_file() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("Cargo.lock");
        let entry = format!("name = \"burn\"\nversion = \"{}\"", BURN_VERSION);
        assert!(lock.contains(&entry), "Cargo.lock has another burn");
    }
}
