//! Monitoring: `mlops serve --capture` records what production sends, and `mlops monitor`
//! judges it against the baseline training recorded on the card. A shift in one quickstart
//! feature is named and nothing else; the unshifted holdout passes; PSI and KS agree with numpy
//! on the card's bins; a categorical shift, a missing-rate jump and a drift of the predictions
//! alone (each feature's distribution unchanged) are each named; ground truth joined by the
//! inference id the caller sent; SageMaker's DataCapture read in both encodings; a full disk
//! under load costs captures, never a prediction.

use std::collections::BTreeSet;
use std::path::Path;

use crate::bin::{matches_schema, mlops, train_project};
use crate::lcg::Lcg;
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `mlops serve --model MODEL --capture CAPTURE` from `registry`, with extra arguments.
fn serve(registry: &Path, model: &str, capture: &Path, extra: &[&str]) -> Server {
    let registry = registry.to_string_lossy().into_owned();
    let capture = capture.to_string_lossy().into_owned();
    let mut args = vec![
        "--quiet",
        "--model",
        model,
        "--registry",
        &registry,
        "--capture",
        &capture,
    ];
    args.extend_from_slice(extra);
    Server::start(mlops(), &args)
}

/// `mlops monitor --format json`: the exit code and the report (checked against its schema).
fn monitor(
    manifest: &Path,
    registry: &Path,
    model: &str,
    captured: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let out = mlops()
        .args(["monitor", "--format", "json", "--model", model])
        .arg("--manifest")
        .arg(manifest)
        .arg("--registry")
        .arg(registry)
        .arg("--captured")
        .arg(captured)
        .args(extra)
        .output()
        .expect("runs");
    let code = out.status.code().unwrap_or(-1);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    matches_schema("monitor-report", &report);
    (code, report)
}

/// The directory holding the capture files under `dir` (the writer's `YYYY/MM/DD/HH`).
fn first_dir(dir: &Path) -> std::path::PathBuf {
    let mut d = dir.to_owned();
    for _ in 0..4 {
        d = std::fs::read_dir(&d)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .expect("a subdirectory");
    }
    d
}

/// The columns a report says drifted (features only).
fn drifted_features(report: &serde_json::Value) -> BTreeSet<String> {
    report["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter(|f| !f["over"].as_array().expect("over").is_empty())
        .map(|f| f["column"].as_str().expect("column").to_owned())
        .collect()
}

/// Sends `rows` (CSV lines without the label) under `header`, `batch` rows per request.
pub(crate) fn send_csv(server: &Server, header: &str, rows: &[String], batch: usize) {
    for chunk in rows.chunks(batch) {
        let body = format!("{header}\n{}\n", chunk.join("\n"));
        let a = crate::http::post_csv(server.addr, &body);
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(
            a.header("x-inference-id").is_some(),
            "a captured answer names its id"
        );
    }
}

/// The quickstart's holdout: its feature header and its rows without the label.
pub(crate) fn quickstart_holdout() -> (String, Vec<Vec<f64>>) {
    let csv = std::fs::read_to_string(
        crate::bin::root().join("examples/quickstart/data/digits-holdout.csv"),
    )
    .expect("holdout");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    let names: Vec<&str> = header.split(',').collect();
    let width = names.len() - 1;
    let rows = lines
        .map(|l| {
            l.split(',')
                .take(width)
                .map(|v| v.parse().expect("a number"))
                .collect()
        })
        .collect();
    (names[..width].join(","), rows)
}

pub(crate) fn csv_rows(rows: &[Vec<f64>]) -> Vec<String> {
    rows.iter()
        .map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(","))
        .collect()
}

/// The column the quickstart shift test moves.
const SHIFTED: usize = 20;

