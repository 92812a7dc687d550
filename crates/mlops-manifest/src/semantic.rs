//! Checks the schema cannot express: rules that relate one part of the manifest to another.
//! Each finding points at the node that has to change.

use std::collections::HashSet;

use crate::check::dotted;
use crate::diagnostic::Diagnostic;
use crate::model::{
    Backend, DataFormat, Dataset, Device, Environment, Family, Manifest, Metric, Task,
};
use crate::yaml::{Node, Segment};

/// Expands feature column entries: `pixel_{0..63}` stands for `pixel_0` … `pixel_63`.
pub fn expand_columns(entries: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in entries {
        let range = entry.split_once('{').and_then(|(head, rest)| {
            rest.rsplit_once('}')
                .map(|(inner, tail)| (head, inner, tail))
        });
        match (entry.find('{'), entry.rfind('}'), range) {
            (None, None, _) => out.push(entry.clone()),
            (Some(open), Some(close), Some((head, inner, tail))) if open < close => {
                let (a, b) = inner.split_once("..").ok_or_else(|| {
                    format!(
                        "`{entry}`: a range is written `{{FIRST..LAST}}`, e.g. `pixel_{{0..63}}`"
                    )
                })?;
                let (a, b): (u32, u32) = match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Err(format!("`{entry}`: the range bounds must be whole numbers")),
                };
                if a > b {
                    return Err(format!("`{entry}`: the range runs backwards ({a} > {b})"));
                }
                if b - a >= 100_000 {
                    return Err(format!("`{entry}`: the range has more than 100000 columns"));
                }
                if head.contains(['{', '}']) || tail.contains(['{', '}']) {
                    return Err(format!("`{entry}`: only one range per entry"));
                }
                out.extend((a..=b).map(|i| format!("{head}{i}{tail}")));
            }
            _ => return Err(format!("`{entry}`: unbalanced braces")),
        }
    }
    Ok(out)
}

/// The format of a dataset: declared, or taken from the file extension.
pub fn dataset_format(d: &Dataset) -> Option<DataFormat> {
    d.format.or_else(|| {
        let lower = d.path.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        if lower.ends_with(".csv") {
            Some(DataFormat::Csv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(DataFormat::Jsonl)
        } else if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            Some(DataFormat::Parquet)
        } else {
            None
        }
    })
}

struct Ctx<'a> {
    file: &'a str,
    root: &'a Node,
    out: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, code: &'static str, path: &[&str], message: String, hint: &str) {
        let segs: Vec<Segment> = path.iter().map(|p| Segment::Key((*p).to_owned())).collect();
        self.error_at(code, &segs, message, hint);
    }

    fn error_at(&mut self, code: &'static str, segs: &[Segment], message: String, hint: &str) {
        let span = self.root.locate(segs);
        let mut d = Diagnostic::error(code, self.file, span, dotted(segs), message);
        if !hint.is_empty() {
            d = d.with_hint(hint);
        }
        self.out.push(d);
    }
}

fn key(p: &str) -> Segment {
    Segment::Key(p.to_owned())
}

/// Runs every semantic rule.
pub fn check(file: &str, root: &Node, m: &Manifest) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        file,
        root,
        out: Vec::new(),
    };
    data(&mut cx, m);
    model(&mut cx, m);
    training(&mut cx, m);
    sweep(&mut cx, m);
    metrics(&mut cx, m);
    environment(&mut cx, "staging", &m.environments.staging);
    environment(&mut cx, "production", &m.environments.production);
    uris(&mut cx, m);
    monitoring(&mut cx, m);
    batch(&mut cx, m);
    cx.out
}

