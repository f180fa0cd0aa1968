//! The state of every plan and run: a fold over the audit records, in log
//! order. Nothing here reads the log; callers feed records in.
//!
//! A plan is known by its id. A new submission under the same id (a changed
//! plan, or the same plan again after it was closed) starts it over: its
//! approvals and runs start from zero. The log keeps the history.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::approval::{Subject, Verdict, Vote, evaluate, same_person};
use crate::core::digest::{PlanHash, PolicyHash};
use crate::core::event::{Decision, Event, Record, Status};
use crate::core::policy::Policy;
use crate::core::risk::RiskLevel;

/// A plan's latest submission.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submission {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub plan_hash: PlanHash,
    pub policy_hash: PolicyHash,
    pub risk: RiskLevel,
    pub author: String,
    pub submitted_by: String,
    /// How the submitter is known (v3).
    pub identity: Option<crate::core::identity::Proof>,
    pub mutates_production: bool,
    pub redacted: bool,
    /// The normalized plan as recorded.
    #[serde(skip)]
    pub plan: serde_json::Value,
    /// The live state of its native targets at submission.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fingerprints: BTreeMap<String, String>,
}

/// A backend's circuit breaker, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerRecord {
    pub backend: String,
    pub state: String,
    pub consecutive_failures: u32,
    pub since: DateTime<Utc>,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepState {
    pub step: u32,
    pub name: String,
    pub started: DateTime<Utc>,
    pub finished: Option<Status>,
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackState {
    pub started: DateTime<Utc>,
    pub steps: Vec<(String, Status)>,
    pub finished: Option<Status>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunState {
    pub run_id: String,
    pub dry_run: bool,
    pub plan_hash: PlanHash,
    pub user: String,
    pub started: DateTime<Utc>,
    pub steps: Vec<StepState>,
    /// A stop was requested; `true` when it asked to kill the current step.
    pub stop: Option<bool>,
    pub finished: Option<Status>,
    pub duration_seconds: Option<f64>,
    pub rollback: Option<RollbackState>,
    /// Approvals of rolling this run back (`approve RUN --rollback`), for
    /// when the run's own approvals no longer count.
    #[serde(skip)]
    pub rollback_votes: Vec<Vote>,
}

impl RunState {
    /// The steps (0-based indexes) this run completed, in log order. A
    /// step number that cannot be one (0, from a crafted log) is skipped;
    /// the caller bounds them by its plan.
    pub fn completed_steps(&self) -> Vec<usize> {
        self.steps
            .iter()
            .filter(|s| s.finished == Some(Status::Succeeded))
            .filter_map(|s| (s.step as usize).checked_sub(1))
            .collect()
    }

    /// The steps completed before the first one that was not: what a
    /// resumed run counts as done.
    pub fn completed_prefix(&self) -> Vec<usize> {
        self.steps
            .iter()
            .take_while(|s| s.finished == Some(Status::Succeeded))
            .filter_map(|s| (s.step as usize).checked_sub(1))
            .collect()
    }

    /// The step that started and never finished, if any.
    pub fn unfinished_step(&self) -> Option<&StepState> {
        self.steps.iter().rev().find(|s| s.finished.is_none())
    }
}

/// One plan: its latest submission, the votes and runs since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanState {
    pub plan_id: String,
    pub submission: Submission,
    #[serde(skip)]
    pub votes: Vec<Vote>,
    /// Approvals the log records as expired.
    pub expired_recorded: bool,
    pub runs: Vec<RunState>,
}

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
    Refused,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    RolledBack,
    Interrupted,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::Approved => "approved",
            PlanStatus::Rejected => "rejected",
            PlanStatus::Expired => "expired",
            PlanStatus::Refused => "refused",
            PlanStatus::Running => "running",
            PlanStatus::Succeeded => "succeeded",
            PlanStatus::Failed => "failed",
            PlanStatus::Cancelled => "cancelled",
            PlanStatus::RolledBack => "rolled_back",
            PlanStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the plan can still gather approvals and run.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            PlanStatus::Pending | PlanStatus::Approved | PlanStatus::Expired | PlanStatus::Refused
        )
    }
}

