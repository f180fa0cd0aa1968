//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

pub mod backends;
pub mod env;
pub mod http;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::NaiveDate;
use opsgate::core::plan::{ClassifiedPlan, PlanErrors, load_plan};
use opsgate::core::policy::LoadedPolicy;

/// The people tests name with `--as`, each with an ed25519 key made by
/// `ssh-keygen` for this test process, listed in an allowed signers file.
pub const SIGNERS: [&str; 13] = [
    "alice", "bob", "carol", "dave", "dana", "demo", "erin", "erin2", "x", "author", "ops",
    "mallory", "os-user",
];

/// The keys of [`SIGNERS`] and their allowed signers file.
pub struct Keys {
    pub dir: PathBuf,
    pub allowed_signers: PathBuf,
}

impl Keys {
    /// The private key file of `name`, if tests have one for them.
    pub fn of(&self, name: &str) -> Option<PathBuf> {
        let name = name.trim().to_lowercase();
        SIGNERS
            .contains(&name.as_str())
            .then(|| self.dir.join(&name))
    }
}

/// Made once per test process.
pub static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("keys directory");
    let mut listed = String::new();
    for name in SIGNERS {
        let key = dir.join(name);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen made a key for {name}");
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())))
            .expect("public key");
        listed.push_str(&format!("{name} namespaces=\"opsgate\" {}", public.trim()));
        listed.push('\n');
    }
    let allowed_signers = dir.join("allowed_signers");
    std::fs::write(&allowed_signers, listed).expect("allowed signers written");
    Keys {
        dir,
        allowed_signers,
    }
});

/// What tests lay over every policy they run the binary with: tests name
/// people with `--as`, which only a policy that trusts it allows
/// (`identity.trust_as`), and sign with the [`KEYS`] of [`SIGNERS`]. A test
/// policy that says anything about `identity:` is left as it is.
pub static TRUST_AS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "identity:\n  trust_as: true\n  allowed_signers: {}\n",
        KEYS.allowed_signers.display()
    )
});

/// The policy of tests that give none: the embedded default with
/// [`TRUST_AS`], loaded once per test binary.
pub static POLICY: LazyLock<LoadedPolicy> = LazyLock::new(|| {
    let signers = std::fs::read_to_string(&KEYS.allowed_signers).expect("allowed signers");
    LoadedPolicy::load(Some(("trust-as.yaml", &TRUST_AS)))
        .and_then(|p| p.with_signers_file("allowed_signers", &signers))
        .expect("the test policy loads")
});

/// The name of the OS user running the tests, as `id -un` gives it.
pub fn os_user_name() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id runs");
    String::from_utf8(out.stdout)
        .expect("a UTF-8 name")
        .trim()
        .to_owned()
}

/// A policy file holding only [`TRUST_AS`], in this test binary's
/// scratch space, for commands that take their policy from
/// `OPSGATE_CONFIG`.
pub fn trust_as_file() -> PathBuf {
    // Per process: it names this process's keys.
    let path = scratch_state().with_file_name(format!("trust-as-{}.yaml", std::process::id()));
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("scratch directory");
        }
        // Written aside and renamed: tests running at once never read
        // half a file.
        let aside = path.with_extension(format!("{:?}.tmp", std::thread::current().id()));
        std::fs::write(&aside, TRUST_AS.as_str()).expect("trust-as.yaml written");
        std::fs::rename(&aside, &path).expect("trust-as.yaml in place");
    }
    path
}

/// The policy file a test's command runs with: none given, a
/// `trust-as.yaml` beside the log holding [`TRUST_AS`]; a test's policy in
/// a temp dir gets [`TRUST_AS`] appended unless it has an `identity:`
/// section.
fn trusting(log: &Path, policy: Option<&Path>) -> Option<PathBuf> {
    match policy {
        None => {
            let dir = log.parent()?;
            let path = dir.join("trust-as.yaml");
            if !path.exists() {
                std::fs::create_dir_all(dir).expect("the log's directory");
                std::fs::write(&path, TRUST_AS.as_str()).expect("trust-as.yaml written");
            }
            Some(path)
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let in_temp = p.starts_with(std::env::temp_dir());
            if in_temp && !text.lines().any(|l| l.starts_with("identity:")) {
                let sep = if text.is_empty() || text.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                std::fs::write(p, format!("{text}{sep}{}", *TRUST_AS)).expect("policy written");
            }
            Some(p.to_path_buf())
        }
    }
}

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
    // Each log's high-water marks live beside it, not in the real state
    // directory: tests never see each other's marks.
    let state = log
        .parent()
        .map_or_else(|| PathBuf::from("state"), |d| d.join("state"));
    let mut cmd = isolated_command(&state);
    cmd.arg("--audit-log").arg(log);
    with_policy(&mut cmd, log, policy);
    cmd
}

