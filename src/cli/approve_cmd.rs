//! `opsgate approve` and `opsgate reject`: decisions on the CLI channel.
//!
//! Every check runs under the audit log's lock, on state folded from the
//! verified log, so two approvers racing cannot both count as the second.

use std::io::Write;

use chrono::Utc;
use serde::Serialize;

use super::args::{ApproveArgs, RejectArgs};
use super::error::{CliError, denied_for};
use super::refusal::{Attempt, append_or_record};
use super::submit_cmd::who;
use crate::audit::ledger::{LedgerCache, LedgerError, run_is_live};
use crate::audit::{AuditLog, Channel, Decision, Event};
use crate::core::approval::{Verdict, requirement, same_person};
use crate::core::event::short;
use crate::core::policy::LoadedPolicy;
use crate::core::state::{Ledger, PlanState};

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
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let who = who(args.as_user.as_deref())?;
    let log = open_log()?;
    if args.rollback {
        return grant_rollback(&log, policy, &args.id, &who, args.reason.clone(), args.json);
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
    let appended = grant(
        &log,
        None,
        policy,
        &args.id,
        &who,
        Channel::Cli,
        &binding,
        args.reason.clone(),
        Metadata::new(),
    )?;
    report(
        &log, policy, &args.id, "approved", &who, &appended, args.json,
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
    let ledger = log.ledger().map_err(|e| ledger_error(log.path(), e))?;
    let plan = open_plan(&ledger, id, policy, log)?;
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
            super::style::badge(plan.submission.risk),
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

/// Free-form context a decision carries (a chat channel id…).
pub type Metadata = std::collections::BTreeMap<String, serde_json::Value>;

/// What a decision is bound to besides the plan id: checked under the
/// log's lock against the plan's current submission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binding<'a> {
    /// The plan hash the decider reviewed (full, or 12+ hex digits).
    pub hash: Option<&'a str>,
    /// The submission the decider saw: its `plan_submitted` seq.
    pub submission_seq: Option<u64>,
    /// The hash must be given whole (the bridge's API), not as a prefix.
    pub whole_hash: bool,
    /// When the decider's request was signed (Unix seconds), and how far
    /// the signer's clock may lag: a request signed before the current
    /// submission existed (by more than the lag) was made for an earlier
    /// one (a replay), and does not count for this one.
    pub signed_at: Option<(i64, i64)>,
}

/// Why a decision is not for the plan's current submission, if it is not.
pub fn check_binding(plan: &PlanState, binding: &Binding<'_>) -> Result<(), CliError> {
    match binding.hash {
        Some(h) if binding.whole_hash && h != plan.submission.plan_hash.as_str() => {
            return Err(denied_for(
                "stale_plan_hash",
                &plan.submission.plan_hash,
                format!(
                    "plan `{}` is now {}",
                    plan.plan_id, plan.submission.plan_hash
                ),
            ));
        }
        Some(h) => check_hash(h, plan)?,
        None => {}
    }
    let id = &plan.plan_id;
    if let Some(seq) = binding.submission_seq
        && seq != plan.submission.seq
    {
        return Err(denied_for(
            "stale_submission",
            &plan.submission.plan_hash,
            format!(
                "the decision is for submission {seq} of plan `{id}`, and the plan is now submission {}: review it again",
                plan.submission.seq
            ),
        ));
    }
    if let Some((at, lag)) = binding.signed_at
        && at.saturating_add(lag) < plan.submission.ts.timestamp()
    {
        return Err(denied_for(
            "stale_submission",
            &plan.submission.plan_hash,
            format!(
                "the decision was signed at {at}, before plan `{id}` was submitted as it is now ({}): it was made for an earlier submission",
                plan.submission.ts.timestamp()
            ),
        ));
    }
    Ok(())
}

/// Records `who`'s approval of plan `id` from `channel`, after every
/// check, under the log's lock, bound to what they reviewed (`binding`).
#[expect(clippy::too_many_arguments, reason = "each is a field of the decision")]
pub fn grant(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    policy: &LoadedPolicy,
    id: &str,
    who: &str,
    channel: Channel,
    binding: &Binding<'_>,
    reason: Option<String>,
    metadata: Metadata,
) -> Result<Vec<crate::audit::Appended>, CliError> {
    let attempt =
        Attempt::on_plan("approve", who, channel, id, &policy.hash).with_metadata(&metadata);
    append_or_record(log, &attempt, |len| {
        with_ledger(log, cache, len, |ledger| {
            let plan = open_plan(ledger, id, policy, log)?;
            check_binding(plan, binding)?;
            let hash = &plan.submission.plan_hash;
            let subject = plan.subject();
            let level = requirement(&policy.policy, &subject)
                .map_err(|r| denied_for("refused_by_policy", hash, r.0))?
                .level;
            crate::core::approval::may_approve(&policy.policy, &subject, level, who, channel)
                .map_err(|p| denied_for(p.code(), hash, p.describe(who, level)))?;
            let verdict = plan.verdict(&policy.policy, &policy.hash, Utc::now());
            let have = match &verdict {
                Verdict::Approved { plan, .. } => plan.approvers().to_vec(),
                Verdict::Pending { have, .. } => have.clone(),
                _ => Vec::new(),
            };
            if have.iter().any(|h| same_person(h, who)) {
                return Err(denied_for(
                    "duplicate",
                    hash,
                    format!("{who} already approved plan `{id}`; one person counts once"),
                ));
            }
            Ok(vec![Event::ApprovalGranted(decision(
                plan,
                policy,
                who,
                channel,
                reason,
                metadata.clone(),
            ))])
        })
    })
}

/// Records `who`'s rejection of plan `id` from `channel`, under the log's
/// lock. Anyone may reject, unless the policy lists approvers.
#[expect(clippy::too_many_arguments, reason = "each is a field of the decision")]
pub fn deny(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    policy: &LoadedPolicy,
    id: &str,
    who: &str,
    channel: Channel,
    binding: &Binding<'_>,
    reason: &str,
    metadata: Metadata,
) -> Result<Vec<crate::audit::Appended>, CliError> {
    if reason.trim().is_empty() {
        return Err(CliError::Usage("a rejection must say why".into()));
    }
    let attempt =
        Attempt::on_plan("reject", who, channel, id, &policy.hash).with_metadata(&metadata);
    append_or_record(log, &attempt, |len| {
        with_ledger(log, cache, len, |ledger| {
            let plan = open_plan(ledger, id, policy, log)?;
            check_binding(plan, binding)?;
            if let Some(list) = &policy.policy.approvers
                && !list.iter().any(|a| same_person(&a.name, who))
            {
                return Err(denied_for(
                    "not_listed",
                    &plan.submission.plan_hash,
                    format!("{who} is not on the policy's approvers list"),
                ));
            }
            Ok(vec![Event::ApprovalRejected(decision(
                plan,
                policy,
                who,
                channel,
                Some(reason.to_owned()),
                metadata.clone(),
            ))])
        })
    })
}

/// `approve RUN --rollback`: records `who`'s approval of rolling back a
/// failed, stopped or interrupted run, under the same rules as approving
/// its plan, under the log's lock.
fn grant_rollback(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    who: &str,
    reason: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let mut counted = (0u32, Vec::new());
    let attempt = Attempt::on_run("approve_rollback", who, run_id, &policy.hash);
    let appended = append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
        let (plan, run) = rollback_candidate(&ledger, log, run_id)?;
        let hash = &plan.submission.plan_hash;
        let subject = plan.subject();
        let level = requirement(&policy.policy, &subject)
            .map_err(|r| denied_for("refused_by_policy", hash, r.0))?
            .level;
        crate::core::approval::may_approve(&policy.policy, &subject, level, who, Channel::Cli)
            .map_err(|p| denied_for(p.code(), hash, p.describe(who, level)))?;
        let verdict = plan.rollback_verdict(run, &policy.policy, &policy.hash, Utc::now());
        let (needed, mut have) = counts(plan, policy, &verdict);
        if have.iter().any(|h| same_person(h, who)) {
            return Err(denied_for(
                "duplicate",
                hash,
                format!(
                    "{who} already approved rolling back run `{run_id}`; one person counts once"
                ),
            ));
        }
        have.push(who.to_owned());
        counted = (needed, have);
        Ok(vec![Event::ApprovalGranted(Decision {
            rollback_of: Some(run_id.to_owned()),
            ..decision(plan, policy, who, Channel::Cli, reason, Metadata::new())
        })])
    })?;
    let seq = appended.last().map(|a| a.seq).unwrap_or_default();
    let (needed, have) = counted;
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

