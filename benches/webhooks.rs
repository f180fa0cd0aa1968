//! Webhook fan-out: a bridge in this process with 10 webhooks, each to a
//! receiver of its own on 127.0.0.1 (threads answering 200 at once), while
//! a writer appends refusals (each an event every webhook wants). It
//! prints how long until every receiver had every event, and the
//! deliveries per second, and checks that each receiver got each event
//! once, in order, correctly signed.
//!
//! `cargo bench --bench webhooks` (2,000 events); under
//! `cargo test --benches` it runs 50 events.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use opsgate::app::App;
use opsgate::audit::{AuditLog, Channel, Event, Sealer};
use opsgate::core::policy::LoadedPolicy;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const SECRET: &str = "bench-webhook-secret-0123456789";
const RECEIVERS: usize = 10;

/// The seqs one receiver got, in order; false if a signature was bad.
type Got = Arc<Mutex<(Vec<u64>, bool)>>;

/// A receiver answering 200 to each request, on connections it keeps
/// open (the bridge's client pools them).
fn receiver(stop: Arc<AtomicBool>) -> BenchResult<(std::net::SocketAddr, Got)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let got: Got = Arc::new(Mutex::new((Vec::new(), true)));
    let log = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(s) = stream else { continue };
            let log = Arc::clone(&log);
            std::thread::spawn(move || serve_connection(s, &log));
        }
    });
    Ok((addr, got))
}

fn serve_connection(s: std::net::TcpStream, got: &Got) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut len, mut sig) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("x-opsgate-signature:") {
                sig = h["x-opsgate-signature:".len()..].trim().to_owned();
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let ok = signed(&sig, &body);
        let seq = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0);
        if let Ok(mut g) = got.lock() {
            g.0.push(seq);
            g.1 &= ok;
        }
        if out
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn signed(header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = if full { 2000 } else { 50 };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    std::fs::write(dir.path().join("hook.secret"), SECRET)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let mut hooks = String::new();
    for i in 0..RECEIVERS {
        let (addr, got) = receiver(Arc::clone(&stop))?;
        receivers.push(got);
        hooks.push_str(&format!(
            "    - {{name: r{i}, url: 'http://{addr}/hook', events: [refused], secret_file: hook.secret}}\n"
        ));
    }
    let policy_path = dir.path().join("policy.yaml");
    let text = format!("bridge:\n  webhooks:\n{hooks}");
    let policy = LoadedPolicy::load(Some((&policy_path.display().to_string(), &text)))?;
    let path = dir.path().join("audit.jsonl");
    let app = App::long_lived(
        policy.clone(),
        AuditLog::open(&path, Sealer::Sha256, Default::default())?,
        Sealer::Sha256,
    );
    // The webhooks' positions go to this run's own state directory.
    let bridge =
        Arc::new(opsgate::bridge::Bridge::new(app)?.with_state_dir(dir.path().join("state")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let done = Arc::new(tokio::sync::Notify::new());
    let notified = Arc::clone(&done);
    let server = rt.spawn(opsgate::bridge::serve(listener, bridge, async move {
        notified.notified().await;
    }));
    // Let every webhook take its position (the head: nothing yet).
    std::thread::sleep(Duration::from_millis(500));
    let log = AuditLog::open(&path, Sealer::Sha256, Default::default())?;
    let started = Instant::now();
    for i in 0..n {
        log.append(Event::Refused {
            attempt: "bench".into(),
            plan_id: Some(format!("p{i}")),
            run_id: None,
            user: "bench".into(),
            channel: Channel::Cli,
            code: "bench".into(),
            reason: format!("event {i}"),
            plan_hash: None,
            policy_hash: policy.hash.clone(),
            metadata: Default::default(),
        })?;
    }
    let wrote = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let all = receivers
            .iter()
            .all(|g| g.lock().map(|g| g.0.len() as u64 >= n).unwrap_or(false));
        if all {
            break;
        }
        if Instant::now() > deadline {
            return Err("the receivers did not get every event within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    done.notify_one();
    rt.block_on(server)??;
    for (i, g) in receivers.iter().enumerate() {
        let g = g.lock().map_err(|_| "a receiver panicked")?;
        let first = g.0.first().copied().unwrap_or(0);
        let want: Vec<u64> = (first..first + n).collect();
        if g.0 != want {
            return Err(format!("receiver {i} got {} events, not {n} in order", g.0.len()).into());
        }
        if !g.1 {
            return Err(format!("receiver {i} got a bad signature").into());
        }
    }
    let deliveries = n * RECEIVERS as u64;
    println!(
        "webhooks: {n} events to {RECEIVERS} receivers: {deliveries} deliveries in {:.2} s ({:.0}/s; the writer took {:.2} s), each once, in order, signed",
        took.as_secs_f64(),
        deliveries as f64 / took.as_secs_f64(),
        wrote.as_secs_f64()
    );
    Ok(())
}
