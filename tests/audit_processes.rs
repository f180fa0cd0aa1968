//! The audit log across processes: appenders SIGKILLed at random moments,
//! torn tails, several processes and threads appending at once, and a
//! follower reading what another process appends.
//!
//! The child processes are this test binary itself, run again with the
//! ignored `child_appender` test as its only test. A child prints
//! `ack <seq> <tag>` once each append has returned, i.e. is durable.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken setup should stop the test loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opsgate::audit::read::Follower;
use opsgate::audit::verify::{ProblemKind, Report, verify_file};
use opsgate::audit::{AuditLog, Event, Record, Sealer, Status};
use opsgate::core::redact::Redactor;

/// The child's environment: the log, the tag prefix, the number of
/// appends (0: until killed).
const ENV_LOG: &str = "OPSGATE_TEST_CHILD_LOG";
const ENV_PREFIX: &str = "OPSGATE_TEST_CHILD_PREFIX";
const ENV_COUNT: &str = "OPSGATE_TEST_CHILD_COUNT";
/// The line a child prints once its log is open, before its first append.
const STARTED: &str = "child-appender-started";
/// Overrides the crash test's kill delays: decimal, or hex with `0x`.
const SEED_ENV: &str = "OPSGATE_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x0005_eed0_c0ff_ee42;
const SIGKILL: i32 = 9;
/// How long any child may take before the test gives up on it.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The child process.

#[test]
#[ignore = "child process for the crash and concurrency tests"]
fn child_appender() {
    let (Some(log), Ok(prefix), Ok(count)) = (
        std::env::var_os(ENV_LOG),
        std::env::var(ENV_PREFIX),
        std::env::var(ENV_COUNT),
    ) else {
        panic!(
            "child_appender is the entry point of the child processes started by the other \
             tests of tests/audit_processes.rs, not a test of its own: it needs {ENV_LOG}, \
             {ENV_PREFIX} and {ENV_COUNT}"
        );
    };
    let count: u64 = count
        .parse()
        .unwrap_or_else(|e| panic!("{ENV_COUNT}=`{count}`: {e}"));
    let log = open_log(Path::new(&log));
    // Compile the redaction patterns now (tens of ms in a debug build), so
    // the crash test's kills land among appends rather than before them.
    tagged(&prefix, 0).0.redact(&Redactor::default());
    let mut out = std::io::stdout();
    // libtest may have printed `test child_appender ... ` without a newline.
    out.write_all(format!("\n{STARTED}\n").as_bytes()).unwrap();
    out.flush().unwrap();
    let mut i = 0;
    while count == 0 || i < count {
        let (event, tag) = tagged(&prefix, i);
        let done = log
            .append(event)
            .unwrap_or_else(|e| panic!("append {tag}: {e}"));
        // One write per ack: the parent ignores a line the kill cut short.
        out.write_all(format!("ack {} {tag}\n", done.seq).as_bytes())
            .unwrap();
        out.flush().unwrap();
        i += 1;
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn open_log(path: &Path) -> AuditLog {
    AuditLog::open(path, Sealer::Sha256, Redactor::default()).expect("open the audit log")
}

/// Event `i` of an appender, and its tag (`<prefix>-<i>`, the step output).
fn tagged(prefix: &str, i: u64) -> (Event, String) {
    let tag = format!("{prefix}-{i}");
    let event = Event::StepFinished {
        plan_id: "audit-processes".into(),
        run_id: prefix.into(),
        step: u32::try_from(i).unwrap_or(u32::MAX),
        name: "append".into(),
        action: "true".into(),
        status: Status::Succeeded,
        exit_code: Some(0),
        duration_seconds: 0.0,
        output: tag.clone(),
    };
    (event, tag)
}

/// The tag of a record written by [`tagged`].
fn tag_of(record: &Record) -> Option<&str> {
    match &record.event {
        Event::StepFinished {
            plan_id, output, ..
        } if plan_id == "audit-processes" => Some(output),
        _ => None,
    }
}

/// Every record of a log that has no torn tail.
fn read_records(path: &Path) -> Vec<Record> {
    let bytes = fs::read(path).expect("read the log");
    let Some(body) = bytes.strip_suffix(b"\n") else {
        assert!(bytes.is_empty(), "the log does not end with a newline");
        return Vec::new();
    };
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "line {} is not a record: {e}: {}",
                    i + 1,
                    String::from_utf8_lossy(line)
                )
            })
        })
        .collect()
}

