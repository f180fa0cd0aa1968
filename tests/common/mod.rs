//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

pub mod backends;
pub mod env;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::NaiveDate;
use opsgate::core::plan::{ClassifiedPlan, PlanErrors, load_plan};
use opsgate::core::policy::LoadedPolicy;

/// The embedded default policy, loaded once per test binary.
pub static POLICY: LazyLock<LoadedPolicy> =
    LazyLock::new(|| LoadedPolicy::embedded().expect("the embedded policy loads"));

/// A fixed "today", so derived plan ids are stable.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 26).expect("valid date")
}

/// A state directory for high-water marks under this test binary's scratch
/// space, never the user's own (`~/.local/state`). Marks are named by the
/// log's path, so tests sharing it never see each other's.
pub fn scratch_state() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("state")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads a plan from text under the default policy.
pub fn plan(text: &str) -> Result<ClassifiedPlan, PlanErrors> {
    load_plan("plan.yaml", text, &POLICY, today())
}

/// The fixture files in a directory, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// The `# expect: …` first line of a fixture.
pub fn expectation(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("fixture starts with `# expect: LINE:COL: message`")
        .to_owned()
}

/// `opsgate --audit-log LOG [--config POLICY]`, run from the repository with
/// a fixed OS user, no colour, and none of the caller's opsgate settings.
pub fn opsgate_command(log: &Path, policy: Option<&Path>) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("opsgate"));
    // Each log's high-water marks live beside it, not in the real state
    // directory: tests never see each other's marks.
    let state = log
        .parent()
        .map_or_else(|| PathBuf::from("state"), |d| d.join("state"));
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .env("USER", "os-user")
        .env("XDG_STATE_HOME", state)
        .env_remove("OPSGATE_CONFIG")
        .env_remove("OPSGATE_AUDIT_KEY")
        .env_remove("OPSGATE_AUDIT_LOG")
        .env_remove("OPSGATE_LOG")
        .arg("--audit-log")
        .arg(log);
    if let Some(p) = policy {
        cmd.arg("--config").arg(p);
    }
    cmd
}

/// Every record of an audit log, as JSON.
pub fn log_records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .expect("the audit log exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each record is JSON"))
        .collect()
}

/// The arguments of an `opsgate` command as a test means them: an
/// `approve ID` without `--hash` approves the plan as submitted now, so the
/// hash of its latest submission in `log` is added (`approve` refuses to
/// guess without a terminal). Anything else is returned as it is.
pub fn with_reviewed_hash(log: &Path, args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    if args.first() != Some(&"approve") || args.iter().any(|a| *a == "--hash" || *a == "--rollback")
    {
        return out;
    }
    let Some(id) = args.get(1) else {
        return out;
    };
    let hash = std::fs::read_to_string(log).ok().and_then(|text| {
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["type"] == "plan_submitted" && r["plan_id"] == *id)
            .and_then(|r| r["plan_hash"].as_str().map(str::to_owned))
    });
    if let Some(h) = hash {
        out.push("--hash".into());
        out.push(h);
    }
    out
}

/// What a refusal by a rule writes: exactly one `refused` record, whose
/// reason says `why` (hardening: refusals leave a trace).
#[track_caller]
pub fn assert_one_refused_record(new: &[serde_json::Value], why: &str) {
    assert_eq!(
        new.len(),
        1,
        "a refusal writes one `refused` record: {new:?}"
    );
    assert_eq!(new[0]["type"], "refused", "{:?}", new[0]);
    assert!(
        new[0]["reason"].as_str().is_some_and(|r| r.contains(why)),
        "the record says why ({why:?}): {:?}",
        new[0]
    );
    assert!(
        new[0]["code"].is_string() && new[0]["user"].is_string(),
        "{:?}",
        new[0]
    );
}
