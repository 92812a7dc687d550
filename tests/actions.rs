//! The composite actions, run for real: each test workflow in `tests/workflows/` runs under
//! `act` (no Docker: the job runs on this machine) with the freshly built `mlops`, and the
//! actions and workflows pass actionlint and zizmor.
//!
//! The tools come from `cargo xtask tools` (which `cargo xtask ci` runs). Without them these tests
//! say so and pass, unless `MLOPS_REQUIRE_TOOLS=1` (set by `cargo xtask ci`), where a missing tool
//! is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/tools.rs"]
mod tools;
use tools::tool;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One line of `act --json` output.
type Event = serde_json::Value;

struct ActRun {
    code: Option<i32>,
    events: Vec<Event>,
    log: String,
}

/// Runs `workflow` under act with the repository variables given, in a private cache directory.
fn act(workflow: &str, vars: &[(&str, &str)]) -> Option<ActRun> {
    let mut args: Vec<String> = vec!["push".into(), "-W".into(), workflow.into()];
    for (k, v) in vars {
        args.extend(["--var".into(), format!("{k}={v}")]);
    }
    act_in(&root(), &args)
}

/// Runs act in `dir` with `args` and the settings every run here shares: JSON lines, no Docker
/// (`-self-hosted`), no cache server, a private action cache, and the freshly built `mlops`.
fn act_in(dir: &Path, args: &[String]) -> Option<ActRun> {
    let act = tool("act")?;
    let cache = tempfile::tempdir().expect("tempdir");
    let out = Command::new(act)
        .current_dir(dir)
        .args(args)
        .args(["--json", "--no-cache-server"])
        .args(["-P", "ubuntu-latest=-self-hosted"])
        .arg("--action-cache-path")
        .arg(cache.path())
        .args([
            "--env",
            &format!("MLOPS_BIN={}", env!("CARGO_BIN_EXE_mlops")),
        ])
        .output()
        .expect("act runs");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let events = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .collect();
    Some(ActRun {
        code: out.status.code(),
        events,
        log,
    })
}

impl ActRun {
    fn with_command<'a>(&'a self, command: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e["command"] == command)
    }

    /// The outputs the `validate` step of the action set.
    fn output(&self, name: &str) -> Option<String> {
        self.with_command("set-output")
            .filter(|e| e["name"] == name)
            .filter_map(|e| e["arg"].as_str().map(str::to_owned))
            .last()
    }
}

