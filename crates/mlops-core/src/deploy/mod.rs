//! Deploying a model to an environment and proving it serves.
//!
//! Production deploys exactly the pin file at the checked-out commit (the file the approved
//! promotion pull request changed); staging deploys the model asked for. Before anything moves,
//! the registry must hold the pinned version with the pinned artifact digest (and, for
//! production, approved, with the passing holdout report its pin names).
//!
//! URL targets (a service a GitOps tool runs from a pin file): staging's pin file is written
//! (and with `commit_pin`, committed to the branch `mlops/staging`); production's was merged.
//! Then the service's `GET /version` is polled until it reports the pinned model and artifact,
//! or the timeout passes with what it last saw. SageMaker endpoints are [`endpoint`]'s.
//! A rollback takes the pin before the current one from the pin file's git history.

pub mod endpoint;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_artifacts::service::ServiceVersion;
use mlops_artifacts::short;
use mlops_github::pin::Pin;
use mlops_holdout::client::{Http, Policy};
use mlops_manifest::Manifest;
use mlops_manifest::model::Environment;
use mlops_registry::{Entry, ModelRef, Registry, Status};

use crate::promote::Prepared;
use crate::{Problem, Progress};

/// How `/version` is polled: from 250 ms, doubling up to 5 s (the backoff every poll of mlops
/// uses, with its jitter).
const POLL: mlops_aws::Poll = mlops_aws::Poll {
    first: Duration::from_millis(250),
    max: Duration::from_secs(5),
    failures: 0,
};

/// The environment deployed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Staging,
    Production,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::Staging => "staging",
            Env::Production => "production",
        }
    }
}

/// What a deploy is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    pub manifest_path: &'a Path,
    pub env: Env,
    /// The registered version for staging (NAME@VERSION, NAME@latest).
    pub model: Option<String>,
    /// The pin file instead of the environment's.
    pub pin: Option<PathBuf>,
    /// The serving image, by digest (staging).
    pub image: Option<String>,
    /// The service's URL instead of the environment's.
    pub endpoint: Option<String>,
    /// The IAM role of the SageMaker model instead of the manifest's.
    pub role_arn: Option<String>,
    /// Compare what serves with the pin once; change nothing.
    pub check: bool,
    /// Commit staging's pin file to the branch `mlops/staging` of the promotion repository.
    pub commit_pin: bool,
    /// How long the rollout may take.
    pub timeout: Duration,
    /// The first poll interval of a SageMaker endpoint, in seconds.
    pub poll_seconds: f64,
    /// The GitHub API (for `commit_pin`).
    pub api_url: Option<String>,
    /// Skip the environment's `watch` after the deploy.
    pub no_watch: bool,
    /// On a breach of production's watch, prepare no revert promotion here: a later job with
    /// the rights to open it does (`rollback` with the breach as its reason). A SageMaker
    /// endpoint still goes back at once.
    pub defer_rollback_pr: bool,
}

/// How production goes back to the pin before (`rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// A revert promotion, proposed as any promotion is (the gate applies).
    PullRequest,
    /// A SageMaker endpoint redeployed at once, the pin file left as it is (break glass).
    AtOnce,
    /// The pin file set back on the base branch at once (`watch.rollback: immediate`), then the
    /// environment made to serve it.
    Immediate,
}

/// A deploy that is verified: the environment serves the pin.
#[derive(Debug)]
pub struct Deployed {
    /// One line saying so.
    pub line: String,
    /// The service's URL or the endpoint's name.
    pub endpoint: String,
    pub pin: Pin,
    /// What served before (a model, a configuration), empty when nothing answered.
    pub previous: String,
    /// The step summary, in markdown.
    pub summary: String,
    /// The soak after the deploy (`environments.ENV.watch`), when there was one.
    pub watched: Option<watch::Watched>,
}

/// What `check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    Drift,
    Unreachable,
}

/// How a deploy ended.
#[derive(Debug)]
pub enum Outcome {
    Deployed(Box<Deployed>),
    /// `check`: the verdict and a line (or lines) saying what serves against the pin.
    Checked {
        verdict: Verdict,
        line: String,
    },
    /// `teardown`: what was removed, or that nothing was there.
    TornDown(String),
    /// A rollback of production: the revert promotion, to be proposed as any promotion is.
    Propose(Box<Prepared>),
    /// The environment served the pin, then the watch after it found a breach: what breached,
    /// and production's rollback (a SageMaker endpoint's redeploy of the pin before, `Deployed`;
    /// a URL target's revert promotion, `Propose`), `None` when it is left to a later job
    /// (`defer_rollback_pr` on a URL target), or why there is none.
    Breached {
        deployed: Box<Deployed>,
        rollback: Option<Result<Box<Outcome>, Problem>>,
    },
}

