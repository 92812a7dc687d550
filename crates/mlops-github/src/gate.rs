//! `mlops gate`: may production deploy this promotion pull request?
//!
//! The facts are read from GitHub ([`gather`]) and judged by a pure function ([`decide`]) that
//! applies the rules in order and stops at the first that fails:
//!
//! 1. `promotion-pr`: the PR carries this manifest's promotion marker, comes from the model's
//!    promotion branch in the gated repository itself (not a fork's branch of the same name),
//!    targets the configured base branch, changes the pin file and nothing else, and every
//!    commit on it was made by `mlops promote` (its trailer, on a commit GitHub signed and
//!    attributes to the PR's author), or is a GitHub-signed "Update branch" merge that leaves the
//!    pin as promote wrote it.
//! 2. `changes-requested`: no reviewer's latest review requests changes.
//! 3. `approvals`: at least `required_approvals` reviewers' latest reviews are APPROVED, given on
//!    the PR's current head commit, by an allowed reviewer (a listed user, a member of a listed
//!    team, or a CODEOWNER of the pin file), who is not the PR's author, not a bot, not a person
//!    who started the run that promoted (promote's `Mlops-Started-By:` trailer), and did not
//!    push to the PR (an "Update branch" merge).
//! 4. `holdout-status`: the pin records a passed holdout whose report digest is a SHA-256 (64
//!    lowercase hex digits: an empty or malformed digest matches nothing), and the head commit's
//!    latest `mlops/holdout` status exists, is `success`, was created by the identity that
//!    opened the PR, and names exactly that digest (`sha256:DIGEST`).
//! 5. `no-regression`: when the manifest sets `promotion.no_regression` and the base branch's
//!    pin names a version (production serves one), the pin records that its holdout report
//!    compared the candidate with exactly that version (name, version and artifact digest) and
//!    that the candidate stood the comparison; a recorded comparison that failed refuses the
//!    promotion whatever the manifest says.

use crate::Field;
use mlops_artifacts::short;
use std::collections::{BTreeMap, BTreeSet};

use crate::client::{ApiError, GitHub};
use crate::codeowners::{self, Owner};
use crate::pin::Pin;
use crate::{Repo, STATUS_CONTEXT, TRAILER, branch_for, marker};

/// What the gate is configured with (from the manifest).
#[derive(Debug, Clone)]
pub struct Policy {
    pub repo: Repo,
    pub project: String,
    pub base_branch: String,
    pub pin_file: String,
    pub required_approvals: u32,
    pub reviewers: Vec<String>,
    /// `org/team` (a bare `team` is completed with the repository's owner).
    pub teams: Vec<String>,
    /// The manifest sets `promotion.no_regression`: a promotion must have been compared with
    /// what production pins.
    pub no_regression: bool,
    /// Production's watch rolls back at once (`watch.rollback: immediate`): a push that merged
    /// no pull request may deploy when it is such a rollback ([`crate::revert::decide`]).
    pub immediate_rollback: bool,
}

/// A review, as the gate needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub login: String,
    pub bot: bool,
    pub state: String,
    pub commit_id: String,
}

/// A commit status, as the gate needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitStatus {
    pub state: String,
    pub description: String,
    pub creator: String,
}

/// Everything the rules look at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub number: u64,
    pub author: String,
    pub body: String,
    pub head_ref: String,
    /// `owner/name` of the repository the head branch is in (a fork's, or empty when that
    /// repository is gone).
    pub head_repo: String,
    pub head_sha: String,
    /// The commit whose statuses count: the head, or promote's last commit when only "Update
    /// branch" merges follow it.
    pub evidence_sha: String,
    pub base_ref: String,
    pub files: Vec<String>,
    /// Commits on the PR that `mlops promote` did not make (and that are not an "Update branch"
    /// merge keeping its pin): (SHA, author, why).
    pub foreign_commits: Vec<(String, String, String)>,
    /// Who started the runs that promoted (from promote's commits): their approvals do not count.
    pub started_by: Vec<String>,
    /// Who added a commit to the PR's head besides `mlops promote` (an "Update branch" merge):
    /// their approvals do not count, as GitHub's "most recent push" rule has it.
    pub pushers: Vec<String>,
    /// In the order GitHub lists them (oldest first).
    pub reviews: Vec<Review>,
    /// Every allowed approver: listed users, team members, CODEOWNERS of the pin file.
    pub allowed: BTreeMap<String, String>,
    /// Teams whose members this token could not read (a workflow's `GITHUB_TOKEN` cannot read
    /// organisation membership): their members are not in `allowed`.
    pub unreadable_teams: Vec<String>,
    /// Allowed approvers who approved but have less than write access to the repository now
    /// (GitHub's legacy `permission`: `read` or `none`, or not a collaborator at all): GitHub does
    /// not count their approval, and neither does the gate.
    pub without_write: Vec<String>,
    /// The head commit's `mlops/holdout` statuses, newest first.
    pub statuses: Vec<CommitStatus>,
    /// The pin file at the head commit (or why it could not be read).
    pub pin: Result<Pin, String>,
    /// The pin file on the base branch, what production serves before the merge (`None`: there
    /// is none yet), or why it could not be read.
    pub base_pin: Result<Option<Pin>, String>,
    /// Production's pin before the base branch's (the pin file at the first parent of the last
    /// commit that changed it), read only when rule 5 needs it: a rollback to exactly it is not
    /// a regression to test against what serves now.
    pub base_previous_pin: Result<Option<Pin>, String>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided: the first that failed, or `approved`.
    pub rule: &'static str,
    pub reason: String,
    /// The approvals that counted, with why each reviewer is allowed.
    pub approvals: Vec<(String, String)>,
    /// Reviews that did not count, and why.
    pub ignored: Vec<(String, String)>,
}

impl Decision {
    /// `deploy` or `blocked`.
    pub fn verdict(&self) -> &'static str {
        if self.allowed { "deploy" } else { "blocked" }
    }

    /// What `mlops gate` prints about `subject` (`pull request #7`, `commit abc…`): the verdict
    /// with the rule that decided, then each review counted or not, and why.
    pub fn describe(&self, subject: &str) -> String {
        let mut out = format!(
            "gate: {subject} {}: [{}] {}\n",
            self.verdict(),
            self.rule,
            self.reason
        );
        for (login, why) in &self.approvals {
            out += &format!("  counted: {login} ({why})\n");
        }
        for (login, why) in &self.ignored {
            out += &format!("  not counted: {login}: {why}\n");
        }
        out
    }

    /// The step summary: the verdict, the rule and a table of the reviews.
    pub fn summary_markdown(&self, subject: &str) -> String {
        let verdict = if self.allowed {
            "may deploy"
        } else {
            "is not approved"
        };
        let (rule, reason) = (self.rule, &self.reason);
        let mut md =
            format!("### mlops gate: {subject} {verdict}\n\n**Rule:** `{rule}`\n\n{reason}\n");
        if !self.approvals.is_empty() || !self.ignored.is_empty() {
            md += "\n| reviewer | counted | why |\n|---|---|---|\n";
            let counted = self.approvals.iter().map(|(l, w)| (l, "yes", w));
            let ignored = self.ignored.iter().map(|(l, w)| (l, "no", w));
            for (login, yes, why) in counted.chain(ignored) {
                md += &format!("| {login} | {yes} | {why} |\n");
            }
        }
        md
    }
}

