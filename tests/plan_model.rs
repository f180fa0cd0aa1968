//! The plan model: the hash is independent of YAML layout, comments and key
//! order, and changes with any change of content; parameters are
//! substituted before hashing and classification; the plan's risk is its
//! highest step's.

mod common;

use std::collections::BTreeMap;

use common::{POLICY, plan, today};
use opsgate::core::plan::{parse_doc, review};
use opsgate::core::risk::RiskLevel;

const BASE: &str = r#"
id: api-scale
title: Fix slow API response
author: bob
target: {kube_context: staging, namespace: api}
params: {replicas: 5}
steps:
  - name: scale up
    run: kubectl scale deployment/api --replicas={{replicas}} -n staging
    timeout: 2m
    pre_checks: [{name: exists, run: kubectl get deploy/api -n staging}]
    post_checks:
      - name: rolled out
        run: kubectl rollout status deploy/api -n staging
        retry: {attempts: 5, interval: 5s}
        expect: {exit_code: 0, stdout_contains: successfully}
    rollback: {run: kubectl scale deployment/api --replicas=3 -n staging}
rollback:
  method: Roll back
  steps: [{run: kubectl rollout undo deployment/api -n staging}]
"#;

/// The same plan: block style, other key order, comments, other quoting,
/// other spellings of the same durations, defaults written out.
const REFORMATTED: &str = r#"
# A comment that changes nothing.
steps:
  - rollback:
      run: "kubectl scale deployment/api --replicas=3 -n staging"
    post_checks:
      - expect:
          stdout_contains: 'successfully'
          exit_code: 0
        retry:
          interval: 5000ms
          attempts: 5
        run: kubectl rollout status deploy/api -n staging
        name: rolled out
        timeout: 1m          # the default, written out
    pre_checks:
      - run: kubectl get deploy/api -n staging
        name: exists
    timeout: 120s
    run: >-
      kubectl scale deployment/api --replicas={{ replicas }} -n staging
    name: scale up
params:
  replicas: "5"
target:
  namespace: api
  kube_context: staging
author: bob
title: Fix slow API response
id: api-scale
rollback:
  steps:
    - run: kubectl rollout undo deployment/api -n staging
  method: Roll back
"#;

#[test]
fn a_reformatted_plan_has_the_same_hash() {
    let a = plan(BASE).unwrap();
    let b = plan(REFORMATTED).unwrap();
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.hash, b.hash);
    assert!(a.hash.as_str().starts_with("sha256:"));
}

#[test]
fn any_changed_value_changes_the_hash() {
    let base = plan(BASE).unwrap().hash;
    let edits = [
        ("id: api-scale", "id: api-scale-2"),
        (
            "title: Fix slow API response",
            "title: Fix slow API responses",
        ),
        ("author: bob", "author: alice"),
        ("kube_context: staging", "kube_context: staging-2"),
        ("replicas: 5", "replicas: 6"),
        ("timeout: 2m", "timeout: 3m"),
        ("attempts: 5", "attempts: 4"),
        ("interval: 5s", "interval: 6s"),
        ("stdout_contains: successfully", "stdout_contains: done"),
        ("--replicas=3", "--replicas=2"),
        ("method: Roll back", "method: Roll it back"),
        ("name: exists", "name: present"),
        ("rollout undo deployment/api", "rollout undo deployment/web"),
    ];
    let mut seen = vec![base.clone()];
    for (from, to) in edits {
        assert!(BASE.contains(from), "edit `{from}` must apply");
        let changed = plan(&BASE.replacen(from, to, 1)).unwrap().hash;
        assert!(
            !seen.contains(&changed),
            "`{from}` -> `{to}` did not change the hash"
        );
        seen.push(changed);
    }
}

#[test]
fn parameters_are_substituted_before_classification_and_hashing() {
    let p = plan(BASE).unwrap();
    assert_eq!(
        p.plan.steps[0].action.command_line(),
        "kubectl scale deployment/api --replicas=5 -n staging"
    );
    // A parameter value is part of the command the classifier sees.
    let sneaky = BASE.replace(
        "params: {replicas: 5}",
        "params: {replicas: '5 && kubectl delete ns prod'}",
    );
    let q = plan(&sneaky).unwrap();
    assert_eq!(
        q.risk,
        RiskLevel::Critical,
        "a command smuggled in a parameter"
    );
}

#[test]
fn modifying_a_parameter_makes_a_new_plan() {
    let doc = parse_doc("plan.yaml", BASE).unwrap();
    let none = BTreeMap::new();
    let a = review(&doc, "plan.yaml", BASE, &POLICY, today(), &none).unwrap();
    let five_to_seven = BTreeMap::from([("replicas".to_string(), "7".to_string())]);
    let b = review(&doc, "plan.yaml", BASE, &POLICY, today(), &five_to_seven).unwrap();
    assert_ne!(a.hash, b.hash);
    assert!(
        b.plan.steps[0]
            .action
            .command_line()
            .contains("--replicas=7")
    );
    let unknown = BTreeMap::from([("replica".to_string(), "7".to_string())]);
    let e = review(&doc, "plan.yaml", BASE, &POLICY, today(), &unknown).unwrap_err();
    assert!(e.to_string().contains("no such parameter"), "{e}");
}

