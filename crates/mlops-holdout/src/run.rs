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
use mlops_data::categories::{Coder, Vocabulary};
use mlops_data::data::{self, Format};
use mlops_data::number;
use mlops_manifest::model::{Allowance, Metric, Task};
use mlops_train::metrics::{Confusion, Errors};
use mlops_train::predict::{Outputs, Predictor};
use mlops_train::worker::Signature;

use crate::client::{CallError, Reply, Service};
use crate::paired;
use crate::protocol::{Encoder, Field, Key, Protocol, Tensor};
use crate::report::{
    Comparison, MetricComparison, Mismatch, PairedTest, Parity, Report, compare, confusion_report,
};

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
    /// The model fills missing feature values (`data.missing`): a gap in the file is sent as
    /// one (an empty CSV field, a JSON `null`) rather than refused.
    pub gaps: bool,
    pub batch_size: usize,
    pub concurrency: usize,
    /// The metrics measured on the holdout set at training time, by name.
    pub recorded: BTreeMap<String, f64>,
    pub metrics: Vec<Metric>,
    pub tolerances: BTreeMap<Metric, f64>,
    pub model: String,
    /// The latency and throughput limits (`holdout.slo`).
    pub slo: mlops_manifest::model::Slo,
    /// How requests are written and answers read.
    pub protocol: Protocol,
    /// The V2 input tensor (with `Protocol::V2`).
    pub tensor: Tensor,
}

/// The version production pins, served beside the candidate and scored on the same rows
/// (`mlops holdout --compare production`).
#[derive(Debug)]
pub struct Incumbent {
    /// `NAME@VERSION`.
    pub model: String,
    pub artifact_sha256: String,
    pub service: Service,
    /// `promotion.no_regression`.
    pub allowances: BTreeMap<Metric, Allowance>,
}

/// Why a run could not finish.
#[derive(Debug)]
pub enum RunError {
    /// The dataset could not be read (exit 2).
    Data(data::DataError),
    /// The service refused a batch (exit 1: it does not accept what the model accepts).
    Refused(CallError),
    /// The service is down or kept failing (exit 3).
    Service(String),
    /// The service answered, but not with one prediction per row sent (exit 3).
    Contract(String),
    /// This process could not score an answer: the registered model's offline prediction of a
    /// batch failed, or the model's task and its labels disagree (exit 3).
    Scoring(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Data(e) => write!(f, "{e}"),
            RunError::Refused(e) => write!(f, "{e}"),
            RunError::Service(m) | RunError::Contract(m) | RunError::Scoring(m) => f.write_str(m),
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

/// One prediction as the service gave it.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    /// One of the model's classes, by index.
    Class(usize),
    /// A label that is none of the model's classes.
    Other(String),
    Value(f32),
}

/// The model's class labels, looked up by their text: one integer compare per class for a
/// label of up to seven bytes (the usual kind), a text compare for a longer one.
#[derive(Debug, Clone, Default)]
struct Labels {
    names: Vec<String>,
    /// Each name as [`Labels::key`] packs it; `u64::MAX` (which no packed label equals) for a
    /// longer one.
    keys: Vec<u64>,
}

impl Labels {
    fn new(names: &[String]) -> Self {
        Self {
            names: names.to_vec(),
            keys: names
                .iter()
                .map(|n| Self::key(n.as_bytes()).unwrap_or(u64::MAX))
                .collect(),
        }
    }

    /// A label of up to seven bytes as one integer: its bytes, then its length in the top byte.
    #[inline]
    fn key(label: &[u8]) -> Option<u64> {
        if label.len() >= 8 {
            return None;
        }
        let bytes = label.iter().enumerate();
        Some(bytes.fold((label.len() as u64) << 56, |k, (i, &b)| {
            k | u64::from(b) << (8 * i)
        }))
    }

    /// Class `i`'s label, or nothing for an index the model does not have.
    fn name(&self, i: usize) -> String {
        self.names.get(i).cloned().unwrap_or_default()
    }

