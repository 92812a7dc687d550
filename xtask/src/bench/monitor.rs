//! `cargo xtask bench monitor`: `mlops monitor` on 1,000,000 captured rows of 64 features (one
//! row per request, as online traffic is captured: a JSON line each, about 700 MB) against
//! Evidently's `DataDriftPreset` on the same rows (a CSV file read with pandas), the reference
//! being the training file. Eight features are moved by one standard deviation; both must name
//! the same ones. Then `mlops monitor` on 10,000,000 rows (the same file ten times) for its peak
//! RSS, which must not grow with the rows.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use super::holdout::{oha, oha_load, serve, timed, under_time};
use super::{release_binary, tempdir};

/// Evidently and the pandas it works with (0.7 does not run on pandas 3).
const EVIDENTLY: &[&str] = &["evidently==0.7.23", "pandas==2.3.3"];

const FEATURES: usize = 64;
/// The features production moved.
const MOVED: usize = 8;
const TRAIN_ROWS: usize = 20_000;
const CAPTURED_ROWS: usize = 1_000_000;

const MANIFEST: &str = r#"version: 1
project:
  name: drift
  repository: acme/drift
data:
  features: ["f_{0..63}"]
  label: y
  train: { path: data/train.csv }
  holdout: { path: data/holdout.csv }
model:
  name: drift-mlp
  task: classification
  family: mlp
  hyperparameters: { hidden_layers: [8], activation: relu }
training:
  backend: local
  epochs: 2
  batch_size: 256
  learning_rate: 0.01
  optimizer: adam
  seed: 1
evaluation:
  metrics: [accuracy]
environments:
  staging: { url: "http://127.0.0.1:8080" }
  production: { url: "https://drift.example.com" }
"#;

/// Evidently's verdicts on the same rows: prints the time to read both files, the time of the
/// report, and the columns it found drifted.
const EVIDENTLY_SCRIPT: &str = r#"
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
started = time.time()
reference = pd.read_csv(sys.argv[1]).drop(columns=["y"])
current = pd.read_csv(sys.argv[2])
read = time.time()
result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).dict()
done = time.time()
drifted = sorted(
    m["config"]["column"] for m in result["metrics"]
    if m["config"]["type"].endswith("ValueDrift") and m["value"] > m["config"]["threshold"]
)
methods = sorted({m["config"]["method"] for m in result["metrics"] if "method" in m["config"]})
print(json.dumps({"read": read - started, "report": done - read, "drifted": drifted, "methods": methods}))
"#;

/// A seeded generator of standard normal numbers (Box-Muller over a 64-bit LCG).
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One row's features: feature j is centred on j with a spread of 1 + j % 4; `moved` shifts the
/// first [`MOVED`] by one spread.
fn row(r: &mut Normal, moved: bool, out: &mut String) -> bool {
    out.clear();
    let mut signal = 0.0;
    for j in 0..FEATURES {
        let spread = 1.0 + (j % 4) as f64;
        let shift = if moved && j < MOVED { spread } else { 0.0 };
        let v = j as f64 + spread * r.next() + shift;
        if j < 2 {
            signal += (v - j as f64) / spread;
        }
        if j > 0 {
            out.push(',');
        }
        out.push_str(&format!("{v:.3}"));
    }
    signal > 0.0
}

fn table(rows: usize, seed: u64) -> String {
    let mut r = Normal(seed);
    let header: Vec<String> = (0..FEATURES).map(|j| format!("f_{j}")).collect();
    let mut out = format!("{},y\n", header.join(","));
    let mut line = String::new();
    for _ in 0..rows {
        let y = row(&mut r, false, &mut line);
        out.push_str(&line);
        out.push_str(if y { ",1\n" } else { ",0\n" });
    }
    out
}

