//! The Kubernetes backend against a real kube-apiserver
//! (`scripts/test-env.sh up`): the example plan end to end, every op and
//! check, dry runs, stop on failure with a rollback that restores the
//! replicas, drift between submission and run, bad input, and the rating of
//! a native namespace delete.
//!
//! The test server has no controller-manager and no kubelet: Deployments get
//! no pods and no status. Where a rollout must complete, the test acts as the
//! controller and patches the status subresource. Each test makes its own
//! uniquely named objects in namespace `staging` (context `staging`), reads
//! their state back from the API server, and removes them when it ends; only
//! the example plan's test uses the fixed Deployment `api`.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use common::backends::{Cli, kubeconfig, runtime, unique};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The namespace (and the kubeconfig context of the same name) the tests
/// work in.
const NS: &str = "staging";

/// A client of the test API server, in context `staging`, with its own
/// runtime. Every Deployment and ConfigMap it makes through `deploy` (or
/// registers with `forget_later`) is removed when it is dropped, finalizers
/// and all.
struct Cluster {
    rt: tokio::runtime::Runtime,
    client: Client,
    made: RefCell<Vec<(&'static str, String)>>,
}

impl Cluster {
    fn connect(kubeconfig: &Path) -> Self {
        let rt = runtime();
        let client = rt.block_on(async {
            let kc = Kubeconfig::read_from(kubeconfig).expect("the kubeconfig reads");
            let options = KubeConfigOptions {
                context: Some(NS.into()),
                ..KubeConfigOptions::default()
            };
            let config = Config::from_custom_kubeconfig(kc, &options)
                .await
                .expect("the kubeconfig has context `staging`");
            Client::try_from(config).expect("a client")
        });
        Cluster {
            rt,
            client,
            made: RefCell::new(Vec::new()),
        }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates a Deployment (no status: nothing runs it), removed on drop.
    fn deploy(&self, prefix: &str, replicas: i32) -> String {
        let name = unique(prefix);
        self.create(&name, replicas);
        self.made.borrow_mut().push(("Deployment", name.clone()));
        name
    }

    /// Removes a ConfigMap of this name on drop (the plan creates it).
    fn forget_later(&self, name: &str) {
        self.made.borrow_mut().push(("ConfigMap", name.to_owned()));
    }

    /// Creates a ConfigMap, removed on drop.
    fn config_map_made(&self, prefix: &str) -> String {
        let name = unique(prefix);
        let cm: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"k": "v"},
        }))
        .expect("a ConfigMap");
        self.rt
            .block_on(self.config_maps().create(&PostParams::default(), &cm))
            .expect("the ConfigMap is created");
        self.forget_later(&name);
        name
    }

    fn create(&self, name: &str, replicas: i32) {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": "busybox"}]}
                }
            }
        }))
        .expect("a Deployment");
        self.rt
            .block_on(self.deployments().create(&PostParams::default(), &d))
            .expect("the Deployment is created");
    }

    fn deployment(&self, name: &str) -> Option<Deployment> {
        self.rt
            .block_on(self.deployments().get_opt(name))
            .expect("the API server answers")
    }

    fn must(&self, name: &str) -> Deployment {
        self.deployment(name)
            .unwrap_or_else(|| panic!("Deployment {name} is gone"))
    }

    fn replicas(&self, name: &str) -> i32 {
        self.must(name)
            .spec
            .and_then(|s| s.replicas)
            .expect("spec.replicas")
    }

    fn generation(&self, name: &str) -> i64 {
        self.must(name)
            .metadata
            .generation
            .expect("metadata.generation")
    }

    /// Changes spec.replicas from outside opsgate.
    fn set_replicas(&self, name: &str, replicas: i32) {
        self.rt
            .block_on(self.deployments().patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            ))
            .expect("spec.replicas patched");
    }

    /// What the controller would report: every replica of the current
    /// spec updated, `ready` of them ready and available, the current
    /// generation observed.
    fn set_status(&self, name: &str, ready: i32) {
        let d = self.must(name);
        let want = d.spec.and_then(|s| s.replicas).expect("spec.replicas");
        let status = json!({"status": {
            "observedGeneration": d.metadata.generation.expect("generation"),
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }});
        self.rt
            .block_on(self.deployments().patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(status),
            ))
            .expect("status patched");
    }

    fn config_map(&self, name: &str) -> Option<ConfigMap> {
        self.rt
            .block_on(self.config_maps().get_opt(name))
            .expect("the API server answers")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let made = std::mem::take(&mut *self.made.borrow_mut());
        let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let params = PatchParams::default();
        self.rt.block_on(async {
            for (kind, name) in made {
                // A Foreground delete leaves a finalizer no GC removes here.
                if kind == "Deployment" {
                    let api = self.deployments();
                    let _ = api.patch(&name, &params, &unblock).await;
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                } else {
                    let api = self.config_maps();
                    let _ = api.patch(&name, &params, &unblock).await;
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                }
            }
        });
    }
}

