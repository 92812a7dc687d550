//! Data capture (`mlops serve --capture`): each sampled answered request, its body as received
//! and its answer as sent ([`mlops_artifacts::capture::Record`]), written as JSON lines by a
//! thread of its own, off the request path.
//!
//! The request path only decides the sample, takes the two bodies (reference-counted, not
//! copied) and offers them to a bounded queue. The writer drains the queue in batches, writes
//! each batch with one call, and closes a file (renaming `NAME.jsonl.open` to `NAME.jsonl`) at
//! `rotate_bytes` or `rotate_seconds`, then hands it to the uploader when there is one (S3).
//! Nothing here can fail a prediction: a full queue, a failed write (a full disk) or a failed
//! upload is counted (`/metrics`: `mlops_capture_lost_total{reason}`) and the service goes on.
//! A failed write is cut back to the last whole line, so a file never holds half a line.
//!
//! Files are laid out by the hour they were opened, as SageMaker lays out its DataCapture:
//! `DIR/YYYY/MM/DD/HH/YYYYMMDDTHHMMSS.mmmZ-PID-SEQ.jsonl`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use mlops_artifacts::capture::{Payload, Route};
use time::OffsetDateTime;

/// Where a closed file goes next (an S3 upload); `Err` keeps it for the next attempt.
pub type Upload = Box<dyn FnMut(&Path) -> Result<(), String> + Send>;

/// What to capture and where.
pub struct Settings {
    pub dir: PathBuf,
    /// The share of requests captured, in percent.
    pub sample_percent: f64,
    pub rotate_bytes: u64,
    pub rotate_seconds: u64,
    /// Called with each closed file; on `Ok` the local file is removed.
    pub upload: Option<Upload>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("dir", &self.dir)
            .field("sample_percent", &self.sample_percent)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("rotate_seconds", &self.rotate_seconds)
            .field("upload", &self.upload.is_some())
            .finish()
    }
}

/// The most bytes of bodies waiting for the writer; a request over it is not captured (counted
/// as `queue_full`).
const QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// The most requests waiting for the writer.
const QUEUED: usize = 65_536;
/// Requests written with one call.
const BATCH: usize = 256;

/// One request to capture.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub at: SystemTime,
    pub route: Route,
    pub rows: u64,
    pub content_type: Option<String>,
    pub input: Bytes,
    pub answer_type: &'static str,
    pub output: Bytes,
}

enum Message {
    Entry(Entry),
    /// Close the open file and stop.
    Stop,
}

/// The capture counters `/metrics` shows.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests written to a capture file.
    pub written: AtomicU64,
    /// Requests not written: the queue was full.
    pub queue_full: AtomicU64,
    /// Requests not written: the write failed (a full disk, a read-only directory).
    pub write_failed: AtomicU64,
    /// Closed files the uploader refused (kept locally, tried again at the next close).
    pub upload_failed: AtomicU64,
    /// Files closed.
    pub files: AtomicU64,
}

impl Counters {
    /// Answered requests not captured (queue full or write failed).
    pub fn lost(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed) + self.write_failed.load(Ordering::Relaxed)
    }
}

/// The capture of a service: the queue's sending end, the sample and the counters.
#[derive(Debug)]
pub struct Capture {
    sender: SyncSender<Message>,
    /// Requests are captured when a random draw below `2^32` is under this.
    threshold: u64,
    queued_bytes: Arc<AtomicUsize>,
    pub counters: Arc<Counters>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Where the files are (for messages).
    pub dir: PathBuf,
}

