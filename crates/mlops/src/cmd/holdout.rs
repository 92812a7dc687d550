//! `mlops holdout`: the holdout set through a prediction service, compared with what the
//! registered model predicts offline and with the holdout metrics recorded at training time.
//! Exit 0 passed, 1 a mismatch (metric, parity, a refused batch, another artifact served),
//! 2 bad input, 3 the service failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlops_holdout::client::{Http, Policy, SageMaker, Service};
use mlops_holdout::{Plan, Report, RunError};
use mlops_manifest::model::DataFormat;
use mlops_train::data::Format as DataFileFormat;

use super::{error, valid_manifest};
use crate::cli::{Format, HoldoutArgs};
use crate::cmd::registry::open as open_registry;

use crate::exit::Exit;

/// The holdout file: `--holdout`, else the manifest's `data.holdout` (relative to the manifest);
/// an `s3://` one is downloaded into `scratch` first.
fn holdout_file(
    args: &HoldoutArgs,
    m: &mlops_manifest::Manifest,
    scratch: &Path,
    format: Format,
) -> Result<(PathBuf, String, DataFileFormat), Exit> {
    let (given, declared): (String, Option<DataFormat>) = match &args.holdout {
        Some(p) => (p.clone(), None),
        None => (m.data.holdout.path.clone(), m.data.holdout.format),
    };
    let path = if given.starts_with("s3://") {
        let uri = mlops_aws::S3Uri::parse(&given).map_err(|e| {
            error(&e.message, &e.hint);
            Exit::Usage
        })?;
        let files = mlops_core::train::download(
            &[("holdout".to_owned(), uri)],
            scratch,
            &mut super::Console(format),
        )
        .map_err(|p| super::failed(&p))?;
        files.get("holdout").cloned().unwrap_or_default()
    } else if args.holdout.is_some() {
        PathBuf::from(&given)
    } else {
        args.registry
            .manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join(&given)
    };
    let kind = DataFileFormat::of(Path::new(&given), declared).map_err(|e| {
        error(&e.to_string(), &e.hint);
        Exit::Usage
    })?;
    Ok((path, given, kind))
}

/// The service to test: a base URL, or a SageMaker endpoint's name.
enum Target {
    Url(String),
    SageMaker(String),
}

pub(crate) fn run(args: &HoldoutArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing tested") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let registry = match open_registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (loaded, card) = match mlops_core::serve::from_registry(&args.model, &registry) {
        Ok(found) => found,
        Err(p) => return super::failed(&p),
    };
    let model = loaded.identity.model.clone().unwrap_or_default();
    // The holdout set those metrics were measured on, as the entry records it.
    let recorded_dataset = card.training.datasets.get("holdout").cloned();
    let recorded: BTreeMap<String, f64> = card.metrics_of("holdout");
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            error(&format!("cannot make a temporary directory: {e}"), "");
            return Exit::Runtime;
        }
    };
    let (path, shown, data_format) = match holdout_file(args, &m, scratch.path(), format) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let h = &m.holdout;
    let metrics = if h.metrics.is_empty() {
        m.evaluation.metrics.clone()
    } else {
        h.metrics.clone()
    };
    let environment = match args.environment.as_str() {
        "production" => &m.environments.production,
        _ => &m.environments.staging,
    };
    // The flags first, then the environment's `url` or `sagemaker` endpoint.
    let target = match (&args.endpoint, &args.sagemaker_endpoint) {
        (Some(url), _) => Target::Url(url.clone()),
        (None, Some(name)) => Target::SageMaker(name.clone()),
        (None, None) => match (&environment.url, &environment.sagemaker) {
            (Some(url), _) => Target::Url(url.clone()),
            (None, Some(s)) => Target::SageMaker(s.endpoint_name.clone()),
            (None, None) => {
                error(
                    &format!("environments.{} has no url", args.environment),
                    "pass the service's URL with --endpoint, or --sagemaker-endpoint NAME",
                );
                return Exit::Usage;
            }
        },
    };
    let endpoint = match &target {
        Target::Url(url) => url.clone(),
        Target::SageMaker(name) => format!("sagemaker:{name}"),
    };
    let policy = Policy {
        timeout: Duration::from_secs(args.timeout_seconds.unwrap_or(u64::from(h.timeout_seconds))),
        retries: args.retries,
        ..Policy::default()
    };
    let rt = match super::client_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let service = match target {
        Target::Url(url) => match Http::new(&url, policy) {
            Ok(s) => Service::Http(Box::new(s)),
            Err(e) => {
                error(
                    &e,
                    "pass the service's base URL, e.g. --endpoint http://127.0.0.1:8080",
                );
                return Exit::Usage;
            }
        },
        Target::SageMaker(name) => {
            let runtime = rt.block_on(mlops_aws::SageMakerRuntime::from_env());
            Service::SageMaker(SageMaker::new(runtime, &name, policy))
        }
    };
    let signature = loaded.predictor.bundle.signature.clone();
    let expected_artifact = loaded.identity.artifact_sha256.clone();
    let plan = Plan {
        path,
        shown,
        format: data_format,
        signature,
        parity: (!args.no_parity).then(|| Arc::new(loaded.predictor)),
        batch_size: args.batch_size.unwrap_or(h.batch_size as usize).max(1),
        concurrency: args.concurrency.unwrap_or(h.concurrency as usize).max(1),
        recorded,
        metrics,
        tolerances: h.tolerances.clone(),
        model,
    };
    let served = rt.block_on(service.version());
    let mut report = match mlops_holdout::run(plan, service, &rt) {
        Err(e) => return failed(&e, args, &endpoint),
        Ok(mut r) => {
            if let Some(d) = recorded_dataset {
                r.recorded_on(d);
            }
            if let Some(sha) = served.as_ref().map(|v| v.artifact_sha256.as_str())
                && sha != expected_artifact
            {
                r.problem(format!(
                    "the service serves the artifact with SHA-256 {sha}; {} in the registry is \
                     {expected_artifact}",
                    r.model
                ));
            }
            r
        }
    };
    report.seconds = (report.seconds * 1000.0).round() / 1000.0;
    let code = show(&report, args, format);
    // The report goes into the registry beside the version it tested, where production's deploy
    // finds the one its pin names (passed or not: a failed test is evidence too).
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    match registry.record_holdout(&card.model, card.version, json.as_bytes()) {
        Ok((digest, at)) => {
            if format != Format::Json {
                eprintln!("recorded the holdout report sha256:{digest} in {at}");
            }
            code
        }
        Err(e) => {
            error(
                &format!(
                    "cannot record the holdout report in the registry: {}",
                    e.message
                ),
                &format!(
                    "production deploys only a model whose passing report the registry holds; \
                     the role this runs with must be allowed to write \
                     MODEL/VERSION/holdout/ in the registry (the rendered Terraform allows \
                     the staging role). {}",
                    e.hint
                ),
            );
            Exit::Runtime
        }
    }
}

