//! Span-aware YAML: builds a tree of [`Node`]s, each with its line and column, from
//! saphyr-parser's events, and converts it to JSON for schema validation.
//!
//! The builder owns the rules a manifest loader needs and a generic YAML library does not give:
//! duplicate keys are errors, alias expansion has a budget (no "billion laughs"), nesting has a
//! depth limit, tags other than the core schema's are refused, and scalars resolve by the YAML 1.2
//! core schema (so `no` is a string, not `false`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};

/// A 1-based position in the source, with the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// The source range of a node: where it starts and where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_parser(span: saphyr_parser::Span) -> Span {
        Span {
            start: pos(span.start),
            end: pos(span.end),
        }
    }

    /// A zero-width span at one position.
    pub fn at(start: Pos) -> Span {
        Span { start, end: start }
    }
}

fn pos(m: saphyr_parser::Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// A YAML node and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A mapping key: always a string here (manifests have no complex keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// The value of a node, resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// One segment of a path into the tree, as a JSON pointer has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Limits on what the loader accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes in the tree once every alias is expanded.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_nodes: 100_000,
        }
    }
}

/// Why the YAML could not be turned into a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub kind: YamlErrorKind,
    pub span: Span,
    /// Where an earlier, related node stands: the first of two duplicate keys, or for a syntax
    /// error the `[` or `{` of the innermost flow collection still open there.
    pub related: Option<Span>,
}

/// The kinds of [`YamlError`].
#[derive(Debug, Clone, PartialEq)]
pub enum YamlErrorKind {
    /// The scanner or parser rejected the text.
    Syntax(String),
    /// The file holds no document, or only `null`.
    Empty,
    /// More than one document (`---`).
    MultipleDocuments,
    /// The same key twice in one mapping.
    DuplicateKey(String),
    /// A key that is not a plain string (a sequence, a mapping, an alias).
    ComplexKey,
    /// A YAML 1.1 merge key (`<<`).
    MergeKey,
    /// A tag outside the core schema, or a core tag that does not fit its value.
    Tag(String),
    /// Alias expansion would exceed [`Limits::max_nodes`].
    TooManyNodes(usize),
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep(usize),
    /// An alias to an anchor that is not defined (or not yet closed: a recursive alias).
    UnknownAlias,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str, limits: Limits) -> Result<Node, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        text,
        open: Vec::new(),
        limits,
        anchors: HashMap::new(),
        nodes: 0,
        depth: 0,
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    text: &'a str,
    /// Where each collection being built starts, outermost first.
    open: Vec<Span>,
    limits: Limits,
    /// Anchor id → the finished node and its size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    depth: usize,
}

