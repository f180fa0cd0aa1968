//! `opsgate submit FILE`: record a classified plan in the audit log.

use std::io::Write;

use serde::Serialize;

use super::args::SubmitArgs;
use super::error::CliError;
use super::plan_cmd;
use super::style::badge;
use chrono::Utc;

use super::approve_cmd::fold;
use crate::audit::ledger::run_is_live;
use crate::audit::{AuditLog, Event};
use crate::core::plan::ClassifiedPlan;
use crate::core::policy::LoadedPolicy;

#[derive(Debug, Serialize)]
struct Submitted {
    plan_id: String,
    plan_hash: String,
    policy_hash: String,
    risk: String,
    /// The seq of the `plan_submitted` record (the earlier one when
    /// nothing new was recorded).
    seq: u64,
    /// False when the same plan was already submitted and still open.
    new: bool,
}

/// The OS user, for `--as` defaults: `$USER`, `$LOGNAME`, else the name
/// `/etc/passwd` gives the process's uid (the owner of `/proc/self`).
pub fn os_user() -> Result<String, CliError> {
    use std::os::unix::fs::MetadataExt;
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
    {
        return Ok(name);
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|_| CliError::Usage("cannot tell who you are: pass --as NAME".into()))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Ok(name.unwrap_or_else(|| format!("uid-{uid}")))
}

/// Loads the plan, then opens the log (so a bad plan creates no log).
/// Records `plan_submitted` for a classified plan, unless the same plan
/// (same plan and policy hashes, and its native targets in the same state)
/// is already open. Returns the submission's
/// seq and whether it is new.
pub fn record(
    log: &AuditLog,
    policy: &LoadedPolicy,
    cp: &ClassifiedPlan,
    (submitter, channel): (&str, crate::audit::Channel),
) -> Result<(u64, bool), CliError> {
    let plan_json = serde_json::to_value(&cp.plan)
        .map_err(|e| CliError::Failed(format!("cannot record the plan: {e}")))?;
    let fingerprints = fingerprints(policy, cp)?;
    let mut earlier = None;
    let attempt =
        super::refusal::Attempt::on_plan("submit", submitter, channel, &cp.plan.id, &policy.hash);
    let appended = super::refusal::append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
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
            return Err(super::error::denied(
                "run_unfinished",
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
            return Ok::<_, CliError>(Vec::new());
        }
        Ok(vec![Event::PlanSubmitted {
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
            mutates_production: cp.mutates_production(),
            redacted: false,
            plan: plan_json,
            fingerprints,
        }])
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
) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    if !crate::native::uses_native(&cp.plan) {
        return Ok(Default::default());
    }
    let backends = crate::native::Backends::new(&policy.policy.backends);
    crate::native::blocking(backends.fingerprints(&cp.plan))
        .and_then(|r| r)
        .map_err(|e| CliError::Failed(format!("plan `{}` cannot be submitted: {e}", cp.plan.id)))
}

/// `--as NAME`, or the OS user.
pub fn who(as_user: Option<&str>) -> Result<String, CliError> {
    match as_user {
        Some(name) if name.trim().is_empty() => Err(CliError::Usage("--as needs a name".into())),
        Some(name) => Ok(name.trim().to_owned()),
        None => os_user(),
    }
}

pub fn run(
    args: &SubmitArgs,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let cp = plan_cmd::load_with(&args.file, policy, &args.params)?;
    let submitter = who(args.as_user.as_deref())?;
    let log = open_log()?;
    let (seq, new) = record(&log, policy, &cp, (&submitter, crate::audit::Channel::Cli))?;
    let out = Submitted {
        plan_id: cp.plan.id.clone(),
        plan_hash: cp.hash.to_string(),
        policy_hash: policy.hash.to_string(),
        risk: cp.risk.to_string(),
        seq,
        new,
    };
    let mut stdout = anstream::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &out)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        writeln!(stdout)?;
    } else if out.new {
        writeln!(
            stdout,
            "submitted {}  {}  {}  (seq {})",
            out.plan_id,
            badge(cp.risk),
            out.plan_hash,
            out.seq
        )?;
    } else {
        writeln!(
            stdout,
            "already submitted {}  {}  {}  (seq {}; nothing new recorded)",
            out.plan_id,
            badge(cp.risk),
            out.plan_hash,
            out.seq
        )?;
    }
    Ok(())
}
