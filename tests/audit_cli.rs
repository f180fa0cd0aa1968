//! The audit commands, run as a user would: `submit` (idempotent while a
//! plan is open, refusing a broken log), redaction of secrets before they
//! reach the disk, `audit export` filters and formats, `replay`, `tail`
//! and `head`.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use common::repo;
use opsgate::audit::chain::GENESIS;
use opsgate::audit::{AuditLog, Channel, Decision, Event, KEY_ENV, Record, Sealer, Status};
use opsgate::core::digest::{PlanHash, PolicyHash};
use opsgate::core::redact::{RedactPattern, Redactor};
use opsgate::core::risk::RiskLevel;
use regex::Regex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Running the binary

fn opsgate() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("opsgate");
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", common::scratch_state())
        .env("USER", "os-user")
        .env("OPSGATE_CONFIG", common::trust_as_file())
        .env_remove("OPSGATE_AUDIT_LOG")
        .env_remove("OPSGATE_LOG")
        .env_remove(KEY_ENV);
    cmd
}

/// `opsgate --audit-log LOG …`.
fn with_log(log: &Path) -> assert_cmd::Command {
    let mut cmd = opsgate();
    cmd.arg("--audit-log").arg(log);
    if let Some(dir) = log.parent() {
        // This log's high-water marks live beside it.
        cmd.env("XDG_STATE_HOME", dir.join("state"));
    }
    cmd
}

/// Runs a command; returns its exit code, stdout and stderr.
fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().expect("opsgate runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
fn ok(cmd: &mut assert_cmd::Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// `submit --json FILE [extra…]`, which must succeed.
#[track_caller]
fn submit(log: &Path, file: &Path, extra: &[&str]) -> Value {
    json(&ok(with_log(log)
        .args(["submit", "--json"])
        .args(extra)
        .arg(file)))
}

fn demo() -> PathBuf {
    repo().join("plans/demo-local.yaml")
}

fn verifies(log: &Path) -> bool {
    let (code, _, _) = run(with_log(log).args(["audit", "verify"]));
    code == 0
}

// ---------------------------------------------------------------------------
// The log file

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the log reads");
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("the log writes");
}

fn records(path: &Path) -> Vec<Record> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

fn sha(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The line with the first `"field":` member's value replaced by `value`
/// (raw JSON).
fn set_raw(line: &str, field: &str, value: &str) -> String {
    let re = Regex::new(&format!(
        r#""{field}":("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)"#
    ))
    .expect("a valid regex");
    let m = re
        .captures(line)
        .and_then(|c| c.get(1))
        .expect("the line has the field");
    format!("{}{value}{}", &line[..m.start()], &line[m.end()..])
}

/// Re-links and re-seals every line with plain SHA-256, as the format
/// describes: the hash covers the line without its final hash member.
fn rechain(lines: &mut [String]) {
    let mut prev = GENESIS.to_owned();
    for l in lines.iter_mut() {
        let linked = set_raw(l, "prev", &format!("\"{prev}\""));
        let i = linked.rfind(r#","hash":""#).expect("a hash member");
        let hash = sha(&format!("{}}}", &linked[..i]));
        *l = format!("{},\"hash\":\"{hash}\"}}", &linked[..i]);
        prev = hash;
    }
}

// ---------------------------------------------------------------------------
// Events

fn plan_hash(id: &str) -> PlanHash {
    PlanHash::new(sha(&format!("plan {id}")))
}

fn decision(plan: &str, approver: &str, risk: RiskLevel, reason: Option<&str>) -> Decision {
    Decision {
        rollback_of: None,
        identity: None,
        submission_seq: None,
        plan_id: plan.into(),
        plan_hash: plan_hash(plan),
        policy_hash: PolicyHash::new(sha("policy")),
        risk,
        approver: approver.into(),
        channel: Channel::Cli,
        reason: reason.map(str::to_owned),
        metadata: BTreeMap::new(),
    }
}

fn submitted(plan: &str, risk: RiskLevel, author: &str) -> Event {
    Event::PlanSubmitted {
        fingerprints: Default::default(),
        plan_id: plan.into(),
        plan_hash: plan_hash(plan),
        policy_hash: PolicyHash::new(sha("policy")),
        risk,
        author: author.into(),
        submitted_by: author.into(),
        identity: None,
        mutates_production: false,
        redacted: false,
        plan: json!({"id": plan}),
    }
}

fn run_started(plan: &str, run: &str, user: &str, dry_run: bool) -> Event {
    Event::RunStarted {
        env: Default::default(),
        plan_id: plan.into(),
        run_id: run.into(),
        plan_hash: plan_hash(plan),
        policy_hash: PolicyHash::new(sha("policy")),
        dry_run,
        user: user.into(),
        drift: None,
    }
}

fn run_finished(plan: &str, run: &str, dry_run: bool, status: Status) -> Event {
    Event::RunFinished {
        plan_id: plan.into(),
        run_id: run.into(),
        dry_run,
        status,
        duration_seconds: 4.5,
    }
}

fn step_finished(plan: &str, run: &str, step: u32, name: &str, status: Status) -> Event {
    Event::StepFinished {
        plan_id: plan.into(),
        run_id: run.into(),
        step,
        name: name.into(),
        action: format!("./step-{step}.sh"),
        status,
        exit_code: Some(if status == Status::Succeeded { 0 } else { 2 }),
        duration_seconds: 1.25,
        output: String::new(),
    }
}

fn append(log: &Path, events: Vec<Event>) {
    let log = AuditLog::open(log, Sealer::Sha256, Redactor::default()).expect("the log opens");
    for e in events {
        log.append(e).expect("append");
    }
}

fn seqs(jsonl: &str) -> Vec<u64> {
    jsonl
        .lines()
        .map(|l| json(l)["seq"].as_u64().expect("a seq"))
        .collect()
}

// ---------------------------------------------------------------------------
// submit

#[test]
fn submit_prints_the_plan_and_records_it_once_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("state/audit.jsonl");
    let v = submit(&log, &demo(), &["--as", "alice"]);
    let hash = ok(opsgate().args(["plan", "hash", "plans/demo-local.yaml"]));
    let policy = json(&ok(opsgate().args(["policy", "check", "--json"])));
    assert_eq!(v["plan_id"], "demo-local");
    assert_eq!(v["plan_hash"], hash.trim());
    assert_eq!(v["policy_hash"], policy["policy_hash"]);
    assert_eq!(v["risk"], "MEDIUM");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["new"], true);

    // The log (and its directory) was created: the first write adopted
    // the policy in force, then the submission.
    let recs = records(&log);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].seq, 1);
    assert_eq!(recs[0].prev, GENESIS);
    match &recs[0].event {
        Event::PolicyAdopted { policy_hash, .. } => {
            assert_eq!(Some(policy_hash.as_str()), policy["policy_hash"].as_str());
        }
        other => panic!("expected policy_adopted, got {other:?}"),
    }
    match &recs[1].event {
        Event::PlanSubmitted {
            plan_id,
            plan_hash,
            policy_hash,
            risk,
            author,
            submitted_by,
            identity,
            mutates_production,
            redacted,
            plan,
            fingerprints,
        } => {
            assert!(fingerprints.is_empty(), "the demo has no native targets");
            assert_eq!(plan_id, "demo-local");
            assert!(!mutates_production, "the demo touches no production scope");
            assert_eq!(plan_hash.as_str(), hash.trim());
            assert_eq!(Some(policy_hash.as_str()), policy["policy_hash"].as_str());
            assert_eq!(*risk, RiskLevel::Medium);
            assert_eq!(author, "demo", "the plan's author");
            assert_eq!(submitted_by, "alice", "--as");
            assert_eq!(
                identity,
                &Some(opsgate::core::identity::Proof::Claimed),
                "the record says alice is a claim (--as, trusted by the policy)"
            );
            assert!(!redacted);
            assert_eq!(plan["id"], "demo-local");
            assert_eq!(plan["steps"].as_array().map(Vec::len), Some(4));
        }
        other => panic!("expected plan_submitted, got {other:?}"),
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the log is private: {mode:o}");
    }

    // The same plan again: the same answer, nothing new recorded.
    let before = std::fs::read(&log).unwrap();
    let again = submit(&log, &demo(), &["--as", "bob"]);
    assert_eq!(again["plan_id"], v["plan_id"]);
    assert_eq!(again["plan_hash"], v["plan_hash"]);
    assert_eq!(again["seq"], 2);
    assert_eq!(again["new"], false);
    assert_eq!(std::fs::read(&log).unwrap(), before);

    // The text form says so too.
    let text = ok(with_log(&log).arg("submit").arg(demo()));
    assert!(text.starts_with("already submitted demo-local"), "{text}");
    assert!(text.contains("(seq 2; nothing new recorded)"), "{text}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert!(verifies(&log));
}

