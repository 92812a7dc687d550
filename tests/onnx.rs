//! mlops' ONNX runtime (tract) against onnxruntime, on models exported by skl2onnx and
//! onnxmltools from scikit-learn and XGBoost (`fixtures/onnx/models.py`, run in the ML tools'
//! Python): on the quickstart's holdout rows, every label equal to onnxruntime's and every
//! probability or value within 1e-5 (a StandardScaler pipeline and the tree ensembles included:
//! their operators are mlops' own); a model using an operator neither has, a ZipMap, a wrong
//! input width and a file that is not ONNX are refused at load, each saying what and why.

// Tests: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

#[path = "support/onnx_models.rs"]
mod onnx_models;
#[path = "support/tools.rs"]
mod tools;

use std::path::Path;

use mlops_onnx::{Kind, Model, Predictions};
use onnx_models::{expected, exported};

const WIDTH: usize = 64;

fn load(dir: &Path, name: &str) -> Result<Model, String> {
    Model::load(
        &std::fs::read(dir.join(format!("{name}.onnx"))).expect("model"),
        WIDTH,
    )
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|f| f.as_f64().expect("number") as f32)
        .collect()
}

/// Runs the holdout rows through `name` in batches of `batch` and checks them against
/// onnxruntime's answers.
fn agrees_with_onnxruntime(dir: &Path, name: &str, batch: usize) {
    let doc = expected(dir);
    let x = floats(&doc["holdout"]);
    let want = &doc["models"][name];
    let model = load(dir, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rows = x.len() / WIDTH;
    let (mut labels, mut probabilities, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in x.chunks(batch * WIDTH) {
        match model
            .predict(chunk)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        {
            Predictions::Classes {
                index,
                probabilities: p,
                classes,
            } => {
                assert_eq!(classes, model.classes().expect("classes").len());
                let names = model.classes().expect("classes");
                labels.extend(index.iter().map(|&i| names[i].clone()));
                probabilities.extend(p);
            }
            Predictions::Values(v) => values.extend(v),
        }
    }
    match &model.kind {
        Kind::Classifier { .. } => {
            let want_labels: Vec<String> = want["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .map(|l| l.as_str().expect("text").to_owned())
                .collect();
            assert_eq!(labels.len(), rows, "{name}");
            let differ = labels
                .iter()
                .zip(&want_labels)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differ, 0, "{name}: {differ} of {rows} labels differ");
            let want_p = floats(&want["probabilities"]);
            assert_eq!(probabilities.len(), want_p.len(), "{name}");
            let worst = probabilities
                .iter()
                .zip(&want_p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{name}: a probability differs by {worst}");
        }
        Kind::Regressor { .. } => {
            let want_v = floats(&want["values"]);
            assert_eq!(values.len(), rows, "{name}");
            for (i, (a, b)) in values.iter().zip(&want_v).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{name}: row {i}: {a} against {b}"
                );
            }
        }
    }
}

/// `scaled_logreg` is a StandardScaler pipeline: its `ai.onnx.ml:Scaler` is mlops' own operator.
#[test]
fn sklearn_mlps_and_linear_models_predict_as_onnxruntime_does() {
    let Some(dir) = exported() else { return };
    for name in [
        "mlp",
        "mlp_strings",
        "logreg",
        "scaled_logreg",
        "mlp_regressor",
    ] {
        // A batch size that leaves a short last batch, and one row at a time.
        agrees_with_onnxruntime(dir, name, 64);
        agrees_with_onnxruntime(dir, name, 1);
    }
    let strings = load(dir, "mlp_strings").expect("loads");
    assert_eq!(
        strings.classes().expect("classes"),
        (0..10).map(|d| format!("d{d}")).collect::<Vec<_>>()
    );
    let mlp = load(dir, "mlp").expect("loads");
    assert_eq!(mlp.input, "X");
    assert!(mlp.producer.starts_with("skl2onnx"), "{}", mlp.producer);
    assert!(
        mlp.operators.contains("ai.onnx.ml:ArrayFeatureExtractor"),
        "{:?}",
        mlp.operators
    );
}

#[test]
fn tree_ensembles_from_sklearn_and_xgboost_predict_as_onnxruntime_does() {
    let Some(dir) = exported() else { return };
    for name in [
        "gbt",
        "gbt_binary",
        "gbt_regressor",
        "rf",
        "rf_binary",
        "rf_regressor",
        "xgboost",
        "xgboost_binary",
    ] {
        agrees_with_onnxruntime(dir, name, 100);
        agrees_with_onnxruntime(dir, name, 1);
    }
}

#[test]
fn what_cannot_be_served_is_refused_at_load_and_named() {
    let Some(dir) = exported() else { return };
    // A SimpleImputer pipeline: `ai.onnx.ml:Imputer`, which neither tract nor mlops has.
    let m = load(dir, "imputed_logreg").expect_err("Imputer");
    assert!(m.contains("ai.onnx.ml:Imputer"), "{m}");
    let m = load(dir, "mlp_zipmap").expect_err("ZipMap");
    assert!(m.contains("ZipMap") && m.contains("zipmap=False"), "{m}");
    let bytes = std::fs::read(dir.join("mlp.onnx")).expect("model");
    let m = Model::load(&bytes, 63).expect_err("width");
    assert!(
        m.contains("takes 64 features") && m.contains("lists 63"),
        "{m}"
    );
    let m = Model::load(b"not a model at all", WIDTH).expect_err("not ONNX");
    assert!(m.contains("not an ONNX model"), "{m}");
    let model = load(dir, "mlp").expect("loads");
    let m = model.predict(&[0.0; 65]).expect_err("ragged");
    assert!(m.contains("65 values"), "{m}");
}
