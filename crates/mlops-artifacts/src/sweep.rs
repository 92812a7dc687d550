//! A hyperparameter sweep as the model card records it (`training.sweep`): every trial's
//! hyperparameters and validation metrics, the objective, and which trial was registered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The sweep that chose a registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepRecord {
    /// `grid` or `random`.
    pub method: String,
    /// The objective: a metric measured on the validation set.
    pub metric: String,
    /// `maximize` or `minimize`.
    pub goal: String,
    /// Every trial, in the order they ran.
    pub trials: Vec<TrialRecord>,
    /// The registered trial's number (`trial`).
    pub best: usize,
}

/// One trial of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrialRecord {
    /// Its number, from 1.
    pub trial: usize,
    /// The hyperparameters it set, by the sweep's names (`learning_rate`, `hidden_layers`, ...).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Its validation metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The objective's value.
    pub objective: f64,
    /// How long it trained.
    pub seconds: f64,
}

/// What one trial of a sweep fanned out over several jobs leaves beside its artifact in the
/// registry (`trial.json`), for the job that picks the best: the trial, and the job and report
/// its card will hold if it wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrialResult {
    /// The sweep's trial count, so the picking job knows how many to wait for.
    pub of: usize,
    pub record: TrialRecord,
    pub job: crate::training::Job,
    pub report: crate::training::Report,
}

impl SweepRecord {
    /// The trial registered.
    pub fn best_trial(&self) -> Option<&TrialRecord> {
        self.trials.iter().find(|t| t.trial == self.best)
    }

    /// The sweep as Markdown: a table of the trials (the registered one in bold) and a bar chart
    /// of the objective per trial, for the step summary and the promotion's pull request.
    pub fn markdown(&self) -> String {
        let names: Vec<&String> = {
            let mut seen: Vec<&String> = Vec::new();
            for t in &self.trials {
                for k in t.parameters.keys() {
                    if !seen.contains(&k) {
                        seen.push(k);
                    }
                }
            }
            seen
        };
        let mut md = format!(
            "### Sweep: {} trials ({}), judged by validation {} ({})\n\n| trial |",
            self.trials.len(),
            self.method,
            self.metric,
            self.goal
        );
        for n in &names {
            md.push_str(&format!(" {n} |"));
        }
        md.push_str(&format!(" {} | seconds |\n|---:|", self.metric));
        md.push_str(&"---|".repeat(names.len()));
        md.push_str("---:|---:|\n");
        for t in &self.trials {
            let mark = if t.trial == self.best { "**" } else { "" };
            md.push_str(&format!("| {mark}{}{mark} |", t.trial));
            for n in &names {
                let v = t
                    .parameters
                    .get(*n)
                    .map_or_else(String::new, |v| v.to_string().replace('|', "\\|"));
                md.push_str(&format!(" `{v}` |"));
            }
            md.push_str(&format!(
                " {mark}{:.4}{mark} | {:.1} |\n",
                t.objective, t.seconds
            ));
        }
        let labels: Vec<String> = self.trials.iter().map(|t| t.trial.to_string()).collect();
        let values: Vec<String> = self
            .trials
            .iter()
            .map(|t| {
                if t.objective.is_finite() {
                    format!("{:.4}", t.objective)
                } else {
                    "0".to_owned()
                }
            })
            .collect();
        md.push_str(&format!(
            "\nTrial {} was registered.\n\n```mermaid\nxychart-beta\n    title \"Validation {} per trial\"\n    x-axis \"trial\" [{}]\n    y-axis \"{}\"\n    bar [{}]\n```\n",
            self.best,
            self.metric,
            labels.join(", "),
            self.metric,
            values.join(", ")
        ));
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SweepRecord {
        let trial = |n: usize, lr: f64, acc: f64| TrialRecord {
            trial: n,
            parameters: BTreeMap::from([
                ("learning_rate".to_owned(), serde_json::json!(lr)),
                ("hidden_layers".to_owned(), serde_json::json!([64, 32])),
            ]),
            metrics: BTreeMap::from([("accuracy".to_owned(), acc)]),
            objective: acc,
            seconds: 1.25,
        };
        SweepRecord {
            method: "grid".into(),
            metric: "accuracy".into(),
            goal: "maximize".into(),
            trials: vec![trial(1, 0.001, 0.91), trial(2, 0.01, 0.95)],
            best: 2,
        }
    }

    #[test]
    fn the_markdown_has_a_row_per_trial_the_best_in_bold_and_a_chart() {
        let md = record().markdown();
        assert!(
            md.contains("| trial | hidden_layers | learning_rate | accuracy | seconds |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 | `[64,32]` | `0.001` | 0.9100 | 1.2 |"),
            "{md}"
        );
        assert!(
            md.contains("| **2** | `[64,32]` | `0.01` | **0.9500** | 1.2 |"),
            "{md}"
        );
        assert!(md.contains("x-axis \"trial\" [1, 2]"), "{md}");
        assert!(md.contains("bar [0.9100, 0.9500]"), "{md}");
        assert_eq!(record().best_trial().map(|t| t.trial), Some(2));
    }
}