/// A run that may be rolled back, and its plan: a real run, not
/// succeeded, not rolled back yet, not running.
pub fn rollback_candidate<'l>(
    ledger: &'l Ledger,
    log: &AuditLog,
    run_id: &str,
) -> Result<(&'l PlanState, &'l crate::core::state::RunState), CliError> {
    let (plan, run) = ledger
        .run(run_id)
        .ok_or_else(|| CliError::Failed(format!("no run `{run_id}` in the audit log")))?;
    let hash = &plan.submission.plan_hash;
    if run.dry_run {
        return Err(denied_for(
            "dry_run",
            hash,
            format!("run `{run_id}` was a dry run: nothing to roll back"),
        ));
    }
    if run.finished == Some(crate::audit::Status::Succeeded) {
        return Err(denied_for(
            "succeeded",
            hash,
            format!("run `{run_id}` succeeded: nothing to roll back"),
        ));
    }
    if run.rollback.is_some() {
        return Err(denied_for(
            "already_rolled_back",
            hash,
            format!("run `{run_id}` was already rolled back (or its rollback started)"),
        ));
    }
    if run_is_live(log.path(), run_id) {
        return Err(denied_for(
            "running",
            hash,
            format!("run `{run_id}` is still running: `opsgate cancel {run_id}` first"),
        ));
    }
    Ok((plan, run))
}

/// Calls `f` with the state of the log's first `len` bytes: from `cache`
/// when there is one, else folded (and verified) from the start.
fn with_ledger<R>(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    len: u64,
    f: impl FnOnce(&Ledger) -> Result<R, CliError>,
) -> Result<R, CliError> {
    match cache {
        Some(c) => c
            .with(log.path(), len, f)
            .map_err(|e| ledger_error(log.path(), e))?,
        None => f(&fold(log, len)?),
    }
}

