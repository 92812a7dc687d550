//! The Open Inference Protocol (KServe's "V2" protocol) over the same predictor: the request's
//! input tensors into a [`Batch`], the predictions into output tensors, the model's metadata.
//!
//! Inputs, either form (README, "Serving"):
//! - one tensor of shape `[rows, features]` (any name), values in the signature's order;
//! - one tensor per feature, named after it, each of shape `[rows]` or `[rows, 1]` (what
//!   MLServer's pandas codec sends for a data frame).
//!
//! `data` is row-major, flat or nested. Numeric datatypes only (`FP32`, `FP64`, `INT*`, `UINT*`):
//! the features are numbers. Outputs are named as MLServer's scikit-learn runtime names them, so
//! a client written for one reads the other: `predict` (the label, `BYTES`, or the value, `FP32`,
//! shape `[rows]`) and, for a classifier, `predict_proba` (`FP32`, `[rows, classes]`).

use std::collections::HashMap;

use mlops_artifacts::training::Signature;
use mlops_train::predict::Outputs;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Limits;
use crate::body::{Batch, Columns, Rejection};
use crate::server::label_of;
use mlops_data::categories::Column;
#[cfg(test)]
use mlops_data::categories::Vocabulary;

/// An inference request (`POST /v2/models/{name}/infer`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    pub inputs: Vec<InputTensor>,
    /// The outputs the client wants; all of them when absent.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Value>,
    pub data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// An inference response.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor<'a>>,
}

#[derive(Debug, Serialize)]
pub struct OutputTensor<'a> {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub datatype: &'static str,
    pub data: OutputData<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutputData<'a> {
    Labels(Vec<&'a str>),
    Numbers(&'a [f32]),
}

/// A model's name and version in the protocol: `NAME@VERSION` split at the `@` (the registry's
/// reference), or `model` when the service does not know its name.
pub fn name_and_version(model: Option<&str>) -> (&str, Option<&str>) {
    match model {
        Some(m) => match m.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (m, None),
        },
        None => ("model", None),
    }
}

/// The model metadata document (`GET /v2/models/{name}`).
pub fn metadata(name: &str, version: Option<&str>, signature: &Signature) -> Value {
    let width = signature.features.len();
    let mut outputs = vec![serde_json::json!({
        "name": "predict",
        "datatype": if signature.classes.is_some() { "BYTES" } else { "FP32" },
        "shape": [-1],
    })];
    if let Some(classes) = &signature.classes {
        outputs.push(serde_json::json!({
            "name": "predict_proba",
            "datatype": "FP32",
            "shape": [-1, classes.len()],
        }));
    }
    // A model with categorical features takes one tensor per feature (text is BYTES).
    let inputs = if signature.categorical.is_empty() {
        serde_json::json!([{"name": "input-0", "datatype": "FP32", "shape": [-1, width]}])
    } else {
        signature
            .features
            .iter()
            .map(|f| {
                let text = signature.categorical.iter().any(|c| &c.column == f);
                serde_json::json!({
                    "name": f,
                    "datatype": if text { "BYTES" } else { "FP32" },
                    "shape": [-1],
                })
            })
            .collect()
    };
    let mut parameters = serde_json::Map::new();
    parameters.insert("features".into(), serde_json::json!(signature.features));
    parameters.insert("classes".into(), serde_json::json!(signature.classes));
    if !signature.categorical.is_empty() {
        let categories = signature
            .categorical
            .iter()
            .map(|c| (c.column.clone(), serde_json::json!(c.values)))
            .collect::<serde_json::Map<String, Value>>();
        parameters.insert("categories".into(), Value::Object(categories));
    }
    serde_json::json!({
        "name": name,
        "versions": version.into_iter().collect::<Vec<_>>(),
        "platform": "mlops",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": parameters,
    })
}

fn bad(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        message: message.into(),
    }
}

