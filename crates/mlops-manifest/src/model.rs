//! The typed `mlops.yaml` manifest (version 1): serde types whose doc comments become the
//! descriptions in `schema/mlops.schema.json`.
//!
//! Every struct denies unknown keys. Optional sections are `Option`s; defaults are declared with
//! `#[serde(default = ...)]` so that the schema shows them to editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The manifest versions this binary reads.
pub const SUPPORTED_VERSIONS: &[u64] = &[1];

/// The whole `mlops.yaml`: one model, its data, how it is trained, evaluated, tested against
/// staging and promoted to production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version. This binary reads version 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u64,
    pub project: Project,
    pub data: Data,
    pub model: Model,
    pub training: Training,
    #[serde(default)]
    pub evaluation: Evaluation,
    #[serde(default)]
    pub registry: Registry,
    pub environments: Environments,
    #[serde(default)]
    pub holdout: Holdout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<Infrastructure>,
    #[serde(default)]
    pub workflows: Workflows,
    #[serde(default)]
    pub container: Container,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
}

/// The model image `mlops render` writes a Dockerfile for (`container/Dockerfile`): the `mlops`
/// binary on a small base, started with `serve` (SageMaker's inference contract, port 8080) or
/// `train`, with the model in `/opt/ml/model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// The base image, pinned by digest (`NAME[:TAG]@sha256:` and 64 hex digits). It needs glibc
    /// (as new as the glibc the `mlops` binary was built against) and CA certificates. Defaults
    /// to distroless `cc-debian13:nonroot` (glibc 2.41).
    #[serde(default = "default_base_image")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*@sha256:[0-9a-f]{64}$"))]
    pub base_image: String,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            base_image: default_base_image(),
        }
    }
}

/// Distroless `cc-debian13:nonroot` (glibc 2.41, libgcc, CA certificates, a user 65532, no
/// shell): newer than the glibc of the Linux machines a binary is built on (Debian 12's 2.36,
/// the Ubuntu 24.04 runner's 2.39).
fn default_base_image() -> String {
    "gcr.io/distroless/cc-debian13:nonroot@sha256:54df941ed0d06a1bd95ef5e0ce391fd8d9f94b64782dc9a60062727849ee3f97".to_owned()
}

/// The project this manifest belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Short name: lowercase letters, digits and hyphens, 2 to 32 characters, starting with a
    /// letter. Every derived name (cloud resources, workflow files, branches) starts with it, so
    /// two manifests in one repository must use different names.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"))]
    pub name: String,
    /// The GitHub repository that holds this manifest, as `OWNER/REPO`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"))]
    pub repository: String,
    /// The repository holds several models, one manifest each: every file `mlops render` writes
    /// carries `name` (`.github/workflows/mlops-train-NAME.yml`, `terraform/NAME/`,
    /// `container/NAME/Dockerfile`), each workflow is named `mlops train (NAME)`, and the
    /// GitHub variables holding the roles end in `_NAME` (upper case, `-` as `_`):
    /// `MLOPS_TRAIN_ROLE_ARN_NAME`, and `MLOPS_AWS_ROLE_ARN_NAME` in the shared `staging` and
    /// `production` environments. `mlops validate` of all the manifests checks that every one
    /// sharing the repository sets it and that they share no pin file or promotion branch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monorepo: bool,
}

/// Where the data lives and which columns the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Feature columns, in the order the model reads them. An entry may hold one numeric range in
    /// braces, `pixel_{0..63}`, which stands for `pixel_0` to `pixel_63`.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub features: Vec<String>,
    /// The label (target) column.
    #[schemars(length(min = 1))]
    pub label: String,
    /// The training dataset.
    pub train: Dataset,
    /// The validation dataset. When absent, a seeded split of the training dataset is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Dataset>,
    /// The holdout dataset: never seen in training, scored offline at training time and again
    /// through the staging service by `mlops holdout`.
    pub holdout: Dataset,
    /// How the validation set is split off the training set when `validation` is absent.
    #[serde(default)]
    pub split: Split,
    /// What a missing feature value (an empty CSV field, a JSON `null`, a Parquet null) is.
    #[serde(default, skip_serializing_if = "Missing::is_error")]
    pub missing: Missing,
    /// Feature columns whose values are categories (text such as `red`, or codes such as `3`),
    /// each one of `data.features`. The categories are the distinct values of the training file,
    /// recorded with the model; the model reads each column one-hot encoded, after the numeric
    /// features (see README, "Categorical features"). A missing value (where `data.missing`
    /// allows them) is all zeros.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub categorical: Vec<String>,
    /// What a category the training file does not have becomes, in validation, holdout and
    /// serving.
    #[serde(default, skip_serializing_if = "Unseen::is_error")]
    pub unseen: Unseen,
}

/// What a category the training file does not have becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unseen {
    /// The row is refused (a data error; 400 from `mlops serve`), naming the column and the
    /// value.
    #[default]
    Error,
    /// All zeros: the row is read as having none of the known categories (scikit-learn's
    /// `OneHotEncoder(handle_unknown="ignore")`).
    Ignore,
}

impl Unseen {
    pub fn is_error(&self) -> bool {
        *self == Unseen::Error
    }
}

