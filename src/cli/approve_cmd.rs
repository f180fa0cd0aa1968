//! `opsgate approve` and `opsgate reject`: decisions on the CLI channel.
//! The checks are the application layer's (`app::decide`); this module
//! asks on the terminal and prints the outcome.

use crate::core::identity::Actor;
use std::io::Write;

use chrono::Utc;
use serde::Serialize;

use super::args::{ApproveArgs, RejectArgs};
use super::error::CliError;
use crate::app::decide::{Binding, Request, counts};
use crate::app::present::badge;
use crate::audit::ledger::run_is_live;
use crate::audit::{AuditLog, Channel};
use crate::core::policy::LoadedPolicy;

/// The approval state printed after a decision.
#[derive(Debug, Serialize)]
struct DecisionOut {
    plan_id: String,
    plan_hash: String,
    decision: &'static str,
    by: String,
    seq: u64,
    status: &'static str,
    needed: u32,
    approvers: Vec<String>,
    missing: Option<String>,
}

pub fn approve(
    args: &ApproveArgs,
    actor: &Actor,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let who = actor.name.as_str();
    let log = open_log()?;
    if args.rollback {
        return approve_rollback(
            &log,
            policy,
            &args.id,
            actor,
            args.reason.clone(),
            args.json,
        );
    }
    // An approval names what it approves: the hash given, or the one shown
    // on the terminal and confirmed; never whatever was submitted last.
    let confirmed;
    let binding = match args.hash.as_deref() {
        Some(hash) => Binding {
            hash: Some(hash),
            ..Binding::default()
        },
        None => {
            confirmed = confirm_on_terminal(&log, policy, &args.id)?;
            Binding {
                hash: Some(confirmed.0.as_str()),
                submission_seq: Some(confirmed.1),
                ..Binding::default()
            }
        }
    };
    let req = Request {
        binding,
        reason: args.reason.clone(),
        ..Request::new(&args.id, actor, Channel::Cli)
    };
    let appended = crate::app::decide::grant(&log, None, policy, &req)?;
    report(
        &log, policy, &args.id, "approved", who, &appended, args.json,
    )
}

/// `approve ID` without `--hash`: on a terminal, shows the plan as it is
/// submitted now (title, level, steps, hash) and asks; the approval is then
/// bound to exactly that submission. Without a terminal, `--hash` is
/// required. Returns the confirmed hash and submission seq.
fn confirm_on_terminal(
    log: &AuditLog,
    policy: &LoadedPolicy,
    id: &str,
) -> Result<(String, u64), CliError> {
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(CliError::Usage(format!(
            "approve needs --hash without a terminal: the plan hash you reviewed (`opsgate plan hash FILE`, or `opsgate status {id}`), so that only that plan is approved"
        )));
    }
    let ledger = crate::app::ledger::current(log)?;
    let plan = crate::app::decide::open_plan(&ledger, id, policy, log)?;
    let title = plan
        .submission
        .plan
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    let steps = plan
        .submission
        .plan
        .get("steps")
        .and_then(|s| s.as_array())
        .map_or(0, Vec::len);
    {
        let mut out = anstream::stdout().lock();
        writeln!(
            out,
            "plan {id}: {}\n  {} · {steps} step(s) · author {} · submitted by {} (seq {})\n  hash {}",
            crate::core::event::printable(title),
            badge(plan.submission.risk),
            crate::core::event::printable(&plan.submission.author),
            crate::core::event::printable(&plan.submission.submitted_by),
            plan.submission.seq,
            plan.submission.plan_hash
        )?;
    }
    match super::run_cmd::ask("Approve exactly this plan? (yes/no)")?.as_str() {
        "yes" | "y" => Ok((plan.submission.plan_hash.to_string(), plan.submission.seq)),
        _ => Err(CliError::Failed("not approved".into())),
    }
}

/// `approve RUN --rollback`: records the approval of rolling back a run.
fn approve_rollback(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    actor: &Actor,
    reason: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let who = actor.name.as_str();
    let done = crate::app::decide::grant_rollback(log, policy, run_id, actor, reason)?;
    let seq = done.appended.last().map(|a| a.seq).unwrap_or_default();
    let (needed, have) = (done.needed, done.approvers);
    let mut out = anstream::stdout().lock();
    if json {
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"run_id": run_id, "decision": "rollback_approved", "by": who, "seq": seq, "needed": needed, "approvers": have}),
        )
        .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "approved rolling back run {run_id} as {who} (seq {seq}): {}/{needed} approval(s) ({})",
            have.len(),
            have.join(", ")
        )?;
    }
    Ok(())
}

pub fn reject(
    args: &RejectArgs,
    actor: &Actor,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let who = actor.name.as_str();
    if args.reason.trim().is_empty() {
        return Err(CliError::Usage("--reason must say why".into()));
    }
    let log = open_log()?;
    let req = Request {
        reason: Some(args.reason.clone()),
        ..Request::new(&args.id, actor, Channel::Cli)
    };
    let appended = crate::app::decide::deny(&log, None, policy, &req)?;
    report(
        &log, policy, &args.id, "rejected", who, &appended, args.json,
    )
}

fn report(
    log: &AuditLog,
    policy: &LoadedPolicy,
    id: &str,
    decision: &'static str,
    who: &str,
    appended: &[crate::audit::Appended],
    json: bool,
) -> Result<(), CliError> {
    let ledger = crate::app::ledger::current(log)?;
    let plan = ledger
        .plan(id)
        .ok_or_else(|| CliError::Failed(format!("plan `{id}` vanished from the log")))?;
    let verdict = plan.verdict(&policy.policy, &policy.hash, Utc::now());
    let status = plan.status(&verdict, |run| run_is_live(log.path(), run));
    let (needed, approvers) = counts(plan, policy, &verdict);
    let out = DecisionOut {
        plan_id: id.to_owned(),
        plan_hash: plan.submission.plan_hash.to_string(),
        decision,
        by: who.to_owned(),
        seq: appended.last().map(|a| a.seq).unwrap_or_default(),
        status: status.as_str(),
        needed,
        approvers,
        missing: verdict.missing(),
    };
    let mut stdout = anstream::stdout().lock();
    if json {
        serde_json::to_writer(&mut stdout, &out)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        writeln!(stdout)?;
        return Ok(());
    }
    writeln!(
        stdout,
        "{decision} {id} as {who} (seq {}): {} · {}/{} approval(s){}",
        out.seq,
        out.status,
        out.approvers.len(),
        out.needed,
        if out.approvers.is_empty() {
            String::new()
        } else {
            format!(" ({})", out.approvers.join(", "))
        }
    )?;
    if let Some(m) = &out.missing {
        writeln!(stdout, "  {m}")?;
    }
    Ok(())
}
