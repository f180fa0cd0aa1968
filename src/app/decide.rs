//! Decisions: approving and rejecting a plan, and approving the rollback of
//! a run, from any door (CLI, TUI, chat).
//!
//! Every check runs under the audit log's lock, on state folded from the
//! verified log, so two approvers racing cannot both count as the second;
//! a refusal is recorded as a `refused` record in the same write.

use chrono::Utc;

use super::error::{Error, Reason, Result, refuse_for};
use super::ledger::{fold, with_ledger};
use super::refusal::{Attempt, append_or_record};
use crate::audit::ledger::{LedgerCache, run_is_live};
use crate::audit::{Appended, AuditLog, Channel, Decision, Event};
use crate::core::approval::{Verdict, requirement, same_person};
use crate::core::event::short;
use crate::core::identity::{Actor, Proof, Statement};
use crate::core::policy::LoadedPolicy;
use crate::core::state::{Ledger, PlanState, RunState};

/// Free-form context a decision carries (a chat channel id…).
pub type Metadata = std::collections::BTreeMap<String, serde_json::Value>;

/// What a decision is bound to besides the plan id: checked under the
/// log's lock against the plan's current submission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binding<'a> {
    /// The plan hash the decider reviewed (full, or 12+ hex digits).
    pub hash: Option<&'a str>,
    /// The submission the decider saw: its `plan_submitted` seq.
    pub submission_seq: Option<u64>,
    /// The hash must be given whole (the bridge's API), not as a prefix.
    pub whole_hash: bool,
    /// When the decider's request was signed (Unix seconds), and how far
    /// the signer's clock may lag: a request signed before the current
    /// submission existed (by more than the lag) was made for an earlier
    /// one (a replay), and does not count for this one.
    pub signed_at: Option<(i64, i64)>,
}

/// What the bridge itself knows of a chat request (never the client's
/// claims): the `bridge.metadata_rules` of the plan's level read these
/// keys as facts.
#[derive(Debug, Clone, Copy)]
pub struct ChatFacts<'a> {
    /// The authenticated client.
    pub client: &'a str,
    /// The chat platform's sender id.
    pub sender: &'a str,
}

/// One decision on a plan: who, from where, bound to what, and why.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub plan_id: &'a str,
    /// The person's canonical name (`actor.name`).
    pub who: &'a str,
    /// How the person is known, recorded with the decision: a signature
    /// once [`grant`] or [`deny`] signed it with `key`.
    pub proof: Proof,
    /// The key that signs the decision, if the person has one.
    pub key: Option<&'a std::path::Path>,
    pub channel: Channel,
    pub binding: Binding<'a>,
    pub reason: Option<String>,
    pub metadata: Metadata,
    /// For a chat decision: the facts its metadata rules read.
    pub chat: Option<ChatFacts<'a>>,
}

impl<'a> Request<'a> {
    /// A decision by `actor`, with no binding, reason, metadata or chat
    /// facts.
    pub fn new(plan_id: &'a str, actor: &'a Actor, channel: Channel) -> Self {
        Request {
            plan_id,
            who: &actor.name,
            proof: actor.proof.clone(),
            key: actor.key.as_deref(),
            channel,
            binding: Binding::default(),
            reason: None,
            metadata: Metadata::new(),
            chat: None,
        }
    }

    fn attempt(&self, what: &'static str, policy: &'a LoadedPolicy) -> Attempt<'_> {
        Attempt::on_plan(what, self.who, self.channel, self.plan_id, &policy.hash)
            .with_metadata(&self.metadata)
    }
}

/// Why a decision is not for the plan's current submission, if it is not.
pub fn check_binding(plan: &PlanState, binding: &Binding<'_>) -> Result<()> {
    match binding.hash {
        Some(h) if binding.whole_hash && h != plan.submission.plan_hash.as_str() => {
            return Err(refuse_for(
                Reason::StalePlanHash,
                &plan.submission.plan_hash,
                format!(
                    "plan `{}` is now {}",
                    plan.plan_id, plan.submission.plan_hash
                ),
            ));
        }
        Some(h) => check_hash(h, plan)?,
        None => {}
    }
    let id = &plan.plan_id;
    if let Some(seq) = binding.submission_seq
        && seq != plan.submission.seq
    {
        return Err(refuse_for(
            Reason::StaleSubmission,
            &plan.submission.plan_hash,
            format!(
                "the decision is for submission {seq} of plan `{id}`, and the plan is now submission {}: review it again",
                plan.submission.seq
            ),
        ));
    }
    if let Some((at, lag)) = binding.signed_at
        && at.saturating_add(lag) < plan.submission.ts.timestamp()
    {
        return Err(refuse_for(
            Reason::StaleSubmission,
            &plan.submission.plan_hash,
            format!(
                "the decision was signed at {at}, before plan `{id}` was submitted as it is now ({}): it was made for an earlier submission",
                plan.submission.ts.timestamp()
            ),
        ));
    }
    Ok(())
}

