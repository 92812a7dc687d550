//! `cargo xtask bench serve-onnx`: one ONNX model (a scikit-learn StandardScaler + MLP of the
//! quickstart's shape, exported by skl2onnx) served by `mlops serve` (release build, tract in
//! process), by MLServer (a custom onnxruntime runtime, as its docs show; it ships none) and by
//! onnxruntime behind FastAPI on uvicorn with two workers (what teams write by hand), each
//! loaded by oha in turn: 1-row requests at 64 connections and 256-row requests at 4, rows/s
//! and p99, three rounds, medians; the 1-row load once more with each server on CPU 0 and oha
//! on CPU 1 (`taskset`), where the load generator does not take CPU from the server in
//! proportion to the rate it drives. Then the cold start of each (exec to the first 200 on its
//! health route, five starts, median), and tract against onnxruntime in process on the same
//! batches (`crates/mlops-onnx/examples/throughput.rs` and `helper.py inprocess`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{median_f64, release_binary, tempdir};
use crate::{cargo, ml_tools, root, target_dir};

/// Seconds each oha run lasts.
const LOAD_SECONDS: u32 = 10;
/// Rounds of the three servers under each load.
const ROUNDS: usize = 3;
/// Starts timed per server.
const STARTS: usize = 5;

/// A server under test: how to start it on a port, where its health route and predictions are,
/// and the bodies it takes.
struct Contender {
    name: &'static str,
    start: Box<dyn Fn(u16) -> Command>,
    health: &'static str,
    predict: &'static str,
    /// The body of a request of `b` rows (1 or 256).
    body: Box<dyn Fn(usize) -> PathBuf>,
}

/// A server process in a process group of its own (uvicorn and MLServer fork workers), stopped
/// whole when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// `GET path` on the port: the status, or `None` when nothing answers yet.
fn get_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// Starts the contender on a free port and waits for a 200 on its health route: the server and
/// the time from exec to that answer.
fn start(c: &Contender) -> Result<(Running, u16, Duration), String> {
    start_on(c, None)
}

