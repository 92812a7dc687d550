//! Categorical features (`data.categorical`, `data.unseen`): a churn table of two numeric and
//! two categorical columns (one a text with a comma in a category, one of numeric codes), with
//! gaps (`data.missing: mean`) and, in the holdout file, a region training never saw. The burn
//! MLP records the categories and reads them one-hot in training, `mlops serve` (JSON and CSV)
//! and the holdout test's parity (CSV and Parquet); an ONNX model scikit-learn fitted on the
//! documented encoding (ColumnTransformer + OneHotEncoder) gives onnxruntime's labels through
//! mlops. An unseen category under `unseen: error` is refused at its line.

use std::path::Path;

use crate::bin::{mlops, train_project as train};
use crate::lcg::Lcg;
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const HEADER: &str = "tenure,plan,region,spend,churned";

/// `rows` rows of the churn table as CSV: churn is likelier on the basic plan early on, and in
/// region 10 for big spenders. With `gaps`, every 23rd feature cell is empty; with `unseen`,
/// every 50th row is in region 99.
fn table(rows: usize, seed: u64, gaps: bool, unseen: bool) -> String {
    let mut r = Lcg(seed);
    let mut out = format!("{HEADER}\n");
    let mut cell = 0usize;
    for i in 0..rows {
        let tenure = (r.next() * 72.0).floor();
        let plan = ["basic", "plus", "pro, annual"][(r.next() * 3.0) as usize];
        let mut region = [1, 2, 10][(r.next() * 3.0) as usize];
        let spend = (r.next() * 1000.0).round() / 10.0;
        let mut p = match plan {
            "basic" if tenure < 24.0 => 0.85,
            "basic" => 0.4,
            "plus" => 0.3,
            _ => 0.1,
        };
        if region == 10 && spend > 60.0 {
            p += 0.45;
        }
        let churned = if p + (r.next() - 0.5) * 0.3 > 0.5 {
            "yes"
        } else {
            "no"
        };
        if unseen && i % 50 == 7 {
            region = 99;
        }
        let mut fields = vec![
            tenure.to_string(),
            format!("\"{plan}\""),
            region.to_string(),
            spend.to_string(),
        ];
        if gaps {
            for f in &mut fields {
                cell += 1;
                if cell.is_multiple_of(23) {
                    f.clear();
                }
            }
        }
        out.push_str(&format!("{},{churned}\n", fields.join(",")));
    }
    out
}

fn manifest(family: &str, unseen: &str, missing: &str) -> String {
    format!(
        r#"version: 1
project:
  name: churn
  repository: acme/churn
data:
  features: [tenure, plan, region, spend]
  categorical: [plan, region]
  unseen: {unseen}
  missing: {missing}
  label: churned
  train: {{ path: data/train.csv }}
  holdout: {{ path: data/holdout.csv }}
  split: {{ validation_fraction: 0.2, seed: 7 }}
model:
  name: churn-model
  task: classification
{family}
training:
  backend: local
  epochs: 40
  batch_size: 32
  learning_rate: 0.01
  optimizer: adam
  seed: 42
evaluation:
  metrics: [accuracy]
  thresholds: {{ accuracy: {{ min: 0.7 }} }}
environments:
  staging: {{ url: "http://127.0.0.1:8080" }}
  production: {{ url: "https://churn.example.com" }}
holdout:
  metrics: [accuracy]
  tolerances: {{ accuracy: 0.0 }}
"#
    )
}

const MLP: &str = "  family: mlp\n  hyperparameters: { hidden_layers: [32], activation: relu }";

fn project(manifest: &str, train: &str, holdout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("mlops.yaml"), manifest).expect("manifest");
    std::fs::write(dir.path().join("data/train.csv"), train).expect("train");
    std::fs::write(dir.path().join("data/holdout.csv"), holdout).expect("holdout");
    dir
}

/// `mlops holdout` of `model` at `url` with parity, on `file` (the manifest's when `None`):
/// every row checked and agreeing.
fn parity(project: &Path, url: &str, model: &str, file: Option<&Path>, rows: u64) {
    parity_in(project, url, model, file, rows, "mlops");
}

/// [`parity`], the service spoken to in `protocol`.
fn parity_in(
    project: &Path,
    url: &str,
    model: &str,
    file: Option<&Path>,
    rows: u64,
    protocol: &str,
) {
    let mut c = mlops();
    c.args(["holdout", "--format", "json", "--model", model])
        .args(["--protocol", protocol])
        .arg("--manifest")
        .arg(project.join("mlops.yaml"))
        .arg("--registry")
        .arg(project.join("registry"))
        .args(["--endpoint", url]);
    if let Some(f) = file {
        c.arg("--holdout").arg(f);
    }
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(r["parity"]["checked"], rows, "{r}");
    assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    assert_eq!(r["passed"], true, "{r}");
}

/// `mlops serve` of `churn-model@1` from the project's registry.
fn serve(project: &Path) -> Server {
    let registry = project.join("registry").to_string_lossy().into_owned();
    Server::start(
        mlops(),
        &[
            "--quiet",
            "--model",
            "churn-model@1",
            "--registry",
            &registry,
        ],
    )
}

fn bundle(project: &Path, version: u32) -> serde_json::Value {
    let path = project.join(format!("registry/churn-model/{version}/model.json"));
    serde_json::from_slice(&std::fs::read(path).expect("bundle")).expect("json")
}