/// Records the approval `req`, after every check, under the log's lock,
/// bound to what was reviewed. `cache`: the ledger read incrementally (a
/// long-lived door), else folded from the start.
pub fn grant(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    policy: &LoadedPolicy,
    req: &Request<'_>,
) -> Result<Vec<Appended>> {
    let req = &signed(log, policy, req, "approval_granted", None)?;
    let (id, who) = (req.plan_id, req.who);
    append_or_record(log, &req.attempt("approve", policy), |len| {
        with_ledger(log, cache, len, |ledger| {
            let adopt = super::adoption::pin(ledger, policy)?;
            if req.channel == Channel::Chat {
                check_metadata_rules(ledger, policy, req)?;
            }
            let plan = open_plan(ledger, id, policy, log)?;
            check_binding(plan, &req.binding)?;
            let hash = &plan.submission.plan_hash;
            let subject = plan.subject();
            let level = requirement(&policy.policy, &subject)
                .map_err(|r| refuse_for(Reason::RefusedByPolicy, hash, r.0))?
                .level;
            crate::core::approval::may_approve(&policy.policy, &subject, level, who, req.channel)
                .map_err(|p| refuse_for(Reason::from(&p), hash, p.describe(who, level)))?;
            let verdict = plan.verdict(&policy.policy, &policy.hash, Utc::now());
            let have = match &verdict {
                Verdict::Approved { plan, .. } => plan.approvers().to_vec(),
                Verdict::Pending { have, .. } => have.clone(),
                _ => Vec::new(),
            };
            if have.iter().any(|h| same_person(h, who)) {
                return Err(refuse_for(
                    Reason::Duplicate,
                    hash,
                    format!("{who} already approved plan `{id}`; one person counts once"),
                ));
            }
            let d = decision(plan, policy, req, req.reason.clone());
            check_identity(policy, plan, level, &d, true)?;
            Ok(super::adoption::after(
                adopt,
                vec![Event::ApprovalGranted(d)],
            ))
        })
    })
}

/// Records the rejection `req` (its reason must say why), under the log's
/// lock. Anyone may reject, unless the policy lists approvers.
pub fn deny(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    policy: &LoadedPolicy,
    req: &Request<'_>,
) -> Result<Vec<Appended>> {
    let Some(reason) = req.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(Error::Invalid("a rejection must say why".into()));
    };
    let req = &signed(log, policy, req, "approval_rejected", None)?;
    let (id, who) = (req.plan_id, req.who);
    append_or_record(log, &req.attempt("reject", policy), |len| {
        with_ledger(log, cache, len, |ledger| {
            let adopt = super::adoption::pin(ledger, policy)?;
            let plan = open_plan(ledger, id, policy, log)?;
            check_binding(plan, &req.binding)?;
            if let Some(list) = &policy.policy.approvers
                && !list.iter().any(|a| same_person(&a.name, who))
            {
                return Err(refuse_for(
                    Reason::NotListed,
                    &plan.submission.plan_hash,
                    format!("{who} is not on the policy's approvers list"),
                ));
            }
            let d = decision(plan, policy, req, Some(reason.to_owned()));
            check_identity(policy, plan, plan.submission.risk, &d, false)?;
            Ok(super::adoption::after(
                adopt,
                vec![Event::ApprovalRejected(d)],
            ))
        })
    })
}

/// A recorded approval of a rollback: the records and the approvals that
/// now count, of how many needed.
#[derive(Debug)]
pub struct RollbackApproval {
    pub appended: Vec<Appended>,
    pub needed: u32,
    pub approvers: Vec<String>,
}

