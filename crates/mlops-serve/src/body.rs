//! Request bodies to a matrix of raw features in the order of the model's signature.
//!
//! Accepted (README, "Serving"):
//! - `{"instances": [[v, ...], ...]}`: positional rows, one value per feature, in signature order;
//! - `{"instances": [{"name": v, ...}, ...]}`: named rows (JSON objects are unordered, so key
//!   order is free; every feature must be there, nothing else);
//! - `{"columns": [...], "data": [[...], ...]}`: the columns must be the signature's, in its order;
//! - what `mlflow models serve` takes: `{"dataframe_split": {"columns": [...], "data": [...]}}`
//!   (its `index` is ignored), `{"dataframe_records": [...]}` and `{"inputs": [...]}`, read as the
//!   two forms above;
//! - a bare JSON array: of rows, positional or named (`[[v, ...], ...]`, what SageMaker's
//!   `JSONSerializer` sends for a 2-D array and pandas' `to_json(orient="records")` writes), or of
//!   numbers, which is one positional row (`[v, ...]`, SageMaker's `JSONSerializer` for one
//!   sample);
//! - `text/csv`: rows of values in signature order, after a header row when the client sends one.
//!   SageMaker's `CSVSerializer`, Batch Transform with line splitting and Model Monitor send no
//!   header. A first line is the header exactly when it names the signature's columns in its
//!   order; a first line of numbers is a row; any other first line is read as a header and its
//!   mistake is named (so a header with a missing or misplaced column is never taken for data).
//!   The one reading this cannot tell apart: features named by numbers (`0,1,2`) and a first row
//!   with exactly those values, which is read as the header.
//!
//! A missing, unknown, repeated or misplaced column is named in the error. Values are read
//! straight into one `Vec<f32>`; no intermediate JSON tree is built.

use std::collections::HashMap;
use std::fmt;

use crate::limits::Limits;
use mlops_data::categories::{Column, Vocabulary};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Rows of raw (not yet standardised) features, `rows * width` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub x: Vec<f32>,
}

/// Why a body was refused: the HTTP status and a message for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }
}

/// The body's media type, from `Content-Type` (parameters ignored). JSON when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Json,
    Csv,
}

impl Media {
    pub fn of(content_type: Option<&str>) -> Result<Self, Rejection> {
        let Some(ct) = content_type else {
            return Ok(Self::Json);
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" => Ok(Self::Json),
            "text/csv" => Ok(Self::Csv),
            other => Err(Rejection {
                status: 415,
                message: format!(
                    "content type `{other}` is not accepted; send application/json or text/csv"
                ),
            }),
        }
    }
}

/// The answer's media type, from `Accept`: the first listed range the service can write (JSON
/// when absent or `*/*`). `None`: nothing listed can be written (406).
pub fn answer_media(accept: Option<&str>) -> Option<Media> {
    let Some(accept) = accept else {
        return Some(Media::Json);
    };
    accept.split(',').find_map(|range| {
        let essence = range.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("text/csv") || essence.eq_ignore_ascii_case("text/*") {
            Some(Media::Csv)
        } else if essence.is_empty()
            || essence == "*/*"
            || essence.eq_ignore_ascii_case("application/json")
            || essence.eq_ignore_ascii_case("application/*")
        {
            Some(Media::Json)
        } else {
            None
        }
    })
}

/// How a model reads its features: what a body's values are checked and turned into.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'m> {
    /// The signature's features, in order.
    pub features: &'m [String],
    /// A missing value (an empty CSV field, a JSON `null`) is read as NaN, which the model's
    /// standardizer fills as training did (`data.missing`), rather than refused.
    pub gaps: bool,
    /// The categorical features' categories: their values are text, read as codes (empty for
    /// a model of numbers only).
    pub vocabulary: &'m Vocabulary,
    /// Each feature's place, by name (for named JSON rows), when the caller built it once;
    /// otherwise each JSON body builds its own.
    pub index: Option<&'m HashMap<String, usize>>,
}

/// Each feature's place, by name: [`Columns::index`].
pub fn index_of(features: &[String]) -> HashMap<String, usize> {
    features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), i))
        .collect()
}

impl<'m> Columns<'m> {
    /// Numeric features, no gaps.
    pub fn numeric(features: &'m [String]) -> Self {
        static NONE: std::sync::LazyLock<Vocabulary> =
            std::sync::LazyLock::new(Vocabulary::default);
        Self {
            features,
            gaps: false,
            vocabulary: &NONE,
            index: None,
        }
    }
}

/// Parses `body` for a model that reads `columns`.
pub fn parse(
    media: Media,
    body: &[u8],
    columns: Columns<'_>,
    limits: Limits,
) -> Result<Batch, Rejection> {
    if body.len() > limits.max_body_bytes {
        return Err(too_large(body.len(), limits));
    }
    let batch = match media {
        Media::Json => parse_json(body, columns, limits)?,
        Media::Csv => parse_csv(body, columns, limits)?,
    };
    if batch.rows == 0 {
        return Err(Rejection::bad("the request has no rows"));
    }
    Ok(batch)
}

fn too_large(bytes: usize, limits: Limits) -> Rejection {
    Rejection {
        status: 413,
        message: format!(
            "the body is {bytes} bytes; the limit is {} (split the rows over several requests)",
            limits.max_body_bytes
        ),
    }
}

fn too_many_rows(limits: Limits) -> String {
    format!(
        "more than {} rows in one request; split them over several requests",
        limits.max_rows
    )
}

