//! The rendered tree against the one on disk: what is stale, missing, obsolete or the user's
//! own ([`compare`]), and writing it so that either every file is replaced or none is
//! ([`write`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Files, HEADER};

/// Where rendered files live, as (directory, name prefix, extensions): every file there matching
/// is either generated (obsolete when no longer rendered) or the user's (reported, never
/// touched). Every template's output lies in one of these places (tested).
const OWNED: &[(&str, &str, &[&str])] = &[
    ("terraform", "", &[".tf"]),
    ("terraform/bootstrap", "", &[".tf"]),
    (".github/workflows", "mlops-", &[".yml", ".yaml"]),
    ("container", "Dockerfile", &[""]),
];

/// How the tree on disk differs from the rendered one.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Rendered files whose copy on disk differs: path and unified diff (disk → rendered).
    pub stale: Vec<(String, String)>,
    /// Rendered files absent from disk (never written, or deleted by the user).
    pub missing: Vec<String>,
    /// Generated files on disk that this manifest no longer renders (deleted by `render`).
    pub obsolete: Vec<String>,
    /// Files beside the rendered ones that are not generated: kept, only reported.
    pub foreign: Vec<String>,
    /// Existing files without the generated header that rendering would overwrite.
    pub clobbered: Vec<String>,
    /// Files on disk that could not be read: path and reason.
    pub unreadable: Vec<(String, String)>,
}

impl Comparison {
    /// Whether the tree on disk is what rendering gives (user files beside it allowed).
    pub fn is_current(&self) -> bool {
        self.stale.is_empty()
            && self.missing.is_empty()
            && self.obsolete.is_empty()
            && self.unreadable.is_empty()
    }
}

/// Reads every file in the places rendered files live (see [`OWNED`]), by path from `root`.
pub fn existing(root: &Path) -> BTreeMap<String, Result<String, String>> {
    let mut out = BTreeMap::new();
    for (dir, prefix, extensions) in OWNED {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = name.starts_with(prefix) && extensions.iter().any(|e| name.ends_with(e));
            if wanted
                && entry.file_type().is_ok_and(|t| t.is_file())
                && let Some(r) = read(&entry.path())
            {
                out.insert(format!("{dir}/{name}"), r);
            }
        }
    }
    out
}

/// The files at `paths` (`/`-separated, from `root`) that exist, as [`existing`] reads them: for
/// a tree whose files are named, in a directory other renders share.
pub fn existing_paths(root: &Path, paths: &[String]) -> BTreeMap<String, Result<String, String>> {
    paths
        .iter()
        .filter_map(|p| Some((p.clone(), read(&root.join(p))?)))
        .collect()
}

fn read(path: &Path) -> Option<Result<String, String>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// Whether `text` was written by `mlops render`.
pub fn is_generated(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l == HEADER)
}

/// Compares the rendered `files` with the `existing` ones (from [`existing`]).
pub fn compare(files: &Files, existing: &BTreeMap<String, Result<String, String>>) -> Comparison {
    let mut c = Comparison::default();
    for (path, want) in files {
        match existing.get(path) {
            None => c.missing.push(path.clone()),
            Some(Err(e)) => c.unreadable.push((path.clone(), e.clone())),
            Some(Ok(have)) => {
                if have != want {
                    if !is_generated(have) {
                        c.clobbered.push(path.clone());
                    }
                    c.stale.push((path.clone(), diff(path, have, want)));
                }
            }
        }
    }
    for (path, have) in existing {
        if files.contains_key(path) {
            continue;
        }
        match have {
            Ok(text) if is_generated(text) => c.obsolete.push(path.clone()),
            Ok(_) => c.foreign.push(path.clone()),
            Err(e) => c.unreadable.push((path.clone(), e.clone())),
        }
    }
    c
}

/// A unified diff from the file on disk to the rendered one.
fn diff(path: &str, have: &str, want: &str) -> String {
    similar::TextDiff::from_lines(have, want)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "refusing to overwrite {} file{} without the `mlops render` header: {}",
        .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join(", ")
    )]
    WouldClobber(Vec<String>),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes every stale or missing file and deletes the obsolete ones. Nothing is touched unless
