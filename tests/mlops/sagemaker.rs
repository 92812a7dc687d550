//! `mlops train --backend sagemaker` as a real process against AWS emulators: moto for ECR, S3
//! and SageMaker's registry calls (behind a recording proxy, to count calls), and — for what
//! moto cannot do (a job held in progress, stopped, failed, throttled) — a SageMaker fake whose
//! every request is validated against botocore's SageMaker service description.
//!
//! The model artifact a job "produced" is what the real worker writes: the test runs
//! `mlops train-worker` over the same hyperparameters and packs its `/opt/ml/model` the way
//! SageMaker does (`OUTPUT/JOB/output/model.tar.gz`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bin;
use crate::docker;
use crate::fake_sagemaker;
use crate::moto;
use crate::proxy;
use bin::{mlops, succeeds};
use docker::Docker;
use fake_sagemaker::Fake;

use moto::Moto;
use proxy::Proxy;

const BUCKET: &str = "digits-ml";
const REPOSITORY: &str = "digits/mlops";
const ECR: &str = "AmazonEC2ContainerRegistry_V20150921";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A project directory: the quickstart's data and a manifest that trains on SageMaker.
fn project() -> tempfile::TempDir {
    crate::quickstart::copy(project_yaml)
}

/// The quickstart's manifest edited to train on SageMaker (the image `digits/mlops:v1`, output
/// and model packages as `aws` sets them up).
fn project_yaml(yaml: String) -> String {
    let yaml = yaml
        .replace("  backend: local\n", "  backend: sagemaker\n")
        .replace("  epochs: 30\n", "  epochs: 2\n")
        .replace(
            "  local:\n    device: cpu\n",
            &format!(
                "  sagemaker:\n    role_arn: arn:aws:iam::123456789012:role/digits-sagemaker-execution\n    image:\n      repository: {REPOSITORY}\n      tag: v1\n    instance_type: ml.m5.large\n    output_uri: s3://{BUCKET}/training\n    tags:\n      team: ml\n"
            ),
        )
        .replace("  thresholds:\n    accuracy: { min: 0.95 }\n", "")
        .replace(
            "  path: .mlops/registry\n",
            "  path: registry\n  sagemaker_model_package_group: digits-mlp\n",
        );
    assert!(yaml.contains("sagemaker_model_package_group") && yaml.contains("backend: sagemaker"));
    yaml
}

/// The worker's model directory for the project's manifest, trained for real, as SageMaker's
/// `model.tar.gz`.
fn artifact(project: &Path) -> Vec<u8> {
    let report = mlops_manifest::check_file(&project.join("mlops.yaml")).expect("reads");
    let m = report.manifest.expect("valid");
    let job = mlops_train::worker::Job::from_manifest(&m);
    let base = project.join("opt-ml");
    let files = job
        .datasets
        .iter()
        .map(|(c, s)| (c.clone(), project.join(&s.path)))
        .collect();
    mlops_train::worker::Layout::new(&base)
        .prepare(&job, &files)
        .expect("layout");
    let out = mlops()
        .args(["train-worker", "--base"])
        .arg(&base)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut packed = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    packed.append_dir_all(".", base.join("model")).expect("tar");
    packed.into_inner().expect("tar").finish().expect("gzip")
}

/// A gzipped tar of `files` (name, bytes), as SageMaker packs `/opt/ml/model`.
fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut packed = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        packed.append_data(&mut header, name, *bytes).expect("tar");
    }
    packed.into_inner().expect("tar").finish().expect("gzip")
}

