//! The approval rules (pure): what a plan needs, who may approve it, which
//! recorded votes count, and the verdict. Only [`evaluate`] constructs an
//! [`ApprovedPlan`], and the engine runs nothing else.
//!
//! The rules, in the order they apply:
//! 1. A CRITICAL plan is refused unless `safety.allow_critical`.
//! 2. Under `safety.block_production`, a plan that mutates a production
//!    scope is refused unless it carries `override: {reason}`; then it needs
//!    the CRITICAL quorum, and approvers and channels are held to CRITICAL.
//! 3. LOW needs 0 approvals under `execution.auto_approve_low_risk`, else
//!    at least 1; MEDIUM and HIGH need `approvals.required` (0 when
//!    `safety.require_approval` is false); CRITICAL needs
//!    `approvals.required.CRITICAL` (at least 1).
//! 4. A vote counts only if it names the plan's current hash and the
//!    current policy hash, is younger than `approvals.ttl`, and its approver
//!    may approve: not its submitter (from the level
//!    `separation_of_duties` names), on the
//!    `approvers` list when there is one, within their `max_risk` and
//!    channels, and within the channel's ceiling
//!    (`approvals.channel_max_risk`). One person counts once.
//! 5. One rejection rejects the plan.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::digest::{PlanHash, PolicyHash};
use crate::core::event::{Channel, short};
use crate::core::policy::Policy;
use crate::core::risk::RiskLevel;

/// What the rules need to know about a plan.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub plan_id: &'a str,
    pub plan_hash: &'a PlanHash,
    pub risk: RiskLevel,
    /// Who submitted the plan (its author for separation of duties; the
    /// plan file's `author:` is only a note).
    pub author: &'a str,
    /// The fingerprint of the key that signed the submission, if it was
    /// signed: that key approving under another name is still the author.
    pub author_key: Option<&'a str>,
    pub mutates_production: bool,
    pub has_override: bool,
}

/// A recorded approval or rejection.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub approver: String,
    pub channel: Channel,
    pub plan_hash: PlanHash,
    pub policy_hash: PolicyHash,
    pub at: DateTime<Utc>,
    pub granted: bool,
    pub reason: Option<String>,
    /// How the approver is known (v3), and what a signature is bound to.
    pub proof: Option<Proof>,
    pub submission_seq: Option<u64>,
    pub rollback_of: Option<String>,
}

impl Vote {
    /// The vote a recorded decision casts, at `at`.
    pub fn of(d: &crate::core::event::Decision, at: DateTime<Utc>, granted: bool) -> Vote {
        Vote {
            approver: d.approver.clone(),
            channel: d.channel,
            plan_hash: d.plan_hash.clone(),
            policy_hash: d.policy_hash.clone(),
            at,
            granted,
            reason: d.reason.clone(),
            proof: d.identity.clone(),
            submission_seq: d.submission_seq,
            rollback_of: d.rollback_of.clone(),
        }
    }

    /// What a signature on this vote says (see [`Statement`]).
    pub fn statement<'a>(&'a self, plan_id: &'a str, signed_at: i64) -> Statement<'a> {
        Statement {
            kind: if self.granted {
                "approval_granted"
            } else {
                "approval_rejected"
            },
            plan_id,
            plan_hash: self.plan_hash.as_str(),
            policy_hash: self.policy_hash.as_str(),
            submission: self.submission_seq,
            rollback_of: self.rollback_of.as_deref(),
            principal: &self.approver,
            signed_at,
            reason: self.reason.as_deref(),
        }
    }
}

/// Whether a vote's identity counts at `level`: the fingerprint of the
/// key whose signature verified (`None` for an unsigned vote that may
/// count), or why not. A signature that does not verify never counts; an
/// unsigned vote (the OS user, a trusted `--as`, a record from before v3)
/// does not count where the policy requires signatures. A chat bridge's
/// attestation counts up to the chat channel's ceiling, which
/// `may_approve` checks.
pub fn identity_check(
    policy: &Policy,
    plan_id: &str,
    level: RiskLevel,
    v: &Vote,
) -> Result<Option<String>, VoteProblem> {
    match &v.proof {
        Some(Proof::Ssh {
            signature,
            signed_at,
            ..
        }) => policy
            .signers
            .check(&v.statement(plan_id, *signed_at), signature)
            .map(Some)
            .map_err(|why| VoteProblem::BadSignature { why }),
        // A bridge's attestation is for decisions on the chat channel,
        // whose ceiling (`approvals.channel_max_risk.chat`) says up to which
        // level it counts: a record claiming it for another channel is not
        // one the bridge made.
        Some(Proof::Chat { .. }) if v.channel == Channel::Chat => Ok(None),
        _ if policy.identity.needs_signature(level) => Err(VoteProblem::Unsigned {
            from: policy.identity.require_signatures_from,
        }),
        _ => Ok(None),
    }
}

