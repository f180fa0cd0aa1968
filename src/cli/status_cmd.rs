//! `opsgate status [ID]`: plans and runs as the audit log has them.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::CliError;
use crate::app::ledger::ledger_error;
use crate::app::present::badge;
use crate::audit::Sealer;
use crate::audit::ledger::{load, run_is_live};
use crate::audit::mark::HighWater;
use crate::core::event::short;
use crate::core::policy::LoadedPolicy;
use crate::core::state::{PlanState, RunState, run_status};

#[derive(Debug, Serialize)]
struct PlanOut<'a> {
    plan_id: &'a str,
    status: &'static str,
    risk: String,
    plan_hash: &'a str,
    policy_hash: &'a str,
    author: &'a str,
    submitted_at: String,
    approvals: Approvals,
    /// What is missing before it may run, or why it is closed.
    missing: Option<String>,
    runs: Vec<RunOut<'a>>,
}

#[derive(Debug, Serialize)]
struct Approvals {
    needed: u32,
    have: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RunOut<'a> {
    run_id: &'a str,
    dry_run: bool,
    status: &'static str,
    user: &'a str,
    started_at: String,
    steps_finished: usize,
    steps_started: usize,
    /// `interrupted at step N`, for a run no engine is running.
    interrupted_at: Option<u32>,
}

fn plan_out<'a>(
    p: &'a PlanState,
    policy: &LoadedPolicy,
    log: &Path,
    now: DateTime<Utc>,
) -> PlanOut<'a> {
    let view = crate::app::views::plan_status(p, policy, log, now);
    let status = view.status;
    PlanOut {
        plan_id: &p.plan_id,
        status: status.as_str(),
        risk: p.submission.risk.to_string(),
        plan_hash: p.submission.plan_hash.as_str(),
        policy_hash: p.submission.policy_hash.as_str(),
        author: &p.submission.author,
        submitted_at: crate::core::event::format_ts(&p.submission.ts),
        approvals: Approvals {
            needed: view.needed,
            have: view.approvers,
        },
        missing: view.missing,
        runs: p.runs.iter().map(|r| run_out(r, log)).collect(),
    }
}

fn run_out<'a>(r: &'a RunState, log: &Path) -> RunOut<'a> {
    let status = run_status(r, &|run: &str| run_is_live(log, run));
    RunOut {
        run_id: &r.run_id,
        dry_run: r.dry_run,
        status: status.as_str(),
        user: &r.user,
        started_at: crate::core::event::format_ts(&r.started),
        steps_finished: r.steps.iter().filter(|s| s.finished.is_some()).count(),
        steps_started: r.steps.len(),
        interrupted_at: (status == crate::core::state::PlanStatus::Interrupted)
            .then(|| r.unfinished_step().map(|s| s.step))
            .flatten(),
    }
}

