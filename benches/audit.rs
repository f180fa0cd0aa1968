//! Audit log speed and memory, each measured side by side with its baseline
//! in the same run:
//!
//! 1. append, one fsync per event, one writer, against a raw `write` +
//!    `fdatasync` loop of lines of the same size;
//! 2. group commit with 1, 4 and 16 writer threads;
//! 3. verify a 1,000,000-event log against a plain `serde_json` parse of
//!    each line of the same file;
//! 4. export it to CSV with the `opsgate` binary: time and peak RSS
//!    (the child's `VmHWM`, sampled every 5 ms from `/proc`).
//!
//! `cargo bench --bench audit` runs it (about two minutes);
//! `OPSGATE_BENCH_EVENTS` changes the size of the big log. Under
//! `cargo test --benches` it runs small and checks its own results.
//!
//! Logs go to `target/audit-bench/` (on the same disk as the project),
//! not `/tmp`, which may be a RAM disk where fsync is free.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opsgate::audit::verify::verify_file;
use opsgate::audit::{AuditLog, Event, Sealer, Status};
use opsgate::core::redact::Redactor;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn event(i: u64) -> Event {
    Event::StepFinished {
        plan_id: "bench-plan".into(),
        run_id: format!("run-{}", i / 100),
        step: (i % 100) as u32,
        name: "restart worker".into(),
        action: "systemctl restart app-worker@3.service".into(),
        status: Status::Succeeded,
        exit_code: Some(0),
        duration_seconds: 1.25,
        output: "worker restarted; 12 jobs requeued".into(),
    }
}

fn fresh(dir: &Path, name: &str) -> BenchResult<PathBuf> {
    let p = dir.join(name);
    if p.exists() {
        fs::remove_file(&p)?;
    }
    Ok(p)
}

/// Appends one at a time against a raw `write` + `fdatasync` loop of lines
/// of the same size, in alternating rounds so that both see the same disk
/// (its fsync latency drifts by tens of percent over a minute). Returns
/// both rates and the record size.
fn append_vs_raw(dir: &Path, n: u64) -> BenchResult<(f64, f64, u64)> {
    const ROUNDS: u64 = 10;
    let path = fresh(dir, "append.jsonl")?;
    let log = AuditLog::open(&path, Sealer::Sha256, Redactor::default())?;
    log.append(event(0))?;
    let size = fs::metadata(&path)?.len();
    let mut raw = OpenOptions::new()
        .append(true)
        .create(true)
        .open(fresh(dir, "raw.jsonl")?)?;
    let mut line = vec![b'x'; size as usize - 1];
    line.push(b'\n');
    let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
    let per_round = n / ROUNDS;
    for round in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..per_round {
            log.append(event(round * per_round + i))?;
        }
        ours += t.elapsed();
        let t = Instant::now();
        for _ in 0..per_round {
            raw.write_all(&line)?;
            raw.sync_data()?;
        }
        theirs += t.elapsed();
    }
    let count = (per_round * ROUNDS) as f64;
    Ok((
        count / ours.as_secs_f64(),
        count / theirs.as_secs_f64(),
        size,
    ))
}

/// Durable events/s with `writers` threads appending `per` events each.
fn group_rate(dir: &Path, writers: u64, per: u64) -> BenchResult<f64> {
    let path = fresh(dir, &format!("group-{writers}.jsonl"))?;
    let log = AuditLog::open(&path, Sealer::Sha256, Redactor::default())?;
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let log = &log;
                s.spawn(move || -> Result<(), String> {
                    for i in 0..per {
                        log.append(event(w * per + i)).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "writer panicked".to_string())?)
    })?;
    Ok((writers * per) as f64 / t.elapsed().as_secs_f64())
}

/// A log of `n` events, written in batches of 10,000 (one fsync each).
fn big_log(dir: &Path, n: u64) -> BenchResult<PathBuf> {
    let path = fresh(dir, "big.jsonl")?;
    let log = AuditLog::open(&path, Sealer::Sha256, Redactor::default())?;
    let mut i = 0;
    while i < n {
        let batch: Vec<Event> = (i..(i + 10_000).min(n)).map(event).collect();
        i += batch.len() as u64;
        log.append_with(|_| Ok::<_, opsgate::audit::AuditError>(batch))?;
    }
    Ok(path)
}

