//! The TUI: `update()` flows, and an insta snapshot of every screen through
//! ratatui's `TestBackend` at 80×24 and 160×48, with hashes redacted.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use chrono::{DateTime, TimeZone, Utc};
use opsgate::core::event::Status;
use opsgate::core::risk::RiskLevel;
use opsgate::core::state::PlanStatus;
use opsgate::exec::engine::Progress;
use opsgate::tui::runner::RunMsg;
use opsgate::tui::state::{
    AppState, AuditEntry, AuditView, Banner, Dialog, KindFilter, PlanRow, RollbackPhase, RowStatus,
    Screen,
};
use opsgate::tui::update::{Action, Effect, update};
use opsgate::tui::view::{Theme, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 26, 13, 0, 0)
        .single()
        .expect("a valid time")
}

/// The example plans as rows, in file order, none submitted.
fn rows() -> Vec<PlanRow> {
    let files = common::yaml_files(&common::repo().join("plans"));
    let loaded = opsgate::tui::load::load_all(
        &common::POLICY,
        std::path::Path::new("/nonexistent/audit.jsonl"),
        &opsgate::audit::Sealer::Sha256,
        None,
        &files,
        &Default::default(),
        now(),
    )
    .expect("rows load");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.rows
}

/// A state with a spread of statuses, ages and approvals.
fn state() -> AppState {
    let mut rows = rows();
    let minutes = |m: i64| Some(now() - chrono::Duration::minutes(m));
    for r in &mut rows {
        match r.id() {
            "demo-local" => {
                r.status = RowStatus::Plan(PlanStatus::Pending);
                r.submitted_at = minutes(3);
            }
            "api-scale-20260126" => {
                r.status = RowStatus::Plan(PlanStatus::Approved);
                r.approvers = vec!["alice".into()];
                r.missing = None;
                r.submitted_at = minutes(90);
            }
            "docker-restart-web" => {
                r.status = RowStatus::Plan(PlanStatus::Succeeded);
                r.approvers = vec!["bob".into()];
                r.submitted_at = minutes(3 * 24 * 60);
            }
            _ => {}
        }
    }
    AppState::new("carol".into(), common::POLICY.hash.to_string(), rows, now())
}

fn select(state: &mut AppState, id: &str) {
    state.selected = state
        .rows
        .iter()
        .position(|r| r.id() == id)
        .expect("the plan is a row");
}

/// The screen as text, hashes redacted.
fn render(state: &AppState, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|f| view(state, Theme { color: false }, f))
        .expect("it draws");
    let buffer = terminal.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..width {
            if skip > 0 {
                // The cell after a wide character is part of it.
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
            line.push_str(symbol);
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let hash = regex::Regex::new(r"sha256:[0-9a-f]{12}").expect("regex");
    // Same width as a short hash, so the layout in the snapshot is true.
    hash.replace_all(&text, "sha256:############").into_owned()
}

fn snapshot_both(name: &str, state: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), render(state, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), render(state, 160, 48));
}

#[test]
fn snapshot_plans() {
    let mut s = state();
    select(&mut s, "demo-local");
    snapshot_both("plans", &s);
}

#[test]
fn snapshot_plans_filtered() {
    let mut s = state();
    update(&mut s, Action::Filter);
    for c in "api".chars() {
        update(&mut s, Action::Char(c));
    }
    snapshot_both("plans_filtered", &s);
}

#[test]
fn snapshot_detail() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Open);
    update(&mut s, Action::Down);
    assert_eq!(s.screen, Screen::Detail);
    snapshot_both("detail", &s);
}

#[test]
fn snapshot_approve_dialogs() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Approve);
    snapshot_both("approve", &s);

    let mut s = state();
    select(&mut s, "drop-legacy-billing");
    update(&mut s, Action::Approve);
    for c in "drop".chars() {
        update(&mut s, Action::Char(c));
    }
    snapshot_both("approve_critical", &s);
}

