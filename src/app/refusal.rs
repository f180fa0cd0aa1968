//! Refusals leave a trace: an attempt refused by a rule (a self-approval,
//! an unapproved run, a drift or a stale decision) from an identified
//! caller is recorded as a `refused` record (who, what, the reason code,
//! the plan and policy hashes) in the same locked write that decided it,
//! durable before the refusal is answered.
//!
//! A refusal about the log itself (broken, torn, behind its high-water
//! mark) is not recorded: nothing is written to such a log.

use super::error::Error;
use crate::audit::{Appended, AuditLog, Channel, Event};
use crate::core::digest::PolicyHash;

/// Who attempts what, for the `refused` record.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// `approve`, `reject`, `run`, `dry_run`, `resume`, `rollback`,
    /// `cancel`, `submit`.
    pub what: &'static str,
    pub user: &'a str,
    pub channel: Channel,
    pub plan_id: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub policy_hash: &'a PolicyHash,
    pub metadata: Option<&'a super::decide::Metadata>,
}

impl<'a> Attempt<'a> {
    /// An attempt on plan `plan_id`.
    pub fn on_plan(
        what: &'static str,
        user: &'a str,
        channel: Channel,
        plan_id: &'a str,
        policy_hash: &'a PolicyHash,
    ) -> Self {
        Self {
            what,
            user,
            channel,
            plan_id: Some(plan_id),
            run_id: None,
            policy_hash,
            metadata: None,
        }
    }

    /// An attempt on run `run_id`, from the command line.
    pub fn on_run(
        what: &'static str,
        user: &'a str,
        run_id: &'a str,
        policy_hash: &'a PolicyHash,
    ) -> Self {
        Self {
            what,
            user,
            channel: Channel::Cli,
            plan_id: None,
            run_id: Some(run_id),
            policy_hash,
            metadata: None,
        }
    }

    /// With the decision's metadata, recorded with a refusal.
    pub fn with_metadata(self, metadata: &'a super::decide::Metadata) -> Self {
        Self {
            metadata: Some(metadata),
            ..self
        }
    }

    /// The `refused` record of `e`, if it is a refusal by a rule.
    pub fn record_of(&self, e: &Error) -> Option<Event> {
        let r = e.refusal()?;
        let (code, reason, plan_hash) = (r.reason.code(), r.message.clone(), r.plan_hash.clone());
        Some(Event::Refused {
            attempt: self.what.to_owned(),
            plan_id: self.plan_id.map(str::to_owned),
            run_id: self.run_id.map(str::to_owned),
            user: self.user.to_owned(),
            channel: self.channel,
            code: code.to_owned(),
            reason,
            plan_hash,
            policy_hash: self.policy_hash.clone(),
            metadata: self.metadata.cloned().unwrap_or_default(),
        })
    }
}

/// `log.append_with(decide)`, recording a refusal by a rule as a `refused`
/// record in the same write before returning it.
pub fn append_or_record<E>(
    log: &AuditLog,
    attempt: &Attempt<'_>,
    decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
) -> Result<Vec<Appended>, Error>
where
    Error: From<E>,
{
    let mut refused = None;
    let appended = log.append_with(|len| match decide(len).map_err(Error::from) {
        Err(e) => match attempt.record_of(&e) {
            Some(record) => {
                refused = Some(e);
                Ok(vec![record])
            }
            None => Err(e),
        },
        ok => ok,
    })?;
    match refused {
        Some(e) => Err(e),
        None => Ok(appended),
    }
}
