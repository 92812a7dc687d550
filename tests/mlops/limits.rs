//! `mlops serve` against hostile and broken clients: a head that never ends, a body that
//! trickles, more connections than the cap, a client that stops reading its answers. Each is
//! dropped or answered (408, 503) within its limit while `/ping` keeps answering.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::bin::mlops;
use crate::http;
use crate::server::Server;

fn serve(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let registry = crate::quickstart::trained(1);
    let reg = registry.path().to_string_lossy().into_owned();
    let mut args = vec![
        "--model",
        "digits-mlp@1",
        "--registry",
        reg.as_str(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(mlops(), &args);
    (registry, server)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// Reads until the service closes the connection: what it sent, or the error a read met (a
/// reset counts as closed; a read timeout means the service kept the connection open).
fn until_closed(mut s: TcpStream) -> Result<Vec<u8>, std::io::Error> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(got),
        Err(e) => Err(e),
    }
}

#[test]
fn connections_that_never_finish_their_head_are_closed_after_the_header_timeout() {
    let (_registry, server) = serve(&["--header-timeout", "1"]);
    let started = Instant::now();
    let stalled: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/c")
                .expect("writes half a head");
            s
        })
        .collect();
    // While they stall, the service answers others.
    assert_eq!(http::get(server.addr, "/ping").status, 200);
    for s in stalled {
        until_closed(s).expect("closed by the service, not left open until the read timeout");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    // A kept-alive connection that sends nothing more is closed the same way.
    let mut idle = connect(&server);
    idle.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("writes");
    let got = until_closed(idle).expect("closed after the answer and the timeout");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(http::get(server.addr, "/ping").status, 200);
}

#[test]
fn a_body_that_trickles_is_answered_408_after_the_request_timeout() {
    let (_registry, server) = serve(&["--request-timeout", "1"]);
    let mut s = connect(&server);
    s.write_all(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\npixel_0,",
    )
    .expect("writes the head");
    let started = Instant::now();
    let mut reader = BufReader::new(s.try_clone().expect("clones"));
    // A byte every 300 ms: never idle for long, never done.
    let trickle = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(300));
            if s.write_all(b"0").is_err() {
                break;
            }
        }
    });
    let r = http::read_response(&mut reader).expect("an answer");
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("--request-timeout"))
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    trickle.join().expect("joins");
    assert_eq!(http::get(server.addr, "/ping").status, 200);
}

#[test]
fn a_connection_over_the_cap_is_answered_503_and_the_cap_frees_up() {
    let (_registry, server) = serve(&["--max-connections", "3", "--header-timeout", "30"]);
    // Three idle connections hold every slot.
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = connect(&server);
    over.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("writes");
    let r = http::read_response(&mut BufReader::new(over)).expect("an answer");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("--max-connections"))
    );
    drop(held);
    // Closed connections give their slots back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = http::get(server.addr, "/ping").status;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the slots were freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = http::get(server.addr, "/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mlops_connections_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn a_client_that_stops_reading_its_answers_is_dropped_after_the_idle_timeout() {
    let (_registry, server) = serve(&["--idle-timeout", "1"]);
    // Many pipelined requests whose answers (about 1.5 KB each) far outgrow the socket buffers;
    // the client reads none of them.
    const REQUESTS: usize = 20_000;
    let s = connect(&server);
    let mut writer = s.try_clone().expect("clones");
    let sender = std::thread::spawn(move || {
        let one = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..REQUESTS {
            if writer.write_all(one).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    // The service has given up on the connection: what it wrote before is still buffered, and
    // then the connection ends well before every answer was sent.
    let got = until_closed(s).expect("closed by the service");
    let answers = got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(answers > 0 && answers < REQUESTS, "{answers} answers");
    sender.join().expect("joins");
    assert_eq!(http::get(server.addr, "/ping").status, 200);
}

#[test]
fn serve_help_names_every_limit() {
    let out = mlops().args(["serve", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--max-body-bytes",
        "--max-rows",
        "--header-timeout",
        "--request-timeout",
        "--idle-timeout",
        "--max-connections",
        "--prediction-threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