#[test]
fn submit_takes_the_log_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env.jsonl");
    let out = ok(opsgate()
        .env("OPSGATE_AUDIT_LOG", &log)
        .args(["submit", "--json", "--as", "alice"])
        .arg(demo()));
    assert_eq!(json(&out)["seq"], 2, "after the policy's adoption");
    assert_eq!(read_lines(&log).len(), 2);
}

#[test]
fn a_changed_plan_is_a_new_submission() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let changed = dir.path().join("demo-local.yaml");
    let text = std::fs::read_to_string(demo()).unwrap();
    assert!(text.contains("  replicas: 3\n"));
    std::fs::write(&changed, text.replace("  replicas: 3\n", "  replicas: 4\n")).unwrap();

    let first = submit(&log, &demo(), &["--as", "alice"]);
    let second = submit(&log, &changed, &["--as", "alice"]);
    assert_eq!(second["plan_id"], "demo-local");
    assert_ne!(second["plan_hash"], first["plan_hash"]);
    assert_eq!(second["new"], true);
    assert_eq!(second["seq"], 3, "after the adoption (1) and the first (2)");
    // The changed plan is now the open one.
    let again = submit(&log, &changed, &["--as", "alice"]);
    assert_eq!(
        (again["new"].clone(), again["seq"].clone()),
        (json!(false), json!(3))
    );
    // Going back to the original is a change too.
    let back = submit(&log, &demo(), &["--as", "alice"]);
    assert_eq!(
        (back["new"].clone(), back["seq"].clone()),
        (json!(true), json!(4))
    );
    assert_eq!(back["plan_hash"], first["plan_hash"]);

    // Under another policy nothing is submitted: the log adopted the
    // first one, and a policy is changed only by `policy adopt`.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "execution: {{require_dry_run: true}}\n{}",
            *common::TRUST_AS
        ),
    )
    .unwrap();
    let (code, _, err) = run(with_log(&log)
        .args(["submit", "--json", "--as", "alice", "--config"])
        .arg(&policy)
        .arg(demo()));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is not the one this audit log adopted") && err.contains("policy adopt"),
        "{err}"
    );
    let recs = records(&log);
    assert_eq!(recs.len(), 5, "the refusal is recorded, nothing else");
    assert_eq!(recs[4].event.kind(), "refused");
    assert!(verifies(&log));
}

#[test]
fn a_closed_submission_can_be_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let resubmit = |expect_new: bool, expect_seq: u64, why: &str| {
        let before = if log.exists() {
            read_lines(&log)
        } else {
            Vec::new()
        };
        let v = submit(&log, &demo(), &["--as", "alice"]);
        assert_eq!(v["new"], expect_new, "{why}: {v}");
        assert_eq!(v["seq"], expect_seq, "{why}: {v}");
        let after = read_lines(&log);
        if expect_new {
            // One plan_submitted record was appended, with that seq.
            assert_eq!(after.len(), before.len() + 1, "{why}");
            assert_eq!(after[..before.len()], before[..], "{why}");
            let r: Record = serde_json::from_str(&after[before.len()]).unwrap();
            assert_eq!(r.seq, expect_seq, "{why}");
            assert_eq!(r.event.kind(), "plan_submitted", "{why}");
        } else {
            assert_eq!(after, before, "{why}");
        }
    };
    // The log adopts the policy in force first (seq 1).
    ok(with_log(&log).arg("init"));
    resubmit(true, 2, "first");
    resubmit(false, 2, "still open");

    append(
        &log,
        vec![Event::ApprovalRejected(decision(
            "demo-local",
            "bob",
            RiskLevel::Medium,
            Some("no"),
        ))],
    );
    resubmit(true, 4, "after a rejection");
    resubmit(false, 4, "open again");

    append(
        &log,
        vec![Event::ApprovalExpired(decision(
            "demo-local",
            "system",
            RiskLevel::Medium,
            None,
        ))],
    );
    // Approvals expire; the plan stays open for new ones.
    resubmit(false, 4, "after an expiry");

    // A decision about another plan closes nothing.
    append(
        &log,
        vec![Event::ApprovalRejected(decision(
            "other-plan",
            "bob",
            RiskLevel::Medium,
            None,
        ))],
    );
    resubmit(false, 4, "another plan rejected");

    // A finished dry run does not close it; a finished real run does.
    append(
        &log,
        vec![
            Event::ApprovalGranted(decision("demo-local", "bob", RiskLevel::Medium, None)),
            run_started("demo-local", "dry-1", "carol", true),
            run_finished("demo-local", "dry-1", true, Status::Succeeded),
        ],
    );
    resubmit(false, 4, "after a dry run");
    append(
        &log,
        vec![
            run_started("demo-local", "run-1", "carol", false),
            run_finished("demo-local", "run-1", false, Status::Succeeded),
        ],
    );
    resubmit(true, 12, "after a real run");
    assert_eq!(read_lines(&log).len(), 12);
    assert!(verifies(&log));
}

