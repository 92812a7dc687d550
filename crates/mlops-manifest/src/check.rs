//! The validation pipeline: bytes → UTF-8 → YAML tree with spans → version → JSON Schema (all
//! violations at once) → typed manifest → semantic checks. Every finding becomes a
//! [`Diagnostic`] located at the offending node.

use std::path::Path;

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value as J;

use crate::diagnostic::Diagnostic;
use crate::model::{Manifest, SUPPORTED_VERSIONS};
use crate::schema;
use crate::yaml::{self, Limits, Node, Pos, Segment, Span, YamlErrorKind};

/// Largest manifest accepted; larger files are refused before parsing.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The result of checking one manifest.
#[derive(Debug)]
pub struct Report {
    /// The file, as the user named it.
    pub file: String,
    /// The text (lossy where it was not UTF-8), for showing source lines.
    pub source: String,
    /// The manifest, when there are no errors.
    pub manifest: Option<Manifest>,
    /// Every problem found, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The YAML tree, when the file parsed: later steps use it to point into the manifest.
    pub tree: Option<Node>,
}

impl Report {
    /// Whether the manifest has no errors.
    pub fn is_valid(&self) -> bool {
        self.manifest.is_some()
            && self
                .diagnostics
                .iter()
                .all(|d| d.severity != crate::Severity::Error)
    }

    /// How many of the diagnostics are errors.
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == crate::Severity::Error)
            .count()
    }

    /// One line: `FILE: valid (…)` or `FILE: invalid, N errors`.
    pub fn verdict(&self) -> String {
        match (&self.manifest, self.is_valid()) {
            (Some(m), true) => format!(
                "{}: valid (manifest version {}, project `{}`, model `{}`)",
                self.file, m.version, m.project.name, m.model.name
            ),
            _ => {
                let n = self.errors();
                let s = if n == 1 { "" } else { "s" };
                format!("{}: invalid, {n} error{s}", self.file)
            }
        }
    }
}

/// The Markdown step summary of one validation: a verdict per file, then every diagnostic in a
/// table (the files that could not be read first).
pub fn summary_markdown(reports: &[Report], unreadable: &[ReadError]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut md = String::from("### mlops validate\n\n");
    for e in unreadable {
        md += &format!("- **{}**: {}\n", cell(e.path()), cell(&e.to_string()));
    }
    for report in reports {
        md += &format!("- `{}`\n", report.verdict());
    }
    let rows: Vec<_> = reports.iter().flat_map(|r| &r.diagnostics).collect();
    if !rows.is_empty() {
        md += "\n| Location | Rule | Problem | Hint |\n|---|---|---|---|\n";
        for d in rows {
            md += &format!(
                "| `{}:{}:{}` | `{}` | {} | {} |\n",
                d.file,
                d.line,
                d.column,
                d.code,
                cell(&d.message),
                cell(d.hint.as_deref().unwrap_or(""))
            );
        }
    }
    md
}

/// Why a manifest could not be read at all (as opposed to read and found invalid).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a directory, not a manifest file")]
    IsDir { path: String },
}

impl ReadError {
    /// The path that could not be read.
    pub fn path(&self) -> &str {
        match self {
            ReadError::Io { path, .. } | ReadError::IsDir { path } => path,
        }
    }
}

/// Reads and checks the manifest at `path`.
pub fn check_file(path: &Path) -> Result<Report, ReadError> {
    use std::io::Read;
    let name = path.display().to_string();
    let io = |source| ReadError::Io {
        path: name.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(ReadError::IsDir { path: name });
    }
    if meta.len() > MAX_BYTES {
        return Ok(too_large(&name, meta.len()));
    }
    let mut bytes = Vec::new();
    // Read at most one byte past the limit: a file that grew since `metadata` is still refused.
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Ok(too_large(&name, bytes.len() as u64));
    }
    Ok(check_bytes(&name, &bytes))
}

fn too_large(file: &str, size: u64) -> Report {
    let d = Diagnostic::error(
        "input/too-large",
        file,
        Span::at(Pos { line: 1, col: 1 }),
        String::new(),
        format!("the file is {size} bytes; manifests are limited to {MAX_BYTES} bytes"),
    )
    .with_hint("a manifest describes one model in a few hundred lines; is this the right file?");
    Report {
        file: file.to_owned(),
        source: String::new(),
        manifest: None,
        diagnostics: vec![d],
        tree: None,
    }
}

