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

impl Run {
    /// The summary `mlops run` prints: the stages as a table, where the artifacts are, and the
    /// verdict.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        out.push_str("\n| stage | result | key figure | time |\n|---|---|---|---:|\n");
        for s in &self.stages {
            let result = match s.result {
                StageResult::Ok => "ok",
                StageResult::Failed => "FAILED",
                StageResult::Skipped => "skipped",
            };
            out.push_str(&format!(
                "| {} | {result} | {} | {:.2} s |\n",
                s.stage.as_str(),
                s.figure.replace('|', "\\|"),
                s.seconds
            ));
        }
        if let Some(p) = &self.promotion {
            out.push_str(&format!("\npromotion: {p}"));
        }
        let a = &self.artifacts;
        for (what, path) in [
            ("model card", &a.model_card),
            ("holdout report", &a.holdout_report),
            ("monitor report", &a.monitor_report),
            ("pull request body", &a.pull_request),
            ("promotion repository", &a.promotion_repository),
            ("rendered files", &a.rendered),
        ] {
            if let Some(p) = path {
                out.push_str(&format!("\n{what}: {}", p.display()));
            }
        }
        out.push_str(&format!(
            "\nlogs: {}\nrun: {}\n",
            a.logs.display(),
            self.workdir.join("run.json").display()
        ));
        out.push_str(&if self.passed {
            "\nmlops run: passed\n".to_owned()
        } else {
            format!("\nmlops run: stopped (exit {})\n", self.exit_code)
        });
        out
    }
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
    Monitor,
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
            StageName::Monitor => "monitor",
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
    /// The monitor report of the staging service's capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_report: Option<PathBuf>,
    pub promotion_repository: Option<PathBuf>,
    pub pull_request: Option<PathBuf>,
    pub logs: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_a_table_with_the_verdict() {
        let run = Run {
            version: VERSION,
            manifest: "mlops.yaml".into(),
            workdir: "w".into(),
            registry: "r".into(),
            model: Some("m@1".into()),
            promotion: None,
            passed: false,
            exit_code: 1,
            stages: vec![Stage {
                stage: StageName::Holdout,
                result: StageResult::Failed,
                figure: "a | b".into(),
                seconds: 1.5,
            }],
            seconds: 1.5,
            artifacts: Artifacts {
                logs: "w/logs".into(),
                ..Artifacts::default()
            },
        };
        let s = run.summary();
        assert!(s.contains("| holdout | FAILED | a \\| b | 1.50 s |"), "{s}");
        assert!(s.contains("run: w/run.json"), "{s}");
        assert!(s.ends_with("mlops run: stopped (exit 1)\n"), "{s}");
    }

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