    #[inline]
    fn find(&self, label: &[u8]) -> Option<usize> {
        match Self::key(label) {
            Some(key) => self.keys.iter().position(|&k| k == key),
            None => self.names.iter().position(|n| n.as_bytes() == label),
        }
    }
}

/// The class `label` names, without allocating for a known one.
fn class(label: &[u8], classes: &Labels) -> Said {
    match classes.find(label) {
        Some(i) => Said::Class(i),
        None => Said::Other(String::from_utf8_lossy(label).into_owned()),
    }
}

/// The predictions in a reply: CSV (one per line: a label or a value) or the JSON answer.
fn read_reply(reply: &Reply, task: Task, classes: &Labels) -> Result<Vec<Said>, String> {
    let csv = reply
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        let key = match task {
            Task::Classification => Key::Label,
            Task::Regression => Key::Value,
        };
        let fields = crate::protocol::json_predictions(&reply.body, key)?;
        return fields
            .iter()
            .map(|f| match task {
                Task::Classification => Ok(class(f.label().as_bytes(), classes)),
                Task::Regression => f.value().map(Said::Value).ok_or_else(|| match f {
                    Field::Text(t) => {
                        format!("the service answered `{t}` where a regression value belongs")
                    }
                    Field::Number(n) => format!("the service answered {n}, not an f32 value"),
                }),
            })
            .collect();
    }
    let mut out = Vec::new();
    crate::protocol::csv_first_fields(&reply.body, |field| {
        out.push(said(field, task, classes)?);
        Ok(())
    })?;
    Ok(out)
}

