//! `mlops deploy`: put a model behind an environment and prove it is serving.
//!
//! Production deploys exactly the pin file at the checked-out commit (the file the approved
//! promotion pull request changed); staging deploys the `--model` given. Before anything moves,
//! the registry must hold the pinned version with the pinned artifact digest (and, for
//! production, approved).
//!
//! URL targets (a service a GitOps tool runs from a pin file): staging's pin file is written
//! (the workflow's own step or the GitOps tool takes it from there); production's was merged.
//! Then the service's `GET /version` is polled until it reports the pinned model and artifact,
//! or the timeout passes with what it last saw. `--check` compares once and exits 1 on drift.
//!
//! SageMaker targets are `deploy_sagemaker`'s, after the same pin and registry checks.
//!
//! Exit codes: 0 deployed (or in sync), 1 refused or drift or another version kept serving,
//! 2 bad input, 3 the service never answered (or SageMaker failed), 130 interrupted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_github::pin::Pin;
use mlops_holdout::client::{Http, Policy};
use mlops_train::registry::{ModelRef, Registry, Status};
use serde_json::Value;

use super::{error, valid_manifest};
use crate::cli::{DeployArgs, DeployEnv, Format};
use crate::cmd::registry::open as open_registry;
use crate::exit::Exit;

/// The first wait between two polls of the service; doubled up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
const POLL_MAX: Duration = Duration::from_secs(5);

/// The root of the repository holding `manifest` (the nearest ancestor with `.git`), else its
/// directory: pin files are named relative to it.
fn repository_root(manifest: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(manifest)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| manifest.parent().unwrap_or(Path::new(".")).to_path_buf());
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf)
}

/// What the service says it serves, in a few words.
fn shown(v: &Value) -> String {
    format!(
        "{} (artifact {})",
        v["model"].as_str().unwrap_or("an unnamed model"),
        v["artifact_sha256"]
            .as_str()
            .map_or("unknown", |s| &s[..s.len().min(12)])
    )
}

/// Whether a `/version` document is the pin's model and artifact.
fn serves(v: &Value, pin: &Pin) -> bool {
    v["model"].as_str() == Some(pin.reference().as_str())
        && v["artifact_sha256"].as_str() == Some(pin.model.artifact.sha256.as_str())
}

/// The pin this deploy puts in place: production's from its file, staging's from `--model`.
fn desired(
    args: &DeployArgs,
    m: &mlops_manifest::Manifest,
    registry: &Registry,
) -> Result<(Pin, Option<PathBuf>), Exit> {
    let root = repository_root(&args.registry.manifest);
    let environment = match args.env {
        DeployEnv::Staging => &m.environments.staging,
        DeployEnv::Production => &m.environments.production,
    };
    match args.env {
        DeployEnv::Production => {
            if args.model.is_some() {
                error(
                    "production deploys its pin file, not a --model",
                    "promote the model (`mlops promote`); once the pull request is approved and merged, deploy production without --model",
                );
                return Err(Exit::Usage);
            }
            let file = args.pin.clone().or_else(|| {
                environment
                    .pin_file
                    .clone()
                    .or_else(|| m.promotion.as_ref().map(|p| p.pin_file.clone()))
                    .map(|f| root.join(f))
            });
            let Some(file) = file else {
                error(
                    "no production pin file: the manifest has no `promotion` section and no `environments.production.pin_file`",
                    "pass the pin file with --pin",
                );
                return Err(Exit::Usage);
            };
            let text = std::fs::read_to_string(&file).map_err(|e| {
                error(
                    &format!("cannot read the production pin {}: {e}", file.display()),
                    "production deploys only what an approved promotion pull request merged; check out that commit (or pass --pin)",
                );
                Exit::Usage
            })?;
            let pin = Pin::parse(&text).map_err(|e| {
                error(
                    &format!("{}: not a pin file: {e}", file.display()),
                    "the pin file is written by `mlops promote`; restore it from the promotion pull request",
                );
                Exit::Usage
            })?;
            Ok((pin, None))
        }
        DeployEnv::Staging => {
            let Some(model) = &args.model else {
                error(
                    "staging deploys a --model",
                    "name the registered version: --model NAME@VERSION (or NAME@latest)",
                );
                return Err(Exit::Usage);
            };
            let reference: ModelRef = model.parse().map_err(|e: String| {
                error(
                    &e,
                    "name the model as NAME@VERSION, NAME@latest or NAME@approved",
                );
                Exit::Usage
            })?;
            let (entry, card) = registry
                .resolve(&reference)
                .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))
                .map_err(|e| {
                    error(&e.message, &e.hint);
                    if e.user { Exit::Usage } else { Exit::Runtime }
                })?;
            let pin = super::promote::pin_of(registry, &entry, &card, args.image.clone())?;
            let file = args
                .pin
                .clone()
                .or_else(|| environment.pin_file.as_ref().map(|f| root.join(f)));
            Ok((pin, file))
        }
    }
}

