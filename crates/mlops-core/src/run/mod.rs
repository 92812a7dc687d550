//! `mlops run`: the whole loop on one machine, with no cloud account and no token.
//!
//! validate → render (into the work dir) → train (local backend) → evaluate and register →
//! staging service (`mlops serve` on a free loopback port) → holdout test against it →
//! promotion (a local git repository in the work dir, or a real pull request with `--open-pr`)
//! → gate (the same rules as `mlops gate`, with local stand-in approvals) → production deploy
//! (merge the approved pin, serve exactly what it pins, check that the service says so).
//!
//! Each stage but the promotion, gate and deploy is the `mlops` subcommand of the same name run
//! as a child process of this binary, with its output in `<work dir>/logs/<stage>.log`: the
//! stages are exactly what the actions run, and a stage's failure is shown with its own message
//! and exit code. The run stops at the first failed stage with that stage's exit code; SIGINT or
//! SIGTERM stops it with 130. Every service it started is stopped on every exit path.

mod local;
mod supervise;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlops_artifacts::run::{self as record, Artifacts, Stage, StageName, StageResult};
use mlops_manifest::Manifest;

use self::local::{LocalRepo, Proposal};
use self::supervise::Supervisor;
use crate::promote::Prepared;
use crate::{Fault, Problem};

/// How long a service may take to start listening.
const SERVICE_START: Duration = Duration::from_secs(120);

/// What `mlops run` is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    /// The `mlops` binary each stage runs (the running one).
    pub exe: PathBuf,
    /// The manifest, validated, and its path.
    pub manifest: &'a Manifest,
    pub manifest_path: PathBuf,
    /// Where the run keeps its files (default: `.mlops/run` beside the manifest).
    pub workdir: Option<PathBuf>,
    /// The registry (default: the manifest's, or one in the work dir when that is in S3).
    pub registry: Option<PathBuf>,
    /// Open the real promotion pull request on GitHub instead of the local one, and stop there.
    pub open_pr: bool,
    /// The GitHub API (for `open_pr`).
    pub api_url: Option<String>,
}

/// Where a run shows what it does.
pub trait Watch {
    /// A stage started; its log is `log`.
    fn running(&mut self, stage: StageName, log: &Path);
    /// A stage ended: passed, failed or skipped.
    fn ended(&mut self, stage: &Stage);
    /// A line beside the stages: where the run is, a note, a failed stage's log.
    fn notice(&mut self, line: &str);
    /// An error of the run's own, and how to fix it.
    fn error(&mut self, message: &str, hint: &str);
}

/// The run: its places, its stages so far, the processes it started.
struct Run<'w> {
    exe: PathBuf,
    manifest: PathBuf,
    workdir: PathBuf,
    registry: PathBuf,
    logs: PathBuf,
    watch: &'w mut dyn Watch,
    open_pr: bool,
    api_url: Option<String>,
    m: Manifest,
    stages: Vec<Stage>,
    artifacts: Artifacts,
    model: Option<String>,
    /// The promotion it made: the local commit and branch, or the pull request's URL.
    promotion: Option<String>,
    supervisor: Supervisor,
}

/// Why the run stopped at a failed stage (its message is already shown).
struct Stop(Fault);

/// A service `mlops run` started, stopped when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    supervisor: Supervisor,
}

impl Service {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.supervisor.stop(&mut self.child);
    }
}

/// Environment variables a child stage keeps among the `MLOPS_*` ones (the rest would override
/// the flags the run passes, e.g. `MLOPS_NO_PARITY`).
const KEPT: &[&str] = &[
    "MLOPS_GITHUB_TOKEN",
    "MLOPS_GITHUB_API_URL",
    "MLOPS_GITHUB_BACKOFF_MS",
    "MLOPS_DEFAULT_TOKEN",
];

