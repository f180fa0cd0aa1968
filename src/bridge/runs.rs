//! The run routes: a run's progress, and a stop asked from chat.
//!
//! A stop is the same request `opsgate cancel` and the TUI's `s` make: the
//! first stops the run after its current step, a second (or `kill`) kills
//! the step. It is recorded (`run_cancelled`) with the person the sender
//! maps to and the client and sender that carried it, or refused and
//! recorded (`refused`, attempt `cancel`). Any mapped person may stop any
//! run: a stop only makes things safer, so the channel's ceiling (what
//! chat may approve) does not bound it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::auth::{Caller, check_signature};
use super::decide::{Reply, claim_request, person_of, rate_limit, reply};
use super::errors::{ApiError, app_error, blocking, echo, err, log_unreadable};
use super::read::with_ledger;
use super::state::Bridge;
use crate::audit::Channel;

/// How many lines of a step's output a progress view shows.
const OUTPUT_LINES: usize = 10;

/// `GET /v1/runs/{run}`: the run's progress from the verified log: each
/// step with its status and duration and the last lines of its output
/// (as recorded, redacted), whether a stop was asked, and whether it is
/// still running.
pub(super) async fn run_detail(
    State(b): State<Arc<Bridge>>,
    _: Caller,
    Path(run): Path<String>,
) -> Result<Response, ApiError> {
    let id = run.clone();
    let found = with_ledger(&b, move |l| {
        l.run(&id).map(|(p, r)| {
            let total = crate::core::plan::Plan::from_json(p.submission.plan.clone())
                .map_or(0, |plan| plan.steps.len());
            (p.plan_id.clone(), r.clone(), total)
        })
    })
    .await?;
    let (plan_id, state, total) = found.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run `{}`", echo(&run)),
        )
    })?;
    let path = b.log_path().to_owned();
    let id = run.clone();
    let (outputs, live) = blocking(move || {
        let live = crate::audit::ledger::run_is_live(&path, &id);
        (step_outputs(&path, &id), live)
    })
    .await?;
    let outputs = outputs.map_err(log_unreadable)?;
    let now = Utc::now();
    let status = match state.finished {
        Some(s) => s.as_str().to_owned(),
        None if live => "running".to_owned(),
        None => "interrupted".to_owned(),
    };
    let steps: Vec<serde_json::Value> = state
        .steps
        .iter()
        .map(|s| {
            let status = match s.finished {
                Some(st) => st.as_str().to_owned(),
                None if live && state.finished.is_none() => "running".to_owned(),
                None => "interrupted".to_owned(),
            };
            let elapsed = s
                .duration_seconds
                .unwrap_or_else(|| (now - s.started).num_milliseconds().max(0) as f64 / 1000.0);
            serde_json::json!({
                "step": s.step,
                "name": crate::core::event::printable(&s.name),
                "status": status,
                "started_at": crate::core::event::format_ts(&s.started),
                "elapsed_seconds": elapsed,
                "output_tail": outputs.get(&s.step).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let elapsed = state
        .duration_seconds
        .unwrap_or_else(|| (now - state.started).num_milliseconds().max(0) as f64 / 1000.0);
    let body = serde_json::json!({
        "run_id": state.run_id,
        "plan_id": plan_id,
        "status": status,
        "dry_run": state.dry_run,
        "user": state.user,
        "started_at": crate::core::event::format_ts(&state.started),
        "elapsed_seconds": elapsed,
        "steps_total": total,
        "steps": steps,
        "stop_requested": state.stop.map(|kill| if kill { "kill" } else { "after_step" }),
        "rollback": state.rollback.as_ref().map(|r| serde_json::json!({
            "status": r.finished.map_or("running", |s| s.as_str()),
            "steps": r.steps.iter().map(|(name, st)| serde_json::json!({"name": name, "status": st.as_str()})).collect::<Vec<_>>(),
        })),
    });
    Ok(axum::Json(body).into_response())
}

/// The last lines of each finished step's output in run `run`, by step.
fn step_outputs(
    path: &std::path::Path,
    run: &str,
) -> std::io::Result<std::collections::BTreeMap<u32, Vec<String>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut lines = match crate::audit::read::LineReader::open(path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    while let Some(line) = lines.next_line() {
        let line = line?;
        if !line.complete {
            break;
        }
        let record: crate::audit::Record =
            serde_json::from_slice(line.bytes).map_err(std::io::Error::other)?;
        if let crate::audit::Event::StepFinished {
            run_id,
            step,
            output,
            ..
        } = record.event
            && run_id == run
        {
            let all: Vec<&str> = output.lines().collect();
            let tail = all[all.len().saturating_sub(OUTPUT_LINES)..]
                .iter()
                .map(|l| crate::core::event::printable(l).into_owned())
                .collect();
            out.insert(step, tail);
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StopRequest {
    sender_id: String,
    /// Kill the current step at once, rather than stop after it.
    #[serde(default)]
    kill: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/runs/{run}/stop`.
pub(super) async fn stop(
    State(b): State<Arc<Bridge>>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(run): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let mut claimed = Vec::new();
    let result = match caller {
        Ok(Caller(client)) => stop_request(&b, &client, &headers, run, body, &mut claimed).await,
        Err(e) => Err(e),
    };
    reply(&b, claimed, result)
}

async fn stop_request(
    b: &Arc<Bridge>,
    client: &super::state::Client,
    headers: &HeaderMap,
    run: String,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Reply, ApiError> {
    let body = body.map_err(|e| err(e.status(), "malformed", e.body_text()))?;
    check_signature(client, headers, &body)?;
    let req: StopRequest = serde_json::from_slice(&body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the body is not a stop request: {e}"),
        )
    })?;
    let asked = Asked {
        sender: &req.sender_id,
        kill: req.kill,
        reason: req.reason.as_deref(),
    };
    let (reply, _) = ask_stop(b, client, headers, &body, run, asked, claimed).await?;
    Ok(reply)
}

/// A stop as a sender asked for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asked<'a> {
    pub(super) sender: &'a str,
    pub(super) kill: bool,
    pub(super) reason: Option<&'a str>,
}

/// Asks run `run` to stop for a sender of `client` (authenticated by the
/// caller: a bearer token and signature, or Slack's signature): maps the
/// sender, limits the rate, claims the request's replay keys, records the
/// stop. The reply, and the person who asked.
pub(super) async fn ask_stop(
    b: &Arc<Bridge>,
    client: &super::state::Client,
    headers: &HeaderMap,
    body: &[u8],
    run: String,
    req: Asked<'_>,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<(Reply, String), ApiError> {
    let person = person_of(client, req.sender)?;
    rate_limit(b, client, req.sender)?;
    // A retried first stop must not become a kill: the same request again
    // gets its first answer.
    if let Some(again) = claim_request(b, &client.name, headers, body, claimed)? {
        return Ok((Reply::Again(again), person));
    }
    let mut why = format!(
        "chat: client {}, sender {}",
        client.name,
        crate::core::event::printable(req.sender)
    );
    if let Some(r) = req.reason.filter(|r| !r.trim().is_empty()) {
        why.push_str(": ");
        why.push_str(r.trim());
    }
    let b2 = Arc::clone(b);
    let (run2, who, kill) = (run.clone(), person.clone(), req.kill);
    let killing = blocking(move || {
        crate::app::control::cancel_from(
            &b2.app.log,
            &b2.app.policy,
            &run2,
            &who,
            Channel::Chat,
            kill,
            Some(why),
        )
    })
    .await?
    .map_err(|e| match e {
        crate::app::Error::NotFound(_) => err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run `{}`", echo(&run)),
        ),
        crate::app::Error::Refused(r)
            if matches!(
                r.reason,
                crate::app::Reason::Finished | crate::app::Reason::NotRunning
            ) =>
        {
            err(StatusCode::CONFLICT, r.reason.code(), r.message)
        }
        other => app_error(&run, other),
    })?;
    let json = serde_json::json!({
        "run_id": run,
        "stop": if killing { "kill" } else { "after_step" },
        "by": person,
    })
    .to_string();
    Ok((Reply::Done(json), person))
}
