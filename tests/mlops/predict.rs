//! `mlops predict`: batch scoring of the quickstart's holdout with the registered model gives
//! `mlops serve`'s answers row for row (the same labels, the same probabilities to the bit), in
//! every input and output format (Parquet read back by pyarrow); the output keeps the input's
//! order and id; a row the model cannot read fails naming its line and leaves nothing behind;
//! an existing output is kept; `s3://` in and out through moto; and memory does not grow with
//! the input.

use std::path::{Path, PathBuf};

use crate::bin::{mlops, root};
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn holdout() -> String {
    std::fs::read_to_string(root().join("examples/quickstart/data/digits-holdout.csv"))
        .expect("holdout")
}

/// `mlops --format json predict --model digits-mlp@1` of the shared registry, `extra` appended.
fn command(
    input: impl AsRef<std::ffi::OsStr>,
    output: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> std::process::Command {
    let mut c = mlops();
    c.args(["--format", "json", "predict", "--model", "digits-mlp@1"])
        .arg("--registry")
        .arg(crate::quickstart::shared())
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra);
    c
}

fn predict(input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    command(input, output, extra).output().expect("runs")
}

fn scored(input: &Path, output: &Path, extra: &[&str]) -> serde_json::Value {
    let out = predict(input, output, extra);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the JSON result")
}

/// A JSON-lines output's rows: (id as JSON, label, probabilities in class order as f32).
fn jsonl_rows(path: &Path) -> Vec<(serde_json::Value, String, Vec<f32>)> {
    std::fs::read_to_string(path)
        .expect("output")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let probabilities = (0..10)
                .map(|c| v["probabilities"][c.to_string()].as_f64().expect("p") as f32)
                .collect();
            let id = v.get("row").or_else(|| v.get("key")).cloned();
            (
                id.expect("an id"),
                v["label"].as_str().expect("label").to_owned(),
                probabilities,
            )
        })
        .collect()
}

/// The holdout posted to `mlops serve` (the label column dropped): each row's label and
/// probabilities.
fn served(registry: &Path) -> Vec<(String, Vec<f32>)> {
    let holdout = holdout();
    let body: String = holdout
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').expect("label").0))
        .collect();
    let mut server = Server::registered(registry, "digits-mlp@1");
    let answer = crate::http::post_csv(server.addr, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(server.stop().success());
    let v: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
    v["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            let probabilities = p["probabilities"]
                .as_array()
                .expect("probabilities")
                .iter()
                .map(|x| x.as_f64().expect("p") as f32)
                .collect();
            (
                p["label"].as_str().expect("label").to_owned(),
                probabilities,
            )
        })
        .collect()
}

/// The holdout as JSON lines with an id column `key` (`k-<row>`, a string), in file order.
fn holdout_jsonl(dir: &Path) -> PathBuf {
    let holdout = holdout();
    let mut lines = holdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut out = String::new();
    for (i, line) in lines.enumerate() {
        let mut object = serde_json::Map::new();
        object.insert("key".into(), format!("k-{}", i + 1).into());
        for (name, value) in header.iter().zip(line.split(',')) {
            let v: f64 = value.parse().expect("number");
            object.insert((*name).into(), v.into());
        }
        out.push_str(&serde_json::Value::Object(object).to_string());
        out.push('\n');
    }
    let path = dir.join("holdout.jsonl");
    std::fs::write(&path, out).expect("write");
    path
}

