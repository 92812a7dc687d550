//! `mlops run`: the arguments to a [`mlops_core::run::Request`]; each stage's line as it ends
//! (and, on a terminal, which one is running); then the summary table, or `run.json` with
//! `--format json`. The exit code is the failed stage's, 130 when interrupted.

use std::io::IsTerminal;
use std::path::Path;

use mlops_artifacts::run::{Stage, StageName, StageResult};

use super::error;
use crate::cli::{Format, RunArgs};
use crate::exit::Exit;

/// The run's lines on stderr, stdout kept for the summary (or the JSON).
struct View {
    terminal: bool,
}

impl mlops_core::run::Watch for View {
    fn running(&mut self, stage: StageName, log: &Path) {
        if self.terminal {
            eprint!(
                "  ..   {:<9} running (log: {})\r",
                stage.as_str(),
                log.display()
            );
        }
    }

    fn ended(&mut self, s: &Stage) {
        let mark = match s.result {
            StageResult::Ok => "ok  ",
            StageResult::Failed => "FAIL",
            StageResult::Skipped => "skip",
        };
        // Clears a "running" line first.
        let clear = if self.terminal { "\x1b[2K" } else { "" };
        eprintln!(
            "{clear}  {mark} {:<9} {}  ({:.2} s)",
            s.stage.as_str(),
            s.figure,
            s.seconds
        );
    }

    fn notice(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn error(&mut self, message: &str, hint: &str) {
        error(message, hint);
    }
}

pub(crate) fn run(args: &RunArgs, format: Format) -> Exit {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            error(&format!("cannot find this program's path: {e}"), "");
            return Exit::Runtime;
        }
    };
    // The manifest's registry and directory are needed before the validate stage says more.
    let (m, _) = match super::valid_manifest(&args.manifest, format, "nothing run") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = mlops_core::run::Request {
        exe,
        manifest: &m,
        manifest_path: args.manifest.clone(),
        workdir: args.workdir.clone(),
        registry: args.registry.clone(),
        open_pr: args.open_pr,
        api_url: args.github.github_api_url.clone(),
    };
    let mut view = View {
        terminal: std::io::stderr().is_terminal(),
    };
    let run = match mlops_core::run::run(&request, &mut view) {
        Ok(run) => run,
        Err(p) => return super::failed(&p),
    };
    if format == Format::Json {
        print!(
            "{}",
            serde_json::to_string_pretty(&run).unwrap_or_default() + "\n"
        );
    } else {
        print!("{}", run.summary());
    }
    match mlops_core::Fault::from_exit_code(run.exit_code) {
        None => Exit::Ok,
        Some(f) => f.into(),
    }
}