fn cli(kubeconfig: &Path) -> Cli {
    let path = kubeconfig.display().to_string();
    Cli::new(None, &[("KUBECONFIG", path.as_str())])
}

/// `field` of each record of one type, as text.
fn texts(cli: &Cli, kind: &str, field: &str) -> Vec<String> {
    cli.of_type(kind)
        .iter()
        .map(|r| r[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A ConfigMap manifest with one key.
fn config_map_manifest(name: &str, greeting: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: {greeting}\n"
    )
}

#[test]
fn the_example_plan_scales_api_and_waits_for_the_rollout() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    // `api` is the example's fixed name; only this test uses it.
    if cluster.deployment("api").is_some() {
        cluster.set_replicas("api", 3);
    } else {
        cluster.create("api", 3);
    }
    assert_eq!(cluster.replicas("api"), 3);
    let cli = cli(&kc);
    let plan = common::repo().join("plans/k8s-scale-api.yaml");
    let id = cli.submit_and_approve(&plan.display().to_string(), &[]);
    let (patched, (code, out, err)) = std::thread::scope(|s| {
        let run = s.spawn(|| cli.run(&["run", &id]));
        // The controller: once the plan has scaled to 5, report the
        // rollout complete, as the Deployment controller would.
        let controller = Cluster::connect(&kc);
        let started = Instant::now();
        let mut patched = false;
        while !run.is_finished() {
            if !patched && controller.replicas("api") == 5 {
                controller.set_status("api", 5);
                patched = true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "the run did not end"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        (patched, run.join().expect("the run thread"))
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(patched, "the plan never scaled `api` to 5: {out}");
    assert_eq!(cluster.replicas("api"), 5);
    let checks = cli.of_type("check_finished");
    let statuses: Vec<&str> = checks
        .iter()
        .map(|c| c["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["passed", "passed"], "{checks:?}");
    assert!(
        checks[1]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled out: 5 of 5 replicas available"),
        "{checks:?}"
    );
    assert!(
        checks[1]["attempts"].as_u64().unwrap_or(0) >= 2,
        "the first rollout check ran before the status was patched: {checks:?}"
    );
}

#[test]
fn every_op_changes_the_cluster() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("web", 1);
    let bg = cluster.deploy("gone-bg", 1);
    let fg = cluster.deploy("gone-fg", 1);
    let cm = unique("settings");
    cluster.forget_later(&cm);
    let cli = cli(&kc);
    cli.write("settings.yaml", &config_map_manifest(&cm, "hello"));
    let plan_text = r#"
id: kube-every-op
title: Every Kubernetes op
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web, bg: bg, fg: fg}
steps:
  - name: scale {{name}}
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 3}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 1}}
  - name: restart {{name}}
    kube: {op: rollout_restart, kind: Deployment, name: "{{name}}"}
  - name: apply settings
    kube: {op: apply, manifest: settings.yaml}
  - name: drop {{bg}}
    kube: {op: delete, kind: Deployment, name: "{{bg}}"}
  - name: drop {{fg}}
    kube: {op: delete, kind: Deployment, name: "{{fg}}", propagation: Foreground}
  - name: look at {{name}}
    kube: {op: get, kind: Deployment, name: "{{name}}"}
rollback: {none: "test objects"}
"#;
    let plan = cli.write("ops.yaml", plan_text);
    let params = [
        format!("name={web}"),
        format!("bg={bg}"),
        format!("fg={fg}"),
    ];
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let id = cli.submit_and_approve(&plan, &params);
    let before = cluster.must(&web);
    assert!(
        before
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .is_none_or(|a| !a.contains_key("kubectl.kubernetes.io/restartedAt")),
        "no restart yet"
    );
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        texts(&cli, "step_finished", "status"),
        vec!["succeeded"; 6],
        "{out}"
    );

    // scale
    let after = cluster.must(&web);
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(3));
    // rollout_restart: a new pod template annotation.
    let restarted = after
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt"))
        .cloned()
        .unwrap_or_default();
    assert!(
        restarted.starts_with("20") && restarted.ends_with('Z'),
        "restartedAt: {restarted:?}"
    );
    // apply: created, by a server-side apply under opsgate's name.
    let applied = cluster.config_map(&cm).expect("the ConfigMap is created");
    assert_eq!(
        applied.data.as_ref().and_then(|d| d.get("greeting")),
        Some(&"hello".to_owned())
    );
    assert!(
        applied
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("opsgate")
                && m.operation.as_deref() == Some("Apply")),
        "{:?}",
        applied.metadata.managed_fields
    );
    // delete, Background: gone at once.
    assert!(cluster.deployment(&bg).is_none(), "{bg} is deleted");
    // delete, Foreground: marked for deletion, waiting for dependents.
    let marked = cluster.must(&fg);
    assert!(marked.metadata.deletion_timestamp.is_some(), "{marked:?}");
    assert!(
        marked
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "foregroundDeletion"),
        "{marked:?}"
    );
    // get: reports what the server has.
    let got = texts(&cli, "step_finished", "output");
    assert!(
        got[5].contains(&format!("Deployment staging/{web}"))
            && got[5].contains("replicas 3 (ready 0)"),
        "{got:?}"
    );

    // Applying a changed manifest updates the object.
    cli.write("settings-v2.yaml", &config_map_manifest(&cm, "goodbye"));
    let again = cli.write(
        "apply-again.yaml",
        r#"
id: kube-apply-again
title: Apply the changed settings
author: dave
target: {kube_context: staging, namespace: staging}
steps:
  - name: apply settings
    kube: {op: apply, manifest: settings-v2.yaml}
rollback: {none: "test objects"}
"#,
    );
    let id = cli.submit_and_approve(&again, &[]);
    cli.ok(&["run", &id]);
    let updated = cluster.config_map(&cm).expect("the ConfigMap is there");
    assert_eq!(
        updated.data.as_ref().and_then(|d| d.get("greeting")),
        Some(&"goodbye".to_owned())
    );
}

