//! Tampering with the audit log: every change to the file's bytes is
//! detected by `opsgate audit verify` and named (kind, line, seq, offset)
//! with exit 1; the limits of a plain SHA-256 chain are pinned down too
//! (an appended forgery passes, a rewritten suffix is caught only against
//! an exported head), and `audit repair` fixes a torn tail and nothing else.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use common::repo;
use opsgate::audit::chain::GENESIS;
use opsgate::audit::{
    AuditKey, AuditLog, Channel, CheckPhase, Decision, Event, KEY_ENV, Record, Sealer, Status,
};
use opsgate::core::digest::{PlanHash, PolicyHash};
use opsgate::core::redact::Redactor;
use opsgate::core::risk::RiskLevel;
use regex::Regex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The HMAC key of keyed logs (at least 16 bytes).
const KEY: &str = "tamper-test-key-0123456789abcdef";
const OTHER_KEY: &str = "another-key-0123456789abcdef";

// ---------------------------------------------------------------------------
// Building logs with the library API

fn sha(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn plan_hash(id: &str) -> PlanHash {
    PlanHash::new(sha(&format!("plan {id}")))
}

fn policy_hash() -> PolicyHash {
    PolicyHash::new(sha("policy"))
}

fn decision(plan: &str, approver: &str, risk: RiskLevel, reason: Option<&str>) -> Decision {
    Decision {
        rollback_of: None,
        identity: None,
        submission_seq: None,
        plan_id: plan.into(),
        plan_hash: plan_hash(plan),
        policy_hash: policy_hash(),
        risk,
        approver: approver.into(),
        channel: Channel::Cli,
        reason: reason.map(str::to_owned),
        metadata: Default::default(),
    }
}

fn submitted(plan: &str, risk: RiskLevel, author: &str) -> Event {
    Event::PlanSubmitted {
        fingerprints: Default::default(),
        plan_id: plan.into(),
        plan_hash: plan_hash(plan),
        policy_hash: policy_hash(),
        risk,
        author: author.into(),
        submitted_by: author.into(),
        identity: None,
        mutates_production: false,
        redacted: false,
        plan: json!({"id": plan, "steps": [{"name": "s1", "run": "echo hi"}]}),
    }
}

/// Twenty events of every kind, over three plans and two runs.
fn events() -> Vec<Event> {
    let plan = String::from("p-alpha");
    let (r1, r2) = (String::from("r-1"), String::from("r-2"));
    vec![
        submitted("p-alpha", RiskLevel::High, "alice"),
        Event::ApprovalGranted(decision(
            "p-alpha",
            "bob",
            RiskLevel::High,
            Some("looks fine"),
        )),
        Event::RunStarted {
            env: Default::default(),
            plan_id: plan.clone(),
            run_id: r1.clone(),
            plan_hash: plan_hash("p-alpha"),
            policy_hash: policy_hash(),
            dry_run: false,
            user: "carol".into(),
            drift: None,
        },
        Event::StepStarted {
            action_sha256: None,
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 1,
            name: "scale up".into(),
            action: "kubectl scale deploy/api --replicas=5".into(),
            risk: RiskLevel::High,
            resource: Some("deployment/api".into()),
        },
        Event::CheckFinished {
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 1,
            phase: CheckPhase::Pre,
            action: "kubectl get deploy/api".into(),
            status: Status::Passed,
            attempts: 1,
            duration_seconds: 0.25,
            output: "api   3/3".into(),
        },
        Event::StepFinished {
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 1,
            name: "scale up".into(),
            action: "kubectl scale deploy/api --replicas=5".into(),
            status: Status::Succeeded,
            exit_code: Some(0),
            duration_seconds: 1.5,
            output: "deployment.apps/api scaled".into(),
        },
        Event::StepStarted {
            action_sha256: None,
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 2,
            name: "migrate".into(),
            action: "./migrate.sh".into(),
            risk: RiskLevel::Medium,
            resource: None,
        },
        Event::StepFinished {
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 2,
            name: "migrate".into(),
            action: "./migrate.sh".into(),
            status: Status::Failed,
            exit_code: Some(3),
            duration_seconds: 2.0,
            output: "error: lock held".into(),
        },
        Event::RollbackStarted {
            user: None,
            plan_id: plan.clone(),
            run_id: r1.clone(),
            reason: "step 2 failed".into(),
            actions: Vec::new(),
        },
        Event::RollbackStepFinished {
            plan_id: plan.clone(),
            run_id: r1.clone(),
            step: 1,
            name: "scale down".into(),
            action: "kubectl scale deploy/api --replicas=3".into(),
            status: Status::Succeeded,
            exit_code: Some(0),
            duration_seconds: 0.75,
            output: String::new(),
        },
        Event::RollbackFinished {
            plan_id: plan.clone(),
            run_id: r1.clone(),
            status: Status::Succeeded,
            duration_seconds: 0.8,
        },
        Event::RunFinished {
            plan_id: plan.clone(),
            run_id: r1,
            dry_run: false,
            status: Status::Failed,
            duration_seconds: 5.0,
        },
        submitted("p-beta", RiskLevel::Medium, "dave"),
        Event::ApprovalRejected(decision(
            "p-beta",
            "erin",
            RiskLevel::Medium,
            Some("not during the freeze"),
        )),
        submitted("p-gamma", RiskLevel::Low, "frank"),
        Event::ApprovalExpired(Decision {
            channel: Channel::System,
            ..decision("p-gamma", "system", RiskLevel::Low, None)
        }),
        Event::RunStarted {
            env: Default::default(),
            plan_id: plan.clone(),
            run_id: r2.clone(),
            plan_hash: plan_hash("p-alpha"),
            policy_hash: policy_hash(),
            dry_run: true,
            user: "carol".into(),
            drift: None,
        },
        Event::StepStarted {
            action_sha256: None,
            plan_id: plan.clone(),
            run_id: r2.clone(),
            step: 1,
            name: "scale up".into(),
            action: "kubectl scale deploy/api --replicas=5".into(),
            risk: RiskLevel::High,
            resource: Some("deployment/api".into()),
        },
        Event::RunCancelled {
            plan_id: plan.clone(),
            run_id: r2.clone(),
            user: "carol".into(),
            kill: true,
            reason: Some("wrong window".into()),
        },
        Event::RunFinished {
            plan_id: plan,
            run_id: r2,
            dry_run: true,
            status: Status::Cancelled,
            duration_seconds: 0.5,
        },
    ]
}

fn hmac() -> Sealer {
    Sealer::Hmac(AuditKey::new(KEY.as_bytes().to_vec()).expect("a long enough key"))
}

/// Writes the twenty events to `dir/audit.jsonl` and returns the path.
fn write_log(dir: &Path, sealer: Sealer) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path, sealer, Redactor::default()).expect("the log opens");
    for e in events() {
        log.append(e).expect("append");
    }
    path
}

