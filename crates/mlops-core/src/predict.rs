//! `mlops predict`: offline (batch) scoring of a file with a registered model. The input (a file,
//! or an `s3://` object downloaded first) is streamed through [`mlops_batch::score`] into a
//! temporary file beside the output (in a scratch directory for `s3://`); the finished file's
//! rows are counted back and must equal the input's, and only then is it renamed into place or
//! uploaded. A failure leaves no output and no partial file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mlops_batch::{Layout, Options, Writer};
use mlops_data::data::Format;
use mlops_manifest::model::DataFormat;
use mlops_registry::Registry;
use serde::Serialize;

use crate::{Problem, Progress};

/// What to score, with what, and where the scores go.
#[derive(Debug)]
pub struct Request<'a> {
    /// The registered model: NAME@VERSION, NAME@latest or NAME@approved.
    pub model: &'a str,
    pub registry: &'a Registry,
    /// The artifact digest the model must have (a pin's): anything else is refused.
    pub artifact_sha256: Option<String>,
    /// A file, or an `s3://` object.
    pub input: String,
    /// The input's format, when its name does not say it.
    pub input_format: Option<DataFormat>,
    /// A file, or an `s3://` object.
    pub output: String,
    /// The output's format, when its name does not say it.
    pub output_format: Option<DataFormat>,
    /// The input column kept beside each prediction; rows are numbered without it.
    pub id_column: Option<String>,
    /// Replace an existing output.
    pub overwrite: bool,
    /// How a local run cuts the work.
    pub options: Options,
    /// Where the scoring runs.
    pub backend: Backend,
}

/// Where the scoring runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// In this process, with [`Options`].
    Local,
    /// As a SageMaker Batch Transform job on the model's serving image.
    SageMaker(Transform),
}

/// A SageMaker Batch Transform's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// The serving image by digest, when the model's card names none.
    pub image: Option<String>,
    /// The role the SageMaker model runs as.
    pub role_arn: Option<String>,
    /// The `s3://` prefix the job's rows and answers go under, a folder per job.
    pub prefix: String,
    pub instance_type: String,
    pub instance_count: i32,
    /// The largest request to the container, in MB.
    pub max_payload_mb: i32,
    /// Requests in flight per instance.
    pub max_concurrent: i32,
    /// The job's name; derived from what it scores and how when absent.
    pub job_name: Option<String>,
    /// The KMS key for the answers and the instances' volumes; absent: the defaults.
    pub kms_key: Option<String>,
    pub poll: mlops_aws::Poll,
}

/// What was scored: the `--format json` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predicted {
    /// The registered version, `NAME@VERSION`.
    pub model: String,
    pub artifact_sha256: String,
    pub input: String,
    pub input_sha256: String,
    pub output: String,
    pub output_format: Format,
    /// Rows in the input, equal to the rows in the output (checked on the written file).
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// The process's peak resident memory, in bytes (Linux), for sizing a batch job: it does not
    /// grow with the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// The SageMaker Batch Transform job that scored it (`--backend sagemaker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform_job: Option<String>,
}

/// Scores `req.input` into `req.output`. SIGINT or SIGTERM stops the scoring at the next row
/// (and a SageMaker job): the staged file is removed, nothing is put in place, and the problem
/// is `Cancelled`.
pub fn predict(req: &Request<'_>, progress: &mut dyn Progress) -> Result<Predicted, Problem> {
    let cancel = Arc::new(AtomicBool::new(false));
    let watch = Watch::start(Arc::clone(&cancel))?;
    let predicted = match &req.backend {
        Backend::Local => run(req, &cancel, progress),
        Backend::SageMaker(t) => crate::transform::run(req, t, &cancel, progress),
    };
    match (watch.stop(), predicted) {
        // What was stopped, when more than this process's work was.
        (Some(signal), Err(p)) if p.fault == crate::Fault::Cancelled && p.message != "stopped" => {
            Err(Problem::cancelled(
                format!("{signal}: {}", p.message),
                p.hint,
            ))
        }
        (Some(signal), _) => Err(Problem::cancelled(
            format!(
                "{signal}: stopped scoring {}; nothing was written",
                req.input
            ),
            "",
        )),
        (None, predicted) => predicted,
    }
}

/// A thread that sets `cancel` on SIGINT or SIGTERM, until stopped.
struct Watch {
    done: Option<tokio::sync::oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<Option<&'static str>>,
}

