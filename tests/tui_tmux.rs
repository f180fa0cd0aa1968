//! The TUI end to end in a real terminal: tmux runs the binary, the test
//! types with `send-keys` and reads the screen with `capture-pane`.
//! `.ci/run` installs tmux when it is missing; without it this test fails.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::Path;
use std::process::Command;

use std::time::{Duration, Instant};

use common::tmux::{Tmux, shell_quote};

/// `opsgate tui --as alice` under the tests' policy, signing with alice's
/// key, in a tmux session.
fn start(name: &str, log: &Path, args: &[&str]) -> Tmux {
    let key = common::KEYS.of("alice").expect("alice has a key");
    let mut tui = vec![
        "--as",
        "alice",
        "--key",
        key.to_str().expect("a UTF-8 path"),
    ];
    tui.extend_from_slice(args);
    start_with(name, log, &common::trust_as_file(), &[], &tui)
}

/// `VARS… opsgate tui ARGS` under the policy `policy`.
fn start_with(
    name: &str,
    log: &Path,
    policy: &Path,
    vars: &[(&str, &Path)],
    args: &[&str],
) -> Tmux {
    let bin = assert_cmd::cargo::cargo_bin!("opsgate");
    let vars: String = vars
        .iter()
        .map(|(k, v)| format!(" {k}={}", shell_quote(&v.display().to_string())))
        .collect();
    let mut command = format!(
        "cd {} && env -u OPSGATE_AUDIT_KEY -u OPSGATE_SIGNING_KEY OPSGATE_CONFIG={} NO_COLOR=1 XDG_STATE_HOME={}{vars} {} --audit-log {} tui",
        shell_quote(&common::repo().display().to_string()),
        shell_quote(&policy.display().to_string()),
        shell_quote(&common::scratch_state().display().to_string()),
        shell_quote(&bin.display().to_string()),
        shell_quote(&log.display().to_string()),
    );
    for a in args {
        command.push(' ');
        command.push_str(&shell_quote(a));
    }
    Tmux::run(name, &command)
}

