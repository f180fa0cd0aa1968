//! A plan together with its ratings: what an approver is shown and what the
//! approval is bound to.

use serde::Serialize;

use super::model::{Action, Plan, PlanRollback};
use crate::core::classify::{ClassifyContext, ClassifyError, RuleSet};
use crate::core::digest::PlanHash;
use crate::core::risk::{Classification, Reason, RiskLevel};

/// A valid plan, classified under a policy. The plan's risk is the highest
/// risk of its steps **and** of its rollbacks (each step's own and the
/// plan-level steps): a rollback runs on the same approval, so it may not
/// be worse than what was approved. Checks are rated and shown, and must be
/// LOW.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifiedPlan {
    pub plan: Plan,
    pub hash: PlanHash,
    pub risk: RiskLevel,
    /// When a rollback, not a step, sets the plan's risk: which one
    /// (`rollback of step `x``, `rollback step `y``).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_set_by_rollback: Option<String>,
    pub steps: Vec<StepReview>,
    /// One rating per plan-level rollback step.
    pub rollback: Vec<Classification>,
}

/// The plan's risk: the highest of its steps and its rollbacks, and which
/// rollback set it when a rollback is higher than every step.
pub(super) fn plan_risk(
    plan: &Plan,
    steps: &[StepReview],
    rollback: &[Classification],
) -> (RiskLevel, Option<String>) {
    let of_steps = steps
        .iter()
        .map(|s| s.action.risk)
        .max()
        .unwrap_or(RiskLevel::Low);
    let mut risk = of_steps;
    let mut by = None;
    for (step, review) in plan.steps.iter().zip(steps) {
        if let Some(c) = review.rollback.as_ref().filter(|c| c.risk > risk) {
            risk = c.risk;
            by = Some(format!("the rollback of step `{}`", step.name));
        }
    }
    if let PlanRollback::Steps { steps: rb, .. } = &plan.rollback {
        for (s, c) in rb.iter().zip(rollback) {
            if c.risk > risk {
                risk = c.risk;
                by = Some(format!("rollback step `{}`", s.name));
            }
        }
    }
    (risk, by)
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
        let (risk, risk_set_by_rollback) = plan_risk(&plan, &steps, &rollback);
        ClassifiedPlan {
            hash: plan.hash(),
            risk,
            risk_set_by_rollback,
            plan,
            steps,
            rollback,
        }
    }

    /// Whether a step or a rollback mutates a production namespace or
    /// context (what `safety.block_production` refuses without an
    /// override).
    pub fn mutates_production(&self) -> bool {
        self.steps
            .iter()
            .flat_map(|s| {
                s.action
                    .reasons
                    .iter()
                    .chain(s.rollback.iter().flat_map(|c| &c.reasons))
            })
            .chain(self.rollback.iter().flat_map(|c| &c.reasons))
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
    // A native apply is rated by the kind its manifest holds too: a Secret,
    // RBAC, a webhook configuration or a CRD is not an ordinary apply.
    if let Action::Kube(k) = action
        && let Some(line) = k.object_line()
    {
        let object = rules.classify(&line, ctx)?;
        let mut reasons = c.reasons;
        reasons.extend(object.reasons.into_iter().map(|mut r| {
            r.via.insert(
                0,
                format!("the manifest holds `{}`, rated as `{line}`", k.kind),
            );
            r
        }));
        c = Classification::from_reasons(reasons);
    }
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
