//! The files under `deploy/`: the Prometheus alert rules are checked and
//! unit-tested by the real `promtool` (Debian's `prometheus` package,
//! installed by `scripts/install-test-deps.sh`), the unit tests are shown
//! to fail when a rule is weakened, every metric a rule reads is one the
//! bridge serves, and the systemd unit and Kubernetes manifests say what
//! `docs/operations.md` promises.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use tower::ServiceExt;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `promtool ARGS` in `dir`: success, and what it printed.
fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (scripts/install-test-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let dir = repo("deploy/prometheus");
    let (ok, text) = promtool(&dir, &["check", "rules", "alerts.yaml"]);
    assert!(ok, "promtool check rules: {text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let (ok, text) = promtool(&dir, &["test", "rules", "alerts.test.yaml"]);
    assert!(ok, "promtool test rules: {text}");
}

#[test]
fn the_alert_tests_fail_when_a_rule_is_weakened() {
    let rules = read("deploy/prometheus/alerts.yaml");
    let tests = read("deploy/prometheus/alerts.test.yaml");
    // Each weakening must be caught by some test case.
    for (from, to) in [
        ("opsgate_policy_adopted == 0", "opsgate_policy_adopted == 2"),
        (
            "opsgate_audit_log_poisoned == 1",
            "opsgate_audit_log_poisoned == 2",
        ),
        (
            "up{job=\"opsgate-bridge\"} == 0\n        for: 2m",
            "up{job=\"opsgate-bridge\"} == 0\n        for: 10m",
        ),
        ("> (14.4 * 0.001)", "> (14.4 * 0.01)"),
        ("[5m])) > 0", "[5m])) > 5"),
        (
            "increase(opsgate_audit_append_failures_total[5m]) > 0",
            "increase(opsgate_audit_append_failures_total[5m]) > 3",
        ),
        (
            "rate(opsgate_bridge_request_seconds_bucket[10m]))) > 0.25",
            "rate(opsgate_bridge_request_seconds_bucket[10m]))) > 1",
        ),
        (
            "rate(opsgate_audit_append_seconds_bucket[10m]))) > 0.1",
            "rate(opsgate_audit_append_seconds_bucket[10m]))) > 1",
        ),
        ("{state=\"open\"} == 1", "{state=\"open\"} == 2"),
        ("[30m]) > 5", "[30m]) > 50"),
        ("for: 4h", "for: 8h"),
        (
            "increase(opsgate_webhook_dead_letters[15m]) > 0",
            "increase(opsgate_webhook_dead_letters[15m]) > 1",
        ),
    ] {
        assert!(rules.contains(from), "alerts.yaml no longer has `{from}`");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("alerts.yaml"), rules.replacen(from, to, 1))
            .expect("rules written");
        std::fs::write(dir.path().join("alerts.test.yaml"), &tests).expect("tests written");
        let (ok, text) = promtool(dir.path(), &["test", "rules", "alerts.test.yaml"]);
        assert!(
            !ok,
            "the unit tests pass with `{from}` weakened to `{to}`: {text}"
        );
    }
}

/// The bridge's `/metrics`, from its router over a fresh log.
fn served_metrics() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = opsgate::audit::AuditLog::open(
        &dir.path().join("audit.jsonl"),
        opsgate::audit::Sealer::Sha256,
        Default::default(),
    )
    .expect("log");
    let policy = opsgate::core::policy::LoadedPolicy::embedded().expect("policy");
    let app = opsgate::app::App::long_lived(policy, log, opsgate::audit::Sealer::Sha256);
    let router =
        opsgate::bridge::router(Arc::new(opsgate::bridge::Bridge::new(app).expect("bridge")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let req = axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = router.oneshot(req).await.expect("answered");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[test]
fn every_metric_the_alerts_read_is_served() {
    let rules = read("deploy/prometheus/alerts.yaml");
    let names: std::collections::BTreeSet<&str> = rules
        .match_indices("opsgate_")
        .map(|(i, _)| {
            let rest = &rules[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| n.len() > "opsgate_".len())
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    let text = served_metrics();
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| {
            !text.contains(&format!("# TYPE {n} "))
                && !text.contains(&format!("{n}{{"))
                && !text.contains(&format!("{n} "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "alerts read metrics the bridge does not serve: {missing:?}\n{text}"
    );
}

#[test]
fn the_systemd_unit_notifies_has_a_watchdog_and_bounds_memory() {
    let unit = read("deploy/systemd/opsgate-bridge.service");
    let has = |key: &str, value: &str| {
        unit.lines().any(|l| {
            l.trim() == format!("{key}={value}")
                || (value.is_empty() && l.starts_with(&format!("{key}=")))
        })
    };
    assert!(has("Type", "notify"), "{unit}");
    assert!(has("NotifyAccess", "main"), "{unit}");
    assert!(has("WatchdogSec", ""), "{unit}");
    assert!(has("MemoryMax", ""), "{unit}");
    assert!(has("Restart", "on-failure"), "{unit}");
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with("opsgate serve")),
        "{unit}"
    );
    // systemd stops waiting after TimeoutStopSec: longer than the drain.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > 30,
        "TimeoutStopSec={stop} is not longer than the 30 s drain"
    );
}

#[test]
fn the_kubernetes_deployment_probes_the_bridge_and_bounds_it() {
    let text = read("deploy/kubernetes/opsgate-bridge.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("the manifests parse");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "Ingress"]);
    let deploy = &docs[0];
    assert_eq!(deploy["spec"]["replicas"], 1, "one replica on a file log");
    let pod = &deploy["spec"]["template"]["spec"];
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_u64()
            .is_some_and(|s| s > 30),
        "longer than the drain: {pod}"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8700);
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c}");
    assert!(c["resources"]["requests"]["cpu"].is_string(), "{c}");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["serve", "--listen", "0.0.0.0:8700"]);
    // The ingress exposes the API only, with TLS.
    let ingress = &docs[2];
    assert!(ingress["spec"]["tls"].is_array(), "{ingress}");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/v1"
    );
}
