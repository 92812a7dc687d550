//! The pin file: which model version an environment serves. `mlops promote` writes the
//! production pin through a pull request; `mlops gate` and `mlops deploy` read it.
//!
//! Format version 1 (YAML; keys in this order, written by [`Pin::to_yaml`]):
//!
//! ```yaml
//! version: 1
//! model:
//!   name: digits-mlp            # the registry's model name
//!   version: 3                  # the registry version
//!   registry: .mlops/registry   # where that version lives (a directory or s3:// prefix)
//!   artifact:
//!     uri: .mlops/registry/digits-mlp/3   # the model directory (model.json, model.safetensors)
//!     sha256: 64 hex digits               # the artifact digest recorded in the registry card
//!   image: null                 # the serving image by digest (REPOSITORY@sha256:...), if any
//! manifest_sha256: 64 hex digits  # the mlops.yaml the model was trained from
//! holdout:
//!   passed: true
//!   report_sha256: 64 hex digits  # the holdout report (`mlops holdout --report`) it passed
//!   compared_with:                # only when that report compared it with production
//!     model: digits-mlp@2         # the version production pinned
//!     artifact_sha256: 64 hex digits
//!     passed: true                # within promotion.no_regression
//! ```

use serde::{Deserialize, Serialize};

/// Format version of the pin files this build writes and reads.
pub const VERSION: u32 = 1;

/// The pin schema's `$id`.
pub const SCHEMA_ID: &str = "https://mlops-rs.github.io/schema/v1/pin.schema.json";

/// The pin's JSON Schema, generated from [`Pin`], as `schema/pin.schema.json` holds it.
pub fn schema_text() -> String {
    crate::schema_text::<Pin>(SCHEMA_ID, "mlops pin file")
}

/// The pin file (YAML) that says which model an environment serves: production's
/// (`promotion.pin_file`) is written by `mlops promote` on the promotion branch, and production
/// deploys exactly what the base branch's copy says; a URL staging target's is written by `mlops
/// deploy --commit-pin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The pin format's version.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    pub model: PinnedModel,
    /// The SHA-256 of the `mlops.yaml` the model was trained from.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub manifest_sha256: String,
    /// The holdout test the model passed through the staging service, when one did.
    #[serde(default)]
    pub holdout: Option<PinnedHoldout>,
}

/// The pinned model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinnedModel {
    /// The registry's model name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The registry version.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// Where the version is registered: a directory or an `s3://` prefix.
    pub registry: String,
    pub artifact: Artifact,
    /// The serving image by digest (`REPOSITORY@sha256:...`), if any.
    #[serde(default)]
    pub image: Option<String>,
}

/// Where the model's files are, and their digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// The model directory (`model.json`, `model.safetensors`).
    pub uri: String,
    /// The artifact digest recorded in the model card.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// The holdout result the promotion carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinnedHoldout {
    pub passed: bool,
    /// The SHA-256 of the holdout report (as `mlops holdout --report` wrote it, trailing
    /// whitespace aside) it passed.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub report_sha256: String,
    /// The comparison that report holds with the version production pinned when it was made
    /// (`mlops holdout --compare production`), when it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<PinnedComparison>,
}