#[test]
fn snapshot_reject_and_help() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Reject);
    for c in "wrong namespace".chars() {
        update(&mut s, Action::Char(c));
    }
    snapshot_both("reject", &s);

    let mut s = state();
    update(&mut s, Action::Help);
    snapshot_both("help", &s);
}

#[test]
fn approving_a_critical_plan_needs_its_id_typed() {
    let mut s = state();
    select(&mut s, "drop-legacy-billing");
    assert_eq!(s.current().map(PlanRow::risk), Some(RiskLevel::Critical));
    update(&mut s, Action::Approve);
    assert!(matches!(
        s.dialog,
        Some(Dialog::Approve {
            level: RiskLevel::Critical,
            ..
        })
    ));
    // Enter with nothing typed, or a wrong id: refused, the dialog stays.
    assert!(update(&mut s, Action::Open).is_empty());
    assert!(s.notice.as_ref().is_some_and(|n| n.error));
    for c in "drop-legacy".chars() {
        update(&mut s, Action::Char(c));
    }
    assert!(update(&mut s, Action::Open).is_empty());
    assert!(s.dialog.is_some());
    for c in "-billing".chars() {
        update(&mut s, Action::Char(c));
    }
    let effects = update(&mut s, Action::Open);
    assert!(
        matches!(&effects[..], [Effect::Approve { plan_id, .. }] if plan_id == "drop-legacy-billing"),
        "{effects:?}"
    );
    assert!(s.dialog.is_none());
}

#[test]
fn a_medium_plan_approves_with_enter_and_esc_cancels() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Approve);
    // Typing does nothing in a non-critical dialog; Esc cancels.
    update(&mut s, Action::Char('z'));
    assert!(update(&mut s, Action::Back).is_empty());
    assert!(s.dialog.is_none());
    update(&mut s, Action::Approve);
    let effects = update(&mut s, Action::Open);
    assert!(matches!(&effects[..], [Effect::Approve { plan_id, .. }] if plan_id == "demo-local"));
}

#[test]
fn execute_is_refused_unless_approved_and_then_asks_for_enter() {
    let mut s = state();
    for id in ["demo-local", "drop-legacy-billing", "docker-restart-web"] {
        select(&mut s, id);
        assert!(update(&mut s, Action::Execute).is_empty());
        assert!(s.dialog.is_none(), "{id}");
        let n = s.notice.clone().expect("a notice");
        assert!(
            n.error && n.text.contains("may not run"),
            "{id}: {}",
            n.text
        );
    }
    select(&mut s, "api-scale-20260126");
    assert!(update(&mut s, Action::Execute).is_empty());
    assert!(
        matches!(&s.dialog, Some(Dialog::ConfirmRun { plan_id, .. }) if plan_id == "api-scale-20260126")
    );
    let effects = update(&mut s, Action::Open);
    assert!(
        matches!(&effects[..], [Effect::StartRun { plan_id, dry_run: false, .. }] if plan_id == "api-scale-20260126"),
        "{effects:?}"
    );
}

/// Hardening 5: the approve dialog keeps only what it showed. The rows
/// reload from disk while it is open (another process submitted an edited
/// plan under the same id): Enter refuses, names both hashes, and approves
/// nothing, not the new plan at its new hash.
#[test]
fn the_approve_dialog_approves_only_the_hash_it_showed() {
    let mut s = state();
    select(&mut s, "demo-local");
    let shown = s.current().expect("a row").review.hash.clone();
    update(&mut s, Action::Approve);
    let mut rows = s.rows.clone();
    let edited = rows
        .iter_mut()
        .find(|r| r.id() == "demo-local")
        .expect("the demo row");
    edited.review.plan.title.push_str(" (edited)");
    edited.review.hash = edited.review.plan.hash();
    assert_ne!(edited.review.hash, shown);
    update(&mut s, Action::Loaded(rows, Vec::new()));
    let effects = update(&mut s, Action::Open);
    assert!(effects.is_empty(), "{effects:?}");
    let n = s.notice.clone().expect("a notice");
    assert!(
        n.error && n.text.contains("changed since it was shown"),
        "{}",
        n.text
    );
    assert!(s.dialog.is_none());
    // Opened again, it shows (and approves) the new hash.
    update(&mut s, Action::Approve);
    let effects = update(&mut s, Action::Open);
    assert!(
        matches!(&effects[..], [Effect::Approve { hash, .. }] if *hash != shown),
        "{effects:?}"
    );
}

