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
        other => Err(format!(
            "unknown benchmark `{other}`; known: validate, yaml"
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

fn release_binary() -> Result<PathBuf, String> {
    crate::run(cargo().args(["build", "--release", "--locked", "-p", "mlops"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target.join("release").join("mlops"))
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
        // Both must accept the manifest, or the comparison means nothing.
        let (_, a) = time(&mut ours())?;
        let (_, b) = time(&mut theirs())?;
        if a != 0 || b != 0 {
            return Err(format!(
                "{case}: expected both tools to accept it (mlops exit {a}, check-jsonschema exit {b})"
            ));
        }
        let (mut mine, mut other) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            mine.push(time(&mut ours())?.0);
            other.push(time(&mut theirs())?.0);
        }
        let (m, o) = (median(mine), median(other));
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