/// Checks manifest text given as bytes. `file` names it in diagnostics.
pub fn check_bytes(file: &str, bytes: &[u8]) -> Report {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (valid, _) = bytes.split_at(e.valid_up_to());
            let valid = String::from_utf8_lossy(valid).into_owned();
            let at = end_of(&valid);
            let d = Diagnostic::error(
                "input/encoding",
                file,
                Span::at(at),
                String::new(),
                format!(
                    "the file is not valid UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
            .with_hint("save the manifest as UTF-8");
            return Report {
                file: file.to_owned(),
                source: String::from_utf8_lossy(bytes).into_owned(),
                manifest: None,
                diagnostics: vec![d],
                tree: None,
            };
        }
    };
    let mut report = Report {
        file: file.to_owned(),
        source: text.to_owned(),
        manifest: None,
        diagnostics: Vec::new(),
        tree: None,
    };
    let root = match yaml::parse(text, Limits::default()) {
        Ok(root) => root,
        Err(e) => {
            report.diagnostics.push(yaml_diagnostic(file, text, &e));
            return report;
        }
    };
    if let Some(d) = check_version(file, &root) {
        report.diagnostics.push(d);
        return report;
    }
    let instance = root.to_json();
    report.diagnostics = schema_diagnostics(file, &root, &instance);
    if report.diagnostics.is_empty() {
        match serde_json::from_value::<Manifest>(instance) {
            Ok(manifest) => {
                report.diagnostics = crate::semantic::check(file, &root, &manifest);
                if report.diagnostics.is_empty() {
                    report.manifest = Some(manifest);
                }
            }
            Err(e) => report.diagnostics.push(
                Diagnostic::error(
                    "internal/schema-mismatch",
                    file,
                    root.span,
                    String::new(),
                    format!("the manifest passed the schema but not the typed reader: {e}"),
                )
                .with_hint(
                    "this is a bug in mlops (the schema and the types disagree); please report it",
                ),
            ),
        }
    }
    report
        .diagnostics
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    report.diagnostics.dedup();
    report.tree = Some(root);
    report
}

/// The lines of YAML text as YAML counts them: broken at LF, CRLF or a lone CR.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
}

/// What makes two registries the same: an `s3://` URI as written; a local path resolved against
/// the manifest's directory and normalised (without touching the file system).
fn registry_identity(manifest: &str, registry: &str) -> String {
    use std::path::{Component, Path, PathBuf};
    if registry.starts_with("s3://") {
        return registry.trim_end_matches('/').to_owned();
    }
    let base = Path::new(manifest).parent().unwrap_or(Path::new(""));
    let mut out = PathBuf::new();
    for c in base.join(registry).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out.display().to_string()
}

