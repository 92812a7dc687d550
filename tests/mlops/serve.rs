//! `mlops serve` and `mlops holdout` as real processes on loopback: the SageMaker inference
//! contract, request validation that names the column, limits, graceful shutdown, and the holdout
//! test passing against the registered model and failing — each named — on corrupted scaling
//! statistics, swapped predictions, an edited recorded metric, and a service that is down.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use mlops_data::data::{self, Format};
use mlops_train::predict::{Outputs, Predictor};

use crate::bin;
use crate::http;
use crate::moto;
use crate::server;
use bin::{matches_schema, mlops, root};

use server::Server;

fn manifest() -> PathBuf {
    root().join("examples/quickstart/mlops.yaml")
}

fn holdout_csv() -> PathBuf {
    root().join("examples/quickstart/data/digits-holdout.csv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A registry holding the quickstart model as `digits-mlp@1`, for a test that may change it.
fn trained() -> tempfile::TempDir {
    crate::quickstart::trained(1)
}

fn version_dir(registry: &Path) -> PathBuf {
    registry.join("digits-mlp/1")
}

fn serve_registered(registry: &Path, extra: &[&str]) -> Server {
    let reg = registry.to_string_lossy().into_owned();
    let mut args = vec!["--model", "digits-mlp@latest", "--registry", reg.as_str()];
    args.extend_from_slice(extra);
    Server::start(mlops(), &args)
}

/// `mlops holdout --format json --model digits-mlp@1` on the quickstart manifest and `registry`.
fn holdout_command(registry: &Path) -> std::process::Command {
    let mut c = mlops();
    c.args([
        "holdout",
        "--format",
        "json",
        "--model",
        "digits-mlp@1",
        "--manifest",
    ])
    .arg(manifest())
    .arg("--registry")
    .arg(registry);
    c
}

fn holdout(registry: &Path, endpoint: &str, extra: &[&str]) -> Output {
    holdout_reading(registry, endpoint, extra, (None, false))
}

/// The ways `mlops holdout` reads its dataset: on a thread of its own (parity on, or parity off
/// with more than one CPU) or between requests (parity off on one CPU).
const READINGS: [(Option<&str>, bool); 3] = [
    (None, false),
    (Some("--no-parity"), false),
    (Some("--no-parity"), true),
];

/// `c` run under `taskset -c 0` when `one_cpu`, so that it may use one CPU only.
fn on_cpus(c: std::process::Command, one_cpu: bool) -> std::process::Command {
    if !one_cpu {
        return c;
    }
    let mut t = std::process::Command::new("taskset");
    t.args(["-c", "0"]).arg(c.get_program()).args(c.get_args());
    for (name, value) in c.get_envs() {
        match value {
            Some(v) => t.env(name, v),
            None => t.env_remove(name),
        };
    }
    if let Some(dir) = c.get_current_dir() {
        t.current_dir(dir);
    }
    t
}

/// [`holdout`] for a reading of [`READINGS`].
fn holdout_reading(
    registry: &Path,
    endpoint: &str,
    extra: &[&str],
    (mode, one_cpu): (Option<&str>, bool),
) -> Output {
    let mut c = holdout_command(registry);
    c.args(["--endpoint", endpoint]).args(extra).args(mode);
    on_cpus(c, one_cpu).output().expect("runs")
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// `mlops holdout --format json` of `model` in `registry` against `url`, on the manifest's
/// holdout file or `file`: it must pass with parity on all of the quickstart's 297 rows. Its
/// report.
pub(crate) fn passes_with_parity(
    manifest: &Path,
    registry: &str,
    url: &str,
    model: &str,
    file: Option<&Path>,
) -> serde_json::Value {
    let mut c = mlops();
    c.args(["holdout", "--format", "json", "--model", model])
        .arg("--manifest")
        .arg(manifest)
        .args(["--registry", registry, "--endpoint", url]);
    if let Some(f) = file {
        c.arg("--holdout").arg(f);
    }
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["parity"]["checked"], 297, "{r}");
    assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    assert_eq!(r["passed"], true, "{r}");
    r
}

/// The holdout file's feature names, its feature rows (without the label column) and its labels.
pub(crate) fn holdout_rows() -> (Vec<String>, Vec<Vec<f32>>, Vec<String>) {
    let features: Vec<String> = (0..64).map(|i| format!("pixel_{i}")).collect();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    data::read(
        &holdout_csv(),
        "holdout",
        Format::Csv,
        &features,
        "digit",
        |r| {
            rows.push(r.features.to_vec());
            labels.push(r.label.to_owned());
            Ok(())
        },
    )
    .expect("reads");
    (features, rows, labels)
}

#[test]
fn serve_answers_the_sagemaker_contract_and_names_bad_columns() {
    let registry = trained();
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(version_dir(registry.path()).join("card.json")).expect("card"),
    )
    .expect("json");
    let artifact = card["artifact"]["sha256"]
        .as_str()
        .expect("digest")
        .to_owned();
    let mut server = serve_registered(registry.path(), &["--max-rows", "500"]);
    let a = server.addr;

    let ping = http::get(a, "/ping");
    assert_eq!(ping.status, 200);
    assert_eq!(ping.header("x-mlops-model"), Some("digits-mlp@1"));
    assert_eq!(
        ping.header("x-mlops-artifact-sha256"),
        Some(artifact.as_str())
    );
    let version = http::get(a, "/version").json();
    matches_schema("version", &version);
    assert_eq!(version["model"], "digits-mlp@1");
    assert_eq!(version["manifest_sha256"], card["manifest"]["sha256"]);
    assert_eq!(version["signature"]["features"][63], "pixel_63");

    let (features, rows, _) = holdout_rows();
    let first: Vec<&Vec<f32>> = rows.iter().take(3).collect();
    let positional = http::post_json(a, &serde_json::json!({ "instances": first }).to_string());
    assert_eq!(positional.status, 200, "{}", positional.text());
    let p = positional.json();
    assert_eq!(p["predictions"].as_array().map(Vec::len), Some(3));
    let classes = p["classes"].as_array().expect("classes").clone();
    for pred in p["predictions"].as_array().expect("rows") {
        assert!(classes.contains(&pred["label"]));
        let sum: f64 = pred["probabilities"]
            .as_array()
            .expect("probabilities")
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    }
    // The same rows as named objects (keys in reverse order) and as columns + data.
    let named: Vec<serde_json::Map<String, serde_json::Value>> = first
        .iter()
        .map(|r| {
            features
                .iter()
                .zip(r.iter())
                .rev()
                .map(|(f, v)| (f.clone(), serde_json::json!(v)))
                .collect()
        })
        .collect();
    let by_name = http::post_json(a, &serde_json::json!({ "instances": named }).to_string());
    assert_eq!(by_name.json()["predictions"], p["predictions"]);
    let split = http::post_json(
        a,
        &serde_json::json!({ "columns": features, "data": first }).to_string(),
    );
    assert_eq!(split.json()["predictions"], p["predictions"]);

    // Every holdout row in one CSV body.
    let mut csv = features.join(",");
    csv.push('\n');
    for r in &rows {
        let cells: Vec<String> = r.iter().map(f32::to_string).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    let many = http::request(a, "POST", "/invocations", Some("text/csv"), csv.as_bytes());
    assert_eq!(many.status, 200, "{}", many.text());
    let labels: Vec<String> = many.json()["predictions"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| p["label"].as_str().expect("label").to_owned())
        .collect();
    assert_eq!(labels.len(), rows.len());
    // Asked for CSV (what mlops holdout asks for): one label per line, the same labels.
    let short = http::request_with(
        a,
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv"), ("Accept", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(short.status, 200, "{}", short.text());
    assert_eq!(short.header("content-type"), Some("text/csv"));
    assert_eq!(short.text().lines().collect::<Vec<_>>(), labels);
    let unwritable = http::request_with(
        a,
        "POST",
        "/invocations",
        &[
            ("Content-Type", "text/csv"),
            ("Accept", "application/x-npy"),
        ],
        csv.as_bytes(),
    );
    assert_eq!(unwritable.status, 406, "{}", unwritable.text());
    assert!(
        unwritable.text().contains("text/csv"),
        "{}",
        unwritable.text()
    );

    // Mistakes get a 4xx naming the problem, and the server lives on.
    let mut reordered = features.clone();
    reordered.swap(3, 4);
    let bad = http::post_json(
        a,
        &serde_json::json!({ "columns": reordered, "data": [rows[0]] }).to_string(),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|m| m
                .contains("column `pixel_4` is at position 4 where the model expects `pixel_3`")),
        "{}",
        bad.text()
    );
    let missing = http::post_json(
        a,
        &serde_json::json!({ "columns": &features[1..], "data": [&rows[0][1..]] }).to_string(),
    );
    assert_eq!(missing.status, 400);
    assert!(
        missing.text().contains("column `pixel_0` is missing"),
        "{}",
        missing.text()
    );
    let broken = http::post_json(a, r#"{"instances": [[1, 2"#);
    assert_eq!(broken.status, 400);
    let wrong_type = http::request(a, "POST", "/invocations", Some("text/plain"), b"1,2");
    assert_eq!(wrong_type.status, 415);
    let too_many: Vec<&Vec<f32>> = rows.iter().cycle().take(501).collect();
    let over = http::post_json(a, &serde_json::json!({ "instances": too_many }).to_string());
    assert_eq!(over.status, 413, "{}", over.text());
    assert_eq!(http::get(a, "/nothing").status, 404);
    let wrong = http::get(a, "/invocations");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    assert!(
        wrong.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("/invocations does not answer GET;")),
        "{}",
        wrong.text()
    );
    let wrong = http::request(a, "DELETE", "/ping", None, b"");
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (405, Some("GET,HEAD"))
    );
    assert_eq!(http::get(a, "/ping").status, 200);

    let metrics = http::get(a, "/metrics").text();
    assert!(
        metrics.contains("mlops_requests_total{route=\"/invocations\",status=\"400\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "mlops_rows_predicted_total {}",
            9 + 2 * rows.len()
        )),
        "{metrics}"
    );

    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let log = server.log();
    assert!(log.contains("POST /invocations 200 3 rows"), "{log}");
    assert!(log.contains("POST /invocations 413"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

/// The labels `/invocations` answers for `rows` sent as `{"instances": ...}`.
pub(crate) fn labels_of_instances(a: std::net::SocketAddr, rows: &[&Vec<f32>]) -> Vec<String> {
    let answer = http::post_json(a, &serde_json::json!({ "instances": rows }).to_string());
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["predictions"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| p["label"].as_str().expect("label").to_owned())
        .collect()
}

/// Runs a client `script` with `python`, given the service's address and a file holding `doc`;
/// the JSON document it prints.
fn python_client(
    python: &Path,
    script: &str,
    a: std::net::SocketAddr,
    doc: &serde_json::Value,
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(a.to_string())
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The SageMaker Python SDK's own serializers and deserializers against `mlops serve`, as a
/// SageMaker user calls an endpoint: `CSVSerializer` (no header line) and `JSONSerializer` (a
/// bare array) for many rows and for one, answers read by `CSVDeserializer` and
/// `JSONDeserializer`. Every answer's labels equal those of the same rows sent as `instances`.
#[test]
fn serve_takes_what_the_sagemaker_sdk_sends() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let registry = trained();
    let mut server = serve_registered(registry.path(), &[]);
    let a = server.addr;
    let (_, rows, _) = holdout_rows();
    let first: Vec<&Vec<f32>> = rows.iter().take(25).collect();
    let want = labels_of_instances(a, &first);
    assert_eq!(want.len(), 25);
    let script = r#"
import io, json, sys
import numpy as np
import requests
from sagemaker.core.serializers import CSVSerializer, JSONSerializer
from sagemaker.core.deserializers import CSVDeserializer, JSONDeserializer

url = "http://" + sys.argv[1] + "/invocations"
rows = np.array(json.load(open(sys.argv[2])), dtype=np.float32)

def call(serializer, deserializer, data):
    body = serializer.serialize(data)
    r = requests.post(url, data=body, headers={
        "Content-Type": serializer.CONTENT_TYPE, "Accept": deserializer.ACCEPT[0]})
    if r.status_code != 200:
        sys.exit(f"{serializer.CONTENT_TYPE} {body[:80]!r}: {r.status_code} {r.text}")
    return body, deserializer.deserialize(io.BytesIO(r.content), r.headers["Content-Type"])

out = {}
for name, data in [("many", rows), ("one", rows[0])]:
    body, got = call(CSVSerializer(), CSVDeserializer(), data)
    out["csv_" + name] = {"body": body, "labels": [line[0] for line in got]}
    body, got = call(JSONSerializer(), JSONDeserializer(), data)
    out["json_" + name] = {"body": body, "labels": [p["label"] for p in got["predictions"]]}
print(json.dumps(out))
"#;
    let got = python_client(&python, script, a, &serde_json::json!(first));
    let labels = |case: &str| -> Vec<String> {
        got[case]["labels"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {got}"))
            .iter()
            .map(|l| l.as_str().expect("label").to_owned())
            .collect()
    };
    // What the SDK sent: no header line, and bare arrays.
    let csv_body = got["csv_many"]["body"].as_str().expect("body");
    assert!(
        csv_body.starts_with(|c: char| c.is_ascii_digit()),
        "{csv_body}"
    );
    assert_eq!(csv_body.lines().count(), 25);
    assert!(
        got["json_many"]["body"]
            .as_str()
            .expect("body")
            .starts_with("[[")
    );
    assert!(
        got["json_one"]["body"]
            .as_str()
            .expect("body")
            .starts_with("[0")
    );
    assert_eq!(labels("csv_many"), want);
    assert_eq!(labels("json_many"), want);
    assert_eq!(labels("csv_one"), want[..1]);
    assert_eq!(labels("json_one"), want[..1]);
    server.stop();
}

/// The Open Inference Protocol's REST routes beside SageMaker's: health, metadata, and infer
/// with one `[rows, 64]` tensor or one tensor per feature, answering the labels and
/// probabilities `/invocations` answers for the same rows.
#[test]
fn serve_answers_the_open_inference_protocol() {
    let registry = trained();
    let mut server = serve_registered(registry.path(), &[]);
    let a = server.addr;
    let (features, rows, _) = holdout_rows();
    let first: Vec<&Vec<f32>> = rows.iter().take(25).collect();
    let sagemaker = http::post_json(a, &serde_json::json!({ "instances": first }).to_string());
    assert_eq!(sagemaker.status, 200, "{}", sagemaker.text());
    let sagemaker = sagemaker.json();
    let labels: Vec<serde_json::Value> = sagemaker["predictions"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| p["label"].clone())
        .collect();
    let probabilities: Vec<serde_json::Value> = sagemaker["predictions"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|p| p["probabilities"].as_array().expect("p").clone())
        .collect();

    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/digits-mlp/ready",
    ] {
        assert_eq!(http::get(a, path).status, 200, "{path}");
    }
    assert_eq!(http::get(a, "/v2").json()["name"], "mlops");
    let meta = http::get(a, "/v2/models/digits-mlp/versions/1").json();
    assert_eq!(meta["name"], "digits-mlp");
    assert_eq!(meta["versions"], serde_json::json!(["1"]));
    assert_eq!(meta["inputs"][0]["shape"], serde_json::json!([-1, 64]));
    assert_eq!(meta["outputs"][1]["name"], "predict_proba");
    assert_eq!(meta["parameters"]["features"][63], "pixel_63");
    let other = http::get(a, "/v2/models/another/ready");
    assert_eq!(other.status, 404);
    assert!(
        other.text().contains("model `another` is not served here"),
        "{}",
        other.text()
    );
    let old = http::get(a, "/v2/models/digits-mlp/versions/2");
    assert_eq!(old.status, 404);
    assert!(old.text().contains("serves version `1`"), "{}", old.text());

    let infer = |body: serde_json::Value| {
        http::request(
            a,
            "POST",
            "/v2/models/digits-mlp/infer",
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    };
    let flat: Vec<f32> = first.iter().flat_map(|r| r.iter().copied()).collect();
    let matrix = infer(serde_json::json!({
        "id": "batch-1",
        "inputs": [{"name": "input-0", "shape": [25, 64], "datatype": "FP32", "data": flat}],
    }));
    assert_eq!(matrix.status, 200, "{}", matrix.text());
    let m = matrix.json();
    assert_eq!(m["model_name"], "digits-mlp");
    assert_eq!(m["model_version"], "1");
    assert_eq!(m["id"], "batch-1");
    assert_eq!(m["outputs"][0]["name"], "predict");
    assert_eq!(m["outputs"][0]["datatype"], "BYTES");
    assert_eq!(
        m["outputs"][0]["data"],
        serde_json::Value::Array(labels.clone())
    );
    assert_eq!(m["outputs"][1]["shape"], serde_json::json!([25, 10]));
    assert_eq!(
        m["outputs"][1]["data"],
        serde_json::Value::Array(probabilities)
    );
    // One tensor per feature, as MLServer's pandas codec sends a data frame.
    let columns: Vec<serde_json::Value> = features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let column: Vec<f32> = first.iter().map(|r| r[j]).collect();
            serde_json::json!({"name": f, "shape": [25, 1], "datatype": "FP64", "data": column})
        })
        .collect();
    let by_column = infer(serde_json::json!({
        "inputs": columns,
        "outputs": [{"name": "predict"}],
    }));
    assert_eq!(by_column.status, 200, "{}", by_column.text());
    let c = by_column.json();
    assert_eq!(c["outputs"].as_array().map(Vec::len), Some(1));
    assert_eq!(c["outputs"][0]["data"], serde_json::Value::Array(labels));
    let wrong = infer(serde_json::json!({
        "inputs": [{"name": "input-0", "shape": [1, 63], "datatype": "FP32", "data": vec![0.0; 63]}],
    }));
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.text().contains("the model takes [rows, 64]"),
        "{}",
        wrong.text()
    );
    let metrics = http::get(a, "/metrics").text();
    assert!(
        metrics.contains("mlops_requests_total{route=\"/v2/infer\",status=\"200\"} 2"),
        "{metrics}"
    );
    server.stop();
}

/// MLServer's own request codecs (a NumPy array, and a pandas data frame: one tensor per
/// column) against `mlops serve`'s V2 routes, the answers read back with MLServer's response type
/// and codecs: the same labels as `/invocations`, probabilities that sum to one.
#[test]
fn serve_takes_what_mlservers_codecs_send() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let registry = trained();
    let mut server = serve_registered(registry.path(), &[]);
    let a = server.addr;
    let (features, rows, _) = holdout_rows();
    let first: Vec<&Vec<f32>> = rows.iter().take(25).collect();
    let want = labels_of_instances(a, &first);
    let script = r#"
import json, sys
import numpy as np
import pandas as pd
import requests
from mlserver.codecs import NumpyCodec, NumpyRequestCodec, PandasCodec, StringCodec
from mlserver.types import InferenceResponse

url = "http://" + sys.argv[1] + "/v2/models/digits-mlp/infer"
doc = json.load(open(sys.argv[2]))
rows = np.array(doc["rows"], dtype=np.float32)
out = {}
for name, request in [
    ("numpy", NumpyRequestCodec.encode_request(rows)),
    ("pandas", PandasCodec.encode_request(pd.DataFrame(rows, columns=doc["features"]))),
]:
    r = requests.post(url, data=request.model_dump_json(exclude_none=True),
                      headers={"Content-Type": "application/json"})
    if r.status_code != 200:
        sys.exit(f"{name}: {r.status_code} {r.text}")
    response = InferenceResponse.model_validate_json(r.text)
    by_name = {o.name: o for o in response.outputs}
    proba = NumpyCodec.decode_output(by_name["predict_proba"])
    out[name] = {
        "labels": list(StringCodec.decode_output(by_name["predict"])),
        "shape": list(proba.shape),
        "sums": [float(s) for s in proba.sum(axis=1)],
    }
print(json.dumps(out))
"#;
    let doc = serde_json::json!({ "features": features, "rows": first });
    let got = python_client(&python, script, a, &doc);
    for case in ["numpy", "pandas"] {
        let labels: Vec<String> = got[case]["labels"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {got}"))
            .iter()
            .map(|l| l.as_str().expect("label").to_owned())
            .collect();
        assert_eq!(labels, want, "{case}");
        assert_eq!(got[case]["shape"], serde_json::json!([25, 10]), "{case}");
        for sum in got[case]["sums"].as_array().expect("sums") {
            let sum = sum.as_f64().expect("a number");
            assert!((sum - 1.0).abs() < 1e-4, "{case}: {sum}");
        }
    }
    server.stop();
}

#[test]
fn a_body_over_the_limit_is_refused_before_it_is_parsed() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--max-body-bytes", "2000"]);
    let big = format!(r#"{{"instances": [[{}]]}}"#, vec!["0.5"; 2000].join(","));
    let r = http::post_json(server.addr, &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("limit of 2000 bytes"), "{}", r.text());
}

#[test]
fn serve_refuses_an_artifact_changed_after_registration() {
    let registry = trained();
    let bundle = version_dir(registry.path()).join("model.json");
    let original = std::fs::read_to_string(&bundle).expect("bundle");
    let mut doc: serde_json::Value = serde_json::from_str(&original).expect("json");
    doc["standardizer"]["mean"][10] = serde_json::json!(3.0);
    std::fs::write(&bundle, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let out = mlops()
        .args([
            "serve",
            "--model",
            "digits-mlp@1",
            "--port",
            "0",
            "--registry",
        ])
        .arg(registry.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not the one registered: model.json has SHA-256"),
        "{err}"
    );
    // The version directory as an artifact: its card.json is checked too.
    let out = mlops()
        .args(["serve", "--port", "0", "--artifact"])
        .arg(version_dir(registry.path()))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("but its card.json says"));
}

#[test]
fn holdout_passes_against_the_registered_model_and_writes_its_report_and_summary() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    let work = tempfile::tempdir().expect("tempdir");
    let (output, summary) = (work.path().join("output"), work.path().join("summary"));
    let file = work.path().join("report.json");
    let out = mlops()
        .args(["holdout", "--model", "digits-mlp@1", "--manifest"])
        .arg(manifest())
        .arg("--registry")
        .arg(registry.path())
        .args([
            "--endpoint",
            &server.url(),
            "--batch-size",
            "50",
            "--concurrency",
            "3",
            "--report",
        ])
        .arg(&file)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("report")).expect("json");
    let (_, rows, _) = holdout_rows();
    assert_eq!(r["passed"], true);
    assert_eq!(r["rows"], rows.len());
    assert_eq!(r["requests"], rows.len().div_ceil(50));
    assert_eq!(r["parity"]["checked"], rows.len());
    assert_eq!(r["parity"]["mismatches"], 0);
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(version_dir(registry.path()).join("card.json")).expect("card"),
    )
    .expect("json");
    for check in r["metrics"].as_array().expect("checks") {
        let name = check["metric"].as_str().expect("name");
        assert_eq!(
            check["expected"], card["metrics"]["holdout"][name],
            "{name}"
        );
        assert_eq!(check["observed"], check["expected"], "{name}");
    }
    let matrix = r["confusion"]["matrix"].as_array().expect("matrix");
    let total: u64 = matrix
        .iter()
        .flat_map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .filter_map(serde_json::Value::as_u64)
        })
        .sum();
    assert_eq!(total as usize, rows.len());
    // The manifest's holdout set is the one the registry entry's metrics were measured on.
    assert_eq!(
        r["dataset"]["sha256"],
        card["datasets"]["holdout"]["sha256"]
    );
    assert_eq!(r["recorded_dataset"], card["datasets"]["holdout"]);
    assert_eq!(r["warnings"], serde_json::json!([]));
    let outputs = std::fs::read_to_string(&output).expect("outputs");
    assert!(
        outputs.contains("passed<<") && outputs.contains("\ntrue\n"),
        "{outputs}"
    );
    let md = std::fs::read_to_string(&summary).expect("summary");
    assert!(
        md.contains("| accuracy |")
            && md.contains("Confusion matrix")
            && md.contains("xychart-beta"),
        "{md}"
    );
}

