//! What a serving mlops reports on `GET /version`: which model and artifact it serves, with the
//! model's signature and the service's limits. `mlops serve` writes it; the deploys, `mlops run`
//! and the holdout test read it to know what a service serves.

use serde::{Deserialize, Serialize};

use crate::training::Signature;

/// The `GET /version` document. Only `artifact_sha256` is required of a service: a compatible
/// one that reports no more is still read (`model` then unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceVersion {
    /// `NAME@VERSION`, when known (from the registry or a `card.json` beside the artifact).
    #[serde(default)]
    pub model: Option<String>,
    /// The served artifact's digest (`ArtifactDigest::sha256`).
    pub artifact_sha256: String,
    /// The SHA-256 of the manifest the model was trained from, when known.
    #[serde(default)]
    pub manifest_sha256: Option<String>,
    /// Where the artifact was loaded from.
    #[serde(default)]
    pub source: String,
    /// The serving mlops's version.
    #[serde(default)]
    pub mlops: Option<String>,
    /// The inputs the model takes and the outputs it gives.
    #[serde(default)]
    pub signature: Option<Signature>,
    #[serde(default)]
    pub limits: Option<ServiceLimits>,
}

/// What one request may carry (413 above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceLimits {
    pub max_body_bytes: u64,
    pub max_rows: u64,
}

impl ServiceVersion {
    /// What it serves, in a few words: `NAME@VERSION (artifact 0123456789ab)`.
    pub fn shown(&self) -> String {
        format!(
            "{} (artifact {})",
            self.model.as_deref().unwrap_or("an unnamed model"),
            self.artifact_sha256
                .get(..12)
                .unwrap_or(&self.artifact_sha256)
        )
    }
}

/// The `/version` schema's `$id`.
pub const SCHEMA_ID: &str = "https://mlops-rs.github.io/schema/v1/version.schema.json";

/// The `/version` document's JSON Schema, generated from [`ServiceVersion`].
pub fn schema_text() -> String {
    crate::schema_text::<ServiceVersion>(SCHEMA_ID, "mlops service version")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that reports only its artifact is read (its model unknown); one without an
    /// artifact digest is not a version document.
    #[test]
    fn a_minimal_document_reads_and_one_without_a_digest_does_not() {
        let v: ServiceVersion =
            serde_json::from_str(r#"{"artifact_sha256": "0123456789abcdef0123"}"#).expect("reads");
        assert_eq!(v.model, None);
        assert_eq!(v.shown(), "an unnamed model (artifact 0123456789ab)");
        let full: ServiceVersion = serde_json::from_str(
            r#"{"model": "digits@3", "artifact_sha256": "ab", "source": "s3://b/r/digits/3", "limits": {"max_body_bytes": 10, "max_rows": 2}}"#,
        )
        .expect("reads");
        assert_eq!(full.shown(), "digits@3 (artifact ab)");
        assert!(serde_json::from_str::<ServiceVersion>(r#"{"model": "digits@3"}"#).is_err());
    }
}
