//! Read models: what every door shows of a plan's state, computed once so
//! that the CLI's `status`, the TUI's rows and the bridge's plan list
//! cannot disagree.

use chrono::{DateTime, Utc};

use super::decide::counts;
use crate::audit::ledger::run_is_live;
use crate::core::event::short;
use crate::core::policy::LoadedPolicy;
use crate::core::state::{PlanState, PlanStatus};

/// A submitted plan's state now.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStatusView {
    pub status: PlanStatus,
    /// Approvals needed.
    pub needed: u32,
    /// The approvers whose approvals count now.
    pub approvers: Vec<String>,
    /// What is missing before it may run, while it is open (a policy
    /// changed since its submission says so).
    pub missing: Option<String>,
    /// When the first approval that counts expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The state of `plan` under `policy` at `now`, with runs live when the
/// log at `log` says so.
pub fn plan_status(
    plan: &PlanState,
    policy: &LoadedPolicy,
    log: &std::path::Path,
    now: DateTime<Utc>,
) -> PlanStatusView {
    let verdict = plan.verdict(&policy.policy, &policy.hash, now);
    let status = plan.status(&verdict, |run| run_is_live(log, run));
    let (needed, approvers) = counts(plan, policy, &verdict);
    let missing = if !status.is_open() {
        None
    } else if plan.submission.policy_hash != policy.hash {
        Some(format!(
            "submitted under policy {}, the policy is now {}: submit it again",
            short(plan.submission.policy_hash.as_str()),
            short(policy.hash.as_str())
        ))
    } else {
        verdict.missing()
    };
    let ttl = chrono::Duration::milliseconds(
        i64::try_from(policy.policy.approvals.ttl.as_millis()).unwrap_or(i64::MAX),
    );
    let expires_at = plan
        .votes
        .iter()
        .filter(|v| v.granted && v.plan_hash == plan.submission.plan_hash)
        .map(|v| v.at + ttl)
        .min();
    PlanStatusView {
        status,
        needed,
        approvers,
        missing,
        expires_at,
    }
}
