//! Kubernetes through kube: the kubeconfig (`KUBECONFIG`, else
//! `~/.kube/config`) and the action's context (the plan's
//! `target.kube_context`), dynamic objects for every kind.

use std::collections::BTreeMap;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PropagationPolicy,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use super::{CallError, Reply, error_chain};
use crate::core::plan::native::{KubeAction, KubeVerb, Propagation, known_kind};

/// The field manager opsgate's writes are recorded under.
const FIELD_MANAGER: &str = "opsgate";

pub(super) async fn client(context: Option<&str>) -> Result<Client, CallError> {
    let config = match context {
        None => Config::infer()
            .await
            .map_err(|e| CallError::permanent(format!("no Kubernetes configuration: {e}")))?,
        Some(ctx) => {
            let kubeconfig = Kubeconfig::read()
                .map_err(|e| CallError::permanent(format!("cannot read the kubeconfig: {e}")))?;
            let options = KubeConfigOptions {
                context: Some(ctx.to_owned()),
                ..KubeConfigOptions::default()
            };
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| CallError::permanent(format!("kubeconfig context `{ctx}`: {e}")))?
        }
    };
    Client::try_from(config)
        .map_err(|e| CallError::permanent(format!("cannot make a Kubernetes client: {e}")))
}

fn error(e: kube::Error, what: &str) -> CallError {
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            let message = if code == 404 {
                format!("{what} does not exist")
            } else {
                format!("the API server refused {what}: {} ({code})", status.message)
            };
            CallError {
                transient: matches!(code, 429 | 500 | 502 | 503 | 504),
                message,
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            CallError::transient(format!("cannot reach the API server: {}", error_chain(&e)))
        }
        other => CallError::permanent(format!("{what}: {}", error_chain(&other))),
    }
}

/// The API for the action's object: known kinds from the table, others
/// found by discovery.
async fn api(client: &Client, a: &KubeAction) -> Result<Api<DynamicObject>, CallError> {
    let resource = match known_kind(&a.kind) {
        Some(k) if a.api_version.as_deref().is_none_or(|v| v == k.api_version) => {
            let (group, version) = split_api_version(k.api_version);
            ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version: k.api_version.to_owned(),
                kind: k.kind.to_owned(),
                plural: k.plural.to_owned(),
            }
        }
        _ => {
            let api_version = a.api_version.as_deref().unwrap_or("v1");
            let (group, version) = split_api_version(api_version);
            let gvk = GroupVersionKind::gvk(group, version, &a.kind);
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|e| error(e, &format!("kind `{}` in `{api_version}`", a.kind)))?
                .0
        }
    };
    Ok(match &a.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    })
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// `Deployment staging/api`.
fn object(a: &KubeAction) -> String {
    match &a.namespace {
        Some(ns) => format!("{} {ns}/{}", a.kind, a.name),
        None => format!("{} {}", a.kind, a.name),
    }
}

fn patch_params(dry_run: bool) -> PatchParams {
    PatchParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

pub(super) async fn call(
    client: &Client,
    a: &KubeAction,
    dry_run: bool,
) -> Result<Reply, CallError> {
    let api = api(client, a).await?;
    let what = object(a);
    let err = |e| error(e, &what);
    let dry = if dry_run {
        " (dry run: dryRun=All, nothing changed)"
    } else {
        ""
    };
    match &a.verb {
        KubeVerb::Scale { replicas } => {
            let patch = json!({"spec": {"replicas": replicas}});
            api.patch(&a.name, &patch_params(dry_run), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
            Ok(Reply::done(format!(
                "scaled {what} to {replicas} replicas{dry}"
            )))
        }
        KubeVerb::RolloutRestart => {
            // What `kubectl rollout restart` does: a new pod template
            // annotation, which starts a new rollout.
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": now
            }}}}});
            api.patch(&a.name, &patch_params(dry_run), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
            Ok(Reply::done(format!(
                "restarted {what} (restartedAt {now}){dry}"
            )))
        }
        KubeVerb::Apply { manifest, content } => {
            let object: Value = serde_saphyr::from_str(content).map_err(|e| {
                CallError::permanent(format!("the manifest `{manifest}` cannot be read: {e}"))
            })?;
            let mut params = PatchParams::apply(FIELD_MANAGER).force();
            params.dry_run = dry_run;
            let applied = api
                .patch(&a.name, &params, &Patch::Apply(&object))
                .await
                .map_err(err)?;
            Ok(Reply::done(format!(
                "applied {manifest} to {what} (resourceVersion {}){dry}",
                applied.metadata.resource_version.unwrap_or_default()
            )))
        }
        KubeVerb::Delete { propagation } => {
            let params = DeleteParams {
                dry_run,
                propagation_policy: Some(match propagation {
                    Propagation::Foreground => PropagationPolicy::Foreground,
                    Propagation::Background => PropagationPolicy::Background,
                    Propagation::Orphan => PropagationPolicy::Orphan,
                }),
                ..DeleteParams::default()
            };
            api.delete(&a.name, &params).await.map_err(err)?;
            Ok(Reply::done(format!("deleted {what}{dry}")))
        }
        KubeVerb::Get => {
            let o = api.get(&a.name).await.map_err(err)?;
            Ok(Reply::done(describe(&what, &o)))
        }
        KubeVerb::Exists => match api.get_opt(&a.name).await.map_err(err)? {
            Some(o) => Ok(Reply::check(true, describe(&what, &o))),
            None => Ok(Reply::check(false, format!("{what} does not exist"))),
        },
        KubeVerb::RolloutComplete => {
            let o = api.get(&a.name).await.map_err(err)?;
            let (done, why) = rollout_status(&a.kind, &o);
            Ok(Reply::check(done, format!("{what}: {why}")))
        }
        KubeVerb::ReplicasReady { replicas } => {
            let o = api.get(&a.name).await.map_err(err)?;
            let want = replicas
                .map(i64::from)
                .unwrap_or_else(|| int(&o.data, "/spec/replicas").unwrap_or(1));
            let ready = int(&o.data, "/status/readyReplicas").unwrap_or(0);
            Ok(Reply::check(
                ready >= want,
                format!("{what}: {ready} of {want} replicas ready"),
            ))
        }
    }
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn describe(what: &str, o: &DynamicObject) -> String {
    let mut s = format!(
        "{what}: resourceVersion {}, generation {}",
        o.metadata.resource_version.as_deref().unwrap_or("?"),
        o.metadata.generation.unwrap_or(0)
    );
    if let Some(r) = int(&o.data, "/spec/replicas") {
        s.push_str(&format!(
            ", replicas {r} (ready {})",
            int(&o.data, "/status/readyReplicas").unwrap_or(0)
        ));
    }
    s
}