/// The holdout file rewritten the way other tools write CSV: the label first, the features in
/// another order than the model's, CRLF line ends, whitespace, quotes and exponents, and one
/// column the model does not use.
fn odd_holdout_text() -> String {
    let (features, rows, labels) = holdout_rows();
    let order: Vec<usize> = (0..features.len()).rev().collect();
    let mut out = String::from("\"digit\",note,");
    out.push_str(
        &order
            .iter()
            .map(|&j| features[j].as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for (i, (row, label)) in rows.iter().zip(&labels).enumerate() {
        let fields: Vec<String> = order
            .iter()
            .map(|&j| match (i + j) % 4 {
                0 => format!(" {} ", row[j]),
                1 => format!("\"{}\"", row[j]),
                2 => format!("{:e}", row[j]),
                _ => row[j].to_string(),
            })
            .collect();
        out.push_str(&format!("{label},\"a, b\",{}\r\n", fields.join(",")));
    }
    out
}

#[test]
fn holdout_reads_csv_as_other_tools_write_it() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("odd.csv");
    std::fs::write(&file, odd_holdout_text()).expect("write");
    let (_, rows, _) = holdout_rows();
    for parity in [true, false] {
        let mut extra = vec!["--holdout", file.to_str().expect("utf-8")];
        if !parity {
            extra.push("--no-parity");
        }
        let out = holdout(registry.path(), &server.url(), &extra);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let r = report(&out);
        assert_eq!(r["rows"], rows.len());
        assert_eq!(r["parity"]["checked"], if parity { rows.len() } else { 0 });
        assert_eq!(r["parity"]["mismatches"], 0);
        for check in r["metrics"].as_array().expect("checks") {
            assert_eq!(check["observed"], check["expected"], "{check}");
        }
        // The same rows in other bytes: not the file the metrics were recorded on, which the
        // report says without failing.
        matches_schema("holdout-report", &r);
        let warning = r["warnings"][0].as_str().expect("a warning");
        assert!(
            warning.contains("odd.csv") && warning.contains("is not the holdout set"),
            "{warning}"
        );
        assert!(
            text(&out.stderr).contains("warning: "),
            "{}",
            text(&out.stderr)
        );
    }
    // A field that is no number stops the test before it is sent, at its line, either way.
    let broken = odd_holdout_text().replacen("\r\n5,\"a, b\",", "\r\n5,\"a, b\",oops", 1);
    let line = broken[..broken.find("oops").expect("edited")]
        .matches('\n')
        .count()
        + 1;
    std::fs::write(&file, broken).expect("write");
    for reading in READINGS {
        let args = ["--holdout", file.to_str().expect("utf-8")];
        let out = holdout_reading(registry.path(), &server.url(), &args, reading);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("odd.csv:{line}:")), "{err}");
        assert!(err.contains("not a number"), "{err}");
    }
}

