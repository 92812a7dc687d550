//! `mlops predict --backend sagemaker`: the scoring runs as a SageMaker Batch Transform job on
//! the model's serving image, and the output is the one a local run writes.
//!
//! The input is read here as the model reads it (a row it cannot take fails here, naming its
//! line, before anything is started) and uploaded as headerless CSV rows of the model's features
//! under `--transform-prefix`; the job (named from what it scores and how, so a re-run finds the
//! one an earlier run started) sends them to the container several lines per request and
//! assembles its JSON answers a line per request; those answers, joined with the input's ids,
//! become the output, which is put in place only if it holds exactly one row per input row.
//! SIGINT or SIGTERM stops the job (`StopTransformJob`) before the process exits.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlops_artifacts::artifact::sha256_hex;
use mlops_aws::{ModelSpec, Poll, S3, S3Uri, SageMaker, TransformSpec, TransformState};
use mlops_batch::transform::{ANSWERS_MEDIA, ROWS_MEDIA};
use mlops_batch::{Layout, Writer};
use mlops_github::pin::PinnedModel;

use crate::predict::{Predicted, Request, Transform};
use crate::{Problem, Progress};

/// How long a stop may take to be acknowledged before the job is reported as maybe running.
const STOP_PATIENCE: Duration = Duration::from_secs(300);

/// The rows' object name under the job's prefix (the answers are `rows.csv.out`).
const ROWS: &str = "rows.csv";

/// What the job is made of, by name.
#[derive(Debug)]
struct Plan {
    model: ModelSpec,
    job: TransformSpec,
    /// The `s3://` object SageMaker assembles the answers into.
    answers: String,
}

/// The plan for scoring the rows of digest `input_sha256` with the registered `model` served by
/// `image`.
fn plan(
    t: &Transform,
    model: &PinnedModel,
    image: &str,
    input_sha256: &str,
) -> Result<Plan, Problem> {
    let (model_name, version) = (model.name.as_str(), model.version);
    let reference = format!("{model_name}@{version}");
    let (data, artifact_sha256) = (model.artifact.uri.as_str(), model.artifact.sha256.as_str());
    let prefix = S3Uri::parse(&t.prefix).map_err(|e| {
        Problem::input(
            format!("--transform-prefix: {}", e.message),
            "give an s3:// prefix the job's role may read and write",
        )
    })?;
    let role = t.role_arn.clone().ok_or_else(|| {
        Problem::input(
            "no IAM role for the SageMaker model and transform job",
            "pass --role-arn (MLOPS_ROLE_ARN): the role terraform/sagemaker.tf creates",
        )
    })?;
    // Everything the model serves with goes into its name; everything the job does into the
    // job's: the same inputs, the same names.
    let model_key = sha256_hex(format!("{reference}|{artifact_sha256}|{image}|{role}").as_bytes());
    let spec = ModelSpec {
        name: crate::deploy::endpoint::name(
            &format!("{model_name}-v{version}"),
            model_key.get(..10).unwrap_or(&model_key),
        ),
        image: image.to_owned(),
        data_prefix: format!("{}/", data.trim_end_matches('/')),
        role_arn: role,
        environment: BTreeMap::from([(
            "MLOPS_ARTIFACT_SHA256".to_owned(),
            artifact_sha256.to_owned(),
        )]),
        tags: BTreeMap::from([
            ("mlops:model-version".to_owned(), reference.clone()),
            (
                "mlops:artifact-sha256".to_owned(),
                artifact_sha256.to_owned(),
            ),
        ]),
    };
    let job_key = sha256_hex(
        format!(
            "{}|{input_sha256}|{}|{}|{}|{}|{}",
            spec.name,
            t.instance_type,
            t.instance_count,
            t.max_payload_mb,
            t.max_concurrent,
            prefix
        )
        .as_bytes(),
    );
    let name = match &t.job_name {
        Some(n) => {
            if !crate::sagemaker::valid_job_name(n) {
                return Err(Problem::input(
                    format!("--job-name `{n}` is not a SageMaker job name"),
                    "use 1 to 63 letters, digits and single hyphens, starting and ending with a \
                     letter or digit",
                ));
            }
            n.clone()
        }
        None => crate::deploy::endpoint::name(
            &format!("{model_name}-v{version}-batch"),
            job_key.get(..10).unwrap_or(&job_key),
        ),
    };
    let base = format!(
        "s3://{}/{}",
        prefix.bucket,
        format!("{}/{name}", prefix.key.trim_end_matches('/')).trim_start_matches('/')
    );
    let mut tags = spec.tags.clone();
    tags.insert("mlops:input-sha256".to_owned(), input_sha256.to_owned());
    if let Some(run) = crate::promote::workflow_run_url() {
        tags.insert("mlops:workflow-run".to_owned(), run);
    }
    let job = TransformSpec {
        name,
        model: spec.name.clone(),
        input: format!("{base}/{ROWS}"),
        content_type: ROWS_MEDIA.to_owned(),
        output_prefix: format!("{base}/out/"),
        accept: ANSWERS_MEDIA.to_owned(),
        output_kms_key: t.kms_key.clone(),
        instance_type: t.instance_type.clone(),
        instance_count: t.instance_count,
        volume_kms_key: t.kms_key.clone(),
        max_payload_mb: t.max_payload_mb,
        max_concurrent: t.max_concurrent,
        environment: limits(t.max_payload_mb),
        tags,
    };
    Ok(Plan {
        answers: format!("{base}/out/{ROWS}.out"),
        model: spec,
        job,
    })
}

