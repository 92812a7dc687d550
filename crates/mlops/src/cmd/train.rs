//! `mlops train`: the arguments to the local or SageMaker flow of [`mlops_core`], the worker's
//! progress as a bar (or grouped epoch lines in Actions), then the registration's result as text
//! or JSON, the step outputs and the summary.

use mlops_actions::Runtime;
use mlops_core::sagemaker;
use mlops_core::train::{MissedThreshold, Registered, Trained};
use mlops_manifest::Manifest;
use mlops_manifest::model::Backend;
use mlops_train::card::SagemakerRun;
use mlops_train::train::Event;
use mlops_train::worker::{self, Report};

use super::valid_manifest;
use crate::cli::{Format, TrainArgs, TrainBackend};
use crate::exit::Exit;

pub(crate) fn run(args: &TrainArgs, format: Format) -> Exit {
    let (m, source) = match valid_manifest(&args.manifest, format, "nothing trained") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let m = match mlops_core::train::with_training_set(
        m,
        args.train_data.as_deref(),
        args.retraining,
    ) {
        Ok(m) => m,
        Err(p) => return super::failed(&p),
    };
    let backend = args.backend.unwrap_or(match m.training.backend {
        // The command backend runs on this machine: the local flow runs the command first.
        Backend::Local | Backend::Command => TrainBackend::Local,
        Backend::Sagemaker => TrainBackend::Sagemaker,
    });
    let registry = match super::open_registry(args.registry.as_deref(), &m, &args.manifest) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut console = super::Console(format);
    if backend == TrainBackend::Sagemaker && (args.sweep_trial.is_some() || args.sweep_select) {
        return super::failed(&mlops_core::Problem::input(
            "--sweep-trial and --sweep-select run a sweep's trials on this machine; with the \
             sagemaker backend a hyperparameter tuning job runs them all",
            "drop --sweep-trial and --sweep-select (render the train workflow again: it has no \
             trial matrix for a sweep on SageMaker)",
        ));
    }
    if backend == TrainBackend::Sagemaker {
        let request = mlops_core::sagemaker::Request {
            manifest: &m,
            manifest_path: &args.manifest,
            source: &source,
            registry: &registry,
            job_name: args.job_name.clone(),
            image_digest: args.image_digest.clone(),
            poll_seconds: args.poll_seconds,
            wait_timeout: args.wait_timeout,
        };
        return match mlops_core::sagemaker::train(&request, &mut console) {
            Ok(sagemaker::Outcome::Registered(reference)) => {
                println!("nothing to do: the job's model is registered as {reference}");
                Exit::Ok
            }
            Ok(sagemaker::Outcome::Trained(done)) => {
                let (sweep, trial) = match &done.sweep {
                    Some((record, trial)) => (Some(record.clone()), trial),
                    None => (None, &m),
                };
                conclude_sweep(
                    Trained {
                        manifest: &args.manifest,
                        m: trial,
                        source: &source,
                        registry: &registry,
                        model_dir: &done.model_dir,
                        job: &done.job,
                        report: &done.report,
                        sagemaker: Some(done.sagemaker.clone()),
                        sweep,
                    },
                    format,
                )
            }
            Err(p) => super::failed(&p),
        };
    }
    if args.sweep_trial.is_some() || args.sweep_select {
        return fanned_out(args, &m, &source, &registry, format);
    }
    if m.training.sweep.is_some() {
        return sweep(args, &m, &source, &registry, format);
    }
    let result = grouped(format, &format!("Training {}", m.model.name), |progress| {
        mlops_core::train::local(&m, &args.manifest, &mut console, |e| progress.show(e))
    });
    let run = match result {
        Ok(run) => run,
        Err(p) => return super::failed(&p),
    };
    conclude(
        &Trained {
            manifest: &args.manifest,
            m: &m,
            source: &source,
            registry: &registry,
            model_dir: &run.model_dir,
            job: &run.job,
            report: &run.report,
            sagemaker: None,
            sweep: None,
        },
        format,
    )
}

/// Runs `work` with a progress display, inside an Actions log group titled `title` when the
/// format is `github`.
fn grouped<T>(format: Format, title: &str, work: impl FnOnce(&mut Progress) -> T) -> T {
    let github = format == Format::Github;
    if github {
        crate::out::command(&mlops_actions::group(title));
    }
    let mut progress = Progress::new(format);
    let result = work(&mut progress);
    progress.finish();
    if github {
        crate::out::command(mlops_actions::end_group());
    }
    result
}

/// A sweep (`training.sweep`): every trial trained here, one after the other, then the best
/// registered with the record of all of them on its card.
fn sweep(
    args: &TrainArgs,
    m: &Manifest,
    source: &[u8],
    registry: &mlops_registry::Registry,
    format: Format,
) -> Exit {
    let mut console = super::Console(format);
    let result = grouped(format, &format!("Sweeping {}", m.model.name), |progress| {
        mlops_core::sweep::local(m, &args.manifest, &mut console, |_, e| progress.show(e))
    });
    let swept = match result {
        Ok(s) => s,
        Err(p) => return super::failed(&p),
    };
    conclude_sweep(
        Trained {
            manifest: &args.manifest,
            m: &swept.manifest,
            source,
            registry,
            model_dir: &swept.run.model_dir,
            job: &swept.run.job,
            report: &swept.run.report,
            sagemaker: None,
            sweep: Some(swept.record.clone()),
        },
        format,
    )
}

