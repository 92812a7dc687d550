//! `mlops deploy` on URL targets, against `mlops serve` on loopback: staging writes its pin and
//! waits for the service to report it (also when it flips late, and naming what it saw when it
//! never does); production deploys exactly its pin file and refuses an unapproved model or an
//! artifact that is not the pinned one; `--check` reports drift.
//!
//! On SageMaker targets, against moto (models, endpoint configurations and endpoints, InService at
//! once) and the botocore-validated SageMaker fake (Creating and Updating sequences, a rolled-back
//! update, a failed creation, an interruption), with the registry in moto's S3.

use crate::bin;
use crate::fake_sagemaker;
use crate::moto;
use crate::server;
use crate::terraform;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::{Duration, Instant};

use bin::{mlops, root, succeeds};
use server::Server;

use crate::quickstart::{MANIFEST, shared as shared_registry, trained};

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
    let pin = promoted(registry, &staging_pin(registry, "digits-mlp@1", dir.path()));
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

/// Production takes a version only with the passing holdout test its pin names, as the registry
/// recorded it: a pin without one, naming a report the registry does not hold, naming a failed
/// test, or a report of another version, is refused before anything moves (exit 1).
#[test]
fn production_takes_only_the_passing_holdout_the_registry_recorded() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = staging_pin(registry, "digits-mlp@1", dir.path());
    let s = serve(registry, "digits-mlp@1", None);
    let production = |pin: &Path| {
        deploy(
            registry,
            &["--env", "production", "--endpoint", &s.url(), "--pin"],
        )
        .arg(pin)
        .output()
        .expect("runs")
    };
    let reg = mlops_registry::Registry::open(registry);
    let naming = |digest: &str| {
        let text = std::fs::read_to_string(&staging).expect("pin");
        let mut pin = mlops_github::pin::Pin::parse(&text).expect("pin");
        pin.holdout = Some(mlops_github::pin::PinnedHoldout {
            passed: true,
            report_sha256: digest.to_owned(),
            compared_with: None,
        });
        let path = dir.path().join(format!("{digest}.yaml"));
        std::fs::write(&path, pin.to_yaml("production")).expect("pin");
        path
    };
    let failed = crate::quickstart::holdout_report("digits-mlp@1", "http://127.0.0.1:8080", false);
    let (failed_digest, _) = reg
        .record_holdout("digits-mlp", 1, &failed)
        .expect("records");
    let (other, _) = passing_report("digits-mlp@2");
    let (other_digest, _) = reg
        .record_holdout("digits-mlp", 1, &other)
        .expect("records");
    for (pin, says) in [
        (
            staging.clone(),
            "the pin of digits-mlp@1 names no holdout test",
        ),
        (
            naming(&"0".repeat(64)),
            "the registry holds no holdout report sha256:0000",
        ),
        (
            naming(&failed_digest),
            "holdout test of digits-mlp@1 did not pass",
        ),
        (
            naming(&other_digest),
            "tested digits-mlp@2, not digits-mlp@1",
        ),
    ] {
        let out = production(&pin);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains(says) && said.contains("aborting before any traffic moves"),
            "{says}: {said}"
        );
        assert!(!said.contains("production serves"), "{said}");
    }
    let out = production(&promoted(registry, &staging));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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

const BUCKET: &str = "digits-deploy";
const ROLE: &str = "arn:aws:iam::123456789012:role/digits-sagemaker-execution";

fn image() -> String {
    format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits@sha256:{}",
        "ab".repeat(32)
    )
}

/// moto with a bucket, and a copy of the quickstart whose environments are SageMaker endpoints
/// (staging serverless, production on two instances with a rollback alarm) and whose registry is
/// in that bucket, with the model trained `versions` times.
fn sagemaker_world(versions: u32) -> Option<(moto::Moto, tempfile::TempDir)> {
    let moto = moto::Moto::start()?;
    let (status, answer) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "{answer}");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("examples/quickstart");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    for f in ["digits-train.csv", "digits-holdout.csv"] {
        std::fs::copy(src.join("data").join(f), dir.path().join("data").join(f)).expect("copy");
    }
    let yaml = std::fs::read_to_string(src.join("mlops.yaml")).expect("manifest");
    let environments = "environments:\n  staging:\n    url: http://127.0.0.1:8080\n    pin_file: deploy/staging.yaml\n  production:\n    url: https://digits.example.com\n    pin_file: deploy/production.yaml\n";
    assert!(yaml.contains(environments));
    let yaml = yaml
        .replace(
            environments,
            "environments:\n  staging:\n    sagemaker:\n      endpoint_name: digits-staging\n      serverless:\n        memory_mb: 2048\n        max_concurrency: 5\n  production:\n    sagemaker:\n      endpoint_name: digits-production\n      instance_type: ml.m5.large\n      instance_count: 2\n      rollback_alarms: [digits-5xx]\n",
        )
        .replace(
            "  path: .mlops/registry\n",
            &format!("  path: s3://{BUCKET}/registry\n"),
        );
    std::fs::write(dir.path().join("mlops.yaml"), yaml).expect("write");
    for _ in 0..versions {
        let mut c = mlops();
        c.args(["train", "--format", "json", "--manifest"])
            .arg(dir.path().join("mlops.yaml"));
        moto.env(&mut c);
        succeeds(c);
    }
    Some((moto, dir))
}

