//! The template engine: `mlops render`'s strict minijinja setup with Jinja2's default syntax and
//! what cookiecutter adds to Jinja2 out of the box — `jsonify`, `slugify`, `random_ascii_string`,
//! `uuid4` and `{% now %}` — plus Python's string methods and Python's way of printing values.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind};

use crate::python;

/// The extensions cookiecutter loads itself, and jinja2-time's, which it replaced: naming them in
/// `_extensions` changes nothing.
const BUILT_IN: &[&str] = &[
    "cookiecutter.extensions.JsonifyExtension",
    "cookiecutter.extensions.RandomStringExtension",
    "cookiecutter.extensions.SlugifyExtension",
    "cookiecutter.extensions.TimeExtension",
    "cookiecutter.extensions.UUIDExtension",
    "jinja2_time.TimeExtension",
];

/// The environment for a template whose `_extensions` are `extensions`; an extension this
/// engine does not implement is refused by name.
pub fn environment(extensions: &[String]) -> Result<Environment<'static>, String> {
    if let Some(unknown) = extensions.iter().find(|e| !BUILT_IN.contains(&e.as_str())) {
        return Err(unknown.clone());
    }
    let syntax = SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .unwrap_or_default();
    let mut env = mlops_render::templates::strict_environment(syntax);
    env.set_formatter(|out, _state, value| {
        out.write_str(&python::str(value))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "write failed"))
    });
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("jsonify", |v: Value, indent: Option<usize>| {
        python::json_dumps(&v, Some(indent.unwrap_or(4)))
    });
    env.add_filter("tojson", |v: Value, indent: Option<usize>| {
        jinja_tojson(&python::json_dumps(&v, indent))
    });
    env.add_filter("slugify", slugify_filter);
    env.add_function("random_ascii_string", random_ascii_string);
    env.add_function("uuid4", uuid4);
    env.add_function("__mlops_now", now);
    Ok(env)
}

/// Jinja2's `tojson`: `json.dumps` with sorted keys, HTML-significant characters escaped.
fn jinja_tojson(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027")
}

fn slugify_filter(value: String, kwargs: Kwargs) -> Result<String, Error> {
    let separator: Option<String> = kwargs.get("separator")?;
    let lowercase: Option<bool> = kwargs.get("lowercase")?;
    let max_length: Option<usize> = kwargs.get("max_length")?;
    kwargs.assert_all_used()?;
    let mut slug = slugify(&value, lowercase.unwrap_or(true));
    if let Some(n) = max_length.filter(|n| *n > 0) {
        slug = slug.chars().take(n).collect::<String>();
        slug = slug.trim_end_matches('-').to_owned();
    }
    if let Some(sep) = separator.filter(|s| s != "-") {
        slug = slug.replace('-', &sep);
    }
    Ok(slug)
}

/// python-slugify's default: HTML entities decoded, quotes dropped, NFKD with marks dropped (its
/// transliteration, for Latin letters), lowercase, `,` between digits dropped, every run of
/// other characters one `-`, no `-` at either end.
pub fn slugify(text: &str, lowercase: bool) -> String {
    use unicode_normalization::UnicodeNormalization;
    let text = decode_entities(text).replace('\'', "-");
    let mut ascii: String = text.nfkd().filter(char::is_ascii).collect();
    if lowercase {
        ascii = ascii.to_lowercase();
    }
    let ascii = ascii.replace('\'', "");
    let chars: Vec<char> = ascii.chars().collect();
    let mut cleaned = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = c == ','
            && i.checked_sub(1)
                .and_then(|p| chars.get(p))
                .is_some_and(char::is_ascii_digit)
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !between_digits {
            cleaned.push(c);
        }
    }
    let mut slug = String::with_capacity(cleaned.len());
    for c in cleaned.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    slug.trim_matches('-').to_owned()
}

