//! The gate's question, asked of GitHub: may production deploy this promotion pull request (or
//! the pin of this commit, the merge of one)? The facts are gathered through the API and the
//! decision is [`mlops_github::gate`]'s pure function of them.

use mlops_artifacts::short;
use mlops_github::gate::{self, Decision, Facts, Policy};
use mlops_github::revert;
use mlops_manifest::Manifest;

use crate::Problem;

/// What the gate is asked about.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    /// A commit on the base branch (production's deploy), or else a pull request.
    pub commit: Option<String>,
    pub pr: Option<u64>,
    pub api_url: Option<String>,
}

/// The decision, what it was about (`PR #N`, `commit SHA (the merge of PR #N)`), and the facts
/// of the pull request it rests on.
#[derive(Debug)]
pub struct Gated {
    pub decision: Decision,
    pub subject: String,
    pub facts: Option<Facts>,
}

impl Gated {
    /// Whether the decision was "no" only because approvals fell short while teams could not be
    /// read: a setting to fix (the token), not the reviewers' answer.
    pub fn blocked_by_unread_teams(&self) -> bool {
        !self.decision.allowed
            && self.decision.rule == "approvals"
            && self
                .facts
                .as_ref()
                .is_some_and(|f| !f.unreadable_teams.is_empty())
    }
}

/// Production's watch rolls back at once (`environments.production.watch.rollback:
/// immediate`): the pin file is set back on the base branch without a pull request, and the gate
/// deploys such a revert.
pub fn immediate_rollback(m: &Manifest) -> bool {
    m.environments
        .production
        .watch
        .as_ref()
        .is_some_and(|w| w.rollback == mlops_manifest::model::WatchRollback::Immediate)
}

/// The gate's policy: the manifest's promotion settings.
pub fn policy(m: &Manifest) -> Result<Policy, Problem> {
    let (settings, repo) = crate::github::promotion(m)?;
    Ok(Policy {
        repo,
        project: m.project.name.clone(),
        base_branch: settings.base_branch.clone(),
        pin_file: settings.pin_file.clone(),
        required_approvals: settings.required_approvals,
        reviewers: settings.reviewers.clone(),
        teams: settings.team_reviewers.clone(),
        no_regression: !settings.no_regression.is_empty(),
        immediate_rollback: immediate_rollback(m),
    })
}

/// Gathers the facts and decides.
pub fn decide(req: &Request<'_>) -> Result<Gated, Problem> {
    let policy = policy(req.manifest)?;
    let (rt, gh) = crate::github::connect(req.api_url.as_deref())?;
    let read = rt.block_on(async {
        match (&req.commit, req.pr) {
            (Some(commit), _) => {
                let (merge, facts) = gate::gather_merge(&gh, &policy, commit).await?;
                // A push that merged no pull request: an immediate rollback, if anything.
                let revert = match merge.number {
                    None if policy.immediate_rollback => {
                        Some(revert::gather(&gh, &policy, commit).await?)
                    }
                    _ => None,
                };
                Ok((Some((merge, revert)), facts))
            }
            (None, Some(n)) => gate::gather(&gh, &policy, n)
                .await
                .map(|facts| (None, Some(facts))),
            (None, None) => Ok((None, None)),
        }
    });
    let (merge, facts) = read.map_err(|e| crate::github::failed(&e, ""))?;
    let decision = match (&merge, &facts) {
        (Some((_, Some(revert))), _) => revert::decide(&policy, revert),
        (Some((merge, None)), facts) => gate::decide_merge(&policy, merge, facts.as_ref()),
        (None, Some(facts)) => gate::decide(&policy, facts),
        (None, None) => {
            return Err(Problem::input(
                "say what to decide on",
                "pass --pr N (a promotion pull request) or --commit SHA (its merge)",
            ));
        }
    };
    let subject = match (&merge, req.pr) {
        (Some((m, _)), _) => match m.number {
            Some(n) => format!("commit {} (the merge of PR #{n})", short(&m.commit)),
            None => format!("commit {}", short(&m.commit)),
        },
        (None, n) => format!("PR #{}", n.unwrap_or_default()),
    };
    Ok(Gated {
        decision,
        subject,
        facts,
    })
}