/// `mlops deploy ARGS` in the SageMaker world, with SageMaker at `sagemaker` (moto's own
/// endpoint, or the fake's).
fn deploy_sm(moto: &moto::Moto, dir: &Path, sagemaker: &str, args: &[&str]) -> Command {
    let mut c = mlops();
    c.arg("deploy")
        .arg("--manifest")
        .arg(dir.join("mlops.yaml"))
        .args(["--role-arn", ROLE, "--poll-seconds", "0.05"])
        .args(args);
    moto.env(&mut c);
    c.env("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker);
    c
}

/// `mlops deploy --env staging --model digits-mlp@1 --image IMAGE` in the SageMaker world, with
/// SageMaker at `sagemaker`.
fn deploy_staging(moto: &moto::Moto, dir: &Path, sagemaker: &str, image: &str) -> Command {
    deploy_sm(
        moto,
        dir,
        sagemaker,
        &[
            "--env",
            "staging",
            "--model",
            "digits-mlp@1",
            "--image",
            image,
        ],
    )
}

/// A model card, read from moto's S3.
fn s3_card(moto: &moto::Moto, version: u64) -> serde_json::Value {
    let (status, text) = moto.http(
        "GET",
        &format!("/{BUCKET}/registry/digits-mlp/{version}/card.json"),
        b"",
    );
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(text.split_once("\r\n\r\n").map_or(&text, |(_, b)| b)).expect("card")
}

/// A passing holdout report of `reference` and its digest.
fn passing_report(reference: &str) -> (Vec<u8>, String) {
    let bytes = crate::quickstart::holdout_report(reference, "http://127.0.0.1:8080", true);
    let digest = mlops_registry::report_digest(&bytes);
    (bytes, digest)
}

/// `pin` (a file naming a version of the local `registry`) as a merged promotion leaves it: it
/// names a passing holdout test, whose report the registry records as `mlops holdout` does.
fn promoted(registry: &Path, pin: &Path) -> PathBuf {
    let text = std::fs::read_to_string(pin).expect("pin");
    let mut parsed = mlops_github::pin::Pin::parse(&text).expect("a valid pin");
    let (report, digest) = passing_report(&parsed.reference());
    let (recorded, _) = mlops_registry::Registry::open(registry)
        .record_holdout(&parsed.model.name, parsed.model.version, &report)
        .expect("records");
    assert_eq!(recorded, digest);
    parsed.holdout = Some(mlops_github::pin::PinnedHoldout {
        passed: true,
        report_sha256: digest,
        compared_with: None,
    });
    let out = pin.with_extension("promoted.yaml");
    std::fs::write(&out, parsed.to_yaml("production")).expect("pin");
    out
}

/// Production's pin file for `version` (what a merged promotion pull request leaves), naming a
/// passing holdout report recorded for it.
fn production_pin(moto: &moto::Moto, dir: &Path, version: u64) -> PathBuf {
    let card = s3_card(moto, version);
    let pin = mlops_github::pin::Pin {
        version: 1,
        model: mlops_github::pin::PinnedModel {
            name: "digits-mlp".into(),
            version,
            registry: format!("s3://{BUCKET}/registry"),
            artifact: mlops_github::pin::Artifact {
                uri: format!("s3://{BUCKET}/registry/digits-mlp/{version}"),
                sha256: card["artifact"]["sha256"].as_str().expect("sha").to_owned(),
            },
            image: Some(image()),
        },
        manifest_sha256: card["manifest"]["sha256"].as_str().expect("sha").to_owned(),
        holdout: None,
    };
    // The holdout job recorded a passing report beside the version (as `mlops holdout` does).
    let (report, digest) = passing_report(&pin.reference());
    moto.put(
        BUCKET,
        &format!("registry/digits-mlp/{version}/holdout/{digest}.json"),
        &report,
    );
    let pin = mlops_github::pin::Pin {
        holdout: Some(mlops_github::pin::PinnedHoldout {
            passed: true,
            report_sha256: digest,
            compared_with: None,
        }),
        ..pin
    };
    let path = dir.join(format!("production-{version}.yaml"));
    std::fs::write(&path, pin.to_yaml("production")).expect("pin");
    path
}

fn sm_json(moto: &moto::Moto, op: &str, body: &str) -> serde_json::Value {
    let (status, answer) = moto.json("sagemaker", &format!("SageMaker.{op}"), body);
    assert_eq!(status, 200, "{op}: {answer}");
    answer
}

/// The configuration `endpoint` runs, as moto describes it.
fn endpoint_config(moto: &moto::Moto, endpoint: &str) -> serde_json::Value {
    let described = sm_json(
        moto,
        "DescribeEndpoint",
        &format!(r#"{{"EndpointName":"{endpoint}"}}"#),
    );
    sm_json(
        moto,
        "DescribeEndpointConfig",
        &format!(
            r#"{{"EndpointConfigName":"{}"}}"#,
            described["EndpointConfigName"].as_str().expect("config")
        ),
    )
}

/// Against moto: the model (image by digest, the registry's files by prefix, the artifact digest
/// the container must find), its configuration and the endpoint are created; deploying it again
/// changes nothing; `--check` agrees, and finds drift for another version; `--teardown` deletes
/// the staging endpoint (and refuses production's).
#[test]
fn sagemaker_staging_is_created_and_a_redeploy_is_a_no_op() {
    let Some((moto, dir)) = sagemaker_world(2) else {
        return;
    };
    let img = image();
    let staging = |model: &str, extra: &[&str]| {
        let mut args = vec!["--env", "staging", "--model", model, "--image", &img];
        args.extend_from_slice(extra);
        deploy_sm(&moto, dir.path(), &moto.endpoint(), &args)
            .output()
            .expect("runs")
    };
    let out = staging("digits-mlp@1", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("staging endpoint digits-staging serves digits-mlp@1"));
    let endpoint = sm_json(
        &moto,
        "DescribeEndpoint",
        r#"{"EndpointName":"digits-staging"}"#,
    );
    assert_eq!(endpoint["EndpointStatus"], "InService");
    let config = endpoint["EndpointConfigName"].as_str().expect("config");
    assert!(config.starts_with("digits-staging-v1-"), "{config}");
    let described = sm_json(
        &moto,
        "DescribeEndpointConfig",
        &format!(r#"{{"EndpointConfigName":"{config}"}}"#),
    );
    let variant = &described["ProductionVariants"][0];
    assert_eq!(variant["ServerlessConfig"]["MemorySizeInMB"], 2048);
    let model = sm_json(
        &moto,
        "DescribeModel",
        &format!(
            r#"{{"ModelName":"{}"}}"#,
            variant["ModelName"].as_str().expect("model")
        ),
    );
    let container = &model["PrimaryContainer"];
    assert_eq!(container["Image"], img.as_str());
    assert_eq!(
        container["ModelDataSource"]["S3DataSource"]["S3Uri"],
        format!("s3://{BUCKET}/registry/digits-mlp/1/")
    );
    assert_eq!(
        container["Environment"]["MLOPS_ARTIFACT_SHA256"],
        s3_card(&moto, 1)["artifact"]["sha256"]
    );
    assert_eq!(model["ExecutionRoleArn"], ROLE);

    let out = staging("digits-mlp@1", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
    let out = staging("digits-mlp@1", &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = staging("digits-mlp@2", &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("pinned:  digits-mlp@2"),
        "{}",
        text(&out)
    );

    // Teardown removes the staging endpoint, once; production's is never torn down.
    let teardown = |env: &str| {
        deploy_sm(
            &moto,
            dir.path(),
            &moto.endpoint(),
            &["--env", env, "--teardown"],
        )
        .output()
        .expect("runs")
    };
    let out = teardown("staging");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("deleted the endpoint digits-staging"));
    let (status, _) = moto.json(
        "sagemaker",
        "SageMaker.DescribeEndpoint",
        r#"{"EndpointName":"digits-staging"}"#,
    );
    assert_eq!(status, 400, "the endpoint is gone");
    let out = teardown("staging");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to tear down"));
    let out = teardown("production");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Against the fake: creation waits through Creating, an update through Updating (production's
/// with a canary and its rollback alarm, checked against botocore's model of UpdateEndpoint),
/// each ending InService on the new configuration.
#[test]
fn sagemaker_deploys_wait_for_creating_and_updating() {
    let Some((moto, dir)) = sagemaker_world(2) else {
        return;
    };
    let Some(fake) = fake_sagemaker::Fake::start("endpoint") else {
        return;
    };
    let one = production_pin(&moto, dir.path(), 1);
    let two = production_pin(&moto, dir.path(), 2);
    for (pin, verb) in [(&one, "creating"), (&two, "updating")] {
        let out = deploy_sm(
            &moto,
            dir.path(),
            &fake.endpoint(),
            &["--env", "production", "--pin"],
        )
        .arg(pin)
        .output()
        .expect("runs");
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!("{verb} digits-production")),
            "{said}"
        );
        let passing = if verb == "creating" {
            "Creating"
        } else {
            "Updating"
        };
        assert!(
            said.contains(&format!("endpoint digits-production: {passing}")),
            "{said}"
        );
        assert!(
            said.contains("endpoint digits-production: InService"),
            "{said}"
        );
    }
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(
        (count("CreateModel"), count("CreateEndpointConfig")),
        (2, 2)
    );
    assert_eq!((count("CreateEndpoint"), count("UpdateEndpoint")), (1, 1));
}

/// A production pin edited to point elsewhere than its registry version, or to serve an image
/// by tag, is refused before anything is created (exit 1): the approval was for the pin as
/// promote wrote it, with the registry's location and an image by digest.
#[test]
fn production_refuses_a_pin_that_moved_its_artifact_or_image() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let pin = production_pin(&moto, dir.path(), 1);
    let original = std::fs::read_to_string(&pin).expect("pin");
    let uri = format!("s3://{BUCKET}/registry/digits-mlp/1");
    assert!(original.contains(&uri), "{original}");
    for (edit, says) in [
        (
            original.replace(&uri, &format!("s3://{BUCKET}/elsewhere/digits-mlp/1")),
            "the registry keeps it at",
        ),
        (
            original.replace(
                &image(),
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits:latest",
            ),
            "is not named by digest",
        ),
    ] {
        assert_ne!(edit, original);
        let edited = dir.path().join("edited.yaml");
        std::fs::write(&edited, edit).expect("write");
        let out = deploy_sm(
            &moto,
            dir.path(),
            &moto.endpoint(),
            &["--env", "production", "--pin"],
        )
        .arg(&edited)
        .output()
        .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
        let (status, _) = moto.json(
            "sagemaker",
            "SageMaker.DescribeEndpoint",
            r#"{"EndpointName":"digits-production"}"#,
        );
        assert_eq!(status, 400, "nothing was created");
    }
}

/// Environments that serve with images of their own (`environments.ENV.sagemaker.image`):
/// staging's endpoint runs that image without `--image` (another `--image` is exit 2 naming
/// both); production's pin naming the model image is refused before
/// anything is created, and a pin naming none is deployed with production's own image.
#[test]
fn an_environments_own_serving_image_is_what_its_endpoint_runs() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let own = |repo: &str| {
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}@sha256:{}",
            "cd".repeat(32)
        )
    };
    let (staging_image, production_image) = (own("acme/serving"), own("acme/serving-prod"));
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    let edited = yaml
        .replace(
            "      endpoint_name: digits-staging\n",
            &format!("      endpoint_name: digits-staging\n      image: {staging_image}\n"),
        )
        .replace(
            "      endpoint_name: digits-production\n",
            &format!("      endpoint_name: digits-production\n      image: {production_image}\n"),
        );
    assert!(edited.contains(&staging_image) && edited.contains(&production_image));
    std::fs::write(&manifest, edited).expect("write");
    let served_image = |endpoint: &str| {
        let config = endpoint_config(&moto, endpoint);
        let model = sm_json(
            &moto,
            "DescribeModel",
            &format!(
                r#"{{"ModelName":"{}"}}"#,
                config["ProductionVariants"][0]["ModelName"]
                    .as_str()
                    .expect("model")
            ),
        );
        model["PrimaryContainer"]["Image"]
            .as_str()
            .expect("image")
            .to_owned()
    };

    let out = deploy_staging(&moto, dir.path(), &moto.endpoint(), &image())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("--image {}", image())) && text(&out).contains(&staging_image),
        "{}",
        text(&out)
    );
    let out = deploy_sm(
        &moto,
        dir.path(),
        &moto.endpoint(),
        &["--env", "staging", "--model", "digits-mlp@1"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(served_image("digits-staging"), staging_image);

    // Production: a pin naming the model image is refused; one naming none takes production's.
    let pin = production_pin(&moto, dir.path(), 1);
    let out = deploy_sm(
        &moto,
        dir.path(),
        &moto.endpoint(),
        &["--env", "production", "--pin"],
    )
    .arg(&pin)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("serves with its own") && text(&out).contains(&production_image),
        "{}",
        text(&out)
    );
    let (status, _) = moto.json(
        "sagemaker",
        "SageMaker.DescribeEndpoint",
        r#"{"EndpointName":"digits-production"}"#,
    );
    assert_eq!(status, 400, "nothing was created");
    let without = std::fs::read_to_string(&pin)
        .expect("pin")
        .lines()
        .filter(|l| !l.trim_start().starts_with("image:"))
        .collect::<Vec<_>>()
        .join("\n");
    let bare = dir.path().join("bare.yaml");
    std::fs::write(&bare, without + "\n").expect("write");
    let out = deploy_sm(
        &moto,
        dir.path(),
        &moto.endpoint(),
        &["--env", "production", "--pin"],
    )
    .arg(&bare)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(served_image("digits-production"), production_image);
}

