//! What a scored row looks like in the output: the id, then the prediction as `mlops serve`
//! answers it (the label and each class's probability, or the value), and how a batch of them is
//! written as CSV or JSON lines text.

use mlops_train::predict::Outputs;

/// The output column of the predicted label (classification).
pub const LABEL: &str = "label";
/// The output column of the predicted value (regression).
pub const VALUE: &str = "value";
/// The prefix of each class's probability column: `probability_<class>`.
pub const PROBABILITY: &str = "probability_";
/// The id column when the input names none: each row's number in the input, from 1.
pub const ROW: &str = "row";

/// The ids of a batch's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Ids {
    /// The input's id column, as text: row `i` is `text[ends[i-1]..ends[i]]`.
    Text { text: String, ends: Vec<usize> },
    /// No id column: the rows' numbers in the input, from `first` on.
    Numbers { first: u64, rows: usize },
}

impl Ids {
    /// Ids for text, empty.
    pub fn text() -> Self {
        Ids::Text {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Ids::Text { ends, .. } => ends.len(),
            Ids::Numbers { rows, .. } => *rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one row's id (text ids only).
    pub fn push(&mut self, id: &str) {
        if let Ids::Text { text, ends } = self {
            text.push_str(id);
            ends.push(text.len());
        }
    }

    /// Each row's id as text (a row number written in decimal).
    pub fn each(&self) -> impl Iterator<Item = IdText<'_>> + '_ {
        let n = self.len();
        (0..n).map(move |i| match self {
            Ids::Text { text, ends } => {
                let start = i.checked_sub(1).and_then(|j| ends.get(j)).copied();
                let end = ends.get(i).copied().unwrap_or(0);
                IdText::Text(text.get(start.unwrap_or(0)..end).unwrap_or(""))
            }
            Ids::Numbers { first, .. } => IdText::Number(first + i as u64),
        })
    }
}

/// One row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdText<'a> {
    Text(&'a str),
    Number(u64),
}

/// The output's columns, fixed by the model and the id column.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The id column's name (the input's, or [`ROW`]).
    pub id: String,
    /// Whether the input names the id column (else rows are numbered).
    pub id_from_input: bool,
    /// The model's classes (classification), in its order; `None` for regression.
    pub classes: Option<Vec<String>>,
}

impl Layout {
    /// The layout for a model with `classes` and the input's `id_column`; refused when the id
    /// column's name is one of the prediction's columns.
    pub fn new(id_column: Option<&str>, classes: Option<&[String]>) -> Result<Self, String> {
        let layout = Layout {
            id: id_column.unwrap_or(ROW).to_owned(),
            id_from_input: id_column.is_some(),
            classes: classes.map(<[String]>::to_vec),
        };
        let prediction = layout.columns();
        if prediction.iter().skip(1).any(|c| *c == layout.id) {
            return Err(format!(
                "the id column `{}` has the name of an output column ({})",
                layout.id,
                prediction.join(", ")
            ));
        }
        Ok(layout)
    }

    /// The output's column names, in order: the id, then the prediction's.
    pub fn columns(&self) -> Vec<String> {
        let mut columns = vec![self.id.clone()];
        match &self.classes {
            Some(classes) => {
                columns.push(LABEL.to_owned());
                columns.extend(classes.iter().map(|c| format!("{PROBABILITY}{c}")));
            }
            None => columns.push(VALUE.to_owned()),
        }
        columns
    }

