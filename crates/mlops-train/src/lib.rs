//! Local training: datasets streamed and hashed ([`data`]), the burn networks ([`model`]), the
//! training loop ([`train`]), evaluation metrics ([`metrics`]) and the model registry
//! ([`registry`]).

pub mod data;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod train;
pub mod worker;
