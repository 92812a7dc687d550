//! The holdout test of a registered version against a prediction service: the holdout file
//! (the manifest's, or one given; an `s3://` one downloaded first), the service (a URL or a
//! SageMaker endpoint, from the request or the environment), the test itself
//! ([`mlops_holdout::run`]), the check that the service serves the registered artifact, and the
//! report recorded in the registry beside the version it tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlops_data::data::Format as DataFileFormat;
use mlops_holdout::client::{Http, Policy, SageMaker, Service};
use mlops_holdout::protocol::{Protocol, Tensor};
use mlops_holdout::run::Incumbent;
use mlops_holdout::{Plan, Report, RunError};
use mlops_manifest::Manifest;
use mlops_manifest::model::DataFormat;
use mlops_registry::Registry;

use crate::{Problem, Progress};

/// What a holdout test is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    pub manifest_path: &'a Path,
    pub registry: &'a Registry,
    /// The registered version under test.
    pub model: String,
    /// The holdout file instead of the manifest's (a path, or `s3://`).
    pub holdout: Option<String>,
    /// `staging` or `production`: whose `url` or endpoint to test when none is given.
    pub environment: &'a str,
    /// The service's base URL.
    pub endpoint: Option<String>,
    /// A SageMaker endpoint's name.
    pub sagemaker_endpoint: Option<String>,
    pub batch_size: Option<usize>,
    pub concurrency: Option<usize>,
    pub timeout_seconds: Option<u64>,
    pub retries: u32,
    /// Skip the row-by-row comparison with the model's offline predictions.
    pub no_parity: bool,
    /// How requests are written and answers read (the service's, and an incumbent's given by
    /// endpoint; the incumbent this process serves speaks them all).
    pub protocol: Protocol,
    /// Also score the version production pins on the same rows (`--compare production`).
    pub compare: Option<Compare>,
}

/// Where the version production pins comes from, and how it answers.
#[derive(Debug, Default)]
pub struct Compare {
    /// Production's pin file instead of the manifest's (`promotion.pin_file`, else
    /// `environments.production.pin_file`, in the manifest's repository).
    pub pin: Option<PathBuf>,
    /// Production's service (a base URL) instead of the pinned artifact served by this process.
    pub endpoint: Option<String>,
    /// Production's SageMaker endpoint instead.
    pub sagemaker_endpoint: Option<String>,
    /// Compare on this holdout file even when it is not the one production's version was
    /// tested on.
    pub other_file: bool,
}

/// A finished test: the report, and the version it tested (where it is recorded).
#[derive(Debug)]
pub struct Tested {
    pub report: Report,
    pub model: String,
    pub version: u64,
}

/// The holdout file: the request's, else the manifest's `data.holdout` (relative to the
/// manifest); an `s3://` one is downloaded into `scratch` first. Its path, its name as given,
/// and its format.
fn holdout_file(
    req: &Request<'_>,
    scratch: &Path,
    progress: &mut dyn Progress,
) -> Result<(PathBuf, String, DataFileFormat), Problem> {
    let m = req.manifest;
    let (given, declared): (String, Option<DataFormat>) = match &req.holdout {
        Some(p) => (p.clone(), None),
        None => (m.data.holdout.path.clone(), m.data.holdout.format),
    };
    let path = if given.starts_with("s3://") {
        let uri = mlops_aws::S3Uri::parse(&given)?;
        let files = crate::train::download(&[("holdout".to_owned(), uri)], scratch, progress)?;
        files.get("holdout").cloned().unwrap_or_default()
    } else if req.holdout.is_some() {
        PathBuf::from(&given)
    } else {
        req.manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&given)
    };
    let kind = DataFileFormat::of(Path::new(&given), declared)
        .map_err(|e| Problem::input(e.to_string(), e.hint.clone()))?;
    Ok((path, given, kind))
}

/// The service to test: a base URL, or a SageMaker endpoint's name.
enum Target {
    Url(String),
    SageMaker(String),
}

