//! A model brought as ONNX (`model.family: onnx`), under the same `/opt/ml` contract as
//! training: the file arrives in the `model` channel, nothing is trained, and the model is judged
//! as a trained one is: loaded and checked against the manifest's features and task, its classes
//! matched to the data's labels, and measured with the same metrics on the same validation and
//! holdout rows. The model directory then holds `model.onnx`, `model.json` (the signature, an
//! identity standardisation: the graph does its own preprocessing) and `training.json`.

use std::collections::BTreeMap;

use mlops_artifacts::artifact::{BUNDLE, ONNX};
use mlops_artifacts::baseline::Baseline;
use mlops_artifacts::bundle::{Architecture, Bundle, Standardizer};
use mlops_artifacts::training::{Compute, Job, MODEL_CHANNEL, Report, Signature};
use mlops_data::data::{self, Spec, Table};
use mlops_manifest::model::{Device, Task};
use mlops_onnx::{Kind, Model, Predictions};

use crate::worker::{Layout, WorkerError, input, write_json};

/// Rows per call of the model while it is measured.
const BATCH: usize = 1024;

/// Measures and lays out the ONNX model of `job` (see the module's text).
pub fn run(
    layout: &Layout,
    job: &Job,
    features: Vec<String>,
    spec: &Spec,
    started: std::time::Instant,
) -> Result<Report, WorkerError> {
    let file = layout
        .channel_file(MODEL_CHANNEL)
        .map_err(|e| input(e, ""))?
        .ok_or_else(|| {
            input(
                format!(
                    "no ONNX file in channel `{MODEL_CHANNEL}` ({})",
                    layout.channel(MODEL_CHANNEL).display()
                ),
                "set `model.path` in the manifest to the .onnx file",
            )
        })?;
    let shown = job
        .datasets
        .get(MODEL_CHANNEL)
        .map_or_else(|| file.display().to_string(), |s| s.path.clone());
    let bytes = std::fs::read(&file).map_err(|e| input(format!("{shown}: {e}"), ""))?;
    // With categorical features the graph's width is known once the training file's
    // categories are.
    let data = data::load(spec).map_err(|e| input(e.to_string(), e.hint.clone()))?;
    let one_hot = data.one_hot();
    let model = Model::load(&bytes, one_hot.inputs()).map_err(|e| {
        input(
            format!("{shown}: {e}"),
            if one_hot.is_identity() {
                "export the model as ONNX with one float input of the manifest's features in order"
                    .to_owned()
            } else {
                format!(
                    "export the model as ONNX with one float input of {} values: the numeric \
                     features in order, then each categorical feature one-hot over the training \
                     file's categories (README, \"Categorical features\")",
                    one_hot.inputs()
                )
            },
        )
    })?;
    match (&model.kind, job.task) {
        (Kind::Classifier { .. }, Task::Classification)
        | (Kind::Regressor { .. }, Task::Regression) => {}
        (Kind::Classifier { .. }, Task::Regression) => {
            return Err(input(
                format!(
                    "{shown} is a classifier (it has a label output); the manifest's task is regression"
                ),
                "set `model.task: classification`, or export the regressor",
            ));
        }
        (Kind::Regressor { .. }, Task::Classification) => {
            return Err(input(
                format!(
                    "{shown} is a regressor (one value output, no label); the manifest's task is classification"
                ),
                "set `model.task: regression`, or export the classifier with its label output",
            ));
        }
    }
    // The data's class indices in the model's order (the order of its probabilities).
    let model_classes = model.classes().map(<[String]>::to_vec);
    let to_model: Option<Vec<usize>> = match (&data.classes, &model_classes) {
        (Some(seen), Some(known)) => {
            let unknown: Vec<&String> = seen.0.iter().filter(|c| !known.contains(c)).collect();
            if !unknown.is_empty() {
                return Err(input(
                    format!(
                        "the data has labels the model does not know: {} (its classes: {})",
                        list(unknown.iter().map(|s| s.as_str())),
                        list(known.iter().map(String::as_str))
                    ),
                    "is this the model trained on this data? The labels must be written as \
                     the model's classes are (e.g. `3`, not `3.0`)",
                ));
            }
            Some(
                seen.0
                    .iter()
                    .map(|c| known.iter().position(|k| k == c).unwrap_or(0))
                    .collect(),
            )
        }
        _ => None,
    };
    let classes = model_classes.as_ref().map_or(1, Vec::len);
    let width = one_hot.inputs();
    let [train, validation, holdout] = data.encoded();
    // The graph takes the features as they are (categorical ones one-hot encoded); a gap takes
    // the training split's fill value first (`data.missing`), recorded with the model, as
    // serving and parity apply it.
    let standardizer = Standardizer {
        mean: vec![0.0; width],
        std: vec![1.0; width],
        fill: data::fit(&train, job.missing).fill,
    };
    let measuring = std::time::Instant::now();
    let mut rows_predicted = 0usize;
    let mut score = |table: &Table| -> Result<(BTreeMap<String, f64>, Vec<f32>), WorkerError> {
        let filled = data::standardize(&standardizer, table);
        let (predicted, truth) = predict(&model, &filled, to_model.as_deref(), &shown)?;
        rows_predicted += table.rows();
        let metrics = match job.task {
            Task::Classification => {
                let p: Vec<usize> = predicted.iter().map(|&v| v as usize).collect();
                let t: Vec<usize> = truth.iter().map(|&v| v as usize).collect();
                crate::metrics::classification(&p, &t, classes)
            }
            Task::Regression => crate::metrics::regression(&predicted, &truth),
        };
        Ok((crate::metrics::by_name(&metrics), predicted))
    };
    let (validation_metrics, validation_predicted) = score(&validation)?;
    let metrics = BTreeMap::from([
        ("validation".to_owned(), validation_metrics),
        ("holdout".to_owned(), score(&holdout)?.0),
    ]);
    let measured = measuring.elapsed().as_secs_f64();
    let baseline = Baseline {
        features: mlops_data::profile::features(&data.train, &features, &data.categories),
        predictions: mlops_data::profile::predictions(
            model_classes.as_deref(),
            &validation_predicted,
        ),
    };

    let model_dir = layout.model();
    let runtime = |message: String| WorkerError::Runtime {
        message,
        hint: "the model directory must be writable".to_owned(),
    };
    std::fs::create_dir_all(&model_dir)
        .map_err(|e| runtime(format!("{}: {e}", model_dir.display())))?;
    let onnx = model_dir.join(ONNX);
    std::fs::write(&onnx, &bytes).map_err(|e| runtime(format!("{}: {e}", onnx.display())))?;
    let bundle = Bundle {
        architecture: Architecture::onnx(width, classes),
        signature: Signature {
            categorical: data.categories.clone(),
            unseen: job.unseen,
            ..Signature::numeric(features, job.label.clone(), job.task, model_classes)
        },
        standardizer,
    };
    write_json(&model_dir.join(BUNDLE), &bundle).map_err(runtime)?;
    let (datasets, rows) = crate::worker::read(
        spec,
        &data.files,
        [train.rows(), validation.rows(), holdout.rows()],
    );
    let report = Report {
        datasets,
        rows,
        compute: Compute {
            device: Device::Cpu,
            backend: "tract".to_owned(),
            adapter: None,
        },
        parameters: model.parameters,
        curve: Vec::new(),
        resumed_from: None,
        metrics,
        samples_per_second: rows_predicted as f64 / measured.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
        baseline: Some(baseline),
    };
    write_json(&model_dir.join("training.json"), &report).map_err(runtime)?;
    Ok(report)
}

/// The model's predictions of `table`'s rows and the truth, both in the model's terms: class
/// indices into its classes (`to_model` maps the data's), or values.
fn predict(
    model: &Model,
    table: &Table,
    to_model: Option<&[usize]>,
    shown: &str,
) -> Result<(Vec<f32>, Vec<f32>), WorkerError> {
    let width = table.width.max(1);
    let mut predicted = Vec::with_capacity(table.rows());
    for chunk in table.x.chunks(BATCH * width) {
        match model.predict(chunk).map_err(|e| {
            input(
                format!("{shown}: {e}"),
                "the model fails on the manifest's data; check it with onnxruntime",
            )
        })? {
            Predictions::Classes { index, .. } => {
                predicted.extend(index.into_iter().map(|i| i as f32));
            }
            Predictions::Values(v) => predicted.extend(v),
        }
    }
    let truth = match to_model {
        Some(map) => table
            .y
            .iter()
            .map(|&y| map.get(y as usize).map_or(f32::NAN, |&i| i as f32))
            .collect(),
        None => table.y.clone(),
    };
    Ok((predicted, truth))
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
