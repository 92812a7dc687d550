//! The holdout run: the dataset streamed in batches through the service with a fixed number of
//! requests in flight, the answers scored as they come back (in order), the offline prediction
//! of every row compared with the service's, and the metrics compared with the ones recorded at
//! training time.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use hyper::body::Bytes;
use mlops_manifest::model::{Metric, Task};
use mlops_train::data::{self, Format};
use mlops_train::metrics::{Confusion, Errors};
use mlops_train::predict::{Outputs, Predictor};
use mlops_train::worker::Signature;
use serde::Deserialize;

use crate::client::{CallError, Service};
use crate::report::{Mismatch, Parity, Report, compare};

/// What to test.
#[derive(Debug)]
pub struct Plan {
    /// The holdout file (local; an `s3://` dataset is downloaded first) and its name for reports.
    pub path: PathBuf,
    pub shown: String,
    pub format: Format,
    pub signature: Signature,
    /// The registered model, for the offline prediction of every row (parity); `None` turns the
    /// parity check off.
    pub parity: Option<Arc<Predictor>>,
    pub batch_size: usize,
    pub concurrency: usize,
    /// The metrics measured on the holdout set at training time, by name.
    pub recorded: BTreeMap<String, f64>,
    pub metrics: Vec<Metric>,
    pub tolerances: BTreeMap<Metric, f64>,
    pub model: String,
}

/// Why a run could not finish.
#[derive(Debug)]
pub enum RunError {
    /// The dataset could not be read (exit 2).
    Data(data::DataError),
    /// The service refused a batch (exit 1: it does not accept what the model accepts).
    Refused(CallError),
    /// The service is down, kept failing, or broke its contract (exit 3).
    Service(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Data(e) => write!(f, "{e}"),
            RunError::Refused(e) => write!(f, "{e}"),
            RunError::Service(m) => f.write_str(m),
        }
    }
}

/// One batch on its way: the request body, the truth, the lines, the offline predictions.
struct Batch {
    body: Bytes,
    lines: Vec<u64>,
    truth: Vec<Truth>,
    /// `None` with parity off; an error when the model could not predict the batch offline.
    offline: Option<Result<Outputs, String>>,
}

#[derive(Debug, Clone)]
enum Truth {
    Class(Option<usize>),
    Value(f32),
}

/// The service's answer, the fields the test reads.
#[derive(Deserialize)]
struct Answer {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    label: Option<String>,
    value: Option<f32>,
}

