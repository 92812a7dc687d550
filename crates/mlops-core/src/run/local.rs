//! The promotion of `mlops run` without GitHub: a git repository in the work dir stands for the
//! promotion repository. Its base branch holds the production pin; the promotion branch gets the
//! same commit `mlops promote` would make (the pin file, the trailer), the pull request's body
//! is written as a markdown file, the gate's rules (`mlops_github::gate::decide`, the same pure
//! function `mlops gate` uses) run on facts read from this repository with local stand-in
//! approvals, and the production deploy merges the branch and serves exactly what the base pins.
//!
//! The repository is never the user's checkout: git runs with `-C <work dir>/promotion`, without
//! the user's global or system configuration (no hooks, signing or templates of theirs), with a
//! fixed local identity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mlops_github::TRAILER;
use mlops_github::gate::{self, CommitStatus, Decision, Facts, Policy, Review};
use mlops_github::pin::Pin;

use crate::Problem;
use crate::promote::Prepared;

/// Who makes the local commits and "posts" the holdout status (the PR's author).
pub(super) const AUTHOR: &str = "mlops-run";
const EMAIL: &str = "mlops-run@localhost";

fn broken(message: String, hint: &str) -> Problem {
    Problem::broken(message, hint)
}

fn refused(message: String, hint: &str) -> Problem {
    Problem::refused(message, hint)
}

/// The local promotion repository.
pub(super) struct LocalRepo {
    pub(super) dir: PathBuf,
}

/// A promotion proposed in the local repository.
pub(super) struct Proposal {
    pub(super) branch: String,
    pub(super) head: String,
    pub(super) body_file: PathBuf,
    /// The full body, with the marker.
    pub(super) body: String,
    /// The pin production had before (its reference), if any.
    pub(super) replaces: Option<String>,
}

impl LocalRepo {
    /// Opens the repository at `dir`, or creates it with one commit on `base`.
    pub(super) fn open_or_init(dir: &Path, base: &str) -> Result<LocalRepo, Problem> {
        let repo = LocalRepo {
            dir: dir.to_path_buf(),
        };
        if dir.join(".git").exists() {
            return Ok(repo);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| broken(format!("cannot create {}: {e}", dir.display()), ""))?;
        repo.git(&["init", "-q"])?;
        repo.git(&["symbolic-ref", "HEAD", &format!("refs/heads/{base}")])?;
        std::fs::write(
            dir.join("README.md"),
            "# Local promotion repository\n\nMade by `mlops run`. It stands for the promotion \
             repository on GitHub: the base branch holds the production pin, and each promotion \
             is a branch `mlops/promote/<model>` with one commit that changes it. Delete this \
             directory to start over.\n",
        )
        .map_err(|e| broken(format!("cannot write in {}: {e}", dir.display()), ""))?;
        repo.git(&["add", "README.md"])?;
        repo.git(&["commit", "-q", "-m", "Local promotion repository"])?;
        Ok(repo)
    }