fn data(cx: &mut Ctx<'_>, m: &Manifest) {
    match expand_columns(&m.data.features) {
        Err(e) => cx.error("semantic/features", &["data", "features"], e, ""),
        Ok(cols) => {
            let mut seen = HashSet::new();
            for (i, c) in cols.iter().enumerate() {
                if !seen.insert(c.as_str()) {
                    cx.error(
                        "semantic/features",
                        &["data", "features"],
                        format!("feature column `{c}` is listed twice"),
                        "each column may appear once",
                    );
                    break;
                }
                if *c == m.data.label {
                    cx.error_at(
                        "semantic/label-is-feature",
                        &[key("data"), key("label")],
                        format!("the label column `{c}` is also feature number {}", i + 1),
                        "a model must not read its own answer: remove the label from `data.features`",
                    );
                }
            }
            let mut categorical = HashSet::new();
            for (i, c) in m.data.categorical.iter().enumerate() {
                let at = [key("data"), key("categorical"), Segment::Index(i)];
                if !cols.contains(c) {
                    cx.error_at(
                        "semantic/categorical",
                        &at,
                        format!("categorical column `{c}` is not one of `data.features`"),
                        "list it in `data.features` too, or remove it here",
                    );
                } else if !categorical.insert(c.as_str()) {
                    cx.error_at(
                        "semantic/categorical",
                        &at,
                        format!("categorical column `{c}` is listed twice"),
                        "each column may appear once",
                    );
                }
            }
            if m.model.family == Family::Cnn && !m.data.categorical.is_empty() {
                cx.error(
                    "semantic/categorical",
                    &["data", "categorical"],
                    "a `cnn` reads pixels; it takes no categorical columns".into(),
                    "use `family: mlp` (or `onnx`) for tabular data with categories",
                );
            }
            if let (Family::Cnn, Some(shape)) = (m.model.family, m.model.input) {
                let pixels = u64::from(shape.height) * u64::from(shape.width);
                if cols.len() as u64 != pixels {
                    cx.error(
                        "semantic/input-shape",
                        &["model", "input"],
                        format!("the input is {}x{} = {pixels} pixels but `data.features` names {} columns", shape.height, shape.width, cols.len()),
                        "a cnn reads one feature column per pixel, in row-major order",
                    );
                }
            }
        }
    }
    let sets = [
        ("train", Some(&m.data.train)),
        ("validation", m.data.validation.as_ref()),
        ("holdout", Some(&m.data.holdout)),
    ];
    for (name, set) in sets {
        let Some(set) = set else { continue };
        if dataset_format(set).is_none() {
            cx.error(
                "semantic/data-format",
                &["data", name, "path"],
                format!(
                    "cannot tell the format of `{}` from its extension",
                    set.path
                ),
                "add `format: csv` or `format: jsonl` to this dataset",
            );
        }
    }
    if same_file(&m.data.holdout.path, &m.data.train.path) {
        cx.error(
            "semantic/holdout-is-train",
            &["data", "holdout", "path"],
            "the holdout dataset is the training dataset".into(),
            "the holdout set must be data the model never saw; use a separate file",
        );
    }
    if let Some(v) = &m.data.validation
        && same_file(&m.data.holdout.path, &v.path)
    {
        cx.error(
            "semantic/holdout-is-validation",
            &["data", "holdout", "path"],
            "the holdout dataset is the validation dataset".into(),
            "the holdout set must be separate from the data used to pick the model",
        );
    }
}

fn same_file(a: &str, b: &str) -> bool {
    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_owned();
    norm(a) == norm(b)
}

