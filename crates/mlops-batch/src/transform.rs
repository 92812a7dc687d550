//! The two ends of a SageMaker Batch Transform: the input read as the model reads it and written
//! as the rows SageMaker sends the serving container ([`prepare`]: CSV without a header, the
//! model's features in signature order, nothing else), and the container's answers, assembled
//! by SageMaker one line per request, turned into the output `mlops predict` writes locally
//! ([`assemble`]: the same columns, ids and formats), with the row count checked on the way.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use mlops_data::categories::{Coder, Vocabulary};
use mlops_data::data::{self, Carry, FileDigest, Values};
use mlops_train::predict::{Outputs, Predictor};
use serde::Deserialize;

use crate::layout::{Ids, Layout, csv_field};
use crate::output::{Chunk, Writer};
use crate::score::{Failure, Input};

/// The media type of the rows [`prepare`] writes.
pub const ROWS_MEDIA: &str = "text/csv";
/// The media type asked of the container: its JSON answer, which has every class's
/// probability (its CSV answer has the label alone).
pub const ANSWERS_MEDIA: &str = "application/json";

/// What [`prepare`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The input's digest and row count.
    pub input: FileDigest,
}

/// Reads `input` as [`crate::score`] does (the same errors for a row the model cannot take),
/// writing each row's features to `rows` as a headerless CSV line in signature order (a
/// number as the shortest text that reads back as the same `f32`, a category as its text, a
/// gap as an empty field) and, with an id column, each row's id to `ids` as a JSON string line.
pub fn prepare(
    predictor: &Predictor,
    input: Input<'_>,
    rows: &mut dyn Write,
    ids: &mut dyn Write,
    cancel: &AtomicBool,
) -> Result<Prepared, Failure> {
    let signature = &predictor.bundle.signature;
    let mut vocabulary = Vocabulary::new(
        &signature.features,
        &signature.categorical,
        signature.unseen,
    );
    let categorical: Vec<bool> = (0..signature.features.len())
        .map(|i| vocabulary.categorical(i))
        .collect();
    let values = Values::Parse.with_gaps(predictor.bundle.standardizer.takes_gaps());
    let carry = input.id_column.map_or(Carry::Nothing, Carry::Id);
    let mut line = Vec::with_capacity(1024);
    let mut number = zmij::Buffer::new();
    let mut failed: Option<String> = None;
    let digest = data::read_carrying(
        input.path,
        input.shown,
        input.format,
        &signature.features,
        carry,
        values,
        &mut vocabulary,
        |row| {
            if cancel.load(Ordering::Relaxed) {
                return Err("stopped".to_owned());
            }
            line.clear();
            let mut categories = row.categories.iter();
            for (i, (v, is_category)) in row.features.iter().zip(&categorical).enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                if *is_category {
                    csv_field(&mut line, categories.next().map_or("", String::as_str));
                } else if v.is_finite() {
                    line.extend_from_slice(number.format_finite(*v).as_bytes());
                }
            }
            line.push(b'\n');
            let written = rows.write_all(&line).and_then(|()| match input.id_column {
                Some(_) => {
                    let mut text = serde_json::to_vec(row.label).unwrap_or_default();
                    text.push(b'\n');
                    ids.write_all(&text)
                }
                None => Ok(()),
            });
            written.map_err(|e| {
                let m = e.to_string();
                failed = Some(m.clone());
                m
            })
        },
    );
    if cancel.load(Ordering::Relaxed) {
        return Err(Failure::Cancelled);
    }
    if let Some(m) = failed {
        return Err(Failure::Output(m));
    }
    let input = digest.map_err(Failure::Input)?;
    Ok(Prepared { input })
}