/// The root of the repository holding `manifest` (the nearest ancestor with `.git`), else its
/// directory: pin files are named relative to it.
pub(crate) fn repository_root(manifest: &Path) -> PathBuf {
    mlops_render::tree::locate(manifest).map_or_else(
        |_| manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
        |(root, _)| root,
    )
}

/// The environment's section of the manifest.
fn environment_of(m: &Manifest, env: Env) -> &Environment {
    match env {
        Env::Staging => &m.environments.staging,
        Env::Production => &m.environments.production,
    }
}

/// The environment's pin file: the request's, else its `pin_file` (production: else
/// `promotion.pin_file`), in the manifest's repository.
fn pin_path(req: &Request<'_>) -> Option<PathBuf> {
    let (m, env) = (req.manifest, req.env);
    let root = repository_root(req.manifest_path);
    let environment = environment_of(m, env);
    req.pin.clone().or_else(|| {
        let named = match env {
            Env::Staging => environment.pin_file.clone(),
            Env::Production => environment
                .pin_file
                .clone()
                .or_else(|| m.promotion.as_ref().map(|p| p.pin_file.clone())),
        };
        named.map(|f| root.join(f))
    })
}

/// Production's pin as the checkout holds it: `environments.production.pin_file`, else
/// `promotion.pin_file`, in the manifest's repository.
pub fn production_pin(m: &mlops_manifest::Manifest, manifest_path: &Path) -> Result<Pin, Problem> {
    let named = m
        .environments
        .production
        .pin_file
        .clone()
        .or_else(|| m.promotion.as_ref().map(|p| p.pin_file.clone()));
    let Some(file) = named else {
        return Err(Problem::input(
            "production has no pin file to name the model it serves",
            "give the version with --model NAME@VERSION",
        ));
    };
    read_pin(&repository_root(manifest_path).join(file), "production")
}

/// The pin file at `file`.
pub(crate) fn read_pin(file: &Path, env: &str) -> Result<Pin, Problem> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Problem::input(
            format!("cannot read the {env} pin {}: {e}", file.display()),
            "production deploys only what an approved promotion pull request merged; check out that commit (or pass --pin)",
        )
    })?;
    Pin::parse(&text).map_err(|e| {
        Problem::input(
            format!("{}: not a pin file: {e}", file.display()),
            "the pin file is written by `mlops promote`; restore it from the promotion pull request",
        )
    })
}

/// The pin this deploy puts in place: production's from its file, staging's from the model
/// asked for; and the file a staging deploy writes.
fn desired(req: &Request<'_>, registry: &Registry) -> Result<(Pin, Option<PathBuf>), Problem> {
    match req.env {
        Env::Production => {
            if req.model.is_some() {
                return Err(Problem::input(
                    "production deploys its pin file, not a --model",
                    "promote the model (`mlops promote`); once the pull request is approved and merged, deploy production without --model",
                ));
            }
            let Some(file) = pin_path(req) else {
                return Err(Problem::input(
                    "no production pin file: the manifest has no `promotion` section and no `environments.production.pin_file`",
                    "pass the pin file with --pin",
                ));
            };
            Ok((read_pin(&file, "production")?, None))
        }
        Env::Staging => {
            let Some(model) = &req.model else {
                return Err(Problem::input(
                    "staging deploys a --model",
                    "name the registered version: --model NAME@VERSION (or NAME@latest)",
                ));
            };
            let (entry, card) = registry
                .find(model)
                .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))?;
            let image = serving_image(req.manifest, Env::Staging, req.image.clone())?;
            let pin = crate::promote::pin_of(registry, &entry, &card, image)?;
            Ok((pin, pin_path(req)))
        }
    }
}

/// The serving image a new pin of `env` names: the one given (`--image`), else the
/// environment's own (`environments.ENV.sagemaker.image`); both, and different, is an error.
pub fn serving_image(
    m: &Manifest,
    env: Env,
    given: Option<String>,
) -> Result<Option<String>, Problem> {
    let own = environment_of(m, env)
        .sagemaker
        .as_ref()
        .and_then(|s| s.image.clone());
    match (given, own) {
        (Some(given), Some(own)) if given != own => Err(Problem::input(
            format!(
                "--image {given} is not the serving image environments.{}.sagemaker.image names \
                 ({own})",
                env.name()
            ),
            "drop --image: the environment serves with its own image",
        )),
        (given, own) => Ok(given.or(own)),
    }
}