/// What a missing feature value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// A row with a missing feature is refused, naming the row and the column.
    #[default]
    Error,
    /// The feature's mean over the training split (missing values left out).
    Mean,
    /// The feature's median over the training split (missing values left out).
    Median,
    /// Zero.
    Zero,
}

impl Missing {
    pub fn is_error(&self) -> bool {
        *self == Missing::Error
    }
}

/// One dataset file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// A local path (relative to the manifest's directory) or an `s3://bucket/key` URI.
    #[schemars(length(min = 1))]
    pub path: String,
    /// File format. When absent it is taken from the extension (`.csv`, `.jsonl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
}

/// A dataset file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (`.parquet`, `.pq`): the feature columns numeric (integers, floats,
    /// decimals), the label text, a number or a boolean.
    Parquet,
}

/// A seeded train/validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Fraction of the training rows held out for validation.
    #[serde(default = "default_validation_fraction")]
    #[schemars(range(min = 0.01, max = 0.9))]
    pub validation_fraction: f64,
    /// Seed of the split (independent of the training seed).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            validation_fraction: default_validation_fraction(),
            seed: default_seed(),
        }
    }
}

fn default_validation_fraction() -> f64 {
    0.2
}

fn default_seed() -> u64 {
    42
}

/// The model to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Model name in the registry: lowercase letters, digits and hyphens, 2 to 48 characters.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,46}[a-z0-9]$"))]
    pub name: String,
    /// What the model predicts.
    pub task: Task,
    /// Network architecture: trained by mlops (`mlp`, `cnn`), or brought as an ONNX file
    /// (`onnx`: the file at `path`, or the model.onnx your training command or SageMaker
    /// training image writes).
    pub family: Family,
    /// The `onnx` family's model file (an `.onnx` file, relative to the manifest, or
    /// `s3://bucket/key`): trained elsewhere, measured and registered by `mlops train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
    /// Input image shape, required by the `cnn` family: the features are the pixels in row-major
    /// order, `height * width` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ImageShape>,
    /// Architecture settings.
    #[serde(default)]
    pub hyperparameters: Hyperparameters,
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A class label, from the distinct values of the label column.
    Classification,
    /// A number.
    Regression,
}

/// Network architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// A multi-layer perceptron over tabular features.
    Mlp,
    /// A small convolutional network over grayscale images.
    Cnn,
    /// A model trained elsewhere (scikit-learn, XGBoost, PyTorch...) and exported to ONNX: one
    /// float input of the features in order; a label output (and probabilities) for a
    /// classifier, one value output for a regressor. Run by tract.
    Onnx,
}

/// A grayscale image shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Image height in pixels.
    #[schemars(range(min = 1, max = 512))]
    pub height: u32,
    /// Image width in pixels.
    #[schemars(range(min = 1, max = 512))]
    pub width: u32,
}

/// Architecture settings. Settings that do not apply to the chosen family are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    /// Width of each hidden layer (mlp), or of the dense layers after the convolutions (cnn).
    #[serde(default = "default_hidden_layers")]
    #[schemars(length(max = 8), inner(range(min = 1, max = 4096)))]
    pub hidden_layers: Vec<u32>,
    /// Activation function between layers.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden layer.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.9))]
    pub dropout: f64,
    /// Output channels of each convolution (cnn only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4), inner(range(min = 1, max = 256)))]
    pub conv_channels: Option<Vec<u32>>,
    /// Convolution kernel size (cnn only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 7))]
    pub kernel_size: Option<u32>,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Hyperparameters {
            hidden_layers: default_hidden_layers(),
            activation: Activation::default(),
            dropout: 0.0,
            conv_channels: None,
            kernel_size: None,
        }
    }
}

fn default_hidden_layers() -> Vec<u32> {
    vec![64]
}

/// Activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
}

/// How and where the model is trained. The optimisation settings apply to every backend, so a
/// local run and a SageMaker run train the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Where training runs.
    #[serde(default)]
    pub backend: Backend,
    /// Passes over the training set.
    // Required by the families mlops trains (a semantic rule); an `onnx` model has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub epochs: Option<u32>,
    /// Rows per optimisation step.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 1048576))]
    pub batch_size: u32,
    /// Optimiser step size.
    #[serde(default = "default_learning_rate")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub learning_rate: f64,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// Seed for weight initialisation and batch order. Same manifest, data and seed on the CPU
    /// backend give byte-identical weights.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Settings of the `local` backend.
    #[serde(default)]
    pub local: LocalTraining,
    /// Settings of the `sagemaker` backend; required when `backend` is `sagemaker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sagemaker: Option<SagemakerTraining>,
    /// The `command` backend's program and its arguments (no shell), run in the manifest's
    /// directory, e.g. `[python, train.py]`; required when `backend` is `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 4096)))]
    pub command: Option<Vec<String>>,
    /// A pip requirements file of the training command (relative to the manifest, e.g.
    /// `requirements.txt`): the rendered train workflow installs it into a virtual environment
    /// first and puts that environment on `PATH`. On your machine, install it yourself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub requirements: Option<String>,
    /// A hyperparameter sweep: several trainings (trials) that differ in the hyperparameters
    /// named here, judged on the validation set by one metric; the best is registered, its card
    /// listing every trial. On this machine (and in `mlops run`) trials run one after the
    /// other; the rendered train workflow runs them as a matrix of jobs; with the `sagemaker`
    /// backend they are a SageMaker hyperparameter tuning job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

