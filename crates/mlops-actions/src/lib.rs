//! GitHub Actions runtime I/O, shared by every subcommand: inputs from the environment, outputs
//! appended to `$GITHUB_OUTPUT`, markdown appended to `$GITHUB_STEP_SUMMARY`, and workflow
//! commands (annotations, `::group::`, `::add-mask::`) formatted with GitHub's escaping.
//!
//! Outside Actions (no `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY`), outputs and summaries are
//! dropped, so commands can call these unconditionally.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a step's outputs and summary go, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    output: Option<PathBuf>,
    summary: Option<PathBuf>,
    actions: bool,
}

impl Runtime {
    /// Reads `GITHUB_ACTIONS`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`.
    pub fn from_env() -> Runtime {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Runtime {
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
            actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        }
    }

    /// A runtime writing to the given files (tests, or callers that know better than the env).
    pub fn with_files(output: Option<PathBuf>, summary: Option<PathBuf>) -> Runtime {
        Runtime {
            output,
            summary,
            actions: true,
        }
    }

    /// Whether this process runs inside a GitHub Actions job.
    pub fn is_actions(&self) -> bool {
        self.actions
    }

    /// Sets step output `name`. Values may span lines: every output is written in the
    /// `name<<DELIMITER` form with a random delimiter that does not occur in the value.
    pub fn set_output(&self, name: &str, value: &str) -> io::Result<()> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        if name.is_empty() || name.contains(['\n', '\r', '=', '<']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid output name {name:?}"),
            ));
        }
        let delimiter = loop {
            let d = random_delimiter()?;
            if !value.contains(&d) {
                break d;
            }
        };
        append(
            path,
            &format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"),
        )
    }

    /// Appends markdown to the step summary, followed by a newline.
    pub fn append_summary(&self, markdown: &str) -> io::Result<()> {
        let Some(path) = &self.summary else {
            return Ok(());
        };
        let mut text = markdown.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        append(path, &text)
    }
}

fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())
}

fn random_delimiter() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("no randomness for an output delimiter: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("ghadelimiter_{hex}"))
}

/// An action input passed to the binary through `env:` as `MLOPS_<NAME>` (upper case, `-` as
/// `_`). An empty value counts as absent, as GitHub passes unset inputs as empty strings.
pub fn input(name: &str) -> Option<String> {
    input_with(name, |var| std::env::var(var).ok())
}

/// [`input`] over any environment lookup.
pub fn input_with(name: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let var = format!("MLOPS_{}", name.to_ascii_uppercase().replace('-', "_"));
    lookup(&var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Annotation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

/// A file annotation: shown on the pull request's diff at that line.
#[derive(Debug, Clone, Default)]
pub struct Location<'a> {
    pub file: &'a str,
    pub line: usize,
    pub col: usize,
    /// Set for a multi-line range.
    pub end_line: Option<usize>,
    /// Set for a range on one line.
    pub end_column: Option<usize>,
}

/// Formats an annotation workflow command (one line, with its newline).
pub fn annotation(
    level: Level,
    location: Option<&Location<'_>>,
    title: &str,
    message: &str,
) -> String {
    let cmd = match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Notice => "notice",
    };
    let mut props = Vec::new();
    if let Some(l) = location {
        props.push(format!("file={}", escape_property(l.file)));
        props.push(format!("line={}", l.line));
        props.push(format!("col={}", l.col));
        if let Some(e) = l.end_line {
            props.push(format!("endLine={e}"));
        }
        if let Some(e) = l.end_column {
            props.push(format!("endColumn={e}"));
        }
    }
    if !title.is_empty() {
        props.push(format!("title={}", escape_property(title)));
    }
    let sep = if props.is_empty() { "" } else { " " };
    format!(
        "::{cmd}{sep}{}::{}\n",
        props.join(","),
        escape_data(message)
    )
}

/// Starts a collapsible log group; pair with [`end_group`].
pub fn group(title: &str) -> String {
    format!("::group::{}\n", escape_data(title))
}

/// Ends the current log group.
pub fn end_group() -> &'static str {
    "::endgroup::\n"
}

/// Asks the runner to mask `secret` in all later log output. Multi-line secrets are masked line
/// by line, as the runner masks one line per command.
pub fn add_mask(secret: &str) -> String {
    secret
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("::add-mask::{}\n", escape_data(l)))
        .collect()
}

/// Text from elsewhere (a dataset's cell, a service's answer, a pull request's title) made safe
/// to print in an Actions log, where the runner reads a line whose text starts with `::` (after
/// leading blanks) as a workflow command, and `##[` as one in the older syntax: a zero-width
/// space goes between the two colons and between `##` and `[`. What a reader sees is unchanged.
/// `json` is for JSON text, where `##[` can only be inside a string: the `[` is written as the
/// escape `\u005b` instead, which reads back as the same string.
pub fn neutral(text: &str, json: bool) -> std::borrow::Cow<'_, str> {
    let command_line = |line: &str| line.trim_start().starts_with("::");
    if !text.contains("##[") && !text.split('\n').any(command_line) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = if command_line(line) {
            let rest = line.trim_start();
            let lead = line.strip_suffix(rest).unwrap_or_default();
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            format!("{lead}:\u{200B}{rest}")
        } else {
            line.to_owned()
        };
        let old = if json { "##\\u005b" } else { "##\u{200B}[" };
        out.push_str(&line.replace("##[", old));
    }
    std::borrow::Cow::Owned(out)
}