/// Rules across the manifests of one repository. Every derived name (cloud resources, rendered
/// files, branches) starts with `project.name`, so it must be unique; two manifests must not
/// register the same model name into the same registry; manifests sharing a GitHub repository
/// must all set `project.monorepo` (else they render the same workflow files); and no two may
/// move the same pin file or push the same promotion branch. Findings go to the later manifest.
pub fn check_together(reports: &mut [Report]) {
    let key = |k: &str| Segment::Key(k.to_owned());
    let mut projects: Vec<(String, String, Pos)> = Vec::new();
    let mut models: Vec<((String, String), String, Pos)> = Vec::new();
    let mut repositories: Vec<Seen> = Vec::new();
    let mut pins: Vec<((String, String), String, Pos)> = Vec::new();
    let mut branches: Vec<((String, String), String, Pos)> = Vec::new();
    let mut single: Vec<Seen> = Vec::new();
    for report in reports.iter_mut() {
        let (Some(m), Some(tree)) = (&report.manifest, &report.tree) else {
            continue;
        };
        let name_at = tree.locate(&[key("project"), key("name")]);
        let model_at = tree.locate(&[key("model"), key("name")]);
        let mut found = shared_repository(m, tree, &report.file, &mut repositories, &mut single);
        for (path, file, what) in pin_files(m) {
            let at = tree.locate(&path.iter().map(|k| key(k)).collect::<Vec<_>>());
            let taken = (what.clone(), file.clone());
            if let Some((other, other_at)) = first_use(&mut pins, taken, &report.file, at.start) {
                found.push(
                    Diagnostic::error(
                        "manifest/shared-pin-file",
                        &report.file,
                        at,
                        path.join("."),
                        format!("pin file `{file}` in {what} is also moved by {other}"),
                    )
                    .with_hint(
                        "each model needs its own pin file: set `promotion.pin_file` (and the environments' `pin_file`) to a path of its own, e.g. `deploy/PROJECT/production.yaml`",
                    )
                    .with_related_in(&other, other_at, "also moves it"),
                );
            }
        }
        if m.promotion.is_some() {
            let branch = crate::promotion_branch(&m.model.name);
            let repo = crate::promotion_repository(m).to_owned();
            if let Some((other, at)) = first_use(
                &mut branches,
                (repo.clone(), branch.clone()),
                &report.file,
                model_at.start,
            ) {
                found.push(
                    Diagnostic::error(
                        "manifest/shared-promotion-branch",
                        &report.file,
                        model_at,
                        "model.name".into(),
                        format!("{other} also pushes the promotion branch `{branch}` to {repo}"),
                    )
                    .with_hint(
                        "the branch is named after `model.name`: give the models different names",
                    )
                    .with_related_in(&other, at, "also pushes it"),
                );
            }
        }
        if let Some((file, at)) = first_use(
            &mut projects,
            m.project.name.clone(),
            &report.file,
            name_at.start,
        ) {
            found.push(
                Diagnostic::error(
                    "manifest/duplicate-project",
                    &report.file,
                    name_at,
                    "project.name".into(),
                    format!("project name `{}` is also used by {file}", m.project.name),
                )
                .with_hint(
                    "every derived name starts with `project.name`: give each manifest its own",
                )
                .with_related_in(&file, at, "first used"),
            );
        }
        let registry = registry_identity(&report.file, &m.registry.path);
        let registered = (registry.clone(), m.model.name.clone());
        if let Some((file, at)) = first_use(&mut models, registered, &report.file, model_at.start) {
            found.push(
                Diagnostic::error(
                    "manifest/duplicate-model",
                    &report.file,
                    model_at,
                    "model.name".into(),
                    format!(
                        "model `{}` is also registered by {file} in registry `{registry}`",
                        m.model.name
                    ),
                )
                .with_hint("give the models different names, or the manifests different registries")
                .with_related_in(&file, at, "first registered"),
            );
        }
        report.diagnostics.extend(found);
    }
}

/// A manifest sharing its GitHub repository with an earlier one when either lacks
/// `project.monorepo`: both would render `.github/workflows/mlops-train.yml` and the rest.
/// `seen` holds every repository with its first manifest, and the repositories whose manifests
/// render the one-model names.
fn shared_repository(
    m: &crate::Manifest,
    tree: &Node,
    file: &str,
    seen: &mut Vec<Seen>,
    single: &mut Vec<Seen>,
) -> Vec<Diagnostic> {
    let key = |k: &str| Segment::Key(k.to_owned());
    let repo = m.project.repository.clone();
    let at = tree.locate(&[key("project"), key("repository")]);
    let earlier = first_use(seen, repo.clone(), file, at.start);
    let one_model = single.iter().find(|(r, _, _)| *r == repo).cloned();
    if !m.project.monorepo {
        single.push((repo.clone(), file.to_owned(), at.start));
    }
    let clash = match (earlier, one_model) {
        // An earlier manifest renders the one-model names into this repository.
        (Some(_), Some((_, other, other_at))) => Some((other, other_at)),
        // This one would, beside an earlier manifest.
        (Some((other, other_at)), None) if !m.project.monorepo => Some((other, other_at)),
        _ => None,
    };
    let Some((other, other_at)) = clash else {
        return Vec::new();
    };
    let train = crate::TRAIN_WORKFLOW;
    vec![
        Diagnostic::error(
            "manifest/shared-repository",
            file,
            at,
            "project.repository".into(),
            format!(
                "{other} is also in {repo}, and a manifest without `project.monorepo: true` renders the repository's one set of files (.github/workflows/{train}, terraform/, container/Dockerfile)"
            ),
        )
        .with_hint(
            "set `project.monorepo: true` in every manifest of the repository: each model's files then carry its `project.name`",
        )
        .with_related_in(&other, other_at, "also in this repository"),
    ]
}

/// The pin files `m` moves, with the manifest keys naming them and the repository holding each:
/// staging's in the model's repository, production's (its own or `promotion.pin_file`) in the
/// promotion repository.
fn pin_files(m: &crate::Manifest) -> Vec<(Vec<&'static str>, String, String)> {
    let own = &m.project.repository;
    let promotion = crate::promotion_repository(m);
    let mut out = Vec::new();
    if let Some(f) = &m.environments.staging.pin_file {
        out.push((
            vec!["environments", "staging", "pin_file"],
            f.clone(),
            own.clone(),
        ));
    }
    match (&m.environments.production.pin_file, &m.promotion) {
        (Some(f), _) => out.push((
            vec!["environments", "production", "pin_file"],
            f.clone(),
            promotion.to_owned(),
        )),
        (None, Some(p)) => out.push((
            vec!["promotion", "pin_file"],
            p.pin_file.clone(),
            promotion.to_owned(),
        )),
        (None, None) => {}
    }
    out
}

