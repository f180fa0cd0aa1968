//! The run loop. For each step: `step_started` is durable in the log; the
//! pre-checks must all pass; the action runs with its timeout; the
//! post-checks run with their retries; `step_finished` is recorded. The
//! first failure stops the run. A stop request is honoured between steps,
//! a second one kills the current step. The rollback runs the completed
//! steps' rollbacks in reverse order, then the plan-level rollback, and
//! records each with its true outcome.
//!
//! The engine takes an [`ApprovedPlan`] (only `core::approval` makes one)
//! or runs a dry run; nothing else runs.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Stop;
use super::shell::{self, OutputLine, Spec};
use crate::audit::{AuditError, AuditLog, CheckPhase, Event, Status};
use crate::core::approval::ApprovedPlan;
use crate::core::digest::PolicyHash;
use crate::core::plan::{Action, Check, Plan, PlanRollback};
use crate::core::risk::RiskLevel;
use crate::native::{self, Backends};

/// What allows this run.
#[derive(Debug, Clone)]
pub enum Authority {
    /// A real run of an approved plan.
    Approved(ApprovedPlan),
    /// A dry run of an approved plan: its pre-checks run, and mutations
    /// run only in a dry-run form (a `run:` line's, when it has one, or a
    /// native action's server-side dry run).
    Rehearsal(ApprovedPlan),
    /// A dry run of a plan that is not approved: nothing runs through a
    /// shell, neither a step nor a check. It shows what it would run, and
    /// performs only native server-side dry runs.
    DryRun,
}

impl Authority {
    /// Whether this is a dry run (a rehearsal or an unapproved preview).
    pub fn is_dry_run(&self) -> bool {
        !matches!(self, Authority::Approved(_))
    }

    /// The approval this run holds, if any.
    fn approved(&self) -> Option<&ApprovedPlan> {
        match self {
            Authority::Approved(a) | Authority::Rehearsal(a) => Some(a),
            Authority::DryRun => None,
        }
    }
}

/// How a run may act, from its authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Real,
    Rehearsal,
    /// Unapproved: no shell at all.
    Preview,
}

impl Mode {
    fn of(authority: &Authority) -> Self {
        match authority {
            Authority::Approved(_) => Mode::Real,
            Authority::Rehearsal(_) => Mode::Rehearsal,
            Authority::DryRun => Mode::Preview,
        }
    }

    fn dry_run(self) -> bool {
        self != Mode::Real
    }
}

/// What the engine tells its observers (the CLI now, the TUI later).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    StepStarted {
        index: usize,
        total: usize,
        name: String,
        command: String,
        /// `$ ` for a command line, `» ` for a native action.
        lead: &'static str,
    },
    Output {
        index: usize,
        line: OutputLine,
    },
    CheckFinished {
        index: usize,
        name: String,
        phase: CheckPhase,
        status: Status,
    },
    StepFinished {
        index: usize,
        status: Status,
        duration: Duration,
    },
    Note(String),
    RollbackStep {
        name: String,
        status: Status,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Nothing may run that cannot be recorded first.
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Refused(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub run_id: String,
    pub status: Status,
    /// Indexes (0-based) of the steps that succeeded, in order.
    pub completed: Vec<usize>,
    pub duration: Duration,
}

/// One run of one plan.
#[derive(Debug)]
pub struct Engine<'a> {
    log: &'a AuditLog,
    plan_id: &'a str,
    plan: &'a Plan,
    policy_hash: &'a PolicyHash,
    /// Each step's rating, in step order.
    risks: Vec<RiskLevel>,
    run_id: String,
    user: String,
    /// Between SIGTERM and SIGKILL.
    grace: Duration,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    stop: watch::Receiver<Stop>,
    /// Resuming an interrupted run: the steps (0-based) it completed. The
    /// run starts at the first step after them, and a rollback covers them.
    resumed: Vec<usize>,
    /// The clients and circuit breakers for native actions.
    backends: &'a Backends,
    /// The environment every `run:` action gets (`core::environment`).
    env: std::collections::BTreeMap<String, String>,
    /// Where in the log this run's stop requests may start (its
    /// `run_started` record): each `step_started` is decided under the
    /// log's lock after reading the requests recorded since, so a stop
    /// recorded just before a step ends is never missed.
    stops_from: std::sync::atomic::AtomicU64,
}