/// A hyperparameter sweep (`training.sweep`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// `grid`: every combination of the values, in order (at most `budget` of them);
    /// `random`: `budget` draws, each value picked at random (ranges drawn uniformly, or
    /// log-uniformly with `log: true`), seeded by `seed`.
    pub method: SweepMethod,
    /// The hyperparameters tried and their values. Those not named keep the manifest's.
    pub parameters: SweepParameters,
    /// The metric the trials are judged by, on the validation set.
    pub objective: Objective,
    /// The most trials the sweep runs: a grid larger than this is an error.
    #[schemars(range(min = 1, max = 100))]
    pub budget: u32,
    /// Seed of the random draws.
    #[serde(default)]
    pub seed: u64,
    /// The most trials that run at once: the train workflow matrix's `max-parallel`, and a
    /// SageMaker tuning job's `MaxParallelTrainingJobs`. By default a matrix runs them all at
    /// once and a tuning job runs up to 4 (mind the account's instance quotas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub parallel: Option<u32>,
}

impl Sweep {
    /// How many trials it runs: a grid's combinations of the listed values (at most `budget`,
    /// which validation checks), or `budget` random draws.
    pub fn trial_count(&self) -> u32 {
        match self.method {
            SweepMethod::Random => self.budget,
            SweepMethod::Grid => {
                let p = &self.parameters;
                let numbers = |v: &Option<SweepValues>| match v {
                    Some(SweepValues::List(l)) => l.len(),
                    _ => 1,
                };
                let sizes = [
                    numbers(&p.learning_rate),
                    p.batch_size.as_ref().map_or(1, Vec::len),
                    p.epochs.as_ref().map_or(1, Vec::len),
                    p.optimizer.as_ref().map_or(1, Vec::len),
                    p.hidden_layers.as_ref().map_or(1, Vec::len),
                    p.activation.as_ref().map_or(1, Vec::len),
                    numbers(&p.dropout),
                ];
                let n = sizes
                    .iter()
                    .try_fold(1usize, |acc, n| acc.checked_mul(*n))
                    .unwrap_or(usize::MAX);
                u32::try_from(n).unwrap_or(u32::MAX).min(self.budget)
            }
        }
    }
}

/// How a sweep picks its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SweepMethod {
    Grid,
    Random,
}

/// The hyperparameters a sweep varies: each a list of values (a `random` sweep may also give a
/// number range).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepParameters {
    /// Values of `training.learning_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<SweepValues>,
    /// Values of `training.batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(range(min = 1, max = 1048576)))]
    pub batch_size: Option<Vec<u32>>,
    /// Values of `training.epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(range(min = 1, max = 100000)))]
    pub epochs: Option<Vec<u32>>,
    /// Values of `training.optimizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3))]
    pub optimizer: Option<Vec<Optimizer>>,
    /// Values of `model.hyperparameters.hidden_layers`, each a list of widths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(length(max = 8)))]
    pub hidden_layers: Option<Vec<Vec<u32>>>,
    /// Values of `model.hyperparameters.activation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10))]
    pub activation: Option<Vec<Activation>>,
    /// Values of `model.hyperparameters.dropout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<SweepValues>,
}

/// A number hyperparameter's values: a list, or (random sweeps) a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SweepValues {
    List(#[schemars(length(min = 1, max = 100))] Vec<f64>),
    Range(SweepRange),
}

/// A range a random sweep draws from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRange {
    pub min: f64,
    pub max: f64,
    /// Draw the logarithm uniformly (for learning rates): `min` must then be above 0.
    #[serde(default)]
    pub log: bool,
}

/// What a sweep optimises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// A metric of the model's task, measured on the validation set.
    pub metric: Metric,
    /// `maximize` or `minimize`; by default the metric's better direction (rmse and mae are
    /// minimised, the others maximised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

impl Objective {
    /// Whether a larger value wins.
    pub fn maximize(&self) -> bool {
        match self.goal {
            Some(Goal::Maximize) => true,
            Some(Goal::Minimize) => false,
            None => self.metric.higher_is_better(),
        }
    }
}

/// The direction of an objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Maximize,
    Minimize,
}

fn default_batch_size() -> u32 {
    64
}

fn default_learning_rate() -> f64 {
    0.001
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// On this machine (or the GitHub runner), with burn.
    #[default]
    Local,
    /// As a SageMaker training job running the image from ECR: the model image mlops builds
    /// (`mlp`, `cnn`), or, for `model.family: onnx`, your own training image, which writes
    /// `/opt/ml/model/model.onnx`; mlops then measures and registers that file here.
    Sagemaker,
    /// Your own training code (`training.command`), run on this machine under SageMaker's
    /// `/opt/ml` contract (`SM_MODEL_DIR`, `SM_CHANNEL_TRAIN`, ...); it writes `model.onnx`
    /// into the model directory, which mlops then measures and registers (`model.family: onnx`).
    Command,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    #[default]
    Adam,
    Adamw,
    Sgd,
}

/// Settings of the local backend.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalTraining {
    /// Compute device.
    #[serde(default)]
    pub device: Device,
    /// Fail instead of training on a software (CPU) adapter when a GPU device was asked for.
    #[serde(default)]
    pub require_gpu: bool,
}