/// Runs the loop; the record of what it did (also written to `run.json` in the work dir), or
/// the problem that kept it from starting.
pub fn run(req: &Request<'_>, watch: &mut dyn Watch) -> Result<record::Run, Problem> {
    // Before anything runs: a run that trains for minutes must not fail at its end for this.
    if req.open_pr && crate::github::token().is_none() {
        return Err(Problem::input(
            "--open-pr needs a token",
            "set GITHUB_TOKEN (or MLOPS_GITHUB_TOKEN) to a token that may open pull requests in the promotion repository, or drop --open-pr to prepare the pull request locally",
        ));
    }
    let m = req.manifest;
    let here = req.manifest_path.parent().unwrap_or(Path::new("."));
    let workdir = req
        .workdir
        .clone()
        .unwrap_or_else(|| here.join(".mlops").join("run"));
    let registry = match &req.registry {
        Some(r) => r.clone(),
        None if m.registry.path.starts_with("s3://") => workdir.join("registry"),
        None => here.join(&m.registry.path),
    };
    let logs = workdir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| {
        Problem::input(
            format!("cannot create the work dir {}: {e}", workdir.display()),
            "pass a writable directory with --workdir",
        )
    })?;
    let (supervisor, warning) = Supervisor::install();
    if let Some(w) = warning {
        watch.notice(&w);
    }
    let mut r = Run {
        exe: req.exe.clone(),
        manifest: req.manifest_path.clone(),
        workdir: workdir.clone(),
        registry,
        logs: logs.clone(),
        watch,
        open_pr: req.open_pr,
        api_url: req.api_url.clone(),
        m: m.clone(),
        stages: Vec::new(),
        artifacts: Artifacts {
            logs,
            ..Artifacts::default()
        },
        model: None,
        promotion: None,
        supervisor,
    };
    let line = format!(
        "mlops run: {} (work dir {}, registry {})",
        r.manifest.display(),
        r.workdir.display(),
        r.registry.display()
    );
    r.watch.notice(&line);
    if m.registry.path.starts_with("s3://") && req.registry.is_none() {
        let line = format!(
            "note: the manifest's registry is in S3; this run registers in {} (no cloud account needed)",
            r.registry.display()
        );
        r.watch.notice(&line);
    }
    let stopped = r.stages_all().err().map(|Stop(f)| f);
    let stopped = if r.supervisor.interrupted() {
        Some(Fault::Cancelled)
    } else {
        stopped
    };
    Ok(r.finish(stopped))
}