/// Hardening 5: a plan that became CRITICAL while a MEDIUM dialog was open
/// does not skip the typed-id guard: Enter refuses.
#[test]
fn a_plan_that_became_critical_is_not_approved_by_a_medium_dialog() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Approve);
    let mut rows = s.rows.clone();
    let critical = rows
        .iter()
        .find(|r| r.id() == "drop-legacy-billing")
        .expect("the critical row")
        .review
        .clone();
    let row = rows
        .iter_mut()
        .find(|r| r.id() == "demo-local")
        .expect("the demo row");
    let mut review = critical;
    review.plan.id = "demo-local".into();
    review.hash = review.plan.hash();
    row.review = review;
    update(&mut s, Action::Loaded(rows, Vec::new()));
    let effects = update(&mut s, Action::Open);
    assert!(effects.is_empty(), "{effects:?}");
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("changed since it was shown")),
        "{:?}",
        s.notice
    );
}

/// Hardening 5: the execute dialog runs the submission it showed.
#[test]
fn the_execute_dialog_runs_only_the_hash_it_showed() {
    let mut s = state();
    select(&mut s, "api-scale-20260126");
    update(&mut s, Action::Execute);
    let mut rows = s.rows.clone();
    let row = rows
        .iter_mut()
        .find(|r| r.id() == "api-scale-20260126")
        .expect("the row");
    row.review.plan.title.push_str(" (edited)");
    row.review.hash = row.review.plan.hash();
    update(&mut s, Action::Loaded(rows, Vec::new()));
    assert!(update(&mut s, Action::Open).is_empty());
    assert!(s.notice.as_ref().is_some_and(|n| n.error));
}

/// The Run screen after a run started, with news applied.
fn running(msgs: Vec<RunMsg>) -> AppState {
    let mut s = state();
    select(&mut s, "demo-local");
    update(
        &mut s,
        Action::RunStarted {
            plan_id: "demo-local".into(),
            run_id: "r-20260126-130000-ab12".into(),
            steps: vec!["prepare".into(), "write".into(), "restart".into()],
            dry_run: false,
        },
    );
    for m in msgs {
        update(&mut s, Action::Run(m));
    }
    s
}

fn step_started(index: usize, name: &str) -> RunMsg {
    RunMsg::Progress(Progress::StepStarted {
        index,
        total: 3,
        name: name.into(),
        command: format!("./{name}.sh"),
        lead: "$ ",
    })
}

fn step_finished(index: usize, status: Status) -> RunMsg {
    RunMsg::Progress(Progress::StepFinished {
        index,
        status,
        duration: std::time::Duration::from_millis(1500),
    })
}

#[test]
fn s_stops_after_the_step_and_twice_kills() {
    let mut s = running(vec![step_started(0, "prepare")]);
    assert_eq!(s.screen, Screen::Run);
    let first = update(&mut s, Action::Stop);
    assert!(
        matches!(&first[..], [Effect::Stop { kill: false, .. }]),
        "{first:?}"
    );
    let second = update(&mut s, Action::Stop);
    assert!(
        matches!(&second[..], [Effect::Stop { kill: true, run_id, .. }] if run_id == "r-20260126-130000-ab12")
    );
    // The run screen cannot be left while the run goes on.
    assert!(update(&mut s, Action::Back).is_empty());
    assert_eq!(s.screen, Screen::Run);
}