/// Compute device of the local backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// burn's CPU backend.
    #[default]
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12).
    Wgpu,
    /// burn's CUDA backend (an opt-in build feature).
    Cuda,
}

/// Settings of a SageMaker training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagemakerTraining {
    /// ARN of the IAM role the training job runs as.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$"))]
    pub role_arn: String,
    /// The training image in ECR.
    pub image: EcrImage,
    /// Instance type, e.g. `ml.m5.xlarge` or `ml.g5.xlarge`.
    #[schemars(regex(pattern = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub instance_type: String,
    /// Number of instances. More than one is distributed training.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub instance_count: u32,
    /// Volume attached to each instance, in GB.
    #[serde(default = "default_volume_gb")]
    #[schemars(range(min = 1, max = 16384))]
    pub volume_size_gb: u32,
    /// The job is stopped after this many seconds.
    #[serde(default = "default_max_runtime")]
    #[schemars(range(min = 60, max = 2419200))]
    pub max_runtime_seconds: u32,
    /// Managed spot training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<Spot>,
    /// Where the job writes its model artifact, `s3://bucket/prefix`. Defaults to the bucket that
    /// `mlops render` creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_uri: Option<String>,
    /// Run the job inside a VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<Vpc>,
    /// KMS key (ID or ARN) that encrypts the instance volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_kms_key: Option<String>,
    /// KMS key (ID or ARN) that encrypts the output artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_kms_key: Option<String>,
    /// Extra environment variables of the training container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Tags added to the job, besides the repository, run and manifest hash tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Refuse an image whose ECR scan has CRITICAL findings.
    #[serde(default = "yes")]
    pub forbid_critical_findings: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_volume_gb() -> u32 {
    30
}

fn default_max_runtime() -> u32 {
    3600
}

/// An image in ECR, by tag or by digest. A tag is resolved to its digest before use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcrImage {
    /// ECR repository name.
    #[schemars(regex(
        pattern = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
    ))]
    pub repository: String,
    /// Image tag. Give a tag or a digest, not both; give neither for the image the train
    /// workflow builds and pushes (`mlops image push`), which it passes by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub tag: Option<String>,
    /// Image digest, `sha256:` and 64 hex digits. Give a tag or a digest, not both; give
    /// neither for the image the train workflow builds and pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: Option<String>,
}

/// Managed spot training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    /// Where checkpoints are kept so an interrupted job resumes, `s3://bucket/prefix`.
    pub checkpoint_uri: String,
    /// Longest wait for spot capacity plus training, in seconds; at least `max_runtime_seconds`.
    #[schemars(range(min = 60, max = 2419200))]
    pub max_wait_seconds: u32,
}

/// A VPC for the training job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    /// Subnet IDs.
    #[schemars(
        length(min = 1, max = 16),
        inner(regex(pattern = r"^subnet-[0-9a-f]+$"))
    )]
    pub subnet_ids: Vec<String>,
    /// Security group IDs.
    #[schemars(length(min = 1, max = 5), inner(regex(pattern = r"^sg-[0-9a-f]+$")))]
    pub security_group_ids: Vec<String>,
}

/// Evaluation of a trained model on the validation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Metrics computed and recorded in the model card. Defaults to the task's usual metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Bounds a model must meet to be registered as anything but rejected, by metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"$ref": "#/$defs/Metric"}))]
    pub thresholds: BTreeMap<Metric, Bound>,
}

#[allow(clippy::derivable_impls)] // spelled out: an empty evaluation section is a choice
impl Default for Evaluation {
    fn default() -> Self {
        Evaluation {
            metrics: Vec::new(),
            thresholds: BTreeMap::new(),
        }
    }
}

/// A bound on a metric: `min` for a metric where higher is better, `max` where lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// The metric must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The metric must be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A model quality metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction of rows classified correctly (classification).
    Accuracy,
    /// Precision averaged over classes (classification).
    PrecisionMacro,
    /// Recall averaged over classes (classification).
    RecallMacro,
    /// F1 averaged over classes (classification).
    F1Macro,
    /// Root mean squared error (regression).
    Rmse,
    /// Mean absolute error (regression).
    Mae,
    /// Coefficient of determination (regression).
    R2,
}

impl Metric {
    /// Every metric, in declaration order.
    pub const ALL: [Metric; 7] = [
        Metric::Accuracy,
        Metric::PrecisionMacro,
        Metric::RecallMacro,
        Metric::F1Macro,
        Metric::Rmse,
        Metric::Mae,
        Metric::R2,
    ];

    /// The name used in the manifest and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::PrecisionMacro => "precision_macro",
            Metric::RecallMacro => "recall_macro",
            Metric::F1Macro => "f1_macro",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
        }
    }

    /// The task this metric measures.
    pub fn task(self) -> Task {
        match self {
            Metric::Accuracy | Metric::PrecisionMacro | Metric::RecallMacro | Metric::F1Macro => {
                Task::Classification
            }
            Metric::Rmse | Metric::Mae | Metric::R2 => Task::Regression,
        }
    }

    /// Whether a larger value is a better model.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Rmse | Metric::Mae)
    }

    /// The metrics computed when the manifest names none.
    pub fn defaults(task: Task) -> &'static [Metric] {
        match task {
            Task::Classification => &[Metric::Accuracy, Metric::F1Macro],
            Task::Regression => &[Metric::Rmse, Metric::Mae, Metric::R2],
        }
    }
}