impl Capture {
    /// Starts the writer thread. The directory is made (and checked writable) here, so that a
    /// wrong `--capture` fails at start, not silently later.
    pub fn start(mut settings: Settings, identity: &crate::Identity) -> Result<Self, String> {
        std::fs::create_dir_all(&settings.dir)
            .map_err(|e| format!("{}: {e}", settings.dir.display()))?;
        let probe = settings.dir.join(".mlops-write-check");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("{} is not writable: {e}", settings.dir.display()))?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUED);
        let counters = Arc::new(Counters::default());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let mut writer = Writer {
            dir: settings.dir.clone(),
            rotate_bytes: settings.rotate_bytes.max(1),
            rotate_after: Duration::from_secs(settings.rotate_seconds.max(1)),
            upload: settings.upload.take(),
            pending: Vec::new(),
            open: None,
            sequence: 0,
            model: identity.model.clone(),
            artifact: identity.artifact_sha256.clone(),
            counters: counters.clone(),
            queued_bytes: queued_bytes.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("mlops-capture".to_owned())
            .spawn(move || {
                // Predictions first: the writer runs at the lowest priority, so that a service
                // short of CPU answers its requests and sheds captures (counted as `queue_full`
                // once the queue's budget is spent) rather than the other way round. With CPU
                // to spare, the priority changes nothing. Where it cannot be lowered, the
                // writer runs as it is.
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                writer.run(&receiver)
            })
            .map_err(|e| format!("cannot start the capture thread: {e}"))?;
        let share = (settings.sample_percent / 100.0).clamp(0.0, 1.0);
        Ok(Self {
            sender,
            threshold: (share * f64::from(u32::MAX) + share).round() as u64,
            queued_bytes,
            counters,
            writer: Mutex::new(Some(thread)),
            dir: settings.dir,
        })
    }

    /// Whether this request is captured (a random draw against the sample share).
    pub fn sampled(&self) -> bool {
        u64::from(fastrand::u32(..)) < self.threshold
    }

    /// Offers one request to the writer; never blocks, never fails the caller.
    pub fn offer(&self, entry: Entry) {
        let size = entry.input.len() + entry.output.len();
        if self.queued_bytes.fetch_add(size, Ordering::Relaxed) + size > QUEUED_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.sender.try_send(Message::Entry(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes what is queued, closes the open file (and uploads it), and stops the writer:
    /// at the service's graceful stop.
    pub fn finish(&self) {
        let Some(thread) = self.writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        // A blocking send: the writer is draining, so there is room soon.
        let _ = self.sender.send(Message::Stop);
        let _ = thread.join();
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let c = &self.counters;
        let _ = writeln!(
            out,
            "# HELP mlops_capture_requests_total Requests written to capture files.\n# TYPE mlops_capture_requests_total counter\nmlops_capture_requests_total {}",
            c.written.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mlops_capture_lost_total Requests answered but not captured, by reason.\n# TYPE mlops_capture_lost_total counter\nmlops_capture_lost_total{{reason=\"queue_full\"}} {}\nmlops_capture_lost_total{{reason=\"write_failed\"}} {}",
            c.queue_full.load(Ordering::Relaxed),
            c.write_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mlops_capture_files_total Capture files closed.\n# TYPE mlops_capture_files_total counter\nmlops_capture_files_total {}\n# HELP mlops_capture_upload_failures_total Closed capture files whose upload failed (kept, retried).\n# TYPE mlops_capture_upload_failures_total counter\nmlops_capture_upload_failures_total {}",
            c.files.load(Ordering::Relaxed),
            c.upload_failed.load(Ordering::Relaxed)
        );
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The open capture file.
struct Open {
    file: std::fs::File,
    path: PathBuf,
    /// Bytes of whole lines written.
    length: u64,
    opened: Instant,
}

struct Writer {
    dir: PathBuf,
    rotate_bytes: u64,
    rotate_after: Duration,
    upload: Option<Upload>,
    /// Closed files the uploader has not taken yet.
    pending: Vec<PathBuf>,
    open: Option<Open>,
    sequence: u64,
    model: Option<String>,
    artifact: String,
    counters: Arc<Counters>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Writer {
    fn run(&mut self, receiver: &Receiver<Message>) {
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            // Wake up at least once a second to close a file that has grown old.
            let first = receiver.recv_timeout(Duration::from_secs(1));
            let mut stop = false;
            match first {
                Ok(Message::Entry(e)) => batch.push(e),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !stop && batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(Message::Entry(e)) => batch.push(e),
                    Ok(Message::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(&mut batch, &mut buffer);
            }
            let old = self
                .open
                .as_ref()
                .is_some_and(|o| o.opened.elapsed() >= self.rotate_after);
            if stop || old {
                self.close();
            }
            if stop {
                return;
            }
        }
    }

    /// Writes `batch` as lines to the open file (one is opened when none is).
    /// Writes `batch` as lines: into the open file (one is opened when none is) until it
    /// reaches `rotate_bytes`, then into the next, so that a file passes the limit by one line
    /// at most, however many lines a batch holds.
    fn write(&mut self, batch: &mut Vec<Entry>, buffer: &mut Vec<u8>) {
        buffer.clear();
        // Where each line ends in `buffer`.
        let mut ends: Vec<usize> = Vec::with_capacity(batch.len());
        let mut bytes = 0usize;
        for entry in batch.drain(..) {
            bytes += entry.input.len() + entry.output.len();
            line(buffer, &entry, self.model.as_deref(), &self.artifact);
            ends.push(buffer.len());
        }
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let (mut from, mut next) = (0usize, 0usize);
        while next < ends.len() {
            let left = (ends.len() - next) as u64;
            if self.open.is_none()
                && let Err(e) = self.open_file()
            {
                self.failed(left, &e);
                return;
            }
            let Some(open) = self.open.as_mut() else {
                return;
            };
            // Lines up to the one that takes the file to the limit (at least one).
            let room = self.rotate_bytes.saturating_sub(open.length);
            let mut upto = next;
            for end in ends.iter().skip(next) {
                upto += 1;
                if (end - from) as u64 >= room {
                    break;
                }
            }
            let to = ends.get(upto - 1).copied().unwrap_or(from);
            let lines = (upto - next) as u64;
            match open
                .file
                .write_all(buffer.get(from..to).unwrap_or_default())
            {
                Ok(()) => {
                    open.length += (to - from) as u64;
                    self.counters.written.fetch_add(lines, Ordering::Relaxed);
                    if open.length >= self.rotate_bytes {
                        self.close();
                    }
                }
                Err(e) => {
                    // Cut the file back to its last whole line; what did not fit is lost,
                    // counted (appending, the next write goes to the new end).
                    let _ = open.file.set_len(open.length);
                    let path = open.path.display().to_string();
                    self.failed(lines, &format!("{path}: {e}"));
                }
            }
            (from, next) = (to, upto);
        }
    }

    fn failed(&self, entries: u64, why: &str) {
        let before = self
            .counters
            .write_failed
            .fetch_add(entries, Ordering::Relaxed);
        // Said once per thousand lost requests, not once per request.
        if before / 1000 != (before + entries) / 1000 || before == 0 {
            eprintln!(
                "warning: capture: {entries} requests not written ({why}); predictions go on"
            );
        }
    }

    fn open_file(&mut self) -> Result<(), String> {
        let now = OffsetDateTime::now_utc();
        let hour = self.dir.join(format!(
            "{:04}/{:02}/{:02}/{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour()
        ));
        std::fs::create_dir_all(&hour).map_err(|e| format!("{}: {e}", hour.display()))?;
        self.sequence += 1;
        let name = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}-{:06}.jsonl.open",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            std::process::id(),
            self.sequence
        );
        let path = hour.join(name);
        // Appending: after a failed write is cut back (`set_len`), the next write goes to the
        // new end, not to the old offset (which would leave a hole of zero bytes).
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.open = Some(Open {
            file,
            path,
            length: 0,
            opened: Instant::now(),
        });
        Ok(())
    }

    /// Closes the open file: synced, renamed to `.jsonl`, handed to the uploader (with any
    /// earlier file it refused). An empty file is removed.
    fn close(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.length == 0 {
            drop(open.file);
            let _ = std::fs::remove_file(&open.path);
            return;
        }
        let _ = open.file.sync_data();
        drop(open.file);
        let done = open.path.with_extension("");
        if let Err(e) = std::fs::rename(&open.path, &done) {
            eprintln!(
                "warning: capture: cannot close {}: {e}",
                open.path.display()
            );
            return;
        }
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        let Some(upload) = self.upload.as_mut() else {
            return;
        };
        self.pending.push(done);
        let mut kept = Vec::new();
        for path in std::mem::take(&mut self.pending) {
            match upload(&path) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    self.counters.upload_failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "warning: capture: {} not uploaded ({e}); kept, tried again at the next file",
                        path.display()
                    );
                    kept.push(path);
                }
            }
        }
        self.pending = kept;
    }
}