/// What a plan needs before it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The level approvers and channels are held to: the plan's risk, or
    /// CRITICAL for a production override.
    pub level: RiskLevel,
    /// Distinct approvers needed.
    pub approvals: u32,
}

/// Why a plan cannot be approved at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the policy asks of this plan, or why it refuses it outright.
pub fn requirement(policy: &Policy, s: &Subject<'_>) -> Result<Requirement, Refusal> {
    let req = &policy.approvals.required;
    if s.risk == RiskLevel::Critical && !policy.safety.allow_critical {
        return Err(Refusal(format!(
            "plan `{}` is CRITICAL and the policy refuses CRITICAL plans (safety.allow_critical is false)",
            s.plan_id
        )));
    }
    if policy.safety.block_production && s.mutates_production {
        if !s.has_override {
            return Err(Refusal(format!(
                "plan `{}` mutates a production scope and safety.block_production is on: add `override: {{reason: …}}` to the plan; it then needs the CRITICAL quorum",
                s.plan_id
            )));
        }
        return Ok(Requirement {
            level: RiskLevel::Critical,
            approvals: req.critical.max(1),
        });
    }
    let approvals = match s.risk {
        RiskLevel::Low if policy.execution.auto_approve_low_risk => 0,
        RiskLevel::Low => req.low.max(1),
        RiskLevel::Medium | RiskLevel::High if !policy.safety.require_approval => 0,
        RiskLevel::Medium | RiskLevel::High => req.for_level(s.risk),
        RiskLevel::Critical => req.critical.max(1),
    };
    Ok(Requirement {
        level: s.risk,
        approvals,
    })
}

/// Why a person may not approve (or a vote does not count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VoteProblem {
    SelfApproval,
    NotListed,
    AboveMaxRisk {
        max: RiskLevel,
    },
    ChannelNotAllowed {
        channel: Channel,
    },
    ChannelCeiling {
        channel: Channel,
        ceiling: RiskLevel,
    },
    StalePlanHash {
        approved: PlanHash,
        current: PlanHash,
    },
    StalePolicyHash {
        approved: PolicyHash,
        current: PolicyHash,
    },
    Expired {
        age_seconds: i64,
    },
    Duplicate,
    /// Signatures are required at this level and the vote has none.
    Unsigned {
        from: RiskLevel,
    },
    /// The vote's signature does not verify against the allowed signers.
    BadSignature {
        why: String,
    },
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Tui => "tui",
        Channel::Cli => "cli",
        Channel::Chat => "chat",
        Channel::System => "system",
    }
}

