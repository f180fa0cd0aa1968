//! The Run screen: a run's steps as they go, and the rollback offer.

use super::*;

pub(super) fn run_screen(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    use crate::tui::state::{RollbackPhase, StepProgress};
    let Some(run) = &state.run else {
        return;
    };
    let total = run.steps.len().max(1);
    let steps_height = (run.steps.len() as u16 + 1).min(area.height / 2).max(2);
    let [head, gauge, steps, output, tail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(steps_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let elapsed = run.finished.map_or_else(
        || (state.now - run.started).num_milliseconds() as f64 / 1000.0,
        |(_, s)| s,
    );
    frame.render_widget(
        Paragraph::new(format!(
            "{}run {} · plan {} · {:.1}s",
            if run.dry_run { "dry " } else { "" },
            run.run_id,
            run.plan_id,
            elapsed.max(0.0)
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let done = run.done();
    let current = run
        .steps
        .iter()
        .position(|(_, p)| matches!(p, StepProgress::Running { .. }))
        .map_or(done, |i| i + 1);
    frame.render_widget(
        ratatui::widgets::Gauge::default()
            .ratio(done as f64 / total as f64)
            .label(format!("step {}/{}", current.min(total), run.steps.len()))
            .gauge_style(if theme.color {
                Style::new().fg(Color::Cyan)
            } else {
                Style::new()
            }),
        gauge,
    );
    let frame_no = (state.now.timestamp_subsec_millis() / 100) as usize;
    let lines: Vec<Line<'_>> = run
        .steps
        .iter()
        .enumerate()
        .map(|(i, (name, p))| {
            let (icon, time) = match p {
                StepProgress::Pending => ("·".to_owned(), String::new()),
                StepProgress::Running { since } => (
                    crate::app::present::SPINNER[frame_no % crate::app::present::SPINNER.len()]
                        .to_string(),
                    format!(
                        "{:.1}s",
                        ((state.now - *since).num_milliseconds().max(0) as f64) / 1000.0
                    ),
                ),
                StepProgress::Done { status, seconds } => (
                    status.mark().to_owned(),
                    format!("{seconds:.1}s {}", status.as_str()),
                ),
            };
            Line::from(format!("{icon} {:>2}. {}  {time}", i + 1, shown(name)))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), steps);
    let height = output.height.saturating_sub(1) as usize;
    let end = run.output.len().saturating_sub(run.scroll);
    let start = end.saturating_sub(height);
    let out_lines: Vec<Line<'_>> = run.output[start..end]
        .iter()
        .map(|l| Line::from(crate::core::event::printable(l).into_owned()))
        .collect();
    frame.render_widget(
        Paragraph::new(out_lines).block(Block::new().borders(Borders::TOP).title(" Output ")),
        output,
    );
    let status_line = match (run.finished, run.rollback) {
        (None, _) => Line::from(if run.stops > 0 {
            "stopping…"
        } else {
            "running…"
        }),
        (Some((s, _)), RollbackPhase::NotNeeded) => {
            Line::from(format!("{} run {}", s.mark(), s.as_str()))
        }
        (Some((s, _)), RollbackPhase::Offered) => Line::styled(
            format!("run {}: roll back? Enter yes · Esc no", s.as_str()),
            theme.error(),
        ),
        (Some((s, _)), RollbackPhase::Declined) => Line::from(format!(
            "run {}; rollback declined (`opsgate rollback {}` runs it later)",
            s.as_str(),
            run.run_id
        )),
        (Some((s, _)), RollbackPhase::Running) => {
            Line::from(format!("run {}; rolling back…", s.as_str()))
        }
        (Some((s, _)), RollbackPhase::Done(r)) => Line::styled(
            format!("run {}; rollback {}", s.as_str(), r.as_str()),
            if r == crate::core::event::Status::Succeeded {
                Style::new()
            } else {
                theme.error()
            },
        ),
    };
    frame.render_widget(Paragraph::new(status_line), tail);
}
