//! The prediction service's model and its run: a registered version (its artifact checked
//! against the digest recorded at registration) or an artifact (a directory or an `s3://` prefix,
//! as SageMaker unpacks it into `/opt/ml/model`, checked against a digest given or the card
//! beside it), served until SIGTERM. The bound address is said once the service listens, and
//! written to an address file for a program that started it (`mlops run`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlops_artifacts::artifact::{BUNDLE, MODEL_FILES, WEIGHTS};
use mlops_registry::Registry;
use mlops_serve::capture::{Capture, Settings};
use mlops_serve::{Identity, Limits, Service};
use mlops_train::card::ModelCard;
use mlops_train::predict::{ArtifactDigest, Predictor};

use crate::{Problem, Progress};

/// The card beside an artifact (a registry version directory has one).
const CARD: &str = "card.json";

/// A loaded model and who it is.
#[derive(Debug)]
pub struct Loaded {
    pub predictor: Predictor,
    pub identity: Identity,
}

fn load_failed(message: String, hint: &str) -> Problem {
    Problem::input(message, hint)
}

/// The model `reference` from the registry, verified against its card.
pub fn from_registry(reference: &str, registry: &Registry) -> Result<(Loaded, ModelCard), Problem> {
    let (files, identity, card) = registered(reference, registry)?;
    loaded(files, identity, reference).map(|l| (l, card))
}

/// The registered version `entry`, whose `card` the caller has read already, verified against
/// that card.
pub(crate) fn from_entry(
    entry: &mlops_registry::Entry,
    card: &ModelCard,
    registry: &Registry,
) -> Result<Loaded, Problem> {
    let (files, identity) = entry_files(entry, card, registry)?;
    loaded(files, identity, &entry.reference)
}

fn loaded(files: Files, identity: Identity, reference: &str) -> Result<Loaded, Problem> {
    let predictor = Predictor::from_files(&files).map_err(|e| {
        load_failed(
            format!("{}: {e}", identity.model.as_deref().unwrap_or(reference)),
            "the registered artifact cannot be loaded; train the model again",
        )
    })?;
    Ok(Loaded {
        predictor,
        identity,
    })
}

/// The bundle (`model.json`) of the model `reference` from the registry, verified against its
/// card, without loading the model itself: what reading its traffic needs (`mlops monitor`).
pub fn bundle_from_registry(
    reference: &str,
    registry: &Registry,
) -> Result<(mlops_artifacts::bundle::Bundle, Identity, ModelCard), Problem> {
    let (files, identity, card) = registered(reference, registry)?;
    let bundle = files
        .get(BUNDLE)
        .ok_or_else(|| "the artifact has no model.json".to_owned())
        .and_then(|bytes| mlops_artifacts::bundle::Bundle::from_slice(bytes))
        .map_err(|e| {
            load_failed(
                format!("{}: {e}", identity.model.as_deref().unwrap_or(reference)),
                "the registered artifact cannot be loaded; train the model again",
            )
        })?;
    Ok((bundle, identity, card))
}

/// A registered version's artifact files by name, checked against its card's digest.
type Files = BTreeMap<String, Vec<u8>>;

/// A registered version's artifact files, who it is, and its card.
fn registered(
    reference: &str,
    registry: &Registry,
) -> Result<(Files, Identity, ModelCard), Problem> {
    let entry = registry.find(reference)?;
    let card = registry.card(&entry.model, entry.version)?;
    let (files, identity) = entry_files(&entry, &card, registry)?;
    Ok((files, identity, card))
}

/// The artifact files of the registered version `entry` (whose card is `card`), and who it is.
fn entry_files(
    entry: &mlops_registry::Entry,
    card: &ModelCard,
    registry: &Registry,
) -> Result<(Files, Identity), Problem> {
    let (files, digest) = registry.artifact(&entry.model, entry.version)?;
    let identity = Identity {
        model: Some(entry.reference.clone()),
        artifact_sha256: digest.sha256,
        manifest_sha256: Some(card.manifest.sha256.clone()),
        source: entry.location.clone(),
    };
    Ok((files, identity))
}

