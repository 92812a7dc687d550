//! The holdout report (`mlops holdout --report`, recorded in the registry beside the version it
//! tested): metric checks (expected, observed, delta, tolerance), prediction parity, the
//! confusion matrix; the rule that decides whether it passed, and its renderings (terminal text,
//! the Actions step summary). `schema/holdout-report.schema.json` is generated from [`Report`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlops_manifest::model::Metric;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::short;
use crate::training::FileDigest;

/// Tolerance for metrics the manifest gives none for.
pub const DEFAULT_TOLERANCE: f64 = 1e-9;
/// Mismatching rows kept for the report.
const KEPT: usize = 10;

/// One metric compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub metric: String,
    /// Recorded offline at training time (`None`: the registry entry has no such value).
    pub expected: Option<f64>,
    pub observed: Option<f64>,
    pub delta: Option<f64>,
    pub tolerance: f64,
    pub pass: bool,
}

/// Compares `observed` with `recorded` for each of `metrics`.
pub fn compare(
    metrics: &[Metric],
    observed: &BTreeMap<Metric, f64>,
    recorded: &BTreeMap<String, f64>,
    tolerances: &BTreeMap<Metric, f64>,
) -> Vec<Check> {
    metrics
        .iter()
        .map(|m| {
            let expected = recorded.get(m.name()).copied();
            let observed = observed.get(m).copied();
            let tolerance = tolerances.get(m).copied().unwrap_or(DEFAULT_TOLERANCE);
            let delta = expected.zip(observed).map(|(e, o)| o - e);
            Check {
                metric: m.name().to_owned(),
                expected,
                observed,
                delta,
                tolerance,
                pass: delta.is_some_and(|d| d.abs() <= tolerance),
            }
        })
        .collect()
}

/// A row the service predicted differently from the model offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mismatch {
    /// The row's line in the holdout file.
    pub line: u64,
    /// The offline prediction.
    pub expected: String,
    /// The service's.
    pub observed: String,
}

/// Row-by-row agreement between the service and the model offline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parity {
    pub enabled: bool,
    pub checked: u64,
    pub mismatches: u64,
    /// The first mismatching rows.
    pub first: Vec<Mismatch>,
    /// Why the rows were not compared, when they were not (`--no-parity`, or a service whose
    /// server mlops cannot reproduce offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Parity {
    /// The sentence a report shows: how many rows match, or why none was compared.
    pub fn sentence(&self) -> String {
        if self.enabled {
            format!(
                "{} of {} rows match the model's offline predictions",
                self.checked - self.mismatches,
                self.checked
            )
        } else {
            format!(
                "not checked ({}); the metrics alone were compared",
                self.why_skipped()
            )
        }
    }

    /// Why the rows were not compared (a report from before `skipped` was recorded had only
    /// `--no-parity` to turn parity off).
    pub fn why_skipped(&self) -> &str {
        self.skipped.as_deref().unwrap_or("--no-parity")
    }
}

impl Parity {
    /// Counts a mismatching row, keeping the first few.
    pub fn mismatch(&mut self, m: Mismatch) {
        self.mismatches += 1;
        if self.first.len() < KEPT {
            self.first.push(m);
        }
    }
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// The confusion matrix with its labels and per-class scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfusionReport {
    pub labels: Vec<String>,
    /// Row = true class, column = the service's prediction.
    pub matrix: Vec<Vec<u64>>,
    pub per_class: BTreeMap<String, ClassScores>,
}

/// What `mlops holdout --report FILE` (and `--format json`) writes. Its SHA-256 is the
/// `holdout.report_sha256` of the production pin and is named in the `mlops/holdout` commit
/// status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub model: String,
    pub endpoint: String,
    pub dataset: FileDigest,
    pub rows: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub metrics: Vec<Check>,
    pub parity: Parity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<ConfusionReport>,
    /// The holdout set the recorded metrics were measured on (the registry entry's
    /// `datasets.holdout`), when the entry records one.
    pub recorded_dataset: Option<FileDigest>,
    /// Findings that do not fail the test but change what it shows (e.g. the metrics were
    /// recorded on other data).
    pub warnings: Vec<String>,
    /// Other findings that fail the test (e.g. the service serves another artifact).
    pub problems: Vec<String>,
    /// How long each request took, when the test measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// The manifest's `holdout.slo` limits against what was measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<SloCheck>,
    /// The candidate against the version production pins, on the same rows (`mlops holdout
    /// --compare production`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The wire protocol the service was tested in (`sagemaker`, `v2`, `mlflow`), when it was not
    /// mlops' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub passed: bool,
}