fn deny(
    rule: &'static str,
    reason: String,
    approvals: Vec<(String, String)>,
    ignored: Vec<(String, String)>,
) -> Decision {
    Decision {
        allowed: false,
        rule,
        reason,
        approvals,
        ignored,
    }
}

/// A push to the base branch that changed the pin file, as production's deploy job sees it:
/// the commit, the merged pull request it is the merge commit of (if any), and the pin file's
/// text at the commit and at that pull request's head.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub commit: String,
    pub number: Option<u64>,
    pub pin_at_commit: Option<String>,
    pub pin_at_head: Option<String>,
}

/// May production deploy the pin of `merge.commit`? Only when the commit is the merge of a
/// pull request whose facts (read as of its head) pass every rule of [`decide`], and the pin
/// the commit holds is exactly the one approved at that head: a pin pushed to the base branch
/// without a pull request, or changed by another merge on the way, is refused.
pub fn decide_merge(policy: &Policy, merge: &Merge, facts: Option<&Facts>) -> Decision {
    let (Some(number), Some(f)) = (merge.number, facts) else {
        return deny(
            "promotion-pr",
            format!(
                "commit {} on `{}` is not the merge commit of a pull request: production's pin changes only by merging a promotion pull request (or `mlops deploy --break-glass`)",
                short(&merge.commit),
                policy.base_branch
            ),
            vec![],
            vec![],
        );
    };
    if merge.pin_at_commit.is_none() || merge.pin_at_commit != merge.pin_at_head {
        return deny(
            "promotion-pr",
            format!(
                "the pin file `{}` at {} is not the one PR #{number} had at its head {}",
                policy.pin_file,
                short(&merge.commit),
                short(&f.head_sha)
            ),
            vec![],
            vec![],
        );
    }
    decide(policy, f)
}

/// Applies the rules.
pub fn decide(policy: &Policy, f: &Facts) -> Decision {
    let pin_model = f.pin.as_ref().ok().map(|p| p.model.name.clone());
    // 1. A promotion PR of this tool, for this manifest.
    let Some(model) = crate::marked_model(&f.body, &policy.project) else {
        return deny(
            "promotion-pr",
            format!(
                "PR #{} is not a promotion pull request of project `{}` (its body lacks the mlops marker)",
                f.number, policy.project
            ),
            vec![],
            vec![],
        );
    };
    if f.head_ref != branch_for(&model) {
        return deny(
            "promotion-pr",
            format!(
                "PR #{} comes from `{}`, not from `{}`",
                f.number,
                f.head_ref,
                branch_for(&model)
            ),
            vec![],
            vec![],
        );
    }
    if f.head_repo != policy.repo.full() {
        return deny(
            "promotion-pr",
            format!(
                "PR #{} comes from the repository `{}`, not from {}",
                f.number,
                f.head_repo,
                policy.repo.full()
            ),
            vec![],
            vec![],
        );
    }
    if f.base_ref != policy.base_branch {
        return deny(
            "promotion-pr",
            format!(
                "PR #{} targets `{}`; promotions target `{}`",
                f.number, f.base_ref, policy.base_branch
            ),
            vec![],
            vec![],
        );
    }
    if f.files != [policy.pin_file.clone()] {
        return deny(
            "promotion-pr",
            format!(
                "PR #{} must change exactly the pin file `{}`; it changes: {}",
                f.number,
                policy.pin_file,
                listed(&f.files)
            ),
            vec![],
            vec![],
        );
    }
    if let Some((sha, author, why)) = f.foreign_commits.first() {
        return deny(
            "promotion-pr",
            format!(
                "commit {} by {author} on PR #{} was not made by mlops promote: it {why}; delete the branch `{}` (which closes the PR) and run `mlops promote` again",
                short(sha),
                f.number,
                f.head_ref
            ),
            vec![],
            vec![],
        );
    }
    let pin = match &f.pin {
        Ok(p) if pin_model.as_deref() == Some(model.as_str()) => p,
        Ok(p) => {
            return deny(
                "promotion-pr",
                format!(
                    "the pin names model `{}`, the PR promotes `{model}`",
                    p.model.name
                ),
                vec![],
                vec![],
            );
        }
        Err(e) => {
            return deny(
                "promotion-pr",
                format!("the pin file `{}` at the head commit: {e}", policy.pin_file),
                vec![],
                vec![],
            );
        }
    };

    // Each reviewer's latest review that decides something (a comment changes nothing).
    let mut latest: BTreeMap<&str, &Review> = BTreeMap::new();
    for r in &f.reviews {
        if matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            latest.insert(r.login.as_str(), r);
        }
    }
    // 2. Nobody's latest review requests changes.
    if let Some(r) = latest.values().find(|r| r.state == "CHANGES_REQUESTED") {
        return deny(
            "changes-requested",
            format!(
                "{} requested changes; their latest review still does",
                r.login
            ),
            vec![],
            vec![],
        );
    }
    // 3. Enough valid approvals.
    let mut approvals = Vec::new();
    let mut ignored = Vec::new();
    for (login, r) in &latest {
        if r.state != "APPROVED" {
            continue;
        }
        let why_not = if *login == f.author {
            Some("the PR's author".to_owned())
        } else if r.bot || login.ends_with("[bot]") {
            Some("a bot".to_owned())
        } else if f.started_by.iter().any(|s| s == login) {
            Some("started the run that promoted this model".to_owned())
        } else if f.pushers.iter().any(|s| s == login) {
            Some("pushed to this pull request (an update of its branch)".to_owned())
        } else if r.commit_id != f.head_sha {
            Some(format!(
                "approved {}, not the current head {}",
                short(&r.commit_id),
                short(&f.head_sha)
            ))
        } else if !f.allowed.contains_key(*login) {
            Some("not an allowed reviewer (not listed, not in a listed team, not a CODEOWNER of the pin file)".to_owned())
        } else if f.without_write.iter().any(|w| w == login) {
            Some(
                "has no write access to the repository (GitHub does not count such an approval)"
                    .to_owned(),
            )
        } else {
            None
        };
        match why_not {
            Some(w) => ignored.push(((*login).to_owned(), w)),
            None => {
                let why = f.allowed.get(*login).cloned().unwrap_or_default();
                approvals.push(((*login).to_owned(), why));
            }
        }
    }
    if (approvals.len() as u32) < policy.required_approvals {
        if !f.unreadable_teams.is_empty() {
            return deny(
                "approvals",
                format!(
                    "{} of {} required approvals counted, and the members of {} could not be read with this token (it needs organisation members: read, which a workflow's GITHUB_TOKEN lacks): give the gate a GitHub App installation token (the secret MLOPS_GATE_TOKEN in the rendered workflow)",
                    approvals.len(),
                    policy.required_approvals,
                    f.unreadable_teams.join(", ")
                ),
                approvals,
                ignored,
            );
        }
        let mut reason = format!(
            "{} of {} required approvals on the head commit {}",
            approvals.len(),
            policy.required_approvals,
            short(&f.head_sha)
        );
        if !ignored.is_empty() {
            let list: Vec<String> = ignored.iter().map(|(l, w)| format!("{l}: {w}")).collect();
            reason.push_str(&format!("; not counted: {}", list.join("; ")));
        }
        return deny("approvals", reason, approvals, ignored);
    }
    // 4. The holdout status on the head commit.
    let Some(holdout) = pin.holdout.as_ref() else {
        return deny(
            "holdout-status",
            "the pin records no holdout report".to_owned(),
            approvals,
            ignored,
        );
    };
    if !holdout.passed {
        return deny(
            "holdout-status",
            "the pin records a holdout test that did not pass".to_owned(),
            approvals,
            ignored,
        );
    }
    let digest = &holdout.report_sha256;
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return deny(
            "holdout-status",
            format!(
                "the pin's holdout report digest `{}` is not a SHA-256 (64 lowercase hex digits)",
                digest.escape_debug()
            ),
            approvals,
            ignored,
        );
    }
    let Some(status) = f.statuses.first() else {
        return deny(
            "holdout-status",
            format!(
                "commit {} has no `{STATUS_CONTEXT}` status: run the release workflow (`mlops promote --holdout-report`) again",
                short(&f.evidence_sha)
            ),
            approvals,
            ignored,
        );
    };
    if status.creator != f.author {
        return deny(
            "holdout-status",
            format!(
                "the latest `{STATUS_CONTEXT}` status was posted by {}, not by {} (who opened the promotion)",
                status.creator, f.author
            ),
            approvals,
            ignored,
        );
    }
    if status.state != "success" {
        return deny(
            "holdout-status",
            format!(
                "the holdout status is `{}`: {}",
                status.state, status.description
            ),
            approvals,
            ignored,
        );
    }
    let named = status
        .description
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .any(|word| word.strip_prefix("sha256:") == Some(digest.as_str()));
    if !named {
        return deny(
            "holdout-status",
            format!(
                "the holdout status names another report than the pin's ({})",
                short(digest)
            ),
            approvals,
            ignored,
        );
    }
    // 5. No regression against what production serves.
    let compared = match no_regression(policy, f, holdout) {
        Ok(compared) => compared,
        Err(reason) => return deny("no-regression", reason, approvals, ignored),
    };
    let who: Vec<String> = approvals
        .iter()
        .map(|(l, w)| format!("{l} ({w})"))
        .collect();
    Decision {
        allowed: true,
        rule: "approved",
        reason: format!(
            "{} approval(s) on {} by {}; holdout passed{}",
            approvals.len(),
            short(&f.head_sha),
            who.join(", "),
            compared.map_or_else(String::new, |c| format!("; no regression against {c}"))
        ),
        approvals,
        ignored,
    }
}

