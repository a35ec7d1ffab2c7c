//! CPU affinity of the calling thread.

use std::io;

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// `sched_setaffinity` failed (CPU out of range or not allowed).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its size; pid 0 = this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on (its affinity mask), in increasing order. A process
/// started under `taskset -c 1` may run on CPU 1 only, which is not "one CPU, number 0".
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t and the size passed is its size; pid 0 =
    // this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE, inside `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Starts loading the cache line at `p` into this CPU's caches: a hint, for memory that
/// another CPU (the kernel, receiving) wrote and that is read a little later, so that several
/// such transfers overlap instead of following one another. Never faults, whatever `p` is.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing into the program and cannot fault, even
    // for an address outside any mapping.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A cheap timestamp for timing short spans on the hot path, in ticks: the TSC on x86_64
/// (a few ns to read, against ~20 for `clock_gettime`; Linux uses it as its clocksource only
/// when it runs at a constant rate on every CPU), else nanoseconds of the monotonic clock.
/// Convert differences with [`ticks_to_ns`].
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a counter; it touches no memory (x86_64 always has it).
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Whether [`ticks`] can stand in for the monotonic clock between readings of it: on x86_64
/// when the kernel itself keeps time with the TSC (it does so only when the counter runs at a
/// constant rate and agrees across CPUs); elsewhere `ticks` is that clock. Read once.
pub fn ticks_are_the_clocksource() -> bool {
    static TSC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TSC.get_or_init(|| {
        !cfg!(target_arch = "x86_64")
            || std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

/// Nanoseconds per tick in 32.32 fixed point, measured once per process: on x86_64 the TSC
/// against the monotonic clock over ~2 ms of spinning (the first call pays it).
fn ns_per_tick_q32() -> u64 {
    static RATE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1 << 32;
        }
        let (t0, c0) = paired_reading();
        while t0.elapsed() < std::time::Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let (t1, c1) = paired_reading();
        let dt = c1.wrapping_sub(c0).max(1);
        let ns = t1.duration_since(t0).as_nanos();
        u64::try_from((ns << 32) / u128::from(dt)).unwrap_or(u64::MAX)
    })
}

/// The monotonic clock and the ticks at (nearly) the same instant: of a few tries, the one
/// whose two tick readings around the clock reading are closest (a thread preempted between
/// them would skew the rate).
fn paired_reading() -> (std::time::Instant, u64) {
    let mut best = (std::time::Instant::now(), ticks(), u64::MAX);
    for _ in 0..8 {
        let a = ticks();
        let t = std::time::Instant::now();
        let b = ticks();
        let gap = b.wrapping_sub(a);
        if gap < best.2 {
            best = (t, a + gap / 2, gap);
        }
    }
    (best.0, best.1)
}

/// Nanoseconds in `ticks` (a difference of [`ticks`] readings, or a sum of them).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(ns_per_tick_q32())) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Ticks in `ns` nanoseconds (the inverse of [`ticks_to_ns`], to the same calibration).
pub fn ns_to_ticks(ns: u64) -> u64 {
    let ns_per_mtick = ticks_to_ns(1 << 20).max(1);
    ns.saturating_mul(1 << 20) / ns_per_mtick
}

/// A clock that reads a real clock once per period and extrapolates with [`ticks`] in
/// between. It never runs backwards, and is off from the real clock by at most the tick
/// calibration's error over one period (a few µs in 10 ms).
#[derive(Debug)]
pub struct AnchoredClock {
    period_ticks: u64,
    anchored: bool,
    anchor: std::time::Duration,
    anchor_ticks: u64,
    last: std::time::Duration,
}

impl AnchoredClock {
    /// A clock that reads the real one every `period` (and at its first reading), if the
    /// ticks can be trusted between readings ([`ticks_are_the_clocksource`]); else at every
    /// reading. The first clock of a process measures the tick rate (~2 ms).
    pub fn new(period: std::time::Duration) -> Self {
        Self::with_extrapolation(period, ticks_are_the_clocksource())
    }

    /// [`AnchoredClock::new`], extrapolating between readings only if `extrapolate`.
    pub fn with_extrapolation(period: std::time::Duration, extrapolate: bool) -> Self {
        let ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        Self {
            period_ticks: if extrapolate { ns_to_ticks(ns) } else { 0 },
            anchored: false,
            anchor: std::time::Duration::ZERO,
            anchor_ticks: 0,
            last: std::time::Duration::ZERO,
        }
    }

    /// The time now, calling `real` (a reading of the real clock) only when a period has
    /// passed since it was last called.
    #[inline]
    pub fn read(&mut self, real: impl FnOnce() -> std::time::Duration) -> std::time::Duration {
        self.read_at(ticks(), real)
    }

