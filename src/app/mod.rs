//! The application layer: the use cases every door shares (submit,
//! decide, start, stop and roll back a run, the read models), with typed
//! errors, over the audit log, the engine and the native backends.
//!
//! The doors (`cli`, `tui`, `bridge`) parse their input, call this layer
//! and present what it returns; none imports another. This layer never
//! prints: what a use case wants said comes back as values (`Start::notes`,
//! [`driver::RunMsg`]).
//!
//! An [`App`] is what a door holds for as long as it runs: the policy, the
//! open log, and the native backends, whose circuit breakers therefore
//! live as long as the process (the TUI, `serve`), not one run.
//!
//! Decisions and runs fold the whole verified log under its lock, so that
//! a log edited anywhere refuses them (fail closed). A long-lived door
//! reads what it shows through an incremental cache; only the bridge also
//! decides through it (`App::deciding_through_cache`), trading the check of
//! records it already read for not folding the whole log on every request.

pub mod adoption;
pub mod config;
pub mod control;
pub mod decide;
pub mod driver;
pub mod error;
pub mod identity;
pub mod ledger;
pub mod plan_view;
pub mod plans;
pub mod policy_diff;
pub mod present;
pub mod refusal;
pub mod sign;
pub mod start;
pub mod submit;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use crate::audit::ledger::LedgerCache;
use crate::audit::{Appended, AuditLog, Channel, Sealer};
use crate::core::plan::ClassifiedPlan;
use crate::core::policy::LoadedPolicy;
use crate::core::redact::Redactor;
use crate::native::Backends;

pub use error::{Error, Reason, Refusal, Result};

/// What a door holds: the policy, the log, and the long-lived backends.
#[derive(Debug)]
pub struct App {
    pub policy: LoadedPolicy,
    pub log: AuditLog,
    pub sealer: Sealer,
    pub redactor: Redactor,
    pub backends: Arc<Backends>,
    /// The ledger read incrementally, for what a long-lived door shows.
    cache: Option<LedgerCache>,
    /// Whether decisions and runs read the ledger through `cache` too,
    /// instead of folding the whole verified log.
    decide_cached: bool,
}

impl App {
    /// For one command: every decision folds the verified log.
    pub fn new(policy: LoadedPolicy, log: AuditLog, sealer: Sealer) -> Self {
        App {
            redactor: config::redactor(&policy),
            backends: Backends::new(&policy.policy.backends),
            policy,
            log,
            sealer,
            cache: None,
            decide_cached: false,
        }
    }

    /// For a long-lived door (the TUI, the bridge): what it shows is read
    /// through an incremental cache, raising the host's high-water mark as
    /// it goes. Decisions and runs still fold the whole verified log.
    pub fn long_lived(policy: LoadedPolicy, log: AuditLog, sealer: Sealer) -> Self {
        let cache = LedgerCache::new(sealer.clone(), log.mark().cloned());
        App {
            cache: Some(cache),
            ..App::new(policy, log, sealer)
        }
    }

    /// Decisions and runs read the ledger through the cache as well: an
    /// edit to records the process already read is then caught by
    /// `opsgate audit verify` and by a restart, not by the next decision
    /// (the chat bridge, which would otherwise fold the whole log on every
    /// request; `audit::ledger::LedgerCache`).
    #[must_use]
    pub fn deciding_through_cache(self) -> Self {
        App {
            decide_cached: true,
            ..self
        }
    }

    /// The incremental ledger, if this is a long-lived door: for what it
    /// shows.
    pub fn cache(&self) -> Option<&LedgerCache> {
        self.cache.as_ref()
    }

    /// The cache decisions and runs may read through, if any.
    fn decision_cache(&self) -> Option<&LedgerCache> {
        self.cache.as_ref().filter(|_| self.decide_cached)
    }

    /// Records the submission of `cp` by `who` (see [`submit::record`]).
    pub fn submit(
        &self,
        cp: &ClassifiedPlan,
        who: &crate::core::identity::Actor,
        channel: Channel,
    ) -> Result<(u64, bool)> {
        submit::record(&self.log, &self.policy, cp, (who, channel))
    }

    /// Records an approval (see [`decide::grant`]).
    pub fn grant(&self, req: &decide::Request<'_>) -> Result<Vec<Appended>> {
        decide::grant(&self.log, self.decision_cache(), &self.policy, req)
    }

    /// Records a rejection (see [`decide::deny`]).
    pub fn deny(&self, req: &decide::Request<'_>) -> Result<Vec<Appended>> {
        decide::deny(&self.log, self.decision_cache(), &self.policy, req)
    }

    /// Checks and records the start of a run (see [`start::begin`]).
    pub fn begin(
        &self,
        target: start::Target<'_>,
        who: (&str, Channel),
        dry_run: bool,
        resume: bool,
    ) -> Result<start::Started> {
        start::begin(
            &self.log,
            self.decision_cache(),
            &self.policy,
            &self.backends,
            target,
            who,
            dry_run,
            resume,
        )
    }
}
