//! The monitor report (`mlops monitor --report`): what was read, each feature's and the
//! predictions' drift from the model's baseline, the metrics on ground truth, and every limit
//! broken; its renderings (terminal text, the Actions step summary with charts).
//! `schema/monitor-report.schema.json` is generated from [`Report`].

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What `mlops monitor` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// `NAME@VERSION` monitored.
    pub model: String,
    /// Its artifact's SHA-256: only lines this artifact answered are counted.
    pub artifact: String,
    /// Where the capture was read: a directory, a file or `s3://BUCKET/PREFIX`.
    pub captured: String,
    /// Lines answered before this time (RFC 3339) were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub read: Read,
    /// Each feature, in the signature's order.
    pub features: Vec<Drift>,
    pub predictions: Drift,
    /// With `--ground-truth`: the labels joined by inference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<GroundTruth>,
    /// Each limit broken, as a sentence; empty when nothing drifted.
    pub findings: Vec<String>,
    pub drifted: bool,
}

/// How much was read, and what was left out and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub files: u64,
    /// Requests (capture lines) counted.
    pub requests: u64,
    /// Rows counted (a request may hold several).
    pub rows: u64,
    /// Lines another artifact answered (another version, before or after a deploy).
    pub other_model: u64,
    /// Lines before `--since`.
    pub before_since: u64,
    /// Lines that could not be read; the first few are in `problems`.
    pub unreadable: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One column compared with its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Population stability index over the baseline's bins (`None`: no values to compare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// Kolmogorov-Smirnov statistic over the same bins (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    pub missing: MissingRates,
    /// The limits this column was judged by.
    pub limits: Limits,
    /// The measures over their limit: `psi`, `ks`, `missing`.
    pub over: Vec<String>,
    /// Each bin's share of the values, at training and now.
    pub bins: Vec<Bin>,
}

/// A column's share of rows without a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingRates {
    pub baseline: f64,
    pub current: f64,
}

/// The limits a column is judged by (`None`: not judged on that measure).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub psi: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

/// One bin: its label and its share of the column's values at training and now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    pub label: String,
    pub baseline: f64,
    pub current: f64,
}

/// Ground truth joined to the captured predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroundTruth {
    pub path: String,
    /// Labels in the file.
    pub labels: u64,
    /// Captured rows that had a label.
    pub joined: u64,
    pub metrics: Vec<MetricDrift>,
}

/// A metric on production's labelled rows compared with the holdout set's at evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricDrift {
    pub metric: String,
    /// On the holdout set when the model was evaluated (`None`: the card has no such value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<f64>,
    pub observed: f64,
    /// How much worse it is (a fall of a score, a rise of an error); negative is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worse_by: Option<f64>,
    pub limit: f64,
    pub over: bool,
}

impl Drift {
    pub fn drifted(&self) -> bool {
        !self.over.is_empty()
    }
}

