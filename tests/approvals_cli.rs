//! `approve`, `reject` and `status` through the binary, on a real log.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::{Path, PathBuf};

use common::repo;
use serde_json::Value;

/// One log in a temp dir, and an optional policy file.
struct Env {
    dir: tempfile::TempDir,
    log: PathBuf,
    policy: Option<PathBuf>,
}

impl Env {
    fn new(policy: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.jsonl");
        let policy = policy.map(|text| {
            let p = dir.path().join("policy.yaml");
            std::fs::write(&p, text).expect("policy written");
            p
        });
        Env { dir, log, policy }
    }

    fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(common::opsgate_command(&self.log, self.policy.as_deref()))
    }

    /// Runs; returns exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .cmd()
            .args(common::with_reviewed_hash(&self.log, args))
            .output()
            .expect("opsgate runs");
        (
            out.status.code().expect("an exit code"),
            String::from_utf8(out.stdout).expect("UTF-8"),
            String::from_utf8(out.stderr).expect("UTF-8"),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    }

    /// Must be refused (exit 3) with a message containing `why`.
    #[track_caller]
    fn refused(&self, args: &[&str], why: &str) {
        let lines = self.lines();
        let (code, out, err) = self.run(args);
        assert_eq!(code, 3, "{args:?} should be refused: {out} {err}");
        assert!(err.contains(why), "{args:?}: want {why:?} in {err}");
        common::assert_one_refused_record(&common::log_records(&self.log)[lines..], why);
    }

    fn lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |s| s.lines().count())
    }

    #[track_caller]
    fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["status", id, "--json"])).expect("JSON status")
    }

    fn plan_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("plan written");
        p
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

const DEMO: &str = "plans/demo-local.yaml";
const CRITICAL: &str = "plans/critical-drop-namespace.yaml";