/// The artifact at `uri` (a directory or an `s3://` prefix), checked against `expected` or the
/// digest in a `card.json` beside it; served unverified (with a warning) when there is neither.
pub fn from_artifact(
    uri: &str,
    expected: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Loaded, Problem> {
    let (files, card) = if uri.starts_with("s3://") {
        fetch_s3(uri)?
    } else {
        let dir = Path::new(uri);
        let files = mlops_train::predict::read_artifact(dir).map_err(|e| {
            load_failed(
                e,
                "--artifact is a directory holding model.json and model.safetensors (or \
                 model.onnx)",
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
    if expected.is_none() && recorded.is_none() {
        progress.notice(&format!(
            "warning: {uri} has no card.json and no --sha256 was given: serving it unverified \
             (SHA-256 {})",
            found.sha256
        ));
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

fn fetch_s3(uri: &str) -> Result<Fetched, Problem> {
    let mut base = mlops_aws::S3Uri::parse(uri)?;
    base.key = base.key.trim_end_matches('/').to_owned();
    let rt = mlops_aws::runtime()?;
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
        let missing = |u: &mlops_aws::S3Uri| {
            load_failed(
                format!("{u} does not exist"),
                "--artifact is the prefix holding model.json and model.safetensors (or \
                 model.onnx)",
            )
        };
        let u = at(BUNDLE);
        let bundle = s3.get(&u).await?.ok_or_else(|| missing(&u))?;
        files.insert(BUNDLE.to_owned(), bundle);
        // The one model file: burn's weights, else an ONNX graph.
        for name in MODEL_FILES {
            if let Some(bytes) = s3.get(&at(name)).await? {
                files.insert(name.to_owned(), bytes);
                break;
            }
        }
        if files.len() < 2 {
            return Err(missing(&at(WEIGHTS)));
        }
        let card = s3.get(&at(CARD)).await?;
        Ok((files, card))
    })
}

/// What a service is asked to do.
#[derive(Debug)]
pub struct Request {
    pub loaded: Loaded,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub limits: Limits,
    /// No line per request.
    pub quiet: bool,
    /// Where to write the bound address (`HOST:PORT` and a newline) once the service listens.
    pub address_file: Option<PathBuf>,
    /// Data capture (`--capture`, or the manifest's `monitoring.capture`).
    pub capture: Option<CaptureRequest>,
}

/// Where and how much to capture.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    /// A directory, or `s3://BUCKET/PREFIX` (files spooled locally, uploaded as each closes).
    pub destination: String,
    pub sample_percent: f64,
    pub rotate_bytes: u64,
    pub rotate_seconds: u64,
}

/// Whether any file is under `dir`.
fn holds_files(dir: &Path) -> bool {
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return true;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                _ => return true,
            }
        }
    }
    false
}

/// The capture of a service: a directory, or a spool directory whose closed files are uploaded
/// under an `s3://` prefix (by the writer thread, with a runtime of its own).
fn start_capture(
    req: &CaptureRequest,
    identity: &mlops_serve::Identity,
    progress: &mut dyn Progress,
) -> Result<(Capture, Option<PathBuf>), Problem> {
    let (dir, upload, spool) = if req.destination.starts_with("s3://") {
        let uri = mlops_aws::S3Uri::parse(&req.destination)?;
        let spool = tempfile::Builder::new()
            .prefix("mlops-capture-")
            .tempdir()
            .map_err(|e| Problem::broken(format!("cannot make a spool directory: {e}"), ""))?
            .keep();
        let root = spool.clone();
        let rt = crate::runtime::current_thread()?;
        let s3 = rt.block_on(mlops_aws::S3::from_env());
        let upload: mlops_serve::capture::Upload = Box::new(move |path: &Path| {
            let relative = path
                .strip_prefix(&root)
                .map_err(|_| format!("{} is outside the spool", path.display()))?;
            let key = format!("{}/{}", uri.key.trim_end_matches('/'), relative.display());
            let key = key.trim_start_matches('/').to_owned();
            let object = mlops_aws::S3Uri {
                bucket: uri.bucket.clone(),
                key,
            };
            rt.block_on(s3.upload(path, &object)).map_err(|e| e.message)
        });
        (spool.clone(), Some(upload), Some(spool))
    } else {
        (PathBuf::from(&req.destination), None, None)
    };
    let capture = Capture::start(
        Settings {
            dir,
            sample_percent: req.sample_percent,
            rotate_bytes: req.rotate_bytes,
            rotate_seconds: req.rotate_seconds,
            upload,
        },
        identity,
    )
    .map_err(|e| {
        Problem::input(
            format!("cannot capture: {e}"),
            "--capture takes a writable directory or s3://BUCKET/PREFIX",
        )
    })?;
    progress.notice(&format!(
        "capturing {}% of requests to {}",
        req.sample_percent, req.destination
    ));
    Ok((capture, spool))
}

/// Serves until SIGTERM (or SIGINT), answering every request in flight before it returns.
pub fn serve(req: Request, progress: &mut dyn Progress) -> Result<(), Problem> {
    let mut service = Service::new(req.loaded.predictor, req.loaded.identity, req.limits);
    service.log_requests = !req.quiet;
    let mut spool = None;
    if let Some(c) = &req.capture {
        let (capture, dir) = start_capture(c, &service.identity, progress)?;
        service = service.with_capture(capture);
        spool = dir;
    }
    let service = Arc::new(service);
    let rt = crate::runtime::multi_thread()?;
    rt.block_on(async {
        let address = format!("{}:{}", req.host, req.port);
        let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| {
            Problem::input(
                format!("cannot listen on {address}: {e}"),
                "is another service on that port? choose one with --port (0 picks a free one)",
            )
        })?;
        let bound: Option<SocketAddr> = listener.local_addr().ok();
        let shown = bound.map_or(address.clone(), |a| a.to_string());
        if let Some(file) = &req.address_file {
            mlops_train::write_atomically(file, format!("{shown}\n").as_bytes()).map_err(|e| {
                Problem::broken(
                    format!("cannot write the address file {}: {e}", file.display()),
                    "",
                )
            })?;
        }
        progress.notice(&format!(
            "serving {} (artifact SHA-256 {}) on http://{shown}",
            service
                .identity
                .model
                .as_deref()
                .unwrap_or("an unregistered model"),
            service.identity.artifact_sha256
        ));
        let served = mlops_serve::server::run(
            listener,
            service.clone(),
            mlops_serve::server::termination(),
        )
        .await;
        if let Some(capture) = service.capture() {
            // The last file closed (and uploaded) before the process ends.
            let capture_finish = || capture.finish();
            tokio::task::block_in_place(capture_finish);
            let lost = capture.counters.lost();
            if lost > 0 {
                progress.notice(&format!(
                    "capture: {lost} answered requests were not captured"
                ));
            }
        }
        if let Some(dir) = &spool {
            // Without files once every one was uploaded; kept (and said) otherwise.
            if holds_files(dir) {
                progress.notice(&format!(
                    "capture files not uploaded are kept in {}",
                    dir.display()
                ));
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        served.map_err(|e| Problem::broken(format!("the server failed: {e}"), ""))?;
        progress.notice("stopped: every request in flight was answered");
        Ok(())
    })
}

/// A model served by this process on a free port of 127.0.0.1, on a thread of its own, until
/// dropped (then it stops accepting, answers what is in flight and the thread is joined). The
/// incumbent of `mlops holdout --compare production` when no service of it is named.
#[derive(Debug)]
pub struct Background {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts serving `loaded`: listening when this returns.
    pub fn start(loaded: Loaded) -> Result<Background, Problem> {
        let failed = |e: std::io::Error| {
            Problem::broken(format!("cannot serve a model on 127.0.0.1: {e}"), "")
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
        let mut service = Service::new(loaded.predictor, loaded.identity, Limits::default());
        service.log_requests = false;
        let service = Arc::new(service);
        let rt = crate::runtime::multi_thread()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("incumbent".to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    // A failure shows as requests refused, which the test reports.
                    let _ = mlops_serve::server::run(listener, service, shutdown).await;
                });
            })
            .map_err(failed)?;
        Ok(Background {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