/// One CSV answer field: a label or a value.
fn said(field: &[u8], task: Task, classes: &Labels) -> Result<Said, String> {
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

/// Reads the dataset on this (blocking) thread and hands batches to `send`.
fn produce(
    plan: &Plan,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<data::FileDigest, data::DataError> {
    let s = &plan.signature;
    let width = s.features.len();
    let classes = s.classes.as_deref().map(Labels::new);
    // The features as numbers are kept only for the offline prediction (parity).
    let keep = plan.parity.is_some();
    let mut x = Vec::with_capacity(if keep { plan.batch_size * width } else { 0 });
    let mut vocabulary = Vocabulary::new(&s.features, &s.categorical, s.unseen);
    let categorical: Vec<bool> = (0..width).map(|i| vocabulary.categorical(i)).collect();
    let mut body = Encoder::new(plan.protocol, &s.features, plan.tensor.clone())
        .with_categorical(&categorical);
    let mut number = zmij::Buffer::new();
    let mut lines = Vec::with_capacity(plan.batch_size);
    let mut truth = Vec::with_capacity(plan.batch_size);
    let mut stopped = false;
    let mut flush = |x: &mut Vec<f32>,
                     body: &mut Encoder,
                     lines: &mut Vec<u64>,
                     truth: &mut Vec<Truth>|
     -> bool {
        let offline = plan.parity.as_ref().map(|p| p.predict(x));
        let batch = Batch {
            body: body.take(),
            lines: std::mem::take(lines),
            truth: std::mem::take(truth),
            offline,
        };
        x.clear();
        send(batch)
    };
    let values = if keep || plan.protocol.writes_json() {
        data::Values::Parse
    } else {
        data::Values::Check
    }
    .with_gaps(plan.gaps);
    let digest = data::read_coded(
        &plan.path,
        &plan.shown,
        plan.format,
        &s.features,
        &s.label,
        values,
        &mut vocabulary,
        |row| {
            if stopped {
                return Err("stopped".to_owned());
            }
            if keep {
                x.extend_from_slice(row.features);
            }
            body.row(&row, &mut number);
            lines.push(row.line);
            truth.push(match &classes {
                Some(labels) => Truth::Class(labels.find(row.label.trim().as_bytes())),
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
    classes: Labels,
    confusion: Confusion,
    errors: Errors,
    parity: Parity,
    rows: u64,
    /// Each answered request's latency, in microseconds.
    latencies: Vec<u64>,
    /// With a comparison, each row's outcome in dataset order, for the paired test:
    /// classification 1 (right), 0 (wrong) or NaN (no known label); regression the error.
    outcomes: Option<Vec<f32>>,
}

impl Score {
    fn new(s: &Signature, parity: bool, outcomes: bool) -> Self {
        Score {
            classes: Labels::new(s.classes.as_deref().unwrap_or_default()),
            confusion: Confusion::new(s.classes.as_ref().map_or(0, Vec::len)),
            errors: Errors::default(),
            parity: Parity {
                enabled: parity,
                ..Parity::default()
            },
            rows: 0,
            latencies: Vec::new(),
            outcomes: outcomes.then(Vec::new),
        }
    }

    fn metrics(&self, task: Task) -> BTreeMap<Metric, f64> {
        match task {
            Task::Classification => self.confusion.metrics(),
            Task::Regression => self.errors.metrics(),
        }
    }
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
        self.latencies
            .push(u64::try_from(reply.latency.as_micros()).unwrap_or(u64::MAX));
        let said = read_reply(&reply, task, &self.classes).map_err(RunError::Contract)?;
        self.add(batch, &said)
    }

    fn add(&mut self, batch: &Batch, said: &[Said]) -> Result<(), RunError> {
        let offline = match &batch.offline {
            // The offline predictions are the candidate's: another model's answers are not
            // checked against them.
            _ if !self.parity.enabled => None,
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                return Err(RunError::Scoring(format!(
                    "the registered model could not predict lines {}-{} offline: {e}",
                    batch.lines.first().copied().unwrap_or(0),
                    batch.lines.last().copied().unwrap_or(0)
                )));
            }
        };
        if said.len() != batch.truth.len() {
            return Err(RunError::Contract(format!(
                "the service answered {} predictions for {} rows (lines {}-{})",
                said.len(),
                batch.truth.len(),
                batch.lines.first().copied().unwrap_or(0),
                batch.lines.last().copied().unwrap_or(0)
            )));
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
                    if let Some(o) = self.outcomes.as_mut() {
                        o.push(match t {
                            Some(t) if *t == predicted => 1.0,
                            Some(_) => 0.0,
                            None => f32::NAN,
                        });
                    }
                    if let Some(Outputs::Classes { index, .. }) = offline {
                        self.parity.checked += 1;
                        let offline = index.get(i).copied().unwrap_or(usize::MAX);
                        if offline != predicted {
                            self.parity.mismatch(Mismatch {
                                line: batch.lines.get(i).copied().unwrap_or_default(),
                                expected: self.classes.name(offline),
                                observed: match p {
                                    Said::Other(label) => label.clone(),
                                    _ => self.classes.name(predicted),
                                },
                            });
                        }
                    }
                }
                (Said::Value(v), Truth::Value(t)) => {
                    let v = *v;
                    self.errors.add(v, *t);
                    if let Some(o) = self.outcomes.as_mut() {
                        o.push(v - *t);
                    }
                    if let Some(Outputs::Values(offline)) = offline {
                        self.parity.checked += 1;
                        let o = offline.get(i).copied();
                        let differs = o.is_none_or(|o| {
                            (v - o).abs() > 1e-5 * o.abs().max(1.0) || !v.is_finite()
                        });
                        if differs {
                            self.parity.mismatch(Mismatch {
                                line: batch.lines.get(i).copied().unwrap_or_default(),
                                expected: o
                                    .map_or_else(|| "no prediction".to_owned(), |o| o.to_string()),
                                observed: v.to_string(),
                            });
                        }
                    }
                }
                _ => {
                    return Err(RunError::Scoring(
                        "the model's task and its class labels disagree".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One answer as a request task leaves it: its lane, its place in the order, its batch, the
/// reply.
type Answered = (usize, u64, Arc<Batch>, Result<Reply, CallError>);

/// One service the batches go to: its requests in flight and the answers waiting for their
/// turn to be scored.
struct Lane {
    service: Arc<Service>,
    retried: Arc<AtomicU64>,
    /// How the lane's failures are introduced (empty for the service under test).
    who: String,
    in_flight: usize,
    done: BTreeMap<u64, (Arc<Batch>, Result<Reply, CallError>)>,
    requests: u64,
    scored: u64,
    score: Score,
}

impl Lane {
    fn new(service: Service, who: String, score: Score) -> Self {
        Lane {
            service: Arc::new(service),
            retried: Arc::new(AtomicU64::new(0)),
            who,
            in_flight: 0,
            done: BTreeMap::new(),
            requests: 0,
            scored: 0,
            score,
        }
    }

    fn full(&self, concurrency: usize) -> bool {
        self.in_flight >= concurrency || self.done.len() >= concurrency
    }

    /// A failure of this lane's service, said as whose it is.
    fn failed(&self, e: RunError) -> RunError {
        if self.who.is_empty() {
            return e;
        }
        // The incumbent's failures are not the candidate's: a refusal by it is a broken
        // comparison, not a candidate that refuses the model's rows.
        let m = e.to_string();
        RunError::Service(format!("{}: {m}", self.who))
    }
}

/// The requests in flight, for every lane, and the answers waiting for their turn.
///
/// Requests run as a set and finish in any order; their answers wait in their lane's `done`
/// until every earlier one is scored. A freed place gets the next batch at once, as a load
/// generator would refill it, so each service always has `concurrency` requests; at most as many
/// answers wait per lane, which bounds memory whatever the dataset's size. With a comparison
/// every batch goes to both lanes (the candidate's and the incumbent's), so both see the same
/// rows in the same requests.
struct Flight {
    lanes: Vec<Lane>,
    running: tokio::task::JoinSet<Answered>,
    concurrency: usize,
    task: Task,
}

impl Flight {
    /// Sends `batch` to every lane as soon as each has a free place, scoring the answers that
    /// come in meanwhile.
    async fn send(&mut self, batch: Batch) -> Result<(), RunError> {
        while self.lanes.iter().any(|l| l.full(self.concurrency)) {
            self.collect().await?;
        }
        let batch = Arc::new(batch);
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let (service, retried, seq) =
                (lane.service.clone(), lane.retried.clone(), lane.requests);
            lane.requests += 1;
            lane.in_flight += 1;
            let batch = batch.clone();
            self.running.spawn(async move {
                let answer = service.call(batch.body.clone(), &retried).await;
                (i, seq, batch, answer)
            });
        }
        // Let the new request reach its connection before the caller goes on (it may read the
        // next batch on this thread, with the runtime standing still meanwhile).
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Waits for one request to finish and scores what is then next in its lane's order.
    async fn collect(&mut self) -> Result<(), RunError> {
        let (i, seq, batch, answer) = match self.running.join_next().await {
            Some(Ok(answered)) => answered,
            Some(Err(e)) => return Err(RunError::Service(format!("a request task failed: {e}"))),
            None => return Err(RunError::Service("answers were left unscored".to_owned())),
        };
        let task = self.task;
        let Some(lane) = self.lanes.get_mut(i) else {
            return Err(RunError::Service("an answer of no service".to_owned()));
        };
        lane.in_flight -= 1;
        lane.done.insert(seq, (batch, answer));
        while let Some((batch, answer)) = lane.done.remove(&lane.scored) {
            lane.scored += 1;
            if let Err(e) = lane.score.answer(&batch, answer, task) {
                return Err(lane.failed(e));
            }
        }
        Ok(())
    }

    /// Waits for every request and scores it.
    async fn finish(&mut self) -> Result<(), RunError> {
        while self.lanes.iter().any(|l| l.scored < l.requests) {
            self.collect().await?;
        }
        Ok(())
    }
}

/// Whether the dataset is read on a thread of its own, beside the thread that sends the requests
/// and scores the answers.
///
/// With parity on, yes: the model's offline prediction of each batch is the larger part of the
/// work. With parity off, when this process may run on more than one CPU: the two threads then
/// keep the service fed even when the client shares the cores with it (the service's threads
/// and a lone client thread compete for time slices, and while the client waits for one the
/// service drains its queue). On one CPU the second thread would only add hand-overs, so the one
/// thread reads a batch whenever a place is free. Measured in BENCHMARKS.md (holdout run 12).
fn own_reader(parity: bool, cpus: usize) -> bool {
    parity || cpus > 1
}

/// Runs the holdout test against `service`, on `runtime` (a current-thread one: the requests
/// are driven by this thread).
///
/// When [`own_reader`] says so, the dataset is read on a thread of its own; batches cross over in
/// groups of `concurrency` (one wake-up of either thread per group) and the reader may run two
/// groups ahead, so that a moment in which it gets no CPU does not leave the service idle.
/// (Groups of 4,096 rows measured no better.) Otherwise it is read on this thread: each batch
/// when a place is free, the runtime running while this thread waits for one.
pub fn run(
    plan: Plan,
    service: Service,
    incumbent: Option<Incumbent>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let concurrency = plan.concurrency.max(1);
    let s = &plan.signature;
    let comparing = incumbent.is_some();
    let mut lanes = vec![Lane::new(
        service,
        String::new(),
        Score::new(s, plan.parity.is_some(), comparing),
    )];
    let mut compared = None;
    if let Some(i) = incumbent {
        let who = format!(
            "production's {} at {} (the incumbent)",
            i.model,
            i.service.endpoint()
        );
        lanes.push(Lane::new(i.service, who, Score::new(s, false, true)));
        compared = Some((i.model, i.artifact_sha256, i.allowances));
    }
    let mut flight = Flight {
        lanes,
        running: tokio::task::JoinSet::new(),
        concurrency,
        task: s.task,
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let (sent, read) = if !own_reader(plan.parity.is_some(), cpus) {
        let mut failure = None;
        let read = produce(&plan, |batch| match runtime.block_on(flight.send(batch)) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        });
        let sent = match failure {
            Some(f) => Err(f),
            None if read.is_ok() => runtime.block_on(flight.finish()),
            None => Ok(()),
        };
        (sent, read.map_err(RunError::Data))
    } else {
        std::thread::scope(|scope| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Batch>>(2);
            let plan = &plan;
            let reader = scope.spawn(move || {
                // The offline predictions (parity) run while the service answers other batches.
                mlops_train::predict::keep_parallel_loops_on_this_thread();
                let mut group = Vec::with_capacity(concurrency);
                let read = produce(plan, |b| {
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
                read
            });
            let sent = runtime.block_on(async {
                while let Some(group) = rx.recv().await {
                    for batch in group {
                        flight.send(batch).await?;
                    }
                }
                flight.finish().await
            });
            // A reader still sending learns that nobody listens, and stops.
            drop(rx);
            let read = match reader.join() {
                Ok(read) => read.map_err(RunError::Data),
                Err(_) => Err(RunError::Service(
                    "the reader stopped unexpectedly".to_owned(),
                )),
            };
            (sent, read)
        })
    };
    if let Err(f) = sent {
        flight.running.abort_all();
        return Err(f);
    }
    let digest = read?;
    let mut lanes = flight.lanes.into_iter();
    let (Some(lane), incumbent_lane) = (lanes.next(), lanes.next()) else {
        return Err(RunError::Service(
            "the service under test was lost".to_owned(),
        ));
    };
    let score = &lane.score;
    let observed = score.metrics(s.task);
    let seconds = started.elapsed().as_secs_f64();
    let checks = compare(&plan.metrics, &observed, &plan.recorded, &plan.tolerances);
    let classification = s.task == Task::Classification;
    let mut report = Report::new(
        plan.model.clone(),
        lane.service.endpoint(),
        digest,
        score.rows,
        lane.requests,
        lane.retried.load(std::sync::atomic::Ordering::Relaxed),
        seconds,
        checks,
        classification.then(|| confusion_report(score.classes.names.clone(), &score.confusion)),
        score.parity.clone(),
    );
    report.measured(&score.latencies, &plan.slo);
    if plan.protocol != Protocol::Mlops {
        report.protocol = Some(plan.protocol.name().to_owned());
    }
    if let (Some((model, artifact, allowances)), Some(other)) = (compared, incumbent_lane) {
        let comparison = comparison(
            &plan.metrics,
            &allowances,
            s.task,
            (score, &other.score),
            (model, artifact, other.service.endpoint()),
        );
        report.compared(comparison);
    }
    Ok(report)
}

/// Resamples of the bootstrap interval: 2,000, fewer for a large file (at most 200 million
/// rows drawn in all, a few seconds), never under 200.
fn resamples(rows: usize) -> usize {
    (200_000_000 / rows.max(1)).clamp(200, 2000)
}

/// The seed of the bootstrap's generator: the same rows give the same interval.
const BOOTSTRAP_SEED: u64 = 0x6d6c_6f70_7321;

/// The confidence level of the paired tests.
const LEVEL: f64 = 0.95;

/// The candidate's score against the incumbent's: each metric of the holdout test and of
/// `allowances` (those with an allowance checked), and the paired test of their outcomes.
fn comparison(
    metrics: &[Metric],
    allowances: &BTreeMap<Metric, Allowance>,
    task: Task,
    (candidate, incumbent): (&Score, &Score),
    (model, artifact, endpoint): (String, String, String),
) -> Comparison {
    let (ours, theirs) = (candidate.metrics(task), incumbent.metrics(task));
    let mut names: Vec<Metric> = metrics.to_vec();
    names.extend(allowances.keys().filter(|m| !metrics.contains(m)));
    let rows: Vec<MetricComparison> = names
        .into_iter()
        .filter_map(|m| {
            let (c, i) = (ours.get(&m).copied()?, theirs.get(&m).copied()?);
            let drop = if m.higher_is_better() { i - c } else { c - i };
            let allowance = allowances.get(&m).copied();
            let allowed = allowance.map(|a| a.allowed(i));
            Some(MetricComparison {
                metric: m.name().to_owned(),
                candidate: c,
                incumbent: i,
                delta: c - i,
                drop,
                allowed,
                allowance: allowance.map(Allowance::shown),
                // A hair of slack for the arithmetic of equal scores.
                pass: allowed.is_none_or(|a| drop <= a + 1e-12),
            })
        })
        .collect();
    let empty = Vec::new();
    let (a, b) = (
        candidate.outcomes.as_ref().unwrap_or(&empty),
        incumbent.outcomes.as_ref().unwrap_or(&empty),
    );
    let pairs = a.iter().zip(b).filter(|(x, y)| !x.is_nan() && !y.is_nan());
    let (paired_rows, test) = match task {
        Task::Classification => {
            let (mut only_candidate, mut only_incumbent, mut n) = (0u64, 0u64, 0u64);
            for (x, y) in pairs {
                n += 1;
                match (*x > 0.5, *y > 0.5) {
                    (true, false) => only_candidate += 1,
                    (false, true) => only_incumbent += 1,
                    _ => {}
                }
            }
            let p = paired::mcnemar_exact(only_candidate, only_incumbent);
            (
                n,
                PairedTest {
                    method: "mcnemar-exact".to_owned(),
                    candidate_only: Some(only_candidate),
                    incumbent_only: Some(only_incumbent),
                    p_value: Some(p),
                    mean_difference: None,
                    interval: None,
                    level: LEVEL,
                    significant: p < 1.0 - LEVEL,
                },
            )
        }
        Task::Regression => {
            let differences: Vec<f64> = pairs
                .map(|(x, y)| f64::from(*x).powi(2) - f64::from(*y).powi(2))
                .collect();
            let n = differences.len();
            let mean = if n == 0 {
                0.0
            } else {
                differences.iter().sum::<f64>() / n as f64
            };
            let interval =
                paired::bootstrap_mean_interval(&differences, resamples(n), LEVEL, BOOTSTRAP_SEED);
            (
                n as u64,
                PairedTest {
                    method: "bootstrap-squared-error".to_owned(),
                    candidate_only: None,
                    incumbent_only: None,
                    p_value: None,
                    mean_difference: Some(mean),
                    interval: interval.map(|(lo, hi)| [lo, hi]),
                    level: LEVEL,
                    significant: interval.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0),
                },
            )
        }
    };
    Comparison {
        incumbent: model,
        incumbent_artifact_sha256: artifact,
        incumbent_endpoint: endpoint,
        rows: paired_rows,
        passed: rows.iter().all(|r| r.pass),
        metrics: rows,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_has_a_thread_of_its_own_unless_it_would_share_one_cpu() {
        assert!(own_reader(true, 1));
        assert!(own_reader(true, 2));
        assert!(own_reader(false, 2));
        assert!(!own_reader(false, 1));
    }

    #[test]
    fn rows_without_file_text_round_trip_every_float() {
        let values = [0.1f32, -3.5, 16.0, 1e-7, f32::MAX, 0.0];
        let features = ["a".to_owned(), "b,c".to_owned(), "d".to_owned()];
        let mut encoder = Encoder::new(Protocol::Mlops, &features, Tensor::default());
        let mut number = zmij::Buffer::new();
        for row in values.chunks(3) {
            let row = data::Row {
                line: 2,
                features: row,
                label: "x",
                text: None,
                categories: &[],
            };
            encoder.row(&row, &mut number);
        }
        let body = encoder.take();
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
    fn labels_are_found_by_their_exact_text() {
        let names = [
            "0",
            "7",
            "cat",
            "",
            "seven b",
            "a longer label",
            "a longer labe",
        ];
        let labels = Labels::new(&names.map(str::to_owned));
        for (i, n) in names.iter().enumerate() {
            assert_eq!(labels.find(n.as_bytes()), Some(i), "{n:?}");
        }
        for absent in [
            "7 ",
            "00",
            "ca",
            "cats",
            "seven",
            "a longer label!",
            "\0",
            "0\0",
        ] {
            assert_eq!(labels.find(absent.as_bytes()), None, "{absent:?}");
        }
    }

    #[test]
    fn replies_are_read_as_csv_or_json_by_their_media_type() {
        let reply = |body: &str, media: &str| Reply {
            body: Bytes::from(body.to_owned()),
            content_type: Some(media.to_owned()),
            latency: std::time::Duration::ZERO,
        };
        let csv = reply("3\n\"a,b\"\n7\n", "text/csv; charset=utf-8");
        let classes = Labels::new(&["7".to_owned(), "a,b".to_owned()]);
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
            read_reply(&values, Task::Regression, &Labels::default()),
            Ok(vec![Said::Value(1.5), Said::Value(-2.0)])
        );
        let bad = reply("1.5\nabc\n", "text/csv");
        let m = read_reply(&bad, Task::Regression, &Labels::default()).expect_err("not a number");
        assert!(m.contains("`abc`"), "{m}");
        let json = reply(
            r#"{"predictions": [{"label": "3", "probabilities": [0.9]}]}"#,
            "application/json",
        );
        assert_eq!(
            read_reply(&json, Task::Classification, &classes),
            Ok(vec![Said::Other("3".into())])
        );
        let m = read_reply(&json, Task::Regression, &Labels::default()).expect_err("no value");
        assert!(m.contains("no `value`"), "{m}");
    }
}