/// The serving container's limits for a job whose requests are up to `mb` MB (SageMaker
/// packs as many rows as fit): the body's, and rows enough for the shortest ones (`1\n`).
fn limits(mb: i32) -> BTreeMap<String, String> {
    let bytes = u64::try_from(mb.max(1)).unwrap_or(1) * 1024 * 1024;
    BTreeMap::from([
        ("MLOPS_MAX_BODY_BYTES".to_owned(), bytes.to_string()),
        ("MLOPS_MAX_ROWS".to_owned(), (bytes / 2).to_string()),
    ])
}

/// Scores `req.input` with a Batch Transform job (see the module's documentation).
pub(crate) fn run(
    req: &Request<'_>,
    t: &Transform,
    cancel: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<Predicted, Problem> {
    let started = Instant::now();
    let output_format = crate::predict::format_of(&req.output, req.output_format)?;
    let input_format = crate::predict::format_of(&req.input, req.input_format)?;
    crate::predict::refuse_to_clobber(req)?;
    let entry = req.registry.find(req.model)?;
    let card = req.registry.card(&entry.model, entry.version)?;
    let pin = crate::promote::pin_of(req.registry, &entry, &card, t.image.clone())?;
    let Some(image) = pin.model.image.clone().filter(|i| i.contains("@sha256:")) else {
        return Err(Problem::input(
            format!("{} has no serving image by digest", entry.reference),
            "pass --image REPOSITORY@sha256:... (`mlops image push` prints it)",
        ));
    };
    if !entry.location.starts_with("s3://") {
        return Err(Problem::input(
            format!(
                "{} is in {}, which SageMaker cannot read",
                entry.reference, entry.location
            ),
            "score with a model of an S3 registry (`registry.path: s3://...`), or run locally",
        ));
    }
    let loaded = crate::serve::from_entry(&entry, &card, req.registry)?;
    crate::predict::check_digest(req, &entry.reference, &loaded.identity.artifact_sha256)?;
    let predictor = &loaded.predictor;
    let signature = &predictor.bundle.signature;
    let layout = Layout::new(req.id_column.as_deref(), signature.classes.as_deref())
        .map_err(|e| Problem::input(e, "name another --id-column"))?;
    let scratch = tempfile::tempdir()
        .map_err(|e| Problem::broken(format!("cannot make a temporary directory: {e}"), ""))?;
    let input_path = crate::predict::fetch_input(&req.input, scratch.path(), progress)?;
    let rows_path = scratch.path().join(ROWS);
    let ids_path = scratch.path().join("ids.jsonl");
    let prepared = {
        let file = |p: &Path| {
            std::fs::File::create(p)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| Problem::broken(format!("{}: {e}", p.display()), ""))
        };
        let (mut rows, mut ids) = (file(&rows_path)?, file(&ids_path)?);
        let input = mlops_batch::Input {
            path: &input_path,
            shown: &req.input,
            format: input_format,
            id_column: req.id_column.as_deref(),
        };
        let prepared =
            mlops_batch::transform::prepare(predictor, input, &mut rows, &mut ids, cancel)
                .map_err(|f| crate::predict::failure(f, &req.output))?;
        for (w, p) in [(rows, &rows_path), (ids, &ids_path)] {
            w.into_inner()
                .map_err(|e| e.error().to_string())
                .and_then(|f| f.sync_all().map_err(|e| e.to_string()))
                .map_err(|e| Problem::broken(format!("{}: {e}", p.display()), ""))?;
        }
        prepared
    };
    let rows = prepared.input.rows;
    if rows == 0 {
        return Err(Problem::input(
            format!("{} has no rows to score", req.input),
            "",
        ));
    }
    let plan = plan(t, &pin.model, &image, &prepared.input.sha256)?;
    let answers_path = scratch.path().join("answers.out");
    let rt = crate::runtime::current_thread()?;
    rt.block_on(transform(
        &plan,
        &rows_path,
        &answers_path,
        t.poll,
        cancel,
        progress,
    ))?;
    // The answers, with the input's ids, as the output a local run writes.
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| Problem::broken(format!("{}: {e}", p.display()), ""))
    };
    let (mut answers, mut ids) = (open(&answers_path)?, open(&ids_path)?);
    let assembled = |writer: &mut Writer| {
        mlops_batch::transform::assemble(
            &mut answers,
            &mut ids,
            &layout,
            output_format,
            writer,
            rows,
        )
        .map(|rows| ((), rows))
        .map_err(|m| {
        Problem::broken(
            format!(
                "the transform job {}'s answers ({}) do not match the input: {m}; nothing was \
                 written to {}",
                plan.job.name, plan.answers, req.output
            ),
            format!(
                "see the job's log (CloudWatch, log group /aws/sagemaker/TransformJobs, streams \
                 {}/*); run again with another --job-name to score anew",
                plan.job.name
            ),
        )
        })
    };
    crate::predict::write_whole(
        req,
        output_format,
        &layout,
        scratch.path(),
        cancel,
        assembled,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    progress.step(&format!(
        "scored {rows} rows of {} with {} on SageMaker (transform job {}) into {} ({seconds:.1} s)",
        req.input, entry.reference, plan.job.name, req.output
    ));
    Ok(Predicted {
        model: entry.reference.clone(),
        artifact_sha256: loaded.identity.artifact_sha256.clone(),
        input: req.input.clone(),
        input_sha256: prepared.input.sha256,
        output: req.output.clone(),
        output_format,
        rows,
        seconds,
        rows_per_second: rows as f64 / seconds.max(1e-9),
        peak_rss_bytes: None,
        transform_job: Some(plan.job.name.clone()),
    })
}