/// Runs the test; the report (passed or not).
pub fn test(req: &Request<'_>, progress: &mut dyn Progress) -> Result<Tested, Problem> {
    let m = req.manifest;
    let (loaded, card) = crate::serve::from_registry(&req.model, req.registry)?;
    let model = loaded.identity.model.clone().unwrap_or_default();
    // The holdout set those metrics were measured on, as the entry records it.
    let recorded_dataset = card.training.datasets.get("holdout").cloned();
    let recorded: BTreeMap<String, f64> = card.metrics_of("holdout");
    let scratch = tempfile::tempdir()
        .map_err(|e| Problem::broken(format!("cannot make a temporary directory: {e}"), ""))?;
    let (path, shown, data_format) = holdout_file(req, scratch.path(), progress)?;
    let h = &m.holdout;
    let metrics = if h.metrics.is_empty() {
        m.evaluation.metrics.clone()
    } else {
        h.metrics.clone()
    };
    let environment = match req.environment {
        "production" => &m.environments.production,
        _ => &m.environments.staging,
    };
    // The request first, then the environment's `url` or `sagemaker` endpoint.
    let target = match (&req.endpoint, &req.sagemaker_endpoint) {
        (Some(url), _) => Target::Url(url.clone()),
        (None, Some(name)) => Target::SageMaker(name.clone()),
        (None, None) => match (&environment.url, &environment.sagemaker) {
            (Some(url), _) => Target::Url(url.clone()),
            (None, Some(s)) => Target::SageMaker(s.endpoint_name.clone()),
            (None, None) => {
                return Err(Problem::input(
                    format!("environments.{} has no url", req.environment),
                    "pass the service's URL with --endpoint, or --sagemaker-endpoint NAME",
                ));
            }
        },
    };
    // The rows are compared with the model's offline predictions unless asked not to, or the
    // endpoint serves with a server of the user's, which mlops cannot reproduce offline.
    let own_image = environment
        .sagemaker
        .as_ref()
        .filter(|s| matches!(&target, Target::SageMaker(n) if *n == s.endpoint_name))
        .and_then(|s| s.image.clone());
    let parity_skipped = match (req.no_parity, own_image) {
        (true, _) => Some("--no-parity".to_owned()),
        (false, Some(image)) => Some(format!(
            "environments.{}.sagemaker.image serves the model with a server of its own \
             ({image}), whose predictions mlops cannot reproduce offline",
            req.environment
        )),
        (false, None) => None,
    };
    let endpoint = match &target {
        Target::Url(url) => url.clone(),
        Target::SageMaker(name) => format!("sagemaker:{name}"),
    };
    let policy = Policy {
        timeout: Duration::from_secs(req.timeout_seconds.unwrap_or(u64::from(h.timeout_seconds))),
        retries: req.retries,
        ..Policy::default()
    };
    let rt = crate::runtime::current_thread()?;
    let expected_artifact = loaded.identity.artifact_sha256.clone();
    // A SageMaker endpoint has no `/version`: which artifact it serves is read from the model
    // behind each of its variants, where `mlops deploy` recorded the digest.
    let sagemaker_identity = match &target {
        Target::SageMaker(name) => Some(rt.block_on(async {
            let sm = mlops_aws::SageMaker::from_env().await;
            sagemaker_identity(&sm, name, &req.model, &expected_artifact).await
        })),
        Target::Url(_) => None,
    };
    let name = card.model.clone();
    let service = match target {
        Target::Url(url) => Service::Http(Box::new(
            Http::speaking(&url, req.protocol, &name, policy).map_err(|e| {
                Problem::input(
                    e,
                    "pass the service's base URL, e.g. --endpoint http://127.0.0.1:8080",
                )
            })?,
        )),
        Target::SageMaker(name) => {
            let runtime = rt.block_on(mlops_aws::SageMakerRuntime::from_env());
            Service::SageMaker(SageMaker::new(runtime, &name, policy).speaking(req.protocol))
        }
    };
    let signature = loaded.predictor.bundle.signature.clone();
    let tensor = match &service {
        // A model with categorical features is sent one tensor per feature, named after it.
        Service::Http(h) if req.protocol == Protocol::V2 && signature.categorical.is_empty() => rt
            .block_on(h.v2_metadata())
            .and_then(|m| m.input(signature.features.len()))
            .map_err(|e| {
                Problem::broken(
                    format!("the V2 model at {}: {e}", h.endpoint()),
                    "check that the service serves the model under that name \
                     (GET /v2/models/NAME answers its metadata)",
                )
            })?,
        _ => Tensor::default(),
    };
    let against = match &req.compare {
        Some(c) => against(req, c, &signature, &path, &shown, &rt, policy)?,
        None => Against::default(),
    };
    let gaps = loaded.predictor.bundle.standardizer.takes_gaps();
    let plan = Plan {
        path,
        shown,
        format: data_format,
        signature,
        gaps,
        parity: parity_skipped.is_none().then(|| Arc::new(loaded.predictor)),
        batch_size: req.batch_size.unwrap_or(h.batch_size as usize).max(1),
        concurrency: req.concurrency.unwrap_or(h.concurrency as usize).max(1),
        recorded,
        metrics,
        tolerances: h.tolerances.clone(),
        model,
        slo: h.slo.clone(),
        protocol: req.protocol,
        tensor,
    };
    let served = rt.block_on(service.version());
    let mut report = mlops_holdout::run(plan, service, against.incumbent, &rt)
        .map_err(|e| failed(&e, &req.model, &endpoint))?;
    // The incumbent served here stops once the test is over.
    drop(against.local);
    for warning in against.warnings {
        report.warnings.push(warning);
    }
    if let Some(d) = recorded_dataset {
        report.recorded_on(d);
    }
    report.parity.skipped = parity_skipped;
    for problem in sagemaker_identity.into_iter().flatten() {
        report.problem(problem);
    }
    if let Some(sha) = served.as_ref().map(|v| v.artifact_sha256.as_str())
        && sha != expected_artifact
    {
        let problem = format!(
            "the service serves the artifact with SHA-256 {sha}; {} in the registry is \
             {expected_artifact}",
            report.model
        );
        report.problem(problem);
    }
    report.seconds = (report.seconds * 1000.0).round() / 1000.0;
    Ok(Tested {
        report,
        model: card.model,
        version: card.version,
    })
}