#[test]
fn submit_refuses_a_broken_log_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    submit(&log, &demo(), &["--as", "alice"]);
    append(
        &log,
        vec![
            Event::ApprovalGranted(decision("demo-local", "bob", RiskLevel::Medium, None)),
            run_started("demo-local", "r1", "carol", false),
            run_finished("demo-local", "r1", false, Status::Failed),
        ],
    );
    let clean = read_lines(&log);

    // A middle line edited (seq 1 adopted the policy, 2 submitted).
    let mut lines = clean.clone();
    lines[2] = lines[2].replace("\"bob\"", "\"eve\"");
    assert_ne!(lines[2], clean[2]);
    write_lines(&log, &lines);
    let before = std::fs::read(&log).unwrap();
    for plan in [demo(), repo().join("plans/demo-rollback.yaml")] {
        let (code, out, err) = run(with_log(&log)
            .args(["submit", "--json", "--as", "alice"])
            .arg(&plan));
        assert_eq!(code, 3, "refused: {out} {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("does not verify"), "{err}");
        assert!(err.contains("line 3 (seq 3): hash mismatch"), "{err}");
        assert_eq!(std::fs::read(&log).unwrap(), before);
    }

    // A middle line deleted.
    let mut lines = clean.clone();
    lines.remove(2);
    write_lines(&log, &lines);
    let before = std::fs::read(&log).unwrap();
    let (code, _, err) = run(with_log(&log).args(["submit", "--as", "alice"]).arg(demo()));
    assert_eq!(code, 3);
    assert!(err.contains("seq gap"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), before);

    // The last line edited: refused before anything is decided.
    let mut lines = clean.clone();
    lines[4] = lines[4].replace("\"failed\"", "\"succeeded\"");
    assert_ne!(lines[4], clean[4]);
    write_lines(&log, &lines);
    let before = std::fs::read(&log).unwrap();
    let (code, _, err) = run(with_log(&log).args(["submit", "--as", "alice"]).arg(demo()));
    assert_eq!(code, 3);
    assert!(err.contains("hash mismatch"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), before);

    // Repaired by hand, it takes submissions again.
    write_lines(&log, &clean);
    let v = submit(&log, &demo(), &["--as", "alice"]);
    assert_eq!(
        (v["new"].clone(), v["seq"].clone()),
        (json!(true), json!(6))
    );
}

#[test]
fn the_submitter_is_the_os_user_and_authors_plans_without_an_author() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = dir.path().join("no-author.yaml");
    std::fs::write(
        &plan,
        "id: no-author\ntitle: List pods\nsteps:\n  - name: list\n    run: kubectl get pods -n staging\n",
    )
    .unwrap();
    let v = json(&ok(with_log(&log)
        .env("USER", "zed")
        .args(["submit", "--json"])
        .arg(&plan)));
    assert_eq!(v["risk"], "LOW");
    let v2 = submit(&log, &demo(), &[]);
    assert_eq!(v2["seq"], 3);
    // The first write adopted the policy; the submissions follow.
    let recs = records(&log)[1..].to_vec();
    let who = |r: &Record| match &r.event {
        Event::PlanSubmitted {
            author,
            submitted_by,
            ..
        } => (author.clone(), submitted_by.clone()),
        other => panic!("expected plan_submitted, got {other:?}"),
    };
    // $USER names nobody: the submitter is the OS user of the uid.
    let me = common::os_user_name();
    assert_eq!(who(&recs[0]), (me.clone(), me.clone()));
    assert_eq!(who(&recs[1]), ("demo".into(), me));
    let uid = rustix::process::getuid().as_raw();
    for r in &recs {
        let Event::PlanSubmitted { identity, .. } = &r.event else {
            panic!("expected plan_submitted");
        };
        assert_eq!(
            identity,
            &Some(opsgate::core::identity::Proof::Os { uid }),
            "the record says the submitter is the OS user, by uid"
        );
    }

    // An empty --as is a usage error, and nothing is written.
    let before = std::fs::read(&log).unwrap();
    let (code, _, err) = run(with_log(&log).args(["submit", "--as", " "]).arg(&plan));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--as"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

#[test]
fn an_invalid_plan_is_not_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    submit(&log, &demo(), &["--as", "alice"]);
    let before = std::fs::read(&log).unwrap();
    let bad = repo().join("tests/fixtures/plans/invalid");
    let file = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "yaml"))
        .unwrap();
    let (code, _, err) = run(with_log(&log).args(["submit", "--as", "alice"]).arg(&file));
    assert_eq!(code, 1, "{err}");
    assert!(!err.is_empty());
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

// ---------------------------------------------------------------------------
// Redaction

/// Every secret planted below; none may reach the log file.
const CANARIES: &[&str] = &[
    "Hunter2Canary",
    "CanaryPg1",
    "CanaryTok.en",
    "CanaryUrlPw",
    "AKIACANARY0000000000",
    "CanaryFlagPw",
    "CanaryDescPw",
    "corp-canary-424242",
    "CanaryOutPw",
    "CanaryQueryTok",
    "CanaryReasonTok",
    "CanaryMetaTok",
    "CanaryMetaPw",
    "CanaryMetaKeyPw",
    "CanaryCancelTok",
    "CanaryRollbackPw",
    "CanaryResourcePw",
    "MIICanaryPemBody",
    "BEGIN RSA PRIVATE KEY",
    "eyJhbGciOiJIUzI1NiJ9",
    "CanaryJwtSig",
    AWS_SECRET,
    "corp-canary-777",
    "corp-canary-31337",
];

/// A 40-character AWS secret access key (upper, lower and digits).
const AWS_SECRET: &str = "CanaryAwsSecretKey0123456789abcdefGHIJKL";

