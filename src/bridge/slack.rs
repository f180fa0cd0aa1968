//! Slack's interactivity endpoint: a button press, verified with Slack's
//! signing scheme and decided like any decision.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::auth::{hmac_matches, signed_parts};
use super::decide::{Answer, DecisionRequest, Reply, Signed, answer, decide_request, reply};
use super::errors::{ApiError, err};
use super::runs::{Asked, ask_stop};
use super::state::{Bridge, Client};
use crate::app::decide::Metadata;

/// Slack's request signing (v0): `X-Slack-Signature: v0=<hex HMAC-SHA256(
/// secret, "v0:{timestamp}:{body}")>` with `X-Slack-Request-Timestamp`,
/// refused beyond 5 minutes. The client is the one whose secret verifies.
/// The client whose secret signed a Slack request, and when it was signed.
pub(super) fn slack_client<'b>(
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
pub(super) struct SlackForm {
    pub(super) payload: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SlackPayload {
    pub(super) user: SlackUser,
    pub(super) actions: Vec<SlackAction>,
    #[serde(default)]
    pub(super) channel: Option<SlackChannel>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SlackUser {
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SlackChannel {
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SlackAction {
    pub(super) action_id: String,
    pub(super) value: String,
}

/// What a Slack button carries: `{"plan_id": …, "plan_hash": …,
/// "submission_seq": …}` (the seq binds the press to the submission it
/// was shown for).
#[derive(Debug, Deserialize)]
pub(super) struct SlackButton {
    pub(super) plan_id: String,
    pub(super) plan_hash: String,
    #[serde(default)]
    pub(super) submission_seq: Option<u64>,
}

/// Slack's interactivity payload (a button press): verified with Slack's
/// signing scheme, mapped through the client's senders, decided like any
/// decision, and answered with a message update.
pub(super) async fn slack_interactive(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let mut claimed = Vec::new();
    if let Ok(bytes) = &body
        && let Some(run) = stop_press(bytes)
    {
        let result = slack_stop(&b, &headers, bytes, run, &mut claimed).await;
        return reply(&b, claimed, result);
    }
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

/// The run of a Stop press (`action_id: stop`, value `{"run_id": …}`), if
/// the body is one. Nothing acts on it before its signature is checked.
fn stop_press(body: &[u8]) -> Option<String> {
    let form: SlackForm = serde_urlencoded::from_bytes(body).ok()?;
    let payload: SlackPayload = serde_json::from_str(&form.payload).ok()?;
    let action = payload.actions.first()?;
    if action.action_id != "stop" {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&action.value).ok()?;
    value["run_id"].as_str().map(str::to_owned)
}

/// A Stop press: verified with Slack's scheme, then the same stop as
/// `POST /v1/runs/{run}/stop`, answered with a line for the channel.
async fn slack_stop(
    b: &Arc<Bridge>,
    headers: &HeaderMap,
    body: &[u8],
    run: String,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Reply, ApiError> {
    let (client, _) = slack_client(b, headers, body)?;
    let malformed = |m: String| err(StatusCode::BAD_REQUEST, "malformed", m);
    let form: SlackForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| malformed(format!("not a Slack form: {e}")))?;
    let payload: SlackPayload = serde_json::from_str(&form.payload)
        .map_err(|e| malformed(format!("not a Slack interaction: {e}")))?;
    let asked = Asked {
        sender: &payload.user.id,
        kill: false,
        reason: Some("Stop pressed in Slack"),
    };
    let (reply, person) = ask_stop(b, client, headers, body, run.clone(), asked, claimed).await?;
    Ok(match reply {
        Reply::Done(json) => {
            let kills = json.contains("\"stop\":\"kill\"");
            let text = format!(
                "Run `{run}`: {} asked by {person}",
                if kills {
                    "kill"
                } else {
                    "stop after its current step"
                }
            );
            Reply::Done(serde_json::json!({"replace_original": false, "text": text}).to_string())
        }
        again => again,
    })
}

pub(super) async fn slack_decide(
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
