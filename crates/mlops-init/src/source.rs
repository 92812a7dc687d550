//! Versioned templates: a template in a git repository (a URL, `gh:owner/repo`, or a local
//! directory that is a git repository) is cloned with `git` at a commit, so a project can record
//! which version it was made from and be updated later.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::generate::{InitError, Kind};

/// Where a template's repository is: the kind is recorded with the project, and `--update`
/// refuses a record whose address has since become the other kind (an edited record pointing a
/// project made from a public repository at a path on the runner, or the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Fetched over https, ssh or git.
    Remote,
    /// A repository on this machine (an absolute path or a `file://` URL).
    Local,
}

impl SourceKind {
    pub fn describe(self) -> &'static str {
        match self {
            SourceKind::Remote => "a remote repository",
            SourceKind::Local => "a repository on this machine",
        }
    }
}

/// The kind of the address `git clone` is given; an address git would read as an option, or
/// one through a transport that runs a command (`ext::`, `fd::`) or that is not a repository
/// transport, is refused.
pub fn kind(address: &str) -> Result<SourceKind, InitError> {
    let refuse = |why: &str| InitError {
        message: format!("the template address `{address}` {why}"),
        hint: "name the template by an https, ssh or git URL, `gh:OWNER/REPO`, or a directory"
            .to_owned(),
        kind: Kind::Usage,
    };
    if address.starts_with('-') {
        return Err(refuse("starts with `-`, which git would read as an option"));
    }
    if address.contains("::") {
        return Err(refuse(
            "uses one of git's remote helpers (`ext::` runs a command of the address's choosing)",
        ));
    }
    if let Some((scheme, _)) = address.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git" => Ok(SourceKind::Remote),
            "file" => Ok(SourceKind::Local),
            other => Err(refuse(&format!("uses the transport `{other}`"))),
        };
    }
    if Path::new(address).is_absolute() {
        return Ok(SourceKind::Local);
    }
    // scp-like `user@host:path`.
    match address.split_once(':') {
        Some((host, _)) if !host.is_empty() && !host.contains('/') => Ok(SourceKind::Remote),
        _ => Err(refuse("is neither a URL nor an absolute path")),
    }
}

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
    kind(address)?;
    let target = dir.path().to_string_lossy().into_owned();
    // `--end-of-options`: the address and the reference are data, whatever they start with; the
    // `ext` transport (which runs a command) is off whatever the user's git configuration says.
    git(
        &[
            "-c",
            "protocol.ext.allow=never",
            "clone",
            "--quiet",
            "--no-hardlinks",
            "--end-of-options",
            address,
            &target,
        ],
        None,
    )?;
    if let Some(r) = reference {
        git(
            &["checkout", "--quiet", "--detach", "--end-of-options", r],
            Some(dir.path()),
        )?;
    }
    let commit = git(&["rev-parse", "HEAD"], Some(dir.path()))?;
    Ok(Clone { dir, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_have_a_kind_and_command_transports_are_refused() {
        for (address, want) in [
            ("https://github.com/o/r.git", SourceKind::Remote),
            ("ssh://git@github.com/o/r.git", SourceKind::Remote),
            ("git@github.com:o/r.git", SourceKind::Remote),
            ("/srv/templates/ml", SourceKind::Local),
            ("file:///srv/templates/ml", SourceKind::Local),
        ] {
            assert_eq!(kind(address).expect(address), want, "{address}");
        }
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "EXT::sh",
            "fd::3",
            "--upload-pack=touch /tmp/pwned",
            "-u",
            "relative/dir",
            "gopher://host/r",
        ] {
            let e = kind(bad).expect_err(bad);
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }
}
