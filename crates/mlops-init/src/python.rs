//! Values written the way Python writes them, because cookiecutter renders with Jinja2 on
//! Python: `{{ x }}` is `str(x)` (`True`, `None`, `['a', 'b']`, `{'k': 1}`), and the `jsonify`
//! and `tojson` filters are `json.dumps` with sorted keys and ASCII escapes.

use minijinja::value::{Value, ValueKind};

/// `str(value)`: strings as they are, everything else as its `repr`.
pub fn str(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_owned(),
        None => repr(value),
    }
}

/// `repr(value)`.
pub fn repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => "None".to_owned(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_owned(),
        ValueKind::Number => number(value),
        ValueKind::String => repr_str(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = iter(value).map(|v| repr(&v)).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = iter(value)
                .map(|k| {
                    let v = value.get_item(&k).unwrap_or_default();
                    format!("{}: {}", repr(&k), repr(&v))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

fn iter(value: &Value) -> impl Iterator<Item = Value> + '_ {
    value.try_iter().into_iter().flatten()
}

/// A number as Python prints it: integers as digits, floats as the shortest text that reads
/// back (`1.0`, `0.1`, `1e+16`, `inf`, `nan`).
fn number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) => float(f),
        Err(_) => value.to_string(),
    }
}

pub(crate) fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Python switches to exponent notation below 1e-4 and from 1e16.
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let text = format!("{f:e}"); // e.g. 1e16, 1.5e-5
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let text = format!("{f:?}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

/// Python's `repr` of a string: single quotes unless it holds a single quote and no double one.
fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `json.dumps(value, sort_keys=True, indent=indent)` (`ensure_ascii`, Python's separators:
/// `", "` without an indent, `","` and newlines with one).
pub fn json_dumps(value: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    dump(value, indent, 0, &mut out);
    out
}

fn dump(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if value.is_integer() {
                out.push_str(&value.to_string());
            } else {
                let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
                out.push_str(&match float(f).as_str() {
                    "nan" => "NaN".to_owned(),
                    "inf" => "Infinity".to_owned(),
                    "-inf" => "-Infinity".to_owned(),
                    other => other.to_owned(),
                });
            }
        }
        ValueKind::String => json_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = iter(value).collect();
            container(out, '[', ']', items.len(), indent, depth, |i, out| {
                if let Some(item) = items.get(i) {
                    dump(item, indent, depth + 1, out);
                }
            });
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = iter(value).collect();
            keys.sort_by_key(str);
            container(out, '{', '}', keys.len(), indent, depth, |i, out| {
                let Some(key) = keys.get(i) else { return };
                json_str(&str(key), out);
                out.push_str(": ");
                let v = value.get_item(key).unwrap_or_default();
                dump(&v, indent, depth + 1, out);
            });
        }
        _ => json_str(&value.to_string(), out),
    }
}

fn container(
    out: &mut String,
    open: char,
    close: char,
    len: usize,
    indent: Option<usize>,
    depth: usize,
    mut item: impl FnMut(usize, &mut String),
) {
    out.push(open);
    if len == 0 {
        out.push(close);
        return;
    }
    for i in 0..len {
        match indent {
            Some(n) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(n * (depth + 1)));
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
        item(i, out);
    }
    if let Some(n) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
    out.push(close);
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_python_prints_them() {
        let v = |j: serde_json::Value| Value::from(minijinja::value::Serde(&j));
        assert_eq!(str(&v(serde_json::json!(true))), "True");
        assert_eq!(str(&v(serde_json::json!(null))), "None");
        assert_eq!(str(&v(serde_json::json!("it's"))), "it's");
        assert_eq!(
            str(&v(serde_json::json!(["a", 1, 2.5, false, "it's"]))),
            r#"['a', 1, 2.5, False, "it's"]"#
        );
        assert_eq!(
            str(&v(serde_json::json!({"b": 1, "a": {"x": null}}))),
            "{'b': 1, 'a': {'x': None}}"
        );
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(1e16), "1e+16");
        assert_eq!(float(1.5e-5), "1.5e-05");
        assert_eq!(float(0.0001), "0.0001");
    }

    #[test]
    fn json_dumps_is_pythons() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"b": [1, 2], "a": "é", "c": {}}),
        ));
        assert_eq!(
            json_dumps(&v, Some(4)),
            "{\n    \"a\": \"\\u00e9\",\n    \"b\": [\n        1,\n        2\n    ],\n    \"c\": {}\n}"
        );
        assert_eq!(
            json_dumps(&v, None),
            "{\"a\": \"\\u00e9\", \"b\": [1, 2], \"c\": {}}"
        );
    }
}
