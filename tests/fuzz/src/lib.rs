//! What each fuzz target checks, beyond "no panic, no input slower than the time limit": the
//! parsers' own invariants. The request body parser and the CODEOWNERS matcher are compiled from
//! their crates' source files, so that the fuzz build does not pull in burn or the GitHub client.

#![allow(missing_docs)]

/// `crates/mlops-serve/src/limits.rs`, which the body parser names as `crate::limits`.
#[path = "../../../crates/mlops-serve/src/limits.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod limits;

/// `crates/mlops-serve/src/body.rs`.
#[path = "../../../crates/mlops-serve/src/body.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod body;

/// `crates/mlops-github/src/codeowners.rs`.
#[path = "../../../crates/mlops-github/src/codeowners.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod codeowners;

/// The CSV record reader over a whole body: every record it hands over lies inside the input.
pub fn csv_records(data: &[u8]) {
    let mut fields = 0usize;
    let _ = mlops_data::records::each(
        data,
        |record| {
            fields += record.len();
            for i in 0..record.len() {
                let _ = record.number(i);
            }
            Ok::<(), ()>(())
        },
        |_, _| (),
    );
    assert!(fields <= data.len() + 1);
}

/// The request body parser, as JSON and as CSV, for a three-feature model, numeric and with a
/// categorical middle feature that takes gaps: a batch holds three values per row and no more
/// rows than the limit; a category's code is one of its categories', unseen or a gap.
pub fn request_body(data: &[u8]) {
    let features: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
    let limits = limits::Limits {
        max_body_bytes: 1 << 20,
        max_rows: 1000,
        ..limits::Limits::default()
    };
    let vocabulary = mlops_data::categories::Vocabulary::new(
        &features,
        &[mlops_artifacts::training::Categories {
            column: "b".into(),
            values: vec!["x".into(), "y, z".into()],
        }],
        mlops_data::categories::Unseen::Ignore,
    );
    let categorical = body::Columns {
        features: &features,
        gaps: true,
        vocabulary: &vocabulary,
        index: None,
    };
    for media in [body::Media::Json, body::Media::Csv] {
        for columns in [body::Columns::numeric(&features), categorical] {
            if let Ok(batch) = body::parse(media, data, columns, limits) {
                assert_eq!(batch.x.len(), batch.rows * features.len());
                assert!(batch.rows >= 1 && batch.rows <= limits.max_rows);
                if !vocabulary.is_empty() && columns.gaps {
                    for row in batch.x.chunks(3) {
                        let code = row[1];
                        assert!(code.is_nan() || [0.0, 1.0, -1.0].contains(&code), "{code}");
                    }
                }
            }
        }
    }
}

/// The manifest pipeline (YAML with spans, schema, semantic checks): every diagnostic points
/// into the file.
pub fn manifest(data: &[u8]) {
    let report = mlops_manifest::check::check_bytes("fuzz.yaml", data);
    // YAML's line breaks: LF, CRLF and a lone CR (as editors count them too).
    let crlf = data.windows(2).filter(|w| w == b"\r\n").count();
    let breaks = data.iter().filter(|b| matches!(b, b'\n' | b'\r')).count() - crlf;
    let lines = breaks + 1;
    for d in &report.diagnostics {
        assert!(d.line >= 1 && d.line <= lines + 1, "{d:?} in {lines} lines");
    }
}

/// The pin file: what parses, written back, parses to the same pin.
pub fn pin(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pin) = mlops_artifacts::pin::Pin::parse(text) {
        let again = mlops_artifacts::pin::Pin::parse(&pin.to_yaml("production"))
            .expect("a written pin reads back");
        assert_eq!(again, pin);
    }
}

/// CODEOWNERS: the owners of a few paths, for any file text.
pub fn codeowners(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for path in ["deploy/production.pin.yaml", "a/b/c.txt", "README.md", ""] {
        let _ = codeowners::owners(&text, path);
    }
}

/// A template's file name rendered with answers: what renders is a relative path of plain
/// components, inside the project.
pub fn init_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (name, value) = text.split_once('\n').unwrap_or((&text, "x"));
    let mut answers = serde_json::Map::new();
    answers.insert("name".into(), serde_json::Value::String(value.to_owned()));
    answers.insert("n".into(), serde_json::json!(3));
    if let Ok(path) = mlops_init::project_path(name, &answers) {
        assert!(
            path.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{name:?} rendered to {path:?}"
        );
    }
}