/// Compares the columns a client named with the signature's; the first problem, named.
pub fn check_columns(given: &[&str], expected: &[String]) -> Result<(), String> {
    let mut seen = HashMap::with_capacity(given.len());
    for (i, name) in given.iter().enumerate() {
        if let Some(first) = seen.insert(*name, i) {
            return Err(format!(
                "column `{name}` is given twice (positions {} and {})",
                first + 1,
                i + 1
            ));
        }
    }
    if let Some(missing) = expected.iter().find(|e| !seen.contains_key(e.as_str())) {
        return Err(format!(
            "column `{missing}` is missing; the model takes {}",
            describe(expected)
        ));
    }
    if let Some(extra) = given
        .iter()
        .find(|g| !expected.iter().any(|e| e.as_str() == **g))
    {
        return Err(format!(
            "column `{extra}` is not one the model takes ({}); drop it",
            describe(expected)
        ));
    }
    if let Some((i, (g, e))) = given
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (g, e))| **g != e.as_str())
    {
        return Err(format!(
            "column `{g}` is at position {} where the model expects `{e}`; send the columns in \
             the model's order ({})",
            i + 1,
            describe(expected)
        ));
    }
    Ok(())
}

/// `a, b, c` or `a, b, …, z (64 columns)`.
fn describe(features: &[String]) -> String {
    match features {
        [first, second, .., last] if features.len() > 6 => {
            format!("{first}, {second}, …, {last} ({} columns)", features.len())
        }
        _ => features.join(", "),
    }
}

fn parse_csv(body: &[u8], columns: Columns<'_>, limits: Limits) -> Result<Batch, Rejection> {
    let Columns {
        features,
        gaps,
        vocabulary,
        ..
    } = columns;
    // An empty field, where the model fills missing values.
    let gap = |field: &[u8]| gaps && mlops_data::number::trim(field).is_empty();
    let width = features.len();
    let mut first = true;
    // Every row but a header ends with a newline, so this is about the rows' values.
    let mut x = Vec::with_capacity(width * memchr::memchr_iter(b'\n', body).count());
    let mut rows = 0usize;
    mlops_data::records::each(
        body,
        |record| {
            let line = record.line;
            // The first line is a header when it names the features, or when a numeric
            // feature's field in it is not a number (found while it is read as a row: its
            // numbers are parsed once).
            let maybe_header = std::mem::take(&mut first);
            if maybe_header
                && (names_the_features(&record, features)
                    || record.len() != width && !is_a_row(&record, columns))
            {
                return header(&record, features);
            }
            if rows == limits.max_rows {
                return Err(Rejection {
                    status: 413,
                    message: too_many_rows(limits),
                });
            }
            if record.len() != width {
                return Err(Rejection::bad(format!(
                    "CSV line {line} has {} fields; the model takes {width} ({})",
                    record.len(),
                    describe(features)
                )));
            }
            let start = x.len();
            // The reader of the training data reads numbers the same way (same text, same f32).
            for (i, name) in features.iter().enumerate() {
                if let Some(column) = vocabulary.column(i) {
                    let field = mlops_data::number::trim(record.get(i).unwrap_or_default());
                    let text = std::str::from_utf8(field).map_err(|e| {
                        Rejection::bad(format!(
                            "CSV line {line}, column `{name}`: not UTF-8 text: {e}"
                        ))
                    })?;
                    x.push(match text {
                        "" if gaps => f32::NAN,
                        "" => {
                            return Err(Rejection::bad(format!(
                                "CSV line {line}, column `{name}`: no value; the model takes \
                                 no missing values"
                            )));
                        }
                        _ => column
                            .code(text)
                            .map_err(|e| Rejection::bad(format!("CSV line {line}: {e}")))?,
                    });
                    continue;
                }
                let v = match record.number(i) {
                    Some(v) => v,
                    None if gap(record.get(i).unwrap_or_default()) => f32::NAN,
                    None if maybe_header => {
                        x.truncate(start);
                        return header(&record, features);
                    }
                    None => {
                        return Err(Rejection::bad(format!(
                            "CSV line {line}, column `{name}`: `{}` is not a finite number",
                            String::from_utf8_lossy(record.get(i).unwrap_or_default())
                        )));
                    }
                };
                x.push(v);
            }
            rows += 1;
            Ok(())
        },
        |e, line| Rejection::bad(format!("the CSV is malformed at line {line}: {e}")),
    )?;
    if first {
        return Err(Rejection::bad(
            "the CSV body is empty; send the rows, one per line (after a header naming the \
             columns, if you like)",
        ));
    }
    Ok(Batch { rows, x })
}

/// A CSV body's first line read as its header: it must name the features in their order.
fn header(record: &mlops_data::records::Record<'_>, features: &[String]) -> Result<(), Rejection> {
    let line = record.line;
    let names = record
        .names()
        .map_err(|e| Rejection::bad(format!("the CSV header is not UTF-8 text: {e}")))?;
    check_columns(&names, features).map_err(|problem| {
        // A headerless first row with a gap or a typo lands here: say why it was taken for a
        // header.
        let any_number = (0..record.len()).any(|i| record.number(i).is_some());
        match (0..record.len()).find(|&i| record.number(i).is_none()) {
            Some(i) if any_number => Rejection::bad(format!(
                "CSV line {line} is read as a header because its field {} (`{}`) is not a \
                 number: {problem}",
                i + 1,
                names.get(i).copied().unwrap_or_default()
            )),
            _ => Rejection::bad(problem),
        }
    })
}

