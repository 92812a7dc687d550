//! The promotion pull request's body: the evidence a reviewer approves on, in markdown, from the
//! model's card (and production's), the holdout report and the pin.

use mlops_artifacts::card::ModelCard;
use mlops_artifacts::holdout::Report as HoldoutReport;
use mlops_manifest::model::spelling;

use crate::pin::Pin;

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.4}"))
}

/// The evidence a reviewer approves on, in markdown: which model replaces which, its card's
/// summary and run, its holdout metrics measured at training next to production's, the holdout
/// test against staging (`evidence`: the report's digest and the report), its datasets, and a
/// chart of the metrics.
pub fn promotion(
    entry_ref: &str,
    card: &ModelCard,
    production: Option<(&Pin, Option<&ModelCard>)>,
    evidence: Option<(&str, &HoldoutReport)>,
    pin: &Pin,
    pin_file: &str,
) -> String {
    let mut out = format!("## Promote `{entry_ref}` to production\n\n");
    out.push_str(&format!(
        "This pull request changes `{pin_file}`: production will serve **{entry_ref}**{}.\nApprove it on its current head commit; `mlops gate` counts only such approvals.\n\n",
        production.map_or_else(
            || " (no model is pinned yet)".to_owned(),
            |(p, _)| format!(" instead of {}", p.reference())
        )
    ));
    // The model card summary.
    let job = &card.job;
    out.push_str("### Model\n\n| | |\n|---|---|\n");
    for (k, v) in [
        ("task", Some(spelling(&job.task))),
        ("family", Some(spelling(&job.family))),
        ("parameters", Some(card.training.parameters.to_string())),
        (
            "hyperparameters",
            serde_json::to_string(&job.hyperparameters).ok(),
        ),
        (
            "training",
            Some(format!(
                "{} epochs, batch {}, {} (lr {}), seed {}",
                job.epochs,
                job.batch_size,
                spelling(&job.optimizer),
                job.learning_rate,
                job.seed
            )),
        ),
        ("created", Some(card.created_at.clone())),
        (
            "artifact sha256",
            Some(format!("`{}`", pin.model.artifact.sha256)),
        ),
        (
            "manifest sha256",
            Some(format!("`{}`", pin.manifest_sha256)),
        ),
        (
            "image",
            Some(pin.model.image.as_deref().map_or_else(
                || "none (served from the artifact)".to_owned(),
                |i| format!("`{i}`"),
            )),
        ),
    ] {
        if let Some(v) = v {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
    }
    out.push_str(&format!("| run | {} |\n\n", card.run()));
    // Metrics next to production's.
    let ours = card.metrics_of("holdout");
    let theirs = production
        .and_then(|(_, c)| c)
        .map(|c| c.metrics_of("holdout"))
        .unwrap_or_default();
    let prod_name = production.map_or_else(|| "production".to_owned(), |(p, _)| p.reference());
    out.push_str(&format!(
        "### Evaluation (holdout set, measured at training)\n\n| metric | {entry_ref} | {prod_name} | delta |\n|---|---:|---:|---:|\n"
    ));
    for (k, v) in &ours {
        let before = theirs.get(k).copied();
        let delta = before.map_or_else(|| "–".to_owned(), |b| format!("{:+.4}", v - b));
        out.push_str(&format!("| {k} | {:.4} | {} | {delta} |\n", v, fmt(before)));
    }
    out.push('\n');
    // The sweep that chose it: every trial, and a chart of the objective.
    if let Some(sweep) = &card.sweep {
        out.push_str(&sweep.markdown());
        out.push('\n');
    }
    // The holdout test against staging.
    out.push_str("### Holdout test against staging\n\n");
    match evidence {
        Some((digest, r)) => {
            out.push_str(&format!(
                "**{}** — {} rows through `{}`{} in {} requests ({} retries); parity with offline predictions: {}.\n\n| metric | service | recorded | difference | tolerance | |\n|---|---:|---:|---:|---:|---|\n",
                if r.passed { "passed" } else { "FAILED" },
                r.rows, r.endpoint,
                r.protocol.as_deref().map_or_else(String::new, |p| format!(" (the `{p}` protocol)")),
                r.requests, r.retries,
                if r.parity.enabled {
                    format!("{} of {} rows differ", r.parity.mismatches, r.parity.checked)
                } else {
                    format!(
                        "**not checked** ({}); the metrics alone were compared",
                        r.parity.why_skipped()
                    )
                },
            ));
            for c in &r.metrics {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    c.metric,
                    fmt(c.observed),
                    fmt(c.expected),
                    fmt(c.delta),
                    c.tolerance,
                    if c.pass { "✓" } else { "✗" }
                ));
            }
            out.push_str(&r.latency_markdown());
            match &r.comparison {
                Some(c) => out.push_str(&c.markdown()),
                None if production.is_some() => out.push_str(
                    "\nNot compared with production on the same rows (`mlops holdout --compare production`).\n",
                ),
                None => {}
            }
            out.push_str(&format!("\nReport sha256: `{digest}`\n\n"));
        }
        None => out.push_str("No holdout report was given (`--holdout-report`): `mlops gate` will not pass this promotion.\n\n"),
    }
    // Datasets.
    out.push_str("### Data\n\n| dataset | path | rows | sha256 |\n|---|---|---:|---|\n");
    for (name, d) in &card.training.datasets {
        out.push_str(&format!(
            "| {name} | `{}` | {} | `{}` |\n",
            d.path, d.rows, d.sha256
        ));
    }
    // A chart of the holdout metrics.
    if !ours.is_empty() {
        let names: Vec<&str> = ours.keys().map(String::as_str).collect();
        let values: Vec<String> = ours.values().map(|v| format!("{v:.4}")).collect();
        out.push_str(&format!(
            "\n```mermaid\nxychart-beta\n    title \"Holdout metrics: {entry_ref} (bars) and {prod_name} (line)\"\n    x-axis [{}]\n    y-axis \"score\" 0 --> 1\n    bar [{}]\n",
            names.join(", "),
            values.join(", ")
        ));
        if !theirs.is_empty() {
            let line: Vec<String> = ours
                .keys()
                .map(|k| theirs.get(k).map_or("0".to_owned(), |v| format!("{v:.4}")))
                .collect();
            out.push_str(&format!("    line [{}]\n", line.join(", ")));
        }
        out.push_str("```\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pin::{Artifact, PinnedModel};

    fn pin(version: u64) -> Pin {
        Pin {
            version: crate::pin::VERSION,
            model: PinnedModel {
                name: "digits".into(),
                version,
                registry: "s3://b/registry".into(),
                artifact: Artifact {
                    uri: format!("s3://b/registry/digits/{version}"),
                    sha256: "a".repeat(64),
                },
                image: None,
            },
            manifest_sha256: "e".repeat(64),
            holdout: None,
        }
    }

    fn card(version: u64, accuracy: f64) -> ModelCard {
        let mut card = mlops_artifacts::card::sample("digits", version);
        card.training
            .metrics
            .insert("holdout".into(), [("accuracy".to_owned(), accuracy)].into());
        card
    }

    #[test]
    fn a_swept_model_shows_its_trials() {
        let mut swept = card(2, 0.98);
        let trial = |n: usize, acc: f64| mlops_artifacts::sweep::TrialRecord {
            trial: n,
            parameters: [(
                "learning_rate".to_owned(),
                serde_json::json!(0.001 * n as f64),
            )]
            .into(),
            metrics: [("accuracy".to_owned(), acc)].into(),
            objective: acc,
            seconds: 2.0,
        };
        swept.sweep = Some(mlops_artifacts::sweep::SweepRecord {
            method: "grid".into(),
            metric: "accuracy".into(),
            goal: "maximize".into(),
            trials: vec![trial(1, 0.91), trial(2, 0.97), trial(3, 0.95)],
            best: 2,
        });
        let pin = pin(2);
        let body = promotion(
            "digits@2",
            &swept,
            None,
            None,
            &pin,
            "deploy/production.yaml",
        );
        assert!(
            body.contains("### Sweep: 3 trials (grid), judged by validation accuracy (maximize)"),
            "{body}"
        );
        assert!(body.contains("| **2** | `0.002` | **0.9700** |"), "{body}");
        assert!(body.contains("bar [0.9100, 0.9700, 0.9500]"), "{body}");
        let plain = promotion(
            "digits@2",
            &card(2, 0.98),
            None,
            None,
            &pin,
            "deploy/production.yaml",
        );
        assert!(!plain.contains("### Sweep"), "{plain}");
    }

    #[test]
    fn the_body_compares_with_production_and_names_the_run() {
        let (new, old) = (card(2, 0.98), card(1, 0.95));
        let body = promotion(
            "digits@2",
            &new,
            Some((&pin(1), Some(&old))),
            None,
            &pin(2),
            "deploy/production.yaml",
        );
        assert!(
            body.contains("production will serve **digits@2** instead of digits@1"),
            "{body}"
        );
        assert!(
            body.contains("| accuracy | 0.9800 | 0.9500 | +0.0300 |"),
            "{body}"
        );
        assert!(
            body.contains(
                "| run | local run at commit `0123456789abcdef0123456789abcdef01234567` |"
            ),
            "{body}"
        );
        assert!(
            body.contains("`mlops gate` will not pass this promotion"),
            "{body}"
        );
        assert!(
            body.contains("| holdout | `data/digits-holdout.csv` | 297 |"),
            "{body}"
        );
    }

    #[test]
    fn the_holdout_report_is_shown_with_its_digest() {
        let mut report = HoldoutReport::new(
            "digits@2".into(),
            "http://staging".into(),
            mlops_artifacts::training::FileDigest {
                path: "holdout.csv".into(),
                sha256: "a".repeat(64),
                bytes: 1000,
                rows: 297,
            },
            297,
            2,
            0,
            0.5,
            mlops_artifacts::holdout::compare(
                &[mlops_manifest::model::Metric::Accuracy],
                &BTreeMap::from([(mlops_manifest::model::Metric::Accuracy, 0.9)]),
                &BTreeMap::from([("accuracy".to_owned(), 0.98)]),
                &BTreeMap::from([(mlops_manifest::model::Metric::Accuracy, 0.001)]),
            ),
            None,
            Default::default(),
        );
        report.parity.checked = 297;
        report.parity.mismatches = 1;
        let body = promotion(
            "digits@2",
            &card(2, 0.98),
            None,
            Some(("f".repeat(64).as_str(), &report)),
            &pin(2),
            "p.yaml",
        );
        assert!(body.contains("(no model is pinned yet)"), "{body}");
        assert!(
            body.contains("**FAILED** — 297 rows through `http://staging`"),
            "{body}"
        );
        assert!(
            body.contains("| accuracy | 0.9000 | 0.9800 | -0.0800 | 0.001 | ✗ |"),
            "{body}"
        );
        // A service whose server mlops cannot reproduce: the body says parity was not checked,
        // and why.
        let mut unchecked = report.clone();
        unchecked.parity = mlops_artifacts::holdout::Parity {
            skipped: Some("the endpoint serves with its own image".into()),
            ..Default::default()
        };
        let body = promotion(
            "digits@2",
            &card(2, 0.98),
            None,
            Some(("f".repeat(64).as_str(), &unchecked)),
            &pin(2),
            "p.yaml",
        );
        assert!(
            body.contains(
                "parity with offline predictions: **not checked** (the endpoint serves with its \
                 own image); the metrics alone were compared."
            ),
            "{body}"
        );
        assert!(
            body.contains(&format!("Report sha256: `{}`", "f".repeat(64))),
            "{body}"
        );
        assert!(
            body.contains("`http://staging` in 2 requests"),
            "mlops' own protocol is not named: {body}"
        );
        // A service tested in another protocol says which.
        report.protocol = Some("v2".into());
        let body = promotion(
            "digits@2",
            &card(2, 0.98),
            None,
            Some(("f".repeat(64).as_str(), &report)),
            &pin(2),
            "p.yaml",
        );
        assert!(
            body.contains("through `http://staging` (the `v2` protocol) in 2 requests"),
            "{body}"
        );
    }
}
