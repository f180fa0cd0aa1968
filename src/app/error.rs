//! The application's errors, typed so that each door maps them its own way:
//! the CLI to exit codes and text, the bridge to HTTP statuses and error
//! codes, the TUI to notices. A refusal by a rule carries a [`Reason`]
//! (a closed set, each with the stable code the `refused` record and the
//! bridge's answers use), never only a sentence.

use std::path::PathBuf;

use crate::audit::AuditError;
use crate::core::approval::VoteProblem;
use crate::core::digest::PlanHash;
use crate::core::policy::PolicyError;

/// Why a rule refused an attempt. [`Reason::code`] is stable: it is
/// recorded in `refused` records and answered by the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // A decision by this person.
    SelfApproval,
    NotListed,
    AboveMaxRisk,
    ChannelNotAllowed,
    ChannelCeiling,
    Duplicate,
    /// A bridge metadata rule of the plan's level is not met.
    MetadataRule,
    /// `--as` names someone else and the policy does not trust it.
    UntrustedName,
    /// The plan's level needs a signed decision, and this one is not.
    Unsigned,
    /// The decision's signature does not verify.
    BadSignature,
    // What the decision or run is bound to.
    StalePlanHash,
    StaleSubmission,
    StalePolicyHash,
    Expired,
    /// The plan was submitted under another policy.
    PolicyChanged,
    /// The policy loaded is not the one the audit log adopted.
    PolicyNotAdopted,
    /// The policy refuses the plan at any quorum.
    RefusedByPolicy,
    /// The plan takes no more decisions (rejected, run, running…).
    Closed,
    // Runs.
    NotSubmitted,
    NotApproved,
    DryRunRequired,
    Drift,
    FilesChanged,
    FrozenPlan,
    RedactedPlan,
    Running,
    Interrupted,
    NotInterrupted,
    RunUnfinished,
    // Stops and rollbacks.
    Finished,
    NotRunning,
    DryRun,
    Succeeded,
    AlreadyRolledBack,
    /// Any other refusal (a plan changed since a dialog showed it, the
    /// engine refusing to start a rollback).
    Other,
}

impl Reason {
    /// The stable code: `self_approval`, `stale_plan_hash`…
    pub fn code(self) -> &'static str {
        match self {
            Reason::SelfApproval => "self_approval",
            Reason::NotListed => "not_listed",
            Reason::AboveMaxRisk => "above_max_risk",
            Reason::ChannelNotAllowed => "channel_not_allowed",
            Reason::ChannelCeiling => "channel_ceiling",
            Reason::Duplicate => "duplicate",
            Reason::MetadataRule => "metadata_rule",
            Reason::UntrustedName => "untrusted_name",
            Reason::Unsigned => "unsigned",
            Reason::BadSignature => "bad_signature",
            Reason::StalePlanHash => "stale_plan_hash",
            Reason::StaleSubmission => "stale_submission",
            Reason::StalePolicyHash => "stale_policy_hash",
            Reason::Expired => "expired",
            Reason::PolicyChanged => "policy_changed",
            Reason::PolicyNotAdopted => "policy_not_adopted",
            Reason::RefusedByPolicy => "refused_by_policy",
            Reason::Closed => "closed",
            Reason::NotSubmitted => "not_submitted",
            Reason::NotApproved => "not_approved",
            Reason::DryRunRequired => "dry_run_required",
            Reason::Drift => "drift",
            Reason::FilesChanged => "files_changed",
            Reason::FrozenPlan => "frozen_plan",
            Reason::RedactedPlan => "redacted_plan",
            Reason::Running => "running",
            Reason::Interrupted => "interrupted",
            Reason::NotInterrupted => "not_interrupted",
            Reason::RunUnfinished => "run_unfinished",
            Reason::Finished => "finished",
            Reason::NotRunning => "not_running",
            Reason::DryRun => "dry_run",
            Reason::Succeeded => "succeeded",
            Reason::AlreadyRolledBack => "already_rolled_back",
            Reason::Other => "refused",
        }
    }
}

impl From<&VoteProblem> for Reason {
    fn from(p: &VoteProblem) -> Self {
        match p {
            VoteProblem::SelfApproval => Reason::SelfApproval,
            VoteProblem::NotListed => Reason::NotListed,
            VoteProblem::AboveMaxRisk { .. } => Reason::AboveMaxRisk,
            VoteProblem::ChannelNotAllowed { .. } => Reason::ChannelNotAllowed,
            VoteProblem::ChannelCeiling { .. } => Reason::ChannelCeiling,
            VoteProblem::StalePlanHash { .. } => Reason::StalePlanHash,
            VoteProblem::StalePolicyHash { .. } => Reason::StalePolicyHash,
            VoteProblem::Expired { .. } => Reason::Expired,
            VoteProblem::Duplicate => Reason::Duplicate,
            VoteProblem::Unsigned { .. } => Reason::Unsigned,
            VoteProblem::BadSignature { .. } => Reason::BadSignature,
        }
    }
}

/// A refusal by a rule: why, in words, and the plan hash it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub plan_hash: Option<PlanHash>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused by a rule; recorded as a `refused` record (for an
    /// identified caller) before it is returned.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The request itself is wrong (a missing reason, a hash too short).
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist (no such plan or run).
    #[error("{0}")]
    NotFound(String),
    /// The audit log cannot be used: nothing is decided or run on a log
    /// that does not verify, ends torn, or is behind its high-water mark.
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// A plan file that does not load: every problem, with its place.
    #[error("{} problem(s)", .0.0.len())]
    Plan(crate::core::plan::PlanErrors),
    /// Anything else, with its message.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// A refusal for `reason`.
pub fn refuse(reason: Reason, message: impl Into<String>) -> Error {
    Error::Refused(Refusal {
        reason,
        message: message.into(),
        plan_hash: None,
    })
}

/// A refusal for `reason`, about the plan at `hash`.
pub fn refuse_for(reason: Reason, hash: &PlanHash, message: impl Into<String>) -> Error {
    Error::Refused(Refusal {
        reason,
        message: message.into(),
        plan_hash: Some(hash.clone()),
    })
}

impl From<crate::exec::engine::ExecError> for Error {
    fn from(e: crate::exec::engine::ExecError) -> Self {
        match e {
            crate::exec::engine::ExecError::Audit(a) => Error::Audit(a),
            crate::exec::engine::ExecError::Refused(m) => refuse(Reason::Other, m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
