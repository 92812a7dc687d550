//! `mlops init`: a new project from a cookiecutter template (see `mlops_init`), asking for each
//! variable on a terminal unless `--no-input`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use mlops_init::{InitError, Kind, Prompter, Request};

use super::error;
use crate::cli::{Format, InitArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &InitArgs, format: Format) -> Exit {
    let mut output_dir: Option<PathBuf> = None;
    let mut extra = Vec::new();
    for arg in &args.args {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => extra.push((k.to_owned(), v.to_owned())),
            _ if output_dir.is_none() && extra.is_empty() => output_dir = Some(arg.into()),
            _ => {
                error(
                    &format!("`{arg}` is not KEY=VALUE"),
                    "give the directory first, then the answers as KEY=VALUE",
                );
                return Exit::Usage;
            }
        }
    }
    // Without --template: the built-in project template, whose workflows are rendered from the
    // new manifest before the project is moved into place.
    let (template, unpacked) = match &args.template {
        Some(t) => (t.clone(), None),
        None => match unpack_builtin() {
            Ok(dir) => (dir.path().to_path_buf(), Some(dir)),
            Err(code) => return code,
        },
    };
    let req = Request {
        template,
        output_dir: output_dir.unwrap_or_else(|| PathBuf::from(".")),
        extra,
        no_input: args.no_input,
        overwrite: args.overwrite,
        hooks: !args.no_hooks,
    };
    let mut terminal = Terminal;
    let prompter: Option<&mut dyn Prompter> = if !args.no_input && std::io::stdin().is_terminal() {
        Some(&mut terminal)
    } else {
        None
    };
    let render = |project: &Path| {
        super::render::render_into(project, "mlops.yaml")
            .map(|_| ())
            .map_err(|e| InitError {
                message: format!("the new project's manifest does not render: {e}"),
                hint: "this is a bug in the built-in template; please report it".to_owned(),
                kind: Kind::Io,
            })
    };
    let finish: Option<mlops_init::Finish<'_>> = unpacked.as_ref().map(|_| &render as _);
    match mlops_init::generate(&req, prompter, finish) {
        Ok(done) => {
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({
                        "project": done.project,
                        "files": done.files,
                        "answers": done.answers,
                    })
                );
            } else {
                println!("created {} ({} files)", done.project.display(), done.files);
            }
            Exit::Ok
        }
        Err(e) => {
            error(&e.message, &e.hint);
            match e.kind {
                Kind::Usage => Exit::Usage,
                Kind::Hook => Exit::No,
                Kind::Io => Exit::Runtime,
            }
        }
    }
}

/// The built-in template in a temporary directory (deleted when dropped).
fn unpack_builtin() -> Result<tempfile::TempDir, Exit> {
    let unpacked = tempfile::Builder::new()
        .prefix("mlops-template-")
        .tempdir()
        .and_then(|dir| mlops_init::builtin::extract(dir.path()).map(|()| dir));
    unpacked.map_err(|e| {
        error(&format!("cannot unpack the built-in template: {e}"), "");
        Exit::Runtime
    })
}

/// Questions on stderr, answers from stdin; an empty answer takes the default.
struct Terminal;

impl Terminal {
    fn ask(&self, question: &str) -> String {
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        line.trim_end_matches(['\r', '\n']).to_owned()
    }
}

impl Prompter for Terminal {
    fn text(&mut self, key: &str, default: &str) -> String {
        let answer = self.ask(&format!("{key} [{default}]: "));
        if answer.is_empty() {
            default.to_owned()
        } else {
            answer
        }
    }

    fn choice(&mut self, key: &str, options: &[String]) -> usize {
        eprintln!("{key}:");
        for (i, o) in options.iter().enumerate() {
            eprintln!("  {} - {o}", i + 1);
        }
        loop {
            let answer = self.ask(&format!("choose 1-{} [1]: ", options.len()));
            if answer.is_empty() {
                return 0;
            }
            match answer.parse::<usize>() {
                Ok(n) if (1..=options.len()).contains(&n) => return n - 1,
                _ => eprintln!("  a number from 1 to {}", options.len()),
            }
        }
    }

    fn yes_no(&mut self, key: &str, default: bool) -> bool {
        let shown = if default { "yes" } else { "no" };
        loop {
            let answer = self.ask(&format!("{key} (yes/no) [{shown}]: "));
            match answer.trim().to_lowercase().as_str() {
                "" => return default,
                "1" | "true" | "t" | "yes" | "y" | "on" => return true,
                "0" | "false" | "f" | "no" | "n" | "off" => return false,
                _ => eprintln!("  yes or no"),
            }
        }
    }
}