/// Whether a rollout is complete, by the rules `kubectl rollout status`
/// uses, and what it is waiting for if not.
fn rollout_status(kind: &str, o: &DynamicObject) -> (bool, String) {
    let d = &o.data;
    let generation = o.metadata.generation.unwrap_or(0);
    let observed = int(d, "/status/observedGeneration").unwrap_or(0);
    if observed < generation {
        return (
            false,
            format!(
                "waiting for the controller to observe generation {generation} (it has seen {observed})"
            ),
        );
    }
    let status = |f: &str| int(d, &format!("/status/{f}")).unwrap_or(0);
    match kind {
        "DaemonSet" => {
            let desired = status("desiredNumberScheduled");
            let updated = status("updatedNumberScheduled");
            let available = status("numberAvailable");
            if updated < desired {
                (
                    false,
                    format!("{updated} of {desired} updated pods scheduled"),
                )
            } else if available < desired {
                (
                    false,
                    format!("{available} of {desired} updated pods available"),
                )
            } else {
                (
                    true,
                    format!("rolled out: {available} of {desired} available"),
                )
            }
        }
        _ => {
            let want = int(d, "/spec/replicas").unwrap_or(1);
            let updated = status("updatedReplicas");
            let current = status("replicas");
            let ready = if kind == "StatefulSet" {
                status("readyReplicas")
            } else {
                status("availableReplicas")
            };
            if updated < want {
                (false, format!("{updated} of {want} replicas updated"))
            } else if current > updated {
                (
                    false,
                    format!("{} old replicas pending termination", current - updated),
                )
            } else if ready < updated {
                (
                    false,
                    format!("{ready} of {updated} updated replicas available"),
                )
            } else {
                (
                    true,
                    format!("rolled out: {ready} of {want} replicas available"),
                )
            }
        }
    }
}

/// The object's generation (which only a change of its spec moves), else
/// its resourceVersion, and its uid (so an object deleted and made again
/// under the same name, or one of the same name in another cluster, is not
/// the one approved); `absent` for an `apply` that will create it.
pub(super) async fn fingerprint(
    client: &Client,
    a: &KubeAction,
) -> Result<BTreeMap<String, String>, CallError> {
    let api = api(client, a).await?;
    let what = object(a);
    let found = api.get_opt(&a.name).await.map_err(|e| error(e, &what))?;
    let value = match found {
        Some(o) => {
            let uid = o.metadata.uid.unwrap_or_default();
            match o.metadata.generation {
                Some(g) => format!("generation={g} uid={uid}"),
                None => format!(
                    "resourceVersion={} uid={uid}",
                    o.metadata.resource_version.unwrap_or_default()
                ),
            }
        }
        None if matches!(a.verb, KubeVerb::Apply { .. }) => "absent".into(),
        None => return Err(CallError::permanent(format!("{what} does not exist"))),
    };
    let key = format!(
        "kube:{}/{}/{}/{}",
        a.context.as_deref().unwrap_or("current"),
        a.namespace.as_deref().unwrap_or("-"),
        a.kind,
        a.name
    );
    Ok(BTreeMap::from([(key, value)]))
}
