//! The model registry, in a local directory or under an `s3://` prefix: one directory (or key
//! prefix) per model version, written whole or not at all, with an immutable model card and a
//! status that `approve`/`reject` change.
//!
//! ```text
//! <registry>/<model>/<version>/model.safetensors   the weights
//!                              model.json          architecture, feature signature, standardizer
//!                              card.json           the model card (never rewritten), with the
//!                                                  artifact's SHA-256 (`ArtifactDigest`)
//!                              status.json         pending | approved | rejected, why, when
//!                              holdout/DIGEST.json the holdout tests run on it, each report
//!                                                  under its digest ([`report_digest`])
//! ```
//!
//! Versions are 1, 2, 3… per model; two runs registering at once get two different versions.
//! Locally a version is staged in a hidden directory beside the others and renamed into place.
//! On S3, where nothing renames, a run claims the version number by writing `<version>/.claim`
//! with a conditional write (`If-None-Match: *`: exactly one writer wins), uploads the weights,
//! `model.json` and the card, and writes `status.json` last; only versions with a `status.json`
//! exist for listing and resolving, so a run that died half-way leaves an unlisted, skipped
//! number, never a half version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use mlops_artifacts::artifact::{ARTIFACT_FILES, ArtifactDigest, MODEL_FILES, artifact_files_in};
use mlops_artifacts::card::ModelCard;

/// The files a version holds besides its card and status.
pub use mlops_artifacts::artifact::{BUNDLE, ONNX, WEIGHTS};

const CARD: &str = "card.json";
const STATUS: &str = "status.json";
/// Where a version keeps the reports of the holdout tests run on it.
const HOLDOUT: &str = "holdout";
/// Beside a model's versions: the trials of its sweeps fanned out over several jobs.
const SWEEPS: &str = "sweeps";
/// A trial's result, written after its artifact.
const TRIAL: &str = "trial.json";

/// The digest a holdout report is known by (in the pin, the commit status and the registry):
/// the SHA-256 of its bytes without trailing whitespace, so that the report as a step output, as
/// `mlops holdout --report FILE` wrote it (with a final newline) and as recorded are one report.
pub fn report_digest(report: &[u8]) -> String {
    mlops_artifacts::artifact::sha256_hex(without_trailing_space(report))
}

/// `report` without trailing whitespace: the bytes [`report_digest`] hashes and the registry
/// keeps.
fn without_trailing_space(report: &[u8]) -> &[u8] {
    let end = report
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    report.split_at(end).0
}

/// Whether `digest` is a SHA-256 as [`report_digest`] writes it (64 lowercase hex digits): the
/// only names a recorded report has.
fn is_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }
}

/// A version's status and why it has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub status: Status,
    pub reason: String,
    /// RFC 3339, UTC.
    pub changed_at: String,
}

/// Which version a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Number(u64),
    /// The highest version.
    Latest,
    /// The highest approved version.
    Approved,
}

/// `NAME@VERSION`, `NAME@latest` or `NAME@approved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub selector: Selector,
}

impl FromStr for ModelRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{s}` is not a model reference: write NAME@VERSION, NAME@latest or NAME@approved"
            )
        };
        let (name, version) = s.split_once('@').ok_or_else(usage)?;
        let name_ok = name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(usage());
        }
        let selector = match version {
            "latest" => Selector::Latest,
            "approved" => Selector::Approved,
            v => match v.parse::<u64>() {
                Ok(n) if n > 0 && !v.starts_with('0') => Selector::Number(n),
                _ => return Err(usage()),
            },
        };
        Ok(Self {
            name: name.to_owned(),
            selector,
        })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Number(n) => write!(f, "{}@{n}", self.name),
            Selector::Latest => write!(f, "{}@latest", self.name),
            Selector::Approved => write!(f, "{}@approved", self.name),
        }
    }
}

/// A registry mistake: what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub message: String,
    pub hint: String,
    /// True when the registry or the reference is wrong (exit 2), false for an I/O failure (3).
    pub user: bool,
}

fn user(message: String, hint: impl Into<String>) -> RegistryError {
    RegistryError {
        message,
        hint: hint.into(),
        user: true,
    }
}

fn io(path: &Path, e: &std::io::Error) -> RegistryError {
    RegistryError {
        message: format!("{}: {e}", path.display()),
        hint: "check that the registry directory is writable".to_owned(),
        user: false,
    }
}

/// One registered version, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub model: String,
    pub version: u64,
    #[serde(rename = "ref")]
    pub reference: String,
    pub status: StatusRecord,
    /// Where the version's files are: a directory, or an `s3://` prefix.
    pub location: String,
}

fn aws(e: mlops_aws::AwsError) -> RegistryError {
    RegistryError {
        user: e.kind.is_user(),
        message: e.message,
        hint: e.hint,
    }
}

/// A registry in a local directory or under an `s3://` prefix.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    Local(PathBuf),
    S3 {
        s3: mlops_aws::S3,
        rt: std::sync::Arc<tokio::runtime::Runtime>,
        /// The prefix, without a trailing slash.
        base: mlops_aws::S3Uri,
    },
}