/// The candidate and the version production pins (the incumbent), scored on the same rows of
/// the same holdout file through their serving paths, and `promotion.no_regression` applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The incumbent, `NAME@VERSION`, as production's pin names it.
    pub incumbent: String,
    /// Its artifact's digest (the pin's, checked against the registry's bytes).
    pub incumbent_artifact_sha256: String,
    /// Where the incumbent answered: its service's address, or `local` (the pinned artifact
    /// served by this process).
    pub incumbent_endpoint: String,
    /// Rows both models were scored on.
    pub rows: u64,
    pub metrics: Vec<MetricComparison>,
    pub test: PairedTest,
    /// Every metric with an allowance is within it.
    pub passed: bool,
}

/// One metric of the candidate against the incumbent's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricComparison {
    pub metric: String,
    pub candidate: f64,
    pub incumbent: f64,
    /// `candidate - incumbent`.
    pub delta: f64,
    /// How much worse the candidate is, in the metric's direction (negative: better).
    pub drop: f64,
    /// The largest drop `promotion.no_regression` allows, in the metric's units (`None`: shown,
    /// not checked).
    pub allowed: Option<f64>,
    /// The allowance as the manifest gives it (`0.01`, `2%`).
    pub allowance: Option<String>,
    pub pass: bool,
}

/// The paired test of the difference between the two models on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PairedTest {
    /// `mcnemar-exact` (classification: the rows exactly one model got right) or
    /// `bootstrap-squared-error` (regression: a percentile bootstrap interval of the mean of the
    /// candidate's squared error less the incumbent's, row by row).
    pub method: String,
    /// McNemar: rows only the candidate got right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_only: Option<u64>,
    /// McNemar: rows only the incumbent got right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incumbent_only: Option<u64>,
    /// McNemar: the two-sided exact p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Bootstrap: the mean paired difference and its interval at `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_difference: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The confidence level of the interval, or one less the significance level of the p-value.
    pub level: f64,
    /// Whether the difference is beyond the noise at `level`.
    pub significant: bool,
}

impl PairedTest {
    /// One sentence: what the test says about the difference.
    pub fn sentence(&self) -> String {
        let beyond = if self.significant {
            "beyond the noise"
        } else {
            "within the noise"
        };
        match (self.p_value, self.interval) {
            (Some(p), _) => format!(
                "McNemar's exact test: {} rows only the candidate got right, {} only the \
                 incumbent; p = {p:.4}: the difference is {beyond} at the {}% level",
                self.candidate_only.unwrap_or(0),
                self.incumbent_only.unwrap_or(0),
                pct(1.0 - self.level)
            ),
            (None, Some([lo, hi])) => format!(
                "paired bootstrap: the candidate's squared error less the incumbent's is {:+.6} \
                 on average, {}% interval [{lo:+.6}, {hi:+.6}]: the difference is {beyond}",
                self.mean_difference.unwrap_or(0.0),
                pct(self.level)
            ),
            (None, None) => "no rows to test".to_owned(),
        }
    }
}

/// A fraction as a percentage without trailing zeros (`0.05` → `5`).
fn pct(f: f64) -> String {
    let v = (f * 1e4).round() / 1e2;
    format!("{v}")
}

impl Comparison {
    /// Why the candidate is refused, one line per metric over its allowance.
    pub fn failures(&self) -> Vec<String> {
        self.metrics
            .iter()
            .filter(|m| !m.pass)
            .map(|m| {
                format!(
                    "no-regression: {} is {:.6} for the candidate against {:.6} for {} in \
                     production, a drop of {:.6} over the {} allowed \
                     (promotion.no_regression.{}); {}",
                    m.metric,
                    m.candidate,
                    m.incumbent,
                    self.incumbent,
                    m.drop,
                    m.allowance.as_deref().unwrap_or("0"),
                    m.metric,
                    self.test.sentence()
                )
            })
            .collect()
    }

    /// The comparison as a table and a chart, for the step summary and the PR body.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Against production ({}, {} rows, same file)\n",
            self.incumbent, self.rows
        );
        let _ = writeln!(
            s,
            "| metric | production | candidate | delta | allowed drop | result |\n|---|---:|---:|---:|---:|---|"
        );
        for m in &self.metrics {
            let _ = writeln!(
                s,
                "| {} | {:.6} | {:.6} | {:+.6} | {} | {} |",
                m.metric,
                m.incumbent,
                m.candidate,
                m.delta,
                m.allowance.as_deref().unwrap_or("–"),
                match (m.allowed, m.pass) {
                    (None, _) => "shown",
                    (Some(_), true) => "✅ pass",
                    (Some(_), false) => "❌ regression",
                }
            );
        }
        let _ = writeln!(s, "\n{}.", self.test.sentence());
        let names: Vec<String> = self
            .metrics
            .iter()
            .map(|m| format!("\"{}\"", m.metric))
            .collect();
        let values = |f: fn(&MetricComparison) -> f64| {
            self.metrics
                .iter()
                .map(|m| format!("{:.6}", f(m)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "\n```mermaid\nxychart-beta\n  title \"Production (first bar) and candidate (second bar)\"\n  x-axis [{}]\n  y-axis \"value\"\n  bar [{}]\n  bar [{}]\n```",
            names.join(", "),
            values(|m| m.incumbent),
            values(|m| m.candidate)
        );
        s
    }
}

