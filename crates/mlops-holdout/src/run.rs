//! The holdout run: the dataset streamed in batches through the service with a fixed number of
//! requests in flight, the answers scored as they come back (in order), the offline prediction
//! of every row compared with the service's, and the metrics compared with the ones recorded at
//! training time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use hyper::body::Bytes;
use mlops_manifest::model::{Metric, Task};
use mlops_train::data::{self, Format};
use mlops_train::metrics::{Confusion, Errors};
use mlops_train::number;
use mlops_train::predict::{Outputs, Predictor};
use mlops_train::worker::Signature;
use serde::Deserialize;

use crate::client::{CallError, Reply, Service};
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

/// The service's JSON answer, the fields the test reads.
#[derive(Deserialize)]
struct Answer {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    label: Option<String>,
    value: Option<f32>,
}

/// One prediction as the service gave it.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    /// One of the model's classes, by index.
    Class(usize),
    /// A label that is none of the model's classes.
    Other(String),
    Value(f32),
}

/// The class `label` names, without allocating for a known one.
fn class(label: &[u8], classes: &[String]) -> Said {
    match classes.iter().position(|c| c.as_bytes() == label) {
        Some(i) => Said::Class(i),
        None => Said::Other(String::from_utf8_lossy(label).into_owned()),
    }
}

/// The predictions in a reply: CSV (one per line: a label or a value) or the JSON answer.
fn read_reply(reply: &Reply, task: Task, classes: &[String]) -> Result<Vec<Said>, String> {
    let csv = reply
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        let answer: Answer = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("the service's answer is not the prediction JSON: {e}"))?;
        return answer
            .predictions
            .into_iter()
            .map(|p| match task {
                Task::Classification => {
                    p.label
                        .map(|l| class(l.as_bytes(), classes))
                        .ok_or_else(|| {
                            "a classification answer has no `label`; is this the right model?"
                                .to_owned()
                        })
                }
                Task::Regression => p.value.map(Said::Value).ok_or_else(|| {
                    "a regression answer has no `value`; is this the right model?".to_owned()
                }),
            })
            .collect();
    }
    if !reply.body.contains(&b'"') {
        // Nothing quoted (the usual case): one field per line.
        let text = reply.body.strip_suffix(b"\n").unwrap_or(&reply.body);
        if text.is_empty() {
            return Ok(Vec::new());
        }
        return text
            .split(|b| *b == b'\n')
            .map(|line| said(line.strip_suffix(b"\r").unwrap_or(line), task, classes))
            .collect();
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&reply.body[..]);
    let mut out = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(format!("the service's CSV answer is malformed: {e}")),
        }
        out.push(said(record.get(0).unwrap_or_default(), task, classes)?);
    }
    Ok(out)
}

/// One CSV answer field: a label or a value.
fn said(field: &[u8], task: Task, classes: &[String]) -> Result<Said, String> {
    Ok(match task {
        Task::Classification => class(field, classes),
        Task::Regression => Said::Value(number::parse(field).ok_or_else(|| {
            format!(
                "the service answered `{}` where a regression value belongs",
                String::from_utf8_lossy(field)
            )
        })?),
    })
}

/// The CSV header of every request: the signature's feature names, in its order (quoted by the
/// csv writer where CSV needs it).
fn csv_header(features: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.write_record(features);
    writer.into_inner().unwrap_or_default()
}

/// Appends one CSV row to `out`: the file's own text when there is one (every feature field
/// was checked to be a number, and the service reads it with the same parser as the offline
/// reader), else each value as the shortest text that reads back as the same `f32`.
fn write_row(out: &mut Vec<u8>, row: &data::Row<'_>, number: &mut zmij::Buffer) {
    match &row.text {
        Some(text) => match text.joined() {
            Some(joined) => out.extend_from_slice(joined),
            None => {
                for (j, t) in text.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(t);
                }
            }
        },
        None => {
            for (j, v) in row.features.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(number.format_finite(*v).as_bytes());
            }
        }
    }
    out.push(b'\n');
}

