//! `GET /v1/events`: the audit records as Server-Sent Events, in order,
//! as recorded (they are redacted when written).
//!
//! One tail task per bridge reads what the log gains, only up to the
//! length the ledger cache verified, and broadcasts each record. Writers
//! never meet a stream: they append to the log as always, and the tail
//! reads the file after them. A stream first sends its backlog from the
//! file (after `Last-Event-ID`), then the broadcast; a stream that falls
//! `bridge.events.buffer` records behind is cut off with an `event:
//! cut_off` saying where to resume. A client that reads nothing at all is
//! closed by `bridge.write_timeout` (see `serve`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::auth::Caller;
use super::errors::{ApiError, blocking, err, log_unreadable};
use super::read::with_ledger_at;
use super::state::Bridge;
use crate::audit::read::LineReader;

/// How often the tail looks for new records.
const POLL: Duration = Duration::from_millis(50);

/// How many records one read of the backlog takes from the file.
const PAGE: usize = 256;

/// The fields of a record that streams read: filters and the event's id
/// and name (the rest of the line is skipped, not copied).
#[derive(Debug, Deserialize)]
pub(super) struct Head {
    pub(super) seq: u64,
    #[serde(rename = "type")]
    pub(super) kind: String,
    plan_id: Option<String>,
    run_id: Option<String>,
}

