//! `mlops doctor`: are the settings the threat model relies on in place? Reads the repository's
//! settings through GitHub's API (`mlops_github::doctor`) and, unless `--no-aws`, the trust
//! policy of each AWS role the variables name, then prints one line per check with its fix.
//! Exit 0 nothing missing (warnings allowed), 1 something missing, 2 bad input, 3 GitHub or AWS
//! failed.

use std::collections::{BTreeMap, BTreeSet};

use mlops_github::Repo;
use mlops_github::doctor::{self, Findings, Needed, Setup, Verdict};
use serde_json::json;

use super::github::{connect, failed, promotion};
use super::{error, valid_manifest};
use crate::cli::{DoctorArgs, Format};
use crate::exit::Exit;

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
    m: &mlops_manifest::Manifest,
    manifest_path: &str,
    source: &str,
    repo: &Repo,
    promo: &Repo,
) -> Result<Needs, Exit> {
    let failed = |e: mlops_render::RenderError| {
        eprintln!("error: {e}");
        Exit::Runtime
    };
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
            .map(|(r, n)| Needed {
                repo: parse(&r),
                kind: n.kind,
                name: n.name,
                environment: n.environment,
            })
            .collect(),
        environments: environments
            .into_iter()
            .map(|(r, e)| (parse(&r), e))
            .collect(),
        promotion_files,
    })
}

pub(crate) fn run(args: &DoctorArgs, format: Format) -> Exit {
    let (m, source) = match valid_manifest(&args.manifest, format, "nothing checked") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let (settings, promo) = match promotion(&m) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let Some(repo) = Repo::parse(&m.project.repository) else {
        error(
            &format!("`{}` is not OWNER/REPO", m.project.repository),
            "set `project.repository`",
        );
        return Exit::Usage;
    };
    let manifest_path = match mlops_render::tree::locate(&args.manifest) {
        Ok((_, path)) => path,
        Err(e) => {
            error(&e, "");
            return Exit::Usage;
        }
    };
    let source = String::from_utf8_lossy(&source);
    let needs = match needs(&m, &manifest_path, &source, &repo, &promo) {
        Ok(found) => found,
        Err(code) => return code,
    };
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
            let gate = mlops_manifest::gate_workflow(&m);
            vec![
                gate.path(),
                gate.manifest.unwrap_or_else(|| manifest_path.clone()),
            ]
        },
        promotion_files: needs.promotion_files,
        promotion_render: format!(
            "`mlops render --manifest {} --promotion-out CLONE` (CLONE: a clone of {})",
            args.manifest.display(),
            promo.full()
        ),
        loop_withheld: mlops_render::loop_withheld(&m),
        subjects: mlops_manifest::RolePurpose::ALL
            .into_iter()
            .map(|p| {
                (
                    p.environment().map(str::to_owned),
                    mlops_manifest::oidc_subject(&m, p),
                )
            })
            .collect(),
        workflow_subjects: m.workflows.oidc_subject == mlops_manifest::model::OidcSubject::Workflow,
    };
    let (rt, gh) = match connect(&args.github) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut findings: Findings =
        match rt.block_on(doctor::check(&gh, &setup, &m.workflows.default_branch)) {
            Ok(f) => f,
            Err(e) => return failed(&e, ""),
        };
    if !args.no_aws {
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
    let missing = findings
        .checks
        .iter()
        .any(|c| c.verdict == Verdict::Missing);
    match format {
        Format::Json => {
            let checks: Vec<_> = findings
                .checks
                .iter()
                .map(|c| json!({"verdict": c.verdict.name(), "subject": c.subject, "message": c.message, "hint": c.hint}))
                .collect();
            println!("{}", json!({"ok": !missing, "checks": checks}));
        }
        Format::Human | Format::Github => {
            for c in &findings.checks {
                println!("{:<8} {}: {}", c.verdict.name(), c.subject, c.message);
                if c.verdict != Verdict::Ok && !c.hint.is_empty() {
                    println!("         fix: {}", c.hint);
                }
            }
            let count = |v| findings.checks.iter().filter(|c| c.verdict == v).count();
            println!(
                "doctor: {} ok, {} warning(s), {} missing",
                count(Verdict::Ok),
                count(Verdict::Warning),
                count(Verdict::Missing)
            );
        }
    }
    if missing { Exit::No } else { Exit::Ok }
}
