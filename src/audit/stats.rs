//! What appends cost in this process, for `/metrics`: how long each took
//! as its caller waited (queue, write, fsync or the store's commit), and
//! how many failed. Process-wide: a bridge holds one log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The histogram's upper bounds, in seconds.
pub const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters, updated without a lock.
#[derive(Debug)]
pub struct AppendStats {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    failures: AtomicU64,
}

/// This process's appends.
pub static APPENDS: AppendStats = AppendStats {
    buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
    count: AtomicU64::new(0),
    sum_micros: AtomicU64::new(0),
    failures: AtomicU64::new(0),
};

impl AppendStats {
    /// An append that became durable after `took`.
    pub fn durable(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A write or an fsync that failed, or an append refused by a
    /// poisoned handle (a failed fsync poisons it). Counted where it
    /// happens, once.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text: `opsgate_audit_append_seconds` (a histogram) and
    /// `opsgate_audit_append_failures_total`.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from(
            "# HELP opsgate_audit_append_seconds How long an append took until durable, as its caller waited.\n\
             # TYPE opsgate_audit_append_seconds histogram\n",
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "opsgate_audit_append_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            s,
            "opsgate_audit_append_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             opsgate_audit_append_seconds_sum {sum}\n\
             opsgate_audit_append_seconds_count {count}\n\
             # HELP opsgate_audit_append_failures_total Appends that failed.\n\
             # TYPE opsgate_audit_append_failures_total counter\n\
             opsgate_audit_append_failures_total {}",
            self.failures.load(Ordering::Relaxed)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_counts_in_its_bucket_and_every_one_above() {
        let stats = AppendStats {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        };
        stats.durable(Duration::from_millis(3));
        stats.durable(Duration::from_millis(30));
        stats.failed();
        let text = stats.render();
        assert!(
            text.contains("opsgate_audit_append_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("opsgate_audit_append_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("opsgate_audit_append_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("opsgate_audit_append_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("opsgate_audit_append_seconds_sum 0.033\n"),
            "{text}"
        );
        assert!(
            text.contains("opsgate_audit_append_failures_total 1\n"),
            "{text}"
        );
    }
}
