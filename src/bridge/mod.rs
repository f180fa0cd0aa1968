//! The chat bridge's HTTP API (axum): chat bots forward a person's yes/no.
//!
//! A client authenticates with a bearer token (the policy stores only its
//! SHA-256, compared in constant time) and, when configured, signs each
//! request. It speaks only for the senders mapped to it. Every decision goes
//! through the same approval rules as the CLI and TUI (channel `chat`, with
//! its ceiling), and is durable in the audit log before the response.
//! Errors are JSON, `{"error": code, "message": …}`, without internals.

pub mod guard;
pub mod notify;
mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::ledger::run_is_live;
use crate::audit::{AuditLog, Channel, Sealer};
use crate::cli::approve_cmd::{Binding, Metadata, counts, deny, grant};
use crate::cli::error::CliError;
use crate::core::approval::requirement;
use crate::core::policy::LoadedPolicy;
use crate::core::state::PlanState;

/// How far in the past a signed request's timestamp may be.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// How far in the future a signed request's timestamp may be: a few
/// seconds of clock difference, no more (a timestamp far ahead would keep a
/// captured request fresh).
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 5;

/// How many request keys the replay cache holds at most.
pub const REPLAY_CAPACITY: usize = 100_000;

/// Metadata keys a client may not set, compared without case or spaces:
/// the decision's own fields, and what the bridge writes itself from the
/// authenticated request (`client`, `sender_id`), which metadata rules
/// read as facts (`client`, `sender`, `approver`), never as claims.
pub const RESERVED_METADATA: [&str; 8] = [
    "approver",
    "plan_hash",
    "channel",
    "client",
    "sender",
    "sender_id",
    "submission_seq",
    "rollback_of",
];

/// A metadata key as compared: no whitespace, lower case.
fn metadata_key(k: &str) -> String {
    k.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A configured client, ready to check requests.
#[derive(Debug)]
struct Client {
    name: String,
    digest: [u8; 32],
    secret: Option<Vec<u8>>,
    senders: BTreeMap<String, String>,
}

/// What the handlers share.
#[derive(Debug)]
pub struct Bridge {
    policy: LoadedPolicy,
    log: Arc<AuditLog>,
    log_path: PathBuf,
    sealer: Sealer,
    clients: Vec<Client>,
    limiter: guard::RateLimiter,
    replay: guard::ReplayCache,
    /// The ledger, read incrementally.
    cache: crate::audit::ledger::LedgerCache,
    /// `bridge.metadata_rules`, with their regexes compiled once.
    rules: Vec<(crate::core::policy::MetadataRule, Option<regex::Regex>)>,
    metrics: guard::Metrics,
}

impl Bridge {
    /// Reads the clients' signing secrets from the environment; a client
    /// whose secret variable is unset is an error, not an unsigned client.
    pub fn new(policy: LoadedPolicy, log: AuditLog, sealer: Sealer) -> Result<Self, String> {
        let mut clients = Vec::new();
        for c in &policy.policy.bridge.clients {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&c.token_sha256.0, &mut digest)
                .map_err(|e| format!("bridge client `{}`: token_sha256: {e}", c.name))?;
            let secret = match &c.signing_secret_env {
                None => None,
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            format!(
                                "bridge client `{}`: signing_secret_env {var} is not set",
                                c.name
                            )
                        })?
                        .into_bytes(),
                ),
            };
            clients.push(Client {
                name: c.name.clone(),
                digest,
                secret,
                senders: c.senders.clone(),
            });
        }
        let bridge_policy = &policy.policy.bridge;
        let mut rules = Vec::new();
        for (i, r) in bridge_policy.metadata_rules.iter().enumerate() {
            let re = match r.op {
                crate::core::policy::MetadataOp::Regex => {
                    Some(regex::Regex::new(&r.value).map_err(|e| {
                        format!(
                            "bridge.metadata_rules[{i}]: invalid regex `{}`: {e}",
                            r.value
                        )
                    })?)
                }
                _ => None,
            };
            rules.push((r.clone(), re));
        }
        let limiter = guard::RateLimiter::new(bridge_policy.rate_limit.clone());
        let replay = guard::ReplayCache::new(bridge_policy.replay_window.get(), REPLAY_CAPACITY);
        Ok(Bridge {
            cache: crate::audit::ledger::LedgerCache::new(sealer.clone(), log.mark().cloned()),
            rules,
            limiter,
            replay,
            metrics: guard::Metrics::default(),
            log_path: log.path().to_owned(),
            policy,
            log: Arc::new(log),
            sealer,
            clients,
        })
    }
}

