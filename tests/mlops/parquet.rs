//! Parquet datasets, as pandas writes them (pyarrow underneath; snappy, zstd and gzip pages):
//! `mlops train` on the quickstart's rows as Parquet trains exactly the model the CSV files
//! give (the same weights' digest, the same metrics), `mlops holdout` reads a Parquet holdout
//! file (local and `s3://`) with parity on every row, and a column that is not numeric is
//! refused naming the column and the row.

use std::path::Path;

use crate::bin::{mlops, train_project as train};
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `csv` as Parquet at `parquet` with pandas, compressed with `codec`; `edit` is Python
/// run on the frame `df` before (e.g. to change a column's type).
fn to_parquet(csv: &Path, parquet: &Path, codec: &str, edit: &str) -> Option<()> {
    let python = crate::tools::ml_python()?;
    let script = format!(
        "import sys\nimport pandas as pd\ndf = pd.read_csv(sys.argv[1])\n{edit}\ndf.to_parquet(sys.argv[2], compression='{codec}', row_group_size=100)\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .arg(csv)
        .arg(parquet)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some(())
}

fn card(project: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(project.join("registry/digits-mlp/1/card.json")).expect("card"),
    )
    .expect("json")
}

#[test]
fn parquet_datasets_train_the_same_model_and_holdout_test_it() {
    let csv = crate::quickstart::copy(|t| t);
    let parquet = crate::quickstart::copy(|t| {
        t.replace("data/digits-train.csv", "data/digits-train.parquet")
            .replace("data/digits-holdout.csv", "data/digits-holdout.parquet")
    });
    let data = parquet.path().join("data");
    for (name, codec) in [("digits-train", "snappy"), ("digits-holdout", "zstd")] {
        if to_parquet(
            &data.join(format!("{name}.csv")),
            &data.join(format!("{name}.parquet")),
            codec,
            "",
        )
        .is_none()
        {
            return;
        }
    }
    let (a, b) = (train(csv.path()), train(parquet.path()));
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b.stderr));
    let (from_csv, from_parquet) = (card(csv.path()), card(parquet.path()));
    assert_eq!(from_parquet["metrics"], from_csv["metrics"]);
    assert_eq!(from_parquet["rows"], from_csv["rows"], "the same rows");
    let weights = |dir: &Path| {
        std::fs::read(dir.join("registry/digits-mlp/1/model.safetensors")).expect("weights")
    };
    assert_eq!(
        weights(parquet.path()),
        weights(csv.path()),
        "the same weights, bit for bit"
    );
    assert_eq!(from_parquet["datasets"]["train"]["rows"], 1500);
    let recorded = &from_parquet["datasets"]["holdout"];
    assert_eq!(recorded["path"], "data/digits-holdout.parquet");
    assert_eq!(recorded["rows"], 297);
    let sha = {
        use sha2::Digest;
        let bytes = std::fs::read(data.join("digits-holdout.parquet")).expect("file");
        mlops_artifacts::artifact::hex(&sha2::Sha256::digest(&bytes))
    };
    assert_eq!(recorded["sha256"], sha.as_str(), "the file's own digest");

    // The holdout test reads the Parquet file (here gzip-compressed) and passes with parity.
    let gzip = parquet.path().join("holdout-gzip.parquet");
    to_parquet(&data.join("digits-holdout.csv"), &gzip, "gzip", "").expect("pandas");
    let registry = parquet.path().join("registry");
    let server = Server::registered(&registry, "digits-mlp@1");
    let registry = registry.to_string_lossy().into_owned();
    crate::serve::passes_with_parity(
        &parquet.path().join("mlops.yaml"),
        &registry,
        &server.url(),
        "digits-mlp@1",
        Some(&gzip),
    );

    // A feature column of text: refused, naming the column and the row.
    let bad = parquet.path().join("bad.parquet");
    to_parquet(
        &data.join("digits-holdout.csv"),
        &bad,
        "snappy",
        "df['pixel_5'] = df['pixel_5'].astype(str)",
    )
    .expect("pandas");
    let out = mlops()
        .args(["holdout", "--model", "digits-mlp@1", "--manifest"])
        .arg(parquet.path().join("mlops.yaml"))
        .args(["--registry", &registry, "--endpoint", &server.url()])
        .arg("--holdout")
        .arg(&bad)
        .output()
        .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.parquet:1: feature `pixel_5` is the text `")
            && stderr.contains("not a finite number"),
        "{stderr}"
    );
}