/// Where model versions are registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// A local directory (relative to the manifest's directory) or an `s3://bucket/prefix`.
    /// Overridden by `--registry` and `MLOPS_REGISTRY`.
    #[serde(default = "default_registry_path")]
    pub path: String,
    /// Also register each version as a package in this SageMaker model package group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"))]
    pub sagemaker_model_package_group: Option<String>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            path: default_registry_path(),
            sagemaker_model_package_group: None,
        }
    }
}

fn default_registry_path() -> String {
    ".mlops/registry".to_owned()
}

/// The deployment environments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environments {
    /// Where candidate models are deployed and holdout-tested.
    pub staging: Environment,
    /// Where approved models serve; changed only through an approved promotion pull request.
    pub production: Environment,
}

/// One environment: a service reached by URL (deployed by a GitOps tool from a pin file), or a
/// SageMaker endpoint. Give exactly one of `url` and `sagemaker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Base URL of a prediction service that speaks the SageMaker container contract
    /// (`/ping`, `/invocations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub url: Option<String>,
    /// A SageMaker endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sagemaker: Option<SagemakerEndpoint>,
    /// The pin file a GitOps tool deploys this environment from (URL targets), relative to the
    /// promotion repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<String>,
    /// After a deploy, watch the service for a soak period and stop on a breach (`mlops deploy`
    /// runs it after the environment serves the pin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<Watch>,
}

/// A soak period after a deploy: the service's own figures (for a URL target, its `/metrics`;
/// for a SageMaker endpoint, its CloudWatch alarms) looked at every `interval_seconds` for
/// `seconds`. A breach stops the watch with exit 1; production is then rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// How long to watch after the deploy, in seconds.
    #[schemars(range(min = 1, max = 86400))]
    pub seconds: u32,
    /// Seconds between two looks.
    #[serde(default = "default_watch_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: u32,
    /// Largest share of prediction requests answered with a 5xx status (connections refused
    /// for want of capacity count as such), per look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,
    /// Largest 99th-percentile time to answer a prediction request, in milliseconds, per look
    /// (read from the service's latency histogram: the bucket bound that holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub p99_ms: Option<f64>,
    /// Fewest prediction requests a look needs before its figures are judged; a quieter look
    /// is carried into the next one.
    #[serde(default = "default_watch_min_requests")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_requests: u32,
    /// How production goes back to the pin before on a breach: `pull_request` (the default: a
    /// rollback pull request through the gate, approved like any promotion) or `immediate` (the
    /// pin file reverted on the base branch at once, by a token allowed to bypass its
    /// protection; the gate deploys such a revert only when it restores exactly the pin before
    /// an approved promotion's). A SageMaker endpoint is put back at once either way.
    #[serde(default, skip_serializing_if = "WatchRollback::is_pull_request")]
    pub rollback: WatchRollback,
}

/// How a breach of production's watch is rolled back (`watch.rollback`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchRollback {
    /// A rollback pull request, through the gate.
    #[default]
    PullRequest,
    /// The pin file reverted on the base branch at once.
    Immediate,
}

impl WatchRollback {
    fn is_pull_request(&self) -> bool {
        *self == WatchRollback::PullRequest
    }
}

fn default_watch_interval() -> u32 {
    15
}

fn default_watch_min_requests() -> u32 {
    20
}

/// A SageMaker real-time or serverless endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagemakerEndpoint {
    /// Endpoint name, at most 50 characters: `mlops deploy` names each model and endpoint
    /// configuration after it (`NAME-vVERSION-KEY`, within SageMaker's 63), and the rendered
    /// deploy role may create only those starting with `NAME-v`.
    #[schemars(
        regex(pattern = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,49}$"),
        length(max = 50)
    )]
    pub endpoint_name: String,
    /// Instance type of a real-time endpoint, e.g. `ml.m5.large`. Absent with `serverless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub instance_type: Option<String>,
    /// Instances of a real-time endpoint.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub instance_count: u32,
    /// Serverless inference instead of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<Serverless>,
    /// CloudWatch alarms whose firing rolls a deployment back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_alarms: Vec<String>,
    /// A serving image of your own, in ECR by digest
    /// (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@sha256:...`), that answers SageMaker's
    /// inference contract (`GET /ping`, `POST /invocations` on port 8080, the version's files
    /// under `/opt/ml/model`). Absent: the model image (`mlops deploy --image`). mlops cannot
    /// predict offline as your server does, so the holdout test of this endpoint compares the
    /// metrics only, and its report says that parity was not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*@sha256:[a-f0-9]{64}$"
    ))]
    pub image: Option<String>,
}

impl SagemakerEndpoint {
    /// The ECR repository of the endpoint's own serving image, as `(account, region,
    /// repository)`; `None` without one (or one the schema would refuse).
    pub fn own_image_repository(&self) -> Option<(&str, &str, &str)> {
        let image = self.image.as_deref()?;
        let (host, rest) = image.split_once('/')?;
        let (repository, _) = rest.split_once('@')?;
        let mut parts = host.split('.');
        let account = parts.next()?;
        let (_dkr, _ecr) = (parts.next()?, parts.next()?);
        let region = parts.next()?;
        Some((account, region, repository))
    }

