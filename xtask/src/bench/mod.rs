//! Benchmarks that run our code and the named competitor side by side in one run and print the
//! ratio. Figures go to BENCHMARKS.md with the machine and the command.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, tools};

mod action_start;
mod holdout;
mod monitor;
mod predict;
mod serve_onnx;
mod train;
mod wide;

pub(crate) fn run(name: &str) -> Result<(), String> {
    match name {
        "validate" => validate(),
        "yaml" => yaml(),
        "render" => render(),
        "train" => train::run(),
        "holdout" => holdout::run(),
        "init" => init(),
        "run" => run_loop(),
        "action-start" => action_start::run(),
        "serve-onnx" => serve_onnx::run(),
        "wide" => wide::run(),
        "monitor" => monitor::run(),
        "predict" => predict::run(),
        other => Err(format!(
            "unknown benchmark `{other}`; known: validate, yaml, render, train, holdout, init, run, action-start, serve-onnx, wide, monitor, predict"
        )),
    }
}

/// How a goal line says whether the goal was met.
fn goal(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(cmd: &mut Command) -> Result<(Duration, i32), String> {
    let t = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    Ok((t.elapsed(), status.code().unwrap_or(-1)))
}

/// Runs each command once (both must succeed, or the comparison means nothing), then `runs`
/// times each, interleaved; returns the medians (ours, theirs).
fn interleaved(
    case: &str,
    competitor: &str,
    runs: usize,
    mut ours: impl FnMut() -> Command,
    mut theirs: impl FnMut() -> Command,
) -> Result<(Duration, Duration), String> {
    let (_, a) = time(&mut ours())?;
    let (_, b) = time(&mut theirs())?;
    if a != 0 || b != 0 {
        return Err(format!(
            "{case}: expected both tools to succeed (mlops exit {a}, {competitor} exit {b})"
        ));
    }
    let (mut mine, mut other) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        mine.push(time(&mut ours())?.0);
        other.push(time(&mut theirs())?.0);
    }
    Ok((median(mine), median(other)))
}

/// The release build of `mlops` the actions make from a checkout (actions/lib/mlops.sh): with
/// the wgpu back end, as released.
pub(crate) const RELEASE_BUILD: [&str; 7] = [
    "build",
    "--release",
    "--locked",
    "-p",
    "mlops",
    "--features",
    "wgpu",
];

fn release_binary() -> Result<PathBuf, String> {
    crate::run(cargo().args(RELEASE_BUILD))?;
    Ok(crate::target_dir().join("release").join("mlops"))
}

