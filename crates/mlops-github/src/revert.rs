//! The immediate rollback of production's pin (`watch.rollback: immediate`): the pin file on the
//! base branch set back, in one commit and without a pull request, to exactly the pin it held
//! before the last approved promotion's merge ([`revert`]); and the gate's judgement of such a
//! commit when its push asks production to deploy it ([`gather`], [`decide`]).
//!
//! What keeps this from being a way around the gate: the commit may change the pin file and
//! nothing else, it may only restore the pin before a *promotion's* merge (so a revert is one
//! step back to a version that served production before, never a second step, never forward),
//! and the manifest must allow it. Moving the protected base branch needs a token allowed to
//! bypass its rules; GitHub refuses any other.

use mlops_artifacts::short;

use crate::client::{ApiError, GitHub};
use crate::gate::{Decision, Policy, file_at, last_pin_change, listed};
use crate::pin::Pin;
use crate::{Field, branch_for};

/// The commit-message trailer of an immediate rollback's commit.
pub const TRAILER: &str = "Mlops-Rollback:";

/// What the gate reads about a commit on the base branch that is no pull request's merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub commit: String,
    /// How many parents the commit has (a revert is a plain commit: one).
    pub parents: usize,
    /// The files it changes against its first parent.
    pub files: Vec<String>,
    /// The pin file at the commit.
    pub pin: Result<Pin, String>,
    /// The pin file at its first parent: what production served.
    pub replaced: Option<Pin>,
    /// The pull request whose merge put `replaced` there: the last commit that changed the pin
    /// file as of the first parent, when it is the merge of a pull request from the promotion
    /// branch.
    pub promotion: Option<u64>,
    /// The pin file before that merge (at its first parent).
    pub before: Option<Pin>,
}

/// Where the pin before the last promotion comes from, as of `at`: the promotion pull request
/// whose merge is the last commit that changed the pin file (when it is one), and the pin at
/// that merge's first parent (its text, verbatim).
struct LastPromotion {
    promotion: Option<u64>,
    before: Option<String>,
}

async fn last_promotion(gh: &GitHub, policy: &Policy, at: &str) -> Result<LastPromotion, ApiError> {
    let full = policy.repo.full();
    let Some((sha, parent)) = last_pin_change(gh, policy, at).await? else {
        return Ok(LastPromotion {
            promotion: None,
            before: None,
        });
    };
    let sha = sha.as_str();
    let pin_there = file_at(gh, &policy.repo, &policy.pin_file, sha)
        .await?
        .and_then(|t| Pin::parse(&t).ok());
    let pulls = gh
        .list(&format!("/repos/{full}/commits/{sha}/pulls"), 10)
        .await?;
    let promotion = pulls
        .iter()
        .find(|p| {
            p.at("merge_commit_sha").as_str() == Some(sha)
                && !p.at("merged_at").is_null()
                && p.at("head").at("repo").at("full_name").as_str() == Some(&full)
                && pin_there
                    .as_ref()
                    .is_some_and(|pin| p.at("head").text("ref") == branch_for(&pin.model.name))
        })
        .and_then(|p| p.at("number").as_u64());
    let before = file_at(gh, &policy.repo, &policy.pin_file, &parent).await?;
    Ok(LastPromotion { promotion, before })
}

/// The facts of `commit`, a push to the base branch that merged no pull request.
pub async fn gather(gh: &GitHub, policy: &Policy, commit: &str) -> Result<Facts, ApiError> {
    let full = policy.repo.full();
    let c = gh
        .get(&format!("/repos/{full}/git/commits/{commit}"))
        .await?
        .body;
    let parents = c.at("parents").as_array().map_or(0, Vec::len);
    let parent = c
        .at("parents")
        .nth(0)
        .at("sha")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pin = match file_at(gh, &policy.repo, &policy.pin_file, commit).await? {
        Some(text) => Pin::parse(&text),
        None => Err("missing".to_owned()),
    };
    if parent.is_empty() {
        return Ok(Facts {
            commit: commit.to_owned(),
            parents,
            files: Vec::new(),
            pin,
            replaced: None,
            promotion: None,
            before: None,
        });
    }
    let files = gh
        .get(&format!("/repos/{full}/compare/{parent}...{commit}"))
        .await?
        .body
        .at("files")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.at("filename").as_str().map(str::to_owned))
        .collect();
    let replaced = file_at(gh, &policy.repo, &policy.pin_file, &parent)
        .await?
        .and_then(|t| Pin::parse(&t).ok());
    let last = last_promotion(gh, policy, &parent).await?;
    Ok(Facts {
        commit: commit.to_owned(),
        parents,
        files,
        pin,
        replaced,
        promotion: last.promotion,
        before: last.before.and_then(|t| Pin::parse(&t).ok()),
    })
}

