//! cookiecutter's generation: the context from `cookiecutter.json` and the overrides, the
//! variables rendered in order (prompting when asked), then the template directory walked in
//! sorted order — names rendered, text files rendered, binary and `_copy_without_render` files
//! copied, modes kept, each file's newline style kept — between the two generation hooks.

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use minijinja::Environment;
use minijinja::value::Value;
use serde_json::{Map, Value as Json};

use crate::engine;

/// What went wrong, and whose it is to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request or the template: a bad override, a template error, an existing project.
    Usage,
    /// A hook failed (the project was removed).
    Hook,
    /// Reading or writing files failed.
    Io,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InitError {
    pub message: String,
    pub hint: String,
    pub kind: Kind,
}

fn usage(message: String, hint: &str) -> InitError {
    InitError {
        message,
        hint: hint.to_owned(),
        kind: Kind::Usage,
    }
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> InitError {
    InitError {
        message: format!("cannot {what} {}: {e}", path.display()),
        hint: String::new(),
        kind: Kind::Io,
    }
}

/// One `mlops init`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The template: a directory holding `cookiecutter.json`.
    pub template: PathBuf,
    /// Where the project directory is created.
    pub output_dir: PathBuf,
    /// `KEY=VALUE` overrides, applied as cookiecutter applies extra context.
    pub extra: Vec<(String, String)>,
    /// Take every default (and the overrides) without asking.
    pub no_input: bool,
    /// Write into an existing project directory, replacing the files the template renders.
    pub overwrite: bool,
    /// Run the template's `pre_gen_project` and `post_gen_project` hooks.
    pub hooks: bool,
    /// Answers recorded by an earlier run (`--update`): used as they are, without rendering or
    /// asking; a variable without one is answered as usual.
    pub recorded: Option<Map<String, Json>>,
    /// Where the template came from and its commit, when it is versioned: written to the
    /// project as `.mlops-template.json` with the answers.
    pub version: Option<(String, String)>,
}

/// The file a project made from a versioned template records its template, commit and answers
/// in, for `mlops init --update`.
pub const RECORD: &str = ".mlops-template.json";

/// What [`RECORD`] holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The address `git clone` was given.
    pub template: String,
    /// The address's kind when the project was made (absent in records written before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::source::SourceKind>,
    /// The template's commit.
    pub commit: String,
    /// The answers the project was rendered with.
    #[serde(default)]
    pub answers: Map<String, Json>,
}

