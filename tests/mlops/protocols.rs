//! `mlops holdout --protocol`: the holdout test against services that are not mlops' own
//! contract. Each protocol against `mlops serve` (which speaks them all), and the V2 and MLflow
//! protocols against the real servers: MLServer (`mlserver-sklearn`) and `mlflow models serve`,
//! each serving a scikit-learn model that gives the registered model's answers on the holdout
//! rows (a 1-nearest-neighbour model fitted to those answers), and, on MLServer, the same model
//! with a deliberately wrong scaling, which must fail.

use std::path::Path;
use std::process::{Command, Output};

use crate::bin::mlops;
use crate::server::{Foreign, Server, free_port};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn holdout(registry: &Path, endpoint: &str, protocol: &str) -> Output {
    mlops()
        .args([
            "holdout",
            "--format",
            "json",
            "--model",
            "digits-mlp@1",
            "--manifest",
            crate::quickstart::MANIFEST,
        ])
        .arg("--registry")
        .arg(registry)
        .args(["--endpoint", endpoint, "--protocol", protocol])
        .args(["--batch-size", "40", "--concurrency", "3"])
        .output()
        .expect("runs")
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// The holdout file's feature rows.
fn holdout_rows() -> Vec<Vec<f32>> {
    crate::serve::holdout_rows().1
}

/// A report that passed with every row answered and checked against the registered model.
fn passed_with_parity(out: &Output, rows: usize) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r = report(out);
    assert_eq!(r["passed"], true, "{r}");
    assert_eq!(r["rows"], rows, "{r}");
    assert_eq!(r["parity"]["checked"], rows, "{r}");
    assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    r
}

/// Every protocol against `mlops serve`: the same rows, the same answers, parity with the
/// registered model; the V2 model named by the registry or by its URL; a V2 model the service
/// does not have is a failed service (exit 3) that names the URL.
#[test]
fn holdout_speaks_each_protocol_to_mlops_serve() {
    let registry = crate::quickstart::shared();
    let reg = registry.to_string_lossy().into_owned();
    let server = Server::start(
        mlops(),
        &["--quiet", "--model", "digits-mlp@1", "--registry", &reg],
    );
    let rows = holdout_rows().len();
    for (protocol, endpoint, posted) in [
        ("mlops", server.url(), "/invocations"),
        ("sagemaker", server.url(), "/invocations"),
        ("mlflow", server.url(), "/invocations"),
        ("v2", server.url(), "/v2/models/digits-mlp/infer"),
        (
            "v2",
            format!("{}/v2/models/digits-mlp/versions/1", server.url()),
            "/v2/models/digits-mlp/versions/1/infer",
        ),
    ] {
        let out = holdout(registry, &endpoint, protocol);
        let r = passed_with_parity(&out, rows);
        assert_eq!(r["endpoint"], format!("{}{posted}", server.url()), "{r}");
        // The report says which protocol, unless it was mlops' own.
        let said = (protocol != "mlops").then_some(protocol);
        assert_eq!(r["protocol"].as_str(), said, "{r}");
    }
    // The service counted the V2 requests on their own route.
    let metrics = crate::http::get(server.addr, "/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mlops_requests_total") && l.contains("/v2/infer")),
        "{metrics}"
    );
    let out = holdout(
        registry,
        &format!("{}/v2/models/another-model", server.url()),
        "v2",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("/v2/models/another-model") && said.contains("404"),
        "{said}"
    );
}

/// Fits, in the ML tools' Python, a scikit-learn pipeline (standardisation, then one nearest
/// neighbour) to `labels` on `rows`: on those rows it answers exactly `labels`. `kind` is
/// `joblib` (MLServer's `model.joblib` in `out`), `wrong-scaling` (the same, its scaler's
/// scale multiplied by 4 after fitting) or `mlflow` (an MLflow model directory `out`).
fn fit(python: &Path, rows: &[Vec<f32>], labels: &[String], out: &Path, kind: &str) {
    const SCRIPT: &str = r#"
import json, sys
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
doc, out, kind = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
X = np.asarray(doc["rows"], dtype=np.float32)
model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1))
model.fit(X, np.asarray(doc["labels"]))
if kind == "wrong-scaling":
    model[0].scale_ = model[0].scale_ * 4
if kind == "mlflow":
    import mlflow.sklearn
    mlflow.sklearn.save_model(model, out, serialization_format="cloudpickle")
