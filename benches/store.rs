//! What an append costs in the PostgreSQL store (`store::pg`): records per
//! second for one writer, and for sixteen writers each on its own
//! connection, one record or ten per transaction, for sixteen threads of
//! one process through `PgLog` (group commit), and through the app's own
//! path (an `AuditLog` on the store, its replica caught up under the head
//! lock). Every append is a durable commit (`synchronous_commit = on`)
//! under the head's row lock.
//!
//! `scripts/bench-store.sh` runs it beside `pgbench` inserting rows of the
//! same size on the same server, and prints both. Alone:
//! `OPSGATE_TEST_PG_URL=postgres://… cargo bench --bench store`. Under
//! `cargo test --benches` it runs small (when a test server is set) and
//! checks that the chain it wrote verifies.

use std::time::Instant;

use opsgate::audit::{Channel, Event, Sealer};
use opsgate::core::digest::PolicyHash;
use opsgate::store::pg::Pg;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A record of about the size of a decision (~400 bytes).
fn event(writer: usize, n: usize) -> Event {
    Event::Refused {
        attempt: "bench".into(),
        plan_id: Some(format!("plan-{writer}")),
        run_id: None,
        user: format!("writer{writer}"),
        channel: Channel::Cli,
        code: "bench".into(),
        reason: format!("{n:08} {}", "x".repeat(200)),
        plan_hash: None,
        policy_hash: PolicyHash::new(format!("sha256:{}", "0".repeat(64))),
        metadata: Default::default(),
    }
}

/// A fresh database on the server at `admin`; its URL.
fn fresh(admin: &str, name: &str) -> BenchResult<String> {
    let pg = Pg::connect(admin)?;
    let _ = pg.execute_raw(&format!("DROP DATABASE IF EXISTS {name}"));
    pg.execute_raw(&format!("CREATE DATABASE {name}"))?;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    let url = format!("{base}/{name}");
    Pg::connect(&url)?.init()?;
    Ok(url)
}

/// Runs `work(thread)` on `threads` threads at once; the first error.
fn in_threads(
    threads: usize,
    work: impl Fn(usize) -> Result<(), String> + Sync,
) -> BenchResult<()> {
    std::thread::scope(|s| -> BenchResult<()> {
        let work = &work;
        let handles: Vec<_> = (0..threads).map(|w| s.spawn(move || work(w))).collect();
        for h in handles {
            h.join().map_err(|_| "a writer panicked")??;
        }
        Ok(())
    })
}

