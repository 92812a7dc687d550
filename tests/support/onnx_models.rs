//! The ONNX models `fixtures/onnx/models.py` exports (scikit-learn and XGBoost, through skl2onnx
//! and onnxmltools, fitted on the quickstart's digits) and onnxruntime's predictions of the
//! holdout rows in `expected.json`, made once per test binary in the ML tools' Python.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory of the exported models, or `None` when the ML tools are missing and optional
/// here (`tools::ml_python` says so).
pub(crate) fn exported() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = crate::tools::ml_python()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = root().join("examples/quickstart/data");
        let out = std::process::Command::new(python)
            .arg(root().join("tests/fixtures/onnx/models.py"))
            .arg(data.join("digits-train.csv"))
            .arg(data.join("digits-holdout.csv"))
            .arg(dir.path())
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_ref()
    .map(tempfile::TempDir::path)
}

/// `expected.json`: the holdout rows (`holdout`) and each model's onnxruntime answers
/// (`models.NAME.labels` and `.probabilities`, or `.values`).
pub(crate) fn expected(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected"))
        .expect("JSON")
}
