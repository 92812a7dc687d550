//! What `promote` and `gate` share: the GitHub client from the environment, the promotion
//! repository, and how GitHub failures are reported.

use mlops_github::{ApiError, Config, GitHub, Repo};
use mlops_manifest::Manifest;
use mlops_manifest::model::Promotion;

use super::error;
use crate::cli::GithubArgs;
use crate::exit::Exit;

/// The token: `MLOPS_GITHUB_TOKEN`, else `GITHUB_TOKEN`.
pub(crate) fn token() -> Option<String> {
    ["MLOPS_GITHUB_TOKEN", "GITHUB_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|t| t.trim().to_owned())
}

/// Whether the token is the workflow's own `GITHUB_TOKEN` (the actions set
/// `MLOPS_DEFAULT_TOKEN=true` when the `token` input is `github.token`).
pub(crate) fn is_default_token() -> bool {
    std::env::var("MLOPS_DEFAULT_TOKEN").is_ok_and(|v| v == "true")
}

/// The async runtime the GitHub calls run on and a client made inside it (octocrab's client starts
/// its service on the runtime it is built in).
pub(crate) fn connect(args: &GithubArgs) -> Result<(tokio::runtime::Runtime, GitHub), Exit> {
    let rt = super::client_runtime()?;
    let gh = {
        let _entered = rt.enter();
        client(args)?
    };
    Ok((rt, gh))
}

/// A client, or exit 2 when there is no token.
fn client(args: &GithubArgs) -> Result<GitHub, Exit> {
    let Some(token) = token() else {
        error(
            "no GitHub token: set GITHUB_TOKEN (or MLOPS_GITHUB_TOKEN)",
            "in a workflow, pass a token to the action's `token` input; locally, e.g. `GITHUB_TOKEN=$(gh auth token)`",
        );
        return Err(Exit::Usage);
    };
    let api_url = args
        .github_api_url
        .clone()
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
        error(
            &e,
            "set GITHUB_API_URL to the API's base URL, e.g. https://api.github.com",
        );
        Exit::Usage
    })
}

/// The manifest's promotion section, or exit 2.
pub(crate) fn promotion(m: &Manifest) -> Result<(Promotion, Repo), Exit> {
    let Some(p) = m.promotion.clone() else {
        error(
            "the manifest has no `promotion` section",
            "add `promotion:` with at least `pin_file` and `reviewers` (see the README, Promotion)",
        );
        return Err(Exit::Usage);
    };
    let full = p
        .repository
        .clone()
        .unwrap_or_else(|| m.project.repository.clone());
    match Repo::parse(&full) {
        Some(r) => Ok((p, r)),
        None => {
            error(
                &format!("`{full}` is not OWNER/REPO"),
                "set `promotion.repository` or `project.repository`",
            );
            Err(Exit::Usage)
        }
    }
}

/// Reports a failed GitHub call; exit 3.
pub(crate) fn failed(e: &ApiError, hint: &str) -> Exit {
    let hint = if !hint.is_empty() {
        hint.to_owned()
    } else if e.status == Some(401) {
        "the token is invalid or expired".to_owned()
    } else if matches!(e.status, Some(403 | 404)) {
        "check that the token can see the repository and has the permissions named".to_owned()
    } else {
        String::new()
    };
    error(&e.to_string(), &hint);
    Exit::Runtime
}
