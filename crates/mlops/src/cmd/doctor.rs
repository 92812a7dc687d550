//! `mlops doctor`: are the settings the threat model relies on in place? The checks are
//! [`mlops_core::doctor::check`]'s; this prints one line per check with its fix (or JSON).
//! Exit 0 nothing missing (warnings allowed), 1 something missing, 2 bad input, 3 GitHub or AWS
//! failed.

use mlops_github::doctor::Verdict;
use serde_json::json;

use super::valid_manifest;
use crate::cli::{DoctorArgs, Format};
use crate::exit::Exit;

pub(crate) fn run(args: &DoctorArgs, format: Format) -> Exit {
    let (m, source) = match valid_manifest(&args.manifest, format, "nothing checked") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let source = String::from_utf8_lossy(&source);
    let request = mlops_core::doctor::Request {
        manifest: &m,
        manifest_path: &args.manifest,
        source: &source,
        api_url: args.github.github_api_url.clone(),
        no_aws: args.no_aws,
    };
    let findings = match mlops_core::doctor::check(&request) {
        Ok(f) => f,
        Err(p) => return super::failed(&p),
    };
    let missing = findings
        .checks
        .iter()
        .any(|c| c.verdict == Verdict::Missing);
    match format {
        Format::Json => {
            let checks: Vec<_> = findings
                .checks
                .iter()
                .map(|c| json!({"verdict": c.verdict.name(), "subject": c.subject, "message": c.message, "hint": c.hint}))
                .collect();
            println!("{}", json!({"ok": !missing, "checks": checks}));
        }
        Format::Human | Format::Github => {
            for c in &findings.checks {
                println!("{:<8} {}: {}", c.verdict.name(), c.subject, c.message);
                if c.verdict != Verdict::Ok && !c.hint.is_empty() {
                    println!("         fix: {}", c.hint);
                }
            }
            let count = |v| findings.checks.iter().filter(|c| c.verdict == v).count();
            println!(
                "doctor: {} ok, {} warning(s), {} missing",
                count(Verdict::Ok),
                count(Verdict::Warning),
                count(Verdict::Missing)
            );
        }
    }
    if missing { Exit::No } else { Exit::Ok }
}
