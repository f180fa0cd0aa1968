//! Property: a validly chained log crafted by someone who can write it (any
//! records, any numbers) never panics the fold, the status, the verdicts,
//! the rollback and resume computations, the engine, or `opsgate status`.
//! Every number read from the log is bounds-checked.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a broken fixture should stop the test loudly"
)]

mod common;

use std::collections::BTreeMap;

use opsgate::audit::{AuditLog, Channel, Decision, Event, Sealer, Status};
use opsgate::core::digest::PlanHash;
use opsgate::core::risk::RiskLevel;
use proptest::prelude::*;

const PLAN: &str = "id: p
title: crafted
author: a
steps:
  - {name: one, run: 'true', rollback: {run: 'true'}}
  - {name: two, run: 'true'}
rollback: {steps: [{name: last, run: 'true'}]}
";

fn plan() -> opsgate::core::plan::ClassifiedPlan {
    opsgate::core::plan::load_plan("p.yaml", PLAN, &common::POLICY, common::today())
        .expect("the plan loads")
}

/// The plan's approval, under the test policy with LOW plans approved
/// without votes: what a rollback of its run needs.
fn approval(cp: &opsgate::core::plan::ClassifiedPlan) -> opsgate::core::approval::ApprovedPlan {
    use opsgate::core::approval::{Subject, Verdict, evaluate};
    let mut auto = common::POLICY.policy.clone();
    auto.execution.auto_approve_low_risk = true;
    let subject = Subject {
        plan_id: "p",
        plan_hash: &cp.hash,
        risk: cp.risk,
        author: "a",
        author_key: None,
        mutates_production: false,
        has_override: false,
    };
    match evaluate(
        &auto,
        &common::POLICY.hash,
        &subject,
        &[],
        chrono::Utc::now(),
    ) {
        Verdict::Approved { plan, .. } => plan,
        other => panic!("the crafted plan is not approved: {other:?}"),
    }
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Passed),
        Just(Status::Succeeded),
        Just(Status::Failed),
        Just(Status::TimedOut),
        Just(Status::Killed),
        Just(Status::Skipped),
        Just(Status::Cancelled),
        Just(Status::Interrupted),
    ]
}

/// Step numbers as a forger would write them: 0, the plan's, far beyond.
fn step() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(0u32),
        3 => 1u32..3,
        1 => Just(u32::MAX),
        1 => any::<u32>()
    ]
}

fn id(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(names).prop_map(str::to_owned)
}

fn hash(real: PlanHash) -> impl Strategy<Value = PlanHash> {
    prop_oneof![
        Just(real),
        Just(PlanHash::new(format!("sha256:{}", "0".repeat(64))))
    ]
}