type Spanned<'a> = (Event<'a>, saphyr_parser::Span);

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Spanned<'a>, YamlError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                let error = syntax(&e);
                // A quote left open swallows the rest of the file: name where it was opened.
                let related = if e.info().contains("quoted scalar") {
                    open_quote(self.text, error.span.start).or_else(|| self.open_flow())
                } else {
                    self.open_flow()
                };
                Err(YamlError { related, ..error })
            }
            // The parser always ends with StreamEnd; running past it is a parser bug we report
            // as a syntax error at an unknown place rather than a panic.
            None => Err(YamlError {
                kind: YamlErrorKind::Syntax("unexpected end of input".into()),
                span: Span::default(),
                related: None,
            }),
        }
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let (ev, sp) = self.next()?;
        if ev != Event::StreamStart {
            return Err(err(
                YamlErrorKind::Syntax("expected the start of a YAML stream".into()),
                sp,
            ));
        }
        let (ev, sp) = self.next()?;
        let root = match ev {
            Event::StreamEnd => return Err(err(YamlErrorKind::Empty, sp)),
            Event::DocumentStart(_) => {
                let (ev, sp) = self.next()?;
                self.node(ev, sp)?
            }
            _ => return Err(err(YamlErrorKind::Syntax("expected a document".into()), sp)),
        };
        let (ev, sp) = self.next()?;
        if ev != Event::DocumentEnd {
            return Err(err(
                YamlErrorKind::Syntax("expected the end of the document".into()),
                sp,
            ));
        }
        let (ev, sp) = self.next()?;
        match ev {
            Event::StreamEnd => {}
            Event::DocumentStart(_) => return Err(err(YamlErrorKind::MultipleDocuments, sp)),
            _ => {
                return Err(err(
                    YamlErrorKind::Syntax("unexpected content after the document".into()),
                    sp,
                ));
            }
        }
        if root.value == Value::Null {
            return Err(YamlError {
                kind: YamlErrorKind::Empty,
                span: root.span,
                related: None,
            });
        }
        Ok(root)
    }

    /// The innermost collection still open that is a flow one (`[` or `{`): when the text breaks
    /// off inside it, the bracket may be the mistake, and it can stand lines before the point
    /// where the parser gave up.
    fn open_flow(&self) -> Option<Span> {
        self.open.iter().rev().copied().find(|s| {
            let line = self.text.lines().nth(s.start.line.saturating_sub(1));
            let c = line.and_then(|l| l.chars().nth(s.start.col.saturating_sub(1)));
            matches!(c, Some('[' | '{'))
        })
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                kind: YamlErrorKind::TooManyNodes(self.limits.max_nodes),
                span,
                related: None,
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, sp: saphyr_parser::Span) -> Result<Node, YamlError> {
        let span = Span::from_parser(sp);
        let before = self.nodes;
        let (node, anchor) = match ev {
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(err(YamlErrorKind::UnknownAlias, sp));
                };
                let (node, size) = (node.clone(), *size);
                self.count(size, span)?;
                // The copy keeps the anchored node's spans: errors point at the definition.
                return Ok(node);
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                let value = resolve_scalar(&text, style, tag.as_deref())
                    .map_err(|m| err(YamlErrorKind::Tag(m), sp))?;
                (Node { value, span }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, span)?;
                check_collection_tag(tag.as_deref(), "seq")
                    .map_err(|m| err(YamlErrorKind::Tag(m), sp))?;
                self.enter(span)?;
                let mut items = Vec::new();
                let end = loop {
                    let (ev, sp) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break pos(sp.end);
                    }
                    items.push(self.node(ev, sp)?);
                };
                self.depth -= 1;
                self.open.pop();
                (
                    Node {
                        value: Value::Seq(items),
                        span: extend(span, end),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, span)?;
                check_collection_tag(tag.as_deref(), "map")
                    .map_err(|m| err(YamlErrorKind::Tag(m), sp))?;
                self.enter(span)?;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                let end = loop {
                    let (ev, ksp) = self.next()?;
                    if ev == Event::MappingEnd {
                        break pos(ksp.end);
                    }
                    let key = self.key(ev, ksp)?;
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        return Err(YamlError {
                            kind: YamlErrorKind::DuplicateKey(key.name.clone()),
                            span: key.span,
                            related: Some(first.span),
                        });
                    }
                    let (ev, vsp) = self.next()?;
                    let value = self.node(ev, vsp)?;
                    entries.push((key, value));
                };
                self.depth -= 1;
                self.open.pop();
                (
                    Node {
                        value: Value::Map(entries),
                        span: extend(span, end),
                    },
                    anchor,
                )
            }
            other => {
                return Err(err(
                    YamlErrorKind::Syntax(format!("unexpected YAML event {other:?}")),
                    sp,
                ));
            }
        };
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - before));
        }
        Ok(node)
    }

    fn enter(&mut self, span: Span) -> Result<(), YamlError> {
        self.open.push(span);
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(YamlError {
                kind: YamlErrorKind::TooDeep(self.limits.max_depth),
                span,
                related: None,
            });
        }
        Ok(())
    }

    fn key(&mut self, ev: Event<'a>, sp: saphyr_parser::Span) -> Result<Key, YamlError> {
        let span = Span::from_parser(sp);
        match ev {
            Event::Scalar(text, style, _, tag) => {
                if style == ScalarStyle::Plain && text == "<<" && tag.is_none() {
                    return Err(err(YamlErrorKind::MergeKey, sp));
                }
                if let Some(tag) = tag.as_deref()
                    && !(tag.is_yaml_core_schema() && tag.suffix == "str")
                {
                    return Err(err(
                        YamlErrorKind::Tag(format!("a key cannot be tagged `{tag}`")),
                        sp,
                    ));
                }
                self.count(1, span)?;
                Ok(Key {
                    name: text.into_owned(),
                    span,
                })
            }
            _ => Err(err(YamlErrorKind::ComplexKey, sp)),
        }
    }
}

/// A collection's span runs from its first token to its end event (never backwards: a block
/// collection's end event can stand before its last node's end).
fn extend(span: Span, end: Pos) -> Span {
    Span {
        start: span.start,
        end: end.max(span.end),
    }
}

fn err(kind: YamlErrorKind, sp: saphyr_parser::Span) -> YamlError {
    YamlError {
        kind,
        span: Span::from_parser(sp),
        related: None,
    }
}

