//! The policy pinned in the log: `opsgate init` records the policy in
//! force (`policy_adopted`, with its full text), and `policy show` reads it
//! back, checking that the text still hashes to the recorded hash.

use super::error::{Error, Reason, Result, refuse};
use crate::audit::AuditLog;
use crate::core::event::Event;
use crate::core::identity::Proof;
use crate::core::identity::{Actor, same_person};
use crate::core::policy::LoadedPolicy;
use crate::core::state::{Adoption, Ledger, Proposal};

/// What `init` recorded.
#[derive(Debug, serde::Serialize)]
pub struct Adopted {
    pub seq: u64,
    pub policy_hash: String,
    pub source: String,
    pub adopted_by: String,
}

/// The `policy_adopted` record of `policy` by the OS user, checked to read
/// back to the same hash (else it could never be checked).
fn adoption(policy: &LoadedPolicy) -> Result<Event> {
    let (user, uid) = super::identity::os_user()?;
    let (form, signers) = recorded_form(policy)?;
    Ok(Event::PolicyAdopted {
        policy_hash: policy.hash.clone(),
        source: policy.source.clone(),
        policy: form,
        allowed_signers: signers,
        adopted_by: user,
        identity: Some(Proof::Os { uid }),
    })
}

/// The policy as the log records it (the effective policy as JSON, and
/// its allowed signers file's text), checked to read back to its hash:
/// else it could never be checked.
fn recorded_form(policy: &LoadedPolicy) -> Result<(serde_json::Value, Option<String>)> {
    let form = policy.adoption_form()?;
    let signers = policy.policy.signers.text().map(str::to_owned);
    let back = LoadedPolicy::from_adopted(&policy.source, &form, signers.as_deref())?;
    if back.hash != policy.hash {
        return Err(Error::Failed(format!(
            "the policy from {} does not read back to its own hash ({} vs {}): not recorded",
            policy.source,
            policy.hash.as_str(),
            back.hash.as_str()
        )));
    }
    Ok((form, signers))
}

/// Records `policy_adopted` for `policy`, when the log has adopted none
/// yet. Refused when it has: a policy already adopted is changed only by
/// `policy adopt`, with the admins' approvals.
pub fn init(log: &AuditLog, policy: &LoadedPolicy) -> Result<Adopted> {
    let event = adoption(policy)?;
    let user = match &event {
        Event::PolicyAdopted { adopted_by, .. } => adopted_by.clone(),
        _ => String::new(),
    };
    let appended = log.append_with(|len| -> Result<Vec<Event>> {
        let ledger = super::ledger::fold(log, len)?;
        if let Some(a) = ledger.adopted() {
            return Err(refuse(
                Reason::Other,
                format!(
                    "`{}` has adopted policy {} already (seq {}, from {}, by {}): `opsgate policy show` prints it",
                    log.path().display(),
                    a.policy_hash.as_str(),
                    a.seq,
                    a.source,
                    a.adopted_by
                ),
            ));
        }
        Ok(vec![event])
    })?;
    let seq = appended.first().map_or(0, |a| a.seq);
    Ok(Adopted {
        seq,
        policy_hash: policy.hash.as_str().to_owned(),
        source: policy.source.clone(),
        adopted_by: user,
    })
}

/// The check every command that decides or runs makes, under the log's
/// lock: `policy` must be the policy the log adopted. A log that adopted
/// none adopts `policy` with this write: the returned record goes first.
/// Refused (exit 3) when another policy is in force, naming both and how
/// to adopt this one.
pub fn pin(ledger: &Ledger, policy: &LoadedPolicy) -> Result<Option<Event>> {
    let Some(a) = in_force(ledger) else {
        return adoption(policy).map(Some);
    };
    if a.policy_hash == policy.hash {
        return Ok(None);
    }
    Err(refuse(
        Reason::PolicyNotAdopted,
        format!(
            "the policy loaded from {} ({}) is not the one this audit log adopted ({}, seq {}, from {}): \
             nothing is decided or run under it. `opsgate policy diff {} {}` shows what differs; \
             `opsgate policy adopt {}` proposes it to the policy admins",
            policy.source,
            policy.hash.as_str(),
            a.policy_hash.as_str(),
            a.seq,
            a.source,
            short(a.policy_hash.as_str()),
            policy.source,
            policy.source,
        ),
    ))
}