#[test]
fn a_failed_run_offers_the_rollback() {
    let report = |status| opsgate::exec::engine::RunReport {
        run_id: "r-20260126-130000-ab12".into(),
        status,
        completed: vec![0],
        duration: std::time::Duration::from_secs(3),
    };
    let mut s = running(vec![
        step_started(0, "prepare"),
        step_finished(0, Status::Succeeded),
        step_started(1, "write"),
        step_finished(1, Status::Failed),
        RunMsg::Finished {
            report: report(Status::Failed),
            rollback_offered: true,
        },
    ]);
    snapshot_both("run_rollback_offered", &s);
    assert_eq!(update(&mut s, Action::Open).len(), 1);
    assert!(matches!(
        s.run.as_ref().map(|r| r.rollback),
        Some(RollbackPhase::Running)
    ));
    update(
        &mut s,
        Action::Run(RunMsg::RollbackFinished(Status::Failed)),
    );
    snapshot_both("run_rollback_failed", &s);
    // Settled: Esc goes back to the plans and reloads them.
    let effects = update(&mut s, Action::Back);
    assert!(matches!(&effects[..], [Effect::Reload]));
    assert_eq!(s.screen, Screen::Plans);

    let mut s = running(vec![RunMsg::Finished {
        report: report(Status::Failed),
        rollback_offered: true,
    }]);
    let effects = update(&mut s, Action::Back);
    assert!(matches!(&effects[..], [Effect::Rollback(false)]));
}

#[test]
fn snapshot_run_in_progress() {
    let mut s = running(vec![
        step_started(0, "prepare"),
        RunMsg::Progress(Progress::Output {
            index: 0,
            line: opsgate::exec::shell::OutputLine {
                stderr: false,
                text: "made /tmp/x".into(),
            },
        }),
        step_finished(0, Status::Succeeded),
        step_started(1, "write"),
    ]);
    s.now += chrono::Duration::milliseconds(2300);
    snapshot_both("run_in_progress", &s);
}

#[test]
fn decisions_on_a_closed_plan_are_refused() {
    let mut s = state();
    select(&mut s, "docker-restart-web");
    update(&mut s, Action::Approve);
    assert!(s.dialog.is_none());
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("succeeded"))
    );
    update(&mut s, Action::Reject);
    assert!(s.dialog.is_none());
}

#[test]
fn a_rejection_needs_a_reason() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Reject);
    assert!(update(&mut s, Action::Open).is_empty());
    assert!(matches!(s.dialog, Some(Dialog::Reject { .. })));
    for c in "no".chars() {
        update(&mut s, Action::Char(c));
    }
    let effects = update(&mut s, Action::Open);
    assert!(matches!(&effects[..], [Effect::Reject { reason, .. }] if reason == "no"));
}

#[test]
fn filters_narrow_the_list_and_keep_a_visible_selection() {
    let mut s = state();
    assert_eq!(s.visible().len(), s.rows.len());
    update(&mut s, Action::CycleStatus); // open
    let open: Vec<&str> = s.visible().iter().map(|&i| s.rows[i].id()).collect();
    assert!(!open.contains(&"docker-restart-web"), "{open:?}");
    update(&mut s, Action::CycleStatus); // running
    assert!(s.visible().is_empty());
    update(&mut s, Action::CycleStatus); // done
    let done: Vec<&str> = s.visible().iter().map(|&i| s.rows[i].id()).collect();
    assert_eq!(done, ["docker-restart-web"]);
    assert_eq!(s.current().map(PlanRow::id), Some("docker-restart-web"));
    update(&mut s, Action::CycleStatus); // all
    update(&mut s, Action::Filter);
    for c in "DEMO".chars() {
        update(&mut s, Action::Char(c));
    }
    let shown: Vec<&str> = s.visible().iter().map(|&i| s.rows[i].id()).collect();
    assert_eq!(shown, ["demo-local", "demo-rollback"]);
    for c in "-L".chars() {
        update(&mut s, Action::Char(c));
    }
    update(&mut s, Action::Open);
    let shown: Vec<&str> = s.visible().iter().map(|&i| s.rows[i].id()).collect();
    assert_eq!(shown, ["demo-local"]);
    assert_eq!(s.current().map(PlanRow::id), Some("demo-local"));
}