/// The fields every run names; the rest have defaults ([`Engine::new`]).
#[derive(Debug)]
pub struct RunSpec<'a> {
    pub log: &'a AuditLog,
    pub plan_id: &'a str,
    pub plan: &'a Plan,
    pub policy_hash: &'a PolicyHash,
    pub run_id: String,
    pub user: String,
    pub backends: &'a Backends,
}

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

impl<'a> Engine<'a> {
    /// An engine for one run: no progress channel, no stop requests, a
    /// five-second grace, no steps resumed, an empty environment, every
    /// step rated LOW until [`Engine::risks`] says otherwise.
    pub fn new(spec: RunSpec<'a>) -> Self {
        let (_, stop) = watch::channel(Stop::Run);
        Engine {
            log: spec.log,
            plan_id: spec.plan_id,
            plan: spec.plan,
            policy_hash: spec.policy_hash,
            risks: vec![RiskLevel::Low; spec.plan.steps.len()],
            run_id: spec.run_id,
            user: spec.user,
            grace: Duration::from_secs(5),
            progress: None,
            stop,
            resumed: Vec::new(),
            backends: spec.backends,
            env: std::collections::BTreeMap::new(),
            stops_from: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Each step's rating, in step order.
    #[must_use]
    pub fn risks(mut self, risks: Vec<RiskLevel>) -> Self {
        self.risks = risks;
        self
    }

    /// Between SIGTERM and SIGKILL.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Where progress goes.
    #[must_use]
    pub fn progress(mut self, tx: mpsc::UnboundedSender<Progress>) -> Self {
        self.progress = Some(tx);
        self
    }

    /// The stop requests, as they come.
    #[must_use]
    pub fn stop(mut self, stop: watch::Receiver<Stop>) -> Self {
        self.stop = stop;
        self
    }

    /// Resuming: the steps (0-based) an interrupted run completed.
    #[must_use]
    pub fn resumed(mut self, resumed: Vec<usize>) -> Self {
        self.resumed = resumed;
        self
    }

    /// The environment every `run:` action gets.
    #[must_use]
    pub fn env(mut self, env: std::collections::BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    /// Where in the log this run's stop requests may start.
    #[must_use]
    pub fn stops_from(self, offset: u64) -> Self {
        self.stops_from
            .store(offset, std::sync::atomic::Ordering::SeqCst);
        self
    }

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
}

impl Engine<'_> {
    fn tell(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p);
        }
    }

    /// A step that did not run, for the reason in `note` (shown and recorded).
    fn not_run(&self, status: Status, note: String) -> StepOutcome {
        self.tell(Progress::Note(note.clone()));
        StepOutcome {
            status,
            exit_code: None,
            output: note,
        }
    }

    fn record(&self, e: Event) -> Result<(), ExecError> {
        self.log.append(e)?;
        Ok(())
    }

    /// Records `step_started` under the log's lock, unless a stop request
    /// for this run was recorded since the last look: then records nothing
    /// and returns false.
    fn start_step(&self, started: Event) -> Result<bool, ExecError> {
        use std::sync::atomic::Ordering;
        let mut stopped = false;
        self.log.append_with(|len| {
            let from = self.stops_from.load(Ordering::SeqCst);
            stopped = stop_requested(self.log.path(), from, len, &self.run_id)?;
            self.stops_from.store(len.max(from), Ordering::SeqCst);
            Ok::<_, crate::audit::AuditError>(if stopped { Vec::new() } else { vec![started] })
        })?;
        Ok(!stopped)
    }