// ---------------------------------------------------------------------------
// Reading and rewriting the file's bytes

/// The log's lines, without newlines; the file must end with one.
fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the log reads");
    assert!(text.ends_with('\n'), "the log ends with a newline");
    text.lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("the log writes");
}

/// The byte offset of 1-based line `n`.
fn offset_of(lines: &[String], n: usize) -> u64 {
    lines[..n - 1].iter().map(|l| l.len() as u64 + 1).sum()
}

fn member_re(field: &str) -> Regex {
    Regex::new(&format!(
        r#""{field}":("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)"#
    ))
    .expect("a valid regex")
}

/// The raw JSON value of the first `"field":` member of a line.
fn raw(line: &str, field: &str) -> Option<String> {
    member_re(field).captures(line).map(|c| c[1].to_owned())
}

/// The line with the first `"field":` member's value replaced by `value`
/// (raw JSON).
fn set_raw(line: &str, field: &str, value: &str) -> String {
    let re = member_re(field);
    let m = re
        .captures(line)
        .and_then(|c| c.get(1))
        .expect("the line has the field");
    format!("{}{value}{}", &line[..m.start()], &line[m.end()..])
}

fn seq_of(line: &str) -> u64 {
    let v: Value = serde_json::from_str(line).expect("a JSON line");
    v["seq"].as_u64().expect("a seq")
}

fn hash_of(line: &str) -> String {
    let v: Value = serde_json::from_str(line).expect("a JSON line");
    v["hash"].as_str().expect("a hash").to_owned()
}

/// A forger's seal: plain SHA-256 over the line without its hash member,
/// exactly as the format describes it.
fn reseal(line: &str) -> String {
    let i = line.rfind(r#","hash":""#).expect("a hash member");
    let body = format!("{}}}", &line[..i]);
    format!("{},\"hash\":\"{}\"}}", &line[..i], sha(&body))
}

/// Rewrites `prev` and re-seals every line from 0-based index `from`.
fn rechain_from(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let prev = if i == 0 {
            GENESIS.to_owned()
        } else {
            hash_of(&lines[i - 1])
        };
        lines[i] = reseal(&set_raw(&lines[i], "prev", &format!("\"{prev}\"")));
    }
}

/// Changes the last hex digit of a quoted hash.
fn flip_hex(raw_hash: &str) -> String {
    let inner = raw_hash.trim_matches('"');
    let (head, last) = inner.split_at(inner.len() - 1);
    let flipped = if last == "0" { "1" } else { "0" };
    format!("\"{head}{flipped}\"")
}