/// `REPOSITORY@sha256:` and 64 lowercase hex digits.
fn image_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(repo, digest)| {
        !repo.is_empty() && mlops_render::filters::lower_hex(digest, 64)
    })
}

/// The registry must hold the pinned version with the pinned artifact; production's must be
/// approved, and no environment takes a rejected one. The version's registry entry.
pub fn vouch(env: Env, registry: &Registry, pin: &Pin) -> Result<Entry, Problem> {
    let reference = pin.reference();
    let r: ModelRef = reference
        .parse()
        .map_err(|e: String| Problem::input(format!("the pin names `{reference}`: {e}"), ""))?;
    let (entry, card) = registry
        .resolve(&r)
        .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))
        .map_err(|e| {
            Problem::refused(
                format!("{reference} is not in the registry: {}", e.message),
                e.hint,
            )
        })?;
    let status = entry.status.status;
    let refused = match (env, status) {
        (_, Status::Rejected) => true,
        (Env::Production, s) => s != Status::Approved,
        (Env::Staging, _) => false,
    };
    if refused {
        return Err(Problem::refused(
            format!(
                "{reference} is {} in the registry ({}); {} does not take it",
                status.name(),
                entry.status.reason,
                env.name()
            ),
            "production deploys only approved models: `mlops registry approve` after review, then promote",
        ));
    }
    // Where the pin says the artifact is must be where the registry keeps this version (an
    // `s3://` location is the same from every runner; a local directory is per machine).
    if entry.location.starts_with("s3://") && pin.model.artifact.uri != entry.location {
        return Err(Problem::refused(
            format!(
                "the pin puts {reference}'s artifact at {}, the registry keeps it at {}: aborting before any traffic moves",
                pin.model.artifact.uri, entry.location
            ),
            "the pin was edited by hand or names another registry; promote the version again",
        ));
    }
    if let Some(image) = &pin.model.image
        && env == Env::Production
        && !image_by_digest(image)
    {
        return Err(Problem::refused(
            format!("the pin's serving image `{image}` is not named by digest"),
            "a tag can be moved after the approval; promote with --image REPOSITORY@sha256:DIGEST",
        ));
    }
    let recorded = card.artifact.as_ref().map_or("", |a| a.sha256.as_str());
    if recorded != pin.model.artifact.sha256 {
        return Err(Problem::refused(
            format!(
                "the registry's artifact of {reference} is {recorded}, the pin names {}: aborting before any traffic moves",
                pin.model.artifact.sha256
            ),
            "the pin or the registry was changed by hand; promote the version again",
        ));
    }
    Ok(entry)
}

/// [`vouch`], and for production the passing holdout test the pin names, as the registry
/// recorded it: what must hold before anything is deployed (a check changes nothing and asks
/// only [`vouch`]). `mlops run`'s local deploy asks this too.
pub fn vouch_to_deploy(env: Env, registry: &Registry, pin: &Pin) -> Result<(), Problem> {
    let entry = vouch(env, registry, pin)?;
    if env == Env::Production {
        holdout_vouches(registry, &entry, pin)?;
    }
    Ok(())
}

