//! `opsgate run`, `cancel` and `rollback`.
//!
//! `run` checks everything under the audit log's lock, on state folded from
//! the verified log: the plan is submitted, the file (if one is given) is
//! that plan, the approvals count now, a required dry run happened, and no
//! other run holds it. Only then is `run_started` recorded and the engine
//! started. Stop requests, from Ctrl-C or `opsgate cancel`, go through the
//! log too, so every stop is recorded before it takes effect.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::approve_cmd::fold;
use super::args::RunArgs;
use super::error::{CliError, denied, denied_for};
use super::plan_cmd;
use super::refusal::{Attempt, append_or_record};
use super::submit_cmd::who;
use crate::audit::ledger::{RunLock, run_is_live};
use crate::audit::read::Follower;
use crate::audit::{AuditLog, Event, Record, Status};
use crate::core::approval::{ApprovedPlan, Verdict, needs_dry_run};
use crate::core::digest::PlanHash;
use crate::core::event::short;
use crate::core::plan::Plan;
use crate::core::policy::LoadedPolicy;
use crate::core::risk::RiskLevel;
use crate::core::state::{PlanState, PlanStatus};
use crate::exec::Stop;
use crate::exec::engine::{Authority, Engine, Progress, RunReport};
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
fn take_run_lock(log: &Path, run_id: &str) -> Result<RunLock, CliError> {
    RunLock::take(log, run_id).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => denied(
            "running",
            format!("run `{run_id}` is running now (in another process)"),
        ),
        _ => CliError::Read {
            path: log.to_owned(),
            source: e,
        },
    })
}

