//! The bridge's request handling, without a socket: each request goes to
//! the router with `tower::ServiceExt::oneshot`, over a real audit log in
//! a temporary directory. The socket tests (`tests/bridge.rs`) cover the
//! server around it (limits, signals, the real binary).

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use opsgate::app::App;
use opsgate::audit::{AuditLog, Channel, Event, Sealer};
use opsgate::core::policy::LoadedPolicy;

const TOKEN: &str = "tok-router-1";

/// A bridge over a fresh log, with `plan` (authored by alice) submitted.
struct Fixture {
    _dir: tempfile::TempDir,
    router: axum::Router,
    log: std::path::PathBuf,
    hash: String,
    seq: u64,
}

/// The bridge's policy, with `extra` laid over it (top-level sections).
fn bridge_policy(extra: &str) -> LoadedPolicy {
    let policy_text = format!(
        "approvals: {{separation_of_duties: true}}\nbridge:\n  rate_limit: {{per_sender: 1000/min, per_client: 1000/min}}\n  clients:\n    - name: bot\n      token_sha256: \"{}\"\n      senders: {{U1: alice, U2: carol}}\n{extra}",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    );
    LoadedPolicy::load(Some(("policy.yaml", &policy_text))).expect("policy loads")
}

fn fixture(extra_bridge: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = bridge_policy(extra_bridge);
    let plan_path = dir.path().join("plan.yaml");
    std::fs::write(
        &plan_path,
        format!(
            "id: p1\ntitle: a small plan\nauthor: alice\nsteps:\n  - name: touch\n    run: touch {}\nrollback: {{none: a test}}\n",
            dir.path().join("x").display()
        ),
    )
    .expect("plan written");
    let log_path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&log_path, Sealer::Sha256, Default::default()).expect("log");
    let app = App::long_lived(policy, log, Sealer::Sha256);
    let cp = opsgate::app::plans::load(&plan_path, &app.policy, &[]).expect("plan loads");
    let (seq, _) = app
        .submit(
            &cp,
            &opsgate::core::identity::Actor::claimed("alice"),
            Channel::Cli,
        )
        .expect("submitted");
    let bridge = opsgate::bridge::Bridge::new(app).expect("bridge");
    Fixture {
        router: opsgate::bridge::router(Arc::new(bridge)),
        log: log_path,
        hash: cp.hash.to_string(),
        seq,
        _dir: dir,
    }
}

impl Fixture {
    fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let resp = self
                .router
                .clone()
                .oneshot(req.body(body).expect("request"))
                .await
                .expect("the router answers");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            (status, value)
        })
    }

    fn decide(&self, body: Value) -> (StatusCode, Value) {
        self.send("POST", "/v1/plans/p1/decision", Some(TOKEN), Some(body))
    }

    fn records(&self) -> Vec<Event> {
        let log = AuditLog::open(&self.log, Sealer::Sha256, Default::default()).expect("log");
        log.ledger().expect("the log verifies");
        std::fs::read_to_string(&self.log)
            .expect("log reads")
            .lines()
            .map(|l| {
                serde_json::from_str::<opsgate::audit::Record>(l)
                    .expect("a record")
                    .event
            })
            .collect()
    }
}

