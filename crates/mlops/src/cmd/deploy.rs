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

use mlops_artifacts::service::ServiceVersion;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_github::pin::Pin;
use mlops_holdout::client::{Http, Policy};
use mlops_train::registry::{Entry, ModelRef, Registry, Status};

use mlops_manifest::Manifest;
use mlops_manifest::model::Environment;

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
    super::render::locate(manifest).map_or_else(
        |_| manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
        |(root, _)| root,
    )
}

/// The environment's section of the manifest.
fn environment_of(m: &Manifest, env: DeployEnv) -> &Environment {
    match env {
        DeployEnv::Staging => &m.environments.staging,
        DeployEnv::Production => &m.environments.production,
    }
}

/// The environment's pin file: `--pin`, else its `pin_file` (production: else
/// `promotion.pin_file`), in the manifest's repository.
fn pin_path(args: &DeployArgs, m: &Manifest) -> Option<PathBuf> {
    let root = repository_root(&args.registry.manifest);
    let environment = environment_of(m, args.env);
    args.pin.clone().or_else(|| {
        let named = match args.env {
            DeployEnv::Staging => environment.pin_file.clone(),
            DeployEnv::Production => environment
                .pin_file
                .clone()
                .or_else(|| m.promotion.as_ref().map(|p| p.pin_file.clone())),
        };
        named.map(|f| root.join(f))
    })
}

/// The pin file at `file`.
fn read_pin(file: &Path, env: &str) -> Result<Pin, Exit> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        error(
            &format!("cannot read the {env} pin {}: {e}", file.display()),
            "production deploys only what an approved promotion pull request merged; check out that commit (or pass --pin)",
        );
        Exit::Usage
    })?;
    Pin::parse(&text).map_err(|e| {
        error(
            &format!("{}: not a pin file: {e}", file.display()),
            "the pin file is written by `mlops promote`; restore it from the promotion pull request",
        );
        Exit::Usage
    })
}

/// The pin this deploy puts in place: production's from its file, staging's from `--model`;
/// and the file a staging deploy writes.
fn desired(
    args: &DeployArgs,
    m: &Manifest,
    registry: &Registry,
) -> Result<(Pin, Option<PathBuf>), Exit> {
    match args.env {
        DeployEnv::Production => {
            if args.model.is_some() {
                error(
                    "production deploys its pin file, not a --model",
                    "promote the model (`mlops promote`); once the pull request is approved and merged, deploy production without --model",
                );
                return Err(Exit::Usage);
            }
            let Some(file) = pin_path(args, m) else {
                error(
                    "no production pin file: the manifest has no `promotion` section and no `environments.production.pin_file`",
                    "pass the pin file with --pin",
                );
                return Err(Exit::Usage);
            };
            Ok((read_pin(&file, "production")?, None))
        }
        DeployEnv::Staging => {
            let Some(model) = &args.model else {
                error(
                    "staging deploys a --model",
                    "name the registered version: --model NAME@VERSION (or NAME@latest)",
                );
                return Err(Exit::Usage);
            };
            let (entry, card) = registry
                .find(model)
                .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))
                .map_err(|e| {
                    error(&e.message, &e.hint);
                    if e.user { Exit::Usage } else { Exit::Runtime }
                })?;
            let pin = mlops_core::promote::pin_of(registry, &entry, &card, args.image.clone())
                .map_err(|p| super::failed(&p))?;
            Ok((pin, pin_path(args, m)))
        }
    }
}

/// `REPOSITORY@sha256:` and 64 lowercase hex digits.
fn image_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(repo, digest)| {
        !repo.is_empty()
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The registry must hold the pinned version with the pinned artifact; production's must be
/// approved, and no environment takes a rejected one. The version's registry entry.
pub(crate) fn vouch(env: DeployEnv, registry: &Registry, pin: &Pin) -> Result<Entry, Exit> {
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
    let refused = match (env, status) {
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
                env.name()
            ),
            "production deploys only approved models: `mlops registry approve` after review, then promote",
        );
        return Err(Exit::No);
    }
    // Where the pin says the artifact is must be where the registry keeps this version (an
    // `s3://` location is the same from every runner; a local directory is per machine).
    if entry.location.starts_with("s3://") && pin.model.artifact.uri != entry.location {
        error(
            &format!(
                "the pin puts {reference}'s artifact at {}, the registry keeps it at {}: aborting before any traffic moves",
                pin.model.artifact.uri, entry.location
            ),
            "the pin was edited by hand or names another registry; promote the version again",
        );
        return Err(Exit::No);
    }
    if let Some(image) = &pin.model.image
        && env == DeployEnv::Production
        && !image_by_digest(image)
    {
        error(
            &format!("the pin's serving image `{image}` is not named by digest"),
            "a tag can be moved after the approval; promote with --image REPOSITORY@sha256:DIGEST",
        );
        return Err(Exit::No);
    }
    let recorded = card.artifact.as_ref().map_or("", |a| a.sha256.as_str());
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
    Ok(entry)
}

