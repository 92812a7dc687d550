//! `mlops monitor`: the arguments to a [`mlops_core::monitor::Request`], then the report shown
//! (text, JSON, annotations and the step summary) and written with `--report`. Exit 0 no drift,
//! 1 drift (each finding named), 2 bad input, 3 a service (S3) failed.

use mlops_artifacts::monitor::Report;

use super::{error, valid_manifest};
use crate::cli::{Format, MonitorArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &MonitorArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing monitored") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let registry = match super::registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let configured = m
        .monitoring
        .as_ref()
        .and_then(|mo| mo.capture.as_ref())
        .map(|c| relative_to(&args.registry.manifest, &c.destination));
    let Some(captured) = args.captured.clone().or(configured) else {
        error(
            "no capture to read",
            "give --captured DIR|s3://PREFIX, or set `monitoring.capture.destination`",
        );
        return Exit::Usage;
    };
    let request = mlops_core::monitor::Request {
        manifest: &m,
        manifest_path: &args.registry.manifest,
        registry: &registry,
        model: args.model.clone(),
        production_pin: args.production_pin.clone(),
        captured,
        since: args.since.clone(),
        ground_truth: args.ground_truth.clone(),
        labelled: args.labelled.clone(),
        github: (args.issue || args.retrain).then(|| mlops_core::monitor::OnDrift {
            api_url: args.github.github_api_url.clone(),
            issue: args.issue,
            retrain: args.retrain,
        }),
    };
    match mlops_core::monitor::monitor(&request, &mut super::Console(format)) {
        Ok(done) => {
            let code = show(&done.report, args, format);
            let actions = mlops_actions::Runtime::from_env();
            if actions.is_actions() {
                let issue = done.issue.as_ref().map(|i| i.number().to_string());
                let written = actions
                    .set_output("issue", issue.as_deref().unwrap_or(""))
                    .and_then(|()| {
                        actions.set_output(
                            "retrain",
                            if done.retrain.is_some() {
                                "true"
                            } else {
                                "false"
                            },
                        )
                    });
                if let Err(e) = written {
                    eprintln!("warning: could not write the step outputs: {e}");
                }
            }
            code
        }
        Err(p) => super::failed(&p),
    }
}

/// A destination as the manifest gives it: `s3://` as is, a path relative to the manifest.
fn relative_to(manifest: &std::path::Path, destination: &str) -> String {
    if destination.starts_with("s3://") {
        return destination.to_owned();
    }
    manifest
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(destination)
        .display()
        .to_string()
}

fn show(report: &Report, args: &MonitorArgs, format: Format) -> Exit {
    let json = match super::report_json(report, args.report.as_deref()) {
        Ok(json) => json,
        Err(code) => return code,
    };
    match format {
        Format::Json => println!("{json}"),
        Format::Human => print!("{}", report.human()),
        Format::Github => {
            print!("{}", report.human());
            for f in &report.findings {
                crate::out::command(&mlops_actions::annotation(
                    mlops_actions::Level::Error,
                    None,
                    "mlops monitor: drift",
                    f,
                ));
            }
            for p in &report.read.problems {
                crate::out::command(&mlops_actions::annotation(
                    mlops_actions::Level::Warning,
                    None,
                    "mlops monitor: unreadable capture line",
                    p,
                ));
            }
        }
    }
    let actions = mlops_actions::Runtime::from_env();
    if actions.is_actions() {
        let written = actions
            .set_output("drifted", if report.drifted { "true" } else { "false" })
            .and_then(|()| actions.set_output("findings", &report.findings.len().to_string()))
            .and_then(|()| actions.set_output("report", &json))
            .and_then(|()| actions.append_summary(&report.markdown()));
        if let Err(e) = written {
            eprintln!("warning: could not write the step outputs or summary: {e}");
        }
    }
    if report.drifted { Exit::No } else { Exit::Ok }
}