impl Run<'_> {
    fn stages_all(&mut self) -> Result<(), Stop> {
        self.validate()?;
        self.render()?;
        let reference = self.train()?;
        let report = {
            // The staging service lives for the holdout test only; dropping it stops it (and
            // closes its capture).
            let staging = self.staging(&reference)?;
            self.holdout(&reference, &staging)?
        };
        self.monitor(&reference)?;
        if self.open_pr {
            return self.open_pr(&reference, &report);
        }
        let (prepared, repo, proposal) = self.promote_locally(&reference, &report)?;
        let Some(proposal) = proposal else {
            self.skip(
                StageName::Gate,
                "no pull request: production already pins this version",
            );
            self.skip(StageName::Deploy, "production already serves this version");
            return Ok(());
        };
        self.gate(&prepared, &repo, &proposal)?;
        self.deploy(&prepared, &repo, &proposal)
    }

    /// Says which stage is running.
    fn running(&mut self, stage: StageName) {
        let log = self.log(stage, "log");
        self.watch.running(stage, &log);
    }

    /// A stage's log file (`log`: its stderr; `out`: its stdout).
    fn log(&self, stage: StageName, kind: &str) -> PathBuf {
        self.logs.join(format!("{}.{kind}", stage.as_str()))
    }

    fn record(&mut self, stage: StageName, result: StageResult, figure: String, seconds: f64) {
        let stage = Stage {
            stage,
            result,
            figure,
            seconds,
        };
        self.watch.ended(&stage);
        self.stages.push(stage);
    }

    fn skip(&mut self, stage: StageName, why: &str) {
        self.record(stage, StageResult::Skipped, why.to_owned(), 0.0);
    }

    /// Records a failed stage and stops the run with `fault`.
    fn fail(&mut self, stage: StageName, figure: String, started: Instant, fault: Fault) -> Stop {
        self.record(
            stage,
            StageResult::Failed,
            figure,
            started.elapsed().as_secs_f64(),
        );
        Stop(fault)
    }

    /// Shows a failure of the local promotion, gate or deploy and stops the run with its fault.
    fn local_failed(&mut self, stage: StageName, p: Problem, started: Instant) -> Stop {
        self.watch.error(&p.message, &p.hint);
        self.fail(stage, p.message, started, p.fault)
    }

    fn check_interrupted(&self) -> Result<(), Stop> {
        if self.supervisor.interrupted() {
            Err(Stop(Fault::Cancelled))
        } else {
            Ok(())
        }
    }

    /// `mlops ARGS` as a child with a clean environment: no `MLOPS_*` variable but the GitHub
    /// ones, no Actions outputs.
    fn mlops(&self, args: &[OsString]) -> Command {
        let mut c = Command::new(&self.exe);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("MLOPS_") && !KEPT.contains(&k.as_ref()) {
                c.env_remove(&key);
            }
        }
        c.env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    /// Runs the stage's subcommand to its end with stdout and stderr in its log files; its exit
    /// code and stdout.
    fn step(&mut self, stage: StageName, args: &[OsString]) -> Result<(i32, String), Stop> {
        self.check_interrupted()?;
        self.running(stage);
        let out_path = self.log(stage, "out");
        let log_path = self.log(stage, "log");
        let files = std::fs::File::create(&out_path)
            .and_then(|out| std::fs::File::create(&log_path).map(|log| (out, log)));
        let (out, log) = match files {
            Ok(f) => f,
            Err(e) => {
                self.watch
                    .error(&format!("cannot write in {}: {e}", self.logs.display()), "");
                return Err(Stop(Fault::Broken));
            }
        };
        let mut c = self.mlops(args);
        c.stdout(out).stderr(log);
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.watch
                    .error(&format!("cannot start {}: {e}", self.exe.display()), "");
                return Err(Stop(Fault::Broken));
            }
        };
        self.supervisor.adopt(&child);
        let status = self.supervisor.wait(&mut child);
        self.check_interrupted()?;
        let code = match status {
            Ok(s) => s.code().unwrap_or(3),
            Err(e) => {
                self.watch
                    .error(&format!("lost the {stage} process: {e}"), "");
                return Err(Stop(Fault::Broken));
            }
        };
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        Ok((code, stdout))
    }

    /// Shows the end of a failed stage's log (its own error message and hint).
    fn show_log(&mut self, stage: StageName) {
        let text = std::fs::read_to_string(self.log(stage, "log")).unwrap_or_default()
            + &std::fs::read_to_string(self.log(stage, "out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        let mut shown = format!(
            "--- {} (the whole log: {}) ---\n",
            stage.as_str(),
            self.log(stage, "log").display()
        );
        for line in lines.get(from..).unwrap_or_default() {
            shown.push_str(line);
            shown.push('\n');
        }
        shown.push_str("---");
        self.watch.notice(&shown);
    }

    /// Whose fault a stage's failure was: its exit code's, or `if_zero` when the stage exited 0
    /// but its output says it failed.
    fn fault_of(code: i32, if_zero: Fault) -> Fault {
        Fault::from_exit_code(code).unwrap_or(if_zero)
    }

    fn manifest_args(&self) -> Vec<OsString> {
        vec!["--manifest".into(), self.manifest.clone().into_os_string()]
    }

    /// Runs a stage whose subcommand's exit code is its whole answer; when it failed, shows its
    /// log and stops the run with its code. When the stage started.
    fn checked_step(
        &mut self,
        stage: StageName,
        args: &[OsString],
        failure: &str,
    ) -> Result<Instant, Stop> {
        let started = Instant::now();
        let (code, _) = self.step(stage, args)?;
        if code != 0 {
            self.show_log(stage);
            return Err(self.fail(
                stage,
                failure.to_owned(),
                started,
                Self::fault_of(code, Fault::Broken),
            ));
        }
        Ok(started)
    }

    /// Records a stage that passed, timed from `started`.
    fn passed(&mut self, stage: StageName, figure: String, started: Instant) {
        self.record(
            stage,
            StageResult::Ok,
            figure,
            started.elapsed().as_secs_f64(),
        );
    }

    fn validate(&mut self) -> Result<(), Stop> {
        let mut a: Vec<OsString> = vec!["validate".into(), "--format".into(), "human".into()];
        a.extend(self.manifest_args());
        let started = self.checked_step(StageName::Validate, &a, "the manifest is invalid")?;
        self.passed(StageName::Validate, "the manifest is valid".into(), started);
        Ok(())
    }

    fn render(&mut self) -> Result<(), Stop> {
        let out = self.workdir.join("rendered");
        let mut a: Vec<OsString> = vec!["render".into(), "--format".into(), "human".into()];
        a.extend(self.manifest_args());
        a.extend(["--out".into(), out.clone().into_os_string()]);
        let started = self.checked_step(StageName::Render, &a, "rendering failed")?;
        let files = count_files(&out);
        self.artifacts.rendered = Some(out.clone());
        // `mlops render` withholds the GitHub loop for a registry that is a directory.
        let release = mlops_manifest::workflow_file(&self.m, mlops_manifest::RELEASE_WORKFLOW);
        let withheld = if out.join(".github/workflows").join(release).exists() {
            ""
        } else {
            " (no GitHub release loop: the registry is a directory, which only this machine has; `registry.path: s3://...` renders it)"
        };
        self.passed(
            StageName::Render,
            format!("{files} files in {}{withheld}", out.display()),
            started,
        );
        Ok(())
    }

    /// Train, then evaluate and register (one `mlops train`, shown as two stages: the worker's
    /// own training time, and the rest). The registered reference.
    fn train(&mut self) -> Result<String, Stop> {
        let started = Instant::now();
        let mut a: Vec<OsString> = vec![
            "train".into(),
            "--format".into(),
            "json".into(),
            "--backend".into(),
            "local".into(),
        ];
        a.extend(self.manifest_args());
        a.extend(["--registry".into(), self.registry.clone().into_os_string()]);
        let (code, stdout) = self.step(StageName::Train, &a)?;
        let wall = started.elapsed().as_secs_f64();
        let doc: Option<crate::train::Summary> = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let Some(doc) = doc else {
            self.show_log(StageName::Train);
            let code = Self::fault_of(code, Fault::Broken);
            return Err(self.fail(StageName::Train, "training failed".into(), started, code));
        };
        let reference = doc.model_version.clone();
        let location = PathBuf::from(&doc.registry);
        let card_path = location.join("card.json");
        let card: Option<mlops_train::card::ModelCard> = std::fs::read(&card_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        self.artifacts.model_card = Some(card_path.clone());
        self.model = Some(reference.clone());
        // A sweep trained every trial; the summary's seconds are the registered trial's.
        let swept = card.as_ref().and_then(|c| c.sweep.as_ref());
        let trained = swept
            .map_or(doc.seconds, |s| s.trials.iter().map(|t| t.seconds).sum())
            .min(wall);
        self.record(
            StageName::Train,
            StageResult::Ok,
            match &card {
                // A model brought as ONNX: measured, not trained.
                Some(c) if c.training.curve.is_empty() => format!(
                    "ONNX model measured on {} ({}), {} validation and holdout rows, {:.0} rows/s",
                    mlops_manifest::model::spelling(&c.training.compute.device),
                    c.training.compute.backend,
                    c.training
                        .rows
                        .get("validation")
                        .copied()
                        .unwrap_or_default()
                        + c.training.rows.get("holdout").copied().unwrap_or_default(),
                    doc.samples_per_second
                ),
                Some(c) => format!(
                    "{}{} epochs on {} ({}), {} training rows, {:.0} samples/s",
                    swept.map_or_else(String::new, |s| format!(
                        "sweep of {} trials ({}), trial {} registered; ",
                        s.trials.len(),
                        s.method,
                        s.best
                    )),
                    c.job.epochs,
                    mlops_manifest::model::spelling(&c.training.compute.device),
                    c.training.compute.backend,
                    c.training.rows.get("train").copied().unwrap_or_default(),
                    doc.samples_per_second
                ),
                None => format!("no model card at {}", card_path.display()),
            },
            trained,
        );
        let failed = &doc.failed_thresholds;
        let evaluate_started = Instant::now()
            .checked_sub(Duration::from_secs_f64(wall - trained))
            .unwrap_or_else(Instant::now);
        if !failed.is_empty() || code != 0 {
            let why: Vec<String> = failed
                .iter()
                .map(|f| format!("{} {:.4} misses {}", f.metric, f.value, f.bound))
                .collect();
            if why.is_empty() {
                self.show_log(StageName::Train);
            }
            let figure = format!(
                "{}; registered {reference} as {}",
                if why.is_empty() {
                    "failed".to_owned()
                } else {
                    why.join(", ")
                },
                doc.status.name()
            );
            let code = Self::fault_of(code, Fault::Refused);
            return Err(self.fail(StageName::Evaluate, figure, evaluate_started, code));
        }
        let thresholds: Vec<String> = card
            .iter()
            .flat_map(|c| &c.thresholds)
            .map(|(metric, bound)| {
                let value = doc.metrics.get(metric).copied().unwrap_or_default();
                let bound = match (bound.min, bound.max) {
                    (Some(min), _) => format!(">= {min}"),
                    (None, Some(max)) => format!("<= {max}"),
                    (None, None) => String::new(),
                };
                format!("{metric} {value:.4} {bound}")
            })
            .collect();
        self.record(
            StageName::Evaluate,
            StageResult::Ok,
            format!(
                "{}; registered {reference} ({})",
                if thresholds.is_empty() {
                    "no thresholds".to_owned()
                } else {
                    thresholds.join(", ")
                },
                doc.status.name()
            ),
            evaluate_started.elapsed().as_secs_f64(),
        );
        Ok(reference)
    }

    /// Starts `mlops serve` for `reference` on a free loopback port and waits until it listens.
    /// Where the staging service captures the holdout test's traffic.
    fn capture_dir(&self) -> PathBuf {
        self.workdir.join("capture")
    }

    fn serve(&mut self, stage: StageName, reference: &str) -> Result<Service, String> {
        // The service writes the address it bound here once it listens (its log is for people).
        let address_file = self.logs.join(format!("{stage}.address"));
        let _ = std::fs::remove_file(&address_file);
        let mut a: Vec<OsString> = vec![
            "serve".into(),
            "--model".into(),
            reference.into(),
            "--registry".into(),
            self.registry.clone().into_os_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--address-file".into(),
            address_file.clone().into_os_string(),
        ];
        if stage == StageName::Staging {
            let capture = self.capture_dir();
            let _ = std::fs::remove_dir_all(&capture);
            a.extend(["--capture".into(), capture.into_os_string()]);
        }
        a.extend(self.manifest_args());
        self.running(stage);
        let log_path = self.log(stage, "log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let mut c = self.mlops(&a);
        c.stdout(Stdio::null()).stderr(log);
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        self.supervisor.adopt(&child);
        let started = Instant::now();
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file) {
                break text.trim().parse::<SocketAddr>().ok();
            }
            // A service that exited will never listen (reaped through the supervisor, which
            // forgets its process ID under the same lock).
            if self.supervisor.interrupted()
                || started.elapsed() > SERVICE_START
                || !matches!(self.supervisor.try_wait(&mut child), Ok(None))
            {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let service = Service {
            child,
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            supervisor: self.supervisor.clone(),
        };
        if addr.is_none() {
            drop(service);
            return Err(format!(
                "the service did not start (its log: {})",
                log_path.display()
            ));
        }
        Ok(service)
    }

    fn staging(&mut self, reference: &str) -> Result<Service, Stop> {
        self.check_interrupted()?;
        let started = Instant::now();
        match self.serve(StageName::Staging, reference) {
            Ok(service) => {
                self.passed(
                    StageName::Staging,
                    format!("{reference} served on {}", service.url()),
                    started,
                );
                Ok(service)
            }
            Err(message) => {
                self.check_interrupted()?;
                self.show_log(StageName::Staging);
                self.watch.error(&message, "");
                Err(self.fail(StageName::Staging, message.clone(), started, Fault::Broken))
            }
        }
    }

    /// The holdout test through the staging service; the report's path.
    fn holdout(&mut self, reference: &str, staging: &Service) -> Result<PathBuf, Stop> {
        let started = Instant::now();
        let report = self.workdir.join("holdout-report.json");
        let _ = std::fs::remove_file(&report);
        let mut a: Vec<OsString> = vec![
            "holdout".into(),
            "--format".into(),
            "json".into(),
            "--model".into(),
            reference.into(),
            "--registry".into(),
            self.registry.clone().into_os_string(),
            "--endpoint".into(),
            staging.url().into(),
            "--report".into(),
            report.clone().into_os_string(),
        ];
        a.extend(self.manifest_args());
        let pin = match self.production_pin() {
            Ok(pin) => pin,
            Err(p) => {
                self.watch.error(&p.message, &p.hint);
                return Err(self.fail(StageName::Holdout, "refused".into(), started, p.fault));
            }
        };
        if let Some(pin) = pin {
            a.extend([
                "--compare".into(),
                "production".into(),
                "--production-pin".into(),
                pin.into_os_string(),
            ]);
        }
        let judged = Judged {
            stage: StageName::Holdout,
            report: &report,
            started,
            kept: |a| &mut a.holdout_report,
        };
        self.reported_step(
            judged,
            &a,
            |r: &mlops_holdout::Report| r.passed,
            |r: &mlops_holdout::Report| {
                let metrics: Vec<String> = r
                    .metrics
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {:.4} (recorded {:.4})",
                            c.metric,
                            c.observed.unwrap_or(f64::NAN),
                            c.expected.unwrap_or(f64::NAN)
                        )
                    })
                    .collect();
                let against = r.comparison.as_ref().map_or_else(String::new, |c| {
                    let deltas: Vec<String> = c
                        .metrics
                        .iter()
                        .map(|m| format!("{} {:+.4}", m.metric, m.delta))
                        .collect();
                    format!(
                        "; against production's {}: {} ({})",
                        c.incumbent,
                        deltas.join(", "),
                        if c.passed {
                            "no regression"
                        } else {
                            "REGRESSION"
                        }
                    )
                });
                let parity = if r.parity.enabled {
                    format!(
                        "parity {} of {} rows differ",
                        r.parity.mismatches, r.parity.checked
                    )
                } else {
                    "parity not checked".to_owned()
                };
                format!(
                    "{} rows in {} requests, {parity}; {}{against}",
                    r.rows,
                    r.requests,
                    metrics.join(", ")
                )
            },
        )?;
        Ok(report)
    }

    /// Runs `mlops ARGS` (which write `judged.report`) as `judged.stage`, keeps the report
    /// among the run's artifacts when it was written, and passes the stage when the step exited
    /// 0 and the report says `passed`, with `figure` of it (failing it otherwise, with its log).
    fn reported_step<R: serde::de::DeserializeOwned>(
        &mut self,
        judged: Judged<'_>,
        args: &[OsString],
        passed: impl Fn(&R) -> bool,
        figure: impl Fn(&R) -> String,
    ) -> Result<(), Stop> {
        let Judged {
            stage,
            report,
            started,
            kept,
        } = judged;
        let (code, _) = self.step(stage, args)?;
        let doc: Option<R> = std::fs::read(report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if doc.is_some() {
            *kept(&mut self.artifacts) = Some(report.to_owned());
        }
        let figure = doc.as_ref().map_or_else(|| "no report".to_owned(), &figure);
        if code != 0 || !doc.as_ref().is_some_and(&passed) {
            self.show_log(stage);
            let fault = Self::fault_of(code, Fault::Refused);
            return Err(self.fail(stage, figure, started, fault));
        }
        self.passed(stage, figure, started);
        Ok(())
    }

    /// `mlops monitor` of what the staging service captured during the holdout test, against
    /// the baseline training recorded: the holdout set must look like the data the model was
    /// trained on, or the test's evidence is about another population.
    fn monitor(&mut self, reference: &str) -> Result<(), Stop> {
        self.check_interrupted()?;
        let started = Instant::now();
        let report = self.workdir.join("monitor-report.json");
        let _ = std::fs::remove_file(&report);
        let mut a: Vec<OsString> = vec![
            "monitor".into(),
            "--format".into(),
            "json".into(),
            "--model".into(),
            reference.into(),
            "--registry".into(),
            self.registry.clone().into_os_string(),
            "--captured".into(),
            self.capture_dir().into_os_string(),
            "--report".into(),
            report.clone().into_os_string(),
        ];
        a.extend(self.manifest_args());
        let judged = Judged {
            stage: StageName::Monitor,
            report: &report,
            started,
            kept: |a| &mut a.monitor_report,
        };
        self.reported_step(
            judged,
            &a,
            |r: &mlops_artifacts::monitor::Report| !r.drifted,
            |r: &mlops_artifacts::monitor::Report| {
                let largest = r
                    .features
                    .iter()
                    .filter_map(|d| d.psi.map(|p| (p, d.column.as_str())))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                let largest = largest.map_or_else(String::new, |(p, c)| {
                    format!(", largest feature PSI {p:.4} ({c})")
                });
                if r.drifted {
                    format!("{} rows captured: {}", r.read.rows, r.findings.join("; "))
                } else {
                    format!(
                        "{} rows captured from staging: no drift from training{largest}",
                        r.read.rows
                    )
                }
            },
        )
    }

    /// Whether the manifest sets `promotion.no_regression`.
    fn no_regression(&self) -> bool {
        self.m
            .promotion
            .as_ref()
            .is_some_and(|p| !p.no_regression.is_empty())
    }

    /// With `promotion.no_regression`, the file the holdout test reads as production's pin:
    /// the base branch's, copied out: of the local promotion repository, or with `--open-pr` of
    /// the promotion repository on GitHub (absent when production pins nothing yet, which the
    /// test reports).
    fn production_pin(&self) -> Result<Option<PathBuf>, Problem> {
        let Some(promotion) = self.m.promotion.as_ref().filter(|_| self.no_regression()) else {
            return Ok(None);
        };
        let copy = self.workdir.join("production-pin.yaml");
        let _ = std::fs::remove_file(&copy);
        let text = if self.open_pr {
            let (_, repo) = crate::github::promotion(&self.m)?;
            let (rt, gh) = crate::github::connect(self.api_url.as_deref())?;
            rt.block_on(mlops_github::gate::file_at(
                &gh,
                &repo,
                &promotion.pin_file,
                &promotion.base_branch,
            ))
            .map_err(|e| {
                crate::github::failed(
                    &e,
                    "the token must read the promotion repository's contents (production's pin)",
                )
            })?
        } else {
            let dir = self.workdir.join("promotion");
            dir.join(".git")
                .exists()
                .then(|| LocalRepo { dir }.show(&promotion.base_branch, &promotion.pin_file))
                .flatten()
        };
        if let Some(text) = text {
            // Unwritten, the test finds no pin and says production pins nothing.
            mlops_train::write_atomically(&copy, format!("{}\n", text.trim_end()).as_bytes())
                .map_err(|e| {
                    Problem::broken(format!("cannot write {}: {e}", copy.display()), "")
                })?;
        }
        Ok(Some(copy))
    }

    /// The promotion `mlops promote` would prepare for `reference` with `report`.
    fn prepare(&self, reference: &str, report: &Path) -> Result<Prepared, Problem> {
        let registry = crate::train::open_registry(Some(&self.registry), &self.m, &self.manifest)?;
        crate::promote::prepare(crate::promote::Request {
            manifest: &self.m,
            registry,
            model: reference.to_owned(),
            holdout_report: Some(report.to_path_buf()),
            image: None,
            started_by: Vec::new(),
        })
    }

    /// `--open-pr`: the real promotion, as `mlops promote` does it; the pull request then waits
    /// for a human, so the run ends there.
    fn open_pr(&mut self, reference: &str, report: &Path) -> Result<(), Stop> {
        let started = Instant::now();
        let mut a: Vec<OsString> = vec![
            "promote".into(),
            "--format".into(),
            "human".into(),
            "--model".into(),
            reference.into(),
            "--holdout-report".into(),
            report.into(),
            "--registry".into(),
            self.registry.clone().into_os_string(),
        ];
        if let Some(url) = &self.api_url {
            a.extend(["--github-api-url".into(), url.into()]);
        }
        a.extend(self.manifest_args());
        let (code, stdout) = self.step(StageName::Promote, &a)?;
        let line = stdout
            .lines()
            .find(|l| l.starts_with("promote:"))
            .unwrap_or("promote: no answer")
            .trim_start_matches("promote: ")
            .to_owned();
        if code != 0 {
            self.show_log(StageName::Promote);
            return Err(self.fail(
                StageName::Promote,
                line,
                started,
                Self::fault_of(code, Fault::Broken),
            ));
        }
        self.promotion = Some(line.clone());
        self.passed(StageName::Promote, line, started);
        self.skip(
            StageName::Gate,
            "the pull request waits for a human's review; the gate workflow decides on GitHub",
        );
        self.skip(
            StageName::Deploy,
            "after the gate approves the merged pull request",
        );
        Ok(())
    }

    fn promote_locally(
        &mut self,
        reference: &str,
        report: &Path,
    ) -> Result<(Prepared, LocalRepo, Option<Proposal>), Stop> {
        self.check_interrupted()?;
        let started = Instant::now();
        let prepared = match self.prepare(reference, report) {
            Ok(p) => p,
            Err(p) => {
                self.watch.error(&p.message, &p.hint);
                return Err(self.fail(StageName::Promote, "refused".into(), started, p.fault));
            }
        };
        let dir = self.workdir.join("promotion");
        let body_file = self.workdir.join("pull-request.md");
        let proposed = LocalRepo::open_or_init(&dir, &prepared.p.base_branch).and_then(|repo| {
            repo.propose(&prepared, &body_file)
                .map(|proposal| (repo, proposal))
        });
        match proposed {
            Ok((repo, proposal)) => {
                self.artifacts.promotion_repository = Some(dir.clone());
                let figure = match &proposal {
                    Some(p) => {
                        self.artifacts.pull_request = Some(p.body_file.clone());
                        self.promotion = Some(format!(
                            "commit {} on {} in {} (changes {})",
                            p.head,
                            p.branch,
                            dir.display(),
                            prepared.p.pin_file
                        ));
                        format!(
                            "branch {} (commit {}) changes {}{}; body in {}",
                            p.branch,
                            mlops_artifacts::short(&p.head),
                            prepared.p.pin_file,
                            p.replaces
                                .as_ref()
                                .map(|r| format!(" from {r}"))
                                .unwrap_or_default(),
                            p.body_file.display()
                        )
                    }
                    None => format!("production already pins {reference}: nothing to promote"),
                };
                self.passed(StageName::Promote, figure, started);
                Ok((prepared, repo, proposal))
            }
            Err(f) => Err(self.local_failed(StageName::Promote, f, started)),
        }
    }

    fn gate(
        &mut self,
        prepared: &Prepared,
        repo: &LocalRepo,
        proposal: &Proposal,
    ) -> Result<(), Stop> {
        self.check_interrupted()?;
        let started = Instant::now();
        let approvals = prepared.p.required_approvals;
        match repo.gate(prepared, proposal, approvals, self.no_regression()) {
            Ok((decision, stand_ins)) if decision.allowed => {
                self.passed(
                    StageName::Gate,
                    format!(
                        "[{}] {} ({} stand in for GitHub reviews)",
                        decision.rule,
                        decision.reason,
                        stand_ins.join(", ")
                    ),
                    started,
                );
                Ok(())
            }
            Ok((decision, _)) => {
                self.watch.error(
                    &format!("gate [{}]: {}", decision.rule, decision.reason),
                    "",
                );
                Err(self.fail(
                    StageName::Gate,
                    format!("[{}] {}", decision.rule, decision.reason),
                    started,
                    Fault::Refused,
                ))
            }
            Err(f) => Err(self.local_failed(StageName::Gate, f, started)),
        }
    }

    /// Production: merge the approved branch, then serve exactly what the base now pins: the
    /// registry's version must be approved and carry the pinned artifact digest, and the service
    /// must say it serves that artifact.
    fn deploy(
        &mut self,
        prepared: &Prepared,
        repo: &LocalRepo,
        proposal: &Proposal,
    ) -> Result<(), Stop> {
        self.check_interrupted()?;
        let started = Instant::now();
        let pin = match repo.merge(prepared, proposal) {
            Ok(pin) => pin,
            Err(f) => return Err(self.local_failed(StageName::Deploy, f, started)),
        };
        let reference = pin.reference();
        if let Err(p) = crate::deploy::vouch_to_deploy(
            crate::deploy::Env::Production,
            prepared.registry(),
            &pin,
        ) {
            self.watch.error(&p.message, &p.hint);
            let why = format!("the registry does not vouch for {reference} (above)");
            return Err(self.fail(StageName::Deploy, why, started, p.fault));
        }
        let service = match self.serve(StageName::Deploy, &reference) {
            Ok(s) => s,
            Err(message) => {
                self.check_interrupted()?;
                self.show_log(StageName::Deploy);
                self.watch.error(&message, "");
                return Err(self.fail(StageName::Deploy, message, started, Fault::Broken));
            }
        };
        let version = crate::runtime::current_thread()
            .map_err(|p| p.message)
            .and_then(|rt| {
                let http = mlops_holdout::client::Http::new(
                    &service.url(),
                    mlops_holdout::client::Policy::default(),
                )?;
                rt.block_on(http.version_or_why())
            });
        drop(service);
        let verified = version.as_ref().is_ok_and(|v| pin.is_reported_by(v));
        if !verified {
            let saw = match &version {
                Ok(v) => format!(
                    "it reports {} with artifact {}",
                    v.model.as_deref().unwrap_or("no model"),
                    v.artifact_sha256
                ),
                Err(e) => e.clone(),
            };
            let message =
                format!("the production service does not serve the pinned {reference}: {saw}");
            self.watch.error(&message, "");
            return Err(self.fail(StageName::Deploy, message, started, Fault::Broken));
        }
        self.passed(
            StageName::Deploy,
            format!(
                "{} now pins {reference} (merged {}); a production service from the pin reported it on /version, artifact verified",
                prepared.p.base_branch,
                mlops_artifacts::short(&proposal.head)
            ),
            started,
        );
        Ok(())
    }

    /// Writes `run.json` and returns what it records: the run passed, or stopped with `fault`.
    fn finish(&mut self, fault: Option<Fault>) -> record::Run {
        if fault == Some(Fault::Cancelled) {
            let line = format!(
                "mlops run: {}interrupted{}; every service it started is stopped",
                self.supervisor
                    .signal()
                    .map(|s| format!("{s}: "))
                    .unwrap_or_default(),
                self.stages
                    .last()
                    .map(|s| format!(" after {}", s.stage.as_str()))
                    .unwrap_or_default()
            );
            self.watch.notice(&line);
        }
        let run = record::Run {
            version: record::VERSION,
            manifest: self.manifest.clone(),
            workdir: self.workdir.clone(),
            registry: self.registry.clone(),
            model: self.model.clone(),
            promotion: self.promotion.clone(),
            passed: fault.is_none(),
            exit_code: fault.map_or(0, |f| i32::from(f.exit_code())),
            stages: self.stages.clone(),
            seconds: self.stages.iter().map(|s| s.seconds).sum::<f64>(),
            artifacts: self.artifacts.clone(),
        };
        let text = serde_json::to_string_pretty(&run).unwrap_or_default() + "\n";
        if let Err(e) =
            mlops_train::write_atomically(&self.workdir.join("run.json"), text.as_bytes())
        {
            self.watch
                .notice(&format!("warning: cannot write run.json: {e}"));
        }
        run
    }
}

/// Files under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

/// A stage judged by the report its step writes: which stage, the report's path, when the
/// stage started, and where the run's artifacts keep the report.
struct Judged<'a> {
    stage: StageName,
    report: &'a Path,
    started: Instant,
    kept: fn(&mut Artifacts) -> &mut Option<PathBuf>,
}
