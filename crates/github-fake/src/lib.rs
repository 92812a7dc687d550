#![recursion_limit = "256"]
// A test fake: a panic here is a failed test, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

//! A stateful fake of the GitHub REST API, for tests: an HTTP server on a free loopback port that
//! keeps repositories (refs, blobs, trees, commits, file contents), pull requests, reviews,
//! commit statuses, labels, teams, branch protection and tokens in memory.
//!
//! Every request is checked against GitHub's official OpenAPI description (an extract of npm
//! `@octokit/openapi`, see `cargo xtask github-spec`) before it is served: a request that breaks
//! it gets 422 with the violations, as prism's validating proxy answers. Every response is
//! checked too; a response that breaks the description becomes a 500 (a bug of the fake). Both
//! kinds are recorded, and a test asserts that [`FakeGitHub::violations`] is empty.
//!
//! Tokens stand for the identities GitHub gives them: [`Token::Actions`] is a workflow's
//! `GITHUB_TOKEN` (`github-actions[bot]`; no organisation members, no branch protection, and
//! pull requests only when the repository allows Actions to create them), [`Token::App`] a GitHub
//! App installation, [`Token::Classic`] a classic personal token with its scopes (returned in
//! `X-OAuth-Scopes`).

mod api;
mod openapi;
pub mod triggers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

pub use api::Fault;

/// Who a token acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A workflow's `GITHUB_TOKEN`.
    Actions,
    /// A GitHub App installation token; the app's slug.
    App(String),
    /// A classic personal access token of a user, with its scopes.
    Classic { login: String, scopes: Vec<String> },
}

/// A GitHub account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub id: u64,
    pub bot: bool,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub body: Option<Value>,
    /// The operation's path template, when the request matched one.
    pub operation: Option<String>,
}

/// A commit in the fake's object store.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
    pub author: Account,
    /// GitHub signs a commit made through the API when it names no author, committer or
    /// signature; such a commit shows as verified.
    pub verified: bool,
    /// The keys of the request body that created it (empty for commits the test pushed).
    pub request_keys: Vec<String>,
}

/// A review on a pull request.
#[derive(Debug, Clone)]
pub struct Review {
    pub id: u64,
    pub user: Account,
    pub state: String,
    pub commit_id: String,
}

/// A commit status.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: u64,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub creator: Account,
}

/// A pull request.
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub head: String,
    /// The owner of the fork the head branch is in; `None`: this repository.
    pub head_owner: Option<String>,
    pub base: String,
    pub user: Account,
    pub open: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    pub reviews: Vec<Review>,
    /// Set when the pull request was merged: what GitHub keeps of it from then on.
    pub merged: Option<Merged>,
}

impl Pull {
    /// A pull request just opened in `repo` (numbered after its others): no labels, reviewers
    /// or reviews yet.
    pub(crate) fn opened(
        repo: &Repo,
        title: String,
        body: Option<String>,
        head: String,
        head_owner: Option<String>,
        base: String,
        user: Account,
    ) -> Pull {
        Pull {
            number: repo.next_number(),
            title,
            body,
            head,
            head_owner,
            base,
            user,
            open: true,
            labels: Vec::new(),
            reviewers: Vec::new(),
            team_reviewers: Vec::new(),
            reviews: Vec::new(),
            merged: None,
        }
    }

    /// Where the head branch's tip is kept: `heads/BRANCH`, or for a fork's branch
    /// `forks/OWNER/heads/BRANCH` (a fork shares the repository's objects, not its branches).
    pub(crate) fn head_ref(&self) -> String {
        match &self.head_owner {
            Some(owner) => format!("forks/{owner}/heads/{}", self.head),
            None => format!("heads/{}", self.head),
        }
    }
}

/// An issue (pull requests are issues too on GitHub, numbered in the same sequence; the fake
/// keeps them apart).
#[derive(Debug, Clone)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub open: bool,
    pub user: Account,
    /// Comments in order: who and what.
    pub comments: Vec<(Account, String)>,
}

/// A `workflow_dispatch` event created through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The workflow's file name (or ID) as the request named it.
    pub workflow: String,
    pub git_ref: String,
    /// The inputs given, as GitHub hands them to the run (text).
    pub inputs: std::collections::BTreeMap<String, String>,
    pub by: Account,
}

