//! The event stream (`GET /v1/events`) under load: 16 writers of one
//! process append to the audit log (fsync group commit) for a while with
//! no stream open, then as long again while 100 clients stream every
//! record. It prints the writers' rate in both, their ratio (the goal:
//! streams cost the writers at most a tenth), the events per second
//! delivered to the clients, who read everything to the end, and how
//! often a client fell behind, was cut off and resumed (`Last-Event-ID`).
//!
//! The bridge serves in this process on 127.0.0.1; the clients are
//! threads reading raw sockets. The log is on the disk of the target
//! directory (`CARGO_TARGET_TMPDIR`), so each commit is a real fsync.
//!
//! `cargo bench --bench events` (5 s a phase; `OPSGATE_BENCH_SECS` to
//! change it); under `cargo test --benches` it runs a fraction of a second
//! with 10 clients and checks that every client saw every record once, in
//! order.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opsgate::app::App;
use opsgate::audit::{AuditLog, Channel, Event, Sealer};
use opsgate::core::policy::LoadedPolicy;
use sha2::{Digest, Sha256};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const TOKEN: &str = "bench-events";
const WRITERS: usize = 16;

fn event(policy: &LoadedPolicy, writer: usize, n: u64) -> Event {
    Event::Refused {
        attempt: "bench".into(),
        plan_id: Some(format!("plan-{writer}")),
        run_id: None,
        user: format!("writer{writer}"),
        channel: Channel::Cli,
        code: "bench".into(),
        reason: format!("{n:08} {}", "x".repeat(200)),
        plan_hash: None,
        policy_hash: policy.hash.clone(),
        metadata: Default::default(),
    }
}

/// What the writers did: records per second, and the latency of each
/// append (p50, p99, in ms).
struct Writes {
    rate: f64,
    p50: f64,
    p99: f64,
}

