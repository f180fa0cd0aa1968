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
    let cp = plan_cmd::load(&args.file, policy)?;
    let submitter = who(args.as_user.as_deref())?;
    let plan_id = cp.plan.id.clone();
    let plan_hash = cp.hash.to_string();
    let policy_hash = policy.hash.to_string();
    let plan_json = serde_json::to_value(&cp.plan)
        .map_err(|e| CliError::Failed(format!("cannot record the plan: {e}")))?;
    let log = open_log()?;
    let mut earlier = None;
    let appended = log.append_with(|len| {
        let ledger = fold(&log, len)?;
        earlier = ledger
            .plan(&plan_id)
            .filter(|p| {
                p.submission.plan_hash.as_str() == plan_hash
                    && p.submission.policy_hash.as_str() == policy_hash
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
            plan_id: plan_id.clone(),
            plan_hash: cp.hash.clone(),
            policy_hash: policy.hash.clone(),
            risk: cp.risk,
            author: cp.plan.author.clone().unwrap_or_else(|| submitter.clone()),
            submitted_by: submitter.clone(),
            mutates_production: cp.mutates_production(),
            redacted: false,
            plan: plan_json,
        }])
    })?;
    let out = Submitted {
        plan_id,
        plan_hash,
        policy_hash,
        risk: cp.risk.to_string(),
        // With nothing new, `appended` can still hold a `log_repaired`.
        seq: earlier
            .or_else(|| appended.last().map(|a| a.seq))
            .unwrap_or_default(),
        new: earlier.is_none(),
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
