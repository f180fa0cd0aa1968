//! Audit events and records (format v1, see `docs/audit-format.md`): plain
//! data, so the state fold and the approval rules stay pure; writing and
//! sealing them is `crate::audit`.
//!
//! A record is one JSON line: `v`, `seq`, `ts`, `type`, the event's fields,
//! `alg`/`key_id` when keyed, `prev`, and `hash` last. Field order is the
//! declaration order below, never a map's iteration order; nested maps are
//! `BTreeMap`s or sorted JSON objects.
//!
//! Long on purpose: it is the record format, every event kind and field
//! the log can hold, in one place, so that a change to the format is one
//! diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::core::digest::{PlanHash, PolicyHash};
use crate::core::identity::Proof;
use crate::core::redact::Redactor;
use crate::core::risk::RiskLevel;

/// The record format this build writes. It reads every version from
/// [`OLDEST_VERSION`] up to this one (`docs/audit-format.md`).
pub const VERSION: u32 = 5;

/// The oldest record format this build still reads.
pub const OLDEST_VERSION: u32 = 1;

/// Where an approval came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Tui,
    Cli,
    Chat,
    /// The engine itself, e.g. for an expiry.
    System,
}

/// The outcome of a check, step, rollback or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Succeeded,
    Failed,
    TimedOut,
    Killed,
    Skipped,
    Cancelled,
    Interrupted,
}

impl Status {
    /// The one-character mark shown beside a step: ✓, – (skipped) or ✗.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Passed | Status::Succeeded => "✓",
            Status::Skipped => "–",
            _ => "✗",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Killed => "killed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    Pre,
    Post,
}

/// An approval decision, granted, rejected or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub plan_id: String,
    pub plan_hash: PlanHash,
    pub policy_hash: PolicyHash,
    pub risk: RiskLevel,
    pub approver: String,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// v2: the seq of the `plan_submitted` the decision was made for. A
    /// decision counts only for that submission, never for a later one
    /// with the same id and hash (a replayed request). Absent in v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_seq: Option<u64>,
    /// v2: a decision on rolling back this run, not on the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// v3: how the approver is known (the OS user, a trusted `--as`, a
    /// chat bridge's attestation). Absent before v3: unproven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Proof>,
}