pub fn reject(
    args: &RejectArgs,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let who = who(args.as_user.as_deref())?;
    if args.reason.trim().is_empty() {
        return Err(CliError::Usage("--reason must say why".into()));
    }
    let log = open_log()?;
    let appended = deny(
        &log,
        None,
        policy,
        &args.id,
        &who,
        Channel::Cli,
        &Binding::default(),
        &args.reason,
        Metadata::new(),
    )?;
    report(
        &log, policy, &args.id, "rejected", &who, &appended, args.json,
    )
}

fn decision(
    plan: &PlanState,
    policy: &LoadedPolicy,
    who: &str,
    channel: Channel,
    reason: Option<String>,
    metadata: Metadata,
) -> Decision {
    Decision {
        plan_id: plan.plan_id.clone(),
        plan_hash: plan.submission.plan_hash.clone(),
        policy_hash: policy.hash.clone(),
        risk: plan.submission.risk,
        approver: who.to_owned(),
        channel,
        reason,
        metadata,
        submission_seq: Some(plan.submission.seq),
        rollback_of: None,
    }
}

/// Approvals needed and the approvers who count, for display.
pub fn counts(plan: &PlanState, policy: &LoadedPolicy, verdict: &Verdict) -> (u32, Vec<String>) {
    match verdict {
        Verdict::Approved { plan, needed } => (*needed, plan.approvers().to_vec()),
        Verdict::Pending { needed, have, .. } => (*needed, have.clone()),
        Verdict::Rejected { .. } | Verdict::Refused { .. } => (
            requirement(&policy.policy, &plan.subject()).map_or(0, |r| r.approvals),
            Vec::new(),
        ),
    }
}

/// The verified state of the log's first `len` bytes; a broken log
/// refuses every decision.
pub fn fold(log: &AuditLog, len: u64) -> Result<Ledger, CliError> {
    log.ledger_until(len)
        .map_err(|e| ledger_error(log.path(), e))
}

pub fn ledger_error(path: &std::path::Path, e: LedgerError) -> CliError {
    match e {
        LedgerError::Io(source) => CliError::Read {
            path: path.to_owned(),
            source,
        },
        // Not a refusal to record: nothing is written to a broken log.
        LedgerError::Broken(p) => CliError::Audit(crate::audit::AuditError::Broken {
            path: path.to_owned(),
            problem: format!("{p}; nothing is decided or run on a broken log"),
        }),
        LedgerError::Truncated { mark, found } => {
            CliError::Audit(crate::audit::AuditError::Truncated {
                path: path.to_owned(),
                mark,
                found,
            })
        }
    }
}

/// The plan, if it can still take decisions: submitted under the current
/// policy and neither rejected, run nor running.
fn open_plan<'l>(
    ledger: &'l Ledger,
    id: &str,
    policy: &LoadedPolicy,
    log: &AuditLog,
) -> Result<&'l PlanState, CliError> {
    let plan = ledger.plan(id).ok_or_else(|| {
        CliError::Failed(format!(
            "no plan `{id}` in the audit log `{}`; submit it first (`opsgate submit FILE`)",
            log.path().display()
        ))
    })?;
    let hash = &plan.submission.plan_hash;
    if plan.submission.policy_hash != policy.hash {
        return Err(denied_for(
            "policy_changed",
            hash,
            format!(
                "plan `{id}` was submitted under policy {}, and the policy is now {}: submit it again to have it rated under the current policy",
                short(plan.submission.policy_hash.as_str()),
                short(policy.hash.as_str())
            ),
        ));
    }
    let verdict = plan.verdict(&policy.policy, &policy.hash, Utc::now());
    let status = plan.status(&verdict, |run| run_is_live(log.path(), run));
    if !status.is_open() {
        return Err(denied_for(
            "closed",
            hash,
            format!(
                "plan `{id}` is {}: it takes no more decisions; a new submission is needed",
                status.as_str()
            ),
        ));
    }
    Ok(plan)
}

/// `--hash`: the full hash, or a prefix of at least 12 hex digits.
fn check_hash(given: &str, plan: &PlanState) -> Result<(), CliError> {
    let given = given.trim();
    let full = if given.starts_with("sha256:") {
        given.to_owned()
    } else {
        format!("sha256:{given}")
    };
    let current = plan.submission.plan_hash.as_str();
    let hex_len = full.len() - "sha256:".len();
    if hex_len < 12 {
        return Err(CliError::Usage(format!(
            "--hash `{given}` is too short: give at least 12 hex digits"
        )));
    }
    if !current.starts_with(&full) {
        return Err(denied_for(
            "stale_plan_hash",
            &plan.submission.plan_hash,
            format!(
                "approval for {}, but plan `{}` is now {}: review the plan again",
                short(&full),
                plan.plan_id,
                short(current)
            ),
        ));
    }
    Ok(())
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
    let ledger = log.ledger().map_err(|e| ledger_error(log.path(), e))?;
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
