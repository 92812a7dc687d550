//! The quickstart fixture the process tests share: the example's manifest, a registry with its
//! model trained by the binary under test, and one read-only registry trained once per test
//! binary for the tests that only read it.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use crate::bin::{mlops, root, succeeds};

/// The quickstart's manifest, relative to the repository root (where `mlops()` runs).
pub(crate) const MANIFEST: &str = "examples/quickstart/mlops.yaml";

/// The quickstart (manifest and data) copied into a temporary directory, the manifest edited.
pub(crate) fn copy(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("examples/quickstart");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    for f in ["data/digits-train.csv", "data/digits-holdout.csv"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let text = std::fs::read_to_string(src.join("mlops.yaml")).expect("manifest");
    std::fs::write(dir.path().join("mlops.yaml"), edit(text)).expect("write");
    dir
}

/// A new registry with the quickstart model trained `versions` times (`digits-mlp@1` …, each
/// approved by its thresholds), for a test that changes it.
pub(crate) fn trained(versions: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..versions {
        let mut c = mlops();
        c.args(["train", "--format", "json", "--manifest", MANIFEST])
            .arg("--registry")
            .arg(dir.path());
        succeeds(c);
    }
    dir
}

/// One registry for every test that only reads it: the quickstart model trained twice (`@1`,
/// `@2`). A test that changes a status or a file makes its own with [`trained`].
pub(crate) fn shared() -> &'static Path {
    static REGISTRY: OnceLock<tempfile::TempDir> = OnceLock::new();
    REGISTRY.get_or_init(|| trained(2)).path()
}

/// A whole holdout report of `reference` (297 rows through `endpoint`, accuracy as recorded),
/// passed or failed, as `mlops holdout --report` writes it.
pub(crate) fn holdout_report(reference: &str, endpoint: &str, passed: bool) -> Vec<u8> {
    use mlops_artifacts::holdout::{Check, Parity, Report};
    let digest = mlops_artifacts::training::FileDigest {
        path: "data/digits-holdout.csv".into(),
        sha256: "0".repeat(64),
        bytes: 40_000,
        rows: 297,
    };
    let check = Check {
        metric: "accuracy".into(),
        expected: Some(0.98),
        observed: Some(0.98),
        delta: Some(0.0),
        tolerance: 0.0,
        pass: passed,
    };
    let parity = Parity {
        enabled: true,
        checked: 297,
        ..Parity::default()
    };
    let report = Report::new(
        reference.into(),
        endpoint.into(),
        digest,
        297,
        2,
        0,
        0.5,
        vec![check],
        None,
        parity,
    );
    assert_eq!(report.passed, passed, "the fixture settles as asked");
    serde_json::to_vec_pretty(&report).expect("JSON")
}

/// A production pin of `digits-mlp@VERSION` in the local `registry` (its artifact's digest read
/// from the card), with `holdout` as given.
pub(crate) fn pin(
    registry: &Path,
    version: u64,
    holdout: Option<mlops_artifacts::pin::PinnedHoldout>,
) -> mlops_artifacts::pin::Pin {
    use mlops_artifacts::pin::{Artifact, Pin, PinnedModel};
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.join(format!("digits-mlp/{version}/card.json"))).expect("card"),
    )
    .expect("card JSON");
    let text = |key: &str| card[key]["sha256"].as_str().expect("a digest").to_owned();
    Pin {
        version: 1,
        model: PinnedModel {
            name: "digits-mlp".into(),
            version,
            registry: registry.display().to_string(),
            artifact: Artifact {
                uri: registry
                    .join(format!("digits-mlp/{version}"))
                    .display()
                    .to_string(),
                sha256: text("artifact"),
            },
            image: None,
        },
        manifest_sha256: text("manifest"),
        holdout,
    }
}