/// Production takes a version only with the passing holdout test its pin names, as the registry
/// recorded it (`mlops holdout` writes each report beside the version it tested): the registry,
/// which only the holdout job's role writes there, is the authority, not a commit status any
/// workflow of the repository could post.
fn holdout_vouches(registry: &Registry, entry: &Entry, pin: &Pin) -> Result<(), Problem> {
    let reference = &entry.reference;
    let refuse = |message: String, hint: &str| {
        Problem::refused(
            format!("{message}: aborting before any traffic moves"),
            hint,
        )
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
    mlops_holdout::vouches(&bytes, reference, holdout.compared_with.as_ref())
        .map_err(|why| refuse(why, again))
}

/// Deploys (or checks) what the request asks for.
pub fn deploy(
    req: &Request<'_>,
    registry: &Registry,
    progress: &mut dyn Progress,
) -> Result<Outcome, Problem> {
    let (pin, file) = desired(req, registry)?;
    let outcome = deploy_pin(
        req,
        registry,
        &pin,
        file.as_deref(),
        &BTreeMap::new(),
        progress,
    )?;
    let environment = environment_of(req.manifest, req.env);
    let mut deployed = match outcome {
        Outcome::Deployed(d) => d,
        other => return Ok(other),
    };
    let Some(w) = environment.watch.as_ref().filter(|_| !req.no_watch) else {
        return Ok(Outcome::Deployed(deployed));
    };
    let watched = match &environment.sagemaker {
        Some(sm) => watch_endpoint(&sm.health_alarms(), w, progress)?,
        None => watch_url(&deployed.endpoint, w, progress)?,
    };
    deployed.summary.push_str(&watch_summary(&watched, w));
    let breached = !watched.breaches.is_empty();
    deployed.watched = Some(watched);
    if !breached {
        return Ok(Outcome::Deployed(deployed));
    }
    let at_once = environment.sagemaker.is_some();
    let rollback = match req.env {
        // A URL target's revert promotion is left to a later job (it needs rights to open it).
        Env::Production if !at_once && req.defer_rollback_pr => None,
        Env::Production => {
            let reason = deployed
                .watched
                .as_ref()
                .map(watch::Watched::reason)
                .unwrap_or_default();
            // With `watch.rollback: immediate`, the pin file goes back on the base branch at
            // once (then the environment serves it). Otherwise a SageMaker endpoint goes back
            // to the pin before at once (as break glass does, tagged with why), and a URL
            // target through the revert promotion (the gate applies).
            let back = if crate::gate::immediate_rollback(req.manifest) && !req.defer_rollback_pr {
                Back::Immediate
            } else if at_once {
                Back::AtOnce
            } else {
                Back::PullRequest
            };
            Some(rollback(req, registry, Some(&reason), back, progress).map(Box::new))
        }
        Env::Staging => Some(Err(Problem::refused(
            "staging is not rolled back: a breach there stops the release",
            "",
        ))),
    };
    Ok(Outcome::Breached { deployed, rollback })
}

/// The client of a URL target's service (`/version`, `/metrics`): 10 s per call.
fn service_client(url: &str) -> Result<Http, Problem> {
    let policy = Policy {
        timeout: Duration::from_secs(10),
        ..Policy::default()
    };
    Http::new(url, policy)
        .map_err(|e| Problem::input(e, "set the environment's url to the service's base URL"))
}

/// The soak of a URL target at `url`, on a runtime of its own, stopped by SIGINT or SIGTERM.
fn watch_url(
    url: &str,
    w: &mlops_manifest::model::Watch,
    progress: &mut dyn Progress,
) -> Result<watch::Watched, Problem> {
    let http = service_client(url)?;
    progress.notice(&format!(
        "watch: {url}/metrics every {} s for {} s",
        w.interval_seconds, w.seconds
    ));
    let rt = crate::runtime::current_thread()?;
    rt.block_on(watch::url(
        &http,
        w,
        progress,
        crate::runtime::interrupted(),
    ))
    .map_err(|signal| {
        Problem::cancelled(
            format!("watch: {signal}: stopped watching; the deploy itself is done"),
            "",
        )
    })
}

/// The soak of a SageMaker endpoint through the CloudWatch alarms `names`.
fn watch_endpoint(
    names: &[String],
    w: &mlops_manifest::model::Watch,
    progress: &mut dyn Progress,
) -> Result<watch::Watched, Problem> {
    progress.notice(&format!(
        "watch: the alarms {} every {} s for {} s",
        names.join(", "),
        w.interval_seconds,
        w.seconds
    ));
    let rt = crate::runtime::current_thread()?;
    rt.block_on(async {
        let cloudwatch = mlops_aws::Alarms::from_env().await;
        watch::alarms(
            &cloudwatch,
            names,
            w,
            progress,
            crate::runtime::interrupted(),
        )
        .await
    })
    .map_err(|e| match e {
        watch::Unwatched::Cancelled(signal) => Problem::cancelled(
            format!("watch: {signal}: stopped watching; the deploy itself is done"),
            "",
        ),
        watch::Unwatched::Blind(why) => Problem::input(
            format!("watch: cannot watch the endpoint: {why}; the deploy itself is done"),
            "apply the rendered Terraform (it creates the endpoint's 5xx and latency alarms), \
             or name existing alarms in `rollback_alarms`; the role needs \
             cloudwatch:DescribeAlarms",
        ),
    })
}

/// The watch's lines for the step summary.
fn watch_summary(watched: &watch::Watched, w: &mlops_manifest::model::Watch) -> String {
    let verdict = if !watched.breaches.is_empty() {
        "❌ breach"
    } else if watched.unjudged {
        "⚠️ too little traffic to judge"
    } else {
        "✅ passed"
    };
    let mut s = format!(
        "| watch | {verdict}: {} s, {} looks, {} prediction requests, {} failed, worst p99 {} |\n",
        w.seconds,
        watched.looks,
        watched.requests,
        watched.errors,
        watched
            .worst_p99_ms
            .map_or_else(|| "–".to_owned(), |p| format!("{p} ms"))
    );
    for b in &watched.breaches {
        s.push_str(&format!("| breach | {} |\n", b.replace('|', "\\|")));
    }
    s
}

/// Removes the staging endpoint (a SageMaker target), if there is one.
pub fn teardown(req: &Request<'_>) -> Result<Outcome, Problem> {
    let env = req.env.name();
    match (&environment_of(req.manifest, req.env).sagemaker, req.env) {
        (Some(s), Env::Staging) => endpoint::teardown(&s.endpoint_name),
        (Some(_), Env::Production) => Err(Problem::input(
            "--teardown removes staging endpoints only",
            "production changes only through a promotion pull request",
        )),
        (None, _) => Err(Problem::input(
            format!("--teardown removes SageMaker endpoints; environments.{env} is a URL target"),
            "a URL target's service belongs to its GitOps tool: remove it there",
        )),
    }
}

/// The pin before the current one in `file`'s git history (the file at the parent of the last
/// commit that changed it), and that commit.
fn previous_pin(file: &Path, env: &str) -> Result<(Pin, String), Problem> {
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
    let last = git(&[
        "log",
        "-n",
        "1",
        "--format=%H",
        "--end-of-options",
        "--",
        &name,
    ])
    .filter(|c| !c.is_empty());
    let Some(last) = last else {
        return Err(Problem::input(
            format!("{} has no git history here", file.display()),
            "roll back from a git checkout of the repository that holds the pin file (in a workflow, `actions/checkout` with `fetch-depth: 0`)",
        ));
    };
    let Some(text) = git(&["show", "--end-of-options", &format!("{last}^:./{name}")]) else {
        return Err(Problem::refused(
            format!(
                "there is no {env} pin before commit {} in the history of {}",
                short(&last),
                file.display()
            ),
            "nothing to roll back to: the first pin is the oldest (a shallow checkout also hides history: use `fetch-depth: 0`)",
        ));
    };
    let pin = Pin::parse(&text)
        .map_err(|e| Problem::input(format!("the {env} pin before {last}: {e}"), ""))?;
    Ok((pin, last))
}

/// Who is deploying: the workflow's actor, else the local user.
fn actor() -> String {
    ["GITHUB_ACTOR", "USER", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "someone".to_owned())
}

/// A rollback to the pin before the current one. Production: a revert promotion (the gate
/// applies as to any promotion), or with `break_glass` that pin deployed at once. Staging:
/// deployed directly.
pub fn rollback(
    req: &Request<'_>,
    registry: &Registry,
    reason: Option<&str>,
    back: Back,
    progress: &mut dyn Progress,
) -> Result<Outcome, Problem> {
    let env = req.env.name();
    let Some(file) = pin_path(req) else {
        return Err(Problem::input(
            format!("no {env} pin file to roll back"),
            "rollback reads the pin file's history: set the environment's `pin_file` or pass --pin; or deploy the version you want with --model",
        ));
    };
    let current = read_pin(&file, env)?;
    let (previous, commit) = previous_pin(&file, env)?;
    if previous.same_model(&current) {
        return Err(Problem::refused(
            format!(
                "the {env} pin before {} also pins {}",
                short(&commit),
                current.reference()
            ),
            "deploy the version you want explicitly",
        ));
    }
    let reason = reason.unwrap_or("no reason given");
    progress.notice(&format!(
        "rollback of {env}: {} -> {} ({reason})",
        current.reference(),
        previous.reference()
    ));
    match (req.env, back) {
        (Env::Staging, _) => deploy_pin(
            req,
            registry,
            &previous,
            Some(&file),
            &BTreeMap::new(),
            progress,
        ),
        (Env::Production, Back::Immediate) => {
            immediate(req, registry, &current, &previous, reason, progress)
        }
        (Env::Production, Back::AtOnce) => {
            let who = actor();
            if environment_of(req.manifest, req.env).sagemaker.is_none() {
                return Err(Problem::input(
                    "--break-glass redeploys SageMaker endpoints; production here is a URL target, which its GitOps tool deploys from git",
                    "revert the pin file's last commit on the base branch (with the rights your branch protection demands), or open the rollback pull request without --break-glass",
                ));
            }
            progress.notice(&format!(
                "BREAK GLASS: {who} deploys {} to production now, without a pull request: {reason}",
                previous.reference()
            ));
            let tags = BTreeMap::from([
                ("mlops:break-glass-by".to_owned(), who.clone()),
                (
                    "mlops:break-glass-reason".to_owned(),
                    reason.chars().take(256).collect(),
                ),
            ]);
            let mut outcome = deploy_pin(req, registry, &previous, None, &tags, progress)?;
            if let Outcome::Deployed(d) = &mut outcome {
                d.summary.push_str(&format!(
                    "\n**Break glass**: {who} rolled production back from {} to {} without a pull request. Reason: {reason}\n\nRecord this in the production pin with a rollback pull request (`mlops deploy --env production --rollback`).\n",
                    current.reference(),
                    previous.reference()
                ));
                progress.notice(&format!(
                    "production now serves {}, but its pin file still names {}: open the rollback pull request (`--rollback` without --break-glass) so that the pin says what serves",
                    previous.reference(),
                    current.reference()
                ));
            }
            Ok(outcome)
        }
        (Env::Production, Back::PullRequest) => {
            let mut prepared = crate::promote::prepare(crate::promote::Request {
                manifest: req.manifest,
                registry: registry.clone(),
                model: previous.reference(),
                holdout_report: None,
                image: previous.model.image.clone(),
                started_by: Vec::new(),
            })?;
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
            // A SageMaker endpoint whose watch breached was put back at once: the pull request
            // then records what already serves.
            let serving = if environment_of(req.manifest, req.env).sagemaker.is_some()
                && reason.starts_with("watch:")
            {
                format!(
                    "The watch after the deploy put production's endpoint back to **{}** at once; its pin file still names **{}**",
                    previous.reference(),
                    current.reference()
                )
            } else {
                format!("Production serves **{}**", current.reference())
            };
            prepared.preface = Some(format!(
                "### Rollback\n\nRequested by {} ({reason}). {serving}; this pull request pins **{}** again, the version `{}` named before commit `{}`. The gate applies as to any promotion: approve it on its head commit and merge it, and the production deploy serves {}.",
                actor(),
                previous.reference(),
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                short(&commit),
                previous.reference()
            ));
            Ok(Outcome::Propose(Box::new(prepared)))
        }
    }
}

/// The immediate rollback (`watch.rollback: immediate`): production's pin file set back on the
/// base branch through the GitHub API (only when it still pins `current`, which a promotion's
/// merge put there; to exactly the pin before that merge), then the environment made to serve
/// it: a URL target's GitOps tool deploys it (its `/version` is waited for), a SageMaker
/// endpoint is redeployed (at once, tagged with why; nothing to do when it serves it already).
fn immediate(
    req: &Request<'_>,
    registry: &Registry,
    current: &Pin,
    previous: &Pin,
    reason: &str,
    progress: &mut dyn Progress,
) -> Result<Outcome, Problem> {
    if !crate::gate::immediate_rollback(req.manifest) {
        return Err(Problem::input(
            "an immediate rollback needs `watch.rollback: immediate` in environments.production",
            "set it in the manifest (its review is the consent), or roll back through a pull request (without --immediate)",
        ));
    }
    // The pin before must be one the registry still vouches for, before anything moves.
    vouch_to_deploy(req.env, registry, previous)?;
    let policy = crate::gate::policy(req.manifest)?;
    let (rt, gh) = crate::github::connect(req.api_url.as_deref())?;
    let reverted = rt
        .block_on(mlops_github::revert::revert(&gh, &policy, current, reason))
        .map_err(|e| match e {
            mlops_github::revert::NotReverted::Refused(why) => Problem::refused(
                why,
                "nothing was changed; propose the version you want (`mlops deploy --env production --rollback`)",
            ),
            mlops_github::revert::NotReverted::Api(e, hint) => crate::github::failed(&e, &hint),
        })?;
    if !reverted.pin.same_model(previous) {
        progress.notice(&format!(
            "the base branch's pin before PR #{} is {}, not {} as this checkout's history says: it is what production serves now",
            reverted.promotion,
            reverted.pin.reference(),
            previous.reference()
        ));
    }
    progress.notice(&format!(
        "rolled production's pin back on {}:{} to {} (commit {}, from {}, PR #{})",
        policy.repo.full(),
        policy.base_branch,
        reverted.pin.reference(),
        short(&reverted.commit),
        reverted.replaced.reference(),
        reverted.promotion
    ));
    let tags = BTreeMap::from([
        ("mlops:rollback-commit".to_owned(), reverted.commit.clone()),
        (
            "mlops:rollback-reason".to_owned(),
            reason.chars().take(256).collect(),
        ),
    ]);
    let mut outcome = deploy_pin(req, registry, &reverted.pin, None, &tags, progress)?;
    if let Outcome::Deployed(d) = &mut outcome {
        d.summary.push_str(&format!(
            "\n**Rolled back at once** (`watch.rollback: immediate`): production's pin went from {} to {} in commit `{}` on `{}`, without a pull request. Reason: {reason}\n",
            reverted.replaced.reference(),
            reverted.pin.reference(),
            short(&reverted.commit),
            policy.base_branch
        ));
    }
    Ok(outcome)
}

/// Deploys `pin` to the environment (after the registry vouches for it): a SageMaker endpoint,
/// or a URL target whose pin file (staging) is written and whose service must report the pin.
fn deploy_pin(
    req: &Request<'_>,
    registry: &Registry,
    pin: &Pin,
    pin_file: Option<&Path>,
    tags: &BTreeMap<String, String>,
    progress: &mut dyn Progress,
) -> Result<Outcome, Problem> {
    let env = req.env.name();
    let environment = environment_of(req.manifest, req.env);
    if req.check {
        vouch(req.env, registry, pin)?;
    } else {
        vouch_to_deploy(req.env, registry, pin)?;
    }
    let url = match (&req.endpoint, &environment.url, &environment.sagemaker) {
        (Some(url), _, _) | (None, Some(url), _) => url.clone(),
        (None, None, Some(s)) => return endpoint::deploy(req, s, pin, tags, progress),
        (None, None, None) => {
            return Err(Problem::input(
                format!("environments.{env} has neither `url` nor `sagemaker`"),
                "set the environment's url in the manifest, or pass --endpoint",
            ));
        }
    };
    let http = service_client(&url)?;
    let rt = crate::runtime::current_thread()?;
    let before = rt.block_on(http.version_or_why());
    if req.check {
        return Ok(check(env, &url, pin, &before));
    }
    if let Some(file) = pin_file {
        let text = pin.to_yaml(env);
        mlops_train::write_atomically(file, text.as_bytes()).map_err(|e| {
            Problem::broken(
                format!("cannot write the {env} pin {}: {e}", file.display()),
                "",
            )
        })?;
        progress.notice(&format!(
            "wrote the {env} pin {} ({})",
            file.display(),
            pin.reference()
        ));
        if req.commit_pin {
            commit_pin(req, file, &text, pin, progress)?;
        }
    }
    let started = Instant::now();
    let outcome = rt.block_on(wait_for(&http, pin, req.timeout));
    let seconds = started.elapsed().as_secs_f64();
    let previous = before.as_ref().ok().map(ServiceVersion::shown);
    let timeout = req.timeout.as_secs();
    match outcome {
        Waited::Serving => {
            let previous = previous.unwrap_or_default();
            let shown = if previous.is_empty() {
                "no answer"
            } else {
                &previous
            };
            let summary = format!(
                "### mlops deploy: {env}\n\n| | |\n|---|---|\n| environment | {env} at {url} |\n| model | {shown} → **{}** |\n| artifact | `{}` |\n| verified | `GET /version` reported the pinned model and artifact |\n| time to serving | {seconds:.1} s |\n",
                pin.reference(),
                pin.model.artifact.sha256
            );
            Ok(Outcome::Deployed(Box::new(Deployed {
                line: format!(
                    "deploy: {env} serves {} at {url} (verified on /version in {seconds:.1} s; before: {shown})",
                    pin.reference(),
                ),
                endpoint: url,
                pin: pin.clone(),
                previous,
                summary,
                watched: None,
            })))
        }
        Waited::Interrupted(signal) => Err(Problem::cancelled(
            format!(
                "deploy: {signal}: stopped waiting; the {env} pin names {} but the service was not seen serving it",
                pin.reference()
            ),
            "",
        )),
        Waited::Other(last) => Err(Problem::refused(
            format!(
                "{env} at {url} still serves {} after {timeout}s, not {}",
                last.shown(),
                pin.reference()
            ),
            "the rollout did not happen: check the GitOps tool's sync of the pin file and the service's logs",
        )),
        Waited::NoAnswer(why) => Err(Problem::broken(
            format!("{env} at {url} did not answer within {timeout}s: {why}"),
            "check that the service runs and that this machine can reach it",
        )),
    }
}

/// The commit of staging's pin file: to the promotion repository's branch `mlops/staging`
/// (created from the base branch; a fast-forward; nothing when it already says the same).
/// Never the base branch: production's pin is there, behind its review rules.
fn commit_pin(
    req: &Request<'_>,
    file: &Path,
    text: &str,
    pin: &Pin,
    progress: &mut dyn Progress,
) -> Result<(), Problem> {
    let env = req.env.name();
    let (settings, repo) = crate::github::promotion(req.manifest)?;
    // The environment's `pin_file` is named relative to the promotion repository; a `--pin`
    // file is taken relative to the manifest's repository.
    let path = match &environment_of(req.manifest, req.env).pin_file {
        Some(p) if req.pin.is_none() => p.trim_start_matches("./").to_owned(),
        _ => {
            let root = repository_root(req.manifest_path);
            let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
            let Ok(relative) = absolute.strip_prefix(&root) else {
                return Err(Problem::input(
                    format!(
                        "{} is outside the repository {}",
                        file.display(),
                        root.display()
                    ),
                    "commit the environment's `pin_file` (drop --pin), or a pin file inside the manifest's repository",
                ));
            };
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        }
    };
    let (rt, gh) = crate::github::connect(req.api_url.as_deref())?;
    let message = format!(
        "Deploy {} to {env}\n\nPins {} in {path}.\n",
        pin.reference(),
        pin.reference()
    );
    let branch = mlops_github::STAGING_BRANCH;
    let committed = rt
        .block_on(mlops_github::promote::set_file_on_branch(
            &gh,
            &repo,
            branch,
            &settings.base_branch,
            &path,
            text,
            &message,
        ))
        .map_err(|e| {
            crate::github::failed(
                &e,
                "the token needs contents: write on the promotion repository, and the rules of the branch `mlops/staging` must let it push",
            )
        })?;
    progress.notice(&match committed {
        Some(sha) => format!(
            "committed {path} to {}:{branch} ({})",
            repo.full(),
            short(&sha)
        ),
        None => format!(
            "{path} on {}:{branch} already pins {}",
            repo.full(),
            pin.reference()
        ),
    });
    Ok(())
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
    let signal = crate::runtime::interrupted();
    tokio::pin!(signal);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut n = 0;
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
            () = tokio::time::sleep(POLL.delay(n).min(deadline - now)) => {}
            sig = &mut signal => return Waited::Interrupted(sig),
        }
        n += 1;
    }
}