// ---------------------------------------------------------------------------
// Running the binary

fn opsgate() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("opsgate");
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", common::scratch_state())
        .env_remove("OPSGATE_CONFIG")
        .env_remove("OPSGATE_AUDIT_LOG")
        .env_remove(KEY_ENV);
    cmd
}

fn audit(log: &Path, key: Option<&str>) -> assert_cmd::Command {
    let mut cmd = opsgate();
    cmd.arg("--audit-log").arg(log).arg("audit");
    if let Some(dir) = log.parent() {
        // This log's high-water marks live beside it.
        cmd.env("XDG_STATE_HOME", dir.join("state"));
    }
    if let Some(k) = key {
        cmd.env(KEY_ENV, k);
    }
    cmd
}

/// `audit verify --json [extra…]`: the exit code and the report.
fn verify(log: &Path, key: Option<&str>, extra: &[&str]) -> (i32, Value) {
    let out = audit(log, key)
        .args(["verify", "--json"])
        .args(extra)
        .output()
        .expect("opsgate runs");
    let code = out.status.code().expect("an exit code");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// Asserts exit 1 and the named problem: kind, 1-based line, seq, and the
/// line's byte offset in `lines` (the damaged file's lines).
#[track_caller]
fn assert_problem(
    (code, report): &(i32, Value),
    kind: &str,
    line: usize,
    seq: Option<u64>,
    lines: &[String],
    what: &str,
) {
    assert_eq!(*code, 1, "{what}: exit code; report {report}");
    assert_eq!(report["ok"], false, "{what}: {report}");
    let p = &report["problem"];
    assert_eq!(p["kind"], kind, "{what}: kind; {report}");
    assert_eq!(p["line"], line as u64, "{what}: line; {report}");
    assert_eq!(p["seq"], json!(seq), "{what}: seq; {report}");
    if line > 0 {
        assert_eq!(
            p["offset"],
            offset_of(lines, line),
            "{what}: offset; {report}"
        );
    }
    assert!(
        p["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a message; {report}"
    );
}

/// `audit head` as `SEQ:HASH`, for `--expect-head`.
fn head_arg(log: &Path, key: Option<&str>) -> String {
    let out = audit(log, key).arg("head").output().expect("opsgate runs");
    assert!(out.status.success(), "audit head: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .replacen(' ', ":", 1)
}

// ---------------------------------------------------------------------------
// An intact log

#[test]
fn an_intact_log_verifies_and_its_head_is_the_last_record() {
    for (sealer, key) in [(Sealer::Sha256, None), (hmac(), Some(KEY))] {
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(dir.path(), sealer);
        let lines = read_lines(&log);
        assert_eq!(lines.len(), 20);

        let (code, report) = verify(&log, key, &[]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["ok"], true);
        assert_eq!(report["problem"], Value::Null);
        assert_eq!(report["events"], 20);
        assert_eq!(report["log"], log.display().to_string());
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        let last: Value = serde_json::from_str(&lines[19]).unwrap();
        assert_eq!(report["first_ts"], first["ts"]);
        assert_eq!(report["last_ts"], last["ts"]);
        assert_eq!(report["head"], json!({"seq": 20, "hash": last["hash"]}));

        // `audit head`, as JSON and as text, names the same record.
        let out = audit(&log, key).args(["head", "--json"]).output().unwrap();
        assert!(out.status.success());
        let head: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(head, report["head"]);
        assert_eq!(
            head_arg(&log, key),
            format!("20:{}", last["hash"].as_str().unwrap())
        );
        if key.is_some() {
            assert!(last["hash"].as_str().unwrap().starts_with("hmac-sha256:"));
            assert_eq!(last["alg"], "hmac-sha256");
        }

        // The head checks out against itself.
        let (code, report) = verify(&log, key, &["--expect-head", &head_arg(&log, key)]);
        assert_eq!(code, 0, "{report}");

        // The text form says the same.
        let out = audit(&log, key).arg("verify").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("chain intact · 20 event(s)"), "{text}");

        // Every line parses back into a record with its own seq and links.
        let mut prev = GENESIS.to_owned();
        for (i, l) in lines.iter().enumerate() {
            let r: Record = serde_json::from_str(l).unwrap();
            assert_eq!(r.seq, i as u64 + 1);
            assert_eq!(r.prev, prev);
            prev = r.hash;
        }
    }
}

#[test]
fn an_empty_log_verifies_with_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let (code, report) = verify(&log, None, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events"], 0);
    assert_eq!(report["head"], Value::Null);
}

#[test]
fn verifying_a_missing_log_fails_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nowhere.jsonl");
    let out = audit(&log, None).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&log.display().to_string()), "{err}");
    assert!(!log.exists());
}

// ---------------------------------------------------------------------------
// Editing fields

