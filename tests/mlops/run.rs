//! `mlops run` end to end on a copy of the quickstart (as a user would run it), every artifact
//! checked against its schema in `schema/`; a threshold the model cannot meet stops the run at the
//! evaluation stage; SIGTERM stops it (and its staging service) with 130.

use crate::bin;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bin::{matches_schema, mlops, root};
use serde_json::Value;

/// A copy of `examples/quickstart` (manifest and data) in a new directory.
fn quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("examples/quickstart");
    std::fs::copy(src.join("mlops.yaml"), dir.path().join("mlops.yaml")).expect("manifest");
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    for entry in std::fs::read_dir(src.join("data")).expect("data") {
        let entry = entry.expect("entry");
        std::fs::copy(
            entry.path(),
            dir.path().join("data").join(entry.file_name()),
        )
        .expect("copy");
    }
    dir
}

fn run_in(dir: &Path) -> Command {
    let mut c = mlops();
    c.current_dir(dir).args(["run", "--manifest", "mlops.yaml"]);
    c
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("JSON")
}

fn stages(run: &Value) -> Vec<(String, String)> {
    run["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap_or_default().to_owned(),
                s["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The address in the staging stage's figure ("... served on http://ADDR").
fn staging_addr(run: &Value) -> SocketAddr {
    let figure = run["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["stage"] == "staging")
        .and_then(|s| s["figure"].as_str())
        .expect("a staging stage");
    figure
        .split("http://")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("the staging address")
}

fn closed(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

/// git in `dir` with a test identity; its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_whole_loop_runs_on_the_quickstart() {
    let dir = quickstart();
    // The user's checkout, on a branch of theirs: the run must leave it as it is.
    std::fs::write(dir.path().join(".gitignore"), ".mlops/\n").expect("gitignore");
    git(dir.path(), &["init", "-q", "-b", "feature"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "the user's work"]);
    let before = git(dir.path(), &["rev-parse", "HEAD"]);
    let out = run_in(dir.path()).output().expect("runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let work = dir.path().join(".mlops/run");
    let run = json_file(&work.join("run.json"));
    matches_schema("run", &run);
    let all = [
        "validate", "render", "train", "evaluate", "staging", "holdout", "monitor", "promote",
        "gate", "deploy",
    ];
    assert_eq!(
        stages(&run),
        all.iter()
            .map(|s| ((*s).to_owned(), "ok".to_owned()))
            .collect::<Vec<_>>()
    );
    // Each stage printed its line with a duration, and the summary table names each one.
    for s in all {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("ok   {s}")) && l.ends_with(" s)")),
            "{stderr}"
        );
        assert!(stdout.contains(&format!("| {s} | ok |")), "{stdout}");
    }
    assert_eq!(run["model"], "digits-mlp@1");
    // The staging service captured the holdout test's traffic, and it looks like training's.
    let monitor = json_file(&work.join("monitor-report.json"));
    matches_schema("monitor-report", &monitor);
    assert_eq!(monitor["drifted"], false, "{monitor:#}");
    assert_eq!(monitor["read"]["rows"], 297, "{monitor:#}");
    assert_eq!(
        run["artifacts"]["monitor_report"],
        ".mlops/run/monitor-report.json"
    );
    let figure = run["stages"][6]["figure"].as_str().expect("monitor figure");
    assert!(
        figure.contains("297 rows captured from staging: no drift"),
        "{figure}"
    );
    assert!(
        closed(staging_addr(&run)),
        "the staging service still listens"
    );
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), before);
    assert_eq!(git(dir.path(), &["branch", "--show-current"]), "feature");
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    assert_eq!(git(dir.path(), &["branch", "--list"]), "* feature");
    let promotion = run["promotion"].as_str().expect("promotion");
    assert!(
        promotion.starts_with("commit ") && promotion.contains(" on mlops/promote/digits-mlp in "),
        "{promotion}"
    );
    assert!(
        stdout.contains(&format!("promotion: {promotion}")),
        "{stdout}"
    );

    // The artifacts, each against its schema.
    let a = &run["artifacts"];
    let at = |key: &str| dir.path().join(a[key].as_str().expect(key));
    let card = json_file(&at("model_card"));
    matches_schema("card", &card);
    let report_path = at("holdout_report");
    let report = json_file(&report_path);
    matches_schema("holdout-report", &report);
    assert_eq!(report["passed"], true);
    assert_eq!(report["rows"], 297);
    assert_eq!(report["parity"]["mismatches"], 0);
    // The quickstart sets `promotion.no_regression`, and production pins nothing yet.
    assert_eq!(report["comparison"], Value::Null);
    assert!(
        report["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("production pins no model yet")),
        "{report}"
    );
    let repo = at("promotion_repository");
    let pin_text =
        std::fs::read_to_string(repo.join("deploy/production.yaml")).expect("the production pin");
    let pin = mlops_manifest::yaml::parse(&pin_text, mlops_manifest::yaml::Limits::default())
        .expect("YAML")
        .to_json();
    matches_schema("pin", &pin);
    assert_eq!(pin["model"]["name"], "digits-mlp");
    assert_eq!(pin["model"]["version"], 1);
    assert_eq!(
        pin["model"]["artifact"]["sha256"],
        card["artifact"]["sha256"]
    );
    // The report's digest (its bytes without the final newline), under which the holdout stage
    // recorded it in the registry, where the deploy stage found it.
    let digest = mlops_registry::report_digest(&std::fs::read(&report_path).expect("report"));
    assert_eq!(pin["holdout"]["report_sha256"], digest.as_str());
    let recorded = at("model_card")
        .parent()
        .expect("the version's directory")
        .join(format!("holdout/{digest}.json"));
    assert!(recorded.is_file(), "{}", recorded.display());
    let body = std::fs::read_to_string(at("pull_request")).expect("PR body");
    for part in [
        "# Promote digits-mlp@1 to production",
        "<!-- mlops:promotion project=digits model=digits-mlp -->",
        "### Holdout test against staging",
        "```mermaid",
    ] {
        assert!(body.contains(part), "missing {part:?}:\n{body}");
    }
    // The promotion repository: the base branch holds the approved commit, made by mlops with
    // the trailer, on top of the repository's first commit.
    let log = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args([
            "log",
            "--format=%an|%s|%(trailers:key=Mlops-Promotion,valueonly)",
            "main",
        ])
        .output()
        .expect("git");
    let log = String::from_utf8_lossy(&log.stdout);
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "mlops-run|Promote digits-mlp@1 to production|digits-mlp@1",
            "mlops-run|Local promotion repository|"
        ],
        "{log}"
    );
    // The quickstart's registry is a directory: the CI workflow, and no release loop, which the
    // render stage says.
    let figure = run["stages"][1]["figure"].as_str().expect("render figure");
    assert!(
        figure.contains("no GitHub release loop: the registry is a directory"),
        "{figure}"
    );
    let rendered = at("rendered");
    assert!(rendered.join(".github/workflows/mlops-ci.yml").is_file());
    assert!(
        !rendered
            .join(".github/workflows/mlops-release.yml")
            .exists()
    );

    // A second run trains version 2 and promotes it over version 1, with the deltas.
    let out = run_in(dir.path()).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read_to_string(work.join("pull-request.md")).expect("PR body");
    assert!(body.contains("instead of digits-mlp@1"), "{body}");
    assert!(
        body.contains("| metric | digits-mlp@2 | digits-mlp@1 | delta |"),
        "{body}"
    );
    let pin = std::fs::read_to_string(repo.join("deploy/production.yaml")).expect("pin");
    assert!(pin.contains("version: 2"), "{pin}");
    // Version 2 was scored beside version 1 (what production pinned) on the same rows, the
    // comparison is in the PR body, the pin and the gate's decision.
    assert!(
        body.contains("### Against production (digits-mlp@1, 297 rows, same file)"),
        "{body}"
    );
    assert!(
        body.contains("| accuracy | ") && body.contains(" | 0.01 | ✅ pass |"),
        "{body}"
    );
    assert!(
        pin.contains("  compared_with:\n    model: \"digits-mlp@1\"\n"),
        "{pin}"
    );
    let run = json_file(&work.join("run.json"));
    let gate = run["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["stage"] == "gate")
        .expect("the gate stage");
    assert!(
        gate["figure"]
            .as_str()
            .is_some_and(|f| f.contains("no regression against digits-mlp@1")),
        "{gate}"
    );
}

