//! Stopping a run and rolling one back, decided under the log's lock.

use chrono::Utc;

use super::error::{Error, Reason, Result, refuse, refuse_for};
use super::ledger::fold;
use super::refusal::{Attempt, append_or_record};
use super::start::{frozen_plan, take_run_lock};
use crate::audit::ledger::{RunLock, run_is_live};
use crate::audit::{AuditLog, Channel, Event, Status};
use crate::core::approval::{ApprovedPlan, Verdict};
use crate::core::plan::Plan;
use crate::core::policy::LoadedPolicy;

/// Asks run `run_id` to stop (after its current step, or at once with
/// `kill`), recorded in the log where the engine reads it. A second
/// request kills. Returns whether the recorded request kills.
pub fn cancel(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    user: &str,
    kill: bool,
) -> Result<bool> {
    cancel_from(log, policy, run_id, user, Channel::Cli, kill, None)
}

/// [`cancel`] through `channel` (the chat bridge's stop), with `reason`
/// recorded on the request (who asked, through what).
pub fn cancel_from(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    user: &str,
    channel: Channel,
    kill: bool,
    reason: Option<String>,
) -> Result<bool> {
    let mut killing = kill;
    let attempt = Attempt {
        channel,
        ..Attempt::on_run("cancel", user, run_id, &policy.hash)
    };
    append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
        let (plan, run) = ledger
            .run(run_id)
            .ok_or_else(|| Error::NotFound(format!("no run `{run_id}` in the audit log")))?;
        if run.finished.is_some() {
            return Err(refuse(
                Reason::Finished,
                format!("run `{run_id}` already finished"),
            ));
        }
        if !run_is_live(log.path(), run_id) {
            return Err(refuse(
                Reason::NotRunning,
                format!(
                    "run `{run_id}` is not running (interrupted): roll it back with `opsgate rollback {run_id}`"
                ),
            ));
        }
        killing |= run.stop.is_some();
        Ok(vec![Event::RunCancelled {
            plan_id: plan.plan_id.clone(),
            run_id: run_id.to_owned(),
            user: user.to_owned(),
            kill: killing,
            reason,
        }])
    })?;
    Ok(killing)
}

/// A stop request for a run this process drives (the TUI's `s`, Ctrl-C),
/// recorded with `why`.
pub fn request_stop(
    log: &AuditLog,
    plan_id: &str,
    run_id: &str,
    user: &str,
    kill: bool,
    why: &str,
) -> Result<()> {
    log.append(Event::RunCancelled {
        plan_id: plan_id.to_owned(),
        run_id: run_id.to_owned(),
        user: user.to_owned(),
        kill,
        reason: Some(why.to_owned()),
    })?;
    Ok(())
}

/// An operator's rollback, decided and recorded as started: what the
/// driver runs (`driver::roll_back`).
#[derive(Debug)]
pub struct RollbackStarted {
    pub plan_id: String,
    pub run_id: String,
    pub user: String,
    pub plan: Plan,
    /// The steps (0-based) the run completed, whose rollbacks run.
    pub completed: Vec<usize>,
    /// The approval it runs under: the run's own, or the rollback's.
    pub approval: ApprovedPlan,
    /// Held for the whole rollback.
    pub lock: RunLock,
}

/// Decides, under the log's lock with the run's lock taken there, that
/// run `run_id` may be rolled back now, and records `rollback_started`:
/// two operators cannot both roll the run back, and nothing runs unless
/// the run's approvals still count or the rollback has its own.
pub fn start_rollback(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    user: &str,
) -> Result<RollbackStarted> {
    let mut decided = None;
    let attempt = Attempt::on_run("rollback", user, run_id, &policy.hash);
    append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
        let adopt = super::adoption::pin(&ledger, policy)?;
        let (state, run) = super::decide::rollback_candidate(&ledger, log, run_id)?;
        let lock = take_run_lock(log.path(), &state.plan_id, run_id)?;
        let now = Utc::now();
        let plan_verdict = state.verdict(&policy.policy, &policy.hash, now);
        let approval = match plan_verdict {
            Verdict::Approved { plan, .. } => plan,
            plan_verdict => match state.rollback_verdict(run, &policy.policy, &policy.hash, now) {
                Verdict::Approved { plan, .. } => plan,
                other => {
                    return Err(refuse_for(
                        Reason::NotApproved,
                        &state.submission.plan_hash,
                        format!(
                            "run `{run_id}` may not be rolled back: its approvals no longer count ({}), and the rollback has none of its own ({}): `opsgate approve {run_id} --rollback`",
                            plan_verdict.missing().unwrap_or_default(),
                            other.missing().unwrap_or_default()
                        ),
                    ));
                }
            },
        };
        let plan = frozen_plan(state)?;
        crate::exec::files::check(&plan.files).map_err(|e| {
            refuse_for(
                Reason::FilesChanged,
                &state.submission.plan_hash,
                format!("run `{run_id}` may not be rolled back: {e}"),
            )
        })?;
        let completed = run.completed_steps();
        let status = run.finished.unwrap_or(Status::Interrupted);
        let reason = format!("operator rollback of run {run_id} ({})", status.as_str());
        let event = crate::exec::engine::rollback_started(
            &state.plan_id,
            run_id,
            user,
            &reason,
            &crate::exec::engine::rollback_work(&plan, &completed),
        );
        decided = Some(RollbackStarted {
            plan_id: state.plan_id.clone(),
            run_id: run_id.to_owned(),
            user: user.to_owned(),
            plan,
            completed,
            approval,
            lock,
        });
        Ok(super::adoption::after(adopt, vec![event]))
    })?;
    decided.ok_or_else(|| Error::Failed("the rollback did not start".into()))
}
