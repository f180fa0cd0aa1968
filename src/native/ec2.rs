//! EC2 through aws-sdk-ec2: the standard credential chain, the region from
//! the action (the plan's `target.aws_region`) or the environment, and the
//! endpoint from `AWS_ENDPOINT_URL` or the policy's `backends.ec2_endpoint`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::{CallError, Reply, error_chain};
use crate::core::plan::native::{Ec2Action, Ec2Verb, InstanceState};

/// One TLS stack in the process: rustls with ring, the provider kube uses
/// too (two providers make the first TLS client panic).
pub(super) async fn client(region: Option<&str>, endpoint: Option<&str>) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    // Retries are opsgate's (backoff with jitter within the step's timeout,
    // each attempt counted by the breaker), not the SDK's as well.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none()
        && let Some(e) = endpoint
    {
        loader = loader.endpoint_url(e);
    }
    Client::new(&loader.load().await)
}

/// Error codes that mean "try again".
const TRANSIENT_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

fn error<E>(e: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("unknown");
            let message = err.message().unwrap_or_default();
            let status = s.raw().status().as_u16();
            CallError {
                transient: TRANSIENT_CODES.contains(&code) || status >= 500,
                message: format!("EC2 refused: {code}: {message}"),
            }
        }
        SdkError::ConstructionFailure(_) => {
            CallError::permanent(format!("cannot build the EC2 request: {e:?}"))
        }
        // A connection that failed or timed out is worth another try; a
        // dispatch that failed for another reason (no credentials, a bad
        // endpoint) is not.
        SdkError::DispatchFailure(d) if !(d.is_io() || d.is_timeout()) => {
            CallError::permanent(format!("cannot call EC2: {}", error_chain(e)))
        }
        // Timeouts and unreadable responses.
        other => CallError::transient(format!("cannot reach EC2: {}", error_chain(other))),
    }
}

/// A dry run answers `DryRunOperation` when the real call would have
/// succeeded; any other answer is the reason it would not.
fn dry_run_result<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    what: &str,
) -> Result<Reply, CallError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Err(SdkError::ServiceError(s)) if s.err().code() == Some("DryRunOperation") => {
            Ok(Reply::done(format!(
                "dry run: EC2 says {what} would succeed (DryRunOperation)"
            )))
        }
        Err(e) => Err(error(&e)),
        Ok(_) => Err(CallError::permanent(format!(
            "dry run: EC2 ran {what} instead of answering DryRunOperation"
        ))),
    }
}

pub(super) async fn call(
    client: &Client,
    a: &Ec2Action,
    dry_run: bool,
    left: Duration,
) -> Result<Reply, CallError> {
    let ids = Some(a.instance_ids.clone());
    let what = format!("{} {}", a.verb.name(), a.instance_ids.join(","));
    macro_rules! mutate {
        ($builder:expr, $changes:ident) => {{
            let r = $builder.set_instance_ids(ids).dry_run(dry_run).send().await;
            if dry_run {
                return dry_run_result(r, &what);
            }
            let out = r.map_err(|e| error(&e))?;
            let lines: Vec<String> = out
                .$changes()
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c.instance_id().unwrap_or_default(),
                        c.previous_state()
                            .and_then(|s| s.name())
                            .map_or("?", |s| s.as_str()),
                        c.current_state()
                            .and_then(|s| s.name())
                            .map_or("?", |s| s.as_str()),
                    )
                })
                .collect();
            Ok(Reply::done(lines.join("\n")))
        }};
    }
    match &a.verb {
        Ec2Verb::DescribeInstances => {
            let states = describe_states(client, &a.instance_ids).await?;
            Ok(Reply::done(
                states
                    .iter()
                    .map(|(id, s)| format!("{id}: {s}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ))
        }
        Ec2Verb::StartInstances => mutate!(client.start_instances(), starting_instances),
        Ec2Verb::StopInstances => mutate!(client.stop_instances(), stopping_instances),
        Ec2Verb::TerminateInstances => {
            mutate!(client.terminate_instances(), terminating_instances)
        }
        Ec2Verb::RebootInstances => {
            let r = client
                .reboot_instances()
                .set_instance_ids(ids)
                .dry_run(dry_run)
                .send()
                .await;
            if dry_run {
                return dry_run_result(r, &what);
            }
            r.map_err(|e| error(&e))?;
            Ok(Reply::done(format!(
                "rebooting {}",
                a.instance_ids.join(", ")
            )))
        }
        Ec2Verb::InstanceState { state } => wait(client, &a.instance_ids, *state, left).await,
    }
}

/// The SDK waiter for `state`, for most of the time left (the rest is for
/// the answer to arrive).
async fn wait(
    client: &Client,
    ids: &[String],
    state: InstanceState,
    left: Duration,
) -> Result<Reply, CallError> {
    let max_wait = left.mul_f64(0.9).max(Duration::from_millis(500));
    let list = Some(ids.to_vec());
    let result = match state {
        InstanceState::Running => client
            .wait_until_instance_running()
            .set_instance_ids(list.clone())
            .wait(max_wait)
            .await
            .map(|_| ()),
        InstanceState::Stopped => client
            .wait_until_instance_stopped()
            .set_instance_ids(list.clone())
            .wait(max_wait)
            .await
            .map(|_| ()),
        InstanceState::Terminated => client
            .wait_until_instance_terminated()
            .set_instance_ids(list.clone())
            .wait(max_wait)
            .await
            .map(|_| ()),
    };
    let now = || async {
        describe_states(client, ids)
            .await
            .map(|s| {
                s.iter()
                    .map(|(id, st)| format!("{id} {st}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|e| e.message)
    };
    match result {
        Ok(()) => Ok(Reply::check(
            true,
            format!("{}: all {}", ids.join(", "), state.as_str()),
        )),
        Err(WaiterError::ExceededMaxWait(_)) => Ok(Reply::check(
            false,
            format!(
                "not {} within {:.0}s: {}",
                state.as_str(),
                max_wait.as_secs_f64(),
                now().await
            ),
        )),
        Err(WaiterError::FailureState(_)) => Ok(Reply::check(
            false,
            format!("cannot become {}: {}", state.as_str(), now().await),
        )),
        Err(WaiterError::OperationFailed(f)) => Err(error(f.error())),
        Err(e) => Err(CallError::permanent(format!("cannot wait: {e:?}"))),
    }
}

/// Each instance's state, in the order asked; a missing instance is an
/// error naming it.
async fn describe_states(
    client: &Client,
    ids: &[String],
) -> Result<Vec<(String, String)>, CallError> {
    let out = client
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| error(&e))?;
    let found: BTreeMap<String, String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_owned(),
                i.state()
                    .and_then(|s| s.name())
                    .map_or("unknown", |s| s.as_str())
                    .to_owned(),
            )
        })
        .collect();
    ids.iter()
        .map(|id| match found.get(id) {
            Some(s) => Ok((id.clone(), s.clone())),
            None => Err(CallError::permanent(format!("no such instance `{id}`"))),
        })
        .collect()
}

pub(super) async fn fingerprints(
    client: &Client,
    a: &Ec2Action,
) -> Result<BTreeMap<String, String>, CallError> {
    let region = a.region.as_deref().unwrap_or("default");
    Ok(describe_states(client, &a.instance_ids)
        .await?
        .into_iter()
        .map(|(id, s)| (format!("ec2:{region}/{id}"), format!("state={s}")))
        .collect())
}
