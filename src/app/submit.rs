//! Submitting a plan: recording a classified plan in the audit log, with
//! the state of its native targets for the drift check at run time.

use chrono::Utc;

use super::error::{Error, Reason, Result, refuse};
use super::ledger::fold;
use crate::audit::ledger::run_is_live;
use crate::audit::{AuditLog, Event};
use crate::core::identity::Actor;
use crate::core::plan::ClassifiedPlan;
use crate::core::policy::LoadedPolicy;

/// Records `plan_submitted` for a classified plan, unless the same plan
/// (same plan and policy hashes, and its native targets in the same state)
/// is already open. Returns the submission's
/// seq and whether it is new.
pub fn record(
    log: &AuditLog,
    policy: &LoadedPolicy,
    cp: &ClassifiedPlan,
    (actor, channel): (&Actor, crate::audit::Channel),
) -> Result<(u64, bool)> {
    let submitter = actor.name.as_str();
    let plan_json = serde_json::to_value(&cp.plan)
        .map_err(|e| Error::Failed(format!("cannot record the plan: {e}")))?;
    let fingerprints = fingerprints(policy, cp)?;
    // Signed before the log's lock is taken: signing may wait for a
    // passphrase or a touch of a hardware key.
    let proof = match &actor.key {
        Some(key) => {
            let statement = crate::core::identity::Statement {
                kind: "plan_submitted",
                plan_id: &cp.plan.id,
                plan_hash: cp.hash.as_str(),
                policy_hash: policy.hash.as_str(),
                submission: None,
                rollback_of: None,
                principal: submitter,
                signed_at: Utc::now().timestamp(),
                reason: None,
            };
            super::sign::sign(&policy.policy, key, &statement)?
        }
        None => actor.proof.clone(),
    };
    let mut earlier = None;
    let attempt =
        super::refusal::Attempt::on_plan("submit", submitter, channel, &cp.plan.id, &policy.hash);
    let appended = super::refusal::append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
        let adopt = super::adoption::pin(&ledger, policy)?;
        // A run still unfinished (live, or interrupted and not yet resumed
        // or rolled back) keeps its submission: a new one would hide it
        // from `cancel` and `rollback`, and could run beside it.
        if let Some(run) = ledger
            .plan(&cp.plan.id)
            .and_then(|p| p.last_run())
            .filter(|r| r.finished.is_none())
        {
            let id = &cp.plan.id;
            let how = if run_is_live(log.path(), &run.run_id) {
                format!(
                    "is running: stop it first (`opsgate cancel {}`)",
                    run.run_id
                )
            } else {
                format!(
                    "was interrupted: resume it (`opsgate run {id} --resume`) or roll it back (`opsgate rollback {}`) first",
                    run.run_id
                )
            };
            return Err(refuse(
                Reason::RunUnfinished,
                format!(
                    "plan `{id}` may not be submitted again now: its run {} {how}",
                    run.run_id
                ),
            ));
        }
        earlier = ledger
            .plan(&cp.plan.id)
            .filter(|p| {
                // After drift, the same plan is submitted again for the
                // world as it is now: that is a new submission.
                p.submission.plan_hash == cp.hash
                    && p.submission.policy_hash == policy.hash
                    && p.submission.fingerprints == fingerprints
                    && p.status(
                        &p.verdict(&policy.policy, &policy.hash, Utc::now()),
                        |run| run_is_live(log.path(), run),
                    )
                    .is_open()
            })
            .map(|p| p.submission.seq);
        if earlier.is_some() {
            return Ok::<_, Error>(Vec::new());
        }
        Ok(super::adoption::after(
            adopt,
            vec![Event::PlanSubmitted {
                plan_id: cp.plan.id.clone(),
                plan_hash: cp.hash.clone(),
                policy_hash: policy.hash.clone(),
                risk: cp.risk,
                author: cp
                    .plan
                    .author
                    .clone()
                    .unwrap_or_else(|| submitter.to_owned()),
                submitted_by: submitter.to_owned(),
                identity: Some(proof.clone()),
                mutates_production: cp.mutates_production(),
                redacted: false,
                plan: plan_json,
                fingerprints,
            }],
        ))
    })?;
    // With nothing new, `appended` can still hold a `log_repaired`.
    let seq = earlier
        .or_else(|| appended.last().map(|a| a.seq))
        .unwrap_or_default();
    Ok((seq, earlier.is_none()))
}

/// The live state of the plan's native targets, for the drift check at
/// run time. A target that cannot be read (it does not exist, its server
/// does not answer) refuses the submission: nothing is recorded.
fn fingerprints(
    policy: &LoadedPolicy,
    cp: &ClassifiedPlan,
) -> Result<std::collections::BTreeMap<String, String>> {
    if !crate::native::uses_native(&cp.plan) {
        return Ok(Default::default());
    }
    let backends = crate::native::Backends::new(&policy.policy.backends);
    crate::native::blocking(backends.fingerprints(&cp.plan))
        .and_then(|r| r)
        .map_err(|e| Error::Failed(format!("plan `{}` cannot be submitted: {e}", cp.plan.id)))
}
