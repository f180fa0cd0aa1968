//! Webhooks (`bridge.webhooks`): the bridge tells others what happened.
//!
//! Each webhook has a task of its own that reads the verified log after
//! its position, turns each record into the events the webhook wants
//! (`approval_needed` and `run_failed` are derived), and POSTs them one at
//! a time, in order. A delivery that fails is retried with exponential
//! backoff and jitter; after `retry.attempts` it goes to the webhook's
//! dead letters and the next one goes on, so one bad event never blocks
//! the rest, and one webhook never waits for another. The position is a
//! file in the state directory, written after each batch of records (up
//! to 64) and before a shutdown: a restart resumes at the first record
//! not done (at least once: a receiver dedupes on `X-Opsgate-Delivery`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{KeyInit, Mac};

use super::events::{Head, head_of, read_range, start_offset};
use super::read::with_ledger_at;
use super::state::Bridge;
use crate::app::webhooks::{DeadLetter, Files, Position};
use crate::core::policy::{WEBHOOK_EVENTS as EVENTS, Webhook, WebhookFormat};

/// How often a webhook with nothing to send looks at the log again.
const POLL: Duration = Duration::from_millis(200);

/// The events record `view` is for a webhook: its type when a webhook
/// may ask for it, and what is derived from it.
fn events_of(view: &Head, status: Option<&str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = EVENTS.iter().copied().filter(|e| *e == view.kind).collect();
    match view.kind.as_str() {
        "plan_submitted" => out.push("approval_needed"),
        "run_finished"
            if status.is_some_and(|s| {
                matches!(s, "failed" | "timed_out" | "killed" | "interrupted")
            }) =>
        {
            out.push("run_failed");
        }
        _ => {}
    }
    out
}

/// The body of one delivery, or `None` when there is nothing to say
/// (`approval_needed` for a plan that needs no approval).
fn payload(
    b: &Bridge,
    ledger: &crate::core::state::Ledger,
    hook: &Webhook,
    event: &str,
    record: &serde_json::Value,
) -> Option<serde_json::Value> {
    let seq = record["seq"].as_u64().unwrap_or(0);
    let plan_id = record["plan_id"].as_str();
    let plan = plan_id.and_then(|id| ledger.plan(id));
    let mut body = serde_json::json!({
        "webhook": hook.name,
        "event": event,
        "delivery": delivery_id(hook, seq, event),
        "seq": seq,
        "record": record,
    });
    let mut summary = match event {
        "run_failed" | "run_finished" => format!(
            "run {} of plan {} ended: {}{}",
            record["run_id"].as_str().unwrap_or("?"),
            plan_id.unwrap_or("?"),
            record["status"].as_str().unwrap_or("?"),
            if record["dry_run"] == true {
                " (dry run)"
            } else {
                ""
            }
        ),
        "rollback_finished" => format!(
            "rollback of run {} ended: {}",
            record["run_id"].as_str().unwrap_or("?"),
            record["status"].as_str().unwrap_or("?")
        ),
        "run_started" => format!(
            "run {} of plan {} started by {}",
            record["run_id"].as_str().unwrap_or("?"),
            plan_id.unwrap_or("?"),
            record["user"].as_str().unwrap_or("?")
        ),
        other => format!("{other}: record {seq}"),
    };
    if event == "approval_needed" {
        let p = plan?;
        // Only for the submission this record made, while it waits.
        if p.submission.seq != seq {
            return None;
        }
        let view = super::read::summarize(b, p);
        if view.status != "pending" {
            return None;
        }
        let risk = p.submission.risk;
        let policy = &b.policy().policy;
        let excluded: Vec<&str> = if policy.approvals.separation_of_duties.applies(risk) {
            vec![p.submission.submitted_by.as_str()]
        } else {
            Vec::new()
        };
        let eligible: Option<Vec<&str>> = policy.approvers.as_ref().map(|list| {
            list.iter()
                .filter(|a| a.max_risk >= risk && !excluded.contains(&a.name.as_str()))
                .map(|a| a.name.as_str())
                .collect()
        });
        summary = format!(
            "plan {} [{}] needs {} more approval(s){}",
            p.plan_id,
            risk,
            view.approvals
                .needed
                .saturating_sub(u32::try_from(view.approvals.have.len()).unwrap_or(u32::MAX)),
            match &eligible {
                Some(names) => format!(" from {}", names.join(", ")),
                None => String::new(),
            }
        );
        body["approval"] = serde_json::json!({
            "needed": view.approvals.needed,
            "have": view.approvals.have,
            "eligible": eligible,
            "excluded": excluded,
            "expires_at": view.expires_at,
            "ttl_seconds": policy.approvals.ttl.get().as_secs(),
        });
        body["plan"] = serde_json::to_value(&view).unwrap_or_default();
        summary.push('\n');
        summary.push_str(&view.summary);
    }
    body["summary"] = serde_json::Value::String(summary);
    Some(body)
}