/// Records `who`'s approval of rolling back a failed, stopped or
/// interrupted run, under the same rules as approving its plan, under the
/// log's lock.
pub fn grant_rollback(
    log: &AuditLog,
    policy: &LoadedPolicy,
    run_id: &str,
    actor: &Actor,
    reason: Option<String>,
) -> Result<RollbackApproval> {
    let who = actor.name.as_str();
    // Signed before the lock is taken (signing may wait for a person).
    let presigned = match actor.key {
        Some(_) => {
            let ledger = super::ledger::current(log)?;
            let (plan, _) = rollback_candidate(&ledger, log, run_id)?;
            let req = Request {
                reason: reason.clone(),
                ..Request::new(&plan.plan_id, actor, Channel::Cli)
            };
            Some(signed(log, policy, &req, "approval_granted", Some(run_id))?.proof)
        }
        None => None,
    };
    let mut counted = (0u32, Vec::new());
    let attempt = Attempt::on_run("approve_rollback", who, run_id, &policy.hash);
    let appended = append_or_record(log, &attempt, |len| {
        let ledger = fold(log, len)?;
        let adopt = super::adoption::pin(&ledger, policy)?;
        let (plan, run) = rollback_candidate(&ledger, log, run_id)?;
        let hash = &plan.submission.plan_hash;
        let subject = plan.subject();
        let level = requirement(&policy.policy, &subject)
            .map_err(|r| refuse_for(Reason::RefusedByPolicy, hash, r.0))?
            .level;
        crate::core::approval::may_approve(&policy.policy, &subject, level, who, Channel::Cli)
            .map_err(|p| refuse_for(Reason::from(&p), hash, p.describe(who, level)))?;
        let verdict = plan.rollback_verdict(run, &policy.policy, &policy.hash, Utc::now());
        let (needed, mut have) = counts(plan, policy, &verdict);
        if have.iter().any(|h| same_person(h, who)) {
            return Err(refuse_for(
                Reason::Duplicate,
                hash,
                format!(
                    "{who} already approved rolling back run `{run_id}`; one person counts once"
                ),
            ));
        }
        have.push(who.to_owned());
        counted = (needed, have);
        let mut req = Request::new(&plan.plan_id, actor, Channel::Cli);
        if let Some(proof) = &presigned {
            req.proof = proof.clone();
        }
        let d = Decision {
            rollback_of: Some(run_id.to_owned()),
            ..decision(plan, policy, &req, reason.clone())
        };
        check_identity(policy, plan, level, &d, true)?;
        Ok(super::adoption::after(
            adopt,
            vec![Event::ApprovalGranted(d)],
        ))
    })?;
    let (needed, approvers) = counted;
    Ok(RollbackApproval {
        appended,
        needed,
        approvers,
    })
}

/// A run that may be rolled back, and its plan: a real run, not
/// succeeded, not rolled back yet, not running.
pub fn rollback_candidate<'l>(
    ledger: &'l Ledger,
    log: &AuditLog,
    run_id: &str,
) -> Result<(&'l PlanState, &'l RunState)> {
    let (plan, run) = ledger
        .run(run_id)
        .ok_or_else(|| Error::NotFound(format!("no run `{run_id}` in the audit log")))?;
    let hash = &plan.submission.plan_hash;
    if run.dry_run {
        return Err(refuse_for(
            Reason::DryRun,
            hash,
            format!("run `{run_id}` was a dry run: nothing to roll back"),
        ));
    }
    if run.finished == Some(crate::audit::Status::Succeeded) {
        return Err(refuse_for(
            Reason::Succeeded,
            hash,
            format!("run `{run_id}` succeeded: nothing to roll back"),
        ));
    }
    if run.rollback.is_some() {
        return Err(refuse_for(
            Reason::AlreadyRolledBack,
            hash,
            format!("run `{run_id}` was already rolled back (or its rollback started)"),
        ));
    }
    if run_is_live(log.path(), run_id) {
        return Err(refuse_for(
            Reason::Running,
            hash,
            format!("run `{run_id}` is still running: `opsgate cancel {run_id}` first"),
        ));
    }
    Ok((plan, run))
}

fn decision(
    plan: &PlanState,
    policy: &LoadedPolicy,
    req: &Request<'_>,
    reason: Option<String>,
) -> Decision {
    Decision {
        plan_id: plan.plan_id.clone(),
        plan_hash: plan.submission.plan_hash.clone(),
        policy_hash: policy.hash.clone(),
        risk: plan.submission.risk,
        approver: req.who.to_owned(),
        channel: req.channel,
        reason,
        metadata: req.metadata.clone(),
        submission_seq: Some(plan.submission.seq),
        rollback_of: None,
        identity: Some(req.proof.clone()),
    }
}