/// The quote (`'` or `"`) that opens a scalar still unclosed at `upto`, scanning `text` as YAML
/// does: a quote opens a scalar where a value can start (after a blank, `:`, `-`, `,`, `[`, `{`
/// or at the start of a line), `#` after a blank starts a comment, `\` escapes in double quotes
/// and `''` is a quote in single ones. Lines break at LF, CRLF or a lone CR.
fn open_quote(text: &str, upto: Pos) -> Option<Span> {
    let mut pos = Pos { line: 1, col: 1 };
    let mut open: Option<(char, Pos)> = None;
    let mut comment = false;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if (pos.line, pos.col) > (upto.line, upto.col) {
            break;
        }
        let here = pos;
        let newline = c == '\n' || (c == '\r' && chars.peek() != Some(&'\n'));
        match open {
            Some(('"', _)) if c == '\\' => {
                if let Some(next) = chars.next() {
                    pos.col += 1;
                    if next == '\n' || next == '\r' {
                        pos = Pos {
                            line: pos.line + 1,
                            col: 0,
                        };
                    }
                }
            }
            Some(('"', _)) if c == '"' => open = None,
            Some(('\'', _)) if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    pos.col += 1;
                } else {
                    open = None;
                }
            }
            Some(_) => {}
            None if comment => {}
            None => {
                let starts_value = prev.is_none_or(|p| {
                    p.is_whitespace() || matches!(p, ':' | '-' | ',' | '[' | '{' | '?')
                });
                if c == '#' && prev.is_none_or(char::is_whitespace) {
                    comment = true;
                } else if matches!(c, '"' | '\'') && starts_value {
                    open = Some((c, here));
                }
            }
        }
        if newline {
            pos = Pos {
                line: pos.line + 1,
                col: 1,
            };
            comment = false;
            prev = None;
        } else {
            pos.col += 1;
            prev = Some(c);
        }
    }
    open.map(|(_, at)| Span::at(at))
}

