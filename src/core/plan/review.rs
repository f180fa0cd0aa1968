//! A plan together with its ratings: what an approver is shown and what the
//! approval is bound to.

use serde::Serialize;

use super::model::Plan;
use crate::core::digest::PlanHash;
use crate::core::risk::{Classification, RiskLevel};

/// A valid plan, classified under a policy. The plan's risk is the highest
/// risk of its steps; checks and rollbacks are rated and shown, but do not
/// count towards it.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifiedPlan {
    pub plan: Plan,
    pub hash: PlanHash,
    pub risk: RiskLevel,
    pub steps: Vec<StepReview>,
    /// One rating per plan-level rollback step.
    pub rollback: Vec<Classification>,
}

impl ClassifiedPlan {
    /// Whether a step mutates a production namespace or context (what
    /// `safety.block_production` refuses without an override).
    pub fn mutates_production(&self) -> bool {
        self.steps
            .iter()
            .flat_map(|s| &s.action.reasons)
            .any(|r| r.rule == PRODUCTION_RULE)
    }
}

/// The rule name of the classifier's production safeguard.
pub const PRODUCTION_RULE: &str = "production-scope";

#[derive(Debug, Clone, Serialize)]
pub struct StepReview {
    pub action: Classification,
    pub pre_checks: Vec<Classification>,
    pub post_checks: Vec<Classification>,
    pub rollback: Option<Classification>,
}