impl Head {
    fn parse(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// A record as the tail read it: its line and the fields filters read.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) view: Head,
    /// The record as an event (`id`, `event`, `data`), rendered once and
    /// shared by every stream.
    sse: Bytes,
    /// The line itself (a part of `sse`).
    pub(super) line: Bytes,
    /// The offset just after the line.
    pub(super) end: u64,
}

/// The tail and its broadcast, started by the first stream.
#[derive(Debug, Default)]
pub(super) struct Feed {
    tx: std::sync::OnceLock<broadcast::Sender<Arc<Record>>>,
}

impl Feed {
    /// A receiver of every record the tail reads from now on, starting
    /// the tail on first use at `floor`: where the first stream's reading
    /// of the file ended (a record's start), so that nothing after it is
    /// missed.
    fn subscribe(&self, b: &Arc<Bridge>, floor: u64) -> broadcast::Receiver<Arc<Record>> {
        self.tx
            .get_or_init(|| {
                let capacity =
                    usize::try_from(b.policy().policy.bridge.events.buffer).unwrap_or(usize::MAX);
                let (tx, _) = broadcast::channel(capacity);
                tokio::spawn(tail(Arc::clone(b), tx.clone(), floor));
                tx
            })
            .subscribe()
    }
}

/// Reads what the verified log gains after `offset` and broadcasts it,
/// for as long as the bridge lives.
async fn tail(b: Arc<Bridge>, tx: broadcast::Sender<Arc<Record>>, mut offset: u64) {
    loop {
        match with_ledger_at(&b, |_, len| len).await {
            Ok(len) => {
                let from = offset;
                if len > from {
                    let path = b.log_path().to_owned();
                    match blocking(move || read_range(&path, from, len, usize::MAX)).await {
                        Ok(Ok((records, end))) => {
                            offset = end;
                            for r in records {
                                // No receiver is no error: streams read
                                // what they missed from the file.
                                let _ = tx.send(Arc::new(r));
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "the event tail cannot read the log")
                        }
                        Err(e) => tracing::warn!(error = %e.message, "the event tail failed"),
                    }
                }
            }
            // A log that does not verify feeds nothing; streams see it
            // when they reconnect.
            Err(e) => tracing::debug!(error = %e.message, "the event tail waits for the log"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The complete records in `[from, to)` of the log, at most `limit`, and
/// the offset after the last one read.
pub(super) fn read_range(
    path: &std::path::Path,
    from: u64,
    to: u64,
    limit: usize,
) -> std::io::Result<(Vec<Record>, u64)> {
    let mut out = Vec::new();
    let mut end = from;
    let mut lines = LineReader::open_range(path, from, to, 1)?;
    while out.len() < limit
        && let Some(line) = lines.next_line()
    {
        let line = line?;
        if !line.complete {
            break;
        }
        let view = Head::parse(line.bytes).map_err(std::io::Error::other)?;
        end = line.offset + line.bytes.len() as u64 + 1;
        let (sse, at) = render(&view, line.bytes);
        let line = sse.slice(at..at + line.bytes.len());
        out.push(Record {
            view,
            sse,
            line,
            end,
        });
    }
    Ok((out, end))
}

/// `GET /v1/events`' query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Record types, comma-separated.
    #[serde(rename = "type")]
    kind: Option<String>,
    plan: Option<String>,
    run: Option<String>,
    /// Where to start when no `Last-Event-ID` is sent (`0`: the whole
    /// log); without either, the stream starts at the log's head.
    after_seq: Option<u64>,
}

/// Which records a stream sends.
#[derive(Debug, Clone)]
struct Wanted {
    kinds: Vec<String>,
    plan: Option<String>,
    run: Option<String>,
}

impl Wanted {
    fn matches(&self, r: &Head) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        (self.kinds.is_empty() || self.kinds.contains(&r.kind))
            && eq(&self.plan, r.plan_id.as_deref())
            && eq(&self.run, r.run_id.as_deref())
    }
}

/// The stream's state between events.
struct Stream {
    b: Arc<Bridge>,
    wanted: Wanted,
    /// The last record sent (or skipped by the filter), and the offset
    /// after it (0 until one is).
    last: u64,
    offset: u64,
    /// Set when the broadcast went on without this stream and it reads
    /// the file to catch up; cleared once it waits for the next record.
    behind: bool,
    /// Reading the file from this offset, up to `until`; `None`: live.
    file: Option<(u64, u64)>,
    pending: std::collections::VecDeque<Arc<Record>>,
    rx: Option<broadcast::Receiver<Arc<Record>>>,
    /// The last event to send, when the stream is cut off.
    cut: Option<serde_json::Value>,
    done: bool,
    /// Set when the bridge shuts down.
    closing: tokio::sync::watch::Receiver<bool>,
    /// An idle stream sends a comment this often; `beat` is set when one
    /// is due.
    heartbeat: Duration,
    beat: bool,
    _client: ClientGauge,
}

/// Counts a stream in `/metrics` for as long as it lives.
struct ClientGauge(Arc<Bridge>);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.metrics.sse_client(-1);
    }
}

pub(super) async fn events(
    State(b): State<Arc<Bridge>>,
    _: Caller,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", e.body_text()))?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "malformed",
                        "Last-Event-ID: not a record's seq",
                    )
                })?,
        ),
    };
    let wanted = Wanted {
        kinds: q
            .kind
            .iter()
            .flat_map(|k| k.split(','))
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect(),
        plan: q.plan,
        run: q.run,
    };
    // The length verified now, and the seq of its last record.
    let len = with_ledger_at(&b, |_, len| len).await?;
    let path = b.log_path().to_owned();
    let after_q = resume.or(q.after_seq);
    let found = blocking(move || {
        let (head, len) = head_of(&path, len)?;
        let from = start_offset(&path, len, head, after_q.unwrap_or(head))?;
        Ok::<_, std::io::Error>((head, from, len))
    })
    .await?
    .map_err(log_unreadable)?;
    let (head, from, len) = found;
    let after = after_q;
    if let Some(a) = after
        && a > head
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("cannot resume after record {a}: the log's last record is {head}"),
        ));
    }
    b.metrics.sse_client(1);
    let stream = Stream {
        b: Arc::clone(&b),
        wanted,
        last: after.unwrap_or(head),
        offset: from,
        behind: false,
        file: Some((from, len)),
        pending: std::collections::VecDeque::new(),
        rx: None,
        cut: None,
        done: false,
        closing: b.closing.subscribe(),
        heartbeat: b.policy().policy.bridge.events.heartbeat.get(),
        beat: false,
        _client: ClientGauge(Arc::clone(&b)),
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let bytes = s.next().await?;
        Some((Ok::<_, Infallible>(bytes), s))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // nginx and its kin: pass each event on as it comes.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The most bytes of ready events sent as one piece.
const BATCH: usize = 64 * 1024;

/// How many records back from the head a resumed stream finds its place
/// by reading backwards; further back, it counts lines from the start.
const SEEK_BACK: u64 = 8192;

/// Where the record after `after` starts. Seqs are consecutive lines from
/// 1, so it is the start of line `after + 1`: found by reading backwards
/// when it is near the head, else by counting newlines from the start
/// (no record is parsed). The record found is checked; if its seq is not
/// `after + 1`, the stream reads from the start and skips by seq.
pub(super) fn start_offset(
    path: &std::path::Path,
    len: u64,
    head: u64,
    after: u64,
) -> std::io::Result<u64> {
    if after >= head {
        return Ok(len);
    }
    let back = head - after;
    let offset = if back <= SEEK_BACK {
        let f = std::fs::File::open(path)?;
        let n = usize::try_from(back).unwrap_or(usize::MAX);
        let tail = crate::audit::backward::read_tail(&f, len, n)?;
        tail.lines.first().map_or(0, |(offset, _)| *offset)
    } else {
        line_start(path, len, after)?
    };
    let mut lines = LineReader::open_range(path, offset, len, 1)?;
    let found = match lines.next_line() {
        Some(line) => Head::parse(line?.bytes).ok().map(|v| v.seq),
        None => None,
    };
    Ok(if found == Some(after + 1) { offset } else { 0 })
}

/// The offset just after the `n`th newline of the first `len` bytes.
fn line_start(path: &std::path::Path, len: u64, n: u64) -> std::io::Result<u64> {
    use std::io::Read as _;
    let mut f = std::io::Read::take(std::fs::File::open(path)?, len);
    let mut buf = vec![0; 256 * 1024];
    let (mut seen, mut at) = (0, 0u64);
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            return Ok(0);
        }
        for (i, _) in buf[..got].iter().enumerate().filter(|(_, c)| **c == b'\n') {
            seen += 1;
            if seen == n {
                return Ok(at + i as u64 + 1);
            }
        }
        at += got as u64;
    }
}