#[test]
fn keys_map_to_actions_and_typing_goes_to_dialogs() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use opsgate::tui::app::key_action;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let keys = opsgate::core::policy::TuiKeys::default();
    let mut s = state();
    assert!(matches!(
        key_action(&s, &keys, key('a')),
        Some(Action::Approve)
    ));
    assert!(matches!(
        key_action(&s, &keys, key('e')),
        Some(Action::Explain)
    ));
    assert!(matches!(
        key_action(&s, &keys, key('q')),
        Some(Action::Quit)
    ));
    assert!(key_action(&s, &keys, key('z')).is_none());
    assert!(matches!(
        key_action(
            &s,
            &keys,
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
        ),
        Some(Action::Quit)
    ));
    select(&mut s, "demo-local");
    update(&mut s, Action::Reject);
    assert!(matches!(
        key_action(&s, &keys, key('q')),
        Some(Action::Char('q'))
    ));
}

#[test]
fn keys_come_from_the_policy_and_clashes_are_refused() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use opsgate::core::policy::LoadedPolicy;
    use opsgate::tui::app::key_action;
    let policy =
        LoadedPolicy::load(Some(("p.yaml", "tui: {keys: {approve: \"y\", quit: Q}}\n"))).unwrap();
    let keys = &policy.policy.tui.keys;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let s = state();
    assert!(matches!(
        key_action(&s, keys, key('y')),
        Some(Action::Approve)
    ));
    assert!(key_action(&s, keys, key('a')).is_none(), "a is free now");
    assert!(matches!(key_action(&s, keys, key('Q')), Some(Action::Quit)));
    let e = LoadedPolicy::load(Some(("p.yaml", "tui: {keys: {approve: r}}\n"))).unwrap_err();
    assert!(
        e.to_string()
            .contains("`r` is bound to both reject and approve")
            || e.to_string()
                .contains("`r` is bound to both approve and reject"),
        "{e}"
    );
    let e = LoadedPolicy::load(Some(("p.yaml", "tui: {keys: {approve: j}}\n"))).unwrap_err();
    assert!(e.to_string().contains("fixed key"), "{e}");
    let e = LoadedPolicy::load(Some(("p.yaml", "tui:\n  keys: {aprove: \"y\"}\n"))).unwrap_err();
    assert!(e.to_string().starts_with("p.yaml:2:"), "{e}");
}

#[test]
fn e_explains_every_step() {
    let mut s = state();
    select(&mut s, "drop-legacy-billing");
    update(&mut s, Action::Explain);
    assert!(
        matches!(&s.dialog, Some(Dialog::Explain { plan_id }) if plan_id == "drop-legacy-billing")
    );
    let screen = render(&s, 160, 48);
    assert!(screen.contains("2. delete namespace"), "{screen}");
    assert!(screen.contains("CRITICAL"), "{screen}");
    update(&mut s, Action::Back);
    assert!(s.dialog.is_none());
}

fn audit_entry(
    seq: u64,
    kind: &str,
    plan: &str,
    step: Option<u32>,
    status: &str,
    secs: i64,
) -> AuditEntry {
    AuditEntry {
        seq,
        ts: now() - chrono::Duration::seconds(600 - secs),
        kind: kind.into(),
        plan_id: plan.into(),
        run_id: if kind.starts_with("approval") || kind == "plan_submitted" {
            String::new()
        } else {
            "r-1".into()
        },
        step,
        status: status.into(),
        who: if kind == "approval_granted" {
            "alice".into()
        } else {
            String::new()
        },
        duration: step.map(|s| f64::from(s) * 1.5),
        summary: format!("{plan} {kind}"),
    }
}