    /// The alarms the rendered Terraform creates for the endpoint: its 5xx errors and its
    /// model's p99 latency.
    pub fn own_alarm_names(&self) -> [String; 2] {
        [
            format!("{}-5xx", self.endpoint_name),
            format!("{}-latency-p99", self.endpoint_name),
        ]
    }

    /// Every alarm whose firing means the endpoint is unhealthy: its own, then the manifest's
    /// `rollback_alarms`, each once.
    pub fn health_alarms(&self) -> Vec<String> {
        let mut all: Vec<String> = self.own_alarm_names().to_vec();
        for a in &self.rollback_alarms {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }
}

/// Serverless inference settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Serverless {
    /// Memory in MB: 1024 to 6144, a multiple of 1024.
    #[schemars(range(min = 1024, max = 6144))]
    pub memory_mb: u32,
    /// Concurrent invocations.
    #[schemars(range(min = 1, max = 200))]
    pub max_concurrency: u32,
}

/// The holdout integration test: the holdout dataset is pushed through the staging service and
/// the metrics must match those measured offline at training time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    /// Metrics compared. Defaults to the evaluation metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Largest allowed absolute difference between the service's and the offline value, by
    /// metric; each must be one of `metrics`. Unlisted metrics must match within 1e-9.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"$ref": "#/$defs/Metric"}))]
    pub tolerances: BTreeMap<Metric, f64>,
    /// Rows per request.
    #[serde(default = "default_holdout_batch")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: u32,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// Timeout of one request, in seconds.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: u32,
    /// How fast the service must answer the holdout's load (`batch_size` rows per request,
    /// `concurrency` at once): a limit broken fails the test (exit 1), naming it.
    #[serde(default, skip_serializing_if = "Slo::is_empty")]
    pub slo: Slo,
}

/// Latency and throughput limits of the holdout test. Latency is per request, from sending it
/// to its whole answer (the attempt that succeeded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Largest median request latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub p50_ms: Option<f64>,
    /// Largest 95th-percentile request latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub p95_ms: Option<f64>,
    /// Largest 99th-percentile request latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub p99_ms: Option<f64>,
    /// Fewest rows per second over the whole test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub min_rows_per_second: Option<f64>,
}

impl Slo {
    pub fn is_empty(&self) -> bool {
        self == &Slo::default()
    }
}

impl Default for Holdout {
    fn default() -> Self {
        Holdout {
            metrics: Vec::new(),
            tolerances: BTreeMap::new(),
            batch_size: default_holdout_batch(),
            concurrency: default_concurrency(),
            timeout_seconds: default_timeout(),
            slo: Slo::default(),
        }
    }
}

fn default_holdout_batch() -> u32 {
    256
}

/// Production monitoring (README, "Monitoring"): what `mlops serve` captures, what `mlops monitor`
/// judges against the model's baseline, and what the rendered monitor workflow does on drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// What the prediction service records of each request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// When a feature, the predictions or a metric count as drifted.
    #[serde(default)]
    pub thresholds: DriftThresholds,
    /// When the rendered `mlops-monitor.yml` runs, as a cron expression in UTC (five fields).
    /// Without it no monitor workflow is rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 100))]
    pub schedule: Option<String>,
    /// How far back each run of the monitor workflow looks: an age such as `24h` or `7d`
    /// (`mlops monitor --since`); match it to the schedule.
    #[serde(default = "default_window")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,5}[smhd]$"))]
    pub window: String,
    /// On drift the monitor workflow also dispatches the train workflow, whose release goes
    /// through the same holdout test, no-regression rule and human gate.
    #[serde(default)]
    pub retrain: bool,
    /// The training set a retraining uses in place of `data.train` (`mlops train
    /// --retraining`, which the monitor workflow's dispatch asks for): a file where freshly
    /// labelled data lands, or the labelled capture `mlops monitor --ground-truth FILE
    /// --labelled PATH` writes. The validation set (or split) and the holdout stay the
    /// manifest's, so that the new version is judged on the rows its predecessor was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain_data: Option<Dataset>,
}

/// Batch scoring (README, "Batch scoring"): the rendered `mlops-batch.yml` scores `input` with
/// the version production's pin names (`mlops predict --pin`), by hand or on a schedule, and
/// writes each run's scores to `output` as `RUN_ID-ATTEMPT.FORMAT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The rows to score: an `s3://` object (the workflow's runner reads nothing else of
    /// yours), in CSV, JSON lines or Parquet as its name says.
    #[schemars(regex(pattern = r"^s3://[a-z0-9.-]{3,63}/.+$"), length(max = 1024))]
    pub input: String,
    /// The `s3://` prefix each run's scores go under.
    #[schemars(regex(pattern = r"^s3://[a-z0-9.-]{3,63}(/.*)?$"), length(max = 1024))]
    pub output: String,
    /// The scores' format.
    #[serde(default = "default_batch_format")]
    pub format: DataFormat,
    /// The input column written beside each prediction; without it rows are numbered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub id_column: Option<String>,
    /// When the workflow runs, as a cron expression in UTC (five fields); without it, only by
    /// hand (`workflow_dispatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 100))]
    pub schedule: Option<String>,
    /// Score on SageMaker Batch Transform instead of the workflow's runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sagemaker: Option<BatchTransform>,
}