/// An API error: status, code and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
        }
        let body = Body {
            error: self.code,
            message: &self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The routes, over shared state.
pub fn router(bridge: Arc<Bridge>) -> Router {
    let max_body = usize::try_from(bridge.policy.policy.bridge.max_body).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/plans", get(list_plans))
        .route("/v1/plans/{id}", get(plan_detail))
        .route("/v1/plans/{id}/decision", post(decision))
        .route("/v1/slack/interactive", post(slack_interactive))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            err(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "wrong method for this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(bridge)
}

/// Equal without revealing where two digests differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client a bearer token belongs to.
fn authenticate<'b>(bridge: &'b Bridge, headers: &HeaderMap) -> Result<&'b Client, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required",
            )
        })?;
    let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    // Check every client, so the time taken does not tell which matched.
    let mut found = None;
    for c in &bridge.clients {
        if same_digest(&c.digest, &digest) {
            found = Some(c);
        }
    }
    found.ok_or_else(|| err(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"))
}

/// `X-Opsgate-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`.
/// Returns when the request was signed (`None` for a client that does not
/// sign).
fn check_signature(
    client: &Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<i64>, ApiError> {
    let Some(secret) = &client.secret else {
        return Ok(None);
    };
    let (ts, given) = signed_parts(
        headers,
        "x-opsgate-timestamp",
        "x-opsgate-signature",
        "sha256=",
    )?;
    if hmac_matches(secret, &[ts.as_bytes(), b".", body], &given) {
        Ok(ts.parse().ok())
    } else {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "bad signature",
        ))
    }
}

/// A signed request's timestamp and signature bytes, from the headers
/// `ts_header` and `sig_header` (`{prefix}<hex>`): refused when either is
/// missing or malformed, or the timestamp is more than 300 s from now.
fn signed_parts<'h>(
    headers: &'h HeaderMap,
    ts_header: &str,
    sig_header: &str,
    prefix: &str,
) -> Result<(&'h str, Vec<u8>), ApiError> {
    let bad = |m: String| err(StatusCode::UNAUTHORIZED, "bad_signature", m);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (header(ts_header), header(sig_header)) else {
        return Err(bad(format!(
            "the request must be signed ({ts_header}, {sig_header})"
        )));
    };
    let ts = ts.trim();
    let ts_num: i64 = ts
        .parse()
        .map_err(|_| bad(format!("{ts_header} is not a number")))?;
    let age = Utc::now().timestamp() - ts_num;
    if age > MAX_SKEW_SECONDS {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            "the timestamp is more than 300 s old",
        ));
    }
    if -age > MAX_FUTURE_SKEW_SECONDS {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            "the timestamp is more than 5 s in the future",
        ));
    }
    let given = sig
        .trim()
        .strip_prefix(prefix)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| bad(format!("{sig_header} is not {prefix}<hex>")))?;
    Ok((ts, given))
}

/// Whether `given` is the HMAC-SHA256 of the parts under `secret`
/// (compared in constant time).
fn hmac_matches(secret: &[u8], parts: &[&[u8]], given: &[u8]) -> bool {
    hmac::Hmac::<Sha256>::new_from_slice(secret).is_ok_and(|mut mac| {
        parts.iter().for_each(|p| mac.update(p));
        mac.verify_slice(given).is_ok()
    })
}

