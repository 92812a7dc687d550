//! `mlops deploy`: the arguments to a [`mlops_core::deploy::Request`]; the deploy, check,
//! rollback or teardown it asks for; then the line, the step outputs and the summary.
//!
//! Exit codes: 0 deployed (or in sync), 1 refused or drift or another version kept serving, or
//! the watch after the deploy found a breach, 2 bad input, 3 the service never answered (or
//! SageMaker failed), 130 interrupted.

use std::time::Duration;

use mlops_core::deploy::{self as core, Deployed, Env, Outcome, Request, Verdict};

use super::{error, valid_manifest};
use crate::cli::{DeployArgs, DeployEnv, Format};
use crate::exit::Exit;

/// The environment the arguments name.
fn env(e: DeployEnv) -> Env {
    match e {
        DeployEnv::Staging => Env::Staging,
        DeployEnv::Production => Env::Production,
    }
}

pub(crate) fn run(args: &DeployArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing deployed") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = Request {
        manifest: &m,
        manifest_path: &args.registry.manifest,
        env: env(args.env),
        model: args.model.clone(),
        pin: args.pin.clone(),
        image: args.image.clone(),
        endpoint: args.endpoint.clone(),
        role_arn: args.role_arn.clone(),
        check: args.check,
        commit_pin: args.commit_pin,
        timeout: Duration::from_secs(args.timeout_seconds),
        poll_seconds: args.poll_seconds,
        api_url: args.github.github_api_url.clone(),
        no_watch: args.no_watch,
        defer_rollback_pr: args.defer_rollback_pr,
    };
    let mut console = super::Console(format);
    let outcome = if args.teardown {
        core::teardown(&request)
    } else {
        let registry = match super::registry(&args.registry, format) {
            Ok(r) => r,
            Err(code) => return code,
        };
        if args.rollback {
            let back = if args.immediate {
                core::Back::Immediate
            } else if args.break_glass {
                core::Back::AtOnce
            } else {
                core::Back::PullRequest
            };
            core::rollback(
                &request,
                &registry,
                args.reason.as_deref(),
                back,
                &mut console,
            )
        } else {
            core::deploy(&request, &registry, &mut console)
        }
    };
    match outcome {
        Ok(Outcome::Deployed(d)) => {
            println!("{}", d.line);
            outputs(&d, format)
        }
        Ok(Outcome::Checked { verdict, line }) => checked(args.env.name(), verdict, &line, format),
        Ok(Outcome::TornDown(line)) => {
            println!("{line}");
            Exit::Ok
        }
        Ok(Outcome::Propose(prepared)) => crate::proposal::propose(
            &prepared,
            args.github.github_api_url.as_deref(),
            false,
            format,
        ),
        Ok(Outcome::Breached { deployed, rollback }) => breached(&deployed, rollback, args, format),
        Err(p) => super::failed(&p),
    }
}

/// The watch after the deploy found a breach: the deploy's line, each breach (and the output
/// `breach`, on one line), then production's rollback proposed (the revert promotion, through the
/// gate), left to a later job, or why there is none. Exit 1 whatever the rollback did.
fn breached(
    deployed: &Deployed,
    rollback: Option<Result<Box<Outcome>, mlops_core::Problem>>,
    args: &DeployArgs,
    format: Format,
) -> Exit {
    println!("{}", deployed.line);
    let Some(watched) = deployed.watched.as_ref() else {
        return Exit::No;
    };
    for b in &watched.breaches {
        error(&format!("watch: {b}"), "");
    }
    let _ = outputs(deployed, format);
    let actions = mlops_actions::Runtime::from_env();
    if (format == Format::Github || actions.is_actions())
        && let Err(e) = actions.set_output("breach", &watched.reason())
    {
        error(&format!("cannot write the step output `breach`: {e}"), "");
    }
    match rollback.map(|r| r.map(|o| *o)) {
        None => {
            eprintln!(
                "watch: the rollback pull request of {} is left to a later job (--defer-rollback-pr): \
                 `mlops deploy --env {} --rollback --reason` with the output `breach`",
                args.env.name(),
                args.env.name()
            );
        }
        Some(Ok(Outcome::Propose(prepared))) => {
            eprintln!(
                "watch: rolling {} back: proposing {}",
                args.env.name(),
                prepared.p.title
            );
            let _ = crate::proposal::propose(
                &prepared,
                args.github.github_api_url.as_deref(),
                false,
                format,
            );
        }
        Some(Ok(Outcome::Deployed(d))) => {
            eprintln!("watch: rolled {} back: {}", args.env.name(), d.line);
        }
        Some(Ok(_)) => {}
        Some(Err(p)) => {
            error(&format!("watch: no rollback: {}", p.message), &p.hint);
        }
    }
    Exit::No
}

/// A check's verdict: the line (stdout when in sync), and in Actions the output `in-sync` and
/// the summary.
fn checked(env: &str, verdict: Verdict, line: &str, format: Format) -> Exit {
    let code = match verdict {
        Verdict::InSync => Exit::Ok,
        Verdict::Drift => Exit::No,
        Verdict::Unreachable => Exit::Runtime,
    };
    if code == Exit::Ok {
        println!("{line}");
    } else {
        eprintln!("{line}");
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

/// In Actions (or with `--format github`): the outputs `endpoint`, `model-version` and
/// `previous`, and the summary.
fn outputs(d: &Deployed, format: Format) -> Exit {
    let actions = mlops_actions::Runtime::from_env();
    if format != Format::Github && !actions.is_actions() {
        return Exit::Ok;
    }
    let result = actions
        .set_output("endpoint", &d.endpoint)
        .and_then(|()| actions.set_output("model-version", &d.pin.reference()))
        .and_then(|()| actions.set_output("previous", &d.previous))
        .and_then(|()| actions.append_summary(&d.summary));
    if let Err(e) = result {
        error(&format!("cannot write the step outputs: {e}"), "");
        return Exit::Runtime;
    }
    Exit::Ok
}
