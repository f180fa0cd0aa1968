//! The Plans screen and a plan's detail.

use super::*;

pub(super) fn plans(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
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

pub(super) fn detail(state: &AppState, theme: Theme, frame: &mut Frame<'_>, area: Rect) {
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

pub(super) fn explain<'a>(lines: &mut Vec<Line<'a>>, c: &Classification, theme: Theme) {
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
pub(super) fn first_line(s: &str) -> String {
    let mut lines = crate::core::event::printable_lines(s);
    let first = lines.next().unwrap_or_default().into_owned();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}