/// Each backend whose breaker was last recorded in a state other than
/// closed (every one with `all`).
fn write_breakers(
    out: &mut impl Write,
    ledger: &crate::core::state::Ledger,
    all: bool,
) -> Result<(), CliError> {
    for b in ledger.breakers().filter(|b| all || b.state != "closed") {
        writeln!(
            out,
            "breaker   {} {} after {} consecutive failure(s), since {}{}",
            b.backend,
            b.state,
            b.consecutive_failures,
            crate::core::event::format_ts(&b.since),
            b.run_id
                .as_deref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

/// `status --breakers`: every backend's breaker as last recorded.
pub fn breakers(
    path: &Path,
    sealer: &Sealer,
    mark: &HighWater,
    json: bool,
) -> Result<(), CliError> {
    let ledger = crate::app::ledger::read_only(path, sealer, mark)?;
    let mut out = anstream::stdout().lock();
    if json {
        let list: Vec<_> = ledger.breakers().collect();
        serde_json::to_writer(&mut out, &list)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        writeln!(out)?;
        return Ok(());
    }
    if ledger.breakers().next().is_none() {
        writeln!(out, "no breaker has changed state: all closed")?;
    }
    write_breakers(&mut out, &ledger, true)
}

/// `status --webhooks`: each webhook of the policy, where it stands in
/// the log on this host, and its dead letters.
pub fn webhooks(
    path: &Path,
    sealer: &Sealer,
    policy: &LoadedPolicy,
    json: bool,
) -> Result<(), CliError> {
    let head = match crate::audit::verify::read_head(path, sealer) {
        Ok(Ok(h)) => h.map_or(0, |h| h.seq),
        Ok(Err(problem)) => {
            return Err(CliError::Failed(format!(
                "{}: the log's tail does not check: {problem}",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            return Err(CliError::Failed(format!("{}: {e}", path.display())));
        }
    };
    let state = crate::app::config::state_dir()?;
    let mut list = Vec::new();
    for w in &policy.policy.bridge.webhooks {
        let files = crate::app::webhooks::Files::of(&state, path, &w.name);
        let io = |e: std::io::Error, f: &Path| CliError::Failed(format!("{}: {e}", f.display()));
        let at = files
            .read_position()
            .map_err(|e| io(e, &files.position))?
            .map(|p| p.after_seq);
        let dead = files.dead_letters().map_err(|e| io(e, &files.dead))?;
        list.push(serde_json::json!({
            "name": w.name,
            "format": w.format,
            "url": crate::app::webhooks::shown(&w.url),
            "events": w.events,
            "after_seq": at,
            "head_seq": head,
            "pending": at.map(|a| head.saturating_sub(a)),
            "dead_letters": dead.len(),
            "last_dead_letter": dead.last(),
        }));
    }
    let mut out = anstream::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &list)
            .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
        writeln!(out)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(out, "no webhooks in the policy (bridge.webhooks)")?;
    }
    for w in &list {
        let place = match w["after_seq"].as_u64() {
            Some(a) => format!("at record {a} of {head} ({} to go)", head.saturating_sub(a)),
            None => "not started (no bridge has served it on this host)".to_owned(),
        };
        writeln!(
            out,
            "webhook   {} {} {}: {place}, {} dead letter(s){}",
            w["name"].as_str().unwrap_or_default(),
            w["format"].as_str().unwrap_or_default(),
            w["url"].as_str().unwrap_or_default(),
            w["dead_letters"],
            w["last_dead_letter"]
                .as_object()
                .map(|d| format!(
                    ", the last at {} (record {}, {}: {})",
                    d["at"].as_str().unwrap_or_default(),
                    d["seq"],
                    d["event"].as_str().unwrap_or_default(),
                    d["error"].as_str().unwrap_or_default()
                ))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

pub fn run(
    path: &Path,
    sealer: &Sealer,
    mark: &HighWater,
    policy: &LoadedPolicy,
    id: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    if !path.exists() {
        return Err(CliError::Failed(format!(
            "no audit log at `{}` (nothing was submitted yet, or pass --audit-log)",
            path.display()
        )));
    }
    let ledger = load(path, sealer, Some(mark)).map_err(|e| ledger_error(path, e))?;
    let now = Utc::now();
    let mut out = anstream::stdout().lock();
    let Some(id) = id else {
        let plans: Vec<PlanOut<'_>> = ledger
            .plans()
            .map(|p| plan_out(p, policy, path, now))
            .collect();
        if json {
            serde_json::to_writer(&mut out, &plans)
                .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(
            out,
            "{:<28} {:<12} {:<13} {:<18} {:>5}  HASH",
            "PLAN", "STATUS", "RISK", "APPROVALS", "AGE"
        )?;
        for (p, o) in ledger.plans().zip(&plans) {
            let approvals = format!(
                "{}/{} {}",
                o.approvals.have.len(),
                o.approvals.needed,
                o.approvals.have.join(",")
            );
            writeln!(
                out,
                "{:<28} {:<12} {} {:<18} {:>5}  {}",
                o.plan_id,
                o.status,
                badge(p.submission.risk),
                approvals.trim_end(),
                crate::app::present::age(p.submission.ts, now),
                short(o.plan_hash)
            )?;
        }
        return write_breakers(&mut out, &ledger, false);
    };
    let (plan, run) = match ledger.plan(id) {
        Some(p) => (p, None),
        None => match ledger.run(id) {
            Some((p, r)) => (p, Some(r)),
            None => {
                return Err(CliError::Failed(format!(
                    "no plan or run `{id}` in `{}`",
                    path.display()
                )));
            }
        },
    };
    let o = plan_out(plan, policy, path, now);
    if json {
        let value = match run {
            Some(r) => serde_json::json!({"plan": o, "run": run_out(r, path)}),
            None => serde_json::to_value(&o)
                .map_err(|e| CliError::Failed(format!("cannot write JSON: {e}")))?,
        };
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(
        out,
        "plan      {}  {}",
        o.plan_id,
        badge(plan.submission.risk)
    )?;
    writeln!(out, "status    {}", o.status)?;
    writeln!(out, "hash      {}", o.plan_hash)?;
    writeln!(out, "policy    {}", o.policy_hash)?;
    writeln!(
        out,
        "author    {} (submitted by {} at {})",
        o.author, plan.submission.submitted_by, o.submitted_at
    )?;
    writeln!(
        out,
        "approvals {}/{}{}",
        o.approvals.have.len(),
        o.approvals.needed,
        if o.approvals.have.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.approvals.have.join(", "))
        }
    )?;
    if let Some(m) = &o.missing {
        writeln!(out, "missing   {m}")?;
    }
    for r in &o.runs {
        if run.is_some_and(|x| x.run_id != r.run_id) {
            continue;
        }
        let mut line = format!(
            "run       {} {}{} by {} at {}, {}/{} step(s) finished",
            r.run_id,
            if r.dry_run { "dry run " } else { "" },
            r.status,
            r.user,
            r.started_at,
            r.steps_finished,
            r.steps_started
        );
        if let Some(step) = r.interrupted_at {
            line.push_str(&format!(", interrupted at step {step}"));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