#[test]
fn checks_pass_and_fail_with_the_state_of_the_deployment() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("web", 2);
    let missing = unique("nobody");
    let cli = cli(&kc);
    let plan = cli.write(
        "checks.yaml",
        r#"
id: kube-checks
title: Look at a Deployment once it is rolled out
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web, probe: web, want: 2}
steps:
  - name: look
    kube: {op: get, kind: Deployment, name: "{{name}}"}
    pre_checks:
      - {name: there, kube: {check: exists, kind: Deployment, name: "{{probe}}"}}
      - {name: rolled out, kube: {check: rollout_complete, kind: Deployment, name: "{{name}}"}}
    post_checks:
      - {name: ready, kube: {check: replicas_ready, kind: Deployment, name: "{{name}}", replicas: "{{want}}"}}
rollback: {none: "read-only"}
"#,
    );
    // Each run: its params, then each check's status and output.
    let run = |params: &[String]| -> (i32, Vec<(String, String)>) {
        let before = cli.of_type("check_finished").len();
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let id = cli.submit_and_approve(&plan, &params);
        let (code, _, _) = cli.run(&["run", &id]);
        let checks = cli
            .of_type("check_finished")
            .into_iter()
            .skip(before)
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_owned(),
                    c["output"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (code, checks)
    };
    let name = format!("name={web}");

    // exists fails for an object that is not there.
    let (code, checks) = run(&[name.clone(), format!("probe={missing}")]);
    assert_eq!(code, 1, "{checks:?}");
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].0, "failed");
    assert!(
        checks[0].1 == format!("Deployment staging/{missing} does not exist"),
        "{checks:?}"
    );

    // rollout_complete fails while no controller has reported.
    let probe = format!("probe={web}");
    let (code, checks) = run(&[name.clone(), probe.clone()]);
    assert_eq!(code, 1, "{checks:?}");
    assert_eq!(checks[0].0, "passed", "{checks:?}");
    assert_eq!(checks[1].0, "failed", "{checks:?}");
    assert!(
        checks[1]
            .1
            .contains("waiting for the controller to observe generation 1 (it has seen 0)"),
        "{checks:?}"
    );
    assert_eq!(checks.len(), 2, "the step did not run: {checks:?}");

    // Observed, but only one of two replicas ready: still not rolled out.
    cluster.set_status(&web, 1);
    let (code, checks) = run(&[name.clone(), probe.clone()]);
    assert_eq!(code, 1, "{checks:?}");
    assert_eq!(checks[1].0, "failed", "{checks:?}");
    assert!(
        checks[1].1.contains("1 of 2 updated replicas available"),
        "{checks:?}"
    );

    // Rolled out: rollout_complete passes; replicas_ready fails for more
    // replicas than are ready, and passes for as many.
    cluster.set_status(&web, 2);
    let (code, checks) = run(&[name.clone(), probe.clone(), "want=3".into()]);
    assert_eq!(code, 1, "{checks:?}");
    let statuses: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(statuses, ["passed", "passed", "failed"], "{checks:?}");
    assert!(checks[1].1.contains("rolled out: 2 of 2"), "{checks:?}");
    assert!(checks[2].1.contains("2 of 3 replicas ready"), "{checks:?}");

    let (code, checks) = run(&[name, probe, "want=2".into()]);
    assert_eq!(code, 0, "{checks:?}");
    let statuses: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(statuses, ["passed", "passed", "passed"], "{checks:?}");
    assert!(checks[2].1.contains("2 of 2 replicas ready"), "{checks:?}");
}