    /// Runs the plan. `run_started` must already be recorded by the caller
    /// (under the log's lock, with the approval checked there).
    pub async fn run(&self, authority: &Authority) -> Result<RunReport, ExecError> {
        let mode = Mode::of(authority);
        let dry_run = mode.dry_run();
        if let Some(a) = authority.approved() {
            let hash = self.plan.hash();
            if a.plan_hash() != &hash
                || a.plan_id() != self.plan_id
                || a.policy_hash() != self.policy_hash
            {
                return Err(ExecError::Refused(format!(
                    "the approval is for plan `{}` {} under policy {}, not for plan `{}` {hash} under {}",
                    a.plan_id(),
                    a.plan_hash(),
                    a.policy_hash(),
                    self.plan_id,
                    self.policy_hash
                )));
            }
        }
        let started = Instant::now();
        let total = self.plan.steps.len();
        let mut completed = self.resumed.clone();
        let first = self.resumed.iter().max().map_or(0, |i| i.saturating_add(1));
        let mut status = Status::Succeeded;
        for (index, step) in self.plan.steps.iter().enumerate().skip(first) {
            if *self.stop.borrow() >= Stop::AfterStep {
                status = Status::Cancelled;
                break;
            }
            let number = index as u32 + 1;
            let command = step.action.command_line().into_owned();
            let started = self.start_step(Event::StepStarted {
                plan_id: self.plan_id.to_owned(),
                run_id: self.run_id.clone(),
                step: number,
                name: step.name.clone(),
                action: command.clone(),
                risk: self
                    .risks
                    .get(index)
                    .copied()
                    .unwrap_or(RiskLevel::Critical),
                resource: None,
                action_sha256: Some(step.action.digest()),
            })?;
            if !started {
                status = Status::Cancelled;
                break;
            }
            self.tell(Progress::StepStarted {
                index,
                total,
                name: step.name.clone(),
                command: command.clone(),
                lead: step.action.lead(),
            });
            let step_start = Instant::now();
            let outcome = self.step(index, step, mode).await?;
            self.record(Event::StepFinished {
                plan_id: self.plan_id.to_owned(),
                run_id: self.run_id.clone(),
                step: number,
                name: step.name.clone(),
                action: command,
                status: outcome.status,
                exit_code: outcome.exit_code,
                duration_seconds: step_start.elapsed().as_secs_f64(),
                output: outcome.output,
            })?;
            self.tell(Progress::StepFinished {
                index,
                status: outcome.status,
                duration: step_start.elapsed(),
            });
            match outcome.status {
                Status::Succeeded | Status::Skipped if dry_run => completed.push(index),
                Status::Succeeded => completed.push(index),
                Status::Killed => {
                    status = Status::Cancelled;
                    break;
                }
                // Failed, timed out, or skipped for a failed pre-check.
                _ => {
                    status = Status::Failed;
                    break;
                }
            }
        }
        self.record(Event::RunFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            dry_run,
            status,
            duration_seconds: started.elapsed().as_secs_f64(),
        })?;
        Ok(RunReport {
            run_id: self.run_id.clone(),
            status,
            completed,
            duration: started.elapsed(),
        })
    }

    /// One step: pre-checks, the action (or its dry-run form), post-checks.
    async fn step(
        &self,
        index: usize,
        step: &crate::core::plan::Step,
        mode: Mode,
    ) -> Result<StepOutcome, ExecError> {
        let dry_run = mode.dry_run();
        // The files the plan's lines run or read are still as approved
        // (checked before the run, and again before each step).
        if let Err(changed) = crate::exec::files::check(&self.plan.files) {
            let note = format!("the step did not run: {changed}");
            return Ok(self.not_run(Status::Failed, note));
        }
        for check in &step.pre_checks {
            if mode == Mode::Preview {
                self.skip_check(index, check, CheckPhase::Pre)?;
                continue;
            }
            if !self.check(index, check, CheckPhase::Pre, mode).await? {
                if dry_run && index > 0 {
                    // The earlier steps were not applied, so this check may
                    // fail only because of that.
                    self.tell(Progress::Note(format!(
                        "pre-check `{}` fails now; it may depend on earlier steps, which a dry run does not apply (inconclusive)",
                        check.name
                    )));
                    continue;
                }
                return Ok(StepOutcome {
                    status: if dry_run {
                        Status::Failed
                    } else {
                        Status::Skipped
                    },
                    exit_code: None,
                    output: format!("pre-check `{}` failed: the step did not run", check.name),
                });
            }
        }
        let action = match (&step.action, mode) {
            (Action::Run(command), Mode::Preview) => {
                let note = format!(
                    "dry run: would run `{command}` (not run: the plan is not approved, and an unapproved dry run runs nothing through a shell; once approved, a dry run rehearses it)"
                );
                return Ok(self.not_run(Status::Skipped, note));
            }
            (Action::Run(command), Mode::Rehearsal) => match dry_run_form(command) {
                Some(c) => Action::Run(c),
                None => {
                    let note = format!("dry run: would run `{command}` (it has no dry-run form)");
                    return Ok(self.not_run(Status::Skipped, note));
                }
            },
            (other, _) => other.clone(),
        };
        let outcome = self
            .perform(
                index,
                &action,
                step.timeout.get(),
                mode,
                step.keep_background,
            )
            .await?;
        if outcome.status != Status::Succeeded || dry_run {
            return Ok(StepOutcome {
                status: outcome.status,
                exit_code: outcome.exit_code,
                output: outcome.output,
            });
        }
        for check in &step.post_checks {
            if !self.check(index, check, CheckPhase::Post, mode).await? {
                return Ok(StepOutcome {
                    status: Status::Failed,
                    exit_code: outcome.exit_code,
                    output: format!("{}post-check `{}` failed", outcome.output, check.name),
                });
            }
        }
        Ok(StepOutcome {
            status: Status::Succeeded,
            exit_code: outcome.exit_code,
            output: outcome.output,
        })
    }

    async fn shell(
        &self,
        index: usize,
        command: &str,
        timeout: Duration,
        keep_background: bool,
    ) -> Result<shell::Outcome, ExecError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = Spec {
            command,
            timeout,
            grace: self.grace,
            keep_background,
            env: &self.env,
        };
        let run = shell::run(&spec, Some(&tx), self.stop.clone());
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                o = &mut run => break o,
                Some(line) = rx.recv() => self.tell(Progress::Output { index, line }),
            }
        };
        while let Ok(line) = rx.try_recv() {
            self.tell(Progress::Output { index, line });
        }
        outcome.map_err(|e| ExecError::Refused(format!("cannot start `/bin/sh -c {command}`: {e}")))
    }

    /// Runs an action: a command line in a shell, or a native action
    /// through its backend (in a dry run, the backend's own server-side
    /// dry run). A second stop request kills either. An unapproved dry run
    /// never reaches a shell: that is refused here too, whatever the
    /// caller.
    async fn perform(
        &self,
        index: usize,
        action: &Action,
        timeout: Duration,
        mode: Mode,
        keep_background: bool,
    ) -> Result<shell::Outcome, ExecError> {
        let Action::Run(command) = action else {
            return self.native(index, action, timeout, mode.dry_run()).await;
        };
        if mode == Mode::Preview {
            return Err(ExecError::Refused(format!(
                "`{command}` was not run: a dry run of a plan that is not approved runs nothing through a shell"
            )));
        }
        self.shell(index, command, timeout, keep_background).await
    }

    /// Records a check that a preview does not run, as skipped.
    fn skip_check(&self, index: usize, check: &Check, phase: CheckPhase) -> Result<(), ExecError> {
        let output =
            "not run: the plan is not approved (a dry run of the approved plan runs its checks)"
                .to_owned();
        self.record(Event::CheckFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            step: index as u32 + 1,
            phase,
            action: check.action.command_line().into_owned(),
            status: Status::Skipped,
            attempts: 0,
            duration_seconds: 0.0,
            output,
        })?;
        self.tell(Progress::CheckFinished {
            index,
            name: check.name.clone(),
            phase,
            status: Status::Skipped,
        });
        Ok(())
    }

    async fn native(
        &self,
        index: usize,
        action: &Action,
        timeout: Duration,
        dry_run: bool,
    ) -> Result<shell::Outcome, ExecError> {
        let started = Instant::now();
        let mut stop = self.stop.clone();
        let call = self.backends.perform(action, dry_run, timeout);
        let killed = async {
            // A closed channel means no one can ask to stop any more.
            while *stop.borrow_and_update() < Stop::Kill {
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let result = tokio::select! {
            o = call => Some(o),
            () = killed => None,
        };
        for change in self.backends.take_changes() {
            self.record(Event::BreakerChanged {
                backend: change.backend.to_owned(),
                state: change.state.as_str().to_owned(),
                consecutive_failures: change.consecutive_failures,
                run_id: Some(self.run_id.clone()),
                error: change.error,
            })?;
        }
        let (status, exit_code, output) = match result {
            None => (
                Status::Killed,
                None,
                "stopped: the call was abandoned (the server may still carry it out)".to_owned(),
            ),
            Some(native::Outcome::Answered(reply)) => {
                let status = if reply.ok {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                (status, Some(if reply.ok { 0 } else { 1 }), reply.output)
            }
            Some(native::Outcome::Failed(e) | native::Outcome::BreakerOpen(e)) => {
                (Status::Failed, None, e)
            }
            Some(native::Outcome::TimedOut(e)) => (Status::TimedOut, None, e),
        };
        for line in output.lines() {
            self.tell(Progress::Output {
                index,
                line: OutputLine {
                    stderr: status != Status::Succeeded,
                    text: line.to_owned(),
                },
            });
        }
        Ok(shell::Outcome {
            status,
            exit_code,
            stdout: output.clone(),
            output,
            duration: started.elapsed(),
        })
    }

    /// A check, with its retries; records `check_finished`.
    async fn check(
        &self,
        index: usize,
        check: &Check,
        phase: CheckPhase,
        mode: Mode,
    ) -> Result<bool, ExecError> {
        let started = Instant::now();
        let attempts = check.retry.attempts.max(1);
        let mut last = None;
        let mut tried = 0;
        for attempt in 1..=attempts {
            tried = attempt;
            // A check is a read: it runs as it is, never in a dry-run form,
            // and never in a preview (`perform` refuses a shell there).
            let check_mode = if mode == Mode::Preview {
                Mode::Preview
            } else {
                Mode::Real
            };
            let o = self
                .perform(index, &check.action, check.timeout.get(), check_mode, false)
                .await?;
            let passed = o.exit_code == Some(check.expect.exit_code)
                && o.status != Status::TimedOut
                && o.status != Status::Killed
                && check
                    .expect
                    .stdout_contains
                    .as_deref()
                    .is_none_or(|s| o.stdout.contains(s));
            let killed = o.status == Status::Killed;
            last = Some((passed, o));
            if passed || killed || attempt == attempts {
                break;
            }
            tokio::time::sleep(check.retry.interval.get()).await;
        }
        let (passed, o) =
            last.ok_or_else(|| ExecError::Refused("a check ran no attempt".into()))?;
        let status = if passed {
            Status::Passed
        } else {
            Status::Failed
        };
        self.record(Event::CheckFinished {
            plan_id: self.plan_id.to_owned(),
            run_id: self.run_id.clone(),
            step: index as u32 + 1,
            phase,
            action: check.action.command_line().into_owned(),
            status,
            attempts: tried,
            duration_seconds: started.elapsed().as_secs_f64(),
            output: o.output,
        })?;
        self.tell(Progress::CheckFinished {
            index,
            name: check.name.clone(),
            phase,
            status,
        });
        Ok(passed)
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

/// Whether the log's bytes `[from, to)` hold a stop request for `run_id`.
fn stop_requested(
    path: &std::path::Path,
    from: u64,
    to: u64,
    run_id: &str,
) -> Result<bool, crate::audit::AuditError> {
    if from >= to {
        return Ok(false);
    }
    let io = |source| crate::audit::AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = crate::audit::read::LineReader::open_range(path, from, to, 1).map_err(io)?;
    while let Some(line) = reader.next_line() {
        let line = line.map_err(io)?;
        if let Ok(r) = serde_json::from_slice::<crate::audit::Record>(line.bytes)
            && let Event::RunCancelled { run_id: id, .. } = &r.event
            && id == run_id
        {
            return Ok(true);
        }
    }
    Ok(false)
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

struct StepOutcome {
    status: Status,
    exit_code: Option<i32>,
    output: String,
}

/// The native dry-run form of a simple mutating command, if it has one:
/// kubectl `--dry-run=server`, `aws ec2 … --dry-run`, `terraform plan`.
/// Compound commands (pipes, lists, substitutions, redirections) have none.
///
/// The form must not be able to run for real, so it is made only from
/// (tool, verb, flags) known to honour the dry-run flag:
/// - only plain words (letters, digits and `-_./=:,@%+`), so no quoting,
///   comment (`#`) or expansion can hide the added flag;
/// - no `--` (after which the flag would be an argument), and no dry-run
///   flag of the command's own (`--dry-run=none`, `--no-dry-run`: a flag
///   the line sets or overrides itself);
/// - kubectl: the verbs below, found after kubectl's own global flags,
///   without a flag that bypasses the dry run (`--raw` sends the request
///   as it is; `--edit` opens an editor) or a subcommand of `apply` that is
///   not a plain apply;
/// - aws: `ec2` operations only, without `--cli-input-json|yaml` (which
///   can carry `DryRun: false`).
pub fn dry_run_form(command: &str) -> Option<String> {
    let c = command.trim();
    let plain = |ch: char| ch.is_ascii_alphanumeric() || " -_./=:,@%+".contains(ch);
    if !c.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = c.split_whitespace().collect();
    if words.iter().any(|w| *w == "--" || w.contains("dry-run")) {
        return None;
    }
    match words.as_slice() {
        ["kubectl", rest @ ..] => kubectl_dry_run(rest).then(|| format!("{c} --dry-run=server")),
        ["aws", "ec2", rest @ ..]
            if !rest.is_empty()
                && !rest
                    .iter()
                    .any(|w| flag_is(w, "--cli-input-json") || flag_is(w, "--cli-input-yaml")) =>
        {
            Some(format!("{c} --dry-run"))
        }
        ["terraform", "apply", rest @ ..] => Some(
            format!("terraform plan {}", rest.join(" "))
                .trim_end()
                .to_owned(),
        ),
        ["terraform", "destroy", rest @ ..] => Some(
            format!("terraform plan -destroy {}", rest.join(" "))
                .trim_end()
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether `word` is the flag `name`, alone or as `name=value`.
fn flag_is(word: &str, name: &str) -> bool {
    word == name
        || word
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('='))
}

/// kubectl's global flags that take a value, as they may come before the
/// verb (`kubectl --context prod delete …`).
const KUBECTL_GLOBAL_VALUE_FLAGS: &[&str] = &[
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "-n",
    "--namespace",
    "-s",
    "--server",
    "--request-timeout",
    "-v",
];

/// The kubectl verbs whose mutations honour `--dry-run=server`.
const KUBECTL_DRY_RUN_VERBS: &[&str] = &[
    "apply",
    "create",
    "delete",
    "patch",
    "replace",
    "scale",
    "label",
    "annotate",
    "set",
    "autoscale",
    "expose",
];

/// Flags with which kubectl ignores `--dry-run`: `--raw` sends the request
/// as written (a real DELETE, POST or PUT), `--edit` runs an editor.
const KUBECTL_NO_DRY_RUN_FLAGS: &[&str] = &["--raw", "--edit"];

/// Whether kubectl's arguments (after `kubectl`) are a verb and flags known
/// to honour `--dry-run=server`.
fn kubectl_dry_run(args: &[&str]) -> bool {
    let mut i = 0;
    while let Some(w) = args.get(i) {
        if KUBECTL_GLOBAL_VALUE_FLAGS.contains(w) {
            i += 2;
        } else if KUBECTL_GLOBAL_VALUE_FLAGS.iter().any(|f| flag_is(w, f)) {
            i += 1;
        } else {
            break;
        }
    }
    let Some(verb) = args.get(i) else {
        return false;
    };
    if !KUBECTL_DRY_RUN_VERBS.contains(verb) {
        return false;
    }
    let rest = &args[i + 1..];
    if rest
        .iter()
        .any(|w| KUBECTL_NO_DRY_RUN_FLAGS.iter().any(|f| flag_is(w, f)))
    {
        return false;
    }
    // `apply edit-last-applied` opens an editor; `set-last-applied` and
    // `view-last-applied` are not an apply either.
    !(*verb == "apply" && rest.first().is_some_and(|w| w.ends_with("-last-applied")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_forms() {
        assert_eq!(
            dry_run_form("kubectl scale deployment api --replicas=5").as_deref(),
            Some("kubectl scale deployment api --replicas=5 --dry-run=server")
        );
        assert_eq!(
            dry_run_form("aws ec2 stop-instances --instance-ids i-1").as_deref(),
            Some("aws ec2 stop-instances --instance-ids i-1 --dry-run")
        );
        assert_eq!(
            dry_run_form("terraform apply -auto-approve").as_deref(),
            Some("terraform plan -auto-approve")
        );
        assert_eq!(
            dry_run_form("terraform destroy").as_deref(),
            Some("terraform plan -destroy")
        );
        assert_eq!(dry_run_form("kubectl get pods"), None);
        assert_eq!(dry_run_form("kubectl delete pod x; rm -rf /"), None);
        // Forms that would run for real, or could: none of them.
        for unsafe_form in [
            "kubectl delete ns prod # note",
            "kubectl delete ns prod --",
            "kubectl delete ns prod --dry-run=none",
            "aws ec2 terminate-instances --instance-ids i-1 --no-dry-run",
            "kubectl delete ns 'prod'",
            "kubectl delete ns prod\\",
            "kubectl delete ns \"$NS\"",
            "kubectl\tdelete ns prod\n",
            // kubectl ignores --dry-run with --raw: a real DELETE.
            "kubectl delete --raw /api/v1/namespaces/prod",
            "kubectl --context prod delete --raw=/api/v1/namespaces/prod",
            "kubectl create --raw /api/v1/namespaces -f ns.json",
            "kubectl replace --raw /api/v1/namespaces/prod -f ns.json",
            "kubectl create --edit -f x.yaml",
            "kubectl apply edit-last-applied deploy/api",
            "aws ec2 terminate-instances --cli-input-json file://x.json",
            "aws ec2",
        ] {
            assert_eq!(dry_run_form(unsafe_form), None, "{unsafe_form}");
        }
        assert_eq!(dry_run_form("systemctl restart app"), None);
        // Global flags before the verb are kubectl's own.
        assert_eq!(
            dry_run_form("kubectl --context staging -n web delete deploy api").as_deref(),
            Some("kubectl --context staging -n web delete deploy api --dry-run=server")
        );
        assert_eq!(
            dry_run_form("kubectl --kubeconfig=k.yaml get pods"),
            None,
            "a read has no dry-run form"
        );
    }
}