/// Escapes the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's rule: a line is a workflow command when, after leading blanks, it starts
    /// with `::`, or (older syntax) holds `##[`.
    fn is_command(line: &str) -> bool {
        line.trim_start().starts_with("::") || line.contains("##[")
    }

    #[test]
    fn neutral_text_holds_no_workflow_command() {
        let hostile =
            "ok\n::set-output name=x::pwned\n   ::add-mask::y\r\nsee ##[set-output name=z;]1";
        let safe = neutral(hostile, false);
        assert!(safe.lines().all(|l| !is_command(l)), "{safe}");
        assert_eq!(safe.replace('\u{200B}', ""), hostile);
        assert!(matches!(
            neutral("plain: text :: here", false),
            std::borrow::Cow::Borrowed(_)
        ));
        // In JSON, the escape reads back as the same string.
        let json = serde_json::to_string(&serde_json::json!({"e": "a ##[set-output name=x;]1"}))
            .expect("json");
        let safe = neutral(&json, true);
        assert!(!is_command(&safe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still json");
        assert_eq!(back["e"], "a ##[set-output name=x;]1");
    }

    fn runtime(dir: &Path) -> Runtime {
        Runtime::with_files(Some(dir.join("out")), Some(dir.join("summary")))
    }

    /// Parses `$GITHUB_OUTPUT` the way the runner does.
    fn parse_outputs(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let (name, delim) = line.split_once("<<").expect("heredoc form");
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.push((name.to_owned(), value.join("\n")));
        }
        out
    }

    #[test]
    fn outputs_round_trip_including_multiline_and_delimiter_lookalikes() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        rt.set_output("valid", "true").unwrap();
        rt.set_output("report", "line one\nEOF\nghadelimiter_\nline four")
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert_eq!(
            parse_outputs(&text),
            vec![
                ("valid".to_owned(), "true".to_owned()),
                (
                    "report".to_owned(),
                    "line one\nEOF\nghadelimiter_\nline four".to_owned()
                )
            ]
        );
        let delims: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once("<<").map(|x| x.1))
            .collect();
        assert_eq!(delims.len(), 2);
        assert_ne!(
            delims[0], delims[1],
            "each output gets a fresh random delimiter"
        );
    }

    #[test]
    fn bad_output_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        assert!(rt.set_output("a\nb", "x").is_err());
        assert!(rt.set_output("", "x").is_err());
        assert!(
            !dir.path().join("out").exists(),
            "nothing written for a refused output"
        );
    }

    #[test]
    fn summary_appends_with_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        rt.append_summary("# Title").unwrap();
        rt.append_summary("| a | b |\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("summary")).unwrap(),
            "# Title\n| a | b |\n"
        );
    }

    #[test]
    fn without_files_nothing_is_written() {
        let rt = Runtime::default();
        rt.set_output("x", "y").unwrap();
        rt.append_summary("z").unwrap();
        assert!(!rt.is_actions());
    }

    #[test]
    fn annotations_escape_message_and_properties() {
        let loc = Location {
            file: "dir,a:b.yaml",
            line: 3,
            col: 5,
            end_line: None,
            end_column: Some(9),
        };
        assert_eq!(
            annotation(Level::Error, Some(&loc), "mlops: x", "50% bad\nnext"),
            "::error file=dir%2Ca%3Ab.yaml,line=3,col=5,endColumn=9,title=mlops%3A x::50%25 bad%0Anext\n"
        );
        assert_eq!(annotation(Level::Notice, None, "", "hi"), "::notice::hi\n");
    }

    #[test]
    fn inputs_map_to_mlops_variables_and_empty_is_absent() {
        let env = |k: &str| match k {
            "MLOPS_HOLDOUT_REPORT" => Some(" r.json \n".to_owned()),
            "MLOPS_FORMAT" => Some(String::new()),
            _ => None,
        };
        assert_eq!(input_with("holdout-report", env).as_deref(), Some("r.json"));
        assert_eq!(input_with("format", env), None);
        assert_eq!(input_with("missing", env), None);
    }

    #[test]
    fn groups_and_masks() {
        assert_eq!(group("Epoch 1\n"), "::group::Epoch 1%0A\n");
        assert_eq!(end_group(), "::endgroup::\n");
        assert_eq!(
            add_mask("s3cr%t\nline2\n"),
            "::add-mask::s3cr%25t\n::add-mask::line2\n"
        );
    }
}
