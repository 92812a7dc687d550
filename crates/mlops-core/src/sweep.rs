//! Hyperparameter sweeps (`training.sweep`): the trials a sweep runs ([`trials`]), each the
//! manifest with some hyperparameters set; running them one after the other on this machine
//! ([`local`]); and the rule that picks the one registered ([`best`]).

use std::collections::BTreeMap;
use std::path::Path;

use mlops_artifacts::sweep::{SweepRecord, TrialRecord};
use mlops_manifest::Manifest;
use mlops_manifest::model::{Sweep, SweepMethod, SweepValues};
use mlops_train::train::Event;
use serde_json::{Value, json};

use crate::train::LocalRun;
use crate::{Problem, Progress};

/// One trial: its number (from 1), the hyperparameters it sets, and the manifest it trains.
#[derive(Debug, Clone)]
pub struct Trial {
    pub number: usize,
    pub parameters: BTreeMap<String, Value>,
    pub manifest: Manifest,
}

/// The values of one swept hyperparameter: the listed ones, or a range to draw from.
enum Values {
    List(Vec<Value>),
    Range { min: f64, max: f64, log: bool },
}

/// A list of values as JSON.
fn of<T: serde::Serialize>(v: &Option<Vec<T>>) -> Option<Vec<Value>> {
    v.as_ref().map(|v| {
        v.iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect()
    })
}

