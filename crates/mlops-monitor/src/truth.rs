//! Ground truth for captured predictions: a CSV or JSON-lines file of `inference_id`, the
//! label column (the manifest's `data.label`) and, for requests of several rows, `row` (the
//! row's place in its request, from 0; absent means 0). Held in memory by (id, row): the labels
//! are what a team had labelled, far fewer than the captured rows, which are streamed.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;

/// Labels by (inference id, row).
#[derive(Debug, Default)]
pub struct Truth {
    labels: HashMap<(String, u64), String>,
}

impl Truth {
    /// Reads `path` (`.csv`, else JSON lines), taking the label from column `label`.
    pub fn read(path: &Path, label: &str) -> Result<Self, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut truth = Truth::default();
        if csv {
            let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
            let headers = reader
                .headers()
                .map_err(|e| format!("{shown}: {e}"))?
                .clone();
            let at = |name: &str| headers.iter().position(|h| h == name);
            let (Some(id), Some(value)) = (at("inference_id"), at(label)) else {
                return Err(format!(
                    "{shown}: the header must name `inference_id` and `{label}` (it names {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ));
            };
            let row = at("row");
            for (n, record) in reader.records().enumerate() {
                let line = n + 2;
                let record = record.map_err(|e| format!("{shown}:{line}: {e}"))?;
                let field = |i: usize| record.get(i).unwrap_or_default();
                let place = match row.map(field) {
                    None | Some("") => 0,
                    Some(text) => text.parse().map_err(|_| {
                        format!("{shown}:{line}: `row` is `{text}`, not a row number")
                    })?,
                };
                truth.insert(field(id), place, field(value), &format!("{shown}:{line}"))?;
            }
            return Ok(truth);
        }
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let at = format!("{shown}:{}", n + 1);
            let line = line.map_err(|e| format!("{at}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{at}: not JSON: {e}"))?;
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
                _ => None,
            };
            let (Some(id), Some(label_text)) = (
                value.get("inference_id").and_then(text),
                value.get(label).and_then(text),
            ) else {
                return Err(format!(
                    "{at}: each line needs `inference_id` and `{label}` (a string or number)"
                ));
            };
            let place = match value.get("row") {
                None | Some(serde_json::Value::Null) => 0,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| format!("{at}: `row` is {v}, not a row number"))?,
            };
            truth.insert(&id, place, &label_text, &at)?;
        }
        Ok(truth)
    }

    fn insert(&mut self, id: &str, row: u64, label: &str, at: &str) -> Result<(), String> {
        if id.is_empty() {
            return Err(format!("{at}: `inference_id` is empty"));
        }
        match self.labels.insert((id.to_owned(), row), label.to_owned()) {
            Some(_) => Err(format!(
                "{at}: inference `{id}` row {row} is labelled twice"
            )),
            None => Ok(()),
        }
    }

    /// The label of row `row` of inference `id`.
    pub fn label(&self, id: &str, row: u64) -> Option<&str> {
        // One allocation per lookup is the price of a (String, u64) key; lookups happen only
        // for captured rows while labels exist.
        self.labels.get(&(id.to_owned(), row)).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_lines_give_labels_by_id_and_row() {
        let dir = tempfile::tempdir().expect("dir");
        let csv = dir.path().join("truth.csv");
        std::fs::write(&csv, "inference_id,churned,row\na,yes,\nb,no,1\n").expect("write");
        let t = Truth::read(&csv, "churned").expect("reads");
        assert_eq!(
            (t.label("a", 0), t.label("b", 1), t.label("b", 0)),
            (Some("yes"), Some("no"), None)
        );
        let jsonl = dir.path().join("truth.jsonl");
        std::fs::write(&jsonl, "{\"inference_id\": \"a\", \"y\": 3}\n\n{\"inference_id\": 7, \"y\": 1.5, \"row\": 2}\n")
            .expect("write");
        let t = Truth::read(&jsonl, "y").expect("reads");
        assert_eq!(
            (t.label("a", 0), t.label("7", 2), t.len()),
            (Some("3"), Some("1.5"), 2)
        );
    }

    #[test]
    fn mistakes_are_located() {
        let dir = tempfile::tempdir().expect("dir");
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "id,label\na,1\n").expect("write");
        assert!(
            Truth::read(&csv, "label")
                .expect_err("no id")
                .contains("`inference_id`")
        );
        std::fs::write(&csv, "inference_id,label\na,1\na,2\n").expect("write");
        let e = Truth::read(&csv, "label").expect_err("twice");
        assert!(e.contains("t.csv:3") && e.contains("twice"), "{e}");
        let jsonl = dir.path().join("t.jsonl");
        std::fs::write(&jsonl, "{\"inference_id\": \"a\"}\n").expect("write");
        assert!(
            Truth::read(&jsonl, "label")
                .expect_err("no label")
                .contains("t.jsonl:1")
        );
    }
}
