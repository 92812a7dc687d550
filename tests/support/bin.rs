//! The `mlops` binary under test, run from the repository root with none of the caller's
//! `MLOPS_*` or `GITHUB_*` variables (the tests may themselves run inside Actions, and every flag
//! has an `MLOPS_*` twin that would otherwise leak in).

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn mlops() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlops"));
    c.current_dir(root());
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("MLOPS_") || n.starts_with("GITHUB_") {
            c.env_remove(&name);
        }
    }
    c
}

/// Runs `c`, checks that it succeeded (showing its output when not), and returns its stdout.
#[allow(dead_code)] // each test binary includes this file and uses what it needs
pub(crate) fn succeeds(mut c: Command) -> String {
    let out = c.output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}: {stdout}\n{}",
        c.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `mlops train --format json` of the project in `dir` (its `mlops.yaml`), into `dir/registry`.
#[allow(dead_code)]
pub(crate) fn train_project(dir: &Path) -> std::process::Output {
    mlops()
        .args(["train", "--format", "json", "--manifest"])
        .arg(dir.join("mlops.yaml"))
        .arg("--registry")
        .arg(dir.join("registry"))
        .output()
        .expect("runs")
}

/// Checks `doc` against `schema/NAME.schema.json`, showing every error and the document when it
/// does not match.
#[allow(dead_code)]
pub(crate) fn matches_schema(name: &str, doc: &serde_json::Value) {
    let path = root().join("schema").join(format!("{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("schema")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    mlops_artifacts::artifact::hex(&sha2::Sha256::digest(bytes))
}