fn delivery_id(hook: &Webhook, seq: u64, event: &str) -> String {
    format!("{}:{seq}:{event}", hook.name)
}

/// `t=UNIX,v1=HEX`: HMAC-SHA256 over `t.body`, as Stripe signs.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HTTP(S) client every webhook shares: rustls with ring and the
/// system's roots, HTTP/1.
pub(super) type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<axum::body::Bytes>,
>;

pub(super) fn client() -> Result<Client, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| format!("webhooks: cannot load the system's TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// POSTs one delivery; `Err` says why it did not land (a status outside
/// 2xx, a refused connection, a timeout).
async fn send(
    client: &Client,
    hook: &Webhook,
    secret: Option<&[u8]>,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Result<(), String> {
    let mut req = axum::http::Request::post(hook.url.as_str())
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header(
            axum::http::header::USER_AGENT,
            concat!("opsgate/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-opsgate-event", event)
        .header("x-opsgate-delivery", delivery);
    if let Some(secret) = secret {
        req = req.header(
            "x-opsgate-signature",
            signature(secret, Utc::now().timestamp(), body),
        );
    }
    let req = req
        .body(http_body_util::Full::new(
            axum::body::Bytes::copy_from_slice(body),
        ))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(hook.retry.timeout.get(), client.request(req))
        .await
        .map_err(|_| format!("no answer within {}", hook.retry.timeout))?
        .map_err(|e| format!("{e}"))?;
    let status = resp.status();
    // The body is not read: only the status counts.
    drop(resp);
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// The wait before attempt `n + 1`: `initial · 2^(n-1)`, at most `max`,
/// times a jitter between ½ and 1.
fn backoff(hook: &Webhook, n: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = hook
        .retry
        .initial
        .get()
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(hook.retry.max.get());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(n);
    let jitter = 0.5 + (h.finish() % 1000) as f64 / 2000.0;
    base.mul_f64(jitter)
}

/// Starts a task per configured webhook; each ends once the bridge shuts
/// down, after writing where it stands.
pub(super) fn start(b: &Arc<Bridge>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..b.policy().policy.bridge.webhooks.len())
        .map(|i| tokio::spawn(deliver_all(Arc::clone(b), i)))
        .collect()
}

/// Webhook `i`'s loop, for as long as the bridge serves.
async fn deliver_all(b: Arc<Bridge>, i: usize) {
    let hook = &b.policy().policy.bridge.webhooks[i];
    let secret = b.webhook_secrets.get(i).cloned().flatten();
    let files = Files::of(&b.state, b.log_path(), &hook.name);
    match files.dead_letters() {
        Ok(d) => b.metrics.webhook_dead_letters(&hook.name, d.len() as u64),
        Err(e) => {
            tracing::warn!(webhook = %hook.name, error = %e, "cannot read the webhook's dead letters")
        }
    }
    let mut closing = b.closing.subscribe();
    let mut offset: Option<u64> = None;
    let mut pos: Option<u64> = match files.read_position() {
        Ok(p) => p.map(|p| p.after_seq),
        Err(e) => {
            tracing::error!(webhook = %hook.name, error = %e, "cannot read the webhook's position: it delivers nothing");
            return;
        }
    };
    loop {
        if *closing.borrow() {
            return;
        }
        let path = b.log_path().to_owned();
        let found = match with_ledger_at(&b, |_, len| len).await {
            Ok(len) => tokio::task::spawn_blocking(move || head_of(&path, len))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r),
            Err(e) => Err(std::io::Error::other(e.message)),
        };
        let (head, complete) = match found {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "the webhook waits for the log");
                wait(&mut closing, POLL).await;
                continue;
            }
        };
        let at = match pos {
            Some(p) if p <= head => p,
            Some(p) => {
                tracing::warn!(webhook = %hook.name, position = p, head, "the webhook's position is beyond the log's head (another log?): it goes on from the head");
                offset = None;
                head
            }
            // First start: from the head on, not the whole history.
            None => head,
        };
        if pos != Some(at) {
            if let Err(e) = files.write_position(&Position { after_seq: at }) {
                tracing::error!(webhook = %hook.name, error = %e, "cannot write the webhook's position");
                wait(&mut closing, POLL).await;
                continue;
            }
            pos = Some(at);
        }
        if at >= head {
            wait(&mut closing, POLL).await;
            continue;
        }
        let path = b.log_path().to_owned();
        let from = offset;
        let read = tokio::task::spawn_blocking(move || {
            let from = match from {
                Some(o) => o,
                None => start_offset(&path, complete, head, at)?,
            };
            read_range(&path, from, complete, 64)
        })
        .await;
        let records = match read {
            Ok(Ok((records, _))) => records,
            Ok(Err(e)) => {
                tracing::warn!(webhook = %hook.name, error = %e, "the webhook cannot read the log");
                wait(&mut closing, POLL).await;
                continue;
            }
            Err(_) => return,
        };
        // The position is written once per batch (and before stopping):
        // after a crash, at most a batch is delivered again, and a
        // receiver dedupes on `X-Opsgate-Delivery`.
        let mut done = None;
        let mut later = false;
        for r in records {
            if r.view.seq <= at {
                offset = Some(r.end);
                continue;
            }
            match deliver_record(&b, hook, secret.as_deref(), &files, &r, &mut closing).await {
                Outcome::Done => {}
                // Shutting down mid-retry: the position stays before this
                // record, and the next start delivers it again.
                Outcome::Closing => {
                    save(&files, hook, done);
                    return;
                }
                Outcome::Later => {
                    later = true;
                    break;
                }
            }
            done = Some(r.view.seq);
            pos = Some(r.view.seq);
            offset = Some(r.end);
            b.metrics.webhook_position(&hook.name, r.view.seq);
        }
        if !save(&files, hook, done) {
            return;
        }
        if later {
            wait(&mut closing, POLL).await;
        }
    }
}