/// The plan as frozen in the log at submission.
fn frozen_plan(p: &PlanState) -> Result<Plan, CliError> {
    if p.submission.redacted {
        return Err(denied_for(
            "redacted_plan",
            &p.submission.plan_hash,
            format!(
                "the stored plan `{}` had secrets masked, so it is not what was approved: run it from its file (`opsgate run FILE`)",
                p.plan_id
            ),
        ));
    }
    let plan = Plan::from_json(p.submission.plan.clone()).map_err(|e| {
        denied_for(
            "frozen_plan",
            &p.submission.plan_hash,
            format!("the stored plan `{}` cannot be read: {e}", p.plan_id),
        )
    })?;
    if plan.hash() != p.submission.plan_hash {
        return Err(denied_for(
            "frozen_plan",
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
fn step_risks(plan: &Plan, policy: &LoadedPolicy) -> Vec<RiskLevel> {
    crate::core::plan::ClassifiedPlan::from_plan(plan.clone(), &policy.rules)
        .steps
        .iter()
        .map(|s| s.action.risk)
        .collect()
}

/// `rollback.on_error: continue`.
pub(crate) fn keep_going(plan: &Plan) -> bool {
    matches!(
        plan.rollback,
        crate::core::plan::PlanRollback::Steps {
            on_error: crate::core::plan::model::OnError::Continue,
            ..
        }
    )
}

/// What `run` decided under the lock.
pub(crate) struct Start {
    pub plan_id: String,
    pub plan: Plan,
    pub authority: Authority,
    /// Steps an interrupted run completed, when resuming it.
    pub resumed: Vec<usize>,
    /// The native backends' clients and breakers.
    pub backends: std::sync::Arc<Backends>,
    /// Where the run's `run_started` record is in the log: stop requests
    /// are read from there on.
    pub stops_from: u64,
    /// The environment of its `run:` steps.
    pub env: std::collections::BTreeMap<String, String>,
}

pub fn run(
    args: &RunArgs,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = who(args.as_user.as_deref())?;
    // A path that exists is a plan file; anything else is a plan id.
    let file = Path::new(&args.target);
    let from_file = if file.is_file() {
        Some(plan_cmd::load_with(file, policy, &args.params)?)
    } else if !args.params.is_empty() {
        return Err(CliError::Usage(format!(
            "--param applies to a plan file: `{}` is not one, and a submitted plan runs with the values it was submitted with",
            args.target
        )));
    } else {
        None
    };
    let log = open_log()?;
    if args.interactive && !args.resume {
        let go = converse(args, policy, &log, from_file.as_ref(), &user)?;
        if !go {
            return Err(CliError::Failed("not run".into()));
        }
    }
    let Started {
        start,
        run_id,
        lock,
    } = begin(
        &log,
        policy,
        match &from_file {
            Some(plan) => Target::File {
                path: &args.target,
                plan,
            },
            None => Target::Submitted {
                id: &args.target,
                hash: None,
            },
        },
        (&user, crate::audit::Channel::Cli),
        args.dry_run,
        args.resume,
    )?;
    let rollback_now =
        !args.dry_run && (args.rollback_on_failure || policy.policy.execution.auto_rollback);
    let ask = if args.interactive {
        Ask::Prompt
    } else {
        Ask::Never
    };
    let report = drive(
        &log,
        policy,
        &start,
        &run_id,
        &user,
        args.grace,
        rollback_now,
        ask,
    )?;
    drop(lock);
    match report.status {
        Status::Succeeded => Ok(()),
        _ => Err(CliError::Reported(format!(
            "run {run_id} {}",
            report.status.as_str()
        ))),
    }
}

/// A run that passed every check and is recorded as started.
pub(crate) struct Started {
    pub start: Start,
    pub run_id: String,
    /// Held for the whole run.
    pub lock: RunLock,
}

/// What `begin` is asked to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
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
pub(crate) fn begin(
    log: &AuditLog,
    policy: &LoadedPolicy,
    target: Target<'_>,
    (user, channel): (&str, crate::audit::Channel),
    dry_run: bool,
    resume: bool,
) -> Result<Started, CliError> {
    let run_id = new_run_id();
    let backends = Backends::new(&policy.policy.backends);
    let mut start = None;
    let mut lock = None;
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
        let ledger = fold(log, len)?;
        let Some(state) = ledger.plan(id) else {
            return Err(match target {
                Target::File { path, .. } => denied(
                    "not_submitted",
                    format!(
                        "plan `{id}` ({path}) was never submitted: `opsgate submit {path}`, then have it approved"
                    ),
                ),
                Target::Submitted { .. } => CliError::Failed(format!(
                    "no plan `{id}` in the audit log, and no file `{id}`"
                )),
            });
        };
        let plan = match target {
            Target::File { path, plan: cp } if cp.hash != state.submission.plan_hash => {
                return Err(denied_for(
                    "stale_plan_hash",
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
                return Err(denied_for(
                    "stale_plan_hash",
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
            denied_for(
                "files_changed",
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
            let (authority, close, done) = resume_run(state, status, verdict, policy, &risks)?;
            events.push(close);
            resumed = done;
            authority
        } else {
            authorize(state, status, verdict, policy, dry_run, &risks)?
        };
        let drift = if dry_run || resume {
            None
        } else {
            drift_check(policy, id, &plan, &state.submission.fingerprints)?
        };
        lock = Some(take_run_lock(log.path(), &run_id)?);
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
            resumed,
            backends: backends.clone(),
            stops_from: 0,
            env,
        });
        Ok(events)
    })?;
    let mut start = start.ok_or_else(|| CliError::Failed("the run did not start".into()))?;
    // Stop requests count from the run's own `run_started` on.
    start.stops_from = appended.last().map_or(0, |a| a.offset);
    let lock = lock.ok_or_else(|| CliError::Failed("the run did not start".into()))?;
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
) -> Result<Option<String>, CliError> {
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
        eprintln!("drift check off for plan `{id}`: {}", e.reason);
        return Ok(Some(format!("exempt: {}", e.reason)));
    }
    // Clients of their own: a client made on this short-lived runtime
    // (kube's keeps a worker task on it) must not be used by the run's.
    let backends = Backends::new(&policy.policy.backends);
    let live = crate::native::blocking(backends.fingerprints(plan))
        .and_then(|r| r)
        .map_err(|e| {
            denied(
                "drift",
                format!(
                    "plan `{id}` may not run: its targets cannot be read to check for drift: {e}"
                ),
            )
        })?;
    let changed = crate::native::drift(recorded, &live);
    if changed.is_empty() {
        return Ok(Some(format!("checked {} target(s)", live.len())));
    }
    Err(denied(
        "drift",
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
) -> Result<(Authority, Event, Vec<usize>), CliError> {
    let id = &state.plan_id;
    let run = match (status, state.last_run()) {
        (PlanStatus::Interrupted, Some(run)) if run.finished.is_none() => run,
        _ => {
            return Err(denied_for(
                "not_interrupted",
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` has no interrupted run to resume (it is {})",
                    status.as_str()
                ),
            ));
        }
    };
    let authority = authorize(state, PlanStatus::Approved, verdict, policy, false, risks)?;
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
) -> Result<(), CliError> {
    let id = &state.plan_id;
    if let Some(e) = policy
        .policy
        .execution
        .dry_run_exempt
        .iter()
        .find(|e| e.plan.is_match(id))
    {
        eprintln!("no dry run needed for plan `{id}`: {}", e.reason);
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
    Err(denied_for(
        "dry_run_required",
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
) -> Result<Authority, CliError> {
    let id = &state.plan_id;
    match status {
        PlanStatus::Running => {
            return Err(denied_for(
                "running",
                &state.submission.plan_hash,
                format!("plan `{id}` is running now"),
            ));
        }
        PlanStatus::Interrupted => {
            let at = state
                .last_run()
                .and_then(|r| r.unfinished_step().map(|s| format!(" at step {}", s.step)))
                .unwrap_or_default();
            return Err(denied_for(
                "interrupted",
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` was interrupted{at}: resume it (`opsgate run {id} --resume`), roll it back (`opsgate rollback RUN`), or submit it again"
                ),
            ));
        }
        s if !s.is_open() => {
            return Err(denied_for(
                "closed",
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
        return Err(denied_for(
            "policy_changed",
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
            return Err(denied_for(
                "not_approved",
                &state.submission.plan_hash,
                format!(
                    "plan `{id}` may not run: {}",
                    other.missing().unwrap_or_default()
                ),
            ));
        }
    };
    if needs_dry_run(&policy.policy, approved.level()) {
        check_dry_run(state, policy, risks, approved.level())?;
    }
    Ok(Authority::Approved(approved))
}

/// The engine for a started run.
#[expect(
    clippy::too_many_arguments,
    reason = "each argument distinct; three callers"
)]
pub(crate) fn engine<'a>(
    log: &'a AuditLog,
    policy: &'a LoadedPolicy,
    start: &'a Start,
    run_id: &str,
    user: &str,
    grace: u64,
    progress: mpsc::UnboundedSender<Progress>,
    stop: watch::Receiver<Stop>,
) -> Engine<'a> {
    Engine {
        log,
        plan_id: &start.plan_id,
        plan: &start.plan,
        policy_hash: &policy.hash,
        risks: step_risks(&start.plan, policy),
        run_id: run_id.to_owned(),
        user: user.to_owned(),
        grace: Duration::from_secs(grace),
        progress: Some(progress),
        stop,
        resumed: start.resumed.clone(),
        backends: &start.backends,
        stops_from: std::sync::atomic::AtomicU64::new(start.stops_from),
        env: start.env.clone(),
    }
}

/// The environment of a plan's `run:` steps, from the policy, the plan and
/// this process's environment (what passes of it).
fn step_env(policy: &LoadedPolicy, plan: &Plan) -> std::collections::BTreeMap<String, String> {
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

/// Whether to ask before a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Prompt,
    Never,
}

/// Asks a question on the terminal; the answer, trimmed and lower case.
/// End of input answers `no`.
pub(crate) fn ask(question: &str) -> Result<String, CliError> {
    {
        let mut out = anstream::stdout().lock();
        write!(out, "{question} ")?;
        out.flush()?;
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        return Ok("no".into());
    }
    Ok(line.trim().to_lowercase())
}

/// `--interactive` before the run: shows the plan and, unless it is
/// approved already, asks for the user's approval (submitting a plan file
/// first). Returns whether to go on.
fn converse(
    args: &RunArgs,
    policy: &LoadedPolicy,
    log: &AuditLog,
    from_file: Option<&crate::core::plan::ClassifiedPlan>,
    user: &str,
) -> Result<bool, CliError> {
    let cp = match from_file {
        Some(cp) => {
            let (seq, new) =
                super::submit_cmd::record(log, policy, cp, (user, crate::audit::Channel::Cli))?;
            if new {
                println!("submitted {} as seq {seq}", cp.plan.id);
            }
            cp.clone()
        }
        None => {
            let ledger = log
                .ledger()
                .map_err(|e| super::approve_cmd::ledger_error(log.path(), e))?;
            let state = ledger.plan(&args.target).ok_or_else(|| {
                CliError::Failed(format!("no plan `{}` in the audit log", args.target))
            })?;
            crate::core::plan::ClassifiedPlan::from_plan(frozen_plan(state)?, &policy.rules)
        }
    };
    {
        let mut out = anstream::stdout().lock();
        super::plan_view::PlanView::new(&cp, &policy.hash).write_text(&mut out)?;
    }
    let id = cp.plan.id.as_str();
    let state_now = || -> Result<Verdict, CliError> {
        let ledger = log
            .ledger()
            .map_err(|e| super::approve_cmd::ledger_error(log.path(), e))?;
        let state = ledger
            .plan(id)
            .ok_or_else(|| CliError::Failed(format!("no plan `{id}` in the audit log")))?;
        Ok(state.verdict(&policy.policy, &policy.hash, Utc::now()))
    };
    if let Verdict::Approved { plan, .. } = state_now()? {
        println!("approved by {}", plan.approvers().join(", "));
        return Ok(ask("Run? (yes/no)")? == "yes");
    }
    loop {
        match ask("Approve? (yes/no/explain)")?.as_str() {
            "yes" | "y" => break,
            "no" | "n" => return Ok(false),
            "explain" | "e" => explain(&cp)?,
            other => println!("`{other}`: answer yes, no or explain"),
        }
    }
    super::approve_cmd::grant(
        log,
        None,
        policy,
        id,
        user,
        crate::audit::Channel::Cli,
        &super::approve_cmd::Binding {
            hash: Some(cp.hash.as_str()),
            ..Default::default()
        },
        None,
        Default::default(),
    )?;
    match state_now()? {
        Verdict::Approved { plan, .. } => {
            println!("approved by {}", plan.approvers().join(", "));
            Ok(true)
        }
        other => Err(denied(
            "not_approved",
            format!(
                "your approval is recorded, and plan `{id}` may not run yet: {}",
                other.missing().unwrap_or_default()
            ),
        )),
    }
}

/// Why each step has its level.
fn explain(cp: &crate::core::plan::ClassifiedPlan) -> Result<(), CliError> {
    let mut out = anstream::stdout().lock();
    for (i, (step, review)) in cp.plan.steps.iter().zip(&cp.steps).enumerate() {
        writeln!(
            out,
            "Step {} {}: {}",
            i + 1,
            crate::core::event::printable(&step.name),
            super::style::badge(review.action.risk)
        )?;
        if review.action.reasons.is_empty() {
            writeln!(
                out,
                "  - no rule matched: read-only or unknown to be harmful"
            )?;
        }
        for r in &review.action.reasons {
            writeln!(out, "  - {}", crate::core::event::printable(&r.to_string()))?;
        }
    }
    Ok(())
}

/// Runs the engine with a printer, Ctrl-C and the log's stop requests.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
fn drive(
    log: &AuditLog,
    policy: &LoadedPolicy,
    start: &Start,
    run_id: &str,
    user: &str,
    grace: u64,
    rollback_now: bool,
    ask_first: Ask,
) -> Result<RunReport, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let engine = engine(
        log,
        policy,
        start,
        run_id,
        user,
        grace,
        progress_tx,
        stop_rx,
    );
    let dry = start.authority.is_dry_run();
    {
        let mut out = anstream::stdout().lock();
        writeln!(
            out,
            "{}run {run_id}: plan `{}`, {} step(s)",
            if dry { "dry " } else { "" },
            start.plan_id,
            start.plan.steps.len()
        )?;
    }
    let offset = std::fs::metadata(log.path()).map_or(0, |m| m.len());
    rt.block_on(async {
        let spinner = ask_first == Ask::Prompt && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let printer = tokio::spawn(print_progress(progress_rx, spinner));
        let stops = tokio::spawn(watch_stops(
            log.path().to_owned(),
            offset,
            run_id.to_owned(),
            stop_tx,
        ));
        let sigint = ctrl_c_requests(log, &start.plan_id, run_id, user);
        let work = async move {
            let report = engine.run(&start.authority).await?;
            if report.status != Status::Succeeded && !dry {
                // Let the printer catch up before a prompt.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let answer = ask_first == Ask::Prompt
                    && !rollback_now
                    && ask("Rollback? (yes/no)").is_ok_and(|a| a == "yes" || a == "y");
                if rollback_now || answer {
                    let reason = format!("run {} {}", report.run_id, report.status.as_str());
                    let status = engine.rollback(&report, &reason, keep_going(&start.plan)).await?;
                    println!("rollback {}", status.as_str());
                } else {
                    println!(
                        "rollback not run: `opsgate rollback {run_id}` runs it (or set execution.auto_rollback)"
                    );
                }
            }
            Ok::<_, crate::exec::engine::ExecError>(report)
        };
        let result = {
            // `work` owns the engine: when it is dropped at the end of this
            // block, the progress channel closes and the printer finishes.
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r,
                () = sigint => work.await,
            }
        };
        stops.abort();
        let _ = printer.await;
        result
    })
    .map_err(|e| match e {
        crate::exec::engine::ExecError::Audit(a) => CliError::Audit(a),
        crate::exec::engine::ExecError::Refused(m) => CliError::Refused(m),
    })
    .inspect(|report| {
        println!(
            "{} {} in {:.1}s",
            report.run_id,
            report.status.as_str(),
            report.duration.as_secs_f64()
        );
    })
}

/// Ctrl-C records a stop request in the log: the first lets the current
/// step finish, the second kills it. Never completes.
async fn ctrl_c_requests(log: &AuditLog, plan_id: &str, run_id: &str, user: &str) {
    let mut count = 0;
    while tokio::signal::ctrl_c().await.is_ok() {
        count += 1;
        let kill = count >= 2;
        let _ = log.append(Event::RunCancelled {
            plan_id: plan_id.to_owned(),
            run_id: run_id.to_owned(),
            user: user.to_owned(),
            kill,
            reason: Some("Ctrl-C".into()),
        });
        eprintln!(
            "{}",
            if kill {
                "stop: killing the current step"
            } else {
                "stop: finishing the current step, then stopping (Ctrl-C again kills it)"
            }
        );
    }
    std::future::pending::<()>().await;
}

/// Follows the log for this run's stop requests.
pub(crate) async fn watch_stops(
    path: PathBuf,
    offset: u64,
    run_id: String,
    stop: watch::Sender<Stop>,
) {
    let Ok(mut follower) = Follower::new(&path, offset) else {
        return;
    };
    loop {
        if let Ok(lines) = follower.poll() {
            for line in lines {
                let Ok(r) = serde_json::from_slice::<Record>(&line) else {
                    continue;
                };
                if let Event::RunCancelled {
                    run_id: id, kill, ..
                } = &r.event
                    && *id == run_id
                {
                    let level = if *kill { Stop::Kill } else { Stop::AfterStep };
                    stop.send_if_modified(|s| {
                        let raise = level > *s;
                        if raise {
                            *s = level;
                        }
                        raise
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints progress. With `spinner`, a running step shows a spinner and its
/// elapsed time on a line of its own, redrawn in place.
async fn print_progress(mut rx: mpsc::UnboundedReceiver<Progress>, spinner: bool) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut running: Option<std::time::Instant> = None;
    let mut shown = false;
    let mut frame = 0;
    loop {
        let p = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = tick.tick(), if spinner && running.is_some() => {
                if let Some(t) = running {
                    let mut out = anstream::stdout().lock();
                    let _ = write!(out, "\r  {} {:.1}s", super::style::SPINNER[frame % super::style::SPINNER.len()], t.elapsed().as_secs_f64());
                    let _ = out.flush();
                    frame += 1;
                    shown = true;
                }
                continue;
            }
        };
        match &p {
            Progress::StepStarted { .. } => running = Some(std::time::Instant::now()),
            Progress::StepFinished { .. } => running = None,
            _ => {}
        }
        let line = match p {
            Progress::StepStarted {
                index,
                total,
                name,
                command,
                lead,
            } => format!(
                "Step {}/{total}: {}\n  {lead}{}",
                index + 1,
                crate::core::event::printable(&name),
                crate::core::event::printable_lines(&command)
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ),
            Progress::Output { line, .. } => {
                format!("  │ {}", crate::core::event::printable(&line.text))
            }
            Progress::CheckFinished {
                name,
                phase,
                status,
                ..
            } => format!(
                "  {} {}-check {name}",
                status.mark(),
                if phase == crate::audit::CheckPhase::Pre {
                    "pre"
                } else {
                    "post"
                }
            ),
            Progress::StepFinished {
                status, duration, ..
            } => format!(
                "  {} {} ({:.2}s)",
                status.mark(),
                status.as_str(),
                duration.as_secs_f64()
            ),
            Progress::Note(n) => format!("  {}", crate::core::event::printable(&n)),
            Progress::RollbackStep { name, status } => {
                format!(
                    "  {} rollback: {} {}",
                    status.mark(),
                    crate::core::event::printable(&name),
                    status.as_str()
                )
            }
        };
        let mut out = anstream::stdout().lock();
        if shown {
            // Clear the spinner's line first.
            let _ = write!(out, "\r\x1b[K");
            shown = false;
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn cancel(
    run_id: &str,
    as_user: Option<&str>,
    kill: bool,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = who(as_user)?;
    let log = open_log()?;
    let mut killing = kill;
    let attempt = Attempt::on_run("cancel", &user, run_id, &policy.hash);
    append_or_record(&log, &attempt, |len| {
        let ledger = fold(&log, len)?;
        let (plan, run) = ledger
            .run(run_id)
            .ok_or_else(|| CliError::Failed(format!("no run `{run_id}` in the audit log")))?;
        if run.finished.is_some() {
            return Err(denied(
                "finished",
                format!("run `{run_id}` already finished"),
            ));
        }
        if !run_is_live(log.path(), run_id) {
            return Err(denied(
                "not_running",
                format!(
                    "run `{run_id}` is not running (interrupted): roll it back with `opsgate rollback {run_id}`"
                ),
            ));
        }
        killing |= run.stop.is_some();
        Ok(vec![Event::RunCancelled {
            plan_id: plan.plan_id.clone(),
            run_id: run_id.to_owned(),
            user: user.clone(),
            kill: killing,
            reason: None,
        }])
    })?;
    writeln!(
        anstream::stdout().lock(),
        "{}",
        if killing {
            format!("asked run {run_id} to kill its current step and stop")
        } else {
            format!("asked run {run_id} to stop after its current step (cancel again to kill it)")
        }
    )?;
    Ok(())
}

pub fn rollback(
    run_id: &str,
    as_user: Option<&str>,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = who(as_user)?;
    let log = open_log()?;
    // Decided under the log's lock, with the run's lock taken there: two
    // operators cannot both roll the run back, and nothing runs unless
    // the run's approvals still count or the rollback has its own.
    let mut decided = None;
    let attempt = Attempt::on_run("rollback", &user, run_id, &policy.hash);
    append_or_record(&log, &attempt, |len| {
        let ledger = fold(&log, len)?;
        let (state, run) = super::approve_cmd::rollback_candidate(&ledger, &log, run_id)?;
        let lock = take_run_lock(log.path(), run_id)?;
        let now = Utc::now();
        let plan_ok = matches!(
            state.verdict(&policy.policy, &policy.hash, now),
            Verdict::Approved { .. }
        );
        if !plan_ok
            && let other @ (Verdict::Pending { .. }
            | Verdict::Refused { .. }
            | Verdict::Rejected { .. }) =
                state.rollback_verdict(run, &policy.policy, &policy.hash, now)
        {
            let why = state
                .verdict(&policy.policy, &policy.hash, now)
                .missing()
                .unwrap_or_default();
            return Err(denied_for(
                "not_approved",
                &state.submission.plan_hash,
                format!(
                    "run `{run_id}` may not be rolled back: its approvals no longer count ({why}), and the rollback has none of its own ({}): `opsgate approve {run_id} --rollback`",
                    other.missing().unwrap_or_default()
                ),
            ));
        }
        let plan = frozen_plan(state)?;
        crate::exec::files::check(&plan.files).map_err(|e| {
            denied_for(
                "files_changed",
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
            &user,
            &reason,
            &crate::exec::engine::rollback_work(&plan, &completed),
        );
        decided = Some((state.plan_id.clone(), plan, completed, lock));
        Ok(vec![event])
    })?;
    let (plan_id, plan, completed, _lock) =
        decided.ok_or_else(|| CliError::Failed("the rollback did not start".into()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    let (_stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let backends = Backends::new(&policy.policy.backends);
    let engine = Engine {
        log: &log,
        plan_id: &plan_id,
        plan: &plan,
        policy_hash: &policy.hash,
        risks: step_risks(&plan, policy),
        run_id: run_id.to_owned(),
        user,
        grace: Duration::from_secs(5),
        progress: Some(progress_tx),
        stop: stop_rx,
        resumed: Vec::new(),
        backends: &backends,
        stops_from: std::sync::atomic::AtomicU64::new(0),
        env: step_env(policy, &plan),
    };
    let status = rt
        .block_on(async {
            let printer = tokio::spawn(print_progress(progress_rx, false));
            let work = crate::exec::engine::rollback_work(&plan, &completed);
            let r = engine.run_rollback(&work, keep_going(&plan)).await;
            drop(engine);
            let _ = printer.await;
            r
        })
        .map_err(|e| match e {
            crate::exec::engine::ExecError::Audit(a) => CliError::Audit(a),
            crate::exec::engine::ExecError::Refused(m) => CliError::Refused(m),
        })?;
    writeln!(
        anstream::stdout().lock(),
        "rollback of {run_id} {}",
        status.as_str()
    )?;
    if status == Status::Succeeded {
        Ok(())
    } else {
        Err(CliError::Reported(format!("rollback {}", status.as_str())))
    }
}
