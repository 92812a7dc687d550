//! What a training run is and what it reports: the job (from the manifest, carried to the worker
//! as SageMaker hyperparameters), the report the worker saves as `training.json`, and the parts
//! both name (dataset digests, compute, the curve). Plain data: training itself is
//! `mlops-train`'s.

use std::collections::BTreeMap;

use mlops_manifest::model::{
    DataFormat, Device, Family, Hyperparameters, ImageShape, Manifest, Missing, Optimizer, Task,
    Unseen,
};
use serde::{Deserialize, Serialize};

/// Everything the worker needs, carried as SageMaker hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    pub model: String,
    pub task: Task,
    pub family: Family,
    /// As the manifest writes them (ranges unexpanded, so the value stays short).
    pub features: Vec<String>,
    pub label: String,
    pub image: Option<ImageShape>,
    pub hyperparameters: Hyperparameters,
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub optimizer: Optimizer,
    pub seed: u64,
    pub validation_fraction: f64,
    pub split_seed: u64,
    /// What a missing feature value becomes (`data.missing`).
    #[serde(default, skip_serializing_if = "Missing::is_error")]
    pub missing: Missing,
    /// The categorical feature columns (`data.categorical`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<String>,
    /// What an unseen category becomes (`data.unseen`).
    #[serde(default, skip_serializing_if = "Unseen::is_error")]
    pub unseen: Unseen,
    /// Channel -> the dataset as the manifest names it (for the model card) and its format.
    pub datasets: BTreeMap<String, Source>,
    pub device: Device,
    pub require_gpu: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Source {
    pub path: String,
    pub format: Option<DataFormat>,
}

/// The prefix of a hyperparameter key that sets one model hyperparameter
/// (`hyperparameters.dropout`): what a SageMaker tuning job varies.
pub const MODEL_HYPERPARAMETER: &str = "hyperparameters.";

/// The input channel holding the ONNX file of an `onnx` model.
pub const MODEL_CHANNEL: &str = "model";

impl Job {
    pub fn from_manifest(m: &Manifest) -> Self {
        let source = |d: &mlops_manifest::model::Dataset| Source {
            path: d.path.clone(),
            format: d.format,
        };
        let mut datasets = BTreeMap::from([
            ("train".to_owned(), source(&m.data.train)),
            ("holdout".to_owned(), source(&m.data.holdout)),
        ]);
        if let Some(v) = &m.data.validation {
            datasets.insert("validation".to_owned(), source(v));
        }
        // A model brought as ONNX reaches the worker as one more input channel, the way
        // SageMaker hands a job its files.
        if let (Family::Onnx, Some(path)) = (m.model.family, &m.model.path) {
            datasets.insert(
                MODEL_CHANNEL.to_owned(),
                Source {
                    path: path.clone(),
                    format: None,
                },
            );
        }
        Self {
            model: m.model.name.clone(),
            task: m.model.task,
            family: m.model.family,
            features: m.data.features.clone(),
            label: m.data.label.clone(),
            image: m.model.input,
            hyperparameters: m.model.hyperparameters.clone(),
            // An `onnx` model has none (it is measured, not trained).
            epochs: m.training.epochs.unwrap_or(0),
            batch_size: m.training.batch_size,
            learning_rate: m.training.learning_rate,
            optimizer: m.training.optimizer,
            seed: m.training.seed,
            validation_fraction: m.data.split.validation_fraction,
            split_seed: m.data.split.seed,
            missing: m.data.missing,
            categorical: m.data.categorical.clone(),
            unseen: m.data.unseen,
            datasets,
            device: m.training.local.device,
            require_gpu: m.training.local.require_gpu,
        }
    }

    /// SageMaker hyperparameters: every value a string, here the JSON text of the field.
    pub fn to_hyperparameters(&self) -> BTreeMap<String, String> {
        let value = serde_json::to_value(self).unwrap_or_default();
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    /// The job the hyperparameters describe. A key `hyperparameters.NAME` sets one model
    /// hyperparameter inside the `hyperparameters` object (a tuning job varies each on its own),
    /// and keys the job does not have (SageMaker's own, such as `_tuning_objective_metric`) are
    /// ignored.
    pub fn from_hyperparameters(map: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut object = serde_json::Map::new();
        let mut model = Vec::new();
        for (k, v) in map {
            if k.starts_with('_') {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(v)
                .map_err(|e| format!("hyperparameter `{k}` is not JSON text: {e}"))?;
            match k.strip_prefix(MODEL_HYPERPARAMETER) {
                Some(name) => model.push((name.to_owned(), value)),
                None => {
                    object.insert(k.clone(), value);
                }
            }
        }
        if !model.is_empty() {
            let Some(serde_json::Value::Object(inner)) = object.get_mut("hyperparameters") else {
                return Err(format!(
                    "hyperparameter `{MODEL_HYPERPARAMETER}{}` needs the `hyperparameters` object it sets a field of",
                    model.first().map(|(n, _)| n.as_str()).unwrap_or_default()
                ));
            };
            inner.extend(model);
        }
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| format!("the hyperparameters do not describe a training job: {e}"))
    }
}

/// How training went: saved as `training.json` beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub datasets: BTreeMap<String, FileDigest>,
    pub rows: BTreeMap<String, usize>,
    pub compute: Compute,
    pub parameters: usize,
    pub curve: Vec<Epoch>,
    /// The epoch of the checkpoint this run went on from (a restarted spot job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u32>,
    /// "validation" and "holdout" -> metric name -> value.
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
    pub samples_per_second: f64,
    pub seconds: f64,
    /// What `mlops monitor` compares production with: each feature on the training split and
    /// the predictions on the validation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::Baseline>,
}

