//! `mlops serve` and `mlops container`: the arguments to a [`mlops_core::serve::Request`] (a
//! registered model or an artifact, the address, the limits), then the service until SIGTERM.

use mlops_core::serve::{self, CaptureRequest, Loaded, Request};
use std::time::Duration;

use mlops_serve::Limits;

use super::error;
use crate::cli::{ContainerArgs, ContainerMode, Format, LimitArgs, ServeArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &ServeArgs, format: Format) -> Exit {
    let mut console = super::Console(format);
    let loaded = match (&args.model, &args.artifact) {
        (Some(reference), None) => {
            let registry = match super::registry(&args.registry, format) {
                Ok(r) => r,
                Err(code) => return code,
            };
            serve::from_registry(reference, &registry).map(|(loaded, _)| loaded)
        }
        (None, Some(uri)) => serve::from_artifact(uri, args.sha256.as_deref(), &mut console),
        _ => {
            error(
                "say which model to serve",
                "pass --model NAME@VERSION (from the registry) or --artifact DIR|s3://…",
            );
            return Exit::Usage;
        }
    };
    let capture = match capture(args, format) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request = |loaded: Loaded| Request {
        loaded,
        host: args.host.clone(),
        port: args.port,
        limits: limits(&args.limits),
        quiet: args.quiet,
        address_file: args.address_file.clone(),
        capture,
    };
    match loaded.and_then(|l| serve::serve(request(l), &mut console)) {
        Ok(()) => Exit::Ok,
        Err(p) => super::failed(&p),
    }
}

/// The capture asked for: the flags, else (serving a registered model, with a manifest) the
/// manifest's `monitoring.capture`; a directory there is relative to the manifest.
fn capture(args: &ServeArgs, format: Format) -> Result<Option<CaptureRequest>, Exit> {
    let c = &args.capture;
    let manifest = &args.registry.manifest;
    let configured = if args.model.is_some() && manifest.exists() {
        let (m, _) = super::valid_manifest(manifest, format, "nothing served")?;
        m.monitoring.and_then(|mo| mo.capture).map(|mut cap| {
            if !cap.destination.starts_with("s3://") {
                cap.destination = manifest
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(&cap.destination)
                    .display()
                    .to_string();
            }
            cap
        })
    } else {
        None
    };
    let Some(destination) = c
        .capture
        .clone()
        .or_else(|| configured.as_ref().map(|cap| cap.destination.clone()))
    else {
        return Ok(None);
    };
    Ok(Some(CaptureRequest {
        destination,
        sample_percent: c
            .capture_sample_percent
            .or(configured.as_ref().map(|cap| cap.sample_percent))
            .unwrap_or(100.0),
        rotate_bytes: c
            .capture_rotate_bytes
            .or(configured.as_ref().map(|cap| cap.rotate_bytes))
            .unwrap_or(64 << 20),
        rotate_seconds: c
            .capture_rotate_seconds
            .or(configured.as_ref().map(|cap| cap.rotate_seconds))
            .unwrap_or(300),
    }))
}

fn limits(args: &LimitArgs) -> Limits {
    let default = Limits::default();
    Limits {
        max_body_bytes: args.max_body_bytes,
        max_rows: args.max_rows,
        header_timeout: Duration::from_secs(args.header_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: args.max_connections,
        prediction_threads: args
            .prediction_threads
            .unwrap_or(default.prediction_threads),
    }
}

/// The container entrypoint: SageMaker runs the image with `train` or `serve`. Serving listens
/// on every interface, on the port SageMaker names in `SAGEMAKER_BIND_TO_PORT` (inference
/// pipelines) or 8080, and loads `<base>/model` (what SageMaker unpacked `model.tar.gz` into);
/// a `card.json` there, or `MLOPS_ARTIFACT_SHA256`, is verified.
pub(crate) fn container(args: &ContainerArgs, format: Format) -> Exit {
    match args.mode {
        ContainerMode::Train => super::train_worker(&args.base),
        ContainerMode::Serve => {
            let port = match std::env::var("SAGEMAKER_BIND_TO_PORT") {
                Ok(p) => match p.parse() {
                    Ok(port) => port,
                    Err(_) => {
                        error(
                            &format!("SAGEMAKER_BIND_TO_PORT is `{p}`, not a port number"),
                            "",
                        );
                        return Exit::Usage;
                    }
                },
                Err(_) => 8080,
            };
            let mut console = super::Console(format);
            let artifact = args.base.join("model").to_string_lossy().into_owned();
            let expected = std::env::var("MLOPS_ARTIFACT_SHA256").ok();
            let served = serve::from_artifact(&artifact, expected.as_deref(), &mut console)
                .and_then(|loaded| {
                    let request = Request {
                        loaded,
                        host: "0.0.0.0".to_owned(),
                        port,
                        limits: limits(&args.limits),
                        quiet: false,
                        address_file: None,
                        // On SageMaker the endpoint captures (DataCaptureConfig).
                        capture: None,
                    };
                    serve::serve(request, &mut console)
                });
            match served {
                Ok(()) => Exit::Ok,
                Err(p) => super::failed(&p),
            }
        }
    }
}