impl Registry {
    /// The registry in a local directory.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Self {
            store: Store::Local(root.into()),
        }
    }

    /// The registry at `place`: an `s3://bucket/prefix` (the SDK's default credentials), or a
    /// directory, relative to `base`.
    pub fn at(place: &str, base: &Path) -> Result<Self, RegistryError> {
        if !place.starts_with("s3://") {
            return Ok(Self::open(base.join(place)));
        }
        let mut uri = mlops_aws::S3Uri::parse(place).map_err(aws)?;
        uri.key = uri.key.trim_end_matches('/').to_owned();
        let rt = mlops_aws::runtime().map_err(aws)?;
        let s3 = rt.block_on(mlops_aws::S3::from_env());
        Ok(Self {
            store: Store::S3 {
                s3,
                rt: std::sync::Arc::new(rt),
                base: uri,
            },
        })
    }

    /// The directory or `s3://` prefix, for messages.
    pub fn location(&self) -> String {
        match &self.store {
            Store::Local(root) => root.display().to_string(),
            Store::S3 { base, .. } => base.to_string(),
        }
    }

    /// The object under an S3 registry's prefix at `rel`.
    fn object(base: &mlops_aws::S3Uri, rel: &str) -> mlops_aws::S3Uri {
        let key = if base.key.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", base.key)
        };
        mlops_aws::S3Uri {
            bucket: base.bucket.clone(),
            key,
        }
    }

    /// Complete versions in an S3 registry: (model, version) for every `MODEL/N/status.json`
    /// under the prefix, or under `MODEL/` only.
    fn s3_versions(&self, model: Option<&str>) -> Result<Vec<(String, u64)>, RegistryError> {
        let Store::S3 { s3, rt, base } = &self.store else {
            return Ok(Vec::new());
        };
        let root = Self::object(base, "").key;
        let prefix = match model {
            Some(m) => format!("{root}{m}/"),
            None => root.clone(),
        };
        let keys = rt.block_on(s3.keys(&base.bucket, &prefix)).map_err(aws)?;
        let mut found: Vec<(String, u64)> = keys
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(&root)?;
                let mut parts = rest.split('/');
                let (m, v, file) = (parts.next()?, parts.next()?, parts.next()?);
                let version: u64 = v.parse().ok()?;
                (file == STATUS && parts.next().is_none() && version > 0)
                    .then(|| (m.to_owned(), version))
            })
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The versions of `model`, ascending.
    pub fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let root = match &self.store {
            Store::Local(root) => root,
            Store::S3 { .. } => {
                return Ok(self
                    .s3_versions(Some(model))?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect());
            }
        };
        let dir = root.join(model);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, &e)),
        };
        let mut versions: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .filter(|&v| v > 0)
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// Every model in the registry, by name.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        let root = match &self.store {
            Store::Local(root) => root,
            Store::S3 { .. } => {
                let mut names: Vec<String> = self
                    .s3_versions(None)?
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                names.dedup();
                return Ok(names);
            }
        };
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(root, &e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Where a version's files are.
    pub fn version_location(&self, model: &str, version: u64) -> String {
        match &self.store {
            Store::Local(root) => root
                .join(model)
                .join(version.to_string())
                .display()
                .to_string(),
            Store::S3 { base, .. } => Self::object(base, &format!("{model}/{version}")).to_string(),
        }
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        model: &str,
        version: u64,
        file: &str,
    ) -> Result<T, RegistryError> {
        match &self.store {
            Store::Local(root) => read_json(&root.join(model).join(version.to_string()).join(file)),
            Store::S3 { s3, rt, base } => {
                let uri = Self::object(base, &format!("{model}/{version}/{file}"));
                let bytes = rt.block_on(s3.get(&uri)).map_err(aws)?.ok_or_else(|| {
                    user(
                        format!("{uri} does not exist"),
                        "the version is incomplete; register it again",
                    )
                })?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    user(
                        format!("{uri} is damaged: {e}"),
                        "restore it from the bucket's versioning, or delete that version",
                    )
                })
            }
        }
    }

    fn write_json(
        &self,
        model: &str,
        version: u64,
        file: &str,
        value: &impl Serialize,
    ) -> Result<(), RegistryError> {
        match &self.store {
            Store::Local(root) => write_json(
                &root.join(model).join(version.to_string()).join(file),
                value,
            ),
            Store::S3 { s3, rt, base } => {
                let uri = Self::object(base, &format!("{model}/{version}/{file}"));
                let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
                body.push(b'\n');
                rt.block_on(s3.put(&uri, body)).map_err(aws)
            }
        }
    }

    /// Registers into S3: claims the next free version with a conditional write, uploads the
    /// files, and writes `status.json` last (a version without it is not listed).
    fn register_s3(
        &self,
        model: &str,
        staged: &Path,
        make_card: &dyn Fn(u64) -> ModelCard,
        status: StatusRecord,
    ) -> Result<Entry, RegistryError> {
        let Store::S3 { s3, rt, base } = &self.store else {
            return Err(user("not an S3 registry".to_owned(), ""));
        };
        let mut version = self.versions(model)?.last().copied().unwrap_or(0) + 1;
        let mut tries = 0;
        loop {
            let claim = Self::object(base, &format!("{model}/{version}/.claim"));
            let body = format!("{{\"claimed_at\": \"{}\"}}\n", now_rfc3339()).into_bytes();
            if rt.block_on(s3.put_if_absent(&claim, body)).map_err(aws)? {
                break;
            }
            tries += 1;
            if tries > 1000 {
                return Err(user(
                    format!(
                        "could not find a free version of {model} in {}",
                        self.location()
                    ),
                    "is something else writing to the registry in a loop?",
                ));
            }
            version += 1;
        }
        let names = artifact_files_in(staged).map_err(|e| user(e, "train the model first"))?;
        for name in names {
            let uri = Self::object(base, &format!("{model}/{version}/{name}"));
            rt.block_on(s3.upload(&staged.join(name), &uri))
                .map_err(aws)?;
        }
        self.write_json(model, version, CARD, &make_card(version))?;
        self.write_json(model, version, STATUS, &status)?;
        Ok(Entry {
            model: model.to_owned(),
            version,
            reference: format!("{model}@{version}"),
            status,
            location: self.version_location(model, version),
        })
    }

    /// Registers the files in `staged` (which must hold [`BUNDLE`] and one model file,
    /// [`WEIGHTS`] or [`ONNX`]) as the next version of `model`, with the card
    /// `make_card(version)` returns and `status`. Nothing is visible until the whole version is
    /// in place.
    pub fn register(
        &self,
        model: &str,
        staged: &Path,
        make_card: impl Fn(u64) -> ModelCard,
        status: StatusRecord,
    ) -> Result<Entry, RegistryError> {
        let names = artifact_files_in(staged).map_err(|e| user(e, "train the model first"))?;
        if !staged.join(BUNDLE).is_file() {
            return Err(user(
                format!("{} has no {BUNDLE}", staged.display()),
                "train the model first",
            ));
        }
        let digest = ArtifactDigest::of_dir(staged).map_err(|message| RegistryError {
            message,
            hint: "check the staged model directory".to_owned(),
            user: false,
        })?;
        let make_card = |version: u64| ModelCard {
            artifact: Some(digest.clone()),
            ..make_card(version)
        };
        let root = match &self.store {
            Store::Local(root) => root,
            Store::S3 { .. } => return self.register_s3(model, staged, &make_card, status),
        };
        let parent = root.join(model);
        std::fs::create_dir_all(&parent).map_err(|e| io(&parent, &e))?;
        for _ in 0..1000 {
            let version = self.versions(model)?.last().copied().unwrap_or(0) + 1;
            let incoming = tempfile::Builder::new()
                .prefix(".incoming-")
                .tempdir_in(&parent)
                .map_err(|e| io(&parent, &e))?;
            for name in &names {
                let to = incoming.path().join(name);
                std::fs::copy(staged.join(name), &to).map_err(|e| io(&to, &e))?;
            }
            write_json(&incoming.path().join(CARD), &make_card(version))?;
            write_json(&incoming.path().join(STATUS), &status)?;
            // Every file on disk before the version's name exists: a crash leaves no version
            // whose weights are empty.
            mlops_artifacts::fs::sync_files_in(incoming.path())
                .map_err(|e| io(incoming.path(), &e))?;
            let target = parent.join(version.to_string());
            let staging = incoming.keep();
            match std::fs::rename(&staging, &target) {
                Ok(()) => {
                    mlops_artifacts::fs::sync_dir(&parent).map_err(|e| io(&parent, &e))?;
                    return Ok(Entry {
                        model: model.to_owned(),
                        version,
                        reference: format!("{model}@{version}"),
                        status,
                        location: target.display().to_string(),
                    });
                }
                Err(e)
                    if target.exists()
                        || matches!(
                            e.kind(),
                            std::io::ErrorKind::AlreadyExists
                                | std::io::ErrorKind::DirectoryNotEmpty
                        ) =>
                {
                    // Another run took this version first: try the next one.
                    let _ = std::fs::remove_dir_all(&staging);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&staging);
                    return Err(io(&target, &e));
                }
            }
        }
        Err(user(
            format!(
                "could not find a free version of {model} in {}",
                parent.display()
            ),
            "is something else writing to the registry in a loop?",
        ))
    }

    /// The artifact files of a version (`model.json` and its model file, as the card's digest
    /// lists them), checked against the digest its card recorded at registration: what serving
    /// and the holdout test load.
    pub fn artifact(
        &self,
        model: &str,
        version: u64,
    ) -> Result<(BTreeMap<String, Vec<u8>>, ArtifactDigest), RegistryError> {
        let card = self.card(model, version)?;
        let recorded: ArtifactDigest = card.artifact.ok_or_else(|| {
            user(
                format!("{model}@{version} has no artifact digest in its card"),
                "it was registered by an older mlops; train it again",
            )
        })?;
        // The names come from the card: only an artifact's own file names are read.
        let names: Vec<&str> = recorded.files.keys().map(String::as_str).collect();
        let models = names.iter().filter(|n| MODEL_FILES.contains(n)).count();
        if !names.contains(&BUNDLE)
            || models != 1
            || names.iter().any(|n| !ARTIFACT_FILES.contains(n))
        {
            return Err(user(
                format!(
                    "the card of {model}@{version} records the artifact files {}; an artifact is \
                     {BUNDLE} and one of {WEIGHTS} or {ONNX}",
                    names.join(", ")
                ),
                "the card was changed after registration; register the model again",
            ));
        }
        let mut files = BTreeMap::new();
        for name in recorded.files.keys() {
            let bytes = match &self.store {
                Store::Local(root) => {
                    let path = root.join(model).join(version.to_string()).join(name);
                    std::fs::read(&path).map_err(|e| io(&path, &e))?
                }
                Store::S3 { s3, rt, base } => {
                    let uri = Self::object(base, &format!("{model}/{version}/{name}"));
                    rt.block_on(s3.get(&uri)).map_err(aws)?.ok_or_else(|| {
                        user(
                            format!("{uri} does not exist"),
                            "the version is incomplete; register it again",
                        )
                    })?
                }
            };
            files.insert(name.clone(), bytes);
        }
        let found = ArtifactDigest::of(&files);
        if found != recorded {
            let file = recorded
                .files
                .keys()
                .find(|n| found.files.get(*n) != recorded.files.get(*n))
                .map_or(BUNDLE, String::as_str);
            return Err(user(
                format!(
                    "the artifact of {model}@{version} is not the one registered: {file} has \
                     SHA-256 {}, the card recorded {}",
                    found.files.get(file).map_or("?", String::as_str),
                    recorded.files.get(file).map_or("?", String::as_str)
                ),
                "the files were changed after registration; do not serve them: register the \
                 model again from training",
            ));
        }
        Ok((files, recorded))
    }

    /// The version `text` names: a reference (NAME@VERSION, NAME@latest, NAME@approved), or the
    /// ARN of the SageMaker model package it was registered with (what SageMaker's registry and
    /// its approval events name), found in the cards.
    pub fn find(&self, text: &str) -> Result<Entry, RegistryError> {
        if text.starts_with("arn:") && text.contains(":model-package/") {
            let mut entries = self.list()?;
            entries.reverse();
            for entry in entries {
                let card = self.card(&entry.model, entry.version)?;
                if card.sagemaker.and_then(|s| s.model_package_arn).as_deref() == Some(text) {
                    return Ok(entry);
                }
            }
            return Err(user(
                format!(
                    "no version in the registry {} was registered as the model package {text}",
                    self.location()
                ),
                "the package must come from `mlops train --backend sagemaker` with this registry",
            ));
        }
        let r: ModelRef = text.parse().map_err(|e: String| {
            user(
                e,
                "name the model as NAME@VERSION, NAME@latest, NAME@approved or a SageMaker model package ARN",
            )
        })?;
        self.resolve(&r)
    }

    /// The version a reference means.
    pub fn resolve(&self, r: &ModelRef) -> Result<Entry, RegistryError> {
        let versions = self.versions(&r.name)?;
        if versions.is_empty() {
            // What the registry does hold tells a misspelt name from the wrong registry.
            let held = match self.models() {
                Ok(names) if names.is_empty() => {
                    "; it holds no model at all: is it the right registry?".to_owned()
                }
                Ok(names) => format!("; it holds {}", names.join(", ")),
                Err(_) => String::new(),
            };
            return Err(user(
                format!("no model {} in the registry {}", r.name, self.location()),
                format!(
                    "train it first (`mlops train`), or point --registry / MLOPS_REGISTRY \
                     elsewhere{held}"
                ),
            ));
        }
        let version = match r.selector {
            Selector::Number(n) => versions.contains(&n).then_some(n).ok_or_else(|| {
                user(
                    format!("{} has no version {n}", r.name),
                    format!(
                        "its versions are {}",
                        versions
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
            Selector::Latest => versions.last().copied().unwrap_or(0),
            Selector::Approved => {
                let mut found = None;
                for &v in versions.iter().rev() {
                    if self.status(&r.name, v)?.status == Status::Approved {
                        found = Some(v);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    user(
                        format!("{} has no approved version", r.name),
                        format!("approve one: `mlops registry approve {}@VERSION`", r.name),
                    )
                })?
            }
        };
        Ok(Entry {
            model: r.name.clone(),
            version,
            reference: format!("{}@{version}", r.name),
            status: self.status(&r.name, version)?,
            location: self.version_location(&r.name, version),
        })
    }

    pub fn status(&self, model: &str, version: u64) -> Result<StatusRecord, RegistryError> {
        self.read_json(model, version, STATUS)
    }

    pub fn card(&self, model: &str, version: u64) -> Result<ModelCard, RegistryError> {
        self.read_json(model, version, CARD)
    }

    /// Sets a version's status (atomically: the status file is replaced, never half-written).
    pub fn set_status(
        &self,
        r: &ModelRef,
        status: Status,
        reason: &str,
    ) -> Result<Entry, RegistryError> {
        let mut entry = self.resolve(r)?;
        let record = StatusRecord {
            status,
            reason: reason.to_owned(),
            changed_at: now_rfc3339(),
        };
        self.write_json(&entry.model, entry.version, STATUS, &record)?;
        entry.status = record;
        Ok(entry)
    }

    /// Records the report of a holdout test run on `model@version` under its digest
    /// (`MODEL/VERSION/holdout/DIGEST.json`), beside the version it tested: production's deploy
    /// finds the report its pin names there. Content-addressed, so a report is never replaced by
    /// another. Returns the digest and where the report is.
    pub fn record_holdout(
        &self,
        model: &str,
        version: u64,
        report: &[u8],
    ) -> Result<(String, String), RegistryError> {
        // Only a version that exists gets reports.
        self.status(model, version)?;
        let digest = report_digest(report);
        let body = without_trailing_space(report);
        let rel = format!("{model}/{version}/{HOLDOUT}/{digest}.json");
        match &self.store {
            Store::Local(root) => {
                let path = root.join(&rel);
                mlops_artifacts::fs::write_atomically(&path, body).map_err(|e| io(&path, &e))?;
                Ok((digest, path.display().to_string()))
            }
            Store::S3 { s3, rt, base } => {
                let uri = Self::object(base, &rel);
                rt.block_on(s3.put(&uri, body.to_vec())).map_err(aws)?;
                Ok((digest, uri.to_string()))
            }
        }
    }

    /// The holdout report of `model@version` recorded under `digest`; `None` when there is none.
    /// A recorded report whose bytes do not have that digest is an error (damaged or replaced).
    pub fn holdout_report(
        &self,
        model: &str,
        version: u64,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        if !is_digest(digest) {
            return Err(user(
                format!("`{digest}` is not a holdout report's SHA-256 (64 lowercase hex digits)"),
                "the pin was edited by hand; promote the version again",
            ));
        }
        let rel = format!("{model}/{version}/{HOLDOUT}/{digest}.json");
        let (bytes, shown) = match &self.store {
            Store::Local(root) => {
                let path = root.join(&rel);
                match std::fs::read(&path) {
                    Ok(b) => (b, path.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(&path, &e)),
                }
            }
            Store::S3 { s3, rt, base } => {
                let uri = Self::object(base, &rel);
                match rt.block_on(s3.get(&uri)).map_err(aws)? {
                    Some(b) => (b, uri.to_string()),
                    None => return Ok(None),
                }
            }
        };
        if report_digest(&bytes) != digest {
            return Err(user(
                format!("{shown} does not have the digest it is named by"),
                "the recorded report was changed; run the holdout test again and promote its report",
            ));
        }
        Ok(Some(bytes))
    }

    /// Where trial `trial` of the sweep `sweep` of `model` keeps its files:
    /// `MODEL/sweeps/SWEEP/TRIAL/`, beside the versions (whose names are numbers).
    fn trial_rel(model: &str, sweep: &str, trial: usize) -> Result<String, RegistryError> {
        Ok(format!("{}{trial}", Self::sweep_rel(model, sweep)?))
    }

    /// `MODEL/sweeps/SWEEP/`, the sweep ID checked.
    fn sweep_rel(model: &str, sweep: &str) -> Result<String, RegistryError> {
        let ok = !sweep.is_empty()
            && sweep.len() <= 64
            && sweep
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(user(
                format!("`{sweep}` is not a sweep ID (letters, digits, `-` and `_`, at most 64)"),
                "pass --sweep-id, e.g. the workflow run's ID",
            ));
        }
        Ok(format!("{model}/{SWEEPS}/{sweep}/"))
    }

    /// Keeps the artifact in `staged` and `result` (`trial.json`) as trial `trial` of the sweep
    /// `sweep`: one job of a sweep fanned out over several. Returns where.
    pub fn put_trial(
        &self,
        model: &str,
        sweep: &str,
        trial: usize,
        staged: &Path,
        result: &[u8],
    ) -> Result<String, RegistryError> {
        let rel = Self::trial_rel(model, sweep, trial)?;
        let names = artifact_files_in(staged).map_err(|e| user(e, "train the model first"))?;
        match &self.store {
            Store::Local(root) => {
                let dir = root.join(&rel);
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, &e))?;
                for name in names {
                    let to = dir.join(name);
                    let bytes = std::fs::read(staged.join(name)).map_err(|e| io(&to, &e))?;
                    mlops_artifacts::fs::write_atomically(&to, &bytes).map_err(|e| io(&to, &e))?;
                }
                // The result last: a trial counts once its files are all there.
                let to = dir.join(TRIAL);
                mlops_artifacts::fs::write_atomically(&to, result).map_err(|e| io(&to, &e))?;
                Ok(dir.display().to_string())
            }
            Store::S3 { s3, rt, base } => {
                for name in names {
                    let uri = Self::object(base, &format!("{rel}/{name}"));
                    rt.block_on(s3.upload(&staged.join(name), &uri))
                        .map_err(aws)?;
                }
                let uri = Self::object(base, &format!("{rel}/{TRIAL}"));
                rt.block_on(s3.put(&uri, result.to_vec())).map_err(aws)?;
                Ok(Self::object(base, &rel).to_string())
            }
        }
    }

    /// The `trial.json` of each trial of the sweep `sweep` that finished, by trial number.
    pub fn trial_results(
        &self,
        model: &str,
        sweep: &str,
    ) -> Result<BTreeMap<usize, Vec<u8>>, RegistryError> {
        let prefix = Self::sweep_rel(model, sweep)?;
        let prefix = prefix.as_str();
        let mut out = BTreeMap::new();
        let numbers: Vec<usize> = match &self.store {
            Store::Local(root) => match std::fs::read_dir(root.join(prefix)) {
                Ok(entries) => entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io(&root.join(prefix), &e)),
            },
            Store::S3 { s3, rt, base } => {
                let root = Self::object(base, prefix).key;
                rt.block_on(s3.keys(&base.bucket, &root))
                    .map_err(aws)?
                    .iter()
                    .filter_map(|k| {
                        let (n, file) = k.strip_prefix(&root)?.split_once('/')?;
                        (file == TRIAL).then(|| n.parse().ok())?
                    })
                    .collect()
            }
        };
        for n in numbers {
            let rel = format!("{prefix}{n}/{TRIAL}");
            let bytes = match &self.store {
                Store::Local(root) => match std::fs::read(root.join(&rel)) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io(&root.join(&rel), &e)),
                },
                Store::S3 { s3, rt, base } => rt
                    .block_on(s3.get(&Self::object(base, &rel)))
                    .map_err(aws)?,
            };
            if let Some(b) = bytes {
                out.insert(n, b);
            }
        }
        Ok(out)
    }

    /// Copies the artifact of trial `trial` of the sweep `sweep` into `into`.
    pub fn fetch_trial(
        &self,
        model: &str,
        sweep: &str,
        trial: usize,
        into: &Path,
    ) -> Result<(), RegistryError> {
        let rel = Self::trial_rel(model, sweep, trial)?;
        std::fs::create_dir_all(into).map_err(|e| io(into, &e))?;
        for name in ARTIFACT_FILES {
            let to = into.join(name);
            match &self.store {
                Store::Local(root) => match std::fs::copy(root.join(&rel).join(name), &to) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&to, &e)),
                },
                Store::S3 { s3, rt, base } => {
                    if let Some(b) = rt
                        .block_on(s3.get(&Self::object(base, &format!("{rel}/{name}"))))
                        .map_err(aws)?
                    {
                        std::fs::write(&to, b).map_err(|e| io(&to, &e))?;
                    }
                }
            }
        }
        artifact_files_in(into).map_err(|e| {
            user(
                format!("trial {trial} of sweep {sweep}: {e}"),
                "run the trial again",
            )
        })?;
        Ok(())
    }

    /// Every version of every model.
    pub fn list(&self) -> Result<Vec<Entry>, RegistryError> {
        let mut out = Vec::new();
        for model in self.models()? {
            for version in self.versions(&model)? {
                out.push(Entry {
                    reference: format!("{model}@{version}"),
                    status: self.status(&model, version)?,
                    location: self.version_location(&model, version),
                    model: model.clone(),
                    version,
                });
            }
        }
        Ok(out)
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RegistryError> {
    mlops_artifacts::fs::write_json(path, value).map_err(|e| io(path, &e))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, &e))?;
    serde_json::from_str(&text).map_err(|e| {
        user(
            format!("{} is damaged: {e}", path.display()),
            "restore it from a backup, or delete that version's directory",
        )
    })
}

