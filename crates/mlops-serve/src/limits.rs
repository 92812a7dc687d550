//! What a client may ask of the service and hold of it.

use std::time::Duration;

/// The service's limits: on one request's size, and on the time and the resources a client
/// may hold. Every one is a `mlops serve` option.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most rows in one request (413 above it).
    pub max_rows: usize,
    /// The time a client has to send a whole request head, counted from the connection's
    /// opening or, on a kept-alive connection, from the previous answer (so it is also how long
    /// an idle connection is kept); the connection is closed after it.
    pub header_timeout: Duration,
    /// The time a client has to send the body once its head has arrived (408 after it); and the
    /// longest a large request waits for a prediction thread (503 after it).
    pub request_timeout: Duration,
    /// How long the service waits on a client that reads none of its answer before it closes the
    /// connection.
    pub idle_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Large requests (over 128 KiB) predicted at once, each on a thread of its own.
    pub prediction_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 6 * 1024 * 1024,
            max_rows: 100_000,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            prediction_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}
