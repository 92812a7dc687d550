//! `mlops promote`: the promotion pull request for a registered model. Exit 0 opened, updated,
//! unchanged or already in production; 1 refused (a failed holdout report, a rejected model, a
//! preflight error, a human's commit on the promotion branch); 2 bad input; 3 GitHub failed.

use mlops_github::pin::{Artifact, Pin, PinnedHoldout, PinnedModel};
use mlops_github::promote::{self, Failure, Level, Operation, Promotion};
use mlops_train::card::ModelCard;
use mlops_train::registry::{Entry, Registry, Status};
use serde_json::Value;

use super::github::{connect, failed, is_default_token, promotion};
use super::{error, valid_manifest};
use crate::cli::{Format, GithubArgs, PromoteArgs};
use crate::cmd::registry::open as open_registry;
use crate::exit::Exit;

/// The holdout report a promotion rests on.
struct Evidence {
    digest: String,
    report: Value,
}

fn read_report(args: &PromoteArgs, reference: &str) -> Result<Option<Evidence>, Exit> {
    let Some(path) = &args.holdout_report else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| {
        error(
            &format!("cannot read the holdout report {}: {e}", path.display()),
            "pass the file `mlops holdout --report FILE` wrote",
        );
        Exit::Usage
    })?;
    let report: Value = serde_json::from_slice(&bytes).map_err(|e| {
        error(
            &format!("{}: not a holdout report: {e}", path.display()),
            "pass the JSON file `mlops holdout --report FILE` wrote",
        );
        Exit::Usage
    })?;
    if report["model"].as_str() != Some(reference) {
        error(
            &format!(
                "{}: the holdout report is for {}, not {reference}",
                path.display(),
                report["model"].as_str().unwrap_or("an unnamed model")
            ),
            "run `mlops holdout --model` on the version you promote",
        );
        return Err(Exit::Usage);
    }
    Ok(Some(Evidence {
        digest: mlops_train::registry::report_digest(&bytes),
        report,
    }))
}

fn workflow_run_url() -> Option<String> {
    let server = std::env::var("GITHUB_SERVER_URL").ok()?;
    let repo = std::env::var("GITHUB_REPOSITORY").ok()?;
    let run = std::env::var("GITHUB_RUN_ID").ok()?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}

/// The pin of a registered version: where it is, its artifact digest from the card, the serving
/// image (`image`, else the card's image when it is by digest) and the manifest digest; no holdout
/// report. A card without an artifact digest is exit 2.
pub(crate) fn pin_of(
    registry: &Registry,
    entry: &Entry,
    card: &ModelCard,
    image: Option<String>,
) -> Result<Pin, Exit> {
    let Some(artifact_sha) = card.artifact.as_ref().map(|a| a.sha256.clone()) else {
        error(
            &format!("{}'s card records no artifact digest", entry.reference),
            "register the model again with this mlops version",
        );
        return Err(Exit::Usage);
    };
    let image = image.or_else(|| {
        card.sagemaker
            .as_ref()
            .map(|s| s.image.clone())
            .filter(|i| i.contains("@sha256:"))
    });
    Ok(Pin {
        version: mlops_github::pin::VERSION,
        model: PinnedModel {
            name: entry.model.clone(),
            version: entry.version,
            registry: registry.location(),
            artifact: Artifact {
                uri: entry.location.clone(),
                sha256: artifact_sha,
            },
            image,
        },
        manifest_sha256: card.manifest.sha256.clone(),
        holdout: None,
    })
}

/// A promotion ready to be proposed: the pin, the PR's settings and the evidence its body shows.
/// `mlops promote` proposes it on GitHub; `mlops run` in a local repository.
pub(crate) struct Prepared {
    pub(crate) p: Promotion,
    /// Said first in the body (e.g. why this is a rollback).
    pub(crate) preface: Option<String>,
    /// NAME@VERSION.
    pub(crate) reference: String,
    card: ModelCard,
    evidence: Option<Evidence>,
    registry: Registry,
}

impl Prepared {
    /// The evidence, in markdown, next to the model `production` pins now (if any).
    pub(crate) fn body(&self, production: Option<&Pin>) -> String {
        let production_card = production.and_then(|pin| registry_card(&self.registry, pin));
        let preface = self
            .preface
            .as_ref()
            .map(|t| format!("{}\n\n", t.trim_end()))
            .unwrap_or_default();
        preface
            + &mlops_github::body::promotion(
                &self.reference,
                &self.card,
                production.map(|pin| (pin, production_card.as_ref())),
                self.evidence
                    .as_ref()
                    .map(|e| (e.digest.as_str(), &e.report)),
                &self.p.pin,
                &self.p.pin_file,
            )
    }

    /// The registry the model is in.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The holdout report's digest, when there is a report.
    pub(crate) fn report_digest(&self) -> Option<&str> {
        self.evidence.as_ref().map(|e| e.digest.as_str())
    }
}

/// Who started the run: `--started-by`, else (in GitHub Actions) the run's actor and the actor
/// who triggered it (a re-run's), when they are logins.
fn started_by(given: &[String]) -> Vec<String> {
    let mut who: Vec<String> =
        if given.is_empty() && std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
            ["GITHUB_ACTOR", "GITHUB_TRIGGERING_ACTOR"]
                .iter()
                .filter_map(|v| std::env::var(v).ok())
                .filter_map(|l| crate::cli::parse_login(&l).ok())
                .collect()
        } else {
            given.to_vec()
        };
    who.sort();
    who.dedup();
    who
}

