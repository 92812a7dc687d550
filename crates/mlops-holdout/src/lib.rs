//! The holdout test behind `mlops holdout`: the holdout set streamed through a prediction
//! service ([`client`], [`run`]), scored with the same metric accumulators training uses, each
//! answer compared with the model's offline prediction of the same row, and the metrics compared
//! with the ones the registry recorded at training time ([`report`]).

pub mod client;
pub mod paired;
pub mod protocol;
pub mod report;
pub mod run;

pub use report::{Report, vouches};
pub use run::{Plan, RunError, run};
