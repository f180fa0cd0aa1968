//! The decision route: a chat bot forwards a person's yes or no. The
//! bridge authenticates the request, maps the sender, limits the rate and
//! refuses replays; every approval rule is the application's
//! (`app::decide`), checked under the log's lock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::{Caller, check_signature};
use super::errors::{ApiError, app_error, blocking, echo, err, json_response};
use super::read::{Approvals, plan_state, summarize};
use super::state::{Bridge, Client};
use super::{MAX_SKEW_SECONDS, RESERVED_METADATA, guard};
use crate::app::decide::{Binding, ChatFacts, Metadata, Request, metadata_key};
use crate::audit::Channel;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionRequest {
    pub(super) decision: String,
    pub(super) plan_hash: String,
    /// The submission the decision is for (`submission_seq` of the plan
    /// as listed): a decision for an earlier submission is refused.
    #[serde(default)]
    pub(super) submission_seq: Option<u64>,
    pub(super) sender_id: String,
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) metadata: Metadata,
}

#[derive(Debug, Serialize)]
pub(super) struct DecisionResponse {
    pub(super) plan_id: String,
    pub(super) decision: String,
    pub(super) approver: String,
    pub(super) seq: u64,
    pub(super) status: &'static str,
    pub(super) approvals: Approvals,
}

/// How a decision request ended, when it did not fail.
pub(super) enum Answer {
    Done(DecisionResponse, bool),
    /// The same request again (same key, same body): the first answer.
    Again(guard::Remembered),
}

pub(super) async fn decision(
    State(b): State<Arc<Bridge>>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let mut claimed = Vec::new();
    let result = match caller {
        Ok(Caller(client)) => decide(&b, &client, &headers, id, body, &mut claimed).await,
        Err(e) => Err(e),
    };
    answer(&b, started, result, claimed, |resp, _| {
        serde_json::to_string(resp).unwrap_or_default()
    })
}

/// Turns a decision's outcome into the response, shown by `render` when
/// recorded: counts it in the metrics, and remembers the answer for its
/// request key (or frees the key when nothing was recorded), so a retry
/// gets the same answer.
pub(super) fn answer(
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
            reply(b, claimed, Ok(Reply::Done(render(&resp, yes))))
        }
        Ok(Answer::Again(r)) => reply(b, claimed, Ok(Reply::Again(r))),
        Err(e) => reply(b, claimed, Err(e)),
    }
}

/// A recorded request's answer, or the first answer to the same request.
pub(super) enum Reply {
    Done(String),
    Again(guard::Remembered),
}

/// The response to a request that claimed `claimed` replay keys: a new
/// answer is remembered under them, so a retry gets it again; a refusal
/// is counted and frees them.
pub(super) fn reply(
    b: &Bridge,
    claimed: Vec<(String, [u8; 32])>,
    result: Result<Reply, ApiError>,
) -> Response {
    match result {
        Ok(Reply::Done(json)) => {
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
        Ok(Reply::Again(r)) => json_response(
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

pub(super) async fn decide(
    b: &Arc<Bridge>,
    client: &Client,
    headers: &HeaderMap,
    id: String,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Answer, ApiError> {
    let b = Arc::clone(b);
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
pub(super) struct Signed<'c> {
    pub(super) client: &'c Client,
    pub(super) signed_at: Option<i64>,
}

/// A parsed decision from `client`: every check, then the recording.
pub(super) async fn decide_request(
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
    let approver = person_of(client, &req.sender_id)?;
    rate_limit(&b, client, &req.sender_id)?;
    if let Some(again) = claim_request(&b, &client.name, headers, body, claimed)? {
        return Ok(Answer::Again(again));
    }
    // Every rule (the metadata rules of the plan's level included) is
    // checked under the log's lock when the decision is recorded, and a
    // refusal is recorded there too (`app::decide`).
    let signed_at = signed.signed_at.map(|at| (at, MAX_SKEW_SECONDS));
    let mut metadata = req.metadata;
    metadata.insert(
        "client".into(),
        serde_json::Value::String(client.name.clone()),
    );
    metadata.insert(
        "sender_id".into(),
        serde_json::Value::String(req.sender_id.clone()),
    );
    let (b2, id2, who, hash, reason, client_name, sender) = (
        Arc::clone(&b),
        id.clone(),
        approver.clone(),
        req.plan_hash.clone(),
        req.reason.clone(),
        client.name.clone(),
        req.sender_id.clone(),
    );
    let submission_seq = req.submission_seq;
    let recorded = blocking(move || {
        // The bridge attests who the person is: the client that carried
        // the decision and the chat platform's sender, mapped through the
        // client's `senders`.
        let actor = crate::core::identity::Actor {
            name: who,
            proof: crate::core::identity::Proof::Chat {
                client: client_name.clone(),
                sender: sender.clone(),
            },
            key: None,
        };
        let decision = Request {
            binding: Binding {
                hash: Some(&hash),
                whole_hash: true,
                submission_seq,
                signed_at,
            },
            reason,
            metadata,
            chat: Some(ChatFacts {
                client: &client_name,
                sender: &sender,
            }),
            ..Request::new(&id2, &actor, Channel::Chat)
        };
        if yes {
            b2.app.grant(&decision)
        } else {
            b2.app.deny(&decision)
        }
    })
    .await?;
    let appended = recorded.map_err(|e| {
        tracing::warn!(plan = %id, error = %e, "decision refused while recording");
        app_error(&id, e)
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

/// Claims a request's keys in the replay cache: its signature, always (a
/// captured signed request or Slack press cannot come back under a fresh
/// `Idempotency-Key`), and its `Idempotency-Key` too when it has one.
/// `Some`: the same request again, with its first answer. A request seen
/// with another body, or still being answered, is 409 `replayed`.
pub(super) fn claim_request(
    b: &Bridge,
    client: &str,
    headers: &HeaderMap,
    body: &[u8],
    claimed: &mut Vec<(String, [u8; 32])>,
) -> Result<Option<guard::Remembered>, ApiError> {
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
        let key = format!("{client}:{header}:{}", value.trim());
        let seen = b.replay.check(&key, digest, now);
        if !matches!(seen, guard::Seen::New) {
            for (k, _) in claimed.drain(..) {
                b.replay.forget(&k);
            }
        }
        match seen {
            guard::Seen::New => claimed.push((key, digest)),
            guard::Seen::Repeat(r) => return Ok(Some(r)),
            guard::Seen::Replay => {
                return Err(err(
                    StatusCode::CONFLICT,
                    "replayed",
                    "this request was seen before with another body, or is still being answered",
                ));
            }
        }
    }
    Ok(None)
}

/// The person a client's sender is, through the client's `senders`.
pub(super) fn person_of(client: &Client, sender: &str) -> Result<String, ApiError> {
    client.senders.get(sender).cloned().ok_or_else(|| {
        err(
            StatusCode::FORBIDDEN,
            "unknown_sender",
            format!(
                "sender `{}` is not mapped for client `{}`",
                echo(sender),
                client.name
            ),
        )
    })
}

/// 429 `rate_limited` when the client or the sender is over its rate.
pub(super) fn rate_limit(b: &Bridge, client: &Client, sender: &str) -> Result<(), ApiError> {
    b.limiter
        .check(&client.name, sender, std::time::Instant::now())
        .map_err(|limited| {
            let what = match limited {
                guard::Limited::Client => "this client",
                guard::Limited::Sender => "this sender",
                guard::Limited::TooManySenders => "new senders (the sender table is full)",
            };
            err(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many decisions from {what}; try again later"),
            )
        })
}
