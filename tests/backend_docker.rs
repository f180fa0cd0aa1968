//! The Docker backend against a real dockerd (`scripts/test-env.sh up`):
//! every op and check, dry runs, stop on failure with a rollback that
//! restores the container, drift between submission and run, and bad input.
//! Each test makes its own containers (busybox, `--init` so a stop is quick)
//! and reads their state back from the daemon.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use common::backends::{Cli, TEST_IMAGE, docker_host, runtime, unique};

/// A container of the test image, removed when dropped.
struct Container {
    host: String,
    name: String,
}

fn connect(host: &str) -> Docker {
    runtime().block_on(async {
        Docker::connect_with_host(host)
            .expect("docker client")
            .negotiate_version()
            .await
            .expect("dockerd answers")
    })
}

impl Container {
    /// Starts `sleep 3600`, with a health check that passes when `healthy`.
    fn start(host: &str, healthy: Option<bool>) -> Self {
        let name = unique("web");
        let docker = connect(host);
        runtime().block_on(async {
            let body = ContainerCreateBody {
                image: Some(TEST_IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                healthcheck: healthy.map(|ok| HealthConfig {
                    test: Some(vec!["CMD".into(), if ok { "true" } else { "false" }.into()]),
                    interval: Some(500_000_000),
                    retries: Some(1),
                    ..HealthConfig::default()
                }),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    init: Some(true),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            };
            docker
                .create_container(
                    Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                    body,
                )
                .await
                .expect("container created");
            docker
                .start_container(&name, None)
                .await
                .expect("container started");
        });
        Container {
            host: host.to_owned(),
            name,
        }
    }

    /// `running`, `exited`, … or `gone`.
    fn state(&self) -> String {
        let docker = connect(&self.host);
        runtime().block_on(async {
            match docker.inspect_container(&self.name, None).await {
                Ok(info) => info
                    .state
                    .and_then(|s| s.status)
                    .map_or_else(|| "unknown".into(), |s| s.to_string()),
                Err(_) => "gone".into(),
            }
        })
    }

    fn started_at(&self) -> String {
        let docker = connect(&self.host);
        runtime().block_on(async {
            docker
                .inspect_container(&self.name, None)
                .await
                .expect("inspect")
                .state
                .and_then(|s| s.started_at)
                .unwrap_or_default()
        })
    }

    fn stop(&self) {
        let docker = connect(&self.host);
        runtime().block_on(async {
            docker
                .stop_container(&self.name, None)
                .await
                .expect("stopped from outside");
        });
    }

    /// Waits until the health check has an answer.
    fn wait_health(&self) -> String {
        let docker = connect(&self.host);
        for _ in 0..100 {
            let status = runtime().block_on(async {
                docker
                    .inspect_container(&self.name, None)
                    .await
                    .expect("inspect")
                    .state
                    .and_then(|s| s.health)
                    .and_then(|h| h.status)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            });
            if status == "healthy" || status == "unhealthy" {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no health answer for {}", self.name);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let docker = connect(&self.host);
        runtime().block_on(async {
            let _ = docker
                .remove_container(
                    &self.name,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await;
        });
    }
}

fn cli(host: &str, policy: Option<&str>) -> Cli {
    Cli::new(policy, &[("DOCKER_HOST", host)])
}

#[test]
fn the_example_plan_restarts_a_container_end_to_end() {
    let Some(host) = docker_host() else { return };
    let web = Container::start(&host, None);
    let before = web.started_at();
    let cli = cli(&host, None);
    let plan = common::repo().join("plans/docker-restart-web.yaml");
    let param = format!("container={}", web.name);
    let id = cli.submit_and_approve(&plan.display().to_string(), &[&param]);
    let out = cli.ok(&["run", &id]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(
        out.contains(&format!("  » docker restart {}", web.name)),
        "an API call, not a shell line: {out}"
    );
    assert_eq!(web.state(), "running");
    assert_ne!(web.started_at(), before, "the container was restarted");
    let finished = cli.of_type("step_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["status"], "succeeded");
    // The drift check ran, and the run's record says so.
    assert_eq!(
        cli.of_type("run_started")[0]["drift"],
        "checked 1 target(s)"
    );
}

#[test]
fn every_op_and_check_works_against_the_daemon() {
    let Some(host) = docker_host() else { return };
    let web = Container::start(&host, Some(true));
    let doomed = Container::start(&host, None);
    assert_eq!(web.wait_health(), "healthy");
    let cli = cli(&host, None);
    let plan = cli.write(
        "ops.yaml",
        &format!(
            r#"
id: docker-every-op
title: Every Docker op
author: dave
steps:
  - name: list
    docker: {{op: ps}}
  - name: look
    docker: {{op: inspect, container: {web}}}
    pre_checks:
      - {{name: healthy, docker: {{check: healthy, container: {web}}}}}
  - name: stop it
    docker: {{op: stop, container: {web}}}
    rollback: {{docker: {{op: start, container: {web}}}}}
  - name: start it
    docker: {{op: start, container: {web}}}
    post_checks:
      - {{name: up, docker: {{check: running, container: {web}}}}}
    rollback: {{docker: {{op: start, container: {web}}}}}
  - name: bounce it
    docker: {{op: restart, container: {web}}}
    post_checks:
      - {{name: up again, docker: {{check: running, container: {web}}}}}
    rollback: {{docker: {{op: start, container: {web}}}}}
  - name: drop the other
    docker: {{op: remove, container: {doomed}, force: true}}
rollback: {{none: "the removed container is disposable"}}
"#,
            web = web.name,
            doomed = doomed.name
        ),
    );
    let id = cli.submit_and_approve(&plan, &[]);
    let out = cli.ok(&["run", &id]);
    assert!(out.contains(&web.name), "ps lists the container: {out}");
    assert_eq!(web.state(), "running");
    assert_eq!(doomed.state(), "gone");
    let statuses: Vec<String> = cli
        .of_type("step_finished")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, vec!["succeeded"; 6]);
}

#[test]
fn a_dry_run_changes_nothing() {
    let Some(host) = docker_host() else { return };
    let web = Container::start(&host, None);
    let before = web.started_at();
    let cli = cli(&host, None);
    let plan = cli.write(
        "stop.yaml",
        &format!(
            r#"
id: docker-dry
title: Stop and remove
author: dave
steps:
  - name: stop it
    docker: {{op: stop, container: {web}}}
  - name: remove it
    docker: {{op: remove, container: {web}, force: true}}
rollback: {{none: "test"}}
"#,
            web = web.name
        ),
    );
    cli.ok(&["submit", &plan]);
    let out = cli.ok(&["run", "docker-dry", "--dry-run"]);
    assert!(out.contains("dry run: would stop"), "{out}");
    assert_eq!(web.state(), "running");
    assert_eq!(web.started_at(), before, "not restarted either");
}

#[test]
fn checks_fail_when_the_container_is_not_as_asked() {
    let Some(host) = docker_host() else { return };
    let sick = Container::start(&host, Some(false));
    assert_eq!(sick.wait_health(), "unhealthy");
    let cli = cli(&host, None);
    let plan = cli.write(
        "sick.yaml",
        &format!(
            r#"
id: docker-sick
title: Restart only a healthy container
author: dave
steps:
  - name: bounce it
    docker: {{op: restart, container: {sick}}}
    pre_checks:
      - {{name: healthy, docker: {{check: healthy, container: {sick}}}}}
    rollback: {{docker: {{op: start, container: {sick}}}}}
"#,
            sick = sick.name
        ),
    );
    let before = sick.started_at();
    let id = cli.submit_and_approve(&plan, &[]);
    let (code, out, _) = cli.run(&["run", &id]);
    assert_eq!(code, 1, "{out}");
    let checks = cli.of_type("check_finished");
    assert_eq!(checks[0]["status"], "failed");
    assert!(
        checks[0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("unhealthy"),
        "{checks:?}"
    );
    assert_eq!(cli.of_type("step_finished")[0]["status"], "skipped");
    assert_eq!(sick.started_at(), before, "the step did not run");

    // A container with no health check is not healthy either, and says why.
    let plain = Container::start(&host, None);
    let plan = cli.write(
        "plain.yaml",
        &format!(
            r#"
id: docker-plain
title: Restart only a healthy container
author: dave
steps:
  - name: bounce it
    docker: {{op: restart, container: {plain}}}
    pre_checks:
      - {{name: healthy, docker: {{check: healthy, container: {plain}}}}}
    rollback: {{docker: {{op: start, container: {plain}}}}}
"#,
            plain = plain.name
        ),
    );
    let id = cli.submit_and_approve(&plan, &[]);
    let (code, _, _) = cli.run(&["run", &id]);
    assert_eq!(code, 1);
    let checks = cli.of_type("check_finished");
    let last = checks.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(
        last["output"]
            .as_str()
            .unwrap_or_default()
            .contains("it has no health check"),
        "{last}"
    );
}

#[test]
fn a_failed_step_stops_the_run_and_the_rollback_restores_the_container() {
    let Some(host) = docker_host() else { return };
    let web = Container::start(&host, None);
    let other = Container::start(&host, None);
    let cli = cli(&host, None);
    let plan = cli.write(
        "fails.yaml",
        &format!(
            r#"
id: docker-fails
title: Stop web, then fail
author: dave
steps:
  - name: stop web
    docker: {{op: stop, container: {web}}}
    rollback: {{docker: {{op: start, container: {web}}}}}
  - name: stop other
    docker: {{op: stop, container: {other}}}
    post_checks:
      - {{name: still up, docker: {{check: running, container: {other}}}}}
    rollback: {{docker: {{op: start, container: {other}}}}}
  - name: never
    docker: {{op: remove, container: {web}, force: true}}
rollback: {{none: "step rollbacks only"}}
"#,
            web = web.name,
            other = other.name
        ),
    );
    let id = cli.submit_and_approve(&plan, &[]);
    let (code, out, err) = cli.run(&["run", &id, "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out}{err}");
    let started: Vec<u64> = cli
        .of_type("step_started")
        .iter()
        .filter_map(|r| r["step"].as_u64())
        .collect();
    assert_eq!(started, [1, 2], "the third step never started");
    assert_eq!(cli.of_type("rollback_finished")[0]["status"], "succeeded");
    assert_eq!(web.state(), "running", "the completed step was undone");
    // The failed step's own undo does not run: only completed steps'.
    assert_eq!(other.state(), "exited");
}

#[test]
fn a_container_changed_after_submission_refuses_the_run() {
    let Some(host) = docker_host() else { return };
    let web = Container::start(&host, None);
    let cli = cli(&host, None);
    let plan = common::repo().join("plans/docker-restart-web.yaml");
    let param = format!("container={}", web.name);
    let id = cli.submit_and_approve(&plan.display().to_string(), &[&param]);
    web.stop();
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("/{}: id=", web.name)) && err.contains("state=running → id="),
        "{err}"
    );
    assert!(err.contains("state=exited"), "{err}");
    assert!(cli.of_type("run_started").is_empty(), "nothing ran");
    assert_eq!(web.state(), "exited");

    // Submitted again, for the world as it is now: a new submission, whose
    // approvals start from zero, and then it runs.
    let out = cli.ok(&[
        "submit",
        "--json",
        &plan.display().to_string(),
        "--param",
        &param,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["new"], true, "{out}");
    let (code, _, err) = cli.run(&["run", &id]);
    assert_eq!(code, 3, "the old approval does not carry over: {err}");
    cli.ok(&["approve", &id, "--as", "alice"]);
    let (code, out, err) = cli.run(&["run", &id]);
    // Its pre-check wants the container running: it is not, so the step
    // is skipped and the run fails, honestly, without drift.
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("changed since"), "{err}");
    assert_eq!(cli.of_type("plan_submitted").len(), 2);
}

#[test]
fn a_missing_container_is_refused_at_submission() {
    let Some(host) = docker_host() else { return };
    let cli = cli(&host, None);
    let plan = common::repo().join("plans/docker-restart-web.yaml");
    let name = unique("nobody");
    let (code, out, err) = cli.run(&[
        "submit",
        &plan.display().to_string(),
        "--param",
        &format!("container={name}"),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "step `restart {name}`: field `container`: no such container `{name}`"
        )),
        "{err}"
    );
    assert!(cli.of_type("plan_submitted").is_empty());
}
