//! `mlops serve`: the prediction service for a registered model (`--model REF`, its artifact
//! checked against the digest recorded at registration) or an artifact (`--artifact DIR|s3://`,
//! as SageMaker unpacks it into `/opt/ml/model`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mlops_serve::{Identity, Limits, Service};
use mlops_train::card::ModelCard;
use mlops_train::predict::{ARTIFACT_FILES, ArtifactDigest, Predictor};

use super::error;
use crate::cli::{ContainerArgs, ContainerMode, Format, RegistryArgs, ServeArgs, TrainWorkerArgs};
use crate::cmd::registry::open as open_registry;
use crate::exit::Exit;

/// The card beside an artifact (a registry version directory has one).
const CARD: &str = "card.json";

/// A loaded model and who it is.
pub(crate) struct Loaded {
    pub predictor: Predictor,
    pub identity: Identity,
}

fn load_failed(message: String, hint: &str) -> Exit {
    error(&message, hint);
    Exit::Usage
}

/// The model of `--model REF` from the registry, verified against its card.
pub(crate) fn from_registry(
    reference: &str,
    registry: &mlops_train::registry::Registry,
) -> Result<(Loaded, ModelCard), Exit> {
    let fail = |e: mlops_train::registry::RegistryError| {
        error(&e.message, &e.hint);
        if e.user { Exit::Usage } else { Exit::Runtime }
    };
    let entry = registry.find(reference).map_err(fail)?;
    let (files, digest) = registry
        .artifact(&entry.model, entry.version)
        .map_err(fail)?;
    let card = registry.card(&entry.model, entry.version).map_err(fail)?;
    let predictor = Predictor::from_files(&files).map_err(|e| {
        load_failed(
            format!("{}: {e}", entry.reference),
            "the registered artifact cannot be loaded; train the model again",
        )
    })?;
    let identity = Identity {
        model: Some(entry.reference.clone()),
        artifact_sha256: digest.sha256,
        manifest_sha256: Some(card.manifest.sha256.clone()),
        source: entry.location,
    };
    Ok((
        Loaded {
            predictor,
            identity,
        },
        card,
    ))
}

/// The artifact at `uri` (a directory or an `s3://` prefix), checked against `expected` or the
/// digest in a `card.json` beside it.
fn from_artifact(uri: &str, expected: Option<&str>, format: Format) -> Result<Loaded, Exit> {
    let (files, card) = if uri.starts_with("s3://") {
        fetch_s3(uri)?
    } else {
        let dir = Path::new(uri);
        let files = mlops_train::predict::read_artifact(dir).map_err(|e| {
            load_failed(
                e,
                "--artifact is a directory holding model.json and model.safetensors",
            )
        })?;
        let card = match std::fs::read(dir.join(CARD)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(load_failed(format!("{uri}/{CARD}: {e}"), "")),
        };
        (files, card)
    };
    let card: Option<ModelCard> = match card {
        Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            load_failed(
                format!("{uri}/{CARD} is not a model card: {e}"),
                "remove it or restore it from the registry",
            )
        })?),
        None => None,
    };
    let found = ArtifactDigest::of(&files);
    let recorded = card
        .as_ref()
        .and_then(|c| c.artifact.as_ref())
        .map(|a| a.sha256.as_str());
    for (what, want) in [("--sha256", expected), ("its card.json", recorded)] {
        if let Some(want) = want
            && want != found.sha256
        {
            return Err(load_failed(
                format!(
                    "the artifact at {uri} has SHA-256 {}, but {what} says {want}",
                    found.sha256
                ),
                "the files changed since they were registered; serve the registered model",
            ));
        }
    }
    if expected.is_none() && recorded.is_none() && format != Format::Json {
        eprintln!(
            "warning: {uri} has no card.json and no --sha256 was given: serving it unverified \
             (SHA-256 {})",
            found.sha256
        );
    }
    let predictor = Predictor::from_files(&files)
        .map_err(|e| load_failed(format!("{uri}: {e}"), "is this an mlops model artifact?"))?;
    Ok(Loaded {
        predictor,
        identity: Identity {
            model: card.as_ref().map(|c| c.reference.clone()),
            artifact_sha256: found.sha256,
            manifest_sha256: card.as_ref().map(|c| c.manifest.sha256.clone()),
            source: uri.to_owned(),
        },
    })
}

