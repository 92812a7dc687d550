//! A sweep on SageMaker: one hyperparameter tuning job whose trials are training jobs of the
//! same definition a single training runs, the swept hyperparameters as its ranges, and the
//! objective as one of the metric definitions (the worker's epoch lines). When it completes,
//! every trial is recorded and the best one's artifact goes the way a single training's does.
//!
//! A sweep is judged whole, as on GitHub Actions: a trial that failed or was stopped fails the
//! run and nothing is registered. SIGINT, SIGTERM and `--wait-timeout` stop the tuning job, and
//! with it every trial still running.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use mlops_artifacts::sweep::{SweepRecord, TrialRecord};
use mlops_aws::{S3Uri, TuningSpec, TuningState};
use mlops_manifest::Manifest;
use mlops_manifest::model::Device;
use mlops_train::worker::Job;

use super::{Clients, Collected, Found, Out, Plan, Stopping, cancelled, collect, definition, stop};
use crate::Problem;

/// Trials at once when the sweep does not say (`training.sweep.parallel`).
const DEFAULT_PARALLEL: u32 = 4;

/// What one tuning run works with.
pub(super) struct Cx<'a, 'p, 'o> {
    pub m: &'a Manifest,
    pub plan: &'a Plan<'p>,
    pub aws: &'a Clients,
    pub work: &'a Path,
    pub out: &'a Out<'o>,
}

/// The sweep that chose the registered trial: its record, the trial's manifest and job.
pub(super) struct Swept {
    pub record: SweepRecord,
    pub manifest: Manifest,
    pub job: Job,
}

/// Starts (or attaches to) the tuning job `name`, waits for it, and collects its best trial.
pub(super) async fn run(
    cx: &Cx<'_, '_, '_>,
    name: &str,
    output: &S3Uri,
    mut signal: Pin<&mut impl Future<Output = &'static str>>,
) -> Result<Found, Problem> {
    let (plan, out) = (cx.plan, cx.out);
    let sagemaker = &cx.aws.sagemaker;
    let started = tokio::select! {
        r = launch(cx, name, output) => r,
        sig = signal.as_mut() => {
            out.notice(&format!("{sig}: cancelling"));
            let why = cancelled(sig, "hyperparameter tuning job", name);
            return Err(stop(sagemaker, Stopping::Tuning(name), plan.poll, why, out).await);
        }
    };
    let image = started?;
    let show = |s: &TuningState| {
        out.step(&format!(
            "tuning job {}: {}, trials: {} completed, {} running, {} failed, {} stopped",
            s.name, s.status, s.completed, s.in_progress, s.failed, s.stopped
        ));
    };
    let timeout = async {
        match plan.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        r = sagemaker.wait_tuning(name, plan.poll, show) => r?,
        sig = signal.as_mut() => {
            out.notice(&format!("{sig}: stopping the tuning job {name} and its trials"));
            let why = cancelled(sig, "hyperparameter tuning job", name);
            return Err(stop(sagemaker, Stopping::Tuning(name), plan.poll, why, out).await);
        }
        () = timeout => {
            let why = Problem::broken(
                format!("the tuning job {name} did not finish within --wait-timeout; stopped it"),
                "raise --wait-timeout (MLOPS_WAIT_TIMEOUT), or lower the sweep's budget",
            );
            out.notice(&format!("the tuning job {name} did not finish within --wait-timeout; stopping it"));
            return Err(stop(sagemaker, Stopping::Tuning(name), plan.poll, why, out).await);
        }
    };
    match end.status.as_str() {
        "Completed" => {}
        "Failed" => {
            return Err(Problem::broken(
                format!(
                    "the tuning job {name} failed: {}",
                    end.failure_reason
                        .as_deref()
                        .unwrap_or("SageMaker gave no reason")
                ),
                "see the tuning job in the SageMaker console; nothing was registered",
            ));
        }
        other => {
            return Err(Problem::broken(
                format!("the tuning job {name} ended {other}, without a model"),
                "it was stopped outside this run; run again with another --job-name to sweep anew",
            ));
        }
    }
    let (record, best) = judge(cx, name).await?;
    let Some(winner) = record.best_trial() else {
        return Err(Problem::broken("the sweep has no trial", ""));
    };
    let manifest = crate::sweep::apply(cx.m, &winner.parameters)?;
    let mut job = Job::from_manifest(&manifest);
    job.device = Device::Cpu;
    job.require_gpu = false;
    out.step(&format!(
        "best trial: {} ({} {:.4})",
        best.name, record.metric, winner.objective
    ));
    let image = image.or_else(|| best.image.clone()).unwrap_or_default();
    let (model_dir, report, mut sagemaker) =
        collect(cx.m, plan, cx.aws, &best.name, &best, &image, cx.work, out).await?;
    sagemaker.tuning_job = Some(name.to_owned());
    Ok(Found::Trained(Box::new(Collected {
        model_dir,
        report,
        sagemaker,
        sweep: Some(Swept {
            record,
            manifest,
            job,
        }),
    })))
}