const CANARY_PLAN: &str = r#"id: canary-plan
title: Rotate database credentials
description: the check uses PGPASSWORD=CanaryDescPw and nothing else
author: alice
params: {replicas: 3}
steps:
  - name: dump
    run: mysql -uroot -pHunter2Canary -h db -e 'select 1'
  - name: psql
    run: PGPASSWORD=CanaryPg1 psql -h db -c 'select 1'
  - name: call api
    run: "curl -H 'Authorization: Bearer CanaryTok.en' https://api.example.com/x"
  - name: fetch
    run: curl -o /tmp/f https://u:CanaryUrlPw@host.example.com/file
  - name: key id
    run: echo AKIACANARY0000000000 > /tmp/keyid
  - name: flag
    run: deploytool --password=CanaryFlagPw --replicas {{replicas}}
  - name: custom
    run: echo corp-canary-424242
rollback: {none: "a test plan"}
"#;

#[test]
fn secrets_never_reach_the_log() {
    assert_eq!(AWS_SECRET.len(), 40);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = dir.path().join("canary.yaml");
    std::fs::write(&plan, CANARY_PLAN).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "audit:\n  redact: [\"corp-canary-[0-9]+\"]\n{}",
            *common::TRUST_AS
        ),
    )
    .unwrap();

    // The plan file does carry the plan canaries, and they survive loading.
    for c in &CANARIES[..8] {
        assert!(CANARY_PLAN.contains(c), "{c}");
    }
    let shown = ok(opsgate().args(["plan", "show", "--json"]).arg(&plan));
    assert!(shown.contains("-pHunter2Canary"), "{shown}");

    let v = submit(
        &log,
        &plan,
        &["--as", "alice", "--config", policy.to_str().unwrap()],
    );
    assert_eq!(v["new"], true);
    // The plan hash is the hash of the real plan, not of the masked one.
    let hash = ok(opsgate().args(["plan", "hash"]).arg(&plan));
    assert_eq!(v["plan_hash"], hash.trim());

    // Events whose free text carries secrets, through the library with the
    // policy's extra pattern.
    let redactor = Redactor::new(vec![RedactPattern::new("corp-canary-[0-9]+").unwrap()]);
    let audit = AuditLog::open(&log, Sealer::Sha256, redactor).unwrap();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.CanaryJwtSig";
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIICanaryPemBody\nAAAA+/BBBB\n-----END RSA PRIVATE KEY-----";
    let mut meta = BTreeMap::new();
    meta.insert("note".to_owned(), json!("sent with Bearer CanaryMetaTok"));
    meta.insert(
        "nested".to_owned(),
        json!({"args": ["--password", "x", "--token CanaryMetaPw"], "jwt": jwt}),
    );
    meta.insert("password=CanaryMetaKeyPw".to_owned(), json!(1));
    let events = vec![
        Event::ApprovalGranted(Decision {
            reason: Some("ok, see https://x.example.com/?token=CanaryReasonTok".into()),
            metadata: meta,
            ..decision("canary-plan", "bob", RiskLevel::Medium, None)
        }),
        Event::StepStarted {
            action_sha256: None,
            plan_id: "canary-plan".into(),
            run_id: "r1".into(),
            step: 1,
            name: "dump".into(),
            action: "mysql -uroot -pHunter2Canary -h db".into(),
            risk: RiskLevel::Medium,
            resource: Some("mysql://root:CanaryResourcePw@db/app".into()),
        },
        Event::CheckFinished {
            plan_id: "canary-plan".into(),
            run_id: "r1".into(),
            step: 1,
            phase: opsgate::audit::CheckPhase::Post,
            action: "curl https://api.example.com/health?access_token=CanaryQueryTok".into(),
            status: Status::Passed,
            attempts: 2,
            duration_seconds: 0.5,
            output: format!("token: {jwt}\nid corp-canary-777"),
        },
        Event::StepFinished {
            plan_id: "canary-plan".into(),
            run_id: "r1".into(),
            step: 1,
            name: "dump".into(),
            action: "./dump.sh".into(),
            status: Status::Failed,
            exit_code: Some(1),
            duration_seconds: 1.0,
            output: format!(
                "config:\n  password: CanaryOutPw\nkey:\n{pem}\nsecret {AWS_SECRET} end"
            ),
        },
        Event::RollbackStarted {
            user: None,
            plan_id: "canary-plan".into(),
            run_id: "r1".into(),
            reason: "step failed; retry with PGPASSWORD=CanaryRollbackPw".into(),
            actions: Vec::new(),
        },
        Event::RunCancelled {
            plan_id: "canary-plan".into(),
            run_id: "r1".into(),
            user: "carol".into(),
            kill: false,
            reason: Some("Authorization: Bearer CanaryCancelTok, ticket corp-canary-31337".into()),
        },
    ];
    for e in events {
        audit.append(e).unwrap();
    }
    drop(audit);

    let bytes = std::fs::read(&log).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for c in CANARIES {
        assert!(!text.contains(c), "`{c}` leaked into the log:\n{text}");
    }
    // Every record after the policy's adoption carried a secret, and each
    // was masked where it was.
    for (i, line) in text.lines().enumerate().skip(1) {
        assert!(line.contains("[REDACTED]"), "record {}: {line}", i + 1);
    }
    let masked = text.matches("[REDACTED]").count();
    assert!(masked >= 20, "{masked} masks:\n{text}");
    // Only the secret part is masked.
    for kept in [
        "mysql -uroot -p[REDACTED] -h db",
        "PGPASSWORD=[REDACTED] psql",
        "Authorization: Bearer [REDACTED]",
        "https://u:[REDACTED]@host.example.com/file",
        "echo [REDACTED] > /tmp/keyid",
        "--password=[REDACTED] --replicas 3",
    ] {
        assert!(text.contains(kept), "`{kept}` missing:\n{text}");
    }

    // The submitted record says its plan was masked.
    let recs = records(&log);
    assert_eq!(recs.len(), 8);
    assert_eq!(recs[0].event.kind(), "policy_adopted");
    let recs = &recs[1..];
    match &recs[0].event {
        Event::PlanSubmitted { redacted, .. } => assert!(redacted),
        other => panic!("expected plan_submitted, got {other:?}"),
    }
    // The metadata key that carried a secret was masked too.
    match &recs[1].event {
        Event::ApprovalGranted(d) => {
            assert_eq!(d.metadata.len(), 3, "{:?}", d.metadata);
            assert!(d.metadata.keys().any(|k| k.contains("[REDACTED]")));
        }
        other => panic!("expected approval_granted, got {other:?}"),
    }
    // Masking happens before sealing, so the chain verifies.
    assert!(verifies(&log));
    let out = ok(with_log(&log).args(["audit", "verify", "--json"]));
    assert_eq!(json(&out)["events"], 8);

    // Without the policy's pattern, the custom secret would have been kept:
    // the policy file is what masks it.
    let other = dir.path().join("other.jsonl");
    submit(&other, &plan, &["--as", "alice"]);
    let text = std::fs::read_to_string(&other).unwrap();
    assert!(text.contains("corp-canary-424242"));
    assert!(!text.contains("Hunter2Canary"));
}