/// Reads the request's inputs into rows of the signature's features.
pub fn batch(
    request: &InferRequest,
    columns: Columns<'_>,
    limits: Limits,
) -> Result<Batch, Rejection> {
    let features = columns.features;
    let width = features.len();
    let by_name: HashMap<&str, &InputTensor> = request
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    if by_name.len() != request.inputs.len() {
        return Err(bad("an input tensor name is given twice"));
    }
    let batch = match request.inputs.as_slice() {
        [] => return Err(bad("the request has no inputs")),
        // One tensor holds the whole matrix unless it is named after a feature and shaped like
        // one feature's column.
        [one] if !features.contains(&one.name) || (one.shape.len() == 2 && width > 1) => {
            if !columns.vocabulary.is_empty() {
                return Err(bad(format!(
                    "input `{}` is one tensor of every feature; this model has categorical \
                     features: send one tensor per feature, named after it (BYTES for a \
                     category)",
                    one.name
                )));
            }
            let rows = rows_of(one, width)?;
            check_rows(rows, limits)?;
            let x = numbers(one, rows * width, columns.gaps)?;
            Batch { rows, x }
        }
        _ => {
            // One tensor per feature.
            if let Some(extra) = request.inputs.iter().find(|t| !features.contains(&t.name)) {
                return Err(bad(format!(
                    "input `{}` is not a feature of the model; send one tensor of shape [rows, \
                     {width}], or one tensor per feature named after it",
                    extra.name
                )));
            }
            let mut values = Vec::with_capacity(width);
            let mut rows = None;
            for (i, f) in features.iter().enumerate() {
                let Some(t) = by_name.get(f.as_str()) else {
                    return Err(bad(format!(
                        "input `{f}` is missing (one tensor per feature)"
                    )));
                };
                let n = match t.shape.as_slice() {
                    [n] | [n, 1] if *n >= 0 => *n as usize,
                    _ => {
                        return Err(bad(format!(
                            "input `{f}` has shape {:?}; a feature's tensor is [rows] or [rows, 1]",
                            t.shape
                        )));
                    }
                };
                if *rows.get_or_insert(n) != n {
                    return Err(bad(format!(
                        "input `{f}` has {n} rows; the first feature's has {}",
                        rows.unwrap_or(0)
                    )));
                }
                check_rows(n, limits)?;
                values.push(match columns.vocabulary.column(i) {
                    Some(column) => categories(t, n, column, columns.gaps)?,
                    None => numbers(t, n, columns.gaps)?,
                });
            }
            let rows = rows.unwrap_or(0);
            let mut x = Vec::with_capacity(rows * width);
            for r in 0..rows {
                x.extend(values.iter().map(|c| c.get(r).copied().unwrap_or(f32::NAN)));
            }
            Batch { rows, x }
        }
    };
    if batch.rows == 0 {
        return Err(bad("the request has no rows"));
    }
    Ok(batch)
}

fn check_rows(rows: usize, limits: Limits) -> Result<(), Rejection> {
    if rows > limits.max_rows {
        return Err(Rejection {
            status: 413,
            message: format!(
                "{rows} rows in one request; the limit is {} (split them over several requests)",
                limits.max_rows
            ),
        });
    }
    Ok(())
}

/// The rows of a `[rows, width]` tensor (or `[rows]` for a one-feature model).
fn rows_of(t: &InputTensor, width: usize) -> Result<usize, Rejection> {
    match t.shape.as_slice() {
        [rows, w] if *rows >= 0 && *w == width as i64 => Ok(*rows as usize),
        [rows] if *rows >= 0 && width == 1 => Ok(*rows as usize),
        _ => Err(bad(format!(
            "input `{}` has shape {:?}; the model takes [rows, {width}] (or one tensor per \
             feature, named after it)",
            t.name, t.shape
        ))),
    }
}

