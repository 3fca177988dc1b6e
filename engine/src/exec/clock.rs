//! Time, behind a trait: the system clock for real runs, a virtual one for drills.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
    /// Virtual clocks advance instantly; waits and timeouts are accounted, not spent.
    fn is_virtual(&self) -> bool {
        false
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A clock that only moves when something sleeps on it: a drill with 30 minutes of waiting
/// runs in milliseconds, and the same drill always produces the same timestamps.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

/// `t + d`, saturating at the end of time: no duration may overflow the clock's arithmetic
/// (durations are bounded at `check`, see `model::MAX_DURATION`; this holds whatever reaches
/// the runner).
pub fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        // Saturates: a drill of a runbook with an absurd wait must not crash the engine.
        *now = later(*now, d);
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
    async fn sleep(&self, d: Duration) {
        self.advance(d);
    }
    fn is_virtual(&self) -> bool {
        true
    }
}

/// RFC 3339 with milliseconds, as the journal writes times.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds between two instants (0 if negative).
pub fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b - a).num_milliseconds().max(0) as u64
}