impl Record {
    pub fn text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// Asks for a variable's value (on a terminal).
pub trait Prompter {
    /// A free-text value, `default` when the answer is empty.
    fn text(&mut self, key: &str, default: &str) -> String;
    /// The index of one of `options` (the first is the default).
    fn choice(&mut self, key: &str, options: &[String]) -> usize;
    /// Yes or no.
    fn yes_no(&mut self, key: &str, default: bool) -> bool;
}

/// The generated project.
#[derive(Debug)]
pub struct Generated {
    pub project: PathBuf,
    /// Files written.
    pub files: usize,
    /// The `cookiecutter` variables it was rendered with.
    pub answers: Map<String, Json>,
}

/// Something to do to the staged project after the post-generation hook, before it is moved into
/// place (the built-in template renders its workflows here).
pub type Finish<'a> = &'a dyn Fn(&Path) -> Result<(), InitError>;

pub fn generate(
    req: &Request,
    mut prompter: Option<&mut dyn Prompter>,
    finish: Option<Finish<'_>>,
) -> Result<Generated, InitError> {
    let json_path = req.template.join("cookiecutter.json");
    let text = std::fs::read_to_string(&json_path).map_err(|e| {
        usage(
            format!(
                "{}: cannot read the template's variables: {e}",
                json_path.display()
            ),
            "--template names a cookiecutter template: a directory with cookiecutter.json",
        )
    })?;
    let mut raw: Map<String, Json> = match serde_json::from_str(&text) {
        Ok(Json::Object(m)) => m,
        Ok(_) => {
            return Err(usage(
                format!("{}: not a JSON object", json_path.display()),
                "cookiecutter.json maps each variable to its default",
            ));
        }
        Err(e) => {
            return Err(usage(
                format!(
                    "{}:{}:{}: invalid JSON: {e}",
                    json_path.display(),
                    e.line(),
                    e.column()
                ),
                "fix the JSON",
            ));
        }
    };
    let extensions: Vec<String> = raw
        .get("_extensions")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut env = engine::environment(&extensions).map_err(|unknown| {
        usage(
            format!(
                "the template needs the Jinja extension `{unknown}`, which mlops init does not \
                 implement"
            ),
            "mlops init has cookiecutter's own (jsonify, random_ascii_string, slugify, now, \
             uuid4) and Python's string methods; remove the extension from `_extensions` or use \
             cookiecutter for this template",
        )
    })?;
    for (key, value) in &req.extra {
        overwrite(&mut raw, key, value)?;
    }
    let original: Map<String, Json> = raw
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let no_input = req.no_input || prompter.is_none();
    let mut answers = answer(&env, &raw, no_input, &mut prompter, req.recorded.as_ref())?;
    let user_answers: Map<String, Json> = answers
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // `_template` is the template as the user named it: a cloned one's address.
    let named = req
        .version
        .as_ref()
        .map_or_else(|| req.template.display().to_string(), |(a, _)| a.clone());
    answers.insert("_template".into(), Json::String(named));
    answers.insert(
        "_output_dir".into(),
        Json::String(abs(&req.output_dir).display().to_string()),
    );
    answers.insert(
        "_repo_dir".into(),
        Json::String(req.template.display().to_string()),
    );
    answers.insert("_checkout".into(), Json::Null);
    let mut context = Map::new();
    context.insert("cookiecutter".into(), Json::Object(answers.clone()));
    context.insert("_cookiecutter".into(), Json::Object(original));
    let context = Value::from(minijinja::value::Serde(&context));

    let template_dir = find_template(&req.template)?;
    // Nothing the template reads may come from outside it: not through a symlink at any depth,
    // not through `..` (the project directory, every include and every copied file are checked).
    let template_root =
        std::fs::canonicalize(&req.template).map_err(|e| io("resolve", &req.template, &e))?;
    within(&template_root, &template_dir).map_err(|m| usage(m, OUTSIDE_HINT))?;
    // `{% include %}` and `{% import %}` find files as cookiecutter's loader does: in the project
    // template, then in the template's `templates/`; never outside them.
    let search = [template_dir.clone(), req.template.join("templates")];
    let loader_root = template_root.clone();
    env.set_loader(move |name| {
        if Path::new(name)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Ok(None);
        }
        for dir in &search {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            within(&loader_root, &path)
                .map_err(|m| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, m))?;
            if let Ok(text) = std::fs::read_to_string(&path) {
                let text = text.replace("\r\n", "\n").replace('\r', "\n");
                return Ok(Some(engine::rewrite_now(&text)));
            }
        }
        Ok(None)
    });
    let dir_name = template_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let project_name = render(&env, &dir_name, &dir_name, &context)?;
    let project_rel = safe_relative(&project_name, &dir_name)?;
    let target = req.output_dir.join(&project_rel);
    let existed = target.exists();
    if existed && !req.overwrite {
        return Err(usage(
            format!("{} exists already", target.display()),
            "choose another name or directory, or pass --overwrite to render into it",
        ));
    }
    std::fs::create_dir_all(&req.output_dir).map_err(|e| io("create", &req.output_dir, &e))?;
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix())
        .tempdir_in(&req.output_dir)
        .map_err(|e| io("create a staging directory in", &req.output_dir, &e))?;
    let project = staging.path().join(&project_rel);
    std::fs::create_dir_all(&project).map_err(|e| io("create", &project, &e))?;

    let newline = answers
        .get("_new_lines")
        .and_then(Json::as_str)
        .map(str::to_owned);
    let copy_only: Vec<String> = answers
        .get("_copy_without_render")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let hooks_dir = req.template.join("hooks");
    if req.hooks {
        run_hooks(&env, &hooks_dir, "pre_gen_project", &project, &context)?;
    }
    let mut walk = Walk {
        env: &env,
        context: &context,
        root: &template_dir,
        template_root: &template_root,
        project: &project,
        copy_only: &copy_only,
        newline: newline.as_deref(),
        files: 0,
    };
    walk.dir(Path::new(""))?;
    let files = walk.files;
    if req.hooks {
        run_hooks(&env, &hooks_dir, "post_gen_project", &project, &context)?;
    }
    if let Some((source, commit)) = &req.version {
        let record = Record {
            template: source.clone(),
            source: crate::source::kind(source).ok(),
            commit: commit.clone(),
            answers: user_answers.clone(),
        };
        let path = project.join(RECORD);
        std::fs::write(&path, record.text()).map_err(|e| io("write", &path, &e))?;
    }
    if let Some(finish) = finish {
        finish(&project)?;
    }
    place(&project, &target, existed)?;
    Ok(Generated {
        project: target,
        files,
        answers,
    })
}

