//! The execution engine through the binary, with real processes: the
//! write-ahead log, stop on failure, timeouts, stop requests (cancel,
//! Ctrl-C), rollback, stale and missing approvals, interrupted runs, dry
//! runs and the local demo plan.
//!
//! Each test works in its own temp dir (plans, markers, audit log); only
//! `the_demo_plan_runs_end_to_end` touches `/tmp/opsgate-demo`. Every
//! process a test starts is killed on every path: `Running` kills the
//! `opsgate run` it wraps when dropped, `Reaper` kills the processes whose
//! pids the plans' steps wrote to files.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::env::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Write-ahead and stopping at the first failure.

/// Matches step 2's `step_started` record of plan `write-ahead` only: the
/// plan as submitted holds this text JSON-escaped (`\"type\"`), so it does
/// not match that record.
const STEP2_STARTED: &str = r#"grep -q '^{"v":[0-9]*,"seq":[0-9]*,"ts":"[^"]*","type":"step_started","plan_id":"write-ahead","run_id":"r-[^"]*","step":2,"name":"second",' @D@/audit.jsonl"#;

#[test]
fn a_step_finds_its_step_started_record_already_in_the_log() {
    let env = Env::new(None);
    let grep = env.subst(STEP2_STARTED);
    let plan = env.plan(
        "plan.yaml",
        &format!(
            "id: write-ahead
title: write-ahead
author: alice
steps:
  - name: first
    run: touch @D@/one
    rollback: {{run: rm -f @D@/one}}
  - name: second
    run: {}
    rollback: {{run: rm -f @D@/marker}}
",
            // A JSON string is a YAML double-quoted string.
            serde_json::to_string(&format!("{grep} && touch @D@/marker")).expect("a string")
        ),
    );
    env.submit_and_approve(&plan, "write-ahead");
    // The grep does not match what the log holds before the run.
    let before = Command::new("/bin/sh")
        .args(["-c", &grep])
        .status()
        .expect("sh runs");
    assert_eq!(before.code(), Some(1), "the grep matches too much");

    let out = env.ok(&["run", "write-ahead"]);
    let run_id = run_id_in(&out);
    assert!(out.contains("Step 2/2: second"), "{out}");
    assert!(
        env.p("marker").exists(),
        "step 2 did not see its record: {out}"
    );
    let started = env.step_record("step_started", &run_id, 2);
    let finished = env.step_record("step_finished", &run_id, 2);
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert!(started["seq"].as_u64() < finished["seq"].as_u64());
    assert_eq!(env.plan_status("write-ahead"), "succeeded");
    env.verify();
}

#[test]
fn the_first_failure_stops_the_run() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: stop-on-failure
title: stop on failure
author: alice
steps:
  - {name: one, run: touch @D@/one}
  - {name: two, run: exit 3}
  - {name: three, run: touch @D@/three}
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "stop-on-failure");
    let (code, out, err) = env.run(&["run", "stop-on-failure"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    assert!(env.p("one").exists());
    assert!(!env.p("three").exists(), "step 3 ran after a failure");
    assert!(!out.contains("Step 3/3"), "{out}");
    let two = env.step_record("step_finished", &run_id, 2);
    assert_eq!(two["status"], "failed", "{two}");
    assert_eq!(two["exit_code"], 3, "{two}");
    assert!(
        env.of("step_started", Some(&run_id))
            .iter()
            .all(|r| r["step"] != 3),
        "step 3 started"
    );
    let finished = env.of("run_finished", Some(&run_id));
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["status"], "failed");
    assert_eq!(env.plan_status("stop-on-failure"), "failed");
    env.verify();
}

