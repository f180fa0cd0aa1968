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

mod checks;
mod dry_run;
mod rollback;

pub use dry_run::dry_run_form;
pub use rollback::{RollbackPermit, RollbackWork, rollback_started, rollback_work};

use super::Stop;
use super::shell::{self, OutputLine, Spec};
use crate::audit::{AuditError, AuditLog, CheckPhase, Event, Status};
use crate::core::approval::ApprovedPlan;
use crate::core::digest::PolicyHash;
use crate::core::plan::{Action, Check, Plan};
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

/// Seconds between SIGTERM and SIGKILL when a step times out or is
/// killed, unless the run says otherwise (`run --grace`).
pub const DEFAULT_GRACE_SECONDS: u64 = 5;

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
            grace: Duration::from_secs(DEFAULT_GRACE_SECONDS),
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

    /// Records `e`, under the log's lock, while this run still holds its
    /// lease (team mode).
    fn record(&self, e: Event) -> Result<(), ExecError> {
        self.log.append_with(|_| {
            self.holds_lease()?;
            Ok::<_, ExecError>(vec![e])
        })?;
        Ok(())
    }

    /// Team mode: refuses to go on once the run's lease in the store has
    /// lapsed (this process was frozen longer than the lease, say) and
    /// another host may have taken the plan over. Nothing more is recorded
    /// or started: to every host the run is interrupted. A file log has
    /// no lease; its run lock is held by this process for as long as it
    /// lives.
    fn holds_lease(&self) -> Result<(), ExecError> {
        match crate::audit::log::lease_live(self.log.path(), &self.run_id) {
            Some(false) => Err(ExecError::Refused(format!(
                "run {} no longer holds its lease in the store (it lapsed, and another host may have taken the plan over): nothing more is started or recorded",
                self.run_id
            ))),
            _ => Ok(()),
        }
    }

    /// Records `step_started` under the log's lock, unless a stop request
    /// for this run was recorded since the last look: then records nothing
    /// and returns false.
    fn start_step(&self, started: Event) -> Result<bool, ExecError> {
        use std::sync::atomic::Ordering;
        let mut stopped = false;
        self.log.append_with(|len| {
            self.holds_lease()?;
            let from = self.stops_from.load(Ordering::SeqCst);
            stopped = stop_requested(self.log.path(), from, len, &self.run_id)?;
            self.stops_from.store(len.max(from), Ordering::SeqCst);
            Ok::<_, ExecError>(if stopped { Vec::new() } else { vec![started] })
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

struct StepOutcome {
    status: Status,
    exit_code: Option<i32>,
    output: String,
}
