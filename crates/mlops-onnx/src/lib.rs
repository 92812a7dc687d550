//! ONNX models brought by users, run on the CPU by tract (pure Rust: nothing is downloaded at
//! build or run time, so it works on an air-gapped runner).
//!
//! [`Model::load`] reads the graph, refuses what cannot be served before anything runs (an
//! operator tract lacks, named with its domain; not one float input of the manifest's width; no
//! output that is a prediction), finds the class labels in the graph (the `classlabels_*`
//! attributes of the `ai.onnx.ml` classifiers and `ZipMap`, or the constant class list an
//! `ArrayFeatureExtractor` reads, as skl2onnx and onnxmltools write them), and plans the graph
//! for any number of rows. [`Model::predict`] runs a batch: for a classifier each row's class
//! (from the model's own label output) and its probabilities, for a regressor its value.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;

mod forest;
mod ops;

/// ONNX's element types, the ones read here (`TensorProto.DataType`).
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const STRING: i32 = 8;
const DOUBLE: i32 = 11;

/// What a model predicts, and from which of its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A classifier: its label output, its probabilities output (when it has one), and the
    /// class labels in the order of the probabilities' columns.
    Classifier {
        label: usize,
        probabilities: Option<usize>,
        classes: Vec<String>,
    },
    /// A regressor: its one float output.
    Regressor { output: usize },
}

/// A batch's predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// Each row's class (an index into the model's classes) and the `rows * classes`
    /// probabilities (the model's own; one-hot for a model without a probabilities output).
    Classes {
        index: Vec<usize>,
        probabilities: Vec<f32>,
        classes: usize,
    },
    Values(Vec<f32>),
}

/// The most run states a model keeps (one per thread that predicts at once is enough).
const KEPT_STATES: usize = 64;

/// A loaded, planned ONNX model.
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    /// Run states kept between calls, for a graph whose operators keep no state of their own:
    /// tract's `run` makes (and drops) one per call, which at one row a request was a share of
    /// the time worth saving. `None` for a graph with stateful operators: a fresh state each run.
    states: Option<std::sync::Mutex<Vec<TypedSimpleState>>>,
    width: usize,
    /// A classifier's label values to their class index, built once at load.
    labels: Labels,
    pub kind: Kind,
    /// The graph's input, as the model names it.
    pub input: String,
    /// The operators the graph uses, as `domain:op` (`ai.onnx` for the default domain).
    pub operators: BTreeSet<String>,
    /// The graph's producer (`skl2onnx 1.20.0`), when it says.
    pub producer: String,
    /// The values of the graph's constants (its weights, split points, class lists).
    pub parameters: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("width", &self.width)
            .field("kind", &self.kind)
            .field("input", &self.input)
            .field("operators", &self.operators)
            .field("producer", &self.producer)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

/// The value of attribute `name` of `node`, when it has one.
fn attribute<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An element type's name, for messages.
fn type_name(t: i32) -> String {
    match pb::tensor_proto::DataType::try_from(t) {
        Ok(d) => d.as_str_name().to_owned(),
        Err(_) => format!("type {t}"),
    }
}

/// A graph value's element type and dimensions (`None` for a symbolic or unknown one).
fn tensor_type(v: &pb::ValueInfoProto) -> Option<(i32, Vec<Option<i64>>)> {
    let t = v.r#type.as_ref()?;
    // tract's protobuf has tensor types only: a sequence or a map decodes as no value.
    let pb::type_proto::Value::TensorType(tensor) = t.value.as_ref()?;
    let dims = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((tensor.elem_type, dims))
}

