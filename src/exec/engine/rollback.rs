//! Rolling a run back: the completed steps' own rollbacks in reverse
//! order, then the plan-level rollback, each recorded with its true
//! outcome. A rollback runs only with a [`RollbackPermit`]: an approval
//! that counts for the plan and the run's own lock, which only the
//! application layer holds together (under the log's lock), as a run
//! needs an [`ApprovedPlan`].

use std::time::{Duration, Instant};

use super::{Engine, ExecError, Mode, Progress, RunReport};
use crate::audit::{Event, Status};
use crate::core::approval::ApprovedPlan;
use crate::core::plan::{Action, Plan, PlanRollback};

/// Leave to run a rollback of one run: an approval that counts for it (the
/// run's own, or the rollback's) and the run's lock, held. Only the
/// application layer makes one, under the log's lock, as a run needs an
/// [`ApprovedPlan`].
#[derive(Debug)]
pub struct RollbackPermit<'l> {
    approval: ApprovedPlan,
    lock: &'l crate::audit::ledger::RunLock,
}

impl<'l> RollbackPermit<'l> {
    pub fn new(approval: ApprovedPlan, lock: &'l crate::audit::ledger::RunLock) -> Self {
        RollbackPermit { approval, lock }
    }
}

impl Engine<'_> {
    /// Whether `permit` is leave to roll back this run of this plan.
    fn check_permit(&self, permit: &RollbackPermit<'_>) -> Result<(), ExecError> {
        if permit.lock.run_id() != self.run_id
            || permit.approval.plan_id() != self.plan_id
            || *permit.approval.plan_hash() != self.plan.hash()
        {
            return Err(ExecError::Refused(format!(
                "the rollback of run `{}` holds no leave for it",
                self.run_id
            )));
        }
        Ok(())
    }

    /// Rolls back after `report`: records `rollback_started` with every
    /// action it will run, then runs them (`run_rollback`). With
    /// `keep_going`, a failed rollback step does not end the rollback.
    /// Returns its status: `succeeded` only if every rollback step
    /// succeeded. The caller holds the run's lock, so no one else can
    /// start a rollback of this run meanwhile.
    pub async fn rollback(
        &self,
        permit: &RollbackPermit<'_>,
        report: &RunReport,
        reason: &str,
        keep_going: bool,
    ) -> Result<Status, ExecError> {
        self.check_permit(permit)?;
        let work = rollback_work(self.plan, &report.completed);
        crate::exec::files::check(&self.plan.files)
            .map_err(|e| ExecError::Refused(format!("the rollback did not start: {e}")))?;
        self.record(rollback_started(
            self.plan_id,
            &self.run_id,
            &self.user,
            reason,
            &work,
        ))?;
        self.run_rollback(permit, &work, keep_going).await
    }

    /// Runs a rollback whose `rollback_started` is already recorded.
    pub async fn run_rollback(
        &self,
        permit: &RollbackPermit<'_>,
        work: &[RollbackWork<'_>],
        keep_going: bool,
    ) -> Result<Status, ExecError> {
        self.check_permit(permit)?;
        let started = Instant::now();
        let mut status = Status::Succeeded;
        for w in work {
            let (number, name, action, timeout) = (w.number, w.name.clone(), w.action, w.timeout);
            let command = action.command_line().into_owned();
            let o = self
                .perform(usize::MAX, action, timeout, Mode::Real, false)
                .await?;
            let step_status = match o.status {
                Status::Succeeded => Status::Succeeded,
                Status::Killed => Status::Killed,
                Status::TimedOut => Status::TimedOut,
                _ => Status::Failed,
            };
            self.record(Event::RollbackStepFinished {
                plan_id: self.plan_id.to_owned(),
                run_id: self.run_id.clone(),
                step: number,
                name: name.clone(),
                action: command,
                status: step_status,
                exit_code: o.exit_code,
                duration_seconds: o.duration.as_secs_f64(),
                output: o.output,
            })?;
            self.tell(Progress::RollbackStep {
                name,
                status: step_status,
            });
            if step_status != Status::Succeeded {
                status = Status::Failed;
                if !keep_going || step_status == Status::Killed {
                    break;
                }
            }
        }
        self.record(Event::RollbackFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            status,
            duration_seconds: started.elapsed().as_secs_f64(),
        })?;
        Ok(status)
    }
}

/// One action of a rollback, in the order it runs.
#[derive(Debug, Clone)]
pub struct RollbackWork<'p> {
    /// The step's number (a step's own rollback) or the rollback step's.
    pub number: u32,
    pub name: String,
    pub action: &'p Action,
    pub timeout: Duration,
}

/// The rollback of `plan` after the steps `completed` (0-based indexes):
/// their own rollbacks in reverse order, then the plan-level rollback. An
/// index outside the plan (a crafted log) is skipped.
pub fn rollback_work<'p>(plan: &'p Plan, completed: &[usize]) -> Vec<RollbackWork<'p>> {
    let mut work = Vec::new();
    for &i in completed.iter().rev() {
        let Some(step) = plan.steps.get(i) else {
            continue;
        };
        if let Some(action) = &step.rollback {
            work.push(RollbackWork {
                number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                name: format!("undo {}", step.name),
                action,
                timeout: step.timeout.get(),
            });
        }
    }
    if let PlanRollback::Steps { steps, .. } = &plan.rollback {
        for (n, s) in steps.iter().enumerate() {
            work.push(RollbackWork {
                number: u32::try_from(n + 1).unwrap_or(u32::MAX),
                name: s.name.clone(),
                action: &s.action,
                timeout: s.timeout.get(),
            });
        }
    }
    work
}

/// The write-ahead record of a rollback: every action it may run, before
/// the first runs.
pub fn rollback_started(
    plan_id: &str,
    run_id: &str,
    user: &str,
    reason: &str,
    work: &[RollbackWork<'_>],
) -> Event {
    Event::RollbackStarted {
        plan_id: plan_id.to_owned(),
        run_id: run_id.to_owned(),
        user: Some(user.to_owned()),
        reason: reason.to_owned(),
        actions: work
            .iter()
            .map(|w| w.action.command_line().into_owned())
            .collect(),
    }
}