/// Asserts that the records are numbered 1, 2, 3, … and chained.
fn assert_contiguous(records: &[Record]) {
    let mut prev: Option<&Record> = None;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "record {} has seq {}", i + 1, r.seq);
        if let Some(p) = prev {
            assert_eq!(
                r.prev, p.hash,
                "seq {} does not chain onto seq {}",
                r.seq, p.seq
            );
        }
        prev = Some(r);
    }
}

fn verify(path: &Path) -> Report {
    verify_file(path, &Sealer::Sha256, None).expect("read the log to verify it")
}

/// Asserts the log verifies, after at most one `repair()` of a torn tail;
/// returns the report and whether a repair was needed.
fn verify_after_at_most_one_repair(path: &Path) -> (Report, bool) {
    let report = verify(path);
    if report.ok {
        return (report, false);
    }
    let problem = report.problem.expect("a failed report names its problem");
    assert_eq!(
        problem.kind,
        ProblemKind::TornTail,
        "the log is damaged beyond a torn tail: {problem}"
    );
    let repaired = open_log(path).repair().expect("repair the torn tail");
    assert!(
        repaired.is_some(),
        "verify saw a torn tail, repair() did not"
    );
    let report = verify(path);
    assert!(
        report.ok,
        "the log does not verify after one repair: {report:?}"
    );
    (report, true)
}

/// The files a repair moved torn tails of `log` to.
fn torn_files(log: &Path) -> Vec<PathBuf> {
    let dir = log.parent().expect("the log is in a directory");
    let prefix = format!(
        "{}.torn-",
        log.file_name()
            .expect("the log has a file name")
            .to_string_lossy()
    );
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the log's directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    files.sort();
    files
}

/// Appends `bytes` to the file as a crashed writer would have: no lock, no
/// newline.
fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log to tear it");
    f.write_all(bytes).expect("write the torn bytes");
}

/// The first half of the last line of `path`: a record cut short.
fn half_of_last_line(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).expect("read the log");
    let body = bytes.strip_suffix(b"\n").expect("a complete last line");
    let last = body
        .rsplit(|b| *b == b'\n')
        .next()
        .expect("the log has a line");
    last[..last.len() / 2].to_vec()
}

/// A child that is killed and reaped when dropped, whatever the test did.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Fails only when the child was already reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a child printed.
#[derive(Debug, Default)]
struct ChildOutput {
    /// `(seq, tag)` of every complete `ack` line, in order.
    acks: Vec<(u64, String)>,
    /// `ack` lines that do not parse.
    malformed: Vec<String>,
}

/// A running child appender and the thread reading its stdout.
struct Spawned {
    child: ChildGuard,
    started: Receiver<()>,
    reader: Option<JoinHandle<ChildOutput>>,
}

fn spawn_child(log: &Path, prefix: &str, count: u64) -> Spawned {
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args([
            "--exact",
            "child_appender",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_LOG, log)
        .env(ENV_PREFIX, prefix)
        .env(ENV_COUNT, count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a child appender");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || read_child(stdout, &tx));
    Spawned {
        child,
        started: rx,
        reader: Some(reader),
    }
}

/// Reads a child's stdout to its end: the start line and the acks. Lines
/// from libtest are ignored; so is a last line without its newline.
fn read_child(stdout: ChildStdout, started: &Sender<()>) -> ChildOutput {
    let mut out = ChildOutput::default();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Some(text) = line.strip_suffix(b"\n") else {
            break;
        };
        let text = String::from_utf8_lossy(text);
        if text == STARTED {
            // The receiver may be gone; only the acks matter then.
            let _ = started.send(());
            continue;
        }
        let Some(rest) = text.strip_prefix("ack ") else {
            continue;
        };
        let parsed = rest
            .split_once(' ')
            .and_then(|(seq, tag)| Some((seq.parse().ok()?, tag.to_owned())));
        match parsed {
            Some(ack) => out.acks.push(ack),
            None => out.malformed.push(text.into_owned()),
        }
    }
    out
}

impl Spawned {
    fn wait_started(&self, what: &str) {
        if let Err(e) = self.started.recv_timeout(CHILD_DEADLINE) {
            panic!("{what} did not start appending: {e}");
        }
    }

    /// SIGKILLs the child; its exit status and what it printed.
    fn kill(mut self) -> (ExitStatus, ChildOutput) {
        self.child.0.kill().expect("SIGKILL the child");
        let status = self.child.0.wait().expect("reap the child");
        (status, self.join_reader())
    }

    /// Whether the child has exited, without blocking.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.0.try_wait().expect("poll the child")
    }

    fn join_reader(&mut self) -> ChildOutput {
        self.reader
            .take()
            .expect("the reader is joined once")
            .join()
            .expect("the reader thread does not panic")
    }
}

