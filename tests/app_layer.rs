//! The application layer as a door uses it: one `App` for the life of the
//! TUI (or the bridge), its runs sharing one set of native backends, so a
//! circuit breaker opened by one run is still open for the next.

use opsgate::app::App;
use opsgate::app::start::Target;
use opsgate::audit::{AuditLog, Channel, Sealer};
use opsgate::core::policy::LoadedPolicy;

#[test]
fn runs_started_through_one_app_share_its_backends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = LoadedPolicy::load(Some((
        "policy.yaml",
        "execution: {auto_approve_low_risk: true}\n",
    )))
    .expect("policy loads");
    let log = AuditLog::open(
        &dir.path().join("audit.jsonl"),
        Sealer::Sha256,
        Default::default(),
    )
    .expect("log");
    let app = App::long_lived(policy, log, Sealer::Sha256);
    let mut backends = Vec::new();
    for id in ["one", "two"] {
        let path = dir.path().join(format!("{id}.yaml"));
        std::fs::write(
            &path,
            format!("id: {id}\ntitle: t\nauthor: a\nsteps:\n  - {{name: s, run: 'true'}}\nrollback: {{none: a test}}\n"),
        )
        .expect("plan written");
        let cp = opsgate::app::plans::load(&path, &app.policy, &[]).expect("plan loads");
        app.submit(&cp, "a", Channel::Tui).expect("submitted");
        let started = app
            .begin(
                Target::Submitted { id, hash: None },
                ("a", Channel::Tui),
                false,
                false,
            )
            .expect("the LOW plan starts");
        backends.push(std::sync::Arc::clone(&started.start.backends));
    }
    assert!(
        std::sync::Arc::ptr_eq(&backends[0], &backends[1]),
        "each run made its own backends (and breakers)"
    );
    assert!(std::sync::Arc::ptr_eq(&backends[0], &app.backends));
}
