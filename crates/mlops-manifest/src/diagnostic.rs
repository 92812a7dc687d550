//! Diagnostics: a problem located in a file, with a message and a hint, and the three ways of
//! showing them (human with the source line and a caret, JSON, GitHub annotations).

use std::fmt::Write as _;

use mlops_actions::{Level, Location, annotation};
use serde::Serialize;

use crate::yaml::{Pos, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the rule, e.g. `schema/unknown-key`.
    pub code: &'static str,
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line of the offending node.
    pub line: usize,
    /// 1-based column (in characters) of the offending node.
    pub column: usize,
    /// Where the offending node ends (same line for scalars and keys).
    pub end_line: usize,
    pub end_column: usize,
    /// Dotted path of the node in the manifest, e.g. `training.sagemaker.image`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A second place that matters, e.g. the first of two duplicate keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
}

/// A second location a diagnostic refers to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Related {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// An error at `span` in `file`.
    pub fn error(
        code: &'static str,
        file: &str,
        span: Span,
        path: String,
        message: String,
    ) -> Diagnostic {
        let end = span.end.max(span.start);
        Diagnostic {
            severity: Severity::Error,
            code,
            file: file.to_owned(),
            line: span.start.line.max(1),
            column: span.start.col.max(1),
            end_line: end.line.max(1),
            end_column: end.col.max(1),
            path,
            message,
            hint: None,
            related: None,
        }
    }

    /// The same diagnostic with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// The same diagnostic with a related location in the same file.
    pub fn with_related(self, at: Pos, message: impl Into<String>) -> Diagnostic {
        let file = self.file.clone();
        self.with_related_in(&file, at, message)
    }

    /// The same diagnostic with a related location in another file.
    pub fn with_related_in(
        mut self,
        file: &str,
        at: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.related = Some(Related {
            file: file.to_owned(),
            line: at.line,
            column: at.col,
            message: message.into(),
        });
        self
    }

    /// The order diagnostics are shown in: by position, then path and message.
    pub fn sort_key(&self) -> (usize, usize, &str, &str) {
        (self.line, self.column, &self.path, &self.message)
    }
}

/// Shows diagnostics for people: the message, the location, the source line with a caret under
/// the offending node, and the hint.
pub fn render_human(diagnostics: &[Diagnostic], source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::new();
    for d in diagnostics {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{sev}[{}]: {}", d.code, d.message);
        let _ = writeln!(out, "  --> {}:{}:{}", d.file, d.line, d.column);
        if let Some(text) = lines.get(d.line - 1) {
            let gutter = d.line.to_string().len();
            let (shown, col) = window(text, d.column);
            let width = caret_width(d, &shown, col);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {}", d.line, shown.trim_end());
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            );
        }
        if let Some(r) = &d.related {
            let _ = writeln!(
                out,
                "  note: {} at {}:{}:{}",
                r.message, r.file, r.line, r.column
            );
        }
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  = hint: {h}");
        }
        out.push('\n');
    }
    out
}

/// Longest source line shown whole; longer ones are shown as a window around the column.
const MAX_SHOWN: usize = 120;

/// The part of `line` to show (tabs as spaces), and the 1-based column of `col` within it.
fn window(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    if chars.len() <= MAX_SHOWN {
        return (chars.into_iter().collect(), col);
    }
    let start = col
        .saturating_sub(MAX_SHOWN / 2)
        .min(chars.len().saturating_sub(MAX_SHOWN));
    let end = (start + MAX_SHOWN).min(chars.len());
    let mut shown = String::new();
    let mut offset = 0;
    if start > 0 {
        shown.push('…');
        offset = 1;
    }
    shown.extend(chars.get(start..end).unwrap_or_default());
    if end < chars.len() {
        shown.push('…');
    }
    (shown, col - start + offset)
}

/// How many carets: the node's extent on its first line, at least one, within what is shown.
fn caret_width(d: &Diagnostic, shown: &str, col: usize) -> usize {
    let len = shown.chars().count();
    let span = if d.end_line == d.line {
        d.end_column.saturating_sub(d.column)
    } else {
        usize::MAX
    };
    span.min((len + 1).saturating_sub(col)).max(1)
}

/// GitHub workflow-command annotations, one line each.
pub fn render_github(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let level = match d.severity {
                Severity::Error => Level::Error,
                Severity::Warning => Level::Warning,
            };
            let one_line = d.end_line == d.line;
            let location = Location {
                file: &d.file,
                line: d.line,
                col: d.column,
                end_line: (!one_line).then_some(d.end_line),
                end_column: one_line.then_some(d.end_column.max(d.column)),
            };
            let message = match &d.hint {
                Some(h) => format!("{}\nhint: {h}", d.message),
                None => d.message.clone(),
            };
            annotation(
                level,
                Some(&location),
                &format!("mlops: {}", d.code),
                &message,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag() -> Diagnostic {
        let span = Span {
            start: Pos { line: 2, col: 3 },
            end: Pos { line: 2, col: 7 },
        };
        Diagnostic::error(
            "schema/unknown-key",
            "m.yaml",
            span,
            "a.bogus".into(),
            "unknown key `bogus`".into(),
        )
        .with_hint("did you mean `bonus`?")
    }

    #[test]
    fn human_output_has_location_source_and_caret() {
        let out = render_human(&[diag()], "a:\n  bogus: 1\n");
        assert!(out.contains("--> m.yaml:2:3"), "{out}");
        assert!(out.contains("2 |   bogus: 1"), "{out}");
        assert!(out.contains("  |   ^^^^\n"), "{out}");
        assert!(out.contains("= hint: did you mean `bonus`?"), "{out}");
    }

    #[test]
    fn long_lines_are_shown_as_a_window_with_the_caret_in_place() {
        let line = format!("{}bogus{}", "x".repeat(500), "y".repeat(500));
        let (shown, col) = window(&line, 501);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= MAX_SHOWN + 2);
        let at: String = shown.chars().skip(col - 1).take(5).collect();
        assert_eq!(at, "bogus");
        assert_eq!(window("short", 2), ("short".to_owned(), 2));
    }

    #[test]
    fn github_output_is_one_escaped_line() {
        let out = render_github(&[diag()]);
        assert_eq!(
            out,
            "::error file=m.yaml,line=2,col=3,endColumn=7,title=mlops%3A schema/unknown-key::unknown key `bogus`%0Ahint: did you mean `bonus`?\n"
        );
    }
}
