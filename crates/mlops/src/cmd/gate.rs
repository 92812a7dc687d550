//! `mlops gate --pr N`: may production deploy this promotion pull request? `mlops gate --commit
//! SHA`: may production deploy the pin of this commit on the base branch (the merge of an
//! approved promotion pull request)? Exit 0 yes, 1 no (the rule that decided is printed and
//! written to the step summary), 2 bad input, 3 GitHub failed. The rules are in
//! `mlops_github::gate`.

use mlops_github::gate::{self, Policy, short};

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
    let read = rt.block_on(async {
        match (&args.commit, args.pr) {
            (Some(commit), _) => gate::gather_merge(&gh, &policy, commit)
                .await
                .map(|(merge, facts)| (Some(merge), facts)),
            (None, Some(n)) => gate::gather(&gh, &policy, n)
                .await
                .map(|facts| (None, Some(facts))),
            // clap requires one of the two.
            (None, None) => Ok((None, None)),
        }
    });
    let (merge, facts) = match read {
        Ok(found) => found,
        Err(e) => return failed(&e, ""),
    };
    let d = match (&merge, &facts) {
        (Some(merge), facts) => gate::decide_merge(&policy, merge, facts.as_ref()),
        (None, Some(facts)) => gate::decide(&policy, facts),
        (None, None) => return Exit::Usage,
    };
    let subject = match (&merge, args.pr) {
        (Some(m), _) => match m.number {
            Some(n) => format!("commit {} (the merge of PR #{n})", short(&m.commit)),
            None => format!("commit {}", short(&m.commit)),
        },
        (None, n) => format!("PR #{}", n.unwrap_or_default()),
    };
    let verdict = if d.allowed { "deploy" } else { "blocked" };
    println!("gate: {subject} {verdict}: [{}] {}", d.rule, d.reason);
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
            "### mlops gate: {subject} {}\n\n**Rule:** `{}`\n\n{}\n",
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
            .and_then(|()| actions.append_summary(&summary));
        if let Err(e) = result {
            super::error(&format!("cannot write the step outputs: {e}"), "");
            return Exit::Runtime;
        }
    }
    // Teams the token could not read are a setting to fix, not the reviewers' answer.
    let unread = facts
        .as_ref()
        .is_some_and(|f| !f.unreadable_teams.is_empty());
    match (d.allowed, d.rule == "approvals" && unread) {
        (true, _) => Exit::Ok,
        (false, true) => Exit::Runtime,
        (false, false) => Exit::No,
    }
}