/// `req` signed with its key, if it has one: over the plan's current
/// submission as read now (outside the log's lock: signing may wait for a
/// passphrase or a touch), bound to that submission so that the check
/// under the lock refuses it if the plan moved meanwhile.
fn signed<'a>(
    log: &AuditLog,
    policy: &LoadedPolicy,
    req: &Request<'a>,
    kind: &str,
    rollback_of: Option<&str>,
) -> Result<Request<'a>> {
    let Some(key) = req.key else {
        return Ok(req.clone());
    };
    let ledger = super::ledger::current(log)?;
    let plan = match rollback_of {
        Some(run) => ledger.run(run).map(|(p, _)| p),
        None => ledger.plan(req.plan_id),
    };
    // An unknown plan or a stale binding is refused (and recorded) under
    // the lock, as for an unsigned decision: nothing to sign.
    let Some(plan) = plan.filter(|p| check_binding(p, &req.binding).is_ok()) else {
        return Ok(req.clone());
    };
    let (seq, hash) = (plan.submission.seq, plan.submission.plan_hash.clone());
    let statement = Statement {
        kind,
        plan_id: req.plan_id,
        plan_hash: hash.as_str(),
        policy_hash: policy.hash.as_str(),
        submission: Some(seq),
        rollback_of,
        principal: req.who,
        signed_at: Utc::now().timestamp(),
        reason: req.reason.as_deref(),
    };
    let proof = super::sign::sign(&policy.policy, key, &statement)?;
    let mut out = req.clone();
    out.proof = proof;
    out.binding.submission_seq = Some(seq);
    Ok(out)
}

/// Under the lock: a signature on the decision verifies over what is
/// recorded and is fresh; an unsigned decision is refused where the plan's
/// level needs a signature (a chat bridge's attestation counts up to the
/// channel's ceiling).
fn check_identity(
    policy: &LoadedPolicy,
    plan: &PlanState,
    level: crate::core::risk::RiskLevel,
    d: &Decision,
    granted: bool,
) -> Result<()> {
    if let Some(Proof::Ssh { signed_at, .. }) = &d.identity {
        super::sign::check_fresh(*signed_at)?;
    }
    let vote = crate::core::approval::Vote::of(d, Utc::now(), granted);
    // A rejection counts signed or not (it can only stop a plan); a
    // signature on it must still verify.
    let relevant_level = if granted {
        level
    } else {
        crate::core::risk::RiskLevel::Low
    };
    let refused = |p: crate::core::approval::VoteProblem| {
        refuse_for(
            Reason::from(&p),
            &plan.submission.plan_hash,
            p.describe(&d.approver, level),
        )
    };
    let key =
        crate::core::approval::identity_check(&policy.policy, &plan.plan_id, relevant_level, &vote)
            .map_err(refused)?;
    let subject = plan.subject();
    if granted
        && key.is_some()
        && key.as_deref() == subject.author_key
        && policy.policy.approvals.separation_of_duties.applies(level)
    {
        return Err(refused(crate::core::approval::VoteProblem::SelfApproval));
    }
    // One key counts once, whatever names it is listed under.
    if let Some(key) = key.filter(|_| granted && d.rollback_of.is_none()) {
        let ttl = chrono::Duration::milliseconds(
            i64::try_from(policy.policy.approvals.ttl.as_millis()).unwrap_or(i64::MAX),
        );
        let now = Utc::now();
        let same_key = plan.votes.iter().find(|v| {
            v.granted
                && v.plan_hash == plan.submission.plan_hash
                && v.policy_hash == policy.hash
                && now - v.at < ttl
                && crate::core::approval::identity_check(&policy.policy, &plan.plan_id, level, v)
                    .is_ok_and(|k| k.as_deref() == Some(key.as_str()))
        });
        if let Some(v) = same_key {
            return Err(refuse_for(
                Reason::Duplicate,
                &plan.submission.plan_hash,
                format!(
                    "the key {key} already approved plan `{}` as {}; one key counts once",
                    plan.plan_id, v.approver
                ),
            ));
        }
    }
    Ok(())
}

/// Approvals needed and the approvers who count, for display.
pub fn counts(plan: &PlanState, policy: &LoadedPolicy, verdict: &Verdict) -> (u32, Vec<String>) {
    match verdict {
        Verdict::Approved { plan, needed } => (*needed, plan.approvers().to_vec()),
        Verdict::Pending { needed, have, .. } => (*needed, have.clone()),
        Verdict::Rejected { .. } | Verdict::Refused { .. } => (
            requirement(&policy.policy, &plan.subject()).map_or(0, |r| r.approvals),
            Vec::new(),
        ),
    }
}