/// The process id of the hook running now (0: none), for an interrupt handler to stop it.
pub static HOOK: AtomicU32 = AtomicU32::new(0);

/// Set by an interrupt handler before it stops the hook, so that the hook's failure is reported
/// as the interruption it is.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The name prefix of this process's staging directories, `.mlops-init-PID-`: what an interrupt
/// handler deletes ([`remove_staging`]).
pub fn staging_prefix() -> String {
    format!(".mlops-init-{}-", std::process::id())
}

/// Deletes this process's staging directories in `dir` (after an interrupt, when destructors do
/// not run).
pub fn remove_staging(dir: &Path) {
    let prefix = staging_prefix();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// cookiecutter's overrides: an unknown key is ignored, a choice must be one of the choices
/// (it becomes the default), a boolean takes yes/no words, anything else is replaced.
fn overwrite(raw: &mut Map<String, Json>, key: &str, value: &str) -> Result<(), InitError> {
    let Some(current) = raw.get_mut(key) else {
        eprintln!("warning: the template has no variable `{key}`; {key}={value} is ignored");
        return Ok(());
    };
    match current {
        Json::Array(choices) => {
            let Some(at) = choices.iter().position(|c| c.as_str() == Some(value)) else {
                let listed: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                return Err(usage(
                    format!("{key}={value}: `{key}` is one of {}", listed.join(", ")),
                    "pick one of the template's choices",
                ));
            };
            let chosen = choices.remove(at);
            choices.insert(0, chosen);
        }
        Json::Bool(b) => {
            *b = match value.trim().to_lowercase().as_str() {
                "1" | "true" | "t" | "yes" | "y" | "on" => true,
                "0" | "false" | "f" | "no" | "n" | "off" => false,
                _ => {
                    return Err(usage(
                        format!("{key}={value}: `{key}` is yes or no"),
                        "use yes/no, true/false, y/n, on/off or 1/0",
                    ));
                }
            };
        }
        other => *other = Json::String(value.to_owned()),
    }
    Ok(())
}

/// The variables in cookiecutter's two passes: plain values, choices and booleans first (each
/// default rendered with the answers so far), then dictionaries; `_name` kept raw, `__name`
/// rendered without asking.
fn answer(
    env: &Environment<'static>,
    raw: &Map<String, Json>,
    no_input: bool,
    prompter: &mut Option<&mut dyn Prompter>,
    recorded: Option<&Map<String, Json>>,
) -> Result<Map<String, Json>, InitError> {
    let mut done = Map::new();
    for (key, value) in raw {
        if let Some(v) = recorded.and_then(|r| r.get(key)) {
            done.insert(key.clone(), v.clone());
            continue;
        }
        if key.starts_with('_') && !key.starts_with("__") {
            done.insert(key.clone(), value.clone());
            continue;
        }
        if key.starts_with("__") {
            let v = render_variable(env, key, value, &done)?;
            done.insert(key.clone(), v);
            continue;
        }
        let v = match value {
            Json::Array(options) => {
                let rendered: Vec<Json> = options
                    .iter()
                    .map(|o| render_variable(env, key, o, &done))
                    .collect::<Result<_, _>>()?;
                if rendered.is_empty() {
                    return Err(usage(
                        format!("the choice variable `{key}` has no choices"),
                        "give it at least one",
                    ));
                }
                match prompter.as_mut().filter(|_| !no_input) {
                    Some(p) => {
                        let labels: Vec<String> = rendered.iter().map(json_text).collect();
                        let i = p.choice(key, &labels).min(rendered.len() - 1);
                        rendered.get(i).cloned().unwrap_or_default()
                    }
                    None => rendered.first().cloned().unwrap_or_default(),
                }
            }
            Json::Bool(b) => match prompter.as_mut().filter(|_| !no_input) {
                Some(p) => Json::Bool(p.yes_no(key, *b)),
                None => Json::Bool(*b),
            },
            Json::Object(_) => continue,
            other => {
                let v = render_variable(env, key, other, &done)?;
                match (prompter.as_mut().filter(|_| !no_input), &v) {
                    (Some(p), Json::String(s)) => Json::String(p.text(key, s)),
                    _ => v,
                }
            }
        };
        done.insert(key.clone(), v);
    }
    for (key, value) in raw {
        if key.starts_with('_') && !key.starts_with("__")
            || recorded.is_some_and(|r| r.contains_key(key))
        {
            continue;
        }
        if let Json::Object(_) = value {
            let v = render_variable(env, key, value, &done)?;
            done.insert(key.clone(), v);
        }
    }
    Ok(done)
}

/// cookiecutter's `render_variable`: null and booleans as they are, containers item by item,
/// anything else as the text of its Python `str` rendered as a template.
fn render_variable(
    env: &Environment<'static>,
    key: &str,
    raw: &Json,
    done: &Map<String, Json>,
) -> Result<Json, InitError> {
    Ok(match raw {
        Json::Null | Json::Bool(_) => raw.clone(),
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let k = match render_variable(env, key, &Json::String(k.clone()), done)? {
                    Json::String(s) => s,
                    other => json_text(&other),
                };
                out.insert(k, render_variable(env, key, v, done)?);
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_variable(env, key, v, done))
                .collect::<Result<_, _>>()?,
        ),
        other => {
            let source = json_text(other);
            let mut ctx = Map::new();
            ctx.insert("cookiecutter".into(), Json::Object(done.clone()));
            let text = render(
                env,
                &format!("cookiecutter.json `{key}`"),
                &source,
                &Value::from(minijinja::value::Serde(&ctx)),
            )?;
            Json::String(text)
        }
    })
}

