//! Who decides, proven: decisions signed with real OpenSSH keys made here by
//! `ssh-keygen` (ed25519, ecdsa, a certificate from an SSH CA, a key held
//! only by an `ssh-agent`), checked against the policy's allowed signers,
//! and the attacks on names and keys that used to pass.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::env::{Env, path};
use serde_json::Value;

/// A HIGH plan: it needs one signed approval by someone other than its
/// submitter.
const HIGH: &str = "id: wipe
title: remove a scratch directory
steps:
  - {name: wipe, run: rm -rf @D@/victim}
rollback: {none: a test}
";

/// A CRITICAL plan: two signed approvals.
const CRITICAL: &str = "id: shred
title: shred a scratch file
steps:
  - {name: shred, run: shred -u @D@/victim-file}
rollback: {none: a test}
";

/// Makes a key `name` of `kind` (`ed25519`, `ecdsa`) in `dir`; returns
/// the private key's path and its public line.
fn keygen(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs")
        .success();
    assert!(ok, "ssh-keygen made {name}");
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).expect("public key");
    (key, public.trim().to_owned())
}

/// `ssh-keygen -l` of a public key file: `SHA256:…`.
fn fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .expect("ssh-keygen -l runs");
    String::from_utf8(out.stdout)
        .expect("text")
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned()
}

/// A world with a policy naming `signers` as its allowed signers file,
/// separation of duties at every level and CRITICAL plans allowed.
fn world(signers: &str) -> Env {
    let env = Env::new(Some(
        "identity:\n  allowed_signers: allowed_signers\napprovals: {separation_of_duties: true}\nsafety: {allow_critical: true}\n",
    ));
    std::fs::write(env.p("allowed_signers"), signers).expect("allowed signers written");
    std::fs::create_dir_all(env.p("victim")).expect("victim");
    env
}

fn last(env: &Env, kind: &str) -> Value {
    env.of(kind, None).last().cloned().expect("a record")
}

#[test]
fn signed_submit_and_approval_carry_their_keys_and_the_plan_runs() {
    let env = Env::new(None);
    let keys = env.p("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let (alice, alice_pub) = keygen(&keys, "alice", "ed25519");
    let (bob, bob_pub) = keygen(&keys, "bob", "ecdsa");
    let env = world(&format!(
        "alice namespaces=\"opsgate\" {alice_pub}\nbob {bob_pub}\n"
    ));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&alice)]);
    let submitted = last(&env, "plan_submitted");
    assert_eq!(
        submitted["submitted_by"], "alice",
        "the key names the submitter"
    );
    assert_eq!(submitted["identity"]["kind"], "ssh");
    assert_eq!(
        submitted["identity"]["fingerprint"],
        fingerprint(&keys.join("alice.pub")).as_str()
    );
    assert!(
        submitted["identity"]["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("-----BEGIN SSH SIGNATURE-----")),
        "{submitted}"
    );
    // The submitter's own key cannot approve (separation of duties).
    env.refused(
        &["approve", "wipe", "--key", path(&alice)],
        "submitted the plan",
    );
    env.ok(&["approve", "wipe", "--key", path(&bob)]);
    let granted = last(&env, "approval_granted");
    assert_eq!(granted["approver"], "bob");
    assert_eq!(granted["identity"]["kind"], "ssh");
    assert_eq!(
        granted["identity"]["fingerprint"],
        fingerprint(&keys.join("bob.pub")).as_str()
    );
    env.ok(&["run", "wipe"]);
    assert!(!env.p("victim").exists(), "the approved plan ran");
    env.verify();
}

#[test]
fn an_unsigned_decision_does_not_count_where_signatures_are_required() {
    let env = Env::new(None);
    let keys = env.p("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let (_, bob_pub) = keygen(&keys, "yan", "ed25519");
    let env = Env::new(Some(
        "identity:\n  trust_as: true\n  allowed_signers: allowed_signers\n",
    ));
    std::fs::write(env.p("allowed_signers"), format!("yan {bob_pub}\n")).expect("signers");
    std::fs::create_dir_all(env.p("victim")).expect("victim");
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--as", "zed"]);
    // `--as yan` is trusted as a name here, but a HIGH decision must be
    // signed: refused, and recorded as refused.
    env.refused(&["approve", "wipe", "--as", "yan"], "is not signed");
    env.refused(&["run", "wipe"], "needs 1 approval");
    assert!(env.p("victim").exists(), "nothing ran");
}

#[test]
fn one_key_under_two_names_is_one_approver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (shared, shared_pub) = keygen(dir.path(), "shared", "ed25519");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let env = world(&format!("alice,mallory {shared_pub}\ncarol {carol_pub}\n"));
    let plan = env.plan("plan.yaml", CRITICAL);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    // A key listed for two people must say which.
    let (code, _, err) = env.run(&["approve", "shred", "--key", path(&shared)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("say which with --as"), "{err}");
    env.ok(&["approve", "shred", "--key", path(&shared), "--as", "alice"]);
    env.refused(
        &[
            "approve",
            "shred",
            "--key",
            path(&shared),
            "--as",
            "mallory",
        ],
        "one key counts once",
    );
    env.refused(&["run", "shred"], "needs 2 approvals");
    assert!(env.status("shred")["status"] == "pending");
}

#[test]
fn the_submitters_key_under_another_name_cannot_approve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (shared, shared_pub) = keygen(dir.path(), "shared", "ed25519");
    let env = world(&format!("alice,mallory {shared_pub}\n"));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&[
        "submit",
        path(&plan),
        "--key",
        path(&shared),
        "--as",
        "alice",
    ]);
    env.refused(
        &["approve", "wipe", "--key", path(&shared), "--as", "mallory"],
        "submitted the plan",
    );
}