async fn metrics(State(b): State<Arc<Bridge>>) -> Response {
    let (pending, breakers) = match fold_log(&b).await {
        Ok(ledger) => (
            ledger
                .plans()
                .filter(|p| {
                    let v = p.verdict(&b.policy.policy, &b.policy.hash, Utc::now());
                    matches!(
                        p.status(&v, |r| run_is_live(&b.log_path, r)),
                        crate::core::state::PlanStatus::Pending
                    )
                })
                .count(),
            ledger.breakers().cloned().collect(),
        ),
        Err(_) => (0, Vec::new()),
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        b.metrics.render(pending, &breakers),
    )
        .into_response()
}

async fn readyz(State(b): State<Arc<Bridge>>) -> Response {
    // Not ready while nothing could be decided: a log behind this bridge's
    // high-water mark, or one that ends with an unfinished record.
    let not_ready = |e: ApiError| err(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.message);
    if let Err(e) = fold_log(&b).await
        && e.code == "log_truncated"
    {
        return not_ready(e).into_response();
    }
    if let Ok(f) = std::fs::File::open(&b.log_path)
        && let Ok(len) = crate::audit::read::committed_len(&f)
        && crate::audit::backward::read_tail(&f, len, 0).is_ok_and(|v| v.torn_at.is_some())
    {
        return not_ready(log_torn()).into_response();
    }
    match crate::audit::verify::read_head(&b.log_path, &b.sealer) {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::OK, "ready\n").into_response()
        }
        Ok(Err(m)) => {
            tracing::warn!(problem = %m, "the audit log's tail does not check");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the audit log does not verify",
            )
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit log");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the audit log cannot be read",
            )
            .into_response()
        }
    }
}

/// The ledger, folded from the verified log, off the async threads.
async fn fold_log(b: &Arc<Bridge>) -> Result<crate::core::state::Ledger, ApiError> {
    with_ledger(b, Clone::clone).await
}

/// One plan's state (cloning only it), off the async threads.
async fn plan_state(b: &Arc<Bridge>, id: &str) -> Result<Option<PlanState>, ApiError> {
    let id = id.to_owned();
    with_ledger(b, move |l| l.plan(&id).cloned()).await
}

/// Text from a request echoed in an error: at most 64 characters, control
/// and bidi characters escaped, so an answer never grows with the request.
fn echo(text: &str) -> String {
    const MAX: usize = 64;
    let cut: String = text.chars().take(MAX).collect();
    let more = if text.chars().nth(MAX).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", crate::core::event::printable(&cut))
}

/// A decision refused by a rule (already recorded as `refused`): its HTTP
/// status and error code.
fn denial(code: &'static str, message: String) -> ApiError {
    let (status, code) = match code {
        "self_approval" | "channel_ceiling" => (StatusCode::FORBIDDEN, code),
        "not_listed" | "above_max_risk" | "channel_not_allowed" | "refused_by_policy" => {
            (StatusCode::FORBIDDEN, "not_permitted")
        }
        "stale_plan_hash" | "stale_submission" => (StatusCode::CONFLICT, code),
        "closed" | "policy_changed" => (StatusCode::GONE, "closed"),
        _ => (StatusCode::CONFLICT, "refused"),
    };
    err(status, code, message)
}

/// Records a refusal the bridge decided itself (a metadata rule) as a
/// `refused` record, durable before the answer.
async fn record_refusal(
    b: &Arc<Bridge>,
    approver: &str,
    id: &str,
    req: &DecisionRequest,
    client: &Client,
    refusal: &CliError,
) -> Result<(), ApiError> {
    let mut metadata = req.metadata.clone();
    metadata.insert("client".into(), client.name.clone().into());
    metadata.insert("sender_id".into(), req.sender_id.clone().into());
    let what = if req.decision == "yes" {
        "approve"
    } else {
        "reject"
    };
    let attempt =
        crate::cli::refusal::Attempt::on_plan(what, approver, Channel::Chat, id, &b.policy.hash)
            .with_metadata(&metadata);
    let Some(record) = attempt.record_of(refusal) else {
        return Ok(());
    };
    let b = Arc::clone(b);
    blocking(move || b.log.append(record))
        .await?
        .map(drop)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot record a refusal");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                "the refusal could not be recorded",
            )
        })
}

