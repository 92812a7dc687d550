//! The promotion of a registered version: the pin (what production will serve, down to the
//! artifact digest), the evidence the pull request shows (the card, the holdout report), what
//! must not be promoted (a rejected or pending version, a failed report), and the pull request
//! opened or updated on GitHub. `mlops run` proposes the same [`Prepared`] in a local repository.

use std::path::PathBuf;

use mlops_artifacts::holdout::Report as HoldoutReport;
use mlops_github::pin::{Artifact, Pin, PinnedComparison, PinnedHoldout, PinnedModel};
use mlops_github::promote::{self, Failure, Finding, Level, Promotion};
use mlops_manifest::Manifest;
use mlops_registry::{Entry, Registry, Status};
use mlops_train::card::ModelCard;

use crate::Problem;

/// What a promotion is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    pub registry: Registry,
    /// NAME@VERSION, NAME@latest.
    pub model: String,
    /// The holdout report `mlops holdout --report` wrote for this version.
    pub holdout_report: Option<PathBuf>,
    /// The serving image, by digest.
    pub image: Option<String>,
    /// Who started the run (logins); empty: the workflow run's actors in Actions.
    pub started_by: Vec<String>,
}

/// The holdout report a promotion rests on.
#[derive(Debug)]
struct Evidence {
    digest: String,
    report: HoldoutReport,
}

fn read_report(path: Option<&PathBuf>, reference: &str) -> Result<Option<Evidence>, Problem> {
    let Some(path) = path else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::input(
            format!("cannot read the holdout report {}: {e}", path.display()),
            "pass the file `mlops holdout --report FILE` wrote",
        )
    })?;
    let report: HoldoutReport = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::input(
            format!("{}: not a holdout report: {e}", path.display()),
            "pass the JSON file `mlops holdout --report FILE` wrote",
        )
    })?;
    if report.model != reference {
        return Err(Problem::input(
            format!(
                "{}: the holdout report is for {}, not {reference}",
                path.display(),
                report.model
            ),
            "run `mlops holdout --model` on the version you promote",
        ));
    }
    Ok(Some(Evidence {
        digest: mlops_registry::report_digest(&bytes),
        report,
    }))
}