fn audit_state(banner: Banner) -> AppState {
    let mut s = state();
    let entries = vec![
        audit_entry(1, "plan_submitted", "demo-local", None, "", 0),
        audit_entry(2, "plan_submitted", "api-scale-20260126", None, "", 5),
        audit_entry(3, "approval_granted", "demo-local", None, "", 10),
        audit_entry(4, "run_started", "demo-local", None, "", 20),
        audit_entry(5, "step_finished", "demo-local", Some(1), "succeeded", 30),
        audit_entry(6, "step_finished", "demo-local", Some(2), "succeeded", 40),
        audit_entry(7, "step_finished", "demo-local", Some(3), "failed", 50),
        audit_entry(8, "run_finished", "demo-local", None, "failed", 55),
    ];
    let count = entries.len();
    update(
        &mut s,
        Action::AuditLoaded(AuditView {
            entries,
            banner,
            plan: None,
            kinds: KindFilter::All,
            selected: count - 1,
        }),
    );
    s
}

#[test]
fn snapshot_audit() {
    let s = audit_state(Banner::Intact {
        events: 8,
        seq: 8,
        hash: "sha256:0123456789ab".into(),
    });
    assert_eq!(s.screen, Screen::Audit);
    snapshot_both("audit", &s);
    let s = audit_state(Banner::Broken(
        "line 5 (seq 5): hash mismatch: the record was changed after it was written".into(),
    ));
    snapshot_both("audit_broken", &s);
}

#[test]
fn the_audit_view_filters_by_kind_and_replays_one_plan() {
    let mut s = audit_state(Banner::Empty);
    let kinds = |s: &AppState| -> Vec<u64> {
        s.audit
            .as_ref()
            .map(|a| a.visible().iter().map(|e| e.seq).collect())
            .unwrap_or_default()
    };
    assert_eq!(kinds(&s).len(), 8);
    update(&mut s, Action::CycleStatus); // decisions
    assert_eq!(kinds(&s), [1, 2, 3]);
    update(&mut s, Action::CycleStatus); // runs
    assert_eq!(kinds(&s), [4, 8]);
    update(&mut s, Action::CycleStatus); // failures
    assert_eq!(kinds(&s), [7, 8]);
    update(&mut s, Action::CycleStatus); // all
    // `p` asks for the selected record's plan only; `p` again for all.
    let effects = update(&mut s, Action::Replay);
    assert!(
        matches!(&effects[..], [Effect::LoadAudit { plan: Some(p) }] if p == "demo-local"),
        "{effects:?}"
    );
    if let Some(a) = s.audit.as_mut() {
        a.plan = Some("demo-local".into());
    }
    let effects = update(&mut s, Action::Replay);
    assert!(matches!(&effects[..], [Effect::LoadAudit { plan: None }]));
    update(&mut s, Action::Back);
    assert_eq!(s.screen, Screen::Plans);
    assert!(s.audit.is_none());
}

#[test]
fn l_opens_the_audit_view_for_all_or_for_the_plan_in_detail() {
    let mut s = state();
    let effects = update(&mut s, Action::AuditView);
    assert!(matches!(&effects[..], [Effect::LoadAudit { plan: None }]));
    select(&mut s, "demo-local");
    update(&mut s, Action::Open);
    let effects = update(&mut s, Action::AuditView);
    assert!(matches!(&effects[..], [Effect::LoadAudit { plan: Some(p) }] if p == "demo-local"));
}

