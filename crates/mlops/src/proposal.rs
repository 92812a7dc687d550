//! A promotion proposed on GitHub and shown: the preflight's findings (annotations in Actions),
//! the dry run's pull request and pin diff, or the pull request opened or updated, with the step
//! outputs. `mlops promote` and `mlops deploy --rollback` (a revert promotion) both end here.

use mlops_core::promote::{self as core, Prepared, Proposed};
use mlops_github::promote::{self, Level, Operation, Promotion};

use crate::cli::Format;
use crate::cmd::{error, failed};
use crate::exit::Exit;

/// Proposes `prepared` on GitHub and shows how it went.
pub(crate) fn propose(
    prepared: &Prepared,
    api_url: Option<&str>,
    dry_run_only: bool,
    format: Format,
) -> Exit {
    let mut show = |found: &[promote::Finding]| show_findings(found, format);
    let proposed = match core::propose(prepared, api_url, dry_run_only, &mut show) {
        Ok(p) => p,
        Err(p) => return failed(&p),
    };
    match proposed {
        Proposed::DryRun {
            promotion,
            current,
            note,
        } => dry_run(&promotion, current.as_deref(), &note),
        Proposed::Blocked => {
            eprintln!("promote: stopped by the preflight checks above; nothing was changed");
            Exit::No
        }
        Proposed::Done { promotion, outcome } => report(&promotion, &outcome, format),
    }
}

/// The preflight's findings: on stderr, and as annotations in Actions.
fn show_findings(findings: &[promote::Finding], format: Format) {
    for f in findings {
        let (label, level) = match f.level {
            Level::Warning => ("warning", mlops_actions::Level::Warning),
            Level::Error => ("error", mlops_actions::Level::Error),
        };
        if format == Format::Github {
            crate::out::command(&mlops_actions::annotation(
                level,
                None,
                "mlops promote",
                &f.message,
            ));
        }
        eprintln!("{label}: {}\n  = hint: {}", f.message, f.hint);
    }
}

fn dry_run(p: &Promotion, current: Option<&str>, note: &str) -> Exit {
    println!(
        "Would open (or update) a pull request in {}:",
        p.repo.full()
    );
    println!("  branch: {} -> {}", p.branch(), p.base_branch);
    println!("  title:  {}", p.title);
    if !p.labels.is_empty() {
        println!("  labels: {}", p.labels.join(", "));
    }
    if !p.reviewers.is_empty() || !p.teams.is_empty() {
        let mut all = p.reviewers.clone();
        all.extend(p.teams.iter().map(|t| format!("team {t}")));
        println!("  reviewers: {}", all.join(", "));
    }
    if let Some((passed, description, _)) = &p.status {
        println!(
            "  commit status {}: {} ({description})",
            mlops_github::STATUS_CONTEXT,
            if *passed { "success" } else { "failure" }
        );
    }
    if !note.is_empty() {
        println!("  note: {note}");
    }
    println!(
        "\n{}",
        promote::diff(
            &p.pin_file,
            current.unwrap_or_default(),
            &p.pin.to_yaml("production")
        )
    );
    println!("{}", p.full_body());
    println!("(dry run: nothing was changed)");
    Exit::Ok
}

fn report(p: &Promotion, o: &promote::Outcome, format: Format) -> Exit {
    let what = match o.operation {
        Operation::Created => "opened",
        Operation::Updated => "updated",
        Operation::Unchanged => "unchanged:",
        Operation::InProduction => "nothing to promote:",
    };
    for n in &o.notes {
        eprintln!("note: {n}");
    }
    match (o.operation, o.number) {
        (Operation::InProduction, _) | (_, None) => println!(
            "promote: {what} production already pins {}",
            p.pin.reference()
        ),
        (_, Some(n)) => println!(
            "promote: {what} pull request #{n} {} ({} -> {}, head {})",
            o.url.as_deref().unwrap_or_default(),
            p.branch(),
            p.base_branch,
            o.head_sha.as_deref().map_or("", mlops_artifacts::short)
        ),
    }
    let actions = mlops_actions::Runtime::from_env();
    if format == Format::Github || actions.is_actions() {
        let number = o.number.map(|n| n.to_string()).unwrap_or_default();
        let result = actions
            .set_output("pr-number", &number)
            .and_then(|()| actions.set_output("pr-url", o.url.as_deref().unwrap_or_default()))
            .and_then(|()| actions.set_output("operation", o.operation.name()))
            .and_then(|()| {
                actions.set_output("head-sha", o.head_sha.as_deref().unwrap_or_default())
            })
            .and_then(|()| {
                actions.append_summary(&format!(
                    "### mlops promote\n\n{} {}: {}\n",
                    p.pin.reference(),
                    o.operation.name(),
                    o.url.as_deref().unwrap_or("production already pins it")
                ))
            });
        if let Err(e) = result {
            error(&format!("cannot write the step outputs: {e}"), "");
            return Exit::Runtime;
        }
    }
    Exit::Ok
}
