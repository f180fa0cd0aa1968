//! The TUI's effects, run on a worker thread: approving, rejecting,
//! submitting, starting a run, recording a stop, reloading and reading the
//! audit view all take the log's lock or read the log, which on a big log
//! takes longer than a frame. The terminal loop hands each effect to the
//! worker and keeps drawing; the outcome comes back as an action for
//! `update`, in the order the effects were given.
//!
//! Reloads read the ledger through the application's incremental cache,
//! so a reload after an append reads only the new records.

use crate::core::identity::Actor;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use chrono::Utc;

use super::load::{Loaded, Overrides};
use super::runner::RunHandle;
use super::state::{Notice, RowStatus, Source};
use super::update::{Action, Effect};
use crate::app::App;
use crate::app::decide::{Binding, Request};
use crate::audit::Channel;
use crate::core::plan::ClassifiedPlan;

/// One effect, with what it needs of the UI's state when it was asked for.
#[derive(Debug)]
pub struct Job {
    pub effect: Effect,
    /// The rows' parameter overrides (for a reload).
    pub overrides: Overrides,
    /// For an approval of a plan file not submitted yet: the plan as the
    /// dialog showed it.
    pub unsubmitted: Option<ClassifiedPlan>,
}

/// What the worker hands back.
#[derive(Debug)]
pub enum Outcome {
    Action(Action),
    /// A run started: the UI's end of it, and the action announcing it.
    Run(RunHandle, Action),
    /// Done, with nothing to tell.
    Quiet,
}

/// The worker's two ends, as the terminal loop holds them.
#[derive(Debug)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Outcome>,
    /// For a stop request, which does not wait in the queue.
    answer: mpsc::Sender<Outcome>,
    app: Arc<App>,
    user: Actor,
    /// Effects given and not yet answered.
    pub pending: usize,
}

impl Worker {
    /// Starts the worker thread for `app`, acting as `user`.
    pub fn start(app: Arc<App>, user: Actor, files: Vec<PathBuf>) -> Self {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let answer = done_tx.clone();
        let (queue_app, queue_user) = (Arc::clone(&app), user.clone());
        std::thread::spawn(move || {
            for job in job_rx {
                let _ = done_tx.send(perform(&queue_app, &queue_user, &files, job));
            }
        });
        Worker {
            jobs,
            done,
            answer,
            app,
            user,
            pending: 0,
        }
    }

    /// Hands `job` to the worker. A stop request is recorded on a thread of
    /// its own, so it never waits behind a decision that folds a big log.
    pub fn give(&mut self, job: Job) {
        if matches!(job.effect, Effect::Stop { .. }) {
            let (app, user, answer) = (
                Arc::clone(&self.app),
                self.user.clone(),
                self.answer.clone(),
            );
            std::thread::spawn(move || {
                let _ = answer.send(perform(&app, &user, &[], job));
            });
            self.pending += 1;
        } else if self.jobs.send(job).is_ok() {
            self.pending += 1;
        }
    }

    /// The outcomes ready now.
    pub fn ready(&mut self) -> Vec<Outcome> {
        let out: Vec<Outcome> = self.done.try_iter().collect();
        self.pending = self.pending.saturating_sub(out.len());
        out
    }
}

/// The rows as the log and the files have them now, read through the
/// application's ledger cache.
pub fn reload(app: &App, files: &[PathBuf], overrides: &Overrides) -> Result<Loaded, String> {
    let path = app.log.path();
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    crate::app::ledger::with_ledger(&app.log, app.cache(), len, |ledger| {
        Ok(super::load::rows_from(
            ledger,
            &app.policy,
            path,
            files,
            overrides,
            Utc::now(),
        ))
    })
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Performs one effect. Every job is answered (`Quiet` when there is
/// nothing to tell), so that the loop's `pending` counts down.
fn perform(app: &Arc<App>, actor: &Actor, files: &[PathBuf], job: Job) -> Outcome {
    let user = actor.name.as_str();
    let done = |r: crate::app::Result<String>| {
        Action::Done(match r {
            Ok(text) => Notice { text, error: false },
            Err(e) => Notice {
                text: e.to_string(),
                error: true,
            },
        })
    };
    let action = match job.effect {
        Effect::Reload => match reload(app, files, &job.overrides) {
            Ok(l) => Action::Loaded(l.rows, l.breakers),
            Err(e) => Action::Done(Notice {
                text: e,
                error: true,
            }),
        },
        Effect::StartRun {
            plan_id,
            hash,
            dry_run,
        } => match super::runner::spawn(app, &plan_id, &hash, user, dry_run) {
            Ok(h) => {
                let action = Action::RunStarted {
                    plan_id: h.plan_id.clone(),
                    run_id: h.run_id.clone(),
                    steps: h.steps.clone(),
                    dry_run: h.dry_run,
                };
                return Outcome::Run(h, action);
            }
            Err(e) => done(Err(e)),
        },
        Effect::Stop {
            plan_id,
            run_id,
            kill,
        } => match crate::app::control::request_stop(
            &app.log,
            &plan_id,
            &run_id,
            user,
            kill,
            "stop in the TUI",
        ) {
            Ok(()) => return Outcome::Quiet,
            Err(e) => done(Err(e)),
        },
        Effect::LoadAudit { plan } => {
            Action::AuditLoaded(super::load::audit_view(app.log.path(), &app.sealer, plan))
        }
        // Answered on the terminal loop: it goes to the run's thread.
        Effect::Rollback(_) => return Outcome::Quiet,
        Effect::Approve {
            plan_id,
            hash,
            source,
        } => done(approve(
            app,
            actor,
            &plan_id,
            &hash,
            &source,
            job.unsubmitted.as_ref(),
        )),
        Effect::Reject { plan_id, reason } => {
            let req = Request {
                reason: Some(reason.clone()),
                ..Request::new(&plan_id, actor, Channel::Tui)
            };
            done(
                app.deny(&req)
                    .map(|_| format!("rejected plan `{plan_id}`: {reason}")),
            )
        }
    };
    Outcome::Action(action)
}

fn approve(
    app: &App,
    actor: &Actor,
    plan_id: &str,
    hash: &crate::core::digest::PlanHash,
    source: &Source,
    unsubmitted: Option<&ClassifiedPlan>,
) -> crate::app::Result<String> {
    // What is submitted is exactly the plan that was shown (a modified
    // plan included), never the file read again: `hash` is the one the
    // dialog pinned when it opened, and `grant` binds the approval to it
    // under the log's lock.
    if let Some(review) = unsubmitted {
        if &review.hash != hash || !matches!(source, Source::File(_)) {
            return Err(crate::app::error::refuse(
                crate::app::Reason::Other,
                format!("plan `{plan_id}` changed since it was shown: review it again"),
            ));
        }
        app.submit(review, actor, Channel::Tui)?;
    }
    let req = Request {
        binding: Binding {
            hash: Some(hash.as_str()),
            ..Binding::default()
        },
        ..Request::new(plan_id, actor, Channel::Tui)
    };
    app.grant(&req)?;
    Ok(format!("approved plan `{plan_id}` as {}", actor.name))
}

/// The job for `effect`, with what it needs of `state` now.
pub fn job(state: &super::state::AppState, effect: Effect) -> Job {
    let unsubmitted = match &effect {
        Effect::Approve { plan_id, .. } => state
            .rows
            .iter()
            .find(|r| r.id() == plan_id && r.status == RowStatus::Unsubmitted)
            .map(|r| r.review.clone()),
        _ => None,
    };
    Job {
        effect,
        overrides: state.overrides.clone(),
        unsubmitted,
    }
}