/// Python's `str` of a JSON value.
fn json_text(v: &Json) -> String {
    crate::python::str(&Value::from(minijinja::value::Serde(v)))
}

/// Renders `source` (named `name` in errors) with `context`.
fn render(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    context: &Value,
) -> Result<String, InitError> {
    let source = engine::rewrite_now(source);
    env.render_named_str(name, &source, context).map_err(|e| {
        let place = e
            .line()
            .map_or_else(|| name.to_owned(), |l| format!("{name}:{l}"));
        let what = e.detail().map_or_else(|| e.to_string(), str::to_owned);
        usage(
            format!("{place}: {what}"),
            "fix the template, or give the variable it needs (KEY=VALUE)",
        )
    })
}

/// The project template: the entry of the template directory whose name holds `cookiecutter`
/// and `{{ }}` (the first in name order).
fn find_template(root: &Path) -> Result<PathBuf, InitError> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| io("read", root, &e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cookiecutter") && n.contains("{{") && n.contains("}}"))
        .collect();
    names.sort();
    names.first().map(|n| root.join(n)).ok_or_else(|| {
        usage(
            format!(
                "{} has no project directory (a name with `{{{{ cookiecutter.… }}}}`)",
                root.display()
            ),
            "a cookiecutter template holds cookiecutter.json and a directory such as \
             `{{cookiecutter.project_slug}}`",
        )
    })
}

/// A rendered path as a relative path that stays inside the project: no root, no `..`.
/// A template's file or directory name `name` rendered with `answers` (the `cookiecutter`
/// variables) into a path inside the project, as a generation renders each one: refused when it
/// would leave the project. (The fuzz target `init_path` drives it.)
pub fn project_path(name: &str, answers: &Map<String, Json>) -> Result<PathBuf, InitError> {
    let env = engine::environment(&[]).map_err(|unknown| usage(unknown, ""))?;
    let mut context = Map::new();
    context.insert("cookiecutter".into(), Json::Object(answers.clone()));
    let context = Value::from(minijinja::value::Serde(&context));
    let rendered = render(&env, name, name, &context)?;
    safe_relative(&rendered, name)
}

fn safe_relative(rendered: &str, source: &str) -> Result<PathBuf, InitError> {
    let path = Path::new(rendered);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(usage(
                    format!(
                        "`{source}` renders to `{rendered}`, which leaves the project directory"
                    ),
                    "a template's file names must render to paths inside the project; nothing \
                     was written",
                ));
            }
        }
    }
    Ok(out)
}

struct Walk<'a> {
    env: &'a Environment<'static>,
    context: &'a Value,
    /// The project template directory (`{{cookiecutter.…}}`).
    root: &'a Path,
    /// The template (holding cookiecutter.json), resolved: nothing read may lie outside it.
    template_root: &'a Path,
    project: &'a Path,
    copy_only: &'a [String],
    newline: Option<&'a str>,
    files: usize,
}

