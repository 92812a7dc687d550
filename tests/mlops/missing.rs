//! Missing feature values (`data.missing`): the quickstart's data with one feature cell in
//! twenty blanked. With `missing: mean` the model records the training split's means and
//! fills gaps with them wherever it predicts: training, `mlops serve` (an empty CSV field, a
//! JSON `null`) and the holdout test's parity (a CSV file with empty fields, a Parquet file
//! with nulls), every row agreeing. Without it, a gap is refused naming the line and column.

use std::path::Path;

use crate::bin::{mlops, train_project as train};
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `csv` with every twentieth feature cell (counted over the file, label column kept) empty.
fn with_gaps(csv: &str) -> String {
    let mut out = String::new();
    let mut cell = 0usize;
    for (i, line) in csv.lines().enumerate() {
        if i == 0 {
            out.push_str(line);
        } else {
            let fields: Vec<String> = line
                .split(',')
                .enumerate()
                .map(|(j, f)| {
                    // The quickstart's label is its last column.
                    if j + 1 < line.split(',').count() {
                        cell += 1;
                        if cell.is_multiple_of(20) {
                            return String::new();
                        }
                    }
                    f.to_owned()
                })
                .collect();
            out.push_str(&fields.join(","));
        }
        out.push('\n');
    }
    out
}

fn project(missing: Option<&str>) -> tempfile::TempDir {
    let dir = crate::quickstart::copy(|t| match missing {
        Some(m) => {
            let edited = t
                .replace(
                    "  split:\n    validation_fraction: 0.2\n",
                    &format!("  missing: {m}\n  split:\n    validation_fraction: 0.2\n"),
                )
                .replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.8 }");
            assert!(edited.contains("missing:"), "the data section moved");
            edited
        }
        None => t,
    });
    for f in ["data/digits-train.csv", "data/digits-holdout.csv"] {
        let path = dir.path().join(f);
        let csv = std::fs::read_to_string(&path).expect("data");
        std::fs::write(&path, with_gaps(&csv)).expect("write");
    }
    dir
}

#[test]
fn gaps_are_filled_alike_in_training_serving_and_parity() {
    // Without `data.missing`, the first gap stops training, named.
    let strict = project(None);
    let out = train(strict.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("digits-train.csv:2: feature `pixel_19` is empty, not a number"),
        "{stderr}"
    );

    let dir = project(Some("mean"));
    let out = train(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let version = dir.path().join("registry/digits-mlp/1");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("model.json")).expect("bundle"))
            .expect("json");
    let standardizer = &bundle["standardizer"];
    let fill = standardizer["fill"]
        .as_array()
        .expect("fill values recorded");
    assert_eq!(fill.len(), 64);
    assert_eq!(
        standardizer["fill"], standardizer["mean"],
        "`mean` fills with the training split's means"
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("card.json")).expect("card"))
            .expect("json");
    assert!(
        card["metrics"]["holdout"]["accuracy"]
            .as_f64()
            .is_some_and(|a| a > 0.9),
        "{}",
        card["metrics"]
    );

    let registry = dir.path().join("registry").to_string_lossy().into_owned();
    let server = Server::registered(Path::new(&registry), "digits-mlp@1");
    // The same row three ways: with a gap given as an empty field, as null, and filled by hand
    // with the recorded mean; all three are one prediction.
    let mean: Vec<f64> = standardizer["mean"]
        .as_array()
        .expect("mean")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    let row: Vec<String> = (0..64).map(|i| ((i * 7) % 17).to_string()).collect();
    let mut gap = row.clone();
    gap[3] = String::new();
    let mut filled = row.clone();
    filled[3] = format!("{}", mean[3] as f32);
    let csv = |r: &[String]| {
        let a = crate::http::post_csv(server.addr, &format!("{}\n", r.join(",")));
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["predictions"][0].clone()
    };
    let by_hand = csv(&filled);
    assert_eq!(csv(&gap), by_hand);
    let nulls: Vec<serde_json::Value> = gap
        .iter()
        .map(|v| {
            v.parse::<f64>()
                .map_or(serde_json::Value::Null, |n| serde_json::json!(n))
        })
        .collect();
    let a = crate::http::post_json(
        server.addr,
        &serde_json::json!({ "instances": [nulls] }).to_string(),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["predictions"][0], by_hand);

    // The holdout file with its gaps, as CSV and as Parquet (nulls): parity on every row.
    let manifest = dir.path().join("mlops.yaml");
    let holdout = |file: &Path| {
        crate::serve::passes_with_parity(
            &manifest,
            &registry,
            &server.url(),
            "digits-mlp@1",
            Some(file),
        );
    };
    let csv_holdout = dir.path().join("data/digits-holdout.csv");
    holdout(&csv_holdout);
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let parquet = dir.path().join("holdout.parquet");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nimport pandas as pd\ndf = pd.read_csv(sys.argv[1])\nassert df.isna().sum().sum() > 0\ndf.to_parquet(sys.argv[2])\n",
        ])
        .arg(&csv_holdout)
        .arg(&parquet)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    holdout(&parquet);

    // An ONNX model (scikit-learn's MLP, exported without an imputer) gets the same: the gaps
    // filled with the recorded means before its graph runs, in training and in parity.
    let Some(exported) = crate::onnx_models::exported() else {
        return;
    };
    let yaml = std::fs::read_to_string(&manifest).expect("manifest");
    let onnx = yaml.replace(
        "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
        "  family: onnx\n  path: model.onnx\n",
    );
    assert!(onnx.contains("family: onnx"));
    std::fs::write(&manifest, onnx).expect("write");
    std::fs::copy(exported.join("mlp.onnx"), dir.path().join("model.onnx")).expect("copy");
    let out = train(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bundle: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("registry/digits-mlp/2/model.json")).expect("bundle"),
    )
    .expect("json");
    assert_eq!(bundle["architecture"]["family"], "onnx");
    assert_eq!(
        bundle["standardizer"]["fill"], standardizer["fill"],
        "the same training split, the same means"
    );
    let onnx_server = Server::start(
        mlops(),
        &[
            "--quiet",
            "--model",
            "digits-mlp@2",
            "--registry",
            &registry,
        ],
    );
    crate::serve::passes_with_parity(
        &manifest,
        &registry,
        &onnx_server.url(),
        "digits-mlp@2",
        None,
    );
}