#[test]
fn a_timeout_kills_the_step_and_its_children() {
    let started = Instant::now();
    let env = Env::new(None);
    let pid_file = env.p("pid");
    let _reaper = Reaper(vec![env.p("pgid"), pid_file.clone()]);
    let plan = env.plan(
        "plan.yaml",
        "id: timeout
title: timeout
author: alice
steps:
  - name: hang
    run: echo $$ > @D@/pgid; sleep 300 & echo $! > @D@/pid; sleep 300
    timeout: 1s
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "timeout");
    let (code, out, err) = env.run(&["run", "timeout", "--grace", "1"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    let step = env.step_record("step_finished", &run_id, 1);
    assert_eq!(step["status"], "timed_out", "{step}");
    let took = step["duration_seconds"].as_f64().expect("a duration");
    assert!((1.0..10.0).contains(&took), "{step}");
    assert_eq!(env.of("run_finished", Some(&run_id))[0]["status"], "failed");
    let pid = read_pid(&pid_file).expect("the step wrote its child's pid");
    assert!(
        gone_within(pid, Duration::from_secs(5)),
        "the step's background child {pid} survived the timeout"
    );
    let shell = read_pid(&env.p("pgid")).expect("the step wrote its pid");
    assert!(
        gone_within(shell, Duration::from_secs(5)),
        "the step survived"
    );
    assert_eq!(env.plan_status("timeout"), "failed");
    env.verify();
    assert!(started.elapsed() < Duration::from_secs(30), "{started:?}");
}

// ---------------------------------------------------------------------------
// Stop requests.

const FINISH_THEN_STOP: &str = "id: stop
title: stop
author: alice
steps:
  - {name: slow, run: 'sleep 3; touch @D@/a'}
  - {name: next, run: touch @D@/b}
rollback: {none: a test}
";

#[test]
fn cancel_lets_the_current_step_finish_and_stops() {
    let env = Env::new(None);
    let plan = env.plan("plan.yaml", FINISH_THEN_STOP);
    env.submit_and_approve(&plan, "stop");
    let mut run = env.spawn(&["run", "stop"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    let out = env.ok(&["cancel", &run_id]);
    assert!(out.contains("stop after its current step"), "{out}");
    assert!(!env.p("a").exists(), "the cancel came after step 1 ended");
    let (code, out, err) = run.finish(DEADLINE);
    assert_eq!(code, 1, "{out} {err}");
    assert!(env.p("a").exists(), "the current step did not finish");
    assert!(!env.p("b").exists(), "the step after the stop ran");
    assert_eq!(
        env.step_record("step_finished", &run_id, 1)["status"],
        "succeeded"
    );
    assert_eq!(env.of("step_started", Some(&run_id)).len(), 1);
    let cancelled = env.of("run_cancelled", Some(&run_id));
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["kill"], false);
    assert_eq!(
        env.of("run_finished", Some(&run_id))[0]["status"],
        "cancelled"
    );
    assert_eq!(env.plan_status("stop"), "cancelled");
    env.verify();
}

const HANG: &str = "id: hang
title: hang
author: alice
steps:
  - {name: hang, run: 'echo $$ > @D@/pid; sleep 300'}
  - {name: next, run: touch @D@/b}
rollback: {none: a test}
";

/// Step 1 hangs; `cancels` are the stop requests, in order.
fn killed_by(cancels: &[&[&str]]) {
    let env = Env::new(None);
    let pid_file = env.p("pid");
    let _reaper = Reaper(vec![pid_file.clone()]);
    let plan = env.plan("plan.yaml", HANG);
    env.submit_and_approve(&plan, "hang");
    let mut run = env.spawn(&["run", "hang", "--grace", "1"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    assert!(appears_within(&pid_file, DEADLINE), "step 1 did not start");
    let asked = Instant::now();
    let mut said = String::new();
    for args in cancels {
        said = env.ok(&[&["cancel", run_id.as_str()], *args].concat());
    }
    assert!(said.contains("kill its current step"), "{said}");
    let (code, out, err) = run.finish(DEADLINE);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the kill took {:?}",
        asked.elapsed()
    );
    assert_eq!(code, 1, "{out} {err}");
    assert!(!env.p("b").exists(), "the step after the stop ran");
    let step = env.step_record("step_finished", &run_id, 1);
    assert_eq!(step["status"], "killed", "{step}");
    let cancelled = env.of("run_cancelled", Some(&run_id));
    assert_eq!(cancelled.len(), cancels.len());
    assert_eq!(cancelled.last().expect("a cancel")["kill"], true);
    assert_eq!(
        env.of("run_finished", Some(&run_id))[0]["status"],
        "cancelled"
    );
    assert_eq!(env.plan_status("hang"), "cancelled");
    let pid = read_pid(&pid_file).expect("a pid");
    assert!(gone_within(pid, Duration::from_secs(5)), "step 1 survived");
    env.verify();
}

#[test]
fn a_second_cancel_kills_the_current_step() {
    killed_by(&[&[], &[]]);
}

#[test]
fn cancel_kill_kills_the_current_step() {
    killed_by(&[&["--kill"]]);
}

#[test]
fn ctrl_c_stops_after_the_current_step() {
    let env = Env::new(None);
    let plan = env.plan("plan.yaml", FINISH_THEN_STOP);
    env.submit_and_approve(&plan, "stop");
    let mut run = env.spawn(&["run", "stop"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    assert!(kill("-INT", &run.pid().to_string()), "SIGINT sent");
    // The request is in the log before it takes effect.
    let end = Instant::now() + DEADLINE;
    while env.of("run_cancelled", Some(&run_id)).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!env.p("a").exists(), "the Ctrl-C came after step 1 ended");
    let (code, out, err) = run.finish(DEADLINE);
    assert_eq!(code, 1, "{out} {err}");
    assert!(err.contains("finishing the current step"), "{err}");
    let cancelled = env.of("run_cancelled", Some(&run_id));
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["reason"], "Ctrl-C");
    assert_eq!(cancelled[0]["kill"], false);
    assert!(env.p("a").exists(), "the current step did not finish");
    assert!(!env.p("b").exists(), "the step after Ctrl-C ran");
    assert_eq!(
        env.step_record("step_finished", &run_id, 1)["status"],
        "succeeded"
    );
    assert_eq!(
        env.of("run_finished", Some(&run_id))[0]["status"],
        "cancelled"
    );
    assert_eq!(env.plan_status("stop"), "cancelled");
    env.verify();
}

// ---------------------------------------------------------------------------
// Rollback.

/// Three steps, each with a rollback, step 3 fails; a plan-level rollback.
const UNDO: &str = "id: undo
title: undo
author: alice
steps:
  - name: one
    run: touch @D@/s1
    rollback: {run: echo undo-1 >> @D@/order}
  - name: two
    run: touch @D@/s2
    rollback: {run: echo undo-2 >> @D@/order}
  - name: three
    run: touch @D@/s3; exit 3
    rollback: {run: echo undo-3 >> @D@/order}
rollback:
  method: record the plan-level rollback
  steps:
    - {name: plan level, run: echo plan >> @D@/order}
";

#[test]
fn rollback_on_failure_undoes_the_completed_steps_in_reverse_then_the_plan() {
    let env = Env::new(None);
    let plan = env.plan("plan.yaml", UNDO);
    env.submit_and_approve(&plan, "undo");
    let (code, out, err) = env.run(&["run", "undo", "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    assert!(out.contains("rollback succeeded"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.p("order")).unwrap(),
        "undo-2\nundo-1\nplan\n"
    );
    let steps: Vec<(String, String)> = env
        .of("rollback_step_finished", Some(&run_id))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("undo two".into(), "succeeded".into()),
            ("undo one".into(), "succeeded".into()),
            ("plan level".into(), "succeeded".into()),
        ]
    );
    assert_eq!(
        env.of("rollback_finished", Some(&run_id))[0]["status"],
        "succeeded"
    );
    assert_eq!(env.plan_status("undo"), "rolled_back");
    let run = &env.status(&run_id)["run"];
    assert_eq!(run["status"], "rolled_back", "{run}");
    env.verify();
}

#[test]
fn a_failed_rollback_is_reported_and_is_not_rolled_back() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: bad-undo
title: bad undo
author: alice
steps:
  - name: one
    run: touch @D@/s1
    rollback: {run: echo undo-1 >> @D@/order}
  - {name: two, run: exit 3}
rollback:
  method: fails
  steps:
    - {name: cannot, run: exit 1}
",
    );
    env.submit_and_approve(&plan, "bad-undo");
    let (code, out, err) = env.run(&["run", "bad-undo", "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    assert!(out.contains("rollback failed"), "{out}");
    assert_eq!(std::fs::read_to_string(env.p("order")).unwrap(), "undo-1\n");
    let steps = env.of("rollback_step_finished", Some(&run_id));
    let cannot: Vec<&Value> = steps.iter().filter(|r| r["name"] == "cannot").collect();
    assert_eq!(cannot.len(), 1, "{steps:?}");
    assert_eq!(cannot[0]["status"], "failed");
    assert_eq!(cannot[0]["exit_code"], 1);
    assert_eq!(
        env.of("rollback_finished", Some(&run_id))[0]["status"],
        "failed"
    );
    let status = env.plan_status("bad-undo");
    assert_ne!(status, "rolled_back");
    assert_eq!(status, "failed");
    env.verify();
}

#[test]
fn without_the_flag_the_run_says_how_and_rollback_run_does_it() {
    let env = Env::new(None);
    let plan = env.plan("plan.yaml", UNDO);
    env.submit_and_approve(&plan, "undo");
    let (code, out, err) = env.run(&["run", "undo"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    assert!(
        out.contains(&format!("`opsgate rollback {run_id}`")),
        "{out}"
    );
    assert!(!env.p("order").exists(), "a rollback ran unasked");
    assert!(env.of("rollback_started", None).is_empty());
    assert_eq!(env.plan_status("undo"), "failed");

    let out = env.ok(&["rollback", &run_id]);
    assert!(
        out.contains(&format!("rollback of {run_id} succeeded")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(env.p("order")).unwrap(),
        "undo-2\nundo-1\nplan\n"
    );
    assert_eq!(env.plan_status("undo"), "rolled_back");
    env.refused(&["rollback", &run_id], "already rolled back");
    env.verify();
}

// ---------------------------------------------------------------------------
// Approvals.

#[test]
fn a_changed_file_is_a_new_plan_and_the_id_runs_the_approved_one() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: stale
title: stale
author: alice
steps:
  - name: mark
    run: touch @D@/original
    rollback: {run: rm -f @D@/original}
",
    );
    env.submit_and_approve(&plan, "stale");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("original", "edited")).unwrap();
    env.refused(
        &["run", path(&plan)],
        "the file changed since it was submitted, so it is a new, unapproved plan",
    );
    assert!(!env.p("edited").exists() && !env.p("original").exists());

    let out = env.ok(&["run", "stale"]);
    assert!(out.contains("$ touch"), "{out}");
    assert!(env.p("original").exists(), "the approved plan did not run");
    assert!(!env.p("edited").exists(), "the edited plan ran");
    env.verify();
}

#[test]
fn a_plan_runs_only_with_its_approvals() {
    let env = Env::new(Some("approvals: {separation_of_duties: true}\n"));
    let plan = env.plan(
        "plan.yaml",
        "id: needs-one
title: needs one
author: alice
steps:
  - name: mark
    run: touch @D@/marker
    rollback: {run: rm -f @D@/marker}
",
    );
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    env.refused(&["run", "needs-one"], "needs 1 approval");
    env.refused(&["run", path(&plan)], "needs 1 approval");
    env.refused(
        &["approve", "needs-one", "--as", "alice"],
        "alice submitted the plan and cannot approve it",
    );
    env.refused(&["run", "needs-one"], "needs 1 approval");
    assert!(env.of("run_started", None).is_empty());
    assert!(!env.p("marker").exists());
    env.ok(&["approve", "needs-one", "--as", "bob"]);
    env.ok(&["run", "needs-one"]);
    assert!(env.p("marker").exists());
    env.verify();
}

/// `touch` is CRITICAL under this policy, so a CRITICAL plan can run here.
const CRITICAL_TOUCH: &str =
    "rules:\n  - {program: touch, level: CRITICAL, reason: 'test: critical touch'}\n";

const CRITICAL_PLAN: &str = "id: critical
title: critical
author: alice
steps:
  - name: mark
    run: touch @D@/marker
rollback: {none: a test}
";

#[test]
fn a_critical_plan_is_refused_without_allow_critical() {
    let env = Env::new(Some(CRITICAL_TOUCH));
    let plan = env.plan("plan.yaml", CRITICAL_PLAN);
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(out.contains("CRITICAL"), "{out}");
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    env.refused(
        &["approve", "critical", "--as", "bob"],
        "safety.allow_critical is false",
    );
    env.refused(&["run", "critical"], "may not run");
    assert!(!env.p("marker").exists());
    assert!(env.of("run_started", None).is_empty());
    env.verify();
}

#[test]
fn a_critical_plan_runs_with_two_distinct_approvers_when_allowed() {
    let env = Env::new(Some(&format!(
        "safety: {{allow_critical: true}}\n{CRITICAL_TOUCH}"
    )));
    let plan = env.plan("plan.yaml", CRITICAL_PLAN);
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    env.ok(&["approve", "critical", "--as", "bob"]);
    env.refused(&["run", "critical"], "needs 2 approvals");
    env.refused(
        &["approve", "critical", "--as", "Bob"],
        "one person counts once",
    );
    env.refused(&["run", "critical"], "needs 2 approvals");
    assert!(!env.p("marker").exists());
    env.ok(&["approve", "critical", "--as", "carol"]);
    let (code, out, err) = env.run(&["run", "critical"]);
    assert_eq!(code, 0, "{out} {err}");
    let run_id = run_id_in(&out);
    let step = env.step_record("step_started", &run_id, 1);
    assert_eq!(step["risk"], "CRITICAL", "{step}");
    assert!(env.p("marker").exists());
    env.verify();
}

// ---------------------------------------------------------------------------
// Interrupted runs and dry runs.

#[test]
fn a_killed_engine_leaves_an_interrupted_run() {
    let env = Env::new(None);
    let pid_file = env.p("pid");
    let _reaper = Reaper(vec![pid_file.clone()]);
    let plan = env.plan(
        "plan.yaml",
        "id: crash
title: crash
author: alice
steps:
  - {name: one, run: touch @D@/one}
  - {name: hang, run: 'echo $$ > @D@/pid; sleep 300'}
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "crash");
    let mut run = env.spawn(&["run", "crash"]);
    let run_id = run.run_id();
    run.wait_for("Step 2/2", DEADLINE);
    assert!(appears_within(&pid_file, DEADLINE), "step 2 did not start");
    run.child.kill().unwrap();
    run.child.wait().unwrap();

    let s = env.status("crash");
    assert_eq!(s["status"], "interrupted", "{s}");
    assert_eq!(s["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(s["runs"][0]["interrupted_at"], 2, "{s}");
    let r = &env.status(&run_id)["run"];
    assert_eq!(r["status"], "interrupted", "{r}");
    assert_eq!(r["interrupted_at"], 2, "{r}");
    assert!(env.of("run_finished", Some(&run_id)).is_empty());
    env.refused(&["run", "crash"], "interrupted at step 2");
    env.refused(&["cancel", &run_id], "not running (interrupted)");
    env.verify();

    // The step's process group outlived the engine: end it here.
    let pid = read_pid(&pid_file).unwrap();
    kill("-KILL", &format!("-{pid}"));
    assert!(gone_within(pid, Duration::from_secs(5)));
}

#[test]
fn a_rehearsal_runs_the_pre_checks_and_no_mutation() {
    let env = Env::new(None);
    std::fs::write(env.p("ready"), "").unwrap();
    let plan = env.plan(
        "plan.yaml",
        "id: dry
title: dry
author: alice
steps:
  - name: mark
    run: touch @D@/marker
    pre_checks:
      - {name: ready, run: test -e @D@/ready}
    rollback: {run: rm -f @D@/marker}
",
    );
    // Approved: a dry run rehearses it, checks included (an unapproved
    // dry run runs no check: tests/attacks.rs).
    env.submit_and_approve(&plan, "dry");
    let (code, out, err) = env.run(&["run", "dry", "--dry-run"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with("dry run r-"), "{out}");
    let run_id = run_id_in(&out);
    let started = env.of("run_started", Some(&run_id));
    assert_eq!(started[0]["dry_run"], true);
    let check = env.of("check_finished", Some(&run_id));
    assert_eq!(check.len(), 1, "{check:?}");
    assert_eq!(check[0]["phase"], "pre");
    assert_eq!(check[0]["status"], "passed");
    let step = env.step_record("step_finished", &run_id, 1);
    assert_eq!(step["status"], "skipped", "{step}");
    assert!(!env.p("marker").exists(), "a dry run mutated");
    assert_eq!(env.plan_status("dry"), "approved");

    // The pre-check runs for real: without the file it fails.
    std::fs::remove_file(env.p("ready")).unwrap();
    let (code, out, err) = env.run(&["run", "dry", "--dry-run"]);
    assert_eq!(code, 1, "{out} {err}");
    let run_id = run_id_in(&out);
    let check = env.of("check_finished", Some(&run_id));
    assert_eq!(check[0]["status"], "failed", "{check:?}");
    assert!(!env.p("marker").exists(), "a dry run mutated");
    env.verify();
}

#[test]
fn require_dry_run_refuses_a_high_plan_until_a_dry_run_succeeded() {
    let env = Env::new(Some("execution: {require_dry_run: true}\n"));
    std::fs::create_dir(env.p("victim")).unwrap();
    let plan = env.plan(
        "plan.yaml",
        "id: high
title: high
author: alice
steps:
  - name: remove
    run: rm -rf @D@/victim
    rollback: {run: mkdir -p @D@/victim}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(out.contains("risk HIGH"), "{out}");
    env.submit_and_approve(&plan, "high");
    env.refused(&["run", "high"], "execution.require_dry_run is on");
    assert!(env.p("victim").exists());
    let out = env.ok(&["run", "high", "--dry-run"]);
    assert!(out.contains("dry run r-"), "{out}");
    assert!(env.p("victim").exists(), "a dry run mutated");
    // `rm` has no dry-run form: the dry run only showed the HIGH step, so
    // it does not count (hardening, "also").
    env.refused(&["run", "high"], "step 1 `remove`");
    assert!(env.p("victim").exists());

    // The policy can exempt such a plan, with a reason.
    let exempt = Env::new(Some(
        "execution: {require_dry_run: true, dry_run_exempt: [{plan: high, reason: rm has no dry-run form}]}\n",
    ));
    std::fs::create_dir(exempt.p("victim")).unwrap();
    let plan = exempt.plan(
        "plan.yaml",
        &std::fs::read_to_string(&plan)
            .unwrap()
            .replace(&path(env.dir.path()).to_owned(), path(exempt.dir.path())),
    );
    exempt.submit_and_approve(&plan, "high");
    let (code, _, err) = exempt.run(&["run", "high"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rm has no dry-run form"), "{err}");
    assert!(!exempt.p("victim").exists(), "the real run did not run");
    env.verify();
}

// ---------------------------------------------------------------------------
// The demo.

#[test]
fn the_demo_plan_runs_end_to_end() {
    let demo = Path::new("/tmp/opsgate-demo");
    let worker = demo.join("worker.pid");
    /// Stops the worker this run started (not one a pid file left from
    /// before names) and removes what the demo made.
    struct Cleanup(PathBuf, Option<u32>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(pid) = read_pid(&self.0.join("worker.pid"))
                && Some(pid) != self.1
            {
                kill("-KILL", &pid.to_string());
            }
            let _ = std::fs::remove_file(self.0.join("app.conf"));
            let _ = std::fs::remove_file(self.0.join("worker.pid"));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(demo.to_owned(), read_pid(&worker));
    let env = Env::new(None);
    env.ok(&["submit", "plans/demo-local.yaml", "--as", "ops"]);
    env.ok(&["approve", "demo-local", "--as", "alice"]);
    let (code, out, err) = env.run(&["run", "demo-local"]);
    assert_eq!(code, 0, "{out} {err}");
    let run_id = run_id_in(&out);
    for want in [
        "Step 1/4: prepare work dir",
        "Step 2/4: write config",
        "Step 3/4: start worker",
        "Step 4/4: restart worker",
        "succeeded in",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let finished = env.of("step_finished", Some(&run_id));
    assert_eq!(finished.len(), 4);
    assert!(
        finished.iter().all(|r| r["status"] == "succeeded"),
        "{finished:?}"
    );
    assert!(
        env.of("check_finished", Some(&run_id))
            .iter()
            .all(|r| r["status"] == "passed")
    );
    assert_eq!(
        std::fs::read_to_string(demo.join("app.conf")).unwrap(),
        "replicas=3\n"
    );
    let pid = read_pid(&worker).unwrap();
    assert!(alive(pid), "the restarted worker is not running");
    assert_eq!(env.plan_status("demo-local"), "succeeded");
    env.verify();
}