/// Waits for every child to exit (killing them all if one takes longer
/// than [`CHILD_DEADLINE`]); their exit statuses and outputs.
fn wait_all(mut children: Vec<Spawned>) -> Vec<(ExitStatus, ChildOutput)> {
    let start = Instant::now();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        for (child, status) in children.iter_mut().zip(&mut statuses) {
            if status.is_none() {
                *status = child.try_wait();
            }
        }
        // Dropping `children` on this panic kills them all.
        assert!(
            start.elapsed() < CHILD_DEADLINE,
            "the child appenders did not finish within {CHILD_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    children
        .iter_mut()
        .zip(statuses)
        .map(|(child, status)| (status.expect("every child has exited"), child.join_reader()))
        .collect()
}

/// xorshift64: a fixed-seed source of kill delays.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        XorShift(if seed == 0 { DEFAULT_SEED } else { seed })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn crash_seed() -> u64 {
    let Ok(text) = std::env::var(SEED_ENV) else {
        return DEFAULT_SEED;
    };
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{SEED_ENV}=`{text}` is not a u64: {e}"))
}

// ---------------------------------------------------------------------------
// Crashes.

#[test]
fn acked_appends_survive_sigkill_at_random_moments() {
    const KILLS: usize = 60;
    let seed = crash_seed();
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let started = Instant::now();

    // seq → tag of every append a child acknowledged.
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    for n in 0..KILLS {
        let delay = Duration::from_micros(rng.next() % 15_001);
        let child = spawn_child(&path, &format!("c{n}"), 0);
        child.wait_started(&format!("child {n} (seed {seed:#x})"));
        thread::sleep(delay);
        let (status, out) = child.kill();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "child {n} ended on its own ({status}) instead of being killed after {delay:?} (seed {seed:#x})"
        );
        // As an operator would after a crash: appends refuse a torn tail
        // until `opsgate audit repair` mends it.
        open_log(&path)
            .repair()
            .unwrap_or_else(|e| panic!("repair after child {n} (seed {seed:#x}): {e}"));
        assert!(
            out.malformed.is_empty(),
            "child {n} printed malformed acks: {:?}",
            out.malformed
        );
        let mut last = 0;
        for (seq, tag) in out.acks {
            assert!(
                seq > last,
                "child {n} acked seq {seq} after seq {last} (seed {seed:#x})"
            );
            last = seq;
            if let Some(other) = acked.insert(seq, tag.clone()) {
                panic!("seq {seq} was acked twice, as {other} and as {tag} (seed {seed:#x})");
            }
        }
    }
    assert!(
        !acked.is_empty(),
        "no child acknowledged an append before its kill (seed {seed:#x})"
    );

    let (report, repaired) = verify_after_at_most_one_repair(&path);
    let records = read_records(&path);
    assert_contiguous(&records);
    assert_eq!(report.events, records.len() as u64);
    assert_eq!(
        report.head.as_ref().map(|h| (h.seq, h.hash.as_str())),
        records.last().map(|r| (r.seq, r.hash.as_str()))
    );
    for (seq, tag) in &acked {
        let record = records
            .get(usize::try_from(*seq).unwrap() - 1)
            .unwrap_or_else(|| {
                panic!(
                    "acked seq {seq} ({tag}) is missing: the log ends at seq {} (seed {seed:#x})",
                    records.len()
                )
            });
        assert_eq!(
            tag_of(record),
            Some(tag.as_str()),
            "acked seq {seq} holds {:?}, not {tag} (seed {seed:#x})",
            record.event
        );
    }

    // Each child's events are in the log in its order, none lost before a
    // later one, none twice; every repair kept the bytes it moved aside.
    let mut per_child: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut repairs = 0;
    for r in &records {
        if let Some(tag) = tag_of(r) {
            let (child, i) = tag
                .strip_prefix('c')
                .and_then(|t| t.split_once('-'))
                .and_then(|(c, i)| Some((c.parse().ok()?, i.parse().ok()?)))
                .unwrap_or_else(|| panic!("seq {}: unexpected tag {tag}", r.seq));
            per_child.entry(child).or_default().push(i);
        } else if let Event::LogRepaired {
            torn_bytes,
            moved_to,
            ..
        } = &r.event
        {
            repairs += 1;
            let aside = dir.path().join(moved_to);
            let len = fs::metadata(&aside)
                .unwrap_or_else(|e| panic!("seq {}: {}: {e}", r.seq, aside.display()))
                .len();
            assert_eq!(len, *torn_bytes, "seq {}: {}", r.seq, aside.display());
        } else {
            panic!("seq {} is not a child's event: {:?}", r.seq, r.event);
        }
    }
    for (child, indices) in &per_child {
        let expected: Vec<u64> = (0..indices.len() as u64).collect();
        assert_eq!(
            indices, &expected,
            "child {child}'s events in the log (seed {seed:#x})"
        );
    }
    eprintln!(
        "{KILLS} kills (seed {seed:#x}): {} acked of {} records, {repairs} log_repaired, \
         {} torn file(s), final repair needed: {repaired}, in {:?}",
        acked.len(),
        records.len(),
        torn_files(&path).len(),
        started.elapsed()
    );
}