impl Walk<'_> {
    /// Renders the template directory `rel` (relative to the root) into the project.
    fn dir(&mut self, rel: &Path) -> Result<(), InitError> {
        let src = self.root.join(rel);
        let mut entries: Vec<(String, bool)> = Vec::new();
        for e in std::fs::read_dir(&src).map_err(|e| io("read", &src, &e))? {
            let e = e.map_err(|e| io("read", &src, &e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            self.inside_template(&path)?;
            entries.push((name, path.is_dir()));
        }
        entries.sort();
        let (dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(_, d)| *d);
        for (name, _) in &dirs {
            let child = rel.join(name);
            let key = slash(&child);
            let out = self.output_path(&key)?;
            if self.is_copy_only(&key) {
                let dest = self.project.join(&out);
                if dest.is_dir() {
                    std::fs::remove_dir_all(&dest).map_err(|e| io("replace", &dest, &e))?;
                }
                self.files += copy_tree(self.template_root, &self.root.join(&child), &dest)?;
            } else {
                let dest = self.project.join(&out);
                std::fs::create_dir_all(&dest).map_err(|e| io("create", &dest, &e))?;
                self.dir(&child)?;
            }
        }
        for (name, _) in &files {
            let child = rel.join(name);
            let key = slash(&child);
            let out = self.output_path(&key)?;
            let dest = self.project.join(&out);
            let from = self.root.join(&child);
            if self.is_copy_only(&key) {
                copy_file(&from, &dest)?;
                self.files += 1;
                continue;
            }
            // A name that renders empty leaves the directory's path: the file is skipped.
            if dest.is_dir() {
                continue;
            }
            self.file(&key, &from, &dest)?;
        }
        Ok(())
    }

    fn output_path(&self, key: &str) -> Result<PathBuf, InitError> {
        let rendered = render(self.env, key, key, self.context)?;
        if rendered.ends_with('/') {
            // Rendered to an empty file name.
            return Ok(safe_relative(&rendered, key)?.join(""));
        }
        safe_relative(&rendered, key)
    }

    fn is_copy_only(&self, key: &str) -> bool {
        self.copy_only.iter().any(|p| fnmatch(p, key))
    }

    /// A symlink whose target lies outside the template is refused (its content would be
    /// copied into the project), and so is one to a directory (a loop would never end).
    fn inside_template(&self, path: &Path) -> Result<(), InitError> {
        within(self.template_root, path).map_err(|m| usage(m, OUTSIDE_HINT))
    }

    /// A template file: copied when binary, else rendered, written with its own newline style
    /// (or `_new_lines`) and its mode.
    fn file(&mut self, key: &str, from: &Path, dest: &Path) -> Result<(), InitError> {
        let bytes = std::fs::read(from).map_err(|e| io("read", from, &e))?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) if !bytes.iter().take(1024).any(|b| *b == 0) => t,
            _ => {
                copy_file(from, dest)?;
                self.files += 1;
                return Ok(());
            }
        };
        let newline = match self.newline {
            Some(n) => n.to_owned(),
            None => first_newline(text).to_owned(),
        };
        let source = text.replace("\r\n", "\n").replace('\r', "\n");
        let rendered = render(self.env, key, &source, self.context)?;
        let out = if newline == "\n" {
            rendered
        } else {
            rendered.replace('\n', &newline)
        };
        std::fs::write(dest, out).map_err(|e| io("write", dest, &e))?;
        copy_mode(from, dest)?;
        self.files += 1;
        Ok(())
    }
}

/// The newline the first line ends with (`\n` when there is none), as Python's universal
/// newlines report it.
fn first_newline(text: &str) -> &'static str {
    let end = text.find(['\n', '\r']).map(|i| text.split_at(i).1);
    match end {
        Some(e) if e.starts_with("\r\n") => "\r\n",
        Some(e) if e.starts_with('\r') => "\r",
        _ => "\n",
    }
}

