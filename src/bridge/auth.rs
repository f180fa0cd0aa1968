//! Who is asking: a bearer token (its SHA-256 compared in constant time)
//! and, for a client that signs, an HMAC over the timestamp and body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::errors::{ApiError, err};
use super::state::{Bridge, Client};
use super::{MAX_FUTURE_SKEW_SECONDS, MAX_SKEW_SECONDS};

/// Equal without revealing where two digests differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The authenticated client of a request, as an axum extractor: a
/// handler that takes a `Caller` runs only for a known bearer token.
#[derive(Debug, Clone)]
pub(super) struct Caller(pub(super) Client);

impl FromRequestParts<Arc<Bridge>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        bridge: &Arc<Bridge>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(bridge, &parts.headers).map(|c| Caller(c.clone()))
    }
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
pub(super) fn check_signature(
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
pub(super) fn signed_parts<'h>(
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
pub(super) fn hmac_matches(secret: &[u8], parts: &[&[u8]], given: &[u8]) -> bool {
    hmac::Hmac::<Sha256>::new_from_slice(secret).is_ok_and(|mut mac| {
        parts.iter().for_each(|p| mac.update(p));
        mac.verify_slice(given).is_ok()
    })
}
