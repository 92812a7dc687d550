//! `mlops promote` and `mlops gate` as processes against the fake GitHub (`crates/github-fake`),
//! which checks every request and response against GitHub's OpenAPI description. Each test
//! starts its own fake; at the end of each, the fake must have seen no contract violation.

use crate::bin;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bin::{mlops, root, succeeds};
use github_fake::{FakeGitHub, Fault, Token};
use mlops_github::pin::Pin;
use serde_json::json;

const REPO: &str = "octo/digits";
const PIN: &str = "deploy/production.yaml";
const APP: &str = "app-token";
const ACTIONS: &str = "actions-token";

/// A test's world: the fake, a manifest and a registry with `digits-mlp@1` and `@2`.
struct World {
    fake: FakeGitHub,
    dir: tempfile::TempDir,
}

fn manifest_text(extra: &str) -> String {
    let base =
        std::fs::read_to_string(root().join("examples/quickstart/mlops.yaml")).expect("quickstart");
    let base = base.replace(
        "repository: mlops-rs/digits-example",
        &format!("repository: {REPO}"),
    );
    let start = base.find("promotion:").expect("promotion section");
    format!(
        "{}promotion:\n  pin_file: {PIN}\n  base_branch: main\n  reviewers: [ml-lead]\n  team_reviewers: [octo/ml-owners]\n  required_approvals: 1\n  labels: [mlops, promotion]\n{extra}",
        &base[..start]
    )
}

/// A registry version with the card fields `promote` reads (the model files are not needed).
fn register(registry: &Path, version: u64, accuracy: f64) {
    let dir = registry.join("digits-mlp").join(version.to_string());
    std::fs::create_dir_all(&dir).expect("version dir");
    let mut card = mlops_train::card::sample("digits-mlp", version);
    card.training.metrics.insert(
        "holdout".to_owned(),
        [
            ("accuracy".to_owned(), accuracy),
            ("f1_macro".to_owned(), accuracy - 0.001),
        ]
        .into(),
    );
    card.artifact = Some(mlops_train::predict::ArtifactDigest {
        sha256: format!("{version}").repeat(64)[..64].to_owned(),
        files: Default::default(),
    });
    let card = serde_json::to_value(&card).expect("card");
    std::fs::write(dir.join("card.json"), card.to_string()).expect("card");
    set_status(registry, version, "approved");
}

/// Sets a registry version's status (`pending`, `approved`, `rejected`).
fn set_status(registry: &Path, version: u64, status: &str) {
    let dir = registry.join("digits-mlp").join(version.to_string());
    std::fs::write(
        dir.join("status.json"),
        json!({"status": status, "reason": "", "changed_at": "2026-11-23T10:00:00Z"}).to_string(),
    )
    .expect("status");
}

/// A holdout report file for `reference`.
fn report(dir: &Path, reference: &str, passed: bool) -> PathBuf {
    let path = dir.join(format!("holdout-{reference}-{passed}.json"));
    let r = crate::quickstart::holdout_report(reference, "http://127.0.0.1:8080", passed);
    std::fs::write(&path, r).expect("report");
    path
}

impl World {
    fn new(extra_manifest: &str) -> World {
        let fake = FakeGitHub::start().expect("fake GitHub");
        fake.token(APP, Token::App("mlops-app".into()));
        fake.token(ACTIONS, Token::Actions);
        fake.repo(
            REPO,
            "main",
            &[
                ("README.md", "# digits\n"),
                (".github/CODEOWNERS", "/deploy/ @pin-owner\n"),
            ],
        );
        fake.protect(REPO, "main", 1);
        fake.team("octo", "ml-owners", &["team-reviewer"]);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mlops.yaml"), manifest_text(extra_manifest))
            .expect("manifest");
        register(&dir.path().join("registry"), 1, 0.97);
        register(&dir.path().join("registry"), 2, 0.98);
        World { fake, dir }
    }

    fn mlops(&self, token: &str, args: &[&str]) -> Command {
        let mut c = mlops();
        c.args(args)
            .arg("--manifest")
            .arg(self.dir.path().join("mlops.yaml"))
            .env("GITHUB_API_URL", self.fake.url())
            .env("GITHUB_TOKEN", token)
            .env("MLOPS_GITHUB_BACKOFF_MS", "50");
        c
    }

    fn promote(&self, token: &str, model: &str, passed: bool) -> Command {
        let r = report(self.dir.path(), model, passed);
        let registry = self.dir.path().join("registry");
        let (r, registry) = (r.to_string_lossy(), registry.to_string_lossy());
        self.mlops(
            token,
            &[
                "promote",
                "--model",
                model,
                "--holdout-report",
                &r,
                "--registry",
                &registry,
            ],
        )
    }