fn refuse(reason: String) -> Decision {
    Decision {
        allowed: false,
        rule: "rollback",
        reason,
        approvals: Vec::new(),
        ignored: Vec::new(),
    }
}

/// May production deploy the pin of `f.commit`, a push that merged no pull request? Only as an
/// immediate rollback the manifest allows (`watch.rollback: immediate`): a plain commit that
/// changes the pin file alone, back to exactly the pin before the last promotion's merge.
pub fn decide(policy: &Policy, f: &Facts) -> Decision {
    let at = short(&f.commit);
    if !policy.immediate_rollback {
        return Decision {
            rule: "promotion-pr",
            ..refuse(format!(
                "commit {at} on `{}` is not the merge commit of a pull request: production's pin changes only by merging a promotion pull request (or, with `watch.rollback: immediate`, by its immediate rollback)",
                policy.base_branch
            ))
        };
    }
    if f.parents != 1 || f.files != [policy.pin_file.clone()] {
        return refuse(format!(
            "commit {at} is no pull request's merge, and not an immediate rollback: that is one commit changing `{}` alone (it has {} parent(s) and changes {})",
            policy.pin_file,
            f.parents,
            listed(&f.files)
        ));
    }
    let pin = match &f.pin {
        Ok(p) => p,
        Err(e) => return refuse(format!("the pin file at {at} cannot be read: {e}")),
    };
    let (Some(number), Some(replaced), Some(before)) = (f.promotion, &f.replaced, &f.before) else {
        return refuse(format!(
            "commit {at} sets the pin back, but the pin it replaces did not come from a promotion pull request's merge (an immediate rollback goes one step back from a promotion, never further)"
        ));
    };
    if !pin.same_model(before) || pin.holdout != before.holdout {
        return refuse(format!(
            "commit {at} pins {}, but an immediate rollback restores exactly the pin before PR #{number}, {}",
            pin.reference(),
            before.reference()
        ));
    }
    Decision {
        allowed: true,
        rule: "rollback",
        reason: format!(
            "commit {at} rolls production back from {} (PR #{number}) to {}, the pin before it (watch.rollback: immediate)",
            replaced.reference(),
            pin.reference()
        ),
        approvals: Vec::new(),
        ignored: Vec::new(),
    }
}

/// What [`revert`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reverted {
    /// The commit now at the head of the base branch.
    pub commit: String,
    /// The pin it holds again, and the one it replaced.
    pub pin: Pin,
    pub replaced: Pin,
    /// The promotion pull request whose merge it steps back from.
    pub promotion: u64,
}

/// Why [`revert`] did nothing.
#[derive(Debug)]
pub enum NotReverted {
    /// The state on GitHub does not allow it (said why).
    Refused(String),
    /// A call failed (GitHub's answer, with what to do about a protected branch).
    Api(ApiError, String),
}

impl From<ApiError> for NotReverted {
    fn from(e: ApiError) -> Self {
        NotReverted::Api(e, String::new())
    }
}