/// The log ends with an unfinished record: only an operator mends it.
fn log_torn() -> ApiError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_needs_repair",
        "the audit log ends with an unfinished record: nothing is recorded until an operator runs `opsgate audit repair`",
    )
}

/// The log is behind this bridge's high-water mark.
/// Runs `f` off the async threads (it takes the log's lock and fsyncs).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

fn log_truncated() -> ApiError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_truncated",
        "the audit log lost records this bridge saw: nothing is recorded until an operator checks it and runs `opsgate audit verify --acknowledge-truncation`",
    )
}

/// Runs `f` on the current ledger, off the async threads.
async fn with_ledger<R: Send + 'static>(
    b: &Arc<Bridge>,
    f: impl FnOnce(&crate::core::state::Ledger) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let b = Arc::clone(b);
    blocking(move || {
        let len = match std::fs::metadata(&b.log_path) {
            Ok(m) => m.len(),
            Err(_) => return Ok(f(&crate::core::state::Ledger::default())),
        };
        b.cache.with(&b.log_path, len, f).map_err(|e| {
            tracing::error!(error = %e, "cannot fold the audit log");
            match e {
                crate::audit::ledger::LedgerError::Truncated { .. } => log_truncated(),
                _ => err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    "the audit log cannot be used",
                ),
            }
        })
    })
    .await?
}

#[derive(Debug, Serialize)]
struct PlanSummary {
    id: String,
    title: String,
    risk: String,
    status: &'static str,
    plan_hash: String,
    /// The submission a decision binds to (send it as `submission_seq`).
    submission_seq: u64,
    approvals: Approvals,
    expires_at: Option<String>,
    /// A short text fit for a chat message.
    summary: String,
}

#[derive(Debug, Serialize)]
struct Approvals {
    have: Vec<String>,
    needed: u32,
}

fn summarize(b: &Bridge, p: &PlanState) -> PlanSummary {
    let now = Utc::now();
    let verdict = p.verdict(&b.policy.policy, &b.policy.hash, now);
    let status = p.status(&verdict, |r| run_is_live(&b.log_path, r));
    let (needed, have) = counts(p, &b.policy, &verdict);
    let title = p
        .submission
        .plan
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    let title = crate::core::event::printable(&title).into_owned();
    let mut summary = format!("{} [{}] {}\n", p.plan_id, p.submission.risk, title);
    if let Ok(plan) = crate::core::plan::Plan::from_json(p.submission.plan.clone()) {
        let review = crate::core::plan::ClassifiedPlan::from_plan(plan, &b.policy.rules);
        for (i, (s, r)) in review.plan.steps.iter().zip(&review.steps).enumerate() {
            summary.push_str(&format!(
                "{}. {} [{}]\n",
                i + 1,
                crate::core::event::printable(&s.name),
                r.action.risk
            ));
        }
        summary.push_str(match &review.plan.rollback {
            crate::core::plan::PlanRollback::Steps { .. } => "rollback: plan-level steps\n",
            crate::core::plan::PlanRollback::None { .. } => "rollback: none (see the plan)\n",
            crate::core::plan::PlanRollback::Absent => "rollback: per step\n",
        });
    }
    let ttl = chrono::Duration::milliseconds(
        i64::try_from(b.policy.policy.approvals.ttl.as_millis()).unwrap_or(i64::MAX),
    );
    let expires_at = p
        .votes
        .iter()
        .filter(|v| v.granted && v.plan_hash == p.submission.plan_hash)
        .map(|v| v.at + ttl)
        .min()
        .map(|t| crate::core::event::format_ts(&t));
    PlanSummary {
        id: p.plan_id.clone(),
        title,
        risk: p.submission.risk.to_string(),
        status: status.as_str(),
        plan_hash: p.submission.plan_hash.to_string(),
        submission_seq: p.submission.seq,
        approvals: Approvals { have, needed },
        expires_at,
        summary,
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list_plans(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authenticate(&b, &headers)?;
    let Query(q) = q.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", e.body_text()))?;
    let ledger = fold_log(&b).await?;
    let plans: Vec<PlanSummary> = ledger
        .plans()
        .map(|p| summarize(&b, p))
        .filter(|s| q.status.as_deref().is_none_or(|want| want == s.status))
        .collect();
    Ok(axum::Json(plans).into_response())
}

async fn plan_detail(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&b, &headers)?;
    let ledger = fold_log(&b).await?;
    let p = ledger.plan(&id).ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plan `{}`", echo(&id)),
        )
    })?;
    let plan = crate::core::plan::Plan::from_json(p.submission.plan.clone()).map_err(|_| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the stored plan cannot be read",
        )
    })?;
    let review = crate::core::plan::ClassifiedPlan::from_plan(plan, &b.policy.rules);
    let view = crate::cli::plan_view::PlanView::new(&review, &b.policy.hash);
    let body = serde_json::json!({"plan": view, "state": summarize(&b, p)});
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionRequest {
    decision: String,
    plan_hash: String,
    /// The submission the decision is for (`submission_seq` of the plan
    /// as listed): a decision for an earlier submission is refused.
    #[serde(default)]
    submission_seq: Option<u64>,
    sender_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Debug, Serialize)]
