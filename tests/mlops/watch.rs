//! The watch after a production deploy of a URL target (`environments.production.watch`),
//! against `mlops serve`: a healthy soak passes; errors after the flip (connections the service
//! refuses for want of capacity, answered 503, from a flood of clients) and slow answers (batches
//! too large for the p99 limit) breach it: exit 1 naming the limit, and production is rolled back
//! through a revert promotion of the pin before.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bin::mlops;
use crate::server::Server;
use crate::traffic::{Traffic, body};

/// The quickstart with production's `watch:` set to `watch` (YAML lines under it).
fn project(watch: &str) -> tempfile::TempDir {
    crate::quickstart::copy(|original| {
        let production =
            "    url: https://digits.example.com\n    pin_file: deploy/production.yaml\n";
        assert!(
            original.contains(production),
            "the production section moved"
        );
        original.replacen(production, &format!("{production}    watch:\n{watch}"), 1)
    })
}

/// A production pin of `digits-mlp@VERSION` whose passing holdout report the registry records.
fn promoted(registry: &Path, version: u64, dir: &Path) -> PathBuf {
    let reference = format!("digits-mlp@{version}");
    let report = crate::quickstart::holdout_report(&reference, "http://127.0.0.1:8080", true);
    let (digest, _) = mlops_registry::Registry::open(registry)
        .record_holdout("digits-mlp", version, &report)
        .expect("records");
    let pin = crate::quickstart::pin(
        registry,
        version,
        Some(mlops_artifacts::pin::PinnedHoldout {
            passed: true,
            report_sha256: digest,
            compared_with: None,
        }),
    );
    let path = dir.join(format!("production-{version}.yaml"));
    std::fs::write(&path, pin.to_yaml("production")).expect("pin");
    path
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Production's pin history in the project: @1, then @2 (what the deploy puts in place).
fn history(project: &Path, registry: &Path) -> PathBuf {
    let scratch = tempfile::tempdir().expect("tempdir");
    let (one, two) = (
        promoted(registry, 1, scratch.path()),
        promoted(registry, 2, scratch.path()),
    );
    git(project, &["init", "-q", "-b", "main"]);
    let pin = project.join("deploy/production.yaml");
    std::fs::create_dir_all(project.join("deploy")).expect("mkdir");
    for (i, p) in [one, two].iter().enumerate() {
        std::fs::copy(p, &pin).expect("copy");
        git(project, &["add", "-A"]);
        git(project, &["commit", "-qm", &format!("pin {i}")]);
    }
    pin
}

/// `mlops deploy --env production` of the project's pin to `server`, with the traffic let go
/// once the watch starts (after the service was seen serving the pin); its exit code and its
/// output.
fn deploy_watched(
    project: &Path,
    registry: &Path,
    server: &Server,
    traffic: &[&Traffic],
    go: &Arc<AtomicBool>,
) -> (Option<i32>, String) {
    let mut c = mlops();
    c.arg("deploy")
        .arg("--manifest")
        .arg(project.join("mlops.yaml"))
        .arg("--registry")
        .arg(registry)
        .args(["--env", "production", "--endpoint", &server.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawns");
    let stderr = child.stderr.take().expect("stderr");
    let said = {
        let go = go.clone();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("/metrics every") {
                    go.store(true, Ordering::SeqCst);
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        })
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let status = child.wait().expect("waits");
    let stderr = said.join().expect("stderr reader");
    let counted: Vec<String> = traffic
        .iter()
        .map(|t| {
            format!(
                "{} ok, {} failed",
                t.ok.load(Ordering::SeqCst),
                t.failed.load(Ordering::SeqCst)
            )
        })
        .collect();
    (
        status.code(),
        format!("{stdout}{stderr}traffic: {}\n", counted.join("; ")),
    )
}

fn serve(registry: &Path, extra: &[&str]) -> Server {
    let reg = registry.to_string_lossy().into_owned();
    let mut args = vec![
        "--model",
        "digits-mlp@2",
        "--registry",
        reg.as_str(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Server::start(mlops(), &args)
}

#[test]
fn a_healthy_soak_passes_and_errors_after_the_flip_roll_production_back() {
    let registry = crate::quickstart::trained(2);
    let limits = "      seconds: 4\n      interval_seconds: 1\n      max_error_rate: 0.05\n      min_requests: 5\n";

    // Healthy: one client at a time, every request answered.
    let healthy = project(limits);
    history(healthy.path(), registry.path());
    let server = serve(registry.path(), &[]);
    let go = Arc::new(AtomicBool::new(false));
    let traffic = Traffic::start(
        server.addr,
        1,
        body(1),
        Duration::from_millis(20),
        go.clone(),
    );
    let (code, said) = deploy_watched(healthy.path(), registry.path(), &server, &[&traffic], &go);
    drop(traffic);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("production serves digits-mlp@2"), "{said}");
    assert!(
        said.contains("failed, p99 up to"),
        "the watch judged looks: {said}"
    );
    assert!(!said.contains("BREACH"), "{said}");

    // Errors after the flip: a flood of clients against a service that takes two connections;
    // the rest are refused (503), which the service counts.
    let flooded = project(limits);
    history(flooded.path(), registry.path());
    let server = serve(registry.path(), &["--max-connections", "2"]);
    let go = Arc::new(AtomicBool::new(false));
    let flood = Traffic::start(server.addr, 16, body(1), Duration::ZERO, go.clone());
    let (code, said) = deploy_watched(flooded.path(), registry.path(), &server, &[&flood], &go);
    drop(flood);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("production serves digits-mlp@2"), "{said}");
    // The flood breaches the error rate; or, when the flood holds both connections each time
    // the watch looks, the service refuses its `/metrics` like any client, and three failed
    // looks in a row are the breach (on a busy machine, as in CI, either comes first).
    assert!(
        said.contains("watch: watch.max_error_rate:")
            || said.contains("watch: /metrics: 3 looks in a row failed"),
        "{said}"
    );
    // Production is rolled back: the revert promotion of the pin before is proposed (here it
    // stops at the missing GitHub token, and says so).
    assert!(
        said.contains("watch: rolling production back: proposing Roll back production to digits-mlp@1 (from digits-mlp@2)"),
        "{said}"
    );
}

#[test]
fn slow_answers_breach_the_p99_limit() {
    let registry = crate::quickstart::trained(2);
    let slow = project(
        "      seconds: 4\n      interval_seconds: 1\n      p99_ms: 1\n      min_requests: 3\n",
    );
    history(slow.path(), registry.path());
    let server = serve(registry.path(), &[]);
    let go = Arc::new(AtomicBool::new(false));
    // Batches of 20,000 rows: answered, but each takes longer than a millisecond.
    let traffic = Traffic::start(server.addr, 2, body(20_000), Duration::ZERO, go.clone());
    let (code, said) = deploy_watched(slow.path(), registry.path(), &server, &[&traffic], &go);
    drop(traffic);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("watch: watch.p99_ms: the 99th percentile of"),
        "{said}"
    );
    assert!(said.contains("over the limit of 1 ms"), "{said}");
}