/// [`vouch`], and for production the passing holdout test the pin names, as the registry
/// recorded it: what must hold before anything is deployed (`--check` changes nothing and asks
/// only [`vouch`]). `mlops run`'s local deploy asks this too.
pub(crate) fn vouch_to_deploy(env: DeployEnv, registry: &Registry, pin: &Pin) -> Result<(), Exit> {
    let entry = vouch(env, registry, pin)?;
    if env == DeployEnv::Production {
        holdout_vouches(registry, &entry, pin)?;
    }
    Ok(())
}

/// Production takes a version only with the passing holdout test its pin names, as the registry
/// recorded it (`mlops holdout` writes each report beside the version it tested): the registry,
/// which only the holdout job's role writes there, is the authority, not a commit status any
/// workflow of the repository could post.
fn holdout_vouches(registry: &Registry, entry: &Entry, pin: &Pin) -> Result<(), Exit> {
    let reference = &entry.reference;
    let refuse = |message: String, hint: &str| {
        error(
            &format!("{message}: aborting before any traffic moves"),
            hint,
        );
        Exit::No
    };
    let again = "run the holdout test on the version (`mlops holdout --model`), then promote it with that report";
    let Some(holdout) = pin.holdout.as_ref() else {
        return Err(refuse(
            format!("the pin of {reference} names no holdout test"),
            again,
        ));
    };
    if !holdout.passed {
        return Err(refuse(
            format!("the pin of {reference} names a holdout test that failed"),
            again,
        ));
    }
    let digest = &holdout.report_sha256;
    let bytes = registry
        .holdout_report(&entry.model, entry.version, digest)
        .map_err(|e| refuse(e.message, &e.hint))?
        .ok_or_else(|| {
            refuse(
                format!(
                    "the registry holds no holdout report sha256:{digest} for {reference} (the pin's)"
                ),
                again,
            )
        })?;
    mlops_holdout::vouches(&bytes, reference).map_err(|why| refuse(why, again))
}

pub(crate) fn run(args: &DeployArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing deployed") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let env = args.env.name();
    let environment = environment_of(&m, args.env);
    if args.teardown {
        return match (&environment.sagemaker, args.env) {
            (Some(s), DeployEnv::Staging) => super::deploy_sagemaker::teardown(&s.endpoint_name),
            (Some(_), DeployEnv::Production) => {
                error(
                    "--teardown removes staging endpoints only",
                    "production changes only through a promotion pull request",
                );
                Exit::Usage
            }
            (None, _) => {
                error(
                    &format!(
                        "--teardown removes SageMaker endpoints; environments.{env} is a URL target"
                    ),
                    "a URL target's service belongs to its GitOps tool: remove it there",
                );
                Exit::Usage
            }
        };
    }
    let registry = match open_registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.rollback {
        return rollback(args, &m, &registry, format);
    }
    match desired(args, &m, &registry) {
        Ok((pin, file)) => deploy_pin(
            args,
            &m,
            &registry,
            &pin,
            file.as_deref(),
            &BTreeMap::new(),
            format,
        ),
        Err(code) => code,
    }
}