/// every file could be staged: files are written to a temporary directory under `root` first,
/// then renamed into place (renames within one file system are atomic). Files without the
/// generated header are overwritten only with `force`.
pub fn write(
    root: &Path,
    files: &Files,
    comparison: &Comparison,
    force: bool,
) -> Result<Vec<String>, WriteError> {
    if !force && !comparison.clobbered.is_empty() {
        return Err(WriteError::WouldClobber(comparison.clobbered.clone()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    let staging = tempfile::Builder::new()
        .prefix(".mlops-render-")
        .tempdir_in(root)
        .map_err(io(root))?;
    let changed: Vec<&String> = comparison
        .stale
        .iter()
        .map(|(p, _)| p)
        .chain(&comparison.missing)
        .collect();
    for path in &changed {
        let staged = staging.path().join(path);
        if let Some(parent) = staged.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&staged, &files[*path]).map_err(io(&staged))?;
    }
    for path in &changed {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::rename(staging.path().join(path), &target).map_err(io(&target))?;
    }
    for path in &comparison.obsolete {
        let target = root.join(path);
        std::fs::remove_file(&target).map_err(io(&target))?;
    }
    let mut done: Vec<String> = changed.into_iter().cloned().collect();
    done.extend(comparison.obsolete.iter().map(|p| format!("{p} (deleted)")));
    done.sort();
    Ok(done)
}

/// The repository root (the nearest ancestor with `.git`, else the manifest's directory) and the
/// manifest's path from it, `/`-separated.
pub fn locate(manifest: &Path) -> Result<(PathBuf, String), String> {
    let abs = std::fs::canonicalize(manifest)
        .map_err(|e| format!("cannot resolve {}: {e}", manifest.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let root = dir
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf);
    let rel = abs.strip_prefix(&root).unwrap_or(&abs);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok((root, parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, t)| ((*p).to_owned(), format!("{HEADER}\n{t}")))
            .collect()
    }

    #[test]
    fn a_fresh_tree_is_written_and_then_current() {
        let dir = tempfile::tempdir().unwrap();
        let want = files(&[
            ("terraform/a.tf", "a = 1\n"),
            (".github/workflows/mlops-x.yml", "x\n"),
        ]);
        let c = compare(&want, &existing(dir.path()));
        assert_eq!(c.missing.len(), 2);
        write(dir.path(), &want, &c, false).unwrap();
        let again = compare(&want, &existing(dir.path()));
        assert!(again.is_current(), "{again:?}");
        // No staging directory is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".mlops-render-")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn user_files_are_refused_without_force_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("terraform")).unwrap();
        std::fs::write(dir.path().join("terraform/a.tf"), "mine\n").unwrap();
        let want = files(&[("terraform/a.tf", "a = 1\n"), ("terraform/b.tf", "b = 1\n")]);
        let c = compare(&want, &existing(dir.path()));
        assert_eq!(c.clobbered, ["terraform/a.tf"]);
        let err = write(dir.path(), &want, &c, false).unwrap_err();
        assert!(err.to_string().contains("terraform/a.tf"), "{err}");
        assert!(!dir.path().join("terraform/b.tf").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("terraform/a.tf")).unwrap(),
            "mine\n"
        );
        write(dir.path(), &want, &c, true).unwrap();
        assert!(compare(&want, &existing(dir.path())).is_current());
    }

    #[test]
    fn obsolete_generated_files_go_and_user_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let old = files(&[("terraform/a.tf", "a\n"), ("terraform/old.tf", "o\n")]);
        let c = compare(&old, &existing(dir.path()));
        write(dir.path(), &old, &c, false).unwrap();
        std::fs::write(dir.path().join("terraform/mine.tf"), "m\n").unwrap();
        let new = files(&[("terraform/a.tf", "a\n")]);
        let c = compare(&new, &existing(dir.path()));
        assert_eq!(c.obsolete, ["terraform/old.tf"]);
        assert_eq!(c.foreign, ["terraform/mine.tf"]);
        assert!(!c.is_current());
        write(dir.path(), &new, &c, false).unwrap();
        assert!(!dir.path().join("terraform/old.tf").exists());
        assert!(dir.path().join("terraform/mine.tf").exists());
    }

    #[test]
    fn every_template_renders_into_an_owned_place() {
        for t in crate::templates::ALL {
            let (dir, name) = t.output.rsplit_once('/').unwrap();
            assert!(
                OWNED.iter().any(|(d, prefix, exts)| *d == dir
                    && name.starts_with(prefix)
                    && exts.iter().any(|e| name.ends_with(e))),
                "{} is outside the places `existing` reads",
                t.output
            );
        }
    }

    #[test]
    fn stale_files_come_with_a_unified_diff() {
        let want = files(&[("terraform/a.tf", "a = 2\n")]);
        let mut have = BTreeMap::new();
        have.insert(
            "terraform/a.tf".to_owned(),
            Ok(format!("{HEADER}\na = 1\n")),
        );
        let c = compare(&want, &have);
        let (_, d) = &c.stale[0];
        assert!(d.contains("-a = 1") && d.contains("+a = 2"), "{d}");
        assert!(c.clobbered.is_empty());
    }
}