/// One capture line, as serde writes [`Record`] (the same bytes; a unit test compares them),
/// written straight from the request's buffers: the bodies are escaped in bulk between the few
/// bytes JSON escapes, not copied into a record first.
fn line(out: &mut Vec<u8>, e: &Entry, model: Option<&str>, artifact: &str) {
    out.extend_from_slice(b"{\"id\":");
    short(out, &e.id);
    out.extend_from_slice(b",\"time\":");
    short(out, &timestamp(e.at));
    if let Some(m) = model {
        out.extend_from_slice(b",\"model\":");
        short(out, m);
    }
    out.extend_from_slice(b",\"artifact\":");
    short(out, artifact);
    out.extend_from_slice(match e.route {
        Route::Invocations => b",\"route\":\"invocations\",\"rows\":",
        Route::V2 => b",\"route\":\"v2\",\"rows\":",
    });
    out.extend_from_slice(e.rows.to_string().as_bytes());
    out.extend_from_slice(b",\"input\":");
    payload(out, e.content_type.as_deref(), &e.input);
    out.extend_from_slice(b",\"output\":");
    payload(out, Some(e.answer_type), &e.output);
    out.extend_from_slice(b"}\n");
}

/// A short string (an id, a time, a name) as serde writes it.
fn short(out: &mut Vec<u8>, s: &str) {
    // Writing to memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A body: its text escaped in bulk, or (not UTF-8) base64 as [`Payload::of`] writes it.
fn payload(out: &mut Vec<u8>, content_type: Option<&str>, body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        let _ = serde_json::to_writer(&mut *out, &Payload::of(content_type, body));
        return;
    };
    out.push(b'{');
    if let Some(ct) = content_type {
        out.extend_from_slice(b"\"content_type\":");
        short(out, ct);
        out.push(b',');
    }
    out.extend_from_slice(b"\"encoding\":\"text\",\"data\":");
    // Bodies hold newlines, maybe quotes and backslashes; any other control byte (rare) takes
    // serde's byte-by-byte way.
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        short(out, text);
    } else {
        let bytes = text.as_bytes();
        out.push(b'"');
        let mut from = 0;
        for at in memchr::memchr3_iter(b'\n', b'"', b'\\', bytes) {
            out.extend_from_slice(bytes.get(from..at).unwrap_or_default());
            out.extend_from_slice(match bytes.get(at) {
                Some(b'\n') => b"\\n",
                Some(b'"') => b"\\\"",
                _ => b"\\\\",
            });
            from = at + 1;
        }
        out.extend_from_slice(bytes.get(from..).unwrap_or_default());
        out.push(b'"');
    }
    out.push(b'}');
}

