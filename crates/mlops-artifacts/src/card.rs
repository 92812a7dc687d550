//! The model card (`card.json`): what a registered version was trained from, how, on what, and
//! how it scored. Written once, when the version is registered, and never rewritten; every
//! command that reads it (promote's pull request, the deploys' digest checks, the holdout
//! test's recorded metrics, `mlops run`'s summary, serve) reads this type, so a field written
//! under one name is never read under another.

use std::collections::BTreeMap;

use mlops_manifest::model::Bound;
use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactDigest;
use crate::training::{Job, Report};

/// `card.json` of a registered model version, written by `mlops train` (either backend) when the
/// version is registered and never rewritten: what it was trained from, how, on what data, and
/// how it scored. Its status is in `status.json`, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelCard {
    pub model: String,
    pub version: u64,
    /// `MODEL@VERSION`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// The manifest it was trained from.
    pub manifest: ManifestRef,
    /// The commit of the repository holding the manifest, when known.
    pub git_commit: Option<String>,
    /// What was trained: the model, its data and hyperparameters.
    pub job: Job,
    /// How training went: dataset digests, rows, compute, curve, metrics.
    #[serde(flatten)]
    pub training: Report,
    pub libraries: Libraries,
    /// The evaluation thresholds it was judged by: metric name -> bound.
    pub thresholds: BTreeMap<String, Bound>,
    /// The SageMaker training job that trained it, when one did.
    #[serde(default)]
    pub sagemaker: Option<SagemakerRun>,
    /// The artifact files' digests, recorded by the registry as it registers the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactDigest>,
    /// The sweep this version won (`training.sweep`): every trial, and which one this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepRecord>,
}

/// The manifest a model was trained from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManifestRef {
    pub path: String,
    pub sha256: String,
}

/// The versions of the code that trained it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Libraries {
    pub mlops: String,
    pub burn: String,
}

/// A SageMaker training job's record on the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SagemakerRun {
    pub training_job: String,
    pub training_job_arn: String,
    /// The training image, by digest when it was given one.
    pub image: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    /// Where SageMaker put `model.tar.gz`.
    pub model_artifact: String,
    #[serde(default)]
    pub final_metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub billable_seconds: Option<i64>,
    /// The model package group and package it was registered in, with a SageMaker registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_package_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_package_arn: Option<String>,
    /// The hyperparameter tuning job whose best trial `training_job` is (a sweep on SageMaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning_job: Option<String>,
}

/// The card schema's `$id`.
pub const SCHEMA_ID: &str = "https://mlops-rs.github.io/schema/v1/card.schema.json";

/// The card's JSON Schema, generated from [`ModelCard`] and the types it holds, as
/// `schema/card.schema.json` holds it (`cargo xtask codegen` writes it).
pub fn schema_text() -> String {
    crate::schema_text::<ModelCard>(SCHEMA_ID, "mlops model card")
}

impl ModelCard {
    /// The metrics measured on one split (`validation` or `holdout`).
    pub fn metrics_of(&self, split: &str) -> BTreeMap<String, f64> {
        self.training.metrics_of(split)
    }

    /// Which run trained it, for a reviewer: the SageMaker job, else the local run's commit.
    pub fn run(&self) -> String {
        match (&self.sagemaker, &self.git_commit) {
            (Some(s), _) => format!("SageMaker training job `{}`", s.training_job),
            (None, Some(commit)) => format!("local run at commit `{commit}`"),
            (None, None) => "local run".to_owned(),
        }
    }
}

/// A complete card of the quickstart's model (as `mlops train` wrote one, its curve cut to one
/// epoch), for tests: `model` and `version` as given.
pub fn sample(model: &str, version: u64) -> ModelCard {
    let mut card: ModelCard = serde_json::from_str(SAMPLE).expect("the sample card is a card");
    card.model = model.to_owned();
    card.version = version;
    card.reference = format!("{model}@{version}");
    card.job.model = model.to_owned();
    card
}

