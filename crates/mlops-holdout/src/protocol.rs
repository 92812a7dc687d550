//! The wire protocols the holdout test speaks: how a batch of rows is written into a request and
//! how the predictions are read back from the answer.
//!
//! - `mlops`: `POST /invocations`, CSV with a header line; answers in CSV lines or mlops' JSON.
//! - `sagemaker`: `POST /invocations`, CSV without a header (the columns are the features in
//!   order), `Accept: text/csv`: what SageMaker's own containers (scikit-learn, XGBoost, the
//!   inference toolkit) and Batch Transform take.
//! - `v2`: the Open Inference Protocol, `POST /v2/models/NAME/infer` with one `[rows, features]`
//!   tensor: MLServer, KServe, Triton, and `mlops serve`.
//! - `mlflow`: `POST /invocations` with `{"dataframe_split": {"columns": [...], "data": [...]}}`,
//!   what `mlflow models serve` takes.
//!
//! Every answer form is read the same way (`read`): CSV lines, `{"predictions": [...]}`, a bare
//! array, or V2 `outputs`; a prediction is a label or a value, bare, in a one-element array, or
//! in an object (its `label` for a classifier, its `value` for a regressor, else its only field).

use hyper::body::Bytes;
use mlops_data::data;
use serde::Deserialize;
use serde_json::Value;

/// How requests are written and answers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Mlops,
    SageMaker,
    V2,
    Mlflow,
}

impl Protocol {
    /// The names `--protocol` takes, in this order.
    pub const NAMES: [&'static str; 4] = ["mlops", "sagemaker", "v2", "mlflow"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "mlops" => Some(Protocol::Mlops),
            "sagemaker" => Some(Protocol::SageMaker),
            "v2" => Some(Protocol::V2),
            "mlflow" => Some(Protocol::Mlflow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Mlops => "mlops",
            Protocol::SageMaker => "sagemaker",
            Protocol::V2 => "v2",
            Protocol::Mlflow => "mlflow",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Mlops | Protocol::SageMaker => "text/csv",
            Protocol::V2 | Protocol::Mlflow => "application/json",
        }
    }

    /// What the request's `Accept` asks for. SageMaker's inference toolkit refuses an `Accept`
    /// it does not know as a whole, so that one names a single type.
    pub fn accept(self) -> &'static str {
        match self {
            Protocol::Mlops => "text/csv, application/json",
            Protocol::SageMaker => "text/csv",
            Protocol::V2 | Protocol::Mlflow => "application/json",
        }
    }

    /// Whether the request carries JSON numbers (which the file's own text need not be: `.5`,
    /// `+1` and `1.` are CSV numbers but not JSON ones), so the values must be parsed.
    pub fn writes_json(self) -> bool {
        matches!(self, Protocol::V2 | Protocol::Mlflow)
    }
}

/// The V2 input tensor a request carries: its name and datatype, as the model's metadata
/// declares them (Triton checks both; MLServer and `mlops serve` take any name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    /// `FP32` or `FP64` (the values are the same numbers either way).
    pub datatype: &'static str,
}

impl Default for Tensor {
    fn default() -> Self {
        Tensor {
            name: "input-0".to_owned(),
            datatype: "FP32",
        }
    }
}

/// A V2 model's metadata (`GET /v2/models/NAME`), the part the test reads.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub inputs: Vec<TensorMetadata>,
}

#[derive(Debug, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
}

