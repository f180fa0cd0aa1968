//! The EC2 backend against a real EC2 API: moto (`OPSGATE_TEST_EC2_ENDPOINT`,
//! started by `scripts/test-env.sh up`).
//!
//! Each test makes its own instances with aws-sdk-ec2 (moto is shared by
//! the tests running in parallel, and never reset here), drives opsgate
//! through the binary (or the library), and reads the instances' states
//! back with the SDK.
//!
//! The circuit-breaker tests start their own moto on a free port, since
//! they kill it; a `Moto` guard kills it on every path. The library-level
//! tests need AWS credentials in their own environment (the product's
//! client uses the standard chain), which a test may not set in-process
//! (`unsafe_code = forbid`): they run again as a child process of this
//! test binary with the variables set (`in_child`).

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use serde_json::Value;

use common::backends::{Cli, ec2_endpoint, kubeconfig, runtime};
use opsgate::core::duration::HumanDuration;
use opsgate::core::plan::Action;
use opsgate::core::plan::native::{Ec2Action, Ec2Verb, KubeAction, KubeVerb};
use opsgate::core::policy::{BackendsPolicy, BreakerPolicy};
use opsgate::native::breaker::BreakerState;
use opsgate::native::{Backends, BreakerView, Outcome};

const REGION: &str = "us-east-1";
const AMI: &str = "ami-12c6146b";

// ---------------------------------------------------------------------------
// The test's own EC2 client.

/// An SDK client of the test's own, to make instances and read them back.
struct Ec2 {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_ec2::Client,
}

impl Ec2 {
    fn new(endpoint: &str) -> Self {
        let rt = runtime();
        let client = rt.block_on(async {
            // The ring provider, as the product's client: one TLS stack.
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https();
            let config = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .region(Region::new(REGION))
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .load()
                .await;
            aws_sdk_ec2::Client::new(&config)
        });
        Ec2 { rt, client }
    }

    /// A new running instance; its id.
    fn launch(&self) -> String {
        let out = self
            .rt
            .block_on(
                self.client
                    .run_instances()
                    .image_id(AMI)
                    .min_count(1)
                    .max_count(1)
                    .send(),
            )
            .expect("run_instances");
        let id = out
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .expect("run_instances answers an instance id")
            .to_owned();
        assert_eq!(self.state(&id), "running", "a new instance runs");
        id
    }

