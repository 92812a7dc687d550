//! Tabular input, with no training stack: the record reader for CSV and JSON lines
//! ([`records`]), number parsing as the model and the prediction service read numbers
//! ([`number`]), and datasets ([`data`]): streamed and hashed files, the feature table, the
//! train/validation/holdout split and the standardizer fitted on the training split.

pub mod categories;
pub mod data;
pub mod number;
mod parquet;
pub mod profile;
pub mod records;