/// `&amp;`-style named references (the common ones), `&#NN;` and `&#xHH;`.
fn decode_entities(text: &str) -> String {
    const NAMED: &[(&str, char)] = &[
        ("amp", '&'),
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("nbsp", '\u{a0}'),
        ("copy", '\u{a9}'),
        ("reg", '\u{ae}'),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, tail)) = rest.split_once('&') {
        out.push_str(before);
        let decoded = tail.split_once(';').and_then(|(name, after)| {
            let c = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok().and_then(char::from_u32)
            } else {
                NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
            };
            c.map(|c| (c, after))
        });
        match decoded {
            Some((c, after)) => {
                out.push(c);
                rest = after;
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

fn random_ascii_string(length: usize, punctuation: Option<bool>) -> Result<String, Error> {
    let mut corpus: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
    if punctuation.unwrap_or(false) {
        corpus.extend(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
    }
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 4];
    while out.len() < length {
        getrandom::fill(&mut buf)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        let n = u32::from_le_bytes(buf);
        // Reject the top of the range so every character is equally likely.
        let len = corpus.len() as u32;
        if n < u32::MAX - u32::MAX % len
            && let Some(&c) = corpus.get((n % len) as usize)
        {
            out.push(c as char);
        }
    }
    Ok(out)
}

fn uuid4() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = |r: std::ops::Range<usize>| -> String {
        b.get(r)
            .unwrap_or_default()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    Ok(format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    ))
}

/// `{% now %}` after [`rewrite_now`]: the time (`SOURCE_DATE_EPOCH` when set, for reproducible
/// output) in `utc` or `local`, shifted by `days=1, hours=-2`-style offsets, in `format`
/// (strftime; default `%Y-%m-%d`).
fn now(args: Rest<Value>) -> Result<String, Error> {
    let bad = |m: String| Error::new(ErrorKind::InvalidOperation, m);
    let arg = |i: usize| args.get(i).and_then(|v| v.as_str()).map(str::to_owned);
    let zone = arg(0).ok_or_else(|| bad("{% now %} needs a timezone".into()))?;
    let (sign, offset, format) = match args.len() {
        1 | 2 => (None, None, arg(1)),
        _ => (arg(1), arg(2), arg(3)),
    };
    let at = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => {
            let secs: i64 = s
                .trim()
                .parse()
                .map_err(|_| bad(format!("SOURCE_DATE_EPOCH `{s}` is not a whole number")))?;
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| bad(format!("SOURCE_DATE_EPOCH `{s}` is out of range")))?
        }
        _ => chrono::Utc::now(),
    };
    let mut at = match zone.to_ascii_lowercase().as_str() {
        "utc" => at.fixed_offset(),
        "local" => at.with_timezone(&chrono::Local).fixed_offset(),
        other => {
            return Err(bad(format!(
                "{{% now '{other}' %}}: only 'utc' and 'local' are supported"
            )));
        }
    };
    if let (Some(sign), Some(offset)) = (sign, offset) {
        for part in offset.split(',') {
            let (unit, amount) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{{% now %}} offset `{part}` is not unit=number")))?;
            let amount: f64 = amount
                .trim()
                .parse()
                .map_err(|_| bad(format!("{{% now %}} offset `{part}` is not a number")))?;
            let amount = if sign == "-" { -amount } else { amount };
            let secs = match unit.trim() {
                "weeks" => amount * 604_800.0,
                "days" => amount * 86_400.0,
                "hours" => amount * 3_600.0,
                "minutes" => amount * 60.0,
                "seconds" => amount,
                other => {
                    return Err(bad(format!(
                        "{{% now %}} offset unit `{other}` is not weeks, days, hours, minutes or seconds"
                    )));
                }
            };
            at += chrono::Duration::milliseconds((secs * 1000.0).round() as i64);
        }
    }
    let format = format.unwrap_or_else(|| "%Y-%m-%d".to_owned());
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", at.format(&format))
        .map_err(|_| bad(format!("`{format}` is not a valid strftime format")))?;
    Ok(out)
}

