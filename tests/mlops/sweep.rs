//! Hyperparameter sweeps (`training.sweep`) through the binary: every trial trained, the best
//! registered once with all trials on its card; `mlops run` sweeps the same way.

use crate::bin::{mlops, succeeds};
use crate::quickstart;

/// A quickstart-like manifest's `text` with a 2 x 2 grid over the learning rate and the hidden
/// layers, five epochs each (enough to tell the trials apart), and a threshold every sensible
/// trial passes.
pub(crate) fn grid_of_four(text: String) -> String {
    let out = text
        .replace(
            "  local:\n    device: cpu\n",
            "  local:\n    device: cpu\n  sweep:\n    method: grid\n    budget: 4\n    objective: { metric: accuracy }\n    parameters:\n      learning_rate: [0.0003, 0.003]\n      hidden_layers: [[16], [64]]\n",
        )
        .replace("epochs: 30", "epochs: 5")
        .replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.5 }");
    assert_eq!(out.matches("sweep:").count(), 1, "{out}");
    out
}

/// The quickstart with [`grid_of_four`].
fn swept() -> tempfile::TempDir {
    quickstart::copy(grid_of_four)
}

#[test]
fn a_grid_sweep_registers_its_best_trial_with_every_trial_on_the_card() {
    let dir = swept();
    let mut c = mlops();
    c.args(["train", "--format", "json", "--manifest"])
        .arg(dir.path().join("mlops.yaml"));
    let out = succeeds(c);
    let summary: serde_json::Value =
        serde_json::from_str(&out).expect("one JSON summary on stdout");
    assert_eq!(summary["model_version"], "digits-mlp@1");
    let registry = dir.path().join(".mlops/registry/digits-mlp");
    let versions: Vec<_> = std::fs::read_dir(&registry)
        .expect("registry")
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(versions.len(), 1, "one version for four trials");
    let card: mlops_artifacts::card::ModelCard =
        serde_json::from_slice(&std::fs::read(registry.join("1/card.json")).expect("card"))
            .expect("a card");
    let sweep = card.sweep.as_ref().expect("the card records the sweep");
    assert_eq!(
        (sweep.method.as_str(), sweep.goal.as_str()),
        ("grid", "maximize")
    );
    assert_eq!(sweep.trials.len(), 4);
    let combos: Vec<String> = sweep
        .trials
        .iter()
        .map(|t| serde_json::to_string(&t.parameters).expect("JSON"))
        .collect();
    assert_eq!(
        combos,
        [
            r#"{"hidden_layers":[16],"learning_rate":0.0003}"#,
            r#"{"hidden_layers":[64],"learning_rate":0.0003}"#,
            r#"{"hidden_layers":[16],"learning_rate":0.003}"#,
            r#"{"hidden_layers":[64],"learning_rate":0.003}"#,
        ]
    );
    // The registered trial is the one with the highest validation accuracy, and the card's job,
    // metrics and objective are that trial's.
    let top = sweep
        .trials
        .iter()
        .max_by(|a, b| a.objective.total_cmp(&b.objective))
        .expect("trials");
    assert_eq!(sweep.best, top.trial);
    let objectives: Vec<f64> = sweep.trials.iter().map(|t| t.objective).collect();
    assert!(
        objectives.windows(2).any(|w| w[0] != w[1]),
        "the trials differ: {objectives:?}"
    );
    for t in &sweep.trials {
        assert_eq!(t.metrics.get("accuracy"), Some(&t.objective), "{t:?}");
        assert!(t.seconds > 0.0);
    }
    assert_eq!(
        card.training.metrics_of("validation").get("accuracy"),
        Some(&top.objective)
    );
    assert_eq!(
        summary["metrics"]["accuracy"],
        serde_json::json!(top.objective)
    );
    assert_eq!(
        serde_json::json!(card.job.hyperparameters.hidden_layers),
        top.parameters["hidden_layers"]
    );
    assert_eq!(
        serde_json::json!(card.job.learning_rate),
        top.parameters["learning_rate"]
    );
    // The manifest recorded is the one swept, not a trial's.
    assert!(card.manifest.path.ends_with("mlops.yaml"));
}

#[test]
fn trials_are_shown_and_trial_flags_are_refused_on_sagemaker() {
    let dir = swept();
    let manifest = dir.path().join("mlops.yaml");
    let text = succeeds({
        let mut c = mlops();
        c.args(["train", "--manifest"]).arg(&manifest);
        c
    });
    assert!(
        text.contains("trial 4/4: hidden_layers=[64] learning_rate=0.003"),
        "{text}"
    );
    assert!(
        text.contains("sweep: 4 trials (grid), maximize validation accuracy"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("* trial")).count(),
        1,
        "{text}"
    );
    // On SageMaker a tuning job runs every trial (tests/mlops/sagemaker.rs), so the flags of
    // a fanned-out trial are refused rather than ignored.
    let out = mlops()
        .args(["train", "--backend", "sagemaker", "--sweep-trial", "1"])
        .args(["--sweep-id", "7", "--manifest"])
        .arg(&manifest)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a hyperparameter tuning job runs them all"),
        "{err}"
    );
    assert!(!dir.path().join(".mlops/registry/digits-mlp/2").exists());
}

/// `mlops run` sweeps in its train stage (the trials one after the other), and the promotion
/// it writes shows the sweep.
#[test]
fn mlops_run_sweeps_in_its_train_stage() {
    let dir = swept();
    let out = mlops()
        .current_dir(dir.path())
        .args(["run", "--manifest", "mlops.yaml"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = dir.path().join(".mlops/run");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("run.json")).expect("run.json"))
            .expect("JSON");
    let train = run["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["stage"] == "train")
        .expect("the train stage");
    let figure = train["figure"].as_str().unwrap_or_default();
    assert!(
        figure.starts_with("sweep of 4 trials (grid), trial "),
        "{train}"
    );
    let body = std::fs::read_to_string(work.join("pull-request.md")).expect("the body");
    assert!(body.contains("### Sweep: 4 trials (grid)"), "{body}");
    let section = body
        .split("### Sweep")
        .nth(1)
        .and_then(|s| s.split("was registered.").next())
        .unwrap_or_default();
    assert_eq!(
        section.lines().filter(|l| l.starts_with("| **")).count(),
        1,
        "one registered trial: {body}"
    );
}
