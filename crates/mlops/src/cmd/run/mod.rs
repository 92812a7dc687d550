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
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use self::local::{LocalRepo, Proposal};
use self::supervise::Supervisor;
use super::error;
use mlops_core::promote::Prepared;

use crate::cli::{Format, GithubArgs, RunArgs};
use crate::exit::Exit;

/// The format of `run.json`.
const RUN_FORMAT: u32 = 1;

/// How long a service may take to start listening.
const SERVICE_START: Duration = Duration::from_secs(120);

/// A stage's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
struct Stage {
    stage: &'static str,
    result: Outcome,
    /// The stage's key figure, in a few words.
    figure: String,
    seconds: f64,
}

/// Files a reader of the run wants, by name.
#[derive(Debug, Default, Serialize)]
struct Artifacts {
    rendered: Option<PathBuf>,
    model_card: Option<PathBuf>,
    holdout_report: Option<PathBuf>,
    promotion_repository: Option<PathBuf>,
    pull_request: Option<PathBuf>,
    logs: PathBuf,
}

/// The run: its places, its stages so far, the processes it started.
struct Run {
    exe: PathBuf,
    manifest: PathBuf,
    workdir: PathBuf,
    registry: PathBuf,
    logs: PathBuf,
    format: Format,
    stages: Vec<Stage>,
    artifacts: Artifacts,
    model: Option<String>,
    /// The promotion it made: the local commit and branch, or the pull request's URL.
    promotion: Option<String>,
    supervisor: Supervisor,
}

/// A failed stage's exit code (its message is already shown).
struct Stop(Exit);

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

pub(crate) fn run(args: &RunArgs, format: Format) -> Exit {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            error(&format!("cannot find this program's path: {e}"), "");
            return Exit::Runtime;
        }
    };
    // Before anything runs: a run that trains for minutes must not fail at its end for this.
    if args.open_pr && super::github::token().is_none() {
        error(
            "--open-pr needs a token",
            "set GITHUB_TOKEN (or MLOPS_GITHUB_TOKEN) to a token that may open pull requests in the promotion repository, or drop --open-pr to prepare the pull request locally",
        );
        return Exit::Usage;
    }
    // The manifest's registry and directory are needed before the validate stage says more.
    let (m, _) = match super::valid_manifest(&args.manifest, format, "nothing run") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let here = args.manifest.parent().unwrap_or(Path::new("."));
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| here.join(".mlops").join("run"));
    let registry = match &args.registry {
        Some(r) => r.clone(),
        None if m.registry.path.starts_with("s3://") => workdir.join("registry"),
        None => here.join(&m.registry.path),
    };
    let logs = workdir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        error(
            &format!("cannot create the work dir {}: {e}", workdir.display()),
            "pass a writable directory with --workdir",
        );
        return Exit::Usage;
    }
    let mut r = Run {
        exe,
        manifest: args.manifest.clone(),
        workdir: workdir.clone(),
        registry,
        logs: logs.clone(),
        format,
        stages: Vec::new(),
        artifacts: Artifacts {
            logs,
            ..Artifacts::default()
        },
        model: None,
        promotion: None,
        supervisor: Supervisor::install(),
    };
    eprintln!(
        "mlops run: {} (work dir {}, registry {})",
        r.manifest.display(),
        r.workdir.display(),
        r.registry.display()
    );
    if m.registry.path.starts_with("s3://") && args.registry.is_none() {
        eprintln!(
            "note: the manifest's registry is in S3; this run registers in {} (no cloud account needed)",
            r.registry.display()
        );
    }
    let code = match r.stages_all(args) {
        Ok(()) => Exit::Ok,
        Err(Stop(code)) => code,
    };
    let code = if r.supervisor.interrupted() {
        Exit::Cancelled
    } else {
        code
    };
    r.finish(code)
}

impl Run {
    fn stages_all(&mut self, args: &RunArgs) -> Result<(), Stop> {
        self.validate()?;
        self.render()?;
        let reference = self.train()?;
        let report = {
            // The staging service lives for the holdout test only; dropping it stops it.
            let staging = self.staging(&reference)?;
            self.holdout(&reference, &staging)?
        };
        if args.open_pr {
            return self.open_pr(&reference, &report, &args.github);
        }
        let (prepared, repo, proposal) = self.promote_locally(&reference, &report)?;
        let Some(proposal) = proposal else {
            self.skip(
                "gate",
                "no pull request: production already pins this version",
            );
            self.skip("deploy", "production already serves this version");
            return Ok(());
        };
        self.gate(&prepared, &repo, &proposal)?;
        self.deploy(&prepared, &repo, &proposal)
    }