fn event(real: PlanHash) -> impl Strategy<Value = Event> {
    let plan_json = serde_json::to_value(plan().plan).expect("plan JSON");
    let policy = common::POLICY.hash.clone();
    let decision = (
        id(&["p", "q"]),
        hash(real.clone()),
        id(&["alice", "bob", "a"]),
        any::<bool>(),
        prop::option::of(0u64..12),
        prop::option::of(id(&["r1", "r2", "r3"])),
    )
        .prop_map({
            let policy = policy.clone();
            move |(plan_id, plan_hash, approver, granted, submission_seq, rollback_of)| {
                let d = Decision {
                    plan_id,
                    plan_hash,
                    policy_hash: policy.clone(),
                    risk: RiskLevel::Medium,
                    approver,
                    channel: Channel::Cli,
                    reason: None,
                    metadata: BTreeMap::new(),
                    submission_seq,
                    rollback_of,
                    identity: None,
                };
                if granted {
                    Event::ApprovalGranted(d)
                } else {
                    Event::ApprovalRejected(d)
                }
            }
        });
    prop_oneof![
        (id(&["p", "q"]), hash(real.clone())).prop_map({
            let policy = policy.clone();
            move |(plan_id, plan_hash)| Event::PlanSubmitted {
                plan_id,
                plan_hash,
                policy_hash: policy.clone(),
                risk: RiskLevel::Medium,
                author: "a".into(),
                submitted_by: "a".into(),
                identity: None,
                mutates_production: false,
                redacted: false,
                plan: plan_json.clone(),
                fingerprints: BTreeMap::new(),
            }
        }),
        decision,
        (
            id(&["p", "p", "q"]),
            id(&["r1", "r1", "r2"]),
            any::<bool>(),
            hash(real)
        )
            .prop_map({
                let policy = policy.clone();
                move |(plan_id, run_id, dry_run, plan_hash)| Event::RunStarted {
                    plan_id,
                    run_id,
                    plan_hash,
                    policy_hash: policy.clone(),
                    dry_run,
                    user: "u".into(),
                    drift: None,
                    env: BTreeMap::new(),
                }
            }),
        (id(&["p", "p", "q"]), id(&["r1", "r1", "r2"]), step()).prop_map(
            |(plan_id, run_id, step)| {
                Event::StepStarted {
                    plan_id,
                    run_id,
                    step,
                    name: "s".into(),
                    action: "true".into(),
                    risk: RiskLevel::Low,
                    resource: None,
                    action_sha256: None,
                }
            }
        ),
        (
            id(&["p", "p", "q"]),
            id(&["r1", "r1", "r2"]),
            step(),
            status(),
            0.0f64..1e12
        )
            .prop_map(|(plan_id, run_id, step, status, duration_seconds)| {
                Event::StepFinished {
                    plan_id,
                    run_id,
                    step,
                    name: "s".into(),
                    action: "true".into(),
                    status,
                    exit_code: None,
                    duration_seconds,
                    output: String::new(),
                }
            }),
        (id(&["p", "p", "q"]), id(&["r1", "r1", "r2"]), any::<bool>()).prop_map(
            |(plan_id, run_id, kill)| Event::RunCancelled {
                plan_id,
                run_id,
                user: "u".into(),
                kill,
                reason: None,
            }
        ),
        (
            id(&["p", "p", "q"]),
            id(&["r1", "r1", "r2"]),
            any::<bool>(),
            status()
        )
            .prop_map(|(plan_id, run_id, dry_run, status)| Event::RunFinished {
                plan_id,
                run_id,
                dry_run,
                status,
                duration_seconds: 1.0,
            }),
        (id(&["p", "p", "q"]), id(&["r1", "r1", "r2"])).prop_map(|(plan_id, run_id)| {
            Event::RollbackStarted {
                plan_id,
                run_id,
                reason: "x".into(),
                actions: Vec::new(),
                user: None,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_crafted_chained_log_never_panics_the_readers(
        steps in prop::collection::vec((step(), status()), 0..6),
        events in prop::collection::vec(event(plan().hash), 0..30)
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Sealer::Sha256, Default::default()).expect("log");
        // A plan with a run whose steps carry crafted numbers, then
        // anything at all.
        let cp = plan();
        let mut all = vec![
            Event::PlanSubmitted {
                plan_id: "p".into(),
                plan_hash: cp.hash.clone(),
                policy_hash: common::POLICY.hash.clone(),
                risk: RiskLevel::Medium,
                author: "a".into(),
                submitted_by: "a".into(),
                identity: None,
                mutates_production: false,
                redacted: false,
                plan: serde_json::to_value(&cp.plan).expect("plan JSON"),
                fingerprints: BTreeMap::new(),
            },
            Event::RunStarted {
                plan_id: "p".into(),
                run_id: "r1".into(),
                plan_hash: cp.hash.clone(),
                policy_hash: common::POLICY.hash.clone(),
                dry_run: false,
                user: "u".into(),
                drift: None,
                env: BTreeMap::new(),
            },
        ];
        for (step, status) in steps {
            all.push(Event::StepStarted {
                plan_id: "p".into(),
                run_id: "r1".into(),
                step,
                name: "s".into(),
                action: "true".into(),
                risk: RiskLevel::Low,
                resource: None,
                action_sha256: None,
            });
            all.push(Event::StepFinished {
                plan_id: "p".into(),
                run_id: "r1".into(),
                step,
                name: "s".into(),
                action: "true".into(),
                status,
                exit_code: None,
                duration_seconds: 0.1,
                output: String::new(),
            });
        }
        all.extend(events);
        log.append_all(all).expect("appended, chained");
        let ledger = opsgate::audit::ledger::load(&path, &Sealer::Sha256, None)
            .expect("a chained log folds");
        let policy = &common::POLICY;
        let now = chrono::Utc::now();
        for p in ledger.plans() {
            let verdict = p.verdict(&policy.policy, &policy.hash, now);
            let _ = p.status(&verdict, |_| false);
            let _ = p.dry_run_exercised(&[1, 2, u32::MAX]);
            for run in &p.runs {
                let _ = p.rollback_verdict(run, &policy.policy, &policy.hash, now);
                let _ = run.unfinished_step();
                let work = opsgate::exec::engine::rollback_work(&cp.plan, &run.completed_steps());
                prop_assert!(work.len() <= cp.plan.steps.len() + 1);
                let resumed = run.completed_prefix();
                prop_assert!(resumed.iter().all(|i| *i < u32::MAX as usize));
            }
        }
        for run_id in ["r1", "r2", "r3"] {
            let _ = ledger.run(run_id);
        }
        // The binary folds the same log for `status`: it answers, it does
        // not panic (exit 101).
        let out = common::opsgate_command(&path, None)
            .args(["status", "--json"])
            .output()
            .expect("opsgate runs");
        prop_assert!(
            matches!(out.status.code(), Some(0 | 1 | 3)),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The engine resumed from what a crafted run says it completed: a
    /// step index past the plan starts nothing and panics nothing.
    #[test]
    fn the_engine_takes_crafted_resumed_steps(
        resumed in prop::collection::vec(prop_oneof![Just(usize::MAX), 0usize..4, any::<usize>()], 0..4)
    ) {
        let cp = plan();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AuditLog::open(&dir.path().join("audit.jsonl"), Sealer::Sha256, Default::default())
            .expect("log");
        let (_tx, stop) = tokio::sync::watch::channel(opsgate::exec::Stop::Run);
        let backends = opsgate::native::Backends::new(&Default::default());
        let engine = opsgate::exec::engine::Engine::new(opsgate::exec::engine::RunSpec {
            log: &log,
            plan_id: "p",
            plan: &cp.plan,
            policy_hash: &common::POLICY.hash,
            run_id: "r1".into(),
            user: "u".into(),
            backends: &backends,
        })
        .risks(Vec::new())
        .grace(std::time::Duration::from_secs(1))
        .stop(stop)
        .resumed(resumed.clone())
        .env(BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]));
        let lock = opsgate::audit::ledger::RunLock::take(log.path(), "p1", "r1").expect("the run's lock");
        let permit = opsgate::exec::engine::RollbackPermit::new(approval(&cp), &lock);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let report = rt
            .block_on(engine.run(&opsgate::exec::engine::Authority::DryRun))
            .expect("the run ends");
        let report = rt
            .block_on(engine.rollback(&permit, &report, "crafted", true))
            .map(|_| ());
        prop_assert!(report.is_ok(), "{report:?}");
    }
}