/// A repository and the first manifest in it, where.
type Seen = (String, String, Pos);

/// Records that `file` uses `key` at `at`, unless an earlier file did: then returns where.
fn first_use<K: PartialEq>(
    seen: &mut Vec<(K, String, Pos)>,
    key: K,
    file: &str,
    at: Pos,
) -> Option<(String, Pos)> {
    match seen.iter().find(|(k, _, _)| *k == key) {
        Some((_, first, first_at)) => Some((first.clone(), *first_at)),
        None => {
            seen.push((key, file.to_owned(), at));
            None
        }
    }
}

fn end_of(text: &str) -> Pos {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, col }
}

fn yaml_diagnostic(file: &str, text: &str, e: &yaml::YamlError) -> Diagnostic {
    let at = |code, msg: String| Diagnostic::error(code, file, e.span, String::new(), msg);
    match &e.kind {
        YamlErrorKind::Syntax(info) if info.contains("recursion limit") => {
            at("yaml/too-deep", "nesting is too deep for the YAML parser".into())
                .with_hint("the manifest's own structure is at most 5 levels deep")
        }
        YamlErrorKind::Syntax(info) => {
            let line = text.lines().nth(e.span.start.line.saturating_sub(1)).unwrap_or("");
            let tabbed = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.trim_start_matches(' ').starts_with('\t'))
                .map(|(i, _)| i + 1);
            let d = at("yaml/syntax", format!("YAML syntax error: {info}"));
            let near = |n: usize| n <= e.span.start.line + 1 || info.contains("tab");
            match tabbed {
                Some(n) if near(n) || line.contains('\t') => {
                    let col = text.lines().nth(n - 1).map_or(1, |l| l.find('\t').unwrap_or(0) + 1);
                    Diagnostic::error(
                        "yaml/tab",
                        file,
                        Span::at(Pos { line: n, col }),
                        String::new(),
                        "a tab is used for indentation; YAML allows only spaces".into(),
                    )
                    .with_hint("replace the tab with spaces (two per level is usual)")
                }
                _ => match e.related {
                    // Name the bracket that is still open: it may stand lines before this point.
                    Some(r) => {
                        let opened = yaml_lines(text).nth(r.start.line.saturating_sub(1)).and_then(|l| l.chars().nth(r.start.col.saturating_sub(1))).unwrap_or('[');
                        match opened {
                            '"' | '\'' => {
                                let inside = if opened == '"' { "write a `\"` inside it as `\\\"`" } else { "write a `'` inside it as `''`" };
                                d.with_related(r.start, format!("the `{opened}` opened here is never closed"))
                                    .with_hint(format!("close the `{opened}` opened on line {} with `{opened}` ({inside})", r.start.line))
                            }
                            _ => {
                                let closing = if opened == '{' { '}' } else { ']' };
                                d.with_related(r.start, format!("the `{opened}` opened here is still open"))
                                    .with_hint(format!("close the `{opened}` opened on line {} with `{closing}`, or check the indentation and quotes around this point", r.start.line))
                            }
                        }
                    }
                    None => d.with_hint("check the indentation and the brackets and quotes around this point"),
                },
            }
        }
        YamlErrorKind::Empty => Diagnostic::error(
            "yaml/empty",
            file,
            Span::at(Pos { line: 1, col: 1 }),
            String::new(),
            "the manifest is empty".into(),
        )
            .with_hint("start from examples/quickstart/mlops.yaml, or run `mlops init`"),
        YamlErrorKind::MultipleDocuments => at("yaml/multiple-documents", "a manifest is one YAML document; found a second `---`".into())
            .with_hint("put each model in its own manifest file"),
        YamlErrorKind::DuplicateKey(k) => {
            let d = at("yaml/duplicate-key", format!("duplicate key `{k}`"))
                .with_hint("YAML mappings cannot repeat a key; remove or merge one of the two");
            match e.related {
                Some(r) => d.with_related(r.start, "first defined"),
                None => d,
            }
        }
        YamlErrorKind::ComplexKey => at("yaml/complex-key", "keys must be plain strings".into()),
        YamlErrorKind::MergeKey => at("yaml/merge-key", "merge keys (`<<`) are not supported".into())
            .with_hint("write the keys out, or use an alias for a whole value (`key: *anchor`)"),
        YamlErrorKind::Tag(m) => at("yaml/tag", m.clone()).with_hint("remove the tag"),
        YamlErrorKind::TooManyNodes(n) => at("yaml/alias-limit", format!("aliases expand to more than {n} nodes"))
            .with_hint("this looks like an alias bomb; a manifest needs no more than a few hundred nodes"),
        YamlErrorKind::TooDeep(n) => at("yaml/too-deep", format!("nesting is deeper than {n} levels"))
            .with_hint("the manifest's own structure is at most 5 levels deep"),
        YamlErrorKind::UnknownAlias => at("yaml/unknown-alias", "alias to an anchor that is not defined before it".into())
            .with_hint("define the anchor (`&name`) before using it (`*name`); an alias cannot refer to its own parent"),
    }
}