/// A rolled-back update names SageMaker's reason and what still serves (exit 1); a creation that
/// fails is exit 3 with the reason.
#[test]
fn sagemaker_failures_name_the_reason_and_what_serves() {
    let Some((moto, dir)) = sagemaker_world(2) else {
        return;
    };
    let Some(fake) = fake_sagemaker::Fake::start("endpoint-fail") else {
        return;
    };
    let img = image();
    let staging = |model: &str| {
        deploy_sm(
            &moto,
            dir.path(),
            &fake.endpoint(),
            &["--env", "staging", "--model", model, "--image", &img],
        )
        .output()
        .expect("runs")
    };
    let out = staging("digits-mlp@1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = staging("digits-mlp@2");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("did not pass the ping health check")
            && said.contains("the endpoint still serves digits-staging-v1-"),
        "{said}"
    );
    drop(fake);
    let Some(broken) = fake_sagemaker::Fake::start("endpoint-broken") else {
        return;
    };
    let out = deploy_staging(&moto, dir.path(), &broken.endpoint(), &img)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("digits-staging is Failed: The primary container"),
        "{}",
        text(&out)
    );
}

/// SIGTERM while SageMaker creates the endpoint: the wait stops (130) and says what the endpoint
/// is doing; SageMaker finishes or rolls back by itself.
#[test]
fn sigterm_mid_deploy_says_what_the_endpoint_serves() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let Some(fake) = fake_sagemaker::Fake::start("endpoint-hold") else {
        return;
    };
    let img = image();
    let child = deploy_staging(&moto, dir.path(), &fake.endpoint(), &img)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    fake.wait_for_calls("DescribeEndpoint", 3);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        text(&out).contains("SIGTERM: stopped waiting; the endpoint digits-staging is Creating"),
        "{}",
        text(&out)
    );
}

/// git in `dir` with a test identity.
fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

/// A git repository whose `pins/ENV.yaml` was committed once per pin in `pins`, in order.
fn pin_history(pins: &[&Path]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q"]);
    std::fs::create_dir_all(repo.path().join("pins")).expect("mkdir");
    for (i, pin) in pins.iter().enumerate() {
        std::fs::copy(pin, repo.path().join("pins/current.yaml")).expect("copy");
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-qm", &format!("pin {i}")]);
    }
    repo
}

/// Staging rolls back directly: the pin before the current one in the pin file's history is
/// written back and verified on the service; with no earlier pin, there is nothing to roll back.
#[test]
fn staging_rolls_back_to_the_pin_before() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let one = staging_pin(registry, "digits-mlp@1", dir.path());
    let two = staging_pin(registry, "digits-mlp@2", dir.path());
    let repo = pin_history(&[&one, &two]);
    let pin = repo.path().join("pins/current.yaml");
    let s = serve(registry, "digits-mlp@1", None);
    let out = deploy(
        registry,
        &[
            "--env",
            "staging",
            "--rollback",
            "--reason",
            "a bad batch",
            "--endpoint",
            &s.url(),
            "--pin",
        ],
    )
    .arg(&pin)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("rollback of staging: digits-mlp@2 -> digits-mlp@1 (a bad batch)"),
        "{said}"
    );
    assert!(said.contains("staging serves digits-mlp@1"), "{said}");
    let written = std::fs::read_to_string(&pin).expect("pin");
    assert!(written.contains("version: 1"), "{written}");

    let first = pin_history(&[&one]);
    let out = deploy(
        registry,
        &[
            "--env",
            "staging",
            "--rollback",
            "--endpoint",
            &s.url(),
            "--pin",
        ],
    )
    .arg(first.path().join("pins/current.yaml"))
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("there is no staging pin before commit"),
        "{}",
        text(&out)
    );
}

