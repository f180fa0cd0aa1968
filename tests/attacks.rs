//! The attacks of the hardening issue, each reproduced through the binary
//! against a real log and real processes. Every test here failed before its
//! fix (checked by reverting the fix); the item number of the issue is in
//! each test's comment.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use common::env::*;

// ---------------------------------------------------------------------------
// 3. A rollback is counted in the plan's risk.

/// A MEDIUM step whose rollback shreds a file: one approval ran the
/// shredding under `allow_critical: false`. The plan is CRITICAL now, set
/// by its rollback, and refused outright.
#[test]
fn a_rollback_sets_the_plan_level_and_a_critical_rollback_is_refused() {
    let env = Env::new(None);
    std::fs::write(env.p("precious"), "data").expect("file written");
    let plan = env.plan(
        "plan.yaml",
        "id: sneaky
title: a harmless touch
author: alice
steps:
  - {name: touch, run: touch @D@/marker, rollback: {run: rm -f @D@/marker}}
rollback:
  steps:
    - {name: cleanup, run: shred -u @D@/precious}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(
        out.contains("CRITICAL") && out.contains("(set by rollback step `cleanup`)"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "show", path(&plan), "--json"])).expect("JSON");
    assert_eq!(json["risk"], "CRITICAL", "{json}");
    assert_eq!(json["risk_set_by_rollback"], "rollback step `cleanup`");
    let submitted: serde_json::Value =
        serde_json::from_str(&env.ok(&["submit", path(&plan), "--as", "alice", "--json"]))
            .expect("JSON");
    assert_eq!(submitted["risk"], "CRITICAL");
    env.refused(
        &["approve", "sneaky", "--as", "bob"],
        "safety.allow_critical is false",
    );
    env.refused(&["run", "sneaky", "--rollback-on-failure"], "may not run");
    assert!(env.p("precious").exists(), "the rollback ran");
}