/// The tensor's values, row-major, flattened: exactly `count` of them.
fn flat(t: &InputTensor, count: usize) -> Result<Vec<&Value>, Rejection> {
    let mut out = Vec::with_capacity(count);
    let mut stack = vec![&t.data];
    // Depth-first, left to right: a nested array reads in row-major order.
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            other => {
                if out.len() == count {
                    return Err(bad(format!(
                        "input `{}` has more values than its shape {:?} holds ({count})",
                        t.name, t.shape
                    )));
                }
                out.push(other);
            }
        }
    }
    if out.len() != count {
        return Err(bad(format!(
            "input `{}` has {} values; its shape {:?} needs {count}",
            t.name,
            out.len(),
            t.shape
        )));
    }
    Ok(out)
}

/// A categorical feature's tensor (`BYTES`, one string per row): the categories' codes. With
/// `gaps`, a `null` or an empty string is a missing value.
fn categories(
    t: &InputTensor,
    count: usize,
    column: &Column,
    gaps: bool,
) -> Result<Vec<f32>, Rejection> {
    if t.datatype != "BYTES" {
        return Err(bad(format!(
            "input `{}` is {}; it is a categorical feature: send BYTES, one string per row",
            t.name, t.datatype
        )));
    }
    flat(t, count)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(text) if !text.trim().is_empty() => column
                .code(text.trim())
                .map_err(|e| bad(format!("input `{}`, value {}: {e}", t.name, i + 1))),
            Value::Null | Value::String(_) if gaps => Ok(f32::NAN),
            other => Err(bad(format!(
                "input `{}`, value {}: expected a category (a string), found {}",
                t.name,
                i + 1,
                match other {
                    Value::String(_) => "an empty string",
                    other => kind(other),
                }
            ))),
        })
        .collect()
}

/// The tensor's values, row-major, exactly `count` finite 32-bit numbers (a `null` is a missing
/// value, NaN, with `gaps`).
fn numbers(t: &InputTensor, count: usize, gaps: bool) -> Result<Vec<f32>, Rejection> {
    const NUMERIC: &[&str] = &[
        "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
        "UINT64",
    ];
    if !NUMERIC.contains(&t.datatype.as_str()) {
        return Err(bad(format!(
            "input `{}` is {}; the features are numbers (FP32, FP64 or an integer type)",
            t.name, t.datatype
        )));
    }
    flat(t, count)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Number(n) => n
                .as_f64()
                .map(|f| f as f32)
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    bad(format!(
                        "input `{}`, value {}: {n} is not a finite 32-bit number",
                        t.name,
                        i + 1
                    ))
                }),
            Value::Null if gaps => Ok(f32::NAN),
            other => Err(bad(format!(
                "input `{}`, value {}: expected a number, found {}",
                t.name,
                i + 1,
                kind(other)
            ))),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::String(_) => "a string",
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::Number(_) => "a number",
    }
}