/// The swept hyperparameters in a fixed order, by the manifest's names.
fn parameters(sw: &Sweep) -> Vec<(&'static str, Values)> {
    let p = &sw.parameters;
    let list = |v: Option<Vec<Value>>| v.map(Values::List);
    let number = |v: &Option<SweepValues>| {
        v.as_ref().map(|v| match v {
            SweepValues::List(l) => Values::List(l.iter().map(|x| json!(x)).collect()),
            SweepValues::Range(r) => Values::Range {
                min: r.min,
                max: r.max,
                log: r.log,
            },
        })
    };
    [
        ("learning_rate", number(&p.learning_rate)),
        ("batch_size", list(of(&p.batch_size))),
        ("epochs", list(of(&p.epochs))),
        ("optimizer", list(of(&p.optimizer))),
        ("hidden_layers", list(of(&p.hidden_layers))),
        ("activation", list(of(&p.activation))),
        ("dropout", number(&p.dropout)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

/// The trials of `m`'s sweep (none without one): a grid's combinations in order, the first
/// parameter varying slowest, up to the budget; or the budget's random draws, seeded.
pub fn trials(m: &Manifest) -> Result<Vec<Trial>, Problem> {
    let Some(sw) = &m.training.sweep else {
        return Ok(Vec::new());
    };
    let params = parameters(sw);
    let budget = sw.budget as usize;
    let mut assignments: Vec<BTreeMap<String, Value>> = Vec::new();
    match sw.method {
        SweepMethod::Grid => {
            let mut grid = vec![BTreeMap::new()];
            for (name, values) in &params {
                let Values::List(values) = values else {
                    return Err(Problem::input(
                        format!("training.sweep.parameters.{name}: a grid needs listed values"),
                        "list the values, or set `method: random`",
                    ));
                };
                grid = grid
                    .into_iter()
                    .flat_map(|a| {
                        values.iter().map(move |v| {
                            let mut a = a.clone();
                            a.insert((*name).to_owned(), v.clone());
                            a
                        })
                    })
                    .take(budget + 1)
                    .collect();
            }
            if grid.len() > budget {
                return Err(Problem::input(
                    format!("the sweep's grid has more than {budget} combinations (its budget)"),
                    "raise `training.sweep.budget`, list fewer values, or set `method: random`",
                ));
            }
            assignments = grid;
        }
        SweepMethod::Random => {
            let mut rng = SplitMix(sw.seed);
            for _ in 0..budget {
                let mut a = BTreeMap::new();
                for (name, values) in &params {
                    let v = match values {
                        Values::List(list) => {
                            let i = rng.below(list.len());
                            list.get(i).cloned().unwrap_or(Value::Null)
                        }
                        Values::Range { min, max, log } => json!(draw(&mut rng, *min, *max, *log)),
                    };
                    a.insert((*name).to_owned(), v);
                }
                assignments.push(a);
            }
        }
    }
    assignments
        .into_iter()
        .enumerate()
        .map(|(i, parameters)| {
            let manifest = apply(m, &parameters)?;
            Ok(Trial {
                number: i + 1,
                parameters,
                manifest,
            })
        })
        .collect()
}

/// A sweep as a SageMaker hyperparameter tuning job would run it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tuning {
    pub strategy: mlops_aws::tuning::Strategy,
    /// The trials the tuning job runs.
    pub trials: usize,
    /// Each listed hyperparameter: its key (see [`tuning_key`]) and its values as JSON text.
    pub categorical: Vec<(String, Vec<String>)>,
    /// Each range.
    pub continuous: Vec<mlops_aws::tuning::Continuous>,
}

/// The hyperparameter key a tuning job varies `name` under: the job's own field, or one field
/// of the model's `hyperparameters` object.
pub(crate) fn tuning_key(name: &str) -> String {
    match name {
        "hidden_layers" | "activation" | "dropout" => {
            format!("{}{name}", mlops_artifacts::training::MODEL_HYPERPARAMETER)
        }
        _ => name.to_owned(),
    }
}

/// `m`'s sweep as a tuning job: a grid as categorical ranges (SageMaker's grid search takes
/// those only, and runs each combination once), a random search as categorical and continuous
/// ranges with the budget as its trial count.
pub(crate) fn tuning(m: &Manifest) -> Result<Option<Tuning>, Problem> {
    let Some(sw) = &m.training.sweep else {
        return Ok(None);
    };
    let mut categorical = Vec::new();
    let mut continuous = Vec::new();
    for (name, values) in parameters(sw) {
        match values {
            Values::List(list) => categorical.push((
                tuning_key(name),
                list.iter().map(Value::to_string).collect(),
            )),
            Values::Range { min, max, log } => continuous.push(mlops_aws::tuning::Continuous {
                name: tuning_key(name),
                min,
                max,
                log,
            }),
        }
    }
    let (strategy, trials) = match sw.method {
        SweepMethod::Grid => (mlops_aws::tuning::Strategy::Grid, trials(m)?.len()),
        SweepMethod::Random => (mlops_aws::tuning::Strategy::Random, sw.budget as usize),
    };
    Ok(Some(Tuning {
        strategy,
        trials,
        categorical,
        continuous,
    }))
}

/// The hyperparameters a tuning job chose, by the sweep's names and as values; text that is not
/// JSON stays text.
pub(crate) fn from_tuned(tuned: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    tuned
        .iter()
        .map(|(k, v)| {
            let name = k
                .strip_prefix(mlops_artifacts::training::MODEL_HYPERPARAMETER)
                .unwrap_or(k);
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()));
            (name.to_owned(), value)
        })
        .collect()
}

/// A value drawn from `min..=max` (its logarithm uniformly with `log`), to 4 significant digits.
fn draw(rng: &mut SplitMix, min: f64, max: f64, log: bool) -> f64 {
    let u = rng.unit();
    let x = if log && min > 0.0 {
        (min.ln() + u * (max.ln() - min.ln())).exp()
    } else {
        min + u * (max - min)
    };
    let x = if x == 0.0 {
        0.0
    } else {
        let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
        (x * scale).round() / scale
    };
    x.clamp(min, max)
}

