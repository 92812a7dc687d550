//! The counts judged: each column's PSI, KS and missing-rate rise against its limits
//! (`monitoring.thresholds`, a feature's own limits first), the predictions' PSI, the metrics on
//! ground truth against the holdout set's at evaluation, and too few rows. Every limit broken is
//! a finding; any finding is drift.

use std::collections::BTreeMap;

use mlops_artifacts::baseline::{Baseline, Distribution, Profile};
use mlops_artifacts::monitor::{
    Bin, Drift, GroundTruth, Limits, MetricDrift, MissingRates, Report,
};
use mlops_manifest::model::{DriftThresholds, Metric, Task};

use crate::drift;
use crate::tally::Tally;

/// What the counts are judged against, besides the baseline.
#[derive(Debug, Clone)]
pub struct Judging<'a> {
    pub model: &'a str,
    pub captured: &'a str,
    pub since: Option<String>,
    pub thresholds: &'a DriftThresholds,
    /// The holdout set's metrics at evaluation (the card's), by name.
    pub evaluated: &'a BTreeMap<String, f64>,
}

/// A metric's default limit when `monitoring.thresholds.metrics` names none: a fall of 0.05 in a
/// score (accuracy, F1, R²), a rise of 10% of the evaluated value in an error (RMSE, MAE).
pub fn default_limit(metric: Metric, evaluated: Option<f64>) -> f64 {
    if metric.higher_is_better() {
        0.05
    } else {
        evaluated.map_or(0.0, |v| 0.1 * v.abs())
    }
}

/// The report of `tally` against `baseline`.
pub fn judge(tally: Tally, baseline: &Baseline, task: Task, j: &Judging<'_>) -> Report {
    let t = j.thresholds;
    let mut findings = Vec::new();
    let enough = tally.read.rows >= t.min_rows;
    if !enough {
        findings.push(format!(
            "only {} rows were captured; fewer than `monitoring.thresholds.min_rows` ({}) cannot \
             be judged (is the service capturing, and is `--since` right?)",
            tally.read.rows, t.min_rows
        ));
    }
    let features: Vec<Drift> = baseline
        .features
        .iter()
        .zip(&tally.current)
        .map(|(base, now)| {
            let own = t.features.get(&base.column);
            let limits = Limits {
                psi: own.and_then(|o| o.psi).unwrap_or(t.psi),
                ks: Some(own.and_then(|o| o.ks).unwrap_or(t.ks)),
                missing: Some(own.and_then(|o| o.missing).unwrap_or(t.missing)),
            };
            let name = format!("feature `{}`", base.column);
            column(base, now, limits, enough, &name, &mut findings)
        })
        .collect();
    let predictions = column(
        &baseline.predictions,
        &tally.predictions,
        Limits {
            psi: t.prediction,
            ks: None,
            missing: None,
        },
        enough,
        "predictions",
        &mut findings,
    );
    let ground_truth = tally.truth.as_ref().map(|l| {
        let observed = match task {
            Task::Classification => l.confusion.metrics(),
            Task::Regression => l.errors.metrics(),
        };
        let judged: Vec<Metric> = if t.metrics.is_empty() {
            Metric::defaults(task).to_vec()
        } else {
            t.metrics.keys().copied().collect()
        };
        let metrics = judged
            .iter()
            .filter_map(|&m| {
                let value = *observed.get(&m)?;
                let evaluated = j.evaluated.get(m.name()).copied();
                let limit = t
                    .metrics
                    .get(&m)
                    .copied()
                    .unwrap_or_else(|| default_limit(m, evaluated));
                let worse_by = evaluated.map(|e| {
                    if m.higher_is_better() {
                        e - value
                    } else {
                        value - e
                    }
                });
                let over = l.joined > 0 && worse_by.is_some_and(|w| w > limit);
                if over {
                    findings.push(format!(
                        "metric `{}` on {} labelled rows: {value:.4}, {:.4} at evaluation \
                         (worse by {:.4}; the limit is {limit})",
                        m.name(),
                        l.joined,
                        evaluated.unwrap_or(f64::NAN),
                        worse_by.unwrap_or(f64::NAN)
                    ));
                }
                Some(MetricDrift {
                    metric: m.name().to_owned(),
                    evaluated,
                    observed: value,
                    worse_by,
                    limit,
                    over,
                })
            })
            .collect();
        if l.joined == 0 {
            findings.push(format!(
                "none of the {} labels in {} matched a captured row by inference id (and row)",
                l.labels(),
                l.path
            ));
        }
        GroundTruth {
            path: l.path.clone(),
            labels: l.labels(),
            joined: l.joined,
            metrics,
        }
    });
    Report {
        model: j.model.to_owned(),
        artifact: tally.artifact().to_owned(),
        captured: j.captured.to_owned(),
        since: j.since.clone(),
        read: tally.read.clone(),
        features,
        predictions,
        ground_truth,
        drifted: !findings.is_empty(),
        findings,
    }
}