/// `org/team`, completing a bare team name with the repository's owner.
pub fn qualified_team(team: &str, repo: &Repo) -> String {
    if team.contains('/') {
        team.to_owned()
    } else {
        format!("{}/{team}", repo.owner)
    }
}

/// Members of `org/team`, all pages.
pub async fn team_members(gh: &GitHub, team: &str) -> Result<Vec<String>, ApiError> {
    let (org, slug) = team.split_once('/').unwrap_or(("", team));
    let members = gh
        .list(&format!("/orgs/{org}/teams/{slug}/members"), 100)
        .await?;
    Ok(members
        .iter()
        .filter_map(|m| m.at("login").as_str().map(str::to_owned))
        .collect())
}

/// Rule 5: the incumbent the candidate was compared with (when it was), or why the promotion
/// is refused.
fn no_regression(
    policy: &Policy,
    f: &Facts,
    holdout: &crate::pin::PinnedHoldout,
) -> Result<Option<String>, String> {
    let compared = holdout.compared_with.as_ref();
    if let Some(c) = compared.filter(|c| !c.passed) {
        return Err(format!(
            "the holdout report records a regression against {} (promotion.no_regression): \
             see the report's comparison",
            c.model
        ));
    }
    if !policy.no_regression {
        return Ok(compared.map(|c| c.model.clone()));
    }
    let current = match &f.base_pin {
        Err(e) => {
            return Err(format!(
                "the pin file `{}` on `{}` cannot be read, so what production serves is \
                 unknown: {e}",
                policy.pin_file, f.base_ref
            ));
        }
        // Production serves nothing yet: nothing to regress against.
        Ok(None) => return Ok(None),
        Ok(Some(p)) => p,
    };
    let serving = current.reference();
    // A rollback (`mlops deploy --rollback`): the pin production served before this one, which
    // passed its own gate then; it is not scored against the version it replaces.
    if let (Ok(Some(before)), Ok(head)) = (&f.base_previous_pin, &f.pin)
        && head.same_model(before)
        && !head.same_model(current)
    {
        return Ok(Some(format!(
            "{serving} (a rollback to {}, which production served before it)",
            head.reference()
        )));
    }
    match compared {
        None => Err(format!(
            "production pins {serving}, and the holdout report did not compare the candidate \
             with it: run `mlops holdout --compare production`, then promote again"
        )),
        Some(c) if c.model != serving || c.artifact_sha256 != current.model.artifact.sha256 => {
            Err(format!(
                "the holdout report compared the candidate with {} (artifact {}), but \
                 production pins {serving} (artifact {}): test it again with `mlops holdout \
                 --compare production`, then promote again",
                c.model,
                short(&c.artifact_sha256),
                short(&current.model.artifact.sha256)
            ))
        }
        Some(c) => Ok(Some(c.model.clone())),
    }
}