#[test]
fn holdout_fails_on_corrupted_scaling_statistics() {
    let registry = trained();
    // The deployed artifact's saved standardisation differs from the registered one's.
    let deployed = tempfile::tempdir().expect("tempdir");
    for f in ["model.json", "model.safetensors"] {
        std::fs::copy(
            version_dir(registry.path()).join(f),
            deployed.path().join(f),
        )
        .expect("copy");
    }
    let path = deployed.path().join("model.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("bundle")).expect("json");
    for s in doc["standardizer"]["std"].as_array_mut().expect("std") {
        *s = serde_json::json!(s.as_f64().unwrap_or(1.0) * 4.0);
    }
    std::fs::write(&path, doc.to_string()).expect("write");
    let server = Server::start(
        mlops(),
        &["--quiet", "--artifact", &deployed.path().to_string_lossy()],
    );
    let out = holdout(registry.path(), &server.url(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["passed"], false);
    assert!(r["parity"]["mismatches"].as_u64().unwrap_or(0) > 0, "{r}");
    let accuracy = r["metrics"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["metric"] == "accuracy"))
        .expect("accuracy");
    assert_eq!(accuracy["pass"], false, "{accuracy}");
    assert!(
        r["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("the service serves the artifact with SHA-256")),
        "{r}"
    );
}

#[test]
fn holdout_fails_on_swapped_predictions_that_leave_the_metrics_unchanged() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    // Two rows of the same class, one the model gets right and one it gets wrong: swapping
    // their answers keeps every count of the confusion matrix, so only parity can notice.
    let predictor = Predictor::from_dir(&version_dir(registry.path())).expect("loads");
    let (_, rows, labels) = holdout_rows();
    let x: Vec<f32> = rows.concat();
    let Outputs::Classes { index, .. } = predictor.predict(&x).expect("predicts") else {
        panic!("classification");
    };
    let classes = predictor.bundle.signature.classes.clone().expect("classes");
    let wrong = (0..rows.len())
        .find(|&i| classes[index[i]] != labels[i])
        .expect("the quickstart model misses some holdout row");
    let right = (0..rows.len())
        .find(|&j| labels[j] == labels[wrong] && classes[index[j]] == labels[j])
        .expect("another row of that class");
    let proxy = http::Proxy::start(
        server.addr,
        Box::new(move |_, path, status, body| {
            if path != "/invocations" || status != 200 {
                return (status, body);
            }
            // The holdout asks for CSV answers: one label per line.
            let text = String::from_utf8(body).expect("utf-8");
            let mut labels: Vec<&str> = text.lines().collect();
            labels.swap(wrong, right);
            (status, (labels.join("\n") + "\n").into_bytes())
        }),
    );
    let out = holdout(
        registry.path(),
        &format!("http://{}", proxy.addr),
        &["--batch-size", "1000"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = report(&out);
    assert!(
        r["metrics"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["pass"] == true),
        "the metrics should not notice: {r}"
    );
    assert_eq!(r["parity"]["mismatches"], 2, "{r}");
    let lines: Vec<u64> = r["parity"]["first"]
        .as_array()
        .expect("first")
        .iter()
        .filter_map(|m| m["line"].as_u64())
        .collect();
    // Line 1 is the header: row i is on line i + 2.
    let mut want = vec![wrong as u64 + 2, right as u64 + 2];
    want.sort_unstable();
    assert_eq!(lines, want);
}

#[test]
fn predictions_on_a_thread_of_its_own_equal_those_of_the_shared_pool() {
    // The service and the parity check predict with rayon's loops kept on the calling thread;
    // training's offline scoring uses the shared pool. The two must agree bit for bit, on a batch
    // that burn splits (its softmax hands out 64 rows a task).
    let registry = trained();
    let predictor = Arc::new(Predictor::from_dir(&version_dir(registry.path())).expect("loads"));
    let (_, rows, _) = holdout_rows();
    let x: Arc<Vec<f32>> = Arc::new(rows.concat().repeat(8));
    let on = |own: bool| {
        let (predictor, x) = (predictor.clone(), x.clone());
        std::thread::spawn(move || {
            if own {
                mlops_train::predict::keep_parallel_loops_on_this_thread();
            }
            match predictor.predict(&x).expect("predicts") {
                Outputs::Classes {
                    index,
                    probabilities,
                    ..
                } => (index, probabilities.iter().map(|p| p.to_bits()).collect()),
                Outputs::Values(_) => panic!("classification"),
            }
        })
        .join()
        .expect("joins")
    };
    let (shared, own): ((Vec<usize>, Vec<u32>), _) = (on(false), on(true));
    assert_eq!(shared.0.len(), rows.len() * 8);
    assert_eq!(shared, own);
}

#[test]
fn holdout_names_a_recorded_metric_that_was_edited() {
    let registry = trained();
    let card_path = version_dir(registry.path()).join("card.json");
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&card_path).expect("card")).expect("json");
    card["metrics"]["holdout"]["f1_macro"] = serde_json::json!(0.5);
    std::fs::write(&card_path, card.to_string()).expect("write");
    let server = serve_registered(registry.path(), &["--quiet"]);
    let out = mlops()
        .args(["holdout", "--model", "digits-mlp@1", "--manifest"])
        .arg(manifest())
        .arg("--registry")
        .arg(registry.path())
        .args(["--endpoint", &server.url()])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("FAIL f1_macro: the service scores"),
        "{shown}"
    );
    assert!(shown.contains("training recorded 0.500000"), "{shown}");
    assert!(!shown.contains("FAIL accuracy"), "{shown}");
}

