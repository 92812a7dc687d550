//! What the monitor workflow does on GitHub when production drifted: one issue per model, opened
//! or updated (found again by a hidden marker, never duplicated), and the train workflow
//! dispatched on the default branch, whose release goes through the holdout test and the gate
//! like any other.

use serde_json::{Value, json};

use crate::Repo;
use crate::client::{ApiError, GitHub};

/// The label of the drift issue.
pub const LABEL: &str = "mlops-drift";

/// The hidden marker that identifies the drift issue of `project`'s `model`.
pub fn marker(project: &str, model: &str) -> String {
    format!("<!-- mlops:drift project={project} model={model} -->")
}

/// What [`report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Opened(u64),
    /// Its body was replaced with the new report and a comment says so.
    Updated(u64),
}

impl Reported {
    pub fn number(&self) -> u64 {
        match self {
            Reported::Opened(n) | Reported::Updated(n) => *n,
        }
    }
}

/// Opens the drift issue of `project`'s `model` in `repo` with `body` (the report), or, when one
/// is open, replaces its body and comments `comment` on it.
pub async fn report(
    gh: &GitHub,
    repo: &Repo,
    project: &str,
    model: &str,
    title: &str,
    body: &str,
    comment: &str,
) -> Result<Reported, ApiError> {
    let mark = marker(project, model);
    let full = format!("{body}\n\n{mark}\n");
    let open = gh
        .list(
            &format!("/repos/{}/issues?state=open&labels={LABEL}", repo.full()),
            10,
        )
        .await?;
    // The list holds pull requests too (they are issues to GitHub); ours is an issue with the
    // marker, whoever else writes in the repository.
    let ours = open.iter().find(|i| {
        i.get("pull_request").is_none()
            && i.get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| b.contains(&mark))
    });
    if let Some(number) = ours.and_then(|i| i.get("number")).and_then(Value::as_u64) {
        let path = format!("/repos/{}/issues/{number}", repo.full());
        gh.patch(&path, &json!({ "title": title, "body": full }))
            .await?;
        gh.post(&format!("{path}/comments"), &json!({ "body": comment }))
            .await?;
        return Ok(Reported::Updated(number));
    }
    let created = gh
        .post(
            &format!("/repos/{}/issues", repo.full()),
            &json!({ "title": title, "body": full, "labels": [LABEL] }),
        )
        .await?;
    let number = created.get("number").and_then(Value::as_u64).unwrap_or(0);
    Ok(Reported::Opened(number))
}

/// Dispatches `workflow` (a file name under `.github/workflows/`) on `git_ref` with `inputs`
/// (which the workflow must declare).
pub async fn dispatch(
    gh: &GitHub,
    repo: &Repo,
    workflow: &str,
    git_ref: &str,
    inputs: &[(&str, &str)],
) -> Result<(), ApiError> {
    let inputs: serde_json::Map<String, Value> = inputs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    let body = if inputs.is_empty() {
        json!({ "ref": git_ref })
    } else {
        json!({ "ref": git_ref, "inputs": inputs })
    };
    gh.post(
        &format!(
            "/repos/{}/actions/workflows/{workflow}/dispatches",
            repo.full()
        ),
        &body,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_project_and_model() {
        assert_eq!(
            marker("digits", "digits-mlp"),
            "<!-- mlops:drift project=digits model=digits-mlp -->"
        );
        assert_eq!(Reported::Updated(7).number(), 7);
    }
}
