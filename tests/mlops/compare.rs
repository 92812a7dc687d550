//! `mlops holdout --compare production`: the candidate (served by `mlops serve`) and the version
//! production pins (served by the holdout process itself from the registry) scored on the same
//! rows of the same file, `promotion.no_regression` applied, and the paired test in the report.
//! A worse candidate (trained for fewer epochs) is stopped naming the metric and both values; an
//! equal one passes; a changed holdout file, a pin whose artifact the registry does not hold,
//! and a service that is not production's are refused.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::bin::{matches_schema, mlops};
use crate::server::Server;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The quickstart's manifest, copied with `no_regression` set to `allowance` for accuracy.
fn project(allowance: &str) -> tempfile::TempDir {
    crate::quickstart::copy(|original| {
        let text = original.replacen(
            "    accuracy: { absolute: 0.01 }\n",
            &format!("    accuracy: {allowance}\n"),
            1,
        );
        assert!(
            text.contains(&format!("  no_regression:\n    accuracy: {allowance}\n")),
            "the quickstart's no_regression moved"
        );
        text
    })
}

/// Copies the directory `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn card(registry: &Path, version: u64) -> Value {
    let bytes =
        std::fs::read(registry.join(format!("digits-mlp/{version}/card.json"))).expect("card");
    serde_json::from_slice(&bytes).expect("card JSON")
}

/// A production pin of `digits-mlp@VERSION` in `dir`, with the artifact digest `sha256`.
fn pin(dir: &Path, registry: &Path, version: u64, sha256: &str) -> PathBuf {
    let mut pin = crate::quickstart::pin(registry, version, None);
    pin.model.artifact.sha256 = sha256.to_owned();
    let path = dir.join(format!("production-{version}.yaml"));
    std::fs::write(&path, pin.to_yaml("production")).expect("pin");
    path
}

fn artifact_of(registry: &Path, version: u64) -> String {
    card(registry, version)["artifact"]["sha256"]
        .as_str()
        .expect("artifact digest")
        .to_owned()
}