fn default_batch_format() -> DataFormat {
    DataFormat::Csv
}

/// A SageMaker Batch Transform job on the serving image production's pin names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchTransform {
    /// The `s3://` prefix the job's rows and answers go under (a folder per job).
    #[schemars(regex(pattern = r"^s3://[a-z0-9.-]{3,63}(/.*)?$"), length(max = 1024))]
    pub prefix: String,
    /// The role the SageMaker model runs as.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$"))]
    pub role_arn: String,
    #[serde(default = "default_transform_instance")]
    #[schemars(regex(pattern = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub instance_type: String,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub instance_count: u32,
    /// The largest request sent to the container, in MB.
    #[serde(default = "default_payload_mb")]
    #[schemars(range(min = 1, max = 100))]
    pub max_payload_mb: u32,
    /// Requests in flight per instance.
    #[serde(default = "default_concurrent_transforms")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_transforms: u32,
    /// The serving image by digest (`REPOSITORY@sha256:...`); by default the one production's
    /// pin names (a SageMaker production's, or a SageMaker-trained model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$"),
        length(max = 1024)
    )]
    pub image: Option<String>,
}

fn default_transform_instance() -> String {
    "ml.m5.large".to_owned()
}

fn default_payload_mb() -> u32 {
    6
}

fn default_concurrent_transforms() -> u32 {
    2
}

/// Data capture (`mlops serve --capture`): each answered request's body and answer, the model's
/// reference and artifact digest, an inference id and the time, as JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// A directory, or `s3://BUCKET/PREFIX` (files are written locally first and uploaded as
    /// each one is closed).
    #[schemars(length(min = 1, max = 1024))]
    pub destination: String,
    /// The share of requests captured, in percent.
    #[serde(default = "default_sample_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub sample_percent: f64,
    /// A capture file is closed (and a new one begun) at this size, in bytes.
    #[serde(default = "default_rotate_bytes")]
    #[schemars(range(min = 4096, max = 4294967296_u64))]
    pub rotate_bytes: u64,
    /// ... or when it is this old, in seconds.
    #[serde(default = "default_rotate_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub rotate_seconds: u64,
    /// The KMS key production's SageMaker endpoint encrypts its captured objects with (a key
    /// ID, key ARN or alias); absent: the bucket's default encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,
}

fn default_window() -> String {
    "24h".to_owned()
}

fn default_sample_percent() -> f64 {
    100.0
}

fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_rotate_seconds() -> u64 {
    300
}

/// The limits `mlops monitor` judges by: anything over one is drift (exit 1, named).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftThresholds {
    /// Largest population stability index of a feature against its training distribution
    /// (0.1: a small change; 0.25: a large one).
    #[serde(default = "default_psi")]
    #[schemars(range(min = 0.0))]
    pub psi: f64,
    /// Largest Kolmogorov-Smirnov statistic of a numeric feature (the largest gap between the
    /// two cumulative distributions, on the baseline's bins).
    #[serde(default = "default_ks")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ks: f64,
    /// Largest rise of a feature's missing rate (0.05: five more rows in a hundred).
    #[serde(default = "default_missing_rise")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub missing: f64,
    /// Largest population stability index of the predictions against those on the validation
    /// set.
    #[serde(default = "default_psi")]
    #[schemars(range(min = 0.0))]
    pub prediction: f64,
    /// Fewer captured rows than this is itself a finding (nothing can be judged).
    #[serde(default = "default_min_rows")]
    #[schemars(range(min = 1))]
    pub min_rows: u64,
    /// Other limits for some features, by column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, FeatureThresholds>,
    /// With ground truth: the largest fall of a metric below the value the holdout set gave at
    /// evaluation (a rise of an error metric), by metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"$ref": "#/$defs/Metric"}))]
    pub metrics: BTreeMap<Metric, f64>,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        Self {
            psi: default_psi(),
            ks: default_ks(),
            missing: default_missing_rise(),
            prediction: default_psi(),
            min_rows: default_min_rows(),
            features: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }
}

/// One feature's own limits; an absent one is the general limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureThresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub psi: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ks: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub missing: Option<f64>,
}

fn default_psi() -> f64 {
    0.2
}

fn default_ks() -> f64 {
    0.2
}

fn default_missing_rise() -> f64 {
    0.05
}

fn default_min_rows() -> u64 {
    100
}

fn default_concurrency() -> u32 {
    4
}

fn default_timeout() -> u32 {
    30
}

/// Promotion to production through a pull request that a human approves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// The repository holding the production pin file, `OWNER/REPO`. Defaults to
    /// `project.repository`. When it is another repository, production's gate runs there:
    /// `mlops render --promotion-out CLONE` writes it, with the copy of this manifest it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"))]
    pub repository: Option<String>,
    /// Path of the production pin file in that repository.
    #[serde(default = "default_pin_file")]
    pub pin_file: String,
    /// The branch promotion pull requests target.
    #[serde(default = "default_base_branch")]
    pub base_branch: String,
    /// Users asked to review, and allowed to approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
    /// Teams (`org/team` or `team`) asked to review, whose members may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub team_reviewers: Vec<String>,
    /// Approvals on the pull request's current head needed before production deploys.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    pub required_approvals: u32,
    /// Labels put on the promotion pull request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Make `mlops promote` fail, instead of warning, when the base branch has no protection
    /// rule that requires approving reviews.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_branch_protection: bool,
    /// How far a candidate may fall behind the version production pins, per metric. When set,
    /// the release workflow runs `mlops holdout --compare production` (both models scored on
    /// the same rows of the same holdout file), and `mlops gate` refuses a promotion whose
    /// report lacks that comparison or failed it (rule `no-regression`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"$ref": "#/$defs/Metric"}))]
    pub no_regression: BTreeMap<Metric, Allowance>,
}