/// Reads the manifest, the registry entry and the holdout report, refuses what must not be
/// promoted (a rejected model, a failed report), and builds the pin and the PR (its body empty:
/// it depends on what production pins now).
pub(crate) fn prepare(args: &PromoteArgs, format: Format) -> Result<Prepared, Exit> {
    let (m, _) = valid_manifest(&args.registry.manifest, format, "nothing promoted")?;
    let (settings, repo) = promotion(&m)?;
    let registry = open_registry(&args.registry, format)?;
    let (entry, card) = registry
        .find(&args.model)
        .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))
        .map_err(|e| {
            error(&e.message, &e.hint);
            if e.user { Exit::Usage } else { Exit::Runtime }
        })?;
    match entry.status.status {
        Status::Approved => {}
        Status::Rejected => {
            error(
                &format!(
                    "{} is rejected in the registry ({})",
                    entry.reference, entry.status.reason
                ),
                "promote another version",
            );
            return Err(Exit::No);
        }
        // Only an approved version may be proposed for production: the pin would otherwise
        // name a version the registry has not vouched for, and the deploy would refuse it
        // after the merge.
        Status::Pending => {
            error(
                &format!(
                    "{} is pending in the registry: only an approved version is promoted",
                    entry.reference
                ),
                &format!(
                    "review it and run `mlops registry approve {}`, or give the manifest evaluation thresholds, which approve a version that meets them",
                    entry.reference
                ),
            );
            return Err(Exit::No);
        }
    }
    let evidence = read_report(args, &entry.reference)?;
    if let Some(e) = &evidence
        && e.report["passed"] != Value::Bool(true)
    {
        error(
            &format!(
                "the holdout report of {} failed; not promoting it",
                entry.reference
            ),
            "fix what the holdout test found (see its report), then run it again",
        );
        return Err(Exit::No);
    }
    let mut pin = pin_of(&registry, &entry, &card, args.image.clone())?;
    pin.holdout = evidence.as_ref().map(|e| PinnedHoldout {
        passed: true,
        report_sha256: e.digest.clone(),
    });
    let status = evidence.as_ref().map(|e| {
        (
            true,
            format!("holdout passed; report sha256:{}", e.digest),
            workflow_run_url(),
        )
    });
    let p = Promotion {
        repo,
        project: m.project.name.clone(),
        base_branch: settings.base_branch.clone(),
        pin_file: settings.pin_file.clone(),
        title: format!("Promote {} to production", entry.reference),
        body: String::new(),
        labels: settings.labels.clone(),
        reviewers: settings.reviewers.clone(),
        teams: settings.team_reviewers.clone(),
        required_approvals: settings.required_approvals,
        require_protection: settings.require_branch_protection,
        default_token: is_default_token(),
        status,
        pin,
        started_by: started_by(&args.started_by),
    };
    Ok(Prepared {
        p,
        preface: None,
        reference: entry.reference,
        card,
        evidence,
        registry,
    })
}

pub(crate) fn run(args: &PromoteArgs, format: Format) -> Exit {
    match prepare(args, format) {
        Ok(prepared) => propose(&prepared, &args.github, args.dry_run, format),
        Err(code) => code,
    }
}

/// Opens or updates the pull request of `prepared` on GitHub (or, `dry_run`, prints it).
pub(crate) fn propose(
    prepared: &Prepared,
    github: &GithubArgs,
    dry_run_only: bool,
    format: Format,
) -> Exit {
    let mut p = prepared.p.clone();
    let has_token = super::github::token().is_some();
    if dry_run_only && !has_token {
        p.body = prepared.body(None);
        return dry_run(
            &p,
            None,
            "no token: the current production pin was not read",
        );
    }
    let (rt, gh) = match connect(github) {
        Ok(found) => found,
        Err(code) => return code,
    };
    rt.block_on(async {
        let current = match promote::current_pin(&gh, &p).await {
            Ok(c) => c,
            Err(e) => return failed(&e, ""),
        };
        p.body = prepared.body(current.as_ref().and_then(|(_, pin)| pin.as_ref()));
        if dry_run_only {
            return dry_run(&p, current.as_ref().map(|(text, _)| text.as_str()), "");
        }
        let findings = match promote::preflight(&gh, &p).await {
            Ok(f) => f,
            Err(e) => return failed(&e, ""),
        };
        let mut blocked = false;
        for f in &findings {
            let (label, level) = match f.level {
                Level::Warning => ("warning", mlops_actions::Level::Warning),
                Level::Error => {
                    blocked = true;
                    ("error", mlops_actions::Level::Error)
                }
            };
            if format == Format::Github {
                print!(
                    "{}",
                    mlops_actions::annotation(level, None, "mlops promote", &f.message)
                );
            }
            eprintln!("{label}: {}\n  = hint: {}", f.message, f.hint);
        }
        if blocked {
            eprintln!("promote: stopped by the preflight checks above; nothing was changed");
            return Exit::No;
        }
        let teams_readable = !findings
            .iter()
            .any(|f| f.message.starts_with("cannot read the members"));
        match promote::run(&gh, &p, teams_readable).await {
            Ok(outcome) => report(&p, &outcome, format),
            Err(Failure::Refused(message, hint)) => {
                error(&message, &hint);
                Exit::No
            }
            Err(Failure::Api(e, hint)) => failed(&e, &hint),
        }
    })
}

/// The card of a pinned version, when this registry has it.
fn registry_card(registry: &Registry, pin: &Pin) -> Option<ModelCard> {
    registry.card(&pin.model.name, pin.model.version).ok()
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
            o.head_sha.as_deref().map_or("", |s| &s[..s.len().min(12)])
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
