//! `cargo xtask bench train`: `mlops train` (burn) against the same MLP in PyTorch on CPU, in
//! one run, on the same files.

use std::path::PathBuf;
use std::process::Command;

use super::holdout::{timed_cpu, under_time};
use super::{json_line, median_f64, release_binary, tempdir};
use crate::root;

/// PyTorch for `bench train`, in its own virtual environment: the PyPI wheel brings CUDA
/// libraries (several GB) that nothing else needs.
const TORCH: &str = "torch==2.15.0";

fn torch_python() -> Result<PathBuf, String> {
    crate::venv("bench-torch", &[TORCH]).map(|bin| bin.join("python"))
}

/// The quickstart's training set split 80/20 by row (every fifth row to validation) so both
/// sides read the same files; returns (train, validation).
fn digits_split(dir: &std::path::Path) -> Result<(PathBuf, PathBuf), String> {
    let source = root().join("examples/quickstart/data/digits-train.csv");
    let text =
        std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty digits file")?;
    let (mut train, mut validation) = (format!("{header}\n"), format!("{header}\n"));
    for (i, line) in lines.enumerate() {
        let into = if i % 5 == 0 {
            &mut validation
        } else {
            &mut train
        };
        into.push_str(line);
        into.push('\n');
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let (t, v) = (data.join("train.csv"), data.join("validation.csv"));
    std::fs::write(&t, train).map_err(|e| e.to_string())?;
    std::fs::write(&v, validation).map_err(|e| e.to_string())?;
    std::fs::copy(
        root().join("examples/quickstart/data/digits-holdout.csv"),
        data.join("holdout.csv"),
    )
    .map_err(|e| e.to_string())?;
    Ok((t, v))
}

/// One training configuration: the network's hidden layers, the batch, burn's device, how many
/// runs (each with its own seed, the same on both sides) and the least burn/PyTorch ratio of
/// training rows per second the issue asks for (none for the software GPU).
struct Case {
    name: &'static str,
    hidden: &'static [u32],
    batch: u32,
    device: &'static str,
    runs: u64,
    goal: Option<f64>,
}

const CASES: [Case; 3] = [
    Case {
        name: "quickstart mlp [64], batch 64",
        hidden: &[64],
        batch: 64,
        device: "cpu",
        runs: 5,
        goal: Some(2.0),
    },
    Case {
        name: "wide mlp [512, 512], batch 256",
        hidden: &[512, 512],
        batch: 256,
        device: "cpu",
        runs: 5,
        goal: Some(1.0),
    },
    Case {
        name: "quickstart mlp [64], batch 64",
        hidden: &[64],
        batch: 64,
        device: "wgpu",
        runs: 3,
        goal: None,
    },
];

/// How far burn's mean validation accuracy may fall below PyTorch's.
const ACCURACY_MARGIN: f64 = 0.01;

/// What one side measured over a case's runs.
#[derive(Default)]
struct Side {
    rows_per_second: Vec<f64>,
    accuracy: Vec<f64>,
    /// CPU time (user + system) per training row, microseconds.
    cpu_per_row: Vec<f64>,
}

impl Side {
    fn mean_accuracy(&self) -> f64 {
        self.accuracy.iter().sum::<f64>() / self.accuracy.len().max(1) as f64
    }
}

/// `mlops train` (burn, CPU backend, and wgpu on whatever adapter this machine has) against the
/// same MLP in PyTorch on CPU: the same data files, layers, batch size, optimiser, learning rate
/// and epochs. Run `i` of a case seeds both sides with `i`: rows per second are medians over the
/// runs, accuracy a mean (one seed's accuracy on 300 validation rows moves by a few rows).
/// CPU per row: `mlops train`'s whole process (reading, training, scoring, registering) under
/// `/usr/bin/time`, PyTorch's training loop only (its interpreter and import cost more than our
/// whole process), so the comparison leans against us.
pub(super) fn run() -> Result<(), String> {
    let python = torch_python()?;
    let mlops = release_binary()?;
    let scratch = tempdir("bench-train")?;
    let (train_csv, validation_csv) = digits_split(&scratch)?;
    let rows = std::fs::read_to_string(&train_csv)
        .map_err(|e| e.to_string())?
        .lines()
        .count()
        .saturating_sub(1) as f64;
    let script = root().join("xtask/bench/train_torch.py");
    let quickstart = std::fs::read_to_string(root().join("examples/quickstart/mlops.yaml"))
        .map_err(|e| e.to_string())?;
    let (epochs, learning_rate) = (30u32, "0.003");
    println!(
        "bench train: digits ({rows} train / 300 validation rows, 64 features, 10 classes), {epochs} epochs, Adam lr {learning_rate}; run i seeds both sides with i; rows/s medians, accuracy means"
    );
    println!(
        "{:<31} {:>5} {:>12} {:>12} {:>6} {:>9} {:>9} {:>11} {:>11}",
        "case",
        "burn",
        "burn rows/s",
        "torch rows/s",
        "ratio",
        "burn acc",
        "torch acc",
        "burn us/row",
        "torch us/row"
    );
    let mut verdicts = Vec::new();
    for case in &CASES {
        let dir = scratch.join(format!(
            "{}-{}-{}",
            case.device,
            case.batch,
            case.hidden.len()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let layers: Vec<String> = case.hidden.iter().map(u32::to_string).collect();
        let (mut ours, mut theirs) = (Side::default(), Side::default());
        for seed in 1..=case.runs {
            let manifest = quickstart
                .replace(
                    "hidden_layers: [64]",
                    &format!("hidden_layers: [{}]", layers.join(", ")),
                )
                .replace("batch_size: 64", &format!("batch_size: {}", case.batch))
                .replace("device: cpu", &format!("device: {}", case.device))
                .replace("  seed: 42\n", &format!("  seed: {seed}\n"))
                .replace(
                    "path: data/digits-train.csv",
                    &format!("path: {}", train_csv.display()),
                )
                .replace(
                    "  holdout:\n    path: data/digits-holdout.csv\n",
                    &format!(
                        "  validation:\n    path: {}\n  holdout:\n    path: {}\n",
                        validation_csv.display(),
                        scratch.join("data/holdout.csv").display()
                    ),
                );
            std::fs::write(dir.join("mlops.yaml"), manifest).map_err(|e| e.to_string())?;
            let out = under_time(&mlops, None)
                .args(["train", "--format", "json", "--manifest"])
                .arg(dir.join("mlops.yaml"))
                .arg("--registry")
                .arg(dir.join("registry"))
                .env_remove("GITHUB_ACTIONS")
                .output()
                .map_err(|e| format!("cannot run /usr/bin/time (Debian package `time`): {e}"))?;
            // Exit 1 is a threshold miss, still a measurement.
            let doc: serde_json::Value = if out.status.code() == Some(1) {
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?
            } else {
                json_line(&out, "mlops train")?
            };
            let cpu = timed_cpu(&String::from_utf8_lossy(&out.stderr))?;
            ours.rows_per_second
                .push(doc["samples_per_second"].as_f64().unwrap_or(0.0));
            ours.accuracy
                .push(doc["metrics"]["accuracy"].as_f64().unwrap_or(0.0));
            ours.cpu_per_row
                .push(cpu * 1e6 / (rows * f64::from(epochs)));
            let out = Command::new(&python)
                .arg(&script)
                .arg(&train_csv)
                .arg(&validation_csv)
                .args([
                    "digit",
                    &layers.join(","),
                    &case.batch.to_string(),
                    learning_rate,
                ])
                .args([epochs.to_string(), seed.to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            let doc = json_line(&out, "train_torch.py")?;
            theirs
                .rows_per_second
                .push(doc["samples_per_second"].as_f64().unwrap_or(0.0));
            theirs
                .accuracy
                .push(doc["accuracy"].as_f64().unwrap_or(0.0));
            theirs.cpu_per_row.push(
                doc["cpu_seconds"].as_f64().unwrap_or(0.0) * 1e6 / (rows * f64::from(epochs)),
            );
        }
        let (o, t) = (
            median_f64(ours.rows_per_second.clone()),
            median_f64(theirs.rows_per_second.clone()),
        );
        let (oa, ta) = (ours.mean_accuracy(), theirs.mean_accuracy());
        println!(
            "{:<31} {:>5} {:>12.0} {:>12.0} {:>5.2}x {:>9.4} {:>9.4} {:>11.2} {:>11.2}",
            case.name,
            case.device,
            o,
            t,
            o / t,
            oa,
            ta,
            median_f64(ours.cpu_per_row),
            median_f64(theirs.cpu_per_row)
        );
        if let Some(goal) = case.goal {
            let met = o / t >= goal && oa >= ta - ACCURACY_MARGIN;
            verdicts.push(format!(
                "{} ({}): at least {goal}x PyTorch's rows/s with accuracy within {ACCURACY_MARGIN}: {}",
                case.name,
                case.device,
                if met { "met" } else { "NOT met" }
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    for v in verdicts {
        println!("goal: {v}");
    }
    Ok(())
}