/// Attaches to the tuning job `name` when it exists; otherwise starts it over the definition a
/// single training would run, the swept hyperparameters taken out of its static ones. The image
/// by digest when this run resolved it.
async fn launch(
    cx: &Cx<'_, '_, '_>,
    name: &str,
    output: &S3Uri,
) -> Result<Option<String>, Problem> {
    let (m, plan, out) = (cx.m, cx.plan, cx.out);
    let sagemaker = &cx.aws.sagemaker;
    if let Some(existing) = sagemaker.tuning_job(name).await? {
        out.step(&format!(
            "attached to the existing tuning job {name} ({}); no new job started",
            existing.status
        ));
        return Ok(None);
    }
    let (Some(t), Some(sw)) = (&plan.tuning, &m.training.sweep) else {
        return Err(Problem::broken("the manifest has no sweep", ""));
    };
    let mut training = definition(m, plan, cx.aws, name, output, out).await?;
    for (key, _) in &t.categorical {
        training.hyperparameters.remove(key);
    }
    for c in &t.continuous {
        training.hyperparameters.remove(&c.name);
    }
    let objective = format!("validation:{}", sw.objective.metric.name());
    if !training
        .metric_definitions
        .iter()
        .any(|(n, _)| *n == objective)
    {
        training.metric_definitions.push((
            objective.clone(),
            format!(
                r"\bvalidation_{}=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)",
                sw.objective.metric.name()
            ),
        ));
    }
    let trials = i32::try_from(t.trials).unwrap_or(i32::MAX);
    let parallel = i32::try_from(sw.parallel.unwrap_or(DEFAULT_PARALLEL)).unwrap_or(1);
    let random = t.strategy == mlops_aws::tuning::Strategy::Random;
    let spec = TuningSpec {
        name: name.to_owned(),
        strategy: t.strategy,
        max_jobs: random.then_some(trials),
        max_parallel: parallel.min(trials).max(1),
        objective,
        maximize: sw.objective.maximize(),
        categorical: t.categorical.clone(),
        continuous: t.continuous.clone(),
        random_seed: random.then(|| i32::try_from(sw.seed % (i32::MAX as u64)).unwrap_or(0)),
        training,
    };
    let arn = sagemaker.create_tuning_job(&spec).await?;
    out.step(&format!(
        "started tuning job {name} ({arn}): {} trials, {} at once",
        t.trials, spec.max_parallel
    ));
    Ok(Some(spec.training.image))
}

/// Every trial of the completed tuning job `name` recorded, oldest first, and the best one's
/// training job. A trial that did not complete, or fewer trials than the sweep has, is an error.
async fn judge(
    cx: &Cx<'_, '_, '_>,
    name: &str,
) -> Result<(SweepRecord, mlops_aws::JobState), Problem> {
    let sagemaker = &cx.aws.sagemaker;
    let (Some(t), Some(sw)) = (&cx.plan.tuning, &cx.m.training.sweep) else {
        return Err(Problem::broken("the manifest has no sweep", ""));
    };
    let trials = sagemaker.tuning_trials(name).await?;
    let unfinished: Vec<String> = trials
        .iter()
        .filter(|j| j.status != "Completed")
        .map(|j| {
            format!(
                "{} {}{}",
                j.name,
                j.status,
                j.failure_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !unfinished.is_empty() {
        return Err(Problem::broken(
            format!(
                "the tuning job {name}: {} of {} trials did not complete ({}); a sweep is judged whole, so nothing was registered",
                unfinished.len(),
                trials.len(),
                unfinished.join("; ")
            ),
            format!(
                "each trial's log is in CloudWatch, log group {}, streams TRIAL/*; fix the cause and run again",
                mlops_aws::logs::TRAINING_LOG_GROUP
            ),
        ));
    }
    if trials.len() < t.trials {
        return Err(Problem::broken(
            format!(
                "the tuning job {name} ran {} of the sweep's {} trials",
                trials.len(),
                t.trials
            ),
            "run again with another --job-name to sweep anew",
        ));
    }
    let metric = sw.objective.metric.name();
    let mut records = Vec::new();
    let mut states = Vec::new();
    for (i, trial) in trials.iter().enumerate() {
        let Some(state) = sagemaker.training_job(&trial.name).await? else {
            return Err(Problem::broken(
                format!("the tuning job's trial {} cannot be found", trial.name),
                "",
            ));
        };
        let metrics: BTreeMap<String, f64> = state
            .final_metrics
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("validation:")?;
                (name != "loss").then(|| (name.to_owned(), *v))
            })
            .collect();
        records.push(TrialRecord {
            trial: i + 1,
            parameters: crate::sweep::from_tuned(&trial.tuned),
            objective: trial
                .objective
                .or_else(|| metrics.get(metric).copied())
                .unwrap_or(f64::NAN),
            metrics,
            seconds: trial.seconds.unwrap_or(0.0),
        });
        states.push(state);
    }
    let maximize = sw.objective.maximize();
    let Some(winner) = crate::sweep::best(&records, maximize) else {
        return Err(Problem::broken(
            format!("the tuning job {name} ran no trial"),
            "",
        ));
    };
    let Some(best) = states.into_iter().nth(winner - 1) else {
        return Err(Problem::broken("the best trial vanished", ""));
    };
    let record = crate::sweep::sweep_record(sw, records, winner);
    Ok((record, best))
}