fn model(cx: &mut Ctx<'_>, m: &Manifest) {
    let hp = &m.model.hyperparameters;
    if m.model.family != Family::Onnx && m.model.path.is_some() {
        cx.error(
            "semantic/model-path",
            &["model", "path"],
            "`model.path` names the file of a model brought as ONNX; this one is trained by mlops"
                .into(),
            "remove it, or set `model.family: onnx`",
        );
    }
    match m.model.family {
        Family::Onnx => {
            // Who writes the model.onnx: the user's command, the user's SageMaker training
            // image, or nobody (the file at `model.path` is registered as it is).
            let trained = match m.training.backend {
                Backend::Command => Some("`training.backend: command` writes the model"),
                Backend::Sagemaker => Some("the SageMaker training job writes the model"),
                Backend::Local => None,
            };
            match (trained, &m.model.path) {
                (None, None) => cx.error(
                    "semantic/onnx-path",
                    &["model", "family"],
                    "the `onnx` family needs `model.path`, the .onnx file to register".into(),
                    "add `path: models/model.onnx` under `model`, or train it with \
                     `training.backend: command` (your code here) or `sagemaker` (your image)",
                ),
                (Some(who), Some(_)) => cx.error(
                    "semantic/onnx-path-and-training",
                    &["model", "path"],
                    format!("{who}; `model.path` names another one"),
                    "remove `model.path`: the model.onnx that training writes is the one \
                     registered",
                ),
                _ => {}
            }
            if *hp != crate::model::Hyperparameters::default() {
                cx.error(
                    "semantic/hyperparameter-family",
                    &["model", "hyperparameters"],
                    "hyperparameters apply to the models mlops trains; an `onnx` model was \
                     trained elsewhere"
                        .into(),
                    "remove `model.hyperparameters`",
                );
            }
            if m.model.input.is_some() {
                cx.error(
                    "semantic/onnx-input",
                    &["model", "input"],
                    "`model.input` applies to the `cnn` family only".into(),
                    "remove it: an ONNX model takes the features in `data.features` order",
                );
            }
            if let (Backend::Sagemaker, Some(sm)) = (m.training.backend, &m.training.sagemaker)
                && sm.image.tag.is_none()
                && sm.image.digest.is_none()
            {
                cx.error(
                    "semantic/onnx-sagemaker-image",
                    &["training", "sagemaker", "image"],
                    format!(
                        "`{}` names no tag or digest; the image mlops builds trains the `mlp` \
                         and `cnn` families, so an `onnx` model is trained by an image of yours",
                        sm.image.repository
                    ),
                    "add `tag:` or `digest:` for your training image, which writes \
                     /opt/ml/model/model.onnx",
                );
            }
        }
        Family::Cnn => {
            if m.model.input.is_none() {
                cx.error(
                    "semantic/cnn-input",
                    &["model", "family"],
                    "the `cnn` family needs `model.input` (image height and width)".into(),
                    "add `input: { height: 8, width: 8 }` under `model`",
                );
            }
            if m.model.task == Task::Regression {
                cx.error(
                    "semantic/cnn-task",
                    &["model", "task"],
                    "the `cnn` family does classification only".into(),
                    "use `family: mlp` for regression",
                );
            }
        }
        Family::Mlp => {
            for (field, set) in [
                ("conv_channels", hp.conv_channels.is_some()),
                ("kernel_size", hp.kernel_size.is_some()),
            ] {
                if set {
                    cx.error(
                        "semantic/hyperparameter-family",
                        &["model", "hyperparameters", field],
                        format!("`{field}` applies to the `cnn` family, not `mlp`"),
                        "remove it, or set `model.family: cnn`",
                    );
                }
            }
            if m.model.input.is_some() {
                cx.error(
                    "semantic/mlp-input",
                    &["model", "input"],
                    "`model.input` applies to the `cnn` family only".into(),
                    "remove it",
                );
            }
        }
    }
}

fn training(cx: &mut Ctx<'_>, m: &Manifest) {
    let t = &m.training;
    if t.epochs.is_none() && m.model.family != Family::Onnx {
        cx.error(
            "semantic/epochs-missing",
            &["training"],
            format!(
                "the `{}` family is trained by mlops and needs `training.epochs`",
                crate::model::spelling(&m.model.family)
            ),
            "add `epochs: 30` (passes over the training set) under `training`",
        );
    }
    match (t.backend, &t.command) {
        (Backend::Command, None) => cx.error(
            "semantic/command-missing",
            &["training", "backend"],
            "the `command` backend runs `training.command`, and there is none".into(),
            "add `command: [python, train.py]` under `training`",
        ),
        (Backend::Command, Some(_)) if m.model.family != Family::Onnx => cx.error(
            "semantic/command-family",
            &["model", "family"],
            "a training command hands mlops an ONNX file, so the model's family is `onnx`".into(),
            "set `model.family: onnx` and have the command write model.onnx into $SM_MODEL_DIR",
        ),
        (Backend::Local | Backend::Sagemaker, Some(_)) => cx.error(
            "semantic/command-backend",
            &["training", "command"],
            "`training.command` is run by the `command` backend only".into(),
            "set `training.backend: command`, or remove `command`",
        ),
        _ => {}
    }
    if t.requirements.is_some() && t.backend != Backend::Command {
        cx.error(
            "semantic/requirements-backend",
            &["training", "requirements"],
            "`training.requirements` is installed for the `command` backend's program only".into(),
            "set `training.backend: command`, or remove `requirements`",
        );
    }
    if t.backend == Backend::Sagemaker && t.sagemaker.is_none() {
        cx.error(
            "semantic/sagemaker-settings",
            &["training", "backend"],
            "the `sagemaker` backend needs a `training.sagemaker` section".into(),
            "add `training.sagemaker` with at least `role_arn`, `image` and `instance_type`",
        );
    }
    if t.local.require_gpu && t.local.device == Device::Cpu {
        cx.error(
            "semantic/require-gpu",
            &["training", "local", "require_gpu"],
            "`require_gpu: true` with `device: cpu` can never be met".into(),
            "set `device: wgpu` or `device: cuda`, or drop `require_gpu`",
        );
    }
    if let Some(sm) = &t.sagemaker {
        if sm.image.tag.is_some() && sm.image.digest.is_some() {
            cx.error(
                "semantic/image-ref",
                &["training", "sagemaker", "image"],
                "give the image a `tag` or a `digest`, not both".into(),
                "a tag is resolved to its digest at launch; a digest is used as is; neither \
                 means the image the train workflow builds",
            );
        }
        if sm.instance_count > 1 {
            cx.error(
                "semantic/instance-count",
                &["training", "sagemaker", "instance_count"],
                format!(
                    "`instance_count: {}`: the trainer has no multi-host data parallelism, so \
                     SageMaker would train {} independent copies",
                    sm.instance_count, sm.instance_count
                ),
                "set `instance_count: 1` and pick a larger `instance_type` (one instance beats \
                 several of its size; ARCHITECTURE.md, \"Distributed training\"), or train on a \
                 GPU runner with the local backend",
            );
        }
        if let Some(spot) = &sm.spot
            && spot.max_wait_seconds < sm.max_runtime_seconds
        {
            cx.error(
                "semantic/spot-wait",
                &["training", "sagemaker", "spot", "max_wait_seconds"],
                format!(
                    "`max_wait_seconds` ({}) is less than `max_runtime_seconds` ({})",
                    spot.max_wait_seconds, sm.max_runtime_seconds
                ),
                "SageMaker requires the spot wait to be at least the runtime",
            );
        }
    }
}

