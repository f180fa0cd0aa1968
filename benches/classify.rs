//! Classification speed.
//!
//! `cargo bench --bench classify` runs three things:
//! - a per-line report: every line of `benches/corpus.txt` (200+ mixed
//!   lines) and of the documentation corpus `tests/corpus/*.txt` (1,100
//!   lines) is classified 300 times, round-robin, and the median and p99 of
//!   the per-line cost are printed;
//! - the same report for a baseline: one `RegexSet` scan of each line
//!   against patterns made from the rule table (what a regex-list
//!   classifier, the kind that misses compound lines, costs), and our
//!   median as a ratio to it;
//! - criterion benchmarks of the whole corpus under the default policy and
//!   with 10, 100 and 1,000 extra user rules, to show how the cost grows
//!   with the rule count.
//!
//! Under `cargo test --benches` only the criterion functions run, once each.
//!
//! Environment: `OPSGATE_BENCH_NO_BASELINE=1` reports the classifier alone
//! on both corpora (for a profiler), `OPSGATE_BENCH_TOP=N` lists the N
//! slowest lines, `OPSGATE_BENCH_LINES=FILE` reports on FILE's lines only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use opsgate::core::classify::ClassifyContext;
use opsgate::core::policy::LoadedPolicy;

const CORPUS: &str = include_str!("corpus.txt");

fn corpus() -> Vec<&'static str> {
    CORPUS.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The command lines of `tests/corpus/*.txt` (`LEVEL<TAB>line`).
fn documentation_corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    let mut lines = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "txt"))
    {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        for l in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            if let Some((_, line)) = l.split_once('\t') {
                lines.push(line.to_owned());
            }
        }
    }
    lines
}

/// The baseline: a `RegexSet` of one pattern per rule of the built-in
/// table (the program, then its subcommand words, then the rule's own
/// regex), scanned once over each line. This is what a regex-list
/// classifier costs; it does not parse the line, so it misses compound
/// lines, wrappers and quoting.
fn baseline_set() -> regex::RegexSet {
    let pack = match opsgate::core::policy::builtin_pack() {
        Ok(p) => p,
        Err(e) => panic!("built-in rules must load: {e}"),
    };
    let word = |w: &str| {
        if w == "*" {
            r"\S+".to_owned()
        } else {
            regex::escape(w)
                .replace(r"\*", r"\S*")
                .replace(r"\?", r"\S")
        }
    };
    let mut patterns = Vec::new();
    for r in &pack.rules {
        for program in r.program.iter() {
            let mut subs: Vec<String> = r.subcommand.iter().map(str::to_owned).collect();
            if subs.is_empty() {
                subs.push(String::new());
            }
            for sub in subs {
                let mut p = format!(r"(^|[\s;|&(]){}", word(program));
                for w in sub.split_whitespace() {
                    p.push_str(&format!(r"\s+(\S+\s+)*?{}", word(w)));
                }
                if let Some(re) = &r.regex {
                    p.push_str(&format!(
                        r"(\s|\S)*?(?:{})",
                        re.as_str().replace("(?m)", "")
                    ));
                }
                patterns.push(p);
            }
        }
    }
    match regex::RegexSetBuilder::new(&patterns)
        .size_limit(1 << 28)
        .dfa_size_limit(1 << 28)
        .build()
    {
        Ok(s) => s,
        Err(e) => panic!("baseline patterns must compile: {e}"),
    }
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

/// Per-line cost of `f` over `lines`: each line timed `ROUNDS` times,
/// round-robin; a line's cost is the median of its timings. Returns the
/// per-line costs, sorted.
fn per_line_costs<'l>(lines: &[&'l str], mut f: impl FnMut(&str)) -> Vec<(Duration, &'l str)> {
    const ROUNDS: usize = 300;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); lines.len()];
    for _ in 0..ROUNDS {
        for (i, line) in lines.iter().enumerate() {
            let start = Instant::now();
            f(black_box(line));
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
    costs
}

fn quantile(costs: &[(Duration, &str)], q: f64) -> Duration {
    costs[((costs.len() - 1) as f64 * q).round() as usize].0
}

/// The classifier against the regex-set baseline on one corpus.
fn versus_baseline(name: &str, policy: &LoadedPolicy, set: &regex::RegexSet, lines: &[&str]) {
    let ctx = ClassifyContext::default();
    let ours = per_line_costs(lines, |l| {
        black_box(policy.rules.classify(l, &ctx).ok());
    });
    let base = per_line_costs(lines, |l| {
        black_box(set.matches(l).matched_any());
    });
    let (om, op, bm, bp) = (
        quantile(&ours, 0.5),
        quantile(&ours, 0.99),
        quantile(&base, 0.5),
        quantile(&base, 0.99),
    );
    println!("{name}: {} lines", lines.len());
    println!("  opsgate   median {om:?}  p99 {op:?}");
    println!(
        "  baseline  median {bm:?}  p99 {bp:?}  ({} patterns in one RegexSet)",
        set.len()
    );
    println!(
        "  ratio (opsgate / baseline): median {:.2}x  p99 {:.2}x",
        om.as_secs_f64() / bm.as_secs_f64(),
        op.as_secs_f64() / bp.as_secs_f64()
    );
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
    let costs = per_line_costs(lines, |l| {
        black_box(policy.rules.classify(l, &ctx).ok());
    });
    let at = |q: f64| quantile(&costs, q);
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
    // `OPSGATE_BENCH_TOP=N`: the N slowest lines, to see where the tail is.
    let top = std::env::var("OPSGATE_BENCH_TOP")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    for (cost, line) in costs.iter().rev().take(top) {
        println!("    {cost:>10.3?}  {line}");
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
    // `OPSGATE_BENCH_LINES=FILE`: these lines instead (to profile a few).
    let custom =
        std::env::var("OPSGATE_BENCH_LINES")
            .ok()
            .map(|p| match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => panic!("{p}: {e}"),
            });
    let lines: Vec<&str> = match &custom {
        Some(t) => t.lines().filter(|l| !l.trim().is_empty()).collect(),
        None => corpus(),
    };
    if custom.is_some() {
        let policy = match LoadedPolicy::embedded() {
            Ok(p) => p,
            Err(e) => panic!("embedded policy must load: {e}"),
        };
        per_line_report(&policy, &lines);
        return;
    }
    assert!(lines.len() >= 200, "the corpus has {} lines", lines.len());
    if std::env::args().any(|a| a == "--bench") {
        let policy = match LoadedPolicy::embedded() {
            Ok(p) => p,
            Err(e) => panic!("embedded policy must load: {e}"),
        };
        per_line_report(&policy, &lines);
        let docs = documentation_corpus();
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        // `OPSGATE_BENCH_NO_BASELINE=1`: the classifier alone on both
        // corpora (for a profiler).
        if std::env::var_os("OPSGATE_BENCH_NO_BASELINE").is_some() {
            per_line_report(&policy, &docs);
            return;
        }
        let set = baseline_set();
        versus_baseline("benches/corpus.txt", &policy, &set, &lines);
        versus_baseline("tests/corpus (documentation corpus)", &policy, &set, &docs);
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &lines);
    c.final_summary();
}
