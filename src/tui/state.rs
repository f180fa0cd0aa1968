//! The TUI's model: everything the view draws, nothing it computes.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::core::digest::PlanHash;
use crate::core::event::Status;
use crate::core::plan::ClassifiedPlan;
use crate::core::risk::RiskLevel;
use crate::core::state::PlanStatus;

/// Where a plan row came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A plan file (given on the command line or found in `plans/`).
    File(PathBuf),
    /// Only the audit log knows it.
    Log,
}

/// A plan's standing as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// A file never submitted (or changed since it was).
    Unsubmitted,
    Plan(PlanStatus),
}

impl RowStatus {
    pub fn label(self) -> &'static str {
        match self {
            RowStatus::Unsubmitted => "new",
            RowStatus::Plan(s) => match s {
                PlanStatus::RolledBack => "rolled back",
                other => other.as_str(),
            },
        }
    }
}

/// One plan in the list.
#[derive(Debug, Clone)]
pub struct PlanRow {
    pub source: Source,
    pub review: ClassifiedPlan,
    pub status: RowStatus,
    pub approvers: Vec<String>,
    pub needed: u32,
    /// What is missing before it may run.
    pub missing: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
}

impl PlanRow {
    pub fn id(&self) -> &str {
        &self.review.plan.id
    }

    pub fn risk(&self) -> RiskLevel {
        self.review.risk
    }
}

/// The status filter `tab` cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    All,
    Open,
    Running,
    Done,
}

impl StatusFilter {
    pub fn next(self) -> Self {
        match self {
            StatusFilter::All => StatusFilter::Open,
            StatusFilter::Open => StatusFilter::Running,
            StatusFilter::Running => StatusFilter::Done,
            StatusFilter::Done => StatusFilter::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Open => "open",
            StatusFilter::Running => "running",
            StatusFilter::Done => "done",
        }
    }

    pub fn admits(self, s: RowStatus) -> bool {
        match (self, s) {
            (StatusFilter::All, _) => true,
            (StatusFilter::Open, RowStatus::Unsubmitted) => true,
            (StatusFilter::Open, RowStatus::Plan(p)) => p.is_open(),
            (StatusFilter::Running, RowStatus::Plan(p)) => {
                matches!(p, PlanStatus::Running | PlanStatus::Interrupted)
            }
            (StatusFilter::Done, RowStatus::Plan(p)) => {
                !p.is_open() && !matches!(p, PlanStatus::Running | PlanStatus::Interrupted)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Plans,
    Detail,
    Run,
    Audit,
}

/// One record on the Audit screen.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub kind: String,
    pub plan_id: String,
    pub run_id: String,
    pub step: Option<u32>,
    pub status: String,
    pub who: String,
    pub duration: Option<f64>,
    pub summary: String,
}

/// What verifying the chain said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Banner {
    Intact { events: u64, seq: u64, hash: String },
    Empty,
    Broken(String),
}

/// Which records the timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindFilter {
    #[default]
    All,
    Decisions,
    Runs,
    Failures,
}

impl KindFilter {
    pub fn next(self) -> Self {
        match self {
            KindFilter::All => KindFilter::Decisions,
            KindFilter::Decisions => KindFilter::Runs,
            KindFilter::Runs => KindFilter::Failures,
            KindFilter::Failures => KindFilter::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KindFilter::All => "all",
            KindFilter::Decisions => "decisions",
            KindFilter::Runs => "runs",
            KindFilter::Failures => "failures",
        }
    }

    pub fn admits(self, e: &AuditEntry) -> bool {
        match self {
            KindFilter::All => true,
            KindFilter::Decisions => {
                e.kind.starts_with("approval_") || e.kind == "plan_submitted" || e.kind == "refused"
            }
            KindFilter::Runs => e.kind.starts_with("run_") || e.kind.starts_with("rollback_"),
            KindFilter::Failures => {
                matches!(
                    e.status.as_str(),
                    "failed" | "timed_out" | "killed" | "cancelled" | "interrupted"
                ) || e.kind == "approval_rejected"
                    || e.kind == "refused"
            }
        }
    }
}

/// The Audit screen: the latest records, the chain's verdict, filters.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditView {
    pub entries: Vec<AuditEntry>,
    pub banner: Banner,
    /// Replay: only this plan's records.
    pub plan: Option<String>,
    pub kinds: KindFilter,
    /// Index into `visible()` of the selected record.
    pub selected: usize,
}

impl AuditView {
    pub fn visible(&self) -> Vec<&AuditEntry> {
        self.entries
            .iter()
            .filter(|e| self.plan.as_ref().is_none_or(|p| &e.plan_id == p))
            .filter(|e| self.kinds.admits(e))
            .collect()
    }
}

/// A step on the Run screen.
#[derive(Debug, Clone, PartialEq)]
pub enum StepProgress {
    Pending,
    Running { since: DateTime<Utc> },
    Done { status: Status, seconds: f64 },
}

