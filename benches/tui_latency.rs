//! Keypress to frame in the real terminal loop, on a big log, while
//! another process appends to it: the loop runs headless (ratatui's
//! `TestBackend`, 160×48) with keys fed through a channel, the example
//! plans as files, a log of 1,000,000 events (20,000 under `cargo test`),
//! and a writer appending an event every 10 ms throughout, so the TUI
//! reloads (through its worker and the incremental ledger cache) while
//! keys arrive.
//!
//! For each key: the time from sending it to the end of the first frame
//! drawn after the loop took it. Also the longest gap between two frames,
//! and, for comparison, what one reload costs when the whole log is folded
//! again (what the terminal loop did on every append before the worker).
//!
//! `cargo bench --bench tui_latency`; `OPSGATE_BENCH_EVENTS=N` sets the
//! log's size.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use opsgate::app::App;
use opsgate::audit::{AuditLog, Event as Record, Sealer, Status};
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::redact::Redactor;
use opsgate::tui::app::{Input, Loop, Options};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn record(i: u64) -> Record {
    Record::StepFinished {
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

/// A log of `n` events, written in batches of 10,000 (one fsync each).
fn big_log(path: &Path, n: u64) -> BenchResult<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let log = AuditLog::open(path, Sealer::Sha256, Redactor::default())?;
    let mut i = 0;
    while i < n {
        let batch: Vec<Record> = (i..(i + 10_000).min(n)).map(record).collect();
        i += batch.len() as u64;
        log.append_with(|_| Ok::<_, opsgate::audit::AuditError>(batch))?;
    }
    Ok(())
}

/// What the loop saw: when each key was sent, how many it has taken, and
/// each frame's end with the keys taken before it.
#[derive(Default)]
struct Seen {
    sent: Vec<Instant>,
    taken: usize,
    frames: Vec<(Instant, usize)>,
}

/// Keys from a channel, as the terminal would give them.
struct Keys {
    rx: mpsc::Receiver<(Event, Instant)>,
    seen: Rc<RefCell<Seen>>,
}

impl Input for Keys {
    fn next(&mut self, wait: Duration) -> std::io::Result<Option<Event>> {
        match self.rx.recv_timeout(wait) {
            Ok((event, sent)) => {
                let mut seen = self.seen.borrow_mut();
                seen.sent.push(sent);
                seen.taken += 1;
                Ok(Some(event))
            }
            Err(_) => Ok(None),
        }
    }
}

fn key(code: KeyCode, modifiers: KeyModifiers) -> Event {
    Event::Key(KeyEvent::new(code, modifiers))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let events: u64 = match std::env::var("OPSGATE_BENCH_EVENTS") {
        Ok(v) => v.parse()?,
        Err(_) if full => 1_000_000,
        Err(_) => 20_000,
    };
    let presses = if full { 400 } else { 20 };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tui-latency-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.jsonl");
    big_log(&path, events)?;
    let policy = LoadedPolicy::embedded()?;
    let files =
        opsgate::app::plans::plan_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("plans"));

    // What one reload cost on the terminal loop before: the whole log
    // folded (and verified) again.
    let t = Instant::now();
    opsgate::tui::load::load_all(
        &policy,
        &path,
        &Sealer::Sha256,
        None,
        &files,
        &Default::default(),
        chrono::Utc::now(),
    )?;
    let full_fold = t.elapsed();

    let log = AuditLog::open(&path, Sealer::Sha256, Redactor::default())?;
    let app = App::long_lived(policy, log, Sealer::Sha256);
    let t = Instant::now();
    let mut looped = Loop::start(Options {
        user: opsgate::core::identity::Actor::claimed("bench"),
        files,
        app,
    })?;
    let first_load = t.elapsed();

    // Another process appends an event every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (Arc::clone(&stop), path.clone());
        std::thread::spawn(move || -> Result<u64, String> {
            let log = AuditLog::open(&path, Sealer::Sha256, Redactor::default())
                .map_err(|e| e.to_string())?;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                log.append(record(n)).map_err(|e| e.to_string())?;
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(n)
        })
    };
    // Keys every 25 ms (down and up the plans), then Ctrl-C.
    let (tx, rx) = mpsc::channel();
    let typist = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..presses {
            let code = if i % 2 == 0 {
                KeyCode::Down
            } else {
                KeyCode::Up
            };
            let _ = tx.send((key(code, KeyModifiers::NONE), Instant::now()));
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = tx.send((
            key(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Instant::now(),
        ));
    });
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut keys = Keys {
        rx,
        seen: Rc::clone(&seen),
    };
    let mut terminal = Terminal::new(TestBackend::new(160, 48))?;
    let started = Instant::now();
    looped.run(&mut terminal, &mut keys, |_| {
        let mut s = seen.borrow_mut();
        let taken = s.taken;
        s.frames.push((Instant::now(), taken));
    })?;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let appended = writer.join().map_err(|_| "the writer panicked")??;
    typist.join().map_err(|_| "the typist panicked")?;

    let seen = seen.borrow();
    // Key k (0-based) shows in the first frame drawn after k + 1 keys were
    // taken; the last key (Ctrl-C) quits and draws nothing.
    let mut latencies: Vec<Duration> = (0..presses)
        .filter_map(|k| {
            let sent = seen.sent.get(k)?;
            let (at, _) = seen.frames.iter().find(|(_, taken)| *taken > k)?;
            Some(at.duration_since(*sent))
        })
        .collect();
    if latencies.len() != presses {
        return Err(format!("{} of {presses} keys reached a frame", latencies.len()).into());
    }
    latencies.sort();
    let max_gap = seen
        .frames
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
        .unwrap_or_default();
    println!(
        "TUI on a {events}-event log ({:.0} MB), another process appending every 10 ms ({appended} appended):",
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );
    println!(
        "  keypress to frame, {presses} keys: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: p99 <= 50 ms)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "  frames: {} in {:.1} s, longest gap {:.1} ms (goal: <= 100 ms)",
        seen.frames.len(),
        elapsed.as_secs_f64(),
        ms(max_gap)
    );
    println!(
        "  first load through the ledger cache {:.0} ms; one reload folding the whole log (the old way, per append) {:.0} ms",
        ms(first_load),
        ms(full_fold)
    );
    Ok(())
}
