//! Actions, effects and `update`: the only place the state changes. Keys
//! become [`Action`]s; `update` changes the state and returns [`Effect`]s,
//! which the terminal loop runs; their results come back as actions.

mod audit;
mod dialog;
mod run;

use audit::audit_update;
use dialog::dialog_update;
use run::{run_message, run_update};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::digest::PlanHash;
use crate::core::event::{CheckPhase, Status};
use crate::core::risk::RiskLevel;
use crate::core::state::PlanStatus;
use crate::exec::engine::Progress;
use crate::tui::runner::RunMsg;
use crate::tui::state::{
    AppState, AuditView, Dialog, Notice, PlanRow, RollbackPhase, RowStatus, RunView, Screen,
    Source, StepProgress,
};

/// What a key (or a finished effect) asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Up,
    Down,
    /// `Enter`: open, or confirm a dialog.
    Open,
    /// `Esc`: back, or cancel a dialog.
    Back,
    Quit,
    Approve,
    Reject,
    Execute,
    /// `d`: a dry run.
    DryRun,
    /// `s`: stop the run after its step; twice: kill the step.
    Stop,
    /// `l`: the audit view.
    AuditView,
    /// `p` on the audit view: one plan's history, or all again.
    Replay,
    /// `m`: modify a plan parameter.
    Modify,
    /// `e`: why each step of the plan has its level.
    Explain,
    Help,
    /// `/`: start typing a filter.
    Filter,
    /// `tab`: the next status filter.
    CycleStatus,
    /// A character typed into a dialog or the filter.
    Char(char),
    Backspace,
    /// The clock moved on.
    #[serde(skip)]
    Tick(DateTime<Utc>),
    /// Fresh rows from the log and the plan files.
    #[serde(skip)]
    Loaded(Vec<PlanRow>, Vec<String>),
    /// An effect finished; what to tell the user.
    #[serde(skip)]
    Done(Notice),
    /// A run started: show the Run screen.
    #[serde(skip)]
    RunStarted {
        plan_id: String,
        run_id: String,
        steps: Vec<String>,
        dry_run: bool,
    },
    /// News from the run.
    #[serde(skip)]
    Run(RunMsg),
    /// The audit view's data.
    #[serde(skip)]
    AuditLoaded(AuditView),
}

/// What the terminal loop must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Reload the rows from the log and the files.
    Reload,
    /// Record an approval on the TUI channel, submitting a plan file first.
    Approve {
        plan_id: String,
        hash: PlanHash,
        source: Source,
    },
    Reject {
        plan_id: String,
        reason: String,
    },
    /// Start a run of the plan submitted with `hash` (refused if the plan
    /// was submitted again since).
    StartRun {
        plan_id: String,
        hash: PlanHash,
        dry_run: bool,
    },
    /// Record a stop request for the run (in the audit log).
    Stop {
        plan_id: String,
        run_id: String,
        kill: bool,
    },
    /// The answer to the rollback prompt.
    Rollback(bool),
    /// Verify the log and read its latest records (one plan's, or all).
    LoadAudit {
        plan: Option<String>,
    },
}

/// Why a confirmation may not act on what its dialog showed: the plan is
/// gone, or its hash (or, when given, its level) is no longer the one
/// shown. `None` when it is exactly what was shown.
fn changed_since_shown(
    state: &AppState,
    plan_id: &str,
    hash: &PlanHash,
    level: Option<RiskLevel>,
) -> Option<String> {
    let Some(row) = state.rows.iter().find(|r| r.id() == plan_id) else {
        return Some(format!("plan `{plan_id}` is gone: nothing was done"));
    };
    if &row.review.hash != hash {
        return Some(format!(
            "plan `{plan_id}` changed since it was shown ({} → {}): nothing was done; review it again",
            crate::core::event::short(hash.as_str()),
            crate::core::event::short(row.review.hash.as_str())
        ));
    }
    if let Some(level) = level.filter(|l| *l != row.risk()) {
        return Some(format!(
            "plan `{plan_id}` was {level} when shown and is {} now: nothing was done; review it again",
            row.risk()
        ));
    }
    None
}

