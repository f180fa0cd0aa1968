//! TUI speed:
//! - criterion: one frame of the plan detail and of the Plans screen for a
//!   500-step plan (and 500 plans) at 160×48 through `TestBackend`;
//! - launch to first frame, in process: load the policy, read the example
//!   plans, build the rows, draw one frame (the terminal's own setup, a few
//!   syscalls, is not included). Printed as the median of 20.
//!
//! `cargo bench --bench tui`. Under `cargo test --benches` each runs once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use opsgate::core::policy::LoadedPolicy;
use opsgate::tui::state::{AppState, PlanRow, RowStatus, Screen, Source};
use opsgate::tui::update::{Action, update};
use opsgate::tui::view::{Theme, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn big_plan(policy: &LoadedPolicy) -> opsgate::core::plan::ClassifiedPlan {
    let mut yaml = String::from("id: big\ntitle: five hundred steps\nauthor: a\nsteps:\n");
    for i in 0..500 {
        yaml.push_str(&format!(
            "  - {{name: step-{i}, run: 'kubectl scale deployment/api-{i} --replicas=3 -n staging', rollback: {{run: 'kubectl scale deployment/api-{i} --replicas=2 -n staging'}}}}\n"
        ));
    }
    opsgate::core::plan::load_plan("big.yaml", &yaml, policy, chrono::Utc::now().date_naive())
        .unwrap_or_else(|e| panic!("the bench plan loads: {e}"))
}

fn state(policy: &LoadedPolicy) -> AppState {
    let review = big_plan(policy);
    let rows: Vec<PlanRow> = (0..500)
        .map(|_| PlanRow {
            source: Source::Log,
            review: review.clone(),
            status: RowStatus::Unsubmitted,
            approvers: Vec::new(),
            needed: 1,
            missing: None,
            submitted_at: None,
        })
        .collect();
    AppState::new(
        "bench".into(),
        policy.hash.to_string(),
        rows,
        chrono::Utc::now(),
    )
}

fn launch_to_first_frame() -> Duration {
    let start = Instant::now();
    let policy = LoadedPolicy::embedded().unwrap_or_else(|e| panic!("policy: {e}"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let files = opsgate::tui::load::plan_files(&dir);
    let rows = opsgate::tui::load::load_all(
        &policy,
        std::path::Path::new("/nonexistent/audit.jsonl"),
        &opsgate::audit::Sealer::Sha256,
        None,
        &files,
        &Default::default(),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("rows: {e}"))
    .rows;
    let s = AppState::new(
        "bench".into(),
        policy.hash.to_string(),
        rows,
        chrono::Utc::now(),
    );
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| view(&s, Theme { color: true }, f))
        .unwrap_or_else(|e| panic!("{e}"));
    start.elapsed()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let policy = LoadedPolicy::embedded().unwrap_or_else(|e| panic!("policy: {e}"));
    let mut plans = state(&policy);
    let mut detail = state(&policy);
    update(&mut detail, Action::Open);
    for _ in 0..250 {
        update(&mut detail, Action::Down);
    }
    assert_eq!(detail.screen, Screen::Detail);
    update(&mut plans, Action::Down);

    let mut c = Criterion::default().configure_from_args();
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("tui/frame/detail-500-steps-160x48", |b| {
        b.iter(|| {
            terminal
                .draw(|f| view(black_box(&detail), Theme { color: true }, f))
                .map(|_| ())
                .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    c.bench_function("tui/frame/plans-500-rows-160x48", |b| {
        b.iter(|| {
            terminal
                .draw(|f| view(black_box(&plans), Theme { color: true }, f))
                .map(|_| ())
                .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    c.final_summary();

    let n = if full { 20 } else { 1 };
    let mut times: Vec<Duration> = (0..n).map(|_| launch_to_first_frame()).collect();
    times.sort();
    println!(
        "launch to first frame (in process, {} plan files): median {:.1} ms, max {:.1} ms (target <= 150 ms)",
        opsgate::tui::load::plan_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans")
        )
        .len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