    /// Runs git in the repository; its stdout, trimmed.
    fn git(&self, args: &[&str]) -> Result<String, Problem> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", &format!("user.name={AUTHOR}")])
            .args(["-c", &format!("user.email={EMAIL}")])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "core.hooksPath=/dev/null",
            ])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .output()
            .map_err(|e| {
                broken(
                    format!("cannot run git: {e}"),
                    "install git: the local promotion repository is a git repository",
                )
            })?;
        if !out.status.success() {
            return Err(broken(
                format!(
                    "git {} failed in {}: {}",
                    args.join(" "),
                    self.dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "delete the local promotion repository to start over; the next run recreates it",
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The commit `branch` points at, if it exists.
    fn tip(&self, branch: &str) -> Option<String> {
        self.git(&[
            "rev-parse",
            "-q",
            "--verify",
            &format!("refs/heads/{branch}"),
        ])
        .ok()
    }

    /// `path` at `rev`, if it is there.
    pub(super) fn show(&self, rev: &str, path: &str) -> Option<String> {
        self.git(&["show", &format!("{rev}:{path}")]).ok()
    }

    /// Commits on `head` not on `base`: (SHA, author, message).
    fn commits(&self, base: &str, head: &str) -> Result<Vec<(String, String, String)>, Problem> {
        let log = self.git(&[
            "log",
            "--format=%H%x1f%an%x1f%B%x1e",
            &format!("{base}..{head}"),
        ])?;
        Ok(log
            .split('\x1e')
            .filter_map(|c| {
                let mut parts = c.trim().splitn(3, '\x1f');
                let sha = parts.next()?.to_owned();
                let author = parts.next()?.to_owned();
                let message = parts.next().unwrap_or_default().to_owned();
                (!sha.is_empty()).then_some((sha, author, message))
            })
            .collect())
    }

    /// The pin production has: the pin file on the base branch.
    pub(super) fn production(&self, base: &str, pin_file: &str) -> Option<Pin> {
        self.show(base, pin_file)
            .and_then(|text| Pin::parse(&text).ok())
    }

    /// Proposes `prepared`: the promotion branch rebuilt on the base with one commit of the pin
    /// file (only over commits of this tool), and the body in `body_file`. `None` when
    /// production already pins the model.
    pub(super) fn propose(
        &self,
        prepared: &Prepared,
        body_file: &Path,
    ) -> Result<Option<Proposal>, Problem> {
        let p = &prepared.p;
        let base = &p.base_branch;
        let current = self.production(base, &p.pin_file);
        if current.as_ref().is_some_and(|c| c.same_model(&p.pin)) {
            return Ok(None);
        }
        let branch = p.branch();
        if self.tip(&branch).is_some() {
            let foreign: Vec<_> = self
                .commits(base, &branch)?
                .into_iter()
                .filter(|(_, _, message)| !mlops_github::has_trailer(message, TRAILER))
                .collect();
            if let Some((sha, author, _)) = foreign.first() {
                return Err(refused(
                    format!(
                        "{branch} in {} has a commit that mlops did not make ({} by {author}); not overwriting it",
                        self.dir.display(),
                        mlops_artifacts::short(sha)
                    ),
                    "move that commit to another branch (or delete the branch), then run again",
                ));
            }
        }
        self.git(&["checkout", "-q", "-B", &branch, base])?;
        let pin_path = self.dir.join(&p.pin_file);
        let written = pin_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&pin_path, p.pin.to_yaml("production")));
        if let Err(e) = written {
            let _ = self.git(&["checkout", "-q", "-f", base]);
            return Err(broken(
                format!("cannot write {}: {e}", pin_path.display()),
                "",
            ));
        }
        let committed = self
            .git(&["add", "--", &p.pin_file])
            .and_then(|_| self.git(&["commit", "-q", "-m", &p.commit_message()]))
            .and_then(|_| self.git(&["rev-parse", "HEAD"]));
        // The working tree goes back to production's state whatever happened.
        let back = self.git(&["checkout", "-q", "-f", base]);
        let head = committed?;
        back?;
        let mut full = p.clone();
        full.body = prepared.body(current.as_ref());
        let body = full.full_body();
        let document = format!(
            "# {}\n\n<!-- branch {branch} -> {base}, head {head}, in {} -->\n\n{body}",
            p.title,
            self.dir.display()
        );
        mlops_train::write_atomically(body_file, document.as_bytes())
            .map_err(|e| broken(format!("cannot write {}: {e}", body_file.display()), ""))?;
        Ok(Some(Proposal {
            branch,
            head,
            body_file: body_file.to_path_buf(),
            body,
            replaces: current.map(|c| c.reference()),
        }))
    }

    /// The gate's decision on `proposal`, with `approvals` local stand-in reviewers approving its
    /// head (GitHub's reviews are what count in a workflow; here nobody can review).
    pub(super) fn gate(
        &self,
        prepared: &Prepared,
        proposal: &Proposal,
        approvals: u32,
        no_regression: bool,
    ) -> Result<(Decision, Vec<String>), Problem> {
        let p = &prepared.p;
        let base = &p.base_branch;
        let files = self.git(&[
            "diff",
            "--name-only",
            &format!("{base}...{}", proposal.branch),
        ])?;
        let foreign_commits = self
            .commits(base, &proposal.branch)?
            .into_iter()
            .filter(|(_, _, message)| !mlops_github::has_trailer(message, TRAILER))
            .map(|(sha, author, message)| {
                let first = message.lines().next().unwrap_or_default();
                (
                    sha,
                    author,
                    format!("(\"{first}\") has no `{TRAILER}` trailer"),
                )
            })
            .collect();
        let stand_ins: Vec<String> = (1..=approvals.max(1))
            .map(|i| format!("local-reviewer-{i}"))
            .collect();
        let mut allowed: BTreeMap<String, String> = p
            .reviewers
            .iter()
            .map(|u| (u.clone(), "listed reviewer".to_owned()))
            .collect();
        for s in &stand_ins {
            allowed.insert(s.clone(), "a local stand-in reviewer".to_owned());
        }
        let statuses = prepared
            .report_digest()
            .map(|digest| CommitStatus {
                state: "success".to_owned(),
                description: format!("holdout passed; report sha256:{digest}"),
                creator: AUTHOR.to_owned(),
            })
            .into_iter()
            .collect();
        let facts = Facts {
            number: 0,
            author: AUTHOR.to_owned(),
            body: proposal.body.clone(),
            head_ref: proposal.branch.clone(),
            // The local promotion repository has no forks: the branch is in it.
            head_repo: p.repo.full(),
            head_sha: proposal.head.clone(),
            evidence_sha: proposal.head.clone(),
            base_ref: base.clone(),
            files: files.lines().map(str::to_owned).collect(),
            foreign_commits,
            // A local run has no GitHub identities to keep apart: the stand-ins approve.
            started_by: Vec::new(),
            pushers: Vec::new(),
            reviews: stand_ins
                .iter()
                .map(|login| Review {
                    login: login.clone(),
                    bot: false,
                    state: "APPROVED".to_owned(),
                    commit_id: proposal.head.clone(),
                })
                .collect(),
            allowed,
            unreadable_teams: Vec::new(),
            without_write: Vec::new(),
            statuses,
            pin: self
                .show(&proposal.head, &p.pin_file)
                .ok_or_else(|| format!("{} is missing at the head", p.pin_file))
                .and_then(|text| Pin::parse(&text)),
            base_pin: self
                .show(base, &p.pin_file)
                .map(|text| Pin::parse(&text))
                .transpose(),
            base_previous_pin: self
                .git(&["log", "-n", "1", "--format=%H", base, "--", &p.pin_file])
                .ok()
                .map(|last| last.trim().to_owned())
                .filter(|last| !last.is_empty())
                .and_then(|last| self.show(&format!("{last}^"), &p.pin_file))
                .map(|text| Pin::parse(&text))
                .transpose(),
        };
        let policy = Policy {
            repo: p.repo.clone(),
            project: p.project.clone(),
            base_branch: base.clone(),
            pin_file: p.pin_file.clone(),
            required_approvals: approvals,
            reviewers: p.reviewers.clone(),
            teams: Vec::new(),
            no_regression,
            // The local loop deploys production from its own merge, never from a revert.
            immediate_rollback: false,
        };
        Ok((gate::decide(&policy, &facts), stand_ins))
    }

    /// Merges the approved promotion branch into the base (fast-forward only: what was approved
    /// is exactly what lands) and returns the pin the base now holds.
    pub(super) fn merge(&self, prepared: &Prepared, proposal: &Proposal) -> Result<Pin, Problem> {
        let p = &prepared.p;
        let tip = self.tip(&proposal.branch);
        if tip.as_deref() != Some(proposal.head.as_str()) {
            return Err(refused(
                format!(
                    "{} moved after the gate approved {}",
                    proposal.branch, proposal.head
                ),
                "run again: the gate decides on the head it merges",
            ));
        }
        self.git(&["checkout", "-q", &p.base_branch])?;
        self.git(&["merge", "-q", "--ff-only", &proposal.head])?;
        let text = self.show(&p.base_branch, &p.pin_file).ok_or_else(|| {
            broken(
                format!(
                    "{} is missing on {} after the merge",
                    p.pin_file, p.base_branch
                ),
                "",
            )
        })?;
        Pin::parse(&text).map_err(|e| broken(format!("{}: {e}", p.pin_file), ""))
    }
}
