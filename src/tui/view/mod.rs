//! `view`: draws the state, changes nothing. Tables draw only the rows
//! that fit.

mod audit;
mod dialog;
mod plans;
mod run;

use audit::audit_screen;
use dialog::dialog;
use plans::{detail, explain, plans};
use run::run_screen;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use crate::core::event::short;
use crate::core::plan::PlanRollback;
use crate::core::risk::{Classification, RiskLevel};
use crate::tui::state::{AppState, Dialog, PlanRow, RowStatus, Screen};

/// Styles, or none at all under `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn risk(self, level: RiskLevel) -> Style {
        if !self.color {
            return match level {
                RiskLevel::Critical => Style::new().add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
        }
        match level {
            RiskLevel::Low => Style::new().fg(Color::Green),
            RiskLevel::Medium => Style::new().fg(Color::Yellow),
            RiskLevel::High => Style::new().fg(Color::Red),
            RiskLevel::Critical => Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        }
    }

    fn error(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

fn badge(level: RiskLevel) -> String {
    match level {
        RiskLevel::Critical => "⛔ CRITICAL".into(),
        other => other.to_string(),
    }
}

fn age(state: &AppState, row: &PlanRow) -> String {
    row.submitted_at
        .map_or_else(|| "-".into(), |at| crate::app::present::age(at, state.now))
}

fn approvals(row: &PlanRow) -> String {
    if row.status == RowStatus::Unsubmitted {
        return format!("0/{}", row.needed);
    }
    format!("{}/{}", row.approvers.len(), row.needed)
}

/// Draws the whole UI.
pub fn view(state: &AppState, theme: Theme, frame: &mut Frame<'_>) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(frame.area());
    let title = format!(
        " opsgate · {} · policy {} · {} plan(s)",
        state.user,
        short(&state.policy_hash),
        state.rows.len()
    );
    let mut spans = vec![Span::styled(
        title,
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for b in &state.breakers {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(format!("⚠ {b}"), theme.error()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), top);
    match state.screen {
        Screen::Plans => plans(state, theme, frame, body),
        Screen::Detail => detail(state, theme, frame, body),
        Screen::Run => run_screen(state, theme, frame, body),
        Screen::Audit => audit_screen(state, theme, frame, body),
    }
    footer(state, theme, frame, bottom);
    if let Some(d) = &state.dialog {
        dialog(state, theme, d, frame);
    }
    sweep(frame.buffer_mut());
}

/// The last line of defence: no cell may send a control or bidi character
/// to the terminal, whatever text reached it. The texts that matter
/// (commands, names) are already escaped where they are drawn; anything
/// else is replaced by `�`.
fn sweep(buf: &mut ratatui::buffer::Buffer) {
    for cell in &mut buf.content {
        if cell
            .symbol()
            .chars()
            .any(crate::core::event::is_hidden_char)
        {
            cell.set_symbol("�");
        }
    }
}

/// A plan's text (a title, a name, a reason) as drawn: control and bidi
/// characters shown escaped.
fn shown(s: &str) -> String {
    crate::core::event::printable(s).into_owned()
}

fn footer(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    let [notice, keys] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let text = if state.filtering {
        Line::from(format!(
            "filter: {}▏ (Enter to keep, Esc to stop)",
            state.filter
        ))
    } else if let Some(n) = &state.notice {
        Line::styled(
            n.text.clone(),
            if n.error { theme.error() } else { Style::new() },
        )
    } else {
        Line::from("")
    };
    frame.render_widget(Paragraph::new(text), notice);
    let keys_text = match state.screen {
        Screen::Plans => {
            "↑↓ move  Enter open  a approve  r reject  x execute  d dry run  m modify  l audit  / filter  tab status  ? help  q quit"
        }
        Screen::Detail => {
            "↑↓ step  a approve  r reject  x execute  d dry run  m modify  l audit  Esc back  ? help  q quit"
        }
        Screen::Run => "s stop (twice: kill)  ↑↓ scroll output  Esc back when done",
        Screen::Audit => "↑↓ move  p replay this plan / all plans  tab kinds  Esc back  q quit",
    };
    frame.render_widget(Paragraph::new(keys_text).style(theme.dim()), keys);
}

/// The rows of a table that fit `area` (less its border and header), placed
/// so that `selected` shows: the first index and how many. Only those rows
/// are built and drawn.
fn window(len: usize, selected: Option<usize>, area: Rect) -> (usize, usize) {
    let fit = usize::from(area.height.saturating_sub(2)).max(1);
    let start = (selected.unwrap_or(0) + 1).saturating_sub(fit).min(len);
    (start, fit.min(len - start))
}
