//! The scoring pipeline: a reader thread streams the input into batches of rows (the dataset
//! reader training and the holdout test use, categories coded by the model's vocabulary, gaps as
//! the model's `data.missing` allows), prediction threads run each batch through the model's
//! [`Predictor`] (what `mlops serve` answers with) and write its output text, and the calling
//! thread writes the batches in input order. A fixed number of batches is ever in flight, so
//! memory does not grow with the input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use mlops_data::categories::Vocabulary;
use mlops_data::data::{self, Carry, DataError, FileDigest, Format, Values};
use mlops_train::predict::{Predictor, keep_parallel_loops_on_this_thread};

use crate::layout::{Ids, Layout};
use crate::output::{Chunk, Writer};

/// The file to score.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub path: &'a Path,
    /// How errors name it (an `s3://` URI for a downloaded object).
    pub shown: &'a str,
    pub format: Format,
    /// The column kept beside each prediction; `None`: rows are numbered.
    pub id_column: Option<&'a str>,
}

/// Rows per batch by default. Measured with `cargo xtask bench predict` (BENCHMARKS.md): 1,024
/// rows score as fast as 4,096 and hold 15 MB less in flight.
pub const BATCH_ROWS: usize = 1024;

/// How the work is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Rows per batch handed to the model.
    pub batch_rows: usize,
    /// Prediction threads.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_rows: BATCH_ROWS,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// What was scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The input's digest and row count.
    pub input: FileDigest,
    /// Rows written to the output.
    pub rows: u64,
}

/// Why scoring stopped.
#[derive(Debug)]
pub enum Failure {
    /// The input cannot be read or a row is not what the model takes (file, line, hint).
    Input(DataError),
    /// The model failed on a batch.
    Model(String),
    /// The output cannot be written.
    Output(String),
    /// Stopped from outside (a signal) before the last row.
    Cancelled,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Input(e) => write!(f, "{e}"),
            Failure::Model(m) => write!(f, "the model could not predict: {m}"),
            Failure::Output(m) => write!(f, "cannot write the output: {m}"),
            Failure::Cancelled => write!(f, "stopped before the last row"),
        }
    }
}

/// A batch read from the input.
struct Batch {
    seq: u64,
    /// The input lines (rows for Parquet) it spans, for errors.
    lines: (u64, u64),
    x: Vec<f32>,
    ids: Ids,
}

/// Scores `input` with `predictor`, writing each row's prediction to `writer` as `format` in
/// `layout`, in input order. The writer is not finished here. Setting `cancel` stops the work
/// at the next row: [`Failure::Cancelled`].
pub fn score(
    predictor: &Predictor,
    input: Input<'_>,
    layout: &Layout,
    format: Format,
    writer: &mut Writer,
    options: Options,
    cancel: &AtomicBool,
) -> Result<Scored, Failure> {
    let batch_rows = options.batch_rows.max(1);
    let threads = options.threads.max(1);
    // Batches in flight at once: read, being predicted, or waiting for their turn to be written.
    let in_flight = 2 * threads + 2;
    let (to_predict, batches) = sync_channel::<Batch>(in_flight);
    let (to_write, scored) = sync_channel::<(u64, Result<Chunk, String>)>(in_flight);
    let (give_back, permits) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        // The channel holds them all: it cannot be full or closed here.
        let _ = give_back.send(());
    }
    let batches = Arc::new(Mutex::new(batches));
    std::thread::scope(|scope| {
        let reader =
            scope.spawn(move || read(predictor, input, batch_rows, to_predict, permits, cancel));
        for _ in 0..threads {
            let batches = Arc::clone(&batches);
            let to_write = to_write.clone();
            scope.spawn(move || predict(predictor, layout, format, &batches, &to_write));
        }
        drop(to_write);
        drop(batches);
        let written = write(scored, writer, give_back, cancel);
        let read = reader.join().unwrap_or_else(|_| {
            Err(DataError::at(
                input.path,
                None,
                "the reader failed".to_owned(),
                "",
            ))
        });
        // The writer's failure explains the reader's stop, not the other way round.
        let rows = written?;
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        let digest = read.map_err(Failure::Input)?;
        Ok(Scored {
            input: digest,
            rows,
        })
    })
}