#[test]
fn a_torn_tail_refuses_appends_until_repair_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let log = open_log(&path);
        for i in 0..3 {
            log.append(tagged("before", i).0).unwrap();
        }
    }
    let whole = fs::read(&path).unwrap();
    let torn = half_of_last_line(&path);
    assert!(!torn.is_empty() && !torn.contains(&b'\n'));
    append_raw(&path, &torn);
    let torn_at = whole.len() as u64;

    let report = verify(&path);
    let problem = report.problem.as_ref().expect("verify sees the torn tail");
    assert!(!report.ok);
    assert_eq!(problem.kind, ProblemKind::TornTail);
    assert_eq!(problem.offset, torn_at);
    assert_eq!(report.events, 3);

    // A new process may not append: repair is an operator's act
    // (`opsgate audit repair`), never a side effect of an append.
    let log = open_log(&path);
    let (event, tag) = tagged("after", 0);
    let refused = log.append(event.clone()).unwrap_err();
    assert!(
        matches!(refused, opsgate::audit::AuditError::TornTail { offset, .. } if offset == torn_at),
        "{refused}"
    );
    assert_eq!(
        fs::read(&path).unwrap().len() as u64,
        torn_at + torn.len() as u64
    );
    let repaired = log.repair().unwrap().expect("a torn tail to repair");
    assert_eq!(repaired.seq, 4, "seq 4 is the log_repaired record");
    let done = log.append(event).unwrap();
    assert_eq!(done.seq, 5);

    let aside = torn_files(&path);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read(&aside[0]).unwrap(), torn);

    let bytes = fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(&whole),
        "the complete records are untouched"
    );
    let records = read_records(&path);
    assert_eq!(records.len(), 5);
    assert_contiguous(&records);
    match &records[3].event {
        Event::LogRepaired {
            offset,
            torn_bytes,
            moved_to,
            newline_restored,
        } => {
            assert!(!newline_restored, "half a record is not a record");
            assert_eq!(*offset, torn_at);
            assert_eq!(*torn_bytes, torn.len() as u64);
            assert_eq!(
                Some(moved_to.as_str()),
                aside[0].file_name().and_then(|n| n.to_str())
            );
        }
        other => panic!("seq 4 is {other:?}, not log_repaired"),
    }
    assert_eq!(tag_of(&records[4]), Some(tag.as_str()));
    assert_eq!(records[4].hash, done.hash);
    assert_eq!(
        done.offset,
        torn_at
            + bytes[usize::try_from(torn_at).unwrap()..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap() as u64
            + 1,
        "the new event starts right after log_repaired"
    );

    let report = verify(&path);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 5);
    assert_eq!(report.head.map(|h| h.seq), Some(5));
}