impl Watch {
    fn start(cancel: Arc<AtomicBool>) -> Result<Watch, Problem> {
        let rt = crate::runtime::current_thread()?;
        let (done, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    signal = crate::runtime::interrupted() => {
                        cancel.store(true, Ordering::Relaxed);
                        Some(signal)
                    }
                    _ = stopped => None,
                }
            })
        });
        Ok(Watch {
            done: Some(done),
            thread,
        })
    }

    /// Stops watching: the signal that arrived, if one did.
    fn stop(mut self) -> Option<&'static str> {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        self.thread.join().ok().flatten()
    }
}

fn run(
    req: &Request<'_>,
    cancel: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<Predicted, Problem> {
    let started = Instant::now();
    // The checks that need no model first: loading one reads and hashes its artifact.
    let output_format = format_of(&req.output, req.output_format)?;
    let input_format = format_of(&req.input, req.input_format)?;
    refuse_to_clobber(req)?;
    let (loaded, _card) = crate::serve::from_registry(req.model, req.registry)?;
    check_digest(
        req,
        loaded.identity.model.as_deref().unwrap_or(req.model),
        &loaded.identity.artifact_sha256,
    )?;
    let predictor = &loaded.predictor;
    let signature = &predictor.bundle.signature;
    let layout = Layout::new(req.id_column.as_deref(), signature.classes.as_deref())
        .map_err(|e| Problem::input(e, "name another --id-column"))?;
    let scratch = tempfile::tempdir()
        .map_err(|e| Problem::broken(format!("cannot make a temporary directory: {e}"), ""))?;
    let input_path = fetch_input(&req.input, scratch.path(), progress)?;
    let input = mlops_batch::Input {
        path: &input_path,
        shown: &req.input,
        format: input_format,
        id_column: req.id_column.as_deref(),
    };
    let scored = write_whole(
        req,
        output_format,
        &layout,
        scratch.path(),
        cancel,
        |writer| {
            let scored = mlops_batch::score(
                predictor,
                input,
                &layout,
                output_format,
                writer,
                req.options,
                cancel,
            )
            .map_err(|f| failure(f, &req.output))?;
            if scored.rows != scored.input.rows {
                return Err(miscounted(req, scored.rows, scored.input.rows));
            }
            let rows = scored.input.rows;
            Ok((scored, rows))
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let model = loaded
        .identity
        .model
        .clone()
        .unwrap_or_else(|| req.model.to_owned());
    progress.step(&format!(
        "scored {} rows of {} with {model} into {} ({seconds:.2} s)",
        scored.input.rows, req.input, req.output
    ));
    Ok(Predicted {
        model,
        artifact_sha256: loaded.identity.artifact_sha256.clone(),
        input: req.input.clone(),
        input_sha256: scored.input.sha256,
        output: req.output.clone(),
        output_format,
        rows: scored.input.rows,
        seconds,
        rows_per_second: scored.input.rows as f64 / seconds.max(1e-9),
        peak_rss_bytes: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| peak_rss(&s)),
        transform_job: None,
    })
}

/// Writes the output whole: staged beside it (in `scratch` for `s3://`), filled by `fill` (which
/// returns what it made and the rows the output must hold), its rows counted back from the
/// finished file (the check users of Batch Transform run by hand), and only then put in place.
pub(crate) fn write_whole<T>(
    req: &Request<'_>,
    format: Format,
    layout: &Layout,
    scratch: &Path,
    cancel: &AtomicBool,
    fill: impl FnOnce(&mut Writer) -> Result<(T, u64), Problem>,
) -> Result<T, Problem> {
    let staged = crate::staged::stage(&req.output, scratch, ".mlops-predict-")?;
    let file = staged
        .reopen()
        .map_err(|e| Problem::broken(format!("{}: {e}", staged.path().display()), ""))?;
    let mut writer = Writer::new(file, format, layout)
        .map_err(|e| Problem::broken(format!("cannot start {}: {e}", req.output), ""))?;
    let (made, rows) = fill(&mut writer)?;
    writer
        .finish()
        .map_err(|e| Problem::broken(format!("cannot write {}: {e}", req.output), ""))?;
    let written = mlops_batch::rows_in(staged.path(), format)
        .map_err(|e| Problem::broken(format!("cannot read back {}: {e}", req.output), ""))?;
    if written != rows {
        return Err(miscounted(req, written, rows));
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Problem::cancelled("stopped", ""));
    }
    crate::staged::put(staged, &req.output, req.overwrite)?;
    Ok(made)
}

/// An output whose row count is not the input's: a bug of ours, never written.
fn miscounted(req: &Request<'_>, written: u64, rows: u64) -> Problem {
    Problem::broken(
        format!(
            "the output has {written} rows for {rows} input rows; nothing was written to {}",
            req.output
        ),
        "this is a bug in mlops: please report it with the input's format",
    )
}

/// The pin file at `path` (production's, as `mlops promote` writes it): what `--pin` scores.
pub fn read_pin(path: &Path) -> Result<mlops_github::pin::Pin, Problem> {
    crate::deploy::read_pin(path, "production")
}

/// Refuses a loaded artifact other than the one `req` names by digest.
pub(crate) fn check_digest(
    req: &Request<'_>,
    reference: &str,
    sha256: &str,
) -> Result<(), Problem> {
    match &req.artifact_sha256 {
        Some(expected) if expected != sha256 => Err(Problem::refused(
            format!(
                "the pin names the artifact sha256:{expected}, but the registry's {reference} is \
                 sha256:{sha256}; nothing was scored"
            ),
            "the registry was changed after the promotion: promote the version again",
        )),
        _ => Ok(()),
    }
}

/// The problem a scoring failure is.
pub(crate) fn failure(f: mlops_batch::Failure, output: &str) -> Problem {
    match f {
        mlops_batch::Failure::Input(e) => Problem::input(e.to_string(), e.hint),
        mlops_batch::Failure::Model(m) => Problem::broken(
            format!("the model could not predict: {m}"),
            "the registered artifact may be damaged; train the model again",
        ),
        mlops_batch::Failure::Cancelled => Problem::cancelled("stopped", ""),
        mlops_batch::Failure::Output(m) => Problem::broken(
            format!("cannot write {output}: {m}"),
            "check the free space and permissions where the output goes",
        ),
    }
}

/// `VmHWM` (the peak resident set) of a `/proc/PID/status` text, in bytes.
fn peak_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The format `declared`, else the one `location`'s name says.
pub(crate) fn format_of(location: &str, declared: Option<DataFormat>) -> Result<Format, Problem> {
    let name = location.rsplit('/').next().unwrap_or(location);
    Format::of(Path::new(name), declared).map_err(|e| {
        Problem::input(
            format!("{location}: {}", e.message),
            "name it .csv, .jsonl or .parquet, or pass --input-format / --output-format",
        )
    })
}

/// An existing output is kept unless `--overwrite` says otherwise.
pub(crate) fn refuse_to_clobber(req: &Request<'_>) -> Result<(), Problem> {
    if req.overwrite {
        return Ok(());
    }
    let exists = if req.output.starts_with("s3://") {
        let uri = mlops_aws::S3Uri::parse(&req.output)?;
        let rt = crate::runtime::current_thread()?;
        rt.block_on(async {
            let s3 = mlops_aws::S3::from_env().await;
            s3.exists(&uri).await.map_err(Problem::from)
        })?
    } else {
        Path::new(&req.output).exists()
    };
    if exists {
        return Err(Problem::input(
            format!("{} already exists", req.output),
            "pass --overwrite to replace it, or choose another --output",
        ));
    }
    Ok(())
}

/// The input as a local file: `input` itself, or the `s3://` object downloaded into `scratch`.
pub(crate) fn fetch_input(
    input: &str,
    scratch: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf, Problem> {
    if !input.starts_with("s3://") {
        return Ok(PathBuf::from(input));
    }
    let uri = mlops_aws::S3Uri::parse(input)?;
    let local = scratch.join(format!("input-{}", uri.file_name()));
    let rt = crate::runtime::current_thread()?;
    let bytes = rt.block_on(async {
        let s3 = mlops_aws::S3::from_env().await;
        s3.download(&uri, &local).await.map_err(Problem::from)
    })?;
    progress.step(&format!("downloaded {input} ({bytes} bytes)"));
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_from_proc_status() {
        let status = "Name:\tmlops\nVmPeak:\t  999 kB\nVmHWM:\t   37200 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(peak_rss(status), Some(37_200 * 1024));
        assert_eq!(peak_rss("VmRSS:\t100 kB\n"), None);
        assert_eq!(peak_rss("VmHWM:\tlots\n"), None);
    }

    #[test]
    fn formats_come_from_the_flag_else_the_name() {
        assert_eq!(
            format_of("s3://b/k/x.parquet", None).ok(),
            Some(Format::Parquet)
        );
        assert_eq!(
            format_of("out.txt", Some(DataFormat::Jsonl)).ok(),
            Some(Format::Jsonl)
        );
        let e = format_of("out.txt", None).expect_err("no format");
        assert!(e.message.starts_with("out.txt:"), "{e:?}");
        assert!(e.hint.contains("--output-format"), "{e:?}");
    }
}