#[test]
fn plan_risk_is_the_highest_of_the_steps_and_their_rollbacks() {
    let text = r#"
id: mixed
title: Mixed levels
steps:
  - {name: look, run: kubectl get pods -n staging}
  - {name: restart, run: kubectl rollout restart deploy/api -n staging}
rollback:
  steps: [{run: kubectl delete pod -l app=api -n staging}]
"#;
    let p = plan(text).unwrap();
    assert_eq!(p.steps[0].action.risk, RiskLevel::Low);
    assert_eq!(p.steps[1].action.risk, RiskLevel::Medium);
    assert_eq!(p.rollback[0].risk, RiskLevel::High);
    // The rollback runs on the same approval: it sets the plan's level.
    assert_eq!(p.risk, RiskLevel::High);
    assert_eq!(
        p.risk_set_by_rollback.as_deref(),
        Some("rollback step `rollback 1`")
    );
}

#[test]
fn the_target_namespace_counts_as_the_commands_scope() {
    let text = r#"
id: target-prod
title: Restart in the target namespace
target: {namespace: production}
steps:
  - {name: restart, run: kubectl rollout restart deploy/api, rollback: {run: kubectl rollout undo deploy/api}}
"#;
    assert_eq!(plan(text).unwrap().risk, RiskLevel::High);
}

#[test]
fn rollback_none_with_a_reason_satisfies_the_rollback_rule() {
    let text = r#"
id: no-way-back
title: Cannot be undone
steps:
  - {name: restart, run: systemctl restart nginx}
rollback: {none: restarting is its own undo}
"#;
    assert_eq!(plan(text).unwrap().risk, RiskLevel::Medium);
}

#[test]
fn a_plan_without_an_id_is_named_from_title_and_date() {
    let text = "title: Rotate the logs!\nsteps: [{name: look, run: ls /var/log}]\n";
    assert_eq!(plan(text).unwrap().plan.id, "rotate-the-logs-20260126");
}

#[test]
fn all_problems_are_reported_in_file_order() {
    let text = r#"
id: many-problems
title: Many problems
steps:
  - {name: a, run: "kubectl get {{ns}}"}
  - {name: a, run: ls}
  - name: b
    run: kubectl scale deploy/api --replicas=2
"#;
    let e = plan(text).unwrap_err();
    let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("plan.yaml:5:33: step `a`: parameter `ns`"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("plan.yaml:6:12: duplicate step name `a`"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("plan.yaml:7:11: step `b` is MEDIUM"),
        "{}",
        lines[2]
    );
}

#[test]
fn every_example_plan_reads_back_from_its_json_form_unchanged() {
    let files = common::yaml_files(&common::repo().join("plans"));
    assert!(files.len() >= 5, "{files:?}");
    let mut with_override = false;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let cp = opsgate::core::plan::load_plan("p.yaml", &text, &POLICY, today()).unwrap();
        let json = serde_json::to_value(&cp.plan).unwrap();
        let back = opsgate::core::plan::Plan::from_json(json).unwrap();
        assert_eq!(back, cp.plan, "{}", f.display());
        assert_eq!(back.hash(), cp.hash, "{}", f.display());
        with_override |= back.production_override.is_some();
    }
    // And a plan with every optional part, including an override.
    let text = format!("{BASE}override: {{reason: incident 42}}\n");
    let cp = plan(&text).unwrap();
    let back =
        opsgate::core::plan::Plan::from_json(serde_json::to_value(&cp.plan).unwrap()).unwrap();
    assert_eq!(back, cp.plan);
    assert_eq!(
        back.production_override.map(|o| o.reason).as_deref(),
        Some("incident 42")
    );
    assert!(!with_override, "no example plan asks for an override");
}

#[test]
fn a_bare_number_is_still_not_a_duration_in_a_plan_file() {
    let text = BASE.replacen("timeout: 2m", "timeout: 300", 1);
    assert_ne!(text, BASE, "BASE has a `timeout: 2m`");
    let e = plan(&text).unwrap_err().to_string();
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn an_applied_manifest_is_read_through_the_edge_and_hashed_with_the_plan() {
    use opsgate::core::plan::{Action, native::KubeVerb, parse_doc, review_with};
    let text = "id: cm\ntitle: Apply a config map\nauthor: a\ntarget: {namespace: staging}\nsteps:\n  - name: apply it\n    kube: {op: apply, manifest: cm.yaml}\nrollback: {none: test}\n";
    // The core reads no file: without a reader, the plan says so.
    let err = common::plan(text).unwrap_err().to_string();
    assert!(
        err.contains("field `manifest`") && err.contains("is not read here"),
        "{err}"
    );

    let doc = parse_doc("dir/plan.yaml", text).unwrap();
    let load = |data: &'static str| {
        let read = move |p: &std::path::Path| -> Result<String, String> {
            assert_eq!(
                p,
                std::path::Path::new("dir/cm.yaml"),
                "relative to the plan file"
            );
            Ok(format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: {data}}}\n"
            ))
        };
        let digest = |w: &str| -> Result<opsgate::core::plan::LocalFile, String> {
            Err(format!("{w}: no files here"))
        };
        review_with(
            &doc,
            "dir/plan.yaml",
            text,
            &common::POLICY,
            common::today(),
            &Default::default(),
            &opsgate::core::plan::PlanReader {
                read: &read,
                digest: &digest,
            },
        )
        .unwrap()
    };
    let a = load("fast");
    let Action::Kube(k) = &a.plan.steps[0].action else {
        panic!("not a kube action: {:?}", a.plan.steps[0].action);
    };
    assert_eq!(
        (k.kind.as_str(), k.name.as_str(), k.namespace.as_deref()),
        ("ConfigMap", "settings", Some("staging"))
    );
    assert!(matches!(&k.verb, KubeVerb::Apply { content, .. } if content.contains("mode: fast")));
    // Another manifest is another plan: the approval cannot carry over.
    assert_ne!(a.hash, load("slow").hash);
    assert_eq!(a.hash, load("fast").hash);
}
