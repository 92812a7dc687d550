//! The output file: CSV (a header, then a line per row), JSON lines, or Parquet (the id as text,
//! or a 64-bit integer for row numbers; the label as text; each probability or the value as a
//! 32-bit float; row groups of [`ROW_GROUP_ROWS`], snappy-compressed), and how many rows a
//! finished output holds, read back from the file itself.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mlops_data::data::Format;
use mlops_train::predict::Outputs;
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::layout::{IdText, Ids, Layout, Prediction};

/// Rows per Parquet row group: what the writer holds in memory before writing it out.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// A scored batch, ready for the file: text already written for the text formats (by the
/// thread that predicted it), the columns for Parquet.
#[derive(Debug)]
pub enum Chunk {
    Text { bytes: Vec<u8>, rows: usize },
    Columns { ids: Ids, outputs: Outputs },
}

impl Chunk {
    /// `ids` and `outputs` as `format` takes them.
    pub fn of(layout: &Layout, format: Format, ids: Ids, outputs: Outputs) -> Chunk {
        let rows = ids.len();
        match format {
            Format::Csv => Chunk::Text {
                bytes: layout.csv(&ids, &outputs),
                rows,
            },
            Format::Jsonl => Chunk::Text {
                bytes: layout.jsonl(&ids, &outputs),
                rows,
            },
            Format::Parquet => Chunk::Columns { ids, outputs },
        }
    }

    /// The rows it holds.
    pub fn rows(&self) -> u64 {
        match self {
            Chunk::Text { rows, .. } => *rows as u64,
            Chunk::Columns { ids, .. } => ids.len() as u64,
        }
    }
}

/// An output file being written.
#[allow(missing_debug_implementations)]
pub enum Writer {
    Text(BufWriter<File>),
    Parquet(Box<ParquetWriter>),
}

impl Writer {
    /// Starts `file` as `format`: the CSV header, or the Parquet schema.
    pub fn new(file: File, format: Format, layout: &Layout) -> Result<Writer, String> {
        Ok(match format {
            Format::Csv => {
                let mut w = BufWriter::with_capacity(1 << 20, file);
                w.write_all(&layout.csv_header())
                    .map_err(|e| e.to_string())?;
                Writer::Text(w)
            }
            Format::Jsonl => Writer::Text(BufWriter::with_capacity(1 << 20, file)),
            Format::Parquet => Writer::Parquet(Box::new(ParquetWriter::new(file, layout)?)),
        })
    }

    pub fn write(&mut self, chunk: Chunk) -> Result<(), String> {
        match (self, chunk) {
            (Writer::Text(w), Chunk::Text { bytes, .. }) => {
                w.write_all(&bytes).map_err(|e| e.to_string())
            }
            (Writer::Parquet(w), Chunk::Columns { ids, outputs }) => w.add(&ids, &outputs),
            _ => Err("a chunk of another format".to_owned()),
        }
    }

    /// Writes what is held and closes the file, synced to the disk.
    pub fn finish(self) -> Result<(), String> {
        let file = match self {
            Writer::Text(w) => w.into_inner().map_err(|e| e.error().to_string())?,
            Writer::Parquet(w) => w.finish()?,
        };
        file.sync_all().map_err(|e| e.to_string())
    }
}