/// Reads the dataset on this (blocking) thread and hands batches to `send`.
fn produce(
    plan: &Plan,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<data::FileDigest, data::DataError> {
    let s = &plan.signature;
    let width = s.features.len();
    let header = csv_header(&s.features);
    let classes: Option<BTreeMap<&str, usize>> = s
        .classes
        .as_ref()
        .map(|c| c.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect());
    // The features as numbers are kept only for the offline prediction (parity).
    let keep = plan.parity.is_some();
    let mut x = Vec::with_capacity(if keep { plan.batch_size * width } else { 0 });
    let mut body = header.clone();
    let mut number = zmij::Buffer::new();
    let mut lines = Vec::with_capacity(plan.batch_size);
    let mut truth = Vec::with_capacity(plan.batch_size);
    let mut stopped = false;
    let mut flush = |x: &mut Vec<f32>,
                     body: &mut Vec<u8>,
                     lines: &mut Vec<u64>,
                     truth: &mut Vec<Truth>|
     -> bool {
        let offline = plan.parity.as_ref().map(|p| p.predict(x));
        let mut next = Vec::with_capacity(body.len());
        next.extend_from_slice(&header);
        let batch = Batch {
            body: Bytes::from(std::mem::replace(body, next)),
            lines: std::mem::take(lines),
            truth: std::mem::take(truth),
            offline,
        };
        x.clear();
        send(batch)
    };
    let values = if keep {
        data::Values::Parse
    } else {
        data::Values::Check
    };
    let digest = data::read_with(
        &plan.path,
        &plan.shown,
        plan.format,
        &s.features,
        &s.label,
        values,
        |row| {
            if stopped {
                return Err("stopped".to_owned());
            }
            if keep {
                x.extend_from_slice(row.features);
            }
            write_row(&mut body, &row, &mut number);
            lines.push(row.line);
            truth.push(match &classes {
                Some(map) => Truth::Class(map.get(row.label.trim()).copied()),
                None => Truth::Value(row.label.trim().parse().map_err(|_| {
                    format!("the regression target is `{}`, not a number", row.label)
                })?),
            });
            if lines.len() == plan.batch_size && !flush(&mut x, &mut body, &mut lines, &mut truth) {
                stopped = true;
            }
            Ok(())
        },
    )?;
    if !lines.is_empty() {
        flush(&mut x, &mut body, &mut lines, &mut truth);
    }
    Ok(digest)
}

/// Accumulates answers as they arrive, in dataset order.
struct Score {
    classes: Vec<String>,
    confusion: Confusion,
    errors: Errors,
    parity: Parity,
    rows: u64,
}

impl Score {
    /// Scores one batch's answer, or says why the run stops.
    fn answer(
        &mut self,
        batch: &Batch,
        answer: Result<Reply, CallError>,
        task: Task,
    ) -> Result<(), RunError> {
        let reply = match answer {
            Ok(r) => r,
            Err(e @ CallError::Refused { .. }) => return Err(RunError::Refused(e)),
            Err(CallError::Unavailable(m)) => return Err(RunError::Service(m)),
        };
        read_reply(&reply, task, &self.classes)
            .and_then(|said| self.add(batch, &said))
            .map_err(RunError::Service)
    }

    fn add(&mut self, batch: &Batch, said: &[Said]) -> Result<(), String> {
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
        if said.len() != batch.truth.len() {
            return Err(format!(
                "the service answered {} predictions for {} rows (lines {}-{})",
                said.len(),
                batch.truth.len(),
                batch.lines.first().copied().unwrap_or(0),
                batch.lines.last().copied().unwrap_or(0)
            ));
        }
        for (i, (p, t)) in said.iter().zip(&batch.truth).enumerate() {
            self.rows += 1;
            match (p, t) {
                (Said::Class(_) | Said::Other(_), Truth::Class(t)) => {
                    let predicted = match p {
                        Said::Class(i) => *i,
                        _ => usize::MAX,
                    };
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
                                observed: match p {
                                    Said::Other(label) => label.clone(),
                                    _ => self.classes.get(predicted).cloned().unwrap_or_default(),
                                },
                            });
                        }
                    }
                }
                (Said::Value(v), Truth::Value(t)) => {
                    let v = *v;
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
    // The reader hands batches over in groups of `concurrency` (one wake-up of either thread per
    // group, not per batch) and may run two groups ahead, so that a moment in which it gets no
    // CPU does not leave the service idle. (Groups of 4,096 rows measured no better.)
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Batch>>(2);
    let reader_plan = plan.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut group = Vec::with_capacity(concurrency);
        let digest = produce(&reader_plan, |b| {
            group.push(b);
            group.len() < concurrency
                || tx
                    .blocking_send(std::mem::replace(
                        &mut group,
                        Vec::with_capacity(concurrency),
                    ))
                    .is_ok()
        });
        if !group.is_empty() {
            let _ = tx.blocking_send(group);
        }
        digest
    });
    let mut pending: std::collections::VecDeque<Batch> =
        std::collections::VecDeque::with_capacity(concurrency);
    let service = Arc::new(service);
    let retried = Arc::new(AtomicU64::new(0));
    let s = &plan.signature;
    let mut score = Score {
        classes: s.classes.clone().unwrap_or_default(),
        confusion: Confusion::new(s.classes.as_ref().map_or(0, Vec::len)),
        errors: Errors::default(),
        parity: Parity {
            enabled: plan.parity.is_some(),
            ..Parity::default()
        },
        rows: 0,
    };
    // Requests run as a set and finish in any order; their answers wait in `done` until every
    // earlier one is scored. A freed place gets the next batch at once, as a load generator
    // would refill it, so the service always has `concurrency` requests; at most as many
    // answers wait, which bounds memory whatever the dataset's size.
    let mut running: tokio::task::JoinSet<(u64, Batch, Result<Reply, CallError>)> =
        tokio::task::JoinSet::new();
    let mut done: BTreeMap<u64, (Batch, Result<Reply, CallError>)> = BTreeMap::new();
    let (mut requests, mut scored) = (0u64, 0u64);
    let mut open = true;
    let failure = 'run: loop {
        // Score what is next in order.
        while let Some((batch, answer)) = done.remove(&scored) {
            scored += 1;
            if let Err(f) = score.answer(&batch, answer, s.task) {
                break 'run Some(f);
            }
        }
        if !open && pending.is_empty() && running.is_empty() {
            break (!done.is_empty())
                .then(|| RunError::Service("answers were left unscored".to_owned()));
        }
        let room = running.len() < concurrency && done.len() < concurrency;
        if room && let Some(batch) = pending.pop_front() {
            // A free place is filled before an answer is collected.
            let (service, retried, seq) = (service.clone(), retried.clone(), requests);
            requests += 1;
            running.spawn(async move {
                let answer = service.call(batch.body.clone(), &retried).await;
                (seq, batch, answer)
            });
            continue;
        }
        tokio::select! {
            biased;
            group = rx.recv(), if room && open => match group {
                Some(group) => pending.extend(group),
                None => open = false,
            },
            joined = running.join_next(), if !running.is_empty() => match joined {
                Some(Ok((seq, batch, answer))) => {
                    done.insert(seq, (batch, answer));
                }
                Some(Err(e)) => {
                    break Some(RunError::Service(format!("a request task failed: {e}")));
                }
                None => {}
            },
            else => break Some(RunError::Service("nothing to send and nothing in flight".to_owned())),
        }
    };
    if let Some(f) = failure {
        running.abort_all();
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
    fn rows_without_file_text_round_trip_every_float() {
        let values = [0.1f32, -3.5, 16.0, 1e-7, f32::MAX, 0.0];
        let mut body = csv_header(&["a".to_owned(), "b,c".to_owned(), "d".to_owned()]);
        let mut number = zmij::Buffer::new();
        for row in values.chunks(3) {
            let row = data::Row {
                line: 2,
                features: row,
                label: "x",
                text: None,
            };
            write_row(&mut body, &row, &mut number);
        }
        let mut reader = csv::Reader::from_reader(&body[..]);
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, ["a", "b,c", "d"]);
        let back: Vec<u32> = reader
            .byte_records()
            .flat_map(|r| {
                let r = r.expect("record");
                r.iter()
                    .map(|f| number::parse(f).expect("number").to_bits())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(back, values.map(f32::to_bits));
    }

    #[test]
    fn replies_are_read_as_csv_or_json_by_their_media_type() {
        let reply = |body: &str, media: &str| Reply {
            body: Bytes::from(body.to_owned()),
            content_type: Some(media.to_owned()),
        };
        let csv = reply("3\n\"a,b\"\n7\n", "text/csv; charset=utf-8");
        let classes = ["7".to_owned(), "a,b".to_owned()];
        assert_eq!(
            read_reply(&csv, Task::Classification, &classes),
            Ok(vec![
                Said::Other("3".into()),
                Said::Class(1),
                Said::Class(0)
            ])
        );
        let values = reply("1.5\r\n-2\r\n", "text/csv");
        assert_eq!(
            read_reply(&values, Task::Regression, &[]),
            Ok(vec![Said::Value(1.5), Said::Value(-2.0)])
        );
        let bad = reply("1.5\nabc\n", "text/csv");
        let m = read_reply(&bad, Task::Regression, &[]).expect_err("not a number");
        assert!(m.contains("`abc`"), "{m}");
        let json = reply(
            r#"{"predictions": [{"label": "3", "probabilities": [0.9]}]}"#,
            "application/json",
        );
        assert_eq!(
            read_reply(&json, Task::Classification, &classes),
            Ok(vec![Said::Other("3".into())])
        );
        let m = read_reply(&json, Task::Regression, &[]).expect_err("no value");
        assert!(m.contains("no `value`"), "{m}");
    }
}
