//! A model brought as ONNX (`model.family: onnx`) through the release loop's first steps:
//! `mlops train` measures and registers it (metrics equal to those of onnxruntime's own
//! predictions on the same rows), `mlops serve` answers as onnxruntime does, `mlops holdout`
//! passes with parity on every row; a model with an operator the runtime lacks is refused by
//! `mlops train` naming it, and nothing is registered.

use std::path::Path;
use std::process::Output;

use crate::bin::{mlops, root};
use crate::onnx_models::{expected, exported};
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The quickstart with its model replaced by `model` (a file of [`exported`]) and an accuracy
/// threshold these models meet.
fn project(exported: &Path, model: &str) -> tempfile::TempDir {
    let dir = crate::quickstart::copy(|text| {
        let edited = text
            .replace(
                "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
                "  family: onnx\n  path: models/model.onnx\n",
            )
            .replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.8 }");
        assert!(edited.contains("family: onnx"), "the model section moved");
        edited
    });
    std::fs::create_dir_all(dir.path().join("models")).expect("mkdir");
    std::fs::copy(
        exported.join(format!("{model}.onnx")),
        dir.path().join("models/model.onnx"),
    )
    .expect("copy");
    dir
}

fn train(project: &Path, registry: &Path) -> Output {
    mlops()
        .args(["train", "--format", "json", "--manifest"])
        .arg(project.join("mlops.yaml"))
        .arg("--registry")
        .arg(registry)
        .output()
        .expect("runs")
}

/// An sklearn MLP, an XGBoost model and a StandardScaler pipeline: registered with their graph's classes, metrics equal
/// to onnxruntime's predictions scored on the same rows; served with every label equal to
/// onnxruntime's; holdout passes with parity on every row.
#[test]
fn onnx_models_are_registered_served_and_holdout_tested() {
    let Some(exported) = exported() else { return };
    let expected = expected(exported);
    let (_, _, truth) = crate::serve::holdout_rows();
    for name in ["mlp", "xgboost", "scaled_logreg"] {
        let project = project(exported, name);
        let registry = project.path().join("registry");
        let out = train(project.path(), &registry);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let version = registry.join("digits-mlp/1");
        assert!(version.join("model.onnx").is_file(), "{name}");
        assert!(!version.join("model.safetensors").exists(), "{name}");
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(version.join("card.json")).expect("card"))
                .expect("json");
        let onnxruntime: Vec<String> = expected["models"][name]["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|l| l.as_str().expect("text").to_owned())
            .collect();
        // The holdout accuracy of onnxruntime's own answers: what mlops must have measured.
        let right = onnxruntime
            .iter()
            .zip(&truth)
            .filter(|(a, b)| a == b)
            .count();
        let accuracy = right as f64 / truth.len() as f64;
        let recorded = card["metrics"]["holdout"]["accuracy"]
            .as_f64()
            .expect("accuracy");
        assert!(
            (recorded - accuracy).abs() < 1e-12,
            "{name}: recorded {recorded}, onnxruntime's answers score {accuracy}"
        );
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(version.join("model.json")).expect("bundle"))
                .expect("json");
        assert_eq!(bundle["architecture"]["family"], "onnx");
        assert_eq!(
            bundle["signature"]["classes"],
            serde_json::json!((0..10).map(|d| d.to_string()).collect::<Vec<_>>())
        );

        let reg = registry.to_string_lossy().into_owned();
        let server = Server::start(
            mlops(),
            &["--quiet", "--model", "digits-mlp@1", "--registry", &reg],
        );
        let rows: Vec<f32> = expected["holdout"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect();
        let instances: Vec<&[f32]> = rows.chunks(64).collect();
        let answer = crate::http::post_json(
            server.addr,
            &serde_json::json!({ "instances": instances }).to_string(),
        );
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
        let served: Vec<String> = answer.json()["predictions"]
            .as_array()
            .expect("predictions")
            .iter()
            .map(|p| p["label"].as_str().expect("label").to_owned())
            .collect();
        assert_eq!(served, onnxruntime, "{name}: served labels");

        let out = mlops()
            .args(["holdout", "--format", "json", "--model", "digits-mlp@1"])
            .arg("--manifest")
            .arg(project.path().join("mlops.yaml"))
            .arg("--registry")
            .arg(&registry)
            .args(["--endpoint", &server.url()])
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["parity"]["checked"], truth.len(), "{r}");
        assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    }
}

