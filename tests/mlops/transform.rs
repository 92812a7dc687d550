//! `mlops predict --backend sagemaker`: scoring as a SageMaker Batch Transform job, against the
//! SageMaker fake (botocore-validated; it does Batch Transform's work: it reads the job's input
//! from moto's S3, packs whole lines into requests of at most `MaxPayloadInMB`, posts them to a
//! real `mlops serve` of the model, and assembles the answers a line each) and against moto's
//! own SageMaker. The output equals a local run's byte for byte; a re-run attaches to the job it
//! started; an answer short of a row, a failed job and a SIGTERM leave no output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bin::{mlops, root};
use crate::fake_sagemaker::Fake;
use crate::moto::Moto;
use crate::server::Server;

const BUCKET: &str = "batch";
const ROLE: &str = "arn:aws:iam::123456789012:role/mlops-sagemaker";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops@sha256:\
                     1111111111111111111111111111111111111111111111111111111111111111";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// moto with the shared quickstart registry copied to `s3://batch/registry`, and an input of
/// the holdout repeated `times` with an id column `key` (`k<row>`), written in `dir`.
fn world(dir: &Path, times: usize) -> Option<(Moto, PathBuf)> {
    let moto = Moto::start()?;
    let registry = crate::quickstart::shared();
    for entry in walk(registry) {
        let key = entry
            .strip_prefix(registry)
            .expect("inside")
            .to_string_lossy()
            .replace('\\', "/");
        moto.put(
            BUCKET,
            &format!("registry/{key}"),
            &std::fs::read(&entry).expect("read"),
        );
    }
    let holdout =
        std::fs::read_to_string(root().join("examples/quickstart/data/digits-holdout.csv"))
            .expect("holdout");
    let (header, body) = holdout.split_once('\n').expect("header");
    let rows: Vec<&str> = body.lines().collect();
    let mut input = format!("key,{header}\n");
    for i in 0..rows.len() * times {
        input.push_str(&format!("k{},{}\n", i + 1, rows[i % rows.len()]));
    }
    let path = dir.join("in.csv");
    std::fs::write(&path, input).expect("write");
    Some((moto, path))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry"))
    {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `mlops predict --backend sagemaker` of `digits-mlp@1` from the S3 registry, SageMaker at
/// `sagemaker`.
fn on_sagemaker(
    moto: &Moto,
    sagemaker: &str,
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> Command {
    let mut c = mlops();
    c.args(["--format", "json", "predict", "--model", "digits-mlp@1"])
        .args(["--registry", &format!("s3://{BUCKET}/registry")])
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--id-column", "key", "--backend", "sagemaker"])
        .args(["--transform-prefix", &format!("s3://{BUCKET}/transform/")])
        .args(["--role-arn", ROLE, "--poll-seconds", "0.05"])
        .args(extra);
    if !extra.contains(&"--image") {
        c.args(["--image", IMAGE]);
    }
    moto.env(&mut c);
    c.env("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker);
    c
}

/// Everything a scenario runs against: a directory with the input (the holdout `times`), moto,
/// `mlops serve` of the model, and the fake playing `scenario` against both.
/// (Bind `_server` where it is taken apart: a field left out of the pattern is dropped there.)
struct Scenario {
    dir: tempfile::TempDir,
    input: PathBuf,
    moto: Moto,
    _server: Server,
    fake: Fake,
}

fn scenario(name: &str, times: usize) -> Option<Scenario> {
    let dir = tempfile::tempdir().expect("dir");
    let (moto, input) = world(dir.path(), times)?;
    let server = Server::registered(crate::quickstart::shared(), "digits-mlp@1");
    let fake = fake(name, &moto, &server)?;
    Some(Scenario {
        dir,
        input,
        moto,
        _server: server,
        fake,
    })
}

/// The fake playing `scenario`, doing its work against `moto` and `server`.
fn fake(scenario: &str, moto: &Moto, server: &Server) -> Option<Fake> {
    Fake::start_with(
        scenario,
        &[
            ("FAKE_S3_ENDPOINT", &moto.endpoint()),
            ("FAKE_SERVE_URL", &format!("http://{}", server.addr)),
        ],
    )
}

#[test]
fn a_batch_transform_writes_what_a_local_run_writes() {
    // 25 times the holdout: about 1.1 MB of rows, so several requests of at most 1 MB.
    let Some(Scenario {
        dir,
        input,
        moto,
        fake,
        _server,
    }) = scenario("transform", 25)
    else {
        return;
    };
    let local = dir.path().join("local.csv");
    let mut c = mlops();
    c.args(["predict", "--model", "digits-mlp@1", "--id-column", "key"])
        .arg("--registry")
        .arg(crate::quickstart::shared())
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&local);
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let remote = dir.path().join("remote.csv");
    let out = on_sagemaker(
        &moto,
        &fake.endpoint(),
        &input,
        &remote,
        &["--max-payload-mb", "1", "--instance-count", "2"],
    )
    .output()
    .expect("runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(
        std::fs::read(&remote).expect("remote"),
        std::fs::read(&local).expect("local"),
        "the transform's output is the local run's, byte for byte"
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["rows"], 297 * 25);
    let job = result["transform_job"]
        .as_str()
        .expect("a job name")
        .to_owned();
    assert!(job.starts_with("digits-mlp-v1-batch-"), "{job}");
    assert!(
        said.contains(&format!("started transform job {job}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("transform job {job}: Completed")),
        "{said}"
    );

    let state = fake.state();
    let violations = state["violations"].as_array().expect("violations");
    assert!(violations.is_empty(), "{violations:?}");
    let request = &state["transforms"][&job]["request"];
    assert!(
        state["transforms"][&job]["requests"]
            .as_u64()
            .expect("requests")
            >= 2,
        "several requests: {}",
        state["transforms"][&job]
    );
    assert_eq!(request["TransformInput"]["SplitType"], "Line");
    assert_eq!(request["TransformOutput"]["AssembleWith"], "Line");
    assert_eq!(request["BatchStrategy"], "MultiRecord");
    assert_eq!(request["MaxPayloadInMB"], 1);
    assert_eq!(request["TransformResources"]["InstanceCount"], 2);
    assert_eq!(request["Environment"]["MLOPS_MAX_BODY_BYTES"], "1048576");
    let model = &state["models"][request["ModelName"].as_str().expect("model")];
    assert_eq!(model["PrimaryContainer"]["Image"], IMAGE);
    assert_eq!(model["ExecutionRoleArn"], ROLE);
    let artifact = result["artifact_sha256"].as_str().expect("digest");
    assert_eq!(
        model["PrimaryContainer"]["Environment"]["MLOPS_ARTIFACT_SHA256"],
        artifact
    );
    // The rows sent hold the model's features and nothing else: no header, no id.
    let (status, answer) = moto.http("GET", &format!("/{BUCKET}/transform/{job}/rows.csv"), b"");
    assert_eq!(status, 200, "{answer}");
    let rows = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(rows.lines().count(), 297 * 25);
    assert_eq!(rows.lines().next().map(|l| l.split(',').count()), Some(64));
    assert!(!rows.contains('k'), "ids stay here");

    // Again: the job is found, not started twice, and its answers give the same output.
    let again = dir.path().join("again.parquet");
    let out = on_sagemaker(
        &moto,
        &fake.endpoint(),
        &input,
        &again,
        &["--max-payload-mb", "1", "--instance-count", "2"],
    )
    .output()
    .expect("runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!("found the transform job {job} (Completed)")),
        "{said}"
    );
    let (calls, _) = fake.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "CreateTransformJob").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls.iter().filter(|c| *c == "CreateModel").count(), 1);
    let rows = crate::tools::ml_python().map(|python| {
        let out = Command::new(python)
            .args([
                "-c",
                "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); print(t.num_rows, t.column('key')[0], t.column('label')[0])",
            ])
            .arg(&again)
            .output()
            .expect("python");
        text(&out.stdout)
    });
    if let Some(rows) = rows {
        let first_label = std::fs::read_to_string(&local).expect("local");
        let label = first_label
            .lines()
            .nth(1)
            .and_then(|l| l.split(',').nth(1))
            .expect("a label");
        assert_eq!(rows.trim(), format!("{} k1 {label}", 297 * 25));
    }
}

/// An answer short of one row: exit 3 naming the missing row, and no output.
#[test]
fn a_transform_missing_a_row_writes_nothing() {
    let Some(Scenario {
        dir,
        input,
        moto,
        fake,
        _server,
    }) = scenario("transform-drop", 1)
    else {
        return;
    };
    let output = dir.path().join("scores.csv");
    let out = on_sagemaker(&moto, &fake.endpoint(), &input, &output, &[])
        .output()
        .expect("runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("the answers hold 296 rows for 297 input rows: 1 missing"),
        "{said}"
    );
    assert!(said.contains("nothing was written"), "{said}");
    assert!(!output.exists());
    assert_eq!(names(dir.path()), ["in.csv"]);
}

/// A job that fails: exit 3 with SageMaker's reason and where the log is; no output.
#[test]
fn a_failed_transform_says_why_and_writes_nothing() {
    let Some(Scenario {
        dir,
        input,
        moto,
        fake,
        _server,
    }) = scenario("transform-fail", 1)
    else {
        return;
    };
    let output = dir.path().join("scores.jsonl");
    let out = on_sagemaker(&moto, &fake.endpoint(), &input, &output, &[])
        .output()
        .expect("runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("failed: AlgorithmError: the container exited 137"),
        "{said}"
    );
    assert!(said.contains("/aws/sagemaker/TransformJobs"), "{said}");
    assert!(!output.exists());
}

/// SIGTERM while the job runs: StopTransformJob, the job Stopping, exit 130, no output.
#[test]
fn sigterm_stops_the_transform_job() {
    let Some(Scenario {
        dir,
        input,
        moto,
        fake,
        _server,
    }) = scenario("transform-hold", 1)
    else {
        return;
    };
    let output = dir.path().join("scores.csv");
    let child = on_sagemaker(&moto, &fake.endpoint(), &input, &output, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    fake.wait_for_calls("DescribeTransformJob", 3);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("waits");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(
        said.contains("SIGTERM: the transform job digits-mlp-v1-batch-"),
        "{said}"
    );
    assert!(said.contains("was stopped; nothing was written"), "{said}");
    let (calls, violations) = fake.calls();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(calls.iter().any(|c| c == "StopTransformJob"), "{calls:?}");
    assert!(!output.exists());
}

/// moto's own SageMaker takes the requests (CreateModel, CreateTransformJob) and completes the
/// job without answers, as it does every job: that is reported, not taken for success; and
/// flags that cannot work are refused before anything is started.
#[test]
fn moto_accepts_the_job_and_a_job_without_answers_fails() {
    let dir = tempfile::tempdir().expect("dir");
    let Some((moto, input)) = world(dir.path(), 1) else {
        return;
    };
    let output = dir.path().join("scores.csv");
    let out = on_sagemaker(&moto, &moto.endpoint(), &input, &output, &[])
        .output()
        .expect("runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("completed without its answers"), "{said}");
    assert!(!output.exists());

    // No prefix, an image without a digest, a model SageMaker cannot read: exit 2, nothing
    // started.
    let mut c = mlops();
    c.args([
        "predict",
        "--model",
        "digits-mlp@1",
        "--backend",
        "sagemaker",
    ])
    .arg("--registry")
    .arg(crate::quickstart::shared())
    .arg("--input")
    .arg(&input)
    .arg("--output")
    .arg(&output);
    let out = c.output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--transform-prefix"));
    let out = c
        .args(["--transform-prefix", "s3://batch/t", "--image", IMAGE])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("which SageMaker cannot read"),
        "{}",
        text(&out.stderr)
    );
    let out = on_sagemaker(
        &moto,
        &moto.endpoint(),
        &input,
        &output,
        &["--image", "repo:latest"],
    )
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no serving image by digest"),
        "{}",
        text(&out.stderr)
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
