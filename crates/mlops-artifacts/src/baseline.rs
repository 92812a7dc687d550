//! The baseline a model is monitored against (recorded in `training.json` and the card): each
//! feature's distribution on the training split and the predictions' on the validation set, as
//! counts over fixed bins or categories. `mlops monitor` counts production's rows into the same
//! bins ([`Distribution::bin`] is the one rule of which bin a value falls in), so the two are
//! compared bin for bin.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What training saw, for monitoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Each feature on the training split, in the signature's order.
    pub features: Vec<Profile>,
    /// The model's predictions on the validation set: a class label's share, or values.
    pub predictions: Profile,
}

/// One column's distribution: how many rows, how many had no value, and the rest counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub column: String,
    /// Rows looked at, with a value or not.
    pub rows: u64,
    /// Rows without a value (a gap, where `data.missing` allows one).
    pub missing: u64,
    pub distribution: Distribution,
}

/// Counts over bins of numbers or over categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    Numeric(Numeric),
    Categorical(Categorical),
}

/// Numbers counted over bins whose edges are the baseline's deciles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Numeric {
    /// Ascending, distinct. Bin 0 holds the values below the first edge, bin `i` those at or
    /// above edge `i - 1` and below edge `i`, the last bin those at or above the last edge.
    pub edges: Vec<f64>,
    /// One count per bin (`edges.len() + 1`).
    pub counts: Vec<u64>,
    /// Summary of the values (absent when there were none): smallest, largest, mean, standard
    /// deviation, and quantiles by name (`p01` ... `p99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// A numeric column's summary statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The population standard deviation.
    pub std: f64,
    pub quantiles: BTreeMap<String, f64>,
}

/// Categories counted: the model's categories (or classes) in their order, and what was none of
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Categorical {
    pub categories: Vec<String>,
    /// One count per category.
    pub counts: Vec<u64>,
    /// Values that are none of the categories (0 in a baseline).
    #[serde(default)]
    pub unseen: u64,
}

/// The quantiles a numeric summary records.
pub const QUANTILES: [(&str, f64); 7] = [
    ("p01", 0.01),
    ("p05", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
];

impl Numeric {
    /// The bin `x` falls in.
    pub fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|e| *e <= x)
    }

    /// The same bins, every count zero.
    pub fn empty_like(&self) -> Self {
        Self {
            edges: self.edges.clone(),
            counts: vec![0; self.edges.len() + 1],
            summary: None,
        }
    }
}

impl Categorical {
    /// The same categories, every count zero.
    pub fn empty_like(&self) -> Self {
        Self {
            categories: self.categories.clone(),
            counts: vec![0; self.categories.len()],
            unseen: 0,
        }
    }

    /// The counts with the unseen bucket last: the bins two categorical profiles are compared
    /// over.
    pub fn bins(&self) -> Vec<u64> {
        let mut bins = self.counts.clone();
        bins.push(self.unseen);
        bins
    }
}

impl Distribution {
    /// The same bins or categories, every count zero.
    pub fn empty_like(&self) -> Self {
        match self {
            Distribution::Numeric(n) => Distribution::Numeric(n.empty_like()),
            Distribution::Categorical(c) => Distribution::Categorical(c.empty_like()),
        }
    }

    /// The counts compared bin for bin (a categorical one's unseen bucket last).
    pub fn bins(&self) -> Vec<u64> {
        match self {
            Distribution::Numeric(n) => n.counts.clone(),
            Distribution::Categorical(c) => c.bins(),
        }
    }

    /// Each bin's label for a chart: `< e0`, `[e0, e1)`, ..., `>= eN`; or the categories and
    /// `(unseen)`.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Distribution::Numeric(n) => {
                let mut labels = Vec::with_capacity(n.edges.len() + 1);
                let Some((first, _)) = n.edges.split_first() else {
                    return vec!["all".to_owned()];
                };
                labels.push(format!("< {first}"));
                for pair in n.edges.windows(2) {
                    if let [a, b] = pair {
                        labels.push(format!("[{a}, {b})"));
                    }
                }
                if let Some(last) = n.edges.last() {
                    labels.push(format!(">= {last}"));
                }
                labels
            }
            Distribution::Categorical(c) => {
                let mut labels = c.categories.clone();
                labels.push("(unseen)".to_owned());
                labels
            }
        }
    }
}

impl Profile {
    /// A profile of no rows with `self`'s bins: what production's rows are counted into.
    pub fn empty_like(&self) -> Self {
        Self {
            column: self.column.clone(),
            rows: 0,
            missing: 0,
            distribution: self.distribution.empty_like(),
        }
    }

    /// The share of rows without a value (0 for no rows).
    pub fn missing_rate(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.missing as f64 / self.rows as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(edges: Vec<f64>) -> Numeric {
        Numeric {
            counts: vec![0; edges.len() + 1],
            edges,
            summary: None,
        }
    }

    #[test]
    fn a_value_on_an_edge_falls_in_the_bin_above_it() {
        let n = numeric(vec![0.0, 1.5, 3.0]);
        assert_eq!(n.bin(-1.0), 0);
        assert_eq!(n.bin(0.0), 1);
        assert_eq!(n.bin(1.4999), 1);
        assert_eq!(n.bin(1.5), 2);
        assert_eq!(n.bin(3.0), 3);
        assert_eq!(n.bin(1e30), 3);
        assert_eq!(numeric(Vec::new()).bin(5.0), 0);
    }

    #[test]
    fn labels_name_each_bin_and_the_unseen_bucket() {
        let d = Distribution::Numeric(numeric(vec![0.0, 2.5]));
        assert_eq!(d.labels(), ["< 0", "[0, 2.5)", ">= 2.5"]);
        let c = Distribution::Categorical(Categorical {
            categories: vec!["red".into(), "blue".into()],
            counts: vec![3, 4],
            unseen: 1,
        });
        assert_eq!(c.labels(), ["red", "blue", "(unseen)"]);
        assert_eq!(c.bins(), [3, 4, 1]);
        assert_eq!(c.empty_like().bins(), [0, 0, 0]);
    }
}