#[test]
fn a_secret_plan_parameter_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let plan = dir.path().join("param.yaml");
    std::fs::write(
        &plan,
        "id: param-secret\ntitle: t\nparams: {db_password: CanaryParamPw}\nsteps:\n  - name: s\n    run: mysql -uroot -p{{db_password}} -e 'select 1'\nrollback: {none: test}\n",
    )
    .unwrap();
    submit(&log, &plan, &["--as", "alice"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("-p[REDACTED]"), "{text}");
    assert!(!text.contains("CanaryParamPw"), "{text}");
}

// ---------------------------------------------------------------------------
// A log with known times, for export, replay and tail

/// The reason of seq 8: a comma, a double quote and a newline.
const AWKWARD: &str = "Not now, \"freeze\" week\nsee ticket OPS-1";
const AWKWARD_NAME: &str = "restart \"web\", then db";

/// Twelve records: seqs 1–8 on fixed days in March 2025, 9–12 now.
fn timeline(dir: &Path) -> PathBuf {
    let log = dir.join("audit.jsonl");
    append(
        &log,
        vec![
            submitted("p-one", RiskLevel::High, "alice"),
            Event::ApprovalGranted(decision("p-one", "bob", RiskLevel::High, None)),
            run_started("p-one", "r-one", "carol", false),
            step_finished("p-one", "r-one", 1, AWKWARD_NAME, Status::Succeeded),
            step_finished("p-one", "r-one", 2, "migrate", Status::Failed),
            run_finished("p-one", "r-one", false, Status::Failed),
            submitted("p-two", RiskLevel::Low, "dave"),
            Event::ApprovalRejected(decision("p-two", "bob", RiskLevel::Low, Some(AWKWARD))),
        ],
    );
    let times = [
        "2025-03-01T08:00:00.000Z",
        "2025-03-01T09:00:00.000Z",
        "2025-03-02T00:00:00.000Z",
        "2025-03-02T00:00:01.000Z",
        "2025-03-02T10:00:00.000Z",
        "2025-03-03T12:00:00.000Z",
        "2025-03-04T00:00:00.000Z",
        "2025-03-04T01:00:00.000Z",
    ];
    let mut lines: Vec<String> = read_lines(&log)
        .iter()
        .zip(times)
        .map(|(l, t)| set_raw(l, "ts", &format!("\"{t}\"")))
        .collect();
    rechain(&mut lines);
    write_lines(&log, &lines);
    append(
        &log,
        vec![
            submitted("p-three", RiskLevel::Medium, "erin"),
            Event::ApprovalGranted(decision("p-three", "frank", RiskLevel::Medium, None)),
            run_started("p-three", "r-three", "carol", true),
            run_finished("p-three", "r-three", true, Status::Succeeded),
        ],
    );
    assert!(verifies(&log), "the timeline is a valid chain");
    log
}

/// `audit export [args…]` as JSON Lines: the seqs it selected.
#[track_caller]
fn exported(log: &Path, args: &[&str]) -> Vec<u64> {
    seqs(&ok(with_log(log).args(["audit", "export"]).args(args)))
}

#[test]
fn export_filters_select_exactly_the_matching_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    let all: Vec<u64> = (1..=12).collect();
    let cases: &[(&[&str], &[u64])] = &[
        (&[], &all),
        (&["--plan", "p-one"], &[1, 2, 3, 4, 5, 6]),
        (&["--plan", "p-two"], &[7, 8]),
        (&["--plan", "p-none"], &[]),
        (&["--run", "r-one"], &[3, 4, 5, 6]),
        (&["--run", "r-three"], &[11, 12]),
        (&["--type", "step_finished"], &[4, 5]),
        (&["--type", "plan_submitted"], &[1, 7, 9]),
        (&["--type", "approval_rejected"], &[8]),
        (&["--status", "failed"], &[5, 6]),
        (&["--status", "succeeded"], &[4, 12]),
        (&["--risk", "HIGH"], &[1, 2]),
        (&["--risk", "low"], &[7, 8]),
        (&["--risk", "MEDIUM"], &[9, 10]),
        (&["--risk", "CRITICAL"], &[]),
        (&["--approver", "bob"], &[2, 8]),
        (&["--approver", "carol"], &[3, 11]),
        (&["--approver", "alice"], &[1]),
        (&["--plan", "p-one", "--status", "failed"], &[5, 6]),
        (&["--plan", "p-one", "--type", "run_finished"], &[6]),
        (&["--approver", "bob", "--plan", "p-two"], &[8]),
        // Dates are midnight UTC: --since includes it, --until excludes it.
        (
            &["--since", "2025-03-02"],
            &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        ),
        (&["--until", "2025-03-02"], &[1, 2]),
        (
            &["--since", "2025-03-02", "--until", "2025-03-03"],
            &[3, 4, 5],
        ),
        // RFC 3339, with an offset: 10:00+01:00 is 09:00Z.
        (
            &["--since", "2025-03-02T10:00:00+01:00"],
            &[5, 6, 7, 8, 9, 10, 11, 12],
        ),
        (
            &[
                "--since",
                "2025-03-01T08:30:00Z",
                "--until",
                "2025-03-03T12:00:00Z",
            ],
            &[2, 3, 4, 5],
        ),
        (&["--until", "2025-03-01T08:00:00.001Z"], &[1]),
        // Ages before now.
        (&["--since", "1h"], &[9, 10, 11, 12]),
        (&["--until", "1h"], &[1, 2, 3, 4, 5, 6, 7, 8]),
        (&["--since", "365000d"], &all),
        (&["--since", "30d", "--plan", "p-one"], &[]),
        (&["--since", "1h", "--type", "run_finished"], &[12]),
        // String filters ignore case.
        (&["--plan", "P-ONE", "--type", "STEP_FINISHED"], &[4, 5]),
        (&["--approver", "BOB", "--status", "FAILED"], &[]),
        (&["--approver", "Bob", "--run", "R-ONE"], &[]),
        (&["--approver", "CAROL", "--run", "R-ONE"], &[3]),
    ];
    for (args, want) in cases {
        assert_eq!(exported(&log, args), *want, "export {args:?}");
    }
    // Each record exported is the log's own line.
    let lines = read_lines(&log);
    let out = ok(with_log(&log).args(["audit", "export", "--status", "failed"]));
    assert_eq!(out, format!("{}\n{}\n", lines[4], lines[5]));
}