/// Sets production's pin back on the base branch, at once: when the base branch's pin is still
/// `serving` and came from a promotion's merge, one commit (pin file only) restoring the pin
/// before that merge verbatim, fast-forwarding the base branch (no retry: a base branch that
/// moved meanwhile is a reason to stop, not to try again).
pub async fn revert(
    gh: &GitHub,
    policy: &Policy,
    serving: &Pin,
    reason: &str,
) -> Result<Reverted, NotReverted> {
    let full = policy.repo.full();
    let base = &policy.base_branch;
    let tip = gh
        .get(&format!("/repos/{full}/git/ref/heads/{base}"))
        .await?
        .body
        .at("object")
        .text("sha")
        .to_owned();
    let current = file_at(gh, &policy.repo, &policy.pin_file, &tip)
        .await?
        .and_then(|t| Pin::parse(&t).ok());
    let Some(current) = current.filter(|c| c.same_model(serving)) else {
        return Err(NotReverted::Refused(format!(
            "`{}` on `{base}` no longer pins {}: production's pin moved since this deploy; nothing was changed",
            policy.pin_file,
            serving.reference()
        )));
    };
    let last = last_promotion(gh, policy, &tip).await?;
    let (Some(promotion), Some(text)) = (last.promotion, last.before) else {
        return Err(NotReverted::Refused(format!(
            "{} did not come to `{base}` by a promotion pull request's merge (is it a rollback already?): an immediate rollback goes one step back from a promotion; propose the version you want instead",
            current.reference()
        )));
    };
    let pin = Pin::parse(&text)
        .map_err(|e| NotReverted::Refused(format!("the pin before PR #{promotion}: {e}")))?;
    let reason: String = reason.chars().take(500).collect();
    let message = format!(
        "Roll back production to {} (from {})\n\n{reason}\n\n{TRAILER} immediate",
        pin.reference(),
        current.reference()
    );
    let sha =
        crate::promote::commit_file(gh, &policy.repo, &tip, &policy.pin_file, &text, &message)
            .await?;
    gh.patch(
        &format!("/repos/{full}/git/refs/heads/{base}"),
        &serde_json::json!({"sha": sha, "force": false}),
    )
    .await
    .map_err(|e| {
        NotReverted::Api(
            e,
            format!(
                "the token must be allowed to push to `{base}` past its protection (add the GitHub App to the bypass list of the branch's ruleset), or set `watch.rollback: pull_request` for a rollback pull request through the gate"
            ),
        )
    })?;
    Ok(Reverted {
        commit: sha,
        pin,
        replaced: current,
        promotion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::{Artifact, PinnedHoldout, PinnedModel};

    fn policy(immediate: bool) -> Policy {
        Policy {
            immediate_rollback: immediate,
            ..crate::gate::tests::policy()
        }
    }

    fn pin(version: u64) -> Pin {
        Pin {
            version: 1,
            model: PinnedModel {
                name: "m".into(),
                version,
                registry: "r".into(),
                artifact: Artifact {
                    uri: format!("r/m/{version}"),
                    sha256: format!("{version}").repeat(64),
                },
                image: None,
            },
            manifest_sha256: "b".repeat(64),
            holdout: Some(PinnedHoldout {
                passed: true,
                report_sha256: format!("d{version}").repeat(32),
                compared_with: None,
            }),
        }
    }

    fn facts() -> Facts {
        Facts {
            commit: "c".repeat(40),
            parents: 1,
            files: vec!["deploy/production.yaml".into()],
            pin: Ok(pin(1)),
            replaced: Some(pin(2)),
            promotion: Some(7),
            before: Some(pin(1)),
        }
    }

    #[test]
    fn only_the_pin_before_the_last_promotion_comes_back_at_once() {
        let d = decide(&policy(true), &facts());
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.rule, "rollback");
        assert!(d.reason.contains("from m@2 (PR #7) to m@1"), "{d:?}");

        // Without `watch.rollback: immediate`, a push that merged nothing deploys nothing.
        let d = decide(&policy(false), &facts());
        assert_eq!((d.allowed, d.rule), (false, "promotion-pr"), "{d:?}");

        type Change = dyn Fn(&mut Facts);
        let cases: Vec<(&str, Box<Change>)> = vec![
            ("a merge", Box::new(|f| f.parents = 2)),
            (
                "another file too",
                Box::new(|f| f.files.push("mlops.yaml".into())),
            ),
            ("no file", Box::new(|f| f.files.clear())),
            ("another version", Box::new(|f| f.pin = Ok(pin(0)))),
            (
                "the same version with another artifact",
                Box::new(|f| {
                    if let Ok(p) = f.pin.as_mut() {
                        p.model.artifact.sha256 = "f".repeat(64);
                    }
                }),
            ),
            (
                "another holdout record",
                Box::new(|f| {
                    if let Ok(p) = f.pin.as_mut() {
                        p.holdout = None;
                    }
                }),
            ),
            // The pin it replaces came from a revert (or a direct push): no second step back,
            // and no step "back" to the version that breached.
            ("no promotion before", Box::new(|f| f.promotion = None)),
            ("nothing before", Box::new(|f| f.before = None)),
            ("unreadable", Box::new(|f| f.pin = Err("not YAML".into()))),
        ];
        for (what, change) in cases {
            let mut f = facts();
            change(&mut f);
            let d = decide(&policy(true), &f);
            assert_eq!((d.allowed, d.rule), (false, "rollback"), "{what}: {d:?}");
        }
    }
}