#[test]
fn a_dry_run_changes_nothing() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("web", 2);
    let victim = cluster.deploy("victim", 1);
    let cm = unique("settings");
    cluster.forget_later(&cm);
    let cli = cli(&kc);
    cli.write("settings.yaml", &config_map_manifest(&cm, "hello"));
    let plan = cli.write(
        "dry.yaml",
        r#"
id: kube-dry
title: Scale, apply and delete, in a dry run
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web, victim: victim}
steps:
  - name: scale {{name}}
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 7}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 2}}
  - name: apply settings
    kube: {op: apply, manifest: settings.yaml}
  - name: drop {{victim}}
    kube: {op: delete, kind: Deployment, name: "{{victim}}"}
rollback: {none: "test objects"}
"#,
    );
    let web_gen = cluster.generation(&web);
    let victim_version = cluster.must(&victim).metadata.resource_version;
    let out = cli.ok(&[
        "submit",
        &plan,
        "--param",
        &format!("name={web}"),
        "--param",
        &format!("victim={victim}"),
    ]);
    assert!(out.contains("kube-dry"), "{out}");
    let out = cli.ok(&["run", "kube-dry", "--dry-run"]);
    assert_eq!(
        out.matches("(dry run: dryRun=All, nothing changed)")
            .count(),
        3,
        "{out}"
    );
    assert_eq!(texts(&cli, "step_finished", "status"), vec!["succeeded"; 3]);
    let finished = cli.of_type("run_finished");
    assert_eq!(finished[0]["dry_run"], true);
    assert_eq!(finished[0]["status"], "succeeded");

    assert_eq!(cluster.replicas(&web), 2);
    assert_eq!(cluster.generation(&web), web_gen);
    assert!(
        cluster.config_map(&cm).is_none(),
        "the ConfigMap was created"
    );
    let still = cluster.must(&victim);
    assert!(still.metadata.deletion_timestamp.is_none(), "{still:?}");
    assert_eq!(still.metadata.resource_version, victim_version);
}

