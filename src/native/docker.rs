//! Docker through bollard: `DOCKER_HOST`, or the action's host.

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::errors::Error;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};

use super::{CallError, Reply};
use crate::core::plan::native::{DockerAction, DockerVerb};

/// Seconds a stop or restart waits before SIGKILL.
const STOP_GRACE: i32 = 10;

/// A client speaking the daemon's API version (an older daemon refuses
/// requests made in a newer version).
pub(super) async fn client(host: Option<&str>) -> Result<Docker, CallError> {
    let result = match host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    };
    let docker =
        result.map_err(|e| CallError::permanent(format!("cannot use Docker at {host:?}: {e}")))?;
    docker.negotiate_version().await.map_err(|e| error(e, None))
}

fn error(e: Error, container: Option<&str>) -> CallError {
    match e {
        Error::DockerResponseServerError {
            status_code: 404, ..
        } => CallError::permanent(format!(
            "no such container `{}`",
            container.unwrap_or_default()
        )),
        Error::DockerResponseServerError {
            status_code,
            message,
        } => CallError {
            transient: matches!(status_code, 429 | 502 | 503 | 504),
            message: format!("Docker answered {status_code}: {message}"),
        },
        Error::JsonSerdeError { .. } | Error::JsonDataError { .. } => {
            CallError::permanent(format!("Docker's answer cannot be read: {e}"))
        }
        other => CallError::transient(format!("cannot reach Docker: {other}")),
    }
}

pub(super) async fn call(
    docker: &Docker,
    a: &DockerAction,
    dry_run: bool,
) -> Result<Reply, CallError> {
    let name = a.container.as_deref().unwrap_or_default();
    let err = |e| error(e, a.container.as_deref());
    match &a.verb {
        DockerVerb::Ps => {
            let list = docker
                .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
                .await
                .map_err(err)?;
            let lines: Vec<String> = list
                .iter()
                .map(|c| {
                    format!(
                        "{}  {}  {}",
                        c.id.as_deref()
                            .unwrap_or_default()
                            .get(..12)
                            .unwrap_or_default(),
                        c.names.as_ref().map(|n| n.join(",")).unwrap_or_default(),
                        c.state.map(|s| s.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            return Ok(Reply::done(lines.join("\n")));
        }
        DockerVerb::Inspect | DockerVerb::Running | DockerVerb::Healthy => {}
        _ if dry_run => {}
        DockerVerb::Start => docker.start_container(name, None).await.map_err(err)?,
        DockerVerb::Stop => docker
            .stop_container(
                name,
                Some(StopContainerOptionsBuilder::new().t(STOP_GRACE).build()),
            )
            .await
            .map_err(err)?,
        DockerVerb::Restart => docker
            .restart_container(
                name,
                Some(RestartContainerOptionsBuilder::new().t(STOP_GRACE).build()),
            )
            .await
            .map_err(err)?,
        DockerVerb::Remove { force } => {
            docker
                .remove_container(
                    name,
                    Some(RemoveContainerOptionsBuilder::new().force(*force).build()),
                )
                .await
                .map_err(err)?;
            return Ok(Reply::done(format!("removed {name}")));
        }
    }
    let (id, state, health) = state(docker, name).await.map_err(err)?;
    let summary = format!("{name}: id {id}, {state}{}", health_note(health.as_deref()));
    Ok(match &a.verb {
        DockerVerb::Running => Reply::check(state == "running", summary),
        DockerVerb::Healthy => match health.as_deref() {
            None => Reply::check(false, format!("{summary}: it has no health check")),
            h => Reply::check(h == Some("healthy"), summary),
        },
        DockerVerb::Inspect => Reply::done(summary),
        verb if dry_run => Reply::done(format!(
            "dry run: would {} {name} (it exists: {summary})",
            verb.name()
        )),
        verb => Reply::done(format!("{} {name}: now {summary}", verb.name())),
    })
}

fn health_note(health: Option<&str>) -> String {
    health.map(|h| format!(", health {h}")).unwrap_or_default()
}

/// A container's short id, state and health (when it has a health check).
async fn state(docker: &Docker, name: &str) -> Result<(String, String, Option<String>), Error> {
    let info = docker.inspect_container(name, None).await?;
    let id = info
        .id
        .as_deref()
        .unwrap_or_default()
        .get(..12)
        .unwrap_or_default()
        .to_owned();
    let state = info.state.as_ref();
    let status = state
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let health = state
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map(|h| h.to_string());
    Ok((id, status, health))
}

pub(super) async fn fingerprint(
    docker: &Docker,
    a: &DockerAction,
) -> Result<BTreeMap<String, String>, CallError> {
    let Some(name) = a.container.as_deref() else {
        return Ok(BTreeMap::new());
    };
    let (id, state, _) = state(docker, name)
        .await
        .map_err(|e| error(e, Some(name)))?;
    let host = a.host.as_deref().unwrap_or("default");
    Ok(BTreeMap::from([(
        format!("docker:{host}/{name}"),
        format!("id={id} state={state}"),
    )]))
}
