//! Native actions: typed Kubernetes, EC2 and Docker operations and checks.
//!
//! A native action is resolved when the plan loads: the namespace, context,
//! region and Docker host come from the plan's `target` when the action does
//! not name them, and an applied manifest is read into the plan, so the plan
//! hash covers exactly what will be sent.
//!
//! Each action has a *shell twin*, the `kubectl`, `aws` or `docker` line that
//! does the same thing. Classification rates the twin with the policy's one
//! rule table, so a native `delete` of a Namespace is exactly as risky as
//! `kubectl delete namespace`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A Kubernetes operation or check on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeAction {
    /// The kubeconfig context; the current context when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub verb: KubeVerb,
    pub kind: String,
    /// `group/version` (`apps/v1`); known kinds need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Absent for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeVerb {
    Scale {
        replicas: i32,
    },
    RolloutRestart,
    /// Server-side apply of `content`, read from the file `manifest`.
    Apply {
        manifest: String,
        content: String,
    },
    Delete {
        propagation: Propagation,
    },
    Get,
    // Checks.
    RolloutComplete,
    Exists,
    ReplicasReady {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<i32>,
    },
}

impl KubeVerb {
    pub fn name(&self) -> &'static str {
        match self {
            KubeVerb::Scale { .. } => "scale",
            KubeVerb::RolloutRestart => "rollout_restart",
            KubeVerb::Apply { .. } => "apply",
            KubeVerb::Delete { .. } => "delete",
            KubeVerb::Get => "get",
            KubeVerb::RolloutComplete => "rollout_complete",
            KubeVerb::Exists => "exists",
            KubeVerb::ReplicasReady { .. } => "replicas_ready",
        }
    }
}

/// How a delete treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    Foreground,
    Background,
    Orphan,
}

/// An EC2 operation or check on a set of instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2Action {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub verb: Ec2Verb,
    pub instance_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ec2Verb {
    DescribeInstances,
    StartInstances,
    StopInstances,
    RebootInstances,
    TerminateInstances,
    // Check.
    InstanceState { state: InstanceState },
}

impl Ec2Verb {
    pub fn name(&self) -> &'static str {
        match self {
            Ec2Verb::DescribeInstances => "describe_instances",
            Ec2Verb::StartInstances => "start_instances",
            Ec2Verb::StopInstances => "stop_instances",
            Ec2Verb::RebootInstances => "reboot_instances",
            Ec2Verb::TerminateInstances => "terminate_instances",
            Ec2Verb::InstanceState { .. } => "instance_state",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Running,
    Stopped,
    Terminated,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Running => "running",
            InstanceState::Stopped => "stopped",
            InstanceState::Terminated => "terminated",
        }
    }
}

/// A Docker operation or check on one container (`ps` on all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerAction {
    /// `unix:///path` or `tcp://host:port`; `DOCKER_HOST` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub verb: DockerVerb,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerVerb {
    Ps,
    Inspect,
    Start,
    Stop,
    Restart,
    Remove { force: bool },
    // Checks.
    Running,
    Healthy,
}

impl DockerVerb {
    pub fn name(&self) -> &'static str {
        match self {
            DockerVerb::Ps => "ps",
            DockerVerb::Inspect => "inspect",
            DockerVerb::Start => "start",
            DockerVerb::Stop => "stop",
            DockerVerb::Restart => "restart",
            DockerVerb::Remove { .. } => "remove",
            DockerVerb::Running => "running",
            DockerVerb::Healthy => "healthy",
        }
    }
}

