//! `mlops gate --pr N`: may production deploy this promotion pull request? Exit 0 yes, 1 no
//! (the rule that decided is printed and written to the step summary), 2 bad input, 3 GitHub
//! failed. The rules are in `mlops_github::gate`.

use mlops_github::gate::{self, Policy};

use super::github::{connect, failed, promotion};
use super::valid_manifest;
use crate::cli::{Format, GateArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &GateArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.manifest, format, "no decision") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let (settings, repo) = match promotion(&m) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let (rt, gh) = match connect(&args.github) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let policy = Policy {
        repo,
        project: m.project.name.clone(),
        base_branch: settings.base_branch.clone(),
        pin_file: settings.pin_file.clone(),
        required_approvals: settings.required_approvals,
        reviewers: settings.reviewers.clone(),
        teams: settings.team_reviewers.clone(),
    };
    let facts = match rt.block_on(gate::gather(&gh, &policy, args.pr)) {
        Ok(f) => f,
        Err(e) if e.path.starts_with("/orgs/") && matches!(e.status, Some(403 | 404)) => {
            return failed(
                &e,
                "reading team members needs organisation members: read; a workflow's GITHUB_TOKEN cannot: pass a GitHub App installation token (e.g. from actions/create-github-app-token) as the gate's `token`",
            );
        }
        Err(e) => return failed(&e, ""),
    };
    let d = gate::decide(&policy, &facts);
    let verdict = if d.allowed { "deploy" } else { "blocked" };
    println!("gate: PR #{} {verdict}: [{}] {}", args.pr, d.rule, d.reason);
    for (login, why) in &d.approvals {
        println!("  counted: {login} ({why})");
    }
    for (login, why) in &d.ignored {
        println!("  not counted: {login}: {why}");
    }
    let actions = mlops_actions::Runtime::from_env();
    if format == Format::Github || actions.is_actions() {
        if !d.allowed && format == Format::Github {
            print!(
                "{}",
                mlops_actions::annotation(
                    mlops_actions::Level::Error,
                    None,
                    "mlops gate",
                    &format!("[{}] {}", d.rule, d.reason)
                )
            );
        }
        let mut summary = format!(
            "### mlops gate: PR #{} {}\n\n**Rule:** `{}`\n\n{}\n",
            args.pr,
            if d.allowed {
                "may deploy"
            } else {
                "is not approved"
            },
            d.rule,
            d.reason
        );
        if !d.approvals.is_empty() || !d.ignored.is_empty() {
            summary.push_str("\n| reviewer | counted | why |\n|---|---|---|\n");
            for (l, w) in &d.approvals {
                summary.push_str(&format!("| {l} | yes | {w} |\n"));
            }
            for (l, w) in &d.ignored {
                summary.push_str(&format!("| {l} | no | {w} |\n"));
            }
        }
        let result = actions
            .set_output("decision", verdict)
            .and_then(|()| actions.set_output("rule", d.rule))
            .and_then(|()| actions.set_output("reason", &d.reason))
            .and_then(|()| actions.set_output("head-sha", &facts.head_sha))
            .and_then(|()| {
                let model = facts
                    .pin
                    .as_ref()
                    .map(|p| p.reference())
                    .unwrap_or_default();
                actions.set_output("model", &model)
            })
            .and_then(|()| actions.append_summary(&summary));
        if let Err(e) = result {
            super::error(&format!("cannot write the step outputs: {e}"), "");
            return Exit::Runtime;
        }
    }
    if d.allowed { Exit::Ok } else { Exit::No }
}
