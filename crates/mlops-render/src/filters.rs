//! The quoting filters templates must use for every manifest value: `hcl` (a Terraform
//! expression), `yaml` (a YAML scalar or flow collection read literally) and `gha` (a YAML
//! scalar in a place GitHub evaluates `${{ }}` expressions, which it neutralises), and
//! `gha_string` (a string literal inside an expression, for names only).
//!
//! Architecture invariant: whatever the value, the filter's output is one self-contained
//! literal of the target language whose parsed value is exactly the input. A test over the
//! templates checks that no substitution reaches a rendered file without one of these filters.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// A Terraform literal: strings are quoted with `${` and `%{` escaped so that Terraform's own
/// template language never sees them; sequences and maps become tuples and objects.
pub(crate) fn hcl(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_hcl(value, &mut out)?;
    Ok(out)
}

fn write_hcl(value: &Value, out: &mut String) -> Result<(), Error> {
    match value.kind() {
        ValueKind::String => hcl_string(value.as_str().unwrap_or_default(), out),
        ValueKind::Number | ValueKind::Bool => write_literal(value, out),
        ValueKind::Seq | ValueKind::Iterable => write_seq(value, out, write_hcl)?,
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                hcl_string(&key.to_string(), out);
                out.push_str(" = ");
                write_hcl(&value.get_item(&key)?, out)?;
            }
            out.push_str(if out.ends_with('{') { "}" } else { " }" });
        }
        _ => return Err(cannot_quote("hcl", value)),
    }
    Ok(())
}

/// Numbers and booleans read the same in HCL and YAML.
fn write_literal(value: &Value, out: &mut String) {
    if value.kind() == ValueKind::Bool {
        out.push_str(if value.is_true() { "true" } else { "false" });
    } else {
        out.push_str(&value.to_string());
    }
}

/// `[a, b]`, each item written by `item`: the same flow syntax in HCL and YAML.
fn write_seq(
    value: &Value,
    out: &mut String,
    mut item: impl FnMut(&Value, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push('[');
    for (i, v) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item(&v, out)?;
    }
    out.push(']');
    Ok(())
}

fn hcl_string(s: &str, out: &mut String) {
    quote(s, out, true);
}

/// A YAML flow literal read as exactly this value (strings double-quoted), for places where
/// GitHub does not evaluate expressions (`on:` filters, comments excluded).
pub(crate) fn yaml(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_yaml(value, &mut out, false)?;
    Ok(out)
}

/// Like [`yaml`], for places where GitHub evaluates `${{ }}`: a literal `${{` in the value is
/// written as `${{ '$' }}{{`, which GitHub evaluates back to `${{` without evaluating what
/// follows.
pub(crate) fn gha(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_yaml(value, &mut out, true)?;
    Ok(out)
}

