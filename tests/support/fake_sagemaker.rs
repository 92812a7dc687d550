//! The SageMaker fake (`sagemaker_fake.py`, botocore-validated) as a child process on a free
//! loopback port, killed when dropped. Needs the `tools` and `moto` support modules.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The SageMaker fake (botocore-validated) on a free port, playing `scenario`.
pub(crate) struct Fake {
    child: std::process::Child,
    port: u16,
}

impl Fake {
    pub(crate) fn start(scenario: &str) -> Option<Self> {
        Self::start_with(scenario, &[])
    }

    /// As [`Fake::start`], with `env` set for the fake (a transform's `FAKE_S3_ENDPOINT` and
    /// `FAKE_SERVE_URL`).
    pub(crate) fn start_with(scenario: &str, env: &[(&str, &str)]) -> Option<Self> {
        let python = crate::tools::tool("python")?;
        let port = crate::moto::free_port();
        let child = Command::new(python)
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/sagemaker_fake.py"),
            )
            .args([&port.to_string(), scenario])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("the fake starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the fake did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, port })
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The operations it was called with, and the requests botocore's model refused.
    pub(crate) fn calls(&self) -> (Vec<String>, Vec<String>) {
        let doc = self.state();
        let strings = |k: &str| {
            doc[k]
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        (strings("calls"), strings("violations"))
    }

    /// How many times the fake was called with `op`.
    pub(crate) fn count(&self, op: &str) -> usize {
        self.calls().0.iter().filter(|c| *c == op).count()
    }

    /// Waits until the fake has been called with `op` at least `n` times; fails the test after
    /// a minute.
    pub(crate) fn wait_for_calls(&self, op: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.calls().0.iter().filter(|c| *c == op).count() < n {
            assert!(
                Instant::now() < deadline,
                "{op} was not called {n} times: {:?}",
                self.calls()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tags `AddTags` put on each resource, by ARN.
    pub(crate) fn tags(&self) -> serde_json::Value {
        self.state()["tags"].clone()
    }

    /// Everything it holds: calls, violations, tags, models and transform jobs (each with its
    /// request).
    pub(crate) fn state(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.write_all(b"GET /_calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read");
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        serde_json::from_str(body).expect("json")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