/// `command` run by `taskset -c cpus` (its environment and directory kept).
fn pinned(command: &Command, cpus: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", cpus]).arg(command.get_program());
    c.args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// [`start`], the server kept to the CPUs `cpus` (`taskset -c`) when given.
fn start_on(c: &Contender, cpus: Option<&str>) -> Result<(Running, u16, Duration), String> {
    let port = free_port()?;
    let mut command = (c.start)(port);
    if let Some(cpus) = cpus {
        command = pinned(&command, cpus);
    }
    // As services run by default: a developer's RUST_BACKTRACE=1 makes every anyhow error
    // (tract's included) capture a backtrace.
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", c.name))?;
    let mut running = Running(child);
    loop {
        if get_status(port, c.health) == Some(200) {
            return Ok((running, port, started.elapsed()));
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            return Err(format!("{} exited before it answered ({status})", c.name));
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{} did not answer {} in 120 s", c.name, c.health));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One oha run of `seconds`: rows per second and p99 latency (ms); every answer must be a 200.
fn load(
    oha: &Path,
    port: u16,
    c: &Contender,
    shape: (usize, u32),
    seconds: u32,
) -> Result<(f64, f64), String> {
    load_on(oha, port, c, shape, seconds, None)
}

/// [`load`], oha kept to the CPUs `cpus` when given.
fn load_on(
    oha: &Path,
    port: u16,
    c: &Contender,
    (batch, connections): (usize, u32),
    seconds: u32,
    cpus: Option<&str>,
) -> Result<(f64, f64), String> {
    let mut command = Command::new(oha);
    if let Some(cpus) = cpus {
        command = pinned(&command, cpus);
    }
    let out = command
        .args(["-z", &format!("{seconds}s"), "-c", &connections.to_string()])
        .args(["--no-tui", "--output-format", "json", "-m", "POST"])
        .args(["-H", "content-type: application/json", "-D"])
        .arg((c.body)(batch))
        .arg(format!("http://127.0.0.1:{port}{}", c.predict))
        .output()
        .map_err(|e| format!("oha: {e}"))?;
    let doc = super::holdout::oha_json(&out)?;
    let success = doc["summary"]["successRate"].as_f64().unwrap_or(0.0);
    let ok = doc["statusCodeDistribution"]["200"].as_f64().unwrap_or(0.0);
    let total: f64 = doc["statusCodeDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_f64).sum())
        .unwrap_or(0.0);
    if success < 1.0 || ok < total || ok == 0.0 {
        return Err(format!(
            "{}: oha saw failed requests or other statuses than 200: {}",
            c.name, doc["statusCodeDistribution"]
        ));
    }
    let rps = doc["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
    let p99 = doc["latencyPercentiles"]["p99"].as_f64().unwrap_or(0.0) * 1000.0;
    Ok((rps * batch as f64, p99))
}

/// Prints each server's median rows/s and p99 under one `load`, then mlops serve's (the first)
/// against the fastest of the others, with the goals: at least 3x the rows/s, a lower p99.
fn compare(load: &str, names: &[&str], medians: &[(f64, f64)]) {
    for (name, (rows, p99)) in names.iter().zip(medians) {
        println!("  {load}: {name:<22} {rows:>10.0} rows/s, p99 {p99:.2} ms");
    }
    let (ours, our_p99) = medians.first().copied().unwrap_or((0.0, 0.0));
    let Some((name, (rows, p99))) = names
        .iter()
        .zip(medians)
        .skip(1)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
    else {
        return;
    };
    let ratio = ours / rows.max(f64::MIN_POSITIVE);
    println!(
        "ratio: mlops serve / {name} (the fastest Python server), {load} = {ratio:.2}x rows/s (goal >= 3x: {}); p99 {our_p99:.2} ms vs {p99:.2} ms (goal lower: {})",
        super::goal(ratio >= 3.0),
        super::goal(our_p99 < *p99),
    );
}

/// The JSON lines a command printed, after it succeeded.
fn json_lines(cmd: &mut Command, who: &str) -> Result<Vec<serde_json::Value>, String> {
    let out = cmd.output().map_err(|e| format!("{who}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{who} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{who}: `{l}`: {e}")))
        .collect()
}

pub(crate) fn run() -> Result<(), String> {
    let venv = ml_tools()?;
    let python = venv.join("python");
    let oha = super::holdout::oha()?;
    let mlops = release_binary()?;
    crate::run(cargo().args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mlops-onnx",
        "--example",
        "throughput",
    ]))?;
    let throughput = target_dir().join("release/examples/throughput");
    let here = root().join("xtask/bench/serve-onnx");
    let scratch = tempdir("bench-serve-onnx")?;
    let data = root().join("examples/quickstart/data");
    crate::run(
        Command::new(&python)
            .arg(here.join("helper.py"))
            .arg("export")
            .arg(data.join("digits-train.csv"))
            .arg(data.join("digits-holdout.csv"))
            .arg(&scratch),
    )?;
    let model = scratch.join("model.onnx");

    // mlops registers the file (measured on the quickstart's data) and serves the version.
    let project = scratch.join("project");
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    let manifest = std::fs::read_to_string(root().join("examples/quickstart/mlops.yaml"))
        .map_err(|e| e.to_string())?
        .replace(
            "  family: mlp\n  hyperparameters:\n    hidden_layers: [64]\n    activation: relu\n",
            &format!("  family: onnx\n  path: {}\n", model.display()),
        )
        .replace("path: data/", &format!("path: {}/", data.display()));
    if !manifest.contains("family: onnx") {
        return Err("the quickstart's model section moved; update the bench".into());
    }
    std::fs::write(project.join("mlops.yaml"), manifest).map_err(|e| e.to_string())?;
    let registry = scratch.join("registry");
    let card = super::train(&mlops, &project.join("mlops.yaml"), &registry)?;

    // MLServer's model directory: its settings, the model and the runtime module.
    let served = scratch.join("mlserver");
    std::fs::create_dir_all(served.join("digits")).map_err(|e| e.to_string())?;
    std::fs::copy(&model, served.join("digits/model.onnx")).map_err(|e| e.to_string())?;
    std::fs::copy(
        here.join("mlserver_runtime.py"),
        served.join("mlserver_runtime.py"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        served.join("digits/model-settings.json"),
        r#"{"name": "digits", "implementation": "mlserver_runtime.OnnxRuntime", "parameters": {"uri": "./model.onnx"}}"#,
    )
    .map_err(|e| e.to_string())?;

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let body_of = |prefix: &'static str| {
        let dir = scratch.clone();
        Box::new(move |b: usize| dir.join(format!("{prefix}-{b}.json")))
            as Box<dyn Fn(usize) -> PathBuf>
    };
    let contenders = vec![
        Contender {
            name: "mlops serve",
            start: {
                let (mlops, registry) = (mlops.clone(), registry.clone());
                Box::new(move |port| {
                    let mut c = Command::new(&mlops);
                    c.args(["serve", "--quiet", "--port", &port.to_string()])
                        .args(["--model", "digits-mlp@1", "--registry"])
                        .arg(&registry);
                    c
                })
            },
            health: "/ping",
            predict: "/invocations",
            body: body_of("instances"),
        },
        Contender {
            name: "MLServer",
            start: {
                let (venv, served) = (venv.clone(), served.clone());
                Box::new(move |port| {
                    let settings = serde_json::json!({
                        "host": "127.0.0.1",
                        "http_port": port,
                        "grpc_port": free_port().unwrap_or(0),
                        "metrics_endpoint": null,
                        "parallel_workers": cores,
                    });
                    let _ = std::fs::write(served.join("settings.json"), settings.to_string());
                    let mut c = Command::new(venv.join("mlserver"));
                    c.arg("start").arg(&served).current_dir(&served);
                    c.env("PYTHONPATH", &served);
                    c
                })
            },
            // The model's own readiness: the server's says ready before the model has loaded.
            health: "/v2/models/digits/ready",
            predict: "/v2/models/digits/infer",
            body: body_of("v2"),
        },
        Contender {
            name: "FastAPI + onnxruntime",
            start: {
                let (python, here, model) = (python.clone(), here.clone(), model.clone());
                Box::new(move |port| {
                    let mut c = Command::new(&python);
                    c.args(["-m", "uvicorn", "fastapi_app:app", "--app-dir"])
                        .arg(&here)
                        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                        .args(["--workers", &cores.to_string()])
                        .args(["--no-access-log", "--log-level", "warning"])
                        .env("MLOPS_BENCH_MODEL", &model);
                    c
                })
            },
            health: "/ping",
            predict: "/invocations",
            body: body_of("instances"),
        },
    ];

    println!(
        "bench serve-onnx: {} (holdout accuracy {:.4} as mlops measured it), {cores} cores; each server alone on the machine with oha",
        model.display(),
        card["holdout_metrics"]["accuracy"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );

    // Load: each shape, each server in turn, ROUNDS rounds.
    let shapes = [(1usize, 64u32), (256, 4)];
    let mut figures: Vec<Vec<(Vec<f64>, Vec<f64>)>> =
        vec![vec![(Vec::new(), Vec::new()); shapes.len()]; contenders.len()];
    for round in 1..=ROUNDS {
        for (i, c) in contenders.iter().enumerate() {
            let (server, port, _) = start(c)?;
            // A warm-up, so that lazy initialisation (MLServer's workers) is not measured.
            load(&oha, port, c, (1, 4), 2)?;
            for (s, (batch, connections)) in shapes.iter().enumerate() {
                let (rows, p99) = load(&oha, port, c, (*batch, *connections), LOAD_SECONDS)?;
                println!(
                    "round {round}: {:<22} {batch:>3}-row requests, {connections:>2} connections: {rows:>10.0} rows/s, p99 {p99:.2} ms",
                    c.name
                );
                if let Some((r, p)) = figures.get_mut(i).and_then(|f| f.get_mut(s)) {
                    r.push(rows);
                    p.push(p99);
                }
            }
            drop(server);
        }
    }

    // The 1-row load again with oha on a CPU of its own: sharing the cores, oha's CPU time
    // grows with the rate it drives, so it takes the most from the fastest server and the
    // shared placement understates the gap. Each server on CPU 0, oha on CPU 1.
    let isolated = cores >= 2 && Command::new("taskset").arg("-V").output().is_ok();
    let mut alone: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); contenders.len()];
    if isolated {
        for round in 1..=ROUNDS {
            for (i, c) in contenders.iter().enumerate() {
                let (server, port, _) = start_on(c, Some("0"))?;
                load_on(&oha, port, c, (1, 4), 2, Some("1"))?;
                let (rows, p99) = load_on(&oha, port, c, (1, 64), LOAD_SECONDS, Some("1"))?;
                println!(
                    "round {round}: {:<22}   1-row requests, 64 connections, server on CPU 0 and oha on CPU 1: {rows:>10.0} rows/s, p99 {p99:.2} ms",
                    c.name
                );
                if let Some((r, p)) = alone.get_mut(i) {
                    r.push(rows);
                    p.push(p99);
                }
                drop(server);
            }
        }
    }

    // Cold starts.
    let mut colds = Vec::new();
    for c in &contenders {
        let mut times = Vec::new();
        for _ in 0..STARTS {
            let (server, _, took) = start(c)?;
            drop(server);
            times.push(took.as_secs_f64() * 1000.0);
        }
        let m = median_f64(times.clone());
        println!(
            "cold start {:<22} exec to the first 200 on {}: median {m:.1} ms (of {:?})",
            c.name,
            c.health,
            times.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>()
        );
        colds.push(m);
    }

    // In process: tract against onnxruntime on the same rows.
    let rows = scratch.join("rows.csv");
    let tract = json_lines(
        Command::new(&throughput)
            .arg(&model)
            .arg(&rows)
            .args(["64", "3", "1", "256"]),
        "throughput (tract)",
    )?;
    let ort = json_lines(
        Command::new(&python)
            .arg(here.join("helper.py"))
            .arg("inprocess")
            .arg(&model)
            .arg(&rows)
            .args(["3", "1", "256"]),
        "helper.py inprocess (onnxruntime)",
    )?;

    println!("\nmedians of {ROUNDS} rounds ({LOAD_SECONDS} s each):");
    let names: Vec<&str> = contenders.iter().map(|c| c.name).collect();
    let medians = |runs: Vec<&(Vec<f64>, Vec<f64>)>| -> Vec<(f64, f64)> {
        runs.into_iter()
            .map(|(r, p)| (median_f64(r.clone()), median_f64(p.clone())))
            .collect()
    };
    for (s, (batch, connections)) in shapes.iter().enumerate() {
        let runs = figures.iter().filter_map(|f| f.get(s)).collect();
        compare(
            &format!("{batch}-row requests at {connections} connections"),
            &names,
            &medians(runs),
        );
    }
    if isolated {
        compare(
            "1-row requests at 64 connections, server on CPU 0 and oha on CPU 1",
            &names,
            &medians(alone.iter().collect()),
        );
    }
    let ours = colds.first().copied().unwrap_or(f64::NAN);
    for (c, cold) in contenders.iter().zip(&colds).skip(1) {
        println!(
            "cold start: mlops serve {ours:.1} ms, {} {cold:.1} ms: {:.1}x faster",
            c.name,
            cold / ours
        );
    }
    println!(
        "cold start goal: under 100 ms: {}",
        super::goal(ours < 100.0)
    );
    for t in &tract {
        let batch = t["batch"].as_u64().unwrap_or(0);
        let ours = t["rows_per_second"].as_f64().unwrap_or(0.0);
        for o in ort.iter().filter(|o| o["batch"].as_u64() == Some(batch)) {
            let theirs = o["rows_per_second"].as_f64().unwrap_or(0.0);
            let threads = match o["threads"].as_u64() {
                Some(0) => "its default threads".to_owned(),
                Some(n) => format!("{n} thread"),
                None => "?".to_owned(),
            };
            println!(
                "in process, batches of {batch}: tract {ours:.0} rows/s, onnxruntime ({threads}) {theirs:.0} rows/s: ratio {:.2}x",
                ours / theirs.max(f64::MIN_POSITIVE)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