    /// The instance's state name (`running`, `stopped`, …), read from EC2.
    fn state(&self, id: &str) -> String {
        let out = self
            .rt
            .block_on(self.client.describe_instances().instance_ids(id).send())
            .expect("describe_instances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .expect("the instance has a state")
    }

    /// Stops the instance behind opsgate's back.
    fn stop(&self, id: &str) {
        self.rt
            .block_on(self.client.stop_instances().instance_ids(id).send())
            .expect("stop_instances");
        assert_eq!(self.state(id), "stopped");
    }
}

// ---------------------------------------------------------------------------
// Plans and the binary.

/// The binary pointed at `endpoint`, with moto's credentials.
fn cli(endpoint: &str, policy: Option<&str>) -> Cli {
    Cli::new(
        policy,
        &[
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    )
}

/// A plan `id` in us-east-1 by carol (so alice and bob may approve it)
/// with `steps`, a YAML list indented by two spaces.
fn plan_text(id: &str, steps: &str) -> String {
    format!(
        "id: {id}\ntitle: EC2 test plan {id}\nauthor: carol\ntarget: {{aws_region: {REGION}}}\nrollback: {{none: \"test instances\"}}\nsteps:\n{steps}"
    )
}

/// `[i-1, i-2]`.
fn ids(list: &[&str]) -> String {
    format!("[{}]", list.join(", "))
}

/// Submits a plan file; its id.
#[track_caller]
fn submit(cli: &Cli, path: &str) -> String {
    let out = cli.ok(&["submit", "--json", path]);
    let v: Value = serde_json::from_str(&out).expect("submit --json answers JSON");
    v["plan_id"].as_str().expect("plan_id").to_owned()
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

/// The `step_finished` record of step `n` (1-based) of the last run.
fn step_finished(records: &[Value], n: u64) -> Option<&Value> {
    of_type(records, "step_finished")
        .into_iter()
        .rev()
        .find(|r| r["step"] == n)
}

// ---------------------------------------------------------------------------
// A moto server of the test's own, for the tests that kill it.

/// `moto_server` beside the python3 in use (skipping pyenv's shims, whose
/// pid would not be the server's), else the one on PATH.
fn moto_bin() -> PathBuf {
    let beside_python = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.join(os.path.dirname(sys.executable), 'moto_server'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    beside_python.unwrap_or_else(|| PathBuf::from("moto_server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Whether `GET /moto-api/` answers 200 on the port.
fn moto_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(
        s,
        "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = Vec::new();
    let _ = s.take(64).read_to_end(&mut head);
    let head = String::from_utf8_lossy(&head);
    head.starts_with("HTTP/1.") && head.split(' ').nth(1) == Some("200")
}

/// A moto server on a loopback port, killed when dropped.
struct Moto {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Self {
        let mut moto = Moto {
            port: 0,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // The port can be taken between choosing it and moto binding it.
        for _ in 0..3 {
            moto.port = free_port();
            if moto.spawn() {
                return moto;
            }
        }
        panic!("moto_server did not start; its log:\n{}", moto.log());
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("moto is running").id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Starts moto on `self.port` and waits until it answers; false if it
    /// exited (the port was taken).
    fn spawn(&mut self) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("moto.log"))
            .expect("moto log");
        let child = Command::new(moto_bin())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("moto log"))
            .stderr(log)
            .spawn()
            .expect("moto_server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if moto_answers(self.port) {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
                .is_some();
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server not answering after 60s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts it again on the same port (with none of its old state).
    fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        while !self.spawn() {
            // The old socket may hold the port for a moment.
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start again on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills it (if still running) and reaps it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Library-level tests in a child process.

/// Set in the child process that runs a library-level test.
const CHILD: &str = "OPSGATE_EC2_TEST_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `name` of this binary again, alone, in a child process
/// with moto's AWS credentials (and `env`) in its environment, and checks
/// that it ran and passed.
fn in_child(name: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("child stdout"))
        .stderr(File::create(&err_path).expect("child stderr"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the test binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child test `{name}` took over 300s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    println!("--- child `{name}` stdout:\n{stdout}\n--- child stderr:\n{stderr}");
    assert!(
        status.success(),
        "the child test `{name}` failed ({status}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test `{name}`:\n{stdout}"
    );
}

fn describe(region: &str, id: &str) -> Action {
    Action::Ec2(Ec2Action {
        region: Some(region.to_owned()),
        verb: Ec2Verb::DescribeInstances,
        instance_ids: vec![id.to_owned()],
    })
}

fn ec2_breaker(backends: &Backends) -> BreakerView {
    backends
        .breakers()
        .into_iter()
        .find(|b| b.backend == "ec2")
        .expect("an ec2 breaker")
}

// ---------------------------------------------------------------------------
// The tests.

/// The example plan, as shipped, restarts a real instance.
#[test]
fn the_example_restart_plan_runs_end_to_end() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let id = ec2.launch();
    let cli = cli(&endpoint, None);
    let plan = common::repo().join("plans/ec2-restart-instance.yaml");
    let plan_id = cli.submit_and_approve(
        plan.to_str().expect("utf-8 path"),
        &[&format!("instance={id}")],
    );
    let (code, out, err) = cli.run(&["run", &plan_id]);
    assert_eq!(code, 0, "the run failed:\n{out}\n{err}");
    assert_eq!(ec2.state(&id), "running");

    let records = cli.records();
    let submitted = of_type(&records, "plan_submitted");
    assert_eq!(
        submitted[0]["fingerprints"][format!("ec2:{REGION}/{id}")],
        "state=running",
        "{submitted:#?}"
    );
    for n in [1, 2] {
        let f = step_finished(&records, n).unwrap_or_else(|| panic!("no step {n}: {records:#?}"));
        assert_eq!(f["status"], "succeeded", "step {n}: {f:#}");
    }
    let stop = step_finished(&records, 1).unwrap();
    assert!(
        stop["output"].as_str().unwrap().contains(&id),
        "the stop step's output names the instance: {stop:#}"
    );
    // Its checks ran against EC2: the pre-check and both post-checks passed.
    let checks = of_type(&records, "check_finished");
    assert_eq!(checks.len(), 3, "{checks:#?}");
    assert!(
        checks.iter().all(|c| c["status"] == "passed"),
        "{checks:#?}"
    );
    let finished = of_type(&records, "run_finished");
    assert_eq!(finished.last().unwrap()["status"], "succeeded");
}

/// describe, stop, start, reboot and terminate through plans, each checked
/// with instance_state and read back from EC2.
#[test]
fn every_ec2_operation_works_through_a_plan() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let (a, b) = (ec2.launch(), ec2.launch());
    let both = ids(&[&a, &b]);
    let cli = cli(&endpoint, Some("safety: {allow_critical: true}\n"));

    // describe, then stop both.
    let stop = cli.write(
        "stop.yaml",
        &plan_text(
            "ec2-ops-stop",
            &format!(
                "  - name: describe
    ec2: {{op: describe_instances, instance_ids: {both}}}
    timeout: 30s
    post_checks:
      - {{name: both running, ec2: {{check: instance_state, instance_ids: {both}, state: running}}, timeout: 30s}}
  - name: stop
    ec2: {{op: stop_instances, instance_ids: {both}}}
    timeout: 30s
    post_checks:
      - {{name: both stopped, ec2: {{check: instance_state, instance_ids: {both}, state: stopped}}, timeout: 30s}}
"
            ),
        ),
    );
    let id = cli.submit_and_approve(&stop, &[]);
    cli.ok(&["run", &id]);
    assert_eq!(
        (ec2.state(&a), ec2.state(&b)),
        ("stopped".into(), "stopped".into())
    );
    let records = cli.records();
    let described = step_finished(&records, 1).unwrap()["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        described.contains(&format!("{a}: running"))
            && described.contains(&format!("{b}: running")),
        "describe_instances answers each instance's state: {described}"
    );
    let stopped = step_finished(&records, 2).unwrap()["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stopped.contains(&format!("{a}: running →"))
            && stopped.contains(&format!("{b}: running →")),
        "stop_instances answers each state change: {stopped}"
    );

    // start, then reboot both.
    let start = cli.write(
        "start.yaml",
        &plan_text(
            "ec2-ops-start",
            &format!(
                "  - name: start
    ec2: {{op: start_instances, instance_ids: {both}}}
    timeout: 30s
    pre_checks:
      - {{name: both stopped, ec2: {{check: instance_state, instance_ids: {both}, state: stopped}}, timeout: 30s}}
    post_checks:
      - {{name: both running, ec2: {{check: instance_state, instance_ids: {both}, state: running}}, timeout: 30s}}
  - name: reboot
    ec2: {{op: reboot_instances, instance_ids: {both}}}
    timeout: 30s
    post_checks:
      - {{name: both running, ec2: {{check: instance_state, instance_ids: {both}, state: running}}, timeout: 30s}}
"
            ),
        ),
    );
    let id = cli.submit_and_approve(&start, &[]);
    cli.ok(&["run", &id]);
    assert_eq!(
        (ec2.state(&a), ec2.state(&b)),
        ("running".into(), "running".into())
    );
    let records = cli.records();
    let started = step_finished(&records, 1).unwrap();
    assert_eq!(started["status"], "succeeded");
    assert!(
        started["output"]
            .as_str()
            .unwrap()
            .contains(&format!("{a}: stopped →")),
        "{started:#}"
    );
    let rebooted = step_finished(&records, 2).unwrap();
    assert_eq!(rebooted["status"], "succeeded");
    assert!(
        rebooted["output"]
            .as_str()
            .unwrap()
            .contains(&format!("rebooting {a}, {b}")),
        "{rebooted:#}"
    );

    // terminate A only: CRITICAL, so two approvers.
    let terminate = cli.write(
        "terminate.yaml",
        &plan_text(
            "ec2-ops-terminate",
            &format!(
                "  - name: terminate
    ec2: {{op: terminate_instances, instance_ids: [{a}]}}
    timeout: 30s
    post_checks:
      - {{name: gone, ec2: {{check: instance_state, instance_ids: [{a}], state: terminated}}, timeout: 30s}}
"
            ),
        ),
    );
    let out = cli.ok(&["submit", "--json", &terminate]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["risk"], "CRITICAL",
        "terminate_instances is CRITICAL: {v:#}"
    );
    let id = v["plan_id"].as_str().unwrap().to_owned();
    cli.ok(&["approve", &id, "--as", "alice"]);
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(
        code, 3,
        "one approval is not enough for CRITICAL:\n{out}\n{err}"
    );
    assert_eq!(ec2.state(&a), "running", "a refused run terminated nothing");
    cli.ok(&["approve", &id, "--as", "bob"]);
    cli.ok(&["run", &id]);
    assert_eq!(ec2.state(&a), "terminated");
    assert_eq!(ec2.state(&b), "running", "only the named instance");
}

/// A dry run asks EC2 with DryRun=true: it answers DryRunOperation and
/// nothing changes.
#[test]
fn a_dry_run_mutates_nothing() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let id = ec2.launch();
    let cli = cli(&endpoint, None);
    let plan = cli.write(
        "stop.yaml",
        &plan_text(
            "ec2-dry-stop",
            &format!(
                "  - name: stop
    ec2: {{op: stop_instances, instance_ids: [{id}]}}
    timeout: 30s
  - name: terminate
    ec2: {{op: terminate_instances, instance_ids: [{id}]}}
    timeout: 30s
"
            ),
        ),
    );
    let plan_id = submit(&cli, &plan);
    let (code, out, err) = cli.run(&["run", &plan_id, "--dry-run"]);
    assert_eq!(code, 0, "the dry run failed:\n{out}\n{err}");
    assert!(out.contains("DryRunOperation"), "{out}\n{err}");
    assert_eq!(ec2.state(&id), "running", "a dry run stopped the instance");
    let records = cli.records();
    for n in [1, 2] {
        let f = step_finished(&records, n).unwrap();
        assert_eq!(f["status"], "succeeded", "{f:#}");
        assert!(
            f["output"].as_str().unwrap().contains("DryRunOperation"),
            "{f:#}"
        );
    }
    let started = of_type(&records, "run_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["dry_run"], true);
}

/// A pre-check that fails skips its step and fails the run; a post-check
/// that cannot pass within its timeout fails the step.
#[test]
fn checks_pass_and_fail_against_the_live_state() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let stopped = ec2.launch();
    ec2.stop(&stopped);
    let running = ec2.launch();
    let cli = cli(&endpoint, None);

    // The pre-check wants `running`; the instance is stopped, so the
    // start must not happen.
    let pre = cli.write(
        "pre.yaml",
        &plan_text(
            "ec2-pre-check",
            &format!(
                "  - name: start
    ec2: {{op: start_instances, instance_ids: [{stopped}]}}
    timeout: 30s
    pre_checks:
      - {{name: is running, ec2: {{check: instance_state, instance_ids: [{stopped}], state: running}}, timeout: 3s}}
"
            ),
        ),
    );
    let id = cli.submit_and_approve(&pre, &[]);
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 1, "a failed pre-check fails the run:\n{out}\n{err}");
    assert_eq!(ec2.state(&stopped), "stopped", "the step ran anyway");
    let records = cli.records();
    let check = of_type(&records, "check_finished");
    assert_eq!(check.len(), 1, "{check:#?}");
    assert_eq!(check[0]["phase"], "pre");
    assert_eq!(check[0]["status"], "failed");
    assert!(
        check[0]["output"]
            .as_str()
            .unwrap()
            .contains(&format!("{stopped} stopped")),
        "the check says what the state is: {:#}",
        check[0]
    );
    assert_eq!(step_finished(&records, 1).unwrap()["status"], "skipped");
    assert_eq!(of_type(&records, "run_finished")[0]["status"], "failed");

    // The post-check waits for `terminated` on an instance that stays
    // running: it gives up after its 2s timeout.
    let post = cli.write(
        "post.yaml",
        &plan_text(
            "ec2-post-check",
            &format!(
                "  - name: look
    ec2: {{op: describe_instances, instance_ids: [{running}]}}
    timeout: 30s
    post_checks:
      - {{name: is gone, ec2: {{check: instance_state, instance_ids: [{running}], state: terminated}}, timeout: 2s}}
"
            ),
        ),
    );
    let id = cli.submit_and_approve(&post, &[]);
    let (code, out, err) = cli.run(&["run", &id]);
    assert_eq!(code, 1, "a failed post-check fails the run:\n{out}\n{err}");
    assert_eq!(ec2.state(&running), "running");
    let records = cli.records();
    let check = of_type(&records, "check_finished")
        .into_iter()
        .find(|c| c["plan_id"] == id.as_str())
        .expect("the post-check is recorded");
    assert_eq!(check["phase"], "post");
    assert_eq!(check["status"], "failed");
    assert!(
        check["output"]
            .as_str()
            .unwrap()
            .contains("not terminated within"),
        "{check:#}"
    );
    assert_eq!(step_finished(&records, 1).unwrap()["status"], "failed");
}

/// A failing step stops the run, and the rollback undoes what the
/// completed steps did, on the real instance.
#[test]
fn a_failed_step_stops_the_run_and_the_rollback_restores_the_instance() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let (a, b) = (ec2.launch(), ec2.launch());
    let cli = cli(&endpoint, None);
    let plan = cli.write(
        "plan.yaml",
        &plan_text(
            "ec2-rollback",
            &format!(
                "  - name: stop a
    ec2: {{op: stop_instances, instance_ids: [{a}]}}
    timeout: 30s
    post_checks:
      - {{name: a stopped, ec2: {{check: instance_state, instance_ids: [{a}], state: stopped}}, timeout: 30s}}
    rollback:
      ec2: {{op: start_instances, instance_ids: [{a}]}}
  - name: wait for b to go
    ec2: {{op: describe_instances, instance_ids: [{b}]}}
    timeout: 30s
    post_checks:
      - {{name: b gone, ec2: {{check: instance_state, instance_ids: [{b}], state: terminated}}, timeout: 2s}}
  - name: stop b
    ec2: {{op: stop_instances, instance_ids: [{b}]}}
    timeout: 30s
"
            ),
        ),
    );
    let id = cli.submit_and_approve(&plan, &[]);
    let (code, out, err) = cli.run(&["run", &id, "--rollback-on-failure"]);
    assert_eq!(code, 1, "the run should fail at step 2:\n{out}\n{err}");
    assert_eq!(ec2.state(&a), "running", "the rollback started A again");
    assert_eq!(ec2.state(&b), "running", "step 3 stopped B");

    let records = cli.records();
    assert_eq!(step_finished(&records, 1).unwrap()["status"], "succeeded");
    assert_eq!(step_finished(&records, 2).unwrap()["status"], "failed");
    assert!(
        !of_type(&records, "step_started")
            .iter()
            .any(|r| r["step"] == 3),
        "step 3 started: {records:#?}"
    );
    let undo = of_type(&records, "rollback_step_finished");
    assert_eq!(undo.len(), 1, "{undo:#?}");
    assert_eq!(undo[0]["status"], "succeeded", "{:#}", undo[0]);
    assert!(
        undo[0]["output"]
            .as_str()
            .unwrap()
            .contains(&format!("{a}: stopped →")),
        "{:#}",
        undo[0]
    );
    let done = of_type(&records, "rollback_finished");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["status"], "succeeded");
}

/// A target changed between approval and run: the run is refused, naming
/// it, before anything runs; a drift exemption lets the plan run anyway.
#[test]
fn drift_refuses_the_run_unless_the_plan_is_exempt() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let stop_plan = |a: &str, b: &str| {
        plan_text(
            "ec2-drift-stop",
            &format!(
                "  - name: stop both
    ec2: {{op: stop_instances, instance_ids: {}}}
    timeout: 30s
",
                ids(&[a, b])
            ),
        )
    };

    // Without an exemption: refused, and B (no drift) untouched.
    let (a, b) = (ec2.launch(), ec2.launch());
    let cli1 = cli(&endpoint, None);
    let plan = cli1.write("plan.yaml", &stop_plan(&a, &b));
    let id = cli1.submit_and_approve(&plan, &[]);
    ec2.stop(&a);
    let (code, out, err) = cli1.run(&["run", &id]);
    assert_eq!(code, 3, "drift must refuse the run:\n{out}\n{err}");
    assert!(err.contains(&format!("ec2:{REGION}/{a}")), "{err}");
    assert!(err.contains("state=running → state=stopped"), "{err}");
    assert!(!err.contains(&b), "B did not change: {err}");
    assert_eq!(ec2.state(&b), "running", "a refused run stopped B");
    let records = cli1.records();
    assert!(of_type(&records, "run_started").is_empty(), "{records:#?}");

    // The same with the plan exempt: it runs.
    let (a, b) = (ec2.launch(), ec2.launch());
    let cli2 = cli(
        &endpoint,
        Some("backends: {drift_exempt: [{plan: \"ec2-drift-*\", reason: test}]}\n"),
    );
    let plan = cli2.write("plan.yaml", &stop_plan(&a, &b));
    let id = cli2.submit_and_approve(&plan, &[]);
    ec2.stop(&a);
    let (code, out, err) = cli2.run(&["run", &id]);
    assert_eq!(code, 0, "an exempt plan runs despite drift:\n{out}\n{err}");
    assert!(err.contains("drift check off"), "{err}");
    assert_eq!(ec2.state(&b), "stopped");
    let records = cli2.records();
    let started = of_type(&records, "run_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["drift"], "exempt: test", "the log says why");
    assert_eq!(step_finished(&records, 1).unwrap()["status"], "succeeded");
}

/// An instance that does not exist refuses the submission, naming the
/// step and the field; nothing is recorded.
#[test]
fn a_missing_instance_refuses_the_submission() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let ec2 = Ec2::new(&endpoint);
    let real = ec2.launch();
    let cli = cli(&endpoint, None);
    let plan = cli.write(
        "plan.yaml",
        &plan_text(
            "ec2-missing",
            &format!(
                "  - name: look
    ec2: {{op: describe_instances, instance_ids: [{real}]}}
    timeout: 30s
  - name: stop the ghost
    ec2: {{op: stop_instances, instance_ids: [i-0000000000000dead]}}
    timeout: 30s
"
            ),
        ),
    );
    let (code, out, err) = cli.run(&["submit", &plan]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("step `stop the ghost`"), "{err}");
    assert!(err.contains("field `instance_ids`"), "{err}");
    assert!(err.contains("i-0000000000000dead"), "{err}");
    assert!(
        of_type(&cli.records(), "plan_submitted").is_empty(),
        "a refused submission was recorded"
    );
    assert_eq!(ec2.state(&real), "running");
}

/// The breaker, at the library level, against a moto that dies and comes
/// back: it opens after the failures, refuses at once while open,
/// half-opens after `open_for`, and closes after two successes.
#[test]
fn the_breaker_opens_while_the_server_is_down_and_closes_when_it_is_back() {
    if ec2_endpoint().is_none() {
        return;
    }
    if !is_child() {
        return in_child(
            "the_breaker_opens_while_the_server_is_down_and_closes_when_it_is_back",
            &[],
        );
    }
    let mut moto = Moto::start();
    let url = moto.url();
    let ec2 = Ec2::new(&url);
    let id = ec2.launch();
    let backends = Backends::new(&BackendsPolicy {
        ec2_endpoint: Some(url.clone()),
        breaker: BreakerPolicy {
            failures: 5,
            open_for: HumanDuration::from_secs(2),
            close_after: 2,
        },
        ..Default::default()
    });
    let rt = runtime();
    let perform =
        |a: &Action, secs: u64| rt.block_on(backends.perform(a, false, Duration::from_secs(secs)));

    let o = perform(&describe(REGION, &id), 60);
    assert!(
        matches!(&o, Outcome::Answered(r) if r.ok && r.output.contains(&format!("{id}: running"))),
        "{o:?}"
    );
    assert_eq!(ec2_breaker(&backends).state, BreakerState::Closed);

    moto.kill();
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let o = perform(&describe(REGION, &id), 3);
        let open = matches!(o, Outcome::BreakerOpen(_));
        println!(
            "{:.1}s {o:?} {:?}",
            t.elapsed().as_secs_f64(),
            ec2_breaker(&backends)
        );
        assert!(
            !matches!(o, Outcome::Answered(_)),
            "a dead server answered: {o:?}"
        );
        outcomes.push(o);
        if open {
            break;
        }
    }
    assert!(
        matches!(outcomes.last(), Some(Outcome::BreakerOpen(_))),
        "the breaker did not open: {outcomes:#?}"
    );
    let view = ec2_breaker(&backends);
    assert_eq!(view.state, BreakerState::Open, "{view:?}");
    assert!(view.consecutive_failures >= 5, "{view:?}");
    let changes = backends.take_changes();
    let opened = changes
        .iter()
        .find(|c| c.backend == "ec2" && c.state == BreakerState::Open)
        .unwrap_or_else(|| panic!("no change to open: {changes:?}"));
    // The failure that opened it: the refused connection (each attempt is
    // one request: the SDK's own retries are off).
    assert!(
        opened.error.contains("cannot reach EC2"),
        "the change says why: {opened:?}"
    );

    // Open: a new call is refused without being sent.
    let o = perform(&describe(REGION, &id), 30);
    match &o {
        Outcome::BreakerOpen(m) => assert!(m.contains("ec2 circuit breaker is open"), "{m}"),
        other => panic!("not refused by the open breaker: {other:?}"),
    }
    let others = backends.breakers();
    assert!(
        others
            .iter()
            .filter(|b| b.backend != "ec2")
            .all(|b| b.state == BreakerState::Closed),
        "only the ec2 breaker opens: {others:?}"
    );

    // Back: moto starts again (empty) on the same port.
    moto.restart();
    let id = ec2.launch();
    let started = Instant::now();
    while ec2_breaker(&backends).state != BreakerState::HalfOpen {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the breaker did not half-open: {:?}",
            ec2_breaker(&backends)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = perform(&describe(REGION, &id), 60);
    assert!(matches!(&o, Outcome::Answered(r) if r.ok), "{o:?}");
    assert_eq!(
        ec2_breaker(&backends).state,
        BreakerState::HalfOpen,
        "one success is not enough to close it"
    );
    let o = perform(&describe(REGION, &id), 60);
    assert!(matches!(&o, Outcome::Answered(r) if r.ok), "{o:?}");
    let view = ec2_breaker(&backends);
    assert_eq!(view.state, BreakerState::Closed, "{view:?}");
    assert_eq!(view.consecutive_failures, 0);
    let changes = backends.take_changes();
    assert!(
        changes
            .iter()
            .any(|c| c.backend == "ec2" && c.state == BreakerState::Closed),
        "{changes:?}"
    );
}

/// The breaker through the binary: a step kills moto, the next EC2 step
/// fails until the breaker opens (recorded), and the EC2 rollback fails at
/// once with the breaker's message.
#[test]
fn the_breaker_opens_during_a_run_and_fails_the_rollback_fast() {
    if ec2_endpoint().is_none() {
        return;
    }
    let moto = Moto::start();
    let url = moto.url();
    let ec2 = Ec2::new(&url);
    let id = ec2.launch();
    let cli = Cli::new(
        Some(&format!(
            "backends:\n  ec2_endpoint: {url}\n  breaker: {{failures: 2, open_for: 60s, close_after: 2}}\n"
        )),
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let plan = cli.write(
        "plan.yaml",
        &plan_text(
            "ec2-breaker",
            &format!(
                "  - name: kill the EC2 server
    run: kill {pid}
    timeout: 10s
    rollback:
      ec2: {{op: start_instances, instance_ids: [{id}]}}
  - name: look
    ec2: {{op: describe_instances, instance_ids: [{id}]}}
    timeout: 5s
",
                pid = moto.pid()
            ),
        ),
    );
    let plan_id = cli.submit_and_approve(&plan, &[]);
    let (code, out, err) = cli.run(&["run", &plan_id, "--rollback-on-failure"]);
    assert_eq!(code, 1, "the run should fail at step 2:\n{out}\n{err}");
    assert!(!moto_answers(moto.port), "step 1 did not kill moto");

    let records = cli.records();
    assert_eq!(step_finished(&records, 1).unwrap()["status"], "succeeded");
    let look = step_finished(&records, 2).unwrap();
    assert_ne!(look["status"], "succeeded", "{look:#}");
    // The failure: the breaker, opened by the refused connections within
    // the step's timeout, stops the retries.
    let why = look["output"].as_str().unwrap();
    assert!(why.contains("circuit breaker is open"), "{look:#}");
    println!("step 2: {look:#}");
    let changes = of_type(&records, "breaker_changed");
    let opened = changes
        .iter()
        .find(|c| c["backend"] == "ec2" && c["state"] == "open")
        .unwrap_or_else(|| panic!("no breaker_changed to open: {records:#?}"));
    assert!(
        opened["consecutive_failures"].as_u64().unwrap() >= 2,
        "{opened:#}"
    );
    assert!(!opened["run_id"].as_str().unwrap_or_default().is_empty());
    println!("breaker changes: {changes:#?}");
    let undo = of_type(&records, "rollback_step_finished");
    println!("rollback: {undo:#?}");
    assert_eq!(undo.len(), 1, "{undo:#?}");
    assert_eq!(undo[0]["status"], "failed", "{:#}", undo[0]);
    assert!(
        undo[0]["output"]
            .as_str()
            .unwrap()
            .contains("the ec2 circuit breaker is open"),
        "{:#}",
        undo[0]
    );
    assert_eq!(
        of_type(&records, "rollback_finished")[0]["status"],
        "failed"
    );
}

/// A kube client and an EC2 client in one process: one TLS provider, so
/// neither panics.
#[test]
fn kube_and_ec2_clients_live_in_one_process() {
    let Some(endpoint) = ec2_endpoint() else {
        return;
    };
    let kube = kubeconfig();
    if !is_child() {
        let path = kube.map(|p| p.display().to_string());
        let env: Vec<(&str, &str)> = path.iter().map(|p| ("KUBECONFIG", p.as_str())).collect();
        return in_child("kube_and_ec2_clients_live_in_one_process", &env);
    }
    let backends = Backends::new(&BackendsPolicy {
        ec2_endpoint: Some(endpoint.clone()),
        ..Default::default()
    });
    let rt = runtime();
    let perform = |a: &Action| {
        let o = rt.block_on(backends.perform(a, false, Duration::from_secs(60)));
        println!("{}: {o:?}", a.command_line());
        o
    };
    let namespace = Action::Kube(KubeAction {
        context: None,
        verb: KubeVerb::Get,
        kind: "Namespace".into(),
        api_version: None,
        namespace: None,
        name: "default".into(),
    });
    // The kube client first (the first TLS client in the process), then
    // EC2, then kube again.
    if kube.is_some() {
        let o = perform(&namespace);
        assert!(
            matches!(&o, Outcome::Answered(r) if r.ok && r.output.contains("default")),
            "{o:?}"
        );
    }
    let id = Ec2::new(&endpoint).launch();
    let o = perform(&describe(REGION, &id));
    assert!(
        matches!(&o, Outcome::Answered(r) if r.ok && r.output.contains(&format!("{id}: running"))),
        "{o:?}"
    );
    if kube.is_some() {
        let o = perform(&namespace);
        assert!(matches!(&o, Outcome::Answered(r) if r.ok), "{o:?}");
    }
}
