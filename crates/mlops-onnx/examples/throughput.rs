//! Rows per second of an ONNX model run by mlops-onnx (tract) in this process, for
//! `cargo xtask bench serve-onnx`, which runs onnxruntime on the same model and rows beside it.
//!
//! `throughput MODEL.onnx ROWS.csv WIDTH SECONDS BATCH...`: ROWS.csv holds feature rows only
//! (no header, WIDTH numbers a line); each BATCH size is timed for SECONDS (after one warm-up
//! batch) over batches cut from the rows in turn. One JSON line per batch size:
//! `{"batch": B, "rows_per_second": R, "batches": N}`.

use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("throughput: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, rows, width, seconds, batches @ ..] = args.as_slice() else {
        return Err("usage: throughput MODEL.onnx ROWS.csv WIDTH SECONDS BATCH...".into());
    };
    let width: usize = width.parse().map_err(|e| format!("WIDTH: {e}"))?;
    let seconds: f64 = seconds.parse().map_err(|e| format!("SECONDS: {e}"))?;
    let bytes = std::fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let model = mlops_onnx::Model::load(&bytes, width)?;
    let text = std::fs::read_to_string(rows).map_err(|e| format!("{rows}: {e}"))?;
    let mut values: Vec<f32> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let row: Result<Vec<f32>, _> = line.split(',').map(str::parse::<f32>).collect();
        let row = row.map_err(|e| format!("{rows}:{}: {e}", n + 1))?;
        if row.len() != width {
            return Err(format!(
                "{rows}:{}: {} values, not {width}",
                n + 1,
                row.len()
            ));
        }
        values.extend(row);
    }
    let count = values.len() / width;
    if count == 0 {
        return Err(format!("{rows}: no rows"));
    }
    for batch in batches {
        let batch: usize = batch.parse().map_err(|e| format!("BATCH: {e}"))?;
        if batch == 0 || batch > count {
            return Err(format!("a batch of {batch} rows, from {count} rows"));
        }
        let slice = |i: usize| {
            let start = (i * batch) % (count - batch + 1);
            values
                .get(start * width..(start + batch) * width)
                .unwrap_or_default()
        };
        model.predict(slice(0))?;
        let budget = Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut done = 0usize;
        while started.elapsed() < budget {
            model.predict(slice(done))?;
            done += 1;
        }
        let rate = (done * batch) as f64 / started.elapsed().as_secs_f64();
        println!("{{\"batch\": {batch}, \"rows_per_second\": {rate:.1}, \"batches\": {done}}}");
    }
    Ok(())
}