/// Writes the position `done` (when there is one); false when it cannot
/// be written (the webhook then stops, rather than deliver twice without
/// end).
fn save(files: &Files, hook: &Webhook, done: Option<u64>) -> bool {
    let Some(seq) = done else {
        return true;
    };
    match files.write_position(&Position { after_seq: seq }) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(webhook = %hook.name, error = %e, "cannot write the webhook's position: it stops");
            false
        }
    }
}

/// Sleeps `d`, or less when the bridge shuts down.
async fn wait(closing: &mut tokio::sync::watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        _ = closing.changed() => {}
    }
}

/// What became of a record's deliveries.
enum Outcome {
    Done,
    /// The bridge shuts down in the middle: the record is not done.
    Closing,
    /// The log could not be read: the record is not done, try again.
    Later,
}

/// Delivers what record `r` means to `hook`, each event with its retries.
async fn deliver_record(
    b: &Arc<Bridge>,
    hook: &Webhook,
    secret: Option<&[u8]>,
    files: &Files,
    r: &super::events::Record,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) -> Outcome {
    let record: serde_json::Value = match serde_json::from_slice(&r.line) {
        Ok(v) => v,
        Err(_) => return Outcome::Done,
    };
    let events: Vec<&str> = events_of(&r.view, record["status"].as_str())
        .into_iter()
        .filter(|e| hook.events.iter().any(|w| w == e))
        .collect();
    if events.is_empty() {
        return Outcome::Done;
    }
    let (b2, hook2, record2, events2) = (
        Arc::clone(b),
        hook.clone(),
        record.clone(),
        events.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>(),
    );
    let bodies = match with_ledger_at(b, move |l, _| {
        events2
            .iter()
            .filter_map(|e| payload(&b2, l, &hook2, e, &record2).map(|p| (e.clone(), p)))
            .collect::<Vec<_>>()
    })
    .await
    {
        Ok(bodies) => bodies,
        // The log cannot be folded now: this record again, later.
        Err(e) => {
            tracing::warn!(webhook = %hook.name, error = %e.message, "the webhook waits for the log");
            return Outcome::Later;
        }
    };
    for (event, body) in bodies {
        let body = match hook.format {
            WebhookFormat::Json => body,
            WebhookFormat::Slack => slack_message(&event, &body),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let delivery = delivery_id(hook, r.view.seq, &event);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match send(&b.webhooks, hook, secret, &event, &delivery, &body).await {
                Ok(()) => {
                    b.metrics.webhook(&hook.name, "delivered");
                    break;
                }
                Err(error) if attempt >= hook.retry.attempts => {
                    tracing::warn!(webhook = %hook.name, %delivery, %error, attempt, "a delivery failed for good: dead letter");
                    b.metrics.webhook(&hook.name, "dead");
                    let dead = DeadLetter {
                        at: crate::core::event::format_ts(&Utc::now()),
                        seq: r.view.seq,
                        event: event.clone(),
                        attempts: attempt,
                        error,
                    };
                    if let Err(e) = files.add_dead_letter(&dead) {
                        tracing::error!(webhook = %hook.name, error = %e, "cannot write a dead letter");
                    }
                    break;
                }
                Err(error) => {
                    tracing::info!(webhook = %hook.name, %delivery, %error, attempt, "a delivery failed: retrying");
                    b.metrics.webhook(&hook.name, "retried");
                    let pause = backoff(hook, attempt);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = closing.changed() => return Outcome::Closing,
                    }
                }
            }
        }
    }
    Outcome::Done
}

