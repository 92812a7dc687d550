//! Parquet datasets, read through the parquet crate's record API (no Arrow): only the feature
//! and label columns are decoded (a projection of the file's schema), one row group at a time, so
//! memory follows the row group, not the file. A feature column may hold any numeric type
//! (integers, floats, decimals); the label may be text, a number or a boolean. Rows are numbered
//! from 1 in the file's order, and errors name the row as the text formats name the line.

use std::path::Path;
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use crate::data::{Carry, Categorical, DataError, Row};

/// Reads `path`, calling `on_row` for each row; the number of rows.
pub(crate) fn read(
    path: &Path,
    features: &[String],
    carry: Carry<'_>,
    gaps: bool,
    cats: &mut Categorical<'_>,
    on_row: &mut impl FnMut(Row<'_>) -> Result<(), String>,
) -> Result<u64, DataError> {
    let file = std::fs::File::open(path).map_err(|e| {
        DataError::at(
            path,
            None,
            format!("cannot read: {e}"),
            "check the path in the manifest (relative paths start at the manifest's directory)",
        )
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| {
        DataError::at(
            path,
            None,
            format!("not a Parquet file: {e}"),
            "write it with pandas' or pyarrow's to_parquet, or name the format with `format:`",
        )
    })?;
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema();
    let top: Vec<&Arc<Type>> = root.get_fields().iter().collect();
    let names: Vec<&str> = top.iter().map(|t| t.name()).collect();
    // The projection keeps the file's column order; `slots` maps its columns to ours.
    let wanted: Vec<&str> = features
        .iter()
        .map(String::as_str)
        .chain(carry.column())
        .collect();
    if let Some(absent) = wanted.iter().find(|w| !names.contains(w)) {
        return Err(DataError::at(
            path,
            None,
            format!("has no column `{absent}`"),
            format!(
                "its columns are {}; fix `data.features`/`data.label` in the manifest or the file",
                crate::data::preview(&names)
            ),
        ));
    }
    let mut projected: Vec<Arc<Type>> = Vec::new();
    // For each projected column: the feature slot it fills, or `None` for the label.
    let mut slots: Vec<Option<usize>> = Vec::new();
    for t in &top {
        let name = t.name();
        let feature = features.iter().position(|f| f == name);
        if feature.is_some() || Some(name) == carry.column() {
            if !t.is_primitive() {
                return Err(DataError::at(
                    path,
                    None,
                    format!("column `{name}` is nested (a group, list or map)"),
                    "features, the label and an id are flat columns of numbers or text",
                ));
            }
            projected.push(Arc::clone(t));
            slots.push(feature);
        }
    }
    let schema = Type::group_type_builder(root.name())
        .with_fields(projected)
        .build()
        .map_err(|e| DataError::at(path, None, format!("cannot project its schema: {e}"), ""))?;
    let rows = reader
        .get_row_iter(Some(schema))
        .map_err(|e| DataError::at(path, None, format!("cannot read its rows: {e}"), ""))?;
    let mut values = vec![0f32; features.len()];
    let mut label_text = String::new();
    let mut count = 0u64;
    for row in rows {
        let number = count + 1;
        let at = |message: String, hint: &str| DataError::at(path, Some(number), message, hint);
        let row = row.map_err(|e| at(format!("cannot decode the row: {e}"), ""))?;
        for (slot, (name, field)) in slots.iter().zip(row.get_column_iter()) {
            match slot {
                Some(i) if cats.is(*i) => {
                    let text = match field {
                        Field::Null => None,
                        Field::Str(s) => Some(s.clone()),
                        Field::Bool(b) => Some(b.to_string()),
                        other => Some(whole_or_number(other).ok_or_else(|| {
                            at(
                                format!("categorical feature `{name}` is {}", shown(other)),
                                "a category is text, an integer or a boolean",
                            )
                        })?),
                    };
                    let code = cats
                        .code(*i, name, text.as_deref())
                        .map_err(|(m, hint)| at(m, hint))?;
                    if let Some(v) = values.get_mut(*i) {
                        *v = code;
                    }
                }
                Some(i) => {
                    if gaps && matches!(field, Field::Null) {
                        if let Some(v) = values.get_mut(*i) {
                            *v = f32::NAN;
                        }
                        continue;
                    }
                    let value = number_of(field).ok_or_else(|| {
                        at(
                            format!("feature `{name}` is {}, not a finite number", shown(field)),
                            "features must be numbers (integers, floats or decimals); encode \
                             categories as numbers first",
                        )
                    })?;
                    if let Some(v) = values.get_mut(*i) {
                        *v = value;
                    }
                }
                None => {
                    label_text.clear();
                    match field {
                        Field::Str(s) => label_text.push_str(s),
                        Field::Bool(b) => label_text.push_str(&b.to_string()),
                        Field::Null => {
                            return Err(at(
                                format!("{} is null", carry.named(name)),
                                carry.every_row_needs(),
                            ));
                        }
                        other => match whole_or_number(other) {
                            Some(text) => label_text.push_str(&text),
                            None => {
                                return Err(at(
                                    format!("{} is {}", carry.named(name), shown(other)),
                                    carry.can_be(),
                                ));
                            }
                        },
                    }
                }
            }
        }
        count = number;
        on_row(Row {
            line: number,
            features: &values,
            label: &label_text,
            text: None,
            categories: &cats.texts,
        })
        .map_err(|m| DataError::at(path, Some(number), m, ""))?;
    }
    Ok(count)
}

/// A numeric field as a finite `f32`; `None` for anything else (null, text, NaN, infinities).
fn number_of(field: &Field) -> Option<f32> {
    let v = match field {
        Field::Byte(v) => f64::from(*v),
        Field::Short(v) => f64::from(*v),
        Field::Int(v) => f64::from(*v),
        Field::Long(v) => *v as f64,
        Field::UByte(v) => f64::from(*v),
        Field::UShort(v) => f64::from(*v),
        Field::UInt(v) => f64::from(*v),
        Field::ULong(v) => *v as f64,
        Field::Float16(v) => f64::from(f32::from(*v)),
        Field::Float(v) => f64::from(*v),
        Field::Double(v) => *v,
        Field::Decimal(_) => field.to_string().parse().ok()?,
        _ => return None,
    };
    let v = v as f32;
    v.is_finite().then_some(v)
}

/// A numeric label as the text formats write it: an integer without a fraction (`3`, as a CSV
/// file has it), any other number in its shortest form.
fn whole_or_number(field: &Field) -> Option<String> {
    match field {
        Field::Byte(v) => Some(v.to_string()),
        Field::Short(v) => Some(v.to_string()),
        Field::Int(v) => Some(v.to_string()),
        Field::Long(v) => Some(v.to_string()),
        Field::UByte(v) => Some(v.to_string()),
        Field::UShort(v) => Some(v.to_string()),
        Field::UInt(v) => Some(v.to_string()),
        Field::ULong(v) => Some(v.to_string()),
        Field::Float(v) if v.is_finite() => Some(v.to_string()),
        Field::Double(v) if v.is_finite() => Some(v.to_string()),
        Field::Decimal(_) => Some(field.to_string()),
        _ => None,
    }
}

/// A field as an error message shows it.
fn shown(field: &Field) -> String {
    match field {
        Field::Null => "null".to_owned(),
        Field::Str(s) => {
            let short: String = s.chars().take(40).collect();
            format!("the text `{short}`")
        }
        other => {
            let text: String = other.to_string().chars().take(40).collect();
            format!("`{text}`")
        }
    }
}
