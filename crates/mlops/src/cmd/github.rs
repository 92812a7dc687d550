//! What `promote`, `gate`, `deploy` and `doctor` share: [`mlops_core::github`]'s client and
//! promotion repository, their problems shown and turned into exit codes.

use mlops_github::{ApiError, GitHub, Repo};
use mlops_manifest::Manifest;
use mlops_manifest::model::Promotion;

use crate::cli::GithubArgs;
use crate::exit::Exit;

/// The runtime and the client, or the exit code after saying why not.
pub(crate) fn connect(args: &GithubArgs) -> Result<(tokio::runtime::Runtime, GitHub), Exit> {
    mlops_core::github::connect(args.github_api_url.as_deref()).map_err(|p| super::failed(&p))
}

/// The manifest's promotion section and repository, or exit 2.
pub(crate) fn promotion(m: &Manifest) -> Result<(Promotion, Repo), Exit> {
    mlops_core::github::promotion(m).map_err(|p| super::failed(&p))
}

/// Reports a failed GitHub call; exit 3.
pub(crate) fn failed(e: &ApiError, hint: &str) -> Exit {
    super::failed(&mlops_core::github::failed(e, hint))
}
