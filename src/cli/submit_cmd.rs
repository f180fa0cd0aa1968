//! `opsgate submit FILE`: record a classified plan in the audit log.

use crate::core::identity::Actor;
use std::io::Write;

use serde::Serialize;

use super::args::SubmitArgs;
use super::error::CliError;
use super::plan_cmd;
use crate::app::present::badge;
use crate::audit::AuditLog;
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

/// Loads the plan, then opens the log (so a bad plan creates no log).
pub fn run(
    args: &SubmitArgs,
    actor: &Actor,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let cp = plan_cmd::load_with(&args.file, policy, &args.params)?;
    let log = open_log()?;
    let (seq, new) =
        crate::app::submit::record(&log, policy, &cp, (actor, crate::audit::Channel::Cli))?;
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