fn failed(e: &RunError, args: &HoldoutArgs, endpoint: &str) -> Exit {
    match e {
        RunError::Data(d) => {
            error(&d.to_string(), &d.hint);
            Exit::Usage
        }
        RunError::Refused(c) => {
            error(
                &c.to_string(),
                &format!(
                    "the service at {endpoint} does not take the rows {} takes: is it serving \
                     that model?",
                    args.model
                ),
            );
            Exit::No
        }
        RunError::Service(m) => {
            error(
                m,
                &format!(
                    "is the service at {endpoint} up? (`mlops serve` prints its address; GET \
                     /ping answers 200 when it is ready)"
                ),
            );
            Exit::Runtime
        }
        RunError::Contract(m) => {
            error(
                m,
                &format!(
                    "the service at {endpoint} answered, but not with one prediction per row in \
                     the order sent: is it serving the model through `mlops serve` (or a \
                     container that keeps its contract)?"
                ),
            );
            Exit::Runtime
        }
        RunError::Scoring(m) => {
            error(
                m,
                "the registry entry may be damaged: `mlops registry show` it, or test the \
                 service alone with --no-parity",
            );
            Exit::Runtime
        }
    }
}

fn show(report: &Report, args: &HoldoutArgs, format: Format) -> Exit {
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    if let Some(file) = &args.report
        && let Err(e) = mlops_train::write_atomically(file, format!("{json}\n").as_bytes())
    {
        error(&format!("cannot write {}: {e}", file.display()), "");
        return Exit::Runtime;
    }
    match format {
        Format::Json => {
            println!("{json}");
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
        }
        Format::Human => print!("{}", report.human()),
        Format::Github => {
            print!("{}", report.human());
            for w in &report.warnings {
                println!(
                    "::warning title=mlops holdout::{}",
                    mlops_actions::escape_data(w)
                );
            }
            for f in report.failures() {
                println!(
                    "::error title=mlops holdout::{}",
                    mlops_actions::escape_data(&f)
                );
            }
        }
    }
    let actions = mlops_actions::Runtime::from_env();
    if actions.is_actions() {
        let metrics: BTreeMap<&str, Option<f64>> = report
            .metrics
            .iter()
            .map(|c| (c.metric.as_str(), c.observed))
            .collect();
        let written = actions
            .set_output("passed", if report.passed { "true" } else { "false" })
            .and_then(|()| {
                actions.set_output(
                    "metrics",
                    &serde_json::to_string(&metrics).unwrap_or_default(),
                )
            })
            .and_then(|()| actions.set_output("report", &json))
            .and_then(|()| actions.append_summary(&report.markdown()));
        if let Err(e) = written {
            eprintln!("warning: could not write the step outputs or summary: {e}");
        }
    }
    if report.passed { Exit::Ok } else { Exit::No }
}