#[test]
fn a_shift_in_one_quickstart_feature_is_named_and_the_unshifted_holdout_passes() {
    let registry = crate::quickstart::trained(1);
    let manifest = crate::bin::root().join(crate::quickstart::MANIFEST);
    let model = "digits-mlp@1";
    let (header, rows) = quickstart_holdout();
    let work = tempfile::tempdir().expect("tempdir");

    // The unshifted holdout, as production might send it.
    let same = work.path().join("same");
    let mut server = serve(registry.path(), model, &same, &[]);
    send_csv(&server, &header, &csv_rows(&rows), 10);
    assert!(server.stop().success(), "{}", server.log());
    let (code, report) = monitor(&manifest, registry.path(), model, &same, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["drifted"], false);
    assert_eq!(report["read"]["rows"], rows.len());
    assert_eq!(report["read"]["requests"], rows.len().div_ceil(10));
    assert_eq!(report["read"]["unreadable"], 0);

    // Column 20 brightened by 5: that feature and no other.
    let shifted: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[SHIFTED] += 5.0;
            r
        })
        .collect();
    let moved = work.path().join("moved");
    let mut server = serve(registry.path(), model, &moved, &[]);
    send_csv(&server, &header, &csv_rows(&shifted), 10);
    assert!(server.stop().success(), "{}", server.log());
    let (code, report) = monitor(&manifest, registry.path(), model, &moved, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        drifted_features(&report),
        BTreeSet::from(["pixel_20".to_owned()]),
        "{report:#}"
    );
    let findings = report["findings"].to_string();
    assert!(findings.contains("feature `pixel_20`: PSI"), "{findings}");

    // The human form names it too, and the exit code is the same.
    let out = mlops()
        .args(["monitor", "--model", model, "--manifest"])
        .arg(&manifest)
        .arg("--registry")
        .arg(registry.path())
        .arg("--captured")
        .arg(&moved)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("pixel_20"),
        "{}",
        text(&out.stdout)
    );

    // An age for --since: every line is newer than a day.
    let (_, recent) = monitor(
        &manifest,
        registry.path(),
        model,
        &moved,
        &["--since", "1d"],
    );
    assert_eq!(recent["read"]["before_since"], 0, "{recent:#}");
    assert_eq!(recent["read"]["rows"], rows.len(), "{recent:#}");

    // Only the artifact monitored is counted: a line another artifact answered is left out.
    let file = std::fs::read_dir(first_dir(&moved))
        .expect("capture dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .expect("a capture file");
    let sha = report["artifact"].as_str().expect("artifact").to_owned();
    let text = std::fs::read_to_string(&file).expect("capture");
    let (first, rest) = text.split_once('\n').expect("lines");
    std::fs::write(
        &file,
        format!("{}\n{rest}", first.replace(&sha, &"0".repeat(64))),
    )
    .expect("write");
    let (_, other) = monitor(&manifest, registry.path(), model, &moved, &[]);
    assert_eq!(other["read"]["other_model"], 1, "{other:#}");
    assert_eq!(other["read"]["rows"], rows.len() - 10, "{other:#}");

    numpy_agrees(registry.path(), model, &shifted, &report);
}

/// numpy, given the card's bins and the rows sent, computes every feature's PSI and KS as the
/// report has them, to 1e-9.
fn numpy_agrees(registry: &Path, model: &str, rows: &[Vec<f64>], report: &serde_json::Value) {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let (name, version) = model.split_once('@').expect("NAME@VERSION");
    let card = registry.join(name).join(version).join("card.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let sent = dir.path().join("sent.json");
    std::fs::write(&sent, serde_json::to_vec(rows).expect("json")).expect("write");
    let got = dir.path().join("report.json");
    std::fs::write(&got, report.to_string()).expect("write");
    let script = r#"
import json, sys
import numpy as np
card = json.load(open(sys.argv[1]))
rows = np.array(json.load(open(sys.argv[2])), dtype=np.float64)
report = json.load(open(sys.argv[3]))
FLOOR = 1e-4
worst = 0.0
for j, (base, got) in enumerate(zip(card["baseline"]["features"], report["features"])):
    assert base["column"] == got["column"]
    dist = base["distribution"]["numeric"]
    edges = np.array(dist["edges"], dtype=np.float64)
    expected = np.array(dist["counts"], dtype=np.float64)
    actual = np.bincount(np.searchsorted(edges, rows[:, j], side="right"), minlength=len(edges) + 1).astype(np.float64)
    e, a = expected / expected.sum(), actual / actual.sum()
    psi = np.sum((np.maximum(a, FLOOR) - np.maximum(e, FLOOR)) * np.log(np.maximum(a, FLOOR) / np.maximum(e, FLOOR)))
    ks = np.max(np.abs(np.cumsum(e) - np.cumsum(a)))
    worst = max(worst, abs(psi - got["psi"]), abs(ks - got["ks"]))
    assert abs(psi - got["psi"]) < 1e-9, (base["column"], psi, got["psi"])
    assert abs(ks - got["ks"]) < 1e-9, (base["column"], ks, got["ks"])
print(f"{len(report['features'])} columns agree; largest difference {worst:.2e}")
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&card)
        .arg(&sent)
        .arg(&got)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("64 columns agree"),
        "{}",
        text(&out.stdout)
    );
}

