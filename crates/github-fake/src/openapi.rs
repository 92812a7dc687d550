//! GitHub's OpenAPI description (the extract in `openapi/github-subset.json`): operation lookup,
//! request and response validation, and minimal valid response objects.
//!
//! The description is OpenAPI 3.0, whose schema objects are JSON Schema draft 4 plus `nullable`.
//! Each schema is turned into draft 4 (`nullable: true` becomes a `null` alternative) and
//! compiled with the components beside it, so `#/components/...` references resolve. Formats
//! (`date-time`, `uri`, `email`) are asserted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

const SPEC: &str = include_str!("../openapi/github-subset.json");

/// The parsed description, its converted components and a cache of compiled validators.
pub(crate) struct Spec {
    doc: Value,
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// An operation found for a request.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(crate) method: String,
    pub(crate) template: String,
    pub(crate) params: HashMap<String, String>,
}

pub(crate) fn spec() -> &'static Spec {
    static SPEC_CELL: OnceLock<Spec> = OnceLock::new();
    SPEC_CELL.get_or_init(|| {
        let doc: Value = serde_json::from_str(SPEC).unwrap_or(Value::Null);
        let mut components = doc.get("components").cloned().unwrap_or(Value::Null);
        convert(&mut components);
        Spec {
            doc,
            components,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// OpenAPI 3.0 `nullable` to draft 4.
fn convert(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k != "properties" || x.is_object() {
                    convert(x);
                }
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get_mut("type") {
                    Some(Value::String(t)) => {
                        let t = t.clone();
                        map.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(e)) = map.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(convert),
        _ => {}
    }
}

/// Path segments match one by one; the last parameter of a few templates (`{path}`, `{ref}`,
/// `{basehead}`, `{branch}`) may span several segments, as on GitHub.
fn match_segments(template: &[&str], path: &[&str], params: &mut HashMap<String, String>) -> bool {
    match (template.first(), path.first()) {
        (None, None) => true,
        (Some(t), Some(p)) => {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                let spans = matches!(name, "path" | "ref" | "basehead" | "branch");
                let most = if spans { path.len() } else { 1 };
                for take in (1..=most).rev() {
                    let mut trial = params.clone();
                    trial.insert(name.to_owned(), path[..take].join("/"));
                    if match_segments(&template[1..], &path[take..], &mut trial) {
                        *params = trial;
                        return true;
                    }
                }
                false
            } else {
                t == p && match_segments(&template[1..], &path[1..], params)
            }
        }
        _ => false,
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Spec {
    /// The operation for a method and path, with its path parameters (percent-decoded).
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<Operation> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        // Literal templates before those with more parameters.
        let mut candidates: Vec<&String> = paths.keys().collect();
        candidates.sort_by_key(|t| t.matches('{').count());
        for template in candidates {
            if paths[template.as_str()].get(method).is_none() {
                continue;
            }
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            let mut params = HashMap::new();
            if match_segments(&parts, &segments, &mut params) {
                let params = params.into_iter().map(|(k, v)| (k, decode(&v))).collect();
                return Some(Operation {
                    method: method.to_owned(),
                    template: template.clone(),
                    params,
                });
            }
        }
        None
    }

    fn operation(&self, op: &Operation) -> &Value {
        &self.doc["paths"][op.template.as_str()][op.method.as_str()]
    }

    /// Follows a `$ref` into the document.
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .map_or(v, |t| self.deref(t)),
            None => v,
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().map_err(|e| e.to_string())?;
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        let mut root = schema.clone();
        convert(&mut root);
        let Value::Object(map) = &mut root else {
            return Err(format!("{key}: the schema is not an object"));
        };
        map.insert("components".into(), self.components.clone());
        let compiled = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("{key}: the schema does not compile: {e}"))?;
        let compiled = Arc::new(compiled);
        cache.insert(key.to_owned(), compiled.clone());
        Ok(compiled)
    }

    fn check(&self, key: &str, schema: &Value, instance: &Value) -> Vec<String> {
        match self.validator(key, schema) {
            Ok(v) => v
                .iter_errors(instance)
                .take(10)
                .map(|e| format!("{key}: {} at `{}`", e, e.instance_path()))
                .collect(),
            Err(e) => vec![e],
        }
    }

    /// Everything wrong with a request: parameters and body against the operation.
    pub(crate) fn check_request(
        &self,
        op: &Operation,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let name = format!("{} {}", op.method.to_uppercase(), op.template);
        let spec_op = self.operation(op);
        let mut problems = Vec::new();
        let params: Vec<&Value> = spec_op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| self.deref(p)).collect())
            .unwrap_or_default();
        for p in &params {
            let (Some(pname), Some(place)) = (
                p.get("name").and_then(Value::as_str),
                p.get("in").and_then(Value::as_str),
            ) else {
                continue;
            };
            let given = match place {
                "path" => op.params.get(pname).cloned(),
                "query" => query
                    .iter()
                    .find(|(k, _)| k == pname)
                    .map(|(_, v)| v.clone()),
                _ => continue,
            };
            let schema = p.get("schema").cloned().unwrap_or(json!({}));
            match given {
                None if p.get("required") == Some(&Value::Bool(true)) => {
                    problems.push(format!(
                        "{name}: the {place} parameter `{pname}` is missing"
                    ));
                }
                None => {}
                Some(text) => {
                    let typed = match schema.get("type").and_then(Value::as_str) {
                        Some("integer") => text.parse::<i64>().map(Value::from).ok(),
                        Some("boolean") => text.parse::<bool>().map(Value::from).ok(),
                        _ => Some(Value::String(text.clone())),
                    };
                    let Some(typed) = typed else {
                        problems.push(format!(
                            "{name}: the {place} parameter `{pname}` = `{text}` is not a {}",
                            schema["type"]
                        ));
                        continue;
                    };
                    let key = format!("{name} parameter {pname}");
                    problems.extend(self.check(&key, &schema, &typed));
                }
            }
        }
        for (k, _) in query {
            let known = params.iter().any(|p| {
                p.get("in").and_then(Value::as_str) == Some("query")
                    && p.get("name").and_then(Value::as_str) == Some(k.as_str())
            });
            if !known {
                problems.push(format!("{name}: unknown query parameter `{k}`"));
            }
        }
        let declared = spec_op
            .get("requestBody")
            .map(|b| self.deref(b))
            .and_then(|b| b.pointer("/content/application~1json/schema"));
        match (declared, body) {
            (Some(schema), Some(body)) => {
                problems.extend(self.check(&format!("{name} request body"), schema, body));
            }
            (Some(_), None)
                if spec_op.pointer("/requestBody/required") == Some(&Value::Bool(true)) =>
            {
                problems.push(format!("{name}: the request body is missing"));
            }
            (None, Some(_)) => problems.push(format!("{name}: takes no request body")),
            _ => {}
        }
        problems
    }

    /// The schema of a response, if the operation declares that status with a JSON body.
    /// `Err` when the status is not declared at all.
    fn response_schema(&self, op: &Operation, status: u16) -> Result<Option<&Value>, ()> {
        let responses = &self.operation(op)["responses"];
        let declared = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or(())?;
        Ok(self
            .deref(declared)
            .pointer("/content/application~1json/schema"))
    }

    /// Everything wrong with a response. Statuses GitHub can return from any operation (401,
    /// 403, 404, 422, 429, 5xx) but that an operation does not list are checked against the
    /// `basic-error` schema.
    pub(crate) fn check_response(&self, op: &Operation, status: u16, body: &Value) -> Vec<String> {
        let name = format!("{} {} {status}", op.method.to_uppercase(), op.template);
        match self.response_schema(op, status) {
            Ok(Some(schema)) => self.check(&format!("{name} response"), schema, body),
            Ok(None) => Vec::new(),
            Err(()) if matches!(status, 401 | 403 | 404 | 422 | 429 | 500..=599) => {
                let schema = json!({"$ref": "#/components/schemas/basic-error"});
                self.check("basic-error", &schema, body)
            }
            Err(()) => vec![format!("{name}: the status is not declared")],
        }
    }

    /// The smallest object that the operation's `status` response schema accepts, with
    /// `overlay` merged over it.
    pub(crate) fn respond(&self, op: &Operation, status: u16, overlay: Value) -> Value {
        let mut base = match self.response_schema(op, status) {
            Ok(Some(schema)) => self.synth(schema, 0),
            _ => Value::Null,
        };
        merge(&mut base, overlay);
        base
    }

    /// A minimal valid instance of a schema (the first alternative of a choice).
    pub(crate) fn synth(&self, schema: &Value, depth: usize) -> Value {
        let schema = self.deref(schema);
        if depth > 12 {
            return Value::Null;
        }
        if schema.get("nullable") == Some(&Value::Bool(true)) {
            return Value::Null;
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            let mut out = Value::Object(Map::new());
            for s in all {
                merge(&mut out, self.synth(s, depth + 1));
            }
            return out;
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = schema.get(key).and_then(|a| a.get(0)) {
                return self.synth(first, depth + 1);
            }
        }
        if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
            return first.clone();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") | None if schema.get("properties").is_some() => {
                let mut out = Map::new();
                let props = &schema["properties"];
                for r in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = r.as_str() {
                        let sub = props.get(r).cloned().unwrap_or(json!({}));
                        out.insert(r.to_owned(), self.synth(&sub, depth + 1));
                    }
                }
                Value::Object(out)
            }
            Some("object") => json!({}),
            Some("array") => json!([]),
            Some("integer") | Some("number") => json!(1),
            Some("boolean") => json!(false),
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => json!("2026-01-01T00:00:00Z"),
                Some("uri") => json!("https://github.invalid/fake"),
                Some("email") => json!("fake@example.com"),
                _ => json!("x"),
            },
            _ => Value::Null,
        }
    }
}

