//! `mlops doctor`'s checks: what the rendered workflows read (variables, secrets, environments,
//! by the repository they run in), the repository settings the threat model relies on, read
//! through GitHub's API ([`mlops_github::doctor`]), and, unless told not to, the trust policy of
//! each AWS role the variables name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mlops_github::Repo;
use mlops_github::doctor::{self, Findings, Needed, Setup};
use mlops_manifest::Manifest;

use crate::Problem;

/// What `mlops doctor` is asked to check.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    /// The manifest's path as given (named in the fixes doctor suggests) and its text.
    pub manifest_path: &'a Path,
    pub source: &'a str,
    /// The GitHub API.
    pub api_url: Option<String>,
    /// Skip reading the AWS roles' trust policies.
    pub no_aws: bool,
}

/// What the rendered workflows need, by the repository they run in.
struct Needs {
    /// The variables and secrets each job reads.
    needed: Vec<Needed>,
    /// The deployment environments the jobs run in.
    environments: Vec<(Repo, String)>,
    /// The promotion repository's rendered files (none when it is the model's).
    promotion_files: BTreeMap<String, String>,
}

/// What the rendered workflows of the model's repository (`repo`) and, with the promotion
/// elsewhere, of the promotion repository (`promo`) read.
fn needs(
    m: &Manifest,
    manifest_path: &str,
    source: &str,
    repo: &Repo,
    promo: &Repo,
) -> Result<Needs, Problem> {
    let failed = |e: mlops_render::RenderError| Problem::broken(e.to_string(), "");
    let files = mlops_render::render(m, manifest_path, &Default::default()).map_err(failed)?;
    let promotion_files =
        mlops_render::render_promotion(m, manifest_path, source, &Default::default())
            .map_err(failed)?
            .unwrap_or_default();
    let mut needed = BTreeSet::new();
    for (in_repo, tree) in [(repo, &files), (promo, &promotion_files)] {
        for (path, text) in tree.iter() {
            if path.starts_with(".github/workflows/") {
                needed.extend(
                    mlops_render::needs::scan(text)
                        .into_iter()
                        .map(|n| (in_repo.full(), n)),
                );
            }
        }
    }
    let mut environments: BTreeSet<(String, String)> = needed
        .iter()
        .filter_map(|(r, n)| Some((r.clone(), n.environment.clone()?)))
        .collect();
    // The gate's production job always runs in `production`, whatever it reads.
    if mlops_render::loop_withheld(m).is_none() {
        environments.insert((promo.full(), "production".to_owned()));
    }
    let parse = |r: &str| Repo::parse(r).unwrap_or_else(|| repo.clone());
    Ok(Needs {
        needed: needed
            .into_iter()
            .map(|(r, need)| Needed {
                repo: parse(&r),
                need,
            })
            .collect(),
        environments: environments
            .into_iter()
            .map(|(r, e)| (parse(&r), e))
            .collect(),
        promotion_files,
    })
}

/// Every check, with its verdict and fix.
pub fn check(req: &Request<'_>) -> Result<Findings, Problem> {
    let m = req.manifest;
    let (settings, promo) = crate::github::promotion(m)?;
    let Some(repo) = Repo::parse(&m.project.repository) else {
        return Err(Problem::input(
            format!("`{}` is not OWNER/REPO", m.project.repository),
            "set `project.repository`",
        ));
    };
    let (_, manifest_path) =
        mlops_render::tree::locate(req.manifest_path).map_err(|e| Problem::input(e, ""))?;
    let needs = needs(m, &manifest_path, req.source, &repo, &promo)?;
    let setup = Setup {
        promote_with_workflow_token: promo == repo,
        repo,
        promotion: promo.clone(),
        base_branch: settings.base_branch.clone(),
        pin_file: settings.pin_file.clone(),
        required_approvals: settings.required_approvals,
        reviewers: settings.reviewers.clone(),
        teams: settings.team_reviewers.clone(),
        production_is_url: m.environments.production.sagemaker.is_none(),
        environments: needs.environments,
        needed: needs.needed,
        gate_files: {
            let gate = mlops_manifest::gate_workflow(m);
            vec![
                gate.path(),
                gate.manifest.unwrap_or_else(|| manifest_path.clone()),
            ]
        },
        promotion_files: needs.promotion_files,
        promotion_render: format!(
            "`mlops render --manifest {} --promotion-out CLONE` (CLONE: a clone of {})",
            req.manifest_path.display(),
            promo.full()
        ),
        loop_withheld: mlops_render::loop_withheld(m),
        subjects: mlops_manifest::RolePurpose::rendered(m)
            .into_iter()
            .map(|p| {
                (
                    (
                        mlops_manifest::role_variable(m, p),
                        p.environment().map(str::to_owned),
                    ),
                    mlops_manifest::oidc_subject(m, p),
                )
            })
            .collect(),
        workflow_subjects: m.workflows.oidc_subject == mlops_manifest::model::OidcSubject::Workflow,
    };
    let (rt, gh) = crate::github::connect(req.api_url.as_deref())?;
    let mut findings = rt
        .block_on(doctor::check(&gh, &setup, &m.workflows.default_branch))
        .map_err(|e| crate::github::failed(&e, ""))?;
    if !req.no_aws {
        let policies: Vec<Result<String, String>> = findings
            .roles
            .iter()
            .map(|role| {
                rt.block_on(mlops_aws::role_trust_policy(&role.arn))
                    .map_err(|e| e.message)
            })
            .collect();
        let checks = doctor::judge_roles(&findings.roles, &policies);
        findings.checks.extend(checks);
    }
    Ok(findings)
}