impl VoteProblem {
    /// A stable code for the problem (`self_approval`, `channel_ceiling`…).
    pub fn code(&self) -> &'static str {
        match self {
            VoteProblem::SelfApproval => "self_approval",
            VoteProblem::NotListed => "not_listed",
            VoteProblem::AboveMaxRisk { .. } => "above_max_risk",
            VoteProblem::ChannelNotAllowed { .. } => "channel_not_allowed",
            VoteProblem::ChannelCeiling { .. } => "channel_ceiling",
            VoteProblem::StalePlanHash { .. } => "stale_plan_hash",
            VoteProblem::StalePolicyHash { .. } => "stale_policy_hash",
            VoteProblem::Expired { .. } => "expired",
            VoteProblem::Duplicate => "duplicate",
            VoteProblem::Unsigned { .. } => "unsigned",
            VoteProblem::BadSignature { .. } => "bad_signature",
        }
    }

    /// The problem in words, naming the approver.
    pub fn describe(&self, who: &str, level: RiskLevel) -> String {
        match self {
            VoteProblem::SelfApproval => {
                format!("{who} submitted the plan and cannot approve it (separation_of_duties)")
            }
            VoteProblem::NotListed => format!("{who} is not on the policy's approvers list"),
            VoteProblem::AboveMaxRisk { max } => {
                format!("{who} may approve up to {max}, and this plan is {level}")
            }
            VoteProblem::ChannelNotAllowed { channel } => format!(
                "{who} may not approve from the {} channel",
                channel_name(*channel)
            ),
            VoteProblem::ChannelCeiling { channel, ceiling } => format!(
                "the {} channel may approve up to {ceiling}, and this plan is {level}",
                channel_name(*channel)
            ),
            VoteProblem::StalePlanHash { approved, current } => format!(
                "approval by {who} was for {}, plan is now {}",
                short(approved.as_str()),
                short(current.as_str())
            ),
            VoteProblem::StalePolicyHash { approved, current } => format!(
                "approval by {who} was under policy {}, the policy is now {}",
                short(approved.as_str()),
                short(current.as_str())
            ),
            VoteProblem::Expired { age_seconds } => format!(
                "approval by {who} expired: it is {} old, older than approvals.ttl",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(*age_seconds).unwrap_or_default()
                ))
            ),
            VoteProblem::Duplicate => format!("{who} already approved; one person counts once"),
            VoteProblem::Unsigned { from } => format!(
                "the decision by {who} is not signed, and decisions on {level} plans must be (identity.require_signatures_from: {from}; CRITICAL always): sign with --key"
            ),
            VoteProblem::BadSignature { why } => {
                format!("the signature on the decision by {who} does not verify: {why}")
            }
        }
    }
}

/// Whether `who` may approve a plan at `level` from `channel`, whatever
/// the hashes and the time.
pub fn may_approve(
    policy: &Policy,
    s: &Subject<'_>,
    level: RiskLevel,
    who: &str,
    channel: Channel,
) -> Result<(), VoteProblem> {
    if policy.approvals.separation_of_duties.applies(level) && same_person(who, s.author) {
        return Err(VoteProblem::SelfApproval);
    }
    if let Some(list) = &policy.approvers {
        let Some(a) = list.iter().find(|a| same_person(&a.name, who)) else {
            return Err(VoteProblem::NotListed);
        };
        if level > a.max_risk {
            return Err(VoteProblem::AboveMaxRisk { max: a.max_risk });
        }
        if !a.channels.contains(&channel) {
            return Err(VoteProblem::ChannelNotAllowed { channel });
        }
    }
    if channel == Channel::System {
        return Err(VoteProblem::ChannelNotAllowed { channel });
    }
    if let Some(ceiling) = policy.approvals.channel_max_risk.get(&channel)
        && level > *ceiling
    {
        return Err(VoteProblem::ChannelCeiling {
            channel,
            ceiling: *ceiling,
        });
    }
    Ok(())
}

use crate::core::identity::{Proof, Statement};
pub use crate::core::identity::{person_key, same_person};

/// A plan whose approvals are complete and current: the only thing the
/// engine runs. Only [`evaluate`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedPlan {
    plan_id: String,
    plan_hash: PlanHash,
    policy_hash: PolicyHash,
    level: RiskLevel,
    approvers: Vec<String>,
}

impl ApprovedPlan {
    pub fn plan_id(&self) -> &str {
        &self.plan_id
    }
    pub fn plan_hash(&self) -> &PlanHash {
        &self.plan_hash
    }
    pub fn policy_hash(&self) -> &PolicyHash {
        &self.policy_hash
    }
    pub fn level(&self) -> RiskLevel {
        self.level
    }
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }
}

/// A vote that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discounted {
    pub approver: String,
    pub problem: VoteProblem,
    pub message: String,
}

/// Where a plan stands with its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Refused {
        reason: Refusal,
    },
    Rejected {
        by: String,
        reason: Option<String>,
    },
    Approved {
        plan: ApprovedPlan,
        needed: u32,
    },
    /// Not enough approvals count. `expired` when a vote would have
    /// counted but for its age.
    Pending {
        needed: u32,
        have: Vec<String>,
        discounted: Vec<Discounted>,
        expired: bool,
    },
}