/// A step's own rollback counts too, and the explanation names it.
#[test]
fn a_step_rollback_above_its_step_sets_the_plan_level() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: step-undo
title: t
author: alice
steps:
  - {name: stage, run: touch @D@/staged, rollback: {run: rm -rf @D@/tree}}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(
        out.contains("risk HIGH") && out.contains("(set by the rollback of step `stage`)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// 16. Control and bidi characters are shown escaped wherever a command is.

/// A carriage return makes `rm -rf` render as `kubectl scale` on a
/// terminal; a right-to-left override reverses what follows it; U+0085 and
/// a form feed break lines. `plan show` prints every one escaped.
#[test]
fn plan_show_escapes_control_and_bidi_characters() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: disguise
title: \"scale \\u202Eipa\"
author: alice
steps:
  - name: \"scale\\rnothing\"
    run: \"rm -rf @D@/victim\\rkubectl scale deploy/api --replicas=3\"
    rollback: {run: \"echo undo\\u0085rm -rf /\\fx\"}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    for hidden in ['\r', '\u{202e}', '\u{85}', '\u{c}'] {
        assert!(
            !out.contains(hidden),
            "{hidden:?} reached the output: {out}"
        );
    }
    // JSON is data: it carries the command exactly, for a program to read.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "show", path(&plan), "--json"])).expect("JSON");
    assert_eq!(
        json["steps"][0]["command"],
        env.subst("rm -rf @D@/victim\rkubectl scale deploy/api --replicas=3")
    );
    assert!(
        out.contains("rm -rf ") && out.contains("victim\\rkubectl scale"),
        "{out}"
    );
    assert!(out.contains("scale \\u{202e}ipa"), "{out}");
    assert!(out.contains("echo undo\\u{85}rm -rf /\\u{c}x"), "{out}");
}

// ---------------------------------------------------------------------------
// 1. A dry run of a plan that is not approved runs nothing through a shell.

/// Pre-checks that rate LOW and still run code. The classifier now rates
/// the lines that did this (awk's `system()`, sed's `w`, `sort -o`) above
/// LOW, so the policy here is wrong on purpose: it rates `touch` LOW. The
/// rule must hold where LOW is wrong: a dry run needs no approval, and ran
/// every check through `/bin/sh`, even on a plan the policy refuses.
const LOW_BUT_RUNS_CODE: &str = "id: sneaky-checks
title: t
author: alice
steps:
  - name: step
    run: mkdir @D@/step-ran
    pre_checks:
      - {name: awk, run: touch @D@/awk-ran}
      - {name: sed, run: touch @D@/sed-ran}
      - {name: sort, run: touch @D@/sort-ran}
    rollback: {run: rmdir @D@/step-ran}
";

/// A policy that is wrong on purpose: `touch` writes files, and it says LOW.
const WRONG_LOW: &str = "rules:
  - {program: touch, level: LOW, override: true, reason: \"wrong on purpose: it writes\"}
";

const RAN: [&str; 4] = ["step-ran", "awk-ran", "sed-ran", "sort-ran"];

#[test]
fn an_unapproved_dry_run_runs_no_check_and_no_step() {
    let env = Env::new(Some(WRONG_LOW));
    let plan = env.plan("plan.yaml", LOW_BUT_RUNS_CODE);
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    let out = env.ok(&["run", "sneaky-checks", "--dry-run"]);
    assert!(out.contains("not run: the plan is not approved"), "{out}");
    for f in RAN {
        assert!(!env.p(f).exists(), "{f}: a dry run ran code: {out}");
    }
    let run_id = run_id_in(&out);
    let checks = env.of("check_finished", Some(&run_id));
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(
        checks.iter().all(|c| c["status"] == "skipped"),
        "{checks:?}"
    );
    let step = env.step_record("step_finished", &run_id, 1);
    assert_eq!(step["status"], "skipped", "{step}");
    env.verify();
}

/// The same checks in a plan the policy refuses outright (CRITICAL under
/// `allow_critical: false`): nothing runs either.
#[test]
fn a_dry_run_of_a_refused_plan_runs_nothing() {
    let env = Env::new(Some(WRONG_LOW));
    let plan = env.plan(
        "plan.yaml",
        &LOW_BUT_RUNS_CODE.replace("mkdir @D@/step-ran", "shred -u @D@/step-ran"),
    );
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    assert_eq!(env.plan_status("sneaky-checks"), "refused");
    env.ok(&["run", "sneaky-checks", "--dry-run"]);
    for f in RAN {
        assert!(!env.p(f).exists(), "{f}: a dry run ran code");
    }
}

/// Once approved, the dry run is a rehearsal: its checks run (so it can
/// tell whether they pass), its mutations only in a dry-run form.
#[test]
fn a_dry_run_of_the_approved_plan_rehearses_its_checks() {
    let env = Env::new(Some(WRONG_LOW));
    let plan = env.plan("plan.yaml", LOW_BUT_RUNS_CODE);
    env.submit_and_approve(&plan, "sneaky-checks");
    let out = env.ok(&["run", "sneaky-checks", "--dry-run"]);
    let run_id = run_id_in(&out);
    let checks = env.of("check_finished", Some(&run_id));
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{checks:?}");
    assert!(env.p("awk-ran").exists(), "the rehearsal ran its checks");
    assert!(!env.p("step-ran").exists(), "a dry run ran the step");
}

// ---------------------------------------------------------------------------
// 4. A one-byte truncation does not erase a rejection; a deleted last line
//    is caught by the high-water mark.

const REJECTED: &str = "id: rejected
title: t
author: alice
steps:
  - {name: touch, run: touch @D@/ran, rollback: {run: rm -f @D@/ran}}
";

/// A keyed log, a plan submitted and rejected.
fn keyed_and_rejected() -> (Env, std::path::PathBuf) {
    let env = Env::new(Some("audit: {key_file: audit.key}\n"));
    std::fs::write(env.p("audit.key"), "an-audit-key-of-32-bytes-0123456").expect("key written");
    let plan = env.plan("plan.yaml", REJECTED);
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    env.ok(&["reject", "rejected", "--as", "bob", "--reason", "no"]);
    (env, plan)
}

/// Removing the final `\n` of the fsync'd rejection made it a "torn tail"
/// that the next `run` moved aside, and the rejected plan ran. Now every
/// append refuses a torn tail (exit 3, naming the repair), and the repair
/// restores the newline of a complete, sealed record instead of removing
/// it: the plan stays rejected.
#[test]
fn a_cut_newline_neither_erases_a_rejection_nor_is_repaired_by_run() {
    let (env, _) = keyed_and_rejected();
    let mut bytes = std::fs::read(&env.log).expect("log");
    assert_eq!(bytes.pop(), Some(b'\n'));
    std::fs::write(&env.log, &bytes).expect("cut");
    let (code, _, err) = env.run(&["run", "rejected"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("opsgate audit repair"), "{err}");
    assert!(!env.p("ran").exists(), "the rejected plan ran");
    assert_eq!(
        std::fs::read(&env.log).expect("log"),
        bytes,
        "run repaired the log"
    );
    let (code, out, _) = env.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");

    env.ok(&["audit", "repair"]);
    let repaired = env.of("log_repaired", None);
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0]["newline_restored"], true, "{repaired:?}");
    assert_eq!(
        env.of("approval_rejected", None).len(),
        1,
        "the rejection is kept"
    );
    assert_eq!(env.plan_status("rejected"), "rejected");
    env.refused(&["run", "rejected"], "rejected");
    assert!(!env.p("ran").exists());
    env.verify();
}

/// Deleting the whole last line (the rejection) left a shorter, intact
/// chain. Every process that folds the log now checks it against the
/// high-water mark it keeps outside the log: a shorter log is refused,
/// naming both heads, and nothing is recorded until an operator accepts it.
#[test]
fn a_deleted_last_line_is_caught_by_the_high_water_mark() {
    let (env, _) = keyed_and_rejected();
    let text = std::fs::read_to_string(&env.log).expect("log");
    // The policy's adoption and the submission are kept; the rejection is cut.
    let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&env.log, &kept).expect("cut");
    for args in [
        &["run", "rejected"][..],
        &["approve", "rejected", "--as", "carol"],
        &["status", "rejected"],
    ] {
        let (code, _, err) = env.run(args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains("ends at seq 2") && err.contains("reach seq 3"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&env.log).expect("log"),
        kept,
        "nothing recorded"
    );
    assert!(!env.p("ran").exists());
    let (code, out, _) = env.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("high-water mark"), "{out}");

    // The operator checks it and accepts it: recorded, and the plan is as
    // the log says (pending: nothing was approved by the cut).
    let out = env.ok(&[
        "audit",
        "verify",
        "--acknowledge-truncation",
        "--reason",
        "restored from backup",
    ]);
    assert!(out.contains("accepted"), "{out}");
    let ack = env.of("truncation_acknowledged", None);
    assert_eq!(ack[0]["expected_seq"], 3, "{ack:?}");
    assert_eq!(ack[0]["found_seq"], 2, "{ack:?}");
    env.verify();
    env.refused(&["run", "rejected"], "needs 1 approval");
    assert!(!env.p("ran").exists());
}