/// The incumbent of a comparison, the service of it this process runs (if any), and what the
/// report should say about the comparison.
#[derive(Default)]
struct Against {
    incumbent: Option<Incumbent>,
    local: Option<crate::serve::Background>,
    warnings: Vec<String>,
}

/// The SHA-256 of the file at `path`, read through once.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(mlops_artifacts::artifact::hex(&hasher.finalize()))
}

/// Production's pin, the version it names loaded from the registry and checked against it, the
/// holdout file checked to be the one that version was tested on, and the service it answers
/// from: production's, when the request names it, else the pinned artifact served here.
fn against(
    req: &Request<'_>,
    c: &Compare,
    signature: &mlops_train::worker::Signature,
    path: &Path,
    shown: &str,
    rt: &tokio::runtime::Runtime,
    policy: Policy,
) -> Result<Against, Problem> {
    let m = req.manifest;
    // The pin promotions change, as the gate reads it.
    let named = m
        .promotion
        .as_ref()
        .map(|p| p.pin_file.clone())
        .or_else(|| m.environments.production.pin_file.clone());
    let Some(pin_path) = c
        .pin
        .clone()
        .or_else(|| named.map(|f| crate::deploy::repository_root(req.manifest_path).join(f)))
    else {
        return Err(Problem::input(
            "--compare production needs production's pin file, and the manifest names none",
            "set `promotion.pin_file` (or `environments.production.pin_file`), or pass \
             --production-pin FILE",
        ));
    };
    let text = match std::fs::read_to_string(&pin_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Against {
                warnings: vec![format!(
                    "production pins no model yet ({} does not exist): nothing to compare with",
                    pin_path.display()
                )],
                ..Against::default()
            });
        }
        Err(e) => {
            return Err(Problem::input(
                format!("cannot read production's pin {}: {e}", pin_path.display()),
                "",
            ));
        }
    };
    let pin = mlops_artifacts::pin::Pin::parse(&text).map_err(|e| {
        Problem::input(
            format!("{}: not a pin file: {e}", pin_path.display()),
            "the pin file is written by `mlops promote`; restore it from the promotion pull \
             request",
        )
    })?;
    let reference = pin.reference();
    let (loaded, card) = crate::serve::from_registry(&reference, req.registry)?;
    if loaded.identity.artifact_sha256 != pin.model.artifact.sha256 {
        return Err(Problem::refused(
            format!(
                "production's pin names {reference} with artifact SHA-256 {}, but the registry \
                 holds {} for it",
                pin.model.artifact.sha256, loaded.identity.artifact_sha256
            ),
            "the registry and the pin disagree about what production serves; find out why \
             before promoting anything",
        ));
    }
    let theirs = &loaded.predictor.bundle.signature;
    if theirs.features != signature.features
        || theirs.task != signature.task
        || theirs.classes != signature.classes
    {
        return Err(Problem::refused(
            format!(
                "production's {reference} does not take the candidate's rows (its features, \
                 task or classes differ), so the two cannot be scored on the same requests"
            ),
            "a change of features or classes cannot be compared row for row: drop \
             --compare for this release (with `promotion.no_regression` set, the gate then \
             refuses it; a human decides by changing the manifest)",
        ));
    }
    // The file production's version was tested on: its passing report's, else its card's.
    let tested = pin
        .holdout
        .as_ref()
        .and_then(|h| {
            req.registry
                .holdout_report(&pin.model.name, pin.model.version, &h.report_sha256)
                .ok()
                .flatten()
        })
        .and_then(|bytes| serde_json::from_slice::<Report>(&bytes).ok())
        .map(|r| r.dataset)
        .or_else(|| card.training.datasets.get("holdout").cloned());
    let mut warnings = Vec::new();
    let ours = file_sha256(path)
        .map_err(|e| Problem::input(format!("cannot read the holdout file {shown}: {e}"), ""))?;
    match tested {
        Some(t) if t.sha256 != ours => {
            let said = format!(
                "`{shown}` (SHA-256 {}) is not the holdout file production's {reference} was \
                 tested on (`{}`, {} rows, SHA-256 {})",
                mlops_artifacts::short(&ours),
                t.path,
                t.rows,
                mlops_artifacts::short(&t.sha256)
            );
            if !c.other_file {
                return Err(Problem::refused(
                    format!("{said}: a comparison is made on the same file"),
                    "restore that file (or pass it with --holdout), or pass \
                     --compare-other-file to compare both models on this one (the report \
                     says so)",
                ));
            }
            warnings.push(format!(
                "{said}; compared on it as asked (--compare-other-file): both models are scored \
                 on the same rows, but not on those production's version was judged on"
            ));
        }
        Some(_) => {}
        None => warnings.push(format!(
            "production's {reference} records no holdout file: which file it was tested on is \
             not checked"
        )),
    }
    let artifact = loaded.identity.artifact_sha256.clone();
    let (service, local) = match (&c.endpoint, &c.sagemaker_endpoint) {
        (Some(url), _) => {
            let http = Http::speaking(url, req.protocol, &card.model, policy).map_err(|e| {
                Problem::input(e, "pass production's base URL with --incumbent-endpoint")
            })?;
            (Service::Http(Box::new(http)), None)
        }
        (None, Some(name)) => {
            let runtime = rt.block_on(mlops_aws::SageMakerRuntime::from_env());
            let sm = rt.block_on(mlops_aws::SageMaker::from_env());
            let problems = rt.block_on(sagemaker_identity(&sm, name, &reference, &artifact));
            if let Some(p) = problems.first() {
                return Err(Problem::refused(
                    format!("production's endpoint does not serve the pinned model: {p}"),
                    "name production's endpoint, or drop --incumbent-sagemaker-endpoint to \
                     serve the pinned artifact here",
                ));
            }
            (
                Service::SageMaker(SageMaker::new(runtime, name, policy).speaking(req.protocol)),
                None,
            )
        }
        (None, None) => {
            let local = crate::serve::Background::start(loaded)?;
            let http = Http::speaking(&local.url(), req.protocol, &card.model, policy)
                .map_err(|e| Problem::broken(format!("the local incumbent: {e}"), ""))?;
            (Service::Http(Box::new(http)), Some(local))
        }
    };
    if let Service::Http(_) = &service
        && let Some(served) = rt.block_on(service.version())
        && !pin.is_reported_by(&served)
    {
        return Err(Problem::refused(
            format!(
                "the service at {} serves {} (artifact {}), not production's pin {reference}",
                service.endpoint(),
                served.model.as_deref().unwrap_or("an unnamed model"),
                mlops_artifacts::short(&served.artifact_sha256)
            ),
            "name the service that serves production's pin, or drop --incumbent-endpoint",
        ));
    }
    Ok(Against {
        incumbent: Some(Incumbent {
            model: reference,
            artifact_sha256: artifact,
            service,
            allowances: m
                .promotion
                .as_ref()
                .map(|p| p.no_regression.clone())
                .unwrap_or_default(),
        }),
        local,
        warnings,
    })
}