/// `m` with a trial's hyperparameters set.
pub(crate) fn apply(
    m: &Manifest,
    parameters: &BTreeMap<String, Value>,
) -> Result<Manifest, Problem> {
    let mut value = serde_json::to_value(m).map_err(|e| Problem::broken(e.to_string(), ""))?;
    for (name, v) in parameters {
        let path = match name.as_str() {
            "hidden_layers" | "activation" | "dropout" => "/model/hyperparameters",
            _ => "/training",
        };
        if let Some(section) = value.pointer_mut(path).and_then(Value::as_object_mut) {
            section.insert(name.clone(), v.clone());
        }
    }
    // The trial is one training: its manifest sweeps no further.
    if let Some(t) = value
        .pointer_mut("/training")
        .and_then(Value::as_object_mut)
    {
        t.remove("sweep");
    }
    serde_json::from_value(value).map_err(|e| {
        Problem::input(
            format!("a trial's hyperparameters do not fit the manifest: {e}"),
            "check the values under `training.sweep.parameters`",
        )
    })
}

/// The winning trial's number: the best objective by the goal; ties go to the earlier trial,
/// and a trial whose objective is not a number never wins (unless none is).
pub fn best(trials: &[TrialRecord], maximize: bool) -> Option<usize> {
    let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
    let mut winner: Option<&TrialRecord> = None;
    for t in trials {
        winner = match winner {
            None => Some(t),
            Some(w) if !w.objective.is_finite() && t.objective.is_finite() => Some(t),
            Some(w) if t.objective.is_finite() && better(t.objective, w.objective) => Some(t),
            keep => keep,
        };
    }
    winner.map(|t| t.trial)
}

/// A finished local sweep: the winning trial's run and manifest, and the record of every trial.
#[derive(Debug)]
pub struct Swept {
    pub run: LocalRun,
    pub manifest: Manifest,
    pub record: SweepRecord,
}