    fn gate(&self, pr: u64) -> Output {
        self.mlops(APP, &["gate", "--pr", &pr.to_string()])
            .output()
            .expect("gate runs")
    }

    fn head(&self) -> String {
        let repo = self.fake.snapshot(REPO).expect("repo");
        repo.refs["heads/mlops/promote/digits-mlp"].clone()
    }

    fn assert_contract(&self) {
        assert_eq!(
            self.fake.violations(),
            Vec::<String>::new(),
            "contract violations"
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit code, stdout, stderr.
fn run(mut c: Command) -> (i32, String, String) {
    let out = c.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn gate_says(w: &World, pr: u64) -> (i32, String) {
    let out = w.gate(pr);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

#[test]
fn promotion_opens_one_pr_signed_by_github_and_is_idempotent() {
    let w = World::new("");
    let first = succeeds(w.promote(APP, "digits-mlp@2", true));
    assert!(first.contains("opened pull request #1"), "{first}");
    // Two more runs, separate processes, no local state: still one PR, no new commit.
    let head = w.head();
    for _ in 0..2 {
        let again = succeeds(w.promote(APP, "digits-mlp@2", true));
        assert!(again.contains("unchanged: pull request #1"), "{again}");
    }
    assert_eq!(w.head(), head);
    let repo = w.fake.snapshot(REPO).expect("repo");
    assert_eq!(repo.pulls.len(), 1);
    let pr = &repo.pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        ("mlops/promote/digits-mlp", "main")
    );
    assert_eq!(pr.labels, ["mlops", "promotion"]);
    assert_eq!(pr.reviewers, ["ml-lead"]);
    assert_eq!(pr.team_reviewers, ["ml-owners"]);
    let body = pr.body.clone().unwrap_or_default();
    for evidence in [
        "<!-- mlops:promotion project=digits model=digits-mlp -->",
        "| accuracy | 0.9800 |",
        "```mermaid",
        "Report sha256:",
        "| holdout | `data/digits-holdout.csv` | 297 |",
    ] {
        assert!(body.contains(evidence), "missing {evidence:?} in\n{body}");
    }
    // The commit: made through the Git Data API with no author, committer or signature, so
    // GitHub signs it; it changes only the pin file.
    let commit = &repo.commits[&head];
    assert!(commit.verified, "{commit:?}");
    assert_eq!(commit.request_keys, ["message", "tree", "parents"]);
    assert!(commit.message.contains("Mlops-Promotion: digits-mlp@2"));
    let text = w
        .fake
        .file(REPO, "mlops/promote/digits-mlp", PIN)
        .expect("pin on the branch");
    let pin = Pin::parse(&text).expect("a pin file");
    assert_eq!(
        (pin.model.name.as_str(), pin.model.version),
        ("digits-mlp", 2)
    );
    assert_eq!(pin.model.artifact.sha256, "2".repeat(64));
    let digest = pin
        .holdout
        .as_ref()
        .map(|h| h.report_sha256.clone())
        .unwrap_or_default();
    assert_eq!(digest.len(), 64);
    // The holdout status on the head commit, with the report's digest.
    let statuses = &repo.statuses[&head];
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].context, "mlops/holdout");
    assert_eq!(statuses[0].state, "success");
    assert!(
        statuses[0]
            .description
            .as_deref()
            .unwrap_or_default()
            .contains(&digest)
    );
    // A newer version updates the same PR with a new commit.
    let next = succeeds(w.promote(APP, "digits-mlp@1", true));
    assert!(next.contains("updated pull request #1"), "{next}");
    assert_eq!(w.fake.snapshot(REPO).expect("repo").pulls.len(), 1);
    assert_ne!(w.head(), head);
    w.assert_contract();
}

#[test]
fn a_human_commit_on_the_branch_is_never_overwritten() {
    let w = World::new("");
    succeeds(w.promote(APP, "digits-mlp@2", true));
    let human = w.fake.push(
        REPO,
        "mlops/promote/digits-mlp",
        "alice",
        &[(PIN, "hand edit\n")],
    );
    let (code, _, err) = run(w.promote(APP, "digits-mlp@1", true));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has a commit that mlops did not make") && err.contains("alice"),
        "{err}"
    );
    assert_eq!(w.head(), human);
    assert_eq!(
        w.fake
            .file(REPO, "mlops/promote/digits-mlp", PIN)
            .as_deref(),
        Some("hand edit\n")
    );
    w.assert_contract();
}

#[test]
fn a_version_production_already_pins_is_a_no_op() {
    let w = World::new("");
    succeeds(w.promote(APP, "digits-mlp@2", true));
    w.fake.merge(REPO, 1);
    let before = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    let out = succeeds(w.promote(APP, "digits-mlp@2", true));
    assert!(
        out.contains("production already pins digits-mlp@2"),
        "{out}"
    );
    let after = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(before, after, "a no-op wrote to GitHub");
    w.assert_contract();
}

#[test]
fn dry_run_prints_the_pr_and_changes_nothing() {
    let w = World::new("");
    let mut c = w.promote(APP, "digits-mlp@2", true);
    c.arg("--dry-run");
    let out = succeeds(c);
    for part in [
        "title:  Promote digits-mlp@2 to production",
        "+++ b/deploy/production.yaml",
        "+  version: 2",
        "(dry run: nothing was changed)",
    ] {
        assert!(out.contains(part), "missing {part:?} in\n{out}");
    }
    assert!(w.fake.requests().iter().all(|r| r.method == "GET"));
    w.assert_contract();
}

#[test]
fn preflight_explains_the_github_token_limits() {
    let w = World::new("");
    // GITHUB_TOKEN, and the repository does not let Actions open PRs: the setting is named.
    let mut c = w.promote(ACTIONS, "digits-mlp@2", true);
    c.env("MLOPS_DEFAULT_TOKEN", "true");
    let (code, _, err) = run(c);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not trigger workflows"), "{err}");
    assert!(
        err.contains("Allow GitHub Actions to create and approve pull requests"),
        "{err}"
    );
    assert!(
        err.contains("cannot read the members of team octo/ml-owners"),
        "{err}"
    );
    // With the setting on, the PR opens, without the team review request.
    w.fake.allow_actions_prs(REPO, true);
    let mut c = w.promote(ACTIONS, "digits-mlp@2", true);
    c.env("MLOPS_DEFAULT_TOKEN", "true");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("opened pull request #1"), "{out}");
    let repo = w.fake.snapshot(REPO).expect("repo");
    assert!(repo.pulls[0].team_reviewers.is_empty());
    assert_eq!(repo.pulls[0].user.login, "github-actions[bot]");
    // The token never appears in any output.
    assert!(!err.contains(ACTIONS) && !out.contains(ACTIONS));
    w.assert_contract();
}