/// A policy hash as `policy show` and `policy diff` accept it.
fn short(hash: &str) -> &str {
    let bare = hash.strip_prefix("sha256:").unwrap_or(hash);
    bare.get(..12).unwrap_or(bare)
}

/// `events`, after the adoption `pin` returned (if any).
pub fn after(adopt: Option<Event>, events: Vec<Event>) -> Vec<Event> {
    if events.is_empty() {
        return events;
    }
    adopt.into_iter().chain(events).collect()
}

/// The adoption named by `hash` (a full hash or a prefix of at least 8
/// hex digits after `sha256:`), or the one in force.
pub fn find<'a>(ledger: &'a Ledger, hash: Option<&str>) -> Result<&'a Adoption> {
    let adoptions = ledger.adoptions();
    let Some(want) = hash else {
        return in_force(ledger).ok_or_else(|| {
            Error::NotFound(
                "this audit log has adopted no policy: `opsgate init` records the policy in force"
                    .into(),
            )
        });
    };
    let bare = bare(want)?;
    let found: Vec<&Adoption> = adoptions
        .iter()
        .filter(|a| bare_of(a.policy_hash.as_str()).starts_with(bare))
        .collect();
    let mut distinct: Vec<&str> = found.iter().map(|a| a.policy_hash.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    match (found.last(), distinct.len()) {
        (None, _) => Err(Error::NotFound(format!(
            "no policy `{}` was adopted in this log ({} adoption(s))",
            want.trim(),
            adoptions.len()
        ))),
        (Some(a), 1) => Ok(a),
        (Some(_), n) => Err(Error::Invalid(format!(
            "`{}` names {n} adopted policies: give more of the hash",
            want.trim()
        ))),
    }
}

/// Whether the recorded text still hashes to the recorded hash under this
/// opsgate's built-in rules.
pub fn rehash(a: &Adoption) -> Result<bool> {
    let back = LoadedPolicy::from_adopted(&a.source, &a.policy, a.allowed_signers.as_deref())?;
    Ok(back.hash == a.policy_hash)
}

/// The adopted policy recorded in `a`, loaded (with its signers) and
/// checked to hash as recorded.
pub fn load(a: &Adoption) -> Result<LoadedPolicy> {
    let p = LoadedPolicy::from_adopted(&a.source, &a.policy, a.allowed_signers.as_deref())?;
    if p.hash != a.policy_hash {
        return Err(Error::Failed(format!(
            "the policy adopted at seq {} reads back to {}, not the recorded {}",
            a.seq,
            p.hash.as_str(),
            a.policy_hash.as_str()
        )));
    }
    Ok(p)
}

/// How many of `base`'s policy admins must approve `new` in its place:
/// the CRITICAL quorum when anything loosens (as `policy diff` judges,
/// unknown changes counting as loosening), else one.
pub fn needs(base: &LoadedPolicy, new: &LoadedPolicy) -> (bool, u32) {
    let loosens = crate::core::policy::diff::diff(&base.policy, &new.policy)
        .iter()
        .any(|c| c.effect.loosens());
    let n = if loosens {
        base.policy.approvals.required.critical.max(1)
    } else {
        1
    };
    (loosens, n)
}

/// What a proposer signs.
fn proposal_statement<'a>(
    policy_hash: &'a str,
    base_hash: &'a str,
    proposer: &'a str,
    signed_at: i64,
) -> crate::core::identity::Statement<'a> {
    policy_statement(
        "policy_proposed",
        (policy_hash, base_hash),
        None,
        proposer,
        signed_at,
    )
}