/// Parquet columns held until a row group is full.
pub struct ParquetWriter {
    writer: SerializedFileWriter<File>,
    ids_text: Vec<ByteArray>,
    ids_number: Vec<i64>,
    labels: Vec<ByteArray>,
    /// Per class (or the one value column): the column's values.
    floats: Vec<Vec<f32>>,
    /// Each class's label, as bytes, once.
    class_names: Vec<ByteArray>,
    rows: usize,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetWriter {
    fn new(file: File, layout: &Layout) -> Result<Self, String> {
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let required = |name: &str, physical: Physical, logical: Option<LogicalType>| {
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        };
        let columns = layout.columns();
        let mut fields = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let field = match (i, &layout.classes) {
                (0, _) if layout.id_from_input => {
                    required(name, Physical::BYTE_ARRAY, Some(LogicalType::String))
                }
                (0, _) => required(name, Physical::INT64, None),
                (1, Some(_)) => required(name, Physical::BYTE_ARRAY, Some(LogicalType::String)),
                _ => required(name, Physical::FLOAT, None),
            }
            .map_err(err)?;
            fields.push(field);
        }
        let schema = Type::group_type_builder("scored")
            .with_fields(fields)
            .build()
            .map_err(err)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer =
            SerializedFileWriter::new(file, Arc::new(schema), Arc::new(properties)).map_err(err)?;
        let class_names: Vec<ByteArray> = layout
            .classes
            .iter()
            .flatten()
            .map(|c| ByteArray::from(c.as_str()))
            .collect();
        Ok(ParquetWriter {
            writer,
            ids_text: Vec::new(),
            ids_number: Vec::new(),
            labels: Vec::new(),
            floats: vec![Vec::new(); class_names.len().max(1)],
            class_names,
            rows: 0,
        })
    }

    fn add(&mut self, ids: &Ids, outputs: &Outputs) -> Result<(), String> {
        for id in ids.each() {
            match id {
                IdText::Text(t) => self.ids_text.push(ByteArray::from(t)),
                IdText::Number(n) => self
                    .ids_number
                    .push(i64::try_from(n).map_err(|e| e.to_string())?),
            }
        }
        if let Outputs::Classes { classes, .. } = outputs
            && *classes != self.class_names.len()
        {
            return Err(format!(
                "the model gave {classes} probabilities per row, it has {} classes",
                self.class_names.len()
            ));
        }
        for row in 0..ids.len() {
            match Prediction::of(outputs, row) {
                Prediction::Class(class, probabilities) => {
                    let name = self
                        .class_names
                        .get(class)
                        .ok_or_else(|| format!("the model predicted class {class}, unknown"))?;
                    self.labels.push(name.clone());
                    for (column, p) in self.floats.iter_mut().zip(probabilities) {
                        column.push(*p);
                    }
                }
                Prediction::Value(v) => {
                    if let Some(column) = self.floats.first_mut() {
                        column.push(v);
                    }
                }
            }
        }
        self.rows += ids.len();
        if self.rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the held rows as one row group.
    fn flush(&mut self) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let mut group = self.writer.next_row_group().map_err(err)?;
        let mut index = 0;
        while let Some(mut column) = group.next_column().map_err(err)? {
            match index {
                0 if !self.ids_text.is_empty() => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&self.ids_text, None, None)
                        .map_err(err)?;
                }
                0 => {
                    column
                        .typed::<Int64Type>()
                        .write_batch(&self.ids_number, None, None)
                        .map_err(err)?;
                }
                1 if !self.class_names.is_empty() => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&self.labels, None, None)
                        .map_err(err)?;
                }
                _ => {
                    let at = if self.class_names.is_empty() {
                        index - 1
                    } else {
                        index - 2
                    };
                    let values = self.floats.get(at).map_or(&[][..], Vec::as_slice);
                    column
                        .typed::<FloatType>()
                        .write_batch(values, None, None)
                        .map_err(err)?;
                }
            }
            column.close().map_err(err)?;
            index += 1;
        }
        group.close().map_err(err)?;
        self.ids_text.clear();
        self.ids_number.clear();
        self.labels.clear();
        for column in &mut self.floats {
            column.clear();
        }
        self.rows = 0;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<File, String> {
        self.flush()?;
        self.writer.into_inner().map_err(|e| e.to_string())
    }
}

/// How many rows the output file at `path` holds, read back from it: CSV records after the
/// header (quoted line breaks are inside a record), non-blank JSON lines, or the row count
/// Parquet's footer records.
pub fn rows_in(path: &Path, format: Format) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    match format {
        Format::Parquet => {
            let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
            let rows = reader.metadata().file_metadata().num_rows();
            u64::try_from(rows).map_err(|e| e.to_string())
        }
        Format::Jsonl => {
            let mut rows = 0u64;
            for line in BufReader::with_capacity(1 << 20, file).split(b'\n') {
                let line = line.map_err(|e| e.to_string())?;
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    rows += 1;
                }
            }
            Ok(rows)
        }
        Format::Csv => csv_records(file).map(|n| n.saturating_sub(1)),
    }
}