/// Appends from [`WRITERS`] threads for `secs`, as fast as they can or,
/// with `pace`, each one record every `pace`.
fn write_for(
    log: &AuditLog,
    policy: &LoadedPolicy,
    secs: f64,
    pace: Option<Duration>,
) -> BenchResult<Writes> {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut took: Vec<f64> = std::thread::scope(|s| -> BenchResult<Vec<f64>> {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                std::thread::Builder::new()
                    .name(format!("writer{w}"))
                    .spawn_scoped(s, move || -> Result<Vec<f64>, String> {
                        let mut took = Vec::new();
                        let mut next = Instant::now();
                        while Instant::now() < until {
                            let t = Instant::now();
                            log.append(event(policy, w, took.len() as u64))
                                .map_err(|e| e.to_string())?;
                            took.push(t.elapsed().as_secs_f64() * 1000.0);
                            if let Some(p) = pace {
                                next += p;
                                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                            }
                        }
                        Ok(took)
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "a writer panicked")??);
        }
        Ok(all)
    })?;
    let rate = took.len() as f64 / started.elapsed().as_secs_f64();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| {
        took.get(((took.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Writes {
        rate,
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// One client: streams from after `after` until it has seen `last`
/// (once known), resuming with `Last-Event-ID` when it is cut off, as a
/// client should; the ids it saw, in order, and how often it resumed.
fn client(addr: SocketAddr, after: u64, last: &AtomicU64) -> Result<(Vec<u64>, usize), String> {
    let mut ids = Vec::new();
    let mut resumed = 0;
    loop {
        let from = ids.last().copied().unwrap_or(after);
        if stream(addr, from, last, &mut ids)? {
            return Ok((ids, resumed));
        }
        resumed += 1;
    }
}

/// One connection; true when it saw `last`, false when it was cut off.
fn stream(
    addr: SocketAddr,
    after: u64,
    last: &AtomicU64,
    ids: &mut Vec<u64>,
) -> Result<bool, String> {
    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        &s,
        "GET /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nLast-Event-ID: {after}\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("the stream ended after {} events", ids.len()));
        }
        // Each event is a chunk of its own, so `id:` starts a line.
        if let Some(id) = line.strip_prefix("id: ") {
            let id: u64 = id.trim().parse().map_err(|_| format!("bad id {line:?}"))?;
            ids.push(id);
        }
        if line.starts_with("event: cut_off") {
            return Ok(false);
        }
        let want = last.load(Ordering::Acquire);
        if want > 0 && ids.last().is_some_and(|l| *l >= want) {
            return Ok(true);
        }
    }
}

/// Runs `write` while `clients` streams read every record it writes;
/// what it returned, the events delivered, how often a stream resumed,
/// and how long until every client had every record.
fn with_streams(
    addr: SocketAddr,
    path: &std::path::Path,
    clients: usize,
    write: impl FnOnce() -> BenchResult<Writes>,
) -> BenchResult<(Writes, usize, usize, Duration)> {
    let head = |p: &std::path::Path| -> BenchResult<u64> {
        Ok(std::fs::read_to_string(p)?.lines().count() as u64)
    };
    let start = head(path)?;
    let last = AtomicU64::new(0);
    std::thread::scope(|s| -> BenchResult<_> {
        let readers: Vec<_> = (0..clients)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("client{i}"))
                    .spawn_scoped(s, || client(addr, start, &last))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Every stream is open before the writers start.
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let with = write()?;
        // One more record tells the clients where the end is (each checks
        // after a line, so the last line must come after the store).
        let end = head(path)? + 1;
        last.store(end, Ordering::Release);
        let log = AuditLog::open(path, Sealer::Sha256, Default::default())?;
        log.append(Event::Refused {
            attempt: "bench".into(),
            plan_id: None,
            run_id: None,
            user: "end".into(),
            channel: Channel::Cli,
            code: "bench".into(),
            reason: "the end".into(),
            plan_hash: None,
            policy_hash: opsgate::core::digest::PolicyHash::new(format!(
                "sha256:{}",
                "0".repeat(64)
            )),
            metadata: Default::default(),
        })?;
        let mut streamed = 0;
        let mut resumed = 0;
        for r in readers {
            let (ids, again) = r.join().map_err(|_| "a client panicked")??;
            resumed += again;
            let want: Vec<u64> = (start + 1..=end).collect();
            if ids != want {
                let at = ids.iter().zip(&want).position(|(a, b)| a != b);
                return Err(format!(
                    "a client saw {} events, not {} in order (first difference at index {at:?})",
                    ids.len(),
                    want.len()
                )
                .into());
            }
            streamed += ids.len();
        }
        Ok((with, streamed, resumed, started.elapsed()))
    })
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("OPSGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5.0 } else { 0.3 });
    let clients = if full { 100 } else { 10 };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let text = format!(
        "bridge:\n  max_connections: 1024\n  clients:\n    - name: bench\n      token_sha256: \"{}\"\n      senders: {{U1: alice}}\n",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    );
    let policy = LoadedPolicy::load(Some(("policy.yaml", &text)))?;
    let path = dir.path().join("audit.jsonl");
    let app = App::long_lived(
        policy.clone(),
        AuditLog::open(&path, Sealer::Sha256, Default::default())?,
        Sealer::Sha256,
    );
    let bridge = Arc::new(opsgate::bridge::Bridge::new(app)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::clone(&stop);
    let server = rt.spawn(opsgate::bridge::serve(listener, bridge, async move {
        stopped.notified().await;
    }));

    let log = AuditLog::open(&path, Sealer::Sha256, Default::default())?;
    // As fast as the writers go, then at a pace an on-call team would
    // never reach (each writer 100 records/s: 1,600/s).
    for pace in [None, Some(Duration::from_millis(10))] {
        let alone = write_for(&log, &policy, secs, pace)?;
        let (with, streamed, resumed, took) = with_streams(addr, &path, clients, || {
            write_for(&log, &policy, secs, pace)
        })?;
        println!(
            "events ({}): {WRITERS} writers alone {:.0} records/s (append p50 {:.2} ms, p99 {:.2} ms); with {clients} streams {:.0} records/s (p50 {:.2} ms, p99 {:.2} ms; rate ratio {:.2}); {:.0} events/s delivered ({streamed} events in {:.2} s; streams cut off and resumed: {resumed})",
            if pace.is_some() { "paced" } else { "flat out" },
            alone.rate,
            alone.p50,
            alone.p99,
            with.rate,
            with.p50,
            with.p99,
            with.rate / alone.rate,
            streamed as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        );
    }
    stop.notify_one();
    rt.block_on(server)??;
    Ok(())
}
