//! Time, behind a trait: the system clock for real runs, a virtual one for drills.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
    /// Runs `work` under a time limit of `limit` on this clock; true when the limit passed
    /// before the work ended (`timeout` is the typed way to call it).
    ///
    /// The system clock stops waiting `grace` after the limit: work that enforces the limit
    /// itself (and kills what it started) gets that long to wind down, and work that does not
    /// is abandoned. On a virtual clock time passes only when the work sleeps on the clock, so
    /// the work always ends; it is late when the clock moved past the limit meanwhile.
    async fn limit(&self, limit: Duration, grace: Duration, work: Work<'_>) -> bool;
    /// Virtual clocks advance instantly; waits and timeouts are accounted, not spent. For the
    /// journal's `virtual_time` only: behaviour differences live in the methods above.
    fn is_virtual(&self) -> bool {
        false
    }
}

/// Work run under a time limit (`Clock::limit`).
pub type Work<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How work under a time limit ended (`timeout`).
#[derive(Debug)]
pub enum Timed<T> {
    /// It ended within the limit.
    InTime(T),
    /// It ended, after the limit (a virtual clock: the work accounted more time than allowed).
    Late(T),
    /// The clock stopped waiting: the work was abandoned.
    CutOff,
}

/// Runs `fut` with a time limit on `clock` (see `Clock::limit`).
pub async fn timeout<F>(
    clock: &dyn Clock,
    limit: Duration,
    grace: Duration,
    fut: F,
) -> Timed<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut out = None;
    let late = clock
        .limit(
            limit,
            grace,
            Box::pin(async {
                out = Some(fut.await);
            }),
        )
        .await;
    match (out, late) {
        (Some(v), false) => Timed::InTime(v),
        (Some(v), true) => Timed::Late(v),
        (None, _) => Timed::CutOff,
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
    async fn limit(&self, limit: Duration, grace: Duration, work: Work<'_>) -> bool {
        tokio::time::timeout(limit.saturating_add(grace), work)
            .await
            .is_err()
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
    async fn limit(&self, limit: Duration, _grace: Duration, work: Work<'_>) -> bool {
        // Simulated work winds down in no time: no grace.
        let start = self.now();
        work.await;
        (self.now() - start).to_std().unwrap_or_default() > limit
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

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(3);

    fn virtual_clock() -> VirtualClock {
        VirtualClock::new(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .into(),
        )
    }

    #[tokio::test]
    async fn a_virtual_clock_lets_the_work_end_and_judges_the_time_it_accounted() {
        let c = virtual_clock();
        let r = timeout(&c, Duration::from_secs(10), GRACE, async {
            c.sleep(Duration::from_secs(10)).await;
            1
        })
        .await;
        assert!(matches!(r, Timed::InTime(1)), "{r:?}");
        // Within the grace a real clock gives, but late: simulated work winds down instantly.
        let r = timeout(&c, Duration::from_secs(10), GRACE, async {
            c.sleep(Duration::from_secs(11)).await;
            2
        })
        .await;
        assert!(matches!(r, Timed::Late(2)), "{r:?}");
    }

    #[tokio::test]
    async fn the_system_clock_abandons_work_past_the_limit_and_its_grace() {
        let c = SystemClock;
        let r = timeout(&c, Duration::from_secs(10), GRACE, async { 1 }).await;
        assert!(matches!(r, Timed::InTime(1)), "{r:?}");
        let r = timeout(
            &c,
            Duration::from_millis(5),
            Duration::from_millis(5),
            std::future::pending::<()>(),
        )
        .await;
        assert!(matches!(r, Timed::CutOff), "{r:?}");
        // No limit overflows the clock's arithmetic.
        let r = timeout(&c, Duration::MAX, GRACE, async { 3 }).await;
        assert!(matches!(r, Timed::InTime(3)), "{r:?}");
    }
}
