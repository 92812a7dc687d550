//! Promotion through GitHub: the production pin file ([`pin`]), the promotion pull request
//! ([`promote`]), the approval gate ([`gate`]), CODEOWNERS ([`codeowners`]) and the REST client
//! they share ([`client`], octocrab underneath).
//!
//! What marks our work on GitHub:
//! - the branch `mlops/promote/<model>` ([`branch_for`]);
//! - a hidden marker in the PR body, `<!-- mlops:promotion project=P model=M -->` ([`marker`]);
//! - the trailer `Mlops-Promotion: <model>@<version>` in every commit message ([`TRAILER`]),
//!   with `Mlops-Started-By: <login>` naming who started the run ([`STARTED_BY`]);
//! - the commit status `mlops/holdout` on the PR's head ([`STATUS_CONTEXT`]).

pub mod body;
pub mod client;
pub mod codeowners;
pub mod doctor;
pub mod drift;
pub mod gate;
/// The pin file, in `mlops-artifacts` with the other files mlops writes and reads back.
pub use mlops_artifacts::pin;
pub mod promote;
pub mod revert;

pub use client::{ApiError, Config, GitHub};

/// Reading GitHub's JSON answers field by field: a field that is missing (or a value that is not
/// an object or array) reads as `Null`, as `serde_json`'s indexing gives, without the indexing
/// operator, which the lints treat as a possible panic (and which does panic when assigning).
pub(crate) trait Field {
    /// The field `key` of an object.
    fn at(&self, key: &str) -> &serde_json::Value;
    /// Element `i` of an array.
    fn nth(&self, i: usize) -> &serde_json::Value;
    /// The text of the field `key`, empty when it is missing or not text.
    fn text(&self, key: &str) -> &str {
        self.at(key).as_str().unwrap_or_default()
    }
}

impl Field for serde_json::Value {
    fn at(&self, key: &str) -> &serde_json::Value {
        self.get(key).unwrap_or(&serde_json::Value::Null)
    }

    fn nth(&self, i: usize) -> &serde_json::Value {
        self.get(i).unwrap_or(&serde_json::Value::Null)
    }
}

/// The commit-message trailer of every commit `mlops promote` makes.
pub const TRAILER: &str = "Mlops-Promotion:";

/// The commit-message trailer naming a person who started the run that promoted (the gate does
/// not count their approval).
pub const STARTED_BY: &str = "Mlops-Started-By:";

/// Whether a commit message carries `trailer` as a line of its own.
pub fn has_trailer(message: &str, trailer: &str) -> bool {
    message.lines().any(|l| l.trim_start().starts_with(trailer))
}

/// The values of `trailer`'s lines in a commit message.
pub fn trailer_values(message: &str, trailer: &str) -> Vec<String> {
    message
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(trailer))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// A GitHub login (letters, digits and hyphens; an App's ends in `[bot]`): it goes into a
/// commit-message trailer, so nothing else may.
pub fn parse_login(text: &str) -> Result<String, String> {
    let t = text.trim();
    let name = t.strip_suffix("[bot]").unwrap_or(t);
    if !name.is_empty()
        && name.len() <= 39
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(t.to_owned())
    } else {
        Err("must be a GitHub login (letters, digits and hyphens, at most 39)".to_owned())
    }
}

/// The branch `mlops deploy --commit-pin` commits staging's pin file to, in the promotion
/// repository: never the base branch, whose pin file is production's, so the token that
/// updates staging needs no way around the base branch's rules.
pub const STAGING_BRANCH: &str = "mlops/staging";

/// The commit status context carrying the holdout result.
pub const STATUS_CONTEXT: &str = "mlops/holdout";

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn parse(s: &str) -> Option<Repo> {
        let (owner, name) = s.split_once('/')?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        Some(Repo {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn full(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// The promotion branch of a model.
pub fn branch_for(model: &str) -> String {
    mlops_manifest::promotion_branch(model)
}

/// The hidden marker that identifies a promotion PR of `project` for `model`.
pub fn marker(project: &str, model: &str) -> String {
    format!("<!-- mlops:promotion project={project} model={model} -->")
}

/// The model a body's marker names, when the marker is for `project`.
pub fn marked_model(body: &str, project: &str) -> Option<String> {
    let (_, rest) = body.split_once("<!-- mlops:promotion ")?;
    let (inside, _) = rest.split_once("-->")?;
    let mut found_project = None;
    let mut model = None;
    for word in inside.split_whitespace() {
        match word.split_once('=') {
            Some(("project", p)) => found_project = Some(p),
            Some(("model", m)) => model = Some(m),
            _ => {}
        }
    }
    (found_project == Some(project)).then_some(model?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_project_and_model() {
        let body = format!("text\n{}\n", marker("digits", "digits-mlp"));
        assert_eq!(marked_model(&body, "digits").as_deref(), Some("digits-mlp"));
        assert_eq!(marked_model(&body, "other"), None);
        assert_eq!(marked_model("no marker", "digits"), None);
        assert_eq!(Repo::parse("a/b").map(|r| r.full()).as_deref(), Some("a/b"));
        assert_eq!(Repo::parse("a/b/c"), None);
    }
}