/// One column (`name` in findings) compared: its measures, the ones over their limits (when
/// `judged`), its bins.
fn column(
    base: &Profile,
    now: &Profile,
    limits: Limits,
    judged: bool,
    name: &str,
    findings: &mut Vec<String>,
) -> Drift {
    let (expected, actual) = (base.distribution.bins(), now.distribution.bins());
    let numeric = matches!(base.distribution, Distribution::Numeric(_));
    let psi = drift::psi(&expected, &actual);
    let ks = if numeric {
        drift::ks(&expected, &actual)
    } else {
        None
    };
    let missing = MissingRates {
        baseline: base.missing_rate(),
        current: now.missing_rate(),
    };
    let mut over = Vec::new();
    if judged {
        if let Some(p) = psi.filter(|p| *p > limits.psi) {
            over.push("psi".to_owned());
            findings.push(format!("{name}: PSI {p:.4} is over {}", limits.psi));
        }
        if let (Some(k), Some(limit)) = (ks, limits.ks)
            && k > limit
        {
            over.push("ks".to_owned());
            findings.push(format!("{name}: KS {k:.4} is over {limit}"));
        }
        if let Some(limit) = limits.missing {
            let rise = missing.current - missing.baseline;
            if rise > limit {
                over.push("missing".to_owned());
                findings.push(format!(
                    "{name}: missing in {:.1}% of rows, {:.1}% at training (a rise of {:.3}; \
                     the limit is {limit})",
                    missing.current * 100.0,
                    missing.baseline * 100.0,
                    rise
                ));
            }
        }
    }
    let shares = |counts: &[u64]| drift::shares(counts).unwrap_or_else(|| vec![0.0; counts.len()]);
    let bins = base
        .distribution
        .labels()
        .into_iter()
        .zip(shares(&expected).into_iter().zip(shares(&actual)))
        .map(|(label, (baseline, current))| Bin {
            label,
            baseline,
            current,
        })
        .collect();
    Drift {
        column: base.column.clone(),
        kind: if numeric { "numeric" } else { "categorical" }.to_owned(),
        psi,
        ks,
        missing,
        limits,
        over,
        bins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_artifacts::bundle::{Architecture, Bundle, Standardizer};
    use mlops_artifacts::capture::{Payload, Record, Route};
    use mlops_artifacts::training::Signature;
    use mlops_data::profile;
    use mlops_manifest::model::FeatureThresholds;

    fn bundle() -> Bundle {
        Bundle {
            architecture: Architecture::onnx(2, 2),
            signature: Signature::numeric(
                vec!["a".into(), "b".into()],
                "y".into(),
                Task::Classification,
                Some(vec!["no".into(), "yes".into()]),
            ),
            standardizer: Standardizer {
                mean: vec![0.0; 2],
                std: vec![1.0; 2],
                fill: None,
            },
        }
    }

    /// Both features uniform over 0..100; the predictions half `no`, half `yes`.
    fn baseline() -> Baseline {
        let values = || (0..1000).map(|i| (i % 100) as f32);
        Baseline {
            features: vec![
                profile::numeric("a", values()),
                profile::numeric("b", values()),
            ],
            predictions: profile::predictions(
                Some(&["no".to_owned(), "yes".to_owned()]),
                &(0..1000).map(|i| (i % 2) as f32).collect::<Vec<_>>(),
            ),
        }
    }

    /// A capture line of `rows` (a, b) answered `labels`.
    fn line(rows: &[(f32, f32)], labels: &[&str]) -> String {
        let body: String = rows.iter().map(|(a, b)| format!("{a},{b}\n")).collect();
        let answer: String = labels.iter().map(|l| format!("{l}\n")).collect();
        serde_json::to_string(&Record {
            id: "r".into(),
            time: "2026-12-05T10:00:00.000Z".into(),
            model: Some("m@1".into()),
            artifact: "ab".into(),
            route: Route::Invocations,
            rows: rows.len() as u64,
            input: Payload::of(Some("text/csv"), body.as_bytes()),
            output: Payload::of(Some("text/csv"), answer.as_bytes()),
        })
        .expect("json")
    }

    fn report(tally: Tally, thresholds: &DriftThresholds) -> Report {
        let evaluated = BTreeMap::new();
        let j = Judging {
            model: "m@1",
            captured: "captures",
            since: None,
            thresholds,
            evaluated: &evaluated,
        };
        judge(tally, &baseline(), Task::Classification, &j)
    }

    /// 200 rows: `a` as at training, `b` moved up by `shift`.
    fn traffic(tally: &mut Tally, shift: f32) {
        for i in 0..200 {
            let v = (i % 100) as f32;
            let label = if i % 2 == 0 { "no" } else { "yes" };
            tally
                .line(&line(&[(v, (v + shift).min(99.0))], &[label]))
                .expect("a line");
        }
    }

    #[test]
    fn a_moved_feature_is_named_and_its_own_limit_is_used() {
        let (b, base) = (bundle(), baseline());
        let mut tally = Tally::new(&b, &base, "ab", None);
        traffic(&mut tally, 20.0);
        let r = report(tally, &DriftThresholds::default());
        assert!(r.drifted);
        let over: Vec<&str> = r
            .features
            .iter()
            .filter(|d| d.drifted())
            .map(|d| d.column.as_str())
            .collect();
        assert_eq!(over, ["b"], "{:#?}", r.findings);
        assert!(!r.predictions.drifted());

        let mut tally = Tally::new(&b, &base, "ab", None);
        traffic(&mut tally, 20.0);
        let mut lenient = DriftThresholds::default();
        lenient.features.insert(
            "b".into(),
            FeatureThresholds {
                psi: Some(10.0),
                ks: Some(1.0),
                missing: None,
            },
        );
        let r = report(tally, &lenient);
        assert!(!r.drifted, "{:#?}", r.findings);
        assert_eq!(r.features[1].limits.psi, 10.0);
    }

    #[test]
    fn too_few_rows_is_a_finding_and_nothing_else_is_judged() {
        let (b, base) = (bundle(), baseline());
        let mut tally = Tally::new(&b, &base, "ab", None);
        tally
            .line(&line(&[(1.0, 99.0), (2.0, 99.0)], &["no", "no"]))
            .expect("a line");
        let r = report(tally, &DriftThresholds::default());
        assert!(r.drifted);
        assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
        assert!(r.findings[0].contains("only 2 rows"), "{:#?}", r.findings);
        assert!(r.features.iter().all(|d| !d.drifted()));
    }

    #[test]
    fn lines_that_do_not_add_up_are_refused_and_other_artifacts_left_out() {
        let (b, base) = (bundle(), baseline());
        let mut tally = Tally::new(&b, &base, "ab", None);
        let e = tally
            .line(&line(&[(1.0, 2.0), (3.0, 4.0)], &["no"]))
            .expect_err("two rows, one answer");
        assert!(e.contains("2 rows") && e.contains("1 predictions"), "{e}");
        let e = tally.line(&line(&[(1.0, 2.0)], &["maybe"])).map(|()| "");
        assert_eq!(e, Ok(""), "an unknown class is counted as unseen");
        let mut other = Tally::new(&b, &base, "cd", None);
        other.line(&line(&[(1.0, 2.0)], &["no"])).expect("a line");
        let r = report(other, &DriftThresholds::default());
        assert_eq!((r.read.other_model, r.read.rows), (1, 0));
    }

    /// SageMaker's DataCapture of a client that sends CSV and asks for JSON, and one that sends
    /// JSON and asks for CSV (sagemaker-python-sdk#2785): each direction read by its own type.
    #[test]
    fn sagemaker_lines_mixing_csv_and_json_are_read_both_ways() {
        let (b, base) = (bundle(), baseline());
        let mut tally = Tally::new(&b, &base, "ab", None);
        let sagemaker = |input: (&str, &str), output: (&str, &str)| {
            serde_json::json!({
                "captureData": {
                    "endpointInput": {"observedContentType": input.0, "mode": "INPUT",
                        "data": input.1, "encoding": if input.0 == "text/csv" { "CSV" } else { "JSON" }},
                    "endpointOutput": {"observedContentType": output.0, "mode": "OUTPUT",
                        "data": output.1, "encoding": if output.0 == "text/csv" { "CSV" } else { "JSON" }},
                },
                "eventMetadata": {"eventId": "e", "inferenceTime": "2026-12-05T10:00:00Z"},
                "eventVersion": "0",
            })
            .to_string()
        };
        tally
            .line(&sagemaker(
                ("text/csv", "1,2\n3,4"),
                (
                    "application/json",
                    r#"{"predictions": [{"label": "no"}, {"label": "yes"}]}"#,
                ),
            ))
            .expect("CSV in, JSON out");
        tally
            .line(&sagemaker(
                ("application/json", r#"{"instances": [[5, 6]]}"#),
                ("text/csv", "yes\n"),
            ))
            .expect("JSON in, CSV out");
        assert_eq!((tally.read.requests, tally.read.rows), (2, 3));
        assert_eq!(tally.current[0].rows, 3);
        assert_eq!(tally.predictions.rows, 3);
    }

    #[test]
    fn error_metrics_default_to_a_tenth_of_their_evaluated_value() {
        assert_eq!(default_limit(Metric::Accuracy, Some(0.9)), 0.05);
        assert!((default_limit(Metric::Rmse, Some(2.0)) - 0.2).abs() < 1e-12);
        assert_eq!(default_limit(Metric::Mae, None), 0.0);
    }
}
