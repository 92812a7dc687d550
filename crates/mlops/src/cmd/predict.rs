//! `mlops predict`: the arguments to a [`mlops_core::predict::Request`], then what was scored
//! (a line, or the JSON result). Exit 0 scored, 2 bad input (a row the model cannot read, an
//! existing output), 3 a service (S3, SageMaker) or the output's disk failed, or a transform
//! job's answers do not match the input, 130 stopped by a signal (a transform job with it).

use std::path::Path;
use std::time::Duration;

use mlops_aws::Poll;
use mlops_batch::Options;
use mlops_core::predict::{Backend, Transform};
use mlops_registry::Registry;

use crate::cli::{Format, PredictArgs, PredictBackend};
use crate::exit::Exit;

pub(crate) fn run(args: &PredictArgs, format: Format) -> Exit {
    let pin = match args.pin.as_deref().map(mlops_core::predict::read_pin) {
        Some(Ok(pin)) => Some(pin),
        Some(Err(p)) => return super::failed(&p),
        None => None,
    };
    let registry = match &pin {
        Some(pin) if args.registry.registry.is_none() => {
            match Registry::at(&pin.model.registry, Path::new("")) {
                Ok(r) => r,
                Err(e) => return super::failed(&e.into()),
            }
        }
        _ => match super::registry(&args.registry, format) {
            Ok(r) => r,
            Err(code) => return code,
        },
    };
    let model = match (&pin, &args.model) {
        (Some(pin), _) => pin.reference(),
        (None, Some(model)) => model.clone(),
        // clap requires one of them.
        (None, None) => return Exit::Usage,
    };
    let request = mlops_core::predict::Request {
        model: &model,
        registry: &registry,
        artifact_sha256: pin.as_ref().map(|p| p.model.artifact.sha256.clone()),
        input: args.input.clone(),
        input_format: args.input_format.map(Into::into),
        output: args.output.clone(),
        output_format: args.output_format.map(Into::into),
        id_column: args.id_column.clone(),
        overwrite: args.overwrite,
        options: Options {
            batch_rows: args.batch_rows,
            threads: args.threads.unwrap_or(Options::default().threads),
        },
        backend: match args.backend {
            PredictBackend::Local => Backend::Local,
            PredictBackend::Sagemaker => {
                let t = &args.transform;
                let Some(prefix) = t.transform_prefix.clone() else {
                    return super::failed(&mlops_core::Problem::input(
                        "--backend sagemaker needs --transform-prefix",
                        "give the s3:// prefix the job's rows and answers go under",
                    ));
                };
                Backend::SageMaker(Transform {
                    image: t
                        .image
                        .clone()
                        .or_else(|| pin.as_ref().and_then(|p| p.model.image.clone())),
                    role_arn: t.role_arn.clone(),
                    prefix,
                    instance_type: t.instance_type.clone(),
                    instance_count: t.instance_count,
                    max_payload_mb: t.max_payload_mb,
                    max_concurrent: t.max_concurrent_transforms,
                    job_name: t.job_name.clone(),
                    kms_key: t.kms_key_id.clone(),
                    poll: Poll {
                        first: Duration::from_secs_f64(t.poll_seconds.min(60.0)),
                        ..Poll::default()
                    },
                })
            }
        },
    };
    match mlops_core::predict::predict(&request, &mut super::Console(format)) {
        Ok(done) => {
            if format == Format::Json {
                match super::report_json(&done, None) {
                    Ok(json) => println!("{json}"),
                    Err(code) => return code,
                }
            }
            let actions = mlops_actions::Runtime::from_env();
            if format == Format::Github || actions.is_actions() {
                let result = actions
                    .set_output("rows", &done.rows.to_string())
                    .and_then(|()| actions.set_output("output", &done.output))
                    .and_then(|()| actions.set_output("model", &done.model))
                    .and_then(|()| {
                        actions.set_output(
                            "transform-job",
                            done.transform_job.as_deref().unwrap_or_default(),
                        )
                    })
                    .and_then(|()| {
                        actions.append_summary(&format!(
                            "### mlops predict\n\nScored {} rows of `{}` with `{}` into `{}`{}.\n",
                            done.rows,
                            done.input,
                            done.model,
                            done.output,
                            done.transform_job
                                .as_deref()
                                .map(|j| format!(" (SageMaker Batch Transform job `{j}`)"))
                                .unwrap_or_default()
                        ))
                    });
                if let Err(e) = result {
                    super::error(&format!("cannot write the step outputs: {e}"), "");
                    return Exit::Runtime;
                }
            }
            Exit::Ok
        }
        Err(p) => super::failed(&p),
    }
}