#[test]
fn export_rejects_a_bad_time_as_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    for bad in ["yesterday", "2025-13-01", "03/02/2025"] {
        let (code, out, err) = run(with_log(&log).args(["audit", "export", "--since", bad]));
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(out.is_empty());
        assert!(err.contains("--since") && err.contains(bad), "{err}");
    }
}

#[test]
fn jsonl_export_is_the_log_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    let out = ok(with_log(&log).args(["audit", "export", "--format", "jsonl"]));
    let file = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out, file);
    let originals = records(&log);
    assert_eq!(originals.len(), 12);
    for (line, original) in out.lines().zip(&originals) {
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(&r, original);
    }
    // A torn tail is never exported.
    std::fs::write(&log, format!("{file}{{\"v\":1,\"seq\":13")).unwrap();
    assert_eq!(ok(with_log(&log).args(["audit", "export"])), file);
}

#[test]
fn csv_export_has_a_header_and_quotes_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    let out = ok(with_log(&log).args(["audit", "export", "--format", "csv"]));
    // RFC 4180 quoting: the field is quoted, its quotes doubled.
    assert!(
        out.contains("\"Not now, \"\"freeze\"\" week\nsee ticket OPS-1\""),
        "{out}"
    );

    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "seq",
            "ts",
            "type",
            "plan_id",
            "run_id",
            "step",
            "name",
            "action",
            "resource",
            "risk",
            "status",
            "approver",
            "channel",
            "user",
            "dry_run",
            "exit_code",
            "duration_seconds",
            "reason",
            "plan_hash",
            "hash",
        ]
    );
    let rows: Vec<BTreeMap<String, String>> = rdr
        .deserialize()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(rows.len(), 12);
    let lines = read_lines(&log);
    for (row, line) in rows.iter().zip(&lines) {
        let v = json(line);
        assert_eq!(row["seq"], v["seq"].to_string());
        assert_eq!(row["ts"], v["ts"].as_str().unwrap());
        assert_eq!(row["type"], v["type"].as_str().unwrap());
        assert_eq!(row["hash"], v["hash"].as_str().unwrap());
        assert_eq!(row["plan_id"], v["plan_id"].as_str().unwrap_or_default());
        assert_eq!(row["run_id"], v["run_id"].as_str().unwrap_or_default());
        assert_eq!(row["status"], v["status"].as_str().unwrap_or_default());
    }
    // The awkward fields round-trip.
    assert_eq!(rows[7]["reason"], AWKWARD);
    assert_eq!(rows[7]["approver"], "bob");
    assert_eq!(rows[7]["risk"], "LOW");
    assert_eq!(rows[7]["channel"], "cli");
    assert_eq!(rows[3]["name"], AWKWARD_NAME);
    assert_eq!(rows[3]["step"], "1");
    assert_eq!(rows[3]["exit_code"], "0");
    assert_eq!(rows[3]["duration_seconds"], "1.25");
    assert_eq!(rows[10]["dry_run"], "true");
    assert_eq!(rows[0]["step"], "");

    // Filters apply to CSV too; an empty selection is the header alone.
    let out = ok(with_log(&log).args(["audit", "export", "--format", "csv", "--plan", "p-two"]));
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let got: Vec<String> = rdr.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(got, ["7", "8"]);
    let out = ok(with_log(&log).args(["audit", "export", "--format", "csv", "--plan", "x"]));
    assert_eq!(out.lines().count(), 1);
    assert!(out.starts_with("seq,ts,type,"));
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("the dir reads")
        .map(|e| {
            e.expect("a dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.contains(".partial"))
        .collect();
    v.sort();
    v
}

#[test]
fn export_to_a_file_writes_it_only_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    let out_dir = tempfile::tempdir().unwrap();

    // Success: the file holds what stdout would have.
    let target = out_dir.path().join("p-one.csv");
    let (code, stdout, stderr) = run(with_log(&log)
        .args([
            "audit", "export", "--format", "csv", "--plan", "p-one", "-o",
        ])
        .arg(&target));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("exported 6 record(s)"), "{stderr}");
    let to_stdout =
        ok(with_log(&log).args(["audit", "export", "--format", "csv", "--plan", "p-one"]));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), to_stdout);
    assert!(leftovers(out_dir.path()).is_empty());

    // Failure half-way (line 5 is not a record): no file, no partial file,
    // and an existing file is left alone.
    let mut lines = read_lines(&log);
    lines[4] = "not a record".into();
    write_lines(&log, &lines);
    let fresh = out_dir.path().join("fresh.jsonl");
    let (code, _, stderr) = run(with_log(&log).args(["audit", "export", "-o"]).arg(&fresh));
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}:5:", log.display())),
        "{stderr}"
    );
    assert!(!fresh.exists());
    let (code, _, _) = run(with_log(&log).args(["audit", "export", "-o"]).arg(&target));
    assert_eq!(code, 1);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), to_stdout);
    assert!(
        leftovers(out_dir.path()).is_empty(),
        "{:?}",
        leftovers(out_dir.path())
    );
}

#[test]
fn exporting_a_missing_log_names_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("missing.jsonl");
    let target = dir.path().join("out.jsonl");
    for format in ["jsonl", "csv"] {
        let (code, out, err) = run(with_log(&log)
            .args(["audit", "export", "--format", format, "-o"])
            .arg(&target));
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty());
        assert!(err.contains(&log.display().to_string()), "{err}");
        assert!(!target.exists());
        assert!(!log.exists(), "reading does not create the log");
    }
    let (code, out, err) = run(with_log(&log).args(["audit", "export"]));
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no audit log at"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------
// replay, tail, head

/// The seq column of `replay`/`tail` text rows.
fn seq_column(text: &str, column: usize) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .nth(column)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no seq in {l:?}"))
        })
        .collect()
}

