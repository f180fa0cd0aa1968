//! `view`: draws the state, changes nothing. Tables draw only the rows
//! that fit.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::state::{AppState, Dialog, PlanRow, RowStatus, Screen};
use crate::core::event::short;
use crate::core::plan::PlanRollback;
use crate::core::risk::{Classification, RiskLevel};

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

fn plans(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    let visible = state.visible();
    let selected = visible.iter().position(|&i| i == state.selected);
    let (start, count) = window(visible.len(), selected, area);
    let rows: Vec<Row<'_>> = visible
        .iter()
        .skip(start)
        .take(count)
        .map(|&i| {
            let r = &state.rows[i];
            Row::new(vec![
                Cell::from(r.status.label()),
                Cell::from(badge(r.risk())).style(theme.risk(r.risk())),
                Cell::from(r.id().to_owned()),
                Cell::from(approvals(r)),
                Cell::from(age(state, r)),
                Cell::from(shown(&r.review.plan.title)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Length(22),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["STATUS", "RISK", "PLAN", "APPR", "AGE", "TITLE"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(theme.selected())
    .block(Block::new().borders(Borders::TOP).title(format!(
        " Plans · filter: {} · {}{} ",
        state.status_filter.label(),
        if state.filter.is_empty() { "" } else { "/" },
        state.filter
    )));
    let mut ts = TableState::default().with_selected(selected.map(|s| s - start));
    frame.render_stateful_widget(table, area, &mut ts);
}

fn detail(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    let Some(row) = state.current() else {
        return;
    };
    let plan = &row.review.plan;
    let [head, steps, below] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(4),
        Constraint::Min(6),
    ])
    .areas(area);
    let target = [
        plan.target
            .kube_context
            .as_deref()
            .map(|c| format!("context {c}")),
        plan.target
            .namespace
            .as_deref()
            .map(|n| format!("namespace {n}")),
        plan.target
            .aws_region
            .as_deref()
            .map(|r| format!("region {r}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let who = if row.approvers.is_empty() {
        String::new()
    } else {
        format!(": {}", row.approvers.join(", "))
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(plan.id.clone(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw("  "),
            Span::styled(badge(row.risk()), theme.risk(row.risk())),
            Span::raw(format!(
                "{}  {}  {}",
                row.review
                    .risk_set_by_rollback
                    .as_deref()
                    .map(|by| format!(" (set by {by})"))
                    .unwrap_or_default(),
                row.status.label(),
                shown(&plan.title)
            )),
        ]),
        Line::from(format!(
            "author {}  target {}  est. {}",
            shown(plan.author.as_deref().unwrap_or("-")),
            if target.is_empty() {
                "-".into()
            } else {
                target
            },
            plan.estimated_time.map_or("-".into(), |d| d.to_string()),
        )),
        Line::from(format!(
            "plan {}  policy {}",
            short(row.review.hash.as_str()),
            short(&state.policy_hash)
        )),
        Line::from(format!("approvals {}{who}", approvals(row))),
        Line::styled(row.missing.clone().unwrap_or_default(), theme.dim()),
    ];
    frame.render_widget(Paragraph::new(lines), head);

    let step = state.step.min(plan.steps.len().saturating_sub(1));
    let (start, count) = window(plan.steps.len(), Some(step), steps);
    let step_rows: Vec<Row<'_>> = plan
        .steps
        .iter()
        .zip(&row.review.steps)
        .enumerate()
        .skip(start)
        .take(count)
        .map(|(i, (s, r))| {
            Row::new(vec![
                Cell::from(format!("{}", i + 1)),
                Cell::from(shown(&s.name)),
                Cell::from(badge(r.action.risk)).style(theme.risk(r.action.risk)),
                Cell::from(s.timeout.to_string()),
                Cell::from(format!("{}/{}", s.pre_checks.len(), s.post_checks.len())),
                Cell::from(first_line(&s.action.command_line())),
            ])
        })
        .collect();
    let table = Table::new(
        step_rows,
        [
            Constraint::Length(3),
            Constraint::Length(20),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["#", "STEP", "RISK", "TIMEOUT", "CHECKS", "COMMAND"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(theme.selected())
    .block(Block::new().borders(Borders::TOP).title(" Steps "));
    let mut ts = TableState::default().with_selected(Some(step - start));
    frame.render_stateful_widget(table, steps, &mut ts);

    let mut lines: Vec<Line<'_>> = Vec::new();
    if let (Some(s), Some(r)) = (plan.steps.get(state.step), row.review.steps.get(state.step)) {
        // Every line of the command, not only the first: the list shows
        // one line, the detail all of them.
        for (i, l) in crate::core::event::printable_lines(&s.action.command_line()).enumerate() {
            let lead = if i == 0 { s.action.lead() } else { "  " };
            lines.push(Line::from(format!("{lead}{l}")));
        }
        explain(&mut lines, &r.action, theme);
        for c in &s.pre_checks {
            lines.push(Line::from(format!(
                "pre-check  {}: {}",
                shown(&c.name),
                first_line(&c.action.command_line())
            )));
        }
        for c in &s.post_checks {
            lines.push(Line::from(format!(
                "post-check {}: {} (×{})",
                shown(&c.name),
                first_line(&c.action.command_line()),
                c.retry.attempts
            )));
        }
        lines.push(Line::from(match &s.rollback {
            Some(a) => format!("rollback   {}", first_line(&a.command_line())),
            None => "rollback   (none for this step)".into(),
        }));
    }
    lines.push(Line::from(match &plan.rollback {
        PlanRollback::Steps { method, steps, .. } => format!(
            "plan rollback: {} ({} step(s))",
            shown(method.as_deref().unwrap_or("-")),
            steps.len()
        ),
        PlanRollback::None { reason } => format!("plan rollback: none: {}", shown(reason)),
        PlanRollback::Absent => "plan rollback: per step only".into(),
    }));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new()
                .borders(Borders::TOP)
                .title(" Step · explain · rollback "),
        ),
        below,
    );
}

fn audit_screen(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    use super::state::Banner;
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

fn run_screen(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
    use super::state::{RollbackPhase, StepProgress};
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

fn explain<'a>(lines: &mut Vec<Line<'a>>, c: &Classification, theme: Theme) {
    if c.reasons.is_empty() {
        lines.push(Line::from("  LOW: no rule matched"));
    }
    for r in &c.reasons {
        lines.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(r.level.to_string(), theme.risk(r.level)),
            Span::raw(format!(": {} [{}]", shown(&r.message), r.rule)),
        ]));
    }
}

/// The first line of a command, escaped, with ` …` when more follow.
fn first_line(s: &str) -> String {
    let mut lines = crate::core::event::printable_lines(s);
    let first = lines.next().unwrap_or_default().into_owned();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn dialog(state: &AppState, theme: Theme, d: &Dialog, frame: &mut Frame<'_>) {
    let (title, lines): (&str, Vec<Line<'_>>) = match d {
        Dialog::Help => (
            " Help ",
            vec![
                Line::from("a  approve the selected plan (as you, on the tui channel)"),
                Line::from("r  reject it, with a reason"),
                Line::from("x  execute (only when approved and current) · d dry run"),
                Line::from("m  modify a parameter (a new plan: approvals start from zero)"),
                Line::from("s  stop a run after its step; again: kill it · l audit trail"),
                Line::from("Enter open · Esc back · / filter · tab status filter"),
                Line::from("e  explain every step's level · q quit · ? this help"),
            ],
        ),
        Dialog::Approve {
            plan_id,
            hash,
            level,
            typed,
        } => {
            // The hash and level this dialog approves are its own, pinned
            // when it opened; Enter refuses if the plan changed since.
            let level = *level;
            let row = state.rows.iter().find(|r| r.id() == plan_id);
            let mut lines = vec![
                Line::from(vec![
                    Span::raw(format!("Approve plan `{plan_id}` as {} at ", state.user)),
                    Span::styled(badge(level), theme.risk(level)),
                    Span::raw("?"),
                ]),
                Line::from(format!(
                    "{} step(s); hash {}",
                    row.map_or(0, |r| r.review.plan.steps.len()),
                    short(hash.as_str())
                )),
            ];
            if let Some(r) = row {
                lines.push(Line::from(format!(
                    "{}/{} approvals{}",
                    r.approvers.len(),
                    r.needed,
                    if r.approvers.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.approvers.join(", "))
                    }
                )));
                if r.status == RowStatus::Unsubmitted {
                    lines.push(Line::from("The plan file is submitted first."));
                }
            }
            if level == RiskLevel::Critical {
                lines.push(Line::styled(
                    "CRITICAL: type the plan id to confirm",
                    theme.risk(RiskLevel::Critical),
                ));
                lines.push(Line::from(format!("> {typed}▏")));
            }
            lines.push(Line::from("Enter confirms · Esc cancels"));
            (" Approve ", lines)
        }
        Dialog::Modify {
            plan_id,
            params,
            index,
            value,
        } => {
            let mut lines = vec![Line::from(format!(
                "Modify plan `{plan_id}`: a new value makes a new plan, with a new hash; its approvals start from zero."
            ))];
            for (i, (name, old)) in params.iter().enumerate() {
                lines.push(if i == *index {
                    Line::styled(
                        format!("> {name} = {}▏  (was {})", shown(value), shown(old)),
                        theme.selected(),
                    )
                } else {
                    Line::from(format!("  {name} = {}", shown(old)))
                });
            }
            lines.push(Line::from(
                "↑↓ parameter · type the value · Enter applies · Esc cancels",
            ));
            (" Modify ", lines)
        }
        Dialog::Explain { plan_id } => {
            let mut lines = Vec::new();
            if let Some(row) = state.rows.iter().find(|r| r.id() == plan_id) {
                lines.push(Line::from(vec![
                    Span::raw(format!("Plan `{plan_id}` is ")),
                    Span::styled(badge(row.risk()), theme.risk(row.risk())),
                    Span::raw(match &row.review.risk_set_by_rollback {
                        Some(by) => format!(": set by {by}."),
                        None => ": its highest step.".to_owned(),
                    }),
                ]));
                for (i, (s, r)) in row
                    .review
                    .plan
                    .steps
                    .iter()
                    .zip(&row.review.steps)
                    .enumerate()
                {
                    lines.push(Line::from(vec![
                        Span::raw(format!("{}. {} ", i + 1, shown(&s.name))),
                        Span::styled(badge(r.action.risk), theme.risk(r.action.risk)),
                    ]));
                    explain(&mut lines, &r.action, theme);
                }
            }
            lines.push(Line::from("Esc or Enter closes"));
            (" Explain ", lines)
        }
        Dialog::ConfirmRun { plan_id, .. } => (
            " Execute ",
            vec![
                Line::from(format!("Execute plan `{plan_id}` now, as {}?", state.user)),
                Line::from("Every step is recorded before it runs; the first failure stops it."),
                Line::from("Enter executes · Esc cancels"),
            ],
        ),
        Dialog::Reject { plan_id, reason } => (
            " Reject ",
            vec![
                Line::from(format!(
                    "Reject plan `{plan_id}` as {}. Reason:",
                    state.user
                )),
                Line::from(format!("> {reason}▏")),
                Line::from("Enter confirms · Esc cancels"),
            ],
        ),
    };
    // Height for the wrapped lines, inside a 70-column box.
    let inner = usize::from(frame.area().width.min(70).saturating_sub(2)).max(1);
    let height: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let area = centered(
        frame.area(),
        70,
        u16::try_from(height + 2).unwrap_or(u16::MAX),
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        area,
    );
}