#[test]
fn a_medium_plan_needs_one_approval_and_not_its_submitters() {
    let env = Env::new(Some("approvals: {separation_of_duties: MEDIUM}\n"));
    env.ok(&["submit", "--as", "alice", DEMO]);
    let s = env.status("demo-local");
    assert_eq!(s["status"], "pending");
    assert_eq!(s["approvals"]["needed"], 1);
    assert!(
        s["missing"]
            .as_str()
            .is_some_and(|m| m.contains("needs 1 approval from distinct approvers, has 0")),
        "{s}"
    );

    // The submitter is the author, whatever the plan file's `author:`
    // (`demo`) says: that is only a note.
    env.refused(
        &["approve", "demo-local", "--as", "alice"],
        "alice submitted the plan and cannot approve it",
    );
    env.refused(
        &["approve", "demo-local", "--as", "ALICE "],
        "submitted the plan",
    );

    let out = env.ok(&["approve", "demo-local", "--as", "demo", "--json"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approvers"], serde_json::json!(["demo"]));
    env.refused(
        &["approve", "demo-local", "--as", "Demo"],
        "already approved",
    );
    let s = env.status("demo-local");
    assert_eq!(s["status"], "approved");
    assert_eq!(s["approvals"]["have"], serde_json::json!(["demo"]));
}

/// By default separation of duties starts at HIGH: a MEDIUM plan (the
/// README's demo) is a one-person walk.
#[test]
fn below_high_the_submitter_may_approve_by_default() {
    let env = Env::new(None);
    env.ok(&["submit", "--as", "alice", DEMO]);
    let out = env.ok(&["approve", "demo-local", "--as", "alice", "--json"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["status"], "approved", "{v}");
}

#[test]
fn the_os_user_approves_when_as_is_absent() {
    let env = Env::new(None);
    env.ok(&["submit", "--as", "alice", DEMO]);
    let v: Value =
        serde_json::from_str(&env.ok(&["approve", "demo-local", "--json"])).expect("JSON");
    // The OS user of the uid; `$USER` (set to `os-user` here) names nobody.
    let me = common::os_user_name();
    assert_eq!(v["by"], me.as_str());
    assert_eq!(v["approvers"], serde_json::json!([me]));
}

#[test]
fn critical_is_refused_without_allow_critical() {
    let env = Env::new(None);
    env.ok(&["submit", "--as", "bob", CRITICAL]);
    env.refused(
        &["approve", "drop-legacy-billing", "--as", "alice"],
        "safety.allow_critical is false",
    );
    assert_eq!(env.status("drop-legacy-billing")["status"], "refused");
}

#[test]
fn critical_needs_two_distinct_approvers_when_allowed() {
    let env = Env::new(Some("safety: {allow_critical: true}\n"));
    env.ok(&["submit", "--as", "bob", CRITICAL]);
    let out = env.ok(&["approve", "drop-legacy-billing", "--as", "alice"]);
    assert!(out.contains("pending · 1/2 approval(s) (alice)"), "{out}");
    assert!(
        out.contains("needs 2 approvals from distinct approvers, has 1 (alice)"),
        "{out}"
    );
    env.refused(
        &["approve", "drop-legacy-billing", "--as", "alice"],
        "one person counts once",
    );
    assert_eq!(env.status("drop-legacy-billing")["status"], "pending");
    env.ok(&["approve", "drop-legacy-billing", "--as", "carol"]);
    let s = env.status("drop-legacy-billing");
    assert_eq!(s["status"], "approved");
    assert_eq!(
        s["approvals"]["have"],
        serde_json::json!(["alice", "carol"])
    );
}

#[test]
fn approvers_list_and_channel_ceilings_bind_the_cli() {
    let env = Env::new(Some(
        "safety: {allow_critical: true}\napprovals: {channel_max_risk: {cli: HIGH}}\napprovers:\n  - {name: alice, max_risk: MEDIUM}\n  - {name: carol, channels: [tui]}\n  - {name: dave}\n",
    ));
    env.ok(&["submit", "--as", "erin", DEMO]);
    env.refused(
        &["approve", "demo-local", "--as", "bob"],
        "bob is not on the policy's approvers list",
    );
    env.refused(
        &["approve", "demo-local", "--as", "carol"],
        "carol may not approve from the cli channel",
    );
    env.ok(&["approve", "demo-local", "--as", "alice"]);

    env.ok(&["submit", "--as", "erin", CRITICAL]);
    env.refused(
        &["approve", "drop-legacy-billing", "--as", "alice"],
        "alice may approve up to MEDIUM, and this plan is CRITICAL",
    );
    env.refused(
        &["approve", "drop-legacy-billing", "--as", "dave"],
        "the cli channel may approve up to HIGH, and this plan is CRITICAL",
    );
    // Anyone on the list may reject; nobody else.
    env.refused(
        &[
            "reject",
            "drop-legacy-billing",
            "--as",
            "mallory",
            "--reason",
            "no",
        ],
        "not on the policy's approvers list",
    );
    env.ok(&[
        "reject",
        "drop-legacy-billing",
        "--as",
        "dave",
        "--reason",
        "no",
    ]);
    assert_eq!(env.status("drop-legacy-billing")["status"], "rejected");
}

#[test]
fn one_rejection_rejects_and_a_new_submission_starts_over() {
    let env = Env::new(Some("safety: {allow_critical: true}\n"));
    env.ok(&["submit", "--as", "bob", CRITICAL]);
    env.ok(&["approve", "drop-legacy-billing", "--as", "alice"]);
    env.ok(&["approve", "drop-legacy-billing", "--as", "carol"]);
    assert_eq!(env.status("drop-legacy-billing")["status"], "approved");
    let out = env.ok(&[
        "reject",
        "drop-legacy-billing",
        "--as",
        "dave",
        "--reason",
        "backup not verified",
    ]);
    assert!(
        out.contains("rejected by dave: backup not verified"),
        "{out}"
    );
    assert_eq!(env.status("drop-legacy-billing")["status"], "rejected");
    env.refused(
        &["approve", "drop-legacy-billing", "--as", "erin2"],
        "is rejected",
    );
    let (code, _, err) = env.run(&[
        "reject",
        "drop-legacy-billing",
        "--as",
        "x",
        "--reason",
        " ",
    ]);
    assert_eq!(code, 2, "{err}");

    let v: Value = serde_json::from_str(&env.ok(&["submit", "--json", "--as", "bob", CRITICAL]))
        .expect("JSON");
    assert_eq!(v["new"], true);
    let s = env.status("drop-legacy-billing");
    assert_eq!(s["status"], "pending");
    assert_eq!(s["approvals"]["have"], serde_json::json!([]));
}

#[test]
fn an_approval_binds_the_hash_it_names() {
    let env = Env::new(None);
    let text = std::fs::read_to_string(repo().join(DEMO)).expect("demo plan");
    let file = env.plan_file("demo.yaml", &text);
    let v: Value = serde_json::from_str(&env.ok(&["submit", "--json", "--as", "x", path(&file)]))
        .expect("JSON");
    let reviewed = v["plan_hash"].as_str().expect("hash").to_owned();

    // The plan changes and is submitted again before the approver acts.
    let changed = text.replacen("title: ", "title: Changed - ", 1);
    assert_ne!(changed, text);
    std::fs::write(&file, changed).expect("plan rewritten");
    let v: Value = serde_json::from_str(&env.ok(&["submit", "--json", "--as", "x", path(&file)]))
        .expect("JSON");
    let current = v["plan_hash"].as_str().expect("hash").to_owned();
    assert_ne!(current, reviewed);

    env.refused(
        &[
            "approve",
            "demo-local",
            "--as",
            "alice",
            "--hash",
            &reviewed,
        ],
        &format!(
            "approval for {}, but plan `demo-local` is now {}",
            &reviewed[..19],
            &current[..19]
        ),
    );
    let (code, _, err) = env.run(&["approve", "demo-local", "--as", "alice", "--hash", "abc"]);
    assert_eq!(code, 2, "{err}");
    // A prefix of the current hash is enough.
    env.ok(&[
        "approve",
        "demo-local",
        "--as",
        "alice",
        "--hash",
        &current[7..23],
    ]);
    assert_eq!(env.status("demo-local")["status"], "approved");
}

#[test]
fn a_changed_policy_needs_a_new_submission() {
    let env = Env::new(None);
    env.ok(&["submit", "--as", "x", DEMO]);
    env.ok(&["approve", "demo-local", "--as", "alice"]);
    // Under another policy the approval no longer counts (read-only
    // commands work under any policy), and none is taken.
    let strict = env.dir.path().join("strict.yaml");
    std::fs::write(
        &strict,
        format!(
            "approvals: {{required: {{MEDIUM: 2}}}}\n{}",
            *common::TRUST_AS
        ),
    )
    .expect("policy");
    let mut cmd = env.cmd();
    let out = cmd
        .arg("--config")
        .arg(&strict)
        .args(common::with_reviewed_hash(
            &env.log,
            &["approve", "demo-local", "--as", "bob"],
        ))
        .output()
        .expect("runs");
    // The log adopted the first policy: nothing is decided under another
    // one until it is adopted (`policy adopt`, tests/identity.rs).
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not the one this audit log adopted"),
        "{err}"
    );
    let out = env
        .cmd()
        .arg("--config")
        .arg(&strict)
        .args(["status", "demo-local", "--json"])
        .output()
        .expect("runs");
    let s: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(s["status"], "pending", "{s}");
    assert!(
        s["missing"]
            .as_str()
            .is_some_and(|m| m.contains("submit it again")),
        "{s}"
    );
}

#[test]
fn approvals_expire_after_the_ttl() {
    let env = Env::new(Some("approvals: {ttl: 1s}\n"));
    env.ok(&["submit", "--as", "x", DEMO]);
    env.ok(&["approve", "demo-local", "--as", "alice"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let s = env.status("demo-local");
    assert_eq!(s["status"], "expired", "{s}");
    assert!(
        s["missing"]
            .as_str()
            .is_some_and(|m| m.contains("approval by alice expired")),
        "{s}"
    );
    // A fresh approval by the same person counts again.
    env.ok(&["approve", "demo-local", "--as", "alice"]);
    assert_eq!(env.status("demo-local")["status"], "approved");
}

#[test]
fn decisions_need_a_known_plan_and_a_sound_log() {
    let env = Env::new(None);
    env.ok(&["submit", "--as", "x", DEMO]);
    let (code, _, err) = env.run(&["approve", "nope", "--as", "alice", "--hash", "0123456789ab"]);
    assert_eq!(code, 1);
    assert!(err.contains("no plan `nope`"), "{err}");
    let (code, _, err) = env.run(&["status", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no plan or run `nope`"), "{err}");

    let text = std::fs::read_to_string(&env.log).expect("log");
    std::fs::write(&env.log, text.replace("\"demo\"", "\"eve\"")).expect("tampered");
    // Refused, and not recorded: nothing is written to a broken log.
    let lines = env.lines();
    let (code, _, err) = env.run(&["approve", "demo-local", "--as", "alice"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("hash mismatch"), "{err}");
    assert_eq!(env.lines(), lines);
    let (code, _, err) = env.run(&["status"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn status_lists_every_plan_with_its_approvals() {
    let env = Env::new(Some("safety: {allow_critical: true}\n"));
    env.ok(&["submit", "--as", "x", DEMO]);
    env.ok(&["submit", "--as", "x", CRITICAL]);
    env.ok(&["approve", "drop-legacy-billing", "--as", "alice"]);
    let all: Value = serde_json::from_str(&env.ok(&["status", "--json"])).expect("JSON");
    let rows: Vec<(String, String, String)> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["plan_id"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{}/{}",
                    p["approvals"]["have"].as_array().map_or(0, Vec::len),
                    p["approvals"]["needed"]
                ),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("demo-local".into(), "pending".into(), "0/1".into()),
            ("drop-legacy-billing".into(), "pending".into(), "1/2".into()),
        ]
    );
    let text = env.ok(&["status"]);
    assert!(text.contains("drop-legacy-billing"), "{text}");
    assert!(text.contains("1/2 alice"), "{text}");
}

/// Hardening 15: `approve ID` without `--hash` approved whatever was
/// submitted last, so a plan swapped under the same id was approved. With
/// no terminal to show the plan and ask, `--hash` is required; the swapped
/// plan is refused against the hash that was reviewed.
#[test]
fn approve_without_a_terminal_needs_the_reviewed_hash() {
    let env = Env::new(None);
    let reviewed: Value =
        serde_json::from_str(&env.ok(&["submit", "--as", "x", "--json", DEMO])).expect("JSON");
    let raw = |args: &[&str]| {
        let out = env.cmd().args(args).output().expect("runs");
        (
            out.status.code().expect("a code"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = raw(&["approve", "demo-local", "--as", "alice"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--hash"), "{err}");
    assert_eq!(
        env.lines(),
        2,
        "the adoption and the submission: nothing was approved"
    );
    // Swapped under the same id: the reviewed hash is refused.
    let swapped = env.plan_file(
        "swapped.yaml",
        &std::fs::read_to_string(repo().join(DEMO))
            .expect("demo")
            .replace("replicas: 3", "replicas: 30"),
    );
    env.ok(&["reject", "demo-local", "--as", "bob", "--reason", "swap"]);
    env.ok(&["submit", "--as", "x", swapped.to_str().expect("path")]);
    let hash = reviewed["plan_hash"].as_str().expect("hash");
    let (code, err) = raw(&["approve", "demo-local", "--as", "alice", "--hash", hash]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("review the plan again"), "{err}");
}