impl Metadata {
    /// The tensor to send: the model's one declared input (default when it declares none, as
    /// MLServer does without a `model-settings.json` signature).
    pub fn input(&self, width: usize) -> Result<Tensor, String> {
        match self.inputs.as_slice() {
            [] => Ok(Tensor::default()),
            [one] => {
                let datatype = match one.datatype.as_str() {
                    "FP32" => "FP32",
                    "FP64" => "FP64",
                    other => {
                        return Err(format!(
                            "the model's input `{}` is {other}; the holdout test sends the \
                             features as FP32 or FP64 numbers",
                            one.name
                        ));
                    }
                };
                Ok(Tensor {
                    name: one.name.clone(),
                    datatype,
                })
            }
            many => Err(format!(
                "the model declares {} inputs ({}); the holdout test sends one [rows, {width}] \
                 tensor of the features in order",
                many.len(),
                many.iter()
                    .map(|t| format!("`{}`", t.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Writes one batch's request body, row by row.
#[derive(Debug)]
pub struct Encoder {
    protocol: Protocol,
    /// What every body starts with: the CSV header, or the JSON up to the first value.
    head: Vec<u8>,
    /// The rows so far (CSV lines, or JSON values after `head`).
    rows_text: Vec<u8>,
    rows: usize,
    width: usize,
    tensor: Tensor,
    /// Per feature: its place among a row's categorical texts, when it is categorical.
    text_at: Vec<Option<usize>>,
    /// V2 for a model with categorical features: one tensor per feature (named after it), whose
    /// values so far are here.
    columns: Vec<Vec<u8>>,
    names: Vec<String>,
}

impl Encoder {
    pub fn new(protocol: Protocol, features: &[String], tensor: Tensor) -> Self {
        let head = match protocol {
            Protocol::Mlops => csv_header(features),
            Protocol::SageMaker | Protocol::V2 => Vec::new(),
            Protocol::Mlflow => {
                // Serialising a list of strings cannot fail.
                let columns = serde_json::to_string(features).unwrap_or_default();
                format!(r#"{{"dataframe_split":{{"columns":{columns},"data":["#).into_bytes()
            }
        };
        Encoder {
            protocol,
            head,
            rows_text: Vec::new(),
            rows: 0,
            width: features.len(),
            tensor,
            text_at: Vec::new(),
            columns: Vec::new(),
            names: features.to_vec(),
        }
    }

    /// This encoder, for a model whose features marked in `categorical` are categories: their
    /// text (never a code) is what a request carries.
    pub fn with_categorical(mut self, categorical: &[bool]) -> Self {
        let mut n = 0;
        self.text_at = categorical
            .iter()
            .map(|&c| {
                c.then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        if self.protocol == Protocol::V2 && categorical.iter().any(|&c| c) {
            self.columns = vec![Vec::new(); categorical.len()];
        }
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row. CSV takes the file's own text when there is one (every feature field
    /// was checked to be a number, and an mlops service reads it with the same parser as the
    /// offline reader); otherwise, and always in JSON, each value is written as the shortest
    /// text that reads back as the same `f32`.
    pub fn row(&mut self, row: &data::Row<'_>, number: &mut zmij::Buffer) {
        let out = &mut self.rows_text;
        match self.protocol {
            Protocol::Mlops | Protocol::SageMaker => {
                match &row.text {
                    Some(text) => match text.joined() {
                        Some(joined) => out.extend_from_slice(joined),
                        None => {
                            for (j, t) in text.iter().enumerate() {
                                if j > 0 {
                                    out.push(b',');
                                }
                                csv_field(out, t);
                            }
                        }
                    },
                    None if self.text_at.is_empty() => values(out, row.features, number, b""),
                    None => {
                        for (j, v) in row.features.iter().enumerate() {
                            if j > 0 {
                                out.push(b',');
                            }
                            match category(&self.text_at, row, j) {
                                Some(text) => csv_field(out, text.as_bytes()),
                                None => value(out, *v, number, b""),
                            }
                        }
                    }
                }
                out.push(b'\n');
            }
            Protocol::V2 if !self.columns.is_empty() => {
                for (j, (column, v)) in self.columns.iter_mut().zip(row.features).enumerate() {
                    if self.rows > 0 {
                        column.push(b',');
                    }
                    json_value(column, category(&self.text_at, row, j), *v, number);
                }
            }
            Protocol::V2 => {
                if self.rows > 0 {
                    out.push(b',');
                }
                values(out, row.features, number, b"null");
            }
            Protocol::Mlflow => {
                if self.rows > 0 {
                    out.push(b',');
                }
                out.push(b'[');
                if self.text_at.is_empty() {
                    values(out, row.features, number, b"null");
                } else {
                    for (j, v) in row.features.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        json_value(out, category(&self.text_at, row, j), *v, number);
                    }
                }
                out.push(b']');
            }
        }
        self.rows += 1;
    }

    /// The body of the rows written since the last call; the encoder starts a new batch.
    pub fn take(&mut self) -> Bytes {
        let mut body = Vec::with_capacity(self.head.len() + self.rows_text.len() + 96);
        body.extend_from_slice(&self.head);
        match self.protocol {
            Protocol::Mlops | Protocol::SageMaker => body.extend_from_slice(&self.rows_text),
            Protocol::V2 if !self.columns.is_empty() => {
                // One tensor per feature, a category's BYTES (what `mlops serve` and MLServer's
                // pandas codec take for a data frame with text columns).
                body.extend_from_slice(br#"{"inputs":["#);
                for (j, (column, name)) in self.columns.iter_mut().zip(&self.names).enumerate() {
                    if j > 0 {
                        body.push(b',');
                    }
                    let datatype = if matches!(self.text_at.get(j), Some(Some(_))) {
                        "BYTES"
                    } else {
                        "FP32"
                    };
                    // Serialising a string cannot fail.
                    let name = serde_json::to_string(name).unwrap_or_default();
                    body.extend_from_slice(
                        format!(
                            r#"{{"name":{name},"shape":[{}],"datatype":"{datatype}","data":["#,
                            self.rows
                        )
                        .as_bytes(),
                    );
                    body.append(column);
                    body.extend_from_slice(b"]}");
                }
                body.extend_from_slice(b"]}");
            }
            Protocol::V2 => {
                // The name is JSON-escaped by serde; serialising a string cannot fail.
                let name = serde_json::to_string(&self.tensor.name).unwrap_or_default();
                body.extend_from_slice(
                    format!(
                        r#"{{"inputs":[{{"name":{name},"shape":[{},{}],"datatype":"{}","data":["#,
                        self.rows, self.width, self.tensor.datatype
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&self.rows_text);
                body.extend_from_slice(b"]}]}");
            }
            Protocol::Mlflow => {
                body.extend_from_slice(&self.rows_text);
                body.extend_from_slice(b"]}}");
            }
        }
        self.rows_text.clear();
        self.rows = 0;
        Bytes::from(body)
    }
}

/// The values, comma-separated, each the shortest text that reads back as the same `f32`; a
/// missing value (NaN, read where the model fills gaps) as `gap` (an empty CSV field, JSON's
/// `null`).
fn values(out: &mut Vec<u8>, features: &[f32], number: &mut zmij::Buffer, gap: &[u8]) {
    for (j, v) in features.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        value(out, *v, number, gap);
    }
}

/// One value of [`values`].
fn value(out: &mut Vec<u8>, v: f32, number: &mut zmij::Buffer, gap: &[u8]) {
    if v.is_nan() {
        out.extend_from_slice(gap);
    } else {
        out.extend_from_slice(number.format_finite(v).as_bytes());
    }
}

/// One feature as a JSON value: a category's text as a string (`null` when missing), else the
/// number (`null` for a gap).
fn json_value(out: &mut Vec<u8>, text: Option<&str>, v: f32, number: &mut zmij::Buffer) {
    match text {
        Some("") => out.extend_from_slice(b"null"),
        // Serialising a string cannot fail.
        Some(text) => {
            out.extend_from_slice(serde_json::to_string(text).unwrap_or_default().as_bytes())
        }
        None => value(out, v, number, b"null"),
    }
}

/// Feature `j`'s text when it is categorical.
fn category<'r>(text_at: &[Option<usize>], row: &'r data::Row<'_>, j: usize) -> Option<&'r str> {
    let at = (*text_at.get(j)?)?;
    Some(row.categories.get(at).map_or("", String::as_str))
}

/// One CSV field, quoted when its text holds a comma, a quote or a line break (a category's
/// text may; a number's never does).
fn csv_field(out: &mut Vec<u8>, text: &[u8]) {
    if text
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in text {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text);
    }
}

/// The CSV header: the feature names in order (quoted by the csv writer where CSV needs it).
fn csv_header(features: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.write_record(features);
    writer.into_inner().unwrap_or_default()
}

/// One prediction as an answer gives it, before it is matched to the model's classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Text(std::borrow::Cow<'a, str>),
    Number(f64),
}

/// The field of a prediction object that holds it: `label` for a classifier, `value` for a
/// regressor (mlops' answers carry both kinds of object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Label,
    Value,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Label => "label",
            Key::Value => "value",
        }
    }
}

/// An answer's predictions, in order, whatever its form: CSV (one prediction per line, its first
/// field) or any JSON answer [`json_predictions`] reads. What `mlops monitor` reads captured
/// answers with; the holdout test's own reader avoids these allocations.
pub fn predictions(
    content_type: Option<&str>,
    body: &[u8],
    key: Key,
) -> Result<Vec<Field<'static>>, String> {
    let csv = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return json_predictions(body, key);
    }
    let mut out = Vec::new();
    csv_first_fields(body, |field| {
        out.push(Field::Text(
            String::from_utf8_lossy(field).into_owned().into(),
        ));
        Ok(())
    })?;
    Ok(out)
}

/// The first field of each record of a CSV answer, in order (one prediction per line), as
/// bytes. A body without quotes (the usual case) is split by hand, with no reader to build.
pub fn csv_first_fields(
    body: &[u8],
    mut each: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    if !body.contains(&b'"') {
        let text = body.strip_suffix(b"\n").unwrap_or(body);
        if text.is_empty() {
            return Ok(());
        }
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            each(line.split(|b| *b == b',').next().unwrap_or_default())?;
        }
        return Ok(());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => each(record.get(0).unwrap_or_default())?,
            Ok(false) => return Ok(()),
            Err(e) => return Err(format!("the CSV answer is malformed: {e}")),
        }
    }
}

/// A JSON answer's predictions, in order.
pub fn json_predictions(body: &[u8], key: Key) -> Result<Vec<Field<'static>>, String> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the service's answer is not JSON: {e}"))?;
    match answer {
        Value::Array(items) => items.iter().map(|i| field(i, key)).collect(),
        Value::Object(mut o) => {
            if let Some(outputs) = o.remove("outputs") {
                return v2_outputs(outputs, key);
            }
            match o.remove("predictions") {
                Some(Value::Array(items)) => items.iter().map(|i| field(i, key)).collect(),
                Some(_) => Err("the answer's `predictions` is not a list".to_owned()),
                None => Err(format!(
                    "the answer has neither `predictions` nor V2 `outputs` (its keys: {})",
                    o.keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        _ => Err("the service's answer is neither a list nor an object of predictions".to_owned()),
    }
}

/// The names of the output holding the predictions, in the order they are looked for:
/// MLServer's runtimes (`predict`), skl2onnx's classifiers (`output_label`, `label`) and
/// regressors (`variable`), then common ones.
const OUTPUT_NAMES: [&str; 6] = [
    "predict",
    "output_label",
    "label",
    "variable",
    "predictions",
    "output",
];

#[derive(Debug, Deserialize)]
struct Output {
    name: String,
    #[serde(default)]
    shape: Vec<u64>,
    data: Value,
}

/// The predictions in V2 `outputs`: the output named as a prediction (or the only one), one
/// value per row.
fn v2_outputs(outputs: Value, key: Key) -> Result<Vec<Field<'static>>, String> {
    let outputs: Vec<Output> = serde_json::from_value(outputs)
        .map_err(|e| format!("the answer's V2 `outputs` are malformed: {e}"))?;
    let chosen = OUTPUT_NAMES
        .iter()
        .find_map(|n| outputs.iter().find(|o| o.name == *n))
        .or(match outputs.as_slice() {
            [one] => Some(one),
            _ => None,
        });
    let Some(output) = chosen else {
        return Err(format!(
            "the answer has {} outputs ({}) and none is named as predictions ({})",
            outputs.len(),
            outputs
                .iter()
                .map(|o| format!("`{}`", o.name))
                .collect::<Vec<_>>()
                .join(", "),
            OUTPUT_NAMES.join(", ")
        ));
    };
    let mut flat = Vec::new();
    flatten(&output.data, &mut flat);
    if let [_, per_row, ..] = output.shape.as_slice()
        && output.shape.iter().skip(1).product::<u64>() != 1
    {
        return Err(format!(
            "the output `{}` has shape {:?}: {per_row} values per row where one prediction \
             belongs",
            output.name, output.shape
        ));
    }
    flat.into_iter().map(|v| field(v, key)).collect()
}

/// The leaves of a (possibly nested, row-major) V2 data array.
fn flatten<'v>(data: &'v Value, out: &mut Vec<&'v Value>) {
    match data {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// One prediction: a label or a number, bare, in a one-element list, or in an object (its `key`
/// field, else its only field unless that is the other key's).
fn field(v: &Value, key: Key) -> Result<Field<'static>, String> {
    match v {
        Value::String(s) => Ok(Field::Text(s.clone().into())),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(Field::Text(i.to_string().into())),
            (_, Some(u), _) => Ok(Field::Text(u.to_string().into())),
            (_, _, Some(f)) => Ok(Field::Number(f)),
            _ => Err(format!(
                "the prediction {n} is not a number this reader takes"
            )),
        },
        Value::Bool(b) => Ok(Field::Text(if *b { "True" } else { "False" }.into())),
        Value::Array(items) => match items.as_slice() {
            [one] => field(one, key),
            _ => Err(format!(
                "a row's prediction is a list of {} values; one label or value per row was \
                 expected",
                items.len()
            )),
        },
        Value::Object(o) => {
            let other = match key {
                Key::Label => "value",
                Key::Value => "label",
            };
            let one = o.get(key.name()).or_else(|| match o.iter().next() {
                Some((k, v)) if o.len() == 1 && k != other => Some(v),
                _ => None,
            });
            match one {
                Some(v) => field(v, key),
                None => Err(format!(
                    "a row's prediction is an object with fields {} and no `{}`; is this the \
                     right model?",
                    o.keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    key.name()
                )),
            }
        }
        Value::Null => Err("a row's prediction is null".to_owned()),
    }
}

impl Field<'_> {
    /// The field as a class label's text: integral numbers without a fraction (`1.0` is the
    /// class `1`, as a float array of class indices gives it).
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Field::Text(t) => std::borrow::Cow::Borrowed(t.as_ref()),
            Field::Number(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                std::borrow::Cow::Owned(format!("{}", *f as i64))
            }
            Field::Number(f) => std::borrow::Cow::Owned(f.to_string()),
        }
    }