fn check_version(file: &str, root: &Node) -> Option<Diagnostic> {
    let (_, v) = root.entry("version")?;
    let supported: Vec<String> = SUPPORTED_VERSIONS.iter().map(u64::to_string).collect();
    let n = match v.value {
        yaml::Value::Int(n) => n,
        _ => return None, // the schema reports the type
    };
    if n >= 0 && SUPPORTED_VERSIONS.contains(&(n as u64)) {
        return None;
    }
    Some(
        Diagnostic::error(
            "manifest/unsupported-version",
            file,
            v.span,
            "version".into(),
            format!(
                "manifest version {n} is not supported; this mlops reads version {}",
                supported.join(", ")
            ),
        )
        .with_hint(if n > 1 {
            "upgrade mlops to a release that reads this version"
        } else {
            "set `version: 1`"
        }),
    )
}

fn segments(loc: &jsonschema::paths::Location) -> Vec<Segment> {
    loc.iter()
        .map(|s| match s {
            LocationSegment::Property(p) => Segment::Key(p.into_owned()),
            LocationSegment::Index(i) => Segment::Index(i),
        })
        .collect()
}

/// `training.sagemaker.image`, `data.features[2]`.
pub(crate) fn dotted(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn schema_diagnostics(file: &str, root: &Node, instance: &J) -> Vec<Diagnostic> {
    let Some(validator) = schema::validator() else {
        return vec![
            Diagnostic::error(
                "internal/schema",
                file,
                root.span,
                String::new(),
                "the embedded schema does not compile".into(),
            )
            .with_hint("this is a bug in mlops; please report it"),
        ];
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        describe(file, root, &error, &mut out);
    }
    merge_misspelt_required(&mut out);
    out
}

/// A misspelt required key is one mistake, not two: when an unknown key's did-you-mean names a
/// missing required key of the same mapping, drop the missing-key diagnostic and say it is
/// required in the unknown key's hint.
fn merge_misspelt_required(out: &mut Vec<Diagnostic>) {
    let mut drop = Vec::new();
    for (i, missing) in out
        .iter()
        .enumerate()
        .filter(|(_, d)| d.code == "schema/missing-key")
    {
        let Some((parent, key)) = missing
            .path
            .rsplit_once('.')
            .or(Some(("", missing.path.as_str())))
        else {
            continue;
        };
        let suggestion = format!("did you mean `{key}`?");
        let typo = out.iter().position(|d| {
            d.code == "schema/unknown-key"
                && d.hint.as_deref() == Some(suggestion.as_str())
                && d.path.rsplit_once('.').map_or("", |(p, _)| p) == parent
        });
        if let Some(t) = typo {
            drop.push((i, t));
        }
    }
    for (_, t) in &drop {
        if let Some(h) = out.get_mut(*t).and_then(|d| d.hint.as_mut()) {
            h.push_str(" (it is required)");
        }
    }
    let gone: Vec<usize> = drop.iter().map(|(i, _)| *i).collect();
    let mut index = 0;
    out.retain(|_| {
        let keep = !gone.contains(&index);
        index += 1;
        keep
    });
}

/// Turns one schema error into diagnostics (an `anyOf` may expand to its branch's errors).
fn describe(file: &str, root: &Node, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
    let path = segments(error.instance_path());
    let span = root.locate(&path);
    let name = dotted(&path);
    let shown = if name.is_empty() {
        "the manifest".to_owned()
    } else {
        format!("`{name}`")
    };
    let node = root.get(&path);
    let description = schema::at(schema::committed(), &path)
        .and_then(|s| s.get("description"))
        .and_then(J::as_str)
        .map(first_sentence);
    let here = |code, message: String| Diagnostic::error(code, file, span, name.clone(), message);
    let found = node.map(found).unwrap_or_default();
    let with_desc = |d: Diagnostic| match &description {
        Some(text) => d.with_hint(text.clone()),
        None => d,
    };
    // An enum, plain or documented (a `oneOf` of constants), is reported as a choice.
    let choices = match error.kind() {
        ValidationErrorKind::Enum { options } => Some(
            options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            enum_choices(&path)
        }
        _ => None,
    };
    if let Some(names) = choices {
        out.push(choice(
            here("schema/enum", String::new()),
            &shown,
            &found,
            &names,
            node,
            &description,
        ));
        return;
    }
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = schema::known_keys(schema::committed(), &path);
            for key in unexpected {
                let key_span = root.key_span(&path, key).unwrap_or(span);
                let mut child = path.clone();
                child.push(Segment::Key(key.clone()));
                let where_ = if name.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in `{name}`")
                };
                let d = Diagnostic::error(
                    "schema/unknown-key",
                    file,
                    key_span,
                    dotted(&child),
                    format!("unknown key `{key}` {where_}"),
                );
                out.push(match did_you_mean(key, known.iter().map(String::as_str)) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint(format!("expected one of: {}", backticked(&known))),
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let prop = property.as_str().unwrap_or_default();
            let mut child = path.clone();
            child.push(Segment::Key(prop.to_owned()));
            let hint = schema::at(schema::committed(), &child)
                .and_then(|s| s.get("description"))
                .and_then(J::as_str)
                .map(first_sentence);
            let where_ = if name.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in `{name}`")
            };
            // Point at the key that owns the incomplete mapping (`training:`), or at the start of
            // the document for a top-level key.
            let at = match path.split_last() {
                Some((Segment::Key(k), parent)) => root.key_span(parent, k).unwrap_or(span),
                _ => Span::at(span.start),
            };
            let d = Diagnostic::error(
                "schema/missing-key",
                file,
                at,
                dotted(&child),
                format!("missing required key `{prop}` {where_}"),
            );
            out.push(match hint {
                Some(h) => d.with_hint(format!("add `{prop}`: {h}")),
                None => d,
            });
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| article(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            out.push(with_desc(here(
                "schema/type",
                format!("{shown} must be {expected}, found {found}"),
            )));
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(with_desc(here(
                "schema/const",
                format!(
                    "{shown} must be {}, found {found}",
                    show_json(expected_value)
                ),
            )));
        }
        ValidationErrorKind::Pattern { pattern } => {
            let d = here(
                "schema/pattern",
                format!("{shown} is not valid: found {found}"),
            );
            out.push(d.with_hint(match &description {
                Some(text) => format!("{text} (pattern: `{pattern}`)"),
                None => format!("it must match `{pattern}`"),
            }));
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            let strict = matches!(error.kind(), ValidationErrorKind::ExclusiveMinimum { .. });
            let rel = if strict { "greater than" } else { "at least" };
            out.push(with_desc(here(
                "schema/range",
                format!("{shown} must be {rel} {limit}, found {found}"),
            )));
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            let strict = matches!(error.kind(), ValidationErrorKind::ExclusiveMaximum { .. });
            let rel = if strict { "less than" } else { "at most" };
            out.push(with_desc(here(
                "schema/range",
                format!("{shown} must be {rel} {limit}, found {found}"),
            )));
        }
        ValidationErrorKind::MinLength { limit } => out.push(with_desc(here(
            "schema/length",
            format!(
                "{shown} must be at least {limit} character{} long",
                plural(*limit)
            ),
        ))),
        ValidationErrorKind::MaxLength { limit } => out.push(with_desc(here(
            "schema/length",
            format!(
                "{shown} must be at most {limit} character{} long",
                plural(*limit)
            ),
        ))),
        ValidationErrorKind::MinItems { limit } => out.push(with_desc(here(
            "schema/items",
            format!("{shown} must have at least {limit} item{}", plural(*limit)),
        ))),
        ValidationErrorKind::MaxItems { limit } => out.push(with_desc(here(
            "schema/items",
            format!("{shown} must have at most {limit} item{}", plural(*limit)),
        ))),
        ValidationErrorKind::PropertyNames { error: inner } => {
            // The inner error's instance is the offending key itself.
            let key = inner.instance().as_str().unwrap_or_default().to_owned();
            let key_span = root.key_span(&path, &key).unwrap_or(span);
            let mut child = path.clone();
            child.push(Segment::Key(key.clone()));
            let allowed: Vec<String> = schema::at(schema::committed(), &path)
                .and_then(|s| s.get("propertyNames"))
                .and_then(resolve_enum)
                .unwrap_or_default();
            let d = Diagnostic::error(
                "schema/unknown-key",
                file,
                key_span,
                dotted(&child),
                format!("`{key}` is not a valid key in {shown}"),
            );
            out.push(
                match did_you_mean(&key, allowed.iter().map(String::as_str)) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None if !allowed.is_empty() => {
                        d.with_hint(format!("expected one of: {}", backticked(&allowed)))
                    }
                    None => d,
                },
            );
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // Keep the branches whose errors are not a plain type mismatch at this very node:
            // when exactly one branch has the right shape, its errors are the real ones.
            let fitting: Vec<&Vec<ValidationError<'static>>> = context
                .iter()
                .filter(|branch| {
                    !branch.iter().any(|e| {
                        matches!(e.kind(), ValidationErrorKind::Type { .. })
                            && segments(e.instance_path()) == path
                    })
                })
                .collect();
            if let [branch] = fitting.as_slice() {
                for e in branch.iter() {
                    describe(file, root, e, out);
                }
            } else {
                out.push(with_desc(here(
                    "schema/any-of",
                    format!("{shown} does not match any allowed form, found {found}"),
                )));
            }
        }
        _ => out.push(with_desc(here(
            "schema/invalid",
            format!("{shown}: {}", error.masked()),
        ))),
    }
}