/// moto with the image `digits/mlops:v1` in ECR and the output bucket; the image's digest.
fn aws() -> Option<(Moto, String)> {
    let moto = Moto::start()?;
    let (status, _) = moto.json(
        "ecr",
        &format!("{ECR}.CreateRepository"),
        &format!(r#"{{"repositoryName":"{REPOSITORY}"}}"#),
    );
    assert_eq!(status, 200);
    let manifest = r#"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"layers\":[]}"#;
    let (status, put) = moto.json(
        "ecr",
        &format!("{ECR}.PutImage"),
        &format!(
            r#"{{"repositoryName":"{REPOSITORY}","imageTag":"v1","imageManifest":"{manifest}"}}"#
        ),
    );
    assert_eq!(status, 200, "{put}");
    let digest = put["image"]["imageId"]["imageDigest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let (status, answer) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "{answer}");
    Some((moto, digest))
}

/// `mlops train` on the project with SageMaker at `sagemaker` and the rest at moto.
fn train(project: &Path, moto: &Moto, sagemaker: &str, extra: &[&str]) -> Command {
    let mut c = mlops();
    c.args(["train", "--manifest"])
        .arg(project.join("mlops.yaml"))
        .args(["--poll-seconds", "0.05"])
        .args(extra);
    moto.env(&mut c);
    c.env("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker);
    c
}

fn sagemaker(moto: &Moto, op: &str, body: &str) -> serde_json::Value {
    let (status, answer) = moto.json("sagemaker", &format!("SageMaker.{op}"), body);
    assert_eq!(status, 200, "{op}: {answer}");
    answer
}

fn card(project: &Path, version: u64) -> serde_json::Value {
    let path = project.join(format!("registry/digits-mlp/{version}/card.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("card")).expect("json")
}

/// The whole SageMaker path against moto: the tag resolved to the digest the job runs, local
/// data uploaded under its content hash (and not again), the job created with the manifest's
/// settings, its artifact registered with the digest and a model package pending approval;
/// a re-run attaches and creates nothing; approval reaches the package.
#[test]
fn sagemaker_training_against_moto() {
    let Some((moto, digest)) = aws() else { return };
    let proxy = Proxy::start(moto.port);
    let dir = project();
    let tarball = artifact(dir.path());
    moto.put(
        BUCKET,
        "training/digits-run-1/output/model.tar.gz",
        &tarball,
    );
    // What SageMaker would have logged: the worker's lines in the job's stream.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let group = r#""logGroupName":"/aws/sagemaker/TrainingJobs""#;
    let stream = r#""logStreamName":"digits-run-1/algo-1-1700000000""#;
    for (target, body) in [
        ("CreateLogGroup", format!("{{{group}}}")),
        ("CreateLogStream", format!("{{{group},{stream}}}")),
        (
            "PutLogEvents",
            format!(
                r#"{{{group},{stream},"logEvents":[{{"timestamp":{now},"message":"epoch=1 loss=0.912345 validation_loss=0.456789"}},{{"timestamp":{},"message":"trained: 2 epochs"}}]}}"#,
                now + 1
            ),
        ),
    ] {
        let (status, answer) = moto.json("logs", &format!("Logs_20140328.{target}"), &body);
        assert_eq!(status, 200, "{target}: {answer}");
    }

    let stdout = succeeds(train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "digits-run-1"],
    ));
    assert!(
        stdout.contains("started training job digits-run-1"),
        "{stdout}"
    );
    assert!(stdout.contains("uploaded"), "{stdout}");
    assert!(
        stdout.contains(
            "[algo-1] epoch=1 loss=0.912345 validation_loss=0.456789\n[algo-1] trained: 2 epochs"
        ),
        "the job's log, in order: {stdout}"
    );
    assert_eq!(proxy.count("CreateTrainingJob"), 1);

    let job = sagemaker(
        &moto,
        "DescribeTrainingJob",
        r#"{"TrainingJobName":"digits-run-1"}"#,
    );
    let image = job["AlgorithmSpecification"]["TrainingImage"]
        .as_str()
        .expect("image");
    assert!(
        image.ends_with(&format!("/{REPOSITORY}@{digest}")),
        "{image}"
    );
    assert_eq!(job["ResourceConfig"]["InstanceType"], "ml.m5.large");
    assert_eq!(job["HyperParameters"]["epochs"], "2");
    assert_eq!(job["HyperParameters"]["device"], "\"cpu\"");
    let channels: Vec<&str> = job["InputDataConfig"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            c["DataSource"]["S3DataSource"]["S3Uri"]
                .as_str()
                .expect("uri")
        })
        .collect();
    let train_sha = sha256(&std::fs::read(dir.path().join("data/digits-train.csv")).expect("data"));
    assert!(
        channels.contains(
            &format!("s3://{BUCKET}/training/datasets/sha256-{train_sha}/digits-train.csv")
                .as_str()
        ),
        "{channels:?}"
    );
    let (status, _) = moto.http(
        "HEAD",
        &format!("/{BUCKET}/training/datasets/sha256-{train_sha}/digits-train.csv"),
        b"",
    );
    assert_eq!(status, 200, "the dataset was uploaded under its hash");
    let tags = sagemaker(
        &moto,
        "ListTags",
        &format!(
            r#"{{"ResourceArn":"{}"}}"#,
            job["TrainingJobArn"].as_str().expect("arn")
        ),
    );
    let tag_keys: Vec<&str> = tags["Tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["Key"].as_str())
        .collect();
    for k in [
        "team",
        "mlops:repository",
        "mlops:manifest-sha256",
        "mlops:workflow-run",
    ] {
        assert!(tag_keys.contains(&k), "{k} in {tag_keys:?}");
    }

    let c = card(dir.path(), 1);
    assert_eq!(c["sagemaker"]["training_job"], "digits-run-1");
    assert_eq!(c["sagemaker"]["image_digest"], digest.as_str());
    let package = c["sagemaker"]["model_package_arn"]
        .as_str()
        .expect("package")
        .to_owned();
    let packages = sagemaker(
        &moto,
        "ListModelPackages",
        r#"{"ModelPackageGroupName":"digits-mlp"}"#,
    );
    let list = packages["ModelPackageSummaryList"]
        .as_array()
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ModelApprovalStatus"], "PendingManualApproval");
    assert_eq!(list[0]["ModelPackageArn"], package.as_str());
    let described = sagemaker(
        &moto,
        "DescribeModelPackage",
        &format!(r#"{{"ModelPackageName":"{package}"}}"#),
    );
    assert!(
        described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/mlops-metrics.json")),
        "{described}"
    );

    // The same step again: attaches, creates nothing, registers nothing new.
    let again = succeeds(train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "digits-run-1"],
    ));
    assert!(again.contains("registered as digits-mlp@1"), "{again}");
    assert_eq!(proxy.count("CreateTrainingJob"), 1, "{:?}", proxy.calls());
    assert!(!dir.path().join("registry/digits-mlp/2").exists());

    // Another registry, same job: attaches to the finished job and registers its model.
    let other = tempfile::tempdir().expect("tempdir");
    let mut c = train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "digits-run-1"],
    );
    c.arg("--registry").arg(other.path());
    let attach = succeeds(c);
    assert!(attach.contains("attached to the existing training job digits-run-1"));
    assert_eq!(proxy.count("CreateTrainingJob"), 1);
    assert!(other.path().join("digits-mlp/1/card.json").is_file());
    assert!(
        attach.contains(&format!("the job's model package is {package} already")),
        "{attach}"
    );

    // A new job with the same data: a second job, and no second upload.
    moto.put(
        BUCKET,
        "training/digits-run-2/output/model.tar.gz",
        &tarball,
    );
    let second = succeeds(train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "digits-run-2"],
    ));
    assert!(second.contains("is there already (same SHA-256); not uploaded"));
    assert_eq!(proxy.count("CreateTrainingJob"), 2);

    // Approval reaches the model package.
    let mut approve = mlops();
    approve
        .args(["registry", "approve", "digits-mlp@1", "--registry"])
        .arg(dir.path().join("registry"))
        .args(["--reason", "holdout passed"])
        .env("AWS_ENDPOINT_URL_SAGEMAKER", proxy.endpoint())
        .envs(moto_env(&moto));
    succeeds(approve);
    let described = sagemaker(
        &moto,
        "DescribeModelPackage",
        &format!(r#"{{"ModelPackageName":"{package}"}}"#),
    );
    assert_eq!(described["ModelApprovalStatus"], "Approved");
    let mut listed = mlops();
    listed
        .args([
            "registry",
            "list",
            "--format",
            "json",
            "--model-package-group",
            "digits-mlp",
            "--registry",
        ])
        .arg(dir.path().join("registry"))
        .envs(moto_env(&moto));
    let doc: serde_json::Value = serde_json::from_str(&succeeds(listed)).expect("json");
    let approvals: Vec<&str> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["approval"].as_str())
        .collect();
    assert_eq!(approvals, ["Approved", "PendingManualApproval"]);

    // Its promotion pull request names the SageMaker training job that trained it, read from
    // the card under the name the training wrote it with.
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token("app-token", github_fake::Token::App("mlops-app".into()));
    fake.repo(
        "mlops-rs/digits-example",
        "main",
        &[("README.md", "# digits\n")],
    );
    fake.protect("mlops-rs/digits-example", "main", 1);
    let report = dir.path().join("holdout-report.json");
    let holdout = crate::quickstart::holdout_report("digits-mlp@1", "http://127.0.0.1:8080", true);
    std::fs::write(&report, holdout).expect("report");
    let mut promote = mlops();
    promote
        .args(["promote", "--model", "digits-mlp@1", "--manifest"])
        .arg(dir.path().join("mlops.yaml"))
        .arg("--registry")
        .arg(dir.path().join("registry"))
        .arg("--holdout-report")
        .arg(&report)
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", "app-token")
        .env("MLOPS_GITHUB_BACKOFF_MS", "50")
        .env_remove("GITHUB_ACTIONS");
    succeeds(promote);
    let pulls = fake
        .snapshot("mlops-rs/digits-example")
        .expect("repo")
        .pulls;
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("| run | SageMaker training job `digits-run-1` |"),
        "{body}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The environment `Moto::env` sets, as pairs (for commands built without it).