/// The reader thread: batches of `batch_rows` rows, each sent once a permit is free.
fn read(
    predictor: &Predictor,
    input: Input<'_>,
    batch_rows: usize,
    to_predict: SyncSender<Batch>,
    permits: Receiver<()>,
    cancel: &AtomicBool,
) -> Result<FileDigest, DataError> {
    let signature = &predictor.bundle.signature;
    let width = predictor.width();
    let mut vocabulary = Vocabulary::new(
        &signature.features,
        &signature.categorical,
        signature.unseen,
    );
    let values = Values::Parse.with_gaps(predictor.bundle.standardizer.takes_gaps());
    let carry = input.id_column.map_or(Carry::Nothing, Carry::Id);
    let fresh_ids = |first: u64| match input.id_column {
        Some(_) => Ids::text(),
        None => Ids::Numbers { first, rows: 0 },
    };
    let mut rows = 0u64;
    let mut seq = 0u64;
    let mut batch = Batch {
        seq,
        lines: (0, 0),
        x: Vec::with_capacity(batch_rows * width),
        ids: fresh_ids(1),
    };
    let send = |batch: Batch| -> Result<(), String> {
        permits.recv().map_err(|_| "stopped".to_owned())?;
        to_predict.send(batch).map_err(|_| "stopped".to_owned())
    };
    let digest = data::read_carrying(
        input.path,
        input.shown,
        input.format,
        &signature.features,
        carry,
        values,
        &mut vocabulary,
        |row| {
            if cancel.load(Ordering::Relaxed) {
                return Err("stopped".to_owned());
            }
            if batch.ids.is_empty() {
                batch.lines.0 = row.line;
            }
            batch.lines.1 = row.line;
            batch.x.extend_from_slice(row.features);
            match &mut batch.ids {
                Ids::Numbers { rows, .. } => *rows += 1,
                ids => ids.push(row.label),
            }
            rows += 1;
            if batch.ids.len() == batch_rows {
                seq += 1;
                let next = Batch {
                    seq,
                    lines: (0, 0),
                    x: Vec::with_capacity(batch_rows * width),
                    ids: fresh_ids(rows + 1),
                };
                send(std::mem::replace(&mut batch, next))?;
            }
            Ok(())
        },
    )?;
    if !batch.ids.is_empty() {
        send(batch).map_err(|m| DataError::at(input.path, None, m, ""))?;
    }
    Ok(digest)
}

/// A prediction thread: batches until the reader is done, each predicted and written as text.
fn predict(
    predictor: &Predictor,
    layout: &Layout,
    format: Format,
    batches: &Mutex<Receiver<Batch>>,
    to_write: &SyncSender<(u64, Result<Chunk, String>)>,
) {
    keep_parallel_loops_on_this_thread();
    loop {
        let next = match batches.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(batch) = next else { return };
        let rows = batch.ids.len();
        let at = if batch.lines.0 == batch.lines.1 {
            format!("line {}", batch.lines.0)
        } else {
            format!("lines {} to {}", batch.lines.0, batch.lines.1)
        };
        let chunk = match predictor.predict(&batch.x) {
            Ok(outputs) if outputs.rows() == rows => {
                Ok(Chunk::of(layout, format, batch.ids, outputs))
            }
            Ok(outputs) => Err(format!(
                "{at}: {rows} rows in, {} predictions out",
                outputs.rows()
            )),
            Err(e) => Err(format!("{at}: {e}")),
        };
        if to_write.send((batch.seq, chunk)).is_err() {
            return;
        }
    }
}

/// The calling thread: chunks written in input order; each written one frees a permit.
fn write(
    scored: Receiver<(u64, Result<Chunk, String>)>,
    writer: &mut Writer,
    give_back: SyncSender<()>,
    cancel: &AtomicBool,
) -> Result<u64, Failure> {
    let mut waiting: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut next = 0u64;
    let mut rows = 0u64;
    for (seq, chunk) in scored {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        waiting.insert(seq, chunk.map_err(Failure::Model)?);
        while let Some(chunk) = waiting.remove(&next) {
            rows += chunk.rows();
            writer.write(chunk).map_err(Failure::Output)?;
            next += 1;
            // The reader may be gone (done); a permit nobody takes is fine.
            let _ = give_back.try_send(());
        }
    }
    if let Some(seq) = waiting.keys().next() {
        return Err(Failure::Model(format!(
            "batch {next} never came (batch {seq} did)"
        )));
    }
    Ok(rows)
}