#[test]
fn invalid_manifest_becomes_annotations_and_a_failed_job() {
    let Some(run) = act(
        "tests/workflows/validate.yml",
        &[("MANIFEST", "examples/invalid/five-errors.yaml")],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(1), "{}", run.log);
    let errors: Vec<&Event> = run.with_command("error").collect();
    assert_eq!(errors.len(), 5, "{}", run.log);
    let places: Vec<(String, String, String)> = errors
        .iter()
        .map(|e| {
            let kv = &e["kvPairs"];
            let s = |k: &str| kv[k].as_str().unwrap_or_default().to_owned();
            (s("file"), s("line"), s("col"))
        })
        .collect();
    let file = "examples/invalid/five-errors.yaml".to_owned();
    let want: Vec<(String, String, String)> = [
        ("6", "15"),
        ("10", "42"),
        ("17", "14"),
        ("19", "11"),
        ("24", "16"),
    ]
    .iter()
    .map(|(l, c)| (file.clone(), (*l).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(places, want, "{}", run.log);
    assert!(errors.iter().all(|e| {
        e["kvPairs"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("mlops: "))
    }));
    assert_eq!(run.output("valid").as_deref(), Some("false"));
    assert_eq!(run.output("errors").as_deref(), Some("5"));
    assert!(
        run.log.contains("valid=false errors=5"),
        "the action's outputs reach later steps:\n{}",
        run.log
    );
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        summary.contains("| `examples/invalid/five-errors.yaml:24:16` | `schema/type` |"),
        "{summary}"
    );
}

#[test]
fn valid_manifest_passes_the_job() {
    let Some(run) = act(
        "tests/workflows/validate.yml",
        &[("MANIFEST", "examples/quickstart/mlops.yaml")],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(run.with_command("error").count(), 0, "{}", run.log);
    assert_eq!(run.output("valid").as_deref(), Some("true"));
    assert!(run.log.contains("valid=true errors=0"), "{}", run.log);
}

fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/workflows"))
        .expect("tests/workflows")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

fn action_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("actions"))
        .expect("actions/")
        .filter_map(|e| e.ok().map(|e| e.path().join("action.yml")))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tool("actionlint") else {
        return;
    };
    let files = workflow_files();
    assert!(!files.is_empty());
    let out = Command::new(actionlint)
        .current_dir(root())
        .arg("-oneline")
        .args(&files)
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn actions_and_workflows_have_no_zizmor_findings() {
    let Some(zizmor) = tool("zizmor") else { return };
    let files: Vec<PathBuf> = action_files().into_iter().chain(workflow_files()).collect();
    assert!(files.len() >= 2);
    let out = Command::new(zizmor)
        .current_dir(root())
        .args(["--offline", "--format", "plain"])
        .args(&files)
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .output()
        .expect("zizmor runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("No findings to report"), "{text}");
}

/// Actions pass inputs to the binary through `env:`, never as `${{ }}` inside `run:`.
#[test]
fn actions_never_expand_expressions_inside_run() {
    for file in action_files() {
        let text = std::fs::read_to_string(&file).expect("action.yml");
        let mut in_run = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("run:") || trimmed.starts_with("- run:") {
                in_run = true;
                assert!(
                    !trimmed.contains("${{"),
                    "{}:{}: expression inside run:",
                    file.display(),
                    n + 1
                );
                continue;
            }
            if in_run && !line.starts_with("        ") && !trimmed.is_empty() {
                in_run = false;
            }
            if in_run {
                assert!(
                    !line.contains("${{"),
                    "{}:{}: expression inside run:",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

/// The scripts inside `action.yml` files (which actionlint does not read) pass shellcheck.
#[test]
fn action_scripts_pass_shellcheck() {
    use mlops_manifest::yaml::{self, Segment, Value};
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let mut scripts = 0;
    for file in action_files() {
        let text = std::fs::read_to_string(&file).expect("action.yml");
        let tree = yaml::parse(&text, yaml::Limits::default()).expect("action.yml is YAML");
        let steps = tree.get(&[Segment::Key("runs".into()), Segment::Key("steps".into())]);
        let Some(Value::Seq(steps)) = steps.map(|s| &s.value) else {
            continue;
        };
        for step in steps {
            let field = |name: &str| match step.entry(name).map(|(_, v)| &v.value) {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let Some(script) = field("run") else { continue };
            assert_eq!(
                field("shell").as_deref(),
                Some("bash"),
                "{}: every run step declares `shell: bash`",
                file.display()
            );
            let mut child = Command::new(&shellcheck)
                .args(["--shell=bash", "--severity=style", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("shellcheck runs");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
                .expect("write script");
            let out = child.wait_with_output().expect("shellcheck output");
            assert!(
                out.status.success(),
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout)
            );
            scripts += 1;
        }
    }
    assert!(
        scripts >= 1,
        "no run: scripts found in actions/*/action.yml"
    );
    // The shared scripts the actions call.
    let out = Command::new(&shellcheck)
        .args(["--shell=bash", "--severity=style"])
        .arg(root().join("actions/lib/mlops.sh"))
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn several_manifests_one_per_line() {
    let manifests = "examples/quickstart/mlops.yaml\n  examples/sagemaker/mlops.yaml  \n";
    let Some(run) = act("tests/workflows/validate.yml", &[("MANIFEST", manifests)]) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        summary.contains("examples/quickstart/mlops.yaml: valid"),
        "{summary}"
    );
    assert!(
        summary.contains("examples/sagemaker/mlops.yaml: valid"),
        "{summary}"
    );
}

/// The rendered CI workflow runs under act, calling this checkout's validate and render actions
/// as the pinned remote `mlops-rs/mlops` (substituted with `--local-repository`): it passes on a
/// fresh render and fails, with an annotation, once a rendered file drifts.
#[test]
fn rendered_ci_workflow_runs_and_catches_drift() {
    if tool("act").is_none() {
        return;
    }
    let repo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .current_dir(repo.path())
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .status()
            .expect("git runs")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::copy(
        root().join("examples/quickstart/mlops.yaml"),
        repo.path().join("mlops.yaml"),
    )
    .expect("copy");
    let mlops = env!("CARGO_BIN_EXE_mlops");
    let rendered = Command::new(mlops)
        .current_dir(repo.path())
        .args(["render", "--manifest", "mlops.yaml"])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("render");
    assert!(rendered.status.success());
    let workflow = std::fs::read_to_string(repo.path().join(".github/workflows/mlops-ci.yml"))
        .expect("rendered");
    let sha = workflow
        .split("actions/validate@")
        .nth(1)
        .and_then(|s| s.get(..40))
        .expect("pinned validate action")
        .to_owned();
    let event = repo.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"pull_request": {"number": 1, "head": {"ref": "x"}, "base": {"ref": "main"}}}"#,
    )
    .expect("event");
    let run = |expect_success: bool| {
        git(&["add", "-A"]);
        git(&["commit", "-qm", "state", "--allow-empty"]);
        let args: Vec<String> = vec![
            "pull_request".into(),
            "-e".into(),
            event.display().to_string(),
            "-W".into(),
            ".github/workflows/mlops-ci.yml".into(),
            "--local-repository".into(),
            format!("mlops-rs/mlops@{sha}={}", root().display()),
        ];
        let run = act_in(repo.path(), &args).expect("act is on PATH");
        assert_eq!(run.code == Some(0), expect_success, "{}", run.log);
        run.log
    };
    let log = run(true);
    assert!(
        log.contains("current=true") || log.contains(r#""current""#),
        "{log}"
    );
    let edited = repo.path().join(".github/workflows/mlops-train.yml");
    let mut text = std::fs::read_to_string(&edited).expect("read");
    text.push_str("# edited by hand\n");
    std::fs::write(&edited, text).expect("edit");
    let log = run(false);
    assert!(log.contains("mlops-train.yml"), "{log}");
    assert!(log.contains("run `mlops render` to update"), "{log}");
}