#[test]
fn predict_gives_serves_answers_row_for_row_in_every_format() {
    let registry = crate::quickstart::shared();
    let dir = tempfile::tempdir().expect("dir");
    let csv_in = root().join("examples/quickstart/data/digits-holdout.csv");
    let from_csv = dir.path().join("scores.jsonl");
    let done = scored(&csv_in, &from_csv, &["--batch-rows", "50"]);
    assert_eq!(done["rows"], 297, "{done:#}");
    assert_eq!(done["model"], "digits-mlp@1");
    assert_eq!(
        done["input_sha256"],
        crate::bin::sha256_hex(holdout().as_bytes())
    );
    let rows = jsonl_rows(&from_csv);
    let answers = served(registry);
    assert_eq!(rows.len(), answers.len());
    for (i, ((id, label, p), (served_label, served_p))) in rows.iter().zip(&answers).enumerate() {
        assert_eq!(id, &serde_json::json!(i + 1), "rows keep the input's order");
        assert_eq!(label, served_label, "row {}", i + 1);
        assert_eq!(
            p,
            served_p,
            "row {}: the same probabilities to the bit",
            i + 1
        );
    }

    // JSON lines in, with a string id column; CSV out: the same predictions, the ids kept.
    let jsonl_in = holdout_jsonl(dir.path());
    let csv_out = dir.path().join("scores.csv");
    scored(
        &jsonl_in,
        &csv_out,
        &["--id-column", "key", "--batch-rows", "64", "--threads", "3"],
    );
    let csv = std::fs::read_to_string(&csv_out).expect("csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    let expected_header: Vec<String> = ["key".to_owned(), "label".to_owned()]
        .into_iter()
        .chain((0..10).map(|c| format!("probability_{c}")))
        .collect();
    assert_eq!(header, expected_header.join(","));
    let csv_rows: Vec<&str> = lines.collect();
    assert_eq!(csv_rows.len(), 297);
    for (i, (line, (label, p))) in csv_rows.iter().zip(&answers).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], format!("k-{}", i + 1));
        assert_eq!(fields[1], label);
        let read: Vec<f32> = fields[2..]
            .iter()
            .map(|f| f.parse().expect("f32"))
            .collect();
        assert_eq!(&read, p, "row {}", i + 1);
    }

    // Parquet in (as pandas writes it) and out, read back by pyarrow.
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let parquet_in = dir.path().join("holdout.parquet");
    let parquet_out = dir.path().join("scores.parquet");
    let status = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, pandas as pd; pd.read_csv(sys.argv[1]).to_parquet(sys.argv[2], row_group_size=100)",
        ])
        .arg(&csv_in)
        .arg(&parquet_in)
        .status()
        .expect("python");
    assert!(status.success());
    scored(&parquet_in, &parquet_out, &["--id-column", "digit"]);
    let read = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, json, pyarrow.parquet as pq\n\
             t = pq.read_table(sys.argv[1])\n\
             print(json.dumps({'types': [str(f.type) for f in t.schema], 'names': t.schema.names, 'rows': t.to_pylist()}))",
        ])
        .arg(&parquet_out)
        .output()
        .expect("python");
    assert!(read.status.success(), "{}", text(&read.stderr));
    let table: serde_json::Value = serde_json::from_slice(&read.stdout).expect("json");
    assert_eq!(table["names"][0], "digit");
    assert_eq!(table["types"][0], "string");
    assert_eq!(table["types"][1], "string");
    assert_eq!(table["types"][2], "float");
    let holdout = holdout();
    let truth: Vec<&str> = holdout
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').expect("label").1)
        .collect();
    let table_rows = table["rows"].as_array().expect("rows");
    assert_eq!(table_rows.len(), 297);
    for (i, (row, (label, p))) in table_rows.iter().zip(&answers).enumerate() {
        assert_eq!(
            row["digit"], truth[i],
            "the id column is the input's, in order"
        );
        assert_eq!(row["label"], label.as_str());
        let read: Vec<f32> = (0..10)
            .map(|c| row[format!("probability_{c}")].as_f64().expect("p") as f32)
            .collect();
        assert_eq!(&read, p, "row {}", i + 1);
    }
}

