//! `opsgate run --interactive` end to end over a pseudo-terminal: the plan
//! is shown, `explain` says why, `yes` records the approval, the run shows
//! live progress, and a failure offers the rollback.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rexpect::session::{PtySession, spawn_command};
use serde_json::Value;

const PLAN: &str = r"
id: chat
title: Interactive demo
author: author
steps:
  - name: make marker
    run: touch DIR/made
    rollback: {run: rm -f DIR/made}
  - name: second step
    run: 'sleep 0.3; STEP_TWO'
    rollback: {run: echo undone >> DIR/undo}
";

fn write_plan(dir: &Path, step_two: &str) -> PathBuf {
    let file = dir.join("plan.yaml");
    let text = PLAN
        .replace("DIR", dir.to_str().expect("UTF-8 path"))
        .replace("STEP_TWO", step_two);
    std::fs::write(&file, text).expect("plan written");
    file
}

fn opsgate(log: &Path, args: &[&str]) -> Command {
    let mut cmd = common::opsgate_command(log, None);
    cmd.env("TERM", "dumb").args(args);
    cmd
}

fn session(log: &Path, args: &[&str]) -> PtySession {
    spawn_command(opsgate(log, args), Some(30_000)).expect("opsgate starts on a pty")
}

#[test]
fn explain_then_yes_approves_and_runs_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = write_plan(dir.path(), "echo two done");
    let mut p = session(
        &log,
        &[
            "run",
            "--interactive",
            "--as",
            "alice",
            plan.to_str().unwrap(),
        ],
    );
    p.exp_string("Interactive demo").unwrap();
    p.exp_string("Approve? (yes/no/explain)").unwrap();
    p.send_line("explain").unwrap();
    p.exp_string("Step 1 make marker").unwrap();
    p.exp_string("Approve? (yes/no/explain)").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("approved by alice").unwrap();
    p.exp_string("Step 1/2: make marker").unwrap();
    p.exp_string("Step 2/2: second step").unwrap();
    p.exp_string("two done").unwrap();
    p.exp_regex(r"succeeded in [0-9.]+s").unwrap();
    p.exp_eof().unwrap();
    assert!(dir.path().join("made").exists());

    let recs = common::log_records(&log);
    let kinds: Vec<&str> = recs.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(
        &kinds[..4],
        [
            "policy_adopted",
            "plan_submitted",
            "approval_granted",
            "run_started"
        ]
    );
    assert_eq!(recs[2]["approver"], "alice");
    assert_eq!(recs[2]["channel"], "cli");
    assert_eq!(kinds.last(), Some(&"run_finished"));
}

#[test]
fn no_runs_nothing_and_records_no_approval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = write_plan(dir.path(), "true");
    let mut p = session(
        &log,
        &[
            "run",
            "--interactive",
            "--as",
            "alice",
            plan.to_str().unwrap(),
        ],
    );
    p.exp_string("Approve? (yes/no/explain)").unwrap();
    p.send_line("no").unwrap();
    p.exp_eof().unwrap();
    assert!(!dir.path().join("made").exists());
    let kinds: Vec<String> = common::log_records(&log)
        .iter()
        .filter_map(|r| r["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kinds, ["policy_adopted", "plan_submitted"]);
}

#[test]
fn a_failure_offers_the_rollback_and_yes_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = write_plan(dir.path(), "exit 7");
    let mut p = session(
        &log,
        &[
            "run",
            "--interactive",
            "--as",
            "alice",
            plan.to_str().unwrap(),
        ],
    );
    p.exp_string("Approve? (yes/no/explain)").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Step 2/2: second step").unwrap();
    p.exp_string("Rollback? (yes/no)").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("rollback succeeded").unwrap();
    p.exp_eof().unwrap();
    // Only the completed step is undone: its rollback removed the marker,
    // and the failed step's own rollback did not run.
    assert!(!dir.path().join("made").exists());
    assert!(!dir.path().join("undo").exists());
    let out = opsgate(&log, &["status", "chat", "--json"])
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "rolled_back", "{s}");
}

/// Hardening 15: `approve ID` on a terminal, without `--hash`, shows the
/// plan as submitted now (title, level, hash) and asks; the approval is
/// bound to exactly that submission. `no` approves nothing.
#[test]
fn approve_on_a_terminal_shows_the_plan_and_asks() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = write_plan(dir.path(), "true");
    let out = opsgate(&log, &["submit", "--json", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = submitted["plan_hash"].as_str().unwrap();

    let mut p = session(&log, &["approve", "chat", "--as", "alice"]);
    p.exp_string("Interactive demo").unwrap();
    p.exp_string(hash).unwrap();
    p.exp_string("Approve exactly this plan? (yes/no)").unwrap();
    p.send_line("no").unwrap();
    p.exp_eof().unwrap();
    let kinds = |log: &Path| -> Vec<String> {
        common::log_records(log)
            .iter()
            .filter_map(|r| r["type"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(kinds(&log), ["policy_adopted", "plan_submitted"]);

    let mut p = session(&log, &["approve", "chat", "--as", "alice"]);
    p.exp_string("Approve exactly this plan? (yes/no)").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("approved chat as alice").unwrap();
    p.exp_eof().unwrap();
    let recs = common::log_records(&log);
    let granted = recs.last().unwrap();
    assert_eq!(granted["type"], "approval_granted");
    assert_eq!(granted["plan_hash"], hash);
    assert_eq!(granted["submission_seq"], 2);
}