#[test]
fn a_failed_step_stops_the_run_and_the_rollback_restores_the_replicas() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("web", 2);
    let cli = cli(&kc);
    let plan = cli.write(
        "fails.yaml",
        r#"
id: kube-fails
title: Scale up, then fail
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web}
steps:
  - name: scale up
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 4}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 2}}
  - name: wait for pods
    kube: {op: get, kind: Deployment, name: "{{name}}"}
    post_checks:
      - name: ready
        kube: {check: replicas_ready, kind: Deployment, name: "{{name}}"}
        retry: {attempts: 1}
        timeout: 3s
  - name: never
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 9}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 2}}
rollback: {none: "step rollbacks only"}
"#,
    );
    let id = cli.submit_and_approve(&plan, &[&format!("name={web}")]);
    let (code, out, err) = cli.run(&["run", &id, "--rollback-on-failure"]);
    assert_eq!(code, 1, "{out}{err}");
    let started: Vec<u64> = cli
        .of_type("step_started")
        .iter()
        .filter_map(|r| r["step"].as_u64())
        .collect();
    assert_eq!(started, [1, 2], "the third step never started: {out}{err}");
    assert_eq!(
        texts(&cli, "step_finished", "status"),
        ["succeeded", "failed"]
    );
    let checks = cli.of_type("check_finished");
    assert_eq!(checks[0]["status"], "failed", "{checks:?}");
    assert_eq!(checks[0]["attempts"], 1, "{checks:?}");
    assert!(
        checks[0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("0 of 4 replicas ready"),
        "{checks:?}"
    );
    let rollback = cli.of_type("rollback_step_finished");
    assert_eq!(rollback.len(), 1, "only the completed step is undone");
    assert_eq!(rollback[0]["status"], "succeeded");
    assert_eq!(cli.of_type("rollback_finished")[0]["status"], "succeeded");
    assert_eq!(cluster.replicas(&web), 2, "the rollback restored it");
    // Scaled to 4 (generation 2), back to 2 (3); never to 9.
    assert_eq!(cluster.generation(&web), 3);
}

#[test]
fn a_deployment_changed_after_submission_refuses_the_run() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("web", 2);
    let cli = cli(&kc);
    let plan = cli.write(
        "scale.yaml",
        r#"
id: kube-drift
title: Scale a Deployment
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web}
steps:
  - name: scale {{name}}
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 3}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 2}}
"#,
    );
    let id = cli.submit_and_approve(&plan, &[&format!("name={web}")]);
    let submitted = cli.of_type("plan_submitted");
    let key = format!("kube:staging/staging/Deployment/{web}");
    let uid = cluster.must(&web).metadata.uid.expect("a uid");
    assert_eq!(
        submitted[0]["fingerprints"][&key],
        format!("generation=1 uid={uid}").as_str(),
        "{submitted:?}"
    );
    cluster.set_replicas(&web, 5);
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{key}: generation=1 uid={uid} → generation=2 uid={uid}"
        )),
        "{err}"
    );
    assert!(cli.of_type("run_started").is_empty(), "nothing ran");
    assert_eq!(cluster.replicas(&web), 5, "the outside change stands");
}

/// Deleted and made again under the same name, a Deployment is back at
/// generation 1: only its uid tells it is not the one approved.
#[test]
fn a_deployment_made_again_after_submission_refuses_the_run() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let web = cluster.deploy("again", 2);
    let cli = cli(&kc);
    let plan = cli.write(
        "scale.yaml",
        r#"
id: kube-made-again
title: Scale a Deployment
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web}
steps:
  - name: scale {{name}}
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 3}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 2}}
"#,
    );
    let id = cli.submit_and_approve(&plan, &[&format!("name={web}")]);
    let before = cluster.must(&web).metadata.uid.expect("a uid");
    cluster
        .rt
        .block_on(
            cluster
                .deployments()
                .delete(&web, &DeleteParams::background()),
        )
        .expect("deleted");
    cluster.create(&web, 2);
    let after = cluster.must(&web).metadata.uid.expect("a uid");
    assert_ne!(before, after);
    assert_eq!(cluster.generation(&web), 1, "the same generation as before");
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!(
            "generation=1 uid={before} → generation=1 uid={after}"
        )),
        "{err}"
    );
    assert!(cli.of_type("run_started").is_empty(), "nothing ran");
    assert_eq!(cluster.replicas(&web), 2, "not scaled");
}

#[test]
fn bad_input_is_refused_before_anything_is_recorded() {
    let Some(kc) = kubeconfig() else { return };
    let cli = cli(&kc);
    let missing = unique("nobody");
    let plan = cli.write(
        "missing.yaml",
        r#"
id: kube-missing
title: Scale a Deployment that is not there
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: web}
steps:
  - name: scale {{name}}
    kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 3}
    rollback: {kube: {op: scale, kind: Deployment, name: "{{name}}", replicas: 1}}