/// Where the rollback of a failed or stopped run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackPhase {
    NotNeeded,
    /// The prompt is showing.
    Offered,
    Declined,
    Running,
    Done(Status),
}

/// The run being watched.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub plan_id: String,
    pub run_id: String,
    pub dry_run: bool,
    pub steps: Vec<(String, StepProgress)>,
    /// The last lines of output and check results.
    pub output: Vec<String>,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
    /// Stop requests sent (the second kills).
    pub stops: u8,
    pub started: DateTime<Utc>,
    /// The run's status and length, once it ended.
    pub finished: Option<(Status, f64)>,
    pub rollback: RollbackPhase,
    pub error: Option<String>,
}

/// How many output lines the Run screen keeps.
pub const OUTPUT_LINES: usize = 2000;

impl RunView {
    pub fn new(
        plan_id: String,
        run_id: String,
        steps: Vec<String>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Self {
        RunView {
            plan_id,
            run_id,
            dry_run,
            steps: steps
                .into_iter()
                .map(|s| (s, StepProgress::Pending))
                .collect(),
            output: Vec::new(),
            scroll: 0,
            stops: 0,
            started: now,
            finished: None,
            rollback: RollbackPhase::NotNeeded,
            error: None,
        }
    }

    pub fn push_output(&mut self, line: String) {
        self.output.push(line);
        if self.output.len() > OUTPUT_LINES {
            let extra = self.output.len() - OUTPUT_LINES;
            self.output.drain(..extra);
        }
    }

    /// Steps done, of all.
    pub fn done(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, p)| matches!(p, StepProgress::Done { .. }))
            .count()
    }

    /// Whether the run (and any rollback) is over, so the screen may close.
    pub fn settled(&self) -> bool {
        self.finished.is_some()
            && !matches!(
                self.rollback,
                RollbackPhase::Offered | RollbackPhase::Running
            )
    }
}

/// A modal dialog. Destructive ones have explicit state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// Approving: CRITICAL needs the plan id typed. The dialog carries the
    /// hash and level it showed: Enter approves exactly that plan, or
    /// refuses if the plan changed meanwhile.
    Approve {
        plan_id: String,
        hash: PlanHash,
        level: RiskLevel,
        typed: String,
    },
    /// Rejecting asks a reason.
    Reject {
        plan_id: String,
        reason: String,
    },
    /// `e`: every step's level and the reasons for it.
    Explain {
        plan_id: String,
    },
    /// `x`: confirm the execution with Enter, of the plan with the hash
    /// shown.
    ConfirmRun {
        plan_id: String,
        hash: PlanHash,
    },
    /// `m`: change a parameter. `params` are the plan's, `index` the one
    /// being edited, `value` its new text.
    Modify {
        plan_id: String,
        params: Vec<(String, String)>,
        index: usize,
        value: String,
    },
    Help,
}

/// A message on the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

/// The whole UI state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Who approves (the OS user, or `--as`).
    pub user: String,
    pub policy_hash: String,
    pub rows: Vec<PlanRow>,
    /// Index into `rows` of the selected plan.
    pub selected: usize,
    /// The selected step on the detail screen.
    pub step: usize,
    pub filter: String,
    pub filtering: bool,
    pub status_filter: StatusFilter,
    pub screen: Screen,
    pub dialog: Option<Dialog>,
    pub notice: Option<Notice>,
    /// The run on the Run screen.
    pub run: Option<RunView>,
    /// The Audit screen's records.
    pub audit: Option<AuditView>,
    /// Parameters changed with `m`, by plan id (each makes a new plan).
    pub overrides: super::load::Overrides,
    /// Native backends whose breaker is not closed (`ec2 breaker open`).
    pub breakers: Vec<String>,
    pub quit: bool,
    /// The clock, as of the last tick (ages are drawn from it).
    pub now: DateTime<Utc>,
}

impl AppState {
    pub fn new(user: String, policy_hash: String, rows: Vec<PlanRow>, now: DateTime<Utc>) -> Self {
        AppState {
            user,
            policy_hash,
            rows,
            selected: 0,
            step: 0,
            filter: String::new(),
            filtering: false,
            status_filter: StatusFilter::All,
            screen: Screen::Plans,
            dialog: None,
            notice: None,
            run: None,
            audit: None,
            overrides: Default::default(),
            breakers: Vec::new(),
            quit: false,
            now,
        }
    }

    /// Indexes of the rows the filters let through, in order.
    pub fn visible(&self) -> Vec<usize> {
        let needle = self.filter.to_lowercase();
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| self.status_filter.admits(r.status))
            .filter(|(_, r)| {
                needle.is_empty()
                    || r.id().to_lowercase().contains(&needle)
                    || r.review.plan.title.to_lowercase().contains(&needle)
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub fn current(&self) -> Option<&PlanRow> {
        self.rows.get(self.selected)
    }
}