/// The most values SageMaker takes in one categorical hyperparameter range.
const SAGEMAKER_CATEGORIES: usize = 30;

/// `training.sweep`: something to vary, an objective of the model's task, a grid within the
/// budget, ranges only where values are drawn, and lists a SageMaker tuning job takes.
fn sweep(cx: &mut Ctx<'_>, m: &Manifest) {
    use crate::model::{SweepMethod, SweepValues};
    let Some(sw) = &m.training.sweep else {
        return;
    };
    if m.model.family == Family::Onnx {
        cx.error(
            "semantic/sweep-family",
            &["training", "sweep"],
            "a sweep trains several models, and an `onnx` model is measured, not trained".into(),
            "remove `training.sweep`, or sweep in your own training code",
        );
    }
    if m.training.backend == Backend::Sagemaker {
        // A tuning job takes each listed hyperparameter as a categorical range, and SageMaker
        // takes at most 30 values in one.
        let p = &sw.parameters;
        let listed = |v: &Option<SweepValues>| match v {
            Some(SweepValues::List(l)) => l.len(),
            _ => 0,
        };
        let counts = [
            ("learning_rate", listed(&p.learning_rate)),
            ("batch_size", p.batch_size.as_ref().map_or(0, Vec::len)),
            ("epochs", p.epochs.as_ref().map_or(0, Vec::len)),
            ("optimizer", p.optimizer.as_ref().map_or(0, Vec::len)),
            (
                "hidden_layers",
                p.hidden_layers.as_ref().map_or(0, Vec::len),
            ),
            ("activation", p.activation.as_ref().map_or(0, Vec::len)),
            ("dropout", listed(&p.dropout)),
        ];
        for (name, n) in counts {
            if n > SAGEMAKER_CATEGORIES {
                cx.error(
                    "semantic/sweep-sagemaker-values",
                    &["training", "sweep", "parameters", name],
                    format!(
                        "{name} lists {n} values, and a SageMaker tuning job takes at most \
                         {SAGEMAKER_CATEGORIES} values of one hyperparameter"
                    ),
                    "list fewer values (a `random` sweep may give `learning_rate` and `dropout` \
                     as ranges instead)",
                );
            }
        }
    }
    if sw.objective.metric.task() != m.model.task {
        cx.error(
            "semantic/sweep-objective",
            &["training", "sweep", "objective", "metric"],
            format!(
                "`{}` is not a metric of a {} model",
                sw.objective.metric.name(),
                crate::model::spelling(&m.model.task)
            ),
            &format!(
                "use one of: {}",
                names(Metric::ALL.into_iter().filter(|x| x.task() == m.model.task))
            ),
        );
    }
    let p = &sw.parameters;
    let numbers = [("learning_rate", &p.learning_rate), ("dropout", &p.dropout)];
    let mut sizes: Vec<usize> = [
        p.batch_size.as_ref().map(Vec::len),
        p.epochs.as_ref().map(Vec::len),
        p.optimizer.as_ref().map(Vec::len),
        p.hidden_layers.as_ref().map(Vec::len),
        p.activation.as_ref().map(Vec::len),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut ranges = 0;
    for (name, values) in numbers {
        let path = ["training", "sweep", "parameters", name];
        let (lowest, highest) = match name {
            "learning_rate" => (0.0, 10.0),
            _ => (0.0, 0.9),
        };
        match values {
            None => {}
            Some(SweepValues::List(list)) => {
                sizes.push(list.len());
                if let Some(bad) = list.iter().find(|v| !(lowest..=highest).contains(*v)) {
                    cx.error(
                        "semantic/sweep-value",
                        &path,
                        format!("{name} {bad} is outside {lowest}..={highest}"),
                        "give values the hyperparameter takes",
                    );
                }
            }
            Some(SweepValues::Range(r)) => {
                ranges += 1;
                if sw.method == SweepMethod::Grid {
                    cx.error(
                        "semantic/sweep-range-grid",
                        &path,
                        format!("a grid tries listed values, and {name} gives a range"),
                        "list the values instead of `min` and `max`, or set `method: random`",
                    );
                }
                let ok =
                    r.min < r.max && r.min >= lowest && r.max <= highest && (!r.log || r.min > 0.0);
                if !ok {
                    cx.error(
                        "semantic/sweep-range",
                        &path,
                        format!(
                            "{name} range {}..{}{} is not a range of values it takes ({lowest}..={highest})",
                            r.min,
                            r.max,
                            if r.log { " (log)" } else { "" }
                        ),
                        "give `min` below `max`, both in range, and `min` above 0 with `log: true`",
                    );
                }
            }
        }
    }
    if sizes.is_empty() && ranges == 0 {
        cx.error(
            "semantic/sweep-empty",
            &["training", "sweep", "parameters"],
            "the sweep varies no hyperparameter".into(),
            "name at least one under `parameters`, e.g. `learning_rate: [0.001, 0.003, 0.01]`",
        );
    }
    if sw.method == SweepMethod::Grid {
        let grid = sizes
            .iter()
            .try_fold(1usize, |acc, n| acc.checked_mul(*n))
            .unwrap_or(usize::MAX);
        if grid > sw.budget as usize {
            cx.error(
                "semantic/sweep-budget",
                &["training", "sweep", "budget"],
                format!(
                    "the grid has {grid} combinations and the budget is {}",
                    sw.budget
                ),
                &format!(
                    "raise `budget` to {grid}, list fewer values, or set `method: random` to draw {} of them",
                    sw.budget
                ),
            );
        }
    }
}

/// `monitoring`: per-feature limits name features, metric limits the task's metrics, and the
/// schedule is a cron expression GitHub takes (five fields).
fn monitoring(cx: &mut Ctx<'_>, m: &Manifest) {
    let Some(monitoring) = &m.monitoring else {
        return;
    };
    let features = expand_columns(&m.data.features).unwrap_or_default();
    for column in monitoring.thresholds.features.keys() {
        if !features.contains(column) {
            cx.error_at(
                "semantic/monitoring-feature",
                &[
                    key("monitoring"),
                    key("thresholds"),
                    key("features"),
                    key(column),
                ],
                format!("`{column}` is not one of `data.features`"),
                "per-feature limits name a feature column of the model",
            );
        }
    }
    for metric in monitoring.thresholds.metrics.keys() {
        if metric.task() != m.model.task {
            cx.error_at(
                "semantic/metric-task",
                &[
                    key("monitoring"),
                    key("thresholds"),
                    key("metrics"),
                    key(metric.name()),
                ],
                format!("`{}` is not a metric of this model's task", metric.name()),
                &format!(
                    "metrics of the task: {}",
                    names(
                        Metric::ALL
                            .iter()
                            .copied()
                            .filter(|x| x.task() == m.model.task)
                    )
                ),
            );
        }
    }
    if let Some(schedule) = &monitoring.schedule {
        let fields = schedule.split_whitespace().count();
        if fields != 5 {
            cx.error(
                "semantic/monitoring-schedule",
                &["monitoring", "schedule"],
                format!("`{schedule}` has {fields} fields; a cron schedule has five"),
                "minute hour day-of-month month day-of-week, in UTC, e.g. `0 6 * * *`",
            );
        }
    }
    let on_s3 = monitoring
        .capture
        .as_ref()
        .is_some_and(|c| c.destination.starts_with("s3://"));
    if monitoring.schedule.is_some() && !on_s3 {
        cx.error(
            "semantic/monitoring-capture",
            &["monitoring", "schedule"],
            "the monitor workflow runs on a GitHub runner, which can read a capture only in S3"
                .to_owned(),
            "set `monitoring.capture.destination: s3://BUCKET/PREFIX`",
        );
    }
    let serverless = m
        .environments
        .production
        .sagemaker
        .as_ref()
        .is_some_and(|s| s.serverless.is_some());
    if on_s3 && serverless {
        cx.error(
            "semantic/monitoring-serverless",
            &["monitoring", "capture"],
            "production's SageMaker endpoint is serverless, and serverless endpoints cannot \
             capture data"
                .to_owned(),
            "serve production on instances (`instance_type`), or drop `monitoring.capture`",
        );
    }
    if monitoring.retrain && monitoring.schedule.is_none() {
        cx.error(
            "semantic/monitoring-retrain",
            &["monitoring", "retrain"],
            "`retrain` needs `monitoring.schedule`: only the monitor workflow retrains".to_owned(),
            "add a schedule, e.g. `schedule: \"0 6 * * *\"`",
        );
    }
}

/// `batch`: its schedule is a five-field cron. (With a directory registry the batch workflow is
/// withheld with the release loop, whose jobs cannot reach one either: `mlops render` says so.)
fn batch(cx: &mut Ctx<'_>, m: &Manifest) {
    let Some(batch) = &m.batch else {
        return;
    };
    // A Batch Transform job runs the serving image: the manifest's, or the one production's pin
    // names, which only a SageMaker production or a SageMaker-trained model gives it.
    if let Some(t) = &batch.sagemaker
        && t.image.is_none()
        && m.environments.production.sagemaker.is_none()
        && m.training.backend != Backend::Sagemaker
    {
        cx.error(
            "semantic/batch-image",
            &["batch", "sagemaker"],
            "no serving image for the Batch Transform job: production's pin names one only when \
             production is a SageMaker endpoint or the model trained on SageMaker"
                .to_owned(),
            "set `batch.sagemaker.image: REPOSITORY@sha256:...` (`mlops image push` prints it)",
        );
    }
    if let Some(schedule) = &batch.schedule {
        let fields = schedule.split_whitespace().count();
        if fields != 5 {
            cx.error(
                "semantic/batch-schedule",
                &["batch", "schedule"],
                format!("`{schedule}` has {fields} fields; a cron schedule has five"),
                "minute hour day-of-month month day-of-week, in UTC, e.g. `0 3 * * *`",
            );
        }
    }
}

fn metrics(cx: &mut Ctx<'_>, m: &Manifest) {
    let task = m.model.task;
    let task_name = match task {
        Task::Classification => "classification",
        Task::Regression => "regression",
    };
    let eval_metrics: Vec<Metric> = if m.evaluation.metrics.is_empty() {
        Metric::defaults(task).to_vec()
    } else {
        m.evaluation.metrics.clone()
    };
    let lists = [
        ("evaluation", &m.evaluation.metrics),
        ("holdout", &m.holdout.metrics),
    ];
    for (section, list) in lists {
        for (i, metric) in list.iter().enumerate() {
            if metric.task() != task {
                cx.error_at(
                    "semantic/metric-task",
                    &[key(section), key("metrics"), Segment::Index(i)],
                    format!("`{}` is not a {task_name} metric", metric.name()),
                    &format!(
                        "{task_name} metrics: {}",
                        names(Metric::ALL.iter().copied().filter(|m| m.task() == task))
                    ),
                );
            }
        }
    }
    for (metric, bound) in &m.evaluation.thresholds {
        let path = [key("evaluation"), key("thresholds"), key(metric.name())];
        if !eval_metrics.contains(metric) {
            cx.error_at(
                "semantic/threshold-metric",
                &path,
                format!(
                    "threshold on `{}`, which is not an evaluation metric",
                    metric.name()
                ),
                &format!(
                    "add it to `evaluation.metrics` (now: {})",
                    names(eval_metrics.iter().copied())
                ),
            );
        }
        match (bound.min, bound.max) {
            (None, None) => cx.error_at(
                "semantic/threshold-empty",
                &path,
                "a threshold needs `min` or `max`".into(),
                "",
            ),
            (Some(_), None) if !metric.higher_is_better() => cx.error_at(
                "semantic/threshold-direction",
                &path,
                format!("`min` on `{}`, where lower is better", metric.name()),
                "did you mean `max`?",
            ),
            (None, Some(_)) if metric.higher_is_better() => cx.error_at(
                "semantic/threshold-direction",
                &path,
                format!("`max` on `{}`, where higher is better", metric.name()),
                "did you mean `min`?",
            ),
            (Some(lo), Some(hi)) if lo > hi => cx.error_at(
                "semantic/threshold-range",
                &path,
                format!("`min` ({lo}) is greater than `max` ({hi})"),
                "",
            ),
            _ => {}
        }
    }
    let holdout_metrics: Vec<Metric> = if m.holdout.metrics.is_empty() {
        eval_metrics.clone()
    } else {
        m.holdout.metrics.clone()
    };
    for (metric, tol) in &m.holdout.tolerances {
        let path = [key("holdout"), key("tolerances"), key(metric.name())];
        if !holdout_metrics.contains(metric) {
            cx.error_at(
                "semantic/tolerance-metric",
                &path,
                format!(
                    "tolerance for `{}`, which the holdout test does not compare",
                    metric.name()
                ),
                &format!(
                    "holdout metrics: {}; add it to `holdout.metrics` or remove this tolerance",
                    names(holdout_metrics.iter().copied())
                ),
            );
        }
        if !(tol.is_finite() && *tol >= 0.0) {
            cx.error_at(
                "semantic/tolerance-value",
                &path,
                format!("tolerance {tol} must be a finite number, 0 or more"),
                "",
            );
        }
    }
    for (metric, allowance) in m.promotion.iter().flat_map(|p| &p.no_regression) {
        let path = [key("promotion"), key("no_regression"), key(metric.name())];
        if metric.task() != task {
            cx.error_at(
                "semantic/metric-task",
                &path,
                format!("`{}` is not a {task_name} metric", metric.name()),
                &format!(
                    "{task_name} metrics: {}",
                    names(Metric::ALL.iter().copied().filter(|m| m.task() == task))
                ),
            );
        }
        match (allowance.absolute, allowance.relative) {
            (Some(_), Some(_)) | (None, None) => cx.error_at(
                "semantic/no-regression-allowance",
                &path,
                "give exactly one of `absolute` and `relative`".into(),
                "`absolute: 0.01` allows a drop of 0.01; `relative: 0.02` a drop of 2% of \
                 production's value; 0 allows none",
            ),
            _ => {}
        }
    }
}

fn names(metrics: impl Iterator<Item = Metric>) -> String {
    metrics
        .map(|m| format!("`{}`", m.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn environment(cx: &mut Ctx<'_>, name: &str, env: &Environment) {
    let base = ["environments", name];
    match (&env.url, &env.sagemaker) {
        (None, None) | (Some(_), Some(_)) => cx.error(
            "semantic/environment-target",
            &base,
            format!("environment `{name}` needs exactly one of `url` and `sagemaker`"),
            "`url` for a service deployed from a pin file, `sagemaker` for a SageMaker endpoint",
        ),
        _ => {}
    }
    if let Some(w) = &env.watch {
        let at = ["environments", name, "watch"];
        if env.url.is_some() && w.max_error_rate.is_none() && w.p99_ms.is_none() {
            cx.error(
                "semantic/watch-limits",
                &at,
                "a watch of a URL target needs `max_error_rate` or `p99_ms`".into(),
                "e.g. `max_error_rate: 0.01` (1% of prediction requests) and `p99_ms: 250`",
            );
        }
        if env.sagemaker.is_some() && (w.max_error_rate.is_some() || w.p99_ms.is_some()) {
            cx.error(
                "semantic/watch-limits",
                &at,
                "a SageMaker endpoint is watched through its CloudWatch alarms, not \
                 `max_error_rate` or `p99_ms`"
                    .into(),
                "remove them: the watch reads `sagemaker.rollback_alarms` and the 5xx and \
                 latency alarms the rendered Terraform creates for the endpoint",
            );
        }
        if name == "staging" && w.rollback == crate::model::WatchRollback::Immediate {
            cx.error(
                "semantic/watch-rollback",
                &["environments", name, "watch", "rollback"],
                "staging is not rolled back: a breach there stops the release".into(),
                "remove `rollback` (it applies to production's watch)",
            );
        }
        if w.interval_seconds > w.seconds {
            cx.error(
                "semantic/watch-interval",
                &at,
                format!(
                    "`interval_seconds` ({}) is longer than the watch (`seconds`: {})",
                    w.interval_seconds, w.seconds
                ),
                "look at least once: make `seconds` at least `interval_seconds`",
            );
        }
    }
    if let Some(sm) = &env.sagemaker {
        match (&sm.instance_type, &sm.serverless) {
            (None, None) => cx.error(
                "semantic/endpoint-capacity",
                &["environments", name, "sagemaker"],
                "a SageMaker endpoint needs `instance_type` or `serverless`".into(),
                "e.g. `instance_type: ml.m5.large`",
            ),
            (Some(_), Some(_)) => cx.error(
                "semantic/endpoint-capacity",
                &["environments", name, "sagemaker", "serverless"],
                "`serverless` and `instance_type` exclude each other".into(),
                "keep one",
            ),
            _ => {}
        }
        if let Some(s) = &sm.serverless
            && s.memory_mb % 1024 != 0
        {
            cx.error(
                "semantic/serverless-memory",
                &["environments", name, "sagemaker", "serverless", "memory_mb"],
                format!("`memory_mb` is {}, not a multiple of 1024", s.memory_mb),
                "use 1024, 2048, 3072, 4096, 5120 or 6144",
            );
        }
    }
}

fn uris(cx: &mut Ctx<'_>, m: &Manifest) {
    let check = |cx: &mut Ctx<'_>, path: &[&str], value: &str, local_ok: bool| {
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, _) = rest.split_once('/').unwrap_or((rest, ""));
            let ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !ok {
                cx.error(
                    "semantic/s3-uri",
                    path,
                    format!("`{value}` does not name a valid S3 bucket"),
                    "write `s3://bucket/key`",
                );
            }
        } else if value.contains("://") {
            cx.error(
                "semantic/uri-scheme",
                path,
                format!("`{value}`: only local paths and `s3://` URIs are supported"),
                "download the file first, or put it in S3",
            );
        } else if !local_ok {
            cx.error(
                "semantic/s3-uri",
                path,
                format!("`{value}` must be an `s3://` URI"),
                "write `s3://bucket/prefix`",
            );
        }
    };
    check(cx, &["data", "train", "path"], &m.data.train.path, true);
    check(cx, &["data", "holdout", "path"], &m.data.holdout.path, true);
    if let Some(v) = &m.data.validation {
        check(cx, &["data", "validation", "path"], &v.path, true);
    }
    check(cx, &["registry", "path"], &m.registry.path, true);
    if let Some(sm) = &m.training.sagemaker {
        if let Some(out) = &sm.output_uri {
            check(cx, &["training", "sagemaker", "output_uri"], out, false);
        }
        if let Some(spot) = &sm.spot {
            check(
                cx,
                &["training", "sagemaker", "spot", "checkpoint_uri"],
                &spot.checkpoint_uri,
                false,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_in_order() {
        let cols =
            expand_columns(&["id".into(), "pixel_{0..2}".into(), "x{9..10}y".into()]).unwrap();
        assert_eq!(cols, ["id", "pixel_0", "pixel_1", "pixel_2", "x9y", "x10y"]);
    }

    #[test]
    fn bad_ranges_are_explained() {
        for bad in ["a{3..1}", "a{x..2}", "a{1,2}", "a{1..2", "a{1..2}{3..4}"] {
            let e = expand_columns(&[bad.into()]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn formats_come_from_extensions() {
        let d = |p: &str| Dataset {
            path: p.into(),
            format: None,
        };
        assert_eq!(dataset_format(&d("a/b.CSV")), Some(DataFormat::Csv));
        assert_eq!(
            dataset_format(&d("s3://b/k.jsonl.gz")),
            Some(DataFormat::Jsonl)
        );
        assert_eq!(
            dataset_format(&d("data.parquet")),
            Some(DataFormat::Parquet)
        );
        assert_eq!(
            dataset_format(&d("s3://b/part-0.PQ")),
            Some(DataFormat::Parquet)
        );
        assert_eq!(dataset_format(&d("data.xlsx")), None);
    }
}