#[test]
fn a_threshold_the_model_misses_stops_the_run_at_evaluation() {
    let dir = quickstart();
    let manifest = dir.path().join("mlops.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let strict = text.replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.999 }");
    assert_ne!(strict, text);
    std::fs::write(&manifest, strict).expect("write");
    let out = run_in(dir.path())
        .args(["--format", "json"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let run: Value = serde_json::from_slice(&out.stdout).expect("run.json on stdout");
    matches_schema("run", &run);
    assert_eq!(
        stages(&run),
        [
            ("validate", "ok"),
            ("render", "ok"),
            ("train", "ok"),
            ("evaluate", "failed")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(run["exit_code"], 1);
    let figure = run["stages"][3]["figure"].as_str().expect("figure");
    assert!(
        figure.contains("accuracy") && figure.contains("min 0.999"),
        "{figure}"
    );
    assert!(figure.contains("rejected"), "{figure}");
    // The stage's line says why.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("FAIL evaluate  accuracy 0.") && l.contains("misses min 0.999")),
        "{stderr}"
    );
    assert!(!dir.path().join(".mlops/run/promotion").exists());
}

#[test]
fn sigterm_stops_the_run_and_its_staging_service() {
    let dir = quickstart();
    let work: PathBuf = dir.path().join(".mlops/run");
    let mut child = run_in(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    // Read to the end on a thread, so the run never writes into a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let mut addr = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("ok   staging") {
            addr = line
                .split("http://")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
            // To this process only: its children hear of it from it.
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(sent.success());
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no staging line:\n{seen}"));
    let status = child.wait().expect("waits");
    reader.join().expect("reader");
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(closed(addr), "the staging service outlived the run");
    let run = json_file(&work.join("run.json"));
    matches_schema("run", &run);
    assert_eq!(run["exit_code"], 130);
    assert_eq!(run["passed"], false);
}

/// `--open-pr`: the promote stage is the real `mlops promote` against GitHub (here the fake, checked
/// against GitHub's OpenAPI description), and the run ends at the pull request; without a token it
/// stops with exit 2 before it starts (no training for a run that could not finish).
#[test]
fn open_pr_opens_the_real_pull_request_and_stops_there() {
    const REPO: &str = "mlops-rs/digits-example";
    const TOKEN: &str = "ghs_runOpenPrToken42";
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(TOKEN, github_fake::Token::App("mlops-app".into()));
    fake.repo(REPO, "main", &[("README.md", "# digits\n")]);
    fake.protect(REPO, "main", 1);

    let dir = quickstart();
    let out = run_in(dir.path())
        .arg("--open-pr")
        .env("GITHUB_API_URL", fake.url())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--open-pr needs a token"), "{stderr}");
    assert!(
        fake.requests().is_empty(),
        "nothing may be sent without a token"
    );

    // A run that opens the pull request with the token; it must pass and never show the token.
    let open_pr = || {
        let out = run_in(dir.path())
            .arg("--open-pr")
            .env("GITHUB_API_URL", fake.url())
            .env("GITHUB_TOKEN", TOKEN)
            .output()
            .expect("runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "the token leaked"
        );
    };
    open_pr();
    let run = json_file(&dir.path().join(".mlops/run/run.json"));
    matches_schema("run", &run);
    let results: Vec<(String, String)> = stages(&run);
    assert_eq!(
        results[7..],
        [
            ("promote", "ok"),
            ("gate", "skipped"),
            ("deploy", "skipped")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // The run trained digits-mlp@1; that is what the pull request pins.
    let repo = fake.snapshot(REPO).expect("repo");
    assert_eq!(repo.pulls.len(), 1);
    let promotion = run["promotion"].as_str().expect("promotion");
    assert!(promotion.contains("opened pull request #1"), "{promotion}");
    let pin = fake
        .file(REPO, "mlops/promote/digits-mlp", "deploy/production.yaml")
        .expect("pin on the promotion branch");
    assert!(pin.contains("version: 1"), "{pin}");
    assert!(!dir.path().join(".mlops/run/promotion").exists());

    // Merged, digits-mlp@1 is what production pins on GitHub: the next run's holdout test scores
    // digits-mlp@2 beside it (production's pin read from the base branch there), and the pull
    // request's pin carries that comparison, which the gate's no-regression rule requires.
    assert!(!fake.merge_as(REPO, 1, "ml-lead").is_empty());
    open_pr();
    let run = json_file(&dir.path().join(".mlops/run/run.json"));
    let holdout = run["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == "holdout"))
        .expect("the holdout stage");
    assert!(
        holdout["figure"]
            .as_str()
            .is_some_and(|f| f.contains("against production's digits-mlp@1")),
        "{holdout}"
    );
    let pin = fake
        .file(REPO, "mlops/promote/digits-mlp", "deploy/production.yaml")
        .expect("the next pin on the promotion branch");
    let pin = mlops_github::pin::Pin::parse(&pin).expect("a valid pin");
    assert_eq!(pin.model.version, 2);
    let compared = pin
        .holdout
        .and_then(|h| h.compared_with)
        .expect("compared with production");
    assert_eq!(compared.model, "digits-mlp@1");
    assert!(compared.passed);
    assert_eq!(fake.violations(), Vec::<String>::new());
}
