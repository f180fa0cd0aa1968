//! Who is acting: looked up once, where a door starts, and passed down.
//!
//! A person is the OS user, from the process's uid (never `$USER`, which
//! anyone sets). `--as NAME` names someone else only where the policy
//! trusts it (`identity.trust_as`, for demos and tests); naming yourself is
//! always fine. Every name is checked and put in canonical form
//! (`core::identity`), so `bob` with a zero-width space is refused as a
//! name, never counted as a second person.

use std::path::Path;

use super::error::{Error, Reason, Result};
use crate::core::identity::{Actor, Proof, canonical_name, same_person};
use crate::core::policy::{LoadedPolicy, Policy};

/// The OS user: the name `/etc/passwd` gives the process's uid (`uid-N`
/// when it has none), and the uid.
pub fn os_user() -> Result<(String, u32)> {
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid-{uid}"));
    let name = canonical_name(&name).map_err(|e| {
        Error::Invalid(format!("the OS user (uid {uid}) cannot name a person: {e}"))
    })?;
    Ok((name, uid))
}

/// The acting person: with a signing key (`--key`, `OPSGATE_SIGNING_KEY`),
/// the person the allowed signers name for it (`--as` chooses among
/// several); else the OS user, or `--as NAME` where the policy trusts it.
/// A name that cannot name a person (a control or invisible character…)
/// is an error.
pub fn actor(policy: &Policy, as_user: Option<&str>, key: Option<&Path>) -> Result<Actor> {
    let (os_name, uid) = os_user()?;
    let wanted = as_user
        .map(|given| canonical_name(given).map_err(|e| Error::Invalid(format!("--as: {e}"))))
        .transpose()?;
    if let Some(key) = super::sign::key_path(key)? {
        let name = super::sign::principal(policy, &key, wanted.as_deref())?;
        return Ok(Actor {
            name,
            // Replaced by the signature when a decision is signed.
            proof: Proof::Os { uid },
            key: Some(key),
        });
    }
    let os = Actor {
        name: os_name,
        proof: Proof::Os { uid },
        key: None,
    };
    let Some(name) = wanted else {
        return Ok(os);
    };
    if same_person(&name, &os.name) {
        return Ok(os);
    }
    if !policy.identity.trust_as {
        return Err(super::error::refuse(
            Reason::UntrustedName,
            format!(
                "--as {name}: the policy does not trust --as (identity.trust_as is false); you are the OS user {} (uid {uid})",
                os.name
            ),
        ));
    }
    Ok(Actor {
        name,
        proof: Proof::Claimed,
        key: None,
    })
}

/// Who the log's submissions and decisions say acted, and how that is
/// proven: what `audit verify` reports next to the chain.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IdentityReport {
    /// Signed with a key the policy's allowed signers name, and verified.
    pub signed: u64,
    /// Attested by a chat bridge client.
    pub chat_attested: u64,
    /// The OS user, by uid.
    pub os: u64,
    /// A name given with `--as` under `identity.trust_as`.
    pub claimed: u64,
    /// Records from before v3, which carry no identity.
    pub unproven: u64,
    /// Approvals of plans at a level that needs signatures, without one:
    /// they did not count (a forger's record looks like this).
    pub unsigned: Vec<Flagged>,
    /// Signatures that do not verify against the policy's signers, and
    /// adoptions that the admins did not approve.
    pub bad: Vec<Flagged>,
    /// The seq of the adoption of the auditor's policy that anchors the
    /// checks (none: every record is checked against the auditor's policy).
    pub anchor: Option<u64>,
}

/// A record `audit verify` names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flagged {
    pub seq: u64,
    pub message: String,
}

