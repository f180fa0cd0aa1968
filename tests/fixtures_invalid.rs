//! Every invalid plan and policy fixture produces exactly the error written
//! on its first line (`# expect: LINE:COL: message`), prefixed by its file
//! name, and every valid one loads.

mod common;

use common::{POLICY, expectation, repo, today, yaml_files};
use opsgate::core::plan::load_plan;
use opsgate::core::policy::LoadedPolicy;

/// Loads every fixture in `dir` with `load`, which returns the first error
/// as text, and compares it with the fixture's `# expect:` line.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: unreadable fixtures fail the test"
)]
fn check_invalid_fixtures(dir: &str, at_least: usize, load: impl Fn(&str, &str) -> Option<String>) {
    let files = yaml_files(&repo().join(dir));
    assert!(
        files.len() >= at_least,
        "expected the full fixture set, found {}",
        files.len()
    );
    let mut wrong = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let want = format!("{name}:{}", expectation(&text));
        match load(&name, &text) {
            None => wrong.push(format!("{name}: loaded, but should fail with `{want}`")),
            Some(got) if got != want => wrong.push(format!("{name}:\n  want {want}\n  got  {got}")),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn each_invalid_plan_fails_with_its_exact_error() {
    check_invalid_fixtures("tests/fixtures/plans/invalid", 15, |name, text| {
        load_plan(name, text, &POLICY, today())
            .err()
            .map(|e| e.first().map(ToString::to_string).unwrap_or_default())
    });
}

#[test]
fn each_invalid_policy_fails_with_its_exact_error() {
    check_invalid_fixtures("tests/fixtures/policies/invalid", 8, |name, text| {
        LoadedPolicy::load(Some((name, text)))
            .err()
            .map(|e| e.to_string())
    });
}

#[test]
fn every_example_plan_validates() {
    let files = yaml_files(&repo().join("plans"));
    assert!(files.len() >= 5);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        if let Err(e) = load_plan(&name, &text, &POLICY, today()) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_example_plans_have_the_documented_levels() {
    use opsgate::core::risk::RiskLevel;
    let level = |f: &str| {
        let path = repo().join("plans").join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        load_plan(f, &text, &POLICY, today()).unwrap().risk
    };
    assert_eq!(level("demo-local.yaml"), RiskLevel::Medium);
    assert_eq!(level("critical-drop-namespace.yaml"), RiskLevel::Critical);
    assert_eq!(level("k8s-scale-api.yaml"), RiskLevel::Medium);
}

#[test]
fn the_valid_custom_policy_loads_and_its_rules_apply() {
    use opsgate::core::classify::ClassifyContext;
    use opsgate::core::risk::RiskLevel;
    let path = repo().join("tests/fixtures/policies/valid/custom-rules.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = LoadedPolicy::load(Some(("custom-rules.yaml", &text))).unwrap();
    let ctx = ClassifyContext::default();
    let level = |line: &str| p.rules.classify(line, &ctx).unwrap().risk;
    assert_eq!(level("deployctl status"), RiskLevel::Low);
    assert_eq!(level("deployctl --env prod push"), RiskLevel::High);
    assert_eq!(
        level("deployctl rollback"),
        RiskLevel::Medium,
        "unknown subcommand"
    );
    // The override lowers a built-in HIGH, but only where it matches.
    assert_eq!(
        level("kubectl delete pod api-0 -n staging"),
        RiskLevel::Medium
    );
    assert_eq!(
        level("kubectl delete deploy api -n staging"),
        RiskLevel::High
    );
    // Safeguards still apply on top of an override.
    assert_eq!(level("kubectl delete pod api-0 -n prod"), RiskLevel::High);
    assert_eq!(level("kc get pods"), RiskLevel::Low, "user alias");
    assert_eq!(p.policy.approvals.required.critical, 3);
    assert_ne!(p.hash, POLICY.hash);
}
