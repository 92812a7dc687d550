//! The paired tests' figures against SciPy's on the same inputs: McNemar's exact p-value is
//! SciPy's two-sided binomial test at one half on the discordant rows.

use crate::tools::tool;

#[test]
fn mcnemar_p_values_agree_with_scipy() {
    let Some(python) = tool("python3") else {
        return;
    };
    let tables: Vec<(u64, u64)> = vec![
        (0, 1),
        (0, 5),
        (1, 4),
        (3, 3),
        (7, 19),
        (25, 40),
        (120, 90),
        (13, 0),
        (400, 455),
        (1000, 1100),
        (5, 60),
    ];
    let script = format!(
        "from scipy.stats import binomtest\nfor b, c in {tables:?}:\n    print(binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0)\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named 'scipy'") {
            crate::tools::missing("scipy (cargo xtask tools installs it)");
            return;
        }
        panic!("{err}");
    }
    let theirs: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("a p-value"))
        .collect();
    assert_eq!(theirs.len(), tables.len());
    for ((b, c), want) in tables.iter().zip(theirs) {
        let got = mlops_holdout::paired::mcnemar_exact(*b, *c);
        let close = (got - want).abs() <= 1e-12 + 1e-9 * want.abs();
        assert!(close, "({b}, {c}): ours {got}, scipy {want}");
    }
}