/// The seq of the last complete record in the log's first `len` bytes
/// (0: none), and where the complete records end (a writer may be half
/// way through the next).
pub(super) fn head_of(path: &std::path::Path, len: u64) -> std::io::Result<(u64, u64)> {
    if len == 0 {
        return Ok((0, 0));
    }
    let f = std::fs::File::open(path)?;
    let tail = crate::audit::backward::read_tail(&f, len, 1)?;
    let end = tail.torn_at.unwrap_or(len);
    match tail.lines.last() {
        None => Ok((0, end)),
        Some((_, line)) => Ok((Head::parse(line).map_err(std::io::Error::other)?.seq, end)),
    }
}

impl Stream {
    /// The next events (those ready, up to [`BATCH`] bytes, as one
    /// piece), or `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        let mut out: Vec<Bytes> = Vec::new();
        let mut size = 0;
        loop {
            if self.done {
                return None;
            }
            if let Some(data) = self.cut.take() {
                self.done = true;
                let event = format!("event: cut_off\ndata: {data}\n\n");
                out.push(Bytes::from(event));
                return Some(join(out));
            }
            if *self.closing.borrow() {
                self.end_with("the bridge is shutting down");
                continue;
            }
            if let Some(r) = self.pending.pop_front() {
                if r.view.seq <= self.last {
                    continue;
                }
                self.last = r.view.seq;
                self.offset = r.end;
                if self.wanted.matches(&r.view) {
                    size += r.sse.len();
                    out.push(r.sse.clone());
                    if size >= BATCH {
                        return Some(join(out));
                    }
                }
                continue;
            }
            // Nothing more ready: send what there is before waiting.
            if !out.is_empty() && self.file.is_none() {
                match self.rx.as_ref().map(broadcast::Receiver::len) {
                    Some(0) | None => return Some(join(out)),
                    Some(_) => {}
                }
            }
            match self.file {
                Some((from, until)) => self.read_file(from, until).await,
                None => self.receive().await,
            }
            if std::mem::take(&mut self.beat) {
                out.push(Bytes::from_static(b": heartbeat\n\n"));
                return Some(join(out));
            }
        }
    }

    /// The next page of the backlog; at its end, subscribes and reads
    /// the file once more up to the length verified then, so that nothing
    /// between the backlog and the broadcast is missed (what both hold
    /// is sent once: by seq).
    async fn read_file(&mut self, from: u64, until: u64) {
        if from >= until {
            if self.rx.is_some() {
                self.file = None;
                return;
            }
            self.rx = Some(self.b.events.subscribe(&self.b, until));
            match with_ledger_at(&self.b, |_, len| len).await {
                Ok(len) => self.file = Some((until, len)),
                Err(e) => self.fail(&e.message),
            }
            return;
        }
        let path = self.b.log_path().to_owned();
        match blocking(move || read_range(&path, from, until, PAGE)).await {
            Ok(Ok((records, end))) if end > from => {
                self.pending.extend(records.into_iter().map(Arc::new));
                self.file = Some((end, until));
            }
            // No complete line: a writer is half way through one. Wait
            // for it where it starts (the broadcast brings it whole).
            Ok(Ok(_)) => self.file = Some((from, from)),
            Ok(Err(e)) => self.fail(&e.to_string()),
            Err(e) => self.fail(&e.message),
        }
    }

    async fn receive(&mut self) {
        let Some(rx) = self.rx.as_mut() else {
            self.done = true;
            return;
        };
        let received = match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Empty) => {
                // Caught up: the next lag is a fresh one.
                self.behind = false;
                tokio::select! {
                    r = rx.recv() => r,
                    _ = self.closing.changed() => return,
                    () = tokio::time::sleep(self.heartbeat) => {
                        self.beat = true;
                        return;
                    }
                }
            }
            Ok(r) => Ok(r),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                Err(broadcast::error::RecvError::Lagged(n))
            }
            Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
        };
        match received {
            Ok(r) => self.pending.push_back(r),
            // A burst, or a reader that paused: catch up from the file,
            // at the reader's pace, once.
            Err(broadcast::error::RecvError::Lagged(_)) if !self.behind => {
                self.behind = true;
                self.rx = None;
                self.file = Some((self.offset, self.offset));
            }
            // Behind again before it caught up: the log grows faster than
            // this reader reads.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.b.metrics.sse_cut_off();
                self.end_with(
                    "this stream fell behind the log by more than bridge.events.buffer records twice without catching up",
                );
            }
            Err(broadcast::error::RecvError::Closed) => self.done = true,
        }
    }

    /// Ends the stream with a last `cut_off` event saying why and where to
    /// resume (send it as `Last-Event-ID`).
    fn end_with(&mut self, reason: &str) {
        self.pending.clear();
        self.rx = None;
        self.file = None;
        self.cut = Some(serde_json::json!({"reason": reason, "resume_after": self.last}));
    }

    fn fail(&mut self, problem: &str) {
        tracing::warn!(problem, "an event stream stops: the log cannot be read");
        self.end_with("the audit log cannot be read");
    }
}

/// A record as an event. A record is one line of JSON, so it is one
/// `data` line; a type with anything but `[a-z0-9_]` (a forged record
/// cannot pass the verification, but be strict) is sent as `record`.
/// Also where the line starts in it.
fn render(view: &Head, line: &[u8]) -> (Bytes, usize) {
    let kind = if !view.kind.is_empty()
        && view
            .kind
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        view.kind.as_str()
    } else {
        "record"
    };
    let mut out = Vec::with_capacity(line.len() + kind.len() + 40);
    out.extend_from_slice(format!("id: {}\nevent: {kind}\ndata: ", view.seq).as_bytes());
    let at = out.len();
    out.extend(
        line.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\n\n");
    (Bytes::from(out), at)
}

/// Pieces as one.
fn join(mut pieces: Vec<Bytes>) -> Bytes {
    if pieces.len() == 1 {
        return pieces.pop().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
    for p in &pieces {
        out.extend_from_slice(p);
    }
    Bytes::from(out)
}