#[test]
fn an_expired_key_or_another_namespace_does_not_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old, old_pub) = keygen(dir.path(), "old", "ed25519");
    let (git, git_pub) = keygen(dir.path(), "git", "ed25519");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let env = world(&format!(
        "bob valid-before=\"20200101Z\" {old_pub}\ndave namespaces=\"git\" {git_pub}\ncarol {carol_pub}\n"
    ));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    // Neither key names anyone for opsgate now.
    for key in [&old, &git] {
        let (code, _, err) = env.run(&["approve", "wipe", "--key", path(key)]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("not in the policy's allowed signers"), "{err}");
    }
    for (key, who) in [(&old, "bob"), (&git, "dave")] {
        let (code, _, err) = env.run(&["approve", "wipe", "--key", path(key), "--as", who]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains(&format!("not listed for {who}")), "{err}");
    }
    assert!(env.of("approval_granted", None).is_empty());
}

#[test]
fn a_certificate_from_a_trusted_ca_signs_for_its_principal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, ca_pub) = keygen(dir.path(), "ca", "ed25519");
    let (user, _) = keygen(dir.path(), "user", "ed25519");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "bob@corp", "-n", "bob", "-V", "-5m:+1h"])
        .arg(dir.path().join("user.pub"))
        .status()
        .expect("ssh-keygen -s runs")
        .success();
    assert!(ok, "the CA signed the user's key");
    let cert = dir.path().join("user-cert.pub");
    let env = world(&format!(
        "*@corp,bob cert-authority {ca_pub}\ncarol {carol_pub}\n"
    ));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    // The CA's own key is not a person.
    let (code, _, err) = env.run(&["approve", "wipe", "--key", path(&ca), "--as", "bob"]);
    assert_eq!(code, 3, "{err}");
    env.ok(&["approve", "wipe", "--key", path(&cert)]);
    let granted = last(&env, "approval_granted");
    assert_eq!(granted["approver"], "bob");
    assert_eq!(granted["identity"]["kind"], "ssh");
    let _ = user;
    env.ok(&["run", "wipe"]);
}

#[test]
fn a_key_held_only_by_an_ssh_agent_signs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let (bob, bob_pub) = keygen(dir.path(), "bob", "ed25519");
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .spawn()
        .expect("ssh-agent starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&bob)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("ssh-add runs");
    assert!(added.status.success(), "{added:?}");
    // Only the agent has bob's private key now.
    std::fs::remove_file(&bob).expect("private key removed");
    let env = world(&format!("carol {carol_pub}\nbob {bob_pub}\n"));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    let bob_public = dir.path().join("bob.pub");
    let out = env
        .command()
        .env("SSH_AUTH_SOCK", &sock)
        .args(common::with_reviewed_hash(
            &env.log,
            &["approve", "wipe", "--key", path(&bob_public)],
        ))
        .output()
        .expect("approve runs");
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(out.status.success(), "{out:?}");
    let granted = last(&env, "approval_granted");
    assert_eq!(granted["approver"], "bob");
    assert_eq!(granted["identity"]["kind"], "ssh");
}

