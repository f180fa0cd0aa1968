//! The plan file as written: YAML types with source positions.
//!
//! These types mirror the file one to one and deny unknown keys. Values that
//! later checks must point at (names, commands) keep their position
//! (`Spanned`), so a problem found after parsing is still reported at its
//! file, line and column. `normalize` turns a document into a `Plan`.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::model::OnError;
use serde_saphyr::Spanned;

use crate::core::duration::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    pub title: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub target: TargetDoc,
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<String>>,
    /// Environment variables for every `run:` step.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub estimated_time: Option<HumanDuration>,
    pub steps: Vec<StepDoc>,
    #[serde(default)]
    pub rollback: Option<PlanRollbackDoc>,
    /// Lets a plan that mutates a production scope run under
    /// `safety.block_production`, with the CRITICAL quorum.
    #[serde(default, rename = "override")]
    pub production_override: Option<Spanned<OverrideDoc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideDoc {
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDoc {
    #[serde(default)]
    pub kube_context: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default)]
    pub docker_host: Option<String>,
}

/// A native action as written: `{op: scale, kind: Deployment, …}`. The
/// loader checks its fields, so that an error names the step and the field.
pub type NativeDoc = BTreeMap<String, Spanned<serde_json::Value>>;

/// The action fields every step, check and rollback has: exactly one of
/// them must be given.
#[derive(Debug, Clone, Copy)]
pub struct ActionFields<'a> {
    pub run: Option<&'a Spanned<String>>,
    pub kube: Option<&'a Spanned<NativeDoc>>,
    pub ec2: Option<&'a Spanned<NativeDoc>>,
    pub docker: Option<&'a Spanned<NativeDoc>>,
}

impl ActionFields<'_> {
    /// Where the first action field is written.
    pub fn location(&self) -> Option<serde_saphyr::Location> {
        self.run
            .map(|s| s.referenced)
            .or_else(|| self.kube.map(|s| s.referenced))
            .or_else(|| self.ec2.map(|s| s.referenced))
            .or_else(|| self.docker.map(|s| s.referenced))
    }
}

macro_rules! action_fields {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn action_fields(&self) -> ActionFields<'_> {
                ActionFields {
                    run: self.run.as_ref(),
                    kube: self.kube.as_ref(),
                    ec2: self.ec2.as_ref(),
                    docker: self.docker.as_ref(),
                }
            }
        }
    )*};
}
action_fields!(StepDoc, CheckDoc, ActionDoc);

/// A step. It has exactly one action: `run:`, `kube:`, `ec2:` or `docker:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub name: Spanned<String>,
    #[serde(default)]
    pub run: Option<Spanned<String>>,
    #[serde(default)]
    pub kube: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub ec2: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub docker: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub pre_checks: Vec<CheckDoc>,
    #[serde(default)]
    pub post_checks: Vec<CheckDoc>,
    #[serde(default)]
    pub rollback: Option<ActionDoc>,
    /// Processes the step starts in the background may outlive it when it
    /// exits by itself and succeeds (a `run:` step only).
    #[serde(default)]
    pub keep_background: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDoc {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub run: Option<Spanned<String>>,
    #[serde(default)]
    pub kube: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub ec2: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub docker: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub retry: Option<RetryDoc>,
    #[serde(default)]
    pub expect: Option<ExpectDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDoc {
    pub attempts: Spanned<u32>,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDoc {
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub stdout_contains: Option<Spanned<String>>,
}

/// A step's own rollback, or one step of the plan's rollback.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDoc {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub run: Option<Spanned<String>>,
    #[serde(default)]
    pub kube: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub ec2: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub docker: Option<Spanned<NativeDoc>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// The plan's rollback: steps, or `none: "reason"` to say there is none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRollbackDoc {
    #[serde(default)]
    pub none: Option<Spanned<String>>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub steps: Vec<ActionDoc>,
    #[serde(default)]
    pub estimated_time: Option<HumanDuration>,
    /// Whether a failed rollback step ends the rollback (`stop`, the
    /// default) or the rest still run (`continue`).
    #[serde(default)]
    pub on_error: OnError,
}