#[test]
fn a_manifest_that_demands_protection_stops_on_an_unprotected_branch() {
    let w = World::new("  require_branch_protection: true\n");
    w.fake.protect(REPO, "main", 0);
    let (code, _, err) = run(w.promote(APP, "digits-mlp@2", true));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has no protection that requires reviews"),
        "{err}"
    );
    assert!(
        w.fake.requests().iter().all(|r| r.method == "GET"),
        "wrote despite the preflight error"
    );
    w.assert_contract();
}

#[test]
fn a_failed_holdout_report_is_not_promoted() {
    let w = World::new("");
    let (code, _, err) = run(w.promote(APP, "digits-mlp@2", false));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("holdout report of digits-mlp@2 failed"),
        "{err}"
    );
    assert!(w.fake.requests().is_empty());
}

/// A version the registry has not approved (pending: no thresholds decided it; rejected) is
/// never proposed for production, and nothing is written to GitHub.
#[test]
fn only_an_approved_version_is_promoted() {
    let w = World::new("");
    let registry = w.dir.path().join("registry");
    set_status(&registry, 2, "pending");
    let (code, _, err) = run(w.promote(APP, "digits-mlp@2", true));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("digits-mlp@2 is pending in the registry")
            && err.contains("mlops registry approve digits-mlp@2"),
        "{err}"
    );
    set_status(&registry, 2, "rejected");
    let (code, _, err) = run(w.promote(APP, "digits-mlp@2", true));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is rejected in the registry"), "{err}");
    assert!(w.fake.requests().is_empty());
}

