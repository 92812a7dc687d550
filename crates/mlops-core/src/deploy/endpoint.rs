//! Deploying to a SageMaker endpoint: a SageMaker model of the pin (the serving image by
//! digest, the registry's model files under their S3 prefix, `MLOPS_ARTIFACT_SHA256` set so the
//! container refuses any other artifact), an endpoint configuration with the manifest's capacity,
//! then the endpoint created or updated (blue/green; a canary with automatic rollback when the
//! manifest names alarms), and waited for until `InService`.
//!
//! Names are derived from what they contain (model version, artifact, image, role, capacity), so
//! a re-run finds what an earlier one made, and deploying what already serves is a no-op that
//! says so. SageMaker never leaves an endpoint half-updated: a failed update keeps the previous
//! configuration serving, and an interrupted deploy leaves SageMaker to finish or roll back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mlops_artifacts::artifact::sha256_hex;
use mlops_aws::{Capacity, DataCapture, EndpointState, ModelSpec, Poll, SageMaker};
use mlops_github::pin::Pin;
use mlops_manifest::model::SagemakerEndpoint;

use super::{Deployed, Outcome, Request, Verdict};
use crate::{Problem, Progress};

/// A name SageMaker accepts (`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`): `prefix` made of letters,
/// digits and single hyphens, cut so that `-suffix` fits in 63 characters.
pub(crate) fn name(prefix: &str, suffix: &str) -> String {
    let mut clean = String::new();
    for c in prefix.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    let room = 63 - suffix.len() - 1;
    let cut: String = clean.chars().take(room).collect();
    format!("{}-{suffix}", cut.trim_end_matches('-'))
}

/// What a deploy makes, by name.
#[derive(Debug)]
struct Plan {
    endpoint: String,
    model: ModelSpec,
    config: String,
    capacity: Capacity,
    /// Production's `DataCaptureConfig` (`monitoring.capture` in S3).
    capture: Option<DataCapture>,
    tags: BTreeMap<String, String>,
    alarms: Vec<String>,
}

