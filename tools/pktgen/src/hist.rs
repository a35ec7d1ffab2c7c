//! A fixed-size log-linear histogram of latencies (ns): values below 32 have their own bucket;
//! above, each power of two is split into 32 equal buckets, so a reported percentile is within
//! 1/32 (≈3 %) of the true value. 1920 counters, allocated once; recording is a few
//! instructions and never allocates.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets covering every `u64`.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// Latency histogram.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros()); // ≥ SUB_BITS
    let g = e - u64::from(SUB_BITS);
    let sub = (v >> g) - SUB;
    (SUB + g * SUB + sub) as usize
}

/// `(lowest value, width)` of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let g = (i - SUB) / SUB;
    let sub = (i - SUB) % SUB;
    ((SUB + sub) << g, 1 << g)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The `p`-quantile (`0 < p ≤ 1`): the middle of the bucket holding the value of rank
    /// `ceil(p × count)`, capped at the largest value seen. `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = bounds(i);
                return Some((lo + w / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(i >= last, "monotonic at {v}");
            last = i;
            let (lo, w) = bounds(i);
            assert!(lo <= v && v - lo < w, "{v} in bucket {i} = [{lo}, +{w})");
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_distribution_are_within_three_percent() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(0.5), None);
        for v in 1..=100_000u64 {
            h.record(v * 10); // 10 ns .. 1 ms
        }
        assert_eq!(h.count(), 100_000);
        for (p, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.percentile(p).unwrap() as f64;
            assert!((got - want).abs() / want < 0.03, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.percentile(1.0), Some(1_000_000));
    }

    #[test]
    fn a_tail_shows_in_the_high_percentiles_only() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(20_000);
        }
        for _ in 0..10 {
            h.record(5_000_000);
        }
        let p50 = h.percentile(0.5).unwrap();
        assert!((19_000..=21_000).contains(&p50), "{p50}");
        assert!(h.percentile(0.99).unwrap() < 21_000);
        assert!(h.percentile(0.999).unwrap() > 4_800_000);
        let mut m = Histogram::new();
        m.record(1);
        m.merge(&h);
        assert_eq!(m.count(), 1001);
        assert_eq!(m.percentile(0.0001), Some(1));
    }

    #[test]
    fn percentiles_match_the_exact_rank_within_a_bucket() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [1usize, 2, 3, 7, 100, 999, 1000, 1001, 12345] {
            let mut h = Histogram::new();
            let mut v: Vec<u64> = (0..n).map(|_| rnd() >> (rnd() % 64)).collect();
            for &a in &v {
                h.record(a);
            }
            v.sort_unstable();
            for p in [0.0001, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let rank = ((p * n as f64).ceil() as usize).max(1);
                let want = v[rank - 1];
                let got = h.percentile(p).unwrap();
                let (lo, w) = bounds(index(want));
                assert!(got >= lo && got - lo < w, "n {n} p {p}: {got} vs {want}");
            }
        }
    }
}
