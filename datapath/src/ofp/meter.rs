//! Meters: rate limits shared by every worker, lock-free (control thread defines, hot path runs).
//!
//! A meter has one drop band: a rate in kbit/s or packets/s and a burst. It is enforced with the
//! generic cell rate algorithm (GCRA, the virtual-scheduling form of a token bucket): the meter
//! keeps one number, the theoretical arrival time (TAT, ns) of the next conforming unit. A
//! packet of cost `c` units conforms when `TAT - now ≤ burst × period`; it then moves TAT to
//! `max(TAT, now) + c × period`. One `AtomicU64` holds TAT, updated by compare-and-swap, so
//! workers share the rate exactly without locks (a CAS retries only when two workers meter the
//! same meter at the same instant).

use std::sync::atomic::{AtomicU64, Ordering};

use super::pipeline::FlowStats;

/// Rate unit of a meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterUnit {
    /// Kilobits per second (frame bytes × 8 / 1000).
    Kbps,
    /// Packets per second.
    Pktps,
}

/// A meter's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MeterConfig {
    /// Unit of `rate` and `burst`.
    pub unit: MeterUnit,
    /// Drop band rate (> 0).
    pub rate: u64,
    /// Burst size in the unit (kbit or packets); 0 = a default of one tenth of a second of rate
    /// (at least one packet or 12 kbit, so a full-size frame conforms).
    pub burst: u64,
}

/// Largest rate accepted (1 Tbit/s, or 1 G packets/s).
pub const MAX_RATE: u64 = 1_000_000_000;

/// TAT resolution: 1/16 ns (a u64 of ticks lasts 36 years).
const TICKS_PER_NS: u64 = 16;

/// A meter as the workers run it.
#[derive(Debug)]
pub struct Meter {
    /// Its id.
    pub id: u32,
    /// Its configuration.
    pub config: MeterConfig,
    /// Ticks ([`TICKS_PER_NS`]) per unit of cost (per bit for kbps, per packet for pktps),
    /// ×2³² fixed point (a ×1024 ns period truncated to 1 ns at 1 Gbit/s-per-1024 rates: a
    /// 600 Gbit/s meter charged 64-byte frames nothing).
    period_q32: u128,
    /// Tolerance in ticks.
    tolerance: u64,
    tat: AtomicU64,
    /// Packets and bytes offered to the meter.
    pub offered: FlowStats,
    /// Packets and bytes the band dropped.
    pub dropped: FlowStats,
}

impl Meter {
    /// A meter with `writers` counter slots.
    pub fn new(id: u32, config: MeterConfig, writers: usize) -> Self {
        let rate = config.rate.clamp(1, MAX_RATE);
        // Cost units: bits for kbps (rate × 1000 bits/s), packets for pktps.
        let units_per_sec = match config.unit {
            MeterUnit::Kbps => rate.saturating_mul(1000),
            MeterUnit::Pktps => rate,
        };
        let period_q32 =
            ((u128::from(1_000_000_000 * TICKS_PER_NS) << 32) / u128::from(units_per_sec)).max(1);
        let burst_units = match (config.burst, config.unit) {
            (0, MeterUnit::Kbps) => (units_per_sec / 10).max(12_000),
            (0, MeterUnit::Pktps) => (units_per_sec / 10).max(1),
            (b, MeterUnit::Kbps) => b.saturating_mul(1000),
            (b, MeterUnit::Pktps) => b,
        };
        // A burst beyond what the ticks can hold (any u64 is accepted) is no limit at all.
        let tolerance = u128::from(burst_units)
            .checked_mul(period_q32)
            .map_or(u64::MAX, |t| u64::try_from(t >> 32).unwrap_or(u64::MAX));
        Self {
            id,
            config,
            period_q32,
            tolerance,
            tat: AtomicU64::new(0),
            offered: FlowStats::new(writers),
            dropped: FlowStats::new(writers),
        }
    }

    /// Whether a frame of `bytes` conforms at `now_ns` (monotonic ns); a conforming frame is
    /// charged. Counts into `writer`'s slots.
    #[inline]
    pub fn admit(&self, writer: usize, bytes: u64, now_ns: u64, now_ms: u64) -> bool {
        self.offered.hit(writer, 1, bytes, now_ms);
        let units = match self.config.unit {
            MeterUnit::Kbps => bytes.saturating_mul(8),
            MeterUnit::Pktps => 1,
        };
        // Rounded to the nearest tick.
        let inc = u64::try_from((u128::from(units) * self.period_q32 + (1 << 31)) >> 32)
            .unwrap_or(u64::MAX);
        let now_ns = now_ns.saturating_mul(TICKS_PER_NS);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            if tat.saturating_sub(now_ns) > self.tolerance {
                self.dropped.hit(writer, 1, bytes, now_ms);
                return false;
            }
            let next = tat.max(now_ns).saturating_add(inc);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_rate_is_enforced_after_the_burst() {
        let m = Meter::new(
            1,
            MeterConfig {
                unit: MeterUnit::Pktps,
                rate: 1000,
                burst: 10,
            },
            1,
        );
        // 100 packets at the same instant: the burst (plus the first) passes.
        let t0 = 1_000_000_000;
        let passed = (0..100).filter(|_| m.admit(0, 100, t0, 0)).count();
        assert!((10..=12).contains(&passed), "{passed}");
        // Over one second at 10 kpps offered, about 1000 pass.
        let mut ok = 0;
        for i in 0..10_000u64 {
            if m.admit(0, 100, t0 + 1_000_000 + i * 100_000, 0) {
                ok += 1;
            }
        }
        assert!((990..=1020).contains(&ok), "{ok}");
        assert_eq!(m.offered.totals().0, 10_100);
        assert_eq!(m.dropped.totals().0, 10_100 - passed as u64 - ok);
    }

    #[test]
    fn kbps_rate_counts_bits() {
        let m = Meter::new(
            1,
            MeterConfig {
                unit: MeterUnit::Kbps,
                rate: 8_000, // 1 MB/s
                burst: 0,
            },
            1,
        );
        let t0 = 5_000_000_000u64;
        let mut bytes = 0u64;
        // 10 MB/s offered for one second, 1000-byte frames.
        for i in 0..10_000u64 {
            if m.admit(0, 1000, t0 + i * 100_000, 0) {
                bytes += 1000;
            }
        }
        // 1 MB plus the default burst (0.1 s = 100 kB).
        assert!((1_050_000..=1_150_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn concurrent_workers_share_one_rate() {
        let m = std::sync::Arc::new(Meter::new(
            1,
            MeterConfig {
                unit: MeterUnit::Pktps,
                rate: 1_000,
                burst: 1,
            },
            4,
        ));
        let t0 = 1_000_000_000u64;
        let hs: Vec<_> = (0..4)
            .map(|w| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..10_000u64)
                        .filter(|i| m.admit(w, 64, t0 + i * 100_000, 0))
                        .count()
                })
            })
            .collect();
        let total: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        // One second of virtual time: ~1000 conform in total, not 1000 per worker.
        assert!((990..=1010).contains(&total), "{total}");
    }
}
