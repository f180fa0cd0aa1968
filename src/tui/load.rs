//! Building the plan rows: every plan the audit log knows, and the plan
//! files given (or found in `plans/`), each with its status and approvals.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::state::{AuditEntry, AuditView, Banner, KindFilter, PlanRow, RowStatus, Source};
use crate::audit::Sealer;
use crate::audit::ledger::load;
use crate::audit::mark::HighWater;
use crate::core::approval::{Subject, requirement};
use std::collections::BTreeMap;

use crate::core::plan::{ClassifiedPlan, Plan, parse_doc, review_with};
use crate::core::policy::LoadedPolicy;
use crate::core::state::{Ledger, PlanState};

pub use crate::app::plans::plan_files;

/// Parameter values changed in the TUI, by plan id: a modified plan is a
/// new plan, with a new hash.
pub type Overrides = BTreeMap<String, BTreeMap<String, String>>;

/// Loads a plan file, with the overrides for its plan id applied.
fn load_with(
    f: &Path,
    text: &str,
    policy: &LoadedPolicy,
    overrides: &Overrides,
    now: DateTime<Utc>,
) -> Result<ClassifiedPlan, crate::core::plan::PlanErrors> {
    let name = f.display().to_string();
    let doc = parse_doc(&name, text)?;
    let read = crate::app::plans::READER;
    let cp = review_with(
        &doc,
        &name,
        text,
        policy,
        now.date_naive(),
        &BTreeMap::new(),
        &read,
    )?;
    match overrides.get(&cp.plan.id) {
        Some(o) if !o.is_empty() => {
            review_with(&doc, &name, text, policy, now.date_naive(), o, &read)
        }
        _ => Ok(cp),
    }
}

/// What the Plans screen shows.
#[derive(Debug)]
pub struct Loaded {
    pub rows: Vec<PlanRow>,
    /// Plan files that do not load.
    pub problems: Vec<String>,
    /// Native backends whose circuit breaker was last recorded other than
    /// closed: `ec2 breaker open`.
    pub breakers: Vec<String>,
}

/// Rows, problems and breakers, from one fold of the log.
pub fn load_all(
    policy: &LoadedPolicy,
    log: &Path,
    sealer: &Sealer,
    mark: Option<&HighWater>,
    files: &[PathBuf],
    overrides: &Overrides,
    now: DateTime<Utc>,
) -> Result<Loaded, String> {
    let ledger = if log.exists() {
        load(log, sealer, mark).map_err(|e| format!("{}: {e}", log.display()))?
    } else {
        Ledger::default()
    };
    Ok(rows_from(&ledger, policy, log, files, overrides, now))
}

/// Rows, problems and breakers, from `ledger` (the state of the log at
/// `log`, folded by the caller: from the start, or through a long-lived
/// incremental cache).
pub fn rows_from(
    ledger: &Ledger,
    policy: &LoadedPolicy,
    log: &Path,
    files: &[PathBuf],
    overrides: &Overrides,
    now: DateTime<Utc>,
) -> Loaded {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut from_files = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let cp = match load_with(f, &text, policy, overrides, now) {
            Ok(cp) => cp,
            Err(e) => {
                problems.push(
                    e.0.first()
                        .map_or_else(|| f.display().to_string(), ToString::to_string),
                );
                continue;
            }
        };
        from_files.push(cp.plan.id.clone());
        let row = match ledger.plan(&cp.plan.id) {
            Some(state) if state.submission.plan_hash == cp.hash => {
                submitted_row(state, cp, Source::File(f.clone()), policy, now, log)
            }
            _ => new_row(cp, Source::File(f.clone()), policy),
        };
        rows.push(row);
    }
    let mut logged: Vec<&PlanState> = ledger
        .plans()
        .filter(|p| !from_files.contains(&p.plan_id))
        .collect();
    logged.sort_by_key(|p| std::cmp::Reverse(p.submission.ts));
    for state in logged {
        let Ok(plan) = Plan::from_json(state.submission.plan.clone()) else {
            problems.push(format!(
                "plan `{}` in the log cannot be read back",
                state.plan_id
            ));
            continue;
        };
        let cp = ClassifiedPlan::from_plan(plan, &policy.rules);
        rows.push(submitted_row(state, cp, Source::Log, policy, now, log));
    }
    let breakers = ledger
        .breakers()
        .filter(|b| b.state != "closed")
        .map(|b| format!("{} breaker {}", b.backend, b.state.replace('_', "-")))
        .collect();
    Loaded {
        rows,
        problems,
        breakers,
    }
}