/// Attack: a well-chained (unkeyed) `approval_granted` appended by hand,
/// for a name, without a signature, or with a signature copied from
/// another decision: it does not count at run time.
#[test]
fn a_forged_approval_does_not_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let (bob, bob_pub) = keygen(dir.path(), "bob", "ed25519");
    let env = world(&format!("carol {carol_pub}\nbob {bob_pub}\n"));
    let plan = env.plan("plan.yaml", HIGH);
    let other = env.plan(
        "other.yaml",
        "id: other\ntitle: t\nsteps:\n  - {name: wipe, run: rm -rf @D@/other}\nrollback: {none: a test}\n",
    );
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    env.ok(&["submit", path(&other), "--key", path(&carol)]);
    env.ok(&["approve", "other", "--key", path(&bob)]);
    let real = last(&env, "approval_granted");
    let submitted = env
        .of("plan_submitted", None)
        .into_iter()
        .find(|r| r["plan_id"] == "wipe")
        .expect("wipe submitted");
    // An unsigned approval by "bob", and one carrying bob's real signature
    // for the other plan.
    for identity in [
        serde_json::json!({"kind": "os", "uid": 0}),
        real["identity"].clone(),
    ] {
        let forged = serde_json::json!({
            "type": "approval_granted",
            "plan_id": "wipe",
            "plan_hash": submitted["plan_hash"],
            "policy_hash": submitted["policy_hash"],
            "risk": "HIGH",
            "approver": "bob",
            "channel": "cli",
            "submission_seq": submitted["seq"],
            "identity": identity,
        });
        common::append_chained(&env.log, forged);
        env.refused(&["run", "wipe"], "needs 1 approval");
        assert!(env.p("victim").exists(), "the forged approval ran the plan");
    }
    // `audit verify` names both: the unsigned one did not count, the
    // copied signature does not verify (exit 1).
    let forged_seqs: Vec<u64> = env
        .of("approval_granted", None)
        .iter()
        .filter(|r| r["plan_id"] == "wipe")
        .map(|r| r["seq"].as_u64().expect("a seq"))
        .collect();
    assert_eq!(forged_seqs.len(), 2);
    let (code, out, err) = env.run(&["audit", "verify", "--json"]);
    assert_eq!(code, 1, "{out} {err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let ids = &v["identities"];
    assert_eq!(ids["unsigned"][0]["seq"], forged_seqs[0], "{v}");
    assert_eq!(ids["bad"][0]["seq"], forged_seqs[1], "{v}");
    assert_eq!(
        ids["signed"], 3,
        "two submissions and bob's real approval: {v}"
    );
    let _ = err;
}

/// `audit verify` counts each kind of identity, and a signed decision
/// edited afterwards (its reason changed, the chain re-sealed) fails it,
/// naming the record.
#[test]
fn audit_verify_checks_every_signature_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let (bob, bob_pub) = keygen(dir.path(), "bob", "ed25519");
    let env = world(&format!("carol {carol_pub}\nbob {bob_pub}\n"));
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    env.ok(&[
        "reject",
        "wipe",
        "--key",
        path(&bob),
        "--reason",
        "not tonight",
    ]);
    let out = env.ok(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["identities"]["signed"], 2, "{v}");
    assert_eq!(v["identities"]["bad"], serde_json::json!([]), "{v}");
    // The rejection's reason rewritten and every hash recomputed.
    let text = std::fs::read_to_string(&env.log).expect("log");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    let edited = lines[n - 1].replace("not tonight", "ship it");
    std::fs::write(&env.log, format!("{}\n", lines[..n - 1].join("\n"))).expect("log rewritten");
    let mut event: serde_json::Map<String, Value> =
        serde_json::from_str(&edited).expect("a record");
    for k in ["v", "seq", "ts", "prev", "hash"] {
        event.remove(k);
    }
    common::append_chained(&env.log, Value::Object(event));
    // This host saw the original last record: the operator accepts the
    // rewritten log's chain, which then verifies as a chain.
    env.ok(&[
        "audit",
        "verify",
        "--acknowledge-truncation",
        "--reason",
        "the test rewrote it",
    ]);
    let (code, out, _) = env.run(&["audit", "verify", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["identities"]["bad"][0]["seq"], n as u64, "{v}");
}