fn plan(req: &Request<'_>, target: &SagemakerEndpoint, pin: &Pin) -> Result<Plan, Problem> {
    let reference = pin.reference();
    // An endpoint with its own serving image serves with exactly that one; a pin made before
    // the manifest named it (a rollback's) takes it too.
    let pinned = match (&target.image, &pin.model.image) {
        (Some(own), Some(other)) if own != other => {
            return Err(Problem::refused(
                format!(
                    "the pin of {reference} names the serving image {other}; the endpoint \
                     {} serves with its own, {own}: aborting before any traffic moves",
                    target.endpoint_name
                ),
                "promote the version again (without --image) so its pin names the \
                 environment's image",
            ));
        }
        (Some(own), _) => Some(own.clone()),
        (None, p) => p.clone(),
    };
    let Some(image) = pinned.filter(|i| i.contains("@sha256:")) else {
        return Err(Problem::input(
            format!("the pin of {reference} names no serving image by digest"),
            "SageMaker serves the model image: pass --image REPOSITORY@sha256:... for staging (`mlops image push` prints it), and promote with --image so production's pin has it",
        ));
    };
    let data = &pin.model.artifact.uri;
    if !data.starts_with("s3://") {
        return Err(Problem::input(
            format!("{reference} is in {data}, which SageMaker cannot read"),
            "register SageMaker-served models in an S3 registry (`registry.path: s3://...`)",
        ));
    }
    let role = req.role_arn.clone().or_else(|| {
        req.manifest
            .training
            .sagemaker
            .as_ref()
            .map(|s| s.role_arn.clone())
    });
    let Some(role_arn) = role else {
        return Err(Problem::input(
            "no IAM role for the SageMaker model",
            "set `training.sagemaker.role_arn` (the role terraform/sagemaker.tf creates) or pass --role-arn",
        ));
    };
    let capacity = match (&target.serverless, &target.instance_type) {
        (Some(s), _) => Capacity::Serverless {
            memory_mb: s.memory_mb,
            max_concurrency: s.max_concurrency,
        },
        (None, Some(t)) => Capacity::Instances {
            instance_type: t.clone(),
            count: target.instance_count,
        },
        (None, None) => {
            return Err(Problem::input(
                format!(
                    "the SageMaker endpoint {} has neither `instance_type` nor `serverless`",
                    target.endpoint_name
                ),
                "set one of them in the manifest",
            ));
        }
    };
    // Production's endpoint captures what it is asked and answers, for `mlops monitor`
    // (SageMaker's serverless endpoints cannot).
    let capture = match req
        .manifest
        .monitoring
        .as_ref()
        .and_then(|m| m.capture.as_ref())
    {
        Some(c) if req.env == super::Env::Production && c.destination.starts_with("s3://") => {
            if matches!(capacity, Capacity::Serverless { .. }) {
                return Err(Problem::input(
                    format!(
                        "production's endpoint {} is serverless, and SageMaker's serverless \
                         endpoints cannot capture data (`monitoring.capture`)",
                        target.endpoint_name
                    ),
                    "serve production on instances (`instance_type`), or drop `monitoring.capture`",
                ));
            }
            Some(DataCapture {
                destination: c.destination.clone(),
                sample_percent: c.sample_percent.round().clamp(0.0, 100.0) as u32,
                kms_key_id: c.kms_key_id.clone(),
            })
        }
        _ => None,
    };
    // Everything the endpoint serves goes into the names: same inputs, same names.
    let digest = sha256_hex(
        format!(
            "{}|{}|{image}|{role_arn}|{capacity:?}{}",
            reference,
            pin.model.artifact.sha256,
            capture
                .as_ref()
                .map_or_else(String::new, |c| format!("|{c:?}"))
        )
        .as_bytes(),
    );
    let key = digest.get(..10).unwrap_or(&digest).to_owned();
    let version = format!("v{}", pin.model.version);
    let mut tags = BTreeMap::from([
        ("mlops:model-version".to_owned(), reference.clone()),
        (
            "mlops:artifact-sha256".to_owned(),
            pin.model.artifact.sha256.clone(),
        ),
        (
            "mlops:manifest-sha256".to_owned(),
            pin.manifest_sha256.clone(),
        ),
    ]);
    if let Some(run) = crate::promote::workflow_run_url() {
        tags.insert("mlops:workflow-run".to_owned(), run);
    }
    Ok(Plan {
        endpoint: target.endpoint_name.clone(),
        model: ModelSpec {
            // Named after the endpoint, as its configuration is: the environment's role may
            // create models and configurations only under its endpoint's name (github_oidc.tf).
            name: name(&format!("{}-{version}", target.endpoint_name), &key),
            image,
            data_prefix: format!("{}/", data.trim_end_matches('/')),
            role_arn,
            environment: BTreeMap::from([(
                "MLOPS_ARTIFACT_SHA256".to_owned(),
                pin.model.artifact.sha256.clone(),
            )]),
            tags: tags.clone(),
        },
        config: name(&format!("{}-{version}", target.endpoint_name), &key),
        capacity,
        capture,
        tags,
        alarms: target.rollback_alarms.clone(),
    })
}

