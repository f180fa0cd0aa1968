//! A plan together with its ratings: what an approver is shown and what the
//! approval is bound to.

use serde::Serialize;

use super::model::{Action, Plan, PlanRollback};
use crate::core::classify::{ClassifyContext, ClassifyError, RuleSet};
use crate::core::digest::PlanHash;
use crate::core::risk::{Classification, Reason, RiskLevel};

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
    /// Rates a normalized plan (one read back from the audit log) under a
    /// rule set, as loading its file would. A command that does not
    /// classify is rated CRITICAL.
    pub fn from_plan(plan: Plan, rules: &RuleSet) -> Self {
        let ctx = ClassifyContext {
            namespace: plan.target.namespace.clone(),
            kube_context: plan.target.kube_context.clone(),
        };
        let rate = |a: &Action| {
            classify_action(rules, a, &ctx).unwrap_or_else(|e| {
                Classification::from_reasons(vec![Reason {
                    level: RiskLevel::Critical,
                    part: a.classified_line().into_owned(),
                    via: Vec::new(),
                    rule: "unclassifiable".into(),
                    message: e.to_string(),
                }])
            })
        };
        let steps: Vec<StepReview> = plan
            .steps
            .iter()
            .map(|s| StepReview {
                action: rate(&s.action),
                pre_checks: s.pre_checks.iter().map(|c| rate(&c.action)).collect(),
                post_checks: s.post_checks.iter().map(|c| rate(&c.action)).collect(),
                rollback: s.rollback.as_ref().map(rate),
            })
            .collect();
        let rollback = match &plan.rollback {
            PlanRollback::Steps { steps, .. } => steps.iter().map(|s| rate(&s.action)).collect(),
            PlanRollback::None { .. } | PlanRollback::Absent => Vec::new(),
        };
        ClassifiedPlan {
            hash: plan.hash(),
            risk: steps
                .iter()
                .map(|s| s.action.risk)
                .max()
                .unwrap_or(RiskLevel::Low),
            plan,
            steps,
            rollback,
        }
    }

    /// Whether a step mutates a production namespace or context (what
    /// `safety.block_production` refuses without an override).
    pub fn mutates_production(&self) -> bool {
        self.steps
            .iter()
            .flat_map(|s| &s.action.reasons)
            .any(|r| r.rule == PRODUCTION_RULE)
    }
}

/// Rates an action with the policy's rule table. A native action is rated
/// as its shell twin, and each reason says it came by way of the twin.
pub fn classify_action(
    rules: &RuleSet,
    action: &Action,
    ctx: &ClassifyContext,
) -> Result<Classification, ClassifyError> {
    let mut c = rules.classify(&action.classified_line(), ctx)?;
    if let Some(backend) = action.backend() {
        for r in &mut c.reasons {
            r.via.insert(
                0,
                format!(
                    "native {backend} action, rated as `{}`",
                    action.classified_line()
                ),
            );
        }
    }
    Ok(c)
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
