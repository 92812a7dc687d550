//! `mlops doctor`: are the repository settings the threat model relies on in place?
//!
//! The rendered loop keeps production behind an approved promotion pull request only together
//! with settings `mlops render` cannot write: protection of the base branch (required reviews,
//! a code owner's review of the pin file), deployment environments that only the base branch may
//! deploy to, the Actions variables and secrets the workflows read, the permission for Actions
//! to open pull requests, and AWS roles that trust exactly one GitHub subject each. [`check`]
//! reads what a token can see and says, for each, what is missing and how to fix it; the AWS
//! roles' trust policies are judged by [`judge_trust`] (the binary reads them from IAM).

use crate::Field;
use std::collections::BTreeMap;

use mlops_render::needs::Need;
use serde_json::Value;

use crate::Repo;
use crate::client::{ApiError, GitHub};
use crate::codeowners::{self, Owner};
use crate::gate::{file_at, qualified_team};
use crate::promote::review_rules;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// Works, but weaker or slower than it should be.
    Warning,
    /// Something the threat model relies on is missing: `mlops doctor` exits 1.
    Missing,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Missing => "missing",
        }
    }
}

/// One check: what it looked at, what it found, and the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub verdict: Verdict,
    /// What was checked (`branch main of octo/app`, `environment production`, ...).
    pub subject: String,
    pub message: String,
    pub hint: String,
}

fn found(verdict: Verdict, subject: &str, message: String, hint: &str) -> Check {
    Check {
        verdict,
        subject: subject.to_owned(),
        message,
        hint: hint.to_owned(),
    }
}

/// An Actions variable or secret the rendered workflows read (`mlops_render::needs::scan`), with
/// the repository whose workflow reads it (the model's, or the promotion repository's gate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub repo: Repo,
    pub need: Need,
}

/// What the manifest and the rendered workflows say the settings must be.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where the workflows run (the model repository).
    pub repo: Repo,
    /// Where promotion pull requests are opened and the pin file lives.
    pub promotion: Repo,
    pub base_branch: String,
    pub pin_file: String,
    pub required_approvals: u32,
    pub reviewers: Vec<String>,
    pub teams: Vec<String>,
    /// Production is a URL target: merging the pin *is* the deployment (the GitOps tool reads
    /// the base branch), so only GitHub's own rules stand before production.
    pub production_is_url: bool,
    /// The promote job uses the workflow's `GITHUB_TOKEN` (the promotion repository is the
    /// model repository).
    pub promote_with_workflow_token: bool,
    /// The deployment environments the workflows use, with the repository whose workflows do.
    pub environments: Vec<(Repo, String)>,
    pub needed: Vec<Needed>,
    /// Why the release loop (train, release and gate workflows) is not rendered, when it is not
    /// (`mlops_render::loop_withheld`: a registry only one runner has).
    pub loop_withheld: Option<String>,
    /// The OIDC subject the rendered jobs present that read a role's ARN from a variable, by the
    /// variable's name and environment (`None`: a repository variable), which the role they
    /// assume must trust exactly (`mlops_manifest::oidc_subject`).
    pub subjects: BTreeMap<(String, Option<String>), String>,
    /// The manifest asks for subjects that name the workflow (`workflows.oidc_subject:
    /// workflow`), which needs the repository's subject template.
    pub workflow_subjects: bool,
    /// With the promotion in another repository: the files `mlops render --promotion-out`
    /// writes there (the gate workflow and the manifest copy it reads), which must be on its
    /// base branch as rendered.
    pub promotion_files: BTreeMap<String, String>,
    /// How to render `promotion_files` (the command, for the fix).
    pub promotion_render: String,
    /// The files of the promotion repository that decide who may approve: the gate workflow
    /// and the manifest it reads.
    pub gate_files: Vec<String>,
}

/// The variable naming the GitHub App whose short-lived tokens the jobs make, and the secret
/// holding its private key.
pub const APP_CLIENT_ID: &str = "MLOPS_APP_CLIENT_ID";
pub const APP_PRIVATE_KEY: &str = "MLOPS_APP_PRIVATE_KEY";

/// The claim keys of the subject template `workflows.oidc_subject: workflow` needs.
pub const WORKFLOW_CLAIM_KEYS: [&str; 3] = ["repo", "context", "job_workflow_ref"];

