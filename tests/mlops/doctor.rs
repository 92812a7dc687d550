//! `mlops doctor` against the fake GitHub (every request and answer checked against GitHub's
//! OpenAPI description) and moto's IAM: the settings the README prescribes pass, with the roles
//! the rendered Terraform creates; each setting the threat model relies on, taken away alone,
//! is named with its fix and exits 1; a token that cannot read the settings says so.

use crate::bin;
use crate::moto;
use crate::terraform;

use std::path::Path;

use bin::{mlops, root};
use github_fake::{FakeGitHub, Token};

const MODEL: &str = "acme/churn-model";
const DEPLOY: &str = "acme/ml-deploy";
const APP: &str = "app-token";
const ACTIONS: &str = "actions-token";
const ACCOUNT: &str = "123456789012";

fn arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// An example's manifest in `dir` (with the promotion in the model's repository when
/// `same_repo`), and the tree `mlops render` writes for it.
fn example(dir: &Path, name: &str, same_repo: bool) -> std::collections::BTreeMap<String, String> {
    let mut text = std::fs::read_to_string(root().join("examples").join(name).join("mlops.yaml"))
        .expect("example");
    if same_repo {
        let elsewhere = format!("  repository: {DEPLOY}\n");
        assert!(text.contains(&elsewhere), "{name} promotes elsewhere");
        text = text.replace(&elsewhere, "");
    }
    let path = dir.join("mlops.yaml");
    std::fs::write(&path, text).expect("manifest");
    let m = mlops_manifest::check_file(&path)
        .expect("readable")
        .manifest
        .expect("valid");
    mlops_render::render(&m, "mlops.yaml", &std::collections::BTreeMap::new()).expect("renders")
}

/// Creates an IAM role in moto with `trust` as its trust policy.
fn create_role(moto: &moto::Moto, name: &str, trust: &serde_json::Value) {
    let (status, xml) = moto.query(
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ],
    );
    assert_eq!(status, 200, "{xml}");
}

/// CODEOWNERS giving the leads the pin file and what decides who may approve it (the manifest,
/// the workflows, CODEOWNERS itself).
const OWNERS: &str =
    "/churn/ @acme/ml-leads\n/mlops.yaml @acme/ml-leads\n/.github/ @acme/ml-leads\n";

/// The settings the README prescribes for the SageMaker example, promoting in its own
/// repository: the base branch requires two reviews and a code owner's, CODEOWNERS gives the pin
/// file to the leads, Actions may open the promotion, `staging` and `production` deploy from
/// `main` only, each environment names its own role, the repository holds the region, the
/// training role and both tokens, and its OIDC subject template names the workflow (the example's
/// `workflows.oidc_subject: workflow`).
fn prescribed(roles: &std::collections::BTreeMap<String, terraform::Role>) -> FakeGitHub {
    let fake = FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, Token::App("mlops-admin".into()));
    fake.token(ACTIONS, Token::Actions);
    fake.repo(
        MODEL,
        "main",
        &[
            ("mlops.yaml", "# the manifest\n"),
            (".github/CODEOWNERS", OWNERS),
        ],
    );
    fake.protect(MODEL, "main", 2);
    fake.require_code_owners(MODEL, "main", true);
    fake.allow_actions_prs(MODEL, true);
    fake.oidc_subject_template(MODEL, Some(&["repo", "context", "job_workflow_ref"]));
    fake.team("acme", "ml-leads", &["lead-1", "lead-2"]);
    let role = |k: &str| arn(&roles[k].name);
    fake.environment(
        MODEL,
        "staging",
        Some(&["main"]),
        &[("MLOPS_AWS_ROLE_ARN", &role("staging"))],
    );
    fake.environment(
        MODEL,
        "production",
        Some(&["main"]),
        &[("MLOPS_AWS_ROLE_ARN", &role("production"))],
    );
    fake.variable(MODEL, "MLOPS_AWS_REGION", "eu-west-1");
    fake.variable(MODEL, "MLOPS_TRAIN_ROLE_ARN", &role("train"));
    // The SageMaker example monitors production: its workflow assumes a role of its own.
    fake.variable(MODEL, "MLOPS_MONITOR_ROLE_ARN", &role("monitor"));
    // ... and scores its customers weekly with a role of its own (`batch`).
    fake.variable(MODEL, "MLOPS_BATCH_ROLE_ARN", &role("batch"));
    fake.secret(MODEL, "MLOPS_PROMOTION_TOKEN");
    fake.secret(MODEL, "MLOPS_GATE_TOKEN");
    fake
}