#[test]
fn repair_moves_a_torn_tail_aside_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open_log(&path);
    for i in 0..2 {
        log.append(tagged("r", i).0).unwrap();
    }
    assert_eq!(log.repair().unwrap(), None, "nothing to repair");
    assert!(torn_files(&path).is_empty());

    // Torn behind the back of this very log, whose cached tail is stale.
    let torn_at = fs::metadata(&path).unwrap().len();
    let torn = half_of_last_line(&path);
    append_raw(&path, &torn);
    let repaired = log.repair().unwrap().expect("a torn tail to repair");
    assert_eq!(repaired.seq, 3);
    assert_eq!(repaired.offset, torn_at);
    assert_eq!(log.repair().unwrap(), None, "repaired once is enough");

    let aside = torn_files(&path);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read(&aside[0]).unwrap(), torn);
    let records = read_records(&path);
    assert_eq!(records.len(), 3);
    assert_contiguous(&records);
    assert!(
        matches!(
            &records[2].event,
            Event::LogRepaired { offset, torn_bytes, .. }
                if *offset == torn_at && *torn_bytes == torn.len() as u64
        ),
        "{:?}",
        records[2].event
    );
    let (report, repaired_again) = verify_after_at_most_one_repair(&path);
    assert!(!repaired_again);
    assert_eq!(report.events, 3);
}

// ---------------------------------------------------------------------------
// Concurrency.

#[test]
fn four_processes_append_to_one_log_without_losing_or_forking() {
    const CHILDREN: usize = 4;
    const EACH: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let started = Instant::now();

    let children: Vec<Spawned> = (0..CHILDREN)
        .map(|k| spawn_child(&path, &format!("p{k}"), EACH))
        .collect();
    let outputs = wait_all(children);
    let elapsed = started.elapsed();

    let records = read_records(&path);
    assert_eq!(records.len() as u64, CHILDREN as u64 * EACH);
    assert_contiguous(&records);
    let report = verify(&path);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, CHILDREN as u64 * EACH);
    assert_eq!(
        report.head.map(|h| (h.seq, h.hash)),
        records.last().map(|r| (r.seq, r.hash.clone()))
    );

    for (k, (status, out)) in outputs.into_iter().enumerate() {
        assert!(status.success(), "child p{k} failed: {status}");
        assert!(out.malformed.is_empty(), "{:?}", out.malformed);
        let prefix = format!("p{k}-");
        let expected: Vec<String> = (0..EACH).map(|i| format!("p{k}-{i}")).collect();
        let acked: Vec<&str> = out.acks.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(acked, expected, "child p{k}'s acks");
        // In the log, in the child's own order, at the acked seqs.
        let in_log: Vec<(u64, &str)> = records
            .iter()
            .filter_map(|r| Some((r.seq, tag_of(r)?)))
            .filter(|(_, t)| t.starts_with(&prefix))
            .collect();
        let acks: Vec<(u64, &str)> = out.acks.iter().map(|(s, t)| (*s, t.as_str())).collect();
        assert_eq!(in_log, acks, "child p{k}'s events in the log");
    }
    eprintln!(
        "{CHILDREN} processes x {EACH} appends in {elapsed:?} ({:?} per append)",
        elapsed / u32::try_from(CHILDREN as u64 * EACH).unwrap()
    );
}