/// A field to edit, the line to edit it on (the candidate nearest `near`
/// among the middle lines that have it), and its new value.
struct FieldEdit {
    field: &'static str,
    near: usize,
    new_value: fn(&str) -> String,
}

fn field_edits() -> Vec<FieldEdit> {
    vec![
        FieldEdit {
            field: "seq",
            near: 10,
            new_value: |old| (old.parse::<u64>().expect("a seq") + 5).to_string(),
        },
        FieldEdit {
            field: "ts",
            near: 4,
            new_value: |_| "\"2020-02-02T02:02:02.000Z\"".into(),
        },
        FieldEdit {
            field: "type",
            near: 7,
            new_value: |old| {
                if old == "\"run_cancelled\"" {
                    "\"run_started\"".into()
                } else {
                    "\"run_cancelled\"".into()
                }
            },
        },
        FieldEdit {
            field: "status",
            near: 8,
            new_value: |old| {
                if old == "\"succeeded\"" {
                    "\"failed\"".into()
                } else {
                    "\"succeeded\"".into()
                }
            },
        },
        FieldEdit {
            field: "approver",
            near: 14,
            new_value: |_| "\"mallory\"".into(),
        },
        FieldEdit {
            field: "risk",
            near: 13,
            new_value: |old| {
                if old == "\"LOW\"" {
                    "\"CRITICAL\"".into()
                } else {
                    "\"LOW\"".into()
                }
            },
        },
        FieldEdit {
            field: "exit_code",
            near: 8,
            new_value: |old| if old == "0" { "1".into() } else { "0".into() },
        },
        FieldEdit {
            field: "output",
            near: 6,
            new_value: |_| "\"all good\"".into(),
        },
        FieldEdit {
            field: "dry_run",
            near: 17,
            new_value: |old| {
                if old == "true" {
                    "false".into()
                } else {
                    "true".into()
                }
            },
        },
        FieldEdit {
            field: "prev",
            near: 12,
            new_value: flip_hex,
        },
        FieldEdit {
            field: "hash",
            near: 15,
            new_value: flip_hex,
        },
    ]
}

/// Applies an edit to a copy of `lines`: returns the damaged lines and the
/// 1-based number of the edited line.
fn apply_edit(lines: &[String], edit: &FieldEdit) -> (Vec<String>, usize) {
    let n = (2..lines.len())
        .filter(|&n| raw(&lines[n - 1], edit.field).is_some())
        .min_by_key(|&n| n.abs_diff(edit.near))
        .expect("a middle line has the field");
    let old = raw(&lines[n - 1], edit.field).expect("the field");
    let new = (edit.new_value)(&old);
    assert_ne!(old, new, "{}: the edit changes something", edit.field);
    let mut damaged = lines.to_vec();
    damaged[n - 1] = set_raw(&lines[n - 1], edit.field, &new);
    (damaged, n)
}

#[test]
fn editing_any_field_of_a_middle_line_is_a_hash_mismatch_on_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    let mut tried = Vec::new();
    for edit in field_edits() {
        let (damaged, n) = apply_edit(&lines, &edit);
        write_lines(&log, &damaged);
        // The hash is checked before the seq, so an edited seq is a hash
        // mismatch too, reported with the seq the line now claims.
        let seq = seq_of(&damaged[n - 1]);
        let what = format!("edited `{}` on line {n}", edit.field);
        let result = verify(&log, None, &[]);
        assert_problem(&result, "hash_mismatch", n, Some(seq), &damaged, &what);
        assert_eq!(result.1["events"], n as u64 - 1, "{what}");
        tried.push((edit.field, n));
    }
    // The edits hit several different lines.
    let mut at: Vec<usize> = tried.iter().map(|t| t.1).collect();
    at.sort_unstable();
    at.dedup();
    assert!(at.len() >= 6, "{tried:?}");
    // And the untouched log still verifies.
    write_lines(&log, &lines);
    assert_eq!(verify(&log, None, &[]).0, 0);
}

#[test]
fn an_edited_line_is_named_in_the_text_report_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines[8] = set_raw(&lines[8], "reason", "\"no reason\"");
    write_lines(&log, &lines);
    let out = audit(&log, None).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("BROKEN"), "{text}");
    assert!(text.contains("line 9 (seq 9): hash mismatch"), "{text}");
    assert!(text.contains("8 event(s) verified before it"), "{text}");
}

#[test]
fn an_unsupported_version_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines[10] = set_raw(
        &lines[10],
        "v",
        &(opsgate::core::event::VERSION + 1).to_string(),
    );
    write_lines(&log, &lines);
    let result = verify(&log, None, &[]);
    assert_problem(
        &result,
        "unsupported_version",
        11,
        Some(11),
        &lines,
        "v edited",
    );
}