/// Upper bounds of the latency histogram's buckets, in milliseconds (the last bucket, above the
/// last bound, is unbounded).
pub const LATENCY_BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

/// The time from sending a request to its whole answer, over the requests that were answered
/// (the attempt that succeeded; retries and their waits are not in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub requests: u64,
    pub mean_ms: f64,
    /// Nearest-rank percentiles: the smallest time at least that share of requests took.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Requests per bucket of [`LATENCY_BUCKETS_MS`] (one more: above the last bound).
    pub histogram: Vec<u64>,
}

impl Latency {
    /// The figures of `micros`, one per request; `None` for no request.
    pub fn of(micros: &[u64]) -> Option<Latency> {
        let mut sorted = micros.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let last = *sorted.last()?;
        let ms = |us: u64| us as f64 / 1000.0;
        let rank = |p: f64| {
            let k = ((p * n as f64).ceil() as usize).clamp(1, n);
            sorted.get(k - 1).copied().map_or(0.0, ms)
        };
        let mut histogram = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
        for &us in &sorted {
            let i = LATENCY_BUCKETS_MS
                .iter()
                .position(|&b| ms(us) <= b)
                .unwrap_or(LATENCY_BUCKETS_MS.len());
            if let Some(c) = histogram.get_mut(i) {
                *c += 1;
            }
        }
        Some(Latency {
            requests: n as u64,
            mean_ms: sorted.iter().map(|&us| ms(us)).sum::<f64>() / n as f64,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: ms(last),
            histogram,
        })
    }
}

/// One `holdout.slo` limit against what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloCheck {
    /// The limit's name in `holdout.slo` (`p99_ms`, `min_rows_per_second`, ...).
    pub limit: String,
    pub bound: f64,
    pub observed: f64,
    pub pass: bool,
}

