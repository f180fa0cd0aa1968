//! Rate limits, replay protection and metrics for the bridge.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::policy::{Rate, RateLimits};

/// A token bucket: `capacity` tokens, refilled evenly over `period`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(rate.count),
            last: now,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let per_second = f64::from(rate.count) / f64::from(rate.per_seconds);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(rate.count));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Client,
    Sender,
    /// The sender table is full: new senders are refused, never evicted.
    TooManySenders,
}

/// Token buckets per client and per (client, sender).
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    clients: Mutex<HashMap<String, Bucket>>,
    senders: Mutex<HashMap<(String, String), Bucket>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter {
            limits,
            clients: Mutex::new(HashMap::new()),
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the client's bucket and the sender's.
    pub fn check(&self, client: &str, sender: &str, now: Instant) -> Result<(), Limited> {
        let l = &self.limits;
        {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            let b = clients
                .entry(client.to_owned())
                .or_insert_with(|| Bucket::full(l.per_client, now));
            if !b.take(l.per_client, now) {
                return Err(Limited::Client);
            }
        }
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let key = (client.to_owned(), sender.to_owned());
        if !senders.contains_key(&key) {
            if senders.len() >= l.max_senders as usize {
                // Forget only buckets that are full again: those senders
                // are as if never seen. Never a sender still limited.
                senders.retain(|_, b| {
                    let mut probe = b.clone();
                    !(probe.take(l.per_sender, now)
                        && probe.tokens + 1.0 >= f64::from(l.per_sender.count))
                });
                if senders.len() >= l.max_senders as usize {
                    return Err(Limited::TooManySenders);
                }
            }
            senders.insert(key.clone(), Bucket::full(l.per_sender, now));
        }
        let b = senders.get_mut(&key).ok_or(Limited::TooManySenders)?;
        if b.take(l.per_sender, now) {
            Ok(())
        } else {
            Err(Limited::Sender)
        }
    }
}

/// A remembered decision: the body's digest and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub body_sha256: [u8; 32],
    pub status: u16,
    pub body: String,
}

/// What the cache says about a request key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    New,
    /// The same key and body: answer as before.
    Repeat(Remembered),
    /// The same key with another body: a replay.
    Replay,
}

/// Each claimed key: when, and the answer once known.
type Claims = HashMap<String, (Instant, Option<Remembered>)>;

/// Request keys seen within the window, bounded: the oldest go first.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    inner: Mutex<(Claims, VecDeque<(Instant, String)>)>,
}

impl ReplayCache {
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Looks `key` up and, when new, claims it (so a concurrent twin is a
    /// replay). `body_sha256` tells a repeat from a replay.
    pub fn check(&self, key: &str, body_sha256: [u8; 32], now: Instant) -> Seen {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        while let Some((at, k)) = order.front() {
            if now.saturating_duration_since(*at) > self.window || map.len() > self.capacity {
                map.remove(k);
                order.pop_front();
            } else {
                break;
            }
        }
        match map.get(key) {
            Some((_, Some(r))) if r.body_sha256 == body_sha256 => Seen::Repeat(r.clone()),
            Some(_) => Seen::Replay,
            None => {
                map.insert(key.to_owned(), (now, None));
                order.push_back((now, key.to_owned()));
                Seen::New
            }
        }
    }

    /// Records the answer given for a claimed key.
    pub fn remember(&self, key: &str, answer: Remembered) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = guard.0.get_mut(key) {
            entry.1 = Some(answer);
        }
    }

    /// Releases a claimed key whose request was refused before anything
    /// was recorded, so a corrected retry with the same key is not a replay.
    pub fn forget(&self, key: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.get(key).is_some_and(|e| e.1.is_none()) {
            guard.0.remove(key);
        }
    }
}

/// Latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Prometheus counters and a latency histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Debug, Default)]
struct MetricsInner {
    /// Connections closed at once for `bridge.max_connections`.
    connections_refused: u64,
    decisions: BTreeMap<&'static str, u64>,
    rejections: BTreeMap<&'static str, u64>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    /// Event streams open now, and cut off for falling behind.
    sse_clients: i64,
    sse_cut_off: u64,
    /// Webhook deliveries by (webhook, outcome), each webhook's dead
    /// letters (those in its file when the bridge started, and since),
    /// and the last record each is done with.
    webhook_deliveries: BTreeMap<(String, &'static str), u64>,
    webhook_dead: BTreeMap<String, u64>,
    webhook_positions: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn decision(&self, outcome: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.decisions.entry(outcome).or_default() += 1;
    }

    /// An event stream opened (`1`) or ended (`-1`).
    pub fn sse_client(&self, delta: i64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.sse_clients += delta;
    }

    /// A delivery attempt's outcome: `delivered`, `retried` or `dead`.
    pub fn webhook(&self, name: &str, outcome: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.webhook_deliveries
            .entry((name.to_owned(), outcome))
            .or_default() += 1;
        if outcome == "dead" {
            *m.webhook_dead.entry(name.to_owned()).or_default() += 1;
        }
    }

    /// A webhook's dead letters as its file held them at start.
    pub fn webhook_dead_letters(&self, name: &str, count: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.webhook_dead.insert(name.to_owned(), count);
    }

    pub fn webhook_position(&self, name: &str, seq: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.webhook_positions.insert(name.to_owned(), seq);
    }

    pub fn sse_cut_off(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.sse_cut_off += 1;
    }

    pub fn connection_refused(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.connections_refused += 1;
    }

    pub fn rejection(&self, code: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.rejections.entry(code).or_default() += 1;
    }

    pub fn latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (i, le) in BUCKETS.iter().enumerate() {
            if s <= *le {
                m.latency_buckets[i] += 1;
            }
        }
        m.latency_count += 1;
        m.latency_sum += s;
    }

