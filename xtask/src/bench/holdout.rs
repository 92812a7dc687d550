//! `cargo xtask bench holdout`: `mlops holdout` against `mlops serve` on loopback with a holdout
//! set of about a million rows built from the quickstart's, in alternating rounds with `oha`
//! (the same endpoint and batch body), and a plain Python `requests` loop; peak RSS at 1M and
//! 10M rows; the serving throughput and p99 latency at the batch size; the CPU per row of the
//! service and of each client, and what the shared placement's ratio would leave the client;
//! the serving throughput on the same rows with decimal features; the holdout's latency figures
//! against oha's for the same load; and `--compare production` (two models on the same rows)
//! against a single holdout test, in wall time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{json_line, release_binary, tempdir};
use crate::{cache_dir, cargo, root, tools};

/// The oha release the bench installs (cargo install, into the cache).
const OHA: &str = "1.16.0";

pub(super) fn oha() -> Result<PathBuf, String> {
    let dir = cache_dir().join("oha");
    let bin = dir.join("bin/oha");
    if bin.exists() {
        return Ok(bin);
    }
    crate::run(
        cargo()
            .args(["install", "oha", "--version", OHA, "--locked", "--root"])
            .arg(&dir)
            .env("CARGO_TARGET_DIR", cache_dir().join("oha-target")),
    )?;
    Ok(bin)
}

/// The quickstart holdout file repeated `times` times (the metrics of a whole number of copies
/// are those of one copy, so the registry's recorded values still apply).
fn repeated(from: &Path, to: &Path, times: usize) -> Result<usize, String> {
    let text = std::fs::read_to_string(from).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty holdout file")?;
    let body: String = lines.map(|l| format!("{l}\n")).collect();
    let rows = body.lines().count();
    let file = std::fs::File::create(to).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "{header}").map_err(|e| e.to_string())?;
    for _ in 0..times {
        out.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    // On disk before anything is timed: the kernel's write-back of a gigabyte of dirty pages
    // would otherwise run during the measurements and take CPU from them.
    out.get_ref().sync_all().map_err(|e| e.to_string())?;
    Ok(rows * times)
}

/// A running `mlops serve`; dropping it stops it (SIGTERM: in-flight requests are answered, a
/// capture closes its file) and waits for its exit.
pub(super) struct Serving {
    child: Child,
    pub(super) url: String,
}

/// `program`, run on CPU `cpu` alone (through `taskset`) when one is given.
fn on_cpu(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `mlops serve` of `digits-mlp@1` from `registry` on a free port, with `extra` arguments (on
/// CPU `cpu` alone when one is given), once it listens.
pub(super) fn serve(
    mlops: &Path,
    registry: &Path,
    cpu: Option<usize>,
    extra: &[&std::ffi::OsStr],
) -> Result<Serving, String> {
    let mut child = on_cpu(mlops, cpu)
        .args([
            "serve",
            "--quiet",
            "--port",
            "0",
            "--model",
            "digits-mlp@1",
            "--registry",
        ])
        .arg(registry)
        .args(extra)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.split("on http://").nth(1) {
                    break format!("http://{}", a.trim());
                }
            }
            _ => {
                let _ = child.kill();
                return Err("mlops serve did not start".to_owned());
            }
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Serving { child, url })
}

/// One oha round through `oha` (the program, maybe under `time`): 8 s of the body at `body` as
/// CSV to `url`'s `/invocations`, 4 in flight; oha's JSON summary and the process's output. A
/// round with a failed request is an error.
pub(super) fn oha_load(
    mut oha: Command,
    url: &str,
    body: &Path,
) -> Result<(serde_json::Value, std::process::Output), String> {
    let out = oha
        .args([
            "-z",
            "8s",
            "-c",
            "4",
            "--no-tui",
            "--output-format",
            "json",
            "-m",
            "POST",
        ])
        .args([
            "-H",
            "content-type: text/csv",
            "-H",
            "accept: text/csv",
            "-D",
        ])
        .arg(body)
        .arg(format!("{url}/invocations"))
        .output()
        .map_err(|e| e.to_string())?;
    let doc = oha_json(&out)?;
    let success = doc["summary"]["successRate"].as_f64().unwrap_or(0.0);
    if success < 1.0 {
        return Err(format!("oha saw failed requests (success rate {success})"));
    }
    Ok((doc, out))
}

