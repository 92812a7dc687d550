//! Request counters and the latency histogram, in Prometheus' text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::server::Identity;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// (route, status) -> requests.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    rows: AtomicU64,
    /// Invocations by latency bucket (the last one is +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_micros: AtomicU64,
    /// Connections answered 503 and closed because as many as `--max-connections` were open.
    refused: AtomicU64,
}

/// The route label: the known paths, everything else as "other" (a scanner must not grow the
/// label set without bound).
pub(crate) fn route(path: &str) -> &'static str {
    match path {
        "/ping" => "/ping",
        "/invocations" => "/invocations",
        "/version" => "/version",
        "/metrics" => "/metrics",
        p if p.starts_with("/v2/models/") && p.ends_with("/infer") => "/v2/infer",
        p if p == "/v2" || p.starts_with("/v2/") => "/v2",
        _ => "other",
    }
}

impl Stats {
    /// One answered request on `route` (a label of [`route`]).
    pub(crate) fn record(&self, route: &'static str, status: u16, rows: usize, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route, status)).or_default() += 1;
        }
        if route == "/invocations" || route == "/v2/infer" {
            self.rows.fetch_add(rows as u64, Ordering::Relaxed);
            let secs = elapsed.as_secs_f64();
            // The first bucket the time fits, else the last one (+Inf).
            let bucket = BUCKETS
                .iter()
                .zip(&self.buckets)
                .find(|(b, _)| secs <= **b)
                .map(|(_, n)| n)
                .or_else(|| self.buckets.last());
            if let Some(n) = bucket {
                n.fetch_add(1, Ordering::Relaxed);
            }
            self.latency_micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, model: &str, identity: &Identity) -> String {
        let mut out = String::new();
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        family(
            &mut out,
            "mlops_model_info",
            "gauge",
            "The model this service serves.",
        );
        let _ = writeln!(
            out,
            "mlops_model_info{{model=\"{}\",artifact_sha256=\"{}\"}} 1",
            label(model),
            label(&identity.artifact_sha256)
        );
        family(
            &mut out,
            "mlops_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "mlops_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "mlops_rows_predicted_total",
            "counter",
            "Rows answered by /invocations and /v2/models/.../infer.",
        );
        let _ = writeln!(
            out,
            "mlops_rows_predicted_total {}",
            self.rows.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "mlops_invocation_seconds",
            "histogram",
            "Time to answer /invocations and /v2/models/.../infer, body read to response.",
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "mlops_invocation_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets.last().map_or(0, |n| n.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "mlops_invocation_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "mlops_invocation_seconds_sum {}",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "mlops_invocation_seconds_count {cumulative}");
        family(
            &mut out,
            "mlops_connections_refused_total",
            "counter",
            "Connections answered 503 and closed: as many as --max-connections were open.",
        );
        let _ = writeln!(
            out,
            "mlops_connections_refused_total {}",
            self.refused.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let s = Stats::default();
        s.record(route("/invocations"), 200, 256, Duration::from_millis(3));
        s.record(route("/invocations"), 400, 0, Duration::from_micros(200));
        s.record(
            route("/v2/models/m/infer"),
            200,
            4,
            Duration::from_millis(1),
        );
        s.record(route("/v2/health/ready"), 200, 0, Duration::from_micros(50));
        s.record(route("/ping"), 200, 0, Duration::from_micros(10));
        s.record(route("/wp-admin"), 404, 0, Duration::from_micros(10));
        s.refused();
        let id = Identity {
            artifact_sha256: "ab".into(),
            ..Identity::default()
        };
        let text = s.render("digits@1", &id);
        assert!(text.contains("mlops_model_info{model=\"digits@1\",artifact_sha256=\"ab\"} 1"));
        assert!(text.contains("mlops_requests_total{route=\"/invocations\",status=\"200\"} 1"));
        assert!(text.contains("mlops_requests_total{route=\"/v2/infer\",status=\"200\"} 1"));
        assert!(text.contains("mlops_requests_total{route=\"/v2\",status=\"200\"} 1"));
        assert!(text.contains("mlops_requests_total{route=\"other\",status=\"404\"} 1"));
        assert!(text.contains("mlops_rows_predicted_total 260"));
        assert!(text.contains("mlops_invocation_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("mlops_invocation_seconds_bucket{le=\"0.005\"} 3"));
        assert!(text.contains("mlops_invocation_seconds_count 3"));
        assert!(text.contains("mlops_connections_refused_total 1"));
    }
}
