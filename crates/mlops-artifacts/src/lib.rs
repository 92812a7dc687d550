//! The files mlops writes and reads back, as types: the model card ([`card`]), the pin file
//! ([`pin`]), a service's `/version` document ([`service`]), what a training run is and reports
//! ([`training`]), the model bundle `model.json` ([`bundle`]), the holdout report ([`holdout`]),
//! `mlops run`'s summary ([`run`]), a sweep's trials ([`sweep`]), the monitoring baseline ([`baseline`]) and a model artifact's digest ([`artifact`]). Every writer
//! and reader of these files uses these types, so a field is never written under one name and
//! read under another; the card's JSON Schema is generated from its type. Plain data with serde
//! and schemars, light enough for every crate that reads an artifact (no training stack).

pub mod artifact;
pub mod baseline;
pub mod bundle;
pub mod capture;
pub mod card;
pub mod fs;
pub mod holdout;
pub mod monitor;
pub mod pin;
pub mod run;
pub mod service;
pub mod sweep;
pub mod training;

/// A SHA (a commit's, a file's digest) as shown to people: its first 12 characters, enough to
/// tell two apart in a message; never a panic, whatever the text.
pub fn short(sha: &str) -> &str {
    match sha.char_indices().nth(12) {
        Some((end, _)) => sha.get(..end).unwrap_or(sha),
        None => sha,
    }
}

/// The JSON Schema of `T`, generated from its type (doc comments become descriptions) with
/// `id` and `title` first, as `schema/` holds it: pretty JSON and a final newline.
pub fn schema_text<T: schemars::JsonSchema>(id: &str, title: &str) -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let root = generator.into_root_schema_for::<T>();
    let mut schema = serde_json::to_value(root).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        let mut head = serde_json::Map::new();
        head.insert("$schema".into(), obj.remove("$schema").unwrap_or_default());
        head.insert("$id".into(), id.into());
        obj.remove("title");
        head.insert("title".into(), title.into());
        head.extend(std::mem::take(obj));
        *obj = head;
    }
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The generated schemas: file under `schema/`, and its text (`cargo xtask codegen` writes
/// them).
pub fn schemas() -> Vec<(&'static str, String)> {
    vec![
        ("card.schema.json", card::schema_text()),
        (
            "holdout-report.schema.json",
            schema_text::<holdout::Report>(
                "https://mlops-rs.github.io/schema/v1/holdout-report.schema.json",
                "mlops holdout report",
            ),
        ),
        ("model-bundle.schema.json", bundle::schema_text()),
        (
            "monitor-report.schema.json",
            schema_text::<monitor::Report>(
                "https://mlops-rs.github.io/schema/v1/monitor-report.schema.json",
                "mlops monitor report",
            ),
        ),
        (
            "capture-record.schema.json",
            schema_text::<capture::Record>(
                "https://mlops-rs.github.io/schema/v1/capture-record.schema.json",
                "mlops capture line",
            ),
        ),
        ("pin.schema.json", pin::schema_text()),
        (
            "run.schema.json",
            schema_text::<run::Run>(
                "https://mlops-rs.github.io/schema/v1/run.schema.json",
                "mlops run summary",
            ),
        ),
        ("version.schema.json", service::schema_text()),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_shows_twelve_characters_and_never_panics() {
        assert_eq!(super::short("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short("abc"), "abc");
        assert_eq!(super::short("ééééééééééééé"), "éééééééééééé");
    }

    /// Each generated schema is the committed file (`cargo xtask codegen` rewrites them, and
    /// `cargo xtask codegen --check` fails on a stale one too).
    #[test]
    fn committed_schemas_are_fresh() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/");
        for (file, want) in super::schemas() {
            let have = std::fs::read_to_string(format!("{dir}{file}")).unwrap_or_default();
            assert!(
                have == want,
                "schema/{file} differs from its type: run `cargo xtask codegen`"
            );
        }
    }
}
