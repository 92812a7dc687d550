//! A minimal HTTP/1.1 client over `std::net` (one request per connection) and a tampering
//! proxy: enough to talk to `mlops serve` from tests and to stand a misbehaving service in
//! front of it, with no HTTP library of the code under test involved.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.text()))
    }
}

/// The first line, the headers (lower-case names) and the body of a message.
type Message = (String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP message head and its `Content-Length` body from `reader`. Without a length, a
/// request has no body and a response runs to the end of the connection.
fn read_message(reader: &mut impl BufRead, request: bool) -> std::io::Result<Message> {
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None if request => {}
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok((first.trim_end().to_owned(), headers, body))
}

/// Reads one response from `reader`, which the caller wrote its request to.
pub(crate) fn read_response(reader: &mut impl BufRead) -> std::io::Result<Response> {
    let (status_line, headers, body) = read_message(reader, false)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Sends one request and reads the answer.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    request_with(addr, method, path, &headers, body)
}

/// Sends one request with these headers and reads the answer.
pub(crate) fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("writes");
    stream.write_all(body).expect("writes");
    let mut reader = BufReader::new(stream);
    let (status_line, headers, body) = read_message(&mut reader, false).expect("reads");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    Response {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None, b"")
}

/// `POST /invocations` of `body` as `text/csv`.
#[allow(dead_code)]
pub(crate) fn post_csv(addr: SocketAddr, body: &str) -> Response {
    request(
        addr,
        "POST",
        "/invocations",
        Some("text/csv"),
        body.as_bytes(),
    )
}

pub(crate) fn post_json(addr: SocketAddr, body: &str) -> Response {
    request(
        addr,
        "POST",
        "/invocations",
        Some("application/json"),
        body.as_bytes(),
    )
}

/// What the proxy does with one upstream answer: `(n, path, status, body)` in, the status and
/// body to send back out. `n` counts requests from 0.
pub(crate) type Tamper = dyn Fn(u64, &str, u16, Vec<u8>) -> (u16, Vec<u8>) + Send + Sync;

/// A proxy in front of `upstream` that passes every request on and lets `tamper` change the
/// answer. Stops (and joins its thread) on drop.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(crate) requests: Arc<AtomicU64>,
}

impl Proxy {
    pub(crate) fn start(upstream: SocketAddr, tamper: Box<Tamper>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => break,
                };
                let _ = stream.set_nonblocking(false);
                let n = r.fetch_add(1, Ordering::Relaxed);
                let _ = serve_one(stream, upstream, n, tamper.as_ref());
            }
        });
        Proxy {
            addr,
            stop,
            thread: Some(thread),
            requests,
        }
    }
}

fn serve_one(
    stream: TcpStream,
    upstream: SocketAddr,
    n: u64,
    tamper: &Tamper,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let (line, headers, body) = read_message(&mut reader, true)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("GET"), parts.next().unwrap_or("/"));
    // The media types pass through both ways.
    let passed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| n == "content-type" || n == "accept")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let answer = request_with(upstream, method, path, &passed, &body);
    let media = answer
        .header("content-type")
        .unwrap_or("application/json")
        .to_owned();
    let (status, body) = tamper(n, path, answer.status, answer.body);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {media}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(&body)?;
    out.flush()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