#[test]
fn replay_shows_one_plan_or_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = timeline(dir.path());
    let out = ok(with_log(&log).args(["audit", "replay", "p-one"]));
    let mut rows = out.lines();
    let header = rows.next().unwrap();
    assert!(header.starts_with("TIME"), "{header}");
    for col in [
        "SEQ", "EVENT", "STEP", "STATUS", "WHO", "DURATION", "DETAIL",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let body: Vec<&str> = rows.collect();
    assert_eq!(seq_column(&body.join("\n"), 1), [1, 2, 3, 4, 5, 6]);
    let kinds: Vec<&str> = body
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "plan_submitted",
            "approval_granted",
            "run_started",
            "step_finished",
            "step_finished",
            "run_finished"
        ]
    );
    assert!(
        body[0].starts_with("2025-03-01T08:00:00.000Z"),
        "{}",
        body[0]
    );
    assert!(body[1].contains("bob"), "{}", body[1]);
    assert!(
        body[4].contains("failed") && body[4].contains("1.250s"),
        "{}",
        body[4]
    );

    // By run id.
    let out = ok(with_log(&log).args(["audit", "replay", "r-one"]));
    let body: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(seq_column(&body.join("\n"), 1), [3, 4, 5, 6]);

    // As JSON: an array of the plan's records, exactly as logged.
    let out = ok(with_log(&log).args(["audit", "replay", "p-one", "--json"]));
    let got: Vec<Record> = serde_json::from_str(&out).unwrap();
    let want: Vec<Record> = records(&log).into_iter().filter(|r| r.seq <= 6).collect();
    assert_eq!(got, want);
    let got: Vec<Record> = serde_json::from_str(&ok(
        with_log(&log).args(["audit", "replay", "r-three", "--json"])
    ))
    .unwrap();
    assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [11, 12]);

    // An unknown id fails and says so.
    let (code, _, err) = run(with_log(&log).args(["audit", "replay", "p-nothing"]));
    assert_eq!(code, 1);
    assert!(err.contains("p-nothing"), "{err}");
    let (code, _, _) = run(with_log(&log).args(["audit", "replay", "p-nothing", "--json"]));
    assert_eq!(code, 1);
}

/// `n` records of plan `p-tail`, one run, no multi-line text.
fn simple_log(dir: &Path, n: u32) -> PathBuf {
    let log = dir.join("simple.jsonl");
    let mut events = vec![
        submitted("p-tail", RiskLevel::Low, "alice"),
        run_started("p-tail", "r-tail", "carol", true),
    ];
    events.extend(
        (1..=n - 3).map(|i| step_finished("p-tail", "r-tail", i, "work", Status::Succeeded)),
    );
    events.push(run_finished("p-tail", "r-tail", true, Status::Succeeded));
    append(&log, events);
    log
}

#[test]
fn tail_prints_the_last_n_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = simple_log(dir.path(), 14);
    for (n, want) in [
        ("3", vec![12, 13, 14]),
        ("1", vec![14]),
        ("14", (1..=14).collect()),
        ("50", (1..=14).collect()),
    ] {
        let out = ok(with_log(&log).args(["audit", "tail", "-n", n]));
        assert_eq!(seq_column(&out, 1), want, "tail -n {n}:\n{out}");
    }
    let out = ok(with_log(&log).args(["audit", "tail"]));
    assert_eq!(seq_column(&out, 1), (5..=14).collect::<Vec<_>>());
    let out = ok(with_log(&log).args(["audit", "tail", "-n", "2"]));
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].contains("step_finished")
            && rows[0].contains("p-tail/r-tail  step 11 work succeeded"),
        "{out}"
    );
    assert!(
        rows[1].contains("run_finished") && rows[1].contains("dry run succeeded"),
        "{out}"
    );
    let out = ok(with_log(&log).args(["audit", "tail", "-n", "0"]));
    assert!(out.is_empty(), "{out}");
    // A torn tail is not a record.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"v\":1,\"seq\":15");
    std::fs::write(&log, bytes).unwrap();
    let out = ok(with_log(&log).args(["audit", "tail", "-n", "2"]));
    assert_eq!(seq_column(&out, 1), [13, 14]);
}

#[test]
fn tail_prints_one_line_per_record_whatever_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let log = simple_log(dir.path(), 4);
    let spoof = "fine\n2026-01-01T00:00:00.000Z      99  approval_granted        p-x  CRITICAL by ceo via cli";
    append(
        &log,
        vec![Event::ApprovalRejected(decision(
            "p-tail",
            "bob",
            RiskLevel::Low,
            Some(spoof),
        ))],
    );
    let out = ok(with_log(&log).args(["audit", "tail", "-n", "1"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = ok(with_log(&log).args(["audit", "replay", "p-tail"]));
    assert_eq!(out.lines().count(), 1 + 5, "{out}");
}

#[test]
fn head_of_an_empty_log_is_seq_zero_and_the_genesis_hash() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let out = ok(with_log(&log).args(["audit", "head"]));
    assert_eq!(
        out,
        "0 sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
    );
    let v = json(&ok(with_log(&log).args(["audit", "head", "--json"])));
    assert_eq!(v, json!({"seq": 0, "hash": GENESIS}));
    assert_eq!(ok(with_log(&log).args(["audit", "tail"])), "");

    // After one submission it is that record (after the policy's
    // adoption, seq 1).
    let s = submit(&log, &demo(), &["--as", "alice"]);
    let out = ok(with_log(&log).args(["audit", "head"]));
    let line = &read_lines(&log)[1];
    assert_eq!(out, format!("2 {}\n", json(line)["hash"].as_str().unwrap()));
    assert_eq!(s["seq"], 2);

    // A missing log has no head.
    let (code, _, err) = run(with_log(&dir.path().join("none.jsonl")).args(["audit", "head"]));
    assert_eq!(code, 1);
    assert!(err.contains("none.jsonl"), "{err}");
}

#[test]
fn a_torn_tail_refuses_submissions_until_repair() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    submit(&log, &demo(), &["--as", "alice"]);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"v\":1,\"seq\":2,\"ts\"");
    std::fs::write(&log, &bytes).unwrap();
    // Repair is an operator's act, never a side effect of a submission.
    let (code, _, err) = run(with_log(&log).args(["submit", "--as", "alice"]).arg(demo()));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("opsgate audit repair"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was written");
    ok(with_log(&log).args(["audit", "repair"]));
    let v = submit(&log, &demo(), &["--as", "alice"]);
    // The torn tail is repaired (seq 3 is log_repaired), and the plan was
    // already open: nothing new was submitted, and its seq is 2 (after
    // the policy's adoption).
    let recs = records(&log);
    assert_eq!(recs.len(), 3);
    assert!(matches!(recs[2].event, Event::LogRepaired { .. }));
    assert_eq!(v["new"], false, "{v}");
    assert_eq!(v["seq"], 2, "{v}");
}