/// The statement of a policy change that `principal` signs: `kind`, the
/// proposed and base policy hashes, and (for an approval) the proposal's
/// seq.
fn policy_statement<'a>(
    kind: &'a str,
    (policy_hash, base_hash): (&'a str, &'a str),
    submission: Option<u64>,
    principal: &'a str,
    signed_at: i64,
) -> crate::core::identity::Statement<'a> {
    crate::core::identity::Statement {
        kind,
        plan_id: "policy",
        plan_hash: policy_hash,
        policy_hash: base_hash,
        submission,
        rollback_of: None,
        principal,
        signed_at,
        reason: None,
    }
}

/// Why `proposal` is not proven to be its proposer's, if it is not: a
/// signature that `base`'s signers verify.
fn proposer_problem(base: &LoadedPolicy, proposal: &Proposal) -> Option<String> {
    let who = &proposal.proposed_by;
    match &proposal.identity {
        Some(Proof::Ssh {
            signature,
            signed_at,
            ..
        }) => base
            .policy
            .signers
            .check(
                &proposal_statement(
                    proposal.policy_hash.as_str(),
                    proposal.base_hash.as_str(),
                    who,
                    *signed_at,
                ),
                signature,
            )
            .err()
            .map(|why| {
                format!(
                    "the proposal at seq {} by {who} does not verify: {why}",
                    proposal.seq
                )
            }),
        _ => Some(format!(
            "the proposal at seq {} by {who} is not signed; a proposal must be",
            proposal.seq
        )),
    }
}

/// What an admin signs to approve a proposal.
pub fn statement<'a>(
    proposal: &'a Proposal,
    approver: &'a str,
    signed_at: i64,
) -> crate::core::identity::Statement<'a> {
    policy_statement(
        "policy_approved",
        (proposal.policy_hash.as_str(), proposal.base_hash.as_str()),
        Some(proposal.seq),
        approver,
        signed_at,
    )
}

/// Why `approver` may not approve `proposal` under `base`, if they may
/// not: they must be a policy admin of `base`, and not the proposer.
fn person_problem(base: &LoadedPolicy, proposal: &Proposal, approver: &str) -> Option<String> {
    let admins = &base.policy.identity.policy_admins;
    if !admins.iter().any(|a| same_person(a, approver)) {
        return Some(format!(
            "{approver} is not a policy admin of the adopted policy ({})",
            if admins.is_empty() {
                "it names none in identity.policy_admins".to_owned()
            } else {
                admins.join(", ")
            }
        ));
    }
    if same_person(approver, &proposal.proposed_by) {
        return Some(format!(
            "{approver} proposed this policy and may not approve it"
        ));
    }
    None
}

/// Why `approver`'s approval (with `proof`) of `proposal` does not count
/// under `base`, if it does not: the person, and a signature that
/// `base`'s signers verify.
fn approval_problem(
    base: &LoadedPolicy,
    proposal: &Proposal,
    approver: &str,
    proof: Option<&Proof>,
) -> Option<String> {
    if let Some(why) = person_problem(base, proposal, approver) {
        return Some(why);
    }
    match proof {
        Some(Proof::Ssh {
            signature,
            signed_at,
            ..
        }) => base
            .policy
            .signers
            .check(&statement(proposal, approver, *signed_at), signature)
            .err()
            .map(|why| format!("the signature by {approver} does not verify: {why}")),
        _ => Some(format!(
            "the approval by {approver} is not signed; policy approvals must be"
        )),
    }
}

