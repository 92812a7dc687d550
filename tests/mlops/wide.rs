//! A wide file: 2,000 numeric feature columns (one `f_{0..1999}` range) and a categorical one
//! of 40 categories, through training, `mlops serve` and the holdout test with parity. The
//! record reader, the body parser, the one-hot encoding and the request batches all meet rows of
//! about 12 KB here, not the quickstart's 64 short fields.

use std::path::Path;

use crate::bin::mlops;
use crate::server::Server;

use crate::wide_table::{MANIFEST, SHOPS, WIDTH, table};

fn run(c: &mut std::process::Command) -> std::process::Output {
    let out = c.env_remove("GITHUB_ACTIONS").output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn two_thousand_columns_train_serve_and_pass_the_holdout_with_parity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).expect("mkdir");
    std::fs::write(d.join("mlops.yaml"), MANIFEST).expect("manifest");
    std::fs::write(d.join("data/train.csv"), table(600, 1)).expect("train");
    std::fs::write(d.join("data/holdout.csv"), table(200, 2)).expect("holdout");
    let registry = d.join("registry");
    run(mlops()
        .args(["train", "--format", "json", "--manifest"])
        .arg(d.join("mlops.yaml"))
        .arg("--registry")
        .arg(&registry));
    let bundle: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.join("wide-mlp/1/model.json")).expect("bundle"),
    )
    .expect("json");
    assert_eq!(
        bundle["signature"]["features"].as_array().map(Vec::len),
        Some(WIDTH + 1)
    );
    assert_eq!(bundle["architecture"]["inputs"], WIDTH + SHOPS);

    let registry = registry.to_string_lossy().into_owned();
    let server = Server::start(
        mlops(),
        &["--quiet", "--model", "wide-mlp@1", "--registry", &registry],
    );
    let out = run(mlops()
        .args(["holdout", "--format", "json", "--model", "wide-mlp@1"])
        .arg("--manifest")
        .arg(d.join("mlops.yaml"))
        .args(["--registry", &registry, "--endpoint", &server.url()]));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(r["parity"]["checked"], 200, "{r}");
    assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    assert_eq!(r["passed"], true, "{r}");
    check_one_row(&server, Path::new(d));
}

/// One holdout row (label dropped) as a headerless CSV request: one prediction.
fn check_one_row(server: &Server, project: &Path) {
    let holdout = std::fs::read_to_string(project.join("data/holdout.csv")).expect("holdout");
    let row = holdout.lines().nth(1).expect("a row");
    let body = format!("{}\n", &row[..row.rfind(',').expect("label")]);
    let a = crate::http::post_csv(server.addr, &body);
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["predictions"].as_array().map(Vec::len), Some(1));
}
