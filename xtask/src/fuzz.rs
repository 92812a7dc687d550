//! `cargo xtask fuzz [TARGET] [--seconds N]`: the fuzz targets in `tests/fuzz` under libFuzzer
//! (cargo-fuzz on the nightly toolchain), each input held to a time limit so that a slow path
//! fails like a crash. Seeds are the test fixtures and the saved regressions
//! (`tests/fuzz/regressions/TARGET/`, replayed first on every run); the corpus grows in the cache
//! directory between runs. `cargo xtask ci` runs every target briefly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cache_dir, root};

/// cargo-fuzz, installed into the cache directory at this version.
const CARGO_FUZZ: &str = "0.13.2";

/// The longest input, in bytes (the request limit is larger; a parser's slow paths show at far
/// less).
const MAX_LEN: u32 = 65_536;

/// Seconds one input may take (the sanitised build is several times slower than release; an
/// input of `MAX_LEN` bytes takes milliseconds on every linear path).
const TIMEOUT_SECONDS: u32 = 3;

/// A target and where its seeds come from: files under the repository root whose path ends
/// with one of `suffixes` and contains `within`, and seeds written here.
struct Target {
    name: &'static str,
    within: &'static [&'static str],
    suffixes: &'static [&'static str],
    inline: &'static [&'static str],
}

const TARGETS: &[Target] = &[
    Target {
        name: "csv_records",
        within: &["examples/", "tests/fixtures/"],
        suffixes: &[".csv"],
        inline: &["a,b\r1,2\r3,4\r", "a,\"b\nc\",d\r\n1,\"2\"\"\",3\n"],
    },
    Target {
        name: "request_body",
        within: &["examples/", "tests/fixtures/"],
        suffixes: &[".csv"],
        inline: &[
            "a,b,c\n1,2,3\n4,5,6\n",
            r#"{"instances": [[1, 2, 3], [4, 5, 6]]}"#,
            r#"{"instances": [{"a": 1, "b": 2, "c": 3}]}"#,
            r#"{"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}"#,
        ],
    },
    Target {
        name: "manifest",
        within: &["examples/", "tests/fixtures/"],
        suffixes: &["mlops.yaml", ".yaml"],
        inline: &["project: {name: x, unclosed: [1, 2\n", "a: 'open\n"],
    },
    Target {
        name: "pin",
        within: &["tests/fixtures/"],
        suffixes: &[".pin.yaml"],
        inline: &[],
    },
    Target {
        name: "codeowners",
        within: &["tests/fixtures/"],
        suffixes: &["CODEOWNERS"],
        inline: &[
            "* @org/all\n/deploy/ @org/ml-leads @alice\n*.pin.yaml @bob # pins\n",
            "docs/**/*.md @writers\n!a @x\n\\#x @y\n[Section]\n",
        ],
    },
    Target {
        name: "init_path",
        within: &[],
        suffixes: &[],
        inline: &[
            "{{cookiecutter.name}}/src\nproj",
            "{{ cookiecutter.name | lower }}-{{ cookiecutter.n }}\nA/B",
            "{% if cookiecutter.n > 2 %}x{% endif %}\n..",
        ],
    },
];

/// Figures from one target's run.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub target: String,
    pub seconds: u32,
    pub executions: u64,
    pub per_second: u64,
    pub corpus: usize,
    pub new_units: u64,
}

pub(crate) fn run_task(args: &[&str]) -> Result<(), String> {
    let mut seconds = 60;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match *a {
            "--seconds" => {
                seconds = rest
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a whole number")?;
            }
            name if TARGETS.iter().any(|t| t.name == name) => only = Some(name),
            other => {
                return Err(format!(
                    "unknown fuzz target `{other}`; the targets are {}",
                    TARGETS
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let figures = fuzz(only, seconds)?;
    print_figures(&figures);
    Ok(())
}

/// Runs every target (or `only`) for `seconds` each; their figures.
pub(crate) fn fuzz(only: Option<&str>, seconds: u32) -> Result<Vec<Figures>, String> {
    let cargo_fuzz = install()?;
    let mut out = Vec::new();
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == t.name)) {
        out.push(one(&cargo_fuzz, target, seconds)?);
    }
    Ok(out)
}

pub(crate) fn print_figures(figures: &[Figures]) {
    println!("target          seconds  executions  exec/s  corpus  new");
    for f in figures {
        println!(
            "{:<15} {:>7}  {:>10}  {:>6}  {:>6}  {:>3}",
            f.target, f.seconds, f.executions, f.per_second, f.corpus, f.new_units
        );
    }
}

/// cargo-fuzz's bin directory, installing it there first if needed; checks that the nightly
/// toolchain is there.
fn install() -> Result<PathBuf, String> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        return Err(
            "fuzzing needs the nightly toolchain: `rustup toolchain install nightly`".into(),
        );
    }
    crate::cargo_tool("cargo-fuzz", CARGO_FUZZ)
}

