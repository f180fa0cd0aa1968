//! What the native layer costs over a bare API call, side by side in one run
//! against the test servers (`scripts/test-env.sh up`, then source its env):
//!
//! - Docker: `inspect` of one container through `Backends::perform` (breaker,
//!   retry loop, timeout, the reply text) and through bollard directly;
//! - EC2: `describe_instances` of one instance, the same two ways (moto);
//! - the drift check's read of a plan with one Docker and one EC2 target
//!   (`Backends::fingerprints`).
//!
//! `cargo bench --bench native` times 300 calls each; under
//! `cargo test --benches` it makes 5 and checks the answers. Without the
//! servers it says so and does nothing (and fails if
//! `OPSGATE_REQUIRE_BACKENDS` is set).

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use opsgate::core::plan::native::{DockerAction, DockerVerb, Ec2Action, Ec2Verb};
use opsgate::core::plan::{Action, Plan, PlanRollback, Step, Target};
use opsgate::core::policy::BackendsPolicy;
use opsgate::native::{Backends, Outcome};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn server(var: &str) -> BenchResult<Option<String>> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ if std::env::var_os("OPSGATE_REQUIRE_BACKENDS").is_some() => {
            Err(format!("{var} is not set and OPSGATE_REQUIRE_BACKENDS is").into())
        }
        _ => {
            println!("SKIPPED: {var} is not set: start the servers with scripts/test-env.sh up");
            Ok(None)
        }
    }
}

/// Mean and p99 of `n` timed calls of `f`, in ms.
async fn time<F, Fut>(n: usize, mut f: F) -> BenchResult<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        all.push(t.elapsed());
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = ms(all.iter().sum::<Duration>()) / n as f64;
    let p99 = ms(all[(n * 99 / 100).min(n - 1)]);
    Ok((mean, p99))
}

fn answered(o: Outcome) -> BenchResult<()> {
    match o {
        Outcome::Answered(r) if r.ok => Ok(()),
        other => Err(format!("the call failed: {other:?}").into()),
    }
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 300 } else { 5 };
    let (Some(docker_host), Some(ec2_url)) = (
        server("OPSGATE_TEST_DOCKER_HOST")?,
        server("OPSGATE_TEST_EC2_ENDPOINT")?,
    ) else {
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let backends = Backends::new(&BackendsPolicy {
            ec2_endpoint: Some(ec2_url.clone()),
            ..BackendsPolicy::default()
        });
        let timeout = Duration::from_secs(10);

        // A container to inspect.
        let docker = Docker::connect_with_host(&docker_host)?
            .negotiate_version()
            .await?;
        let name = format!("bench-{}", std::process::id());
        docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                ContainerCreateBody {
                    image: Some("opsgate-test/busybox:latest".into()),
                    cmd: Some(vec!["sleep".into(), "600".into()]),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".into()),
                        init: Some(true),
                        ..HostConfig::default()
                    }),
                    ..ContainerCreateBody::default()
                },
            )
            .await?;
        docker.start_container(&name, None).await?;

        // An instance to describe (moto takes any credentials).
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new("us-east-1"))
            .endpoint_url(&ec2_url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "bench"))
            .load()
            .await;
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let run = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(1)
            .max_count(1)
            .send()
            .await?;
        let id = run
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .ok_or("no instance")?
            .to_owned();

        let inspect = Action::Docker(DockerAction {
            host: Some(docker_host.clone()),
            verb: DockerVerb::Inspect,
            container: Some(name.clone()),
        });
        let describe = Action::Ec2(Ec2Action {
            region: Some("us-east-1".into()),
            verb: Ec2Verb::DescribeInstances,
            instance_ids: vec![id.clone()],
        });
        // Warm both clients and servers.
        answered(backends.perform(&inspect, false, timeout).await)?;
        answered(backends.perform(&describe, false, timeout).await)?;

        let docker_native = time(n, || async {
            answered(backends.perform(&inspect, false, timeout).await)
        })
        .await?;
        let docker_raw = time(n, || async {
            docker.inspect_container(&name, None).await?;
            Ok(())
        })
        .await?;
        let ec2_native = time(n, || async {
            answered(backends.perform(&describe, false, timeout).await)
        })
        .await?;
        let ec2_raw = time(n, || async {
            ec2.describe_instances()
                .instance_ids(&id)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok(())
        })
        .await?;
        let step = |name: &str, action: Action| Step {
            name: name.into(),
            action,
            timeout: opsgate::core::duration::HumanDuration::from_secs(10),
            pre_checks: Vec::new(),
            post_checks: Vec::new(),
            rollback: None,
            keep_background: false,
        };
        let plan = Plan {
            id: "bench".into(),
            title: "bench".into(),
            description: None,
            author: None,
            target: Target::default(),
            params: Default::default(),
            env: Default::default(),
            files: Default::default(),
            estimated_time: None,
            steps: vec![step("a", inspect.clone()), step("b", describe.clone())],
            rollback: PlanRollback::Absent,
            production_override: None,
        };
        let drift = time(n, || async {
            let f = backends.fingerprints(&plan).await?;
            if f.len() != 2 {
                return Err(format!("expected 2 fingerprints, got {f:?}").into());
            }
            Ok(())
        })
        .await?;

        println!("{n} calls each (mean / p99):");
        let row = |what: &str, (mean, p99): (f64, f64)| {
            println!("  {what:<42} {mean:>7.3} ms  {p99:>7.3} ms");
        };
        row("docker inspect through Backends::perform", docker_native);
        row("docker inspect, bollard directly", docker_raw);
        row("ec2 describe through Backends::perform", ec2_native);
        row("ec2 describe, aws-sdk-ec2 directly", ec2_raw);
        row("drift check read (1 container, 1 instance)", drift);
        println!(
            "  overhead of the native layer: docker {:+.3} ms, ec2 {:+.3} ms a call",
            docker_native.0 - docker_raw.0,
            ec2_native.0 - ec2_raw.0
        );

        let _ = docker
            .remove_container(
                &name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        let _ = ec2.terminate_instances().instance_ids(&id).send().await;
        Ok(())
    })
}