/// The pin before the current one in `file`'s git history (the file at the parent of the last
/// commit that changed it), and that commit.
fn previous_pin(file: &Path, env: &str) -> Result<(Pin, String), Exit> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let last = git(&["log", "-n", "1", "--format=%H", "--", &name]).filter(|c| !c.is_empty());
    let Some(last) = last else {
        error(
            &format!("{} has no git history here", file.display()),
            "roll back from a git checkout of the repository that holds the pin file (in a workflow, `actions/checkout` with `fetch-depth: 0`)",
        );
        return Err(Exit::Usage);
    };
    let Some(text) = git(&["show", &format!("{last}^:./{name}")]) else {
        error(
            &format!(
                "there is no {env} pin before commit {} in the history of {}",
                &last[..last.len().min(12)],
                file.display()
            ),
            "nothing to roll back to: the first pin is the oldest (a shallow checkout also hides history: use `fetch-depth: 0`)",
        );
        return Err(Exit::No);
    };
    let pin = Pin::parse(&text).map_err(|e| {
        error(&format!("the {env} pin before {last}: {e}"), "");
        Exit::Usage
    })?;
    Ok((pin, last))
}

/// Who is deploying: the workflow's actor, else the local user.
fn actor() -> String {
    ["GITHUB_ACTOR", "USER", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "someone".to_owned())
}

/// `--rollback`: the pin before the current one. Production: a revert promotion pull request
/// (the gate applies as to any promotion), or with `--break-glass` that pin deployed at once.
/// Staging: deployed directly.
fn rollback(args: &DeployArgs, m: &Manifest, registry: &Registry, format: Format) -> Exit {
    let env = args.env.name();
    let Some(file) = pin_path(args, m) else {
        error(
            &format!("no {env} pin file to roll back"),
            "rollback reads the pin file's history: set the environment's `pin_file` or pass --pin; or deploy the version you want with --model",
        );
        return Exit::Usage;
    };
    let current = match read_pin(&file, env) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (previous, commit) = match previous_pin(&file, env) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if previous.same_model(&current) {
        error(
            &format!(
                "the {env} pin before {} also pins {}",
                &commit[..commit.len().min(12)],
                current.reference()
            ),
            "deploy the version you want explicitly",
        );
        return Exit::No;
    }
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| "no reason given".to_owned());
    eprintln!(
        "rollback of {env}: {} -> {} ({reason})",
        current.reference(),
        previous.reference()
    );
    match (args.env, args.break_glass) {
        (DeployEnv::Staging, _) => deploy_pin(
            args,
            m,
            registry,
            &previous,
            Some(&file),
            &BTreeMap::new(),
            format,
        ),
        (DeployEnv::Production, true) => {
            let who = actor();
            eprintln!(
                "BREAK GLASS: {who} deploys {} to production now, without a pull request: {reason}",
                previous.reference()
            );
            let tags = BTreeMap::from([
                ("mlops:break-glass-by".to_owned(), who.clone()),
                (
                    "mlops:break-glass-reason".to_owned(),
                    reason.chars().take(256).collect(),
                ),
            ]);
            if environment_of(m, args.env).sagemaker.is_none() {
                error(
                    "--break-glass redeploys SageMaker endpoints; production here is a URL target, which its GitOps tool deploys from git",
                    "revert the pin file's last commit on the base branch (with the rights your branch protection demands), or open the rollback pull request without --break-glass",
                );
                return Exit::Usage;
            }
            let code = deploy_pin(args, m, registry, &previous, None, &tags, format);
            if code == Exit::Ok {
                let actions = mlops_actions::Runtime::from_env();
                if actions.is_actions() {
                    let _ = actions.append_summary(&format!(
                        "**Break glass**: {who} rolled production back from {} to {} without a pull request. Reason: {reason}\n\nRecord this in the production pin with a rollback pull request (`mlops deploy --env production --rollback`).\n",
                        current.reference(),
                        previous.reference()
                    ));
                }
                eprintln!(
                    "production now serves {}, but its pin file still names {}: open the rollback pull request (`--rollback` without --break-glass) so that the pin says what serves",
                    previous.reference(),
                    current.reference()
                );
            }
            code
        }
        (DeployEnv::Production, false) => {
            let request = mlops_core::promote::Request {
                manifest: m,
                registry: registry.clone(),
                model: previous.reference(),
                holdout_report: None,
                image: previous.model.image.clone(),
                started_by: Vec::new(),
            };
            let mut prepared = match mlops_core::promote::prepare(request) {
                Ok(p) => p,
                Err(p) => return super::failed(&p),
            };
            // The version passed its holdout test when it was promoted: the pin carries that
            // report's digest, and the status on the new head names it, as the gate requires.
            prepared.p.pin.holdout = previous.holdout.clone();
            prepared.p.status = previous.holdout.as_ref().filter(|h| h.passed).map(|h| {
                (
                    true,
                    format!("holdout passed; report sha256:{}", h.report_sha256),
                    None,
                )
            });
            prepared.p.title = format!(
                "Roll back production to {} (from {})",
                previous.reference(),
                current.reference()
            );
            prepared.preface = Some(format!(
                "### Rollback\n\nRequested by {} ({reason}). Production serves **{}**; this pull request pins **{}** again, the version `{}` named before commit `{}`. The gate applies as to any promotion: approve it on its head commit and merge it, and the production deploy serves {}.",
                actor(),
                current.reference(),
                previous.reference(),
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                &commit[..commit.len().min(12)],
                previous.reference()
            ));
            super::promote::propose(
                &prepared,
                args.github.github_api_url.as_deref(),
                false,
                format,
            )
        }
    }
}

