//! A recording HTTP proxy in front of an AWS JSON-protocol endpoint (moto): every request is
//! forwarded unchanged and its operation (`X-Amz-Target`) is recorded, so a test can count the
//! calls a process made, e.g. that a re-run made no `CreateTrainingJob`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Proxy {
    pub(crate) port: u16,
    calls: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub(crate) fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (calls.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let c = c.clone();
                std::thread::spawn(move || serve(conn, upstream, &c));
            }
        });
        Self {
            port,
            calls,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many calls of `operation` (e.g. `CreateTrainingJob`) went through.
    pub(crate) fn count(&self, operation: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.rsplit('.').next() == Some(operation))
            .count()
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Relays one request (the answer closes the connection, as moto's does with ours).
fn serve(client: TcpStream, upstream: u16, calls: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut client = client;
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut target = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("x-amz-target:") {
            target = line["x-amz-target:".len()..].trim().to_owned();
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    calls.lock().expect("lock").push(target);
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up
        .write_all(&head)
        .and_then(|()| up.write_all(&body))
        .is_err()
    {
        return;
    }
    let mut answer = Vec::new();
    if up.read_to_end(&mut answer).is_ok() {
        let _ = client.write_all(&answer);
    }
    let _ = client.shutdown(Shutdown::Both);
}
