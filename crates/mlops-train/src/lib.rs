//! Local training (the datasets it reads are `mlops_data`'s): the burn networks ([`model`]), the
//! compute device ([`device`]), the training loop ([`train`]), evaluation metrics ([`metrics`]),
//! the model cards ([`card`]), and predictions from a saved artifact ([`predict`]).

pub mod adam;
pub mod checkpoint;
pub mod dense;
pub mod device;
pub mod import;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod train;
pub mod worker;

/// The model card, in `mlops-artifacts` (light enough for crates without the training stack).
pub use mlops_artifacts::card;

pub use mlops_artifacts::fs::write_atomically;
pub(crate) use mlops_artifacts::fs::write_json;