"#,
    );
    let (code, out, err) = cli.run(&["submit", &plan, "--param", &format!("name={missing}")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "plan `kube-missing` cannot be submitted: step `scale {missing}`: field `name`: Deployment staging/{missing} does not exist"
        )),
        "{err}"
    );
    assert!(cli.of_type("plan_submitted").is_empty(), "nothing recorded");

    let plan = cli.write(
        "kind.yaml",
        r#"id: kube-bad-kind
title: A kind that does not exist
target: {kube_context: staging, namespace: staging}
steps:
  - name: drop it
    kube:
      op: delete
      kind: Deploymnt
      name: web
rollback: {none: "test"}
"#,
    );
    let (code, out, err) = cli.run(&["submit", &plan]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{plan}:8:13: step `drop it`: `kube delete`: field `kind`: unknown kind `Deploymnt`"
        )),
        "{err}"
    );

    let plan = cli.write(
        "op.yaml",
        r#"id: kube-bad-op
title: An op that does not exist
target: {kube_context: staging, namespace: staging}
steps:
  - name: scale it
    kube: {op: scael, kind: Deployment, name: web, replicas: 5}
rollback: {none: "test"}
"#,
    );
    let (code, out, err) = cli.run(&["submit", &plan]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{plan}:6:16: step `scale it`: `kube`: unknown op `scael`; expected one of: scale, rollout_restart, apply, delete, get"
        )),
        "{err}"
    );
    assert!(cli.records().is_empty(), "nothing recorded");
}

#[test]
fn a_native_namespace_delete_is_critical_like_kubectl() {
    // Classification reads no cluster: no server needed.
    let cli = Cli::new(None, &[]);
    let plan = cli.write(
        "drop.yaml",
        r#"
id: kube-drop-ns
title: Drop a namespace
author: erin
steps:
  - name: drop it
    kube: {op: delete, kind: Namespace, name: legacy-billing}
rollback: {none: "a namespace cannot be restored"}
"#,
    );
    let out = cli.ok(&["plan", "show", "--json", &plan]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["risk"], "CRITICAL", "{shown}");
    let step = &shown["steps"][0];
    assert_eq!(step["risk"], "CRITICAL");
    let reason = &step["reasons"][0];
    assert_eq!(reason["level"], "CRITICAL", "{step}");
    let via = reason["via"].to_string();
    assert!(
        via.contains("native kube action, rated as `kubectl delete namespace legacy-billing"),
        "{step}"
    );
    assert!(
        reason["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deletes a namespace"),
        "{step}"
    );
    // The text view says the same.
    let text = cli.ok(&["plan", "show", &plan]);
    assert!(
        text.contains("CRITICAL")
            && text.contains("rated as `kubectl delete namespace legacy-billing"),
        "{text}"
    );
}

/// A kind the loader's table does not know, cluster-scoped: found by
/// discovery from its `api_version`, applied, read, and deleted, with no
/// namespace invented for it.
#[test]
fn a_kind_outside_the_table_is_found_by_discovery() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let name = unique("batch-low");
    let classes: Api<PriorityClass> = Api::all(cluster.client.clone());
    let exists = || {
        cluster
            .rt
            .block_on(classes.get_opt(&name))
            .expect("the API server answers")
            .map(|c| c.value)
    };
    let cli = cli(&kc);
    cli.write(
        "class.yaml",
        &format!(
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {name}\nvalue: 1000\n"
        ),
    );
    let apply = cli.write(
        "apply.yaml",
        r#"
id: kube-discovery-apply
title: Apply a priority class
author: dave
target: {kube_context: staging, namespace: staging}
steps:
  - name: apply the class
    kube: {op: apply, manifest: class.yaml}
rollback: {none: "test object"}
"#,
    );
    let id = cli.submit_and_approve(&apply, &[]);
    let submitted = cli.of_type("plan_submitted");
    let step = &submitted[0]["plan"]["steps"][0]["action"]["kube"];
    assert!(step.get("namespace").is_none(), "no namespace: {step}");
    cli.ok(&["run", &id]);
    assert_eq!(exists(), Some(1000));

    let drop = cli.write(
        "drop.yaml",
        r#"
id: kube-discovery-drop
title: Drop a priority class
author: dave
target: {kube_context: staging, namespace: staging}
params: {name: x}
steps:
  - name: drop the class
    kube: {op: delete, kind: PriorityClass, api_version: scheduling.k8s.io/v1, name: "{{name}}"}
    pre_checks:
      - {name: there, kube: {check: exists, kind: PriorityClass, api_version: scheduling.k8s.io/v1, name: "{{name}}"}}
rollback: {none: "test object"}
"#,
    );
    let param = format!("name={name}");
    let id = cli.submit_and_approve(&drop, &[&param]);
    cli.ok(&["run", &id]);
    assert_eq!(exists(), None, "deleted");
}