/// "must be one of …", with a did-you-mean when the value is a near miss, else the description.
fn choice(
    d: Diagnostic,
    shown: &str,
    found: &str,
    names: &[String],
    node: Option<&Node>,
    description: &Option<String>,
) -> Diagnostic {
    let mut d = d;
    d.message = format!(
        "{shown} must be one of {}, found {found}",
        backticked(names)
    );
    let text = node.and_then(|n| match &n.value {
        yaml::Value::String(s) => Some(s.as_str()),
        _ => None,
    });
    match (
        text.and_then(|t| did_you_mean(t, names.iter().map(String::as_str))),
        description,
    ) {
        (Some(s), _) => d.with_hint(format!("did you mean `{s}`?")),
        (None, Some(text)) => d.with_hint(text.clone()),
        (None, None) => d,
    }
}

/// The string choices of the subschema at `path`, when it is an enum (plain or `oneOf` consts).
fn enum_choices(path: &[Segment]) -> Option<Vec<String>> {
    let names = resolve_enum(schema::at(schema::committed(), path)?)?;
    (!names.is_empty()).then_some(names)
}

fn resolve_enum(p: &J) -> Option<Vec<String>> {
    let target = match p.get("$ref").and_then(J::as_str) {
        Some(r) => schema::committed().pointer(r.strip_prefix('#')?)?,
        None => p,
    };
    let mut names = Vec::new();
    if let Some(e) = target.get("enum").and_then(J::as_array) {
        names.extend(e.iter().filter_map(J::as_str).map(str::to_owned));
    }
    if let Some(one_of) = target.get("oneOf").and_then(J::as_array) {
        for v in one_of {
            if let Some(c) = v.get("const").and_then(J::as_str) {
                names.push(c.to_owned());
            }
            if let Some(e) = v.get("enum").and_then(J::as_array) {
                names.extend(e.iter().filter_map(J::as_str).map(str::to_owned));
            }
        }
    }
    Some(names)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        "null" => "null".into(),
        other => format!("a {other}"),
    }
}

