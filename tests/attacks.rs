//! The attacks of the hardening issue, each reproduced through the binary
//! against a real log and real processes. Every test here failed before its
//! fix (checked by reverting the fix); the item number of the issue is in
//! each test's comment.

mod common;

use common::env::*;

// ---------------------------------------------------------------------------
// 3. A rollback is counted in the plan's risk.

/// A MEDIUM step whose rollback shreds a file: one approval ran the
/// shredding under `allow_critical: false`. The plan is CRITICAL now, set
/// by its rollback, and refused outright.
#[test]
fn a_rollback_sets_the_plan_level_and_a_critical_rollback_is_refused() {
    let env = Env::new(None);
    std::fs::write(env.p("precious"), "data").expect("file written");
    let plan = env.plan(
        "plan.yaml",
        "id: sneaky
title: a harmless touch
author: alice
steps:
  - {name: touch, run: touch @D@/marker, rollback: {run: rm -f @D@/marker}}
rollback:
  steps:
    - {name: cleanup, run: shred -u @D@/precious}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(
        out.contains("CRITICAL") && out.contains("(set by rollback step `cleanup`)"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "show", path(&plan), "--json"])).expect("JSON");
    assert_eq!(json["risk"], "CRITICAL", "{json}");
    assert_eq!(json["risk_set_by_rollback"], "rollback step `cleanup`");
    let submitted: serde_json::Value =
        serde_json::from_str(&env.ok(&["submit", path(&plan), "--as", "alice", "--json"]))
            .expect("JSON");
    assert_eq!(submitted["risk"], "CRITICAL");
    env.refused(
        &["approve", "sneaky", "--as", "bob"],
        "safety.allow_critical is false",
    );
    env.refused(&["run", "sneaky", "--rollback-on-failure"], "may not run");
    assert!(env.p("precious").exists(), "the rollback ran");
}

/// A step's own rollback counts too, and the explanation names it.
#[test]
fn a_step_rollback_above_its_step_sets_the_plan_level() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: step-undo
title: t
author: alice
steps:
  - {name: stage, run: touch @D@/staged, rollback: {run: rm -rf @D@/tree}}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    assert!(
        out.contains("risk HIGH") && out.contains("(set by the rollback of step `stage`)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// 16. Control and bidi characters are shown escaped wherever a command is.

/// A carriage return makes `rm -rf` render as `kubectl scale` on a
/// terminal; a right-to-left override reverses what follows it; U+0085 and
/// a form feed break lines. `plan show` prints every one escaped.
#[test]
fn plan_show_escapes_control_and_bidi_characters() {
    let env = Env::new(None);
    let plan = env.plan(
        "plan.yaml",
        "id: disguise
title: \"scale \\u202Eipa\"
author: alice
steps:
  - name: \"scale\\rnothing\"
    run: \"rm -rf @D@/victim\\rkubectl scale deploy/api --replicas=3\"
    rollback: {run: \"echo undo\\u0085rm -rf /\\fx\"}
",
    );
    let out = env.ok(&["plan", "show", path(&plan)]);
    for hidden in ['\r', '\u{202e}', '\u{85}', '\u{c}'] {
        assert!(
            !out.contains(hidden),
            "{hidden:?} reached the output: {out}"
        );
    }
    // JSON is data: it carries the command exactly, for a program to read.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "show", path(&plan), "--json"])).expect("JSON");
    assert_eq!(
        json["steps"][0]["command"],
        env.subst("rm -rf @D@/victim\rkubectl scale deploy/api --replicas=3")
    );
    assert!(
        out.contains("rm -rf ") && out.contains("victim\\rkubectl scale"),
        "{out}"
    );
    assert!(out.contains("scale \\u{202e}ipa"), "{out}");
    assert!(out.contains("echo undo\\u{85}rm -rf /\\u{c}x"), "{out}");
}