/// Attack: `--as` under a policy that does not trust it. Naming someone
/// else is refused (exit 3) and writes nothing; naming yourself is fine;
/// a name with a control character is not a name (exit 2).
#[test]
fn as_names_someone_else_only_where_the_policy_trusts_it() {
    let env = Env::new(Some("identity: {trust_as: false}\n"));
    let plan = env.plan("plan.yaml", HIGH);
    let (code, _, err) = env.run(&["submit", path(&plan), "--as", "zoe"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not trust --as"), "{err}");
    assert!(env.records().is_empty(), "nothing was recorded");
    let me = common::os_user_name();
    env.ok(&["submit", path(&plan), "--as", &me]);
    assert_eq!(last(&env, "plan_submitted")["submitted_by"], me.as_str());
    let (code, _, err) = env.run(&["submit", path(&plan), "--as", "zoe\u{7}"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("U+0007"), "{err}");
}

/// Keys listed inline on the approvers list sign as well as an allowed
/// signers file, and a key listed for someone else does not.
#[test]
fn approvers_keys_inline_sign_for_their_approver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (carol, carol_pub) = keygen(dir.path(), "carol", "ed25519");
    let (bob, bob_pub) = keygen(dir.path(), "bob", "ecdsa");
    let env = Env::new(Some(&format!(
        "identity: {{trust_as: false}}\napprovers:\n  - {{name: carol, keys: [\"{carol_pub}\"]}}\n  - {{name: bob, keys: [\"{bob_pub}\"]}}\n"
    )));
    std::fs::create_dir_all(env.p("victim")).expect("victim");
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&carol)]);
    let (code, _, err) = env.run(&["approve", "wipe", "--key", path(&carol), "--as", "bob"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not listed for bob"), "{err}");
    env.ok(&["approve", "wipe", "--key", path(&bob)]);
    assert_eq!(last(&env, "approval_granted")["approver"], "bob");
    env.ok(&["run", "wipe"]);
    assert!(!env.p("victim").exists());
}

/// Attack: a permissive `config/opsgate.yaml` in the working directory (a
/// repository checkout) chose the rules. It is not read: the embedded
/// default decides, and a MEDIUM plan still needs its approval.
#[test]
fn a_policy_in_the_working_directory_is_not_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("config")).expect("config dir");
    std::fs::write(
        dir.path().join("config/opsgate.yaml"),
        "safety: {require_approval: false}\nidentity: {trust_as: true}\n",
    )
    .expect("policy written");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let opsgate = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin!("opsgate"))
            .current_dir(dir.path())
            .env_remove("OPSGATE_CONFIG")
            .env_remove("OPSGATE_SIGNING_KEY")
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("NO_COLOR", "1")
            .arg("--audit-log")
            .arg(dir.path().join("audit.jsonl"))
            .args(args)
            .output()
            .expect("opsgate runs")
    };
    let out = opsgate(&["policy", "check", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        v["source"].as_str().is_some_and(|s| s.contains("embedded")),
        "{v}"
    );
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "id: scale\ntitle: t\nsteps:\n  - {name: s, run: 'kubectl scale deploy/web --replicas=3 -n staging'}\nrollback: {none: a test}\n",
    )
    .expect("plan written");
    let out = opsgate(&["submit", path(&plan)]);
    assert!(out.status.success(), "{out:?}");
    let out = opsgate(&["run", "scale"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs 1 approval"),
        "{out:?}"
    );
}