/// Break glass needs a reason, and is refused for a URL target (its GitOps tool deploys from git).
#[test]
fn break_glass_needs_a_reason_and_a_sagemaker_target() {
    let registry = shared_registry();
    let dir = tempfile::tempdir().expect("tempdir");
    let one = staging_pin(registry, "digits-mlp@1", dir.path());
    let two = staging_pin(registry, "digits-mlp@2", dir.path());
    let repo = pin_history(&[&one, &two]);
    let pin = repo
        .path()
        .join("pins/current.yaml")
        .to_string_lossy()
        .into_owned();
    let out = deploy(
        registry,
        &[
            "--env",
            "production",
            "--rollback",
            "--break-glass",
            "--pin",
            &pin,
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--reason"), "{}", text(&out));
    let out = deploy(
        registry,
        &[
            "--env",
            "production",
            "--rollback",
            "--break-glass",
            "--reason",
            "outage",
            "--pin",
            &pin,
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("production here is a URL target"),
        "{}",
        text(&out)
    );
}

/// Break glass on a SageMaker production endpoint: the previous pin is deployed at once, and the
/// endpoint is tagged with who did it and why.
#[test]
fn break_glass_redeploys_the_previous_pin_at_once_and_tags_who_and_why() {
    let Some((moto, dir)) = sagemaker_world(2) else {
        return;
    };
    let Some(fake) = fake_sagemaker::Fake::start("endpoint") else {
        return;
    };
    let one = production_pin(&moto, dir.path(), 1);
    let two = production_pin(&moto, dir.path(), 2);
    let repo = pin_history(&[&one, &two]);
    let pin = repo
        .path()
        .join("pins/current.yaml")
        .to_string_lossy()
        .into_owned();
    // Production serves @2, as its pin says.
    let out = deploy_sm(
        &moto,
        dir.path(),
        &fake.endpoint(),
        &["--env", "production", "--pin", &pin],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = deploy_sm(
        &moto,
        dir.path(),
        &fake.endpoint(),
        &[
            "--env",
            "production",
            "--rollback",
            "--break-glass",
            "--reason",
            "p99 doubled",
            "--pin",
            &pin,
        ],
    )
    .env("GITHUB_ACTOR", "oncall-alice")
    .output()
    .expect("runs");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("BREAK GLASS: oncall-alice deploys digits-mlp@1 to production now"),
        "{said}"
    );
    assert!(
        said.contains("production endpoint digits-production serves digits-mlp@1"),
        "{said}"
    );
    assert!(
        said.contains("its pin file still names digits-mlp@2"),
        "{said}"
    );
    let tags = fake.tags();
    let endpoint = &tags["arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-production"];
    assert_eq!(endpoint["mlops:break-glass-by"], "oncall-alice");
    assert_eq!(endpoint["mlops:break-glass-reason"], "p99 doubled");
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(
        calls.iter().filter(|c| *c == "UpdateEndpoint").count(),
        1,
        "{calls:?}"
    );
}

/// `--commit-pin`: the staging pin is committed to the promotion repository's branch
/// `mlops/staging`, created from the base branch, which stays untouched (the fake GitHub,
/// checked against GitHub's OpenAPI description), with no author (GitHub signs it), once: a
/// second deploy of the same version commits nothing.
#[test]
fn staging_commits_its_pin_where_the_gitops_tool_reads_it() {
    const REPO: &str = "mlops-rs/digits-example";
    const TOKEN: &str = "ghs_stagingPinToken7";
    let registry = shared_registry();
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(TOKEN, github_fake::Token::App("mlops-app".into()));
    fake.repo(REPO, "main", &[("README.md", "# digits\n")]);
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::copy(root().join(MANIFEST), project.path().join("mlops.yaml")).expect("manifest");
    let s = serve(registry, "digits-mlp@1", None);
    let deploy = |model: &str, endpoint: &str| {
        let mut c = mlops();
        c.args([
            "deploy",
            "--env",
            "staging",
            "--model",
            model,
            "--commit-pin",
        ])
        .args(["--endpoint", endpoint, "--manifest"])
        .arg(project.path().join("mlops.yaml"))
        .arg("--registry")
        .arg(registry)
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", TOKEN);
        c.output().expect("runs")
    };
    let run = || deploy("digits-mlp@1", &s.url());
    let out = run();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("committed deploy/staging.yaml to mlops-rs/digits-example:mlops/staging"),
        "{said}"
    );
    assert!(!said.contains(TOKEN), "the token leaked");
    let local = std::fs::read_to_string(project.path().join("deploy/staging.yaml")).expect("pin");
    assert_eq!(
        fake.file(REPO, "mlops/staging", "deploy/staging.yaml")
            .as_deref(),
        Some(local.as_str())
    );
    // The base branch, production's, is untouched.
    let repo = fake.snapshot(REPO).expect("repo");
    assert_eq!(fake.file(REPO, "main", "deploy/staging.yaml"), None);
    let base = &repo.refs["heads/main"];
    assert_eq!(repo.commits[base].parents.len(), 0, "main moved");
    let head = &repo.refs["heads/mlops/staging"];
    let commit = &repo.commits[head];
    assert!(commit.verified, "{commit:?}");
    assert!(
        commit.message.starts_with("Deploy digits-mlp@1 to staging"),
        "{commit:?}"
    );

    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("already pins digits-mlp@1"),
        "{}",
        text(&out)
    );
    assert_eq!(
        &fake.snapshot(REPO).expect("repo").refs["heads/mlops/staging"],
        head
    );
    // A later version is committed on top: a fast-forward of the staging branch.
    let s2 = serve(registry, "digits-mlp@2", None);
    let out = deploy("digits-mlp@2", &s2.url());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let repo = fake.snapshot(REPO).expect("repo");
    let newer = &repo.refs["heads/mlops/staging"];
    assert_eq!(repo.commits[newer].parents, std::slice::from_ref(head));
    assert_eq!(fake.file(REPO, "main", "deploy/staging.yaml"), None);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The text between `<tag>` and `</tag>` in moto's XML answer.
fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    xml.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
        .map_or("", |(text, _)| text)
}

/// Whether any of `role`'s policies has an Allow statement whose actions match `action`.
fn allows(role: &terraform::Role, action: &str) -> bool {
    let matches = |pattern: &str| {
        pattern == action
            || pattern
                .strip_suffix('*')
                .is_some_and(|stem| action.starts_with(stem))
    };
    role.policies.iter().any(|(_, policy)| {
        policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|st| {
                st["Effect"] == "Allow"
                    && match &st["Action"] {
                        serde_json::Value::String(a) => matches(a),
                        serde_json::Value::Array(list) => {
                            list.iter().filter_map(|a| a.as_str()).any(matches)
                        }
                        _ => false,
                    }
            })
    })
}

/// Creates `role` in moto with its trust and inline policies, assumes it as a GitHub workflow
/// does (a web identity), and returns the temporary credentials: key, secret, session token.
fn assume(moto: &moto::Moto, role: &terraform::Role) -> [String; 3] {
    let trust = role.trust.to_string();
    let (status, xml) = moto.query(
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", &role.name),
            ("AssumeRolePolicyDocument", &trust),
        ],
    );
    assert_eq!(status, 200, "{xml}");
    for (name, policy) in &role.policies {
        let (status, xml) = moto.query(
            "iam",
            &[
                ("Action", "PutRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", &role.name),
                ("PolicyName", name),
                ("PolicyDocument", &policy.to_string()),
            ],
        );
        assert_eq!(status, 200, "{xml}");
    }
    let (status, xml) = moto.query(
        "sts",
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            (
                "RoleArn",
                &format!("arn:aws:iam::123456789012:role/{}", role.name),
            ),
            ("RoleSessionName", "github-actions"),
            ("WebIdentityToken", "a-github-oidc-token"),
        ],
    );
    assert_eq!(status, 200, "{xml}");
    ["AccessKeyId", "SecretAccessKey", "SessionToken"].map(|t| xml_text(&xml, t).to_owned())
}