impl PlanState {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            plan_id: &self.plan_id,
            plan_hash: &self.submission.plan_hash,
            risk: self.submission.risk,
            author: &self.submission.submitted_by,
            author_key: match &self.submission.identity {
                Some(crate::core::identity::Proof::Ssh { fingerprint, .. }) => Some(fingerprint),
                _ => None,
            },
            mutates_production: self.submission.mutates_production,
            has_override: self.submission.plan.get("override").is_some(),
        }
    }

    /// The approval verdict under the current policy, at `now`.
    pub fn verdict(
        &self,
        policy: &Policy,
        policy_hash: &PolicyHash,
        now: DateTime<Utc>,
    ) -> Verdict {
        evaluate(policy, policy_hash, &self.subject(), &self.votes, now)
    }

    /// Whether rolling back `run` is approved now: the rollback's own
    /// approvals, under the same rules as the plan's.
    pub fn rollback_verdict(
        &self,
        run: &RunState,
        policy: &Policy,
        policy_hash: &PolicyHash,
        now: DateTime<Utc>,
    ) -> Verdict {
        evaluate(
            policy,
            policy_hash,
            &self.subject(),
            &run.rollback_votes,
            now,
        )
    }

    /// The last real (not dry) run.
    pub fn last_run(&self) -> Option<&RunState> {
        self.runs.iter().rev().find(|r| !r.dry_run)
    }

    /// Whether a dry run of the current plan hash succeeded.
    pub fn dry_run_succeeded(&self) -> bool {
        self.runs.iter().any(|r| {
            r.dry_run
                && r.plan_hash == self.submission.plan_hash
                && r.finished == Some(Status::Succeeded)
        })
    }

    /// Whether a successful dry run of the current plan hash exercised
    /// every step in `steps` (1-based numbers) in a real dry-run form: its
    /// `step_finished` succeeded there (a step shown but not run is
    /// `skipped`).
    pub fn dry_run_exercised(&self, steps: &[u32]) -> bool {
        self.runs.iter().any(|r| {
            r.dry_run
                && r.plan_hash == self.submission.plan_hash
                && r.finished == Some(Status::Succeeded)
                && steps.iter().all(|n| {
                    r.steps
                        .iter()
                        .any(|s| s.step == *n && s.finished == Some(Status::Succeeded))
                })
        })
    }

    /// The plan's status. `live` says whether a run without a
    /// `run_finished` is still being run by a live engine.
    pub fn status(&self, verdict: &Verdict, live: impl Fn(&str) -> bool) -> PlanStatus {
        if let Some(run) = self.last_run() {
            return run_status(run, &live);
        }
        match verdict {
            Verdict::Refused { .. } => PlanStatus::Refused,
            Verdict::Rejected { .. } => PlanStatus::Rejected,
            Verdict::Approved { .. } => PlanStatus::Approved,
            Verdict::Pending { expired: true, .. } => PlanStatus::Expired,
            Verdict::Pending { .. } if self.expired_recorded => PlanStatus::Expired,
            Verdict::Pending { .. } => PlanStatus::Pending,
        }
    }
}

/// A run's status as a plan status.
pub fn run_status(run: &RunState, live: &impl Fn(&str) -> bool) -> PlanStatus {
    if run
        .rollback
        .as_ref()
        .is_some_and(|r| r.finished == Some(Status::Succeeded))
    {
        return PlanStatus::RolledBack;
    }
    match run.finished {
        Some(Status::Succeeded) => PlanStatus::Succeeded,
        Some(Status::Cancelled) => PlanStatus::Cancelled,
        Some(Status::Interrupted) => PlanStatus::Interrupted,
        Some(_) => PlanStatus::Failed,
        None if live(&run.run_id) => PlanStatus::Running,
        None => PlanStatus::Interrupted,
    }
}

/// Where a run's plan state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunHome {
    /// Under the plan's current submission.
    Current(String),
    /// Under a submission since replaced (an index into `retired`).
    Retired(usize),
}

/// Every plan and run, folded from the records.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    plans: BTreeMap<String, PlanState>,
    /// Submissions replaced by a later one with the same id, with their
    /// runs: a run stays reachable by its id whatever was submitted since.
    retired: Vec<PlanState>,
    /// run id → where its plan state is
    runs: HashMap<String, RunHome>,
    /// backend → its breaker's last recorded state
    breakers: BTreeMap<String, BreakerRecord>,
    /// Every `policy_adopted`, in log order.
    adoptions: Vec<Adoption>,
    /// Every `policy_proposed`, in log order, with its approvals.
    proposals: Vec<Proposal>,
}

/// A policy proposed in place of the adopted one (`policy_proposed`), and
/// the approvals recorded for it. Whether they adopt it is decided by
/// `app::adoption`, which checks them against the base policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub policy_hash: PolicyHash,
    pub base_hash: PolicyHash,
    pub source: String,
    pub policy: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_signers: Option<String>,
    pub proposed_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::core::identity::Proof>,
    pub loosens: bool,
    pub needs: u32,
    pub approvals: Vec<PolicyApproval>,
}

/// A `policy_approved` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyApproval {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub approver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::core::identity::Proof>,
}

/// A policy as the log adopted it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub policy_hash: PolicyHash,
    pub source: String,
    pub policy: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_signers: Option<String>,
    pub adopted_by: String,
}

