//! The Audit screen: the log's records, verified.

use super::*;

pub(super) fn audit_screen(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    use crate::tui::state::Banner;
    let Some(audit) = &state.audit else {
        return;
    };
    let [banner, table_area, charts] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(7),
    ])
    .areas(area);
    let banner_line = match &audit.banner {
        Banner::Intact { events, seq, hash } => Line::styled(
            format!("chain intact · {events} event(s) · head {seq} {hash}…"),
            if theme.color {
                Style::new().fg(Color::Green)
            } else {
                Style::new()
            },
        ),
        Banner::Empty => Line::from("the audit log is empty"),
        Banner::Broken(m) => Line::styled(format!("BROKEN at {m}"), theme.error()),
    };
    frame.render_widget(Paragraph::new(banner_line), banner);

    let visible = audit.visible();
    let (start, count) = window(visible.len(), Some(audit.selected), table_area);
    let rows: Vec<Row<'_>> = visible
        .iter()
        .skip(start)
        .take(count)
        .map(|e| {
            Row::new(vec![
                Cell::from(e.ts.format("%m-%d %H:%M:%S").to_string()),
                Cell::from(e.seq.to_string()),
                Cell::from(e.kind.clone()),
                Cell::from(e.plan_id.clone()),
                Cell::from(e.step.map_or(String::new(), |s| s.to_string())),
                Cell::from(e.status.clone()),
                Cell::from(e.who.clone()),
                Cell::from(e.duration.map_or(String::new(), |d| format!("{d:.1}s"))),
            ])
        })
        .collect();
    let title = format!(
        " Audit · {} · {} ",
        audit.kinds.label(),
        audit
            .plan
            .as_ref()
            .map_or_else(|| "all plans".to_owned(), |p| format!("replay of {p}")),
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(22),
            Constraint::Length(20),
            Constraint::Length(4),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Min(6),
        ],
    )
    .header(
        Row::new([
            "TIME", "SEQ", "EVENT", "PLAN", "STEP", "STATUS", "WHO", "DUR",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(theme.selected())
    .block(Block::new().borders(Borders::TOP).title(title));
    let mut ts = TableState::default()
        .with_selected((!visible.is_empty()).then_some(audit.selected - start));
    frame.render_stateful_widget(table, table_area, &mut ts);

    let [bars_area, spark_area] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(charts);
    // Step durations of the last run of the plan in focus.
    let focus = audit
        .plan
        .clone()
        .or_else(|| visible.get(audit.selected).map(|e| e.plan_id.clone()))
        .unwrap_or_default();
    let last_run = audit
        .entries
        .iter()
        .rev()
        .find(|e| e.plan_id == focus && e.kind == "step_finished")
        .map(|e| e.run_id.clone());
    let mut steps: Vec<(String, u64)> = audit
        .entries
        .iter()
        .filter(|e| Some(&e.run_id) == last_run.as_ref() && e.kind == "step_finished")
        .map(|e| {
            (
                e.step.map_or("?".into(), |s| s.to_string()),
                (e.duration.unwrap_or_default() * 1000.0) as u64,
            )
        })
        .collect();
    steps.truncate(24);
    let bars: Vec<(&str, u64)> = steps.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    frame.render_widget(
        ratatui::widgets::BarChart::default()
            .block(Block::new().borders(Borders::TOP).title(format!(
                " step ms, last run of {} ",
                if focus.is_empty() { "-" } else { &focus }
            )))
            .data(bars.as_slice())
            .bar_width(3)
            .bar_gap(1),
        bars_area,
    );
    // Runs started per day, the last 14 days.
    let today = state.now.date_naive();
    let per_day: Vec<u64> = (0..14)
        .rev()
        .map(|ago| {
            let day = today - chrono::Days::new(ago);
            audit
                .entries
                .iter()
                .filter(|e| e.kind == "run_started" && e.ts.date_naive() == day)
                .count() as u64
        })
        .collect();
    frame.render_widget(
        ratatui::widgets::Sparkline::default()
            .block(Block::new().borders(Borders::TOP).title(format!(
                " runs a day, 14 d ({} today) ",
                per_day.last().copied().unwrap_or_default()
            )))
            .data(&per_day),
        spark_area,
    );
}
