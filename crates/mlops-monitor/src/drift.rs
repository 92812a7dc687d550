//! The drift measures, over two profiles' counts of the same bins: the population stability
//! index and the Kolmogorov-Smirnov statistic. Both are checked against numpy on the same bins
//! (tests/mlops/monitor.rs).

/// The share an empty bin is taken to have in the population stability index, so that a bin
/// one side never saw adds a large but finite term (the floor Evidently and most PSI write-ups
/// use).
pub const FLOOR: f64 = 1e-4;

/// Each bin's share of the total; `None` when there is nothing counted.
pub fn shares(counts: &[u64]) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    (total > 0).then(|| counts.iter().map(|&c| c as f64 / total as f64).collect())
}

/// The population stability index of `actual` against `expected`: the sum over bins of
/// `(a - e) * ln(a / e)`, each share floored at [`FLOOR`]. `None` when either side is empty or
/// the bins differ in number.
pub fn psi(expected: &[u64], actual: &[u64]) -> Option<f64> {
    if expected.len() != actual.len() {
        return None;
    }
    let (e, a) = (shares(expected)?, shares(actual)?);
    Some(
        e.iter()
            .zip(&a)
            .map(|(&e, &a)| {
                let (e, a) = (e.max(FLOOR), a.max(FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The Kolmogorov-Smirnov statistic over ordered bins: the largest gap between the two
/// cumulative shares at a bin's upper edge. `None` when either side is empty.
pub fn ks(expected: &[u64], actual: &[u64]) -> Option<f64> {
    if expected.len() != actual.len() {
        return None;
    }
    let (e, a) = (shares(expected)?, shares(actual)?);
    let (mut ce, mut ca, mut gap) = (0.0f64, 0.0f64, 0.0f64);
    for (e, a) in e.iter().zip(&a) {
        ce += e;
        ca += a;
        gap = gap.max((ce - ca).abs());
    }
    Some(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_shares_have_no_drift() {
        assert_eq!(psi(&[10, 20, 30], &[1, 2, 3]), Some(0.0));
        assert_eq!(ks(&[10, 20, 30], &[1, 2, 3]), Some(0.0));
        assert_eq!(psi(&[0, 0], &[1, 2]), None);
        assert_eq!(ks(&[1], &[1, 2]), None);
    }

    #[test]
    fn psi_and_ks_by_hand() {
        // shares 0.5/0.5 against 0.9/0.1:
        // (0.9 - 0.5) ln(1.8) + (0.1 - 0.5) ln(0.2) = 0.4 (ln 1.8 - ln 0.2) = 0.4 ln 9
        let p = psi(&[5, 5], &[9, 1]).expect("psi");
        assert!((p - 0.4 * 9f64.ln()).abs() < 1e-12, "{p}");
        let k = ks(&[5, 5], &[9, 1]).expect("ks");
        assert!((k - 0.4).abs() < 1e-12, "{k}");
        // An empty bin on one side is floored, not infinite.
        let p = psi(&[10, 0], &[5, 5]).expect("psi");
        assert!(p.is_finite() && p > 3.0, "{p}");
    }
}
