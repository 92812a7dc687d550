//! What the flows that talk to GitHub share: the token and client from the environment, the
//! promotion repository the manifest names, and a failed call as a [`Problem`].

use mlops_github::{ApiError, Config, GitHub, Repo};
use mlops_manifest::Manifest;
use mlops_manifest::model::Promotion;

use crate::Problem;

/// The token: `MLOPS_GITHUB_TOKEN`, else `GITHUB_TOKEN`.
pub fn token() -> Option<String> {
    ["MLOPS_GITHUB_TOKEN", "GITHUB_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|t| t.trim().to_owned())
}

/// Whether the token is the workflow's own `GITHUB_TOKEN` (the actions set
/// `MLOPS_DEFAULT_TOKEN=true` when the `token` input is `github.token`).
pub fn is_default_token() -> bool {
    std::env::var("MLOPS_DEFAULT_TOKEN").is_ok_and(|v| v == "true")
}

/// The async runtime the GitHub calls run on and a client made inside it (octocrab's client
/// starts its service on the runtime it is built in). `api_url`: `--github-api-url`, else
/// `GITHUB_API_URL`, else GitHub's.
pub fn connect(api_url: Option<&str>) -> Result<(tokio::runtime::Runtime, GitHub), Problem> {
    let rt = crate::runtime::current_thread()?;
    let gh = {
        let _entered = rt.enter();
        client(api_url)?
    };
    Ok((rt, gh))
}

fn client(api_url: Option<&str>) -> Result<GitHub, Problem> {
    let Some(token) = token() else {
        return Err(Problem::input(
            "no GitHub token: set GITHUB_TOKEN (or MLOPS_GITHUB_TOKEN)",
            "in a workflow, pass a token to the action's `token` input; locally, e.g. `GITHUB_TOKEN=$(gh auth token)`",
        ));
    };
    let api_url = api_url
        .map(str::to_owned)
        .or_else(|| std::env::var("GITHUB_API_URL").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "https://api.github.com".to_owned());
    let mut config = Config {
        api_url,
        ..Config::default()
    };
    // Tests shorten the backoff; production keeps the default.
    if let Some(ms) = std::env::var("MLOPS_GITHUB_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.backoff = std::time::Duration::from_millis(ms);
    }
    GitHub::new(&token, config).map_err(|e| {
        Problem::input(
            e,
            "set GITHUB_API_URL to the API's base URL, e.g. https://api.github.com",
        )
    })
}

/// The manifest's promotion section and the repository it promotes in.
pub fn promotion(m: &Manifest) -> Result<(Promotion, Repo), Problem> {
    let Some(p) = m.promotion.clone() else {
        return Err(Problem::input(
            "the manifest has no `promotion` section",
            "add `promotion:` with at least `pin_file` and `reviewers` (see the README, Promotion)",
        ));
    };
    let full = mlops_manifest::promotion_repository(m).to_owned();
    match Repo::parse(&full) {
        Some(r) => Ok((p, r)),
        None => Err(Problem::input(
            format!("`{full}` is not OWNER/REPO"),
            "set `promotion.repository` or `project.repository`",
        )),
    }
}

/// A failed GitHub call: broken, with `hint` or one from the status.
pub fn failed(e: &ApiError, hint: &str) -> Problem {
    // A server error says nothing about the token: GitHub failed, and a POST it failed on is
    // not sent again (it may have been done), so say how to finish.
    let hint = if e.status.is_some_and(|s| s >= 500) || e.status.is_none() && e.method == "POST" {
        "GitHub failed on its side; run the command again: it finds what was already done and \
         finishes the rest"
            .to_owned()
    } else if !hint.is_empty() {
        hint.to_owned()
    } else if e.status == Some(401) {
        "the token is invalid or expired".to_owned()
    } else if matches!(e.status, Some(403 | 404)) {
        "check that the token can see the repository and has the permissions named".to_owned()
    } else {
        String::new()
    };
    Problem::broken(e.to_string(), hint)
}
