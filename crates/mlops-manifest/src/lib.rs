//! The `mlops.yaml` manifest: its types ([`model`]), span-aware YAML loading ([`yaml`]), the JSON
//! Schema generated from the types ([`schema`]), the validation pipeline ([`check`]) with its
//! semantic rules ([`semantic`]), and the diagnostics every step reports ([`diagnostic`]).
//!
//! Architecture invariant: every diagnostic carries the file, line and column of the node the
//! user has to change; nothing here prints or exits, callers decide how to show a [`Report`].

pub mod check;
pub mod diagnostic;
pub mod model;
pub mod schema;
pub mod semantic;
pub mod yaml;

pub use check::{
    MAX_BYTES, ReadError, Report, check_bytes, check_file, check_together, summary_markdown,
};
pub use diagnostic::{Diagnostic, Severity};
pub use model::Manifest;

/// The branch a promotion pull request of `model` comes from. Rendered workflows (the gate
/// runs only for it) and `mlops promote` (which pushes it) both take the name from here.
pub fn promotion_branch(model: &str) -> String {
    format!("mlops/promote/{model}")
}

/// The AWS roles the rendered workflows assume, by purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RolePurpose {
    /// The train job (no environment; the default branch).
    Train,
    /// The release workflow's jobs in the `staging` environment.
    Staging,
    /// The gate workflow's production job, in the `production` environment.
    Production,
    /// The monitor workflow's job (no environment; the default branch, on its schedule): reads
    /// the registry and the capture, writes nothing in AWS.
    Monitor,
    /// The batch workflow's job (no environment; the default branch): reads the registry and
    /// the input, writes the scores (and runs Batch Transform jobs with `batch.sagemaker`).
    Batch,
}

impl RolePurpose {
    pub const ALL: [RolePurpose; 5] = [
        Self::Train,
        Self::Staging,
        Self::Production,
        Self::Monitor,
        Self::Batch,
    ];

    /// The purposes `m`'s rendered workflows assume a role for: the monitor's only when
    /// `monitoring.schedule` renders its workflow (which, like the release loop, needs a
    /// registry every job can reach: [`registry_shared`]); the batch's only when `batch` renders
    /// its workflow (likewise).
    pub fn rendered(m: &Manifest) -> Vec<RolePurpose> {
        Self::ALL
            .into_iter()
            .filter(|p| match p {
                Self::Monitor => {
                    registry_shared(m)
                        && m.monitoring
                            .as_ref()
                            .is_some_and(|mo| mo.schedule.is_some())
                }
                Self::Batch => registry_shared(m) && m.batch.is_some(),
                _ => true,
            })
            .collect()
    }

    /// The GitHub environment the role's jobs run in.
    pub fn environment(self) -> Option<&'static str> {
        match self {
            Self::Train | Self::Monitor | Self::Batch => None,
            Self::Staging => Some("staging"),
            Self::Production => Some("production"),
        }
    }

    /// The GitHub variable the rendered workflows read the role's ARN from (a repository
    /// variable, or the environment's), for a repository of one model: see [`role_variable`].
    pub fn variable(self) -> &'static str {
        match self {
            Self::Train => "MLOPS_TRAIN_ROLE_ARN",
            Self::Staging | Self::Production => "MLOPS_AWS_ROLE_ARN",
            Self::Monitor => "MLOPS_MONITOR_ROLE_ARN",
            Self::Batch => "MLOPS_BATCH_ROLE_ARN",
        }
    }
}

/// The GitHub variable `m`'s rendered workflows read the role for `purpose` from:
/// [`RolePurpose::variable`], with `_PROJECT` (upper case, `-` as `_`) in a monorepo, whose
/// models share the repository's variables and its environments.
pub fn role_variable(m: &Manifest, purpose: RolePurpose) -> String {
    let base = purpose.variable();
    if !m.project.monorepo {
        return base.to_owned();
    }
    let suffix = m.project.name.to_ascii_uppercase().replace('-', "_");
    format!("{base}_{suffix}")
}