/// How production's rows differ from training's.
#[derive(Clone, Copy, PartialEq)]
enum Shift {
    None,
    /// `color` is red nine times in ten (half at training).
    Color,
    /// `z` is missing in 40% of rows (5% at training).
    Missing,
    /// `x > 0.5` exactly when `color` is red: each column as at training, every prediction
    /// `no`.
    Joint,
}

/// Rows of `x` (uniform), `color` (red or blue), `z` (noise, sometimes missing) and the label
/// `(x > 0.5) xor red`, as CSV lines (the label last when `label`).
fn rows(n: usize, seed: u64, shift: Shift, label: bool) -> Vec<String> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|_| {
            let x = r.next();
            let red_share = if shift == Shift::Color { 0.9 } else { 0.5 };
            let red = if shift == Shift::Joint {
                x > 0.5
            } else {
                r.next() < red_share
            };
            let z = (r.next() * 100.0).round() / 10.0;
            let gap = if shift == Shift::Missing { 0.4 } else { 0.05 };
            let z = if r.next() < gap {
                String::new()
            } else {
                z.to_string()
            };
            let color = if red { "red" } else { "blue" };
            let y = if (x > 0.5) != red { "yes" } else { "no" };
            let x = (x * 1000.0).round() / 1000.0;
            if label {
                format!("{x},{color},{z},{y}")
            } else {
                format!("{x},{color},{z}")
            }
        })
        .collect()
}

const XOR_MANIFEST: &str = r#"version: 1
project:
  name: xor
  repository: acme/xor
data:
  features: [x, color, z]
  categorical: [color]
  missing: mean
  label: y
  train: { path: data/train.csv }
  holdout: { path: data/holdout.csv }
  split: { validation_fraction: 0.25, seed: 3 }
model:
  name: xor
  task: classification
  family: mlp
  hyperparameters: { hidden_layers: [32], activation: relu }
training:
  backend: local
  epochs: 60
  batch_size: 32
  learning_rate: 0.01
  optimizer: adam
  seed: 42
evaluation:
  metrics: [accuracy]
  thresholds: { accuracy: { min: 0.9 } }
environments:
  staging: { url: "http://127.0.0.1:8080" }
  production: { url: "https://xor.example.com" }
monitoring:
  thresholds:
    metrics: { accuracy: 0.1 }
"#;

