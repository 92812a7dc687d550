//! `mlops init`: a new project from a cookiecutter template (see `mlops_core::init`), asking
//! for each variable on a terminal unless `--no-input`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use mlops_init::Prompter;

use crate::cli::{Format, InitArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &InitArgs, format: Format) -> Exit {
    let arguments = match mlops_core::init::arguments(&args.args) {
        Ok(a) => a,
        Err(p) => return super::failed(&p),
    };
    let output_dir = arguments.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let req = mlops_core::init::Request {
        arguments,
        template: args.template.as_deref(),
        checkout: args.checkout.as_deref(),
        no_input: args.no_input,
        overwrite: args.overwrite,
        hooks: !args.no_hooks,
    };
    if args.update {
        return match mlops_core::init::update(&req) {
            Ok(done) => show_update(&done, format),
            Err(p) => super::failed(&p),
        };
    }
    clean_up_on_interrupt(output_dir);
    let mut terminal = Terminal;
    let prompter: Option<&mut dyn Prompter> = if !args.no_input && std::io::stdin().is_terminal() {
        Some(&mut terminal)
    } else {
        None
    };
    match mlops_core::init::create(&req, prompter) {
        Ok(done) if format == Format::Json => {
            let (project, files, answers) = (&done.project, done.files, &done.answers);
            let doc = serde_json::json!({"project": project, "files": files, "answers": answers});
            println!("{doc}");
            Exit::Ok
        }
        Ok(done) => {
            println!("created {} ({} files)", done.project.display(), done.files);
            Exit::Ok
        }
        Err(p) => super::failed(&p),
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

/// What `--update` did; exit 1 when conflicts are left.
fn show_update(done: &mlops_init::update::Updated, format: Format) -> Exit {
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