/// A check: what serves against the pin, once.
fn check(env: &str, url: &str, pin: &Pin, now: &Result<ServiceVersion, String>) -> Outcome {
    let (verdict, line) = match now {
        Ok(v) if pin.is_reported_by(v) => (
            Verdict::InSync,
            format!("{env} at {url} serves {}, as pinned", pin.reference()),
        ),
        Ok(v) => (
            Verdict::Drift,
            format!(
                "drift: {env} at {url}\n  pinned:  {} (artifact {})\n  serving: {} (artifact {})",
                pin.reference(),
                pin.model.artifact.sha256,
                v.shown(),
                v.artifact_sha256
            ),
        ),
        Err(why) => (Verdict::Unreachable, format!("{env} at {url}: {why}")),
    };
    Outcome::Checked { verdict, line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_image_named_by_a_full_digest_is_by_digest() {
        let d = "0123456789abcdef".repeat(4);
        assert!(image_by_digest(&format!(
            "1.dkr.ecr.eu-west-1.amazonaws.com/m@sha256:{d}"
        )));
        for bad in [
            "repo:latest".to_owned(),
            format!("@sha256:{d}"),
            format!("repo@sha256:{}", d.split_at(63).0),
            format!("repo@sha256:{}", d.to_uppercase()),
            format!("repo@sha256:{d}0"),
            format!("repo@sha256:{}", "é".repeat(32)),
        ] {
            assert!(!image_by_digest(&bad), "{bad}");
        }
    }
}