/// What a node is, for "found ..." in messages: scalars by value (shortened), others by kind.
fn found(node: &Node) -> String {
    match &node.value {
        yaml::Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            let ellipsis = if s.chars().count() > 60 { "…" } else { "" };
            format!("the string `{short}{ellipsis}`")
        }
        yaml::Value::Int(i) => format!("`{i}`"),
        yaml::Value::Float(f) => format!("`{f}`"),
        yaml::Value::Bool(b) => format!("`{b}`"),
        yaml::Value::Null => "nothing (null)".into(),
        _ => node.kind_name().into(),
    }
}

fn show_json(v: &J) -> String {
    match v {
        J::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn backticked(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_sentence(text: &str) -> String {
    let flat = text.replace('\n', " ");
    match flat.split_once(". ") {
        Some((first, _)) => format!("{first}."),
        None => flat,
    }
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unclosed quote is named where it was opened: the parser reports the end of the file,
    /// which may be far below. Quotes inside words, comments and closed scalars do not count, and
    /// lines are counted as YAML counts them (a lone CR breaks one).
    #[test]
    fn an_unclosed_quote_is_named_where_it_was_opened() {
        for (text, line, column, quote) in [
            (
                "version: 1\n# it's a comment\nproject:\n  name: \"digits\n  repository: o/r\nmodel:\n  name: m\n",
                4,
                9,
                '"',
            ),
            (
                "version: 1\nproject:\n  name: 'it''s'\n  repository: don't\nmodel:\n  name: 'm\n  task: x\n",
                6,
                9,
                '\'',
            ),
            (
                "version: 1\rproject:\r  name: \"a \\\" b\"\r  repository: \"o/r\rmodel: {}\r",
                4,
                15,
                '"',
            ),
        ] {
            let d = &check_bytes("m.yaml", text.as_bytes()).diagnostics[0];
            assert_eq!(d.code, "yaml/syntax", "{d:?}");
            let related = d
                .related
                .as_ref()
                .unwrap_or_else(|| panic!("no quote named: {d:?}"));
            assert_eq!(
                (related.line, related.column),
                (line, column),
                "{text:?}: {d:?}"
            );
            assert_eq!(
                related.message,
                format!("the `{quote}` opened here is never closed")
            );
            let hint = d.hint.as_deref().unwrap_or_default();
            assert!(
                hint.starts_with(&format!(
                    "close the `{quote}` opened on line {line} with `{quote}`"
                )),
                "{hint}"
            );
        }
    }

    /// An unclosed `[` or `{` is named where it was opened, lines before the point where the
    /// parser gave up; a syntax error inside closed brackets names none.
    #[test]
    fn an_unclosed_bracket_is_named_where_it_was_opened() {
        let text = "version: 1\nproject:\n  name: digits\nmodel:\n  name: digits-mlp\n  task: classification\ndata:\n  features: [pixel_0, pixel_1,\n  label: digit\n  format: csv\n";
        let report = check_bytes("m.yaml", text.as_bytes());
        let d = &report.diagnostics[0];
        assert_eq!(d.code, "yaml/syntax", "{d:?}");
        assert!(
            d.line > 8,
            "the parser gives up after the bracket's line: {d:?}"
        );
        let related = d.related.as_ref().expect("the bracket is named");
        assert_eq!((related.line, related.column), (8, 13), "{related:?}");
        assert_eq!(related.message, "the `[` opened here is still open");
        let hint = d.hint.as_deref().unwrap_or_default();
        assert!(
            hint.starts_with("close the `[` opened on line 8 with `]`"),
            "{hint}"
        );

        let brace = "version: 1\nproject: {name: digits,\nmodel:\n  name: m\n";
        let d = &check_bytes("m.yaml", brace.as_bytes()).diagnostics[0];
        let related = d.related.as_ref().expect("the brace is named");
        assert_eq!((related.line, related.column), (2, 10), "{d:?}");
        assert!(
            d.hint.as_deref().unwrap_or_default().contains("with `}`"),
            "{d:?}"
        );

        let closed = "version: 1\nproject: [a, b]\nmodel: \"x\n";
        let d = &check_bytes("m.yaml", closed.as_bytes()).diagnostics[0];
        assert_eq!(d.code, "yaml/syntax", "{d:?}");
        let related = d.related.as_ref().expect("the quote is named");
        assert!(
            related.message.contains('"') && !related.message.contains('['),
            "the closed bracket is not named: {d:?}"
        );
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let keys = ["epochs", "batch_size", "learning_rate"];
        assert_eq!(did_you_mean("epocs", keys.into_iter()), Some("epochs"));
        assert_eq!(
            did_you_mean("batchsize", keys.into_iter()),
            Some("batch_size")
        );
        assert_eq!(did_you_mean("colour", keys.into_iter()), None);
    }

    #[test]
    fn registries_are_compared_where_they_resolve() {
        assert_eq!(
            registry_identity("a/mlops.yaml", ".mlops/registry"),
            "a/.mlops/registry"
        );
        assert_eq!(
            registry_identity("a/mlops.yaml", "../shared/reg"),
            "shared/reg"
        );
        assert_eq!(
            registry_identity("b/x/mlops.yaml", "../../shared/reg/"),
            "shared/reg"
        );
        assert_eq!(registry_identity("mlops.yaml", "s3://b/reg/"), "s3://b/reg");
    }

    #[test]
    fn dotted_paths() {
        let p = [
            Segment::Key("data".into()),
            Segment::Key("features".into()),
            Segment::Index(2),
        ];
        assert_eq!(dotted(&p), "data.features[2]");
    }
}
