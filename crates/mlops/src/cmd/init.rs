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
    if args.update {
        return update(
            output_dir.as_deref(),
            args.checkout.as_deref(),
            &extra,
            format,
        );
    }
    // A git template is cloned at a commit (recorded in the project); without --template, the
    // built-in project template, whose workflows are rendered from the new manifest before the
    // project is moved into place.
    let (template, unpacked, version) = match &args.template {
        Some(t) if mlops_init::source::is_git(t) => {
            let address = mlops_init::source::address(t);
            match mlops_init::source::clone(&address, args.checkout.as_deref()) {
                Ok(clone) => {
                    let version = Some((address, clone.commit.clone()));
                    (
                        clone.path().to_path_buf(),
                        Some(Unpacked::Clone(clone)),
                        version,
                    )
                }
                Err(e) => return failed(&e),
            }
        }
        Some(t) => (PathBuf::from(t), None, None),
        None => match unpack_builtin() {
            Ok(dir) => (dir.path().to_path_buf(), Some(Unpacked::Builtin(dir)), None),
            Err(code) => return code,
        },
    };
    let builtin = matches!(unpacked, Some(Unpacked::Builtin(_)));
    let req = Request {
        template,
        output_dir: output_dir.unwrap_or_else(|| PathBuf::from(".")),
        extra,
        no_input: args.no_input,
        overwrite: args.overwrite,
        hooks: !args.no_hooks,
        recorded: None,
        version,
    };
    clean_up_on_interrupt(req.output_dir.clone());
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
    let finish: Option<mlops_init::Finish<'_>> = builtin.then_some(&render as _);
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
        Err(_) if mlops_init::generate::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) => {
            eprintln!("interrupted: nothing was created");
            Exit::Cancelled
        }
        Err(e) => failed(&e),
    }
}

/// On SIGINT or SIGTERM, deletes this run's staging directory in `output_dir` (destructors do not
/// run when a signal ends the process) and exits 130: an interrupted run leaves nothing.
fn clean_up_on_interrupt(output_dir: PathBuf) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        // Returns only when a signal arrived (never where signals cannot be watched).
        let _signal = rt.block_on(mlops_core::runtime::interrupted());
        mlops_init::generate::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        let hook = mlops_init::generate::HOOK.load(std::sync::atomic::Ordering::SeqCst);
        if hook != 0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &hook.to_string()])
                .status();
        }
        mlops_init::generate::remove_staging(&output_dir);
        eprintln!("interrupted: nothing was created");
        std::process::exit(Exit::Cancelled as i32);
    });
}

/// The template's temporary copy, deleted when dropped.
enum Unpacked {
    Builtin(#[allow(dead_code)] tempfile::TempDir),
    Clone(#[allow(dead_code)] mlops_init::source::Clone),
}

fn failed(e: &InitError) -> Exit {
    error(&e.message, &e.hint);
    match e.kind {
        Kind::Usage => Exit::Usage,
        Kind::Hook => Exit::No,
        Kind::Io => Exit::Runtime,
    }
}

/// `--update`: the template's change merged into the project; exit 1 when conflicts are left.
fn update(
    dir: Option<&Path>,
    reference: Option<&str>,
    extra: &[(String, String)],
    format: Format,
) -> Exit {
    if !extra.is_empty() {
        error(
            "--update takes no KEY=VALUE: it uses the answers recorded in the project",
            &format!("edit {} to change an answer", mlops_init::RECORD),
        );
        return Exit::Usage;
    }
    let project = dir.unwrap_or(Path::new("."));
    let done = match mlops_init::update::update(project, reference) {
        Ok(d) => d,
        Err(e) => return failed(&e),
    };
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({
                "from": done.from, "to": done.to, "merged": done.merged, "added": done.added,
                "deleted": done.deleted, "conflicts": done.conflicts, "kept": done.kept,
            })
        );
    } else if done.from == done.to {
        println!("up to date with the template at {}", done.to);
    } else {
        println!("updated from the template at {} to {}", done.from, done.to);
        for (what, list) in [
            ("merged", &done.merged),
            ("added", &done.added),
            ("deleted", &done.deleted),
            ("CONFLICT", &done.conflicts),
            ("kept (changed on both sides, or deleted here)", &done.kept),
        ] {
            for p in list {
                println!("  {what}: {p}");
            }
        }
    }
    if done.conflicts.is_empty() {
        Exit::Ok
    } else {
        eprintln!(
            "{} file(s) have conflict markers (<<<<<<< project ... >>>>>>> template): resolve them",
            done.conflicts.len()
        );
        Exit::No
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