#[test]
fn transient_github_failures_are_retried() {
    let w = World::new("");
    let fault =
        |method: &str, path: &str, status: u16, headers: Vec<(String, String)>, message: &str| {
            Fault {
                method: method.into(),
                path: path.into(),
                status,
                headers,
                message: message.into(),
            }
        };
    // A server error on a POST is not retried (GitHub may have done the work): the command
    // fails, saying so, and running it again finishes the promotion with one pull request.
    w.fake
        .fail_next(fault("POST", "/git/blobs", 502, vec![], "Bad Gateway"));
    let (code, _, err) = run(w.promote(APP, "digits-mlp@2", true));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("answered 502 to POST") && err.contains("run the command again"),
        "{err}"
    );
    let blobs = |w: &World| {
        w.fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/git/blobs"))
            .count()
    };
    assert_eq!(blobs(&w), 1, "a POST that failed with 502 was sent again");
    // On a GET, the same error is retried.
    w.fake
        .fail_next(fault("GET", "/git/commits/", 502, vec![], "Bad Gateway"));
    w.fake.fail_next(fault(
        "POST",
        "/pulls",
        429,
        vec![("retry-after".into(), "1".into())],
        "Too Many Requests",
    ));
    w.fake.fail_next(fault(
        "POST",
        "/statuses/",
        403,
        vec![("retry-after".into(), "1".into())],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    ));
    let started = std::time::Instant::now();
    let (code, out, err) = run(w.promote(APP, "digits-mlp@2", true));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("opened pull request #1"), "{out}");
    assert!(
        err.contains("HTTP 502") && err.contains("secondary rate limit"),
        "{err}"
    );
    assert!(!err.contains(APP) && !out.contains(APP), "the token leaked");
    // Retry-After was honoured (two waits of a second each).
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let statuses: Vec<u16> = w.fake.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&502) && statuses.contains(&429) && statuses.contains(&403));
    assert_eq!(w.fake.snapshot(REPO).expect("repo").pulls.len(), 1);
    // A Retry-After longer than allowed fails clearly instead of hanging.
    w.fake.fail_next(fault(
        "GET",
        "/pulls/1",
        429,
        vec![("retry-after".into(), "3600".into())],
        "slow down",
    ));
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("asks to wait 3600 s"), "{text}");
    w.assert_contract();
}

/// A promoted PR with a passing holdout status; returns its head.
fn promoted(w: &World) -> String {
    succeeds(w.promote(APP, "digits-mlp@2", true));
    w.head()
}

#[test]
fn the_gate_passes_valid_approvals() {
    // A listed reviewer, a team member, a CODEOWNER of the pin file.
    for who in ["ml-lead", "team-reviewer", "pin-owner"] {
        let w = World::new("");
        promoted(&w);
        w.fake.review(REPO, 1, who, "APPROVED", None);
        let (code, text) = gate_says(&w, 1);
        assert_eq!(code, 0, "{who}: {text}");
        assert!(text.contains("[approved]"), "{text}");
        w.assert_contract();
    }
}

/// A listed reviewer, a team member or a CODEOWNER who holds less than write access to the
/// repository (read only, or no longer a collaborator) approves in vain, as on GitHub; given
/// write access, the same approval counts.
#[test]
fn an_approval_without_write_access_does_not_count() {
    for (who, level) in [
        ("ml-lead", "read"),
        ("team-reviewer", "none"),
        ("pin-owner", "read"),
    ] {
        let w = World::new("");
        promoted(&w);
        w.fake.permission(REPO, who, level);
        w.fake.review(REPO, 1, who, "APPROVED", None);
        let (code, text) = gate_says(&w, 1);
        assert_eq!(code, 1, "{who}: {text}");
        assert!(
            text.contains("[approvals]")
                && text.contains(&format!("{who}: has no write access to the repository")),
            "{who}: {text}"
        );
        w.fake.permission(REPO, who, "write");
        let (code, text) = gate_says(&w, 1);
        assert_eq!(code, 0, "{who}: {text}");
        w.assert_contract();
    }
}

/// A team that owns the pin file in CODEOWNERS: with an App token that reads organisation
/// membership (`MLOPS_GATE_TOKEN`), its member's approval counts; with a workflow's
/// `GITHUB_TOKEN`, which cannot read teams, it does not, and the refusal names the team and the
/// token to give the gate.
#[test]
fn a_team_codeowner_counts_with_a_token_that_reads_teams() {
    let w = World::new("");
    w.fake.push(
        REPO,
        "main",
        "octo",
        &[(".github/CODEOWNERS", "/deploy/ @octo/pin-team\n")],
    );
    w.fake.team("octo", "pin-team", &["pin-team-member"]);
    promoted(&w);
    w.fake.review(REPO, 1, "pin-team-member", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[approved]"), "{text}");
    let (code, out, err) = run(w.mlops(ACTIONS, &["gate", "--pr", "1"]));
    let text = out + &err;
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("[approvals]")
            && text.contains("octo/pin-team")
            && text.contains("MLOPS_GATE_TOKEN"),
        "{text}"
    );
    w.assert_contract();
}

