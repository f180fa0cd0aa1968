//! The read routes: health, readiness, metrics, the plans and one plan.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::errors::{ApiError, blocking, echo, err, log_torn, log_truncated, log_unreadable};
use super::state::Bridge;
use crate::core::state::PlanState;

pub(super) async fn metrics(State(b): State<Arc<Bridge>>) -> Response {
    let (pending, breakers, in_force) = match fold_log(&b).await {
        Ok(ledger) => (
            ledger
                .plans()
                .filter(|p| {
                    crate::app::views::plan_status(p, b.policy(), b.log_path(), Utc::now()).status
                        == crate::core::state::PlanStatus::Pending
                })
                .count(),
            ledger.breakers().cloned().collect(),
            crate::app::adoption::in_force(&ledger).map(|a| a.policy_hash.as_str().to_owned()),
        ),
        Err(_) => (0, Vec::new(), None),
    };
    let mut text = b.metrics.render(pending, &breakers);
    text.push_str(&super::guard::policy_metrics(
        b.policy().hash.as_str(),
        in_force.as_deref(),
    ));
    text.push_str(&crate::audit::stats::APPENDS.render());
    text.push_str(&format!(
        "# HELP opsgate_audit_log_poisoned 1 when this process's log handle appends nothing more (an fsync failed).\n\
         # TYPE opsgate_audit_log_poisoned gauge\n\
         opsgate_audit_log_poisoned {}\n",
        u8::from(b.app.log.is_poisoned())
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// How long `/healthz` waits for the log before it answers without it:
/// liveness never hangs on a log another process holds.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `/healthz`: the process is alive (always 200), with what it serves:
/// its version, uptime, the policy it loaded and the one adopted in the
/// log, and the log's head. What cannot be read within [`HEALTH_WAIT`]
/// is reported as an error in place; readiness is `/readyz`'s question.
pub(super) async fn healthz(State(b): State<Arc<Bridge>>) -> Response {
    let bridge = Arc::clone(&b);
    let head = tokio::time::timeout(
        HEALTH_WAIT,
        blocking(move || crate::audit::verify::read_head(bridge.log_path(), &bridge.app.sealer)),
    )
    .await;
    let log = match head {
        Ok(Ok(Ok(Ok(Some(h))))) => serde_json::json!({"seq": h.seq, "hash": h.hash}),
        Ok(Ok(Ok(Ok(None)))) => serde_json::json!({"seq": 0, "hash": null}),
        Ok(Ok(Err(e))) if e.kind() == std::io::ErrorKind::NotFound => {
            serde_json::json!({"seq": 0, "hash": null})
        }
        Ok(Ok(Ok(Err(problem)))) => serde_json::json!({"error": problem}),
        Ok(Ok(Err(e))) => serde_json::json!({"error": e.to_string()}),
        Ok(Err(e)) => serde_json::json!({"error": e.message}),
        Err(_) => serde_json::json!({"error": "the log did not answer within a second"}),
    };
    let adopted = tokio::time::timeout(
        HEALTH_WAIT,
        with_ledger(&b, |l| {
            crate::app::adoption::in_force(l).map(|a| a.policy_hash.as_str().to_owned())
        }),
    )
    .await;
    let loaded = b.policy().hash.as_str().to_owned();
    let (adopted, matches) = match adopted {
        Ok(Ok(Some(h))) => {
            let same = h == loaded;
            (serde_json::Value::String(h), serde_json::Value::Bool(same))
        }
        // Nothing adopted yet: the loaded policy is in force.
        Ok(Ok(None)) => (serde_json::Value::Null, serde_json::Value::Bool(true)),
        _ => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let mut body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": b.started.elapsed().as_secs(),
        "policy_hash": loaded,
        "adopted_policy_hash": adopted,
        "policy_is_adopted": matches,
        "log": log,
    });
    if let Some(store) = b.app.log.store() {
        body["store"] = serde_json::Value::String(store);
    }
    axum::Json(body).into_response()
}

pub(super) async fn readyz(State(b): State<Arc<Bridge>>) -> Response {
    // Not ready while nothing could be decided: a log behind this bridge's
    // high-water mark, or one that ends with an unfinished record.
    let not_ready = |e: ApiError| err(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.message);
    // An fsync failed: this process can record nothing more until it
    // restarts (and the log is checked).
    if b.app.log.is_poisoned() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_poisoned",
            "an append's fsync failed: this bridge records nothing more; check the log (opsgate audit verify) and restart it",
        )
        .into_response();
    }
    // Team mode: not ready while the store cannot be reached, or went back
    // or forked since this bridge saw it (nothing could be recorded).
    if b.app.log.store().is_some() {
        let bridge = Arc::clone(&b);
        match blocking(move || bridge.app.log.refresh()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the store is not ready");
                let code = match e {
                    crate::audit::AuditError::Diverged(_) => "store_diverged",
                    _ => "store_unavailable",
                };
                return err(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string()).into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    match with_ledger(&b, |l| {
        crate::app::adoption::in_force(l).map(|a| a.policy_hash.clone())
    })
    .await
    {
        Err(e) if e.code == "log_truncated" => return not_ready(e).into_response(),
        // Every decision would be refused (`policy_not_adopted`).
        Ok(Some(adopted)) if adopted != b.policy().hash => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_not_adopted",
                format!(
                    "this bridge loaded policy {} from {}, but the audit log has adopted {}: nothing can be decided here",
                    b.policy().hash.as_str(),
                    b.policy().source,
                    adopted.as_str()
                ),
            )
            .into_response();
        }
        _ => {}
    }
    if let Ok(f) = std::fs::File::open(b.log_path())
        && let Ok(len) = crate::audit::read::committed_len(&f)
        && crate::audit::backward::read_tail(&f, len, 0).is_ok_and(|v| v.torn_at.is_some())
    {
        return not_ready(log_torn()).into_response();
    }
    match crate::audit::verify::read_head(b.log_path(), &b.app.sealer) {
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
pub(super) async fn fold_log(b: &Arc<Bridge>) -> Result<crate::core::state::Ledger, ApiError> {
    with_ledger(b, Clone::clone).await
}

/// One plan's state (cloning only it), off the async threads.
pub(super) async fn plan_state(b: &Arc<Bridge>, id: &str) -> Result<Option<PlanState>, ApiError> {
    let id = id.to_owned();
    with_ledger(b, move |l| l.plan(&id).cloned()).await
}

/// Runs `f` on the current ledger, off the async threads.
pub(super) async fn with_ledger<R: Send + 'static>(
    b: &Arc<Bridge>,
    f: impl FnOnce(&crate::core::state::Ledger) -> R + Send + 'static,
) -> Result<R, ApiError> {
    with_ledger_at(b, move |l, _| f(l)).await
}

/// Runs `f` on the current ledger and the length of the log it was folded
/// (and verified) from, off the async threads.
pub(super) async fn with_ledger_at<R: Send + 'static>(
    b: &Arc<Bridge>,
    f: impl FnOnce(&crate::core::state::Ledger, u64) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let b = Arc::clone(b);
    blocking(move || {
        let len = match std::fs::metadata(b.log_path()) {
            Ok(m) => m.len(),
            Err(_) => return Ok(f(&crate::core::state::Ledger::default(), 0)),
        };
        crate::app::ledger::with_ledger(&b.app.log, b.app.cache(), len, |l| Ok(f(l, len))).map_err(
            |e| {
                tracing::error!(error = %e, "cannot fold the audit log");
                match e {
                    crate::app::Error::Audit(crate::audit::AuditError::Truncated { .. }) => {
                        log_truncated()
                    }
                    _ => err(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "log_unavailable",
                        "the audit log cannot be used",
                    ),
                }
            },
        )
    })
    .await?
}