impl Report {
    /// A report of the figures measured, settled (passed or not).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: String,
        endpoint: String,
        dataset: FileDigest,
        rows: u64,
        requests: u64,
        retries: u64,
        seconds: f64,
        metrics: Vec<Check>,
        confusion: Option<ConfusionReport>,
        parity: Parity,
    ) -> Self {
        let mut r = Self {
            model,
            endpoint,
            dataset,
            rows,
            requests,
            retries,
            seconds,
            rows_per_second: if seconds > 0.0 {
                rows as f64 / seconds
            } else {
                0.0
            },
            metrics,
            parity,
            confusion,
            recorded_dataset: None,
            warnings: Vec::new(),
            problems: Vec::new(),
            latency: None,
            slo: Vec::new(),
            comparison: None,
            protocol: None,
            passed: false,
        };
        r.settle();
        r
    }

    /// Adds a finding that fails the test.
    pub fn problem(&mut self, p: String) {
        self.problems.push(p);
        self.settle();
    }

    /// Records the holdout set the registry entry's metrics were measured on, and warns when the
    /// file tested is not that one byte for byte: the metric checks then compare two datasets
    /// (a pass or a failure says as much about the data as about the service), while prediction
    /// parity, row by row, holds either way.
    pub fn recorded_on(&mut self, recorded: FileDigest) {
        if recorded.sha256 != self.dataset.sha256 {
            self.warnings.push(format!(
                "`{}` ({} rows, SHA-256 {}) is not the holdout set the recorded metrics were \
                 measured on (`{}`, {} rows, SHA-256 {}): the metric checks compare two \
                 datasets; prediction parity is checked row by row either way",
                self.dataset.path,
                self.dataset.rows,
                short(&self.dataset.sha256),
                recorded.path,
                recorded.rows,
                short(&recorded.sha256),
            ));
        }
        self.recorded_dataset = Some(recorded);
    }

    /// Records the requests' latencies (microseconds, one per answered request) and checks them
    /// and the throughput against `slo`.
    pub fn measured(&mut self, micros: &[u64], slo: &mlops_manifest::model::Slo) {
        self.latency = Latency::of(micros);
        let latency = self.latency.as_ref();
        let limits = [
            ("p50_ms", slo.p50_ms, latency.map(|l| l.p50_ms), true),
            ("p95_ms", slo.p95_ms, latency.map(|l| l.p95_ms), true),
            ("p99_ms", slo.p99_ms, latency.map(|l| l.p99_ms), true),
            (
                "min_rows_per_second",
                slo.min_rows_per_second,
                Some(self.rows_per_second),
                false,
            ),
        ];
        self.slo = limits
            .into_iter()
            .filter_map(|(limit, bound, observed, at_most)| {
                let (bound, observed) = (bound?, observed.unwrap_or(0.0));
                Some(SloCheck {
                    limit: limit.to_owned(),
                    bound,
                    observed,
                    pass: if at_most {
                        observed <= bound
                    } else {
                        observed >= bound
                    },
                })
            })
            .collect();
        self.settle();
    }

    fn settle(&mut self) {
        self.passed = self.problems.is_empty()
            && self.parity.mismatches == 0
            && self.metrics.iter().all(|c| c.pass)
            && self.slo.iter().all(|c| c.pass)
            && self.comparison.as_ref().is_none_or(|c| c.passed);
    }

    /// Records the comparison with production (which settles the report again).
    pub fn compared(&mut self, comparison: Comparison) {
        self.comparison = Some(comparison);
        self.settle();
    }

    /// Why the test failed, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.slo.iter().filter(|c| !c.pass) {
            out.push(if c.limit == "min_rows_per_second" {
                format!(
                    "holdout.slo.{}: the service answered {:.0} rows/s, under the limit of {}",
                    c.limit, c.observed, c.bound
                )
            } else {
                format!(
                    "holdout.slo.{}: the requests' {} was {:.1} ms, over the limit of {} ms",
                    c.limit,
                    c.limit.trim_end_matches("_ms"),
                    c.observed,
                    c.bound
                )
            });
        }
        for c in self.metrics.iter().filter(|c| !c.pass) {
            out.push(match (c.expected, c.observed, c.delta) {
                (None, _, _) => format!(
                    "{}: the registry entry records no holdout value for it; train the model \
                     again or drop it from holdout.metrics",
                    c.metric
                ),
                (_, None, _) => format!("{}: does not apply to this model's task", c.metric),
                (Some(e), Some(o), Some(d)) => format!(
                    "{}: the service scores {o:.6}, training recorded {e:.6} (delta {d:+.6}, \
                     tolerance {})",
                    c.metric, c.tolerance
                ),
                _ => format!("{}: not comparable", c.metric),
            });
        }
        if self.parity.mismatches > 0 {
            let shown: Vec<String> = self
                .parity
                .first
                .iter()
                .map(|m| {
                    format!(
                        "line {}: offline {}, service {}",
                        m.line, m.expected, m.observed
                    )
                })
                .collect();
            out.push(format!(
                "prediction parity: {} of {} rows differ from the model's offline predictions \
                 (first: {})",
                self.parity.mismatches,
                self.parity.checked,
                shown.join("; ")
            ));
        }
        if let Some(c) = &self.comparison {
            out.extend(c.failures());
        }
        out.extend(self.problems.iter().cloned());
        out
    }

    /// The terminal rendering.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "holdout {} against {}{}: {} rows in {} requests ({} retries), {:.2} s, {:.0} rows/s",
            self.model,
            self.endpoint,
            self.protocol
                .as_deref()
                .map_or_else(String::new, |p| format!(" (the {p} protocol)")),
            self.rows,
            self.requests,
            self.retries,
            self.seconds,
            self.rows_per_second
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>12} {:>12} {:>12} {:>10}  result",
            "metric", "expected", "observed", "delta", "tolerance"
        );
        for c in &self.metrics {
            let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.6}"));
            let _ = writeln!(
                s,
                "  {:<16} {:>12} {:>12} {:>12} {:>10}  {}",
                c.metric,
                f(c.expected),
                f(c.observed),
                c.delta.map_or("-".to_owned(), |d| format!("{d:+.6}")),
                c.tolerance,
                if c.pass { "pass" } else { "FAIL" }
            );
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "  latency per request: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
                 ({} requests)",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.requests
            );
        }
        for c in &self.slo {
            let _ = writeln!(
                s,
                "  slo {}: {:.1} (limit {})  {}",
                c.limit,
                c.observed,
                c.bound,
                if c.pass { "pass" } else { "FAIL" }
            );
        }
        if let Some(c) = &self.comparison {
            let _ = writeln!(
                s,
                "  against production {} ({}), {} rows:",
                c.incumbent, c.incumbent_endpoint, c.rows
            );
            for m in &c.metrics {
                let _ = writeln!(
                    s,
                    "    {:<16} production {:.6}, candidate {:.6} ({:+.6}), allowed drop {}  {}",
                    m.metric,
                    m.incumbent,
                    m.candidate,
                    m.delta,
                    m.allowance.as_deref().unwrap_or("-"),
                    match (m.allowed, m.pass) {
                        (None, _) => "shown",
                        (Some(_), true) => "pass",
                        (Some(_), false) => "REGRESSION",
                    }
                );
            }
            let _ = writeln!(s, "    {}", c.test.sentence());
        }
        let _ = writeln!(s, "  parity: {}", self.parity.sentence());
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        for f in self.failures() {
            let _ = writeln!(s, "  FAIL {f}");
        }
        let _ = writeln!(s, "{}", if self.passed { "passed" } else { "FAILED" });
        s
    }

    /// The latency figures, the `holdout.slo` limits against them and the histogram as a chart
    /// (empty when the test measured no latency), for the step summary and the PR body.
    pub fn latency_markdown(&self) -> String {
        let Some(l) = &self.latency else {
            return String::new();
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n| latency per request ({} requests) | p50 | p95 | p99 | max | mean |\n|---|---:|---:|---:|---:|---:|\n| ms | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            l.requests, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.mean_ms
        );
        if !self.slo.is_empty() {
            let _ = writeln!(
                s,
                "\n| `holdout.slo` | limit | observed | result |\n|---|---:|---:|---|"
            );
            for c in &self.slo {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.1} | {} |",
                    c.limit,
                    c.bound,
                    c.observed,
                    if c.pass { "✅ pass" } else { "❌ fail" }
                );
            }
        }
        let labels: Vec<String> = LATENCY_BUCKETS_MS
            .iter()
            .map(|b| format!("\"≤{b}\""))
            .chain(std::iter::once(format!(
                "\">{}\"",
                LATENCY_BUCKETS_MS.last().copied().unwrap_or_default()
            )))
            .collect();
        let counts: Vec<String> = l.histogram.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "\n```mermaid\nxychart-beta\n  title \"Requests by latency (ms)\"\n  x-axis [{}]\n  y-axis \"requests\"\n  bar [{}]\n```",
            labels.join(", "),
            counts.join(", ")
        );
        s
    }

    /// The step summary: the metric table, the confusion matrix and a chart.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Holdout test: {} {}\n",
            self.model,
            if self.passed { "passed" } else { "FAILED" }
        );
        let _ = writeln!(
            s,
            "{} rows from `{}` (SHA-256 `{}`) through `{}` in {:.2} s ({:.0} rows/s).\n",
            self.rows,
            self.dataset.path,
            self.dataset.sha256,
            self.endpoint,
            self.seconds,
            self.rows_per_second
        );
        let _ = writeln!(
            s,
            "| metric | expected (training) | observed (service) | delta | tolerance | result |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
        for c in &self.metrics {
            let f = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.6}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                c.metric,
                f(c.expected),
                f(c.observed),
                c.delta.map_or("–".to_owned(), |d| format!("{d:+.6}")),
                c.tolerance,
                if c.pass { "✅ pass" } else { "❌ fail" }
            );
        }
        let _ = writeln!(s, "\nPrediction parity: {}.", self.parity.sentence());
        s.push_str(&self.latency_markdown());
        if let Some(c) = &self.comparison {
            s.push_str(&c.markdown());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "\n> [!WARNING]\n> {w}");
        }
        let failures = self.failures();
        if !failures.is_empty() {
            let _ = writeln!(s, "\n### Failures\n");
            for f in failures {
                let _ = writeln!(s, "- {}", f.replace('|', "\\|"));
            }
        }
        if let Some(c) = &self.confusion {
            let _ = writeln!(
                s,
                "\n### Confusion matrix (rows: truth, columns: service)\n"
            );
            let _ = writeln!(s, "| | {} |", c.labels.join(" | "));
            let _ = writeln!(s, "|---|{}", "---:|".repeat(c.labels.len()));
            for (label, row) in c.labels.iter().zip(&c.matrix) {
                let cells: Vec<String> = row.iter().map(u64::to_string).collect();
                let _ = writeln!(s, "| **{label}** | {} |", cells.join(" | "));
            }
            let _ = writeln!(s, "\n```mermaid\nxychart-beta");
            let _ = writeln!(s, "  title \"Recall per class (service)\"");
            let labels: Vec<String> = c.labels.iter().map(|l| format!("\"{l}\"")).collect();
            let _ = writeln!(s, "  x-axis [{}]", labels.join(", "));
            let _ = writeln!(s, "  y-axis \"recall\" 0 --> 1");
            let recalls: Vec<String> = c
                .labels
                .iter()
                .map(|l| format!("{:.4}", c.per_class.get(l).map_or(0.0, |p| p.recall)))
                .collect();
            let _ = writeln!(s, "  bar [{}]", recalls.join(", "));
            let _ = writeln!(s, "```");
        }
        s
    }
}