#[test]
fn the_gate_counts_a_re_approval_after_a_new_push_only() {
    let w = World::new("");
    let old = promoted(&w);
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    // A new version moves the head: the approval was for the old one.
    succeeds(w.promote(APP, "digits-mlp@1", true));
    assert_ne!(w.head(), old);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[approvals]") && text.contains("not the current head"),
        "{text}"
    );
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    w.assert_contract();
}

/// `mlops gate --commit SHA`, as production's deploy job runs it on the push a merge makes.
fn gate_on_commit(w: &World, token: &str, sha: &str) -> (i32, String) {
    let out = w
        .mlops(token, &["gate", "--commit", sha])
        .output()
        .expect("gate runs");
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

/// Production deploys on the push to the base branch: the merge commit of an approved
/// promotion passes, even with the workflow's own token when a listed reviewer approved; a pin
/// pushed to the base branch without a pull request and the merge of a promotion nobody
/// approved do not (a merge whose pin differs from the approved head's is refused too:
/// `gate::decide_merge`'s unit test).
/// Team members a `GITHUB_TOKEN` cannot read are named with the fix, exit 3; an App token reads
/// them and a team member's approval counts.
#[test]
fn production_deploys_only_the_merge_of_an_approved_promotion() {
    let w = World::new("");
    promoted(&w);
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    let merge = w.fake.merge(REPO, 1);
    assert_eq!(merge.len(), 40);
    let (code, said) = gate_on_commit(&w, ACTIONS, &merge);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("(the merge of PR #1) deploy"), "{said}");

    // A writer pushes a pin straight to the base branch.
    let pushed = w.fake.push(REPO, "main", "alice", &[(PIN, "hand edit\n")]);
    let (code, said) = gate_on_commit(&w, APP, &pushed);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("[promotion-pr]") && said.contains("not the merge commit"),
        "{said}"
    );
    w.assert_contract();

    // The merge of a promotion nobody approved.
    let w = World::new("");
    promoted(&w);
    let merge = w.fake.merge(REPO, 1);
    let (code, said) = gate_on_commit(&w, APP, &merge);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("[approvals]"), "{said}");
    // With GITHUB_TOKEN the team could not be read: a setting to fix, said as such.
    let (code, said) = gate_on_commit(&w, ACTIONS, &merge);
    assert_eq!(code, 3, "{said}");
    assert!(
        said.contains("octo/ml-owners") && said.contains("MLOPS_GATE_TOKEN"),
        "{said}"
    );
    w.assert_contract();

    // A team member's approval: counted with the App token that reads the team.
    let w = World::new("");
    promoted(&w);
    w.fake.review(REPO, 1, "team-reviewer", "APPROVED", None);
    let merge = w.fake.merge(REPO, 1);
    let (code, said) = gate_on_commit(&w, APP, &merge);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("member of octo/ml-owners"), "{said}");
    w.assert_contract();
}

/// Something done to a promoted PR (given its head) to get past the gate.
type Attack<'a> = dyn Fn(&World, &str) + 'a;

#[test]
fn the_gate_cannot_be_got_around() {
    let cases: Vec<(&str, &str, Box<Attack>)> = vec![
        (
            "self-approval",
            "[approvals]",
            Box::new(|w, _| w.fake.review(REPO, 1, "mlops-app[bot]", "APPROVED", None)),
        ),
        (
            "a bot's approval",
            "[approvals]",
            Box::new(|w, _| w.fake.review(REPO, 1, "renovate[bot]", "APPROVED", None)),
        ),
        (
            "an approval of an older head",
            "[approvals]",
            Box::new(|w, _| {
                let repo = w.fake.snapshot(REPO).expect("repo");
                let base = repo.refs["heads/main"].clone();
                w.fake.review(REPO, 1, "ml-lead", "APPROVED", Some(&base));
            }),
        ),
        (
            "a reviewer who is not allowed",
            "[approvals]",
            Box::new(|w, _| w.fake.review(REPO, 1, "mallory", "APPROVED", None)),
        ),
        (
            "approve, then request changes",
            "[changes-requested]",
            Box::new(|w, _| {
                w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
                w.fake.review(REPO, 1, "team-reviewer", "APPROVED", None);
                w.fake.review(REPO, 1, "ml-lead", "CHANGES_REQUESTED", None);
            }),
        ),
        (
            "a failed holdout check",
            "[holdout-status]",
            Box::new(|w, head| {
                w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
                w.fake.status(
                    REPO,
                    head,
                    "mlops-app[bot]",
                    "failure",
                    "mlops/holdout",
                    "holdout failed",
                );
            }),
        ),
        (
            "a holdout status posted by someone else",
            "[holdout-status]",
            Box::new(|w, head| {
                w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
                w.fake.status(
                    REPO,
                    head,
                    "mallory",
                    "success",
                    "mlops/holdout",
                    "holdout passed",
                );
            }),
        ),
    ];
    for (name, rule, attack) in cases {
        let w = World::new("");
        let head = promoted(&w);
        attack(&w, &head);
        let (code, text) = gate_says(&w, 1);
        assert_eq!(code, 1, "{name}: {text}");
        assert!(text.contains(rule), "{name}: expected {rule} in {text}");
        w.assert_contract();
    }
}

