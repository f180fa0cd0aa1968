//! `GET /v1/events` over a real socket: the bridge serves in this process
//! (`opsgate::bridge::serve` on 127.0.0.1:0), another handle on the same
//! log appends records as another process would, and the client is a few
//! lines over `TcpStream` that reads the chunked stream as it comes.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use opsgate::app::App;
use opsgate::audit::{AuditLog, Channel, Event, Sealer};
use opsgate::core::policy::LoadedPolicy;

const TOKEN: &str = "tok-events-1";

/// A bridge serving in this process over a log in a temp dir.
struct Served {
    _dir: tempfile::TempDir,
    log: PathBuf,
    policy: LoadedPolicy,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves a bridge whose `bridge:` section also holds `extra` (indented
/// lines).
fn serve(extra: &str) -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "bridge:\n  rate_limit: {{per_sender: 100000/min, per_client: 1000000/min}}\n  clients:\n    - name: bot\n      token_sha256: \"{}\"\n      senders: {{U1: alice}}\n{extra}",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    );
    let policy = LoadedPolicy::load(Some(("policy.yaml", &text))).expect("policy loads");
    let log = dir.path().join("audit.jsonl");
    let handle = AuditLog::open(&log, Sealer::Sha256, Default::default()).expect("log");
    let app = App::long_lived(policy.clone(), handle, Sealer::Sha256);
    let bridge = Arc::new(opsgate::bridge::Bridge::new(app).expect("bridge"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("address"))
                .expect("the test waits");
            opsgate::bridge::serve(listener, bridge, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the bridge listens");
    Served {
        _dir: dir,
        log,
        policy,
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Served {
    /// Appends `n` records (refusals, of plans `p0`..`p2` in turn) through
    /// a handle of its own, as another process would, `batch` at a time.
    fn append(&self, n: usize, batch: usize) {
        let log = AuditLog::open(&self.log, Sealer::Sha256, Default::default()).expect("log");
        let mut left = n;
        let mut i = 0;
        while left > 0 {
            let take = left.min(batch);
            let events = (0..take)
                .map(|_| {
                    i += 1;
                    Event::Refused {
                        attempt: "run".into(),
                        plan_id: Some(format!("p{}", i % 3)),
                        run_id: None,
                        user: "mallory".into(),
                        channel: Channel::Cli,
                        code: "not_approved".into(),
                        reason: format!("test refusal {i}"),
                        plan_hash: None,
                        policy_hash: self.policy.hash.clone(),
                        metadata: Default::default(),
                    }
                })
                .collect();
            log.append_all(events).expect("appended");
            left -= take;
        }
    }

    /// The log's lines by seq.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .expect("the log reads")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn metric(&self, name: &str) -> f64 {
        let r = common::http::http(self.addr, "GET", "/metrics", &[], b"").expect("metrics");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics: {}", r.text()))
    }

    /// Opens a stream at `path` (query included), with these headers.
    fn stream(&self, path: &str, headers: &[(&str, String)], rcvbuf: Option<u32>) -> Stream {
        let s = match rcvbuf {
            None => TcpStream::connect(self.addr).expect("connects"),
            Some(size) => small_buffer_connect(self.addr, size),
        };
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        (&s).write_all(req.as_bytes()).expect("request sent");
        Stream {
            r: BufReader::new(s),
            text: String::new(),
            status: None,
            ended: false,
        }
    }
}

/// A connection whose receive buffer is `size` bytes (set before the
/// handshake, so the window stays small): a client that stops reading
/// stops the server's writes soon.
fn small_buffer_connect(addr: SocketAddr, size: u32) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        let s = socket.connect(addr).await.expect("connects");
        let s = s.into_std().expect("std stream");
        s.set_nonblocking(false).expect("blocking");
        s
    })
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
struct Sse {
    id: Option<u64>,
    event: String,
    data: String,
    /// A comment line (`: heartbeat`).
    comment: bool,
}

/// The client side of one stream: an HTTP/1.1 chunked body read as it
/// comes, split into events.
struct Stream {
    r: BufReader<TcpStream>,
    text: String,
    status: Option<u16>,
    ended: bool,
}

impl Stream {
    fn status(&mut self) -> u16 {
        if let Some(s) = self.status {
            return s;
        }
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).expect("header");
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        self.status = Some(status);
        status
    }

