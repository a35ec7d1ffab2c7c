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

/// Number of CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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

/// Nanoseconds per tick in 32.32 fixed point, measured once per process: on x86_64 the TSC
/// against the monotonic clock over ~2 ms of spinning (the first call pays it).
fn ns_per_tick_q32() -> u64 {
    static RATE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1 << 32;
        }
        let (t0, c0) = (std::time::Instant::now(), ticks());
        let mut el = t0.elapsed();
        while el < std::time::Duration::from_millis(2) {
            std::hint::spin_loop();
            el = t0.elapsed();
        }
        let dt = ticks().wrapping_sub(c0).max(1);
        let ns = el.as_nanos();
        u64::try_from((ns << 32) / u128::from(dt)).unwrap_or(u64::MAX)
    })
}

/// Nanoseconds in `ticks` (a difference of [`ticks`] readings, or a sum of them).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(ns_per_tick_q32())) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_monotonic_clock_s_nanoseconds() {
        // Calibrated first, so that the spin below is the only thing timed.
        let _ = ticks_to_ns(1);
        let (t0, c0) = (std::time::Instant::now(), ticks());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (c1, el) = (ticks(), t0.elapsed());
        let ns = ticks_to_ns(c1 - c0) as f64;
        let want = el.as_nanos() as f64;
        // The two readings are not taken at the same instant: 1 % of 50 ms is 500 µs, far
        // more than that gap, far less than a wrong rate (a TSC counts GHz, not ns).
        assert!(
            (ns / want - 1.0).abs() < 0.01,
            "{ns} ns from ticks against {want} ns"
        );
        assert_eq!(ticks_to_ns(0), 0);
    }
}
