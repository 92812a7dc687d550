//! Local training: datasets streamed and hashed ([`data`]), evaluation metrics ([`metrics`]).

pub mod data;
pub mod metrics;
