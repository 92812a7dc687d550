//! Profiles of columns for monitoring ([`mlops_artifacts::baseline`]): a training table's
//! features binned at their deciles, categories counted by code, class predictions counted by
//! class; and [`count`], the one way a value (production's or training's) is added to a
//! profile's bins.

use std::collections::BTreeMap;

use mlops_artifacts::baseline::{Categorical, Distribution, Numeric, Profile, QUANTILES, Summary};
use mlops_artifacts::training::Categories;

use crate::data::Table;

/// Bins of a numeric baseline: between its deciles.
const BINS: usize = 10;

/// The profile of each feature of `table` (one value per feature, categorical ones as codes).
pub fn features(table: &Table, features: &[String], categorical: &[Categories]) -> Vec<Profile> {
    features
        .iter()
        .enumerate()
        .map(|(j, column)| {
            let values =
                (0..table.rows()).map(|i| table.row(i).get(j).copied().unwrap_or(f32::NAN));
            match categorical.iter().find(|c| &c.column == column) {
                Some(c) => categorical_profile(column, &c.values, values),
                None => numeric(column, values),
            }
        })
        .collect()
}

/// A numeric column's profile: bins at the deciles of its values (NaN is a missing value).
pub fn numeric(column: &str, values: impl Iterator<Item = f32>) -> Profile {
    let mut rows = 0u64;
    let mut present: Vec<f64> = Vec::new();
    for v in values {
        rows += 1;
        if !v.is_nan() {
            present.push(f64::from(v));
        }
    }
    present.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..BINS)
        .map(|k| quantile(&present, k as f64 / BINS as f64))
        .collect();
    edges.dedup();
    edges.retain(|e| e.is_finite());
    let mut n = Numeric {
        counts: vec![0; edges.len() + 1],
        edges,
        summary: summary(&present),
    };
    for &v in &present {
        let bin = n.bin(v);
        if let Some(c) = n.counts.get_mut(bin) {
            *c += 1;
        }
    }
    Profile {
        column: column.to_owned(),
        rows,
        missing: rows - present.len() as u64,
        distribution: Distribution::Numeric(n),
    }
}

/// A categorical column's profile from codes (a category's index, `UNSEEN`, or NaN for none).
pub fn categorical_profile(
    column: &str,
    categories: &[String],
    codes: impl Iterator<Item = f32>,
) -> Profile {
    let mut p = Profile {
        column: column.to_owned(),
        rows: 0,
        missing: 0,
        distribution: Distribution::Categorical(Categorical {
            categories: categories.to_vec(),
            counts: vec![0; categories.len()],
            unseen: 0,
        }),
    };
    for code in codes {
        count(&mut p, code);
    }
    p
}

/// The column name of the predictions' profile.
pub const PREDICTION: &str = "prediction";

/// The profile of a model's predictions: class indices into `classes`, or values.
pub fn predictions(classes: Option<&[String]>, predicted: &[f32]) -> Profile {
    match classes {
        Some(classes) => categorical_profile(PREDICTION, classes, predicted.iter().copied()),
        None => numeric(PREDICTION, predicted.iter().copied()),
    }
}

/// Adds one value to `profile`: NaN is a missing value; a categorical column takes a code (an
/// index of its categories; anything else is unseen).
pub fn count(profile: &mut Profile, value: f32) {
    profile.rows += 1;
    if value.is_nan() {
        profile.missing += 1;
        return;
    }
    match &mut profile.distribution {
        Distribution::Numeric(n) => {
            let bin = n.bin(f64::from(value));
            if let Some(c) = n.counts.get_mut(bin) {
                *c += 1;
            }
        }
        Distribution::Categorical(c) => {
            let slot = (value >= 0.0 && value.fract() == 0.0)
                .then(|| c.counts.get_mut(value as usize))
                .flatten();
            match slot {
                Some(n) => *n += 1,
                None => c.unseen += 1,
            }
        }
    }
}

/// The `q` quantile of sorted `values`, interpolated linearly between the two nearest ranks
/// (numpy's default); NaN for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let h = last as f64 * q;
    let below = h.floor() as usize;
    let above = (below + 1).min(last);
    let (Some(&lo), Some(&hi)) = (sorted.get(below), sorted.get(above)) else {
        return f64::NAN;
    };
    lo + (h - below as f64) * (hi - lo)
}

fn summary(sorted: &[f64]) -> Option<Summary> {
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let var = sorted.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Some(Summary {
        min,
        max,
        mean,
        std: var.sqrt(),
        quantiles: QUANTILES
            .iter()
            .map(|(name, q)| ((*name).to_owned(), quantile(sorted, *q)))
            .collect::<BTreeMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_numpy_does() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1, 2, 3, 4], [0, 0.1, 0.5, 0.9, 1]) = 1, 1.3, 2.5, 3.7, 4
        for (q, want) in [(0.0, 1.0), (0.1, 1.3), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)] {
            assert!((quantile(&v, q) - want).abs() < 1e-12, "{q}");
        }
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn numbers_are_binned_at_their_deciles_and_gaps_counted_apart() {
        let values = (0..1000).map(|i| if i % 10 == 0 { f32::NAN } else { i as f32 });
        let p = numeric("x", values);
        assert_eq!((p.rows, p.missing), (1000, 100));
        let Distribution::Numeric(n) = &p.distribution else {
            panic!("numeric")
        };
        assert_eq!(n.edges.len(), 9);
        assert_eq!(n.counts.iter().sum::<u64>(), 900);
        // Deciles split the values into ten near-equal bins.
        assert!(
            n.counts.iter().all(|&c| (89..=91).contains(&c)),
            "{:?}",
            n.counts
        );
        let s = n.summary.as_ref().expect("a summary");
        assert_eq!((s.min, s.max), (1.0, 999.0));
        assert!((s.quantiles["p50"] - 500.0).abs() < 1.0);
    }

    #[test]
    fn a_column_of_few_values_keeps_its_distinct_deciles() {
        let p = numeric("flag", (0..100).map(|i| if i < 70 { 0.0 } else { 1.0 }));
        let Distribution::Numeric(n) = &p.distribution else {
            panic!("numeric")
        };
        // Deciles 0 ... 0, then 0.3 (numpy interpolates between ranks 69 and 70), 1, 1.
        assert_eq!(n.edges.len(), 3, "{:?}", n.edges);
        assert_eq!((n.edges[0], n.edges[2]), (0.0, 1.0));
        assert!((n.edges[1] - 0.3).abs() < 1e-9, "{:?}", n.edges);
        assert_eq!(n.counts, [0, 70, 0, 30]);
        let none = numeric("empty", [f32::NAN, f32::NAN].into_iter());
        assert_eq!((none.rows, none.missing), (2, 2));
        let Distribution::Numeric(n) = &none.distribution else {
            panic!("numeric")
        };
        assert_eq!((n.edges.len(), n.counts.as_slice()), (0, &[0][..]));
    }

    #[test]
    fn categories_count_by_code_and_anything_else_is_unseen() {
        let cats = ["a".to_owned(), "b".to_owned()];
        let p = categorical_profile("c", &cats, [0.0, 1.0, 1.0, -1.0, f32::NAN, 7.0].into_iter());
        let Distribution::Categorical(c) = &p.distribution else {
            panic!("categorical")
        };
        assert_eq!((c.counts.as_slice(), c.unseen), (&[1, 2][..], 2));
        assert_eq!((p.rows, p.missing), (6, 1));
    }
}