/// `mlops validate` against `check-jsonschema` on the same manifests and schema: whole process,
/// interleaved, median.
fn validate() -> Result<(), String> {
    let bin = tools()?;
    let mlops = release_binary()?;
    let schema = root().join("schema/mlops.schema.json");
    let cases = [
        "examples/quickstart/mlops.yaml",
        "examples/sagemaker/mlops.yaml",
    ];
    let runs = 21;
    println!(
        "bench validate: {runs} interleaved runs per tool and manifest, whole process, median"
    );
    println!(
        "{:<34} {:>12} {:>18} {:>8}",
        "manifest", "mlops", "check-jsonschema", "ratio"
    );
    let mut worst_ratio = f64::INFINITY;
    let mut worst_ms: f64 = 0.0;
    for case in cases {
        let manifest = root().join(case);
        let ours = || {
            let mut c = Command::new(&mlops);
            c.args(["validate", "--format", "json", "--manifest"])
                .arg(&manifest)
                .env_remove("GITHUB_ACTIONS");
            c
        };
        let theirs = || {
            let mut c = Command::new(bin.join("check-jsonschema"));
            c.arg("--schemafile").arg(&schema).arg(&manifest);
            c
        };
        let (m, o) = interleaved(case, "check-jsonschema", runs, ours, theirs)?;
        let ratio = o.as_secs_f64() / m.as_secs_f64();
        worst_ratio = worst_ratio.min(ratio);
        worst_ms = worst_ms.max(m.as_secs_f64() * 1e3);
        println!(
            "{:<34} {:>10.2}ms {:>16.1}ms {:>7.1}x",
            case,
            m.as_secs_f64() * 1e3,
            o.as_secs_f64() * 1e3,
            ratio
        );
    }
    println!(
        "goal: >= 20x faster and < 20 ms per invocation: {} (worst ratio {worst_ratio:.1}x, slowest {worst_ms:.2} ms)",
        if worst_ratio >= 20.0 && worst_ms < 20.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// `mlops render` of each example against `cookiecutter` rendering a template tree of the same
/// files (our rendered output with the project's name and repository as cookiecutter variables):
/// whole process, fresh output directory each run, interleaved, median.
fn render() -> Result<(), String> {
    let bin = tools()?;
    let mlops = release_binary()?;
    let cases = ["examples/quickstart", "examples/sagemaker"];
    let runs = 15;
    let scratch = tempdir("bench-render")?;
    println!("bench render: {runs} interleaved runs per tool and example, whole process, median");
    println!(
        "{:<22} {:>6} {:>12} {:>14} {:>8}",
        "example", "files", "mlops", "cookiecutter", "ratio"
    );
    let mut worst = f64::INFINITY;
    for (i, case) in cases.iter().enumerate() {
        let manifest = root().join(case).join("mlops.yaml");
        // Our rendering once, to build the equivalent cookiecutter template from it.
        let reference = scratch.join(format!("reference-{i}"));
        crate::run(
            Command::new(&mlops)
                .args(["render", "--format", "json", "--manifest"])
                .arg(&manifest)
                .arg("--out")
                .arg(&reference),
        )?;
        let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
                .unwrap_or_default()
        };
        let (project, repository) = (field("name:"), field("repository:"));
        let template = scratch.join(format!("template-{i}"));
        let files = cookiecutter_template(&reference, &template, &project, &repository)?;
        let mut n = 0;
        let ours = || {
            n += 1;
            let mut c = Command::new(&mlops);
            c.args(["render", "--manifest"])
                .arg(&manifest)
                .arg("--out")
                .arg(scratch.join(format!("ours-{i}-{n}")))
                .env_remove("GITHUB_ACTIONS");
            c
        };
        let mut m = 0;
        let theirs = || {
            m += 1;
            let mut c = Command::new(bin.join("cookiecutter"));
            c.arg(&template)
                .args(["--no-input", "-f", "-o"])
                .arg(scratch.join(format!("theirs-{i}-{m}")));
            c
        };
        let (ms, theirs_ms, ratio) = versus_cookiecutter(case, runs, ours, theirs)?;
        worst = worst.min(ratio);
        println!("{case:<22} {files:>6} {ms:>10.2}ms {theirs_ms:>12.1}ms {ratio:>7.1}x");
    }
    cookiecutter_goal(&scratch, worst);
    Ok(())
}

/// One case against cookiecutter, interleaved: our and its median in ms, and the ratio.
fn versus_cookiecutter(
    case: &str,
    runs: usize,
    ours: impl FnMut() -> Command,
    theirs: impl FnMut() -> Command,
) -> Result<(f64, f64, f64), String> {
    let (mm, oo) = interleaved(case, "cookiecutter", runs, ours, theirs)?;
    Ok((
        mm.as_secs_f64() * 1e3,
        oo.as_secs_f64() * 1e3,
        oo.as_secs_f64() / mm.as_secs_f64(),
    ))
}

/// Deletes the scratch directory and prints whether the 10x goal against cookiecutter was met.
fn cookiecutter_goal(scratch: &std::path::Path, worst: f64) {
    let _ = std::fs::remove_dir_all(scratch);
    println!(
        "goal: >= 10x faster than cookiecutter: {} (worst ratio {worst:.1}x)",
        if worst >= 10.0 { "met" } else { "NOT met" }
    );
}

/// `mlops init` against `cookiecutter` on the same templates and answers (the parity tests'
/// feature template, and the sagemaker example's rendered tree as a template): whole process,
/// fresh output directory each run, interleaved, median.
fn init() -> Result<(), String> {
    let bin = tools()?;
    let mlops = release_binary()?;
    let runs = 15;
    let scratch = tempdir("bench-init")?;
    // The sagemaker example's rendered files as a cookiecutter template.
    let reference = scratch.join("reference");
    crate::run(
        Command::new(&mlops)
            .args(["render", "--format", "json", "--manifest"])
            .arg(root().join("examples/sagemaker/mlops.yaml"))
            .arg("--out")
            .arg(&reference),
    )?;
    let tree = scratch.join("template-sagemaker");
    let files = cookiecutter_template(&reference, &tree, "churn", "acme/churn-model")?;
    let cases = [
        (
            "fixtures/templates/full".to_owned(),
            root().join("tests/fixtures/templates/full"),
        ),
        (format!("sagemaker tree ({files} files)"), tree),
    ];
    let config = scratch.join("cookiecutter.yaml");
    std::fs::write(
        &config,
        format!("replay_dir: \"{}\"\n", scratch.join("replay").display()),
    )
    .map_err(|e| e.to_string())?;
    println!("bench init: {runs} interleaved runs per tool and template, whole process, median");
    println!(
        "{:<30} {:>12} {:>14} {:>8}",
        "template", "mlops", "cookiecutter", "ratio"
    );
    let mut worst = f64::INFINITY;
    for (i, (case, template)) in cases.iter().enumerate() {
        let mut n = 0;
        let ours = || {
            n += 1;
            let mut c = Command::new(&mlops);
            c.arg("init")
                .arg(scratch.join(format!("ours-{i}-{n}")))
                .arg("--template")
                .arg(template)
                .arg("--no-input");
            c
        };
        let mut m = 0;
        let theirs = || {
            m += 1;
            let mut c = Command::new(bin.join("cookiecutter"));
            c.arg(template)
                .arg("--config-file")
                .arg(&config)
                .args(["--no-input", "-o"])
                .arg(scratch.join(format!("theirs-{i}-{m}")));
            c
        };
        let (ms, theirs_ms, ratio) = versus_cookiecutter(case, runs, ours, theirs)?;
        worst = worst.min(ratio);
        println!("{case:<30} {ms:>10.2}ms {theirs_ms:>12.1}ms {ratio:>7.1}x");
    }
    cookiecutter_goal(&scratch, worst);
    Ok(())
}

/// `mlops run` on a fresh copy of the quickstart, built as the README's first command builds it
/// (a debug build: burn's numeric crates are optimised even there). No competitor runs the same
/// loop, so this one reports the wall time and each stage's median against the issue's goal:
/// under 60 s on 2 cores after the build.
fn run_loop() -> Result<(), String> {
    crate::run(cargo().args(["build", "--locked", "-p", "mlops"]))?;
    let mlops = crate::target_dir().join("debug").join("mlops");
    let scratch = tempdir("bench-run")?;
    let runs = 5;
    let mut walls = Vec::new();
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..runs {
        let dir = scratch.join(format!("quickstart-{i}"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let src = root().join("examples/quickstart");
        std::fs::copy(src.join("mlops.yaml"), dir.join("mlops.yaml")).map_err(|e| e.to_string())?;
        for f in ["digits-train.csv", "digits-holdout.csv"] {
            std::fs::copy(src.join("data").join(f), data.join(f)).map_err(|e| e.to_string())?;
        }
        let started = Instant::now();
        let out = Command::new(&mlops)
            .current_dir(&dir)
            .args(["run", "--format", "json", "--manifest", "mlops.yaml"])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start mlops: {e}"))?;
        walls.push(started.elapsed());
        if !out.status.success() {
            return Err(format!("mlops run failed (exit {:?})", out.status.code()));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("run.json: {e}"))?;
        for s in doc["stages"].as_array().into_iter().flatten() {
            let name = s["stage"].as_str().unwrap_or("?").to_owned();
            let secs = s["seconds"].as_f64().unwrap_or_default();
            match stages.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(secs),
                None => stages.push((name, vec![secs])),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "bench run: `mlops run` on a fresh copy of examples/quickstart, debug build, {runs} runs, medians"
    );
    println!("{:<10} {:>10}", "stage", "seconds");
    for (name, mut v) in stages {
        v.sort_by(f64::total_cmp);
        println!("{name:<10} {:>10.3}", v[v.len() / 2]);
    }
    let wall = median(walls).as_secs_f64();
    println!("{:<10} {wall:>10.3}", "wall");
    println!(
        "goal: under 60 s wall on 2 cores: {}",
        if wall < 60.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

fn tempdir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("mlops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Writes a cookiecutter template whose output is the tree under `reference`, with `project` and
/// `repository` substituted from cookiecutter variables. Returns the number of files.
fn cookiecutter_template(
    reference: &std::path::Path,
    template: &std::path::Path,
    project: &str,
    repository: &str,
) -> Result<usize, String> {
    let body = template.join("{{cookiecutter.project}}");
    std::fs::create_dir_all(&body).map_err(|e| e.to_string())?;
    std::fs::write(
        template.join("cookiecutter.json"),
        format!(r#"{{"project": "{project}", "repository": "{repository}"}}"#),
    )
    .map_err(|e| e.to_string())?;
    let mut count = 0;
    let mut stack = vec![reference.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(reference).map_err(|e| e.to_string())?;
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            // Raw blocks keep GitHub's `${{ }}` literal; the variables open holes in them.
            let templated = format!(
                "{{% raw %}}{}{{% endraw %}}\n",
                text.replace(
                    repository,
                    "{% endraw %}{{ cookiecutter.repository }}{% raw %}"
                )
                .replace(project, "{% endraw %}{{ cookiecutter.project }}{% raw %}")
            );
            let out = body.join(rel);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(out, templated).map_err(|e| e.to_string())?;
            count += 1;
        }
    }
    Ok(count)
}

/// Parses the example manifests with each candidate YAML crate, in process.
fn yaml() -> Result<(), String> {
    use mlops_manifest::Manifest;
    let iters = 2000;
    println!(
        "bench yaml: parse each example manifest {iters} times per candidate, in process (debug builds distort this: run with --release)"
    );
    println!(
        "{:<34} {:<44} {:>10} {:>8}",
        "manifest", "candidate", "per parse", "spans"
    );
    for case in [
        "examples/quickstart/mlops.yaml",
        "examples/sagemaker/mlops.yaml",
    ] {
        let text =
            std::fs::read_to_string(root().join(case)).map_err(|e| format!("{case}: {e}"))?;
        let measure = |name: &str, spans: &str, f: &dyn Fn() -> bool| -> Result<(), String> {
            if !f() {
                return Err(format!("{name} failed to parse {case}"));
            }
            let t = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(f());
            }
            let per = t.elapsed() / iters;
            println!(
                "{:<34} {:<44} {:>8.1}µs {:>8}",
                case,
                name,
                per.as_secs_f64() * 1e6,
                spans
            );
            Ok(())
        };
        measure(
            "saphyr-parser events -> mlops tree (chosen)",
            "yes",
            &|| mlops_manifest::yaml::parse(&text, Default::default()).is_ok(),
        )?;
        measure(
            "mlops tree -> JSON -> schema -> typed (full)",
            "yes",
            &|| mlops_manifest::check_bytes("m.yaml", text.as_bytes()).is_valid(),
        )?;
        measure("serde-saphyr -> typed Manifest", "no*", &|| {
            serde_saphyr::from_str::<Manifest>(&text).is_ok()
        })?;
        measure("serde_norway -> typed Manifest", "no", &|| {
            serde_norway::from_str::<Manifest>(&text).is_ok()
        })?;
        measure("marked-yaml node tree", "yes", &|| {
            marked_yaml::parse_yaml(0, &text).is_ok()
        })?;
    }
    println!("* serde-saphyr has Spanned<T> fields, but only where the type asks for them.");
    Ok(())
}

/// `GET url` (plain HTTP on 127.0.0.1): the body of the answer.
fn get(url: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map_or(answer.as_str(), |(_, body)| body)
        .to_owned())
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `mlops train --format json` of `manifest` into `registry`: its JSON line (the version's
/// metrics and status).
fn train(
    mlops: &std::path::Path,
    manifest: &std::path::Path,
    registry: &std::path::Path,
) -> Result<serde_json::Value, String> {
    let trained = Command::new(mlops)
        .args(["train", "--format", "json", "--manifest"])
        .arg(manifest)
        .arg("--registry")
        .arg(registry)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .map_err(|e| format!("mlops train: {e}"))?;
    json_line(&trained, "mlops train")
}

fn json_line(out: &std::process::Output, who: &str) -> Result<serde_json::Value, String> {
    if !out.status.success() {
        return Err(format!(
            "{who} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("{who} printed no JSON ({e}): {text}"))
}
