//! `cargo xtask bench wide`: a wide table (2,000 numeric columns and a categorical one of 40
//! categories, 5,000 training rows, 2,000 holdout rows, about 90 MB of CSV) through `mlops train`
//! against what a team writes by hand in Python on the same file: pandas' `read_csv`, then
//! scikit-learn's `ColumnTransformer` (`StandardScaler`, `OneHotEncoder`) and an
//! `MLPClassifier` of the same shape and epochs, scored on the holdout file. Then the holdout
//! test of the registered version against `mlops serve`, with parity on every row.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{interleaved, release_binary, tempdir};
use crate::ml_tools;

#[path = "../../../tests/support/lcg.rs"]
mod lcg;
#[path = "../../../tests/support/wide_table.rs"]
mod wide_table;

use wide_table::{MANIFEST, SHOPS, WIDTH, table};

/// The same work by hand: read, encode, fit 8 epochs, score the holdout file; prints the
/// holdout accuracy.
const PYTHON: &str = r#"
import sys, warnings
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import OneHotEncoder, StandardScaler
warnings.filterwarnings("ignore")
train = pd.read_csv(sys.argv[1])
holdout = pd.read_csv(sys.argv[2])
numeric = [c for c in train.columns if c.startswith("f_")]
encode = ColumnTransformer([
    ("num", StandardScaler(), numeric),
    ("cat", OneHotEncoder(handle_unknown="ignore"), ["shop"]),
])
x = encode.fit_transform(train)
model = MLPClassifier(hidden_layer_sizes=(16,), batch_size=32, learning_rate_init=0.003,
                      max_iter=8, random_state=0)
model.fit(x, train["trend"])
print(model.score(encode.transform(holdout), holdout["trend"]))
"#;

pub(crate) fn run() -> Result<(), String> {
    let python = ml_tools()?.join("python");
    let mlops = release_binary()?;
    let dir = tempdir("bench-wide")?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("mlops.yaml"), MANIFEST).map_err(|e| e.to_string())?;
    let train_csv = dir.join("data/train.csv");
    let holdout_csv = dir.join("data/holdout.csv");
    std::fs::write(&train_csv, table(5000, 1)).map_err(|e| e.to_string())?;
    std::fs::write(&holdout_csv, table(2000, 2)).map_err(|e| e.to_string())?;
    let megabytes = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
    let sizes = (megabytes(&train_csv), megabytes(&holdout_csv));
    let script = dir.join("by_hand.py");
    std::fs::write(&script, PYTHON).map_err(|e| e.to_string())?;

    let mut round = 0;
    let ours = || {
        round += 1;
        let mut c = Command::new(&mlops);
        c.args(["train", "--format", "json", "--manifest"])
            .arg(dir.join("mlops.yaml"))
            .arg("--registry")
            .arg(dir.join(format!("registry-{round}")))
            .env_remove("GITHUB_ACTIONS");
        c
    };
    let theirs = || {
        let mut c = Command::new(&python);
        c.arg(&script).arg(&train_csv).arg(&holdout_csv);
        c
    };
    let (mine, other) = interleaved("wide", "pandas + scikit-learn", 3, ours, theirs)?;

    // The accuracies, once more with output, and the registry the holdout test uses.
    let registry = dir.join("registry");
    let card = super::train(&mlops, &dir.join("mlops.yaml"), &registry)?;
    let ours_accuracy = card["holdout_metrics"]["accuracy"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let by_hand = Command::new(&python)
        .arg(&script)
        .arg(&train_csv)
        .arg(&holdout_csv)
        .output()
        .map_err(|e| e.to_string())?;
    let their_accuracy: f64 = String::from_utf8_lossy(&by_hand.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("the Python script printed no accuracy: {e}"))?;

    // The holdout test against the service, parity on.
    let address = dir.join("address");
    let mut server = Command::new(&mlops)
        .args(["serve", "--quiet", "--port", "0", "--model", "wide-mlp@1"])
        .arg("--registry")
        .arg(&registry)
        .arg("--address-file")
        .arg(&address)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("mlops serve: {e}"))?;
    let started = std::time::Instant::now();
    let url = loop {
        if let Ok(a) = std::fs::read_to_string(&address)
            && !a.trim().is_empty()
        {
            break format!("http://{}", a.trim());
        }
        if started.elapsed().as_secs() > 30 {
            let _ = server.kill();
            return Err("mlops serve did not write its address in 30 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let tested = Command::new(&mlops)
        .args(["holdout", "--format", "json", "--model", "wide-mlp@1"])
        .arg("--manifest")
        .arg(dir.join("mlops.yaml"))
        .arg("--registry")
        .arg(&registry)
        .args(["--endpoint", &url])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .map_err(|e| e.to_string());
    let _ = server.kill();
    let _ = server.wait();
    let tested = tested?;
    if !tested.status.success() {
        return Err(format!(
            "mlops holdout failed ({}): {}",
            tested.status,
            String::from_utf8_lossy(&tested.stderr)
        ));
    }
    // The report is one JSON document over several lines.
    let report: serde_json::Value = serde_json::from_slice(&tested.stdout)
        .map_err(|e| format!("mlops holdout printed no JSON report: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "bench wide: {WIDTH} numeric columns + 1 categorical of {SHOPS}; train {:.0} MB \
         (5,000 rows), holdout {:.0} MB (2,000 rows); 8 epochs, one hidden layer of 16",
        sizes.0, sizes.1
    );
    println!(
        "  mlops train: {:.2} s (holdout accuracy {ours_accuracy:.4}); pandas + scikit-learn: \
         {:.2} s (holdout accuracy {their_accuracy:.4}); {:.1}x",
        mine.as_secs_f64(),
        other.as_secs_f64(),
        other.as_secs_f64() / mine.as_secs_f64().max(1e-9)
    );
    println!(
        "  mlops holdout against mlops serve: {:.0} rows/s ({:.1} M values/s), p99 {:.1} ms, \
         parity {} of {} rows, passed {}",
        report["rows_per_second"].as_f64().unwrap_or(0.0),
        report["rows_per_second"].as_f64().unwrap_or(0.0) * (WIDTH + 1) as f64 / 1e6,
        report["latency"]["p99_ms"].as_f64().unwrap_or(0.0),
        report["parity"]["checked"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(report["parity"]["mismatches"].as_u64().unwrap_or(0)),
        report["parity"]["checked"],
        report["passed"]
    );
    Ok(())
}
