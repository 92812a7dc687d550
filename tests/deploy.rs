//! `mlops deploy` on URL targets, against `mlops serve` on loopback: staging writes its pin and
//! waits for the service to report it (also when it flips late, and naming what it saw when it
//! never does); production deploys exactly its pin file and refuses an unapproved model or an
//! artifact that is not the pinned one; `--check` reports drift.

#[path = "support/bin.rs"]
mod bin;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bin::{mlops, root, succeeds};
use server::Server;

const MANIFEST: &str = "examples/quickstart/mlops.yaml";

/// One registry for every test, with the quickstart model trained twice (`@1`, `@2`, both
/// approved by their thresholds). Tests that change a status make their own.
fn shared_registry() -> &'static Path {
    static REGISTRY: OnceLock<tempfile::TempDir> = OnceLock::new();
    REGISTRY.get_or_init(|| trained(2)).path()
}

fn trained(versions: u32) -> tempfile::TempDir {
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

fn serve(registry: &Path, model: &str, port: Option<u16>) -> Server {
    let mut c = mlops();
    c.args(["serve", "--quiet", "--model", model, "--manifest", MANIFEST])
        .arg("--registry")
        .arg(registry)
        .args(["--port", &port.unwrap_or(0).to_string()]);
    Server::spawn(c)
}

fn deploy(registry: &Path, args: &[&str]) -> Command {
    let mut c = mlops();
    c.arg("deploy")
        .args(["--manifest", MANIFEST])
        .arg("--registry")
        .arg(registry)
        .args(args);
    c
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A pin file of `model` for staging, written by a staging deploy against a service that
/// serves it.
fn staging_pin(registry: &Path, model: &str, dir: &Path) -> PathBuf {
    let s = serve(registry, model, None);
    let pin = dir.join(format!("{model}.yaml"));
    let out = deploy(
        registry,
        &["--env", "staging", "--model", model, "--endpoint", &s.url()],
    )
    .arg("--pin")
    .arg(&pin)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    pin
}

#[test]
fn staging_writes_its_pin_and_verifies_the_service() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = staging_pin(registry, "digits-mlp@1", dir.path());
    let written = std::fs::read_to_string(&pin).expect("pin written");
    let parsed = mlops_github::pin::Pin::parse(&written).expect("a pin");
    assert_eq!(parsed.reference(), "digits-mlp@1");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("JSON");
    assert_eq!(
        Some(parsed.model.artifact.sha256.as_str()),
        card["artifact"]["sha256"].as_str()
    );
    assert!(written.starts_with("# The staging pin"), "{written}");
}

#[test]
fn a_version_that_flips_late_is_waited_for() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut old = serve(registry, "digits-mlp@1", None);
    let port = old.addr.port();
    let url = old.url();
    let started = Instant::now();
    let waiting = deploy(
        registry,
        &[
            "--env",
            "staging",
            "--model",
            "digits-mlp@2",
            "--endpoint",
            &url,
            "--timeout-seconds",
            "60",
        ],
    )
    .arg("--pin")
    .arg(dir.path().join("staging.yaml"))
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("starts");
    // The rollout: the old version keeps serving a while, then the new one takes the port.
    std::thread::sleep(Duration::from_millis(1500));
    old.stop();
    let _new = serve(registry, "digits-mlp@2", Some(port));
    let out = waiting.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let said = text(&out);
    assert!(
        said.contains("serves digits-mlp@2") && said.contains("before: digits-mlp@1"),
        "{said}"
    );
}

#[test]
fn a_version_that_never_flips_times_out_naming_what_it_saw() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let old = serve(registry, "digits-mlp@1", None);
    let out = deploy(
        registry,
        &[
            "--env",
            "staging",
            "--model",
            "digits-mlp@2",
            "--endpoint",
            &old.url(),
            "--timeout-seconds",
            "2",
        ],
    )
    .arg("--pin")
    .arg(dir.path().join("staging.yaml"))
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("still serves digits-mlp@1") && said.contains("not digits-mlp@2"),
        "{said}"
    );
    // Nobody answering at all is exit 3, with the reason.
    drop(old);
    let out = deploy(
        registry,
        &[
            "--env",
            "staging",
            "--model",
            "digits-mlp@2",
            "--endpoint",
            "http://127.0.0.1:9",
            "--timeout-seconds",
            "1",
        ],
    )
    .arg("--pin")
    .arg(dir.path().join("staging.yaml"))
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("did not answer"), "{}", text(&out));
}

#[test]
fn production_deploys_exactly_its_pin() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = staging_pin(registry, "digits-mlp@1", dir.path());
    let pin_arg = pin.to_string_lossy().into_owned();
    let s = serve(registry, "digits-mlp@1", None);
    // Production takes no --model.
    let out = deploy(
        registry,
        &[
            "--env",
            "production",
            "--model",
            "digits-mlp@1",
            "--endpoint",
            &s.url(),
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("production deploys its pin file"));
    let out = deploy(
        registry,
        &[
            "--env",
            "production",
            "--endpoint",
            &s.url(),
            "--pin",
            &pin_arg,
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("production serves digits-mlp@1"));
    // A pin whose artifact is not the registry's aborts before anything moves.
    let original = std::fs::read_to_string(&pin).expect("pin");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("JSON");
    let sha = card["artifact"]["sha256"].as_str().expect("sha");
    let forged = dir.path().join("forged.yaml");
    std::fs::write(&forged, original.replace(sha, &"0".repeat(64))).expect("write");
    let out = deploy(
        registry,
        &["--env", "production", "--endpoint", &s.url(), "--pin"],
    )
    .arg(&forged)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("aborting before any traffic moves"),
        "{}",
        text(&out)
    );
}

#[test]
fn production_refuses_a_model_that_is_not_approved() {
    let registry = trained(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = staging_pin(registry.path(), "digits-mlp@1", dir.path());
    let mut c = mlops();
    c.args([
        "registry",
        "reject",
        "digits-mlp@1",
        "--reason",
        "bias found in review",
    ])
    .arg("--registry")
    .arg(registry.path());
    succeeds(c);
    let s = serve(registry.path(), "digits-mlp@1", None);
    let out = deploy(
        registry.path(),
        &["--env", "production", "--endpoint", &s.url(), "--pin"],
    )
    .arg(&pin)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("digits-mlp@1 is rejected in the registry (bias found in review)"),
        "{said}"
    );
    assert!(!said.contains("production serves"), "{said}");
}

#[test]
fn check_reports_drift() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let one = staging_pin(registry, "digits-mlp@1", dir.path());
    let two = staging_pin(registry, "digits-mlp@2", dir.path());
    let s = serve(registry, "digits-mlp@1", None);
    let check = |pin: &Path, url: &str| {
        deploy(
            registry,
            &["--env", "production", "--check", "--endpoint", url, "--pin"],
        )
        .arg(pin)
        .output()
        .expect("runs")
    };
    let out = check(&one, &s.url());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("serves digits-mlp@1, as pinned"));
    let out = check(&two, &s.url());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("drift")
            && said.contains("pinned:  digits-mlp@2")
            && said.contains("serving: digits-mlp@1"),
        "{said}"
    );
    let out = check(&one, "http://127.0.0.1:9");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn a_sagemaker_environment_is_refused_plainly() {
    let out = mlops()
        .args([
            "deploy",
            "--env",
            "staging",
            "--model",
            "churn-model@1",
            "--manifest",
            "examples/sagemaker/mlops.yaml",
        ])
        .current_dir(root())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not deploy to SageMaker yet"),
        "{}",
        text(&out)
    );
}