    /// The field as a regression value.
    pub fn value(&self) -> Option<f32> {
        match self {
            Field::Text(t) => mlops_data::number::parse(t.as_bytes()),
            Field::Number(f) => Some(*f as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        vec!["a".to_owned(), "b c".to_owned()]
    }

    /// A categorical feature is sent as its text (never its code): quoted in CSV when it holds
    /// a comma or a quote, a JSON string in MLflow's body, a missing one empty or `null`.
    #[test]
    fn categories_are_sent_as_their_text() {
        let body = |protocol: Protocol| {
            let mut e = Encoder::new(protocol, &features(), Tensor::default())
                .with_categorical(&[false, true]);
            let mut n = zmij::Buffer::new();
            for (x, text) in [
                ([1.5, 2.0], "pro, \"annual\""),
                ([2.0, f32::NAN], ""),
                ([f32::NAN, 0.0], "basic"),
            ] {
                let categories = [text.to_owned()];
                e.row(
                    &data::Row {
                        line: 2,
                        features: &x,
                        label: "x",
                        text: None,
                        categories: &categories,
                    },
                    &mut n,
                );
            }
            String::from_utf8(e.take().to_vec()).expect("utf-8")
        };
        assert_eq!(
            body(Protocol::Mlops),
            "a,b c\n1.5,\"pro, \"\"annual\"\"\"\n2.0,\n,basic\n"
        );
        assert_eq!(
            body(Protocol::V2),
            r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","data":[1.5,2.0,null]},{"name":"b c","shape":[3],"datatype":"BYTES","data":["pro, \"annual\"",null,"basic"]}]}"#
        );
        assert_eq!(
            body(Protocol::Mlflow),
            r#"{"dataframe_split":{"columns":["a","b c"],"data":[[1.5,"pro, \"annual\""],[2.0,null],[null,"basic"]]}}"#
        );
    }

    fn encode(protocol: Protocol, rows: &[[f32; 2]]) -> String {
        let mut e = Encoder::new(protocol, &features(), Tensor::default());
        let mut n = zmij::Buffer::new();
        for r in rows {
            e.row(
                &data::Row {
                    line: 2,
                    features: r,
                    label: "x",
                    text: None,
                    categories: &[],
                },
                &mut n,
            );
        }
        assert_eq!(e.rows(), rows.len());
        let body = e.take();
        assert_eq!(e.rows(), 0, "a new batch starts empty");
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    #[test]
    fn each_protocol_writes_its_own_body() {
        let rows = [[0.1f32, -2.0], [1e-7, 3.5]];
        assert_eq!(
            encode(Protocol::Mlops, &rows),
            "a,b c\n0.1,-2.0\n1e-7,3.5\n"
        );
        assert_eq!(encode(Protocol::SageMaker, &rows), "0.1,-2.0\n1e-7,3.5\n");
        let v2: Value = serde_json::from_str(&encode(Protocol::V2, &rows)).expect("JSON");
        assert_eq!(
            v2,
            serde_json::json!({"inputs": [{"name": "input-0", "shape": [2, 2],
                "datatype": "FP32", "data": [0.1, -2.0, 1e-7, 3.5]}]})
        );
        let mlflow: Value = serde_json::from_str(&encode(Protocol::Mlflow, &rows)).expect("JSON");
        assert_eq!(
            mlflow,
            serde_json::json!({"dataframe_split": {"columns": ["a", "b c"],
                "data": [[0.1, -2.0], [1e-7, 3.5]]}})
        );
        // The encoder is reusable: the second batch has the head again.
        let mut e = Encoder::new(Protocol::Mlflow, &features(), Tensor::default());
        let mut n = zmij::Buffer::new();
        for _ in 0..2 {
            e.row(
                &data::Row {
                    line: 2,
                    features: &[1.0, 2.0],
                    label: "x",
                    text: None,
                    categories: &[],
                },
                &mut n,
            );
            let b = e.take();
            let v: Value = serde_json::from_slice(&b).expect("JSON");
            assert_eq!(
                v["dataframe_split"]["data"],
                serde_json::json!([[1.0, 2.0]])
            );
        }
    }

    #[test]
    fn the_v2_input_comes_from_the_metadata() {
        let m: Metadata = serde_json::from_str(
            r#"{"name": "m", "inputs": [{"name": "float_input", "datatype": "FP64", "shape": [-1, 2]}]}"#,
        )
        .expect("metadata");
        assert_eq!(
            m.input(2),
            Ok(Tensor {
                name: "float_input".to_owned(),
                datatype: "FP64"
            })
        );
        let none: Metadata = serde_json::from_str(r#"{"name": "m"}"#).expect("metadata");
        assert_eq!(none.input(2), Ok(Tensor::default()));
        let ints: Metadata =
            serde_json::from_str(r#"{"inputs": [{"name": "x", "datatype": "INT64"}]}"#)
                .expect("metadata");
        assert!(ints.input(2).expect_err("INT64").contains("INT64"));
        let two: Metadata = serde_json::from_str(
            r#"{"inputs": [{"name": "a", "datatype": "FP32"}, {"name": "b", "datatype": "FP32"}]}"#,
        )
        .expect("metadata");
        let m = two.input(2).expect_err("two inputs");
        assert!(m.contains("`a`, `b`") && m.contains("[rows, 2]"), "{m}");
    }

    fn labels(body: &str) -> Result<Vec<String>, String> {
        json_predictions(body.as_bytes(), Key::Label)
            .map(|f| f.iter().map(|f| f.label().into_owned()).collect())
    }

    #[test]
    fn every_answer_form_gives_one_prediction_per_row() {
        let want = Ok(vec!["1".to_owned(), "0".to_owned(), "cat".to_owned()]);
        assert_eq!(labels(r#"{"predictions": [1, 0, "cat"]}"#), want);
        assert_eq!(labels(r#"[1.0, 0, "cat"]"#), want);
        assert_eq!(labels(r#"[[1], [0], ["cat"]]"#), want);
        assert_eq!(
            labels(
                r#"{"predictions": [{"label": 1, "probabilities": [0.1, 0.9]}, {"0": 0}, {"class": "cat"}]}"#
            ),
            want
        );
        // V2: the `predict` output, whichever comes first; nested data is row-major.
        assert_eq!(
            labels(
                r#"{"model_name": "m", "outputs": [
                    {"name": "predict_proba", "shape": [3, 2], "datatype": "FP64", "data": [1, 0, 0, 1, 1, 0]},
                    {"name": "predict", "shape": [3, 1], "datatype": "BYTES", "data": [["1"], ["0"], ["cat"]]}]}"#
            ),
            want
        );
        assert_eq!(
            labels(
                r#"{"outputs": [{"name": "y", "shape": [3], "datatype": "INT64", "data": [1, 0, 7]}]}"#
            ),
            Ok(vec!["1".to_owned(), "0".to_owned(), "7".to_owned()])
        );
        let values = json_predictions(
            br#"{"predictions": [1.5, -2, {"value": "3.25"}]}"#,
            Key::Value,
        )
        .expect("values");
        assert_eq!(
            values.iter().map(Field::value).collect::<Vec<_>>(),
            [Some(1.5), Some(-2.0), Some(3.25)]
        );
    }

    #[test]
    fn answers_that_are_not_one_prediction_per_row_say_why() {
        let m = labels(r#"{"outputs": [{"name": "a", "shape": [1], "data": [1]}, {"name": "b", "shape": [1], "data": [1]}]}"#)
            .expect_err("two unnamed outputs");
        assert!(m.contains("`a`, `b`") && m.contains("predict"), "{m}");
        let m = labels(
            r#"{"outputs": [{"name": "predict_proba", "shape": [2, 2], "data": [1, 0, 0, 1]}]}"#,
        )
        .expect_err("probabilities");
        assert!(m.contains("2 values per row"), "{m}");
        let m = labels(r#"{"predictions": [[0.1, 0.9]]}"#).expect_err("a list per row");
        assert!(m.contains("list of 2 values"), "{m}");
        let m = labels(r#"{"predictions": [{"a": 1, "b": 2}]}"#).expect_err("an object");
        assert!(m.contains("`a`, `b`"), "{m}");
        let m = json_predictions(br#"[{"label": "3"}]"#, Key::Value).expect_err("a label");
        assert!(m.contains("no `value`"), "{m}");
        let m = labels(r#"{"result": [1]}"#).expect_err("no predictions");
        assert!(m.contains("`result`"), "{m}");
        assert!(labels("[null]").expect_err("null").contains("null"));
        assert!(
            labels("not json")
                .expect_err("not JSON")
                .contains("not JSON")
        );
    }
}
