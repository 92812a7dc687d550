//! SageMaker hyperparameter tuning jobs: one training job definition (the same one
//! [`SageMaker::create_training_job`] starts), hyperparameter ranges, an objective metric the
//! definition's metric definitions find in the log, and SageMaker running the trials as training
//! jobs of their own (`NAME-001-XXXXXXXX`, ...).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sagemaker::types::{
    CategoricalParameterRange, ContinuousParameterRange, HyperParameterAlgorithmSpecification,
    HyperParameterScalingType, HyperParameterTrainingJobDefinition,
    HyperParameterTrainingJobSummary, HyperParameterTuningJobConfig,
    HyperParameterTuningJobObjective, HyperParameterTuningJobObjectiveType,
    HyperParameterTuningJobStrategyType, ParameterRanges, ResourceLimits, SortOrder,
    TrainingInputMode, TrainingJobEarlyStoppingType, TrainingJobSortByOptions,
};

use crate::call::{explain, or_absent};
use crate::sagemaker::to_map;
use crate::{AwsError, Poll, SageMaker, TrainingSpec};

/// How a tuning job picks its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Every combination of the categorical values; SageMaker counts the trials itself.
    #[default]
    Grid,
    /// `max_jobs` draws.
    Random,
}

/// A number hyperparameter drawn from `min..=max` (its logarithm uniformly with `log`).
#[derive(Debug, Clone, PartialEq)]
pub struct Continuous {
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub log: bool,
}

/// Everything `CreateHyperParameterTuningJob` is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TuningSpec {
    /// At most 32 characters.
    pub name: String,
    /// What every trial runs; its `hyperparameters` are the static ones and its `name` is unused
    /// (SageMaker names the trials).
    pub training: TrainingSpec,
    pub strategy: Strategy,
    /// The trials of a random search (a grid runs each combination once).
    pub max_jobs: Option<i32>,
    pub max_parallel: i32,
    /// The objective: a metric the definition's metric definitions name.
    pub objective: String,
    pub maximize: bool,
    /// Hyperparameter name and its values, each as the worker reads it (JSON text).
    pub categorical: Vec<(String, Vec<String>)>,
    pub continuous: Vec<Continuous>,
    pub random_seed: Option<i32>,
}

/// What `DescribeHyperParameterTuningJob` says of a tuning job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuningState {
    pub name: String,
    pub arn: String,
    /// `InProgress`, `Completed`, `Failed`, `Stopping` or `Stopped`.
    pub status: String,
    pub failure_reason: Option<String>,
    /// Its training jobs by state: completed, in progress, failed, stopped.
    pub completed: i32,
    pub in_progress: i32,
    pub failed: i32,
    pub stopped: i32,
    /// The training job SageMaker judged best.
    pub best: Option<String>,
}

impl TuningState {
    /// The tuning job will not change any more.
    pub fn is_over(&self) -> bool {
        crate::job::Described::is_over(self)
    }
}

impl crate::job::Described for TuningState {
    fn status(&self) -> &str {
        &self.status
    }
}

/// One training job a tuning job started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TuningTrial {
    pub name: String,
    pub status: String,
    /// The hyperparameters the tuning job chose, as SageMaker passed them.
    pub tuned: BTreeMap<String, String>,
    /// The objective's final value, once the job reported it.
    pub objective: Option<f64>,
    pub failure_reason: Option<String>,
    /// Seconds between the job's training start and end.
    pub seconds: Option<f64>,
}

const TUNING: crate::job::JobKind = crate::job::JobKind {
    noun: "hyperparameter tuning job",
    stop_command: "stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name",
};

fn trial(s: &HyperParameterTrainingJobSummary) -> TuningTrial {
    let seconds = match (s.training_start_time(), s.training_end_time()) {
        (Some(a), Some(b)) => Some(b.as_secs_f64() - a.as_secs_f64()),
        _ => None,
    };
    TuningTrial {
        name: s.training_job_name().unwrap_or_default().to_owned(),
        status: s
            .training_job_status()
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default(),
        tuned: s
            .tuned_hyper_parameters()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        objective: s
            .final_hyper_parameter_tuning_job_objective_metric()
            .and_then(|m| m.value().map(f64::from)),
        failure_reason: s.failure_reason().map(str::to_owned),
        seconds,
    }
}