impl Ledger {
    pub fn plans(&self) -> impl Iterator<Item = &PlanState> {
        self.plans.values()
    }

    /// The policy adopted last: the one in force.
    pub fn adopted(&self) -> Option<&Adoption> {
        self.adoptions.last()
    }

    /// Every adoption, oldest first.
    pub fn adoptions(&self) -> &[Adoption] {
        &self.adoptions
    }

    /// Every policy proposed, in log order, with its approvals.
    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }

    /// Each backend's circuit breaker as last recorded.
    pub fn breakers(&self) -> impl Iterator<Item = &BreakerRecord> {
        self.breakers.values()
    }

    pub fn plan(&self, id: &str) -> Option<&PlanState> {
        self.plans.get(id)
    }

    /// A run and the submission it ran (the plan's current one, or one
    /// that was replaced since).
    pub fn run(&self, run_id: &str) -> Option<(&PlanState, &RunState)> {
        let plan = match self.runs.get(run_id)? {
            RunHome::Current(id) => self.plans.get(id)?,
            RunHome::Retired(i) => self.retired.get(*i)?,
        };
        let run = plan.runs.iter().find(|r| r.run_id == run_id)?;
        Some((plan, run))
    }

    /// Applies one record.
    pub fn apply(&mut self, r: &Record) {
        match &r.event {
            Event::PlanSubmitted {
                plan_id,
                plan_hash,
                policy_hash,
                risk,
                author,
                submitted_by,
                identity,
                mutates_production,
                redacted,
                plan,
                fingerprints,
            } => {
                let state = PlanState {
                    plan_id: plan_id.clone(),
                    submission: Submission {
                        seq: r.seq,
                        ts: r.ts,
                        plan_hash: plan_hash.clone(),
                        policy_hash: policy_hash.clone(),
                        risk: *risk,
                        author: author.clone(),
                        submitted_by: submitted_by.clone(),
                        identity: identity.clone(),
                        mutates_production: *mutates_production,
                        redacted: *redacted,
                        plan: plan.clone(),
                        fingerprints: fingerprints.clone(),
                    },
                    votes: Vec::new(),
                    expired_recorded: false,
                    runs: Vec::new(),
                };
                if let Some(old) = self.plans.insert(plan_id.clone(), state) {
                    let at = self.retired.len();
                    for run in &old.runs {
                        self.runs.insert(run.run_id.clone(), RunHome::Retired(at));
                    }
                    self.retired.push(old);
                }
            }
            Event::ApprovalGranted(d) => self.vote(d, r.ts, true),
            Event::ApprovalRejected(d) => self.vote(d, r.ts, false),
            Event::ApprovalExpired(d) => {
                // It expires the votes cast before it, not a later
                // re-approval by the same person.
                if let Some(p) = self.plans.get_mut(&d.plan_id) {
                    p.votes.retain(|v| {
                        !(same_person(&v.approver, &d.approver)
                            && v.plan_hash == d.plan_hash
                            && v.at <= r.ts)
                    });
                    p.expired_recorded = true;
                }
            }
            Event::RunStarted {
                plan_id,
                run_id,
                plan_hash,
                dry_run,
                user,
                ..
            } => {
                if let Some(p) = self.plans.get_mut(plan_id) {
                    p.runs.push(RunState {
                        run_id: run_id.clone(),
                        dry_run: *dry_run,
                        plan_hash: plan_hash.clone(),
                        user: user.clone(),
                        started: r.ts,
                        steps: Vec::new(),
                        stop: None,
                        finished: None,
                        duration_seconds: None,
                        rollback: None,
                        rollback_votes: Vec::new(),
                    });
                    self.runs
                        .insert(run_id.clone(), RunHome::Current(plan_id.clone()));
                }
            }
            Event::StepStarted {
                run_id, step, name, ..
            } => {
                if let Some(run) = self.run_mut(run_id) {
                    run.steps.push(StepState {
                        step: *step,
                        name: name.clone(),
                        started: r.ts,
                        finished: None,
                        duration_seconds: None,
                    });
                }
            }
            Event::StepFinished {
                run_id,
                step,
                status,
                duration_seconds,
                ..
            } => {
                if let Some(s) = self
                    .run_mut(run_id)
                    .and_then(|run| run.steps.iter_mut().rev().find(|s| s.step == *step))
                {
                    s.finished = Some(*status);
                    s.duration_seconds = Some(*duration_seconds);
                }
            }
            Event::RunCancelled { run_id, kill, .. } => {
                if let Some(run) = self.run_mut(run_id) {
                    run.stop = Some(run.stop.unwrap_or(false) || *kill);
                }
            }
            Event::RunFinished {
                run_id,
                status,
                duration_seconds,
                ..
            } => {
                if let Some(run) = self.run_mut(run_id) {
                    run.finished = Some(*status);
                    run.duration_seconds = Some(*duration_seconds);
                }
            }
            Event::RollbackStarted { run_id, .. } => {
                if let Some(run) = self.run_mut(run_id) {
                    run.rollback = Some(RollbackState {
                        started: r.ts,
                        steps: Vec::new(),
                        finished: None,
                    });
                }
            }
            Event::RollbackStepFinished {
                run_id,
                name,
                status,
                ..
            } => {
                if let Some(rb) = self.run_mut(run_id).and_then(|run| run.rollback.as_mut()) {
                    rb.steps.push((name.clone(), *status));
                }
            }
            Event::RollbackFinished { run_id, status, .. } => {
                if let Some(rb) = self.run_mut(run_id).and_then(|run| run.rollback.as_mut()) {
                    rb.finished = Some(*status);
                }
            }
            Event::BreakerChanged {
                backend,
                state,
                consecutive_failures,
                run_id,
                ..
            } => {
                self.breakers.insert(
                    backend.clone(),
                    BreakerRecord {
                        backend: backend.clone(),
                        state: state.clone(),
                        consecutive_failures: *consecutive_failures,
                        since: r.ts,
                        run_id: run_id.clone(),
                    },
                );
            }
            Event::PolicyAdopted {
                policy_hash,
                source,
                policy,
                allowed_signers,
                adopted_by,
                ..
            } => self.adoptions.push(Adoption {
                seq: r.seq,
                ts: r.ts,
                policy_hash: policy_hash.clone(),
                source: source.clone(),
                policy: policy.clone(),
                allowed_signers: allowed_signers.clone(),
                adopted_by: adopted_by.clone(),
            }),
            Event::PolicyProposed {
                policy_hash,
                base_hash,
                source,
                policy,
                allowed_signers,
                proposed_by,
                identity,
                loosens,
                needs,
            } => self.proposals.push(Proposal {
                seq: r.seq,
                ts: r.ts,
                policy_hash: policy_hash.clone(),
                base_hash: base_hash.clone(),
                source: source.clone(),
                policy: policy.clone(),
                allowed_signers: allowed_signers.clone(),
                proposed_by: proposed_by.clone(),
                identity: identity.clone(),
                loosens: *loosens,
                needs: *needs,
                approvals: Vec::new(),
            }),
            Event::PolicyApproved {
                proposal,
                policy_hash,
                base_hash,
                approver,
                identity,
            } => {
                // An approval that names another policy than its proposal
                // is kept out: it approves nothing.
                if let Some(p) = self.proposals.iter_mut().find(|p| {
                    p.seq == *proposal && &p.policy_hash == policy_hash && &p.base_hash == base_hash
                }) {
                    p.approvals.push(PolicyApproval {
                        seq: r.seq,
                        ts: r.ts,
                        approver: approver.clone(),
                        identity: identity.clone(),
                    });
                }
            }
            Event::CheckFinished { .. }
            | Event::LogRepaired { .. }
            | Event::TruncationAcknowledged { .. }
            | Event::Refused { .. } => {}
        }
    }

    fn vote(&mut self, d: &Decision, at: DateTime<Utc>, granted: bool) {
        let vote = || Vote::of(d, at, granted);
        if let Some(run_id) = &d.rollback_of {
            // A decision on rolling a run back: it counts for that run, of
            // that plan and submission, only.
            if let Some(home) = self.home_mut(run_id)
                && home.plan_id == d.plan_id
                && d.submission_seq
                    .is_none_or(|seq| seq == home.submission.seq)
                && let Some(run) = home.runs.iter_mut().find(|r| &r.run_id == run_id)
            {
                run.rollback_votes.push(vote());
            }
            return;
        }
        if let Some(p) = self.plans.get_mut(&d.plan_id) {
            // A v2 decision counts only for the submission it was made
            // for, never for a later one with the same id and hash.
            if d.submission_seq.is_some_and(|seq| seq != p.submission.seq) {
                return;
            }
            p.votes.push(vote());
        }
    }

    /// The plan state (submission) a run belongs to.
    fn home_mut(&mut self, run_id: &str) -> Option<&mut PlanState> {
        match self.runs.get(run_id)? {
            RunHome::Current(id) => self.plans.get_mut(id),
            RunHome::Retired(i) => self.retired.get_mut(*i),
        }
    }

    fn run_mut(&mut self, run_id: &str) -> Option<&mut RunState> {
        self.home_mut(run_id)?
            .runs
            .iter_mut()
            .find(|r| r.run_id == run_id)
    }
}