fn value(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

impl Report {
    /// For the terminal: what was read, one line per column, and the findings.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let r = &self.read;
        let _ = writeln!(
            out,
            "{}: {} rows in {} requests from {} files of {}",
            self.model, r.rows, r.requests, r.files, self.captured
        );
        let left_out = [
            (r.other_model, "answered by another artifact"),
            (r.before_since, "before --since"),
            (r.unreadable, "unreadable"),
        ];
        for (n, why) in left_out {
            if n > 0 {
                let _ = writeln!(out, "  {n} lines left out: {why}");
            }
        }
        for p in &r.problems {
            let _ = writeln!(out, "  {p}");
        }
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>8} {:>10}  verdict",
            "column", "psi", "ks", "missing"
        );
        for d in self
            .features
            .iter()
            .chain(std::iter::once(&self.predictions))
        {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>8} {:>10}  {}",
                d.column,
                value(d.psi),
                value(d.ks),
                format!("{:.3}", d.missing.current),
                if d.drifted() {
                    format!("DRIFT ({})", d.over.join(", "))
                } else {
                    "ok".to_owned()
                }
            );
        }
        if let Some(g) = &self.ground_truth {
            let _ = writeln!(
                out,
                "ground truth: {} of {} labels joined ({})",
                g.joined, g.labels, g.path
            );
            for m in &g.metrics {
                let _ = writeln!(
                    out,
                    "  {:<16} {:.4} (evaluated {}) {}",
                    m.metric,
                    m.observed,
                    value(m.evaluated),
                    if m.over { "DRIFT" } else { "ok" }
                );
            }
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "no drift");
        } else {
            let _ = writeln!(out, "drift:");
            for f in &self.findings {
                let _ = writeln!(out, "  - {f}");
            }
        }
        out
    }

    /// The step summary (also the body of the monitor workflow's issue): the verdict, a table
    /// of every column, a chart of each column's PSI, and each drifted column's bins at training
    /// and now.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "### Monitor `{}`: {}\n\n",
            self.model,
            if self.drifted { "drift" } else { "no drift" }
        );
        let r = &self.read;
        let _ = writeln!(
            md,
            "{} rows in {} requests from {} capture files of `{}`{}.\n",
            r.rows,
            r.requests,
            r.files,
            self.captured,
            self.since
                .as_ref()
                .map_or_else(String::new, |s| format!(" since {s}"))
        );
        for f in &self.findings {
            let _ = writeln!(md, "- {f}");
        }
        if !self.findings.is_empty() {
            md.push('\n');
        }
        md.push_str("| column | PSI | KS | missing (training → now) | verdict |\n|---|---:|---:|---:|---|\n");
        for d in self
            .features
            .iter()
            .chain(std::iter::once(&self.predictions))
        {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {:.3} → {:.3} | {} |",
                d.column,
                value(d.psi),
                value(d.ks),
                d.missing.baseline,
                d.missing.current,
                if d.drifted() {
                    format!("**drift** ({})", d.over.join(", "))
                } else {
                    "ok".to_owned()
                }
            );
        }
        if let Some(g) = &self.ground_truth {
            let _ = write!(
                md,
                "\nGround truth: {} of {} labels joined.\n\n| metric | evaluated | now | limit | verdict |\n|---|---:|---:|---:|---|\n",
                g.joined, g.labels
            );
            for m in &g.metrics {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.4} | {:.4} | {} |",
                    m.metric,
                    value(m.evaluated),
                    m.observed,
                    m.limit,
                    if m.over { "**drift**" } else { "ok" }
                );
            }
        }
        let columns: Vec<&Drift> = self
            .features
            .iter()
            .chain(std::iter::once(&self.predictions))
            .collect();
        let _ = write!(
            md,
            "\n```mermaid\nxychart-beta\n    title \"PSI per column (limit {})\"\n    x-axis [{}]\n    y-axis \"PSI\"\n    bar [{}]\n```\n",
            self.predictions.limits.psi,
            columns
                .iter()
                .map(|d| format!("\"{}\"", chart_text(&d.column)))
                .collect::<Vec<_>>()
                .join(", "),
            columns
                .iter()
                .map(|d| format!("{:.4}", d.psi.unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for d in columns.iter().filter(|d| d.drifted()).take(MAX_CHARTS) {
            let _ = write!(
                md,
                "\n`{}`: share of values per bin, training (first) and now (second)\n\n```mermaid\nxychart-beta\n    x-axis [{}]\n    y-axis \"share\" 0 --> 1\n    bar [{}]\n    bar [{}]\n```\n",
                d.column,
                d.bins
                    .iter()
                    .map(|b| format!("\"{}\"", chart_text(&b.label)))
                    .collect::<Vec<_>>()
                    .join(", "),
                d.bins
                    .iter()
                    .map(|b| format!("{:.4}", b.baseline))
                    .collect::<Vec<_>>()
                    .join(", "),
                d.bins
                    .iter()
                    .map(|b| format!("{:.4}", b.current))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        md
    }
}

/// Drifted columns charted bin by bin in one summary.
const MAX_CHARTS: usize = 10;

/// A label as mermaid's quoted text takes it (no double quotes, short).
fn chart_text(label: &str) -> String {
    label
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .take(24)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(column: &str, psi: f64, over: &[&str]) -> Drift {
        Drift {
            column: column.to_owned(),
            kind: "numeric".to_owned(),
            psi: Some(psi),
            ks: Some(0.1),
            missing: MissingRates {
                baseline: 0.0,
                current: 0.0,
            },
            limits: Limits {
                psi: 0.2,
                ks: Some(0.2),
                missing: Some(0.05),
            },
            over: over.iter().map(|s| (*s).to_owned()).collect(),
            bins: vec![
                Bin {
                    label: "< 1".to_owned(),
                    baseline: 0.5,
                    current: 0.1,
                },
                Bin {
                    label: ">= \"1\"".to_owned(),
                    baseline: 0.5,
                    current: 0.9,
                },
            ],
        }
    }

    #[test]
    fn the_summary_names_each_drifted_column_and_charts_it() {
        let report = Report {
            model: "churn@2".to_owned(),
            artifact: "ab".repeat(32),
            captured: "captures/".to_owned(),
            since: None,
            read: Read {
                files: 2,
                requests: 10,
                rows: 20,
                ..Read::default()
            },
            features: vec![drift("age", 0.9, &["psi"]), drift("income", 0.01, &[])],
            predictions: drift("prediction", 0.05, &[]),
            ground_truth: None,
            findings: vec!["feature `age`: PSI 0.9000 > 0.2".to_owned()],
            drifted: true,
        };
        let md = report.markdown();
        assert!(md.contains("### Monitor `churn@2`: drift"), "{md}");
        assert!(md.contains("| `age` | 0.9000 |"), "{md}");
        assert!(md.contains("**drift** (psi)"), "{md}");
        assert!(md.contains("`age`: share of values per bin"), "{md}");
        assert!(
            !md.contains("`income`: share"),
            "only drifted columns are charted: {md}"
        );
        assert!(
            md.contains(r#"">= 1""#),
            "quotes are dropped from chart labels: {md}"
        );
        let human = report.human();
        assert!(human.contains("DRIFT (psi)"), "{human}");
        assert!(human.contains("feature `age`"), "{human}");
    }
}
