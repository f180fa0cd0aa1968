//! Starting a run: every check under the audit log's lock, on state folded
//! from the verified log (the plan is submitted, the file given is that
//! plan, the approvals count now, a required dry run happened, its targets
//! did not drift, no other run holds it), then `run_started` is recorded
//! and the run's lock taken. Only then may the engine start.

use std::path::Path;

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::error::{Error, Reason, Result, refuse, refuse_for};
use super::ledger::with_ledger;
use super::refusal::{Attempt, append_or_record};
use crate::audit::ledger::{RunLock, run_is_live};
use crate::audit::{AuditLog, Event, Status};
use crate::core::approval::{ApprovedPlan, Verdict, needs_dry_run};
use crate::core::digest::PlanHash;
use crate::core::event::short;
use crate::core::plan::Plan;
use crate::core::policy::LoadedPolicy;
use crate::core::risk::RiskLevel;
use crate::core::state::{PlanState, PlanStatus};
use crate::exec::engine::Authority;
use crate::native::Backends;

/// A run id: `r-20260126-130000-ab12`.
fn new_run_id() -> String {
    let now = Utc::now();
    let mut h = Sha256::new();
    h.update(now.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!(
        "r-{}-{}",
        now.format("%Y%m%d-%H%M%S"),
        &hex::encode(h.finalize())[..4]
    )
}

/// Takes the liveness lock of `run_id` on the log (held for the whole run:
/// others see the run as live while it is held).
pub fn take_run_lock(log: &Path, plan_id: &str, run_id: &str) -> Result<RunLock> {
    RunLock::take(log, plan_id, run_id).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => refuse(
            Reason::Running,
            format!("run `{run_id}` of plan `{plan_id}` cannot start: {e}"),
        ),
        _ => Error::Failed(format!(
            "run `{run_id}` of plan `{plan_id}`: cannot take its lock on {}: {e}",
            log.display()
        )),
    })
}

/// The plan as frozen in the log at submission.
pub fn frozen_plan(p: &PlanState) -> Result<Plan> {
    if p.submission.redacted {
        return Err(refuse_for(
            Reason::RedactedPlan,
            &p.submission.plan_hash,
            format!(
                "the stored plan `{}` had secrets masked, so it is not what was approved: run it from its file (`opsgate run FILE`)",
                p.plan_id
            ),
        ));
    }
    let plan = Plan::from_json(p.submission.plan.clone()).map_err(|e| {
        refuse_for(
            Reason::FrozenPlan,
            &p.submission.plan_hash,
            format!("the stored plan `{}` cannot be read: {e}", p.plan_id),
        )
    })?;
    if plan.hash() != p.submission.plan_hash {
        return Err(refuse_for(
            Reason::FrozenPlan,
            &p.submission.plan_hash,
            format!(
                "the stored plan `{}` does not match its recorded hash {}",
                p.plan_id, p.submission.plan_hash
            ),
        ));
    }
    Ok(plan)
}

/// Each step's rating under the policy, in the plan's own scope.
pub fn step_risks(plan: &Plan, policy: &LoadedPolicy) -> Vec<RiskLevel> {
    crate::core::plan::ClassifiedPlan::from_plan(plan.clone(), &policy.rules)
        .steps
        .iter()
        .map(|s| s.action.risk)
        .collect()
}

/// `rollback.on_error: continue`.
pub fn keep_going(plan: &Plan) -> bool {
    matches!(
        plan.rollback,
        crate::core::plan::PlanRollback::Steps {
            on_error: crate::core::plan::model::OnError::Continue,
            ..
        }
    )
}

/// What `run` decided under the lock.
#[derive(Debug)]
pub struct Start {
    pub plan_id: String,
    pub plan: Plan,
    pub authority: Authority,
    /// Who runs it.
    pub user: String,
    /// Steps an interrupted run completed, when resuming it.
    pub resumed: Vec<usize>,
    /// The native backends' clients and breakers.
    pub backends: std::sync::Arc<Backends>,
    /// Where the run's `run_started` record is in the log: stop requests
    /// are read from there on.
    pub stops_from: u64,
    /// The environment of its `run:` steps.
    pub env: std::collections::BTreeMap<String, String>,
    /// What the checks want said (a drift check or dry run exempted).
    pub notes: Vec<String>,
}

/// A run that passed every check and is recorded as started.
#[derive(Debug)]
pub struct Started {
    pub start: Start,
    pub run_id: String,
    /// Held for the whole run.
    pub lock: RunLock,
}

