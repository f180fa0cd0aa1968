//! The terminal loop: the only place with crossterm events. It draws,
//! maps keys to actions, runs `update`, runs the effects, and follows the
//! audit log so decisions made elsewhere appear within a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use std::sync::Arc;

use super::effects::{Outcome, Worker};
use super::runner::RunHandle;
use super::state::{AppState, Dialog, Notice};
use super::update::{Action, Effect, update};
use super::view::{Theme, view};
use crate::app::App;
use crate::core::policy::TuiKeys;

/// What the TUI needs to start: who uses it, the plan files it shows, and
/// the application, held for as long as the TUI runs (its backends'
/// circuit breakers with it).
#[derive(Debug)]
pub struct Options {
    pub user: crate::core::identity::Actor,
    pub files: Vec<PathBuf>,
    pub app: App,
}

/// Why the TUI stopped.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("{0}")]
    Terminal(#[from] std::io::Error),
    /// The plans could not be loaded.
    #[error("{0}")]
    Load(String),
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

/// Where the terminal loop's events come from: the terminal, or a bench.
pub trait Input {
    /// The next event, waiting at most `wait`; `None` when none came.
    fn next(&mut self, wait: Duration) -> std::io::Result<Option<Event>>;
}

/// The terminal's own events (crossterm).
#[derive(Debug, Clone, Copy)]
pub struct TerminalInput;

impl Input for TerminalInput {
    fn next(&mut self, wait: Duration) -> std::io::Result<Option<Event>> {
        if event::poll(wait)? {
            event::read().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Runs the TUI until the user quits. The terminal is restored on quit,
/// on Ctrl-C and on panic.
pub fn run(opts: Options) -> Result<(), TuiError> {
    let mut looped = Loop::start(opts)?;
    let mut terminal = ratatui::try_init()?;
    let result = looped.run(&mut terminal, &mut TerminalInput, |_| {});
    ratatui::restore();
    result
}

/// The terminal loop, ready to run on any backend and input.
#[derive(Debug)]
pub struct Loop {
    pub state: AppState,
    app: Arc<App>,
    worker: Worker,
    theme: Theme,
}

impl Loop {
    /// Loads the rows (through the application's ledger cache) and starts
    /// the worker.
    pub fn start(opts: Options) -> Result<Self, TuiError> {
        let now = Utc::now();
        let Options { user, files, app } = opts;
        let super::load::Loaded {
            rows: initial,
            problems,
            breakers,
        } = super::effects::reload(&app, &files, &Default::default()).map_err(TuiError::Load)?;
        let mut state = AppState::new(user.name.clone(), app.policy.hash.to_string(), initial, now);
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
        let app = Arc::new(app);
        let worker = Worker::start(Arc::clone(&app), user, files);
        Ok(Loop {
            state,
            app,
            worker,
            theme,
        })
    }

    /// Draws, reads events from `input`, updates and hands the effects to
    /// the worker until the user quits; `drawn` is called after each frame.
    pub fn run<B: ratatui::backend::Backend>(
        &mut self,
        terminal: &mut ratatui::Terminal<B>,
        input: &mut impl Input,
        mut drawn: impl FnMut(&AppState),
    ) -> Result<(), TuiError>
    where
        B::Error: std::fmt::Display,
    {
        let terminal_error = |e: B::Error| TuiError::Terminal(std::io::Error::other(e.to_string()));
        let Loop {
            state,
            app,
            worker,
            theme,
        } = self;
        let theme = *theme;
        let log_path = app.log.path();
        let mut log_len = std::fs::metadata(log_path).map_or(0, |m| m.len());
        let mut last_tick = Instant::now();
        let mut run: Option<RunHandle> = None;
        while !state.quit {
            terminal
                .draw(|f| view(state, theme, f))
                .map_err(terminal_error)?;
            drawn(state);
            let mut actions = Vec::new();
            // Waiting on the worker or a run: look again soon. Idle, a
            // frame is still drawn every 50 ms (the clock, ages, spinners).
            let wait = if worker.pending > 0 || run.is_some() {
                20
            } else {
                50
            };
            match input.next(Duration::from_millis(wait))? {
                Some(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    actions.extend(key_action(state, &app.policy.policy.tui.keys, k));
                }
                _ => {} // a resize redraws on the next pass
            }
            for out in worker.ready() {
                match out {
                    Outcome::Action(a) => actions.push(a),
                    Outcome::Run(h, a) => {
                        run = Some(h);
                        actions.push(a);
                    }
                    Outcome::Quiet => {}
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
            }
            // Another process (or host, through the store's replica)
            // appended: reload, looked at on every pass (a `stat`), once the
            // worker is idle, so reloads never queue up behind each other.
            let len = std::fs::metadata(log_path).map_or(0, |m| m.len());
            if len != log_len && worker.pending == 0 {
                log_len = len;
                let mut effects = vec![Effect::Reload];
                if let Some(a) = &state.audit {
                    effects.push(Effect::LoadAudit {
                        plan: a.plan.clone(),
                    });
                }
                dispatch(state, worker, run.as_ref(), effects);
            }
            for a in actions {
                let effects = update(state, a);
                dispatch(state, worker, run.as_ref(), effects);
            }
            if state.run.is_none() {
                run = None;
            }
        }
        Ok(())
    }
}

/// Hands effects to the worker, in order; the answer to a rollback offer
/// goes straight to the run's thread.
fn dispatch(state: &AppState, worker: &mut Worker, run: Option<&RunHandle>, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Rollback(yes) => {
                if let Some(h) = run {
                    let _ = h.rollback.try_send(yes);
                }
            }
            effect => worker.give(super::effects::job(state, effect)),
        }
    }
}
