//! The chat bridge (`opsgate serve`) over a real socket, with the real
//! binary: authentication, signing, every rejection class, what a decision
//! records, a CRITICAL plan approved by two senders and then run, and
//! concurrent decisions, also across a SIGTERM.
//!
//! The HTTP client is a few lines over `TcpStream` (`Connection: close`,
//! read to the end), so the tests need no HTTP dependency.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::io::{BufRead, BufReader};

use common::http::{Resp, http};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// The server, the policy and the log.

const TOKEN: &str = "tok-slackbot-6f1d2c";
const SIGNED_TOKEN: &str = "tok-signed-93ab07";
const SECRET_ENV: &str = "TEST_BRIDGE_SECRET";
const SECRET: &str = "signing-secret-4c2e";

/// Chat user id → approver, the same for every client here. `U3` and `U5`
/// are the demo plan's author (`demo`), spelled two ways.
const SENDERS: &str = "{U1: alice, U2: carol, U3: demo, U4: dave, U5: ' Demo'}";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A `bridge:` section: the plain `slackbot` client, and `signed` (signing
/// with `$TEST_BRIDGE_SECRET`) when asked.
fn bridge_yaml(max_body: Option<u64>, signed: bool) -> String {
    let mut s =
        String::from("bridge:\n  rate_limit: {per_sender: 100000/min, per_client: 1000000/min}\n");
    if let Some(m) = max_body {
        s.push_str(&format!("  max_body: {m}\n"));
    }
    s.push_str(&format!(
        "  clients:\n    - name: slackbot\n      token_sha256: \"{}\"\n      senders: {SENDERS}\n",
        sha256_hex(TOKEN)
    ));
    if signed {
        s.push_str(&format!(
            "    - name: signed\n      token_sha256: \"{}\"\n      signing_secret_env: {SECRET_ENV}\n      senders: {SENDERS}\n",
            sha256_hex(SIGNED_TOKEN)
        ));
    }
    s
}

/// A running `opsgate serve`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("Authorization", format!("Bearer {t}")))
            .into_iter()
            .collect();
        http(self.addr, "GET", path, &headers, b"").expect("GET answered")
    }

    /// POSTs a decision body (already serialized) with these headers.
    fn post(&self, id: &str, headers: &[(&str, String)], body: &str) -> Resp {
        http(
            self.addr,
            "POST",
            &format!("/v1/plans/{id}/decision"),
            headers,
            body.as_bytes(),
        )
        .expect("POST answered")
    }

    /// POSTs a decision as the `slackbot` client.
    fn decide(&self, id: &str, body: &Value) -> Resp {
        self.post(id, &bearer(TOKEN), &body.to_string())
    }

    /// Sends SIGTERM (and returns once it is delivered).
    fn sigterm(&self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill runs");
        assert!(st.success(), "kill -TERM failed");
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// A `yes` from a sender for a plan hash.
fn yes(hash: &str, sender: &str) -> Value {
    json!({"decision": "yes", "plan_hash": hash, "sender_id": sender})
}

/// A `no` with a reason.
fn no(hash: &str, sender: &str, reason: &str) -> Value {
    json!({"decision": "no", "plan_hash": hash, "sender_id": sender, "reason": reason})
}

fn now_secs() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_secs()).expect("seconds fit")
}

/// `sha256=<hex HMAC-SHA256(secret, "{ts}.{body}")>`.
fn signature(secret: &str, ts: &str, body: &str) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length works");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The headers of a request by the `signed` client.
fn signed_headers(ts: i64, sig: &str) -> Vec<(&'static str, String)> {
    let mut h = bearer(SIGNED_TOKEN);
    h.push(("X-Opsgate-Timestamp", ts.to_string()));
    h.push(("X-Opsgate-Signature", sig.to_owned()));
    h
}

/// One log and one policy in a temp dir.
struct Env {
    dir: tempfile::TempDir,
    log: PathBuf,
    policy: PathBuf,
}

impl Env {
    fn new(policy: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("audit.jsonl");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).expect("policy written");
        Env {
            dir,
            log,
            policy: path,
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `opsgate serve --listen 127.0.0.1:0` with these extra env
    /// vars, and waits for its `listening on` line.
    fn serve(&self, env: &[(&str, &str)]) -> Server {
        self.serve_under(&self.policy, env)
    }

    /// `opsgate serve` under the policy file `policy`.
    fn serve_under(&self, policy: &Path, env: &[(&str, &str)]) -> Server {
        let stderr = self.p(&format!("serve-{}.stderr", now_nanos()));
        let mut cmd = common::opsgate_command(&self.log, Some(policy));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove(SECRET_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("opsgate serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        server.addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no `listening on ADDR` line: {line:?}; stderr: {}",
                    server.stderr()
                )
            });
        server
    }

    fn cmd(&self, policy: &Path) -> std::process::Command {
        common::opsgate_command(&self.log, Some(policy))
    }

