//! `opsgate run`, `cancel` and `rollback`: the command line's side of a
//! run. The checks are the application layer's (`app::start`,
//! `app::control`) and the run's life is its driver's (`app::driver`);
//! this module asks on the terminal and prints progress.

use crate::core::identity::Actor;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::args::RunArgs;
use super::error::CliError;
use super::plan_cmd;
use crate::app::decide::{Binding, Request};
use crate::app::driver::{AfterFailure, Drive, RunMsg};
use crate::app::start::Target;
use crate::audit::{AuditLog, Status};
use crate::core::approval::Verdict;
use crate::core::policy::LoadedPolicy;
use crate::exec::engine::Progress;

pub fn run(
    args: &RunArgs,
    actor: &Actor,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = actor.name.as_str();
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
        let go = converse(args, policy, &log, from_file.as_ref(), actor)?;
        if !go {
            return Err(CliError::Failed("not run".into()));
        }
    }
    let backends = std::sync::Arc::new(crate::native::Backends::new(&policy.policy.backends));
    let started = crate::app::start::begin(
        &log,
        None,
        policy,
        &backends,
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
        (user, crate::audit::Channel::Cli),
        args.dry_run,
        args.resume,
    )?;
    for note in &started.start.notes {
        eprintln!("{note}");
    }
    let after_failure =
        if !args.dry_run && (args.rollback_on_failure || policy.policy.execution.auto_rollback) {
            AfterFailure::RollBack
        } else if args.interactive {
            AfterFailure::Offer
        } else {
            AfterFailure::Leave
        };
    let how = Drive {
        grace: Duration::from_secs(args.grace),
        after_failure,
        ctrl_c: true,
        accepted_in: "",
    };
    let run_id = started.run_id.clone();
    let dry = started.start.authority.is_dry_run();
    {
        let mut out = anstream::stdout().lock();
        writeln!(
            out,
            "{}run {run_id}: plan `{}`, {} step(s)",
            if dry { "dry " } else { "" },
            started.start.plan_id,
            started.start.plan.steps.len()
        )?;
    }
    let (tx, rx) = std_mpsc::channel();
    let (answer_tx, answer_rx) = mpsc::channel(1);
    let printer = Printer {
        spinner: args.interactive && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        run: Some(RunSide {
            run_id: run_id.clone(),
            dry,
            after: after_failure,
            answers: answer_tx,
        }),
    };
    let printing = std::thread::spawn(move || printer.print(&rx));
    let outcome = crate::app::driver::drive(&log, policy, &started, &how, &tx, Some(answer_rx));
    drop(tx);
    let _ = printing.join();
    drop(started);
    let report = outcome?;
    println!(
        "{} {} in {:.1}s",
        report.run_id,
        report.status.as_str(),
        report.duration.as_secs_f64()
    );
    match report.status {
        Status::Succeeded => Ok(()),
        _ => Err(CliError::Reported(format!(
            "run {run_id} {}",
            report.status.as_str()
        ))),
    }
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
    actor: &Actor,
) -> Result<bool, CliError> {
    let cp = match from_file {
        Some(cp) => {
            let (seq, new) =
                crate::app::submit::record(log, policy, cp, (actor, crate::audit::Channel::Cli))?;
            if new {
                println!("submitted {} as seq {seq}", cp.plan.id);
            }
            cp.clone()
        }
        None => {
            let ledger = crate::app::ledger::current(log)?;
            let state = ledger.plan(&args.target).ok_or_else(|| {
                CliError::Failed(format!("no plan `{}` in the audit log", args.target))
            })?;
            crate::core::plan::ClassifiedPlan::from_plan(
                crate::app::start::frozen_plan(state)?,
                &policy.rules,
            )
        }
    };
    {
        let mut out = anstream::stdout().lock();
        crate::app::plan_view::PlanView::new(&cp, &policy.hash).write_text(&mut out)?;
    }
    let id = cp.plan.id.as_str();
    let state_now = || -> Result<Verdict, CliError> {
        let ledger = crate::app::ledger::current(log)?;
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
    let req = Request {
        binding: Binding {
            hash: Some(cp.hash.as_str()),
            ..Binding::default()
        },
        ..Request::new(id, actor, crate::audit::Channel::Cli)
    };
    crate::app::decide::grant(log, None, policy, &req)?;
    match state_now()? {
        Verdict::Approved { plan, .. } => {
            println!("approved by {}", plan.approvers().join(", "));
            Ok(true)
        }
        other => Err(CliError::Denied(crate::app::Refusal {
            reason: crate::app::Reason::NotApproved,
            plan_hash: None,
            message: format!(
                "your approval is recorded, and plan `{id}` may not run yet: {}",
                other.missing().unwrap_or_default()
            ),
        })),
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
            crate::app::present::badge(review.action.risk)
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

/// Prints what the driver tells, on a thread of its own. With `spinner`,
/// a running step shows a spinner and its elapsed time on a line of its
/// own, redrawn in place.
struct Printer {
    spinner: bool,
    /// For a run (not an operator's rollback).
    run: Option<RunSide>,
}

/// What the printer knows of a run: its id, whether it is a dry run, what
/// happens after a failure, and where the answer to a rollback offer goes.
struct RunSide {
    run_id: String,
    dry: bool,
    after: AfterFailure,
    answers: mpsc::Sender<bool>,
}

impl Printer {
    fn print(self, rx: &std_mpsc::Receiver<RunMsg>) {
        let mut running: Option<std::time::Instant> = None;
        let mut shown = false;
        let mut frame = 0;
        loop {
            let msg = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(msg) => msg,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if let (true, Some(t)) = (self.spinner, running) {
                        let spinner = crate::app::present::SPINNER;
                        let mut out = anstream::stdout().lock();
                        let _ = write!(
                            out,
                            "\r  {} {:.1}s",
                            spinner[frame % spinner.len()],
                            t.elapsed().as_secs_f64()
                        );
                        let _ = out.flush();
                        frame += 1;
                        shown = true;
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if shown {
                // Clear the spinner's line first.
                let mut out = anstream::stdout().lock();
                let _ = write!(out, "\r\x1b[K");
                let _ = out.flush();
                shown = false;
            }
            match msg {
                RunMsg::Progress(p) => {
                    match &p {
                        Progress::StepStarted { .. } => running = Some(std::time::Instant::now()),
                        Progress::StepFinished { .. } => running = None,
                        _ => {}
                    }
                    let mut out = anstream::stdout().lock();
                    let _ = writeln!(out, "{}", progress_line(p));
                    let _ = out.flush();
                }
                RunMsg::Stopping { kill } => eprintln!(
                    "{}",
                    if kill {
                        "stop: killing the current step"
                    } else {
                        "stop: finishing the current step, then stopping (Ctrl-C again kills it)"
                    }
                ),
                RunMsg::Finished {
                    report,
                    rollback_offered,
                } => self.finished(&report, rollback_offered),
                RunMsg::RollbackFinished(status) if self.run.is_some() => {
                    println!("rollback {}", status.as_str());
                }
                RunMsg::RollbackFinished(_) | RunMsg::Failed(_) => {}
            }
        }
    }

    /// A run ended: asks about the rollback when it is offered, and says
    /// how to run it when it is not run.
    fn finished(&self, report: &crate::exec::engine::RunReport, offered: bool) {
        let Some(run) = &self.run else {
            return;
        };
        if run.dry || report.status == Status::Succeeded || run.after == AfterFailure::RollBack {
            return;
        }
        let yes = offered && ask("Rollback? (yes/no)").is_ok_and(|a| a == "yes" || a == "y");
        if offered {
            let _ = run.answers.blocking_send(yes);
        }
        let run_id = &run.run_id;
        if !yes {
            println!(
                "rollback not run: `opsgate rollback {run_id}` runs it (or set execution.auto_rollback)"
            );
        }
    }
}

/// A line of progress.
fn progress_line(p: Progress) -> String {
    match p {
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
    }
}

pub fn cancel(
    run_id: &str,
    actor: &Actor,
    kill: bool,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = actor.name.as_str();
    let log = open_log()?;
    let killing = crate::app::control::cancel(&log, policy, run_id, user, kill)?;
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
    actor: &Actor,
    policy: &LoadedPolicy,
    open_log: impl FnOnce() -> Result<AuditLog, CliError>,
) -> Result<(), CliError> {
    let user = actor.name.as_str();
    let log = open_log()?;
    let decided = crate::app::control::start_rollback(&log, policy, run_id, user)?;
    let backends = crate::native::Backends::new(&policy.policy.backends);
    let (tx, rx) = std_mpsc::channel();
    let printer = Printer {
        spinner: false,
        run: None,
    };
    let printing = std::thread::spawn(move || printer.print(&rx));
    let status = crate::app::driver::roll_back(&log, policy, &backends, decided, &tx);
    drop(tx);
    let _ = printing.join();
    let status = status?;
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
