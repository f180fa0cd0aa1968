//! The bridge's errors: JSON `{"error": code, "message": …}`, without
//! internals, and how the application's errors map to them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: status, code and message.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
}

pub(super) fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
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

/// Text from a request echoed in an error: at most 64 characters, control
/// and bidi characters escaped, so an answer never grows with the request.
pub(super) fn echo(text: &str) -> String {
    const MAX: usize = 64;
    let cut: String = text.chars().take(MAX).collect();
    let more = if text.chars().nth(MAX).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", crate::core::event::printable(&cut))
}

/// What the application's error `e` answers, for a request about plan
/// `id`. A refusal by a rule (already recorded as `refused`) keeps its
/// reason's code, or the coarser one a client needs to tell apart.
pub(super) fn app_error(id: &str, e: crate::app::Error) -> ApiError {
    use crate::app::{Error, Reason};
    match e {
        Error::Refused(r) => {
            let (status, code) = match r.reason {
                Reason::SelfApproval | Reason::ChannelCeiling => {
                    (StatusCode::FORBIDDEN, r.reason.code())
                }
                Reason::NotListed
                | Reason::AboveMaxRisk
                | Reason::ChannelNotAllowed
                | Reason::RefusedByPolicy
                | Reason::MetadataRule
                | Reason::UntrustedName
                | Reason::Unsigned
                | Reason::BadSignature => (StatusCode::FORBIDDEN, "not_permitted"),
                Reason::StalePlanHash | Reason::StaleSubmission => {
                    (StatusCode::CONFLICT, r.reason.code())
                }
                Reason::Closed | Reason::PolicyChanged => (StatusCode::GONE, "closed"),
                // The bridge's host runs under rules the log never adopted:
                // not the caller's fault, and not fixed by retrying.
                Reason::PolicyNotAdopted => (StatusCode::SERVICE_UNAVAILABLE, r.reason.code()),
                _ => (StatusCode::CONFLICT, "refused"),
            };
            err(status, code, r.message)
        }
        Error::NotFound(_) => err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plan `{}`", echo(id)),
        ),
        Error::Invalid(m) => err(StatusCode::BAD_REQUEST, "malformed", m),
        Error::Audit(crate::audit::AuditError::TornTail { .. }) => log_torn(),
        Error::Audit(crate::audit::AuditError::Truncated { .. }) => log_truncated(),
        Error::Audit(crate::audit::AuditError::Diverged(_)) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_diverged",
            "the store went back or forked since this bridge saw it: nothing is recorded until an operator accepts it (`opsgate store status --accept`)",
        ),
        _ => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_unavailable",
            "the decision could not be recorded",
        ),
    }
}

/// The log ends with an unfinished record: only an operator mends it.
pub(super) fn log_torn() -> ApiError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_needs_repair",
        "the audit log ends with an unfinished record: nothing is recorded until an operator runs `opsgate audit repair`",
    )
}

/// The log is behind this bridge's high-water mark.
/// Runs `f` off the async threads (it takes the log's lock and fsyncs).
pub(super) async fn blocking<T: Send + 'static>(
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

/// The log could not be read (an I/O error, logged here): 503
/// `log_unavailable`, without the details.
pub(super) fn log_unreadable(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "cannot read the audit log");
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_unavailable",
        "the audit log cannot be used",
    )
}

pub(super) fn log_truncated() -> ApiError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_truncated",
        "the audit log lost records this bridge saw: nothing is recorded until an operator checks it and runs `opsgate audit verify --acknowledge-truncation`",
    )
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