/// What happened. The `type` of a record is the variant's snake_case name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    PlanSubmitted {
        plan_id: String,
        plan_hash: PlanHash,
        policy_hash: PolicyHash,
        risk: RiskLevel,
        /// The plan file's `author:`, or the submitter when it names none:
        /// a note. Separation of duties compares approvers with
        /// `submitted_by`.
        author: String,
        submitted_by: String,
        /// v3: how the submitter is known. Absent before v3: unproven.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Proof>,
        /// Whether a step mutates a production scope (for
        /// `safety.block_production`).
        #[serde(default, skip_serializing_if = "is_false")]
        mutates_production: bool,
        /// Whether redaction changed the stored plan, which then no longer
        /// matches `plan_hash` and can only be run from its file.
        #[serde(default, skip_serializing_if = "is_false")]
        redacted: bool,
        /// The full normalized plan.
        plan: serde_json::Value,
        /// The live state of each native target when the plan was
        /// submitted (`kube:ctx/ns/Kind/name` → `generation=4 uid=…`), which the
        /// run compares against before it starts (drift detection).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        fingerprints: BTreeMap<String, String>,
    },
    ApprovalGranted(Decision),
    ApprovalRejected(Decision),
    ApprovalExpired(Decision),
    RunStarted {
        plan_id: String,
        run_id: String,
        plan_hash: PlanHash,
        policy_hash: PolicyHash,
        dry_run: bool,
        user: String,
        /// For a plan with native steps: how the drift check went
        /// (`checked N target(s)`, or `exempt: REASON`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drift: Option<String>,
        /// v2: the environment variables that choose where the run acts
        /// (`KUBECONFIG`, `DOCKER_HOST`, `AWS_PROFILE`, …), as the run
        /// sees them, redacted.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    StepStarted {
        plan_id: String,
        run_id: String,
        step: u32,
        name: String,
        action: String,
        risk: RiskLevel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// v2: SHA-256 of the exact action that runs, taken before
        /// redaction: what ran is provable even where a secret is masked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action_sha256: Option<String>,
    },
    CheckFinished {
        plan_id: String,
        run_id: String,
        step: u32,
        phase: CheckPhase,
        action: String,
        status: Status,
        attempts: u32,
        duration_seconds: f64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
    },
    StepFinished {
        plan_id: String,
        run_id: String,
        step: u32,
        name: String,
        action: String,
        status: Status,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        duration_seconds: f64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
    },
    RunCancelled {
        plan_id: String,
        run_id: String,
        user: String,
        /// Whether the current step is killed rather than allowed to finish.
        kill: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RunFinished {
        plan_id: String,
        run_id: String,
        dry_run: bool,
        status: Status,
        duration_seconds: f64,
    },
    RollbackStarted {
        plan_id: String,
        run_id: String,
        reason: String,
        /// The rollback's commands, in the order they will run: recorded
        /// before the first of them runs, like every action.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        actions: Vec<String>,
        /// v2: who started it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    RollbackStepFinished {
        plan_id: String,
        run_id: String,
        step: u32,
        name: String,
        action: String,
        status: Status,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        duration_seconds: f64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output: String,
    },
    RollbackFinished {
        plan_id: String,
        run_id: String,
        status: Status,
        duration_seconds: f64,
    },
    /// A native backend's circuit breaker changed state (`open` after
    /// repeated failures, `half_open`, `closed`).
    BreakerChanged {
        backend: String,
        state: String,
        consecutive_failures: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// The failure that opened it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        error: String,
    },
    /// A torn tail was moved aside and the file truncated before this record.
    LogRepaired {
        /// Byte offset where the torn bytes began (the new end of the file).
        offset: u64,
        torn_bytes: u64,
        /// Where the bytes went; empty when their newline was restored.
        moved_to: String,
        /// v2: the torn bytes were a complete, sealed record missing only
        /// its newline, which was restored: no record was removed.
        #[serde(default, skip_serializing_if = "is_false")]
        newline_restored: bool,
    },
    /// v4: the policy in force from this record on, with its full text:
    /// the effective policy (after the overlay) as JSON, and the text of its
    /// `identity.allowed_signers` file. `opsgate init` records the first.
    PolicyAdopted {
        policy_hash: PolicyHash,
        /// The file it was loaded from (or the embedded default's name).
        source: String,
        /// The effective policy, as `policy_hash` was computed over it.
        policy: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_signers: Option<String>,
        adopted_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Proof>,
    },
    /// v5: someone proposes `policy` in place of the adopted `base_hash`
    /// (`opsgate policy adopt`). It is adopted once enough of the base
    /// policy's `identity.policy_admins` approve it.
    PolicyProposed {
        policy_hash: PolicyHash,
        /// The policy in force when it was proposed: approvals count only
        /// while it is.
        base_hash: PolicyHash,
        source: String,
        policy: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_signers: Option<String>,
        proposed_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Proof>,
        /// What `policy diff` found, as recorded for readers; whoever
        /// checks the adoption computes it again.
        loosens: bool,
        needs: u32,
    },
    /// v5: a policy admin approves the proposal at seq `proposal`, signed.
    PolicyApproved {
        proposal: u64,
        policy_hash: PolicyHash,
        base_hash: PolicyHash,
        approver: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Proof>,
    },
    /// v2: an operator checked a log that ends before this host's
    /// high-water mark (records cut from its tail) and accepted it as it
    /// is; the mark is reset to this record.
    TruncationAcknowledged {
        /// The last record this host had seen.
        expected_seq: u64,
        expected_hash: String,
        /// Where the log ended instead (0 and no hash: it was empty).
        found_seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        found_hash: Option<String>,
        user: String,
        reason: String,
    },
    /// v2: an attempt refused by a rule, from an identified caller,
    /// recorded before the answer: a self-approval, an unapproved run, a
    /// drift refusal, a stale decision.
    Refused {
        /// What was attempted: `approve`, `reject`, `run`, `dry_run`,
        /// `resume`, `rollback`, `cancel`.
        attempt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        user: String,
        channel: Channel,
        /// A stable reason code (`self_approval`, `not_approved`, `drift`, …).
        code: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_hash: Option<PlanHash>,
        policy_hash: PolicyHash,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<String, serde_json::Value>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Event {
    /// The record `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::PlanSubmitted { .. } => "plan_submitted",
            Event::ApprovalGranted(_) => "approval_granted",
            Event::ApprovalRejected(_) => "approval_rejected",
            Event::ApprovalExpired(_) => "approval_expired",
            Event::RunStarted { .. } => "run_started",
            Event::StepStarted { .. } => "step_started",
            Event::CheckFinished { .. } => "check_finished",
            Event::StepFinished { .. } => "step_finished",
            Event::RunCancelled { .. } => "run_cancelled",
            Event::RunFinished { .. } => "run_finished",
            Event::RollbackStarted { .. } => "rollback_started",
            Event::RollbackStepFinished { .. } => "rollback_step_finished",
            Event::RollbackFinished { .. } => "rollback_finished",
            Event::BreakerChanged { .. } => "breaker_changed",
            Event::LogRepaired { .. } => "log_repaired",
            Event::TruncationAcknowledged { .. } => "truncation_acknowledged",
            Event::PolicyAdopted { .. } => "policy_adopted",
            Event::PolicyProposed { .. } => "policy_proposed",
            Event::PolicyApproved { .. } => "policy_approved",
            Event::Refused { .. } => "refused",
        }
    }

    /// Masks secrets in every free-text field, before the record is hashed.
    pub fn redact(&mut self, r: &Redactor) {
        match self {
            Event::PlanSubmitted {
                author,
                submitted_by,
                redacted,
                plan,
                ..
            } => {
                r.redact_in_place(author);
                r.redact_in_place(submitted_by);
                let before = plan.clone();
                r.redact_json(plan);
                *redacted |= *plan != before;
            }
            Event::ApprovalGranted(d) | Event::ApprovalRejected(d) | Event::ApprovalExpired(d) => {
                r.redact_in_place(&mut d.approver);
                if let Some(reason) = &mut d.reason {
                    r.redact_in_place(reason);
                }
                let mut meta = serde_json::Value::Object(
                    std::mem::take(&mut d.metadata).into_iter().collect(),
                );
                r.redact_json(&mut meta);
                if let serde_json::Value::Object(m) = meta {
                    d.metadata = m.into_iter().collect();
                }
            }
            Event::RunStarted { user, env, .. } => {
                r.redact_in_place(user);
                for (k, v) in env.iter_mut() {
                    let line = format!("{k}={v}");
                    if let std::borrow::Cow::Owned(masked) = r.redact(&line) {
                        *v = masked
                            .strip_prefix(&format!("{k}="))
                            .unwrap_or(crate::core::redact::MASK)
                            .to_owned();
                    }
                }
            }
            Event::StepStarted {
                name,
                action,
                resource,
                ..
            } => {
                r.redact_in_place(name);
                r.redact_in_place(action);
                if let Some(res) = resource {
                    r.redact_in_place(res);
                }
            }
            Event::CheckFinished { action, output, .. } => {
                r.redact_in_place(action);
                r.redact_in_place(output);
            }
            Event::StepFinished {
                name,
                action,
                output,
                ..
            }
            | Event::RollbackStepFinished {
                name,
                action,
                output,
                ..
            } => {
                r.redact_in_place(name);
                r.redact_in_place(action);
                r.redact_in_place(output);
            }
            Event::RunCancelled { user, reason, .. } => {
                r.redact_in_place(user);
                if let Some(reason) = reason {
                    r.redact_in_place(reason);
                }
            }
            Event::RollbackStarted {
                reason,
                actions,
                user,
                ..
            } => {
                r.redact_in_place(reason);
                actions.iter_mut().for_each(|a| r.redact_in_place(a));
                if let Some(u) = user {
                    r.redact_in_place(u);
                }
            }
            Event::BreakerChanged { error, .. } => r.redact_in_place(error),
            Event::TruncationAcknowledged { user, reason, .. } => {
                r.redact_in_place(user);
                r.redact_in_place(reason);
            }
            // The policy is kept whole, or its hash could not be checked
            // again: it holds token digests, never secrets.
            Event::PolicyAdopted { adopted_by, .. } => r.redact_in_place(adopted_by),
            Event::PolicyProposed { proposed_by, .. } => r.redact_in_place(proposed_by),
            Event::PolicyApproved { approver, .. } => r.redact_in_place(approver),
            Event::Refused {
                user,
                reason,
                metadata,
                ..
            } => {
                r.redact_in_place(user);
                r.redact_in_place(reason);
                let mut meta =
                    serde_json::Value::Object(std::mem::take(metadata).into_iter().collect());
                r.redact_json(&mut meta);
                if let serde_json::Value::Object(m) = meta {
                    *metadata = m.into_iter().collect();
                }
            }
            Event::RunFinished { .. }
            | Event::RollbackFinished { .. }
            | Event::LogRepaired { .. } => {}
        }
    }

    /// A one-line human summary of the event's payload.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            Event::PlanSubmitted {
                plan_id,
                plan_hash,
                risk,
                author,
                submitted_by,
                ..
            } => write!(
                s,
                "{plan_id}  {risk} by {author} (submitted by {submitted_by}) {}",
                short(plan_hash.as_str())
            ),
            Event::ApprovalGranted(d) | Event::ApprovalRejected(d) | Event::ApprovalExpired(d) => {
                let channel = serde_json::to_value(d.channel)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let r = write!(
                    s,
                    "{}  {} by {} via {channel} {}",
                    d.plan_id,
                    d.risk,
                    d.approver,
                    short(d.plan_hash.as_str())
                );
                if let Some(reason) = &d.reason {
                    let _ = write!(s, ": {reason}");
                }
                r
            }
            Event::RunStarted {
                plan_id,
                run_id,
                dry_run,
                user,
                ..
            } => write!(
                s,
                "{plan_id}/{run_id}  {}by {user}",
                if *dry_run { "dry run " } else { "" }
            ),
            Event::StepStarted {
                plan_id,
                run_id,
                step,
                name,
                action,
                risk,
                ..
            } => write!(
                s,
                "{plan_id}/{run_id}  step {step} {name} [{risk}]: {action}"
            ),
            Event::CheckFinished {
                plan_id,
                run_id,
                step,
                phase,
                status,
                attempts,
                duration_seconds,
                ..
            } => write!(
                s,
                "{plan_id}/{run_id}  step {step} {}-check {} after {attempts} attempt(s) in {duration_seconds:.3}s",
                if *phase == CheckPhase::Pre {
                    "pre"
                } else {
                    "post"
                },
                status.as_str()
            ),
            Event::StepFinished {
                plan_id,
                run_id,
                step,
                name,
                status,
                exit_code,
                duration_seconds,
                ..
            }
            | Event::RollbackStepFinished {
                plan_id,
                run_id,
                step,
                name,
                status,
                exit_code,
                duration_seconds,
                ..
            } => {
                let r = write!(
                    s,
                    "{plan_id}/{run_id}  step {step} {name} {} in {duration_seconds:.3}s",
                    status.as_str()
                );
                if let Some(code) = exit_code {
                    let _ = write!(s, " (exit {code})");
                }
                r
            }
            Event::RunCancelled {
                plan_id,
                run_id,
                user,
                kill,
                ..
            } => write!(
                s,
                "{plan_id}/{run_id}  by {user}{}",
                if *kill {
                    ", killing the current step"
                } else {
                    ", after the current step"
                }
            ),
            Event::RunFinished {
                plan_id,
                run_id,
                status,
                duration_seconds,
                dry_run,
            } => write!(
                s,
                "{plan_id}/{run_id}  {}{} in {duration_seconds:.3}s",
                if *dry_run { "dry run " } else { "" },
                status.as_str()
            ),
            Event::RollbackStarted {
                plan_id,
                run_id,
                reason,
                ..
            } => write!(s, "{plan_id}/{run_id}  {reason}"),
            Event::RollbackFinished {
                plan_id,
                run_id,
                status,
                duration_seconds,
            } => write!(
                s,
                "{plan_id}/{run_id}  {} in {duration_seconds:.3}s",
                status.as_str()
            ),
            Event::BreakerChanged {
                backend,
                state,
                consecutive_failures,
                error,
                ..
            } => write!(
                s,
                "{backend} breaker {state} after {consecutive_failures} consecutive failure(s){}",
                if error.is_empty() {
                    String::new()
                } else {
                    format!(": {error}")
                }
            ),
            Event::LogRepaired {
                offset,
                torn_bytes,
                moved_to,
                newline_restored,
            } => {
                if *newline_restored {
                    write!(
                        s,
                        "the newline of the {torn_bytes}-byte record at offset {offset} restored"
                    )
                } else {
                    write!(
                        s,
                        "{torn_bytes} torn byte(s) at offset {offset} moved to {moved_to}"
                    )
                }
            }
            Event::PolicyAdopted {
                policy_hash,
                source,
                adopted_by,
                ..
            } => write!(
                s,
                "policy {} adopted from {source} by {adopted_by}",
                policy_hash.as_str()
            ),
            Event::PolicyProposed {
                policy_hash,
                base_hash,
                proposed_by,
                loosens,
                needs,
                ..
            } => write!(
                s,
                "policy {} proposed by {proposed_by} in place of {} ({}; {needs} admin approval(s) needed)",
                policy_hash.as_str(),
                base_hash.as_str(),
                if *loosens { "loosens" } else { "tightens only" }
            ),
            Event::PolicyApproved {
                proposal,
                policy_hash,
                approver,
                ..
            } => write!(
                s,
                "policy {} (proposal at seq {proposal}) approved by {approver}",
                policy_hash.as_str()
            ),
            Event::TruncationAcknowledged {
                expected_seq,
                found_seq,
                user,
                reason,
                ..
            } => write!(
                s,
                "log ends at seq {found_seq}, this host saw seq {expected_seq}: accepted by {user}: {reason}"
            ),
            Event::Refused {
                attempt,
                plan_id,
                run_id,
                user,
                code,
                reason,
                ..
            } => {
                let what = match (plan_id, run_id) {
                    (Some(p), Some(r)) => format!("{p}/{r}"),
                    (Some(p), None) => p.clone(),
                    (None, Some(r)) => r.clone(),
                    (None, None) => "-".into(),
                };
                write!(s, "{what}  {attempt} by {user} refused ({code}): {reason}")
            }
        };
        s
    }
}