/// What a writer can put on the promotion branch: a commit typing the trailer (pushed, or made
/// through the API so that GitHub signs it as theirs), and a merge that changes the pin. Each
/// is refused by `promotion-pr` with the fix, even when a listed reviewer approved the head.
#[test]
fn a_writers_commit_on_the_promotion_branch_is_not_promotes() {
    let branch = "mlops/promote/digits-mlp";
    let trailer = "Pin v1\n\nMlops-Promotion: digits-mlp@1\n";
    let forged = pin_text(1, &"d".repeat(64));
    let cases: Vec<(&str, Box<Attack<'_>>)> = vec![
        (
            "made by alice",
            Box::new(|w, _| {
                w.fake
                    .commit_as(REPO, branch, "alice", &[(PIN, &forged)], trailer, true);
            }),
        ),
        (
            "not signed by GitHub",
            Box::new(|w, _| {
                // A local commit claiming the app's identity: GitHub cannot verify it.
                w.fake.commit_as(
                    REPO,
                    branch,
                    "mlops-app[bot]",
                    &[(PIN, &forged)],
                    trailer,
                    false,
                );
            }),
        ),
        (
            "is a merge that changes",
            Box::new(|w, _| {
                w.fake
                    .push(REPO, "main", "octo", &[("README.md", "moved on\n")]);
                w.fake
                    .update_branch(REPO, 1, "alice", Some((PIN, forged.as_str())));
            }),
        ),
    ];
    for (says, attack) in cases {
        let w = World::new("");
        let head = promoted(&w);
        attack(&w, &head);
        w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
        let (code, text) = gate_says(&w, 1);
        assert_eq!(code, 1, "{says}: {text}");
        assert!(
            text.contains("[promotion-pr]") && text.contains(says),
            "{says}: {text}"
        );
        assert!(text.contains("delete the branch"), "{text}");
        w.assert_contract();
    }
}

/// GitHub's "Update branch" (required when the base must be up to date) keeps a promotion
/// alive: a reviewer approves the updated head and the gate passes; the person who clicked it
/// does not count as an approver, nor does the person who started the run, and `mlops promote`
/// still updates the branch afterwards.
#[test]
fn an_update_branch_merge_keeps_the_promotion_and_its_clicker_does_not_approve() {
    let w = World::new("");
    let mut c = w.promote(APP, "digits-mlp@2", true);
    c.env("MLOPS_STARTED_BY", "pin-owner");
    succeeds(c);
    let repo = w.fake.snapshot(REPO).expect("repo");
    let promote = &repo.commits[&w.head()];
    assert!(
        promote.message.contains("Mlops-Started-By: pin-owner"),
        "{}",
        promote.message
    );
    w.fake.push(
        REPO,
        "main",
        "octo",
        &[("README.md", "the base moved on\n")],
    );
    let updated = w.fake.update_branch(REPO, 1, "ml-lead", None);
    assert_eq!(w.head(), updated);
    // The clicker and the run's starter approve: neither counts.
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    w.fake.review(REPO, 1, "pin-owner", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("ml-lead: pushed to this pull request")
            && text.contains("pin-owner: started the run"),
        "{text}"
    );
    // A listed reviewer approves the updated head: the holdout status of promote's commit
    // under the update still counts, as the update left the pin alone.
    w.fake.review(REPO, 1, "team-reviewer", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    // Promote again on an up-to-date branch rewrites nothing.
    succeeds(w.promote(APP, "digits-mlp@2", true));
    assert_eq!(w.head(), updated, "promote rewrote an up-to-date branch");
    // A new version after the update: promote builds on the updated branch.
    succeeds(w.promote(APP, "digits-mlp@1", true));
    assert_ne!(w.head(), updated);
    w.assert_contract();
}

#[test]
fn the_gate_refuses_prs_it_did_not_make_or_aimed_elsewhere() {
    // A PR not made by the tool: a human's branch and PR, approved.
    let w = World::new("");
    w.fake
        .push(REPO, "feature", "alice", &[(PIN, "version: 1\n")]);
    w.fake.token(
        "alice-token",
        Token::Classic {
            login: "alice".into(),
            scopes: vec!["repo".into()],
        },
    );
    let pr = pull_by(&w, "alice-token", "feature", "main", "please deploy");
    w.fake.review(REPO, pr, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, pr);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[promotion-pr]") && text.contains("lacks the mlops marker"),
        "{text}"
    );
    // The marker copied into a human's PR from another branch.
    let body = "<!-- mlops:promotion project=digits model=digits-mlp -->";
    w.fake
        .push(REPO, "sneaky", "alice", &[(PIN, "version: 1\n")]);
    let pr = pull_by(&w, "alice-token", "sneaky", "main", body);
    w.fake.review(REPO, pr, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, pr);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[promotion-pr]") && text.contains("not from `mlops/promote/digits-mlp`"),
        "{text}"
    );
    // A promotion PR to another base.
    let w = World::new("");
    w.fake.push(REPO, "release", "octo", &[]);
    w.fake.push(REPO, "mlops/promote/digits-mlp", "octo", &[]);
    let body = "<!-- mlops:promotion project=digits model=digits-mlp -->";
    let pr = pull_by(&w, APP, "mlops/promote/digits-mlp", "release", body);
    w.fake.review(REPO, pr, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, pr);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("targets `release`; promotions target `main`"),
        "{text}"
    );
    w.assert_contract();
}

