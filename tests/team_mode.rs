//! Team mode end to end: several "hosts" (each its own state directory,
//! so its own replica, marks and run locks) run the real binary against
//! one PostgreSQL store (Debian's postgresql, `scripts/test-env-pg.sh`).
//! Every command works on the store, and no host can decide on a log the
//! store does not hold.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::backends::{PgServer, fresh_db, pg_url, unique};
use common::env::path;
use serde_json::Value;

/// One host: its own state and config directories, the store in
/// `OPSGATE_STORE`, the tests' trust-as policy.
struct Host {
    dir: PathBuf,
    url: String,
    /// The policy file its commands load (none: the default policy).
    policy: Option<PathBuf>,
}

impl Host {
    fn new(url: &str) -> Host {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("team")
            .join(unique("host"));
        std::fs::create_dir_all(&dir).expect("host dir");
        Host {
            dir,
            url: url.to_owned(),
            policy: None,
        }
    }

    /// A host whose commands load the policy file `policy`.
    fn under(url: &str, policy: &std::path::Path) -> Host {
        Host {
            policy: Some(policy.to_owned()),
            ..Host::new(url)
        }
    }

    fn command(&self) -> Command {
        let mut cmd = common::opsgate_store_command(
            &self.dir.join("state"),
            &self.url,
            self.policy.as_deref(),
        );
        cmd.env("OPSGATE_RUN_LEASE_SECS", "2");
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        common::outcome(self.command().args(common::with_keys(args)))
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    }

