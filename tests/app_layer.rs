//! The application layer as a door uses it: one `App` for the life of the
//! TUI (or the bridge), its runs sharing one set of native backends, so a
//! circuit breaker opened by one run is still open for the next.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

use opsgate::app::App;
use opsgate::app::start::Target;
use opsgate::audit::{AuditLog, Channel, Sealer};
use opsgate::core::identity::Actor;
use opsgate::core::policy::LoadedPolicy;

/// A long-lived `App` under `policy` over a fresh log in a temporary
/// directory.
fn app(policy: &str) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = LoadedPolicy::load(Some(("policy.yaml", policy))).expect("policy loads");
    let log = AuditLog::open(
        &dir.path().join("audit.jsonl"),
        Sealer::Sha256,
        Default::default(),
    )
    .expect("log");
    (dir, App::long_lived(policy, log, Sealer::Sha256))
}

/// Writes plan `id` (authored by `a`, one step running `run`) beside the
/// log, submits it as `a` and returns its file.
fn submit(
    dir: &tempfile::TempDir,
    app: &App,
    id: &str,
    title: &str,
    run: &str,
) -> std::path::PathBuf {
    let path = dir.path().join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!("id: {id}\ntitle: {title}\nauthor: a\nsteps:\n  - {{name: s, run: '{run}'}}\nrollback: {{none: a test}}\n"),
    )
    .expect("plan written");
    let cp = opsgate::app::plans::load(&path, &app.policy, &[]).expect("plan loads");
    app.submit(&cp, &Actor::claimed("a"), Channel::Cli)
        .expect("submitted");
    path
}

/// Starts a run of the submitted plan `id` as `a` from the TUI.
fn begin(app: &App, id: &str) -> opsgate::app::Result<opsgate::app::start::Started> {
    app.begin(
        Target::Submitted { id, hash: None },
        ("a", Channel::Tui),
        false,
        false,
    )
}

/// The reason a decision was refused for, if it was.
fn refused_for<T>(r: &opsgate::app::Result<T>) -> Option<opsgate::app::Reason> {
    r.as_ref().err().and_then(|e| e.refusal()).map(|r| r.reason)
}

#[test]
fn runs_started_through_one_app_share_its_backends() {
    let (dir, app) = app("execution: {auto_approve_low_risk: true}\n");
    let mut backends = Vec::new();
    for id in ["one", "two"] {
        submit(&dir, &app, id, "t", "true");
        let started = begin(&app, id).expect("the LOW plan starts");
        backends.push(std::sync::Arc::clone(&started.start.backends));
    }
    assert!(
        std::sync::Arc::ptr_eq(&backends[0], &backends[1]),
        "each run made its own backends (and breakers)"
    );
    assert!(std::sync::Arc::ptr_eq(&backends[0], &app.backends));
}

/// A long-lived door that has read the log (the TUI's reload) must still
/// refuse to decide or run on it once an earlier record is rewritten in
/// place: the incremental cache reads only appended bytes, so deciding
/// through it would append to, and run on, a broken log.
#[test]
fn a_log_rewritten_in_place_refuses_the_tuis_decisions_and_runs() {
    use opsgate::app::decide::Request;
    let (dir, app) = app("execution: {auto_approve_low_risk: true}\n");
    let path = submit(&dir, &app, "p", "original", "true");
    // The TUI reloads: the cache has read every record.
    opsgate::tui::effects::reload(&app, &[path], &Default::default()).expect("reload");
    // Someone with write access rewrites the submission, same length.
    let log_path = app.log.path();
    let text = std::fs::read_to_string(log_path).expect("log reads");
    assert!(text.contains("original"));
    std::fs::write(log_path, text.replacen("original", "0riginal", 1)).expect("rewritten");

    let broken = |r: Result<(), opsgate::app::Error>| {
        matches!(
            r,
            Err(opsgate::app::Error::Audit(
                opsgate::audit::AuditError::Broken { .. }
            ))
        )
    };
    let granted = app
        .grant(&Request::new("p", &Actor::claimed("b"), Channel::Tui))
        .map(drop);
    assert!(broken(granted), "an approval was recorded on a broken log");
    let started = begin(&app, "p").map(drop);
    assert!(broken(started), "a run started on a broken log");
}

/// The bridge's metadata rules bind every chat approval, not only those a
/// door remembered to give its chat facts: a chat decision without them
/// meets no rule on those facts (fail closed).
#[test]
fn a_chat_approval_without_its_facts_meets_no_metadata_rule() {
    use opsgate::app::Reason;
    use opsgate::app::decide::{ChatFacts, Request};
    let (dir, app) =
        app("bridge:\n  metadata_rules:\n    - {level: LOW, key: client, op: eq, value: bot}\n");
    submit(&dir, &app, "p", "t", "touch /tmp/x");
    let carol = Actor::claimed("carol");
    let refused = app.grant(&Request::new("p", &carol, Channel::Chat));
    assert_eq!(
        refused_for(&refused),
        Some(Reason::MetadataRule),
        "{refused:?}"
    );
    // Nor does the client's metadata stand in for the fact.
    let claimed = Request {
        metadata: [("client".to_owned(), serde_json::json!("bot"))].into(),
        ..Request::new("p", &carol, Channel::Chat)
    };
    let refused = app.grant(&claimed);
    assert_eq!(
        refused_for(&refused),
        Some(Reason::MetadataRule),
        "{refused:?}"
    );
    // With the facts, the rule is met.
    let req = Request {
        chat: Some(ChatFacts {
            client: "bot",
            sender: "U1",
        }),
        ..Request::new("p", &carol, Channel::Chat)
    };
    app.grant(&req).expect("the rule is met");
}