/// `opsgate` as one host of a team: its own state directory `state` (its
/// replica, marks and user config), the log in the store at `url`
/// (`OPSGATE_STORE`), the tests' trust-as policy laid over `policy`.
pub fn opsgate_store_command(
    state: &Path,
    url: &str,
    policy: Option<&Path>,
) -> std::process::Command {
    let mut cmd = isolated_command(state);
    cmd.env("OPSGATE_STORE", url);
    with_policy(&mut cmd, &state.join("audit.jsonl"), policy);
    cmd
}

/// The binary, run from the repository with a fixed OS user, no colour,
/// state in `state`, and none of the caller's opsgate settings.
fn isolated_command(state: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("opsgate"));
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .env("USER", "os-user")
        .env("XDG_STATE_HOME", state)
        // Nor this machine's user config (a signing key, a policy).
        .env("XDG_CONFIG_HOME", state.join("config"))
        .env_remove("OPSGATE_AUDIT_KEY")
        .env_remove("OPSGATE_SIGNING_KEY")
        .env_remove("OPSGATE_AUDIT_LOG")
        .env_remove("OPSGATE_STORE")
        .env_remove("OPSGATE_LOG");
    cmd
}

fn with_policy(cmd: &mut std::process::Command, log: &Path, policy: Option<&Path>) {
    match (policy, trusting(log, policy)) {
        // Through the environment, so that a test may still pass
        // `--config` of its own.
        (None, Some(p)) => {
            cmd.env("OPSGATE_CONFIG", p);
        }
        (_, Some(p)) => {
            cmd.arg("--config").arg(p);
        }
        (_, None) => {}
    }
}

/// Runs `cmd` with no input to its end: exit code, stdout, stderr.
#[allow(dead_code, reason = "not every test crate runs commands this way")]
pub fn outcome(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("opsgate runs");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every record of an audit log, as JSON.
pub fn log_records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .expect("the audit log exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each record is JSON"))
        .collect()
}

/// `submit`, `approve` and `reject` `--as NAME` sign with NAME's key from
/// [`KEYS`], when tests have one and the command names no key.
pub fn with_keys(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let signs = matches!(args.first(), Some(&("submit" | "approve" | "reject")));
    if !signs || args.contains(&"--key") {
        return out;
    }
    let name = args
        .iter()
        .position(|a| *a == "--as")
        .and_then(|i| args.get(i + 1));
    if let Some(key) = name.and_then(|n| KEYS.of(n)) {
        out.push("--key".into());
        out.push(key.display().to_string());
    }
    out
}

/// The arguments of an `opsgate` command as a test means them: an
/// `approve ID` without `--hash` approves the plan as submitted now, so the
/// hash of its latest submission in `log` is added (`approve` refuses to
/// guess without a terminal). Anything else is returned as it is.
pub fn with_reviewed_hash(log: &Path, args: &[&str]) -> Vec<String> {
    let mut out = with_keys(args);
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

/// A forger's append: `event` (a JSON object with its `type`) as the next
/// record of `log`, linked to the last one and sealed with plain SHA-256
/// as the format describes (what anyone who can write an unkeyed log can
/// do).
pub fn append_chained(log: &Path, event: serde_json::Value) {
    use sha2::{Digest, Sha256};
    let text = std::fs::read_to_string(log).expect("the log reads");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a record")).expect("JSON");
    let seq = last["seq"].as_u64().expect("a seq") + 1;
    let prev = last["hash"].as_str().expect("a hash");
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let map = event.as_object().expect("an object");
    let mut fields = vec![format!("\"type\":{}", map["type"])];
    for (k, v) in map.iter().filter(|(k, _)| *k != "type") {
        fields.push(format!("{}:{v}", serde_json::Value::String(k.clone())));
    }
    let body = format!(
        "{{\"v\":3,\"seq\":{seq},\"ts\":\"{ts}\",{},\"prev\":\"{prev}\"}}",
        fields.join(",")
    );
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())));
    let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("the log opens");
    std::io::Write::write_all(&mut file, line.as_bytes()).expect("appended");
}