/// What is wrong with the artifacts the SageMaker endpoint `name` serves, against the digest of
/// `model` in the registry: nothing when every variant serves it.
async fn sagemaker_identity(
    sm: &mlops_aws::SageMaker,
    name: &str,
    model: &str,
    expected: &str,
) -> Vec<String> {
    let variants = match sm.served(name).await {
        Ok(Some(v)) => v,
        Ok(None) => return vec![format!("the SageMaker endpoint {name} does not exist")],
        Err(e) => {
            return vec![format!(
                "cannot tell which artifact the SageMaker endpoint {name} serves: {}",
                e.message
            )];
        }
    };
    if variants.is_empty() {
        return vec![format!("the SageMaker endpoint {name} serves no model")];
    }
    variants
        .iter()
        .filter_map(|v| match &v.artifact_sha256 {
            Some(sha) if sha == expected => None,
            Some(sha) => Some(format!(
                "variant {} of {name} serves the model {} with artifact SHA-256 {sha}; {model} \
                 in the registry is {expected}",
                v.variant, v.model
            )),
            None => Some(format!(
                "variant {} of {name} serves the model {}, which does not say which artifact it \
                 holds (no MLOPS_ARTIFACT_SHA256 in its environment): deploy it with `mlops \
                 deploy`",
                v.variant, v.model
            )),
        })
        .collect()
}