/// Runs every trial of `m`'s sweep on this machine, one after the other (the same flow as one
/// local training each), keeping the best run; `on_event` hears each trial's worker, with the
/// trial's number. Nothing is registered here.
pub fn local(
    m: &Manifest,
    manifest: &Path,
    progress: &mut dyn Progress,
    mut on_event: impl FnMut(usize, Event<'_>),
) -> Result<Swept, Problem> {
    let Some(sw) = &m.training.sweep else {
        return Err(Problem::broken("the manifest has no sweep", ""));
    };
    let trials = trials(m)?;
    let maximize = sw.objective.maximize();
    let metric = sw.objective.metric.name();
    let total = trials.len();
    let mut records = Vec::new();
    let mut kept: Option<(usize, LocalRun, Manifest)> = None;
    for trial in trials {
        progress.step(&format!(
            "trial {}/{total}: {}",
            trial.number,
            shown(&trial.parameters)
        ));
        let run = crate::train::local(&trial.manifest, manifest, progress, |e| {
            on_event(trial.number, e)
        })?;
        let record = trial_record(trial.number, trial.parameters.clone(), &run, metric);
        progress.notice(&format!(
            "trial {}/{total}: validation {metric} {:.4}",
            trial.number, record.objective
        ));
        records.push(record);
        // Only the best run so far is kept (its model directory); the others are dropped.
        if best(&records, maximize) == Some(trial.number) {
            kept = Some((trial.number, run, trial.manifest));
        }
    }
    let Some((number, run, manifest)) = kept else {
        return Err(Problem::broken("the sweep ran no trial", ""));
    };
    Ok(Swept {
        run,
        manifest,
        record: sweep_record(sw, records, number),
    })
}

/// A trial's record from its run: its validation metrics, and the objective's value among them
/// (not a number when the run did not measure it).
fn trial_record(
    number: usize,
    parameters: BTreeMap<String, Value>,
    run: &LocalRun,
    metric: &str,
) -> TrialRecord {
    let metrics = run.report.metrics_of("validation");
    TrialRecord {
        trial: number,
        parameters,
        objective: metrics.get(metric).copied().unwrap_or(f64::NAN),
        metrics,
        seconds: run.report.seconds,
    }
}

/// The record of the sweep `sw` whose trials were `trials` and whose winner is trial `best`.
pub(crate) fn sweep_record(sw: &Sweep, trials: Vec<TrialRecord>, best: usize) -> SweepRecord {
    SweepRecord {
        method: mlops_manifest::model::spelling(&sw.method),
        metric: sw.objective.metric.name().to_owned(),
        goal: if sw.objective.maximize() {
            "maximize"
        } else {
            "minimize"
        }
        .to_owned(),
        trials,
        best,
    }
}

/// Trains trial `number` of `m`'s sweep on this machine and keeps its artifact and result in
/// `registry` under the sweep `sweep_id`, for [`select`]: one job of a sweep fanned out over
/// several (the rendered train workflow's matrix). Nothing is registered.
pub fn one(
    m: &Manifest,
    manifest: &Path,
    registry: &mlops_registry::Registry,
    sweep_id: &str,
    number: usize,
    progress: &mut dyn Progress,
    on_event: impl FnMut(Event<'_>),
) -> Result<TrialRecord, Problem> {
    let Some(sw) = &m.training.sweep else {
        return Err(Problem::input(
            "--sweep-trial: the manifest has no `training.sweep`",
            "drop --sweep-trial, or add a sweep to the manifest",
        ));
    };
    let all = trials(m)?;
    let total = all.len();
    let Some(trial) = all.into_iter().find(|t| t.number == number) else {
        return Err(Problem::input(
            format!("--sweep-trial {number}: the sweep has trials 1 to {total}"),
            "render the train workflow again (`mlops render`): its matrix lists the trials",
        ));
    };
    let metric = sw.objective.metric.name();
    progress.step(&format!(
        "trial {number}/{total}: {}",
        shown(&trial.parameters)
    ));
    let run = crate::train::local(&trial.manifest, manifest, progress, on_event)?;
    let record = trial_record(number, trial.parameters, &run, metric);
    let result = mlops_artifacts::sweep::TrialResult {
        of: total,
        record: record.clone(),
        job: run.job.clone(),
        report: run.report.clone(),
    };
    let bytes =
        serde_json::to_vec_pretty(&result).map_err(|e| Problem::broken(e.to_string(), ""))?;
    let at = registry.put_trial(&m.model.name, sweep_id, number, &run.model_dir, &bytes)?;
    progress.step(&format!(
        "trial {number}/{total}: validation {metric} {:.4}, kept in {at}",
        record.objective
    ));
    Ok(record)
}

/// The trial a fanned-out sweep registers: every trial's result read from `registry` (all must
/// be there), the best chosen, and its artifact copied into a directory of `into`'s.
#[derive(Debug)]
pub struct Selected {
    pub model_dir: std::path::PathBuf,
    pub job: mlops_artifacts::training::Job,
    pub report: mlops_artifacts::training::Report,
    pub record: SweepRecord,
}

/// Picks the best trial of the sweep `sweep_id` that [`one`] kept in `registry` and fetches its
/// artifact into `into`. A trial without a result (its job failed or has not run) is an error
/// naming it: a sweep is judged whole.
pub fn select(
    m: &Manifest,
    registry: &mlops_registry::Registry,
    sweep_id: &str,
    into: &Path,
) -> Result<Selected, Problem> {
    let Some(sw) = &m.training.sweep else {
        return Err(Problem::input(
            "--sweep-select: the manifest has no `training.sweep`",
            "drop --sweep-select, or add a sweep to the manifest",
        ));
    };
    let total = trials(m)?.len();
    let found = registry.trial_results(&m.model.name, sweep_id)?;
    let mut results = Vec::new();
    for (n, bytes) in &found {
        let r: mlops_artifacts::sweep::TrialResult =
            serde_json::from_slice(bytes).map_err(|e| {
                Problem::input(
                    format!(
                        "trial {n} of sweep {sweep_id}: its trial.json is not a trial result: {e}"
                    ),
                    "run that trial again",
                )
            })?;
        if r.of != total || r.record.trial != *n {
            return Err(Problem::input(
                format!(
                    "trial {n} of sweep {sweep_id} was trial {} of {}, and the manifest's sweep has {total}",
                    r.record.trial, r.of
                ),
                "the manifest changed between the trials and the selection: run the sweep again under a new --sweep-id",
            ));
        }
        results.push(r);
    }
    let missing: Vec<String> = (1..=total)
        .filter(|n| !found.contains_key(n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Problem::input(
            format!(
                "sweep {sweep_id} of {}: {} {} of {total} {} no result in {}",
                m.model.name,
                if missing.len() == 1 {
                    "trial"
                } else {
                    "trials"
                },
                missing.join(", "),
                if missing.len() == 1 { "has" } else { "have" },
                registry.location()
            ),
            "run those trials (`mlops train --sweep-trial N --sweep-id ID`); a failed trial job fails the sweep",
        ));
    }
    let maximize = sw.objective.maximize();
    let records: Vec<TrialRecord> = results.iter().map(|r| r.record.clone()).collect();
    let Some(winner) = best(&records, maximize) else {
        return Err(Problem::broken("the sweep has no trial", ""));
    };
    let Some(chosen) = results.into_iter().find(|r| r.record.trial == winner) else {
        return Err(Problem::broken("the best trial vanished", ""));
    };
    registry.fetch_trial(&m.model.name, sweep_id, winner, into)?;
    Ok(Selected {
        model_dir: into.to_path_buf(),
        job: chosen.job,
        report: chosen.report,
        record: sweep_record(sw, records, winner),
    })
}

/// A trial's hyperparameters as `name=value` words.
pub fn shown(parameters: &BTreeMap<String, Value>) -> String {
    parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SplitMix64: a small seeded generator, enough to draw trials reproducibly.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(sweep: &str) -> Manifest {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/quickstart/mlops.yaml"
        ))
        .expect("the quickstart")
        .replace(
            "  local:\n    device: cpu\n",
            &format!("  local:\n    device: cpu\n{sweep}"),
        );
        let report = mlops_manifest::check_bytes("mlops.yaml", text.as_bytes());
        assert!(report.is_valid(), "{:?}", report.diagnostics);
        report.manifest.expect("typed")
    }

    #[test]
    fn a_grid_is_every_combination_in_order() {
        let m = manifest(
            "  sweep:\n    method: grid\n    budget: 4\n    objective: { metric: accuracy }\n    parameters:\n      learning_rate: [0.001, 0.01]\n      hidden_layers: [[32], [64, 32]]\n",
        );
        let t = trials(&m).expect("trials");
        let shown: Vec<String> = t
            .iter()
            .map(|t| {
                format!(
                    "{} {}",
                    t.number,
                    serde_json::to_string(&t.parameters).unwrap()
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                r#"1 {"hidden_layers":[32],"learning_rate":0.001}"#,
                r#"2 {"hidden_layers":[64,32],"learning_rate":0.001}"#,
                r#"3 {"hidden_layers":[32],"learning_rate":0.01}"#,
                r#"4 {"hidden_layers":[64,32],"learning_rate":0.01}"#,
            ]
        );
        assert_eq!(
            m.training.sweep.as_ref().map(|s| s.trial_count()),
            Some(4),
            "the rendered matrix counts as the trials do"
        );
        assert_eq!(t[3].manifest.training.learning_rate, 0.01);
        assert_eq!(t[3].manifest.model.hyperparameters.hidden_layers, [64, 32]);
        assert!(t[3].manifest.training.sweep.is_none());
        // The rest of the manifest is as it was.
        assert_eq!(t[3].manifest.training.epochs, m.training.epochs);
    }

    #[test]
    fn random_draws_are_seeded_and_stay_in_their_ranges() {
        let text = |seed: u64| {
            format!(
                "  sweep:\n    method: random\n    budget: 20\n    seed: {seed}\n    objective: {{ metric: f1_macro }}\n    parameters:\n      learning_rate: {{ min: 0.0001, max: 0.1, log: true }}\n      batch_size: [32, 64, 128]\n      dropout: {{ min: 0.0, max: 0.5 }}\n"
            )
        };
        let a = trials(&manifest(&text(7))).expect("trials");
        let b = trials(&manifest(&text(7))).expect("trials");
        let c = trials(&manifest(&text(8))).expect("trials");
        let params = |t: &[Trial]| t.iter().map(|t| t.parameters.clone()).collect::<Vec<_>>();
        assert_eq!(params(&a), params(&b));
        assert_ne!(params(&a), params(&c));
        assert_eq!(a.len(), 20);
        let mut small = 0;
        for t in &a {
            let lr = t.manifest.training.learning_rate;
            assert!((0.0001..=0.1).contains(&lr), "{lr}");
            small += usize::from(lr < 0.003_162);
            assert!([32, 64, 128].contains(&t.manifest.training.batch_size));
            let d = t.manifest.model.hyperparameters.dropout;
            assert!((0.0..=0.5).contains(&d), "{d}");
        }
        // Log-uniform: about half below the geometric middle (0.00316).
        assert!((4..=16).contains(&small), "{small} of 20");
    }

    /// A grid is categorical ranges of JSON text, model hyperparameters under their own keys;
    /// a random search keeps its ranges; the chosen values read back by the sweep's names.
    #[test]
    fn a_sweep_maps_onto_a_tuning_job() {
        let m = manifest(
            "  sweep:\n    method: grid\n    budget: 4\n    objective: { metric: accuracy }\n    parameters:\n      learning_rate: [0.001, 0.01]\n      hidden_layers: [[32], [64, 32]]\n",
        );
        let t = tuning(&m).expect("maps").expect("a sweep");
        assert_eq!(t.strategy, mlops_aws::tuning::Strategy::Grid);
        assert_eq!(t.trials, 4);
        assert_eq!(
            t.categorical,
            [
                (
                    "learning_rate".to_owned(),
                    vec!["0.001".to_owned(), "0.01".to_owned()]
                ),
                (
                    "hyperparameters.hidden_layers".to_owned(),
                    vec!["[32]".to_owned(), "[64,32]".to_owned()]
                ),
            ]
        );
        assert!(t.continuous.is_empty());
        let back = from_tuned(&BTreeMap::from([
            ("learning_rate".to_owned(), "0.01".to_owned()),
            (
                "hyperparameters.hidden_layers".to_owned(),
                "[64,32]".to_owned(),
            ),
        ]));
        assert_eq!(
            serde_json::to_string(&back).expect("json"),
            r#"{"hidden_layers":[64,32],"learning_rate":0.01}"#
        );
        // The values a trial reads back give the grid's own trial.
        let four = &trials(&m).expect("trials")[3];
        assert_eq!(four.parameters, back);
        let random = manifest(
            "  sweep:\n    method: random\n    budget: 6\n    objective: { metric: accuracy }\n    parameters:\n      learning_rate: { min: 0.0001, max: 0.1, log: true }\n      optimizer: [adam, sgd]\n      dropout: { min: 0.0, max: 0.5 }\n",
        );
        let t = tuning(&random).expect("maps").expect("a sweep");
        assert_eq!(t.strategy, mlops_aws::tuning::Strategy::Random);
        assert_eq!(t.trials, 6);
        assert_eq!(
            t.categorical,
            [(
                "optimizer".to_owned(),
                vec!["\"adam\"".to_owned(), "\"sgd\"".to_owned()]
            )]
        );
        let names: Vec<(&str, bool)> = t
            .continuous
            .iter()
            .map(|c| (c.name.as_str(), c.log))
            .collect();
        assert_eq!(
            names,
            [("learning_rate", true), ("hyperparameters.dropout", false)]
        );
    }

    #[test]
    fn the_best_trial_follows_the_goal_and_never_a_nan() {
        let r = |trial, objective| TrialRecord {
            trial,
            parameters: BTreeMap::new(),
            metrics: BTreeMap::new(),
            objective,
            seconds: 0.0,
        };
        let t = [r(1, f64::NAN), r(2, 0.5), r(3, 0.9), r(4, 0.9), r(5, 0.1)];
        assert_eq!(best(&t, true), Some(3));
        assert_eq!(best(&t, false), Some(5));
        assert_eq!(best(&[r(1, f64::NAN)], true), Some(1));
        assert_eq!(best(&[], true), None);
    }
}
