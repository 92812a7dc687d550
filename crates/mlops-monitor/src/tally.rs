//! Captured lines counted into the baseline's bins, one line at a time: each request's body is
//! read back by the parsers `mlops serve` used on it (`body::parse`, `v2::batch`), its answer by
//! the holdout test's answer reader, and every value goes to its column's profile. Memory holds
//! the profiles (bins x columns), never the rows.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;

use mlops_artifacts::baseline::{Baseline, Profile};
use mlops_artifacts::bundle::Bundle;
use mlops_artifacts::capture::{Line, Route};
use mlops_artifacts::monitor::Read;
use mlops_data::categories::Vocabulary;
use mlops_data::profile::count;
use mlops_holdout::protocol::{self, Key};
use mlops_manifest::model::{Task, Unseen};
use mlops_serve::body::{self, Columns, Media};
use mlops_serve::{Limits, v2};
use mlops_train::metrics::{Confusion, Errors};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::truth::Truth;

/// Unreadable lines quoted in the report.
const PROBLEMS_KEPT: usize = 5;

/// The counts so far.
#[derive(Debug)]
pub struct Tally {
    artifact: String,
    features: Vec<String>,
    task: Task,
    classes: HashMap<String, usize>,
    class_count: usize,
    vocabulary: Vocabulary,
    index: HashMap<String, usize>,
    /// The parsers' limits: none (the service already applied its own), made once.
    limits: Limits,
    since: Option<OffsetDateTime>,
    pub(crate) current: Vec<Profile>,
    pub(crate) predictions: Profile,
    pub(crate) read: Read,
    pub(crate) truth: Option<Labelled>,
    /// The labelled rows written out as a training set (`mlops monitor --labelled`).
    export: Option<Export>,
}

/// Labelled captured rows as a training set: the features (a category by its name, a gap
/// empty) and the label, in CSV.
struct Export {
    out: csv::Writer<Box<dyn std::io::Write>>,
    rows: u64,
    /// Values of a category the model does not know, written as gaps (the parsed request keeps
    /// its code only).
    unseen: u64,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("rows", &self.rows)
            .field("unseen", &self.unseen)
            .finish_non_exhaustive()
    }
}

/// What [`Tally::finish_export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub rows: u64,
    pub unseen: u64,
}

/// Ground truth and the metrics' accumulators over the rows it labels.
#[derive(Debug)]
pub(crate) struct Labelled {
    pub(crate) path: String,
    truth: Truth,
    pub(crate) joined: u64,
    pub(crate) confusion: Confusion,
    pub(crate) errors: Errors,
}