/// The last commit that changed the pin file as of `at`, and its first parent (`None`: no
/// commit did, or it has no parent).
pub(crate) async fn last_pin_change(
    gh: &GitHub,
    policy: &Policy,
    at: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let full = policy.repo.full();
    let last = gh
        .get(&format!(
            "/repos/{full}/commits?sha={at}&path={}&per_page=1",
            policy.pin_file
        ))
        .await?
        .body;
    let commit = last.nth(0);
    Ok(commit
        .at("sha")
        .as_str()
        .zip(commit.at("parents").nth(0).at("sha").as_str())
        .map(|(sha, parent)| (sha.to_owned(), parent.to_owned())))
}

/// The pin file as it was before the last commit that changed it at `at` (`None`: that commit
/// created it), or why it cannot be read.
async fn previous_pin(
    gh: &GitHub,
    policy: &Policy,
    at: &str,
) -> Result<Result<Option<Pin>, String>, ApiError> {
    let Some((_, parent)) = last_pin_change(gh, policy, at).await? else {
        return Ok(Ok(None));
    };
    Ok(file_at(gh, &policy.repo, &policy.pin_file, &parent)
        .await?
        .map(|text| Pin::parse(&text))
        .transpose())
}

/// What a commit changes, for a message: the files, or "nothing".
pub(crate) fn listed(files: &[String]) -> String {
    if files.is_empty() {
        "nothing".to_owned()
    } else {
        files.join(", ")
    }
}

/// Reads a file's text at a ref, or `None` when it does not exist.
pub async fn file_at(
    gh: &GitHub,
    repo: &Repo,
    path: &str,
    at: &str,
) -> Result<Option<String>, ApiError> {
    let found = gh
        .get_optional(&format!("/repos/{}/contents/{path}?ref={at}", repo.full()))
        .await?;
    Ok(found.and_then(|v| {
        let b64: String = v
            .at("content")
            .as_str()?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    }))
}

/// A commit on a promotion branch, as GitHub's compare lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchCommit {
    pub sha: String,
    /// The GitHub login GitHub attributes the commit to (else the author's name).
    pub author: String,
    /// GitHub verified its signature: a commit made through the API without a given author,
    /// committer or signature is signed by GitHub; a pushed commit is verified only when signed
    /// by a key of the account its author email belongs to.
    pub verified: bool,
    pub parents: usize,
    /// The first parent's SHA (the branch side of a merge).
    pub first_parent: String,
    pub message: String,
}