/// What the directory holds, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn bad_input_is_named_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("dir");
    let holdout = holdout();
    // Line 150 of the file (row 149): a pixel that is not a number.
    let broken: String = holdout
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 149 {
                format!("oops{}\n", &l[l.find(',').expect("comma")..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, broken).expect("write");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let output = out_dir.join("scores.csv");
    let out = predict(&input, &output, &["--batch-rows", "16"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("in.csv:150"), "{stderr}");
    assert!(stderr.contains("`pixel_0`"), "{stderr}");
    assert!(
        names(&out_dir).is_empty(),
        "no output and no partial file: {:?}",
        names(&out_dir)
    );

    // An id column the file does not have; one with an empty value.
    let clean = dir.path().join("clean.csv");
    std::fs::write(&clean, &holdout).expect("write");
    let out = predict(&clean, &output, &["--id-column", "order_id"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no column `order_id`"),
        "{}",
        text(&out.stderr)
    );
    let gap: String = holdout
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("id,{l}\n"),
            7 => format!(",{l}\n"),
            _ => format!("{i},{l}\n"),
        })
        .collect();
    let with_ids = dir.path().join("ids.csv");
    std::fs::write(&with_ids, gap).expect("write");
    let out = predict(&with_ids, &output, &["--id-column", "id"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ids.csv:8: id column `id` is empty"),
        "{stderr}"
    );
    // An id column named like an output column.
    let out = predict(&clean, &output, &["--id-column", "label"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("output column"),
        "{}",
        text(&out.stderr)
    );
    assert!(names(&out_dir).is_empty(), "{:?}", names(&out_dir));

    // An existing output is kept without --overwrite, replaced with it.
    std::fs::write(&output, "keep me").expect("write");
    let out = predict(&clean, &output, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--overwrite"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&output).expect("read"), "keep me");
    let done = scored(&clean, &output, &["--overwrite"]);
    assert_eq!(done["rows"], 297);
    assert_eq!(names(&out_dir), ["scores.csv"]);
    // A format no name says.
    let out = predict(&clean, &out_dir.join("scores.txt"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--output-format"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn predict_reads_and_writes_s3_objects() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let (status, answer) = moto.http("PUT", "/batch", b"");
    assert_eq!(status, 200, "{answer}");
    let holdout = holdout();
    let (status, answer) = moto.http("PUT", "/batch/in/holdout.csv", holdout.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let dir = tempfile::tempdir().expect("dir");
    let local = dir.path().join("local.csv");
    scored(
        &root().join("examples/quickstart/data/digits-holdout.csv"),
        &local,
        &[],
    );
    let run = |extra: &[&str]| {
        let mut c = command(
            "s3://batch/in/holdout.csv",
            "s3://batch/out/scores.csv",
            extra,
        );
        moto.env(&mut c);
        c.output().expect("runs")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (status, answer) = moto.http("GET", "/batch/out/scores.csv", b"");
    assert_eq!(status, 200, "{answer}");
    let uploaded = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(
        uploaded,
        std::fs::read_to_string(&local).expect("local"),
        "the same scores as a local run"
    );
    // The object exists now: kept without --overwrite.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    // A missing input object is named.
    let mut c = command("s3://batch/in/none.csv", dir.path().join("none.csv"), &[]);
    moto.env(&mut c);
    let out = c.output().expect("runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("s3://batch/in/none.csv"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("none.csv").exists());
}

/// 80,000 and 320,000 rows (the holdout repeated): the peak resident memory the process
/// reports differs by less than 16 MiB, so memory follows the batch, not the input.
#[test]
fn memory_does_not_grow_with_the_input() {
    let dir = tempfile::tempdir().expect("dir");
    let holdout = holdout();
    let (header, body) = holdout.split_once('\n').expect("header");
    let rows: Vec<&str> = body.lines().collect();
    let mut peaks = Vec::new();
    // Both past one Parquet row group (65,536 rows, held until written), so that what is
    // compared is the streaming, not the row group filling up.
    for n in [80_000usize, 320_000] {
        let input = dir.path().join(format!("in-{n}.csv"));
        let mut text = String::with_capacity(n * 200);
        text.push_str(header);
        text.push('\n');
        for i in 0..n {
            text.push_str(rows[i % rows.len()]);
            text.push('\n');
        }
        std::fs::write(&input, text).expect("write");
        let done = scored(&input, &dir.path().join(format!("out-{n}.parquet")), &[]);
        assert_eq!(done["rows"], n);
        peaks.push(
            done["peak_rss_bytes"]
                .as_u64()
                .expect("peak_rss_bytes on Linux"),
        );
        std::fs::remove_file(&input).expect("rm");
    }
    let grown = peaks[1].saturating_sub(peaks[0]);
    assert!(
        grown < 16 << 20,
        "peak RSS {} MiB at 80k rows, {} MiB at 320k",
        peaks[0] >> 20,
        peaks[1] >> 20
    );
}

/// SIGTERM while a large file is being scored: exit 130, the run says it stopped, and neither
/// the output nor its staged file is left.
#[test]
fn sigterm_stops_scoring_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let holdout = holdout();
    let (header, body) = holdout.split_once('\n').expect("header");
    let rows: Vec<&str> = body.lines().collect();
    let input = dir.path().join("in.csv");
    let mut rows_text = String::with_capacity(2_000_000 * 200);
    rows_text.push_str(header);
    rows_text.push('\n');
    for i in 0..2_000_000 {
        rows_text.push_str(rows[i % rows.len()]);
        rows_text.push('\n');
    }
    std::fs::write(&input, rows_text).expect("write");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let child = command(&input, out_dir.join("scores.csv"), &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Once the staged file exists, scoring is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while names(&out_dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no staged file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("waits");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopped scoring"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(names(&out_dir).is_empty(), "{:?}", names(&out_dir));
}
