//! `mlops validate`: checks one or more manifests, each on its own and against each other, and
//! reports every problem at its file:line:column, as text, JSON or GitHub annotations; in Actions
//! also as step outputs and a step summary.

use std::path::PathBuf;

use mlops_actions::Runtime;
use mlops_manifest::diagnostic::{render_github, render_human};
use mlops_manifest::{ReadError, Report};
use serde_json::json;

use crate::cli::{Format, ValidateArgs};
use crate::exit::Exit;

const READ_HINT: &str = "pass the manifest with --manifest PATH (or MLOPS_MANIFEST)";

pub(crate) fn run(args: &ValidateArgs, format: Format) -> Exit {
    let rt = Runtime::from_env();
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for path in unique(&args.manifests) {
        match mlops_manifest::check_file(&path) {
            Ok(r) => reports.push(r),
            Err(e) => unreadable.push(e),
        }
    }
    mlops_manifest::check_together(&mut reports);
    show(&reports, &unreadable, format);
    if let Err(e) = outputs(&rt, &reports, &unreadable) {
        eprintln!("warning: could not write the step outputs or summary: {e}");
    }
    if !unreadable.is_empty() {
        Exit::Usage
    } else if reports.iter().all(Report::is_valid) {
        Exit::Ok
    } else {
        Exit::No
    }
}

/// The paths in order, each once (the same file named twice is checked once).
fn unique(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for p in paths {
        let id = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if !seen.contains(&id) {
            seen.push(id);
            out.push(p.clone());
        }
    }
    out
}

fn show(reports: &[Report], unreadable: &[ReadError], format: Format) {
    match format {
        Format::Json => {
            let diagnostics: Vec<_> = reports.iter().flat_map(|r| &r.diagnostics).collect();
            let read_errors: Vec<_> = unreadable
                .iter()
                .map(|e| json!({"file": e.path(), "error": e.to_string(), "hint": READ_HINT}))
                .collect();
            let doc = json!({
                "files": reports.iter().map(|r| r.file.as_str()).chain(unreadable.iter().map(ReadError::path)).collect::<Vec<_>>(),
                "valid": unreadable.is_empty() && reports.iter().all(Report::is_valid),
                "errors": reports.iter().map(Report::errors).sum::<usize>() + unreadable.len(),
                "diagnostics": diagnostics,
                "read_errors": read_errors,
            });
            println!("{doc}");
        }
        Format::Github | Format::Human => {
            for e in unreadable {
                if format == Format::Github {
                    let message = format!("{e}\n{READ_HINT}");
                    crate::out::command(&mlops_actions::annotation(
                        mlops_actions::Level::Error,
                        None,
                        "mlops validate",
                        &message,
                    ));
                }
                eprintln!("error: {e}\n  = hint: {READ_HINT}");
            }
            for report in reports {
                if format == Format::Github {
                    crate::out::command(&render_github(&report.diagnostics));
                }
                // In Actions the log keeps the readable form too: annotations show on the PR.
                eprint!("{}", render_human(&report.diagnostics, &report.source));
                if report.is_valid() {
                    println!("{}", report.verdict());
                } else {
                    eprintln!("{}", report.verdict());
                }
            }
        }
    }
}

fn outputs(rt: &Runtime, reports: &[Report], unreadable: &[ReadError]) -> std::io::Result<()> {
    let valid = unreadable.is_empty() && reports.iter().all(Report::is_valid);
    let count = reports.iter().map(Report::errors).sum::<usize>() + unreadable.len();
    rt.set_output("valid", if valid { "true" } else { "false" })?;
    rt.set_output("errors", &count.to_string())?;
    rt.append_summary(&mlops_manifest::summary_markdown(reports, unreadable))
}
