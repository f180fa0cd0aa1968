//! The native backends: Kubernetes (kube), EC2 (aws-sdk-ec2) and Docker
//! (bollard), behind one door.
//!
//! [`Backends::perform`] runs one native action, or its dry-run form, within
//! a deadline: transient errors retry with exponential backoff and jitter,
//! and every call goes through its backend's circuit breaker, which fails
//! closed while open. [`Backends::fingerprints`] reads the live state of a
//! plan's targets, for the drift check between submission and run.

pub mod breaker;
mod docker;
mod ec2;
mod kube;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use self::breaker::{Admit, Breaker, BreakerState};
use crate::core::plan::{Action, Plan};
use crate::core::policy::BackendsPolicy;

/// The backends a plan can name.
pub const BACKENDS: [&str; 3] = ["kube", "ec2", "docker"];

/// What one call answered: for an operation, `ok` is true; for a check,
/// whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    pub output: String,
}

impl Reply {
    fn done(output: impl Into<String>) -> Self {
        Reply {
            ok: true,
            output: output.into(),
        }
    }

    fn check(ok: bool, output: impl Into<String>) -> Self {
        Reply {
            ok,
            output: output.into(),
        }
    }
}

/// A call that did not get an answer (or got an error for one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// Worth retrying: a connection that failed, a timeout, throttling, a
    /// 5xx from the server.
    pub transient: bool,
    pub message: String,
}

impl CallError {
    fn transient(message: impl Into<String>) -> Self {
        CallError {
            transient: true,
            message: message.into(),
        }
    }

    fn permanent(message: impl Into<String>) -> Self {
        CallError {
            transient: false,
            message: message.into(),
        }
    }
}

/// How one native action ended, after retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The call answered: `ok` as in [`Reply`].
    Answered(Reply),
    Failed(String),
    TimedOut(String),
    /// The backend's breaker is open: nothing was sent.
    BreakerOpen(String),
}

/// One backend's breaker, as shown in `status`, the TUI and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerView {
    pub backend: &'static str,
    pub state: BreakerState,
    pub consecutive_failures: u32,
}

/// A change of a breaker's state, for observers (the audit log, the TUI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerChange {
    pub backend: &'static str,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub error: String,
}