/// Where a Kubernetes kind lives, for the kinds a plan may name without
/// `api_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKind {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The plural resource name, as in the API path.
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn known(
    kind: &'static str,
    api_version: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> KnownKind {
    KnownKind {
        kind,
        api_version,
        plural,
        namespaced,
    }
}

/// The kinds every cluster serves.
pub const KNOWN_KINDS: &[KnownKind] = &[
    known("Deployment", "apps/v1", "deployments", true),
    known("StatefulSet", "apps/v1", "statefulsets", true),
    known("DaemonSet", "apps/v1", "daemonsets", true),
    known("ReplicaSet", "apps/v1", "replicasets", true),
    known("Pod", "v1", "pods", true),
    known("Service", "v1", "services", true),
    known("ConfigMap", "v1", "configmaps", true),
    known("Secret", "v1", "secrets", true),
    known("ServiceAccount", "v1", "serviceaccounts", true),
    known(
        "PersistentVolumeClaim",
        "v1",
        "persistentvolumeclaims",
        true,
    ),
    known("Job", "batch/v1", "jobs", true),
    known("CronJob", "batch/v1", "cronjobs", true),
    known("Ingress", "networking.k8s.io/v1", "ingresses", true),
    known("Role", "rbac.authorization.k8s.io/v1", "roles", true),
    known(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        true,
    ),
    known("Namespace", "v1", "namespaces", false),
    known("Node", "v1", "nodes", false),
    known("PersistentVolume", "v1", "persistentvolumes", false),
    known(
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        false,
    ),
    known(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        false,
    ),
    known("StorageClass", "storage.k8s.io/v1", "storageclasses", false),
    known(
        "CustomResourceDefinition",
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        false,
    ),
];

/// A known kind by name, case-insensitively (`deployment`, `Deployment`).
pub fn known_kind(kind: &str) -> Option<&'static KnownKind> {
    KNOWN_KINDS
        .iter()
        .find(|k| k.kind.eq_ignore_ascii_case(kind))
}

impl KubeAction {
    /// The `kubectl` line that does the same thing. Every value from the
    /// plan is quoted when it needs it, so no name can read as a flag, a
    /// comment or a second command to the classifier.
    pub fn twin(&self) -> String {
        let kind = quote(&self.kind.to_ascii_lowercase());
        let name = quote(&self.name);
        let object = quote(&format!("{}/{}", self.kind.to_ascii_lowercase(), self.name));
        let mut line = match &self.verb {
            KubeVerb::Scale { replicas } => {
                format!("kubectl scale {object} --replicas={replicas}")
            }
            KubeVerb::RolloutRestart => format!("kubectl rollout restart {object}"),
            KubeVerb::Apply { manifest, .. } => {
                format!("kubectl apply --server-side -f {}", quote(manifest))
            }
            KubeVerb::Delete { propagation } => format!(
                "kubectl delete {kind} {name} --cascade={}",
                match propagation {
                    Propagation::Foreground => "foreground",
                    Propagation::Background => "background",
                    Propagation::Orphan => "orphan",
                }
            ),
            KubeVerb::Get | KubeVerb::Exists | KubeVerb::ReplicasReady { .. } => {
                format!("kubectl get {object}")
            }
            KubeVerb::RolloutComplete => format!("kubectl rollout status {object}"),
        };
        if let Some(ns) = &self.namespace {
            let _ = write!(line, " -n {}", quote(ns));
        }
        if let Some(ctx) = &self.context {
            let _ = write!(line, " --context {}", quote(ctx));
        }
        line
    }

    /// For an apply, the object it writes as a kubectl line that names the
    /// kind (`kubectl apply secret/db -n app`): a manifest is rated by the
    /// kind it holds, not only as `kubectl apply -f FILE`.
    pub fn object_line(&self) -> Option<String> {
        let KubeVerb::Apply { .. } = &self.verb else {
            return None;
        };
        let object = quote(&format!("{}/{}", self.kind.to_ascii_lowercase(), self.name));
        let mut line = format!("kubectl apply {object}");
        if let Some(ns) = &self.namespace {
            let _ = write!(line, " -n {}", quote(ns));
        }
        if let Some(ctx) = &self.context {
            let _ = write!(line, " --context {}", quote(ctx));
        }
        Some(line)
    }

    /// What people are shown: `kube scale Deployment staging/api replicas=5`.
    pub fn summary(&self) -> String {
        let object = match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        };
        let mut s = format!("kube {} {object}", self.verb.name());
        match &self.verb {
            KubeVerb::Scale { replicas } => {
                let _ = write!(s, " replicas={replicas}");
            }
            KubeVerb::Apply { manifest, .. } => {
                let _ = write!(s, " from {manifest}");
            }
            KubeVerb::Delete { propagation } => {
                let _ = write!(s, " propagation={propagation:?}");
            }
            KubeVerb::ReplicasReady {
                replicas: Some(replicas),
            } => {
                let _ = write!(s, " replicas={replicas}");
            }
            _ => {}
        }
        if let Some(ctx) = &self.context {
            let _ = write!(s, " (context {ctx})");
        }
        s
    }
}

