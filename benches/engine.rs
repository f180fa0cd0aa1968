//! Engine overhead per step, side by side in one run:
//!
//! - a 200-step plan of `true` through the engine (a dry run is not used:
//!   every step really runs, with `step_started` and `step_finished` fsync'd);
//! - a bare loop that spawns `/bin/sh -c true` 200 times;
//! - a raw `write` + `fdatasync` loop, for the cost of the two audit fsyncs
//!   a step makes.
//!
//! Overhead per step = engine per step − spawn per step − 2 × fsync.
//! `cargo bench --bench engine`; under `cargo test --benches` it runs 20
//! steps and checks the run succeeded and recorded every step.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use opsgate::audit::{AuditLog, Sealer, Status};
use opsgate::core::approval::{Subject, Verdict, evaluate};
use opsgate::core::digest::PolicyHash;
use opsgate::core::plan::Plan;
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::redact::Redactor;
use opsgate::core::risk::RiskLevel;
use opsgate::exec::Stop;
use opsgate::exec::engine::{Authority, Engine, RunSpec};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn plan(steps: usize) -> BenchResult<Plan> {
    let mut yaml = String::from("id: bench\ntitle: bench\nauthor: a\nsteps:\n");
    for i in 0..steps {
        yaml.push_str(&format!("  - {{name: s{i}, run: 'true', timeout: 10s}}\n"));
    }
    yaml.push_str("rollback: {none: nothing to undo}\n");
    let policy = LoadedPolicy::embedded()?;
    let cp = opsgate::core::plan::load_plan(
        "bench.yaml",
        &yaml,
        &policy,
        chrono::Utc::now().date_naive(),
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok(cp.plan)
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let steps = if full { 200 } else { 20 };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/engine-bench");
    fs::create_dir_all(&dir)?;
    let log_path = dir.join("audit.jsonl");
    let _ = fs::remove_file(&log_path);
    let log = AuditLog::open(&log_path, Sealer::Sha256, Redactor::default())?;
    let plan = plan(steps)?;
    let policy = LoadedPolicy::embedded()?;
    let policy_hash: PolicyHash = policy.hash.clone();

    // A LOW plan under a policy that auto-approves LOW: no votes needed.
    let mut auto = policy.policy.clone();
    auto.execution.auto_approve_low_risk = true;
    let hash = plan.hash();
    let subject = Subject {
        plan_id: "bench",
        plan_hash: &hash,
        risk: RiskLevel::Low,
        author: "a",
        author_key: None,
        mutates_production: false,
        has_override: false,
    };
    let Verdict::Approved { plan: approved, .. } =
        evaluate(&auto, &policy_hash, &subject, &[], chrono::Utc::now())
    else {
        return Err("the bench plan was not approved".into());
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let backends = opsgate::native::Backends::new(&Default::default());
    let engine = Engine::new(RunSpec {
        log: &log,
        plan_id: "bench",
        plan: &plan,
        policy_hash: &policy_hash,
        run_id: "bench-run".into(),
        user: "bench".into(),
        backends: &backends,
    })
    .risks(vec![RiskLevel::Low; steps])
    .grace(Duration::from_secs(1))
    .stop(stop_rx)
    .env(std::collections::BTreeMap::from([(
        "PATH".to_owned(),
        "/usr/bin:/bin".to_owned(),
    )]));
    let t = Instant::now();
    let report = rt.block_on(engine.run(&Authority::Approved(approved)))?;
    let engine_time = t.elapsed();
    if report.status != Status::Succeeded || report.completed.len() != steps {
        return Err(format!("the bench run did not succeed: {report:?}").into());
    }

    let t = Instant::now();
    for _ in 0..steps {
        let s = std::process::Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()?;
        if !s.success() {
            return Err("true failed".into());
        }
    }
    let spawn_time = t.elapsed();

    let size = fs::metadata(&log_path)?.len() / (2 * steps as u64 + 1);
    let raw_path = dir.join("raw.jsonl");
    let _ = fs::remove_file(&raw_path);
    let mut raw = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&raw_path)?;
    let line = vec![b'x'; size as usize];
    let t = Instant::now();
    for _ in 0..2 * steps {
        raw.write_all(&line)?;
        raw.sync_data()?;
    }
    let fsync_time = t.elapsed();

    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e3 / n as f64;
    let engine_ms = per(engine_time, steps);
    let spawn_ms = per(spawn_time, steps);
    let fsync_ms = per(fsync_time, 2 * steps);
    let records = fs::read_to_string(&log_path)?.lines().count();
    println!("{steps}-step plan of `true`:");
    println!(
        "  engine            {engine_ms:>7.3} ms/step ({records} records, {:.1} fsyncs/step)",
        records as f64 / steps as f64
    );
    println!("  bare spawn loop   {spawn_ms:>7.3} ms/step");
    println!("  one fsync         {fsync_ms:>7.3} ms");
    println!(
        "  overhead          {:>7.3} ms/step beyond the spawn and 2 fsyncs   (target <= 1 ms)",
        engine_ms - spawn_ms - 2.0 * fsync_ms
    );
    let _ = fs::remove_file(&log_path);
    let _ = fs::remove_file(&raw_path);
    Ok(())
}
