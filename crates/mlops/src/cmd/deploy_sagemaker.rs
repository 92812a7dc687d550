//! `mlops deploy` to a SageMaker endpoint: a SageMaker model of the pin (the serving image by
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

use mlops_aws::{Capacity, EndpointState, ModelSpec, Poll, SageMaker};
use mlops_github::pin::Pin;
use mlops_manifest::Manifest;
use mlops_manifest::model::SagemakerEndpoint;
use sha2::{Digest, Sha256};

use super::{aws_failed, error, hex};
use crate::cli::{DeployArgs, Format};
use crate::exit::Exit;

/// A name SageMaker accepts (`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`): `prefix` made of letters,
/// digits and single hyphens, cut so that `-suffix` fits in 63 characters.
fn name(prefix: &str, suffix: &str) -> String {
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
struct Plan {
    endpoint: String,
    model: ModelSpec,
    config: String,
    capacity: Capacity,
    tags: BTreeMap<String, String>,
    alarms: Vec<String>,
}

fn plan(
    args: &DeployArgs,
    m: &Manifest,
    target: &SagemakerEndpoint,
    pin: &Pin,
) -> Result<Plan, Exit> {
    let reference = pin.reference();
    let Some(image) = pin.model.image.clone().filter(|i| i.contains("@sha256:")) else {
        error(
            &format!("the pin of {reference} names no serving image by digest"),
            "SageMaker serves the model image: pass --image REPOSITORY@sha256:... for staging (`mlops image push` prints it), and promote with --image so production's pin has it",
        );
        return Err(Exit::Usage);
    };
    let data = &pin.model.artifact.uri;
    if !data.starts_with("s3://") {
        error(
            &format!("{reference} is in {data}, which SageMaker cannot read"),
            "register SageMaker-served models in an S3 registry (`registry.path: s3://...`)",
        );
        return Err(Exit::Usage);
    }
    let role = args
        .role_arn
        .clone()
        .or_else(|| m.training.sagemaker.as_ref().map(|s| s.role_arn.clone()));
    let Some(role_arn) = role else {
        error(
            "no IAM role for the SageMaker model",
            "set `training.sagemaker.role_arn` (the role terraform/sagemaker.tf creates) or pass --role-arn",
        );
        return Err(Exit::Usage);
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
            error(
                &format!(
                    "the SageMaker endpoint {} has neither `instance_type` nor `serverless`",
                    target.endpoint_name
                ),
                "set one of them in the manifest",
            );
            return Err(Exit::Usage);
        }
    };
    // Everything the endpoint serves goes into the names: same inputs, same names.
    let key = hex(&Sha256::digest(format!(
        "{}|{}|{image}|{role_arn}|{capacity:?}",
        reference, pin.model.artifact.sha256
    )))[..10]
        .to_owned();
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
    if let (Ok(server), Ok(repo), Ok(run)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        tags.insert(
            "mlops:workflow-run".to_owned(),
            format!("{server}/{repo}/actions/runs/{run}"),
        );
    }
    Ok(Plan {
        endpoint: target.endpoint_name.clone(),
        model: ModelSpec {
            name: name(&format!("{}-{version}", pin.model.name), &key),
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
        tags,
        alarms: target.rollback_alarms.clone(),
    })
}

/// How the deploy ended.
enum Ended {
    /// Waited to the end: the endpoint's state then.
    Settled(EndpointState),
    Interrupted(&'static str),
}

/// Deploys `pin` to the endpoint; `extra` tags (a break-glass deploy's who and why) go on the
/// endpoint itself as well as on what is created.
pub(crate) fn run(
    args: &DeployArgs,
    m: &Manifest,
    target: &SagemakerEndpoint,
    pin: &Pin,
    extra: &BTreeMap<String, String>,
    format: Format,
) -> Exit {
    let env = args.env.name();
    let mut p = match plan(args, m, target, pin) {
        Ok(p) => p,
        Err(code) => return code,
    };
    p.tags
        .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rt = match mlops_aws::runtime() {
        Ok(rt) => rt,
        Err(e) => return aws_failed(&e),
    };
    let poll = Poll {
        first: Duration::from_secs_f64(args.poll_seconds.min(60.0)),
        max: Duration::from_secs(60),
        ..Poll::default()
    };
    rt.block_on(async {
        let sm = SageMaker::from_env().await;
        let before = match sm.endpoint(&p.endpoint).await {
            Ok(b) => b,
            Err(e) => return aws_failed(&e),
        };
        let serving = before
            .as_ref()
            .is_some_and(|b| b.status == "InService" && b.config.as_deref() == Some(&p.config));
        if args.check {
            return check(env, &p, pin, before.as_ref(), serving);
        }
        if serving {
            println!(
                "deploy: {env} endpoint {} already serves {} (configuration {}): nothing to do",
                p.endpoint,
                pin.reference(),
                p.config
            );
            return report(env, &p, pin, before.as_ref(), 0.0, format);
        }
        let started = Instant::now();
        let say = |s: &EndpointState| {
            eprintln!(
                "endpoint {}: {}{}",
                s.name,
                s.status,
                s.config
                    .as_deref()
                    .map(|c| format!(" (serving {c})"))
                    .unwrap_or_default()
            );
        };
        // Another change in progress is waited for first: SageMaker takes one at a time.
        let before = match before {
            Some(b) if !b.is_settled() => {
                eprintln!("endpoint {}: {} (another change in progress; waiting for it)", b.name, b.status);
                match watch(&sm, &p.endpoint, poll, say).await {
                    Ok(Ended::Settled(s)) => Some(s),
                    Ok(Ended::Interrupted(sig)) => return interrupted(&sm, &p, sig).await,
                    Err(e) => return aws_failed(&e),
                }
            }
            other => other,
        };
        let made = async {
            if !sm.model_exists(&p.model.name).await? {
                sm.create_model(&p.model).await?;
                eprintln!("created the SageMaker model {} ({})", p.model.name, p.model.image);
            }
            if !sm.endpoint_config_exists(&p.config).await? {
                sm.create_endpoint_config(&p.config, &p.model.name, &p.capacity, &p.tags)
                    .await?;
                eprintln!("created the endpoint configuration {}", p.config);
            }
            match &before {
                None => sm.create_endpoint(&p.endpoint, &p.config, &p.tags).await,
                Some(_) => {
                    sm.update_endpoint(&p.endpoint, &p.config, &p.capacity, &p.alarms)
                        .await
                }
            }
        };
        if let Err(e) = made.await {
            return aws_failed(&e);
        }
        eprintln!(
            "{} {} with {}; waiting for InService",
            if before.is_none() { "creating" } else { "updating" },
            p.endpoint,
            p.config
        );
        let end = match watch(&sm, &p.endpoint, poll, say).await {
            Ok(Ended::Settled(s)) => s,
            Ok(Ended::Interrupted(sig)) => return interrupted(&sm, &p, sig).await,
            Err(e) => return aws_failed(&e),
        };
        let seconds = started.elapsed().as_secs_f64();
        if end.status == "InService" && end.config.as_deref() == Some(&p.config) {
            if !extra.is_empty()
                && let Err(e) = sm.add_tags(&end.arn, extra).await
            {
                eprintln!("warning: the endpoint serves the pin, but it could not be tagged: {}", e.message);
            }
            println!(
                "deploy: {env} endpoint {} serves {} (configuration {}, InService after {seconds:.0} s)",
                p.endpoint,
                pin.reference(),
                p.config
            );
            return report(env, &p, pin, before.as_ref(), seconds, format);
        }
        let reason = end
            .failure_reason
            .clone()
            .unwrap_or_else(|| "SageMaker gave no reason".to_owned());
        match (&before, end.config.as_deref()) {
            (Some(_), Some(old)) if end.status == "InService" => {
                error(
                    &format!(
                        "the update of {} to {} failed: {reason}; the endpoint still serves {old}",
                        p.endpoint,
                        pin.reference()
                    ),
                    "SageMaker rolled the update back; fix what the reason names (the model's CloudWatch logs: /aws/sagemaker/Endpoints/...) and deploy again",
                );
                Exit::No
            }
            _ => {
                error(
                    &format!(
                        "the endpoint {} is {}: {reason}",
                        p.endpoint, end.status
                    ),
                    "read the endpoint's CloudWatch logs (/aws/sagemaker/Endpoints/...), fix the cause and deploy again",
                );
                Exit::Runtime
            }
        }
    })
}

/// `--teardown`: deletes the staging endpoint, if there is one.
pub(crate) fn teardown(endpoint: &str) -> Exit {
    let rt = match mlops_aws::runtime() {
        Ok(rt) => rt,
        Err(e) => return aws_failed(&e),
    };
    rt.block_on(async {
        let sm = SageMaker::from_env().await;
        match sm.endpoint(endpoint).await {
            Ok(None) => {
                println!("deploy: no endpoint {endpoint}: nothing to tear down");
                Exit::Ok
            }
            Ok(Some(s)) => match sm.delete_endpoint(endpoint).await {
                Ok(()) => {
                    println!(
                        "deploy: deleted the endpoint {endpoint} (it served {}); its models and configurations stay, so a deploy brings it back",
                        s.config.as_deref().unwrap_or("nothing")
                    );
                    Exit::Ok
                }
                Err(e) => aws_failed(&e),
            },
            Err(e) => aws_failed(&e),
        }
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
        sig = mlops_core::runtime::interrupted() => Ok(Ended::Interrupted(sig)),
    }
}

/// Says what the endpoint serves after an interruption (SageMaker finishes or rolls back the
/// change by itself: nothing is left half-updated); 130.
async fn interrupted(sm: &SageMaker, p: &Plan, signal: &str) -> Exit {
    let now = sm.endpoint(&p.endpoint).await.ok().flatten();
    match now {
        Some(s) => eprintln!(
            "deploy: {signal}: stopped waiting; the endpoint {} is {} and serves {} (SageMaker completes the change to {} or rolls it back by itself; traffic only ever reaches a complete configuration)",
            p.endpoint,
            s.status,
            s.config.as_deref().unwrap_or("nothing yet"),
            p.config
        ),
        None => eprintln!(
            "deploy: {signal}: stopped waiting; the endpoint {} does not exist yet",
            p.endpoint
        ),
    }
    Exit::Cancelled
}

fn check(env: &str, p: &Plan, pin: &Pin, now: Option<&EndpointState>, serving: bool) -> Exit {
    if serving {
        println!(
            "{env} endpoint {} serves {}, as pinned (configuration {})",
            p.endpoint,
            pin.reference(),
            p.config
        );
        return Exit::Ok;
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
    eprintln!(
        "drift: {env} endpoint {}\n  pinned:  {} (configuration {})\n  serving: {what}",
        p.endpoint,
        pin.reference(),
        p.config
    );
    Exit::No
}

fn report(
    env: &str,
    p: &Plan,
    pin: &Pin,
    before: Option<&EndpointState>,
    seconds: f64,
    format: Format,
) -> Exit {
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
    super::deploy::outputs(&p.endpoint, pin, &previous, &summary, format)
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
        let long = name(&"x".repeat(100), "0123456789");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-0123456789"));
        assert_eq!(name("a--b__c-", "k"), "a-b-c-k");
    }
}
