//! `cargo xtask bench predict`: `mlops predict` (release build) on 1,000,000 rows of the
//! quickstart's 64 features (its holdout rows repeated, a 134 MB CSV file) against the batch
//! scripts teams write by hand (`xtask/bench/predict.py`): pandas reading the file in chunks and
//! onnxruntime scoring the same ONNX model (a scikit-learn StandardScaler + MLP exported by
//! skl2onnx, registered in mlops as `family: onnx`), and pandas with PyTorch running the burn
//! model's twin (the version `mlops train` registers, its weights and standardisation loaded into
//! an `nn.Sequential`). Every tool writes the same output: the row number, the label and each
//! class's probability, as CSV. Three rounds, interleaved, medians of the whole process's wall
//! time; the labels of each pair compared row by row. Then `mlops predict` on 10,000,000 rows
//! (the same file ten times) for its peak RSS, which must stay under 64 MB and not grow.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::holdout::{timed, under_time};
use super::{goal, median_f64, release_binary, tempdir};
use crate::{ml_tools, root};

const ROWS: usize = 1_000_000;
const ROUNDS: usize = 3;
/// Rows per chunk the Python scripts read (pandas' `chunksize`) and score.
const CHUNK: usize = 100_000;
/// PyTorch and the pandas the twin's script reads with (the train bench pins the same torch).
const TORCH: &[&str] = &["torch==2.15.0", "pandas==2.3.3"];

/// One run: wall seconds and peak RSS (MB).
#[derive(Debug, Clone, Copy)]
struct Run {
    seconds: f64,
    rss_mb: f64,
}

/// `command` under `/usr/bin/time`, which must succeed.
fn measured(mut command: Command, who: &str) -> Result<Run, String> {
    command
        .env_remove("GITHUB_ACTIONS")
        .env_remove("RUST_BACKTRACE");
    let started = std::time::Instant::now();
    let out = command.output().map_err(|e| format!("{who}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{who} failed ({}): {stderr}", out.status));
    }
    let rss: f64 = timed(&stderr, "maxrss_kb")?
        .parse()
        .map_err(|e| format!("maxrss_kb: {e}"))?;
    Ok(Run {
        seconds,
        rss_mb: rss / 1024.0,
    })
}

fn mlops_predict(
    mlops: &Path,
    registry: &Path,
    input: &Path,
    output: &Path,
) -> Result<Run, String> {
    let _ = std::fs::remove_file(output);
    let mut c = under_time(mlops, None);
    c.args(["predict", "--model", "digits-mlp@1", "--registry"])
        .arg(registry)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output);
    measured(c, "mlops predict")
}

fn script(
    python: &Path,
    mode: &str,
    model: &Path,
    input: &Path,
    output: &Path,
) -> Result<Run, String> {
    let mut c = under_time(python, None);
    c.arg(root().join("xtask/bench/predict.py"))
        .arg(mode)
        .arg(model)
        .arg(input)
        .arg(output)
        .arg(CHUNK.to_string());
    measured(c, &format!("predict.py {mode}"))
}

/// The label column (the second) of a scored CSV file.
fn labels(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap_or_default().to_owned())
        .collect())
}

/// Rows whose labels differ, of all rows (the files must have as many).
fn disagreements(a: &Path, b: &Path) -> Result<usize, String> {
    let (a, b) = (labels(a)?, labels(b)?);
    if a.len() != b.len() {
        return Err(format!("{} rows against {}", a.len(), b.len()));
    }
    Ok(a.iter().zip(&b).filter(|(x, y)| x != y).count())
}

/// A project of the quickstart's data in `dir` whose model section is `model`, registered.
fn registered(mlops: &Path, dir: &Path, model: Option<&str>) -> Result<PathBuf, String> {
    let data = root().join("examples/quickstart/data");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut manifest = std::fs::read_to_string(root().join("examples/quickstart/mlops.yaml"))
        .map_err(|e| e.to_string())?
        .replace("path: data/", &format!("path: {}/", data.display()));
    if let Some(model) = model {
        let mlp =
            "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n";
        if !manifest.contains(mlp) {
            return Err("the quickstart's model section moved; update the bench".into());
        }
        manifest = manifest.replace(mlp, model);
    }
    std::fs::write(dir.join("mlops.yaml"), manifest).map_err(|e| e.to_string())?;
    let registry = dir.join("registry");
    super::train(mlops, &dir.join("mlops.yaml"), &registry)?;
    Ok(registry)
}