/// Whether a character is shown escaped rather than as itself: a control
/// character (newlines, CR, FF, escape sequences, U+0085), or an invisible
/// format character that reorders or hides text on screen (bidi embeddings,
/// overrides and isolates such as U+202E, zero-width characters, line and
/// paragraph separators, the BOM, Unicode tags). Any of these can make a
/// `rm -rf` line render as something harmless.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Text fit for one terminal line: control characters (newlines, escape
/// sequences) and invisible format characters (bidi overrides, zero-width
/// characters) are shown escaped, so a record's or a plan's text cannot
/// break the line, forge another record, or hide what a command does.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_hidden_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden_char(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A multi-line text (a command) as printable lines: split on `\n` only,
/// so a carriage return stays in its line and is shown escaped.
pub fn printable_lines(s: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    s.trim_end_matches('\n').split('\n').map(printable)
}

/// `sha256:0123456789ab`: enough to recognise a hash on screen.
pub fn short(hash: &str) -> &str {
    let end = hash.find(':').map_or(0, |i| i + 1) + 12;
    hash.get(..end).unwrap_or(hash)
}

/// A whole record as read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub seq: u64,
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub prev: String,
    pub hash: String,
}

/// A record before it is sealed: everything but `hash`, in record order.
#[derive(Serialize)]
pub(crate) struct Unsealed<'a> {
    pub v: u32,
    pub seq: u64,
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub event: &'a Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
    pub prev: &'a str,
}

/// `2026-01-26T13:00:00.123Z`: UTC with milliseconds.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) mod ts_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