/// Writes the captured rows twice: as `mlops serve` captures them (one request per row, its
/// answer the class) and as a CSV file for pandas.
fn captured(capture: &Path, csv: &Path, artifact: &str, model: &str) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(capture).map_err(io)?);
    let mut plain = std::io::BufWriter::new(std::fs::File::create(csv).map_err(io)?);
    let header: Vec<String> = (0..FEATURES).map(|j| format!("f_{j}")).collect();
    writeln!(plain, "{}", header.join(",")).map_err(io)?;
    let mut r = Normal(99);
    let mut line = String::new();
    for i in 0..CAPTURED_ROWS {
        let y = row(&mut r, true, &mut line);
        writeln!(plain, "{line}").map_err(io)?;
        let record = serde_json::json!({
            "id": format!("{i:016x}"),
            "time": "2026-12-05T10:00:00.000Z",
            "model": model,
            "artifact": artifact,
            "route": "invocations",
            "rows": 1,
            "input": {"content_type": "text/csv", "encoding": "text", "data": format!("{line}\n")},
            "output": {"content_type": "text/csv", "encoding": "text", "data": if y { "1\n" } else { "0\n" }},
        });
        writeln!(jsonl, "{record}").map_err(io)?;
    }
    jsonl.flush().map_err(io)?;
    plain.flush().map_err(io)
}

