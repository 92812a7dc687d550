//! Benchmarks that run our code and the named competitor side by side in one run and print the
//! ratio. Figures go to BENCHMARKS.md with the machine and the command.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, tools};

pub(crate) fn run(name: &str) -> Result<(), String> {
    match name {
        "validate" => validate(),
        "yaml" => yaml(),
        "render" => render(),
        other => Err(format!(
            "unknown benchmark `{other}`; known: validate, yaml, render"
        )),
    }
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

fn release_binary() -> Result<PathBuf, String> {
    crate::run(cargo().args(["build", "--release", "--locked", "-p", "mlops"]))?;
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
        let (mm, oo) = interleaved(case, "cookiecutter", runs, ours, theirs)?;
        let ratio = oo.as_secs_f64() / mm.as_secs_f64();
        worst = worst.min(ratio);
        println!(
            "{:<22} {:>6} {:>10.2}ms {:>12.1}ms {:>7.1}x",
            case,
            files,
            mm.as_secs_f64() * 1e3,
            oo.as_secs_f64() * 1e3,
            ratio
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "goal: >= 10x faster than cookiecutter: {} (worst ratio {worst:.1}x)",
        if worst >= 10.0 { "met" } else { "NOT met" }
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