/// Deep merge: objects key by key, anything else replaced.
pub(crate) fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_with_spanning_parameters() {
        let s = spec();
        let op = s
            .find("get", "/repos/o/r/contents/deploy/production.yaml")
            .expect("contents");
        assert_eq!(op.template, "/repos/{owner}/{repo}/contents/{path}");
        assert_eq!(op.params["path"], "deploy/production.yaml");
        let op = s
            .find("get", "/repos/o/r/git/ref/heads/mlops/promote/m")
            .expect("ref");
        assert_eq!(op.params["ref"], "heads/mlops/promote/m");
        let op = s.find("get", "/repos/o/r/pulls/7").expect("pull");
        assert_eq!(op.template, "/repos/{owner}/{repo}/pulls/{pull_number}");
        assert!(s.find("delete", "/repos/o/r").is_none());
    }

    #[test]
    fn synthesized_responses_are_valid_and_overlays_are_checked() {
        let s = spec();
        let op = s.find("get", "/repos/o/r/pulls/7").expect("pull");
        let body = s.respond(&op, 200, json!({"number": 7}));
        assert_eq!(s.check_response(&op, 200, &body), Vec::<String>::new());
        let bad = s.respond(&op, 200, json!({"number": "seven"}));
        assert!(!s.check_response(&op, 200, &bad).is_empty());
    }

    #[test]
    fn malformed_requests_are_named() {
        let s = spec();
        let op = s.find("post", "/repos/o/r/pulls").expect("create");
        let problems = s.check_request(&op, &[], Some(&json!({"title": 3, "head": "x"})));
        assert!(problems.iter().any(|p| p.contains("base")), "{problems:?}");
        let op = s
            .find("get", "/repos/o/r/pulls/7/reviews")
            .expect("reviews");
        let problems = s.check_request(&op, &[("per_page".into(), "many".into())], None);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