#[test]
fn a_categorical_shift_a_missing_rate_jump_and_a_prediction_drift_are_each_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    let manifest = dir.path().join("mlops.yaml");
    std::fs::write(&manifest, XOR_MANIFEST).expect("manifest");
    let with_label = |n, seed| {
        format!(
            "x,color,z,y\n{}\n",
            rows(n, seed, Shift::None, true).join("\n")
        )
    };
    std::fs::write(dir.path().join("data/train.csv"), with_label(3000, 1)).expect("train");
    std::fs::write(dir.path().join("data/holdout.csv"), with_label(600, 2)).expect("holdout");
    let out = train_project(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let registry = dir.path().join("registry");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.join("xor/1/card.json")).expect("card"))
            .expect("json");
    matches_schema("card", &card);
    let baseline = &card["baseline"];
    assert_eq!(
        baseline["features"][1]["distribution"]["categorical"]["categories"],
        serde_json::json!(["blue", "red"])
    );
    let z_missing = baseline["features"][2]["missing"]
        .as_f64()
        .expect("missing")
        / baseline["features"][2]["rows"].as_f64().expect("rows");
    assert!((0.03..0.07).contains(&z_missing), "{z_missing}");

    // Each scenario: 1,000 rows through a capturing service, then the monitor.
    let run = |shift: Shift, seed: u64| -> (i32, serde_json::Value, std::path::PathBuf) {
        let capture = dir.path().join(format!("capture-{seed}"));
        let mut server = serve(&registry, "xor@1", &capture, &[]);
        let sent = rows(1000, seed, shift, false);
        // One request per 20 rows, each named by the caller's own inference id.
        for (i, chunk) in sent.chunks(20).enumerate() {
            let body = format!("x,color,z\n{}\n", chunk.join("\n"));
            let id = format!("req-{seed}-{i}");
            let a = crate::http::request_with(
                server.addr,
                "POST",
                "/invocations",
                &[("Content-Type", "text/csv"), ("X-Inference-Id", &id)],
                body.as_bytes(),
            );
            assert_eq!(a.status, 200, "{}", a.text());
            assert_eq!(a.header("x-inference-id"), Some(id.as_str()));
        }
        assert!(server.stop().success(), "{}", server.log());
        let (code, report) = monitor(&manifest, &registry, "xor@1", &capture, &[]);
        (code, report, capture)
    };
    let predictions_drifted = |r: &serde_json::Value| {
        !r["predictions"]["over"]
            .as_array()
            .expect("over")
            .is_empty()
    };

    let (code, report, same) = run(Shift::None, 10);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["read"]["rows"], 1000);

    // The Open Inference Protocol's requests are captured and read back too: one tensor per
    // feature, the category as BYTES.
    let v2 = dir.path().join("capture-v2");
    let mut server = serve(&registry, "xor@1", &v2, &[]);
    let request = serde_json::json!({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [0.25, 0.75]},
        {"name": "color", "datatype": "BYTES", "shape": [2, 1], "data": ["red", "blue"]},
        {"name": "z", "datatype": "FP32", "shape": [2, 1], "data": [3.5, null]},
    ]});
    let a = crate::http::request(
        server.addr,
        "POST",
        "/v2/models/xor/versions/1/infer",
        Some("application/json"),
        request.to_string().as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(server.stop().success(), "{}", server.log());
    let (_, report) = monitor(&manifest, &registry, "xor@1", &v2, &[]);
    assert_eq!(report["read"]["rows"], 2, "{report:#}");
    assert_eq!(report["read"]["unreadable"], 0, "{report:#}");
    // One of the two rows has no z: half the rows, counted as missing.
    assert_eq!(
        report["features"][2]["missing"]["current"], 0.5,
        "{report:#}"
    );

    let (code, report, _) = run(Shift::Color, 11);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        drifted_features(&report),
        BTreeSet::from(["color".to_owned()]),
        "{report:#}"
    );
    assert_eq!(report["features"][1]["kind"], "categorical");
    assert!(
        !predictions_drifted(&report),
        "xor keeps the classes balanced: {report:#}"
    );

    let (code, report, _) = run(Shift::Missing, 12);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        drifted_features(&report),
        BTreeSet::from(["z".to_owned()]),
        "{report:#}"
    );
    assert_eq!(
        report["features"][2]["over"],
        serde_json::json!(["missing"]),
        "{report:#}"
    );
    assert!(
        report["findings"]
            .to_string()
            .contains("feature `z`: missing in"),
        "{report:#}"
    );

    let (code, report, _) = run(Shift::Joint, 13);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        drifted_features(&report).is_empty(),
        "each column as at training: {report:#}"
    );
    assert!(predictions_drifted(&report), "{report:#}");
    assert!(
        report["findings"].to_string().contains("predictions: PSI"),
        "{report:#}"
    );

    // Ground truth for the unshifted traffic, joined by the callers' ids and row numbers: the
    // model's accuracy holds. Labels flipped: the metric is named.
    let labels = |flip: bool| {
        let mut csv = String::from("inference_id,row,y\n");
        for (n, line) in rows(1000, 10, Shift::None, true).iter().enumerate() {
            let y = line.rsplit(',').next().expect("label");
            let y = match (flip, y) {
                (false, y) => y,
                (true, "yes") => "no",
                (true, _) => "yes",
            };
            csv.push_str(&format!("req-10-{},{},{y}\n", n / 20, n % 20));
        }
        let path = dir.path().join(format!("truth-{flip}.csv"));
        std::fs::write(&path, csv).expect("write");
        path
    };
    let truth = labels(false);
    let (code, report) = monitor(
        &manifest,
        &registry,
        "xor@1",
        &same,
        &["--ground-truth", &truth.to_string_lossy()],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ground_truth"]["joined"], 1000, "{report:#}");
    let accuracy = &report["ground_truth"]["metrics"][0];
    assert_eq!(accuracy["metric"], "accuracy");
    assert!(
        accuracy["observed"].as_f64().expect("observed") > 0.9,
        "{report:#}"
    );
    let flipped = labels(true);
    let (code, report) = monitor(
        &manifest,
        &registry,
        "xor@1",
        &same,
        &["--ground-truth", &flipped.to_string_lossy()],
    );
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["findings"].to_string().contains("metric `accuracy`"),
        "{report:#}"
    );

    // The labelled capture as a training set: labels for the first 500 rows only, and exactly
    // those rows are written, each as it was sent (a category by its name, a gap empty), under
    // the features and the label. Then a retraining on it (`monitoring.retrain_data`).
    let sent = rows(1000, 10, Shift::None, true);
    let mut half = String::from("inference_id,row,y\n");
    for (n, line) in sent.iter().enumerate().take(500) {
        let y = line.rsplit(',').next().expect("label");
        half.push_str(&format!("req-10-{},{},{y}\n", n / 20, n % 20));
    }
    let half_truth = dir.path().join("truth-half.csv");
    std::fs::write(&half_truth, half).expect("write");
    let labelled = dir.path().join("labelled/train.csv");
    std::fs::create_dir_all(labelled.parent().expect("dir")).expect("mkdir");
    let (code, report) = monitor(
        &manifest,
        &registry,
        "xor@1",
        &same,
        &[
            "--ground-truth",
            &half_truth.to_string_lossy(),
            "--labelled",
            &labelled.to_string_lossy(),
        ],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ground_truth"]["joined"], 500, "{report:#}");
    let written = std::fs::read_to_string(&labelled).expect("the labelled rows");
    assert_eq!(
        written,
        format!("x,color,z,y\n{}\n", sent[..500].join("\n"))
    );
    assert_eq!(
        std::fs::read_dir(labelled.parent().expect("dir"))
            .expect("dir")
            .count(),
        1,
        "no partial file left beside it"
    );
    // Without ground truth there is nothing to label: refused before anything is read.
    let out = mlops()
        .args(["monitor", "--model", "xor@1", "--manifest"])
        .arg(&manifest)
        .arg("--registry")
        .arg(&registry)
        .arg("--captured")
        .arg(&same)
        .arg("--labelled")
        .arg(dir.path().join("nowhere.csv"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!dir.path().join("nowhere.csv").exists());

    std::fs::write(
        &manifest,
        format!("{XOR_MANIFEST}  retrain_data: {{ path: labelled/train.csv }}\n"),
    )
    .expect("manifest");
    let out = mlops()
        .args(["train", "--format", "json", "--retraining", "--manifest"])
        .arg(&manifest)
        .arg("--registry")
        .arg(&registry)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.join("xor/2/card.json")).expect("card"))
            .expect("json");
    let train = &card["datasets"]["train"];
    assert_eq!(train["path"], "labelled/train.csv", "{card:#}");
    assert_eq!(
        train["sha256"],
        crate::bin::sha256_hex(written.as_bytes()),
        "{card:#}"
    );
    // The holdout stays the manifest's: the new version is judged on the same rows.
    assert_eq!(card["datasets"]["holdout"]["path"], "data/holdout.csv");
}

/// A retraining on production's own rows through S3 (moto): the quickstart's holdout served
/// with the callers' inference ids and captured; its labels joined; the labelled rows uploaded
/// whole to an `s3://` object (byte for byte the holdout file: the same values, the same label
/// column); then `mlops train --retraining` trains on that object (`monitoring.retrain_data`),
/// and the card names it and its digest.
#[test]
fn a_retraining_trains_on_the_labelled_capture_in_s3() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let (status, answer) = moto.http("PUT", "/labelled", b"");
    assert_eq!(status, 200, "{answer}");
    let registry = crate::quickstart::shared();
    let manifest = crate::bin::root().join(crate::quickstart::MANIFEST);
    let holdout = std::fs::read_to_string(
        crate::bin::root().join("examples/quickstart/data/digits-holdout.csv"),
    )
    .expect("holdout");
    let mut lines = holdout.lines();
    let header = lines.next().expect("header");
    let features = header.rsplit_once(',').expect("label column").0;
    let rows: Vec<&str> = lines.collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("capture");
    let mut server = serve(registry, "digits-mlp@1", &capture, &[]);
    let mut truth = String::from("inference_id,row,digit\n");
    for (i, chunk) in rows.chunks(33).enumerate() {
        let id = format!("q-{i}");
        let body: String = std::iter::once(features)
            .chain(chunk.iter().map(|r| r.rsplit_once(',').expect("label").0))
            .map(|l| format!("{l}\n"))
            .collect();
        let a = crate::http::request_with(
            server.addr,
            "POST",
            "/invocations",
            &[("content-type", "text/csv"), ("x-inference-id", &id)],
            body.as_bytes(),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        for (r, row) in chunk.iter().enumerate() {
            let label = row.rsplit_once(',').expect("label").1;
            truth.push_str(&format!("{id},{r},{label}\n"));
        }
    }
    assert!(server.stop().success());
    let truth_file = dir.path().join("truth.csv");
    std::fs::write(&truth_file, truth).expect("truth");
    let object = "s3://labelled/digits/train.csv";
    let mut c = mlops();
    c.args(["monitor", "--format", "json", "--model", "digits-mlp@1"])
        .arg("--manifest")
        .arg(&manifest)
        .arg("--registry")
        .arg(registry)
        .arg("--captured")
        .arg(&capture)
        .arg("--ground-truth")
        .arg(&truth_file)
        .args(["--labelled", object]);
    moto.env(&mut c);
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (status, answer) = moto.http("GET", "/labelled/digits/train.csv", b"");
    assert_eq!(status, 200, "{answer}");
    let uploaded = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(uploaded, holdout, "the labelled rows are the holdout file");

    let project = crate::quickstart::copy(|m| {
        m + "\nmonitoring:\n  retrain_data:\n    path: s3://labelled/digits/train.csv\n"
    });
    let retrained = tempfile::tempdir().expect("registry");
    let mut c = mlops();
    c.args(["train", "--format", "json", "--retraining", "--manifest"])
        .arg(project.path().join("mlops.yaml"))
        .arg("--registry")
        .arg(retrained.path());
    moto.env(&mut c);
    let out = c.output().expect("runs");
    // Registered either way; 297 rows may fall short of the evaluation thresholds (exit 1, the
    // version rejected), which judge a retraining as any training.
    let said: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && said["model_version"] == "digits-mlp@1",
        "{said}\n{}",
        text(&out.stderr)
    );
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(retrained.path().join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("json");
    assert_eq!(card["datasets"]["train"]["path"], object, "{card:#}");
    assert_eq!(
        card["datasets"]["train"]["sha256"],
        crate::bin::sha256_hex(holdout.as_bytes())
    );
    assert_eq!(card["datasets"]["train"]["rows"], rows.len());
}

#[test]
fn sagemaker_datacapture_reads_back_in_both_encodings() {
    use base64::Engine as _;
    let registry = crate::quickstart::shared();
    let manifest = crate::bin::root().join(crate::quickstart::MANIFEST);
    let (_, rows) = quickstart_holdout();
    let labels: Vec<String> = std::fs::read_to_string(
        crate::bin::root().join("examples/quickstart/data/digits-holdout.csv"),
    )
    .expect("holdout")
    .lines()
    .skip(1)
    .map(|l| l.rsplit(',').next().expect("label").to_owned())
    .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // One request per row, as SageMaker's CSVSerializer sends it: CSV in, CSV out.
    let mut csv = String::new();
    // Five rows per request as JSON instances; the answers base64-encoded JSON.
    let mut json = String::new();
    for (i, (row, label)) in rows.iter().zip(&labels).enumerate() {
        let line = serde_json::json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                    "data": row.iter().map(f64::to_string).collect::<Vec<_>>().join(","), "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                    "data": format!("{label}\n"), "encoding": "CSV"},
            },
            "eventMetadata": {"eventId": format!("e-{i}"), "inferenceTime": "2026-12-05T10:00:00Z"},
            "eventVersion": "0",
        });
        csv.push_str(&format!("{line}\n"));
    }
    for (i, (chunk, answers)) in rows.chunks(5).zip(labels.chunks(5)).enumerate() {
        let answer = serde_json::json!({"predictions": answers}).to_string();
        let line = serde_json::json!({
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                    "data": serde_json::json!({"instances": chunk}).to_string(), "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                    "data": base64::engine::general_purpose::STANDARD.encode(answer), "encoding": "BASE64"},
            },
            "eventMetadata": {"eventId": format!("j-{i}"), "inferenceId": format!("mine-{i}"),
                "inferenceTime": if i == 0 { "2026-01-01T00:00:00Z" } else { "2026-12-05T10:00:01Z" }},
            "eventVersion": "0",
        });
        json.push_str(&format!("{line}\n"));
    }
    let csv_file = dir.path().join("csv/2026/12/05/10/capture.jsonl");
    let json_file = dir.path().join("json/2026/12/05/10/capture.jsonl");
    for (file, body) in [(&csv_file, &csv), (&json_file, &json)] {
        std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
        std::fs::write(file, body).expect("write");
    }
    let model = "digits-mlp@1";
    let (code, from_csv) = monitor(&manifest, registry, model, &dir.path().join("csv"), &[]);
    assert_eq!(code, 0, "{from_csv:#}");
    assert_eq!(from_csv["read"]["rows"], rows.len());
    assert_eq!(from_csv["read"]["unreadable"], 0);
    // The first JSON request is older than --since; the others are the same rows as the CSV
    // file's but its first five.
    let (code, from_json) = monitor(
        &manifest,
        registry,
        model,
        &dir.path().join("json"),
        &["--since", "2026-06-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{from_json:#}");
    assert_eq!(from_json["read"]["before_since"], 1);
    assert_eq!(from_json["read"]["rows"], rows.len() - 5);
    // All of it: the same counts, bin for bin, whichever encoding carried the rows.
    let (_, all_json) = monitor(&manifest, registry, model, &dir.path().join("json"), &[]);
    assert_eq!(all_json["features"], from_csv["features"]);
    assert_eq!(all_json["predictions"], from_csv["predictions"]);
    // A damaged line is counted and located, not fatal.
    std::fs::write(&json_file, format!("{json}{{\"captureData\": 1}}\n")).expect("write");
    let (code, damaged) = monitor(&manifest, registry, model, &dir.path().join("json"), &[]);
    assert_eq!(code, 0, "{damaged:#}");
    assert_eq!(damaged["read"]["unreadable"], 1);
    let problem = damaged["read"]["problems"][0].as_str().expect("a problem");
    assert!(
        problem.contains(&format!("capture.jsonl:{}", rows.len().div_ceil(5) + 1)),
        "{problem}"
    );
}

