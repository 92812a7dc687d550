//! `mlops validate`: checks a manifest and reports every problem at its file:line:column, as
//! text, JSON or GitHub annotations; in Actions also as step outputs and a step summary.

use std::io::Write;

use mlops_actions::Runtime;
use mlops_manifest::diagnostic::{render_github, render_human};
use mlops_manifest::{Report, Severity};
use serde_json::json;

use crate::cli::{Format, ValidateArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &ValidateArgs, format: Format) -> Exit {
    let path = &args.manifest.manifest;
    let rt = Runtime::from_env();
    let report = match mlops_manifest::check_file(path) {
        Ok(r) => r,
        Err(e) => {
            let hint = "pass the manifest with --manifest PATH (or MLOPS_MANIFEST)";
            match format {
                Format::Json => println!(
                    "{}",
                    json!({"file": path.display().to_string(), "valid": false, "error": e.to_string(), "hint": hint})
                ),
                Format::Github => print!(
                    "{}",
                    mlops_actions::annotation(
                        mlops_actions::Level::Error,
                        None,
                        "mlops validate",
                        &format!("{e}\n{hint}")
                    )
                ),
                Format::Human => eprintln!("error: {e}\n  = hint: {hint}"),
            }
            let _ = rt.set_output("valid", "false");
            return Exit::Usage;
        }
    };
    show(&report, format);
    if let Err(e) = outputs(&rt, &report) {
        eprintln!("warning: could not write the step outputs or summary: {e}");
    }
    if report.is_valid() {
        Exit::Ok
    } else {
        Exit::No
    }
}

fn errors(report: &Report) -> usize {
    report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count()
}

fn show(report: &Report, format: Format) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Json => {
            let doc = json!({
                "file": report.file,
                "valid": report.is_valid(),
                "errors": errors(report),
                "diagnostics": report.diagnostics,
            });
            let _ = writeln!(out, "{doc}");
        }
        Format::Github => {
            let _ = out.write_all(render_github(&report.diagnostics).as_bytes());
            // The log keeps the readable form too: annotations show on the PR, this in the job.
            eprint!("{}", render_human(&report.diagnostics, &report.source));
            let _ = writeln!(out, "{}", verdict(report));
        }
        Format::Human => {
            eprint!("{}", render_human(&report.diagnostics, &report.source));
            if report.is_valid() {
                let _ = writeln!(out, "{}", verdict(report));
            } else {
                eprintln!("{}", verdict(report));
            }
        }
    }
}

fn verdict(report: &Report) -> String {
    match &report.manifest {
        Some(m) => format!(
            "{}: valid (manifest version {}, project `{}`, model `{}`)",
            report.file, m.version, m.project.name, m.model.name
        ),
        None => {
            let n = errors(report);
            format!(
                "{}: invalid, {n} error{}",
                report.file,
                if n == 1 { "" } else { "s" }
            )
        }
    }
}

fn outputs(rt: &Runtime, report: &Report) -> std::io::Result<()> {
    rt.set_output("valid", if report.is_valid() { "true" } else { "false" })?;
    rt.set_output("errors", &errors(report).to_string())?;
    let mut md = format!("### mlops validate: `{}`\n\n", report.file);
    if report.diagnostics.is_empty() {
        md.push_str(&format!("{}\n", verdict(report)));
    } else {
        md.push_str("| Location | Rule | Problem | Hint |\n|---|---|---|---|\n");
        for d in &report.diagnostics {
            md.push_str(&format!(
                "| `{}:{}:{}` | `{}` | {} | {} |\n",
                d.file,
                d.line,
                d.column,
                d.code,
                md_cell(&d.message),
                md_cell(d.hint.as_deref().unwrap_or(""))
            ));
        }
    }
    rt.append_summary(&md)
}

/// Makes text safe inside a markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
