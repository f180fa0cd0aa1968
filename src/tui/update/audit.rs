//! Keys on the Audit screen.

use super::*;

/// Keys on the Audit screen.
pub(super) fn audit_update(state: &mut AppState, action: Action) -> Vec<Effect> {
    let Some(audit) = state.audit.as_mut() else {
        state.screen = Screen::Plans;
        return Vec::new();
    };
    let count = audit.visible().len();
    match action {
        Action::Up => audit.selected = audit.selected.saturating_sub(1),
        Action::Down => audit.selected = (audit.selected + 1).min(count.saturating_sub(1)),
        Action::CycleStatus => {
            audit.kinds = audit.kinds.next();
            audit.selected = audit.visible().len().saturating_sub(1);
        }
        Action::Replay => {
            let plan = match &audit.plan {
                Some(_) => None,
                None => audit
                    .visible()
                    .get(audit.selected)
                    .map(|e| e.plan_id.clone())
                    .filter(|p| !p.is_empty()),
            };
            return vec![Effect::LoadAudit { plan }];
        }
        Action::Back | Action::AuditView => {
            state.screen = Screen::Plans;
            state.audit = None;
        }
        Action::Quit => state.quit = true,
        Action::Help => state.dialog = Some(Dialog::Help),
        _ => {}
    }
    Vec::new()
}
