//! The composite actions and the rendered workflows, run for real: each test workflow in
//! `tests/workflows/`, and the rendered CI, train, release and gate workflows, runs under
//! `act` (no Docker: the job runs on this machine) with the freshly built `mlops`, and the
//! actions and workflows pass actionlint and zizmor.
//!
//! The tools come from `cargo xtask tools` (which `cargo xtask ci` runs). Without them these tests
//! say so and pass, unless `MLOPS_REQUIRE_TOOLS=1` (set by `cargo xtask ci`), where a missing tool
//! is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker;
use crate::http;
use crate::moto;
use crate::server;
use crate::tools;
use tools::tool;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `actions/cache` the composite actions pin (for a source build of `mlops`).
const CACHE_ACTION: &str = "actions/cache@0400d5f644dc74513175e3cd8d07132dd4860809";

/// A stand-in for `actions/cache`, which act would clone from the network, in a directory of
/// its own: it restores nothing (a cache miss) and saves nothing, and fails when it is given no
/// `path` or no `key`.
fn cache_stand_in() -> tempfile::TempDir {
    action_dir(
        "name: stand-in cache\ndescription: test stand-in\ninputs:\n  path:\n    required: true\n  key:\n    required: true\noutputs:\n  cache-hit:\n    description: stand-in\n    value: ''\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        CACHE_PATH: ${{ inputs.path }}\n        CACHE_KEY: ${{ inputs.key }}\n      run: test -n \"$CACHE_PATH\" && test -n \"$CACHE_KEY\"\n",
    )
}

/// A directory holding one composite action, `action_yml`: a stand-in for act's
/// `--local-repository`.
fn action_dir(action_yml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("action.yml"), action_yml).expect("write");
    dir
}

/// One line of `act --json` output.
type Event = serde_json::Value;

struct ActRun {
    code: Option<i32>,
    events: Vec<Event>,
    log: String,
}

/// Runs `workflow` under act with the repository variables given, in a private cache directory.
fn act(workflow: &str, vars: &[(&str, &str)]) -> Option<ActRun> {
    let mut args: Vec<String> = vec!["push".into(), "-W".into(), workflow.into()];
    for (k, v) in vars {
        args.extend(["--var".into(), format!("{k}={v}")]);
    }
    act_in(&root(), &args)
}

/// Runs act in `dir` with `args` and the settings every run here shares: JSON lines, no Docker
/// (`-self-hosted`), no cache server, a private action cache, and the freshly built `mlops`.
fn act_in(dir: &Path, args: &[String]) -> Option<ActRun> {
    let bin = format!("MLOPS_BIN={}", env!("CARGO_BIN_EXE_mlops"));
    let mut all = vec!["--env".to_owned(), bin];
    all.extend_from_slice(args);
    act_bare(dir, &all)
}

/// `act_in` without the freshly built `mlops`: the actions install theirs.
fn act_bare(dir: &Path, args: &[String]) -> Option<ActRun> {
    let cache = tempfile::tempdir().expect("tempdir");
    act_cached(dir, args, cache.path())
}

/// `act_bare` with the action cache in `cache` (act keeps the runner's tool cache,
/// `RUNNER_TOOL_CACHE`, in its `tool_cache/`), so that runs can share it.
fn act_cached(dir: &Path, args: &[String], cache: &Path) -> Option<ActRun> {
    let act = tool("act")?;
    let cache_action = cache_stand_in();
    let out = Command::new(act)
        .current_dir(dir)
        .args(args)
        .arg("--local-repository")
        .arg(format!("{CACHE_ACTION}={}", cache_action.path().display()))
        .args(["--json", "--no-cache-server"])
        .args(["-P", "ubuntu-latest=-self-hosted"])
        .arg("--action-cache-path")
        .arg(cache)
        .output()
        .expect("act runs");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let events = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .collect();
    Some(ActRun {
        code: out.status.code(),
        events,
        log,
    })
}

impl ActRun {
    fn with_command<'a>(&'a self, command: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e["command"] == command)
    }

    /// The outputs the `validate` step of the action set.
    fn output(&self, name: &str) -> Option<String> {
        self.with_command("set-output")
            .filter(|e| e["name"] == name)
            .filter_map(|e| e["arg"].as_str().map(str::to_owned))
            .last()
    }
}

#[test]
fn invalid_manifest_becomes_annotations_and_a_failed_job() {
    let Some(run) = act(
        "tests/workflows/validate.yml",
        &[("MANIFEST", "examples/invalid/five-errors.yaml")],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(1), "{}", run.log);
    let errors: Vec<&Event> = run.with_command("error").collect();
    assert_eq!(errors.len(), 5, "{}", run.log);
    let places: Vec<(String, String, String)> = errors
        .iter()
        .map(|e| {
            let kv = &e["kvPairs"];
            let s = |k: &str| kv[k].as_str().unwrap_or_default().to_owned();
            (s("file"), s("line"), s("col"))
        })
        .collect();
    let file = "examples/invalid/five-errors.yaml".to_owned();
    let want: Vec<(String, String, String)> = [
        ("6", "15"),
        ("10", "42"),
        ("17", "14"),
        ("19", "11"),
        ("24", "16"),
    ]
    .iter()
    .map(|(l, c)| (file.clone(), (*l).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(places, want, "{}", run.log);
    assert!(errors.iter().all(|e| {
        e["kvPairs"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("mlops: "))
    }));
    assert_eq!(run.output("valid").as_deref(), Some("false"));
    assert_eq!(run.output("errors").as_deref(), Some("5"));
    assert!(
        run.log.contains("valid=false errors=5"),
        "the action's outputs reach later steps:\n{}",
        run.log
    );
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        summary.contains("| `examples/invalid/five-errors.yaml:24:16` | `schema/type` |"),
        "{summary}"
    );
}

#[test]
fn valid_manifest_passes_the_job() {
    let Some(run) = act(
        "tests/workflows/validate.yml",
        &[("MANIFEST", "examples/quickstart/mlops.yaml")],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(run.with_command("error").count(), 0, "{}", run.log);
    assert_eq!(run.output("valid").as_deref(), Some("true"));
    assert!(run.log.contains("valid=true errors=0"), "{}", run.log);
}

/// The quickstart model trained into a new registry (`digits-mlp@1`) and served by `mlops serve`
/// on loopback (stopped when the server is dropped).
fn served_quickstart() -> (tempfile::TempDir, server::Server) {
    let registry = tempfile::tempdir().expect("tempdir");
    let trained = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(root())
        .env_remove("GITHUB_ACTIONS")
        .args([
            "train",
            "--format",
            "json",
            "--manifest",
            "examples/quickstart/mlops.yaml",
        ])
        .arg("--registry")
        .arg(registry.path())
        .output()
        .expect("trains");
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let mut mlops = Command::new(env!("CARGO_BIN_EXE_mlops"));
    mlops.current_dir(root()).env_remove("MLOPS_MANIFEST");
    let reg = registry.path().to_string_lossy().into_owned();
    let server = server::Server::start(
        mlops,
        &["--quiet", "--model", "digits-mlp@1", "--registry", &reg],
    );
    (registry, server)
}

/// A release server: files of a directory over HTTP on loopback, recording the paths asked for.
struct Releases {
    addr: std::net::SocketAddr,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Releases {
    fn serve(dir: &Path) -> Releases {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dir, log, halt) = (dir.to_path_buf(), asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                log.lock().expect("log").push(path.clone());
                let file = dir.join(path.trim_start_matches('/'));
                let mut stream = reader.into_inner();
                let _ = match std::fs::read(&file) {
                    Ok(body) => stream
                        .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes())
                        .and_then(|()| stream.write_all(&body)),
                    Err(_) => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            }
        });
        Releases {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("log").clone()
    }
}

impl Drop for Releases {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A repository with this project's validate action and install script, a Cargo.toml of version
/// `version`, the quickstart manifest, the validate test workflow, and `checksums` as its
/// committed `actions/lib/checksums.txt`.
fn install_repo(version: &str, checksums: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    let p = repo.path();
    for (from, to) in [
        ("actions/validate/action.yml", "actions/validate/action.yml"),
        ("actions/lib/mlops.sh", "actions/lib/mlops.sh"),
        ("examples/quickstart/mlops.yaml", "mlops.yaml"),
        (
            "tests/workflows/validate.yml",
            ".github/workflows/validate.yml",
        ),
    ] {
        std::fs::create_dir_all(p.join(to).parent().expect("parent")).expect("mkdir");
        std::fs::copy(root().join(from), p.join(to)).expect("copy");
    }
    std::fs::write(p.join("actions/lib/checksums.txt"), checksums).expect("checksums");
    std::fs::write(
        p.join("Cargo.toml"),
        format!("[workspace.package]\nversion = \"{version}\"\n"),
    )
    .expect("Cargo.toml");
    git_in(p, &["init", "-q", "-b", "main"]);
    git_in(p, &["add", "-A"]);
    git_in(p, &["commit", "-qm", "a release"]);
    repo
}

/// The install step of the actions, against a release served locally: a good asset is verified
/// against the checksum committed in the repository, installed in the tool cache and run, and the
/// next run takes it from the cache without downloading; a tampered asset is refused, also when
/// the server offers checksum files that match it (the script never reads them).
#[test]
fn actions_install_only_a_verified_release() {
    if tool("act").is_none() {
        return;
    }
    let target = match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-gnu",
        "aarch64" => "aarch64-unknown-linux-gnu",
        other => panic!("no release target for {other}"),
    };
    let version = "9.9.9";
    let asset = format!("mlops-{version}-{target}.tar.gz");
    let served = tempfile::tempdir().expect("tempdir");
    let release = served.path().join(format!("v{version}"));
    std::fs::create_dir_all(&release).expect("mkdir");
    let packing = tempfile::tempdir().expect("tempdir");
    std::fs::copy(env!("CARGO_BIN_EXE_mlops"), packing.path().join("mlops")).expect("copy");
    let ok = Command::new("tar")
        .args(["-czf"])
        .arg(release.join(&asset))
        .arg("-C")
        .arg(packing.path())
        .arg("mlops")
        .status()
        .expect("tar")
        .success();
    assert!(ok);
    let good = std::fs::read(release.join(&asset)).expect("asset");
    let binary = std::fs::read(packing.path().join("mlops")).expect("binary");
    let checksums = format!(
        "version {version}\n{}  {asset}\n{}  {asset}:mlops\n",
        crate::bin::sha256_hex(&good),
        crate::bin::sha256_hex(&binary)
    );
    let repo = install_repo(version, &checksums);
    let server = Releases::serve(served.path());
    let tool_cache = tempfile::tempdir().expect("tempdir");
    let run = || {
        let args: Vec<String> = [
            "push",
            "-W",
            ".github/workflows/validate.yml",
            "--var",
            "MANIFEST=mlops.yaml",
            "--env",
            &format!("MLOPS_RELEASE_URL=http://{}", server.addr),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        act_cached(repo.path(), &args, tool_cache.path()).expect("act is on PATH")
    };
    let cached = tool_cache
        .path()
        .join(format!("tool_cache/mlops/{version}/{target}/mlops"));

    // Cold: downloaded, verified, cached, run.
    let cold = run();
    assert_eq!(cold.code, Some(0), "{}", cold.log);
    assert!(cold.log.contains("valid=true errors=0"), "{}", cold.log);
    assert!(
        cold.log.contains(&format!("mlops {version}: verified")),
        "{}",
        cold.log
    );
    assert!(cached.is_file(), "{}", cold.log);
    assert_eq!(server.asked(), [format!("/v{version}/{asset}")]);
    // Warm: from the tool cache, hashed again, nothing downloaded.
    let warm = run();
    assert_eq!(warm.code, Some(0), "{}", warm.log);
    assert!(warm.log.contains("from the tool cache"), "{}", warm.log);
    assert!(warm.log.contains("verified again"), "{}", warm.log);
    assert_eq!(server.asked().len(), 1);

    // A cached binary changed behind the script's back (whoever can write the runner's tool
    // cache): it is not run; the verified asset is downloaded and installed again.
    let mut changed = std::fs::read(&cached).expect("cached binary");
    changed.extend_from_slice(b"tampered");
    std::fs::write(&cached, &changed).expect("tamper the cache");
    let again = run();
    assert_eq!(again.code, Some(0), "{}", again.log);
    assert!(
        again
            .log
            .contains("is not the verified release asset's: installing it again"),
        "{}",
        again.log
    );
    assert!(again.log.contains("valid=true errors=0"), "{}", again.log);
    assert_eq!(server.asked().len(), 2, "downloaded again");
    assert_eq!(
        std::fs::read(&cached).expect("reinstalled"),
        std::fs::read(env!("CARGO_BIN_EXE_mlops")).expect("binary")
    );

    // Tampered: another binary under the same name; with, then without, checksum files on the
    // server that match it.
    std::fs::remove_dir_all(tool_cache.path().join("tool_cache/mlops")).expect("empty the cache");
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(release.join(&asset), &tampered).expect("tamper");
    let forged = format!("{}  {asset}\n", crate::bin::sha256_hex(&tampered));
    std::fs::write(release.join("SHA256SUMS"), &forged).expect("sums");
    std::fs::write(release.join(format!("{asset}.sha256")), &forged).expect("sum");
    let bad = run();
    assert_eq!(bad.code, Some(1), "{}", bad.log);
    assert!(
        bad.log
            .contains("actions/lib/checksums.txt at this commit says")
            && bad.log.contains("not running it"),
        "{}",
        bad.log
    );
    assert!(!bad.log.contains("valid=true"), "{}", bad.log);
    assert!(!cached.exists(), "nothing unverified is installed");
    assert!(
        server.asked().iter().all(|p| p.ends_with(".tar.gz")),
        "the script asked the server for checksums: {:?}",
        server.asked()
    );
}

/// With no release for this commit, the install script builds the action's own checkout (here a
/// stand-in `cargo` on PATH records the build it was asked for).
#[test]
fn the_install_script_builds_the_checkout_without_a_release() {
    let repo = install_repo("0.2.0-dev", "version 0.1.0\n");
    let stub = tempfile::tempdir().expect("tempdir");
    let record = stub.path().join("asked");
    let target_dir = stub.path().join("target");
    std::fs::write(
        stub.path().join("cargo"),
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >> {}\nif [[ $1 == metadata ]]; then echo '{{\"target_directory\": \"{}\"}}'; fi\n",
            record.display(),
            target_dir.display()
        ),
    )
    .expect("stub");
    let ok = Command::new("chmod")
        .arg("+x")
        .arg(stub.path().join("cargo"))
        .status()
        .expect("chmod")
        .success();
    assert!(ok);
    let path = format!(
        "{}:{}",
        stub.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(repo.path().join("actions/lib/mlops.sh"))
        .env("PATH", path)
        .env_remove("MLOPS_BIN")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        target_dir.join("release/mlops").display().to_string()
    );
    assert!(
        stderr.contains("building from the action's checkout (this checkout is version 0.2.0-dev, not the release 0.1.0)"),
        "{stderr}"
    );
    let asked = std::fs::read_to_string(&record).expect("cargo was run");
    assert!(
        asked.starts_with("build --release --locked --manifest-path"),
        "{asked}"
    );
    // The actions train on a GPU through wgpu, which the default build leaves out.
    let first = asked.lines().next().unwrap_or_default();
    assert!(first.ends_with(" -p mlops --features wgpu"), "{asked}");
}

/// A source build is kept where `MLOPS_BUILD_CACHE` says (the directory the actions hand to
/// GitHub's cache) with the SHA-256 of the checkout's files: the next run with the same sources
/// runs it without building, a changed file builds again, and `--cache-key` names the cache by
/// that digest, or nothing at all when `MLOPS_BIN` serves.
#[test]
fn a_source_build_is_reused_only_for_the_same_sources() {
    let repo = install_repo("0.2.0-dev", "version 0.1.0\n");
    let stub = tempfile::tempdir().expect("tempdir");
    let record = stub.path().join("asked");
    let target_dir = stub.path().join("target");
    let cache = stub.path().join("cache");
    std::fs::write(
        stub.path().join("cargo"),
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >> {record}\nif [[ $1 == metadata ]]; then echo '{{\"target_directory\": \"{target}\"}}'; fi\nif [[ $1 == build ]]; then mkdir -p {target}/release && echo built >{target}/release/mlops && chmod +x {target}/release/mlops; fi\n",
            record = record.display(),
            target = target_dir.display()
        ),
    )
    .expect("stub");
    assert!(
        Command::new("chmod")
            .arg("+x")
            .arg(stub.path().join("cargo"))
            .status()
            .expect("chmod")
            .success()
    );
    let script = |args: &[&str], bin: Option<&str>| {
        let mut c = Command::new("bash");
        c.arg(repo.path().join("actions/lib/mlops.sh"))
            .args(args)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    stub.path().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("MLOPS_BUILD_CACHE", &cache)
            .env("RUNNER_TOOL_CACHE", stub.path().join("tools"));
        match bin {
            Some(b) => c.env("MLOPS_BIN", b),
            None => c.env_remove("MLOPS_BIN"),
        };
        let out = c.output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            stderr,
        )
    };
    let builds = || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("build "))
            .count()
    };
    let cached = cache.join("mlops").display().to_string();
    let (out, _) = script(&[], None);
    assert_eq!((out.as_str(), builds()), (cached.as_str(), 1));
    let digest = std::fs::read_to_string(cache.join("sources.sha256")).expect("digest");
    let (key, _) = script(&["--cache-key"], None);
    assert_eq!(
        key,
        format!(
            "key=mlops-build-{}-{}-{}\npath={}",
            String::from_utf8_lossy(
                &Command::new("uname")
                    .arg("-s")
                    .output()
                    .expect("uname")
                    .stdout
            )
            .trim(),
            String::from_utf8_lossy(
                &Command::new("uname")
                    .arg("-m")
                    .output()
                    .expect("uname")
                    .stdout
            )
            .trim(),
            digest.trim(),
            stub.path().join("tools/mlops/build").display()
        )
    );
    // The same sources: the cached build, no cargo.
    let (out, err) = script(&[], None);
    assert_eq!((out.as_str(), builds()), (cached.as_str(), 1), "{err}");
    assert!(err.contains("from the cache"), "{err}");
    // A changed file: built again, under another digest.
    std::fs::write(repo.path().join("mlops.yaml"), "changed\n").expect("write");
    let (out, _) = script(&[], None);
    assert_eq!((out.as_str(), builds()), (cached.as_str(), 2));
    let again = std::fs::read_to_string(cache.join("sources.sha256")).expect("digest");
    assert_ne!(digest, again);
    // MLOPS_BIN serves: no cache at all.
    let (key, _) = script(&["--cache-key"], Some("/usr/bin/true"));
    assert_eq!(key, "");
}