impl SageMaker {
    /// The tuning job named `name`, or `None` when there is none.
    pub async fn tuning_job(&self, name: &str) -> Result<Option<TuningState>, AwsError> {
        let out = match self
            .client
            .describe_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return or_absent(
                    explain(
                        "SageMaker",
                        name,
                        "describe the hyperparameter tuning job",
                        &e,
                    ),
                    None,
                );
            }
        };
        let counters = out.training_job_status_counters();
        let count = |f: fn(&aws_sdk_sagemaker::types::TrainingJobStatusCounters) -> Option<i32>| {
            counters.and_then(f).unwrap_or(0)
        };
        Ok(Some(TuningState {
            name: out
                .hyper_parameter_tuning_job_name()
                .unwrap_or(name)
                .to_owned(),
            arn: out
                .hyper_parameter_tuning_job_arn()
                .unwrap_or_default()
                .to_owned(),
            status: out
                .hyper_parameter_tuning_job_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            failure_reason: out.failure_reason().map(str::to_owned),
            completed: count(|c| c.completed()),
            in_progress: count(|c| c.in_progress()),
            failed: count(|c| c.retryable_error()) + count(|c| c.non_retryable_error()),
            stopped: count(|c| c.stopped()),
            best: out
                .best_training_job()
                .and_then(|b| b.training_job_name())
                .map(str::to_owned),
        }))
    }

    /// Starts the tuning job; its ARN.
    pub async fn create_tuning_job(&self, spec: &TuningSpec) -> Result<String, AwsError> {
        let t = &spec.training;
        let objective = HyperParameterTuningJobObjective::builder()
            .r#type(if spec.maximize {
                HyperParameterTuningJobObjectiveType::Maximize
            } else {
                HyperParameterTuningJobObjectiveType::Minimize
            })
            .metric_name(&spec.objective)
            .build();
        let limits = ResourceLimits::builder()
            .set_max_number_of_training_jobs(spec.max_jobs)
            .max_parallel_training_jobs(spec.max_parallel)
            .build();
        let categorical = spec
            .categorical
            .iter()
            .map(|(name, values)| {
                CategoricalParameterRange::builder()
                    .name(name)
                    .set_values(Some(values.clone()))
                    .build()
            })
            .collect::<Vec<_>>();
        let continuous = spec
            .continuous
            .iter()
            .map(|c| {
                ContinuousParameterRange::builder()
                    .name(&c.name)
                    .min_value(c.min.to_string())
                    .max_value(c.max.to_string())
                    .scaling_type(if c.log {
                        HyperParameterScalingType::Logarithmic
                    } else {
                        HyperParameterScalingType::Linear
                    })
                    .build()
            })
            .collect::<Vec<_>>();
        let ranges = ParameterRanges::builder()
            .set_categorical_parameter_ranges((!categorical.is_empty()).then_some(categorical))
            .set_continuous_parameter_ranges((!continuous.is_empty()).then_some(continuous))
            .build();
        let config = HyperParameterTuningJobConfig::builder()
            .strategy(match spec.strategy {
                Strategy::Grid => HyperParameterTuningJobStrategyType::Grid,
                Strategy::Random => HyperParameterTuningJobStrategyType::Random,
            })
            .hyper_parameter_tuning_job_objective(objective)
            .resource_limits(limits)
            .parameter_ranges(ranges)
            .training_job_early_stopping_type(TrainingJobEarlyStoppingType::Off)
            .set_random_seed(spec.random_seed)
            .build();
        let algorithm = HyperParameterAlgorithmSpecification::builder()
            .training_image(&t.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(t.definitions()))
            .build();
        let mut definition = HyperParameterTrainingJobDefinition::builder()
            .algorithm_specification(algorithm)
            .role_arn(&t.role_arn)
            .set_input_data_config(Some(t.inputs()))
            .output_data_config(t.output())
            .resource_config(t.resources())
            .stopping_condition(t.stopping())
            .set_static_hyper_parameters(Some(to_map(&t.hyperparameters)));
        if !t.environment.is_empty() {
            definition = definition.set_environment(Some(to_map(&t.environment)));
        }
        if let Some(checkpoints) = t.checkpoints() {
            definition = definition
                .enable_managed_spot_training(true)
                .checkpoint_config(checkpoints);
        }
        if let Some(vpc) = t.vpc_config() {
            definition = definition.vpc_config(vpc);
        }
        let out = self
            .client
            .create_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(&spec.name)
            .hyper_parameter_tuning_job_config(config)
            .training_job_definition(definition.build())
            .set_tags(Some(t.tag_list()))
            .send()
            .await
            .map_err(|e| {
                explain(
                    "SageMaker",
                    &spec.name,
                    "create the hyperparameter tuning job",
                    &e,
                )
            })?;
        Ok(out
            .hyper_parameter_tuning_job_arn()
            .unwrap_or_default()
            .to_owned())
    }

    /// Every training job the tuning job started, oldest first.
    pub async fn tuning_trials(&self, name: &str) -> Result<Vec<TuningTrial>, AwsError> {
        let mut all = Vec::new();
        let mut pages = self
            .client
            .list_training_jobs_for_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(name)
            .sort_by(TrainingJobSortByOptions::CreationTime)
            .sort_order(SortOrder::Ascending)
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                explain(
                    "SageMaker",
                    name,
                    "list the training jobs of the tuning job",
                    &e,
                )
            })?;
            all.extend(page.training_job_summaries().iter().map(trial));
        }
        Ok(all)
    }

    /// Polls the tuning job until it is over; `on_change` sees each new status or count.
    pub async fn wait_tuning(
        &self,
        name: &str,
        poll: Poll,
        on_change: impl FnMut(&TuningState),
    ) -> Result<TuningState, AwsError> {
        crate::job::wait(
            TUNING,
            name,
            poll,
            || self.tuning_job(name),
            |l: &TuningState, s: &TuningState| {
                (&l.status, l.completed, l.in_progress, l.failed, l.stopped)
                    != (&s.status, s.completed, s.in_progress, s.failed, s.stopped)
            },
            on_change,
        )
        .await
    }

    /// Asks SageMaker to stop the tuning job (and so every training job it runs), then polls
    /// until it is `Stopping` or over (at most `patience`).
    pub async fn stop_tuning(
        &self,
        name: &str,
        poll: Poll,
        patience: Duration,
    ) -> Result<TuningState, AwsError> {
        let ask = || async {
            self.client
                .stop_hyper_parameter_tuning_job()
                .hyper_parameter_tuning_job_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| explain("SageMaker", name, "stop the hyperparameter tuning job", &e))
        };
        crate::job::stop(TUNING, name, poll, patience, ask, || self.tuning_job(name)).await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sagemaker::Client;
    use aws_sdk_sagemaker::operation::describe_hyper_parameter_tuning_job::DescribeHyperParameterTuningJobOutput;
    use aws_sdk_sagemaker::operation::list_training_jobs_for_hyper_parameter_tuning_job::ListTrainingJobsForHyperParameterTuningJobOutput;
    use aws_sdk_sagemaker::types::{
        FinalHyperParameterTuningJobObjectiveMetric, HyperParameterTuningJobStatus,
        TrainingJobStatus, TrainingJobStatusCounters,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;

    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        crate::runtime().expect("runtime").block_on(f)
    }

    fn quick() -> Poll {
        Poll {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            failures: 2,
        }
    }

    fn described(
        status: HyperParameterTuningJobStatus,
        completed: i32,
        running: i32,
    ) -> DescribeHyperParameterTuningJobOutput {
        DescribeHyperParameterTuningJobOutput::builder()
            .hyper_parameter_tuning_job_name("digits-0123456789abcdef")
            .hyper_parameter_tuning_job_arn(
                "arn:aws:sagemaker:eu-west-1:1:hyper-parameter-tuning-job/digits-0123456789abcdef",
            )
            .hyper_parameter_tuning_job_status(status)
            .training_job_status_counters(
                TrainingJobStatusCounters::builder()
                    .completed(completed)
                    .in_progress(running)
                    .non_retryable_error(0)
                    .build(),
            )
            .build()
    }

    /// Waiting reports each change of the counts once and ends on Completed.
    #[test]
    fn waiting_follows_the_counts_to_the_end() {
        let describe = mock!(Client::describe_hyper_parameter_tuning_job)
            .sequence()
            .output(|| described(HyperParameterTuningJobStatus::InProgress, 0, 2))
            .times(2)
            .output(|| described(HyperParameterTuningJobStatus::InProgress, 2, 2))
            .output(|| described(HyperParameterTuningJobStatus::Completed, 4, 0))
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::Sequential, [&describe]);
        let mut seen = Vec::new();
        let end = block(SageMaker::from_client(client).wait_tuning(
            "digits-0123456789abcdef",
            quick(),
            |s| seen.push(format!("{} {}/{}", s.status, s.completed, s.in_progress)),
        ))
        .expect("ends");
        assert_eq!(seen, ["InProgress 0/2", "InProgress 2/2", "Completed 4/0"]);
        assert!(end.is_over());
    }

    /// The trials come back oldest first with their tuned values, objective and seconds.
    #[test]
    fn trials_carry_their_values_and_objective() {
        let list =
            mock!(Client::list_training_jobs_for_hyper_parameter_tuning_job).then_output(|| {
                let job = |n: u8, status: TrainingJobStatus, value: Option<f32>| {
                    let mut b = HyperParameterTrainingJobSummary::builder()
                        .training_job_name(format!("digits-0123456789abcdef-00{n}-1a2b3c4d"))
                        .training_job_status(status)
                        .creation_time(DateTime::from_secs(1_700_000_000 + i64::from(n)))
                        .training_start_time(DateTime::from_secs(1_700_000_010))
                        .training_end_time(DateTime::from_secs(1_700_000_052))
                        .tuned_hyper_parameters("learning_rate", format!("0.00{n}"));
                    if let Some(v) = value {
                        b = b.final_hyper_parameter_tuning_job_objective_metric(
                            FinalHyperParameterTuningJobObjectiveMetric::builder()
                                .metric_name("validation:accuracy")
                                .value(v)
                                .build(),
                        );
                    }
                    b.build()
                };
                ListTrainingJobsForHyperParameterTuningJobOutput::builder()
                    .training_job_summaries(job(1, TrainingJobStatus::Completed, Some(0.5)))
                    .training_job_summaries(job(2, TrainingJobStatus::Failed, None))
                    .build()
            });
        let client = mock_client!(aws_sdk_sagemaker, [&list]);
        let trials = block(SageMaker::from_client(client).tuning_trials("digits-0123456789abcdef"))
            .expect("lists");
        assert_eq!(trials.len(), 2);
        assert_eq!(trials[0].tuned["learning_rate"], "0.001");
        assert_eq!(trials[0].objective, Some(0.5));
        assert_eq!(trials[0].seconds, Some(42.0));
        assert_eq!(trials[1].status, "Failed");
        assert_eq!(trials[1].objective, None);
    }
}