#[test]
fn an_edit_with_a_recomputed_sha256_breaks_the_link_to_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    for edit in field_edits() {
        if edit.field == "hash" {
            // Re-sealing restores the hash itself.
            continue;
        }
        let (mut damaged, n) = apply_edit(&lines, &edit);
        damaged[n - 1] = reseal(&damaged[n - 1]);
        write_lines(&log, &damaged);
        let what = format!("edited and re-sealed `{}` on line {n}", edit.field);
        let result = verify(&log, None, &[]);
        match edit.field {
            // The line itself is sound, but out of sequence.
            "seq" => assert_problem(
                &result,
                "seq_gap",
                n,
                Some(seq_of(&damaged[n - 1])),
                &damaged,
                &what,
            ),
            // The line no longer links to the one before.
            "prev" => assert_problem(&result, "broken_link", n, Some(n as u64), &damaged, &what),
            // The line checks, the next one's `prev` no longer matches it.
            _ => assert_problem(
                &result,
                "broken_link",
                n + 1,
                Some(n as u64 + 1),
                &damaged,
                &what,
            ),
        }
    }
}

#[test]
fn with_hmac_an_edit_with_a_recomputed_sha256_is_caught_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), hmac());
    let lines = read_lines(&log);
    assert_eq!(verify(&log, Some(KEY), &[]).0, 0);
    for edit in field_edits() {
        let (mut damaged, n) = apply_edit(&lines, &edit);
        damaged[n - 1] = reseal(&damaged[n - 1]);
        write_lines(&log, &damaged);
        let what = format!(
            "keyed log: edited and re-sealed `{}` on line {n}",
            edit.field
        );
        let seq = seq_of(&damaged[n - 1]);
        let result = verify(&log, Some(KEY), &[]);
        assert_problem(&result, "hash_mismatch", n, Some(seq), &damaged, &what);
    }
}

// ---------------------------------------------------------------------------
// Deleting, swapping and inserting lines

#[test]
fn deleting_a_line_is_a_seq_gap_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    for n in [1, 2, 7, 13, 19] {
        let mut damaged = lines.clone();
        damaged.remove(n - 1);
        write_lines(&log, &damaged);
        let result = verify(&log, None, &[]);
        assert_problem(
            &result,
            "seq_gap",
            n,
            Some(n as u64 + 1),
            &damaged,
            &format!("deleted line {n}"),
        );
    }
}

#[test]
fn deleting_a_line_and_renumbering_breaks_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines.remove(6);
    for l in &mut lines[6..] {
        let seq = seq_of(l) - 1;
        *l = reseal(&set_raw(l, "seq", &seq.to_string()));
    }
    write_lines(&log, &lines);
    let result = verify(&log, None, &[]);
    assert_problem(
        &result,
        "broken_link",
        7,
        Some(7),
        &lines,
        "deleted and renumbered",
    );
}

#[test]
fn swapping_two_lines_is_a_seq_gap_at_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    for (a, b) in [(5, 6), (4, 12), (1, 20)] {
        let mut damaged = lines.clone();
        damaged.swap(a - 1, b - 1);
        write_lines(&log, &damaged);
        let result = verify(&log, None, &[]);
        assert_problem(
            &result,
            "seq_gap",
            a,
            Some(b as u64),
            &damaged,
            &format!("swapped lines {a} and {b}"),
        );
    }
}

#[test]
fn swapping_two_lines_and_their_seqs_breaks_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines.swap(8, 9);
    lines[8] = reseal(&set_raw(&lines[8], "seq", "9"));
    lines[9] = reseal(&set_raw(&lines[9], "seq", "10"));
    write_lines(&log, &lines);
    let result = verify(&log, None, &[]);
    assert_problem(
        &result,
        "broken_link",
        9,
        Some(9),
        &lines,
        "swapped with seqs",
    );
}

/// A forged `step_finished` for `p-alpha` that chains onto `after`.
fn forged_after(after: &str, keep_alg_of: Option<&str>) -> String {
    let seq = seq_of(after) + 1;
    let alg = keep_alg_of
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            format!(r#","alg":{},"key_id":{}"#, v["alg"], v["key_id"])
        })
        .unwrap_or_default();
    let body = format!(
        r#"{{"v":1,"seq":{seq},"ts":"2026-01-26T13:00:00.000Z","type":"approval_granted","plan_id":"p-alpha","plan_hash":"{}","policy_hash":"{}","risk":"HIGH","approver":"mallory","channel":"cli"{alg},"prev":"{}","hash":"x"}}"#,
        plan_hash("p-alpha"),
        policy_hash(),
        hash_of(after)
    );
    reseal(&body)
}