/// A 256 KiB tmpfs mounted for the test and unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            crate::tools::missing("a small tmpfs for the full-disk test (mount needs root)");
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_costs_captures_never_a_prediction() {
    let Some(disk) = Tmpfs::mount() else {
        return;
    };
    let registry = crate::quickstart::shared();
    let manifest = crate::bin::root().join(crate::quickstart::MANIFEST);
    let capture = disk.0.path().join("capture");
    let server = serve(
        registry,
        "digits-mlp@1",
        &capture,
        &["--capture-rotate-bytes", "16384"],
    );
    let (header, rows) = quickstart_holdout();
    let bodies: Vec<String> = csv_rows(&rows)
        .into_iter()
        .map(|r| format!("{header}\n{r}\n"))
        .collect();
    // 8 clients, 2,400 one-row requests of about 250 bytes each: several times the disk.
    let threads = 8;
    let per = 300;
    let answered: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let bodies = &bodies;
                let addr = server.addr;
                s.spawn(move || {
                    (0..per)
                        .filter(|i| {
                            let body = &bodies[(t * per + i) % bodies.len()];
                            crate::http::post_csv(addr, body).status == 200
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    assert_eq!(answered, threads * per, "every prediction answered");
    // The writer (at the lowest priority) may still hold queued requests: once it has drained,
    // each is counted as written or lost.
    let counts = || {
        let metrics = crate::http::get(server.addr, "/metrics").text();
        let counter = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
                .unwrap_or_else(|| panic!("{name} in {metrics}"))
        };
        (
            counter("mlops_capture_requests_total "),
            counter("mlops_capture_lost_total{reason=\"write_failed\"} "),
            counter("mlops_capture_lost_total{reason=\"queue_full\"} "),
            metrics,
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (written, failed, full, metrics) = loop {
        let c = counts();
        if c.0 + c.1 + c.2 >= (threads * per) as u64 || std::time::Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(server);
    assert!(failed > 0, "the disk filled up: {metrics}");
    assert!(written > 0, "{metrics}");
    assert_eq!(
        written + failed + full,
        (threads * per) as u64,
        "each request counted once: {metrics}"
    );
    // What was written reads back whole: no half line where the disk ran out.
    let (_, report) = monitor(&manifest, registry, "digits-mlp@1", &capture, &[]);
    assert_eq!(report["read"]["unreadable"], 0, "{report:#}");
    assert_eq!(report["read"]["requests"], written, "{report:#}");
}