/// The admins whose approvals of `proposal` (recorded before seq
/// `before`) count under `base`, each once, and the approvals that do not,
/// with why.
pub fn counted(
    base: &LoadedPolicy,
    proposal: &Proposal,
    before: u64,
) -> (Vec<String>, Vec<(u64, String)>) {
    let mut people: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for a in proposal.approvals.iter().filter(|a| a.seq < before) {
        match approval_problem(base, proposal, &a.approver, a.identity.as_ref()) {
            Some(why) => problems.push((a.seq, why)),
            None if people.iter().any(|p| same_person(p, &a.approver)) => {}
            None => people.push(a.approver.clone()),
        }
    }
    (people, problems)
}

/// Why the adoption `next` does not count after `base` (the adoption in
/// force before it), if it does not: it must have been proposed in place
/// of `base`, recorded as proposed, and approved by enough of `base`'s
/// policy admins before it was recorded.
fn adoption_problem(ledger: &Ledger, base: &Adoption, next: &Adoption) -> Option<String> {
    if next.policy_hash == base.policy_hash {
        return None;
    }
    let base_policy = match load(base) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let new_policy = match load(next) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let Some(proposal) = ledger.proposals().iter().rev().find(|p| {
        p.seq < next.seq
            && p.policy_hash == next.policy_hash
            && p.base_hash == base.policy_hash
            && p.policy == next.policy
            && p.allowed_signers == next.allowed_signers
    }) else {
        return Some(format!(
            "policy {} was never proposed in place of {} (`opsgate policy adopt`)",
            next.policy_hash.as_str(),
            base.policy_hash.as_str()
        ));
    };
    if let Some(why) = proposer_problem(&base_policy, proposal) {
        return Some(why);
    }
    let (_, n) = needs(&base_policy, &new_policy);
    let (people, _) = counted(&base_policy, proposal, next.seq);
    if (people.len() as u32) < n {
        return Some(format!(
            "policy {} has {} valid admin approval(s) of {n} needed (proposal at seq {})",
            next.policy_hash.as_str(),
            people.len(),
            proposal.seq
        ));
    }
    None
}

/// Every adoption in the log, with why it does not count (if it does
/// not). The first is trusted as the log's root (`opsgate init`, or the
/// first write); each later one counts only when approved under the one
/// in force before it.
pub fn checked(ledger: &Ledger) -> Vec<(&Adoption, Option<String>)> {
    let mut out: Vec<(&Adoption, Option<String>)> = Vec::new();
    let mut in_force: Option<&Adoption> = None;
    for a in ledger.adoptions() {
        let problem = in_force.and_then(|base| adoption_problem(ledger, base, a));
        if problem.is_none() {
            in_force = Some(a);
        }
        out.push((a, problem));
    }
    out
}

/// The adoption in force: the last one that counts.
pub fn in_force(ledger: &Ledger) -> Option<&Adoption> {
    checked(ledger)
        .into_iter()
        .rev()
        .find_map(|(a, problem)| problem.is_none().then_some(a))
}

/// The open proposal named by `hash` (a prefix of ≥ 8 hex digits): the
/// latest proposal of it in place of the policy in force.
pub fn open_proposal<'a>(ledger: &'a Ledger, hash: &str) -> Result<(&'a Adoption, &'a Proposal)> {
    let base = in_force(ledger).ok_or_else(|| {
        Error::NotFound("this audit log has adopted no policy: nothing to approve".into())
    })?;
    let bare = bare(hash)?;
    let found = ledger.proposals().iter().rev().find(|p| {
        p.base_hash == base.policy_hash && bare_of(p.policy_hash.as_str()).starts_with(bare)
    });
    found.map(|p| (base, p)).ok_or_else(|| {
        Error::NotFound(format!(
            "no proposal of policy `{hash}` in place of the policy in force ({}): `opsgate policy adopt FILE` proposes one",
            base.policy_hash.as_str()
        ))
    })
}

fn bare_of(hash: &str) -> &str {
    hash.strip_prefix("sha256:").unwrap_or(hash)
}

