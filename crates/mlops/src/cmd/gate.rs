//! `mlops gate --pr N`: may production deploy this promotion pull request? `mlops gate --commit
//! SHA`: may production deploy the pin of this commit on the base branch (the merge of an
//! approved promotion pull request)? Exit 0 yes, 1 no (the rule that decided is printed and
//! written to the step summary), 2 bad input, 3 GitHub failed. The question is
//! [`mlops_core::gate::decide`]'s; this shows the answer.

use super::valid_manifest;
use crate::cli::{Format, GateArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &GateArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.manifest, format, "no decision") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = mlops_core::gate::Request {
        manifest: &m,
        commit: args.commit.clone(),
        pr: args.pr,
        api_url: args.github.github_api_url.clone(),
    };
    let gated = match mlops_core::gate::decide(&request) {
        Ok(g) => g,
        Err(p) => return super::failed(&p),
    };
    let (d, subject, facts) = (&gated.decision, &gated.subject, &gated.facts);
    print!("{}", d.describe(subject));
    let actions = mlops_actions::Runtime::from_env();
    if format == Format::Github || actions.is_actions() {
        if !d.allowed && format == Format::Github {
            crate::out::command(&mlops_actions::annotation(
                mlops_actions::Level::Error,
                None,
                "mlops gate",
                &format!("[{}] {}", d.rule, d.reason),
            ));
        }
        let result = actions
            .set_output("decision", d.verdict())
            .and_then(|()| actions.set_output("rule", d.rule))
            .and_then(|()| actions.set_output("reason", &d.reason))
            .and_then(|()| {
                let head = facts.as_ref().map(|f| f.head_sha.as_str());
                actions.set_output("head-sha", head.unwrap_or_default())
            })
            .and_then(|()| {
                let model = facts
                    .as_ref()
                    .and_then(|f| f.pin.as_ref().ok())
                    .map(|p| p.reference())
                    .unwrap_or_default();
                actions.set_output("model", &model)
            })
            .and_then(|()| actions.append_summary(&d.summary_markdown(subject)));
        if let Err(e) = result {
            super::error(&format!("cannot write the step outputs: {e}"), "");
            return Exit::Runtime;
        }
    }
    // Teams the token could not read are a setting to fix, not the reviewers' answer.
    if d.allowed {
        Exit::Ok
    } else if gated.blocked_by_unread_teams() {
        Exit::Runtime
    } else {
        Exit::No
    }
}