/// A model registered, a sweep's winner after its trials are shown ([`conclude`]).
fn conclude_sweep(t: Trained<'_>, format: Format) -> Exit {
    if let (Some(record), true) = (&t.sweep, format != Format::Json) {
        print!("{}", describe(record));
    }
    conclude(&t, format)
}

/// One job of a sweep fanned out over several: `--sweep-trial N` trains trial N and keeps it in
/// the registry; `--sweep-select` registers the best of them.
fn fanned_out(
    args: &TrainArgs,
    m: &Manifest,
    source: &[u8],
    registry: &mlops_registry::Registry,
    format: Format,
) -> Exit {
    let Some(id) = args.sweep_id.as_deref() else {
        return super::failed(&mlops_core::Problem::input(
            "--sweep-trial and --sweep-select need --sweep-id, the sweep the trials belong to",
            "pass the same --sweep-id to every trial and to the selection (the workflow passes its run ID)",
        ));
    };
    let mut console = super::Console(format);
    if let Some(number) = args.sweep_trial {
        let mut progress = Progress::new(format);
        let result =
            mlops_core::sweep::one(m, &args.manifest, registry, id, number, &mut console, |e| {
                progress.show(e)
            });
        progress.finish();
        return match result {
            Ok(record) => {
                if format == Format::Json {
                    println!("{}", serde_json::to_string(&record).unwrap_or_default());
                }
                Exit::Ok
            }
            Err(p) => super::failed(&p),
        };
    }
    let dir = match tempfile::Builder::new().prefix("mlops-sweep-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return super::failed(&mlops_core::Problem::broken(
                format!("cannot create a working directory: {e}"),
                "",
            ));
        }
    };
    let selected = match mlops_core::sweep::select(m, registry, id, dir.path()) {
        Ok(s) => s,
        Err(p) => return super::failed(&p),
    };
    conclude_sweep(
        Trained {
            manifest: &args.manifest,
            m,
            source,
            registry,
            model_dir: &selected.model_dir,
            job: &selected.job,
            report: &selected.report,
            sagemaker: None,
            sweep: Some(selected.record.clone()),
        },
        format,
    )
}

/// The sweep's trials as text: one line each, the registered one marked.
fn describe(record: &mlops_artifacts::sweep::SweepRecord) -> String {
    let mut out = format!(
        "sweep: {} trials ({}), {} validation {}\n",
        record.trials.len(),
        record.method,
        record.goal,
        record.metric
    );
    for t in &record.trials {
        let mark = if t.trial == record.best { "*" } else { " " };
        out += &format!(
            "{mark} trial {:>2}  {} {:.4}  {}\n",
            t.trial,
            record.metric,
            t.objective,
            mlops_core::sweep::shown(&t.parameters)
        );
    }
    out
}

/// Registers a trained model (the status its thresholds give), shows it and writes the step
/// outputs. Exit 1 when a threshold failed.
fn conclude(t: &Trained<'_>, format: Format) -> Exit {
    let registered = match mlops_core::train::register(t) {
        Ok(r) => r,
        Err(p) => return super::failed(&p),
    };
    show(t.m, &registered, t.report, format);
    let reference = &registered.entry.reference;
    if let Err(e) = outputs(reference, t, t.sagemaker.as_ref()) {
        eprintln!("warning: could not write the step outputs or summary: {e}");
    }
    if registered.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::No
    }
}

fn show(m: &Manifest, registered: &Registered, report: &Report, format: Format) {
    let failed = &registered.failed;
    if format == Format::Json {
        let summary = mlops_core::train::Summary::of(registered, report);
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        return;
    }
    print!("{}", registered.describe(report));
    if format == Format::Github {
        for MissedThreshold {
            metric,
            value,
            bound,
        } in failed
        {
            let line = format!("{} {metric} {value:.4} breaks {bound}", m.model.name);
            crate::out::command(&mlops_actions::annotation(
                mlops_actions::Level::Error,
                None,
                "mlops train",
                &line,
            ));
        }
    }
}

/// Step outputs and the step summary (no-ops outside GitHub Actions).
fn outputs(
    reference: &str,
    t: &Trained<'_>,
    sagemaker: Option<&SagemakerRun>,
) -> std::io::Result<()> {
    let (report, task) = (t.report, t.m.model.task);
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
    let mut summary = report.markdown(reference, task);
    if let Some(sweep) = &t.sweep {
        summary.push('\n');
        summary.push_str(&sweep.markdown());
    }
    rt.append_summary(&summary)
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

    fn note(&self, line: &str, level: mlops_actions::Level) {
        match (self.format, &self.bar) {
            (_, Some(bar)) => bar.println(format!("note: {}", mlops_actions::neutral(line, false))),
            (Format::Github, None) => {
                crate::out::command(&mlops_actions::annotation(level, None, "mlops train", line));
            }
            _ => eprintln!("note: {line}"),
        }
    }

    fn show(&mut self, event: Event<'_>) {
        match event {
            Event::CheckpointUnusable(_) => {
                self.note(
                    &event.note().unwrap_or_default(),
                    mlops_actions::Level::Warning,
                );
            }
            Event::Resumed { .. } => self.note(
                &event.note().unwrap_or_default(),
                mlops_actions::Level::Notice,
            ),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mlops_train::train::Epoch;

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
}