/// oha's JSON summary (`--output-format json`) from its output.
pub(super) fn oha_json(out: &std::process::Output) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "oha printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times (`getconf CLK_TCK`;
/// 100 on Linux when it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The CPU time (user + system, seconds) process `pid` has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    stat_ticks(&stat)
        .map(|t| t / ticks)
        .ok_or_else(|| format!("{path}: no CPU times in `{stat}`"))
}

/// utime + stime, in clock ticks, of a `/proc/<pid>/stat` line. The fields are counted after
/// the command's name, which is in parentheses and may hold spaces and parentheses itself:
/// state is the first of them, utime the 12th and stime the 13th (proc(5)).
fn stat_ticks(stat: &str) -> Option<f64> {
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The value of `key=VALUE` in the last line of `stderr` that has it: what
/// `/usr/bin/time -f "maxrss_kb=%M cpu=%U+%S"` printed after the program's own output.
pub(super) fn timed<'a>(stderr: &'a str, key: &str) -> Result<&'a str, String> {
    let tag = format!("{key}=");
    stderr
        .lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&tag)))
        .next_back()
        .ok_or_else(|| format!("no {key} from /usr/bin/time: {stderr}"))
}

/// CPU seconds (user + system) from `/usr/bin/time`'s `cpu=%U+%S`.
pub(super) fn timed_cpu(stderr: &str) -> Result<f64, String> {
    let value = timed(stderr, "cpu")?;
    value
        .split_once('+')
        .and_then(|(user, sys)| Some(user.parse::<f64>().ok()? + sys.parse::<f64>().ok()?))
        .ok_or_else(|| format!("`cpu={value}` from /usr/bin/time is not USER+SYS seconds"))
}

/// One `mlops holdout` run.
struct Holdout {
    report: serde_json::Value,
    /// Peak RSS, MB.
    rss: f64,
    /// The client's CPU time, user + system, seconds.
    cpu: f64,
    /// The whole process, seconds.
    wall: f64,
}

/// `program` under `/usr/bin/time` (peak RSS and CPU time; read back by [`timed`]), on CPU
/// `cpu` alone when one is given, as [`on_cpu`] runs it.
pub(super) fn under_time(program: &Path, cpu: Option<usize>) -> Command {
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "maxrss_kb=%M cpu=%U+%S"]);
    if let Some(cpu) = cpu {
        c.args(["taskset", "-c", &cpu.to_string()]);
    }
    c.arg(program);
    c
}