/// The registry must hold the pinned version with the pinned artifact; production's must be
/// approved, and no environment takes a rejected one.
fn vouch(args: &DeployArgs, registry: &Registry, pin: &Pin) -> Result<(), Exit> {
    let reference = pin.reference();
    let r: ModelRef = reference.parse().map_err(|e: String| {
        error(&format!("the pin names `{reference}`: {e}"), "");
        Exit::Usage
    })?;
    let (entry, card) = registry
        .resolve(&r)
        .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))
        .map_err(|e| {
            error(
                &format!("{reference} is not in the registry: {}", e.message),
                &e.hint,
            );
            Exit::No
        })?;
    let status = entry.status.status;
    let refused = match (args.env, status) {
        (_, Status::Rejected) => true,
        (DeployEnv::Production, s) => s != Status::Approved,
        (DeployEnv::Staging, _) => false,
    };
    if refused {
        error(
            &format!(
                "{reference} is {} in the registry ({}); {} does not take it",
                status.name(),
                entry.status.reason,
                args.env.name()
            ),
            "production deploys only approved models: `mlops registry approve` after review, then promote",
        );
        return Err(Exit::No);
    }
    let recorded = card["artifact"]["sha256"].as_str().unwrap_or_default();
    if recorded != pin.model.artifact.sha256 {
        error(
            &format!(
                "the registry's artifact of {reference} is {recorded}, the pin names {}: aborting before any traffic moves",
                pin.model.artifact.sha256
            ),
            "the pin or the registry was changed by hand; promote the version again",
        );
        return Err(Exit::No);
    }
    Ok(())
}