/// A merged pull request's commits, as they were at the merge.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The head commit that was merged.
    pub head_sha: String,
    /// The base branch's commit the merge was made on.
    pub base_sha: String,
    /// The merge commit now on the base branch.
    pub merge_sha: String,
}

/// A deployment environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Which branches may deploy: `None` any branch; `Some` the name patterns of its custom
    /// deployment branch policy.
    pub branches: Option<Vec<String>>,
    /// Actions variables of the environment (name, value).
    pub variables: BTreeMap<String, String>,
}

/// A repository.
#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    pub refs: BTreeMap<String, String>,
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Trees flattened to full paths.
    pub trees: BTreeMap<String, BTreeMap<String, String>>,
    pub commits: BTreeMap<String, Commit>,
    pub pulls: Vec<Pull>,
    pub issues: Vec<Issue>,
    /// Workflow runs dispatched through the API, in order.
    pub dispatches: Vec<Dispatch>,
    pub statuses: BTreeMap<String, Vec<Status>>,
    /// Approving reviews branch protection requires, by branch (absent: not protected).
    pub protection: BTreeMap<String, u32>,
    /// Protected branches whose rule also requires a code owner's review.
    pub code_owner_reviews: BTreeSet<String>,
    /// Who may push to a protected branch without a pull request (its ruleset's bypass list),
    /// by branch: logins (an App's is `SLUG[bot]`).
    pub bypass: BTreeMap<String, BTreeSet<String>>,
    /// Deployment environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Actions variables of the repository (name, value).
    pub variables: BTreeMap<String, String>,
    /// Names of the repository's Actions secrets.
    pub secrets: BTreeSet<String>,
    /// Whether "Allow GitHub Actions to create and approve pull requests" is on.
    pub actions_may_open_prs: bool,
    /// The OIDC subject template's claim keys; `None`: GitHub's default.
    pub oidc_claim_keys: Option<Vec<String>>,
    /// Each login's permission on the repository (`admin`, `write`, `read`, `none`), as
    /// GitHub's legacy `permission` reports it. A login not listed has `write` (the owner
    /// `admin`): tests give fewer rights explicitly.
    pub permissions: BTreeMap<String, String>,
}

impl Repo {
    /// The number of the next issue or pull request: one sequence for both, as on GitHub.
    pub(crate) fn next_number(&self) -> u64 {
        let pulls = self.pulls.iter().map(|pr| pr.number);
        let issues = self.issues.iter().map(|i| i.number);
        pulls.chain(issues).max().unwrap_or(0) + 1
    }

    /// The file at `path` on `branch`, as text.
    pub(crate) fn file_on(&self, branch: &str, path: &str) -> Option<String> {
        let sha = self.refs.get(&format!("heads/{branch}"))?;
        let commit = self.commits.get(sha)?;
        let blob = self.trees.get(&commit.tree)?.get(path)?;
        self.blobs
            .get(blob)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) tokens: BTreeMap<String, Token>,
    pub(crate) repos: BTreeMap<String, Repo>,
    pub(crate) teams: BTreeMap<String, Vec<String>>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) log: Vec<Exchange>,
    pub(crate) violations: Vec<String>,
    pub(crate) next_id: u64,
    pub(crate) clock: u64,
}

impl State {
    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A time that grows with each call, so that later objects are newer.
    pub(crate) fn now(&mut self) -> String {
        self.clock += 1;
        let s = self.clock;
        format!(
            "2026-01-01T{:02}:{:02}:{:02}Z",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60
        )
    }
}

pub(crate) fn account(token: &Token) -> Account {
    match token {
        Token::Actions => Account {
            login: "github-actions[bot]".into(),
            id: 41_898_282,
            bot: true,
        },
        Token::App(slug) => Account {
            login: format!("{slug}[bot]"),
            id: 90_000 + slug.len() as u64,
            bot: true,
        },
        Token::Classic { login, .. } => user(login),
    }
}

/// Pull request `number`'s index, its head and base branches and their tips, when all exist.
fn tips(repo: &Repo, number: u64) -> Option<(usize, String, String, String, String)> {
    let i = repo.pulls.iter().position(|p| p.number == number)?;
    let (head, base) = (repo.pulls[i].head.clone(), repo.pulls[i].base.clone());
    let head_sha = repo.refs.get(&repo.pulls[i].head_ref())?.clone();
    let base_sha = repo.refs.get(&format!("heads/{base}"))?.clone();
    Some((i, head, base, head_sha, base_sha))
}

