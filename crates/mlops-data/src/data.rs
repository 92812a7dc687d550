//! Datasets: CSV and JSONL files streamed row by row, hashed (SHA-256) in the same pass, the
//! feature and label columns picked by name, and every mistake reported as `file:line`.
//!
//! A file is read once: the bytes go through the hasher on their way to the parser, so hashing
//! never needs a second read nor the whole file in memory. The rows the model trains on are kept
//! (as `f32`), nothing else is.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use mlops_manifest::model::{DataFormat, Missing, Task, Unseen};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::records::{self, Record};

/// A mistake in a dataset, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub path: PathBuf,
    /// 1-based line; `None` for the file as a whole (unreadable, empty).
    pub line: Option<u64>,
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

impl DataError {
    pub fn at(path: &Path, line: Option<u64>, message: String, hint: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message,
            hint: hint.into(),
        }
    }
}

/// How a dataset file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    /// The declared format, else the one the file name says.
    pub fn of(path: &Path, declared: Option<DataFormat>) -> Result<Self, DataError> {
        if let Some(d) = declared {
            return Ok(match d {
                DataFormat::Csv => Format::Csv,
                DataFormat::Jsonl => Format::Jsonl,
                DataFormat::Parquet => Format::Parquet,
            });
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            Ok(Format::Csv)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Ok(Format::Jsonl)
        } else if name.ends_with(".parquet") || name.ends_with(".pq") {
            Ok(Format::Parquet)
        } else {
            Err(DataError::at(
                path,
                None,
                "cannot tell the format from the file name".to_owned(),
                "name the file .csv, .jsonl or .parquet, or set `format: csv|jsonl|parquet` on \
                 the dataset",
            ))
        }
    }
}

use crate::categories::{Coder, Learner, OneHot, Vocabulary};
pub use mlops_artifacts::bundle::Standardizer;
pub use mlops_artifacts::training::Categories;
pub use mlops_artifacts::training::FileDigest;

/// The text column a reader hands over with each row besides its features (as [`Row::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry<'a> {
    /// The label column: training, the holdout test. Every row needs a value.
    Label(&'a str),
    /// An identifier column: batch scoring keeps it beside each prediction. Every row needs a
    /// value.
    Id(&'a str),
    /// No column: [`Row::label`] is empty.
    Nothing,
}

impl<'a> Carry<'a> {
    /// The column's name.
    pub fn column(self) -> Option<&'a str> {
        match self {
            Carry::Label(c) | Carry::Id(c) => Some(c),
            Carry::Nothing => None,
        }
    }

    /// What the column is, as an error names it: `label `y`` or `id column `id``.
    pub(crate) fn named(self, column: &str) -> String {
        match self {
            Carry::Id(_) => format!("id column `{column}`"),
            _ => format!("label `{column}`"),
        }
    }

    pub(crate) fn every_row_needs(self) -> &'static str {
        match self {
            Carry::Id(_) => "every row needs an id: fill it, or score without --id-column",
            _ => "every row needs a label",
        }
    }

    pub(crate) fn can_be(self) -> &'static str {
        match self {
            Carry::Id(_) => "an id is a string, a number or a boolean",
            _ => "a label is a string, a number or a boolean",
        }
    }
}

/// One row as the reader hands it over.
#[derive(Debug)]
pub struct Row<'a> {
    pub line: u64,
    /// The feature values, in the order asked for; empty for a CSV row read with
    /// [`Values::Check`].
    pub features: &'a [f32],
    /// The carried column's text (see [`Carry`]): the label, an id, or empty.
    pub label: &'a str,
    /// The features' text as the file has it (CSV only), in the same order as `features`.
    pub text: Option<FieldText<'a>>,
    /// The text of each categorical feature, in feature order (empty for a missing value);
    /// `features` holds their codes (see [`crate::categories`]).
    pub categories: &'a [String],
}

/// What the reader does with a CSV row's feature fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Parsed into [`Row::features`].
    Parse,
    /// Only checked to be finite numbers: for a reader that passes the text on.
    Check,
    /// [`Values::Parse`], a missing value (an empty CSV field, a JSON `null`, a Parquet null)
    /// read as NaN, where `data.missing` fills it.
    ParseOrGap,
    /// [`Values::Check`], a missing value allowed.
    CheckOrGap,
}

impl Values {
    /// This reading, with gaps allowed or not.
    pub fn with_gaps(self, gaps: bool) -> Values {
        match (self, gaps) {
            (Values::Parse | Values::ParseOrGap, false) => Values::Parse,
            (Values::Parse | Values::ParseOrGap, true) => Values::ParseOrGap,
            (Values::Check | Values::CheckOrGap, false) => Values::Check,
            (Values::Check | Values::CheckOrGap, true) => Values::CheckOrGap,
        }
    }

    /// Whether a missing value is read (as NaN) rather than refused.
    pub fn gaps(self) -> bool {
        matches!(self, Values::ParseOrGap | Values::CheckOrGap)
    }
}

/// The text of a CSV row's feature fields.
#[derive(Debug, Clone, Copy)]
pub struct FieldText<'a> {
    record: Record<'a>,
    at: &'a [usize],
    /// The first and last column when the features are neighbouring columns in the file, in
    /// the order asked for.
    run: Option<(usize, usize)>,
}

impl<'a> FieldText<'a> {
    /// Each feature field, ASCII whitespace trimmed.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let record = self.record;
        self.at
            .iter()
            .map(move |&i| crate::number::trim(record.get(i).unwrap_or_default()))
    }

    /// All the feature fields with the commas between them, as one piece of the file's text,
    /// when the file has them side by side, unquoted and in the order asked for. A field may
    /// keep surrounding whitespace; every field is a number a CSV reader reads back as it is.
    pub fn joined(&self) -> Option<&'a [u8]> {
        self.run
            .and_then(|(first, last)| self.record.run(first, last))
    }
}

/// A reader that hashes every byte it passes on.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    /// Reads what the parser left (nothing, normally) and returns the digest and the size.
    fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let digest = self.hasher.finalize();
        Ok((mlops_artifacts::artifact::hex(&digest), self.bytes))
    }
}