/// `policy diff` marks a lowered rule as loosening and re-rates the plans
/// already in the log: the one the rule now lets through is listed, with
/// its step, under both policies.
#[test]
fn policy_diff_lists_a_lowered_rule_and_the_past_plans_it_re_rates() {
    let env = Env::new(None);
    std::fs::create_dir_all(env.p("victim")).expect("victim");
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--as", "bob"]);
    let old = env.p("old.yaml");
    let new = env.p("new.yaml");
    let rule = |level: &str| {
        format!(
            "rules:\n  - {{id: scratch-rm, program: rm, regex: victim, level: {level}, override: true}}\n"
        )
    };
    std::fs::write(&old, rule("CRITICAL")).expect("old policy");
    std::fs::write(&new, rule("LOW")).expect("new policy");
    let out = env.ok(&["policy", "diff", path(&old), path(&new), "--json"]);
    let d: Value = serde_json::from_str(&out).expect("JSON");
    let change = d["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["key"] == "rules[scratch-rm]")
        .unwrap_or_else(|| panic!("the rule is listed: {d}"));
    assert_eq!(change["effect"], "loosens", "{change}");
    assert_eq!(d["loosens"], true);
    assert_eq!(d["replay"]["plans"], 1);
    let moved = &d["replay"]["moved"][0];
    assert_eq!(moved["plan_id"], "wipe", "{d}");
    assert_eq!(moved["old_risk"], "CRITICAL");
    assert_eq!(moved["new_risk"], "LOW");
    assert_eq!(
        moved["old"]["kind"], "refused",
        "CRITICAL plans are refused"
    );
    assert_eq!(moved["new"]["kind"], "needs");
    assert_eq!(moved["steps"][0]["step"], "wipe");
    // The other way round, the change only tightens.
    let back: Value =
        serde_json::from_str(&env.ok(&["policy", "diff", path(&new), path(&old), "--json"]))
            .expect("JSON");
    assert_eq!(back["loosens"], false, "{back}");
    assert_eq!(back["tightens"], true);
    // The text form names the rule, the verdict and the plan.
    let text = env.ok(&["policy", "diff", path(&old), path(&new)]);
    for want in [
        "loosens",
        "rules[scratch-rm]",
        "CRITICAL quorum",
        "wipe: CRITICAL → LOW",
    ] {
        assert!(text.contains(want), "`{want}` in:\n{text}");
    }
}

/// `opsgate init` pins the policy in force in the log, with its full text
/// and its allowed signers; `policy show` prints it back, and what it
/// prints loads as a policy with the same hash. A second `init` is refused.
#[test]
fn init_records_the_policy_and_policy_show_prints_it_back() {
    let env = world(
        "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKJ7kCuwhQ1JbY0Z0JmEvXvHgHmJyExE3TdrWUQ7PdAT\n",
    );
    let hash = |args: &[&str]| -> String {
        let v: Value = serde_json::from_str(&env.ok(args)).expect("JSON");
        v["policy_hash"].as_str().expect("a hash").to_owned()
    };
    let in_force = hash(&["policy", "check", "--json"]);
    let out = env.ok(&["init"]);
    assert!(out.contains(&in_force), "{out}");
    let checked: Value =
        serde_json::from_str(&env.ok(&["policy", "check", "--json"])).expect("JSON");
    assert_eq!(checked["is_adopted"], true, "{checked}");
    assert_eq!(checked["adopted_hash"], in_force.as_str());
    let adopted = last(&env, "policy_adopted");
    assert_eq!(adopted["policy_hash"], in_force.as_str());
    assert!(
        adopted["allowed_signers"]
            .as_str()
            .is_some_and(|s| s.starts_with("alice ssh-ed25519")),
        "the signers file's text is recorded: {adopted}"
    );
    let shown: Value = serde_json::from_str(&env.ok(&["policy", "show", "--json"])).expect("JSON");
    assert_eq!(shown["policy_hash"], in_force.as_str());
    assert_eq!(shown["rehashes"], true, "{shown}");
    // The printed policy, with its signers beside it, is the same policy.
    let copy = env.p("copy");
    std::fs::create_dir_all(&copy).expect("dir");
    std::fs::write(copy.join("policy.yaml"), env.ok(&["policy", "show"])).expect("written");
    std::fs::write(
        copy.join("allowed_signers"),
        shown["allowed_signers"].as_str().expect("signers"),
    )
    .expect("written");
    let prefix = &in_force[..20];
    assert!(
        env.ok(&["policy", "show", prefix]).contains(&in_force),
        "a prefix names it"
    );
    let check = Command::new(assert_cmd::cargo::cargo_bin!("opsgate"))
        .env_remove("OPSGATE_CONFIG")
        .arg("--config")
        .arg(copy.join("policy.yaml"))
        .args(["policy", "check", "--json"])
        .output()
        .expect("policy check runs");
    assert!(check.status.success(), "{check:?}");
    let again: Value = serde_json::from_slice(&check.stdout).expect("JSON");
    assert_eq!(
        again["policy_hash"],
        in_force.as_str(),
        "the shown policy loads with the same hash"
    );
    // A second init does not replace the adopted policy.
    let (code, _, err) = env.run(&["init"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already"), "{err}");
    assert_eq!(env.of("policy_adopted", None).len(), 1);
    env.verify();
}

/// Attack: whoever can write the log adopts a policy of their own that
/// lists their key (`--config evil.yaml init`), then signs an approval
/// with it. The signature is genuine under the forged adoption, so
/// `audit verify` must not take the signers from an adoption nobody
/// approved: it checks against the policy the operator loads, and names
/// the approval.
#[test]
fn a_policy_adopted_by_a_log_writer_does_not_vouch_for_their_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bob, bob_pub) = keygen(dir.path(), "bob", "ed25519");
    let (mallory, mallory_pub) = keygen(dir.path(), "mallory", "ed25519");
    let (_, alice_pub) = keygen(dir.path(), "alice", "ed25519");
    let env = world(&format!("alice {alice_pub}\nbob {bob_pub}\n"));
    std::fs::write(
        env.p("evil_signers"),
        format!("alice {alice_pub}\nbob {bob_pub}\nmallory {mallory_pub}\n"),
    )
    .expect("evil signers");
    let evil = env.p("evil.yaml");
    std::fs::write(
        &evil,
        "identity:\n  allowed_signers: evil_signers\napprovals: {separation_of_duties: true}\nsafety: {allow_critical: true}\n",
    )
    .expect("evil policy");
    let as_mallory = |args: &[&str]| {
        let out = common::opsgate_command(&env.log, Some(&evil))
            .args(args)
            .output()
            .expect("opsgate runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let plan = env.plan("plan.yaml", HIGH);
    as_mallory(&["init"]);
    as_mallory(&["submit", path(&plan), "--key", path(&bob)]);
    let submitted = last(&env, "plan_submitted");
    let hash = submitted["plan_hash"].as_str().expect("hash");
    as_mallory(&["approve", "wipe", "--key", path(&mallory), "--hash", hash]);
    assert_eq!(last(&env, "approval_granted")["approver"], "mallory");
    let (code, out, _) = env.run(&["audit", "verify", "--json"]);
    assert_eq!(code, 1, "the forged approval is caught: {out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let bad = v["identities"]["bad"].as_array().expect("bad");
    assert!(
        bad.iter().any(|b| b["message"]
            .as_str()
            .is_some_and(|m| m.contains("approval_granted"))),
        "{v}"
    );
}

// ---------------------------------------------------------------------------
// The policy pinned in the log, changed only with the admins' approvals.

/// The policy of the adoption tests: alice, bob and carol are the policy
/// admins (and signers); the CRITICAL quorum is 2.
const ADMINS: &str = "identity:\n  allowed_signers: allowed_signers\n  policy_admins: [alice, bob, carol]\napprovals: {separation_of_duties: true}\nsafety: {allow_critical: true}\n";

/// The same policy, but the submitter may approve: it loosens.
const LOOSER: &str = "identity:\n  allowed_signers: allowed_signers\n  policy_admins: [alice, bob, carol]\napprovals: {separation_of_duties: false}\nsafety: {allow_critical: true}\n";

/// Runs opsgate on `env`'s log under the policy file `policy`.
fn under(env: &Env, policy: &Path, args: &[&str]) -> (i32, String, String) {
    common::outcome(common::opsgate_command(&env.log, Some(policy)).args(args))
}

fn policy_hash(env: &Env, policy: &Path) -> String {
    let (code, out, err) = under(env, policy, &["policy", "check", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    v["policy_hash"].as_str().expect("a hash").to_owned()
}

/// Keys for alice, bob, carol and mallory; the allowed signers list all
/// four (mallory may sign, but is no policy admin).
fn admins_world() -> (Env, [PathBuf; 4]) {
    let env = Env::new(Some(ADMINS));
    let keys = env.p("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let mut lines = String::new();
    let made = ["alice", "bob", "carol", "mallory"].map(|n| {
        let (key, public) = keygen(&keys, n, "ed25519");
        lines.push_str(&format!("{n} {public}\n"));
        key
    });
    std::fs::write(env.p("allowed_signers"), lines).expect("signers");
    std::fs::create_dir_all(env.p("victim")).expect("victim");
    (env, made)
}

#[test]
fn a_policy_is_adopted_only_with_the_quorum_of_its_admins() {
    let (env, [alice, bob, carol, mallory]) = admins_world();
    let p0 = env.policy.clone().expect("policy");
    let p1 = env.p("looser.yaml");
    std::fs::write(&p1, LOOSER).expect("looser");
    let (h0, h1) = (policy_hash(&env, &p0), policy_hash(&env, &p1));
    env.ok(&["init"]);
    let plan = env.plan("plan.yaml", HIGH);

    // Under a policy the log did not adopt, nothing is decided or run,
    // and the refusal names both policies and how to adopt it.
    let (code, _, err) = under(&env, &p1, &["submit", path(&plan)]);
    assert_eq!(code, 3, "{err}");
    for want in [h0.as_str(), h1.as_str(), "policy adopt", "looser.yaml"] {
        assert!(err.contains(want), "`{want}` in: {err}");
    }
    assert!(env.of("plan_submitted", None).is_empty());
    let (code, _, err) = under(&env, &p1, &["run", "wipe", "--dry-run"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is not the one this audit log adopted"),
        "{err}"
    );
    // Read-only commands work under any policy.
    let (code, _, err) = under(&env, &p1, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");

    // carol proposes it: it loosens, so two admins other than carol.
    let out = env.ok(&[
        "policy",
        "adopt",
        path(&p1),
        "--key",
        path(&carol),
        "--json",
    ]);
    let proposed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(proposed["loosens"], true, "{proposed}");
    assert_eq!(proposed["needs"], 2, "{proposed}");
    assert_eq!(proposed["proposed_by"], "carol");
    assert!(
        proposed["changes"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["key"] == "approvals.separation_of_duties" && c["effect"] == "loosens")),
        "{proposed}"
    );
    let short = &h1["sha256:".len().."sha256:".len() + 12];
    env.refused(
        &["policy", "approve", short, "--key", path(&carol)],
        "proposed this policy",
    );
    env.refused(
        &["policy", "approve", short, "--key", path(&mallory)],
        "not a policy admin",
    );
    env.refused(&["policy", "approve", short], "must be signed");
    let one: Value = serde_json::from_str(&env.ok(&[
        "policy",
        "approve",
        short,
        "--key",
        path(&alice),
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(
        (one["adopted"].clone(), one["needs"].clone()),
        (Value::Bool(false), 2.into())
    );
    // One admin is not enough: still refused under the looser policy.
    let (code, _, err) = under(&env, &p1, &["submit", path(&plan)]);
    assert_eq!(code, 3, "{err}");
    env.refused(
        &["policy", "approve", short, "--key", path(&alice)],
        "already approved",
    );
    let two: Value =
        serde_json::from_str(&env.ok(&["policy", "approve", short, "--key", path(&bob), "--json"]))
            .expect("JSON");
    assert_eq!(two["adopted"], true, "{two}");
    assert_eq!(last(&env, "policy_adopted")["policy_hash"], h1.as_str());

    // Now the looser policy is in force, and the old one is refused.
    let (code, _, err) = under(&env, &p1, &["submit", path(&plan), "--key", path(&carol)]);
    assert_eq!(code, 0, "{err}");
    env.refused(
        &["submit", path(&plan)],
        "is not the one this audit log adopted",
    );
    // `policy show` prints the policy in force, and `policy diff` takes
    // recorded hashes.
    let shown: Value = serde_json::from_str(&env.ok(&["policy", "show", "--json"])).expect("JSON");
    assert_eq!(shown["policy_hash"], h1.as_str());
    let d: Value = serde_json::from_str(&env.ok(&[
        "policy",
        "diff",
        &h0["sha256:".len().."sha256:".len() + 10],
        short,
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(d["loosens"], true, "{d}");

    // The auditor who loads either policy accepts the chain of adoptions.
    for p in [&p0, &p1] {
        let (code, out, err) = under(&env, p, &["audit", "verify", "--json"]);
        assert_eq!(code, 0, "{out} {err}");
        let v: Value = serde_json::from_str(&out).expect("JSON");
        assert!(v["identities"]["anchor"].is_u64(), "{v}");
        assert_eq!(v["identities"]["bad"], serde_json::json!([]), "{v}");
    }

    // A change that only tightens needs one admin.
    let p2 = env.p("tighter.yaml");
    std::fs::write(
        &p2,
        format!("{LOOSER}execution: {{require_dry_run: true}}\n"),
    )
    .expect("tighter");
    let out = env.ok(&[
        "policy",
        "adopt",
        path(&p2),
        "--key",
        path(&alice),
        "--json",
    ]);
    let proposed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (proposed["loosens"].clone(), proposed["needs"].clone()),
        (Value::Bool(false), 1.into())
    );
    let h2 = policy_hash(&env, &p2);
    let done: Value = serde_json::from_str(
        &under(
            &env,
            &p1,
            &["policy", "approve", &h2, "--key", path(&carol), "--json"],
        )
        .1,
    )
    .expect("JSON");
    assert_eq!(done["adopted"], true, "{done}");
}

#[test]
fn a_forged_adoption_does_not_change_the_policy_in_force() {
    use opsgate::audit::{AuditLog, Sealer};
    use opsgate::core::event::Event;
    use opsgate::core::policy::LoadedPolicy;
    let (env, _) = admins_world();
    env.ok(&["init"]);
    // mallory, who can write the log, appends a well-chained adoption of a
    // policy that lets anyone approve anything.
    let evil = env.p("evil.yaml");
    let evil_text = "approvals: {required: {LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 0}}\nsafety: {allow_critical: true, require_approval: false}\n";
    std::fs::write(&evil, evil_text).expect("evil");
    let loaded = LoadedPolicy::load(Some((path(&evil), evil_text))).expect("evil loads");
    let log = AuditLog::open(&env.log, Sealer::Sha256, Default::default()).expect("log");
    log.append(Event::PolicyAdopted {
        policy_hash: loaded.hash.clone(),
        source: path(&evil).to_owned(),
        policy: loaded.adoption_form().expect("form"),
        allowed_signers: None,
        adopted_by: "mallory".into(),
        identity: None,
    })
    .expect("appended");
    drop(log);
    let forged_seq = last(&env, "policy_adopted")["seq"].clone();

    // Under the forged policy nothing runs: the policy in force is still
    // the one the log adopted first.
    let plan = env.plan("plan.yaml", HIGH);
    let (code, _, err) = under(&env, &evil, &["submit", path(&plan)]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is not the one this audit log adopted"),
        "{err}"
    );
    env.ok(&["submit", path(&plan)]);
    // The auditor is told which record it is.
    let (code, out, _) = env.run(&["audit", "verify", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        v["identities"]["bad"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| {
                b["seq"] == forged_seq
                    && b["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("never proposed"))
            })),
        "{v}"
    );
}

#[test]
fn a_key_removed_by_an_adopted_policy_stops_counting_but_old_records_still_verify() {
    let (env, [alice, bob, carol, _]) = admins_world();
    let p0 = env.policy.clone().expect("policy");
    env.ok(&["init"]);
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&alice)]);
    env.ok(&["approve", "wipe", "--key", path(&bob)]);
    // A new policy without bob (signer and admin): it only tightens.
    let signers = std::fs::read_to_string(env.p("allowed_signers")).expect("signers");
    let without_bob: String = signers
        .lines()
        .filter(|l| !l.starts_with("bob "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(env.p("signers_1"), without_bob).expect("signers 1");
    let p1 = env.p("without-bob.yaml");
    std::fs::write(
        &p1,
        ADMINS
            .replace(
                "allowed_signers: allowed_signers",
                "allowed_signers: signers_1",
            )
            .replace("[alice, bob, carol]", "[alice, carol]"),
    )
    .expect("p1");
    let out = env.ok(&[
        "policy",
        "adopt",
        path(&p1),
        "--key",
        path(&alice),
        "--json",
    ]);
    let proposed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(proposed["needs"], 1, "{proposed}");
    let h1 = policy_hash(&env, &p1);
    env.ok(&["policy", "approve", &h1, "--key", path(&carol)]);

    // bob's key no longer counts for a new decision.
    let again = env.plan("again.yaml", &HIGH.replace("id: wipe", "id: wipe-again"));
    let (code, _, err) = under(&env, &p1, &["submit", path(&again), "--key", path(&alice)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = under(&env, &p1, &["approve", "wipe-again", "--key", path(&bob)]);
    assert_ne!(code, 0, "bob's removed key approved: {err}");
    // His old approval still verifies, against the signers of its time,
    // for an auditor who loads the new policy as for one who loads the old.
    for p in [&p1, &p0] {
        let (code, out, err) = under(&env, p, &["audit", "verify", "--json"]);
        assert_eq!(code, 0, "{out} {err}");
        let v: Value = serde_json::from_str(&out).expect("JSON");
        assert!(
            v["identities"]["signed"].as_u64().is_some_and(|n| n >= 3),
            "{v}"
        );
    }
}

#[test]
fn the_user_config_names_the_signing_key() {
    let (env, [alice, bob, _, _]) = admins_world();
    let plan = env.plan("plan.yaml", HIGH);
    env.ok(&["submit", path(&plan), "--key", path(&alice)]);
    // bob's key, named once in his user config, as git's user.signingKey.
    let config = env.p("state/config/opsgate");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("user.yaml"),
        format!("# bob's settings\nsigning_key: {}\n", path(&bob)),
    )
    .expect("user config");
    env.ok(&["approve", "wipe"]);
    let granted = last(&env, "approval_granted");
    assert_eq!(granted["approver"], "bob", "{granted}");
    assert_eq!(granted["identity"]["kind"], "ssh", "{granted}");
    // A mistake in it is named by file, line and column; nothing recorded.
    std::fs::write(
        config.join("user.yaml"),
        "signing_key: x\nsigning_keys: y\n",
    )
    .expect("bad user config");
    let before = env.records().len();
    let (code, _, err) = env.run(&["approve", "wipe"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("user.yaml:2:1"), "{err}");
    assert!(err.contains("signing_keys"), "{err}");
    assert_eq!(env.records().len(), before);
}

#[test]
fn an_unsigned_proposal_cannot_be_approved_or_adopted() {
    use opsgate::audit::{AuditLog, Sealer};
    use opsgate::core::event::Event;
    use opsgate::core::policy::LoadedPolicy;
    let (env, [alice, bob, _, _]) = admins_world();
    let p1 = env.p("looser.yaml");
    std::fs::write(&p1, LOOSER).expect("looser");
    env.ok(&["init"]);
    // Proposing without a key: the proposer would be an unproven name
    // (a shared OS account), and could then approve their own change.
    let (code, _, err) = env.run(&["policy", "adopt", path(&p1)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("must be signed"), "{err}");
    // alice, who can write the log, appends the proposal by hand under
    // another name, then approves it with bob.
    let text = std::fs::read_to_string(&p1).expect("p1");
    let signers = std::fs::read_to_string(env.p("allowed_signers")).expect("signers");
    let new = LoadedPolicy::load(Some((path(&p1), &text)))
        .expect("loads")
        .with_signers_file("allowed_signers", &signers)
        .expect("signers");
    let base = last(&env, "policy_adopted")["policy_hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    let log = AuditLog::open(&env.log, Sealer::Sha256, Default::default()).expect("log");
    log.append(Event::PolicyProposed {
        policy_hash: new.hash.clone(),
        base_hash: opsgate::core::digest::PolicyHash::new(base),
        source: path(&p1).to_owned(),
        policy: new.adoption_form().expect("form"),
        allowed_signers: Some(signers),
        proposed_by: "somebody".into(),
        identity: None,
        loosens: true,
        needs: 2,
    })
    .expect("appended");
    drop(log);
    let short = &new.hash.as_str()["sha256:".len().."sha256:".len() + 12];
    env.refused(
        &["policy", "approve", short, "--key", path(&alice)],
        "is not signed",
    );
    env.refused(
        &["policy", "approve", short, "--key", path(&bob)],
        "is not signed",
    );
    assert!(env.of("policy_approved", None).is_empty());
    let (code, _, err) = under(&env, &p1, &["submit", path(&env.plan("p.yaml", HIGH))]);
    assert_eq!(code, 3, "not adopted: {err}");
}