/// The incumbent a promotion was compared with, and whether it stood the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinnedComparison {
    /// `NAME@VERSION` of the version production pinned.
    #[schemars(length(min = 3))]
    pub model: String,
    /// Its artifact's digest.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub artifact_sha256: String,
    /// Every metric of `promotion.no_regression` within its allowance.
    pub passed: bool,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl Pin {
    /// `NAME@VERSION`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.model.name, self.model.version)
    }

    /// Whether a service's `GET /version` document reports this pin: its model (`NAME@VERSION`)
    /// and its artifact's digest.
    pub fn is_reported_by(&self, version: &crate::service::ServiceVersion) -> bool {
        version.model.as_deref() == Some(self.reference().as_str())
            && version.artifact_sha256 == self.model.artifact.sha256
    }

    /// The file's text: a comment saying what it is, then the fields in a fixed order.
    pub fn to_yaml(&self, environment: &str) -> String {
        let m = &self.model;
        let by = if environment == "production" {
            "Written by `mlops promote`;\n# change it only through a promotion pull request."
        } else {
            "Written by `mlops deploy --commit-pin`."
        };
        let mut out = format!(
            "# The {environment} pin: the model {environment} serves. {by}\n\
             version: {}\nmodel:\n  name: {}\n  version: {}\n  registry: {}\n  artifact:\n    uri: {}\n    sha256: {}\n  image: {}\nmanifest_sha256: {}\n",
            self.version,
            quoted(&m.name),
            m.version,
            quoted(&m.registry),
            quoted(&m.artifact.uri),
            quoted(&m.artifact.sha256),
            m.image.as_deref().map_or_else(|| "null".to_owned(), quoted),
            quoted(&self.manifest_sha256),
        );
        match &self.holdout {
            Some(h) => {
                out.push_str(&format!(
                    "holdout:\n  passed: {}\n  report_sha256: {}\n",
                    h.passed,
                    quoted(&h.report_sha256)
                ));
                if let Some(c) = &h.compared_with {
                    out.push_str(&format!(
                        "  compared_with:\n    model: {}\n    artifact_sha256: {}\n    passed: {}\n",
                        quoted(&c.model),
                        quoted(&c.artifact_sha256),
                        c.passed
                    ));
                }
            }
            None => out.push_str("holdout: null\n"),
        }
        out
    }

    /// Reads a pin file's text.
    pub fn parse(text: &str) -> Result<Pin, String> {
        let node = mlops_manifest::yaml::parse(text, mlops_manifest::yaml::Limits::default())
            .map_err(|e| format!("not YAML: {e:?}"))?;
        let pin: Pin = serde_json::from_value(node.to_json()).map_err(|e| e.to_string())?;
        if pin.version != VERSION {
            return Err(format!(
                "pin format version {} (this mlops reads version {VERSION})",
                pin.version
            ));
        }
        Ok(pin)
    }

    /// Whether two pins name the same model artifact (the holdout evidence may differ).
    pub fn same_model(&self, other: &Pin) -> bool {
        self.model.name == other.model.name
            && self.model.version == other.model.version
            && self.model.artifact.sha256 == other.model.artifact.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> Pin {
        Pin {
            version: VERSION,
            model: PinnedModel {
                name: "digits-mlp".into(),
                version: 3,
                registry: ".mlops/registry".into(),
                artifact: Artifact {
                    uri: ".mlops/registry/digits-mlp/3".into(),
                    sha256: "a".repeat(64),
                },
                image: Some("1.dkr.ecr.eu-west-1.amazonaws.com/m@sha256:00".into()),
            },
            manifest_sha256: "b".repeat(64),
            holdout: Some(PinnedHoldout {
                passed: true,
                report_sha256: "c".repeat(64),
                compared_with: Some(PinnedComparison {
                    model: "digits-mlp@2".into(),
                    artifact_sha256: "d".repeat(64),
                    passed: true,
                }),
            }),
        }
    }

    #[test]
    fn a_service_reports_a_pin_only_with_its_model_and_artifact() {
        let p = pin();
        let version = |v: serde_json::Value| -> crate::service::ServiceVersion {
            serde_json::from_value(v).expect("a version document")
        };
        let reported = |model: &str, sha: &str| {
            p.is_reported_by(&version(
                serde_json::json!({"model": model, "artifact_sha256": sha}),
            ))
        };
        let sha = p.model.artifact.sha256.clone();
        assert!(reported(&p.reference(), &sha));
        assert!(!reported(&p.reference(), &"0".repeat(64)));
        assert!(!reported("other@1", &sha));
        assert!(!p.is_reported_by(&version(serde_json::json!({"artifact_sha256": sha}))));
    }

    #[test]
    fn only_production_s_pin_says_it_changes_through_a_promotion() {
        let production = pin().to_yaml("production");
        assert!(production.starts_with("# The production pin: the model production serves. Written by `mlops promote`;\n# change it only through a promotion pull request.\n"), "{production}");
        let staging = pin().to_yaml("staging");
        assert!(staging.starts_with("# The staging pin: the model staging serves. Written by `mlops deploy --commit-pin`.\nversion: "), "{staging}");
        assert_eq!(Pin::parse(&staging), Ok(pin()));
    }

    #[test]
    fn pins_round_trip_through_their_text() {
        let p = pin();
        let text = p.to_yaml("production");
        assert!(text.starts_with("# The production pin"));
        assert_eq!(Pin::parse(&text), Ok(p.clone()));
        let mut q = p.clone();
        q.model.image = None;
        if let Some(h) = q.holdout.as_mut() {
            h.compared_with = None;
        }
        assert_eq!(Pin::parse(&q.to_yaml("production")), Ok(q.clone()));
        q.holdout = None;
        assert_eq!(Pin::parse(&q.to_yaml("production")), Ok(q));
    }

    #[test]
    fn unknown_versions_and_fields_are_refused() {
        let text = pin()
            .to_yaml("production")
            .replace("version: 1\n", "version: 2\n");
        assert!(Pin::parse(&text).unwrap_err().contains("version 2"));
        let text = pin().to_yaml("production") + "extra: 1\n";
        assert!(Pin::parse(&text).unwrap_err().contains("extra"));
    }
}