fn bare(want: &str) -> Result<&str> {
    let want = want.trim();
    let b = bare_of(want);
    if b.len() < 8 {
        return Err(Error::Invalid(format!(
            "`{want}`: name a policy hash by at least 8 hex digits"
        )));
    }
    Ok(b)
}

/// What `policy adopt` did.
#[derive(Debug, serde::Serialize)]
pub struct Proposed {
    /// The `policy_proposed` record (or, `adopted`, the `policy_adopted`).
    pub seq: u64,
    pub policy_hash: String,
    /// The policy in force it would replace.
    pub base_hash: Option<String>,
    pub proposed_by: String,
    pub loosens: bool,
    /// Admin approvals needed, and who may give them.
    pub needs: u32,
    pub admins: Vec<String>,
    /// What changes, as `policy diff` judges it.
    pub changes: Vec<crate::core::policy::diff::Change>,
    /// Already the policy in force: nothing was recorded.
    pub in_force: bool,
    /// The log had adopted no policy: this one was adopted at once, as
    /// `opsgate init` does.
    pub adopted: bool,
}

/// Proposes `new` in place of the policy in force (`policy_proposed`),
/// by `actor` (signed when they have a key). A log that adopted no policy
/// adopts `new` at once.
pub fn propose(log: &AuditLog, new: &LoadedPolicy, who: Who<'_>) -> Result<Proposed> {
    let ledger = super::ledger::current(log)?;
    let Some(base_adoption) = in_force(&ledger) else {
        let a = init(log, new)?;
        return Ok(Proposed {
            seq: a.seq,
            policy_hash: a.policy_hash,
            base_hash: None,
            proposed_by: a.adopted_by,
            loosens: false,
            needs: 0,
            admins: Vec::new(),
            changes: Vec::new(),
            in_force: false,
            adopted: true,
        });
    };
    let base = load(base_adoption)?;
    let actor = &who.under(&base)?;
    let (loosens, n) = needs(&base, new);
    let mut proposed = Proposed {
        seq: base_adoption.seq,
        policy_hash: new.hash.as_str().to_owned(),
        base_hash: Some(base.hash.as_str().to_owned()),
        proposed_by: actor.name.clone(),
        loosens,
        needs: n,
        admins: base.policy.identity.policy_admins.clone(),
        changes: crate::core::policy::diff::diff(&base.policy, &new.policy),
        in_force: base.hash == new.hash,
        adopted: false,
    };
    if proposed.in_force {
        return Ok(proposed);
    }
    if proposed.admins.is_empty() {
        return Err(refuse(
            Reason::NotListed,
            format!(
                "the policy in force ({}, adopted at seq {}) names no identity.policy_admins, so no one may adopt another policy in `{}`; a new policy starts a new log (`--audit-log`)",
                base.hash.as_str(),
                base_adoption.seq,
                log.path().display()
            ),
        ));
    }
    let (form, signers) = recorded_form(new)?;
    // Signed, or "never the proposer" would rest on a name nobody proved:
    // an admin could propose as a shared OS account, then approve.
    let Some(key) = &actor.key else {
        return Err(refuse(
            Reason::Unsigned,
            format!(
                "proposing a policy must be signed: give your key with --key or {}",
                super::sign::KEY_ENV
            ),
        ));
    };
    let signed_at = chrono::Utc::now().timestamp();
    let proof = super::sign::sign(
        &base.policy,
        key,
        &proposal_statement(
            new.hash.as_str(),
            base.hash.as_str(),
            &actor.name,
            signed_at,
        ),
    )?;
    let appended = log.append_with(|len| -> Result<Vec<Event>> {
        let ledger = super::ledger::fold(log, len)?;
        same_base(&ledger, &base)?;
        Ok(vec![Event::PolicyProposed {
            policy_hash: new.hash.clone(),
            base_hash: base.hash.clone(),
            source: new.source.clone(),
            policy: form,
            allowed_signers: signers,
            proposed_by: actor.name.clone(),
            identity: Some(proof),
            loosens,
            needs: n,
        }])
    })?;
    proposed.seq = appended.last().map_or(0, |a| a.seq);
    Ok(proposed)
}

