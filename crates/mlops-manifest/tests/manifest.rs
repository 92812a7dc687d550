//! Integration tests of the manifest crate: the examples, snapshot tests of the diagnostics of
//! every `examples/invalid` fixture, property tests proving that locations are exact, and the
//! bad-input cases (encoding, size, random damage).

// Tests: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mlops_manifest::diagnostic::render_human;
use mlops_manifest::yaml::{self, Node, Pos, Segment, Value};
use mlops_manifest::{check_bytes, check_file, schema};
use proptest::prelude::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["quickstart", "sagemaker"] {
        let rel = format!("examples/{dir}/mlops.yaml");
        let text = std::fs::read_to_string(root().join(&rel)).expect("example exists");
        out.push((rel, text));
    }
    out
}

#[test]
fn examples_are_valid_and_declare_the_schema() {
    for (name, text) in examples() {
        let report = check_bytes(&name, text.as_bytes());
        assert!(
            report.is_valid(),
            "{name}:\n{}",
            render_human(&report.diagnostics, &report.source)
        );
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../schema/mlops.schema.json\n"),
            "{name} must start with the yaml-language-server schema line"
        );
    }
}

#[test]
fn examples_also_pass_through_the_file_reader() {
    let report = check_file(&root().join("examples/quickstart/mlops.yaml")).expect("readable");
    assert!(report.is_valid());
    assert_eq!(
        report.manifest.as_ref().map(|m| m.model.name.as_str()),
        Some("digits-mlp")
    );
}

/// Who writes an `onnx` model decides whether `model.path` is needed: nobody (the `local`
/// backend registers the file) needs it; a training command or a training image of the user's
/// writes it, and a path beside them is an error; that image is named by tag or digest.
#[test]
fn an_onnx_model_needs_exactly_one_writer() {
    let (_, text) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("quickstart/mlops.yaml"))
        .expect("quickstart");
    let onnx = text.replace(
        "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
        "  family: onnx\n",
    );
    assert!(onnx.contains("family: onnx"));
    let sagemaker = |image: &str| {
        onnx.replace("  backend: local\n", "  backend: sagemaker\n").replace(
            "  local:\n    device: cpu\n",
            &format!(
                "  sagemaker:\n    role_arn: arn:aws:iam::123456789012:role/x\n    image:\n      \
                 repository: acme/trainer\n{image}    instance_type: ml.m5.large\n"
            ),
        )
    };
    let codes = |text: &str| -> Vec<&'static str> {
        check_bytes("m.yaml", text.as_bytes())
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    };
    let with_path = |t: &str| t.replace("  family: onnx\n", "  family: onnx\n  path: m.onnx\n");
    assert_eq!(codes(&onnx), ["semantic/onnx-path"]);
    assert_eq!(codes(&with_path(&onnx)), Vec::<&str>::new());
    let tagged = sagemaker("      tag: v3\n");
    assert_eq!(codes(&tagged), Vec::<&str>::new());
    assert_eq!(
        codes(&with_path(&tagged)),
        ["semantic/onnx-path-and-training"]
    );
    assert_eq!(codes(&sagemaker("")), ["semantic/onnx-sagemaker-image"]);
}

