//! Batch scoring (`mlops predict`): a dataset file streamed through a model's predictor, the
//! same code `mlops serve` answers with, one output row per input row in the input's order,
//! each with the input's id (or the row's number), written as CSV, JSON lines or Parquet
//! ([`score`], [`output`]). The output's row count is read back from the finished file
//! ([`output::rows_in`]) and checked against the input's, here and on a SageMaker Batch
//! Transform's assembled output alike.

pub mod layout;
pub mod output;
pub mod score;
pub mod transform;

pub use layout::Layout;
pub use output::{Writer, rows_in};
pub use score::{Failure, Input, Options, Scored, score};
