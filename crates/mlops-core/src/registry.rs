//! `mlops registry`'s changes: a version approved or rejected in the registry and, when
//! SageMaker trained it, in the model package group beside it (the package first, so that a
//! failure there leaves both as they were); a version's card and its package read.

use mlops_aws::{AwsError, Package, SageMaker};
use mlops_registry::{Entry, ModelRef, Registry, Status};
use mlops_train::card::ModelCard;

use crate::{Problem, Progress};

/// The model package ARN recorded in a version's card (SageMaker-trained versions).
fn package_arn(card: &ModelCard) -> Option<String> {
    card.sagemaker.as_ref()?.model_package_arn.clone()
}

/// Runs one SageMaker call to completion.
pub fn on_sagemaker<T>(
    call: impl AsyncFnOnce(SageMaker) -> Result<T, AwsError>,
) -> Result<T, Problem> {
    let rt = mlops_aws::runtime()?;
    Ok(rt.block_on(async { call(SageMaker::from_env().await).await })?)
}

/// The version `reference` resolves to, its card, and its model package when it has one.
pub fn show(
    registry: &Registry,
    reference: &ModelRef,
) -> Result<(Entry, ModelCard, Option<Package>), Problem> {
    let entry = registry.resolve(reference)?;
    let card = registry.card(&entry.model, entry.version)?;
    let package = match package_arn(&card) {
        Some(arn) => Some(on_sagemaker(async |sm| sm.package(&arn).await)?),
        None => None,
    };
    Ok((entry, card, package))
}

/// Approves or rejects the version `reference` resolves to: its model package first (when
/// SageMaker trained it), then the registry. The entry as it now stands.
pub fn set_status(
    registry: &Registry,
    reference: &ModelRef,
    status: Status,
    reason: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Entry, Problem> {
    let entry = registry.resolve(reference)?;
    let card = registry.card(&entry.model, entry.version)?;
    let reason = reason.map_or_else(
        || format!("{} with `mlops registry`", status.name()),
        str::to_owned,
    );
    if let Some(arn) = package_arn(&card) {
        let approved = status == Status::Approved;
        on_sagemaker(async |sm| sm.set_approval(&arn, approved, &reason).await)?;
        progress.step(&format!("model package {arn} is {}", status.name()));
    }
    Ok(registry.set_status(reference, status, &reason)?)
}