/// A fork's pull request from a branch named like the promotion branch, with the marker, the
/// trailer and a pin of its own, approved by a listed reviewer, is refused by `promotion-pr`
/// (its head is in another repository); the real promotion beside it is untouched.
#[test]
fn a_forks_pull_request_named_like_the_promotion_is_refused() {
    let w = World::new("");
    promoted(&w);
    let body = "<!-- mlops:promotion project=digits model=digits-mlp -->";
    let pr = w.fake.fork_pull(
        REPO,
        "mallory",
        "mlops/promote/digits-mlp",
        "main",
        "mallory",
        &[(PIN, &pin_text(1, "d"))],
        "Promote digits-mlp@1 to production\n\nMlops-Promotion: digits-mlp@1",
        body,
    );
    assert_eq!(pr, 2, "the fork's pull request");
    w.fake.review(REPO, pr, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, pr);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[promotion-pr]")
            && text.contains("comes from the repository `mallory/digits`"),
        "{text}"
    );
    // The promotion itself is still the one the tool opened, and the gate takes it.
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    w.assert_contract();
}

/// Opens a PR through the fake's API with `token` (as a person or another tool would).
fn pull_by(w: &World, token: &str, head: &str, base: &str, body: &str) -> u64 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(json!({"title": "deploy", "head": head, "base": base, "body": body}).to_string())
        .arg(format!("{}/repos/{REPO}/pulls", w.fake.url()))
        .output()
        .expect("curl runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["number"].as_u64().unwrap_or_else(|| panic!("no PR: {v}"))
}

#[test]
fn the_gate_reads_every_page_of_reviews() {
    let w = World::new("");
    promoted(&w);
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    for i in 0..120 {
        w.fake
            .review(REPO, 1, &format!("commenter-{i}"), "COMMENTED", None);
    }
    // On the second page of 100: a change request.
    w.fake
        .review(REPO, 1, "team-reviewer", "CHANGES_REQUESTED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[changes-requested]") && text.contains("team-reviewer"),
        "{text}"
    );
    let pages = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pulls/1/reviews"))
        .count();
    assert_eq!(pages, 2);
    w.assert_contract();
}