    /// The next event, or `None` at the end of the stream.
    fn next(&mut self) -> Option<Sse> {
        assert_eq!(self.status(), 200, "the stream opens");
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut ev = Sse::default();
                for line in block.lines() {
                    if line.starts_with(':') {
                        ev.comment = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.parse().expect("a numeric id"));
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        v.clone_into(&mut ev.event);
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                    }
                }
                return Some(ev);
            }
            if self.ended || !self.chunk() {
                return None;
            }
        }
    }

    /// The next record event (skipping heartbeats, for 20 s at most).
    fn record(&mut self) -> Option<Sse> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ev = self.next()?;
            if !ev.comment {
                return Some(ev);
            }
            assert!(
                Instant::now() < deadline,
                "no record for 20 s, only heartbeats"
            );
        }
    }

    /// Reads one chunk into `text`; false at the end.
    fn chunk(&mut self) -> bool {
        let mut size = String::new();
        match self.r.read_line(&mut size) {
            Ok(0) | Err(_) => {
                self.ended = true;
                return false;
            }
            Ok(_) => {}
        }
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        if n == 0 {
            self.ended = true;
            return false;
        }
        let mut buf = vec![0; n + 2];
        if self.r.read_exact(&mut buf).is_err() {
            self.ended = true;
            return false;
        }
        self.text
            .push_str(std::str::from_utf8(&buf[..n]).expect("UTF-8 events"));
        true
    }
}

fn seq_of(line: &str) -> u64 {
    let v: Value = serde_json::from_str(line).expect("a record");
    v["seq"].as_u64().expect("a seq")
}

#[test]
fn a_stream_resumes_after_a_disconnect_with_every_record_once() {
    let s = serve("");
    s.append(40, 10);
    // From the start of the log: the backlog, then what comes live.
    let mut first = s.stream("/v1/events?after_seq=0", &[], None);
    let mut seen = Vec::new();
    for _ in 0..25 {
        let ev = first.record().expect("an event");
        seen.push(ev);
    }
    drop(first); // mid-stream
    s.append(30, 7);
    let last = seen.last().and_then(|e| e.id).expect("events carry ids");
    let mut second = s.stream(
        "/v1/events?after_seq=0",
        &[("Last-Event-ID", last.to_string())],
        None,
    );
    // The rest of the backlog, then records appended while it streams.
    let writer = std::thread::scope(|scope| {
        let w = scope.spawn(|| s.append(35, 5));
        while seen.len() < 105 {
            let ev = second.record().expect("an event");
            seen.push(ev);
        }
        w.join()
    });
    writer.expect("the writer finished");
    let lines = s.lines();
    assert_eq!(lines.len(), 105);
    for (ev, line) in seen.iter().zip(&lines) {
        assert_eq!(ev.id, Some(seq_of(line)), "in order, once each");
        assert_eq!(ev.event, "refused");
        assert_eq!(ev.data, *line, "the record as recorded");
    }
    assert_eq!(s.metric("opsgate_bridge_sse_clients"), 1.0);
    drop(second);
}

#[test]
fn filters_heartbeats_and_where_a_stream_starts() {
    let s = serve("  events: {heartbeat: 200ms}\n");
    s.append(9, 9);
    // By type and plan: p2 is every third record.
    let mut p2 = s.stream(
        "/v1/events?after_seq=0&type=refused,run_started&plan=p2",
        &[],
        None,
    );
    let got: Vec<u64> = (0..3)
        .map(|_| p2.record().expect("an event").id.expect("an id"))
        .collect();
    assert_eq!(got, [2, 5, 8]);
    // No position: from the head on; the first thing on an idle stream
    // is a heartbeat.
    let mut live = s.stream("/v1/events", &[], None);
    let ev = live.next().expect("a heartbeat");
    assert!(ev.comment, "{ev:?}");
    s.append(1, 1);
    let ev = live.record().expect("the new record");
    assert_eq!(ev.id, Some(10));
    // A type that matches nothing sends nothing but heartbeats.
    let mut none = s.stream("/v1/events?after_seq=0&type=run_finished", &[], None);
    assert!(none.next().expect("a heartbeat").comment);
    // Bad positions and unknown parameters are refused.
    for (path, headers) in [
        ("/v1/events", vec![("Last-Event-ID", "x".to_owned())]),
        ("/v1/events?after_seq=11", vec![]),
        ("/v1/events?colour=red", vec![]),
    ] {
        let mut bad = s.stream(path, &headers, None);
        assert_eq!(bad.status(), 400, "{path} {headers:?}");
    }
    // And no token, no stream.
    let r = common::http::http(s.addr, "GET", "/v1/events", &[], b"").expect("answered");
    assert_eq!(r.status, 401);
}