impl BranchCommit {
    fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// What a commit on a promotion branch is.
#[derive(Debug, Clone, PartialEq)]
pub enum Made {
    /// `mlops promote`'s commit, with the people it records as having started the run.
    Promote { started_by: Vec<String> },
    /// A merge of the base into the branch, as GitHub's "Update branch" makes (signed by GitHub,
    /// by the person who clicked it). It counts only when it leaves the pin file as `mlops
    /// promote` wrote it, and its author's approval does not count.
    Update,
    /// Anything else, and why it is not ours.
    Foreign(String),
}

/// Classifies a commit of a promotion branch. With `promoter` (the login that opened the
/// promotion pull request), a commit is promote's only when it carries the trailer, is signed
/// by GitHub and is attributed to that login: a writer can type the trailer, not GitHub's
/// signature on a commit attributed to another account. Without it (`mlops promote` checking
/// its own branch before rebuilding it), the trailer is enough: that check protects people's
/// work from being overwritten, it is not the gate.
pub fn classify(c: &BranchCommit, promoter: Option<&str>) -> Made {
    let trailer = crate::has_trailer(&c.message, TRAILER);
    let promote = || Made::Promote {
        started_by: crate::trailer_values(&c.message, crate::STARTED_BY),
    };
    match promoter {
        None if trailer => promote(),
        None if c.parents == 2 => Made::Update,
        None => Made::Foreign(format!("(\"{}\") has no `{TRAILER}` trailer", c.subject())),
        Some(p) if trailer && c.verified && c.author == p => promote(),
        Some(p) if trailer && c.author != p => Made::Foreign(format!(
            "carries the `{TRAILER}` trailer but was made by {}, not by {p}, who opened the promotion",
            c.author
        )),
        Some(_) if trailer => Made::Foreign(format!(
            "carries the `{TRAILER}` trailer but is not signed by GitHub (a commit `mlops promote` makes through the API is)"
        )),
        Some(_) if c.parents == 2 && c.verified => Made::Update,
        Some(_) => Made::Foreign(format!(
            "(\"{}\") has no `{TRAILER}` trailer and is not a merge GitHub signed",
            c.subject()
        )),
    }
}

/// The commits between `base` and `head`, oldest first.
pub async fn branch_commits(
    gh: &GitHub,
    repo: &Repo,
    base: &str,
    head: &str,
) -> Result<Vec<BranchCommit>, ApiError> {
    let cmp = gh
        .get(&format!("/repos/{}/compare/{base}...{head}", repo.full()))
        .await?
        .body;
    Ok(cmp
        .at("commits")
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| BranchCommit {
            sha: c.at("sha").as_str().unwrap_or_default().to_owned(),
            author: c
                .at("author")
                .at("login")
                .as_str()
                .or_else(|| c.at("commit").at("author").at("name").as_str())
                .unwrap_or("someone")
                .to_owned(),
            verified: c.at("commit").at("verification").at("verified").as_bool() == Some(true),
            parents: c.at("parents").as_array().map_or(0, Vec::len),
            first_parent: c
                .at("parents")
                .nth(0)
                .at("sha")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            message: c
                .at("commit")
                .at("message")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect())
}

/// The commits of a promotion branch, judged: (SHA, author, why) for each that is neither
/// promote's nor an update merge that left the pin file as it was on the branch (its first
/// parent), then the logins that started the runs, then the authors of update merges.
async fn judge_commits(
    gh: &GitHub,
    policy: &Policy,
    commits: &[BranchCommit],
    promoter: &str,
) -> Result<(Vec<(String, String, String)>, Vec<String>, Vec<String>), ApiError> {
    let mut foreign = Vec::new();
    let mut started_by = Vec::new();
    let mut pushers = Vec::new();
    for c in commits {
        match classify(c, Some(promoter)) {
            Made::Promote { started_by: s } => started_by.extend(s),
            Made::Update => {
                let (repo, pin) = (&policy.repo, &policy.pin_file);
                let merged = file_at(gh, repo, pin, &c.sha).await?;
                if merged == file_at(gh, repo, pin, &c.first_parent).await? {
                    pushers.push(c.author.clone());
                } else {
                    foreign.push((
                        c.sha.clone(),
                        c.author.clone(),
                        format!(
                            "is a merge that changes `{}` (a promotion's pin is written by `mlops promote` only)",
                            policy.pin_file
                        ),
                    ));
                }
            }
            Made::Foreign(why) => foreign.push((c.sha.clone(), c.author.clone(), why)),
        }
    }
    started_by.sort();
    started_by.dedup();
    pushers.sort();
    pushers.dedup();
    Ok((foreign, started_by, pushers))
}

/// Reads the facts for PR `number`.
pub async fn gather(gh: &GitHub, policy: &Policy, number: u64) -> Result<Facts, ApiError> {
    gather_since(gh, policy, number, None).await
}

/// Reads what production's deploy job needs to know about `commit`, a push to the base branch:
/// the merged pull request it is the merge commit of (from GitHub's list of the commit's pull
/// requests), that pull request's facts with its commits counted from the base as it was
/// before the merge (the merge commit's first parent), and the pin file at both ends.
pub async fn gather_merge(
    gh: &GitHub,
    policy: &Policy,
    commit: &str,
) -> Result<(Merge, Option<Facts>), ApiError> {
    let full = policy.repo.full();
    let pulls = gh
        .list(&format!("/repos/{full}/commits/{commit}/pulls"), 30)
        .await?;
    let pin_at_commit = file_at(gh, &policy.repo, &policy.pin_file, commit).await?;
    let merged = pulls.iter().find(|p| {
        p.at("merge_commit_sha").as_str() == Some(commit) && !p.at("merged_at").is_null()
    });
    let Some(number) = merged.and_then(|p| p.at("number").as_u64()) else {
        let merge = Merge {
            commit: commit.to_owned(),
            number: None,
            pin_at_commit,
            pin_at_head: None,
        };
        return Ok((merge, None));
    };
    let parent = gh
        .get(&format!("/repos/{full}/git/commits/{commit}"))
        .await?
        .body
        .at("parents")
        .nth(0)
        .at("sha")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let facts = gather_since(gh, policy, number, Some(&parent)).await?;
    let pin_at_head = file_at(gh, &policy.repo, &policy.pin_file, &facts.head_sha).await?;
    let merge = Merge {
        commit: commit.to_owned(),
        number: Some(number),
        pin_at_commit,
        pin_at_head,
    };
    Ok((merge, Some(facts)))
}

/// The facts for PR `number`, its commits counted from `since` (default: its base branch now).
async fn gather_since(
    gh: &GitHub,
    policy: &Policy,
    number: u64,
    since: Option<&str>,
) -> Result<Facts, ApiError> {
    let full = policy.repo.full();
    let pr = gh.get(&format!("/repos/{full}/pulls/{number}")).await?.body;
    let head_sha = pr
        .at("head")
        .at("sha")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let base_ref = pr
        .at("base")
        .at("ref")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let files: Vec<String> = gh
        .list(&format!("/repos/{full}/pulls/{number}/files"), 30)
        .await?
        .iter()
        .filter_map(|f| f.at("filename").as_str().map(str::to_owned))
        .collect();
    let author = pr.at("user").text("login").to_owned();
    let commits = branch_commits(gh, &policy.repo, since.unwrap_or(&base_ref), &head_sha).await?;
    let (foreign, started_by, pushers) = judge_commits(gh, policy, &commits, &author).await?;
    let reviews: Vec<Review> = gh
        .list(&format!("/repos/{full}/pulls/{number}/reviews"), 100)
        .await?
        .iter()
        .map(|r| Review {
            login: r.at("user").text("login").to_owned(),
            bot: r.at("user").at("type").as_str() == Some("Bot"),
            state: r.at("state").as_str().unwrap_or_default().to_owned(),
            commit_id: r.at("commit_id").as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    // Allowed approvers: listed users, members of listed teams, CODEOWNERS of the pin file (read
    // from the base branch, so the PR cannot name its own owners).
    let mut allowed = BTreeMap::new();
    for u in &policy.reviewers {
        allowed.insert(u.clone(), "listed reviewer".to_owned());
    }
    let mut teams: BTreeSet<String> = policy
        .teams
        .iter()
        .map(|t| qualified_team(t, &policy.repo))
        .collect();
    for location in codeowners::LOCATIONS {
        if let Some(text) = file_at(gh, &policy.repo, location, &base_ref).await? {
            for owner in codeowners::owners(&text, &policy.pin_file) {
                match owner {
                    Owner::User(u) => {
                        allowed
                            .entry(u)
                            .or_insert_with(|| format!("CODEOWNER of {}", policy.pin_file));
                    }
                    Owner::Team(t) => {
                        teams.insert(t);
                    }
                }
            }
            break;
        }
    }
    // A token that may not read a team's members leaves them out: approvals from listed users
    // and CODEOWNERS still count, and the approvals rule says which teams were not read.
    let mut unreadable_teams = Vec::new();
    for team in &teams {
        match team_members(gh, team).await {
            Ok(members) => {
                for m in members {
                    allowed
                        .entry(m)
                        .or_insert_with(|| format!("member of {team}"));
                }
            }
            Err(e) if matches!(e.status, Some(403 | 404)) => unreadable_teams.push(team.clone()),
            Err(e) => return Err(e),
        }
    }
    // An allowed approver must also hold write access now: a listed login that left the team or
    // the organisation, or an outside reviewer, approves in vain on GitHub too.
    let mut approvers: BTreeSet<&str> = BTreeSet::new();
    for r in &reviews {
        if r.state == "APPROVED" && allowed.contains_key(&r.login) {
            approvers.insert(r.login.as_str());
        }
    }
    let mut without_write = Vec::new();
    for login in approvers {
        let level = match gh
            .get(&format!("/repos/{full}/collaborators/{login}/permission"))
            .await
        {
            Ok(r) => r
                .body
                .at("permission")
                .as_str()
                .unwrap_or("none")
                .to_owned(),
            // Not a collaborator (or a login that no longer exists).
            Err(e) if e.status == Some(404) => "none".to_owned(),
            Err(e) => return Err(e),
        };
        if !matches!(level.as_str(), "admin" | "write") {
            without_write.push(login.to_owned());
        }
    }
    // The holdout status is on promote's last commit: "Update branch" merges after it (which
    // leave the pin as it was, or the rules refuse them) carry none.
    let by_sha: BTreeMap<&str, &BranchCommit> =
        commits.iter().map(|c| (c.sha.as_str(), c)).collect();
    let mut evidence_sha = head_sha.clone();
    while let Some(c) = by_sha.get(evidence_sha.as_str())
        && classify(c, Some(&author)) == Made::Update
    {
        evidence_sha = c.first_parent.clone();
    }
    let statuses = gh
        .list(
            &format!("/repos/{full}/commits/{evidence_sha}/statuses"),
            100,
        )
        .await?
        .iter()
        .filter(|s| s.at("context").as_str() == Some(STATUS_CONTEXT))
        .map(|s| CommitStatus {
            state: s.at("state").as_str().unwrap_or_default().to_owned(),
            description: s.at("description").as_str().unwrap_or_default().to_owned(),
            creator: s
                .at("creator")
                .at("login")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    let pin = match file_at(gh, &policy.repo, &policy.pin_file, &head_sha).await? {
        Some(text) => Pin::parse(&text),
        None => Err("missing".to_owned()),
    };
    // What production serves before this PR: the base branch now, or (for a merge) the merge's
    // first parent.
    let base_pin = file_at(
        gh,
        &policy.repo,
        &policy.pin_file,
        since.unwrap_or(&base_ref),
    )
    .await?
    .map(|text| Pin::parse(&text))
    .transpose();
    let base_previous_pin = if policy.no_regression && matches!(base_pin, Ok(Some(_))) {
        previous_pin(gh, policy, since.unwrap_or(&base_ref)).await?
    } else {
        Ok(None)
    };
    Ok(Facts {
        number,
        author,
        body: pr.at("body").as_str().unwrap_or_default().to_owned(),
        head_ref: pr
            .at("head")
            .at("ref")
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        head_repo: pr
            .at("head")
            .at("repo")
            .at("full_name")
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        head_sha,
        evidence_sha,
        base_ref,
        files,
        foreign_commits: foreign,
        started_by,
        pushers,
        reviews,
        allowed,
        unreadable_teams,
        without_write,
        statuses,
        pin,
        base_pin,
        base_previous_pin,
    })
}

/// The marker body for tests of the rules.
#[doc(hidden)]
pub fn sample_body(project: &str, model: &str) -> String {
    marker(project, model)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pin::{Artifact, PinnedComparison, PinnedHoldout, PinnedModel};

    /// The policy the gate's tests (and the revert's) judge by.
    pub(crate) fn policy() -> Policy {
        Policy {
            repo: Repo::parse("octo/deploy").expect("repo"),
            project: "digits".into(),
            base_branch: "main".into(),
            pin_file: "deploy/production.yaml".into(),
            required_approvals: 1,
            reviewers: vec!["lead".into()],
            teams: vec![],
            no_regression: true,
            immediate_rollback: false,
        }
    }

    /// What production pins before the promotion: `m@1`.
    fn production() -> Pin {
        Pin {
            version: 1,
            model: PinnedModel {
                name: "m".into(),
                version: 1,
                registry: "r".into(),
                artifact: Artifact {
                    uri: "r/m/1".into(),
                    sha256: "e".repeat(64),
                },
                image: None,
            },
            manifest_sha256: "b".repeat(64),
            holdout: None,
        }
    }

    fn facts() -> Facts {
        let digest = "d".repeat(64);
        Facts {
            number: 1,
            author: "mlops-app[bot]".into(),
            body: sample_body("digits", "m"),
            head_ref: "mlops/promote/m".into(),
            head_repo: "octo/deploy".into(),
            head_sha: "h".repeat(40),
            evidence_sha: "h".repeat(40),
            base_ref: "main".into(),
            files: vec!["deploy/production.yaml".into()],
            foreign_commits: vec![],
            started_by: vec![],
            pushers: vec![],
            reviews: vec![Review {
                login: "lead".into(),
                bot: false,
                state: "APPROVED".into(),
                commit_id: "h".repeat(40),
            }],
            allowed: [("lead".to_owned(), "listed reviewer".to_owned())].into(),
            unreadable_teams: vec![],
            without_write: vec![],
            statuses: vec![CommitStatus {
                state: "success".into(),
                description: format!("holdout passed; report sha256:{digest}"),
                creator: "mlops-app[bot]".into(),
            }],
            pin: Ok(Pin {
                version: 1,
                model: PinnedModel {
                    name: "m".into(),
                    version: 2,
                    registry: "r".into(),
                    artifact: Artifact {
                        uri: "r/m/2".into(),
                        sha256: "a".repeat(64),
                    },
                    image: None,
                },
                manifest_sha256: "b".repeat(64),
                holdout: Some(PinnedHoldout {
                    passed: true,
                    report_sha256: digest,
                    compared_with: Some(PinnedComparison {
                        model: "m@1".into(),
                        artifact_sha256: "e".repeat(64),
                        passed: true,
                    }),
                }),
            }),
            base_pin: Ok(Some(production())),
            base_previous_pin: Ok(None),
        }
    }

    #[test]
    fn a_valid_approval_passes_and_comments_do_not_undo_it() {
        let mut f = facts();
        f.reviews.push(Review {
            login: "lead".into(),
            bot: false,
            state: "COMMENTED".into(),
            commit_id: "h".repeat(40),
        });
        let d = decide(&policy(), &f);
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.rule, "approved");
        let shown = d.describe("pull request #1");
        assert!(
            shown.starts_with("gate: pull request #1 deploy: [approved] "),
            "{shown}"
        );
        assert!(
            shown.contains("\n  counted: lead (listed reviewer)\n"),
            "{shown}"
        );
        let md = d.summary_markdown("pull request #1");
        assert!(
            md.starts_with("### mlops gate: pull request #1 may deploy\n"),
            "{md}"
        );
        assert!(md.contains("| lead | yes | listed reviewer |"), "{md}");
        f.reviews[0].state = "CHANGES_REQUESTED".into();
        let d = decide(&policy(), &f);
        assert_eq!(d.verdict(), "blocked", "{d:?}");
        let md = d.summary_markdown("pull request #1");
        assert!(
            md.contains("is not approved") && md.contains(&format!("`{}`", d.rule)),
            "{md}"
        );
    }

    /// A change to the valid facts, and the rule that must refuse it.
    type Change = dyn Fn(&mut Facts);

    /// Each change, made alone to the valid facts, is refused by its rule.
    fn refused_by(p: &Policy, cases: Vec<(&str, Box<Change>)>) {
        for (rule, change) in cases {
            let mut f = facts();
            change(&mut f);
            let d = decide(p, &f);
            assert!(!d.allowed, "{rule}: {d:?}");
            assert_eq!(d.rule, rule, "{d:?}");
        }
    }

    #[test]
    fn each_rule_names_itself() {
        let p = policy();
        let cases: Vec<(&str, Box<Change>)> = vec![
            ("promotion-pr", Box::new(|f| f.body = "hand-made".into())),
            ("promotion-pr", Box::new(|f| f.base_ref = "dev".into())),
            ("promotion-pr", Box::new(|f| f.files.push("x".into()))),
            ("promotion-pr", Box::new(|f| f.head_ref = "feature".into())),
            (
                "approvals",
                Box::new(|f| f.reviews[0].login = f.author.clone()),
            ),
            (
                "approvals",
                Box::new(|f| f.reviews[0].commit_id = "o".repeat(40)),
            ),
            ("approvals", Box::new(|f| f.allowed.clear())),
            (
                "changes-requested",
                Box::new(|f| {
                    f.reviews.push(Review {
                        login: "x".into(),
                        bot: false,
                        state: "CHANGES_REQUESTED".into(),
                        commit_id: String::new(),
                    })
                }),
            ),
            ("holdout-status", Box::new(|f| f.statuses.clear())),
            (
                "holdout-status",
                Box::new(|f| f.statuses[0].state = "failure".into()),
            ),
            (
                "holdout-status",
                Box::new(|f| f.statuses[0].creator = "someone".into()),
            ),
            (
                "holdout-status",
                Box::new(|f| f.statuses[0].description = "holdout passed".into()),
            ),
        ];
        refused_by(&p, cases);
    }

    /// A push of the pin to the base branch deploys only as the merge of an approved
    /// promotion pull request holding exactly that pin.
    #[test]
    fn a_merge_deploys_only_the_pin_its_approved_pull_request_held() {
        let p = policy();
        let merge = Merge {
            commit: "c".repeat(40),
            number: Some(1),
            pin_at_commit: Some("pin".into()),
            pin_at_head: Some("pin".into()),
        };
        assert!(decide_merge(&p, &merge, Some(&facts())).allowed);
        let pushed = Merge {
            number: None,
            pin_at_head: None,
            ..merge.clone()
        };
        let d = decide_merge(&p, &pushed, None);
        assert_eq!(
            (d.allowed, d.rule),
            (false, "promotion-pr"),
            "a direct push: {d:?}"
        );
        assert!(d.reason.contains("not the merge commit"), "{d:?}");
        let changed = Merge {
            pin_at_commit: Some("another pin".into()),
            ..merge.clone()
        };
        let d = decide_merge(&p, &changed, Some(&facts()));
        assert_eq!((d.allowed, d.rule), (false, "promotion-pr"), "{d:?}");
        let gone = Merge {
            pin_at_commit: None,
            pin_at_head: None,
            ..merge.clone()
        };
        assert!(!decide_merge(&p, &gone, Some(&facts())).allowed);
        // The pull request's own rules still apply.
        let mut unapproved = facts();
        unapproved.reviews.clear();
        let d = decide_merge(&p, &merge, Some(&unapproved));
        assert_eq!((d.allowed, d.rule), (false, "approvals"), "{d:?}");
    }

    /// Teams the token could not read do not block approvals that count without them, and are
    /// named when the approvals fall short.
    #[test]
    fn unreadable_teams_are_named_only_when_approvals_fall_short() {
        let p = policy();
        let mut f = facts();
        f.unreadable_teams = vec!["octo/ml-leads".into()];
        assert!(decide(&p, &f).allowed);
        f.reviews.clear();
        let d = decide(&p, &f);
        assert_eq!(d.rule, "approvals");
        assert!(
            d.reason.contains("octo/ml-leads") && d.reason.contains("MLOPS_GATE_TOKEN"),
            "{d:?}"
        );
    }

    /// An allowed reviewer without write access to the repository approves in vain, as on
    /// GitHub, and the reason names it.
    #[test]
    fn an_approval_without_write_access_does_not_count() {
        let p = policy();
        let mut f = facts();
        assert!(decide(&p, &f).allowed);
        let approvers: Vec<String> = f
            .reviews
            .iter()
            .filter(|r| r.state == "APPROVED")
            .map(|r| r.login.clone())
            .collect();
        f.without_write = approvers;
        let d = decide(&p, &f);
        assert!(!d.allowed);
        assert_eq!(d.rule, "approvals");
        assert!(d.reason.contains("has no write access"), "{d:?}");
    }

    fn compared(f: &mut Facts) -> &mut PinnedComparison {
        holdout(f).compared_with.as_mut().expect("a comparison")
    }

    #[test]
    fn a_promotion_must_stand_the_comparison_with_what_production_serves() {
        let p = policy();
        let d = decide(&p, &facts());
        assert!(d.allowed, "{d:?}");
        assert!(d.reason.contains("no regression against m@1"), "{d:?}");
        let cases: Vec<(&str, Box<Change>)> = vec![
            // Not compared at all.
            (
                "no-regression",
                Box::new(|f| holdout(f).compared_with = None),
            ),
            // Compared, and worse.
            ("no-regression", Box::new(|f| compared(f).passed = false)),
            // Compared with another version than production's.
            (
                "no-regression",
                Box::new(|f| compared(f).model = "m@0".into()),
            ),
            // With the right version number but another artifact.
            (
                "no-regression",
                Box::new(|f| compared(f).artifact_sha256 = "0".repeat(64)),
            ),
            // Production's pin changed since (another promotion merged first).
            (
                "no-regression",
                Box::new(|f| {
                    if let Ok(Some(base)) = f.base_pin.as_mut() {
                        base.model.version = 3;
                    }
                }),
            ),
            // What production serves cannot be read.
            (
                "no-regression",
                Box::new(|f| f.base_pin = Err("not YAML".into())),
            ),
        ];
        refused_by(&p, cases);
        let d = {
            let mut f = facts();
            holdout(&mut f).compared_with = None;
            decide(&p, &f)
        };
        assert!(
            d.reason.contains("production pins m@1") && d.reason.contains("--compare production"),
            "{d:?}"
        );
        // Production serves nothing yet: nothing to regress against.
        let mut f = facts();
        f.base_pin = Ok(None);
        holdout(&mut f).compared_with = None;
        assert!(decide(&p, &f).allowed);
        // Without `promotion.no_regression` no comparison is needed, but a recorded failure
        // still refuses.
        let lax = Policy {
            no_regression: false,
            ..policy()
        };
        let mut f = facts();
        holdout(&mut f).compared_with = None;
        assert!(decide(&lax, &f).allowed);
        compared_fails(&lax);
    }

    /// A rollback pins the version production served before, compared (if ever) with the one
    /// before that: rule 5 lets exactly that pin through, and nothing else on the strength of it.
    #[test]
    fn a_rollback_to_the_pin_before_is_not_held_to_the_comparison() {
        let p = policy();
        // Production serves m@2; before it, m@1; the rollback pins m@1 again, with the
        // comparison its own promotion recorded (against m@0).
        let rollback = || {
            let mut f = facts();
            let mut serving = production();
            serving.model.version = 2;
            serving.model.artifact.sha256 = "a".repeat(64);
            f.base_pin = Ok(Some(serving));
            f.base_previous_pin = Ok(Some(production()));
            if let Ok(pin) = f.pin.as_mut() {
                pin.model = production().model;
            }
            compared(&mut f).model = "m@0".into();
            f
        };
        let d = decide(&p, &rollback());
        assert!(d.allowed, "{d:?}");
        assert!(d.reason.contains("a rollback to m@1"), "{d:?}");
        let cases: Vec<(&str, Box<Change>)> = vec![
            // Not the pin before: another version, or the same number with another artifact.
            (
                "no-regression",
                Box::new(|f| {
                    if let Ok(pin) = f.pin.as_mut() {
                        pin.model.version = 0;
                    }
                }),
            ),
            (
                "no-regression",
                Box::new(|f| {
                    if let Ok(pin) = f.pin.as_mut() {
                        pin.model.artifact.sha256 = "0".repeat(64);
                    }
                }),
            ),
            // The pin before cannot be read, or there was none.
            (
                "no-regression",
                Box::new(|f| f.base_previous_pin = Err("not YAML".into())),
            ),
            (
                "no-regression",
                Box::new(|f| f.base_previous_pin = Ok(None)),
            ),
            // Its own promotion recorded a failed comparison.
            ("no-regression", Box::new(|f| compared(f).passed = false)),
        ];
        for (rule, change) in cases {
            let mut f = rollback();
            change(&mut f);
            let d = decide(&p, &f);
            assert_eq!((d.allowed, d.rule), (false, rule), "{d:?}");
        }
    }

    fn compared_fails(p: &Policy) {
        let mut f = facts();
        compared(&mut f).passed = false;
        let d = decide(p, &f);
        assert_eq!((d.allowed, d.rule), (false, "no-regression"), "{d:?}");
        assert!(d.reason.contains("regression against m@1"), "{d:?}");
    }

    fn holdout(f: &mut Facts) -> &mut PinnedHoldout {
        f.pin
            .as_mut()
            .ok()
            .and_then(|p| p.holdout.as_mut())
            .expect("holdout")
    }

    /// What a writer, a fork or a broken promotion could put in front of the gate, each refused
    /// by the rule that should refuse it, and never a panic (multibyte text where SHAs and
    /// digests are expected).
    #[test]
    fn forged_and_malformed_evidence_is_refused() {
        let p = policy();
        let cases: Vec<(&str, Box<Change>)> = vec![
            // A fork's branch named like the promotion branch.
            (
                "promotion-pr",
                Box::new(|f| f.head_repo = "mallory/deploy".into()),
            ),
            // The head repository was deleted.
            ("promotion-pr", Box::new(|f| f.head_repo = String::new())),
            // An empty digest is in every description.
            (
                "holdout-status",
                Box::new(|f| {
                    holdout(f).report_sha256 = String::new();
                    f.statuses[0].description = "holdout passed; report sha256:".into();
                }),
            ),
            // A digest of multibyte text: refused, not sliced.
            (
                "holdout-status",
                Box::new(|f| {
                    holdout(f).report_sha256 = "é".repeat(32);
                    f.statuses[0].description = format!("sha256:{}", "é".repeat(32));
                }),
            ),
            // Uppercase hex is not what promote writes.
            (
                "holdout-status",
                Box::new(|f| holdout(f).report_sha256 = "D".repeat(64)),
            ),
            // The status names a longer digest that merely starts with the pin's.
            (
                "holdout-status",
                Box::new(|f| f.statuses[0].description.push('0')),
            ),
            // A pin that records a failed holdout.
            ("holdout-status", Box::new(|f| holdout(f).passed = false)),
        ];
        refused_by(&p, cases);
        // Multibyte head and review SHAs are reported, not sliced.
        let mut f = facts();
        f.head_sha = "ü".repeat(20);
        f.reviews[0].commit_id = "ö".repeat(20);
        let d = decide(&p, &f);
        assert_eq!(d.rule, "approvals", "{d:?}");
        assert!(d.reason.contains(&"ü".repeat(12)), "{d:?}");
    }

    fn commit(author: &str, verified: bool, parents: usize, message: &str) -> BranchCommit {
        BranchCommit {
            sha: "c".repeat(40),
            author: author.into(),
            verified,
            parents,
            first_parent: "p".repeat(40),
            message: message.into(),
        }
    }

    /// Only a GitHub-signed commit by the promotion's author with the trailer is promote's; the
    /// trailer typed by anyone else, or on an unsigned commit, is not.
    #[test]
    fn a_typed_trailer_does_not_make_a_commit_promotes() {
        let ours =
            "Promote m@2\n\nMlops-Promotion: m@2\nMlops-Started-By: alice\nMlops-Started-By: bob\n";
        let bot = "mlops-app[bot]";
        assert_eq!(
            classify(&commit(bot, true, 1, ours), Some(bot)),
            Made::Promote {
                started_by: vec!["alice".into(), "bob".into()]
            }
        );
        for (c, says) in [
            (commit("mallory", true, 1, ours), "made by mallory"),
            (commit(bot, false, 1, ours), "not signed by GitHub"),
            (
                commit("mallory", false, 1, "fix pin"),
                "no `Mlops-Promotion:` trailer",
            ),
            (
                commit("mallory", false, 2, "Merge branch 'main'"),
                "not a merge GitHub signed",
            ),
            // The trailer must be a line of its own, not a quote inside one.
            (
                commit(bot, true, 1, "see Mlops-Promotion: m@2"),
                "no `Mlops-Promotion:` trailer",
            ),
        ] {
            match classify(&c, Some(bot)) {
                Made::Foreign(why) => assert!(why.contains(says), "{why}"),
                other => panic!("{c:?} was {other:?}"),
            }
        }
        assert_eq!(
            classify(
                &commit("carol", true, 2, "Merge branch 'main' into x"),
                Some(bot)
            ),
            Made::Update
        );
        // Promote's own check of its branch: the trailer, or a merge, is enough.
        assert!(matches!(
            classify(&commit("x", false, 1, ours), None),
            Made::Promote { .. }
        ));
        assert_eq!(classify(&commit("x", false, 2, "m"), None), Made::Update);
        assert!(matches!(
            classify(&commit("x", true, 1, "m"), None),
            Made::Foreign(_)
        ));
    }

    /// The person who started the run and a person who pushed to the PR do not approve it.
    #[test]
    fn the_run_starter_and_a_pusher_do_not_approve() {
        let p = policy();
        let cases: Vec<(&str, Box<Change>)> = vec![
            (
                "approvals",
                Box::new(|f| f.started_by = vec!["lead".into()]),
            ),
            ("approvals", Box::new(|f| f.pushers = vec!["lead".into()])),
        ];
        refused_by(&p, cases);
        let mut f = facts();
        f.started_by = vec!["lead".into()];
        let d = decide(&p, &f);
        assert!(d.reason.contains("started the run"), "{d:?}");
        f.started_by = vec!["someone-else".into()];
        assert!(decide(&p, &f).allowed);
    }
}