    /// The CSV header line.
    pub fn csv_header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, c) in self.columns().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_field(&mut out, c);
        }
        out.push(b'\n');
        out
    }

    /// A batch's rows as CSV lines (no header).
    pub fn csv(&self, ids: &Ids, outputs: &Outputs) -> Vec<u8> {
        let labels: Vec<Vec<u8>> = self
            .classes
            .iter()
            .flatten()
            .map(|c| {
                let mut t = Vec::new();
                csv_field(&mut t, c);
                t
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len() * (16 + 12 * labels.len().max(1)));
        let mut number = zmij::Buffer::new();
        for (row, id) in ids.each().enumerate() {
            match id {
                IdText::Text(t) => csv_field(&mut out, t),
                IdText::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            }
            out.push(b',');
            match Prediction::of(outputs, row) {
                Prediction::Class(class, probabilities) => {
                    out.extend_from_slice(labels.get(class).map_or(&[][..], Vec::as_slice));
                    for p in probabilities {
                        out.push(b',');
                        float(&mut out, &mut number, *p, false);
                    }
                }
                Prediction::Value(v) => float(&mut out, &mut number, v, false),
            }
            out.push(b'\n');
        }
        out
    }

    /// A batch's rows as JSON lines: `{"<id>": ..., "label": ..., "probabilities": {"<class>":
    /// p, ...}}` or `{"<id>": ..., "value": v}`. An id that is a JSON number is written as one,
    /// any other as a string; a non-finite number as `null`.
    pub fn jsonl(&self, ids: &Ids, outputs: &Outputs) -> Vec<u8> {
        let json = |s: &str| serde_json::to_vec(s).unwrap_or_default();
        let key = json(&self.id);
        let labels: Vec<Vec<u8>> = self.classes.iter().flatten().map(|c| json(c)).collect();
        let mut out = Vec::with_capacity(ids.len() * (32 + 24 * labels.len().max(1)));
        let mut number = zmij::Buffer::new();
        for (row, id) in ids.each().enumerate() {
            out.push(b'{');
            out.extend_from_slice(&key);
            out.push(b':');
            match id {
                IdText::Text(t) if is_json_number(t.as_bytes()) => {
                    out.extend_from_slice(t.as_bytes());
                }
                IdText::Text(t) => out.extend_from_slice(&json(t)),
                IdText::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            }
            match Prediction::of(outputs, row) {
                Prediction::Class(class, probabilities) => {
                    out.extend_from_slice(b",\"label\":");
                    out.extend_from_slice(labels.get(class).map_or(&b"null"[..], Vec::as_slice));
                    out.extend_from_slice(b",\"probabilities\":{");
                    for (i, (p, name)) in probabilities.iter().zip(&labels).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(name);
                        out.push(b':');
                        float(&mut out, &mut number, *p, true);
                    }
                    out.push(b'}');
                }
                Prediction::Value(v) => {
                    out.extend_from_slice(b",\"value\":");
                    float(&mut out, &mut number, v, true);
                }
            }
            out.extend_from_slice(b"}\n");
        }
        out
    }
}

/// One row's prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Prediction<'a> {
    /// The class index and each class's probability.
    Class(usize, &'a [f32]),
    /// The value (NaN when the model gave none for the row).
    Value(f32),
}

impl<'a> Prediction<'a> {
    /// Row `row` of `outputs`.
    pub(crate) fn of(outputs: &'a Outputs, row: usize) -> Self {
        match outputs {
            Outputs::Classes {
                index,
                probabilities,
                classes,
            } => {
                let start = row.saturating_mul(*classes);
                Prediction::Class(
                    index.get(row).copied().unwrap_or(usize::MAX),
                    probabilities
                        .get(start..start.saturating_add(*classes))
                        .unwrap_or_default(),
                )
            }
            Outputs::Values(values) => {
                Prediction::Value(values.get(row).copied().unwrap_or(f32::NAN))
            }
        }
    }
}

/// The shortest text that reads back as the same `f32`; a non-finite value as `null` in JSON,
/// as Rust writes it (`NaN`, `inf`) in CSV.
fn float(out: &mut Vec<u8>, buffer: &mut zmij::Buffer, v: f32, json: bool) {
    if v.is_finite() {
        out.extend_from_slice(buffer.format_finite(v).as_bytes());
    } else if json {
        out.extend_from_slice(b"null");
    } else {
        out.extend_from_slice(v.to_string().as_bytes());
    }
}