#[derive(Debug, Serialize)]
pub(super) struct PlanSummary {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) risk: String,
    pub(super) status: &'static str,
    pub(super) plan_hash: String,
    /// The submission a decision binds to (send it as `submission_seq`).
    pub(super) submission_seq: u64,
    pub(super) approvals: Approvals,
    pub(super) expires_at: Option<String>,
    /// A short text fit for a chat message.
    pub(super) summary: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Approvals {
    pub(super) have: Vec<String>,
    pub(super) needed: u32,
}

pub(super) fn summarize(b: &Bridge, p: &PlanState) -> PlanSummary {
    let view = crate::app::views::plan_status(p, b.policy(), b.log_path(), Utc::now());
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
        let review = crate::core::plan::ClassifiedPlan::from_plan(plan, &b.policy().rules);
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
    let expires_at = view.expires_at.map(|t| crate::core::event::format_ts(&t));
    PlanSummary {
        id: p.plan_id.clone(),
        title,
        risk: p.submission.risk.to_string(),
        status: view.status.as_str(),
        plan_hash: p.submission.plan_hash.to_string(),
        submission_seq: p.submission.seq,
        approvals: Approvals {
            have: view.approvers,
            needed: view.needed,
        },
        expires_at,
        summary,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    pub(super) status: Option<String>,
}

pub(super) async fn list_plans(
    State(b): State<Arc<Bridge>>,
    _: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", e.body_text()))?;
    let ledger = fold_log(&b).await?;
    let plans: Vec<PlanSummary> = ledger
        .plans()
        .map(|p| summarize(&b, p))
        .filter(|s| q.status.as_deref().is_none_or(|want| want == s.status))
        .collect();
    Ok(axum::Json(plans).into_response())
}

/// `GET /v1/audit`'s query: every given condition must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    plan: Option<String>,
    run: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    after_seq: Option<u64>,
}