/// How waiting ended.
enum Ended {
    /// Waited to the end: the endpoint's state then.
    Settled(EndpointState),
    Interrupted(&'static str),
}

/// Deploys `pin` to the endpoint; `extra` tags (a break-glass deploy's who and why) go on the
/// endpoint itself as well as on what is created.
pub(super) fn deploy(
    req: &Request<'_>,
    target: &SagemakerEndpoint,
    pin: &Pin,
    extra: &BTreeMap<String, String>,
    progress: &mut dyn Progress,
) -> Result<Outcome, Problem> {
    let env = req.env.name();
    let mut p = plan(req, target, pin)?;
    p.tags
        .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rt = mlops_aws::runtime()?;
    let poll = Poll {
        first: Duration::from_secs_f64(req.poll_seconds.min(60.0)),
        max: Duration::from_secs(60),
        ..Poll::default()
    };
    rt.block_on(async {
        let sm = SageMaker::from_env().await;
        let before = sm.endpoint(&p.endpoint).await?;
        let serving = before
            .as_ref()
            .is_some_and(|b| b.status == "InService" && b.config.as_deref() == Some(&p.config));
        if req.check {
            return Ok(check(env, &p, pin, before.as_ref(), serving));
        }
        if serving {
            let line = format!(
                "deploy: {env} endpoint {} already serves {} (configuration {}): nothing to do",
                p.endpoint,
                pin.reference(),
                p.config
            );
            return Ok(deployed(env, &p, pin, before.as_ref(), 0.0, line));
        }
        let started = Instant::now();
        // Another change in progress is waited for first: SageMaker takes one at a time.
        let before = match before {
            Some(b) if !b.is_settled() => {
                progress.notice(&format!(
                    "endpoint {}: {} (another change in progress; waiting for it)",
                    b.name, b.status
                ));
                match watch(&sm, &p.endpoint, poll, |s| progress.notice(&state(s))).await? {
                    Ended::Settled(s) => Some(s),
                    Ended::Interrupted(sig) => return Err(interrupted(&sm, &p, sig).await),
                }
            }
            other => other,
        };
        if !sm.model_exists(&p.model.name).await? {
            sm.create_model(&p.model).await?;
            progress.notice(&format!(
                "created the SageMaker model {} ({})",
                p.model.name, p.model.image
            ));
        }
        if !sm.endpoint_config_exists(&p.config).await? {
            sm.create_endpoint_config(
                &p.config,
                &p.model.name,
                &p.capacity,
                p.capture.as_ref(),
                &p.tags,
            )
                .await?;
            progress.notice(&format!("created the endpoint configuration {}", p.config));
        }
        match &before {
            None => sm.create_endpoint(&p.endpoint, &p.config, &p.tags).await?,
            Some(_) => {
                sm.update_endpoint(&p.endpoint, &p.config, &p.capacity, &p.alarms)
                    .await?;
            }
        }
        progress.notice(&format!(
            "{} {} with {}; waiting for InService",
            if before.is_none() { "creating" } else { "updating" },
            p.endpoint,
            p.config
        ));
        let end = match watch(&sm, &p.endpoint, poll, |s| progress.notice(&state(s))).await? {
            Ended::Settled(s) => s,
            Ended::Interrupted(sig) => return Err(interrupted(&sm, &p, sig).await),
        };
        let seconds = started.elapsed().as_secs_f64();
        if end.status == "InService" && end.config.as_deref() == Some(&p.config) {
            if !extra.is_empty()
                && let Err(e) = sm.add_tags(&end.arn, extra).await
            {
                progress.notice(&format!(
                    "warning: the endpoint serves the pin, but it could not be tagged: {}",
                    e.message
                ));
            }
            let line = format!(
                "deploy: {env} endpoint {} serves {} (configuration {}, InService after {seconds:.0} s)",
                p.endpoint,
                pin.reference(),
                p.config
            );
            return Ok(deployed(env, &p, pin, before.as_ref(), seconds, line));
        }
        let reason = end
            .failure_reason
            .clone()
            .unwrap_or_else(|| "SageMaker gave no reason".to_owned());
        Err(match (&before, end.config.as_deref()) {
            (Some(_), Some(old)) if end.status == "InService" => Problem::refused(
                format!(
                    "the update of {} to {} failed: {reason}; the endpoint still serves {old}",
                    p.endpoint,
                    pin.reference()
                ),
                "SageMaker rolled the update back; fix what the reason names (the model's CloudWatch logs: /aws/sagemaker/Endpoints/...) and deploy again",
            ),
            _ => Problem::broken(
                format!("the endpoint {} is {}: {reason}", p.endpoint, end.status),
                "read the endpoint's CloudWatch logs (/aws/sagemaker/Endpoints/...), fix the cause and deploy again",
            ),
        })
    })
}

/// One line per state the endpoint passes through.
fn state(s: &EndpointState) -> String {
    format!(
        "endpoint {}: {}{}",
        s.name,
        s.status,
        s.config
            .as_deref()
            .map(|c| format!(" (serving {c})"))
            .unwrap_or_default()
    )
}

/// Deletes the staging endpoint, if there is one.
pub(super) fn teardown(endpoint: &str) -> Result<Outcome, Problem> {
    let rt = mlops_aws::runtime()?;
    rt.block_on(async {
        let sm = SageMaker::from_env().await;
        let Some(s) = sm.endpoint(endpoint).await? else {
            return Ok(Outcome::TornDown(format!(
                "deploy: no endpoint {endpoint}: nothing to tear down"
            )));
        };
        sm.delete_endpoint(endpoint).await?;
        Ok(Outcome::TornDown(format!(
            "deploy: deleted the endpoint {endpoint} (it served {}); its models and configurations stay, so a deploy brings it back",
            s.config.as_deref().unwrap_or("nothing")
        )))
    })
}

/// Waits for the endpoint to settle, or for SIGINT/SIGTERM.
async fn watch(
    sm: &SageMaker,
    endpoint: &str,
    poll: Poll,
    say: impl FnMut(&EndpointState),
) -> Result<Ended, mlops_aws::AwsError> {
    tokio::select! {
        end = sm.wait_endpoint(endpoint, poll, say) => end.map(Ended::Settled),
        sig = crate::runtime::interrupted() => Ok(Ended::Interrupted(sig)),
    }
}

/// What the endpoint serves after an interruption (SageMaker finishes or rolls back the change
/// by itself: nothing is left half-updated), as the cancellation.
async fn interrupted(sm: &SageMaker, p: &Plan, signal: &str) -> Problem {
    let now = sm.endpoint(&p.endpoint).await.ok().flatten();
    let message = match now {
        Some(s) => format!(
            "deploy: {signal}: stopped waiting; the endpoint {} is {} and serves {} (SageMaker completes the change to {} or rolls it back by itself; traffic only ever reaches a complete configuration)",
            p.endpoint,
            s.status,
            s.config.as_deref().unwrap_or("nothing yet"),
            p.config
        ),
        None => format!(
            "deploy: {signal}: stopped waiting; the endpoint {} does not exist yet",
            p.endpoint
        ),
    };
    Problem::cancelled(message, "")
}

fn check(env: &str, p: &Plan, pin: &Pin, now: Option<&EndpointState>, serving: bool) -> Outcome {
    if serving {
        return Outcome::Checked {
            verdict: Verdict::InSync,
            line: format!(
                "{env} endpoint {} serves {}, as pinned (configuration {})",
                p.endpoint,
                pin.reference(),
                p.config
            ),
        };
    }
    let what = now.map_or_else(
        || "no such endpoint".to_owned(),
        |s| {
            format!(
                "{} with configuration {}",
                s.status,
                s.config.as_deref().unwrap_or("none")
            )
        },
    );
    Outcome::Checked {
        verdict: Verdict::Drift,
        line: format!(
            "drift: {env} endpoint {}\n  pinned:  {} (configuration {})\n  serving: {what}",
            p.endpoint,
            pin.reference(),
            p.config
        ),
    }
}

fn deployed(
    env: &str,
    p: &Plan,
    pin: &Pin,
    before: Option<&EndpointState>,
    seconds: f64,
    line: String,
) -> Outcome {
    let previous = before.and_then(|b| b.config.clone()).unwrap_or_default();
    let summary = format!(
        "### mlops deploy: {env}\n\n| | |\n|---|---|\n| environment | {env}: SageMaker endpoint `{}` |\n| configuration | {} → **{}** |\n| model | {} (`{}`) |\n| verified | `DescribeEndpoint`: InService on the new configuration |\n| time to InService | {seconds:.0} s |\n",
        p.endpoint,
        if previous.is_empty() {
            "none"
        } else {
            &previous
        },
        p.config,
        pin.reference(),
        p.model.image
    );
    Outcome::Deployed(Box::new(Deployed {
        line,
        endpoint: p.endpoint.clone(),
        pin: pin.clone(),
        previous,
        summary,
        watched: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn names_fit_sagemaker_rules() {
        assert_eq!(
            name("digits_mlp-v3", "0123456789"),
            "digits-mlp-v3-0123456789"
        );
        // The longest endpoint name the schema takes keeps `NAME-v` whole (the deploy role's
        // resource prefix), whatever the version.
        let endpoint = "e".repeat(50);
        let longest = name(&format!("{endpoint}-v1000"), "0123456789");
        assert!(longest.starts_with(&format!("{endpoint}-v")), "{longest}");
        assert!(longest.len() <= 63, "{longest}");
        let long = name(&"x".repeat(100), "0123456789");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-0123456789"));
        assert_eq!(name("a--b__c-", "k"), "a-b-c-k");
    }
}