/// Team members and statuses are read page by page too: an approver who is the 140th member of
/// a 150-member team counts, and the holdout status is found under 120 newer statuses of other
/// contexts (GitHub lists statuses newest first, so it is on the second page).
#[test]
fn the_gate_reads_every_page_of_team_members_and_statuses() {
    let w = World::new("");
    let members: Vec<String> = (0..150).map(|i| format!("member-{i}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    w.fake.team("octo", "ml-owners", &refs);
    let head = promoted(&w);
    for i in 0..120 {
        w.fake.status(
            REPO,
            &head,
            "ci-bot",
            "success",
            &format!("ci/check-{i}"),
            "fine",
        );
    }
    w.fake.review(REPO, 1, "member-140", "APPROVED", None);
    let before = w.fake.requests().len();
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[approved]"), "{text}");
    let count = |suffix: &str| {
        w.fake
            .requests()
            .iter()
            .skip(before)
            .filter(|r| r.method == "GET" && r.path.ends_with(suffix))
            .count()
    };
    assert_eq!(count("/teams/ml-owners/members"), 2);
    assert_eq!(count(&format!("/commits/{head}/statuses")), 2);
    w.assert_contract();
}

/// A production pin for `version` of the test registry, with a holdout report digest.
fn pin_text(version: u64, report: &str) -> String {
    Pin {
        version: 1,
        model: mlops_github::pin::PinnedModel {
            name: "digits-mlp".into(),
            version,
            registry: "registry".into(),
            artifact: mlops_github::pin::Artifact {
                uri: format!("registry/digits-mlp/{version}"),
                sha256: format!("{version}").repeat(64),
            },
            image: None,
        },
        manifest_sha256: "e".repeat(64),
        holdout: Some(mlops_github::pin::PinnedHoldout {
            passed: true,
            report_sha256: report.repeat(64),
            compared_with: None,
        }),
    }
    .to_yaml("production")
}

/// `mlops deploy --env production --rollback`: the pin before the current one (from the pin
/// file's git history) comes back through a promotion pull request, with the holdout digest it
/// was promoted with on the new head, and the gate applies as to any promotion.
#[test]
fn a_production_rollback_is_a_pull_request_the_gate_decides() {
    let w = World::new("");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .current_dir(w.dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(w.dir.path().join("deploy")).expect("mkdir");
    for (version, report) in [(1, "c"), (2, "d")] {
        std::fs::write(w.dir.path().join(PIN), pin_text(version, report)).expect("pin");
        git(&["add", "-A"]);
        git(&["commit", "-qm", &format!("promote {version}")]);
    }
    // GitHub's base branch pins version 2 as well.
    w.fake
        .push(REPO, "main", "ml-lead", &[(PIN, &pin_text(2, "d"))]);
    let registry = w.dir.path().join("registry");
    let registry = registry.to_string_lossy();
    let (code, out, err) = run(w.mlops(
        APP,
        &[
            "deploy",
            "--env",
            "production",
            "--rollback",
            "--reason",
            "p99 doubled",
            "--registry",
            &registry,
        ],
    ));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("rollback of production: digits-mlp@2 -> digits-mlp@1 (p99 doubled)"),
        "{err}"
    );
    let repo = w.fake.snapshot(REPO).expect("repo");
    assert_eq!(repo.pulls.len(), 1);
    let pr = &repo.pulls[0];
    assert_eq!(
        pr.title,
        "Roll back production to digits-mlp@1 (from digits-mlp@2)"
    );
    let body = pr.body.clone().unwrap_or_default();
    assert!(
        body.starts_with("### Rollback") && body.contains("p99 doubled"),
        "{body}"
    );
    assert!(body.contains("instead of digits-mlp@2"), "{body}");
    let pin = Pin::parse(
        &w.fake
            .file(REPO, "mlops/promote/digits-mlp", PIN)
            .expect("pin"),
    )
    .expect("a pin");
    assert_eq!(pin.reference(), "digits-mlp@1");
    assert_eq!(pin.holdout.expect("holdout").report_sha256, "c".repeat(64));
    let head = w.head();
    assert!(
        repo.statuses[&head][0]
            .description
            .as_deref()
            .is_some_and(|d| d.contains(&"c".repeat(64)))
    );
    // Not approved yet; then approved by a listed reviewer.
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 1, "{text}");
    w.fake.review(REPO, 1, "ml-lead", "APPROVED", None);
    let (code, text) = gate_says(&w, 1);
    assert_eq!(code, 0, "{text}");
    w.assert_contract();
}

#[test]
fn the_fake_rejects_requests_that_break_the_api_description() {
    let fake = FakeGitHub::start().expect("fake");
    fake.token(APP, Token::App("x".into()));
    fake.repo(REPO, "main", &[("a", "b")]);
    // `head` is required and `title` must be a string.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {APP}"),
            "-d",
            r#"{"title": 3, "base": "main"}"#,
        ])
        .arg(format!("{}/repos/{REPO}/pulls", fake.url()))
        .output()
        .expect("curl runs");
    assert_eq!(text(&out.stdout), "422");
    let v = fake.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].contains("POST /repos/{owner}/{repo}/pulls request body"),
        "{v:?}"
    );
    assert!(fake.snapshot(REPO).expect("repo").pulls.is_empty());
}