/// The records of a CSV text: line breaks outside quotes that end a non-empty line.
fn csv_records(file: File) -> Result<u64, String> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buffer = vec![0u8; 1 << 20];
    let (mut records, mut quoted, mut empty) = (0u64, false, true);
    loop {
        let n = reader.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        for &b in buffer.get(..n).unwrap_or_default() {
            match b {
                b'"' => {
                    quoted = !quoted;
                    empty = false;
                }
                b'\n' if !quoted => {
                    if !empty {
                        records += 1;
                    }
                    empty = true;
                }
                b'\r' => {}
                _ => empty = false,
            }
        }
    }
    if !empty {
        records += 1;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(format: Format, layout: &Layout, chunks: Vec<(Ids, Outputs)>) -> tempfile::TempPath {
        let path = tempfile::NamedTempFile::new()
            .expect("temp")
            .into_temp_path();
        let mut w =
            Writer::new(File::create(&path).expect("create"), format, layout).expect("writer");
        for (ids, outputs) in chunks {
            w.write(Chunk::of(layout, format, ids, outputs))
                .expect("write");
        }
        w.finish().expect("finish");
        path
    }

    #[test]
    fn each_format_reads_back_the_rows_written() {
        let classes = vec!["a".to_owned(), "b\nc".to_owned()];
        let layout = Layout::new(Some("id"), Some(&classes)).expect("layout");
        let batch = |first: usize, rows: usize| {
            let mut ids = Ids::text();
            for i in first..first + rows {
                ids.push(&format!("id-{i}"));
            }
            let outputs = Outputs::Classes {
                index: (0..rows).map(|i| i % 2).collect(),
                probabilities: (0..rows).flat_map(|_| [0.25, 0.75]).collect(),
                classes: 2,
            };
            (ids, outputs)
        };
        for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
            // Two row groups' worth and a bit, for Parquet.
            let chunks = vec![
                batch(0, ROW_GROUP_ROWS),
                batch(ROW_GROUP_ROWS, 1000),
                batch(0, 3),
            ];
            let path = written(format, &layout, chunks);
            assert_eq!(
                rows_in(&path, format).expect("rows"),
                ROW_GROUP_ROWS as u64 + 1003,
                "{format:?}"
            );
        }
    }

    #[test]
    fn parquet_output_has_the_layouts_columns_and_types() {
        let layout = Layout::new(None, None).expect("layout");
        let path = written(
            Format::Parquet,
            &layout,
            vec![(
                Ids::Numbers { first: 1, rows: 2 },
                Outputs::Values(vec![0.5, -2.0]),
            )],
        );
        let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("reader");
        use parquet::record::RowAccessor;
        let columns: Vec<&str> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(columns, ["row", "value"]);
        let rows: Vec<(i64, f32)> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| {
                let r = r.expect("row");
                (r.get_long(0).expect("row"), r.get_float(1).expect("value"))
            })
            .collect();
        assert_eq!(rows, [(1, 0.5), (2, -2.0)]);
    }

    #[test]
    fn a_csv_count_keeps_quoted_line_breaks_inside_their_record() {
        let path = tempfile::NamedTempFile::new()
            .expect("temp")
            .into_temp_path();
        std::fs::write(&path, "id,label\n1,\"a\nb\"\n2,c\r\n\n3,d").expect("write");
        assert_eq!(rows_in(&path, Format::Csv).expect("rows"), 3);
        std::fs::write(&path, "{\"a\":1}\n\n  \n{\"a\":2}\n").expect("write");
        assert_eq!(rows_in(&path, Format::Jsonl).expect("rows"), 2);
    }
}