fn moto_env(moto: &Moto) -> Vec<(String, String)> {
    let mut c = Command::new("true");
    moto.env(&mut c);
    c.get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `mlops train --job-name digits-x` and checks it exits `code` saying `needle`.
fn refused(project: &Path, moto: &Moto, proxy: &Proxy, code: i32, needle: &str) {
    let out = train(
        project,
        moto,
        &proxy.endpoint(),
        &["--job-name", "digits-x"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "{needle} in {stderr}");
}

/// Refusals before anything starts: a missing tag (exit 2, naming repository and tag), CRITICAL
/// scan findings (exit 1), more than one instance (an invalid manifest, exit 1); none creates a
/// job.
#[test]
fn sagemaker_refuses_before_starting_anything() {
    let Some((moto, digest)) = aws() else { return };
    let proxy = Proxy::start(moto.port);
    let dir = project();
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");

    std::fs::write(
        &manifest,
        yaml.replace("      tag: v1\n", "      tag: v9\n"),
    )
    .expect("write");
    refused(
        dir.path(),
        &moto,
        &proxy,
        2,
        &format!("`{REPOSITORY}` has no image tagged `v9`"),
    );

    std::fs::write(
        &manifest,
        yaml.replace("    instance_count: 1\n", "").replace(
            "    instance_type: ml.m5.large\n",
            "    instance_type: ml.m5.large\n    instance_count: 2\n",
        ),
    )
    .expect("write");
    refused(dir.path(), &moto, &proxy, 1, "2 independent copies");

    std::fs::write(&manifest, &yaml).expect("write");
    let (status, _) = moto.json(
        "ecr",
        &format!("{ECR}.StartImageScan"),
        &format!(r#"{{"repositoryName":"{REPOSITORY}","imageId":{{"imageDigest":"{digest}"}}}}"#),
    );
    assert_eq!(status, 200);
    let findings = serde_json::json!({
        "region": "us-east-1",
        "results": [{
            "registryId": "123456789012",
            "repositoryName": REPOSITORY,
            "imageId": { "imageDigest": digest },
            "imageScanStatus": { "status": "COMPLETE", "description": "done" },
            "imageScanFindings": { "findings": [], "findingSeverityCounts": { "CRITICAL": 2, "LOW": 5 } }
        }]
    });
    let (status, answer) = moto.http(
        "POST",
        "/moto-api/static/ecr/scan-finding-results",
        findings.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    refused(
        dir.path(),
        &moto,
        &proxy,
        1,
        "has 2 CRITICAL scan finding(s)",
    );
    assert_eq!(proxy.count("CreateTrainingJob"), 0, "{:?}", proxy.calls());
}

/// `model.family: onnx` trained by a training image of the user's (named by tag, resolved to
/// its digest): the job runs that image, and its `model.tar.gz` holds what the image wrote into
/// `/opt/ml/model` (here the scikit-learn MLP that skl2onnx exported, beside a file mlops
/// ignores). mlops measures the model.onnx on this machine, on the manifest's data (the holdout
/// read from S3): the recorded holdout accuracy is onnxruntime's answers scored, the registered
/// file is the job's, byte for byte, and its model package is created. A job whose model
/// directory has no model.onnx fails (exit 2) naming what it held, and registers nothing.
#[test]
fn a_training_image_of_the_users_writes_onnx_that_mlops_measures_and_registers() {
    let Some(exported) = crate::onnx_models::exported() else {
        return;
    };
    let Some((moto, digest)) = aws() else { return };
    let proxy = Proxy::start(moto.port);
    let holdout_csv =
        std::fs::read(crate::bin::root().join("examples/quickstart/data/digits-holdout.csv"))
            .expect("holdout");
    moto.put(BUCKET, "data/digits-holdout.csv", &holdout_csv);
    let dir = crate::quickstart::copy(|yaml| {
        let edited = project_yaml(yaml)
            .replace(
                "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
                "  family: onnx\n",
            )
            .replace("  epochs: 2\n", "")
            .replace(
                "    path: data/digits-holdout.csv\n",
                &format!("    path: s3://{BUCKET}/data/digits-holdout.csv\n"),
            );
        assert!(
            edited.contains("family: onnx") && edited.contains("s3://"),
            "{edited}"
        );
        edited
    });
    let onnx = std::fs::read(exported.join("mlp.onnx")).expect("model");
    moto.put(
        BUCKET,
        "training/byo-run-1/output/model.tar.gz",
        &tarball(&[
            ("model.onnx", &onnx),
            ("requirements.txt", b"scikit-learn\n"),
        ]),
    );
    let stdout = succeeds(train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "byo-run-1"],
    ));
    assert!(
        stdout.contains("started training job byo-run-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("measuring the job's model.onnx"),
        "{stdout}"
    );
    let job = sagemaker(
        &moto,
        "DescribeTrainingJob",
        r#"{"TrainingJobName":"byo-run-1"}"#,
    );
    assert!(
        job["AlgorithmSpecification"]["TrainingImage"]
            .as_str()
            .is_some_and(|i| i.ends_with(&format!("/{REPOSITORY}@{digest}"))),
        "{job}"
    );

    let version = dir.path().join("registry/digits-mlp/1");
    assert_eq!(
        std::fs::read(version.join("model.onnx")).expect("registered"),
        onnx,
        "the job's model, byte for byte"
    );
    assert!(!version.join("requirements.txt").exists());
    assert!(!version.join("model.safetensors").exists());
    let c = card(dir.path(), 1);
    assert_eq!(c["sagemaker"]["training_job"], "byo-run-1");
    assert_eq!(c["sagemaker"]["image_digest"], digest.as_str());
    assert!(c["sagemaker"]["model_package_arn"].is_string(), "{c}");
    let expected = crate::onnx_models::expected(exported);
    let (_, _, truth) = crate::serve::holdout_rows();
    let right = expected["models"]["mlp"]["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .zip(&truth)
        .filter(|(a, b)| a.as_str() == Some(b.as_str()))
        .count();
    let recorded = c["metrics"]["holdout"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!(
        (recorded - right as f64 / truth.len() as f64).abs() < 1e-12,
        "recorded {recorded}; onnxruntime's answers: {right}/{}",
        truth.len()
    );

    // An image that wrote something else: refused, nothing registered.
    moto.put(
        BUCKET,
        "training/byo-run-2/output/model.tar.gz",
        &tarball(&[("model.joblib", b"not onnx")]),
    );
    let out = train(
        dir.path(),
        &moto,
        &proxy.endpoint(),
        &["--job-name", "byo-run-2"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the training job byo-run-2 wrote no model.onnx")
            && stderr.contains("holds: model.joblib"),
        "{stderr}"
    );
    assert!(!dir.path().join("registry/digits-mlp/2").exists());
}

/// moto (ECR, S3, Logs), the SageMaker fake playing `scenario`, and a project.
fn with_fake(scenario: &str) -> Option<(Moto, Fake, tempfile::TempDir)> {
    let (moto, _) = aws()?;
    let fake = Fake::start(scenario)?;
    Some((moto, fake, project()))
}

/// Waits for the process, killing it after `limit`.
fn finish(mut child: std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// `mlops train --job-name NAME` sent a real SIGTERM once the fake has answered `describe` three
/// times (the job is running and watched); its output.
fn sigterm_while(
    dir: &tempfile::TempDir,
    moto: &Moto,
    fake: &Fake,
    name: &str,
    describe: &str,
) -> Output {
    let child = train(dir.path(), moto, &fake.endpoint(), &["--job-name", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    fake.wait_for_calls(describe, 3);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    finish(child, Duration::from_secs(60))
}

/// A real SIGTERM while the job trains: the job is stopped (StopTrainingJob, then Stopping)
/// before the process exits 130.
#[test]
fn sigterm_stops_the_training_job_before_exiting() {
    let Some((moto, fake, dir)) = with_fake("hold") else {
        return;
    };
    let out = sigterm_while(&dir, &moto, &fake, "digits-held", "DescribeTrainingJob");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("SIGTERM: stopping the training job digits-held"));
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(
        calls.iter().filter(|c| *c == "StopTrainingJob").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "CreateTrainingJob").count(),
        1
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("training job digits-held: Stopping")
            || stderr.contains("training job digits-held: Stopped"),
        "{stderr}"
    );
}

/// `--wait-timeout` stops the job too, and is a failure (exit 3).
#[test]
fn a_wait_timeout_stops_the_job() {
    let Some((moto, fake, dir)) = with_fake("hold") else {
        return;
    };
    let out = train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-slow", "--wait-timeout", "1"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("did not finish within --wait-timeout"));
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(calls.contains(&"StopTrainingJob".to_owned()), "{calls:?}");
}

/// A job that fails is exit 3 with SageMaker's reason, and nothing is registered.
#[test]
fn a_failed_job_is_exit_3_with_the_reason() {
    let Some((moto, fake, dir)) = with_fake("fail") else {
        return;
    };
    let out = train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-bad"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("failed: AlgorithmError: the worker exited 2"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("registry/digits-mlp").exists());
    assert!(fake.calls().1.is_empty(), "{:?}", fake.calls().1);
}

/// The user's training image of an `onnx` model, against the botocore-validated fake: the job
/// request passes SageMaker's model, and a job that fails is exit 3 with its reason and
/// registers nothing (no model.onnx is looked for).
#[test]
fn a_failing_job_of_a_users_image_registers_nothing() {
    let Some((moto, fake, dir)) = with_fake("fail") else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    let onnx = yaml.replace(
        "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
        "  family: onnx\n",
    );
    assert!(onnx.contains("family: onnx"));
    std::fs::write(&manifest, onnx).expect("write");
    let out = train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "byo-bad"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the training job byo-bad failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("model.onnx"), "{stderr}");
    assert!(!dir.path().join("registry/digits-mlp").exists());
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(calls.contains(&"CreateTrainingJob".to_owned()), "{calls:?}");
}

/// Throttling and a 5xx with an HTML body while waiting are ridden out; the job completes and
/// its model is registered (without a model package group: the fake plays training jobs only).
#[test]
fn waiting_rides_out_throttling_and_5xx() {
    let Some((moto, fake, dir)) = with_fake("throttle") else {
        return;
    };
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(
        &manifest,
        yaml.replace("  sagemaker_model_package_group: digits-mlp\n", ""),
    )
    .expect("write");
    moto.put(
        BUCKET,
        "training/digits-busy/output/model.tar.gz",
        &artifact(dir.path()),
    );
    let stdout = succeeds(train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-busy"],
    ));
    for status in [
        "InProgress (Starting)",
        "InProgress (Training)",
        "Completed (Completed)",
    ] {
        assert!(stdout.contains(status), "{status} in {stdout}");
    }
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(
        calls.iter().filter(|c| *c == "DescribeTrainingJob").count() >= 6,
        "{calls:?}"
    );
    assert_eq!(
        card(dir.path(), 1)["sagemaker"]["training_job"],
        "digits-busy"
    );
}

/// Opt-in, against a real AWS account: `cargo test -p mlops --features live-aws --test mlops
/// -- --ignored sagemaker::live`, with credentials in the environment (a profile or OIDC) and
/// `MLOPS_LIVE_MANIFEST` naming a manifest whose `training.sagemaker` points at a real role,
/// image and bucket. It trains for real (and bills), waits, and registers into a temporary
/// registry.
#[cfg(feature = "live-aws")]
#[test]
#[ignore = "trains on a real AWS account; opt in with --features live-aws and --ignored"]
fn live_training_on_a_real_account() {
    let manifest = std::env::var("MLOPS_LIVE_MANIFEST")
        .expect("set MLOPS_LIVE_MANIFEST to a manifest that trains on your account");
    let registry = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlops"));
    let out = c
        .args(["train", "--backend", "sagemaker", "--manifest", &manifest])
        .arg("--registry")
        .arg(registry.path())
        .args(["--wait-timeout", "3600"])
        .output()
        .expect("runs");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let listed = std::fs::read_dir(registry.path())
        .expect("registry")
        .count();
    assert_eq!(listed, 1, "one model registered");
}

/// `mlops image push` for the project, with `docker` as the docker command and AWS at moto.
fn image_push(docker: &Docker, project: &Path, moto: &Moto, env: &[(&str, &str)]) -> Output {
    let mut c = mlops();
    c.args(["image", "push", "--manifest"])
        .arg(project.join("mlops.yaml"))
        .arg("--docker")
        .arg(&docker.command)
        .envs(docker.env())
        .envs(env.iter().copied());
    moto.env(&mut c);
    c.output().expect("runs")
}

/// The project's manifest with the image named by neither tag nor digest (the image the train
/// workflow builds).
fn untagged(project: &Path) {
    let manifest = project.join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    assert!(yaml.contains("      tag: v1\n"));
    std::fs::write(&manifest, yaml.replace("      tag: v1\n", "")).expect("write");
}

/// `mlops image push` builds the model image from the rendered Dockerfile and this binary, runs
/// its entrypoint, logs in with ECR's token on stdin in a private docker configuration, pushes,
/// and prints the image by digest; the same inputs again build nothing; `mlops train` needs that
/// digest when the manifest names no tag, and the job runs exactly it.
#[test]
fn image_push_builds_once_and_the_job_runs_it_by_digest() {
    let Some((moto, _)) = aws() else { return };
    let Some(docker) = Docker::new() else { return };
    let dir = project();
    untagged(dir.path());

    let out = image_push(&docker, dir.path(), &moto, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (commands, calls) = docker.take();
    assert_eq!(commands, ["build", "run", "login", "push"], "{calls:?}");
    let build: Vec<&str> = calls[0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let platform = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    assert!(
        build.windows(2).any(|w| w == ["--platform", platform]),
        "{build:?}"
    );
    let run = calls[1]["args"].as_array().expect("args");
    assert_eq!(run.last().and_then(|a| a.as_str()), Some("--help"));
    // moto's token for account 123456789012 is `AWS:123456789012-auth-token`: the password went
    // to docker on stdin, in a configuration of the run's own that is gone now.
    let password = "123456789012-auth-token";
    assert_eq!(calls[2]["password"], password);
    let config = calls[2]["docker_config"]
        .as_str()
        .expect("DOCKER_CONFIG set");
    assert_eq!(calls[3]["docker_config"].as_str(), Some(config));
    assert!(!Path::new(config).exists(), "the login was deleted");
    assert!(
        calls[0]["docker_config"].is_null(),
        "build uses the user's configuration"
    );
    for c in &calls {
        assert!(!c["args"].to_string().contains(password), "{c}");
    }
    assert!(!stdout.contains(password) && !stderr.contains(password));

    let tag = calls[3]["args"][1]
        .as_str()
        .and_then(|n| n.rsplit_once(':'))
        .map(|(_, t)| t.to_owned())
        .expect("pushed name:tag");
    assert!(tag.starts_with("mlops-") && tag.len() == 22, "{tag}");
    let (status, described) = moto.json(
        "ecr",
        &format!("{ECR}.DescribeImages"),
        &format!(r#"{{"repositoryName":"{REPOSITORY}","imageIds":[{{"imageTag":"{tag}"}}]}}"#),
    );
    assert_eq!(status, 200, "{described}");
    let digest = described["imageDetails"][0]["imageDigest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("image "))
        .expect("image line");
    assert!(
        line.ends_with(&format!(".amazonaws.com/{REPOSITORY}@{digest}")),
        "{line}"
    );

    // Same Dockerfile, same binary: nothing built, logged in or pushed; the same image.
    let again = image_push(&docker, dir.path(), &moto, &[]);
    let again_out = text(&again.stdout);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(again_out.contains("not rebuilt"), "{again_out}");
    assert!(again_out.contains(&format!("image {line}")), "{again_out}");
    assert_eq!(docker.take().0, Vec::<String>::new());

    // train: no tag in the manifest and no digest given is refused before any AWS call ...
    let out = train(
        dir.path(),
        &moto,
        &moto.endpoint(),
        &["--job-name", "digits-img"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("names no tag or digest"),
        "{}",
        text(&out.stderr)
    );
    // ... and with the digest the job runs that image.
    moto.put(
        BUCKET,
        "training/digits-img/output/model.tar.gz",
        &artifact(dir.path()),
    );
    succeeds(train(
        dir.path(),
        &moto,
        &moto.endpoint(),
        &["--job-name", "digits-img", "--image-digest", &digest],
    ));
    let job = sagemaker(
        &moto,
        "DescribeTrainingJob",
        r#"{"TrainingJobName":"digits-img"}"#,
    );
    assert_eq!(job["AlgorithmSpecification"]["TrainingImage"], line);
    assert_eq!(card(dir.path(), 1)["sagemaker"]["image"], line);
}

/// Refusals of `mlops image push`: a repository ECR lacks (exit 2, before docker), a binary that
/// is not a Linux executable (exit 2, before AWS), an image whose binary does not start on the
/// base (exit 2 with the glibc hint, nothing pushed), and an OCI manifest (exit 3: SageMaker
/// runs only Docker v2 manifests).
#[test]
fn image_push_refusals() {
    let Some((moto, _)) = aws() else { return };
    let Some(docker) = Docker::new() else { return };
    let dir = project();
    untagged(dir.path());
    let manifest = dir.path().join("mlops.yaml");
    let yaml = std::fs::read_to_string(&manifest).expect("read");
    let refused = |out: Output, code: i32, needle: &str| {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    };

    std::fs::write(&manifest, yaml.replace(REPOSITORY, "digits/none")).expect("write");
    refused(
        image_push(&docker, dir.path(), &moto, &[]),
        2,
        "the ECR repository `digits/none` does not exist",
    );
    assert_eq!(docker.take().0, Vec::<String>::new());
    std::fs::write(&manifest, &yaml).expect("write");

    let script = dir.path().join("not-a-binary");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    refused(
        image_push(
            &docker,
            dir.path(),
            &moto,
            &[("MLOPS_IMAGE_BINARY", script.to_str().expect("utf-8"))],
        ),
        2,
        "is not a Linux x86_64 or aarch64 executable",
    );
    assert_eq!(docker.take().0, Vec::<String>::new());

    let glibc =
        "/usr/local/bin/mlops: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' not found";
    let out = image_push(&docker, dir.path(), &moto, &[("STANDIN_RUN_STDERR", glibc)]);
    refused(out, 2, "GLIBC_2.39");
    assert_eq!(docker.take().0, ["build", "run"], "no login, no push");
    let (status, listed) = moto.json(
        "ecr",
        &format!("{ECR}.ListImages"),
        &format!(r#"{{"repositoryName":"{REPOSITORY}"}}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(
        listed["imageIds"].as_array().map(Vec::len),
        Some(1),
        "only the fixture's v1: {listed}"
    );

    let oci = "application/vnd.oci.image.manifest.v1+json";
    refused(
        image_push(&docker, dir.path(), &moto, &[("STANDIN_MEDIA_TYPE", oci)]),
        3,
        "SageMaker runs only",
    );
}

/// The project with a 2 x 2 grid sweep, trained on SageMaker without a model package group (the
/// fake plays training and tuning jobs only).
fn swept_project() -> tempfile::TempDir {
    crate::quickstart::copy(|yaml| {
        let yaml = project_yaml(yaml)
            .replace("  epochs: 2\n", "  epochs: 4\n")
            .replace("  sagemaker_model_package_group: digits-mlp\n", "")
            .replace(
                "  sagemaker:\n    role_arn:",
                "  sweep:\n    method: grid\n    budget: 4\n    objective: { metric: accuracy }\n    parameters:\n      learning_rate: [0.0003, 0.003]\n      hidden_layers: [[16], [64]]\n  sagemaker:\n    role_arn:",
            );
        assert!(yaml.contains("  sweep:\n"), "{yaml}");
        yaml
    })
}

/// moto (ECR, S3) and the SageMaker fake playing `scenario` for a sweep: its trials run the
/// real worker (this binary) over the datasets `mlops train` uploads to moto.
fn with_tuning(scenario: &str) -> Option<(Moto, Fake, tempfile::TempDir)> {
    let (moto, _) = aws()?;
    let fake = Fake::start_with(
        scenario,
        &[
            ("FAKE_S3_ENDPOINT", &moto.endpoint()),
            ("FAKE_MLOPS", env!("CARGO_BIN_EXE_mlops")),
        ],
    )?;
    Some((moto, fake, swept_project()))
}

/// A sweep on SageMaker is one hyperparameter tuning job: a grid of categorical ranges (model
/// hyperparameters under their own keys, none left static), the objective among the metric
/// definitions; each trial a real worker run. Every trial is recorded on the card with the
/// metrics SageMaker extracted from its log, the best one's artifact is registered, and a
/// re-run finds it registered.
#[test]
fn a_sweep_runs_as_a_tuning_job_and_registers_its_best_trial() {
    let Some((moto, fake, dir)) = with_tuning("tuning") else {
        return;
    };
    let stdout = succeeds(train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-sweep-1"],
    ));
    assert!(
        stdout.contains("started tuning job digits-sweep-1")
            && stdout.contains("4 trials, 4 at once"),
        "{stdout}"
    );
    assert!(stdout.contains("sweep: 4 trials (grid)"), "{stdout}");
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(
        !calls.contains(&"CreateTrainingJob".to_owned()),
        "{calls:?}"
    );
    let state = fake.state();
    let request = &state["tunings"]["digits-sweep-1"]["request"];
    let config = &request["HyperParameterTuningJobConfig"];
    assert_eq!(config["Strategy"], "Grid");
    assert!(
        config["ResourceLimits"]
            .get("MaxNumberOfTrainingJobs")
            .is_none()
    );
    assert_eq!(
        config["HyperParameterTuningJobObjective"],
        serde_json::json!({"Type": "Maximize", "MetricName": "validation:accuracy"})
    );
    let ranges: Vec<&str> = config["ParameterRanges"]["CategoricalParameterRanges"]
        .as_array()
        .expect("categorical")
        .iter()
        .filter_map(|r| r["Name"].as_str())
        .collect();
    assert_eq!(ranges, ["learning_rate", "hyperparameters.hidden_layers"]);
    let statics = &request["TrainingJobDefinition"]["StaticHyperParameters"];
    assert!(statics.get("learning_rate").is_none() && statics.get("hyperparameters").is_some());
    // The card: every trial with the metrics SageMaker found in its log, the best registered.
    let card = card(dir.path(), 1);
    let sweep = &card["sweep"];
    let trials = sweep["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 4);
    let faked = state["trials"].as_object().expect("trials");
    assert_eq!(faked.len(), 4);
    let mut best = (0.0, 0);
    for t in trials {
        let objective = t["objective"].as_f64().expect("a number");
        assert_eq!(t["metrics"]["accuracy"].as_f64(), Some(objective), "{t}");
        if objective > best.0 {
            best = (objective, t["trial"].as_u64().expect("n"));
        }
    }
    let found: Vec<f64> = faked
        .values()
        .map(|j| {
            j["metrics"]["validation:accuracy"]
                .as_f64()
                .expect("metric")
        })
        .collect();
    let objectives: Vec<f64> = trials
        .iter()
        .filter_map(|t| t["objective"].as_f64())
        .collect();
    for o in &objectives {
        assert!(
            found.iter().any(|f| (f - o).abs() < 1e-6),
            "{o} in {found:?}"
        );
    }
    assert!(
        objectives.windows(2).any(|w| w[0] != w[1]),
        "{objectives:?}"
    );
    assert_eq!(sweep["best"].as_u64(), Some(best.1));
    let winner = &trials[best.1 as usize - 1];
    assert_eq!(card["sagemaker"]["tuning_job"], "digits-sweep-1");
    let job = card["sagemaker"]["training_job"].as_str().expect("a job");
    assert!(job.starts_with("digits-sweep-1-00"), "{job}");
    assert_eq!(
        faked[job]["tuned"]["learning_rate"],
        winner["parameters"]["learning_rate"].to_string()
    );
    assert_eq!(
        card["job"]["hyperparameters"]["hidden_layers"],
        winner["parameters"]["hidden_layers"]
    );
    assert_eq!(
        card["job"]["learning_rate"],
        winner["parameters"]["learning_rate"]
    );
    // The trial the fake ran got SageMaker's own hyperparameter too, and the worker took it.
    assert_eq!(
        faked[job]["request"]["HyperParameters"]["_tuning_objective_metric"],
        "validation:accuracy"
    );
    // Again: the tuning job's model is registered already.
    let again = succeeds(train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-sweep-1"],
    ));
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(fake.count("CreateHyperParameterTuningJob"), 1);
}

/// A trial that fails fails the sweep (exit 3, naming the trial and SageMaker's reason), and
/// nothing is registered; a tuning job name over 32 characters is refused before any call.
#[test]
fn a_failed_trial_fails_the_sweep_on_sagemaker() {
    let Some((moto, fake, dir)) = with_tuning("tuning-fail") else {
        return;
    };
    let out = train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", "digits-sweep-2"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("1 of 4 trials did not complete"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the fake fails the second trial"),
        "{stderr}"
    );
    assert!(!dir.path().join("registry/digits-mlp").exists());
    let long = train(
        dir.path(),
        &moto,
        &fake.endpoint(),
        &["--job-name", &format!("digits-{}", "x".repeat(30))],
    )
    .output()
    .expect("runs");
    assert_eq!(long.status.code(), Some(2), "{}", text(&long.stderr));
    assert!(text(&long.stderr).contains("1 to 32 letters"));
    assert_eq!(fake.count("CreateHyperParameterTuningJob"), 1);
}

/// A real SIGTERM while the trials run stops the tuning job, and with it its trials, before
/// the process exits 130.
#[test]
fn sigterm_stops_the_tuning_job_and_its_trials() {
    let Some((moto, fake, dir)) = with_tuning("tuning-hold") else {
        return;
    };
    let out = sigterm_while(
        &dir,
        &moto,
        &fake,
        "digits-sweep-3",
        "DescribeHyperParameterTuningJob",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("SIGTERM: stopping the tuning job digits-sweep-3"),
        "{stderr}"
    );
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(fake.count("StopHyperParameterTuningJob"), 1, "{calls:?}");
    let state = fake.state();
    let status = state["tunings"]["digits-sweep-3"]["status"].as_str();
    assert!(matches!(status, Some("Stopping" | "Stopped")), "{status:?}");
    for (name, trial) in state["trials"].as_object().expect("trials") {
        let s = trial["status"].as_str();
        assert!(matches!(s, Some("Stopping" | "Stopped")), "{name}: {s:?}");
    }
    assert!(!dir.path().join("registry/digits-mlp").exists());
}
