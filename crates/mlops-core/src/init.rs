//! `mlops init`: the template found (a git repository cloned at a commit, a directory, or the
//! built-in project template), the project generated from it, and `--update` merging the
//! template's change into a project made from it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use mlops_init::update::Updated;
use mlops_init::{Generated, InitError, Kind, Prompter};

use crate::Problem;

/// One `mlops init`, as its arguments give it.
#[derive(Debug)]
pub struct Request<'a> {
    /// `[DIR] [KEY=VALUE...]`, parsed by [`arguments`].
    pub arguments: Arguments,
    /// `--template`: a git address or a directory; the built-in template without it.
    pub template: Option<&'a str>,
    /// `--checkout`: the template's branch, tag or commit.
    pub checkout: Option<&'a str>,
    pub no_input: bool,
    pub overwrite: bool,
    pub hooks: bool,
}

/// `mlops init`'s positional arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Arguments {
    /// Where the project directory is created (the current directory without it).
    pub dir: Option<PathBuf>,
    /// The `KEY=VALUE` answers.
    pub answers: Vec<(String, String)>,
}

/// The output directory and the `KEY=VALUE` answers, in that order.
pub fn arguments(args: &[String]) -> Result<Arguments, Problem> {
    let mut output_dir: Option<PathBuf> = None;
    let mut extra = Vec::new();
    for arg in args {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => extra.push((k.to_owned(), v.to_owned())),
            _ if output_dir.is_none() && extra.is_empty() => output_dir = Some(arg.into()),
            _ => {
                return Err(Problem::input(
                    format!("`{arg}` is not KEY=VALUE"),
                    "give the directory first, then the answers as KEY=VALUE",
                ));
            }
        }
    }
    Ok(Arguments {
        dir: output_dir,
        answers: extra,
    })
}

/// The project generated from the template, asking `prompter` for each variable when there is
/// one. The built-in template's workflows are rendered from the new manifest before the project
/// is moved into place. Interrupted (see [`mlops_init::generate::INTERRUPTED`]), it is cancelled
/// and nothing is left.
pub fn create(
    req: &Request<'_>,
    prompter: Option<&mut dyn Prompter>,
) -> Result<Generated, Problem> {
    let Arguments {
        dir: output_dir,
        answers: extra,
    } = req.arguments.clone();
    // The template's temporary copy (a clone, or the built-in template unpacked), deleted when
    // dropped at the end of this function.
    let (mut _clone, mut builtin) = (None, None);
    let (template, version) = match req.template {
        Some(t) if mlops_init::source::is_git(t) => {
            let address = mlops_init::source::address(t);
            let clone = mlops_init::source::clone(&address, req.checkout)?;
            let version = Some((address, clone.commit.clone()));
            let path = clone.path().to_path_buf();
            _clone = Some(clone);
            (path, version)
        }
        Some(t) => (PathBuf::from(t), None),
        None => {
            let dir = unpack_builtin()?;
            let path = dir.path().to_path_buf();
            builtin = Some(dir);
            (path, None)
        }
    };
    let req = mlops_init::Request {
        template,
        output_dir: output_dir.unwrap_or_else(|| PathBuf::from(".")),
        extra,
        no_input: req.no_input,
        overwrite: req.overwrite,
        hooks: req.hooks,
        recorded: None,
        version,
    };
    let render = |project: &Path| {
        crate::render::into(project, "mlops.yaml")
            .map(|_| ())
            .map_err(|e| InitError {
                message: format!("the new project's manifest does not render: {e}"),
                hint: "this is a bug in the built-in template; please report it".to_owned(),
                kind: Kind::Io,
            })
    };
    let finish: Option<mlops_init::Finish<'_>> = builtin.is_some().then_some(&render as _);
    mlops_init::generate(&req, prompter, finish).map_err(|e| {
        if mlops_init::generate::INTERRUPTED.load(Ordering::SeqCst) {
            Problem::cancelled("interrupted: nothing was created", "")
        } else {
            e.into()
        }
    })
}

/// `--update`: the template's change since the recorded commit (or up to `reference`) merged
/// into the project in `dir`, with the recorded answers.
pub fn update(req: &Request<'_>) -> Result<Updated, Problem> {
    if !req.arguments.answers.is_empty() {
        return Err(Problem::input(
            "--update takes no KEY=VALUE: it uses the answers recorded in the project",
            format!("edit {} to change an answer", mlops_init::RECORD),
        ));
    }
    let project = req.arguments.dir.as_deref().unwrap_or(Path::new("."));
    Ok(mlops_init::update::update(project, req.checkout)?)
}

/// The built-in template in a temporary directory (deleted when dropped).
fn unpack_builtin() -> Result<tempfile::TempDir, Problem> {
    tempfile::Builder::new()
        .prefix("mlops-template-")
        .tempdir()
        .and_then(|dir| mlops_init::builtin::extract(dir.path()).map(|()| dir))
        .map_err(|e| Problem::broken(format!("cannot unpack the built-in template: {e}"), ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The directory comes first; after an answer, a bare word is a mistake, not a directory.
    #[test]
    fn the_directory_comes_before_the_answers() {
        let a = arguments(&strings(&["out", "a=1", "b=x=y"])).expect("valid");
        assert_eq!(a.dir, Some(PathBuf::from("out")));
        let answers = [("a".into(), "1".into()), ("b".into(), "x=y".into())];
        assert_eq!(a.answers, answers);
        let a = arguments(&strings(&["a=1"])).expect("valid");
        assert_eq!((a.dir, a.answers.len()), (None, 1));
        let p = arguments(&strings(&["a=1", "out"])).expect_err("a word after an answer");
        assert_eq!(p.fault, crate::Fault::Input);
        assert!(
            p.message.contains("`out` is not KEY=VALUE"),
            "{}",
            p.message
        );
        let p = arguments(&strings(&["out", "=1"])).expect_err("an empty key");
        assert!(p.message.contains("`=1`"), "{}", p.message);
    }
}
