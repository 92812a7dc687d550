//! `mlops promote`: the promotion pull request that changes the production pin.
//!
//! Commits go through the Git Data API (blob, tree, commit, ref) with no author, committer or
//! signature fields, so GitHub makes and signs them as the token's identity. The branch is
//! only ever moved over commits that carry our trailer: a human's commit on it stops the run.
//! Re-running is idempotent: the open PR from the branch (with our marker) is updated, and
//! nothing is written when the branch already holds the wanted pin on top of the base.

use crate::Field;
use serde_json::{Value, json};

use crate::client::{ApiError, GitHub};
use crate::gate::{Made, branch_commits, classify, file_at, qualified_team};
use crate::pin::Pin;
use crate::{Repo, STARTED_BY, STATUS_CONTEXT, TRAILER, branch_for, marked_model, marker};

/// What to promote, and where.
#[derive(Debug, Clone)]
pub struct Promotion {
    pub repo: Repo,
    pub project: String,
    pub base_branch: String,
    pub pin_file: String,
    pub pin: Pin,
    pub title: String,
    /// The evidence; the marker is appended.
    pub body: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub teams: Vec<String>,
    pub required_approvals: u32,
    /// The manifest demands branch protection: its absence is an error, not a warning.
    pub require_protection: bool,
    /// The token is a workflow's `GITHUB_TOKEN`.
    pub default_token: bool,
    /// The commit status to post on the head: (passed, description, target URL).
    pub status: Option<(bool, String, Option<String>)>,
    /// Who started the run that promotes (GitHub logins): recorded in the commit, and the gate
    /// does not count their approvals.
    pub started_by: Vec<String>,
}

impl Promotion {
    pub fn branch(&self) -> String {
        branch_for(&self.pin.model.name)
    }

    pub fn full_body(&self) -> String {
        format!(
            "{}\n\n{}\n",
            self.body.trim_end(),
            marker(&self.project, &self.pin.model.name)
        )
    }

    pub fn commit_message(&self) -> String {
        let mut m = format!(
            "Promote {} to production\n\nPins {} in {}.\n\n{TRAILER} {}\n",
            self.pin.reference(),
            self.pin.reference(),
            self.pin_file,
            self.pin.reference()
        );
        for login in &self.started_by {
            m.push_str(&format!("{STARTED_BY} {login}\n"));
        }
        m
    }
}

/// What a finding means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

/// One preflight finding: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub message: String,
    pub hint: String,
}

/// What `promote` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Created,
    Updated,
    Unchanged,
    /// Production already pins this model version: nothing to promote.
    InProduction,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Created => "created",
            Operation::Updated => "updated",
            Operation::Unchanged => "unchanged",
            Operation::InProduction => "unchanged",
        }
    }
}

/// The result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub operation: Operation,
    pub number: Option<u64>,
    pub url: Option<String>,
    pub head_sha: Option<String>,
    pub notes: Vec<String>,
}

/// Why promotion stopped.
#[derive(Debug)]
pub enum Failure {
    /// A refusal with a message and a hint (exit 1).
    Refused(String, String),
    /// GitHub failed or refused a call (exit 3), with a hint.
    Api(ApiError, String),
}

fn api(hint: &str) -> impl Fn(ApiError) -> Failure + '_ {
    move |e| Failure::Api(e, hint.to_owned())
}

const APP_TOKEN_HINT: &str = "use a GitHub App installation token (e.g. from actions/create-github-app-token) as the `token` input: pull requests it opens trigger workflows, and it can read team membership";

