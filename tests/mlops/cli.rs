//! End-to-end tests of the `mlops` binary: exit codes, output formats, flags mirrored to
//! `MLOPS_*` variables, the Actions outputs and summary, and hostile input run as a real process.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::bin;
use crate::moto;
use bin::{mlops, root};

fn run(c: &mut Command) -> Output {
    c.output().expect("mlops runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A command's stdout and stderr, for a failure message.
fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn valid_examples_exit_zero() {
    for m in [
        "examples/quickstart/mlops.yaml",
        "examples/sagemaker/mlops.yaml",
    ] {
        let out = run(mlops().args(["validate", "--manifest", m]));
        assert_eq!(out.status.code(), Some(0), "{m}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(": valid (manifest version 1"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn invalid_manifest_exits_one_with_located_human_errors() {
    let out = run(mlops().args([
        "validate",
        "--manifest",
        "examples/invalid/unknown-key.yaml",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error[schema/unknown-key]: unknown key `epocs` in `training`"),
        "{err}"
    );
    assert!(
        err.contains("--> examples/invalid/unknown-key.yaml:16:3"),
        "{err}"
    );
    assert!(err.contains("16 |   epocs: 30\n   |   ^^^^^"), "{err}");
    assert!(err.contains("did you mean `epochs`?"), "{err}");
}

#[test]
fn json_format_is_one_document() {
    let out = run(mlops().args([
        "validate",
        "--format",
        "json",
        "--manifest",
        "examples/invalid/five-errors.yaml",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"], 5);
    let diags = doc["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 5);
    let first = &diags[0];
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(6), Some(15))
    );
    assert_eq!(first["path"], "project.repository");
    assert_eq!(first["file"], "examples/invalid/five-errors.yaml");
    assert_eq!(
        doc["files"],
        serde_json::json!(["examples/invalid/five-errors.yaml"])
    );
    let ok = run(mlops().args([
        "validate",
        "--format",
        "json",
        "--manifest",
        "examples/quickstart/mlops.yaml",
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("stdout is JSON");
    assert_eq!(
        (doc["valid"].as_bool(), doc["errors"].as_u64()),
        (Some(true), Some(0))
    );
}

#[test]
fn github_format_emits_annotations() {
    let out = run(mlops().args([
        "validate",
        "--format",
        "github",
        "--manifest",
        "examples/invalid/wrong-types.yaml",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let annotations: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 4, "{stdout}");
    assert!(
        annotations.contains(
            &"::error file=examples/invalid/wrong-types.yaml,line=16,col=11,endColumn=17,title=mlops%3A schema/type::`training.epochs` must be an integer, found the string `thirty`%0Ahint: Passes over the training set."
        ),
        "{stdout}"
    );
}

#[test]
fn flags_are_mirrored_to_environment_variables() {
    let out = run(mlops()
        .arg("validate")
        .env("MLOPS_MANIFEST", "examples/invalid/five-errors.yaml")
        .env("MLOPS_FORMAT", "json"));
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON from MLOPS_FORMAT");
    assert_eq!(doc["files"][0], "examples/invalid/five-errors.yaml");
    // A flag wins over its variable.
    let out = run(mlops()
        .args(["validate", "--manifest", "examples/quickstart/mlops.yaml"])
        .env("MLOPS_MANIFEST", "examples/invalid/five-errors.yaml"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn inside_actions_github_is_the_default_and_outputs_and_summary_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = (dir.path().join("output"), dir.path().join("summary"));
    let out = run(mlops()
        .args(["validate", "--manifest", "examples/invalid/semantic.yaml"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("::error file="))
            .count(),
        6
    );
    let outputs = std::fs::read_to_string(&output).expect("outputs written");
    assert!(outputs.starts_with("valid<<ghadelimiter_"), "{outputs}");
    assert!(outputs.contains("\nfalse\nghadelimiter_"), "{outputs}");
    assert!(outputs.contains("errors<<ghadelimiter_"), "{outputs}");
    assert!(outputs.contains("\n6\nghadelimiter_"), "{outputs}");
    let md = std::fs::read_to_string(&summary).expect("summary written");
    assert!(
        md.contains("| `examples/invalid/semantic.yaml:17:12` | `semantic/sagemaker-settings` |"),
        "{md}"
    );
}

#[test]
fn unreadable_manifest_is_a_usage_error() {
    let out = run(mlops().args(["validate", "--manifest", "does/not/exist.yaml"]));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot read does/not/exist.yaml"), "{err}");
    assert!(err.contains("--manifest"), "{err}");
    let out = run(mlops().args(["validate", "--manifest", "examples"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is a directory"));
}

#[test]
fn bad_flags_exit_two_and_help_exits_zero() {
    assert_eq!(
        run(mlops().args(["validate", "--no-such-flag"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(mlops().args(["validate", "--format", "xml"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(mlops().args(["no-such-command"])).status.code(),
        Some(2)
    );
    let help = run(mlops().arg("--help"));
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("validate"));
    assert_eq!(run(mlops().arg("--version")).status.code(), Some(0));
}

/// Numbers out of their range stop at the command line (exit 2, naming the flag and what it
/// takes) instead of being clamped, running forever or panicking later.
#[test]
fn out_of_range_numbers_are_usage_errors_that_say_the_range() {
    let refused = |args: &[&str], env: &[(&str, &str)], said: &[&str]| {
        let out = run(mlops().args(args).envs(env.iter().copied()));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        for s in said {
            assert!(err.contains(s), "{args:?} {env:?}: no `{s}` in {err}");
        }
    };
    let holdout = ["holdout", "--model", "m@1"];
    refused(
        &[&holdout[..], &["--batch-size", "0"]].concat(),
        &[],
        &["--batch-size", "1..=100000"],
    );
    refused(
        &[&holdout[..], &["--concurrency", "257"]].concat(),
        &[],
        &["--concurrency", "1..=256"],
    );
    refused(
        &holdout,
        &[("MLOPS_TIMEOUT_SECONDS", "0")],
        &["--timeout-seconds", "1..=3600"],
    );
    refused(
        &["serve", "--model", "m@1", "--max-rows", "0"],
        &[],
        &["--max-rows", "must be at least 1"],
    );
    refused(&["gate", "--pr", "0"], &[], &["--pr", "must be at least 1"]);
    let positive = ["--poll-seconds", "positive number of seconds"];
    refused(
        &["deploy", "--env", "staging", "--poll-seconds", "inf"],
        &[],
        &positive,
    );
    refused(&["train", "--poll-seconds=-1"], &[], &positive);
    refused(
        &["train", "--poll-seconds", "soon"],
        &[],
        &["--poll-seconds", "not a number of seconds"],
    );
}

#[test]
fn default_manifest_is_mlops_yaml_in_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("examples/quickstart/mlops.yaml"),
        dir.path().join("mlops.yaml"),
    )
    .expect("copy");
    let out = run(mlops().arg("validate").current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("mlops.yaml: valid"));
}

#[test]
fn non_utf8_and_oversized_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"version: 1\nproject:\n  name: caf\xe9\n").expect("write");
    let out = run(mlops().arg("validate").arg("--manifest").arg(&latin1));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not valid UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let huge = dir.path().join("huge.yaml");
    std::fs::write(&huge, "a: 1\n".repeat(300_000)).expect("write");
    let out = run(mlops().arg("validate").arg("--manifest").arg(&huge));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("manifests are limited to 1048576 bytes"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `mlops validate` on `manifest` under an address-space limit of `limit_mb`, killing it if
/// it has not finished after `bound` (a hang detector, not a timing assertion).
fn validate_limited(manifest: &str, limit_mb: u64, bound: Duration) -> Output {
    let script = format!(
        "ulimit -v {}; exec \"$0\" validate --manifest \"$1\"",
        limit_mb * 1024
    );
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_mlops"), manifest])
        .current_dir(root())
        .env_remove("GITHUB_ACTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let pid = child.id();
    // Read the output while waiting: a full pipe would otherwise block the child.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(bound) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("mlops validate {manifest} did not finish within {bound:?}");
        }
    }
}

#[test]
fn alias_bomb_is_refused_within_a_small_address_space() {
    let out = validate_limited(
        "examples/invalid/alias-bomb.yaml",
        256,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("aliases expand to more than 100000 nodes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = dir.path().join("deep.yaml");
    let n = 100_000;
    std::fs::write(
        &deep,
        format!("version: 1\nproject: {}{}\n", "[".repeat(n), "]".repeat(n)),
    )
    .expect("write");
    let out = validate_limited(
        deep.to_str().expect("utf-8 path"),
        256,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("error[yaml/too-deep]"), "{err}");
    assert!(
        err.lines().all(|l| l.chars().count() < 300),
        "long source lines are shown as a window"
    );
}

/// The quickstart's `text` as one model of a monorepo: `project.monorepo` set and pin files of
/// its own, `deploy/SUB/production.yaml` and `deploy/SUB/staging.yaml`.
fn monorepo(text: String, sub: &str) -> String {
    let out = text
        .replace(
            "repository: mlops-rs/digits-example\n",
            "repository: mlops-rs/digits-example\n  monorepo: true\n",
        )
        .replace(
            "pin_file: deploy/production.yaml",
            &format!("pin_file: deploy/{sub}/production.yaml"),
        )
        .replace(
            "pin_file: deploy/staging.yaml",
            &format!("pin_file: deploy/{sub}/staging.yaml"),
        );
    assert!(out.contains("monorepo: true") && out.contains(&format!("deploy/{sub}/")));
    out
}

/// The codes of `validate --format json` of `manifests`, and its exit code.
fn codes_of(manifests: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut cmd = mlops();
    cmd.args(["validate", "--format", "json"]);
    for m in manifests {
        cmd.args(["--manifest", m]);
    }
    let out = run(&mut cmd);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let codes = doc["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str().map(str::to_owned))
        .collect();
    (out.status.code(), codes)
}

/// Manifests sharing a repository must all be monorepo models, with pin files of their own.
#[test]
fn models_sharing_a_repository_must_each_say_so_and_keep_their_pins_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = |sub: &str, edit: &dyn Fn(String) -> String| {
        manifest_in(dir.path(), sub, |t| {
            edit(t)
                .replace("name: digits\n", &format!("name: {sub}\n"))
                .replace("name: digits-mlp\n", &format!("name: {sub}-mlp\n"))
        })
    };
    let fraud = model("fraud", &|t| monorepo(t, "fraud"));
    let churn = model("churn", &|t| monorepo(t, "churn"));
    assert_eq!(codes_of(&[&fraud, &churn]), (Some(0), vec![]));
    // One of them renders the one-model file names: whichever comes first, it is reported.
    let single = model("single", &|t| {
        t.replace("deploy/production.yaml", "deploy/single.yaml")
            .replace("deploy/staging.yaml", "deploy/single-staging.yaml")
    });
    let want = (Some(1), vec!["manifest/shared-repository".to_owned()]);
    assert_eq!(codes_of(&[&fraud, &single]), want);
    assert_eq!(codes_of(&[&single, &fraud]), want);
    // Two monorepo models moving one pin file.
    let same_pin = model("same", &|t| {
        monorepo(t, "same").replace("deploy/same/production", "deploy/fraud/production")
    });
    let (code, codes) = codes_of(&[&fraud, &same_pin]);
    assert_eq!(
        (code, codes),
        (Some(1), vec!["manifest/shared-pin-file".to_owned()])
    );
    let out = run(mlops().args(["validate", "--manifest", &fraud, "--manifest", &same_pin]));
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(
        err.contains(
            "pin file `deploy/fraud/production.yaml` in mlops-rs/digits-example is also moved by"
        ),
        "{err}"
    );
}

/// Copies the quickstart into `dir/<sub>/mlops.yaml` with `edit` applied to its text.
fn manifest_in(dir: &Path, sub: &str, edit: impl Fn(String) -> String) -> String {
    let text =
        std::fs::read_to_string(root().join("examples/quickstart/mlops.yaml")).expect("quickstart");
    std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    let path = dir.join(sub).join("mlops.yaml");
    std::fs::write(&path, edit(text)).expect("write");
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn several_manifests_are_checked_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = manifest_in(dir.path(), "a", |t| monorepo(t, "a"));
    let b = manifest_in(dir.path(), "b", |t| {
        monorepo(t, "b").replace("name: digits-mlp\n", "name: digits-b\n")
    });
    // Same project name: every derived name would collide. The registries differ (each resolves
    // next to its own manifest), so the model name alone is no collision.
    let out = run(mlops().args([
        "validate",
        "--format",
        "json",
        "--manifest",
        &a,
        "--manifest",
        &b,
    ]));
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let diags = doc["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 1, "{doc}");
    assert_eq!(diags[0]["code"], "manifest/duplicate-project");
    assert_eq!(
        (
            diags[0]["file"].as_str(),
            diags[0]["line"].as_u64(),
            diags[0]["column"].as_u64()
        ),
        (Some(b.as_str()), Some(9), Some(9))
    );
    assert_eq!(diags[0]["related"]["file"], a.as_str());
    // Distinct projects sharing one registry must not share a model name.
    let shared = |t: String| t.replace("path: .mlops/registry", "path: ../registry");
    let c = manifest_in(dir.path(), "c", |t| monorepo(shared(t), "c"));
    let d = manifest_in(dir.path(), "d", move |t| {
        monorepo(shared(t), "d").replace("name: digits\n", "name: numbers\n")
    });
    let out = run(mlops().args([
        "validate",
        "--format",
        "json",
        "--manifest",
        &c,
        "--manifest",
        &d,
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    // The promotion branch is named after the model too.
    assert_eq!(
        codes,
        [
            "manifest/shared-promotion-branch",
            "manifest/duplicate-model"
        ]
    );
    // Distinct everything: valid; the same file named twice is checked once.
    let out = run(mlops().args([
        "validate",
        "--manifest",
        "examples/quickstart/mlops.yaml",
        "--manifest",
        "examples/sagemaker/mlops.yaml",
        "--manifest",
        "./examples/quickstart/mlops.yaml",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn an_unreadable_manifest_among_several_is_a_usage_error_and_the_others_are_still_checked() {
    let out = run(mlops().args([
        "validate",
        "--format",
        "json",
        "--manifest",
        "missing.yaml",
        "--manifest",
        "examples/invalid/unknown-key.yaml",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["read_errors"][0]["file"], "missing.yaml");
    assert_eq!(doc["diagnostics"].as_array().map(Vec::len), Some(2));
}

/// A repository with the sagemaker example as its manifest, rendered once.
fn rendered_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".git")).expect(".git");
    std::fs::copy(
        root().join("examples/sagemaker/mlops.yaml"),
        dir.path().join("mlops.yaml"),
    )
    .expect("copy manifest");
    let out = render_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    dir
}

/// `mlops render EXTRA... --manifest mlops.yaml`, run in `dir`.
fn render_in(dir: &Path, extra: &[&str]) -> Output {
    run(mlops()
        .current_dir(dir)
        .arg("render")
        .args(extra)
        .args(["--manifest", "mlops.yaml"]))
}

fn check(dir: &Path) -> Output {
    render_in(dir, &["--check"])
}

#[test]
fn render_then_check_is_clean_and_rendering_again_changes_nothing() {
    let dir = rendered_repo();
    assert!(dir.path().join("terraform/storage.tf").is_file());
    assert!(
        dir.path()
            .join(".github/workflows/mlops-release.yml")
            .is_file()
    );
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let again = render_in(dir.path(), &[]);
    assert!(
        text(&again.stdout).contains(", 0 changed"),
        "{}",
        text(&again.stdout)
    );
}

/// A directory registry lives on one runner: the release loop is not rendered (a note says why
/// and how to get it), and a loop rendered before, when the registry was in S3, is obsolete.
#[test]
fn a_directory_registry_renders_no_release_loop_and_says_why() {
    let dir = rendered_repo();
    let release = dir.path().join(".github/workflows/mlops-release.yml");
    assert!(release.is_file());
    let manifest = dir.path().join("mlops.yaml");
    let s3 = std::fs::read_to_string(&manifest).expect("manifest");
    let local = s3.replace(
        "path: s3://acme-ml-artifacts/churn/registry",
        "path: .mlops/registry",
    );
    assert_ne!(local, s3);
    std::fs::write(&manifest, local).expect("edit");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    for loop_file in ["mlops-train.yml", "mlops-release.yml"] {
        assert!(
            text(&out.stdout).contains(&format!("obsolete: .github/workflows/{loop_file}")),
            "{}",
            text_of(&out)
        );
    }
    let out = render_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let note = text(&out.stderr);
    assert!(
        note.contains("note: the train, release and gate workflows are not rendered: `registry.path` (.mlops/registry)")
            && note.contains("`s3://BUCKET/PREFIX`"),
        "{note}"
    );
    assert!(!release.exists());
    assert!(dir.path().join(".github/workflows/mlops-ci.yml").is_file());
    assert_eq!(check(dir.path()).status.code(), Some(0));
}

/// With `promotion.repository` elsewhere (the SageMaker example promotes in acme/ml-deploy),
/// the gate is not rendered into the model's repository, where it would never see a promotion
/// (one rendered there before is obsolete); `--promotion-out` renders it, with the manifest copy
/// it reads, into a checkout of the promotion repository, beside other projects' files.
#[test]
fn the_gate_of_another_promotion_repository_is_rendered_into_its_checkout() {
    let dir = rendered_repo();
    let old_gate = dir.path().join(".github/workflows/mlops-gate.yml");
    assert!(!old_gate.exists());
    std::fs::write(
        &old_gate,
        format!("{}\nname: mlops gate\n", mlops_render::HEADER),
    )
    .expect("an old gate");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(
        text(&out.stdout).contains("obsolete: .github/workflows/mlops-gate.yml"),
        "{}",
        text_of(&out)
    );
    let out = render_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(!old_gate.exists());
    assert!(
        text(&out.stderr)
            .contains("production's gate runs in the promotion repository acme/ml-deploy")
            && text(&out.stderr).contains("--promotion-out DIR"),
        "{}",
        text_of(&out)
    );

    // The promotion repository's checkout, holding another project's gate.
    let promo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(promo.path().join(".git")).expect(".git");
    let theirs = [
        (
            ".github/workflows/mlops-gate-other.yml",
            format!("{}\nname: theirs\n", mlops_render::HEADER),
        ),
        (
            "mlops/other/mlops.yaml",
            format!("{}\nproject: theirs\n", mlops_render::HEADER),
        ),
    ];
    for (path, text) in &theirs {
        let p = promo.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let into = promo.path().to_str().expect("utf-8 path");
    let out = render_in(dir.path(), &["--promotion-out", into]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("wrote .github/workflows/mlops-gate-churn.yml")
            && stdout.contains("wrote mlops/churn/mlops.yaml")
            && stdout.contains("2 rendered files, 2 changed"),
        "{stdout}"
    );
    for (path, text) in &theirs {
        assert_eq!(
            &std::fs::read_to_string(promo.path().join(path)).expect("kept"),
            text
        );
    }
    // The copy is the manifest: it validates there, and the gate reads it.
    let copy = promo.path().join("mlops/churn/mlops.yaml");
    let out = run(mlops().args(["validate", "--manifest"]).arg(&copy));
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let gate = std::fs::read_to_string(promo.path().join(".github/workflows/mlops-gate-churn.yml"))
        .expect("the gate");
    assert!(
        gate.contains("manifest: \"mlops/churn/mlops.yaml\""),
        "{gate}"
    );
    let out = render_in(dir.path(), &["--check", "--promotion-out", into]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));

    // A reviewer added to the copy by hand is drift.
    let text_before = std::fs::read_to_string(&copy).expect("copy");
    let edited = text_before.replace("team_reviewers: [", "team_reviewers: [acme/mallory, ");
    assert_ne!(edited, text_before);
    std::fs::write(&copy, edited).expect("edit");
    let out = render_in(dir.path(), &["--check", "--promotion-out", into]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(
        text(&out.stdout).contains("--- a/mlops/churn/mlops.yaml")
            && text(&out.stdout).contains("mallory"),
        "{}",
        text_of(&out)
    );

    // A manifest promoting in its own repository has no other repository to render.
    let same = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("examples/digits-github/mlops.yaml"),
        same.path().join("mlops.yaml"),
    )
    .expect("copy");
    let out = render_in(same.path(), &["--promotion-out", into]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    assert!(
        text(&out.stderr).contains("--promotion-out: the promotion repository is this one"),
        "{}",
        text_of(&out)
    );
}

#[test]
fn check_shows_a_diff_and_fails_on_drift() {
    let dir = rendered_repo();
    let file = dir.path().join("terraform/ecr.tf");
    let edited = std::fs::read_to_string(&file)
        .expect("read")
        .replace("scan_on_push = true", "scan_on_push = false");
    std::fs::write(&file, edited).expect("edit");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("--- a/terraform/ecr.tf"), "{stdout}");
    assert!(stdout.contains("-    scan_on_push = false"), "{stdout}");
    assert!(stdout.contains("+    scan_on_push = true"), "{stdout}");
    assert!(text(&out.stderr).contains("run `mlops render` to update"));
}

#[test]
fn a_dependabot_sha_bump_is_not_drift_but_an_older_pin_is() {
    let dir = rendered_repo();
    let file = dir.path().join(".github/workflows/mlops-ci.yml");
    let original = std::fs::read_to_string(&file).expect("read");
    let old = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0";
    assert!(original.contains(old));
    let bumped = original.replace(
        old,
        "actions/checkout@ffffffffffffffffffffffffffffffffffffffff # v5.0.1",
    );
    std::fs::write(&file, &bumped).expect("bump");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Rendering keeps the bump.
    render_in(dir.path(), &[]);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), bumped);
    let downgraded = original.replace(
        old,
        "actions/checkout@eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee # v4.2.2",
    );
    std::fs::write(&file, downgraded).expect("downgrade");
    assert_eq!(check(dir.path()).status.code(), Some(1));
}

#[test]
fn deleted_and_added_files_are_reported() {
    let dir = rendered_repo();
    std::fs::remove_file(dir.path().join("terraform/outputs.tf")).expect("rm");
    std::fs::write(dir.path().join("terraform/extra.tf"), "locals {}\n").expect("add");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("missing: terraform/outputs.tf"), "{stdout}");
    assert!(
        stdout.contains("terraform/extra.tf is not generated by mlops render"),
        "{stdout}"
    );
    let json = render_in(dir.path(), &["--check", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(doc["missing"], serde_json::json!(["terraform/outputs.tf"]));
    assert_eq!(doc["foreign"], serde_json::json!(["terraform/extra.tf"]));
    assert_eq!(doc["current"], false);
}

#[test]
fn a_hand_written_file_is_not_overwritten_without_force() {
    let dir = rendered_repo();
    let file = dir.path().join("terraform/ecr.tf");
    std::fs::write(&file, "# my own\n").expect("write");
    std::fs::remove_file(dir.path().join("terraform/outputs.tf")).expect("rm");
    let out = render_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("terraform/ecr.tf"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("--force"));
    // Nothing was written: not even the missing file.
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "# my own\n");
    assert!(!dir.path().join("terraform/outputs.tf").exists());
    let out = render_in(dir.path(), &["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(check(dir.path()).status.code(), Some(0));
}

#[test]
fn render_refuses_an_invalid_manifest_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mlops.yaml"), "version: 1\nproject: {}\n").expect("write");
    let out = render_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("mlops.yaml:"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join(".github").exists());
}

fn train_in(dir: &Path, registry: &Path, extra: &[&str]) -> Output {
    run(mlops()
        .current_dir(dir)
        .args(["train", "--manifest", "mlops.yaml", "--registry"])
        .arg(registry)
        .args(extra))
}

fn json_doc(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// Datasets at `s3://` addresses (moto standing in for S3): streamed down with the SDK's default
/// credential chain, hashed, and recorded in the card under the address the manifest gives. A
/// missing object is the user's to fix (exit 2, nothing registered); an unreachable endpoint is
/// exit 3.
#[test]
fn train_reads_datasets_from_s3() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let data = root().join("examples/quickstart/data");
    for file in ["digits-train.csv", "digits-holdout.csv"] {
        let body = std::fs::read(data.join(file)).expect("data");
        moto.put("mlops-data", &format!("digits/{file}"), &body);
    }
    let remote = |holdout: &'static str| {
        move |t: String| {
            t.replace("epochs: 30", "epochs: 3")
                .replace("min: 0.95", "min: 0.5")
                .replace(
                    "path: data/digits-train.csv",
                    "path: s3://mlops-data/digits/digits-train.csv",
                )
                .replace(
                    "path: data/digits-holdout.csv",
                    &format!("path: s3://mlops-data/digits/{holdout}"),
                )
        }
    };
    let dir = crate::quickstart::copy(remote("digits-holdout.csv"));
    let reg = dir.path().join("reg");
    let mut cmd = mlops();
    cmd.current_dir(dir.path())
        .args([
            "train",
            "--format",
            "json",
            "--manifest",
            "mlops.yaml",
            "--registry",
        ])
        .arg(&reg);
    moto.env(&mut cmd);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reg.join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("json");
    let train = &card["datasets"]["train"];
    assert_eq!(train["path"], "s3://mlops-data/digits/digits-train.csv");
    assert_eq!(
        train["sha256"],
        "65bd94a07c3559d12d6ead310fcf96c84507fb624ea81b801a3c4d4fd303fa59"
    );
    assert_eq!(card["datasets"]["holdout"]["rows"], 297);

    let missing = crate::quickstart::copy(remote("no-such-file.csv"));
    let reg = missing.path().join("reg");
    let mut cmd = mlops();
    cmd.current_dir(missing.path())
        .args(["train", "--manifest", "mlops.yaml", "--registry"])
        .arg(&reg);
    moto.env(&mut cmd);
    let out = run(&mut cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s3://mlops-data/digits/no-such-file.csv does not exist"),
        "{stderr}"
    );
    assert!(!reg.exists(), "registered without data");

    let mut cmd = mlops();
    cmd.current_dir(dir.path())
        .args(["train", "--manifest", "mlops.yaml", "--registry"])
        .arg(dir.path().join("reg2"));
    moto::aws_env(&mut cmd, &format!("http://127.0.0.1:{}", moto::free_port()));
    let out = run(&mut cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("s3://mlops-data/digits/"), "{stderr}");
    assert!(
        !stderr.contains("testing"),
        "credentials in the output: {stderr}"
    );
}

/// A registry under an `s3://` prefix (moto standing in for S3): versions are claimed with a
/// conditional write, so a version some other run claimed but never finished is skipped and
/// never listed; list, show, approve and reject work on it as on a directory.
#[test]
fn the_registry_can_live_under_an_s3_prefix() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    moto.put("mlops-models", "README", b"models");
    let registry = "s3://mlops-models/team/registry";
    let dir = crate::quickstart::copy(|t| {
        t.replace("epochs: 30", "epochs: 2")
            .replace("min: 0.95", "min: 0.5")
    });
    let cli = |args: &[&str]| {
        let mut cmd = mlops();
        cmd.current_dir(dir.path()).args(args);
        moto.env(&mut cmd);
        run(&mut cmd)
    };
    let train = || {
        cli(&[
            "train",
            "--format",
            "json",
            "--manifest",
            "mlops.yaml",
            "--registry",
            registry,
        ])
    };
    let out = train();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json_doc(&out);
    assert_eq!(doc["model_version"], "digits-mlp@1");
    assert_eq!(
        doc["registry"],
        "s3://mlops-models/team/registry/digits-mlp/1"
    );
    // Another run claimed version 2 and died before finishing it.
    moto.put("mlops-models", "team/registry/digits-mlp/2/.claim", b"{}");
    let out = train();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json_doc(&out)["model_version"], "digits-mlp@3");

    let out = cli(&[
        "registry",
        "list",
        "--format",
        "json",
        "--registry",
        registry,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let refs: Vec<String> = json_doc(&out)["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["ref"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(refs, ["digits-mlp@1", "digits-mlp@3"]);
    let (status, weights) = moto.http(
        "GET",
        "/mlops-models/team/registry/digits-mlp/3/model.safetensors",
        b"",
    );
    assert_eq!(status, 200, "{weights}");
    assert!(
        weights.contains("\"dtype\":\"F32\""),
        "not safetensors: {weights:.300}"
    );

    let out = cli(&[
        "registry",
        "reject",
        "digits-mlp@3",
        "--reason",
        "drift",
        "--registry",
        registry,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cli(&[
        "registry",
        "show",
        "digits-mlp@approved",
        "--format",
        "json",
        "--registry",
        registry,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json_doc(&out);
    assert_eq!(doc["ref"], "digits-mlp@1");
    assert_eq!(doc["card"]["ref"], "digits-mlp@1");
    let out = cli(&["registry", "show", "digits-mlp@2", "--registry", registry]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("has no version 2"),
        "{}",
        text(&out.stderr)
    );
}

/// `mlops train-worker` in a directory laid out the way SageMaker lays out a training container:
/// string hyperparameters, one file per channel. It logs metric lines a SageMaker metric
/// definition can parse, writes the model directory, and a job restarted with its checkpoints
/// (a reclaimed spot instance) goes on from the last epoch instead of starting over. A job
/// without its holdout channel fails with exit 2 and the reason in `output/failure`.
#[test]
fn train_worker_runs_the_sagemaker_contract_and_resumes_from_checkpoints() {
    let quickstart = root().join("examples/quickstart");
    let report = mlops_manifest::check_file(&quickstart.join("mlops.yaml")).expect("readable");
    let mut job = mlops_train::worker::Job::from_manifest(&report.manifest.expect("typed"));
    let base = tempfile::tempdir().expect("tempdir");
    let write_job = |job: &mlops_train::worker::Job| {
        let config = base.path().join("input/config");
        std::fs::create_dir_all(&config).expect("mkdir");
        let text = serde_json::to_string(&job.to_hyperparameters()).expect("json");
        std::fs::write(config.join("hyperparameters.json"), text).expect("write");
    };
    for (channel, file) in [
        ("train", "digits-train.csv"),
        ("holdout", "digits-holdout.csv"),
    ] {
        let dir = base.path().join("input/data").join(channel);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(quickstart.join("data").join(file), dir.join(file)).expect("copy");
    }
    let worker = || run(mlops().args(["train-worker", "--base"]).arg(base.path()));

    job.epochs = 3;
    write_job(&job);
    let out = worker();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // What a metric definition such as `validation_accuracy=([0-9.]+)` matches, once per epoch.
    let accuracy: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.split(" validation_accuracy=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(accuracy.len(), 3, "{stdout}");
    assert!(accuracy.iter().all(|a| (0.0..=1.0).contains(a)), "{stdout}");
    for file in ["model.safetensors", "model.json", "training.json"] {
        assert!(base.path().join("model").join(file).is_file(), "{file}");
    }
    let jobs = || -> Vec<std::path::PathBuf> {
        let mut dirs: Vec<_> = std::fs::read_dir(base.path().join("checkpoints"))
            .expect("checkpoints")
            .map(|e| e.expect("entry").path())
            .collect();
        dirs.sort();
        dirs
    };
    let first_job = jobs();
    assert_eq!(first_job.len(), 1, "{first_job:?}");
    assert!(
        first_job[0].join("epoch-000003/state.json").is_file(),
        "no checkpoint after epoch 3"
    );

    // Restarted with more epochs: it goes on from epoch 3.
    job.epochs = 5;
    write_job(&job);
    let out = worker();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("resuming from the checkpoint saved after epoch 3"),
        "{stdout}"
    );
    let epochs: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("epoch=")?.split(' ').next())
        .collect();
    assert_eq!(epochs, ["4", "5"], "{stdout}");
    let training: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(base.path().join("model/training.json")).expect("training.json"),
    )
    .expect("json");
    assert_eq!(training["resumed_from"], 3);
    assert_eq!(training["curve"].as_array().map(Vec::len), Some(5));

    // Another seed is another job: it starts from epoch 1, beside the first job's checkpoints,
    // which it leaves alone.
    job.seed += 1;
    write_job(&job);
    let out = worker();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains("resuming"), "{stdout}");
    assert!(stdout.contains("epoch=1 "), "{stdout}");
    assert_eq!(jobs().len(), 2);
    assert!(first_job[0].join("epoch-000005/state.json").is_file());

    std::fs::remove_dir_all(base.path().join("input/data/holdout")).expect("rm");
    let out = worker();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let failure =
        std::fs::read_to_string(base.path().join("output/failure")).expect("output/failure");
    assert!(failure.contains("channel `holdout`"), "{failure}");
}

/// `device: wgpu` on Mesa's software Vulkan (the test machines have no GPU): the card records the
/// software adapter, the metrics are close to the CPU run's without being copied from it, and
/// `require_gpu: true` refuses that adapter before training, registering nothing.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_on_the_software_adapter_and_require_gpu_refuses_it() {
    let short = |device: &'static str| {
        move |t: String| {
            t.replace("epochs: 30", "epochs: 4")
                .replace("min: 0.95", "min: 0.85")
                .replace("device: cpu", &format!("device: {device}"))
        }
    };
    let gpu = crate::quickstart::copy(short("wgpu"));
    let reg = gpu.path().join("reg");
    let out = train_in(gpu.path(), &reg, &["--format", "json"]);
    let stderr = text(&out.stderr);
    if stderr.contains("wgpu found no usable adapter") {
        crate::tools::missing(&format!(
            "no Vulkan driver for wgpu (Debian: mesa-vulkan-drivers libvulkan1): {stderr}"
        ));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc = json_doc(&out);
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reg.join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("json");
    let adapter = &card["compute"]["adapter"];
    assert_eq!(card["compute"]["backend"], "wgpu", "{card}");
    assert_eq!(adapter["kind"], "cpu", "{adapter}");
    let name = adapter["name"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        name.contains("llvmpipe") || name.contains("lavapipe"),
        "{adapter}"
    );
    assert!(
        !adapter["driver_info"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );

    let cpu = crate::quickstart::copy(short("cpu"));
    let cpu_out = train_in(cpu.path(), &cpu.path().join("reg"), &["--format", "json"]);
    assert_eq!(cpu_out.status.code(), Some(0), "{}", text(&cpu_out.stderr));
    let cpu_doc = json_doc(&cpu_out);
    let metric = |d: &serde_json::Value, m: &str| d["metrics"][m].as_f64().expect(m);
    let (g, c) = (metric(&doc, "accuracy"), metric(&cpu_doc, "accuracy"));
    assert!(g >= 0.9 && (g - c).abs() <= 0.03, "wgpu {g} vs cpu {c}");
    let weights = |dir: &Path| {
        std::fs::read(dir.join("reg/digits-mlp/1/model.safetensors")).expect("weights")
    };
    let (gw, cw) = (weights(gpu.path()), weights(cpu.path()));
    assert_eq!(gw.len(), cw.len(), "same architecture");
    assert!(gw != cw, "the wgpu weights are byte-identical to the CPU's");

    let strict = crate::quickstart::copy(|t| {
        short("wgpu")(t).replace("device: wgpu", "device: wgpu\n    require_gpu: true")
    });
    let reg = strict.path().join("reg");
    let out = train_in(strict.path(), &reg, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("require_gpu: true"), "{stderr}");
    assert!(stderr.contains("software"), "{stderr}");
    assert!(!text(&out.stdout).contains("epoch="), "trained anyway");
    assert!(!reg.join("digits-mlp").exists(), "registered a model");
}

/// A build without the `wgpu` feature (the README's `cargo run`) refuses `device: wgpu` before
/// reading any data, says how to get a build with it, and registers nothing.
#[cfg(not(feature = "wgpu"))]
#[test]
fn a_build_without_wgpu_says_how_to_get_it() {
    let dir = crate::quickstart::copy(|t| t.replace("device: cpu", "device: wgpu"));
    let reg = dir.path().join("reg");
    let out = train_in(dir.path(), &reg, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`training.local.device: wgpu`, but this mlops was built without wgpu"),
        "{stderr}"
    );
    assert!(stderr.contains("--features wgpu"), "{stderr}");
    assert!(!text(&out.stdout).contains("epoch="), "trained anyway");
    assert!(!reg.join("digits-mlp").exists(), "registered a model");
}

/// The quickstart trains to the quality bar, registers version 1 then 2, and a second registry
/// fed the same manifest, data and seed gets byte-identical weights.
#[test]
fn train_registers_versions_with_cards_and_reproducible_weights() {
    let dir = crate::quickstart::copy(|t| t);
    let (a, b) = (dir.path().join("reg-a"), dir.path().join("reg-b"));
    let out = train_in(dir.path(), &a, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json_doc(&out);
    assert_eq!(doc["model_version"], "digits-mlp@1");
    assert_eq!(doc["status"], "approved");
    let accuracy = doc["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy >= 0.95, "{doc}");
    assert!(
        doc["holdout_metrics"]["accuracy"]
            .as_f64()
            .expect("holdout")
            >= 0.9
    );

    let again = json_doc(&train_in(dir.path(), &a, &["--format", "json"]));
    assert_eq!(again["model_version"], "digits-mlp@2");
    assert_eq!(again["metrics"], doc["metrics"]);
    let other = json_doc(&train_in(dir.path(), &b, &["--format", "json"]));
    assert_eq!(other["model_version"], "digits-mlp@1");
    let weights = |reg: &Path, v: &str| {
        std::fs::read(reg.join("digits-mlp").join(v).join("model.safetensors")).expect("weights")
    };
    assert!(
        weights(&a, "1") == weights(&b, "1"),
        "same seed, other weights"
    );
    assert!(
        weights(&a, "1") == weights(&a, "2"),
        "same seed, other weights"
    );

    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("json");
    assert_eq!(card["datasets"]["train"]["path"], "data/digits-train.csv");
    assert_eq!(
        card["datasets"]["train"]["sha256"],
        "65bd94a07c3559d12d6ead310fcf96c84507fb624ea81b801a3c4d4fd303fa59"
    );
    assert_eq!(card["datasets"]["holdout"]["rows"], 297);
    assert_eq!(card["curve"].as_array().map(Vec::len), Some(30));
    assert_eq!(card["libraries"]["burn"], "0.22.1");
    assert_eq!(card["compute"]["backend"], "flex");
    assert_eq!(card["manifest"]["sha256"].as_str().map(str::len), Some(64));
    let bundle: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("digits-mlp/1/model.json")).expect("bundle"),
    )
    .expect("json");
    assert_eq!(
        bundle["signature"]["features"].as_array().map(Vec::len),
        Some(64)
    );
    assert_eq!(bundle["signature"]["classes"][9], "9");
    assert_eq!(
        bundle["standardizer"]["mean"].as_array().map(Vec::len),
        Some(64)
    );

    // A different seed: different weights.
    let reseeded = crate::quickstart::copy(|t| t.replace("seed: 42", "seed: 43"));
    let c = reseeded.path().join("reg");
    assert_eq!(train_in(reseeded.path(), &c, &[]).status.code(), Some(0));
    assert!(
        weights(&a, "1") != weights(&c, "1"),
        "another seed, same weights"
    );

    // The registry commands see what train registered.
    let list = run(mlops()
        .args(["registry", "list", "--format", "json", "--registry"])
        .arg(&a));
    assert_eq!(
        json_doc(&list)["versions"].as_array().map(Vec::len),
        Some(2)
    );
    let out = run(mlops()
        .args([
            "registry",
            "reject",
            "digits-mlp@2",
            "--reason",
            "bad",
            "--registry",
        ])
        .arg(&a));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let show = run(mlops()
        .args([
            "registry",
            "show",
            "digits-mlp@approved",
            "--format",
            "json",
            "--registry",
        ])
        .arg(&a));
    assert_eq!(json_doc(&show)["ref"], "digits-mlp@1");
    let out = run(mlops()
        .args(["registry", "show", "digits-mlp@7", "--registry"])
        .arg(&a));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("its versions are 1, 2"),
        "{}",
        text(&out.stderr)
    );
    let out = run(mlops()
        .args(["registry", "approve", "digits", "--registry"])
        .arg(&a));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("NAME@VERSION"));
}

/// A model below a threshold is registered as rejected and the command fails, naming the metric
/// and the threshold; inside Actions the outputs and the summary are written all the same.
#[test]
fn a_model_below_its_threshold_is_rejected_with_exit_one() {
    let dir = crate::quickstart::copy(|t| {
        t.replace("accuracy: { min: 0.95 }", "accuracy: { min: 0.9999 }")
    });
    let reg = dir.path().join("reg");
    let output = dir.path().join("out.txt");
    let summary = dir.path().join("summary.md");
    let out = run(mlops()
        .current_dir(dir.path())
        .args(["train", "--manifest", "mlops.yaml", "--registry"])
        .arg(&reg)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("::group::Training digits-mlp"), "{stdout}");
    assert!(stdout.contains("epoch=30 loss="), "{stdout}");
    assert!(
        stdout.contains("below the threshold (min 0.9999)"),
        "{stdout}"
    );
    assert!(stdout.contains("::error title=mlops train::"), "{stdout}");
    let status = std::fs::read_to_string(reg.join("digits-mlp/1/status.json")).expect("status");
    assert!(status.contains("\"rejected\""), "{status}");
    assert!(status.contains("accuracy"), "{status}");
    let outputs = std::fs::read_to_string(&output).expect("outputs");
    assert!(
        outputs.contains("model-version") && outputs.contains("digits-mlp@1"),
        "{outputs}"
    );
    let md = std::fs::read_to_string(&summary).expect("summary");
    assert!(
        md.contains("| accuracy |") && md.contains("xychart-beta"),
        "{md}"
    );
}

/// Bad data stops training before it starts, located at file:line; a diverging loss exits 1.
#[test]
fn bad_data_is_located_and_a_diverging_loss_stops_training() {
    let dir = crate::quickstart::copy(|t| t);
    let train = dir.path().join("data/digits-train.csv");
    let mut rows = std::fs::read_to_string(&train).expect("train");
    rows.push_str("1,2,3\n");
    std::fs::write(&train, rows).expect("write");
    let reg = dir.path().join("reg");
    let out = train_in(dir.path(), &reg, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("digits-train.csv:1502: has 3 fields, the header has 65"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!reg.exists(), "nothing may be registered");

    // Regression on a target far too large for f32 arithmetic: the loss overflows.
    let dir = crate::quickstart::copy(|t| {
        t.replace("task: classification", "task: regression")
            .replace("metrics: [accuracy, f1_macro]", "metrics: [rmse]")
            .replace("accuracy: { min: 0.95 }", "rmse: { max: 1.0 }")
            .replace("    accuracy: 0.0\n    f1_macro: 0.0\n", "    rmse: 0.0\n")
            .replace(
                "    accuracy: { absolute: 0.01 }",
                "    rmse: { relative: 0.05 }",
            )
    });
    for f in ["data/digits-train.csv", "data/digits-holdout.csv"] {
        let path = dir.path().join(f);
        let text = std::fs::read_to_string(&path).expect("read");
        let huge: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    format!("{l}\n")
                } else {
                    format!("{l}e30\n")
                }
            })
            .collect();
        std::fs::write(&path, huge).expect("write");
    }
    let out = train_in(dir.path(), &dir.path().join("reg"), &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("training diverged"), "{err}");
    assert!(err.contains("learning_rate"), "{err}");
}