/// Streams `path`, calling `on_row` for each row with the named feature columns (in the given
/// order) parsed as numbers and the label column as text. An error `on_row` returns is reported
/// at that row's line.
pub fn read(
    path: &Path,
    shown: &str,
    format: Format,
    features: &[String],
    label: &str,
    on_row: impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<FileDigest, DataError> {
    read_with(path, shown, format, features, label, Values::Parse, on_row)
}

/// [`read`], with the feature fields of a CSV file parsed or only checked.
pub fn read_with(
    path: &Path,
    shown: &str,
    format: Format,
    features: &[String],
    label: &str,
    values: Values,
    on_row: impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<FileDigest, DataError> {
    read_coded(
        path,
        shown,
        format,
        features,
        label,
        values,
        &mut crate::categories::Numeric,
        on_row,
    )
}

/// [`read_with`], the categorical features' text turned into codes by `coder` (and checked by
/// it, with [`Values::Check`]).
#[allow(clippy::too_many_arguments)]
pub fn read_coded(
    path: &Path,
    shown: &str,
    format: Format,
    features: &[String],
    label: &str,
    values: Values,
    coder: &mut dyn Coder,
    on_row: impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<FileDigest, DataError> {
    read_carrying(
        path,
        shown,
        format,
        features,
        Carry::Label(label),
        values,
        coder,
        on_row,
    )
}

/// [`read_coded`], with `carry` naming the text column handed over with each row (a label, an
/// id, or none).
#[allow(clippy::too_many_arguments)]
pub fn read_carrying(
    path: &Path,
    shown: &str,
    format: Format,
    features: &[String],
    carry: Carry<'_>,
    values: Values,
    coder: &mut dyn Coder,
    mut on_row: impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<FileDigest, DataError> {
    let mut cats = Categorical::new(coder, features, values.gaps());
    let io = |e: std::io::Error| {
        DataError::at(
            path,
            None,
            format!("cannot read: {e}"),
            "check the path in the manifest (relative paths start at the manifest's directory)",
        )
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut hashing = Hashing {
        inner: file,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let rows = match format {
        Format::Csv => read_csv(
            path,
            &mut hashing,
            features,
            carry,
            values,
            &mut cats,
            &mut on_row,
        )?,
        Format::Jsonl => read_jsonl(
            path,
            &mut hashing,
            features,
            carry,
            values,
            &mut cats,
            &mut on_row,
        )?,
        // Parquet is read from its footer back, by seeking: the file is hashed in a pass of
        // its own (by `finish`, below), then decoded.
        Format::Parquet => {
            crate::parquet::read(path, features, carry, values.gaps(), &mut cats, &mut on_row)?
        }
    };
    let (sha256, bytes) = hashing.finish().map_err(io)?;
    if rows == 0 {
        return Err(DataError::at(
            path,
            None,
            "has no rows".to_owned(),
            "a dataset needs at least one row besides the header",
        ));
    }
    Ok(FileDigest {
        path: shown.to_owned(),
        sha256,
        bytes,
        rows,
    })
}

/// The categorical side of one read: which features are categorical, the coder that turns
/// their text into codes, and the current row's texts.
pub(crate) struct Categorical<'c> {
    coder: &'c mut dyn Coder,
    /// Per feature: its place in `texts`, when it is categorical.
    slot: Vec<Option<usize>>,
    pub(crate) texts: Vec<String>,
    gaps: bool,
}

impl<'c> Categorical<'c> {
    fn new(coder: &'c mut dyn Coder, features: &[String], gaps: bool) -> Self {
        let mut n = 0;
        let slot = (0..features.len())
            .map(|i| {
                coder.categorical(i).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        Self {
            coder,
            slot,
            texts: vec![String::new(); n],
            gaps,
        }
    }

    /// Whether any feature is categorical.
    pub(crate) fn any(&self) -> bool {
        !self.texts.is_empty()
    }

    pub(crate) fn is(&self, i: usize) -> bool {
        matches!(self.slot.get(i), Some(Some(_)))
    }

    /// The code of feature `i` (named `name`), whose value is `text` (`None`: null), or the
    /// message and hint of why it has none.
    pub(crate) fn code(
        &mut self,
        i: usize,
        name: &str,
        text: Option<&str>,
    ) -> Result<f32, (String, &'static str)> {
        let text = text.map(str::trim).unwrap_or_default();
        if let Some(Some(slot)) = self.slot.get(i)
            && let Some(kept) = self.texts.get_mut(*slot)
        {
            kept.clear();
            kept.push_str(text);
        }
        if text.is_empty() {
            return if self.gaps {
                Ok(f32::NAN)
            } else {
                Err((
                    format!("categorical feature `{name}` has no value"),
                    "every row needs one; or set `data.missing` to read a missing category as \
                     none of the known ones",
                ))
            };
        }
        self.coder.code(i, text).map_err(|m| {
            (
                m,
                "fix the value, or set `data.unseen: ignore` to read an unknown category as \
                 none of the known ones",
            )
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn read_csv(
    path: &Path,
    input: &mut impl Read,
    features: &[String],
    carry: Carry<'_>,
    values: Values,
    cats: &mut Categorical<'_>,
    on_row: &mut impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<u64, DataError> {
    let io = |e: std::io::Error, line: u64| {
        DataError::at(
            path,
            Some(line),
            format!("cannot read: {e}"),
            "check that the file is readable and complete",
        )
    };
    // How many columns the header has, then (once it is read) where the features and the label
    // are.
    let mut columns: Option<usize> = None;
    let mut feature_at: Vec<usize> = Vec::new();
    let mut label_at = None;
    let mut run = None;
    let mut parsed = vec![
        0f32;
        if matches!(values, Values::Parse | Values::ParseOrGap) {
            features.len()
        } else {
            0
        }
    ];
    let mut rows = 0;
    records::for_each(input, io, |record| {
        let line = record.line;
        let Some(columns) = columns else {
            let header: Vec<String> = record
                .names()
                .map_err(|e| {
                    DataError::at(
                        path,
                        Some(line),
                        format!("the header is not UTF-8 text: {e}"),
                        "save the file as UTF-8",
                    )
                })?
                .into_iter()
                .map(str::to_owned)
                .collect();
            if header.iter().all(String::is_empty) {
                return Err(empty_header(path));
            }
            let find = |column: &str| {
                header.iter().position(|n| n == column).ok_or_else(|| {
                    let shown: Vec<&str> = header.iter().map(String::as_str).collect();
                    DataError::at(
                        path,
                        Some(line),
                        format!("no column `{column}` in the header"),
                        format!(
                            "the header has {}; fix `data.features`/`data.label` in the manifest or the file",
                            preview(&shown)
                        ),
                    )
                })
            };
            feature_at = features.iter().map(|f| find(f)).collect::<Result<_, _>>()?;
            label_at = carry.column().map(find).transpose()?;
            run = feature_at
                .first()
                .filter(|&&first| {
                    feature_at
                        .iter()
                        .enumerate()
                        .all(|(i, &at)| at == first + i)
                })
                .map(|&first| (first, first + feature_at.len() - 1));
            columns = Some(header.len());
            return Ok(());
        };
        if record.len() != columns {
            return Err(DataError::at(
                path,
                Some(line),
                format!("has {} fields, the header has {}", record.len(), columns),
                "every row needs one value per column (a missing or extra comma?)",
            ));
        }
        let not_a_number = |name: &str, field: &[u8]| {
            let text = String::from_utf8_lossy(field);
            DataError::at(
                path,
                Some(line),
                format!(
                    "feature `{name}` is {}, not a number",
                    shown_value(text.trim())
                ),
                "features must be numbers; encode categories as numbers first",
            )
        };
        let gap = |field: &[u8]| values.gaps() && crate::number::trim(field).is_empty();
        // Categorical features are coded (and checked) whether the values are parsed or not.
        if cats.any() {
            for (i, (&at, name)) in feature_at.iter().zip(features).enumerate() {
                if !cats.is(i) {
                    continue;
                }
                let field = record.get(at).unwrap_or_default();
                let text = std::str::from_utf8(field).map_err(|e| {
                    DataError::at(
                        path,
                        Some(line),
                        format!("categorical feature `{name}` is not UTF-8 text: {e}"),
                        "save the file as UTF-8",
                    )
                })?;
                let code = cats
                    .code(i, name, Some(text))
                    .map_err(|(m, hint)| DataError::at(path, Some(line), m, hint))?;
                if let Some(slot) = parsed.get_mut(i) {
                    *slot = code;
                }
            }
        }
        match values {
            Values::Parse | Values::ParseOrGap => {
                for (i, (slot, (&at, name))) in parsed
                    .iter_mut()
                    .zip(feature_at.iter().zip(features))
                    .enumerate()
                {
                    if cats.is(i) {
                        continue;
                    }
                    *slot = match record.number(at) {
                        Some(v) => v,
                        None => {
                            let field = record.get(at).unwrap_or_default();
                            if !gap(field) {
                                return Err(not_a_number(name, field));
                            }
                            f32::NAN
                        }
                    };
                }
            }
            Values::Check | Values::CheckOrGap => {
                // A record of short digit fields (see `Record::digits`) holds only numbers; a
                // run of features that is plain text needs no field-by-field look either.
                let plain = !cats.any()
                    && (record.digits
                        || run.is_some_and(|(first, last)| {
                            record
                                .run(first, last)
                                .is_some_and(crate::number::all_plain)
                        }));
                if !plain {
                    for (i, (&at, name)) in feature_at.iter().zip(features).enumerate() {
                        if cats.is(i) {
                            continue;
                        }
                        let field = record.get(at).unwrap_or_default();
                        if !crate::number::is_number(field) && !gap(field) {
                            return Err(not_a_number(name, field));
                        }
                    }
                }
            }
        }
        let label_text = match (label_at, carry.column()) {
            (Some(at), Some(column)) => {
                let text = std::str::from_utf8(record.get(at).unwrap_or_default())
                    .map_err(|e| {
                        DataError::at(
                            path,
                            Some(line),
                            format!("{} is not UTF-8 text: {e}", carry.named(column)),
                            "save the file as UTF-8",
                        )
                    })?
                    .trim();
                if text.is_empty() {
                    return Err(DataError::at(
                        path,
                        Some(line),
                        format!("{} is empty", carry.named(column)),
                        carry.every_row_needs(),
                    ));
                }
                text
            }
            _ => "",
        };
        on_row(Row {
            line,
            features: &parsed,
            label: label_text,
            text: Some(FieldText {
                record,
                at: &feature_at,
                run,
            }),
            categories: &cats.texts,
        })
        .map_err(|m| DataError::at(path, Some(line), m, ""))?;
        rows += 1;
        Ok(())
    })?;
    if columns.is_none() {
        return Err(empty_header(path));
    }
    Ok(rows)
}

fn empty_header(path: &Path) -> DataError {
    DataError::at(
        path,
        None,
        "is empty: no header row".to_owned(),
        "the first line must name the columns",
    )
}

fn read_jsonl(
    path: &Path,
    input: &mut impl Read,
    features: &[String],
    carry: Carry<'_>,
    values_read: Values,
    cats: &mut Categorical<'_>,
    on_row: &mut impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<u64, DataError> {
    let mut reader = BufReader::new(input);
    let mut text = String::new();
    let mut values = vec![0f32; features.len()];
    let mut line = 0;
    let mut rows = 0;
    loop {
        text.clear();
        let n = reader.read_line(&mut text).map_err(|e| {
            DataError::at(
                path,
                Some(line + 1),
                format!("cannot read: {e}"),
                "the file must be UTF-8 text, one JSON object per line",
            )
        })?;
        if n == 0 {
            break;
        }
        line += 1;
        if text.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| {
                DataError::at(
                    path,
                    Some(line),
                    format!("not a JSON object: {e}"),
                    "each line must be one JSON object, e.g. {\"x\": 1.5, \"label\": \"a\"}",
                )
            })?;
        let missing = |column: &str| {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            DataError::at(
                path,
                Some(line),
                format!("no key `{column}`"),
                format!(
                    "this object has {}; fix `data.features`/`data.label` in the manifest or the file",
                    preview(&keys)
                ),
            )
        };
        for (i, (slot, name)) in values.iter_mut().zip(features).enumerate() {
            let value = object.get(name).ok_or_else(|| missing(name))?;
            if cats.is(i) {
                let text = match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(b.to_string()),
                    other => {
                        return Err(DataError::at(
                            path,
                            Some(line),
                            format!("categorical feature `{name}` is {other}"),
                            "a category is a string, a number or a boolean",
                        ));
                    }
                };
                *slot = cats
                    .code(i, name, text.as_deref())
                    .map_err(|(m, hint)| DataError::at(path, Some(line), m, hint))?;
                continue;
            }
            if value.is_null() && values_read.gaps() {
                *slot = f32::NAN;
                continue;
            }
            *slot = value
                .as_f64()
                .map(|v| v as f32)
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    DataError::at(
                        path,
                        Some(line),
                        format!("feature `{name}` is {value}, not a number"),
                        "features must be JSON numbers; encode categories as numbers first",
                    )
                })?;
        }
        let label_text = match carry.column() {
            None => String::new(),
            Some(column) => match object.get(column).ok_or_else(|| missing(column))? {
                serde_json::Value::String(s) if !s.trim().is_empty() => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    let (what, hint) = if other.as_str().is_some() {
                        ("empty".to_owned(), carry.every_row_needs())
                    } else {
                        (format!("{other}"), carry.can_be())
                    };
                    return Err(DataError::at(
                        path,
                        Some(line),
                        format!("{} is {what}", carry.named(column)),
                        hint,
                    ));
                }
            },
        };
        on_row(Row {
            line,
            features: &values,
            label: &label_text,
            text: None,
            categories: &cats.texts,
        })
        .map_err(|m| DataError::at(path, Some(line), m, ""))?;
        rows += 1;
    }
    Ok(rows)
}

/// A finite number, or `None`.
fn number(text: &str) -> Option<f32> {
    crate::number::parse(text.as_bytes())
}

fn shown_value(text: &str) -> String {
    if text.is_empty() {
        "empty".to_owned()
    } else {
        let short: String = text.chars().take(40).collect();
        format!("`{short}`")
    }
}

pub(crate) fn preview(names: &[&str]) -> String {
    let mut s: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    if names.len() > 8 {
        s.push(format!("and {} more", names.len() - 8));
    }
    s.join(", ")
}

/// Rows held for training or scoring: features row-major (`rows × width`), and one target per
/// row (a class index for classification, the value for regression).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub width: usize,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

impl Table {
    pub fn new(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    pub fn rows(&self) -> usize {
        self.y.len()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        self.x
            .get(i * self.width..(i + 1) * self.width)
            .unwrap_or_default()
    }

    fn push(&mut self, features: &[f32], target: f32) {
        self.x.extend_from_slice(features);
        self.y.push(target);
    }
}

/// Whether row `index` of a file goes to validation, for a seed and a fraction: a hash of the
/// two, so the split is the same on every machine and needs no second pass.
pub fn in_validation(seed: u64, index: u64, fraction: f64) -> bool {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// The classes of a classification target, in a stable order (numeric when every label is a
/// number, else by text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classes(pub Vec<String>);

impl Classes {
    fn from_seen(seen: impl IntoIterator<Item = String>) -> Self {
        let mut labels: Vec<String> = seen.into_iter().collect();
        labels.sort();
        labels.dedup();
        if labels.iter().all(|l| l.parse::<f64>().is_ok()) {
            labels.sort_by(|a, b| {
                let (a, b) = (
                    a.parse::<f64>().unwrap_or(0.0),
                    b.parse::<f64>().unwrap_or(0.0),
                );
                a.total_cmp(&b)
            });
        }
        Self(labels)
    }

    pub fn index(&self, label: &str) -> Option<usize> {
        self.0.iter().position(|l| l == label)
    }
}

/// What the manifest says to read.
#[derive(Debug, Clone)]
pub struct Spec {
    pub task: Task,
    pub features: Vec<String>,
    pub label: String,
    /// (file on disk, path as the manifest gives it, format)
    pub train: (PathBuf, String, Format),
    pub validation: Option<(PathBuf, String, Format)>,
    pub holdout: (PathBuf, String, Format),
    pub validation_fraction: f64,
    pub split_seed: u64,
    /// What a missing feature value becomes; with `Error` a gap is refused by the reader.
    pub missing: Missing,
    /// The categorical features (`data.categorical`) and what an unseen category becomes.
    pub categorical: Vec<String>,
    pub unseen: Unseen,
}

impl Spec {
    /// What a (valid) manifest at `manifest_dir` asks to read. Relative dataset paths start at
    /// the manifest's directory.
    pub fn from_manifest(
        m: &mlops_manifest::Manifest,
        manifest_dir: &Path,
    ) -> Result<Self, String> {
        let features = mlops_manifest::semantic::expand_columns(&m.data.features)?;
        let file =
            |d: &mlops_manifest::model::Dataset| -> Result<(PathBuf, String, Format), String> {
                if d.path.starts_with("s3://") {
                    return Err(format!(
                        "{}: reading datasets from S3 is not built yet; copy the file locally",
                        d.path
                    ));
                }
                let on_disk = manifest_dir.join(&d.path);
                let format =
                    Format::of(&on_disk, d.format).map_err(|e| format!("{e} ({})", e.hint))?;
                Ok((on_disk, d.path.clone(), format))
            };
        Ok(Self {
            task: m.model.task,
            features,
            label: m.data.label.clone(),
            train: file(&m.data.train)?,
            validation: m.data.validation.as_ref().map(file).transpose()?,
            holdout: file(&m.data.holdout)?,
            validation_fraction: m.data.split.validation_fraction,
            split_seed: m.data.split.seed,
            missing: m.data.missing,
            categorical: m.data.categorical.clone(),
            unseen: m.data.unseen,
        })
    }
}

/// Every dataset of a training run, read and split.
#[derive(Debug, Clone)]
pub struct Datasets {
    pub train: Table,
    pub validation: Table,
    pub holdout: Table,
    /// Classification only.
    pub classes: Option<Classes>,
    /// The feature columns, in order.
    pub features: Vec<String>,
    /// The categorical features' categories, as the training file has them; the tables hold
    /// their codes.
    pub categories: Vec<Categories>,
    pub files: Vec<FileDigest>,
}

/// The three tables with one transform: a standardizer fitted on the training split only.
#[derive(Debug, Clone)]
pub struct Standardized {
    pub standardizer: Standardizer,
    pub train: Table,
    pub validation: Table,
    pub holdout: Table,
}

impl Datasets {
    /// The one-hot encoding of these tables' categorical features.
    pub fn one_hot(&self) -> OneHot {
        OneHot::new(&self.features, &self.categories)
    }

    /// The three tables as the model reads them: categorical features one-hot encoded.
    pub fn encoded(&self) -> [Table; 3] {
        let one_hot = self.one_hot();
        [&self.train, &self.validation, &self.holdout].map(|t| encode(&one_hot, t))
    }

    /// Encodes the tables, fits the standardizer on the training split and applies it to each.
    pub fn standardized(&self, missing: Missing) -> Standardized {
        let [train, validation, holdout] = self.encoded();
        let standardizer = fit(&train, missing);
        Standardized {
            train: standardize(&standardizer, &train),
            validation: standardize(&standardizer, &validation),
            holdout: standardize(&standardizer, &holdout),
            standardizer,
        }
    }
}

/// `table` with its categorical features one-hot encoded (a copy when there are none).
pub fn encode(one_hot: &OneHot, table: &Table) -> Table {
    if one_hot.is_identity() {
        return table.clone();
    }
    let mut x = Vec::new();
    one_hot.encode(&table.x, &mut x);
    Table {
        width: one_hot.inputs(),
        x,
        y: table.y.clone(),
    }
}

/// Reads the training file (splitting off validation rows unless a validation file is given),
/// the validation file and the holdout file.
pub fn load(spec: &Spec) -> Result<Datasets, DataError> {
    let width = spec.features.len();
    let classification = spec.task == Task::Classification;
    // Training rows keep their label text until every class is known, then map to indices.
    let mut train_rows: Vec<(bool, Vec<f32>, String)> = Vec::new();
    let (path, shown, format) = &spec.train;
    let mut index = 0u64;
    let split = spec.validation.is_none();
    let values = Values::Parse.with_gaps(!spec.missing.is_error());
    let mut learner = Learner::new(&spec.features, &spec.categorical);
    let mut files = vec![read_coded(
        path,
        shown,
        *format,
        &spec.features,
        &spec.label,
        values,
        &mut learner,
        |row| {
            let to_validation =
                split && in_validation(spec.split_seed, index, spec.validation_fraction);
            index += 1;
            if !classification {
                target_value(row.label)?;
            }
            train_rows.push((to_validation, row.features.to_vec(), row.label.to_owned()));
            Ok(())
        },
    )?];
    // The categories in their recorded order, and the training rows' codes with them.
    let (categories, remaps) = learner.finish();
    for (i, remap) in remaps.iter().enumerate() {
        let Some(remap) = remap else { continue };
        for (_, features, _) in &mut train_rows {
            if let Some(v) = features.get_mut(i)
                && v.is_finite()
            {
                *v = remap.get(*v as usize).copied().unwrap_or(f32::NAN);
            }
        }
    }
    let mut vocabulary = Vocabulary::new(&spec.features, &categories, spec.unseen);
    let classes =
        classification.then(|| Classes::from_seen(train_rows.iter().map(|(_, _, l)| l.clone())));
    let target = |label: &str| -> Result<f32, String> {
        match &classes {
            Some(c) => c.index(label).map(|i| i as f32).ok_or_else(|| {
                format!(
                    "label `{label}` is not among the training file's classes ({})",
                    c.0.join(", ")
                )
            }),
            None => target_value(label),
        }
    };
    let mut train = Table::new(width);
    let mut validation = Table::new(width);
    for (to_validation, features, label) in &train_rows {
        let y = target(label).map_err(|m| DataError::at(path, None, m, ""))?;
        if *to_validation {
            validation.push(features, y);
        } else {
            train.push(features, y);
        }
    }
    drop(train_rows);
    // Validation (when given as its own file) and holdout rows go straight to their tables.
    let mut read_into = |file: &(PathBuf, String, Format), table: &mut Table| {
        let (path, shown, format) = file;
        read_coded(
            path,
            shown,
            *format,
            &spec.features,
            &spec.label,
            values,
            &mut vocabulary,
            |row| {
                table.push(row.features, target(row.label)?);
                Ok(())
            },
        )
    };
    if let Some(file) = &spec.validation {
        files.push(read_into(file, &mut validation)?);
    }
    let mut holdout = Table::new(width);
    files.push(read_into(&spec.holdout, &mut holdout)?);
    let (path, _, _) = &spec.train;
    if train.rows() == 0 || validation.rows() == 0 {
        return Err(DataError::at(
            path,
            None,
            format!(
                "split into {} training and {} validation rows; both need at least one",
                train.rows(),
                validation.rows()
            ),
            "add rows, or change `data.split.validation_fraction`",
        ));
    }
    Ok(Datasets {
        train,
        validation,
        holdout,
        classes,
        features: spec.features.clone(),
        categories,
        files,
    })
}

fn target_value(label: &str) -> Result<f32, String> {
    number(label).ok_or_else(|| format!("the regression target is `{label}`, not a number"))
}

/// Per-feature mean and standard deviation of `table` (Welford's running mean and variance, in
/// f64): the standardizer training fits on its training split and serving applies.
pub fn fit(table: &Table, missing: Missing) -> Standardizer {
    let w = table.width;
    let mut mean = vec![0f64; w];
    let mut m2 = vec![0f64; w];
    let mut seen = vec![0u64; w];
    for i in 0..table.rows() {
        for (((&v, mean), m2), n) in table
            .row(i)
            .iter()
            .zip(&mut mean)
            .zip(&mut m2)
            .zip(&mut seen)
        {
            // A gap (NaN, only where `data.missing` allows them) is left out of the statistics.
            if v.is_nan() {
                continue;
            }
            *n += 1;
            let v = f64::from(v);
            let d = v - *mean;
            *mean += d / *n as f64;
            *m2 += d * (v - *mean);
        }
    }
    let std = m2
        .iter()
        .zip(&seen)
        .map(|(&m, &n)| {
            let s = (m / n.max(1) as f64).sqrt();
            if s > 1e-12 { s as f32 } else { 1.0 }
        })
        .collect();
    let fill = match missing {
        Missing::Error => None,
        Missing::Zero => Some(vec![0.0; w]),
        Missing::Mean => Some(mean.iter().map(|&m| m as f32).collect()),
        Missing::Median => Some(
            (0..w)
                .map(|c| {
                    let mut values: Vec<f32> = (0..table.rows())
                        .filter_map(|i| table.row(i).get(c).copied())
                        .filter(|v| !v.is_nan())
                        .collect();
                    values.sort_by(f32::total_cmp);
                    match values.len() {
                        0 => 0.0,
                        n if n % 2 == 1 => values.get(n / 2).copied().unwrap_or(0.0),
                        n => {
                            let (a, b) = (
                                values.get(n / 2 - 1).copied().unwrap_or(0.0),
                                values.get(n / 2).copied().unwrap_or(0.0),
                            );
                            ((f64::from(a) + f64::from(b)) / 2.0) as f32
                        }
                    }
                })
                .collect(),
        ),
    };
    Standardizer {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        std,
        fill,
    }
}

/// `table` with every feature standardised.
pub fn standardize(s: &Standardizer, table: &Table) -> Table {
    let mut out = table.clone();
    for row in out.x.chunks_mut(table.width.max(1)) {
        s.apply_row(row);
    }
    out
}

/// Label counts, for reports.
pub fn class_counts(table: &Table, classes: &Classes) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for &y in &table.y {
        if let Some(label) = classes.0.get(y as usize) {
            *counts.entry(label.clone()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn a_read_carries_the_label_an_id_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = file(&dir, "d.csv", "a,id\n1,x-1\n2,x-2\n");
        let jsonl = file(
            &dir,
            "d.jsonl",
            "{\"a\":1,\"id\":7}\n{\"a\":2,\"id\":\" \"}\n",
        );
        let carried = |path: &Path, format, carry| {
            let mut seen = Vec::new();
            let read = read_carrying(
                path,
                "f",
                format,
                &cols(&["a"]),
                carry,
                Values::Parse,
                &mut crate::categories::Numeric,
                |r| {
                    seen.push(r.label.to_owned());
                    Ok(())
                },
            );
            (read.map(|d| d.rows), seen)
        };
        assert_eq!(
            carried(&csv, Format::Csv, Carry::Id("id")),
            (Ok(2), vec!["x-1".to_owned(), "x-2".to_owned()])
        );
        assert_eq!(
            carried(&csv, Format::Csv, Carry::Nothing),
            (Ok(2), vec![String::new(), String::new()])
        );
        let (read, seen) = carried(&jsonl, Format::Jsonl, Carry::Id("id"));
        assert_eq!(seen, ["7"]);
        let e = read.expect_err("an empty id");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "id column `id` is empty");
        assert!(e.hint.contains("--id-column"), "{e:?}");
        let e = carried(&csv, Format::Csv, Carry::Label("y"))
            .0
            .expect_err("no label column");
        assert_eq!(e.message, "no column `y` in the header");
    }

    #[test]
    fn csv_rows_carry_their_feature_text_in_signature_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(&dir, "d.csv", "b,y,a\n\" 2.50 \",cat,1e3\n-0,dog,7\n");
        let mut seen = Vec::new();
        read(&path, "f", Format::Csv, &cols(&["a", "b"]), "y", |r| {
            let text: Vec<String> = r
                .text
                .expect("csv rows have text")
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect();
            seen.push((text, r.features.to_vec()));
            Ok(())
        })
        .expect("reads");
        assert_eq!(
            seen,
            vec![
                (vec!["1e3".to_owned(), "2.50".to_owned()], vec![1000.0, 2.5]),
                (vec!["7".to_owned(), "-0".to_owned()], vec![7.0, -0.0]),
            ]
        );
    }

    #[test]
    fn checking_refuses_exactly_the_rows_parsing_refuses_and_joins_neighbouring_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "9".repeat(31);
        let too_long = "9".repeat(39);
        let rows = [
            "1,2,x",
            "10,20,7",
            "-1.5,+.5,x",
            " 3 ,\"4\",x",
            "1e3,2,x",
            &format!("{long},{long},9"),
            &format!("{too_long},1,9"),
            "1,,9",
            ",1,9",
            "1.2.3,1,x",
            "1,abc,9",
            "--1,1,x",
        ];
        let check = |p: &Path, on_row: &mut dyn FnMut(Row<'_>) -> Result<(), String>| {
            read_with(
                p,
                "f",
                Format::Csv,
                &cols(&["a", "b"]),
                "y",
                Values::Check,
                on_row,
            )
        };
        for row in rows {
            let p = file(&dir, "d.csv", &format!("a,b,y\n{row}\n"));
            let mut joined = None;
            let checked = check(&p, &mut |r| {
                assert!(r.features.is_empty());
                joined = r.text.and_then(|t| t.joined()).map(<[u8]>::to_vec);
                Ok(())
            });
            let parsed = read(&p, "f", Format::Csv, &cols(&["a", "b"]), "y", |_| Ok(()));
            assert_eq!(checked.is_ok(), parsed.is_ok(), "{row}");
            if let (Err(c), Err(p)) = (&checked, &parsed) {
                assert_eq!(c, p, "{row}");
            }
            if checked.is_ok() && !row.contains('"') {
                let (features, _) = row.rsplit_once(',').expect("three fields");
                assert_eq!(joined.as_deref(), Some(features.as_bytes()), "{row}");
            }
        }
        // Columns out of order are not joined.
        let p = file(&dir, "d.csv", "b,a,y\n1,2,x\n");
        check(&p, &mut |r| {
            let text = r.text.expect("text");
            assert_eq!(text.joined(), None);
            assert_eq!(text.iter().collect::<Vec<_>>(), [&b"2"[..], b"1"]);
            Ok(())
        })
        .expect("reads");
    }

    /// (line, features, label) of every row read.
    type Rows = Vec<(u64, Vec<f32>, String)>;

    fn read_all(path: &Path, format: Format) -> Result<(FileDigest, Rows), DataError> {
        let mut rows = Vec::new();
        let d = read(path, "f", format, &cols(&["a", "b"]), "y", |r| {
            rows.push((r.line, r.features.to_vec(), r.label.to_owned()));
            Ok(())
        })?;
        Ok((d, rows))
    }

    /// With `data.missing`, a gap (an empty CSV field, a JSON null) is read as NaN; without,
    /// it is refused at its line. The statistics leave gaps out, and the fill is the training
    /// rows' mean, median or zero; `apply_row` fills, then standardises.
    #[test]
    fn gaps_are_read_left_out_of_the_statistics_and_filled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("g.csv");
        std::fs::write(&csv, "a,b,y\n1,,u\n3,4,v\n, 10 ,w\n").expect("write");
        let jsonl = dir.path().join("g.jsonl");
        std::fs::write(
            &jsonl,
            "{\"a\":1,\"b\":null,\"y\":\"u\"}\n{\"a\":3,\"b\":4,\"y\":\"v\"}\n{\"a\":null,\"b\":10,\"y\":\"w\"}\n",
        )
        .expect("write");
        // The first row is line 2 of the CSV file (after its header), line 1 of the JSONL one.
        for (path, format, line) in [(&csv, Format::Csv, 2), (&jsonl, Format::Jsonl, 1)] {
            let e = read_all(path, format).expect_err("a gap without data.missing");
            assert_eq!(e.line, Some(line), "{e}");
            let mut table = Table::new(2);
            read_with(
                path,
                "g",
                format,
                &cols(&["a", "b"]),
                "y",
                Values::ParseOrGap,
                |r| {
                    table.push(r.features, 0.0);
                    Ok(())
                },
            )
            .expect("gaps read");
            let nan: Vec<bool> = table.x.iter().map(|v| v.is_nan()).collect();
            assert_eq!(nan, [false, true, false, false, true, false], "{format:?}");
            let mean = fit(&table, Missing::Mean);
            assert_eq!(mean.mean, [2.0, 7.0]);
            assert_eq!(mean.std, [1.0, 3.0], "over the values present only");
            assert_eq!(mean.fill.as_deref(), Some(&[2.0, 7.0][..]));
            assert_eq!(
                fit(&table, Missing::Median).fill.as_deref(),
                Some(&[2.0, 7.0][..])
            );
            assert_eq!(
                fit(&table, Missing::Zero).fill.as_deref(),
                Some(&[0.0, 0.0][..])
            );
            assert_eq!(fit(&table, Missing::Error).fill, None);
            let mut row = [f32::NAN, 10.0];
            mean.apply_row(&mut row);
            assert_eq!(
                row,
                [0.0, 1.0],
                "the gap takes the mean, then is standardised"
            );
        }
        let mut odd = Table::new(1);
        for v in [5.0, f32::NAN, 1.0, 2.0] {
            odd.push(&[v], 0.0);
        }
        assert_eq!(fit(&odd, Missing::Median).fill.as_deref(), Some(&[2.0][..]));
    }

    #[test]
    fn csv_and_jsonl_read_the_named_columns_in_order_and_hash_the_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "y,b,other,a\ncat,2,x,1\ndog,4,y,3.5\n";
        let p = file(&dir, "d.csv", text);
        let (d, rows) = read_all(&p, Format::Csv).expect("reads");
        assert_eq!(d.rows, 2);
        assert_eq!(d.bytes, text.len() as u64);
        assert_eq!(
            d.sha256,
            mlops_artifacts::artifact::sha256_hex(text.as_bytes())
        );
        assert_eq!(rows[0], (2, vec![1.0, 2.0], "cat".to_owned()));
        assert_eq!(rows[1], (3, vec![3.5, 4.0], "dog".to_owned()));

        let p = file(
            &dir,
            "d.jsonl",
            "{\"a\": 1, \"b\": 2, \"y\": \"cat\"}\n\n{\"y\": 7, \"b\": 4, \"a\": 3.5}\n",
        );
        let (d, rows) = read_all(&p, Format::Jsonl).expect("reads");
        assert_eq!(d.rows, 2);
        assert_eq!(rows[1], (3, vec![3.5, 4.0], "7".to_owned()));
    }

    #[test]
    fn mistakes_are_reported_at_their_line_with_a_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: &[(&str, &str, Option<u64>, &str)] = &[
            (
                "a.csv",
                "a,y\n1,x\n",
                Some(1),
                "no column `b` in the header",
            ),
            (
                "b.csv",
                "a,b,y\n1,2,x\n1,zz,x\n",
                Some(3),
                "feature `b` is `zz`, not a number",
            ),
            (
                "c.csv",
                "a,b,y\n1,2,x\n1,2\n",
                Some(3),
                "has 2 fields, the header has 3",
            ),
            ("d.csv", "", None, "is empty"),
            ("e.csv", "a,b,y\n", None, "has no rows"),
            (
                "f.csv",
                "a,b,y\n1,,x\n",
                Some(2),
                "feature `b` is empty, not a number",
            ),
            (
                "g.csv",
                "a,b,y\n1,nan,x\n",
                Some(2),
                "feature `b` is `nan`, not a number",
            ),
            ("h.csv", "a,b,y\n1,2,\n", Some(2), "label `y` is empty"),
            (
                "i.jsonl",
                "{\"a\":1,\"b\":2,\"y\":1}\n{\"a\":1,\"y\":1}\n",
                Some(2),
                "no key `b`",
            ),
            (
                "j.jsonl",
                "{\"a\":1,\"b\":\"2\",\"y\":1}\n",
                Some(1),
                "feature `b` is \"2\", not a number",
            ),
            ("k.jsonl", "[1,2]\n", Some(1), "not a JSON object"),
        ];
        for (name, text, line, want) in cases {
            let p = file(&dir, name, text);
            let format = Format::of(&p, None).expect("format");
            let e = read_all(&p, format).expect_err(name);
            assert_eq!(e.line, *line, "{name}: {e}");
            assert!(e.message.contains(want), "{name}: {e}");
            assert!(!e.hint.is_empty(), "{name}: no hint");
            assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
        }
        let e = Format::of(Path::new("data.xlsx"), None).expect_err("unknown");
        assert!(e.hint.contains("format:"));
        assert_eq!(
            Format::of(Path::new("part-0.PARQUET"), None).expect("parquet"),
            Format::Parquet
        );
    }

    fn spec(dir: &tempfile::TempDir, train: &str, holdout: &str, task: Task) -> Spec {
        let t = file(dir, "train.csv", train);
        let h = file(dir, "holdout.csv", holdout);
        Spec {
            task,
            features: cols(&["a", "b"]),
            label: "y".to_owned(),
            train: (t, "train.csv".to_owned(), Format::Csv),
            validation: None,
            holdout: (h, "holdout.csv".to_owned(), Format::Csv),
            validation_fraction: 0.25,
            split_seed: 3,
            missing: Missing::Error,
            categorical: Vec::new(),
            unseen: Unseen::Error,
        }
    }

    /// A categorical column: categories learnt from the training file in sorted order (codes
    /// remapped), the same codes from a JSONL holdout, one-hot encoding before the standardizer,
    /// and an unseen category refused at its line or read as none.
    #[test]
    fn categorical_columns_are_learnt_from_training_and_coded_everywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = "a,b,y\n".to_owned();
        for i in 0..40 {
            let b = ["red", "blue", "\"dark, green\""][i % 3];
            text.push_str(&format!("{i},{b},{}\n", i % 2));
        }
        let h = file(
            &dir,
            "holdout.jsonl",
            "{\"a\": 1, \"b\": \"blue\", \"y\": 1}\n{\"a\": 2, \"b\": \"dark, green\", \"y\": 0}\n",
        );
        let s = Spec {
            categorical: cols(&["b"]),
            holdout: (h, "holdout.jsonl".to_owned(), Format::Jsonl),
            ..spec(&dir, &text, "a,b,y\n1,red,1\n", Task::Classification)
        };
        let d = load(&s).expect("loads");
        assert_eq!(d.categories.len(), 1);
        assert_eq!(d.categories[0].values, ["blue", "dark, green", "red"]);
        assert_eq!(d.holdout.x, [1.0, 0.0, 2.0, 1.0]);
        // Every training row's code is its category's place in the sorted list.
        let mut seen = std::collections::BTreeSet::new();
        for r in 0..d.train.rows() {
            let row = d.train.row(r);
            let want = [2.0, 0.0, 1.0][row[0] as usize % 3];
            assert_eq!(row[1], want, "row {r}");
            seen.insert(row[1] as usize);
        }
        assert_eq!(seen.len(), 3);
        let z = d.standardized(Missing::Error);
        assert_eq!(z.train.width, 4);
        assert_eq!(z.standardizer.mean.len(), 4);
        let [_, _, holdout] = d.encoded();
        assert_eq!(holdout.x, [1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0]);

        let unseen = file(&dir, "unseen.csv", "a,b,y\n1,red,1\n2,purple,0\n");
        let strict = Spec {
            holdout: (unseen.clone(), "unseen.csv".to_owned(), Format::Csv),
            ..s.clone()
        };
        let e = load(&strict).expect_err("unseen");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("`b` is `purple`"), "{e}");
        assert!(e.hint.contains("data.unseen: ignore"), "{e}");
        let lenient = load(&Spec {
            unseen: Unseen::Ignore,
            ..strict
        })
        .expect("ignored");
        assert_eq!(
            lenient.holdout.x,
            [1.0, 2.0, 2.0, crate::categories::UNSEEN]
        );
        // An empty category is refused unless gaps are filled; then it is NaN (all zeros).
        let gap = file(&dir, "gap.csv", "a,b,y\n1,,1\n");
        let with_gap = Spec {
            holdout: (gap, "gap.csv".to_owned(), Format::Csv),
            ..s.clone()
        };
        let e = load(&with_gap).expect_err("gap");
        assert!(e.message.contains("`b` has no value"), "{e}");
        let filled = load(&Spec {
            missing: Missing::Mean,
            ..with_gap
        })
        .expect("gap filled");
        assert!(filled.holdout.x[1].is_nan());
    }

    #[test]
    fn the_split_is_seeded_and_classes_are_sorted_numerically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = "a,b,y\n".to_owned();
        for i in 0..400 {
            text.push_str(&format!("{i},{},{}\n", i * 2, [10, 2, 9][i % 3]));
        }
        let s = spec(&dir, &text, "a,b,y\n1,2,9\n", Task::Classification);
        let d = load(&s).expect("loads");
        assert_eq!(d.classes, Some(Classes(cols(&["2", "9", "10"]))));
        assert_eq!(d.train.rows() + d.validation.rows(), 400);
        let share = d.validation.rows() as f64 / 400.0;
        assert!((0.18..0.32).contains(&share), "{share}");
        let again = load(&s).expect("loads");
        assert_eq!(again.validation, d.validation);
        let other = load(&Spec {
            split_seed: 4,
            ..s.clone()
        })
        .expect("loads");
        assert_ne!(other.validation, d.validation);
        assert_eq!(d.holdout.y, vec![1.0]);
        assert_eq!(d.files.len(), 2);
        assert_eq!(d.files[0].rows, 400);
    }

    #[test]
    fn an_unknown_holdout_label_and_a_text_regression_target_are_located() {
        let dir = tempfile::tempdir().expect("tempdir");
        let train = "a,b,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n9,9,x\n";
        let s = spec(&dir, train, "a,b,y\n1,2,x\n1,2,w\n", Task::Classification);
        let e = load(&s).expect_err("unknown label");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("label `w` is not among"), "{e}");
        let s = spec(&dir, train, "a,b,y\n1,2,3\n", Task::Regression);
        let e = load(&s).expect_err("text target");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("not a number"), "{e}");
    }

    #[test]
    fn standardizer_centres_and_scales_and_leaves_constants_finite() {
        let mut t = Table::new(2);
        for (a, b) in [(1.0, 5.0), (3.0, 5.0), (5.0, 5.0)] {
            t.push(&[a, b], 0.0);
        }
        let s = fit(&t, Missing::Error);
        assert_eq!(s.mean, vec![3.0, 5.0]);
        assert!((s.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(s.std[1], 1.0);
        let z = standardize(&s, &t);
        assert!(z.x.iter().all(|v| v.is_finite()));
        assert_eq!(z.row(1), &[0.0, 0.0]);
    }

    proptest::proptest! {
        #[test]
        fn the_reader_never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let dir = tempfile::tempdir().expect("tempdir");
            for name in ["x.csv", "x.jsonl"] {
                let p = dir.path().join(name);
                std::fs::write(&p, &bytes).expect("write");
                let format = Format::of(&p, None).expect("format");
                let _ = read(&p, name, format, &cols(&["a"]), "y", |_| Ok(()));
            }
        }
    }
}