/// RFC 3339, UTC, milliseconds.
pub fn timestamp(at: SystemTime) -> String {
    let t = OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// An inference id for a request that brought none: 128 random bits in hex.
pub fn new_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_artifacts::capture::{Line, Record};

    fn identity() -> crate::Identity {
        crate::Identity {
            model: Some("m@1".into()),
            artifact_sha256: "ab".repeat(32),
            ..crate::Identity::default()
        }
    }

    fn entry(i: usize) -> Entry {
        Entry {
            id: format!("id-{i}"),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_930_000_123),
            route: Route::Invocations,
            rows: 1,
            content_type: Some("text/csv".into()),
            input: Bytes::from(format!("{i},2\n")),
            answer_type: "text/csv",
            output: Bytes::from_static(b"1\n"),
        }
    }

    fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_owned()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).expect("dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.to_string_lossy().ends_with(suffix) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn lines_are_written_rotated_by_size_and_closed_at_the_end() {
        let dir = tempfile::tempdir().expect("dir");
        let capture = Capture::start(
            Settings {
                dir: dir.path().to_owned(),
                sample_percent: 100.0,
                rotate_bytes: 2000,
                rotate_seconds: 3600,
                upload: None,
            },
            &identity(),
        )
        .expect("starts");
        assert!(capture.sampled());
        for i in 0..100 {
            capture.offer(entry(i));
        }
        capture.finish();
        assert!(files(dir.path(), ".open").is_empty(), "every file closed");
        let closed = files(dir.path(), ".jsonl");
        assert!(closed.len() > 1, "rotated by size: {closed:?}");
        // Whatever the batches were, a file passes the limit by less than one line.
        let sizes: Vec<u64> = closed
            .iter()
            .map(|f| std::fs::metadata(f).expect("size").len())
            .collect();
        let longest = std::fs::read_to_string(&closed[0])
            .expect("reads")
            .lines()
            .map(|l| l.len() as u64 + 1)
            .max()
            .expect("a line");
        for size in &sizes[..sizes.len() - 1] {
            assert!((2000..2000 + longest).contains(size), "{sizes:?}");
        }
        let mut ids = Vec::new();
        for f in &closed {
            for line in std::fs::read_to_string(f).expect("reads").lines() {
                let l = Line::parse(line).expect("a capture line");
                assert_eq!(l.time, "2025-12-05T10:20:00.123Z");
                assert_eq!(l.model.as_deref(), Some("m@1"));
                ids.push(l.id);
            }
        }
        assert_eq!(ids.len(), 100);
        assert_eq!(ids.first().map(String::as_str), Some("id-0"), "in order");
        assert_eq!(capture.counters.written.load(Ordering::Relaxed), 100);
        let mut metrics = String::new();
        capture.render(&mut metrics);
        assert!(
            metrics.contains("mlops_capture_requests_total 100"),
            "{metrics}"
        );
        assert!(
            metrics.contains("mlops_capture_lost_total{reason=\"write_failed\"} 0"),
            "{metrics}"
        );
    }

    #[test]
    fn a_file_is_closed_when_it_is_old_and_uploads_are_retried() {
        let dir = tempfile::tempdir().expect("dir");
        let attempts = Arc::new(AtomicU64::new(0));
        let seen = attempts.clone();
        let capture = Capture::start(
            Settings {
                dir: dir.path().to_owned(),
                sample_percent: 100.0,
                rotate_bytes: 1 << 30,
                rotate_seconds: 1,
                // The first attempt fails; later ones succeed.
                upload: Some(Box::new(move |_: &Path| {
                    if seen.fetch_add(1, Ordering::Relaxed) == 0 {
                        Err("unreachable".to_owned())
                    } else {
                        Ok(())
                    }
                })),
            },
            &identity(),
        )
        .expect("starts");
        capture.offer(entry(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while capture.counters.files.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            capture.counters.files.load(Ordering::Relaxed),
            1,
            "closed by age"
        );
        assert_eq!(
            files(dir.path(), ".jsonl").len(),
            1,
            "kept after the failed upload"
        );
        capture.offer(entry(2));
        capture.finish();
        assert_eq!(capture.counters.upload_failed.load(Ordering::Relaxed), 1);
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            3,
            "the kept file was tried again"
        );
        assert!(
            files(dir.path(), ".jsonl").is_empty(),
            "uploaded files are removed"
        );
    }

    #[test]
    fn lines_are_what_serde_writes_for_every_kind_of_body() {
        let bodies: [&[u8]; 7] = [
            b"1,2\n3,4\n",
            b"{\"instances\": [[1, \"a \\\" b\"]]}",
            b"x\r\ny\tz\n",
            b"caf\xc3\xa9 \xe2\x82\xac,\\,\"\"\n",
            b"\x01\x1f",
            b"",
            b"\xff\xfe not utf-8",
        ];
        for (i, body) in bodies.iter().enumerate() {
            for (model, route) in [(Some("m@1"), Route::Invocations), (None, Route::V2)] {
                let e = Entry {
                    id: format!("id \"{i}\""),
                    at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_930_000_123),
                    route,
                    rows: 3,
                    content_type: (i % 2 == 0).then(|| "text/csv".to_owned()),
                    input: Bytes::copy_from_slice(body),
                    answer_type: "application/json",
                    output: Bytes::copy_from_slice(body),
                };
                let mut ours = Vec::new();
                line(&mut ours, &e, model, "ab");
                let record = Record {
                    id: e.id.clone(),
                    time: timestamp(e.at),
                    model: model.map(str::to_owned),
                    artifact: "ab".into(),
                    route,
                    rows: 3,
                    input: Payload::of(e.content_type.as_deref(), body),
                    output: Payload::of(Some(e.answer_type), body),
                };
                let mut theirs = serde_json::to_vec(&record).expect("json");
                theirs.push(b'\n');
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs),
                    "body {i}"
                );
                let back = Line::parse_bytes(ours.trim_ascii_end()).expect("reads back");
                assert_eq!(back.input.1, *body);
            }
        }
    }

    /// The writer thread runs at nice 19; the threads answering requests keep their priority.
    #[test]
    fn the_writer_yields_the_cpu_to_predictions() {
        let nice = |task: &Path| -> Option<i64> {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            let (_, fields) = stat.rsplit_once(')')?;
            fields.split_whitespace().nth(16)?.parse().ok()
        };
        let mine = nice(Path::new("/proc/thread-self")).expect("this thread's nice");
        let dir = tempfile::tempdir().expect("dir");
        let capture = Capture::start(
            Settings {
                dir: dir.path().to_owned(),
                sample_percent: 100.0,
                rotate_bytes: 1 << 20,
                rotate_seconds: 60,
                upload: None,
            },
            &identity(),
        )
        .expect("starts");
        let writer = || {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .flatten()
                .map(|t| t.path())
                .find(|t| {
                    std::fs::read_to_string(t.join("comm"))
                        .is_ok_and(|c| c.trim() == "mlops-capture")
                })
        };
        // The thread lowers its own priority as it starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let writer_nice = loop {
            let found = writer().and_then(|t| nice(&t));
            if found == Some(19) || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(writer_nice, Some(19));
        assert_eq!(nice(Path::new("/proc/thread-self")), Some(mine));
        capture.finish();
    }

    #[test]
    fn the_sample_share_is_respected() {
        let dir = tempfile::tempdir().expect("dir");
        let start = |percent: f64| {
            Capture::start(
                Settings {
                    dir: dir.path().to_owned(),
                    sample_percent: percent,
                    rotate_bytes: 1 << 20,
                    rotate_seconds: 60,
                    upload: None,
                },
                &identity(),
            )
            .expect("starts")
        };
        let none = start(0.0);
        assert!((0..10_000).all(|_| !none.sampled()));
        let all = start(100.0);
        assert!((0..10_000).all(|_| all.sampled()));
        let some = start(10.0);
        let n = (0..100_000).filter(|_| some.sampled()).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        let unwritable = Capture::start(
            Settings {
                dir: PathBuf::from("/proc/mlops-capture"),
                sample_percent: 100.0,
                rotate_bytes: 1,
                rotate_seconds: 1,
                upload: None,
            },
            &identity(),
        );
        assert!(unwritable.is_err());
    }
}