/// The roles the rendered Terraform creates, loaded into moto with IAM enforcement on and used
/// as the workflows use them: staging and production deploy from the registry in S3 (whose
/// lookups list the bucket), and neither may write the registry. moto judges S3 by bucket and
/// key but SageMaker with the resource `*`, so the deploys send SageMaker's calls to a second
/// moto, and what only SageMaker could refuse is asked of the evaluated policies.
#[test]
fn the_rendered_roles_deploy_from_the_registry_and_do_nothing_else() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let Some(sagemaker) = moto::Moto::start() else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let (_, files) = with_terraform(&manifest, "");
    let roles = terraform::github_roles(&files, "123456789012");
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        ["production", "staging", "train"]
    );
    let creds: std::collections::BTreeMap<&str, [String; 3]> = roles
        .iter()
        .map(|(k, role)| (k.as_str(), assume(&moto, role)))
        .collect();
    // The staging service the holdout test goes through (started before enforcement, with
    // moto's own credentials: only the commands the workflows run are under test).
    let mut serve = mlops();
    moto.env(&mut serve);
    let registry = format!("s3://{BUCKET}/registry");
    let service = Server::start(
        serve,
        &[
            "--quiet",
            "--model",
            "digits-mlp@1",
            "--registry",
            &registry,
        ],
    );
    let pin = production_pin(&moto, dir.path(), 1);
    moto.enforce_iam();
    let as_role = |role: &str, mut c: Command| {
        let [key, secret, token] = &creds[role];
        c.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token);
        c.output().expect("runs")
    };
    // A sweep fanned out over the train workflow's jobs: each trial and the selection run with
    // the training role, which keeps the trials beside the versions and registers the best;
    // the production role may not keep a trial.
    let swept = dir.path().join("swept.yaml");
    let source = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&swept, crate::sweep::grid_of_four(source)).expect("write");
    let sweep = |args: &[&str]| {
        let mut c = mlops();
        c.args([
            "train",
            "--format",
            "json",
            "--sweep-id",
            "run-41",
            "--manifest",
        ])
        .arg(&swept)
        .args(args);
        moto.env(&mut c);
        c
    };
    let out = as_role("production", sweep(&["--sweep-trial", "1"]));
    assert_ne!(
        out.status.code(),
        Some(0),
        "production role: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("AccessDenied"),
        "production role: {}",
        text(&out)
    );
    for n in ["1", "2", "3", "4"] {
        let out = as_role("train", sweep(&["--sweep-trial", n]));
        assert_eq!(
            out.status.code(),
            Some(0),
            "train role, trial {n}: {}",
            text(&out)
        );
    }
    let out = as_role("train", sweep(&["--sweep-select"]));
    assert_eq!(out.status.code(), Some(0), "train role: {}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["model_version"], "digits-mlp@2", "{summary}");
    let img = image();
    let staging = || deploy_staging(&moto, dir.path(), &sagemaker.endpoint(), &img);
    let out = as_role("staging", staging());
    assert_eq!(out.status.code(), Some(0), "staging role: {}", text(&out));
    // The holdout test records its report in the registry with the staging role; the production
    // role may not record one.
    let holdout = || {
        let mut c = mlops();
        c.args(["holdout", "--format", "json", "--model", "digits-mlp@1"])
            .args(["--endpoint", &service.url(), "--manifest"])
            .arg(&manifest);
        moto.env(&mut c);
        c
    };
    let out = as_role("production", holdout());
    assert_eq!(
        out.status.code(),
        Some(3),
        "production role: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("cannot record the holdout report")
            && text(&out).contains("AccessDenied"),
        "production role: {}",
        text(&out)
    );
    let out = as_role("staging", holdout());
    assert_eq!(out.status.code(), Some(0), "staging role: {}", text(&out));
    // Production deploys the pin naming that report (read back with the production role).
    let digest = mlops_registry::report_digest(&out.stdout);
    let pinned = std::fs::read_to_string(&pin).expect("pin");
    let mut named = mlops_github::pin::Pin::parse(&pinned).expect("pin");
    assert_ne!(
        named.holdout.as_ref().map(|h| h.report_sha256.as_str()),
        Some(digest.as_str())
    );
    named.holdout = Some(mlops_github::pin::PinnedHoldout {
        passed: true,
        report_sha256: digest,
        compared_with: None,
    });
    std::fs::write(&pin, named.to_yaml("production")).expect("pin");
    let mut production = deploy_sm(
        &moto,
        dir.path(),
        &sagemaker.endpoint(),
        &["--env", "production", "--pin"],
    );
    production.arg(&pin);
    let out = as_role("production", production);
    assert_eq!(
        out.status.code(),
        Some(0),
        "production role: {}",
        text(&out)
    );
    // The promote job reads the registry with the staging role (the version's card, and the
    // production version's for the comparison), and opens the promotion on GitHub.
    const APP: &str = "ghs_promoteUnderTheStagingRole";
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, github_fake::Token::App("mlops-app".into()));
    fake.repo(
        "mlops-rs/digits-example",
        "main",
        &[("README.md", "# digits\n")],
    );
    let report = dir.path().join("holdout-report.json");
    let passed = crate::quickstart::holdout_report("digits-mlp@1", "digits-staging", true);
    std::fs::write(&report, passed).expect("report");
    let mut promote = mlops();
    promote
        .args(["promote", "--model", "digits-mlp@1", "--image", &img])
        .arg("--holdout-report")
        .arg(&report)
        .arg("--manifest")
        .arg(&manifest)
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", APP)
        .env("MLOPS_GITHUB_BACKOFF_MS", "20");
    moto.env(&mut promote);
    let out = as_role("staging", promote);
    assert_eq!(out.status.code(), Some(0), "staging role: {}", text(&out));
    assert!(
        fake.file(
            "mlops-rs/digits-example",
            "mlops/promote/digits-mlp",
            "deploy/production.yaml"
        )
        .is_some(),
        "{}",
        text(&out)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
    // Neither deploying role may write the registry.
    for role in ["staging", "production"] {
        let mut train = mlops();
        train
            .args(["train", "--format", "json", "--manifest"])
            .arg(&manifest);
        moto.env(&mut train);
        let out = as_role(role, train);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(3), "{role} role: {said}");
        assert!(said.contains("AccessDenied"), "{role} role: {said}");
    }
    // What moto cannot judge (it gives SageMaker calls the resource `*`, so any call a
    // resource-scoped statement allows is denied there too), asked of the rendered policies
    // themselves: no endpoint change by the training role, no model approval by a deploying role.
    for (role, action) in [
        ("train", "sagemaker:UpdateEndpoint"),
        ("train", "sagemaker:CreateEndpointConfig"),
        ("staging", "sagemaker:UpdateModelPackage"),
        ("production", "sagemaker:UpdateModelPackage"),
    ] {
        assert!(!allows(&roles[role], action), "{role} may {action}");
    }
    assert!(allows(&roles["staging"], "sagemaker:UpdateEndpoint"));
    assert!(allows(&roles["train"], "sagemaker:CreateTrainingJob"));
    // And a key moto never issued is refused outright: enforcement is on.
    let out = staging().output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// The manifest at `manifest` with `sections` and Terraform added (written back), and its