// ---------------------------------------------------------------------------
// 8. Redaction hides no command.

/// A fake `-----BEGIN RSA PRIVATE KEY-----` in a command masked the rest of
/// the line in `plan_submitted` and in the write-ahead `step_started`: the
/// log never showed the `rm -rf` that ran. Only the key's own shape is
/// masked now, and `step_started` carries the SHA-256 of the exact command.
#[test]
fn a_fake_private_key_does_not_hide_the_command_that_runs() {
    let env = Env::new(None);
    std::fs::create_dir(env.p("victim")).expect("dir");
    let plan = env.plan(
        "plan.yaml",
        "id: masked
title: t
author: alice
steps:
  - name: tidy
    run: \"echo '-----BEGIN RSA PRIVATE KEY-----'; rm -rf @D@/victim\"
    rollback: {run: mkdir -p @D@/victim}
",
    );
    env.submit_and_approve(&plan, "masked");
    // The stored copy has a secret masked: it runs from its file.
    let out = env.ok(&["run", path(&plan)]);
    assert!(!env.p("victim").exists());
    let command = env.subst("echo '-----BEGIN RSA PRIVATE KEY-----'; rm -rf @D@/victim");
    let shown = env.subst("echo '[REDACTED]'; rm -rf @D@/victim");
    let submitted = &env.of("plan_submitted", None)[0];
    assert_eq!(
        submitted["plan"]["steps"][0]["action"]["run"],
        shown.as_str()
    );
    let run_id = run_id_in(&out);
    let started = env.step_record("step_started", &run_id, 1);
    assert_eq!(started["action"], shown.as_str(), "{started}");
    let digest = {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(command.as_bytes()))
        )
    };
    assert_eq!(started["action_sha256"], digest.as_str(), "{started}");
}

/// A plan whose redaction would hide more than a secret value (a key-shaped
/// block of commands, a password that is a command substitution) is
/// refused before anything is recorded.
#[test]
fn a_plan_whose_redaction_would_hide_a_command_is_refused() {
    let env = Env::new(None);
    for run in [
        "\"echo x\\n-----BEGIN RSA PRIVATE KEY-----\\nreboot\\n-----END RSA PRIVATE KEY-----\"",
        "'PGPASSWORD=\"$(rm -rf @D@/victim)\" psql -c \"select 1\"'",
    ] {
        let plan = env.plan(
            "plan.yaml",
            &format!(
                "id: hides\ntitle: t\nsteps:\n  - {{name: s, run: {run}, rollback: {{run: 'true'}}}}\n"
            ),
        );
        let (code, _, err) = env.run(&["submit", path(&plan)]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("more than a secret value"), "{err}");
    }
    assert!(env.records().is_empty());
}

// ---------------------------------------------------------------------------
// 9. Run liveness follows the log, not the path.

const HANGS: &str = "id: hangs
title: t
author: alice
steps:
  - {name: hang, run: 'echo $$ > @D@/pid; sleep 300'}
  - {name: next, run: touch @D@/next}
rollback: {none: a test}
";