const SAMPLE: &str = r#"{
 "model": "digits-mlp",
 "version": 1,
 "ref": "digits-mlp@1",
 "created_at": "2026-12-03T10:00:00Z",
 "manifest": {
  "path": "examples/quickstart/mlops.yaml",
  "sha256": "56dd45fc04ce20374cfde91808e87b23b6c2c8104e17999887d3555b90b72a1b"
 },
 "git_commit": "0123456789abcdef0123456789abcdef01234567",
 "job": {
  "model": "digits-mlp",
  "task": "classification",
  "family": "mlp",
  "features": [
   "pixel_{0..63}"
  ],
  "label": "digit",
  "image": null,
  "hyperparameters": {
   "hidden_layers": [
    64
   ],
   "activation": "relu",
   "dropout": 0.0
  },
  "epochs": 30,
  "batch_size": 64,
  "learning_rate": 0.003,
  "optimizer": "adam",
  "seed": 42,
  "validation_fraction": 0.2,
  "split_seed": 7,
  "datasets": {
   "holdout": {
    "path": "data/digits-holdout.csv",
    "format": null
   },
   "train": {
    "path": "data/digits-train.csv",
    "format": null
   }
  },
  "device": "cpu",
  "require_gpu": false
 },
 "datasets": {
  "holdout": {
   "path": "data/digits-holdout.csv",
   "sha256": "a9248e9d5c6f17883722e0ea2e71ca1ee844a346569dae313b2a351816798a60",
   "bytes": 44349,
   "rows": 297
  },
  "train": {
   "path": "data/digits-train.csv",
   "sha256": "65bd94a07c3559d12d6ead310fcf96c84507fb624ea81b801a3c4d4fd303fa59",
   "bytes": 221507,
   "rows": 1500
  }
 },
 "rows": {
  "holdout": 297,
  "train": 1198,
  "validation": 302
 },
 "compute": {
  "device": "cpu",
  "backend": "flex"
 },
 "libraries": {
  "mlops": "0.1.0",
  "burn": "0.22.1"
 },
 "parameters": 4810,
 "curve": [
  {
   "epoch": 1,
   "loss": 1.7693928668373509,
   "validation_loss": 1.2614649534225464,
   "metrics": {
    "accuracy": 0.7980132450331126,
    "f1_macro": 0.7867314842009622,
    "precision_macro": 0.8083257222953744,
    "recall_macro": 0.7985946984500935
   },
   "seconds": 0.01268817
  }
 ],
 "metrics": {
  "holdout": {
   "accuracy": 0.9797979797979798,
   "f1_macro": 0.9798151243014688,
   "precision_macro": 0.9795506576756579,
   "recall_macro": 0.9803366611458717
  },
  "validation": {
   "accuracy": 0.9635761589403974,
   "f1_macro": 0.9641349609791231,
   "precision_macro": 0.9658885359951602,
   "recall_macro": 0.9637634408602151
  }
 },
 "thresholds": {
  "accuracy": {
   "min": 0.95
  }
 },
 "samples_per_second": 92411.26317732158,
 "seconds": 0.487114111,
 "sagemaker": null
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample card is valid against the generated schema, and a card missing a field the
    /// readers need is not.
    #[test]
    fn the_schema_accepts_a_card_and_refuses_a_damaged_one() {
        let schema: serde_json::Value = serde_json::from_str(&schema_text()).expect("schema JSON");
        let mut card = sample("digits", 1);
        card.artifact = Some(ArtifactDigest {
            sha256: "a".repeat(64),
            files: BTreeMap::new(),
        });
        let json = serde_json::to_value(&card).expect("card");
        let errors = |doc: &serde_json::Value| -> Vec<String> {
            jsonschema::validator_for(&schema)
                .expect("a valid schema")
                .iter_errors(doc)
                .map(|e| e.to_string())
                .collect()
        };
        assert_eq!(errors(&json), Vec::<String>::new());
        let mut damaged = json.clone();
        damaged.as_object_mut().expect("object").remove("manifest");
        assert!(!errors(&damaged).is_empty());
    }

    /// The card round-trips through its JSON, whose fields stay where the readers and older
    /// registries have them (the training report flat at the top level).
    #[test]
    fn a_card_round_trips_with_its_fields_where_they_were() {
        let card = sample("digits", 3);
        let json = serde_json::to_value(&card).expect("serialises");
        for key in [
            "ref",
            "manifest",
            "job",
            "datasets",
            "rows",
            "compute",
            "curve",
            "metrics",
            "thresholds",
            "sagemaker",
        ] {
            assert!(json.get(key).is_some(), "{key}: {json}");
        }
        assert_eq!(json["ref"], "digits@3");
        let back: ModelCard = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, card);
        assert_eq!(
            card.run(),
            "local run at commit `0123456789abcdef0123456789abcdef01234567`"
        );
    }

    /// The SageMaker record is read under the name it is written with: the pull request names
    /// the training job.
    #[test]
    fn a_sagemaker_run_names_its_training_job() {
        let mut card = sample("churn", 1);
        card.sagemaker = Some(SagemakerRun {
            training_job: "churn-20261203-1".into(),
            training_job_arn:
                "arn:aws:sagemaker:eu-west-1:123456789012:training-job/churn-20261203-1".into(),
            image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn/train@sha256:ab".into(),
            image_digest: Some("sha256:ab".into()),
            model_artifact: "s3://b/churn/output/model.tar.gz".into(),
            final_metrics: BTreeMap::new(),
            billable_seconds: Some(61),
            model_package_group: None,
            model_package_arn: None,
            tuning_job: None,
        });
        let back: ModelCard =
            serde_json::from_str(&serde_json::to_string(&card).expect("json")).expect("card");
        assert_eq!(back.run(), "SageMaker training job `churn-20261203-1`");
    }
}