/// The largest drop of one metric allowed against production, in the metric's direction (a
/// lower accuracy, a higher RMSE). Give exactly one of `absolute` and `relative`; 0 allows no
/// drop at all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// In the metric's own units: `0.01` lets accuracy fall by one point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub absolute: Option<f64>,
    /// As a fraction of production's value: `0.02` lets RMSE grow by 2 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub relative: Option<f64>,
}

impl Allowance {
    /// The drop allowed when production scores `incumbent`.
    pub fn allowed(self, incumbent: f64) -> f64 {
        match (self.absolute, self.relative) {
            (Some(a), _) => a,
            (None, Some(r)) => r * incumbent.abs(),
            (None, None) => 0.0,
        }
    }

    /// As the manifest says it: `0.01` or `2%`.
    pub fn shown(self) -> String {
        match (self.absolute, self.relative) {
            (Some(a), _) => format!("{a}"),
            (None, Some(r)) => format!("{}%", (r * 1e6).round() / 1e4),
            (None, None) => "0".to_owned(),
        }
    }
}

fn default_pin_file() -> String {
    "deploy/production.yaml".to_owned()
}

fn default_base_branch() -> String {
    "main".to_owned()
}

/// Cloud infrastructure rendered by `mlops render`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Infrastructure {
    /// Terraform settings.
    pub terraform: Terraform,
}

/// Terraform settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Terraform {
    /// AWS region, e.g. `eu-west-1`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"))]
    pub region: String,
    /// S3 bucket holding the Terraform state (created by the rendered bootstrap configuration).
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    pub state_bucket: String,
    /// Prefix of every resource name. Defaults to `project.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"))]
    pub name_prefix: Option<String>,
}

/// The GitHub workflows rendered by `mlops render` into `.github/workflows/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflows {
    /// The repository's default branch: pushes to it retrain, and the training role's trust is
    /// scoped to it.
    #[serde(default = "default_base_branch")]
    #[schemars(length(min = 1, max = 255))]
    pub default_branch: String,
    /// Runner label of every job, e.g. `ubuntu-latest` or a GPU runner's label.
    #[serde(default = "default_runs_on")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"))]
    pub runs_on: String,
    /// Cron schedule (five fields, UTC) on which the model is retrained, e.g. `0 4 * * 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\S+( \S+){4}$"))]
    pub train_schedule: Option<String>,
    /// Which release of the mlops actions the workflows call. Defaults to the release this
    /// binary belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsPin>,
    /// What the AWS roles' trust (the OIDC `sub` claim) names: `environment` (GitHub's default
    /// claim: any workflow of the repository running in that environment, or on the default
    /// branch for training), or `workflow`, which also names the rendered workflow file and the
    /// branch it runs from, so that no other workflow can assume the role. `workflow` needs the
    /// repository's OIDC subject template set to `repo`, `context`, `job_workflow_ref` (which
    /// changes the claim for every workflow of the repository; `mlops doctor` checks it).
    #[serde(default)]
    pub oidc_subject: OidcSubject,
}

impl Default for Workflows {
    fn default() -> Self {
        Workflows {
            default_branch: default_base_branch(),
            runs_on: default_runs_on(),
            train_schedule: None,
            actions: None,
            oidc_subject: OidcSubject::default(),
        }
    }
}

/// What the OIDC subject claim the AWS roles trust names (`workflows.oidc_subject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OidcSubject {
    /// `repo:OWNER/REPO:environment:ENV` (or `:ref:refs/heads/BRANCH`): GitHub's default claim.
    #[default]
    Environment,
    /// The default claim followed by `:job_workflow_ref:OWNER/REPO/.github/workflows/FILE@REF`.
    Workflow,
}

fn default_runs_on() -> String {
    "ubuntu-latest".to_owned()
}

/// A pinned release of the mlops actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsPin {
    /// `OWNER/REPO` holding the actions (a fork or a mirror). Defaults to `mlops-rs/mlops`.
    #[serde(default = "default_actions_repository")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"))]
    pub repository: String,
    /// The full commit SHA the workflows pin.
    #[schemars(regex(pattern = r"^[0-9a-f]{40}$"))]
    pub sha: String,
    /// The release that commit is, written beside the SHA as a comment, e.g. `v0.1.0`.
    #[schemars(regex(pattern = r"^v?[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.-]+)?$"))]
    pub version: String,
}

fn default_actions_repository() -> String {
    "mlops-rs/mlops".to_owned()
}

/// A manifest value as the manifest spells it: an enum's name (`classification`, `mlp`, `adam`,
/// `cpu`), or `?` for a value that is not spelled as one string.
pub fn spelling(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
