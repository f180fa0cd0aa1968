//! `opsgate policy diff`: the changes between two policies, and every plan
//! in the log re-rated under both, so a reviewer sees what a policy change
//! would have done to the plans the team actually ran.

use serde::Serialize;

use crate::core::approval::{Refusal, Requirement, Subject, requirement};
use crate::core::plan::{ClassifiedPlan, Plan};
use crate::core::policy::LoadedPolicy;
use crate::core::policy::diff::{Change, diff};
use crate::core::risk::RiskLevel;
use crate::core::state::{Ledger, PlanState};

/// A policy named on the command line.
#[derive(Debug, Serialize)]
pub struct Side {
    pub source: String,
    pub hash: String,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct PolicyDiff {
    pub old: Side,
    pub new: Side,
    pub changes: Vec<Change>,
    /// Whether any change loosens (or cannot be judged).
    pub loosens: bool,
    /// Whether any change tightens.
    pub tightens: bool,
    pub replay: Replay,
}

/// The log's plans re-rated.
#[derive(Debug, Serialize)]
pub struct Replay {
    /// Plans in the log.
    pub plans: usize,
    /// Plans whose stored form could not be read back (not re-rated).
    pub unreadable: Vec<String>,
    /// Plans whose rating or requirement differs under NEW.
    pub moved: Vec<Replayed>,
}

/// One plan whose fate changes.
#[derive(Debug, Serialize)]
pub struct Replayed {
    pub plan_id: String,
    pub old_risk: RiskLevel,
    pub new_risk: RiskLevel,
    pub old: Outcome,
    pub new: Outcome,
    /// Steps whose level moves.
    pub steps: Vec<StepMove>,
}

/// What a policy asks of a plan.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Needs { level: RiskLevel, approvals: u32 },
    Refused { reason: String },
}

impl From<Result<Requirement, Refusal>> for Outcome {
    fn from(r: Result<Requirement, Refusal>) -> Self {
        match r {
            Ok(req) => Outcome::Needs {
                level: req.level,
                approvals: req.approvals,
            },
            Err(Refusal(reason)) => Outcome::Refused { reason },
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Needs { level, approvals } => {
                write!(f, "{approvals} approval(s) at {level}")
            }
            Outcome::Refused { .. } => f.write_str("refused"),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StepMove {
    pub step: String,
    pub old: RiskLevel,
    pub new: RiskLevel,
}

/// The diff of `old` and `new`, with the plans of `ledger` re-rated.
pub fn policy_diff(old: &LoadedPolicy, new: &LoadedPolicy, ledger: &Ledger) -> PolicyDiff {
    let changes = diff(&old.policy, &new.policy);
    let mut replay = Replay {
        plans: 0,
        unreadable: Vec::new(),
        moved: Vec::new(),
    };
    let mut states: Vec<&PlanState> = ledger.plans().collect();
    states.sort_by(|a, b| a.plan_id.cmp(&b.plan_id));
    for state in states {
        replay.plans += 1;
        let Ok(plan) = Plan::from_json(state.submission.plan.clone()) else {
            replay.unreadable.push(state.plan_id.clone());
            continue;
        };
        if let Some(moved) = rerate(state, &plan, old, new) {
            replay.moved.push(moved);
        }
    }
    PolicyDiff {
        old: side(old),
        new: side(new),
        loosens: changes.iter().any(|c| c.effect.loosens()),
        tightens: changes
            .iter()
            .any(|c| c.effect == crate::core::policy::diff::Effect::Tightens),
        changes,
        replay,
    }
}

fn side(p: &LoadedPolicy) -> Side {
    Side {
        source: p.source.clone(),
        hash: p.hash.as_str().to_owned(),
    }
}

fn rerate(
    state: &PlanState,
    plan: &Plan,
    old: &LoadedPolicy,
    new: &LoadedPolicy,
) -> Option<Replayed> {
    let a = ClassifiedPlan::from_plan(plan.clone(), &old.rules);
    let b = ClassifiedPlan::from_plan(plan.clone(), &new.rules);
    let outcome = |p: &LoadedPolicy, cp: &ClassifiedPlan| -> Outcome {
        let subject = Subject {
            risk: cp.risk,
            mutates_production: cp.mutates_production(),
            ..state.subject()
        };
        requirement(&p.policy, &subject).into()
    };
    let (before, after) = (outcome(old, &a), outcome(new, &b));
    let steps: Vec<StepMove> = plan
        .steps
        .iter()
        .zip(a.steps.iter().zip(&b.steps))
        .filter(|(_, (x, y))| x.action.risk != y.action.risk)
        .map(|(s, (x, y))| StepMove {
            step: s.name.clone(),
            old: x.action.risk,
            new: y.action.risk,
        })
        .collect();
    if a.risk == b.risk && before == after && steps.is_empty() {
        return None;
    }
    Some(Replayed {
        plan_id: state.plan_id.clone(),
        old_risk: a.risk,
        new_risk: b.risk,
        old: before,
        new: after,
        steps,
    })
}