/// Writes `{"columns": [...], "data": [[...], ...]}` for rows of `width` values.
fn request_body(columns: &str, x: &[f32], width: usize) -> Bytes {
    let mut out = Vec::with_capacity(columns.len() + x.len() * 8 + 32);
    out.extend_from_slice(b"{\"columns\":");
    out.extend_from_slice(columns.as_bytes());
    out.extend_from_slice(b",\"data\":[");
    // The shortest text that reads back as the same f32 (zmij, the formatter serde_json uses;
    // three times faster than `Display`, which was a third of the client's time).
    let mut number = zmij::Buffer::new();
    for (i, row) in x.chunks(width.max(1)).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            if v.is_finite() {
                out.extend_from_slice(number.format_finite(*v).as_bytes());
            } else {
                // Not JSON: the service refuses the batch, naming the row and column.
                out.extend_from_slice(b"null");
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// Reads the dataset on this (blocking) thread and hands batches to `send`.
fn produce(
    plan: &Plan,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<data::FileDigest, data::DataError> {
    let s = &plan.signature;
    let width = s.features.len();
    let columns = serde_json::to_string(&s.features).unwrap_or_else(|_| "[]".to_owned());
    let classes: Option<BTreeMap<&str, usize>> = s
        .classes
        .as_ref()
        .map(|c| c.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect());
    let mut x = Vec::with_capacity(plan.batch_size * width);
    let mut lines = Vec::with_capacity(plan.batch_size);
    let mut truth = Vec::with_capacity(plan.batch_size);
    let mut stopped = false;
    let mut flush = |x: &mut Vec<f32>, lines: &mut Vec<u64>, truth: &mut Vec<Truth>| -> bool {
        let offline = plan.parity.as_ref().map(|p| p.predict(x));
        let batch = Batch {
            body: request_body(&columns, x, width),
            lines: std::mem::take(lines),
            truth: std::mem::take(truth),
            offline,
        };
        x.clear();
        send(batch)
    };
    let digest = data::read(
        &plan.path,
        &plan.shown,
        plan.format,
        &s.features,
        &s.label,
        |row| {
            if stopped {
                return Err("stopped".to_owned());
            }
            x.extend_from_slice(row.features);
            lines.push(row.line);
            truth.push(match &classes {
                Some(map) => Truth::Class(map.get(row.label.trim()).copied()),
                None => Truth::Value(row.label.trim().parse().map_err(|_| {
                    format!("the regression target is `{}`, not a number", row.label)
                })?),
            });
            if lines.len() == plan.batch_size && !flush(&mut x, &mut lines, &mut truth) {
                stopped = true;
            }
            Ok(())
        },
    )?;
    if !lines.is_empty() {
        flush(&mut x, &mut lines, &mut truth);
    }
    Ok(digest)
}

/// Accumulates answers as they arrive, in dataset order.
struct Score {
    task: Task,
    classes: Vec<String>,
    confusion: Confusion,
    errors: Errors,
    parity: Parity,
    rows: u64,
}

impl Score {
    fn add(&mut self, batch: &Batch, answer: &Answer) -> Result<(), String> {
        let offline = match &batch.offline {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                return Err(format!(
                    "the registered model could not predict lines {}-{} offline: {e}",
                    batch.lines.first().copied().unwrap_or(0),
                    batch.lines.last().copied().unwrap_or(0)
                ));
            }
        };
        if answer.predictions.len() != batch.truth.len() {
            return Err(format!(
                "the service answered {} predictions for {} rows (lines {}-{})",
                answer.predictions.len(),
                batch.truth.len(),
                batch.lines.first().copied().unwrap_or(0),
                batch.lines.last().copied().unwrap_or(0)
            ));
        }
        for (i, (p, t)) in answer.predictions.iter().zip(&batch.truth).enumerate() {
            self.rows += 1;
            match (self.task, t) {
                (Task::Classification, Truth::Class(t)) => {
                    let label = p.label.as_deref().ok_or_else(|| {
                        "a classification answer has no `label`; is this the right model?"
                            .to_owned()
                    })?;
                    let predicted = self
                        .classes
                        .iter()
                        .position(|c| c == label)
                        .unwrap_or(usize::MAX);
                    if let Some(t) = t {
                        self.confusion.add(predicted, *t);
                    }
                    if let Some(Outputs::Classes { index, .. }) = offline {
                        self.parity.checked += 1;
                        if index[i] != predicted {
                            let expected = self.classes.get(index[i]).cloned().unwrap_or_default();
                            self.parity.mismatch(Mismatch {
                                line: batch.lines[i],
                                expected,
                                observed: label.to_owned(),
                            });
                        }
                    }
                }
                (Task::Regression, Truth::Value(t)) => {
                    let v = p.value.ok_or_else(|| {
                        "a regression answer has no `value`; is this the right model?".to_owned()
                    })?;
                    self.errors.add(v, *t);
                    if let Some(Outputs::Values(offline)) = offline {
                        self.parity.checked += 1;
                        let o = offline[i];
                        if (v - o).abs() > 1e-5 * o.abs().max(1.0) || !v.is_finite() {
                            self.parity.mismatch(Mismatch {
                                line: batch.lines[i],
                                expected: o.to_string(),
                                observed: v.to_string(),
                            });
                        }
                    }
                }
                _ => return Err("the truth does not fit the task".to_owned()),
            }
        }
        Ok(())
    }
}

/// Runs the holdout test against `service`.
pub async fn run(plan: Plan, service: Service) -> Result<Report, RunError> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let concurrency = plan.concurrency.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(concurrency);
    let reader_plan = plan.clone();
    let reader =
        tokio::task::spawn_blocking(move || produce(&reader_plan, |b| tx.blocking_send(b).is_ok()));
    let service = Arc::new(service);
    let retried = Arc::new(AtomicU64::new(0));
    let s = &plan.signature;
    let mut score = Score {
        task: s.task,
        classes: s.classes.clone().unwrap_or_default(),
        confusion: Confusion::new(s.classes.as_ref().map_or(0, Vec::len)),
        errors: Errors::default(),
        parity: Parity {
            enabled: plan.parity.is_some(),
            ..Parity::default()
        },
        rows: 0,
    };
    let mut in_flight: VecDeque<tokio::task::JoinHandle<(Batch, Result<Bytes, CallError>)>> =
        VecDeque::new();
    let mut requests = 0u64;
    let mut open = true;
    let failure = loop {
        while open && in_flight.len() < concurrency {
            match rx.recv().await {
                Some(batch) => {
                    let service = service.clone();
                    let retried = retried.clone();
                    requests += 1;
                    in_flight.push_back(tokio::spawn(async move {
                        let answer = service.call(batch.body.clone(), &retried).await;
                        (batch, answer)
                    }));
                }
                None => open = false,
            }
        }
        let Some(next) = in_flight.pop_front() else {
            break None;
        };
        let (batch, answer) = match next.await {
            Ok(done) => done,
            Err(e) => break Some(RunError::Service(format!("a request task failed: {e}"))),
        };
        let body = match answer {
            Ok(b) => b,
            Err(e @ CallError::Refused { .. }) => break Some(RunError::Refused(e)),
            Err(CallError::Unavailable(m)) => break Some(RunError::Service(m)),
        };
        let parsed: Answer = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                break Some(RunError::Service(format!(
                    "the service's answer is not the prediction JSON: {e}"
                )));
            }
        };
        if let Err(m) = score.add(&batch, &parsed) {
            break Some(RunError::Service(m));
        }
    };
    if let Some(f) = failure {
        for t in &in_flight {
            t.abort();
        }
        drop(rx);
        let _ = reader.await;
        return Err(f);
    }
    let digest = match reader.await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(RunError::Data(e)),
        Err(e) => return Err(RunError::Service(format!("the reader failed: {e}"))),
    };
    let observed = match s.task {
        Task::Classification => score.confusion.metrics(),
        Task::Regression => score.errors.metrics(),
    };
    let seconds = started.elapsed().as_secs_f64();
    let checks = compare(&plan.metrics, &observed, &plan.recorded, &plan.tolerances);
    let classification = s.task == Task::Classification;
    Ok(Report::new(
        plan.model.clone(),
        service.endpoint(),
        digest,
        score.rows,
        requests,
        retried.load(std::sync::atomic::Ordering::Relaxed),
        seconds,
        checks,
        classification.then(|| (score.classes.clone(), score.confusion.clone())),
        score.parity,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_round_trip_every_float() {
        let x = [0.1f32, -3.5, 16.0, 1e-7, f32::MAX, 0.0];
        let body = request_body(r#"["a","b","c"]"#, &x, 3);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["columns"], serde_json::json!(["a", "b", "c"]));
        let back: Vec<f32> = v["data"]
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|n| n.as_f64().expect("num") as f32)
            })
            .collect();
        assert_eq!(back, x);
    }
}