    /// On a terminal, says which stage is running (the stage's line replaces it when it ends).
    fn running(&self, stage: &str) {
        if std::io::stderr().is_terminal() {
            eprint!(
                "  ..   {stage:<9} running (log: {})\r",
                self.logs.join(format!("{stage}.log")).display()
            );
        }
    }

    fn record(&mut self, stage: &'static str, result: Outcome, figure: String, seconds: f64) {
        let mark = match result {
            Outcome::Ok => "ok  ",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "skip",
        };
        // Clears a "running" line first.
        let clear = if std::io::stderr().is_terminal() {
            "\x1b[2K"
        } else {
            ""
        };
        eprintln!("{clear}  {mark} {stage:<9} {figure}  ({seconds:.2} s)");
        self.stages.push(Stage {
            stage,
            result,
            figure,
            seconds,
        });
    }

    fn skip(&mut self, stage: &'static str, why: &str) {
        self.record(stage, Outcome::Skipped, why.to_owned(), 0.0);
    }

    /// Records a failed stage and stops the run with `code`.
    fn fail(&mut self, stage: &'static str, figure: String, started: Instant, code: Exit) -> Stop {
        self.record(
            stage,
            Outcome::Failed,
            figure,
            started.elapsed().as_secs_f64(),
        );
        Stop(code)
    }

    /// Shows a failure of the local promotion, gate or deploy and stops the run: exit 1 when a
    /// rule refused, 3 when something broke.
    fn local_failed(&mut self, stage: &'static str, f: local::Failed, started: Instant) -> Stop {
        error(&f.message, &f.hint);
        let code = if f.refused { Exit::No } else { Exit::Runtime };
        self.fail(stage, f.message, started, code)
    }