/// Records the report in the registry beside the version it tested, where production's deploy
/// finds the one its pin names (passed or not: a failed test is evidence too). Its digest and
/// where it went.
pub fn record(registry: &Registry, tested: &Tested) -> Result<(String, String), Problem> {
    let json = serde_json::to_string_pretty(&tested.report).unwrap_or_default();
    registry
        .record_holdout(&tested.model, tested.version, json.as_bytes())
        .map_err(|e| {
            Problem::broken(
                format!(
                    "cannot record the holdout report in the registry: {}",
                    e.message
                ),
                format!(
                    "production deploys only a model whose passing report the registry holds; \
                     the role this runs with must be allowed to write \
                     MODEL/VERSION/holdout/ in the registry (the rendered Terraform allows \
                     the staging role). {}",
                    e.hint
                ),
            )
        })
}

/// Why the test could not finish, with what to check.
fn failed(e: &RunError, model: &str, endpoint: &str) -> Problem {
    match e {
        RunError::Data(d) => Problem::input(d.to_string(), d.hint.clone()),
        RunError::Refused(c) => Problem::refused(
            c.to_string(),
            format!(
                "the service at {endpoint} does not take the rows {model} takes: is it serving \
                 that model?"
            ),
        ),
        RunError::Service(m) => Problem::broken(
            m.clone(),
            format!(
                "is the service at {endpoint} up? (`mlops serve` prints its address; GET \
                 /ping answers 200 when it is ready)"
            ),
        ),
        RunError::Contract(m) => Problem::broken(
            m.clone(),
            format!(
                "the service at {endpoint} answered, but not with one prediction per row in \
                 the order sent: is it serving the model through `mlops serve` (or a \
                 container that keeps its contract)?"
            ),
        ),
        RunError::Scoring(m) => Problem::broken(
            m.clone(),
            "the registry entry may be damaged: `mlops registry show` it, or test the \
             service alone with --no-parity",
        ),
    }
}