/// Lines/s of a plain serde_json parse of every line.
fn parse_rate(path: &Path) -> BenchResult<(f64, u64)> {
    use std::io::BufRead;
    let t = Instant::now();
    let mut r = std::io::BufReader::with_capacity(256 * 1024, fs::File::open(path)?);
    let mut buf = Vec::new();
    let mut n = 0u64;
    while r.read_until(b'\n', &mut buf)? > 0 {
        let v: serde_json::Value = serde_json::from_slice(&buf)?;
        std::hint::black_box(v);
        buf.clear();
        n += 1;
    }
    Ok((n as f64 / t.elapsed().as_secs_f64(), n))
}

/// Runs `opsgate audit export --format csv`; returns seconds and peak RSS
/// in KiB, sampled from `/proc/PID/status`.
fn export_run(path: &Path, out: &Path) -> BenchResult<(f64, u64)> {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsgate"))
        .env(
            "XDG_STATE_HOME",
            path.parent().unwrap_or(Path::new(".")).join("state"),
        )
        .args(["audit", "export", "--format", "csv", "-o"])
        .arg(out)
        .arg("--audit-log")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(s) = fs::read_to_string(&status_file)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Err(format!("export failed: {status}").into());
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((t.elapsed().as_secs_f64(), peak_kib))
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/audit-bench");
    fs::create_dir_all(&dir)?;
    let big: u64 = match std::env::var("OPSGATE_BENCH_EVENTS") {
        Ok(v) => v.parse()?,
        Err(_) if full => 1_000_000,
        Err(_) => 20_000,
    };
    let (n_append, per_writer) = if full { (3_000, 1_500) } else { (200, 50) };

    let (ours, raw, size) = append_vs_raw(&dir, n_append)?;
    println!(
        "append, one fsync per event ({size}-byte records, {n_append} events each, alternating rounds):"
    );
    println!("  opsgate   {ours:>10.0} events/s");
    println!("  raw       {raw:>10.0} writes/s");
    println!("  ratio     {:>10.2}x   (target >= 0.8x)", ours / raw);

    println!("group commit ({per_writer} events per writer):");
    for writers in [1, 4, 16] {
        let rate = group_rate(&dir, writers, per_writer)?;
        println!("  {writers:>2} writer(s) {rate:>10.0} durable events/s");
    }

    let path = big_log(&dir, big)?;
    let mb = fs::metadata(&path)?.len() as f64 / 1e6;
    let t = Instant::now();
    let report = verify_file(&path, &Sealer::Sha256, None)?;
    let verify = report.events as f64 / t.elapsed().as_secs_f64();
    if !report.ok || report.events != big {
        return Err(format!("verify: {report:?}").into());
    }
    let (parse, lines) = parse_rate(&path)?;
    if lines != big {
        return Err(format!("parsed {lines} lines, wrote {big}").into());
    }
    println!("verify a {big}-event log ({mb:.0} MB):");
    println!("  verify            {verify:>10.0} events/s   (target >= 250,000)");
    println!("  serde_json parse  {parse:>10.0} lines/s");
    println!("  ratio             {:>10.2}x", verify / parse);

    let csv = dir.join("big.csv");
    let (secs, peak_kib) = export_run(&path, &csv)?;
    if !full {
        let rows = fs::read_to_string(&csv)?.lines().count() as u64;
        if rows != big + 1 {
            return Err(format!("export wrote {rows} rows for {big} events").into());
        }
    }
    println!("export {big} events to CSV with the binary:");
    println!(
        "  {secs:.2} s ({:.0} events/s), peak RSS {:.1} MB   (target <= 64 MB)",
        big as f64 / secs,
        peak_kib as f64 / 1024.0
    );
    for f in ["append.jsonl", "raw.jsonl", "big.jsonl", "big.csv"] {
        let _ = fs::remove_file(dir.join(f));
    }
    for w in [1, 4, 16] {
        let _ = fs::remove_file(dir.join(format!("group-{w}.jsonl")));
    }
    Ok(())
}
