//! The manifest's JSON Schema: generated from the types in [`crate::model`] (their doc comments
//! become descriptions), committed as `schema/mlops.schema.json`, and embedded in the binary so
//! that validation uses exactly the committed file. `cargo xtask codegen --check` and the
//! `committed_schema_is_fresh` test keep the two equal.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::model::Manifest;

/// The schema's `$id`: absolute and versioned, so a v2 schema can live beside it.
pub const SCHEMA_ID: &str = "https://mlops-rs.github.io/schema/v1/mlops.schema.json";

/// The committed schema, as embedded at build time.
pub const COMMITTED: &str = include_str!("../../../schema/mlops.schema.json");

/// Generates the schema from the Rust types.
pub fn generate() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.into_root_schema_for::<Manifest>();
    let mut schema = serde_json::to_value(root).unwrap_or_else(|_| json!({}));
    strip_null(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        let mut head = serde_json::Map::new();
        head.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        head.insert("$id".into(), json!(SCHEMA_ID));
        obj.remove("$schema");
        // A stable, readable key order: what the document is, its shape, then the definitions.
        for key in [
            "title",
            "description",
            "type",
            "properties",
            "required",
            "additionalProperties",
        ] {
            if let Some(v) = obj.remove(key) {
                head.insert(key.into(), v);
            }
        }
        let defs = obj.remove("$defs");
        head.extend(std::mem::take(obj));
        if let Some(defs) = defs {
            head.insert("$defs".into(), defs);
        }
        *obj = head;
    }
    // `version` is a constant: an editor then offers exactly `1`.
    if let Some(version) = schema.pointer_mut("/properties/version") {
        *version = json!({
            "description": "Manifest format version. This binary reads version 1.",
            "const": 1
        });
    }
    schema
}

/// The generated schema as the committed file holds it: pretty JSON and a final newline.
pub fn generate_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    text.push('\n');
    text
}

/// Manifest fields are never nullable: an absent optional section is written by leaving it out.
/// schemars describes `Option<T>` as "T or null"; this removes the null branch so that a stray
/// `key:` with no value is reported as the wrong type at that key.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(branches)) = map.get_mut(key) else {
                    continue;
                };
                branches.retain(|b| b.get("type") != Some(&json!("null")));
                if branches.len() == 1 {
                    let only = branches.remove(0);
                    map.remove(key);
                    if let Value::Object(inner) = only {
                        for (k, val) in inner {
                            map.entry(k).or_insert(val);
                        }
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The embedded schema, parsed once.
pub fn committed() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(COMMITTED).unwrap_or_else(|_| json!({})))
}

/// The compiled validator of the embedded schema, built once.
pub(crate) fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(committed())
                .ok()
        })
        .as_ref()
}

/// The subschema that describes the instance at `path`, following `$ref`s, `properties`,
/// `additionalProperties` and `items`.
pub fn at<'a>(root: &'a Value, path: &[crate::yaml::Segment]) -> Option<&'a Value> {
    let mut node = resolve(root, root)?;
    for seg in path {
        let next = match seg {
            crate::yaml::Segment::Key(k) => node
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
            crate::yaml::Segment::Index(_) => node.get("items"),
        }?;
        node = resolve(root, next)?;
    }
    Some(node)
}

fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => node = root.pointer(r.strip_prefix('#')?)?,
            None => return Some(node),
        }
    }
    None
}

/// The property names a mapping at `path` may have.
pub fn known_keys(root: &Value, path: &[crate::yaml::Segment]) -> Vec<String> {
    at(root, path)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_is_fresh() {
        assert!(
            generate_text() == COMMITTED,
            "schema/mlops.schema.json is stale: run `cargo xtask codegen`"
        );
    }

    #[test]
    fn schema_compiles_and_has_a_versioned_absolute_id() {
        assert!(validator().is_some());
        let id = committed()["$id"].as_str().unwrap();
        assert!(id.starts_with("https://") && id.contains("/v1/"), "{id}");
    }

    #[test]
    fn no_field_is_nullable() {
        assert!(
            !COMMITTED.contains("\"null\""),
            "schema still allows null somewhere"
        );
    }

    #[test]
    fn descriptions_come_from_doc_comments() {
        let s = committed();
        let d = at(
            s,
            &[
                crate::yaml::Segment::Key("project".into()),
                crate::yaml::Segment::Key("name".into()),
            ],
        )
        .and_then(|n| n["description"].as_str())
        .unwrap();
        assert!(d.starts_with("Short name"), "{d}");
    }
}