/// The most records one page of `GET /v1/audit` holds.
const AUDIT_PAGE_MAX: usize = 1000;

/// `GET /v1/audit`: the records, as recorded (redacted when they were
/// written), oldest first, after `after_seq`, filtered, a page at a time:
/// `next_after_seq` names where the next page starts (`null`: no more). Only
/// the verified part of the log is read.
pub(super) async fn audit_records(
    State(b): State<Arc<Bridge>>,
    _: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", e.body_text()))?;
    let now = Utc::now();
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| crate::audit::export::parse_time(s, now))
            .transpose()
            .map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", format!("{name}: {e}")))
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_PAGE_MAX {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("limit: {limit} is not between 1 and {AUDIT_PAGE_MAX}"),
        ));
    }
    let filter = crate::audit::export::Filter {
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
        plan: q.plan,
        run: q.run,
        kind: q.kind,
        ..Default::default()
    };
    let after = q.after_seq.unwrap_or(0);
    let path = b.log_path().to_owned();
    // The length the ledger was verified to; nothing after it is served.
    let len = with_ledger_at(&b, |_, len| len).await?;
    let page = blocking(move || page_of(&path, len, after, &filter, limit)).await?;
    let page = page.map_err(log_unreadable)?;
    Ok(axum::Json(page).into_response())
}

/// One page of records of the log's first `len` bytes.
fn page_of(
    path: &std::path::Path,
    len: u64,
    after: u64,
    filter: &crate::audit::export::Filter,
    limit: usize,
) -> std::io::Result<serde_json::Value> {
    let mut records = Vec::new();
    let mut next = None;
    let mut head = 0;
    if len > 0 {
        let mut lines = crate::audit::read::LineReader::open_until(path, len)?;
        while let Some(line) = lines.next_line() {
            let line = line?;
            if !line.complete {
                break;
            }
            let view =
                crate::audit::read::RecordView::parse(line.bytes).map_err(std::io::Error::other)?;
            head = view.seq;
            if view.seq <= after || !filter.matches(&view) || next.is_some() {
                continue;
            }
            if records.len() == limit {
                // One more matches: there is a next page.
                next = records
                    .last()
                    .and_then(|r: &serde_json::Value| r["seq"].as_u64());
                continue;
            }
            records.push(serde_json::from_slice(line.bytes).map_err(std::io::Error::other)?);
        }
    }
    Ok(serde_json::json!({"records": records, "next_after_seq": next, "head_seq": head}))
}

pub(super) async fn plan_detail(
    State(b): State<Arc<Bridge>>,
    _: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
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
    let review = crate::core::plan::ClassifiedPlan::from_plan(plan, &b.policy().rules);
    let view = crate::app::plan_view::PlanView::new(&review, &b.policy().hash);
    let body = serde_json::json!({"plan": view, "state": summarize(&b, p)});
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge over a fresh log in `dir`.
    fn bridge(dir: &std::path::Path) -> Arc<Bridge> {
        let log = crate::audit::AuditLog::open(
            &dir.join("audit.jsonl"),
            crate::audit::Sealer::Sha256,
            Default::default(),
        )
        .expect("log");
        let policy = crate::core::policy::LoadedPolicy::embedded().expect("policy");
        let app = crate::app::App::long_lived(policy, log, crate::audit::Sealer::Sha256);
        Arc::new(Bridge::new(app).expect("bridge"))
    }

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_poisoned_log_handle_is_not_ready_and_shows_in_metrics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = bridge(dir.path());
        let ready = readyz(State(Arc::clone(&b))).await;
        assert_eq!(ready.status(), StatusCode::OK);
        assert!(
            body(metrics(State(Arc::clone(&b))).await)
                .await
                .contains("opsgate_audit_log_poisoned 0\n")
        );
        // As a failed fsync leaves it.
        b.app.log.poison();
        let ready = readyz(State(Arc::clone(&b))).await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(ready).await.contains("log_poisoned"));
        let text = body(metrics(State(Arc::clone(&b))).await).await;
        assert!(text.contains("opsgate_audit_log_poisoned 1\n"), "{text}");
        assert!(
            text.contains("opsgate_audit_append_seconds_count "),
            "{text}"
        );
    }
}