/// A name this binary chose (an environment, an alarm kind) used as part of an identifier:
/// checked to be lowercase letters, digits and underscores, and written as is.
pub(crate) fn ident(value: &Value) -> Result<String, Error> {
    as_is(value, "an identifier", |s| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// A name this binary derived (a workflow file, a GitHub variable) written into a workflow as
/// is, where no quoting fits (`vars.NAME`, a reusable workflow's path): checked to be ASCII
/// letters, digits and `._-` only.
pub(crate) fn word(value: &Value) -> Result<String, Error> {
    as_is(value, "a name of letters, digits and `._-`", |s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// A file path as a pattern of GitHub's `on.push.paths` filters that matches that one path: the
/// characters the filters give a meaning (`*`, `?`, `+`, `[`, `]`, `!` and the escape `\`
/// itself) escaped with `\`, so `data/[2024]/train.csv` is not read as a character class.
pub fn path_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '+' | '[' | ']' | '!' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A string literal inside a GitHub expression (an `if:` condition), `'...'` with `'` doubled as
/// GitHub's expression syntax wants. Only names made of letters, digits and `._/-` are taken, so
/// the literal can never end the YAML plain scalar it sits in (no `: `, ` #`, quotes at its
/// start) or open an expression of its own.
pub(crate) fn gha_string(value: &Value) -> Result<String, Error> {
    as_is(value, "a name of letters, digits and `._/-`", |s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
    })
    .map(|s| format!("'{s}'"))
}

/// A container image reference pinned by digest (`NAME[:TAG]@sha256:HEX`), checked character by
/// character and written as is (a Dockerfile has no quoting for `FROM`).
pub(crate) fn image(value: &Value) -> Result<String, Error> {
    as_is(value, "an image pinned by digest", |s| {
        s.split_once("@sha256:").is_some_and(|(name, digest)| {
            !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._/:-".contains(&b))
                && lower_hex(digest, 64)
        })
    })
}

/// `value`'s text, written as is when `ok` accepts it; else an error saying it is not `what`.
fn as_is(value: &Value, what: &str, ok: impl Fn(&str) -> bool) -> Result<String, Error> {
    let s = value.as_str().unwrap_or_default();
    if ok(s) {
        Ok(s.to_owned())
    } else {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`{value}` is not {what}"),
        ))
    }
}

/// Exactly `len` lowercase hexadecimal digits (a git SHA, a SHA-256 digest).
pub fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `OWNER/REPO[/PATH]@SHA # VERSION` for a pinned action (`pin` has `repo`, `sha`, `version`),
/// after checking each part's characters: pins may come from the user's files, so they are
/// validated like any other input rather than trusted.
pub(crate) fn uses(pin: &Value, path: Option<&str>) -> Result<String, Error> {
    let field = |name: &str| -> Result<String, Error> {
        Ok(pin.get_attr(name)?.as_str().unwrap_or_default().to_owned())
    };
    let (repo, sha, version) = (field("repo")?, field("sha")?, field("version")?);
    let word = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
    };
    let repo_ok = repo
        .split_once('/')
        .is_some_and(|(o, r)| word(o, b"") && word(r, b""));
    let path_ok = path.is_none_or(|p| word(p, b"/") && !p.contains(".."));
    if !(repo_ok && path_ok && lower_hex(&sha, 40) && word(&version, b"+")) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("not a pinned action: {repo} {sha} {version}"),
        ));
    }
    Ok(match path {
        Some(p) => format!("{repo}/{p}@{sha} # {version}"),
        None => format!("{repo}@{sha} # {version}"),
    })
}

/// What GitHub makes of a `gha`-quoted string: the inverse of the escape (used by tests).
pub fn github_unescape(s: &str) -> String {
    s.replace(GHA_DOLLAR, "${{")
}

const GHA_DOLLAR: &str = "${{ '$' }}{{";

fn write_yaml(value: &Value, out: &mut String, github: bool) -> Result<(), Error> {
    match value.kind() {
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if github {
                yaml_string(&s.replace("${{", GHA_DOLLAR), out);
            } else {
                yaml_string(s, out);
            }
        }
        ValueKind::Number | ValueKind::Bool => write_literal(value, out),
        ValueKind::Seq | ValueKind::Iterable => {
            write_seq(value, out, |item, out| write_yaml(item, out, github))?;
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_string(&key.to_string(), out);
                out.push_str(": ");
                write_yaml(&value.get_item(&key)?, out, github)?;
            }
            out.push('}');
        }
        _ => return Err(cannot_quote(if github { "gha" } else { "yaml" }, value)),
    }
    Ok(())
}

/// A YAML double-quoted scalar.
fn yaml_string(s: &str, out: &mut String) {
    quote(s, out, false);
}