/// Whether a recorded holdout report (its bytes, as the registry keeps them) vouches for
/// `reference`: it is a report of that model, and it passed. Production's deploy asks this of
/// the report its pin names; the reason when it does not.
pub fn vouches(
    report: &[u8],
    reference: &str,
    compared: Option<&crate::pin::PinnedComparison>,
) -> Result<(), String> {
    let report: Report = serde_json::from_slice(report)
        .map_err(|e| format!("the recorded holdout report is not a holdout report: {e}"))?;
    if report.model != reference {
        return Err(format!(
            "the recorded holdout report tested {}, not {reference}",
            report.model
        ));
    }
    if !report.passed {
        return Err(format!(
            "the recorded holdout test of {reference} did not pass"
        ));
    }
    // The pin's word on the comparison with production must be the report's own.
    let recorded = report
        .comparison
        .as_ref()
        .map(|c| crate::pin::PinnedComparison {
            model: c.incumbent.clone(),
            artifact_sha256: c.incumbent_artifact_sha256.clone(),
            passed: c.passed,
        });
    if recorded.as_ref() != compared {
        let said = |c: Option<&crate::pin::PinnedComparison>| {
            c.map_or_else(
                || "no comparison with production".to_owned(),
                |c| {
                    format!(
                        "a comparison with {} (artifact {}) that {}",
                        c.model,
                        short(&c.artifact_sha256),
                        if c.passed { "passed" } else { "failed" }
                    )
                },
            )
        };
        return Err(format!(
            "the pin of {reference} records {}, but its recorded holdout report holds {}",
            said(compared),
            said(recorded.as_ref())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_report_vouches_only_for_its_model_and_only_when_it_passed() {
        let r = |model: &str, passed: bool| {
            let mut report = Report::new(
                model.into(),
                "http://staging/invocations".into(),
                digest(),
                4,
                1,
                0,
                0.5,
                Vec::new(),
                None,
                Parity::default(),
            );
            report.passed = passed;
            serde_json::to_string(&report).expect("serialises")
        };
        assert_eq!(
            vouches(r("digits@2", true).as_bytes(), "digits@2", None),
            Ok(())
        );
        let other = vouches(r("digits@1", true).as_bytes(), "digits@2", None).expect_err("other");
        assert!(other.contains("tested digits@1, not digits@2"), "{other}");
        let failed =
            vouches(r("digits@2", false).as_bytes(), "digits@2", None).expect_err("failed");
        assert!(failed.contains("did not pass"), "{failed}");
        assert!(vouches(b"not json", "digits@2", None).is_err());
        // Only a whole report vouches: not a fragment that says "passed".
        let fragment = vouches(
            b"{\"model\": \"digits@2\", \"passed\": true}",
            "digits@2",
            None,
        );
        assert!(fragment.is_err(), "{fragment:?}");
        // The pin's word on the comparison with production is the report's own, or nothing.
        let compared = |passed: bool| {
            let mut report: Report = serde_json::from_str(&r("digits@2", true)).expect("report");
            let mut c = sample_comparison(if passed { 0.0 } else { 0.05 });
            c.passed = passed;
            report.comparison = Some(c);
            report.passed = true;
            serde_json::to_string(&report).expect("serialises")
        };
        let pinned = |model: &str, passed: bool| crate::pin::PinnedComparison {
            model: model.into(),
            artifact_sha256: "e".repeat(64),
            passed,
        };
        let with = compared(true);
        assert_eq!(
            vouches(with.as_bytes(), "digits@2", Some(&pinned("digits@1", true))),
            Ok(())
        );
        for (report, pin) in [
            // A pin that claims a comparison its report never made.
            (r("digits@2", true), Some(pinned("digits@1", true))),
            // A pin that hides the comparison its report made.
            (with.clone(), None),
            // Another incumbent, or a failure turned into a pass.
            (with.clone(), Some(pinned("digits@0", true))),
            (compared(false), Some(pinned("digits@1", true))),
        ] {
            let why = vouches(report.as_bytes(), "digits@2", pin.as_ref()).expect_err("refused");
            assert!(why.contains("its recorded holdout report holds"), "{why}");
        }
    }

    /// Nearest-rank percentiles (the smallest time at least that share of requests took), the
    /// histogram's buckets, and the `holdout.slo` limits failing the report by name.
    #[test]
    fn latency_percentiles_and_slo_limits() {
        // 1..=100 ms: p50 is 50 ms, p95 95 ms, p99 99 ms.
        let micros: Vec<u64> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let l = Latency::of(&micros).expect("measured");
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(l.histogram.iter().sum::<u64>(), 100);
        // ≤1: 1 ms; ≤2.5: 2 ms; ≤5: 3..=5; ≤10: 6..=10; ≤25; ≤50; ≤100.
        assert_eq!(&l.histogram[..7], &[1, 1, 3, 5, 15, 25, 50]);
        assert_eq!(Latency::of(&[]), None);
        assert_eq!(Latency::of(&[7_000]).map(|l| l.p99_ms), Some(7.0));

        let mut report = Report::new(
            "digits@2".into(),
            "http://staging".into(),
            digest(),
            400,
            100,
            0,
            2.0,
            Vec::new(),
            None,
            Parity::default(),
        );
        let slo = mlops_manifest::model::Slo {
            p99_ms: Some(80.0),
            p50_ms: Some(60.0),
            min_rows_per_second: Some(500.0),
            ..Default::default()
        };
        report.measured(&micros, &slo);
        assert!(!report.passed);
        let failures = report.failures().join("\n");
        assert!(failures.contains("holdout.slo.p99_ms"), "{failures}");
        assert!(
            failures.contains("99.0 ms, over the limit of 80 ms"),
            "{failures}"
        );
        assert!(
            failures.contains("holdout.slo.min_rows_per_second"),
            "{failures}"
        );
        assert!(!failures.contains("p50_ms"), "{failures}");
        assert!(
            report
                .markdown()
                .contains("| p99_ms | 80 | 99.0 | ❌ fail |")
        );
        report.measured(&micros, &mlops_manifest::model::Slo::default());
        assert!(report.passed && report.slo.is_empty());
        assert!(report.human().contains("p99 99.0 ms"), "{}", report.human());
    }

    fn digest() -> FileDigest {
        FileDigest {
            path: "holdout.csv".into(),
            sha256: "ab".into(),
            bytes: 10,
            rows: 4,
        }
    }

    #[test]
    fn checks_fail_outside_the_tolerance_and_name_the_metric() {
        let observed = BTreeMap::from([(Metric::Accuracy, 0.95), (Metric::F1Macro, 0.9)]);
        let recorded =
            BTreeMap::from([("accuracy".to_owned(), 0.95), ("f1_macro".to_owned(), 0.8)]);
        let tolerances = BTreeMap::from([(Metric::F1Macro, 0.05)]);
        let checks = compare(
            &[Metric::Accuracy, Metric::F1Macro, Metric::Rmse],
            &observed,
            &recorded,
            &tolerances,
        );
        assert!(checks[0].pass);
        assert!(!checks[1].pass);
        assert!((checks[1].delta.expect("delta") - 0.1).abs() < 1e-12);
        assert!(!checks[2].pass);
        let r = Report::new(
            "m@1".into(),
            "http://x/invocations".into(),
            digest(),
            4,
            1,
            0,
            0.5,
            checks,
            None,
            Parity::default(),
        );
        assert!(!r.passed);
        let f = r.failures();
        assert!(
            f[0].starts_with("f1_macro: the service scores 0.900000, training recorded 0.800000")
        );
        assert!(f[1].starts_with("rmse: the registry entry records no holdout value"));
        assert!(r.human().contains("FAIL f1_macro"));
    }

    #[test]
    fn parity_mismatches_fail_and_the_summary_shows_the_matrix() {
        let mut parity = Parity {
            enabled: true,
            checked: 2,
            ..Parity::default()
        };
        parity.mismatch(Mismatch {
            line: 3,
            expected: "a".into(),
            observed: "b".into(),
        });
        let r = Report::new(
            "m@1".into(),
            "e".into(),
            digest(),
            2,
            1,
            0,
            1.0,
            Vec::new(),
            Some(ConfusionReport {
                labels: vec!["a".into(), "b".into()],
                matrix: vec![vec![1, 0], vec![0, 1]],
                per_class: BTreeMap::new(),
            }),
            parity,
        );
        assert!(!r.passed);
        assert!(r.failures()[0].contains("1 of 2 rows differ"));
        assert!(r.failures()[0].contains("line 3: offline a, service b"));
        let md = r.markdown();
        assert!(md.contains("| **a** | 1 | 0 |"));
        assert!(md.contains("xychart-beta"));
    }

    #[test]
    fn another_dataset_than_the_recorded_one_is_a_warning_not_a_failure() {
        let report = || {
            Report::new(
                "m@1".into(),
                "e".into(),
                digest(),
                4,
                1,
                0,
                1.0,
                Vec::new(),
                None,
                Parity::default(),
            )
        };
        let mut same = report();
        same.recorded_on(digest());
        assert!(same.warnings.is_empty(), "{:?}", same.warnings);
        assert_eq!(same.recorded_dataset, Some(digest()));
        let mut other = report();
        other.recorded_on(FileDigest {
            path: "data/holdout.csv".into(),
            sha256: "cd".repeat(32),
            bytes: 12,
            rows: 5,
        });
        assert!(other.passed, "a warning does not fail the test");
        let w = &other.warnings[0];
        assert!(
            w.contains("`holdout.csv` (4 rows, SHA-256 ab)")
                && w.contains("(`data/holdout.csv`, 5 rows, SHA-256 cdcdcdcdcdcd)"),
            "{w}"
        );
        assert!(other.human().contains("warning: `holdout.csv`"));
        assert!(other.markdown().contains("> [!WARNING]\n> `holdout.csv`"));
    }

    /// A comparison in which accuracy fell by `fell` against an allowance of 0.01.
    pub(crate) fn sample_comparison(fell: f64) -> Comparison {
        let (incumbent, candidate) = (0.95, 0.95 - fell);
        let allowed = 0.01;
        let pass = fell <= allowed;
        Comparison {
            incumbent: "digits@1".into(),
            incumbent_artifact_sha256: "e".repeat(64),
            incumbent_endpoint: "local".into(),
            rows: 297,
            metrics: vec![
                MetricComparison {
                    metric: "accuracy".into(),
                    candidate,
                    incumbent,
                    delta: candidate - incumbent,
                    drop: fell,
                    allowed: Some(allowed),
                    allowance: Some("0.01".into()),
                    pass,
                },
                MetricComparison {
                    metric: "f1_macro".into(),
                    candidate: 0.9,
                    incumbent: 0.9,
                    delta: 0.0,
                    drop: 0.0,
                    allowed: None,
                    allowance: None,
                    pass: true,
                },
            ],
            test: PairedTest {
                method: "mcnemar-exact".into(),
                candidate_only: Some(1),
                incumbent_only: Some(12),
                p_value: Some(0.0034),
                mean_difference: None,
                interval: None,
                level: 0.95,
                significant: true,
            },
            passed: pass,
        }
    }

    #[test]
    fn a_regression_fails_the_report_naming_the_metric_and_both_values() {
        let mut r = Report::new(
            "digits@2".into(),
            "http://staging".into(),
            digest(),
            297,
            2,
            0,
            0.5,
            Vec::new(),
            None,
            Parity::default(),
        );
        assert!(r.passed);
        r.compared(sample_comparison(0.005));
        assert!(r.passed, "within the allowance");
        r.compared(sample_comparison(0.03));
        assert!(!r.passed);
        let failures = r.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        assert!(
            f.starts_with("no-regression: accuracy is 0.920000 for the candidate against 0.950000 for digits@1 in production, a drop of 0.030000 over the 0.01 allowed"),
            "{f}"
        );
        assert!(
            f.contains("p = 0.0034: the difference is beyond the noise at the 5% level"),
            "{f}"
        );
        let md = r.markdown();
        assert!(
            md.contains("### Against production (digits@1, 297 rows, same file)"),
            "{md}"
        );
        assert!(
            md.contains("| accuracy | 0.950000 | 0.920000 | -0.030000 | 0.01 | ❌ regression |"),
            "{md}"
        );
        assert!(
            md.contains("| f1_macro | 0.900000 | 0.900000 | +0.000000 | – | shown |"),
            "{md}"
        );
        assert!(
            md.contains("  bar [0.950000, 0.900000]\n  bar [0.920000, 0.900000]"),
            "{md}"
        );
        assert!(r.human().contains("REGRESSION"), "{}", r.human());
        // Read back whole: a report with a comparison is still a report.
        let json = serde_json::to_string(&r).expect("serialises");
        assert_eq!(serde_json::from_str::<Report>(&json).expect("reads"), r);
        let mut test = sample_comparison(0.0).test;
        test.p_value = None;
        test.mean_difference = Some(-0.25);
        test.interval = Some([-0.5, 0.1]);
        test.significant = false;
        assert_eq!(
            test.sentence(),
            "paired bootstrap: the candidate's squared error less the incumbent's is -0.250000 \
             on average, 95% interval [-0.500000, +0.100000]: the difference is within the noise"
        );
    }
}
