//! `mlops doctor`: are the settings the threat model relies on in place? Reads the repository's
//! settings through GitHub's API (`mlops_github::doctor`) and, unless `--no-aws`, the trust
//! policy of each AWS role the variables name, then prints one line per check with its fix.
//! Exit 0 nothing missing (warnings allowed), 1 something missing, 2 bad input, 3 GitHub or AWS
//! failed.

use std::collections::BTreeSet;

use mlops_github::Repo;
use mlops_github::doctor::{self, Findings, Needed, Setup, Verdict};
use serde_json::json;

use super::github::{connect, failed, promotion};
use super::{error, valid_manifest};
use crate::cli::{DoctorArgs, Format};
use crate::exit::Exit;

/// What the rendered workflows read: the variables and secrets of each job, and the
/// environments the jobs run in.
fn needs(
    m: &mlops_manifest::Manifest,
    manifest_path: &str,
) -> Result<(Vec<Needed>, Vec<String>), Exit> {
    let files = mlops_render::render(m, manifest_path, &Default::default()).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Runtime
    })?;
    let mut needed = BTreeSet::new();
    for (path, text) in &files {
        if path.starts_with(".github/workflows/") {
            needed.extend(mlops_render::needs::scan(text));
        }
    }
    let environments: BTreeSet<String> = needed
        .iter()
        .filter_map(|n| n.environment.clone())
        .collect();
    // The gate's production job always runs in `production`, whatever it reads.
    let mut environments: Vec<String> = environments.into_iter().collect();
    if !environments.iter().any(|e| e == "production") {
        environments.push("production".to_owned());
    }
    let needed = needed
        .into_iter()
        .map(|n| Needed {
            kind: n.kind,
            name: n.name,
            environment: n.environment,
        })
        .collect();
    Ok((needed, environments))
}

pub(crate) fn run(args: &DoctorArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.manifest, format, "nothing checked") {
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
    let manifest_path = match super::render::locate(&args.manifest) {
        Ok((_, path)) => path,
        Err(e) => {
            error(&e, "");
            return Exit::Usage;
        }
    };
    let (needed, environments) = match needs(&m, &manifest_path) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let setup = Setup {
        promote_with_workflow_token: promo == repo,
        repo,
        promotion: promo,
        base_branch: settings.base_branch.clone(),
        pin_file: settings.pin_file.clone(),
        required_approvals: settings.required_approvals,
        reviewers: settings.reviewers.clone(),
        teams: settings.team_reviewers.clone(),
        production_is_url: m.environments.production.sagemaker.is_none(),
        environments,
        needed,
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