struct DecisionResponse {
    plan_id: String,
    decision: String,
    approver: String,
    seq: u64,
    status: &'static str,
    approvals: Approvals,
}

/// The first metadata rule a `yes` at `level` does not meet, in words.
/// `facts`: what the bridge itself knows of the request (`client`,
/// `sender`, `approver`): a rule on one of those keys reads the fact, never
/// the client's metadata.
fn unmet_metadata_rule(
    rules: &[(crate::core::policy::MetadataRule, Option<regex::Regex>)],
    level: crate::core::risk::RiskLevel,
    metadata: &Metadata,
    facts: &[(&str, &str)],
) -> Option<String> {
    use crate::core::policy::MetadataOp;
    rules.iter().find_map(|(r, re)| {
        if level < r.level {
            return None;
        }
        let key = metadata_key(&r.key);
        let have = match facts.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => Some((*v).to_owned()),
            None => metadata.get(&r.key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        };
        let met = have.as_deref().is_some_and(|h| match r.op {
            MetadataOp::Eq => h == r.value,
            MetadataOp::Neq => h != r.value,
            MetadataOp::Contains => h.contains(&r.value),
            MetadataOp::Regex => re.as_ref().is_some_and(|re| re.is_match(h)),
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

/// Slack's request signing (v0): `X-Slack-Signature: v0=<hex HMAC-SHA256(
/// secret, "v0:{timestamp}:{body}")>` with `X-Slack-Request-Timestamp`,
/// refused beyond 5 minutes. The client is the one whose secret verifies.
/// The client whose secret signed a Slack request, and when it was signed.
fn slack_client<'b>(
    b: &'b Bridge,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'b Client, Option<i64>), ApiError> {
    let (ts, given) = signed_parts(
        headers,
        "x-slack-request-timestamp",
        "x-slack-signature",
        "v0=",
    )?;
    b.clients
        .iter()
        .find(|c| {
            c.secret.as_ref().is_some_and(|secret| {
                hmac_matches(secret, &[b"v0:", ts.as_bytes(), b":", body], &given)
            })
        })
        .map(|c| (c, ts.parse().ok()))
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "bad Slack signature",
            )
        })
}

#[derive(Debug, Deserialize)]
struct SlackForm {
    payload: String,
}

#[derive(Debug, Deserialize)]
struct SlackPayload {
    user: SlackUser,
    actions: Vec<SlackAction>,
    #[serde(default)]
    channel: Option<SlackChannel>,
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SlackChannel {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SlackAction {
    action_id: String,
    value: String,
}

/// What a Slack button carries: `{"plan_id": …, "plan_hash": …,
/// "submission_seq": …}` (the seq binds the press to the submission it
/// was shown for).
#[derive(Debug, Deserialize)]
struct SlackButton {
    plan_id: String,
    plan_hash: String,
    #[serde(default)]
    submission_seq: Option<u64>,
}

/// Slack's interactivity payload (a button press): verified with Slack's
/// signing scheme, mapped through the client's senders, decided like any
/// decision, and answered with a message update.
async fn slack_interactive(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let mut claimed = Vec::new();
    let result = slack_decide(&b, &headers, body, &mut claimed).await;
    answer(&b, started, result, claimed, |resp, yes| {
        let who = if resp.approvals.have.is_empty() {
            String::new()
        } else {
            format!(" ({})", resp.approvals.have.join(", "))
        };
        let text = format!(
            "Plan `{}` {} by {}: now {} · {}/{} approvals{who}",
            resp.plan_id,
            if yes { "approved" } else { "rejected" },
            resp.approver,
            resp.status,
            resp.approvals.have.len(),
            resp.approvals.needed
        );
        serde_json::json!({"replace_original": true, "text": text}).to_string()
    })
}

async fn slack_decide(
    b: &Arc<Bridge>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Answer, ApiError> {
    let body = body.map_err(|e| err(e.status(), "malformed", e.body_text()))?;
    let (client, signed_at) = slack_client(b, headers, &body)?;
    let malformed = |m: String| err(StatusCode::BAD_REQUEST, "malformed", m);
    let form: SlackForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| malformed(format!("not a Slack form: {e}")))?;
    let payload: SlackPayload = serde_json::from_str(&form.payload)
        .map_err(|e| malformed(format!("not a Slack interaction: {e}")))?;
    let action = payload
        .actions
        .first()
        .ok_or_else(|| malformed("the interaction has no action".into()))?;
    let button: SlackButton = serde_json::from_str(&action.value).map_err(|e| {
        malformed(format!(
            "the button value is not {{plan_id, plan_hash}}: {e}"
        ))
    })?;
    let yes = match action.action_id.as_str() {
        "approve" | "yes" => true,
        "reject" | "no" => false,
        other => {
            return Err(malformed(format!(
                "action `{other}` is not approve or reject"
            )));
        }
    };
    let mut metadata = Metadata::new();
    if let Some(ch) = &payload.channel {
        metadata.insert(
            "channel_id".into(),
            serde_json::Value::String(ch.id.clone()),
        );
    }
    let req = DecisionRequest {
        decision: if yes { "yes" } else { "no" }.into(),
        plan_hash: button.plan_hash,
        submission_seq: button.submission_seq,
        sender_id: payload.user.id.clone(),
        reason: (!yes).then(|| "rejected in Slack".to_owned()),
        metadata,
    };
    decide_request(
        b,
        Signed { client, signed_at },
        button.plan_id,
        req,
        &body,
        headers,
        claimed,
    )
    .await
}

/// How a decision request ended, when it did not fail.
enum Answer {
    Done(DecisionResponse, bool),
    /// The same request again (same key, same body): the first answer.
    Again(guard::Remembered),
}

async fn decision(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let mut claimed = Vec::new();
    let result = decide(&b, &headers, id, body, &mut claimed).await;
    answer(&b, started, result, claimed, |resp, _| {
        serde_json::to_string(resp).unwrap_or_default()
    })
}

/// Turns a decision's outcome into the response, shown by `render` when
/// recorded: counts it in the metrics, and remembers the answer for its
/// request key (or frees the key when nothing was recorded), so a retry
/// gets the same answer.
fn answer(
    b: &Bridge,
    started: std::time::Instant,
    result: Result<Answer, ApiError>,
    claimed: Vec<(String, [u8; 32])>,
    render: impl FnOnce(&DecisionResponse, bool) -> String,
) -> Response {
    b.metrics.latency(started.elapsed());
    match result {
        Ok(Answer::Done(resp, yes)) => {
            b.metrics.decision(if yes { "yes" } else { "no" });
            let json = render(&resp, yes);
            for (key, digest) in claimed {
                b.replay.remember(
                    &key,
                    guard::Remembered {
                        body_sha256: digest,
                        status: 200,
                        body: json.clone(),
                    },
                );
            }
            json_response(StatusCode::OK, json)
        }
        Ok(Answer::Again(r)) => json_response(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            r.body,
        ),
        Err(e) => {
            b.metrics.rejection(e.code);
            for (key, _) in claimed {
                b.replay.forget(&key);
            }
            e.into_response()
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn decide(
    b: &Arc<Bridge>,
    headers: &HeaderMap,
    id: String,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Answer, ApiError> {
    let b = Arc::clone(b);
    let client = authenticate(&b, headers)?;
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            err(
                status,
                "body_too_large",
                "the body is larger than bridge.max_body",
            )
        } else {
            err(StatusCode::BAD_REQUEST, "malformed", e.body_text())
        }
    })?;
    let signed_at = check_signature(client, headers, &body)?;
    let req: DecisionRequest = serde_json::from_slice(&body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the body is not a decision: {e}"),
        )
    })?;
    decide_request(
        &b,
        Signed { client, signed_at },
        id,
        req,
        &body,
        headers,
        claimed,
    )
    .await
}

/// The authenticated client of a request, and when it signed it.
#[derive(Debug, Clone, Copy)]
struct Signed<'c> {
    client: &'c Client,
    signed_at: Option<i64>,
}

/// A parsed decision from `client`: every check, then the recording.
async fn decide_request(
    b: &Arc<Bridge>,
    signed: Signed<'_>,
    id: String,
    req: DecisionRequest,
    body: &[u8],
    headers: &HeaderMap,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Answer, ApiError> {
    let b = Arc::clone(b);
    let client = signed.client;
    let yes = match req.decision.as_str() {
        "yes" => true,
        "no" => false,
        other => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("decision `{other}` is not yes or no"),
            ));
        }
    };
    if let Some(k) = req
        .metadata
        .keys()
        .find(|k| RESERVED_METADATA.contains(&metadata_key(k).as_str()))
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "reserved_metadata_key",
            format!("`{k}` may not appear in metadata"),
        ));
    }
    if !yes && req.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "a `no` needs a reason",
        ));
    }
    let approver = client.senders.get(&req.sender_id).cloned().ok_or_else(|| {
        err(
            StatusCode::FORBIDDEN,
            "unknown_sender",
            format!(
                "sender `{}` is not mapped for client `{}`",
                echo(&req.sender_id),
                client.name
            ),
        )
    })?;

    if let Err(limited) = b
        .limiter
        .check(&client.name, &req.sender_id, std::time::Instant::now())
    {
        let what = match limited {
            guard::Limited::Client => "this client",
            guard::Limited::Sender => "this sender",
            guard::Limited::TooManySenders => "new senders (the sender table is full)",
        };
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many decisions from {what}; try again later"),
        ));
    }
    // Replays are keyed on the signature, always (a captured signed request
    // or Slack press cannot come back under a fresh Idempotency-Key), and
    // on the Idempotency-Key too when one is given.
    let digest: [u8; 32] = Sha256::digest(body).into();
    let now = std::time::Instant::now();
    for header in [
        "x-opsgate-signature",
        "x-slack-signature",
        "idempotency-key",
    ] {
        let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let key = format!("{}:{header}:{}", client.name, value.trim());
        let seen = b.replay.check(&key, digest, now);
        if !matches!(seen, guard::Seen::New) {
            for (k, _) in claimed.drain(..) {
                b.replay.forget(&k);
            }
        }
        match seen {
            guard::Seen::New => claimed.push((key, digest)),
            guard::Seen::Repeat(r) => return Ok(Answer::Again(r)),
            guard::Seen::Replay => {
                return Err(err(
                    StatusCode::CONFLICT,
                    "replayed",
                    "this request was seen before with another body, or is still being answered",
                ));
            }
        }
    }
    // Every rule is checked under the log's lock when the decision is
    // recorded (`grant`, `deny`), and a refusal is recorded there too; here
    // only what is the bridge's own: the plan exists, and a `yes` meets the
    // metadata rules of its level.
    let plan = plan_state(&b, &id).await?;
    let plan = plan.as_ref().ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plan `{}`", echo(&id)),
        )
    })?;
    let signed_at = signed.signed_at.map(|at| (at, MAX_SKEW_SECONDS));
    if yes && let Ok(req_level) = requirement(&b.policy.policy, &plan.subject()) {
        let facts = [
            ("client", client.name.as_str()),
            ("sender", req.sender_id.as_str()),
            ("sender_id", req.sender_id.as_str()),
            ("approver", approver.as_str()),
        ];
        if let Some(unmet) = unmet_metadata_rule(&b.rules, req_level.level, &req.metadata, &facts) {
            let refusal = crate::cli::error::denied_for(
                "metadata_rule",
                &plan.submission.plan_hash,
                unmet.clone(),
            );
            record_refusal(&b, &approver, &id, &req, client, &refusal).await?;
            return Err(err(StatusCode::FORBIDDEN, "not_permitted", unmet));
        }
    }
    let mut metadata = req.metadata;
    metadata.insert(
        "client".into(),
        serde_json::Value::String(client.name.clone()),
    );
    metadata.insert(
        "sender_id".into(),
        serde_json::Value::String(req.sender_id.clone()),
    );
    let (b2, id2, who, hash, reason) = (
        Arc::clone(&b),
        id.clone(),
        approver.clone(),
        req.plan_hash.clone(),
        req.reason.clone(),
    );
    let submission_seq = req.submission_seq;
    let recorded = blocking(move || {
        let binding = Binding {
            hash: Some(&hash),
            whole_hash: true,
            submission_seq,
            signed_at,
        };
        if yes {
            grant(
                &b2.log,
                Some(&b2.cache),
                &b2.policy,
                &id2,
                &who,
                Channel::Chat,
                &binding,
                reason,
                metadata,
            )
        } else {
            deny(
                &b2.log,
                Some(&b2.cache),
                &b2.policy,
                &id2,
                &who,
                Channel::Chat,
                &binding,
                reason.as_deref().unwrap_or_default(),
                metadata,
            )
        }
    })
    .await?;
    let appended = recorded.map_err(|e| {
        tracing::warn!(plan = %id, error = %e, "decision refused while recording");
        match e {
            CliError::Refused(m) => err(StatusCode::CONFLICT, "refused", m),
            CliError::Denied { code, message, .. } => denial(code, message),
            CliError::Audit(crate::audit::AuditError::TornTail { .. }) => log_torn(),
            CliError::Audit(crate::audit::AuditError::Truncated { .. }) => log_truncated(),
            _ => err(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                "the decision could not be recorded",
            ),
        }
    })?;
    // The new state, for the chat message.
    let plan = plan_state(&b, &id).await?;
    let plan = plan.as_ref().ok_or_else(|| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the plan vanished",
        )
    })?;
    let s = summarize(&b, plan);
    Ok(Answer::Done(
        DecisionResponse {
            plan_id: id,
            decision: req.decision,
            approver,
            seq: appended.last().map_or(0, |a| a.seq),
            status: s.status,
            approvals: s.approvals,
        },
        yes,
    ))
}

pub use serve::serve;