/// A double-quoted string, the same syntax in HCL and YAML: backslash, quote and every
/// non-printable character escaped (`\uXXXX` reads the same in both). With `template_openers`,
/// `${` and `%{` are doubled so that Terraform reads them literally.
fn quote(s: &str, out: &mut String, template_openers: bool) {
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if template_openers && chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() || c == '\u{feff}' || ('\u{2028}'..='\u{2029}').contains(&c) => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn cannot_quote(filter: &str, value: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the `{filter}` filter cannot quote a {} value",
            value.kind()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_patterns_that_match_only_themselves() {
        assert_eq!(path_pattern("ml/data/train.csv"), "ml/data/train.csv");
        assert_eq!(
            path_pattern("d/[2024] a+b!*?.csv"),
            r"d/\[2024\] a\+b\!\*\?.csv"
        );
        assert_eq!(path_pattern(r"a\b"), r"a\\b");
    }

    fn v(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn hcl_escapes_template_sequences_quotes_and_newlines() {
        assert_eq!(
            hcl(&v("a\"b\\c\n${x}%{if}$y%z")).unwrap(),
            r#""a\"b\\c\n$${x}%%{if}$y%z""#
        );
    }

    #[test]
    fn hcl_quotes_collections_element_by_element() {
        let value = Value::from(minijinja::value::Serde(
            serde_json::json!({"k\"": ["${a}", 1, true]}),
        ));
        assert_eq!(hcl(&value).unwrap(), r#"{ "k\"" = ["$${a}", 1, true] }"#);
        let empty = Value::from(minijinja::value::Serde(serde_json::json!({})));
        assert_eq!(hcl(&empty).unwrap(), "{}");
    }

    #[test]
    fn yaml_is_a_double_quoted_scalar() {
        assert_eq!(yaml(&v("a: #b\n'c\"")).unwrap(), r#""a: #b\n'c\"""#);
        assert_eq!(yaml(&v("\u{7f}\u{85}")).unwrap(), r#""\u007f\u0085""#);
    }

    #[test]
    fn gha_neutralises_expressions_and_unescapes_back() {
        let raw = "x ${{ github.token }} ${{";
        let quoted = gha(&v(raw)).unwrap();
        assert!(!quoted.replace(GHA_DOLLAR, "").contains("${{"), "{quoted}");
        let inner: String = serde_json::from_str(&quoted).unwrap();
        assert_eq!(github_unescape(&inner), raw);
    }

    #[test]
    fn gha_string_is_an_expression_literal_of_a_plain_name() {
        assert_eq!(
            gha_string(&v("mlops/promote/digits-mlp")).unwrap(),
            "'mlops/promote/digits-mlp'"
        );
        for bad in [
            "",
            "a'b",
            "a b",
            "x #y",
            "a: b",
            "${{ github.token }}",
            "a\nb",
        ] {
            assert!(gha_string(&v(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_takes_only_references_pinned_by_digest() {
        let digest = "9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f";
        let good = format!("registry.example:5000/team/base:1.2_x@sha256:{digest}");
        assert_eq!(image(&v(&good)).expect("pinned"), good);
        for bad in [
            "debian:bookworm".to_owned(),
            format!("debian@sha256:{}", digest.split_at(1).1),
            format!("debian@sha256:{}", digest.to_uppercase()),
            format!("debian\nRUN curl x@sha256:{digest}"),
            format!("debian@sha256:{digest} AS x"),
            format!("-debian@sha256:{digest}"),
        ] {
            assert!(image(&v(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uses_checks_every_part_of_a_pin() {
        let pin = |repo: &str, sha: &str, version: &str| {
            Value::from(minijinja::value::Serde(
                serde_json::json!({"repo": repo, "sha": sha, "version": version}),
            ))
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            uses(&pin("a/b", sha, "v1.2.3"), Some("actions/x")).unwrap(),
            format!("a/b/actions/x@{sha} # v1.2.3")
        );
        assert!(uses(&pin("a/b", sha, "v1 #x"), None).is_err());
        assert!(uses(&pin("a/b\n", sha, "v1"), None).is_err());
        assert!(uses(&pin("a/b", "main", "v1"), None).is_err());
        assert!(uses(&pin("a/b", sha, "v1"), Some("../x")).is_err());
    }

    #[test]
    fn undefined_and_none_values_are_refused() {
        assert!(hcl(&Value::UNDEFINED).is_err());
        assert!(yaml(&Value::from(())).is_err());
    }
}