fn notice(state: &mut AppState, text: impl Into<String>, error: bool) {
    state.notice = Some(Notice {
        text: text.into(),
        error,
    });
}

/// Moves the selection within the visible rows.
fn step_selection(state: &mut AppState, down: bool) {
    let visible = state.visible();
    if visible.is_empty() {
        return;
    }
    let pos = visible.iter().position(|&i| i == state.selected);
    let next = match (pos, down) {
        (None, _) => 0,
        (Some(p), true) => (p + 1).min(visible.len() - 1),
        (Some(p), false) => p.saturating_sub(1),
    };
    state.selected = visible[next];
    state.step = 0;
}

/// Keeps the selection on a visible row after the filters change.
fn clamp_selection(state: &mut AppState) {
    let visible = state.visible();
    if !visible.contains(&state.selected)
        && let Some(&first) = visible.first()
    {
        state.selected = first;
        state.step = 0;
    }
}

fn can_decide(row: &PlanRow) -> Result<(), String> {
    match row.status {
        RowStatus::Unsubmitted => Ok(()),
        RowStatus::Plan(s) if s.is_open() => Ok(()),
        RowStatus::Plan(s) => Err(format!(
            "plan `{}` is {}: it takes no more decisions",
            row.id(),
            s.as_str()
        )),
    }
}

