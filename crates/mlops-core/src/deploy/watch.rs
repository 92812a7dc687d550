//! The soak after a deploy (`environments.ENV.watch`): the service's own figures looked at every
//! `interval_seconds` for `seconds`, and the first breach said.
//!
//! A URL target is judged from its `GET /metrics` (the Prometheus text `mlops serve` writes, or
//! any service exposing the same families): the prediction requests between two looks, those
//! answered 5xx (with the connections refused for want of capacity, which a client sees as
//! 503), and the 99th percentile of their latency read from the histogram's buckets (the bound
//! of the bucket that holds it: the histogram cannot say more). A look with fewer than
//! `min_requests` requests is not judged; its requests are carried into the next look, so a quiet
//! service is judged over a longer window rather than on three requests. A service that stops
//! answering `/metrics` (three looks in a row, the first look, which sets the baseline, included)
//! is a breach too.
//!
//! A SageMaker endpoint is judged from CloudWatch alarms (the two the rendered Terraform creates
//! for it and the manifest's `rollback_alarms`): any in `ALARM` is a breach.

use std::time::{Duration, Instant};

use mlops_holdout::client::Http;
use mlops_manifest::model::Watch;

use crate::Progress;

/// Looks in a row whose `/metrics` failed that end the watch with a breach.
const FAILED_LOOKS: u32 = 3;

/// What one look at `/metrics` read: counters since the service started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Prediction requests (`/invocations`), whatever their status, and refused connections.
    pub requests: u64,
    /// Those answered with a 5xx status, and refused connections.
    pub errors: u64,
    /// The latency histogram: cumulative counts by upper bound in seconds, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

/// The requests between two looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub requests: u64,
    pub errors: u64,
    /// The bound of the histogram bucket holding the 99th percentile, in milliseconds
    /// (infinite: above the last bound), when there were requests.
    pub p99_ms: Option<f64>,
}

/// The labels of a sample line, `{a="1",b="x"}`, as pairs (Prometheus' escapes undone).
fn labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_owned(), value.clone()));
        rest = after.get(end..).unwrap_or_default();
    }
    out
}

/// Reads the families the watch needs from `/metrics` text; an error when the histogram or the
/// request counter is missing (this is not a service it can judge).
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    let (mut saw_requests, mut refused) = (false, 0u64);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some((s, v)) => (s.trim(), v.trim()),
            None => continue,
        };
        let (name, label_text) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or(l)),
            None => (series, ""),
        };
        let count = || -> Result<u64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v as u64)
                .ok_or_else(|| format!("`{line}`: the value is not a count"))
        };
        match name {
            "mlops_requests_total" => {
                saw_requests = true;
                let l = labels(label_text);
                let get = |k: &str| l.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                if get("route") == Some("/invocations") {
                    let n = count()?;
                    scrape.requests += n;
                    if get("status").and_then(|s| s.parse::<u16>().ok()) >= Some(500) {
                        scrape.errors += n;
                    }
                }
            }
            "mlops_connections_refused_total" => refused = count()?,
            "mlops_invocation_seconds_bucket" => {
                let l = labels(label_text);
                let bound = l
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| format!("`{line}`: a bucket without `le`"))?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound
                        .parse()
                        .map_err(|_| format!("`{line}`: `le` is not a number"))?
                };
                scrape.buckets.push((bound, count()?));
            }
            _ => {}
        }
    }
    if !saw_requests || scrape.buckets.is_empty() {
        return Err(
            "no `mlops_requests_total` counter or `mlops_invocation_seconds` histogram: the \
             watch reads the figures `mlops serve` exposes"
                .to_owned(),
        );
    }
    scrape.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    scrape.requests += refused;
    scrape.errors += refused;
    Ok(scrape)
}

