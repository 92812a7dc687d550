//! `mlops holdout`: the arguments to a [`mlops_core::holdout::Request`], then the report shown
//! (text, JSON, annotations), written with `--report`, and recorded in the registry.
//! Exit 0 passed, 1 a mismatch (metric, parity, a refused batch, another artifact served, a
//! regression against production, a comparison refused), 2 bad input, 3 the service failed.

use std::collections::BTreeMap;

use mlops_holdout::Report;

use super::valid_manifest;
use crate::cli::{Format, HoldoutArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &HoldoutArgs, format: Format) -> Exit {
    let (m, _) = match valid_manifest(&args.registry.manifest, format, "nothing tested") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let registry = match super::registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let request = mlops_core::holdout::Request {
        manifest: &m,
        manifest_path: &args.registry.manifest,
        registry: &registry,
        model: args.model.clone(),
        holdout: args.holdout.clone(),
        environment: &args.environment,
        endpoint: args.endpoint.clone(),
        sagemaker_endpoint: args.sagemaker_endpoint.clone(),
        batch_size: args.batch_size,
        concurrency: args.concurrency,
        timeout_seconds: args.timeout_seconds,
        retries: args.retries,
        no_parity: args.no_parity,
        // clap took one of the names.
        protocol: mlops_holdout::protocol::Protocol::parse(&args.protocol).unwrap_or_default(),
        compare: args.compare.as_ref().map(|_| mlops_core::holdout::Compare {
            pin: args.production_pin.clone(),
            endpoint: args.incumbent_endpoint.clone(),
            sagemaker_endpoint: args.incumbent_sagemaker_endpoint.clone(),
            other_file: args.compare_other_file,
        }),
    };
    let tested = match mlops_core::holdout::test(&request, &mut super::Console(format)) {
        Ok(t) => t,
        Err(p) => return super::failed(&p),
    };
    let code = show(&tested.report, args, format);
    match mlops_core::holdout::record(&registry, &tested) {
        Ok((digest, at)) => {
            if format != Format::Json {
                eprintln!("recorded the holdout report sha256:{digest} in {at}");
            }
            code
        }
        Err(p) => super::failed(&p),
    }
}

fn show(report: &Report, args: &HoldoutArgs, format: Format) -> Exit {
    let json = match super::report_json(report, args.report.as_deref()) {
        Ok(json) => json,
        Err(code) => return code,
    };
    match format {
        Format::Json => {
            println!("{json}");
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
        }
        Format::Human => print!("{}", report.human()),
        Format::Github => {
            print!("{}", report.human());
            for w in &report.warnings {
                crate::out::command(&mlops_actions::annotation(
                    mlops_actions::Level::Warning,
                    None,
                    "mlops holdout",
                    w,
                ));
            }
            for f in report.failures() {
                crate::out::command(&mlops_actions::annotation(
                    mlops_actions::Level::Error,
                    None,
                    "mlops holdout",
                    &f,
                ));
            }
        }
    }
    let actions = mlops_actions::Runtime::from_env();
    if actions.is_actions() {
        let metrics: BTreeMap<&str, Option<f64>> = report
            .metrics
            .iter()
            .map(|c| (c.metric.as_str(), c.observed))
            .collect();
        let written = actions
            .set_output("passed", if report.passed { "true" } else { "false" })
            .and_then(|()| {
                actions.set_output(
                    "metrics",
                    &serde_json::to_string(&metrics).unwrap_or_default(),
                )
            })
            .and_then(|()| actions.set_output("report", &json))
            .and_then(|()| actions.append_summary(&report.markdown()));
        if let Err(e) = written {
            eprintln!("warning: could not write the step outputs or summary: {e}");
        }
    }
    if report.passed { Exit::Ok } else { Exit::No }
}