/// Whether a CSV body's first line names the model's features exactly (a header, even of
/// numeric names). Only a line whose first field is the first feature's name is looked at
/// whole: the check costs a data row one field's comparison.
fn names_the_features(record: &mlops_data::records::Record<'_>, features: &[String]) -> bool {
    let first = record.get(0).map(std::str::from_utf8);
    record.len() == features.len()
        && matches!((first, features.first()), (Some(Ok(f)), Some(name)) if f.trim() == name)
        && record.names().is_ok_and(|names| {
            names
                .iter()
                .copied()
                .eq(features.iter().map(String::as_str))
        })
}

/// Whether a CSV body's first line is a row rather than a header: every field of a numeric
/// feature is a number (a categorical feature's may be any text) and the line does not name the
/// model's features (a header of numeric names is a header).
fn is_a_row(record: &mlops_data::records::Record<'_>, columns: Columns<'_>) -> bool {
    (0..record.len()).all(|i| {
        record.number(i).is_some()
            || columns.vocabulary.column(i).is_some()
            || (columns.gaps
                && mlops_data::number::trim(record.get(i).unwrap_or_default()).is_empty())
    }) && !names_the_features(record, columns.features)
}

fn parse_json(body: &[u8], columns: Columns<'_>, limits: Limits) -> Result<Batch, Rejection> {
    let Columns {
        features,
        gaps,
        vocabulary,
        ..
    } = columns;
    let built;
    let index = match columns.index {
        Some(index) => index,
        None => {
            built = index_of(features);
            &built
        }
    };
    let mut state = State {
        features,
        index,
        limits,
        gaps,
        vocabulary,
        x: Vec::new(),
        rows: 0,
        columns: None,
        row_form: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    TopLevel(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            let message = e.to_string();
            if message.contains(&too_many_rows(limits)) {
                Rejection {
                    status: 413,
                    message,
                }
            } else {
                Rejection::bad(format!("the JSON body is not accepted: {message}"))
            }
        })?;
    Ok(Batch {
        rows: state.rows,
        x: state.x,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Instances,
    Data,
    /// A bare array at the top level.
    Bare,
}

struct State<'f> {
    features: &'f [String],
    index: &'f HashMap<String, usize>,
    limits: Limits,
    /// A `null` is a missing value (read as NaN) rather than a mistake.
    gaps: bool,
    vocabulary: &'f Vocabulary,
    x: Vec<f32>,
    rows: usize,
    columns: Option<Vec<String>>,
    row_form: Option<Form>,
}

struct TopLevel<'s, 'f>(&'s mut State<'f>);

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            r#"an object: {"instances": [...]} or {"columns": [...], "data": [[...], ...]}, or an array of rows"#,
        )
    }
    /// A bare array: of rows, or of numbers (one row).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        state.row_form = Some(Form::Bare);
        state.x.resize(state.features.len(), f32::NAN);
        match seq.next_element_seed(First(state))? {
            None => {
                state.x.clear();
                Ok(())
            }
            Some(Element::Row) => {
                state.rows = 1;
                more_rows(state, &mut seq)
            }
            Some(Element::Number(v)) => {
                // One flat row: its first value is read, the rest follow in the same array.
                if let Some(x) = state.x.first_mut() {
                    *x = v;
                }
                OneRow {
                    state: &mut *state,
                    start: 0,
                    row: 0,
                }
                .values_from(1, seq)?;
                state.rows = 1;
                Ok(())
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let form = match key.as_ref() {
                // MLflow's names for the same two forms.
                "instances" | "dataframe_records" | "inputs" => Form::Instances,
                "data" => Form::Data,
                "columns" => {
                    columns(state, &mut map)?;
                    continue;
                }
                "dataframe_split" => {
                    if state.row_form.is_some() || state.columns.is_some() {
                        return Err(de::Error::custom(
                            "give the rows once: `dataframe_split` holds them all",
                        ));
                    }
                    map.next_value_seed(Split(&mut *state))?;
                    continue;
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}`; expected `instances`, or `columns` and `data` \
                         (or MLflow's `dataframe_split`, `dataframe_records`, `inputs`)"
                    )));
                }
            };
            if state.row_form.is_some() {
                return Err(de::Error::custom(
                    "give the rows once: `instances` or `data`, not both",
                ));
            }
            state.row_form = Some(form);
            map.next_value_seed(Rows(state))?;
        }
        match (state.row_form, &state.columns) {
            (None, _) => Err(de::Error::custom(
                r#"no rows: send {"instances": [...]} or {"columns": [...], "data": [...]}"#,
            )),
            (Some(Form::Data), None) => Err(de::Error::custom(
                "`data` needs `columns` naming the features in order",
            )),
            (Some(Form::Instances), Some(_)) => Err(de::Error::custom(
                "`columns` goes with `data`; `instances` rows are positional or named on their own",
            )),
            _ => Ok(()),
        }
    }
}

/// Reads a `columns` value into `state`, checked against the signature.
fn columns<'de, A: MapAccess<'de>>(state: &mut State<'_>, map: &mut A) -> Result<(), A::Error> {
    if state.columns.is_some() {
        return Err(de::Error::custom("`columns` is given twice"));
    }
    let columns: Vec<String> = map.next_value()?;
    let given: Vec<&str> = columns.iter().map(String::as_str).collect();
    check_columns(&given, state.features).map_err(de::Error::custom)?;
    state.columns = Some(columns);
    Ok(())
}

/// MLflow's `dataframe_split`: `columns` and `data` (and an `index`, which says nothing about
/// the features and is skipped).
struct Split<'s, 'f>(&'s mut State<'f>);

impl<'de> DeserializeSeed<'de> for Split<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Split<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{"columns": [...], "data": [[...], ...]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "columns" => columns(state, &mut map)?,
                "data" if state.row_form.is_some() => {
                    return Err(de::Error::custom("`dataframe_split.data` is given twice"));
                }
                "data" => {
                    state.row_form = Some(Form::Data);
                    map.next_value_seed(Rows(&mut *state))?;
                }
                "index" => {
                    map.next_value::<de::IgnoredAny>()?;
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `dataframe_split.{other}`; expected `columns` and `data`"
                    )));
                }
            }
        }
        Ok(())
    }
}

struct Rows<'s, 'f>(&'s mut State<'f>);

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        if let Some(n) = seq.size_hint() {
            state
                .x
                .reserve(n.min(state.limits.max_rows) * state.features.len());
        }
        more_rows(state, &mut seq)
    }
}

/// Reads the rest of an array of rows into `state`, up to the row limit.
fn more_rows<'de, A: SeqAccess<'de>>(state: &mut State<'_>, seq: &mut A) -> Result<(), A::Error> {
    loop {
        if state.rows == state.limits.max_rows {
            // One more row would be over the limit: is there one?
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom(too_many_rows(state.limits)));
            }
            return Ok(());
        }
        let start = state.x.len();
        state.x.resize(start + state.features.len(), f32::NAN);
        let row = state.rows;
        if seq
            .next_element_seed(OneRow { state, start, row })?
            .is_none()
        {
            state.x.truncate(start);
            return Ok(());
        }
        state.rows += 1;
    }
}

/// The first element of a bare array: a row (read into the state's first row) or a number
/// (the first value of a single flat row).
struct First<'s, 'f>(&'s mut State<'f>);

enum Element {
    Row,
    Number(f32),
}

impl<'de> DeserializeSeed<'de> for First<'_, '_> {
    type Value = Element;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Element, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'f> First<'_, 'f> {
    /// A reader for the first value of a flat row: the model's first feature.
    fn first_value(&self) -> Number<'f> {
        let features: &'f [String] = self.0.features;
        Number {
            row: 0,
            name: features.first().map(String::as_str),
            gaps: self.0.gaps,
            category: self.0.vocabulary.column(0),
        }
    }
}

impl<'de> Visitor<'de> for First<'_, '_> {
    type Value = Element;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row (an array of numbers or an object of named numbers) or a number")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        OneRow {
            state: self.0,
            start: 0,
            row: 0,
        }
        .visit_seq(seq)
        .map(|()| Element::Row)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        OneRow {
            state: self.0,
            start: 0,
            row: 0,
        }
        .visit_map(map)
        .map(|()| Element::Row)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
        self.first_value().visit_f64(v).map(Element::Number)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
        self.first_value().visit_i64(v).map(Element::Number)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
        self.first_value().visit_u64(v).map(Element::Number)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
        self.first_value().visit_str(v).map(Element::Number)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
        self.first_value().visit_bool(v).map(Element::Number)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        self.first_value().visit_unit().map(Element::Number)
    }
}

struct OneRow<'s, 'f> {
    state: &'s mut State<'f>,
    start: usize,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for OneRow<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl OneRow<'_, '_> {
    /// Reads a positional row's values from position `i` on (the ones before it are in place).
    fn values_from<'de, A: SeqAccess<'de>>(self, mut i: usize, mut seq: A) -> Result<(), A::Error> {
        let width = self.state.features.len();
        loop {
            let name = self.state.features.get(i).map(String::as_str);
            let Some(v) = seq.next_element_seed(Number {
                row: self.row,
                name,
                gaps: self.state.gaps,
                category: self.state.vocabulary.column(i),
            })?
            else {
                break;
            };
            if i >= width {
                return Err(de::Error::custom(format!(
                    "row {} has more than {width} values; the model takes {width}",
                    self.row + 1
                )));
            }
            if let Some(x) = self.state.x.get_mut(self.start + i) {
                *x = v;
            }
            i += 1;
        }
        if i < width {
            return Err(de::Error::custom(format!(
                "row {} has {i} values; the model takes {width} ({})",
                self.row + 1,
                describe(self.state.features)
            )));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for OneRow<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}: an array of {} numbers or an object of named numbers",
            self.row + 1,
            self.state.features.len()
        )
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.values_from(0, seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        if state.row_form == Some(Form::Data) {
            return Err(de::Error::custom(format!(
                "row {}: `data` rows are arrays in the order of `columns`",
                self.row + 1
            )));
        }
        let mut seen = vec![false; state.features.len()];
        let mut count = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(&i) = state.index.get(key.as_ref()) else {
                return Err(de::Error::custom(format!(
                    "row {}: column `{key}` is not one the model takes ({}); drop it",
                    self.row + 1,
                    describe(state.features)
                )));
            };
            if seen.get_mut(i).is_some_and(|s| std::mem::replace(s, true)) {
                return Err(de::Error::custom(format!(
                    "row {}: column `{key}` is given twice",
                    self.row + 1
                )));
            }
            let value = map.next_value_seed(Number {
                row: self.row,
                name: state.features.get(i).map(String::as_str),
                gaps: state.gaps,
                category: state.vocabulary.column(i),
            })?;
            if let Some(x) = state.x.get_mut(self.start + i) {
                *x = value;
            }
            count += 1;
        }
        if count < state.features.len() {
            let missing = seen.iter().position(|s| !s).unwrap_or(0);
            return Err(de::Error::custom(format!(
                "row {}: column `{}` is missing",
                self.row + 1,
                state.features.get(missing).map_or("", String::as_str)
            )));
        }
        Ok(())
    }
}

/// One value of a row: a number, or (for a categorical feature) a category's code.
struct Number<'n> {
    row: usize,
    name: Option<&'n str>,
    /// `null` is a missing value.
    gaps: bool,
    /// The feature's categories, when it is categorical.
    category: Option<&'n Column>,
}

impl Number<'_> {
    /// The code of a categorical feature's value, written as `text`.
    fn code<E: de::Error>(&self, column: &Column, text: &str) -> Result<f32, E> {
        match text.trim() {
            "" if self.gaps => Ok(f32::NAN),
            "" => Err(self.wrong("an empty category")),
            text => column
                .code(text)
                .map_err(|e| E::custom(format!("row {}: {e}", self.row + 1))),
        }
    }

    fn wrong<E: de::Error>(&self, what: &str) -> E {
        match self.name {
            Some(n) => E::custom(format!(
                "row {}, column `{n}`: expected a number, found {what}",
                self.row + 1
            )),
            None => E::custom(format!(
                "row {}: expected a number, found {what}",
                self.row + 1
            )),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Number<'_> {
    type Value = f32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f32, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Number<'_> {
    type Value = f32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
        if let Some(column) = self.category {
            return self.code(column, &v.to_string());
        }
        let x = v as f32;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.wrong(&format!("{v}, which is out of the 32-bit float range")))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
        match self.category {
            Some(column) => self.code(column, &v.to_string()),
            None => self.visit_f64(v as f64),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
        match self.category {
            Some(column) => self.code(column, &v.to_string()),
            None => self.visit_f64(v as f64),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f32, E> {
        match self.category {
            Some(column) => self.code(column, v),
            None => Err(self.wrong(&format!("the string {v:?}"))),
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f32, E> {
        match self.category {
            Some(column) => self.code(column, &v.to_string()),
            None => Err(self.wrong(&v.to_string())),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<f32, E> {
        if self.gaps {
            Ok(f32::NAN)
        } else {
            Err(self.wrong("null"))
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<f32, A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<f32, A::Error> {
        Err(self.wrong("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(features: &[String], gaps: bool) -> Columns<'_> {
        Columns {
            gaps,
            ..Columns::numeric(features)
        }
    }

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn json(body: &str) -> Result<Batch, Rejection> {
        parse(
            Media::Json,
            body.as_bytes(),
            cols(&features(), false),
            Limits::default(),
        )
    }

    fn refused(body: &str) -> String {
        let r = json(body).expect_err("refused");
        assert_eq!(r.status, 400, "{}", r.message);
        r.message
    }

    /// A model with a categorical feature reads its text as the category's code from every
    /// form (CSV with or without a header, quoted or not; JSON strings, numbers' text); an
    /// unknown one is refused naming it, or coded as unseen when the model ignores them.
    #[test]
    fn categorical_features_are_read_as_codes() {
        use mlops_artifacts::training::Categories;
        use mlops_data::categories::Unseen;
        let features = features();
        let categories = [Categories {
            column: "b".into(),
            values: vec!["3".into(), "blue".into(), "red, dark".into()],
        }];
        let strict = Vocabulary::new(&features, &categories, Unseen::Error);
        let read = |media: Media, body: &str, vocabulary: &Vocabulary, gaps: bool| {
            let columns = Columns {
                features: &features,
                gaps,
                vocabulary,
                index: None,
            };
            parse(media, body.as_bytes(), columns, Limits::default())
                .map(|b| b.x)
                .map_err(|r| r.message)
        };
        let want = vec![1.0, 1.0, 2.0, 4.0, 2.0, 6.0, 7.0, 0.0, 9.0];
        for (media, body) in [
            (Media::Csv, "1,blue,2\n4,\"red, dark\",6\n7,3,9\n"),
            (Media::Csv, "a,b,c\n1, blue ,2\n4,\"red, dark\",6\n7,3,9\n"),
            (
                Media::Json,
                r#"[[1, "blue", 2], {"a": 4, "b": "red, dark", "c": 6}, [7, 3, 9]]"#,
            ),
            (
                Media::Json,
                r#"{"columns": ["a", "b", "c"], "data": [[1, "blue", 2], [4, "red, dark", 6], [7, "3", 9]]}"#,
            ),
        ] {
            assert_eq!(
                read(media, body, &strict, false),
                Ok(want.clone()),
                "{body}"
            );
        }
        // A flat JSON row starting with a category.
        let first = [Categories {
            column: "a".into(),
            values: vec!["x".into()],
        }];
        let by_first = Vocabulary::new(&features, &first, Unseen::Error);
        assert_eq!(
            read(Media::Json, r#"["x", 2, 3]"#, &by_first, false),
            Ok(vec![0.0, 2.0, 3.0])
        );
        for (media, body) in [
            (Media::Csv, "1,green,2\n"),
            (Media::Json, r#"[[1, "green", 2]]"#),
        ] {
            let e = read(media, body, &strict, false).expect_err("unseen");
            assert!(
                e.contains("`b` is `green`, a category the model was not trained on"),
                "{e}"
            );
        }
        let e = read(Media::Json, r#"[[1, "", 2]]"#, &strict, false).expect_err("empty");
        assert!(e.contains("column `b`"), "{e}");
        let lenient = Vocabulary::new(&features, &categories, Unseen::Ignore);
        assert_eq!(
            read(Media::Csv, "1,green,2\n", &lenient, false),
            Ok(vec![1.0, mlops_data::categories::UNSEEN, 2.0])
        );
        // A gap in a categorical column, where the model takes gaps.
        let x = read(Media::Csv, "1,,2\n", &strict, true).expect("gap");
        assert!(x[1].is_nan());
        let x = read(Media::Json, r#"[[1, null, 2]]"#, &strict, true).expect("null");
        assert!(x[1].is_nan());
        assert!(read(Media::Csv, "1,,2\n", &strict, false).is_err());
    }

    /// A model that fills gaps takes an empty CSV field (a headerless first row included) and
    /// a JSON `null` as NaN; one that does not refuses both.
    #[test]
    fn gaps_are_taken_only_by_a_model_that_fills_them() {
        let gaps = |media: Media, body: &str| {
            parse(
                media,
                body.as_bytes(),
                cols(&features(), true),
                Limits::default(),
            )
            .map(|b| b.x.iter().map(|v| v.is_nan()).collect::<Vec<_>>())
            .map_err(|r| r.message)
        };
        let gap = [false, true, false, true, false, false];
        assert_eq!(gaps(Media::Csv, "1,,3\n,5,6\n"), Ok(gap.to_vec()));
        assert_eq!(gaps(Media::Csv, "a,b,c\n1,,3\n,5,6\n"), Ok(gap.to_vec()));
        assert_eq!(
            gaps(
                Media::Json,
                r#"{"instances": [[1, null, 3], {"a": null, "b": 5, "c": 6}]}"#
            ),
            Ok(gap.to_vec())
        );
        for (media, body) in [
            (Media::Csv, "a,b,c\n1,,3\n"),
            (Media::Json, r#"[[1, null, 3]]"#),
        ] {
            let refused = parse(
                media,
                body.as_bytes(),
                cols(&features(), false),
                Limits::default(),
            )
            .expect_err("no gaps");
            assert_eq!(refused.status, 400);
        }
    }

    #[test]
    fn positional_named_and_split_rows_give_the_same_matrix() {
        let want = Batch {
            rows: 2,
            x: vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0],
        };
        assert_eq!(
            json(r#"{"instances": [[1, 2, 3], [4, 5.5, -6]]}"#),
            Ok(want.clone())
        );
        assert_eq!(
            json(r#"{"instances": [{"c": 3, "a": 1, "b": 2}, {"a": 4, "b": 5.5, "c": -6}]}"#),
            Ok(want.clone())
        );
        assert_eq!(
            json(r#"{"data": [[1, 2, 3], [4, 5.5, -6]], "columns": ["a", "b", "c"]}"#),
            Ok(want.clone())
        );
        let csv = "a,b,c\n1,2,3\n4,5.5,-6\n";
        assert_eq!(
            parse(
                Media::Csv,
                csv.as_bytes(),
                cols(&features(), false),
                Limits::default()
            ),
            Ok(want.clone())
        );
        // What MLflow's clients send.
        for mlflow in [
            r#"{"dataframe_split": {"index": [7, 8], "columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5.5, -6]]}}"#,
            r#"{"dataframe_split": {"data": [[1, 2, 3], [4, 5.5, -6]], "columns": ["a", "b", "c"]}}"#,
            r#"{"dataframe_records": [{"c": 3, "a": 1, "b": 2}, {"a": 4, "b": 5.5, "c": -6}]}"#,
            r#"{"inputs": [[1, 2, 3], [4, 5.5, -6]]}"#,
        ] {
            assert_eq!(json(mlflow), Ok(want.clone()), "{mlflow}");
        }
    }

    #[test]
    fn mlflow_bodies_are_held_to_the_same_rules() {
        let m =
            refused(r#"{"dataframe_split": {"columns": ["a", "c", "b"], "data": [[1, 2, 3]]}}"#);
        assert!(m.contains("`c`"), "{m}");
        let m = refused(r#"{"dataframe_split": {"data": [[1, 2, 3]]}}"#);
        assert!(m.contains("needs `columns`"), "{m}");
        let m = refused(
            r#"{"dataframe_split": {"columns": ["a", "b", "c"], "instances": [[1, 2, 3]]}}"#,
        );
        assert!(m.contains("dataframe_split.instances"), "{m}");
        let m = refused(
            r#"{"instances": [[1, 2, 3]], "dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}}"#,
        );
        assert!(m.contains("once"), "{m}");
        let m = refused(
            r#"{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}, "data": [[1, 2, 3]]}"#,
        );
        assert!(m.contains("once"), "{m}");
        let m = refused(r#"{"dataframe_records": [{"a": 1, "b": 2}]}"#);
        assert!(m.contains("`c`"), "{m}");
    }

    /// The values the `csv` crate and the shared number parser read from `body`.
    fn by_csv_crate(body: &[u8]) -> Vec<f32> {
        let mut reader = csv::Reader::from_reader(body);
        reader
            .byte_records()
            .flat_map(|r| {
                r.expect("record")
                    .iter()
                    .map(|f| mlops_data::number::parse(f).expect("number"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn csv_bodies_read_as_the_csv_crate_reads_them() {
        for body in [
            &b"a,b,c\n1,2,3\n4,5,6\n"[..],
            b"a,b,c\r\n0,16,9999999\r\n12345678,00,7",
            b"\xef\xbb\xbfa,b,c\n1.5,-2,3e2\n\n 4 ,5,6\n",
            b"\"a\",b,\"c\"\n\"1\",2,\"3.25\"\n7,8,9\n",
            b"a,b,c\n1,2,3\r4,5,6\n",
        ] {
            let batch = parse(
                Media::Csv,
                body,
                cols(&features(), false),
                Limits::default(),
            )
            .unwrap_or_else(|r| panic!("{}: {}", String::from_utf8_lossy(body), r.message));
            let want = by_csv_crate(body);
            assert_eq!(batch.rows * 3, want.len());
            assert_eq!(batch.x, want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn csv_mistakes_name_their_line() {
        let refused = |body: &[u8]| {
            parse(
                Media::Csv,
                body,
                cols(&features(), false),
                Limits::default(),
            )
            .expect_err("refused")
            .message
        };
        let m = refused(b"a,b,c\n1,2,3\n\n1,2\n");
        assert!(m.contains("CSV line 4 has 2 fields"), "{m}");
        let m = refused(b"a,b,c\n1,2,3\n1,,3\n");
        assert!(m.contains("line 3, column `b`: `` is not"), "{m}");
        let m = refused(b"a,b,c\n1,2,99999999999999999999999999999999999999999\n");
        assert!(m.contains("line 2, column `c`"), "{m}");
        assert!(refused(b"").contains("the CSV body is empty"));
        assert!(refused(b"\"a\",\"b\xff\",c\n1,2,3\n").contains("not UTF-8"));
    }

    #[test]
    fn column_mistakes_are_named() {
        let m = refused(r#"{"columns": ["a", "b"], "data": [[1, 2]]}"#);
        assert!(m.contains("column `c` is missing"), "{m}");
        let m = refused(r#"{"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}"#);
        assert!(m.contains("column `d` is not one the model takes"), "{m}");
        let m = refused(r#"{"columns": ["a", "c", "b"], "data": [[1, 2, 3]]}"#);
        assert!(
            m.contains("column `c` is at position 2 where the model expects `b`"),
            "{m}"
        );
        let m = refused(r#"{"instances": [{"a": 1, "b": 2}]}"#);
        assert!(m.contains("row 1: column `c` is missing"), "{m}");
        let m = refused(r#"{"instances": [{"a": 1, "b": 2, "c": 3, "z": 0}]}"#);
        assert!(m.contains("column `z` is not one"), "{m}");
        let csv = parse(
            Media::Csv,
            b"a,c,b\n1,2,3\n",
            cols(&features(), false),
            Limits::default(),
        );
        let m = csv.expect_err("reordered").message;
        assert!(m.contains("column `c` is at position 2"), "{m}");
        let csv = parse(
            Media::Csv,
            b"a,b,c,label\n1,2,3,x\n",
            cols(&features(), false),
            Limits::default(),
        );
        assert!(csv.expect_err("extra").message.contains("`label`"));
    }

    #[test]
    fn malformed_values_and_shapes_are_refused_with_the_row() {
        let m = refused(r#"{"instances": [[1, 2, 3], [1, 2]]}"#);
        assert!(m.contains("row 2 has 2 values; the model takes 3"), "{m}");
        let m = refused(r#"{"instances": [[1, 2, 3, 4]]}"#);
        assert!(m.contains("more than 3 values"), "{m}");
        let m = refused(r#"{"instances": [[1, "2", 3]]}"#);
        assert!(
            m.contains("row 1, column `b`: expected a number, found the string"),
            "{m}"
        );
        let m = refused(r#"{"instances": [[1, null, 3]]}"#);
        assert!(m.contains("found null"), "{m}");
        let m = refused(r#"{"instances": [[1, 2, 1e300]]}"#);
        assert!(m.contains("32-bit float range"), "{m}");
        assert!(refused(r#"{"instances": [[1, 2, 3]]"#).contains("EOF"));
        assert!(refused(r#"{"rows": []}"#).contains("unknown key `rows`"));
        assert!(refused("3").contains("an array of rows"));
        assert!(refused(r#"{"instances": []}"#).contains("no rows"));
        assert!(refused(r#"{"data": [[1, 2, 3]]}"#).contains("needs `columns`"));
        let csv = parse(
            Media::Csv,
            b"a,b,c\n1,x,3\n",
            cols(&features(), false),
            Limits::default(),
        );
        let m = csv.expect_err("not a number").message;
        assert!(
            m.contains("line 2, column `b`: `x` is not a finite number"),
            "{m}"
        );
    }

    fn csv(body: &[u8], features: &[String]) -> Result<Batch, Rejection> {
        parse(Media::Csv, body, cols(features, false), Limits::default())
    }

    /// What SageMaker's own clients send: CSV without a header line and bare JSON arrays.
    #[test]
    fn headerless_csv_and_bare_arrays_are_rows() {
        let want = Batch {
            rows: 2,
            x: vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0],
        };
        let f = features();
        for body in [
            &b"1,2,3\n4,5.5,-6\n"[..],
            b"1,2,3\n4,5.5,-6",
            b"1,2,3\r\n4,5.5,-6\r\n",
            b"a,b,c\n1,2,3\n4,5.5,-6\n",
            b" a , b ,c\n1,2,3\n4,5.5,-6\n",
        ] {
            assert_eq!(csv(body, &f), Ok(want.clone()), "{body:?}");
        }
        assert_eq!(json("[[1, 2, 3], [4, 5.5, -6]]"), Ok(want.clone()));
        assert_eq!(
            json(r#"[{"c": 3, "a": 1, "b": 2}, {"a": 4, "b": 5.5, "c": -6}]"#),
            Ok(want.clone())
        );
        let one = Batch {
            rows: 1,
            x: vec![1.0, 2.0, 3.0],
        };
        assert_eq!(json("[1, 2, 3]"), Ok(one.clone()));
        assert_eq!(json("[[1, 2, 3]]"), Ok(one.clone()));
        assert_eq!(csv(b"1,2,3", &f), Ok(one));
        // Features named by numbers: a first line naming them is the header, any other is a row.
        let numeric: Vec<String> = vec!["0".into(), "1".into(), "2".into()];
        assert_eq!(csv(b"0,1,2\n3,4,5\n", &numeric).map(|b| b.rows), Ok(1));
        assert_eq!(csv(b"3,4,5\n0,1,2\n", &numeric).map(|b| b.rows), Ok(2));
        assert_eq!(csv(b"0,2,1\n3,4,5\n", &numeric).map(|b| b.rows), Ok(2));
    }

    #[test]
    fn headerless_and_bare_mistakes_are_named() {
        let f = features();
        let m = csv(b"1,,3\n4,5,6\n", &f).expect_err("gap").message;
        assert!(
            m.contains("CSV line 1 is read as a header because its field 2 (``) is not a number"),
            "{m}"
        );
        let m = csv(b"1,2\n3,4\n", &f).expect_err("narrow").message;
        assert!(
            m.contains("CSV line 1 has 2 fields; the model takes 3 (a, b, c)"),
            "{m}"
        );
        let m = csv(b"1,2,3\n4,x,6\n", &f).expect_err("word").message;
        assert!(m.contains("line 2, column `b`: `x` is not"), "{m}");
        // A header with a mistake is still a header, never data.
        let m = csv(b"a,c,b\n1,2,3\n", &f).expect_err("order").message;
        assert!(m.starts_with("column `c` is at position 2"), "{m}");
        let m = refused("[1, 2]");
        assert!(m.contains("row 1 has 2 values; the model takes 3"), "{m}");
        let m = refused("[1, 2, 3, 4]");
        assert!(m.contains("row 1 has more than 3 values"), "{m}");
        let m = refused(r#"["1", 2, 3]"#);
        assert!(
            m.contains("row 1, column `a`: expected a number, found the string"),
            "{m}"
        );
        let m = refused("[[1, 2, 3], 4]");
        assert!(m.contains("row 2"), "{m}");
        let m = refused("[1, [2], 3]");
        assert!(
            m.contains("row 1, column `b`: expected a number, found an array"),
            "{m}"
        );
        assert!(refused("[]").contains("no rows"));
        let limits = Limits {
            max_rows: 2,
            ..Limits::default()
        };
        let r = parse(
            Media::Json,
            b"[[1,2,3],[1,2,3],[1,2,3]]",
            cols(&f, false),
            limits,
        );
        assert_eq!(r.map_err(|r| r.status), Err(413));
        let r = parse(
            Media::Csv,
            b"1,2,3\n1,2,3\n1,2,3\n",
            cols(&f, false),
            limits,
        );
        assert_eq!(r.map_err(|r| r.status), Err(413));
        let r = parse(Media::Csv, b"1,2,3\n1,2,3\n", cols(&f, false), limits);
        assert_eq!(r.map(|b| b.rows), Ok(2));
    }

    #[test]
    fn limits_answer_413() {
        let limits = Limits {
            max_body_bytes: 64,
            max_rows: 2,
            ..Limits::default()
        };
        let r = parse(
            Media::Json,
            br#"{"instances": [[1, 2, 3], [1, 2, 3], [1, 2, 3]]}"#,
            cols(&features(), false),
            limits,
        )
        .expect_err("too many rows");
        assert_eq!(r.status, 413, "{}", r.message);
        let ok = parse(
            Media::Json,
            br#"{"instances": [[1, 2, 3], [1, 2, 3]]}"#,
            cols(&features(), false),
            limits,
        );
        assert_eq!(ok.map(|b| b.rows), Ok(2));
        let big = vec![b' '; 65];
        assert_eq!(
            parse(Media::Json, &big, cols(&features(), false), limits).map_err(|r| r.status),
            Err(413)
        );
        let csv = parse(
            Media::Csv,
            b"a,b,c\n1,2,3\n1,2,3\n1,2,3\n",
            cols(&features(), false),
            limits,
        );
        assert_eq!(csv.map_err(|r| r.status), Err(413));
    }

    #[test]
    fn media_types() {
        assert_eq!(Media::of(None), Ok(Media::Json));
        assert_eq!(Media::of(Some("text/csv; charset=utf-8")), Ok(Media::Csv));
        assert_eq!(Media::of(Some("Application/JSON")), Ok(Media::Json));
        assert_eq!(
            Media::of(Some("application/x-npy")).map_err(|r| r.status),
            Err(415)
        );
    }

    #[test]
    fn answer_media_follow_accept_in_order() {
        assert_eq!(answer_media(None), Some(Media::Json));
        assert_eq!(answer_media(Some("*/*")), Some(Media::Json));
        assert_eq!(answer_media(Some("text/csv")), Some(Media::Csv));
        assert_eq!(
            answer_media(Some("application/x-npy, text/csv;q=0.9, application/json")),
            Some(Media::Csv)
        );
        assert_eq!(
            answer_media(Some("application/json, text/csv")),
            Some(Media::Json)
        );
        assert_eq!(answer_media(Some("application/x-npy")), None);
    }
}
