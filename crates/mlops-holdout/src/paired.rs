//! Paired tests of two models scored on the same rows: whether a difference between their
//! metrics is more than the noise of the sample. For classification, McNemar's exact test on the
//! rows where exactly one of the two is right; for regression, a bootstrap interval of the mean
//! paired difference of the errors. (The building blocks of the no-regression comparison of a
//! candidate with what production serves; issue "No regression against production".)

/// McNemar's exact test: `only_first` rows the first model got right and the second wrong,
/// `only_second` the reverse. The two-sided p-value of so lopsided a split if either model were
/// as likely to be the one right (a binomial test at one half): the chance of a split at least
/// as uneven, doubled, at most 1. No discordant rows: 1.
pub fn mcnemar_exact(only_first: u64, only_second: u64) -> f64 {
    let n = only_first + only_second;
    if n == 0 {
        return 1.0;
    }
    let k = only_first.min(only_second);
    // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space: the terms are 2^-n C(n, i).
    let mut log_term = n as f64 * 0.5f64.ln();
    let mut terms = Vec::with_capacity(usize::try_from(k + 1).unwrap_or(usize::MAX).min(1 << 20));
    terms.push(log_term);
    for i in 0..k {
        log_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        terms.push(log_term);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (2.0 * tail.exp()).min(1.0)
}

/// A `level` (e.g. 0.95) percentile bootstrap interval of the mean of `differences` (one per
/// row: the candidate's error less the incumbent's), from `resamples` resamples drawn with a
/// generator seeded by `seed` (the same inputs give the same interval). `None` for no rows.
pub fn bootstrap_mean_interval(
    differences: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    let n = differences.len();
    if n == 0 || resamples == 0 {
        return None;
    }
    let mut state = seed;
    // splitmix64: small, fast and good enough to pick rows.
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: f64 = (0..n)
                .map(|_| {
                    let i = usize::try_from(next() % n as u64).unwrap_or(0);
                    differences.get(i).copied().unwrap_or(0.0)
                })
                .sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let at = |q: f64| {
        let i = ((q * resamples as f64).floor() as usize).min(resamples - 1);
        means.get(i).copied().unwrap_or(0.0)
    };
    Some((at(tail), at(1.0 - tail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // 0 vs 5: 2 * (1/2)^5.
        assert!((mcnemar_exact(0, 5) - 2.0 / 32.0).abs() < 1e-15);
        // 1 vs 4: 2 * (1 + 5) / 32.
        assert!((mcnemar_exact(4, 1) - 12.0 / 32.0).abs() < 1e-15);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large and lopsided: tiny but not zero or NaN.
        let p = mcnemar_exact(10, 2000);
        assert!(p.is_finite() && p < 1e-300, "{p}");
        assert!(mcnemar_exact(1000, 1100).is_finite());
    }

    #[test]
    fn the_bootstrap_interval_holds_the_mean_and_is_reproducible() {
        let diffs: Vec<f64> = (0..500).map(|i| f64::from(i % 7) - 3.0 + 0.1).collect();
        let (lo, hi) = bootstrap_mean_interval(&diffs, 2000, 0.95, 7).expect("rows");
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        assert!(lo < mean && mean < hi, "{lo} {mean} {hi}");
        assert!(hi - lo < 0.5, "{lo} {hi}");
        assert_eq!(
            bootstrap_mean_interval(&diffs, 2000, 0.95, 7),
            Some((lo, hi))
        );
        assert_eq!(bootstrap_mean_interval(&[], 10, 0.95, 1), None);
        // Every row the same: the interval is that value.
        assert_eq!(
            bootstrap_mean_interval(&[0.25; 40], 100, 0.9, 3),
            Some((0.25, 0.25))
        );
    }
}