#[test]
fn a_burst_is_caught_up_from_the_file_but_a_reader_slower_than_the_log_is_cut_off() {
    let s = serve("  events: {buffer: 16}\n");
    s.append(1, 1);
    // A burst far over the buffer, while the client reads nothing: it
    // catches up from the file, every record once, and is not cut off.
    let mut paused = s.stream("/v1/events", &[], Some(4096));
    assert_eq!(paused.status(), 200);
    s.append(3000, 300);
    std::thread::sleep(Duration::from_millis(300));
    for want in 2..=3001 {
        let ev = paused.record().expect("an event");
        assert_eq!(ev.id, Some(want), "{ev:?}");
    }
    drop(paused);
    // A reader that stays slower than the log: cut off, told where to
    // resume, and the writer never waits for it.
    let mut slow = s.stream("/v1/events", &[], Some(4096));
    assert_eq!(slow.status(), 200);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ids, cut, appended) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut n = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            // About 2,000 records a second; the reader takes 500.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                s.append(20, 20);
                n += 20;
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        });
        let mut ids = Vec::new();
        let cut = loop {
            let ev = slow.record().expect("the stream ends with a cut_off event");
            if ev.event == "cut_off" {
                break ev;
            }
            ids.push(ev.id.expect("an id"));
            std::thread::sleep(Duration::from_millis(2));
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (ids, cut, writer.join().expect("the writer ends"))
    });
    assert!(slow.next().is_none(), "nothing after cut_off");
    let cut: Value = serde_json::from_str(&cut.data).expect("JSON");
    let resume = cut["resume_after"].as_u64().expect("resume_after");
    assert_eq!(
        resume,
        ids.last().copied().unwrap_or(3001),
        "resume after the last record sent"
    );
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost before the cut"
    );
    let head = 3001 + appended;
    assert!(resume < head, "cut off before the end: {resume} of {head}");
    // Resuming from there gets the rest, once.
    let mut again = s.stream("/v1/events", &[("Last-Event-ID", resume.to_string())], None);
    let mut next = resume;
    while next < head {
        let ev = again.record().expect("an event");
        assert_eq!(ev.id, Some(next + 1));
        next += 1;
    }
    // The paused stream's server side may be cut off too before it
    // notices its client left.
    assert!(s.metric("opsgate_bridge_sse_cut_off_total") >= 1.0);
}

#[test]
fn a_client_that_reads_nothing_is_closed_after_the_write_timeout() {
    let s = serve("  write_timeout: 1s\n  events: {buffer: 16}\n");
    s.append(1, 1);
    let mut stalled = s.stream("/v1/events", &[], Some(4096));
    assert_eq!(stalled.status(), 200);
    // Far more than the socket's buffers and hyper's hold (about 8 MB).
    s.append(20000, 500);
    // Without reading a byte more, the client is let go: the server's
    // count of streams falls to zero.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.metric("opsgate_bridge_sse_clients") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "a client that reads nothing is still served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What it reads now ends: the connection is closed.
    let mut n = 0;
    while stalled.next().is_some() {
        n += 1;
    }
    assert!(
        n < 20001,
        "the stream ended before the log's end ({n} events)"
    );
}

#[test]
fn a_record_half_written_when_the_stream_reads_the_backlog_is_sent_whole() {
    let s = serve("");
    s.append(5, 5);
    // Record 5 as a writer is half way through writing it: the stream's
    // backlog ends in the middle of a line.
    let text = std::fs::read(&s.log).expect("the log reads");
    let cut = text.len() - 100;
    std::fs::write(&s.log, &text[..cut]).expect("half a record");
    let mut stream = s.stream("/v1/events?after_seq=0", &[], None);
    for want in 1..=4 {
        assert_eq!(stream.record().expect("an event").id, Some(want));
    }
    // The stream has subscribed and waits; the writer finishes.
    std::thread::sleep(Duration::from_millis(300));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.log)
        .expect("the log opens");
    f.write_all(&text[cut..]).expect("the rest of the record");
    drop(f);
    s.append(1, 1);
    let lines = s.lines();
    for want in 5..=6 {
        let ev = stream.record().expect("an event");
        assert_eq!(ev.event, "refused", "{ev:?}");
        assert_eq!(ev.id, Some(want));
        assert_eq!(ev.data, lines[usize::try_from(want).expect("small") - 1]);
    }
}