/// Every fixture declares `# expect-errors: N`: exactly N diagnostics at N distinct locations,
/// and the human rendering is snapshotted.
#[test]
fn invalid_fixtures() {
    insta::glob!("../../../examples/invalid", "*.yaml", |path| {
        let text = std::fs::read(path).expect("fixture");
        let name = format!(
            "examples/invalid/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let expected: usize = String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix("# expect-errors: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} lacks an `# expect-errors: N` line"));
        let report = check_bytes(&name, &text);
        assert!(!report.is_valid(), "{name} should be invalid");
        let rendered = render_human(&report.diagnostics, &report.source);
        assert_eq!(report.diagnostics.len(), expected, "{name}:\n{rendered}");
        let places: HashSet<(usize, usize)> = report
            .diagnostics
            .iter()
            .map(|d| (d.line, d.column))
            .collect();
        assert_eq!(
            places.len(),
            expected,
            "{name}: diagnostics share a location:\n{rendered}"
        );
        for d in &report.diagnostics {
            assert!(
                d.hint.is_some(),
                "{name}: every diagnostic carries a hint: {d:?}"
            );
        }
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn non_utf8_is_located() {
    let report = check_bytes("bad.yaml", b"version: 1\nproject:\n  name: caf\xe9\n");
    assert_eq!(report.diagnostics.len(), 1);
    let d = &report.diagnostics[0];
    assert_eq!((d.code, d.line, d.column), ("input/encoding", 3, 12));
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    // Syntactically broken after the first line: were it parsed, the error would be a syntax one.
    let mut text = String::from("version: 1\n[[[\n");
    text.push_str(&"# padding\n".repeat(120_000));
    std::fs::write(&path, text).expect("write");
    let report = check_file(&path).expect("readable");
    assert_eq!(report.diagnostics.len(), 1);
    assert_eq!(report.diagnostics[0].code, "input/too-large");
}

#[test]
fn unreadable_paths_are_read_errors_not_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        check_file(&dir.path().join("missing.yaml")),
        Err(mlops_manifest::ReadError::Io { .. })
    ));
    assert!(matches!(
        check_file(dir.path()),
        Err(mlops_manifest::ReadError::IsDir { .. })
    ));
}

#[test]
fn a_bom_is_accepted() {
    let (_, text) = &examples()[0];
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(text.as_bytes());
    assert!(check_bytes("bom.yaml", &bytes).is_valid());
}

// ---- Locations are proven, not assumed -------------------------------------------------------

/// A mapping node of an example where a key can be inserted, and how.
#[derive(Debug, Clone)]
struct Site {
    example: usize,
    /// Position of an existing key of the mapping: the new key goes right before it.
    at: Pos,
    /// Block mapping (insert a line) or flow mapping (insert inline).
    block: bool,
    /// The value written for the new key: `1` in a struct (whose unknown keys are never
    /// type-checked), a sibling's value in a map keyed by metric (so that only the key is wrong).
    value: String,
}

/// Calls `f` on every node of the tree, with its path.
fn walk<'a>(node: &'a Node, path: &mut Vec<Segment>, f: &mut dyn FnMut(&'a Node, &[Segment])) {
    f(node, path);
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                path.push(Segment::Key(k.name.clone()));
                walk(v, path, f);
                path.pop();
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                walk(v, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

fn line_of(text: &str, line: usize) -> &str {
    text.lines().nth(line - 1).unwrap_or("")
}

/// Mappings whose schema closes their keys (structs, or metric maps with `propertyNames`).
fn insertion_sites() -> Vec<Site> {
    let mut sites = Vec::new();
    for (i, (_, text)) in examples().iter().enumerate() {
        let tree = yaml::parse(text, Default::default()).expect("example parses");
        let mut path = Vec::new();
        walk(&tree, &mut path, &mut |node, p| {
            let Value::Map(entries) = &node.value else {
                return;
            };
            let Some(sub) = schema::at(schema::committed(), p) else {
                return;
            };
            let is_struct =
                sub.get("additionalProperties") == Some(&serde_json::Value::Bool(false));
            let is_keyed_map = sub.get("propertyNames").is_some();
            if !is_struct && !is_keyed_map {
                return;
            }
            for (k, v) in entries {
                let value = if is_struct {
                    "1".to_owned()
                } else if v.span.start.line == v.span.end.line {
                    let line: Vec<char> = line_of(text, v.span.start.line).chars().collect();
                    line[v.span.start.col - 1..v.span.end.col - 1]
                        .iter()
                        .collect()
                } else {
                    continue;
                };
                let before: String = line_of(text, k.span.start.line)
                    .chars()
                    .take(k.span.start.col - 1)
                    .collect();
                if before.trim().is_empty() {
                    sites.push(Site {
                        example: i,
                        at: k.span.start,
                        block: true,
                        value,
                    });
                } else if before.trim_end().ends_with(['{', ',']) {
                    sites.push(Site {
                        example: i,
                        at: k.span.start,
                        block: false,
                        value,
                    });
                }
            }
        });
    }
    sites
}

/// Scalar values on one line, with their spans, that any other type would make invalid.
fn scalar_sites() -> Vec<(usize, Pos, Pos)> {
    let mut sites = Vec::new();
    for (i, (_, text)) in examples().iter().enumerate() {
        let tree = yaml::parse(text, Default::default()).expect("example parses");
        let mut path = Vec::new();
        walk(&tree, &mut path, &mut |node, _| {
            if matches!(node.value, Value::Map(_) | Value::Seq(_))
                || node.span.start.line != node.span.end.line
            {
                return;
            }
            let line = line_of(text, node.span.start.line);
            let start = node.span.start.col - 1;
            let end = node.span.end.col - 1;
            let chars: Vec<char> = line.chars().collect();
            // A quoted scalar's span must cover its quotes for a clean replacement.
            if end > chars.len() || start >= end {
                return;
            }
            let first = chars[start];
            if (first == '"' || first == '\'') && chars[end - 1] != first {
                return;
            }
            sites.push((i, node.span.start, node.span.end));
        });
    }
    sites
}

fn insert_at(text: &str, at: Pos, what: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if n + 1 == at.line {
            let cut: usize = line
                .char_indices()
                .nth(at.col - 1)
                .map_or(line.len(), |(b, _)| b);
            out.push_str(&line[..cut]);
            out.push_str(what);
            out.push_str(&line[cut..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

fn replace_span(text: &str, start: Pos, end: Pos, with: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if n + 1 == start.line {
            let byte = |col: usize| {
                line.char_indices()
                    .nth(col - 1)
                    .map_or(line.len(), |(b, _)| b)
            };
            out.push_str(&line[..byte(start.col)]);
            out.push_str(with);
            out.push_str(&line[byte(end.col)..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// An unknown key inserted into any closed mapping of the examples is reported exactly once,
    /// exactly at that key.
    #[test]
    fn unknown_key_is_located_exactly(index in any::<prop::sample::Index>(), suffix in "[a-z]{3,8}") {
        let sites = insertion_sites();
        prop_assume!(!sites.is_empty());
        let site = &sites[index.index(sites.len())];
        let (name, text) = &examples()[site.example];
        let key = format!("zz_{suffix}");
        let mutated = if site.block {
            let indent = " ".repeat(site.at.col - 1);
            insert_at(text, Pos { line: site.at.line, col: 1 }, &format!("{indent}{key}: {}\n", site.value))
        } else {
            insert_at(text, site.at, &format!("{key}: {}, ", site.value))
        };
        let report = check_bytes(name, mutated.as_bytes());
        let got: Vec<(usize, usize, &str)> = report.diagnostics.iter().map(|d| (d.line, d.column, d.code)).collect();
        prop_assert_eq!(got, vec![(site.at.line, site.at.col, "schema/unknown-key")], "{}", mutated);
    }

    /// A scalar replaced by a mapping (a wrong type for every scalar field) is reported at exactly
    /// that node, and nowhere else.
    #[test]
    fn wrong_type_is_located_exactly(index in any::<prop::sample::Index>()) {
        let sites = scalar_sites();
        prop_assume!(!sites.is_empty());
        let (example, start, end) = sites[index.index(sites.len())];
        let (name, text) = &examples()[example];
        let mutated = replace_span(text, start, end, "{zz: 1}");
        let report = check_bytes(name, mutated.as_bytes());
        prop_assert!(!report.diagnostics.is_empty(), "no diagnostic for:\n{}", mutated);
        for d in &report.diagnostics {
            prop_assert_eq!((d.line, d.column), (start.line, start.col), "{:?}\n{}", d, mutated);
        }
    }

    /// Random damage to an example never panics, and every diagnostic points inside the file.
    #[test]
    fn damage_never_panics(example in 0usize..2, at in any::<prop::sample::Index>(), junk in "[ -~\t\n\u{e9}]{0,12}", cut in 0usize..40) {
        let (name, text) = &examples()[example];
        let mut bytes = text.as_bytes().to_vec();
        let i = at.index(bytes.len());
        let end = (i + cut).min(bytes.len());
        bytes.splice(i..end, junk.bytes());
        let report = check_bytes(name, &bytes);
        let lines = String::from_utf8_lossy(&bytes).lines().count().max(1);
        for d in &report.diagnostics {
            prop_assert!(d.line >= 1 && d.line <= lines + 1, "{:?} outside {} lines", d, lines);
            prop_assert!(d.column >= 1);
        }
    }
}

#[test]
fn there_are_sites_to_test() {
    // The property tests above would pass vacuously without sites: make sure there are many.
    assert!(insertion_sites().len() > 40, "{}", insertion_sites().len());
    assert!(scalar_sites().len() > 60, "{}", scalar_sites().len());
    assert!(
        insertion_sites().iter().any(|s| !s.block),
        "no flow-mapping site"
    );
    assert!(
        insertion_sites().iter().any(|s| s.value != "1"),
        "no metric-map site"
    );
}