#[test]
fn sixteen_threads_share_one_log() {
    const THREADS: u64 = 16;
    const EACH: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open_log(&path);
    let started = Instant::now();

    let per_thread: Vec<Vec<(u64, String)>> = thread::scope(|s| {
        let log = &log;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let (event, tag) = tagged(&format!("t{t}"), i);
                            (log.append(event).unwrap().seq, tag)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();

    let records = read_records(&path);
    assert_eq!(records.len() as u64, THREADS * EACH);
    assert_contiguous(&records);
    let report = verify(&path);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, THREADS * EACH);

    let mut seqs = BTreeSet::new();
    for (t, appended) in per_thread.iter().enumerate() {
        assert_eq!(appended.len() as u64, EACH);
        assert!(
            appended.windows(2).all(|w| w[0].0 < w[1].0),
            "thread {t}'s seqs are not increasing"
        );
        for (seq, tag) in appended {
            assert!(seqs.insert(*seq), "seq {seq} returned twice");
            let record = &records[usize::try_from(*seq).unwrap() - 1];
            assert_eq!(tag_of(record), Some(tag.as_str()), "seq {seq}");
        }
    }
    assert_eq!(seqs, (1..=THREADS * EACH).collect());
    eprintln!(
        "{THREADS} threads x {EACH} appends in {elapsed:?} ({:?} per append)",
        elapsed / u32::try_from(THREADS * EACH).unwrap()
    );
}

// ---------------------------------------------------------------------------
// Following.

#[test]
fn a_follower_picks_up_what_another_process_appends() {
    const EACH: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = open_log(&path);
    let (event, first_tag) = tagged("here", 0);
    log.append(event).unwrap();

    let mut follower = Follower::new(&path, 0).unwrap();
    let lines = follower.poll().unwrap();
    assert_eq!(lines.len(), 1);
    let first: Record = serde_json::from_slice(&lines[0]).unwrap();
    assert_eq!(tag_of(&first), Some(first_tag.as_str()));
    assert!(follower.poll().unwrap().is_empty(), "nothing new yet");

    // Another process appends while we poll.
    let child = spawn_child(&path, "f", EACH);
    let deadline = Instant::now() + CHILD_DEADLINE;
    let mut seen: Vec<Record> = Vec::new();
    while (seen.len() as u64) < EACH {
        assert!(
            Instant::now() < deadline,
            "the follower saw {} of {EACH} lines",
            seen.len()
        );
        for line in follower.poll().unwrap() {
            seen.push(serde_json::from_slice(&line).unwrap_or_else(|e| {
                panic!(
                    "the follower returned a partial or bad line: {e}: {}",
                    String::from_utf8_lossy(&line)
                )
            }));
        }
        thread::sleep(Duration::from_millis(1));
    }
    let (status, out) = wait_all(vec![child]).pop().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(out.acks.len() as u64, EACH);
    let seen_tags: Vec<(u64, &str)> = seen
        .iter()
        .map(|r| (r.seq, tag_of(r).unwrap_or("?")))
        .collect();
    let acked: Vec<(u64, &str)> = out.acks.iter().map(|(s, t)| (*s, t.as_str())).collect();
    assert_eq!(seen_tags, acked);
    assert_eq!(seen.first().map(|r| r.seq), Some(2));
    assert!(follower.poll().unwrap().is_empty(), "nothing more");
    assert_eq!(follower.offset(), fs::metadata(&path).unwrap().len());

    // A torn tail is not a line; after the repair, the follower goes on.
    let offset = follower.offset();
    append_raw(&path, &half_of_last_line(&path));
    assert!(
        follower.poll().unwrap().is_empty(),
        "a torn tail is no line"
    );
    assert_eq!(follower.offset(), offset);
    let (event, tag) = tagged("here", 1);
    log.repair().unwrap().expect("a torn tail to repair");
    log.append(event).unwrap();
    let lines = follower.poll().unwrap();
    let kinds: Vec<(u64, String)> = lines
        .iter()
        .map(|l| {
            let r: Record = serde_json::from_slice(l).unwrap();
            (r.seq, tag_of(&r).unwrap_or(r.event.kind()).to_owned())
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EACH + 2, "log_repaired".to_owned()),
            (EACH + 3, tag.clone())
        ]
    );
}
