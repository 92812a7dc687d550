//! Versioned templates: a template in a git repository (a URL, `gh:owner/repo`, or a local
//! directory that is a git repository) is cloned with `git` at a commit, so a project can record
//! which version it was made from and be updated later.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::generate::{InitError, Kind};

/// A template cloned at a commit, in a temporary directory deleted when dropped.
#[derive(Debug)]
pub struct Clone {
    dir: tempfile::TempDir,
    /// The full commit hash.
    pub commit: String,
}

impl Clone {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether `template` names a git repository rather than a plain directory.
pub fn is_git(template: &str) -> bool {
    template.starts_with("git+")
        || template.starts_with("gh:")
        || template.ends_with(".git")
        || template.contains("://")
        || Path::new(template).join(".git").exists()
}

/// The address `git clone` takes: `gh:owner/repo` as its GitHub URL, `git+` dropped, a local
/// path made absolute (so a recorded project can find it again).
pub fn address(template: &str) -> String {
    if let Some(repo) = template.strip_prefix("gh:") {
        return format!("https://github.com/{repo}.git");
    }
    if let Some(url) = template.strip_prefix("git+") {
        return url.to_owned();
    }
    if template.contains("://") {
        return template.to_owned();
    }
    std::path::absolute(template)
        .unwrap_or_else(|_| PathBuf::from(template))
        .display()
        .to_string()
}

fn git_failed(what: &str, detail: &str) -> InitError {
    InitError {
        message: format!("git could not {what}: {}", detail.trim()),
        hint: "check the template's address and the ref (a remote template needs the network)"
            .to_owned(),
        kind: Kind::Usage,
    }
}

fn git(args: &[&str], dir: Option<&Path>) -> Result<String, InitError> {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    let out = c
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| InitError {
            message: format!("cannot run git: {e}"),
            hint: "a template in a git repository needs git on PATH".to_owned(),
            kind: Kind::Io,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(git_failed(
            &args.join(" "),
            &String::from_utf8_lossy(&out.stderr),
        ))
    }
}

/// Clones `address` and checks out `reference` (a branch, tag or commit; the default branch
/// when `None`).
pub fn clone(address: &str, reference: Option<&str>) -> Result<Clone, InitError> {
    let dir = tempfile::Builder::new()
        .prefix("mlops-template-")
        .tempdir()
        .map_err(|e| InitError {
            message: format!("cannot create a directory for the template: {e}"),
            hint: String::new(),
            kind: Kind::Io,
        })?;
    let target = dir.path().to_string_lossy().into_owned();
    git(
        &["clone", "--quiet", "--no-hardlinks", address, &target],
        None,
    )?;
    if let Some(r) = reference {
        git(&["checkout", "--quiet", "--detach", r], Some(dir.path()))?;
    }
    let commit = git(&["rev-parse", "HEAD"], Some(dir.path()))?;
    Ok(Clone { dir, commit })
}