#[test]
fn a_long_list_draws_the_window_around_the_selection() {
    let base = state();
    let template = base.rows[0].clone();
    let rows: Vec<PlanRow> = (0..60)
        .map(|i| {
            let mut r = template.clone();
            r.review.plan.id = format!("plan-{i:02}");
            r
        })
        .collect();
    let mut s = AppState::new("carol".into(), common::POLICY.hash.to_string(), rows, now());
    for _ in 0..45 {
        update(&mut s, Action::Down);
    }
    assert_eq!(s.current().map(PlanRow::id), Some("plan-45"));
    let screen = render(&s, 80, 24);
    assert!(screen.contains("plan-45"), "{screen}");
    assert!(!screen.contains("plan-00"), "{screen}");
    assert!(
        !screen.contains("plan-46"),
        "the selection is the last row drawn: {screen}"
    );
}

#[test]
fn modify_makes_a_new_plan_whose_approvals_start_from_zero() {
    use opsgate::audit::{AuditLog, Channel, Decision, Event, Sealer};
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("audit.jsonl");
    let file = common::repo().join("plans/demo-local.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let cp = opsgate::core::plan::load_plan(
        "demo-local.yaml",
        &text,
        &common::POLICY,
        now().date_naive(),
    )
    .unwrap();
    let log = AuditLog::open(&log_path, Sealer::Sha256, Default::default()).unwrap();
    log.append(Event::PlanSubmitted {
        fingerprints: Default::default(),
        plan_id: cp.plan.id.clone(),
        plan_hash: cp.hash.clone(),
        policy_hash: common::POLICY.hash.clone(),
        risk: cp.risk,
        author: "demo".into(),
        submitted_by: "demo".into(),
        identity: None,
        mutates_production: false,
        redacted: false,
        plan: serde_json::to_value(&cp.plan).unwrap(),
    })
    .unwrap();
    log.append(Event::ApprovalGranted(Decision {
        rollback_of: None,
        identity: None,
        submission_seq: None,
        plan_id: cp.plan.id.clone(),
        plan_hash: cp.hash.clone(),
        policy_hash: common::POLICY.hash.clone(),
        risk: cp.risk,
        approver: "alice".into(),
        channel: Channel::Tui,
        reason: None,
        metadata: Default::default(),
    }))
    .unwrap();
    let load = |overrides: &opsgate::tui::load::Overrides| {
        let loaded = opsgate::tui::load::load_all(
            &common::POLICY,
            &log_path,
            &Sealer::Sha256,
            None,
            std::slice::from_ref(&file),
            overrides,
            chrono::Utc::now(),
        )
        .unwrap();
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.rows
    };
    let before = load(&Default::default());
    assert_eq!(before[0].status, RowStatus::Plan(PlanStatus::Approved));
    assert_eq!(before[0].approvers, ["alice"]);

    // `m`, type a new value, Enter.
    let mut s = AppState::new(
        "carol".into(),
        common::POLICY.hash.to_string(),
        before,
        now(),
    );
    update(&mut s, Action::Modify);
    assert!(matches!(&s.dialog, Some(Dialog::Modify { value, .. }) if value == "3"));
    update(&mut s, Action::Backspace);
    update(&mut s, Action::Char('5'));
    let effects = update(&mut s, Action::Open);
    assert!(matches!(&effects[..], [Effect::Reload]));
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("approvals start from zero"))
    );
    assert_eq!(s.overrides["demo-local"]["replicas"], "5");

    let after = load(&s.overrides);
    assert_ne!(after[0].review.hash, cp.hash, "a new plan has a new hash");
    assert_eq!(after[0].status, RowStatus::Unsubmitted);
    assert!(after[0].approvers.is_empty());
    assert_eq!(after[0].review.plan.params["replicas"], "5");
    assert!(
        after[0].review.plan.steps[1]
            .action
            .command_line()
            .contains("'5'"),
        "the command uses the new value"
    );
}

#[test]
fn snapshot_modify_and_explain() {
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Modify);
    update(&mut s, Action::Backspace);
    update(&mut s, Action::Char('5'));
    snapshot_both("modify", &s);
    let mut s = state();
    select(&mut s, "demo-local");
    update(&mut s, Action::Explain);
    snapshot_both("explain", &s);
}

