//! `mlops monitor`: a registered version's captured traffic (a capture directory or file, or an
//! `s3://` prefix whose files are downloaded one at a time) counted against the baseline on its
//! card and judged by `monitoring.thresholds` ([`mlops_monitor`]).

use std::path::{Path, PathBuf};

use mlops_artifacts::monitor::Report;
use mlops_manifest::Manifest;
use mlops_monitor::judge::{Judging, judge};
use mlops_monitor::tally::Tally;
use mlops_monitor::truth::Truth;
use mlops_registry::Registry;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Problem, Progress};

/// What `mlops monitor` is asked.
#[derive(Debug)]
pub struct Request<'a> {
    pub manifest: &'a Manifest,
    pub manifest_path: &'a Path,
    pub registry: &'a Registry,
    /// The registered version whose traffic it is; `None`: the one production's pin names.
    pub model: Option<String>,
    /// Production's pin file, when not the manifest's (`promotion.pin_file` in a checkout of
    /// the promotion repository).
    pub production_pin: Option<PathBuf>,
    /// A capture directory or file, or `s3://BUCKET/PREFIX`.
    pub captured: String,
    /// Only lines answered at or after this: RFC 3339, or an age (`30m`, `24h`, `7d`).
    pub since: Option<String>,
    /// Labels joined by inference id (CSV or JSON lines).
    pub ground_truth: Option<PathBuf>,
    /// Where the labelled captured rows go as a training set (CSV): a file, or `s3://` (the
    /// manifest's `monitoring.retrain_data`, for a retraining on production's own rows).
    pub labelled: Option<String>,
    /// On drift, what to do on GitHub (the model's repository).
    pub github: Option<OnDrift>,
}

/// On drift: open or update the drift issue, and dispatch the train workflow.
#[derive(Debug, Clone, Default)]
pub struct OnDrift {
    /// `--github-api-url`, else `GITHUB_API_URL`.
    pub api_url: Option<String>,
    pub issue: bool,
    pub retrain: bool,
}

/// A finished monitor run: the report, and what was done on GitHub about it.
#[derive(Debug)]
pub struct Monitored {
    pub report: Report,
    /// The labelled rows written (`labelled`).
    pub labelled: Option<mlops_monitor::tally::Exported>,
    pub issue: Option<mlops_github::drift::Reported>,
    /// The train workflow was dispatched on this branch.
    pub retrain: Option<String>,
}

