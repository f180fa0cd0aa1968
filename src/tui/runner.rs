//! Runs a plan from the TUI: the application's checks and run driver, on
//! a thread of its own, reporting to the UI over a channel. Stop requests
//! go through the audit log, as from the CLI.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use crate::app::App;
use crate::app::driver::{AfterFailure, Drive};
use crate::app::start::Target;
use crate::core::digest::PlanHash;

pub use crate::app::driver::RunMsg;

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
/// drives it on its own thread, with the application's log, ledger cache
/// and long-lived backends.
pub fn spawn(
    app: &Arc<App>,
    plan_id: &str,
    hash: &PlanHash,
    user: &str,
    dry_run: bool,
) -> crate::app::Result<RunHandle> {
    let started = app.begin(
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
    let how = Drive {
        grace: std::time::Duration::from_secs(crate::exec::engine::DEFAULT_GRACE_SECONDS),
        after_failure: AfterFailure::Offer,
        ctrl_c: false,
        accepted_in: ", rollback accepted in the TUI",
    };
    let app = Arc::clone(app);
    std::thread::spawn(move || {
        if let Err(e) = crate::app::driver::drive(
            &app.log,
            &app.policy,
            &started,
            &how,
            &tx,
            Some(rollback_rx),
        ) {
            let _ = tx.send(RunMsg::Failed(e.to_string()));
        }
    });
    Ok(handle)
}
