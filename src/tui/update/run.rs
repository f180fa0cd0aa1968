//! Keys on the Run screen, and news from the run.

use super::*;

/// Keys on the Run screen.
pub(super) fn run_update(state: &mut AppState, action: Action) -> Vec<Effect> {
    let Some(run) = state.run.as_mut() else {
        state.screen = Screen::Plans;
        return Vec::new();
    };
    match action {
        Action::Open if run.rollback == RollbackPhase::Offered => {
            run.rollback = RollbackPhase::Running;
            return vec![Effect::Rollback(true)];
        }
        Action::Back if run.rollback == RollbackPhase::Offered => {
            run.rollback = RollbackPhase::Declined;
            return vec![Effect::Rollback(false)];
        }
        Action::Stop if run.finished.is_none() => {
            run.stops = run.stops.saturating_add(1);
            let kill = run.stops >= 2;
            let effect = Effect::Stop {
                plan_id: run.plan_id.clone(),
                run_id: run.run_id.clone(),
                kill,
            };
            notice(
                state,
                if kill {
                    "stop: killing the current step"
                } else {
                    "stop: the current step finishes, then the run stops (s again kills it)"
                },
                false,
            );
            return vec![effect];
        }
        Action::Up => run.scroll = (run.scroll + 1).min(run.output.len()),
        Action::Down => run.scroll = run.scroll.saturating_sub(1),
        Action::Back | Action::Quit if run.settled() => {
            state.screen = Screen::Plans;
            state.run = None;
            return vec![Effect::Reload];
        }
        Action::Back | Action::Quit => {
            notice(state, "the run is not over: s stops it", true);
        }
        _ => {}
    }
    Vec::new()
}

/// Applies news from the run to the Run screen.
pub(super) fn run_message(state: &mut AppState, msg: RunMsg) {
    let now = state.now;
    let Some(run) = state.run.as_mut() else {
        return;
    };
    match msg {
        RunMsg::Progress(p) => match p {
            Progress::StepStarted {
                index,
                total,
                name,
                command,
                lead,
            } => {
                if let Some(s) = run.steps.get_mut(index) {
                    s.1 = StepProgress::Running { since: now };
                }
                run.push_output(format!("── step {}/{total}: {name}", index + 1));
                run.push_output(format!(
                    "{lead}{}",
                    command.lines().next().unwrap_or_default()
                ));
            }
            Progress::Output { line, .. } => run.push_output(line.text),
            Progress::CheckFinished {
                name,
                phase,
                status,
                ..
            } => run.push_output(format!(
                "{} {}-check {name}",
                if matches!(status, Status::Passed) {
                    "✓"
                } else {
                    "✗"
                },
                if phase == CheckPhase::Pre {
                    "pre"
                } else {
                    "post"
                }
            )),
            Progress::StepFinished {
                index,
                status,
                duration,
            } => {
                if let Some(s) = run.steps.get_mut(index) {
                    s.1 = StepProgress::Done {
                        status,
                        seconds: duration.as_secs_f64(),
                    };
                }
            }
            Progress::Note(n) => run.push_output(n),
            Progress::RollbackStep { name, status } => {
                run.push_output(format!("rollback: {name} {}", status.as_str()));
            }
        },
        RunMsg::Finished {
            report,
            rollback_offered,
        } => {
            run.finished = Some((report.status, report.duration.as_secs_f64()));
            if rollback_offered {
                run.rollback = RollbackPhase::Offered;
            }
        }
        RunMsg::RollbackFinished(status) => run.rollback = RollbackPhase::Done(status),
        // The TUI records its own stops (`s`); Ctrl-C quits it.
        RunMsg::Stopping { .. } => {}
        RunMsg::Failed(e) => {
            run.error = Some(e.clone());
            if run.finished.is_none() {
                run.finished = Some((Status::Failed, 0.0));
            }
            if run.rollback == RollbackPhase::Running || run.rollback == RollbackPhase::Offered {
                run.rollback = RollbackPhase::Done(Status::Failed);
            }
            notice(state, e, true);
        }
    }
}