/// The checks before anything is written. `Level::Error` findings stop the run.
pub async fn preflight(gh: &GitHub, p: &Promotion) -> Result<Vec<Finding>, ApiError> {
    let mut out = Vec::new();
    let full = p.repo.full();
    let repo = match gh.get(&format!("/repos/{full}")).await {
        Ok(r) => r,
        Err(e) if e.status == Some(404) => {
            out.push(Finding {
                level: Level::Error,
                message: format!("the promotion repository {full} does not exist or the token cannot see it"),
                hint: "check `promotion.repository` (or `project.repository`) and give the token access to that repository (contents and pull requests: write)".into(),
            });
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    // Classic tokens say their scopes.
    if let Some(scopes) = &repo.scopes {
        let have: Vec<&str> = scopes.split(',').map(str::trim).collect();
        if !have.iter().any(|s| matches!(*s, "repo" | "public_repo")) {
            out.push(Finding {
                level: Level::Error,
                message: format!("the token's scopes ({scopes}) lack `repo`"),
                hint: "a classic token needs the `repo` scope (or `public_repo` for a public repository) to push the pin and open the pull request".into(),
            });
        }
        if !p.teams.is_empty() && !have.iter().any(|s| matches!(*s, "read:org" | "admin:org")) {
            out.push(Finding {
                level: Level::Error,
                message: format!("the token's scopes ({scopes}) lack `read:org`, which team review requests need"),
                hint: "add the `read:org` scope, or use a GitHub App token with organisation members: read".into(),
            });
        }
    }
    if p.default_token {
        out.push(Finding {
            level: Level::Warning,
            message: "the token is the workflow's GITHUB_TOKEN: a pull request it opens or updates does not trigger workflows, so required status checks on it never run".into(),
            hint: APP_TOKEN_HINT.into(),
        });
        match gh
            .get(&format!("/repos/{full}/actions/permissions/workflow"))
            .await
        {
            Ok(r) if r.body.at("can_approve_pull_request_reviews") == &Value::Bool(false) => {
                out.push(Finding {
                    level: Level::Error,
                    message: "GitHub Actions is not permitted to create or approve pull requests in this repository".into(),
                    hint: format!("turn on Settings → Actions → General → Workflow permissions → \"Allow GitHub Actions to create and approve pull requests\" for {full} (or its organisation), or {APP_TOKEN_HINT}"),
                });
            }
            _ => {}
        }
    }
    let required = review_rules(gh, &p.repo, &p.base_branch)
        .await?
        .map(|r| r.approvals);
    let level = if p.require_protection {
        Level::Error
    } else {
        Level::Warning
    };
    match required {
        Some(0) => out.push(Finding {
            level,
            message: format!("the base branch `{}` of {full} has no protection that requires reviews: the promotion PR could be merged without the approval `mlops gate` checks", p.base_branch),
            hint: format!("protect `{}` with a rule that requires at least {} approving review(s) (Settings → Branches, or a ruleset)", p.base_branch, p.required_approvals),
        }),
        Some(n) if n < u64::from(p.required_approvals) => out.push(Finding {
            level: Level::Warning,
            message: format!("`{}` requires {n} approving review(s) but the manifest asks for {}", p.base_branch, p.required_approvals),
            hint: "raise the branch rule's required approvals to match `promotion.required_approvals`".into(),
        }),
        Some(_) => {}
        None => out.push(Finding {
            level,
            message: format!("cannot read the protection of `{}` with this token", p.base_branch),
            hint: "the token needs administration: read to check it; or protect the branch with a ruleset, which any reader can see".into(),
        }),
    }
    for team in &p.teams {
        let team = qualified_team(team, &p.repo);
        let (org, slug) = team.split_once('/').unwrap_or_default();
        if let Err(e) = gh
            .get(&format!("/orgs/{org}/teams/{slug}/members?per_page=1"))
            .await
        {
            out.push(Finding {
                level: Level::Warning,
                message: format!("cannot read the members of team {team} ({e}); the team will not be asked to review, and `mlops gate` will not be able to count its members' approvals with this token"),
                hint: if p.default_token { APP_TOKEN_HINT.into() } else { "give the token organisation members: read (read:org for a classic token)".into() },
            });
        }
    }
    Ok(out)
}

/// What merging into a branch requires, as far as reviews go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewRules {
    /// Approving reviews required (0: no rule requires any).
    pub approvals: u64,
    /// A code owner's review is required.
    pub code_owners: bool,
}

/// The review rules of `branch`: branch protection's, else the rulesets' (readable with less
/// access; the strictest pull request rule counts). `None` when this token can read neither.
pub async fn review_rules(
    gh: &GitHub,
    repo: &Repo,
    branch: &str,
) -> Result<Option<ReviewRules>, ApiError> {
    let full = repo.full();
    match gh
        .get(&format!("/repos/{full}/branches/{branch}/protection"))
        .await
    {
        Ok(r) => {
            let reviews = &r.body.at("required_pull_request_reviews");
            Ok(Some(ReviewRules {
                approvals: reviews
                    .at("required_approving_review_count")
                    .as_u64()
                    .unwrap_or(0),
                code_owners: reviews.at("require_code_owner_reviews").as_bool() == Some(true),
            }))
        }
        Err(e) if matches!(e.status, Some(403 | 404)) => {
            let rules = gh
                .list(&format!("/repos/{full}/rules/branches/{branch}"), 10)
                .await
                .unwrap_or_default();
            let pull_request: Vec<&Value> = rules
                .iter()
                .filter(|r| r.at("type") == "pull_request")
                .collect();
            let approvals = pull_request
                .iter()
                .filter_map(|r| {
                    r.at("parameters")
                        .at("required_approving_review_count")
                        .as_u64()
                })
                .max();
            let code_owners = pull_request.iter().any(|r| {
                r.at("parameters").at("require_code_owner_review").as_bool() == Some(true)
            });
            Ok(match (approvals, e.status) {
                (Some(approvals), _) => Some(ReviewRules {
                    approvals,
                    code_owners,
                }),
                (None, Some(404)) => Some(ReviewRules {
                    approvals: 0,
                    code_owners: false,
                }),
                _ => None,
            })
        }
        Err(e) => Err(e),
    }
}

/// The pin file on the base branch now, if any (unreadable text counts as none).
pub async fn current_pin(
    gh: &GitHub,
    p: &Promotion,
) -> Result<Option<(String, Option<Pin>)>, ApiError> {
    Ok(file_at(gh, &p.repo, &p.pin_file, &p.base_branch)
        .await?
        .map(|text| {
            let pin = Pin::parse(&text).ok();
            (text, pin)
        }))
}

/// Opens or updates the promotion PR. Call [`preflight`] first.
/// One commit on top of `parent` that sets `path` to `text`, made through the Git Data API
/// (blob, tree, commit) with no author, committer or signature, so GitHub signs it as the
/// token's identity. Its SHA; no ref moves.
pub async fn commit_file(
    gh: &GitHub,
    repo: &Repo,
    parent: &str,
    path: &str,
    text: &str,
    message: &str,
) -> Result<String, ApiError> {
    let full = repo.full();
    let parent_commit = gh
        .get(&format!("/repos/{full}/git/commits/{parent}"))
        .await?
        .body;
    let base_tree = parent_commit
        .at("tree")
        .at("sha")
        .as_str()
        .unwrap_or_default();
    let blob = gh
        .post(
            &format!("/repos/{full}/git/blobs"),
            &json!({"content": text, "encoding": "utf-8"}),
        )
        .await?;
    let tree = gh
        .post(
            &format!("/repos/{full}/git/trees"),
            &json!({"base_tree": base_tree, "tree": [{"path": path, "mode": "100644", "type": "blob", "sha": blob.at("sha")}]}),
        )
        .await?;
    let commit = gh
        .post(
            &format!("/repos/{full}/git/commits"),
            &json!({"message": message, "tree": tree.at("sha"), "parents": [parent]}),
        )
        .await?;
    Ok(commit.at("sha").as_str().unwrap_or_default().to_owned())
}

/// Sets `path` to `text` on `branch` with one commit (see [`commit_file`]) that fast-forwards
/// the branch, so nobody's push is ever overwritten: when the branch moved meanwhile, the commit
/// is made again on its new head (three times at most). A missing `branch` is created at the
/// head of `from`. `None` when the file already says `text`.
pub async fn set_file_on_branch(
    gh: &GitHub,
    repo: &Repo,
    branch: &str,
    from: &str,
    path: &str,
    text: &str,
    message: &str,
) -> Result<Option<String>, ApiError> {
    let full = repo.full();
    let mut attempt = 0;
    loop {
        let head = match gh
            .get_optional(&format!("/repos/{full}/git/ref/heads/{branch}"))
            .await?
        {
            Some(r) => r
                .at("object")
                .at("sha")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            None => {
                let start = gh
                    .get(&format!("/repos/{full}/git/ref/heads/{from}"))
                    .await?
                    .body
                    .at("object")
                    .at("sha")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match gh
                    .post(
                        &format!("/repos/{full}/git/refs"),
                        &json!({"ref": format!("refs/heads/{branch}"), "sha": start}),
                    )
                    .await
                {
                    Ok(_) => start,
                    // Created meanwhile by another run: read it again.
                    Err(e) if e.status == Some(422) && attempt < 2 => {
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if crate::gate::file_at(gh, repo, path, &head)
            .await?
            .as_deref()
            == Some(text)
        {
            return Ok(None);
        }
        let sha = commit_file(gh, repo, &head, path, text, message).await?;
        match gh
            .patch(
                &format!("/repos/{full}/git/refs/heads/{branch}"),
                &json!({"sha": sha, "force": false}),
            )
            .await
        {
            Ok(_) => return Ok(Some(sha)),
            Err(e) if e.status == Some(422) && attempt < 2 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

pub async fn run(gh: &GitHub, p: &Promotion, teams_readable: bool) -> Result<Outcome, Failure> {
    let full = p.repo.full();
    let branch = p.branch();
    let new_text = p.pin.to_yaml("production");
    let mut notes = Vec::new();
    // Already in production?
    if let Some((_, Some(now))) = current_pin(gh, p)
        .await
        .map_err(api("check the token's access to the repository"))?
        && now.same_model(&p.pin)
    {
        return Ok(Outcome {
            operation: Operation::InProduction,
            number: None,
            url: None,
            head_sha: None,
            notes: vec![format!(
                "production already pins {} in {}",
                now.reference(),
                p.pin_file
            )],
        });
    }
    let base_sha = gh
        .get(&format!("/repos/{full}/git/ref/heads/{}", p.base_branch))
        .await
        .map_err(api("check `promotion.base_branch`"))?
        .body
        .at("object")
        .at("sha")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let existing = gh
        .get_optional(&format!("/repos/{full}/git/ref/heads/{branch}"))
        .await
        .map_err(api(""))?
        .and_then(|r| r.at("object").at("sha").as_str().map(str::to_owned));
    // Our branch may only hold our commits.
    let mut up_to_date = false;
    let mut fast_forward_from = None;
    if let Some(head) = &existing {
        let commits = branch_commits(gh, &p.repo, &base_sha, head)
            .await
            .map_err(api(""))?;
        let foreign = commits.iter().find_map(|c| match classify(c, None) {
            Made::Foreign(why) => Some((c, why)),
            _ => None,
        });
        if let Some((c, why)) = foreign {
            return Err(Failure::Refused(
                format!(
                    "the branch {branch} has a commit that mlops did not make: {} by {} {why}; not overwriting it",
                    mlops_artifacts::short(&c.sha),
                    c.author
                ),
                format!(
                    "merge or move that change elsewhere and delete the branch `{branch}`, then run mlops promote again"
                ),
            ));
        }
        let cmp = gh
            .get(&format!("/repos/{full}/compare/{base_sha}...{head}"))
            .await
            .map_err(api(""))?
            .body;
        let behind = cmp.at("behind_by").as_u64().unwrap_or(0);
        let text_there = file_at(gh, &p.repo, &p.pin_file, head)
            .await
            .map_err(api(""))?;
        if behind == 0 && text_there.as_deref() == Some(new_text.as_str()) {
            up_to_date = true;
        } else if behind == 0 {
            fast_forward_from = Some(head.clone());
        }
    }
    let mut wrote = false;
    let head_sha = if up_to_date {
        existing.clone().unwrap_or_default()
    } else {
        // One commit: on top of our own branch head when the base has not moved (a fast-forward,
        // so a concurrent push fails instead of being overwritten), else on top of the base.
        let parent = fast_forward_from
            .clone()
            .unwrap_or_else(|| base_sha.clone());
        let sha = commit_file(
            gh,
            &p.repo,
            &parent,
            &p.pin_file,
            &new_text,
            &p.commit_message(),
        )
        .await
        .map_err(api("the token needs contents: write"))?;
        match &existing {
            None => {
                gh.post(
                    &format!("/repos/{full}/git/refs"),
                    &json!({"ref": format!("refs/heads/{branch}"), "sha": sha}),
                )
                .await
                .map_err(api(""))?;
            }
            Some(_) => {
                // Forced only when rebasing onto a moved base, after checking every commit on
                // the branch is ours.
                let force = fast_forward_from.is_none();
                gh.patch(
                    &format!("/repos/{full}/git/refs/heads/{branch}"),
                    &json!({"sha": sha, "force": force}),
                )
                .await
                .map_err(|e| {
                    if e.status == Some(422) {
                        Failure::Refused(
                            format!("the branch {branch} moved while promoting ({})", e.message),
                            "someone pushed to it; run mlops promote again to see what changed"
                                .into(),
                        )
                    } else {
                        Failure::Api(e, String::new())
                    }
                })?;
            }
        }
        wrote = true;
        sha
    };
    // The PR.
    let owner = &p.repo.owner;
    let open = gh
        .list(
            &format!("/repos/{full}/pulls?state=open&head={owner}:{branch}"),
            5,
        )
        .await
        .map_err(api(""))?;
    let body = p.full_body();
    let ours = open.iter().find(|pr| {
        marked_model(pr.at("body").as_str().unwrap_or_default(), &p.project).as_deref()
            == Some(p.pin.model.name.as_str())
    });
    let (operation, pr) = match ours {
        Some(pr) => {
            let same = pr.at("title").as_str() == Some(p.title.as_str())
                && pr.at("body").as_str() == Some(body.as_str());
            let n = pr.at("number").as_u64().unwrap_or(0);
            if same {
                (
                    if wrote {
                        Operation::Updated
                    } else {
                        Operation::Unchanged
                    },
                    pr.clone(),
                )
            } else {
                let updated = gh
                    .patch(
                        &format!("/repos/{full}/pulls/{n}"),
                        &json!({"title": p.title, "body": body}),
                    )
                    .await
                    .map_err(api(""))?;
                (Operation::Updated, updated)
            }
        }
        None if !open.is_empty() => {
            return Err(Failure::Refused(
                format!(
                    "an open pull request from {branch} exists without the mlops marker of project {}",
                    p.project
                ),
                "close it (or restore the marker in its body) and run mlops promote again".into(),
            ));
        }
        None => {
            let created = gh
                .post(
                    &format!("/repos/{full}/pulls"),
                    &json!({"title": p.title, "head": branch, "base": p.base_branch, "body": body, "maintainer_can_modify": false}),
                )
                .await
                .map_err(|e| {
                    if e.message.contains("not permitted to create or approve pull requests") {
                        let hint = format!("turn on Settings → Actions → General → Workflow permissions → \"Allow GitHub Actions to create and approve pull requests\" for {full}, or {APP_TOKEN_HINT}");
                        Failure::Api(e, hint)
                    } else {
                        Failure::Api(e, "the token needs pull requests: write".into())
                    }
                })?;
            (Operation::Created, created)
        }
    };
    let number = pr.at("number").as_u64().unwrap_or(0);
    let author = pr.at("user").text("login").to_owned();
    // Labels, reviewers.
    let have_labels: Vec<&str> = pr
        .at("labels")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.at("name").as_str())
        .collect();
    if p.labels.iter().any(|l| !have_labels.contains(&l.as_str())) {
        gh.post(
            &format!("/repos/{full}/issues/{number}/labels"),
            &json!({"labels": p.labels}),
        )
        .await
        .map_err(api(
            "the token needs issues: write (or pull requests: write) to label",
        ))?;
    }
    let requested: Vec<&str> = pr
        .at("requested_reviewers")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.at("login").as_str())
        .collect();
    let users: Vec<&String> = p
        .reviewers
        .iter()
        .filter(|u| **u != author && !requested.contains(&u.as_str()))
        .collect();
    let teams: Vec<String> = if teams_readable {
        p.teams
            .iter()
            .map(|t| qualified_team(t, &p.repo))
            .map(|t| {
                t.split_once('/')
                    .map_or(t.clone(), |(_, slug)| slug.to_owned())
            })
            .collect()
    } else {
        Vec::new()
    };
    if operation == Operation::Created && (!users.is_empty() || !teams.is_empty()) {
        match gh
            .post(
                &format!("/repos/{full}/pulls/{number}/requested_reviewers"),
                &json!({"reviewers": users, "team_reviewers": teams}),
            )
            .await
        {
            Ok(_) => {}
            Err(e) => notes.push(format!("could not request reviews: {e}")),
        }
    }
    // The holdout status on the head commit (once per head and result).
    if let Some((passed, description, target)) = &p.status {
        let statuses = gh
            .list(&format!("/repos/{full}/commits/{head_sha}/statuses"), 10)
            .await
            .map_err(api(""))?;
        let state = if *passed { "success" } else { "failure" };
        let already = statuses
            .iter()
            .find(|s| s.at("context") == STATUS_CONTEXT)
            .is_some_and(|s| {
                s.at("state") == state && s.at("description").as_str() == Some(description.as_str())
            });
        if !already {
            let status = match target {
                Some(t) => {
                    json!({"state": state, "context": STATUS_CONTEXT, "description": description, "target_url": t})
                }
                None => {
                    json!({"state": state, "context": STATUS_CONTEXT, "description": description})
                }
            };
            gh.post(&format!("/repos/{full}/statuses/{head_sha}"), &status)
                .await
                .map_err(api("the token needs commit statuses: write"))?;
        }
    }
    Ok(Outcome {
        operation,
        number: Some(number),
        url: pr.at("html_url").as_str().map(str::to_owned),
        head_sha: Some(head_sha),
        notes,
    })
}

/// A line diff of two texts (`-`/`+`/` ` prefixes), for `--dry-run`.
pub fn diff(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table.
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    let at = |t: &[Vec<usize>], i: usize, j: usize| {
        t.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0)
    };
    for (i, x) in a.iter().enumerate().rev() {
        for (j, y) in b.iter().enumerate().rev() {
            let v = if x == y {
                at(&table, i + 1, j + 1) + 1
            } else {
                at(&table, i + 1, j).max(at(&table, i, j + 1))
            };
            if let Some(cell) = table.get_mut(i).and_then(|r| r.get_mut(j)) {
                *cell = v;
            }
        }
    }
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                out.push_str(&format!(" {x}\n"));
                i += 1;
                j += 1;
            }
            (Some(x), None) => {
                out.push_str(&format!("-{x}\n"));
                i += 1;
            }
            (Some(x), Some(_)) if at(&table, i + 1, j) >= at(&table, i, j + 1) => {
                out.push_str(&format!("-{x}\n"));
                i += 1;
            }
            (_, Some(y)) => {
                out.push_str(&format!("+{y}\n"));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_keep_common_lines() {
        let d = diff("p.yaml", "a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(d, "--- a/p.yaml\n+++ b/p.yaml\n a\n-b\n+x\n c\n");
        assert_eq!(diff("p", "", "n\n"), "--- a/p\n+++ b/p\n+n\n");
    }
}