/// Through a symlink to the same log, a live run showed as interrupted, and
/// `run --resume` ran its step a second time, concurrently. Run locks are
/// held on the log file itself now: every path to it sees the run live.
#[test]
fn a_live_run_is_live_through_any_path_to_its_log() {
    let env = Env::new(None);
    let pid_file = env.p("pid");
    let _reaper = Reaper(vec![pid_file.clone()]);
    let plan = env.plan("plan.yaml", HANGS);
    env.submit_and_approve(&plan, "hangs");
    let mut run = env.spawn(&["run", "hangs", "--grace", "1"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    let first = pid_within(&pid_file, DEADLINE);
    assert!(first.is_some(), "step 1 did not start");

    let link = env.p("link.jsonl");
    std::os::unix::fs::symlink(&env.log, &link).expect("symlink");
    let via_link = |args: &[&str]| {
        let out = common::opsgate_command(&link, None)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("opsgate runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = via_link(&["status", "hangs", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(status["status"], "running", "{status}");
    let (code, _, err) = via_link(&["run", "hangs", "--resume"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("running"), "{err}");
    assert_eq!(read_pid(&pid_file), first, "the step ran a second time");
    assert!(
        !env.p("audit.jsonl.runs").exists(),
        "no lock directory to delete"
    );
    let (code, _, err) = via_link(&["cancel", &run_id, "--kill"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run.finish(DEADLINE);
    assert_eq!(code, 1);
    assert!(!env.p("next").exists());
}

// ---------------------------------------------------------------------------
// 10. Resubmitting an id during a live run.

/// Resubmitting the id during a live run orphaned the run: `cancel` and
/// `rollback` answered "no run", and the new plan could run beside it. A
/// new submission is refused while the id has a live or interrupted run.
#[test]
fn an_id_with_a_live_run_cannot_be_submitted_again() {
    let env = Env::new(None);
    let pid_file = env.p("pid");
    let _reaper = Reaper(vec![pid_file.clone()]);
    let plan = env.plan("plan.yaml", HANGS);
    env.submit_and_approve(&plan, "hangs");
    let mut run = env.spawn(&["run", "hangs", "--grace", "1"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    let other = env.plan("other.yaml", &HANGS.replace("touch", "echo"));
    env.refused(&["submit", path(&other), "--as", "alice"], "is running");
    env.ok(&["cancel", &run_id, "--kill"]);
    let (code, _, _) = run.finish(DEADLINE);
    assert_eq!(code, 1);
    // Finished: the id takes a new submission again.
    env.ok(&["submit", path(&other), "--as", "alice"]);
}

// ---------------------------------------------------------------------------
// 11. A rollback is decided under the log's lock, with the run lock held,
//     and only while the run's approvals count or with its own approval.

/// A plan whose second step fails, with a slow rollback.
const FAILS: &str = "id: fails
title: t
author: alice
steps:
  - {name: one, run: touch @D@/one, rollback: {run: 'sleep 2; echo undone >> @D@/undone'}}
  - {name: two, run: 'false'}
rollback: {none: a test}
";

fn failed_run(env: &Env) -> String {
    let plan = env.plan("plan.yaml", FAILS);
    env.submit_and_approve(&plan, "fails");
    let (code, out, _) = env.run(&["run", "fails"]);
    assert_eq!(code, 1, "{out}");
    run_id_in(&out)
}

/// Two operators rolled the same run back at once (the decision was made
/// outside the lock): the rollback ran twice. Now one starts it; the other
/// is refused.
#[test]
fn two_rollbacks_of_one_run_at_once_run_it_once() {
    let env = Env::new(None);
    let run_id = failed_run(&env);
    let mut a = env.spawn(&["rollback", &run_id]);
    let mut b = env.spawn(&["rollback", &run_id]);
    let (ca, oa, ea) = a.finish(DEADLINE);
    let (cb, ob, eb) = b.finish(DEADLINE);
    let mut codes = [ca, cb];
    codes.sort_unstable();
    assert_eq!(codes, [0, 3], "{oa} {ea} | {ob} {eb}");
    assert_eq!(env.of("rollback_started", Some(&run_id)).len(), 1);
    let undone = std::fs::read_to_string(env.p("undone")).expect("rolled back");
    assert_eq!(undone.lines().count(), 1, "the rollback ran twice");
    env.verify();
}

/// After the run's approvals expired, anyone could roll it back. Now the
/// rollback needs the run's approvals to still count, or an approval of
/// its own, under the plan's rules (the author cannot give it).
#[test]
fn a_rollback_after_the_approvals_expired_needs_its_own_approval() {
    let env = Env::new(Some("approvals: {ttl: 2s, separation_of_duties: true}\n"));
    let run_id = failed_run(&env);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    env.refused(&["rollback", &run_id], "--rollback");
    assert!(!env.p("undone").exists());
    env.refused(
        &["approve", &run_id, "--rollback", "--as", "alice"],
        "submitted the plan",
    );
    env.ok(&["approve", &run_id, "--rollback", "--as", "carol"]);
    env.refused(
        &["approve", &run_id, "--rollback", "--as", "Carol"],
        "one person counts once",
    );
    env.ok(&["rollback", &run_id, "--as", "dave"]);
    assert!(env.p("undone").exists());
    let started = env.of("rollback_started", Some(&run_id));
    assert_eq!(started[0]["user"], "dave", "{started:?}");
    env.refused(&["rollback", &run_id], "already rolled back");
    env.verify();
}

// ---------------------------------------------------------------------------
// 12. A stop recorded just before a step ends stops the run.

/// End to end: step 1 records a stop request itself (`opsgate cancel`) as
/// its last act, then ends at once; step 2 never starts. (Whether the old
/// 100 ms poll caught it depended on timing; the deterministic reproduction
/// is the next test.)
#[test]
fn a_stop_recorded_as_a_step_ends_stops_the_next_step() {
    let env = Env::new(None);
    let script = env.p("stop.sh");
    std::fs::write(
        &script,
        format!(
            "RID=$(grep -o '\"run_id\":\"r-[^\"]*\"' '{log}' | tail -1 | cut -d'\"' -f4)\nOPSGATE_CONFIG='{conf}' XDG_STATE_HOME='{state}' '{bin}' --audit-log '{log}' cancel \"$RID\" --as bob\n",
            log = path(&env.log),
            conf = path(&env.p("trust-as.yaml")),
            state = path(&env.p("state")),
            bin = assert_cmd::cargo::cargo_bin!("opsgate").display(),
        ),
    )
    .expect("script written");
    let plan = env.plan(
        "plan.yaml",
        "id: stops
title: t
author: alice
steps:
  - {name: ask to stop, run: sh @D@/stop.sh}
  - {name: next, run: touch @D@/next, rollback: {run: rm -f @D@/next}}
rollback: {none: a test}
",
    );
    for _ in 0..2 {
        env.submit_and_approve(&plan, "stops");
        let (code, out, err) = env.run(&["run", "stops"]);
        assert_eq!(code, 1, "{out} {err}");
        let run_id = run_id_in(&out);
        assert!(
            !env.p("next").exists(),
            "step 2 started after the stop: {out}"
        );
        assert_eq!(env.of("run_cancelled", Some(&run_id)).len(), 1);
        assert_eq!(
            env.of("run_finished", Some(&run_id))[0]["status"],
            "cancelled"
        );
    }
}

/// The engine is given a stop request that its follower has not delivered
/// yet (it polled every 100 ms): the request is in the log before step 1
/// would start. Read under the lock of `step_started`, it stops the run
/// before any step; before the fix, every step ran.
#[test]
fn a_stop_in_the_log_stops_the_run_before_the_next_step_whatever_the_follower() {
    use opsgate::audit::{AuditLog, Event, Sealer, Status};
    use opsgate::exec::Stop;
    use opsgate::exec::engine::{Authority, Engine, RunSpec};

    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("ran");
    let yaml = format!(
        "id: e\ntitle: e\nauthor: a\nsteps:\n  - {{name: s, run: 'echo > {}'}}\nrollback: {{none: x}}\n",
        marker.display()
    );
    let policy = &common::POLICY;
    let (cp, approved) = approved_by_bob("e", &yaml);
    let log_path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&log_path, Sealer::Sha256, Default::default()).expect("log");
    log.append(Event::RunCancelled {
        plan_id: "e".into(),
        run_id: "r-e".into(),
        user: "bob".into(),
        kill: false,
        reason: None,
    })
    .expect("the stop is recorded");
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let backends = opsgate::native::Backends::new(&Default::default());
    let engine = Engine::new(RunSpec {
        log: &log,
        plan_id: "e",
        plan: &cp.plan,
        policy_hash: &policy.hash,
        run_id: "r-e".into(),
        user: "a".into(),
        backends: &backends,
    })
    .risks(vec![cp.risk])
    .grace(std::time::Duration::from_secs(1))
    .stop(stop_rx)
    .env(std::collections::BTreeMap::from([(
        "PATH".to_owned(),
        "/usr/bin:/bin".to_owned(),
    )]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt
        .block_on(engine.run(&Authority::Approved(approved)))
        .expect("the run ends");
    assert_eq!(report.status, Status::Cancelled);
    assert!(!marker.exists(), "a step ran after the stop was recorded");
}

// ---------------------------------------------------------------------------
// 13. Nothing a step starts outlives it.

/// `setsid` left the step's process group and outlived its timeout. The
/// engine is a child subreaper now and kills every descendant of the step.
#[test]
fn a_setsid_process_dies_with_its_timed_out_step() {
    let env = Env::new(None);
    let escaped = env.p("escaped");
    let _reaper = Reaper(vec![escaped.clone()]);
    let plan = env.plan(
        "plan.yaml",
        "id: escapes
title: t
author: alice
steps:
  - name: hang
    run: \"setsid sh -c 'echo $$ > @D@/escaped; exec sleep 300' & sleep 300\"
    timeout: 1s
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "escapes");
    let (code, out, _) = env.run(&["run", "escapes", "--grace", "1"]);
    assert_eq!(code, 1, "{out}");
    let pid = read_pid(&escaped).expect("the escaped process started");
    assert!(
        gone_within(pid, std::time::Duration::from_secs(5)),
        "the setsid process {pid} outlived the step"
    );
}

/// A step that exits by itself leaves nothing behind either: not a
/// `setsid` process, not one that also dropped the environment (`env -i`)
/// that marks the step's processes. With `keep_background: true` (in the
/// approved plan), a background process may stay.
#[test]
fn a_step_leaves_no_process_behind_unless_the_plan_keeps_it() {
    let env = Env::new(None);
    let files: Vec<_> = ["setsid", "env-i", "kept"]
        .iter()
        .map(|f| env.p(f))
        .collect();
    let _reaper = Reaper(files.clone());
    let plan = env.plan(
        "plan.yaml",
        "id: leaves
title: t
author: alice
steps:
  - name: escape
    run: |
      setsid sh -c 'echo $$ > @D@/setsid; exec sleep 300' &
      env -i /usr/bin/setsid /bin/sh -c 'echo $$ > @D@/env-i; exec sleep 300' &
      sleep 0.5
  - name: keep
    run: \"sleep 300 > /dev/null 2>&1 & echo $! > @D@/kept; sleep 0.2\"
    keep_background: true
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "leaves");
    env.ok(&["run", "leaves"]);
    for f in &files[..2] {
        let pid = read_pid(f).expect("the process started");
        assert!(
            gone_within(pid, std::time::Duration::from_secs(5)),
            "{} ({pid}) outlived its step",
            f.display()
        );
    }
    let kept = read_pid(&files[2]).expect("the kept process started");
    assert!(alive(kept), "keep_background let it live");
}

// ---------------------------------------------------------------------------
// 14. The environment is built from an allowlist, and recorded.

/// Whoever starts an approved run chose what its steps did through the
/// environment: a `PATH` with their own `id` first, a `BASH_ENV` that bash
/// runs before the command, a `KUBECONFIG` for another cluster. Steps get a
/// clean environment now (the policy's allowlist, its PATH, the plan's
/// `env:`), BASH_ENV never passes, and `run_started` records the variables
/// that choose targets.
#[test]
fn the_runner_s_environment_does_not_change_what_an_approved_plan_does() {
    let env = Env::new(None);
    let evil = env.p("evil");
    std::fs::create_dir(&evil).expect("dir");
    let fake_id = evil.join("id");
    std::fs::write(
        &fake_id,
        format!("#!/bin/sh\ntouch {}\n", env.p("fake-id-ran").display()),
    )
    .expect("fake id");
    std::fs::set_permissions(
        &fake_id,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let bash_env = env.p("bash_env.sh");
    std::fs::write(
        &bash_env,
        format!("touch {}\n", env.p("bash-env-ran").display()),
    )
    .expect("bash_env");
    let plan = env.plan(
        "plan.yaml",
        "id: envs
title: t
author: alice
env: {KUBECONFIG: /etc/opsgate-test/kubeconfig, GREETING: hello}
steps:
  - name: look
    run: \"id -u > @D@/uid; bash -c 'echo $GREETING $KUBECONFIG $BASH_ENV' > @D@/seen\"
    rollback: {run: rm -f @D@/uid @D@/seen}
",
    );
    env.submit_and_approve(&plan, "envs");
    let out = env
        .command()
        .args(["run", "envs"])
        .env("PATH", format!("{}:/usr/bin:/bin", evil.display()))
        .env("BASH_ENV", &bash_env)
        .env("KUBECONFIG", "/tmp/another-cluster")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !env.p("fake-id-ran").exists(),
        "the caller's PATH chose `id`"
    );
    assert!(!env.p("bash-env-ran").exists(), "BASH_ENV ran");
    assert_eq!(
        std::fs::read_to_string(env.p("seen")).expect("seen").trim(),
        "hello /etc/opsgate-test/kubeconfig"
    );
    let started = &env.of("run_started", None)[0];
    assert_eq!(
        started["env"]["KUBECONFIG"], "/etc/opsgate-test/kubeconfig",
        "{started}"
    );
    assert_eq!(
        started["env"]["PATH"],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
}

/// `BASH_ENV` and `ENV` cannot be set by a plan either.
#[test]
fn a_plan_may_not_set_bash_env() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: sneaky-env\ntitle: t\nenv: {BASH_ENV: /tmp/x.sh}\nsteps:\n  - {name: s, run: 'true'}\n",
    );
    let (code, _, err) = env.run(&["plan", "validate", path(&plan)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`BASH_ENV` never reaches a step"), "{err}");
}

// ---------------------------------------------------------------------------
// 17. Files a step runs or reads are hashed with the plan.

/// `sh deploy.sh` was approved; the script was edited afterwards and the
/// edited script ran under the old approval. The files a step runs or
/// reads are hashed into the plan now and checked before the run and
/// before each step.
#[test]
fn an_edited_script_does_not_run_under_the_old_approval() {
    let env = Env::new(None);
    let script = env.p("deploy.sh");
    std::fs::write(&script, "echo deploying\n").expect("script");
    let plan = env.plan(
        "plan.yaml",
        "id: scripted
title: t
author: alice
steps:
  - {name: deploy, run: sh @D@/deploy.sh, rollback: {run: 'true'}}
",
    );
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "show", path(&plan), "--json"])).expect("JSON");
    let before = env.ok(&["plan", "hash", path(&plan)]);
    env.submit_and_approve(&plan, "scripted");
    std::fs::write(
        &script,
        format!("touch {}\n", env.p("edited-ran").display()),
    )
    .expect("edit");
    assert_ne!(
        env.ok(&["plan", "hash", path(&plan)]),
        before,
        "the file is in the hash"
    );
    let (code, _, err) = env.run(&["run", "scripted"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("changed since the plan was submitted"),
        "{err}"
    );
    assert!(!env.p("edited-ran").exists(), "the edited script ran");
    assert!(env.of("run_started", None).is_empty());
    let file = &shown["files"][env.subst("@D@/deploy.sh")];
    assert!(
        file["sha256"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "plan show names the hashed file: {shown}"
    );
}

/// Edited while the run is on, between two steps: the next step does not
/// run.
#[test]
fn a_script_edited_during_the_run_stops_it_before_its_step() {
    let env = Env::new(None);
    let script = env.p("second.sh");
    std::fs::write(&script, "echo second\n").expect("script");
    let plan = env.plan(
        "plan.yaml",
        "id: mid-run
title: t
author: alice
steps:
  - {name: first, run: sleep 1}
  - {name: second, run: sh @D@/second.sh, rollback: {run: 'true'}}
rollback: {none: a test}
",
    );
    env.submit_and_approve(&plan, "mid-run");
    let mut run = env.spawn(&["run", "mid-run"]);
    let run_id = run.run_id();
    run.wait_for("Step 1/2", DEADLINE);
    std::fs::write(
        &script,
        format!("touch {}\n", env.p("edited-ran").display()),
    )
    .expect("edit");
    let (code, out, _) = run.finish(DEADLINE);
    assert_eq!(code, 1, "{out}");
    assert!(!env.p("edited-ran").exists(), "the edited script ran");
    let step = env.step_record("step_finished", &run_id, 2);
    assert_eq!(step["status"], "failed", "{step}");
    assert!(
        step["output"]
            .as_str()
            .is_some_and(|o| o.contains("changed since")),
        "{step}"
    );
}

/// A script that is not there when the plan is loaded cannot be hashed: the
/// plan is invalid (someone could put any script there before the run).
#[test]
fn a_script_missing_at_submission_makes_the_plan_invalid() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: later\ntitle: t\nsteps:\n  - {name: s, run: sh @D@/later.sh, rollback: {run: 'true'}}\n",
    );
    let (code, _, err) = env.run(&["plan", "validate", path(&plan)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("runs `") && err.contains("cannot be hashed"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Also: `run ID --param` is an error, not silently ignored.

#[test]
fn run_by_id_with_a_param_is_a_usage_error() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: params\ntitle: t\nauthor: alice\nparams: {n: 1}\nsteps:\n  - {name: s, run: 'echo {{n}}'}\n",
    );
    env.submit_and_approve(&plan, "params");
    let (code, _, err) = env.run(&["run", "params", "--param", "n=2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--param applies to a plan file"), "{err}");
    assert!(env.of("run_started", None).is_empty());
}

// ---------------------------------------------------------------------------
// Also: a broken policy file does not blind the auditor.

/// `audit verify|tail|export` exited 1 on an invalid `config/opsgate.yaml`.
/// The commands that only read the log work without the policy now (the
/// audit key aside, read leniently from it), and say the policy is broken.
#[test]
fn the_audit_reads_work_with_a_broken_policy() {
    let env = Env::new(Some("audit: {key_file: audit.key}\n"));
    std::fs::write(env.p("audit.key"), "an-audit-key-of-32-bytes-0123456").expect("key");
    let plan = env.plan("plan.yaml", REJECTED);
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    let policy = env.policy.clone().expect("a policy file");
    std::fs::write(&policy, "audit: {key_file: audit.key}\nnot_a_section: 1\n").expect("broken");
    let (code, _, err) = env.run(&["status"]);
    assert_eq!(code, 1, "deciding needs the policy: {err}");
    for args in [
        &["audit", "verify"][..],
        &["audit", "tail", "-n", "1"],
        &["audit", "export"],
        &["audit", "head"],
        &["audit", "replay", "rejected"],
    ] {
        let (code, out, err) = env.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
    }
    let (_, _, err) = env.run(&["audit", "verify"]);
    assert!(err.contains("the policy does not load"), "{err}");
    let out = env.ok(&["audit", "verify"]);
    assert!(
        out.contains("chain intact"),
        "the key was read from the broken file: {out}"
    );
}

// ---------------------------------------------------------------------------
// Also: refusals leave a trace.

/// A self-approval and an unapproved run exited 3 and wrote nothing: the
/// attempts left no trace. Each refusal by a rule is a `refused` record now
/// (who, what, the reason code, the plan and policy hashes), durable before
/// the answer.
#[test]
fn refusals_are_recorded_with_who_what_and_why() {
    let env = Env::new(Some("approvals: {separation_of_duties: true}\n"));
    let plan = env.plan("plan.yaml", REJECTED);
    env.ok(&["submit", path(&plan), "--as", "alice"]);
    let hash = env.of("plan_submitted", None)[0]["plan_hash"].clone();
    env.refused(
        &["approve", "rejected", "--as", "alice"],
        "submitted the plan",
    );
    env.refused(&["run", "rejected", "--as", "mallory"], "may not run");
    let refused = env.of("refused", None);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["attempt"], "approve");
    assert_eq!(refused[0]["code"], "self_approval");
    assert_eq!(refused[0]["user"], "alice");
    assert_eq!(refused[0]["channel"], "cli");
    assert_eq!(refused[0]["plan_hash"], hash);
    assert!(refused[0]["policy_hash"].is_string());
    assert_eq!(refused[1]["attempt"], "run");
    assert_eq!(refused[1]["code"], "not_approved");
    assert_eq!(refused[1]["user"], "mallory");
    env.verify();
    // The timeline shows them.
    let out = env.ok(&["audit", "replay", "rejected"]);
    assert!(out.contains("refused (self_approval)"), "{out}");
}

/// Plan `id` from `yaml` (authored by `a`), and its approval by bob under
/// the test policy.
fn approved_by_bob(
    id: &str,
    yaml: &str,
) -> (
    opsgate::core::plan::ClassifiedPlan,
    opsgate::core::approval::ApprovedPlan,
) {
    use opsgate::core::approval::{Subject, Verdict, Vote, evaluate};
    let policy = &common::POLICY;
    let cp = opsgate::core::plan::load_plan("p.yaml", yaml, policy, common::today())
        .expect("the plan loads");
    let subject = Subject {
        plan_id: id,
        plan_hash: &cp.hash,
        risk: cp.risk,
        author: "a",
        author_key: None,
        mutates_production: false,
        has_override: false,
    };
    let vote = Vote {
        approver: "bob".into(),
        channel: opsgate::audit::Channel::Cli,
        plan_hash: cp.hash.clone(),
        policy_hash: policy.hash.clone(),
        at: chrono::Utc::now(),
        granted: true,
        reason: None,
        proof: None,
        submission_seq: None,
        rollback_of: None,
    };
    match evaluate(
        &policy.policy,
        &policy.hash,
        &subject,
        &[vote],
        chrono::Utc::now(),
    ) {
        Verdict::Approved { plan, .. } => (cp, plan),
        other => panic!("bob's approval approves it: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 21. A rollback runs only with leave for that run: the engine's fields are
// private, and `rollback` takes a permit that holds an approval of the
// plan and the run's own lock. Before, any holder of an engine (a door, a
// library user) could roll back any run with `engine.rollback(..)`.

#[test]
fn a_rollback_permit_for_another_run_or_plan_rolls_nothing_back() {
    use opsgate::audit::ledger::RunLock;
    use opsgate::audit::{AuditLog, Sealer, Status};
    use opsgate::exec::engine::{Engine, RollbackPermit, RunReport, RunSpec};

    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("rolled-back");
    let plan_yaml = |id: &str| {
        format!(
            "id: {id}\ntitle: t\nauthor: a\nsteps:\n  - {{name: s, run: 'true', rollback: {{run: 'touch {}'}}}}\n",
            marker.display()
        )
    };
    let policy = &common::POLICY;
    let (cp, approval) = approved_by_bob("mine", &plan_yaml("mine"));
    let (_, other_plan) = approved_by_bob("other", &plan_yaml("other"));
    let log = AuditLog::open(
        &dir.path().join("audit.jsonl"),
        Sealer::Sha256,
        Default::default(),
    )
    .expect("log");
    let backends = opsgate::native::Backends::new(&Default::default());
    let engine = Engine::new(RunSpec {
        log: &log,
        plan_id: "mine",
        plan: &cp.plan,
        policy_hash: &policy.hash,
        run_id: "r-mine".into(),
        user: "a".into(),
        backends: &backends,
    })
    .env(std::collections::BTreeMap::from([(
        "PATH".to_owned(),
        "/usr/bin:/bin".to_owned(),
    )]));
    let report = RunReport {
        run_id: "r-mine".into(),
        status: Status::Failed,
        completed: vec![0],
        duration: std::time::Duration::ZERO,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The lock of another run, with this plan's approval.
    let other_lock = RunLock::take(log.path(), "p-other", "r-other").expect("lock");
    let wrong_run = RollbackPermit::new(approval.clone(), &other_lock);
    let refused = rt.block_on(engine.rollback(&wrong_run, &report, "test", false));
    assert!(refused.is_err(), "{refused:?}");
    // This run's lock, with another plan's approval.
    let lock = RunLock::take(log.path(), "p-mine", "r-mine").expect("lock");
    let wrong_plan = RollbackPermit::new(other_plan, &lock);
    let refused = rt.block_on(engine.rollback(&wrong_plan, &report, "test", false));
    assert!(refused.is_err(), "{refused:?}");
    assert!(!marker.exists(), "a rollback ran without leave");
    assert_eq!(log.ledger().expect("ledger").plans().count(), 0);
    // The right permit rolls it back: the check above can see a rollback.
    let permit = RollbackPermit::new(approval, &lock);
    let status = rt
        .block_on(engine.rollback(&permit, &report, "test", false))
        .expect("the rollback runs");
    assert_eq!(status, Status::Succeeded);
    assert!(marker.exists(), "the permitted rollback did not run");
}
