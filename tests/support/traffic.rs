//! Prediction traffic for a service under watch: threads posting CSV batches of the quickstart's
//! 64 features to `/invocations` until dropped, counting what they got back.

#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A CSV request of `rows` rows of the quickstart's 64 features.
pub(crate) fn body(rows: usize) -> Vec<u8> {
    let header: Vec<String> = (0..64).map(|i| format!("pixel_{i}")).collect();
    let mut text = header.join(",") + "\n";
    for r in 0..rows {
        let row: Vec<String> = (0..64).map(|c| ((r + c) % 17).to_string()).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text.into_bytes()
}

/// One request, its status (0 when the connection failed).
pub(crate) fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = BufReader::new(stream).read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `clients` threads posting `body` in a loop (pausing `pause` between requests) once `go` is
/// set, until `stop` is; the statuses they saw, counted.
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

impl Traffic {
    pub(crate) fn start(
        addr: SocketAddr,
        clients: usize,
        body: Vec<u8>,
        pause: Duration,
        go: Arc<AtomicBool>,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let body = Arc::new(body);
        let threads = (0..clients)
            .map(|_| {
                let (stop, go, body, ok, failed) = (
                    stop.clone(),
                    go.clone(),
                    body.clone(),
                    ok.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        if !go.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        match post(addr, &body) {
                            200 => ok.fetch_add(1, Ordering::SeqCst),
                            _ => failed.fetch_add(1, Ordering::SeqCst),
                        };
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            threads,
            ok,
            failed,
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