/// `mlops doctor` on the manifest in `dir`: exit code and output.
fn doctor(
    fake: &FakeGitHub,
    moto: Option<&moto::Moto>,
    dir: &Path,
    token: &str,
    extra: &[&str],
) -> (i32, String) {
    let mut c = mlops();
    c.arg("doctor")
        .arg("--manifest")
        .arg(dir.join("mlops.yaml"))
        .args(extra)
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", token)
        .env("MLOPS_GITHUB_BACKOFF_MS", "20")
        .env_remove("GITHUB_ACTIONS");
    if let Some(moto) = moto {
        moto.env(&mut c);
    }
    let out = c.output().expect("doctor runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A change to the prescribed settings.
type Break<'a> = dyn Fn(&FakeGitHub) + 'a;

/// Settings made from scratch.
type Setting<'a> = dyn Fn() -> FakeGitHub + 'a;

#[test]
fn the_prescribed_settings_pass_and_each_gap_is_named_with_its_fix() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let files = example(dir.path(), "sagemaker", true);
    let roles = terraform::github_roles(&files, ACCOUNT);
    for role in roles.values() {
        create_role(&moto, &role.name, &role.trust);
    }
    let fake = prescribed(&roles);
    let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("0 warning(s), 0 missing"), "{said}");
    for ok in [
        "branch `main` of acme/churn-model: merging needs 2 approving review(s)",
        "pin file `churn/production.yaml`: owned by @acme/ml-leads",
        "who may approve, in acme/churn-model: `.github/workflows/mlops-gate.yml`, `mlops.yaml`, `.github/CODEOWNERS` have code owners",
        "environment `production` of acme/churn-model: only `main` may deploy to it",
        "only GitHub's `repo:acme/churn-model:environment:production:job_workflow_ref:acme/churn-model/.github/workflows/mlops-gate.yml@refs/heads/main` may assume it",
        "only GitHub's `repo:acme/churn-model:environment:staging:job_workflow_ref:acme/churn-model/.github/workflows/mlops-release.yml@refs/heads/main` may assume it",
        "only GitHub's `repo:acme/churn-model:ref:refs/heads/main:job_workflow_ref:acme/churn-model/.github/workflows/mlops-train.yml@refs/heads/main` may assume it",
        "OIDC subject template of acme/churn-model: the subject names the workflow",
    ] {
        assert!(said.contains(ok), "{ok}: {said}");
    }
    assert_eq!(fake.violations(), Vec::<String>::new());

    let production = roles["production"].trust.clone();
    let mut wide = production.clone();
    wide["Statement"][0]["Condition"] = serde_json::json!({
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/churn-model:*"},
    });
    create_role(&moto, "wide-open", &wide);
    let staging_arn = arn(&roles["staging"].name);
    // A change to the prescribed settings, what doctor must say about it, and the fix.
    let cases: Vec<(&str, &str, Box<Break<'_>>)> = vec![
        (
            "no rule requires a review",
            "requires pull requests with at least 2",
            Box::new(|f| f.protect(MODEL, "main", 0)),
        ),
        (
            "merging needs 1 approving review(s), the manifest's promotion asks for 2",
            "raise the rule's required approvals",
            Box::new(|f| f.protect(MODEL, "main", 1)),
        ),
        (
            "any branch may deploy to it",
            "with exactly `main`",
            Box::new(|f| {
                let arn = arn(&roles["production"].name);
                f.environment(MODEL, "production", None, &[("MLOPS_AWS_ROLE_ARN", &arn)]);
            }),
        ),
        (
            "deploys from `main`, `release/*`, not only `main`",
            "with exactly `main`",
            Box::new(|f| {
                let arn = arn(&roles["production"].name);
                f.environment(
                    MODEL,
                    "production",
                    Some(&["main", "release/*"]),
                    &[("MLOPS_AWS_ROLE_ARN", &arn)],
                );
            }),
        ),
        (
            "variable `MLOPS_AWS_ROLE_ARN` for environment `production`: not set",
            "Environments → production → Environment variables",
            Box::new(|f| f.environment(MODEL, "production", Some(&["main"]), &[])),
        ),
        (
            "GitHub Actions may not create pull requests",
            "Allow GitHub Actions to create and approve pull requests",
            Box::new(|f| f.allow_actions_prs(MODEL, false)),
        ),
        (
            "no CODEOWNERS entry covers `mlops.yaml`: a writer could change who may approve",
            "(e.g. `/mlops.yaml @OWNER`)",
            Box::new(|f| {
                f.push(
                    MODEL,
                    "main",
                    "octo",
                    &[(
                        ".github/CODEOWNERS",
                        "/churn/ @acme/ml-leads\n/.github/ @acme/ml-leads\n",
                    )],
                );
            }),
        ),
        (
            "the manifest's roles trust subjects that name the workflow, but the repository's template is GitHub's default",
            "include_claim_keys[]=job_workflow_ref",
            Box::new(|f| f.oidc_subject_template(MODEL, None)),
        ),
        (
            "its subject pattern `repo:acme/churn-model:*` lets more than `repo:acme/churn-model:environment:production:job_workflow_ref:acme/churn-model/.github/workflows/mlops-gate.yml@refs/heads/main` assume it",
            ":sub` = `repo:acme/churn-model:environment:production:job_workflow_ref:",
            Box::new(|f| {
                f.environment(
                    MODEL,
                    "production",
                    Some(&["main"]),
                    &[("MLOPS_AWS_ROLE_ARN", &arn("wide-open"))],
                )
            }),
        ),
        (
            "staging and production assume the same role",
            "its own MLOPS_AWS_ROLE_ARN",
            Box::new(|f| {
                f.environment(
                    MODEL,
                    "production",
                    Some(&["main"]),
                    &[("MLOPS_AWS_ROLE_ARN", &staging_arn)],
                )
            }),
        ),
        (
            "trust policy of arn:aws:iam::123456789012:role/churn-github-train: ",
            ":sub` = `repo:acme/churn-model:ref:refs/heads/main:job_workflow_ref:acme/churn-model/.github/workflows/mlops-monitor.yml@refs/heads/main`",
            Box::new(|f| f.variable(MODEL, "MLOPS_MONITOR_ROLE_ARN", &arn(&roles["train"].name))),
        ),
        (
            "cannot read it (",
            "iam:GetRole",
            Box::new(|f| {
                f.environment(
                    MODEL,
                    "production",
                    Some(&["main"]),
                    &[("MLOPS_AWS_ROLE_ARN", &arn("no-such-role"))],
                )
            }),
        ),
    ];
    for (says, fix, change) in cases {
        let fake = prescribed(&roles);
        change(&fake);
        let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
        assert_eq!(code, 1, "{says}: {said}");
        assert!(said.contains(says), "expected `{says}` in {said}");
        assert!(said.contains(fix), "expected the fix `{fix}` in {said}");
        assert_eq!(fake.violations(), Vec::<String>::new());
    }

    // A workflow's GITHUB_TOKEN cannot read these settings: doctor says so, exit 1.
    let fake = prescribed(&roles);
    let (code, said) = doctor(&fake, Some(&moto), dir.path(), ACTIONS, &["--no-aws"]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("cannot read") && said.contains("repository admin"),
        "{said}"
    );
    assert!(!said.contains("trust policy"), "--no-aws read IAM: {said}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The settings the README prescribes when the promotion is in another repository (the SageMaker
/// example as written): the model's repository trains and releases to staging, and holds the
/// token that opens promotions in acme/ml-deploy; that repository holds the gate and the manifest
/// copy `mlops render --promotion-out` wrote, the rules on its base branch, CODEOWNERS, the
/// `production` environment with production's role, and a subject template naming the workflow.
/// `omit` leaves settings out: `production` (the environment), `promotion-token`,
/// `rollback-token` (the promotion repository's), `copy-owners` (the manifest copy's CODEOWNERS
/// line).
fn prescribed_split(
    roles: &std::collections::BTreeMap<String, terraform::Role>,
    promotion_files: &[(&str, &str)],
    omit: &[&str],
) -> FakeGitHub {
    let fake = FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, Token::App("mlops-admin".into()));
    let role = |k: &str| arn(&roles[k].name);
    fake.repo(MODEL, "main", &[("mlops.yaml", "# the manifest\n")]);
    fake.oidc_subject_template(MODEL, Some(&["repo", "context", "job_workflow_ref"]));
    fake.environment(
        MODEL,
        "staging",
        Some(&["main"]),
        &[("MLOPS_AWS_ROLE_ARN", &role("staging"))],
    );
    fake.variable(MODEL, "MLOPS_AWS_REGION", "eu-west-1");
    fake.variable(MODEL, "MLOPS_TRAIN_ROLE_ARN", &role("train"));
    // The SageMaker example monitors production: its workflow assumes a role of its own.
    fake.variable(MODEL, "MLOPS_MONITOR_ROLE_ARN", &role("monitor"));
    // ... and scores its customers weekly with a role of its own (`batch`).
    fake.variable(MODEL, "MLOPS_BATCH_ROLE_ARN", &role("batch"));
    if !omit.contains(&"promotion-token") {
        fake.secret(MODEL, "MLOPS_PROMOTION_TOKEN");
    }
    let owners = if omit.contains(&"copy-owners") {
        "/churn/ @acme/ml-leads\n/.github/ @acme/ml-leads\n"
    } else {
        "/churn/ @acme/ml-leads\n/mlops/churn/ @acme/ml-leads\n/.github/ @acme/ml-leads\n"
    };
    let mut files = vec![(".github/CODEOWNERS", owners)];
    files.extend_from_slice(promotion_files);
    fake.repo(DEPLOY, "main", &files);
    fake.protect(DEPLOY, "main", 2);
    fake.require_code_owners(DEPLOY, "main", true);
    fake.oidc_subject_template(DEPLOY, Some(&["repo", "context", "job_workflow_ref"]));
    fake.team("acme", "ml-leads", &["lead-1", "lead-2"]);
    if !omit.contains(&"production") {
        fake.environment(
            DEPLOY,
            "production",
            Some(&["main"]),
            &[("MLOPS_AWS_ROLE_ARN", &role("production"))],
        );
    }
    fake.secret(DEPLOY, "MLOPS_GATE_TOKEN");
    // The gate's rollback job opens the rollback pull request with it (production watches).
    if !omit.contains(&"rollback-token") {
        fake.secret(DEPLOY, "MLOPS_PROMOTION_TOKEN");
    }
    fake
}

/// With the promotion elsewhere, doctor checks each setting in the repository whose workflow
/// relies on it: the gate, its environment, its role and its subject template in the promotion
/// repository, where the gate files must be as the manifest renders them; staging and the
/// promotion token in the model's. Each gap, taken away alone, is named with its fix.
#[test]
fn a_promotion_repository_elsewhere_is_checked_where_the_gate_runs() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let files = example(dir.path(), "sagemaker", false);
    assert!(!files.keys().any(|p| p.contains("mlops-gate")));
    let roles = terraform::github_roles(&files, ACCOUNT);
    for role in roles.values() {
        create_role(&moto, &format!("split-{}", role.name), &role.trust);
    }
    let roles: std::collections::BTreeMap<String, terraform::Role> = roles
        .into_iter()
        .map(|(k, mut r)| {
            r.name = format!("split-{}", r.name);
            (k, r)
        })
        .collect();
    let text = std::fs::read_to_string(dir.path().join("mlops.yaml")).expect("manifest");
    let m = mlops_manifest::check_bytes("mlops.yaml", text.as_bytes())
        .manifest
        .expect("valid");
    let promotion = mlops_render::render_promotion(&m, "mlops.yaml", &text, &Default::default())
        .expect("renders")
        .expect("the promotion is elsewhere");
    let gate = ".github/workflows/mlops-gate-churn.yml";
    let copy = "mlops/churn/mlops.yaml";
    assert_eq!(promotion.keys().collect::<Vec<_>>(), [gate, copy]);
    let as_rendered: Vec<(&str, &str)> = promotion
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();

    let fake = prescribed_split(&roles, &as_rendered, &[]);
    let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("0 warning(s), 0 missing"), "{said}");
    for ok in [
        "`.github/workflows/mlops-gate-churn.yml` of acme/ml-deploy: on `main` as the manifest renders it",
        "`mlops/churn/mlops.yaml` of acme/ml-deploy: on `main` as the manifest renders it",
        "branch `main` of acme/ml-deploy: merging needs 2 approving review(s)",
        "who may approve, in acme/ml-deploy: `.github/workflows/mlops-gate-churn.yml`, `mlops/churn/mlops.yaml`, `.github/CODEOWNERS` have code owners",
        "environment `production` of acme/ml-deploy: only `main` may deploy to it",
        "environment `staging` of acme/churn-model: only `main` may deploy to it",
        "variable `MLOPS_AWS_ROLE_ARN` for environment `production` of acme/ml-deploy: set",
        "secret `MLOPS_PROMOTION_TOKEN` for environment `staging` of acme/churn-model: set",
        "only GitHub's `repo:acme/ml-deploy:environment:production:job_workflow_ref:acme/ml-deploy/.github/workflows/mlops-gate-churn.yml@refs/heads/main` may assume it",
        "OIDC subject template of acme/ml-deploy: the subject names the workflow",
        "OIDC subject template of acme/churn-model: the subject names the workflow",
    ] {
        assert!(said.contains(ok), "{ok}: {said}");
    }
    // No job of the model's repository deploys production any more.
    assert!(!said.contains("`production` of acme/churn-model"), "{said}");
    assert_eq!(fake.violations(), Vec::<String>::new());

    let stale = promotion[copy].replace("required_approvals: 2", "required_approvals: 1");
    assert_ne!(stale, promotion[copy]);
    let without_gate = [(copy, promotion[copy].as_str())];
    let with_stale = [(gate, promotion[gate].as_str()), (copy, stale.as_str())];
    let cases: Vec<(&str, &str, Box<Setting<'_>>)> = vec![
        (
            "missing  `.github/workflows/mlops-gate-churn.yml` of acme/ml-deploy: not on `main`",
            "--promotion-out CLONE` (CLONE: a clone of acme/ml-deploy), then merge",
            Box::new(|| prescribed_split(&roles, &without_gate, &[])),
        ),
        (
            "missing  `mlops/churn/mlops.yaml` of acme/ml-deploy: differs on `main` from what the manifest renders",
            "--promotion-out CLONE",
            Box::new(|| prescribed_split(&roles, &with_stale, &[])),
        ),
        (
            "who may approve, in acme/ml-deploy: no CODEOWNERS entry covers `mlops/churn/mlops.yaml`",
            "`/mlops/churn/mlops.yaml @OWNER`",
            Box::new(|| prescribed_split(&roles, &as_rendered, &["copy-owners"])),
        ),
        (
            "environment `production` of acme/ml-deploy: does not exist",
            "New environment `production`",
            Box::new(|| prescribed_split(&roles, &as_rendered, &["production"])),
        ),
        (
            "OIDC subject template of acme/ml-deploy: the manifest's roles trust subjects that name the workflow, but the repository's template is GitHub's default",
            "repos/acme/ml-deploy/actions/oidc/customization/sub",
            Box::new(|| {
                let f = prescribed_split(&roles, &as_rendered, &[]);
                f.oidc_subject_template(DEPLOY, None);
                f
            }),
        ),
        (
            "secret `MLOPS_PROMOTION_TOKEN` for environment `staging` of acme/churn-model: not set",
            "install a GitHub App on the promotion repository",
            Box::new(|| prescribed_split(&roles, &as_rendered, &["promotion-token"])),
        ),
        // No token for the rollback job, whose GITHUB_TOKEN may not open pull requests there.
        (
            "missing  Actions permissions of acme/ml-deploy: GitHub Actions may not create pull requests: `mlops promote` cannot open the promotion, nor the gate's rollback job the rollback",
            "Allow GitHub Actions to create and approve pull requests",
            Box::new(|| prescribed_split(&roles, &as_rendered, &["rollback-token"])),
        ),
    ];
    // A GitHub App instead of the stored token: its client ID and key in the model's
    // repository, no `MLOPS_PROMOTION_TOKEN`; a client ID without the key is missing.
    let fake = prescribed_split(&roles, &as_rendered, &["promotion-token"]);
    fake.variable(MODEL, "MLOPS_APP_CLIENT_ID", "Iv23liExample");
    let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("missing  GitHub App of acme/churn-model: `MLOPS_APP_CLIENT_ID` is set but the secret `MLOPS_APP_PRIVATE_KEY` is not"),
        "{said}"
    );
    fake.secret(MODEL, "MLOPS_APP_PRIVATE_KEY");
    let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("ok       GitHub App of acme/churn-model: `MLOPS_APP_CLIENT_ID` and `MLOPS_APP_PRIVATE_KEY` set")
            && said.contains("secret `MLOPS_PROMOTION_TOKEN` for environment `staging` of acme/churn-model: not set (not needed: the GitHub App makes this token)"),
        "{said}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());

    for (says, fix, setup) in cases {
        let fake = setup();
        let (code, said) = doctor(&fake, Some(&moto), dir.path(), APP, &[]);
        assert_eq!(code, 1, "{says}: {said}");
        assert!(said.contains(says), "expected `{says}` in {said}");
        assert!(said.contains(fix), "expected the fix `{fix}` in {said}");
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
}

