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

/// A step. It has exactly one action; `run:` is the only kind so far, and the
/// native `kube:`, `ec2:` and `docker:` actions will sit beside it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub name: Spanned<String>,
    #[serde(default)]
    pub run: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub pre_checks: Vec<CheckDoc>,
    #[serde(default)]
    pub post_checks: Vec<CheckDoc>,
    #[serde(default)]
    pub rollback: Option<ActionDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDoc {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub run: Spanned<String>,
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
    pub run: Spanned<String>,
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
