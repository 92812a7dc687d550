//! A moto server (the AWS emulator, installed by `cargo xtask tools`) on a free loopback port,
//! stopped when dropped; and the environment that points the AWS SDK at it with test
//! credentials and nothing from the developer's own AWS configuration.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Moto {
    child: Child,
    pub(crate) port: u16,
}

impl Moto {
    /// Starts `moto_server`; `None` (after saying why) when it is not installed and tools are
    /// optional.
    pub(crate) fn start() -> Option<Self> {
        let server = crate::tools::tool("moto_server")?;
        let port = free_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points `cmd`'s AWS SDK at this server.
    pub(crate) fn env(&self, cmd: &mut Command) {
        aws_env(cmd, &self.endpoint());
    }

    /// A request with a placeholder signature (moto reads the access key from it and does not
    /// check the signature; anonymous reads are refused); returns the status and the answer.
    pub(crate) fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        self.exchange(&format!("{method} {path}"), "", "s3", body)
    }

    /// An AWS JSON-protocol call (`target` as in `X-Amz-Target`) to `service` (the signing
    /// name: `ecr`, `sagemaker`); the status and the answer's JSON.
    pub(crate) fn json(&self, service: &str, target: &str, body: &str) -> (u16, serde_json::Value) {
        let headers =
            format!("X-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.1\r\n");
        let (status, answer) = self.exchange("POST /", &headers, service, body.as_bytes());
        let json = answer
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// An AWS query-protocol call (IAM, STS) to `service` with `params` (`Action`, `Version` and
    /// the operation's own); the status and the answer's XML.
    pub(crate) fn query(&self, service: &str, params: &[(&str, &str)]) -> (u16, String) {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, answer) = self.exchange(
            "POST /",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            service,
            body.as_bytes(),
        );
        let xml = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, xml.to_owned())
    }

    /// From now on every request is authenticated and authorised against IAM, as AWS does
    /// (`moto-api/reset-auth`): signed by a key moto issued, and allowed by that identity's
    /// policies. moto judges S3 requests by their bucket and key ARNs, and the other services'
    /// by action alone (it passes them the resource `*`).
    pub(crate) fn enforce_iam(&self) {
        let (status, answer) = self.exchange("POST /moto-api/reset-auth", "", "s3", b"0");
        assert_eq!(status, 200, "{answer}");
    }

    /// Sends `request` (method and path) with `headers` and a placeholder signature for
    /// `service`; the status and the whole answer.
    fn exchange(&self, request: &str, headers: &str, service: &str, body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let head = format!(
            "{request} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{headers}Content-Length: {}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let answer = String::from_utf8_lossy(&raw).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// Creates `bucket` and puts `body` at `key`.
    pub(crate) fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, answer) = self.http("PUT", &format!("/{bucket}"), b"");
        assert!(status == 200 || status == 409, "{answer}");
        let (status, answer) = self.http("PUT", &format!("/{bucket}/{key}"), body);
        assert_eq!(status, 200, "{answer}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK environment for a test: `endpoint`, fixed test credentials and region, no profile,
/// no instance metadata.
pub(crate) fn aws_env(cmd: &mut Command, endpoint: &str) {
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/mlops-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/mlops-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "2");
}

/// `s` as `application/x-www-form-urlencoded` writes it.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
