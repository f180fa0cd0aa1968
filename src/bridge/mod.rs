//! The chat bridge's HTTP API (axum): chat bots forward a person's yes/no.
//!
//! A client authenticates with a bearer token (the policy stores only its
//! SHA-256, compared in constant time) and, when configured, signs each
//! request. It speaks only for the senders mapped to it. Every decision goes
//! through the same approval rules as the CLI and TUI (channel `chat`, with
//! its ceiling), and is durable in the audit log before the response.
//! Errors are JSON, `{"error": code, "message": …}`, without internals.

mod auth;
mod decide;
mod errors;
mod events;
pub mod guard;
pub mod notify;
mod read;
mod runs;
mod serve;
mod slack;
mod state;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

pub use errors::ApiError;
use errors::err;
pub use serve::{run, serve};
pub use state::Bridge;

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

/// The routes, over shared state.
pub fn router(bridge: Arc<Bridge>) -> Router {
    let max_body = usize::try_from(bridge.policy().policy.bridge.max_body).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .route("/metrics", get(read::metrics))
        .route("/v1/plans", get(read::list_plans))
        .route("/v1/audit", get(read::audit_records))
        .route("/v1/events", get(events::events))
        .route("/v1/runs/{run}", get(runs::run_detail))
        .route("/v1/runs/{run}/stop", post(runs::stop))
        .route("/v1/plans/{id}", get(read::plan_detail))
        .route("/v1/plans/{id}/decision", post(decide::decision))
        .route("/v1/slack/interactive", post(slack::slack_interactive))
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
