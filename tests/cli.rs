//! The `opsgate` binary, run as a user would: arguments, output formats,
//! exit codes (0 ok, 1 failure, 2 usage) and policy discovery.

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use common::repo;
use predicates::prelude::*;
use serde_json::Value;

fn opsgate() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("opsgate");
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", common::scratch_state())
        .env_remove("OPSGATE_CONFIG");
    cmd
}

/// Runs a command that must succeed; returns its stdout.
fn stdout_of(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

#[expect(clippy::expect_used, reason = "a test helper: bad JSON fails the test")]
fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

#[test]
fn classify_prints_the_level_and_the_reasons() {
    opsgate()
        .args(["classify", "kubectl", "delete", "ns", "prod"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "⛔ CRITICAL  kubectl delete ns prod",
        ))
        .stdout(predicate::str::contains("kubectl-delete-storage"));
}

#[test]
fn classify_json_names_the_part_and_the_wrappers() {
    let out =
        stdout_of(opsgate().args(["classify", "--json", "--", "sudo sh -c 'rm -rf /etc; ls'"]));
    let v = json(&out);
    assert_eq!(v["command"], "sudo sh -c 'rm -rf /etc; ls'");
    assert_eq!(v["risk"], "CRITICAL");
    assert_eq!(v["reasons"][0]["part"], "rm -rf /etc");
    assert_eq!(v["reasons"][0]["via"], serde_json::json!(["sudo", "sh -c"]));
}

#[test]
fn classify_stdin_answers_every_line_in_order() {
    let mut input = b"kubectl get pods\n\nterraform destroy\n".to_vec();
    input.extend_from_slice(b"echo \xff\xfe\n");
    input.extend_from_slice(b"ls -la");
    let out = opsgate()
        .args(["classify", "--stdin"])
        .write_stdin(input)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let lines: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(json)
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["risk"], "LOW");
    assert_eq!(lines[1]["line"], 2);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("empty command line")
    );
    assert_eq!(lines[2]["risk"], "CRITICAL");
    assert_eq!(lines[3]["line"], 4);
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8")
    );
    assert_eq!(lines[4]["command"], "ls -la");
}

#[test]
fn classify_without_a_command_is_a_usage_error() {
    opsgate()
        .arg("classify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--stdin"));
}

#[test]
fn no_arguments_without_a_terminal_print_help_and_exit_2() {
    opsgate()
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
}

#[test]
fn every_subcommand_help_has_examples() {
    for args in [
        vec!["--help"],
        vec!["classify", "--help"],
        vec!["plan", "validate", "--help"],
        vec!["plan", "show", "--help"],
        vec!["plan", "hash", "--help"],
        vec!["policy", "check", "--help"],
    ] {
        opsgate()
            .args(&args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn plan_validate_accepts_the_example_plans() {
    let mut cmd = opsgate();
    cmd.args(["plan", "validate"]);
    for f in common::yaml_files(&repo().join("plans")) {
        cmd.arg(f);
    }
    cmd.assert()
        .success()
        .stdout(predicate::str::contains("demo-local.yaml: ok  MEDIUM"));
}

#[test]
fn plan_validate_reports_file_line_and_column_and_exits_1() {
    let bad = "tests/fixtures/plans/invalid/undefined-param.yaml";
    opsgate()
        .args(["plan", "validate", "plans/demo-local.yaml", bad])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("demo-local.yaml: ok"))
        .stderr(predicate::str::starts_with(format!(
            "{bad}:7:46: step `scale`: parameter `replicas` is not defined in `params:`"
        )));
}

#[test]
fn a_missing_plan_file_is_named() {
    opsgate()
        .args(["plan", "validate", "no/such/plan.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such/plan.yaml: cannot read"));
}

#[test]
fn plan_show_json_carries_levels_and_the_plan_hash() {
    let out = stdout_of(opsgate().args(["plan", "show", "plans/demo-local.yaml", "--json"]));
    let v = json(&out);
    assert_eq!(v["id"], "demo-local");
    assert_eq!(v["risk"], "MEDIUM");
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["steps"][1]["command"],
        "printf 'replicas=%s\\n' '3' > /tmp/opsgate-demo/app.conf"
    );
    assert_eq!(v["rollback"]["kind"], "steps");
    let hash = stdout_of(opsgate().args(["plan", "hash", "plans/demo-local.yaml"]));
    assert_eq!(String::from_utf8(hash).unwrap().trim(), v["plan_hash"]);
}

#[test]
fn plan_show_renders_steps_checks_rollback_and_hashes_without_colour() {
    opsgate()
        .args(["plan", "show", "plans/k8s-scale-api.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1. MEDIUM    scale up"))
        .stdout(predicate::str::contains(
            "» kube scale Deployment staging/api replicas=5 (context staging)",
        ))
        .stdout(predicate::str::contains("post check rolled out"))
        .stdout(predicate::str::contains(
            "Rollback Scale the deployment back",
        ))
        .stdout(predicate::str::contains("plan hash   sha256:"))
        .stdout(predicate::str::contains("\u{1b}[").not());
}

#[test]
fn policy_check_json_prints_the_hash_and_counts() {
    let out = stdout_of(opsgate().args(["policy", "check", "--json"]));
    let v = json(&out);
    assert!(v["policy_hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["rules"], 0);
    assert!(v["builtin_rules"].as_u64().unwrap() > 50);
    assert_eq!(v["approvals_required"]["CRITICAL"], 2);
}

#[test]
fn a_bad_policy_file_is_reported_with_its_position() {
    opsgate()
        .args([
            "--config",
            "tests/fixtures/policies/invalid/unknown-key.yaml",
            "policy",
            "check",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "unknown-key.yaml:3:3: unknown field `auto_aprove_low_risk`",
        ));
}

#[test]
fn a_named_policy_file_must_exist() {
    opsgate()
        .args(["--config", "missing.yaml", "policy", "check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read `missing.yaml`"));
}

#[test]
fn the_policy_is_found_in_xdg_config_home_and_changes_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("opsgate");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("opsgate.yaml"),
        "rules:\n  - {program: deployctl, subcommand: push, level: HIGH}\n",
    )
    .unwrap();
    let embedded = stdout_of(
        opsgate()
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("nowhere"))
            .args(["policy", "check", "--json"]),
    );
    let custom = stdout_of(
        opsgate()
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .args(["policy", "check", "--json"]),
    );
    let (a, b) = (json(&embedded), json(&custom));
    assert_eq!(a["rules"], 0);
    assert_eq!(b["rules"], 1);
    assert_ne!(a["policy_hash"], b["policy_hash"]);
    opsgate()
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["classify", "deployctl", "push"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("HIGH"));
}