/// The file name under `.github/workflows/` of the rendered workflow called `file` in a
/// repository of one model (`mlops-train.yml`, [`TRAIN_WORKFLOW`]): in a monorepo it carries
/// the project's name, `mlops-train-PROJECT.yml`.
pub fn workflow_file(m: &Manifest, file: &str) -> String {
    match file.strip_suffix(".yml") {
        Some(stem) if m.project.monorepo => format!("{stem}-{}.yml", m.project.name),
        _ => file.to_owned(),
    }
}

/// The rendered release workflow's file under `.github/workflows/` in a repository of one model.
pub const RELEASE_WORKFLOW: &str = "mlops-release.yml";

/// The registry is in S3, where every job (and every service serving its models) reaches it; a
/// directory only the runner of one job has.
pub fn registry_shared(m: &Manifest) -> bool {
    m.registry.path.starts_with("s3://")
}

/// The rendered train workflow's `workflow_dispatch` input (a boolean) that makes the run a
/// retraining on `monitoring.retrain_data` (`mlops train --retraining`); the monitor's dispatch
/// sets it. Declared only when the manifest names that data.
pub const RETRAINING_INPUT: &str = "retraining";

/// The rendered monitor workflow's file under `.github/workflows/`.
pub const MONITOR_WORKFLOW: &str = "mlops-monitor.yml";

/// The rendered batch workflow's file under `.github/workflows/`.
pub const BATCH_WORKFLOW: &str = "mlops-batch.yml";

/// The rendered train workflow's file under `.github/workflows/` (the monitor workflow
/// dispatches it to retrain).
pub const TRAIN_WORKFLOW: &str = "mlops-train.yml";

/// The OIDC subject claim of the rendered jobs that assume the role for `purpose`, which that
/// role's trust names exactly. Training and the monitor run on the default branch; the release workflow (staging)
/// runs from the default branch too (called by the train workflow, dispatched on it); production's
/// job runs on the push to the promotion's base branch. With `workflows.oidc_subject: workflow`
/// the claim also names the workflow file and that branch (`job_workflow_ref`).
///
/// With `promotion.repository` elsewhere, production's job is the gate workflow rendered for
/// that repository ([`gate_workflow`]): its subject names that repository.
pub fn oidc_subject(m: &Manifest, purpose: RolePurpose) -> String {
    let default = &m.workflows.default_branch;
    let base = m.promotion.as_ref().map_or(default, |p| &p.base_branch);
    let gate = gate_workflow(m);
    let (repo, context, workflow, branch) = match purpose {
        RolePurpose::Train => (
            &m.project.repository,
            format!("ref:refs/heads/{default}"),
            workflow_file(m, TRAIN_WORKFLOW),
            default,
        ),
        RolePurpose::Staging => (
            &m.project.repository,
            "environment:staging".to_owned(),
            workflow_file(m, RELEASE_WORKFLOW),
            default,
        ),
        RolePurpose::Production => (
            &gate.repository,
            "environment:production".to_owned(),
            gate.file.clone(),
            base,
        ),
        // Scheduled workflows run on the default branch.
        RolePurpose::Monitor => (
            &m.project.repository,
            format!("ref:refs/heads/{default}"),
            workflow_file(m, MONITOR_WORKFLOW),
            default,
        ),
        RolePurpose::Batch => (
            &m.project.repository,
            format!("ref:refs/heads/{default}"),
            workflow_file(m, BATCH_WORKFLOW),
            default,
        ),
    };
    match m.workflows.oidc_subject {
        model::OidcSubject::Environment => format!("repo:{repo}:{context}"),
        model::OidcSubject::Workflow => format!(
            "repo:{repo}:{context}:job_workflow_ref:{repo}/.github/workflows/{workflow}@refs/heads/{branch}"
        ),
    }
}

/// The repository holding the production pin file and receiving promotion pull requests:
/// `promotion.repository`, else the model's own.
pub fn promotion_repository(m: &Manifest) -> &str {
    m.promotion
        .as_ref()
        .and_then(|p| p.repository.as_deref())
        .unwrap_or(&m.project.repository)
}