else:
    import joblib
    joblib.dump(model, out + "/model.joblib")
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.json");
    let doc = serde_json::json!({ "rows": rows, "labels": labels });
    std::fs::write(&file, doc.to_string()).expect("write");
    let done = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&file)
        .arg(out)
        .arg(kind)
        .output()
        .expect("python runs");
    assert!(done.status.success(), "{}", text(&done.stderr));
}

/// The registered model's labels for `rows`, as its service answers them.
fn served_labels(registry: &Path, rows: &[Vec<f32>]) -> Vec<String> {
    let reg = registry.to_string_lossy().into_owned();
    let server = Server::start(
        mlops(),
        &["--quiet", "--model", "digits-mlp@1", "--registry", &reg],
    );
    let rows: Vec<&Vec<f32>> = rows.iter().collect();
    crate::serve::labels_of_instances(server.addr, &rows)
}

/// The ML tools' bin directory first on PATH (MLflow starts its server by name).
fn with_tools_on_path(c: &mut Command, python: &Path) {
    let bin = python.parent().expect("bin directory").to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
        .expect("PATH");
    c.env("PATH", joined);
}

/// MLServer 1.7.1 (`mlserver-sklearn`) serving the pipeline as the registered model's name:
/// `--protocol v2` given only the base URL passes, every row equal to the registered model's
/// offline prediction. The same pipeline with its scaling multiplied by 4, served beside it and
/// named by its URL, fails: rows differ and the accuracy is not the recorded one.
#[test]
fn holdout_v2_passes_against_mlserver_and_fails_a_wrong_scaling() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let registry = crate::quickstart::shared();
    let rows = holdout_rows();
    let labels = served_labels(registry, &rows);
    let work = tempfile::tempdir().expect("tempdir");
    for (name, kind) in [("digits-mlp", "joblib"), ("wrong-scaling", "wrong-scaling")] {
        let dir = work.path().join("models").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        fit(&python, &rows, &labels, &dir, kind);
        let settings = serde_json::json!({
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": { "uri": "./model.joblib" },
        });
        std::fs::write(dir.join("model-settings.json"), settings.to_string()).expect("write");
    }
    let port = free_port();
    let settings = serde_json::json!({
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_endpoint": null,
        "parallel_workers": 0,
    });
    let models = work.path().join("models");
    std::fs::write(models.join("settings.json"), settings.to_string()).expect("write");
    let mut command = Command::new(python.with_file_name("mlserver"));
    command.arg("start").arg(&models);
    with_tools_on_path(&mut command, &python);
    let mlserver = Foreign::start(
        command,
        port,
        "/v2/models/wrong-scaling/ready",
        work.path().join("mlserver.log"),
    );
    let out = holdout(registry, &mlserver.url(), "v2");
    let r = passed_with_parity(&out, rows.len());
    assert_eq!(
        r["endpoint"],
        format!("{}/v2/models/digits-mlp/infer", mlserver.url())
    );

    let wrong = format!("{}/v2/models/wrong-scaling", mlserver.url());
    let out = holdout(registry, &wrong, "v2");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stderr),
        mlserver.log()
    );
    let r = report(&out);
    assert_eq!(r["passed"], false);
    assert_eq!(r["rows"], rows.len(), "every row answered: {r}");
    assert!(
        r["parity"]["mismatches"].as_u64().unwrap_or(0) > 0,
        "rows differ: {r}"
    );
    let accuracy = r["metrics"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["metric"] == "accuracy"))
        .expect("accuracy");
    assert_eq!(accuracy["pass"], false, "{accuracy}");
}

/// `mlflow models serve` (MLflow 3.17, in the ML tools' environment, no other environment made)
/// serving the pipeline: `--protocol mlflow` passes with parity on every row.
#[test]
fn holdout_mlflow_passes_against_mlflow_models_serve() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let registry = crate::quickstart::shared();
    let rows = holdout_rows();
    let labels = served_labels(registry, &rows);
    let work = tempfile::tempdir().expect("tempdir");
    let model = work.path().join("model");
    fit(&python, &rows, &labels, &model, "mlflow");
    let port = free_port();
    let mut command = Command::new(&python);
    command
        .args(["-m", "mlflow", "models", "serve", "--env-manager", "local"])
        .arg("-m")
        .arg(&model)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    with_tools_on_path(&mut command, &python);
    let server = Foreign::start(command, port, "/ping", work.path().join("mlflow.log"));
    let out = holdout(registry, &server.url(), "mlflow");
    let r = passed_with_parity(&out, rows.len());
    assert_eq!(r["endpoint"], format!("{}/invocations", server.url()));
    drop(server);
}
