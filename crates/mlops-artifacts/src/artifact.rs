//! A model artifact's files and their digest: what the registry records at registration and
//! what serving, the holdout test and the deploys check before they trust an artifact.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The weights file of a model artifact mlops trained (burn).
pub const WEIGHTS: &str = "model.safetensors";
/// The model file of an artifact brought as ONNX (its graph and weights).
pub const ONNX: &str = "model.onnx";
/// The bundle file (architecture, features, standardisation, classes) of a model artifact.
pub const BUNDLE: &str = "model.json";

/// The files a model artifact may hold, in the order they are digested: the bundle and one
/// model file (burn's weights or an ONNX graph).
pub const ARTIFACT_FILES: [&str; 3] = [BUNDLE, WEIGHTS, ONNX];

/// The model files, one of which an artifact holds beside the bundle.
pub const MODEL_FILES: [&str; 2] = [WEIGHTS, ONNX];

/// The SHA-256 of each artifact file and of the artifact as a whole. The whole digest is the
/// SHA-256 of the lines `<file sha256>  <name>\n` of the files it holds, in [`ARTIFACT_FILES`]
/// order, which is what `sha256sum model.json model.safetensors | sha256sum` (or `model.onnx`)
/// prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactDigest {
    pub sha256: String,
    pub files: BTreeMap<String, String>,
}

/// Bytes (a digest) as lowercase hex: how every digest mlops records is written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl ArtifactDigest {
    /// The digest of the artifact files' contents, by name.
    pub fn of(files: &BTreeMap<String, Vec<u8>>) -> Self {
        let mut listing = String::new();
        let mut digests = BTreeMap::new();
        for name in ARTIFACT_FILES {
            let Some(bytes) = files.get(name) else {
                continue;
            };
            let h = sha256_hex(bytes);
            listing.push_str(&format!("{h}  {name}\n"));
            digests.insert(name.to_owned(), h);
        }
        Self {
            sha256: sha256_hex(listing.as_bytes()),
            files: digests,
        }
    }

    /// The digest of the artifact files in `dir`.
    pub fn of_dir(dir: &Path) -> Result<Self, String> {
        Ok(Self::of(&read_artifact(dir)?))
    }
}

/// The names of the artifact files in `dir`: the bundle and its one model file.
pub fn artifact_files_in(dir: &Path) -> Result<Vec<&'static str>, String> {
    let models: Vec<&'static str> = MODEL_FILES
        .into_iter()
        .filter(|m| dir.join(m).is_file())
        .collect();
    match models.as_slice() {
        [one] => Ok(vec![BUNDLE, one]),
        [] => Err(format!(
            "{} holds no model file ({} or {})",
            dir.display(),
            WEIGHTS,
            ONNX
        )),
        _ => Err(format!(
            "{} holds both {WEIGHTS} and {ONNX}: an artifact is one model",
            dir.display()
        )),
    }
}

/// The artifact files in `dir`, read whole (they are what gets loaded: hashing the same bytes
/// that are loaded leaves no window for a swap in between).
pub fn read_artifact(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    for name in artifact_files_in(dir)? {
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        files.insert(name.to_owned(), bytes);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_digest_is_sha256sum_of_the_listing() {
        let files = BTreeMap::from([
            ("model.json".to_owned(), b"{}".to_vec()),
            ("model.safetensors".to_owned(), b"weights".to_vec()),
        ]);
        let d = ArtifactDigest::of(&files);
        let listing = format!(
            "{}  model.json\n{}  model.safetensors\n",
            sha256_hex(b"{}"),
            sha256_hex(b"weights")
        );
        assert_eq!(d.sha256, sha256_hex(listing.as_bytes()));
        assert_eq!(d.files["model.json"], sha256_hex(b"{}"));
        let mut changed = files.clone();
        changed.insert("model.json".to_owned(), b"{ }".to_vec());
        assert_ne!(ArtifactDigest::of(&changed).sha256, d.sha256);
        // An ONNX artifact lists its model file under its own name.
        let onnx = BTreeMap::from([
            ("model.json".to_owned(), b"{}".to_vec()),
            ("model.onnx".to_owned(), b"weights".to_vec()),
        ]);
        let listing = format!(
            "{}  model.json\n{}  model.onnx\n",
            sha256_hex(b"{}"),
            sha256_hex(b"weights")
        );
        let o = ArtifactDigest::of(&onnx);
        assert_eq!(o.sha256, sha256_hex(listing.as_bytes()));
        assert_eq!(
            o.files.keys().collect::<Vec<_>>(),
            ["model.json", "model.onnx"]
        );
    }

    #[test]
    fn a_directory_holds_one_model_file() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(BUNDLE), b"{}").expect("write");
        let m = read_artifact(d.path()).expect_err("no model");
        assert!(m.contains("no model file"), "{m}");
        std::fs::write(d.path().join(ONNX), b"graph").expect("write");
        assert_eq!(artifact_files_in(d.path()), Ok(vec![BUNDLE, ONNX]));
        assert_eq!(read_artifact(d.path()).expect("reads").len(), 2);
        std::fs::write(d.path().join(WEIGHTS), b"weights").expect("write");
        let m = read_artifact(d.path()).expect_err("two models");
        assert!(m.contains("both"), "{m}");
    }
}
