//! `cargo xtask bench action-start`: from the start of an action's install step
//! (`actions/lib/mlops.sh`) to the binary answering `--version`, with the release served from a
//! local HTTP server: cold (empty tool cache; the download is timed apart and taken out) and warm
//! (a tool cache hit), against the fallback an action takes without a release, building its own
//! checkout with cargo. The fallback is timed on this machine's warm target directory unless
//! `MLOPS_BENCH_CLEAN_FALLBACK=1`, which builds into an empty one (tens of minutes on 2 cores).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root};

/// Serves the files of `dir` until the process ends.
fn serve(dir: &Path) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
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
            let mut stream = reader.into_inner();
            let _ = match std::fs::read(dir.join(path.trim_start_matches('/'))) {
                Ok(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body)),
                Err(_) => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    Ok(format!("http://{addr}"))
}

/// Runs the install script of `repo`, then the binary it printed with `--version`.
fn install_and_run(repo: &Path, release_url: &str, tool_cache: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo.join("actions/lib/mlops.sh"))
        .env_remove("MLOPS_BIN")
        .env("MLOPS_RELEASE_URL", release_url)
        .env("RUNNER_TOOL_CACHE", tool_cache)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("the install script failed".into());
    }
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let ran = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{bin}: {e}"))?;
    if !ran.success() {
        return Err(format!("{bin} --version failed"));
    }
    Ok(started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn run() -> Result<(), String> {
    let binary = super::release_binary()?;
    let scratch = super::tempdir("bench-action-start")?;
    let version = "0.0.0-bench";
    let target = match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-gnu",
        _ => "x86_64-unknown-linux-gnu",
    };
    let name = crate::dist::asset_name(version, target, "");
    let served = scratch.join("served");
    let release_dir = served.join(format!("v{version}"));
    std::fs::create_dir_all(&release_dir).map_err(|e| e.to_string())?;
    let line = crate::dist::package(&binary, &name, &release_dir)?;
    // A checkout of this release: the install script, its checksums, the version.
    let repo = scratch.join("repo");
    std::fs::create_dir_all(repo.join("actions/lib")).map_err(|e| e.to_string())?;
    std::fs::copy(
        root().join("actions/lib/mlops.sh"),
        repo.join("actions/lib/mlops.sh"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        repo.join("actions/lib/checksums.txt"),
        format!("version {version}\n{line}"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        repo.join("Cargo.toml"),
        format!("[workspace.package]\nversion = \"{version}\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let url = serve(&served)?;
    let asset_url = format!("{url}/v{version}/{name}");
    let size = std::fs::metadata(release_dir.join(&name))
        .map(|m| m.len())
        .unwrap_or(0);

    let runs = 7;
    let (mut cold, mut download, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let cache = scratch.join(format!("tool-cache-{i}"));
        let sink = scratch.join("download");
        let t = Instant::now();
        crate::run(
            Command::new("curl")
                .args(["--fail", "--silent", "--output"])
                .arg(&sink)
                .arg(&asset_url),
        )?;
        download.push(t.elapsed());
        cold.push(install_and_run(&repo, &url, &cache)?);
        warm.push(install_and_run(&repo, &url, &cache)?);
    }
    let (cold, download, warm) = (median(cold), median(download), median(warm));
    let cold_net = cold.saturating_sub(download);

    // The fallback: the script's build of the checkout.
    let clean = std::env::var("MLOPS_BENCH_CLEAN_FALLBACK").is_ok_and(|v| v == "1");
    let fallback_target = scratch.join("fallback-target");
    let mut build = cargo();
    build.args(super::RELEASE_BUILD);
    if clean {
        build.env("CARGO_TARGET_DIR", &fallback_target);
    }
    let t = Instant::now();
    crate::run(&mut build)?;
    let fallback = t.elapsed();
    let _ = std::fs::remove_dir_all(&scratch);

    println!(
        "bench action-start: install step to `mlops --version`, release asset {:.1} MB served on loopback, medians of {runs}",
        size as f64 / 1e6
    );
    println!("cold (empty tool cache)   {:>9.3} s", cold.as_secs_f64());
    println!(
        "  of which the download   {:>9.3} s",
        download.as_secs_f64()
    );
    println!(
        "cold without the download {:>9.3} s   goal < 2 s: {}",
        cold_net.as_secs_f64(),
        if cold_net < Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "warm (tool cache hit)     {:>9.3} s   goal < 0.3 s: {}",
        warm.as_secs_f64(),
        if warm < Duration::from_millis(300) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "fallback: cargo build of the checkout ({}) {:>9.1} s; ratio cold/fallback {:.4}, warm/fallback {:.5}",
        if clean {
            "clean target directory"
        } else {
            "this machine's warm target directory: a lower bound"
        },
        fallback.as_secs_f64(),
        cold.as_secs_f64() / fallback.as_secs_f64(),
        warm.as_secs_f64() / fallback.as_secs_f64()
    );
    Ok(())
}