/// The clients and breakers of one process. Clients are made on first use
/// and kept; breakers count across every run the process makes.
pub struct Backends {
    policy: BackendsPolicy,
    breakers: Mutex<BTreeMap<&'static str, Breaker>>,
    changes: Mutex<Vec<BreakerChange>>,
    kube: tokio::sync::Mutex<HashMap<Option<String>, ::kube::Client>>,
    ec2: tokio::sync::Mutex<HashMap<Option<String>, aws_sdk_ec2::Client>>,
    docker: tokio::sync::Mutex<HashMap<Option<String>, bollard::Docker>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("policy", &self.policy)
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

/// The first retry waits this long; each next one twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

impl Backends {
    pub fn new(policy: &BackendsPolicy) -> Arc<Self> {
        Arc::new(Backends {
            breakers: Mutex::new(
                BACKENDS
                    .iter()
                    .map(|b| (*b, Breaker::new(&policy.breaker)))
                    .collect(),
            ),
            policy: policy.clone(),
            changes: Mutex::new(Vec::new()),
            kube: tokio::sync::Mutex::new(HashMap::new()),
            ec2: tokio::sync::Mutex::new(HashMap::new()),
            docker: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Each backend's breaker now.
    pub fn breakers(&self) -> Vec<BreakerView> {
        let now = Instant::now();
        let mut map = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter_mut()
            .map(|(backend, b)| BreakerView {
                backend,
                state: b.state(now),
                consecutive_failures: b.consecutive_failures(),
            })
            .collect()
    }

    /// The breaker changes since the last call.
    pub fn take_changes(&self) -> Vec<BreakerChange> {
        std::mem::take(
            &mut *self
                .changes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn admit(&self, backend: &'static str) -> Admit {
        let mut map = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get_mut(backend)
            .map_or(Admit::Yes, |b| b.admit(Instant::now()))
    }

    fn record(&self, backend: &'static str, result: Result<(), &CallError>) {
        let mut map = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(b) = map.get_mut(backend) else {
            return;
        };
        // Only failures of the backend count: a refused request (a
        // missing object, a bad argument) is an answer.
        let failed = matches!(result, Err(e) if e.transient);
        if let Some(state) = b.record(!failed, Instant::now()) {
            let change = BreakerChange {
                backend,
                state,
                consecutive_failures: b.consecutive_failures(),
                error: result.err().map(|e| e.message.clone()).unwrap_or_default(),
            };
            tracing::warn!(backend, state = state.as_str(), "circuit breaker changed");
            self.changes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(change);
        }
    }

    /// Runs one native action (its dry-run form with `dry_run`) within
    /// `timeout`, retrying transient errors with backoff and jitter until
    /// the deadline.
    pub async fn perform(&self, action: &Action, dry_run: bool, timeout: Duration) -> Outcome {
        let Some(backend) = action.backend() else {
            return Outcome::Failed("not a native action".into());
        };
        let deadline = Instant::now() + timeout;
        let mut attempt: u32 = 0;
        let mut last_error = None;
        loop {
            if let Admit::No { retry_in } = self.admit(backend) {
                let retry_in = retry_in.as_secs().max(1);
                return Outcome::BreakerOpen(match last_error {
                    None => format!(
                        "the {backend} circuit breaker is open after repeated failures: nothing was sent (it lets a call through again in {retry_in}s)"
                    ),
                    Some(e) => format!(
                        "the {backend} circuit breaker is open after repeated failures, the last: {e} (it lets a call through again in {retry_in}s)"
                    ),
                });
            }
            attempt += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(left, self.call(action, dry_run, left)).await {
                Ok(r) => r,
                Err(_) => Err(CallError::transient(format!(
                    "no answer within the {}s timeout",
                    timeout.as_secs_f64()
                ))),
            };
            self.record(backend, result.as_ref().map(|_| ()));
            match result {
                Ok(reply) => return Outcome::Answered(reply),
                Err(e) if !e.transient => return Outcome::Failed(e.message),
                Err(e) => {
                    let wait = backoff(attempt);
                    if Instant::now() + wait >= deadline {
                        return Outcome::TimedOut(format!(
                            "{} (gave up after {attempt} attempt(s): the timeout is reached)",
                            e.message
                        ));
                    }
                    tracing::info!(backend, attempt, error = %e.message, "transient error, retrying");
                    last_error = Some(e.message);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn call(
        &self,
        action: &Action,
        dry_run: bool,
        left: Duration,
    ) -> Result<Reply, CallError> {
        match action {
            Action::Kube(k) => {
                let client = self.kube_client(&k.context).await?;
                kube::call(&client, k, dry_run).await
            }
            Action::Ec2(e) => {
                let client = self.ec2_client(&e.region).await?;
                ec2::call(&client, e, dry_run, left).await
            }
            Action::Docker(d) => {
                let client = self.docker_client(&d.host).await?;
                docker::call(&client, d, dry_run).await
            }
            Action::Run(_) => Err(CallError::permanent("not a native action")),
        }
    }

    async fn kube_client(&self, context: &Option<String>) -> Result<::kube::Client, CallError> {
        let mut map = self.kube.lock().await;
        if let Some(c) = map.get(context) {
            return Ok(c.clone());
        }
        let c = kube::client(context.as_deref()).await?;
        map.insert(context.clone(), c.clone());
        Ok(c)
    }

    async fn ec2_client(&self, region: &Option<String>) -> Result<aws_sdk_ec2::Client, CallError> {
        let mut map = self.ec2.lock().await;
        if let Some(c) = map.get(region) {
            return Ok(c.clone());
        }
        let c = ec2::client(region.as_deref(), self.policy.ec2_endpoint.as_deref()).await;
        map.insert(region.clone(), c.clone());
        Ok(c)
    }

    async fn docker_client(&self, host: &Option<String>) -> Result<bollard::Docker, CallError> {
        let mut map = self.docker.lock().await;
        if let Some(c) = map.get(host) {
            return Ok(c.clone());
        }
        let c = docker::client(host.as_deref()).await?;
        map.insert(host.clone(), c.clone());
        Ok(c)
    }

    /// The live state of every target the plan's steps act on, by target:
    /// `kube:ctx/ns/Kind/name` → `generation=4 uid=…`, `ec2:region/i-…` →
    /// `state=running`, `docker:host/web` → `id=… state=running`. A target
    /// that does not exist is an error naming the step, except for a kube
    /// `apply`, which may create it (`absent`).
    pub async fn fingerprints(&self, plan: &Plan) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for step in &plan.steps {
            let found = match &step.action {
                Action::Run(_) => continue,
                Action::Kube(k) => {
                    let client = self.kube_client(&k.context).await.map_err(|e| e.message)?;
                    kube::fingerprint(&client, k).await
                }
                Action::Ec2(e) => {
                    let client = self.ec2_client(&e.region).await.map_err(|e| e.message)?;
                    ec2::fingerprints(&client, e).await
                }
                Action::Docker(d) => {
                    let client = self.docker_client(&d.host).await.map_err(|e| e.message)?;
                    docker::fingerprint(&client, d).await
                }
            };
            let field = match &step.action {
                Action::Kube(k)
                    if matches!(k.verb, crate::core::plan::native::KubeVerb::Apply { .. }) =>
                {
                    "manifest"
                }
                Action::Kube(_) => "name",
                Action::Ec2(_) => "instance_ids",
                _ => "container",
            };
            let found = found
                .map_err(|e| format!("step `{}`: field `{field}`: {}", step.name, e.message))?;
            out.extend(found);
        }
        Ok(out)
    }
}

/// An error with its sources, `outer: inner: innermost` (an SDK error's
/// own message says only "dispatch failure").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// Whether any step, check or rollback of the plan is native.
pub fn uses_native(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| {
        s.action.backend().is_some()
            || s.pre_checks
                .iter()
                .chain(&s.post_checks)
                .any(|c| c.action.backend().is_some())
            || s.rollback.as_ref().is_some_and(|r| r.backend().is_some())
    }) || matches!(&plan.rollback, crate::core::plan::PlanRollback::Steps { steps, .. } if steps.iter().any(|s| s.action.backend().is_some()))
}

/// Runs a future to completion from synchronous code, on a thread of its
/// own with its own runtime, so it works whether or not the caller is
/// inside a runtime. Clients made by the future belong to that runtime,
/// which ends here: use a `Backends` of its own, not the one a run uses.
pub fn blocking<F>(fut: F) -> Result<F::Output, String>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            Ok(rt.block_on(fut))
        })
        .join()
        .unwrap_or_else(|_| Err("the backend thread panicked".into()))
    })
}

/// The wait before retry `attempt` + 1: exponential, capped, with full
/// jitter in its upper half so that clients spread out.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let half = exp / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(RandomState::new().hash_one(attempt) % nanos)
}

/// How drift is reported: each target whose state changed, with before
/// and after.
pub fn drift(recorded: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (target, before) in recorded {
        match now.get(target) {
            Some(after) if after == before => {}
            Some(after) => out.push(format!("{target}: {before} → {after}")),
            None => out.push(format!("{target}: {before} → gone")),
        }
    }
    for (target, after) in now {
        if !recorded.contains_key(target) {
            out.push(format!("{target}: not recorded at submission → {after}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_bounds() {
        for attempt in 1..10 {
            let exp = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1))
                .min(BACKOFF_CAP);
            let d = backoff(attempt);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }

    #[test]
    fn drift_names_each_changed_target() {
        let before: BTreeMap<String, String> = [
            ("kube:a".to_owned(), "generation=1".to_owned()),
            ("ec2:b".to_owned(), "state=running".to_owned()),
        ]
        .into();
        let mut after = before.clone();
        assert!(drift(&before, &after).is_empty());
        after.insert("ec2:b".into(), "state=stopped".into());
        assert_eq!(
            drift(&before, &after),
            vec!["ec2:b: state=running → state=stopped"]
        );
    }
}