/// Hardening 2: `kubectl delete --raw PATH` ignores `--dry-run`, so its
/// "dry-run form" sent a real DELETE. A rehearsal (a dry run of the
/// approved plan) now runs such a line not at all, and still runs a plain
/// delete in its server-side dry-run form. Against the real API server,
/// with the real kubectl: both ConfigMaps are still there.
#[test]
fn a_rehearsal_never_runs_kubectl_raw_and_runs_a_plain_delete_as_a_server_dry_run() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let raw = cluster.config_map_made("raw");
    let plain = cluster.config_map_made("plain");
    let cli = cli(&kc);
    let kc = kc.display().to_string();
    let plan = cli.write(
        "raw.yaml",
        &format!(
            "id: kube-raw
title: Deletes, one of them raw
author: dave
steps:
  - name: raw delete
    run: kubectl --kubeconfig {kc} delete --raw /api/v1/namespaces/{NS}/configmaps/{raw}
  - name: plain delete
    run: kubectl --kubeconfig {kc} delete configmap {plain} -n {NS}
rollback: {{none: test objects}}
"
        ),
    );
    cli.submit_and_approve(&plan, &[]);
    let out = cli.ok(&["run", "kube-raw", "--dry-run"]);
    for name in [&raw, &plain] {
        let cm = cluster
            .config_map(name)
            .unwrap_or_else(|| panic!("ConfigMap {name} was deleted by a dry run: {out}"));
        assert!(cm.metadata.deletion_timestamp.is_none(), "{cm:?}");
    }
    assert!(out.contains("has no dry-run form"), "{out}");
    assert_eq!(
        texts(&cli, "step_finished", "status"),
        vec!["skipped", "succeeded"],
        "{out}"
    );
    // The real run deletes both: the lines do work.
    cli.ok(&["run", "kube-raw"]);
    assert!(cluster.config_map(&raw).is_none());
    assert!(cluster.config_map(&plain).is_none());
}

/// `execution.require_dry_run`: a native step has a real dry-run form (the
/// API server's dryRun=All), so a dry run that ran it satisfies the rule,
/// and the real run may go on.
#[test]
fn a_dry_run_that_exercised_the_high_step_satisfies_require_dry_run() {
    let Some(kc) = kubeconfig() else { return };
    let cluster = Cluster::connect(&kc);
    let doomed = cluster.deploy("doomed", 1);
    let path = kc.display().to_string();
    let cli = Cli::new(
        Some("execution: {require_dry_run: true}\n"),
        &[("KUBECONFIG", path.as_str())],
    );
    let plan = cli.write(
        "doomed.yaml",
        &format!(
            "id: kube-doomed
title: Delete a Deployment
author: dave
target: {{kube_context: staging, namespace: staging}}
steps:
  - name: delete it
    kube: {{op: delete, kind: Deployment, name: {doomed}}}
rollback: {{none: test object}}
"
        ),
    );
    cli.submit_and_approve(&plan, &[]);
    let (code, _, err) = cli.run(&["run", "kube-doomed"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("step 1 `delete it`"), "{err}");
    cli.ok(&["run", "kube-doomed", "--dry-run"]);
    assert!(
        cluster.deployment(&doomed).is_some(),
        "the dry run deleted it"
    );
    cli.ok(&["run", "kube-doomed"]);
    let gone = cluster
        .deployment(&doomed)
        .is_none_or(|d| d.metadata.deletion_timestamp.is_some());
    assert!(gone, "the real run did not delete it");
}