/// `writers` threads, each appending `each` transactions of `batch`
/// records on its own connection; returns records per second.
fn run(url: &str, writers: usize, each: usize, batch: usize) -> BenchResult<f64> {
    let started = Instant::now();
    in_threads(writers, |w| {
        let mut pg = Pg::connect(url).map_err(|e| e.to_string())?;
        for n in 0..each {
            let events: Vec<Event> = (0..batch).map(|k| event(w, n * batch + k)).collect();
            pg.append(&Sealer::Sha256, &events)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    Ok((writers * each * batch) as f64 / started.elapsed().as_secs_f64())
}

/// One writer appending one record per commit for `secs` seconds (as
/// long as pgbench's run beside it); records per second and how many.
fn run_for(url: &str, secs: f64) -> BenchResult<(f64, usize)> {
    let mut pg = Pg::connect(url)?;
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed().as_secs_f64() < secs {
        pg.append(&Sealer::Sha256, &[event(0, n)])?;
        n += 1;
    }
    Ok((n as f64 / started.elapsed().as_secs_f64(), n))
}

/// `threads` threads of one process appending through one `PgLog` (group
/// commit), `each` appends of one record; records per second and commits.
fn run_shared(url: &str, threads: usize, each: usize) -> BenchResult<(f64, u64)> {
    let log = opsgate::store::pg::PgLog::new(Pg::connect(url)?, Sealer::Sha256);
    let started = Instant::now();
    in_threads(threads, |w| {
        for n in 0..each {
            log.append_all(vec![event(w, n)])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    let rate = (threads * each) as f64 / started.elapsed().as_secs_f64();
    Ok((rate, log.commits()))
}

/// The app's path in team mode: `threads` threads of one process
/// appending through an `AuditLog` on the store (its replica caught up and
/// checked under the head lock, the records committed, then written to the
/// replica; group commit across the threads), `each` records each;
/// records per second.
fn run_app(url: &str, threads: usize, each: usize) -> BenchResult<f64> {
    let dir = tempfile::tempdir()?;
    let log = opsgate::audit::AuditLog::open_store(
        &dir.path().join("replica.jsonl"),
        url,
        Pg::connect(url)?,
        Sealer::Sha256,
        Default::default(),
    )?;
    let started = Instant::now();
    in_threads(threads, |w| {
        for n in 0..each {
            log.append(event(w, n)).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    Ok((threads * each) as f64 / started.elapsed().as_secs_f64())
}

fn verify(url: &str, expect: usize) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("export.jsonl");
    let n = Pg::connect(url)?.export(&mut std::fs::File::create(&file)?)?;
    let report = opsgate::audit::verify::verify_file(&file, &Sealer::Sha256, None)?;
    if !report.ok || n as usize != expect {
        return Err(format!("{n} records, expected {expect}: {:?}", report.problem).into());
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let Some(admin) = std::env::var("OPSGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        if std::env::var_os("OPSGATE_REQUIRE_BACKENDS").is_some() {
            return Err("OPSGATE_TEST_PG_URL is not set and OPSGATE_REQUIRE_BACKENDS is".into());
        }
        eprintln!("SKIPPED: OPSGATE_TEST_PG_URL is not set: no PostgreSQL to measure");
        return Ok(());
    };
    let scale = if quick { 1 } else { 20 };
    println!("| appends | records/s |");
    println!("|---|---|");
    // One writer runs as long as pgbench does beside it
    // (`OPSGATE_BENCH_SECS`, scripts/bench-store.sh), a short while alone.
    let secs = std::env::var("OPSGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let url = fresh(&admin, &format!("opsgate_bench_{}_one", std::process::id()))?;
    let (rate, n) = run_for(&url, secs)?;
    verify(&url, n)?;
    println!("| 1 writer, 1 record per commit | {rate:.0} |");
    let cases = [
        ("16 writers, 1 record per commit", 16, 10 * scale, 1),
        ("16 writers, 10 records per commit", 16, 5 * scale, 10),
    ];
    for (i, (what, writers, each, batch)) in cases.into_iter().enumerate() {
        let url = fresh(&admin, &format!("opsgate_bench_{}_{i}", std::process::id()))?;
        let rate = run(&url, writers, each, batch)?;
        verify(&url, writers * each * batch)?;
        println!("| {what} | {rate:.0} |");
    }
    let (threads, each) = (16, 50 * scale);
    let url = fresh(
        &admin,
        &format!("opsgate_bench_{}_shared", std::process::id()),
    )?;
    let (rate, commits) = run_shared(&url, threads, each)?;
    verify(&url, threads * each)?;
    println!(
        "| 16 threads of one process, 1 record each, group commit ({commits} commits for {} appends) | {rate:.0} |",
        threads * each
    );
    for (what, threads, each) in [
        (
            "the app's path (`AuditLog` on the store), 1 thread",
            1,
            100 * scale,
        ),
        (
            "the app's path (`AuditLog` on the store), 16 threads, group commit",
            16,
            50 * scale,
        ),
    ] {
        let url = fresh(
            &admin,
            &format!("opsgate_bench_{}_app_{threads}", std::process::id()),
        )?;
        let rate = run_app(&url, threads, each)?;
        verify(&url, threads * each)?;
        println!("| {what} | {rate:.0} |");
    }
    Ok(())
}