/// The plan, if it can still take decisions: submitted under the current
/// policy and neither rejected, run nor running.
pub fn open_plan<'l>(
    ledger: &'l Ledger,
    id: &str,
    policy: &LoadedPolicy,
    log: &AuditLog,
) -> Result<&'l PlanState> {
    let plan = ledger.plan(id).ok_or_else(|| {
        Error::NotFound(format!(
            "no plan `{id}` in the audit log `{}`; submit it first (`opsgate submit FILE`)",
            log.path().display()
        ))
    })?;
    let hash = &plan.submission.plan_hash;
    if plan.submission.policy_hash != policy.hash {
        return Err(refuse_for(
            Reason::PolicyChanged,
            hash,
            format!(
                "plan `{id}` was submitted under policy {}, and the policy is now {}: submit it again to have it rated under the current policy",
                short(plan.submission.policy_hash.as_str()),
                short(policy.hash.as_str())
            ),
        ));
    }
    let verdict = plan.verdict(&policy.policy, &policy.hash, Utc::now());
    let status = plan.status(&verdict, |run| run_is_live(log.path(), run));
    if !status.is_open() {
        return Err(refuse_for(
            Reason::Closed,
            hash,
            format!(
                "plan `{id}` is {}: it takes no more decisions; a new submission is needed",
                status.as_str()
            ),
        ));
    }
    Ok(plan)
}

/// `--hash`: the full hash, or a prefix of at least 12 hex digits.
fn check_hash(given: &str, plan: &PlanState) -> Result<()> {
    let given = given.trim();
    let full = if given.starts_with("sha256:") {
        given.to_owned()
    } else {
        format!("sha256:{given}")
    };
    let current = plan.submission.plan_hash.as_str();
    let hex_len = full.len() - "sha256:".len();
    if hex_len < 12 {
        return Err(Error::Invalid(format!(
            "--hash `{given}` is too short: give at least 12 hex digits"
        )));
    }
    if !current.starts_with(&full) {
        return Err(refuse_for(
            Reason::StalePlanHash,
            &plan.submission.plan_hash,
            format!(
                "approval for {}, but plan `{}` is now {}: review the plan again",
                short(&full),
                plan.plan_id,
                short(current)
            ),
        ));
    }
    Ok(())
}

/// `bridge.metadata_rules`: a chat approval of a plan at a rule's level or
/// above must carry the metadata the rule asks for. Facts the bridge
/// itself knows (`client`, `sender`, `approver`) are read as facts, never
/// from the client's metadata; a chat decision without them (a door that
/// did not say) meets no rule on them.
fn check_metadata_rules(ledger: &Ledger, policy: &LoadedPolicy, req: &Request<'_>) -> Result<()> {
    let Some(plan) = ledger.plan(req.plan_id) else {
        return Ok(()); // `open_plan` says so
    };
    let Ok(level) = requirement(&policy.policy, &plan.subject()).map(|r| r.level) else {
        return Ok(()); // refused by the policy: `grant` says so
    };
    let (client, sender) = (req.chat.map(|c| c.client), req.chat.map(|c| c.sender));
    let facts = [
        ("client", client),
        ("sender", sender),
        ("sender_id", sender),
        ("approver", Some(req.who)),
    ];
    match unmet_metadata_rule(policy, level, &req.metadata, &facts) {
        Some(unmet) => Err(refuse_for(
            Reason::MetadataRule,
            &plan.submission.plan_hash,
            unmet,
        )),
        None => Ok(()),
    }
}

/// A metadata key as compared: no whitespace, lower case.
pub fn metadata_key(k: &str) -> String {
    k.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first metadata rule a `yes` at `level` does not meet, in words.
fn unmet_metadata_rule(
    policy: &LoadedPolicy,
    level: crate::core::risk::RiskLevel,
    metadata: &Metadata,
    facts: &[(&str, Option<&str>)],
) -> Option<String> {
    use crate::core::policy::MetadataOp;
    policy.policy.bridge.metadata_rules.iter().find_map(|r| {
        if level < r.level {
            return None;
        }
        let key = metadata_key(&r.key);
        let have = match facts.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => v.map(str::to_owned),
            None => metadata.get(&r.key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        };
        let met = have.as_deref().is_some_and(|h| match r.op {
            MetadataOp::Eq => h == r.value,
            MetadataOp::Neq => h != r.value,
            MetadataOp::Contains => h.contains(&r.value),
            // The policy's load checked the pattern; one that does not
            // compile meets nothing.
            MetadataOp::Regex => regex::Regex::new(&r.value).is_ok_and(|re| re.is_match(h)),
        });
        let op = match r.op {
            MetadataOp::Eq => "eq",
            MetadataOp::Neq => "neq",
            MetadataOp::Contains => "contains",
            MetadataOp::Regex => "regex",
        };
        (!met).then(|| {
            format!(
                "{} decisions need metadata `{}` {op} `{}` (got {})",
                r.level,
                r.key,
                r.value,
                have.map_or_else(|| "none".to_owned(), |h| format!("`{h}`"))
            )
        })
    })
}