const DIGITS: &str = "mlops-rs/digits-example";

/// The fake GitHub with the digits examples' repository, its base branch needing one review, and
/// an admin's App token.
fn digits_repository() -> FakeGitHub {
    let fake = FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, Token::App("mlops-admin".into()));
    fake.repo(DIGITS, "main", &[("README.md", "# digits\n")]);
    fake.protect(DIGITS, "main", 1);
    fake
}

/// With a URL target the merge is the deployment: a pin file no code owner must approve is
/// missing, not a warning; promotion with the workflow's token needs Actions to open PRs, and
/// is a warning until an App token (`MLOPS_PROMOTION_TOKEN`) replaces it.
#[test]
fn a_url_target_needs_code_owners_and_actions_that_may_open_prs() {
    let dir = tempfile::tempdir().expect("tempdir");
    example(dir.path(), "digits-github", false);
    let repo = DIGITS;
    let fake = digits_repository();
    let role = [(
        "MLOPS_AWS_ROLE_ARN",
        "arn:aws:iam::123456789012:role/deploy",
    )];
    fake.environment(repo, "staging", None, &role);
    fake.environment(repo, "production", Some(&["main"]), &role);
    fake.variable(repo, "MLOPS_AWS_REGION", "eu-west-1");
    fake.variable(repo, "MLOPS_TRAIN_ROLE_ARN", &arn("train"));
    // The monitor workflow's role (digits-github monitors production).
    fake.variable(repo, "MLOPS_MONITOR_ROLE_ARN", &arn("monitor"));
    // ... and the batch workflow's (digits-github scores a batch nightly).
    fake.variable(repo, "MLOPS_BATCH_ROLE_ARN", &arn("batch"));
    fake.allow_actions_prs(repo, false);
    let (code, said) = doctor(&fake, None, dir.path(), APP, &["--no-aws"]);
    assert_eq!(code, 1, "{said}");
    for (says, fix) in [
        (
            "missing  pin file `deploy/production.yaml`: no CODEOWNERS entry covers it: with a URL target the merge is the deployment",
            "add `/deploy/production.yaml @OWNER`",
        ),
        (
            "GitHub Actions may not create pull requests",
            "Allow GitHub Actions to create and approve pull requests",
        ),
    ] {
        assert!(said.contains(says) && said.contains(fix), "{says}: {said}");
    }
    // Fixed, it passes.
    fake.push(
        repo,
        "main",
        "octo",
        &[(
            ".github/CODEOWNERS",
            "/deploy/production.yaml @ml-lead\n/mlops.yaml @ml-lead\n/.github/ @ml-lead\n",
        )],
    );
    fake.require_code_owners(repo, "main", true);
    fake.allow_actions_prs(repo, true);
    let (code, said) = doctor(&fake, None, dir.path(), APP, &["--no-aws"]);
    assert_eq!(code, 0, "{said}");
    // Staging open to any branch is a warning: its role records the holdout reports.
    assert!(
        said.contains("warning  environment `staging` of mlops-rs/digits-example: any branch may deploy to it: a workflow on any branch can assume the staging role, which records the holdout reports"),
        "{said}"
    );
    // Promotion with the workflow's own token works, and is named as the weaker choice.
    assert!(
        said.contains("warning  secret `MLOPS_PROMOTION_TOKEN`")
            && said.contains("every workflow of this repository holds"),
        "{said}"
    );
    fake.secret(repo, "MLOPS_PROMOTION_TOKEN");
    let (code, said) = doctor(&fake, None, dir.path(), APP, &["--no-aws"]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("ok       secret `MLOPS_PROMOTION_TOKEN`"),
        "{said}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A registry only one runner has renders no release loop: doctor names it as missing, with the
/// fix, whatever else is in place.
#[test]
fn a_directory_registry_is_a_missing_release_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    example(dir.path(), "quickstart", false);
    let fake = digits_repository();
    let (code, said) = doctor(&fake, None, dir.path(), APP, &["--no-aws"]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("missing  release loop: the train, release and gate workflows are not rendered: `registry.path` (.mlops/registry)")
            && said.contains("fix: set `registry.path` to an `s3://BUCKET/PREFIX`"),
        "{said}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}