    /// [`AnchoredClock::read`] at the tick count `t` (a [`ticks`] reading just taken, e.g. at
    /// the end of a timed section): saves reading the counter again. If the real clock is
    /// called, the time returned is its reading (now), not `t`'s.
    #[inline]
    pub fn read_at(
        &mut self,
        t: u64,
        real: impl FnOnce() -> std::time::Duration,
    ) -> std::time::Duration {
        let since = t.wrapping_sub(self.anchor_ticks);
        let now = if since >= self.period_ticks || !self.anchored {
            self.anchor_at(t, real())
        } else {
            self.anchor + std::time::Duration::from_nanos(ticks_to_ns(since))
        };
        self.last = self.last.max(now);
        self.last
    }

    #[cold]
    #[inline(never)]
    fn anchor_at(&mut self, t: u64, real: std::time::Duration) -> std::time::Duration {
        self.anchor = real;
        self.anchor_ticks = t;
        self.anchored = true;
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_monotonic_clock_s_nanoseconds() {
        // Calibrated first, so that the spin below is the only thing timed.
        let _ = ticks_to_ns(1);
        let (t0, c0) = paired_reading();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (t1, c1) = paired_reading();
        let ns = ticks_to_ns(c1 - c0) as f64;
        let want = t1.duration_since(t0).as_nanos() as f64;
        // 1 % of 50 ms is far more than the calibration's error, far less than a wrong rate
        // (a TSC counts GHz, not ns).
        assert!(
            (ns / want - 1.0).abs() < 0.01,
            "{ns} ns from ticks against {want} ns"
        );
        assert_eq!(ticks_to_ns(0), 0);
    }

    #[test]
    fn an_anchored_clock_follows_the_real_one_reading_it_once_per_period() {
        let start = std::time::Instant::now();
        let reads = std::cell::Cell::new(0u32);
        let mut clock =
            AnchoredClock::with_extrapolation(std::time::Duration::from_millis(10), true);
        let mut last = std::time::Duration::ZERO;
        let mut worst = 0f64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            let before = start.elapsed();
            let got = clock.read(|| {
                reads.set(reads.get() + 1);
                start.elapsed()
            });
            let after = start.elapsed();
            assert!(got >= last, "ran backwards: {got:?} after {last:?}");
            last = got;
            // Outside [before, after] only by the extrapolation's error over at most 10 ms
            // (a preemption during `read` widens the window, it cannot fail the test).
            let off = if got < before {
                before - got
            } else {
                got.saturating_sub(after)
            };
            worst = worst.max(off.as_secs_f64());
        }
        assert!(worst < 200e-6, "off by {worst} s");
        // ~6 anchorings in 60 ms, plus the first; a preempted test thread may skip some.
        assert!(
            (2..=8).contains(&reads.get()),
            "{} real readings",
            reads.get()
        );

        // Without trusted ticks, every reading is a real one.
        let reads = std::cell::Cell::new(0u32);
        let mut clock = AnchoredClock::with_extrapolation(std::time::Duration::from_secs(1), false);
        for i in 1..=3u64 {
            let t = clock.read(|| {
                reads.set(reads.get() + 1);
                std::time::Duration::from_secs(i)
            });
            assert_eq!(t, std::time::Duration::from_secs(i));
        }
        assert_eq!(reads.get(), 3);

        // A real clock that steps back (it should not, but) cannot make it run backwards.
        let mut clock = AnchoredClock::new(std::time::Duration::ZERO);
        let a = clock.read(|| std::time::Duration::from_secs(5));
        let b = clock.read(|| std::time::Duration::from_secs(4));
        assert_eq!(
            (a, b),
            (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(5)
            )
        );
    }

    #[test]
    fn a_reading_at_given_ticks_extrapolates_from_those_ticks() {
        let period = std::time::Duration::from_secs(3600);
        let mut clock = AnchoredClock::with_extrapolation(period, true);
        let t0 = ticks();
        let real = std::time::Duration::from_secs(100);
        // The first reading anchors: the real clock's time, whatever the ticks.
        assert_eq!(clock.read_at(t0, || real), real);
        // Later ticks extrapolate from the anchor without calling the real clock.
        let later = t0 + (1 << 20);
        let want = real + std::time::Duration::from_nanos(ticks_to_ns(1 << 20));
        assert_eq!(clock.read_at(later, || unreachable!("anchored")), want);
        // Ticks from before the last reading cannot move the clock back.
        assert_eq!(clock.read_at(t0 + 1, || unreachable!("anchored")), want);
    }
}