    fn check_interrupted(&self) -> Result<(), Stop> {
        if self.supervisor.interrupted() {
            Err(Stop(Exit::Cancelled))
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
    fn step(&mut self, stage: &'static str, args: &[OsString]) -> Result<(i32, String), Stop> {
        self.check_interrupted()?;
        self.running(stage);
        let out_path = self.logs.join(format!("{stage}.out"));
        let log_path = self.logs.join(format!("{stage}.log"));
        let files = std::fs::File::create(&out_path)
            .and_then(|out| std::fs::File::create(&log_path).map(|log| (out, log)));
        let (out, log) = match files {
            Ok(f) => f,
            Err(e) => {
                error(&format!("cannot write in {}: {e}", self.logs.display()), "");
                return Err(Stop(Exit::Runtime));
            }
        };
        let mut c = self.mlops(args);
        c.stdout(out).stderr(log);
        let mut child = match c.spawn() {
            Ok(child) => child,
            Err(e) => {
                error(&format!("cannot start {}: {e}", self.exe.display()), "");
                return Err(Stop(Exit::Runtime));
            }
        };
        self.supervisor.adopt(&child);
        let status = self.supervisor.wait(&mut child);
        self.check_interrupted()?;
        let code = match status {
            Ok(s) => s.code().unwrap_or(Exit::Runtime as i32),
            Err(e) => {
                error(&format!("lost the {stage} process: {e}"), "");
                return Err(Stop(Exit::Runtime));
            }
        };
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        Ok((code, stdout))
    }

    /// Shows the end of a failed stage's log (its own error message and hint).
    fn show_log(&self, stage: &str) {
        let text = std::fs::read_to_string(self.logs.join(format!("{stage}.log")))
            .unwrap_or_default()
            + &std::fs::read_to_string(self.logs.join(format!("{stage}.out"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        eprintln!(
            "--- {stage} (the whole log: {}) ---",
            self.logs.join(format!("{stage}.log")).display()
        );
        for line in &lines[from..] {
            eprintln!("{line}");
        }
        eprintln!("---");
    }

    fn exit_of(code: i32) -> Exit {
        match code {
            0 => Exit::Ok,
            1 => Exit::No,
            2 => Exit::Usage,
            130 => Exit::Cancelled,
            _ => Exit::Runtime,
        }
    }

    fn manifest_args(&self) -> Vec<OsString> {
        vec!["--manifest".into(), self.manifest.clone().into_os_string()]
    }

    /// Runs a stage whose subcommand's exit code is its whole answer; when it failed, shows its
    /// log and stops the run with its code. When the stage started.
    fn checked_step(
        &mut self,
        stage: &'static str,
        args: &[OsString],
        failure: &str,
    ) -> Result<Instant, Stop> {
        let started = Instant::now();
        let (code, _) = self.step(stage, args)?;
        if code != 0 {
            self.show_log(stage);
            return Err(self.fail(stage, failure.to_owned(), started, Self::exit_of(code)));
        }
        Ok(started)
    }

    /// Records a stage that passed, timed from `started`.
    fn passed(&mut self, stage: &'static str, figure: String, started: Instant) {
        self.record(stage, Outcome::Ok, figure, started.elapsed().as_secs_f64());
    }

    fn validate(&mut self) -> Result<(), Stop> {
        let mut a: Vec<OsString> = vec!["validate".into(), "--format".into(), "human".into()];
        a.extend(self.manifest_args());
        let started = self.checked_step("validate", &a, "the manifest is invalid")?;
        self.passed("validate", "the manifest is valid".into(), started);
        Ok(())
    }

    fn render(&mut self) -> Result<(), Stop> {
        let out = self.workdir.join("rendered");
        let mut a: Vec<OsString> = vec!["render".into(), "--format".into(), "human".into()];
        a.extend(self.manifest_args());
        a.extend(["--out".into(), out.clone().into_os_string()]);
        let started = self.checked_step("render", &a, "rendering failed")?;
        let files = count_files(&out);
        self.artifacts.rendered = Some(out.clone());
        // `mlops render` withholds the GitHub loop for a registry that is a directory.
        let withheld = if out.join(".github/workflows/mlops-release.yml").exists() {
            ""
        } else {
            " (no GitHub release loop: the registry is a directory, which only this machine has; `registry.path: s3://...` renders it)"
        };
        self.passed(
            "render",
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
        let (code, stdout) = self.step("train", &a)?;
        let wall = started.elapsed().as_secs_f64();
        let doc: Option<Value> = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let Some(doc) = doc.filter(|d| d["model_version"].is_string()) else {
            self.show_log("train");
            let code = if code == 0 {
                Exit::Runtime
            } else {
                Self::exit_of(code)
            };
            return Err(self.fail("train", "training failed".into(), started, code));
        };
        let reference = doc["model_version"].as_str().unwrap_or_default().to_owned();
        let location = PathBuf::from(doc["registry"].as_str().unwrap_or_default());
        let card_path = location.join("card.json");
        let card: Option<mlops_train::card::ModelCard> = std::fs::read(&card_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        self.artifacts.model_card = Some(card_path.clone());
        self.model = Some(reference.clone());
        let trained = doc["seconds"].as_f64().unwrap_or(wall).min(wall);
        self.record(
            "train",
            Outcome::Ok,
            match &card {
                Some(c) => format!(
                    "{} epochs on {} ({}), {} training rows, {:.0} samples/s",
                    c.job.epochs,
                    mlops_manifest::model::spelling(&c.training.compute.device),
                    c.training.compute.backend,
                    c.training.rows.get("train").copied().unwrap_or_default(),
                    doc["samples_per_second"].as_f64().unwrap_or_default()
                ),
                None => format!("no model card at {}", card_path.display()),
            },
            trained,
        );
        let failed = doc["failed_thresholds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let evaluate_started = Instant::now()
            .checked_sub(Duration::from_secs_f64(wall - trained))
            .unwrap_or_else(Instant::now);
        if !failed.is_empty() || code != 0 {
            let why: Vec<String> = failed
                .iter()
                .map(|f| {
                    format!(
                        "{} {:.4} misses {}",
                        f["metric"].as_str().unwrap_or("?"),
                        f["value"].as_f64().unwrap_or_default(),
                        f["bound"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if why.is_empty() {
                self.show_log("train");
            }
            let figure = format!(
                "{}; registered {reference} as {}",
                if why.is_empty() {
                    "failed".to_owned()
                } else {
                    why.join(", ")
                },
                doc["status"].as_str().unwrap_or("?")
            );
            let code = if code == 0 {
                Exit::No
            } else {
                Self::exit_of(code)
            };
            return Err(self.fail("evaluate", figure, evaluate_started, code));
        }
        let thresholds: Vec<String> = card
            .iter()
            .flat_map(|c| &c.thresholds)
            .map(|(metric, bound)| {
                let value = doc["metrics"][metric].as_f64().unwrap_or_default();
                let bound = match (bound.min, bound.max) {
                    (Some(min), _) => format!(">= {min}"),
                    (None, Some(max)) => format!("<= {max}"),
                    (None, None) => String::new(),
                };
                format!("{metric} {value:.4} {bound}")
            })
            .collect();
        self.record(
            "evaluate",
            Outcome::Ok,
            format!(
                "{}; registered {reference} ({})",
                if thresholds.is_empty() {
                    "no thresholds".to_owned()
                } else {
                    thresholds.join(", ")
                },
                doc["status"].as_str().unwrap_or("?")
            ),
            evaluate_started.elapsed().as_secs_f64(),
        );
        Ok(reference)
    }

    /// Starts `mlops serve` for `reference` on a free loopback port and waits until it listens.
    fn serve(&mut self, stage: &'static str, reference: &str) -> Result<Service, String> {
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
        ];
        a.extend(self.manifest_args());
        self.running(stage);
        let log_path = self.logs.join(format!("{stage}.log"));
        let mut log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
        let mut c = self.mlops(&a);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        self.supervisor.adopt(&child);
        let Some(stderr) = child.stderr.take() else {
            self.supervisor.stop(&mut child);
            return Err("the service's output is not readable".into());
        };
        // The service's log goes to its file; the address it prints is handed over.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(addr) = line.split("on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let started = Instant::now();
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr.parse::<SocketAddr>().ok(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            }
            if self.supervisor.interrupted() || started.elapsed() > SERVICE_START {
                break None;
            }
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
        match self.serve("staging", reference) {
            Ok(service) => {
                self.passed(
                    "staging",
                    format!("{reference} served on {}", service.url()),
                    started,
                );
                Ok(service)
            }
            Err(message) => {
                self.check_interrupted()?;
                self.show_log("staging");
                error(&message, "");
                Err(self.fail("staging", message.clone(), started, Exit::Runtime))
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
        let (code, _) = self.step("holdout", &a)?;
        let doc: Option<mlops_holdout::Report> = std::fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if doc.is_some() {
            self.artifacts.holdout_report = Some(report.clone());
        }
        let figure = doc.as_ref().map_or_else(
            || "no report".to_owned(),
            |r| {
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
                format!(
                    "{} rows in {} requests, parity {} of {} rows differ; {}",
                    r.rows,
                    r.requests,
                    r.parity.mismatches,
                    r.parity.checked,
                    metrics.join(", ")
                )
            },
        );
        if code != 0 || !doc.is_some_and(|r| r.passed) {
            self.show_log("holdout");
            let code = if code == 0 {
                Exit::No
            } else {
                Self::exit_of(code)
            };
            return Err(self.fail("holdout", figure, started, code));
        }
        self.passed("holdout", figure, started);
        Ok(report)
    }

    /// The promotion `mlops promote` would prepare for `reference` with `report`.
    fn prepare(&self, reference: &str, report: &Path) -> Result<Prepared, Exit> {
        let (m, _) = super::valid_manifest(&self.manifest, Format::Human, "nothing promoted")?;
        let prepared = mlops_core::train::open_registry(Some(&self.registry), &m, &self.manifest)
            .and_then(|registry| {
                mlops_core::promote::prepare(mlops_core::promote::Request {
                    manifest: &m,
                    registry,
                    model: reference.to_owned(),
                    holdout_report: Some(report.to_path_buf()),
                    image: None,
                    started_by: Vec::new(),
                })
            });
        prepared.map_err(|p| super::failed(&p))
    }

    /// `--open-pr`: the real promotion, as `mlops promote` does it; the pull request then waits
    /// for a human, so the run ends there.
    fn open_pr(&mut self, reference: &str, report: &Path, github: &GithubArgs) -> Result<(), Stop> {
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
        if let Some(url) = &github.github_api_url {
            a.extend(["--github-api-url".into(), url.into()]);
        }
        a.extend(self.manifest_args());
        let (code, stdout) = self.step("promote", &a)?;
        let line = stdout
            .lines()
            .find(|l| l.starts_with("promote:"))
            .unwrap_or("promote: no answer")
            .trim_start_matches("promote: ")
            .to_owned();
        if code != 0 {
            self.show_log("promote");
            return Err(self.fail("promote", line, started, Self::exit_of(code)));
        }
        self.promotion = Some(line.clone());
        self.passed("promote", line, started);
        self.skip(
            "gate",
            "the pull request waits for a human's review; the gate workflow decides on GitHub",
        );
        self.skip("deploy", "after the gate approves the merged pull request");
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
            Err(code) => {
                return Err(self.fail("promote", "refused".into(), started, code));
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
                            &p.head[..p.head.len().min(12)],
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
                self.passed("promote", figure, started);
                Ok((prepared, repo, proposal))
            }
            Err(f) => Err(self.local_failed("promote", f, started)),
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
        match repo.gate(prepared, proposal, approvals) {
            Ok((decision, stand_ins)) if decision.allowed => {
                self.passed(
                    "gate",
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
                error(
                    &format!("gate [{}]: {}", decision.rule, decision.reason),
                    "",
                );
                Err(self.fail(
                    "gate",
                    format!("[{}] {}", decision.rule, decision.reason),
                    started,
                    Exit::No,
                ))
            }
            Err(f) => Err(self.local_failed("gate", f, started)),
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
            Err(f) => return Err(self.local_failed("deploy", f, started)),
        };
        let reference = pin.reference();
        if let Err(p) = mlops_core::deploy::vouch_to_deploy(
            mlops_core::deploy::Env::Production,
            prepared.registry(),
            &pin,
        ) {
            let code = super::failed(&p);
            let why = format!("the registry does not vouch for {reference} (above)");
            return Err(self.fail("deploy", why, started, code));
        }
        let service = match self.serve("deploy", &reference) {
            Ok(s) => s,
            Err(message) => {
                self.check_interrupted()?;
                self.show_log("deploy");
                error(&message, "");
                return Err(self.fail("deploy", message, started, Exit::Runtime));
            }
        };
        let version = super::client_runtime()
            .map_err(|_| "no async runtime".to_owned())
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
            error(&message, "");
            return Err(self.fail("deploy", message, started, Exit::Runtime));
        }
        self.passed(
            "deploy",
            format!(
                "{} now pins {reference} (merged {}); a production service from the pin reported it on /version, artifact verified",
                prepared.p.base_branch,
                &proposal.head[..proposal.head.len().min(12)]
            ),
            started,
        );
        Ok(())
    }

    /// Writes `run.json`, prints the summary (or the JSON), and returns `code`.
    fn finish(&mut self, code: Exit) -> Exit {
        if code == Exit::Cancelled {
            eprintln!(
                "mlops run: interrupted{}; every service it started is stopped",
                self.stages
                    .last()
                    .map(|s| format!(" after {}", s.stage))
                    .unwrap_or_default()
            );
        }
        let doc = json!({
            "version": RUN_FORMAT,
            "manifest": self.manifest,
            "workdir": self.workdir,
            "registry": self.registry,
            "model": self.model,
            "promotion": self.promotion,
            "passed": code == Exit::Ok,
            "exit_code": code as i32,
            "stages": self.stages,
            "seconds": self.stages.iter().map(|s| s.seconds).sum::<f64>(),
            "artifacts": self.artifacts,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        if let Err(e) =
            mlops_train::write_atomically(&self.workdir.join("run.json"), text.as_bytes())
        {
            eprintln!("warning: cannot write run.json: {e}");
        }
        if self.format == Format::Json {
            print!("{text}");
            return code;
        }
        let mut out = String::new();
        out.push_str("\n| stage | result | key figure | time |\n|---|---|---|---:|\n");
        for s in &self.stages {
            let result = match s.result {
                Outcome::Ok => "ok",
                Outcome::Failed => "FAILED",
                Outcome::Skipped => "skipped",
            };
            out.push_str(&format!(
                "| {} | {result} | {} | {:.2} s |\n",
                s.stage,
                s.figure.replace('|', "\\|"),
                s.seconds
            ));
        }
        if let Some(p) = &self.promotion {
            out.push_str(&format!("\npromotion: {p}"));
        }
        let a = &self.artifacts;
        for (what, path) in [
            ("model card", &a.model_card),
            ("holdout report", &a.holdout_report),
            ("pull request body", &a.pull_request),
            ("promotion repository", &a.promotion_repository),
            ("rendered files", &a.rendered),
        ] {
            if let Some(p) = path {
                out.push_str(&format!("\n{what}: {}", p.display()));
            }
        }
        out.push_str(&format!(
            "\nlogs: {}\nrun: {}\n",
            a.logs.display(),
            self.workdir.join("run.json").display()
        ));
        out.push_str(&match code {
            Exit::Ok => "\nmlops run: passed\n".to_owned(),
            c => format!("\nmlops run: stopped (exit {})\n", c as i32),
        });
        print!("{out}");
        code
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