/// The requests between `from` and `to`. A counter that went down (the service restarted) is
/// read from zero.
pub fn window(from: &Scrape, to: &Scrape) -> Window {
    let restarted =
        to.requests < from.requests || to.buckets.iter().zip(&from.buckets).any(|(t, f)| t.1 < f.1);
    let base = if restarted { &Scrape::default() } else { from };
    let requests = to.requests - base.requests.min(to.requests);
    let errors = to.errors.saturating_sub(base.errors);
    let counts: Vec<(f64, u64)> = to
        .buckets
        .iter()
        .map(|(bound, n)| {
            let before = base
                .buckets
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0, |(_, n)| *n);
            (*bound, n.saturating_sub(before))
        })
        .collect();
    let total = counts.last().map_or(0, |(_, n)| *n);
    let p99_ms = (total > 0).then(|| {
        let rank = (total * 99).div_ceil(100);
        counts
            .iter()
            .find(|(_, n)| *n >= rank)
            .map_or(f64::INFINITY, |(b, _)| b * 1000.0)
    });
    Window {
        requests,
        errors,
        p99_ms,
    }
}

/// What in `window` breaks the watch's limits (nothing when it is too small to judge).
pub fn judge(window: &Window, watch: &Watch) -> Vec<String> {
    let mut out = Vec::new();
    if window.requests < u64::from(watch.min_requests) {
        return out;
    }
    let rate = window.errors as f64 / window.requests as f64;
    if let Some(max) = watch.max_error_rate
        && rate > max
    {
        out.push(format!(
            "watch.max_error_rate: {} of {} prediction requests failed ({:.2}%), over the \
             limit of {:.2}%",
            window.errors,
            window.requests,
            rate * 100.0,
            max * 100.0
        ));
    }
    if let (Some(max), Some(p99)) = (watch.p99_ms, window.p99_ms)
        && p99 > max
    {
        out.push(if p99.is_finite() {
            format!(
                "watch.p99_ms: the 99th percentile of {} prediction requests was up to {p99} ms, \
                 over the limit of {max} ms",
                window.requests
            )
        } else {
            format!(
                "watch.p99_ms: the 99th percentile of {} prediction requests was over the \
                 histogram's last bound, over the limit of {max} ms",
                window.requests
            )
        });
    }
    out
}

/// How a watch ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watched {
    /// Looks taken (scrapes after the first).
    pub looks: u32,
    /// Prediction requests seen over the whole watch, and the failed ones.
    pub requests: u64,
    pub errors: u64,
    /// The worst p99 of a judged look, in milliseconds.
    pub worst_p99_ms: Option<f64>,
    /// What breached, one line each; empty when the watch passed.
    pub breaches: Vec<String>,
    /// Set when fewer than `min_requests` requests came in the whole watch: nothing was judged.
    pub unjudged: bool,
}

impl Watched {
    /// What breached, on one line: the rollback's reason (`watch: ...`), the step output.
    pub fn reason(&self) -> String {
        format!("watch: {}", self.breaches.join("; "))
    }
}

/// Counts a failed look at `/metrics`: one (a refused connection when the service is full, a
/// slow answer) is not a verdict and is noticed; the third in a row is the breach returned.
fn failed(failures: &mut u32, e: String, progress: &mut dyn Progress) -> Option<String> {
    *failures += 1;
    if *failures >= FAILED_LOOKS {
        return Some(format!("{FAILED_LOOKS} looks in a row failed: {e}"));
    }
    progress.notice(&format!("watch: /metrics: {e}"));
    None
}

