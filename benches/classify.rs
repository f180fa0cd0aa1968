//! Classification speed.
//!
//! `cargo bench --bench classify` runs two things:
//! - a per-line report: every line of `benches/corpus.txt` (200+ mixed
//!   lines) is classified 300 times, round-robin, and the median and p99 of
//!   the per-line cost are printed;
//! - criterion benchmarks of the whole corpus under the default policy and
//!   with 10, 100 and 1,000 extra user rules, to show how the cost grows
//!   with the rule count.
//!
//! Under `cargo test --benches` only the criterion functions run, once each.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use opsgate::core::classify::ClassifyContext;
use opsgate::core::policy::LoadedPolicy;

const CORPUS: &str = include_str!("corpus.txt");

fn corpus() -> Vec<&'static str> {
    CORPUS.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// A policy with `n` extra user rules: nine in ten for tools of their own,
/// one in ten for kubectl (with a regex), so the kubectl lines of the corpus
/// have more rules to try as `n` grows.
fn policy_with_rules(n: usize) -> LoadedPolicy {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        if i % 10 == 0 {
            yaml.push_str(&format!(
                "  - {{program: kubectl, subcommand: custom{i}, regex: 'x{i}y', level: HIGH}}\n"
            ));
        } else {
            yaml.push_str(&format!(
                "  - {{program: tool{i}, subcommand: run, level: MEDIUM}}\n"
            ));
        }
    }
    match LoadedPolicy::load(Some(("bench-policy.yaml", &yaml))) {
        Ok(p) => p,
        Err(e) => panic!("bench policy must load: {e}"),
    }
}

fn classify_all(policy: &LoadedPolicy, lines: &[&str], ctx: &ClassifyContext) {
    for line in lines {
        let c = policy.rules.classify(line, ctx);
        black_box(c.ok());
    }
}

/// Per-line cost. The corpus is classified round-robin, 300 rounds, timing
/// each call; a line's cost is the median of its 300 timings. Going round
/// the whole corpus between two calls for the same line keeps the parser's
/// small internal caches from flattering the figures (a real session rarely
/// classifies the same line twice in a row). Prints median, p90, p99 and max
/// over lines.
fn per_line_report(policy: &LoadedPolicy, lines: &[&str]) {
    const ROUNDS: usize = 300;
    let ctx = ClassifyContext::default();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); lines.len()];
    for _ in 0..ROUNDS {
        for (i, line) in lines.iter().enumerate() {
            let start = Instant::now();
            black_box(policy.rules.classify(black_box(line), &ctx).ok());
            samples[i].push(start.elapsed());
        }
    }
    let mut costs: Vec<(Duration, &str)> = samples
        .iter_mut()
        .zip(lines)
        .map(|(s, line)| {
            s.sort();
            (s[s.len() / 2], *line)
        })
        .collect();
    costs.sort();
    let at = |q: f64| costs[((costs.len() - 1) as f64 * q).round() as usize].0;
    let mean = costs.iter().map(|c| c.0).sum::<Duration>() / costs.len() as u32;
    println!(
        "per-line classification cost over {} corpus lines ({ROUNDS} rounds):",
        costs.len()
    );
    println!("  mean   {mean:?}");
    println!("  median {:?}", at(0.50));
    println!("  p90    {:?}", at(0.90));
    println!("  p99    {:?}", at(0.99));
    if let Some((max, line)) = costs.last() {
        println!("  max    {max:?}  ({line})");
    }
}

fn benches(c: &mut Criterion, lines: &[&str]) {
    let ctx = ClassifyContext::default();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(50);
    let default = match LoadedPolicy::embedded() {
        Ok(p) => p,
        Err(e) => panic!("embedded policy must load: {e}"),
    };
    group.bench_function("corpus/default-policy", |b| {
        b.iter(|| classify_all(&default, lines, &ctx))
    });
    for n in [10usize, 100, 1000] {
        let p = policy_with_rules(n);
        group.bench_function(format!("corpus/{n}-user-rules"), |b| {
            b.iter(|| classify_all(&p, lines, &ctx))
        });
    }
    group.finish();

    c.bench_function("policy/load-embedded", |b| {
        b.iter(|| black_box(LoadedPolicy::embedded().ok()))
    });
}

fn main() {
    let lines = corpus();
    assert!(lines.len() >= 200, "the corpus has {} lines", lines.len());
    if std::env::args().any(|a| a == "--bench") {
        match LoadedPolicy::embedded() {
            Ok(p) => per_line_report(&p, &lines),
            Err(e) => panic!("embedded policy must load: {e}"),
        }
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &lines);
    c.final_summary();
}
