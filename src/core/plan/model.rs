//! The normalized plan: defaults filled, parameters substituted, ready to
//! hash, classify, render and run.
//!
//! Every field takes part in the plan hash, through the plan's JSON form:
//! struct fields in declaration order, maps as `BTreeMap`, durations as
//! milliseconds. Changing any value changes the hash; YAML layout, comments
//! and key order cannot.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::native::{DockerAction, Ec2Action, KubeAction};
use crate::core::digest::{PlanHash, canonical_sha256};
use crate::core::duration::HumanDuration;

pub const DEFAULT_STEP_TIMEOUT: HumanDuration = HumanDuration::from_secs(5 * 60);
pub const DEFAULT_CHECK_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);
pub const DEFAULT_RETRY_INTERVAL: HumanDuration = HumanDuration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub author: Option<String>,
    pub target: Target,
    pub params: BTreeMap<String, String>,
    /// The local files the `run:` lines run or read (scripts, manifests,
    /// SQL, values), as the lines name them, with their SHA-256 at
    /// submission: part of the hash, checked before each step. Absent
    /// from the hash when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, LocalFile>,
    /// Environment variables every `run:` step gets (over the policy's).
    /// Absent from the hash when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub estimated_time: Option<HumanDuration>,
    pub steps: Vec<Step>,
    pub rollback: PlanRollback,
    /// `override: {reason}`: asks to run a production mutation under
    /// `safety.block_production`. Absent from the hash when absent.
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub production_override: Option<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub reason: String,
}

impl Plan {
    /// Reads a plan back from its JSON form (as `plan_submitted` records
    /// it). Durations are whole milliseconds there, while a plan file
    /// spells them with units; a bare number in a file stays an error.
    pub fn from_json(mut value: serde_json::Value) -> Result<Plan, serde_json::Error> {
        fn units(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, item) in map.iter_mut() {
                        match item {
                            serde_json::Value::Number(n)
                                if matches!(
                                    k.as_str(),
                                    "timeout" | "interval" | "estimated_time"
                                ) =>
                            {
                                if let Some(ms) = n.as_u64() {
                                    *item = serde_json::Value::String(format!("{ms}ms"));
                                }
                            }
                            other => units(other),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(units),
                _ => {}
            }
        }
        units(&mut value);
        serde_json::from_value(value)
    }

    /// The plan hash: SHA-256 over the canonical form of this plan.
    pub fn hash(&self) -> PlanHash {
        // Serializing these plain structs cannot fail; the fallback keeps
        // the function total without a panic path.
        PlanHash::new(
            canonical_sha256("opsgate-plan/1", self)
                .unwrap_or_else(|e| format!("sha256:unhashable:{e}")),
        )
    }
}

/// A local file (or directory) a plan's command line runs or reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    /// Its canonical path when it was hashed.
    pub path: String,
    /// `sha256:<hex>` of its bytes (of a directory: of every file in it).
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub kube_context: Option<String>,
    pub namespace: Option<String>,
    pub aws_region: Option<String>,
    pub docker_host: Option<String>,
}

/// What a step, check or rollback does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A command line, run by `/bin/sh -c`.
    Run(String),
    Kube(KubeAction),
    Ec2(Ec2Action),
    Docker(DockerAction),
}

impl Action {
    /// What people are shown: the command line, or a native action's
    /// summary (`kube scale Deployment staging/api replicas=5`).
    pub fn command_line(&self) -> Cow<'_, str> {
        match self {
            Action::Run(cmd) => Cow::Borrowed(cmd),
            Action::Kube(k) => Cow::Owned(k.summary()),
            Action::Ec2(e) => Cow::Owned(e.summary()),
            Action::Docker(d) => Cow::Owned(d.summary()),
        }
    }

    /// What the classifier rates: the command line, or a native action's
    /// shell twin (`kubectl scale deployment/api --replicas=5 -n staging`).
    pub fn classified_line(&self) -> Cow<'_, str> {
        match self {
            Action::Run(cmd) => Cow::Borrowed(cmd),
            Action::Kube(k) => Cow::Owned(k.twin()),
            Action::Ec2(e) => Cow::Owned(e.twin()),
            Action::Docker(d) => Cow::Owned(d.twin()),
        }
    }

    /// What a display puts before the action: `$ ` for a command line, `» `
    /// for a native action (an API call, not a shell line).
    pub fn lead(&self) -> &'static str {
        match self {
            Action::Run(_) => "$ ",
            Action::Kube(_) | Action::Ec2(_) | Action::Docker(_) => "» ",
        }
    }

    /// SHA-256 of exactly what runs: a command line's own bytes (so
    /// `printf %s "$CMD" | sha256sum` reproduces it), or a native action's
    /// canonical JSON. Taken before any redaction.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        match self {
            Action::Run(cmd) => format!("sha256:{}", hex::encode(Sha256::digest(cmd.as_bytes()))),
            native => canonical_sha256("opsgate-action/1", native)
                .unwrap_or_else(|e| format!("sha256:unhashable:{e}")),
        }
    }

    /// The backend a native action talks to.
    pub fn backend(&self) -> Option<&'static str> {
        match self {
            Action::Run(_) => None,
            Action::Kube(_) => Some("kube"),
            Action::Ec2(_) => Some("ec2"),
            Action::Docker(_) => Some("docker"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub timeout: HumanDuration,
    pub pre_checks: Vec<Check>,
    pub post_checks: Vec<Check>,
    pub rollback: Option<Action>,
    /// Whether processes the step starts in the background may outlive it
    /// (when it exits by itself and succeeds). Absent from the hash when
    /// false, so plans without it keep their hashes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_background: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub action: Action,
    pub timeout: HumanDuration,
    pub retry: Retry,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub attempts: u32,
    pub interval: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    pub exit_code: i32,
    pub stdout_contains: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanRollback {
    /// The plan says no rollback is possible, and why.
    None { reason: String },
    Steps {
        method: Option<String>,
        steps: Vec<RollbackStep>,
        estimated_time: Option<HumanDuration>,
        /// Absent from the hash when it is the default, `stop`.
        #[serde(default, skip_serializing_if = "OnError::is_stop")]
        on_error: OnError,
    },
    /// No plan-level rollback (steps may still have their own).
    Absent,
}

/// What a failed rollback step does to the rest of the rollback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// End the rollback there.
    #[default]
    Stop,
    /// Run the remaining rollback steps anyway.
    Continue,
}

impl OnError {
    pub fn is_stop(&self) -> bool {
        *self == OnError::Stop
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackStep {
    pub name: String,
    pub action: Action,
    pub timeout: HumanDuration,
}