/// Runs the job to its end (or finds the one an earlier run started) and downloads its
/// answers to `answers`; a signal stops the job.
async fn transform(
    plan: &Plan,
    rows: &Path,
    answers: &Path,
    poll: Poll,
    cancel: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<(), Problem> {
    let sagemaker = SageMaker::from_env().await;
    let s3 = S3::from_env().await;
    let name = &plan.job.name;
    let signalled = async {
        while !cancel.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::pin!(signalled);
    let found = sagemaker.transform_job(name).await?;
    match &found {
        Some(state) => {
            if state.input.as_deref() != Some(plan.job.input.as_str()) {
                return Err(Problem::input(
                    format!(
                        "the transform job {name} exists and scored {}, not {}",
                        state.input.as_deref().unwrap_or("another input"),
                        plan.job.input
                    ),
                    "name another --job-name, or leave it out to have one derived",
                ));
            }
            progress.step(&format!(
                "found the transform job {name} ({}) started by an earlier run",
                state.status
            ));
        }
        None => {
            let start = async {
                s3.upload(rows, &S3Uri::parse(&plan.job.input)?).await?;
                if !sagemaker.model_exists(&plan.model.name).await? {
                    sagemaker.create_model(&plan.model).await?;
                }
                sagemaker.create_transform_job(&plan.job).await
            };
            let arn = tokio::select! {
                r = start => r.map_err(Problem::from)?,
                () = &mut signalled => {
                    // The job may have been created as the signal came.
                    return Err(stop(&sagemaker, name, poll, progress).await);
                }
            };
            progress.step(&format!(
                "started transform job {name} ({arn}) on {} x {}",
                plan.job.instance_count, plan.job.instance_type
            ));
        }
    }
    let mut shown = Vec::new();
    let end = tokio::select! {
        r = sagemaker.wait_transform(name, poll, |s: &TransformState| shown.push(s.status.clone())) => r?,
        () = &mut signalled => {
            for s in shown.drain(..) {
                progress.step(&format!("transform job {name}: {s}"));
            }
            return Err(stop(&sagemaker, name, poll, progress).await);
        }
    };
    for s in shown {
        progress.step(&format!("transform job {name}: {s}"));
    }
    match end.status.as_str() {
        "Completed" => {}
        "Failed" => {
            return Err(Problem::broken(
                format!(
                    "the transform job {name} failed: {}",
                    end.failure_reason
                        .as_deref()
                        .unwrap_or("SageMaker gave no reason")
                ),
                format!(
                    "the job's log is in CloudWatch, log group /aws/sagemaker/TransformJobs, \
                     streams {name}/*; run again with another --job-name once it is mended"
                ),
            ));
        }
        other => {
            return Err(Problem::broken(
                format!("the transform job {name} ended {other}, without answers"),
                "it was stopped outside this run; run again with another --job-name to score anew",
            ));
        }
    }
    let uri = S3Uri::parse(&plan.answers)?;
    if !s3.exists(&uri).await? {
        return Err(Problem::broken(
            format!(
                "the transform job {name} completed without its answers at {}; nothing was written",
                plan.answers
            ),
            "see the job's log (CloudWatch, log group /aws/sagemaker/TransformJobs)",
        ));
    }
    let bytes = s3.download(&uri, answers).await?;
    progress.step(&format!("downloaded {} ({bytes} bytes)", plan.answers));
    Ok(())
}

/// Stops the job after a signal: the problem to exit with.
async fn stop(
    sagemaker: &SageMaker,
    name: &str,
    poll: Poll,
    progress: &mut dyn Progress,
) -> Problem {
    let quick = Poll {
        first: poll.first.min(Duration::from_secs(2)),
        max: poll.max.min(Duration::from_secs(10)),
        failures: poll.failures,
    };
    match sagemaker.stop_transform(name, quick, STOP_PATIENCE).await {
        Ok(state) => {
            progress.step(&format!("transform job {name}: {}", state.status));
            Problem::cancelled(
                format!("the transform job {name} was stopped; nothing was written"),
                "",
            )
        }
        Err(e) if e.kind == mlops_aws::Kind::Missing => Problem::cancelled(
            format!("no transform job {name} was started; nothing was written"),
            "",
        ),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use mlops_github::pin::Artifact;

    use super::*;

    fn transform() -> Transform {
        Transform {
            image: None,
            role_arn: Some("arn:aws:iam::123456789012:role/r".into()),
            prefix: "s3://bucket/batch/".into(),
            instance_type: "ml.m5.large".into(),
            instance_count: 1,
            max_payload_mb: 6,
            max_concurrent: 2,
            job_name: None,
            kms_key: None,
            poll: Poll::default(),
        }
    }

    fn model() -> PinnedModel {
        PinnedModel {
            name: "digits-mlp".into(),
            version: 3,
            registry: "s3://bucket/registry".into(),
            artifact: Artifact {
                uri: "s3://bucket/registry/digits-mlp/3".into(),
                sha256: "aa".into(),
            },
            image: None,
        }
    }

    fn planned(t: &Transform, input: &str) -> Plan {
        plan(
            t,
            &model(),
            "1.dkr.ecr.us-east-1.amazonaws.com/m@sha256:bb",
            input,
        )
        .expect("plan")
    }

    #[test]
    fn names_come_from_what_is_scored_and_how() {
        let t = transform();
        let a = planned(&t, "cc");
        assert_eq!(a.job.name, planned(&t, "cc").job.name, "stable");
        assert!(
            a.job.name.starts_with("digits-mlp-v3-batch-"),
            "{}",
            a.job.name
        );
        assert!(
            crate::sagemaker::valid_job_name(&a.job.name)
                && crate::sagemaker::valid_job_name(&a.model.name)
        );
        assert_ne!(a.job.name, planned(&t, "dd").job.name, "another input");
        let more = Transform {
            instance_count: 2,
            ..transform()
        };
        assert_ne!(a.job.name, planned(&more, "cc").job.name, "other capacity");
        assert_eq!(a.model.name, planned(&more, "cc").model.name, "one model");
        assert_eq!(
            a.job.input,
            format!("s3://bucket/batch/{}/rows.csv", a.job.name)
        );
        assert_eq!(
            a.answers,
            format!("s3://bucket/batch/{}/out/rows.csv.out", a.job.name)
        );
        assert_eq!(a.model.data_prefix, "s3://bucket/registry/digits-mlp/3/");
        assert_eq!(a.job.tags["mlops:input-sha256"], "cc");
        // The container takes the requests SageMaker packs (its default limits are 6 MB and
        // 100,000 rows, fewer than 6 MB of short rows).
        assert_eq!(a.job.environment["MLOPS_MAX_BODY_BYTES"], "6291456");
        assert_eq!(a.job.environment["MLOPS_MAX_ROWS"], "3145728");
    }

    #[test]
    fn a_bad_prefix_job_name_or_missing_role_is_the_users_to_mend() {
        let bad = Transform {
            prefix: "/tmp/x".into(),
            ..transform()
        };
        let p = plan(&bad, &model(), "i@sha256:b", "c").expect_err("prefix");
        assert!(p.message.starts_with("--transform-prefix"), "{p:?}");
        let named = Transform {
            job_name: Some("-bad".into()),
            ..transform()
        };
        let p = plan(&named, &model(), "i@sha256:b", "c").expect_err("name");
        assert!(p.message.contains("not a SageMaker job name"), "{p:?}");
        let roleless = Transform {
            role_arn: None,
            ..transform()
        };
        let p = plan(&roleless, &model(), "i@sha256:b", "c").expect_err("role");
        assert!(p.hint.contains("--role-arn"), "{p:?}");
        let at_root = Transform {
            prefix: "s3://bucket".into(),
            ..transform()
        };
        let p = plan(&at_root, &model(), "i@sha256:b", "c").expect("plan");
        assert_eq!(p.job.input, format!("s3://bucket/{}/rows.csv", p.job.name));
    }
}