/// The repository's OIDC subject template (`GET .../actions/oidc/customization/sub`: whether
/// GitHub's default is used, else the claim keys) against what the manifest's subjects need.
pub fn judge_subject_template(
    repo: &Repo,
    use_default: bool,
    keys: &[String],
    workflow_subjects: bool,
) -> Check {
    let subject = format!("OIDC subject template of {}", repo.full());
    let wanted: Vec<String> = WORKFLOW_CLAIM_KEYS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let set_workflow = format!(
        "gh api -X PUT repos/{}/actions/oidc/customization/sub -F use_default=false -f 'include_claim_keys[]=repo' -f 'include_claim_keys[]=context' -f 'include_claim_keys[]=job_workflow_ref' (it changes the claim of every workflow of the repository: update any other role that trusts it)",
        repo.full()
    );
    match (workflow_subjects, use_default) {
        (true, false) if keys == wanted.as_slice() => found(
            Verdict::Ok,
            &subject,
            "the subject names the workflow (`repo`, `context`, `job_workflow_ref`), as the roles trust it".into(),
            "",
        ),
        (true, _) => found(
            Verdict::Missing,
            &subject,
            format!(
                "the manifest's roles trust subjects that name the workflow, but the repository's template is {}: no job can assume them",
                if use_default { "GitHub's default".to_owned() } else { format!("{keys:?}") }
            ),
            &set_workflow,
        ),
        (false, true) => found(
            Verdict::Warning,
            &subject,
            "GitHub's default: a role trusts any workflow of the repository that runs in its environment (or, for training, on the default branch), not only the rendered one".into(),
            &format!("set `workflows.oidc_subject: workflow` in the manifest, `mlops render` and apply the Terraform, then {set_workflow}"),
        ),
        (false, false) => found(
            Verdict::Missing,
            &subject,
            format!("the repository's template is {keys:?}, but the manifest's roles trust GitHub's default subject: no job can assume them"),
            &format!("set `workflows.oidc_subject: workflow` when the keys are {WORKFLOW_CLAIM_KEYS:?}, or restore the default: gh api -X PUT repos/{}/actions/oidc/customization/sub -F use_default=true", repo.full()),
        ),
    }
}

/// A role a workflow assumes, as the variables name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The variable naming it, and where (`MLOPS_AWS_ROLE_ARN` of environment `production`).
    pub variable: String,
    pub arn: String,
    /// The OIDC subject of the jobs that assume it.
    pub subject: String,
    /// The environment of those jobs (`None`: training).
    pub environment: Option<String>,
}

/// The findings, and the roles to judge in AWS.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub checks: Vec<Check>,
    pub roles: Vec<Role>,
}

/// The subject claim of a job in `environment`, or of a job without one on `branch`.
pub fn oidc_subject(repo: &Repo, environment: Option<&str>, branch: &str) -> String {
    match environment {
        Some(e) => format!("repo:{}:environment:{e}", repo.full()),
        None => format!("repo:{}:ref:refs/heads/{branch}", repo.full()),
    }
}

/// A GitHub error for a setting this token may not read.
fn unreadable(e: &ApiError) -> bool {
    matches!(e.status, Some(401 | 403))
}

const ADMIN_TOKEN: &str = "run `mlops doctor` with a token of a repository admin (or a GitHub App with administration, environments, variables and secrets: read); a workflow's GITHUB_TOKEN cannot read these settings";