#[test]
fn with_plain_sha256_a_forged_line_appended_at_the_end_is_not_detectable() {
    // The documented limit of an unkeyed chain: anyone can extend it. The
    // forged record parses, links and verifies; only an HMAC key (or an
    // external copy of the log) tells it apart.
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let expect = head_arg(&log, None);
    let mut lines = read_lines(&log);
    let forged = forged_after(&lines[19], None);
    let _: Record = serde_json::from_str(&forged).unwrap();
    lines.push(forged.clone());
    write_lines(&log, &lines);
    let (code, report) = verify(&log, None, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events"], 21);
    assert_eq!(report["head"]["hash"], hash_of(&forged));
    // An exported head anchors the prefix, not the end: still no problem.
    let (code, report) = verify(&log, None, &["--expect-head", &expect]);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn with_plain_sha256_a_forged_line_in_the_middle_is_a_seq_gap_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    let forged = forged_after(&lines[9], None);
    lines.insert(10, forged);
    write_lines(&log, &lines);
    // The forged line itself checks out; the original seq 11 after it does
    // not follow.
    let result = verify(&log, None, &[]);
    assert_problem(&result, "seq_gap", 12, Some(11), &lines, "inserted line 11");
}

#[test]
fn with_plain_sha256_a_rewritten_suffix_is_caught_only_against_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let expect = head_arg(&log, None);
    let mut lines = read_lines(&log);
    lines.insert(10, forged_after(&lines[9], None));
    for l in &mut lines[11..] {
        let seq = seq_of(l) + 1;
        *l = set_raw(l, "seq", &seq.to_string());
    }
    rechain_from(&mut lines, 11);
    write_lines(&log, &lines);
    let (code, report) = verify(&log, None, &[]);
    assert_eq!(code, 0, "a consistent rewrite passes alone: {report}");
    assert_eq!(report["events"], 21);
    let result = verify(&log, None, &["--expect-head", &expect]);
    assert_problem(
        &result,
        "head_mismatch",
        20,
        Some(20),
        &lines,
        "rewritten suffix",
    );
}

#[test]
fn with_hmac_a_forged_line_is_detected_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), hmac());
    let lines = read_lines(&log);

    // Appended at the end, without the alg fields: an unkeyed record.
    let mut damaged = lines.clone();
    damaged.push(forged_after(&lines[19], None));
    write_lines(&log, &damaged);
    let result = verify(&log, Some(KEY), &[]);
    assert_problem(
        &result,
        "key_mismatch",
        21,
        Some(21),
        &damaged,
        "appended, unkeyed",
    );

    // Appended at the end, claiming the key but sealed with SHA-256.
    let mut damaged = lines.clone();
    damaged.push(forged_after(&lines[19], Some(&lines[19])));
    write_lines(&log, &damaged);
    let result = verify(&log, Some(KEY), &[]);
    assert_problem(
        &result,
        "hash_mismatch",
        21,
        Some(21),
        &damaged,
        "appended, keyed fields",
    );

    // The same, with the hash labelled as an HMAC.
    let mut damaged = lines.clone();
    let forged = forged_after(&lines[19], Some(&lines[19]));
    let relabelled = forged.replace(r#""hash":"sha256:"#, r#""hash":"hmac-sha256:"#);
    assert_ne!(forged, relabelled);
    damaged.push(relabelled);
    write_lines(&log, &damaged);
    let result = verify(&log, Some(KEY), &[]);
    assert_problem(
        &result,
        "hash_mismatch",
        21,
        Some(21),
        &damaged,
        "appended, relabelled",
    );

    // Inserted in the middle.
    for keep_alg in [false, true] {
        let mut damaged = lines.clone();
        let forged = forged_after(&lines[9], keep_alg.then_some(lines[9].as_str()));
        damaged.insert(10, forged);
        write_lines(&log, &damaged);
        let kind = if keep_alg {
            "hash_mismatch"
        } else {
            "key_mismatch"
        };
        let result = verify(&log, Some(KEY), &[]);
        assert_problem(
            &result,
            kind,
            11,
            Some(11),
            &damaged,
            &format!("inserted, keep alg {keep_alg}"),
        );
    }

    // A keyed log rewritten whole as a plain SHA-256 chain.
    let mut damaged: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            l.replace(
                &format!(r#","alg":{},"key_id":{}"#, v["alg"], v["key_id"]),
                "",
            )
        })
        .collect();
    assert!(!damaged[0].contains("\"alg\""), "{}", damaged[0]);
    rechain_from(&mut damaged, 0);
    write_lines(&log, &damaged);
    assert_eq!(verify(&log, None, &[]).0, 0, "it is a valid unkeyed chain");
    let result = verify(&log, Some(KEY), &[]);
    assert_problem(
        &result,
        "key_mismatch",
        1,
        Some(1),
        &damaged,
        "rewritten unkeyed",
    );
}