impl Verdict {
    /// `needs 2 approvals from distinct approvers, has 1 (alice)`, and why
    /// other votes do not count; `None` when approved.
    pub fn missing(&self) -> Option<String> {
        match self {
            Verdict::Refused { reason } => Some(reason.0.clone()),
            Verdict::Rejected { by, reason } => Some(format!(
                "rejected by {by}{}; a new submission is needed",
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            Verdict::Approved { .. } => None,
            Verdict::Pending {
                needed,
                have,
                discounted,
                ..
            } => {
                let mut s = format!(
                    "needs {needed} approval{} from distinct approvers, has {}",
                    if *needed == 1 { "" } else { "s" },
                    have.len()
                );
                if !have.is_empty() {
                    s.push_str(&format!(" ({})", have.join(", ")));
                }
                for d in discounted {
                    s.push_str("; ");
                    s.push_str(&d.message);
                }
                Some(s)
            }
        }
    }
}

/// The verdict on a plan given its recorded votes, the current policy and
/// the time. Votes are in log order.
pub fn evaluate(
    policy: &Policy,
    policy_hash: &PolicyHash,
    s: &Subject<'_>,
    votes: &[Vote],
    now: DateTime<Utc>,
) -> Verdict {
    let req = match requirement(policy, s) {
        Ok(r) => r,
        Err(reason) => return Verdict::Refused { reason },
    };
    if let Some(v) = votes.iter().find(|v| !v.granted) {
        return Verdict::Rejected {
            by: v.approver.clone(),
            reason: v.reason.clone(),
        };
    }
    let ttl = chrono::Duration::milliseconds(
        i64::try_from(policy.approvals.ttl.as_millis()).unwrap_or(i64::MAX),
    );
    let mut have: Vec<String> = Vec::new();
    let mut counted = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut discounted = Vec::new();
    let mut expired = false;
    for v in votes {
        let problem = if &v.plan_hash != s.plan_hash {
            Some(VoteProblem::StalePlanHash {
                approved: v.plan_hash.clone(),
                current: s.plan_hash.clone(),
            })
        } else if &v.policy_hash != policy_hash {
            Some(VoteProblem::StalePolicyHash {
                approved: v.policy_hash.clone(),
                current: policy_hash.clone(),
            })
        } else if let Err(p) = may_approve(policy, s, req.level, &v.approver, v.channel) {
            Some(p)
        } else {
            match identity_check(policy, s.plan_id, req.level, v) {
                Err(p) => Some(p),
                Ok(_) if now - v.at >= ttl => Some(VoteProblem::Expired {
                    age_seconds: (now - v.at).num_seconds(),
                }),
                // The submitter's key under another name is the submitter.
                Ok(Some(key))
                    if s.author_key == Some(key.as_str())
                        && policy.approvals.separation_of_duties.applies(req.level) =>
                {
                    Some(VoteProblem::SelfApproval)
                }
                // One person counts once, and so does one key under two
                // names.
                Ok(key) => {
                    let new_person = counted.insert(person_key(&v.approver));
                    let new_key = key.is_none_or(|k| keys.insert(k));
                    (!(new_person && new_key)).then_some(VoteProblem::Duplicate)
                }
            }
        };
        match problem {
            None => have.push(v.approver.clone()),
            Some(problem) => {
                expired |= matches!(problem, VoteProblem::Expired { .. });
                discounted.push(Discounted {
                    message: problem.describe(&v.approver, req.level),
                    approver: v.approver.clone(),
                    problem,
                });
            }
        }
    }
    if have.len() as u64 >= u64::from(req.approvals) {
        return Verdict::Approved {
            plan: ApprovedPlan {
                plan_id: s.plan_id.to_owned(),
                plan_hash: s.plan_hash.clone(),
                policy_hash: policy_hash.clone(),
                level: req.level,
                approvers: have,
            },
            needed: req.approvals,
        };
    }
    Verdict::Pending {
        needed: req.approvals,
        have,
        discounted,
        expired,
    }
}

/// Whether a real run of a plan at `level` first needs a successful dry
/// run of the same plan hash (`execution.require_dry_run`).
pub fn needs_dry_run(policy: &Policy, level: RiskLevel) -> bool {
    policy.execution.require_dry_run && level >= RiskLevel::High
}