/// `mlops holdout --compare production` of `model` through `candidate`.
fn compare(
    manifest: &Path,
    registry: &Path,
    model: &str,
    candidate: &Server,
    production_pin: &Path,
    extra: &[&str],
) -> Output {
    // A test that wants another format than JSON gives `--format F` first.
    let (format, extra) = match extra {
        ["--format", f, rest @ ..] => (*f, rest),
        _ => ("json", extra),
    };
    let mut c = mlops();
    c.args([
        "holdout",
        "--format",
        format,
        "--model",
        model,
        "--manifest",
    ])
    .arg(manifest)
    .arg("--registry")
    .arg(registry)
    .args(["--endpoint", &candidate.url()])
    .args(["--compare", "production", "--production-pin"])
    .arg(production_pin)
    .args(extra);
    c.output().expect("runs")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a report ({e}): {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

fn serve(registry: &Path, model: &str) -> Server {
    let reg = registry.to_string_lossy().into_owned();
    Server::start(
        mlops(),
        &["--model", model, "--registry", reg.as_str(), "--quiet"],
    )
}

#[test]
fn a_worse_candidate_is_stopped_by_no_regression() {
    // Production pins @1 (30 epochs); the candidate @3 trained for 2 epochs, in a copy of the
    // shared registry.
    let registry = tempfile::tempdir().expect("tempdir");
    copy_tree(crate::quickstart::shared(), registry.path());
    let worse = crate::quickstart::copy(|original| {
        let text = original
            .replacen("  epochs: 30\n", "  epochs: 2\n", 1)
            .replacen("accuracy: { min: 0.95 }", "accuracy: { min: 0.1 }", 1);
        assert_ne!(text, original, "the quickstart's training section moved");
        text
    });
    let mut train = mlops();
    train
        .args(["train", "--format", "json", "--manifest"])
        .arg(worse.path().join("mlops.yaml"))
        .arg("--registry")
        .arg(registry.path());
    crate::bin::succeeds(train);
    let project = project("{ absolute: 0.01 }");
    let manifest = project.path().join("mlops.yaml");
    let production = pin(
        project.path(),
        registry.path(),
        1,
        &artifact_of(registry.path(), 1),
    );
    let candidate = serve(registry.path(), "digits-mlp@3");

    let out = compare(
        &manifest,
        registry.path(),
        "digits-mlp@3",
        &candidate,
        &production,
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = report(&out);
    matches_schema("holdout-report", &r);
    // The candidate's own test passes: it is served faithfully, it is only worse.
    assert_eq!(r["parity"]["mismatches"], 0, "{r}");
    assert!(r["metrics"][0]["pass"].as_bool().expect("pass"), "{r}");
    assert_eq!(r["passed"], false);
    let c = &r["comparison"];
    assert_eq!(c["incumbent"], "digits-mlp@1");
    assert_eq!(
        c["incumbent_artifact_sha256"].as_str(),
        Some(artifact_of(registry.path(), 1).as_str())
    );
    assert_eq!(c["rows"], 297);
    assert_eq!(c["passed"], false);
    let accuracy = &c["metrics"][0];
    assert_eq!(accuracy["metric"], "accuracy");
    assert_eq!(accuracy["pass"], false);
    // The incumbent, served by the holdout process, scores what training recorded for it; the
    // candidate what the service under test scored.
    let recorded = card(registry.path(), 1)["metrics"]["holdout"]["accuracy"].clone();
    assert_eq!(accuracy["incumbent"], recorded, "{c}");
    assert_eq!(accuracy["candidate"], r["metrics"][0]["observed"], "{r}");
    let (ours, theirs) = (
        accuracy["candidate"].as_f64().expect("candidate"),
        accuracy["incumbent"].as_f64().expect("incumbent"),
    );
    assert!(theirs - ours > 0.01, "not worse enough to test: {c}");
    let test = &c["test"];
    assert_eq!(test["method"], "mcnemar-exact");
    let (b, cc) = (
        test["candidate_only"].as_u64().expect("b"),
        test["incumbent_only"].as_u64().expect("c"),
    );
    // The discordant rows account for the whole difference in accuracy.
    assert!(
        ((cc as f64 - b as f64) / 297.0 - (theirs - ours)).abs() < 1e-12,
        "{test} vs {accuracy}"
    );
    let p = test["p_value"].as_f64().expect("p");
    assert!((0.0..=1.0).contains(&p), "{test}");
    assert_eq!(test["significant"], p < 0.05);

    // Shown to a person: the rule, the metric and both values.
    let out = compare(
        &manifest,
        registry.path(),
        "digits-mlp@3",
        &candidate,
        &production,
        &["--format", "human"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!(
            "FAIL no-regression: accuracy is {ours:.6} for the candidate against {theirs:.6} for \
             digits-mlp@1 in production"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("(promotion.no_regression.accuracy)"),
        "{shown}"
    );
}

#[test]
fn an_equal_candidate_passes_and_a_changed_file_is_refused() {
    // The shared registry's @1 and @2 are the same training, byte for byte.
    let registry = crate::quickstart::shared();
    let project = project("{ absolute: 0.0 }");
    let manifest = project.path().join("mlops.yaml");
    let artifact = artifact_of(registry, 1);
    let production = pin(project.path(), registry, 1, &artifact);
    let candidate = serve(registry, "digits-mlp@2");

    let out = compare(
        &manifest,
        registry,
        "digits-mlp@2",
        &candidate,
        &production,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["passed"], true);
    let c = &r["comparison"];
    assert_eq!(c["passed"], true, "{c}");
    assert_eq!(c["metrics"][0]["delta"], 0.0, "{c}");
    assert_eq!(c["metrics"][0]["allowance"], "0");
    // f1_macro is a holdout metric without an allowance: shown, not checked.
    assert_eq!(c["metrics"][1]["metric"], "f1_macro");
    assert_eq!(c["metrics"][1]["allowed"], Value::Null);
    assert_eq!(c["test"]["candidate_only"], 0);
    assert_eq!(c["test"]["incumbent_only"], 0);
    assert_eq!(c["test"]["p_value"], 1.0);
    assert_eq!(c["test"]["significant"], false);
    assert_eq!(
        c["incumbent_endpoint"]
            .as_str()
            .map(|e| e.starts_with("http://127.0.0.1:")),
        Some(true),
        "{c}"
    );

    // A holdout file with one row fewer is not the file production's version was tested on.
    let changed = project.path().join("data/changed.csv");
    let original =
        std::fs::read_to_string(project.path().join("data/digits-holdout.csv")).expect("csv");
    let mut lines: Vec<&str> = original.lines().collect();
    lines.pop();
    std::fs::write(&changed, lines.join("\n") + "\n").expect("write");
    let changed_arg = changed.to_string_lossy().into_owned();
    let out = compare(
        &manifest,
        registry,
        "digits-mlp@2",
        &candidate,
        &production,
        &["--holdout", &changed_arg],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "no report: {}", text(&out.stdout));
    let said = text(&out.stderr);
    assert!(
        said.contains("is not the holdout file production's digits-mlp@1 was tested on")
            && said.contains("--compare-other-file"),
        "{said}"
    );
    // Asked for explicitly, both are scored on it, and the report says so.
    let out = compare(
        &manifest,
        registry,
        "digits-mlp@2",
        &candidate,
        &production,
        &["--holdout", &changed_arg, "--compare-other-file"],
    );
    let r = report(&out);
    assert_eq!(r["comparison"]["rows"], 296, "{r}");
    assert!(
        r["warnings"].as_array().expect("warnings").iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("--compare-other-file"))),
        "{r}"
    );

    // A pin whose artifact the registry does not hold for that version is refused.
    let forged = pin(project.path(), registry, 2, &"0".repeat(64));
    let out = compare(
        &manifest,
        registry,
        "digits-mlp@2",
        &candidate,
        &forged,
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("production's pin names digits-mlp@2 with artifact SHA-256 0000"),
        "{}",
        text(&out.stderr)
    );
    // A service named as production's must serve the pin: the candidate's own service (which
    // reports @2) under a pin of @1 is refused.
    let out = compare(
        &manifest,
        registry,
        "digits-mlp@2",
        &candidate,
        &production,
        &["--incumbent-endpoint", &candidate.url()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not production's pin digits-mlp@1"),
        "{}",
        text(&out.stderr)
    );

    // Production pins nothing yet: nothing to compare with, said, and the test is the usual one.
    let none = project.path().join("no-pin-yet.yaml");
    let out = compare(&manifest, registry, "digits-mlp@2", &candidate, &none, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["comparison"], Value::Null);
    assert!(
        text(&out.stderr).contains("production pins no model yet"),
        "{}",
        text(&out.stderr)
    );
}