impl Tally {
    /// Counts for the model in `bundle`, whose artifact is `artifact`, against `baseline`'s
    /// bins; lines answered before `since` are left out.
    pub fn new(
        bundle: &Bundle,
        baseline: &Baseline,
        artifact: &str,
        since: Option<OffsetDateTime>,
    ) -> Self {
        let signature = &bundle.signature;
        let classes: Vec<String> = signature.classes.clone().unwrap_or_default();
        Self {
            artifact: artifact.to_owned(),
            features: signature.features.clone(),
            task: signature.task,
            class_count: classes.len(),
            classes: classes
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c, i))
                .collect(),
            // Production may send what the model refuses or has not seen; monitoring counts it
            // (unseen, missing) rather than refusing the line.
            vocabulary: Vocabulary::new(
                &signature.features,
                &signature.categorical,
                Unseen::Ignore,
            ),
            index: body::index_of(&signature.features),
            limits: Limits {
                max_body_bytes: usize::MAX,
                max_rows: usize::MAX,
                ..Limits::default()
            },
            since,
            current: baseline.features.iter().map(Profile::empty_like).collect(),
            predictions: baseline.predictions.empty_like(),
            read: Read::default(),
            truth: None,
            export: None,
        }
    }

    /// Writes every captured row that the ground truth labels to `out`, as CSV under a header
    /// of the features and `label` (the manifest's `data.label`): a training set of production's
    /// own rows. Needs [`Tally::with_truth`] first.
    pub fn with_export(
        mut self,
        out: Box<dyn std::io::Write>,
        label: &str,
    ) -> Result<Self, String> {
        if self.truth.is_none() {
            return Err("the labelled rows need ground truth".to_owned());
        }
        let mut out = csv::Writer::from_writer(out);
        out.write_record(self.features.iter().map(String::as_str).chain([label]))
            .map_err(|e| e.to_string())?;
        self.export = Some(Export {
            out,
            rows: 0,
            unseen: 0,
        });
        Ok(self)
    }

    /// Flushes the labelled rows: how many were written.
    pub fn finish_export(&mut self) -> Result<Option<Exported>, String> {
        let Some(export) = self.export.as_mut() else {
            return Ok(None);
        };
        export.out.flush().map_err(|e| e.to_string())?;
        Ok(Some(Exported {
            rows: export.rows,
            unseen: export.unseen,
        }))
    }

    /// Joins ground truth read from `path` (shown as `shown`).
    pub fn with_truth(mut self, truth: Truth, shown: &str) -> Self {
        self.truth = Some(Labelled {
            path: shown.to_owned(),
            truth,
            joined: 0,
            confusion: Confusion::new(self.class_count),
            errors: Errors::default(),
        });
        self
    }

    /// The artifact whose lines are counted.
    pub fn artifact(&self) -> &str {
        &self.artifact
    }

    /// Reads every line of the capture file at `path` (`shown` in messages).
    pub fn file(&mut self, path: &Path, shown: &str) -> Result<(), String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        self.read.files += 1;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut text = Vec::new();
        let mut number = 0u64;
        loop {
            text.clear();
            let n = reader
                .read_until(b'\n', &mut text)
                .map_err(|e| format!("{shown}: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            let line = text.trim_ascii_end();
            if line.is_empty() {
                continue;
            }
            if let Err(e) = self.line_bytes(line) {
                self.read.unreadable += 1;
                if self.read.problems.len() < PROBLEMS_KEPT {
                    self.read.problems.push(format!("{shown}:{number}: {e}"));
                }
            }
        }
    }

    /// Counts one capture line (ours or SageMaker's).
    pub fn line(&mut self, text: &str) -> Result<(), String> {
        self.line_bytes(text.as_bytes())
    }

    /// [`Tally::line`] of the line's bytes.
    pub fn line_bytes(&mut self, text: &[u8]) -> Result<(), String> {
        let line = Line::parse_bytes(text)?;
        if line.artifact.as_deref().is_some_and(|a| a != self.artifact) {
            self.read.other_model += 1;
            return Ok(());
        }
        if let Some(since) = self.since {
            let at = OffsetDateTime::parse(&line.time, &Rfc3339)
                .map_err(|e| format!("its time `{}` is not RFC 3339: {e}", line.time))?;
            if at < since {
                self.read.before_since += 1;
                return Ok(());
            }
        }
        let columns = Columns {
            features: &self.features,
            gaps: true,
            vocabulary: &self.vocabulary,
            index: Some(&self.index),
        };
        let limits = self.limits;
        let (content_type, input) = &line.input;
        let batch = match line.route {
            Route::Invocations => {
                let media = Media::of(content_type.as_deref()).map_err(|r| r.message)?;
                body::parse(media, input, columns, limits)
            }
            Route::V2 => {
                let request: v2::InferRequest = serde_json::from_slice(input)
                    .map_err(|e| format!("the V2 request is not readable: {e}"))?;
                v2::batch(&request, columns, limits)
            }
        }
        .map_err(|r| format!("the request: {}", r.message))?;
        let key = match self.task {
            Task::Classification => Key::Label,
            Task::Regression => Key::Value,
        };
        let (answer_type, answer) = &line.output;
        let said = protocol::predictions(answer_type.as_deref(), answer, key)
            .map_err(|e| format!("the answer: {e}"))?;
        if said.len() != batch.rows {
            return Err(format!(
                "the request has {} rows and the answer {} predictions",
                batch.rows,
                said.len()
            ));
        }
        // The predictions as the profile counts them: a class's index (an unknown label
        // counts as unseen), or the value.
        let mut predicted = Vec::with_capacity(said.len());
        for field in &said {
            predicted.push(match self.task {
                Task::Classification => self
                    .classes
                    .get(field.label().as_ref())
                    .map_or(self.class_count as f32, |&i| i as f32),
                Task::Regression => field
                    .value()
                    .ok_or_else(|| format!("the answer `{}` is not a number", field.label()))?,
            });
        }
        let width = self.features.len();
        for (r, row) in batch.x.chunks(width.max(1)).enumerate() {
            for (profile, &v) in self.current.iter_mut().zip(row) {
                count(profile, v);
            }
            let p = predicted.get(r).copied().unwrap_or(f32::NAN);
            count(&mut self.predictions, p);
            if let Some(l) = &mut self.truth {
                l.add(&line.id, r as u64, p, self.task, &self.classes);
                if let (Some(export), Some(label)) =
                    (self.export.as_mut(), l.truth.label(&line.id, r as u64))
                {
                    export.row(row, label, &self.vocabulary)?;
                }
            }
        }
        self.read.requests += 1;
        self.read.rows += batch.rows as u64;
        Ok(())
    }
}

impl Export {
    fn row(&mut self, row: &[f32], label: &str, vocabulary: &Vocabulary) -> Result<(), String> {
        for (i, &v) in row.iter().enumerate() {
            let text = match vocabulary.column(i) {
                Some(_) => match vocabulary.category(i, v) {
                    Some(name) => name.to_owned(),
                    None => {
                        if !v.is_nan() {
                            self.unseen += 1;
                        }
                        String::new()
                    }
                },
                None if v.is_nan() => String::new(),
                // Rust writes the shortest text that reads back as the same f32.
                None => v.to_string(),
            };
            self.out.write_field(text).map_err(|e| e.to_string())?;
        }
        self.out
            .write_record([label])
            .map_err(|e| format!("the labelled rows: {e}"))?;
        self.rows += 1;
        Ok(())
    }
}

impl Labelled {
    /// Row `row` of inference `id`, predicted `p`, against its label if it has one.
    fn add(&mut self, id: &str, row: u64, p: f32, task: Task, classes: &HashMap<String, usize>) {
        let Some(label) = self.truth.label(id, row) else {
            return;
        };
        match task {
            Task::Classification => {
                // A label the model has no class for is left out of the metrics (the metrics
                // range over the model's classes, as at evaluation).
                if let Some(&t) = classes.get(label) {
                    self.confusion.add(p as usize, t);
                    self.joined += 1;
                }
            }
            Task::Regression => {
                if let Some(t) = mlops_data::number::parse(label.as_bytes()) {
                    self.errors.add(p, t);
                    self.joined += 1;
                }
            }
        }
    }

    pub(crate) fn labels(&self) -> u64 {
        self.truth.len() as u64
    }
}
