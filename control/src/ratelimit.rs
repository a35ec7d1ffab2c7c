//! A fixed-window rate limit for log events (OVS `VLOG_RATE_LIMIT` in spirit).

use std::time::{Duration, Instant};

/// Allows `burst` events per `window`; counts the rest so the next allowed event can say how
/// many were suppressed.
#[derive(Debug)]
pub(crate) struct RateLimit {
    burst: u32,
    window: Duration,
    start: Instant,
    count: u32,
    suppressed: u64,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            start: Instant::now(),
            count: 0,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last allowed event)` if this event may be logged.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.start) >= self.window {
            self.start = now;
            self.count = 0;
        }
        if self.count < self.burst {
            self.count += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_per_window_and_counts_the_rest() {
        let mut r = RateLimit::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), None);
        assert_eq!(r.allow(t0), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), Some(2));
    }
}
