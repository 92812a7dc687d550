//! The wide table `tests/mlops/wide.rs` and `cargo xtask bench wide` share: 2,000 numeric
//! columns (one `f_{0..1999}` range) and a categorical column of 40 shops, its manifest and a
//! seeded generator of its rows.

#![allow(dead_code)]

use std::fmt::Write as _;

pub(crate) const WIDTH: usize = 2000;
pub(crate) const SHOPS: usize = 40;

/// `rows` rows of the table: features with three decimals from a seeded generator, a shop
/// (`s0` … `s39`) and a label from the first ten features and the shop.
pub(crate) fn table(rows: usize, seed: u64) -> String {
    let mut lcg = super::lcg::Lcg(seed);
    let mut next = move || lcg.next() * 2.0 - 1.0;
    let mut out = String::new();
    for i in 0..WIDTH {
        let _ = write!(out, "f_{i},");
    }
    out.push_str("shop,trend\n");
    for _ in 0..rows {
        let mut signal = 0.0;
        for i in 0..WIDTH {
            let v = (next() * 1000.0).round() / 1000.0;
            if i < 10 {
                signal += v;
            }
            let _ = write!(out, "{v},");
        }
        let shop = ((next() + 1.0) / 2.0 * SHOPS as f64) as usize % SHOPS;
        if shop < 10 {
            signal += 1.0;
        }
        let label = if signal > 0.0 { "up" } else { "down" };
        let _ = writeln!(out, "s{shop},{label}");
    }
    out
}

pub(crate) const MANIFEST: &str = r#"version: 1
project:
  name: wide
  repository: acme/wide
data:
  features: ["f_{0..1999}", shop]
  categorical: [shop]
  label: trend
  train: { path: data/train.csv }
  holdout: { path: data/holdout.csv }
model:
  name: wide-mlp
  task: classification
  family: mlp
  hyperparameters: { hidden_layers: [16], activation: relu }
training:
  epochs: 8
  batch_size: 32
  learning_rate: 0.003
evaluation:
  metrics: [accuracy]
environments:
  staging: { url: "http://127.0.0.1:8080" }
  production: { url: "https://wide.example.com" }
holdout:
  metrics: [accuracy]
  tolerances: { accuracy: 0.0 }
  batch_size: 64
"#;