/// Jinja2 lets cookiecutter add a `now` tag; minijinja has no custom tags, so each `{% now A %}`,
/// `{% now A, F %}` and `{% now A + B, F %}` (or `-`) becomes a call: `{{ __mlops_now(A, F) }}`,
/// `{{ __mlops_now(A, '+', B, F) }}`, keeping its whitespace control.
pub fn rewrite_now(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("{%") {
        let (before, tag) = rest.split_at(at);
        out.push_str(before);
        // The closing `%}` after the opening `{%` (in `{%}` they overlap).
        let Some(end) = tag.get(2..).and_then(|t| t.find("%}")).map(|i| i + 2) else {
            out.push_str(tag);
            return out;
        };
        let (whole, after) = tag.split_at_checked(end + 2).unwrap_or((tag, ""));
        let inner = whole.get(2..end).unwrap_or_default();
        let (open, inner) = match inner.strip_prefix('-') {
            Some(i) => ("{{-", i),
            None => ("{{", inner),
        };
        let (close, inner) = match inner.strip_suffix('-') {
            Some(i) => ("-}}", i),
            None => ("}}", inner),
        };
        let trimmed = inner.trim();
        match trimmed
            .strip_prefix("now")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            Some(args) => {
                let parts = split_top(args.trim(), ',');
                let first = parts.first().copied().unwrap_or_default().trim();
                let format = parts.get(1).map(|f| f.trim());
                let call = match (split_operator(first), format) {
                    (Some((a, op, b)), f) => format!("{a}, '{op}', {b}, {}", f.unwrap_or("none")),
                    (None, Some(f)) => format!("{first}, {f}"),
                    (None, None) => first.to_owned(),
                };
                out.push_str(&format!("{open} __mlops_now({call}) {close}"));
            }
            None => out.push_str(whole),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `s` split at `sep` where it is outside quotes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quote, mut start) = (None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c == sep => {
                parts.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

/// `A + B` or `A - B` (outside quotes) as its parts.
fn split_operator(s: &str) -> Option<(&str, char, &str)> {
    for op in ['+', '-'] {
        if let [a, b] = split_top(s, op).as_slice() {
            return Some((a.trim(), op, b.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_python_slugifys() {
        assert_eq!(slugify("My Cool Project!", true), "my-cool-project");
        assert_eq!(slugify("Crème brûlée & Co's", true), "creme-brulee-co-s");
        assert_eq!(slugify("1,000 models", true), "1000-models");
        assert_eq!(slugify("--a__b--", true), "a-b");
        assert_eq!(slugify("Keep Case", false), "Keep-Case");
    }

    /// Found by the `init_path` fuzz target: in `{%}` the closing `%}` overlaps the opening `{%`,
    /// and the tag's inside was sliced backwards (a panic on any template file holding it).
    #[test]
    fn an_overlapping_tag_end_is_left_to_the_template_engine() {
        assert_eq!(rewrite_now("{%}"), "{%}");
        assert_eq!(rewrite_now("a {%} b %} c"), "a {%} b %} c");
        let saved = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fuzz/regressions/init_path/overlapping-tag-end"
        ))
        .expect("the saved input");
        let text = String::from_utf8_lossy(&saved);
        let _ = rewrite_now(&text);
    }

    #[test]
    fn now_tags_become_calls() {
        assert_eq!(
            rewrite_now("a {% now 'utc' %} b"),
            "a {{ __mlops_now('utc') }} b"
        );
        assert_eq!(
            rewrite_now("{%- now 'local', '%Y' -%}"),
            "{{- __mlops_now('local', '%Y') -}}"
        );
        assert_eq!(
            rewrite_now("{% now 'utc' + 'days=1', '%d' %}"),
            "{{ __mlops_now('utc', '+', 'days=1', '%d') }}"
        );
        assert_eq!(
            rewrite_now("{% if x %}{% endif %}"),
            "{% if x %}{% endif %}"
        );
    }

    #[test]
    fn unknown_extensions_are_refused_by_name() {
        let err = environment(&["local_extensions.Foo".to_owned()]).err();
        assert_eq!(err.as_deref(), Some("local_extensions.Foo"));
        assert!(environment(&["jinja2_time.TimeExtension".to_owned()]).is_ok());
    }
}