pub(crate) fn run() -> Result<(), String> {
    let ml = ml_tools()?.join("python");
    let torch = crate::venv("bench-torch-pandas", TORCH)?.join("python");
    let mlops = release_binary()?;
    let scratch = tempdir("bench-predict")?;
    let io = |e: std::io::Error| e.to_string();
    let data = root().join("examples/quickstart/data");
    crate::run(
        Command::new(&ml)
            .arg(root().join("xtask/bench/serve-onnx/helper.py"))
            .arg("export")
            .arg(data.join("digits-train.csv"))
            .arg(data.join("digits-holdout.csv"))
            .arg(&scratch),
    )?;
    let onnx_model = scratch.join("model.onnx");
    let onnx_registry = registered(
        &mlops,
        &scratch.join("onnx"),
        Some(&format!(
            "  family: onnx\n  path: {}\n",
            onnx_model.display()
        )),
    )?;
    let burn_registry = registered(&mlops, &scratch.join("burn"), None)?;
    let burn_version = burn_registry.join("digits-mlp/1");

    // The input: the holdout's rows (label column kept, as a scoring input often has extra
    // columns) repeated to a million; then ten of those for the memory run.
    let holdout = std::fs::read_to_string(data.join("digits-holdout.csv")).map_err(io)?;
    let (header, body) = holdout
        .split_once('\n')
        .ok_or("the holdout has no header")?;
    let lines: Vec<&str> = body.lines().collect();
    let input = scratch.join("rows-1m.csv");
    let big = scratch.join("rows-10m.csv");
    {
        let mut one = std::io::BufWriter::new(std::fs::File::create(&input).map_err(io)?);
        let mut ten = std::io::BufWriter::new(std::fs::File::create(&big).map_err(io)?);
        writeln!(one, "{header}").map_err(io)?;
        writeln!(ten, "{header}").map_err(io)?;
        for _ in 0..10 {
            for i in 0..ROWS {
                writeln!(ten, "{}", lines[i % lines.len()]).map_err(io)?;
            }
        }
        for i in 0..ROWS {
            writeln!(one, "{}", lines[i % lines.len()]).map_err(io)?;
        }
        one.flush().map_err(io)?;
        ten.flush().map_err(io)?;
    }
    let bytes = std::fs::metadata(&input).map_err(io)?.len();
    println!(
        "input: {ROWS} rows of 64 features and the label, {:.0} MB of CSV; {ROUNDS} rounds, interleaved",
        bytes as f64 / 1e6
    );

    let out = |name: &str| scratch.join(format!("{name}.csv"));
    let mut runs: [Vec<Run>; 4] = Default::default();
    for _ in 0..ROUNDS {
        runs[0].push(mlops_predict(
            &mlops,
            &onnx_registry,
            &input,
            &out("mlops-onnx"),
        )?);
        runs[1].push(script(
            &ml,
            "onnx",
            &onnx_model,
            &input,
            &out("onnxruntime"),
        )?);
        runs[2].push(mlops_predict(
            &mlops,
            &burn_registry,
            &input,
            &out("mlops-burn"),
        )?);
        runs[3].push(script(
            &torch,
            "torch",
            &burn_version,
            &input,
            &out("torch"),
        )?);
    }
    let names = [
        "mlops predict, ONNX model (tract)",
        "pandas + onnxruntime, ONNX model",
        "mlops predict, burn model",
        "pandas + PyTorch, the burn model's twin",
    ];
    println!(
        "\n| {:<42} | {:>9} | {:>10} | {:>8} |",
        "tool", "seconds", "rows/s", "peak RSS"
    );
    println!("|{:-<44}|{:->11}|{:->12}|{:->10}|", "", "", "", "");
    let mut rate = [0f64; 4];
    for (i, (name, r)) in names.iter().zip(&runs).enumerate() {
        let seconds = median_f64(r.iter().map(|x| x.seconds).collect());
        let rss = median_f64(r.iter().map(|x| x.rss_mb).collect());
        rate[i] = ROWS as f64 / seconds;
        println!(
            "| {name:<42} | {seconds:>9.2} | {:>10.0} | {rss:>5.1} MB |",
            rate[i]
        );
    }
    let onnx_off = disagreements(&out("mlops-onnx"), &out("onnxruntime"))?;
    let burn_off = disagreements(&out("mlops-burn"), &out("torch"))?;
    println!(
        "\nlabels that differ: mlops vs onnxruntime {onnx_off} of {ROWS}; mlops vs the PyTorch twin {burn_off} of {ROWS}"
    );
    let fastest_python = rate[1].max(rate[3]);
    let ratio_onnx = rate[0] / fastest_python;
    let ratio_burn = rate[2] / fastest_python;
    println!(
        "mlops / the faster Python script: ONNX model {ratio_onnx:.2}x, burn model {ratio_burn:.2}x"
    );
    println!(
        "goal at least 3x the faster one: ONNX model {}, burn model {}",
        goal(ratio_onnx >= 3.0),
        goal(ratio_burn >= 3.0)
    );

    let big_out = scratch.join("big.csv");
    let ten_onnx = mlops_predict(&mlops, &onnx_registry, &big, &big_out)?;
    let ten_burn = mlops_predict(&mlops, &burn_registry, &big, &big_out)?;
    let one_onnx = median_f64(runs[0].iter().map(|x| x.rss_mb).collect());
    let one_burn = median_f64(runs[2].iter().map(|x| x.rss_mb).collect());
    println!(
        "\npeak RSS 1M / 10M rows: ONNX model {one_onnx:.1} / {:.1} MB ({:.1} s for 10M), burn model {one_burn:.1} / {:.1} MB ({:.1} s)",
        ten_onnx.rss_mb, ten_onnx.seconds, ten_burn.rss_mb, ten_burn.seconds
    );
    let worst = one_onnx
        .max(one_burn)
        .max(ten_onnx.rss_mb)
        .max(ten_burn.rss_mb);
    let growth = (ten_onnx.rss_mb - one_onnx).max(ten_burn.rss_mb - one_burn);
    println!(
        "goal peak RSS under 64 MB: {} (worst {worst:.1} MB); flat from 1M to 10M: {} (grew at most {growth:.1} MB)",
        goal(worst < 64.0),
        goal(growth < 4.0)
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