/// rendering.
fn with_terraform(
    manifest: &Path,
    sections: &str,
) -> (
    mlops_manifest::Manifest,
    std::collections::BTreeMap<String, String>,
) {
    let yaml = std::fs::read_to_string(manifest).expect("manifest")
        + "\n"
        + sections
        + "infrastructure:\n  terraform:\n    region: us-east-1\n    state_bucket: digits-tf-state\n";
    std::fs::write(manifest, yaml).expect("write");
    let report = mlops_manifest::check_file(manifest).expect("readable");
    let m = report.manifest.expect("valid");
    let files = mlops_render::render(&m, "mlops.yaml", &std::collections::BTreeMap::new())
        .expect("renders");
    (m, files)
}

/// The monitor role and the execution role's capture grant as the rendered Terraform gives them,
/// under moto's IAM enforcement. The execution role (production's endpoint writes the capture
/// with it) uploads a capture under the capture's prefix, and cannot elsewhere; the monitor role
/// lists and reads that capture and the registry and judges it (the holdout set: no drift), and
/// may neither read another prefix nor write the registry. moto does not judge trust policies,
/// so each role's trust is checked as rendered: the monitor's names its workflow's subject.
#[test]
fn the_rendered_monitor_role_reads_the_capture_and_the_registry_and_nothing_else() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let (m, files) = with_terraform(
        &manifest,
        &format!(
            "monitoring:\n  capture:\n    destination: s3://{BUCKET}/capture\n  schedule: \"0 6 * * *\"\nworkflows:\n  oidc_subject: workflow\n"
        ),
    );
    let roles = terraform::github_roles(&files, "123456789012");
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        ["monitor", "production", "staging", "train"]
    );
    let subject = mlops_manifest::oidc_subject(&m, mlops_manifest::RolePurpose::Monitor);
    assert_eq!(
        roles["monitor"].trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
        serde_json::json!([subject])
    );
    assert!(
        subject.ends_with("job_workflow_ref:mlops-rs/digits-example/.github/workflows/mlops-monitor.yml@refs/heads/main"),
        "{subject}"
    );
    let execution = terraform::execution_role(&files, "123456789012");
    // Another prefix's capture file, which the monitor role may not read.
    moto.put(BUCKET, "other/2026/12/05/10/capture.jsonl", b"{}\n");
    let monitor_creds = assume(&moto, &roles["monitor"]);
    let execution_creds = assume(&moto, &execution);
    moto.enforce_iam();
    let with = |c: &mut Command, [key, secret, token]: &[String; 3]| {
        moto.env(c);
        c.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token);
    };
    // The execution role serves the version (it reads the registry) and writes what it answers
    // under the capture's prefix, uploaded as the service stops.
    let (header, rows) = crate::monitor::quickstart_holdout();
    let capture = |prefix: &str| {
        let mut c = mlops();
        with(&mut c, &execution_creds);
        let mut service = Server::start(
            c,
            &[
                "--quiet",
                "--model",
                "digits-mlp@1",
                "--registry",
                &format!("s3://{BUCKET}/registry"),
                "--capture",
                &format!("s3://{BUCKET}/{prefix}"),
            ],
        );
        crate::monitor::send_csv(&service, &header, &crate::monitor::csv_rows(&rows), 50);
        let status = service.stop();
        (status, service.log())
    };
    let (status, log) = capture("capture");
    assert!(status.success(), "{log}");
    assert!(!log.contains("AccessDenied"), "{log}");
    // Elsewhere the upload is refused: the service answered, says what it could not do, and
    // keeps the file it could not upload (removed here, with its spool directory).
    let (status, log) = capture("elsewhere");
    assert!(status.success(), "{log}");
    assert!(log.contains("AccessDenied"), "{log}");
    let kept = log
        .split("warning: capture: ")
        .nth(1)
        .and_then(|rest| rest.split(" not uploaded").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("names the file it kept: {log}"));
    assert!(kept.is_file(), "{}", kept.display());
    let spool = kept
        .ancestors()
        .find(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mlops-capture-"))
        })
        .expect("in the spool directory")
        .to_owned();
    std::fs::remove_dir_all(&spool).expect("remove the spool");
    let monitor = |captured: &str| {
        let mut c = mlops();
        c.args(["monitor", "--format", "json", "--model", "digits-mlp@1"])
            .args(["--captured", captured, "--manifest"])
            .arg(&manifest);
        with(&mut c, &monitor_creds);
        c.output().expect("runs")
    };
    let out = monitor(&format!("s3://{BUCKET}/capture"));
    assert_eq!(out.status.code(), Some(0), "monitor role: {}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["read"]["rows"], rows.len(), "{report:#}");
    // Not another prefix, even of the same bucket. (moto judges the action and the resource,
    // not conditions: the listing's `s3:prefix` limit is asked of the policy below.)
    let out = monitor(&format!("s3://{BUCKET}/other"));
    assert_eq!(out.status.code(), Some(3), "monitor role: {}", text(&out));
    assert!(text(&out).contains("AccessDenied"), "{}", text(&out));
    let listed: Vec<serde_json::Value> = roles["monitor"]
        .policies
        .iter()
        .flat_map(|(_, p)| p["Statement"].as_array().cloned().unwrap_or_default())
        .filter(|st| {
            st["Action"] == "s3:ListBucket" || st["Action"] == serde_json::json!(["s3:ListBucket"])
        })
        .map(|st| st["Condition"]["StringLike"]["s3:prefix"].clone())
        .collect();
    assert_eq!(
        listed,
        [
            serde_json::json!(["capture", "capture/*"]),
            serde_json::json!(["registry", "registry/*"])
        ],
        "{:#?}",
        roles["monitor"].policies
    );
    // And it writes nothing: training (which registers a version) is refused.
    let mut train = mlops();
    train
        .args(["train", "--format", "json", "--manifest"])
        .arg(&manifest);
    with(&mut train, &monitor_creds);
    let out = train.output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "monitor role: {}", text(&out));
    assert!(text(&out).contains("AccessDenied"), "{}", text(&out));
    // What moto cannot judge, asked of the rendered policies: no SageMaker call at all.
    for action in [
        "sagemaker:UpdateEndpoint",
        "sagemaker:CreateTrainingJob",
        "s3:PutObject",
    ] {
        assert!(!allows(&roles["monitor"], action), "monitor may {action}");
    }
}

