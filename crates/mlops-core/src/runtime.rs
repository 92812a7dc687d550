//! The async runtimes the flows run on, and the signals that cancel them.

use crate::Problem;

/// The multi-threaded runtime of a service (serve).
pub fn multi_thread() -> Result<tokio::runtime::Runtime, Problem> {
    start(tokio::runtime::Builder::new_multi_thread())
}

/// The single-threaded runtime of a client (holdout, the AWS and GitHub calls): on a small
/// machine the server under test keeps the cores.
pub fn current_thread() -> Result<tokio::runtime::Runtime, Problem> {
    start(tokio::runtime::Builder::new_current_thread())
}

fn start(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Problem> {
    builder
        .enable_all()
        .build()
        .map_err(|e| Problem::broken(format!("cannot start the async runtime: {e}"), ""))
}

/// Waits for SIGINT or SIGTERM and says which arrived (never, where they cannot be watched).
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
