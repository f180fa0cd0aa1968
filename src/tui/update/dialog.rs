//! Keys in a dialog, and what confirming it asks for.

use super::*;

pub(super) fn dialog_update(state: &mut AppState, dialog: Dialog, action: Action) -> Vec<Effect> {
    match (dialog, action) {
        (_, Action::Back) => Vec::new(),
        (Dialog::Help, Action::Open | Action::Help | Action::Quit) => Vec::new(),
        (Dialog::Explain { .. }, Action::Open | Action::Explain | Action::Quit) => Vec::new(),
        (d @ (Dialog::Help | Dialog::Explain { .. }), _) => {
            state.dialog = Some(d);
            Vec::new()
        }
        (
            Dialog::Modify {
                plan_id,
                params,
                mut index,
                mut value,
            },
            action,
        ) => {
            match action {
                Action::Char(c) => value.push(c),
                Action::Backspace => {
                    value.pop();
                }
                Action::Up | Action::Down => {
                    index = if matches!(action, Action::Down) {
                        (index + 1) % params.len()
                    } else {
                        (index + params.len() - 1) % params.len()
                    };
                    value = params[index].1.clone();
                }
                Action::Open => {
                    let (name, old) = &params[index];
                    if value.trim().is_empty() || &value == old {
                        notice(state, "no change: type a new value, or Esc", true);
                    } else {
                        state
                            .overrides
                            .entry(plan_id.clone())
                            .or_default()
                            .insert(name.clone(), value.clone());
                        notice(
                            state,
                            format!(
                                "plan `{plan_id}` modified ({name}={value}): a new plan with a new hash; its approvals start from zero"
                            ),
                            false,
                        );
                        return vec![Effect::Reload];
                    }
                }
                _ => {}
            }
            state.dialog = Some(Dialog::Modify {
                plan_id,
                params,
                index,
                value,
            });
            Vec::new()
        }
        (Dialog::ConfirmRun { plan_id, hash }, Action::Open) => {
            match changed_since_shown(state, &plan_id, &hash, None) {
                Some(why) => {
                    notice(state, why, true);
                    Vec::new()
                }
                None => vec![Effect::StartRun {
                    plan_id,
                    hash,
                    dry_run: false,
                }],
            }
        }
        (d @ Dialog::ConfirmRun { .. }, _) => {
            state.dialog = Some(d);
            Vec::new()
        }
        (
            Dialog::Approve {
                plan_id,
                hash,
                level,
                mut typed,
            },
            action,
        ) => {
            let critical = level == RiskLevel::Critical;
            match action {
                Action::Char(c) if critical => typed.push(c),
                Action::Backspace => {
                    typed.pop();
                }
                Action::Open => {
                    // What was shown is what is approved: a plan whose hash
                    // or level changed since the dialog opened (a reload
                    // from disk, a resubmission) is refused, never approved
                    // at its new hash.
                    if let Some(why) = changed_since_shown(state, &plan_id, &hash, Some(level)) {
                        notice(state, why, true);
                        return Vec::new();
                    }
                    if critical && typed.trim() != plan_id {
                        state.dialog = Some(Dialog::Approve {
                            plan_id,
                            hash,
                            level,
                            typed,
                        });
                        notice(
                            state,
                            "type the plan id exactly to approve a CRITICAL plan",
                            true,
                        );
                        return Vec::new();
                    }
                    let Some(row) = state.rows.iter().find(|r| r.id() == plan_id) else {
                        return Vec::new();
                    };
                    return vec![Effect::Approve {
                        plan_id,
                        hash,
                        source: row.source.clone(),
                    }];
                }
                _ => {}
            }
            state.dialog = Some(Dialog::Approve {
                plan_id,
                hash,
                level,
                typed,
            });
            Vec::new()
        }
        (
            Dialog::Reject {
                plan_id,
                mut reason,
            },
            action,
        ) => {
            match action {
                Action::Char(c) => reason.push(c),
                Action::Backspace => {
                    reason.pop();
                }
                Action::Open if !reason.trim().is_empty() => {
                    return vec![Effect::Reject {
                        plan_id,
                        reason: reason.trim().to_owned(),
                    }];
                }
                Action::Open => notice(state, "a rejection must say why", true),
                _ => {}
            }
            state.dialog = Some(Dialog::Reject { plan_id, reason });
            Vec::new()
        }
    }
}