fn slash(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn copy_file(from: &Path, to: &Path) -> Result<(), InitError> {
    std::fs::copy(from, to).map_err(|e| io("copy", from, &e))?;
    copy_mode(from, to)
}

fn copy_mode(from: &Path, to: &Path) -> Result<(), InitError> {
    let perms = std::fs::metadata(from)
        .map_err(|e| io("read", from, &e))?
        .permissions();
    std::fs::set_permissions(to, perms).map_err(|e| io("set the mode of", to, &e))
}

/// `shutil.copytree`: files and directories with their modes; the number of files. Every entry
/// is checked to lie inside the template (`root`, resolved), at any depth.
fn copy_tree(root: &Path, from: &Path, to: &Path) -> Result<usize, InitError> {
    std::fs::create_dir_all(to).map_err(|e| io("create", to, &e))?;
    let mut n = 0;
    for e in std::fs::read_dir(from).map_err(|e| io("read", from, &e))? {
        let e = e.map_err(|e| io("read", from, &e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        within(root, &src).map_err(|m| usage(m, OUTSIDE_HINT))?;
        if src.is_dir() {
            n += copy_tree(root, &src, &dst)?;
        } else {
            copy_file(&src, &dst)?;
            n += 1;
        }
    }
    copy_mode(from, to)?;
    Ok(n)
}

const OUTSIDE_HINT: &str =
    "a template may link only to its own files, never to a directory; nothing was written";

/// Whether `path` (a file or directory of the template) stays inside `root` (the template,
/// resolved) once symlinks are followed; a symlink to a directory is refused as well, since a
/// link to an ancestor would make the walk endless.
fn within(root: &Path, path: &Path) -> Result<(), String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !real.starts_with(root) {
        return Err(format!(
            "{} leads to {}, outside the template",
            path.display(),
            real.display()
        ));
    }
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if link && real.is_dir() {
        return Err(format!(
            "{} is a symlink to the directory {}",
            path.display(),
            real.display()
        ));
    }
    Ok(())
}

/// Python's `fnmatch.fnmatch` on POSIX: `*` (any text, `/` included), `?`, `[seq]`, `[!seq]`.
/// By the two-pointer method over the pattern's tokens: at most (pattern × name) steps, where a
/// recursive search is exponential in the number of `*` (a template's `_copy_without_render`
/// is the template author's text).
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let tokens = tokens(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut t, mut n) = (0, 0);
    // After the last `*`: the token after it, and the name position it has taken up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match (tokens.get(t), name.get(n)) {
            (Some(Token::Star), _) => {
                star = Some((t + 1, n));
                t += 1;
            }
            (Some(token), Some(c)) if token.matches(*c) => {
                t += 1;
                n += 1;
            }
            _ => match star {
                Some((after, taken)) => {
                    t = after;
                    n = taken + 1;
                    star = Some((after, taken + 1));
                }
                None => return false,
            },
        }
    }
    tokens
        .get(t..)
        .is_some_and(|rest| rest.iter().all(|k| matches!(k, Token::Star)))
}

/// One element of an `fnmatch` pattern.
#[derive(Debug)]
enum Token {
    Star,
    Any,
    Char(char),
    /// `[...]`: ranges `a-z` and single characters; `!` first negates.
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star => true,
            Token::Any => true,
            Token::Char(x) => *x == c,
            Token::Class { negate, items } => {
                items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate
            }
        }
    }
}

fn tokens(pattern: &str) -> Vec<Token> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        i += 1;
        match c {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '[' => {
                // `[]…]` and `[!]…]` take the first `]` as a member; an unclosed `[` is itself.
                let body_start = i + usize::from(p.get(i) == Some(&'!'));
                let close = p
                    .get(body_start + 1..)
                    .and_then(|rest| rest.iter().position(|c| *c == ']'))
                    .map(|k| body_start + 1 + k);
                match close {
                    Some(end) => {
                        let set = p.get(body_start..end).unwrap_or_default();
                        let mut items = Vec::new();
                        let mut k = 0;
                        while let Some(&a) = set.get(k) {
                            match (set.get(k + 1), set.get(k + 2)) {
                                (Some('-'), Some(&b)) => {
                                    items.push((a, b));
                                    k += 3;
                                }
                                _ => {
                                    items.push((a, a));
                                    k += 1;
                                }
                            }
                        }
                        out.push(Token::Class {
                            negate: body_start > i,
                            items,
                        });
                        i = end + 1;
                    }
                    None => out.push(Token::Char('[')),
                }
            }
            c => out.push(Token::Char(c)),
        }
    }
    out
}