/// Now as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as RFC 3339 UTC (civil-from-days).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What `mlops registry list` shows: one line per version (reference, status, when it changed,
/// why), then the count by status.
pub fn table(entries: &[Entry]) -> String {
    let mut out = format!("{:<32} {:<9} {:<20} reason\n", "model", "status", "changed");
    for e in entries {
        let (status, changed) = (e.status.status.name(), &e.status.changed_at);
        let (reference, reason) = (&e.reference, &e.status.reason);
        out += &format!("{reference:<32} {status:<9} {changed:<20} {reason}\n");
    }
    let counts: Vec<String> = tally(entries)
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out += &format!("{} versions: {}\n", entries.len(), counts.join(", "));
    out
}

/// Counts of versions by status, for summaries.
pub fn tally(entries: &[Entry]) -> BTreeMap<&'static str, usize> {
    let mut t = BTreeMap::new();
    for e in entries {
        *t.entry(e.status.status.name()).or_insert(0) += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(WEIGHTS), b"weights").expect("write");
        std::fs::write(d.path().join(BUNDLE), b"{}").expect("write");
        d
    }

    fn pending() -> StatusRecord {
        StatusRecord {
            status: Status::Pending,
            reason: "no thresholds".to_owned(),
            changed_at: now_rfc3339(),
        }
    }

    /// A fanned-out sweep's trials are kept beside the versions (which they do not become), read
    /// back by number, and a trial's artifact is fetched whole; a hostile sweep ID is refused.
    #[test]
    fn sweep_trials_are_kept_beside_the_versions() {
        let root = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(root.path());
        let d = staged();
        for n in [2, 1] {
            reg.put_trial(
                "digits",
                "run-7",
                n,
                d.path(),
                format!("{{\"n\":{n}}}").as_bytes(),
            )
            .expect("kept");
        }
        let found = reg.trial_results("digits", "run-7").expect("read");
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [(1, b"{\"n\":1}".to_vec()), (2, b"{\"n\":2}".to_vec())]
        );
        assert!(
            reg.trial_results("digits", "run-8")
                .expect("read")
                .is_empty()
        );
        assert!(reg.versions("digits").expect("versions").is_empty());
        let into = tempfile::tempdir().expect("tempdir");
        reg.fetch_trial("digits", "run-7", 2, into.path())
            .expect("fetched");
        assert_eq!(
            std::fs::read(into.path().join(WEIGHTS)).expect("weights"),
            b"weights"
        );
        let err = reg.fetch_trial("digits", "run-7", 3, into.path().join("x").as_path());
        assert!(err.is_err());
        for bad in ["../x", "", "a/b", &"x".repeat(65)] {
            let err = reg
                .put_trial("digits", bad, 1, d.path(), b"{}")
                .expect_err(bad);
            assert!(err.message.contains("is not a sweep ID"), "{err:?}");
        }
        // A registered version beside them is counted as usual.
        reg.register(
            "digits",
            d.path(),
            |version| mlops_artifacts::card::sample("digits", version),
            pending(),
        )
        .expect("registered");
        assert_eq!(reg.versions("digits").expect("versions"), [1]);
    }

    #[test]
    fn an_onnx_artifact_registers_and_reads_back_and_a_card_names_only_artifact_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(root.path());
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(ONNX), b"graph").expect("write");
        std::fs::write(d.path().join(BUNDLE), b"{}").expect("write");
        reg.register(
            "digits",
            d.path(),
            |version| mlops_artifacts::card::sample("digits", version),
            pending(),
        )
        .expect("registers");
        let (files, digest) = reg.artifact("digits", 1).expect("reads");
        assert_eq!(files.keys().collect::<Vec<_>>(), [BUNDLE, ONNX]);
        assert_eq!(files[ONNX], b"graph");
        assert_eq!(digest, ArtifactDigest::of(&files));
        assert!(!root.path().join("digits/1").join(WEIGHTS).exists());
        // A card edited to name a file outside the artifact is refused before anything is read.
        let card_path = root.path().join("digits/1").join(CARD);
        let mut card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&card_path).expect("card")).expect("json");
        card["artifact"]["files"]["../../secret"] = serde_json::json!("0");
        std::fs::write(&card_path, card.to_string()).expect("write");
        let e = reg.artifact("digits", 1).expect_err("not an artifact file");
        assert!(e.message.contains("../../secret"), "{}", e.message);
        // Both model files staged: not one artifact.
        std::fs::write(d.path().join(WEIGHTS), b"weights").expect("write");
        let e = reg
            .register(
                "digits",
                d.path(),
                |version| mlops_artifacts::card::sample("digits", version),
                pending(),
            )
            .expect_err("two model files");
        assert!(e.message.contains("both"), "{}", e.message);
    }

    #[test]
    fn references_parse_and_print() {
        for ok in ["digits-mlp@1", "ab@latest", "a1@approved", "x-y@42"] {
            let r: ModelRef = ok.parse().expect(ok);
            assert_eq!(r.to_string(), ok);
        }
        for bad in [
            "digits",
            "@1",
            "Digits@1",
            "d@1",
            "digits@0",
            "digits@01",
            "digits@next",
            "di gits@1",
        ] {
            let e = bad.parse::<ModelRef>().expect_err(bad);
            assert!(e.contains("NAME@VERSION"), "{e}");
        }
    }

    #[test]
    fn a_version_is_found_by_reference_or_by_its_model_package() {
        let root = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(root.path());
        let s = staged();
        let arn =
            |v: u64| format!("arn:aws:sagemaker:eu-west-1:123456789012:model-package/digits/{v}");
        for v in 1..=2 {
            reg.register(
                "digits",
                s.path(),
                |version| {
                    let mut card = mlops_artifacts::card::sample("digits", version);
                    card.sagemaker = Some(mlops_artifacts::card::SagemakerRun {
                        training_job: format!("digits-{v}"),
                        training_job_arn: String::new(),
                        image: String::new(),
                        image_digest: None,
                        model_artifact: String::new(),
                        final_metrics: BTreeMap::new(),
                        billable_seconds: None,
                        model_package_group: Some("digits".into()),
                        model_package_arn: Some(arn(v)),
                        tuning_job: None,
                    });
                    card
                },
                pending(),
            )
            .expect("registers");
        }
        reg.register(
            "digits",
            s.path(),
            |version| mlops_artifacts::card::sample("digits", version),
            pending(),
        )
        .expect("registers");
        assert_eq!(reg.find(&arn(1)).expect("found").reference, "digits@1");
        assert_eq!(reg.find(&arn(2)).expect("found").reference, "digits@2");
        assert_eq!(reg.find("digits@latest").expect("found").version, 3);
        let missing = reg.find(&arn(9)).expect_err("no such package");
        assert!(
            missing.user && missing.message.contains("model-package/digits/9"),
            "{}",
            missing.message
        );
        let bad = reg.find("digits").expect_err("not a reference");
        assert!(
            bad.user && bad.hint.contains("model package ARN"),
            "{}",
            bad.hint
        );
    }

    #[test]
    fn holdout_reports_are_recorded_under_their_digest_and_read_back_verified() {
        let root = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(root.path());
        reg.register(
            "digits",
            staged().path(),
            |version| mlops_artifacts::card::sample("digits", version),
            pending(),
        )
        .expect("registers");
        let report = b"{\"model\": \"digits@1\", \"passed\": true}";
        // The report as a file (a final newline) and as a step output (none) are one report.
        let mut with_newline = report.to_vec();
        with_newline.extend_from_slice(b"\n");
        assert_eq!(report_digest(report), report_digest(&with_newline));
        let (digest, at) = reg
            .record_holdout("digits", 1, &with_newline)
            .expect("records");
        assert_eq!(digest, report_digest(report));
        assert!(
            at.ends_with(&format!("digits/1/holdout/{digest}.json")),
            "{at}"
        );
        assert_eq!(
            reg.holdout_report("digits", 1, &digest).expect("reads"),
            Some(report.to_vec())
        );
        assert_eq!(
            reg.holdout_report("digits", 1, &"0".repeat(64))
                .expect("reads"),
            None
        );
        // Not a digest: no path is made of it.
        let e = reg
            .holdout_report("digits", 1, "../../status")
            .expect_err("not a digest");
        assert!(
            e.user && e.message.contains("64 lowercase hex"),
            "{}",
            e.message
        );
        // A report changed after it was recorded is refused.
        std::fs::write(&at, b"{\"model\": \"digits@1\", \"passed\": true }").expect("edit");
        let e = reg
            .holdout_report("digits", 1, &digest)
            .expect_err("changed");
        assert!(
            e.message.contains("does not have the digest"),
            "{}",
            e.message
        );
        // Only a registered version gets reports; the version still lists as before.
        assert!(reg.record_holdout("digits", 2, report).is_err());
        assert_eq!(reg.versions("digits").expect("versions"), [1]);
    }

    #[test]
    fn versions_count_up_and_references_resolve() {
        let root = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(root.path());
        let s = staged();
        for want in 1..=3 {
            let e = reg
                .register(
                    "digits",
                    s.path(),
                    |v| mlops_artifacts::card::sample("digits", v),
                    pending(),
                )
                .expect("registers");
            assert_eq!(e.version, want);
            assert_eq!(reg.card("digits", want).expect("card").version, want);
        }
        let latest: ModelRef = "digits@latest".parse().expect("ref");
        assert_eq!(reg.resolve(&latest).expect("resolves").version, 3);
        let approved: ModelRef = "digits@approved".parse().expect("ref");
        let e = reg.resolve(&approved).expect_err("none approved");
        assert!(
            e.hint.contains("mlops registry approve digits@"),
            "{}",
            e.hint
        );
        reg.set_status(
            &"digits@2".parse().expect("ref"),
            Status::Approved,
            "looked fine",
        )
        .expect("approves");
        assert_eq!(reg.resolve(&approved).expect("resolves").version, 2);
        let e = reg
            .resolve(&"digits@9".parse().expect("ref"))
            .expect_err("no 9");
        assert!(e.hint.contains("1, 2, 3"), "{}", e.hint);
        let e = reg
            .resolve(&"other@1".parse().expect("ref"))
            .expect_err("none");
        assert!(e.message.contains("no model other"));
        assert!(e.hint.ends_with("; it holds digits"), "{}", e.hint);
        let empty = tempfile::tempdir().expect("tempdir");
        let e = Registry::open(empty.path().join("nothing here"))
            .resolve(&"digits@1".parse().expect("ref"))
            .expect_err("no registry");
        assert!(
            e.hint
                .contains("it holds no model at all: is it the right registry?"),
            "{}",
            e.hint
        );
        let all = reg.list().expect("lists");
        assert_eq!(all.len(), 3);
        assert_eq!(tally(&all).get("approved"), Some(&1));
        let shown = table(&all);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 5, "{shown}");
        assert!(
            lines[0].starts_with("model ") && lines[0].ends_with("reason"),
            "{shown}"
        );
        assert!(
            lines[2].starts_with("digits@2 ") && lines[2].contains(" approved "),
            "{shown}"
        );
        assert!(lines[2].ends_with("looked fine"), "{shown}");
        assert!(lines[4].starts_with("3 versions: 1 approved, "), "{shown}");
        // Nothing half-written is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("digits"))
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn concurrent_registrations_get_distinct_versions() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = staged();
        let versions: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        Registry::open(root.path())
                            .register(
                                "m1",
                                s.path(),
                                |v| mlops_artifacts::card::sample("m1", v),
                                pending(),
                            )
                            .expect("registers")
                            .version
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_600 + 3_723), "2026-11-22T01:02:03Z");
    }
}