pub(crate) fn run(args: &DeployArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing deployed") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let env = args.env.name();
    let environment = match args.env {
        DeployEnv::Staging => &m.environments.staging,
        DeployEnv::Production => &m.environments.production,
    };
    if args.teardown && environment.sagemaker.is_none() {
        error(
            &format!("--teardown removes SageMaker endpoints; environments.{env} is a URL target"),
            "a URL target's service belongs to its GitOps tool: remove it there",
        );
        return Exit::Usage;
    }
    let url = match (&args.endpoint, &environment.url, &environment.sagemaker) {
        (Some(url), _, _) | (None, Some(url), _) => url.clone(),
        (None, None, Some(s)) if args.teardown => {
            if args.env != DeployEnv::Staging {
                error(
                    "--teardown removes staging endpoints only",
                    "production changes only through a promotion pull request",
                );
                return Exit::Usage;
            }
            return super::deploy_sagemaker::teardown(&s.endpoint_name);
        }
        (None, None, Some(s)) => {
            let registry = match open_registry(&args.registry, format) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let pin = match desired(args, &m, &registry) {
                Ok((pin, _)) => pin,
                Err(code) => return code,
            };
            if let Err(code) = vouch(args, &registry, &pin) {
                return code;
            }
            return super::deploy_sagemaker::run(args, &m, s, &pin, format);
        }
        (None, None, None) => {
            error(
                &format!("environments.{env} has neither `url` nor `sagemaker`"),
                "set the environment's url in the manifest, or pass --endpoint",
            );
            return Exit::Usage;
        }
    };
    let registry = match open_registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (pin, pin_file) = match desired(args, &m, &registry) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(code) = vouch(args, &registry, &pin) {
        return code;
    }
    let policy = Policy {
        timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    let http = match Http::new(&url, policy) {
        Ok(h) => h,
        Err(e) => {
            error(&e, "set the environment's url to the service's base URL");
            return Exit::Usage;
        }
    };
    let rt = match super::client_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let before = rt.block_on(http.version_or_why());
    if args.check {
        return check(env, &url, &pin, &before, format);
    }
    if let Some(file) = &pin_file {
        let text = pin.to_yaml(env);
        if let Err(e) = super::run::write_atomically(file, text.as_bytes()) {
            error(
                &format!("cannot write the {env} pin {}: {e}", file.display()),
                "",
            );
            return Exit::Runtime;
        }
        eprintln!(
            "wrote the {env} pin {} ({})",
            file.display(),
            pin.reference()
        );
    }
    let started = Instant::now();
    let outcome = rt.block_on(wait_for(
        &http,
        &pin,
        Duration::from_secs(args.timeout_seconds),
    ));
    let seconds = started.elapsed().as_secs_f64();
    let previous = before.as_ref().ok().map(shown);
    match outcome {
        Waited::Serving => {
            println!(
                "deploy: {env} serves {} at {url} (verified on /version in {seconds:.1} s; before: {})",
                pin.reference(),
                previous.as_deref().unwrap_or("no answer")
            );
            report(env, &url, &pin, previous.as_deref(), seconds, format)
        }
        Waited::Interrupted(signal) => {
            eprintln!(
                "deploy: {signal}: stopped waiting; the {env} pin names {} but the service was not seen serving it",
                pin.reference()
            );
            Exit::Cancelled
        }
        Waited::Other(last) => {
            error(
                &format!(
                    "{env} at {url} still serves {} after {}s, not {}",
                    shown(&last),
                    args.timeout_seconds,
                    pin.reference()
                ),
                "the rollout did not happen: check the GitOps tool's sync of the pin file and the service's logs",
            );
            Exit::No
        }
        Waited::NoAnswer(why) => {
            error(
                &format!(
                    "{env} at {url} did not answer within {}s: {why}",
                    args.timeout_seconds
                ),
                "check that the service runs and that this machine can reach it",
            );
            Exit::Runtime
        }
    }
}

/// How waiting for the rollout ended.
enum Waited {
    Serving,
    /// The last version document seen, of another model or artifact.
    Other(Value),
    /// Why the service never answered.
    NoAnswer(String),
    Interrupted(&'static str),
}

/// Polls `/version` until it reports `pin`, with a growing pause, until `timeout`.
async fn wait_for(http: &Http, pin: &Pin, timeout: Duration) -> Waited {
    let signal = super::sagemaker::interrupted();
    tokio::pin!(signal);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    loop {
        let last = tokio::select! {
            got = http.version_or_why() => got,
            sig = &mut signal => return Waited::Interrupted(sig),
        };
        if last.as_ref().is_ok_and(|v| serves(v, pin)) {
            return Waited::Serving;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return match last {
                Ok(v) => Waited::Other(v),
                Err(why) => Waited::NoAnswer(why),
            };
        }
        tokio::select! {
            () = tokio::time::sleep(pause.min(deadline - now)) => {}
            sig = &mut signal => return Waited::Interrupted(sig),
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// `--check`: what serves against the pin, once.
fn check(env: &str, url: &str, pin: &Pin, now: &Result<Value, String>, format: Format) -> Exit {
    let (code, line) = match now {
        Ok(v) if serves(v, pin) => (
            Exit::Ok,
            format!("{env} at {url} serves {}, as pinned", pin.reference()),
        ),
        Ok(v) => {
            let mut diff = format!(
                "drift: {env} at {url}\n  pinned:  {} (artifact {})\n  serving: {}",
                pin.reference(),
                pin.model.artifact.sha256,
                shown(v)
            );
            if let Some(sha) = v["artifact_sha256"].as_str() {
                diff.push_str(&format!(" (artifact {sha})"));
            }
            (Exit::No, diff)
        }
        Err(why) => (Exit::Runtime, format!("{env} at {url}: {why}")),
    };
    match code {
        Exit::Ok => println!("{line}"),
        _ => eprintln!("{line}"),
    }
    if format == Format::Github {
        let actions = mlops_actions::Runtime::from_env();
        let _ = actions
            .set_output("in-sync", if code == Exit::Ok { "true" } else { "false" })
            .and_then(|()| {
                actions.append_summary(&format!("### mlops deploy --check ({env})\n\n{line}\n"))
            });
    }
    code
}

/// Outputs and the step summary of a deploy that was verified.
fn report(
    env: &str,
    url: &str,
    pin: &Pin,
    previous: Option<&str>,
    seconds: f64,
    format: Format,
) -> Exit {
    let actions = mlops_actions::Runtime::from_env();
    if format != Format::Github && !actions.is_actions() {
        return Exit::Ok;
    }
    let result = actions
        .set_output("endpoint", url)
        .and_then(|()| actions.set_output("model-version", &pin.reference()))
        .and_then(|()| actions.set_output("previous", previous.unwrap_or_default()))
        .and_then(|()| {
            actions.append_summary(&format!(
                "### mlops deploy: {env}\n\n| | |\n|---|---|\n| environment | {env} at {url} |\n| model | {} → **{}** |\n| artifact | `{}` |\n| verified | `GET /version` reported the pinned model and artifact |\n| time to serving | {seconds:.1} s |\n",
                previous.unwrap_or("no answer"),
                pin.reference(),
                pin.model.artifact.sha256
            ))
        });
    if let Err(e) = result {
        error(&format!("cannot write the step outputs: {e}"), "");
        return Exit::Runtime;
    }
    Exit::Ok
}