#[test]
fn snapshot_confirm_execute() {
    let mut s = state();
    select(&mut s, "api-scale-20260126");
    update(&mut s, Action::Execute);
    assert!(matches!(s.dialog, Some(Dialog::ConfirmRun { .. })));
    snapshot_both("confirm_execute", &s);
}

#[test]
fn an_open_breaker_in_the_log_shows_in_the_title() {
    use opsgate::audit::{AuditLog, Event, Sealer};
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&log_path, Sealer::Sha256, Default::default()).unwrap();
    let change = |state: &str| Event::BreakerChanged {
        backend: "ec2".into(),
        state: state.into(),
        consecutive_failures: 5,
        run_id: Some("r-1".into()),
        error: "cannot reach EC2".into(),
    };
    log.append(change("open")).unwrap();
    let load = || {
        opsgate::tui::load::load_all(
            &common::POLICY,
            &log_path,
            &Sealer::Sha256,
            None,
            &[],
            &Default::default(),
            now(),
        )
        .unwrap()
    };
    let loaded = load();
    assert_eq!(loaded.breakers, ["ec2 breaker open"]);
    let mut s = state();
    let rows = s.rows.clone();
    update(&mut s, Action::Loaded(rows, loaded.breakers));
    let screen = render(&s, 160, 48);
    assert!(
        screen
            .lines()
            .next()
            .unwrap()
            .contains("⚠ ec2 breaker open"),
        "{screen}"
    );

    // Closed again: nothing to show.
    log.append(change("closed")).unwrap();
    let loaded = load();
    assert!(loaded.breakers.is_empty());
    let rows = s.rows.clone();
    update(&mut s, Action::Loaded(rows, loaded.breakers));
    assert!(!render(&s, 160, 48).contains("breaker"));
}

/// A command with a carriage return and a right-to-left override: the list,
/// the detail and the explain dialog draw them escaped, and no cell of the
/// screen holds a control or bidi character (hardening 16).
#[test]
fn hidden_characters_are_drawn_escaped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("disguise.yaml");
    std::fs::write(
        &file,
        "id: disguise
title: \"tidy \\u202Egol\"
steps:
  - name: \"scale\\u2066\"
    run: \"rm -rf /srv/data\\rkubectl scale deploy/api --replicas=3\\ntrue\"
    rollback: {run: echo undo}
",
    )
    .expect("plan written");
    let loaded = opsgate::tui::load::load_all(
        &common::POLICY,
        std::path::Path::new("/nonexistent/audit.jsonl"),
        &opsgate::audit::Sealer::Sha256,
        None,
        &[file],
        &Default::default(),
        now(),
    )
    .expect("rows load");
    let mut s = AppState::new(
        "carol".into(),
        common::POLICY.hash.to_string(),
        loaded.rows,
        now(),
    );
    for screen in [Screen::Plans, Screen::Detail] {
        s.screen = screen;
        let text = render(&s, 160, 48);
        assert!(!hidden(&text), "{text}");
        assert!(text.contains("tidy \\u{202e}gol"), "{text}");
    }
    let text = render(&s, 160, 48);
    assert!(
        text.contains("$ rm -rf /srv/data\\rkubectl scale deploy/api --replicas=3"),
        "{text}"
    );
    assert!(text.contains("  true"), "every line of the command: {text}");
    s.dialog = Some(Dialog::Explain {
        plan_id: "disguise".into(),
    });
    let text = render(&s, 160, 48);
    assert!(text.contains("scale\\u{2066}"), "{text}");
    assert!(!hidden(&text), "{text}");
}

/// Whether a rendered screen holds one of the plan's control or bidi
/// characters (the newlines between its rows aside).
fn hidden(text: &str) -> bool {
    text.contains(['\r', '\u{202e}', '\u{2066}'])
}
