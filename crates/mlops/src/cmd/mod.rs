//! One module per subcommand, and what several of them share.

use std::path::Path;

use mlops_manifest::Manifest;
use mlops_manifest::diagnostic::{render_github, render_human};

use crate::cli::Format;
use crate::exit::Exit;

pub(crate) mod deploy;
pub(crate) mod doctor;
pub(crate) mod gate;
pub(crate) mod holdout;
pub(crate) mod image;
pub(crate) mod init;
pub(crate) mod promote;
pub(crate) mod registry;
pub(crate) mod render;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod train;
pub(crate) mod validate;

/// Prints an error and, when there is one, how to fix it.
pub(crate) fn error(message: &str, hint: &str) {
    eprintln!("error: {message}");
    if !hint.is_empty() {
        eprintln!("  = hint: {hint}");
    }
}

/// Shows a flow's problem and returns its exit code.
pub(crate) fn failed(p: &mlops_core::Problem) -> Exit {
    if p.fault == mlops_core::Fault::Cancelled {
        // Not an error: what was interrupted and what was cleaned up.
        eprintln!("{}", p.message);
    } else {
        error(&p.message, &p.hint);
    }
    p.fault.into()
}

/// Where a flow's lines go: its steps to stdout, or to stderr when stdout holds the JSON
/// result; its notices to stderr.
pub(crate) struct Console(pub(crate) Format);

impl mlops_core::Progress for Console {
    fn step(&mut self, line: &str) {
        if self.0 == Format::Json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn notice(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// Loads a manifest a subcommand needs valid, with its bytes. An unreadable one is a usage error
/// (exit 2); an invalid one is shown (annotations in Actions) with `consequence`, e.g. "nothing
/// rendered", and is exit 1.
pub(crate) fn valid_manifest(
    path: &Path,
    format: Format,
    consequence: &str,
) -> Result<(Manifest, Vec<u8>), Exit> {
    let report = mlops_manifest::check_file(path).map_err(|e| {
        error(
            &e.to_string(),
            "pass the manifest with --manifest PATH (or MLOPS_MANIFEST)",
        );
        Exit::Usage
    })?;
    match report.manifest.clone().filter(|_| report.is_valid()) {
        Some(m) => Ok((m, report.source.clone().into_bytes())),
        None => {
            if format == Format::Github {
                print!("{}", render_github(&report.diagnostics));
            }
            eprint!("{}", render_human(&report.diagnostics, &report.source));
            eprintln!(
                "{}: invalid, {consequence} (see `mlops validate`)",
                report.file
            );
            Err(Exit::No)
        }
    }
}