    /// The Prometheus text format, with `pending` plans as a gauge.
    /// The Prometheus text. `breakers` are the native backends' circuit
    /// breakers as last recorded in the audit log: every backend has a
    /// series, 1 for its current state, closed when none was recorded.
    pub fn render(&self, pending: usize, breakers: &[crate::core::state::BreakerRecord]) -> String {
        use std::fmt::Write as _;
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_decisions_total Decisions recorded, by outcome."
        );
        let _ = writeln!(s, "# TYPE opsgate_bridge_decisions_total counter");
        for (k, v) in &m.decisions {
            let _ = writeln!(s, "opsgate_bridge_decisions_total{{outcome=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_rejections_total Requests refused, by error code."
        );
        let _ = writeln!(s, "# TYPE opsgate_bridge_rejections_total counter");
        for (k, v) in &m.rejections {
            let _ = writeln!(s, "opsgate_bridge_rejections_total{{reason=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_connections_refused_total Connections closed at once: bridge.max_connections were open."
        );
        let _ = writeln!(s, "# TYPE opsgate_bridge_connections_refused_total counter");
        let _ = writeln!(
            s,
            "opsgate_bridge_connections_refused_total {}",
            m.connections_refused
        );
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_request_seconds Decision request latency."
        );
        let _ = writeln!(s, "# TYPE opsgate_bridge_request_seconds histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "opsgate_bridge_request_seconds_bucket{{le=\"{le}\"}} {}",
                m.latency_buckets[i]
            );
        }
        let _ = writeln!(
            s,
            "opsgate_bridge_request_seconds_bucket{{le=\"+Inf\"}} {}",
            m.latency_count
        );
        let _ = writeln!(s, "opsgate_bridge_request_seconds_sum {}", m.latency_sum);
        let _ = writeln!(
            s,
            "opsgate_bridge_request_seconds_count {}",
            m.latency_count
        );
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_sse_clients Event streams (GET /v1/events) open now.\n\
             # TYPE opsgate_bridge_sse_clients gauge\n\
             opsgate_bridge_sse_clients {}\n\
             # HELP opsgate_bridge_sse_cut_off_total Event streams cut off for falling behind the log.\n\
             # TYPE opsgate_bridge_sse_cut_off_total counter\n\
             opsgate_bridge_sse_cut_off_total {}",
            m.sse_clients, m.sse_cut_off
        );
        let _ = writeln!(
            s,
            "# HELP opsgate_webhook_deliveries_total Webhook delivery attempts, by outcome (delivered, retried, dead).\n\
             # TYPE opsgate_webhook_deliveries_total counter"
        );
        for ((name, outcome), n) in &m.webhook_deliveries {
            let _ = writeln!(
                s,
                "opsgate_webhook_deliveries_total{{webhook=\"{name}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP opsgate_webhook_dead_letters Deliveries a webhook gave up on (its dead-letter file).\n\
             # TYPE opsgate_webhook_dead_letters gauge"
        );
        for (name, n) in &m.webhook_dead {
            let _ = writeln!(s, "opsgate_webhook_dead_letters{{webhook=\"{name}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP opsgate_webhook_position_seq The last record a webhook is done with.\n\
             # TYPE opsgate_webhook_position_seq gauge"
        );
        for (name, n) in &m.webhook_positions {
            let _ = writeln!(s, "opsgate_webhook_position_seq{{webhook=\"{name}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP opsgate_bridge_pending_plans Plans waiting for approvals."
        );
        let _ = writeln!(s, "# TYPE opsgate_bridge_pending_plans gauge");
        let _ = writeln!(s, "opsgate_bridge_pending_plans {pending}");
        let _ = writeln!(
            s,
            "# HELP opsgate_backend_breaker_state A native backend's circuit breaker, as last recorded (1 for its state)."
        );
        let _ = writeln!(s, "# TYPE opsgate_backend_breaker_state gauge");
        for backend in crate::native::BACKENDS {
            let now = breakers
                .iter()
                .find(|b| b.backend == backend)
                .map_or("closed", |b| b.state.as_str());
            for state in ["closed", "open", "half_open"] {
                let _ = writeln!(
                    s,
                    "opsgate_backend_breaker_state{{backend=\"{backend}\",state=\"{state}\"}} {}",
                    u8::from(now == state)
                );
            }
        }
        s
    }
}

/// The policy metrics: the hash this process loaded and the one in force
/// in the log (an info metric, as Prometheus exporters report versions),
/// and whether they are the same policy (`opsgate_policy_adopted`, 1 or 0;
/// a log that adopted nothing yet adopts the loaded policy with its first
/// decision, so that counts as 1). Hashes are hex: nothing to escape.
pub fn policy_metrics(loaded: &str, in_force: Option<&str>) -> String {
    let adopted = in_force.unwrap_or("");
    let same = in_force.is_none_or(|h| h == loaded);
    format!(
        "# HELP opsgate_policy_info The policy this process loaded and the one in force in the audit log.\n\
         # TYPE opsgate_policy_info gauge\n\
         opsgate_policy_info{{hash=\"{loaded}\",adopted_hash=\"{adopted}\"}} 1\n\
         # HELP opsgate_policy_adopted 1 when the loaded policy is the one in force in the audit log.\n\
         # TYPE opsgate_policy_adopted gauge\n\
         opsgate_policy_adopted {}\n",
        u8::from(same)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_metrics_say_whether_the_loaded_policy_is_in_force() {
        let same = policy_metrics("sha256:aa", Some("sha256:aa"));
        assert!(
            same.contains("opsgate_policy_info{hash=\"sha256:aa\",adopted_hash=\"sha256:aa\"} 1"),
            "{same}"
        );
        assert!(same.contains("opsgate_policy_adopted 1\n"), "{same}");
        let other = policy_metrics("sha256:bb", Some("sha256:aa"));
        assert!(other.contains("opsgate_policy_adopted 0\n"), "{other}");
        let none = policy_metrics("sha256:bb", None);
        assert!(none.contains("adopted_hash=\"\"} 1"), "{none}");
        assert!(none.contains("opsgate_policy_adopted 1\n"), "{none}");
    }

    fn limits(sender: u32, client: u32, max_senders: u32) -> RateLimits {
        RateLimits {
            per_sender: Rate {
                count: sender,
                per_seconds: 60,
            },
            per_client: Rate {
                count: client,
                per_seconds: 60,
            },
            max_senders,
        }
    }

    #[test]
    fn buckets_limit_senders_and_clients_and_refill() {
        let r = RateLimiter::new(limits(2, 3, 10));
        let t = Instant::now();
        assert_eq!(r.check("c", "a", t), Ok(()));
        assert_eq!(r.check("c", "a", t), Ok(()));
        assert_eq!(r.check("c", "a", t), Err(Limited::Sender));
        // The failed request still took the client's token: 3 spent.
        assert_eq!(r.check("c", "b", t), Err(Limited::Client));
        // 30 s later, one sender token (2/min) and 1.5 client tokens came back.
        let later = t + Duration::from_secs(30);
        assert_eq!(r.check("c", "a", later), Ok(()));
        // Half a client token is left: not enough.
        assert_eq!(r.check("c", "b", later), Err(Limited::Client));
    }

    #[test]
    fn a_full_sender_table_refuses_new_senders_rather_than_evicting() {
        let r = RateLimiter::new(limits(1, 1000, 2));
        let t = Instant::now();
        assert_eq!(r.check("c", "a", t), Ok(()));
        assert_eq!(r.check("c", "b", t), Ok(()));
        assert_eq!(r.check("c", "z", t), Err(Limited::TooManySenders));
        // Once a's and b's buckets are full again they may be forgotten.
        assert_eq!(r.check("c", "z", t + Duration::from_secs(120)), Ok(()));
    }

    #[test]
    fn keys_repeat_with_the_same_body_and_replay_with_another() {
        let c = ReplayCache::new(Duration::from_secs(60), 100);
        let t = Instant::now();
        assert_eq!(c.check("k", [1; 32], t), Seen::New);
        // Before the answer is known, a twin is a replay.
        assert_eq!(c.check("k", [1; 32], t), Seen::Replay);
        let answer = Remembered {
            body_sha256: [1; 32],
            status: 200,
            body: "{}".into(),
        };
        c.remember("k", answer.clone());
        assert_eq!(c.check("k", [1; 32], t), Seen::Repeat(answer));
        assert_eq!(c.check("k", [2; 32], t), Seen::Replay);
        // After the window the key is new again.
        assert_eq!(
            c.check("k", [2; 32], t + Duration::from_secs(61)),
            Seen::New
        );
        // A forgotten claim frees the key.
        assert_eq!(c.check("j", [3; 32], t), Seen::New);
        c.forget("j");
        assert_eq!(c.check("j", [3; 32], t), Seen::New);
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        m.decision("yes");
        m.decision("yes");
        m.rejection("stale_plan_hash");
        m.latency(Duration::from_millis(3));
        let open = crate::core::state::BreakerRecord {
            backend: "ec2".into(),
            state: "open".into(),
            consecutive_failures: 5,
            since: chrono::Utc::now(),
            run_id: None,
        };
        let text = m.render(4, &[open]);
        assert!(
            text.contains("opsgate_bridge_decisions_total{outcome=\"yes\"} 2"),
            "{text}"
        );
        assert!(text.contains("opsgate_bridge_rejections_total{reason=\"stale_plan_hash\"} 1"));
        assert!(text.contains("opsgate_bridge_request_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("opsgate_bridge_request_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("opsgate_bridge_pending_plans 4"));
        assert!(text.contains("opsgate_backend_breaker_state{backend=\"ec2\",state=\"open\"} 1"));
        assert!(text.contains("opsgate_backend_breaker_state{backend=\"ec2\",state=\"closed\"} 0"));
        assert!(
            text.contains("opsgate_backend_breaker_state{backend=\"kube\",state=\"closed\"} 1"),
            "{text}"
        );
    }
}
