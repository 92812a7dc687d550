//! `mlops serve` as a child process on a free loopback port, found from the address it prints;
//! stopped with SIGTERM (and waited for) when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `mlops serve` on a free port; SIGTERM and wait on drop.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `mlops serve ARGS --port 0`.
    pub(crate) fn start(mut mlops: Command, args: &[&str]) -> Server {
        mlops.arg("serve").args(args).args(["--port", "0"]);
        Server::spawn(mlops)
    }

    /// `mlops serve --quiet --model MODEL --registry REGISTRY --port 0`.
    pub(crate) fn registered(registry: &std::path::Path, model: &str) -> Server {
        let registry = registry.to_string_lossy().into_owned();
        Server::start(
            crate::bin::mlops(),
            &["--quiet", "--model", model, "--registry", &registry],
        )
    }

    /// Any command that ends up serving and prints `on http://ADDR`.
    pub(crate) fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            // Logged before the address is handed over, so the log holds that line once
            // `spawn` returns.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(a) = line.split("on http://").nth(1) {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not start: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Server {
            child: Some(child),
            addr,
            log,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("waits");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// A server that is not ours (MLServer, `mlflow models serve`): started in a process group of
/// its own on a port chosen here, ready once `GET ready_path` answers 200, and stopped with its
/// whole group (SIGTERM, then SIGKILL) when dropped, so that no worker it forked outlives the
/// test.
pub(crate) struct Foreign {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: std::path::PathBuf,
}

/// A loopback port free at the moment of asking.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Foreign {
    /// Runs `command` (which should listen on `port`), its output in `log`.
    pub(crate) fn start(
        mut command: Command,
        port: u16,
        ready_path: &str,
        log: std::path::PathBuf,
    ) -> Foreign {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawns");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut server = Foreign { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited with {status}: {}", server.log());
            }
            let ready = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
                && crate::http::get(addr, ready_path).status == 200;
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within 120 s: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The group's other members (workers) too, whether or not the leader left.
        kill("-KILL");
        let _ = self.child.wait();
    }
}