impl Report {
    /// The step summary of a training run registered as `reference`: the metrics table, a chart
    /// of the loss and the task's main metric per epoch, and the throughput.
    pub fn markdown(&self, reference: &str, task: Task) -> String {
        let mut md = format!(
            "### Trained `{reference}`\n\n| metric | validation | holdout |\n|---|---:|---:|\n"
        );
        for (name, value, holdout) in self.metric_rows() {
            let h = holdout.map_or_else(String::new, |v| format!("{v:.4}"));
            md.push_str(&format!("| {name} | {value:.4} | {h} |\n"));
        }
        let main = match task {
            Task::Classification => "accuracy",
            Task::Regression => "rmse",
        };
        if self.curve.is_empty() {
            // A model brought as ONNX: measured, not trained.
            md.push_str(&format!(
                "\nNot trained here: measured on {} rows, {:.0} rows/s, {:.1} s on {}.\n",
                self.rows.get("validation").unwrap_or(&0) + self.rows.get("holdout").unwrap_or(&0),
                self.samples_per_second,
                self.seconds,
                self.compute.describe()
            ));
            return md;
        }
        let epochs: Vec<String> = self.curve.iter().map(|e| e.epoch.to_string()).collect();
        let series = |f: &dyn Fn(&Epoch) -> f64| {
            self.curve
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
            self.curve.len(),
            self.samples_per_second,
            self.seconds,
            self.compute.describe()
        ));
        md
    }

    /// The metrics measured on one split ("validation" or "holdout").
    pub fn metrics_of(&self, split: &str) -> BTreeMap<String, f64> {
        self.metrics.get(split).cloned().unwrap_or_default()
    }

    /// (metric, validation value, holdout value) for tables.
    pub fn metric_rows(&self) -> Vec<(String, f64, Option<f64>)> {
        let holdout = self.metrics_of("holdout");
        self.metrics_of("validation")
            .into_iter()
            .map(|(name, v)| {
                let h = holdout.get(&name).copied();
                (name, v, h)
            })
            .collect()
    }
}

/// What was read from one file: where, its SHA-256, its size and how many rows it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileDigest {
    /// The path as the manifest gives it.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub rows: u64,
}

/// One epoch of the training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Epoch {
    pub epoch: u32,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    pub validation_loss: f64,
    /// Validation metrics after the epoch.
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
}

/// Where the model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Compute {
    pub device: Device,
    /// The burn backend: flex (CPU), wgpu, cuda.
    pub backend: String,
    /// The wgpu adapter, when the backend is wgpu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<Adapter>,
}

impl Compute {
    /// One line for logs and summaries, e.g. `wgpu on llvmpipe (LLVM 15.0.6, 256 bits) (cpu, vulkan)`.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(a) => format!("{} on {} ({}, {})", self.backend, a.name, a.kind, a.api),
            None => self.backend.clone(),
        }
    }
}

/// What wgpu reports about the adapter it picked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Adapter {
    pub name: String,
    /// discrete-gpu, integrated-gpu, virtual-gpu, cpu or other.
    pub kind: String,
    /// The graphics API: vulkan, metal, dx12, gl.
    pub api: String,
    pub driver: String,
    pub driver_info: String,
}

impl Adapter {
    /// A software rasteriser rather than a GPU.
    pub fn is_software(&self) -> bool {
        self.kind == "cpu"
    }
}

/// The inputs a model takes and the outputs it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signature {
    /// Feature columns, in the order the model reads them; every one a 32-bit float.
    pub features: Vec<String>,
    pub feature_type: String,
    pub label: String,
    pub task: Task,
    /// Classification: class index -> label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// The categorical features and the categories training saw, in the order of their
    /// one-hot columns; the model reads the numeric features first, then each of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<Categories>,
    /// What a category not in the list becomes.
    #[serde(default, skip_serializing_if = "Unseen::is_error")]
    pub unseen: Unseen,
}

impl Signature {
    /// A signature of numeric features only.
    pub fn numeric(
        features: Vec<String>,
        label: String,
        task: Task,
        classes: Option<Vec<String>>,
    ) -> Self {
        Self {
            features,
            feature_type: "f32".to_owned(),
            label,
            task,
            classes,
            categorical: Vec::new(),
            unseen: Unseen::Error,
        }
    }

    /// How many values the network (or graph) reads per row: each numeric feature, and one per
    /// category of each categorical feature.
    pub fn inputs(&self) -> usize {
        let categories: usize = self.categorical.iter().map(|c| c.values.len()).sum();
        self.features.len() - self.categorical.len().min(self.features.len()) + categories
    }
}

/// A categorical feature: its column and the categories the training file has, sorted (as
/// numbers when every one is a number, else as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Categories {
    pub column: String,
    pub values: Vec<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_charts_the_main_metric_of_the_task() {
        let report = crate::card::sample("digits-mlp", 1).training;
        let md = report.markdown("digits-mlp@1", mlops_manifest::model::Task::Classification);
        assert!(md.starts_with("### Trained `digits-mlp@1`"), "{md}");
        assert!(md.contains("| accuracy | 0.9636 |"), "{md}");
        assert!(md.contains("validation accuracy per epoch"), "{md}");
        assert!(
            md.contains(&format!("{} epochs", report.curve.len())),
            "{md}"
        );
    }
}