/// Refuses when the policy in force is no longer `base` (another change
/// was adopted meanwhile).
fn same_base(ledger: &Ledger, base: &LoadedPolicy) -> Result<()> {
    match in_force(ledger) {
        Some(a) if a.policy_hash == base.hash => Ok(()),
        _ => Err(refuse(
            Reason::StalePolicyHash,
            format!(
                "the policy in force changed while this was decided (it was {}): look again with `opsgate policy check`",
                base.hash.as_str()
            ),
        )),
    }
}

/// What `policy approve` did.
#[derive(Debug, serde::Serialize)]
pub struct PolicyApproved {
    pub seq: u64,
    pub proposal: u64,
    pub policy_hash: String,
    pub approver: String,
    /// The admins whose approvals count now, this one included.
    pub approvals: Vec<String>,
    pub needs: u32,
    /// This approval completed the quorum: the policy is now in force.
    pub adopted: bool,
}

/// Records `actor`'s signed approval of the open proposal of `hash`;
/// when it completes the quorum, the policy is adopted in the same write.
pub fn approve(log: &AuditLog, hash: &str, who: Who<'_>) -> Result<PolicyApproved> {
    let ledger = super::ledger::current(log)?;
    let (base_adoption, proposal) = open_proposal(&ledger, hash)?;
    let base = load(base_adoption)?;
    let actor = &who.under(&base)?;
    let who = actor.name.as_str();
    let attempt = super::refusal::Attempt {
        what: "policy_approve",
        user: who,
        channel: crate::audit::Channel::Cli,
        plan_id: None,
        run_id: None,
        policy_hash: &base.hash,
        metadata: None,
    };
    // A refusal by a rule is recorded, as a decision's is.
    let refused = |e: Error| -> Error {
        match super::refusal::append_or_record(log, &attempt, |_| Err::<Vec<Event>, _>(e)) {
            Ok(_) => Error::Failed("the refusal was not recorded".into()),
            Err(e) => e,
        }
    };
    let Some(key) = &actor.key else {
        return Err(refused(refuse(
            Reason::Unsigned,
            format!(
                "approving a policy must be signed: give your key with --key or {}",
                super::sign::KEY_ENV
            ),
        )));
    };
    if let Some(why) = proposer_problem(&base, proposal) {
        return Err(refused(refuse(Reason::BadSignature, why)));
    }
    if let Some(why) = person_problem(&base, proposal, who) {
        return Err(refused(refuse(Reason::NotListed, why)));
    }
    let new = LoadedPolicy::from_adopted(
        &proposal.source,
        &proposal.policy,
        proposal.allowed_signers.as_deref(),
    )?;
    if new.hash != proposal.policy_hash {
        return Err(Error::Failed(format!(
            "the proposal at seq {} does not read back to its hash {}",
            proposal.seq,
            proposal.policy_hash.as_str()
        )));
    }
    let (_, n) = needs(&base, &new);
    let signed_at = chrono::Utc::now().timestamp();
    let proof = super::sign::sign(&base.policy, key, &statement(proposal, who, signed_at))?;
    let (_, uid) = super::identity::os_user()?;
    let mut done = None;
    let appended = super::refusal::append_or_record(log, &attempt, |len| -> Result<Vec<Event>> {
        let ledger = super::ledger::fold(log, len)?;
        same_base(&ledger, &base)?;
        let Some(p) = ledger.proposals().iter().find(|p| p.seq == proposal.seq) else {
            return Err(Error::NotFound(format!(
                "the proposal at seq {} is gone from the log",
                proposal.seq
            )));
        };
        let (mut people, _) = counted(&base, p, u64::MAX);
        if people.iter().any(|h| same_person(h, who)) {
            return Err(refuse(
                Reason::Duplicate,
                format!(
                    "{who} already approved policy {}; one person counts once",
                    p.policy_hash.as_str()
                ),
            ));
        }
        people.push(who.to_owned());
        let mut events = vec![Event::PolicyApproved {
            proposal: p.seq,
            policy_hash: p.policy_hash.clone(),
            base_hash: p.base_hash.clone(),
            approver: who.to_owned(),
            identity: Some(proof.clone()),
        }];
        let adopted = people.len() as u32 >= n;
        if adopted {
            events.push(Event::PolicyAdopted {
                policy_hash: p.policy_hash.clone(),
                source: p.source.clone(),
                policy: p.policy.clone(),
                allowed_signers: p.allowed_signers.clone(),
                adopted_by: who.to_owned(),
                identity: Some(Proof::Os { uid }),
            });
        }
        done = Some(PolicyApproved {
            seq: 0,
            proposal: p.seq,
            policy_hash: p.policy_hash.as_str().to_owned(),
            approver: who.to_owned(),
            approvals: people,
            needs: n,
            adopted,
        });
        Ok(events)
    })?;
    let mut done = done.ok_or_else(|| Error::Failed("the approval was not recorded".into()))?;
    done.seq = appended.first().map_or(0, |a| a.seq);
    Ok(done)
}

