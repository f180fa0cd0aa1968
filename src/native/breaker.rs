//! A circuit breaker per backend: after `failures` consecutive failures it
//! opens and calls fail at once (fail closed); after `open_for` it lets
//! calls through again (half-open); `close_after` successes then close it,
//! and one failure opens it again.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::policy::BreakerPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    close_after: u32,
    state: BreakerState,
    consecutive_failures: u32,
    successes: u32,
    opened_at: Option<Instant>,
}

/// What the breaker says to a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Open: refused, and how long until it lets a call through.
    No {
        retry_in: Duration,
    },
}

impl Breaker {
    pub fn new(policy: &BreakerPolicy) -> Self {
        Breaker {
            failures: policy.failures.max(1),
            open_for: policy.open_for.get(),
            close_after: policy.close_after.max(1),
            state: BreakerState::Closed,
            consecutive_failures: 0,
            successes: 0,
            opened_at: None,
        }
    }

    /// The state now (an open breaker whose time is up is half-open).
    pub fn state(&mut self, now: Instant) -> BreakerState {
        if self.state == BreakerState::Open
            && self
                .opened_at
                .is_some_and(|t| now.duration_since(t) >= self.open_for)
        {
            self.state = BreakerState::HalfOpen;
            self.successes = 0;
        }
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state(now) {
            BreakerState::Open => Admit::No {
                retry_in: self.opened_at.map_or(self.open_for, |t| {
                    self.open_for.saturating_sub(now.duration_since(t))
                }),
            },
            BreakerState::Closed | BreakerState::HalfOpen => Admit::Yes,
        }
    }

    /// Records a call's outcome; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<BreakerState> {
        let before = self.state(now);
        if ok {
            self.consecutive_failures = 0;
            if before == BreakerState::HalfOpen {
                self.successes += 1;
                if self.successes >= self.close_after {
                    self.state = BreakerState::Closed;
                    self.opened_at = None;
                }
            }
        } else {
            self.consecutive_failures += 1;
            if before == BreakerState::HalfOpen || self.consecutive_failures >= self.failures {
                self.state = BreakerState::Open;
                self.opened_at = Some(now);
            }
        }
        (self.state != before).then_some(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::duration::HumanDuration;

    fn breaker() -> Breaker {
        Breaker::new(&BreakerPolicy {
            failures: 5,
            open_for: HumanDuration::from_secs(30),
            close_after: 2,
        })
    }

    #[test]
    fn opens_after_five_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = breaker();
        for _ in 0..4 {
            assert_eq!(b.record(false, t), None);
        }
        assert_eq!(b.record(true, t), None, "a success resets the count");
        for _ in 0..4 {
            b.record(false, t);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        assert_eq!(b.record(false, t), Some(BreakerState::Open));
        assert_eq!(
            b.admit(t + Duration::from_secs(10)),
            Admit::No {
                retry_in: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn half_opens_after_the_wait_and_closes_after_two_successes() {
        let t = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.record(false, t);
        }
        let later = t + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admit::Yes);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.record(true, later), None);
        assert_eq!(b.record(true, later), Some(BreakerState::Closed));
    }

    #[test]
    fn a_failure_while_half_open_opens_it_again() {
        let t = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.record(false, t);
        }
        let later = t + Duration::from_secs(31);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.record(false, later), Some(BreakerState::Open));
        assert!(matches!(b.admit(later), Admit::No { .. }));
    }
}