/// A Slack message (Block Kit) for an event: its summary and, for
/// `approval_needed`, Approve and Reject buttons whose value binds the
/// plan id, hash and submission, as `/v1/slack/interactive` takes them (a
/// press comes back signed by Slack and is decided like any decision);
/// for `run_started`, a Stop button (the stop of `POST
/// /v1/runs/{run}/stop`).
fn slack_message(event: &str, body: &serde_json::Value) -> serde_json::Value {
    // Slack's mrkdwn: `&`, `<` and `>` are escaped; a section holds at
    // most 3,000 characters.
    let summary: String = body["summary"]
        .as_str()
        .unwrap_or_default()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .chars()
        .take(2900)
        .collect();
    let mut blocks = vec![serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": summary},
    })];
    if event == "approval_needed" {
        let plan = &body["plan"];
        let value = serde_json::json!({
            "plan_id": plan["id"],
            "plan_hash": plan["plan_hash"],
            "submission_seq": plan["submission_seq"],
        })
        .to_string();
        let button = |action: &str, text: &str, style: &str| {
            serde_json::json!({
                "type": "button",
                "action_id": action,
                "style": style,
                "text": {"type": "plain_text", "text": text},
                "value": value,
            })
        };
        blocks.push(serde_json::json!({
            "type": "actions",
            "elements": [
                button("approve", "Approve", "primary"),
                button("reject", "Reject", "danger"),
            ],
        }));
    }
    if event == "run_started"
        && let Some(run) = body["record"]["run_id"].as_str()
    {
        blocks.push(serde_json::json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "action_id": "stop",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Stop"},
                "value": serde_json::json!({"run_id": run}).to_string(),
            }],
        }));
    }
    serde_json::json!({"text": summary, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: &str) -> Head {
        serde_json::from_value(serde_json::json!({"seq": 7, "type": kind}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn derived_events_come_with_their_records() {
        assert_eq!(
            events_of(&head("plan_submitted"), None),
            ["plan_submitted", "approval_needed"]
        );
        assert_eq!(
            events_of(&head("run_finished"), Some("succeeded")),
            ["run_finished"]
        );
        assert_eq!(
            events_of(&head("run_finished"), Some("failed")),
            ["run_finished", "run_failed"]
        );
        assert_eq!(
            events_of(&head("run_finished"), Some("timed_out")),
            ["run_finished", "run_failed"]
        );
        assert_eq!(
            events_of(&head("step_finished"), Some("failed")),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_signature_is_hmac_sha256_over_t_dot_body() {
        // echo -n '1700000000.{}' | openssl dgst -sha256 -hmac key
        let sig = signature(b"key", 1_700_000_000, b"{}");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"key").unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"1700000000.{}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
    }

    #[test]
    fn a_slack_message_escapes_the_summary_and_carries_its_buttons() {
        let body = serde_json::json!({
            "summary": "plan <p> & co",
            "plan": {"id": "p", "plan_hash": "sha256:ab", "submission_seq": 4},
            "record": {"run_id": "r-1"},
        });
        let m = slack_message("approval_needed", &body);
        assert_eq!(m["blocks"][0]["text"]["text"], "plan &lt;p&gt; &amp; co");
        let value = m["blocks"][1]["elements"][1]["value"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(value).unwrap_or_default(),
            serde_json::json!({"plan_id": "p", "plan_hash": "sha256:ab", "submission_seq": 4})
        );
        let m = slack_message("run_started", &body);
        assert_eq!(m["blocks"][1]["elements"][0]["action_id"], "stop");
        assert_eq!(
            slack_message("run_finished", &body)["blocks"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn backoff_doubles_up_to_max_with_jitter() {
        let policy = crate::core::policy::LoadedPolicy::load(Some((
            "p.yaml",
            "bridge:\n  webhooks:\n    - name: h\n      url: http://127.0.0.1:1/\n      events: [refused]\n      secret_file: s\n      retry: {attempts: 9, initial: 100ms, max: 1s}\n",
        )))
        .unwrap_or_else(|e| panic!("{e}"));
        let hook = &policy.policy.bridge.webhooks[0];
        for (n, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let d = backoff(hook, n).as_millis();
            assert!(
                d >= full / 2 && d <= full,
                "attempt {n}: {d} ms, not within {}..={full}",
                full / 2
            );
        }
    }
}