/// A user account with an id derived from its login.
pub fn user(login: &str) -> Account {
    let id = login.bytes().fold(1_000u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 10_000_000;
    Account {
        login: login.to_owned(),
        id,
        bot: login.ends_with("[bot]"),
    }
}

/// A git-like object name: 40 hex digits.
pub(crate) fn object_id(kind: &str, bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(bytes);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex[..40].to_owned()
}

/// The running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeGitHub {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitHub {
    /// Starts the fake on a free loopback port.
    pub fn start() -> std::io::Result<FakeGitHub> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            base_url: url.clone(),
            ..State::default()
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = api::router(shared);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(FakeGitHub {
            url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The API base URL (what `GITHUB_API_URL` is set to).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a token.
    pub fn token(&self, secret: &str, token: Token) {
        self.state().tokens.insert(secret.to_owned(), token);
    }

    /// Creates a repository `owner/name` whose default branch holds `files` in one commit by
    /// `owner`.
    pub fn repo(&self, full_name: &str, branch: &str, files: &[(&str, &str)]) {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
        let mut repo = Repo {
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: branch.to_owned(),
            ..Repo::default()
        };
        let sha = api::commit_files(&mut repo, None, files, "initial commit", &user(owner));
        repo.refs.insert(format!("heads/{branch}"), sha);
        self.state().repos.insert(full_name.to_owned(), repo);
    }

    /// A commit by `login` on `branch` (created from the default branch when missing), the way
    /// a human's `git push` would add it. Returns its SHA.
    pub fn push(
        &self,
        full_name: &str,
        branch: &str,
        login: &str,
        files: &[(&str, &str)],
    ) -> String {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return String::new();
        };
        let parent = repo
            .refs
            .get(&format!("heads/{branch}"))
            .or_else(|| repo.refs.get(&format!("heads/{}", repo.default_branch)))
            .cloned();
        let sha = api::commit_files(repo, parent, files, "a human's commit", &user(login));
        repo.refs.insert(format!("heads/{branch}"), sha.clone());
        sha
    }

    /// A commit by `login` on an existing `branch` with `message`, signed by GitHub when
    /// `signed` (as the API signs a commit a person's token creates there). Returns its SHA
    /// (empty when there is no such branch).
    pub fn commit_as(
        &self,
        full_name: &str,
        branch: &str,
        login: &str,
        files: &[(&str, &str)],
        message: &str,
        signed: bool,
    ) -> String {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return String::new();
        };
        let Some(parent) = repo.refs.get(&format!("heads/{branch}")).cloned() else {
            return String::new();
        };
        let sha = api::commit_files(repo, Some(parent), files, message, &user(login));
        if let Some(c) = repo.commits.get_mut(&sha) {
            c.verified = signed;
        }
        repo.refs.insert(format!("heads/{branch}"), sha.clone());
        sha
    }

    /// Merges a pull request as GitHub's default merge method does: a merge commit by `login`
    /// on the base branch, whose parents are the base's commit and the head commit and whose
    /// tree is the base's with the pull request's changes. Returns the merge commit's SHA (empty
    /// when there is no such pull request).
    pub fn merge_as(&self, full_name: &str, number: u64, login: &str) -> String {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return String::new();
        };
        let Some((i, head, base, head_sha, base_sha)) = tips(repo, number) else {
            return String::new();
        };
        let message = format!("Merge pull request #{number} from {head}");
        let sha = api::merge_commit(repo, &base_sha, &head_sha, &message, &user(login), None);
        repo.refs.insert(format!("heads/{base}"), sha.clone());
        let pull = &mut repo.pulls[i];
        pull.open = false;
        pull.merged = Some(Merged {
            head_sha,
            base_sha,
            merge_sha: sha.clone(),
        });
        sha
    }

    /// [`merge_as`](Self::merge_as), with the merge commit recorded as `sha`: the SHA the same
    /// merge has in the clone a test's runner checks out (act takes `github.sha` from that
    /// clone), so that the API and the checkout name one commit, as they do on GitHub. Returns
    /// `sha` (empty when there is no such pull request).
    pub fn merge_as_sha(&self, full_name: &str, number: u64, login: &str, sha: &str) -> String {
        let made = self.merge_as(full_name, number, login);
        if made.is_empty() {
            return made;
        }
        self.rename_commit(full_name, &made, sha)
    }

    /// Gives the commit `from` (a tip, no other commit's parent) the SHA `to`, so that a test's
    /// local clone and the fake name the same commit; `to`, or empty when there is no `from`.
    pub fn rename_commit(&self, full_name: &str, from: &str, to: &str) -> String {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return String::new();
        };
        let Some(mut commit) = repo.commits.remove(from) else {
            return String::new();
        };
        commit.sha = to.to_owned();
        repo.commits.insert(to.to_owned(), commit);
        for tip in repo.refs.values_mut().filter(|tip| **tip == from) {
            *tip = to.to_owned();
        }
        for pull in &mut repo.pulls {
            if let Some(merged) = pull.merged.as_mut().filter(|m| m.merge_sha == from) {
                merged.merge_sha = to.to_owned();
            }
        }
        to.to_owned()
    }

    /// A pull request into `base` of `full_name` from the branch `branch` of `fork_owner`'s fork,
    /// whose commit by `login` (on top of `base`) holds `files`, opened by `login` with `title`
    /// and `body`. Returns its number (0 when there is no such repository or base).
    #[allow(clippy::too_many_arguments)]
    pub fn fork_pull(
        &self,
        full_name: &str,
        fork_owner: &str,
        branch: &str,
        base: &str,
        login: &str,
        files: &[(&str, &str)],
        title: &str,
        body: &str,
    ) -> u64 {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return 0;
        };
        let Some(parent) = repo.refs.get(&format!("heads/{base}")).cloned() else {
            return 0;
        };
        let sha = api::commit_files(repo, Some(parent), files, title, &user(login));
        let pull = Pull::opened(
            repo,
            title.to_owned(),
            Some(body.to_owned()),
            branch.to_owned(),
            Some(fork_owner.to_owned()),
            base.to_owned(),
            user(login),
        );
        let number = pull.number;
        repo.refs.insert(pull.head_ref(), sha);
        repo.pulls.push(pull);
        number
    }

    /// GitHub's "Update branch" button on a pull request, clicked by `login`: a merge commit of
    /// the base into the head branch (parents: the head, then the base), signed by GitHub and
    /// attributed to `login`. `pin` (a path and text) resolves a conflict on that file the way a
    /// person could. Returns the new head (empty when there is no such pull request).
    pub fn update_branch(
        &self,
        full_name: &str,
        number: u64,
        login: &str,
        pin: Option<(&str, &str)>,
    ) -> String {
        let mut s = self.state();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return String::new();
        };
        let Some((_, head, base, head_sha, base_sha)) = tips(repo, number) else {
            return String::new();
        };
        let message = format!("Merge branch '{base}' into {head}");
        let sha = api::merge_commit(repo, &head_sha, &base_sha, &message, &user(login), pin);
        repo.refs.insert(format!("heads/{head}"), sha.clone());
        sha
    }

    /// [`merge_as`](Self::merge_as) by the repository's owner.
    pub fn merge(&self, full_name: &str, number: u64) -> String {
        let owner = full_name.split_once('/').map_or(full_name, |(o, _)| o);
        self.merge_as(full_name, number, owner)
    }

    /// A review by `login` on a pull request, on `commit` (default: its current head).
    pub fn review(
        &self,
        full_name: &str,
        number: u64,
        login: &str,
        state: &str,
        commit: Option<&str>,
    ) {
        let mut s = self.state();
        let id = s.id();
        let Some(repo) = s.repos.get_mut(full_name) else {
            return;
        };
        let Some(pull) = repo.pulls.iter().find(|p| p.number == number) else {
            return;
        };
        let head = repo
            .refs
            .get(&format!("heads/{}", pull.head))
            .cloned()
            .unwrap_or_default();
        let commit_id = commit.map_or(head, str::to_owned);
        if let Some(pull) = repo.pulls.iter_mut().find(|p| p.number == number) {
            pull.reviews.push(Review {
                id,
                user: user(login),
                state: state.to_owned(),
                commit_id,
            });
        }
    }

    /// A commit status posted by `creator` (another identity than the tool's, say).
    pub fn status(
        &self,
        full_name: &str,
        sha: &str,
        creator: &str,
        state: &str,
        context: &str,
        description: &str,
    ) {
        let mut s = self.state();
        let id = s.id();
        if let Some(repo) = s.repos.get_mut(full_name) {
            repo.statuses
                .entry(sha.to_owned())
                .or_default()
                .push(Status {
                    id,
                    state: state.to_owned(),
                    context: context.to_owned(),
                    description: Some(description.to_owned()),
                    target_url: None,
                    creator: user(creator),
                });
        }
    }

    /// Requires `approvals` approving reviews on `branch` (0 removes the protection).
    pub fn protect(&self, full_name: &str, branch: &str, approvals: u32) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            if approvals == 0 {
                repo.protection.remove(branch);
            } else {
                repo.protection.insert(branch.to_owned(), approvals);
            }
        }
    }

    /// Lets `login` (an App's: `SLUG[bot]`) move the protected `branch` without a pull request,
    /// as a ruleset's bypass list does. Nobody else may: GitHub answers 422.
    pub fn bypass(&self, full_name: &str, branch: &str, login: &str) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.bypass
                .entry(branch.to_owned())
                .or_default()
                .insert(login.to_owned());
        }
    }

    /// Requires (or not) a code owner's review on a protected `branch`.
    pub fn require_code_owners(&self, full_name: &str, branch: &str, required: bool) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            if required {
                repo.code_owner_reviews.insert(branch.to_owned());
            } else {
                repo.code_owner_reviews.remove(branch);
            }
        }
    }

    /// Creates or replaces a deployment environment: `branches` as its custom deployment
    /// branch policy (`None`: any branch may deploy), with its variables.
    pub fn environment(
        &self,
        full_name: &str,
        name: &str,
        branches: Option<&[&str]>,
        variables: &[(&str, &str)],
    ) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.environments.insert(
                name.to_owned(),
                Environment {
                    branches: branches.map(|b| b.iter().map(|s| (*s).to_owned()).collect()),
                    variables: variables
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                },
            );
        }
    }

    /// Sets a repository Actions variable.
    pub fn variable(&self, full_name: &str, name: &str, value: &str) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.variables.insert(name.to_owned(), value.to_owned());
        }
    }

    /// Adds a repository Actions secret (only its name is ever shown).
    pub fn secret(&self, full_name: &str, name: &str) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.secrets.insert(name.to_owned());
        }
    }

    /// Removes a repository Actions secret.
    pub fn remove_secret(&self, full_name: &str, name: &str) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.secrets.remove(name);
        }
    }

    /// Turns "Allow GitHub Actions to create and approve pull requests" on or off.
    pub fn allow_actions_prs(&self, full_name: &str, allowed: bool) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.actions_may_open_prs = allowed;
        }
    }

    /// Sets the repository's OIDC subject template: `Some(keys)` the claim keys, `None` GitHub's
    /// default.
    pub fn oidc_subject_template(&self, full_name: &str, keys: Option<&[&str]>) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.oidc_claim_keys = keys.map(|k| k.iter().map(|s| (*s).to_owned()).collect());
        }
    }

    /// Sets `login`'s permission on the repository: `admin`, `write`, `read` or `none` (not a
    /// collaborator).
    pub fn permission(&self, full_name: &str, login: &str, level: &str) {
        if let Some(repo) = self.state().repos.get_mut(full_name) {
            repo.permissions.insert(login.to_owned(), level.to_owned());
        }
    }

    /// An organisation team and its members.
    pub fn team(&self, org: &str, slug: &str, members: &[&str]) {
        self.state().teams.insert(
            format!("{org}/{slug}"),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// Answers the next request matching `fault` with its status instead of serving it.
    pub fn fail_next(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Exchange> {
        self.state().log.clone()
    }

    /// Every contract violation so far (requests and responses).
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    /// A snapshot of a repository.
    pub fn snapshot(&self, full_name: &str) -> Option<Repo> {
        self.state().repos.get(full_name).cloned()
    }

    /// The text of `path` at the tip of `branch`.
    pub fn file(&self, full_name: &str, branch: &str, path: &str) -> Option<String> {
        self.state().repos.get(full_name)?.file_on(branch, path)
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