    /// Runs an opsgate command under the env's policy; exit code, stdout,
    /// stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .cmd(&self.policy)
            .args(common::with_reviewed_hash(&self.log, args))
            .output()
            .expect("runs");
        (
            out.status.code().expect("an exit code"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    }

    /// Submits a plan file as `author` under `policy`; returns the plan hash.
    fn submit_under(&self, policy: &Path, file: &Path, author: &str) -> String {
        let out = self
            .cmd(policy)
            .arg("submit")
            .arg(file)
            .args(["--json", "--as", author])
            .output()
            .expect("submit runs");
        assert!(
            out.status.success(),
            "submit {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("submit --json");
        v["plan_hash"].as_str().expect("a plan hash").to_owned()
    }

    fn submit(&self, file: impl AsRef<Path>, author: &str) -> String {
        self.submit_under(&self.policy, file.as_ref(), author)
    }

    /// Writes a small plan (one harmless `touch` in the temp dir); returns
    /// its file.
    fn small_plan(&self, id: &str, author: &str) -> PathBuf {
        let file = self.p(&format!("{id}.yaml"));
        let marker = self.p(&format!("{id}.marker"));
        std::fs::write(
            &file,
            format!(
                "id: {id}\ntitle: small plan {id}\nauthor: {author}\nsteps:\n  - name: touch\n    run: touch {}\nrollback: {{none: a test plan}}\n",
                marker.display()
            ),
        )
        .expect("plan written");
        file
    }

    fn records(&self) -> Vec<Value> {
        if !self.log.exists() {
            return Vec::new();
        }
        common::log_records(&self.log)
    }

    /// The `approval_*` records.
    fn approvals(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| {
                r["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("approval_"))
            })
            .collect()
    }

    /// Sends a request that must be refused with `status` and `code`, and
    /// checks that no decision was recorded.
    #[track_caller]
    fn refuses(&self, status: u16, code: &str, send: impl FnOnce() -> Resp) -> Resp {
        let before = self.approvals().len();
        let lines = self.records().len();
        let r = send();
        assert_eq!(r.status, status, "want {status} {code}: {}", r.text());
        assert_eq!(r.code(), code, "{}", r.text());
        assert_eq!(
            self.approvals().len(),
            before,
            "a refused decision ({code}) was recorded"
        );
        let new = self.records().split_off(lines);
        // A refusal by a rule, for an identified sender, leaves a `refused`
        // record; a request that is not one (unauthenticated, malformed,
        // limited, replayed) writes nothing.
        let by_rule = matches!(
            code,
            "self_approval"
                | "channel_ceiling"
                | "not_permitted"
                | "stale_plan_hash"
                | "stale_submission"
                | "closed"
                | "refused"
        );
        if by_rule {
            assert_eq!(new.len(), 1, "a refusal ({code}) is recorded once: {new:?}");
            assert_eq!(new[0]["type"], "refused", "{:?}", new[0]);
            assert_eq!(new[0]["channel"], "chat", "{:?}", new[0]);
        } else {
            assert!(new.is_empty(), "a refusal ({code}) wrote: {new:?}");
        }
        r
    }

    #[track_caller]
    fn verify(&self) {
        self.ok(&["audit", "verify"]);
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

const DEMO: &str = "plans/demo-local.yaml";
const CRITICAL: &str = "plans/critical-drop-namespace.yaml";

fn repo_file(rel: &str) -> PathBuf {
    common::repo().join(rel)
}

// ---------------------------------------------------------------------------
// 1. Probes and the read-only API.

#[test]
fn probes_are_open_and_plan_reads_need_the_token() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);

    let r = srv.get("/healthz", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let health = r.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert!(health["uptime_seconds"].is_u64(), "{health}");
    let loaded = health["policy_hash"]
        .as_str()
        .expect("the loaded policy's hash");
    assert!(loaded.starts_with("sha256:"), "{health}");
    assert_eq!(health["policy_is_adopted"], true, "{health}");
    if let Some(adopted) = health["adopted_policy_hash"].as_str() {
        assert_eq!(adopted, loaded, "{health}");
    }
    let r = srv.get("/readyz", None);
    assert_eq!(r.status, 200, "{}", r.text());

    let demo_hash = env.submit(repo_file(DEMO), "someone");
    let second = env.small_plan("second", "bob");
    // The log's head, as `audit head` reads it.
    let lines = std::fs::read_to_string(&env.log)
        .expect("log")
        .lines()
        .count();
    let health = srv.get("/healthz", None).json();
    assert_eq!(health["log"]["seq"], lines, "{health}");
    assert!(
        health["log"]["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{health}"
    );
    assert_eq!(
        health["adopted_policy_hash"], loaded,
        "adopted with the first submit"
    );
    // A bridge started under another policy than the log adopted says so.
    let other = env.p("other-policy.yaml");
    std::fs::write(
        &other,
        format!("approvals: {{ttl: 31m}}\n{}", bridge_yaml(None, false)),
    )
    .expect("policy written");
    let elsewhere = env.serve_under(&other, &[]);
    let health = elsewhere.get("/healthz", None).json();
    assert_eq!(health["policy_is_adopted"], false, "{health}");
    assert_eq!(health["adopted_policy_hash"], loaded, "{health}");
    assert_ne!(health["policy_hash"], loaded, "{health}");
    let r = elsewhere.get("/readyz", None);
    assert_eq!(
        (r.status, r.code()),
        (503, "policy_not_adopted".into()),
        "{}",
        r.text()
    );
    drop(elsewhere);

    // The records, a page at a time, as recorded.
    let r = srv.get("/v1/audit", None);
    assert_eq!(r.status, 401, "{}", r.text());
    let all = srv.get("/v1/audit?limit=1000", Some(TOKEN)).json();
    let recorded: Vec<Value> = std::fs::read_to_string(&env.log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert_eq!(all["records"].as_array().expect("records"), &recorded);
    assert_eq!(all["next_after_seq"], Value::Null);
    assert_eq!(all["head_seq"], recorded.len());
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = srv
            .get(&format!("/v1/audit?limit=1&after_seq={after}"), Some(TOKEN))
            .json();
        paged.extend(page["records"].as_array().expect("records").iter().cloned());
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert!(recorded.len() > 1, "more than one page");
    assert_eq!(paged, recorded, "pages of one, each record once");
    let id = recorded
        .iter()
        .find(|r| r["type"] == "plan_submitted")
        .and_then(|r| r["plan_id"].as_str())
        .expect("a plan was submitted");
    let submitted = srv
        .get(
            &format!("/v1/audit?type=plan_submitted&plan={id}"),
            Some(TOKEN),
        )
        .json();
    let kinds: Vec<_> = submitted["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| (r["type"].clone(), r["plan_id"].clone()))
        .collect();
    assert_eq!(kinds, [(json!("plan_submitted"), json!(id))]);
    for bad in ["since=yesterday-ish", "limit=0", "limit=1001", "colour=red"] {
        let r = srv.get(&format!("/v1/audit?{bad}"), Some(TOKEN));
        assert_eq!(
            (r.status, r.code()),
            (400, "malformed".into()),
            "{bad}: {}",
            r.text()
        );
    }
    let future = srv.get("/v1/audit?since=2999-01-01", Some(TOKEN)).json();
    assert_eq!(future["records"], json!([]));
    env.submit(&second, "bob");
    env.ok(&["approve", "second", "--as", "alice"]);

    for path in [
        "/v1/plans",
        "/v1/plans?status=pending",
        "/v1/plans/demo-local",
    ] {
        let r = srv.get(path, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        assert_eq!(r.code(), "unauthorized");
        let r = srv.get(path, Some("not-the-token"));
        assert_eq!(r.status, 401, "{path} with a bad token: {}", r.text());
        assert_eq!(r.code(), "unauthorized");
        let r = http(
            srv.addr,
            "GET",
            path,
            &[("Authorization", format!("Basic {TOKEN}"))],
            b"",
        )
        .expect("answered");
        assert_eq!(r.status, 401, "{path} with a Basic scheme: {}", r.text());
    }

    let r = srv.get("/v1/plans", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let all = r.json();
    let ids = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap_or_default().to_owned(),
                    p["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let mut got = ids(&all);
    got.sort();
    assert_eq!(
        got,
        [
            ("demo-local".to_owned(), "pending".to_owned()),
            ("second".to_owned(), "approved".to_owned())
        ]
    );
    let demo = all
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["id"] == "demo-local")
        .expect("demo-local listed");
    assert_eq!(demo["plan_hash"], demo_hash.as_str());
    assert_eq!(demo["risk"], "MEDIUM");
    assert_eq!(demo["approvals"]["needed"], 1);
    assert_eq!(demo["approvals"]["have"], json!([]));
    assert!(
        demo["summary"]
            .as_str()
            .is_some_and(|s| s.contains("1. prepare work dir [")),
        "{demo}"
    );

    let r = srv.get("/v1/plans?status=pending", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ids(&r.json()),
        [("demo-local".to_owned(), "pending".to_owned())]
    );
    let r = srv.get("/v1/plans?status=approved", Some(TOKEN));
    assert_eq!(
        ids(&r.json()),
        [("second".to_owned(), "approved".to_owned())]
    );
    let r = srv.get("/v1/plans?status=running", Some(TOKEN));
    assert_eq!(r.json(), json!([]));

    // The detail: the rendered plan with each step's level and why.
    let r = srv.get("/v1/plans/demo-local", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert_eq!(d["plan"]["id"], "demo-local");
    assert_eq!(d["plan"]["author"], "demo");
    assert_eq!(d["plan"]["plan_hash"], demo_hash.as_str());
    assert_eq!(d["plan"]["risk"], "MEDIUM");
    let steps = d["plan"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4, "{d}");
    for s in steps {
        assert!(s["risk"].is_string(), "{s}");
        assert!(
            s["reasons"].as_array().is_some_and(|r| !r.is_empty()),
            "every step says why: {s}"
        );
    }
    assert_eq!(d["state"]["status"], "pending");
    assert_eq!(d["state"]["approvals"]["needed"], 1);

    let r = srv.get("/v1/plans/nope", Some(TOKEN));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.code(), "not_found");

    // Reads record nothing.
    assert_eq!(env.approvals().len(), 1, "only the CLI approval");

    // A log whose tail does not check is not ready.
    let text = std::fs::read_to_string(&env.log).expect("log");
    std::fs::write(&env.log, text.replace("\"alice\"", "\"mallory\"")).expect("tampered");
    let r = srv.get("/readyz", None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "not_ready");
    let r = srv.get("/healthz", None);
    assert_eq!(r.status, 200, "liveness does not read the log");
    // Nothing is read or decided on a broken log.
    let r = srv.get("/v1/plans", Some(TOKEN));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "log_unavailable");
    let r = srv.get("/v1/audit", Some(TOKEN));
    assert_eq!(
        (r.status, r.code()),
        (503, "log_unavailable".into()),
        "{}",
        r.text()
    );
    env.refuses(503, "log_unavailable", || {
        srv.decide("demo-local", &yes(&demo_hash, "U1"))
    });
}

// ---------------------------------------------------------------------------
// 2. Every rejection class.

#[test]
fn every_rejection_class_has_its_status_and_code_and_records_nothing() {
    let env = Env::new(&format!(
        "safety: {{allow_critical: true}}\napprovals: {{separation_of_duties: true}}\n{}",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    // `demo` submits the demo: U3 (demo) and U5 (' Demo') are its author.
    let demo = env.submit(repo_file(DEMO), "demo");
    let critical = env.submit(repo_file(CRITICAL), "bob");
    let auth = bearer(TOKEN);

    // 400: not a decision.
    for body in [
        "{\"decision\":",
        "",
        "[]",
        "not json",
        &json!({"decision": "yes", "sender_id": "U1"}).to_string(),
        &json!({"decision": "yes", "plan_hash": demo, "sender_id": "U1", "extra": 1}).to_string(),
        &json!({"decision": "yes", "plan_hash": demo, "sender_id": "U1", "metadata": [1]})
            .to_string(),
    ] {
        env.refuses(400, "malformed", || srv.post("demo-local", &auth, body));
    }
    for d in ["maybe", "YES", "", "approve"] {
        env.refuses(400, "malformed", || {
            srv.decide(
                "demo-local",
                &json!({"decision": d, "plan_hash": demo, "sender_id": "U1"}),
            )
        });
    }
    // A `no` needs a reason.
    env.refuses(400, "malformed", || {
        srv.decide(
            "demo-local",
            &json!({"decision": "no", "plan_hash": demo, "sender_id": "U1"}),
        )
    });
    env.refuses(400, "malformed", || {
        srv.decide("demo-local", &no(&demo, "U1", "  \n"))
    });
    for key in [
        "approver",
        "plan_hash",
        "channel",
        "client",
        "sender_id",
        "sender",
        " Client ",
        "SENDER_ID",
        "submission_seq",
    ] {
        let mut body = yes(&demo, "U1");
        body["metadata"] = json!({"channel_id": "C1", key: "forged"});
        let r = env.refuses(400, "reserved_metadata_key", || {
            srv.decide("demo-local", &body)
        });
        assert!(r.text().contains(key), "{}", r.text());
    }

    // 401: no token, a bad token, a token in the wrong form.
    let body = yes(&demo, "U1").to_string();
    env.refuses(401, "unauthorized", || srv.post("demo-local", &[], &body));
    env.refuses(401, "unauthorized", || {
        srv.post("demo-local", &bearer("tok-slackbot-6f1d2d"), &body)
    });
    env.refuses(401, "unauthorized", || {
        srv.post("demo-local", &[("Authorization", sha256_hex(TOKEN))], &body)
    });
    env.refuses(401, "unauthorized", || {
        srv.post("demo-local", &[("Authorization", "Bearer ".into())], &body)
    });
    // Authentication comes first: a bad token learns nothing else.
    env.refuses(401, "unauthorized", || {
        srv.post("no-such-plan", &bearer("wrong"), "{")
    });

    // 403: who may not decide.
    env.refuses(403, "unknown_sender", || {
        srv.decide("demo-local", &yes(&demo, "U999"))
    });
    env.refuses(403, "unknown_sender", || {
        srv.decide("demo-local", &no(&demo, "u1", "sender ids are exact"))
    });
    env.refuses(403, "self_approval", || {
        srv.decide("demo-local", &yes(&demo, "U3"))
    });
    env.refuses(403, "self_approval", || {
        srv.decide("demo-local", &yes(&demo, "U5"))
    });
    let r = env.refuses(403, "channel_ceiling", || {
        srv.decide("drop-legacy-billing", &yes(&critical, "U1"))
    });
    assert!(r.text().contains("HIGH"), "{}", r.text());

    // 404, 409.
    env.refuses(404, "not_found", || {
        srv.decide("no-such-plan", &yes(&demo, "U1"))
    });
    let stale = format!("sha256:{}", "0".repeat(64));
    env.refuses(409, "stale_plan_hash", || {
        srv.decide("demo-local", &yes(&stale, "U1"))
    });
    env.refuses(409, "stale_plan_hash", || {
        srv.decide("demo-local", &yes(&critical, "U1"))
    });
    // A prefix is not the hash (the CLI accepts one; the API wants it whole).
    env.refuses(409, "stale_plan_hash", || {
        srv.decide("demo-local", &yes(&demo[..30], "U1"))
    });

    // 410: a rejected plan takes no more decisions.
    let before = env.approvals().len();
    let r = srv.decide("drop-legacy-billing", &no(&critical, "U4", "not today"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "rejected");
    assert_eq!(env.approvals().len(), before + 1);
    env.refuses(410, "closed", || {
        srv.decide("drop-legacy-billing", &yes(&critical, "U2"))
    });
    env.refuses(410, "closed", || {
        srv.decide("drop-legacy-billing", &no(&critical, "U2", "again"))
    });

    // Nothing is submitted under a policy the log did not adopt, so the
    // bridge never sees a plan of another policy (410 after a change
    // adopted with `policy adopt`).
    let other = env.p("other-policy.yaml");
    std::fs::write(
        &other,
        format!("approvals: {{ttl: 31m}}\n{}", bridge_yaml(None, false)),
    )
    .expect("policy written");
    let small = env.small_plan("elsewhere", "bob");
    let out = env
        .cmd(&other)
        .arg("submit")
        .arg(&small)
        .args(["--json", "--as", "bob"])
        .output()
        .expect("submit runs");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the one this audit log adopted"),
        "{out:?}"
    );

    // The one decision that was allowed, and nothing else.
    let approvals = env.approvals();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["type"], "approval_rejected");
    // After all that, the demo plan is still pending and takes a yes.
    let r = srv.decide("demo-local", &yes(&demo, "U1"));
    assert_eq!(r.status, 200, "{}", r.text());
    env.verify();
}

#[test]
fn an_approvers_list_binds_the_bridge() {
    let env = Env::new(&format!(
        "approvers:\n  - {{name: alice, max_risk: LOW}}\n  - {{name: carol, channels: [tui, cli]}}\n  - {{name: dave}}\n{}",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let small = env.small_plan("listed", "bob");
    let h = env.submit(&small, "bob");
    // alice's level is below MEDIUM, carol may not use chat, and demo is
    // not on the list.
    for sender in ["U1", "U2", "U3"] {
        env.refuses(403, "not_permitted", || {
            srv.decide("listed", &yes(&h, sender))
        });
    }
    let r = srv.decide("listed", &yes(&h, "U4"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["approver"], "dave");
    assert_eq!(r.json()["status"], "approved");
}

#[test]
fn a_no_from_someone_not_on_the_approvers_list_is_not_permitted() {
    let env = Env::new(&format!(
        "approvers:\n  - {{name: dave}}\n{}",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let h = env.submit(env.small_plan("listed", "bob"), "bob");
    env.refuses(403, "not_permitted", || {
        srv.decide("listed", &no(&h, "U1", "alice may not decide"))
    });
}

#[test]
fn a_body_over_max_body_is_413() {
    let env = Env::new(&bridge_yaml(Some(200), false));
    let srv = env.serve(&[]);
    let small = env.small_plan("limited", "bob");
    let h = env.submit(&small, "bob");
    let big = no(&h, "U1", &"x".repeat(400)).to_string();
    assert!(big.len() > 200);
    let before = env.records().len();
    let r = srv.post("limited", &bearer(TOKEN), &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(env.records().len(), before, "a 413 recorded something");
    // Under the limit, the same client is heard.
    let body = yes(&h, "U1").to_string();
    assert!(body.len() <= 200, "{}", body.len());
    let r = srv.post("limited", &bearer(TOKEN), &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn errors_outside_the_handlers_are_json_too() {
    let env = Env::new(&bridge_yaml(Some(200), false));
    let srv = env.serve(&[]);
    let small = env.small_plan("limited", "bob");
    let h = env.submit(&small, "bob");
    let big = no(&h, "U1", &"x".repeat(400)).to_string();
    let r = env.refuses(413, "body_too_large", || {
        srv.post("limited", &bearer(TOKEN), &big)
    });
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let r = srv.get("/v1/nothing-here", Some(TOKEN));
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    let r = srv.get("/v1/plans/limited/decision", Some(TOKEN));
    assert_eq!(r.status, 405);
    r.code();
    let r = srv.get("/v1/plans?status=pending&status=approved", Some(TOKEN));
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "malformed");
}

// ---------------------------------------------------------------------------
// 3. Signing.

#[test]
fn a_signing_client_must_sign_every_decision() {
    let env = Env::new(&bridge_yaml(None, true));
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    let a = env.submit(env.small_plan("sign-a", "bob"), "bob");
    let b = env.submit(env.small_plan("sign-b", "bob"), "bob");
    let body = yes(&a, "U1").to_string();
    let now = now_secs();

    // No signature at all, or half of one.
    env.refuses(401, "bad_signature", || {
        srv.post("sign-a", &bearer(SIGNED_TOKEN), &body)
    });
    env.refuses(401, "bad_signature", || {
        let mut h = bearer(SIGNED_TOKEN);
        h.push(("X-Opsgate-Timestamp", now.to_string()));
        srv.post("sign-a", &h, &body)
    });
    env.refuses(401, "bad_signature", || {
        let mut h = bearer(SIGNED_TOKEN);
        h.push((
            "X-Opsgate-Signature",
            signature(SECRET, &now.to_string(), &body),
        ));
        srv.post("sign-a", &h, &body)
    });
    // A tampered body: signed for plan a, sent for plan b.
    let tampered = yes(&b, "U1").to_string();
    env.refuses(401, "bad_signature", || {
        srv.post(
            "sign-b",
            &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
            &tampered,
        )
    });
    // One byte more.
    env.refuses(401, "bad_signature", || {
        srv.post(
            "sign-a",
            &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
            &format!("{body} "),
        )
    });
    // The wrong secret; a signature over another timestamp; not hex.
    env.refuses(401, "bad_signature", || {
        srv.post(
            "sign-a",
            &signed_headers(now, &signature("wrong", &now.to_string(), &body)),
            &body,
        )
    });
    env.refuses(401, "bad_signature", || {
        srv.post(
            "sign-a",
            &signed_headers(now, &signature(SECRET, &(now - 1).to_string(), &body)),
            &body,
        )
    });
    env.refuses(401, "bad_signature", || {
        srv.post("sign-a", &signed_headers(now, "sha256=zz"), &body)
    });
    env.refuses(401, "bad_signature", || {
        let sig = signature(SECRET, &now.to_string(), &body);
        srv.post(
            "sign-a",
            &signed_headers(now, sig.trim_start_matches("sha256=")),
            &body,
        )
    });
    // Correctly signed, but too old or too far ahead.
    for ts in [now - 1000, now + 1000] {
        env.refuses(401, "stale_timestamp", || {
            srv.post(
                "sign-a",
                &signed_headers(ts, &signature(SECRET, &ts.to_string(), &body)),
                &body,
            )
        });
    }
    // The signature is checked before the body is read: a bad signature on
    // a malformed body is still 401.
    env.refuses(401, "bad_signature", || {
        srv.post("sign-a", &signed_headers(now, "sha256=00"), "{")
    });

    // Correctly signed: heard.
    let r = srv.post(
        "sign-a",
        &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "approved");
    let rec = env.approvals().pop().expect("recorded");
    assert_eq!(rec["metadata"]["client"], "signed");
    // A slightly skewed clock is fine.
    let ts = now_secs() - 250;
    let body = yes(&b, "U2").to_string();
    let r = srv.post(
        "sign-b",
        &signed_headers(ts, &signature(SECRET, &ts.to_string(), &body)),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The plain client of the same server needs no signature.
    let c = env.submit(env.small_plan("sign-c", "bob"), "bob");
    let r = srv.decide("sign-c", &yes(&c, "U1"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(env.approvals().len(), 3);
}

#[test]
fn a_signing_client_without_its_secret_stops_the_server() {
    let env = Env::new(&bridge_yaml(None, true));
    let out = common::opsgate_command(&env.log, Some(&env.policy))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove(SECRET_ENV)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(SECRET_ENV) && err.contains("signed"),
        "the error names the client and the variable: {err}"
    );
    assert!(out.stdout.is_empty(), "it never listened");
}

// ---------------------------------------------------------------------------
// 4. What a decision records.

#[test]
fn decisions_record_the_chat_channel_the_approver_and_the_metadata() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let demo = env.submit(repo_file(DEMO), "someone");
    let other = env.submit(env.small_plan("other", "bob"), "bob");

    let mut body = yes(&demo, "U1");
    body["reason"] = json!("looked at the rollback");
    // `client` and `sender_id` are the bridge's to set (sending them is
    // refused: `every_rejection_class…`).
    body["metadata"] = json!({"channel_id": "C42", "thread_ts": "1700.1"});
    let r = srv.decide("demo-local", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let rec = env.approvals().pop().expect("a record");
    assert_eq!(v["plan_id"], "demo-local");
    assert_eq!(v["decision"], "yes");
    assert_eq!(v["approver"], "alice");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approvals"], json!({"have": ["alice"], "needed": 1}));
    assert_eq!(v["seq"], rec["seq"], "the response names the record");

    assert_eq!(rec["type"], "approval_granted");
    assert_eq!(rec["plan_id"], "demo-local");
    assert_eq!(rec["plan_hash"], demo.as_str());
    assert_eq!(rec["risk"], "MEDIUM");
    assert_eq!(rec["approver"], "alice");
    assert_eq!(rec["channel"], "chat");
    assert_eq!(rec["reason"], "looked at the rollback");
    assert_eq!(
        rec["metadata"],
        json!({"channel_id": "C42", "thread_ts": "1700.1", "client": "slackbot", "sender_id": "U1"})
    );
    let status: Value =
        serde_json::from_str(&env.ok(&["status", "demo-local", "--json"])).expect("JSON");
    assert_eq!(status["status"], "approved");

    // The same person again: the log's lock refuses it.
    let r = env.refuses(409, "refused", || {
        srv.decide("demo-local", &yes(&demo, "U1"))
    });
    assert!(r.text().contains("one person counts once"), "{}", r.text());

    let r = srv.decide("other", &no(&other, "U2", "wrong namespace"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["decision"], "no");
    assert_eq!(v["approver"], "carol");
    assert_eq!(v["status"], "rejected");
    let rec = env.approvals().pop().expect("a record");
    assert_eq!(v["seq"], rec["seq"]);
    assert_eq!(rec["type"], "approval_rejected");
    assert_eq!(rec["plan_id"], "other");
    assert_eq!(rec["approver"], "carol");
    assert_eq!(rec["channel"], "chat");
    assert_eq!(rec["reason"], "wrong namespace");
    assert_eq!(
        rec["metadata"],
        json!({"client": "slackbot", "sender_id": "U2"})
    );
    assert_eq!(env.approvals().len(), 2);
    // The plans list shows both decisions.
    let list = srv.get("/v1/plans", Some(TOKEN)).json();
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default(),
                p["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(statuses.contains(&("demo-local", "approved")), "{list}");
    assert!(statuses.contains(&("other", "rejected")), "{list}");
    env.verify();
}

// ---------------------------------------------------------------------------
// 5. A CRITICAL plan, two chat approvals, a run.

#[test]
fn two_senders_approve_a_critical_plan_that_then_runs() {
    let env = Env::new(&format!(
        "safety: {{allow_critical: true}}\napprovals: {{channel_max_risk: {{chat: CRITICAL}}}}\nrules:\n  - {{program: touch, level: CRITICAL, reason: a test rule}}\n{}",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let marker = env.p("critical-touch.marker");
    let plan = env.small_plan("critical-touch", "erin");
    let h = env.submit(&plan, "erin");
    let s = srv.get("/v1/plans/critical-touch", Some(TOKEN)).json();
    assert_eq!(s["plan"]["risk"], "CRITICAL", "{s}");
    assert_eq!(s["state"]["approvals"]["needed"], 2, "{s}");

    let r = srv.decide("critical-touch", &yes(&h, "U1"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["approvals"], json!({"have": ["alice"], "needed": 2}));
    // One person counts once.
    env.refuses(409, "refused", || {
        srv.decide("critical-touch", &yes(&h, "U1"))
    });
    // Not yet runnable.
    let (code, out, err) = env.run(&["run", "critical-touch"]);
    assert_eq!(code, 3, "ran with one approval: {out} {err}");
    assert!(!marker.exists());

    let r = srv.decide("critical-touch", &yes(&h, "U2"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "approved");
    assert_eq!(
        v["approvals"],
        json!({"have": ["alice", "carol"], "needed": 2})
    );

    let out = env.ok(&["run", "critical-touch"]);
    assert!(marker.exists(), "the step did not run: {out}");
    let s: Value =
        serde_json::from_str(&env.ok(&["status", "critical-touch", "--json"])).expect("JSON");
    assert_eq!(s["status"], "succeeded", "{s}");
    // A ran plan is closed to the bridge.
    env.refuses(410, "closed", || {
        srv.decide("critical-touch", &yes(&h, "U4"))
    });
    env.verify();
}

// ---------------------------------------------------------------------------
// 6 and 7. Concurrency.

/// Submits `n` small plans by bob; returns (id, hash) pairs.
fn many_plans(env: &Env, prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i:02}");
            let h = env.submit(env.small_plan(&id, "bob"), "bob");
            (id, h)
        })
        .collect()
}

#[test]
fn fifty_concurrent_decisions_are_all_recorded() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let plans = many_plans(&env, "load", 50);
    let start = Arc::new(Barrier::new(plans.len()));
    let addr = srv.addr;
    let t0 = Instant::now();
    let threads: Vec<_> = plans
        .iter()
        .cloned()
        .map(|(id, h)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let r = http(
                    addr,
                    "POST",
                    &format!("/v1/plans/{id}/decision"),
                    &bearer(TOKEN),
                    yes(&h, "U1").to_string().as_bytes(),
                );
                (id, r)
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in threads {
        let (id, r) = t.join().unwrap();
        let r = r.unwrap_or_else(|e| panic!("{id}: {e}; {}", srv.stderr()));
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        let v = r.json();
        assert_eq!(v["plan_id"], id.as_str());
        assert_eq!(v["status"], "approved", "{v}");
        seqs.push(v["seq"].as_u64().expect("seq"));
    }
    eprintln!("50 concurrent decisions in {:?}", t0.elapsed());
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 50, "each response names its own record");

    let approvals = env.approvals();
    assert_eq!(approvals.len(), 50);
    let mut ids: Vec<&str> = approvals
        .iter()
        .map(|a| {
            assert_eq!(a["type"], "approval_granted", "{a}");
            assert_eq!(a["channel"], "chat", "{a}");
            a["plan_id"].as_str().expect("plan id")
        })
        .collect();
    ids.sort_unstable();
    let want: Vec<&str> = plans.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want);
    env.verify();
    let pending = srv.get("/v1/plans?status=pending", Some(TOKEN)).json();
    assert_eq!(pending, json!([]));
}

#[test]
fn one_sender_racing_itself_counts_once() {
    let env = Env::new(&format!(
        "safety: {{allow_critical: true}}\napprovals: {{channel_max_risk: {{chat: CRITICAL}}}}\n{}",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let h = env.submit(repo_file(CRITICAL), "bob");
    let n = 10;
    let start = Arc::new(Barrier::new(n));
    let addr = srv.addr;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let start = Arc::clone(&start);
            let h = h.clone();
            std::thread::spawn(move || {
                start.wait();
                http(
                    addr,
                    "POST",
                    "/v1/plans/drop-legacy-billing/decision",
                    &bearer(TOKEN),
                    yes(&h, "U1").to_string().as_bytes(),
                )
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        let r = t.join().unwrap().unwrap();
        match r.status {
            200 => ok += 1,
            409 => assert_eq!(r.code(), "refused", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 1, "one person counted {ok} times");
    let approvals = env.approvals();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let s = srv.get("/v1/plans/drop-legacy-billing", Some(TOKEN)).json();
    assert_eq!(s["state"]["status"], "pending", "{s}");
    assert_eq!(s["state"]["approvals"]["have"], json!(["alice"]), "{s}");
}

#[test]
fn sigterm_under_load_drains_and_loses_no_answered_decision() {
    let env = Env::new(&bridge_yaml(None, false));
    let mut srv = env.serve(&[]);
    let plans = many_plans(&env, "term", 30);
    let start = Arc::new(Barrier::new(plans.len() + 1));
    let addr = srv.addr;
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = plans
        .iter()
        .cloned()
        .map(|(id, h)| {
            let start = Arc::clone(&start);
            let tx = tx.clone();
            std::thread::spawn(move || {
                start.wait();
                let r = http(
                    addr,
                    "POST",
                    &format!("/v1/plans/{id}/decision"),
                    &bearer(TOKEN),
                    yes(&h, "U1").to_string().as_bytes(),
                );
                let _ = tx.send(());
                (id, r, Instant::now())
            })
        })
        .collect();
    drop(tx);
    start.wait();
    // SIGTERM as soon as the first answer is back: the rest are in flight
    // or queued.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("a first answer");
    srv.sigterm();
    let signalled = Instant::now();
    let st = srv.wait_exit(Duration::from_secs(60));

    let mut answered = Vec::new();
    let (mut failed, mut drained) = (0, 0);
    for t in threads {
        let (id, r, at) = t.join().unwrap();
        match r {
            Ok(r) => {
                assert_eq!(
                    r.status,
                    200,
                    "{id}: an answer other than 200 during the drain: {}",
                    r.text()
                );
                answered.push((id, r.json()["seq"].as_u64().expect("seq")));
                drained += usize::from(at > signalled);
            }
            Err(_) => failed += 1,
        }
    }
    eprintln!(
        "SIGTERM under load: {} answered 200 ({drained} after the signal), {failed} not served",
        answered.len()
    );
    assert!(
        drained > 0,
        "no request was in flight at the SIGTERM: the test proves nothing"
    );
    assert!(
        st.success(),
        "the server did not stop gracefully ({st}): {}",
        srv.stderr()
    );
    let approvals = env.approvals();
    for (id, seq) in &answered {
        assert!(
            approvals
                .iter()
                .any(|a| a["plan_id"] == id.as_str() && a["seq"] == *seq),
            "{id} was answered 200 (seq {seq}) but is not in the log"
        );
    }
    assert!(!answered.is_empty());
    // Nothing half-written: the log verifies.
    env.verify();
}

#[test]
fn sigterm_right_after_listening_stops_gracefully() {
    let env = Env::new(&bridge_yaml(None, false));
    // The window is small: signal as fast as possible (no `kill` process,
    // no reader thread), a few times.
    for _ in 0..50 {
        let mut child = common::opsgate_command(&env.log, Some(&env.policy))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on "), "{line:?}");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let st = child.wait().unwrap();
        assert!(st.success(), "killed by SIGTERM: {st}");
    }
}

// ---------------------------------------------------------------------------
// Rate limits, replay protection, metrics.

#[test]
fn rate_limits_answer_429_and_record_nothing() {
    let yaml = bridge_yaml(None, false).replace(
        "rate_limit: {per_sender: 100000/min, per_client: 1000000/min}",
        "rate_limit: {per_sender: 2/min, per_client: 3/min, max_senders: 10}",
    );
    let env = Env::new(&yaml);
    let srv = env.serve(&[]);
    let plans: Vec<(String, String)> = (0..4)
        .map(|i| {
            let id = format!("limited-{i}");
            let h = env.submit(env.small_plan(&id, "bob"), "bob");
            (id, h)
        })
        .collect();
    // Two from U1 pass; the third is the sender's limit.
    for (id, h) in &plans[..2] {
        let r = srv.decide(id, &yes(h, "U1"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = env.refuses(429, "rate_limited", || {
        srv.decide(&plans[2].0, &yes(&plans[2].1, "U1"))
    });
    assert!(r.text().contains("this sender"), "{}", r.text());
    // The client's bucket (3/min) is spent as well now.
    let r = env.refuses(429, "rate_limited", || {
        srv.decide(&plans[3].0, &yes(&plans[3].1, "U2"))
    });
    assert!(r.text().contains("this client"), "{}", r.text());
    env.verify();
}

#[test]
fn an_idempotency_key_repeats_the_answer_and_refuses_another_body() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let h = env.submit(env.small_plan("idem", "bob"), "bob");
    let mut headers = bearer(TOKEN);
    headers.push(("Idempotency-Key", "key-1".to_owned()));
    let body = yes(&h, "U1").to_string();
    let first = srv.post("idem", &headers, &body);
    assert_eq!(first.status, 200, "{}", first.text());
    // The same key and body: the same answer, nothing new recorded.
    let records = env.records().len();
    let again = srv.post("idem", &headers, &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), first.json());
    assert_eq!(env.records().len(), records, "a repeat records nothing");
    // The same key with another body is a replay.
    let other =
        json!({"decision": "no", "plan_hash": h, "sender_id": "U1", "reason": "changed my mind"});
    env.refuses(409, "replayed", || {
        srv.post("idem", &headers, &other.to_string())
    });
    // A refused request frees its key: a corrected retry with it is not a replay.
    let mut h2 = bearer(TOKEN);
    h2.push(("Idempotency-Key", "key-2".to_owned()));
    env.refuses(400, "malformed", || srv.post("idem", &h2, "{not json"));
    let h3 = env.submit(env.small_plan("idem-2", "bob"), "bob");
    let r = srv.post("idem-2", &h2, &yes(&h3, "U1").to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    env.verify();
}

#[test]
fn metrics_count_decisions_and_refusals() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let h = env.submit(env.small_plan("counted", "bob"), "bob");
    env.submit(env.small_plan("waiting", "bob"), "bob");
    assert_eq!(srv.decide("counted", &yes(&h, "U1")).status, 200);
    assert_eq!(srv.decide("counted", &yes("sha256:00", "U2")).status, 409);
    let r = srv.get("/metrics", None);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("opsgate_bridge_decisions_total{outcome=\"yes\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("opsgate_bridge_rejections_total{reason=\"stale_plan_hash\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("opsgate_bridge_request_seconds_count 2"),
        "{text}"
    );
    assert!(text.contains("opsgate_bridge_pending_plans 1"), "{text}");
    let loaded = srv.get("/healthz", None).json()["policy_hash"].clone();
    let loaded = loaded.as_str().expect("the loaded policy's hash");
    assert!(
        text.contains(&format!(
            "opsgate_policy_info{{hash=\"{loaded}\",adopted_hash=\"{loaded}\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("opsgate_policy_adopted 1\n"), "{text}");
    // The yes and the refusal were appended (the refusal is recorded).
    let appends: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("opsgate_audit_append_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no append count: {text}"));
    assert_eq!(appends, 2, "{text}");
    assert!(
        text.contains("opsgate_audit_append_failures_total 0\n"),
        "{text}"
    );
    assert!(text.contains("opsgate_audit_log_poisoned 0\n"), "{text}");
    assert!(
        text.contains("opsgate_backend_breaker_state{backend=\"ec2\",state=\"closed\"} 1"),
        "{text}"
    );

    // A run elsewhere records that the EC2 breaker opened: /metrics says so.
    let log = opsgate::audit::AuditLog::open(
        &env.log,
        opsgate::audit::Sealer::Sha256,
        Default::default(),
    )
    .unwrap();
    log.append(opsgate::audit::Event::BreakerChanged {
        backend: "ec2".into(),
        state: "open".into(),
        consecutive_failures: 5,
        run_id: Some("r-1".into()),
        error: "cannot reach EC2".into(),
    })
    .unwrap();
    let text = srv.get("/metrics", None).text();
    assert!(
        text.contains("opsgate_backend_breaker_state{backend=\"ec2\",state=\"open\"} 1")
            && text.contains("opsgate_backend_breaker_state{backend=\"ec2\",state=\"closed\"} 0")
            && text.contains("opsgate_backend_breaker_state{backend=\"kube\",state=\"closed\"} 1"),
        "{text}"
    );
}

#[test]
fn metadata_rules_bind_decisions_at_their_level_and_above() {
    let env = Env::new(&format!(
        "safety: {{allow_critical: true}}\napprovals: {{channel_max_risk: {{chat: CRITICAL}}}}\nrules:\n  - {{program: touch, level: CRITICAL, reason: a test rule}}\n{}  metadata_rules:\n    - {{level: CRITICAL, key: channel_id, op: eq, value: C-oncall}}\n    - {{level: CRITICAL, key: thread, op: regex, value: '^T[0-9]+$'}}\n",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let h = env.submit(env.small_plan("guarded", "erin"), "erin");
    let with = |meta: Value| {
        let mut body = yes(&h, "U1");
        body["metadata"] = meta;
        body
    };
    let r = env.refuses(403, "not_permitted", || {
        srv.decide("guarded", &yes(&h, "U1"))
    });
    assert!(r.text().contains("channel_id"), "{}", r.text());
    let r = env.refuses(403, "not_permitted", || {
        srv.decide(
            "guarded",
            &with(json!({"channel_id": "C-random", "thread": "T1"})),
        )
    });
    assert!(r.text().contains("C-random"), "{}", r.text());
    let r = env.refuses(403, "not_permitted", || {
        srv.decide(
            "guarded",
            &with(json!({"channel_id": "C-oncall", "thread": "x1"})),
        )
    });
    assert!(r.text().contains("thread"), "{}", r.text());
    let r = srv.decide(
        "guarded",
        &with(json!({"channel_id": "C-oncall", "thread": "T42"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let granted = env.approvals();
    assert_eq!(
        granted.last().map(|a| a["metadata"]["channel_id"].clone()),
        Some(json!("C-oncall"))
    );
}

// ---------------------------------------------------------------------------
// Slack interactivity.

/// `v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>`, Slack's scheme.
fn slack_signature(secret: &str, ts: &str, body: &str) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length works");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Slack button press, form-encoded as Slack sends it.
fn slack_form(user: &str, action: &str, plan: &str, hash: &str) -> String {
    let value = json!({"plan_id": plan, "plan_hash": hash}).to_string();
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": "C-oncall"},
        "actions": [{"action_id": action, "value": value}],
    })
    .to_string();
    serde_urlencoded::to_string([("payload", payload)]).expect("form encodes")
}

#[test]
fn slack_button_presses_are_verified_with_slacks_scheme() {
    let env = Env::new(&bridge_yaml(None, true));
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    let h = env.submit(env.small_plan("from-slack", "bob"), "bob");
    let send = |body: &str, ts: i64, sig: String| {
        let headers = vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("X-Slack-Request-Timestamp", ts.to_string()),
            ("X-Slack-Signature", sig),
        ];
        http(
            srv.addr,
            "POST",
            "/v1/slack/interactive",
            &headers,
            body.as_bytes(),
        )
        .expect("answered")
    };
    let now = now_secs();
    let body = slack_form("U1", "approve", "from-slack", &h);

    // Tampered, unsigned, wrong secret, old: refused, nothing recorded.
    let tampered = body.replace("U1", "U2");
    env.refuses(401, "bad_signature", || {
        send(
            &tampered,
            now,
            slack_signature(SECRET, &now.to_string(), &body),
        )
    });
    env.refuses(401, "bad_signature", || {
        send(
            &body,
            now,
            slack_signature("another-secret", &now.to_string(), &body),
        )
    });
    let old = now - 600;
    env.refuses(401, "stale_timestamp", || {
        send(&body, old, slack_signature(SECRET, &old.to_string(), &body))
    });

    // Signed right: recorded for the mapped person, answered with an update.
    let r = send(&body, now, slack_signature(SECRET, &now.to_string(), &body));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["replace_original"], true);
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("approved by alice") && text.contains("1/1"),
        "{text}"
    );
    let last = env.approvals().last().cloned().unwrap();
    assert_eq!(last["type"], "approval_granted");
    assert_eq!(last["approver"], "alice");
    assert_eq!(last["channel"], "chat");
    assert_eq!(last["metadata"]["channel_id"], "C-oncall");
    assert_eq!(last["metadata"]["client"], "signed");

    // Slack's retry of the same request is answered again, not recorded twice.
    let records = env.records().len();
    let again = send(&body, now, slack_signature(SECRET, &now.to_string(), &body));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(env.records().len(), records);

    // An unknown Slack user is refused.
    let h2 = env.submit(env.small_plan("from-slack-2", "bob"), "bob");
    let stranger = slack_form("U999", "reject", "from-slack-2", &h2);
    env.refuses(403, "unknown_sender", || {
        send(
            &stranger,
            now,
            slack_signature(SECRET, &now.to_string(), &stranger),
        )
    });
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let env = Env::new(&bridge_yaml(None, false));
    let socket = env.p("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut srv = env.serve(&[
        ("NOTIFY_SOCKET", socket.to_str().unwrap()),
        // A 200 ms watchdog: pings every 100 ms.
        ("WATCHDOG_USEC", "200000"),
    ]);
    let mut buf = [0u8; 64];
    let mut heard = Vec::new();
    while heard
        .iter()
        .filter(|m: &&String| *m == "WATCHDOG=1")
        .count()
        < 2
    {
        let n = listener.recv(&mut buf).unwrap();
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(heard[0], "READY=1", "{heard:?}");
    srv.sigterm();
    loop {
        let n = listener.recv(&mut buf).unwrap();
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert!(srv.wait_exit(Duration::from_secs(20)).success());
}

// ---------------------------------------------------------------------------
// Hardening 7: replays.

/// A captured signed request, replayed after a reject and a resubmission of
/// the same plan (same hash) under a fresh `Idempotency-Key`: the replay
/// cache was keyed on the unsigned key, so the old approval was recorded
/// for the new submission. Replays are keyed on the signature now: the
/// replay gets the first answer back and records nothing.
#[test]
fn a_signed_request_replayed_under_a_new_idempotency_key_records_nothing() {
    let env = Env::new(&bridge_yaml(None, true));
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    let plan = env.small_plan("replayed", "bob");
    let h = env.submit(&plan, "bob");
    let now = now_secs();
    let body = yes(&h, "U1").to_string();
    let mut headers = signed_headers(now, &signature(SECRET, &now.to_string(), &body));
    headers.push(("Idempotency-Key", "first".to_owned()));
    let r = srv.post("replayed", &headers, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    env.ok(&["reject", "replayed", "--as", "carol", "--reason", "not now"]);
    assert_eq!(env.submit(&plan, "bob"), h, "the same plan, the same hash");
    let before = env.approvals().len();
    headers.pop();
    headers.push(("Idempotency-Key", "second".to_owned()));
    let again = srv.post("replayed", &headers, &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), r.json(), "the first answer, not a new one");
    assert_eq!(env.approvals().len(), before, "the replay was recorded");
    let status: Value =
        serde_json::from_str(&env.ok(&["status", "replayed", "--json"])).expect("JSON");
    assert_eq!(status["status"], "pending", "{status}");
}

/// A decision names the submission it was made for: one for an earlier
/// submission of the same hash is refused (as after a bridge restart, when
/// the replay cache is empty), and `GET /v1/plans` gives the seq to send.
#[test]
fn a_decision_for_an_earlier_submission_is_refused() {
    let env = Env::new(&bridge_yaml(None, true));
    let plan = env.small_plan("bound", "bob");
    let h = env.submit(&plan, "bob");
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    let listed = srv.get("/v1/plans", Some(TOKEN)).json();
    let first_seq = listed[0]["submission_seq"].as_u64().expect("a seq");
    env.ok(&["reject", "bound", "--as", "carol", "--reason", "not now"]);
    env.submit(&plan, "bob");
    let now = now_secs();
    let mut body = yes(&h, "U1");
    body["submission_seq"] = json!(first_seq);
    let body = body.to_string();
    env.refuses(409, "stale_submission", || {
        srv.post(
            "bound",
            &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
            &body,
        )
    });
    // Too far in the future is refused as well (a few seconds of skew).
    let ahead = now + 60;
    env.refuses(401, "stale_timestamp", || {
        srv.post(
            "bound",
            &signed_headers(ahead, &signature(SECRET, &ahead.to_string(), &body)),
            &body,
        )
    });
    let listed = srv.get("/v1/plans", Some(TOKEN)).json();
    let mut body = yes(&h, "U1");
    body["submission_seq"] = listed[0]["submission_seq"].clone();
    let body = body.to_string();
    let r = srv.post(
        "bound",
        &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Hardening 6: a rule meant for one bot (`key: client, value: slackbot`)
/// read the request's own metadata, so another bot that sent
/// `metadata.client: slackbot` passed it. The bridge's own facts are
/// reserved (in any case or spacing), and a rule on `client`, `sender` or
/// `approver` reads the authenticated value.
#[test]
fn a_metadata_rule_on_the_client_reads_the_authenticated_client() {
    let env = Env::new(&format!(
        "{}  metadata_rules:\n    - {{level: LOW, key: client, op: eq, value: signed}}\n    - {{level: LOW, key: Sender, op: regex, value: '^U[12]$'}}\n",
        bridge_yaml(None, true)
    ));
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    let h = env.submit(env.small_plan("only-signed", "bob"), "bob");
    // slackbot claims to be the signed client: refused outright.
    for key in ["client", "Client", " client"] {
        let mut body = yes(&h, "U1");
        body["metadata"] = json!({key: "signed"});
        env.refuses(400, "reserved_metadata_key", || {
            srv.decide("only-signed", &body)
        });
    }
    // Without the claim, the rule reads who it really is.
    let r = env.refuses(403, "not_permitted", || {
        srv.decide("only-signed", &yes(&h, "U1"))
    });
    assert!(r.text().contains("slackbot"), "{}", r.text());
    // The signed client passes, and only for the senders the rule names.
    let now = now_secs();
    let body = yes(&h, "U4").to_string();
    env.refuses(403, "not_permitted", || {
        srv.post(
            "only-signed",
            &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
            &body,
        )
    });
    let body = yes(&h, "U1").to_string();
    let r = srv.post(
        "only-signed",
        &signed_headers(now, &signature(SECRET, &now.to_string(), &body)),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---------------------------------------------------------------------------
// Hardening 18: half-sent requests cannot hold the server.

/// Whether the server closed `s` within `within` (a read returns end of
/// file or an error instead of blocking).
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(within)).expect("timeout set");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before the close is fine.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// 450 half-sent requests stayed open: there was no header-read timeout and
/// no cap on connections. Over `bridge.max_connections` a connection is
/// closed at once; a header not sent within `bridge.header_timeout` closes
/// its connection; and a proper request is served afterwards.
#[test]
fn half_sent_requests_are_cut_off_and_capped() {
    use std::io::Write;
    let env = Env::new(&format!(
        "{}  header_timeout: 1s\n  max_connections: 4\n",
        bridge_yaml(None, false)
    ));
    let srv = env.serve(&[]);
    let mut open: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(srv.addr).expect("connects");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            s
        })
        .collect();
    // Let the server take the four before the fifth knocks.
    std::thread::sleep(Duration::from_millis(200));
    let mut over = std::net::TcpStream::connect(srv.addr).expect("connects");
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    assert!(
        closed_within(&mut over, Duration::from_millis(900)),
        "a connection over the cap stayed open"
    );
    for s in &mut open {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "a half-sent request outlived the header timeout"
        );
    }
    let r = srv.get("/healthz", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = srv.get("/metrics", None).text();
    assert!(
        metrics.contains("opsgate_bridge_connections_refused_total 1"),
        "{metrics}"
    );
}

/// Hardening, also: an error echoes at most 64 characters of what the
/// request named, escaped.
#[test]
fn errors_echo_a_bounded_id() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let long = "x".repeat(5000);
    let r = srv.get(&format!("/v1/plans/{long}"), Some(TOKEN));
    assert_eq!(r.status, 404, "{}", r.text());
    let message = r.json()["message"].as_str().expect("a message").to_owned();
    assert!(message.len() < 100, "{message}");
    assert!(message.ends_with("…`"), "{message}");
    let h = env.submit(env.small_plan("echoed", "bob"), "bob");
    let r = srv.decide("echoed", &yes(&h, &"U".repeat(5000)));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().len() < 300, "{}", r.text());
}

/// Submits plan `id` by bob (a first step that touches a marker and
/// sleeps 3 s, a second that touches another), approves it through the
/// bridge as alice, and starts `opsgate run`: the two markers and the run.
fn approved_two_step_run(env: &Env, srv: &Server, id: &str) -> (PathBuf, PathBuf, Child) {
    let (m1, m2) = (env.p(&format!("{id}.m1")), env.p(&format!("{id}.m2")));
    let file = env.p(&format!("{id}.yaml"));
    std::fs::write(
        &file,
        format!(
            "id: {id}\ntitle: two steps\nauthor: bob\nsteps:\n  - name: first\n    run: touch {} && sleep 3\n  - name: second\n    run: touch {}\nrollback: {{none: a test plan}}\n",
            m1.display(),
            m2.display()
        ),
    )
    .expect("plan written");
    let h = env.submit(&file, "bob");
    assert_eq!(srv.decide(id, &yes(&h, "U1")).status, 200);
    let run = env
        .cmd(&env.policy)
        .args(["run", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    (m1, m2, run)
}

#[test]
fn stop_over_http_stops_a_running_plan_after_its_current_step() {
    let env = Env::new(&bridge_yaml(None, false));
    let srv = env.serve(&[]);
    let (m1, m2, mut run) = approved_two_step_run(&env, &srv, "stoppable");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !m1.exists() {
        assert!(Instant::now() < deadline, "the first step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run_id = env
        .records()
        .iter()
        .find(|r| r["type"] == "run_started")
        .and_then(|r| r["run_id"].as_str().map(str::to_owned))
        .expect("a run_started record");
    // Progress: running, in its first step.
    let r = srv.get(&format!("/v1/runs/{run_id}"), Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["steps_total"], 2, "{v}");
    assert_eq!(v["steps"][0]["status"], "running", "{v}");
    assert_eq!(v["stop_requested"], Value::Null, "{v}");
    assert_eq!(srv.get(&format!("/v1/runs/{run_id}"), None).status, 401);
    // Carol asks it to stop; the bot retries the same request.
    let stop = |key: &str| {
        let mut headers = bearer(TOKEN);
        headers.push(("Idempotency-Key", key.to_owned()));
        http(
            srv.addr,
            "POST",
            &format!("/v1/runs/{run_id}/stop"),
            &headers,
            json!({"sender_id": "U2", "reason": "wrong cluster"})
                .to_string()
                .as_bytes(),
        )
        .expect("answered")
    };
    let first = stop("stop-1");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.json(),
        json!({"run_id": run_id, "stop": "after_step", "by": "carol"})
    );
    let again = stop("stop-1");
    assert_eq!(
        again.json(),
        first.json(),
        "a retry is not a second stop (a kill)"
    );
    let status = run.wait().expect("the run ends");
    assert!(!status.success(), "a stopped run does not succeed");
    assert!(!m2.exists(), "the second step ran after the stop");
    let records = env.records();
    let cancels: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "run_cancelled")
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0]["user"], "carol");
    assert_eq!(cancels[0]["kill"], false);
    assert_eq!(
        cancels[0]["reason"],
        "chat: client slackbot, sender U2: wrong cluster"
    );
    let finished: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "step_finished")
        .collect();
    assert_eq!(finished.len(), 1, "only the first step ran: {finished:?}");
    assert_eq!(finished[0]["status"], "succeeded", "it ran to its end");
    let v = srv.get(&format!("/v1/runs/{run_id}"), Some(TOKEN)).json();
    assert_eq!(v["status"], "cancelled", "{v}");
    assert_eq!(v["stop_requested"], "after_step", "{v}");
    assert_eq!(v["steps"][0]["status"], "succeeded", "{v}");
    // A stop for a finished run is refused and recorded; an unknown run
    // or sender is refused.
    let late = stop("stop-2");
    assert_eq!(late.status, 409, "{}", late.text());
    assert_eq!(late.code(), "finished");
    let refused: Vec<Value> = env
        .records()
        .into_iter()
        .filter(|r| r["type"] == "refused" && r["attempt"] == "cancel")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["channel"], "chat");
    assert_eq!(refused[0]["user"], "carol");
    let r = http(
        srv.addr,
        "POST",
        "/v1/runs/no-such-run/stop",
        &bearer(TOKEN),
        br#"{"sender_id": "U2"}"#,
    )
    .expect("answered");
    assert_eq!(r.status, 404, "{}", r.text());
    let r = http(
        srv.addr,
        "POST",
        &format!("/v1/runs/{run_id}/stop"),
        &bearer(TOKEN),
        br#"{"sender_id": "U9"}"#,
    )
    .expect("answered");
    assert_eq!(r.code(), "unknown_sender");
    env.verify();
}

/// A webhook receiver on 127.0.0.1: records every request (headers
/// lower-cased, body) and answers 500 to the first `failures`, then 200.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<Hit>>>,
}

/// One request a receiver took.
#[derive(Debug, Clone)]
struct Hit {
    /// `X-Opsgate-Delivery`.
    delivery: String,
    raw: Vec<u8>,
    body: Value,
    /// What the receiver answered.
    status: u16,
    headers: Vec<(String, String)>,
}

impl Receiver {
    fn start(failures: usize) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if std::io::Read::read_exact(&mut r, &mut body).is_err() {
                    continue;
                }
                let mut seen = log.lock().expect("lock");
                let status = if seen.len() < failures { 500 } else { 200 };
                let delivery = headers
                    .iter()
                    .find(|(k, _)| k == "x-opsgate-delivery")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                seen.push(Hit {
                    delivery,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    raw: body,
                    status,
                    headers,
                });
                drop(seen);
                let _ = std::io::Write::write_all(
                    &mut s,
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { addr, seen }
    }

    /// The requests so far.
    fn requests(&self) -> Vec<Hit> {
        self.seen.lock().expect("lock").clone()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, done: impl Fn(&[Hit]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(&self.requests()) {
            assert!(
                Instant::now() < deadline,
                "waited 30 s for {what}: {:?}",
                self.requests()
                    .iter()
                    .map(|h| (h.delivery.clone(), h.status))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Checks `X-Opsgate-Signature: t=…,v1=…` over `t.body` with `secret`.
fn signed_by(secret: &str, hit: &Hit) -> bool {
    let Some(sig) = hit
        .headers
        .iter()
        .find(|(k, _)| k == "x-opsgate-signature")
        .map(|(_, v)| v.clone())
    else {
        return false;
    };
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length works");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&hit.raw);
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[test]
fn webhooks_are_signed_retried_in_order_resumed_after_a_restart_and_dead_lettered() {
    let receiver = Receiver::start(3);
    // A port nobody listens on: every delivery there fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let policy = format!(
        "{}  webhooks:\n    - name: oncall\n      url: http://{}/hook\n      format: json\n      events: [approval_needed, run_finished, run_failed]\n      secret_file: webhook.secret\n      retry: {{attempts: 10, initial: 300ms, max: 1s}}\n    - name: nowhere\n      url: http://{closed}/hook\n      events: [approval_needed]\n      secret_file: webhook.secret\n      retry: {{attempts: 2, initial: 50ms, max: 50ms}}\n",
        bridge_yaml(None, false),
        receiver.addr
    );
    let env = Env::new(&policy);
    let secret = "whsec-2f9c1e-7b04a9d3e1";
    std::fs::write(env.p("webhook.secret"), format!("{secret}\n")).expect("secret written");
    let mut srv = env.serve(&[]);
    env.submit(env.small_plan("hooked-a", "bob"), "bob");
    // The first delivery fails; the bridge stops in the middle of its
    // retries and starts again.
    receiver.wait_for("a first attempt", |r| !r.is_empty());
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(30)).success());
    let srv = env.serve(&[]);
    receiver.wait_for("a delivery that lands", |r| {
        r.iter().any(|x| x.status == 200)
    });
    let a = receiver.requests();
    let id_a = a[0].delivery.clone();
    assert!(
        id_a.starts_with("oncall:") && id_a.ends_with(":approval_needed"),
        "{id_a}"
    );
    assert_eq!(a.len(), 4, "three failures, then one delivery: {a:?}");
    assert!(
        a.iter().all(|x| x.delivery == id_a),
        "the same delivery each time: {a:?}"
    );
    let body = &a[3].body;
    assert_eq!(body["event"], "approval_needed");
    assert_eq!(body["plan"]["id"], "hooked-a");
    assert_eq!(body["approval"]["needed"], 1, "{body}");
    assert_eq!(body["record"]["type"], "plan_submitted");
    assert!(
        body["summary"]
            .as_str()
            .is_some_and(|s| s.contains("hooked-a")),
        "{body}"
    );
    for x in &a {
        assert!(signed_by(secret, x), "a bad signature: {:?}", x.headers);
        assert!(!signed_by("another secret", x));
    }
    // The next event comes after it, once.
    env.submit(env.small_plan("hooked-b", "bob"), "bob");
    receiver.wait_for("the second plan", |r| r.len() == 5);
    let b = receiver.requests();
    assert_eq!(b[4].body["plan"]["id"], "hooked-b");
    assert_eq!(b[4].status, 200);
    let seq = |id: &str| -> u64 {
        id.split(':')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a seq")
    };
    assert!(seq(&b[4].delivery) > seq(&id_a), "in order");
    // The webhook that can never deliver kept neither back: both of its
    // events are dead letters.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s: Value =
            serde_json::from_str(&env.ok(&["status", "--webhooks", "--json"])).expect("JSON");
        if s[1]["dead_letters"] == 2 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status[0]["name"], "oncall", "{status}");
    assert_eq!(status[0]["dead_letters"], 0, "{status}");
    assert_eq!(status[0]["pending"], 0, "{status}");
    assert_eq!(status[1]["name"], "nowhere", "{status}");
    assert_eq!(status[1]["dead_letters"], 2, "{status}");
    let text = env.ok(&["status", "--webhooks"]);
    assert!(
        text.contains("nowhere") && text.contains("2 dead letter"),
        "{text}"
    );
    let metrics = srv.get("/metrics", None).text();
    assert!(
        metrics.contains("opsgate_webhook_dead_letters{webhook=\"nowhere\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("opsgate_webhook_deliveries_total{webhook=\"oncall\",outcome=\"delivered\"}"),
        "{metrics}"
    );
    // A restart does not deliver again what was delivered.
    drop(srv);
    let _srv = env.serve(&[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        receiver.requests().len(),
        5,
        "delivered again after a restart"
    );
}

/// A bridge with a signing client and a Slack-format webhook for `event`
/// to a receiver that answers 200.
fn slack_webhook(event: &str) -> (Receiver, Env, Server) {
    let receiver = Receiver::start(0);
    let policy = format!(
        "{}  webhooks:\n    - name: slack\n      url: http://{}/services/T0/B0/secret\n      format: slack\n      events: [{event}]\n",
        bridge_yaml(None, true),
        receiver.addr
    );
    let env = Env::new(&policy);
    let srv = env.serve(&[(SECRET_ENV, SECRET)]);
    (receiver, env, srv)
}

#[test]
fn a_slack_approval_message_carries_buttons_whose_press_approves_the_plan() {
    let (receiver, env, srv) = slack_webhook("approval_needed");
    let h = env.submit(env.small_plan("slacked", "bob"), "bob");
    receiver.wait_for("the Slack message", |r| !r.is_empty());
    let msg = receiver.requests()[0].body.clone();
    assert!(
        msg["text"].as_str().is_some_and(|t| t.contains("slacked")),
        "{msg}"
    );
    let buttons = msg["blocks"][1]["elements"].as_array().expect("buttons");
    let ids: Vec<&str> = buttons
        .iter()
        .filter_map(|b| b["action_id"].as_str())
        .collect();
    assert_eq!(ids, ["approve", "reject"]);
    let value: Value =
        serde_json::from_str(buttons[0]["value"].as_str().expect("a value")).expect("JSON");
    assert_eq!(value["plan_id"], "slacked");
    assert_eq!(value["plan_hash"], h.as_str());
    // Alice presses Approve: Slack posts the button back, signed.
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U1"},
        "channel": {"id": "C-oncall"},
        "actions": [{"action_id": "approve", "value": buttons[0]["value"]}],
    })
    .to_string();
    let body = serde_urlencoded::to_string([("payload", payload)]).expect("form encodes");
    let ts = now_secs().to_string();
    let r = http(
        srv.addr,
        "POST",
        "/v1/slack/interactive",
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("X-Slack-Request-Timestamp", ts.clone()),
            ("X-Slack-Signature", slack_signature(SECRET, &ts, &body)),
        ],
        body.as_bytes(),
    )
    .expect("answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let s: Value = serde_json::from_str(&env.ok(&["status", "slacked", "--json"])).expect("JSON");
    assert_eq!(s["status"], "approved", "{s}");
    let approvals = env.approvals();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["approver"], "alice");
    assert_eq!(approvals[0]["channel"], "chat");
}

#[test]
fn a_slack_stop_button_stops_the_run_after_its_current_step() {
    let (receiver, env, srv) = slack_webhook("run_started");
    let (m1, m2, mut run) = approved_two_step_run(&env, &srv, "slack-stop");
    receiver.wait_for("the run_started message", |r| !r.is_empty());
    let msg = receiver.requests()[0].body.clone();
    let stop = &msg["blocks"][1]["elements"][0];
    assert_eq!(stop["action_id"], "stop", "{msg}");
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U2"},
        "actions": [{"action_id": "stop", "value": stop["value"]}],
    })
    .to_string();
    let body = serde_urlencoded::to_string([("payload", payload)]).expect("form encodes");
    let ts = now_secs().to_string();
    let press = |sig: String| {
        http(
            srv.addr,
            "POST",
            "/v1/slack/interactive",
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                ("X-Slack-Request-Timestamp", ts.clone()),
                ("X-Slack-Signature", sig),
            ],
            body.as_bytes(),
        )
        .expect("answered")
    };
    // A forged press does nothing.
    let forged = press(slack_signature("not the secret", &ts, &body));
    assert_eq!(forged.status, 401, "{}", forged.text());
    let r = press(slack_signature(SECRET, &ts, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["text"]
            .as_str()
            .is_some_and(|t| t.contains("stop after its current step asked by carol")),
        "{}",
        r.text()
    );
    assert!(!run.wait().expect("the run ends").success());
    assert!(m1.exists() && !m2.exists(), "only the first step ran");
    let cancels: Vec<Value> = env
        .records()
        .into_iter()
        .filter(|r| r["type"] == "run_cancelled")
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0]["user"], "carol");
    assert!(
        cancels[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Stop pressed in Slack")),
        "{cancels:?}"
    );
}
