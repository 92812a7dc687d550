//! `mlops init --update`: the project's template re-rendered at the commit it was made from and
//! at the new one, with the recorded answers, and the template's change three-way merged into the
//! project (`git merge-file`), leaving ordinary conflict markers where both sides changed a line.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::generate::{self, InitError, Kind, RECORD, Record, Request};
use crate::source;

/// What an update did, by path from the project's root.
#[derive(Debug, Default)]
pub struct Updated {
    /// The template's commits: from, to.
    pub from: String,
    pub to: String,
    /// Files the template changed that were merged cleanly (or taken as they are).
    pub merged: Vec<String>,
    pub added: Vec<String>,
    pub deleted: Vec<String>,
    /// Files left with conflict markers.
    pub conflicts: Vec<String>,
    /// Files the template changed or deleted that the project deleted or changed: left alone.
    pub kept: Vec<String>,
}

fn fail(message: String, hint: &str) -> InitError {
    InitError {
        message,
        hint: hint.to_owned(),
        kind: Kind::Usage,
    }
}

/// Updates the project in `project` to the template at `reference` (the default branch when
/// `None`).
pub fn update(project: &Path, reference: Option<&str>) -> Result<Updated, InitError> {
    let record_path = project.join(RECORD);
    let text = std::fs::read_to_string(&record_path).map_err(|e| {
        fail(
            format!("{}: {e}", record_path.display()),
            "only a project made from a template in a git repository can be updated (it records \
             the template, its commit and the answers there)",
        )
    })?;
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        fail(
            format!("{}: {e}", record_path.display()),
            "restore the file",
        )
    })?;
    let Record {
        template,
        source: recorded_kind,
        commit: from,
        answers,
    } = record;
    if template.is_empty() || from.is_empty() {
        return Err(fail(
            format!("{} has no template or commit", record_path.display()),
            "restore the file",
        ));
    }
    let kind = source::kind(&template)?;
    if let Some(recorded) = recorded_kind
        && recorded != kind
    {
        return Err(fail(
            format!(
                "{} says the project was made from {}, but its address `{template}` is now {}",
                record_path.display(),
                recorded.describe(),
                kind.describe()
            ),
            "the record was edited; restore it from the project's history, or make the project \
             again from the template you trust",
        ));
    }
    let new = source::clone(&template, reference)?;
    let mut done = Updated {
        from: from.clone(),
        to: new.commit.clone(),
        ..Updated::default()
    };
    if new.commit == from {
        return Ok(done);
    }
    let old = source::clone(&template, Some(&from))?;
    let scratch = tempfile::tempdir().map_err(|e| InitError {
        message: format!("cannot create a working directory: {e}"),
        hint: String::new(),
        kind: Kind::Io,
    })?;
    let render = |clone: &source::Clone, name: &str| -> Result<std::path::PathBuf, InitError> {
        let out = scratch.path().join(name);
        let req = Request {
            template: clone.path().to_path_buf(),
            output_dir: out,
            extra: Vec::new(),
            no_input: true,
            overwrite: false,
            hooks: false,
            recorded: Some(answers.clone()),
            version: None,
        };
        Ok(generate::generate(&req, None, None)?.project)
    };
    let base = render(&old, "base")?;
    let theirs = render(&new, "new")?;
    let mut paths = BTreeSet::new();
    list(&base, &base, &mut paths);
    list(&theirs, &theirs, &mut paths);
    for rel in paths {
        let read = |root: &Path| std::fs::read(root.join(&rel)).ok();
        let (b, n, cur) = (read(&base), read(&theirs), read(project));
        let dest = project.join(&rel);
        match (b, n, cur) {
            (b, n, _) if b == n => {}
            (None, Some(n), None) => {
                write(&dest, &n, &theirs.join(&rel))?;
                done.added.push(rel);
            }
            (Some(b), None, Some(cur)) => {
                if cur == b {
                    std::fs::remove_file(&dest).map_err(|e| io(&dest, &e))?;
                    done.deleted.push(rel);
                } else {
                    done.kept.push(rel);
                }
            }
            (_, Some(_), None) | (Some(_), None, None) => done.kept.push(rel),
            (b, Some(n), Some(cur)) => {
                if cur == n {
                    continue;
                }
                if b.as_ref() == Some(&cur) {
                    write(&dest, &n, &theirs.join(&rel))?;
                    done.merged.push(rel);
                    continue;
                }
                let clean = merge(&dest, &b.unwrap_or_default(), &n, &done)?;
                if clean {
                    done.merged.push(rel);
                } else {
                    done.conflicts.push(rel);
                }
            }
            (None, None, _) => {}
        }
    }
    let record = Record {
        template,
        source: Some(kind),
        commit: new.commit.clone(),
        answers,
    };
    write(&record_path, record.text().as_bytes(), &record_path)?;
    Ok(done)
}

fn io(path: &Path, e: &std::io::Error) -> InitError {
    InitError {
        message: format!("{}: {e}", path.display()),
        hint: String::new(),
        kind: Kind::Io,
    }
}

/// Every file under `dir`, by `/`-separated path from `root`.
fn list(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            list(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Writes `bytes` to `dest` with the mode of `like` (else of `dest` itself), through a
/// temporary file beside it that is renamed over it: the project's file is the old one or the
/// new one, never half of the new one.
fn write(dest: &Path, bytes: &[u8], like: &Path) -> Result<(), InitError> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| io(parent, &e))?;
    let mut builder = tempfile::Builder::new();
    if let Ok(meta) = std::fs::metadata(like).or_else(|_| std::fs::metadata(dest)) {
        builder.permissions(meta.permissions());
    }
    let mut tmp = builder.tempfile_in(parent).map_err(|e| io(parent, &e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| io(dest, &e))?;
    tmp.persist(dest).map_err(|e| io(dest, &e.error))?;
    Ok(())
}

/// `git merge-file` of the project's file with the template's old and new versions, written
/// over the project's file; whether it merged without conflicts.
fn merge(dest: &Path, base: &[u8], new: &[u8], done: &Updated) -> Result<bool, InitError> {
    let dir = tempfile::tempdir().map_err(|e| io(dest, &e))?;
    let (b, n) = (dir.path().join("base"), dir.path().join("new"));
    std::fs::write(&b, base).map_err(|e| io(&b, &e))?;
    std::fs::write(&n, new).map_err(|e| io(&n, &e))?;
    let short = |c: &str| c.chars().take(12).collect::<String>();
    let status = Command::new("git")
        .arg("merge-file")
        .args(["-L", "project"])
        .args(["-L", &format!("template {}", short(&done.from))])
        .args(["-L", &format!("template {}", short(&done.to))])
        .arg(dest)
        .arg(&b)
        .arg(&n)
        .status()
        .map_err(|e| InitError {
            message: format!("cannot run git merge-file: {e}"),
            hint: "updating a project needs git on PATH".to_owned(),
            kind: Kind::Io,
        })?;
    match status.code() {
        Some(0) => Ok(true),
        Some(c) if c > 0 => Ok(false),
        _ => Err(InitError {
            message: format!("git merge-file failed on {} ({status})", dest.display()),
            hint: String::new(),
            kind: Kind::Io,
        }),
    }
}