/// One answer of the serving container (`mlops serve`'s JSON).
#[derive(Debug, Deserialize)]
struct Answer {
    predictions: Vec<Predicted>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Predicted {
    Class {
        label: String,
        probabilities: Vec<Option<f32>>,
    },
    Value {
        value: Option<f32>,
    },
}

/// Reads `answers` (one JSON answer per line, each for a request of consecutive rows, in the
/// input's order) and `ids` (as [`prepare`] wrote them; ignored when the layout numbers rows)
/// and writes each row to `writer` as `format` in `layout` (whose classes are the model's).
/// `expected` is the input's row count: the answers must hold exactly that many rows, or
/// nothing is claimed written.
pub fn assemble(
    answers: &mut dyn BufRead,
    ids: &mut dyn BufRead,
    layout: &Layout,
    format: data::Format,
    writer: &mut Writer,
    expected: u64,
) -> Result<u64, String> {
    let classes = layout.classes.as_deref();
    let numbered = !layout.id_from_input;
    let index: HashMap<&str, usize> = classes
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let k = classes.map_or(0, <[String]>::len);
    let mut rows = 0u64;
    let mut text = String::new();
    let mut line_no = 0u64;
    loop {
        text.clear();
        let n = answers
            .read_line(&mut text)
            .map_err(|e| format!("cannot read the answers: {e}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if text.trim().is_empty() {
            continue;
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            format!("answer line {line_no} is not the serving container's JSON answer: {e}")
        })?;
        let count = answer.predictions.len();
        let outputs = outputs_of(answer.predictions, &index, k)
            .map_err(|m| format!("answer line {line_no}: {m}"))?;
        let chunk_ids = if numbered {
            Ids::Numbers {
                first: rows + 1,
                rows: count,
            }
        } else {
            read_ids(ids, count).map_err(|m| {
                format!(
                    "the answers hold more rows than the input's {expected} (at answer line \
                     {line_no}): {m}"
                )
            })?
        };
        rows += count as u64;
        if rows > expected {
            return Err(format!(
                "the answers hold more rows than the input's {expected} (at answer line {line_no})"
            ));
        }
        writer.write(Chunk::of(layout, format, chunk_ids, outputs))?;
    }
    if rows != expected {
        return Err(format!(
            "the answers hold {rows} rows for {expected} input rows: {} missing",
            expected - rows
        ));
    }
    Ok(rows)
}

/// The predictions of one answer as the model's outputs.
fn outputs_of(
    predictions: Vec<Predicted>,
    index: &HashMap<&str, usize>,
    k: usize,
) -> Result<Outputs, String> {
    if k == 0 {
        let values = predictions
            .into_iter()
            .map(|p| match p {
                Predicted::Value { value } => Ok(value.unwrap_or(f32::NAN)),
                Predicted::Class { .. } => Err("a class where a value was expected".to_owned()),
            })
            .collect::<Result<Vec<f32>, String>>()?;
        return Ok(Outputs::Values(values));
    }
    let mut classes = Vec::with_capacity(predictions.len());
    let mut probabilities = Vec::with_capacity(predictions.len() * k);
    for p in predictions {
        let Predicted::Class {
            label,
            probabilities: p,
        } = p
        else {
            return Err("a value where a class was expected".to_owned());
        };
        let Some(&i) = index.get(label.as_str()) else {
            return Err(format!("`{label}` is not one of the model's classes"));
        };
        if p.len() != k {
            return Err(format!("{} probabilities for {k} classes", p.len()));
        }
        classes.push(i);
        probabilities.extend(p.into_iter().map(|v| v.unwrap_or(f32::NAN)));
    }
    Ok(Outputs::Classes {
        index: classes,
        probabilities,
        classes: k,
    })
}

/// The next `n` ids of an ids file (JSON strings, one per line).
fn read_ids(ids: &mut dyn BufRead, n: usize) -> Result<Ids, String> {
    let mut out = Ids::text();
    let mut line = String::new();
    for _ in 0..n {
        line.clear();
        let read = ids.read_line(&mut line).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("no ids are left".to_owned());
        }
        let id: String = serde_json::from_str(line.trim_end())
            .map_err(|e| format!("an id that is not a JSON string: {e}"))?;
        out.push(&id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Cursor;

    use super::*;

    fn classes() -> Vec<String> {
        vec!["cat".to_owned(), "dog".to_owned()]
    }

    /// `answers` assembled as CSV with `ids`: the file's text, or why not.
    fn assembled(answers: &str, ids: Option<&str>, expected: u64) -> Result<String, String> {
        let classes = classes();
        let layout = Layout::new(ids.map(|_| "key"), Some(&classes)).expect("layout");
        let path = tempfile::NamedTempFile::new()
            .expect("temp")
            .into_temp_path();
        let mut writer = Writer::new(
            File::create(&path).expect("create"),
            data::Format::Csv,
            &layout,
        )
        .expect("writer");
        let rows = assemble(
            &mut Cursor::new(answers.as_bytes()),
            &mut Cursor::new(ids.unwrap_or("").as_bytes()),
            &layout,
            data::Format::Csv,
            &mut writer,
            expected,
        )?;
        writer.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count() as u64, rows + 1, "{text}");
        Ok(text)
    }

    const TWO: &str = concat!(
        r#"{"model":"m@1","classes":["cat","dog"],"predictions":[{"label":"dog","probabilities":[0.25,0.75]},{"label":"cat","probabilities":[0.5,0.5]}]}"#,
        "\n",
        r#"{"model":"m@1","classes":["cat","dog"],"predictions":[{"label":"cat","probabilities":[0.875,0.125]}]}"#,
        "\n"
    );

    #[test]
    fn answers_become_the_local_outputs_rows_numbered_or_with_their_ids() {
        let numbered = assembled(TWO, None, 3).expect("assembled");
        assert_eq!(
            numbered,
            "row,label,probability_cat,probability_dog\n1,dog,0.25,0.75\n2,cat,0.5,0.5\n3,cat,0.875,0.125\n"
        );
        let keyed = assembled(TWO, Some("\"a\"\n\"b,c\"\n\"7\"\n"), 3).expect("assembled");
        assert_eq!(
            keyed,
            "key,label,probability_cat,probability_dog\na,dog,0.25,0.75\n\"b,c\",cat,0.5,0.5\n7,cat,0.875,0.125\n"
        );
    }

    #[test]
    fn a_missing_or_extra_row_is_named_and_bad_answers_are_refused() {
        let missing = assembled(TWO, None, 4).expect_err("a row is missing");
        assert_eq!(
            missing,
            "the answers hold 3 rows for 4 input rows: 1 missing"
        );
        let extra = assembled(TWO, None, 2).expect_err("a row too many");
        assert!(
            extra.contains("more rows than the input's 2 (at answer line 2)"),
            "{extra}"
        );
        let short_ids = assembled(TWO, Some("\"a\"\n\"b\"\n"), 3).expect_err("ids run out");
        assert!(short_ids.contains("no ids are left"), "{short_ids}");
        let unknown = TWO.replace("\"label\":\"dog\"", "\"label\":\"cow\"");
        let e = assembled(&unknown, None, 3).expect_err("unknown class");
        assert!(
            e.contains("answer line 1: `cow` is not one of the model's classes"),
            "{e}"
        );
        let e = assembled("<html>502</html>\n", None, 1).expect_err("not JSON");
        assert!(
            e.starts_with("answer line 1 is not the serving container's JSON answer"),
            "{e}"
        );
        let e = assembled(&TWO.replace("[0.5,0.5]", "[1.0]"), None, 3).expect_err("width");
        assert!(e.contains("1 probabilities for 2 classes"), "{e}");
    }

    #[test]
    fn regression_answers_are_values_and_null_is_not_a_number() {
        let layout = Layout::new(None, None).expect("layout");
        let path = tempfile::NamedTempFile::new()
            .expect("temp")
            .into_temp_path();
        let mut writer = Writer::new(
            File::create(&path).expect("create"),
            data::Format::Jsonl,
            &layout,
        )
        .expect("writer");
        let answers = "{\"model\":\"r@1\",\"predictions\":[{\"value\":1.5},{\"value\":null}]}\n";
        let rows = assemble(
            &mut Cursor::new(answers.as_bytes()),
            &mut Cursor::new(&b""[..]),
            &layout,
            data::Format::Jsonl,
            &mut writer,
            2,
        )
        .expect("assembled");
        writer.finish().expect("finish");
        assert_eq!(rows, 2);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"row\":1,\"value\":1.5}\n{\"row\":2,\"value\":null}\n"
        );
    }
}