/// Who acts on a policy change, as the command line gives it (`--as`,
/// `--key`): resolved under the policy in force, whose signers and
/// `trust_as` say who they are, never under the policy proposed.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub as_user: Option<&'a str>,
    pub key: Option<&'a std::path::Path>,
}

impl Who<'_> {
    fn under(&self, base: &LoadedPolicy) -> Result<Actor> {
        super::identity::actor(&base.policy, self.as_user, self.key)
    }
}

/// The policy recorded in the log under `hash` (a prefix of ≥ 8 hex
/// digits): adopted, or proposed. For `policy diff HASH …`.
pub fn recorded(ledger: &Ledger, hash: &str) -> Result<LoadedPolicy> {
    let bare = bare(hash)?;
    let mut found: Vec<(&str, &str, &serde_json::Value, Option<&str>)> = ledger
        .adoptions()
        .iter()
        .map(|a| {
            (
                a.policy_hash.as_str(),
                a.source.as_str(),
                &a.policy,
                a.allowed_signers.as_deref(),
            )
        })
        .chain(ledger.proposals().iter().map(|p| {
            (
                p.policy_hash.as_str(),
                p.source.as_str(),
                &p.policy,
                p.allowed_signers.as_deref(),
            )
        }))
        .filter(|(h, ..)| bare_of(h).starts_with(bare))
        .collect();
    found.sort_by(|a, b| a.0.cmp(b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    match found.as_slice() {
        [] => Err(Error::NotFound(format!(
            "`{}` is neither a file nor a policy adopted or proposed in this log",
            hash.trim()
        ))),
        [(h, source, policy, signers)] => {
            let p = LoadedPolicy::from_adopted(source, policy, *signers)?;
            if p.hash.as_str() != *h {
                return Err(Error::Failed(format!(
                    "the policy recorded as {h} reads back to {}",
                    p.hash.as_str()
                )));
            }
            Ok(p)
        }
        more => Err(Error::Invalid(format!(
            "`{}` names {} recorded policies: give more of the hash",
            hash.trim(),
            more.len()
        ))),
    }
}

/// The adoptions an auditor trusts, anchored at the policy they load
/// (`identity::audit_identities` says how).
#[derive(Debug, Default)]
pub struct Trust {
    /// The seq of the adoption of the auditor's policy, if the log has one.
    pub anchor: Option<u64>,
    /// Trusted adoptions: from seq, this policy.
    periods: Vec<(u64, LoadedPolicy)>,
    /// Adoptions that do not count, with why.
    pub bad: Vec<(u64, String)>,
}

impl Trust {
    /// The policy that record `seq` is checked against: the last trusted
    /// adoption before it, else the auditor's own.
    pub fn at<'a>(&'a self, seq: u64, auditor: &'a LoadedPolicy) -> &'a LoadedPolicy {
        self.periods
            .iter()
            .rev()
            .find(|(s, _)| *s < seq)
            .map_or(auditor, |(_, p)| p)
    }
}

/// Whether `cur` (trusted) vouches for `prev`, the adoption before it:
/// `cur` was approved under `prev` by enough admins whose signatures the
/// trusted `cur_policy` also verifies, so a rewritten `prev` cannot have
/// chosen the keys that adopted `cur`.
fn vouches_back(
    ledger: &Ledger,
    prev: &Adoption,
    cur: &Adoption,
    cur_policy: &LoadedPolicy,
) -> bool {
    if adoption_problem(ledger, prev, cur).is_some() {
        return false;
    }
    if prev.policy_hash == cur.policy_hash {
        return true;
    }
    let (Ok(base), Some(proposal)) = (
        load(prev),
        ledger.proposals().iter().rev().find(|p| {
            p.seq < cur.seq && p.policy_hash == cur.policy_hash && p.base_hash == prev.policy_hash
        }),
    ) else {
        return false;
    };
    let (_, n) = needs(&base, cur_policy);
    let (people, _) = counted(&base, proposal, cur.seq);
    let known = proposal
        .approvals
        .iter()
        .filter(|a| a.seq < cur.seq && people.iter().any(|p| same_person(p, &a.approver)))
        .filter(|a| match &a.identity {
            Some(Proof::Ssh {
                signature,
                signed_at,
                ..
            }) => cur_policy
                .policy
                .signers
                .check(&statement(proposal, &a.approver, *signed_at), signature)
                .is_ok(),
            _ => false,
        })
        .map(|a| person_key_of(&a.approver))
        .collect::<std::collections::BTreeSet<_>>();
    known.len() as u32 >= n
}

fn person_key_of(name: &str) -> String {
    crate::core::identity::person_key(name)
}

/// The adoptions of `ledger` that an auditor who loads `auditor` trusts.
pub fn trusted(ledger: &Ledger, auditor: &LoadedPolicy) -> Trust {
    let adoptions = ledger.adoptions();
    let from_root = checked(ledger);
    let mut trust = Trust::default();
    let Some(k) = adoptions
        .iter()
        .rposition(|a| a.policy_hash == auditor.hash)
    else {
        trust.bad = from_root
            .iter()
            .filter_map(|(a, p)| p.clone().map(|p| (a.seq, p)))
            .collect();
        return trust;
    };
    trust.anchor = Some(adoptions[k].seq);
    let mut periods = vec![(adoptions[k].seq, auditor.clone())];
    // Back from the anchor, while each adoption vouches for the one before.
    let mut i = k;
    while i > 0 {
        let (prev, cur) = (&adoptions[i - 1], &adoptions[i]);
        let Some(cur_policy) = periods.first().map(|(_, p)| p) else {
            break;
        };
        if !vouches_back(ledger, prev, cur, cur_policy) {
            break;
        }
        let Ok(prev_policy) = load(prev) else {
            break;
        };
        periods.insert(0, (prev.seq, prev_policy));
        i -= 1;
    }
    for (a, p) in &from_root[..i] {
        if let Some(p) = p {
            trust.bad.push((a.seq, p.clone()));
        }
    }
    // Forward from the anchor: each adoption approved under the last one
    // that counts.
    let mut base = &adoptions[k];
    for next in &adoptions[k + 1..] {
        match adoption_problem(ledger, base, next) {
            None => match load(next) {
                Ok(p) => {
                    periods.push((next.seq, p));
                    base = next;
                }
                Err(e) => trust.bad.push((next.seq, e.to_string())),
            },
            Some(why) => trust.bad.push((next.seq, why)),
        }
    }
    trust.periods = periods;
    trust
}