/// What `begin` is asked to run.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A submitted plan, by id; with `hash`, only if its submission still
    /// has that hash (what a confirmation dialog showed).
    Submitted {
        id: &'a str,
        hash: Option<&'a PlanHash>,
    },
    /// A plan file, loaded and rated: the submitted plan with its hash.
    File {
        path: &'a str,
        plan: &'a crate::core::plan::ClassifiedPlan,
    },
}

/// Checks, under the log's lock, that the `target` plan may run now, and
/// records `run_started`.
#[expect(
    clippy::too_many_arguments,
    reason = "each is a part of the attempt; `App::begin` fills the first four"
)]
pub fn begin(
    log: &AuditLog,
    cache: Option<&crate::audit::ledger::LedgerCache>,
    policy: &LoadedPolicy,
    backends: &std::sync::Arc<Backends>,
    target: Target<'_>,
    (user, channel): (&str, crate::audit::Channel),
    dry_run: bool,
    resume: bool,
) -> Result<Started> {
    let run_id = new_run_id();
    let mut start = None;
    let mut lock = None;
    let mut notes = Vec::new();
    let id = match target {
        Target::Submitted { id, .. } => id,
        Target::File { plan, .. } => plan.plan.id.as_str(),
    };
    let what = match (resume, dry_run) {
        (true, _) => "resume",
        (false, true) => "dry_run",
        (false, false) => "run",
    };
    let attempt = Attempt::on_plan(what, user, channel, id, &policy.hash);
    let appended = append_or_record(log, &attempt, |len| {
        with_ledger(log, cache, len, |ledger| {
            let adopt = super::adoption::pin(ledger, policy)?;
            let Some(state) = ledger.plan(id) else {
                return Err(match target {
                    Target::File { path, .. } => refuse(
                        Reason::NotSubmitted,
                        format!(
                            "plan `{id}` ({path}) was never submitted: `opsgate submit {path}`, then have it approved"
                        ),
                    ),
                    Target::Submitted { .. } => Error::NotFound(format!(
                        "no plan `{id}` in the audit log, and no file `{id}`"
                    )),
                });
            };
            let plan = match target {
                Target::File { path, plan: cp } if cp.hash != state.submission.plan_hash => {
                    return Err(refuse_for(
                        Reason::StalePlanHash,
                        &state.submission.plan_hash,
                        format!(
                            "{path} is plan {}, but the submitted plan `{id}` is {}: the file changed since it was submitted, so it is a new, unapproved plan. Submit it (`opsgate submit {path}`) and have it approved, or run the submitted one with `opsgate run {id}`",
                            short(cp.hash.as_str()),
                            short(state.submission.plan_hash.as_str()),
                        ),
                    ));
                }
                Target::File { plan: cp, .. } => cp.plan.clone(),
                Target::Submitted {
                    hash: Some(shown), ..
                } if shown != &state.submission.plan_hash => {
                    return Err(refuse_for(
                        Reason::StalePlanHash,
                        &state.submission.plan_hash,
                        format!(
                            "plan `{id}` was {} when shown and is now {}: it was submitted again; review it again",
                            short(shown.as_str()),
                            short(state.submission.plan_hash.as_str()),
                        ),
                    ));
                }
                Target::Submitted { .. } => frozen_plan(state)?,
            };
            // The scripts and files the steps run or read are as approved.
            crate::exec::files::check(&plan.files).map_err(|e| {
                refuse_for(
                    Reason::FilesChanged,
                    &state.submission.plan_hash,
                    format!("plan `{id}` may not run: {e}"),
                )
            })?;
            let verdict = state.verdict(&policy.policy, &policy.hash, Utc::now());
            let status = state.status(&verdict, |r| run_is_live(log.path(), r));
            let mut events = Vec::new();
            let mut resumed = Vec::new();
            let risks = step_risks(&plan, policy);
            let authority = if resume {
                let (authority, close, done) =
                    resume_run(state, status, verdict, policy, &risks, &mut notes)?;
                events.push(close);
                resumed = done;
                authority
            } else {
                authorize(state, status, verdict, policy, dry_run, &risks, &mut notes)?
            };
            let drift = if dry_run || resume {
                None
            } else {
                drift_check(
                    policy,
                    id,
                    &plan,
                    &state.submission.fingerprints,
                    &mut notes,
                )?
            };
            lock = Some(take_run_lock(log.path(), id, &run_id)?);
            let env = step_env(policy, &plan);
            events.push(Event::RunStarted {
                plan_id: id.to_owned(),
                run_id: run_id.clone(),
                plan_hash: state.submission.plan_hash.clone(),
                policy_hash: policy.hash.clone(),
                dry_run,
                user: user.to_owned(),
                drift,
                env: recorded_env(&env, &plan),
            });
            start = Some(Start {
                plan_id: id.to_owned(),
                plan,
                authority,
                user: user.to_owned(),
                resumed,
                backends: std::sync::Arc::clone(backends),
                stops_from: 0,
                env,
                notes: std::mem::take(&mut notes),
            });
            Ok(super::adoption::after(adopt, events))
        })
    })?;
    let mut start = start.ok_or_else(|| Error::Failed("the run did not start".into()))?;
    // Stop requests count from the run's own `run_started` on.
    start.stops_from = appended.last().map_or(0, |a| a.offset);
    let lock = lock.ok_or_else(|| Error::Failed("the run did not start".into()))?;
    Ok(Started {
        start,
        run_id,
        lock,
    })
}