#[test]
fn holdout_retries_a_flaky_service_and_reports_one_that_is_down() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    // 503 for the first two calls to /invocations, then the real answers.
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = calls.clone();
    let proxy = http::Proxy::start(
        server.addr,
        Box::new(move |_, path, status, body| {
            if path == "/invocations" && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
            {
                return (503, br#"{"error": "warming up"}"#.to_vec());
            }
            (status, body)
        }),
    );
    for reading in READINGS {
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let args = ["--retries", "3", "--concurrency", "1"];
        let endpoint = format!("http://{}", proxy.addr);
        let out = holdout_reading(registry.path(), &endpoint, &args, reading);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(report(&out)["retries"], 2, "{reading:?}");
    }

    // Nothing listens on this port.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    for reading in READINGS {
        let endpoint = format!("http://{free}");
        let out = holdout_reading(registry.path(), &endpoint, &["--retries", "1"], reading);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("failed 2 times"), "{err}");
        assert!(err.contains("is the service at"), "{err}");
    }
}

#[test]
fn holdout_stops_at_a_service_that_answers_fewer_predictions_than_rows() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    // Mode 0 drops the last prediction of every answer; mode 1 answers nothing at all.
    let mode = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let m = mode.clone();
    let proxy = http::Proxy::start(
        server.addr,
        Box::new(move |_, path, status, body| {
            if path != "/invocations" || status != 200 {
                return (status, body);
            }
            match m.load(std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    let text = String::from_utf8(body).expect("utf-8");
                    let lines: Vec<&str> = text.lines().collect();
                    let kept = lines[..lines.len() - 1].join("\n") + "\n";
                    (status, kept.into_bytes())
                }
                _ => (status, Vec::new()),
            }
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.json");
    for (m, said) in [(0, 99), (1, 0)] {
        mode.store(m, std::sync::atomic::Ordering::SeqCst);
        let out = holdout(
            registry.path(),
            &format!("http://{}", proxy.addr),
            &["--batch-size", "100", "--report", &file.to_string_lossy()],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        // Answers are scored in the order sent: the first batch is lines 2-101.
        assert!(
            err.contains(&format!(
                "the service answered {said} predictions for 100 rows (lines 2-101)"
            )),
            "{err}"
        );
        assert!(err.contains("not with one prediction per row"), "{err}");
        assert!(
            !file.exists(),
            "no report is written for a run that did not finish"
        );
    }
}

/// The rendered model image's entrypoint (`container/Dockerfile`), as argv; checked to start the
/// binary the Dockerfile copies in.
fn image_entrypoint() -> Vec<String> {
    let report = mlops_manifest::check_file(&manifest()).expect("readable");
    let m = report.manifest.expect("a valid manifest");
    let files = mlops_render::render(&m, "examples/quickstart/mlops.yaml", &Default::default())
        .expect("renders");
    let dockerfile = files.get("container/Dockerfile").expect("a Dockerfile");
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(line).expect("the exec form");
    let copied = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY "))
        .expect("the binary is copied in");
    assert!(copied.ends_with(&format!(" {}", argv[0])), "{copied}");
    argv
}

/// The model image's entrypoint, started as SageMaker starts it (`serve` appended), serves
/// `<base>/model` on every interface, on the port SageMaker names in `SAGEMAKER_BIND_TO_PORT`,
/// verifying the card beside the artifact.
#[test]
fn the_container_entrypoint_serves_the_model_directory() {
    let registry = trained();
    let base = tempfile::tempdir().expect("tempdir");
    let model = base.path().join("model");
    std::fs::create_dir_all(&model).expect("mkdir");
    for f in ["model.json", "model.safetensors", "card.json"] {
        std::fs::copy(version_dir(registry.path()).join(f), model.join(f)).expect("copy");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let argv = image_entrypoint();
    let mut c = mlops();
    c.args(&argv[1..])
        .arg("serve")
        .env("MLOPS_CONTAINER_BASE", base.path())
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        // The service's limits come from the container's environment.
        .env("MLOPS_MAX_BODY_BYTES", "5000");
    let mut server = Server::spawn(c);
    assert!(
        server.log().contains(&format!("on http://0.0.0.0:{port}")),
        "{}",
        server.log()
    );
    let local: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let ping = http::get(local, "/ping");
    assert_eq!(ping.status, 200);
    assert_eq!(ping.header("x-mlops-model"), Some("digits-mlp@1"));
    let version = http::get(local, "/version").json();
    assert_eq!(version["limits"]["max_body_bytes"], 5000, "{version}");
    let big = format!(r#"{{"instances": [[{}]]}}"#, vec!["0.5"; 3000].join(","));
    assert_eq!(http::post_json(local, &big).status, 413);
    assert!(server.stop().success());

    // A model directory changed after registration is refused.
    let bundle = model.join("model.json");
    let text = std::fs::read_to_string(&bundle).expect("bundle");
    std::fs::write(&bundle, text.replacen("\"std\"", "\"std\" ", 1)).expect("write");
    let out = mlops()
        .args(["container", "serve"])
        .env("MLOPS_CONTAINER_BASE", base.path())
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
}

fn text_of(out: &Output) -> String {
    text(&out.stdout) + &text(&out.stderr)
}

/// `--sagemaker-endpoint`: the batches go through InvokeEndpoint (moto standing in for SageMaker,
/// answering in order what the test queued: the real model's answers to those batches), and the
/// holdout passes with parity on every row. With SageMaker unreachable, the retries run out and
/// the exit is 3.
#[test]
fn holdout_through_a_sagemaker_endpoint() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let registry = trained();
    let predictor = Predictor::from_dir(&version_dir(registry.path())).expect("loads");
    let classes = predictor.bundle.signature.classes.clone();
    let (_, rows, _) = holdout_rows();
    let results: Vec<serde_json::Value> = rows
        .chunks(100)
        .map(|batch| {
            let outputs = predictor.predict(&batch.concat()).expect("predicts");
            let body = mlops_serve::server::render("digits-mlp@1", classes.as_deref(), &outputs);
            serde_json::json!({
                "Body": String::from_utf8(body).expect("utf-8"),
                "ContentType": "application/json",
            })
        })
        .collect();
    let queue = serde_json::json!({ "region": "us-east-1", "results": results });
    let (status, answer) = moto.http(
        "POST",
        "/moto-api/static/sagemaker/endpoint-results",
        queue.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    // The endpoint, its configuration and its model, which records the artifact's digest as
    // `mlops deploy` does.
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(version_dir(registry.path()).join("card.json")).expect("card"),
    )
    .expect("json");
    let sha = card["artifact"]["sha256"]
        .as_str()
        .expect("digest")
        .to_owned();
    let sm = |op: &str, body: serde_json::Value| {
        let (status, answer) =
            moto.json("sagemaker", &format!("SageMaker.{op}"), &body.to_string());
        assert_eq!(status, 200, "{op}: {answer}");
    };
    let model = |name: &str, env: serde_json::Value| {
        sm(
            "CreateModel",
            serde_json::json!({
                "ModelName": name,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/digits-sagemaker-execution",
                "PrimaryContainer": {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops@sha256:ab",
                    "Environment": env,
                },
            }),
        );
    };
    let endpoint = |name: &str, model: &str| {
        sm(
            "CreateEndpointConfig",
            serde_json::json!({
                "EndpointConfigName": format!("{name}-config"),
                "ProductionVariants": [{
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }],
            }),
        );
        sm(
            "CreateEndpoint",
            serde_json::json!({"EndpointName": name, "EndpointConfigName": format!("{name}-config")}),
        );
    };
    model(
        "digits-1",
        serde_json::json!({ "MLOPS_ARTIFACT_SHA256": sha }),
    );
    endpoint("digits-staging", "digits-1");
    let mut c = holdout_command(registry.path());
    c.args([
        "--sagemaker-endpoint",
        "digits-staging",
        "--batch-size",
        "100",
    ])
    .args(["--concurrency", "1"]);
    moto.env(&mut c);
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let r = report(&out);
    assert_eq!(r["endpoint"], "sagemaker:digits-staging");
    assert_eq!(r["requests"], 3);
    assert_eq!(r["parity"]["checked"], rows.len());
    assert_eq!(r["passed"], true);

    // An endpoint whose model holds another artifact, or does not say which: the predictions
    // may agree, but the test does not pass for a model it cannot show is the one served.
    model(
        "digits-other",
        serde_json::json!({ "MLOPS_ARTIFACT_SHA256": "0".repeat(64) }),
    );
    endpoint("digits-other", "digits-other");
    model("digits-unsaid", serde_json::json!({}));
    endpoint("digits-unsaid", "digits-unsaid");
    for (name, says) in [
        ("digits-other", "with artifact SHA-256 0000"),
        ("digits-unsaid", "no MLOPS_ARTIFACT_SHA256"),
        ("digits-missing", "does not exist"),
    ] {
        let (status, answer) = moto.http(
            "POST",
            "/moto-api/static/sagemaker/endpoint-results",
            queue.to_string().as_bytes(),
        );
        assert_eq!(status, 201, "{answer}");
        let mut c = holdout_command(registry.path());
        c.args(["--sagemaker-endpoint", name, "--batch-size", "100"])
            .args(["--concurrency", "1"]);
        moto.env(&mut c);
        let out = c.output().expect("runs");
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text_of(&out));
        let r = report(&out);
        assert_eq!(r["passed"], false, "{name}");
        assert!(r.to_string().contains(says), "{name}: {r}");
    }

    let mut c = mlops();
    c.args(["holdout", "--model", "digits-mlp@1", "--manifest"])
        .arg(manifest())
        .arg("--registry")
        .arg(registry.path())
        .args(["--sagemaker-endpoint", "digits-staging", "--retries", "1"]);
    moto::aws_env(&mut c, &format!("http://127.0.0.1:{}", moto::free_port()));
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text_of(&out));
    assert!(
        text(&out.stderr).contains("sagemaker:digits-staging failed 2 times"),
        "{}",
        text_of(&out)
    );
}

/// A staging endpoint that serves with an image of the user's (`environments.staging.sagemaker
/// .image`) is tested on its metrics only: its answers (here the model's, one row changed, as
/// another server's rounding might) are not compared row by row, the report says why, and the
/// metrics pass within the manifest's tolerances. The same answers from an endpoint of the
/// model image fail on parity, naming the row.
#[test]
fn an_endpoint_with_its_own_serving_image_is_tested_on_metrics_only() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let registry = trained();
    let predictor = Predictor::from_dir(&version_dir(registry.path())).expect("loads");
    let classes = predictor.bundle.signature.classes.clone().expect("classes");
    let (_, rows, _) = holdout_rows();
    let mut outputs = predictor.predict(&rows.concat()).expect("predicts");
    // Another server's answer to the first row: the next class.
    let Outputs::Classes { index, .. } = &mut outputs else {
        panic!("a classifier");
    };
    index[0] = (index[0] + 1) % classes.len();
    let body = mlops_serve::server::render("digits-mlp@1", Some(&classes), &outputs);
    let queue = serde_json::json!({
        "region": "us-east-1",
        "results": [{ "Body": String::from_utf8(body).expect("utf-8"), "ContentType": "application/json" }],
    })
    .to_string();
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(version_dir(registry.path()).join("card.json")).expect("card"),
    )
    .expect("json");
    let sha = card["artifact"]["sha256"].as_str().expect("digest");
    let sm = |op: &str, body: serde_json::Value| {
        let (status, answer) =
            moto.json("sagemaker", &format!("SageMaker.{op}"), &body.to_string());
        assert_eq!(status, 200, "{op}: {answer}");
    };
    for name in ["digits-staging", "digits-plain"] {
        sm(
            "CreateModel",
            serde_json::json!({
                "ModelName": name,
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/digits-sagemaker-execution",
                "PrimaryContainer": {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/serving@sha256:ab",
                    "Environment": { "MLOPS_ARTIFACT_SHA256": sha },
                },
            }),
        );
        sm(
            "CreateEndpointConfig",
            serde_json::json!({
                "EndpointConfigName": name,
                "ProductionVariants": [{
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }],
            }),
        );
        sm(
            "CreateEndpoint",
            serde_json::json!({"EndpointName": name, "EndpointConfigName": name}),
        );
    }
    let image = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/serving@sha256:{}",
        "ab".repeat(32)
    );
    let project = crate::quickstart::copy(|yaml| {
        let edited = yaml
            .replace(
                "  staging:\n    url: http://127.0.0.1:8080\n    pin_file: deploy/staging.yaml\n",
                &format!(
                    "  staging:\n    sagemaker:\n      endpoint_name: digits-staging\n      image: {image}\n      serverless: {{ memory_mb: 2048, max_concurrency: 5 }}\n"
                ),
            )
            .replace(
                "    accuracy: 0.0\n    f1_macro: 0.0\n",
                "    accuracy: 0.01\n    f1_macro: 0.01\n",
            );
        assert!(
            edited.contains(&image) && edited.contains("accuracy: 0.01"),
            "{edited}"
        );
        edited
    });
    let holdout = |format: &str, extra: &[&str]| {
        let (status, answer) = moto.http(
            "POST",
            "/moto-api/static/sagemaker/endpoint-results",
            queue.as_bytes(),
        );
        assert_eq!(status, 201, "{answer}");
        let mut c = mlops();
        c.args(["holdout", "--format", format, "--model", "digits-mlp@1"])
            .arg("--manifest")
            .arg(project.path().join("mlops.yaml"))
            .arg("--registry")
            .arg(registry.path())
            .args(["--batch-size", "1000", "--concurrency", "1"])
            .args(extra);
        moto.env(&mut c);
        c.output().expect("runs")
    };

    let out = holdout("json", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let r = report(&out);
    assert_eq!(r["endpoint"], "sagemaker:digits-staging");
    assert_eq!(r["parity"]["enabled"], false);
    assert_eq!(r["parity"]["checked"], 0);
    let why = r["parity"]["skipped"].as_str().expect("a reason");
    assert!(
        why.contains("environments.staging.sagemaker.image") && why.contains(&image),
        "{why}"
    );
    let accuracy = r["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|c| c["metric"] == "accuracy")
        .expect("accuracy");
    assert!(
        accuracy["delta"].as_f64().is_some_and(|d| d != 0.0) && accuracy["pass"] == true,
        "the changed row moved the metric, within the tolerance: {accuracy}"
    );
    let shown = text(&holdout("human", &[]).stdout);
    assert!(
        shown.contains("parity: not checked (environments.staging.sagemaker.image serves"),
        "{shown}"
    );

    let out = holdout("json", &["--sagemaker-endpoint", "digits-plain"]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let r = report(&out);
    assert_eq!(r["parity"]["enabled"], true);
    assert_eq!(r["parity"]["mismatches"], 1);
    assert!(r["parity"].get("skipped").is_none(), "{r}");
}

/// A program that starts the service on port 0 learns the bound address from `--address-file`
/// (written once the service listens), not from its log: the file names the address the log
/// line names, and the service answers there.
#[test]
fn the_address_file_names_where_the_service_listens() {
    let registry = trained();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("address");
    let s = serve_registered(
        registry.path(),
        &["--address-file", &file.to_string_lossy()],
    );
    let written = std::fs::read_to_string(&file).expect("written before the log line");
    let addr: std::net::SocketAddr = written.trim().parse().expect("HOST:PORT");
    assert_eq!(addr, s.addr, "{written}");
    assert_eq!(http::get(addr, "/ping").status, 200);
}

/// The runner's rule for a workflow command in a step's log: a line whose text starts with `::`
/// after leading blanks, or (older syntax) one that holds `##[`. `ours` are the commands the
/// binary itself may print.
fn attacker_commands(log: &str) -> Vec<String> {
    let ours = [
        "::error",
        "::warning",
        "::notice",
        "::group::",
        "::endgroup::",
    ];
    log.lines()
        .filter(|l| {
            let t = l.trim_start();
            (t.starts_with("::") && !ours.iter().any(|o| t.starts_with(o))) || l.contains("##[")
        })
        .map(str::to_owned)
        .collect()
}

/// Text from a dataset's cell and from a service's error body that tries to set a step output
/// (in both of the runner's syntaxes) is shown, but not as a command, and sets nothing.
#[test]
fn untrusted_text_cannot_issue_workflow_commands() {
    let registry = trained();
    let server = serve_registered(registry.path(), &["--quiet"]);
    let hostile = "bad row\n::set-output name=passed::true\n  ##[set-output name=passed;]true";
    let body = serde_json::to_vec(&serde_json::json!({ "error": hostile })).expect("json");
    let proxy = http::Proxy::start(
        server.addr,
        Box::new(move |_, path, status, answer| {
            if path == "/invocations" {
                (400, body.clone())
            } else {
                (status, answer)
            }
        }),
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let outputs = scratch.path().join("github_output");
    let run = |endpoint: String, holdout: Option<&Path>| {
        let mut c = mlops();
        c.args(["holdout", "--model", "digits-mlp@1", "--manifest"])
            .arg(manifest())
            .arg("--registry")
            .arg(registry.path())
            .args(["--endpoint", &endpoint, "--retries", "0"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &outputs);
        if let Some(h) = holdout {
            c.arg("--holdout").arg(h);
        }
        c.output().expect("runs")
    };

    let out = run(format!("http://{}", proxy.addr), None);
    assert_ne!(out.status.code(), Some(0));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        log.contains("set-output name=passed"),
        "the error is shown: {log}"
    );
    assert_eq!(attacker_commands(&log), Vec::<String>::new(), "{log}");

    // A cell of the holdout file, quoted over several lines.
    let original = std::fs::read_to_string(holdout_csv()).expect("reads");
    let mut lines = original.lines();
    let header = lines.next().expect("header");
    let first = lines.next().expect("a row");
    let rest = first.split_once(',').map_or("", |(_, r)| r);
    let cell = "\"1\n::set-output name=passed::true\n##[set-output name=passed;]true\"";
    let poisoned = scratch.path().join("holdout.csv");
    std::fs::write(&poisoned, format!("{header}\n{cell},{rest}\n")).expect("writes");
    let out = run(server.url(), Some(&poisoned));
    assert_ne!(out.status.code(), Some(0));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        log.contains("set-output name=passed"),
        "the cell is shown: {log}"
    );
    assert_eq!(attacker_commands(&log), Vec::<String>::new(), "{log}");
    let set = std::fs::read_to_string(&outputs).unwrap_or_default();
    assert!(!set.contains("passed"), "{set}");
}

/// A "service" that answers every request with a body that never ends: the holdout stops reading
/// at its limit, says why, and does not ask again.
#[test]
fn holdout_stops_reading_an_answer_that_never_ends() {
    let registry = trained();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("addr");
    let invocations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = invocations.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let counted = counted.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, Write};
                let mut reader = std::io::BufReader::new(stream.try_clone().expect("clones"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                if line.contains("/invocations") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, "7\n".repeat(1 << 19));
                while stream.write_all(chunk.as_bytes()).is_ok() {}
            });
        }
    });
    let started = std::time::Instant::now();
    let out = holdout(
        registry.path(),
        &format!("http://{addr}"),
        &["--no-parity", "--concurrency", "1", "--retries", "3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("the answer is over 67108864 bytes"), "{err}");
    assert_eq!(
        invocations.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "an answer over the limit is not asked for again"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// `holdout.slo`: a service that takes 150 ms per request breaks a p99 limit of 50 ms (exit 1,
/// the limit named), and passes a limit it keeps; the report holds the latencies either way.
#[test]
fn holdout_measures_latency_and_fails_a_broken_slo() {
    let registry = crate::quickstart::shared();
    let server = serve_registered(registry, &["--quiet"]);
    let proxy = http::Proxy::start(
        server.addr,
        Box::new(|_, path, status, body| {
            if path == "/invocations" {
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            (status, body)
        }),
    );
    // A copy of the quickstart per limit, its holdout section with `slo`.
    let with_slo = |limit: u32| {
        crate::quickstart::copy(|original| {
            let text = original.replacen(
                "  concurrency: 4\n",
                &format!(
                    "  concurrency: 4\n  slo:\n    p99_ms: {limit}\n    min_rows_per_second: 1\n"
                ),
                1,
            );
            assert_ne!(text, original, "the holdout section moved");
            text
        })
    };
    let (strict, loose) = (with_slo(50), with_slo(60_000));
    let manifest = |project: &tempfile::TempDir| project.path().join("mlops.yaml");
    let run_as = |manifest: &Path, format: &str| {
        let mut c = mlops();
        c.args([
            "holdout",
            "--format",
            format,
            "--model",
            "digits-mlp@1",
            "--manifest",
        ])
        .arg(manifest)
        .arg("--registry")
        .arg(registry)
        .args(["--endpoint", &format!("http://{}", proxy.addr)])
        .args(["--concurrency", "1", "--batch-size", "100", "--no-parity"]);
        c.output().expect("runs")
    };
    let run = |manifest: &Path| run_as(manifest, "json");

    let out = run(&manifest(&strict));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["passed"], false);
    let p99 = r["latency"]["p99_ms"].as_f64().expect("p99");
    assert!(p99 >= 150.0, "{r}");
    assert_eq!(r["slo"][0]["limit"], "p99_ms");
    assert_eq!(r["slo"][0]["pass"], false);
    assert_eq!(r["slo"][1]["limit"], "min_rows_per_second");
    assert_eq!(r["slo"][1]["pass"], true);
    assert_eq!(r["latency"]["requests"], r["requests"]);
    // Shown to a person: the limit named, with both figures.
    let out = run_as(&manifest(&strict), "human");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("FAIL holdout.slo.p99_ms: the requests' p99 was")
            && shown.contains("over the limit of 50 ms"),
        "{shown}"
    );

    let out = run(&manifest(&loose));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["passed"], true);
    assert!(
        r["latency"]["p50_ms"].as_f64().expect("p50") >= 150.0,
        "{r}"
    );
}