// ---------------------------------------------------------------------------
// Truncation and exported heads

#[test]
fn truncating_the_tail_is_caught_against_the_exported_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let expect = head_arg(&log, None);
    assert!(expect.starts_with("20:sha256:"), "{expect}");
    let lines = read_lines(&log);

    for keep in [19, 17, 1] {
        let cut = lines[..keep].to_vec();
        write_lines(&log, &cut);
        // Alone, a shorter log is a valid log.
        let (code, report) = verify(&log, None, &[]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["events"], keep as u64);
        let result = verify(&log, None, &["--expect-head", &expect]);
        assert_problem(
            &result,
            "shorter_than_head",
            keep,
            Some(keep as u64),
            &cut,
            &format!("kept {keep} lines"),
        );
    }

    // Truncated to nothing.
    std::fs::write(&log, "").unwrap();
    let result = verify(&log, None, &["--expect-head", &expect]);
    assert_problem(&result, "shorter_than_head", 0, Some(0), &[], "emptied");
    assert_eq!(result.1["events"], 0);
}

#[test]
fn a_head_with_another_hash_is_a_head_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    // The hash of seq 14 claimed for seq 15.
    let wrong = format!("15:{}", hash_of(&lines[13]));
    let result = verify(&log, None, &["--expect-head", &wrong]);
    assert_problem(&result, "head_mismatch", 15, Some(15), &lines, "wrong head");
    assert_eq!(result.1["events"], 14);
    // The space-separated form, as `audit head` prints it, is accepted too.
    let right = format!("15 {}", hash_of(&lines[14]));
    assert_eq!(verify(&log, None, &["--expect-head", &right]).0, 0);
}

#[test]
fn a_malformed_expected_head_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    for bad in ["20", "x:sha256:00", "20:md5:abcd", "20:sha256:abc"] {
        let out = audit(&log, None)
            .args(["verify", "--expect-head", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("--expect-head"), "{bad}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Keys

#[test]
fn a_keyed_log_checked_with_another_key_or_none_is_a_key_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), hmac());
    let lines = read_lines(&log);
    let key_id = AuditKey::new(KEY.as_bytes().to_vec())
        .unwrap()
        .id()
        .to_owned();
    let other_id = AuditKey::new(OTHER_KEY.as_bytes().to_vec())
        .unwrap()
        .id()
        .to_owned();
    assert!(lines[0].contains(&key_id), "{}", lines[0]);

    let result = verify(&log, Some(OTHER_KEY), &[]);
    assert_problem(&result, "key_mismatch", 1, Some(1), &lines, "other key");
    let msg = result.1["problem"]["message"].as_str().unwrap();
    assert!(msg.contains(&key_id) && msg.contains(&other_id), "{msg}");

    let result = verify(&log, None, &[]);
    assert_problem(&result, "key_mismatch", 1, Some(1), &lines, "no key");
    let msg = result.1["problem"]["message"].as_str().unwrap();
    assert!(msg.contains(KEY_ENV), "{msg}");

    // An unkeyed log checked with a key.
    let plain = tempfile::tempdir().unwrap();
    let plain_log = write_log(plain.path(), Sealer::Sha256);
    let plain_lines = read_lines(&plain_log);
    let result = verify(&plain_log, Some(KEY), &[]);
    assert_problem(
        &result,
        "key_mismatch",
        1,
        Some(1),
        &plain_lines,
        "unkeyed log, key given",
    );

    // `audit head` refuses to vouch for a record it cannot check.
    let out = audit(&log, Some(OTHER_KEY)).arg("head").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_too_short_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), hmac());
    let out = audit(&log, Some("short")).arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(KEY_ENV) && err.contains("16 bytes"), "{err}");
}

// ---------------------------------------------------------------------------
// Bad JSON, torn tails and repair

