//! `mlops promote`: the arguments to a [`mlops_core::promote::Request`], then the pull request
//! (or the dry run) shown. Exit 0 opened, updated, unchanged or already in production; 1 refused
//! (a failed holdout report, a rejected model, a preflight error, a human's commit on the
//! promotion branch); 2 bad input; 3 GitHub failed.

use mlops_core::promote::{self as core, Prepared};

use super::valid_manifest;
use crate::cli::{Format, PromoteArgs};
use crate::exit::Exit;

/// The promotion the arguments ask for, prepared (also `deploy --rollback`'s, with its own
/// title and preface).
pub(crate) fn prepare(args: &PromoteArgs, format: Format) -> Result<Prepared, Exit> {
    let (m, _) = valid_manifest(&args.registry.manifest, format, "nothing promoted")?;
    let registry = super::registry(&args.registry, format)?;
    core::prepare(core::Request {
        manifest: &m,
        registry,
        model: args.model.clone(),
        holdout_report: args.holdout_report.clone(),
        image: args.image.clone(),
        started_by: args.started_by.clone(),
    })
    .map_err(|p| super::failed(&p))
}

pub(crate) fn run(args: &PromoteArgs, format: Format) -> Exit {
    match prepare(args, format) {
        Ok(prepared) => crate::proposal::propose(
            &prepared,
            args.github.github_api_url.as_deref(),
            args.dry_run,
            format,
        ),
        Err(code) => code,
    }
}
