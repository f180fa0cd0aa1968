//! The terminal loop: the only place with crossterm events. It draws,
//! maps keys to actions, runs `update`, runs the effects, and follows the
//! audit log so decisions made elsewhere appear within a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::runner::RunHandle;
use super::state::{AppState, Dialog, Notice, Source};
use super::update::{Action, Effect, update};
use super::view::{Theme, view};
use crate::audit::{AuditLog, Channel, Sealer};
use crate::cli::error::CliError;
use crate::core::policy::{LoadedPolicy, TuiKeys};

/// What the TUI needs to start.
#[derive(Debug)]
pub struct Options {
    pub user: String,
    pub files: Vec<PathBuf>,
    pub log_path: PathBuf,
    pub sealer: Sealer,
    pub log: AuditLog,
    pub redactor: crate::core::redact::Redactor,
    pub policy: LoadedPolicy,
}

/// Maps a key to an action; while a text dialog or the filter is open,
/// characters are text.
pub fn key_action(state: &AppState, keys: &TuiKeys, key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    let typing = state.filtering
        || matches!(
            state.dialog,
            Some(Dialog::Approve { .. } | Dialog::Reject { .. } | Dialog::Modify { .. })
        );
    Some(match key.code {
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Back,
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::Tab => Action::CycleStatus,
        KeyCode::Char(c) if typing => Action::Char(c),
        KeyCode::Char('k') => Action::Up,
        KeyCode::Char('j') => Action::Down,
        KeyCode::Char(c) => {
            let name = keys.bindings().into_iter().find(|(_, k)| *k == c)?.0;
            match name {
                "approve" => Action::Approve,
                "reject" => Action::Reject,
                "explain" => Action::Explain,
                "modify" => Action::Modify,
                "dry_run" => Action::DryRun,
                "execute" => Action::Execute,
                "stop" => Action::Stop,
                "audit" => Action::AuditView,
                "replay" => Action::Replay,
                "filter" => Action::Filter,
                "help" => Action::Help,
                "quit" => Action::Quit,
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Runs the TUI until the user quits. The terminal is restored on quit,
/// on Ctrl-C and on panic.
pub fn run(opts: Options) -> Result<(), CliError> {
    let now = Utc::now();
    let super::load::Loaded {
        rows: initial,
        problems,
        breakers,
    } = super::load::load_all(
        &opts.policy,
        &opts.log_path,
        &opts.sealer,
        opts.log.mark(),
        &opts.files,
        &Default::default(),
        now,
    )
    .map_err(CliError::Refused)?;
    let mut state = AppState::new(
        opts.user.clone(),
        opts.policy.hash.to_string(),
        initial,
        now,
    );
    state.breakers = breakers;
    if let Some(p) = problems.first() {
        state.notice = Some(Notice {
            text: p.clone(),
            error: true,
        });
    }
    let theme = Theme {
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let mut terminal = ratatui::try_init().map_err(CliError::Output)?;
    let result = event_loop(&mut terminal, &mut state, theme, &opts);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut AppState,
    theme: Theme,
    opts: &Options,
) -> Result<(), CliError> {
    let mut log_len = std::fs::metadata(&opts.log_path).map_or(0, |m| m.len());
    let mut last_tick = Instant::now();
    let mut run: Option<RunHandle> = None;
    while !state.quit {
        terminal
            .draw(|f| view(state, theme, f))
            .map_err(CliError::Output)?;
        let mut actions = Vec::new();
        if event::poll(Duration::from_millis(100)).map_err(CliError::Output)? {
            match event::read().map_err(CliError::Output)? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    actions.extend(key_action(state, &opts.policy.policy.tui.keys, k));
                }
                _ => {} // a resize redraws on the next pass
            }
        }
        if let Some(h) = &run {
            while let Ok(msg) = h.rx.try_recv() {
                actions.push(Action::Run(msg));
            }
        }
        let tick = if run.is_some() { 100 } else { 500 };
        if last_tick.elapsed() >= Duration::from_millis(tick) {
            last_tick = Instant::now();
            actions.push(Action::Tick(Utc::now()));
            // Another process appended: reload.
            let len = std::fs::metadata(&opts.log_path).map_or(0, |m| m.len());
            if len != log_len {
                log_len = len;
                let mut effects = vec![Effect::Reload];
                if let Some(a) = &state.audit {
                    effects.push(Effect::LoadAudit {
                        plan: a.plan.clone(),
                    });
                }
                run_effects(state, opts, &mut run, effects);
            }
        }
        for a in actions {
            let effects = update(state, a);
            run_effects(state, opts, &mut run, effects);
        }
        if state.run.is_none() {
            run = None;
        }
    }
    Ok(())
}

/// Runs effects until none are left; their results go back through
/// `update`.
fn run_effects(
    state: &mut AppState,
    opts: &Options,
    run: &mut Option<RunHandle>,
    mut effects: Vec<Effect>,
) {
    while let Some(effect) = effects.pop() {
        if let Some(action) = perform(state, opts, run, effect) {
            effects.extend(update(state, action));
        }
    }
}

fn perform(
    state: &AppState,
    opts: &Options,
    run: &mut Option<RunHandle>,
    effect: Effect,
) -> Option<Action> {
    let done = |r: Result<String, CliError>| {
        Action::Done(match r {
            Ok(text) => Notice { text, error: false },
            Err(e) => Notice {
                text: e.to_string(),
                error: true,
            },
        })
    };
    Some(match effect {
        Effect::Reload => match super::load::load_all(
            &opts.policy,
            &opts.log_path,
            &opts.sealer,
            opts.log.mark(),
            &opts.files,
            &state.overrides,
            Utc::now(),
        ) {
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
        } => match super::runner::spawn(opts, &plan_id, &hash, &state.user, dry_run) {
            Ok(h) => {
                let action = Action::RunStarted {
                    plan_id: h.plan_id.clone(),
                    run_id: h.run_id.clone(),
                    steps: h.steps.clone(),
                    dry_run: h.dry_run,
                };
                *run = Some(h);
                action
            }
            Err(e) => done(Err(e)),
        },
        Effect::Stop {
            plan_id,
            run_id,
            kill,
        } => {
            let recorded = opts.log.append(crate::audit::Event::RunCancelled {
                plan_id,
                run_id,
                user: state.user.clone(),
                kill,
                reason: Some("stop in the TUI".into()),
            });
            match recorded {
                Ok(_) => return None,
                Err(e) => done(Err(e.into())),
            }
        }
        Effect::LoadAudit { plan } => {
            Action::AuditLoaded(super::load::audit_view(&opts.log_path, &opts.sealer, plan))
        }
        Effect::Rollback(yes) => {
            if let Some(h) = run {
                let _ = h.rollback.try_send(yes);
            }
            return None;
        }
        Effect::Approve {
            plan_id,
            hash,
            source,
        } => done(approve(state, opts, &plan_id, &hash, &source)),
        Effect::Reject { plan_id, reason } => done(
            crate::cli::approve_cmd::deny(
                &opts.log,
                None,
                &opts.policy,
                &plan_id,
                &state.user,
                Channel::Tui,
                &Default::default(),
                &reason,
                Default::default(),
            )
            .map(|_| format!("rejected plan `{plan_id}`: {reason}")),
        ),
    })
}

fn approve(
    state: &AppState,
    opts: &Options,
    plan_id: &str,
    hash: &crate::core::digest::PlanHash,
    source: &Source,
) -> Result<String, CliError> {
    // What is submitted is exactly the plan that was shown (a modified
    // plan included), never the file read again: `hash` is the one the
    // dialog pinned when it opened, and `grant` binds the approval to it
    // under the log's lock.
    let row = state.rows.iter().find(|r| r.id() == plan_id);
    if let Some(row) = row.filter(|r| r.status == super::state::RowStatus::Unsubmitted) {
        if &row.review.hash != hash || !matches!(source, Source::File(_)) {
            return Err(CliError::Refused(format!(
                "plan `{plan_id}` changed since it was shown: review it again"
            )));
        }
        crate::cli::submit_cmd::record(
            &opts.log,
            &opts.policy,
            &row.review,
            (&state.user, Channel::Tui),
        )?;
    }
    crate::cli::approve_cmd::grant(
        &opts.log,
        None,
        &opts.policy,
        plan_id,
        &state.user,
        Channel::Tui,
        &crate::cli::approve_cmd::Binding {
            hash: Some(hash.as_str()),
            ..Default::default()
        },
        None,
        Default::default(),
    )?;
    Ok(format!("approved plan `{plan_id}` as {}", state.user))
}
