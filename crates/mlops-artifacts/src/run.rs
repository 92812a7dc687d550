//! `run.json`: what `mlops run` did, stage by stage, written in its work dir (and printed by
//! `mlops run --format json`). `schema/run.schema.json` is generated from [`Run`].

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The format of `run.json`.
pub const VERSION: u32 = 1;

/// run.json in the work dir of `mlops run` (also printed by `mlops run --format json`): each
/// stage with its result, key figure and time, and where the artifacts are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The format, 1.
    pub version: u32,
    pub manifest: PathBuf,
    pub workdir: PathBuf,
    pub registry: PathBuf,
    /// The version this run trained (NAME@VERSION), once registered.
    pub model: Option<String>,
    /// What the promote stage made: the local commit and branch, or the pull request (with
    /// --open-pr).
    pub promotion: Option<String>,
    pub passed: bool,
    /// The run's exit code: 0, or the failed stage's (1, 2, 3), or 130 when interrupted.
    pub exit_code: i32,
    pub stages: Vec<Stage>,
    /// The stages' time, summed.
    pub seconds: f64,
    pub artifacts: Artifacts,
}

/// One stage of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    Validate,
    Render,
    Train,
    Evaluate,
    Staging,
    Holdout,
    Promote,
    Gate,
    Deploy,
}

impl StageName {
    /// The stage's name, as run.json and the log files (`logs/<name>.log`) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Validate => "validate",
            StageName::Render => "render",
            StageName::Train => "train",
            StageName::Evaluate => "evaluate",
            StageName::Staging => "staging",
            StageName::Holdout => "holdout",
            StageName::Promote => "promote",
            StageName::Gate => "gate",
            StageName::Deploy => "deploy",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageResult {
    Ok,
    Failed,
    Skipped,
}

/// A stage's result, its key figure in a few words, and its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub stage: StageName,
    pub result: StageResult,
    pub figure: String,
    pub seconds: f64,
}

/// Files a reader of the run wants, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    pub rendered: Option<PathBuf>,
    pub model_card: Option<PathBuf>,
    pub holdout_report: Option<PathBuf>,
    pub promotion_repository: Option<PathBuf>,
    pub pull_request: Option<PathBuf>,
    pub logs: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_spelled_as_serde_spells_them() {
        use StageName::*;
        for s in [
            Validate, Render, Train, Evaluate, Staging, Holdout, Promote, Gate, Deploy,
        ] {
            assert_eq!(
                serde_json::to_value(s).expect("serialises"),
                serde_json::Value::from(s.as_str())
            );
        }
    }
}