/// One `mlops monitor` run under `/usr/bin/time`: seconds, peak RSS (MB), the report.
fn monitor(
    mlops: &Path,
    dir: &Path,
    captured: &Path,
) -> Result<(f64, f64, serde_json::Value), String> {
    let mut c = under_time(mlops, None);
    c.args(["monitor", "--format", "json", "--model", "drift-mlp@1"])
        .arg("--manifest")
        .arg(dir.join("mlops.yaml"))
        .arg("--registry")
        .arg(dir.join("registry"))
        .arg("--captured")
        .arg(captured)
        .env_remove("GITHUB_ACTIONS");
    let started = std::time::Instant::now();
    let out = c.output().map_err(|e| format!("/usr/bin/time: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss: f64 = timed(&stderr, "maxrss_kb")?
        .parse()
        .map_err(|e| format!("maxrss_kb: {e}"))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("mlops monitor printed no report ({e}): {stderr}"))?;
    Ok((seconds, rss / 1024.0, report))
}

fn drifted(report: &serde_json::Value) -> Vec<String> {
    let mut columns: Vec<String> = report["features"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["over"].as_array().is_some_and(|o| !o.is_empty()))
                .filter_map(|f| f["column"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    columns.sort();
    columns
}

pub(crate) fn run() -> Result<(), String> {
    let python = crate::venv("bench-evidently", EVIDENTLY)?.join("python");
    let mlops = release_binary()?;
    let dir = tempdir("bench-monitor")?;
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(dir.join("data")).map_err(io)?;
    std::fs::write(dir.join("mlops.yaml"), MANIFEST).map_err(io)?;
    let train_csv = dir.join("data/train.csv");
    std::fs::write(&train_csv, table(TRAIN_ROWS, 1)).map_err(io)?;
    std::fs::write(dir.join("data/holdout.csv"), table(2_000, 2)).map_err(io)?;
    let registry = dir.join("registry");
    super::train(&mlops, &dir.join("mlops.yaml"), &registry)?;
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.join("drift-mlp/1/card.json")).map_err(io)?)
            .map_err(|e| e.to_string())?;
    let artifact = card["artifact"]["sha256"]
        .as_str()
        .ok_or("the card has no artifact digest")?;

    let one = dir.join("one");
    std::fs::create_dir_all(&one).map_err(io)?;
    let capture = one.join("capture.jsonl");
    let current_csv = dir.join("current.csv");
    captured(&capture, &current_csv, artifact, "drift-mlp@1")?;
    // Ten million rows: the same file ten times over.
    let ten = dir.join("ten");
    std::fs::create_dir_all(&ten).map_err(io)?;
    for k in 0..10 {
        std::os::unix::fs::symlink(&capture, ten.join(format!("capture-{k}.jsonl"))).map_err(io)?;
    }
    let megabytes = std::fs::metadata(&capture).map_or(0.0, |m| m.len() as f64 / 1e6);
    let script = dir.join("evidently_drift.py");
    std::fs::write(&script, EVIDENTLY_SCRIPT).map_err(io)?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut last = (serde_json::Value::Null, serde_json::Value::Null);
    for _ in 0..3 {
        let (seconds, rss, report) = monitor(&mlops, &dir, &one)?;
        ours.push((seconds, rss));
        let started = std::time::Instant::now();
        let out = Command::new(&python)
            .arg(&script)
            .arg(&train_csv)
            .arg(&current_csv)
            .output()
            .map_err(|e| format!("python: {e}"))?;
        let wall = started.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "Evidently failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let said: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("the Evidently script printed no JSON: {e}"))?;
        theirs.push(wall);
        last = (report, said);
    }
    let (report, said) = last;
    let (ten_seconds, ten_rss, ten_report) = monitor(&mlops, &dir, &ten)?;
    let _ = std::fs::remove_dir_all(&dir);

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mine = median(ours.iter().map(|o| o.0).collect());
    let rss = ours.iter().map(|o| o.1).fold(0.0, f64::max);
    let other = median(theirs);
    let ours_drifted = drifted(&report);
    let their_drifted: Vec<String> = said["drifted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let same = ours_drifted == their_drifted;
    let ratio = other / mine.max(1e-9);
    println!(
        "bench monitor: {CAPTURED_ROWS} captured rows x {FEATURES} features ({megabytes:.0} MB of \
         capture lines, one request per row), {MOVED} features moved by one spread; reference \
         {TRAIN_ROWS} training rows"
    );
    println!(
        "  mlops monitor: {mine:.2} s ({:.0} rows/s), peak RSS {rss:.1} MB; drifted: {}",
        CAPTURED_ROWS as f64 / mine,
        ours_drifted.join(" ")
    );
    println!(
        "  Evidently DataDriftPreset (pandas read_csv + report): {other:.2} s (read {:.2} s, \
         report {:.2} s; {}); drifted: {}",
        said["read"].as_f64().unwrap_or(0.0),
        said["report"].as_f64().unwrap_or(0.0),
        said["methods"],
        their_drifted.join(" ")
    );
    println!(
        "  same verdicts: {same}; {ratio:.1}x (goal 20x: {})",
        super::goal(ratio >= 20.0 && same)
    );
    println!(
        "  10,000,000 rows: {ten_seconds:.2} s ({:.0} rows/s), peak RSS {ten_rss:.1} MB (1M: \
         {rss:.1} MB; goal under 128 MB and flat: {}); {} rows counted",
        10.0 * CAPTURED_ROWS as f64 / ten_seconds,
        super::goal(ten_rss < 128.0 && ten_rss <= rss * 1.1 + 1.0),
        ten_report["read"]["rows"]
    );
    capture_cost(&mlops)
}

/// Rows per request in the capture rounds (the holdout benchmark's batch).
const BATCH: usize = 256;

/// One oha round: rows per second and p99 (ms).
fn load(oha: &Path, url: &str, body: &Path) -> Result<(f64, f64), String> {
    let (doc, _) = oha_load(Command::new(oha), url, body)?;
    Ok((
        doc["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0) * BATCH as f64,
        doc["latencyPercentiles"]["p99"].as_f64().unwrap_or(0.0) * 1000.0,
    ))
}

/// What capturing every request costs the service: five rounds each way, alternating; the
/// medians.
fn capture_cost(mlops: &Path) -> Result<(), String> {
    let oha = oha()?;
    let dir = tempdir("bench-capture")?;
    let io = |e: std::io::Error| e.to_string();
    let registry = dir.join("registry");
    super::train(
        mlops,
        &crate::root().join("examples/quickstart/mlops.yaml"),
        &registry,
    )?;
    let holdout =
        std::fs::read_to_string(crate::root().join("examples/quickstart/data/digits-holdout.csv"))
            .map_err(io)?;
    let mut lines = holdout.lines();
    let header = lines.next().ok_or("empty holdout")?;
    let strip = |l: &str| {
        l.rsplit_once(',')
            .map_or(l, |(features, _)| features)
            .to_owned()
    };
    let mut body = strip(header) + "\n";
    for l in lines.cycle().take(BATCH) {
        body.push_str(&strip(l));
        body.push('\n');
    }
    let body_file = dir.join("body.csv");
    std::fs::write(&body_file, body).map_err(io)?;
    let capture = dir.join("capture");
    let (mut plain, mut captured, mut sampled) = (Vec::new(), Vec::new(), Vec::new());
    let mut shares = Vec::new();
    let mut written = 0u64;
    for _ in 0..5 {
        let service = serve(mlops, &registry, None, &[])?;
        plain.push(load(&oha, &service.url, &body_file)?);
        drop(service);
        let _ = std::fs::remove_dir_all(&capture);
        let service = serve(
            mlops,
            &registry,
            None,
            &["--capture".as_ref(), capture.as_os_str()],
        )?;
        captured.push(load(&oha, &service.url, &body_file)?);
        // What the writer kept of what was answered, once its queue has drained.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let metrics = super::get(&format!("{}/metrics", service.url))?;
        shares.push(captured_share(&metrics)?);
        drop(service);
        written = std::fs::read_dir(&capture)
            .map(|_| dir_bytes(&capture))
            .unwrap_or(0);
        let _ = std::fs::remove_dir_all(&capture);
        let service = serve(
            mlops,
            &registry,
            None,
            &[
                "--capture".as_ref(),
                capture.as_os_str(),
                "--capture-sample-percent".as_ref(),
                "10".as_ref(),
            ],
        )?;
        sampled.push(load(&oha, &service.url, &body_file)?);
        drop(service);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rows = (
        median(plain.iter().map(|p| p.0).collect()),
        median(captured.iter().map(|p| p.0).collect()),
    );
    let p99 = (
        median(plain.iter().map(|p| p.1).collect()),
        median(captured.iter().map(|p| p.1).collect()),
    );
    let fewer = 1.0 - rows.1 / rows.0;
    let slower = p99.1 / p99.0 - 1.0;
    let tenth = (
        median(sampled.iter().map(|p| p.0).collect()),
        median(sampled.iter().map(|p| p.1).collect()),
    );
    println!(
        "  capture at 100% under oha ({BATCH}-row CSV bodies, 4 in flight, 8 s x 5 rounds each): \
         {:.0} rows/s p99 {:.2} ms without, {:.0} rows/s p99 {:.2} ms with ({:.0} MB written in \
         the last round); {:+.1}% rows/s (goal at most 5% fewer: {}), {:+.1}% p99 (goal at most \
         10% more: {})",
        rows.0,
        p99.0,
        rows.1,
        p99.1,
        written as f64 / 1e6,
        -fewer * 100.0,
        super::goal(fewer <= 0.05),
        slower * 100.0,
        super::goal(slower <= 0.10)
    );
    println!(
        "  requests captured at 100% under that load (the writer yields the CPU to predictions \
         and sheds what its queue cannot hold): median {:.1}% (rounds: {})",
        median(shares.clone()) * 100.0,
        shares
            .iter()
            .map(|s| format!("{:.1}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  capture at 10%: {:.0} rows/s p99 {:.2} ms ({:+.1}% rows/s, {:+.1}% p99)",
        tenth.0,
        tenth.1,
        (tenth.0 / rows.0 - 1.0) * 100.0,
        (tenth.1 / p99.0 - 1.0) * 100.0
    );
    Ok(())
}

/// The share of answered requests the capture wrote, from `/metrics`: written over written and
/// lost.
fn captured_share(metrics: &str) -> Result<f64, String> {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("no `{name}` in /metrics"))
    };
    let written = value("mlops_capture_requests_total ")?;
    let lost = value("mlops_capture_lost_total{reason=\"queue_full\"} ")?
        + value("mlops_capture_lost_total{reason=\"write_failed\"} ")?;
    Ok(if written + lost > 0.0 {
        written / (written + lost)
    } else {
        0.0
    })
}

/// The bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => dirs.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
