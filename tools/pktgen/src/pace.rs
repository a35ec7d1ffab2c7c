//! A token bucket on the monotonic clock: credit grows at `rate` frames per second up to one
//! burst; a sender asks once per batch how many frames it may queue now. No syscall per frame:
//! the caller reads the clock once per batch, and waits by spinning for short gaps and sleeping
//! for long ones.

use std::time::Duration;

/// Frames-per-second limiter (or none).
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Frames per second; `None`: unlimited.
    rate: Option<u64>,
    /// Credit in frame·ns units (one frame = 1e9).
    credit: u128,
    /// Most credit kept (one burst).
    cap: u128,
    last: u64,
}

const NS: u128 = 1_000_000_000;

impl Pacer {
    /// A limiter of `rate` frames/s (unlimited when `None` or 0), starting at `now_ns` with
    /// credit for one frame. Credit is kept for up to 10 ms of frames (at least `burst`), so a
    /// sender that was preempted catches up in back-to-back batches instead of losing rate.
    pub fn new(rate: Option<u64>, burst: u64, now_ns: u64) -> Self {
        let rate = rate.filter(|r| *r > 0);
        let burst = burst.max(rate.unwrap_or(0) / 100).max(1);
        Self {
            rate,
            credit: NS,
            cap: u128::from(burst) * NS,
            last: now_ns,
        }
    }

    /// How many of `want` frames may go at `now_ns` (the caller then sends them and calls
    /// [`Pacer::spend`] with the number actually queued).
    #[inline]
    pub fn allow(&mut self, now_ns: u64, want: u64) -> u64 {
        let Some(rate) = self.rate else {
            return want;
        };
        let dt = u128::from(now_ns.saturating_sub(self.last));
        self.last = now_ns.max(self.last);
        self.credit = (self.credit + dt * u128::from(rate)).min(self.cap);
        let have = u64::try_from(self.credit / NS).unwrap_or(u64::MAX);
        have.min(want)
    }

    /// Takes `n` frames' worth of credit.
    #[inline]
    pub fn spend(&mut self, n: u64) {
        if self.rate.is_some() {
            self.credit = self.credit.saturating_sub(u128::from(n) * NS);
        }
    }

    /// Waits until at least one frame's credit should be there: sleeps when that is far
    /// (more than 200 µs), else spins briefly.
    pub fn wait(&self) {
        let Some(rate) = self.rate else { return };
        let missing = NS.saturating_sub(self.credit);
        let ns = u64::try_from(missing / u128::from(rate)).unwrap_or(u64::MAX);
        if ns > 200_000 {
            std::thread::sleep(Duration::from_nanos(ns - 100_000));
        } else {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_allows_everything() {
        let mut p = Pacer::new(None, 64, 0);
        assert_eq!(p.allow(0, 1000), 1000);
    }

    #[test]
    fn credit_grows_with_time_up_to_one_burst() {
        let mut p = Pacer::new(Some(1_000_000), 64, 0); // one frame per µs
        assert_eq!(p.allow(0, 100), 1);
        p.spend(1);
        assert_eq!(p.allow(0, 100), 0);
        assert_eq!(p.allow(10_000, 100), 10);
        p.spend(10);
        assert_eq!(p.allow(10_500, 100), 0);
        assert_eq!(p.allow(11_000, 100), 1);
        // A long pause gives one burst (10 ms of frames), not a flood.
        assert_eq!(p.allow(1_000_000_000, 100_000), 10_000);
        let mut p = Pacer::new(Some(1000), 64, 0);
        assert_eq!(p.allow(1_000_000_000, 1000), 64);
        // Over a simulated second in 7 µs steps, about `rate` frames go out.
        let mut p = Pacer::new(Some(100_000), 64, 0);
        let mut sent = 0;
        let mut t = 0;
        while t < 1_000_000_000 {
            let n = p.allow(t, 32);
            p.spend(n);
            sent += n;
            t += 7_000;
        }
        assert!((99_900..=100_100).contains(&sent), "{sent}");
    }
}
