//! The dialogs over a screen: approve, reject, modify, confirm.

use super::*;

pub(super) fn dialog(state: &AppState, theme: Theme, d: &Dialog, frame: &mut Frame<'_>) {
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

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