/// Reads the settings and judges them. `default_branch` is the branch training runs on.
pub async fn check(gh: &GitHub, s: &Setup, default_branch: &str) -> Result<Findings, ApiError> {
    let mut out = Findings::default();
    let promo = s.promotion.full();
    // With the promotion elsewhere, the gate runs there: it must be on the base branch as the
    // manifest renders it (a missing gate never deploys, a stale one judges by an old manifest).
    for (path, want) in &s.promotion_files {
        let subject = format!("`{path}` of {promo}");
        let fix = format!(
            "{}, then merge the change into `{}` through a reviewed pull request",
            s.promotion_render, s.base_branch
        );
        out.checks.push(match file_at(gh, &s.promotion, path, &s.base_branch).await {
            Ok(Some(have)) if have == *want => found(
                Verdict::Ok,
                &subject,
                format!("on `{}` as the manifest renders it", s.base_branch),
                "",
            ),
            Ok(Some(_)) => found(
                Verdict::Missing,
                &subject,
                format!("differs on `{}` from what the manifest renders: production's gate judges by another manifest or workflow", s.base_branch),
                &fix,
            ),
            Ok(None) => found(
                Verdict::Missing,
                &subject,
                format!("not on `{}`: production's gate runs in the promotion repository, and without it no promotion ever deploys", s.base_branch),
                &fix,
            ),
            Err(e) if unreadable(&e) => found(
                Verdict::Missing,
                &subject,
                "cannot read it with this token".into(),
                ADMIN_TOKEN,
            ),
            Err(e) => return Err(e),
        });
    }
    if let Some(why) = &s.loop_withheld {
        out.checks.push(found(
            Verdict::Missing,
            "release loop",
            why.clone(),
            "set `registry.path` to an `s3://BUCKET/PREFIX` the jobs' roles may read and write, then `mlops render`",
        ));
    }
    let branch_subject = format!("branch `{}` of {promo}", s.base_branch);

    // 1. Required reviews on the base branch (classic protection, else rulesets).
    let rules = review_rules(gh, &s.promotion, &s.base_branch).await?;
    let required = rules.map(|r| r.approvals);
    let code_owners = rules.is_some_and(|r| r.code_owners);
    let want = u64::from(s.required_approvals.max(1));
    out.checks.push(match required {
        Some(n) if n >= want => found(
            Verdict::Ok,
            &branch_subject,
            format!("merging needs {n} approving review(s)"),
            "",
        ),
        Some(0) => found(
            Verdict::Missing,
            &branch_subject,
            "no rule requires a review before merging: a writer can merge a promotion (or push a pin) nobody approved".into(),
            &format!("protect `{}` with a ruleset (or branch protection) that requires pull requests with at least {want} approving review(s), for admins too", s.base_branch),
        ),
        Some(n) => found(
            Verdict::Missing,
            &branch_subject,
            format!("merging needs {n} approving review(s), the manifest's promotion asks for {want}"),
            "raise the rule's required approvals to `promotion.required_approvals`",
        ),
        None => found(
            Verdict::Missing,
            &branch_subject,
            "cannot read its protection with this token".into(),
            ADMIN_TOKEN,
        ),
    });

    // 2. CODEOWNERS of the pin file, and a rule that makes their review count.
    let mut owners = Vec::new();
    let mut owner_teams = Vec::new();
    let mut found_file = None;
    let mut codeowners_text = None;
    for location in codeowners::LOCATIONS {
        if let Some(text) = file_at(gh, &s.promotion, location, &s.base_branch).await? {
            for o in codeowners::owners(&text, &s.pin_file) {
                match o {
                    Owner::User(u) => owners.push(u),
                    Owner::Team(t) => owner_teams.push(t),
                }
            }
            found_file = Some(location);
            codeowners_text = Some(text);
            break;
        }
    }
    let owned = !owners.is_empty() || !owner_teams.is_empty();
    // With a URL target the merge deploys: GitHub must enforce who approves, as the gate's
    // check after the merge comes too late to stop the GitOps tool.
    let level = if s.production_is_url {
        Verdict::Missing
    } else {
        Verdict::Warning
    };
    let pin_subject = format!("pin file `{}`", s.pin_file);
    out.checks.push(match (owned, code_owners) {
        (true, true) => found(
            Verdict::Ok,
            &pin_subject,
            format!(
                "owned by {} in {}, whose review merging requires",
                owners
                    .iter()
                    .map(|u| format!("@{u}"))
                    .chain(owner_teams.iter().map(|t| format!("@{t}")))
                    .collect::<Vec<_>>()
                    .join(", "),
                found_file.copied().unwrap_or_default()
            ),
            "",
        ),
        (false, _) => found(
            level,
            &pin_subject,
            format!("no CODEOWNERS entry covers it{}", if s.production_is_url { ": with a URL target the merge is the deployment, and any writer's approval lets it merge" } else { "" }),
            &format!("add `/{} @OWNER` (the people who may approve production) to .github/CODEOWNERS on `{}`, and require a code owner's review in the branch rule", s.pin_file, s.base_branch),
        ),
        (true, false) => found(
            level,
            &pin_subject,
            "CODEOWNERS covers it, but the branch rule does not require a code owner's review".into(),
            &format!("turn on \"Require review from Code Owners\" in the rule protecting `{}`", s.base_branch),
        ),
    });

    // 2b. What decides who may approve: the gate workflow, the manifest it reads (its reviewers)
    // and CODEOWNERS itself. A change to them that any writer may approve lets a writer list
    // themselves, or an accomplice, as a reviewer: their code owners' review must be required.
    let decides: Vec<&str> = s
        .gate_files
        .iter()
        .map(String::as_str)
        .chain(found_file.copied())
        .collect();
    let unowned: Vec<&str> = decides
        .iter()
        .copied()
        .filter(|p| {
            codeowners_text
                .as_deref()
                .is_none_or(|t| codeowners::owners(t, p).is_empty())
        })
        .collect();
    let subject = format!("who may approve, in {promo}");
    let listed = |paths: &[&str]| {
        paths
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.checks.push(match (unowned.is_empty(), code_owners) {
        (true, true) => found(
            Verdict::Ok,
            &subject,
            format!("{} have code owners, whose review merging requires", listed(&decides)),
            "",
        ),
        (false, _) => found(
            Verdict::Missing,
            &subject,
            format!(
                "no CODEOWNERS entry covers {}: a writer could change who may approve (the manifest's reviewers, the gate) with any colleague's review",
                listed(&unowned)
            ),
            &format!(
                "give {} to the people who may approve production in .github/CODEOWNERS on `{}` (e.g. `/{} @OWNER`), and require a code owner's review",
                listed(&unowned),
                s.base_branch,
                unowned.first().copied().unwrap_or("PIN_FILE")
            ),
        ),
        (true, false) => found(
            Verdict::Missing,
            &subject,
            format!("{} have code owners, but the branch rule does not require their review", listed(&decides)),
            &format!("turn on \"Require review from Code Owners\" in the rule protecting `{}`", s.base_branch),
        ),
    });

    // 3. Environments: each exists, and production deploys from the base branch only.
    let mut env_vars: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for (in_repo, env) in &s.environments {
        let repo = in_repo.full();
        let subject = format!("environment `{env}` of {repo}");
        let exists = match gh
            .get_optional(&format!("/repos/{repo}/environments/{env}"))
            .await
        {
            Ok(e) => e,
            Err(e) if unreadable(&e) => {
                out.checks.push(found(
                    Verdict::Missing,
                    &subject,
                    "cannot read it with this token".into(),
                    ADMIN_TOKEN,
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(environment) = exists else {
            out.checks.push(found(
                Verdict::Missing,
                &subject,
                "does not exist: GitHub creates it on first use with no branch restriction and no variables".into(),
                &format!("create it (Settings → Environments → New environment `{env}`), restrict its deployment branches and set its variables"),
            ));
            continue;
        };
        let policy = &environment.at("deployment_branch_policy");
        let branches: Option<Vec<String>> = if policy.is_null() {
            None
        } else if policy.at("custom_branch_policies").as_bool() == Some(true) {
            let listed = gh
                .get(&format!(
                    "/repos/{repo}/environments/{env}/deployment-branch-policies"
                ))
                .await?
                .body;
            Some(
                listed
                    .at("branch_policies")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p.at("type").as_str().unwrap_or("branch") == "branch")
                    .filter_map(|p| p.at("name").as_str().map(str::to_owned))
                    .collect(),
            )
        } else {
            // Protected branches only: any protected branch may deploy.
            Some(vec!["(protected branches)".to_owned()])
        };
        // Production deploys on the push to the base branch; the release (staging) runs on the
        // default branch.
        let from = if env == "production" {
            &s.base_branch
        } else {
            default_branch
        };
        out.checks
            .push(judge_environment(env, &subject, branches.as_deref(), from));
        let vars = match gh
            .get(&format!(
                "/repos/{repo}/environments/{env}/variables?per_page=30"
            ))
            .await
        {
            Ok(v) => v.body,
            Err(e) if unreadable(&e) => Value::Null,
            Err(e) => return Err(e),
        };
        env_vars.insert((repo, env.clone()), name_values(vars.at("variables")));
    }

    // 4. Variables and secrets the workflows read, in the repository whose workflow reads them.
    let mut repo_settings = BTreeMap::new();
    for n in &s.needed {
        let repo = n.repo.full();
        if repo_settings.contains_key(&repo) {
            continue;
        }
        let vars = match gh
            .get(&format!("/repos/{repo}/actions/variables?per_page=30"))
            .await
        {
            Ok(v) => Some(name_values(v.body.at("variables"))),
            Err(e) if unreadable(&e) => None,
            Err(e) => return Err(e),
        };
        let secrets = match gh
            .get(&format!("/repos/{repo}/actions/secrets?per_page=30"))
            .await
        {
            Ok(v) => Some(
                v.body
                    .at("secrets")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.at("name").as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            Err(e) if unreadable(&e) => None,
            Err(e) => return Err(e),
        };
        repo_settings.insert(repo, (vars, secrets));
    }
    let several = repo_settings.len() > 1;
    // A GitHub App makes each job's token (its client ID a variable, of the repository or of an
    // environment, and its private key a secret).
    let app_in = |repo: &str| {
        let client_id = |vars: &BTreeMap<String, String>| {
            vars.get(APP_CLIENT_ID)
                .is_some_and(|v| !v.trim().is_empty())
        };
        let id = repo_settings
            .get(repo)
            .and_then(|(vars, _)| vars.as_ref())
            .is_some_and(client_id)
            || env_vars
                .iter()
                .any(|((r, _), vars)| r == repo && client_id(vars));
        let key = repo_settings
            .get(repo)
            .and_then(|(_, secrets)| secrets.as_ref())
            .is_some_and(|names| names.iter().any(|n| n == APP_PRIVATE_KEY));
        (id, key)
    };
    let mut seen = Vec::new();
    for n in &s.needed {
        if seen.contains(n) {
            continue;
        }
        seen.push(n.clone());
        let repo = n.repo.full();
        let Some((repo_vars, secrets)) = repo_settings.get(&repo) else {
            continue;
        };
        let place = n.need.environment.as_ref().map_or_else(
            || "the repository".to_owned(),
            |e| format!("environment `{e}`"),
        );
        // Two repositories' workflows read settings: say whose.
        let place = if several {
            format!("{place} of {repo}")
        } else {
            place
        };
        let subject = format!(
            "{} `{}` for {place}",
            if n.need.kind == "vars" {
                "variable"
            } else {
                "secret"
            },
            n.need.name
        );
        let (app_id, app_key) = app_in(&repo);
        let app = app_id && app_key;
        // The App's two settings are judged once per repository, below.
        if n.need.name == APP_CLIENT_ID || n.need.name == APP_PRIVATE_KEY {
            continue;
        }
        if n.need.kind == "vars" {
            let from_env = n
                .need
                .environment
                .as_ref()
                .and_then(|e| env_vars.get(&(repo.clone(), e.clone())))
                .and_then(|v| v.get(&n.need.name));
            let value = from_env.or_else(|| repo_vars.as_ref().and_then(|v| v.get(&n.need.name)));
            match (value, &repo_vars) {
                (Some(v), _) if !v.trim().is_empty() => {
                    out.checks
                        .push(found(Verdict::Ok, &subject, format!("set to `{v}`"), ""));
                    if n.need.name.ends_with("_ROLE_ARN") {
                        out.roles.push(Role {
                            variable: format!("{} of {place}", n.need.name),
                            arn: v.trim().to_owned(),
                            subject: s
                                .subjects
                                .get(&(n.need.name.clone(), n.need.environment.clone()))
                                .cloned()
                                .unwrap_or_else(|| {
                                    oidc_subject(
                                        &n.repo,
                                        n.need.environment.as_deref(),
                                        default_branch,
                                    )
                                }),
                            environment: n.need.environment.clone(),
                        });
                    }
                }
                (_, None) => out.checks.push(found(
                    Verdict::Missing,
                    &subject,
                    "cannot read the variables with this token".into(),
                    ADMIN_TOKEN,
                )),
                _ => out.checks.push(found(
                    Verdict::Missing,
                    &subject,
                    "not set (an organisation variable would not show here)".into(),
                    &match &n.need.environment {
                        Some(e) => format!(
                            "set it in Settings → Environments → {e} → Environment variables"
                        ),
                        None => "set it in Settings → Secrets and variables → Actions → Variables"
                            .to_owned(),
                    },
                )),
            }
        } else {
            // The gate's token and, read by a workflow of the promotion repository itself (the
            // promote job when promotion stays in the model's, the gate's rollback job), the
            // promotion's are optional: the workflows fall back to GITHUB_TOKEN.
            let optional = n.need.name == "MLOPS_GATE_TOKEN"
                || (n.need.name == "MLOPS_PROMOTION_TOKEN" && n.repo == s.promotion);
            let required = !optional;
            let app_token =
                n.need.name == "MLOPS_GATE_TOKEN" || n.need.name == "MLOPS_PROMOTION_TOKEN";
            match secrets {
                Some(names) if names.contains(&n.need.name) => out.checks.push(found(Verdict::Ok, &subject, "set".into(), "")),
                Some(_) if app && app_token => out.checks.push(found(
                    Verdict::Ok,
                    &subject,
                    "not set (not needed: the GitHub App makes this token)".into(),
                    "",
                )),
                Some(_) if required => out.checks.push(found(
                    Verdict::Missing,
                    &subject,
                    "not set, and no GitHub App makes the token: the promotion cannot be opened".into(),
                    &format!("install a GitHub App on the promotion repository (contents, pull requests and commit statuses: write) and set `{APP_CLIENT_ID}` (variable) and `{APP_PRIVATE_KEY}` (secret), or set this secret to a fine-grained token with that access (an installation token kept as a secret expires within the hour)"),
                )),
                Some(_) if n.need.name == "MLOPS_PROMOTION_TOKEN" => out.checks.push(found(
                    Verdict::Warning,
                    &subject,
                    "not set: the promotion's commits and holdout status are made with GITHUB_TOKEN, which every workflow of this repository holds, so they prove less (the approval at the head still decides) and the pull request triggers no workflow".into(),
                    &format!("install a GitHub App (contents, pull requests and commit statuses: write) and set `{APP_CLIENT_ID}` (variable) and `{APP_PRIVATE_KEY}` (secret): each job makes a short-lived token of its own"),
                )),
                Some(_) => {
                    let teams = !s.teams.is_empty() || !owner_teams.is_empty();
                    out.checks.push(found(
                        if teams { Verdict::Warning } else { Verdict::Ok },
                        &subject,
                        if teams {
                            "not set: the gate reads team membership with the workflow's GITHUB_TOKEN, which cannot, so team members' approvals do not count".into()
                        } else {
                            "not set (not needed: no team approves)".into()
                        },
                        &format!("install a GitHub App with organisation members: read and set `{APP_CLIENT_ID}` (variable) and `{APP_PRIVATE_KEY}` (secret)"),
                    ));
                }
                None => out.checks.push(found(Verdict::Warning, &subject, "cannot list the secrets with this token".into(), ADMIN_TOKEN)),
            }
        }
    }

    // 4b. The GitHub App of each repository whose workflows can make its tokens.
    let mut app_repos: Vec<String> = s
        .needed
        .iter()
        .filter(|n| n.need.name == APP_CLIENT_ID)
        .map(|n| n.repo.full())
        .collect();
    app_repos.sort();
    app_repos.dedup();
    for repo in app_repos {
        let (id, key) = app_in(&repo);
        let readable = repo_settings
            .get(&repo)
            .is_some_and(|(_, secrets)| secrets.is_some());
        let subject = format!("GitHub App of {repo}");
        out.checks.push(match (id, key, readable) {
            (true, true, _) => found(
                Verdict::Ok,
                &subject,
                format!("`{APP_CLIENT_ID}` and `{APP_PRIVATE_KEY}` set: each job makes a short-lived token of its own"),
                "",
            ),
            (true, false, true) => found(
                Verdict::Missing,
                &subject,
                format!("`{APP_CLIENT_ID}` is set but the secret `{APP_PRIVATE_KEY}` is not: every job that makes the App's token fails"),
                &format!("set `{APP_PRIVATE_KEY}` to the App's private key (PEM) in Settings → Secrets and variables → Actions, or remove the variable"),
            ),
            (true, false, false) => found(
                Verdict::Warning,
                &subject,
                format!("`{APP_CLIENT_ID}` is set; cannot list the secrets to see `{APP_PRIVATE_KEY}`"),
                ADMIN_TOKEN,
            ),
            (false, true, _) => found(
                Verdict::Warning,
                &subject,
                format!("`{APP_PRIVATE_KEY}` is set but the variable `{APP_CLIENT_ID}` is not: the App is not used"),
                &format!("set the variable `{APP_CLIENT_ID}` to the App's client ID"),
            ),
            (false, false, _) => found(
                Verdict::Ok,
                &subject,
                "not configured: the jobs use the token secrets, or GITHUB_TOKEN".into(),
                "",
            ),
        });
    }

    // 5. Actions may open the promotion pull request with GITHUB_TOKEN: in the model repository
    // when the promotion stays there, and in a promotion repository elsewhere whose gate
    // workflow opens rollback pull requests with it (no App, no token secret).
    let mut opening: Vec<String> = Vec::new();
    if s.promote_with_workflow_token {
        opening.push(s.repo.full());
    }
    let promo = s.promotion.full();
    let promo_secret = repo_settings
        .get(&promo)
        .and_then(|(_, secrets)| secrets.as_ref())
        .is_some_and(|names| names.iter().any(|n| n == "MLOPS_PROMOTION_TOKEN"));
    let promo_app = matches!(app_in(&promo), (true, true));
    let falls_back = s
        .needed
        .iter()
        .any(|n| n.repo == s.promotion && n.need.name == "MLOPS_PROMOTION_TOKEN")
        && !promo_secret
        && !promo_app;
    if falls_back && !opening.contains(&promo) {
        opening.push(promo);
    }
    for repo in opening {
        let subject = format!("Actions permissions of {repo}");
        match gh.get(&format!("/repos/{repo}/actions/permissions/workflow")).await {
            Ok(r) if r.body.at("can_approve_pull_request_reviews") == &Value::Bool(true) => out.checks.push(found(
                Verdict::Ok,
                &subject,
                "GitHub Actions may create pull requests".into(),
                "",
            )),
            Ok(_) => out.checks.push(found(
                Verdict::Missing,
                &subject,
                "GitHub Actions may not create pull requests: `mlops promote` cannot open the promotion, nor the gate's rollback job the rollback".into(),
                "turn on Settings → Actions → General → Workflow permissions → \"Allow GitHub Actions to create and approve pull requests\" (the gate never counts a bot's approval)",
            )),
            Err(e) if unreadable(&e) => out.checks.push(found(Verdict::Missing, &subject, "cannot read them with this token".into(), ADMIN_TOKEN)),
            Err(e) => return Err(e),
        }
    }

    // 6. The OIDC subject template of each repository whose jobs assume a role: the roles trust
    // the subjects the manifest says, which only that template gives.
    let mut assuming: Vec<&Repo> = s
        .needed
        .iter()
        .filter(|n| n.need.name.ends_with("_ROLE_ARN"))
        .map(|n| &n.repo)
        .collect();
    assuming.sort_by_key(|r| r.full());
    assuming.dedup();
    for repo in assuming {
        let path = format!("/repos/{}/actions/oidc/customization/sub", repo.full());
        match gh.get(&path).await {
            Ok(r) => {
                let keys: Vec<String> = r
                    .body
                    .at("include_claim_keys")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                let use_default = r.body.at("use_default").as_bool().unwrap_or(true);
                out.checks.push(judge_subject_template(
                    repo,
                    use_default,
                    &keys,
                    s.workflow_subjects,
                ));
            }
            Err(e) if unreadable(&e) => out.checks.push(found(
                Verdict::Missing,
                &format!("OIDC subject template of {}", repo.full()),
                "cannot read it with this token".into(),
                ADMIN_TOKEN,
            )),
            Err(e) => return Err(e),
        }
    }

    // 7. Team reviewers must be readable somewhere: not a security check, a liveness one.
    for team in &s.teams {
        let team = qualified_team(team, &s.promotion);
        let (org, slug) = team.split_once('/').unwrap_or_default();
        if let Err(e) = gh
            .get(&format!("/orgs/{org}/teams/{slug}/members?per_page=1"))
            .await
        {
            out.checks.push(found(
                Verdict::Warning,
                &format!("team {team}"),
                format!("cannot read its members with this token ({e})"),
                "give the gate a token with organisation members: read (MLOPS_GATE_TOKEN)",
            ));
        }
    }
    Ok(out)
}

fn name_values(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((
                v.at("name").as_str()?.to_owned(),
                v.at("value").as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// An environment's deployment branches (`None`: any branch) against the one branch its jobs
/// run on (`base`): `production`'s is required (a workflow on another branch could assume the
/// production role), `staging`'s advised (its role records the holdout reports production's
/// deploy trusts); other environments are checked for existence only.
pub fn judge_environment(
    env: &str,
    subject: &str,
    branches: Option<&[String]>,
    base: &str,
) -> Check {
    let (short, role) = match env {
        "production" => (Verdict::Missing, "the production role"),
        "staging" => (
            Verdict::Warning,
            "the staging role, which records the holdout reports production's deploy trusts",
        ),
        _ => return found(Verdict::Ok, subject, "exists".into(), ""),
    };
    let fix = format!(
        "Settings → Environments → {env} → Deployment branches and tags: \"Selected branches and tags\" with exactly `{base}`"
    );
    match branches {
        None => found(
            short,
            subject,
            format!("any branch may deploy to it: a workflow on any branch can assume {role}"),
            &fix,
        ),
        Some(b) if b == [base.to_owned()] => found(
            Verdict::Ok,
            subject,
            format!("only `{base}` may deploy to it"),
            "",
        ),
        Some(b) => found(
            short,
            subject,
            format!(
                "deploys from {}, not only `{base}`",
                b.iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &fix,
        ),
    }
}

/// The AWS checks: each role's trust policy (`policies[i]` is `roles[i]`'s document, or why it
/// could not be read) judged by [`judge_trust`] against its job's subject, and staging and
/// production on roles of their own.
pub fn judge_roles(roles: &[Role], policies: &[Result<String, String>]) -> Vec<Check> {
    let mut out = Vec::new();
    for (role, policy) in roles.iter().zip(policies) {
        let subject = format!("trust policy of {}", role.arn);
        let text = match policy {
            Ok(t) => t,
            Err(e) => {
                out.push(found(
                    Verdict::Missing,
                    &subject,
                    format!("cannot read it ({e}), named by {}", role.variable),
                    "run with credentials that may iam:GetRole (or check the variable's ARN); --no-aws skips AWS",
                ));
                continue;
            }
        };
        let problems = match serde_json::from_str(text) {
            Ok(doc) => judge_trust(&doc, &role.subject),
            Err(e) => vec![format!("it is not JSON: {e}")],
        };
        out.push(if problems.is_empty() {
            found(
                Verdict::Ok,
                &subject,
                format!("only GitHub's `{}` may assume it", role.subject),
                "",
            )
        } else {
            found(
                Verdict::Missing,
                &subject,
                problems.join("; "),
                &format!(
                    "trust only GitHub's OIDC provider, with `StringEquals` on `token.actions.githubusercontent.com:aud` = `sts.amazonaws.com` and `:sub` = `{}` (what `mlops render` writes in terraform/github_oidc.tf)",
                    role.subject
                ),
            )
        });
    }
    let arn_of = |env: &str| {
        roles
            .iter()
            .find(|r| r.environment.as_deref() == Some(env))
            .map(|r| r.arn.as_str())
    };
    if let (Some(s), Some(p)) = (arn_of("staging"), arn_of("production"))
        && s == p
    {
        out.push(found(
            Verdict::Missing,
            "AWS roles",
            format!("staging and production assume the same role {s}"),
            "give each environment its own MLOPS_AWS_ROLE_ARN (terraform/github_oidc.tf creates one role per environment)",
        ));
    }
    out
}

const OIDC_HOST: &str = "token.actions.githubusercontent.com";

/// A value or a list of values as strings.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// What is wrong with a role's trust policy (an IAM policy document) for GitHub's OIDC tokens
/// of exactly `subject`: empty when every statement that lets anyone assume the role lets only
/// GitHub's OIDC provider do so, for the audience `sts.amazonaws.com` and that subject.
pub fn judge_trust(doc: &Value, subject: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let statements = match &doc.at("Statement") {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![doc.at("Statement").clone()],
        _ => Vec::new(),
    };
    let mut github = 0;
    for st in &statements {
        if st.at("Effect").as_str() != Some("Allow") {
            continue;
        }
        let actions = strings(st.at("Action"));
        if !actions.iter().any(|a| a == "*" || a.starts_with("sts:")) {
            continue;
        }
        let federated = strings(st.at("Principal").at("Federated"));
        let others: Vec<String> = match &st.at("Principal") {
            Value::String(s) => vec![s.clone()],
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| k.as_str() != "Federated")
                .flat_map(|(k, v)| strings(v).into_iter().map(move |x| format!("{k} {x}")))
                .collect(),
            _ => Vec::new(),
        };
        for o in others {
            problems.push(format!("it also trusts {o}"));
        }
        if federated.is_empty() {
            continue;
        }
        if !federated
            .iter()
            .all(|f| f.ends_with(&format!(":oidc-provider/{OIDC_HOST}")))
        {
            problems.push(format!(
                "it trusts the identity provider(s) {}",
                federated.join(", ")
            ));
            continue;
        }
        github += 1;
        let mut aud = Vec::new();
        let mut sub = Vec::new();
        let mut patterns = Vec::new();
        if let Value::Object(ops) = &st.at("Condition") {
            for (op, keys) in ops {
                for (key, values) in keys.as_object().into_iter().flatten() {
                    let values = strings(values);
                    let exact = op == "StringEquals";
                    if key == &format!("{OIDC_HOST}:aud") {
                        aud.extend(values.iter().map(|v| (v.clone(), exact)));
                    } else if key == &format!("{OIDC_HOST}:sub") {
                        for v in values {
                            if !exact && (v.contains('*') || v.contains('?')) {
                                patterns.push(v);
                            } else {
                                sub.push(v);
                            }
                        }
                    }
                }
            }
        }
        if aud.is_empty()
            || aud
                .iter()
                .any(|(v, exact)| v != "sts.amazonaws.com" || !exact)
        {
            problems.push(
                "its audience condition is not exactly `StringEquals` `sts.amazonaws.com`".into(),
            );
        }
        if sub.is_empty() && patterns.is_empty() {
            problems.push(format!("it has no subject condition: a workflow of any repository on GitHub can assume it (it should be `{subject}`)"));
        }
        for p in patterns {
            problems.push(format!(
                "its subject pattern `{p}` lets more than `{subject}` assume it"
            ));
        }
        for v in sub {
            if v != subject {
                problems.push(format!("it trusts the subject `{v}`, not only `{subject}`"));
            }
        }
    }
    if github == 0 && problems.is_empty() {
        problems.push(format!(
            "no statement lets GitHub's OIDC provider assume it (for `{subject}`)"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUB: &str = "repo:octo/app:environment:production";

    fn trust(condition: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
            "Condition": condition,
        }]})
    }

    #[test]
    fn the_subject_template_must_give_the_subjects_the_roles_trust() {
        let repo = Repo::parse("octo/app").expect("repo");
        let keys = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let workflow = keys(&WORKFLOW_CLAIM_KEYS);
        for (use_default, keys, wants_workflow, verdict, says) in [
            (
                false,
                workflow.clone(),
                true,
                Verdict::Ok,
                "names the workflow",
            ),
            (
                true,
                Vec::new(),
                true,
                Verdict::Missing,
                "GitHub's default: no job can assume them",
            ),
            (
                false,
                keys(&["repo", "context"]),
                true,
                Verdict::Missing,
                "no job can assume them",
            ),
            (
                true,
                Vec::new(),
                false,
                Verdict::Warning,
                "any workflow of the repository",
            ),
            (
                false,
                workflow,
                false,
                Verdict::Missing,
                "no job can assume them",
            ),
        ] {
            let c = judge_subject_template(&repo, use_default, &keys, wants_workflow);
            assert_eq!(c.verdict, verdict, "{c:?}");
            assert!(c.message.contains(says), "{c:?}");
            if verdict != Verdict::Ok {
                assert!(
                    c.hint.contains("actions/oidc/customization/sub")
                        || c.hint.contains("oidc_subject"),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn only_one_exact_subject_and_the_audience_pass() {
        let good = trust(json!({"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUB,
        }}));
        assert_eq!(judge_trust(&good, SUB), Vec::<String>::new());
        let cases = [
            (
                trust(
                    json!({"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}),
                ),
                "no subject condition",
            ),
            (
                trust(json!({
                    "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                    "StringLike": {"token.actions.githubusercontent.com:sub": "repo:octo/app:*"},
                })),
                "pattern `repo:octo/app:*`",
            ),
            (
                trust(json!({"StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": [SUB, "repo:octo/app:environment:staging"],
                }})),
                "not only",
            ),
            (
                trust(json!({"StringEquals": {"token.actions.githubusercontent.com:sub": SUB}})),
                "audience",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}),
                "also trusts AWS",
            ),
            (json!({"Statement": []}), "no statement"),
        ];
        for (doc, says) in cases {
            let problems = judge_trust(&doc, SUB);
            assert!(
                problems.iter().any(|p| p.contains(says)),
                "{says}: {problems:?}"
            );
        }
    }

    #[test]
    fn production_deploys_from_the_base_branch_only() {
        let base = "main";
        let judged = |b: Option<&[String]>| judge_environment("production", "env", b, base).verdict;
        assert_eq!(judged(None), Verdict::Missing);
        assert_eq!(judged(Some(&["main".to_owned()])), Verdict::Ok);
        assert_eq!(
            judged(Some(&["main".to_owned(), "dev".to_owned()])),
            Verdict::Missing
        );
        assert_eq!(judged(Some(&["*".to_owned()])), Verdict::Missing);
        let staging = |b: Option<&[String]>| judge_environment("staging", "env", b, base);
        assert_eq!(staging(None).verdict, Verdict::Warning);
        assert!(
            staging(None).message.contains("holdout reports"),
            "{:?}",
            staging(None)
        );
        assert_eq!(staging(Some(&["main".to_owned()])).verdict, Verdict::Ok);
        assert_eq!(
            judge_environment("preview", "env", None, base).verdict,
            Verdict::Ok
        );
    }

    /// Each role is judged against its own subject; an unreadable or broken policy is missing,
    /// and staging and production may not share a role.
    #[test]
    fn roles_are_judged_one_by_one_and_kept_apart() {
        let repo = Repo::parse("octo/app").expect("repo");
        let role = |env: &str, arn: &str| Role {
            variable: format!("MLOPS_AWS_ROLE_ARN of environment `{env}`"),
            arn: arn.into(),
            subject: oidc_subject(&repo, Some(env), "main"),
            environment: Some(env.to_owned()),
        };
        let good = |env: &str| {
            trust(json!({"StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": format!("repo:octo/app:environment:{env}"),
            }}))
            .to_string()
        };
        let roles = [role("staging", "arn:s"), role("production", "arn:p")];
        let checks = judge_roles(&roles, &[Ok(good("staging")), Ok(good("production"))]);
        assert!(
            checks.iter().all(|c| c.verdict == Verdict::Ok),
            "{checks:?}"
        );
        // Staging's policy on production's role: the subject is wrong.
        let checks = judge_roles(&roles, &[Ok(good("staging")), Ok(good("staging"))]);
        assert_eq!(checks[1].verdict, Verdict::Missing, "{checks:?}");
        let checks = judge_roles(&roles, &[Err("AccessDenied".into()), Ok("{".into())]);
        assert!(
            checks[0].message.contains("cannot read it (AccessDenied)"),
            "{checks:?}"
        );
        assert!(checks[1].message.contains("not JSON"), "{checks:?}");
        let shared = [role("staging", "arn:same"), role("production", "arn:same")];
        let checks = judge_roles(&shared, &[Ok(good("staging")), Ok(good("production"))]);
        assert!(
            checks
                .iter()
                .any(|c| c.message.contains("assume the same role arn:same")),
            "{checks:?}"
        );
    }
}