/// Checks every identity in the log at `path` against the policy of each
/// record's time, trusting what the auditor's `policy` trusts.
///
/// The auditor's policy is the anchor: the latest adoption of it in the
/// log, if any. From there, each later adoption counts only when the
/// admins of the one before approved it (else it is flagged, and its
/// period is checked under the last one that counts); going back, an
/// earlier adoption is trusted when the adoption after it was approved
/// under it by keys that the trusted policy also lists for the same
/// people. Records of a time no trusted adoption covers (before the
/// anchor's chain, or in a log that never adopted the auditor's policy)
/// are checked against the auditor's policy: a policy that a log writer
/// adopted never vouches for their own key.
pub fn audit_identities(path: &Path, policy: &LoadedPolicy) -> Result<IdentityReport> {
    use crate::core::approval::{Vote, identity_check};
    use crate::core::event::{Event, Record};
    let mut report = IdentityReport::default();
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut ledger = crate::core::state::Ledger::default();
    let mut reader = crate::audit::read::LineReader::open(path).map_err(read)?;
    while let Some(line) = reader.next_line() {
        let line = line.map_err(read)?;
        if let Ok(record) = serde_json::from_slice::<Record>(line.bytes) {
            ledger.apply(&record);
        }
    }
    let trust = super::adoption::trusted(&ledger, policy);
    for (seq, why) in &trust.bad {
        report.bad.push(Flagged {
            seq: *seq,
            message: format!("seq {seq}: policy_adopted: {why}"),
        });
    }
    report.anchor = trust.anchor;
    let mut reader = crate::audit::read::LineReader::open(path).map_err(read)?;
    while let Some(line) = reader.next_line() {
        let line = line.map_err(read)?;
        let Ok(record) = serde_json::from_slice::<Record>(line.bytes) else {
            continue;
        };
        let (proof, problem) = match &record.event {
            Event::PlanSubmitted {
                plan_id,
                plan_hash,
                policy_hash,
                submitted_by,
                identity,
                ..
            } => {
                let problem = match identity {
                    Some(Proof::Ssh {
                        signature,
                        signed_at,
                        ..
                    }) => {
                        let statement = crate::core::identity::Statement {
                            kind: "plan_submitted",
                            plan_id,
                            plan_hash: plan_hash.as_str(),
                            policy_hash: policy_hash.as_str(),
                            submission: None,
                            rollback_of: None,
                            principal: submitted_by,
                            signed_at: *signed_at,
                            reason: None,
                        };
                        trust
                            .at(record.seq, policy)
                            .policy
                            .signers
                            .check(&statement, signature)
                            .err()
                    }
                    _ => None,
                };
                (identity, problem.map(|why| (false, why)))
            }
            Event::ApprovalGranted(d) | Event::ApprovalRejected(d) => {
                let granted = matches!(record.event, Event::ApprovalGranted(_));
                let vote = Vote::of(d, record.ts, granted);
                let level = if granted {
                    d.risk
                } else {
                    crate::core::risk::RiskLevel::Low
                };
                let at = &trust.at(record.seq, policy).policy;
                let problem = match identity_check(at, &d.plan_id, level, &vote) {
                    Err(crate::core::approval::VoteProblem::BadSignature { why }) => {
                        Some((false, why))
                    }
                    Err(p) => Some((true, p.describe(&d.approver, d.risk))),
                    Ok(_) => None,
                };
                (&d.identity, problem)
            }
            _ => continue,
        };
        match proof {
            Some(Proof::Ssh { .. }) if problem.is_none() => report.signed += 1,
            Some(Proof::Ssh { .. }) => {}
            Some(Proof::Chat { .. }) => report.chat_attested += 1,
            Some(Proof::Os { .. }) => report.os += 1,
            Some(Proof::Claimed) => report.claimed += 1,
            None => report.unproven += 1,
        }
        match problem {
            Some((false, why)) => report.bad.push(Flagged {
                seq: record.seq,
                message: format!("seq {}: {}: {why}", record.seq, record.event.kind()),
            }),
            Some((true, why)) => report.unsigned.push(Flagged {
                seq: record.seq,
                message: format!("seq {}: {}: {why}", record.seq, record.event.kind()),
            }),
            None => {}
        }
    }
    Ok(report)
}