/// The output tensors the client asked for (all when it named none); an unknown name is a 400.
pub fn outputs<'a>(
    requested: Option<&[RequestedOutput]>,
    classes: Option<&'a [String]>,
    predicted: &'a Outputs,
) -> Result<Vec<OutputTensor<'a>>, Rejection> {
    let rows = predicted.rows();
    let mut all = Vec::with_capacity(2);
    match predicted {
        Outputs::Classes {
            index,
            probabilities,
            classes: k,
        } => {
            all.push(OutputTensor {
                name: "predict",
                shape: vec![rows],
                datatype: "BYTES",
                data: OutputData::Labels(index.iter().map(|&i| label_of(classes, i)).collect()),
            });
            all.push(OutputTensor {
                name: "predict_proba",
                shape: vec![rows, *k],
                datatype: "FP32",
                data: OutputData::Numbers(probabilities),
            });
        }
        Outputs::Values(values) => all.push(OutputTensor {
            name: "predict",
            shape: vec![rows],
            datatype: "FP32",
            data: OutputData::Numbers(values),
        }),
    }
    let Some(requested) = requested else {
        return Ok(all);
    };
    let mut chosen = Vec::with_capacity(requested.len());
    for r in requested {
        let Some(i) = all.iter().position(|o| o.name == r.name) else {
            let known: Vec<&str> = all.iter().map(|o| o.name).collect();
            return Err(bad(format!(
                "output `{}` is not one the model has ({})",
                r.name,
                known.join(", ")
            )));
        };
        chosen.push(all.remove(i));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn request(json: &str) -> InferRequest {
        serde_json::from_str(json).expect("a request")
    }

    fn read(json: &str) -> Result<Batch, Rejection> {
        batch(
            &request(json),
            Columns::numeric(&features()),
            Limits::default(),
        )
    }

    /// A categorical feature comes as its own BYTES tensor; a null is a gap where the model
    /// takes gaps (in a number's tensor too); one matrix for a model with categories is refused.
    #[test]
    fn categories_come_as_bytes_tensors_and_nulls_as_gaps() {
        use mlops_artifacts::training::Categories;
        use mlops_data::categories::Unseen;
        let features = features();
        let vocabulary = Vocabulary::new(
            &features,
            &[Categories {
                column: "b".into(),
                values: vec!["blue".into(), "red".into()],
            }],
            Unseen::Error,
        );
        let columns = |gaps| Columns {
            features: &features,
            gaps,
            vocabulary: &vocabulary,
            index: None,
        };
        let per_feature = r#"{"inputs": [
            {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, null]},
            {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["red", null]},
            {"name": "c", "shape": [2], "datatype": "FP32", "data": [3, 4]}]}"#;
        let x = batch(&request(per_feature), columns(true), Limits::default())
            .expect("read")
            .x;
        assert_eq!(x[..3], [1.0, 1.0, 3.0]);
        assert!(x[3].is_nan() && x[4].is_nan() && x[5] == 4.0);
        let e = batch(&request(per_feature), columns(false), Limits::default())
            .expect_err("no gaps")
            .message;
        assert!(
            e.contains("input `a`, value 2: expected a number, found null"),
            "{e}"
        );
        let unseen = per_feature.replace(r#"["red", null]"#, r#"["red", "green"]"#);
        let e = batch(&request(&unseen), columns(true), Limits::default())
            .expect_err("unseen")
            .message;
        assert!(
            e.contains("input `b`, value 2: feature `b` is `green`"),
            "{e}"
        );
        let typed = per_feature.replace(r#""BYTES""#, r#""FP32""#);
        let e = batch(&request(&typed), columns(true), Limits::default())
            .expect_err("numbers for a category")
            .message;
        assert!(e.contains("categorical feature: send BYTES"), "{e}");
        let matrix = r#"{"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32",
            "data": [1, 0, 3]}]}"#;
        let e = batch(&request(matrix), columns(true), Limits::default())
            .expect_err("matrix")
            .message;
        assert!(e.contains("send one tensor per feature"), "{e}");
    }

    #[test]
    fn one_matrix_or_one_tensor_per_feature_give_the_same_rows() {
        let want = Batch {
            rows: 2,
            x: vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0],
        };
        let flat = r#"{"inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32",
            "data": [1, 2, 3, 4, 5.5, -6]}]}"#;
        let nested = r#"{"id": "r1", "inputs": [{"name": "x", "shape": [2, 3],
            "datatype": "FP64", "data": [[1, 2, 3], [4, 5.5, -6]]}]}"#;
        let columns = r#"{"inputs": [
            {"name": "c", "shape": [2], "datatype": "FP32", "data": [3, -6]},
            {"name": "a", "shape": [2, 1], "datatype": "INT64", "data": [[1], [4]]},
            {"name": "b", "shape": [2], "datatype": "FP32", "data": [2, 5.5]}]}"#;
        for body in [flat, nested, columns] {
            assert_eq!(read(body), Ok(want.clone()), "{body}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let refused = |json: &str| read(json).expect_err("refused").message;
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1,2,3,4,5,6,7,8]}]}"#,
        );
        assert!(
            m.contains("input `x` has shape [2, 4]; the model takes [rows, 3]"),
            "{m}"
        );
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1,2,3,4,5]}]}"#,
        );
        assert!(m.contains("has 5 values; its shape [2, 3] needs 6"), "{m}");
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1,2,3,4]}]}"#,
        );
        assert!(m.contains("more values than its shape"), "{m}");
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["1","2","3"]}]}"#,
        );
        assert!(m.contains("is BYTES; the features are numbers"), "{m}");
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1,null,3]}]}"#,
        );
        assert!(m.contains("value 2: expected a number, found null"), "{m}");
        let m = refused(
            r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "b", "shape": [1], "datatype": "FP32", "data": [2]}]}"#,
        );
        assert!(m.contains("input `c` is missing"), "{m}");
        let m = refused(
            r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "b", "shape": [1], "datatype": "FP32", "data": [2]},
                {"name": "c", "shape": [2], "datatype": "FP32", "data": [3, 4]}]}"#,
        );
        assert!(
            m.contains("input `c` has 2 rows; the first feature's has 1"),
            "{m}"
        );
        let m = refused(
            r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "z", "shape": [1], "datatype": "FP32", "data": [2]}]}"#,
        );
        assert!(m.contains("input `z` is not a feature of the model"), "{m}");
        assert!(refused(r#"{"inputs": []}"#).contains("no inputs"));
        let m = refused(
            r#"{"inputs": [{"name": "x", "shape": [0, 3], "datatype": "FP32", "data": []}]}"#,
        );
        assert!(m.contains("no rows"), "{m}");
        assert!(serde_json::from_str::<InferRequest>(r#"{"inputs": [], "extra": 1}"#).is_err());
        let limits = Limits {
            max_rows: 1,
            ..Limits::default()
        };
        let two = request(
            r#"{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1,2,3,4,5,6]}]}"#,
        );
        assert_eq!(
            batch(&two, Columns::numeric(&features()), limits).map_err(|r| r.status),
            Err(413)
        );
    }

    #[test]
    fn outputs_are_named_as_mlserver_names_them_and_can_be_chosen() {
        let classes = vec!["x".to_owned(), "y".to_owned()];
        let predicted = Outputs::Classes {
            index: vec![1, 0],
            probabilities: vec![0.25, 0.75, 0.5, 0.5],
            classes: 2,
        };
        let all = outputs(None, Some(&classes), &predicted).expect("outputs");
        let json = serde_json::to_value(&all).expect("json");
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["y", "x"]},
                {"name": "predict_proba", "shape": [2, 2], "datatype": "FP32",
                 "data": [0.25, 0.75, 0.5, 0.5]}
            ])
        );
        let one = request(r#"{"inputs": [], "outputs": [{"name": "predict_proba"}]}"#);
        let chosen = outputs(one.outputs.as_deref(), Some(&classes), &predicted).expect("outputs");
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen.first().map(|o| o.name), Some("predict_proba"));
        let unknown = request(r#"{"inputs": [], "outputs": [{"name": "logits"}]}"#);
        let m = outputs(unknown.outputs.as_deref(), Some(&classes), &predicted)
            .expect_err("unknown")
            .message;
        assert!(
            m.contains("output `logits` is not one the model has"),
            "{m}"
        );
        let values = Outputs::Values(vec![1.5]);
        let json =
            serde_json::to_value(outputs(None, None, &values).expect("outputs")).expect("json");
        assert_eq!(
            json,
            serde_json::json!([{"name": "predict", "shape": [1], "datatype": "FP32", "data": [1.5]}])
        );
        assert_eq!(
            name_and_version(Some("digits-mlp@3")),
            ("digits-mlp", Some("3"))
        );
        assert_eq!(name_and_version(None), ("model", None));
    }
}