type Fetched = (BTreeMap<String, Vec<u8>>, Option<Vec<u8>>);

fn fetch_s3(uri: &str) -> Result<Fetched, Exit> {
    let aws = |e: mlops_aws::AwsError| super::aws_failed(&e);
    let mut base = mlops_aws::S3Uri::parse(uri).map_err(aws)?;
    base.key = base.key.trim_end_matches('/').to_owned();
    let rt = mlops_aws::runtime().map_err(aws)?;
    rt.block_on(async {
        let s3 = mlops_aws::S3::from_env().await;
        let at = |name: &str| mlops_aws::S3Uri {
            bucket: base.bucket.clone(),
            key: if base.key.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", base.key)
            },
        };
        let mut files = BTreeMap::new();
        for name in ARTIFACT_FILES {
            let u = at(name);
            let bytes = s3.get(&u).await.map_err(aws)?.ok_or_else(|| {
                load_failed(
                    format!("{u} does not exist"),
                    "--artifact is the prefix holding model.json and model.safetensors",
                )
            })?;
            files.insert(name.to_owned(), bytes);
        }
        let card = s3.get(&at(CARD)).await.map_err(aws)?;
        Ok((files, card))
    })
}

pub(crate) fn run(args: &ServeArgs, format: Format) -> Exit {
    let loaded = match (&args.model, &args.artifact) {
        (Some(reference), None) => {
            let registry = match open_registry(&args.registry, format) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match from_registry(reference, &registry) {
                Ok((loaded, _)) => loaded,
                Err(code) => return code,
            }
        }
        (None, Some(uri)) => match from_artifact(uri, args.sha256.as_deref(), format) {
            Ok(l) => l,
            Err(code) => return code,
        },
        _ => {
            error(
                "say which model to serve",
                "pass --model NAME@VERSION (from the registry) or --artifact DIR|s3://…",
            );
            return Exit::Usage;
        }
    };
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_rows: args.max_rows,
    };
    let mut service = Service::new(loaded.predictor, loaded.identity, limits);
    service.log_requests = !args.quiet;
    let service = Arc::new(service);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let address = format!("{}:{}", args.host, args.port);
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                error(
                    &format!("cannot listen on {address}: {e}"),
                    "is another service on that port? choose one with --port (0 picks a free one)",
                );
                return Exit::Usage;
            }
        };
        let bound = listener
            .local_addr()
            .map_or(address.clone(), |a| a.to_string());
        eprintln!(
            "serving {} (artifact SHA-256 {}) on http://{bound}",
            service
                .identity
                .model
                .as_deref()
                .unwrap_or("an unregistered model"),
            service.identity.artifact_sha256
        );
        match mlops_serve::server::run(listener, service, mlops_serve::server::termination()).await
        {
            Ok(()) => {
                eprintln!("stopped: every request in flight was answered");
                Exit::Ok
            }
            Err(e) => {
                error(&format!("the server failed: {e}"), "");
                Exit::Runtime
            }
        }
    })
}

/// The container entrypoint: SageMaker runs the image with `train` or `serve`. Serving listens
/// on every interface, on the port SageMaker names in `SAGEMAKER_BIND_TO_PORT` (inference
/// pipelines) or 8080, and loads `<base>/model` (what SageMaker unpacked `model.tar.gz` into);
/// a `card.json` there, or `MLOPS_ARTIFACT_SHA256`, is verified.
pub(crate) fn container(args: &ContainerArgs, format: Format) -> Exit {
    match args.mode {
        ContainerMode::Train => crate::cmd::train::worker(&TrainWorkerArgs {
            base: args.base.clone(),
        }),
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
            let limits = Limits::default();
            run(
                &ServeArgs {
                    model: None,
                    artifact: Some(args.base.join("model").to_string_lossy().into_owned()),
                    sha256: std::env::var("MLOPS_ARTIFACT_SHA256").ok(),
                    host: "0.0.0.0".to_owned(),
                    port,
                    max_body_bytes: limits.max_body_bytes,
                    max_rows: limits.max_rows,
                    quiet: false,
                    registry: RegistryArgs {
                        registry: None,
                        manifest: "mlops.yaml".into(),
                    },
                },
                format,
            )
        }
    }
}
