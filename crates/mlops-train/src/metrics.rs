//! Evaluation metrics, computed the same way at training time and by the holdout test: both
//! feed the same accumulators ([`Confusion`], [`Errors`]) one prediction at a time, so a holdout
//! run over a stream never holds its predictions and gets the same numbers for the same answers.

use std::collections::BTreeMap;

use mlops_manifest::model::Metric;

/// Counts of (true class, predicted class). A prediction outside the classes (a label the model
/// does not know) counts as wrong and belongs to no predicted class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    /// `classes * classes`, row = truth, column = prediction.
    counts: Vec<u64>,
    /// Per true class: predictions outside the classes.
    unknown: Vec<u64>,
}

/// Precision, recall, F1 and support of one class (the holdout report's type).
pub use mlops_artifacts::holdout::ClassScores;

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
            unknown: vec![0; classes],
        }
    }

    /// One row: its true class and the predicted one.
    pub fn add(&mut self, predicted: usize, truth: usize) {
        if truth >= self.classes {
            return;
        }
        let cell = if predicted < self.classes {
            self.counts.get_mut(truth * self.classes + predicted)
        } else {
            self.unknown.get_mut(truth)
        };
        if let Some(n) = cell {
            *n += 1;
        }
    }

    pub fn rows(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.unknown.iter().sum::<u64>()
    }

    /// The matrix, row = true class, column = predicted class.
    pub fn matrix(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.classes.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts
            .get(truth * self.classes + predicted)
            .copied()
            .unwrap_or(0)
    }

    fn true_count(&self, c: usize) -> u64 {
        (0..self.classes).map(|p| self.count(c, p)).sum::<u64>()
            + self.unknown.get(c).copied().unwrap_or(0)
    }

    fn predicted_count(&self, c: usize) -> u64 {
        (0..self.classes).map(|t| self.count(t, c)).sum()
    }

    /// Scores of each class.
    pub fn per_class(&self) -> Vec<ClassScores> {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        (0..self.classes)
            .map(|c| {
                let tp = self.count(c, c);
                let precision = ratio(tp, self.predicted_count(c));
                let recall = ratio(tp, self.true_count(c));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    precision,
                    recall,
                    f1,
                    support: self.true_count(c),
                }
            })
            .collect()
    }

    /// Accuracy and macro averages. Macro averages weigh every class that occurs (in the truth
    /// or the predictions) equally; a class with no predictions has precision 0, as
    /// scikit-learn reports it by default.
    pub fn metrics(&self) -> BTreeMap<Metric, f64> {
        let scores = self.per_class();
        let present: Vec<usize> = (0..self.classes)
            .filter(|&c| self.true_count(c) + self.predicted_count(c) > 0)
            .collect();
        let mean = |f: &dyn Fn(&ClassScores) -> f64| {
            if present.is_empty() {
                0.0
            } else {
                present
                    .iter()
                    .filter_map(|&c| scores.get(c))
                    .map(f)
                    .sum::<f64>()
                    / present.len() as f64
            }
        };
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        let n = self.rows();
        BTreeMap::from([
            (
                Metric::Accuracy,
                if n == 0 {
                    0.0
                } else {
                    correct as f64 / n as f64
                },
            ),
            (Metric::PrecisionMacro, mean(&|s| s.precision)),
            (Metric::RecallMacro, mean(&|s| s.recall)),
            (Metric::F1Macro, mean(&|s| s.f1)),
        ])
    }
}

/// Running sums for RMSE, MAE and R² (the truth's variance by Welford's method, in f64).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Errors {
    n: u64,
    squared: f64,
    absolute: f64,
    mean: f64,
    m2: f64,
}

impl Errors {
    pub fn add(&mut self, predicted: f32, truth: f32) {
        let (p, t) = (f64::from(predicted), f64::from(truth));
        self.n += 1;
        self.squared += (p - t) * (p - t);
        self.absolute += (p - t).abs();
        let d = t - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (t - self.mean);
    }

    pub fn rows(&self) -> u64 {
        self.n
    }

    pub fn metrics(&self) -> BTreeMap<Metric, f64> {
        if self.n == 0 {
            return BTreeMap::from([(Metric::Rmse, 0.0), (Metric::Mae, 0.0), (Metric::R2, 0.0)]);
        }
        let n = self.n as f64;
        let r2 = if self.m2 == 0.0 {
            0.0
        } else {
            1.0 - self.squared / self.m2
        };
        BTreeMap::from([
            (Metric::Rmse, (self.squared / n).sqrt()),
            (Metric::Mae, self.absolute / n),
            (Metric::R2, r2),
        ])
    }
}

/// Classification metrics from predicted and true class indices over `classes` classes.
pub fn classification(
    predicted: &[usize],
    truth: &[usize],
    classes: usize,
) -> BTreeMap<Metric, f64> {
    let mut c = Confusion::new(classes);
    for (&p, &t) in predicted.iter().zip(truth) {
        c.add(p, t);
    }
    c.metrics()
}

/// Regression metrics from predictions and true values.
pub fn regression(predicted: &[f32], truth: &[f32]) -> BTreeMap<Metric, f64> {
    let mut e = Errors::default();
    for (&p, &t) in predicted.iter().zip(truth) {
        e.add(p, t);
    }
    e.metrics()
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
    fn the_confusion_matrix_and_per_class_scores() {
        let mut c = Confusion::new(3);
        for (p, t) in [(0, 0), (1, 0), (1, 1), (1, 1), (0, 2), (7, 2)] {
            c.add(p, t);
        }
        assert_eq!(
            c.matrix(),
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert_eq!(c.rows(), 6);
        let s = c.per_class();
        assert!((s[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s[2].support, 2);
        assert_eq!(s[2].recall, 0.0);
        // The unknown prediction is wrong: 3 of 6 right.
        assert!((c.metrics()[&Metric::Accuracy] - 0.5).abs() < 1e-12);
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
