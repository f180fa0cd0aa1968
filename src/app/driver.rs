//! The run driver: the one place a run's life is assembled, for every
//! door. It owns the run's tokio runtime, follows the log for the run's
//! stop requests, forwards the engine's progress in order, offers the
//! rollback after a failure (or runs it at once), and runs an operator's
//! rollback. The door only shows what it is told and answers the offer.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::control::RollbackStarted;
use super::error::{Error, Result};
use super::start::{Started, keep_going, step_env, step_risks};
use crate::audit::read::Follower;
use crate::audit::{AuditLog, Event, Record, Status};
use crate::core::policy::LoadedPolicy;
use crate::exec::Stop;
use crate::exec::engine::{Engine, Progress, RollbackPermit, RunReport, RunSpec};

/// What the driver tells the door, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RunMsg {
    Progress(Progress),
    /// A Ctrl-C was recorded as a stop request (`kill` on the second).
    Stopping {
        kill: bool,
    },
    /// The run ended; `rollback_offered` when the door must answer.
    Finished {
        report: RunReport,
        rollback_offered: bool,
    },
    RollbackFinished(Status),
    Failed(String),
}

/// What happens after a run that did not succeed (a dry run is never
/// rolled back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Roll back at once (`--rollback-on-failure`, `execution.auto_rollback`).
    RollBack,
    /// Offer it: the door answers on the answers channel.
    Offer,
    /// Leave it to an operator (`opsgate rollback RUN`).
    Leave,
}

/// How to drive a run.
#[derive(Debug, Clone)]
pub struct Drive {
    /// Between SIGTERM and SIGKILL, when a step is killed.
    pub grace: Duration,
    pub after_failure: AfterFailure,
    /// Record Ctrl-C as stop requests (the first lets the step finish,
    /// the second kills it).
    pub ctrl_c: bool,
    /// Added to the recorded reason of an accepted rollback offer.
    pub accepted_in: &'static str,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))
}

/// Drives the started run to its end on this thread, telling `tx` as it
/// goes (a rollback's outcome included); `answers` carries the door's
/// answer to a rollback offer (none, or a closed channel, is a no).
/// Returns the run's report.
pub fn drive(
    log: &AuditLog,
    policy: &LoadedPolicy,
    started: &Started,
    how: &Drive,
    tx: &std_mpsc::Sender<RunMsg>,
    mut answers: Option<mpsc::Receiver<bool>>,
) -> Result<RunReport> {
    let rt = runtime()?;
    let start = &started.start;
    let run_id = &started.run_id;
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let engine = Engine::new(RunSpec {
        log,
        plan_id: &start.plan_id,
        plan: &start.plan,
        policy_hash: &policy.hash,
        run_id: run_id.clone(),
        user: start.user.clone(),
        backends: &start.backends,
    })
    .risks(step_risks(&start.plan, policy))
    .grace(how.grace)
    .progress(progress_tx)
    .stop(stop_rx)
    .resumed(start.resumed.clone())
    .env(start.env.clone())
    .stops_from(start.stops_from);
    let offset = std::fs::metadata(log.path()).map_or(0, |m| m.len());
    rt.block_on(async {
        let stops = tokio::spawn(watch_stops(
            log.path().to_owned(),
            offset,
            run_id.clone(),
            stop_tx,
        ));
        let sigint = ctrl_c_requests(log, &start.plan_id, run_id, &start.user, tx, how.ctrl_c);
        let work = async {
            let report = pump(engine.run(&start.authority), &mut progress_rx, tx).await?;
            let approved = match &start.authority {
                crate::exec::engine::Authority::Approved(a)
                    if report.status != Status::Succeeded =>
                {
                    Some(a.clone())
                }
                _ => None,
            };
            let offered = approved.is_some() && how.after_failure == AfterFailure::Offer;
            let _ = tx.send(RunMsg::Finished {
                report: report.clone(),
                rollback_offered: offered,
            });
            let Some(approval) = approved else {
                return Ok(report);
            };
            let go = match how.after_failure {
                AfterFailure::RollBack => true,
                AfterFailure::Leave => false,
                AfterFailure::Offer => match answers.as_mut() {
                    Some(rx) => rx.recv().await == Some(true),
                    None => false,
                },
            };
            if !go {
                return Ok(report);
            }
            let accepted = if offered { how.accepted_in } else { "" };
            let reason = format!("run {run_id} {}{accepted}", report.status.as_str());
            let permit = RollbackPermit::new(approval, &started.lock);
            let status = pump(
                engine.rollback(&permit, &report, &reason, keep_going(&start.plan)),
                &mut progress_rx,
                tx,
            )
            .await?;
            let _ = tx.send(RunMsg::RollbackFinished(status));
            Ok::<_, Error>(report)
        };
        let result = {
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r,
                () = sigint => work.await,
            }
        };
        stops.abort();
        result
    })
}

/// Runs an operator's rollback (decided by `control::start_rollback`) on
/// this thread, telling `tx` as it goes. Returns its status.
pub fn roll_back(
    log: &AuditLog,
    policy: &LoadedPolicy,
    backends: &crate::native::Backends,
    decided: RollbackStarted,
    tx: &std_mpsc::Sender<RunMsg>,
) -> Result<Status> {
    let rt = runtime()?;
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let RollbackStarted {
        plan_id,
        run_id,
        user,
        plan,
        completed,
        approval,
        lock,
    } = decided;
    let engine = Engine::new(RunSpec {
        log,
        plan_id: &plan_id,
        plan: &plan,
        policy_hash: &policy.hash,
        run_id,
        user,
        backends,
    })
    .risks(step_risks(&plan, policy))
    .progress(progress_tx)
    .env(step_env(policy, &plan));
    let permit = RollbackPermit::new(approval, &lock);
    let status = rt.block_on(async {
        let work = crate::exec::engine::rollback_work(&plan, &completed);
        pump(
            engine.run_rollback(&permit, &work, keep_going(&plan)),
            &mut progress_rx,
            tx,
        )
        .await
    })?;
    let _ = tx.send(RunMsg::RollbackFinished(status));
    Ok(status)
}

/// Awaits `work`, forwarding its progress as it comes, and the rest after,
/// so the door sees every step before the end.
async fn pump<T>(
    work: impl std::future::Future<Output = T>,
    progress: &mut mpsc::UnboundedReceiver<Progress>,
    tx: &std_mpsc::Sender<RunMsg>,
) -> T {
    tokio::pin!(work);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            Some(p) = progress.recv() => {
                let _ = tx.send(RunMsg::Progress(p));
            }
        }
    };
    while let Ok(p) = progress.try_recv() {
        let _ = tx.send(RunMsg::Progress(p));
    }
    out
}

/// With `on`, Ctrl-C records a stop request in the log: the first lets
/// the current step finish, the second kills it. Never completes.
async fn ctrl_c_requests(
    log: &AuditLog,
    plan_id: &str,
    run_id: &str,
    user: &str,
    tx: &std_mpsc::Sender<RunMsg>,
    on: bool,
) {
    let mut count = 0;
    while on && tokio::signal::ctrl_c().await.is_ok() {
        count += 1;
        let kill = count >= 2;
        let _ = super::control::request_stop(log, plan_id, run_id, user, kill, "Ctrl-C");
        let _ = tx.send(RunMsg::Stopping { kill });
    }
    std::future::pending::<()>().await;
}

/// Follows the log for this run's stop requests.
async fn watch_stops(path: PathBuf, offset: u64, run_id: String, stop: watch::Sender<Stop>) {
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