fn syntax(e: &ScanError) -> YamlError {
    let at = pos(*e.marker());
    YamlError {
        kind: YamlErrorKind::Syntax(e.info().to_owned()),
        span: Span::at(at),
        related: None,
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(format!("tag `{t}` is not supported here")),
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted and block scalars are strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if !tag.is_yaml_core_schema() {
            return Err(format!(
                "tag `{tag}` is not supported: manifests use plain YAML values"
            ));
        }
        let resolved = match tag.suffix.as_str() {
            "str" => Some(Value::String(text.to_owned())),
            "null" => plain_null(text).then_some(Value::Null),
            "bool" => plain_bool(text).map(Value::Bool),
            "int" => plain_int(text),
            "float" => plain_float(text).or_else(|| plain_int(text).map(to_float)),
            _ => return Err(format!("tag `{tag}` is not supported on a scalar")),
        };
        return resolved.ok_or_else(|| format!("`{text}` is not a valid `{tag}`"));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if plain_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = plain_bool(text) {
        return Ok(Value::Bool(b));
    }
    Ok(plain_int(text)
        .or_else(|| plain_float(text))
        .unwrap_or_else(|| Value::String(text.to_owned())))
}

fn to_float(v: Value) -> Value {
    match v {
        Value::Int(i) => Value::Float(i as f64),
        other => other,
    }
}

fn plain_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn plain_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn plain_int(s: &str) -> Option<Value> {
    let parsed = if let Some(hex) = s.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = s.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else {
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match s.parse::<i64>() {
            Ok(i) => Some(i),
            // Too large for i64: keep the number, as a float.
            Err(_) => return s.parse::<f64>().ok().map(Value::Float),
        }
    };
    parsed.map(Value::Int)
}

fn plain_float(s: &str) -> Option<Value> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    // The core schema's float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let digits_from = |i: usize| (i..).take_while(|&j| at(j).is_ascii_digit()).count();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_digits = digits_from(i);
    i += int_digits;
    let mut frac_digits = 0;
    if at(i) == b'.' {
        i += 1;
        frac_digits = digits_from(i);
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(at(i), b'e' | b'E') {
        i += 1;
        if matches!(at(i), b'-' | b'+') {
            i += 1;
        }
        let exponent = digits_from(i);
        if exponent == 0 {
            return None;
        }
        i += exponent;
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().map(Value::Float)
}

impl Node {
    /// The JSON value of this tree, for schema validation and typed deserialisation.
    /// NaN and infinities have no JSON form and become strings, which the schema then rejects.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map_or_else(|| J::String(f.to_string()), J::Number)
            }
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The mapping entry named `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The node at `path`, or `None` where the path leaves the tree.
    pub fn get(&self, path: &[Segment]) -> Option<&Node> {
        path.iter()
            .try_fold(self, |node, seg| match (seg, &node.value) {
                (Segment::Key(k), Value::Map(_)) => node.entry(k).map(|(_, v)| v),
                (Segment::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            })
    }

    /// Where the diagnostic for the value at `path` should point: the node if it exists, else
    /// the deepest ancestor that does.
    pub fn locate(&self, path: &[Segment]) -> Span {
        let mut node = self;
        for seg in path {
            match node.get(std::slice::from_ref(seg)) {
                Some(next) => node = next,
                None => break,
            }
        }
        node.span
    }

    /// The span of the key `key` in the mapping at `path`.
    pub fn key_span(&self, path: &[Segment], key: &str) -> Option<Span> {
        self.get(path)?.entry(key).map(|(k, _)| k.span)
    }

    /// A short description of the node's type, for messages ("a string", "a mapping").
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, YamlError> {
        parse(s, Limits::default())
    }

    #[test]
    fn spans_are_one_based_and_count_characters() {
        let root = p("a:\n  bé: 1\n  c: [x, y]\n").unwrap();
        let (k, v) = root
            .get(&[Segment::Key("a".into())])
            .unwrap()
            .entry("c")
            .unwrap();
        assert_eq!(k.span.start, Pos { line: 3, col: 3 });
        assert_eq!(
            v.get(&[Segment::Index(1)]).unwrap().span.start,
            Pos { line: 3, col: 10 }
        );
        let (k, _) = root
            .get(&[Segment::Key("a".into())])
            .unwrap()
            .entry("bé")
            .unwrap();
        assert_eq!(k.span.start, Pos { line: 2, col: 3 });
    }

    #[test]
    fn flow_collections_span_to_their_closing_bracket() {
        let root = p("a: { min: 0.8 }\nb: [1, 2]\n").unwrap();
        let a = root.get(&[Segment::Key("a".into())]).unwrap();
        assert_eq!(
            (a.span.start, a.span.end),
            (Pos { line: 1, col: 4 }, Pos { line: 1, col: 16 })
        );
        let b = root.get(&[Segment::Key("b".into())]).unwrap();
        assert_eq!(
            (b.span.start, b.span.end),
            (Pos { line: 2, col: 4 }, Pos { line: 2, col: 10 })
        );
    }

    #[test]
    fn core_schema_resolution() {
        let root = p("a: no\nb: true\nc: 0x1f\nd: 1e3\ne: '1'\nf: ~\ng: .5\nh: 12345678901234567890\ni: -7\n").unwrap();
        let j = root.to_json();
        assert_eq!(j["a"], "no");
        assert_eq!(j["b"], true);
        assert_eq!(j["c"], 31);
        assert_eq!(j["d"], 1000.0);
        assert_eq!(j["e"], "1");
        assert!(j["f"].is_null());
        assert_eq!(j["g"], 0.5);
        assert_eq!(j["h"], 12345678901234567890.0);
        assert_eq!(j["i"], -7);
    }

    #[test]
    fn duplicate_keys_point_at_both() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::DuplicateKey("a".into()));
        assert_eq!(e.span.start, Pos { line: 3, col: 1 });
        assert_eq!(e.related.unwrap().start, Pos { line: 1, col: 1 });
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            s.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let e = p(&s).unwrap_err();
        assert!(matches!(e.kind, YamlErrorKind::TooManyNodes(_)), "{e:?}");
    }

    #[test]
    fn aliases_within_budget_expand() {
        let root = p("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(root.to_json()["other"]["x"], 1);
    }

    #[test]
    fn depth_is_limited() {
        let s = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        let e = p(&s).unwrap_err();
        assert!(
            matches!(
                e.kind,
                YamlErrorKind::TooDeep(64) | YamlErrorKind::Syntax(_)
            ),
            "{e:?}"
        );
    }

    #[test]
    fn merge_keys_tags_and_complex_keys_are_refused() {
        assert_eq!(
            p("a: &x {b: 1}\nc:\n  <<: *x\n").unwrap_err().kind,
            YamlErrorKind::MergeKey
        );
        assert!(matches!(
            p("a: !custom 1\n").unwrap_err().kind,
            YamlErrorKind::Tag(_)
        ));
        assert_eq!(
            p("? [a]\n: 1\n").unwrap_err().kind,
            YamlErrorKind::ComplexKey
        );
        assert_eq!(p("a: !!str 12\n").unwrap().to_json()["a"], "12");
        assert!(matches!(
            p("a: !!int abc\n").unwrap_err().kind,
            YamlErrorKind::Tag(_)
        ));
    }

    #[test]
    fn empty_and_multi_document() {
        assert_eq!(p("").unwrap_err().kind, YamlErrorKind::Empty);
        assert_eq!(
            p("# only a comment\n").unwrap_err().kind,
            YamlErrorKind::Empty
        );
        assert_eq!(p("~\n").unwrap_err().kind, YamlErrorKind::Empty);
        assert_eq!(
            p("a: 1\n---\nb: 2\n").unwrap_err().kind,
            YamlErrorKind::MultipleDocuments
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = p("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(matches!(e.kind, YamlErrorKind::Syntax(_)));
        assert!(e.span.start.line >= 1);
    }

    #[test]
    fn locate_falls_back_to_the_deepest_existing_node() {
        let root = p("a:\n  b: 1\n").unwrap();
        let path = [Segment::Key("a".into()), Segment::Key("zz".into())];
        assert_eq!(root.locate(&path).start.line, 2);
    }
}