/// A CloudWatch alarm in moto on the endpoint's 5xx errors, in `state`.
fn alarm(moto: &moto::Moto, name: &str, state: &str) {
    let (status, answer) = moto.query(
        "monitoring",
        &[
            ("Action", "PutMetricAlarm"),
            ("Version", "2010-08-01"),
            ("AlarmName", name),
            ("MetricName", "Invocation5XXErrors"),
            ("Namespace", "AWS/SageMaker"),
            ("Statistic", "Sum"),
            ("Period", "60"),
            ("EvaluationPeriods", "1"),
            ("Threshold", "1"),
            ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = moto.query(
        "monitoring",
        &[
            ("Action", "SetAlarmState"),
            ("Version", "2010-08-01"),
            ("AlarmName", name),
            ("StateValue", state),
            ("StateReason", &format!("set to {state} by the test")),
        ],
    );
    assert_eq!(status, 200, "{answer}");
}

/// The watch after a production deploy of a SageMaker endpoint reads CloudWatch (moto): the
/// endpoint's own alarms (the rendered Terraform's) and the manifest's. All OK: the deploy
/// passes. One in ALARM: exit 1 naming it, and production goes back to the pin before at once,
/// tagged with why (the pin file must follow through a rollback pull request).
#[test]
fn a_sagemaker_watch_rolls_production_back_when_an_alarm_fires() {
    let Some((moto, dir)) = sagemaker_world(2) else {
        return;
    };
    let Some(fake) = fake_sagemaker::Fake::start("endpoint") else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("manifest");
    let alarms = "      rollback_alarms: [digits-5xx]\n";
    assert!(yaml.contains(alarms));
    std::fs::write(
        &manifest,
        yaml.replace(
            alarms,
            &format!("{alarms}    watch:\n      seconds: 2\n      interval_seconds: 1\n"),
        ),
    )
    .expect("write");
    for name in [
        "digits-production-5xx",
        "digits-production-latency-p99",
        "digits-5xx",
    ] {
        alarm(&moto, name, "OK");
    }
    let one = production_pin(&moto, dir.path(), 1);
    let two = production_pin(&moto, dir.path(), 2);
    let repo = pin_history(&[&one, &two]);
    let pin = repo
        .path()
        .join("pins/current.yaml")
        .to_string_lossy()
        .into_owned();
    let production = |extra: &[&str]| {
        let mut args = vec!["--env", "production", "--pin", &pin];
        args.extend_from_slice(extra);
        let out = deploy_sm(&moto, dir.path(), &fake.endpoint(), &args)
            .env("GITHUB_ACTOR", "mlops-watch")
            .output()
            .expect("runs");
        (out.status.code(), text(&out))
    };
    let (code, said) = production(&[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(
            "watch: the alarms digits-production-5xx, digits-production-latency-p99, digits-5xx every 1 s for 2 s"
        ),
        "{said}"
    );
    assert!(
        said.contains("production endpoint digits-production serves digits-mlp@2"),
        "{said}"
    );

    // The endpoint's own 5xx alarm fires: a breach, and @1 goes back at once.
    alarm(&moto, "digits-production-5xx", "ALARM");
    let (code, said) = production(&[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(
            "watch: the alarm digits-production-5xx is in ALARM: set to ALARM by the test"
        ),
        "{said}"
    );
    assert!(
        said.contains("watch: rolled production back:") && said.contains("serves digits-mlp@1"),
        "{said}"
    );
    let tags = fake.tags();
    let endpoint = &tags["arn:aws:sagemaker:us-east-1:123456789012:endpoint/digits-production"];
    assert_eq!(endpoint["mlops:break-glass-by"], "mlops-watch");
    assert!(
        endpoint["mlops:break-glass-reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("watch: the alarm digits-production-5xx is in ALARM")),
        "{endpoint:?}"
    );
    // --no-watch deploys without looking.
    let (code, said) = production(&["--no-watch"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("watch:"), "{said}");
}

/// Production's endpoint captures for `mlops monitor` (`monitoring.capture` in S3): its
/// configuration carries SageMaker's `DataCaptureConfig` (input and output, CSV and JSON as
/// text, the sample, the KMS key); staging captures nothing; a serverless production, which
/// SageMaker cannot make capture, is refused.
#[test]
fn production_endpoints_capture_for_monitoring() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    let capture = format!("s3://{BUCKET}/capture/production");
    let monitored = format!(
        "{yaml}\nmonitoring:\n  capture:\n    destination: {capture}\n    sample_percent: 50\n    kms_key_id: alias/mlops-capture\n"
    );
    std::fs::write(&manifest, &monitored).expect("write");
    let out = deploy_staging(&moto, dir.path(), &moto.endpoint(), &image())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // moto answers an empty object where SageMaker leaves the field out.
    let staging = endpoint_config(&moto, "digits-staging");
    assert!(
        staging["DataCaptureConfig"]
            .as_object()
            .is_none_or(|c| c.get("EnableCapture").is_none() && c.get("DestinationS3Uri").is_none()),
        "staging captures nothing: {staging:#}"
    );

    let pin = production_pin(&moto, dir.path(), 1);
    let out = deploy_sm(
        &moto,
        dir.path(),
        &moto.endpoint(),
        &["--env", "production", "--pin"],
    )
    .arg(&pin)
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let config = endpoint_config(&moto, "digits-production");
    let captured = &config["DataCaptureConfig"];
    assert_eq!(captured["EnableCapture"], true, "{config:#}");
    assert_eq!(captured["InitialSamplingPercentage"], 50);
    assert_eq!(captured["DestinationS3Uri"], capture.as_str());
    assert_eq!(captured["KmsKeyId"], "alias/mlops-capture");
    assert_eq!(
        captured["CaptureOptions"],
        serde_json::json!([{"CaptureMode": "Input"}, {"CaptureMode": "Output"}])
    );
    assert_eq!(
        captured["CaptureContentTypeHeader"],
        serde_json::json!({"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]})
    );
    // A serverless production cannot capture: refused before anything is made.
    let serverless = monitored.replace(
        "      instance_type: ml.m5.large\n      instance_count: 2\n",
        "      serverless:\n        memory_mb: 2048\n        max_concurrency: 5\n",
    );
    assert_ne!(serverless, monitored);
    std::fs::write(&manifest, serverless).expect("write");
    let out = deploy_sm(
        &moto,
        dir.path(),
        &moto.endpoint(),
        &["--env", "production", "--pin"],
    )
    .arg(&pin)
    .output()
    .expect("runs");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("serverless"), "{}", text(&out));
}

/// Whether one of `role`'s statements allows `action` on `arn` (IAM's `*` and `?` wildcards in
/// the resource; `${...}` placeholders are already filled in by the evaluation).
fn allows_on(role: &terraform::Role, action: &str, arn: &str) -> bool {
    fn glob(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.split_first(), text.split_first()) {
            (None, None) => true,
            (Some((b'*', rest)), _) => {
                glob(rest, text) || text.split_first().is_some_and(|(_, t)| glob(pattern, t))
            }
            (Some((b'?', rest)), Some((_, t))) => glob(rest, t),
            (Some((p, rest)), Some((c, t))) if p == c => glob(rest, t),
            _ => false,
        }
    }
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    role.policies.iter().any(|(_, policy)| {
        policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|st| {
                st["Effect"] == "Allow"
                    && list(&st["Action"])
                        .iter()
                        .any(|a| glob(a.as_bytes(), action.as_bytes()))
                    && list(&st["Resource"])
                        .iter()
                        .any(|r| glob(r.as_bytes(), arn.as_bytes()))
            })
    })
}

/// The batch role as the rendered Terraform gives it, under moto's IAM enforcement: it reads the
/// registry and the input and writes the scores under the output prefix, and nothing else (not
/// another input, not the registry). Its Batch Transform calls, which moto judges by action
/// alone, are checked against the rendered resources: the SageMaker model and transform job
/// `mlops predict --backend sagemaker` created (in moto) are ones the role may create, and the
/// deploy roles may create the models and configurations `mlops deploy` names.
#[test]
fn the_rendered_batch_role_reads_the_input_and_writes_only_the_scores() {
    let Some((moto, dir)) = sagemaker_world(1) else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let transform = format!("s3://{BUCKET}/transform/");
    let (m, files) = with_terraform(
        &manifest,
        &format!(
            "batch:\n  input: s3://{BUCKET}/batch/rows.csv\n  output: s3://{BUCKET}/scores/\n  sagemaker:\n    prefix: {transform}\n    role_arn: {ROLE}\nworkflows:\n  oidc_subject: workflow\n"
        ),
    );
    let roles = terraform::github_roles(&files, "123456789012");
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        ["batch", "production", "staging", "train"]
    );
    let subject = mlops_manifest::oidc_subject(&m, mlops_manifest::RolePurpose::Batch);
    assert_eq!(
        roles["batch"].trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
        serde_json::json!([subject])
    );
    assert!(
        subject.ends_with("/.github/workflows/mlops-batch.yml@refs/heads/main"),
        "{subject}"
    );
    let holdout =
        std::fs::read_to_string(root().join("examples/quickstart/data/digits-holdout.csv"))
            .expect("holdout");
    moto.put(BUCKET, "batch/rows.csv", holdout.as_bytes());
    moto.put(BUCKET, "other/rows.csv", holdout.as_bytes());
    let creds = assume(&moto, &roles["batch"]);
    let predict = |input: &str, output: &str, extra: &[&str], as_role: bool| {
        let mut c = mlops();
        c.args(["--format", "json", "predict", "--model", "digits-mlp@1"])
            .args(["--registry", &format!("s3://{BUCKET}/registry")])
            .args(["--input", input, "--output", output])
            .args(extra);
        moto.env(&mut c);
        if as_role {
            let [key, secret, token] = &creds;
            c.env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_SESSION_TOKEN", token);
        }
        c.output().expect("runs")
    };
    let input = format!("s3://{BUCKET}/batch/rows.csv");

    // On SageMaker (moto's, which completes a job without answers, and which judges SageMaker
    // calls by action alone, so before IAM is enforced): what was created is what the rendered
    // role may create, and the rows went where it may write.
    let out = predict(
        &input,
        &format!("s3://{BUCKET}/scores/3-1.csv"),
        &[
            "--backend",
            "sagemaker",
            "--transform-prefix",
            &transform,
            "--role-arn",
            ROLE,
            "--image",
            &image(),
            "--poll-seconds",
            "0.05",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("completed without its answers"),
        "{}",
        text(&out)
    );
    let (status, models) = moto.json("sagemaker", "SageMaker.ListModels", "{}");
    assert_eq!(status, 200, "{models}");
    let (status, jobs) = moto.json("sagemaker", "SageMaker.ListTransformJobs", "{}");
    assert_eq!(status, 200, "{jobs}");
    let model_arn = models["Models"][0]["ModelArn"].as_str().expect("a model");
    let job_arn = jobs["TransformJobSummaries"][0]["TransformJobArn"]
        .as_str()
        .expect("a job");
    for (action, arn) in [
        ("sagemaker:CreateModel", model_arn),
        ("sagemaker:CreateTransformJob", job_arn),
        ("sagemaker:StopTransformJob", job_arn),
    ] {
        assert!(
            allows_on(&roles["batch"], action, arn),
            "the batch role may not {action} on {arn}: {:#?}",
            roles["batch"].policies
        );
    }
    assert!(
        allows_on(&roles["batch"], "iam:PassRole", ROLE),
        "{:#?}",
        roles["batch"].policies
    );
    assert!(!allows_on(
        &roles["batch"],
        "sagemaker:CreateModel",
        "arn:aws:sagemaker:us-east-1:123456789012:model/another-v1-abc"
    ));
    let job = job_arn.rsplit('/').next().expect("a name");
    assert!(allows_on(
        &roles["batch"],
        "s3:PutObject",
        &format!("arn:aws:s3:::{BUCKET}/transform/{job}/rows.csv")
    ));

    // S3 under IAM: the input and the registry read, the scores written; nothing else.
    moto.enforce_iam();
    let out = predict(&input, &format!("s3://{BUCKET}/scores/1-1.csv"), &[], true);
    assert_eq!(out.status.code(), Some(0), "batch role: {}", text(&out));
    let out = predict(
        &format!("s3://{BUCKET}/other/rows.csv"),
        &format!("s3://{BUCKET}/scores/2-1.csv"),
        &[],
        true,
    );
    assert_eq!(out.status.code(), Some(3), "batch role: {}", text(&out));
    assert!(text(&out).contains("AccessDenied"), "{}", text(&out));
    let out = predict(
        &input,
        &format!("s3://{BUCKET}/registry/evil.csv"),
        &[],
        true,
    );
    assert_eq!(out.status.code(), Some(3), "batch role: {}", text(&out));
    assert!(text(&out).contains("AccessDenied"), "{}", text(&out));

    // The deploy roles: a staging model and configuration as `mlops deploy` names them.
    let name = |endpoint: &str| format!("{endpoint}-v1-0123456789");
    let staging = m
        .environments
        .staging
        .sagemaker
        .as_ref()
        .map(|s| s.endpoint_name.clone())
        .expect("the SageMaker world stages on an endpoint");
    for (kind, action) in [
        ("model", "sagemaker:CreateModel"),
        ("endpoint-config", "sagemaker:CreateEndpointConfig"),
    ] {
        let arn = format!(
            "arn:aws:sagemaker:us-east-1:123456789012:{kind}/{}",
            name(&staging).to_lowercase()
        );
        assert!(
            allows_on(&roles["staging"], action, &arn),
            "{action} on {arn}: {:#?}",
            roles["staging"].policies
        );
        assert!(!allows_on(&roles["production"], action, &arn), "{arn}");
    }
}

/// A sweep on SageMaker (the example's) is a hyperparameter tuning job: the rendered training
/// role may start, watch, list and stop tuning jobs and describe their trials, and no deploying
/// role may. moto gives SageMaker calls the resource `*`, so the names are checked against the
/// evaluated policy: a tuning job named as mlops names it, from a prefix longer than a tuning
/// job's name leaves room for, and a trial SageMaker names after it, both fall in the grant.
#[test]
fn only_the_rendered_training_role_runs_tuning_jobs_named_as_mlops_names_them() {
    let text = std::fs::read_to_string(root().join("examples/sagemaker/mlops.yaml"))
        .expect("the example")
        .replace(
            "    state_bucket: acme-terraform-state\n",
            "    state_bucket: acme-terraform-state\n    name_prefix: acme-churn-model-prod\n",
        );
    let report = mlops_manifest::check_bytes("mlops.yaml", text.as_bytes());
    assert!(report.is_valid(), "{:?}", report.diagnostics);
    let m = report.manifest.expect("typed");
    assert!(m.training.sweep.is_some(), "the example sweeps");
    let files = mlops_render::render(&m, "mlops.yaml", &std::collections::BTreeMap::new())
        .expect("renders");
    let roles = terraform::github_roles(&files, "123456789012");
    let tuning = [
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    ];
    for action in tuning {
        assert!(allows(&roles["train"], action), "train may not {action}");
        for role in ["staging", "production"] {
            assert!(
                !allows(&roles[role], action),
                "{role} may {action}: {:#?}",
                roles[role].policies
            );
        }
    }
    let resources = |action: &str| -> Vec<String> {
        roles["train"]
            .policies
            .iter()
            .flat_map(|(_, p)| p["Statement"].as_array().cloned().unwrap_or_default())
            .filter(|st| {
                st["Action"] == action
                    || st["Action"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|a| a == action))
            })
            .flat_map(|st| match &st["Resource"] {
                serde_json::Value::String(r) => vec![r.clone()],
                serde_json::Value::Array(l) => l
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    };
    let granted = |action: &str, arn: &str| {
        resources(action).iter().any(|r| {
            r.strip_suffix('*')
                .map_or(r == arn, |stem| arn.starts_with(stem))
        })
    };
    let name = mlops_core::sagemaker::job_name(
        mlops_core::sagemaker::tuning_prefix(&m),
        &"0".repeat(64),
        &[],
    );
    assert!(name.len() <= 32, "{name}");
    let arn = "arn:aws:sagemaker:eu-west-1:123456789012:";
    assert!(
        granted(
            "sagemaker:CreateHyperParameterTuningJob",
            &format!("{arn}hyper-parameter-tuning-job/{name}")
        ),
        "{name}: {:?}",
        resources("sagemaker:CreateHyperParameterTuningJob")
    );
    assert!(granted(
        "sagemaker:DescribeTrainingJob",
        &format!("{arn}training-job/{name}-001-1a2b3c4d")
    ));
    // Another project's tuning jobs are not granted.
    assert!(!granted(
        "sagemaker:CreateHyperParameterTuningJob",
        &format!("{arn}hyper-parameter-tuning-job/other-0123456789abcdef")
    ));
}
