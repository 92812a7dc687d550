//! The holdout report's type and rules live in [`mlops_artifacts::holdout`] (the file is read
//! back by promote, the gate and production's deploy); here, the confusion matrix the test
//! accumulated, turned into the report's form.

pub use mlops_artifacts::holdout::*;
use mlops_train::metrics::Confusion;

/// The confusion matrix with its labels and per-class scores, as the report holds it.
pub fn confusion_report(labels: Vec<String>, c: &Confusion) -> ConfusionReport {
    ConfusionReport {
        per_class: labels.iter().cloned().zip(c.per_class()).collect(),
        matrix: c.matrix(),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_keeps_its_labels_and_scores() {
        let mut c = Confusion::new(2);
        c.add(0, 0);
        c.add(0, 1); // truth b, predicted a
        c.add(1, 1);
        let r = confusion_report(vec!["a".into(), "b".into()], &c);
        assert_eq!(r.matrix, vec![vec![1, 0], vec![1, 1]]);
        assert_eq!(r.per_class["a"].support, 1);
        assert_eq!(r.per_class["b"].support, 2);
        assert!((r.per_class["b"].recall - 0.5).abs() < 1e-12);
    }
}