#[test]
fn categories_are_recorded_and_read_alike_in_training_serving_and_parity() {
    let train_csv = table(900, 1, true, false);
    let holdout_csv = table(300, 2, true, true);

    // Under `unseen: error`, the holdout file's region 99 stops training at its line.
    let strict = project(&manifest(MLP, "error", "mean"), &train_csv, &holdout_csv);
    let out = train(strict.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "holdout.csv:9: feature `region` is `99`, a category the model was not trained on"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("data.unseen: ignore"), "{stderr}");

    let dir = project(&manifest(MLP, "ignore", "mean"), &train_csv, &holdout_csv);
    let out = train(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = bundle(dir.path(), 1);
    assert_eq!(
        b["signature"]["categorical"],
        serde_json::json!([
            {"column": "plan", "values": ["basic", "plus", "pro, annual"]},
            // Every region is a number: numeric order.
            {"column": "region", "values": ["1", "2", "10"]},
        ])
    );
    assert_eq!(b["signature"]["unseen"], "ignore");
    // tenure, spend, three plans, three regions.
    assert_eq!(b["architecture"]["inputs"], 8);
    assert_eq!(b["standardizer"]["fill"].as_array().map(Vec::len), Some(8));
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("registry/churn-model/1/card.json")).expect("card"),
    )
    .expect("json");
    let accuracy = card["metrics"]["holdout"]["accuracy"].as_f64();
    assert!(accuracy.is_some_and(|a| a > 0.8), "{}", card["metrics"]);

    let server = serve(dir.path());
    // One row four ways: JSON named and positional, CSV with a header (quoted category) and
    // without; the same answer.
    let json = |body: serde_json::Value| {
        let a = crate::http::post_json(server.addr, &body.to_string());
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["predictions"].clone()
    };
    let csv = |body: &str| {
        let a = crate::http::post_csv(server.addr, body);
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["predictions"].clone()
    };
    let named = json(serde_json::json!({"instances": [
        {"tenure": 3, "plan": "pro, annual", "region": 10, "spend": 90.5},
        {"tenure": 3, "plan": "basic", "region": "2", "spend": 10},
    ]}));
    assert_eq!(
        json(serde_json::json!([
            [3, "pro, annual", 10, 90.5],
            [3, "basic", 2, 10]
        ])),
        named
    );
    assert_eq!(
        csv("tenure,plan,region,spend\n3,\"pro, annual\",10,90.5\n3,basic,2,10\n"),
        named
    );
    assert_eq!(csv("3,\"pro, annual\",10,90.5\n3,basic,2,10\n"), named);
    // An unseen region and a missing one are both "none of the known regions".
    assert_eq!(
        json(serde_json::json!([[3, "basic", "99", 10]])),
        json(serde_json::json!([[3, "basic", null, 10]]))
    );
    // A category where a number belongs is refused, naming the column.
    let a = crate::http::post_json(
        server.addr,
        &serde_json::json!([["basic", "basic", 1, 10]]).to_string(),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.text().contains("column `tenure`"), "{}", a.text());

    // The holdout file (gaps, quoted categories, region 99) through the service, with parity.
    let url = server.url();
    parity(dir.path(), &url, "churn-model@1", None, 300);
    // In the Open Inference Protocol: one tensor per feature, the categories' BYTES.
    parity_in(dir.path(), &url, "churn-model@1", None, 300, "v2");
    parity_in(dir.path(), &url, "churn-model@1", None, 300, "mlflow");
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    // The same rows as Parquet: categories as text columns (with nulls), numbers as floats.
    let parquet = dir.path().join("holdout.parquet");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nimport pandas as pd\ndf = pd.read_csv(sys.argv[1], dtype={'plan': 'string', 'region': 'string'})\nassert df['plan'].isna().sum() > 0\ndf.to_parquet(sys.argv[2])\n",
        ])
        .arg(dir.path().join("data/holdout.csv"))
        .arg(&parquet)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    parity(dir.path(), &url, "churn-model@1", Some(&parquet), 300);
}

#[test]
fn an_onnx_model_reads_the_documented_one_hot_layout() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let train_csv = table(900, 3, false, false);
    let holdout_csv = table(300, 4, false, true);
    let onnx = "  family: onnx\n  path: churn.onnx";
    let dir = project(&manifest(onnx, "ignore", "error"), &train_csv, &holdout_csv);
    let out = std::process::Command::new(python)
        .arg(crate::bin::root().join("tests/fixtures/onnx/categorical.py"))
        .arg(dir.path().join("data/train.csv"))
        .arg(dir.path().join("data/holdout.csv"))
        .arg(dir.path())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).expect("read"))
            .expect("json");

    let out = train(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = bundle(dir.path(), 1);
    // mlops' categories are scikit-learn's, in its order.
    for c in b["signature"]["categorical"]
        .as_array()
        .expect("categorical")
    {
        let column = c["column"].as_str().expect("column");
        assert_eq!(c["values"], expected["categories"][column], "{column}");
    }
    assert_eq!(b["architecture"]["inputs"], 8);

    let server = serve(dir.path());
    // The holdout rows (label column dropped) as one CSV request: onnxruntime's labels.
    let body: String = holdout_csv
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", &l[..l.rfind(',').expect("label")]))
        .collect();
    let a = crate::http::post_csv(server.addr, &body);
    assert_eq!(a.status, 200, "{}", a.text());
    let labels: Vec<serde_json::Value> = a.json()["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["label"].clone())
        .collect();
    assert_eq!(labels.len(), 300);
    assert_eq!(serde_json::Value::from(labels), expected["labels"]);
    parity(dir.path(), &server.url(), "churn-model@1", None, 300);
}
