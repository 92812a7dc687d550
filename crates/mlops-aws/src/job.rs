//! Waiting for a SageMaker job to end, and stopping one: the same loops for training and
//! transform jobs, over a describe call and a stop call of each kind.
//!
//! Waiting polls with [`Poll`]'s backoff and jitter (back to the first wait whenever the job
//! changes) and rides out throttling and 5xx answers for `poll.failures` polls in a row.
//! Stopping asks until SageMaker acknowledges, then polls until the job is `Stopping` or over,
//! for at most a given patience; a job that could not be stopped is an error saying how to stop
//! it by hand, since it may still be running and billing.

use std::future::Future;
use std::time::Duration;

use crate::{AwsError, Kind, Poll};

/// A kind of SageMaker job, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobKind {
    /// `training job`, `transform job`.
    pub noun: &'static str,
    /// The AWS CLI's stop command and its name flag: `stop-training-job --training-job-name`.
    pub stop_command: &'static str,
}

/// What the loops need of a described job.
pub(crate) trait Described {
    /// `InProgress`, `Completed`, `Failed`, `Stopping` or `Stopped`.
    fn status(&self) -> &str;

    /// The job will not change any more.
    fn is_over(&self) -> bool {
        matches!(self.status(), "Completed" | "Failed" | "Stopped")
    }
}

/// Polls `describe` until the job is over; `on_change` sees every state `changed` tells from
/// the one before (and the first).
pub(crate) async fn wait<S, D, F>(
    kind: JobKind,
    name: &str,
    poll: Poll,
    mut describe: D,
    changed: impl Fn(&S, &S) -> bool,
    mut on_change: impl FnMut(&S),
) -> Result<S, AwsError>
where
    S: Described,
    D: FnMut() -> F,
    F: Future<Output = Result<Option<S>, AwsError>>,
{
    let mut last: Option<S> = None;
    let mut n = 0u32;
    let mut failures = 0u32;
    loop {
        match describe().await {
            Ok(Some(state)) => {
                failures = 0;
                if last.as_ref().is_none_or(|l| changed(l, &state)) {
                    on_change(&state);
                    n = 0;
                }
                if state.is_over() {
                    return Ok(state);
                }
                last = Some(state);
            }
            Ok(None) => {
                return Err(AwsError {
                    message: format!("the {} `{name}` disappeared while waiting", kind.noun),
                    hint: "check the account and region (AWS_REGION)".to_owned(),
                    kind: Kind::Missing,
                });
            }
            Err(e) if e.kind == Kind::Transient && failures < poll.failures => {
                failures += 1;
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(poll.delay(n)).await;
        n = n.saturating_add(1);
    }
}

/// Asks SageMaker to stop the job (`ask`), then polls `describe` until it is `Stopping` or over
/// (at most `patience`). A job already over is left as it is; one that does not exist is
/// `Kind::Missing`.
pub(crate) async fn stop<S, A, AF, D, DF>(
    kind: JobKind,
    name: &str,
    poll: Poll,
    patience: Duration,
    mut ask: A,
    mut describe: D,
) -> Result<S, AwsError>
where
    S: Described,
    A: FnMut() -> AF,
    AF: Future<Output = Result<(), AwsError>>,
    D: FnMut() -> DF,
    DF: Future<Output = Result<Option<S>, AwsError>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut n = 0u32;
    let mut asked = false;
    let mut last_error: Option<AwsError> = None;
    loop {
        if !asked {
            match ask().await {
                Ok(()) => asked = true,
                Err(err) if err.kind == Kind::Missing => return Err(err),
                Err(err) => last_error = Some(err),
            }
        }
        match describe().await {
            Ok(Some(state)) if state.is_over() || (asked && state.status() == "Stopping") => {
                return Ok(state);
            }
            Ok(None) => {
                return Err(AwsError {
                    message: format!("the {} `{name}` does not exist", kind.noun),
                    hint: String::new(),
                    kind: Kind::Missing,
                });
            }
            Ok(Some(_)) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            let mut err = last_error.unwrap_or_else(|| AwsError {
                message: format!("the {} `{name}` did not stop in time", kind.noun),
                hint: String::new(),
                kind: Kind::Other,
            });
            err.message = format!("could not stop the {} `{name}`: {}", kind.noun, err.message);
            err.hint = format!(
                "it may still be running and billing: stop it with `aws sagemaker {} {name}` or \
                 in the SageMaker console",
                kind.stop_command
            );
            return Err(err);
        }
        tokio::time::sleep(poll.delay(n)).await;
        n = n.saturating_add(1);
    }
}