fn submitted_row(
    state: &PlanState,
    review: ClassifiedPlan,
    source: Source,
    policy: &LoadedPolicy,
    now: DateTime<Utc>,
    log: &Path,
) -> PlanRow {
    let view = crate::app::views::plan_status(state, policy, log, now);
    PlanRow {
        source,
        review,
        status: RowStatus::Plan(view.status),
        approvers: view.approvers,
        needed: view.needed,
        missing: view.missing,
        submitted_at: Some(state.submission.ts),
    }
}

fn new_row(review: ClassifiedPlan, source: Source, policy: &LoadedPolicy) -> PlanRow {
    let author = review.plan.author.clone().unwrap_or_default();
    let subject = Subject {
        plan_id: &review.plan.id,
        plan_hash: &review.hash,
        risk: review.risk,
        author: &author,
        author_key: None,
        mutates_production: review.mutates_production(),
        has_override: review.plan.production_override.is_some(),
    };
    let (needed, missing) = match requirement(&policy.policy, &subject) {
        Ok(r) => (
            r.approvals,
            Some(format!(
                "not submitted; approving submits it (needs {} approval(s))",
                r.approvals
            )),
        ),
        Err(refusal) => (0, Some(refusal.0)),
    };
    PlanRow {
        source,
        review,
        status: RowStatus::Unsubmitted,
        approvers: Vec::new(),
        needed,
        missing,
        submitted_at: None,
    }
}

/// How many of the latest records the Audit screen holds.
pub const AUDIT_RECORDS: usize = 5000;

/// The Audit screen's data: the chain's verdict and the latest records,
/// read in one streaming pass each.
pub fn audit_view(log: &Path, sealer: &Sealer, plan: Option<String>) -> AuditView {
    use crate::audit::read::{LineReader, RecordView};
    use crate::audit::verify::verify_file;
    use crate::core::event::{Record, short};
    let banner = match verify_file(log, sealer, None) {
        Ok(r) => match (&r.problem, &r.head) {
            (Some(p), _) => Banner::Broken(p.to_string()),
            (None, Some(h)) => Banner::Intact {
                events: r.events,
                seq: h.seq,
                hash: short(&h.hash).to_owned(),
            },
            (None, None) => Banner::Empty,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Banner::Empty,
        Err(e) => Banner::Broken(e.to_string()),
    };
    let mut entries = std::collections::VecDeque::new();
    if let Ok(mut reader) = LineReader::open(log) {
        while let Some(Ok(line)) = reader.next_line() {
            if !line.complete {
                break;
            }
            let (Ok(view), Ok(record)) = (
                RecordView::parse(line.bytes),
                serde_json::from_slice::<Record>(line.bytes),
            ) else {
                continue;
            };
            entries.push_back(AuditEntry {
                seq: view.seq,
                ts: record.ts,
                kind: view.kind.clone(),
                plan_id: view.plan_id.clone().unwrap_or_default(),
                run_id: view.run_id.clone().unwrap_or_default(),
                step: view.step,
                status: view.status.clone().unwrap_or_default(),
                who: view.who().unwrap_or_default().to_owned(),
                duration: view.duration_seconds,
                summary: record.event.summary(),
            });
            if entries.len() > AUDIT_RECORDS {
                entries.pop_front();
            }
        }
    }
    let entries: Vec<AuditEntry> = entries.into();
    let mut view = AuditView {
        entries,
        banner,
        plan,
        kinds: KindFilter::All,
        selected: 0,
    };
    view.selected = view.visible().len().saturating_sub(1);
    view
}