/// A SimpleImputer pipeline exports as `ai.onnx.ml:Imputer`, which mlops' runtime lacks:
/// `mlops train` exits 2 naming it, and the registry stays empty.
#[test]
fn an_onnx_model_the_runtime_cannot_run_is_refused_at_registration() {
    let Some(exported) = exported() else { return };
    let project = project(exported, "imputed_logreg");
    let registry = project.path().join("registry");
    let out = train(project.path(), &registry);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("ai.onnx.ml:Imputer") && said.contains("models/model.onnx"),
        "{said}"
    );
    assert!(!registry.join("digits-mlp").exists(), "nothing registered");
}

/// `mlops run` takes a model brought as ONNX through the whole local loop: every stage passes,
/// and the train stage says the model was measured, not trained.
#[test]
fn the_local_loop_runs_an_onnx_model() {
    let Some(exported) = exported() else { return };
    let project = project(exported, "scaled_logreg");
    let out = mlops()
        .current_dir(project.path())
        .args(["run", "--manifest", "mlops.yaml"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path().join(".mlops/run/run.json")).expect("run.json"),
    )
    .expect("json");
    let stages = run["stages"].as_array().expect("stages");
    assert!(
        stages.iter().all(|s| s["result"] == "ok"),
        "{}",
        text(&out.stdout)
    );
    let train = stages
        .iter()
        .find(|s| s["stage"] == "train")
        .expect("a train stage");
    assert!(
        train
            .to_string()
            .contains("ONNX model measured on cpu (tract)"),
        "{train}"
    );
    let holdout = stages
        .iter()
        .find(|s| s["stage"] == "holdout")
        .expect("a holdout stage");
    assert!(
        holdout.to_string().contains("parity 0 of 297 rows differ"),
        "{holdout}"
    );
}

/// The quickstart with `training.backend: command` running `fixtures/onnx/train.py` (a
/// SageMaker script-mode script: SM_* variables in, model.onnx out) in the ML tools' Python.
fn command_project(python: &Path) -> tempfile::TempDir {
    let command = format!(
        "  command: [{}, train.py]\n",
        serde_json::Value::String(python.display().to_string())
    );
    let dir = crate::quickstart::copy(|text| {
        let edited = text
            .replace(
                "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
                "  family: onnx\n",
            )
            .replace("  backend: local\n", &format!("  backend: command\n{command}"))
            // Nothing of mlops' trains: no epochs needed.
            .replace("  epochs: 30\n", "")
            .replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.8 }");
        assert!(
            edited.contains("backend: command"),
            "the training section moved"
        );
        edited
    });
    std::fs::copy(
        root().join("tests/fixtures/onnx/train.py"),
        dir.path().join("train.py"),
    )
    .expect("copy");
    dir
}

/// `training.backend: command`: the user's script trains under the `/opt/ml` contract and
/// `mlops run` takes its model.onnx through the whole loop; a script that fails, or writes no
/// model, stops `mlops train` (exit 2) saying so, with nothing registered.
#[test]
fn a_training_command_of_the_users_runs_under_the_opt_ml_contract() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let project = command_project(&python);
    let out = mlops()
        .current_dir(project.path())
        .args(["run", "--manifest", "mlops.yaml"])
        .output()
        .expect("runs");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    // The script's own output, in the train stage's log.
    let log = std::fs::read_to_string(project.path().join(".mlops/run/logs/train.log"))
        .expect("the train stage's log");
    assert!(
        log.contains("trained on 1500 rows") && log.contains("running the training command"),
        "{log}"
    );
    let run: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path().join(".mlops/run/run.json")).expect("run.json"),
    )
    .expect("json");
    let stages = run["stages"].as_array().expect("stages");
    assert!(stages.iter().all(|s| s["result"] == "ok"), "{said}");
    let registry = project.path().join(".mlops/registry/digits-mlp/1");
    assert!(registry.join("model.onnx").is_file(), "{said}");

    for (variable, why) in [("FAIL", "failed"), ("NOTHING", "wrote no model.onnx")] {
        let project = command_project(&python);
        let registry = project.path().join("registry");
        let out = mlops()
            .args(["train", "--manifest"])
            .arg(project.path().join("mlops.yaml"))
            .arg("--registry")
            .arg(&registry)
            .env(variable, "1")
            .output()
            .expect("runs");
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}: {said}");
        assert!(
            said.contains(why) && said.contains("train.py"),
            "{variable}: {said}"
        );
        assert!(
            !registry.join("digits-mlp").exists(),
            "{variable}: nothing registered"
        );
    }
}