/// Runs the template's hooks named `name` (`hooks/NAME.py`, `hooks/NAME.sh`, ...; not backups
/// ending in `~`), each rendered with the context first, in the project directory.
fn run_hooks(
    env: &Environment<'static>,
    dir: &Path,
    name: &str,
    project: &Path,
    context: &Value,
) -> Result<(), InitError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut hooks: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let file = p.file_name().map(|f| f.to_string_lossy().into_owned());
            p.file_stem().is_some_and(|s| s == name)
                && file.is_some_and(|f| !f.ends_with('~'))
                && p.is_file()
        })
        .collect();
    hooks.sort();
    for hook in hooks {
        let text = std::fs::read_to_string(&hook).map_err(|e| io("read", &hook, &e))?;
        let key = format!(
            "hooks/{}",
            hook.file_name().unwrap_or_default().to_string_lossy()
        );
        let script = render(env, &key, &text, context)?;
        let ext = hook
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix("mlops-hook-")
            .suffix(&ext)
            .tempfile()
            .map_err(|e| io("create a file for", &hook, &e))?;
        std::fs::write(tmp.path(), script).map_err(|e| io("write", tmp.path(), &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("make executable", tmp.path(), &e))?;
        }
        // Run from a closed file: a script still open for writing cannot be executed.
        let path = tmp.into_temp_path();
        let mut cmd = if ext == ".py" {
            let mut c = Command::new("python3");
            c.arg(&*path);
            c
        } else {
            Command::new(&*path)
        };
        let status = cmd.current_dir(project).spawn().and_then(|mut child| {
            HOOK.store(child.id(), Ordering::SeqCst);
            let status = child.wait();
            HOOK.store(0, Ordering::SeqCst);
            status
        });
        let status = status.map_err(|e| InitError {
            message: format!("cannot run the hook {key}: {e}"),
            hint: if ext == ".py" {
                "Python hooks need python3 on PATH; or pass --no-hooks".to_owned()
            } else {
                "check the hook's interpreter line; or pass --no-hooks".to_owned()
            },
            kind: Kind::Hook,
        })?;
        if !status.success() {
            return Err(InitError {
                message: format!("the hook {key} failed ({status}); no project was created"),
                hint: "see the hook's output above; --no-hooks skips hooks".to_owned(),
                kind: Kind::Hook,
            });
        }
    }
    Ok(())
}

/// Moves the staged project to `target`: a rename when it is new; file by file over an existing
/// one (`--overwrite`).
fn place(staged: &Path, target: &Path, existed: bool) -> Result<(), InitError> {
    if !existed {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, &e))?;
        }
        return std::fs::rename(staged, target).map_err(|e| io("move the project to", target, &e));
    }
    merge(staged, target)
}

fn merge(from: &Path, to: &Path) -> Result<(), InitError> {
    std::fs::create_dir_all(to).map_err(|e| io("create", to, &e))?;
    for e in std::fs::read_dir(from).map_err(|e| io("read", from, &e))? {
        let e = e.map_err(|e| io("read", from, &e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() && !src.is_symlink() {
            merge(&src, &dst)?;
        } else {
            std::fs::rename(&src, &dst).map_err(|e| io("move into place", &dst, &e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_is_pythons() {
        assert!(fnmatch("*.png", "img/logo.png"));
        assert!(fnmatch("static/*", "static/a/b.js"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("[ab]x", "bx"));
        assert!(!fnmatch("[!ab]x", "bx"));
        assert!(fnmatch("[a-c]", "b"));
        assert!(fnmatch("[]", "[]"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[!]]", "a"));
        assert!(!fnmatch("[!]]", "]"));
        assert!(fnmatch("[a", "[a"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "a"));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
        // Many stars against a name that does not match: polynomial (the recursive matcher
        // this replaced took exponential time here).
        let stars = "*a".repeat(30) + "b";
        assert!(!fnmatch(&stars, &"a".repeat(60)));
    }

    #[test]
    fn rendered_paths_stay_inside() {
        assert!(safe_relative("a/b", "x").is_ok());
        assert!(safe_relative("../evil", "x").is_err());
        assert!(safe_relative("/etc/passwd", "x").is_err());
        assert!(safe_relative("a/../../b", "x").is_err());
    }

    #[test]
    fn newlines_are_those_of_the_first_line() {
        assert_eq!(first_newline("a\r\nb\n"), "\r\n");
        assert_eq!(first_newline("a\rb"), "\r");
        assert_eq!(first_newline("a\nb\r\n"), "\n");
        assert_eq!(first_newline("none"), "\n");
    }
}