impl Ec2Action {
    /// The `aws ec2` line that does the same thing.
    pub fn twin(&self) -> String {
        let ids: Vec<String> = self.instance_ids.iter().map(|i| quote(i)).collect();
        let ids = ids.join(" ");
        let mut line = match &self.verb {
            Ec2Verb::InstanceState { state } => {
                format!(
                    "aws ec2 wait instance-{} --instance-ids {ids}",
                    state.as_str()
                )
            }
            verb => format!(
                "aws ec2 {} --instance-ids {ids}",
                verb.name().replace('_', "-")
            ),
        };
        if let Some(region) = &self.region {
            let _ = write!(line, " --region {}", quote(region));
        }
        line
    }

    pub fn summary(&self) -> String {
        let mut s = format!("ec2 {} {}", self.verb.name(), self.instance_ids.join(","));
        if let Ec2Verb::InstanceState { state } = &self.verb {
            let _ = write!(s, " state={}", state.as_str());
        }
        if let Some(region) = &self.region {
            let _ = write!(s, " (region {region})");
        }
        s
    }
}

impl DockerAction {
    /// The `docker` line that does the same thing.
    pub fn twin(&self) -> String {
        let container = self.container.as_deref().map(quote).unwrap_or_default();
        let mut line = match &self.verb {
            DockerVerb::Ps => "docker ps -a".to_owned(),
            DockerVerb::Inspect | DockerVerb::Running | DockerVerb::Healthy => {
                format!("docker inspect {container}")
            }
            DockerVerb::Start => format!("docker start {container}"),
            DockerVerb::Stop => format!("docker stop {container}"),
            DockerVerb::Restart => format!("docker restart {container}"),
            DockerVerb::Remove { force: true } => format!("docker rm -f {container}"),
            DockerVerb::Remove { force: false } => format!("docker rm {container}"),
        };
        if let Some(host) = &self.host {
            line = line.replacen("docker ", &format!("docker -H {} ", quote(host)), 1);
        }
        line
    }

    pub fn summary(&self) -> String {
        let mut s = format!("docker {}", self.verb.name());
        if let Some(c) = &self.container {
            let _ = write!(s, " {c}");
        }
        if let DockerVerb::Remove { force: true } = self.verb {
            s.push_str(" force");
        }
        if let Some(host) = &self.host {
            let _ = write!(s, " (host {host})");
        }
        s
    }
}

/// Quotes a word for a shell line when it needs it.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_spell_the_equivalent_command() {
        let k = KubeAction {
            context: Some("prod".into()),
            verb: KubeVerb::Delete {
                propagation: Propagation::Foreground,
            },
            kind: "Namespace".into(),
            api_version: None,
            namespace: None,
            name: "payments".into(),
        };
        assert_eq!(
            k.twin(),
            "kubectl delete namespace payments --cascade=foreground --context prod"
        );
        let e = Ec2Action {
            region: Some("us-east-1".into()),
            verb: Ec2Verb::TerminateInstances,
            instance_ids: vec!["i-1".into(), "i-2".into()],
        };
        assert_eq!(
            e.twin(),
            "aws ec2 terminate-instances --instance-ids i-1 i-2 --region us-east-1"
        );
        let d = DockerAction {
            host: Some("unix:///tmp/d.sock".into()),
            verb: DockerVerb::Remove { force: true },
            container: Some("web 1".into()),
        };
        assert_eq!(d.twin(), "docker -H unix:///tmp/d.sock rm -f 'web 1'");
    }

    #[test]
    fn a_name_cannot_pass_for_a_flag_or_a_second_command_in_the_twin() {
        let k = KubeAction {
            context: Some("prod; true".into()),
            verb: KubeVerb::Delete {
                propagation: Propagation::Background,
            },
            kind: "Namespace".into(),
            api_version: None,
            namespace: None,
            name: "payments --dry-run=client".into(),
        };
        assert_eq!(
            k.twin(),
            "kubectl delete namespace 'payments --dry-run=client' --cascade=background --context 'prod; true'"
        );
    }

    #[test]
    fn actions_round_trip_through_json() {
        let k = KubeAction {
            context: None,
            verb: KubeVerb::Scale { replicas: 3 },
            kind: "Deployment".into(),
            api_version: None,
            namespace: Some("staging".into()),
            name: "api".into(),
        };
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json["verb"]["scale"]["replicas"], 3);
        assert_eq!(serde_json::from_value::<KubeAction>(json).unwrap(), k);
    }
}