/// `--since` as a time: RFC 3339, or an age before `now` (`90s`, `30m`, `24h`, `7d`).
pub fn since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Problem> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let bad = || {
        Problem::input(
            format!("--since `{text}` is neither a time nor an age"),
            "give an RFC 3339 time (2026-12-01T00:00:00Z) or an age such as 30m, 24h or 7d",
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at_checked(split).ok_or_else(bad)?;
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    now.checked_sub(time::Duration::seconds(seconds))
        .ok_or_else(bad)
}

/// The capture files under `path` (itself, when it is a file): `*.jsonl`, every directory
/// below, in path order (the writer names them by time). Files still being written (`.open`)
/// are not read.
fn local_files(path: &Path) -> Result<Vec<PathBuf>, Problem> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Problem::input(
            format!("{}: {e}", path.display()),
            "give the capture directory (`mlops serve --capture DIR`) or a capture file",
        )
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Problem::input(format!("{}: {e}", dir.display()), ""))?;
        for entry in entries {
            let entry = entry.map_err(|e| Problem::input(format!("{}: {e}", dir.display()), ""))?;
            let p = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Problem::input(format!("{}: {e}", p.display()), ""))?;
            if kind.is_dir() {
                dirs.push(p);
            } else if is_capture(&p.to_string_lossy()) {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A finished capture file's name: `.jsonl`, not hidden.
fn is_capture(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.ends_with(".jsonl") && !base.starts_with('.')
}

/// Counts the capture and judges it.
pub fn monitor(req: &Request<'_>, progress: &mut dyn Progress) -> Result<Monitored, Problem> {
    let m = req.manifest;
    let model = match &req.model {
        Some(r) => r.clone(),
        None => {
            let pin = match &req.production_pin {
                Some(file) => crate::deploy::read_pin(file, "production")?,
                None => crate::deploy::production_pin(m, req.manifest_path)?,
            };
            progress.step(&format!("production pins {}", pin.reference()));
            pin.reference()
        }
    };
    let (bundle, identity, card) = crate::serve::bundle_from_registry(&model, req.registry)?;
    let reference = identity.model.clone().unwrap_or_default();
    let Some(baseline) = card.training.baseline.as_ref() else {
        return Err(Problem::input(
            format!("{reference} has no monitoring baseline on its card"),
            "it was registered before mlops recorded baselines; train it again to monitor it",
        ));
    };
    let bundle = &bundle;
    let since_time = req
        .since
        .as_deref()
        .map(|s| since(s, OffsetDateTime::now_utc()))
        .transpose()?;
    let mut tally = Tally::new(bundle, baseline, &identity.artifact_sha256, since_time);
    if let Some(path) = &req.ground_truth {
        let truth = Truth::read(path, &bundle.signature.label).map_err(|e| {
            Problem::input(e, "see README, \"Monitoring\", for the ground truth file")
        })?;
        tally = tally.with_truth(truth, &path.display().to_string());
    }
    // The labelled rows are written beside their destination (or in a scratch directory for
    // S3) and put in place only once whole.
    let export = match &req.labelled {
        None => None,
        Some(_) if req.ground_truth.is_none() => {
            return Err(Problem::input(
                "the labelled rows need ground truth to label them",
                "give --ground-truth FILE with --labelled",
            ));
        }
        Some(dest) => {
            let file = crate::staged::stage(dest, &std::env::temp_dir(), ".mlops-labelled-")?;
            let writer = file
                .reopen()
                .map_err(|e| Problem::broken(format!("{}: {e}", file.path().display()), ""))?;
            tally = tally
                .with_export(
                    Box::new(std::io::BufWriter::new(writer)),
                    &bundle.signature.label,
                )
                .map_err(|e| Problem::input(e, ""))?;
            Some((file, dest.clone()))
        }
    };
    if req.captured.starts_with("s3://") {
        read_s3(&req.captured, &mut tally, progress)?;
    } else {
        for file in local_files(Path::new(&req.captured))? {
            tally
                .file(&file, &file.display().to_string())
                .map_err(|e| Problem::input(e, ""))?;
        }
    }
    let thresholds = m
        .monitoring
        .as_ref()
        .map(|mo| mo.thresholds.clone())
        .unwrap_or_default();
    let evaluated = card.metrics_of("holdout");
    let judging = Judging {
        model: &reference,
        captured: &req.captured,
        since: since_time.and_then(|t| t.format(&Rfc3339).ok()),
        thresholds: &thresholds,
        evaluated: &evaluated,
    };
    let exported = tally
        .finish_export()
        .map_err(|e| Problem::broken(format!("the labelled rows: {e}"), ""))?;
    if let (Some((file, dest)), Some(written)) = (export, exported) {
        crate::staged::put(file, &dest, true)?;
        progress.step(&format!(
            "wrote {} labelled rows to {dest}{}",
            written.rows,
            if written.unseen > 0 {
                format!(
                    " ({} values of categories the model does not know written as gaps)",
                    written.unseen
                )
            } else {
                String::new()
            }
        ));
    }
    let report = judge(tally, baseline, bundle.signature.task, &judging);
    let mut done = Monitored {
        labelled: exported,
        report,
        issue: None,
        retrain: None,
    };
    if let Some(on) = req.github.as_ref().filter(|_| done.report.drifted) {
        on_drift(m, on, &mut done, progress)?;
    }
    Ok(done)
}

/// Drift on GitHub: the issue opened or updated, the train workflow dispatched.
fn on_drift(
    m: &Manifest,
    on: &OnDrift,
    done: &mut Monitored,
    progress: &mut dyn Progress,
) -> Result<(), Problem> {
    if !on.issue && !on.retrain {
        return Ok(());
    }
    let Some(repo) = mlops_github::Repo::parse(&m.project.repository) else {
        return Err(Problem::input(
            format!("`{}` is not OWNER/REPO", m.project.repository),
            "set `project.repository`",
        ));
    };
    let (rt, gh) = crate::github::connect(on.api_url.as_deref())?;
    let report = &done.report;
    let name = report.model.split('@').next().unwrap_or(&report.model);
    if on.issue {
        let title = format!("Production drift: {}", report.model);
        let comment = format!(
            "Drift again ({} rows{}):\n\n{}",
            report.read.rows,
            report
                .since
                .as_ref()
                .map_or_else(String::new, |s| format!(" since {s}")),
            report
                .findings
                .iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let reported = rt
            .block_on(mlops_github::drift::report(
                &gh,
                &repo,
                &m.project.name,
                name,
                &title,
                &report.markdown(),
                &comment,
            ))
            .map_err(|e| {
                crate::github::failed(&e, "the monitor job needs `issues: write` on its token")
            })?;
        progress.step(&match &reported {
            mlops_github::drift::Reported::Opened(n) => {
                format!("opened issue #{n} in {}", repo.full())
            }
            mlops_github::drift::Reported::Updated(n) => {
                format!("updated issue #{n} in {}", repo.full())
            }
        });
        done.issue = Some(reported);
    }
    if on.retrain {
        let branch = m.workflows.default_branch.clone();
        // With `monitoring.retrain_data` the run trains on it (the train workflow's
        // `retraining` input), else on `data.train` as any training does.
        let retraining = m
            .monitoring
            .as_ref()
            .is_some_and(|mo| mo.retrain_data.is_some());
        let inputs: &[(&str, &str)] = if retraining {
            &[(mlops_manifest::RETRAINING_INPUT, "true")]
        } else {
            &[]
        };
        let train = mlops_manifest::workflow_file(m, mlops_manifest::TRAIN_WORKFLOW);
        rt.block_on(mlops_github::drift::dispatch(
            &gh, &repo, &train, &branch, inputs,
        ))
        .map_err(|e| {
            crate::github::failed(
                &e,
                "the monitor job needs `actions: write` on its token, and the train workflow \
                 must be rendered on the default branch",
            )
        })?;
        progress.step(&format!("dispatched {train} on {branch} to retrain"));
        done.retrain = Some(branch);
    }
    Ok(())
}

/// Every capture file under an `s3://` prefix, downloaded one at a time into a scratch
/// directory and counted.
fn read_s3(prefix: &str, tally: &mut Tally, progress: &mut dyn Progress) -> Result<(), Problem> {
    let uri = mlops_aws::S3Uri::parse(prefix)?;
    let scratch = tempfile::tempdir()
        .map_err(|e| Problem::broken(format!("cannot make a temporary directory: {e}"), ""))?;
    let rt = crate::runtime::current_thread()?;
    rt.block_on(async {
        let s3 = mlops_aws::S3::from_env().await;
        let mut keys = s3.keys(&uri.bucket, &uri.key).await?;
        keys.retain(|k| is_capture(k));
        keys.sort();
        progress.step(&format!("{} capture files under {prefix}", keys.len()));
        let local = scratch.path().join("capture.jsonl");
        for key in keys {
            let object = mlops_aws::S3Uri {
                bucket: uri.bucket.clone(),
                key: key.clone(),
            };
            s3.download(&object, &local).await?;
            let shown = format!("s3://{}/{key}", uri.bucket);
            tally
                .file(&local, &shown)
                .map_err(|e| Problem::input(e, ""))?;
        }
        Ok::<(), Problem>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_an_age() {
        let now = OffsetDateTime::parse("2026-12-05T12:00:00Z", &Rfc3339).expect("time");
        let at = |s: &str| since(s, now).map(|t| t.format(&Rfc3339).expect("formats"));
        assert_eq!(
            at("2026-12-01T00:00:00Z").expect("rfc"),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(at("90s").expect("s"), "2026-12-05T11:58:30Z");
        assert_eq!(at("30m").expect("m"), "2026-12-05T11:30:00Z");
        assert_eq!(at("24h").expect("h"), "2026-12-04T12:00:00Z");
        assert_eq!(at("7d").expect("d"), "2026-11-28T12:00:00Z");
        for bad in ["", "d", "7w", "x7d", "yesterday", "99999999999999999d"] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_finished_capture_files_are_read() {
        let dir = tempfile::tempdir().expect("dir");
        let hour = dir.path().join("2026/12/05/10");
        std::fs::create_dir_all(&hour).expect("dirs");
        for name in [
            "b.jsonl",
            "a.jsonl",
            "c.jsonl.open",
            ".d.jsonl",
            "notes.txt",
        ] {
            std::fs::write(hour.join(name), "").expect("write");
        }
        std::fs::write(dir.path().join("z.jsonl"), "").expect("write");
        let files: Vec<String> = local_files(dir.path())
            .expect("lists")
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("under")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            files,
            ["2026/12/05/10/a.jsonl", "2026/12/05/10/b.jsonl", "z.jsonl"]
        );
        assert!(local_files(&dir.path().join("absent")).is_err());
    }
}