#[test]
fn approve_and_execute_the_demo_then_quit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let t = start("opsgate-e2e-demo", &log, &["plans/demo-local.yaml"]);
    t.wait_for("demo-local");
    t.keys(&["a"]);
    t.wait_for("Approve plan `demo-local` as alice");
    t.keys(&["Enter"]);
    t.wait_for("approved plan `demo-local` as alice");
    t.keys(&["x"]);
    t.wait_for("Execute plan `demo-local`");
    t.keys(&["Enter"]);
    let screen = t.wait_for("✓ run succeeded");
    assert!(screen.contains("step 4/4"), "{screen}");
    t.keys(&["Escape"]);
    t.wait_for("succeeded");
    t.keys(&["q"]);
    let screen = t.wait_for("TUI-EXITED 0");
    // The terminal was restored: the shell's line is on the normal screen.
    assert!(!screen.contains("Plans · filter"), "{screen}");

    let kinds: Vec<String> = common::log_records(&log)
        .iter()
        .filter_map(|r| r["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        &kinds[..4],
        [
            "policy_adopted",
            "plan_submitted",
            "approval_granted",
            "run_started"
        ]
    );
    assert_eq!(kinds.last().map(String::as_str), Some("run_finished"));
    let approval = &common::log_records(&log)[2];
    assert_eq!(approval["channel"], "tui");
    assert_eq!(approval["approver"], "alice");
    // The TUI signed both with alice's key (`tui --key`).
    for r in &common::log_records(&log)[1..3] {
        assert_eq!(r["identity"]["kind"], "ssh", "{r}");
    }
    let verified = common::opsgate_command(&log, None)
        .args(["audit", "verify", "--json"])
        .output()
        .expect("verify runs");
    let out = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{out}");
    assert!(out.contains("\"signed\":2"), "{out}");
    if let Ok(pid) = std::fs::read_to_string("/tmp/opsgate-demo/worker.pid") {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

#[test]
fn a_failing_plan_offers_the_rollback_and_shows_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let marker = dir.path().join("made");
    let plan = dir.path().join("fails.yaml");
    std::fs::write(
        &plan,
        format!(
            "id: fails\ntitle: A plan whose second step fails\nauthor: bob\nsteps:\n  - name: make marker\n    run: touch {m}\n    rollback: {{run: rm -f {m}}}\n  - name: break\n    run: 'echo about to fail; exit 3'\n    rollback: {{run: 'true'}}\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let t = start("opsgate-e2e-fail", &log, &[plan.to_str().unwrap()]);
    t.wait_for("fails");
    t.keys(&["a", "Enter"]);
    t.wait_for("approved plan `fails`");
    t.keys(&["x", "Enter"]);
    let screen = t.wait_for("roll back? Enter yes");
    assert!(screen.contains("about to fail"), "{screen}");
    assert!(marker.exists(), "step one ran");
    t.keys(&["Enter"]);
    let screen = t.wait_for("rollback succeeded");
    assert!(screen.contains("undo make marker succeeded"), "{screen}");
    assert!(!marker.exists(), "the rollback removed the marker");
    t.keys(&["Escape"]);
    t.wait_for("rolled back");
    // Ctrl-C quits too, and restores the terminal.
    t.keys(&["C-c"]);
    let screen = t.wait_for("TUI-EXITED 0");
    assert!(!screen.contains("Plans · filter"), "{screen}");
}

#[test]
fn an_approval_from_another_process_appears_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let cli = |args: &[&str]| {
        let out = common::opsgate_command(&log, None)
            .args(common::with_reviewed_hash(&log, args))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli(&["submit", "--as", "demo", "plans/demo-local.yaml"]);
    let t = start("opsgate-e2e-live", &log, &["plans/demo-local.yaml"]);
    let screen = t.wait_for("demo-local");
    assert!(screen.contains("pending"), "{screen}");
    cli(&["approve", "demo-local", "--as", "bob"]);
    let screen = t.wait_for("approved");
    assert!(screen.contains("1/1"), "{screen}");
    t.keys(&["q"]);
    t.wait_for("TUI-EXITED 0");
}

/// A HIGH plan needs a signed approval: the TUI signs with a key that only
/// an `ssh-agent` holds (`tui --key KEY.pub`), as git does.
#[test]
fn the_tui_signs_a_high_approval_with_a_key_in_the_ssh_agent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let keygen = |name: &str| {
        let key = dir.path().join(name);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let public = std::fs::read_to_string(dir.path().join(format!("{name}.pub"))).unwrap();
        (key, public.trim().to_owned())
    };
    let (alice, alice_pub) = keygen("alice");
    let (bob, bob_pub) = keygen("bob");
    std::fs::write(
        dir.path().join("allowed_signers"),
        format!("alice {alice_pub}\nbob {bob_pub}\n"),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "identity: {allowed_signers: allowed_signers}\n").unwrap();
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let plan = dir.path().join("wipe.yaml");
    std::fs::write(
        &plan,
        format!(
            "id: wipe\ntitle: remove a scratch directory\nsteps:\n  - {{name: wipe, run: rm -rf {}}}\nrollback: {{none: a test}}\n",
            victim.display()
        ),
    )
    .unwrap();
    // bob submits, with his key.
    let out = common::opsgate_command(&log, Some(&policy))
        .arg("submit")
        .arg(&plan)
        .arg("--key")
        .arg(&bob)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // alice's private key lives only in the agent.
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&alice)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    std::fs::remove_file(&alice).unwrap();
    let alice_public = dir.path().join("alice.pub");
    let t = start_with(
        "opsgate-e2e-agent",
        &log,
        &policy,
        &[("SSH_AUTH_SOCK", &sock)],
        &["--key", alice_public.to_str().unwrap()],
    );
    t.wait_for("wipe");
    // The embedded catalogue lists its demos too: filter down to `wipe`.
    t.keys(&["/", "w", "i", "p", "e", "Enter", "a"]);
    t.wait_for("Approve plan `wipe` as alice");
    t.keys(&["Enter"]);
    t.wait_for("approved plan `wipe` as alice");
    t.keys(&["q"]);
    t.wait_for("TUI-EXITED 0");
    let _ = agent.kill();
    let _ = agent.wait();
    let records = common::log_records(&log);
    let approval = records
        .iter()
        .find(|r| r["type"] == "approval_granted")
        .expect("an approval");
    assert_eq!(approval["approver"], "alice");
    assert_eq!(approval["channel"], "tui");
    assert_eq!(approval["identity"]["kind"], "ssh", "{approval}");
}