/// Deploys `pin` to the environment (after the registry vouches for it): a SageMaker endpoint,
/// or a URL target whose pin file (staging) is written and whose service must report the pin.
fn deploy_pin(
    args: &DeployArgs,
    m: &Manifest,
    registry: &Registry,
    pin: &Pin,
    pin_file: Option<&Path>,
    tags: &BTreeMap<String, String>,
    format: Format,
) -> Exit {
    let env = args.env.name();
    let environment = environment_of(m, args.env);
    let vouched = if args.check {
        vouch(args.env, registry, pin).map(|_| ())
    } else {
        vouch_to_deploy(args.env, registry, pin)
    };
    if let Err(code) = vouched {
        return code;
    }
    let url = match (&args.endpoint, &environment.url, &environment.sagemaker) {
        (Some(url), _, _) | (None, Some(url), _) => url.clone(),
        (None, None, Some(s)) => {
            return super::deploy_sagemaker::run(args, m, s, pin, tags, format);
        }
        (None, None, None) => {
            error(
                &format!("environments.{env} has neither `url` nor `sagemaker`"),
                "set the environment's url in the manifest, or pass --endpoint",
            );
            return Exit::Usage;
        }
    };
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
        return check(env, &url, pin, &before, format);
    }
    if let Some(file) = pin_file {
        let text = pin.to_yaml(env);
        if let Err(e) = mlops_train::write_atomically(file, text.as_bytes()) {
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
        if args.commit_pin
            && let Err(code) = commit_pin(args, m, file, &text, pin)
        {
            return code;
        }
    }
    let started = Instant::now();
    let outcome = rt.block_on(wait_for(
        &http,
        pin,
        Duration::from_secs(args.timeout_seconds),
    ));
    let seconds = started.elapsed().as_secs_f64();
    let previous = before.as_ref().ok().map(ServiceVersion::shown);
    match outcome {
        Waited::Serving => {
            println!(
                "deploy: {env} serves {} at {url} (verified on /version in {seconds:.1} s; before: {})",
                pin.reference(),
                previous.as_deref().unwrap_or("no answer")
            );
            report(env, &url, pin, previous.as_deref(), seconds, format)
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
                    last.shown(),
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

/// `--commit-pin`: the pin file, committed to the promotion repository's branch
/// `mlops/staging` (created from the base branch; a fast-forward; nothing when it already says
/// the same). Never the base branch: production's pin is there, behind its review rules.
fn commit_pin(
    args: &DeployArgs,
    m: &Manifest,
    file: &Path,
    text: &str,
    pin: &Pin,
) -> Result<(), Exit> {
    let env = args.env.name();
    let (settings, repo) = super::github::promotion(m)?;
    // The environment's `pin_file` is named relative to the promotion repository; a `--pin`
    // file is taken relative to the manifest's repository.
    let path = match &environment_of(m, args.env).pin_file {
        Some(p) if args.pin.is_none() => p.trim_start_matches("./").to_owned(),
        _ => {
            let root = repository_root(&args.registry.manifest);
            let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
            let Ok(relative) = absolute.strip_prefix(&root) else {
                error(
                    &format!(
                        "{} is outside the repository {}",
                        file.display(),
                        root.display()
                    ),
                    "commit the environment's `pin_file` (drop --pin), or a pin file inside the manifest's repository",
                );
                return Err(Exit::Usage);
            };
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        }
    };
    let (rt, gh) = super::github::connect(&args.github)?;
    let message = format!(
        "Deploy {} to {env}\n\nPins {} in {path}.\n",
        pin.reference(),
        pin.reference()
    );
    let branch = mlops_github::STAGING_BRANCH;
    match rt.block_on(mlops_github::promote::set_file_on_branch(
        &gh,
        &repo,
        branch,
        &settings.base_branch,
        &path,
        text,
        &message,
    )) {
        Ok(Some(sha)) => {
            eprintln!(
                "committed {path} to {}:{branch} ({})",
                repo.full(),
                &sha[..sha.len().min(12)]
            );
            Ok(())
        }
        Ok(None) => {
            eprintln!(
                "{path} on {}:{branch} already pins {}",
                repo.full(),
                pin.reference()
            );
            Ok(())
        }
        Err(e) => Err(super::github::failed(
            &e,
            "the token needs contents: write on the promotion repository, and the rules of the branch `mlops/staging` must let it push",
        )),
    }
}

/// How waiting for the rollout ended.
enum Waited {
    Serving,
    /// The last version document seen, of another model or artifact.
    Other(Box<ServiceVersion>),
    /// Why the service never answered.
    NoAnswer(String),
    Interrupted(&'static str),
}

/// Polls `/version` until it reports `pin`, with a growing pause, until `timeout`.
async fn wait_for(http: &Http, pin: &Pin, timeout: Duration) -> Waited {
    let signal = mlops_core::runtime::interrupted();
    tokio::pin!(signal);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    loop {
        let last = tokio::select! {
            got = http.version_or_why() => got,
            sig = &mut signal => return Waited::Interrupted(sig),
        };
        if last.as_ref().is_ok_and(|v| pin.is_reported_by(v)) {
            return Waited::Serving;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return match last {
                Ok(v) => Waited::Other(Box::new(v)),
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
fn check(
    env: &str,
    url: &str,
    pin: &Pin,
    now: &Result<ServiceVersion, String>,
    format: Format,
) -> Exit {
    let (code, line) = match now {
        Ok(v) if pin.is_reported_by(v) => (
            Exit::Ok,
            format!("{env} at {url} serves {}, as pinned", pin.reference()),
        ),
        Ok(v) => {
            let mut diff = format!(
                "drift: {env} at {url}\n  pinned:  {} (artifact {})\n  serving: {}",
                pin.reference(),
                pin.model.artifact.sha256,
                v.shown()
            );
            diff.push_str(&format!(" (artifact {})", v.artifact_sha256));
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
    let summary = format!(
        "### mlops deploy: {env}\n\n| | |\n|---|---|\n| environment | {env} at {url} |\n| model | {} → **{}** |\n| artifact | `{}` |\n| verified | `GET /version` reported the pinned model and artifact |\n| time to serving | {seconds:.1} s |\n",
        previous.unwrap_or("no answer"),
        pin.reference(),
        pin.model.artifact.sha256
    );
    outputs(url, pin, previous.unwrap_or_default(), &summary, format)
}

/// In Actions (or with `--format github`): the outputs `endpoint`, `model-version` and
/// `previous`, and `summary` in the step summary.
pub(crate) fn outputs(
    endpoint: &str,
    pin: &Pin,
    previous: &str,
    summary: &str,
    format: Format,
) -> Exit {
    let actions = mlops_actions::Runtime::from_env();
    if format != Format::Github && !actions.is_actions() {
        return Exit::Ok;
    }
    let result = actions
        .set_output("endpoint", endpoint)
        .and_then(|()| actions.set_output("model-version", &pin.reference()))
        .and_then(|()| actions.set_output("previous", previous))
        .and_then(|()| actions.append_summary(summary));
    if let Err(e) = result {
        error(&format!("cannot write the step outputs: {e}"), "");
        return Exit::Runtime;
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::image_by_digest;

    #[test]
    fn only_an_image_named_by_a_full_digest_is_by_digest() {
        let d = "0123456789abcdef".repeat(4);
        assert!(image_by_digest(&format!(
            "1.dkr.ecr.eu-west-1.amazonaws.com/m@sha256:{d}"
        )));
        for bad in [
            "repo:latest".to_owned(),
            format!("@sha256:{d}"),
            format!("repo@sha256:{}", &d[..63]),
            format!("repo@sha256:{}", d.to_uppercase()),
            format!("repo@sha256:{d}0"),
            format!("repo@sha256:{}", "é".repeat(32)),
        ] {
            assert!(!image_by_digest(&bad), "{bad}");
        }
    }
}
