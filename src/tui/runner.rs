//! Runs a plan from the TUI: the same checks and engine as `opsgate run`,
//! on a thread of its own, reporting to the UI over a channel. Stop
//! requests go through the audit log, as from the CLI.

use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, watch};

use crate::audit::{AuditLog, Status};
use crate::cli::error::CliError;
use crate::cli::run_cmd::{Started, Target, begin, engine, keep_going, watch_stops};
use crate::core::digest::PlanHash;
use crate::core::policy::LoadedPolicy;
use crate::exec::Stop;
use crate::exec::engine::{Progress, RunReport};

/// What the run thread tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum RunMsg {
    Progress(Progress),
    /// The run ended; `rollback_offered` when the UI must answer.
    Finished {
        report: RunReport,
        rollback_offered: bool,
    },
    RollbackFinished(Status),
    Failed(String),
}

/// The UI's end of a run.
#[derive(Debug)]
pub struct RunHandle {
    pub run_id: String,
    pub plan_id: String,
    pub steps: Vec<String>,
    pub dry_run: bool,
    pub rx: std_mpsc::Receiver<RunMsg>,
    /// The answer to the rollback prompt.
    pub rollback: mpsc::Sender<bool>,
}

/// Checks and starts a run of `plan_id` (refusals come back at once), then
/// runs it on its own thread.
pub fn spawn(
    opts: &super::app::Options,
    plan_id: &str,
    hash: &PlanHash,
    user: &str,
    dry_run: bool,
) -> Result<RunHandle, CliError> {
    let log = AuditLog::open(&opts.log_path, opts.sealer.clone(), opts.redactor.clone())?;
    let policy = opts.policy.clone();
    let started = begin(
        &log,
        &policy,
        Target::Submitted {
            id: plan_id,
            hash: Some(hash),
        },
        (user, crate::audit::Channel::Tui),
        dry_run,
        false,
    )?;
    let (tx, rx) = std_mpsc::channel();
    let (rollback_tx, rollback_rx) = mpsc::channel(1);
    let handle = RunHandle {
        run_id: started.run_id.clone(),
        plan_id: plan_id.to_owned(),
        steps: started
            .start
            .plan
            .steps
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        dry_run,
        rx,
        rollback: rollback_tx,
    };
    let user = user.to_owned();
    std::thread::spawn(move || {
        if let Err(e) = drive(&log, &policy, &started, &user, &tx, rollback_rx) {
            let _ = tx.send(RunMsg::Failed(e));
        }
    });
    Ok(handle)
}

/// Awaits `work`, forwarding its progress as it comes, and the rest after,
/// so the UI sees every step before the end.
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

fn drive(
    log: &AuditLog,
    policy: &LoadedPolicy,
    started: &Started,
    user: &str,
    tx: &std_mpsc::Sender<RunMsg>,
    mut rollback_rx: mpsc::Receiver<bool>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let start = &started.start;
    let run_id = &started.run_id;
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let offset = std::fs::metadata(log.path()).map_or(0, |m| m.len());
    rt.block_on(async {
        let stops = tokio::spawn(watch_stops(
            log.path().to_owned(),
            offset,
            run_id.clone(),
            stop_tx,
        ));
        let eng = engine(log, policy, start, run_id, user, 5, progress_tx, stop_rx);
        let result = async {
            let report = pump(eng.run(&start.authority), &mut progress_rx, tx)
                .await
                .map_err(|e| e.to_string())?;
            let offered = report.status != Status::Succeeded && !start.authority.is_dry_run();
            let _ = tx.send(RunMsg::Finished {
                report: report.clone(),
                rollback_offered: offered,
            });
            if offered && rollback_rx.recv().await == Some(true) {
                let reason = format!(
                    "run {run_id} {}, rollback accepted in the TUI",
                    report.status.as_str()
                );
                let keep_going = keep_going(&start.plan);
                let status = pump(
                    eng.rollback(&report, &reason, keep_going),
                    &mut progress_rx,
                    tx,
                )
                .await
                .map_err(|e| e.to_string())?;
                let _ = tx.send(RunMsg::RollbackFinished(status));
            }
            Ok::<_, String>(())
        }
        .await;
        stops.abort();
        result
    })
}
