//! One module per subcommand, and what several of them share.

use std::path::Path;

use mlops_manifest::Manifest;
use mlops_manifest::diagnostic::{render_github, render_human};
use mlops_registry::Registry;
use mlops_train::train::Event;
use mlops_train::worker::{self, Layout};

use crate::cli::{Format, RegistryArgs};
use crate::exit::Exit;

pub(crate) mod deploy;
pub(crate) mod doctor;
pub(crate) mod gate;
pub(crate) mod holdout;
pub(crate) mod image;
pub(crate) mod init;
pub(crate) mod monitor;
pub(crate) mod predict;
pub(crate) mod promote;
pub(crate) mod registry;
pub(crate) mod render;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod train;
pub(crate) mod validate;

/// Prints an error and, when there is one, how to fix it.
pub(crate) fn error(message: &str, hint: &str) {
    // One write, so that a reader of the stream (act's log, a pipe shared with other output)
    // never sees the error without its hint.
    let text = if hint.is_empty() {
        format!("error: {message}\n")
    } else {
        format!("error: {message}\n  = hint: {hint}\n")
    };
    eprint!("{text}");
}

/// A report as pretty JSON, also written whole to `file` (`--report`) when one is given; a
/// file that cannot be written is said and is a runtime failure.
pub(crate) fn report_json(
    report: &impl serde::Serialize,
    file: Option<&Path>,
) -> Result<String, Exit> {
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    if let Some(file) = file
        && let Err(e) = mlops_train::write_atomically(file, format!("{json}\n").as_bytes())
    {
        error(&format!("cannot write {}: {e}", file.display()), "");
        return Err(Exit::Runtime);
    }
    Ok(json)
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

/// The registry `flag` names, else the manifest's.
pub(crate) fn open_registry(
    flag: Option<&Path>,
    m: &Manifest,
    path: &Path,
) -> Result<Registry, Exit> {
    mlops_core::train::open_registry(flag, m, path).map_err(|p| failed(&p))
}

/// The registry of `--registry`, else of the manifest (which must be valid).
pub(crate) fn registry(args: &RegistryArgs, format: Format) -> Result<Registry, Exit> {
    if let Some(dir) = &args.registry {
        return Registry::at(&dir.to_string_lossy(), Path::new("")).map_err(|e| failed(&e.into()));
    }
    let (m, _) = valid_manifest(&args.manifest, format, "no registry to open")?;
    open_registry(None, &m, &args.manifest)
}

/// `mlops train-worker` and the container's `train`: the training worker over the `/opt/ml`
/// layout under `base`, its epochs and notes on stdout (the job's log).
pub(crate) fn train_worker(base: &Path) -> Exit {
    let layout = Layout::new(base);
    let shown = |e: Event<'_>| match e {
        Event::Epoch(e) => println!("{}", worker::epoch_line(e)),
        other => {
            if let Some(line) = other.note() {
                println!("{line}");
            }
        }
    };
    match worker::run(&layout, shown) {
        Ok(report) => {
            let (epochs, speed) = (report.curve.len(), report.samples_per_second);
            let model = layout.model();
            if epochs == 0 {
                println!(
                    "measured the ONNX model: {speed:.0} rows/s; model in {}",
                    model.display()
                );
            } else {
                println!(
                    "trained: {epochs} epochs, {speed:.0} samples/s; model in {}",
                    model.display()
                );
            }
            Exit::Ok
        }
        Err(e) => failed(&e.into()),
    }
}