    /// This host's replica of the store.
    fn replica(&self) -> PathBuf {
        let dir = self.dir.join("state/opsgate/stores");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("the replica's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        assert_eq!(files.len(), 1, "one replica in {}", dir.display());
        files.pop().expect("a replica")
    }

    /// A plan file in this host's directory.
    fn plan(&self, id: &str, steps: &str) -> PathBuf {
        let file = self.dir.join(format!("{id}.yaml"));
        std::fs::write(
            &file,
            format!("id: {id}\ntitle: {id}\nsteps:\n{steps}").replace("@D@", path(&self.dir)),
        )
        .expect("plan written");
        file
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The store's records, exported by `host`.
fn exported(host: &Host) -> Vec<u8> {
    let out = host.dir.join(format!("{}.jsonl", unique("export")));
    host.ok(&["store", "export", "-o", path(&out)]);
    std::fs::read(&out).expect("the export")
}

fn types(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| json(l)["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Submitted on one host, approved on another, run on a third, seen
/// everywhere: the hosts share one chain in the store, and each host's
/// replica is byte for byte the store's export, which verifies offline.
#[test]
fn hosts_decide_and_run_on_one_log_in_the_store() {
    let Some(url) = fresh_db() else { return };
    let (a, b, c) = (Host::new(&url), Host::new(&url), Host::new(&url));
    a.ok(&["store", "init"]);
    let plan = a.plan(
        "shared",
        "  - {name: touch, run: 'touch @D@/ran', rollback: {run: 'rm -f @D@/ran'}}\n",
    );
    let submitted = json(&a.ok(&["submit", path(&plan), "--as", "alice", "--json"]));
    let hash = submitted["plan_hash"].as_str().expect("a plan hash");
    // Host B sees the submission at once, and approves it.
    let status = json(&b.ok(&["status", "shared", "--json"]));
    assert_eq!(status["status"], "pending", "{status}");
    b.ok(&["approve", "shared", "--as", "bob", "--hash", hash]);
    // Host C, which never saw the store, runs it.
    c.ok(&["run", "shared", "--as", "carol"]);
    assert!(
        a.dir.join("ran").exists(),
        "the step ran (the plan names host A's directory)"
    );
    let seen_on_a = json(&a.ok(&["status", "shared", "--json"]));
    assert_eq!(seen_on_a["status"], "succeeded", "{seen_on_a}");
    // One chain, every host's replica the same bytes as the store's.
    let export = exported(&b);
    let kinds = types(&export);
    for kind in [
        "policy_adopted",
        "plan_submitted",
        "approval_granted",
        "run_started",
        "run_finished",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    for host in [&a, &b, &c] {
        host.ok(&["status"]);
        assert_eq!(
            std::fs::read(host.replica()).expect("replica"),
            export,
            "{} holds the store's records",
            host.dir.display()
        );
    }
    let file = a.dir.join("offline.jsonl");
    std::fs::write(&file, &export).expect("export written");
    let (code, out, err) =
        common::outcome(common::opsgate_command(&file, None).args(["audit", "verify", "--json"]));
    assert_eq!(code, 0, "the export verifies as a file: {out} {err}");
    assert_eq!(json(&out)["ok"], true, "{out}");
    // The store is the one log: a file log named too is an error, not a fork.
    let (code, _, err) = a.run(&["--audit-log", path(&file), "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give one"), "{err}");
}

/// The attack: someone with the host's account rewrites its replica into
/// a well-chained log where the plan was approved, not rejected, and
/// removes the host's high-water marks. The
/// replica is checked against the store at its last record before anything
/// is decided on it, found to differ, and rebuilt: the run is refused as
/// the store says, and nothing runs.
#[test]
fn a_replica_rewritten_on_a_host_is_not_decided_on() {
    let Some(url) = fresh_db() else { return };
    let (a, b) = (Host::new(&url), Host::new(&url));
    a.ok(&["store", "init"]);
    let plan = a.plan(
        "guarded",
        "  - {name: touch, run: 'touch @D@/ran', rollback: {run: 'rm -f @D@/ran'}}\n",
    );
    a.ok(&["submit", path(&plan), "--as", "alice"]);
    b.ok(&["reject", "guarded", "--as", "bob", "--reason", "not today"]);
    let store_before = exported(&a);
    // A log of the same length where bob approved: made as a file log by
    // the same binary, so every hash is right.
    let forged = a.dir.join("forged.jsonl");
    let forge = |args: &[&str]| {
        let (code, out, err) =
            common::outcome(common::opsgate_command(&forged, None).args(common::with_keys(args)));
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    };
    let submitted = json(&forge(&["submit", path(&plan), "--as", "alice", "--json"]));
    let hash = submitted["plan_hash"].as_str().expect("hash").to_owned();
    forge(&["approve", "guarded", "--as", "bob", "--hash", &hash]);
    assert_eq!(
        types(&std::fs::read(&forged).expect("forged")).len(),
        types(&store_before).len(),
        "the forged log ends at the store's seq"
    );
    std::fs::copy(&forged, a.replica()).expect("the replica replaced");
    // And removes the host's marks, which would otherwise catch it.
    std::fs::remove_dir_all(a.dir.join("state/opsgate/heads")).expect("marks removed");
    let (code, out, err) = a.run(&["run", "guarded", "--as", "alice"]);
    assert_eq!(code, 3, "the run is refused: {out} {err}");
    assert!(err.contains("reject"), "refused as rejected: {err}");
    assert!(!a.dir.join("ran").exists(), "nothing ran");
    let after = exported(&a);
    assert!(
        !types(&after).iter().any(|k| k == "run_started"),
        "no run in the store"
    );
    assert_eq!(
        std::fs::read(a.replica()).expect("replica"),
        after,
        "the replica was rebuilt from the store"
    );
}

/// On a new store: plan `id` (whose first step touches `started` in A's
/// directory) submitted by alice on host A, approved by bob on host B, and
/// run by alice on A in the background; returns A's engine once its first
/// step ran.
fn run_in_background(a: &Host, b: &Host, id: &str, steps: &str) -> std::process::Child {
    a.ok(&["store", "init"]);
    let plan = a.plan(id, steps);
    let submitted = json(&a.ok(&["submit", path(&plan), "--as", "alice", "--json"]));
    let hash = submitted["plan_hash"].as_str().expect("hash").to_owned();
    b.ok(&["approve", id, "--as", "bob", "--hash", &hash]);
    let engine = a
        .command()
        .args(["run", id, "--as", "alice"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the run starts");
    assert!(
        common::env::appears_within(&a.dir.join("started"), Duration::from_secs(30)),
        "host A's engine started"
    );
    engine
}

/// Two hosts race for one approved plan: while host A's engine runs it,
/// host B can neither run nor resume it (the run's lease in the store);
/// once A's engine is killed with SIGKILL, its lease lapses and every host
/// sees the run interrupted.
#[test]
fn one_run_per_plan_across_hosts_and_a_killed_holder_shows_interrupted() {
    let Some(url) = fresh_db() else { return };
    let (a, b) = (Host::new(&url), Host::new(&url));
    let mut engine = run_in_background(
        &a,
        &b,
        "long",
        "  - {name: start, run: 'touch @D@/started', rollback: {run: 'true'}}\n  - {name: wait, run: 'sleep 60', rollback: {run: 'true'}}\n",
    );
    let on_b = json(&b.ok(&["status", "long", "--json"]));
    assert_eq!(on_b["status"], "running", "B sees A's run live: {on_b}");
    let (code, out, err) = b.run(&["run", "long", "--as", "bob", "--resume"]);
    assert_eq!(code, 3, "B may not resume a run A holds: {out} {err}");
    let (code, out, err) = b.run(&["run", "long", "--as", "bob"]);
    assert_eq!(code, 3, "nor start another: {out} {err}");
    engine.kill().expect("SIGKILL");
    let _ = engine.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = json(&b.ok(&["status", "long", "--json"]));
        if s["status"] != "running" || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "interrupted", "{status}");
    let runs = types(&exported(&b))
        .into_iter()
        .filter(|k| k == "run_started")
        .count();
    assert_eq!(runs, 1, "one run only");
}

/// With the database down, decisions and runs are refused and nothing is
/// recorded anywhere (the replica included), and a bridge's `/readyz`
/// answers 503; once it is back, the bridge is ready again and the same
/// command goes through.
#[test]
fn a_store_that_is_down_refuses_decisions_and_loses_nothing() {
    if pg_url().is_none() {
        return;
    }
    let server = PgServer::start();
    // The host and the bridge under one policy: a bridge under another
    // than the log adopted is not ready for that reason.
    let (_policy_dir, policy) = bridge_policy();
    let a = Host::under(&server.url, &policy);
    a.ok(&["store", "init"]);
    let plan = a.plan(
        "later",
        "  - {name: touch, run: 'touch @D@/ran', rollback: {run: 'true'}}\n",
    );
    a.ok(&["submit", path(&plan), "--as", "alice"]);
    let bridge = Host::new(&server.url).serve(&policy);
    let ready = |want: u16| {
        let r = common::http::http(bridge.addr, "GET", "/readyz", &[], b"").expect("answered");
        assert_eq!(r.status, want, "/readyz: {}", r.text());
        r
    };
    ready(200);
    let replica = std::fs::read(a.replica()).expect("replica");
    server.control("crash");
    assert_eq!(ready(503).code(), "store_unavailable");
    let (code, out, err) = a.run(&["approve", "later", "--as", "bob", "--hash", "sha256:00"]);
    assert_ne!(code, 0, "refused: {out} {err}");
    assert!(err.contains("store") || err.contains("connect"), "{err}");
    assert_eq!(
        std::fs::read(a.replica()).expect("replica"),
        replica,
        "nothing written on the host"
    );
    server.control("start");
    ready(200);
    let submitted = json(&a.ok(&["submit", path(&plan), "--as", "alice", "--json"]));
    let hash = submitted["plan_hash"].as_str().expect("hash").to_owned();
    a.ok(&["approve", "later", "--as", "bob", "--hash", &hash]);
    let kinds = types(&exported(&a));
    assert_eq!(
        kinds.iter().filter(|k| *k == "approval_granted").count(),
        1,
        "{kinds:?}"
    );
}

/// A stop asked for on another host reaches the engine: host B's `cancel
/// --kill` is a record in the store, which host A's running engine reads
/// through its replica (followed over LISTEN) and kills the step.
#[test]
fn a_stop_from_another_host_reaches_the_engine() {
    let Some(url) = fresh_db() else { return };
    let (a, b) = (Host::new(&url), Host::new(&url));
    let mut engine = run_in_background(
        &a,
        &b,
        "stoppable",
        "  - {name: start, run: 'touch @D@/started', rollback: {run: 'true'}}\n  - {name: wait, run: 'sleep 60', rollback: {run: 'true'}}\n  - {name: after, run: 'touch @D@/after', rollback: {run: 'true'}}\n",
    );
    // Into the sleep.
    std::thread::sleep(Duration::from_millis(500));
    let status = json(&b.ok(&["status", "stoppable", "--json"]));
    let run_id = status["runs"][0]["run_id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    b.ok(&["cancel", &run_id, "--as", "bob", "--kill"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = engine.try_wait().expect("wait") {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the engine did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!code.success(), "the run did not succeed: {code:?}");
    assert!(!a.dir.join("after").exists(), "no step after the stop");
    let kinds = types(&exported(&b));
    assert!(kinds.iter().any(|k| k == "run_cancelled"), "{kinds:?}");
    let stopped = json(&b.ok(&["status", "stoppable", "--json"]));
    assert_eq!(stopped["runs"][0]["status"], "cancelled", "{stopped}");
}

/// A running `opsgate serve` on a host, killed on drop.
struct Serve {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    /// `opsgate serve --listen 127.0.0.1:0` under `policy`, once it listens.
    fn serve(&self, policy: &std::path::Path) -> Serve {
        use std::io::BufRead;
        let mut child =
            common::opsgate_store_command(&self.dir.join("state"), &self.url, Some(policy))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("opsgate serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no `listening on ADDR`: {line:?}"));
        Serve { child, addr }
    }
}

const BRIDGE_TOKEN: &str = "tok-team-5d0c";

/// A policy file in a temp dir (so the tests' trust-as part is laid over
/// it) with the `teambot` bridge client.
fn bridge_policy() -> (tempfile::TempDir, PathBuf) {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "bridge:\n  rate_limit: {{per_sender: 100000/min, per_client: 1000000/min}}\n  clients:\n    - name: teambot\n      token_sha256: \"{}\"\n      senders: {{U1: alice, U2: carol}}\n",
            hex::encode(sha2::Sha256::digest(BRIDGE_TOKEN.as_bytes()))
        ),
    )
    .expect("policy written");
    (dir, policy)
}

/// A `yes` from sender U1 through the bridge at `addr`: status and body.
fn decide(addr: std::net::SocketAddr, id: &str, hash: &str) -> (u16, Value) {
    let body = serde_json::json!({"decision": "yes", "plan_hash": hash, "sender_id": "U1"});
    let r = common::http::http(
        addr,
        "POST",
        &format!("/v1/plans/{id}/decision"),
        &[("Authorization", format!("Bearer {BRIDGE_TOKEN}"))],
        body.to_string().as_bytes(),
    )
    .expect("answered");
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Three bridge replicas on three hosts share one store; 32 deciders post
/// at once, spread over them. Every answered decision is recorded once, the
/// chain is one line without a gap, the export verifies, and a decision
/// made through one replica shows in the others' views.
#[test]
fn three_bridge_replicas_and_thirty_two_deciders_make_one_chain() {
    let Some(url) = fresh_db() else { return };
    let (policy_dir, policy) = bridge_policy();
    let hosts: Vec<Host> = (0..3).map(|_| Host::new(&url)).collect();
    let submitter = &hosts[0];
    let run = |args: &[&str]| {
        let (code, out, err) = common::outcome(
            common::opsgate_store_command(&submitter.dir.join("state"), &url, Some(&policy))
                .args(common::with_keys(args)),
        );
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    };
    run(&["store", "init"]);
    let plans: Vec<(String, String)> = (0..32)
        .map(|i| {
            let id = format!("team-{i:02}");
            let file = submitter.plan(
                &id,
                &format!("  - {{name: t, run: 'touch @D@/{id}', rollback: {{run: 'true'}}}}\n"),
            );
            let v = json(&run(&["submit", path(&file), "--as", "bob", "--json"]));
            (id, v["plan_hash"].as_str().expect("hash").to_owned())
        })
        .collect();
    let replicas: Vec<Serve> = hosts.iter().map(|h| h.serve(&policy)).collect();
    let addrs: Vec<std::net::SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let (batch, last) = plans.split_at(plans.len() - 1);
    let start = std::sync::Arc::new(std::sync::Barrier::new(batch.len()));
    let answers: Vec<(String, u16, Value)> = std::thread::scope(|s| {
        let threads: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, (id, hash))| {
                let (start, addr) = (std::sync::Arc::clone(&start), addrs[i % 3]);
                s.spawn(move || {
                    start.wait();
                    let (status, v) = decide(addr, id, hash);
                    (id.clone(), status, v)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("decider"))
            .collect()
    });
    for (id, status, v) in &answers {
        assert_eq!(*status, 200, "{id}: {v}");
        assert_eq!(v["status"], "approved", "{id}: {v}");
    }
    // One more decision, through replica 0, shows in replicas 1 and 2
    // within a second.
    let (last, hash) = &last[0];
    let (status, v) = decide(addrs[0], last, hash);
    assert_eq!(status, 200, "{v}");
    let decided = std::time::Instant::now();
    for addr in &addrs[1..] {
        let deadline = decided + Duration::from_secs(1);
        loop {
            let r = common::http::http(
                *addr,
                "GET",
                &format!("/v1/plans/{last}"),
                &[("Authorization", format!("Bearer {BRIDGE_TOKEN}"))],
                b"",
            )
            .expect("answered");
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if v["state"]["status"] == "approved" {
                assert_eq!(v["state"]["plan_hash"], hash.as_str(), "{v}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{addr} does not show {last} approved within a second: {v}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(replicas);
    let export = exported(submitter);
    let records: Vec<Value> = String::from_utf8_lossy(&export).lines().map(json).collect();
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=records.len() as u64).collect::<Vec<_>>(),
        "one chain, no gap"
    );
    for (id, _) in &plans {
        let granted = records
            .iter()
            .filter(|r| r["type"] == "approval_granted" && r["plan_id"] == id.as_str())
            .count();
        assert_eq!(granted, 1, "{id} approved once");
    }
    let file = policy_dir.path().join("export.jsonl");
    std::fs::write(&file, &export).expect("written");
    let (code, out, err) =
        common::outcome(common::opsgate_command(&file, None).args(["audit", "verify"]));
    assert_eq!(code, 0, "the export verifies: {out} {err}");
}

/// The TUI attached to the store (tmux, a real terminal) on one host shows
/// a decision made through a bridge replica on another host within a
/// second of the bridge's answer: its replica follows the store over
/// LISTEN.
#[test]
fn a_decision_through_a_bridge_replica_shows_in_the_tui_within_a_second() {
    use common::tmux::{Tmux, shell_quote};
    let Some(url) = fresh_db() else { return };
    let (_policy_dir, policy) = bridge_policy();
    let (screen_host, bridge_host) = (Host::new(&url), Host::new(&url));
    let run = |args: &[&str]| {
        let (code, out, err) = common::outcome(
            common::opsgate_store_command(&bridge_host.dir.join("state"), &url, Some(&policy))
                .args(common::with_keys(args)),
        );
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    };
    run(&["store", "init"]);
    let plan = bridge_host.plan(
        "watched",
        "  - {name: t, run: 'touch @D@/watched', rollback: {run: 'true'}}\n",
    );
    let v = json(&run(&["submit", path(&plan), "--as", "bob", "--json"]));
    let hash = v["plan_hash"].as_str().expect("hash").to_owned();
    let bridge = bridge_host.serve(&policy);
    let bin = assert_cmd::cargo::cargo_bin!("opsgate");
    let state = screen_host.dir.join("state");
    let q = |p: &std::path::Path| shell_quote(&p.display().to_string());
    let tui = Tmux::run(
        &unique("opsgate-team-tui"),
        &format!(
            "cd {} && env -u OPSGATE_AUDIT_KEY -u OPSGATE_SIGNING_KEY -u OPSGATE_AUDIT_LOG NO_COLOR=1 USER=os-user OPSGATE_CONFIG={} XDG_STATE_HOME={} XDG_CONFIG_HOME={} OPSGATE_STORE={} {} tui",
            q(&common::repo()),
            q(&policy),
            q(&state),
            q(&state.join("config")),
            shell_quote(&url),
            q(bin),
        ),
    );
    let screen = tui.wait_for("watched");
    assert!(screen.contains("pending"), "{screen}");
    let (status, v) = decide(bridge.addr, "watched", &hash);
    assert_eq!(status, 200, "{v}");
    let (screen, took) = tui
        .wait_within("approved", Duration::from_secs(1))
        .unwrap_or_else(|screen| {
            panic!("the TUI did not show the approval within a second:\n{screen}")
        });
    assert!(screen.contains("1/1"), "{screen}");
    eprintln!("the TUI showed the bridge's decision after {took:?}");
    tui.keys(&["q"]);
    tui.wait_for("TUI-EXITED 0");
}

/// The role and grants that docs/team-mode.md gives opsgate, taken from
/// the document as written: enough to submit, approve and run across
/// hosts, and not enough to rewrite history (no UPDATE on the audit table,
/// no dropping its trigger).
#[test]
fn the_documented_grants_run_a_plan_and_cannot_rewrite_history() {
    let Some(url) = fresh_db() else { return };
    let owner = Host::new(&url);
    owner.ok(&["store", "init"]);
    let doc = std::fs::read_to_string(common::repo().join("docs/team-mode.md")).expect("the doc");
    let block = doc
        .split("```sql\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("CREATE ROLE opsgate LOGIN;"))
        .expect("the grants in docs/team-mode.md");
    let role = unique("opsgate_app").replace('-', "_");
    let sql = block
        .replace("CREATE ROLE opsgate ", &format!("CREATE ROLE {role} "))
        .replace(" TO opsgate;", &format!(" TO {role};"));
    let admin = opsgate::store::pg::Pg::connect(&url).expect("owner connects");
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        admin
            .execute_raw(statement)
            .unwrap_or_else(|e| panic!("the documented grants apply: {e}"));
    }
    let app_url = url.replacen("postgres@", &format!("{role}@"), 1);
    let (a, b) = (Host::new(&app_url), Host::new(&app_url));
    let plan = a.plan(
        "granted",
        "  - {name: t, run: 'touch @D@/granted', rollback: {run: 'true'}}\n",
    );
    let v = json(&a.ok(&["submit", path(&plan), "--as", "alice", "--json"]));
    let hash = v["plan_hash"].as_str().expect("hash").to_owned();
    b.ok(&["approve", "granted", "--as", "bob", "--hash", &hash]);
    a.ok(&["run", "granted", "--as", "alice"]);
    assert!(a.dir.join("granted").exists(), "the step ran");
    let app = opsgate::store::pg::Pg::connect(&app_url).expect("the role connects");
    for forbidden in [
        "UPDATE opsgate_audit SET record = record",
        "DROP TRIGGER opsgate_audit_append_only ON opsgate_audit",
        "ALTER TABLE opsgate_audit DISABLE TRIGGER ALL",
        "UPDATE opsgate_schema SET version = version",
    ] {
        let e = app.execute_raw(forbidden).expect_err(forbidden);
        assert!(
            e.to_string().contains("permission denied")
                || e.to_string().contains("must be owner")
                || e.to_string().contains("append-only"),
            "{forbidden}: {e}"
        );
    }
}

/// The attack on leases: an engine frozen (SIGSTOP, a laptop lid) longer
/// than its lease looks interrupted, so another host resumes the plan.
/// When the frozen engine wakes it must not go on: it records nothing more
/// and starts no further step, and the step after the freeze runs once.
#[test]
fn an_engine_that_wakes_after_losing_its_lease_starts_nothing_more() {
    let Some(url) = fresh_db() else { return };
    let (a, b) = (Host::new(&url), Host::new(&url));
    let mut engine = run_in_background(
        &a,
        &b,
        "frozen",
        "  - {name: start, run: 'touch @D@/started', rollback: {run: 'true'}}\n  - {name: wait, run: 'sleep 4', rollback: {run: 'true'}}\n  - {name: last, run: 'echo ran >> @D@/last', rollback: {run: 'true'}}\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    let pid = engine.id().to_string();
    assert!(common::env::kill("-STOP", &pid), "SIGSTOP");
    // The lease (2 s here) lapses; B sees the run interrupted and resumes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = json(&b.ok(&["status", "frozen", "--json"]));
        if s["status"] == "interrupted" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    b.ok(&["run", "frozen", "--as", "bob", "--resume"]);
    assert!(common::env::kill("-CONT", &pid), "SIGCONT");
    let code = engine.wait().expect("the engine ends");
    assert!(!code.success(), "the woken engine failed: {code:?}");
    let ran = std::fs::read_to_string(a.dir.join("last")).expect("the last step ran");
    assert_eq!(ran.lines().count(), 1, "the last step ran once: {ran:?}");
    let export = exported(&b);
    let file = b.dir.join("after.jsonl");
    std::fs::write(&file, &export).expect("written");
    let (code, out, err) =
        common::outcome(common::opsgate_command(&file, None).args(["audit", "verify"]));
    assert_eq!(code, 0, "the log verifies: {out} {err}");
}

/// A run in progress when the store goes down stops before a step whose
/// record cannot be made durable: the step after the outage never starts,
/// and once the store is back the run shows as interrupted.
#[test]
fn a_run_stops_before_a_step_the_store_cannot_record() {
    if pg_url().is_none() {
        return;
    }
    let server = PgServer::start();
    let (a, b) = (Host::new(&server.url), Host::new(&server.url));
    let mut engine = run_in_background(
        &a,
        &b,
        "outage",
        "  - {name: start, run: 'touch @D@/started', rollback: {run: 'true'}}\n  - {name: wait, run: 'sleep 2', rollback: {run: 'true'}}\n  - {name: after, run: 'touch @D@/after', rollback: {run: 'true'}}\n",
    );
    server.control("crash");
    let code = engine.wait().expect("the engine ends");
    assert!(!code.success(), "the run failed: {code:?}");
    assert!(!a.dir.join("after").exists(), "no step after the outage");
    server.control("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = json(&b.ok(&["status", "outage", "--json"]));
        if s["status"] != "running" || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "interrupted", "{status}");
}