/// The class labels a graph carries, in the order of its probabilities' columns: a classifier
/// operator's (or `ZipMap`'s) `classlabels_int64s` / `classlabels_ints` / `classlabels_strings`, else the constant
/// list an `ArrayFeatureExtractor` picks the label from.
fn classes_in(graph: &pb::GraphProto) -> Option<Vec<String>> {
    let constants: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for node in &graph.node {
        // `classlabels_ints` is LinearClassifier's and SVMClassifier's name for the same list.
        if let Some(a) = ["classlabels_int64s", "classlabels_ints"]
            .iter()
            .find_map(|n| attribute(node, n).filter(|a| !a.ints.is_empty()))
        {
            return Some(a.ints.iter().map(i64::to_string).collect());
        }
        if let Some(a) = attribute(node, "classlabels_strings").filter(|a| !a.strings.is_empty()) {
            return Some(
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            );
        }
        if node.op_type == "ArrayFeatureExtractor"
            && let Some(t) = node.input.first().and_then(|n| constants.get(n.as_str()))
            && let Some(labels) = labels_of(t)
        {
            return Some(labels);
        }
    }
    None
}

/// A constant tensor of class labels (int64 or strings) as text.
fn labels_of(t: &pb::TensorProto) -> Option<Vec<String>> {
    match t.data_type {
        INT64 if !t.int64_data.is_empty() => {
            Some(t.int64_data.iter().map(i64::to_string).collect())
        }
        INT64 => Some(
            t.raw_data
                .chunks_exact(8)
                .map(|b| {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(b);
                    i64::from_le_bytes(bytes).to_string()
                })
                .collect(),
        ),
        INT32 => Some(t.int32_data.iter().map(i32::to_string).collect()),
        STRING => Some(
            t.string_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        _ => None,
    }
}

impl Model {
    /// Reads, checks and plans the model in `bytes` for rows of `width` float features.
    pub fn load(bytes: &[u8], width: usize) -> Result<Model, String> {
        let mut onnx = tract_onnx::onnx();
        ops::register(&mut onnx.op_register);
        forest::register(&mut onnx.op_register);
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| format!("not an ONNX model: {e}"))?;
        let graph = proto.graph.as_ref().ok_or("the ONNX file holds no graph")?;

        // Each node's operator as `domain:op`, and whether tract (with mlops' own) runs it.
        let named = |n: &pb::NodeProto| {
            let domain = if n.domain.is_empty() {
                "ai.onnx"
            } else {
                &n.domain
            };
            format!("{domain}:{}", n.op_type)
        };
        let operators: BTreeSet<String> = graph.node.iter().map(named).collect();
        let missing: BTreeSet<String> = graph
            .node
            .iter()
            .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
            .map(named)
            .collect();
        if !missing.is_empty() {
            let zipmap = missing.iter().any(|m| m.ends_with(":ZipMap"));
            return Err(format!(
                "the model uses {} the ONNX runtime in mlops (tract) does not have: {}{}",
                if missing.len() == 1 {
                    "an operator"
                } else {
                    "operators"
                },
                missing.iter().cloned().collect::<Vec<_>>().join(", "),
                if zipmap {
                    " (ZipMap turns probabilities into a list of maps: export the classifier \
                     with skl2onnx's option zipmap=False)"
                } else {
                    ""
                }
            ));
        }

        // The inputs that are not constants (old graphs list the initializers as inputs too).
        let constants: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !constants.contains(i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(format!(
                "the model has {} inputs ({}); mlops gives it one [rows, {width}] float tensor \
                 of the manifest's features in order (export it with a single input, e.g. \
                 skl2onnx's initial_types=[(\"X\", FloatTensorType([None, {width}]))])",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| format!("`{}`", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        match tensor_type(input) {
            Some((FLOAT, dims)) => match dims.as_slice() {
                [_, Some(w)] if *w != width as i64 => {
                    return Err(format!(
                        "the model's input `{}` takes {w} features; the manifest lists {width}",
                        input.name
                    ));
                }
                [_, _] => {}
                other => {
                    return Err(format!(
                        "the model's input `{}` has {} dimensions; mlops gives it [rows, {width}]",
                        input.name,
                        other.len()
                    ));
                }
            },
            Some((t, _)) => {
                return Err(format!(
                    "the model's input `{}` is {}; mlops gives it FLOAT (32-bit) features \
                     (export it with FloatTensorType)",
                    input.name,
                    type_name(t)
                ));
            }
            None => {
                return Err(format!(
                    "the model's input `{}` is not a tensor",
                    input.name
                ));
            }
        }

        let outputs: Vec<(i32, usize)> = graph
            .output
            .iter()
            .map(|o| tensor_type(o).map_or((0, 0), |(t, dims)| (t, dims.len())))
            .collect();
        let labels = outputs
            .iter()
            .position(|(t, _)| matches!(*t, INT64 | INT32 | STRING));
        let floats: Vec<usize> = outputs
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| matches!(*t, FLOAT | DOUBLE))
            .map(|(i, _)| i)
            .collect();
        let names = || {
            graph
                .output
                .iter()
                .map(|o| {
                    format!(
                        "`{}` ({})",
                        o.name,
                        tensor_type(o).map_or("not a tensor".to_owned(), |(t, _)| type_name(t))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kind = match (labels, floats.as_slice()) {
            (Some(label), floats) => {
                let classes = classes_in(graph).ok_or_else(|| {
                    format!(
                        "the model is a classifier (its output `{}` is a label), but its graph \
                         names no class labels (no classlabels_* attribute, no constant class \
                         list): mlops cannot tell which class each probability is",
                        graph.output.get(label).map_or("", |o| o.name.as_str())
                    )
                })?;
                Kind::Classifier {
                    label,
                    probabilities: floats.first().copied(),
                    classes,
                }
            }
            (None, [output]) => Kind::Regressor { output: *output },
            (None, _) => {
                return Err(format!(
                    "the model's outputs ({}) are not a prediction: a classifier has a label \
                     output (INT64 or STRING), a regressor one FLOAT output",
                    names()
                ));
            }
        };

        let parameters = graph
            .initializer
            .iter()
            .map(|t| {
                t.dims
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(0))
                    .product::<usize>()
            })
            .sum();
        let plan = guarded("reading the graph", || {
            let mut model = onnx
                .model_for_proto_model(&proto)
                .map_err(|e| format!("tract cannot read the graph: {e:#}"))?;
            let rows = model.symbols.sym("rows");
            model = model
                .with_input_fact(0, f32::fact([TDim::from(rows), width.to_dim()]).into())
                .map_err(|e| format!("the input does not take [rows, {width}] floats: {e:#}"))?;
            model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(|e| format!("tract cannot plan the graph: {e:#}"))
        })?;
        let stateless = plan
            .spawn()
            .is_ok_and(|s| s.op_states.iter().all(Option::is_none));
        Ok(Model {
            plan,
            states: stateless.then(Default::default),
            width,
            labels: Labels::of(&kind),
            kind,
            input: input.name.clone(),
            operators,
            producer: format!("{} {}", proto.producer_name, proto.producer_version)
                .trim()
                .to_owned(),
            parameters,
        })
    }

    /// The class labels, in the order of the probabilities (a classifier's).
    pub fn classes(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Classifier { classes, .. } => Some(classes),
            Kind::Regressor { .. } => None,
        }
    }

    /// Runs `x` (`rows * width` features in order).
    pub fn predict(&self, x: &[f32]) -> Result<Predictions, String> {
        let width = self.width;
        if width == 0 || !x.len().is_multiple_of(width) {
            return Err(format!("{} values do not make rows of {width}", x.len()));
        }
        let rows = x.len() / width;
        let input = Tensor::from_shape(&[rows, width], x).map_err(|e| e.to_string())?;
        let outputs = guarded("running the model", || {
            let failed =
                |e: TractError| format!("the model failed on a batch of {rows} rows: {e:#}");
            let Some(pool) = &self.states else {
                return self.plan.run(tvec!(input.into())).map_err(failed);
            };
            let kept = pool.lock().ok().and_then(|mut p| p.pop());
            let mut state = match kept {
                Some(s) => s,
                None => self.plan.spawn().map_err(failed)?,
            };
            // A state goes back only after a run that finished (tract resets its turn then);
            // one a failed or panicking run left is dropped.
            let outputs = state.run(tvec!(input.into())).map_err(failed)?;
            if let Ok(mut p) = pool.lock()
                && p.len() < KEPT_STATES
            {
                p.push(state);
            }
            Ok(outputs)
        })?;
        let output = |i: usize| {
            outputs
                .get(i)
                .ok_or_else(|| format!("the model gave no output {i}"))
        };
        match &self.kind {
            Kind::Regressor { output: o } => {
                let values = floats(output(*o)?)?;
                if values.len() != rows {
                    return Err(format!(
                        "the model gave {} values for {rows} rows",
                        values.len()
                    ));
                }
                Ok(Predictions::Values(values))
            }
            Kind::Classifier {
                label,
                probabilities,
                classes,
            } => {
                let n = classes.len();
                let labels = output(*label)?;
                let index = class_indices(labels, &self.labels)?;
                if index.len() != rows {
                    return Err(format!(
                        "the model gave {} labels for {rows} rows",
                        index.len()
                    ));
                }
                let probabilities = match probabilities {
                    Some(p) => {
                        let p = floats(output(*p)?)?;
                        if p.len() != rows * n {
                            return Err(format!(
                                "the model gave {} probabilities for {rows} rows of {n} classes",
                                p.len()
                            ));
                        }
                        p
                    }
                    None => {
                        let mut p = vec![0.0; rows * n];
                        for (row, &i) in index.iter().enumerate() {
                            if let Some(v) = p.get_mut(row * n + i) {
                                *v = 1.0;
                            }
                        }
                        p
                    }
                };
                Ok(Predictions::Classes {
                    index,
                    probabilities,
                    classes: n,
                })
            }
        }
    }
}

/// Runs `f`, a panic inside tract (on a graph it did not expect) turned into an error that says
/// so, so that a bad model file never takes the process down.
fn guarded<T>(doing: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(format!("tract failed {doing}: {why}"))
    })
}

/// A float output as `f32`s (a DOUBLE one rounded).
fn floats(t: &TValue) -> Result<Vec<f32>, String> {
    if let Ok(s) = t.to_plain_array_view::<f32>() {
        return Ok(s.iter().copied().collect());
    }
    if let Ok(s) = t.to_plain_array_view::<f64>() {
        return Ok(s.iter().map(|v| *v as f32).collect());
    }
    Err(format!(
        "an output is {:?} where floats were expected",
        t.datum_type()
    ))
}

/// A classifier's class labels to their index, as text and (for the labels that are integers
/// written plainly, as `classlabels_int64s` gives them) as integers.
#[derive(Debug, Default)]
struct Labels {
    text: HashMap<String, usize>,
    ints: HashMap<i64, usize>,
}

impl Labels {
    fn of(kind: &Kind) -> Labels {
        let Kind::Classifier { classes, .. } = kind else {
            return Labels::default();
        };
        let mut labels = Labels::default();
        for (i, c) in classes.iter().enumerate() {
            labels.text.insert(c.clone(), i);
            if let Ok(v) = c.parse::<i64>()
                && v.to_string() == *c
            {
                labels.ints.insert(v, i);
            }
        }
        labels
    }
}

/// Each label of a label output, as the index of its class.
fn class_indices(t: &TValue, labels: &Labels) -> Result<Vec<usize>, String> {
    let none = |shown: &dyn std::fmt::Display| {
        format!("the model predicted `{shown}`, which is none of its classes")
    };
    // Asked by type, not by trying: a failed view is an anyhow error, which captures a
    // backtrace on every call when RUST_BACKTRACE is set (a third of a 1-row request's time).
    if t.datum_type() == DatumType::String
        && let Ok(s) = t.to_plain_array_view::<String>()
    {
        return s
            .iter()
            .map(|v| labels.text.get(v.as_str()).copied().ok_or_else(|| none(v)))
            .collect();
    }
    // Integer labels: INT64 or INT32 as exported, or the dimension type tract's optimiser may
    // turn an integer computation into.
    if let Ok(ints) = t.cast_to::<i64>()
        && let Ok(s) = ints.to_plain_array_view::<i64>()
    {
        return s
            .iter()
            .map(|v| labels.ints.get(v).copied().ok_or_else(|| none(v)))
            .collect();
    }
    Err(format!(
        "the label output is {:?}, not integers or text",
        t.datum_type()
    ))
}
