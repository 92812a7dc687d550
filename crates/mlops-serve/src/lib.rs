//! The prediction service behind `mlops serve`: request bodies to feature rows ([`body`]), the
//! HTTP routes of SageMaker's inference container contract ([`server`]) and of the Open Inference
//! Protocol ([`v2`]), data capture ([`capture`]), and the counters on `/metrics`. Models load and predict through `mlops_train::predict`, the same code the
//! training-time holdout scoring and the holdout test's parity check use.

pub mod body;
pub mod capture;
mod connection;
mod limits;
pub mod server;
mod stats;
pub mod v2;

pub use limits::Limits;
pub use server::{Identity, Service};