#[test]
fn every_route_but_health_needs_a_known_token() {
    let f = fixture("");
    assert_eq!(f.send("GET", "/healthz", None, None).0, StatusCode::OK);
    for (method, uri) in [("GET", "/v1/plans"), ("GET", "/v1/plans/p1")] {
        let (status, body) = f.send(method, uri, None, None);
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
        let (status, _) = f.send(method, uri, Some("wrong"), None);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = f.send(
        "POST",
        "/v1/plans/p1/decision",
        Some("wrong"),
        Some(json!({})),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, body) = f.send("GET", "/nowhere", Some(TOKEN), None);
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = f.send("DELETE", "/v1/plans", Some(TOKEN), None);
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn the_plans_list_shows_the_submission_to_bind_to() {
    let f = fixture("");
    let (status, body) = f.send("GET", "/v1/plans", Some(TOKEN), None);
    assert_eq!(status, StatusCode::OK, "{body}");
    let plan = &body[0];
    assert_eq!(plan["id"], "p1");
    assert_eq!(plan["status"], "pending");
    assert_eq!(plan["plan_hash"], f.hash.as_str());
    assert_eq!(plan["submission_seq"], f.seq);
    let (status, body) = f.send("GET", "/v1/plans?status=approved", Some(TOKEN), None);
    assert_eq!(
        (status, body.as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
}

#[test]
fn a_yes_is_recorded_with_the_mapped_approver_and_facts() {
    let f = fixture("");
    let (status, body) = f.decide(
        json!({"decision": "yes", "plan_hash": f.hash, "submission_seq": f.seq, "sender_id": "U2"}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approver"], "carol");
    let granted = f
        .records()
        .into_iter()
        .find_map(|e| match e {
            Event::ApprovalGranted(d) => Some(d),
            _ => None,
        })
        .expect("the approval is in the log");
    assert_eq!(granted.approver, "carol");
    assert_eq!(granted.channel, Channel::Chat);
    assert_eq!(granted.metadata["client"], "bot");
    assert_eq!(granted.metadata["sender_id"], "U2");
}

#[test]
fn refusals_map_to_their_codes_and_are_recorded() {
    let f = fixture("");
    // The author may not approve: 403 self_approval, recorded.
    let (status, body) =
        f.decide(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U1"}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{body}"
    );
    // Another hash: 409 stale_plan_hash.
    let stale = format!("sha256:{}", "0".repeat(64));
    let (status, body) =
        f.decide(json!({"decision": "yes", "plan_hash": stale, "sender_id": "U2"}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("stale_plan_hash")),
        "{body}"
    );
    // An earlier submission: 409 stale_submission.
    let (status, body) = f.decide(
        json!({"decision": "yes", "plan_hash": f.hash, "submission_seq": 0, "sender_id": "U2"}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("stale_submission")),
        "{body}"
    );
    let codes: Vec<String> = f
        .records()
        .into_iter()
        .filter_map(|e| match e {
            Event::Refused {
                code,
                channel: Channel::Chat,
                ..
            } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        ["self_approval", "stale_plan_hash", "stale_submission"]
    );
    // No plan: 404, nothing recorded; an unmapped sender: 403.
    let (status, body) = f.send(
        "POST",
        "/v1/plans/nope/decision",
        Some(TOKEN),
        Some(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U2"})),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    let (status, body) =
        f.decide(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U9"}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("unknown_sender")),
        "{body}"
    );
    // Malformed: 400.
    let (status, body) =
        f.decide(json!({"decision": "maybe", "plan_hash": f.hash, "sender_id": "U2"}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed")),
        "{body}"
    );
    let (status, body) =
        f.decide(json!({"decision": "no", "plan_hash": f.hash, "sender_id": "U2"}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed")),
        "{body}"
    );
    assert_eq!(
        f.records().len(),
        5,
        "only the policy's adoption, the submission and three refusals"
    );
}

#[test]
fn a_metadata_rule_is_checked_by_the_application_and_recorded() {
    let f = fixture(
        "  metadata_rules:\n    - {level: LOW, key: channel_id, op: eq, value: C-oncall}\n",
    );
    let (status, body) = f.decide(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U2", "metadata": {"channel_id": "C-random"}}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_permitted")),
        "{body}"
    );
    let refused = f.records().into_iter().find_map(|e| match e {
        Event::Refused { code, user, .. } => Some((code, user)),
        _ => None,
    });
    assert_eq!(
        refused,
        Some(("metadata_rule".to_owned(), "carol".to_owned()))
    );
    let (status, body) = f.decide(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U2", "metadata": {"channel_id": "C-oncall"}}));
    assert_eq!(status, StatusCode::OK, "{body}");
    // A rule never reads a fact from the client's metadata.
    let (status, body) = f.decide(json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U2", "metadata": {"client": "x"}}));
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reserved_metadata_key")),
        "{body}"
    );
}

#[test]
fn a_bridge_under_a_policy_the_log_did_not_adopt_decides_nothing() {
    let f = fixture("");
    // A second bridge on the same log, its host's policy changed.
    let log = AuditLog::open(&f.log, Sealer::Sha256, Default::default()).expect("log");
    let app = App::long_lived(
        bridge_policy("safety: {allow_critical: true}\n"),
        log,
        Sealer::Sha256,
    );
    let other = Fixture {
        router: opsgate::bridge::router(Arc::new(
            opsgate::bridge::Bridge::new(app).expect("bridge"),
        )),
        log: f.log.clone(),
        hash: f.hash.clone(),
        seq: f.seq,
        _dir: tempfile::tempdir().expect("dir"),
    };
    let before = f.records().len();
    let (status, body) = other.decide(
        json!({"decision": "yes", "plan_hash": f.hash, "sender_id": "U2", "submission_seq": f.seq}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("policy_not_adopted")),
        "{body}"
    );
    let new = &f.records()[before..];
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].kind(), "refused");
    assert!(
        !f.records()
            .iter()
            .any(|e| matches!(e, Event::ApprovalGranted(_))),
        "nothing approved"
    );
}