/// Watches the service behind `http` as `watch` says; stops at the first look with a breach
/// (or when `/metrics` does not answer), or when `cancelled` resolves (`Err` with its name).
pub async fn url(
    http: &Http,
    watch: &Watch,
    progress: &mut dyn Progress,
    cancelled: impl std::future::Future<Output = &'static str>,
) -> Result<Watched, &'static str> {
    let look = || async {
        match http.metrics().await {
            Ok(text) => parse(&text),
            Err(e) => Err(e),
        }
    };
    let mut done = Watched::default();
    let fail = |mut done: Watched, why: String| {
        done.breaches.push(format!("/metrics: {why}"));
        done
    };
    let total = Duration::from_secs(u64::from(watch.seconds));
    let interval = Duration::from_secs(u64::from(watch.interval_seconds));
    tokio::pin!(cancelled);
    // The first look sets the baseline; like any other, one that fails (a service full of
    // clients refusing the connection) is looked at again, and three in a row are a breach.
    let mut failures = 0;
    let mut base = loop {
        match look().await {
            Ok(s) => break s,
            Err(e) => {
                if let Some(why) = failed(&mut failures, e, progress) {
                    return Ok(fail(done, why));
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    signal = &mut cancelled => return Err(signal),
                }
            }
        }
    };
    failures = 0;
    let start = base.clone();
    let started = Instant::now();
    let mut judged_any = false;
    while started.elapsed() < total {
        let wait = interval.min(total.saturating_sub(started.elapsed()));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            signal = &mut cancelled => return Err(signal),
        }
        done.looks += 1;
        let now = match look().await {
            Ok(s) => {
                failures = 0;
                s
            }
            Err(e) => match failed(&mut failures, e, progress) {
                Some(why) => return Ok(fail(done, why)),
                None => continue,
            },
        };
        let w = window(&base, &now);
        let whole = window(&start, &now);
        done.requests = whole.requests;
        done.errors = whole.errors;
        if w.requests < u64::from(watch.min_requests) {
            continue;
        }
        judged_any = true;
        base = now;
        if let Some(p99) = w.p99_ms {
            done.worst_p99_ms = Some(done.worst_p99_ms.map_or(p99, |m: f64| m.max(p99)));
        }
        let breaches = judge(&w, watch);
        progress.notice(&format!(
            "watch: {} s, {} requests in the last look, {} failed, p99 up to {}{}",
            started.elapsed().as_secs(),
            w.requests,
            w.errors,
            w.p99_ms
                .map_or_else(|| "-".to_owned(), |p| format!("{p} ms")),
            if breaches.is_empty() { "" } else { ": BREACH" }
        ));
        if !breaches.is_empty() {
            done.breaches = breaches;
            return Ok(done);
        }
    }
    done.unjudged = !judged_any;
    Ok(done)
}

/// Why an alarm watch could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum Unwatched {
    /// SIGINT or SIGTERM, by name.
    Cancelled(&'static str),
    /// None of the alarms exists, or CloudWatch would not say.
    Blind(String),
}

/// What breaches in one look at the alarms: each in `ALARM`, with CloudWatch's reason.
pub fn firing(states: &[mlops_aws::AlarmState]) -> Vec<String> {
    states
        .iter()
        .filter(|a| a.state == "ALARM")
        .map(|a| format!("the alarm {} is in ALARM: {}", a.name, a.reason))
        .collect()
}