/// The holdout action against a real `mlops serve` of a freshly trained quickstart model: the job
/// passes, `passed` and `metrics` reach later steps, and the step summary has the metric table.
#[test]
fn holdout_action_tests_a_served_model() {
    if tool("act").is_none() {
        return;
    }
    let (registry, server) = served_quickstart();
    let reg = registry.path().to_string_lossy().into_owned();
    let Some(run) = act(
        "tests/workflows/holdout.yml",
        &[
            ("MODEL", "digits-mlp@1"),
            ("ENDPOINT", &server.url()),
            ("REGISTRY", &reg),
        ],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(run.output("passed").as_deref(), Some("true"), "{}", run.log);
    let metrics: serde_json::Value =
        serde_json::from_str(&run.output("metrics").expect("metrics output")).expect("JSON");
    assert!(
        metrics["accuracy"].as_f64().is_some_and(|a| a > 0.9),
        "{metrics}"
    );
    assert!(run.log.contains("passed=true metrics={"), "{}", run.log);
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        summary.contains("## Holdout test: digits-mlp@1 passed"),
        "{summary}"
    );
}

/// The deploy action on a URL target: staging gets the served model's pin and the action verifies
/// the service reports it; the check of that pin (as production's) finds it in sync; outputs and
/// step summary reach the job.
#[test]
fn deploy_action_deploys_and_checks_a_url_target() {
    if tool("act").is_none() {
        return;
    }
    let (registry, server) = served_quickstart();
    let reg = registry.path().to_string_lossy().into_owned();
    let pin = registry.path().join("staging-pin.yaml");
    let Some(run) = act(
        "tests/workflows/deploy.yml",
        &[
            ("MODEL", "digits-mlp@1"),
            ("ENDPOINT", &server.url()),
            ("REGISTRY", &reg),
            ("PIN", &pin.to_string_lossy()),
        ],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    // (Both steps are the same action, so act's last "set-output" of a name may be the second
    // step's empty one: the Report step's line is what the job saw.)
    assert!(
        run.log.contains(&format!(
            "model-version=digits-mlp@1 endpoint={} previous=digits-mlp@1 (artifact ",
            server.url()
        )) && run.log.contains(") in-sync=true"),
        "{}",
        run.log
    );
    let written = std::fs::read_to_string(&pin).expect("the staging pin");
    assert!(written.contains("name: \"digits-mlp\""), "{written}");
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(summary.contains("### mlops deploy: staging"), "{summary}");
    assert!(
        summary.contains("### mlops deploy --check (production)"),
        "{summary}"
    );
}

/// The promote and gate actions on the quickstart model trained and served here, against the
/// fake GitHub: the holdout job hands its report to the promote job as a job output (as the
/// rendered release workflow does), the promote action opens the PR with that report's digest in
/// the pin and on the head's status, and the gate action blocks it until a listed reviewer
/// approves, then passes it. The token never reaches the log.
#[test]
fn promote_and_gate_actions_take_a_served_model_to_an_approved_pr() {
    if tool("act").is_none() {
        return;
    }
    const REPO: &str = "mlops-rs/digits-example";
    const APP: &str = "ghs_promotionAppToken0123456789";
    const ACTIONS: &str = "ghs_workflowToken9876543210";
    let (registry, server) = served_quickstart();
    let reg = registry.path().to_string_lossy().into_owned();
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, github_fake::Token::App("mlops-app".into()));
    fake.token(ACTIONS, github_fake::Token::Actions);
    fake.repo(REPO, "main", &[("README.md", "# digits\n")]);
    fake.protect(REPO, "main", 1);
    let api = format!("GITHUB_API_URL={}", fake.url());

    let mut args: Vec<String> = vec![
        "push".into(),
        "-W".into(),
        "tests/workflows/promote.yml".into(),
    ];
    for (k, v) in [
        ("MODEL", "digits-mlp@1"),
        ("ENDPOINT", &server.url()),
        ("REGISTRY", &reg),
    ] {
        args.extend(["--var".into(), format!("{k}={v}")]);
    }
    args.extend(["-s".into(), format!("MLOPS_PROMOTION_TOKEN={APP}")]);
    args.extend(["--env".into(), api.clone()]);
    let run = act_in(&root(), &args).expect("act is on PATH");
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert!(!run.log.contains(APP), "the token leaked:\n{}", run.log);
    assert_eq!(
        run.output("operation").as_deref(),
        Some("created"),
        "{}",
        run.log
    );
    let pr: u64 = run
        .output("pr-number")
        .and_then(|n| n.parse().ok())
        .expect("pr-number output");
    let head = run.output("head-sha").expect("head-sha output");
    let report = run
        .output("report")
        .expect("the holdout job's report output");
    assert!(
        run.log.contains(&format!("operation=created head={head}")),
        "{}",
        run.log
    );

    // The pin names the served model's artifact and the digest of the report handed over.
    let text = fake
        .file(REPO, "mlops/promote/digits-mlp", "deploy/production.yaml")
        .expect("the pin on the promotion branch");
    let pin = mlops_github::pin::Pin::parse(&text).expect("a valid pin");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.path().join("digits-mlp/1/card.json")).expect("card"),
    )
    .expect("card JSON");
    assert_eq!(pin.model.name, "digits-mlp");
    assert_eq!(pin.model.version, 1);
    assert_eq!(
        Some(pin.model.artifact.sha256.as_str()),
        card["artifact"]["sha256"].as_str()
    );
    let digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(report.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let holdout = pin.holdout.expect("the pin records the holdout report");
    assert!(holdout.passed);
    assert_eq!(holdout.report_sha256, digest);
    let repo = fake.snapshot(REPO).expect("repo");
    let status = &repo.statuses[&head];
    assert!(
        status.iter().any(|s| s.context == "mlops/holdout"
            && s.state == "success"
            && s.description
                .as_deref()
                .is_some_and(|d| d.contains(&digest))),
        "{status:?}"
    );

    let event = tempfile::NamedTempFile::new().expect("event file");
    std::fs::write(
        event.path(),
        format!(r#"{{"action": "submitted", "review": {{"state": "approved"}}, "pull_request": {{"number": {pr}, "head": {{"ref": "mlops/promote/digits-mlp"}}, "base": {{"ref": "main"}}}}}}"#),
    )
    .expect("event");
    let gate = || {
        let args: Vec<String> = vec![
            "pull_request_review".into(),
            "-e".into(),
            event.path().display().to_string(),
            "-W".into(),
            "tests/workflows/gate.yml".into(),
            "-s".into(),
            format!("GITHUB_TOKEN={ACTIONS}"),
            "--env".into(),
            api.clone(),
        ];
        act_in(&root(), &args).expect("act is on PATH")
    };
    let run = gate();
    assert_eq!(run.code, Some(1), "no approval yet:\n{}", run.log);
    assert!(
        run.log
            .contains("approved=false decision=blocked rule=approvals"),
        "{}",
        run.log
    );

    fake.review(REPO, pr, "ml-lead", "APPROVED", None);
    let run = gate();
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert!(!run.log.contains(ACTIONS), "the token leaked:\n{}", run.log);
    assert!(
        run.log
            .contains("approved=true decision=deploy rule=approved model=digits-mlp@1"),
        "{}",
        run.log
    );
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(summary.contains("approved"), "{summary}");
    assert_eq!(
        fake.violations(),
        Vec::<String>::new(),
        "contract violations"
    );
}

/// The image action under act: it builds the sagemaker example's model image with the binary
/// the actions run, pushes it to ECR (moto; docker is the stand-in) and outputs it by digest.
#[test]
fn image_action_pushes_the_model_image() {
    if tool("act").is_none() {
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    let Some(docker) = docker::Docker::new() else {
        return;
    };
    let (status, answer) = moto.json(
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
        r#"{"repositoryName":"churn/mlops-train"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let mut env = Command::new("true");
    moto.env(&mut env);
    let mut args: Vec<String> = vec![
        "push".into(),
        "-W".into(),
        "tests/workflows/image.yml".into(),
    ];
    let vars = env
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .chain(docker.env())
        .chain([(
            "MLOPS_DOCKER".to_owned(),
            docker.command.display().to_string(),
        )]);
    for (k, v) in vars {
        args.extend(["--env".into(), format!("{k}={v}")]);
    }
    let run = act_in(&root(), &args).expect("act is on PATH");
    assert_eq!(run.code, Some(0), "{}", run.log);
    let (commands, _) = docker.take();
    assert_eq!(commands, ["build", "run", "login", "push"], "{}", run.log);
    let digest = run.output("digest").expect("digest output");
    let image = run.output("image").expect("image output");
    let tag = run.output("tag").expect("tag output");
    assert!(tag.starts_with("mlops-"), "{tag}");
    assert!(
        image.ends_with(&format!(".amazonaws.com/churn/mlops-train@{digest}")),
        "{image}"
    );
    let (status, described) = moto.json(
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
        &format!(r#"{{"repositoryName":"churn/mlops-train","imageIds":[{{"imageTag":"{tag}"}}]}}"#),
    );
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["imageDetails"][0]["imageDigest"], digest.as_str());
}

/// The test workflows and this project's own GitHub workflows.
fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["tests/workflows", ".github/workflows"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root().join(dir)).expect(dir))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

fn action_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("actions"))
        .expect("actions/")
        .filter_map(|e| e.ok().map(|e| e.path().join("action.yml")))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tool("actionlint") else {
        return;
    };
    let files = workflow_files();
    assert!(!files.is_empty());
    let out = Command::new(actionlint)
        .current_dir(root())
        .arg("-oneline")
        .args(&files)
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn actions_and_workflows_have_no_zizmor_findings() {
    let Some(zizmor) = tool("zizmor") else { return };
    let files: Vec<PathBuf> = action_files().into_iter().chain(workflow_files()).collect();
    assert!(files.len() >= 2);
    let out = Command::new(zizmor)
        .current_dir(root())
        .args(["--offline", "--persona", "pedantic", "--format", "plain"])
        .args(&files)
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .output()
        .expect("zizmor runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("No findings to report"), "{text}");
}

/// Actions pass inputs to the binary through `env:`, never as `${{ }}` inside `run:`.
#[test]
fn actions_never_expand_expressions_inside_run() {
    for file in action_files() {
        let text = std::fs::read_to_string(&file).expect("action.yml");
        let mut in_run = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("run:") || trimmed.starts_with("- run:") {
                in_run = true;
                assert!(
                    !trimmed.contains("${{"),
                    "{}:{}: expression inside run:",
                    file.display(),
                    n + 1
                );
                continue;
            }
            if in_run && !line.starts_with("        ") && !trimmed.is_empty() {
                in_run = false;
            }
            if in_run {
                assert!(
                    !line.contains("${{"),
                    "{}:{}: expression inside run:",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

/// The scripts inside `action.yml` files (which actionlint does not read) pass shellcheck.
#[test]
fn action_scripts_pass_shellcheck() {
    use mlops_manifest::yaml::{self, Segment, Value};
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let mut scripts = 0;
    for file in action_files() {
        let text = std::fs::read_to_string(&file).expect("action.yml");
        let tree = yaml::parse(&text, yaml::Limits::default()).expect("action.yml is YAML");
        let steps = tree.get(&[Segment::Key("runs".into()), Segment::Key("steps".into())]);
        let Some(Value::Seq(steps)) = steps.map(|s| &s.value) else {
            continue;
        };
        for step in steps {
            let field = |name: &str| match step.entry(name).map(|(_, v)| &v.value) {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let Some(script) = field("run") else { continue };
            assert_eq!(
                field("shell").as_deref(),
                Some("bash"),
                "{}: every run step declares `shell: bash`",
                file.display()
            );
            let mut child = Command::new(&shellcheck)
                .args(["--shell=bash", "--severity=style", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("shellcheck runs");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
                .expect("write script");
            let out = child.wait_with_output().expect("shellcheck output");
            assert!(
                out.status.success(),
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout)
            );
            scripts += 1;
        }
    }
    assert!(
        scripts >= 1,
        "no run: scripts found in actions/*/action.yml"
    );
    // The shared scripts the actions call.
    let out = Command::new(&shellcheck)
        .args(["--shell=bash", "--severity=style"])
        .arg(root().join("actions/lib/mlops.sh"))
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn several_manifests_one_per_line() {
    let manifests = "examples/quickstart/mlops.yaml\n  examples/sagemaker/mlops.yaml  \n";
    let Some(run) = act("tests/workflows/validate.yml", &[("MANIFEST", manifests)]) else {
        return;
    };
    assert_eq!(run.code, Some(0), "{}", run.log);
    let summary: String = run
        .with_command("summary")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert!(
        summary.contains("examples/quickstart/mlops.yaml: valid"),
        "{summary}"
    );
    assert!(
        summary.contains("examples/sagemaker/mlops.yaml: valid"),
        "{summary}"
    );
}

/// The rendered CI workflow runs under act, calling the validate and render actions at the commit
/// it pins (taken from this repository's history and substituted with `--local-repository`): it
/// passes on a fresh render and fails, with an annotation, once a rendered file drifts.
#[test]
fn rendered_ci_workflow_runs_and_catches_drift() {
    if tool("act").is_none() {
        return;
    }
    let repo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| git_in(repo.path(), args);
    git(&["init", "-q"]);
    std::fs::copy(
        root().join("examples/quickstart/mlops.yaml"),
        repo.path().join("mlops.yaml"),
    )
    .expect("copy");
    let mlops = env!("CARGO_BIN_EXE_mlops");
    let rendered = Command::new(mlops)
        .current_dir(repo.path())
        .args(["render", "--manifest", "mlops.yaml"])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("render");
    assert!(rendered.status.success());
    let workflow = std::fs::read_to_string(repo.path().join(".github/workflows/mlops-ci.yml"))
        .expect("rendered");
    let sha = pinned_sha(&workflow, "mlops-rs/mlops").expect("pinned mlops actions");
    let pinned = actions_at(&sha);
    let event = repo.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"pull_request": {"number": 1, "head": {"ref": "x"}, "base": {"ref": "main"}}}"#,
    )
    .expect("event");
    let run = |expect_success: bool| {
        git(&["add", "-A"]);
        git(&["commit", "-qm", "state", "--allow-empty"]);
        let args: Vec<String> = vec![
            "pull_request".into(),
            "-e".into(),
            event.display().to_string(),
            "-W".into(),
            ".github/workflows/mlops-ci.yml".into(),
            "--local-repository".into(),
            format!("mlops-rs/mlops@{sha}={}", pinned.path().display()),
        ];
        let run = act_in(repo.path(), &args).expect("act is on PATH");
        assert_eq!(run.code == Some(0), expect_success, "{}", run.log);
        run.log
    };
    let log = run(true);
    assert!(
        log.contains("current=true") || log.contains(r#""current""#),
        "{log}"
    );
    let edited = repo.path().join("container/Dockerfile");
    let mut text = std::fs::read_to_string(&edited).expect("read");
    text.push_str("# edited by hand\n");
    std::fs::write(&edited, text).expect("edit");
    let log = run(false);
    assert!(log.contains("container/Dockerfile"), "{log}");
    assert!(log.contains("run `mlops render` to update"), "{log}");
}

/// The actions the rendered workflows call that later issues build (train, deploy, holdout,
/// promote, gate), and configure-aws-credentials, which needs GitHub's OIDC: composite stand-ins
/// with the same inputs and outputs, each appending one line of what it was given to the record
/// file (`MLOPS_RECORD`). They let act run the rendered train, release and gate workflows whole:
/// triggers, job graph, conditions, and every value passed between jobs and into steps.
struct StandIns {
    mlops: tempfile::TempDir,
    aws: tempfile::TempDir,
    checkout: tempfile::TempDir,
    app: tempfile::TempDir,
    record: tempfile::NamedTempFile,
}

/// A stand-in for `actions/create-github-app-token`: it checks that the App's client ID and
/// private key arrive, records the repository and the permissions the token is asked for in
/// `MLOPS_RECORD`, masks and outputs `MLOPS_STANDIN_APP_TOKEN` (a token the fake GitHub knows as
/// the App's), as the real action outputs a short-lived installation token.
fn app_token_stand_in() -> tempfile::TempDir {
    let mut yaml = String::from(
        "name: stand-in create-github-app-token\ndescription: test stand-in\ninputs:\n  client-id:\n    required: true\n  private-key:\n    required: true\n  owner:\n    default: ''\n  repositories:\n    default: ''\n",
    );
    let permissions = ["contents", "pull-requests", "statuses", "members"];
    for p in permissions {
        yaml.push_str(&format!("  permission-{p}:\n    default: ''\n"));
    }
    yaml.push_str("outputs:\n  token:\n    description: stand-in\n    value: ${{ steps.s.outputs.token }}\nruns:\n  using: composite\n  steps:\n    - id: s\n      shell: bash\n      env:\n        CLIENT_ID: ${{ inputs.client-id }}\n        KEY: ${{ inputs.private-key }}\n        OWNER: ${{ inputs.owner }}\n        REPOS: ${{ inputs.repositories }}\n");
    let mut line = String::from("app owner=$OWNER repositories=$REPOS");
    for p in permissions {
        let var = format!("P_{}", p.to_uppercase().replace('-', "_"));
        yaml.push_str(&format!(
            "        {var}: ${{{{ inputs.permission-{p} }}}}\n"
        ));
        line.push_str(&format!("${{{var}:+ {p}=${var}}}"));
    }
    yaml.push_str(&format!(
        "      run: |\n        test -n \"$CLIENT_ID\" && test -n \"$KEY\"\n        echo \"::add-mask::$MLOPS_STANDIN_APP_TOKEN\"\n        echo \"{line}\" >> \"$MLOPS_RECORD\"\n        echo \"token=$MLOPS_STANDIN_APP_TOKEN\" >> \"$GITHUB_OUTPUT\"\n"
    ));
    action_dir(&yaml)
}

/// act's `--local-repository` arguments: each action `(name, sha)` run from a local directory
/// (our actions at their pinned commit, or a stand-in).
fn local_repositories(actions: &[(&str, &str, &Path)]) -> Vec<String> {
    actions
        .iter()
        .flat_map(|(name, sha, dir)| {
            [
                "--local-repository".to_owned(),
                format!("{name}@{sha}={}", dir.display()),
            ]
        })
        .collect()
}

/// act's `--env` arguments for a run against the test's world: where AWS is (moto; no
/// credentials, which come from the role step, and no file or instance to find them in), where
/// GitHub is (the fake), and the file the stand-ins record their calls in.
fn world_env(moto: &str, github: &str, record: &Path) -> Vec<String> {
    [
        ("AWS_ENDPOINT_URL", moto.to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent/mlops-test/config".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/mlops-test/credentials".into(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("GITHUB_API_URL", github.to_owned()),
        ("MLOPS_GITHUB_BACKOFF_MS", "50".into()),
        ("MLOPS_RECORD", record.display().to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| ["--env".to_owned(), format!("{k}={v}")])
    .collect()
}

/// A stand-in for `actions/checkout` of one file (`sparse-checkout`) from a repository on the
/// GitHub fake, read through the contents API with the step's token, as the rendered holdout
/// job checks out production's pin; absent there, nothing is written (production pins nothing
/// yet). act copies the triggering commit itself for a plain checkout, so only such a checkout
/// reaches this stand-in.
fn pin_checkout_stand_in() -> tempfile::TempDir {
    action_dir(
        "name: stand-in checkout of one file\ndescription: test stand-in\ninputs:\n  repository:\n    default: ${{ github.repository }}\n  ref:\n    default: ''\n  path:\n    default: ''\n  sparse-checkout:\n    default: ''\n  sparse-checkout-cone-mode:\n    default: 'true'\n  token:\n    default: ${{ github.token }}\n  persist-credentials:\n    default: 'true'\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        REPO: ${{ inputs.repository }}\n        REF: ${{ inputs.ref }}\n        DEST: ${{ inputs.path }}\n        FILE: ${{ inputs.sparse-checkout }}\n        TOKEN: ${{ inputs.token }}\n        PERSIST: ${{ inputs.persist-credentials }}\n      run: |\n        set -euo pipefail\n        test -n \"$FILE\" || { echo \"this stand-in checks out one file\"; exit 1; }\n        test \"$PERSIST\" = false || { echo \"credentials would persist\"; exit 1; }\n        mkdir -p \"${DEST:-.}/$(dirname \"$FILE\")\"\n        answer=\"$(mktemp)\"\n        trap 'rm -f \"$answer\"' EXIT\n        code=\"$(curl -s -o \"$answer\" -w '%{http_code}' -H \"Authorization: Bearer $TOKEN\" \"$GITHUB_API_URL/repos/$REPO/contents/$FILE?ref=$REF\")\"\n        case \"$code\" in\n          200) python3 -c 'import base64, json, sys; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))[\"content\"]))' \"$answer\" > \"${DEST:-.}/$FILE\" ;;\n          404) echo \"$FILE is not on $REF of $REPO\" ;;\n          *) echo \"the contents API answered $code\"; cat \"$answer\"; exit 1 ;;\n        esac\n",
    )
}

/// The digest the image stand-in outputs.
const IMAGE_DIGEST: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// The report the holdout stand-in outputs (shell-quoted inside the stand-in's `echo "..."`), and
/// what the promote stand-in then records for its `holdout-report-json` input.
const STANDIN_REPORT: &str = r#"{\"model\":\"7\",\"passed\":true}"#;
const RECORDED_REPORT: &str = r#"holdout-report-json={"model":"7","passed":true}"#;

/// A stand-in: the action, its inputs, and its outputs with the value it sets.
type StandIn = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const STAND_INS: &[StandIn] = &[
    ("image", &["manifest"], &[("digest", IMAGE_DIGEST)]),
    (
        "train",
        &["manifest", "image-digest"],
        &[("model-version", "7")],
    ),
    (
        "deploy",
        &[
            "manifest",
            "environment",
            "model",
            "defer-rollback-pr",
            "rollback",
            "immediate",
            "reason",
            "token",
        ],
        &[("breach", "$MLOPS_STANDIN_BREACH")],
    ),
    (
        "holdout",
        &[
            "manifest",
            "environment",
            "model",
            "compare",
            "production-pin",
        ],
        &[("report", STANDIN_REPORT)],
    ),
    (
        "promote",
        &["manifest", "model", "holdout-report-json", "token"],
        &[],
    ),
    (
        "gate",
        &["manifest", "pull-request", "commit", "token"],
        &[
            ("approved", "$MLOPS_STANDIN_APPROVED"),
            ("model", "churn-model-7"),
        ],
    ),
];

/// A composite action that records its inputs (a token only as `<set>`; empty inputs not at
/// all, after the first) and sets its outputs. Every value reaches the shell through `env:`, never expanded inside `run:`.
fn stand_in_action(name: &str, inputs: &[&str], outputs: &[(&str, &str)]) -> String {
    let mut yaml = format!("name: stand-in {name}\ndescription: test stand-in\ninputs:\n");
    for i in inputs {
        yaml.push_str(&format!("  {i}:\n    required: true\n"));
    }
    if !outputs.is_empty() {
        yaml.push_str("outputs:\n");
    }
    for (o, _) in outputs {
        yaml.push_str(&format!(
            "  {o}:\n    description: stand-in\n    value: ${{{{ steps.s.outputs.{o} }}}}\n"
        ));
    }
    yaml.push_str(
        "runs:\n  using: composite\n  steps:\n    - id: s\n      shell: bash\n      env:\n",
    );
    for i in inputs {
        yaml.push_str(&format!(
            "        IN_{}: ${{{{ inputs.{i} }}}}\n",
            i.to_uppercase().replace('-', "_")
        ));
    }
    let mut line = name.to_owned();
    for (n, i) in inputs.iter().enumerate() {
        let var = format!("IN_{}", i.to_uppercase().replace('-', "_"));
        if *i == "token" {
            line.push_str(&format!("${{{var}:+ {i}=<set>}}"));
        } else if n == 0 {
            line.push_str(&format!(" {i}=${var}"));
        } else {
            line.push_str(&format!("${{{var}:+ {i}=${var}}}"));
        }
    }
    yaml.push_str("      run: |\n");
    if inputs.contains(&"manifest") {
        yaml.push_str(
            "        test -f \"$IN_MANIFEST\" || { echo \"no manifest $IN_MANIFEST\"; exit 1; }\n",
        );
    }
    yaml.push_str(&format!("        echo \"{line}\" >> \"$MLOPS_RECORD\"\n"));
    for (o, v) in outputs {
        yaml.push_str(&format!("        echo \"{o}={v}\" >> \"$GITHUB_OUTPUT\"\n"));
    }
    if name == "gate" {
        // The real gate fails its step when production may not deploy.
        yaml.push_str("        test \"${MLOPS_STANDIN_APPROVED:-true}\" != false\n");
    }
    if name == "deploy" {
        // The real deploy fails its step when the watch after it found a breach.
        yaml.push_str(
            "        test -z \"${MLOPS_STANDIN_BREACH:-}\" || test \"$IN_ROLLBACK\" = true\n",
        );
    }
    yaml
}

impl StandIns {
    fn new() -> Self {
        let mlops = tempfile::tempdir().expect("tempdir");
        for (name, inputs, outputs) in STAND_INS {
            let dir = mlops.path().join("actions").join(name);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join("action.yml"),
                stand_in_action(name, inputs, outputs),
            )
            .expect("write");
        }
        let aws = action_dir(
            "name: stand-in configure-aws-credentials\ndescription: test stand-in\ninputs:\n  role-to-assume:\n    required: true\n  aws-region:\n    required: true\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        ROLE: ${{ inputs.role-to-assume }}\n        REGION: ${{ inputs.aws-region }}\n      run: echo \"aws role=$ROLE region=$REGION\" >> \"$MLOPS_RECORD\"\n",
        );
        // act checks out the triggering commit itself (a copy of the working tree) whatever the
        // mapping, so this stand-in runs only for a checkout of another `ref:`: it records what
        // is checked out and whether credentials would persist, then checks out that commit of
        // the test's repository.
        let checkout = action_dir(
            "name: stand-in checkout\ndescription: test stand-in\ninputs:\n  ref:\n    default: ''\n  persist-credentials:\n    default: 'true'\n  path:\n    default: ''\n  repository:\n    default: ''\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        REF: ${{ inputs.ref }}\n        PERSIST: ${{ inputs.persist-credentials }}\n        DEST: ${{ inputs.path }}\n        REPO: ${{ inputs.repository }}\n      run: |\n        echo \"checkout ref=$REF persist-credentials=$PERSIST${DEST:+ path=$DEST}${REPO:+ repository=$REPO}\" >> \"$MLOPS_RECORD\"\n        mkdir -p \"${DEST:-.}\"\n        cd \"${DEST:-.}\"\n        git init -q .\n        git fetch -q \"$MLOPS_SOURCE\" \"${REF:-HEAD}\"\n        git checkout -q -f FETCH_HEAD\n",
        );
        let record = tempfile::NamedTempFile::new().expect("record");
        Self {
            mlops,
            aws,
            checkout,
            app: app_token_stand_in(),
            record,
        }
    }

    /// act's arguments that put the stand-ins in place of the pinned actions of `workflow`.
    fn args(&self, workflow: &str) -> Vec<String> {
        let pin = |repo: &str| pinned_sha(workflow, repo);
        let mut args = vec![
            "--env".into(),
            format!("MLOPS_RECORD={}", self.record.path().display()),
        ];
        if let Some(sha) = pin("mlops-rs/mlops") {
            args.extend([
                "--local-repository".into(),
                format!("mlops-rs/mlops@{sha}={}", self.mlops.path().display()),
            ]);
        }
        for (repo, dir) in [
            ("aws-actions/configure-aws-credentials", &self.aws),
            ("actions/checkout", &self.checkout),
            ("actions/create-github-app-token", &self.app),
        ] {
            if let Some(sha) = pin(repo) {
                args.extend([
                    "--local-repository".into(),
                    format!("{repo}@{sha}={}", dir.path().display()),
                ]);
            }
        }
        args
    }

    /// The lines recorded since the last call, emptying the record.
    fn take(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.record.path()).expect("record");
        std::fs::write(self.record.path(), "").expect("reset");
        text.lines().map(str::to_owned).collect()
    }
}

/// Runs git in `dir` with a test identity; fails the test when git fails.
fn git_in(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

/// The commit a workflow pins `repo` at: the SHA after `repo@` or `repo/some/path@`.
fn pinned_sha(workflow: &str, repo: &str) -> Option<String> {
    workflow.match_indices(repo).find_map(|(at, _)| {
        let rest = &workflow[at + repo.len()..];
        let (path, sha) = rest.split_once('@')?;
        let sha = sha.get(..40)?;
        (path.is_empty() || path.starts_with('/') && !path.contains(char::is_whitespace))
            .then(|| sha.to_owned())
    })
}

/// A git repository with `examples/NAME/` copied in and rendered (workflows and all).
fn rendered_example(name: &str) -> tempfile::TempDir {
    rendered_example_with(name, |text| text)
}

/// [`rendered_example`] with the manifest's text edited before rendering. The quickstart's data
/// comes along, which `digits-github` trains on.
fn rendered_example_with(name: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| git_in(repo.path(), args);
    git(&["init", "-q", "-b", "main"]);
    let src = root().join("examples").join(name);
    let dst = repo.path().join("examples").join(name);
    copy_dir(&src, &dst);
    let data = root().join("examples/quickstart/data");
    copy_dir(&data, &repo.path().join("examples/quickstart/data"));
    let manifest = dst.join("mlops.yaml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, edit(text)).expect("edit");
    let rendered = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(repo.path())
        .args(["render", "--manifest"])
        .arg(format!("examples/{name}/mlops.yaml"))
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("render");
    assert!(rendered.status.success(), "{rendered:?}");
    // act 0.2.89 does not know GitHub's `$/` self-repository syntax for reusable workflows; `./`
    // means the same repository at the same commit.
    let wf = repo.path().join(".github/workflows");
    for entry in std::fs::read_dir(&wf).expect("workflows") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("uses: $/.github/", "uses: ./.github/")).expect("write");
    }
    git(&["add", "-A"]);
    git(&["commit", "-qm", "rendered"]);
    repo
}

/// A git checkout of the promotion repository `remote` (`OWNER/NAME`, its `origin`) holding
/// what `mlops render --promotion-out` writes for the manifest at `manifest` of the rendered
/// `model_repo`: the gate workflow and the manifest copy it reads.
fn promotion_checkout(model_repo: &Path, manifest: &str, remote: &str) -> tempfile::TempDir {
    let promo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| git_in(promo.path(), args);
    git(&["init", "-q", "-b", "main"]);
    let rendered = Command::new(env!("CARGO_BIN_EXE_mlops"))
        .current_dir(model_repo)
        .args(["render", "--manifest", manifest, "--promotion-out"])
        .arg(promo.path())
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("render");
    assert!(rendered.status.success(), "{rendered:?}");
    assert!(
        !model_repo.join(".github/workflows/mlops-gate.yml").exists(),
        "the model's repository holds no gate"
    );
    git(&["add", "-A"]);
    git(&["commit", "-qm", "the gate"]);
    let url = format!("https://github.com/{remote}.git");
    git(&["remote", "add", "origin", &url]);
    promo
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// act's arguments for `event` with `payload` (written to `dir/event.json`) on `workflow` of
/// `dir/.github/workflows/`.
fn event_args(dir: &Path, event: &str, payload: &str, workflow: &str) -> Vec<String> {
    let event_file = dir.join("event.json");
    std::fs::write(&event_file, payload).expect("event");
    vec![
        event.into(),
        "-e".into(),
        event_file.display().to_string(),
        "-W".into(),
        format!(".github/workflows/{workflow}"),
    ]
}

/// Runs `workflow` of the rendered `repo` for `event` under act, with the stand-ins and the
/// extra arguments given; returns the run and the stand-ins' record.
fn act_rendered(
    repo: &Path,
    stand_ins: &StandIns,
    workflow: &str,
    event: &str,
    payload: &str,
    extra: &[&str],
) -> (ActRun, Vec<String>) {
    let path = repo.join(".github/workflows").join(workflow);
    let text = std::fs::read_to_string(&path).expect("rendered workflow");
    let mut args = event_args(repo, event, payload, workflow);
    // Reusable workflows called from this one use the same stand-ins.
    let release = ["mlops-release.yml"]
        .into_iter()
        .map(str::to_owned)
        .chain(called_release(&text))
        .map(|f| {
            std::fs::read_to_string(repo.join(".github/workflows").join(f)).unwrap_or_default()
        })
        .collect::<String>();
    args.extend(stand_ins.args(&(text + &release)));
    args.extend(["--env".into(), format!("MLOPS_SOURCE={}", repo.display())]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let run = act_in(repo, &args).expect("act is on PATH");
    let record = stand_ins.take();
    (run, record)
}

/// The release workflow `workflow_text` calls (`uses: ./.github/workflows/FILE`), if any.
fn called_release(workflow_text: &str) -> Option<String> {
    workflow_text.lines().find_map(|l| {
        let file = l.trim().strip_prefix("uses: ./.github/workflows/")?;
        Some(file.to_owned())
    })
}

/// Two models in one repository (`examples/monorepo`), each rendered by itself: the second
/// render keeps the first's files, `render --check` of each is clean, and a push changing one
/// model's manifest starts, by GitHub's filter rules, only that model's train workflow, which
/// under act trains that model with its own role and calls its own release workflow.
#[test]
fn in_a_monorepo_each_models_push_trains_only_that_model() {
    if tool("act").is_none() {
        return;
    }
    let repo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| git_in(repo.path(), args);
    git(&["init", "-q", "-b", "main"]);
    copy_dir(
        &root().join("examples/monorepo"),
        &repo.path().join("examples/monorepo"),
    );
    copy_dir(
        &root().join("examples/quickstart/data"),
        &repo.path().join("examples/quickstart/data"),
    );
    let models = ["small", "large"];
    let manifest = |m: &str| format!("examples/monorepo/{m}/mlops.yaml");
    let render = |m: &str, check: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlops"));
        cmd.current_dir(repo.path())
            .args(["render", "--manifest", &manifest(m)])
            .env_remove("GITHUB_ACTIONS");
        if check {
            cmd.arg("--check");
        }
        cmd.output().expect("render")
    };
    for m in models {
        let out = render(m, false);
        assert!(out.status.success(), "{out:?}");
    }
    for m in models {
        let out = render(m, true);
        assert!(out.status.success(), "{m}: {out:?}");
    }
    let wf = repo.path().join(".github/workflows");
    let mut files: Vec<String> = std::fs::read_dir(&wf)
        .expect("workflows")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    // act 0.2.89 does not know `$/` (see rendered_example_with).
    for f in &files {
        let path = wf.join(f);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("uses: $/.github/", "uses: ./.github/")).expect("write");
    }
    git(&["add", "-A"]);
    git(&["commit", "-qm", "two models"]);
    let stand_ins = StandIns::new();
    for (m, project) in [("small", "digits-small"), ("large", "digits-large")] {
        // The push: this model's manifest changes.
        let path = repo.path().join(manifest(m));
        let text = std::fs::read_to_string(&path).expect("manifest");
        std::fs::write(&path, text.replace("epochs: 30", "epochs: 31")).expect("edit");
        git(&["commit", "-qam", "more epochs"]);
        let changed = Command::new("git")
            .current_dir(repo.path())
            .args(["diff", "--name-only", "HEAD~1", "HEAD"])
            .output()
            .expect("git diff");
        let changed: Vec<String> = String::from_utf8_lossy(&changed.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(changed, [manifest(m)]);
        let started: Vec<&String> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(wf.join(f)).expect("read");
                let on = mlops_manifest::yaml::parse(&text, Default::default())
                    .expect("YAML")
                    .to_json()["on"]
                    .clone();
                github_fake::triggers::starts_on_push(&on, "main", &changed)
            })
            .collect();
        let train = format!("mlops-train-{project}.yml");
        assert_eq!(started, [&train], "{m}");
        let payload = format!(
            r#"{{"ref": "refs/heads/main", "commits": [{{"modified": ["{}"]}}]}}"#,
            manifest(m)
        );
        let (run, record) = act_rendered(
            repo.path(),
            &stand_ins,
            &train,
            "push",
            &payload,
            &[
                "-s",
                "GITHUB_TOKEN=test-token",
                "--var",
                "MLOPS_TRAIN_ROLE_ARN_DIGITS_SMALL=arn:aws:iam::123456789012:role/small-train",
                "--var",
                "MLOPS_TRAIN_ROLE_ARN_DIGITS_LARGE=arn:aws:iam::123456789012:role/large-train",
                "--var",
                "MLOPS_AWS_ROLE_ARN_DIGITS_SMALL=arn:aws:iam::123456789012:role/small-staging",
                "--var",
                "MLOPS_AWS_ROLE_ARN_DIGITS_LARGE=arn:aws:iam::123456789012:role/large-staging",
                "--var",
                "MLOPS_AWS_REGION=eu-west-1",
            ],
        );
        assert_eq!(run.code, Some(0), "{m}: {}", run.log);
        let role = |kind: &str| {
            format!("aws role=arn:aws:iam::123456789012:role/{m}-{kind} region=eu-west-1")
        };
        let own = format!("manifest={}", manifest(m));
        assert_eq!(record.first(), Some(&role("train")), "{m}: {record:?}");
        assert_eq!(
            record.get(1),
            Some(&format!("train {own}")),
            "{m}: {record:?}"
        );
        // Its release: staging with its own role, every step on its own manifest.
        assert!(record.contains(&role("staging")), "{m}: {record:?}");
        let other = if m == "small" { "large" } else { "small" };
        assert!(
            record.iter().all(|r| !r.contains(other)),
            "{m}'s run touched {other}: {record:?}"
        );
        assert!(
            record
                .iter()
                .any(|r| r.starts_with("promote ") && r.contains(&own)),
            "{m}: {record:?}"
        );
    }
}

/// Training on the runner with the registry in S3: a push of the manifest trains with the
/// training role, and the train workflow chains the release workflow with the registered
/// version: staging, holdout and the promotion, each with the staging role (promote reads the
/// registry too).
#[test]
fn rendered_train_workflow_trains_and_releases_the_new_version() {
    if tool("act").is_none() {
        return;
    }
    let stand_ins = StandIns::new();
    let repo = rendered_example("digits-github");
    let (run, record) = act_rendered(
        repo.path(),
        &stand_ins,
        "mlops-train.yml",
        "push",
        r#"{"ref": "refs/heads/main"}"#,
        &[
            "-s",
            "GITHUB_TOKEN=test-token",
            "--var",
            "MLOPS_TRAIN_ROLE_ARN=arn:aws:iam::123456789012:role/train",
            "--var",
            "MLOPS_AWS_ROLE_ARN=arn:aws:iam::123456789012:role/staging",
            "--var",
            "MLOPS_AWS_REGION=eu-west-1",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.log);
    let manifest = "manifest=examples/digits-github/mlops.yaml";
    let staging = "aws role=arn:aws:iam::123456789012:role/staging region=eu-west-1";
    assert_eq!(
        record,
        [
            "aws role=arn:aws:iam::123456789012:role/train region=eu-west-1".to_owned(),
            format!("train {manifest}"),
            staging.to_owned(),
            // The staging pin is committed where the GitOps tool reads it (with a token).
            format!("deploy {manifest} environment=staging model=7 token=<set>"),
            staging.to_owned(),
            // promotion.no_regression: production's pin from the base branch, then the
            // holdout test compares with it.
            "checkout ref=main persist-credentials=false path=.mlops/production".to_owned(),
            format!(
                "holdout {manifest} environment=staging model=7 compare=production \
                 production-pin=.mlops/production/deploy/production.yaml"
            ),
            staging.to_owned(),
            format!("promote {manifest} model=7 {RECORDED_REPORT} token=<set>"),
        ],
        "{}",
        run.log
    );
}

/// SageMaker: training assumes the training role, builds the model image and trains on its digest;
/// a model approved in the registry arrives as a
/// repository_dispatch and is released with the staging role; a dispatch by hand does the same.
#[test]
fn rendered_sagemaker_workflows_assume_the_roles_and_release_approved_packages() {
    if tool("act").is_none() {
        return;
    }
    let stand_ins = StandIns::new();
    let repo = rendered_example("sagemaker");
    let manifest = "manifest=examples/sagemaker/mlops.yaml";
    let vars = [
        "--var",
        "MLOPS_TRAIN_ROLE_ARN=arn:aws:iam::123456789012:role/train",
        "--var",
        "MLOPS_AWS_ROLE_ARN=arn:aws:iam::123456789012:role/staging",
        "-s",
        "MLOPS_PROMOTION_TOKEN=test-token",
    ];
    let (run, record) = act_rendered(
        repo.path(),
        &stand_ins,
        "mlops-train.yml",
        "push",
        r#"{"ref": "refs/heads/main"}"#,
        &vars,
    );
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(
        record,
        [
            "aws role=arn:aws:iam::123456789012:role/train region=eu-west-1".to_owned(),
            format!("image {manifest}"),
            format!("train {manifest} image-digest={IMAGE_DIGEST}"),
        ],
        "{}",
        run.log
    );

    let arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/3";
    let staging = "aws role=arn:aws:iam::123456789012:role/staging region=eu-west-1";
    let released = |model: &str| {
        vec![
            staging.to_owned(),
            format!("deploy {manifest} environment=staging model={model}"),
            staging.to_owned(),
            // Production's pin is in the promotion repository.
            "checkout ref=main persist-credentials=false path=.mlops/production \
             repository=acme/ml-deploy"
                .to_owned(),
            format!(
                "holdout {manifest} environment=staging model={model} compare=production \
                 production-pin=.mlops/production/churn/production.yaml"
            ),
            staging.to_owned(),
            format!("promote {manifest} model={model} {RECORDED_REPORT} token=<set>"),
        ]
    };
    let (run, record) = act_rendered(
        repo.path(),
        &stand_ins,
        "mlops-release.yml",
        "repository_dispatch",
        &format!(
            r#"{{"action": "mlops-model-approved", "client_payload": {{"model_package_arn": "{arn}"}}}}"#
        ),
        &vars,
    );
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(record, released(arn), "{}", run.log);

    let (run, record) = act_rendered(
        repo.path(),
        &stand_ins,
        "mlops-release.yml",
        "workflow_dispatch",
        r#"{"inputs": {"model-version": "churn/4"}}"#,
        &vars,
    );
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(record, released("churn/4"), "{}", run.log);
}

/// The gate, rendered for the SageMaker example's promotion repository (acme/ml-deploy): a review
/// of the promotion re-checks approvals and deploys nothing, a review of any other pull request
/// (or of a fork's branch of the same name) starts nothing; the push a merge makes runs the gate
/// on that commit before the role and the deploy, and a push the gate refuses deploys nothing.
/// Both read the manifest copy beside the gate.
#[test]
fn rendered_gate_workflow_deploys_only_a_merged_approved_promotion() {
    if tool("act").is_none() {
        return;
    }
    let stand_ins = StandIns::new();
    let model = rendered_example("sagemaker");
    // act takes `github.repository` from the remote, as GitHub knows the repository.
    let repo = promotion_checkout(
        model.path(),
        "examples/sagemaker/mlops.yaml",
        "acme/ml-deploy",
    );
    let manifest = "manifest=mlops/churn/mlops.yaml";
    let head = Command::new("git")
        .current_dir(repo.path())
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git");
    let pushed = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let run_gate = |event: &str, payload: &str, approved: &str| {
        act_rendered(
            repo.path(),
            &stand_ins,
            "mlops-gate-churn.yml",
            event,
            payload,
            &[
                "--var",
                "MLOPS_AWS_ROLE_ARN=arn:aws:iam::123456789012:role/production",
                "-s",
                "GITHUB_TOKEN=test-token",
                "--env",
                &format!("MLOPS_STANDIN_APPROVED={approved}"),
            ],
        )
    };
    let head = |branch: &str, repo: &str| {
        format!(r#""head": {{"ref": "{branch}", "repo": {{"full_name": "{repo}"}}}}"#)
    };
    let promotion = head("mlops/promote/churn-mlp", "acme/ml-deploy");
    let review_of = |head: &str| {
        format!(
            r#"{{"action": "submitted", "review": {{"state": "approved"}}, "pull_request": {{"number": 12, {head}, "base": {{"ref": "main"}}}}}}"#
        )
    };

    // A review of the promotion checks its approvals and never deploys.
    let (run, record) = run_gate("pull_request_review", &review_of(&promotion), "true");
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(
        record,
        [format!("gate {manifest} pull-request=12 token=<set>")],
        "a review never deploys\n{}",
        run.log
    );

    // Reviews of other pull requests start no gate: another branch, or a fork's branch named
    // like the promotion branch.
    for other in [
        head("feature/x", "acme/ml-deploy"),
        head("mlops/promote/churn-mlp", "mallory/ml-deploy"),
    ] {
        let (run, record) = run_gate("pull_request_review", &review_of(&other), "true");
        assert_eq!(run.code, Some(0), "{}", run.log);
        assert!(record.is_empty(), "{other}: {record:?}\n{}", run.log);
    }

    // The push a merge makes: the gate on that commit, then the role, then the deploy of the
    // pin checked out at that commit.
    let push = format!(r#"{{"ref": "refs/heads/main", "after": "{pushed}"}}"#);
    let gate = format!("gate {manifest} commit={pushed} token=<set>");
    let (run, record) = run_gate("push", &push, "true");
    assert_eq!(run.code, Some(0), "{}", run.log);
    let role = "aws role=arn:aws:iam::123456789012:role/production region=eu-west-1".to_owned();
    // The example watches production after the deploy; a breach is left to the rollback job.
    let deploy = format!("deploy {manifest} environment=production defer-rollback-pr=true");
    assert_eq!(
        record,
        [gate.clone(), role.clone(), deploy.clone()],
        "{}",
        run.log
    );

    // A push the gate refuses (no approved promotion merged as that commit): no role, no deploy,
    // and no rollback (nothing breached).
    let (run, record) = run_gate("push", &push, "false");
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert_eq!(
        record,
        std::slice::from_ref(&gate),
        "not approved\n{}",
        run.log
    );

    // The watch after the deploy breaches: the deploy job fails with what breached (its token
    // only reads), and the rollback job, with write rights, the production role and the pin
    // file's whole history, proposes the pin before with the breach as the reason.
    let breach = "watch: the alarm churn-production-5xx is in ALARM";
    let (run, record) = act_rendered(
        repo.path(),
        &stand_ins,
        "mlops-gate-churn.yml",
        "push",
        &push,
        &[
            "--var",
            "MLOPS_AWS_ROLE_ARN=arn:aws:iam::123456789012:role/production",
            "-s",
            "GITHUB_TOKEN=test-token",
            "--env",
            &format!("MLOPS_STANDIN_BREACH={breach}"),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert_eq!(
        record,
        [
            gate,
            role.clone(),
            deploy,
            role,
            format!(
                "deploy {manifest} environment=production rollback=true immediate=true \
                 reason={breach} token=<set>"
            ),
        ],
        "{}",
        run.log
    );
}

/// `actions/` of this repository at `sha` (the commit the rendered workflows pin), as a user's
/// runner would fetch it: a directory for act's `--local-repository`.
fn actions_at(sha: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Command::new("git")
        .current_dir(root())
        .args(["archive", "--format=tar", sha, "actions"])
        .output()
        .expect("git archive");
    assert!(
        archive.status.success(),
        "the pinned commit {sha} is not in this clone's history (fetch it whole): {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let tar = dir.path().join("actions.tar");
    std::fs::write(&tar, &archive.stdout).expect("write");
    let ok = Command::new("tar")
        .current_dir(dir.path())
        .arg("-xf")
        .arg(&tar)
        .status()
        .expect("tar runs")
        .success();
    assert!(ok, "tar");
    std::fs::remove_file(&tar).expect("rm");
    dir
}

/// A stand-in for `aws-actions/configure-aws-credentials` that does what it does for the job:
/// the credentials (moto's) reach the job's later steps through `GITHUB_ENV`, and only a job
/// that runs it has any. It records the role in `MLOPS_RECORD`.
fn aws_credentials_stand_in() -> tempfile::TempDir {
    action_dir(
        "name: stand-in configure-aws-credentials\ndescription: test stand-in\ninputs:\n  role-to-assume:\n    required: true\n  aws-region:\n    required: true\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        ROLE: ${{ inputs.role-to-assume }}\n        REGION: ${{ inputs.aws-region }}\n      run: |\n        test -n \"$ROLE\" && test -n \"$REGION\"\n        echo \"aws role=$ROLE\" >> \"$MLOPS_RECORD\"\n        { echo AWS_ACCESS_KEY_ID=testing; echo AWS_SECRET_ACCESS_KEY=testing; echo \"AWS_REGION=$REGION\"; } >> \"$GITHUB_ENV\"\n",
    )
}

/// A GitOps tool's stand-in: it watches `path` on `branch` of the fake repository and, for each
/// new pin there, serves the artifact the pin names (from the S3 registry) on `port`, as the
/// tool would roll the service out, until `stop`.
fn gitops(
    fake: &github_fake::FakeGitHub,
    repo: &str,
    branch: &str,
    path: &str,
    port: u16,
    moto: &str,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut served: Option<(String, server::Server)> = None;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let pin = fake.file(repo, branch, path);
        if let Some(text) = pin.filter(|t| served.as_ref().is_none_or(|(s, _)| s != t)) {
            let pin = mlops_github::pin::Pin::parse(&text).expect("a valid pin");
            // The old version stops before the new one takes the port.
            drop(served.take());
            let mut serve = Command::new(env!("CARGO_BIN_EXE_mlops"));
            moto::aws_env(&mut serve, moto);
            serve
                .env_remove("MLOPS_MANIFEST")
                .args(["serve", "--quiet", "--artifact"])
                .arg(&pin.model.artifact.uri)
                .args(["--sha256", &pin.model.artifact.sha256])
                .args(["--port", &port.to_string()]);
            served = Some((text, server::Server::spawn(serve)));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The whole loop under act with this project's own actions at the commit the workflows pin (no
/// stand-ins for them; the binary built once, for the test run, as `MLOPS_BIN`), the registry in
/// S3 (moto) and GitHub the fake (every request checked against GitHub's OpenAPI description):
/// a push of the manifest trains and registers the digits model, deploys it to staging (its pin
/// committed where the GitOps tool reads it), pushes the holdout set through the staging
/// service and opens the promotion pull request; the person who started the run cannot approve
/// it, a listed reviewer can; the push its merge makes runs the gate on that commit and deploys
/// production, which then serves exactly the approved artifact. Only the jobs that assume a
/// role hold AWS credentials, as on GitHub.
#[test]
fn the_rendered_loop_takes_a_push_to_production_with_the_real_actions() {
    the_loop_to_production(false);
}

/// The same loop with the promotion in another repository (`promotion.repository`), as a team
/// keeping its production pins in one deployment repository has it: the staging pin and the
/// promotion pull request go there with the App token, the gate rendered there by `mlops render
/// --promotion-out` (reading the manifest copy beside it) sees the reviews and the merge's push,
/// and deploys production from that repository's pin.
#[test]
fn the_loop_promoting_in_another_repository_takes_a_push_to_production() {
    the_loop_to_production(true);
}

fn the_loop_to_production(elsewhere: bool) {
    if tool("act").is_none() {
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    const REPO: &str = "mlops-rs/digits-example";
    const APP: &str = "ghs_promotionAppToken4242";
    const ACTIONS: &str = "ghs_workflowToken2424";
    // Where the pins and the promotion pull requests are.
    let promo_repo = if elsewhere {
        "mlops-rs/digits-deploy"
    } else {
        REPO
    };
    let (status, answer) = moto.http("PUT", "/mlops-digits-example", b"");
    assert_eq!(status, 200, "{answer}");
    let (staging_port, production_port) = (moto::free_port(), moto::free_port());
    let repo = rendered_example_with("digits-github", |text| {
        let text = if elsewhere {
            let promotion = "promotion:\n  pin_file:";
            assert!(text.contains(promotion));
            text.replace(
                promotion,
                &format!("promotion:\n  repository: {promo_repo}\n  pin_file:"),
            )
        } else {
            text
        };
        text.replace(
            "https://digits-staging.example.com",
            &format!("http://127.0.0.1:{staging_port}"),
        )
        .replace(
            "https://digits.example.com",
            &format!("http://127.0.0.1:{production_port}"),
        )
        // The soak after production's deploy, shortened for the test, with a p99 limit no
        // service meets: a deploy with no traffic passes (too little to judge), one under
        // traffic breaches.
        .replace(
            "      seconds: 600\n      interval_seconds: 15\n",
            "      seconds: 2\n      interval_seconds: 1\n",
        )
        .replace(
            "      p99_ms: 250\n",
            // The deployment repository's team rolls production back at once.
            if elsewhere {
                "      p99_ms: 0.001\n      rollback: immediate\n"
            } else {
                "      p99_ms: 0.001\n"
            },
        )
        // The engineer who starts the run is a listed reviewer too: only having started it
        // keeps their approval from counting.
        .replace("reviewers: [ml-lead]", "reviewers: [ml-lead, ml-engineer]")
    });
    let dir = repo.path();
    git_in(
        dir,
        &[
            "remote",
            "add",
            "origin",
            &format!("https://github.com/{REPO}.git"),
        ],
    );
    // The promotion repository's checkout: the model's own, or another with the gate that
    // `mlops render --promotion-out` writes.
    let promo_checkout =
        elsewhere.then(|| promotion_checkout(dir, "examples/digits-github/mlops.yaml", promo_repo));
    let (promo_dir, gate_workflow) = match &promo_checkout {
        Some(promo) => (promo.path(), "mlops-gate-digits.yml"),
        None => (dir, "mlops-gate.yml"),
    };
    let train =
        std::fs::read_to_string(dir.join(".github/workflows/mlops-train.yml")).expect("rendered");
    let sha = pinned_sha(&train, "mlops-rs/mlops").expect("pinned mlops actions");
    let pinned = actions_at(&sha);
    let aws = aws_credentials_stand_in();
    let aws_sha = pinned_sha(&train, "aws-actions/configure-aws-credentials").expect("pinned");
    let release =
        std::fs::read_to_string(dir.join(".github/workflows/mlops-release.yml")).expect("rendered");
    let app = app_token_stand_in();
    let app_sha = pinned_sha(&release, "actions/create-github-app-token").expect("pinned");
    let checkout = pin_checkout_stand_in();
    let checkout_sha = pinned_sha(&release, "actions/checkout").expect("pinned");
    let record = tempfile::NamedTempFile::new().expect("record");

    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(APP, github_fake::Token::App("mlops-app".into()));
    fake.token(ACTIONS, github_fake::Token::Actions);
    fake.repo(REPO, "main", &[("README.md", "# digits\n")]);
    fake.protect(REPO, "main", 1);
    if elsewhere {
        fake.repo(promo_repo, "main", &[("README.md", "# deployments\n")]);
        fake.protect(promo_repo, "main", 1);
    }

    // Runs `workflow` for `event` in the checkout `dir`.
    let act_at = |dir: &Path, event: &str, payload: &str, workflow: &str| {
        let mut args = event_args(dir, event, payload, workflow);
        args.extend(["--actor".into(), "ml-engineer".into()]);
        args.extend(local_repositories(&[
            ("mlops-rs/mlops", &sha, pinned.path()),
            (
                "aws-actions/configure-aws-credentials",
                &aws_sha,
                aws.path(),
            ),
            ("actions/create-github-app-token", &app_sha, app.path()),
            ("actions/checkout", &checkout_sha, checkout.path()),
        ]));
        for (k, v) in [
            (
                "MLOPS_TRAIN_ROLE_ARN",
                "arn:aws:iam::123456789012:role/train",
            ),
            (
                "MLOPS_AWS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/deploy",
            ),
            ("MLOPS_AWS_REGION", "us-east-1"),
        ] {
            args.extend(["--var".into(), format!("{k}={v}")]);
        }
        args.extend(["-s".into(), format!("GITHUB_TOKEN={ACTIONS}")]);
        if elsewhere {
            // A GitHub App: each job makes a short-lived token of its own (the stand-in's is
            // one the fake knows as the App's); no long-lived token is stored.
            args.extend([
                "--var".into(),
                "MLOPS_APP_CLIENT_ID=Iv23liTestClient".into(),
                "-s".into(),
                "MLOPS_APP_PRIVATE_KEY=test-private-key".into(),
                "--env".into(),
                format!("MLOPS_STANDIN_APP_TOKEN={APP}"),
            ]);
        } else {
            args.extend(["-s".into(), format!("MLOPS_PROMOTION_TOKEN={APP}")]);
        }
        args.extend(world_env(&moto.endpoint(), fake.url(), record.path()));
        let run = act_in(dir, &args).expect("act is on PATH");
        // What a job's log shows: each event's message (act's JSON lines also carry the raw
        // arguments of workflow commands, `add-mask` and the outputs, which GitHub never
        // shows), and any line that is not an event.
        let shown: Vec<String> = run
            .log
            .lines()
            .map(|l| match serde_json::from_str::<Event>(l) {
                Ok(e) => e["msg"].as_str().unwrap_or_default().to_owned(),
                Err(_) => l.to_owned(),
            })
            .collect();
        for token in [APP, ACTIONS] {
            assert!(
                !shown.iter().any(|l| l.contains(token)),
                "a token leaked:\n{}",
                run.log
            );
        }
        let roles = std::fs::read_to_string(record.path()).expect("record");
        std::fs::write(record.path(), "").expect("reset");
        (run, roles)
    };
    let act = |event: &str, payload: &str, workflow: &str| act_at(dir, event, payload, workflow);
    let gate = |event: &str, payload: &str| act_at(promo_dir, event, payload, gate_workflow);
    // Commits `pin` as production's in the runner's checkout of the promotion repository; the
    // commit's SHA.
    let commit_pin = |pin: &str, message: &str| {
        std::fs::create_dir_all(promo_dir.join("deploy")).expect("mkdir");
        std::fs::write(promo_dir.join("deploy/production.yaml"), pin).expect("pin");
        git_in(promo_dir, &["add", "deploy/production.yaml"]);
        git_in(promo_dir, &["commit", "-qm", message]);
        let head = Command::new("git")
            .current_dir(promo_dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git");
        String::from_utf8_lossy(&head.stdout).trim().to_owned()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|threads| {
        let moto_url = moto.endpoint();
        for (branch, path, port) in [
            ("mlops/staging", "deploy/staging.yaml", staging_port),
            ("main", "deploy/production.yaml", production_port),
        ] {
            let (fake, stop, moto_url) = (&fake, &stop, moto_url.clone());
            threads.spawn(move || gitops(fake, promo_repo, branch, path, port, &moto_url, stop));
        }
        // Stops the GitOps stand-ins however the test ends.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _stop = Stop(&stop);

        // 1. The push: train, staging, holdout, promotion.
        let (run, roles) = act("push", r#"{"ref": "refs/heads/main"}"#, "mlops-train.yml");
        assert_eq!(run.code, Some(0), "{}", run.log);
        let deploy = "aws role=arn:aws:iam::123456789012:role/deploy";
        // With the App: the staging pin's commit and the promotion each get a token for the
        // promotion repository with what they do; the gate's is read-only.
        let app_token = |permissions: &str| {
            format!("app owner=mlops-rs repositories=digits-deploy {permissions}")
        };
        let (pin_token, production_pin_token, promote_token, gate_token) = (
            app_token("contents=write"),
            // The holdout job reads production's pin from the promotion repository.
            app_token("contents=read"),
            app_token("contents=write pull-requests=write statuses=write"),
            app_token("contents=read pull-requests=read statuses=read"),
        );
        let expected: Vec<&str> = if elsewhere {
            vec![
                "aws role=arn:aws:iam::123456789012:role/train",
                deploy,
                &pin_token,
                deploy,
                &production_pin_token,
                deploy,
                &promote_token,
            ]
        } else {
            vec![
                "aws role=arn:aws:iam::123456789012:role/train",
                deploy,
                deploy,
                deploy,
            ]
        };
        assert_eq!(roles.lines().collect::<Vec<_>>(), expected, "{}", run.log);
        let snapshot = fake.snapshot(promo_repo).expect("repo");
        let pull = snapshot
            .pulls
            .iter()
            .find(|p| p.head == "mlops/promote/digits-mlp")
            .expect("the promotion pull request");
        let (pr, head) = (
            pull.number,
            snapshot.refs["heads/mlops/promote/digits-mlp"].clone(),
        );
        assert!(
            snapshot.statuses[&head]
                .iter()
                .any(|s| s.context == "mlops/holdout" && s.state == "success"),
            "{:?}",
            snapshot.statuses[&head]
        );
        let pin_text = fake
            .file(
                promo_repo,
                "mlops/promote/digits-mlp",
                "deploy/production.yaml",
            )
            .expect("the pin on the promotion branch");
        let pin = mlops_github::pin::Pin::parse(&pin_text).expect("a valid pin");
        assert_eq!(pin.model.name, "digits-mlp");
        assert_eq!(
            pin.model.artifact.uri,
            format!(
                "s3://mlops-digits-example/registry/digits-mlp/{}",
                pin.model.version
            )
        );
        let holdout = pin
            .holdout
            .as_ref()
            .expect("the pin names the holdout test");
        assert!(holdout.passed, "{pin_text}");
        // Production pins nothing yet: the holdout test had nothing to compare with.
        assert_eq!(holdout.compared_with, None, "{pin_text}");
        // The holdout job recorded that report beside the version, where production reads it.
        let (status, recorded) = moto.http(
            "GET",
            &format!(
                "/mlops-digits-example/registry/digits-mlp/{}/holdout/{}.json",
                pin.model.version, holdout.report_sha256
            ),
            b"",
        );
        assert_eq!(status, 200, "{recorded}");
        assert_eq!(
            fake.file(promo_repo, "main", "deploy/staging.yaml"),
            None,
            "staging's pin stays off the base branch"
        );

        // 2. Reviews: the person who started the run cannot approve; a listed reviewer can.
        let review = format!(
            r#"{{"action": "submitted", "review": {{"state": "approved"}}, "pull_request": {{"number": {pr}, "head": {{"ref": "mlops/promote/digits-mlp", "repo": {{"full_name": "{promo_repo}"}}}}, "base": {{"ref": "main"}}}}}}"#
        );
        fake.review(promo_repo, pr, "ml-engineer", "APPROVED", None);
        let (run, _) = gate("pull_request_review", &review);
        assert_eq!(run.code, Some(1), "the starter approved:\n{}", run.log);
        assert!(
            run.log
                .contains("ml-engineer: started the run that promoted this model"),
            "{}",
            run.log
        );
        fake.review(promo_repo, pr, "ml-lead", "APPROVED", None);
        let (run, roles) = gate("pull_request_review", &review);
        assert_eq!(run.code, Some(0), "{}", run.log);
        assert_eq!(
            roles.lines().collect::<Vec<_>>(),
            if elsewhere {
                vec![gate_token.as_str()]
            } else {
                vec![]
            },
            "a review assumes no role and deploys nothing"
        );
        assert_eq!(
            fake.file(promo_repo, "main", "deploy/production.yaml"),
            None
        );

        // 3. The merge (the same commit in the fake and in the runner's checkout), and the push
        // it makes: the gate on that commit, the production role, the deploy.
        let merged = commit_pin(&pin_text, &format!("Merge pull request #{pr}"));
        assert_eq!(
            fake.merge_as_sha(promo_repo, pr, "ml-lead", &merged),
            merged
        );
        let push = format!(r#"{{"ref": "refs/heads/main", "after": "{merged}"}}"#);
        let (run, roles) = gate("push", &push);
        assert_eq!(run.code, Some(0), "{}", run.log);
        // The deploy watched production's /metrics for the (shortened) soak.
        assert!(
            run.log.contains("/metrics every 1 s for 2 s"),
            "{}",
            run.log
        );
        let expected: Vec<&str> = if elsewhere {
            vec![&gate_token, deploy]
        } else {
            vec![deploy]
        };
        assert_eq!(roles.lines().collect::<Vec<_>>(), expected, "{}", run.log);

        // Production serves exactly the approved artifact.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], production_port));
        let version = http::get(addr, "/version").json();
        assert_eq!(
            version["artifact_sha256"], pin.model.artifact.sha256,
            "{version}"
        );
        assert_eq!(version["model"], pin.reference(), "{version}");

        // 4. The next push trains the next version; the release scores it beside what
        // production pins now (read from the base branch on GitHub), and the promotion carries
        // that comparison into its pin and its body.
        let (run, _) = act("push", r#"{"ref": "refs/heads/main"}"#, "mlops-train.yml");
        assert_eq!(run.code, Some(0), "{}", run.log);
        let next = fake
            .file(
                promo_repo,
                "mlops/promote/digits-mlp",
                "deploy/production.yaml",
            )
            .expect("the next promotion's pin");
        let next_pin = mlops_github::pin::Pin::parse(&next).expect("a valid pin");
        assert_eq!(next_pin.model.version, pin.model.version + 1, "{next}");
        let compared = next_pin
            .holdout
            .as_ref()
            .and_then(|h| h.compared_with.as_ref())
            .expect("the comparison with production");
        assert_eq!(compared.model, pin.reference(), "{next}");
        assert_eq!(compared.artifact_sha256, pin.model.artifact.sha256);
        assert!(compared.passed, "{next}");
        let snapshot = fake.snapshot(promo_repo).expect("repo");
        let (next_pr, body) = snapshot
            .pulls
            .iter()
            .filter(|p| p.head == "mlops/promote/digits-mlp" && p.open)
            .find_map(|p| Some((p.number, p.body.clone()?)))
            .expect("the next promotion pull request");
        assert!(
            body.contains(&format!("### Against production ({}, ", pin.reference())),
            "{body}"
        );

        // 5. The next version is approved and merged, and the watch after its deploy breaches
        // (prediction traffic against the test's p99 limit): the deploy job fails naming the
        // limit; the rollback job, with write rights, proposes the version production served
        // before, through the same gate, whose no-regression rule takes a rollback to exactly
        // that pin (it is not scored against the version it replaces).
        fake.review(promo_repo, next_pr, "ml-lead", "APPROVED", None);
        let merged = commit_pin(&next, &format!("Merge pull request #{next_pr}"));
        assert_eq!(
            fake.merge_as_sha(promo_repo, next_pr, "ml-lead", &merged),
            merged
        );
        let go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let traffic = crate::traffic::Traffic::start(
            addr,
            2,
            crate::traffic::body(1),
            std::time::Duration::from_millis(2),
            go,
        );
        let push = format!(r#"{{"ref": "refs/heads/main", "after": "{merged}"}}"#);
        if elsewhere {
            // `watch.rollback: immediate`: the rollback job sets the pin back on `main` itself.
            // First without a way past main's protection: GitHub refuses, nothing moves.
            let (run, _) = gate("push", &push);
            assert_eq!(run.code, Some(1), "{}", run.log);
            assert!(
                run.log.contains("watch.p99_ms: the 99th percentile"),
                "{}",
                run.log
            );
            assert!(
                run.log
                    .contains("Changes must be made through a pull request")
                    && run.log.contains("bypass list"),
                "{}",
                run.log
            );
            assert_eq!(
                fake.file(promo_repo, "main", "deploy/production.yaml"),
                Some(next.clone())
            );
            // With the App on the bypass list, the revert lands: one commit of the pin file by
            // the App, and the GitOps tool serves the version before again.
            fake.bypass(promo_repo, "main", "mlops-app[bot]");
            let (run, roles) = gate("push", &push);
            drop(traffic);
            assert_eq!(run.code, Some(1), "{}", run.log);
            let revert_token = app_token("contents=write");
            assert_eq!(
                roles.lines().collect::<Vec<_>>(),
                [gate_token.as_str(), deploy, deploy, &revert_token],
                "{}",
                run.log
            );
            assert_eq!(
                fake.file(promo_repo, "main", "deploy/production.yaml"),
                Some(pin_text.clone())
            );
            let snapshot = fake.snapshot(promo_repo).expect("repo");
            let tip = snapshot.refs["heads/main"].clone();
            let revert = &snapshot.commits[&tip];
            assert_eq!(revert.author.login, "mlops-app[bot]");
            assert_eq!(revert.parents, std::slice::from_ref(&merged));
            assert!(
                revert.message.contains("Mlops-Rollback: immediate")
                    && revert.message.contains("watch.p99_ms"),
                "{}",
                revert.message
            );
            let version = http::get(addr, "/version").json();
            assert_eq!(version["model"], pin.reference(), "{version}");
            // The revert's push: the gate lets exactly such a rollback deploy, and production
            // serves the version before.
            let local = commit_pin(&pin_text, "Roll back production");
            assert_eq!(fake.rename_commit(promo_repo, &tip, &local), local);
            let push = format!(r#"{{"ref": "refs/heads/main", "after": "{local}"}}"#);
            let (run, _) = gate("push", &push);
            assert_eq!(run.code, Some(0), "{}", run.log);
            assert!(
                run.log.contains(&format!(
                    "rolls production back from {} (PR #{next_pr}) to {}",
                    next_pin.reference(),
                    pin.reference()
                )),
                "{}",
                run.log
            );
        } else {
            let (run, roles) = gate("push", &push);
            drop(traffic);
            assert_eq!(run.code, Some(1), "{}", run.log);
            assert!(
                run.log.contains("watch.p99_ms: the 99th percentile"),
                "{}",
                run.log
            );
            // The deploy job (the gate's read-only token, the role), then the rollback job (the
            // role, and with an App, a token that may open the pull request).
            let expected: Vec<&str> = if elsewhere {
                vec![&gate_token, deploy, deploy, &promote_token]
            } else {
                vec![deploy, deploy]
            };
            assert_eq!(roles.lines().collect::<Vec<_>>(), expected, "{}", run.log);
            let snapshot = fake.snapshot(promo_repo).expect("repo");
            let rollback = snapshot
                .pulls
                .iter()
                .find(|p| p.head == "mlops/promote/digits-mlp" && p.open)
                .expect("the rollback pull request");
            assert_eq!(
                rollback.title,
                format!(
                    "Roll back production to {} (from {})",
                    pin.reference(),
                    next_pin.reference()
                )
            );
            let body = rollback.body.clone().unwrap_or_default();
            assert!(
                body.contains("watch.p99_ms"),
                "the breach is the reason:\n{body}"
            );
            let reverted = fake
                .file(
                    promo_repo,
                    "mlops/promote/digits-mlp",
                    "deploy/production.yaml",
                )
                .expect("the rollback's pin");
            let reverted = mlops_github::pin::Pin::parse(&reverted).expect("a valid pin");
            assert!(reverted.same_model(&pin), "{reverted:?}");
            // A reviewer approves the rollback on its head, and the gate takes it.
            fake.review(promo_repo, rollback.number, "ml-lead", "APPROVED", None);
            let review = format!(
                r#"{{"action": "submitted", "review": {{"state": "approved"}}, "pull_request": {{"number": {}, "head": {{"ref": "mlops/promote/digits-mlp", "repo": {{"full_name": "{promo_repo}"}}}}, "base": {{"ref": "main"}}}}}}"#,
                rollback.number
            );
            let (run, _) = gate("pull_request_review", &review);
            assert_eq!(run.code, Some(0), "{}", run.log);
            assert!(
                run.log
                    .contains(&format!("a rollback to {}", pin.reference())),
                "{}",
                run.log
            );
        }
        assert_eq!(
            fake.violations(),
            Vec::<String>::new(),
            "contract violations"
        );
    });
}

/// The rendered monitor workflow under act with the real monitor action at its pinned commit:
/// production's service captured shifted traffic into S3 (moto); the workflow judges it, opens
/// one drift issue in the fake GitHub and dispatches the train workflow; a second run updates
/// that issue (a comment), never opens another, and dispatches again.
#[test]
fn rendered_monitor_workflow_opens_one_issue_and_dispatches_training_on_drift() {
    if tool("act").is_none() {
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    const REPO: &str = "mlops-rs/digits-example";
    const ACTIONS: &str = "ghs_workflowToken5151";
    const BUCKET: &str = "mlops-digits-example";
    let (status, answer) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "{answer}");
    let repo = rendered_example("digits-github");
    let dir = repo.path();
    let manifest = dir.join("examples/digits-github/mlops.yaml");
    let monitor = std::fs::read_to_string(dir.join(".github/workflows/mlops-monitor.yml"))
        .expect("the monitor workflow is rendered");
    let registry = format!("s3://{BUCKET}/registry");

    // The model, trained into the S3 registry; production pins it.
    let mut train = Command::new(env!("CARGO_BIN_EXE_mlops"));
    train
        .current_dir(dir)
        .args(["train", "--format", "json", "--manifest"])
        .arg(&manifest)
        .env_remove("GITHUB_ACTIONS");
    moto.env(&mut train);
    let out = train.output().expect("train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, card) = moto.http(
        "GET",
        &format!("/{BUCKET}/registry/digits-mlp/1/card.json"),
        b"",
    );
    assert_eq!(status, 200, "{card}");
    let card = card
        .split_once("\r\n\r\n")
        .map_or(card.as_str(), |(_, body)| body);
    let card: serde_json::Value = serde_json::from_str(card).expect("card");
    let digest = |k: &str| card[k]["sha256"].as_str().expect("digest").to_owned();
    let pin = mlops_artifacts::pin::Pin {
        version: 1,
        model: mlops_artifacts::pin::PinnedModel {
            name: "digits-mlp".into(),
            version: 1,
            registry: registry.clone(),
            artifact: mlops_artifacts::pin::Artifact {
                uri: format!("{registry}/digits-mlp/1"),
                sha256: digest("artifact"),
            },
            image: None,
        },
        manifest_sha256: digest("manifest"),
        holdout: None,
    };
    std::fs::create_dir_all(dir.join("deploy")).expect("mkdir");
    std::fs::write(
        dir.join("deploy/production.yaml"),
        pin.to_yaml("production"),
    )
    .expect("pin");
    git_in(dir, &["add", "-A"]);
    git_in(dir, &["commit", "-qm", "production pins digits-mlp@1"]);

    // Production's service captures into S3; its traffic has one pixel brightened.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mlops"));
    serve.current_dir(dir).env_remove("GITHUB_ACTIONS");
    moto.env(&mut serve);
    let capture = format!("s3://{BUCKET}/capture/production");
    let mut server = server::Server::start(
        serve,
        &[
            "--quiet",
            "--model",
            "digits-mlp@1",
            "--registry",
            &registry,
            "--capture",
            &capture,
        ],
    );
    let holdout =
        std::fs::read_to_string(root().join("examples/quickstart/data/digits-holdout.csv"))
            .expect("holdout");
    let mut lines = holdout.lines();
    let header = lines.next().expect("header");
    let features = header.rsplit_once(',').expect("label").0;
    for chunk in lines.collect::<Vec<_>>().chunks(25) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|l| {
                let mut v: Vec<f64> = l.split(',').map(|x| x.parse().expect("number")).collect();
                v.pop();
                v[20] += 5.0;
                v.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
            })
            .collect();
        let a = crate::http::post_csv(server.addr, &format!("{features}\n{}\n", rows.join("\n")));
        assert_eq!(a.status, 200, "{}", a.text());
    }
    assert!(server.stop().success(), "{}", server.log());
    let (status, listing) = moto.http(
        "GET",
        &format!("/{BUCKET}?list-type=2&prefix=capture/"),
        b"",
    );
    assert_eq!(status, 200, "{listing}");
    assert!(
        listing.contains(".jsonl</Key>"),
        "the capture was uploaded: {listing}"
    );

    // GitHub: the repository with the train workflow the monitor dispatches.
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(ACTIONS, github_fake::Token::Actions);
    // ... and production's pin, which the workflow checks out of the promotion's base branch.
    let train_workflow =
        std::fs::read_to_string(dir.join(".github/workflows/mlops-train.yml")).expect("train");
    let production_pin =
        std::fs::read_to_string(dir.join("deploy/production.yaml")).expect("the pin");
    fake.repo(
        REPO,
        "main",
        &[
            (".github/workflows/mlops-train.yml", train_workflow.as_str()),
            ("deploy/production.yaml", production_pin.as_str()),
        ],
    );
    // The runner's checkout has no pin: the one the job judges is the one on GitHub.
    std::fs::remove_file(dir.join("deploy/production.yaml")).expect("rm");

    let sha = pinned_sha(&monitor, "mlops-rs/mlops").expect("pinned mlops actions");
    let pinned = actions_at(&sha);
    let aws = aws_credentials_stand_in();
    let aws_sha = pinned_sha(&monitor, "aws-actions/configure-aws-credentials").expect("pinned");
    let checkout = pin_checkout_stand_in();
    let checkout_sha = pinned_sha(&monitor, "actions/checkout").expect("pinned");
    let record = tempfile::NamedTempFile::new().expect("record");
    let run = || {
        let mut args = event_args(dir, "workflow_dispatch", "{}", "mlops-monitor.yml");
        args.extend(local_repositories(&[
            ("mlops-rs/mlops", &sha, pinned.path()),
            (
                "aws-actions/configure-aws-credentials",
                &aws_sha,
                aws.path(),
            ),
            ("actions/checkout", &checkout_sha, checkout.path()),
        ]));
        args.extend([
            "--var".into(),
            "MLOPS_MONITOR_ROLE_ARN=arn:aws:iam::123456789012:role/monitor".into(),
            "--var".into(),
            "MLOPS_AWS_REGION=us-east-1".into(),
            "-s".into(),
            format!("GITHUB_TOKEN={ACTIONS}"),
            "--env".into(),
            format!("GITHUB_REPOSITORY={REPO}"),
        ]);
        args.extend(world_env(&moto.endpoint(), fake.url(), record.path()));
        act_in(dir, &args).expect("act is on PATH")
    };

    let first = run();
    // Drift fails the job, after the issue and the dispatch.
    assert_ne!(first.code, Some(0), "{}", first.log);
    assert!(first.log.contains("pixel_20"), "{}", first.log);
    let state = fake.snapshot(REPO).expect("repo");
    assert_eq!(state.issues.len(), 1, "{}", first.log);
    let issue = &state.issues[0];
    assert_eq!(issue.labels, ["mlops-drift"]);
    assert!(issue.title.contains("digits-mlp@1"), "{}", issue.title);
    let body = issue.body.clone().unwrap_or_default();
    assert!(body.contains("feature `pixel_20`"), "{body}");
    assert!(
        body.contains("<!-- mlops:drift project=digits model=digits-mlp -->"),
        "{body}"
    );
    assert_eq!(state.dispatches.len(), 1);
    assert_eq!(state.dispatches[0].workflow, "mlops-train.yml");
    assert_eq!(state.dispatches[0].git_ref, "main");
    // A retraining on `monitoring.retrain_data`: an input the rendered train workflow declares
    // (the fake refuses any other, as GitHub does).
    assert_eq!(
        state.dispatches[0].inputs,
        [("retraining".to_owned(), "true".to_owned())].into()
    );
    assert_eq!(
        first.output("issue").as_deref(),
        Some(issue.number.to_string().as_str())
    );

    let second = run();
    assert_ne!(second.code, Some(0), "{}", second.log);
    let state = fake.snapshot(REPO).expect("repo");
    assert_eq!(
        state.issues.len(),
        1,
        "updated, not duplicated: {}",
        second.log
    );
    assert_eq!(
        state.issues[0].comments.len(),
        1,
        "{:?}",
        state.issues[0].comments
    );
    assert!(
        state.issues[0].comments[0].1.contains("Drift again"),
        "{:?}",
        state.issues[0].comments
    );
    assert_eq!(state.dispatches.len(), 2);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let recorded = std::fs::read_to_string(record.path()).expect("record");
    assert!(
        recorded.contains("aws role=arn:aws:iam::123456789012:role/monitor"),
        "{recorded}"
    );
}

/// The rendered batch workflow under act with the real predict action at its pinned commit:
/// production's pin (on the fake GitHub) names the version; the workflow scores the batch input
/// in S3 (moto) with it into `scores/RUN_ID-ATTEMPT.parquet`, the same rows a local `mlops
/// predict` writes; a pin whose artifact digest the registry does not hold is refused and
/// writes nothing.
#[test]
fn rendered_batch_workflow_scores_with_productions_pin() {
    if tool("act").is_none() {
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    const REPO: &str = "mlops-rs/digits-example";
    const ACTIONS: &str = "ghs_workflowToken6161";
    const BUCKET: &str = "mlops-digits-example";
    let (status, answer) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "{answer}");
    let repo = rendered_example("digits-github");
    let dir = repo.path();
    let manifest = dir.join("examples/digits-github/mlops.yaml");
    let batch = std::fs::read_to_string(dir.join(".github/workflows/mlops-batch.yml"))
        .expect("the batch workflow is rendered");
    let registry = format!("s3://{BUCKET}/registry");

    let mut train = Command::new(env!("CARGO_BIN_EXE_mlops"));
    train
        .current_dir(dir)
        .args(["train", "--format", "json", "--manifest"])
        .arg(&manifest)
        .env_remove("GITHUB_ACTIONS");
    moto.env(&mut train);
    let out = train.output().expect("train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, card) = moto.http(
        "GET",
        &format!("/{BUCKET}/registry/digits-mlp/1/card.json"),
        b"",
    );
    assert_eq!(status, 200, "{card}");
    let card = card
        .split_once("\r\n\r\n")
        .map_or(card.as_str(), |(_, body)| body);
    let card: serde_json::Value = serde_json::from_str(card).expect("card");
    let digest = |k: &str| card[k]["sha256"].as_str().expect("digest").to_owned();
    let pin = |artifact: String| mlops_artifacts::pin::Pin {
        version: 1,
        model: mlops_artifacts::pin::PinnedModel {
            name: "digits-mlp".into(),
            version: 1,
            registry: registry.clone(),
            artifact: mlops_artifacts::pin::Artifact {
                uri: format!("{registry}/digits-mlp/1"),
                sha256: artifact,
            },
            image: None,
        },
        manifest_sha256: digest("manifest"),
        holdout: None,
    };
    let holdout =
        std::fs::read_to_string(root().join("examples/quickstart/data/digits-holdout.csv"))
            .expect("holdout");
    let (status, answer) = moto.http(
        "PUT",
        &format!("/{BUCKET}/batch/rows.csv"),
        holdout.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");

    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    fake.token(ACTIONS, github_fake::Token::Actions);
    let good = pin(digest("artifact")).to_yaml("production");
    fake.repo(REPO, "main", &[("deploy/production.yaml", good.as_str())]);

    let sha = pinned_sha(&batch, "mlops-rs/mlops").expect("pinned mlops actions");
    let pinned = actions_at(&sha);
    let aws = aws_credentials_stand_in();
    let aws_sha = pinned_sha(&batch, "aws-actions/configure-aws-credentials").expect("pinned");
    let checkout = pin_checkout_stand_in();
    let checkout_sha = pinned_sha(&batch, "actions/checkout").expect("pinned");
    let record = tempfile::NamedTempFile::new().expect("record");
    let run = || {
        let mut args = event_args(dir, "workflow_dispatch", "{}", "mlops-batch.yml");
        args.extend(local_repositories(&[
            ("mlops-rs/mlops", &sha, pinned.path()),
            (
                "aws-actions/configure-aws-credentials",
                &aws_sha,
                aws.path(),
            ),
            ("actions/checkout", &checkout_sha, checkout.path()),
        ]));
        args.extend([
            "--var".into(),
            "MLOPS_BATCH_ROLE_ARN=arn:aws:iam::123456789012:role/batch".into(),
            "--var".into(),
            "MLOPS_AWS_REGION=us-east-1".into(),
            "-s".into(),
            format!("GITHUB_TOKEN={ACTIONS}"),
            "--env".into(),
            format!("GITHUB_REPOSITORY={REPO}"),
        ]);
        args.extend(world_env(&moto.endpoint(), fake.url(), record.path()));
        act_in(dir, &args).expect("act is on PATH")
    };
    let listing = || {
        let (status, listing) =
            moto.http("GET", &format!("/{BUCKET}?list-type=2&prefix=scores/"), b"");
        assert_eq!(status, 200, "{listing}");
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    let first = run();
    assert_eq!(first.code, Some(0), "{}", first.log);
    let keys = listing();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("scores/") && keys[0].ends_with(".parquet"),
        "{keys:?}"
    );
    assert_eq!(
        first.output("rows").as_deref(),
        Some("297"),
        "{}",
        first.log
    );
    assert_eq!(first.output("model").as_deref(), Some("digits-mlp@1"));
    // A Parquet file (its 297 rows were counted back from it before the upload: `rows`).
    let (status, scored) = moto.http("GET", &format!("/{BUCKET}/{}", keys[0]), b"");
    assert_eq!(status, 200);
    assert!(
        scored
            .split_once("\r\n\r\n")
            .is_some_and(|(_, body)| body.starts_with("PAR1")),
        "a Parquet file"
    );
    let recorded = std::fs::read_to_string(record.path()).expect("record");
    assert!(
        recorded.contains("aws role=arn:aws:iam::123456789012:role/batch"),
        "{recorded}"
    );

    // act numbers every run 1 (attempt 1): the next run would find its output there and keep
    // it (`already exists`), so it goes first.
    let second = run();
    assert_ne!(second.code, Some(0), "{}", second.log);
    assert!(second.log.contains("already exists"), "{}", second.log);
    let (status, answer) = moto.http("DELETE", &format!("/{BUCKET}/{}", keys[0]), b"");
    assert_eq!(status, 204, "{answer}");
    // A pin naming another artifact: refused before anything is scored.
    let forged = pin("0".repeat(64)).to_yaml("production");
    fake.repo(REPO, "main", &[("deploy/production.yaml", forged.as_str())]);
    let third = run();
    assert_ne!(third.code, Some(0), "{}", third.log);
    assert!(
        third.log.contains("the pin names the artifact sha256:0000"),
        "{}",
        third.log
    );
    assert!(listing().is_empty(), "nothing was written");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// A sweep of four trials fans out under act as the rendered matrix, with this repository's
/// train action at its pinned commit and the registry in S3 (moto): four trial jobs each keep
/// their trial under the run's ID, then the train job registers the best one, with the four
/// trials on its card. (The release the train workflow then calls is tested elsewhere: only
/// the train job and what it needs run here.)
#[test]
fn rendered_sweep_fans_out_as_a_matrix_and_registers_the_best_trial() {
    if tool("act").is_none() {
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    const BUCKET: &str = "mlops-digits-example";
    let (status, answer) = moto.http("PUT", &format!("/{BUCKET}"), b"");
    assert_eq!(status, 200, "{answer}");
    let repo = rendered_example_with("digits-github", crate::sweep::grid_of_four);
    let dir = repo.path();
    let train = std::fs::read_to_string(dir.join(".github/workflows/mlops-train.yml"))
        .expect("the train workflow");
    assert!(
        train.contains("sweep-trial: ${{ matrix.trial }}"),
        "{train}"
    );
    let sha = pinned_sha(&train, "mlops-rs/mlops").expect("pinned mlops actions");
    let pinned = actions_at(&sha);
    let aws = aws_credentials_stand_in();
    let aws_sha = pinned_sha(&train, "aws-actions/configure-aws-credentials").expect("pinned");
    let record = tempfile::NamedTempFile::new().expect("record");
    let fake = github_fake::FakeGitHub::start().expect("fake GitHub");
    let mut args = event_args(
        dir,
        "push",
        r#"{"ref": "refs/heads/main"}"#,
        "mlops-train.yml",
    );
    args.extend(["-j".into(), "train".into()]);
    args.extend(local_repositories(&[
        ("mlops-rs/mlops", &sha, pinned.path()),
        (
            "aws-actions/configure-aws-credentials",
            &aws_sha,
            aws.path(),
        ),
    ]));
    args.extend([
        "--var".into(),
        "MLOPS_TRAIN_ROLE_ARN=arn:aws:iam::123456789012:role/train".into(),
        "--var".into(),
        "MLOPS_AWS_REGION=us-east-1".into(),
    ]);
    args.extend(world_env(&moto.endpoint(), fake.url(), record.path()));
    let run = act_in(dir, &args).expect("act is on PATH");
    assert_eq!(run.code, Some(0), "{}", run.log);
    // Four trial jobs ran (one per matrix value), then the selection.
    for n in 1..=4 {
        assert!(
            run.log.contains(&format!("trial {n}/4: ")),
            "trial {n} did not run:\n{}",
            run.log
        );
    }
    let keys = |prefix: &str| {
        let (status, listing) = moto.http(
            "GET",
            &format!("/{BUCKET}?list-type=2&prefix={prefix}"),
            b"",
        );
        assert_eq!(status, 200, "{listing}");
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let trials: Vec<String> = keys("registry/digits-mlp/sweeps/")
        .into_iter()
        .filter(|k| k.ends_with("/trial.json"))
        .collect();
    assert_eq!(trials.len(), 4, "{trials:?}");
    let versions: Vec<String> = keys("registry/digits-mlp/")
        .into_iter()
        .filter(|k| k.ends_with("/status.json"))
        .collect();
    assert_eq!(versions, ["registry/digits-mlp/1/status.json"]);
    let (status, card) = moto.http(
        "GET",
        &format!("/{BUCKET}/registry/digits-mlp/1/card.json"),
        b"",
    );
    assert_eq!(status, 200, "{card}");
    let card = card
        .split_once("\r\n\r\n")
        .map_or(card.as_str(), |(_, b)| b);
    let card: mlops_artifacts::card::ModelCard = serde_json::from_str(card).expect("card");
    let sweep = card.sweep.expect("the card records the sweep");
    assert_eq!(sweep.trials.len(), 4);
    let top = sweep
        .trials
        .iter()
        .max_by(|a, b| a.objective.total_cmp(&b.objective))
        .expect("trials");
    assert_eq!(sweep.best, top.trial);
    assert_eq!(
        serde_json::json!(card.job.learning_rate),
        top.parameters["learning_rate"]
    );
    assert_eq!(
        run.output("model-version").as_deref(),
        Some("digits-mlp@1"),
        "{}",
        run.log
    );
    let recorded = std::fs::read_to_string(record.path()).expect("record");
    assert_eq!(
        recorded
            .lines()
            .filter(|l| *l == "aws role=arn:aws:iam::123456789012:role/train")
            .count(),
        5,
        "each trial job and the selection assume the training role: {recorded}"
    );
}