/// The workflow run's page, in Actions.
pub fn workflow_run_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL")?,
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// The pin of a registered version: where it is, its artifact digest from the card, the serving
/// image (`image`, else the card's image when it is by digest) and the manifest digest; no
/// holdout report. A card without an artifact digest is the user's to fix (register again).
pub fn pin_of(
    registry: &Registry,
    entry: &Entry,
    card: &ModelCard,
    image: Option<String>,
) -> Result<Pin, Problem> {
    let Some(artifact_sha) = card.artifact.as_ref().map(|a| a.sha256.clone()) else {
        return Err(Problem::input(
            format!("{}'s card records no artifact digest", entry.reference),
            "register the model again with this mlops version",
        ));
    };
    // The model image serves what it trained; a training image of the user's (an `onnx`
    // model's) need not serve at all, so its image is never taken for the serving one.
    let image = image.or_else(|| {
        card.sagemaker
            .as_ref()
            .filter(|_| card.job.family != mlops_manifest::model::Family::Onnx)
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
#[derive(Debug)]
pub struct Prepared {
    pub p: Promotion,
    /// Said first in the body (e.g. why this is a rollback).
    pub preface: Option<String>,
    /// NAME@VERSION.
    pub reference: String,
    card: ModelCard,
    evidence: Option<Evidence>,
    registry: Registry,
}

impl Prepared {
    /// The evidence, in markdown, next to the model `production` pins now (if any).
    pub fn body(&self, production: Option<&Pin>) -> String {
        let production_card =
            production.and_then(|pin| self.registry.card(&pin.model.name, pin.model.version).ok());
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
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The holdout report's digest, when there is a report.
    pub fn report_digest(&self) -> Option<&str> {
        self.evidence.as_ref().map(|e| e.digest.as_str())
    }
}

/// Who started the run: `given`, else (in GitHub Actions) the run's actor and the actor who
/// triggered it (a re-run's), when they are logins.
fn started_by(given: &[String]) -> Vec<String> {
    let mut who: Vec<String> =
        if given.is_empty() && std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
            ["GITHUB_ACTOR", "GITHUB_TRIGGERING_ACTOR"]
                .iter()
                .filter_map(|v| std::env::var(v).ok())
                .filter_map(|l| mlops_github::parse_login(&l).ok())
                .collect()
        } else {
            given.to_vec()
        };
    who.sort();
    who.dedup();
    who
}

/// Whether the registry lets `entry` be proposed for production: approved only. A pending
/// version would put in the pin a version the registry has not vouched for, and the deploy
/// would refuse it after the merge.
pub fn promotable(entry: &Entry) -> Result<(), Problem> {
    match entry.status.status {
        Status::Approved => Ok(()),
        Status::Rejected => Err(Problem::refused(
            format!(
                "{} is rejected in the registry ({})",
                entry.reference, entry.status.reason
            ),
            "promote another version",
        )),
        Status::Pending => Err(Problem::refused(
            format!(
                "{} is pending in the registry: only an approved version is promoted",
                entry.reference
            ),
            format!(
                "review it and run `mlops registry approve {}`, or give the manifest evaluation thresholds, which approve a version that meets them",
                entry.reference
            ),
        )),
    }
}

/// Reads the registry entry and the holdout report, refuses what must not be promoted (a
/// rejected or pending model, a failed report), and builds the pin and the PR (its body empty:
/// it depends on what production pins now).
pub fn prepare(req: Request<'_>) -> Result<Prepared, Problem> {
    let m = req.manifest;
    let (settings, repo) = crate::github::promotion(m)?;
    let registry = req.registry;
    let (entry, card) = registry
        .find(&req.model)
        .and_then(|e| registry.card(&e.model, e.version).map(|c| (e, c)))?;
    promotable(&entry)?;
    let evidence = read_report(req.holdout_report.as_ref(), &entry.reference)?;
    if let Some(e) = &evidence
        && !e.report.passed
    {
        return Err(Problem::refused(
            format!(
                "the holdout report of {} failed; not promoting it",
                entry.reference
            ),
            "fix what the holdout test found (see its report), then run it again",
        ));
    }
    let image = crate::deploy::serving_image(m, crate::deploy::Env::Production, req.image)?;
    let mut pin = pin_of(&registry, &entry, &card, image)?;
    pin.holdout = evidence.as_ref().map(|e| PinnedHoldout {
        passed: true,
        report_sha256: e.digest.clone(),
        compared_with: e.report.comparison.as_ref().map(|c| PinnedComparison {
            model: c.incumbent.clone(),
            artifact_sha256: c.incumbent_artifact_sha256.clone(),
            passed: c.passed,
        }),
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
        default_token: crate::github::is_default_token(),
        status,
        pin,
        started_by: started_by(&req.started_by),
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

/// How a proposal ended.
#[derive(Debug)]
pub enum Proposed {
    /// A dry run: the pull request as it would be (body filled in), the pin file production
    /// has now (when it was read) and a note on what was not read.
    DryRun {
        promotion: Box<Promotion>,
        current: Option<String>,
        note: String,
    },
    /// The preflight checks found errors: nothing was changed.
    Blocked,
    /// The pull request was opened, updated or left as it was (or production pins the version
    /// already).
    Done {
        promotion: Box<Promotion>,
        outcome: promote::Outcome,
    },
}

/// Opens or updates the pull request of `prepared` on GitHub (or, `dry_run`, shows it). The
/// preflight's findings go to `findings` as soon as they are known, whatever happens next.
pub fn propose(
    prepared: &Prepared,
    api_url: Option<&str>,
    dry_run: bool,
    findings: &mut dyn FnMut(&[Finding]),
) -> Result<Proposed, Problem> {
    let mut p = prepared.p.clone();
    if dry_run && crate::github::token().is_none() {
        p.body = prepared.body(None);
        return Ok(Proposed::DryRun {
            promotion: Box::new(p),
            current: None,
            note: "no token: the current production pin was not read".to_owned(),
        });
    }
    let (rt, gh) = crate::github::connect(api_url)?;
    let current = rt
        .block_on(promote::current_pin(&gh, &p))
        .map_err(|e| crate::github::failed(&e, ""))?;
    // Outside the runtime: the body reads production's card from the registry, which for an
    // `s3://` registry blocks on a runtime of its own (inside this one it would panic).
    p.body = prepared.body(current.as_ref().and_then(|(_, pin)| pin.as_ref()));
    if dry_run {
        return Ok(Proposed::DryRun {
            promotion: Box::new(p),
            current: current.map(|(text, _)| text),
            note: String::new(),
        });
    }
    rt.block_on(async {
        let found = promote::preflight(&gh, &p)
            .await
            .map_err(|e| crate::github::failed(&e, ""))?;
        findings(&found);
        if found.iter().any(|f| f.level == Level::Error) {
            return Ok(Proposed::Blocked);
        }
        let teams_readable = !found
            .iter()
            .any(|f| f.message.starts_with("cannot read the members"));
        match promote::run(&gh, &p, teams_readable).await {
            Ok(outcome) => Ok(Proposed::Done {
                promotion: Box::new(p),
                outcome,
            }),
            Err(Failure::Refused(message, hint)) => Err(Problem::refused(message, hint)),
            Err(Failure::Api(e, hint)) => Err(crate::github::failed(&e, &hint)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_registry::StatusRecord;

    fn entry(status: Status) -> Entry {
        Entry {
            model: "digits-mlp".into(),
            version: 3,
            reference: "digits-mlp@3".into(),
            location: "registry/digits-mlp/3".into(),
            status: StatusRecord {
                status,
                reason: "why".into(),
                changed_at: "2026-12-04T00:00:00Z".into(),
            },
        }
    }

    #[test]
    fn only_an_approved_version_is_promoted() {
        assert!(promotable(&entry(Status::Approved)).is_ok());
        for s in [Status::Pending, Status::Rejected] {
            let p = promotable(&entry(s)).expect_err("refused");
            assert_eq!(p.fault, crate::Fault::Refused, "{p}");
            assert!(p.message.contains("digits-mlp@3"), "{p}");
        }
    }

    #[test]
    fn the_pin_takes_the_cards_artifact_and_an_image_only_by_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(&dir.path().display().to_string(), std::path::Path::new(""))
            .expect("registry");
        let mut card = mlops_artifacts::card::sample("digits-mlp", 3);
        card.artifact = Some(mlops_artifacts::artifact::ArtifactDigest {
            sha256: "b".repeat(64),
            files: Default::default(),
        });
        let e = entry(Status::Approved);
        let by_tag = card
            .sagemaker
            .as_ref()
            .is_some_and(|s| !s.image.contains("@sha256:"));
        let pin = pin_of(&registry, &e, &card, None).expect("pin");
        assert_eq!(pin.model.artifact.sha256, "b".repeat(64));
        assert_eq!(pin.model.artifact.uri, e.location);
        if by_tag {
            assert_eq!(pin.model.image, None);
        }
        let given = format!("repo@sha256:{}", "a".repeat(64));
        let pin = pin_of(&registry, &e, &card, Some(given.clone())).expect("pin");
        assert_eq!(pin.model.image.as_deref(), Some(given.as_str()));
        card.artifact = None;
        let p = pin_of(&registry, &e, &card, None).expect_err("no digest");
        assert_eq!(p.fault, crate::Fault::Input);
    }

    /// The training image serves only what it trained: an `onnx` model's (a training image of
    /// the user's) is never taken for the serving image.
    #[test]
    fn an_onnx_models_training_image_is_not_its_serving_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(&dir.path().display().to_string(), std::path::Path::new(""))
            .expect("registry");
        let mut card = mlops_artifacts::card::sample("digits-mlp", 3);
        card.artifact = Some(mlops_artifacts::artifact::ArtifactDigest {
            sha256: "b".repeat(64),
            files: Default::default(),
        });
        let trainer = format!("repo/trainer@sha256:{}", "c".repeat(64));
        card.sagemaker = Some(mlops_artifacts::card::SagemakerRun {
            training_job: "digits-run-1".into(),
            training_job_arn: "arn:aws:sagemaker:us-east-1:123456789012:training-job/digits-run-1"
                .into(),
            image: trainer.clone(),
            image_digest: Some(format!("sha256:{}", "c".repeat(64))),
            model_artifact: "s3://b/training/digits-run-1/output/model.tar.gz".into(),
            final_metrics: Default::default(),
            billable_seconds: None,
            model_package_group: None,
            model_package_arn: None,
            tuning_job: None,
        });
        let e = entry(Status::Approved);
        let pin = pin_of(&registry, &e, &card, None).expect("pin");
        assert_eq!(pin.model.image.as_deref(), Some(trainer.as_str()));
        card.job.family = mlops_manifest::model::Family::Onnx;
        let pin = pin_of(&registry, &e, &card, None).expect("pin");
        assert_eq!(pin.model.image, None);
    }
}