/// One `mlops holdout` run under `/usr/bin/time`.
fn holdout(
    mlops: &Path,
    registry: &Path,
    url: &str,
    file: &Path,
    parity: bool,
    cpu: Option<usize>,
    extra: &[&std::ffi::OsStr],
) -> Result<Holdout, String> {
    let mut c = under_time(mlops, cpu);
    c.args([
        "holdout",
        "--format",
        "json",
        "--model",
        "digits-mlp@1",
        "--manifest",
    ])
    .arg(root().join("examples/quickstart/mlops.yaml"))
    .arg("--registry")
    .arg(registry)
    .args(["--endpoint", url, "--holdout"])
    .arg(file)
    .env_remove("GITHUB_ACTIONS");
    if !parity {
        c.arg("--no-parity");
    }
    c.args(extra);
    let started = std::time::Instant::now();
    let out = c
        .output()
        .map_err(|e| format!("cannot run /usr/bin/time (Debian package `time`): {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = timed(&stderr, "maxrss_kb")?;
    let rss: f64 = rss
        .parse()
        .map_err(|_| format!("`maxrss_kb={rss}` from /usr/bin/time is not a number"))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("mlops holdout printed no report ({e}): {stderr}"))?;
    if report["passed"] != true {
        return Err(format!("the holdout test did not pass: {}", report));
    }
    Ok(Holdout {
        report,
        rss: rss / 1024.0,
        cpu: timed_cpu(&stderr)?,
        wall: started.elapsed().as_secs_f64(),
    })
}

/// One oha run.
struct Oha {
    /// Rows per second (requests per second times the batch).
    rows: f64,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Rows answered with 200.
    answered: f64,
    /// oha's CPU time, user + system, seconds.
    cpu: f64,
}

/// The cores a load kept busy: its rows per second times the CPU per row (µs) it cost.
fn cores_in_use(rows_per_second: f64, cpu_per_row_us: f64) -> f64 {
    rows_per_second * cpu_per_row_us / 1e6
}

/// The middle value (of an odd number of them).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn run() -> Result<(), String> {
    let bin = tools()?;
    let oha = oha()?;
    let mlops = release_binary()?;
    let scratch = tempdir("bench-holdout")?;
    let registry = scratch.join("registry");
    let trained = Command::new(&mlops)
        .args(["train", "--format", "json", "--manifest"])
        .arg(root().join("examples/quickstart/mlops.yaml"))
        .arg("--registry")
        .arg(&registry)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .map_err(|e| e.to_string())?;
    json_line(&trained, "mlops train")?;
    let source = root().join("examples/quickstart/data/digits-holdout.csv");
    let (million, ten_million) = (
        scratch.join("holdout-1m.csv"),
        scratch.join("holdout-10m.csv"),
    );
    let per_copy = std::fs::read_to_string(&source)
        .map_err(|e| e.to_string())?
        .lines()
        .count()
        .saturating_sub(1)
        .max(1);
    let copies = 1_000_000usize.div_ceil(per_copy);
    let rows_1m = repeated(&source, &million, copies)?;
    let rows_10m = repeated(&source, &ten_million, copies * 10)?;
    let batch = 256usize;

    // The batch body oha posts: the first `batch` rows as mlops holdout sends them (a CSV
    // header naming the features, then each row's feature fields as the file has them).
    let text = std::fs::read_to_string(&source).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let label = header
        .iter()
        .position(|c| *c == "digit")
        .ok_or("no digit column")?;
    let without_label = |line: &str| -> String {
        let kept: Vec<&str> = line
            .split(',')
            .enumerate()
            .filter(|(i, _)| *i != label)
            .map(|(_, v)| v)
            .collect();
        kept.join(",") + "\n"
    };
    let mut csv_body = without_label(&header.join(","));
    for line in lines.cycle().take(batch) {
        csv_body.push_str(&without_label(line));
    }
    let body = scratch.join("body.csv");
    std::fs::write(&body, &csv_body).map_err(|e| e.to_string())?;
    // The same rows with decimal features, as standardised data has them (`0.437500`,
    // `1.012270`): the quickstart's pixels are small integers, which the service reads by a
    // shortcut that most datasets never take.
    let mut decimal_body = String::new();
    for (row, line) in csv_body.lines().enumerate() {
        if row == 0 {
            decimal_body.push_str(line);
        } else {
            let values: Vec<String> = line
                .split(',')
                .enumerate()
                .map(|(column, v)| {
                    let v: f64 = v.parse().unwrap_or(0.0);
                    let jitter = ((row * 64 + column) % 7) as f64 * 0.01;
                    format!("{:.6}", (v + jitter) / 16.3)
                })
                .collect();
            decimal_body.push_str(&values.join(","));
        }
        decimal_body.push('\n');
    }
    let decimal = scratch.join("decimal.csv");
    std::fs::write(&decimal, decimal_body).map_err(|e| e.to_string())?;

    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "bench holdout: mlops serve on loopback (release build), batches of {batch} rows, 4 in flight, {cores} cores"
    );
    // oha and the holdout alternate, five rounds. On a small shared VM one measurement of either
    // moves by 15% from one minute to the next, so the headline is the median of the rounds'
    // ratios (each pairs two measurements taken seconds apart); the ratio of the medians is
    // printed beside it.
    let oha_round = |url: &str, cpu: Option<usize>, body: &Path| -> Result<Oha, String> {
        let (doc, out) = oha_load(under_time(&oha, cpu), url, body)?;
        let rps = doc["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
        let p50 = doc["latencyPercentiles"]["p50"].as_f64().unwrap_or(0.0) * 1000.0;
        let p99 = doc["latencyPercentiles"]["p99"].as_f64().unwrap_or(0.0) * 1000.0;
        let answered = doc["statusCodeDistribution"]["200"].as_f64().unwrap_or(0.0);
        Ok(Oha {
            rows: rps * batch as f64,
            requests_per_second: rps,
            p50_ms: p50,
            p99_ms: p99,
            answered: answered * batch as f64,
            cpu: timed_cpu(&String::from_utf8_lossy(&out.stderr))?,
        })
    };
    // CPU per row, in µs, of the service (from /proc, around each run) and of each client.
    let ticks = clock_ticks();
    let per_row = |seconds: f64, rows: f64| seconds * 1e6 / rows.max(1.0);
    let rate = |report: &serde_json::Value| report["rows_per_second"].as_f64().unwrap_or(0.0);
    let mut rss_1m: f64 = 0.0;
    // Two placements: the service and the load (oha or the holdout) sharing every core, as a
    // single machine runs both; and (given two cores and `taskset`) the service on CPU 0 and the
    // load on CPU 1, as a CI runner and a staging service on separate machines would, so that
    // the client's own work does not take the service's CPU.
    let isolated = std::thread::available_parallelism().map_or(0, usize::from) >= 2
        && Command::new("taskset")
            .args(["-c", "0", "true"])
            .status()
            .is_ok_and(|s| s.success());
    let mut placements = vec![("shared", None, None)];
    if isolated {
        placements.push(("isolated", Some(0), Some(1)));
    }
    let service = serve(&mlops, &registry, None, &[])?;
    let mut headline = Vec::new();
    let mut latencies = Vec::new();
    for (placement, service_cpu, load_cpu) in placements {
        // The shared placement uses the service the Python loops and the 10M run use too.
        let pinned = match service_cpu {
            Some(cpu) => Some(serve(&mlops, &registry, Some(cpu), &[])?),
            None => None,
        };
        let serving = pinned.as_ref().unwrap_or(&service);
        let pid = serving.child.id();
        let (mut oha_rows, mut off_rows, mut on_rows) = (Vec::new(), Vec::new(), Vec::new());
        let mut ratios = Vec::new();
        let mut latency = Vec::new();
        // µs per row: the service under oha and under the holdout, oha, the holdout.
        let mut cpu: [Vec<f64>; 4] = Default::default();
        for round in 1..=5 {
            let before = cpu_seconds(pid, ticks)?;
            let o = oha_round(&serving.url, load_cpu, &body)?;
            let between = cpu_seconds(pid, ticks)?;
            let off = holdout(
                &mlops,
                &registry,
                &serving.url,
                &million,
                false,
                load_cpu,
                &[],
            )?;
            let after = cpu_seconds(pid, ticks)?;
            let on = holdout(
                &mlops,
                &registry,
                &serving.url,
                &million,
                true,
                load_cpu,
                &[],
            )?;
            rss_1m = rss_1m.max(on.rss);
            let rows = rows_1m as f64;
            let used = [
                per_row(between - before, o.answered),
                per_row(after - between, rows),
                per_row(o.cpu, o.answered),
                per_row(off.cpu, rows),
            ];
            println!(
                "{placement} round {round}: oha 8 s, 4 connections {:.0} rows/s ({:.0} requests/s, p99 {:.2} ms); mlops holdout {rows_1m} rows, parity off {:.0} rows/s, parity on {:.0} rows/s (peak RSS {:.1} MB); ratio {:.2}x; CPU per row: service {:.2} µs under oha, {:.2} µs under the holdout; oha {:.2} µs, holdout (parity off) {:.2} µs",
                o.rows,
                o.requests_per_second,
                o.p99_ms,
                rate(&off.report),
                rate(&on.report),
                on.rss,
                rate(&off.report) / o.rows,
                used[0],
                used[1],
                used[2],
                used[3],
            );
            // The holdout's own latency figures against oha's, for the same load shape
            // (batches of the same size, 4 in flight).
            let ours = |p: &str| off.report["latency"][p].as_f64().unwrap_or(0.0);
            let agreement = (ours("p50_ms") / o.p50_ms, ours("p99_ms") / o.p99_ms);
            println!(
                "{placement} round {round}: latency per request, holdout p50 {:.2} ms / p99 {:.2} ms, oha p50 {:.2} ms / p99 {:.2} ms: ratios {:.2}x / {:.2}x",
                ours("p50_ms"),
                ours("p99_ms"),
                o.p50_ms,
                o.p99_ms,
                agreement.0,
                agreement.1
            );
            latency.push(agreement);
            ratios.push(rate(&off.report) / o.rows);
            oha_rows.push(o.rows);
            off_rows.push(rate(&off.report));
            on_rows.push(rate(&on.report));
            for (all, one) in cpu.iter_mut().zip(used) {
                all.push(one);
            }
        }
        drop(pinned);
        let (oha_rows, off_rows, on_rows) = (median(oha_rows), median(off_rows), median(on_rows));
        let vs_oha = median(ratios);
        println!(
            "{placement} medians: oha {oha_rows:.0} rows/s; mlops holdout parity off {off_rows:.0} rows/s, parity on {on_rows:.0} rows/s; ratio of the medians {:.2}x, median of the rounds' ratios {vs_oha:.2}x",
            off_rows / oha_rows
        );
        let [served_oha, served_holdout, by_oha, by_holdout] = cpu.map(median);
        println!(
            "{placement} CPU per row (medians): service {served_oha:.2} µs under oha, {served_holdout:.2} µs under the holdout; oha {by_oha:.2} µs; holdout (parity off) {by_holdout:.2} µs"
        );
        if service_cpu.is_none() {
            // Sharing the cores, and with them busy, each load's rate is the cores' time over
            // the CPU that the service and the client spend per row between them. How busy they
            // were says whether that bound is what held the rate.
            println!(
                "{placement}: cores in use {:.2} under oha, {:.2} under the holdout (of {cores}); with them busy, the CPU per row predicts a ratio of {:.2}x; 0.9x would leave the holdout client {:.2} µs a row (it spends {by_holdout:.2})",
                cores_in_use(oha_rows, served_oha + by_oha),
                cores_in_use(off_rows, served_holdout + by_holdout),
                (served_oha + by_oha) / (served_holdout + by_holdout),
                (served_oha + by_oha) / 0.9 - served_holdout
            );
        }
        let (p50s, p99s): (Vec<f64>, Vec<f64>) = latency.into_iter().unzip();
        latencies.push((placement, median(p50s), median(p99s)));
        headline.push((placement, vs_oha, off_rows));
    }
    let off_rows = headline.first().map_or(0.0, |h| h.2);
    // Serving decimals: the same rows, the same placement as the Python loops (shared).
    let before = cpu_seconds(service.child.id(), ticks)?;
    let d = oha_round(&service.url, None, &decimal)?;
    let served = cpu_seconds(service.child.id(), ticks)? - before;
    println!(
        "serving decimal features (shared, oha 8 s, 4 connections): {:.0} rows/s ({:.0} requests/s, p99 {:.2} ms); service {:.2} µs of CPU a row",
        d.rows,
        d.requests_per_second,
        d.p99_ms,
        per_row(served, d.answered)
    );

    // The comparison with production (`--compare production`): the version production pins
    // served by the holdout process itself, every batch sent to both; against a single holdout
    // test with parity, the whole process's wall time, alternating, three rounds. The 1M-row
    // file is not the one the model was tested on, as the comparison is told.
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.join("digits-mlp/1/card.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let pin = scratch.join("production.yaml");
    std::fs::write(
        &pin,
        mlops_artifacts::pin::Pin {
            version: 1,
            model: mlops_artifacts::pin::PinnedModel {
                name: "digits-mlp".into(),
                version: 1,
                registry: registry.display().to_string(),
                artifact: mlops_artifacts::pin::Artifact {
                    uri: registry.join("digits-mlp/1").display().to_string(),
                    sha256: card["artifact"]["sha256"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                },
                image: None,
            },
            manifest_sha256: "0".repeat(64),
            holdout: None,
        }
        .to_yaml("production"),
    )
    .map_err(|e| e.to_string())?;
    let compare_args = [
        std::ffi::OsStr::new("--compare"),
        std::ffi::OsStr::new("production"),
        std::ffi::OsStr::new("--production-pin"),
        pin.as_os_str(),
        std::ffi::OsStr::new("--compare-other-file"),
    ];
    let mut compare_ratios = Vec::new();
    for round in 1..=3 {
        let single = holdout(&mlops, &registry, &service.url, &million, true, None, &[])?;
        let both = holdout(
            &mlops,
            &registry,
            &service.url,
            &million,
            true,
            None,
            &compare_args,
        )?;
        if both.report["comparison"]["rows"].as_u64() != Some(rows_1m as u64) {
            return Err(format!(
                "the comparison did not pair every row: {}",
                both.report["comparison"]
            ));
        }
        println!(
            "compare round {round}: single holdout {:.2} s, compared with production {:.2} s (peak RSS {:.1} MB): {:.2}x",
            single.wall,
            both.wall,
            both.rss,
            both.wall / single.wall
        );
        compare_ratios.push(both.wall / single.wall);
    }
    let vs_single = median(compare_ratios);

    let python_rows = 100_000;
    let python = |mode: &str| -> Result<f64, String> {
        let out = Command::new(bin.join("python"))
            .arg(root().join("xtask/bench/holdout_requests.py"))
            .arg(&service.url)
            .arg(&million)
            .args([batch.to_string(), python_rows.to_string(), mode.to_owned()])
            .output()
            .map_err(|e| e.to_string())?;
        let doc = json_line(&out, "holdout_requests.py")?;
        let rate =
            doc["rows"].as_f64().unwrap_or(0.0) / doc["seconds"].as_f64().unwrap_or(f64::INFINITY);
        println!(
            "python requests loop ({mode} bodies), first {python_rows} rows: {rate:.0} rows/s (accuracy {:.4})",
            doc["accuracy"].as_f64().unwrap_or(0.0)
        );
        Ok(rate)
    };
    let py_json = python("json")?;
    let py = python("csv")?;

    let big = holdout(
        &mlops,
        &registry,
        &service.url,
        &ten_million,
        true,
        None,
        &[],
    )?;
    let rss_10m = big.rss;
    println!(
        "mlops holdout, {rows_10m} rows, parity on:  {:.0} rows/s, peak RSS {rss_10m:.1} MB",
        rate(&big.report)
    );
    drop(service);
    let _ = std::fs::remove_dir_all(&scratch);

    let vs_python = off_rows / py;
    let vs_python_json = off_rows / py_json;
    let flat = rss_10m <= rss_1m * 1.25;
    let goal = |met: bool| if met { "met" } else { "NOT met" };
    for (placement, vs_oha, _) in &headline {
        println!(
            "ratio: holdout (parity off) / oha, {placement}, median of the rounds = {vs_oha:.2}x (goal >= 0.9x: {})",
            goal(*vs_oha >= 0.9)
        );
    }
    for (placement, p50, p99) in &latencies {
        let within = |r: f64| (0.9..=1.1).contains(&r);
        println!(
            "latency: holdout / oha, {placement}, median of the rounds: p50 {p50:.2}x, p99 {p99:.2}x (goal within 10%: {})",
            goal(within(*p50) && within(*p99))
        );
    }
    println!(
        "ratio: holdout compared with production / single holdout, wall time, median of 3 = {vs_single:.2}x (goal <= 2.2x: {})",
        goal(vs_single <= 2.2)
    );
    println!(
        "ratios: holdout (parity off, shared) / python requests, same CSV bodies = {vs_python:.1}x (goal >= 10x: {}); / python requests, JSON bodies = {vs_python_json:.1}x (goal >= 10x: {})",
        goal(vs_python >= 10.0),
        goal(vs_python_json >= 10.0)
    );
    println!(
        "peak RSS 1M {rss_1m:.1} MB, 10M {rss_10m:.1} MB (goal < 64 MB and flat: {})",
        if rss_10m < 64.0 && flat {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_come_from_after_the_command_name() {
        // A command name with a space and a parenthesis in it; utime 1234, stime 56.
        let stat = "4242 (mlops (x) y) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 56 0 0 20 0 6 0";
        assert_eq!(stat_ticks(stat), Some(1290.0));
        assert_eq!(stat_ticks("4242 (mlops) S 1 2"), None);
        assert_eq!(stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn timed_values_come_from_the_last_line_that_has_them() {
        let stderr = "warning: cpu=fake\ncpu=1.25+0.50\nmaxrss_kb=40000 cpu=0.75+0.25\n";
        assert_eq!(timed_cpu(stderr), Ok(1.0));
        assert_eq!(timed(stderr, "maxrss_kb"), Ok("40000"));
        assert!(timed_cpu("Command exited with non-zero status 1").is_err());
        assert!(timed_cpu("cpu=0.75").is_err());
    }

    #[test]
    fn cores_in_use_are_rows_per_second_times_cpu_per_row() {
        // 1.5M rows/s at 1.2 µs of CPU a row keeps 1.8 cores busy.
        assert!((cores_in_use(1_500_000.0, 1.2) - 1.8).abs() < 1e-9);
        assert_eq!(cores_in_use(0.0, 1.2), 0.0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_used_some_cpu() {
        let ticks = clock_ticks();
        assert!(ticks > 0.0);
        // Spend a little CPU so that even a coarse clock moves past zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = cpu_seconds(std::process::id(), ticks).expect("own /proc stat");
        assert!(used > 0.0, "{used}");
    }
}