/// Watches a SageMaker endpoint through the CloudWatch alarms `names` (its own and the
/// manifest's) as `watch` says: a breach is any of them in `ALARM`. The names that do not exist
/// are said once; when none does, there is nothing to watch (`Blind`).
pub async fn alarms(
    cloudwatch: &mlops_aws::Alarms,
    names: &[String],
    watch: &Watch,
    progress: &mut dyn Progress,
    cancelled: impl std::future::Future<Output = &'static str>,
) -> Result<Watched, Unwatched> {
    let mut done = Watched::default();
    let started = Instant::now();
    let total = Duration::from_secs(u64::from(watch.seconds));
    let interval = Duration::from_secs(u64::from(watch.interval_seconds));
    tokio::pin!(cancelled);
    let mut failures = 0;
    let mut first = true;
    loop {
        let states = match cloudwatch.states(names).await {
            Ok(s) => {
                failures = 0;
                s
            }
            Err(e) if first => return Err(Unwatched::Blind(e.message)),
            Err(e) if failures + 1 >= FAILED_LOOKS => {
                done.breaches.push(format!(
                    "CloudWatch: {FAILED_LOOKS} looks in a row failed: {}",
                    e.message
                ));
                return Ok(done);
            }
            Err(e) => {
                failures += 1;
                progress.notice(&format!("watch: CloudWatch: {}", e.message));
                Vec::new()
            }
        };
        if first {
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| !states.iter().any(|a| &a.name == *n))
                .collect();
            if missing.len() == names.len() {
                return Err(Unwatched::Blind(format!(
                    "none of the alarms {} exists",
                    names.join(", ")
                )));
            }
            if !missing.is_empty() {
                let missing: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
                progress.notice(&format!(
                    "watch: the alarms {} do not exist: not watched",
                    missing.join(", ")
                ));
            }
            first = false;
        } else {
            done.looks += 1;
        }
        let breaches = firing(&states);
        if !breaches.is_empty() {
            done.breaches = breaches;
            return Ok(done);
        }
        if started.elapsed() >= total {
            return Ok(done);
        }
        progress.notice(&format!(
            "watch: {} s, {} alarms OK or without data",
            started.elapsed().as_secs(),
            states.len()
        ));
        let wait = interval.min(total.saturating_sub(started.elapsed()));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            signal = &mut cancelled => return Err(Unwatched::Cancelled(signal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Watch {
        Watch {
            seconds: 60,
            interval_seconds: 5,
            max_error_rate: Some(0.01),
            p99_ms: Some(100.0),
            min_requests: 20,
            rollback: Default::default(),
        }
    }

    const TEXT: &str = "# HELP mlops_requests_total HTTP requests by route and status.\n\
        # TYPE mlops_requests_total counter\n\
        mlops_requests_total{route=\"/invocations\",status=\"200\"} 90\n\
        mlops_requests_total{route=\"/invocations\",status=\"503\"} 4\n\
        mlops_requests_total{route=\"/invocations\",status=\"400\"} 6\n\
        mlops_requests_total{route=\"/ping\",status=\"500\"} 7\n\
        mlops_invocation_seconds_bucket{le=\"0.001\"} 10\n\
        mlops_invocation_seconds_bucket{le=\"0.05\"} 98\n\
        mlops_invocation_seconds_bucket{le=\"+Inf\"} 100\n\
        mlops_invocation_seconds_bucket{le=\"0.25\"} 99\n\
        mlops_connections_refused_total 2\n";

    #[test]
    fn metrics_are_read_as_mlops_serve_writes_them() {
        let s = parse(TEXT).expect("parses");
        // 100 prediction requests and 2 refused connections; 4 answered 503, and the refused.
        assert_eq!((s.requests, s.errors), (102, 6));
        assert_eq!(
            s.buckets,
            vec![(0.001, 10), (0.05, 98), (0.25, 99), (f64::INFINITY, 100)]
        );
        assert!(parse("mlops_rows_predicted_total 3\n").is_err());
        assert!(
            parse("mlops_requests_total{route=\"/invocations\",status=\"200\"} x\nmlops_invocation_seconds_bucket{le=\"1\"} 1\n")
                .expect_err("not a count")
                .contains("not a count")
        );
        assert_eq!(
            labels("a=\"x\\\"y\",b=\"\",c=\"z\""),
            vec![
                ("a".to_owned(), "x\"y".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "z".to_owned())
            ]
        );
    }

    #[test]
    fn a_window_holds_the_requests_between_two_looks() {
        let from = parse(TEXT).expect("parses");
        let mut to = from.clone();
        to.requests += 50;
        to.errors += 1;
        // 50 more: 40 within 1 ms, 9 within 50 ms, 1 within 250 ms.
        to.buckets = vec![(0.001, 50), (0.05, 147), (0.25, 149), (f64::INFINITY, 150)];
        let w = window(&from, &to);
        assert_eq!((w.requests, w.errors), (50, 1));
        // The 99th percentile of 50 is the 50th request: in the 0.25 s bucket.
        assert_eq!(w.p99_ms, Some(250.0));
        // A restart: counters lower than before are read from zero.
        let restarted = parse(
            "mlops_requests_total{route=\"/invocations\",status=\"200\"} 3\n\
             mlops_invocation_seconds_bucket{le=\"0.001\"} 3\n\
             mlops_invocation_seconds_bucket{le=\"+Inf\"} 3\n",
        )
        .expect("parses");
        let w = window(&from, &restarted);
        assert_eq!((w.requests, w.errors, w.p99_ms), (3, 0, Some(1.0)));
        // Nothing happened: no p99.
        assert_eq!(window(&from, &from).p99_ms, None);
    }

    #[test]
    fn an_alarm_in_alarm_is_a_breach_with_its_reason() {
        let state = |name: &str, state: &str| mlops_aws::AlarmState {
            name: name.into(),
            state: state.into(),
            reason: format!("{name} said so"),
        };
        assert!(firing(&[state("a", "OK"), state("b", "INSUFFICIENT_DATA")]).is_empty());
        assert_eq!(
            firing(&[state("a", "OK"), state("e-5xx", "ALARM")]),
            ["the alarm e-5xx is in ALARM: e-5xx said so"]
        );
    }

    #[test]
    fn breaches_name_the_limit_and_small_windows_are_not_judged() {
        let w = Window {
            requests: 200,
            errors: 3,
            p99_ms: Some(250.0),
        };
        let b = judge(&w, &watch());
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(
            b[0].starts_with("watch.max_error_rate: 3 of 200 prediction requests failed (1.50%)"),
            "{b:?}"
        );
        assert!(
            b[1].starts_with("watch.p99_ms:") && b[1].contains("250 ms"),
            "{b:?}"
        );
        let quiet = Window {
            requests: 19,
            errors: 19,
            p99_ms: Some(10_000.0),
        };
        assert!(judge(&quiet, &watch()).is_empty());
        let fine = Window {
            requests: 200,
            errors: 2,
            p99_ms: Some(100.0),
        };
        assert!(judge(&fine, &watch()).is_empty());
        let beyond = Window {
            requests: 200,
            errors: 0,
            p99_ms: Some(f64::INFINITY),
        };
        assert!(judge(&beyond, &watch())[0].contains("over the histogram's last bound"));
    }

    struct Notices(Vec<String>);

    impl Progress for Notices {
        fn step(&mut self, _: &str) {}
        fn notice(&mut self, line: &str) {
            self.0.push(line.to_owned());
        }
    }

    /// A service on 127.0.0.1 that drops its first `dropped` connections unanswered and answers
    /// every later one with `TEXT` on `/metrics`.
    fn service(dropped: usize) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                if n < dropped {
                    continue;
                }
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{TEXT}",
                    TEXT.len()
                );
            }
        });
        url
    }

    fn soak(url: &str) -> (Watched, Vec<String>) {
        let http = Http::new(
            url,
            mlops_holdout::client::Policy {
                timeout: Duration::from_secs(2),
                retries: 0,
                ..Default::default()
            },
        )
        .expect("client");
        let quick = Watch {
            seconds: 2,
            interval_seconds: 1,
            min_requests: 1_000_000,
            ..watch()
        };
        let mut notices = Notices(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let watched = rt
            .block_on(url_watch(&http, &quick, &mut notices))
            .expect("not cancelled");
        (watched, notices.0)
    }

    async fn url_watch(http: &Http, w: &Watch, p: &mut Notices) -> Result<Watched, &'static str> {
        url(http, w, p, std::future::pending()).await
    }

    /// The first look sets the baseline; a refused one is looked at again, as any look is, and
    /// only three failures in a row are a breach.
    #[test]
    fn a_failed_first_look_is_retried_and_three_are_a_breach() {
        let (watched, notices) = soak(&service(1));
        assert!(watched.breaches.is_empty(), "{:?}", watched.breaches);
        assert!(watched.looks >= 1, "{watched:?}");
        assert!(
            notices.iter().any(|n| n.starts_with("watch: /metrics: ")),
            "{notices:?}"
        );
        let (watched, _) = soak(&service(usize::MAX));
        assert_eq!(watched.breaches.len(), 1, "{:?}", watched.breaches);
        assert!(
            watched.breaches[0].starts_with("/metrics: 3 looks in a row failed"),
            "{:?}",
            watched.breaches
        );
    }
}