pub fn update(state: &mut AppState, action: Action) -> Vec<Effect> {
    match action {
        Action::Tick(now) => {
            state.now = now;
            return Vec::new();
        }
        Action::Loaded(rows, breakers) => {
            let keep = state.current().map(|r| r.id().to_owned());
            state.rows = rows;
            state.breakers = breakers;
            state.selected = keep
                .and_then(|id| state.rows.iter().position(|r| r.id() == id))
                .unwrap_or(0);
            clamp_selection(state);
            return Vec::new();
        }
        Action::Done(n) => {
            state.notice = Some(n);
            return vec![Effect::Reload];
        }
        Action::RunStarted {
            plan_id,
            run_id,
            steps,
            dry_run,
        } => {
            state.run = Some(RunView::new(plan_id, run_id, steps, dry_run, state.now));
            state.screen = Screen::Run;
            state.dialog = None;
            return vec![Effect::Reload];
        }
        Action::Run(msg) => {
            run_message(state, msg);
            return Vec::new();
        }
        Action::AuditLoaded(view) => {
            let keep = state.audit.as_ref().map(|a| a.kinds);
            let mut view = view;
            if let Some(k) = keep {
                view.kinds = k;
                view.selected = view.visible().len().saturating_sub(1);
            }
            state.audit = Some(view);
            state.screen = Screen::Audit;
            return Vec::new();
        }
        _ => {}
    }
    if state.screen == Screen::Audit && state.dialog.is_none() {
        return audit_update(state, action);
    }
    if state.screen == Screen::Run && state.dialog.is_none() {
        return run_update(state, action);
    }
    if let Some(dialog) = state.dialog.take() {
        return dialog_update(state, dialog, action);
    }
    if state.filtering {
        match action {
            Action::Char(c) => state.filter.push(c),
            Action::Backspace => {
                state.filter.pop();
            }
            Action::Open | Action::Back => state.filtering = false,
            _ => {}
        }
        clamp_selection(state);
        return Vec::new();
    }
    state.notice = None;
    match action {
        Action::Quit => state.quit = true,
        Action::Up | Action::Down => match state.screen {
            Screen::Plans => step_selection(state, matches!(action, Action::Down)),
            Screen::Run | Screen::Audit => {}
            Screen::Detail => {
                let steps = state.current().map_or(0, |r| r.review.plan.steps.len());
                state.step = if matches!(action, Action::Down) {
                    (state.step + 1).min(steps.saturating_sub(1))
                } else {
                    state.step.saturating_sub(1)
                };
            }
        },
        Action::Open => {
            if state.current().is_some() {
                state.screen = Screen::Detail;
            }
        }
        Action::Back => state.screen = Screen::Plans,
        Action::Help => state.dialog = Some(Dialog::Help),
        Action::Filter => state.filtering = true,
        Action::CycleStatus => {
            state.status_filter = state.status_filter.next();
            clamp_selection(state);
        }
        Action::Approve => {
            let Some(row) = state.current() else {
                return Vec::new();
            };
            match can_decide(row) {
                Ok(()) => {
                    state.dialog = Some(Dialog::Approve {
                        plan_id: row.id().to_owned(),
                        hash: row.review.hash.clone(),
                        level: row.risk(),
                        typed: String::new(),
                    });
                }
                Err(e) => notice(state, e, true),
            }
        }
        Action::Reject => {
            let Some(row) = state.current() else {
                return Vec::new();
            };
            if row.status == RowStatus::Unsubmitted {
                let id = row.id().to_owned();
                notice(
                    state,
                    format!("plan `{id}` was never submitted: there is nothing to reject"),
                    true,
                );
            } else {
                match can_decide(row) {
                    Ok(()) => {
                        state.dialog = Some(Dialog::Reject {
                            plan_id: row.id().to_owned(),
                            reason: String::new(),
                        });
                    }
                    Err(e) => notice(state, e, true),
                }
            }
        }
        Action::Execute => {
            let Some(row) = state.current() else {
                return Vec::new();
            };
            let id = row.id().to_owned();
            if row.status == RowStatus::Plan(PlanStatus::Approved) {
                state.dialog = Some(Dialog::ConfirmRun {
                    plan_id: id,
                    hash: row.review.hash.clone(),
                });
            } else {
                let why = row
                    .missing
                    .clone()
                    .unwrap_or_else(|| format!("it is {}", row.status.label()));
                notice(state, format!("x: plan `{id}` may not run: {why}"), true);
            }
        }
        Action::DryRun => {
            let Some(row) = state.current() else {
                return Vec::new();
            };
            let id = row.id().to_owned();
            match row.status {
                RowStatus::Plan(s) if s.is_open() => {
                    return vec![Effect::StartRun {
                        plan_id: id,
                        hash: row.review.hash.clone(),
                        dry_run: true,
                    }];
                }
                RowStatus::Unsubmitted => notice(
                    state,
                    format!("plan `{id}` was never submitted: approving it submits it"),
                    true,
                ),
                RowStatus::Plan(s) => notice(state, format!("plan `{id}` is {}", s.as_str()), true),
            }
        }
        Action::Stop => notice(state, "s stops a run: there is none on this screen", true),
        Action::AuditView => {
            let plan = match state.screen {
                Screen::Detail => state.current().map(|r| r.id().to_owned()),
                _ => None,
            };
            return vec![Effect::LoadAudit { plan }];
        }
        Action::Replay => {}
        Action::Explain => {
            if let Some(row) = state.current() {
                state.dialog = Some(Dialog::Explain {
                    plan_id: row.id().to_owned(),
                });
            }
        }
        Action::Modify => {
            let Some(row) = state.current() else {
                return Vec::new();
            };
            let id = row.id().to_owned();
            if !matches!(row.source, Source::File(_)) {
                notice(
                    state,
                    format!("plan `{id}` has no file here: modify edits a plan file's parameters"),
                    true,
                );
            } else if row.review.plan.params.is_empty() {
                notice(
                    state,
                    format!("plan `{id}` has no parameters to modify"),
                    true,
                );
            } else {
                // Any plan, closed ones included: the result is a new plan.
                let params: Vec<(String, String)> = row
                    .review
                    .plan
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let value = params[0].1.clone();
                state.dialog = Some(Dialog::Modify {
                    plan_id: id,
                    params,
                    index: 0,
                    value,
                });
            }
        }
        Action::Char(_) | Action::Backspace => {}
        Action::Tick(_)
        | Action::Loaded(..)
        | Action::Done(_)
        | Action::RunStarted { .. }
        | Action::Run(_)
        | Action::AuditLoaded(_) => {}
    }
    Vec::new()
}