#[test]
fn a_line_that_is_not_a_record_is_bad_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let lines = read_lines(&log);
    for (n, garbage) in [
        (6, "this is not JSON"),
        (9, ""),
        (12, "{\"v\":1,\"seq\":12"),
        (3, "[1,2,3]"),
    ] {
        let mut damaged = lines.clone();
        damaged[n - 1] = garbage.to_owned();
        write_lines(&log, &damaged);
        let result = verify(&log, None, &[]);
        assert_problem(
            &result,
            "bad_json",
            n,
            None,
            &damaged,
            &format!("line {n} = {garbage:?}"),
        );
    }
    // Valid JSON whose `hash` is not the last member.
    let mut damaged = lines.clone();
    let v: Value = serde_json::from_str(&lines[4]).unwrap();
    let hash = v["hash"].as_str().unwrap();
    damaged[4] = lines[4]
        .replace(&format!(r#","hash":"{hash}"}}"#), "}")
        .replacen('{', &format!(r#"{{"hash":"{hash}","#), 1);
    let _: Value = serde_json::from_str(&damaged[4]).unwrap();
    write_lines(&log, &damaged);
    let result = verify(&log, None, &[]);
    assert_problem(&result, "bad_json", 5, Some(5), &damaged, "hash moved");
}

/// Appends bytes without a newline: an interrupted write.
fn tear(log: &Path, bytes: &[u8]) -> u64 {
    use std::io::Write;
    let len = std::fs::metadata(log).expect("the log exists").len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("the log opens");
    f.write_all(bytes).expect("the torn bytes write");
    len
}

fn torn_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the dir reads")
        .map(|e| e.expect("a dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit.jsonl.torn-"))
        })
        .collect();
    v.sort();
    v
}

const TORN: &[u8] = br#"{"v":1,"seq":21,"ts":"2026-01-26T13:00:00.000Z","type":"run_fin"#;

#[test]
fn a_torn_tail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    tear(&log, TORN);
    lines.push(String::from_utf8(TORN.to_vec()).unwrap());
    let result = verify(&log, None, &[]);
    assert_problem(&result, "torn_tail", 21, None, &lines, "torn tail");
    assert_eq!(result.1["events"], 20);
    let msg = result.1["problem"]["message"].as_str().unwrap();
    assert!(msg.contains(&TORN.len().to_string()), "{msg}");
    assert!(msg.contains("audit repair"), "{msg}");
}

#[test]
fn repair_moves_a_torn_tail_aside_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let torn_at = tear(&log, TORN);
    assert_eq!(verify(&log, None, &[]).0, 1);

    let out = audit(&log, None)
        .args(["repair", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"repaired": true, "seq": 21}));

    // The torn bytes are kept beside the log, byte for byte.
    let aside = torn_files(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), TORN);

    // The log is cut where the torn bytes began and the repair recorded.
    let lines = read_lines(&log);
    assert_eq!(lines.len(), 21);
    assert_eq!(offset_of(&lines, 21), torn_at);
    let r: Record = serde_json::from_str(&lines[20]).unwrap();
    assert_eq!(r.seq, 21);
    assert_eq!(r.prev, hash_of(&lines[19]));
    match r.event {
        Event::LogRepaired {
            offset,
            torn_bytes,
            moved_to,
            newline_restored,
        } => {
            assert!(!newline_restored);
            assert_eq!(offset, torn_at);
            assert_eq!(torn_bytes, TORN.len() as u64);
            assert_eq!(
                Some(moved_to.as_str()),
                aside[0].file_name().and_then(|n| n.to_str())
            );
        }
        other => panic!("expected log_repaired, got {other:?}"),
    }
    let (code, report) = verify(&log, None, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events"], 21);

    // Nothing more to repair.
    let before = std::fs::read(&log).unwrap();
    let out = audit(&log, None)
        .args(["repair", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"repaired": false, "seq": null}));
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert_eq!(torn_files(dir.path()).len(), 1);
}

#[test]
fn repair_of_a_keyed_log_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), hmac());
    tear(&log, b"{\"v\":1,");
    let out = audit(&log, Some(KEY)).args(["repair"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("seq 21"), "{text}");
    let lines = read_lines(&log);
    assert!(lines[20].contains(r#""type":"log_repaired""#));
    assert!(lines[20].contains(r#""alg":"hmac-sha256""#));
    assert_eq!(verify(&log, Some(KEY), &[]).0, 0);
}

#[test]
fn repair_refuses_damage_before_the_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines[19] = set_raw(
        &lines[19],
        "hash",
        &flip_hex(&raw(&lines[19], "hash").unwrap()),
    );
    write_lines(&log, &lines);

    for torn in [None, Some(TORN)] {
        if let Some(bytes) = torn {
            tear(&log, bytes);
        }
        let before = std::fs::read(&log).unwrap();
        let out = audit(&log, None).args(["repair"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "torn {torn:?}: {out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("damaged at its last record"), "{err}");
        assert!(err.contains("hash mismatch"), "{err}");
        assert_eq!(std::fs::read(&log).unwrap(), before, "torn {torn:?}");
        assert!(torn_files(dir.path()).is_empty());
    }
}

#[test]
fn repair_refuses_a_log_broken_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), Sealer::Sha256);
    let mut lines = read_lines(&log);
    lines[9] = set_raw(&lines[9], "status", "\"failed\"");
    write_lines(&log, &lines);
    tear(&log, TORN);
    let before = std::fs::read(&log).unwrap();
    let out = audit(&log, None).args(["repair"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert!(torn_files(dir.path()).is_empty());
}
