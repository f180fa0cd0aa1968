//! `run ID --resume` after the engine died mid-step, and
//! `rollback.on_error: continue`, through the binary with real processes.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.jsonl");
        Env { dir, log }
    }

    fn cmd(&self) -> Command {
        common::opsgate_command(&self.log, None)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .cmd()
            .args(common::with_reviewed_hash(&self.log, args))
            .output()
            .expect("opsgate runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a plan, with `DIR` replaced by the temp dir; submits it as
    /// `author` and approves it as `alice`.
    fn approved_plan(&self, yaml: &str) -> PathBuf {
        let file = self.path("plan.yaml");
        let dir = self.dir.path().to_str().expect("UTF-8 path");
        std::fs::write(&file, yaml.replace("DIR", dir)).expect("plan written");
        let f = file.to_str().expect("UTF-8 path");
        self.ok(&["submit", "--as", "author", f]);
        self.ok(&["approve", "p", "--as", "alice"]);
        file
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON record"))
            .collect()
    }
}

fn wait_for(path: &Path, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn kill_pid_file(path: &Path) {
    if let Ok(pid) = std::fs::read_to_string(path) {
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    }
}

const RESUMABLE: &str = r"
id: p
title: resumable
author: author
steps:
  - name: one
    run: touch DIR/one
    rollback: {run: rm -f DIR/one}
  - name: two
    run: 'echo $$ > DIR/two.pid; test -f DIR/go || sleep 300; touch DIR/two'
    timeout: 10m
    rollback: {run: rm -f DIR/two}
  - name: three
    run: touch DIR/three
    rollback: {run: rm -f DIR/three}
";

#[test]
fn an_interrupted_run_resumes_at_the_step_it_was_in() {
    let env = Env::new();
    env.approved_plan(RESUMABLE);
    let mut child = env
        .cmd()
        .args(["run", "p"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let first = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .next()
        .expect("a first line")
        .expect("UTF-8");
    let run_id = first
        .split_whitespace()
        .nth(1)
        .expect("run id")
        .trim_end_matches(':')
        .to_owned();
    let started = wait_for(&env.path("two.pid"), Duration::from_secs(20));
    // The engine dies mid-step; its step's shell is killed by hand.
    child.kill().expect("kill the engine");
    child.wait().expect("reaped");
    kill_pid_file(&env.path("two.pid"));
    assert!(started, "step two never started");

    let s: Value = serde_json::from_str(&env.ok(&["status", "p", "--json"])).expect("JSON");
    assert_eq!(s["status"], "interrupted", "{s}");
    assert_eq!(s["runs"][0]["interrupted_at"], 2, "{s}");
    let (code, _, err) = env.run(&["run", "p"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--resume"), "{err}");

    std::fs::write(env.path("go"), "").expect("go");
    let out = env.ok(&["run", "p", "--resume"]);
    assert!(!out.contains("Step 1/3"), "step one ran again: {out}");
    assert!(
        out.contains("Step 2/3") && out.contains("Step 3/3"),
        "{out}"
    );
    assert!(env.path("two").exists() && env.path("three").exists());
    assert_eq!(
        serde_json::from_str::<Value>(&env.ok(&["status", "p", "--json"])).expect("JSON")["status"],
        "succeeded"
    );

    // The interrupted run was closed as interrupted before the new one.
    let recs = env.records();
    let closed = recs
        .iter()
        .position(|r| r["type"] == "run_finished" && r["run_id"] == run_id.as_str())
        .expect("the interrupted run is closed");
    assert_eq!(recs[closed]["status"], "interrupted");
    assert_eq!(recs[closed + 1]["type"], "run_started");
    let (code, _, err) = env.run(&["run", "p", "--resume"]);
    assert_eq!(code, 3, "nothing left to resume: {err}");
    env.ok(&["audit", "verify"]);
}

#[test]
fn rollback_on_error_continue_runs_every_rollback_step() {
    let env = Env::new();
    env.approved_plan(
        r"
id: p
title: continue
author: author
steps:
  - name: one
    run: touch DIR/one
  - name: two
    run: exit 4
rollback:
  on_error: continue
  steps:
    - {name: first undo, run: 'exit 1'}
    - {name: second undo, run: 'rm -f DIR/one'}
",
    );
    let (code, out, err) = env.run(&["run", "p", "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(out.contains("rollback failed"), "{out}");
    assert!(
        !env.path("one").exists(),
        "the second undo ran after the first failed"
    );
    let statuses: Vec<(String, String)> = env
        .records()
        .iter()
        .filter(|r| r["type"] == "rollback_step_finished")
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("first undo".to_owned(), "failed".to_owned()),
            ("second undo".to_owned(), "succeeded".to_owned())
        ]
    );
    // Write-ahead: the rollback's commands were on record, in order, before
    // the first of them ran.
    let records = env.records();
    let started = records
        .iter()
        .position(|r| r["type"] == "rollback_started")
        .expect("rollback_started");
    let first_step = records
        .iter()
        .position(|r| r["type"] == "rollback_step_finished")
        .expect("a rollback step");
    assert!(started < first_step);
    assert_eq!(
        records[started]["actions"],
        serde_json::json!(["exit 1", format!("rm -f {}", env.path("one").display())])
    );
    let s: Value = serde_json::from_str(&env.ok(&["status", "p", "--json"])).expect("JSON");
    assert_eq!(
        s["status"], "failed",
        "a failed rollback is not rolled back: {s}"
    );
}

#[test]
fn the_rollback_demo_fails_at_its_last_step_and_rolls_back() {
    let env = Env::new();
    let text = std::fs::read_to_string(common::repo().join("plans/demo-rollback.yaml"))
        .expect("the demo plan");
    // The same plan, without the wait that leaves time to press `s`.
    let quick = text.replace("wait_seconds: 8", "wait_seconds: 0");
    assert_ne!(quick, text);
    let file = env.path("demo-rollback.yaml");
    std::fs::write(&file, quick).expect("plan written");
    let f = file.to_str().expect("UTF-8 path");
    env.ok(&["submit", "--as", "author", f]);
    env.ok(&["approve", "demo-rollback", "--as", "alice"]);
    let (code, out, err) = env.run(&["run", "demo-rollback", "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(out.contains("Step 3/3: switch over"), "{out}");
    assert!(out.contains("rollback succeeded"), "{out}");
    assert!(
        !Path::new("/tmp/opsgate-demo-rb").exists(),
        "the rollback removed the demo directory"
    );
    let s: Value =
        serde_json::from_str(&env.ok(&["status", "demo-rollback", "--json"])).expect("JSON");
    assert_eq!(s["status"], "rolled_back");
}
