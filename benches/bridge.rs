//! Decision throughput and latency of `opsgate serve` on loopback, with the
//! audit log's fsync group commit on: a Rust load generator (no keep-alive:
//! a new connection per request) posts `yes` decisions for distinct plans
//! from 32 concurrent workers, once each server has answered one read of
//! the plans (warm).
//!
//! `cargo bench --bench bridge` (4,000 decisions); under
//! `cargo test --benches` it runs 40 and checks every one was recorded.
//! With `OPSGATE_TEST_PG_URL` set it runs again in team mode: three
//! `opsgate serve` replicas (three state directories) on one PostgreSQL
//! store, the workers spread over them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opsgate::audit::{AuditLog, Event, Sealer};
use opsgate::core::digest::PlanHash;
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::risk::RiskLevel;
use sha2::{Digest, Sha256};

const TOKEN: &str = "bench-token";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<u16> {
    request(addr, "POST", path, body)
}

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    // One write: a request split over several segments meets Nagle and
    // delayed ACKs, and measures those instead of the server.
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {out:?}")))
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let workers: usize = std::env::var("OPSGATE_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(32);
    let n: usize = if full { 4000 } else { 40 };
    bench(n, workers, None)?;
    if let Some(admin) = std::env::var("OPSGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let pg = opsgate::store::pg::Pg::connect(&admin)?;
        let name = format!("opsgate_bench_bridge_{}", std::process::id());
        let _ = pg.execute_raw(&format!("DROP DATABASE IF EXISTS {name}"));
        pg.execute_raw(&format!("CREATE DATABASE {name}"))?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        opsgate::store::pg::Pg::connect(&url)?.init()?;
        bench(n, workers, Some(&url))?;
    }
    Ok(())
}

/// `n` decisions from `workers` workers: on a file log through one bridge,
/// or on the store at `store` through three replicas.
fn bench(n: usize, workers: usize, store: Option<&str>) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("audit.jsonl");
    let policy_path = dir.path().join("policy.yaml");
    let digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let policy_text = format!(
        "bridge:\n  rate_limit: {{per_sender: 1000000/min, per_client: 1000000/min}}\n  clients:\n    - name: bench\n      token_sha256: \"{digest}\"\n      senders: {{U1: alice}}\n"
    );
    std::fs::write(&policy_path, &policy_text)?;
    let policy = LoadedPolicy::load(Some(("policy.yaml", &policy_text)))?;

    // n MEDIUM plans by bob, submitted in one batch.
    let log = match store {
        None => AuditLog::open(&log_path, Sealer::Sha256, Default::default())?,
        Some(url) => AuditLog::open_store(
            &log_path,
            url,
            opsgate::store::pg::Pg::connect(url)?,
            Sealer::Sha256,
            Default::default(),
        )?,
    };
    let plan_json = |i: usize| {
        serde_json::json!({
            "id": format!("p{i}"), "title": "bench", "description": null, "author": "bob",
            "target": {"kube_context": null, "namespace": null, "aws_region": null, "docker_host": null},
            "params": {}, "estimated_time": null,
            "steps": [{"name": "s", "action": {"run": "touch /tmp/x"}, "timeout": 60000,
                       "pre_checks": [], "post_checks": [], "rollback": {"run": "rm -f /tmp/x"}}],
            "rollback": "absent"
        })
    };
    let events: Vec<Event> = (0..n)
        .map(|i| Event::PlanSubmitted {
            fingerprints: Default::default(),
            plan_id: format!("p{i}"),
            plan_hash: PlanHash::new(format!("sha256:{:064x}", i)),
            policy_hash: policy.hash.clone(),
            risk: RiskLevel::Medium,
            author: "bob".into(),
            submitted_by: "bob".into(),
            identity: None,
            mutates_production: false,
            redacted: false,
            plan: plan_json(i),
        })
        .collect();
    log.append_all(events)?;
    drop(log);

    let replicas = if store.is_some() { 3 } else { 1 };
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for r in 0..replicas {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsgate"));
        cmd.env("XDG_STATE_HOME", dir.path().join(format!("state-{r}")))
            .env_remove("OPSGATE_STORE")
            .env_remove("OPSGATE_AUDIT_LOG")
            .arg("--config")
            .arg(&policy_path);
        match store {
            None => cmd.arg("--audit-log").arg(&log_path),
            Some(url) => cmd.arg("--store").arg(url),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut first = String::new();
        {
            let mut out = child.stdout.take().ok_or("no stdout")?;
            let mut byte = [0u8; 1];
            while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
                first.push(byte[0] as char);
            }
        }
        servers.push(Server(child));
        let addr: SocketAddr = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {first:?}"))?
            .parse()?;
        addrs.push(addr);
    }
    // Warm: one read of the plans from each server before the clock
    // starts, as a load balancer's first check would make; a cold server's
    // first decisions wait for it to read the log it was started on.
    for addr in &addrs {
        let status = request(*addr, "GET", "/v1/plans", "")?;
        if status != 200 {
            return Err(format!("GET /v1/plans on {addr}: status {status}").into());
        }
    }
    let addrs = Arc::new(addrs);

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let next = Arc::clone(&next);
            let addrs = Arc::clone(&addrs);
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return Ok(lat);
                    }
                    let body = format!(
                        "{{\"decision\":\"yes\",\"plan_hash\":\"sha256:{:064x}\",\"sender_id\":\"U1\"}}",
                        i
                    );
                    let t = Instant::now();
                    let addr = addrs[i % addrs.len()];
                    let status = post(addr, &format!("/v1/plans/p{i}/decision"), &body)
                        .map_err(|e| e.to_string())?;
                    lat.push(t.elapsed());
                    if status != 200 {
                        return Err(format!("p{i}: status {status}"));
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.join().map_err(|_| "a worker panicked")??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    drop(servers);
    let records = match store {
        None => std::fs::read_to_string(&log_path)?,
        Some(url) => {
            let mut out = Vec::new();
            opsgate::store::pg::Pg::connect(url)?.export(&mut out)?;
            String::from_utf8(out)?
        }
    };
    let granted = records
        .lines()
        .filter(|l| l.contains("\"type\":\"approval_granted\""))
        .count();
    if granted != n {
        return Err(format!("{granted} approvals recorded for {n} decisions").into());
    }
    let on = match store {
        None => "one bridge, a file log".to_owned(),
        Some(_) => format!("{replicas} bridge replicas, one PostgreSQL store"),
    };
    println!(
        "{on}: {n} decisions, {workers} workers, one connection each: {:.0} decisions/s, p50 {:.1} ms, p99 {:.1} ms (targets >= 2,000/s, p99 <= 50 ms)",
        n as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