/// Copies the seeds of `target` into a fresh directory.
fn seeds(target: &Target, dir: &Path) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut n = 0;
    let mut put = |bytes: &[u8]| -> Result<(), String> {
        n += 1;
        let file = dir.join(format!("seed-{n:04}"));
        std::fs::write(&file, bytes).map_err(|e| io(&file, e))
    };
    for text in target.inline {
        put(text.as_bytes())?;
    }
    if target.name == "pin" {
        put(example_pin().as_bytes())?;
    }
    let repo = root();
    let mut stack: Vec<PathBuf> = target.within.iter().map(|w| repo.join(w)).collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&repo).unwrap_or(&path).to_string_lossy();
            if target.suffixes.iter().any(|s| rel.ends_with(s)) {
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                put(&bytes)?;
            }
        }
    }
    if target.name == "init_path" {
        // The fixture templates' own file and directory names.
        let mut stack = vec![repo.join("tests/fixtures/templates")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains("{{") || name.contains("{%") {
                    put(format!("{name}\nproj").as_bytes())?;
                }
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
    }
    let regressions = repo.join("tests/fuzz/regressions").join(target.name);
    for e in std::fs::read_dir(&regressions)
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.path().is_file() && e.file_name() != "README.md" {
            let bytes = std::fs::read(e.path()).map_err(|err| io(&e.path(), err))?;
            put(&bytes)?;
        }
    }
    Ok(())
}

/// A pin as `mlops promote` writes it.
fn example_pin() -> String {
    use mlops_artifacts::pin::{Artifact, Pin, PinnedComparison, PinnedHoldout, PinnedModel};
    Pin {
        version: 1,
        model: PinnedModel {
            name: "digits-mlp".into(),
            version: 3,
            registry: "s3://ml-registry/models".into(),
            artifact: Artifact {
                uri: "s3://ml-registry/models/digits-mlp/3".into(),
                sha256: "ab".repeat(32),
            },
            image: Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops@sha256:cd".into()),
        },
        manifest_sha256: "ef".repeat(32),
        holdout: Some(PinnedHoldout {
            passed: true,
            report_sha256: "01".repeat(32),
            compared_with: Some(PinnedComparison {
                model: "digits-mlp@2".into(),
                artifact_sha256: "23".repeat(32),
                passed: true,
            }),
        }),
    }
    .to_yaml("production")
}

fn one(cargo_fuzz: &Path, target: &Target, seconds: u32) -> Result<Figures, String> {
    let base = cache_dir().join("fuzz");
    let seed_dir = base.join("seeds").join(target.name);
    let corpus = base.join("corpus").join(target.name);
    let artifacts = base.join("artifacts").join(target.name);
    seeds(target, &seed_dir)?;
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut c = Command::new(cargo_fuzz);
    c.current_dir(root())
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "tests/fuzz"])
        .arg(target.name)
        .arg(&corpus)
        .arg(&seed_dir)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .env("CARGO_TARGET_DIR", cache_dir().join("fuzz-target"));
    // `cargo-fuzz` is run directly (not as `cargo fuzz`), so it finds the toolchain through the
    // `+nightly` argument, which only rustup's cargo proxy understands: run it through rustup.
    let mut c = {
        let mut r = Command::new("rustup");
        r.args(["run", "nightly"])
            .arg(c.get_program())
            .args(c.get_args().skip(1))
            .current_dir(root());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                r.env(k, v);
            }
        }
        r
    };
    eprintln!("xtask fuzz: {} for {seconds} s", target.name);
    let output = c
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start cargo-fuzz: {e}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let found: Vec<String> = std::fs::read_dir(&artifacts)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "fuzz target {} failed:\n{}\nfound: {}\nfix the cause, then save the input as a \
             regression: tests/fuzz/regressions/{}/NAME (replayed by every fuzz run)",
            target.name,
            tail.join("\n"),
            found.join(", "),
            target.name
        ));
    }
    let stat = |name: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
    Ok(Figures {
        target: target.name.to_owned(),
        seconds,
        executions: stat("number_of_executed_units"),
        per_second: stat("average_exec_per_sec"),
        corpus: corpus_size,
        new_units: stat("new_units_added"),
    })
}