/// Drift detection: the plan's native targets must be as they were when it
/// was submitted (and approved), or the run is refused. A resumed run is
/// not checked (its own completed steps changed them), nor a dry run.
/// Returns what `run_started` records of it: nothing for a plan with no
/// native step.
fn drift_check(
    policy: &LoadedPolicy,
    id: &str,
    plan: &Plan,
    recorded: &std::collections::BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Result<Option<String>> {
    if !crate::native::uses_native(plan) {
        return Ok(None);
    }
    if let Some(e) = policy
        .policy
        .backends
        .drift_exempt
        .iter()
        .find(|e| e.plan.is_match(id))
    {
        notes.push(format!("drift check off for plan `{id}`: {}", e.reason));
        return Ok(Some(format!("exempt: {}", e.reason)));
    }
    // Clients of their own: a client made on this short-lived runtime
    // (kube's keeps a worker task on it) must not be used by the run's.
    let backends = Backends::new(&policy.policy.backends);
    let live = crate::native::blocking(backends.fingerprints(plan))
        .and_then(|r| r)
        .map_err(|e| {
            refuse(
                Reason::Drift,
                format!(
                    "plan `{id}` may not run: its targets cannot be read to check for drift: {e}"
                ),
            )
        })?;
    let changed = crate::native::drift(recorded, &live);
    if changed.is_empty() {
        return Ok(Some(format!("checked {} target(s)", live.len())));
    }
    Err(refuse(
        Reason::Drift,
        format!(
            "plan `{id}` may not run: its targets changed since it was submitted and approved:\n  {}\nsubmit it again and have it approved",
            changed.join("\n  ")
        ),
    ))
}

/// Resuming an interrupted run: its approvals must still count. Returns
/// the authority, the record closing the interrupted run, and the steps it
/// completed.
fn resume_run(
    state: &PlanState,
    status: PlanStatus,
    verdict: Verdict,
    policy: &LoadedPolicy,
    risks: &[RiskLevel],
    notes: &mut Vec<String>,
) -> Result<(Authority, Event, Vec<usize>)> {
    let id = &state.plan_id;
    let run = match (status, state.last_run()) {
        (PlanStatus::Interrupted, Some(run)) if run.finished.is_none() => run,
        _ => {
            return Err(refuse_for(
                Reason::NotInterrupted,
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` has no interrupted run to resume (it is {})",
                    status.as_str()
                ),
            ));
        }
    };
    let authority = authorize(
        state,
        PlanStatus::Approved,
        verdict,
        policy,
        false,
        risks,
        notes,
    )?;
    let done = run.completed_prefix();
    let close = Event::RunFinished {
        plan_id: id.clone(),
        run_id: run.run_id.clone(),
        dry_run: false,
        status: Status::Interrupted,
        duration_seconds: (Utc::now() - run.started).num_milliseconds() as f64 / 1000.0,
    };
    Ok((authority, close, done))
}

/// `execution.require_dry_run`: a successful dry run of this plan hash must
/// have exercised every HIGH or CRITICAL step in a real dry-run form (a
/// step only shown, with no dry-run form, does not count), unless the
/// policy exempts the plan with a reason.
fn check_dry_run(
    state: &PlanState,
    policy: &LoadedPolicy,
    risks: &[RiskLevel],
    level: RiskLevel,
    notes: &mut Vec<String>,
) -> Result<()> {
    let id = &state.plan_id;
    if let Some(e) = policy
        .policy
        .execution
        .dry_run_exempt
        .iter()
        .find(|e| e.plan.is_match(id))
    {
        notes.push(format!("no dry run needed for plan `{id}`: {}", e.reason));
        return Ok(());
    }
    let high: Vec<u32> = risks
        .iter()
        .zip(1u32..)
        .filter(|(r, _)| **r >= RiskLevel::High)
        .map(|(_, n)| n)
        .collect();
    if state.dry_run_exercised(&high) {
        return Ok(());
    }
    let names: Vec<String> = high
        .iter()
        .map(|n| {
            let name = state
                .submission
                .plan
                .pointer(&format!("/steps/{}/name", n - 1))
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            format!("step {n} `{name}`")
        })
        .collect();
    Err(refuse_for(
        Reason::DryRunRequired,
        &state.submission.plan_hash,
        format!(
            "plan `{id}` is {level} and execution.require_dry_run is on: no successful dry run exercised {} in a dry-run form. Run `opsgate run {id} --dry-run` once it is approved; a step with no dry-run form needs the plan in execution.dry_run_exempt, with a reason",
            if names.is_empty() {
                "the plan".to_owned()
            } else {
                names.join(", ")
            }
        ),
    ))
}

/// Whether the plan may run now, and under what authority. `risks`: each
/// step's rating.
fn authorize(
    state: &PlanState,
    status: PlanStatus,
    verdict: Verdict,
    policy: &LoadedPolicy,
    dry_run: bool,
    risks: &[RiskLevel],
    notes: &mut Vec<String>,
) -> Result<Authority> {
    let id = &state.plan_id;
    match status {
        PlanStatus::Running => {
            return Err(refuse_for(
                Reason::Running,
                &state.submission.plan_hash,
                format!("plan `{id}` is running now"),
            ));
        }
        PlanStatus::Interrupted => {
            let at = state
                .last_run()
                .and_then(|r| r.unfinished_step().map(|s| format!(" at step {}", s.step)))
                .unwrap_or_default();
            return Err(refuse_for(
                Reason::Interrupted,
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` was interrupted{at}: resume it (`opsgate run {id} --resume`), roll it back (`opsgate rollback RUN`), or submit it again"
                ),
            ));
        }
        s if !s.is_open() => {
            return Err(refuse_for(
                Reason::Closed,
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` is {}: submit it again to run it again",
                    s.as_str()
                ),
            ));
        }
        _ => {}
    }
    if state.submission.policy_hash != policy.hash {
        return Err(refuse_for(
            Reason::PolicyChanged,
            &state.submission.plan_hash,
            format!(
                "plan `{id}` was submitted under policy {}, and the policy is now {}: submit it again",
                short(state.submission.policy_hash.as_str()),
                short(policy.hash.as_str())
            ),
        ));
    }
    if dry_run {
        // An approved plan is rehearsed: its checks run, and its mutations
        // in their dry-run forms. Any other plan (pending, expired, refused
        // by the policy) gets a preview that runs nothing through a shell.
        return Ok(match verdict {
            Verdict::Approved { plan, .. } => Authority::Rehearsal(plan),
            _ => Authority::DryRun,
        });
    }
    let approved: ApprovedPlan = match verdict {
        Verdict::Approved { plan, .. } => plan,
        other => {
            return Err(refuse_for(
                Reason::NotApproved,
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` may not run: {}",
                    other.missing().unwrap_or_default()
                ),
            ));
        }
    };
    if needs_dry_run(&policy.policy, approved.level()) {
        check_dry_run(state, policy, risks, approved.level(), notes)?;
    }
    Ok(Authority::Approved(approved))
}

/// The environment of a plan's `run:` steps, from the policy, the plan and
/// this process's environment (what passes of it).
pub fn step_env(policy: &LoadedPolicy, plan: &Plan) -> std::collections::BTreeMap<String, String> {
    crate::core::environment::step_environment(
        &policy.policy.execution.environment,
        &plan.env,
        std::env::vars(),
    )
}

/// What `run_started` records of the environment: the variables that
/// choose targets in the steps' environment, and (for a plan with native
/// steps) in this process's own, which the native backends read, as
/// `native:NAME`.
fn recorded_env(
    steps: &std::collections::BTreeMap<String, String>,
    plan: &Plan,
) -> std::collections::BTreeMap<String, String> {
    let mut env = crate::core::environment::targets(steps);
    if crate::native::uses_native(plan) {
        let own: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        env.extend(
            crate::core::environment::targets(&own)
                .into_iter()
                .filter(|(k, _)| k != "PATH")
                .map(|(k, v)| (format!("native:{k}"), v)),
        );
    }
    env
}
