//! The policy pinned in the log: `opsgate init` records the policy in
//! force (`policy_adopted`, with its full text), and `policy show` reads it
//! back, checking that the text still hashes to the recorded hash.

use std::path::Path;

use super::config::{beside, read};
use super::error::{Error, Reason, Result, refuse};
use crate::audit::AuditLog;
use crate::core::event::Event;
use crate::core::identity::Proof;
use crate::core::policy::LoadedPolicy;
use crate::core::state::Adoption;

/// The text of the policy's allowed signers file, as it was hashed.
pub fn signers_text(policy: &LoadedPolicy, file: Option<&Path>) -> Result<Option<String>> {
    let Some(signers) = policy.policy.identity.allowed_signers.as_ref() else {
        return Ok(None);
    };
    read(&beside(file, signers)).map(Some)
}

/// What `init` recorded.
#[derive(Debug, serde::Serialize)]
pub struct Adopted {
    pub seq: u64,
    pub policy_hash: String,
    pub source: String,
    pub adopted_by: String,
}

/// Records `policy_adopted` for `policy` (loaded from `file`), when the log
/// has adopted none yet. Refused when it has: a policy already adopted is
/// changed only by `policy adopt`, with the admins' approvals.
pub fn init(log: &AuditLog, policy: &LoadedPolicy, file: Option<&Path>) -> Result<Adopted> {
    let (user, uid) = super::identity::os_user()?;
    let form = policy.adoption_form()?;
    let signers = signers_text(policy, file)?;
    // What is recorded must read back to the same hash, or it could never
    // be checked.
    let back = LoadedPolicy::from_adopted(&policy.source, &form, signers.as_deref())?;
    if back.hash != policy.hash {
        return Err(Error::Failed(format!(
            "the policy from {} does not read back to its own hash ({} vs {}): not recorded",
            policy.source,
            policy.hash.as_str(),
            back.hash.as_str()
        )));
    }
    let event = Event::PolicyAdopted {
        policy_hash: policy.hash.clone(),
        source: policy.source.clone(),
        policy: form,
        allowed_signers: signers,
        adopted_by: user.clone(),
        identity: Some(Proof::Os { uid }),
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

/// The adoption named by `hash` (a full hash or a prefix of at least 8
/// characters after `sha256:`), or the one in force.
pub fn find<'a>(adoptions: &'a [Adoption], hash: Option<&str>) -> Result<&'a Adoption> {
    let Some(want) = hash else {
        return adoptions.last().ok_or_else(|| {
            Error::NotFound(
                "this audit log has adopted no policy: `opsgate init` records the policy in force"
                    .into(),
            )
        });
    };
    let want = want.trim();
    let bare = want.strip_prefix("sha256:").unwrap_or(want);
    if bare.len() < 8 {
        return Err(Error::Invalid(format!(
            "`{want}`: name a policy hash by at least 8 hex digits"
        )));
    }
    let found: Vec<&Adoption> = adoptions
        .iter()
        .filter(|a| {
            let h = a.policy_hash.as_str();
            h.strip_prefix("sha256:").unwrap_or(h).starts_with(bare)
        })
        .collect();
    let mut distinct: Vec<&str> = found.iter().map(|a| a.policy_hash.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    match (found.last(), distinct.len()) {
        (None, _) => Err(Error::NotFound(format!(
            "no policy `{want}` was adopted in this log ({} adoption(s))",
            adoptions.len()
        ))),
        (Some(a), 1) => Ok(a),
        (Some(_), n) => Err(Error::Invalid(format!(
            "`{want}` names {n} adopted policies: give more of the hash"
        ))),
    }
}

/// Whether the recorded text still hashes to the recorded hash under this
/// opsgate's built-in rules.
pub fn rehash(a: &Adoption) -> Result<bool> {
    let back = LoadedPolicy::from_adopted(&a.source, &a.policy, a.allowed_signers.as_deref())?;
    Ok(back.hash == a.policy_hash)
}
