//! Evaluation metrics, computed the same way at training time and by the holdout test.

use std::collections::BTreeMap;

use mlops_manifest::model::Metric;

/// Classification metrics from predicted and true class indices over `classes` classes.
/// Macro averages weigh every class that occurs (in the truth or the predictions) equally; a
/// class with no predictions has precision 0, as scikit-learn reports it by default.
pub fn classification(
    predicted: &[usize],
    truth: &[usize],
    classes: usize,
) -> BTreeMap<Metric, f64> {
    let n = truth.len().min(predicted.len());
    let mut tp = vec![0u64; classes];
    let mut predicted_count = vec![0u64; classes];
    let mut true_count = vec![0u64; classes];
    let mut correct = 0u64;
    for (&p, &t) in predicted.iter().zip(truth).take(n) {
        if p < classes {
            predicted_count[p] += 1;
        }
        if t < classes {
            true_count[t] += 1;
        }
        if p == t {
            correct += 1;
            if t < classes {
                tp[t] += 1;
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let present: Vec<usize> = (0..classes)
        .filter(|&c| true_count[c] + predicted_count[c] > 0)
        .collect();
    let mean = |f: &dyn Fn(usize) -> f64| {
        if present.is_empty() {
            0.0
        } else {
            present.iter().map(|&c| f(c)).sum::<f64>() / present.len() as f64
        }
    };
    let precision = |c: usize| ratio(tp[c], predicted_count[c]);
    let recall = |c: usize| ratio(tp[c], true_count[c]);
    let f1 = |c: usize| {
        let (p, r) = (precision(c), recall(c));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    };
    BTreeMap::from([
        (Metric::Accuracy, ratio(correct, n as u64)),
        (Metric::PrecisionMacro, mean(&precision)),
        (Metric::RecallMacro, mean(&recall)),
        (Metric::F1Macro, mean(&f1)),
    ])
}

/// Regression metrics from predictions and true values.
pub fn regression(predicted: &[f32], truth: &[f32]) -> BTreeMap<Metric, f64> {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return BTreeMap::from([(Metric::Rmse, 0.0), (Metric::Mae, 0.0), (Metric::R2, 0.0)]);
    }
    let mean = truth.iter().take(n).map(|&t| f64::from(t)).sum::<f64>() / n as f64;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (&p, &t) in predicted.iter().zip(truth).take(n) {
        let d = f64::from(p) - f64::from(t);
        se += d * d;
        ae += d.abs();
        tot += (f64::from(t) - mean).powi(2);
    }
    let r2 = if tot == 0.0 { 0.0 } else { 1.0 - se / tot };
    BTreeMap::from([
        (Metric::Rmse, (se / n as f64).sqrt()),
        (Metric::Mae, ae / n as f64),
        (Metric::R2, r2),
    ])
}

/// Metrics as a name -> value map, for JSON documents and model cards.
pub fn by_name(metrics: &BTreeMap<Metric, f64>) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .map(|(m, v)| (m.name().to_owned(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_match_hand_computed_values() {
        // truth:     0 0 1 1 2
        // predicted: 0 1 1 1 0
        let m = classification(&[0, 1, 1, 1, 0], &[0, 0, 1, 1, 2], 3);
        assert!((m[&Metric::Accuracy] - 0.6).abs() < 1e-12);
        // precision: c0 1/2, c1 2/3, c2 0 -> 7/18; recall: c0 1/2, c1 1, c2 0 -> 1/2
        assert!((m[&Metric::PrecisionMacro] - 7.0 / 18.0).abs() < 1e-12);
        assert!((m[&Metric::RecallMacro] - 0.5).abs() < 1e-12);
        // f1: c0 1/2, c1 0.8, c2 0 -> 1.3/3
        assert!((m[&Metric::F1Macro] - 1.3 / 3.0).abs() < 1e-12);
        let perfect = classification(&[2, 0, 1], &[2, 0, 1], 3);
        assert!(perfect.values().all(|&v| (v - 1.0).abs() < 1e-12));
    }

    #[test]
    fn regression_metrics_match_hand_computed_values() {
        let m = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0]);
        assert!((m[&Metric::Mae] - 2.0 / 3.0).abs() < 1e-9);
        assert!((m[&Metric::Rmse] - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        // mean 3, tot = 4 + 0 + 4 = 8, se = 2 -> r2 = 0.75
        assert!((m[&Metric::R2] - 0.75).abs() < 1e-9);
        assert_eq!(by_name(&m).len(), 3);
    }
}