/// A CSV field: as it is, or quoted (quotes doubled) when it holds a comma, a quote, a line
/// break or surrounding whitespace.
pub fn csv_field(out: &mut Vec<u8>, text: &str) {
    let needs = text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    if !needs {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Whether `text` is a number by JSON's grammar: `-`? (`0` | [1-9][0-9]*) (`.`[0-9]+)?
/// ([eE][+-]?[0-9]+)?.
pub fn is_json_number(text: &[u8]) -> bool {
    let mut rest = text.strip_prefix(b"-").unwrap_or(text);
    let digits = |t: &[u8]| t.iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(rest);
    if whole == 0 || (whole > 1 && rest.first() == Some(&b'0')) {
        return false;
    }
    rest = rest.get(whole..).unwrap_or_default();
    if let Some(after) = rest.strip_prefix(b".") {
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = after.get(n..).unwrap_or_default();
    }
    if let Some(after) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let after = after
            .strip_prefix(b"+")
            .or_else(|| after.strip_prefix(b"-"))
            .unwrap_or(after);
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = after.get(n..).unwrap_or_default();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Outputs {
        Outputs::Classes {
            index: vec![1, 0],
            probabilities: vec![0.25, 0.75, 0.5, 0.5],
            classes: 2,
        }
    }

    #[test]
    fn json_numbers_follow_the_grammar() {
        for yes in ["0", "-0", "17", "1.5", "-2.25e10", "3E-2", "0.0"] {
            assert!(is_json_number(yes.as_bytes()), "{yes}");
        }
        for no in [
            "", "-", "007", "1.", ".5", "1e", "0x10", "NaN", "1 ", "+1", "a1",
        ] {
            assert!(!is_json_number(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn classification_rows_have_the_id_the_label_and_each_probability() {
        let layout =
            Layout::new(Some("id"), Some(&["no".into(), "yes, really".into()])).expect("layout");
        assert_eq!(
            String::from_utf8(layout.csv_header()).expect("utf8"),
            "id,label,probability_no,\"probability_yes, really\"\n"
        );
        let mut ids = Ids::text();
        ids.push("a\"1");
        ids.push("b2");
        assert_eq!(
            String::from_utf8(layout.csv(&ids, &classes())).expect("utf8"),
            "\"a\"\"1\",\"yes, really\",0.25,0.75\nb2,no,0.5,0.5\n"
        );
        let lines = String::from_utf8(layout.jsonl(&ids, &classes())).expect("utf8");
        let rows: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(
            rows,
            vec![
                serde_json::json!({"id": "a\"1", "label": "yes, really",
                    "probabilities": {"no": 0.25, "yes, really": 0.75}}),
                serde_json::json!({"id": "b2", "label": "no",
                    "probabilities": {"no": 0.5, "yes, really": 0.5}}),
            ]
        );
    }

    #[test]
    fn numbered_rows_and_numeric_ids_stay_numbers() {
        let layout = Layout::new(None, None).expect("layout");
        assert_eq!(layout.columns(), ["row", "value"]);
        let ids = Ids::Numbers { first: 7, rows: 2 };
        let values = Outputs::Values(vec![1.5, f32::NAN]);
        assert_eq!(
            String::from_utf8(layout.csv(&ids, &values)).expect("utf8"),
            "7,1.5\n8,NaN\n"
        );
        assert_eq!(
            String::from_utf8(layout.jsonl(&ids, &values)).expect("utf8"),
            "{\"row\":7,\"value\":1.5}\n{\"row\":8,\"value\":null}\n"
        );
        let layout = Layout::new(Some("key"), None).expect("layout");
        let mut ids = Ids::text();
        ids.push("0042");
        ids.push("42");
        let lines = layout.jsonl(&ids, &Outputs::Values(vec![1.0, 2.0]));
        assert_eq!(
            String::from_utf8(lines).expect("utf8"),
            "{\"key\":\"0042\",\"value\":1.0}\n{\"key\":42,\"value\":2.0}\n"
        );
    }

    #[test]
    fn an_id_column_named_like_an_output_column_is_refused() {
        let classes = ["a".to_owned(), "b".to_owned()];
        for taken in ["label", "probability_b"] {
            let e = Layout::new(Some(taken), Some(&classes)).expect_err(taken);
            assert!(e.contains(&format!("`{taken}`")), "{e}");
        }
        assert!(Layout::new(Some("value"), None).is_err());
        assert!(Layout::new(Some("value"), Some(&classes)).is_ok());
    }
}