#[test]
fn a_keyed_log_takes_submissions_only_with_its_key() {
    const KEY: &str = "cli-test-key-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let key = opsgate::audit::AuditKey::new(KEY.as_bytes().to_vec()).unwrap();
    let keyed = AuditLog::open(&log, Sealer::Hmac(key.clone()), Redactor::default()).unwrap();
    keyed
        .append(submitted("p-keyed", RiskLevel::Low, "alice"))
        .unwrap();
    drop(keyed);
    let before = std::fs::read(&log).unwrap();

    // Without the key, or with another, nothing is appended.
    for env_key in [None, Some("some-other-key-0123456789")] {
        let mut cmd = with_log(&log);
        if let Some(k) = env_key {
            cmd.env(KEY_ENV, k);
        }
        let (code, out, err) = run(cmd.args(["submit", "--json", "--as", "bob"]).arg(demo()));
        assert_eq!(code, 3, "refused, key {env_key:?}: {out} {err}");
        assert!(err.contains(&log.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&log).unwrap(), before);
    }

    // With it, the new record is keyed too, and the chain verifies.
    let out = ok(with_log(&log)
        .env(KEY_ENV, KEY)
        .args(["submit", "--json", "--as", "bob"])
        .arg(demo()));
    // Seq 2 adopts the policy (the log had adopted none), 3 submits.
    assert_eq!(json(&out)["seq"], 3);
    let recs = records(&log);
    for r in &recs[1..] {
        assert_eq!(r.alg.as_deref(), Some("hmac-sha256"));
        assert_eq!(r.key_id.as_deref(), Some(key.id()));
        assert!(r.hash.starts_with("hmac-sha256:"));
    }
    let (code, _, _) = run(with_log(&log).env(KEY_ENV, KEY).args(["audit", "verify"]));
    assert_eq!(code, 0);
    let (code, _, _) = run(with_log(&log).args(["audit", "verify"]));
    assert_eq!(code, 1);
}

/// Reads lines from a child's stdout in a thread, so a test can wait for a
/// line with a deadline instead of blocking forever.
fn line_reader(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn tail_follow_prints_what_another_process_appends() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let log = simple_log(dir.path(), 4);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("opsgate"))
        .env("XDG_STATE_HOME", common::scratch_state())
        .args(["audit", "tail", "-n", "1", "-f", "--audit-log"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let wait = Duration::from_secs(20);
    let first = lines.recv_timeout(wait);
    // The follower starts at the end: the next lines are only new records.
    append(
        &log,
        vec![
            step_finished("p-tail", "r-tail", 7, "late step", Status::Failed),
            run_finished("p-tail", "r-tail", false, Status::Failed),
        ],
    );
    let second = lines.recv_timeout(wait);
    let third = lines.recv_timeout(wait);
    child.kill().unwrap();
    child.wait().unwrap();
    let first = first.unwrap();
    assert!(
        first.contains("run_finished") && first.contains("     4 "),
        "{first}"
    );
    let second = second.unwrap();
    assert!(
        second.contains("step_finished") && second.contains("step 7 late step failed"),
        "{second}"
    );
    let third = third.unwrap();
    assert!(third.contains("     6  run_finished"), "{third}");
}

#[test]
fn the_policy_key_file_seals_the_chain_and_is_found_beside_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("audit.key"), "a-key-of-thirty-two-bytes-exact\n").unwrap();
    let policy = conf.join("opsgate.yaml");
    std::fs::write(
        &policy,
        format!("audit:\n  key_file: audit.key\n{}", *common::TRUST_AS),
    )
    .unwrap();
    let log = dir.path().join("audit.jsonl");

    let s = json(&ok(with_log(&log)
        .arg("--config")
        .arg(&policy)
        .args(["submit", "--json", "--as", "alice"])
        .arg(demo())));
    assert_eq!(s["new"], true);
    let line = json(&read_lines(&log)[0]);
    assert_eq!(line["alg"], "hmac-sha256");
    assert!(
        line["hash"].as_str().unwrap().starts_with("hmac-sha256:"),
        "{line}"
    );

    // With the policy (from another directory) it verifies; without, the
    // key is missing and verify says so.
    ok(with_log(&log)
        .current_dir(dir.path())
        .arg("--config")
        .arg(&policy)
        .args(["audit", "verify"]));
    let (code, out, _) = run(with_log(&log).args(["audit", "verify", "--json"]));
    assert_eq!(code, 1);
    assert_eq!(json(&out)["problem"]["kind"], "key_mismatch", "{out}");

    // A key file that is too short is refused before anything is written.
    std::fs::write(conf.join("audit.key"), "short\n").unwrap();
    let (code, _, err) = run(with_log(&log)
        .arg("--config")
        .arg(&policy)
        .args(["submit", "--as", "bob"])
        .arg(repo().join("plans/demo-rollback.yaml")));
    assert_eq!(code, 1);
    assert!(
        err.contains("audit.key") && err.contains("16 bytes"),
        "{err}"
    );
    assert_eq!(read_lines(&log).len(), 2, "the adoption and one submission");
}

#[test]
fn status_shows_a_breaker_that_is_not_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&log_path, Sealer::Sha256, Default::default()).unwrap();
    let status = |args: &[&str]| {
        let out = common::opsgate_command(&log_path, None)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    log.append(Event::BreakerChanged {
        backend: "kube".into(),
        state: "open".into(),
        consecutive_failures: 5,
        run_id: Some("r-7".into()),
        error: "cannot reach the API server".into(),
    })
    .unwrap();
    let text = status(&["status"]);
    assert!(
        text.contains("breaker   kube open after 5 consecutive failure(s)")
            && text.contains("(run r-7)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&status(&["status", "--breakers", "--json"])).unwrap();
    assert_eq!(json[0]["backend"], "kube");
    assert_eq!(json[0]["state"], "open");
    log.append(Event::BreakerChanged {
        backend: "kube".into(),
        state: "closed".into(),
        consecutive_failures: 0,
        run_id: None,
        error: String::new(),
    })
    .unwrap();
    assert!(!status(&["status"]).contains("breaker"));
    assert!(status(&["status", "--breakers"]).contains("breaker   kube closed"));
}
