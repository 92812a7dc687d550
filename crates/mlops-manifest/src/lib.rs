//! The `mlops.yaml` manifest: its types ([`model`]), span-aware YAML loading ([`yaml`]), the JSON
//! Schema generated from the types ([`schema`]), the validation pipeline ([`check`]) with its
//! semantic rules ([`semantic`]), and the diagnostics every step reports ([`diagnostic`]).
//!
//! Architecture invariant: every diagnostic carries the file, line and column of the node the
//! user has to change; nothing here prints or exits, callers decide how to show a [`Report`].

pub mod check;
pub mod diagnostic;
pub mod model;
pub mod schema;
pub mod semantic;
pub mod yaml;

pub use check::{MAX_BYTES, ReadError, Report, check_bytes, check_file, check_together};
pub use diagnostic::{Diagnostic, Severity};
pub use model::Manifest;

/// The branch a promotion pull request of `model` comes from. Rendered workflows (the gate
/// runs only for it) and `mlops promote` (which pushes it) both take the name from here.
pub fn promotion_branch(model: &str) -> String {
    format!("mlops/promote/{model}")
}