/// Where production's gate runs: the workflow that sees the promotion's reviews and the pushes
/// its merges make, so it lives in the promotion repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateWorkflow {
    /// `OWNER/REPO` it runs in.
    pub repository: String,
    /// Its file name under `.github/workflows/`.
    pub file: String,
    /// The manifest it reads, from that repository's root: the model's own, or (promotion
    /// elsewhere) the copy `mlops render --promotion-out` writes beside it.
    pub manifest: Option<String>,
}

impl GateWorkflow {
    /// Its path from the repository root.
    pub fn path(&self) -> String {
        format!(".github/workflows/{}", self.file)
    }
}

/// The gate workflow for `m`. In the model's repository it is `mlops-gate.yml`
/// (`mlops-gate-PROJECT.yml` in a monorepo); in a promotion repository several projects may
/// share, `mlops-gate-PROJECT.yml` reading the manifest copy `mlops/PROJECT/mlops.yaml`
/// (`manifest` is `None` for the model's repository, whose manifest path only the caller knows).
pub fn gate_workflow(m: &Manifest) -> GateWorkflow {
    let repository = promotion_repository(m).to_owned();
    if repository == m.project.repository {
        return GateWorkflow {
            repository,
            file: workflow_file(m, "mlops-gate.yml"),
            manifest: None,
        };
    }
    let project = &m.project.name;
    GateWorkflow {
        repository,
        file: format!("mlops-gate-{project}.yml"),
        manifest: Some(format!("mlops/{project}/mlops.yaml")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra_project: &str, workflows: &str) -> Manifest {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/digits-github/mlops.yaml"
        ))
        .expect("the example")
        .replace(
            "  repository: mlops-rs/digits-example\n",
            &format!("  repository: mlops-rs/digits-example\n{extra_project}"),
        ) + workflows;
        let report = check_bytes("mlops.yaml", text.as_bytes());
        assert!(report.is_valid(), "{:?}", report.diagnostics);
        report.manifest.expect("typed")
    }

    /// A monorepo model's workflow files, gate, role variables and OIDC subjects carry its
    /// name; a repository of one model keeps the short names.
    #[test]
    fn monorepo_names_carry_the_project() {
        let one = manifest("", "workflows:\n  oidc_subject: workflow\n");
        let mono = manifest(
            "  monorepo: true\n",
            "workflows:\n  oidc_subject: workflow\n",
        );
        assert_eq!(workflow_file(&one, TRAIN_WORKFLOW), "mlops-train.yml");
        assert_eq!(
            workflow_file(&mono, TRAIN_WORKFLOW),
            "mlops-train-digits.yml"
        );
        assert_eq!(gate_workflow(&one).file, "mlops-gate.yml");
        assert_eq!(gate_workflow(&mono).file, "mlops-gate-digits.yml");
        assert_eq!(gate_workflow(&mono).manifest, None);
        assert_eq!(
            role_variable(&one, RolePurpose::Staging),
            "MLOPS_AWS_ROLE_ARN"
        );
        assert_eq!(
            role_variable(&mono, RolePurpose::Train),
            "MLOPS_TRAIN_ROLE_ARN_DIGITS"
        );
        assert!(
            oidc_subject(&mono, RolePurpose::Staging)
                .ends_with("/.github/workflows/mlops-release-digits.yml@refs/heads/main"),
            "{}",
            oidc_subject(&mono, RolePurpose::Staging)
        );
        assert!(oidc_subject(&mono, RolePurpose::Production).contains("mlops-gate-digits.yml"));
        assert!(oidc_subject(&one, RolePurpose::Monitor).contains("/mlops-monitor.yml@"));
        let dashed = manifest("  monorepo: true\n", "")
            .project
            .name
            .replace("digits", "fraud-eu");
        let mut m = mono.clone();
        m.project.name = dashed;
        assert_eq!(
            role_variable(&m, RolePurpose::Batch),
            "MLOPS_BATCH_ROLE_ARN_FRAUD_EU"
        );
    }
}
